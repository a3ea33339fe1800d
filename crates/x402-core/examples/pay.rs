//! Answers a saved 402 response with a payment header.
//!
//! ```text
//! cargo run -q -p x402-core --features solana --example pay -- --response FILE \
//!     [--network NET] [--blockhash B58] [--decimals N] [--token-program ID] [--permit-nonce N]
//! ```
//!
//! `FILE` is JSON `{"status": 402, "headers": {"Name": "value"}, "body": <JSON or null>}`.
//! The signer comes from `PRIVATE_KEY` (EVM, 0x hex) or `SOLANA_SECRET_KEY` (base58 or a JSON
//! byte array). Prints exactly one line, `Header-Name: value`, and exits non-zero with a
//! message on stderr when it cannot pay. This interface is stable: xtask's interop checks use it.

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use http::{HeaderMap, HeaderName, HeaderValue};
use x402_core::svm::{SolanaChainState, TokenProgram};
use x402_core::{
    AssetRegistry, ChainFamily, Challenge, Clock, LocalEvmSigner, LocalSolanaSigner, Network,
    PaymentPolicy, Scheme, evm, svm,
};

struct Args {
    response: String,
    network: Option<Network>,
    blockhash: Option<String>,
    decimals: Option<u8>,
    token_program: Option<TokenProgram>,
    permit_nonce: alloy_primitives::U256,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        response: String::new(),
        network: None,
        blockhash: None,
        decimals: None,
        token_program: None,
        permit_nonce: alloy_primitives::U256::ZERO,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--response" => parsed.response = value()?,
            "--network" => parsed.network = Some(value()?.parse()?),
            "--blockhash" => parsed.blockhash = Some(value()?),
            "--decimals" => {
                parsed.decimals = Some(value()?.parse().context("--decimals must be 0-255")?)
            }
            "--token-program" => parsed.token_program = Some(value()?.parse()?),
            "--permit-nonce" => {
                parsed.permit_nonce = value()?
                    .parse()
                    .context("--permit-nonce must be a decimal integer")?
            }
            other => bail!("unknown argument `{other}`; see the usage in examples/pay.rs"),
        }
    }
    if parsed.response.is_empty() {
        bail!(
            "usage: pay --response FILE [--network NET] [--blockhash B58] [--decimals N] [--token-program ID] [--permit-nonce N]"
        );
    }
    Ok(parsed)
}

struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

fn os_random(buf: &mut [u8]) {
    // The OS random source failing is not recoverable for a payment signer.
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random source failed");
}

fn read_response(path: &str) -> anyhow::Result<(u16, HeaderMap, Vec<u8>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))?;
    let status = json["status"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .context("`status` must be an HTTP status number")?;
    let mut headers = HeaderMap::new();
    if let Some(map) = json["headers"].as_object() {
        for (name, value) in map {
            let value = value
                .as_str()
                .with_context(|| format!("header {name} must be a string"))?;
            headers.append(
                HeaderName::from_bytes(name.as_bytes())
                    .with_context(|| format!("bad header name {name}"))?,
                HeaderValue::from_str(value)
                    .with_context(|| format!("bad value for header {name}"))?,
            );
        }
    }
    let body = match &json["body"] {
        serde_json::Value::Null => Vec::new(),
        serde_json::Value::String(text) => text.clone().into_bytes(),
        other => serde_json::to_vec(other)?,
    };
    Ok((status, headers, body))
}

fn run() -> anyhow::Result<String> {
    let args = parse_args()?;
    let (status, headers, body) = read_response(&args.response)?;
    let challenge = Challenge::from_response(status, &headers, &body)?;
    let evm_key = std::env::var("PRIVATE_KEY").ok();
    let solana_key = std::env::var("SOLANA_SECRET_KEY").ok();
    // Consider only the networks we hold a key for, or the one asked for.
    let networks: Vec<Network> = challenge
        .offers()
        .iter()
        .filter_map(|o| o.requirement().ok().map(|r| r.network().clone()))
        .filter(|n| match &args.network {
            Some(wanted) => n == wanted,
            None => match n.family() {
                ChainFamily::Evm => evm_key.is_some(),
                ChainFamily::Solana => solana_key.is_some(),
                ChainFamily::Other => false,
            },
        })
        .collect();
    if networks.is_empty() {
        bail!(
            "no offer is on a network we hold a key for; set PRIVATE_KEY or SOLANA_SECRET_KEY, or pass --network"
        );
    }
    let selected = PaymentPolicy::default()
        .networks(networks)
        .select(&challenge)?;
    let requirement = selected.requirement();
    let header = match (requirement.network().family(), requirement.scheme()) {
        (ChainFamily::Evm, scheme) => {
            let key = evm_key.context("this offer is on an EVM network: set PRIVATE_KEY")?;
            let signer = LocalEvmSigner::from_hex(&key)?;
            match scheme {
                Scheme::Permit => {
                    evm::permit::pay(&selected, &signer, args.permit_nonce, &SystemClock)?
                }
                _ => evm::exact::pay(&selected, &signer, &SystemClock, &mut os_random)?,
            }
        }
        (ChainFamily::Solana, _) => {
            let key = solana_key.context("this offer is on Solana: set SOLANA_SECRET_KEY")?;
            let signer = LocalSolanaSigner::from_text(&key)?;
            let blockhash = args
                .blockhash
                .context("a Solana payment needs --blockhash (from getLatestBlockhash)")?;
            let decimals = match args.decimals {
                Some(decimals) => decimals,
                None => AssetRegistry::known()
                    .find(requirement.network(), &requirement.asset())
                    .map(|a| a.decimals())
                    .context("unknown mint: pass --decimals")?,
            };
            let chain = SolanaChainState {
                recent_blockhash: svm::parse_blockhash(&blockhash)?,
                decimals,
                token_program: args.token_program.unwrap_or(TokenProgram::Token),
            };
            svm::pay(&selected, &signer, &chain, &mut os_random)?
        }
        (ChainFamily::Other, _) => bail!("cannot pay on {}", requirement.network()),
    };
    Ok(format!("{}: {}", header.name(), header.value()))
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pay: {error:#}");
            ExitCode::FAILURE
        }
    }
}
