//! The node ⇄ coordinator messages (§3), as the reference node sends and reads them, and the
//! job payloads a node accepts (§3.8).
//!
//! What is sealed (as the reference SDKs read it): a non-stream answer's plaintext is the
//! [`PlainResult`] JSON (`{"content", "model", "usage"}`); a stream chunk's plaintext is the raw
//! UTF-8 text of the deltas it carries (the final chunk's is empty and its `usage` rides in
//! clear beside it).
//!
//! Two additions of ours, both optional on the wire so a reference peer ignores them:
//! - the `embeddings` job type ([`JOB_EMBEDDINGS`]) and `capabilities.embeddings`: the
//!   reference node serves no embeddings; ours does when its engine can, and the devnet
//!   coordinator routes `/v1/embeddings` only to nodes that say so;
//! - a hardware report signed and bound to the attestation challenge
//!   ([`VerifyAttestation::report_signature`], [`crate::envelope::report_message`]);
//! - a stream error's `reason` and `usage` ([`StreamError`]): when the engine dies mid-stream,
//!   the node says why and how many tokens the client had already been sent; the devnet fails
//!   the job with that reason and bills only those tokens (the reference coordinator reads
//!   only `error` and bills nothing).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::Usage;
use crate::limits;

/// The only job type the reference node runs.
pub const JOB_INFERENCE: &str = "inference";
/// Our extension: an embeddings job (`{"input": [..]}` → `{"embeddings": [[..]], ..}`).
pub const JOB_EMBEDDINGS: &str = "embeddings";
/// The key version the node signs into its key binding.
pub const KEY_VERSION: u32 = 1;

/// `POST /grid/nodes/register`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The operator's Solana wallet, base58.
    pub wallet_address: String,
    /// A single-use code from device login or `--code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_code: Option<String>,
    /// The TEE type the node claims (ours reports the real one: `none` on plain Linux).
    pub tee_type: String,
    /// Models to seed the registration with.
    #[serde(default)]
    pub available_models: Vec<String>,
    /// The node's ed25519 public key, base58.
    pub public_key: String,
    /// CPU cores.
    pub cpu_cores: u32,
    /// RAM in GB, as the OS reports it.
    pub ram_gb: f64,
    /// The GPU, or `none`.
    pub gpu_model: String,
    /// Always `["llama.cpp"]`.
    #[serde(default)]
    pub supported_runtimes: Vec<String>,
}

/// The register answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    /// The node's id (a UUID).
    pub node_id: String,
    /// The opaque token for `X-Node-Auth`.
    pub auth_token: String,
}

impl std::fmt::Debug for RegisterResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterResponse")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// `POST /grid/auth/device/start` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStart {
    /// What the node polls with.
    pub device_code: String,
    /// What the operator types on the web page.
    pub user_code: String,
    /// Where the operator approves.
    pub verify_url: String,
    /// Seconds between polls.
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// Seconds until the codes expire.
    #[serde(default)]
    pub expires_in: u64,
}

fn default_interval() -> u64 {
    3
}

/// `POST /grid/auth/device/poll` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePollRequest {
    /// From [`DeviceStart`].
    pub device_code: String,
}

/// `POST /grid/auth/device/poll` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicePoll {
    /// `pending`, `approved` or `expired`.
    pub status: String,
    /// With `approved`: the single-use registration code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_code: Option<String>,
    /// With `approved`: the wallet that approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wallet_address: Option<String>,
}

/// What a node can do, in its heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Streams its answers.
    #[serde(default)]
    pub streaming: bool,
    /// Context per slot, in tokens.
    #[serde(default)]
    pub context_size: u32,
    /// Our extension: serves embeddings jobs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embeddings: bool,
}

/// `POST /grid/nodes/heartbeat` body (§3.5).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Busy slots over all slots, measured (0 idle, 1 full).
    pub current_load: f64,
    /// The served model; empty while the engine is unhealthy.
    pub available_models: Vec<String>,
    /// The X25519 public key, base58.
    pub encryption_public_key: String,
    /// The key binding (§2.4), base58.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_public_key_signature: Option<String>,
    /// The key binding's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_version: Option<u32>,
    /// What the node can do.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Jobs in flight; always sent, even empty.
    #[serde(default)]
    pub active_job_ids: Vec<String>,
    /// Hex SHA-256 of the running executable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_hash: Option<String>,
    /// Parallel slots.
    #[serde(default = "one")]
    pub max_concurrent_jobs: u32,
}

fn one() -> u32 {
    1
}

/// A job handed to a node (heartbeat `pending_jobs`, or a WebSocket `job`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingJob {
    /// Its id.
    pub id: String,
    /// `inference` (or our `embeddings`).
    pub job_type: String,
    /// Ignored by the node: the model is chosen by the coordinator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What to run ([`JobInput::parse`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_payload: Option<Value>,
}

/// The heartbeat answer.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    /// `ok`.
    pub status: String,
    /// Jobs to run.
    #[serde(default)]
    pub pending_jobs: Vec<PendingJob>,
    /// A rotated token: persist it and use it from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_auth_token: Option<String>,
    /// When the new token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<String>,
}

impl std::fmt::Debug for HeartbeatResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatResponse")
            .field("status", &self.status)
            .field("pending_jobs", &self.pending_jobs)
            .field("token_rotated", &self.new_auth_token.is_some())
            .finish()
    }
}

/// A message the coordinator pushes over the node's WebSocket (§3.6).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// A job, dispatched as a heartbeat's would be.
    Job {
        /// The job.
        job: PendingJob,
    },
    /// Answer `{"type":"pong"}`.
    Ping,
    /// The node's answer to a ping.
    Pong,
    /// A rotated token.
    TokenRotated {
        /// The token.
        new_auth_token: String,
        /// When it expires.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_expires_at: Option<String>,
    },
    /// Acks and errors the node ignores.
    #[serde(other)]
    Other,
}

impl std::fmt::Debug for ServerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerMessage::Job { job } => f.debug_struct("Job").field("job", job).finish(),
            ServerMessage::Ping => f.write_str("Ping"),
            ServerMessage::Pong => f.write_str("Pong"),
            ServerMessage::TokenRotated { .. } => f.write_str("TokenRotated"),
            ServerMessage::Other => f.write_str("Other"),
        }
    }
}

/// One chat message. `content` must be a string (§3.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The `enc` object of a sealed request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enc {
    /// base58 sealed blob.
    pub ciphertext: String,
    /// The client's ephemeral X25519 key, base58.
    pub client_ephemeral_pubkey: String,
    /// Where the answer is sealed to, base58.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_response_pubkey: Option<String>,
    /// The sealing version; absent means v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
}

/// The request sealed inside `enc` (and the plain payload's fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InnerRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Most tokens to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Whether the client reads a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// 16 random bytes, base58, bound into every stream chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// A job's payload, read and checked against the limits of §3.8.
#[derive(Clone, Debug, PartialEq)]
pub enum JobInput {
    /// Messages the coordinator passed through.
    Plain(ChatRequest),
    /// A sealed request, and whether the coordinator marked it for streaming.
    Sealed {
        /// The `enc` object.
        enc: Enc,
        /// The cleartext `stream` marker.
        stream: bool,
        /// The cleartext `max_tokens` the chat was quoted and paid for (ours): the node writes
        /// no more than this, whatever the sealed request asks, so a caller cannot pay for
        /// one token and be served 8192.
        max_tokens: Option<u64>,
    },
    /// Our embeddings extension.
    Embeddings(Vec<String>),
}

/// A chat request with its limits applied (temperature and `max_tokens` in range).
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The conversation (at most 256 messages, 4 MiB).
    pub messages: Vec<ChatMessage>,
    /// In [0, 2].
    pub temperature: f64,
    /// In [1, 8192].
    pub max_tokens: u32,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The request nonce bound into stream chunks ("" when absent).
    pub nonce: String,
}

/// Why a payload was refused; the text is what the node reports in `/fail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Not the shape of §3.8.
    #[error("Invalid messages format: {0}")]
    Format(String),
    /// Over a limit.
    #[error("input over the limit: {0}")]
    TooLarge(String),
}

impl ChatRequest {
    /// Applies the limits of §3.8 to a request.
    ///
    /// # Errors
    /// [`InputError::TooLarge`] over 256 messages or 4 MiB; [`InputError::Format`] without
    /// messages.
    pub fn from_inner(inner: InnerRequest) -> Result<ChatRequest, InputError> {
        if inner.messages.is_empty() {
            return Err(InputError::Format("no messages".into()));
        }
        if inner.messages.len() > limits::MAX_MESSAGES {
            return Err(InputError::TooLarge(format!(
                "{} messages; at most {} are accepted",
                inner.messages.len(),
                limits::MAX_MESSAGES
            )));
        }
        let bytes = inner
            .messages
            .iter()
            .map(|m| m.role.len().saturating_add(m.content.len()))
            .fold(0usize, usize::saturating_add);
        if bytes > limits::MAX_MESSAGE_BYTES {
            return Err(InputError::TooLarge(format!(
                "{bytes} bytes of messages; at most 4 MiB are accepted"
            )));
        }
        Ok(ChatRequest {
            messages: inner.messages,
            temperature: limits::temperature(inner.temperature),
            max_tokens: limits::max_tokens(inner.max_tokens),
            stream: inner.stream.unwrap_or(false),
            nonce: inner.nonce.unwrap_or_default(),
        })
    }

    /// Reads a decrypted inner request.
    ///
    /// # Errors
    /// [`InputError`].
    pub fn from_json(bytes: &[u8]) -> Result<ChatRequest, InputError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|_| InputError::Format("the request is not JSON".into()))?;
        ChatRequest::from_inner(inner_from_value(&value)?)
    }
}

fn inner_from_value(value: &Value) -> Result<InnerRequest, InputError> {
    if let Some(messages) = value.get("messages").and_then(Value::as_array)
        && messages
            .iter()
            .any(|m| !m.get("content").is_some_and(Value::is_string))
    {
        return Err(InputError::Format(
            "every message's content must be a string (content parts are not supported)".into(),
        ));
    }
    serde_json::from_value(value.clone()).map_err(|e| InputError::Format(e.to_string()))
}

impl JobInput {
    /// Reads a job's payload: sealed (`enc`), plain (`messages`, or `prompt`), or for an
    /// embeddings job, `input`.
    ///
    /// # Errors
    /// [`InputError`] naming what was wrong.
    pub fn parse(job_type: &str, payload: Option<&Value>) -> Result<JobInput, InputError> {
        let Some(payload) = payload else {
            return Err(InputError::Format("the job has no input".into()));
        };
        if job_type == JOB_EMBEDDINGS {
            let input = match payload.get("input") {
                Some(Value::String(text)) => vec![text.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| InputError::Format("`input` must be strings".into()))?,
                _ => {
                    return Err(InputError::Format(
                        "`input` must be a string or strings".into(),
                    ));
                }
            };
            if input.len() > limits::MAX_MESSAGES {
                return Err(InputError::TooLarge(format!(
                    "{} inputs; at most {} are accepted",
                    input.len(),
                    limits::MAX_MESSAGES
                )));
            }
            let bytes = input
                .iter()
                .map(String::len)
                .fold(0usize, usize::saturating_add);
            if bytes > limits::MAX_MESSAGE_BYTES {
                return Err(InputError::TooLarge(format!(
                    "{bytes} bytes of input; at most 4 MiB are accepted"
                )));
            }
            return Ok(JobInput::Embeddings(input));
        }
        if let Some(enc) = payload.get("enc") {
            let enc: Enc = serde_json::from_value(enc.clone())
                .map_err(|e| InputError::Format(format!("`enc`: {e}")))?;
            if enc.ciphertext.len() > crate::seal::MAX_SEALED_B58 {
                return Err(InputError::TooLarge(format!(
                    "a sealed request of {} characters; at most 512 KiB of base58 are accepted",
                    enc.ciphertext.len()
                )));
            }
            let stream = payload
                .get("stream")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let max_tokens = payload.get("max_tokens").and_then(Value::as_u64);
            return Ok(JobInput::Sealed {
                enc,
                stream,
                max_tokens,
            });
        }
        if let Some(prompt) = payload.get("prompt") {
            let Some(prompt) = prompt.as_str() else {
                return Err(InputError::Format("`prompt` must be a string".into()));
            };
            return ChatRequest::from_inner(InnerRequest {
                messages: vec![ChatMessage {
                    role: "user".into(),
                    content: prompt.to_owned(),
                }],
                temperature: payload.get("temperature").and_then(Value::as_f64),
                max_tokens: payload.get("max_tokens").and_then(Value::as_u64),
                stream: None,
                nonce: None,
            })
            .map(JobInput::Plain);
        }
        ChatRequest::from_inner(inner_from_value(payload)?).map(JobInput::Plain)
    }
}

/// The result a node writes for a plain job (carried as a string in `encrypted_result`), and
/// the plaintext of a sealed non-stream answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlainResult {
    /// The answer.
    pub content: String,
    /// The model that wrote it.
    pub model: String,
    /// Token counts.
    pub usage: Usage,
}

/// The result of an embeddings job (our extension), as a string in `encrypted_result`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsResult {
    /// One vector per input, in order.
    pub embeddings: Vec<Vec<f32>>,
    /// The model.
    pub model: String,
    /// Token counts (prompt tokens only).
    pub usage: Usage,
}

/// `sealed_result` on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedResultWire {
    /// base58 sealed blob.
    pub ciphertext: String,
    /// The node's ephemeral key.
    pub ephemeral_public_key: String,
    /// The sealing version.
    pub algorithm: String,
}

/// `POST /grid/jobs/{id}/complete` body: plain (`encrypted_result`) or sealed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompleteBody {
    /// The plain result JSON as a string (not encrypted, despite the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_result: Option<String>,
    /// The sealed result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_result: Option<SealedResultWire>,
    /// Cleartext token counts (with a sealed result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The node's signature ([`crate::envelope`]).
    pub result_envelope_signature: String,
    /// `v1`.
    pub result_envelope_version: String,
}

/// `POST /grid/jobs/{id}/fail` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailBody {
    /// Why.
    pub reason: String,
}

/// One stream chunk a node posts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChunkBody {
    /// Its place, from 0.
    pub seq: u64,
    /// Whether it is the last.
    #[serde(rename = "final")]
    pub last: bool,
    /// base58 sealed blob.
    pub ciphertext: String,
    /// `x25519-xchacha20poly1305-hkdf-v2-stream`.
    pub algorithm: String,
    /// The stream's ephemeral key, on chunk 0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_public_key: Option<String>,
    /// Token counts, on the final chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The node's signature over the chunk.
    pub result_envelope_signature: String,
    /// `v1`.
    pub result_envelope_version: String,
}

/// What a node posts to `/grid/jobs/{id}/chunk`: a chunk, or `{"error": true}`.
#[derive(Clone, Debug, PartialEq)]
pub enum ChunkPost {
    /// A chunk.
    Chunk(ChunkBody),
    /// The stream failed: abort the client's stream.
    Error(StreamError),
}

/// A stream error: `{"error": true}`, and (ours, optional) why and what was delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamError {
    /// Why the stream failed, for the job's record and the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The tokens in the chunks already delivered (`prompt_tokens` 0, as a stream the client
    /// left is billed): the only tokens a failed stream may be billed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ChunkPost {
    /// Reads a chunk post.
    ///
    /// # Errors
    /// The serde error when it is neither shape.
    pub fn parse(bytes: &[u8]) -> Result<ChunkPost, serde_json::Error> {
        let value: Value = serde_json::from_slice(bytes)?;
        if value.get("error").and_then(Value::as_bool) == Some(true) {
            return serde_json::from_value(value).map(ChunkPost::Error);
        }
        serde_json::from_value(value).map(ChunkPost::Chunk)
    }

    /// The body of a stream error.
    pub fn error_body(error: &StreamError) -> Value {
        let mut body = serde_json::to_value(error).unwrap_or_else(|_| serde_json::json!({}));
        body["error"] = Value::Bool(true);
        body
    }
}

/// The answer to a chunk post.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkAck {
    /// Accepted.
    #[serde(default)]
    pub ok: bool,
    /// The client went away: stop generating.
    #[serde(default)]
    pub closed: bool,
}

/// `POST /grid/nodes/{id}/challenge` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The text to sign.
    pub challenge: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// What our node says about its machine. Only facts it can read; no claimed enclave. The
/// field order is fixed: the report signature covers this struct's JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardwareReport {
    /// The challenge it answers (binds the report to it).
    pub challenge: String,
    /// The real TEE type: `none` without a hardware root of trust.
    pub tee_type: String,
    /// `linux`, `macos`, ...
    pub os: String,
    /// The kernel release, when readable.
    pub kernel_version: String,
    /// CPU cores.
    pub cpu_cores: u32,
    /// RAM in bytes, from the OS.
    pub memory_bytes: u64,
    /// The GPU, or `none`.
    pub gpu_model: String,
    /// Hex SHA-256 of the running executable.
    pub binary_hash: String,
    /// Whether a hardware TEE report is attached ([`HardwareReport::tee_evidence`]); `false`
    /// says plainly that there is no hardware root of trust.
    pub hardware_attested: bool,
    /// A TDX quote or SEV-SNP report from configfs-tsm whose report data is
    /// [`crate::envelope::tee_report_data`] (absent on machines without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee_evidence: Option<TeeEvidence>,
}

/// A hardware TEE report, as configfs-tsm gave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeeEvidence {
    /// configfs-tsm's `provider`: `tdx_guest` or `sev_guest`.
    pub provider: String,
    /// The report data written to `inblob`, hex.
    pub report_data: String,
    /// The report (`outblob`), hex.
    pub report: String,
}

impl HardwareReport {
    /// The JSON the report signature covers.
    pub fn signed_json(&self) -> String {
        // Serializing a struct of strings, integers and a bool cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `POST /grid/nodes/{id}/verify-attestation` body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyAttestation {
    /// The node key's signature over the challenge's UTF-8 bytes, base58.
    pub signature: String,
    /// The X25519 public key.
    pub encryption_public_key: String,
    /// The report.
    pub hardware_report: Value,
    /// Ours: the node key's signature over [`crate::envelope::report_message`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_signature: Option<String>,
}

/// Its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationVerdict {
    /// Whether the coordinator accepted it.
    pub verified: bool,
    /// The node's status afterwards.
    pub status: String,
}

/// `POST /grid/nodes/{id}/status` body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GridStatus {
    /// Whether the node takes no new jobs.
    pub off_grid: bool,
}

/// `POST /grid/nodes/{id}/prices` body: set a price (USD per 1M tokens, kept as the
/// decimal text written) or reset it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SetPrice {
    /// The model.
    pub model: String,
    /// USD per 1M input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_per_m: Option<Box<RawValue>>,
    /// USD per 1M output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_per_m: Option<Box<RawValue>>,
    /// Back to the suggested price.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
}

/// `GET /grid/nodes/{id}` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `online`, `offline`, `off_grid`, ...
    pub status: String,
    /// Whether its attestation was accepted.
    #[serde(default)]
    pub attestation_verified: bool,
    /// Reputation, when the coordinator keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reputation_score: Option<f64>,
    /// Jobs completed (also read as `total_jobs_completed`).
    #[serde(default, alias = "total_jobs_completed")]
    pub jobs_completed: u64,
    /// Jobs failed (also read as `total_jobs_failed`).
    #[serde(default, alias = "total_jobs_failed")]
    pub jobs_failed: u64,
}

/// `GET /grid/allowed-binaries` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedBinaries {
    /// Hex SHA-256 of each allowed executable.
    pub hashes: Vec<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn payloads_are_read_as_the_reference_writes_them() {
        let plain = JobInput::parse(
            JOB_INFERENCE,
            Some(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 99999})),
        )
        .unwrap();
        let JobInput::Plain(chat) = plain else {
            panic!("{plain:?}")
        };
        assert_eq!((chat.max_tokens, chat.temperature), (8192, 0.7));
        let prompt = JobInput::parse(JOB_INFERENCE, Some(&json!({"prompt": "hi"}))).unwrap();
        assert!(matches!(prompt, JobInput::Plain(c) if c.messages[0].content == "hi"));
        let sealed = JobInput::parse(
            JOB_INFERENCE,
            Some(
                &json!({"enc": {"ciphertext": "x", "client_ephemeral_pubkey": "y",
                "client_response_pubkey": "z", "algorithm": "x25519-xchacha20poly1305-hkdf-v2"},
                "stream": true}),
            ),
        )
        .unwrap();
        assert!(matches!(sealed, JobInput::Sealed { stream: true, .. }));
        let embed = JobInput::parse(JOB_EMBEDDINGS, Some(&json!({"input": ["a", "b"]}))).unwrap();
        assert_eq!(embed, JobInput::Embeddings(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn payloads_over_the_limits_or_malformed_are_refused_with_the_reason() {
        let parts =
            json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        let error = JobInput::parse(JOB_INFERENCE, Some(&parts)).unwrap_err();
        assert!(
            error.to_string().starts_with("Invalid messages format"),
            "{error}"
        );
        let many: Vec<_> = (0..257)
            .map(|_| json!({"role": "user", "content": "x"}))
            .collect();
        let error = JobInput::parse(JOB_INFERENCE, Some(&json!({ "messages": many }))).unwrap_err();
        assert!(matches!(error, InputError::TooLarge(_)), "{error}");
        let big = "x".repeat(4 * 1024 * 1024);
        let error = JobInput::parse(
            JOB_INFERENCE,
            Some(&json!({"messages": [{"role": "user", "content": big}]})),
        )
        .unwrap_err();
        assert!(matches!(error, InputError::TooLarge(_)), "{error}");
        assert!(JobInput::parse(JOB_INFERENCE, None).is_err());
        assert!(JobInput::parse(JOB_INFERENCE, Some(&json!({"messages": []}))).is_err());
        assert!(JobInput::parse(JOB_INFERENCE, Some(&json!({"prompt": 5}))).is_err());
    }

    #[test]
    fn server_messages_and_chunk_posts_round_trip() {
        let job: ServerMessage = serde_json::from_str(
            r#"{"type":"job","job":{"id":"j","job_type":"inference","input_payload":{"prompt":"p"}}}"#,
        )
        .unwrap();
        assert!(matches!(job, ServerMessage::Job { job } if job.id == "j"));
        let ping: ServerMessage = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(ping, ServerMessage::Ping);
        let ack: ServerMessage = serde_json::from_str(r#"{"type":"stream_chunk_ack"}"#).unwrap();
        assert_eq!(ack, ServerMessage::Other);
        assert_eq!(
            serde_json::to_string(&ServerMessage::Pong).unwrap(),
            r#"{"type":"pong"}"#
        );
        assert_eq!(
            ChunkPost::parse(br#"{"error":true}"#).unwrap(),
            ChunkPost::Error(StreamError::default())
        );
        let failed = StreamError {
            reason: Some("engine died".into()),
            usage: Some(Usage::new(0, 12)),
        };
        let body = ChunkPost::error_body(&failed);
        assert_eq!(body["error"], true);
        assert_eq!(body["usage"]["completion_tokens"], 12);
        assert_eq!(
            ChunkPost::parse(body.to_string().as_bytes()).unwrap(),
            ChunkPost::Error(failed)
        );
        assert_eq!(
            ChunkPost::error_body(&StreamError::default()).to_string(),
            r#"{"error":true}"#
        );
        let chunk = ChunkPost::parse(
            br#"{"seq":0,"final":true,"ciphertext":"c","algorithm":"a","result_envelope_signature":"s","result_envelope_version":"v1"}"#,
        )
        .unwrap();
        assert!(matches!(chunk, ChunkPost::Chunk(c) if c.last && c.seq == 0));
        let status: NodeStatus =
            serde_json::from_str(r#"{"status":"online","total_jobs_completed":3,"jobs_failed":1}"#)
                .unwrap();
        assert_eq!((status.jobs_completed, status.jobs_failed), (3, 1));
    }
}
