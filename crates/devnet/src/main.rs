//! `x402-devnet`: runs the devnet, funds a wallet on a running one, or gets a grid node
//! registration code from it.
//!
//! ```text
//! x402-devnet [serve] [--port N] [--data-dir DIR] [--anvil PATH] [--no-megaeth] [--no-solana]
//!                     [--boot-delay-ms N] [--provider-reject-permille N]
//!                     [--solana-5xx-permille N] [--hold-confirmation] [--crash-at POINT]
//!                     [--json] [--print-test-key]
//! x402-devnet fund ADDRESS --usdc N [--url URL]
//! x402-devnet grid-code WALLET [--url URL]
//! ```

#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use devnet::{Config, Devnet, FaultConfig};
use serde_json::json;
use x402_core::{Network, SolanaSigner};

/// A local, faithful stand-in for the machines API and its x402 facilitator, on real local
/// chains (two anvil EVM chains and an in-process Solana ledger).
#[derive(Parser)]
#[command(name = "x402-devnet", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Subcommand)]
enum Command {
    /// Run the devnet in the foreground (the default).
    Serve(Serve),
    /// Mint devnet stablecoins (and gas) to a wallet on a running devnet.
    Fund(Fund),
    /// Get a single-use grid node registration code for a wallet on a running devnet (for
    /// `sgl init --wallet WALLET --code CODE`); prints the code.
    GridCode(GridCode),
}

#[derive(Args, Clone)]
struct Serve {
    /// Port to listen on, on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8402)]
    port: u16,
    /// Where the devnet keeps its state (SQLite, chain states); reused across restarts.
    #[arg(long, default_value = ".devnet")]
    data_dir: PathBuf,
    /// The anvil binary [default: the one `cargo xtask tools` installs, or $X402_DEVNET_ANVIL].
    #[arg(long)]
    anvil: Option<PathBuf>,
    /// Do not start the MegaETH chain.
    #[arg(long)]
    no_megaeth: bool,
    /// Do not start the Solana ledger.
    #[arg(long)]
    no_solana: bool,
    /// How long a new instance stays `pending`, in milliseconds.
    #[arg(long, default_value_t = 0)]
    boot_delay_ms: u64,
    /// Per thousand paid instances, how many the simulated provider rejects (refunded).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1000))]
    provider_reject_permille: u16,
    /// Per thousand Solana payments, how many get a transient 503 before settlement.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1000))]
    solana_5xx_permille: u16,
    /// Do not wait for confirmations: sent payments are answered `settlement_pending` and
    /// settled by the reconciler.
    #[arg(long)]
    hold_confirmation: bool,
    /// Settle paid requests, then drop the connection instead of answering.
    #[arg(long)]
    drop_paid_answers: bool,
    /// Kill the devnet (SIGKILL) when a settlement reaches this point: after_claim,
    /// after_submission, after_confirmation or before_credit_write.
    #[arg(long, value_name = "POINT")]
    crash_at: Option<devnet::faults::CrashPoint>,
    /// Print one JSON line with the URLs, chain ids, token addresses, the Solana mint and fee
    /// payer (for programs) instead of the banner.
    #[arg(long)]
    json: bool,
    /// Also fund a well-known test wallet with 1000 USDC and print its private key.
    #[arg(long)]
    print_test_key: bool,
}

#[derive(Args)]
struct Fund {
    /// An EVM (0x…) or Solana (base58) address.
    address: String,
    /// How many dollars of the devnet stablecoin to mint.
    #[arg(long)]
    usdc: String,
    /// The running devnet.
    #[arg(long, default_value = "http://127.0.0.1:8402")]
    url: String,
}

#[derive(Args)]
struct GridCode {
    /// The operator's wallet: a Solana (base58) or EVM (0x…) address.
    wallet: String,
    /// The running devnet.
    #[arg(long, default_value = "http://127.0.0.1:8402")]
    url: String,
}

/// anvil's fourth default account (from its public test mnemonic): the test wallet that
/// `--print-test-key` funds. Worthless outside a local chain.
const TEST_WALLET: &str = "0x90F79bf6EB2c4f870365E785982E1f101E93b906";
const TEST_WALLET_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

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
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        // Machine-readable output keeps stdout for the JSON line and logs only warnings.
        let serving_json = matches!(&cli.command, Some(Command::Serve(s)) if s.json)
            || (cli.command.is_none() && cli.serve.json);
        if serving_json { "warn" } else { "info" }.into()
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Some(Command::Fund(fund)) => run_fund(fund).await,
        Some(Command::GridCode(code)) => run_grid_code(code).await,
        Some(Command::Serve(serve)) => run_serve(serve).await,
        None => run_serve(cli.serve).await,
    }
}

async fn run_serve(serve: Serve) -> anyhow::Result<()> {
    let config = Config {
        anvil: serve.anvil.clone().unwrap_or_else(default_anvil),
        data_dir: Some(serve.data_dir.clone()),
        listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), serve.port),
        megaeth: !serve.no_megaeth,
        solana: !serve.no_solana,
        faults: FaultConfig {
            provider_reject_permille: serve.provider_reject_permille,
            boot_delay_ms: serve.boot_delay_ms,
            solana_transient_5xx_permille: serve.solana_5xx_permille,
            hold_confirmation: serve.hold_confirmation,
            drop_paid_answers: serve.drop_paid_answers,
            crash_at: serve.crash_at,
            ..FaultConfig::default()
        },
        ..Config::ephemeral(PathBuf::new())
    };
    let devnet = Devnet::start(config).await.context("starting the devnet")?;
    if serve.print_test_key {
        let wallet = TEST_WALLET.parse().context("static address")?;
        devnet
            .chains()
            .fund_evm(wallet, 1_000_000_000)
            .await
            .context("funding the test wallet")?;
    }
    if serve.json {
        println!("{}", describe(&devnet));
    } else {
        print_banner(&devnet, serve.print_test_key);
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for ctrl-c")?,
        _ = terminate.recv() => {}
    }
    devnet.shutdown().await;
    Ok(())
}

/// The one JSON line `--json` prints: everything a program needs to talk to this devnet.
fn describe(devnet: &Devnet) -> serde_json::Value {
    let chains: Vec<serde_json::Value> = devnet
        .chains()
        .evm()
        .map(|chain| {
            json!({
                "network": Network::evm(chain.chain_id()).to_string(),
                "chain_id": chain.chain_id(),
                "rpc_url": chain.rpc_url(),
                "token": chain.token().address.to_checksum(None),
                "symbol": chain.token().symbol,
                "decimals": chain.token().decimals,
            })
        })
        .collect();
    let solana = devnet.solana().map(|solana| {
        json!({
            "network": Network::SOLANA_DEVNET.to_string(),
            "rpc_url": format!("{}/solana", devnet.url()),
            "mint": solana.mint().to_string(),
            "fee_payer": solana.fee_payer().pubkey().to_string(),
            "treasury": devnet::SOLANA_TREASURY.to_string(),
        })
    });
    json!({
        "url": devnet.url(),
        "facilitator": devnet.base().facilitator().to_checksum(None),
        "treasury": devnet::TREASURY.to_checksum(None),
        "evm": chains,
        "solana": solana,
    })
}

fn print_banner(devnet: &Devnet, test_key: bool) {
    println!("x402 devnet (local test network; its chains and keys are worthless)");
    println!("  machines API and facilitator: {}", devnet.url());
    for chain in devnet.chains().evm() {
        println!(
            "  {} RPC: {}  {} at {}",
            Network::evm(chain.chain_id()),
            chain.rpc_url(),
            chain.token().symbol,
            chain.token().address
        );
    }
    println!("  facilitator signer: {}", devnet.base().facilitator());
    if let Some(solana) = devnet.solana() {
        println!(
            "  {} (litesvm in process, JSON-RPC at {}/solana): USDC mint {}, fee payer {}",
            Network::SOLANA_DEVNET,
            devnet.url(),
            solana.mint(),
            solana.fee_payer().pubkey()
        );
    }
    if test_key {
        println!("  test wallet {TEST_WALLET} (1000 USDC), private key {TEST_WALLET_KEY}");
    }
    println!(
        "  fund a wallet: x402-devnet fund ADDRESS --usdc N --url {}",
        devnet.url()
    );
    println!(
        "  grid node registration code: x402-devnet grid-code WALLET --url {}",
        devnet.url()
    );
}

/// `POST {url}{path}` with a JSON body on a running devnet: its JSON answer.
async fn post(url: &str, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    devnet::install_crypto_provider();
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .json(&body)
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
    Ok(body)
}

async fn run_fund(fund: Fund) -> anyhow::Result<()> {
    let body = post(
        &fund.url,
        "/devnet/fund",
        json!({ "address": fund.address, "usdc": fund.usdc }),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}

async fn run_grid_code(code: GridCode) -> anyhow::Result<()> {
    let body = post(
        &code.url,
        "/devnet/grid/codes",
        json!({ "wallet_address": code.wallet }),
    )
    .await?;
    let code = body["registration_code"]
        .as_str()
        .context("the devnet's answer has no registration_code")?;
    println!("{code}");
    Ok(())
}
