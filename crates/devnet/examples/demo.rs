//! The main job, end to end against a local devnet (`cargo xtask demo`): start the devnet,
//! fund a throwaway wallet, buy compute credits with x402 on Base Sepolia (EIP-3009) and
//! MegaETH (ERC-2612 permit), then provision, extend and destroy an instance with them, using
//! raw `x402-core` calls. The CLI issue replaces this with
//! `x402c`.

#![allow(clippy::print_stdout)]

use alloy::primitives::U256;
use anyhow::{Context, bail};
use devnet::{Config, Devnet};
use reqwest::Method;
use serde_json::{Value, json};
use test_support::{Client, Now, os_random};
use x402_core::{
    AssetRegistry, EvmSigner, LocalEvmSigner, Network, PaymentPolicy, TokenAmount, evm,
};

/// Asks for a top-up signed by `wallet`, pays its 402 on `network` and prints what happened.
async fn top_up(
    devnet: &Devnet,
    wallet: &LocalEvmSigner,
    body: &Value,
    network: Network,
) -> anyhow::Result<()> {
    let client = Client::of(devnet);
    let path = "/compute/credits/topup";
    let bytes = serde_json::to_vec(body)?;
    let response = client
        .signed(wallet, Method::POST, path, &bytes)?
        .send()
        .await?;
    println!("  POST {path} {body} -> {}", response.status());
    let challenge = test_support::challenge(response).await?;
    for offer in challenge.offers() {
        if let Ok(requirement) = offer.requirement() {
            println!("    offer: {}", requirement.summary());
        }
    }
    let selected = PaymentPolicy::default()
        .networks([network.clone()])
        .select(&challenge)?;
    let header = match selected.requirement().scheme() {
        x402_core::Scheme::Permit => {
            let chain = devnet.megaeth().context("MegaETH chain")?;
            evm::permit::pay(
                &selected,
                wallet,
                chain.permit_nonce(wallet.address()).await?,
                &Now,
            )?
        }
        _ => evm::exact::pay(&selected, wallet, &Now, &mut os_random)?,
    };
    println!(
        "  signed {} for {}",
        header.name(),
        selected.requirement().summary()
    );
    let paid = client
        .post(path, &bytes)
        .header(header.name(), header.value())
        .send()
        .await?;
    let status = paid.status();
    let receipt = test_support::receipt(&paid)?;
    let answer: Value = paid.json().await?;
    if !status.is_success() {
        bail!("top-up refused: {answer}");
    }
    if let Some(receipt) = receipt {
        println!(
            "  -> {status}: settled on {} in transaction {}",
            receipt.network, receipt.transaction
        );
    }
    println!(
        "  -> credit balance now ${}",
        answer["new_balance"].as_str().unwrap_or("?")
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let anvil = match std::env::var_os("X402_DEVNET_ANVIL") {
        Some(path) => std::path::PathBuf::from(path),
        None => test_support::anvil()?,
    };
    println!("1. Starting the devnet (two anvil chains, SQLite state, machines API, facilitator)");
    let devnet = Devnet::start(Config::ephemeral(anvil)).await?;
    println!("  machines API and facilitator at {}", devnet.url());
    println!(
        "  Base Sepolia (eip155:84532) at {}, MegaETH (eip155:4326) at {}",
        devnet.base().rpc_url(),
        devnet.megaeth().map(|m| m.rpc_url()).unwrap_or("-")
    );

    println!("\n2. A throwaway wallet, funded through the devnet's admin route");
    let client = Client::of(&devnet);
    let mut secret = [0u8; 32];
    os_random(&mut secret);
    let wallet = LocalEvmSigner::from_bytes(&secret)?;
    let funded: Value = client
        .request(Method::POST, "/devnet/fund")
        .json(&json!({ "address": wallet.address().to_string(), "usdc": "25" }))
        .send()
        .await?
        .json()
        .await?;
    println!(
        "  {} received 25 USDC and 25 MegaUSD: {}",
        wallet.address(),
        funded["transactions"]
    );

    println!("\n3. The catalog");
    let plans: Value = client
        .get("/compute/plans?type=vcg")
        .send()
        .await?
        .json()
        .await?;
    for plan in plans["plans"].as_array().into_iter().flatten().take(3) {
        println!(
            "  {:<28} {:<12} ${}/h",
            plan["id"].as_str().unwrap_or(""),
            plan["gpu_type"].as_str().unwrap_or(""),
            plan["our_hourly"]
        );
    }

    println!(
        "\n4. Buy $10 of credits with x402 on Base Sepolia (EIP-3009 transferWithAuthorization)"
    );
    let usdc = AssetRegistry::known()
        .default_for(&Network::BASE_SEPOLIA)
        .context("registry")?;
    let before = devnet.base().balance_of(wallet.address()).await?;
    top_up(
        &devnet,
        &wallet,
        &json!({ "amount": 10, "network": "base" }),
        Network::BASE_SEPOLIA,
    )
    .await?;
    let after = devnet.base().balance_of(wallet.address()).await?;
    println!(
        "  on chain: {} -> {}",
        usdc.display_amount(TokenAmount::new(before)),
        usdc.display_amount(TokenAmount::new(after))
    );

    println!("\n5. Buy $2.50 more with a MegaETH ERC-2612 permit");
    top_up(
        &devnet,
        &wallet,
        &json!({ "amount": "2.50", "network": "megaeth" }),
        Network::MEGAETH,
    )
    .await?;
    if let Some(megaeth) = devnet.megaeth() {
        let left = megaeth.balance_of(wallet.address()).await?;
        let usdm = AssetRegistry::known()
            .default_for(&Network::MEGAETH)
            .context("registry")?;
        println!(
            "  on chain: {} left",
            usdm.display_amount(TokenAmount::new(left))
        );
        debug_assert!(left < U256::from(25u64) * U256::from(10u64).pow(U256::from(18u64)));
    }

    println!(
        "\n5b. Buy $1.50 more on Solana devnet (SPL TransferChecked, facilitator pays the fee)"
    );
    let solana = devnet.solana().context("Solana ledger")?;
    let mut seed = [0u8; 32];
    os_random(&mut seed);
    let sol_wallet = x402_core::LocalSolanaSigner::from_secret(seed);
    use x402_core::SolanaSigner as _;
    client
        .request(Method::POST, "/devnet/fund")
        .json(&json!({ "address": sol_wallet.pubkey().to_string(), "usdc": "5" }))
        .send()
        .await?;
    let path = "/compute/credits/topup";
    let bytes = serde_json::to_vec(&json!({ "amount": "1.50", "network": "solana" }))?;
    let response = client
        .signed(&sol_wallet, Method::POST, path, &bytes)?
        .send()
        .await?;
    let challenge = test_support::challenge(response).await?;
    let selected = PaymentPolicy::default()
        .networks([Network::SOLANA_DEVNET])
        .select(&challenge)?;
    let chain = x402_core::svm::SolanaChainState {
        recent_blockhash: solana.latest_blockhash(),
        decimals: 6,
        token_program: x402_core::svm::TokenProgram::Token,
    };
    let header = x402_core::svm::pay(&selected, &sol_wallet, &chain, &mut os_random)?;
    println!(
        "  signed {} for {}",
        header.name(),
        selected.requirement().summary()
    );
    let paid = client
        .post(path, &bytes)
        .header(header.name(), header.value())
        .send()
        .await?;
    let receipt = test_support::receipt(&paid)?;
    if !paid.status().is_success() {
        bail!("Solana top-up refused: {}", paid.text().await?);
    }
    if let Some(receipt) = receipt {
        println!(
            "  -> settled on {} in transaction {}",
            receipt.network, receipt.transaction
        );
    }
    println!(
        "  on the ledger: {} has {} USDC left",
        sol_wallet.pubkey(),
        TokenAmount::from_u64(solana.token_balance(&sol_wallet.pubkey())).to_decimal_string(6)
    );

    println!("\n6. Provision a VPS for 48 hours from those credits, then manage it");
    let order = client.call_ok(&wallet, Method::POST, "/compute/provision", Some(json!({"plan":"vc2-1c-1gb","region":"ewr","os_id":2284,"label":"demo","prepaid_hours":48,"use_credits":true}))).await?;
    let id = order["order"]["id"]
        .as_str()
        .context("provision answered without an order id")?
        .to_owned();
    println!(
        "  order {id}: {} on {} in {}, paid ${}, expires {}",
        order["order"]["status"],
        order["order"]["plan"],
        order["order"]["region"],
        order["order"]["payment_amount"].as_str().unwrap_or("?"),
        order["order"]["expires_at"]
    );
    let details = client
        .call_ok(
            &wallet,
            Method::GET,
            &format!("/compute/instances/{id}"),
            None,
        )
        .await?;
    println!(
        "  now {} at {}",
        details["order"]["status"], details["order"]["ip_address"]
    );
    let extended = client
        .call_ok(
            &wallet,
            Method::POST,
            &format!("/compute/instances/{id}/extend"),
            Some(json!({"extend_hours":24,"use_credits":true})),
        )
        .await?;
    println!(
        "  extended by 24 h: expires {}",
        extended["order"]["expires_at"]
    );
    let balance = client
        .call_ok(&wallet, Method::GET, "/compute/credits/balance", None)
        .await?;
    println!(
        "  credits left: ${} of ${} deposited",
        balance["balance"].as_str().unwrap_or("?"),
        balance["total_deposited"].as_str().unwrap_or("?")
    );
    let destroyed = client
        .call_ok(
            &wallet,
            Method::DELETE,
            &format!("/compute/instances/{id}"),
            None,
        )
        .await?;
    println!("  destroyed: {}", destroyed["instance"]["status"]);
    println!(
        "\nDone: {} payments settled on the local chains.",
        devnet.store().settlement_count()?
    );
    devnet.shutdown().await;
    Ok(())
}
