//! `cargo xtask bench` part: the cold start of `x402c plans --type vcg --json` (release build,
//! whole process) against a running devnet, side by side with `curl` fetching the same URL and,
//! when it is there, the seed's `browse_plans.py --type vcg` pointed at the same devnet.
//!
//! The script is not ours and is not committed: put `browse_plans.py` from
//! `ivaavimusic/singularity-skill` (x402-compute/scripts) at `.tools/seed-scripts/` to include
//! it; it runs under the interop virtualenv (which has `requests`).
//!
//! Each command runs 3 times to warm the caches, then 25 times timed (the median and the
//! 90th percentile are reported); its peak RSS comes from one more run under GNU `time`.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const RUNS: usize = 25;

struct Measured {
    name: &'static str,
    median: Duration,
    p90: Duration,
    peak_kib: Option<u64>,
}

fn measure(
    name: &'static str,
    program: &Path,
    args: &[String],
    env: &[(String, String)],
) -> Result<Measured> {
    let command = || {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    for _ in 0..3 {
        let status = command()
            .status()
            .with_context(|| format!("running {name}"))?;
        if !status.success() {
            bail!("{name} failed: {status}");
        }
    }
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        let status = command().status()?;
        times.push(start.elapsed());
        if !status.success() {
            bail!("{name} failed: {status}");
        }
    }
    times.sort();
    let peak_kib = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
        });
    Ok(Measured {
        name,
        median: times[RUNS / 2],
        p90: times[RUNS * 9 / 10],
        peak_kib,
    })
}

pub(crate) fn run(root: &Path) -> Result<()> {
    crate::tools()?;
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "cli",
        "--bin",
        "x402c",
    ]))?;
    crate::run(crate::cargo().args([
        "build",
        "--quiet",
        "-p",
        "devnet",
        "--features",
        crate::FEATURES,
        "--bin",
        "x402-devnet",
    ]))?;
    let dir = std::env::temp_dir().join(format!("x402c-coldstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut child = Command::new(root.join("target/debug/x402-devnet"))
        .args(["--port", "0", "--json", "--data-dir"])
        .arg(dir.join("devnet"))
        .stdout(Stdio::piped())
        .spawn()
        .context("starting x402-devnet")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("the devnet's stdout")?)
        .read_line(&mut line)?;
    let result = (|| -> Result<Vec<Measured>> {
        let described: serde_json::Value = serde_json::from_str(&line)?;
        let url = described["url"]
            .as_str()
            .context("the devnet's description has no url")?
            .to_owned();
        let mut measured = Vec::new();
        let env = vec![
            ("X402C_COMPUTE_URL".to_owned(), url.clone()),
            (
                "X402C_CONFIG".to_owned(),
                dir.join("config.toml").display().to_string(),
            ),
            (
                "X402C_JOURNAL".to_owned(),
                dir.join("payments.sqlite").display().to_string(),
            ),
        ];
        measured.push(measure(
            "x402c plans --type vcg --json",
            &root.join("target/release/x402c"),
            &["plans", "--type", "vcg", "--json"].map(str::to_owned),
            &env,
        )?);
        measured.push(measure(
            "curl (same URL)",
            Path::new("curl"),
            &["-sf".to_owned(), format!("{url}/compute/plans?type=vcg")],
            &[],
        )?);
        let script = root.join(".tools/seed-scripts/browse_plans.py");
        let python = root.join("target/interop-venv/bin/python");
        if script.exists() && python.exists() {
            let shim = format!(
                "import sys; sys.argv=['browse_plans.py','--type','vcg']; sys.path.insert(0, {dir:?}); import browse_plans as b; b.BASE_URL={url:?}; r=b.browse_plans('vcg'); sys.exit(1 if 'error' in r else 0)",
                dir = script
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default(),
            );
            measured.push(measure(
                "seed browse_plans.py --type vcg",
                &python,
                &["-c".to_owned(), shim],
                &[],
            )?);
        } else {
            println!(
                "(the seed script is not at {}: it is not ours to commit; see xtask/src/coldstart.rs)",
                script.display()
            );
        }
        Ok(measured)
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let measured = result?;
    println!(
        "\ncold start against a local devnet, {RUNS} runs each (machine: {} cores)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "{:<34} {:>10} {:>10} {:>12}",
        "command", "median", "p90", "peak RSS"
    );
    for m in &measured {
        println!(
            "{:<34} {:>8.1}ms {:>8.1}ms {:>12}",
            m.name,
            m.median.as_secs_f64() * 1e3,
            m.p90.as_secs_f64() * 1e3,
            m.peak_kib.map_or_else(
                || "-".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0)
            )
        );
    }
    if let [ours, curl, rest @ ..] = measured.as_slice() {
        println!(
            "x402c / curl: {:.2}x",
            ours.median.as_secs_f64() / curl.median.as_secs_f64()
        );
        if let [script] = rest {
            println!(
                "script / x402c: {:.1}x",
                script.median.as_secs_f64() / ours.median.as_secs_f64()
            );
        }
    }
    Ok(())
}
