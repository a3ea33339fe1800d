//! Machines API: catalog, auth, API keys, credits top-up paid with x402 on each network.

use alloy::primitives::U256;
use devnet::TREASURY;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{Client, Now, os_random};
use x402_core::auth::{self, AuthChain};
use x402_core::{Challenge, EvmSigner, LocalEvmSigner, Network, PaymentPolicy, Receipt, evm};

fn client() -> reqwest::Client {
    test_support::http()
}

/// The challenge of a 402, which must carry the v1 body too.
async fn challenge_of(response: reqwest::Response) -> Challenge {
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    assert!(Challenge::from_body(&body).is_ok());
    Challenge::from_response(402, &headers, &body).unwrap()
}

fn receipt_of(response: &reqwest::Response) -> Receipt {
    test_support::receipt(response)
        .unwrap()
        .expect("a receipt header")
}

#[tokio::test]
async fn catalog_endpoints() {
    let devnet = test_support::start().await.unwrap();
    let plans: Value = client()
        .get(format!("{}/compute/plans?type=vcg", devnet.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(plans["count"].as_u64().unwrap() >= 5);
    assert!(
        plans["plans"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["gpu_type"].is_string())
    );
    let bad = client()
        .get(format!("{}/compute/plans?type=xyz", devnet.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let regions: Value = client()
        .get(format!("{}/compute/regions", devnet.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        regions["regions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "ewr")
    );
    let os: Value = client()
        .get(format!("{}/compute/os", devnet.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(os["os_options"][0]["id"], 2284);
}

#[tokio::test]
async fn topup_paid_on_base_sepolia_moves_real_usdc_once() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 20).await.unwrap();
    let url = format!("{}/compute/credits/topup", devnet.url());
    let body = br#"{"amount":5,"network":"base"}"#;
    let challenge = challenge_of(
        Client::of(&devnet)
            .send_signed(
                &payer,
                reqwest::Method::POST,
                "/compute/credits/topup",
                body,
            )
            .await
            .unwrap(),
    )
    .await;
    let selected = PaymentPolicy::default()
        .networks([Network::BASE_SEPOLIA])
        .select(&challenge)
        .unwrap();
    let header = evm::exact::pay(&selected, &payer, &Now, &mut os_random).unwrap();

    let before_payer = devnet.base().balance_of(payer.address()).await.unwrap();
    let before_treasury = devnet.base().balance_of(TREASURY).await.unwrap();
    let paid = client()
        .post(&url)
        .header("content-type", "application/json")
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let receipt = receipt_of(&paid);
    assert!(receipt.success);
    assert_eq!(receipt.network, "eip155:84532");
    let answer: Value = paid.json().await.unwrap();
    assert_eq!(answer["new_balance"], "5.00");
    assert_eq!(answer["tx_hash"], receipt.transaction);
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before_payer - U256::from(5_000_000u64)
    );
    assert_eq!(
        devnet.base().balance_of(TREASURY).await.unwrap(),
        before_treasury + U256::from(5_000_000u64)
    );

    // The same header again: refused, nothing moves.
    let replay = client()
        .post(&url)
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    let refusal: Value = replay.json().await.unwrap();
    assert!(
        refusal["error"]
            .as_str()
            .unwrap()
            .contains("invalid_exact_evm_nonce_already_used")
            || refusal["error"]
                .as_str()
                .unwrap()
                .contains("duplicate_settlement"),
        "{refusal}"
    );
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before_payer - U256::from(5_000_000u64)
    );

    // The credit shows up for the wallet.
    let path = "/compute/credits/balance";
    let balance: Value = Client::of(&devnet)
        .send_signed(&payer, reqwest::Method::GET, path, b"")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], "5.00");
    assert_eq!(balance["wallet"], format!("{:#x}", payer.address()));
}

#[tokio::test]
async fn topup_paid_with_a_megaeth_permit() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let megaeth = devnet.megaeth().unwrap();
    let url = format!("{}/compute/credits/topup", devnet.url());
    let body = br#"{"amount":"2.50","network":"megaeth"}"#;
    let challenge = challenge_of(
        Client::of(&devnet)
            .send_signed(
                &payer,
                reqwest::Method::POST,
                "/compute/credits/topup",
                body,
            )
            .await
            .unwrap(),
    )
    .await;
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    assert_eq!(selected.requirement().network(), &Network::MEGAETH);
    let nonce = megaeth.permit_nonce(payer.address()).await.unwrap();
    let header = evm::permit::pay(&selected, &payer, nonce, &Now).unwrap();
    let before = megaeth.balance_of(payer.address()).await.unwrap();
    let paid = client()
        .post(&url)
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK, "{:?}", paid.text().await);
    let moved = U256::from(25u64) * U256::from(10u64).pow(U256::from(17u64));
    assert_eq!(
        megaeth.balance_of(payer.address()).await.unwrap(),
        before - moved
    );
    assert_eq!(megaeth.balance_of(TREASURY).await.unwrap(), moved);
    // The permit nonce is spent: the same header cannot pay again.
    let replay = client()
        .post(&url)
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        megaeth.balance_of(payer.address()).await.unwrap(),
        before - moved
    );
}

#[tokio::test]
async fn concurrent_duplicates_settle_once() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 50).await.unwrap();
    let url = format!("{}/compute/credits/topup", devnet.url());
    let body = br#"{"amount":3,"network":"base"}"#;
    let challenge = challenge_of(
        Client::of(&devnet)
            .send_signed(
                &payer,
                reqwest::Method::POST,
                "/compute/credits/topup",
                body,
            )
            .await
            .unwrap(),
    )
    .await;
    let selected = PaymentPolicy::default()
        .networks([Network::BASE_SEPOLIA])
        .select(&challenge)
        .unwrap();
    let header = evm::exact::pay(&selected, &payer, &Now, &mut os_random).unwrap();
    let before = devnet.base().balance_of(payer.address()).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let request = client()
            .post(&url)
            .header(header.name(), header.value())
            .body(body.to_vec());
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one of 200 identical submissions settles");
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before - U256::from(3_000_000u64)
    );
    assert_eq!(devnet.store().settlement_count().unwrap(), 1);
}

#[tokio::test]
async fn bad_payments_are_refused_and_change_nothing() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 20).await.unwrap();
    let url = format!("{}/compute/credits/topup", devnet.url());
    let body = br#"{"amount":5}"#;
    let challenge = challenge_of(
        Client::of(&devnet)
            .send_signed(
                &payer,
                reqwest::Method::POST,
                "/compute/credits/topup",
                body,
            )
            .await
            .unwrap(),
    )
    .await;
    let selected = PaymentPolicy::default()
        .networks([Network::BASE_SEPOLIA])
        .select(&challenge)
        .unwrap();
    let requirement = selected.requirement();
    let before = devnet.base().balance_of(payer.address()).await.unwrap();
    let sign_for = |value: u64, signer: &LocalEvmSigner, valid_before_shift: i64| {
        let mut nonce = [0u8; 32];
        os_random(&mut nonce);
        let mut authorization = evm::exact::authorization_for(
            requirement,
            signer.address(),
            x402_core::Clock::now_unix(&Now),
            nonce.into(),
        )
        .unwrap();
        authorization.value = x402_core::TokenAmount::from_u64(value);
        authorization.valid_before =
            (authorization.valid_before as i64 + valid_before_shift) as u64;
        let digest = evm::exact::signing_hash(requirement, &authorization).unwrap();
        let signature = signer.sign_hash(&digest).unwrap();
        evm::exact::payload(&selected, authorization, &signature).unwrap()
    };
    let stranger = LocalEvmSigner::from_hex(
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    )
    .unwrap();
    let cases = [
        ("underpayment", sign_for(4_999_999, &payer, 0)),
        ("overpayment", sign_for(5_000_001, &payer, 0)),
        ("expired", sign_for(5_000_000, &payer, -400)),
        ("unfunded signer", sign_for(5_000_000, &stranger, 0)),
    ];
    for (name, header) in cases {
        let response = client()
            .post(&url)
            .header(header.name(), header.value())
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED, "{name}");
    }
    // Another key's signature over the payer's authorization.
    let mut nonce = [0u8; 32];
    os_random(&mut nonce);
    let authorization = evm::exact::authorization_for(
        requirement,
        payer.address(),
        x402_core::Clock::now_unix(&Now),
        nonce.into(),
    )
    .unwrap();
    let forged = stranger
        .sign_hash(&evm::exact::signing_hash(requirement, &authorization).unwrap())
        .unwrap();
    let header = evm::exact::payload(&selected, authorization, &forged).unwrap();
    let response = client()
        .post(&url)
        .header(header.name(), header.value())
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    // Garbage headers and bodies.
    for (name, value) in [("X-PAYMENT", "%%%"), ("PAYMENT-SIGNATURE", "e30=")] {
        let response = client()
            .post(&url)
            .header(name, value)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{name}: {value}"
        );
    }
    for bad_body in [
        &br#"{"amount":"lots"}"#[..],
        br#"{"amount":0.5}"#,
        br#"{"amount":5,"network":"dogecoin"}"#,
        br#"{"amount":[5]}"#,
        b"not json",
    ] {
        let response = Client::of(&devnet)
            .send_signed(
                &payer,
                reqwest::Method::POST,
                "/compute/credits/topup",
                bad_body,
            )
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(bad_body)
        );
    }
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before
    );
    assert_eq!(devnet.store().settlement_count().unwrap(), 0);
}

#[tokio::test]
async fn auth_nonces_are_single_use_and_api_keys_work() {
    let devnet = test_support::start().await.unwrap();
    let wallet = LocalEvmSigner::from_hex(
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    )
    .unwrap();
    let path = "/compute/api-keys";
    let url = format!("{}{path}", devnet.url());
    let body = br#"{"label":"agent"}"#;
    let headers = auth::sign_evm(
        &wallet,
        AuthChain::Base,
        "POST",
        path,
        body,
        &Now,
        &mut os_random,
    )
    .unwrap();
    let send = || {
        let mut request = client().post(&url).body(body.to_vec());
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        request.send()
    };
    let created = send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("x402c_"));
    assert_eq!(
        send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a replayed nonce is refused"
    );

    let listed: Value = client()
        .get(&url)
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["api_keys"][0]["key_last4"], key[key.len() - 4..]);
    assert!(
        listed["api_keys"][0].get("api_key").is_none(),
        "the key is shown once"
    );
    let balance: Value = client()
        .get(format!("{}/compute/credits/balance", devnet.url()))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        balance,
        json!({ "wallet": format!("{:#x}", wallet.address()), "balance": 0, "total_deposited": 0, "total_spent": 0 })
    );

    let revoke_path = format!("{path}/{}", created["id"].as_str().unwrap());
    let revoked = Client::of(&devnet)
        .send_signed(&wallet, reqwest::Method::DELETE, &revoke_path, b"")
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        client()
            .get(&url)
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client().get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn dollar_amounts_never_pass_through_floating_point() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 1).await.unwrap();
    let api = Client::of(&devnet);
    // 19 significant digits: an f64 would make this 1234567890123.1235.
    let body = br#"{"amount":1234567890123.123456,"network":"base"}"#;
    let challenge = api
        .quote(&payer, "/compute/credits/topup", body)
        .await
        .unwrap();
    assert_eq!(
        challenge.offers()[0].requirement().unwrap().amount(),
        x402_core::TokenAmount::from_u64(1_234_567_890_123_123_456)
    );
    for bad in [&br#"{"amount":1e2}"#[..], br#"{"amount":"1.0000001"}"#] {
        let refused = api
            .send_signed(&payer, reqwest::Method::POST, "/compute/credits/topup", bad)
            .await
            .unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[tokio::test]
async fn a_resent_payment_is_refused_with_the_original_receipt() {
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let api = Client::of(&devnet);
    let body = br#"{"amount":2,"network":"base"}"#;
    for version in [1u8, 2] {
        let quote = api
            .send_signed(
                &payer,
                reqwest::Method::POST,
                "/compute/credits/topup",
                body,
            )
            .await
            .unwrap();
        let headers = quote.headers().clone();
        let bytes = quote.bytes().await.unwrap();
        let challenge = match version {
            1 => Challenge::from_body(&bytes).unwrap(),
            _ => Challenge::from_response(402, &headers, &bytes).unwrap(),
        };
        let selected = PaymentPolicy::default().select(&challenge).unwrap();
        let header = evm::exact::pay(&selected, &payer, &Now, &mut os_random).unwrap();
        let send = || {
            api.post("/compute/credits/topup", body)
                .header(header.name(), header.value())
                .send()
        };
        let paid = send().await.unwrap();
        assert_eq!(paid.status(), StatusCode::OK);
        let original = receipt_of(&paid);
        let before = devnet.base().balance_of(payer.address()).await.unwrap();

        // The answer was lost; the client sends the same payment again.
        let again = send().await.unwrap();
        assert_eq!(again.status(), StatusCode::PAYMENT_REQUIRED, "v{version}");
        let receipt_header = match version {
            1 => "x-payment-response",
            _ => "payment-response",
        };
        assert!(again.headers().contains_key(receipt_header), "v{version}");
        let receipt = receipt_of(&again);
        assert!(receipt.success, "the payment went through, once");
        assert_eq!(receipt.transaction, original.transaction);
        let refusal: Value = again.json().await.unwrap();
        assert!(
            refusal["error"]
                .as_str()
                .unwrap()
                .contains("duplicate_settlement"),
            "{refusal}"
        );
        assert_eq!(
            devnet.base().balance_of(payer.address()).await.unwrap(),
            before,
            "nothing moved again"
        );
    }
}

#[tokio::test]
async fn a_payment_identifier_answers_the_same_payment_once_and_refuses_another() {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    let devnet = test_support::start().await.unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let api = Client::of(&devnet);
    let path = "/compute/credits/topup";
    let body = br#"{"amount":2,"network":"base"}"#;
    let challenge = api.quote(&payer, path, body).await.unwrap();
    assert!(
        challenge
            .extensions_json()
            .is_some_and(|e| e.get().contains("payment-identifier")),
        "the v2 challenge offers the extension"
    );
    let selected = PaymentPolicy::default()
        .networks([Network::BASE_SEPOLIA])
        .select(&challenge)
        .unwrap();
    // A fresh signed payment carrying `id` in its payment-identifier extension.
    let paying_with = |id: &str| {
        let header = evm::exact::pay(&selected, &payer, &Now, &mut os_random).unwrap();
        let mut payload: Value =
            serde_json::from_slice(&base64.decode(header.value()).unwrap()).unwrap();
        payload["extensions"]["payment-identifier"]["info"]["id"] = json!(id);
        base64.encode(serde_json::to_vec(&payload).unwrap())
    };
    let send = |header: String| {
        api.post(path, body)
            .header("PAYMENT-SIGNATURE", header)
            .send()
    };
    let id = "pay_0123456789abcdef0123456789abcdef";
    let payment = paying_with(id);
    let before = devnet.base().balance_of(payer.address()).await.unwrap();

    let first = send(payment.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first_receipt = receipt_of(&first);
    let first_body: Value = first.json().await.unwrap();
    // The answer was lost; the same payment with the same id gets the same answer.
    let again = send(payment).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(receipt_of(&again).transaction, first_receipt.transaction);
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    // The same id on another payment (signed again): refused, nothing moves.
    let other = send(paying_with(id)).await.unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);
    let invalid = send(paying_with("short")).await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);

    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before - U256::from(2_000_000u64),
        "charged once"
    );
    let balance = api.credits(&payer).await.unwrap();
    assert_eq!(balance["balance"], "2.00");
}
