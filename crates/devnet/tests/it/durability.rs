//! The devnet's state survives a crash: a data directory has one devnet at a time, no anvil
//! outlives its devnet, and what a client was told was paid is on disk, chain included, when
//! the devnet is killed right after answering.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use test_support::{Client, Now};
use x402_core::{EvmSigner, LocalEvmSigner, Network, PaymentPolicy, evm};

/// A devnet child process, killed when dropped (so a failing test leaves none behind).
struct Running(Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `x402-devnet --json` on a free port over `data_dir`: the child and its description.
fn spawn_devnet(data_dir: &std::path::Path) -> (Running, Value) {
    spawn_devnet_with(data_dir, &["--no-solana"])
}

/// `x402-devnet --json` on a free port over `data_dir`, with `flags`.
fn spawn_devnet_with(data_dir: &std::path::Path, flags: &[&str]) -> (Running, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_x402-devnet"))
        .args(["--port", "0", "--json", "--data-dir"])
        .arg(data_dir)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let description: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    (Running(child), description)
}

/// One JSON-RPC call to an anvil; `None` when it does not answer.
async fn rpc(url: &str, method: &str, params: Value) -> Option<Value> {
    let answer: Value = test_support::http()
        .post(url)
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(answer["result"].clone())
}

/// `owner`'s balance of `token` on the anvil at `url`.
async fn balance_of(url: &str, token: &str, owner: &str) -> u64 {
    let data = format!("0x70a08231{:0>64}", owner.trim_start_matches("0x"));
    let result = rpc(
        url,
        "eth_call",
        json!([{ "to": token, "data": data }, "latest"]),
    )
    .await
    .unwrap();
    u64::from_str_radix(result.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

/// Waits (10 s at most) for the anvil at `rpc_url` to stop answering.
async fn anvil_dies(rpc_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rpc(rpc_url, "eth_chainId", json!([])).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "anvil outlived its devnet by 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn temporary_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "devnet-{name}-{}-{}",
        std::process::id(),
        Now.now_ms()
    ))
}

#[tokio::test]
async fn a_data_dir_serves_one_devnet_at_a_time() {
    let dir = temporary_dir("lock");
    let config = || devnet::Config {
        data_dir: Some(dir.clone()),
        megaeth: false,
        solana: false,
        ..devnet::Config::ephemeral(test_support::anvil().unwrap())
    };
    let first = devnet::Devnet::start(config()).await.unwrap();
    let second = devnet::Devnet::start(config()).await;
    assert!(
        matches!(second, Err(devnet::Error::DataDirLocked { .. })),
        "{second:?}"
    );
    first.shutdown().await;
    let again = devnet::Devnet::start(config()).await.unwrap();
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigkill_right_after_a_paid_answer_loses_nothing_and_leaves_no_anvil() {
    let dir = temporary_dir("sigkill");
    let (mut devnet, described) = spawn_devnet(&dir);
    let url = described["url"].as_str().unwrap().to_owned();
    let rpc_url = described["evm"][0]["rpc_url"].as_str().unwrap().to_owned();
    let token = described["evm"][0]["token"].as_str().unwrap().to_owned();
    let treasury = described["treasury"].as_str().unwrap().to_owned();
    let api = Client::new(url);

    let mut secret = [0u8; 32];
    test_support::os_random(&mut secret);
    let payer = LocalEvmSigner::from_bytes(&secret).unwrap();
    let funded = api
        .request(reqwest::Method::POST, "/devnet/fund")
        .json(&json!({ "address": payer.address().to_string(), "usdc": "10" }))
        .send()
        .await
        .unwrap();
    assert_eq!(funded.status(), StatusCode::OK);
    let paid = api
        .pay_base(&payer, "/compute/credits/topup", json!({"amount": 3}))
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);

    // Killed the moment it answered: no chance to write anything more.
    devnet.kill().unwrap();
    devnet.wait().unwrap();
    anvil_dies(&rpc_url).await;

    let (mut restarted, described) = spawn_devnet(&dir);
    let api = Client::new(described["url"].as_str().unwrap());
    let rpc_url = described["evm"][0]["rpc_url"].as_str().unwrap().to_owned();
    let balance = api.credits(&payer).await.unwrap();
    assert_eq!(balance["balance"], "3.00", "the credit survives");
    assert_eq!(
        balance_of(&rpc_url, &token, &treasury).await,
        3_000_000,
        "and so does the chain that paid it"
    );
    assert_eq!(
        balance_of(&rpc_url, &token, &payer.address().to_string()).await,
        7_000_000
    );
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sigkill_at_each_crash_point_then_a_restart_settles_the_payment_exactly_once() {
    // (network, index of its chain in the --json line, one dollar in its token's units)
    let chains = [
        ("base", 0usize, 1_000_000u64),
        ("megaeth", 1, 1_000_000_000_000_000_000),
    ];
    for (network, chain, dollar) in chains {
        for point in [
            "after_claim",
            "after_submission",
            "after_confirmation",
            "before_credit_write",
        ] {
            let case = format!("{network} {point}");
            let dir = temporary_dir(&format!("{network}-{point}"));
            let (mut devnet, described) =
                spawn_devnet_with(&dir, &["--no-solana", "--crash-at", point]);
            let api = Client::new(described["url"].as_str().unwrap());
            let first_anvil = described["evm"][chain]["rpc_url"]
                .as_str()
                .unwrap()
                .to_owned();
            let mut secret = [0u8; 32];
            test_support::os_random(&mut secret);
            let payer = LocalEvmSigner::from_bytes(&secret).unwrap();
            let funded = api
                .request(reqwest::Method::POST, "/devnet/fund")
                .json(&json!({ "address": payer.address().to_string(), "usdc": "10" }))
                .send()
                .await
                .unwrap();
            assert_eq!(funded.status(), StatusCode::OK);
            let path = "/compute/credits/topup";
            let body = serde_json::to_vec(&json!({"amount": 3, "network": network})).unwrap();
            let challenge = api.quote(&payer, path, &body).await.unwrap();
            let selected = PaymentPolicy::default().select(&challenge).unwrap();
            let header = match network {
                "base" => {
                    evm::exact::pay(&selected, &payer, &Now, &mut test_support::os_random).unwrap()
                }
                _ => {
                    let token = described["evm"][chain]["token"].as_str().unwrap();
                    let data = format!(
                        "0x7ecebe00{:0>64}",
                        payer.address().to_string().trim_start_matches("0x")
                    );
                    let nonce = rpc(
                        &first_anvil,
                        "eth_call",
                        json!([{ "to": token, "data": data }, "latest"]),
                    )
                    .await
                    .unwrap();
                    let nonce: alloy::primitives::U256 = nonce.as_str().unwrap().parse().unwrap();
                    evm::permit::pay(&selected, &payer, nonce, &Now).unwrap()
                }
            };
            let send = |api: &Client| {
                api.post(path, &body)
                    .header(header.name(), header.value())
                    .send()
            };
            assert!(
                send(&api).await.is_err(),
                "{case}: the devnet died answering"
            );
            devnet.wait().unwrap();
            anvil_dies(&first_anvil).await;

            // Restarted on the same data directory, the same payment is sent again.
            let (mut restarted, described) = spawn_devnet(&dir);
            let api = Client::new(described["url"].as_str().unwrap());
            let rpc_url = described["evm"][chain]["rpc_url"]
                .as_str()
                .unwrap()
                .to_owned();
            let token = described["evm"][chain]["token"]
                .as_str()
                .unwrap()
                .to_owned();
            let treasury = described["treasury"].as_str().unwrap().to_owned();
            let again = send(&api).await.unwrap();
            let receipt = test_support::receipt(&again).unwrap();
            match again.status() {
                StatusCode::OK => {}
                // Settled before the crash and reconciled at start: refused with the
                // original receipt, which says it went through.
                StatusCode::PAYMENT_REQUIRED => {
                    assert!(receipt.is_some_and(|r| r.success), "{case}")
                }
                other => panic!("{case}: {other}"),
            }
            let balance = api.credits(&payer).await.unwrap();
            assert_eq!(balance["balance"], "3.00", "{case}: credited once");
            assert_eq!(
                balance_of(&rpc_url, &token, &treasury).await,
                3 * dollar,
                "{case}: moved once"
            );
            assert_eq!(
                balance_of(&rpc_url, &token, &payer.address().to_string()).await,
                7 * dollar,
                "{case}"
            );
            restarted.kill().unwrap();
            restarted.wait().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// `owner`'s devnet USDC on the Solana ledger behind `described`, atomic units.
async fn solana_usdc(described: &Value, owner: &x402_core::SolanaAddress) -> u64 {
    let solana = &described["solana"];
    let mint: x402_core::SolanaAddress = solana["mint"].as_str().unwrap().parse().unwrap();
    let account =
        x402_core::svm::associated_token_address(owner, &mint, x402_core::svm::TokenProgram::Token);
    let answer = rpc(
        solana["rpc_url"].as_str().unwrap(),
        "getTokenAccountBalance",
        json!([account.to_string()]),
    )
    .await
    .unwrap();
    answer["value"]["amount"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn sigkill_at_each_crash_point_of_a_solana_payment_then_a_restart_settles_it_once() {
    for point in [
        "after_claim",
        "after_submission",
        "after_confirmation",
        "before_credit_write",
    ] {
        let dir = temporary_dir(&format!("solana-{point}"));
        let (mut devnet, described) =
            spawn_devnet_with(&dir, &["--no-megaeth", "--crash-at", point]);
        let api = Client::new(described["url"].as_str().unwrap());
        let payer = x402_core::LocalSolanaSigner::from_secret({
            let mut secret = [0u8; 32];
            test_support::os_random(&mut secret);
            secret
        });
        let owner = x402_core::SolanaSigner::pubkey(&payer);
        let funded = api
            .request(reqwest::Method::POST, "/devnet/fund")
            .json(&json!({ "address": owner.to_string(), "usdc": "10" }))
            .send()
            .await
            .unwrap();
        assert_eq!(funded.status(), StatusCode::OK);
        let path = "/compute/credits/topup";
        let body = br#"{"amount":3,"network":"solana"}"#;
        let challenge = api.quote(&payer, path, body).await.unwrap();
        let selected = PaymentPolicy::default()
            .networks([Network::SOLANA_DEVNET])
            .select(&challenge)
            .unwrap();
        let blockhash = rpc(
            described["solana"]["rpc_url"].as_str().unwrap(),
            "getLatestBlockhash",
            json!([]),
        )
        .await
        .unwrap();
        let blockhash: x402_core::SolanaAddress = blockhash["value"]["blockhash"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let chain = x402_core::svm::SolanaChainState {
            recent_blockhash: blockhash.to_bytes(),
            decimals: 6,
            token_program: x402_core::svm::TokenProgram::Token,
        };
        let header =
            x402_core::svm::pay(&selected, &payer, &chain, &mut test_support::os_random).unwrap();
        let send = |api: &Client| {
            api.post(path, body)
                .header(header.name(), header.value())
                .send()
        };
        assert!(
            send(&api).await.is_err(),
            "{point}: the devnet died answering"
        );
        devnet.wait().unwrap();

        let (mut restarted, described) = spawn_devnet_with(&dir, &["--no-megaeth"]);
        let api = Client::new(described["url"].as_str().unwrap());
        let again = send(&api).await.unwrap();
        let status = again.status();
        let receipt = test_support::receipt(&again).unwrap();
        let text = again.text().await.unwrap();
        match status {
            StatusCode::OK => {}
            StatusCode::PAYMENT_REQUIRED => {
                assert!(receipt.is_some_and(|r| r.success), "{point}: {text}")
            }
            other => panic!("{point}: {other} {text}"),
        }
        let balance: Value = api.credits(&payer).await.unwrap();
        assert_eq!(balance["balance"], "3.00", "{point}: credited once");
        let treasury: x402_core::SolanaAddress = described["solana"]["treasury"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            solana_usdc(&described, &treasury).await,
            3_000_000,
            "{point}: moved once"
        );
        assert_eq!(solana_usdc(&described, &owner).await, 7_000_000, "{point}");
        restarted.kill().unwrap();
        restarted.wait().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A devnet with `faults`, a wallet holding $10, a client, and a signed Base payment for a
/// top-up of `body`, ready to send (and send again).
async fn paying_under(
    faults: devnet::FaultConfig,
    body: &[u8],
) -> (
    devnet::Devnet,
    LocalEvmSigner,
    Client,
    x402_core::PaymentHeader,
) {
    let devnet = test_support::start_with(|config| devnet::Config { faults, ..config })
        .await
        .unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let api = Client::of(&devnet);
    let header = api
        .base_payment(&payer, "/compute/credits/topup", body)
        .await
        .unwrap();
    (devnet, payer, api, header)
}

#[tokio::test]
async fn an_unconfirmed_payment_is_pending_never_refused_and_settles_once() {
    let path = "/compute/credits/topup";
    let body = br#"{"amount":2,"network":"base"}"#;
    let faults = devnet::FaultConfig {
        hold_confirmation: true,
        ..devnet::FaultConfig::default()
    };
    let (devnet, payer, api, header) = paying_under(faults, body).await;
    let send = || {
        api.post(path, body)
            .header(header.name(), header.value())
            .send()
    };
    let pending = send().await.unwrap();
    assert_eq!(pending.status(), StatusCode::PAYMENT_REQUIRED);
    let receipt = test_support::receipt(&pending).unwrap().unwrap();
    assert!(!receipt.success);
    assert_eq!(receipt.error_reason.as_deref(), Some("settlement_pending"));
    assert!(!receipt.transaction.is_empty());

    // The reconciler finds it on chain (once anvil has mined it), makes it durable, settles
    // it and credits it; meanwhile the same payment is answered pending again, never refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let settled = loop {
        devnet.facilitator().reconcile().await.unwrap();
        let again = send().await.unwrap();
        assert_eq!(again.status(), StatusCode::PAYMENT_REQUIRED);
        let answer = test_support::receipt(&again).unwrap().unwrap();
        if answer.success {
            break answer;
        }
        assert_eq!(answer.error_reason.as_deref(), Some("settlement_pending"));
        assert!(Instant::now() < deadline, "still pending after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(settled.transaction, receipt.transaction);
    let balance = api.credits(&payer).await.unwrap();
    assert_eq!(balance["balance"], "2.00", "credited once");
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        alloy::primitives::U256::from(2_000_000u64)
    );
}

/// Sums, over `wallets`, the credits deposited and the prices of instances paid with x402,
/// in micro-dollars, as the devnet at `api` reports them.
async fn bought(api: &Client, wallets: &[LocalEvmSigner]) -> u64 {
    let micros = |dollars: &Value| -> u64 {
        let text = match dollars {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        text.parse::<x402_core::UsdMicros>().unwrap().0
    };
    let mut total = 0;
    for wallet in wallets {
        let balance = api.credits(wallet).await.unwrap();
        total += micros(&balance["total_deposited"]);
        let listed = api
            .call_ok(wallet, reqwest::Method::GET, "/compute/instances", None)
            .await
            .unwrap();
        for instance in listed["instances"].as_array().unwrap() {
            if !instance["tx_hash"].is_null() {
                total += micros(&instance["payment_amount"]);
            }
        }
    }
    total
}

#[tokio::test]
async fn soak_sigkill_at_random_moments_never_loses_or_invents_a_payment() {
    // Replay a run with SOAK_SEED=<the printed seed>.
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Now.now_ms() | 1);
    println!("soak seed {seed} (replay with SOAK_SEED={seed})");
    let mut state: u64 = seed;
    let mut next = move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let dir = temporary_dir("soak");
    let mut wallets = Vec::new();
    let (mut kills, mut attempts) = (0, 0u64);
    let mut restarted = None;
    while kills < 5 || attempts < 100 {
        let (mut devnet, described) = spawn_devnet(&dir);
        let api = Client::new(described["url"].as_str().unwrap());
        let rpc_url = described["evm"][0]["rpc_url"].as_str().unwrap().to_owned();
        let token = described["evm"][0]["token"].as_str().unwrap().to_owned();
        let treasury = described["treasury"].as_str().unwrap().to_owned();
        if wallets.is_empty() {
            for _ in 0..4 {
                let mut secret = [0u8; 32];
                test_support::os_random(&mut secret);
                let wallet = LocalEvmSigner::from_bytes(&secret).unwrap();
                let funded = api
                    .request(reqwest::Method::POST, "/devnet/fund")
                    .json(&json!({ "address": wallet.address().to_string(), "usdc": "1000" }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(funded.status(), StatusCode::OK);
                wallets.push(wallet);
            }
        }
        // After every restart: what the treasury received is what was bought, exactly.
        let received = balance_of(&rpc_url, &token, &treasury).await;
        assert_eq!(
            received,
            bought(&api, &wallets).await,
            "seed {seed}, after {kills} kills and {attempts} payments"
        );
        if kills >= 5 && attempts >= 100 {
            restarted = Some(devnet);
            break;
        }
        // A stream of paid top-ups and provisions from every wallet, killed at a random
        // moment.
        let kill_after = Duration::from_millis(150 + next() % 600);
        let started = std::sync::atomic::AtomicU64::new(0);
        let stream = async {
            let mut sent = 0u64;
            loop {
                let mut round = Vec::new();
                for (i, wallet) in wallets.iter().enumerate() {
                    let (path, body) = match (sent + i as u64) % 3 {
                        0 => (
                            "/compute/provision",
                            json!({"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":125,"network":"base"}),
                        ),
                        _ => (
                            "/compute/credits/topup",
                            json!({"amount": 1, "network": "base"}),
                        ),
                    };
                    round.push(api.pay_base(wallet, path, body));
                }
                sent += round.len() as u64;
                started.fetch_add(round.len() as u64, std::sync::atomic::Ordering::Relaxed);
                // Answers lost to the kill are expected; anything answered must be sane.
                for response in futures_util::future::join_all(round)
                    .await
                    .into_iter()
                    .flatten()
                {
                    let status = response.status();
                    assert!(
                        status.is_success() || status == StatusCode::PAYMENT_REQUIRED,
                        "seed {seed}: {status}"
                    );
                }
                if sent > 10_000 {
                    return;
                }
            }
        };
        tokio::select! {
            () = stream => {}
            () = tokio::time::sleep(kill_after) => {}
        }
        attempts += started.load(std::sync::atomic::Ordering::Relaxed);
        devnet.kill().unwrap();
        devnet.wait().unwrap();
        kills += 1;
    }
    println!("soak: {kills} kills, at least {attempts} payments started, no difference");
    if let Some(mut devnet) = restarted {
        devnet.kill().unwrap();
        devnet.wait().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_paid_answer_lost_on_the_way_is_recovered_by_sending_the_same_payment() {
    let path = "/compute/credits/topup";
    let body = br#"{"amount":4,"network":"base"}"#;
    let faults = devnet::FaultConfig {
        drop_paid_answers: true,
        ..devnet::FaultConfig::default()
    };
    let (devnet, payer, api, header) = paying_under(faults, body).await;
    let send = || {
        api.post(path, body)
            .header(header.name(), header.value())
            .send()
    };
    assert!(send().await.is_err(), "the answer is lost after paying");
    devnet.faults().set(devnet::FaultConfig::default());
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::PAYMENT_REQUIRED);
    assert!(
        test_support::receipt(&again).unwrap().unwrap().success,
        "the same payment learns it went through"
    );
    let balance = api.credits(&payer).await.unwrap();
    assert_eq!(balance["balance"], "4.00", "credited once");
    assert_eq!(
        devnet.base().balance_of(devnet::TREASURY).await.unwrap(),
        alloy::primitives::U256::from(4_000_000u64),
        "paid once"
    );
}

#[tokio::test]
async fn a_long_chain_is_compacted_and_still_restarts_with_everything() {
    let dir = temporary_dir("compact");
    let (mut devnet, described) = spawn_devnet(&dir);
    let api = Client::new(described["url"].as_str().unwrap());
    let rpc_url = described["evm"][0]["rpc_url"].as_str().unwrap().to_owned();
    let token = described["evm"][0]["token"].as_str().unwrap().to_owned();
    let treasury = described["treasury"].as_str().unwrap().to_owned();
    let mut secret = [0u8; 32];
    test_support::os_random(&mut secret);
    let payer = LocalEvmSigner::from_bytes(&secret).unwrap();
    let funded = api
        .request(reqwest::Method::POST, "/devnet/fund")
        .json(&json!({ "address": payer.address().to_string(), "usdc": "10" }))
        .send()
        .await
        .unwrap();
    assert_eq!(funded.status(), StatusCode::OK);
    let topup = |amount: u64| {
        api.pay_base(
            &payer,
            "/compute/credits/topup",
            json!({ "amount": amount }),
        )
    };
    assert_eq!(topup(1).await.unwrap().status(), StatusCode::OK);

    // A long chain: the next settlement's dump compacts it to its last blocks.
    rpc(&rpc_url, "anvil_mine", json!(["0x500"])).await.unwrap();
    let paid = topup(2).await.unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let transaction = test_support::receipt(&paid).unwrap().unwrap().transaction;
    let best = rpc(&rpc_url, "eth_blockNumber", json!([])).await.unwrap();
    let best = u64::from_str_radix(best.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert!(best > 0x500, "block numbers stay: {best}");
    let early = rpc(&rpc_url, "eth_getBlockByNumber", json!(["0x10", false])).await;
    assert_eq!(early, Some(Value::Null), "early blocks are gone");
    let receipt = rpc(&rpc_url, "eth_getTransactionReceipt", json!([transaction])).await;
    assert_eq!(receipt.unwrap()["status"], "0x1", "recent receipts stay");
    assert_eq!(balance_of(&rpc_url, &token, &treasury).await, 3_000_000);
    // The compacted chain keeps settling.
    assert_eq!(topup(4).await.unwrap().status(), StatusCode::OK);

    // And restarts from its compacted state with everything.
    devnet.kill().unwrap();
    devnet.wait().unwrap();
    anvil_dies(&rpc_url).await;
    let (_restarted, described) = spawn_devnet(&dir);
    let api = Client::new(described["url"].as_str().unwrap());
    let rpc_url = described["evm"][0]["rpc_url"].as_str().unwrap().to_owned();
    assert_eq!(balance_of(&rpc_url, &token, &treasury).await, 7_000_000);
    assert_eq!(
        balance_of(&rpc_url, &token, &payer.address().to_string()).await,
        3_000_000
    );
    let balance = api.credits(&payer).await.unwrap();
    assert_eq!(balance["balance"], "7.00");
    let paid = api
        .pay_base(&payer, "/compute/credits/topup", json!({ "amount": 1 }))
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_instance_settled_late_gets_every_hour_it_paid_for() {
    let clock = devnet::TestClock::starting_now();
    let faults = devnet::FaultConfig {
        hold_confirmation: true,
        ..devnet::FaultConfig::default()
    };
    let devnet = test_support::start_with(|config| devnet::Config {
        faults,
        clock: std::sync::Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let payer = test_support::funded_wallet(&devnet, 10).await.unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());
    let anvil = devnet.base().rpc_url().to_owned();
    let path = "/compute/provision";
    let body = br#"{"plan":"vc2-1c-1gb","region":"ewr","prepaid_hours":24,"network":"base"}"#;
    let header = api.base_payment(&payer, path, body).await.unwrap();

    // The payment waits in the mempool, answered pending, while two hours pass.
    rpc(&anvil, "evm_setAutomine", json!([false]))
        .await
        .unwrap();
    let pending = api
        .post(path, body)
        .header(header.name(), header.value())
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status(), StatusCode::PAYMENT_REQUIRED);
    let receipt = test_support::receipt(&pending).unwrap().unwrap();
    assert_eq!(receipt.error_reason.as_deref(), Some("settlement_pending"));
    clock.advance(Duration::from_secs(2 * 3600));
    devnet.facilitator().reconcile().await.unwrap();
    let listed = api
        .call_ok(&payer, reqwest::Method::GET, "/compute/instances", None)
        .await
        .unwrap();
    assert_eq!(
        listed["instances"].as_array().unwrap().len(),
        0,
        "still pending: nothing is decided while the transaction may be mined"
    );
    rpc(&anvil, "evm_mine", json!([])).await.unwrap();
    rpc(&anvil, "evm_setAutomine", json!([true])).await.unwrap();
    devnet.facilitator().reconcile().await.unwrap();

    let listed = api
        .call_ok(&payer, reqwest::Method::GET, "/compute/instances", None)
        .await
        .unwrap();
    let instances = listed["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 1, "{listed}");
    let parse = |t: &Value| {
        time::OffsetDateTime::parse(
            t.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp()
    };
    let created = parse(&instances[0]["created_at"]);
    let expires = parse(&instances[0]["expires_at"]);
    let paid_at = i64::try_from(x402_core::Clock::now_unix_ms(&clock) / 1000).unwrap();
    assert!(
        (paid_at - created).abs() <= 1,
        "its time starts when it was paid ({paid_at}), not when it was asked for ({created})"
    );
    assert_eq!(expires - created, 24 * 3600, "every hour paid for");
}
