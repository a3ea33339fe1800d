//! The grid's HTTP endpoints that carry no prompt (§1.2): models with their node counts and
//! prices, pricing, capacity, providers, and the reservation a sealed chat starts with. An API
//! key goes as both `Authorization: Bearer` and `X-API-Key`, as the official SDKs send it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::reserve::Reservation;

/// The public grid.
pub const DEFAULT_URL: &str = "https://grid.x402compute.cc";

/// What can go wrong with a grid call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 401: the key is invalid or revoked.
    #[error("the grid refused the API key: {0}")]
    Auth(String),
    /// 402: payment required or credits short.
    #[error("the grid asks for payment: {0}")]
    PaymentRequired(String),
    /// Another refusal (4xx), with the grid's message (e.g. `price_cap_unmet`).
    #[error("the grid refused the request ({status}): {message}")]
    Refused {
        /// The status.
        status: u16,
        /// The message.
        message: String,
    },
    /// 5xx, or an answer that is not the documented JSON.
    #[error("the grid failed ({status}): {message}")]
    Server {
        /// The status.
        status: u16,
        /// The message.
        message: String,
    },
    /// The grid could not be reached.
    #[error("cannot reach the grid: {0}")]
    Network(String),
    /// Sealing was refused (the node's key binding failed or is absent), or a sealed answer
    /// did not open.
    #[error("not sealing to this node: {0}")]
    Seal(#[from] crate::seal::SealError),
    /// A streamed answer ended wrongly (cut, an error event, tampered or reordered chunks).
    #[error(transparent)]
    Stream(#[from] crate::stream::StreamError),
    /// The request cannot be sent as asked (e.g. content the grid does not take).
    #[error("{0}")]
    Invalid(String),
    /// Our side refused to pay: over a cap or the budget, declined, or no payer configured.
    #[error("not paying: {0}")]
    PaymentRefused(String),
    /// The grid rejected the payment.
    #[error("the grid rejected the payment: {reason}")]
    PaymentRejected {
        /// Its reason.
        reason: String,
    },
    /// A payment left and its outcome is not known yet; it is journaled (`x402c payments`).
    #[error("payment {entry} is pending{}: run `x402c payments reconcile`", transaction.as_deref().map(|t| format!(" (transaction {t})")).unwrap_or_default())]
    PaymentPending {
        /// The journal entry.
        entry: x402_reqwest::EntryId,
        /// The transaction, when known.
        transaction: Option<String>,
    },
    /// Another payment failure.
    #[error(transparent)]
    Payment(x402_reqwest::Error),
}

impl ClientError {
    /// Whether the grid asked for payment or credits were short.
    pub fn is_payment_required(&self) -> bool {
        matches!(self, ClientError::PaymentRequired(_))
    }

    pub(crate) fn of_paying(error: reqwest_middleware::Error) -> ClientError {
        let Some(paying) = x402_reqwest::Error::of(&error) else {
            return match error {
                reqwest_middleware::Error::Reqwest(error) => {
                    ClientError::Network(error.to_string())
                }
                reqwest_middleware::Error::Middleware(other) => {
                    ClientError::Network(format!("{other:#}"))
                }
            };
        };
        match paying {
            x402_reqwest::Error::Policy(_)
            | x402_reqwest::Error::OverBudget { .. }
            | x402_reqwest::Error::Declined(_) => ClientError::PaymentRefused(paying.to_string()),
            x402_reqwest::Error::Rejected { reason, .. } => ClientError::PaymentRejected {
                reason: reason.clone(),
            },
            x402_reqwest::Error::Pending { entry, transaction } => ClientError::PaymentPending {
                entry: *entry,
                transaction: transaction.clone(),
            },
            x402_reqwest::Error::PaidWithoutAnswer { entry, transaction } => {
                ClientError::PaymentPending {
                    entry: *entry,
                    transaction: Some(transaction.clone()),
                }
            }
            _ => match error {
                reqwest_middleware::Error::Middleware(inner) => match inner.downcast() {
                    Ok(paying) => ClientError::Payment(paying),
                    Err(other) => ClientError::Network(other.to_string()),
                },
                reqwest_middleware::Error::Reqwest(error) => {
                    ClientError::Network(error.to_string())
                }
            },
        }
    }
}

/// An API key (`x402c_…` or `scg_…`). `Debug` shows its last four characters.
#[derive(Clone)]
pub struct GridKey(zeroize::Zeroizing<String>);

impl GridKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> GridKey {
        GridKey(zeroize::Zeroizing::new(key.into().trim().to_owned()))
    }
}

impl std::fmt::Debug for GridKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let last: String = {
            let mut tail: Vec<char> = self.0.chars().rev().take(4).collect();
            tail.reverse();
            tail.into_iter().collect()
        };
        write!(f, "GridKey(…{last})")
    }
}

/// One model on the grid (`GET /grid/models`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct GridModel {
    /// The model id.
    pub id: String,
    /// Who publishes it.
    #[serde(default)]
    pub owned_by: Option<String>,
    /// Nodes serving it.
    #[serde(default)]
    pub sgl_node_count: Option<u64>,
    /// Their TEE types.
    #[serde(default)]
    pub sgl_tee_types: Vec<String>,
    /// Its prices (USD per 1k tokens, as numbers or strings).
    #[serde(default)]
    pub sgl_pricing: Option<serde_json::Value>,
}

/// A provider for a model (`GET /v1/providers`), cheapest first.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Provider {
    /// The node.
    pub node_id: String,
    /// USD per 1M input tokens.
    #[serde(default)]
    pub input_per_m: Option<serde_json::Value>,
    /// USD per 1M output tokens.
    #[serde(default)]
    pub output_per_m: Option<serde_json::Value>,
    /// Blended USD per 1k tokens.
    #[serde(default)]
    pub blended_per_1k: Option<serde_json::Value>,
    /// Its TEE type.
    #[serde(default)]
    pub tee_type: Option<String>,
    /// Whether it is online.
    #[serde(default)]
    pub online: Option<bool>,
}

/// What to reserve (`POST /v1/reserve`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReserveRequest {
    /// The model.
    pub model: String,
    /// Pin a node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// A cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The most to pay, USD per 1M tokens, blended: written as a JSON number from its exact
    /// decimal text (never through a float).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "decimal_number"
    )]
    pub max_price: Option<x402_core::UsdMicros>,
}

/// A dollar amount as a JSON number written from its exact decimal text.
pub(crate) fn decimal_number<S: serde::Serializer>(
    value: &Option<x402_core::UsdMicros>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        None => serializer.serialize_none(),
        Some(usd) => {
            let text = usd.to_string();
            let raw =
                serde_json::value::RawValue::from_string(text.trim_start_matches('$').to_owned())
                    .map_err(serde::ser::Error::custom)?;
            raw.serialize(serializer)
        }
    }
}

/// The most bytes of an answer read (a chat answer or a listing; the reference lets a sealed
/// blob be up to 8 MiB of base58).
pub(crate) const MAX_ANSWER: usize = 9 * 1024 * 1024;

/// The body of `response`, refusing more than [`MAX_ANSWER`] bytes.
pub(crate) async fn capped_body(mut response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER as u64)
    {
        return Err(ClientError::Server {
            status: response.status().as_u16(),
            message: "the answer is over 9 MiB: refused".into(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ClientError::Network(format!("the answer was cut: {e}")))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_ANSWER {
            return Err(ClientError::Server {
                status: response.status().as_u16(),
                message: "the answer is over 9 MiB: refused".into(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The grid client.
#[derive(Clone)]
pub struct GridClient {
    pub(crate) url: reqwest::Url,
    pub(crate) http: reqwest::Client,
    pub(crate) key: Option<GridKey>,
    pub(crate) entropy: x402_reqwest::SharedEntropy,
    pub(crate) paying: Option<reqwest_middleware::ClientWithMiddleware>,
}

impl std::fmt::Debug for GridClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridClient")
            .field("url", &self.url.as_str())
            .field("key", &self.key)
            .field("pays_x402", &self.paying.is_some())
            .finish()
    }
}

/// What paying chats with x402 needs (a chat without an API key).
pub struct Payments {
    /// Who signs.
    pub payer: std::sync::Arc<dyn x402_reqwest::Payer>,
    /// Where each payment is written before it leaves.
    pub journal: std::sync::Arc<dyn x402_reqwest::PaymentJournal>,
    /// Time, for the authorization window.
    pub clock: std::sync::Arc<dyn x402_core::Clock + Send + Sync>,
    /// The caps (default $1 per payment) and the daily budget.
    pub config: x402_reqwest::Config,
    /// Runs before a payment is signed (a CLI asks its user).
    pub before_sign: Option<x402_reqwest::BeforeSign>,
}

fn message_of(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    json["error"]["message"]
        .as_str()
        .or_else(|| json["error"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            match text.trim_start().starts_with('<') {
                true => "the grid answered HTML, not JSON: is the URL the grid's?".to_owned(),
                false => text.chars().take(300).collect(),
            }
        })
}

impl GridClient {
    /// A client for the grid at `url`, with `key` when given; `entropy` makes the keys and
    /// nonces of sealed requests.
    pub fn new(
        url: reqwest::Url,
        http: reqwest::Client,
        key: Option<GridKey>,
        entropy: x402_reqwest::SharedEntropy,
    ) -> GridClient {
        GridClient {
            url,
            http,
            key,
            entropy,
            paying: None,
        }
    }

    /// Lets chats be paid per request with x402 ([`crate::chat::ChatPay::X402`]).
    pub fn with_payments(mut self, payments: Payments) -> GridClient {
        let mut middleware = x402_reqwest::X402Middleware::new(
            payments.payer,
            payments.journal,
            payments.clock,
            self.entropy.clone(),
            payments.config,
        );
        if let Some(hook) = payments.before_sign {
            middleware = middleware.before_sign(hook);
        }
        self.paying = Some(
            reqwest_middleware::ClientBuilder::new(self.http.clone())
                .with(middleware)
                .build(),
        );
        self
    }

    /// Whether an API key is set.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    pub(crate) fn url(&self, path: &str) -> Result<reqwest::Url, ClientError> {
        self.url
            .join(path)
            .map_err(|e| ClientError::Network(format!("cannot form the URL for {path}: {e}")))
    }

    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(self.request_to(method, self.url(path)?))
    }

    pub(crate) fn request_to(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(key) = &self.key {
            request = request
                .header(http::header::AUTHORIZATION, format!("Bearer {}", &*key.0))
                .header("X-API-Key", key.0.as_str());
        }
        request
    }

    pub(crate) async fn read<T: DeserializeOwned>(
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Network(e.to_string()))?;
        Self::read_response(response).await
    }

    /// Reads a JSON answer, or the typed refusal.
    pub(crate) async fn read_response<T: DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, ClientError> {
        let status = response.status();
        let bytes = capped_body(response).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Server {
                status: status.as_u16(),
                message: format!("the answer is not what the grid documents: {e}"),
            });
        }
        Err(refusal(status.as_u16(), &bytes))
    }
}

/// The typed refusal for a non-2xx answer.
pub(crate) fn refusal(status: u16, bytes: &[u8]) -> ClientError {
    let message = message_of(bytes);
    {
        match status {
            401 | 403 => ClientError::Auth(message),
            402 => ClientError::PaymentRequired(message),
            code @ 400..=499 => ClientError::Refused {
                status: code,
                message,
            },
            code => ClientError::Server {
                status: code,
                message,
            },
        }
    }
}

impl GridClient {
    /// The grid's models, with node counts, TEE types and prices.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn models(&self) -> Result<Vec<GridModel>, ClientError> {
        #[derive(Deserialize)]
        struct Models {
            models: Vec<GridModel>,
        }
        let models: Models =
            Self::read(self.request(reqwest::Method::GET, "/grid/models")?).await?;
        Ok(models.models)
    }

    /// Capacity (`GET /grid/capacity`), as the grid reports it.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn capacity(&self) -> Result<serde_json::Value, ClientError> {
        Self::read(self.request(reqwest::Method::GET, "/grid/capacity")?).await
    }

    /// Pricing (`GET /grid/pricing`), USD per 1k tokens.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn pricing(&self) -> Result<serde_json::Value, ClientError> {
        Self::read(self.request(reqwest::Method::GET, "/grid/pricing")?).await
    }

    /// The providers of `model`, cheapest first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn providers(&self, model: &str) -> Result<Vec<Provider>, ClientError> {
        #[derive(Deserialize)]
        struct Providers {
            providers: Vec<Provider>,
        }
        let mut url = self.url("/v1/providers")?;
        url.query_pairs_mut().append_pair("model", model);
        let request = self.request_to(reqwest::Method::GET, url);
        let providers: Providers = Self::read(request).await?;
        Ok(providers.providers)
    }

    /// Reserves a node for a sealed chat.
    ///
    /// # Errors
    /// [`ClientError`] (`Refused` with `price_cap_unmet` when no node fits `max_price`).
    pub async fn reserve(&self, reserve: &ReserveRequest) -> Result<Reservation, ClientError> {
        Self::read(
            self.request(reqwest::Method::POST, "/v1/reserve")?
                .json(reserve),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    async fn stub() -> (
        reqwest::Url,
        std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    ) {
        use axum::http::HeaderMap;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = axum::Router::new()
            .route(
                "/grid/models",
                axum::routing::get(|| async {
                    axum::Json(serde_json::json!({ "models": [{ "id": "smollm2-135m", "sgl_node_count": 1, "sgl_tee_types": ["none"], "future": true }] }))
                }),
            )
            .route(
                "/v1/reserve",
                axum::routing::post(move |headers: HeaderMap, body: String| {
                    let record = record.clone();
                    async move {
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        record.lock().unwrap().push((header("authorization"), header("x-api-key"), body));
                        if header("x-api-key") != "x402c_good" {
                            return (
                                axum::http::StatusCode::UNAUTHORIZED,
                                axum::Json(serde_json::json!({ "error": { "message": "invalid key" } })),
                            );
                        }
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(serde_json::json!({ "reservation_token": "t", "node_id": "n", "node_x25519_pubkey": "x", "node_ed25519_pubkey": "e", "expires_in_ms": 30000 })),
                        )
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    #[tokio::test]
    async fn the_key_goes_both_ways_and_refusals_are_typed() {
        let (url, seen) = stub().await;
        let good = GridClient::new(
            url.clone(),
            x402_reqwest::Transport::default().client().unwrap(),
            Some(GridKey::new("x402c_good")),
            std::sync::Arc::new(|buf: &mut [u8]| buf.fill(7)),
        );
        let models = good.models().await.unwrap();
        assert_eq!(models[0].id, "smollm2-135m");
        let reservation = good
            .reserve(&ReserveRequest {
                model: "smollm2-135m".into(),
                ..ReserveRequest::default()
            })
            .await
            .unwrap();
        assert_eq!(reservation.reservation_token, "t");
        let (authorization, api_key, body) = seen.lock().unwrap()[0].clone();
        assert_eq!(authorization, "Bearer x402c_good");
        assert_eq!(api_key, "x402c_good");
        assert_eq!(body, r#"{"model":"smollm2-135m"}"#);

        let bad = GridClient::new(
            url,
            x402_reqwest::Transport::default().client().unwrap(),
            Some(GridKey::new("x402c_bad")),
            std::sync::Arc::new(|buf: &mut [u8]| buf.fill(7)),
        );
        let refused = bad
            .reserve(&ReserveRequest {
                model: "m".into(),
                ..ReserveRequest::default()
            })
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ClientError::Auth(ref m) if m == "invalid key"),
            "{refused}"
        );
        assert!(!format!("{:?}", GridKey::new("x402c_secretkey")).contains("secret"));
    }
}
