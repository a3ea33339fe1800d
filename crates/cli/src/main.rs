//! `x402c`: the command-line client for machines, the grid and the devnet.
//!
//! It will be the thin top layer: it alone reads env, config files, keystores and the
//! terminal, and drives `compute-api`, `grid-api` and `x402_core`, with a ratatui dashboard.
//!
//! **Status:** not implemented yet. The binary says so and exits with status 2; the
//! `x402-core` example `pay` is the working entry point for now.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("x402c: the command-line client is not implemented yet (see ARCHITECTURE.md)");
    ExitCode::from(2)
}
