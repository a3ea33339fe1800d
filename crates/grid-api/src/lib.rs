//! Client for the confidential inference grid (`grid.x402compute.cc`), OpenAI-compatible and
//! sealed end to end to an attested node key.
//!
//! **Status:** the sealing layer ([`seal`]: X25519, HKDF-SHA256, XChaCha20-Poly1305 with the
//! reference's AAD strings, streams bound chunk by chunk, and the node key binding) is here and
//! reproduces the cross-language test vector; [`stream`] reads plain and sealed SSE answers
//! with a distinct outcome for each way a stream ends; [`reserve`] gates sealing on the node's
//! key binding; [`client`] calls the endpoints that carry no prompt (models, capacity,
//! pricing, providers, reserve). The HTTP client, the devnet coordinator and the
//! node protocol come with the rest of the grid issue. The wire facts are in
//! `shared/reference/grid-and-node.md`.

pub mod client;
pub mod reserve;
pub use grid_proto::{Usage, envelope, limits, node, seal};
pub mod stream;
