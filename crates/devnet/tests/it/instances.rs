//! Instances: provision paid with x402 or credits, lifecycle, extend, resize, password,
//! destroy, ownership, provider rejection and bad input.

use std::time::Duration;

use alloy::primitives::U256;
use devnet::TestClock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{Client, challenge};
use x402_core::{Error, EvmSigner, LocalEvmSigner, TokenAmount};

/// A devnet on a test clock (which its client signs with too), with `boot_delay_ms`.
async fn devnet_with(boot_delay_ms: u64) -> (devnet::Devnet, Client, TestClock) {
    let clock = TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        faults: devnet::FaultConfig {
            boot_delay_ms,
            ..devnet::FaultConfig::default()
        },
        clock: std::sync::Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());
    (devnet, api, clock)
}

#[tokio::test]
async fn provision_with_x402_then_manage_the_instance() {
    let (devnet, api, clock) = devnet_with(400).await;
    let owner = test_support::funded_wallet(&devnet, 20).await.unwrap();
    let body = json!({"plan":"vc2-1c-1gb","region":"ewr","os_id":2284,"label":"x402-instance","prepaid_hours":24,"network":"base"});

    // The price is the plan's hourly rate times the hours: 0.008 × 24 = $0.192.
    let quote = challenge(
        api.call(
            None,
            reqwest::Method::POST,
            "/compute/provision",
            Some(body.clone()),
            &[],
        )
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    let offer = quote.offers()[0].requirement().unwrap();
    assert_eq!(offer.amount(), TokenAmount::from_u64(192_000));

    let before = devnet.base().balance_of(owner.address()).await.unwrap();
    let created = api
        .pay_base(&owner, "/compute/provision", body)
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        devnet.base().balance_of(owner.address()).await.unwrap(),
        before - U256::from(192_000u64)
    );
    let order = &created["order"];
    assert_eq!(order["status"], "pending");
    assert_eq!(order["ip_address"], "pending");
    assert_eq!(order["payment_amount"], "0.192");
    let id = order["id"].as_str().unwrap().to_owned();

    clock.advance(Duration::from_millis(500));
    let details: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            &format!("/compute/instances/{id}"),
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(details["order"]["status"], "active");
    assert!(
        details["order"]["ip_address"]
            .as_str()
            .unwrap()
            .starts_with("203.0.113.")
    );
    let listed: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            "/compute/instances",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["instances"].as_array().unwrap().len(), 1);

    // Someone else sees nothing.
    let stranger = LocalEvmSigner::from_hex(
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    )
    .unwrap();
    assert_eq!(
        api.call(
            Some(&stranger),
            reqwest::Method::GET,
            &format!("/compute/instances/{id}"),
            None,
            &[]
        )
        .await
        .unwrap()
        .status(),
        StatusCode::NOT_FOUND
    );
    let theirs: Value = api
        .call(
            Some(&stranger),
            reqwest::Method::GET,
            "/compute/instances",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["instances"], json!([]));
    assert_eq!(
        api.call(
            Some(&stranger),
            reqwest::Method::DELETE,
            &format!("/compute/instances/{id}"),
            None,
            &[]
        )
        .await
        .unwrap()
        .status(),
        StatusCode::NOT_FOUND
    );

    // The one-time password works once.
    let password_path = format!("/compute/instances/{id}/password");
    let first = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            &password_path,
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let access: Value = first.json().await.unwrap();
    assert_eq!(access["access"]["username"], "root");
    assert_eq!(
        api.call(
            Some(&owner),
            reqwest::Method::POST,
            &password_path,
            None,
            &[]
        )
        .await
        .unwrap()
        .status(),
        StatusCode::CONFLICT
    );

    // Extend by 48 hours with x402: expires_at moves by exactly 48 h.
    let old_expiry = details["order"]["expires_at"].as_str().unwrap().to_owned();
    let extended = api
        .pay_base(
            &owner,
            &format!("/compute/instances/{id}/extend"),
            json!({"extend_hours":48,"network":"base"}),
        )
        .await
        .unwrap();
    assert_eq!(extended.status(), StatusCode::OK);
    let extended: Value = extended.json().await.unwrap();
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert_eq!(
        parse(extended["order"]["expires_at"].as_str().unwrap()) - parse(&old_expiry),
        time::Duration::hours(48)
    );

    // Resize up keeps the remaining dollars: 72 h at $0.008 = $0.576 buys 19.2 h at $0.03.
    let resized = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            &format!("/compute/instances/{id}/resize"),
            Some(json!({"plan":"vc2-2c-4gb","confirm_disk_resize":false})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(resized.status(), StatusCode::OK);
    let resized: Value = resized.json().await.unwrap();
    assert_eq!(resized["to_plan"], "vc2-2c-4gb");
    let credit = resized["remaining_credit"].as_f64().unwrap();
    assert!((0.574..=0.576).contains(&credit), "{resized}");
    let after = resized["remaining_hours_after"].as_f64().unwrap();
    assert!((19.1..=19.2).contains(&after), "{resized}");
    let down = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            &format!("/compute/instances/{id}/resize"),
            Some(json!({"plan":"vc2-1c-1gb"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        down.status(),
        StatusCode::BAD_REQUEST,
        "Vultr plans only grow"
    );

    // Destroy, once.
    let destroyed = api
        .call(
            Some(&owner),
            reqwest::Method::DELETE,
            &format!("/compute/instances/{id}"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(destroyed.status(), StatusCode::OK);
    let destroyed: Value = destroyed.json().await.unwrap();
    assert_eq!(destroyed["instance"]["status"], "destroyed");
    assert_eq!(
        api.call(
            Some(&owner),
            reqwest::Method::DELETE,
            &format!("/compute/instances/{id}"),
            None,
            &[]
        )
        .await
        .unwrap()
        .status(),
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn credits_pay_for_instances_and_shortfalls_are_not_challenges() {
    let (devnet, api, _clock) = devnet_with(0).await;
    let owner = test_support::funded_wallet(&devnet, 30).await.unwrap();
    assert_eq!(
        api.pay_base(&owner, "/compute/credits/topup", json!({"amount":1}))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let dear = json!({"plan":"vc2-2c-4gb","region":"ewr","prepaid_hours":720,"use_credits":true});
    let short = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            "/compute/provision",
            Some(dear),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::PAYMENT_REQUIRED);
    match challenge(short).await {
        Err(test_support::Error::Payment(Error::NoChallenge { message, .. })) => assert!(
            message.contains("insufficient credits") && message.contains("shortfall 20.60"),
            "{message}"
        ),
        other => panic!("expected a 402 without a challenge, got {other:?}"),
    }
    let cheap = json!({"plan":"vc2-1c-1gb","region":"ams","prepaid_hours":100,"use_credits":true,"ssh_public_key":"ssh-ed25519 AAAAC3 test"});
    let created = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            "/compute/provision",
            Some(cheap),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["order"]["access_method"], "ssh_key");
    let balance: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            "/compute/credits/balance",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], "0.20", "$1 - 100 h × $0.008");
    assert_eq!(balance["total_spent"], "0.80");
    let id = created["order"]["id"].as_str().unwrap();
    let extended = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            &format!("/compute/instances/{id}/extend"),
            Some(json!({"extend_hours":25,"use_credits":true})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(extended.status(), StatusCode::OK);
    let password = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            &format!("/compute/instances/{id}/password"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        password.status(),
        StatusCode::BAD_REQUEST,
        "SSH-key instances have no password"
    );
}

#[tokio::test]
async fn provider_rejection_refunds_to_credits() {
    let (devnet, api, _clock) = devnet_with(0).await;
    let owner = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let set = api
        .request(reqwest::Method::POST, "/devnet/faults")
        .json(&json!({"provider_reject_permille":1000}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), StatusCode::OK);
    let rejected = api
        .pay_base(
            &owner,
            "/compute/provision",
            json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":48}),
        )
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::BAD_GATEWAY);
    let rejected: Value = rejected.json().await.unwrap();
    assert_eq!(rejected["refunded"], "0.384");
    let balance: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            "/compute/credits/balance",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], "0.384");
    let listed: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            "/compute/instances",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["instances"], json!([]));
}

#[tokio::test]
async fn bad_provision_requests_get_400_and_change_nothing() {
    let (devnet, api, _clock) = devnet_with(0).await;
    let owner = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let cases = [
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":23}),
        json!({"plan":"nope","region":"ewr","prepaid_hours":24}),
        json!({"plan":"vc2-1c-1gb","region":"mars","prepaid_hours":24}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":"24"}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"os_id":9}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"network":"dogecoin"}),
        json!({"plan":"do:s-1vcpu-1gb","region":"nyc3","prepaid_hours":24}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"ai_machine":{"model_id":"m","mode":"public"}}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"ai_machine":{"model_id":"m","mode":"private"},"deploy_node":{"model_id":"m"}}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"surprise":true}),
        json!({"region":"ewr","prepaid_hours":24}),
    ];
    for body in cases {
        let response = api
            .call(
                Some(&owner),
                reqwest::Method::POST,
                "/compute/provision",
                Some(body.clone()),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].is_string(), "{error}");
    }
    let garbage = api
        .call(
            None,
            reqwest::Method::POST,
            "/compute/provision",
            Some(json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24})),
            &[("X-PAYMENT", "not base64!")],
        )
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let listed: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            "/compute/instances",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["instances"], json!([]));
    assert_eq!(devnet.store().settlement_count().unwrap(), 0);
}

#[tokio::test]
async fn request_numbers_that_overflow_are_refused_before_any_money_moves() {
    let (devnet, api, _clock) = devnet_with(0).await;
    let owner = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let topped = api
        .pay_base(&owner, "/compute/credits/topup", json!({"amount": 5}))
        .await
        .unwrap();
    assert_eq!(topped.status(), StatusCode::OK);
    // 6e12 hours: the price ($48 billion) fits, the end time does not.
    for body in [
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":6_000_000_000_000u64}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":6_000_000_000_000u64,"use_credits":true}),
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":u64::MAX}),
    ] {
        let answer = api
            .call(
                Some(&owner),
                reqwest::Method::POST,
                "/compute/provision",
                Some(body.clone()),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = answer.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("prepaid_hours"),
            "{error}"
        );
    }
    let created: Value = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            "/compute/provision",
            Some(json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"use_credits":true})),
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["order"]["id"].as_str().unwrap();
    let extend = format!("/compute/instances/{id}/extend");
    let answer = api
        .call(
            Some(&owner),
            reqwest::Method::POST,
            &extend,
            Some(json!({"extend_hours": 6_000_000_000_000u64, "use_credits": true})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let balance: Value = api
        .call(
            Some(&owner),
            reqwest::Method::GET,
            "/compute/credits/balance",
            None,
            &[],
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        balance["balance"], "4.808",
        "only the 24 h instance was paid"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_duplicates_across_topup_and_provision_settle_once() {
    let (devnet, api, _clock) = devnet_with(0).await;
    let payer = test_support::funded_wallet(&devnet, 5).await.unwrap();
    // $1 either way: a $1 top-up, or 125 hours of vc2-1c-1gb at $0.008: one offer fits both.
    let topup = json!({"amount": 1, "network": "base"});
    let provision =
        json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":125,"network":"base"});
    let quote = api
        .call(
            Some(&payer),
            reqwest::Method::POST,
            "/compute/credits/topup",
            Some(topup.clone()),
            &[],
        )
        .await
        .unwrap();
    let challenge = challenge(quote).await.unwrap();
    let selected = x402_core::PaymentPolicy::default()
        .networks([x402_core::Network::BASE_SEPOLIA])
        .select(&challenge)
        .unwrap();
    let header = x402_core::evm::exact::pay(
        &selected,
        &payer,
        &test_support::Now,
        &mut test_support::os_random,
    )
    .unwrap();
    let before = devnet.base().balance_of(payer.address()).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..1000 {
        let (path, body) = match i % 2 {
            0 => ("/compute/credits/topup", topup.clone()),
            _ => ("/compute/provision", provision.clone()),
        };
        let request = api
            .post(path, &serde_json::to_vec(&body).unwrap())
            .header(header.name(), header.value());
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status()
        }));
    }
    let (mut topped_up, mut provisioned) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => topped_up += 1,
            StatusCode::CREATED => provisioned += 1,
            StatusCode::PAYMENT_REQUIRED => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(
        topped_up + provisioned,
        1,
        "one of 1,000 identical payments settles"
    );
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before - U256::from(1_000_000u64),
        "one transfer"
    );
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        U256::from(1_000_000u64)
    );
    assert_eq!(devnet.store().settlement_count().unwrap(), 1);
    let owner = x402_core::PayTo::Evm(payer.address());
    assert_eq!(
        devnet.store().credits(&owner).unwrap().deposited_micros,
        if topped_up == 1 { 1_000_000 } else { 0 }
    );
    assert_eq!(devnet.store().instances(&owner).unwrap().len(), provisioned);
}
