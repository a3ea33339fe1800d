//! A typed client for the machines API (`compute.x402layer.cc`, and the local devnet that
//! imitates it): plans, regions and OS images; provision, list, wait for, extend, resize and
//! destroy GPU/VPS instances; one-time passwords, API keys and prepaid credits.
//!
//! Payments go through [`x402_reqwest`]: under a spend cap ($500 per payment by default, the
//! seeds' `COMPUTE_MAX_SPEND_USD`) and an optional daily budget, written to a journal before
//! they leave, never signed twice for one operation. Provision and extend are paid with x402
//! on the network the caller names (the API's own `network` field: `base`, `solana`,
//! `megaeth`, `robinhood`) or from credits; their paid retry carries no wallet-auth headers
//! (the first request spent their nonce), while a top-up's paid retry is signed afresh.
//!
//! The wire facts are in `shared/reference/compute-api.md`; this crate reads no environment,
//! file or terminal: its caller passes a [`Config`] and the [`Parts`].

mod auth;
mod error;
pub mod types;

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;
use x402_core::{Clock, UsdMicros};
use x402_reqwest::{BeforeSign, PaidAttempt, Payer, PaymentJournal};

pub use auth::{API_KEY_HEADER, ApiKey, Auth, Ows, WALLET_AUTH_HEADERS, resolve_chain};
pub use error::Error;
pub use types::*;

/// The public service.
pub const DEFAULT_URL: &str = "https://compute.x402layer.cc";

/// The default cap per payment for machines operations: $500, the seeds'
/// `COMPUTE_MAX_SPEND_USD`.
pub const DEFAULT_MAX_SPEND: UsdMicros = UsdMicros::from_dollars(500);

/// The networks a payment may be asked on (the API's `network` field).
pub const NETWORKS: [&str; 4] = ["base", "solana", "megaeth", "robinhood"];

/// Settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The API's base URL.
    pub url: reqwest::Url,
    /// The most one payment may cost.
    pub max_spend: UsdMicros,
    /// The most all payments may cost in any 24 hours.
    pub daily_budget: Option<UsdMicros>,
}

impl Config {
    /// The service at `url`, with the default cap and no daily budget.
    pub fn new(url: reqwest::Url) -> Config {
        Config {
            url,
            max_spend: DEFAULT_MAX_SPEND,
            daily_budget: None,
        }
    }
}

/// What the client is built from.
pub struct Parts {
    /// The HTTP client underneath (an [`x402_reqwest::Transport`]'s).
    pub http: reqwest::Client,
    /// Who pays with x402; `None`: x402 payments are refused (credits still work).
    pub payer: Option<Arc<dyn Payer>>,
    /// Where payments are written before they leave.
    pub journal: Arc<dyn PaymentJournal>,
    /// How requests are authenticated.
    pub auth: Auth,
    /// Time, for signatures.
    pub clock: Arc<dyn Clock + Send + Sync>,
    /// Randomness, for nonces.
    pub entropy: x402_reqwest::SharedEntropy,
    /// Runs before a payment is signed; may refuse (a CLI asks its user).
    pub before_sign: Option<BeforeSign>,
}

/// How an operation is paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pay {
    /// x402 on the API's `network` (`base`, `solana`, `megaeth`, `robinhood`).
    X402(String),
    /// From prepaid credits (needs auth).
    Credits,
}

/// What a payment request's paid retry does with the first attempt's auth headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Drops the wallet-auth headers (provision, extend: their nonce is spent).
    WithoutWalletAuth,
    /// Signs again with a fresh nonce (top-up, an auth-required call).
    Resigned,
}

/// The client.
pub struct Client {
    url: reqwest::Url,
    http: reqwest::Client,
    paying: Option<reqwest_middleware::ClientWithMiddleware>,
    auth: Auth,
    clock: Arc<dyn Clock + Send + Sync>,
    entropy: x402_reqwest::SharedEntropy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// `network` as the API names it, checked.
fn api_network(network: &str) -> Result<&'static str, Error> {
    NETWORKS
        .iter()
        .find(|n| n.eq_ignore_ascii_case(network.trim()))
        .copied()
        .ok_or_else(|| {
            Error::Invalid(format!(
                "`{network}` is not a network the machines API takes: base, solana, megaeth or robinhood"
            ))
        })
}

/// Whether an offer on `offered` answers a request for the API's `network`. The server says
/// which chain its name means (the devnet serves `base` on Base Sepolia), so a name stands for
/// its mainnet and its test networks: `base` 8453 or 84532, `megaeth` 4326 or 6342,
/// `robinhood` 4663 (reference §9.2), `solana` any Solana cluster. Nothing else is paid.
fn offer_matches(network: &str, offered: &x402_core::Network) -> bool {
    match network {
        "solana" => offered.is_solana(),
        name => {
            let ids: &[u64] = match name {
                "base" => &[8453, 84532],
                "megaeth" => &[4326, 6342],
                "robinhood" => &[4663],
                _ => &[],
            };
            offered.chain_id().is_some_and(|id| ids.contains(&id))
        }
    }
}

/// The message of an error answer: `{"error":"…"}`, `{"error":{"message":…}}`, or the text.
fn message_of(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        if let Some(text) = json["error"].as_str() {
            return text.to_owned();
        }
        if let Some(text) = json["error"]["message"].as_str() {
            return text.to_owned();
        }
        if let Some(text) = json["message"].as_str() {
            return text.to_owned();
        }
    }
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.starts_with('<') {
        return "the server answered HTML, not the API's JSON: is the URL the machines API?".into();
    }
    trimmed.chars().take(300).collect()
}

impl Client {
    /// A client for the service `config` names.
    pub fn new(config: Config, parts: Parts) -> Client {
        let paying = parts.payer.map(|payer| {
            let mut middleware = x402_reqwest::X402Middleware::new(
                payer,
                parts.journal,
                parts.clock.clone(),
                parts.entropy.clone(),
                x402_reqwest::Config {
                    policy: x402_core::PaymentPolicy::default().usd_cap(Some(config.max_spend)),
                    daily_budget: config.daily_budget,
                    ..x402_reqwest::Config::default()
                },
            );
            if let Some(hook) = parts.before_sign {
                middleware = middleware.before_sign(hook);
            }
            reqwest_middleware::ClientBuilder::new(parts.http.clone())
                .with(middleware)
                .build()
        });
        Client {
            url: config.url,
            http: parts.http,
            paying,
            auth: parts.auth,
            clock: parts.clock,
            entropy: parts.entropy,
        }
    }

    /// How requests are authenticated.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, Error> {
        self.url
            .join(path)
            .map_err(|e| Error::Invalid(format!("cannot form the URL for {path}: {e}")))
    }

    fn auth_headers(
        &self,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<Vec<(&'static str, String)>, Error> {
        let mut entropy = |buf: &mut [u8]| (self.entropy)(buf);
        self.auth
            .headers(method.as_str(), path, body, &*self.clock, &mut entropy)
    }

    fn require_auth(&self, what: &str) -> Result<(), Error> {
        match self.auth.is_some() {
            true => Ok(()),
            false => Err(Error::Auth(format!(
                "{what} needs auth: an API key (COMPUTE_API_KEY) or a wallet key (PRIVATE_KEY, SOLANA_SECRET_KEY, a keystore, or OWS_WALLET)"
            ))),
        }
    }

    /// Sends an unpaid request (with auth when `signed`) and reads its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        signed: bool,
    ) -> Result<T, Error> {
        let bytes = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|e| Error::Invalid(format!("cannot write the request: {e}")))?,
            None => Vec::new(),
        };
        let mut request = self.http.request(method.clone(), self.url(path)?);
        if signed {
            for (name, value) in self.auth_headers(&method, path, &bytes)? {
                request = request.header(name, value);
            }
        }
        if body.is_some() {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(bytes);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Network(error::with_causes(&e)))?;
        read(response).await
    }

    /// Sends a request that may be paid with x402.
    async fn paid<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        network: &str,
        retry: Retry,
    ) -> Result<T, Error> {
        let Some(paying) = &self.paying else {
            return Err(Error::Refused(
                "no payment key: set PRIVATE_KEY (EVM) or SOLANA_SECRET_KEY, use a keystore wallet, or pay with credits (--use-credits)".into(),
            ));
        };
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Invalid(format!("cannot write the request: {e}")))?;
        let mut request = paying
            .post(self.url(path)?)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(bytes.clone());
        for (name, value) in self.auth_headers(&Method::POST, path, &bytes)? {
            request = request.header(name, value);
        }
        let hook: Arc<dyn Fn(&mut http::HeaderMap) + Send + Sync> = match retry {
            Retry::WithoutWalletAuth => Arc::new(|headers: &mut http::HeaderMap| {
                for name in WALLET_AUTH_HEADERS {
                    headers.remove(name);
                }
            }),
            Retry::Resigned => {
                // Signed now, with its own nonce, so a signing failure stops everything before
                // a payment is signed (and the retry never goes out with the spent nonce).
                let mut fresh = Vec::new();
                for (name, value) in self.auth_headers(&Method::POST, path, &bytes)? {
                    let value = http::HeaderValue::from_str(&value).map_err(|_| {
                        Error::Auth(format!("the signer gave an unusable {name} header"))
                    })?;
                    fresh.push((name, value));
                }
                Arc::new(move |headers: &mut http::HeaderMap| {
                    for (name, value) in &fresh {
                        headers.insert(*name, value.clone());
                    }
                })
            }
        };
        let network = network.to_owned();
        let response = request
            .with_extension(PaidAttempt(hook))
            .with_extension(x402_reqwest::OfferFilter(Arc::new(move |offered| {
                offer_matches(&network, offered)
            })))
            .send()
            .await
            .map_err(Error::of_paying)?;
        read(response).await
    }

    /// Plans, of one class or the standard ones.
    ///
    /// # Errors
    /// As any call: [`Error::Network`], [`Error::Server`], [`Error::BadRequest`].
    pub async fn plans(&self, kind: Option<PlanType>) -> Result<Vec<Plan>, Error> {
        #[derive(serde::Deserialize)]
        struct Plans {
            plans: Vec<Plan>,
        }
        let path = match kind {
            Some(kind) => format!("/compute/plans?type={}", kind.as_str()),
            None => "/compute/plans".to_owned(),
        };
        let plans: Plans = self.call(Method::GET, &path, None, false).await?;
        Ok(plans.plans)
    }

    /// Regions.
    ///
    /// # Errors
    /// As any call.
    pub async fn regions(&self) -> Result<Vec<Region>, Error> {
        #[derive(serde::Deserialize)]
        struct Regions {
            regions: Vec<Region>,
        }
        let regions: Regions = self
            .call(Method::GET, "/compute/regions", None, false)
            .await?;
        Ok(regions.regions)
    }

    /// OS images.
    ///
    /// # Errors
    /// As any call.
    pub async fn os_images(&self) -> Result<Vec<OsImage>, Error> {
        #[derive(serde::Deserialize)]
        struct Images {
            os_options: Vec<OsImage>,
        }
        let images: Images = self.call(Method::GET, "/compute/os", None, false).await?;
        Ok(images.os_options)
    }

    /// Buys an instance.
    ///
    /// # Errors
    /// [`Error::Invalid`] for fewer than 24 hours or an unknown network (nothing sent);
    /// [`Error::Refused`], [`Error::Rejected`], [`Error::Pending`] from the payment;
    /// [`Error::InsufficientCredits`] from credits.
    pub async fn provision(&self, request: &ProvisionRequest, pay: &Pay) -> Result<Bought, Error> {
        if request.prepaid_hours < MIN_HOURS {
            return Err(Error::Invalid(format!(
                "{} hours is too short: the API sells at least {MIN_HOURS} hours",
                request.prepaid_hours
            )));
        }
        // Key order as the scripts send it; compact JSON, serialized once.
        let mut body = serde_json::Map::new();
        body.insert("plan".into(), Value::from(request.plan.clone()));
        body.insert("region".into(), Value::from(request.region.clone()));
        body.insert("os_id".into(), Value::from(request.os_id));
        body.insert("label".into(), Value::from(request.label.clone()));
        body.insert("prepaid_hours".into(), Value::from(request.prepaid_hours));
        match pay {
            Pay::X402(network) => {
                body.insert("network".into(), Value::from(api_network(network)?));
            }
            Pay::Credits => {
                body.insert("use_credits".into(), Value::Bool(true));
            }
        }
        if let Some(key) = &request.ssh_public_key {
            body.insert("ssh_public_key".into(), Value::from(key.trim()));
        }
        let body = Value::Object(body);
        match pay {
            Pay::X402(network) => {
                self.paid(
                    "/compute/provision",
                    &body,
                    api_network(network)?,
                    Retry::WithoutWalletAuth,
                )
                .await
            }
            Pay::Credits => {
                self.require_auth("paying with credits")?;
                self.call(Method::POST, "/compute/provision", Some(&body), true)
                    .await
            }
        }
    }

    /// Every instance of the authenticated wallet (destroyed ones included).
    ///
    /// # Errors
    /// [`Error::Auth`] without auth; as any call.
    pub async fn instances(&self) -> Result<Vec<Instance>, Error> {
        self.require_auth("listing instances")?;
        let list: InstanceList = self
            .call(Method::GET, "/compute/instances", None, true)
            .await?;
        Ok(list.into_vec())
    }

    /// One instance.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it does not exist or is not yours; as any call.
    pub async fn instance(&self, id: &str) -> Result<Instance, Error> {
        self.require_auth("reading an instance")?;
        let one: OneInstance = self
            .call(Method::GET, &instance_path(id, "")?, None, true)
            .await?;
        Ok(one.into_instance())
    }

    /// Destroys an instance.
    ///
    /// # Errors
    /// [`Error::NotFound`]; as any call.
    pub async fn destroy(&self, id: &str) -> Result<Option<Instance>, Error> {
        self.require_auth("destroying an instance")?;
        let answer: Value = self
            .call(Method::DELETE, &instance_path(id, "")?, None, true)
            .await?;
        Ok(serde_json::from_value::<OneInstance>(answer)
            .ok()
            .map(OneInstance::into_instance))
    }

    /// The root password, once (a second call is refused with [`Error::Conflict`]).
    ///
    /// # Errors
    /// [`Error::Conflict`] when it was already retrieved; [`Error::NotFound`]; as any call.
    pub async fn password(&self, id: &str) -> Result<Access, Error> {
        #[derive(serde::Deserialize)]
        struct Answer {
            access: Access,
        }
        self.require_auth("getting the password")?;
        let answer: Answer = self
            .call(Method::POST, &instance_path(id, "/password")?, None, true)
            .await
            .map_err(|error| match error {
                Error::Conflict(message) if message.contains("already") => {
                    Error::Conflict(format!(
                        "the one-time password of {id} was already retrieved: the API shows it once"
                    ))
                }
                other => other,
            })?;
        Ok(answer.access)
    }

    /// Buys more hours for an instance.
    ///
    /// # Errors
    /// As [`Client::provision`].
    pub async fn extend(&self, id: &str, hours: u64, pay: &Pay) -> Result<Bought, Error> {
        if hours == 0 {
            return Err(Error::Invalid("extend by at least one hour".into()));
        }
        let path = instance_path(id, "/extend")?;
        match pay {
            Pay::X402(network) => {
                let network = api_network(network)?;
                let body = serde_json::json!({ "extend_hours": hours, "network": network });
                self.paid(&path, &body, network, Retry::WithoutWalletAuth)
                    .await
            }
            Pay::Credits => {
                self.require_auth("paying with credits")?;
                let body = serde_json::json!({ "extend_hours": hours, "use_credits": true });
                self.call(Method::POST, &path, Some(&body), true).await
            }
        }
        .map(|mut bought: Bought| {
            // The documented answer is `{"order":{"expires_at":…}}`: the id is the one asked.
            if bought.order.id.is_empty() {
                bought.order.id = id.to_owned();
            }
            bought
        })
    }

    /// Moves an instance to another plan; its remaining prepaid dollars carry over at the new
    /// rate. Never paid.
    ///
    /// # Errors
    /// [`Error::BadRequest`] when the server refuses (a downgrade, a disk resize not
    /// confirmed); as any call.
    pub async fn resize(
        &self,
        id: &str,
        plan: &str,
        confirm_disk_resize: bool,
    ) -> Result<Resized, Error> {
        self.require_auth("resizing an instance")?;
        let body = serde_json::json!({ "plan": plan, "confirm_disk_resize": confirm_disk_resize });
        self.call(
            Method::POST,
            &instance_path(id, "/resize")?,
            Some(&body),
            true,
        )
        .await
    }

    /// Creates an API key (shown once).
    ///
    /// # Errors
    /// [`Error::Auth`] without a wallet signature (an API key cannot make keys); as any call.
    pub async fn create_api_key(&self, label: Option<&str>) -> Result<NewApiKey, Error> {
        if matches!(self.auth, Auth::None | Auth::ApiKey(_)) {
            return Err(Error::Auth(
                "creating an API key needs a wallet signature (PRIVATE_KEY, SOLANA_SECRET_KEY, a keystore or OWS), not an API key".into(),
            ));
        }
        let body = label.map(|label| serde_json::json!({ "label": label }));
        self.call(Method::POST, "/compute/api-keys", body.as_ref(), true)
            .await
    }

    /// The API keys (last four characters only).
    ///
    /// # Errors
    /// As any call.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyInfo>, Error> {
        #[derive(serde::Deserialize)]
        struct Keys {
            api_keys: Vec<ApiKeyInfo>,
        }
        self.require_auth("listing API keys")?;
        let keys: Keys = self
            .call(Method::GET, "/compute/api-keys", None, true)
            .await?;
        Ok(keys.api_keys)
    }

    /// Revokes an API key.
    ///
    /// # Errors
    /// [`Error::Auth`] without a wallet signature; [`Error::NotFound`]; as any call.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), Error> {
        if matches!(self.auth, Auth::None | Auth::ApiKey(_)) {
            return Err(Error::Auth(
                "revoking an API key needs a wallet signature, not an API key".into(),
            ));
        }
        let path = format!("/compute/api-keys/{}", path_segment(id)?);
        let _: Value = self.call(Method::DELETE, &path, None, true).await?;
        Ok(())
    }

    /// The credit balance.
    ///
    /// # Errors
    /// As any call.
    pub async fn credits(&self) -> Result<Credits, Error> {
        self.require_auth("reading credits")?;
        self.call(Method::GET, "/compute/credits/balance", None, true)
            .await
    }

    /// Buys `dollars` of credits with x402 on `network`.
    ///
    /// # Errors
    /// [`Error::Invalid`] under $1; as [`Client::provision`].
    pub async fn top_up(&self, dollars: UsdMicros, network: &str) -> Result<TopUp, Error> {
        self.require_auth("topping up credits")?;
        if dollars < UsdMicros::from_dollars(1) {
            return Err(Error::Invalid("the smallest top-up is $1".into()));
        }
        let network = api_network(network)?;
        let text = dollars.to_string();
        let amount: Value = serde_json::from_str(text.trim_start_matches('$'))
            .map_err(|_| Error::Invalid(format!("{dollars} is not an amount")))?;
        let body = serde_json::json!({ "amount": amount, "network": network });
        self.paid("/compute/credits/topup", &body, network, Retry::Resigned)
            .await
    }
}

/// A path segment from user input: refused when it could change the path.
fn path_segment(id: &str) -> Result<&str, Error> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && id != "."
        && id != "..";
    match ok {
        true => Ok(id),
        false => Err(Error::Invalid(format!(
            "`{id}` is not an id (letters, digits, `-`, `_`, `.`)"
        ))),
    }
}

fn instance_path(id: &str, rest: &str) -> Result<String, Error> {
    Ok(format!("/compute/instances/{}{rest}", path_segment(id)?))
}

/// Reads an answer: JSON on success; the matching [`Error`] otherwise.
async fn read<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, Error> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::Network(format!("the answer was cut: {}", error::with_causes(&e))))?;
    if status.is_success() {
        // Not echoed: a success body may hold a password or a key.
        return serde_json::from_slice(&bytes).map_err(|e| Error::Server {
            status: status.as_u16(),
            message: format!(
                "the answer is not what the API documents ({e}); if this paid, `x402c payments list` has the transaction"
            ),
        });
    }
    let message = message_of(&bytes);
    Err(match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::Auth(message),
        StatusCode::NOT_FOUND => Error::NotFound(message),
        StatusCode::CONFLICT => Error::Conflict(message),
        StatusCode::PAYMENT_REQUIRED => {
            let json: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let text = |key: &str| match &json[key] {
                Value::String(s) => s.clone(),
                Value::Null => "?".into(),
                other => other.to_string(),
            };
            if json.get("shortfall").is_some() {
                Error::InsufficientCredits {
                    required: text("required"),
                    balance: text("balance"),
                    shortfall: text("shortfall"),
                }
            } else {
                Error::Rejected { reason: message }
            }
        }
        status if status.is_client_error() => Error::BadRequest {
            status: status.as_u16(),
            message,
        },
        status => Error::Server {
            status: status.as_u16(),
            message,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn error_messages_are_read_in_both_conventions() {
        assert_eq!(message_of(br#"{"error":"bad plan"}"#), "bad plan");
        assert_eq!(
            message_of(br#"{"error":{"message":"bad plan"}}"#),
            "bad plan"
        );
        assert!(message_of(b"<html><body>502</body></html>").contains("HTML"));
        assert_eq!(message_of(b"  plain  "), "plain");
    }

    #[test]
    fn ids_cannot_escape_their_path() {
        for bad in ["", "..", "a/b", "a?b", "a b", "%2e%2e"] {
            assert!(path_segment(bad).is_err(), "{bad}");
        }
        assert_eq!(
            instance_path("ab-12", "/extend").unwrap(),
            "/compute/instances/ab-12/extend"
        );
    }

    #[test]
    fn networks_are_the_apis_names_and_offers_match_their_family() {
        assert_eq!(api_network(" Base ").unwrap(), "base");
        assert!(api_network("ethereum").is_err());
        assert!(offer_matches("base", &x402_core::Network::evm(84532)));
        assert!(offer_matches("base", &x402_core::Network::evm(8453)));
        assert!(!offer_matches("base", &x402_core::Network::SOLANA_DEVNET));
        // Another EVM chain is not the one asked for.
        assert!(!offer_matches("robinhood", &x402_core::Network::evm(8453)));
        assert!(offer_matches("robinhood", &x402_core::Network::evm(4663)));
        assert!(offer_matches("megaeth", &x402_core::Network::evm(4326)));
        assert!(offer_matches("solana", &x402_core::Network::SOLANA_DEVNET));
        assert!(!offer_matches("solana", &x402_core::Network::evm(8453)));
    }
}
