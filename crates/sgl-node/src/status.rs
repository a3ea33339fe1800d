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

use grid_proto::node::NodeStatus;
use serde::{Deserialize, Serialize};

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
}
