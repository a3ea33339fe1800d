//! The configuration: flags over environment over the TOML file over defaults, each setting
//! remembering where it came from (`x402c config show`).
//!
//! The file is `config.toml` in the platform's config directory (`$XDG_CONFIG_HOME/x402c` on
//! Linux, `~/Library/Application Support/x402c` on macOS), or `X402C_CONFIG`. Keys:
//!
//! ```toml
//! max_price = "1.00"      # dollars per `fetch` payment (X402C_MAX_PRICE, fetch --max-price)
//! max_spend = "500"       # dollars per machines payment (COMPUTE_MAX_SPEND_USD, --max-price)
//! daily_budget = "20"     # dollars in any 24 hours (X402C_DAILY_BUDGET, --daily-budget)
//! journal = "/path/payments.sqlite"   # X402C_JOURNAL, --journal
//! compute_url = "https://compute.x402layer.cc"  # X402C_COMPUTE_URL, --api-url
//! grid_url = "https://grid.x402compute.cc"      # X402C_GRID_URL, --grid-url
//! wallet = "default"      # the keystore wallet to sign with (X402C_WALLET, --wallet)
//! ca_bundle = "/etc/ssl/private-ca.pem" # trusted besides the system's (SSL_CERT_FILE, --cacert)
//! proxy = "http://proxy:3128"         # HTTPS_PROXY / https_proxy, ALL_PROXY, --proxy
//! no_proxy = "internal.example,10.0.0.0/8"  # NO_PROXY / no_proxy, --no-proxy; loopback
//!                                     # is never proxied
//!
//! [rpc]                   # JSON-RPC endpoints, for what a payment reads from a chain
//! megaeth = "https://…"   # (a permit's nonce, a Solana blockhash); --rpc megaeth=URL
//! ```
//!
//! The seed scripts' variables keep working: `PRIVATE_KEY`, `WALLET_ADDRESS`,
//! `WALLET_ADDRESS_SECONDARY`, `SOLANA_SECRET_KEY`, `SOLANA_WALLET_ADDRESS`,
//! `COMPUTE_AUTH_CHAIN`, `COMPUTE_API_KEY`, `COMPUTE_AUTH_MODE`, `OWS_WALLET`, `OWS_BIN`,
//! `COMPUTE_MAX_SPEND_USD` (read where they are used, in `machines`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Deserialize;
use x402_core::UsdMicros;

/// The file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    max_price: Option<String>,
    max_spend: Option<String>,
    daily_budget: Option<String>,
    journal: Option<PathBuf>,
    compute_url: Option<String>,
    grid_url: Option<String>,
    wallet: Option<String>,
    rpc: Option<std::collections::BTreeMap<String, String>>,
    ca_bundle: Option<PathBuf>,
    proxy: Option<String>,
    no_proxy: Option<String>,
}

/// Where a setting came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Flag,
    Env(&'static str),
    File,
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env(name) => write!(f, "env {name}"),
            Source::File => f.write_str("config file"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// The settings a command runs with.
#[derive(Debug)]
pub(crate) struct Config {
    /// Where the config file is (whether or not it exists).
    pub(crate) path: PathBuf,
    /// Dollars per `fetch` payment.
    pub(crate) max_price: UsdMicros,
    /// Dollars per machines payment.
    pub(crate) max_spend: UsdMicros,
    /// Dollars in any 24 hours, if limited.
    pub(crate) daily_budget: Option<UsdMicros>,
    /// The payment journal.
    pub(crate) journal: PathBuf,
    /// The machines API.
    pub(crate) compute_url: String,
    /// The inference grid.
    pub(crate) grid_url: String,
    /// The keystore wallet's name.
    pub(crate) wallet: String,
    /// Where keystore wallets live.
    pub(crate) wallets_dir: PathBuf,
    /// JSON-RPC endpoints by network name: defaults first, then the file, then flags (the
    /// last one for a network wins).
    pub(crate) rpc: Vec<(String, String)>,
    /// PEM certificates trusted besides the platform's roots.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// The proxy for https URLs.
    pub(crate) https_proxy: Option<String>,
    /// The proxy for http URLs.
    pub(crate) http_proxy: Option<String>,
    /// Hosts reached directly (loopback always is).
    pub(crate) no_proxy: Vec<String>,
    /// Where each shown setting came from.
    pub(crate) sources: std::collections::BTreeMap<&'static str, Source>,
}

/// The default cap per `fetch` payment: $1, like the official clients.
pub(crate) const DEFAULT_MAX_PRICE: UsdMicros = UsdMicros::from_dollars(1);

/// Public JSON-RPC endpoints used when none is configured for a mainnet: what a Solana
/// payment needs (its blockhash) against the public service. Test networks get none: a
/// local devnet runs the same chain ids, and asking the public testnet about a devnet payment
/// would give the wrong answer. Configure your own for anything heavier (`[rpc]`, `--rpc`).
pub(crate) const DEFAULT_RPC: [(&str, &str); 2] = [
    ("base", "https://mainnet.base.org"),
    ("solana", "https://api.mainnet-beta.solana.com"),
];

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
    /// `fetch --max-price`.
    pub(crate) max_price: Option<String>,
    /// `--max-price` of a machines command.
    pub(crate) max_spend: Option<String>,
    /// `--daily-budget`.
    pub(crate) daily_budget: Option<String>,
    /// `--journal`.
    pub(crate) journal: Option<PathBuf>,
    /// `--api-url`.
    pub(crate) compute_url: Option<String>,
    /// `--grid-url`.
    pub(crate) grid_url: Option<String>,
    /// `--wallet`.
    pub(crate) wallet: Option<String>,
    /// `--rpc NETWORK=URL`.
    pub(crate) rpc: Vec<String>,
    /// `--cacert`.
    pub(crate) ca_bundle: Option<PathBuf>,
    /// `--proxy` (for http and https).
    pub(crate) proxy: Option<String>,
    /// `--no-proxy`.
    pub(crate) no_proxy: Option<String>,
}

/// Picks the first present of flag, environment variables (in order), file.
struct Pick<'a> {
    sources: &'a mut std::collections::BTreeMap<&'static str, Source>,
}

impl Pick<'_> {
    fn pick<T>(
        &mut self,
        key: &'static str,
        flag: Option<T>,
        env: &[&'static str],
        file: Option<T>,
        parse_env: impl Fn(String) -> T,
    ) -> Option<T> {
        let found = flag.map(|v| (v, Source::Flag)).or_else(|| {
            env.iter()
                .find_map(|name| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .map(|v| (parse_env(v), Source::Env(name)))
                })
                .or_else(|| file.map(|v| (v, Source::File)))
        });
        let (value, source) = match found {
            Some((value, source)) => (Some(value), source),
            None => (None, Source::Default),
        };
        self.sources.insert(key, source);
        value
    }
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
        let mut sources = std::collections::BTreeMap::new();
        let mut pick = Pick {
            sources: &mut sources,
        };
        let max_price = match pick.pick(
            "max_price",
            flags.max_price,
            &["X402C_MAX_PRICE"],
            file.max_price,
            |v| v,
        ) {
            Some(text) => dollars(&text, "max price")?,
            None => DEFAULT_MAX_PRICE,
        };
        let max_spend = match pick.pick(
            "max_spend",
            flags.max_spend,
            &["COMPUTE_MAX_SPEND_USD"],
            file.max_spend,
            |v| v,
        ) {
            Some(text) => dollars(&text, "max spend")?,
            None => compute_api::DEFAULT_MAX_SPEND,
        };
        let daily_budget = pick
            .pick(
                "daily_budget",
                flags.daily_budget,
                &["X402C_DAILY_BUDGET"],
                file.daily_budget,
                |v| v,
            )
            .map(|text| dollars(&text, "daily budget"))
            .transpose()?;
        let journal = match pick.pick(
            "journal",
            flags.journal,
            &["X402C_JOURNAL"],
            file.journal,
            PathBuf::from,
        ) {
            Some(path) => path,
            None => strategy()?.data_dir().join("payments.sqlite"),
        };
        let compute_url = pick
            .pick(
                "compute_url",
                flags.compute_url,
                &["X402C_COMPUTE_URL"],
                file.compute_url,
                |v| v,
            )
            .unwrap_or_else(|| compute_api::DEFAULT_URL.to_owned());
        let grid_url = pick
            .pick(
                "grid_url",
                flags.grid_url,
                &["X402C_GRID_URL"],
                file.grid_url,
                |v| v,
            )
            .unwrap_or_else(|| grid_api::client::DEFAULT_URL.to_owned());
        let wallet = pick
            .pick(
                "wallet",
                flags.wallet,
                &["X402C_WALLET"],
                file.wallet,
                |v| v,
            )
            .unwrap_or_else(|| "default".to_owned());
        let wallets_dir = match env("X402C_WALLETS") {
            Some(dir) => PathBuf::from(dir),
            None => strategy()?.data_dir().join("wallets"),
        };
        let mut rpc: Vec<(String, String)> = DEFAULT_RPC
            .iter()
            .map(|(n, u)| ((*n).to_owned(), (*u).to_owned()))
            .collect();
        rpc.extend(file.rpc.unwrap_or_default());
        for flag in flags.rpc {
            let (network, url) = flag
                .split_once('=')
                .with_context(|| format!("--rpc `{flag}` is not NETWORK=URL"))?;
            rpc.push((network.to_owned(), url.to_owned()));
        }
        let ca_bundle = pick.pick(
            "ca_bundle",
            flags.ca_bundle,
            &["SSL_CERT_FILE"],
            file.ca_bundle,
            PathBuf::from,
        );
        // As curl: `https_proxy` or `HTTPS_PROXY`, then `ALL_PROXY`; for http only the
        // lowercase `http_proxy` (a CGI request can set `HTTP_PROXY` through a header).
        let https_proxy = pick.pick(
            "https_proxy",
            flags.proxy.clone(),
            &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
            file.proxy.clone(),
            |v| v,
        );
        let http_proxy = pick.pick(
            "http_proxy",
            flags.proxy,
            &["http_proxy", "all_proxy", "ALL_PROXY"],
            file.proxy,
            |v| v,
        );
        let no_proxy = pick
            .pick(
                "no_proxy",
                flags.no_proxy,
                &["no_proxy", "NO_PROXY"],
                file.no_proxy,
                |v| v,
            )
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
            max_spend,
            daily_budget,
            journal,
            compute_url,
            grid_url,
            wallet,
            wallets_dir,
            rpc,
            ca_bundle,
            https_proxy,
            http_proxy,
            no_proxy,
            sources,
        })
    }

    /// Each setting with its value and where it came from, for `config show`.
    pub(crate) fn shown(&self) -> serde_json::Value {
        let source = |key: &str| {
            self.sources
                .get(key)
                .copied()
                .unwrap_or(Source::Default)
                .to_string()
        };
        let entry = |key: &'static str, value: serde_json::Value| {
            (
                key.to_owned(),
                serde_json::json!({ "value": value, "source": source(key) }),
            )
        };
        let mut rpc = serde_json::Map::new();
        for (network, url) in &self.rpc {
            rpc.insert(network.clone(), serde_json::Value::from(redact_url(url)));
        }
        let mut shown = serde_json::Map::from_iter([
            entry("max_price", self.max_price.to_string().into()),
            entry("max_spend", self.max_spend.to_string().into()),
            entry(
                "daily_budget",
                self.daily_budget.map(|b| b.to_string()).into(),
            ),
            entry("journal", self.journal.display().to_string().into()),
            entry("compute_url", self.compute_url.clone().into()),
            entry("grid_url", self.grid_url.clone().into()),
            entry("wallet", self.wallet.clone().into()),
            entry(
                "ca_bundle",
                self.ca_bundle
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .into(),
            ),
            entry(
                "https_proxy",
                self.https_proxy.as_deref().map(redact).into(),
            ),
            entry("http_proxy", self.http_proxy.as_deref().map(redact).into()),
            entry("no_proxy", self.no_proxy.clone().into()),
        ]);
        shown.insert("config_file".into(), self.path.display().to_string().into());
        shown.insert(
            "wallets_dir".into(),
            self.wallets_dir.display().to_string().into(),
        );
        shown.insert("rpc".into(), serde_json::Value::Object(rpc));
        serde_json::Value::Object(shown)
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

/// An endpoint URL as it may be shown: scheme, host and port only (RPC providers put API keys
/// in the path, the query or the user info).
pub(crate) fn redact_url(text: &str) -> String {
    match reqwest::Url::parse(text) {
        Ok(url) => {
            let hidden =
                url.path().len() > 1 || url.query().is_some() || !url.username().is_empty();
            format!(
                "{}://{}{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default(),
                if hidden { "/…" } else { "" }
            )
        }
        Err(_) => "(not a URL)".to_owned(),
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
    use super::{redact, redact_url};

    #[test]
    fn rpc_keys_are_not_shown() {
        assert_eq!(
            redact_url("https://eth.example/v2/SECRETKEY"),
            "https://eth.example/…"
        );
        assert_eq!(
            redact_url("https://u:p@rpc.example:8545/"),
            "https://rpc.example:8545/…"
        );
        assert_eq!(redact_url("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact_url("rpc?key=1"), "(not a URL)");
    }

    #[test]
    fn proxy_credentials_are_not_shown() {
        assert_eq!(redact("http://user:pw@proxy:3128"), "http://***@proxy:3128");
        assert_eq!(redact("user:pw@proxy:3128"), "***@proxy:3128");
        assert_eq!(redact("http://proxy:3128"), "http://proxy:3128");
    }
}
