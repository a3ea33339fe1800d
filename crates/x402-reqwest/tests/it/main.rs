//! x402-reqwest against the devnet on its real chains, and against a local server that fails
//! on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use x402_core::auth::{self, AuthChain};
use x402_core::{EvmSigner, LocalEvmSigner, Network, PaymentPolicy, Receipt, UsdMicros};
use x402_reqwest::{
    Config, Error, EvmPayer, MemoryJournal, PaidAttempt, PaymentJournal, PaymentState,
    X402Middleware,
};

fn clock() -> Arc<dyn x402_core::Clock + Send + Sync> {
    Arc::new(test_support::Now)
}

/// A paying client for `signer` under `config`, with its journal and a count of signatures.
fn paying_client(
    signer: &Arc<LocalEvmSigner>,
    config: Config,
) -> (ClientWithMiddleware, Arc<MemoryJournal>, Arc<AtomicUsize>) {
    let journal = Arc::new(MemoryJournal::new());
    let signed = Arc::new(AtomicUsize::new(0));
    let counter = signed.clone();
    let payer = Arc::new(EvmPayer::new(
        signer.clone() as Arc<dyn EvmSigner + Send + Sync>,
        clock(),
        Arc::new(test_support::os_random),
    ));
    let middleware = X402Middleware::new(
        payer,
        journal.clone(),
        clock(),
        Arc::new(test_support::os_random),
        config,
    )
    .before_sign(Arc::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    let client = reqwest_middleware::ClientBuilder::new(test_support::http())
        .with(middleware)
        .build();
    (client, journal, signed)
}

/// Base Sepolia only, up to `dollars` per payment.
fn base_up_to(dollars: u64) -> Config {
    Config {
        policy: PaymentPolicy::default()
            .networks([Network::BASE_SEPOLIA])
            .usd_cap(Some(UsdMicros::from_dollars(dollars))),
        retry_delay: Duration::from_millis(10),
        ..Config::default()
    }
}

/// A top-up of `body` to the devnet, signed with the wallet-auth headers; the paid attempt
/// carries none (their nonce is spent), as the machines API wants.
async fn topup(
    client: &ClientWithMiddleware,
    devnet: &devnet::Devnet,
    signer: &Arc<LocalEvmSigner>,
    body: &str,
) -> reqwest_middleware::Result<reqwest::Response> {
    let path = "/compute/credits/topup";
    let headers = auth::sign_evm(
        &**signer,
        AuthChain::Base,
        "POST",
        path,
        body.as_bytes(),
        &test_support::Now,
        &mut test_support::os_random,
    )
    .unwrap();
    let mut request = client
        .post(format!("{}{path}", devnet.url()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .with_extension(PaidAttempt(Arc::new(|headers| {
            let auth: Vec<_> = headers
                .keys()
                .filter(|name| name.as_str().starts_with("x-auth-"))
                .cloned()
                .collect();
            for name in auth {
                headers.remove(name);
            }
        })));
    for (name, value) in headers.pairs() {
        request = request.header(name, value);
    }
    request.send().await
}

/// A devnet with `faults` and a wallet holding $10 on it.
async fn faulty_devnet(faults: devnet::FaultConfig) -> (devnet::Devnet, Arc<LocalEvmSigner>) {
    let devnet = test_support::start_with(|config| devnet::Config { faults, ..config })
        .await
        .unwrap();
    let payer = Arc::new(test_support::funded_wallet(&devnet, 10).await.unwrap());
    (devnet, payer)
}

fn our_error(result: reqwest_middleware::Result<reqwest::Response>) -> String {
    let error = result.expect_err("expected the middleware to refuse");
    let ours = Error::of(&error).unwrap_or_else(|| panic!("not ours: {error}"));
    format!("{ours:?}: {ours}")
}

#[tokio::test]
async fn pays_a_devnet_top_up_once_and_journals_its_receipt() {
    let devnet = test_support::start().await.unwrap();
    let payer = Arc::new(test_support::funded_wallet(&devnet, 10).await.unwrap());
    let (client, journal, signed) = paying_client(&payer, base_up_to(5));
    let body = r#"{"amount":2,"network":"base"}"#;

    let paid = topup(&client, &devnet, &payer, body).await.unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let receipt = paid.extensions().get::<Receipt>().cloned().unwrap();
    assert!(receipt.success);
    let answer: serde_json::Value = paid.json().await.unwrap();
    assert_eq!(answer["new_balance"], "2.00");
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        alloy::primitives::U256::from(2_000_000u64)
    );
    let entries = journal.entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].state,
        PaymentState::Settled {
            transaction: receipt.transaction.clone()
        }
    );
    assert_eq!(entries[0].payment.network, "eip155:84532");
    assert_eq!(entries[0].payment.usd, Some(UsdMicros::from_dollars(2)));
    // The devnet's v2 challenge offers `payment-identifier`: the payment carries an id.
    assert_eq!(entries[0].payment.header_name, "PAYMENT-SIGNATURE");
    let id = entries[0].payment.payment_id.clone().unwrap();
    assert!(id.starts_with("pay_") && id.len() == 36, "{id}");
    assert_eq!(signed.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_policy_and_the_budget_refuse_before_anything_is_signed() {
    let devnet = test_support::start().await.unwrap();
    let payer = Arc::new(test_support::funded_wallet(&devnet, 10).await.unwrap());

    // The crate's default: $1 per payment.
    let (client, journal, signed) = paying_client(&payer, Config::default());
    let refused =
        our_error(topup(&client, &devnet, &payer, r#"{"amount":2,"network":"base"}"#).await);
    assert!(refused.contains("Policy"), "{refused}");
    assert_eq!(signed.load(Ordering::SeqCst), 0, "the hook never ran");
    assert!(journal.entries().unwrap().is_empty());

    // A $3 daily budget: $2 passes, the next $2 does not.
    let (client, journal, signed) = paying_client(
        &payer,
        Config {
            daily_budget: Some(UsdMicros::from_dollars(3)),
            ..base_up_to(5)
        },
    );
    let body = r#"{"amount":2,"network":"base"}"#;
    assert_eq!(
        topup(&client, &devnet, &payer, body)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let refused = our_error(topup(&client, &devnet, &payer, body).await);
    assert!(refused.contains("OverBudget"), "{refused}");
    assert_eq!(signed.load(Ordering::SeqCst), 1);
    assert_eq!(journal.entries().unwrap().len(), 1);
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        alloy::primitives::U256::from(2_000_000u64),
        "one transfer"
    );
}

#[tokio::test]
async fn a_pending_settlement_is_never_paid_again_and_resolves_by_resending_it() {
    let (devnet, payer) = faulty_devnet(devnet::FaultConfig {
        hold_confirmation: true,
        ..devnet::FaultConfig::default()
    })
    .await;
    let (client, journal, signed) = paying_client(&payer, base_up_to(5));
    let body = r#"{"amount":2,"network":"base"}"#;

    let pending = our_error(topup(&client, &devnet, &payer, body).await);
    assert!(pending.contains("Pending"), "{pending}");
    let entry = journal.entries().unwrap().remove(0);
    assert!(matches!(
        entry.state,
        PaymentState::Pending {
            transaction: Some(_)
        }
    ));

    // The same request again: the same signed payment goes out, never a new one.
    devnet.faults().set(devnet::FaultConfig::default());
    devnet.facilitator().reconcile().await.unwrap();
    let again = topup(&client, &devnet, &payer, body).await;
    let settled = journal.entries().unwrap().remove(0);
    assert!(
        matches!(settled.state, PaymentState::Settled { .. }),
        "{:?} then {again:?}",
        settled.state
    );
    assert_eq!(signed.load(Ordering::SeqCst), 1, "signed once");
    assert_eq!(journal.entries().unwrap().len(), 1);
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        alloy::primitives::U256::from(2_000_000u64),
        "one transfer"
    );
}

/// A server that asks for $0.01 on Base Sepolia, answers the paid attempts with 503 `fail`
/// times, then 200; it keeps every payment header it received.
/// A paid resource that answers its first `fail` paid attempts with 503, then the resource, or
/// with `refuse_after`, a bare 402 (what a server says of a payment it already used).
async fn flaky_server_then(
    fail: usize,
    refuse_after: bool,
) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::{HeaderMap, StatusCode as Status};
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    let required = x402_core::PaymentRequired {
        resource: x402_core::ResourceInfo {
            url: "http://127.0.0.1/paid".into(),
            description: Some("a test resource".into()),
            mime_type: None,
        },
        error: String::new(),
        accepts: vec![
            x402_core::challenge::RequirementSpec::exact(
                Network::BASE_SEPOLIA,
                x402_core::TokenAmount::from_u64(10_000),
                "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
                    .parse()
                    .unwrap(),
            )
            .unwrap(),
        ],
        extensions: Default::default(),
    };
    let header = required.to_v2_header();
    let app = axum::Router::new().route(
        "/paid",
        axum::routing::post(move |headers: HeaderMap| {
            let seen = kept.clone();
            let header = header.clone();
            async move {
                let Some(payment) = headers.get("payment-signature") else {
                    return (Status::PAYMENT_REQUIRED, [("payment-required", header)], "")
                        .into_response();
                };
                let mut seen = seen.lock().unwrap();
                seen.push(payment.to_str().unwrap().to_owned());
                if seen.len() <= fail {
                    (Status::SERVICE_UNAVAILABLE, "try again").into_response()
                } else if refuse_after {
                    (Status::PAYMENT_REQUIRED, [("payment-required", header)], "").into_response()
                } else {
                    (Status::OK, "the resource").into_response()
                }
            }
        }),
    );
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/paid", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn flaky_server(fail: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    flaky_server_then(fail, false).await
}

#[tokio::test]
async fn a_refused_resend_stays_pending_for_the_chain_to_decide() {
    // The first send got a 503 (it may have settled); the resend is refused as used.
    let (url, seen) = flaky_server_then(1, true).await;
    let mut secret = [0u8; 32];
    test_support::os_random(&mut secret);
    let payer = Arc::new(LocalEvmSigner::from_bytes(&secret).unwrap());
    let (client, journal, signed) = paying_client(&payer, base_up_to(1));
    let pending = our_error(client.post(&url).body("{}").send().await);
    assert!(pending.contains("Pending"), "{pending}");
    assert_eq!(seen.lock().unwrap().len(), 2, "sent, then resent once");
    assert_eq!(signed.load(Ordering::SeqCst), 1, "never signed again");
    assert!(matches!(
        journal.entries().unwrap()[0].state,
        PaymentState::Pending { .. }
    ));
}

#[tokio::test]
async fn transient_failures_resend_the_same_signed_payment() {
    let (url, seen) = flaky_server(2).await;
    let mut secret = [0u8; 32];
    test_support::os_random(&mut secret);
    let payer = Arc::new(LocalEvmSigner::from_bytes(&secret).unwrap());
    let (client, journal, signed) = paying_client(&payer, base_up_to(1));
    let answer = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.text().await.unwrap(), "the resource");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "two 503s, then the answer");
    assert!(
        seen.iter().all(|h| *h == seen[0]),
        "the same payment every time"
    );
    assert_eq!(signed.load(Ordering::SeqCst), 1);
    assert!(matches!(
        journal.entries().unwrap()[0].state,
        PaymentState::Settled { .. }
    ));
    let _ = payer.address();
}

#[tokio::test]
async fn retries_exhausted_leave_the_payment_pending_and_the_next_call_resends_it() {
    let (url, seen) = flaky_server(5).await;
    let mut secret = [0u8; 32];
    test_support::os_random(&mut secret);
    let payer = Arc::new(LocalEvmSigner::from_bytes(&secret).unwrap());
    let (client, journal, signed) = paying_client(
        &payer,
        Config {
            retries: 2,
            ..base_up_to(1)
        },
    );
    let pending = our_error(client.post(&url).body("{}").send().await);
    assert!(pending.contains("Pending"), "{pending}");
    assert_eq!(seen.lock().unwrap().len(), 3);
    // The same request later: the pending payment goes out again, not a new one.
    let answer = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 6);
    assert!(seen.iter().all(|h| *h == seen[0]));
    assert_eq!(signed.load(Ordering::SeqCst), 1);
    assert_eq!(journal.entries().unwrap().len(), 1);
}

#[tokio::test]
async fn an_answer_lost_after_paying_is_recovered_without_paying_twice() {
    let (devnet, payer) = faulty_devnet(devnet::FaultConfig {
        drop_paid_answers: true,
        ..devnet::FaultConfig::default()
    })
    .await;
    let (client, journal, signed) = paying_client(&payer, base_up_to(5));
    let body = r#"{"amount":2,"network":"base"}"#;

    // The devnet settles, then drops the connection; the resend of the same payment learns
    // that it settled (the duplicate refusal names the original transaction).
    let lost = our_error(topup(&client, &devnet, &payer, body).await);
    assert!(lost.contains("PaidWithoutAnswer"), "{lost}");
    let entries = journal.entries().unwrap();
    assert_eq!(entries.len(), 1);
    let PaymentState::Settled { transaction } = &entries[0].state else {
        panic!("{:?}", entries[0].state);
    };
    assert!(transaction.starts_with("0x"), "{transaction}");
    assert_eq!(signed.load(Ordering::SeqCst), 1, "signed once");
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        alloy::primitives::U256::from(2_000_000u64),
        "one transfer"
    );
}
