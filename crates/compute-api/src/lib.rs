//! Client for the machines provisioning API (`compute.x402layer.cc` and the local devnet).
//!
//! This crate will hold the typed client for browsing plans, regions and OS images;
//! provisioning, extending, resizing and destroying GPU/VPS instances; and paying for them
//! with x402 (through [`x402_core`]), MPP or prepaid credits, authenticated by wallet
//! signature or `x402c_…` API key.
//!
//! **Status:** empty. The client arrives with the CLI and machines-client issues; until then
//! this crate exports nothing, so nothing here can be mistaken for a working client.
//! The wire facts it will follow are in `shared/reference/compute-api.md`.
