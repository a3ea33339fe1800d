//! `x402c` against the devnet on its real chains: the binary runs as a user runs it, with its
//! own journal and config paths, and every output is checked for the key it was given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use alloy::primitives::U256;
use serde_json::Value;
use x402_core::{EvmSigner, LocalEvmSigner};

/// One user's `x402c`: a key, a journal and a (missing) config file of its own.
struct User {
    key: String,
    address: alloy::primitives::Address,
    /// The Solana keypair, as `solana-keygen` writes it (a JSON array of 64 bytes).
    solana_key: String,
    solana: x402_core::SolanaAddress,
    dir: PathBuf,
}

impl Drop for User {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl User {
    async fn funded(devnet: &devnet::Devnet, dollars: u64) -> User {
        let mut secret = [0u8; 32];
        test_support::os_random(&mut secret);
        let signer = LocalEvmSigner::from_bytes(&secret).unwrap();
        let address = signer.address();
        devnet
            .chains()
            .fund_evm(address, dollars * 1_000_000)
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!(
            "x402c-{}-{}",
            std::process::id(),
            alloy::hex::encode(&secret[..6])
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut solana_secret = [0u8; 32];
        test_support::os_random(&mut solana_secret);
        let solana_signer = x402_core::LocalSolanaSigner::from_secret(solana_secret);
        let solana = x402_core::SolanaSigner::pubkey(&solana_signer);
        if let Some(ledger) = devnet.solana() {
            ledger.fund(&solana, dollars * 1_000_000).unwrap();
        }
        let keypair: Vec<u8> = solana_secret
            .iter()
            .chain(solana.to_bytes().iter())
            .copied()
            .collect();
        User {
            key: alloy::hex::encode(secret),
            address,
            solana_key: serde_json::to_string(&keypair).unwrap(),
            solana,
            dir,
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_x402c"))
            .args(args)
            .env("PRIVATE_KEY", &self.key)
            .env("SOLANA_SECRET_KEY", &self.solana_key)
            .env("X402C_JOURNAL", self.dir.join("payments.sqlite"))
            .env("X402C_CONFIG", self.dir.join("config.toml"))
            .env_remove("X402C_MAX_PRICE")
            .env_remove("X402C_DAILY_BUDGET")
            .output()
            .await
            .unwrap();
        let run = Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let solana_secret = &self.solana_key[..self.solana_key.len() / 2];
        for shown in [&run.stdout, &run.stderr] {
            assert!(
                !shown.contains(&self.key) && !shown.contains(&self.key[..16]),
                "the key leaked into the output of {args:?}"
            );
            assert!(
                !shown.contains(solana_secret),
                "the Solana key leaked into the output of {args:?}"
            );
        }
        run
    }

    async fn payments(&self) -> Vec<Value> {
        let run = self.run(&["payments", "list", "--json"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        serde_json::from_str::<Value>(&run.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

async fn devnet_with(faults: devnet::FaultConfig) -> devnet::Devnet {
    test_support::start_with(|config| devnet::Config { faults, ..config })
        .await
        .unwrap()
}

/// `x402c payments reconcile` succeeds, and the payment settled once.
async fn reconciled_once(user: &User, devnet: &devnet::Devnet) {
    let reconciled = user.run(&["payments", "reconcile"]).await;
    assert_eq!(
        reconciled.code, 0,
        "{}{}",
        reconciled.stdout, reconciled.stderr
    );
    settled_once(user, devnet).await;
}

/// The user's one payment settled, and the treasury received it once.
async fn settled_once(user: &User, devnet: &devnet::Devnet) {
    let payments = user.payments().await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["state"], "settled", "{payments:?}");
    assert_eq!(
        treasury(devnet).await,
        U256::from(10_000u64),
        "one transfer"
    );
}

fn paid_url(devnet: &devnet::Devnet) -> String {
    format!("{}/devnet/paid?network=base", devnet.url())
}

async fn treasury(devnet: &devnet::Devnet) -> U256 {
    devnet.base().balance_of(devnet::TREASURY).await.unwrap()
}

#[tokio::test]
async fn fetch_pays_a_devnet_resource_on_base_sepolia_and_journals_it() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let url = paid_url(&devnet);
    let run = user
        .run(&["fetch", &url, "--network", "base-sepolia", "--json"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["status"], 200);
    assert_eq!(answer["receipt"]["success"], true);
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["paid"], true);
    assert_eq!(treasury(&devnet).await, U256::from(10_000u64));
    assert_eq!(
        devnet.base().balance_of(user.address).await.unwrap(),
        U256::from(990_000u64)
    );
    let payments = user.payments().await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["state"], "settled");
    assert_eq!(
        payments[0]["transaction_or_reason"],
        answer["receipt"]["transaction"]
    );

    // Plain output: the body on stdout, the receipt on stderr with -v.
    let run = user
        .run(&["fetch", &url, "--network", "base-sepolia", "-v"])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("x402c: receipt {\"success\":true"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("\"paid\":true"), "{}", run.stdout);
    assert_eq!(treasury(&devnet).await, U256::from(20_000u64));
}

#[tokio::test]
async fn the_cap_refuses_before_signing_and_a_dry_run_signs_nothing() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let url = paid_url(&devnet);

    let refused = user
        .run(&[
            "fetch",
            &url,
            "--network",
            "base-sepolia",
            "--max-price",
            "0.001",
        ])
        .await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(refused.stderr.contains("not paid"), "{}", refused.stderr);

    let dry = user
        .run(&["fetch", &url, "--network", "base-sepolia", "--dry-run"])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("would pay"), "{}", dry.stdout);

    assert!(user.payments().await.is_empty(), "nothing journaled");
    assert_eq!(treasury(&devnet).await, U256::ZERO, "nothing paid");
}

#[tokio::test]
async fn a_pending_payment_is_reconciled_into_one_transfer() {
    let devnet = devnet_with(devnet::FaultConfig {
        hold_confirmation: true,
        ..devnet::FaultConfig::default()
    })
    .await;
    let user = User::funded(&devnet, 1).await;
    let url = paid_url(&devnet);

    let pending = user
        .run(&["fetch", &url, "--network", "base-sepolia"])
        .await;
    assert_eq!(pending.code, 5, "{}", pending.stderr);
    assert!(pending.stderr.contains("reconcile"), "{}", pending.stderr);
    let payments = user.payments().await;
    assert_eq!(payments[0]["state"], "pending");

    // Any later run says so.
    let listed = user.run(&["fetch", &url, "--dry-run"]).await;
    assert!(
        listed.stderr.contains("1 payment(s) pending"),
        "{}",
        listed.stderr
    );

    devnet.faults().set(devnet::FaultConfig::default());
    devnet.facilitator().reconcile().await.unwrap();
    reconciled_once(&user, &devnet).await;
}

#[tokio::test]
async fn an_answer_dropped_after_settling_is_learned_without_paying_twice() {
    let devnet = devnet_with(devnet::FaultConfig {
        drop_paid_answers: true,
        ..devnet::FaultConfig::default()
    })
    .await;
    let user = User::funded(&devnet, 1).await;
    let url = paid_url(&devnet);
    let run = user
        .run(&["fetch", &url, "--network", "base-sepolia"])
        .await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.contains("settled in transaction"),
        "{}",
        run.stderr
    );
    settled_once(&user, &devnet).await;
}

#[tokio::test]
async fn fetch_pays_with_a_megaeth_permit_reading_its_nonce_from_the_chain() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let megaeth = devnet.megaeth().unwrap();
    let url = format!("{}/devnet/paid?network=megaeth", devnet.url());
    let rpc = format!("megaeth={}", megaeth.rpc_url());

    // Without an endpoint the nonce cannot be read: nothing is paid.
    let refused = user.run(&["fetch", &url, "--network", "megaeth"]).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("RPC endpoint"),
        "{}",
        refused.stderr
    );

    for paid in 1..=2u64 {
        let run = user
            .run(&["fetch", &url, "--network", "megaeth", "--rpc", &rpc])
            .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        // One cent of an 18-decimal token, moved by the permit and the facilitator's pull.
        let cent = U256::from(10u64).pow(U256::from(16u64));
        assert_eq!(
            megaeth.balance_of(devnet::TREASURY).await.unwrap(),
            cent * U256::from(paid)
        );
        assert_eq!(
            megaeth.permit_nonce(user.address).await.unwrap(),
            U256::from(paid),
            "each payment used the next nonce"
        );
    }
    let payments = user.payments().await;
    assert_eq!(payments.len(), 2);
    assert!(payments.iter().all(|p| p["state"] == "settled"));
    assert_eq!(payments[0]["network"], "eip155:4326");
}

#[tokio::test]
async fn fetch_pays_on_solana_devnet_with_a_blockhash_from_the_rpc_client() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let ledger = devnet.solana().unwrap();
    let url = format!("{}/devnet/paid?network=solana", devnet.url());
    let rpc = format!("solana-devnet={}/solana", devnet.url());
    let run = user
        .run(&[
            "fetch",
            &url,
            "--network",
            "solana-devnet",
            "--rpc",
            &rpc,
            "--json",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(answer["receipt"]["success"], true);
    assert_eq!(answer["receipt"]["payer"], user.solana.to_string());
    assert_eq!(ledger.token_balance(&user.solana), 990_000);
    assert_eq!(ledger.token_balance(&devnet::SOLANA_TREASURY), 10_000);
    let payments = user.payments().await;
    assert_eq!(payments[0]["state"], "settled");
    assert_eq!(
        payments[0]["network"],
        "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1"
    );
}

/// A proxy in front of the devnet that forwards everything, but holds forever the answer to
/// the first paid request (one carrying a payment header) once the devnet has given it: the
/// payment left and settled, and the client never hears. Returns its URL and a flag raised
/// when that answer is being held.
async fn holding_proxy(
    devnet: &devnet::Devnet,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;
    let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = held.clone();
    let upstream = devnet.url().to_owned();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let upstream = upstream.clone();
            let flag = flag.clone();
            async move {
                let paid =
                    headers.contains_key("payment-signature") || headers.contains_key("x-payment");
                let mut request = reqwest::Client::new()
                    .request(method, format!("{upstream}{uri}"))
                    .body(body.to_vec());
                for (name, value) in &headers {
                    if name != "host" {
                        request = request.header(name, value);
                    }
                }
                let answer = request.send().await.unwrap();
                // Only the first paid answer is held; later ones (a reconcile) pass.
                if paid && !flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap();
                (status, headers, bytes).into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, held)
}

/// Starts `x402c fetch` of `url` for `user`, waits until its paid answer is held, and sends
/// `signal` to it; returns the exit code and stderr.
async fn interrupted(
    user: &User,
    url: &str,
    held: &std::sync::atomic::AtomicBool,
    signal: &str,
) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_x402c"))
        .args(["fetch", url, "--network", "base-sepolia"])
        .env("PRIVATE_KEY", &user.key)
        .env("X402C_JOURNAL", user.dir.join("payments.sqlite"))
        .env("X402C_CONFIG", user.dir.join("config.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !held.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the payment never left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains(&user.key), "the key leaked");
    (output.status.code(), stderr)
}

#[tokio::test]
async fn a_cli_killed_after_its_payment_left_finds_it_pending_and_reconciles_it_once() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (proxy, held) = holding_proxy(&devnet).await;
    let url = format!("{proxy}/devnet/paid?network=base");

    let (code, _) = interrupted(&user, &url, &held, "-KILL").await;
    assert_eq!(code, None, "killed by a signal");
    let payments = user.payments().await;
    assert_eq!(payments.len(), 1, "journaled before it left");
    assert_eq!(payments[0]["state"], "pending");
    assert_eq!(
        treasury(&devnet).await,
        U256::from(10_000u64),
        "the devnet settled it"
    );

    // `payments reconcile` resends the same payment (through the proxy, which now lets the
    // answer through): the devnet says it settled before.
    reconciled_once(&user, &devnet).await;
}

#[tokio::test]
async fn ctrl_c_after_the_payment_left_reports_it_pending() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (proxy, held) = holding_proxy(&devnet).await;
    let url = format!("{proxy}/devnet/paid?network=base");
    let (code, stderr) = interrupted(&user, &url, &held, "-INT").await;
    assert_eq!(code, Some(5), "{stderr}");
    assert!(stderr.contains("pending"), "{stderr}");
    assert_eq!(user.payments().await[0]["state"], "pending");
}
