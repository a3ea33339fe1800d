//! Client for the confidential inference grid (`grid.x402compute.cc`), OpenAI-compatible and
//! sealed end to end to an attested node key.
//!
//! - [`chat`]: chat completions, sealed end to end by default to a node whose key binding
//!   verifies ([`reserve`]), or plain (labelled non-confidential); streamed or whole; paid from
//!   an API key's credits or per request with x402 through `x402-reqwest`.
//! - [`stream`]: SSE through `eventsource-stream`, each way a stream ends told apart.
//! - [`jobs`]: embeddings, asynchronous jobs, and a job's attestation checked here.
//! - [`client`]: the [`client::GridClient`] and the endpoints without a prompt (models,
//!   capacity, pricing, providers, reserve).
//! - [`seal`], [`envelope`], [`node`], [`limits`]: the wire, from `grid-proto`.
//!
//! The wire facts are in `shared/reference/grid-and-node.md`.

pub mod chat;
pub mod client;
pub mod jobs;
pub mod reserve;
pub use grid_proto::{Usage, envelope, limits, node, seal};

/// OpenAI's wire types (`async-openai`'s, types only), so callers need no other dependency.
pub use async_openai::types as openai;
pub mod stream;
