//! A paying HTTP client for x402: a [`reqwest_middleware`] layer that pays a `402 Payment
//! Required` answer under a spend policy, and that cannot overspend, never pays twice and never
//! loses a payment.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo(payer: Arc<dyn x402_reqwest::Payer>, clock: Arc<dyn x402_core::Clock + Send + Sync>) {
//! let journal = Arc::new(x402_reqwest::MemoryJournal::new());
//! let http = x402_reqwest::Transport::default().client().expect("TLS set up");
//! let client = reqwest_middleware::ClientBuilder::new(http)
//!     .with(x402_reqwest::X402Middleware::new(
//!         payer,
//!         journal,
//!         clock,
//!         std::sync::Arc::new(|buf: &mut [u8]| buf.fill(4)), // your entropy source
//!         x402_reqwest::Config::default(),
//!     ))
//!     .build();
//! # }
//! ```
//!
//! What it does with a request:
//! 1. If the journal holds a pending payment for the same request (method, URL and body), it
//!    resends that signed payment: a payment whose outcome is unknown is never replaced by a
//!    new one.
//! 2. Otherwise it sends the request. On 402 (or 412) it reads the challenge with x402-core,
//!    selects an offer under [`Config::policy`] (by default at most $1 per payment, like the
//!    official clients), checks the rolling 24-hour [`Config::daily_budget`] against the
//!    journal, runs the [`BeforeSign`] hook (which may refuse), signs with the [`Payer`], and
//!    writes the payment to the [`PaymentJournal`] before it leaves.
//! 3. It sends the paid attempt, with the request's [`PaidAttempt`] hook applied to its
//!    headers. A transport error, a timeout, 429 or a 5xx resends the **same** signed payment
//!    ([`Config::retries`] times). A success records the receipt (`PAYMENT-RESPONSE`, or
//!    `X-PAYMENT-RESPONSE` for v1) in the journal and in the response's extensions
//!    (`response.extensions().get::<x402_core::Receipt>()`). A 402 whose receipt says
//!    `settlement_pending`, a duplicate being settled, or an answer lost after the payment
//!    left is an unknown outcome: the payment stays pending and the caller gets
//!    [`Error::Pending`].
//!
//! A v2 challenge that offers `payment-identifier` gets an id in the payment's unsigned
//! extensions, so a server answers a resend from its stored response.
//!
//! [`Transport`] builds the `reqwest::Client` underneath: https through rustls, a CA bundle,
//! proxies (loopback always bypassed) and timeouts longer than a settlement wait.

pub mod chain;
mod error;
pub mod journal;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use http::{Extensions, HeaderValue};
use reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{Middleware, Next};
use sha2::{Digest, Sha256};
use x402_core::challenge::Scheme;
use x402_core::extensions;
use x402_core::payload::PAYMENT_SIGNATURE;
use x402_core::{
    Challenge, Clock, EvmSigner, PaymentHeader, PaymentPayload, PaymentPolicy, Receipt, Selected,
    TokenAmount, UsdMicros,
};

pub use chain::{ChainCheck, OnChain};
pub use error::Error;
pub use journal::{Entry, EntryId, MemoryJournal, NewEntry, PaymentJournal, PaymentState};
pub use transport::{Transport, install_crypto_provider};

/// How the middleware pays.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which offers it pays, and how much. Default: x402-core's policy with a $1 cap per
    /// payment (the official clients' default); callers raise it for what they buy.
    pub policy: PaymentPolicy,
    /// At most this many dollars paid (or possibly paid) in any 24 hours, counted from the
    /// journal; `None`: no budget.
    pub daily_budget: Option<UsdMicros>,
    /// How many times the same signed payment is resent after a transport error, a timeout,
    /// 429 or a 5xx.
    pub retries: u32,
    /// The wait before the first resend; doubled each time.
    pub retry_delay: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            policy: PaymentPolicy::default().usd_cap(Some(UsdMicros::from_dollars(1))),
            daily_budget: None,
            retries: 3,
            retry_delay: Duration::from_millis(250),
        }
    }
}

/// What is about to be signed, for the [`BeforeSign`] hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The request: method and URL.
    pub operation: String,
    /// The network, CAIP-2.
    pub network: String,
    /// The asset.
    pub asset: String,
    /// The amount, atomic units.
    pub amount: TokenAmount,
    /// The amount in dollars, when the asset is a known USD stablecoin.
    pub usd: Option<UsdMicros>,
    /// The recipient.
    pub pay_to: String,
    /// What the server says the payment is for.
    pub description: Option<String>,
}

/// Runs before a payment is signed; an `Err` (its reason) refuses it. The CLI asks the user
/// here.
pub type BeforeSign = Arc<dyn Fn(&Quote) -> Result<(), String> + Send + Sync>;

/// A request extension: rebuilds the headers of the paid attempt (for example, drops wallet
/// authentication whose nonce the unpaid attempt spent, or signs it afresh).
#[derive(Clone)]
pub struct PaidAttempt(pub Arc<dyn Fn(&mut http::HeaderMap) + Send + Sync>);

impl std::fmt::Debug for PaidAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PaidAttempt(..)")
    }
}

/// A signed payment.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The header to send (its value is redacted in `Debug`).
    pub header: PaymentHeader,
    /// What makes it unique on chain (the authorization nonce, …), for the journal.
    pub identity: String,
}

/// A request extension narrowing which offers may be paid, by network, for this request only
/// (on top of [`Config::policy`]): a machines call asked on `solana` never pays an EVM offer.
#[derive(Clone)]
pub struct OfferFilter(pub Arc<dyn Fn(&x402_core::Network) -> bool + Send + Sync>);

impl std::fmt::Debug for OfferFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OfferFilter")
    }
}

/// What signs a selected offer.
#[async_trait::async_trait]
pub trait Payer: Send + Sync {
    /// Signs `selected`.
    ///
    /// # Errors
    /// [`Error::Signing`] when it cannot.
    async fn pay(&self, selected: &Selected<'_>) -> Result<Signed, Error>;
}

/// A source of random bytes (payment nonces): the caller's, never read from the OS here.
pub type SharedEntropy = Arc<dyn Fn(&mut [u8]) + Send + Sync>;

/// The RPC endpoint configured for `network`, or why a payment there needs one.
fn endpoint_for<U: Clone>(
    endpoints: &[(x402_core::Network, U)],
    network: &x402_core::Network,
    why: &str,
) -> Result<U, Error> {
    endpoints
        .iter()
        .find(|(n, _)| n == network)
        .map(|(_, url)| url.clone())
        .ok_or_else(|| {
            Error::Signing(x402_core::Error::Signing(format!(
                "{why}: give an RPC endpoint for {network}"
            )))
        })
}

/// Reads a token's ERC-2612 permit nonce over JSON-RPC (alloy), one RPC endpoint per
/// network: what a `permit` payment needs from the chain.
#[derive(Clone, Debug, Default)]
pub struct PermitNonces {
    endpoints: Vec<(x402_core::Network, reqwest::Url)>,
    http: Option<reqwest::Client>,
}

alloy::sol! {
    #[sol(rpc)]
    interface Erc2612 {
        function nonces(address owner) external view returns (uint256);
    }
}

impl PermitNonces {
    /// No endpoints: `permit` offers cannot be paid.
    pub fn new() -> PermitNonces {
        PermitNonces::default()
    }

    /// Reads `network`'s nonces from the JSON-RPC endpoint at `url`.
    #[must_use]
    pub fn endpoint(mut self, network: x402_core::Network, url: reqwest::Url) -> PermitNonces {
        self.endpoints.push((network, url));
        self
    }

    /// Calls the endpoints through `http` (a [`Transport`]'s client: its CA bundle, proxy and
    /// timeouts) rather than a default client.
    #[must_use]
    pub fn client(mut self, http: reqwest::Client) -> PermitNonces {
        self.http = Some(http);
        self
    }

    /// `owner`'s permit nonce on `token`.
    ///
    /// # Errors
    /// [`Error::Signing`] when no endpoint serves `network` or the call fails.
    pub async fn nonce(
        &self,
        network: &x402_core::Network,
        token: x402_core::Address,
        owner: x402_core::Address,
    ) -> Result<alloy::primitives::U256, Error> {
        let cannot = |why: String| Error::Signing(x402_core::Error::Signing(why));
        let url = endpoint_for(
            &self.endpoints,
            network,
            "a permit needs its nonce from the chain",
        )?;
        let provider = match &self.http {
            Some(http) => {
                alloy::providers::ProviderBuilder::new().connect_reqwest(http.clone(), url)
            }
            None => {
                install_crypto_provider();
                alloy::providers::ProviderBuilder::new().connect_http(url)
            }
        };
        Erc2612::new(token, provider)
            .nonces(owner)
            .call()
            .await
            .map_err(|e| cannot(format!("reading the permit nonce on {network}: {e}")))
    }
}

/// Pays EVM offers with a local key: `exact` (EIP-3009) and, with [`PermitNonces`], `permit`
/// (ERC-2612).
pub struct EvmPayer {
    signer: Arc<dyn EvmSigner + Send + Sync>,
    clock: Arc<dyn Clock + Send + Sync>,
    entropy: SharedEntropy,
    nonces: PermitNonces,
}

impl std::fmt::Debug for EvmPayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmPayer")
            .field("address", &self.signer.address())
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}

impl EvmPayer {
    /// A payer signing with `signer` at `clock`'s time, with nonces from `entropy`.
    pub fn new(
        signer: Arc<dyn EvmSigner + Send + Sync>,
        clock: Arc<dyn Clock + Send + Sync>,
        entropy: SharedEntropy,
    ) -> EvmPayer {
        EvmPayer {
            signer,
            clock,
            entropy,
            nonces: PermitNonces::new(),
        }
    }

    /// Pays `permit` offers too, reading nonces through `nonces`.
    #[must_use]
    pub fn permits(mut self, nonces: PermitNonces) -> EvmPayer {
        self.nonces = nonces;
        self
    }
}

#[async_trait::async_trait]
impl Payer for EvmPayer {
    async fn pay(&self, selected: &Selected<'_>) -> Result<Signed, Error> {
        let requirement = selected.requirement();
        let network = requirement.network();
        let header = match (requirement.scheme(), network.is_solana()) {
            (Scheme::Exact, false) => {
                let mut entropy = |buf: &mut [u8]| (self.entropy)(buf);
                x402_core::evm::exact::pay(selected, &*self.signer, &*self.clock, &mut entropy)
                    .map_err(Error::Signing)?
            }
            (Scheme::Permit, false) => {
                let x402_core::AssetId::Evm(token) = requirement.asset() else {
                    return Err(Error::Signing(x402_core::Error::Signing(format!(
                        "a permit on {network} for a non-EVM asset"
                    ))));
                };
                let nonce = self
                    .nonces
                    .nonce(network, token, self.signer.address())
                    .await?;
                x402_core::evm::permit::pay(selected, &*self.signer, nonce, &*self.clock)
                    .map_err(Error::Signing)?
            }
            _ => {
                return Err(Error::Signing(x402_core::Error::Signing(format!(
                    "this payer signs EVM `exact` and `permit`, not `{}` on {network}",
                    requirement.scheme()
                ))));
            }
        };
        let identity = identity_of(&header).unwrap_or_default();
        Ok(Signed { header, identity })
    }
}

/// Pays Solana `exact` offers with a local key: the recent blockhash, and the mint's owner
/// program and decimals, come from the official RPC client, one endpoint per network.
#[cfg(feature = "solana")]
pub struct SolanaPayer {
    signer: Arc<x402_core::LocalSolanaSigner>,
    entropy: SharedEntropy,
    endpoints: Vec<(x402_core::Network, String)>,
}

#[cfg(feature = "solana")]
impl std::fmt::Debug for SolanaPayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolanaPayer")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "solana")]
impl SolanaPayer {
    /// A payer signing with `signer`, with memos from `entropy`, and no endpoint yet.
    pub fn new(signer: Arc<x402_core::LocalSolanaSigner>, entropy: SharedEntropy) -> SolanaPayer {
        SolanaPayer {
            signer,
            entropy,
            endpoints: Vec::new(),
        }
    }

    /// Reads `network`'s chain state from the JSON-RPC endpoint at `url`.
    #[must_use]
    pub fn endpoint(mut self, network: x402_core::Network, url: impl Into<String>) -> SolanaPayer {
        self.endpoints.push((network, url.into()));
        self
    }
}

#[cfg(feature = "solana")]
#[async_trait::async_trait]
impl Payer for SolanaPayer {
    async fn pay(&self, selected: &Selected<'_>) -> Result<Signed, Error> {
        use solana_rpc_client::nonblocking::rpc_client::RpcClient;
        use spl_token::solana_program::program_pack::Pack as _;
        let cannot = |why: String| Error::Signing(x402_core::Error::Signing(why));
        let requirement = selected.requirement();
        let network = requirement.network();
        let x402_core::AssetId::Solana(mint) = requirement.asset() else {
            return Err(cannot(format!(
                "this payer signs Solana `exact`, not `{}` on {network}",
                requirement.scheme()
            )));
        };
        let url = endpoint_for(
            &self.endpoints,
            network,
            "a Solana payment needs a recent blockhash",
        )?;
        let rpc = RpcClient::new(url);
        let blockhash = rpc
            .get_latest_blockhash()
            .await
            .map_err(|e| cannot(format!("getLatestBlockhash on {network}: {e}")))?;
        let account = rpc
            .get_account(&solana_pubkey::Pubkey::from(mint))
            .await
            .map_err(|e| cannot(format!("reading the mint {mint} on {network}: {e}")))?;
        let token_program = [
            x402_core::svm::TokenProgram::Token,
            x402_core::svm::TokenProgram::Token2022,
        ]
        .into_iter()
        .find(|p| p.id().to_bytes() == account.owner.to_bytes())
        .ok_or_else(|| {
            cannot(format!(
                "{mint} is not a mint of the Token or Token-2022 program"
            ))
        })?;
        let base = account
            .data
            .get(..spl_token::state::Mint::LEN)
            .and_then(|data| spl_token::state::Mint::unpack_from_slice(data).ok())
            .ok_or_else(|| cannot(format!("{mint} holds no readable mint")))?;
        let chain = x402_core::svm::SolanaChainState {
            recent_blockhash: blockhash.to_bytes(),
            decimals: base.decimals,
            token_program,
        };
        let mut entropy = |buf: &mut [u8]| (self.entropy)(buf);
        let header = x402_core::svm::pay(selected, &*self.signer, &chain, &mut entropy)
            .map_err(Error::Signing)?;
        // A Solana payment is unique by its transaction; its signature is the identity.
        let identity = PaymentPayload::from_header_value(header.value())
            .ok()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p.payload_json().get()).ok())
            .and_then(|p| {
                p["transaction"]
                    .as_str()
                    .map(|t| t.chars().take(24).collect())
            })
            .unwrap_or_default();
        Ok(Signed { header, identity })
    }
}

/// Pays EVM offers with one payer and Solana offers with another.
#[derive(Default)]
pub struct Payers {
    evm: Option<Arc<dyn Payer>>,
    solana: Option<Arc<dyn Payer>>,
}

impl std::fmt::Debug for Payers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payers")
            .field("evm", &self.evm.is_some())
            .field("solana", &self.solana.is_some())
            .finish()
    }
}

impl Payers {
    /// No payer yet.
    pub fn new() -> Payers {
        Payers::default()
    }
    /// EVM offers go to `payer`.
    #[must_use]
    pub fn evm(mut self, payer: Arc<dyn Payer>) -> Payers {
        self.evm = Some(payer);
        self
    }
    /// Solana offers go to `payer`.
    #[must_use]
    pub fn solana(mut self, payer: Arc<dyn Payer>) -> Payers {
        self.solana = Some(payer);
        self
    }
}

#[async_trait::async_trait]
impl Payer for Payers {
    async fn pay(&self, selected: &Selected<'_>) -> Result<Signed, Error> {
        let network = selected.requirement().network();
        let payer = match network.is_solana() {
            true => self.solana.as_ref(),
            false => self.evm.as_ref(),
        };
        match payer {
            Some(payer) => payer.pay(selected).await,
            None => Err(Error::Signing(x402_core::Error::Signing(format!(
                "no key for {network}: give a {} key",
                if network.is_solana() { "Solana" } else { "EVM" }
            )))),
        }
    }
}

/// The authorization or permit nonce in a payment header.
fn identity_of(header: &PaymentHeader) -> Option<String> {
    let payload = PaymentPayload::from_header_value(header.value()).ok()?;
    let json: serde_json::Value = serde_json::from_str(payload.payload_json().get()).ok()?;
    let nonce = json["authorization"]["nonce"]
        .as_str()
        .or_else(|| json["permit"]["nonce"].as_str())?;
    Some(nonce.to_owned())
}

/// The middleware. See the crate docs.
pub struct X402Middleware {
    payer: Arc<dyn Payer>,
    journal: Arc<dyn PaymentJournal>,
    clock: Arc<dyn Clock + Send + Sync>,
    entropy: SharedEntropy,
    config: Config,
    before_sign: Option<BeforeSign>,
}

impl std::fmt::Debug for X402Middleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X402Middleware")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const DAY_MS: u64 = 24 * 3_600_000;

impl X402Middleware {
    /// Pays with `payer`, writes to `journal`, reads the time from `clock` and payment ids
    /// from `entropy`.
    pub fn new(
        payer: Arc<dyn Payer>,
        journal: Arc<dyn PaymentJournal>,
        clock: Arc<dyn Clock + Send + Sync>,
        entropy: SharedEntropy,
        config: Config,
    ) -> X402Middleware {
        X402Middleware {
            payer,
            journal,
            clock,
            entropy,
            config,
            before_sign: None,
        }
    }

    /// Runs `hook` before every signature; it may refuse.
    #[must_use]
    pub fn before_sign(mut self, hook: BeforeSign) -> X402Middleware {
        self.before_sign = Some(hook);
        self
    }

    /// Selects, checks the budget and the hook, signs and journals the payment for a 402.
    async fn sign(
        &self,
        challenge: &Challenge,
        described: Described,
        fingerprint: String,
        filter: Option<&OfferFilter>,
    ) -> Result<(EntryId, &'static str, String), Error> {
        let operation = described.operation;
        let narrowed;
        let policy = match filter {
            None => &self.config.policy,
            Some(OfferFilter(keep)) => {
                let offered: Vec<x402_core::Network> = challenge
                    .offers()
                    .iter()
                    .filter_map(|offer| offer.requirement().ok())
                    .map(|requirement| requirement.network().clone())
                    .filter(|network| keep(network))
                    .collect();
                let preferred = self.config.policy.preferred_networks();
                let allowed: Vec<x402_core::Network> = match preferred.is_empty() {
                    true => offered,
                    false => preferred
                        .iter()
                        .filter(|n| offered.contains(n))
                        .cloned()
                        .collect(),
                };
                if allowed.is_empty() {
                    return Err(Error::Declined(
                        "the server offers no payment on the network asked for".into(),
                    ));
                }
                narrowed = self.config.policy.clone().networks(allowed);
                &narrowed
            }
        };
        let selected = policy.select(challenge).map_err(Error::Policy)?;
        let requirement = selected.requirement();
        let usd = selected
            .asset()
            .and_then(|asset| asset.usd_value(requirement.amount()));
        let now_ms = self.clock.now_unix_ms();
        if let Some(budget) = self.config.daily_budget {
            let Some(amount) = usd else {
                return Err(Error::Declined(format!(
                    "a daily budget is set and the dollar value of {} of {} is unknown",
                    requirement.amount(),
                    requirement.asset()
                )));
            };
            let spent = self.journal.spent_since(now_ms.saturating_sub(DAY_MS))?;
            let total = spent.0.checked_add(amount.0);
            if total.is_none_or(|total| total > budget.0) {
                return Err(Error::OverBudget {
                    amount,
                    spent,
                    budget,
                });
            }
        }
        let quote = Quote {
            operation: operation.clone(),
            network: requirement.network().to_string(),
            asset: requirement.asset().to_string(),
            amount: requirement.amount(),
            usd,
            pay_to: requirement.pay_to().to_string(),
            description: requirement.description().map(str::to_owned),
        };
        if let Some(hook) = &self.before_sign {
            hook(&quote).map_err(Error::Declined)?;
        }
        let mut signed = self.payer.pay(&selected).await?;
        // With `payment-identifier` offered (v2), an id goes with the payment, in its unsigned
        // extensions; it stays with the operation because a retry resends this very header.
        let mut payment_id = None;
        if extensions::offered(challenge).is_some() && signed.header.name() == PAYMENT_SIGNATURE {
            let mut entropy = |buf: &mut [u8]| (self.entropy)(buf);
            let id = extensions::new_payment_id(&mut entropy);
            signed.header =
                extensions::with_payment_id(&signed.header, &id).map_err(Error::Signing)?;
            payment_id = Some(id.to_string());
        }
        let value = signed.header.value().to_owned();
        let id = self.journal.record(NewEntry {
            operation,
            fingerprint,
            network: quote.network,
            asset: quote.asset,
            amount: quote.amount,
            usd,
            pay_to: quote.pay_to,
            identity: signed.identity,
            payment_id,
            header_name: signed.header.name(),
            header_value: value.clone(),
            body: described.body.unwrap_or_default(),
            content_type: described.content_type,
            created_ms: now_ms,
        })?;
        tracing::info!(entry = %id, network = %requirement.network(), amount = %requirement.amount(), "payment signed and journaled");
        Ok((id, signed.header.name(), value))
    }

    /// Sends the paid attempt, resending the same payment after transient failures.
    async fn send_paid(
        &self,
        entry: EntryId,
        (name, value): (&'static str, &str),
        replay: &Request,
        extensions: &mut Extensions,
        next: Next<'_>,
        resent: bool,
    ) -> reqwest_middleware::Result<Response> {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::Journal(format!(
                "payment {entry}: its header is not a valid header value"
            ))
        })?;
        let rebuild = extensions.get::<PaidAttempt>().cloned();
        let mut delay = self.config.retry_delay;
        let mut attempt = 0;
        loop {
            let mut request = replay.try_clone().ok_or(Error::StreamingBody)?;
            if let Some(PaidAttempt(rebuild)) = &rebuild {
                rebuild(request.headers_mut());
            }
            request.headers_mut().insert(name, value.clone());
            let outcome = next.clone().run(request, extensions).await;
            let transient = match &outcome {
                Ok(response) => {
                    response.status() == StatusCode::TOO_MANY_REQUESTS
                        || response.status().is_server_error()
                }
                Err(_) => true,
            };
            if !transient || attempt >= self.config.retries {
                return match outcome {
                    Ok(response) => self.answered(entry, response, resent || attempt > 0).await,
                    Err(error) => {
                        tracing::warn!(%entry, %error, "the answer to a payment was lost; it stays pending");
                        Err(Error::Pending {
                            entry,
                            transaction: None,
                        }
                        .into())
                    }
                };
            }
            attempt += 1;
            tracing::info!(%entry, attempt, "resending the same payment after a transient failure");
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }

    /// Records what the server answered to a payment, and returns the response or the error.
    async fn answered(
        &self,
        entry: EntryId,
        response: Response,
        resent: bool,
    ) -> reqwest_middleware::Result<Response> {
        Ok(record(&*self.journal, entry, response, resent).await?)
    }
}

/// Records in `journal` what the server answered to payment `entry`, and returns the response
/// (with its receipt in its extensions) or the error.
///
/// # Errors
/// [`Error::Pending`], [`Error::PaidWithoutAnswer`], [`Error::Rejected`] as the answer says;
/// [`Error::Journal`].
pub async fn record_answer(
    journal: &dyn PaymentJournal,
    entry: EntryId,
    response: Response,
) -> Result<Response, Error> {
    record(journal, entry, response, false).await
}

/// [`record_answer`]; `resent`: this answer is to the payment sent again (a retry, or a
/// pending payment resent), where a refusal proves nothing: the first send may have settled
/// and a server may only say "already used". Such a refusal leaves the payment pending for
/// the chain to decide (`x402c payments reconcile --rpc`).
async fn record(
    journal: &dyn PaymentJournal,
    entry: EntryId,
    mut response: Response,
    resent: bool,
) -> Result<Response, Error> {
    let receipt = Receipt::from_headers(response.headers()).ok().flatten();
    let status = response.status();
    if status.is_success() {
        let transaction = receipt
            .as_ref()
            .map(|r| r.transaction.clone())
            .unwrap_or_default();
        journal.update(entry, PaymentState::Settled { transaction })?;
        if let Some(receipt) = receipt {
            response.extensions_mut().insert(receipt);
        }
        return Ok(response);
    }
    let reason = receipt.as_ref().and_then(|r| r.error_reason.clone());
    let transaction = receipt
        .as_ref()
        .map(|r| r.transaction.clone())
        .filter(|t| !t.is_empty());
    let paid = receipt.as_ref().is_some_and(|r| r.success);
    let error = match (status.as_u16(), reason.as_deref()) {
        (402, _) if paid => {
            let transaction = transaction.unwrap_or_default();
            journal.update(
                entry,
                PaymentState::Settled {
                    transaction: transaction.clone(),
                },
            )?;
            Error::PaidWithoutAnswer { entry, transaction }
        }
        // Being settled, or sent and not confirmed: not known yet.
        (402, Some("settlement_pending" | "duplicate_settlement")) => {
            journal.update(
                entry,
                PaymentState::Pending {
                    transaction: transaction.clone(),
                },
            )?;
            Error::Pending { entry, transaction }
        }
        (402 | 412, _) if resent => {
            tracing::warn!(%entry, ?reason, "a resent payment was refused; it may have settled when first sent, so it stays pending");
            journal.update(
                entry,
                PaymentState::Pending {
                    transaction: transaction.clone(),
                },
            )?;
            Error::Pending { entry, transaction }
        }
        (402 | 412, _) => {
            let headers = response.headers().clone();
            let body = response.bytes().await.unwrap_or_default();
            let reason = reason
                .or_else(|| {
                    Challenge::from_response(status.as_u16(), &headers, &body)
                        .ok()
                        .and_then(|c| c.error().map(str::to_owned))
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            journal.update(
                entry,
                PaymentState::Rejected {
                    reason: reason.clone(),
                },
            )?;
            Error::Rejected {
                status: status.as_u16(),
                reason,
            }
        }
        // Any other answer after the payment left (after the resends): not known.
        _ => Error::Pending { entry, transaction },
    };
    Err(error)
}

/// What identifies an operation: SHA-256 of its method, URL and body. The same request is the
/// same operation, whose pending payment is resent rather than replaced.
pub fn fingerprint(method: &str, url: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(url.as_bytes());
    hasher.update([0]);
    hasher.update(body);
    format!("{:x}", hasher.finalize())
}

/// What the journal keeps of a request: its operation (method and URL), its body (`None`
/// for a streaming body) and its content type.
struct Described {
    operation: String,
    body: Option<Vec<u8>>,
    content_type: Option<String>,
}

impl Described {
    fn of(request: &Request) -> Described {
        let body = match request.body() {
            None => Some(Vec::new()),
            Some(body) => body.as_bytes().map(<[u8]>::to_vec),
        };
        Described {
            operation: format!("{} {}", request.method(), request.url()),
            body,
            content_type: request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    fn fingerprint(&self) -> Option<String> {
        let (method, url) = self.operation.split_once(' ')?;
        Some(fingerprint(method, url, self.body.as_deref()?))
    }
}

/// Resends a journaled payment with the request it paid for (method, URL, body, content type;
/// no other header) and records the answer: how `x402c payments reconcile` learns the outcome
/// of a pending payment. A server settles each payment at most once, so this never pays
/// twice.
///
/// # Errors
/// As [`record_answer`]; [`Error::Pending`] when the server cannot be reached.
pub async fn resend(
    client: &reqwest::Client,
    journal: &dyn PaymentJournal,
    entry: &Entry,
) -> Result<Response, Error> {
    let payment = &entry.payment;
    let (method, url) = payment
        .operation
        .split_once(' ')
        .ok_or_else(|| Error::Journal(format!("payment {}: no method and URL", entry.id)))?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| Error::Journal(format!("payment {}: bad method {method}", entry.id)))?;
    let mut request = client
        .request(method, url)
        .header(payment.header_name, payment.header_value.as_str())
        .body(payment.body.clone());
    if let Some(content_type) = &payment.content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type.as_str());
    }
    match request.send().await {
        Ok(response) => record(journal, entry.id, response, true).await,
        Err(error) => {
            tracing::warn!(entry = %entry.id, %error, "cannot reach the server; still pending");
            Err(Error::Pending {
                entry: entry.id,
                transaction: None,
            })
        }
    }
}

#[async_trait::async_trait]
impl Middleware for X402Middleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let described = Described::of(&request);
        let fingerprint = described.fingerprint();
        let replay = request.try_clone();
        // An operation whose payment's outcome is unknown: resend that payment.
        if let (Some(fingerprint), Some(replay)) = (&fingerprint, &replay)
            && let Some(pending) = self.journal.pending_for(fingerprint)?
        {
            tracing::info!(entry = %pending.id, "resending the pending payment of this request");
            let header = (
                pending.payment.header_name,
                pending.payment.header_value.as_str(),
            );
            return self
                .send_paid(pending.id, header, replay, extensions, next, true)
                .await;
        }
        let response = next.clone().run(request, extensions).await?;
        let status = response.status().as_u16();
        if status != 402 && status != 412 {
            return Ok(response);
        }
        let (Some(replay), Some(fingerprint)) = (replay, fingerprint) else {
            return Err(Error::StreamingBody.into());
        };
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        let challenge = Challenge::from_response(status, &headers, &body).map_err(Error::Policy)?;
        let filter = extensions.get::<OfferFilter>().cloned();
        let (entry, name, value) = self
            .sign(&challenge, described, fingerprint, filter.as_ref())
            .await?;
        self.send_paid(entry, (name, &value), &replay, extensions, next, false)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;
    use x402_core::challenge::{PaymentRequired, RequirementSpec, ResourceInfo};
    use x402_core::{FixedClock, LocalEvmSigner, Network, TokenAmount};

    use super::*;

    /// Counts the payments it is asked to sign, and signs them.
    struct Counting {
        calls: AtomicUsize,
        payer: EvmPayer,
    }

    #[async_trait::async_trait]
    impl Payer for Counting {
        async fn pay(&self, selected: &Selected<'_>) -> Result<Signed, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.payer.pay(selected).await
        }
    }

    fn challenge(offers: &[(Network, u64)]) -> Challenge {
        let required = PaymentRequired {
            resource: ResourceInfo {
                url: "http://127.0.0.1/paid".into(),
                description: None,
                mime_type: None,
            },
            error: String::new(),
            accepts: offers
                .iter()
                .map(|(network, amount)| {
                    RequirementSpec::exact(
                        network.clone(),
                        TokenAmount::from_u64(*amount),
                        "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
                            .parse()
                            .unwrap_or_else(|_| unreachable!("a valid address")),
                    )
                    .unwrap_or_else(|| unreachable!("every network here has a default asset"))
                })
                .collect(),
            extensions: serde_json::Map::new(),
        };
        Challenge::from_v2_header(&required.to_v2_header())
            .unwrap_or_else(|e| unreachable!("a challenge we wrote reads back: {e}"))
    }

    proptest! {
        /// Whatever the offers, the networks allowed, the cap and the budget, nothing is signed
        /// (nor journaled) unless an offer passes all of them, and what is signed never
        /// exceeds the cap or the budget.
        #[test]
        fn refusals_come_before_any_signature(
            offers in proptest::collection::vec(
                (prop_oneof![Just(Network::BASE), Just(Network::BASE_SEPOLIA)], 0u64..5_000_000),
                1..4,
            ),
            allow_base in any::<bool>(),
            cap in 0u64..4_000_000,
            budget in proptest::option::of(0u64..6_000_000),
            spent in 0u64..3_000_000,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build()
                .unwrap_or_else(|e| unreachable!("a runtime: {e}"));
            let clock: Arc<dyn Clock + Send + Sync> = Arc::new(FixedClock::from_unix(1_800_000_000));
            let signer = LocalEvmSigner::from_bytes(&[9; 32])
                .unwrap_or_else(|_| unreachable!("a valid key"));
            let counting = Arc::new(Counting {
                calls: AtomicUsize::new(0),
                payer: EvmPayer::new(Arc::new(signer), clock.clone(), Arc::new(|b: &mut [u8]| b.fill(3))),
            });
            let journal = Arc::new(MemoryJournal::new());
            if spent > 0 {
                journal.record(NewEntry {
                    operation: "GET http://earlier/".into(),
                    fingerprint: "earlier".into(),
                    network: "eip155:84532".into(),
                    asset: String::new(),
                    amount: TokenAmount::from_u64(spent),
                    usd: Some(UsdMicros(spent)),
                    pay_to: String::new(),
                    identity: String::new(),
                    payment_id: None,
                    header_name: "X-PAYMENT",
                    header_value: String::new(),
                    body: Vec::new(),
                    content_type: None,
                    created_ms: 1_800_000_000_000 - 1_000,
                }).unwrap_or_else(|e| unreachable!("{e}"));
            }
            let networks = if allow_base { vec![Network::BASE, Network::BASE_SEPOLIA] } else { vec![Network::BASE_SEPOLIA] };
            let middleware = X402Middleware::new(
                counting.clone(),
                journal.clone(),
                clock,
                Arc::new(|b: &mut [u8]| b.fill(5)),
                Config {
                    policy: PaymentPolicy::default().networks(networks.clone()).usd_cap(Some(UsdMicros(cap))),
                    daily_budget: budget.map(UsdMicros),
                    ..Config::default()
                },
            );
            let challenge = challenge(&offers);
            let described = Described { operation: "GET http://127.0.0.1/paid".into(), body: Some(Vec::new()), content_type: None };
            let signed = runtime.block_on(middleware.sign(&challenge, described, "now".into(), None));
            // What the policy chooses: the most preferred network, then the first offer.
            let chosen = offers
                .iter()
                .filter(|(network, amount)| networks.contains(network) && *amount <= cap)
                .min_by_key(|(network, _)| networks.iter().position(|n| n == network))
                .map(|(_, amount)| *amount);
            let calls = counting.calls.load(Ordering::SeqCst);
            match signed {
                Ok(_) => {
                    prop_assert_eq!(calls, 1);
                    let entry = journal.entries().unwrap_or_default().pop().unwrap_or_else(|| unreachable!());
                    let paid = entry.payment.usd.map_or(0, |u| u.0);
                    prop_assert_eq!(Some(paid), chosen);
                    prop_assert!(paid <= cap);
                    if let Some(budget) = budget {
                        prop_assert!(spent + paid <= budget);
                    }
                }
                Err(error) => {
                    prop_assert_eq!(calls, 0, "signed before refusing: {}", error);
                    prop_assert_eq!(journal.entries().unwrap_or_default().len(), usize::from(spent > 0));
                    let over_budget = budget.zip(chosen).is_some_and(|(b, c)| spent + c > b);
                    prop_assert!(chosen.is_none() || over_budget, "refused {:?}: {}", chosen, error);
                }
            }
        }
    }
}
