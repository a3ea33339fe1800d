//! Solana `exact` end to end: litesvm ledger, partially signed transfer from x402-core, the
//! facilitator's co-signature, balances read back from the ledger.

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{Client, os_random};
use x402_core::svm::{self, SolanaChainState, TokenProgram};
use x402_core::{Challenge, LocalSolanaSigner, Network, PaymentPolicy, Receipt, SolanaSigner};

async fn signed_topup(
    devnet: &devnet::Devnet,
    payer: &LocalSolanaSigner,
    body: &[u8],
) -> reqwest::Response {
    Client::of(devnet)
        .send_signed(payer, reqwest::Method::POST, "/compute/credits/topup", body)
        .await
        .unwrap()
}

#[tokio::test]
async fn topup_paid_on_solana_moves_real_usdc_once() {
    let devnet = test_support::start().await.unwrap();
    let solana = devnet.solana().unwrap();
    let mut secret = [0u8; 32];
    os_random(&mut secret);
    let payer = LocalSolanaSigner::from_secret(secret);
    let client = test_support::http();
    let funded = client
        .post(format!("{}/devnet/fund", devnet.url()))
        .json(&json!({ "address": payer.pubkey().to_string(), "usdc": "10" }))
        .send()
        .await
        .unwrap();
    assert_eq!(funded.status(), StatusCode::OK);
    assert_eq!(solana.token_balance(&payer.pubkey()), 10_000_000);

    let body = br#"{"amount":4,"network":"solana"}"#;
    let first = signed_topup(&devnet, &payer, body).await;
    assert_eq!(first.status(), StatusCode::PAYMENT_REQUIRED);
    let headers = first.headers().clone();
    let challenge = Challenge::from_response(402, &headers, &first.bytes().await.unwrap()).unwrap();
    let selected = PaymentPolicy::default()
        .networks([Network::SOLANA_DEVNET])
        .select(&challenge)
        .unwrap();
    let chain = SolanaChainState {
        recent_blockhash: solana.latest_blockhash(),
        decimals: 6,
        token_program: TokenProgram::Token,
    };
    let header = svm::pay(&selected, &payer, &chain, &mut os_random).unwrap();

    let fee_payer = solana.fee_payer().pubkey();
    let lamports_before = solana.lamports(&fee_payer);
    let paid = client
        .post(format!("{}/compute/credits/topup", devnet.url()))
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let receipt = Receipt::from_headers(paid.headers()).unwrap().unwrap();
    assert!(receipt.success);
    assert_eq!(receipt.network, "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1");
    assert_eq!(
        receipt.payer.as_deref(),
        Some(payer.pubkey().to_string().as_str())
    );
    let answer: Value = paid.json().await.unwrap();
    assert_eq!(answer["new_balance"], "4.00");
    assert_eq!(solana.token_balance(&payer.pubkey()), 6_000_000);
    assert_eq!(solana.token_balance(&devnet::SOLANA_TREASURY), 4_000_000);
    assert!(
        solana.lamports(&fee_payer) < lamports_before,
        "the facilitator paid the fee"
    );

    let replay = client
        .post(format!("{}/compute/credits/topup", devnet.url()))
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(solana.token_balance(&payer.pubkey()), 6_000_000);
}

#[tokio::test]
async fn injected_solana_5xx_changes_nothing_and_a_retry_settles() {
    let devnet = test_support::start().await.unwrap();
    let solana = devnet.solana().unwrap();
    let payer = LocalSolanaSigner::from_secret([0x33; 32]);
    solana.fund(&payer.pubkey(), 5_000_000).unwrap();
    let client = test_support::http();
    let set = |permille: u16| {
        client
            .post(format!("{}/devnet/faults", devnet.url()))
            .json(&json!({ "solana_transient_5xx_permille": permille }))
            .send()
    };
    assert_eq!(set(1000).await.unwrap().status(), StatusCode::OK);
    let body = br#"{"amount":2,"network":"solana"}"#;
    let pay = || async {
        let first = signed_topup(&devnet, &payer, body).await;
        let challenge =
            Challenge::from_response(402, &first.headers().clone(), &first.bytes().await.unwrap())
                .unwrap();
        let selected = PaymentPolicy::default()
            .networks([Network::SOLANA_DEVNET])
            .select(&challenge)
            .unwrap();
        let chain = SolanaChainState {
            recent_blockhash: solana.latest_blockhash(),
            decimals: 6,
            token_program: TokenProgram::Token,
        };
        let header = svm::pay(&selected, &payer, &chain, &mut os_random).unwrap();
        client
            .post(format!("{}/compute/credits/topup", devnet.url()))
            .header(header.name(), header.value())
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    };
    assert_eq!(pay().await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(solana.token_balance(&payer.pubkey()), 5_000_000);
    assert_eq!(set(0).await.unwrap().status(), StatusCode::OK);
    assert_eq!(pay().await.status(), StatusCode::OK);
    assert_eq!(solana.token_balance(&payer.pubkey()), 3_000_000);
}

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    let response: Value = test_support::http()
        .post(format!("{url}/solana"))
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["jsonrpc"], "2.0");
    response
}

#[tokio::test]
async fn json_rpc_subset_answers_like_a_solana_node() {
    let devnet = test_support::start().await.unwrap();
    let solana = devnet.solana().unwrap();
    let url = devnet.url();
    assert_eq!(rpc(url, "getHealth", json!([])).await["result"], "ok");
    let blockhash = rpc(
        url,
        "getLatestBlockhash",
        json!([{ "commitment": "finalized" }]),
    )
    .await;
    let text = blockhash["result"]["value"]["blockhash"].as_str().unwrap();
    assert_eq!(
        svm::parse_blockhash(text).unwrap(),
        solana.latest_blockhash()
    );

    let wallet = LocalSolanaSigner::from_secret([0x51; 32])
        .pubkey()
        .to_string();
    let airdrop = rpc(url, "requestAirdrop", json!([wallet, 2_000_000_000u64])).await;
    let signature = airdrop["result"].as_str().unwrap().to_owned();
    let statuses = rpc(
        url,
        "getSignatureStatuses",
        json!([[
            signature,
            "1111111111111111111111111111111111111111111111111111111111111111"
        ]]),
    )
    .await;
    assert_eq!(statuses["result"]["value"][0]["err"], Value::Null);
    assert_eq!(
        statuses["result"]["value"][0]["confirmationStatus"],
        "finalized"
    );
    assert_eq!(statuses["result"]["value"][1], Value::Null);
    assert_eq!(
        rpc(url, "getBalance", json!([wallet])).await["result"]["value"],
        2_000_000_000u64
    );

    let mint = rpc(
        url,
        "getAccountInfo",
        json!([solana.mint().to_string(), { "encoding": "base64" }]),
    )
    .await;
    assert_eq!(
        mint["result"]["value"]["owner"],
        "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
    );
    let data = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        mint["result"]["value"]["data"][0].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        (data.len(), data[44]),
        (82, 6),
        "an SPL mint with 6 decimals"
    );

    let owner = LocalSolanaSigner::from_secret([0x52; 32]).pubkey();
    solana.fund(&owner, 1_500_000).unwrap();
    let ata =
        svm::associated_token_address(&owner, &solana.mint(), TokenProgram::Token).to_string();
    let balance = rpc(url, "getTokenAccountBalance", json!([ata])).await;
    assert_eq!(balance["result"]["value"]["amount"], "1500000");
    assert_eq!(balance["result"]["value"]["uiAmountString"], "1.5");
    let many = rpc(
        url,
        "getMultipleAccounts",
        json!([[ata, wallet], { "encoding": "base64" }]),
    )
    .await;
    assert_eq!(
        many["result"]["value"][1]["owner"],
        "11111111111111111111111111111111"
    );
    assert!(
        rpc(url, "getMinimumBalanceForRentExemption", json!([165])).await["result"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(
        rpc(url, "getSlot", json!([])).await["result"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        rpc(url, "getBlockProduction", json!([])).await["error"]["code"],
        -32601
    );
    let garbage = rpc(
        url,
        "sendTransaction",
        json!(["AAAA", { "encoding": "base64" }]),
    )
    .await;
    assert_eq!(garbage["error"]["code"], -32602);
}

#[tokio::test]
async fn solana_payers_find_what_they_bought_under_their_own_auth() {
    let devnet = test_support::start().await.unwrap();
    let solana = devnet.solana().unwrap();
    let payer = test_support::funded_solana_wallet(&devnet, 10).unwrap();
    let api = Client::of(&devnet);

    // Paid retries carry no auth: the payment's base58 payer is the wallet credited.
    let topup = api
        .pay_solana(
            &payer,
            solana.latest_blockhash(),
            "/compute/credits/topup",
            json!({"amount": 3, "network": "solana"}),
        )
        .await
        .unwrap();
    assert_eq!(topup.status(), StatusCode::OK);
    let topup: Value = topup.json().await.unwrap();
    assert_eq!(topup["wallet"], payer.pubkey().to_string());
    let balance: Value = api.credits(&payer).await.unwrap();
    assert_eq!(balance["wallet"], payer.pubkey().to_string());
    assert_eq!(balance["balance"], "3.00", "{balance}");

    let provision = api
        .pay_solana(
            &payer,
            solana.latest_blockhash(),
            "/compute/provision",
            json!({"plan": "vc2-1c-1gb", "region": "ewr", "prepaid_hours": 24, "network": "solana"}),
        )
        .await
        .unwrap();
    assert_eq!(provision.status(), StatusCode::CREATED);
    let listed: Value = api
        .send_signed(&payer, reqwest::Method::GET, "/compute/instances", b"")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["instances"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
}

#[tokio::test]
async fn the_devnets_clock_drives_the_ledgers_clock_and_blockhash_expiry() {
    let clock = devnet::TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: std::sync::Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let solana = devnet.solana().unwrap();
    let payer = test_support::funded_solana_wallet(&devnet, 10).unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());
    let body = br#"{"amount":1,"network":"solana"}"#;
    let path = "/compute/credits/topup";
    let sign = |challenge: &Challenge| {
        let selected = PaymentPolicy::default()
            .networks([Network::SOLANA_DEVNET])
            .select(challenge)
            .unwrap();
        let chain = SolanaChainState {
            recent_blockhash: solana.latest_blockhash(),
            decimals: 6,
            token_program: TokenProgram::Token,
        };
        svm::pay(&selected, &payer, &chain, &mut os_random).unwrap()
    };
    let send = |header: x402_core::PaymentHeader| {
        api.post(path, body)
            .header(header.name(), header.value())
            .send()
    };

    // Signed now, sent 61 s later: the blockhash expired, nothing moved.
    let stale = sign(&api.quote(&payer, path, body).await.unwrap());
    let blockhash = solana.latest_blockhash();
    assert!(solana.blockhash_valid_until(&blockhash).is_some());
    clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(solana.blockhash_valid_until(&blockhash), None);
    assert_ne!(solana.latest_blockhash(), blockhash, "a new blockhash");
    let refused = send(stale).await.unwrap();
    assert_ne!(refused.status(), StatusCode::OK);
    let text = refused.text().await.unwrap();
    assert!(text.contains("BlockhashNotFound"), "{text}");
    assert_eq!(solana.token_balance(&payer.pubkey()), 10_000_000);

    // Signed with a fresh blockhash: it lands, and the ledger's clock is the devnet's.
    let fresh = sign(&api.quote(&payer, path, body).await.unwrap());
    let paid = send(fresh).await.unwrap();
    assert_eq!(paid.status(), StatusCode::OK, "{:?}", paid.text().await);
    assert_eq!(solana.token_balance(&payer.pubkey()), 9_000_000);
    let now = x402_core::Clock::now_unix(&clock);
    assert_eq!(
        solana.clock_sysvar().unix_timestamp,
        i64::try_from(now).unwrap()
    );
}
