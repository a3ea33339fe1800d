//! The paying client's own cost (`cargo xtask bench`): a paid request through the middleware
//! against a loopback server whose "settlement" is a stub (it answers the paid attempt at
//! once), next to the same server's unpaid answers, one signature and one fsync.
//!
//! A paid request is two round trips (the 402, then the paid attempt) plus the client's
//! work: parsing the challenge, the policy, signing, the journal. So the client's own cost is
//! `paid − 402 round trip − free round trip`; the goal is that it stays within one signature
//! and one fsync (the durable journal's write) plus 1 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::IntoResponse;
use criterion::{Criterion, criterion_group, criterion_main};
use x402_core::challenge::{PaymentRequired, ResourceInfo};
use x402_core::{Challenge, Clock, LocalEvmSigner, Network, PaymentPolicy, Receipt, UsdMicros};
use x402_reqwest::{Config, EvmPayer, MemoryJournal, X402Middleware};

struct Now;

impl Clock for Now {
    fn now_unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }
}

fn required() -> PaymentRequired {
    PaymentRequired {
        resource: ResourceInfo {
            url: "http://127.0.0.1/paid".into(),
            description: None,
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
        extensions: serde_json::Map::new(),
    }
}

/// `/free` answers 200; `/paid` answers 402 without a payment and 200 with a receipt with
/// one (the stub settlement).
async fn server() -> String {
    let challenge = required().to_v2_header();
    let receipt = Receipt {
        success: true,
        transaction: format!("0x{}", "ab".repeat(32)),
        network: "eip155:84532".into(),
        payer: None,
        error_reason: None,
        amount: None,
    }
    .to_header_value();
    let app = axum::Router::new()
        .route("/free", axum::routing::get(|| async { "ok" }))
        .route(
            "/paid",
            axum::routing::get(move |headers: HeaderMap| {
                let challenge = challenge.clone();
                let receipt = receipt.clone();
                async move {
                    match headers.contains_key("payment-signature") {
                        true => ([("payment-response", receipt)], "ok").into_response(),
                        false => (
                            axum::http::StatusCode::PAYMENT_REQUIRED,
                            [("payment-required", challenge)],
                            "",
                        )
                            .into_response(),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(server());
    let plain = test_support::http();
    let clock: Arc<dyn Clock + Send + Sync> = Arc::new(Now);
    let entropy = Arc::new(|b: &mut [u8]| getrandom::fill(b).unwrap());
    let signer = Arc::new(LocalEvmSigner::from_bytes(&[0x42; 32]).unwrap());
    let payer = Arc::new(EvmPayer::new(
        signer.clone(),
        clock.clone(),
        entropy.clone(),
    ));
    let paying = reqwest_middleware::ClientBuilder::new(test_support::http())
        .with(X402Middleware::new(
            payer,
            Arc::new(MemoryJournal::new()),
            clock.clone(),
            entropy.clone(),
            Config {
                policy: PaymentPolicy::default().usd_cap(Some(UsdMicros::from_dollars(1))),
                ..Config::default()
            },
        ))
        .build();

    let mut group = c.benchmark_group("client");
    group.bench_function("free round trip", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let answer = plain.get(format!("{url}/free")).send().await.unwrap();
                answer.bytes().await.unwrap()
            })
        })
    });
    group.bench_function("402 round trip", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let answer = plain.get(format!("{url}/paid")).send().await.unwrap();
                answer.bytes().await.unwrap()
            })
        })
    });
    group.bench_function("paid request (402, sign, journal, paid attempt)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let answer = paying.get(format!("{url}/paid")).send().await.unwrap();
                assert!(answer.status().is_success());
                answer.bytes().await.unwrap()
            })
        })
    });
    let challenge = Challenge::from_v2_header(&required().to_v2_header()).unwrap();
    group.bench_function("sign (select and EIP-3009)", |b| {
        b.iter(|| {
            let selected = PaymentPolicy::default().select(&challenge).unwrap();
            let mut entropy = |buf: &mut [u8]| getrandom::fill(buf).unwrap();
            x402_core::evm::exact::pay(&selected, &*signer, &Now, &mut entropy).unwrap()
        })
    });
    let dir = std::env::temp_dir().join(format!("x402-reqwest-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fsync");
    group.bench_function("fsync of a journal-sized write", |b| {
        b.iter(|| {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            file.write_all(&[7u8; 600]).unwrap();
            file.sync_all().unwrap();
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
