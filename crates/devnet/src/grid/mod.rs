//! The grid coordinator (`grid.x402compute.cc`'s stand-in): the node protocol of
//! `grid-and-node.md` §3 (`nodes`, `results`, `ws`) and the OpenAI-compatible client API of
//! §1 (`catalog`, `chat`), over the same store, cashier, API keys, clock and faults as the
//! machines API.
//!
//! # Choices the reference leaves open
//!
//! All of them are made here, in one place:
//!
//! - **Registration** needs a single-use code bound to a wallet (device login approval, or the
//!   devnet route `POST /devnet/grid/codes`); `wallet_address` must be the code's. There is no
//!   stake check. Node ids are UUID v4 from the devnet's random source; auth tokens are
//!   random and stored only as their SHA-256.
//! - **Token rotation** (`POST /devnet/grid/nodes/{id}/rotate-token`): the new token is pushed
//!   over the node's WebSocket and returned by every heartbeat until the node first uses it;
//!   the old token keeps working until then, and is revoked by that first use (no timer).
//! - **Liveness**: a node is live when its last heartbeat is within 15 s of the devnet's clock,
//!   it is not off-grid, not tampered, and advertises a model. A node whose heartbeats stop is
//!   counted once as `heartbeat_lost`.
//! - **Dispatch**: a job is pushed over the node's WebSocket when it has one, and offered once
//!   more by the next heartbeat either way (the node de-duplicates by id). The ghost reconciler
//!   fails a running job handed over before the previous heartbeat and missing from
//!   `active_job_ids`. A WebSocket that closes (`socket_drop`) fails the node's active jobs.
//! - **Timeouts**: an active job with no progress for 120 s, or whose node has not sent a
//!   heartbeat for 15 s, fails (`job_timeout`). The sweep runs every second and on every
//!   heartbeat, on the devnet's clock.
//! - **Failover**: a plain chat or embeddings job that fails before anything reached the client
//!   is dispatched again, as a new job, to the next candidate; a sealed job is bound to its
//!   reserved node and fails to the client. A plain stream's answer (and its `X-Grid-Job-Id`)
//!   starts with the first chunk, so a failover never shows.
//! - **Billing**: prices are micro-dollars per 1M tokens. A request holds its quote: the cost
//!   at the node's price of `body bytes + 64` prompt tokens (bytes are at least tokens) and
//!   `max_tokens` (default 2048, at most 8192) completion tokens, at least $0.000001. The job's
//!   cost is `ceil((prompt × input + completion × output) / 10^6)` micro-dollars, capped at
//!   the hold, and is written with the job and the refund of the rest in one transaction; a
//!   failed or aborted job refunds the whole hold, but for a stream whose node reports in its
//!   error chunk (our extension, `grid_proto::node::StreamError`) the tokens already relayed
//!   to the client: those are billed, the job still fails with the node's reason. A stream the client abandoned is billed for
//!   what the node's final chunk reports; a non-stream answer whose client went away is not
//!   billed.
//! - **Payment**: an API key (`Authorization: Bearer` or `X-API-Key`, the machines API's keys)
//!   bills its wallet's credits. Without a key, a chat is paid with x402 through the cashier:
//!   the 402 asks for the quote, the payment credits the payer, the job holds from those
//!   credits, and **undelivered tokens are returned to the payer's credits** (as is the whole
//!   amount when no node can finish). Embeddings and `/grid/jobs` need a key.
//! - **Reservations** (`/v1/reserve`) last 60 s, are single use, bound to the node and to the
//!   key's wallet; one made without a key is an x402 reservation, and the chat that uses it
//!   pays with x402. The answer adds the node's `encryption_public_key_signature` and
//!   `key_version` from its heartbeat, so a client can check the key binding. A reservation
//!   holds no slot: x402 reservations need no key, so slots held by them would let anyone
//!   block every node for free (and a client that refuses the node's key would hold one for
//!   60 s); a chat whose reserved node is busy gets `node_unavailable` and reserves again.
//! - **Plain streams** are sealed by the coordinator to the node (v2, its own ephemeral and
//!   response keys and nonce) and opened here in order; the client reads OpenAI
//!   `chat.completion.chunk` events.
//! - **Attestation** `verified` means: the node's identity key signed the single-use challenge,
//!   and its hardware report (whose `challenge` field is that challenge) is signed by the same
//!   key, and its binary is allowlisted when an allowlist is set. It is **not** hardware
//!   attestation; the TEE type is stored as reported (an honest `none` is accepted).
//! - **Results** are checked against the node's ed25519 key (`sgl-result-v1`); a forged
//!   signature answers 403, fails the job, and marks the node tampered: it is never routed
//!   again and shows in `/grid/capacity`.
//! - **Prices**: a suggested table per model (`pricing`); a node's own price must stay
//!   within suggested × 0.5 to suggested × 5, for a model it advertises. Anti-flap: one change
//!   (set or reset) per node and model every 30 s of the devnet's clock (the reference names a
//!   "short cooldown" without its length); the last change times live in memory.
//! - **Embeddings** (our extension) go to nodes whose heartbeat says
//!   `capabilities.embeddings: true`, as job type `embeddings`, billed at the input price.
//! - **Faults** (`POST /devnet/faults`): `grid_swap_reserved_key` answers a reservation with
//!   another valid X25519 key (keeping the node's signature), `grid_swap_reserved_signature`
//!   with a wrong signature, and `grid_stream_fault` (`reorder`, `truncate`, `tamper`) alters
//!   the sealed chunks sent to a client: chunks 0 and 1 swapped; the final chunk dropped (the
//!   stream ends with `data: [DONE]`); a character of chunk 0's `ct` changed.

mod catalog;
mod chat;
mod live;
mod nodes;
mod pricing;
mod results;
mod routing;
mod ws;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use grid_proto::node::PendingJob;
use serde_json::json;
use x402_core::PayTo;

use crate::api::{ApiError, ApiResult};
use crate::auth::{API_KEY_HEADER, Authenticator, key_hash};
use crate::clock::{SharedClock, SharedRandom};
use crate::faults::Faults;
use crate::payment::Cashier;
use crate::store::{GridJob, GridNode, Store};
use live::{JobEvent, Live};

/// How often the timeout sweep runs (it reads the devnet's clock).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// A job with no progress for this long fails.
const JOB_TIMEOUT_MS: u64 = 120_000;

/// Everything the grid handlers share.
pub struct Grid {
    store: Arc<Store>,
    auth: Arc<Authenticator>,
    cashier: Arc<Cashier>,
    clock: SharedClock,
    random: SharedRandom,
    faults: Arc<Faults>,
    url: String,
    live: Arc<Live>,
    /// When each (node, model) price last changed, unix ms (the anti-flap cooldown).
    price_changes: std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
}

/// The shortest time between two price changes of one node and model.
pub(crate) const PRICE_COOLDOWN_MS: u64 = 30_000;

impl std::fmt::Debug for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grid")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Grid {
    /// The coordinator over the shared ledger, auth, cashier, clock, randomness and faults;
    /// `url` is the devnet's public base URL (for device login links).
    pub fn new(
        store: Arc<Store>,
        auth: Arc<Authenticator>,
        cashier: Arc<Cashier>,
        clock: SharedClock,
        random: SharedRandom,
        faults: Arc<Faults>,
        url: String,
    ) -> Grid {
        Grid {
            store,
            auth,
            cashier,
            clock,
            random,
            faults,
            url,
            live: Arc::new(Live::default()),
            price_changes: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Records a price change of `node`'s `model` now, or says how long to wait.
    pub(crate) fn price_change(&self, node: &str, model: &str) -> Result<(), u64> {
        let now = self.now_ms();
        let mut changes = self
            .price_changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let key = (node.to_owned(), model.to_owned());
        if let Some(last) = changes.get(&key) {
            let next = last.saturating_add(PRICE_COOLDOWN_MS);
            if now < next {
                return Err(next - now);
            }
        }
        changes.insert(key, now);
        Ok(())
    }

    /// The grid routes: the node protocol, the client API and the devnet-only grid routes.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            // node side
            .route("/grid/nodes/register", post(nodes::register))
            .route("/grid/auth/device/start", post(nodes::device_start))
            .route("/grid/auth/device/poll", post(nodes::device_poll))
            .route("/grid/nodes/heartbeat", post(nodes::heartbeat))
            .route("/grid/nodes/{id}/ws", get(ws::connect))
            .route("/grid/nodes/{id}/challenge", post(nodes::challenge))
            .route(
                "/grid/nodes/{id}/verify-attestation",
                post(nodes::verify_attestation),
            )
            .route("/grid/nodes/{id}/status", post(nodes::set_status))
            .route(
                "/grid/nodes/{id}/prices",
                get(nodes::prices).post(nodes::set_price),
            )
            .route("/grid/nodes/{id}", get(nodes::node_status))
            .route("/grid/allowed-binaries", get(nodes::allowed_binaries))
            .route("/grid/jobs/{id}/complete", post(results::complete))
            .route("/grid/jobs/{id}/fail", post(results::fail_job))
            .route("/grid/jobs/{id}/chunk", post(results::chunk))
            // client side
            .route("/v1/models", get(catalog::openai_models))
            .route("/grid/models", get(catalog::models))
            .route("/grid/pricing", get(catalog::pricing))
            .route("/grid/capacity", get(catalog::capacity))
            .route("/v1/providers", get(catalog::providers))
            .route("/v1/reserve", post(catalog::reserve))
            .route("/v1/chat/completions", post(chat::completions))
            .route("/v1/embeddings", post(chat::embeddings))
            .route("/grid/jobs", post(chat::submit_job))
            .route("/grid/jobs/{id}", get(chat::job))
            .route("/grid/jobs/{id}/attestation", get(chat::attestation_of))
            // devnet only
            .route("/devnet/grid/codes", post(nodes::issue_code))
            .route("/devnet/grid/device", get(nodes::device_page))
            .route("/devnet/grid/device/approve", post(nodes::device_approve))
            .route(
                "/devnet/grid/allowed-binaries",
                put(nodes::set_allowed_binaries),
            )
            .route(
                "/devnet/grid/nodes/{id}/rotate-token",
                post(nodes::rotate_token),
            )
            .with_state(self)
    }

    /// Runs the timeout sweep every second until aborted.
    pub fn spawn_sweeper(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                if let Err(error) = self.sweep() {
                    tracing::warn!(%error, "the grid's timeout sweep failed; will retry");
                }
            }
        })
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    /// Fails the jobs that timed out and tells their clients.
    fn sweep(&self) -> crate::error::Result<()> {
        let now = self.now_ms();
        let failed = self.store.sweep_grid(
            now.saturating_sub(JOB_TIMEOUT_MS),
            now.saturating_sub(routing::LIVE_MS),
            now,
        )?;
        self.tell_failed(&failed);
        Ok(())
    }

    /// Tells the clients of failed jobs.
    fn tell_failed(&self, jobs: &[GridJob]) {
        for job in jobs {
            let reason = job.error.clone().unwrap_or_else(|| "the job failed".into());
            tracing::info!(job = %job.id, node = %job.node_id, %reason, "grid job failed");
            self.live.notify(
                &job.id,
                JobEvent::Failed {
                    reason,
                    billed_micros: job.cost_micros.unwrap_or(0),
                },
            );
        }
    }

    /// The node calling with `X-Node-Auth` (and, when given, the node it must be).
    fn node_auth(&self, headers: &HeaderMap, node_id: Option<&str>) -> ApiResult<GridNode> {
        let token = headers
            .get("x-node-auth")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("X-Node-Auth is required"))?;
        self.store
            .grid_node_by_token(node_id, &key_hash(token.trim()))?
            .ok_or_else(|| {
                ApiError::unauthorized("unknown or revoked node token (or not this node's)")
            })
    }

    /// The wallet of the caller's API key (`X-API-Key` or `Authorization: Bearer`), `None`
    /// without one (`sgl-anonymous` counts as none); 401 in the OpenAI shape for a bad key.
    fn key_wallet(&self, headers: &HeaderMap) -> ApiResult<Option<PayTo>> {
        let key = headers
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .or_else(|| {
                headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
            })
            .map(str::trim)
            .filter(|key| !key.is_empty() && *key != "sgl-anonymous");
        let Some(key) = key else {
            return Ok(None);
        };
        match self.auth.key_wallet(key)? {
            Some(wallet) => Ok(Some(wallet)),
            None => Err(oai(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "invalid or revoked API key",
            )),
        }
    }

    /// Like `key_wallet`, but a key is required.
    fn require_key(&self, headers: &HeaderMap) -> ApiResult<PayTo> {
        self.key_wallet(headers)?.ok_or_else(|| {
            oai(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "an API key is required: send Authorization: Bearer x402c_... (or X-API-Key)",
            )
        })
    }

    /// Random hex of `bytes` bytes.
    fn random_hex(&self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.random.fill(&mut buf);
        alloy::hex::encode(buf)
    }
}

/// A job as a node receives it.
fn pending_job(job: &GridJob) -> PendingJob {
    PendingJob {
        id: job.id.clone(),
        job_type: job.job_type.clone(),
        model: Some(job.model.clone()),
        input_payload: serde_json::from_str(&job.payload).ok(),
    }
}

/// A client-side error in OpenAI's shape: `{"error": {"message", "type", "code"}}`.
pub(crate) fn oai(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
    let kind = match status.as_u16() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 | 400 | 409 | 410 | 413 | 422 => "invalid_request_error",
        503 => "service_unavailable",
        _ => "api_error",
    };
    ApiError::with_body(
        status,
        json!({ "error": { "message": message.into(), "type": kind, "code": code } }),
    )
}

/// The word a node's state is shown as.
fn node_status_word(node: &GridNode, now_ms: u64) -> &'static str {
    if node.tampered {
        "tampered"
    } else if node.off_grid {
        "off_grid"
    } else if node
        .last_seen_ms
        .is_some_and(|seen| now_ms.saturating_sub(seen) <= routing::LIVE_MS)
    {
        "online"
    } else {
        "offline"
    }
}
