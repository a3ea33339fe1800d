//! The devnet: a local, faithful stand-in for the machines API (`compute.x402layer.cc`) and its
//! x402 facilitator, on real local chains.
//!
//! [`Devnet::start`] starts an `anvil` chain with chain id 84532 (Base Sepolia) whose USDC
//! (EIP-3009 and ERC-2612, 6 decimals, domain `USDC`/`2`) sits at the real Base Sepolia USDC
//! address, and a second anvil with chain id 4326 (MegaETH) carrying an 18-decimal MegaUSD-like
//! permit token at the real MegaUSD address; a litesvm Solana ledger with the Solana devnet
//! USDC mint and a fee payer; opens the SQLite state; and serves on one loopback port:
//!
//! - the machines API under `/compute/...` ([`machines`]);
//! - the grid coordinator under `/grid/...` and `/v1/...` ([`grid`]);
//! - the facilitator at `/supported`, `/verify`, `/settle` ([`facilitator`]);
//! - a Solana JSON-RPC subset over the litesvm ledger at `/solana` ([`chains::solana_rpc`]);
//! - devnet-only admin routes under `/devnet/...` ([`admin`]: funding wallets, fault injection).
//!
//! Every signature is verified with `x402-core` and every payment settles by a real
//! transaction on the local chain. State lives in the data directory: restarting with the same
//! directory keeps credits, API keys, used nonces, settlements and the chains' balances.
//!
//! # Where things are
//!
//! Dependencies inside the crate point down:
//!
//! - bottom: [`chains`] (anvil, litesvm, the Solana JSON-RPC), [`store`] (SQLite) and
//!   [`clock`] (the injected time and randomness);
//! - [`facilitator`] verifies and settles on the chains, claiming each payment in the store;
//! - [`payment`] is how a paid endpoint charges (offers, charge, receipts); [`auth`] is how a
//!   request is authenticated; [`faults`] is where faults are injected; `api` holds the JSON
//!   error body and formats every service shares;
//! - the services: [`machines`] and [`grid`] (one folder per service; Spraay comes next) and
//!   [`admin`];
//! - top: [`app`] mounts the services over the shared ledger and facilitator.
//!
//! **Status:** every machines endpoint (catalog, provision, instances, extend, resize,
//! password, destroy, credits, API keys) with wallet and API-key auth; x402 on Base Sepolia
//! (`exact`), MegaETH (`permit`) and Solana devnet (`exact`) or credits; the facilitator for
//! all three; settlement as a persisted state machine, durable before it is answered and
//! reconciled after a crash; `settlement_pending` and `payment-identifier`; fault injection
//! (provider rejection, boot delay, Solana transient 5xx, held confirmations, dropped answers,
//! crash points). The official Python SDK pays it and `x402conf live` passes against it.

pub mod admin;
mod api;
pub mod app;
pub mod auth;
pub mod chains;
pub mod clock;
mod error;
pub mod facilitator;
pub mod faults;
pub mod grid;
pub mod machines;
pub mod payment;
pub mod store;

pub use app::{Config, Devnet};
pub use chains::{SOLANA_TREASURY, TREASURY, base_sepolia_usdc, megaeth_usdm};
pub use clock::{OsRandom, RandomSource, SystemClock, TestClock};
pub use error::{Error, Result};
pub use faults::{FaultConfig, Faults, GridStreamFault};

/// Installs ring as the process's rustls crypto provider unless one is installed: reqwest
/// (under alloy's JSON-RPC client too) is built with `rustls-no-provider`, so that ring stays
/// the tree's one provider, and needs one before its first client. [`Devnet::start`] calls it;
/// so does a program that builds a `reqwest::Client` before starting a devnet.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one meanwhile: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
