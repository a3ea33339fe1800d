//! The `sgl` binary against the devnet's coordinator, as an operator runs it: `init` with a
//! registration code (files 0700/0600, no second init), `login` through the device flow
//! approved on the devnet, `status --json`, `version`, `attest` (a signed report bound to the
//! challenge, verified), `price show|set|reset` within the band, `off-grid` and `on-grid`;
//! and `start` serving SmolLM2 through the real llama-server: systemd's readiness and status
//! lines, `status` showing the engine through a killed llama-server, a clean SIGTERM.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use serde_json::{Value, json};

const WALLET: &str = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn sgl(devnet: &devnet::Devnet, dir: &Path, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(dir)
        .args(["--orchestrator-url", devnet.url()])
        .args(args)
        .env_remove("SGL_LOG")
        .output()
        .await
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn post(devnet: &devnet::Devnet, path: &str, body: Value) -> Value {
    let response = test_support::http()
        .post(format!("{}{path}", devnet.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap()
}

/// `kill SIGNAL -- TARGET` (a pid, or `-PGID` for a process group), which must succeed.
fn signal(name: &str, target: &str) {
    let sent = std::process::Command::new("kill")
        .args([name, "--", target])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {name} {target}");
}

/// The line of a printed unit that starts with `key`.
fn unit_line<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in the unit:\n{unit}"))
}

/// A single-use registration code for [`WALLET`].
async fn code(devnet: &devnet::Devnet) -> String {
    post(
        devnet,
        "/devnet/grid/codes",
        json!({ "wallet_address": WALLET }),
    )
    .await["registration_code"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn an_operator_runs_sgl_against_the_devnet() {
    let devnet = test_support::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("sgl-node");

    // init with a single-use code.
    let code = code(&devnet).await;
    let init = sgl(
        &devnet,
        &dir,
        &[
            "init", "--wallet", WALLET, "--code", &code, "--models", "echo-1",
        ],
    )
    .await;
    assert_eq!(init.code, 0, "{}{}", init.stdout, init.stderr);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("node.json")), 0o600);
    assert_eq!(mode(&dir.join("keypair.json")), 0o600);
    let node: Value =
        serde_json::from_slice(&std::fs::read(dir.join("node.json")).unwrap()).unwrap();
    let token = node["auth_token"].as_str().unwrap().to_owned();
    assert!(!init.stdout.contains(&token) && !init.stderr.contains(&token));
    let again = sgl(
        &devnet,
        &dir,
        &["init", "--wallet", WALLET, "--code", &code],
    )
    .await;
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("node.json"), "{}", again.stderr);

    // status --json: the dashboard's fields.
    let status = sgl(&devnet, &dir, &["status", "--json"]).await;
    assert_eq!(status.code, 0, "{}", status.stderr);
    let report: Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(report["node_id"], node["node_id"]);
    assert_eq!(report["wallet_address"], WALLET);
    assert!(report["coordinator"]["status"].is_string(), "{report}");
    assert!(!status.stdout.contains(&token));
    // detect: the machine's facts, read (never a 16 GB or `apple_metal` guess).
    let detect = sgl(&devnet, &dir, &["detect", "--json"]).await;
    assert_eq!(detect.code, 0, "{}", detect.stderr);
    let facts: Value = serde_json::from_str(detect.stdout.trim()).unwrap();
    assert!(facts["cpu_cores"].as_u64().unwrap() >= 1, "{facts}");
    assert!(facts["memory_bytes"].as_u64().unwrap() > 0, "{facts}");
    assert_ne!(facts["gpu_model"], "apple_metal");
    if !std::path::Path::new(sgl_node::tsm::CONFIGFS_TSM_REPORT).exists() {
        assert_eq!(facts["tee_type"], "none", "{facts}");
        assert_eq!(facts["hardware_attestation"], false);
    }
    // service install --print: the unit that would be installed, running this node's start.
    let unit = sgl(
        &devnet,
        &dir,
        &["service", "install", "--print", "--model-name", "echo-1"],
    )
    .await;
    if cfg!(target_os = "linux") {
        assert_eq!(unit.code, 0, "{}", unit.stderr);
        let exec = unit_line(&unit.stdout, "ExecStart=");
        assert!(exec.contains(&format!("\"{}\"", dir.display())), "{exec}");
        assert!(
            exec.contains("\"start\" \"--heartbeat-interval\" \"5\""),
            "{exec}"
        );
        assert!(unit.stdout.contains("ProtectHome=tmpfs"));
    }
    let version = sgl(&devnet, &dir, &["version"]).await;
    assert_eq!(version.code, 0);
    assert!(version.stdout.contains("sgl "), "{}", version.stdout);

    // attest: a signed report bound to the challenge; no hardware root of trust claimed.
    let attest = sgl(&devnet, &dir, &["attest"]).await;
    assert_eq!(attest.code, 0, "{}{}", attest.stdout, attest.stderr);
    assert!(attest.stdout.contains("verified true"), "{}", attest.stdout);
    assert!(attest.stdout.contains("hardware attestation: none"));
    let status = sgl(&devnet, &dir, &["status", "--json"]).await;
    let report: Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(
        report["coordinator"]["attestation_verified"], true,
        "{report}"
    );

    // Prices: within the band (x0.5 to x5 of the suggested price), or refused.
    let shown = sgl(&devnet, &dir, &["price", "show"]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let set = sgl(
        &devnet,
        &dir,
        &[
            "price", "set", "--model", "echo-1", "--input", "0.15", "--output", "0.3",
        ],
    )
    .await;
    assert_eq!(set.code, 0, "{}{}", set.stdout, set.stderr);
    let prices = test_support::http()
        .get(format!(
            "{}/grid/nodes/{}/prices",
            devnet.url(),
            node["node_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        prices["prices"][0]["effective"]["inputPerM"],
        json!(0.15),
        "{prices}"
    );
    let over = sgl(
        &devnet,
        &dir,
        &[
            "price", "set", "--model", "echo-1", "--input", "100", "--output", "0.3",
        ],
    )
    .await;
    assert_ne!(over.code, 0);
    assert!(
        over.stderr.contains("band") || over.stderr.contains("ceiling"),
        "{}",
        over.stderr
    );
    let float = sgl(
        &devnet,
        &dir,
        &[
            "price", "set", "--model", "echo-1", "--input", "1e-1", "--output", "0.3",
        ],
    )
    .await;
    assert_ne!(float.code, 0, "an exponent is not a price");
    // A second change within the coordinator's anti-flap cooldown is refused, saying when.
    let reset = sgl(&devnet, &dir, &["price", "reset", "--model", "echo-1"]).await;
    assert_ne!(reset.code, 0);
    assert!(reset.stderr.contains("retry in"), "{}", reset.stderr);

    // Off grid and back.
    for (command, status) in [("off-grid", "off_grid"), ("on-grid", "")] {
        let run = sgl(&devnet, &dir, &[command]).await;
        assert_eq!(run.code, 0, "{command}: {}", run.stderr);
        let report: Value = serde_json::from_str(
            sgl(&devnet, &dir, &["status", "--json"])
                .await
                .stdout
                .trim(),
        )
        .unwrap();
        if !status.is_empty() {
            assert_eq!(report["coordinator"]["status"], status, "{report}");
        } else {
            assert_ne!(report["coordinator"]["status"], "off_grid", "{report}");
        }
    }

    // start: joins and heartbeats (no engine yet, so no model); SIGTERM stops it cleanly.
    let mut start = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(&dir)
        .args([
            "--orchestrator-url",
            devnet.url(),
            "start",
            "--heartbeat-interval",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let node_id = node["node_id"].as_str().unwrap();
    let mut seen = false;
    for _ in 0..100 {
        let status = test_support::http()
            .get(format!("{}/grid/nodes/{node_id}", devnet.url()))
            .header("x-node-auth", &token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if status["status"] == "online" {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "sgl start never heartbeated");
    let pid = start.id().unwrap().to_string();
    signal("-TERM", &pid);
    let exited = tokio::time::timeout(std::time::Duration::from_secs(20), start.wait())
        .await
        .expect("sgl start did not stop on SIGTERM")
        .unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut start.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    assert!(exited.success(), "{exited:?}: {stderr}");
    assert!(!stderr.contains(&token), "the token leaked into the log");

    // login through the device flow: the code printed, approved on the devnet, registered.
    let second = home.path().join("second");
    let mut login = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(&second)
        .args(["--orchestrator-url", devnet.url(), "login"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = login.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let user_code = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("sgl login printed no code");
        if let Some(code) = line.trim().strip_prefix("and enter the code ") {
            break code.to_owned();
        }
    };
    post(
        &devnet,
        "/devnet/grid/device/approve",
        json!({ "user_code": user_code, "wallet_address": WALLET }),
    )
    .await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), login.wait())
        .await
        .expect("login did not finish")
        .unwrap();
    assert!(status.success());
    assert!(second.join("node.json").exists());
}

/// Where systemd is installed, `systemd-analyze verify` reads the unit without complaint.
#[test]
fn systemd_accepts_the_unit_where_it_is_installed() {
    let Ok(probe) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: no systemd-analyze on this machine");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut spec = sgl_node::service::ServiceSpec::new(exe, vec!["start".into()]);
    spec.model_path = Some(dir.path().join("model.gguf"));
    let path = dir
        .path()
        .join(format!("{}.service", sgl_node::service::LABEL));
    std::fs::write(&path, sgl_node::service::systemd_unit(&spec)).unwrap();
    let verified = std::process::Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(&path)
        .env("XDG_RUNTIME_DIR", dir.path())
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verified.stderr);
    let about_ours: Vec<&str> = complaints
        .lines()
        .filter(|l| l.contains(sgl_node::service::LABEL))
        .collect();
    assert!(about_ours.is_empty(), "systemd-analyze: {complaints}");
}

/// Reads `sgl status --json`.
async fn status_json(devnet: &devnet::Devnet, dir: &Path) -> Value {
    let run = sgl(devnet, dir, &["status", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap()
}

/// Polls `sgl status --json` until `check` holds (at most two minutes).
async fn until_status(
    devnet: &devnet::Devnet,
    dir: &Path,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..240 {
        let report = status_json(devnet, dir).await;
        if check(&report) {
            return report;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!(
        "sgl status never showed: {what}: {}",
        status_json(devnet, dir).await
    );
}

/// What systemd would receive on `NOTIFY_SOCKET`, until `line` arrives.
async fn until_notified(socket: &tokio::net::UnixDatagram, seen: &mut Vec<String>, line: &str) {
    let mut buffer = vec![0u8; 4096];
    while !seen.iter().any(|l| l == line) {
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            socket.recv(&mut buffer),
        )
        .await
        .unwrap_or_else(|_| panic!("systemd was never told {line}; told {seen:?}"))
        .unwrap();
        seen.extend(
            String::from_utf8_lossy(&buffer[..read])
                .lines()
                .map(str::to_owned),
        );
    }
}

#[tokio::test]
async fn sgl_start_serves_a_model_tells_systemd_and_sgl_status_shows_the_engine_recover() {
    let llama = test_support::llama().unwrap();
    let devnet = test_support::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("sgl-node");
    let init = sgl(
        &devnet,
        &dir,
        &["init", "--wallet", WALLET, "--code", &code(&devnet).await],
    )
    .await;
    assert_eq!(init.code, 0, "{}", init.stderr);
    let model = llama.model.display().to_string();
    let server = llama.server.display().to_string();

    // The service runs this model with the llama-server found now, both readable in its
    // sandbox, at the service's default of half the machine.
    let unit = sgl(
        &devnet,
        &dir,
        &[
            "service",
            "install",
            "--print",
            "--model-path",
            &model,
            "--llama-server",
            &server,
        ],
    )
    .await;
    if cfg!(target_os = "linux") {
        assert_eq!(unit.code, 0, "{}", unit.stderr);
        let exec = unit_line(&unit.stdout, "ExecStart=");
        // Absolute with symlinks resolved: the real files.
        let real_model = std::fs::canonicalize(&llama.model).unwrap();
        let real_model = real_model.display().to_string();
        let real_server = std::fs::canonicalize(&llama.server).unwrap();
        let real_server = real_server.display().to_string();
        for word in [
            format!("\"--model-path\" \"{real_model}\""),
            format!("\"--llama-server\" \"{real_server}\""),
            "\"--resource-percent\" \"50\"".to_owned(),
        ] {
            assert!(exec.contains(&word), "{word} not in {exec}");
        }
        let bound = unit_line(&unit.stdout, "BindReadOnlyPaths=");
        let bin_dir = std::fs::canonicalize(llama.server.parent().unwrap()).unwrap();
        let bin_dir = bin_dir.display().to_string();
        assert!(
            bound.contains(&real_model) && bound.contains(&bin_dir),
            "{bound}"
        );
        assert!(unit.stdout.contains("Type=notify"));
    }

    // Bad engine settings are refused before anything starts.
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(&dir)
        .args([
            "--orchestrator-url",
            devnet.url(),
            "start",
            "--model-path",
            &model,
        ])
        .env("SGL_ENGINE", "gpu-magic")
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("SGL_ENGINE=gpu-magic"));
    let cli = home.path().join("llama-cli");
    std::fs::copy(&llama.server, &cli).unwrap();
    let refused = sgl(
        &devnet,
        &dir,
        &[
            "start",
            "--model-path",
            &model,
            "--llama-server",
            &cli.display().to_string(),
        ],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("not an HTTP server"),
        "{}",
        refused.stderr
    );
    assert!(status_json(&devnet, &dir).await["runtime"].is_null());

    // Started as systemd would (its notify socket set): ready, then the engine's status line.
    let socket_path = home.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let log = std::fs::File::create(home.path().join("sgl.log")).unwrap();
    let engine_args = [
        "start",
        "--model-path",
        &model,
        "--llama-server",
        &server,
        "--inference-port",
        "0",
        "--context-size",
        "2048",
        "--heartbeat-interval",
        "1",
    ];
    let mut start = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(&dir)
        .args(["--orchestrator-url", devnet.url()])
        .args(engine_args)
        .env("NOTIFY_SOCKET", &socket_path)
        .env_remove("SGL_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut told = Vec::new();
    until_notified(&notify, &mut told, "READY=1").await;

    let ready = until_status(&devnet, &dir, "the engine ready", |r| {
        r["runtime"]["engine"]["phase"] == "ready"
    })
    .await;
    let runtime = &ready["runtime"];
    assert_eq!(runtime["pid"], start.id().unwrap());
    assert_eq!(ready["runtime_stale"], false);
    assert_eq!(runtime["engine"]["model"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(runtime["engine"]["total_restarts"], 0);
    assert!(
        runtime["engine"]["drained_bytes"].as_u64().unwrap() > 0,
        "{ready}"
    );
    let engine_pid = runtime["engine"]["pid"].as_u64().unwrap().to_string();
    until_notified(
        &notify,
        &mut told,
        "STATUS=engine Ready (SmolLM2-135M-Instruct.Q4_1), 0 jobs running, 0 completed, 0 failed",
    )
    .await;
    until_status(&devnet, &dir, "the heartbeat accepted", |r| {
        r["runtime"]["node"]["last_heartbeat_ok"] == true
    })
    .await;

    // llama-server killed under the node: restarted, and sgl status says what happened.
    signal("-9", &engine_pid);
    let recovered = until_status(&devnet, &dir, "the engine restarted", |r| {
        r["runtime"]["engine"]["total_restarts"] == 1 && r["runtime"]["engine"]["phase"] == "ready"
    })
    .await;
    let last_error = recovered["runtime"]["engine"]["last_error"]
        .as_str()
        .unwrap();
    assert!(last_error.contains("exited"), "{recovered}");
    assert_ne!(
        recovered["runtime"]["engine"]["pid"]
            .as_u64()
            .unwrap()
            .to_string(),
        engine_pid
    );
    let human = sgl(&devnet, &dir, &["status"]).await;
    assert!(
        human.stdout.contains("engine:      Ready"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("1 in all"), "{}", human.stdout);

    // A second node on the same identity is refused while this one runs.
    let second = sgl(&devnet, &dir, &engine_args).await;
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains("another `sgl start`"),
        "{}",
        second.stderr
    );

    // SIGTERM: drains, stops llama-server, tells systemd, and leaves no runtime behind.
    let new_engine = recovered["runtime"]["engine"]["pid"].as_u64().unwrap();
    let pid = start.id().unwrap().to_string();
    signal("-TERM", &pid);
    let exited = tokio::time::timeout(std::time::Duration::from_secs(30), start.wait())
        .await
        .expect("sgl start did not stop on SIGTERM")
        .unwrap();
    let log = std::fs::read_to_string(home.path().join("sgl.log")).unwrap();
    assert!(exited.success(), "{exited:?}: {log}");
    until_notified(&notify, &mut told, "STOPPING=1").await;
    assert!(
        !Path::new(&format!("/proc/{new_engine}")).exists(),
        "llama-server outlived the node"
    );
    assert!(status_json(&devnet, &dir).await["runtime"].is_null());
    assert!(log.contains("llama-server is healthy"), "{log}");

    // Killed hard, the node leaves its llama-server behind; the next start stops it.
    let mut start = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(&dir)
        .args(["--orchestrator-url", devnet.url()])
        .args(engine_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let running = until_status(&devnet, &dir, "the engine ready", |r| {
        r["runtime"]["engine"]["phase"] == "ready" && r["runtime"]["pid"] == start.id().unwrap()
    })
    .await;
    let orphan = running["runtime"]["engine"]["pid"].as_u64().unwrap();
    start.kill().await.unwrap();
    start.wait().await.unwrap();
    assert!(Path::new(&format!("/proc/{orphan}")).exists());
    let stale = status_json(&devnet, &dir).await;
    assert_eq!(stale["runtime_stale"], true, "{stale}");
    let human = sgl(&devnet, &dir, &["status"]).await;
    assert!(human.stdout.contains("NOT RUNNING"), "{}", human.stdout);
    let again_log = home.path().join("again.log");
    let mut again = tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
        .arg("--config-dir")
        .arg(&dir)
        .args(["--orchestrator-url", devnet.url()])
        .args(engine_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&again_log).unwrap())
        // As at a terminal: a process group that a Ctrl-C is sent to.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = until_status(&devnet, &dir, "the engine ready again", |r| {
        r["runtime"]["engine"]["phase"] == "ready" && r["runtime"]["pid"] == again.id().unwrap()
    })
    .await;
    // The engine leads a process group of its own (`/proc/<pid>/stat`'s fifth field).
    let engine = ready["runtime"]["engine"]["pid"].as_u64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{engine}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let group: u64 = after_name.split(' ').nth(2).unwrap().parse().unwrap();
    assert_eq!(group, engine, "{stat}");
    let gone = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        // Once stopped it is gone, or a zombie with no command line until init reaps it.
        while Path::new(&format!("/proc/{orphan}/cmdline")).exists()
            && std::fs::read(format!("/proc/{orphan}/cmdline")).is_ok_and(|c| !c.is_empty())
        {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the orphaned llama-server {orphan} is still running"
    );
    // Ctrl-C at the terminal (SIGINT to the whole foreground group) reaches sgl, not its
    // engine (a group of its own): the node stops it after draining, never seeing it crash.
    let group = format!("-{}", again.id().unwrap());
    signal("-INT", &group);
    let exited = tokio::time::timeout(std::time::Duration::from_secs(30), again.wait())
        .await
        .expect("sgl start did not stop on Ctrl-C")
        .unwrap();
    let log = std::fs::read_to_string(&again_log).unwrap();
    assert!(exited.success(), "{exited:?}: {log}");
    assert!(!log.contains("restarting"), "{log}");
    assert!(log.contains("llama-server stopped"), "{log}");
}

#[tokio::test]
async fn a_relative_config_dir_is_taken_from_where_sgl_runs() {
    let devnet = test_support::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>| {
        let home = home.path().to_path_buf();
        let url = devnet.url().to_owned();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sgl"))
                .current_dir(&home)
                .args(["--config-dir", "cfg", "--orchestrator-url", &url])
                .args(args)
                .output()
                .await
                .unwrap()
        }
    };
    let code = code(&devnet).await;
    let init = run(vec![
        "init".into(),
        "--wallet".into(),
        WALLET.into(),
        "--code".into(),
        code,
    ])
    .await;
    assert!(init.status.success(), "{init:?}");
    let node: Value =
        serde_json::from_slice(&std::fs::read(home.path().join("cfg/node.json")).unwrap()).unwrap();
    let keypair = node["keypair_path"].as_str().unwrap();
    assert!(Path::new(keypair).is_absolute(), "{node}");
    let status = run(vec!["status".into(), "--json".into()]).await;
    assert!(status.status.success(), "{status:?}");
}
