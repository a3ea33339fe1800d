//! The machines commands through the `x402c` binary against the devnet: the whole lifecycle,
//! paid on Base Sepolia, Solana devnet, MegaETH and from credits, with balances checked;
//! keystore wallets; API keys; `ssh` and OWS through fakes on `PATH`; bad input.

use std::os::unix::fs::PermissionsExt as _;

use alloy::primitives::U256;
use serde_json::Value;

use super::{Run, User, treasury};

/// 24 hours of `vc2-1c-1gb` at $0.008 an hour, in USDC atomic units.
const DAY_OF_SMALLEST: u64 = 192_000;

impl User {
    /// `x402c` against `devnet`'s machines API, with `env` set too.
    pub(super) async fn x402c(
        &self,
        devnet: &devnet::Devnet,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Run {
        // The user has both keys in the environment, which by the scripts' rule signs in as
        // Solana: these tests sign in as the EVM wallet unless they say otherwise.
        let mut all = vec![
            ("X402C_COMPUTE_URL", devnet.url()),
            ("COMPUTE_AUTH_CHAIN", "base"),
        ];
        all.extend_from_slice(env);
        self.run_with(args, &all).await
    }

    /// As [`User::x402c`], expecting success and JSON.
    pub(super) async fn json(
        &self,
        devnet: &devnet::Devnet,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let run = self.x402c(devnet, &with_json, env).await;
        assert_eq!(run.code, 0, "{args:?}: {}{}", run.stdout, run.stderr);
        serde_json::from_str(run.stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {}", run.stdout))
    }
}

async fn usdc(devnet: &devnet::Devnet, owner: alloy::primitives::Address) -> U256 {
    devnet.base().balance_of(owner).await.unwrap()
}

fn id_of(bought: &Value) -> String {
    bought["order"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_instance_lives_its_whole_life_through_x402c() {
    // Instances boot 1.5 s after they are bought, so `wait` has something to wait for.
    let devnet = super::devnet_with(devnet::FaultConfig {
        boot_delay_ms: 1_500,
        ..devnet::FaultConfig::default()
    })
    .await;
    let user = User::funded(&devnet, 5).await;

    let gpus = user.json(&devnet, &["plans", "--type", "vcg"], &[]).await;
    assert!(
        gpus.as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"].as_str().unwrap().contains("gpu")
                || p["id"].as_str().unwrap().starts_with("vcg-"))
    );
    let regions = user.json(&devnet, &["regions"], &[]).await;
    assert!(regions.as_array().unwrap().iter().any(|r| r["id"] == "ewr"));
    let images = user.json(&devnet, &["os"], &[]).await;
    assert!(images.as_array().unwrap().iter().any(|o| o["id"] == 2284));
    let table = user.x402c(&devnet, &["plans"], &[]).await;
    assert!(
        table.stdout.contains("vc2-1c-1gb") && table.stdout.contains("$5.76"),
        "{}",
        table.stdout
    );

    // A dry run pays nothing.
    let dry = user
        .x402c(
            &devnet,
            &["provision", "vc2-1c-1gb", "ewr", "--days", "1", "--dry-run"],
            &[],
        )
        .await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("$0.192") && dry.stdout.contains("nothing paid"),
        "{}",
        dry.stdout
    );
    assert_eq!(treasury(&devnet).await, U256::ZERO);

    let bought = user
        .json(
            &devnet,
            &["provision", "vc2-1c-1gb", "ewr", "--days", "1", "--yes"],
            &[],
        )
        .await;
    let id = id_of(&bought);
    assert_eq!(treasury(&devnet).await, U256::from(DAY_OF_SMALLEST));
    assert_eq!(
        usdc(&devnet, user.address).await,
        U256::from(5_000_000 - DAY_OF_SMALLEST)
    );

    let listed = user.json(&devnet, &["instances"], &[]).await;
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(
        listed[0]["expires_within_24h"], true,
        "a one-day instance is marked"
    );
    let table = user.x402c(&devnet, &["instances"], &[]).await;
    assert!(table.stdout.contains("within 24 h"), "{}", table.stdout);

    let active = user
        .json(&devnet, &["wait", &id, "--timeout", "30"], &[])
        .await;
    assert_eq!(active["status"], "active");
    let ip = active["ip_address"].as_str().unwrap().to_owned();
    let details = user.json(&devnet, &["instance", &id], &[]).await;
    assert_eq!(details["ip_address"], ip.as_str());

    // The password, once; the second time a clear refusal.
    let password = user.json(&devnet, &["password", &id], &[]).await;
    assert!(!password["password"].as_str().unwrap().is_empty());
    let again = user.x402c(&devnet, &["password", &id], &[]).await;
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("already retrieved"),
        "{}",
        again.stderr
    );

    // Extend by a day with x402.
    let expires = details["expires_at"].as_str().unwrap().to_owned();
    let extended = user
        .json(&devnet, &["extend", &id, "--hours", "24", "--yes"], &[])
        .await;
    assert_ne!(extended["order"]["expires_at"].as_str().unwrap(), expires);
    assert_eq!(treasury(&devnet).await, U256::from(2 * DAY_OF_SMALLEST));

    // Resize: the new expiry is the instance's.
    let resized = user
        .json(&devnet, &["resize", &id, "vc2-1c-2gb"], &[])
        .await;
    let details = user.json(&devnet, &["instance", &id], &[]).await;
    assert_eq!(details["expires_at"], resized["new_expires_at"]);
    assert_eq!(details["plan"], "vc2-1c-2gb");
    assert_eq!(
        treasury(&devnet).await,
        U256::from(2 * DAY_OF_SMALLEST),
        "never paid"
    );

    // Destroy asks; without a terminal it needs --yes.
    let refused = user.x402c(&devnet, &["destroy", &id], &[]).await;
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    user.json(&devnet, &["destroy", &id, "--yes"], &[]).await;
    let gone = user.json(&devnet, &["instance", &id], &[]).await;
    assert!(gone["destroyed_at"].is_string(), "{gone}");

    // Every payment is in the journal, settled.
    let payments = user.payments().await;
    assert_eq!(payments.len(), 2);
    assert!(
        payments.iter().all(|p| p["state"] == "settled"),
        "{payments:?}"
    );
}

#[tokio::test]
async fn credits_and_api_keys_through_x402c() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 5).await;
    let empty = user.json(&devnet, &["credits", "balance"], &[]).await;
    assert_eq!(empty["balance"], "0");
    user.json(&devnet, &["credits", "topup", "1", "--yes"], &[])
        .await;
    assert_eq!(treasury(&devnet).await, U256::from(1_000_000u64));
    let bought = user
        .json(
            &devnet,
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--hours",
                "24",
                "--use-credits",
                "--yes",
            ],
            &[],
        )
        .await;
    let id = id_of(&bought);
    // Without --yes and without a terminal, a paid command pays nothing.
    let unasked = user
        .x402c(
            &devnet,
            &["extend", &id, "--hours", "24", "--use-credits"],
            &[],
        )
        .await;
    assert_eq!(unasked.code, 3, "{}", unasked.stderr);
    assert!(unasked.stderr.contains("--yes"), "{}", unasked.stderr);
    user.json(
        &devnet,
        &["extend", &id, "--hours", "24", "--use-credits", "--yes"],
        &[],
    )
    .await;
    let balance = user.json(&devnet, &["credits", "balance"], &[]).await;
    assert_eq!(balance["balance"], "0.616", "{balance}");
    assert_eq!(
        treasury(&devnet).await,
        U256::from(1_000_000u64),
        "credits moved no USDC"
    );
    // Short: the shortfall, and the rejected code.
    let short = user
        .x402c(
            &devnet,
            &[
                "provision",
                "vcg-a100-1c-2g-6gb",
                "ewr",
                "--use-credits",
                "--yes",
            ],
            &[],
        )
        .await;
    assert_eq!(short.code, 4, "{}", short.stderr);
    assert!(
        short.stderr.contains("insufficient credits"),
        "{}",
        short.stderr
    );

    // An API key: created with the wallet's signature, shown once, used alone, revoked.
    let created = user
        .json(&devnet, &["api-key", "create", "--label", "ci"], &[])
        .await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let with_key = [("COMPUTE_API_KEY", key.as_str()), ("PRIVATE_KEY", "")];
    let listed = user.json(&devnet, &["instances"], &with_key).await;
    assert_eq!(listed[0]["id"], id.as_str());
    let keys = user.json(&devnet, &["api-key", "list"], &[]).await;
    assert_eq!(keys[0]["key_last4"], &key[key.len() - 4..]);
    let listing = user.x402c(&devnet, &["api-key", "list"], &[]).await;
    assert!(
        !listing.stdout.contains(&key),
        "a listed key shows its last four only"
    );
    user.json(&devnet, &["api-key", "revoke", &key_id], &[])
        .await;
    let refused = user.x402c(&devnet, &["instances"], &with_key).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("authentication failed"),
        "{}",
        refused.stderr
    );
}

#[tokio::test]
async fn solana_and_megaeth_pay_and_solana_signs_in_through_x402c() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 5).await;
    let ledger = devnet.solana().unwrap();
    let solana_rpc = format!("solana-devnet={}/solana", devnet.url());
    let as_solana = [("PRIVATE_KEY", ""), ("COMPUTE_AUTH_CHAIN", "solana")];
    let bought = user
        .json(
            &devnet,
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--hours",
                "24",
                "--network",
                "solana",
                "--rpc",
                &solana_rpc,
                "--yes",
            ],
            &as_solana,
        )
        .await;
    assert_eq!(
        ledger.token_balance(&user.solana),
        5_000_000 - DAY_OF_SMALLEST
    );
    assert_eq!(
        ledger.token_balance(&devnet::SOLANA_TREASURY),
        DAY_OF_SMALLEST
    );
    // Listed under Solana auth (and not under the EVM wallet's).
    let listed = user.json(&devnet, &["instances"], &as_solana).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], bought["order"]["id"]);
    assert_eq!(
        user.json(&devnet, &["instances"], &[]).await,
        Value::Array(Vec::new())
    );

    let megaeth = devnet.megaeth().unwrap();
    let rpc = format!("megaeth={}", megaeth.rpc_url());
    user.json(
        &devnet,
        &[
            "provision",
            "vc2-1c-1gb",
            "ewr",
            "--hours",
            "24",
            "--network",
            "megaeth",
            "--rpc",
            &rpc,
            "--yes",
        ],
        &[("COMPUTE_AUTH_CHAIN", "megaeth")],
    )
    .await;
    let scale = U256::from(10u64).pow(U256::from(12u64));
    assert_eq!(
        megaeth.balance_of(devnet::TREASURY).await.unwrap(),
        U256::from(DAY_OF_SMALLEST) * scale
    );
}

#[tokio::test]
async fn a_keystore_wallet_signs_and_pays_without_a_key_in_the_environment() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let no_keys = [
        ("PRIVATE_KEY", ""),
        ("SOLANA_SECRET_KEY", ""),
        ("X402C_PASSWORD", "correct horse battery staple"),
    ];
    let made = user
        .json(&devnet, &["wallet", "new", "--solana"], &no_keys)
        .await;
    let evm: alloy::primitives::Address = made["evm"].as_str().unwrap().parse().unwrap();
    let solana: x402_core::SolanaAddress = made["solana"].as_str().unwrap().parse().unwrap();
    let wallets = user.dir.join("wallets");
    for file in ["default.json", "default.solana.json"] {
        let mode = std::fs::metadata(wallets.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let keystore: Value =
        serde_json::from_str(&std::fs::read_to_string(wallets.join("default.json")).unwrap())
            .unwrap();
    assert_eq!(
        keystore["crypto"]["kdf"], "scrypt",
        "the standard Ethereum keystore"
    );
    // A second `new` does not overwrite it.
    let again = user.x402c(&devnet, &["wallet", "new"], &no_keys).await;
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("exists"), "{}", again.stderr);

    devnet.chains().fund_evm(evm, 1_000_000).await.unwrap();
    devnet.solana().unwrap().fund(&solana, 1_000_000).unwrap();
    let bought = user
        .json(
            &devnet,
            &["provision", "vc2-1c-1gb", "ewr", "--hours", "24", "--yes"],
            &no_keys,
        )
        .await;
    assert_eq!(
        usdc(&devnet, evm).await,
        U256::from(1_000_000 - DAY_OF_SMALLEST)
    );
    let listed = user.json(&devnet, &["instances"], &no_keys).await;
    assert_eq!(listed[0]["id"], bought["order"]["id"]);

    // The wrong password: one clear line, nothing paid.
    let wrong = user
        .x402c(
            &devnet,
            &["provision", "vc2-1c-1gb", "ewr", "--hours", "24", "--yes"],
            &[("PRIVATE_KEY", ""), ("X402C_PASSWORD", "wrong")],
        )
        .await;
    assert_eq!(wrong.code, 1);
    assert!(wrong.stderr.contains("wrong password"), "{}", wrong.stderr);
    assert_eq!(
        usdc(&devnet, evm).await,
        U256::from(1_000_000 - DAY_OF_SMALLEST)
    );

    // Importing the user's key into another wallet gives the same address.
    let imported = user
        .json(
            &devnet,
            &["wallet", "import", "--wallet", "imported"],
            &[("X402C_PASSWORD", "pw"), ("PRIVATE_KEY", &user.key)],
        )
        .await;
    assert_eq!(
        imported["evm"].as_str().unwrap().to_lowercase(),
        format!("{:#x}", user.address)
    );
    let listed = user.json(&devnet, &["wallet", "list"], &[]).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
}

/// A directory holding an executable `name` that appends its arguments (one per line) to
/// `args` beside it and runs `body`.
fn fake_on_path(user: &User, name: &str, body: &str) -> std::path::PathBuf {
    let dir = user.dir.join(format!("fake-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\n{body}\n",
        dir.join("args").display()
    );
    let bin = dir.join(name);
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn path_with(dir: &std::path::Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[tokio::test]
async fn an_instance_made_with_an_ssh_key_has_no_password() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let key = user.dir.join("id_ed25519.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7bY1pYJ7z0hJvQ5jv2y2Yj0m9dCqW7pN3aLx3tK0sd user@host\n",
    )
    .unwrap();
    let bought = user
        .json(
            &devnet,
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--hours",
                "24",
                "--ssh-key-file",
                &key.display().to_string(),
                "--yes",
            ],
            &[],
        )
        .await;
    let id = id_of(&bought);
    let details = user.json(&devnet, &["instance", &id], &[]).await;
    assert_eq!(details["access_method"], "ssh_key");
    let refused = user.x402c(&devnet, &["password", &id], &[]).await;
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("SSH key"), "{}", refused.stderr);
}

#[tokio::test]
async fn ssh_runs_the_system_ssh_as_root_at_the_instances_address() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let bought = user
        .json(
            &devnet,
            &["provision", "vc2-1c-1gb", "ewr", "--hours", "24", "--yes"],
            &[],
        )
        .await;
    let id = id_of(&bought);
    let details = user.json(&devnet, &["instance", &id], &[]).await;
    let ip = details["ip_address"].as_str().unwrap();
    let fake = fake_on_path(&user, "ssh", "exit 7");
    let path = path_with(&fake);
    let run = user
        .x402c(
            &devnet,
            &["ssh", &id, "-i", "/keys/id_ed25519", "--", "uptime"],
            &[("PATH", &path)],
        )
        .await;
    assert_eq!(run.code, 7, "ssh's own exit code: {}", run.stderr);
    let args = std::fs::read_to_string(fake.join("args")).unwrap();
    assert_eq!(args, format!("-i\n/keys/id_ed25519\nroot@{ip}\nuptime\n"));
}

#[tokio::test]
async fn ows_signs_the_requests_and_never_pays() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let address = alloy::primitives::Address::repeat_byte(0xab).to_checksum(None);
    // A fake ows: lists a wallet, and answers every signature with a well-formed but wrong
    // one (the real signing path is compute-api's test); the devnet refuses it.
    let body = format!(
        "if [ \"$1\" = wallet ]; then printf 'Name:    agent\\nID:      9\\n  eip155:8453 → {address}\\n'; exit 0; fi\nprintf '{{\"signature\":\"%s\"}}' \"$(printf '11%.0s' $(seq 65))\""
    );
    let fake = fake_on_path(&user, "ows", &body);
    let bin = fake.join("ows").display().to_string();
    let ows = [
        ("OWS_WALLET", "agent"),
        ("OWS_BIN", bin.as_str()),
        ("PRIVATE_KEY", ""),
        ("SOLANA_SECRET_KEY", ""),
    ];
    let refused = user.x402c(&devnet, &["instances"], &ows).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("authentication failed"),
        "{}",
        refused.stderr
    );
    let args = std::fs::read_to_string(fake.join("args")).unwrap();
    let lines: Vec<&str> = args.lines().collect();
    assert_eq!(&lines[..2], ["wallet", "list"]);
    assert_eq!(
        &lines[2..8],
        [
            "sign",
            "message",
            "--chain",
            "eip155:8453",
            "--wallet",
            "agent"
        ]
    );
    assert_eq!(lines[8], "--message");
    assert_eq!(lines[9], "X402-COMPUTE-AUTH");
    assert_eq!(
        lines[12],
        address.to_lowercase(),
        "the address, lowercased, is signed"
    );
    assert_eq!(lines[14], "/compute/instances");
    assert_eq!(*lines.last().unwrap(), "--json");

    // OWS never pays: without a payment key, provision signs nothing.
    let unpaid = user
        .x402c(
            &devnet,
            &["provision", "vc2-1c-1gb", "ewr", "--hours", "24", "--yes"],
            &ows,
        )
        .await;
    assert_eq!(unpaid.code, 3, "{}", unpaid.stderr);
    assert!(
        unpaid.stderr.contains("no payment key"),
        "{}",
        unpaid.stderr
    );
    assert_eq!(treasury(&devnet).await, U256::ZERO);

    // An OWS binary the world can rewrite is refused.
    std::fs::set_permissions(fake.join("ows"), std::fs::Permissions::from_mode(0o757)).unwrap();
    let unsafe_bin = user.x402c(&devnet, &["instances"], &ows).await;
    assert_eq!(unsafe_bin.code, 1);
    assert!(
        unsafe_bin.stderr.contains("writable by everyone"),
        "{}",
        unsafe_bin.stderr
    );
}

#[tokio::test]
async fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let devnet = test_support::start().await.unwrap();
    let user = User::funded(&devnet, 1).await;
    let not_a_key = user.dir.join("not-a-key.pub");
    std::fs::write(&not_a_key, "hello").unwrap();
    let not_a_key = not_a_key.display().to_string();
    let cases: [(&[&str], &str); 8] = [
        (
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--ssh-key-file",
                "/nonexistent/id.pub",
                "--yes",
            ],
            "cannot read the SSH key",
        ),
        (
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--ssh-key-file",
                &not_a_key,
                "--yes",
            ],
            "is not an SSH public key",
        ),
        (&["extend", "x", "--hours", "24", "--yes"], "WALLET_ADDRESS"),
        (
            &["provision", "vc9-nope", "ewr", "--yes"],
            "no plan `vc9-nope`",
        ),
        (
            &["provision", "vc2-1c-1gb", "ewr", "--hours", "5", "--yes"],
            "too short",
        ),
        (
            &["provision", "vc2-1c-1gb", "mars", "--hours", "24", "--yes"],
            "not offered in `mars`",
        ),
        (
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--hours",
                "24",
                "--network",
                "dogecoin",
                "--yes",
            ],
            "not a network",
        ),
        (&["instance", "../../etc"], "is not an id"),
    ];
    for (args, expected) in cases {
        // A WALLET_ADDRESS that is not the key's, for the case that expects it.
        let wrong = "0x000000000000000000000000000000000000dEaD";
        let env: &[(&str, &str)] = match expected {
            "WALLET_ADDRESS" => &[("WALLET_ADDRESS", wrong)],
            _ => &[],
        };
        let run = user.x402c(&devnet, args, env).await;
        assert_ne!(run.code, 0, "{args:?}");
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    }
    // Signing in as Solana without a Solana key: said, not silently signed as another wallet.
    let no_key = user
        .x402c(
            &devnet,
            &["instances"],
            &[("COMPUTE_AUTH_CHAIN", "solana"), ("SOLANA_SECRET_KEY", "")],
        )
        .await;
    assert_eq!(no_key.code, 1);
    assert!(no_key.stderr.contains("no Solana key"), "{}", no_key.stderr);

    // Over the cap: refused before signing.
    let capped = user
        .x402c(
            &devnet,
            &[
                "provision",
                "vc2-1c-1gb",
                "ewr",
                "--hours",
                "24",
                "--max-price",
                "0.10",
                "--yes",
            ],
            &[],
        )
        .await;
    assert_eq!(capped.code, 3, "{}", capped.stderr);
    assert!(user.payments().await.is_empty());
    assert_eq!(treasury(&devnet).await, U256::ZERO);

    // An unreachable server, and one that answers HTML.
    let dead = user
        .run_with(&["plans"], &[("X402C_COMPUTE_URL", "http://127.0.0.1:9")])
        .await;
    assert_eq!(dead.code, 6, "{}", dead.stderr);
    assert!(dead.stderr.contains("cannot reach"), "{}", dead.stderr);
    let html = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::BAD_GATEWAY,
            axum::response::Html("<html>bad gateway</html>"),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, html).await.unwrap() });
    let run = user
        .run_with(&["plans"], &[("X402C_COMPUTE_URL", &url)])
        .await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(run.stderr.contains("HTML"), "{}", run.stderr);
}
