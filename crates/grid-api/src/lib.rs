//! OpenAI-compatible client for the confidential inference grid (`grid.x402compute.cc`).
//!
//! This crate will hold the grid client: models, capacity, providers, pricing and streaming
//! chat, sealed end to end to an attested node key, paid per request with x402 through
//! [`x402_core`].
//!
//! **Status:** empty. The client arrives with the grid issue; until then this crate exports
//! nothing. The wire facts it will follow are in `shared/reference/grid-and-node.md`.
