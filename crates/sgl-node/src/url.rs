//! The coordinator's base URL and the rule it must meet (§3.1): HTTPS, except plain HTTP to a
//! loopback host named exactly `localhost`, `127.0.0.1` or `::1` (read from the parsed host,
//! never by substring).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;

use crate::{Error, Result};

/// The default coordinator.
pub const DEFAULT_ORCHESTRATOR_URL: &str = "https://grid.x402compute.cc";

/// Everything but the unreserved characters (RFC 3986 `ALPHA / DIGIT / - . _ ~`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment or query value, percent-encoded except the unreserved characters.
pub(crate) fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// A coordinator base URL that passed the transport rule. Displays without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrchestratorUrl {
    base: String,
    secure: bool,
}

impl OrchestratorUrl {
    /// Checks `text`: an `https://` URL, or `http://` to exactly `localhost`, `127.0.0.1` or
    /// `[::1]`; no credentials, query or fragment.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] saying which rule failed.
    pub fn parse(text: &str) -> Result<OrchestratorUrl> {
        let url = Url::parse(text.trim())
            .map_err(|e| Error::InvalidInput(format!("the orchestrator URL is not a URL ({e})")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::InvalidInput(
                "the orchestrator URL must not carry credentials".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::InvalidInput(
                "the orchestrator URL must not have a query or fragment".into(),
            ));
        }
        // The parsed host (IPv4 normalized, IPv6 in brackets), compared whole.
        let loopback = match url.host_str() {
            Some(host) => matches!(host, "localhost" | "127.0.0.1" | "[::1]"),
            None => {
                return Err(Error::InvalidInput(
                    "the orchestrator URL has no host".into(),
                ));
            }
        };
        let secure = match url.scheme() {
            "https" => true,
            "http" if loopback => false,
            "http" => {
                return Err(Error::InvalidInput(
                    "the orchestrator URL must be https:// (plain http:// only to localhost, 127.0.0.1 or ::1)"
                        .into(),
                ));
            }
            other => {
                return Err(Error::InvalidInput(format!(
                    "the orchestrator URL must be https://, not {other}://"
                )));
            }
        };
        let base = url.as_str().trim_end_matches('/').to_owned();
        Ok(OrchestratorUrl { base, secure })
    }

    /// The base, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// `base` + `path` (`path` starts with `/`).
    pub(crate) fn join(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The WebSocket URL for a node (`wss://` for https, `ws://` for http). It carries the
    /// token: never log it.
    pub(crate) fn websocket(&self, node_id: &str, token: &str) -> String {
        let rest = self
            .base
            .split_once("://")
            .map_or(self.base.as_str(), |(_, rest)| rest);
        let scheme = if self.secure { "wss" } else { "ws" };
        format!(
            "{scheme}://{rest}/grid/nodes/{}/ws?auth_token={}",
            encode(node_id),
            encode(token)
        )
    }
}

impl std::fmt::Display for OrchestratorUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

impl std::str::FromStr for OrchestratorUrl {
    type Err = Error;

    fn from_str(text: &str) -> Result<OrchestratorUrl> {
        OrchestratorUrl::parse(text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn https_everywhere_http_only_to_exact_loopback_hosts() {
        for ok in [
            "https://grid.x402compute.cc",
            "https://grid.x402compute.cc/",
            "http://localhost:8080",
            "http://127.0.0.1:1/",
            "http://[::1]:9000",
            "https://10.0.0.1",
        ] {
            OrchestratorUrl::parse(ok).unwrap();
        }
        for bad in [
            "http://grid.x402compute.cc",
            "http://localhost.evil.com",
            "http://127.0.0.1.evil.com",
            "http://evil.com/localhost",
            "http://evil.com?x=127.0.0.1",
            "http://127.0.0.2",
            "http://user:pw@localhost",
            "ftp://localhost",
            "ws://localhost",
            "localhost:8080",
            "https://grid.x402compute.cc/?a=b",
        ] {
            assert!(OrchestratorUrl::parse(bad).is_err(), "{bad} was accepted");
        }
        let url = OrchestratorUrl::parse("https://grid.x402compute.cc/").unwrap();
        assert_eq!(url.as_str(), "https://grid.x402compute.cc");
        assert_eq!(
            url.join("/grid/nodes/heartbeat"),
            "https://grid.x402compute.cc/grid/nodes/heartbeat"
        );
    }

    #[test]
    fn websocket_urls_follow_the_scheme_and_encode_the_token() {
        let url = OrchestratorUrl::parse("http://127.0.0.1:7000").unwrap();
        assert_eq!(
            url.websocket("n-1", "a+b/c=d"),
            "ws://127.0.0.1:7000/grid/nodes/n-1/ws?auth_token=a%2Bb%2Fc%3Dd"
        );
        let url = OrchestratorUrl::parse("https://grid.example/base").unwrap();
        assert_eq!(
            url.websocket("n", "t"),
            "wss://grid.example/base/grid/nodes/n/ws?auth_token=t"
        );
        assert_eq!(encode("a b/ü~._-"), "a%20b%2F%C3%BC~._-");
    }
}
