//! The devnet's clock is injected: moving a test clock moves the auth window, payment expiry,
//! instance lifetimes and the EVM chains' block timestamps, with no sleeping.

use std::time::Duration;

use devnet::TestClock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::Client;
use x402_core::{Clock, EvmSigner, Network, PaymentPolicy, evm};

#[tokio::test]
async fn the_devnets_clock_drives_auth_windows_expiry_and_the_chain() {
    let clock = TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: std::sync::Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());
    let on_system_time = Client::of(&devnet);
    let balance = "/compute/credits/balance";

    // A payment signed now, then the devnet's time moves past its validBefore.
    let body = br#"{"amount":1,"network":"base"}"#;
    let challenge = api
        .quote(&payer, "/compute/credits/topup", body)
        .await
        .unwrap();
    let selected = PaymentPolicy::default()
        .networks([Network::BASE_SEPOLIA])
        .select(&challenge)
        .unwrap();
    let stale = evm::exact::pay(&selected, &payer, &clock, &mut test_support::os_random).unwrap();
    clock.advance(Duration::from_secs(400));
    let before = devnet.base().balance_of(payer.address()).await.unwrap();
    let refused = api
        .post("/compute/credits/topup", body)
        .header(stale.name(), stale.value())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        devnet.base().balance_of(payer.address()).await.unwrap(),
        before
    );

    // Requests signed on the system clock are now outside the ±300 s auth window.
    let outside = on_system_time
        .send_signed(&payer, reqwest::Method::GET, balance, b"")
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::UNAUTHORIZED);

    // A payment signed at the devnet's time settles, in a block stamped with that time.
    let paid = api
        .pay_base(&payer, "/compute/credits/topup", json!({"amount": 1}))
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let block: Value = test_support::http()
        .post(devnet.base().rpc_url())
        .json(&json!({"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":["latest",false]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stamped = u64::from_str_radix(
        block["result"]["timestamp"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    assert!(
        stamped.abs_diff(clock.now_unix()) <= 5,
        "block at {stamped}, devnet clock at {}",
        clock.now_unix()
    );

    // An instance expires when the clock passes its prepaid hours.
    let created = api
        .call_ok(
            &payer,
            reqwest::Method::POST,
            "/compute/provision",
            Some(json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"use_credits":true})),
        )
        .await
        .unwrap();
    assert_eq!(created["order"]["status"], "active");
    let path = format!(
        "/compute/instances/{}",
        created["order"]["id"].as_str().unwrap()
    );
    clock.advance(Duration::from_secs(24 * 3600));
    let details = api
        .call_ok(&payer, reqwest::Method::GET, &path, None)
        .await
        .unwrap();
    assert_eq!(details["order"]["status"], "expired");
}
