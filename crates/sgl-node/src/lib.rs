//! The `sgl` grid node: it joins the confidential inference grid, takes jobs from the
//! coordinator and posts signed (and, for sealed requests, end-to-end encrypted) results
//! (`shared/reference/grid-and-node.md` §3, §5, §6, §8). The wire types and the cryptography
//! are `grid_proto`'s; this crate adds the IO.
//!
//! - [`node`]: the runtime — [`Node::start`] runs heartbeats, the push WebSocket and the
//!   jobs on the current tokio runtime and returns a [`NodeHandle`] (`status`, graceful
//!   `shutdown`, `abort`).
//! - [`engine`]: the [`Engine`] trait a model server implements (llama.cpp comes next; until
//!   then `sgl start` registers and heartbeats without advertising a model).
//! - [`coordinator`]: the REST calls (§3.2), [`files`]: `node.json` and `keypair.json`,
//!   [`identity`]: the node's keys and token, [`register`]: `init` and device login,
//!   [`hardware`]: the machine's facts and `attest`, [`price`]: decimal prices,
//!   [`status`]: the `status --json` shape, [`url`]: the coordinator URL rule.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> sgl_node::Result<()> {
//! use sgl_node::{ConfigDir, Node, NodeConfig, OrchestratorUrl};
//!
//! let dir = ConfigDir::new("/home/me/.config/sgl-node".into());
//! let (file, identity) = dir.identity()?;
//! let mut config = NodeConfig::new(OrchestratorUrl::parse(&file.orchestrator_url)?, identity);
//! config.persist_token = Some(dir.token_persister());
//! let node = Node::start(config, None)?;
//! tokio::signal::ctrl_c().await.ok();
//! let last = node.shutdown().await;
//! println!("{} jobs completed", last.completed);
//! # Ok(())
//! # }
//! ```
//!
//! No crate features.

pub mod coordinator;
pub mod engine;
pub mod files;
pub mod hardware;
pub mod identity;
pub mod llama;
pub mod node;
pub mod price;
pub mod register;
pub mod service;
pub mod status;
pub mod tsm;
pub mod url;

mod backoff;
mod dispatch;
mod error;
mod job;
mod ws;

pub use crate::coordinator::{Coordinator, NodeClient, install_crypto_provider};
pub use crate::engine::{ChatStream, Completion, Engine, StreamEvent};
pub use crate::error::{Error, Result};
pub use crate::files::{ConfigDir, NodeFile, TokenPersister};
pub use crate::identity::{AuthToken, Identity, Keypair};
pub use crate::node::{HANDED_BACK, Node, NodeConfig, NodeHandle, NodeSnapshot, RetryPolicy};
pub use crate::url::{DEFAULT_ORCHESTRATOR_URL, OrchestratorUrl};
