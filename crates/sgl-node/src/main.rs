//! `sgl`: the node operator's runtime for the confidential inference grid.
//!
//! It will join the grid, attest, serve a GGUF model through llama.cpp and earn per settled
//! job, verifying and pricing payments with `x402_core`.
//!
//! **Status:** not implemented yet. The binary says so and exits with status 2 rather than
//! pretending to serve anything.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("sgl: the node runtime is not implemented yet (see ARCHITECTURE.md)");
    ExitCode::from(2)
}
