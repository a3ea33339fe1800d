//! `cargo xtask`: the project's automation, in Rust.
//!
//! - `cargo xtask ci`: exactly what CI runs (`.ci/run` calls it).
//! - `cargo xtask interop`: cross-checks x402-core's payment headers with independent
//!   implementations (Python eth-account and solders, in a pinned venv).
//! - `cargo xtask bench`: the criterion benchmarks.
//! - `cargo xtask fuzz [SECONDS]`: runs the cargo-fuzz target for a while (not part of CI).
//!
//! xtask depends on no workspace library: it only runs cargo, python and the built examples.

#![allow(clippy::print_stdout)]

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
        Some("bench") => run(cargo().args(["bench", "-p", "x402-core", "--all-features"])),
        Some("fuzz") => fuzz(args.get(1).map(String::as_str).unwrap_or("60")),
        _ => {
            eprintln!("usage: cargo xtask <ci | interop | bench | fuzz [SECONDS]>");
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

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("\n==> {name}");
    let started = Instant::now();
    f().with_context(|| format!("ci step `{name}` failed"))?;
    println!("<== {name}: ok in {:.0?}", started.elapsed());
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    let started = Instant::now();
    step("rustfmt", || run(cargo().args(["fmt", "--all", "--check"])))?;
    step("clippy", || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("tests", || {
        run(cargo().args(["test", "--workspace", "--all-features", "--locked"]))
    })?;
    step("docs", || {
        run(cargo()
            .args([
                "doc",
                "--workspace",
                "--all-features",
                "--no-deps",
                "--locked",
            ])
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

/// Python venv with the pinned verifiers, the `pay` example, and the check script.
fn interop() -> anyhow::Result<()> {
    let venv = PathBuf::from("target/interop-venv");
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
    run(cargo().args([
        "build",
        "--quiet",
        "-p",
        "x402-core",
        "--features",
        "solana",
        "--example",
        "pay",
        "--locked",
    ]))?;
    let target_dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let pay = PathBuf::from(target_dir).join("debug/examples/pay");
    run(Command::new(&python)
        .arg("xtask/interop/check.py")
        .arg(&pay))
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
