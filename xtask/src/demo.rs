//! `cargo xtask demo`: the main job, as a user runs it. Starts a fresh devnet (two anvil chains,
//! an in-process Solana ledger, the machines API and a facilitator), makes a throwaway wallet
//! with `x402c wallet new`, funds it, and drives the whole machines lifecycle through `x402c`:
//! browse, provision on Base Sepolia and wait for it, read the one-time password, extend, buy
//! credits on MegaETH and spend them on a GPU, provision on Solana devnet, resize, destroy, and
//! show the payment journal. Every command is printed before its output.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
    fn show_with(&self, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
        let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
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
        let out = self
            .command(args)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running x402c {}", args.join(" ")))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        if !out.status.success() {
            bail!("`x402c {}` failed with {}", args.join(" "), out.status);
        }
        Ok(text.trim().to_owned())
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
    drop(devnet);
    println!("\nDone: every payment above settled on a local chain and is in the journal.");
    Ok(())
}
