//! `cargo xtask demo`: the main job, as a user runs it. Starts a fresh devnet (two anvil chains,
//! an in-process Solana ledger, the machines API and a facilitator), makes a throwaway wallet
//! with `x402c wallet new`, funds it, and drives the whole machines lifecycle through `x402c`:
//! browse, provision on Base Sepolia and wait for it, read the one-time password, extend, buy
//! credits on MegaETH and spend them on a GPU, provision on Solana devnet, resize, destroy, and
//! show the payment journal. Then the grid: registers a node with `sgl` (a registration code
//! from `x402-devnet grid-code` for the wallet's Solana address), starts it in the background
//! serving SmolLM2 through the pinned llama-server, waits until its engine is ready, makes an
//! API key, streams a chat through the devnet's grid paid from the wallet's credits, shows the
//! bill in the balance and the grid's capacity, and stops the node with SIGTERM. Every command
//! is printed before its output.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The devnet, killed when dropped.
struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One demo user: a private home for the config, journal and wallets.
struct Home {
    dir: PathBuf,
    x402c: PathBuf,
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Home {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.x402c);
        command
            .args(args)
            .env("X402C_CONFIG", self.dir.join("config.toml"))
            .env("X402C_JOURNAL", self.dir.join("payments.sqlite"))
            .env("X402C_WALLETS", self.dir.join("wallets"))
            .env("X402C_PASSWORD", "demo password (devnet only)");
        for key in [
            "PRIVATE_KEY",
            "SOLANA_SECRET_KEY",
            "COMPUTE_API_KEY",
            "COMPUTE_AUTH_CHAIN",
            "COMPUTE_AUTH_MODE",
            "OWS_WALLET",
            "WALLET_ADDRESS",
            "X402C_COMPUTE_URL",
            "X402C_GRID_KEY",
            "X402C_GRID_URL",
        ] {
            command.env_remove(key);
        }
        command
    }

    /// Runs `x402c ARGS`, showing the command and everything it prints.
    fn show(&self, args: &[&str]) -> Result<()> {
        self.show_with(args, &[])
    }

    /// [`Home::show`] with environment variables set.
    /// An API key (`COMPUTE_API_KEY`) is shown as `x402c_…`, never itself.
    fn show_with(&self, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
        let shown: Vec<String> = env
            .iter()
            .map(|&(k, v)| match k {
                "COMPUTE_API_KEY" | "X402C_GRID_KEY" => format!("{k}=x402c_… "),
                _ => format!("{k}={v} "),
            })
            .collect();
        println!("\n$ {}x402c {}", shown.concat(), args.join(" "));
        let status = self
            .command(args)
            .envs(env.iter().copied())
            .status()
            .with_context(|| format!("running x402c {}", args.join(" ")))?;
        if !status.success() {
            bail!("`x402c {}` failed with {status}", args.join(" "));
        }
        Ok(())
    }

    /// Runs `x402c ARGS` and returns its stdout (its stderr is shown).
    fn capture(&self, args: &[&str]) -> Result<String> {
        println!("\n$ x402c {}", args.join(" "));
        let text = self.output(args)?;
        print!("{text}");
        Ok(text.trim().to_owned())
    }

    /// Runs `x402c ARGS` and returns its stdout without showing it (its stderr is shown; its
    /// stdout too, when it fails).
    fn output(&self, args: &[&str]) -> Result<String> {
        self.output_with(args, &[])
    }

    /// [`Home::output`] with environment variables set.
    fn output_with(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let out = self
            .command(args)
            .envs(env.iter().copied())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running x402c {}", args.join(" ")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            print!("{text}");
            bail!("`x402c {}` failed with {}", args.join(" "), out.status);
        }
        Ok(text)
    }

    /// Shows `x402c credits balance` and returns the balance, in micro-dollars.
    fn balance(&self) -> Result<u64> {
        let text = self.capture(&["credits", "balance"])?;
        text.strip_prefix("balance $")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(micros)
            .with_context(|| format!("`x402c credits balance` printed no balance: {text}"))
    }
}

/// `12.345` (dollars) in micro-dollars.
fn micros(dollars: &str) -> Option<u64> {
    let (whole, fraction) = dollars.split_once('.').unwrap_or((dollars, ""));
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let fraction: u64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

/// Micro-dollars as `$0.000123`.
fn dollars(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// One grid node: `sgl` with its own config directory, registered with the devnet.
struct Node {
    sgl: PathBuf,
    dir: PathBuf,
    url: String,
}

impl Node {
    /// `sgl --orchestrator-url URL --config-dir DIR ARGS`, and the same as shown.
    fn command(&self, args: &[&str]) -> (Command, String) {
        let mut command = Command::new(&self.sgl);
        command
            .arg("--orchestrator-url")
            .arg(&self.url)
            .arg("--config-dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("SGL_ENGINE")
            .env_remove("SGL_LLAMA_SERVER");
        let shown = format!(
            "sgl --orchestrator-url {} --config-dir {} {}",
            self.url,
            self.dir.display(),
            args.join(" ")
        );
        (command, shown)
    }

    /// Runs `sgl ARGS`, showing the command and everything it prints.
    fn show(&self, args: &[&str]) -> Result<()> {
        let (mut command, shown) = self.command(args);
        println!("\n$ {shown}");
        let status = command
            .status()
            .with_context(|| format!("running {shown}"))?;
        if !status.success() {
            bail!("`{shown}` failed with {status}");
        }
        Ok(())
    }

    /// `sgl status --json`, quietly.
    fn status(&self) -> Result<serde_json::Value> {
        let (mut command, shown) = self.command(&["status", "--json"]);
        let out = command
            .stderr(Stdio::null())
            .output()
            .with_context(|| format!("running {shown}"))?;
        if !out.status.success() {
            bail!("`{shown}` failed with {}", out.status);
        }
        serde_json::from_slice(&out.stdout).with_context(|| format!("`{shown}` printed no JSON"))
    }
}

/// A running `sgl start`: stopped with SIGTERM by [`Running::stop`]; when dropped unstopped
/// (the demo failed midway), sent SIGTERM too, so that it stops its llama-server, and killed
/// when it has not exited after 10 s.
struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    /// The last lines of the node's log, for an error.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Fails, with the log's tail, when the node has exited.
    fn check_alive(&mut self) -> Result<()> {
        let child = self.child.as_mut().context("the node was stopped")?;
        if let Some(status) = child.try_wait()? {
            bail!(
                "`sgl start` exited with {status}; its log ends:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits: the node drains its jobs and exits 0.
    fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().context("the node was stopped")?;
        let pid = child.id().to_string();
        println!("\n$ kill -TERM {pid}");
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        if !matches!(sent, Ok(status) if status.success()) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("could not send SIGTERM to the node ({pid})");
        }
        let status = child.wait().context("waiting for the node")?;
        if !status.success() {
            bail!(
                "the node exited with {status} after SIGTERM; its log ends:\n{}",
                self.log_tail()
            );
        }
        println!("the node drained and exited ({status})");
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A string field of the devnet's JSON description.
fn field<'a>(json: &'a serde_json::Value, pointer: &str) -> Result<&'a str> {
    json.pointer(pointer)
        .and_then(serde_json::Value::as_str)
        .with_context(|| format!("the devnet's description has no {pointer}"))
}

pub(crate) fn run(root: &Path) -> Result<()> {
    crate::tools()?;
    crate::run(crate::cargo().args([
        "build",
        "--quiet",
        "-p",
        "cli",
        "-p",
        "devnet",
        "-p",
        "sgl-node",
        "--features",
        crate::FEATURES,
        "--bins",
    ]))?;
    let bin = root.join("target/debug");
    let dir = std::env::temp_dir().join(format!("x402c-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let home = Home {
        dir: dir.clone(),
        x402c: bin.join("x402c"),
    };

    println!("Starting a fresh devnet (its chains, tokens and keys are local and worthless)...");
    let mut child = Command::new(bin.join("x402-devnet"))
        .args(["--port", "0", "--json", "--data-dir"])
        .arg(dir.join("devnet"))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting x402-devnet")?;
    let stdout = child.stdout.take().context("the devnet's stdout")?;
    let devnet = Devnet(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading the devnet's description")?;
    let description: serde_json::Value =
        serde_json::from_str(&line).context("the devnet's description is not JSON")?;
    let url = field(&description, "/url")?.to_owned();
    let mut rpc = String::new();
    for chain in description["evm"].as_array().into_iter().flatten() {
        let name = match chain["chain_id"].as_u64() {
            Some(84532) => "base-sepolia",
            Some(4326) => "megaeth",
            _ => continue,
        };
        rpc.push_str(&format!("{name} = \"{}\"\n", field(chain, "/rpc_url")?));
    }
    rpc.push_str(&format!(
        "solana-devnet = \"{}\"\n",
        field(&description, "/solana/rpc_url")?
    ));
    let config = format!("compute_url = \"{url}\"\n\n[rpc]\n{rpc}");
    std::fs::write(dir.join("config.toml"), &config)?;
    println!("  machines API {url}; x402c's config file:\n{config}");

    home.show(&["wallet", "new", "--solana"])?;
    let addresses: serde_json::Value =
        serde_json::from_str(&home.capture(&["wallet", "address", "--json"])?)?;
    for key in ["/evm", "/solana"] {
        let address = field(&addresses, key)?;
        println!("\n$ x402-devnet fund {address} --usdc 20");
        let funded = Command::new(bin.join("x402-devnet"))
            .args(["fund", address, "--usdc", "20", "--url", &url])
            .stdout(Stdio::null())
            .status()?;
        if !funded.success() {
            bail!("funding {address} failed");
        }
        println!("20 USDC minted to {address}");
    }

    home.show(&["plans", "--type", "vcg"])?;
    home.show(&["regions"])?;
    let first = home.capture(&[
        "provision",
        "vc2-1c-1gb",
        "ewr",
        "--days",
        "1",
        "--network",
        "base",
        "--wait",
        "--yes",
    ])?;
    home.show(&["instances"])?;
    home.show(&["password", &first])?;
    home.show(&["extend", &first, "--hours", "24", "--yes"])?;
    home.show(&["credits", "topup", "5", "--network", "megaeth", "--yes"])?;
    home.show(&["credits", "balance"])?;
    let gpu = home.capture(&[
        "provision",
        "vcg-a16-2c-16g-4vram",
        "ams",
        "--hours",
        "24",
        "--use-credits",
        "--yes",
    ])?;
    home.show(&["credits", "balance"])?;
    let solana = home.capture(&[
        "provision",
        "vc2-1c-1gb",
        "lax",
        "--hours",
        "24",
        "--network",
        "solana",
        "--yes",
    ])?;
    // Paid on Solana, the instance belongs to the paying Solana key: signed in as it, it lists.
    let as_solana = [("COMPUTE_AUTH_CHAIN", "solana")];
    home.show_with(&["instances"], &as_solana)?;
    home.show(&["resize", &first, "vc2-1c-2gb"])?;
    home.show(&["instance", &first])?;
    for id in [&first, &gpu] {
        home.show(&["destroy", id, "--yes"])?;
    }
    home.show_with(&["destroy", &solana, "--yes"], &as_solana)?;
    home.show(&["payments", "list"])?;
    grid(root, &home, &url, field(&addresses, "/solana")?)?;
    drop(devnet);
    println!(
        "\nDone: every payment above settled on a local chain and is in the journal, and the chat was billed from the credits."
    );
    Ok(())
}

/// The model the demo's node serves, under the name it advertises.
const MODEL: &str = "SmolLM2-135M-Instruct";

/// The grid part: a node for `wallet` (a Solana address) serving SmolLM2 on the devnet at
/// `url`, a chat through it paid from `home`'s credits, and the node stopped.
fn grid(root: &Path, home: &Home, url: &str, wallet: &str) -> Result<()> {
    println!("\nThe grid: run a node serving SmolLM2 on this machine, and chat through it.");
    let bin = root.join("target/debug");
    println!("\n$ x402-devnet grid-code {wallet} --url {url}");
    let out = Command::new(bin.join("x402-devnet"))
        .args(["grid-code", wallet, "--url", url])
        .stderr(Stdio::inherit())
        .output()
        .context("running x402-devnet grid-code")?;
    if !out.status.success() {
        bail!("getting a registration code for {wallet} failed");
    }
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    println!("{code}");

    let node = Node {
        sgl: bin.join("sgl"),
        dir: home.dir.join("sgl"),
        url: url.to_owned(),
    };
    node.show(&["init", "--wallet", wallet, "--code", &code])?;

    let llama = root.join(crate::LLAMA);
    let model = llama.join("models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let server = llama.join("bin/llama-server");
    let (model, server) = (model.to_string_lossy(), server.to_string_lossy());
    let (mut start, shown) = node.command(&[
        "start",
        "--model-path",
        &model,
        "--model-name",
        MODEL,
        "--llama-server",
        &server,
        "--inference-port",
        "0",
        "--heartbeat-interval",
        "1",
        "--context-size",
        "2048",
    ]);
    let log = home.dir.join("sgl.log");
    println!("\n$ {shown} 2> {} &", log.display());
    let file = std::fs::File::create(&log).context("creating the node's log")?;
    let child = start
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .context("starting sgl start")?;
    let mut running = Running {
        child: Some(child),
        log,
    };
    println!("waiting for its engine to load the model and be ready...");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        running.check_alive()?;
        let status = node.status()?;
        if status.pointer("/runtime/engine/phase") == Some(&serde_json::json!("ready")) {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the node's engine was not ready within 120 s; its log ends:\n{}",
                running.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    node.show(&["status"])?;

    // The node advertises the model with its next heartbeat once the engine is ready.
    let grid_url = [("X402C_GRID_URL", url)];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        running.check_alive()?;
        let models: serde_json::Value =
            serde_json::from_str(&home.output_with(&["grid", "models", "--json"], &grid_url)?)
                .context("`x402c grid models --json` printed no JSON")?;
        let listed =
            models.as_array().into_iter().flatten().any(|model| {
                model.pointer("/id").and_then(serde_json::Value::as_str) == Some(MODEL)
            });
        if listed {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the grid did not list {MODEL} within 30 s; the node's log ends:\n{}",
                running.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    home.show_with(&["grid", "models"], &grid_url)?;
    node.show(&["price", "show"])?;

    let created: serde_json::Value = {
        println!("\n$ x402c api-key create --label grid --json");
        let text = home.output(&["api-key", "create", "--label", "grid", "--json"])?;
        serde_json::from_str(&text).context("`x402c api-key create --json` printed no JSON")?
    };
    let key = created
        .pointer("/api_key")
        .and_then(serde_json::Value::as_str)
        .context("`x402c api-key create --json` printed no api_key")?
        .to_owned();
    let mut shown = created.clone();
    shown["api_key"] = serde_json::json!("x402c_… (shown once; kept out of this transcript)");
    println!("{}", serde_json::to_string_pretty(&shown)?);

    let before = home.balance()?;
    let grid_env = [grid_url[0], ("COMPUTE_API_KEY", key.as_str())];
    home.show_with(
        &[
            "chat",
            "-m",
            MODEL,
            "--stream",
            "--max-tokens",
            "48",
            "Write a haiku about local chains.",
        ],
        &grid_env,
    )?;
    let after = home.balance()?;
    let bill = before
        .checked_sub(after)
        .context("the credits grew during the chat")?;
    println!(
        "the difference, {}, is the chat's bill: its prompt and completion tokens (above) at the node's effective price per 1M tokens (sgl price show), rounded up to a micro-dollar",
        dollars(bill)
    );
    home.show_with(&["grid", "capacity"], &grid_url)?;
    running.stop()
}
