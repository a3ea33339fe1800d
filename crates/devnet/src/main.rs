//! `x402-devnet`: runs the devnet, or funds a wallet on a running one.
//!
//! ```text
//! x402-devnet [serve] [--port N] [--data-dir DIR] [--anvil PATH] [--no-megaeth]
//! x402-devnet fund ADDRESS --usdc N [--url URL]
//! ```

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use devnet::{Config, Devnet};

fn default_anvil() -> PathBuf {
    std::env::var_os("X402_DEVNET_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("fund") {
        args.next();
        return fund(args.collect()).await;
    }
    if args.peek().map(String::as_str) == Some("serve") {
        args.next();
    }
    let mut config = Config {
        anvil: default_anvil(),
        data_dir: Some(PathBuf::from(".devnet")),
        listen: SocketAddr::from(([127, 0, 0, 1], 8402)),
        megaeth: true,
        solana: true,
        faults: devnet::FaultConfig::default(),
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => config
                .listen
                .set_port(value()?.parse().context("--port must be a number")?),
            "--data-dir" => config.data_dir = Some(PathBuf::from(value()?)),
            "--anvil" => config.anvil = PathBuf::from(value()?),
            "--no-megaeth" => config.megaeth = false,
            "--no-solana" => config.solana = false,
            "--boot-delay-ms" => {
                config.faults.boot_delay_ms = value()?
                    .parse()
                    .context("--boot-delay-ms must be a number")?
            }
            "--provider-reject-permille" => {
                config.faults.provider_reject_permille = value()?
                    .parse()
                    .context("--provider-reject-permille must be 0-1000")?
            }
            other => bail!(
                "unknown argument `{other}`\nusage: x402-devnet [serve] [--port N] [--data-dir DIR] [--anvil PATH] [--no-megaeth] [--no-solana] [--boot-delay-ms N] [--provider-reject-permille N] | fund ADDRESS --usdc N [--url URL]"
            ),
        }
    }
    let devnet = Devnet::start(config).await?;
    println!("x402 devnet (local test network; every key below is public and worthless)");
    println!("  machines API and facilitator: {}", devnet.url());
    println!(
        "  Base Sepolia (eip155:84532) RPC: {}  USDC at {}",
        devnet.base().rpc_url(),
        devnet.base().token().address
    );
    if let Some(megaeth) = devnet.megaeth() {
        println!(
            "  MegaETH (eip155:4326) RPC: {}  MegaUSD at {}",
            megaeth.rpc_url(),
            megaeth.token().address
        );
    }
    println!("  facilitator signer: {}", devnet.base().facilitator());
    if let Some(solana) = devnet.solana() {
        println!(
            "  Solana devnet (solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1, litesvm in process): USDC mint {}, fee payer {}",
            solana.mint(),
            x402_core::SolanaSigner::pubkey(solana.fee_payer())
        );
    }
    println!(
        "  funded test wallet: 0x90F79bf6EB2c4f870365E785982E1f101E93b906  key 0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
    );
    let wallet = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
        .parse()
        .context("static address")?;
    devnet
        .base()
        .fund(wallet, alloy::primitives::U256::from(1_000_000_000u64))
        .await?;
    println!("  (funded with 1000 USDC; fund more with `x402-devnet fund ADDRESS --usdc N`)");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for ctrl-c")?,
        _ = terminate.recv() => {}
    }
    devnet.shutdown().await;
    Ok(())
}

async fn fund(args: Vec<String>) -> anyhow::Result<()> {
    let mut address = None;
    let mut usdc = None;
    let mut url = "http://127.0.0.1:8402".to_owned();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--usdc" => usdc = args.next(),
            "--url" => url = args.next().context("--url needs a value")?,
            _ if address.is_none() => address = Some(arg),
            other => bail!("unexpected argument `{other}`"),
        }
    }
    let (Some(address), Some(usdc)) = (address, usdc) else {
        bail!("usage: x402-devnet fund ADDRESS --usdc N [--url URL]")
    };
    let response = reqwest::Client::new()
        .post(format!("{url}/devnet/fund"))
        .json(&serde_json::json!({ "address": address, "usdc": usdc }))
        .send()
        .await
        .with_context(|| format!("is the devnet running at {url}?"))?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .context("reading the devnet's answer")?;
    if !status.is_success() {
        bail!("the devnet refused: {}", body["error"]);
    }
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
