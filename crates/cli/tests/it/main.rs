//! `x402c` against the devnet on its real chains: the binary runs as a user runs it, with its
//! own journal and config paths, and every output is checked for the key it was given.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod grid;
mod llama;
mod machines;

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
        self.run_with(args, &[]).await
    }

    /// Runs `x402c` with `env` set: the proxy and CA variables are cleared first, so only
    /// what a test sets is in effect.
    async fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_x402c"));
        command
            .env("PRIVATE_KEY", &self.key)
            .env("SOLANA_SECRET_KEY", &self.solana_key)
            .env("X402C_JOURNAL", self.dir.join("payments.sqlite"))
            .env("X402C_CONFIG", self.dir.join("config.toml"))
            .env("X402C_WALLETS", self.dir.join("wallets"));
        // Only what the test sets is in effect.
        for key in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "SSL_CERT_FILE",
            "X402C_MAX_PRICE",
            "X402C_DAILY_BUDGET",
            "COMPUTE_API_KEY",
            "COMPUTE_AUTH_CHAIN",
            "COMPUTE_AUTH_MODE",
            "COMPUTE_MAX_SPEND_USD",
            "OWS_WALLET",
            "OWS_BIN",
            "WALLET_ADDRESS",
            "WALLET_ADDRESS_SECONDARY",
            "SOLANA_WALLET_ADDRESS",
            "X402C_PASSWORD",
            "X402C_WALLET",
            "X402C_COMPUTE_URL",
        ] {
            command.env_remove(key);
        }
        command.envs(env.iter().copied());
        let output = command.args(args).output().await.unwrap();
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
    let (url, held, _server) = proxy(devnet, true).await;
    (url, held)
}

/// [`holding_proxy`], or with `forward` false one that never passes the first paid request on
/// (the payment left the client and never reached the server); with its server's task, whose
/// abort makes the proxy unreachable.
async fn proxy(
    devnet: &devnet::Devnet,
    forward: bool,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    let policy = match forward {
        true => Hold::FirstAnswer,
        false => Hold::FirstRequest,
    };
    proxy_holding(devnet, policy, false).await
}

/// What a test proxy holds forever.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// The first paid request's answer, once the devnet gave it (raises the flag).
    FirstAnswer,
    /// The first paid request, never passed on (raises the flag).
    FirstRequest,
    /// Every paid request while the flag is up.
    WhileFlagged,
}

/// A proxy in front of the devnet that forwards everything but what `hold` says; returns its
/// URL, its flag (starting at `flag`) and its server's task (abort it to make the proxy
/// unreachable).
async fn proxy_holding(
    devnet: &devnet::Devnet,
    hold: Hold,
    flag: bool,
) -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    tokio::task::JoinHandle<()>,
) {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, Uri};
    use axum::response::IntoResponse;
    use std::sync::atomic::Ordering::SeqCst;
    let raised = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(flag));
    let shared = raised.clone();
    let upstream = devnet.url().to_owned();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let upstream = upstream.clone();
            let flag = shared.clone();
            async move {
                let paid =
                    headers.contains_key("payment-signature") || headers.contains_key("x-payment");
                let hold_request = match hold {
                    Hold::FirstRequest => paid && !flag.swap(true, SeqCst),
                    Hold::WhileFlagged => paid && flag.load(SeqCst),
                    Hold::FirstAnswer => false,
                };
                if hold_request {
                    std::future::pending::<()>().await;
                }
                let mut request = test_support::http()
                    .request(method, format!("{upstream}{uri}"))
                    .body(body.to_vec());
                for (name, value) in &headers {
                    if name != "host" {
                        request = request.header(name, value);
                    }
                }
                let answer = request.send().await.unwrap();
                // Only the first paid answer is held; later ones (a reconcile) pass.
                if hold == Hold::FirstAnswer && paid && !flag.swap(true, SeqCst) {
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
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, raised, server)
}

/// Starts `x402c fetch` of `url` for `user`, waits until its paid answer is held, and sends
/// `signal` to it; returns the exit code and stderr.
async fn interrupted(
    user: &User,
    url: &str,
    held: &std::sync::atomic::AtomicBool,
    signal: &str,
) -> (Option<i32>, String) {
    interrupted_with(
        user,
        &["fetch", url, "--network", "base-sepolia"],
        held,
        signal,
    )
    .await
}

/// [`interrupted`] for any `x402c` arguments.
async fn interrupted_with(
    user: &User,
    args: &[&str],
    held: &std::sync::atomic::AtomicBool,
    signal: &str,
) -> (Option<i32>, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_x402c"))
        .args(args)
        .env("SOLANA_SECRET_KEY", &user.solana_key)
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

/// A devnet behind a TLS front whose certificate (for `localhost`, `paid.example` and
/// 127.0.0.1) comes from a CA made for this run, written to `ca.pem` in the user's directory.
async fn behind_tls(devnet: &devnet::Devnet, user: &User) -> (test_support::net::TlsFront, String) {
    let target = devnet.url().trim_start_matches("http://").parse().unwrap();
    let front =
        test_support::net::TlsFront::start(target, &["localhost", "paid.example", "127.0.0.1"])
            .await
            .unwrap();
    let ca = user.dir.join("ca.pem");
    std::fs::write(&ca, &front.ca_pem).unwrap();
    (front, ca.display().to_string())
}

#[tokio::test]
async fn fetch_over_https_trusts_the_ca_it_is_given_and_no_other() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (front, ca) = behind_tls(&devnet, &user).await;
    let url = format!("https://localhost:{}/devnet/paid?network=base", front.port);

    // The test CA is not among the system's roots: the handshake fails before anything is
    // signed, and the error says why.
    let untrusted = user.run(&["fetch", &url]).await;
    assert_eq!(untrusted.code, 6, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
    assert!(user.payments().await.is_empty());
    assert_eq!(treasury(&devnet).await, U256::ZERO);

    // Told to trust it (--cacert, then SSL_CERT_FILE), it pays over TLS.
    let paid = user.run(&["fetch", "--cacert", &ca, &url]).await;
    assert_eq!(paid.code, 0, "{}", paid.stderr);
    assert!(paid.stdout.contains("\"paid\":true"), "{}", paid.stdout);
    let paid = user
        .run_with(&["fetch", &url], &[("SSL_CERT_FILE", &ca)])
        .await;
    assert_eq!(paid.code, 0, "{}", paid.stderr);
    assert_eq!(treasury(&devnet).await, U256::from(20_000u64));
    let payments = user.payments().await;
    assert_eq!(payments.len(), 2);
    assert!(
        payments.iter().all(|p| p["state"] == "settled"),
        "{payments:?}"
    );

    // A CA bundle that is not PEM is refused with what to give, before any request.
    let bad = user.dir.join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let refused = user
        .run(&["fetch", "--cacert", &bad.display().to_string(), &url])
        .await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("BEGIN CERTIFICATE"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn https_proxy_tunnels_a_named_host_and_loopback_goes_direct() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (front, ca) = behind_tls(&devnet, &user).await;
    let proxy = test_support::net::ConnectProxy::start().await.unwrap();
    let named = format!(
        "https://paid.example:{}/devnet/paid?network=base",
        front.port
    );

    // `paid.example` resolves nowhere but at the proxy, which tunnels it to the TLS front.
    let paid = user
        .run_with(
            &["fetch", "--cacert", &ca, &named],
            &[("HTTPS_PROXY", &proxy.url)],
        )
        .await;
    assert_eq!(paid.code, 0, "{}", paid.stderr);
    assert_eq!(proxy.seen(), vec![format!("paid.example:{}", front.port)]);

    // Loopback never goes through a proxy, by name or by address, whatever NO_PROXY says.
    for host in ["localhost", "127.0.0.1"] {
        let direct = format!("https://{host}:{}/devnet/paid?network=base", front.port);
        let paid = user
            .run_with(
                &["fetch", "--cacert", &ca, &direct],
                &[
                    ("https_proxy", &proxy.url),
                    ("NO_PROXY", "internal.example"),
                ],
            )
            .await;
        assert_eq!(paid.code, 0, "{}", paid.stderr);
    }
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());

    // --proxy wins over the environment (here: a dead port would fail the request).
    let paid = user
        .run_with(
            &["fetch", "--cacert", &ca, "--proxy", &proxy.url, &named],
            &[("HTTPS_PROXY", "http://127.0.0.1:9")],
        )
        .await;
    assert_eq!(paid.code, 0, "{}", paid.stderr);
    assert_eq!(proxy.seen().len(), 2, "{:?}", proxy.seen());
    assert_eq!(treasury(&devnet).await, U256::from(40_000u64));
}

/// Pays `/devnet/paid?network=QUERY` on `network` through a proxy that holds the first
/// paid answer (`forward`) or the request itself, SIGKILLs the CLI once the payment left, and
/// takes the proxy down: the payment is pending and the server cannot be asked again.
async fn killed_then_unreachable(
    devnet: &devnet::Devnet,
    user: &User,
    forward: bool,
    query: &str,
    network: &str,
    rpc: &str,
) {
    let (proxy_url, held, server) = proxy(devnet, forward).await;
    let url = format!("{proxy_url}/devnet/paid?network={query}");
    let args = ["fetch", url.as_str(), "--network", network, "--rpc", rpc];
    let (code, _) = interrupted_with(user, &args, &held, "-KILL").await;
    assert_eq!(code, None, "killed by a signal");
    server.abort();
}

/// Calls Base Sepolia's anvil.
async fn anvil(devnet: &devnet::Devnet, method: &str, params: Value) -> Value {
    rpc_call(devnet.base().rpc_url(), method, params).await
}

/// Calls a JSON-RPC endpoint.
async fn rpc_call(url: &str, method: &str, params: Value) -> Value {
    test_support::http()
        .post(url)
        .json(&serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn reconcile_asks_the_chain_when_the_server_cannot_answer() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (proxy, held, server) = proxy(&devnet, true).await;
    let url = format!("{proxy}/devnet/paid?network=base");
    let (code, _) = interrupted(&user, &url, &held, "-KILL").await;
    assert_eq!(code, None);
    server.abort(); // the server is gone: only the chain can say
    assert_eq!(treasury(&devnet).await, U256::from(10_000u64), "it settled");

    // Without an endpoint the chain cannot be asked: still pending, and told how.
    let unknown = user.run(&["payments", "reconcile"]).await;
    assert_eq!(unknown.code, 5, "{}{}", unknown.stdout, unknown.stderr);
    assert!(unknown.stdout.contains("--rpc"), "{}", unknown.stdout);

    // An endpoint of another chain is refused, not believed.
    let wrong = format!("base-sepolia={}", devnet.megaeth().unwrap().rpc_url());
    let refused = user.run(&["payments", "reconcile", "--rpc", &wrong]).await;
    assert_eq!(refused.code, 5, "{}", refused.stdout);
    assert!(
        refused.stdout.contains("serves chain 4326"),
        "{}",
        refused.stdout
    );

    let rpc = format!("base-sepolia={}", devnet.base().rpc_url());
    let reconciled = user
        .run(&["payments", "reconcile", "--rpc", &rpc, "--json"])
        .await;
    assert_eq!(
        reconciled.code, 0,
        "{}{}",
        reconciled.stdout, reconciled.stderr
    );
    let answer: Value = serde_json::from_str(reconciled.stdout.trim()).unwrap();
    assert_eq!(answer["state"], "settled", "{answer}");
    // The authorization's log names the devnet's transaction.
    let transaction = answer["transaction_or_reason"].as_str().unwrap();
    let receipt = anvil(
        &devnet,
        "eth_getTransactionReceipt",
        serde_json::json!([transaction]),
    )
    .await;
    assert_eq!(receipt["result"]["status"], "0x1", "{receipt}");
    settled_once(&user, &devnet).await;
}

#[tokio::test]
async fn reconcile_marks_a_payment_unpaid_only_once_the_chain_proves_it_cannot_land() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (proxy, held, server) = proxy(&devnet, false).await;
    let url = format!("{proxy}/devnet/paid?network=base");
    let (code, _) = interrupted(&user, &url, &held, "-KILL").await;
    assert_eq!(code, None);
    server.abort();
    let rpc = format!("base-sepolia={}", devnet.base().rpc_url());

    // Never seen by the server, unused on chain, but still valid: it could still land (the
    // signed authorization is out there), so it stays pending.
    let open = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(open.code, 5, "{}{}", open.stdout, open.stderr);
    assert!(open.stdout.contains("not landed yet"), "{}", open.stdout);

    // The chain's time passes validBefore: now it can never land.
    anvil(&devnet, "evm_increaseTime", serde_json::json!([3600])).await;
    anvil(&devnet, "evm_mine", serde_json::json!([])).await;
    let unpaid = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(unpaid.code, 0, "{}{}", unpaid.stdout, unpaid.stderr);
    let payments = user.payments().await;
    assert_eq!(payments[0]["state"], "unpaid", "{payments:?}");
    assert!(
        payments[0]["transaction_or_reason"]
            .as_str()
            .unwrap()
            .contains("unused and expired"),
        "{payments:?}"
    );
    assert_eq!(treasury(&devnet).await, U256::ZERO);
    assert_eq!(
        devnet.base().balance_of(user.address).await.unwrap(),
        U256::from(1_000_000u64)
    );
}

#[tokio::test]
async fn solana_payments_are_reconciled_by_their_signature_and_blockhash() {
    let clock = devnet::TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: std::sync::Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let user = User::funded(&devnet, 1).await;
    let ledger = devnet.solana().unwrap();
    let rpc = format!("solana-devnet={}/solana", devnet.url());

    // Settled, the answer lost, the server gone: the payer's transactions carry its signature.
    killed_then_unreachable(&devnet, &user, true, "solana", "solana-devnet", &rpc).await;
    assert_eq!(ledger.token_balance(&devnet::SOLANA_TREASURY), 10_000);
    let reconciled = user
        .run(&["payments", "reconcile", "--rpc", &rpc, "--json"])
        .await;
    assert_eq!(
        reconciled.code, 0,
        "{}{}",
        reconciled.stdout, reconciled.stderr
    );
    let answer: Value = serde_json::from_str(reconciled.stdout.trim()).unwrap();
    assert_eq!(answer["state"], "settled", "{answer}");
    let transaction = answer["transaction_or_reason"].as_str().unwrap();
    assert_eq!(
        ledger.signature_status(transaction),
        Some(None),
        "the devnet's transaction"
    );

    // Never sent on: pending while its blockhash is valid, unpaid once it expired.
    killed_then_unreachable(&devnet, &user, false, "solana", "solana-devnet", &rpc).await;
    let open = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(open.code, 5, "{}{}", open.stdout, open.stderr);
    clock.advance(std::time::Duration::from_secs(61));
    let unpaid = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(unpaid.code, 0, "{}{}", unpaid.stdout, unpaid.stderr);
    let payments = user.payments().await;
    assert_eq!(payments[1]["state"], "unpaid", "{payments:?}");
    assert!(
        payments[1]["transaction_or_reason"]
            .as_str()
            .unwrap()
            .contains("blockhash"),
        "{payments:?}"
    );
    assert_eq!(
        ledger.token_balance(&devnet::SOLANA_TREASURY),
        10_000,
        "paid once"
    );
    assert_eq!(ledger.token_balance(&user.solana), 990_000);
}

/// A proxy in front of the devnet that never answers a paid request while its flag is set
/// (nor passes it on), and forwards everything otherwise.
async fn swallowing_proxy(
    devnet: &devnet::Devnet,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let (url, swallow, _server) = proxy_holding(devnet, Hold::WhileFlagged, true).await;
    (url, swallow)
}

#[tokio::test]
async fn a_pending_operation_is_paid_anew_only_with_force() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let (proxy, swallow) = swallowing_proxy(&devnet).await;
    let url = format!("{proxy}/devnet/paid?network=base");
    let first = user.run(&["fetch", "--timeout", "1", &url]).await;
    assert_eq!(first.code, 5, "{}", first.stderr);

    // Again: the same signed payment is resent (still unanswered), nothing new is signed,
    // and the user is told what --force would do.
    let again = user.run(&["fetch", "--timeout", "1", &url]).await;
    assert_eq!(again.code, 5, "{}", again.stderr);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);
    assert!(again.stderr.contains("may pay twice"), "{}", again.stderr);
    assert_eq!(user.payments().await.len(), 1, "no new payment");

    // --force: a new payment, and the old one stays pending (it may still settle).
    swallow.store(false, std::sync::atomic::Ordering::SeqCst);
    let forced = user.run(&["fetch", "--force", &url]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(forced.stderr.contains("may pay twice"), "{}", forced.stderr);
    let payments = user.payments().await;
    assert_eq!(payments.len(), 2);
    assert_eq!(payments[0]["state"], "pending");
    assert_eq!(payments[1]["state"], "settled");
    assert_eq!(treasury(&devnet).await, U256::from(10_000u64));

    // The old payment was still good: reconciling it pays it too, as --force warned.
    let reconciled = user.run(&["payments", "reconcile"]).await;
    assert_eq!(
        reconciled.code, 0,
        "{}{}",
        reconciled.stdout, reconciled.stderr
    );
    let payments = user.payments().await;
    assert!(
        payments.iter().all(|p| p["state"] == "settled"),
        "{payments:?}"
    );
    assert_eq!(treasury(&devnet).await, U256::from(20_000u64));
}

#[tokio::test]
async fn permit_payments_are_reconciled_by_the_owners_nonce_and_the_deadline() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let megaeth = devnet.megaeth().unwrap();
    let rpc = format!("megaeth={}", megaeth.rpc_url());
    let payee = || async { megaeth.balance_of(devnet::TREASURY).await.unwrap() };
    let before = payee().await;

    // Settled, the answer lost, the server gone: the owner's nonce moved.
    killed_then_unreachable(&devnet, &user, true, "megaeth", "megaeth", &rpc).await;
    let paid = payee().await - before;
    assert!(paid > U256::ZERO, "the devnet settled it");
    let reconciled = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(
        reconciled.code, 0,
        "{}{}",
        reconciled.stdout, reconciled.stderr
    );
    assert_eq!(user.payments().await[0]["state"], "settled");

    // Never sent on: pending until the chain's time passes the deadline, then unpaid.
    killed_then_unreachable(&devnet, &user, false, "megaeth", "megaeth", &rpc).await;
    let open = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(open.code, 5, "{}{}", open.stdout, open.stderr);
    rpc_call(
        megaeth.rpc_url(),
        "evm_increaseTime",
        serde_json::json!([3600]),
    )
    .await;
    rpc_call(megaeth.rpc_url(), "evm_mine", serde_json::json!([])).await;
    let unpaid = user.run(&["payments", "reconcile", "--rpc", &rpc]).await;
    assert_eq!(unpaid.code, 0, "{}{}", unpaid.stdout, unpaid.stderr);
    let payments = user.payments().await;
    assert_eq!(payments[1]["state"], "unpaid", "{payments:?}");
    assert!(
        payments[1]["transaction_or_reason"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{payments:?}"
    );
    assert_eq!(payee().await - before, paid, "paid once");
}

/// Runs `x402c` under `script`, so that it has a terminal, typing `keys` at it.
async fn on_a_terminal(user: &User, args: &[&str], keys: &str) -> Run {
    use tokio::io::AsyncWriteExt as _;
    let command = std::iter::once(env!("CARGO_BIN_EXE_x402c"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("PRIVATE_KEY", &user.key)
        .env("X402C_JOURNAL", user.dir.join("payments.sqlite"))
        .env("X402C_CONFIG", user.dir.join("config.toml"))
        .env("TERM", "dumb")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(keys.as_bytes()).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!run.stdout.contains(&user.key) && !run.stderr.contains(&user.key));
    run
}

#[tokio::test]
async fn on_a_terminal_fetch_asks_before_paying() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let url = paid_url(&devnet);

    // Declined: nothing signed, the refused code.
    let declined = on_a_terminal(&user, &["fetch", &url], "n").await;
    assert!(declined.stdout.contains("Pay $0.01"), "{}", declined.stdout);
    assert_eq!(declined.code, 3, "{}", declined.stdout);
    assert!(declined.stdout.contains("declined"), "{}", declined.stdout);
    assert!(user.payments().await.is_empty());
    assert_eq!(treasury(&devnet).await, U256::ZERO);

    // Accepted: paid.
    let accepted = on_a_terminal(&user, &["fetch", &url], "y").await;
    assert_eq!(accepted.code, 0, "{}", accepted.stdout);
    assert_eq!(treasury(&devnet).await, U256::from(10_000u64));

    // --yes: no question.
    let yes = on_a_terminal(&user, &["fetch", "--yes", &url], "").await;
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert!(!yes.stdout.contains("Pay $"), "{}", yes.stdout);
    assert_eq!(treasury(&devnet).await, U256::from(20_000u64));
}
