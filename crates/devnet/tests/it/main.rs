//! End-to-end tests of the devnet over HTTP: real signatures from x402-core, real settlement
//! on the local chains, balances read back from the chain. The helpers they share (a devnet,
//! funded wallets, signed requests, challenges and receipts) are the `test-support` crate's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod clock;
mod durability;
mod facilitator;
mod grid;
mod instances;
mod machines;
mod outside;
mod solana;
