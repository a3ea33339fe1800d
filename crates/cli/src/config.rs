//! The configuration: flags over environment over the TOML file over defaults.
//!
//! The file is `config.toml` in the platform's config directory (`$XDG_CONFIG_HOME/x402c` on
//! Linux, `~/Library/Application Support/x402c` on macOS), or `X402C_CONFIG`. Keys:
//!
//! ```toml
//! max_price = "1.00"      # dollars per payment (X402C_MAX_PRICE, --max-price)
//! daily_budget = "20"     # dollars in any 24 hours (X402C_DAILY_BUDGET, --daily-budget)
//! journal = "/path/payments.sqlite"   # X402C_JOURNAL, --journal
//! ca_bundle = "/etc/ssl/private-ca.pem" # trusted besides the system's (SSL_CERT_FILE, --cacert)
//! proxy = "http://proxy:3128"         # HTTPS_PROXY / https_proxy, ALL_PROXY, --proxy
//! no_proxy = "internal.example,10.0.0.0/8"  # NO_PROXY / no_proxy, --no-proxy; loopback
//!                                     # is never proxied
//!
//! [rpc]                   # JSON-RPC endpoints, for what a payment reads from a chain
//! megaeth = "https://…"   # (a permit's nonce); --rpc megaeth=URL
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;
use x402_core::UsdMicros;

/// The file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    max_price: Option<String>,
    daily_budget: Option<String>,
    journal: Option<PathBuf>,
    rpc: Option<std::collections::BTreeMap<String, String>>,
    ca_bundle: Option<PathBuf>,
    proxy: Option<String>,
    no_proxy: Option<String>,
}

/// The settings a command runs with.
#[derive(Debug)]
pub(crate) struct Config {
    /// Where the config file is (whether or not it exists).
    pub(crate) path: PathBuf,
    /// Dollars per payment.
    pub(crate) max_price: UsdMicros,
    /// Dollars in any 24 hours, if limited.
    pub(crate) daily_budget: Option<UsdMicros>,
    /// The payment journal.
    pub(crate) journal: PathBuf,
    /// JSON-RPC endpoints by network name, flags last (they win).
    pub(crate) rpc: Vec<(String, String)>,
    /// PEM certificates trusted besides the platform's roots.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// The proxy for https URLs.
    pub(crate) https_proxy: Option<String>,
    /// The proxy for http URLs.
    pub(crate) http_proxy: Option<String>,
    /// Hosts reached directly (loopback always is).
    pub(crate) no_proxy: Vec<String>,
}

/// The default cap per payment: $1, like the official clients.
pub(crate) const DEFAULT_MAX_PRICE: UsdMicros = UsdMicros::from_dollars(1);

fn strategy() -> Result<impl etcetera::AppStrategy> {
    etcetera::choose_app_strategy(etcetera::AppStrategyArgs {
        top_level_domain: "cc".to_owned(),
        author: "x402".to_owned(),
        app_name: "x402c".to_owned(),
    })
    .context("cannot find the home directory for the config and journal; set X402C_CONFIG and X402C_JOURNAL")
}

fn dollars(text: &str, what: &str) -> Result<UsdMicros> {
    text.trim()
        .trim_start_matches('$')
        .parse::<UsdMicros>()
        .with_context(|| format!("{what}: `{text}` is not an amount of dollars (like 1 or 2.50)"))
}

/// Flags that override the environment and the file.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    /// `--max-price`.
    pub(crate) max_price: Option<String>,
    /// `--daily-budget`.
    pub(crate) daily_budget: Option<String>,
    /// `--journal`.
    pub(crate) journal: Option<PathBuf>,
    /// `--rpc NETWORK=URL`.
    pub(crate) rpc: Vec<String>,
    /// `--cacert`.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// `--proxy` (for http and https).
    pub(crate) proxy: Option<String>,
    /// `--no-proxy`.
    pub(crate) no_proxy: Option<String>,
}

impl Config {
    /// Reads the file and the environment under `flags`.
    pub(crate) fn load(flags: Overrides) -> Result<Config> {
        use etcetera::AppStrategy as _;
        let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
        let path = match env("X402C_CONFIG") {
            Some(path) => PathBuf::from(path),
            None => strategy()?.config_dir().join("config.toml"),
        };
        let file: File = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("the config file {} is not valid", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let max_price = match flags
            .max_price
            .or_else(|| env("X402C_MAX_PRICE"))
            .or(file.max_price)
        {
            Some(text) => dollars(&text, "max price")?,
            None => DEFAULT_MAX_PRICE,
        };
        let daily_budget = flags
            .daily_budget
            .or_else(|| env("X402C_DAILY_BUDGET"))
            .or(file.daily_budget)
            .map(|text| dollars(&text, "daily budget"))
            .transpose()?;
        let journal = match flags
            .journal
            .or_else(|| env("X402C_JOURNAL").map(PathBuf::from))
            .or(file.journal)
        {
            Some(path) => path,
            None => strategy()?.data_dir().join("payments.sqlite"),
        };
        let mut rpc: Vec<(String, String)> = file.rpc.unwrap_or_default().into_iter().collect();
        for flag in flags.rpc {
            let (network, url) = flag
                .split_once('=')
                .with_context(|| format!("--rpc `{flag}` is not NETWORK=URL"))?;
            rpc.push((network.to_owned(), url.to_owned()));
        }
        let ca_bundle = flags
            .ca_bundle
            .or_else(|| env("SSL_CERT_FILE").map(PathBuf::from))
            .or(file.ca_bundle);
        // As curl: `https_proxy` or `HTTPS_PROXY`, then `ALL_PROXY`; for http only the
        // lowercase `http_proxy` (a CGI request can set `HTTP_PROXY` through a header).
        let any = |keys: &[&str]| keys.iter().find_map(|key| env(key));
        let all = any(&["all_proxy", "ALL_PROXY"]);
        let https_proxy = flags
            .proxy
            .clone()
            .or_else(|| any(&["https_proxy", "HTTPS_PROXY"]))
            .or_else(|| all.clone())
            .or_else(|| file.proxy.clone());
        let http_proxy = flags
            .proxy
            .or_else(|| env("http_proxy"))
            .or(all)
            .or(file.proxy);
        let no_proxy = flags
            .no_proxy
            .or_else(|| any(&["no_proxy", "NO_PROXY"]))
            .or(file.no_proxy)
            .map(|list| {
                list.split(',')
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Config {
            path,
            max_price,
            daily_budget,
            journal,
            rpc,
            ca_bundle,
            https_proxy,
            http_proxy,
            no_proxy,
        })
    }

    /// The HTTP settings, with `total` as the longest a request may take.
    pub(crate) fn transport(&self, total: std::time::Duration) -> Result<x402_reqwest::Transport> {
        let proxy = |url: &Option<String>, what: &str| -> Result<Option<reqwest::Url>> {
            url.as_deref()
                .map(|text| {
                    // `proxy:3128` as curl takes it: http:// by default.
                    let full = if text.contains("://") {
                        text.to_owned()
                    } else {
                        format!("http://{text}")
                    };
                    full.parse::<reqwest::Url>().map_err(|_| {
                        anyhow::anyhow!(
                            "{what} `{}` is not a URL like http://proxy:3128",
                            redact(text)
                        )
                    })
                })
                .transpose()
        };
        let ca_bundle = match &self.ca_bundle {
            Some(path) => Some(std::fs::read(path).with_context(|| {
                format!(
                    "cannot read the CA bundle {} (--cacert, SSL_CERT_FILE, ca_bundle)",
                    path.display()
                )
            })?),
            None => None,
        };
        Ok(x402_reqwest::Transport {
            total_timeout: total,
            read_timeout: total.min(x402_reqwest::Transport::default().read_timeout),
            ca_bundle,
            https_proxy: proxy(&self.https_proxy, "the https proxy")?,
            http_proxy: proxy(&self.http_proxy, "the http proxy")?,
            no_proxy: self.no_proxy.clone(),
            ..x402_reqwest::Transport::default()
        })
    }
}

/// A proxy setting without its credentials, for messages and `config show`.
pub(crate) fn redact(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &text[..scheme + 3], &text[at..])
        }
        (None, Some(at)) => format!("***{}", &text[at..]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn proxy_credentials_are_not_shown() {
        assert_eq!(redact("http://user:pw@proxy:3128"), "http://***@proxy:3128");
        assert_eq!(redact("user:pw@proxy:3128"), "***@proxy:3128");
        assert_eq!(redact("http://proxy:3128"), "http://proxy:3128");
    }
}
