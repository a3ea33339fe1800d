//! How the paying client reaches servers: https with rustls (ring, the tree's one crypto
//! provider), an optional CA bundle for private endpoints, proxies with loopback always
//! bypassed, and timeouts longer than a server's settlement wait.
//!
//! This crate reads no environment: a binary maps `SSL_CERT_FILE`, `HTTPS_PROXY`,
//! `NO_PROXY` and its flags onto a [`Transport`] (as `x402c` does).

use std::time::Duration;

use crate::Error;

/// Hosts that never go through a proxy, whatever the caller lists: a proxy cannot reach the
/// caller's own loopback (a local devnet, a local node).
pub const LOOPBACK: &str = "localhost,127.0.0.0/8,::1";

/// Installs ring as the process's rustls crypto provider, once; later calls (and a provider
/// the program installed itself) are left alone. [`Transport::client`] calls it; a program
/// that builds its own `reqwest::Client` calls it first.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one meanwhile: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Connection settings.
#[derive(Clone)]
pub struct Transport {
    /// Time to open a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest silence while waiting for an answer. A server answers a paid request only
    /// after settling it, so this must outlast its settlement wait (an offer's
    /// `maxTimeoutSeconds`, 60 s in the reference).
    pub read_timeout: Duration,
    /// Longest time for a whole request and its answer.
    pub total_timeout: Duration,
    /// PEM certificates trusted besides the platform's roots (a private endpoint's CA).
    pub ca_bundle: Option<Vec<u8>>,
    /// The proxy for `https` URLs (through `CONNECT`).
    pub https_proxy: Option<reqwest::Url>,
    /// The proxy for `http` URLs.
    pub http_proxy: Option<reqwest::Url>,
    /// Hosts, domains (`.example.com` or `example.com` matches subdomains too) and CIDR
    /// ranges reached directly, as in `NO_PROXY`; [`LOOPBACK`] is always added.
    pub no_proxy: Vec<String>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A proxy URL may carry credentials: only its host is shown.
        let host = |url: &Option<reqwest::Url>| {
            url.as_ref().map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
        };
        f.debug_struct("Transport")
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("ca_bundle", &self.ca_bundle.as_ref().map(Vec::len))
            .field("https_proxy", &host(&self.https_proxy))
            .field("http_proxy", &host(&self.http_proxy))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl Default for Transport {
    /// Connect in 10 s; 90 s of silence; 120 s in all; platform roots; no proxy.
    fn default() -> Transport {
        Transport {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(90),
            total_timeout: Duration::from_secs(120),
            ca_bundle: None,
            https_proxy: None,
            http_proxy: None,
            no_proxy: Vec::new(),
        }
    }
}

impl Transport {
    /// The `NO_PROXY` list in effect: the caller's hosts and [`LOOPBACK`].
    pub fn bypassed(&self) -> String {
        let mut list: Vec<&str> = self
            .no_proxy
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .collect();
        list.push(LOOPBACK);
        list.join(",")
    }

    /// A client builder with these settings, to add more before building.
    ///
    /// # Errors
    /// [`Error::Transport`] when the CA bundle holds no readable certificate or a proxy URL is
    /// unusable.
    pub fn builder(&self) -> Result<reqwest::ClientBuilder, Error> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .timeout(self.total_timeout)
            // Proxies come from this struct only, never from the process environment.
            .no_proxy();
        if let Some(pem) = &self.ca_bundle {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                Error::Transport(format!(
                    "the CA bundle is not PEM certificates ({e}); give a file of `-----BEGIN CERTIFICATE-----` blocks"
                ))
            })?;
            if certificates.is_empty() {
                return Err(Error::Transport(
                    "the CA bundle holds no certificate; give a file of `-----BEGIN CERTIFICATE-----` blocks".into(),
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let bypassed = reqwest::NoProxy::from_string(&self.bypassed());
        let proxy =
            |url: &reqwest::Url, make: fn(reqwest::Url) -> reqwest::Result<reqwest::Proxy>| {
                make(url.clone())
                    .map(|p| p.no_proxy(bypassed.clone()))
                    .map_err(|e| {
                        Error::Transport(format!("the proxy {} is unusable: {e}", redacted(url)))
                    })
            };
        if let Some(url) = &self.https_proxy {
            builder = builder.proxy(proxy(url, reqwest::Proxy::https)?);
        }
        if let Some(url) = &self.http_proxy {
            builder = builder.proxy(proxy(url, reqwest::Proxy::http)?);
        }
        Ok(builder)
    }

    /// A client with these settings.
    ///
    /// # Errors
    /// As [`Transport::builder`], or [`Error::Transport`] when the TLS setup fails.
    pub fn client(&self) -> Result<reqwest::Client, Error> {
        self.builder()?
            .build()
            .map_err(|e| Error::Transport(format!("cannot set up HTTP: {e}")))
    }
}

/// A URL without its credentials, for messages.
fn redacted(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn loopback_is_always_bypassed() {
        let transport = Transport {
            no_proxy: vec![" internal.example ".into(), String::new()],
            ..Transport::default()
        };
        assert_eq!(transport.bypassed(), format!("internal.example,{LOOPBACK}"));
        let no = reqwest::NoProxy::from_string(&transport.bypassed());
        assert!(no.is_some());
    }

    #[test]
    fn a_bundle_without_certificates_is_refused_with_what_to_give() {
        let transport = Transport {
            ca_bundle: Some(b"not a certificate".to_vec()),
            ..Transport::default()
        };
        let error = transport.client().expect_err("no certificate");
        assert!(error.to_string().contains("BEGIN CERTIFICATE"), "{error}");
    }

    #[test]
    fn debug_hides_proxy_credentials() {
        let transport = Transport {
            https_proxy: Some("http://user:hunter2@proxy.example:3128".parse().unwrap()),
            ..Transport::default()
        };
        let shown = format!("{transport:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("proxy.example:3128"),
            "{shown}"
        );
        assert!(!redacted(transport.https_proxy.as_ref().unwrap()).contains("hunter2"));
    }
}
