//! The coordinator's REST face (§3.2), node side: register and device login without
//! credentials, everything else with `X-Node-Auth` (and `X-Node-Id` on the heartbeat).
//! Connect timeout 10 s, total 30 s; heartbeat and chunk answers are read with an 8 MiB cap;
//! `node_id` and `job_id` are percent-encoded; `{"error": "..."}` bodies become the message.

use std::sync::RwLock;
use std::time::Duration;

use grid_proto::node::{
    AttestationVerdict, Challenge, CompleteBody, DevicePoll, DevicePollRequest, DeviceStart,
    FailBody, GridStatus, Heartbeat, HeartbeatResponse, NodeStatus, RegisterRequest,
    RegisterResponse, SetPrice, VerifyAttestation,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::identity::AuthToken;
use crate::url::{OrchestratorUrl, encode};
use crate::{Error, Result};

/// Connect timeout for every call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Total timeout for every call, chunk posts included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes read from a heartbeat or chunk answer.
pub const ANSWER_CAP: usize = 8 * 1024 * 1024;
/// The most bytes read from any other answer.
const OTHER_CAP: usize = 8 * 1024 * 1024;

/// Installs ring as rustls's crypto provider unless one is installed (reqwest is built without
/// one; see the workspace manifest). Idempotent.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one meanwhile: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Calls that need no node credentials.
#[derive(Clone, Debug)]
pub struct Coordinator {
    http: reqwest::Client,
    base: OrchestratorUrl,
}

impl Coordinator {
    /// A client for `base` (proxies are not read from the environment).
    ///
    /// # Errors
    /// [`Error::Network`] when the TLS stack cannot be set up.
    pub fn new(base: OrchestratorUrl) -> Result<Coordinator> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .no_proxy()
            // X-Node-Auth is not among the headers reqwest drops on a redirect: follow none,
            // so the token never goes to another host or over http.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sgl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Network(format!("cannot build the HTTP client: {e}")))?;
        Ok(Coordinator { http, base })
    }

    /// The base URL.
    pub fn url(&self) -> &OrchestratorUrl {
        &self.base
    }

    /// `POST /grid/nodes/register`.
    ///
    /// # Errors
    /// [`Error::Coordinator`] with its message (a bad code, a wallet without stake, ...),
    /// [`Error::Network`], [`Error::Protocol`].
    pub async fn register(&self, request: &RegisterRequest) -> Result<RegisterResponse> {
        let builder = self
            .http
            .post(self.base.join("/grid/nodes/register"))
            .json(request);
        json(send(builder, OTHER_CAP).await?)
    }

    /// `POST /grid/auth/device/start`.
    ///
    /// # Errors
    /// As [`Coordinator::register`].
    pub async fn device_start(&self) -> Result<DeviceStart> {
        let builder = self
            .http
            .post(self.base.join("/grid/auth/device/start"))
            .json(&serde_json::json!({}));
        json(send(builder, OTHER_CAP).await?)
    }

    /// `POST /grid/auth/device/poll`.
    ///
    /// # Errors
    /// As [`Coordinator::register`].
    pub async fn device_poll(&self, device_code: &str) -> Result<DevicePoll> {
        let builder = self
            .http
            .post(self.base.join("/grid/auth/device/poll"))
            .json(&DevicePollRequest {
                device_code: device_code.to_owned(),
            });
        json(send(builder, OTHER_CAP).await?)
    }

    /// `GET /grid/nodes/{id}/prices` (public), as the coordinator wrote it.
    ///
    /// # Errors
    /// As [`Coordinator::register`].
    pub async fn prices(&self, node_id: &str) -> Result<serde_json::Value> {
        let builder = self.http.get(
            self.base
                .join(&format!("/grid/nodes/{}/prices", encode(node_id))),
        );
        json(send(builder, OTHER_CAP).await?)
    }

    /// The same coordinator with a node's credentials.
    pub fn with_node(&self, node_id: &str, token: AuthToken) -> NodeClient {
        NodeClient {
            inner: self.clone(),
            node_id: node_id.to_owned(),
            token: RwLock::new(token),
        }
    }
}

/// What a chunk post got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Taken; the client still reads.
    Accepted,
    /// Taken or not, the client went away: stop generating.
    Closed,
}

/// Calls made as a registered node (`X-Node-Auth`). The token can be swapped when the
/// coordinator rotates it.
#[derive(Debug)]
pub struct NodeClient {
    inner: Coordinator,
    node_id: String,
    token: RwLock<AuthToken>,
}

impl NodeClient {
    /// The node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The coordinator's base URL.
    pub fn url(&self) -> &OrchestratorUrl {
        &self.inner.base
    }

    /// The current token.
    pub fn token(&self) -> AuthToken {
        self.token
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Swaps in a rotated token.
    pub fn set_token(&self, token: AuthToken) {
        *self
            .token
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = token;
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.inner
            .http
            .post(self.inner.base.join(path))
            .header("X-Node-Auth", self.token().expose())
    }

    fn node_path(&self, rest: &str) -> String {
        format!("/grid/nodes/{}{rest}", encode(&self.node_id))
    }

    /// `POST /grid/nodes/heartbeat`.
    ///
    /// # Errors
    /// [`Error::Coordinator`], [`Error::Network`], [`Error::Protocol`].
    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatResponse> {
        let builder = self
            .post("/grid/nodes/heartbeat")
            .header("X-Node-Id", &self.node_id)
            .json(heartbeat);
        json(send(builder, ANSWER_CAP).await?)
    }

    /// `POST /grid/jobs/{id}/complete`.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn complete(&self, job_id: &str, body: &CompleteBody) -> Result<()> {
        self.post_json(&format!("/grid/jobs/{}/complete", encode(job_id)), body)
            .await
    }

    /// `POST /grid/jobs/{id}/fail`.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn fail(&self, job_id: &str, reason: &str) -> Result<()> {
        let body = FailBody {
            reason: reason.to_owned(),
        };
        self.post_json(&format!("/grid/jobs/{}/fail", encode(job_id)), &body)
            .await
    }

    /// `POST /grid/jobs/{id}/chunk` with a chunk or `{"error": true}` (any JSON body).
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn chunk(&self, job_id: &str, body: &impl Serialize) -> Result<ChunkOutcome> {
        let builder = self
            .post(&format!("/grid/jobs/{}/chunk", encode(job_id)))
            .json(body);
        let bytes = send(builder, ANSWER_CAP).await?;
        // An empty or unreadable 2xx body counts as accepted (a reference peer may answer
        // with nothing); only an explicit `closed: true` or `ok: false` stops the stream.
        let ack: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let closed = ack.get("closed").and_then(serde_json::Value::as_bool) == Some(true);
        let refused = ack.get("ok").and_then(serde_json::Value::as_bool) == Some(false);
        Ok(match closed || refused {
            true => ChunkOutcome::Closed,
            false => ChunkOutcome::Accepted,
        })
    }

    /// `POST /grid/nodes/{id}/challenge`.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn challenge(&self) -> Result<Challenge> {
        let builder = self
            .post(&self.node_path("/challenge"))
            .json(&serde_json::json!({}));
        json(send(builder, OTHER_CAP).await?)
    }

    /// `POST /grid/nodes/{id}/verify-attestation`.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn verify_attestation(&self, body: &VerifyAttestation) -> Result<AttestationVerdict> {
        let builder = self.post(&self.node_path("/verify-attestation")).json(body);
        json(send(builder, OTHER_CAP).await?)
    }

    /// `POST /grid/nodes/{id}/status` (off-grid or back on).
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn set_off_grid(&self, off_grid: bool) -> Result<()> {
        self.post_json(&self.node_path("/status"), &GridStatus { off_grid })
            .await
    }

    /// `POST /grid/nodes/{id}/prices`; the answer as the coordinator wrote it.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn set_price(&self, body: &SetPrice) -> Result<serde_json::Value> {
        let builder = self.post(&self.node_path("/prices")).json(body);
        let bytes = send(builder, OTHER_CAP).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// `GET /grid/nodes/{id}/prices`.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn prices(&self) -> Result<serde_json::Value> {
        self.inner.prices(&self.node_id).await
    }

    /// `GET /grid/nodes/{id}`.
    ///
    /// # Errors
    /// As [`NodeClient::heartbeat`].
    pub async fn status(&self) -> Result<NodeStatus> {
        let builder = self
            .inner
            .http
            .get(self.inner.base.join(&self.node_path("")))
            .header("X-Node-Auth", self.token().expose());
        json(send(builder, OTHER_CAP).await?)
    }

    async fn post_json(&self, path: &str, body: &impl Serialize) -> Result<()> {
        send(self.post(path).json(body), OTHER_CAP).await.map(drop)
    }
}

fn json<T: DeserializeOwned>(bytes: Vec<u8>) -> Result<T> {
    serde_json::from_slice(&bytes).map_err(|e| Error::Protocol(e.to_string()))
}

/// Sends, and reads the body up to `cap` bytes; a non-2xx status becomes
/// [`Error::Coordinator`] with the `{"error": ...}` text.
async fn send(builder: reqwest::RequestBuilder, cap: usize) -> Result<Vec<u8>> {
    let response = builder.send().await.map_err(network)?;
    let status = response.status();
    let body = read_capped(response, cap).await?;
    if status.is_success() {
        return Ok(body);
    }
    Err(Error::Coordinator {
        status: status.as_u16(),
        message: error_message(&body, status),
    })
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(network)? {
        if body.len().saturating_add(chunk.len()) > cap {
            return Err(Error::Protocol(format!(
                "the answer is larger than {} MiB",
                cap / (1024 * 1024)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error_message(body: &[u8], status: reqwest::StatusCode) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body) {
        match map.get("error") {
            Some(serde_json::Value::String(text)) => return text.clone(),
            Some(serde_json::Value::Object(inner)) => {
                if let Some(serde_json::Value::String(text)) = inner.get("message") {
                    return text.clone();
                }
            }
            _ => {}
        }
        if let Some(serde_json::Value::String(text)) = map.get("message") {
            return text.clone();
        }
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    match text.trim().is_empty() {
        true => status
            .canonical_reason()
            .unwrap_or("no message")
            .to_lowercase(),
        false => text,
    }
}

/// The error and its causes (reqwest's own text alone says only "error sending request"),
/// without the URL.
fn network(error: reqwest::Error) -> Error {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::Network(text)
}
