//! The default engine (§4.2, §4.4, §4.5, §8.2, §8.11, §8.14): a `llama-server` process the
//! node starts, drains, health-checks and restarts.
//!
//! - [`find_llama_server`]: which binary (never `llama-cli`).
//! - [`preset`]: threads, GPU layers and slots from the machine and `--resource-percent`,
//!   and the wedge watchdog's threshold from the model's size; [`plan`] puts them together
//!   with the operator's flags ([`EngineOptions`]).
//! - [`ServerCommand`] and [`SpawnLauncher`]: the command line, a loopback port, a per-start
//!   API key, and the child's stdout and stderr drained into the log.
//! - [`LlamaServer`]: the [`crate::Engine`] — supervision, the watchdog, and the HTTP calls
//!   to the server (whole and streamed answers with the server's own token counts).
//!
//! Tests drive [`LlamaServer`] with a [`Launch`] of their own (an in-process fake server under
//! tokio's paused clock) and, end to end, with the real `llama-server` that xtask installs.

mod api;
mod find;
mod plan;
pub mod preset;
mod process;
mod supervisor;

pub use find::{WELL_KNOWN, find_llama_server};
pub use plan::{EngineOptions, Plan, model_name, plan};
pub use process::{Instance, Launch, MAX_LINE, Process, ServerCommand, SpawnLauncher};
pub use supervisor::{EngineStatus, LlamaServer, Phase, Supervision};
