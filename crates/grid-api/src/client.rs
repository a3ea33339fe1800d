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
        write!(f, "GridKey(…{})", &self.0[self.0.len().saturating_sub(4)..])
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
    /// The most to pay, USD per 1M tokens, blended (decimal text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<serde_json::Number>,
}

/// The grid client (the endpoints without a prompt).
#[derive(Clone, Debug)]
pub struct GridClient {
    url: reqwest::Url,
    http: reqwest::Client,
    key: Option<GridKey>,
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
    /// A client for the grid at `url`, with `key` when given.
    pub fn new(url: reqwest::Url, http: reqwest::Client, key: Option<GridKey>) -> GridClient {
        GridClient { url, http, key }
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, ClientError> {
        self.url
            .join(path)
            .map_err(|e| ClientError::Network(format!("cannot form the URL for {path}: {e}")))
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        Ok(self.request_to(method, self.url(path)?))
    }

    fn request_to(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, url);
        if let Some(key) = &self.key {
            request = request
                .header(http::header::AUTHORIZATION, format!("Bearer {}", &*key.0))
                .header("X-API-Key", key.0.as_str());
        }
        request
    }

    async fn read<T: DeserializeOwned>(request: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Network(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Network(format!("the answer was cut: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Server {
                status: status.as_u16(),
                message: format!("the answer is not what the grid documents: {e}"),
            });
        }
        let message = message_of(&bytes);
        Err(match status.as_u16() {
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
        })
    }

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
