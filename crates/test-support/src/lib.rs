//! What the devnet's end-to-end tests and the demo share, so none of them repeats it: a devnet
//! to start ([`start`], [`start_with`]), funded wallets ([`funded_wallet`]), requests signed
//! with the compute API's wallet auth ([`Client::signed`]), paying a 402 on Base Sepolia
//! ([`Client::pay_base`]) and reading challenges and receipts ([`challenge`], [`receipt`]).
//!
//! Time and randomness come from the system ([`Now`], [`os_random`]): these helpers drive a
//! real devnet from the outside, as a client would.

use std::path::PathBuf;

pub mod net;

use devnet::{Config, Devnet};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use x402_core::auth::{self, AuthChain};
use x402_core::{
    Challenge, Clock, EvmSigner, LocalEvmSigner, LocalSolanaSigner, Network, PaymentPolicy,
    Receipt, evm,
};

/// What can go wrong while driving a devnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// anvil is not where `cargo xtask tools` puts it.
    #[error("anvil is not installed at {}: run `cargo xtask tools` (cargo xtask ci does)", .0.display())]
    NoAnvil(PathBuf),
    /// llama-server or the SmolLM2 GGUF is not where `cargo xtask tools` puts them.
    #[error("{} is not installed: run `cargo xtask tools` (cargo xtask ci does)", .0.display())]
    NoLlama(PathBuf),
    /// The devnet failed.
    #[error(transparent)]
    Devnet(#[from] devnet::Error),
    /// An HTTP call failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// x402-core refused (a challenge, a signature, a policy).
    #[error(transparent)]
    Payment(#[from] x402_core::Error),
    /// The operating system's random source failed.
    #[error("the OS random source failed: {0}")]
    Random(#[from] getrandom::Error),
    /// The devnet answered with an unexpected status.
    #[error("{what} answered {status}: {body}")]
    Status {
        /// The call.
        what: String,
        /// Its status.
        status: reqwest::StatusCode,
        /// Its body.
        body: String,
    },
    /// A test server could not be set up.
    #[error("setting up a test server: {0}")]
    Setup(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The system clock, as a client has it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Now;

impl Now {
    /// Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_unix_ms()
    }
}

impl Clock for Now {
    fn now_unix_ms(&self) -> u64 {
        devnet::SystemClock.now_unix_ms()
    }
}

/// A plain `reqwest::Client`, after installing the tree's rustls crypto provider (reqwest is
/// built with `rustls-no-provider`; see the workspace manifest).
pub fn http() -> reqwest::Client {
    devnet::install_crypto_provider();
    reqwest::Client::new()
}

/// Fills `buf` from the operating system's random source.
///
/// # Panics
/// When the OS random source fails, which a test cannot recover from.
pub fn os_random(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the OS random source works");
}

/// Where `cargo xtask tools` installs anvil.
pub fn anvil_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
}

/// The installed anvil.
///
/// # Errors
/// [`Error::NoAnvil`] with what to run.
pub fn anvil() -> Result<PathBuf> {
    let path = anvil_path();
    match path.exists() {
        true => Ok(path),
        false => Err(Error::NoAnvil(path)),
    }
}

/// The pinned engine `cargo xtask tools` installs: llama-server and the SmolLM2 GGUF.
#[derive(Clone, Debug)]
pub struct Llama {
    /// `.tools/llama/bin/llama-server`.
    pub server: PathBuf,
    /// `.tools/llama/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
    pub model: PathBuf,
}

/// The installed llama-server and SmolLM2.
///
/// # Errors
/// [`Error::NoLlama`] with what to run.
pub fn llama() -> Result<Llama> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/llama");
    let llama = Llama {
        server: root.join("bin/llama-server"),
        model: root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    };
    for path in [&llama.server, &llama.model] {
        if !path.exists() {
            return Err(Error::NoLlama(path.clone()));
        }
    }
    Ok(llama)
}

/// An ephemeral devnet (in-memory state, a free port, every chain).
///
/// # Errors
/// When anvil is missing or the devnet does not start.
pub async fn start() -> Result<Devnet> {
    start_with(|config| config).await
}

/// An ephemeral devnet whose configuration `adjust` changes first (faults, a data dir, …).
///
/// # Errors
/// When anvil is missing or the devnet does not start.
pub async fn start_with(adjust: impl FnOnce(Config) -> Config) -> Result<Devnet> {
    let config = adjust(Config::ephemeral(anvil()?));
    Ok(Devnet::start(config).await?)
}

/// A fresh random EVM wallet holding `usdc` dollars on every EVM chain of `devnet`.
///
/// # Errors
/// When funding fails.
pub async fn funded_wallet(devnet: &Devnet, usdc: u64) -> Result<LocalEvmSigner> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let signer = LocalEvmSigner::from_bytes(&secret)?;
    devnet
        .chains()
        .fund_evm(signer.address(), usdc.saturating_mul(1_000_000))
        .await?;
    Ok(signer)
}

/// A fresh random Solana wallet holding `usdc` dollars (and SOL for fees) on the ledger.
///
/// # Errors
/// When the ledger is not running or funding fails.
pub fn funded_solana_wallet(devnet: &Devnet, usdc: u64) -> Result<LocalSolanaSigner> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let signer = LocalSolanaSigner::from_secret(secret);
    let solana = devnet.solana().ok_or_else(|| Error::Status {
        what: "funding a Solana wallet".into(),
        status: reqwest::StatusCode::SERVICE_UNAVAILABLE,
        body: "the devnet runs no Solana ledger".into(),
    })?;
    solana.fund(
        &x402_core::SolanaSigner::pubkey(&signer),
        usdc.saturating_mul(1_000_000),
    )?;
    Ok(signer)
}

/// A wallet that signs the compute API's `X-Auth-*` headers.
#[derive(Clone, Copy, Debug)]
pub enum Wallet<'a> {
    /// EIP-191 on Base.
    Evm(&'a LocalEvmSigner),
    /// ed25519 on Solana.
    Solana(&'a LocalSolanaSigner),
}

impl<'a> From<&'a LocalEvmSigner> for Wallet<'a> {
    fn from(signer: &'a LocalEvmSigner) -> Wallet<'a> {
        Wallet::Evm(signer)
    }
}

impl<'a> From<&'a LocalSolanaSigner> for Wallet<'a> {
    fn from(signer: &'a LocalSolanaSigner) -> Wallet<'a> {
        Wallet::Solana(signer)
    }
}

/// An HTTP client for one devnet. It signs with the system clock unless given another
/// ([`Client::with_clock`]): a test that moves the devnet's clock signs with the same one.
#[derive(Clone)]
pub struct Client {
    url: String,
    http: reqwest::Client,
    clock: std::sync::Arc<dyn Clock + Send + Sync>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for the devnet at `url`.
    pub fn new(url: impl Into<String>) -> Client {
        Client {
            url: url.into(),
            http: http(),
            clock: std::sync::Arc::new(Now),
        }
    }

    /// The same client, signing auth headers and payments at `clock`'s time.
    pub fn with_clock(mut self, clock: impl Clock + Send + Sync + 'static) -> Client {
        self.clock = std::sync::Arc::new(clock);
        self
    }

    /// A client for `devnet`.
    pub fn of(devnet: &Devnet) -> Client {
        Client::new(devnet.url())
    }

    /// The devnet's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `path` on the devnet.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// An unsigned request.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url_of(path))
    }

    /// `GET path`, unsigned.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    /// `POST path` with a JSON `body`, unsigned.
    pub fn post(&self, path: &str, body: &[u8]) -> RequestBuilder {
        self.request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body.to_vec())
    }

    /// A request with a JSON `body`, signed by `wallet` with the wallet-auth headers (a fresh
    /// nonce every time).
    ///
    /// # Errors
    /// When signing fails.
    pub fn signed<'a>(
        &self,
        wallet: impl Into<Wallet<'a>>,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<RequestBuilder> {
        let headers = match wallet.into() {
            Wallet::Evm(signer) => auth::sign_evm(
                signer,
                AuthChain::Base,
                method.as_str(),
                path,
                body,
                &*self.clock,
                &mut os_random,
            )?,
            Wallet::Solana(signer) => auth::sign_solana(
                signer,
                method.as_str(),
                path,
                body,
                &*self.clock,
                &mut os_random,
            )?,
        };
        let mut request = self
            .request(method, path)
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        Ok(request)
    }

    /// Sends [`Client::signed`]'s request.
    ///
    /// # Errors
    /// When signing or sending fails.
    pub async fn send_signed<'a>(
        &self,
        wallet: impl Into<Wallet<'a>>,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Result<Response> {
        Ok(self.signed(wallet, method, path, body)?.send().await?)
    }

    /// Asks for `path` with `body`, signed by `wallet`, and returns the 402's challenge.
    ///
    /// # Errors
    /// When signing or sending fails, or the answer carries no challenge.
    pub async fn quote<'a>(
        &self,
        wallet: impl Into<Wallet<'a>>,
        path: &str,
        body: &[u8],
    ) -> Result<Challenge> {
        challenge(self.send_signed(wallet, Method::POST, path, body).await?).await
    }

    /// Quotes `path` with `body` for `wallet` and signs a Base Sepolia `exact` payment for it
    /// at the client's clock: the header to send (and to send again).
    ///
    /// # Errors
    /// When the quote carries no Base Sepolia offer, or signing fails.
    pub async fn base_payment(
        &self,
        wallet: &LocalEvmSigner,
        path: &str,
        body: &[u8],
    ) -> Result<x402_core::PaymentHeader> {
        let challenge = self.quote(wallet, path, body).await?;
        let selected = PaymentPolicy::default()
            .networks([Network::BASE_SEPOLIA])
            .select(&challenge)?;
        Ok(evm::exact::pay(
            &selected,
            wallet,
            &*self.clock,
            &mut os_random,
        )?)
    }

    /// Sends a JSON call, signed by `wallet` when given, with `extra` headers.
    ///
    /// # Errors
    /// When signing or sending fails.
    pub async fn call(
        &self,
        wallet: Option<&LocalEvmSigner>,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Result<Response> {
        let bytes = body
            .as_ref()
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| Error::Status {
                what: path.to_owned(),
                status: reqwest::StatusCode::BAD_REQUEST,
                body: e.to_string(),
            })?
            .unwrap_or_default();
        let mut request = match wallet {
            Some(wallet) => self.signed(wallet, method, path, &bytes)?,
            None => self
                .request(method, path)
                .header("content-type", "application/json")
                .body(bytes),
        };
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        Ok(request.send().await?)
    }

    /// The credits of `wallet` (`GET /compute/credits/balance`, signed by it).
    ///
    /// # Errors
    /// When signing or sending fails, or the answer is not 2xx JSON.
    pub async fn credits<'a>(&self, wallet: impl Into<Wallet<'a>>) -> Result<Value> {
        let path = "/compute/credits/balance";
        let response = self.send_signed(wallet, Method::GET, path, b"").await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(Error::Status {
                what: format!("GET {path}"),
                status,
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| Error::Status {
            what: format!("GET {path}"),
            status,
            body: format!("{e}: {text}"),
        })
    }

    /// A signed JSON call that must succeed; returns its JSON answer.
    ///
    /// # Errors
    /// [`Error::Status`] on a non-2xx answer.
    pub async fn call_ok(
        &self,
        wallet: &LocalEvmSigner,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let what = format!("{method} {path}");
        let response = self.call(Some(wallet), method, path, body, &[]).await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(Error::Status {
                what,
                status,
                body: text,
            });
        }
        serde_json::from_str(&text).map_err(|e| Error::Status {
            what,
            status,
            body: format!("not JSON ({e}): {text}"),
        })
    }

    /// Asks for `path` signed by `wallet`, answers its 402 with a Base Sepolia `exact` payment
    /// sent without auth headers, and returns the paid answer.
    ///
    /// # Errors
    /// When the first answer is no challenge, or signing or sending fails.
    pub async fn pay_base(
        &self,
        wallet: &LocalEvmSigner,
        path: &str,
        body: Value,
    ) -> Result<Response> {
        let first = self
            .call(Some(wallet), Method::POST, path, Some(body.clone()), &[])
            .await?;
        let challenge = challenge(first).await?;
        let selected = PaymentPolicy::default()
            .networks([Network::BASE_SEPOLIA])
            .select(&challenge)?;
        let header = evm::exact::pay(&selected, wallet, &*self.clock, &mut os_random)?;
        self.call(
            None,
            Method::POST,
            path,
            Some(body),
            &[(header.name(), header.value())],
        )
        .await
    }
}

impl Client {
    /// Asks for `path` signed by the Solana `wallet`, answers its 402 with a Solana `exact`
    /// payment built on `recent_blockhash`, sent without auth headers, and returns the paid
    /// answer.
    ///
    /// # Errors
    /// When the first answer is no challenge, or signing or sending fails.
    pub async fn pay_solana(
        &self,
        wallet: &LocalSolanaSigner,
        recent_blockhash: [u8; 32],
        path: &str,
        body: Value,
    ) -> Result<Response> {
        let bytes = serde_json::to_vec(&body).map_err(|e| Error::Status {
            what: path.to_owned(),
            status: reqwest::StatusCode::BAD_REQUEST,
            body: e.to_string(),
        })?;
        let first = self.send_signed(wallet, Method::POST, path, &bytes).await?;
        let challenge = challenge(first).await?;
        let selected = PaymentPolicy::default()
            .networks([Network::SOLANA_DEVNET])
            .select(&challenge)?;
        let chain = x402_core::svm::SolanaChainState {
            recent_blockhash,
            decimals: 6,
            token_program: x402_core::svm::TokenProgram::Token,
        };
        let header = x402_core::svm::pay(&selected, wallet, &chain, &mut os_random)?;
        Ok(self
            .post(path, &bytes)
            .header(header.name(), header.value())
            .send()
            .await?)
    }
}

/// The challenge in `response` (a 402 or 412 with either form).
///
/// # Errors
/// When the response carries no challenge.
pub async fn challenge(response: Response) -> Result<Challenge> {
    let status = response.status().as_u16();
    // reqwest and x402-core share the `http` crate: the headers need no conversion.
    let headers = response.headers().clone();
    let body = response.bytes().await?;
    Ok(Challenge::from_response(status, &headers, &body)?)
}

/// The receipt header of `response`, if it has one.
///
/// # Errors
/// When the receipt header is unreadable.
pub fn receipt(response: &Response) -> Result<Option<Receipt>> {
    Ok(Receipt::from_headers(response.headers())?)
}
