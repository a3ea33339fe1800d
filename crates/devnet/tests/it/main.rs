//! End-to-end tests of the devnet over HTTP: real signatures from x402-core, real settlement
//! on anvil, balances read back from the chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod facilitator;
mod instances;
mod machines;
mod solana;

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use devnet::{Config, Devnet};
use x402_core::{Clock, EvmSigner, LocalEvmSigner};

pub(crate) fn anvil() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
    assert!(
        path.exists(),
        "anvil is not installed at {}: run `cargo xtask tools` (cargo xtask ci does)",
        path.display()
    );
    path
}

pub(crate) async fn start() -> Devnet {
    Devnet::start(Config::ephemeral(anvil()))
        .await
        .expect("devnet starts")
}

/// A fresh wallet with `usdc` dollars on both EVM chains.
pub(crate) async fn funded_wallet(devnet: &Devnet, usdc: u64) -> LocalEvmSigner {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).unwrap();
    let signer = LocalEvmSigner::from_bytes(&secret).unwrap();
    devnet
        .base()
        .fund(signer.address(), U256::from(usdc * 1_000_000))
        .await
        .unwrap();
    if let Some(megaeth) = devnet.megaeth() {
        megaeth
            .fund(
                signer.address(),
                U256::from(usdc) * U256::from(10u64).pow(U256::from(18u64)),
            )
            .await
            .unwrap();
    }
    signer
}

pub(crate) fn os_random(buf: &mut [u8]) {
    getrandom::fill(buf).unwrap();
}

pub(crate) fn treasury() -> Address {
    devnet::TREASURY
}

pub(crate) struct Now;

impl Now {
    pub(crate) fn now_ms(&self) -> u64 {
        self.now_unix_ms()
    }
}

impl Clock for Now {
    fn now_unix_ms(&self) -> u64 {
        devnet::SystemClock.now_unix_ms()
    }
}
