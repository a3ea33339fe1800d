//! The facilitator over HTTP, and state across a restart.

use alloy::primitives::U256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{Client, Now, os_random};
use x402_core::challenge::{PaymentRequired, RequirementSpec, ResourceInfo, Scheme};
use x402_core::{
    AssetId, Challenge, EvmSigner, Network, PayTo, PaymentPayload, PaymentPolicy, TokenAmount, evm,
};

fn requirement_json(required: &PaymentRequired) -> Value {
    let challenge: Value =
        serde_json::from_slice(&BASE64.decode(required.to_v2_header()).unwrap()).unwrap();
    challenge["accepts"][0].clone()
}

#[tokio::test]
async fn verify_and_settle_over_http() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let client = test_support::http();
    let supported: Value = client
        .get(format!("{}/supported", devnet.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds = supported["kinds"].as_array().unwrap();
    assert!(
        kinds.contains(&json!({ "x402Version": 2, "scheme": "exact", "network": "eip155:84532" }))
    );
    assert!(
        kinds.contains(&json!({ "x402Version": 1, "scheme": "exact", "network": "base-sepolia" }))
    );
    assert!(
        kinds.contains(&json!({ "x402Version": 2, "scheme": "permit", "network": "eip155:4326" }))
    );

    let mut extra = serde_json::Map::new();
    extra.insert("name".into(), json!("USDC"));
    extra.insert("version".into(), json!("2"));
    let required = PaymentRequired {
        resource: ResourceInfo {
            url: "http://127.0.0.1/other-server".into(),
            description: None,
            mime_type: None,
        },
        error: String::new(),
        accepts: vec![RequirementSpec {
            scheme: Scheme::Exact,
            network: Network::BASE_SEPOLIA,
            amount: TokenAmount::from_u64(1_250_000),
            asset: AssetId::Evm(devnet.base().token().address),
            pay_to: PayTo::Evm(
                "0x0000000000000000000000000000000000000bee"
                    .parse()
                    .unwrap(),
            ),
            max_timeout_seconds: 120,
            extra,
        }],
        extensions: Default::default(),
    };
    let challenge = Challenge::from_v2_header(&required.to_v2_header()).unwrap();
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let header = evm::exact::pay(&selected, &payer, &Now, &mut os_random).unwrap();
    let payload: Value = serde_json::from_slice(&BASE64.decode(header.value()).unwrap()).unwrap();
    assert!(PaymentPayload::from_header_value(header.value()).is_ok());
    let body = json!({ "x402Version": 2, "paymentPayload": payload, "paymentRequirements": requirement_json(&required) });

    let verified: Value = client
        .post(format!("{}/verify", devnet.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        verified,
        json!({ "isValid": true, "payer": payer.address().to_checksum(None) })
    );
    let mut wrong = body.clone();
    wrong["paymentRequirements"]["amount"] = json!("1250001");
    let refused: Value = client
        .post(format!("{}/verify", devnet.url()))
        .json(&wrong)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["isValid"], false);
    assert_eq!(refused["invalidReason"], "invalid_payment_requirements");

    let settled: Value = client
        .post(format!("{}/settle", devnet.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settled["success"], true, "{settled}");
    assert_eq!(settled["network"], "eip155:84532");
    let bee = "0x0000000000000000000000000000000000000bee"
        .parse()
        .unwrap();
    assert_eq!(
        devnet.base().balance_of(bee).await.unwrap(),
        U256::from(1_250_000u64)
    );
    let again: Value = client
        .post(format!("{}/settle", devnet.url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["success"], false);
    assert_eq!(
        devnet.base().balance_of(bee).await.unwrap(),
        U256::from(1_250_000u64)
    );

    let garbage = client
        .post(format!("{}/verify", devnet.url()))
        .body("{\"x402Version\":2}")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_restart_with_the_same_data_dir_keeps_everything() {
    let dir = std::env::temp_dir().join(format!(
        "devnet-restart-{}-{}",
        std::process::id(),
        Now.now_ms()
    ));
    let config = || devnet::Config {
        data_dir: Some(dir.clone()),
        ..devnet::Config::ephemeral(test_support::anvil().unwrap())
    };
    let payer;
    let header;
    let body = br#"{"amount":4,"network":"base"}"#;
    {
        let devnet = devnet::Devnet::start(config()).await.unwrap();
        payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
        devnet
            .solana()
            .unwrap()
            .fund(
                &x402_core::SolanaSigner::pubkey(&x402_core::LocalSolanaSigner::from_secret(
                    [0x61; 32],
                )),
                2_500_000,
            )
            .unwrap();
        let url = format!("{}/compute/credits/topup", devnet.url());
        let key: Value = Client::of(&devnet)
            .send_signed(&payer, reqwest::Method::POST, "/compute/api-keys", b"")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let response = test_support::http()
            .post(&url)
            .header("X-API-Key", key["api_key"].as_str().unwrap())
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let challenge = test_support::challenge(response).await.unwrap();
        let selected = PaymentPolicy::default()
            .networks([Network::BASE_SEPOLIA])
            .select(&challenge)
            .unwrap();
        header = evm::exact::pay(&selected, &payer, &Now, &mut os_random).unwrap();
        let paid = test_support::http()
            .post(&url)
            .header(header.name(), header.value())
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(paid.status(), StatusCode::OK);
        std::fs::write(dir.join("key"), key["api_key"].as_str().unwrap()).unwrap();
        devnet.shutdown().await;
    }
    let devnet = devnet::Devnet::start(config()).await.unwrap();
    let solana_wallet =
        x402_core::SolanaSigner::pubkey(&x402_core::LocalSolanaSigner::from_secret([0x61; 32]));
    assert_eq!(
        devnet.solana().unwrap().token_balance(&solana_wallet),
        2_500_000,
        "the Solana ledger survives"
    );
    let key = std::fs::read_to_string(dir.join("key")).unwrap();
    let balance: Value = test_support::http()
        .get(format!("{}/compute/credits/balance", devnet.url()))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], "4.00", "credits and API keys survive");
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        U256::from(6_000_000u64),
        "the chain survives"
    );
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        U256::from(4_000_000u64)
    );
    let replay = test_support::http()
        .post(format!("{}/compute/credits/topup", devnet.url()))
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        StatusCode::PAYMENT_REQUIRED,
        "used payments stay used"
    );
    devnet.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn permits_settle_only_to_the_facilitators_payees() {
    let devnet = test_support::start().await.unwrap();
    let megaeth = devnet.megaeth().unwrap();
    let victim = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let api = Client::of(&devnet);
    let body = br#"{"amount":2,"network":"megaeth"}"#;
    let challenge = api
        .quote(&victim, "/compute/credits/topup", body)
        .await
        .unwrap();
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let nonce = megaeth.permit_nonce(victim.address()).await.unwrap();
    let header = evm::permit::pay(&selected, &victim, nonce, &Now).unwrap();

    // Someone who saw the header sends it to the public /settle with their own payTo: the
    // permit's signature does not bind payTo, so only the facilitator can refuse.
    let thief: alloy::primitives::Address = "0x0000000000000000000000000000000000007417"
        .parse()
        .unwrap();
    let mut payload: Value =
        serde_json::from_slice(&BASE64.decode(header.value()).unwrap()).unwrap();
    payload["accepted"]["payTo"] = json!(thief.to_checksum(None));
    let request = json!({
        "x402Version": 2,
        "paymentPayload": payload,
        "paymentRequirements": payload["accepted"],
    });
    let before = megaeth.balance_of(victim.address()).await.unwrap();
    for route in ["verify", "settle"] {
        let answer: Value = api
            .request(reqwest::Method::POST, &format!("/{route}"))
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            answer["isValid"] == false || answer["success"] == false,
            "{route}: {answer}"
        );
    }
    assert_eq!(megaeth.balance_of(thief).await.unwrap(), U256::ZERO);
    assert_eq!(megaeth.balance_of(victim.address()).await.unwrap(), before);

    // The same permit, unaltered, still pays the devnet.
    let paid = api
        .post("/compute/credits/topup", body)
        .header(header.name(), header.value())
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
}
