//! `sgl status --json`: one JSON object a dashboard reads. Its field names are stable; new
//! fields may be added, none renamed or removed.
//!
//! ```json
//! {
//!   "node_id": "7f8d…", "wallet_address": "…", "tee_type": "none",
//!   "orchestrator_url": "https://grid.x402compute.cc",
//!   "public_key": "<ed25519, base58>", "encryption_public_key": "<X25519, base58>",
//!   "version": "0.1.0",
//!   "coordinator": { "status": "online", "attestation_verified": false,
//!                    "reputation_score": 0.9, "jobs_completed": 12, "jobs_failed": 1 },
//!   "coordinator_error": null
//! }
//! ```
//!
//! `coordinator` is `null` (and `coordinator_error` says why) when the coordinator could not
//! be asked; `reputation_score` is absent when it keeps none.
//!
//! `runtime` is what the running `sgl start` last wrote to `runtime.json` in the config
//! directory ([`RuntimeReport`]: its jobs and its engine's phase, restarts and last error), or
//! `null` when no node runs; `runtime_stale` is true when that file's writer is gone.

use grid_proto::node::NodeStatus;
use serde::{Deserialize, Serialize};

use crate::llama::EngineStatus;
use crate::node::NodeSnapshot;

/// What a running `sgl start` reports about itself, rewritten whenever it changes (and at
/// least every [`RuntimeReport::REFRESH_SECS`] seconds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeReport {
    /// The `sgl start` process.
    pub pid: u32,
    /// When it was written, Unix milliseconds.
    pub updated_at_ms: u64,
    /// The runtime's jobs and connections.
    pub node: NodeSnapshot,
    /// The engine, when a model is served.
    pub engine: Option<EngineStatus>,
}

impl RuntimeReport {
    /// The longest a running node leaves the file unwritten.
    pub const REFRESH_SECS: u64 = 10;

    /// Whether the report is older than three refreshes at `now_ms` (its writer is gone or
    /// stuck).
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.updated_at_ms) > 3 * Self::REFRESH_SECS * 1000
    }
}

/// The status a dashboard reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The node's id.
    pub node_id: String,
    /// The operator's wallet.
    pub wallet_address: String,
    /// The TEE type registered.
    pub tee_type: String,
    /// The coordinator.
    pub orchestrator_url: String,
    /// The ed25519 node key, base58.
    pub public_key: String,
    /// The X25519 encryption key, base58.
    pub encryption_public_key: String,
    /// This node's version.
    pub version: String,
    /// What the coordinator says (`GET /grid/nodes/{id}`), when it answered.
    pub coordinator: Option<NodeStatus>,
    /// Why the coordinator could not be asked.
    pub coordinator_error: Option<String>,
    /// What the running node last reported, if one has run here.
    #[serde(default)]
    pub runtime: Option<RuntimeReport>,
    /// Whether `runtime` is too old to describe a running node.
    #[serde(default)]
    pub runtime_stale: bool,
}
