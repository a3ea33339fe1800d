//! Load test of durable settlement (`cargo xtask bench`, or
//! `cargo run -p devnet --example load -- [SECONDS] [PAYERS] [both|durable|memory]`): PAYERS
//! concurrent wallets (default 8) buy $1 top-ups on Base Sepolia for SECONDS (default 60)
//! against a devnet with a data directory, so every settlement is made durable before it is
//! answered, and (with `both`, the default) against one without, for comparison. Prints the
//! paid top-ups per 10-second window of each run and their ratio — what durability costs,
//! which must not grow as the chain grows — then checks that the credits deposited equal what
//! the treasury received on chain, to the atomic unit.
//!
//! anvil itself gets slower as its state grows (every EIP-3009 authorization is a new storage
//! slot, and anvil's calls and blocks cost more with every slot), so both runs slow down
//! alike; the ratio is the durability.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;
use test_support::Client;
use x402_core::{EvmSigner, PayTo};

const WINDOW: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args
        .next()
        .map_or(Ok(60), |a| a.parse())
        .context("SECONDS")?;
    let payers: usize = args.next().map_or(Ok(8), |a| a.parse()).context("PAYERS")?;
    let modes: &[bool] = match args.next().as_deref() {
        None | Some("both") => &[false, true],
        Some("durable") => &[true],
        Some("memory") => &[false],
        Some(other) => bail!("the third argument is both, durable or memory, not {other}"),
    };
    let mut runs = Vec::new();
    for &durable in modes {
        runs.push((durable, run(seconds, payers, durable).await?));
    }
    println!(
        "paid top-ups per second, per {} s window:",
        WINDOW.as_secs()
    );
    let windows = runs.first().map_or(0, |(_, counts)| counts.len());
    for index in 0..windows {
        let from = index as u64 * WINDOW.as_secs();
        let mut line = format!("  {from:>4}-{:<4} s:", from + WINDOW.as_secs());
        let rates: Vec<f64> = runs
            .iter()
            .map(|(_, counts)| counts[index] as f64 / WINDOW.as_secs_f64())
            .collect();
        for ((durable, _), rate) in runs.iter().zip(&rates) {
            let mode = if *durable { "durable" } else { "memory" };
            line.push_str(&format!(" {mode} {rate:>6.1}/s"));
        }
        if let [memory, durable] = rates[..] {
            line.push_str(&format!("   durable/memory {:.2}", durable / memory));
        }
        println!("{line}");
    }
    Ok(())
}

/// One run: the paid top-ups in each window.
async fn run(seconds: u64, payers: usize, durable: bool) -> anyhow::Result<Vec<u64>> {
    let data_dir = std::env::temp_dir().join(format!("devnet-load-{}", std::process::id()));
    let devnet = test_support::start_with(|config| devnet::Config {
        data_dir: durable.then(|| data_dir.clone()),
        megaeth: false,
        solana: false,
        ..config
    })
    .await?;
    println!(
        "devnet at {} (durable: {durable}); {payers} payers buying $1 top-ups for {seconds} s",
        devnet.url()
    );
    let mut wallets = Vec::new();
    for _ in 0..payers {
        wallets.push(Arc::new(
            test_support::funded_wallet(&devnet, 100_000).await?,
        ));
    }
    let windows: Arc<Vec<AtomicU64>> = Arc::new(
        (0..seconds.div_ceil(WINDOW.as_secs()))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let failures = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for wallet in &wallets {
        let wallet = wallet.clone();
        let api = Client::of(&devnet);
        let windows = windows.clone();
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let paid = api
                    .pay_base(&wallet, "/compute/credits/topup", json!({"amount": 1}))
                    .await;
                match paid {
                    Ok(response) if response.status().is_success() => {
                        let window = started.elapsed().as_secs() / WINDOW.as_secs();
                        if let Some(count) =
                            usize::try_from(window).ok().and_then(|w| windows.get(w))
                        {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let counts: Vec<u64> = windows.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    let failures = failures.load(Ordering::Relaxed);
    println!(
        "total {total} paid top-ups in {seconds} s ({:.1}/s), {failures} failed",
        total as f64 / seconds as f64
    );

    let mut deposited = 0u64;
    for wallet in &wallets {
        deposited += devnet
            .store()
            .credits(&PayTo::Evm(wallet.address()))?
            .deposited_micros;
    }
    let received = devnet.base().balance_of(devnet::TREASURY).await?;
    println!("credits deposited: {deposited} micro-USD; treasury received on chain: {received}");
    devnet.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    if alloy::primitives::U256::from(deposited) != received {
        bail!("credits and the chain disagree");
    }
    if failures > 0 {
        bail!("{failures} top-ups failed");
    }
    Ok(counts)
}
