//! `sgl`: the node operator's command for the confidential inference grid
//! (`shared/reference/grid-and-node.md` §5.1). The work is done by the `sgl_node` library;
//! this binary reads flags, the config directory and signals, and prints.
//!
//! Commands: `init` (register with a wallet; `--code` carries the single-use registration
//! code a coordinator may require, as the devnet's does), `login` (device login, or headless
//! with `--code` and `--wallet`), `start` (heartbeat, WebSocket and jobs until SIGTERM or
//! Ctrl-C, then a graceful drain), `status` (`--json` for dashboards: `sgl_node::status`),
//! `version`, `off-grid`, `on-grid`, `attest`, `price show|set|reset`.
//!
//! This build has no inference engine yet: `start` registers and heartbeats but advertises
//! no model and fails any job it is given (llama.cpp comes with the next issue).
//!
//! Exit codes: 0 success, 1 an error, 2 usage.

// A command-line program prints: its output is stdout, its diagnostics stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use sgl_node::hardware::{self, Hardware};
use sgl_node::register::{self, Registration};
use sgl_node::status::StatusReport;
use sgl_node::{
    ConfigDir, Coordinator, DEFAULT_ORCHESTRATOR_URL, Identity, Node, NodeClient, NodeConfig,
    NodeFile, OrchestratorUrl,
};

/// Run a node of the confidential inference grid.
#[derive(Debug, Parser)]
#[command(name = "sgl", version, about)]
struct Cli {
    /// The coordinator (default: the one in node.json, else `https://grid.x402compute.cc`).
    /// HTTPS only, except http:// to localhost, 127.0.0.1 or ::1.
    #[arg(long, global = true, value_name = "URL")]
    orchestrator_url: Option<String>,
    /// Where node.json and keypair.json live (default: `<platform config dir>/sgl-node`).
    #[arg(long, global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// More log output on stderr (-v debug, -vv trace; `SGL_LOG` overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this node with a wallet (no proof of ownership: prefer `login`).
    Init {
        /// The operator's Solana wallet.
        #[arg(long)]
        wallet: String,
        /// A single-use registration code (required by coordinators that check them, such as
        /// the devnet's).
        #[arg(long)]
        code: Option<String>,
        #[command(flatten)]
        node: NodeFlags,
    },
    /// Register through device login (approve in the browser), or headless with a
    /// registration code and its wallet.
    Login {
        /// A single-use registration code (headless; needs --wallet).
        #[arg(long, requires = "wallet")]
        code: Option<String>,
        /// The wallet the code was issued to (headless; needs --code).
        #[arg(long, requires = "code")]
        wallet: Option<String>,
        #[command(flatten)]
        node: NodeFlags,
    },
    /// Serve: heartbeat, take jobs, until SIGTERM or Ctrl-C (then finish or hand back the
    /// running jobs).
    Start {
        /// The model name to advertise (served once an engine is available).
        #[arg(long)]
        model_name: Option<String>,
        /// Seconds between heartbeats.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        heartbeat_interval: u64,
        /// Jobs at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        max_jobs: u32,
        /// Seconds running jobs may take to finish at shutdown before they are handed back.
        #[arg(long, default_value_t = 30)]
        drain_timeout: u64,
    },
    /// This node's identity and what the coordinator says about it.
    Status {
        /// One JSON object (stable field names; see the sgl_node::status docs).
        #[arg(long)]
        json: bool,
    },
    /// Version, binary SHA-256, config directory and coordinator (offline).
    Version,
    /// Take no new jobs (running ones finish; no downtime penalty).
    OffGrid,
    /// Take jobs again.
    OnGrid,
    /// Prove the node key to the coordinator and send a signed, challenge-bound report of the
    /// machine (no hardware attestation is claimed).
    Attest,
    /// This node's prices (USD per 1M tokens).
    #[command(subcommand)]
    Price(PriceCommand),
    /// Run `sgl start` as a service: a systemd user unit (Linux) or a launchd agent (macOS).
    #[command(subcommand)]
    Service(ServiceCommand),
    /// What this machine has, as the node reads it (offline): OS, kernel, CPU cores, RAM,
    /// GPU, and the TEE type it can honestly report.
    Detect {
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct NodeFlags {
    /// The TEE type to register (default: `apple_se` on Apple silicon, else `none`).
    #[arg(long)]
    tee_type: Option<String>,
    /// Models to seed the registration with, comma-separated.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Write the hardened user unit and enable it (`systemctl --user enable --now`).
    Install {
        /// The model name to advertise.
        #[arg(long)]
        model_name: Option<String>,
        /// The model file (made readable inside the sandbox).
        #[arg(long)]
        model_path: Option<PathBuf>,
        /// Seconds between heartbeats.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        heartbeat_interval: u64,
        /// Jobs at once.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        max_jobs: u32,
        /// Print the unit and change nothing.
        #[arg(long)]
        print: bool,
    },
    /// Stop and disable the service, and remove its unit.
    Uninstall,
    /// `systemctl --user status` of the service.
    Status,
}

#[derive(Debug, Subcommand)]
enum PriceCommand {
    /// The prices the coordinator holds for this node.
    Show,
    /// Set a model's price.
    Set {
        /// The model.
        #[arg(long)]
        model: String,
        /// USD per 1M input tokens, as decimal digits (0.15).
        #[arg(long)]
        input: String,
        /// USD per 1M output tokens, as decimal digits.
        #[arg(long)]
        output: String,
    },
    /// Back to the suggested price.
    Reset {
        /// The model.
        #[arg(long)]
        model: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match (cli.verbose, &cli.command) {
        (0, Command::Start { .. }) => "info",
        (0, _) => "warn",
        (1, _) => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SGL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .init();
    sgl_node::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("sgl: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sgl: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn default_config_dir() -> Result<PathBuf> {
    use etcetera::BaseStrategy as _;
    let strategy = etcetera::base_strategy::choose_native_strategy()
        .context("cannot find the home directory; give --config-dir")?;
    // macOS keeps it in Application Support, as the reference node does.
    let base = match cfg!(target_os = "macos") {
        true => strategy.data_dir(),
        false => strategy.config_dir(),
    };
    Ok(base.join("sgl-node"))
}

/// The arguments the service runs `sgl` with.
fn start_args(
    dir: &ConfigDir,
    url_flag: Option<&str>,
    model_name: Option<String>,
    heartbeat_interval: u64,
    max_jobs: u32,
) -> Result<Vec<String>> {
    let file = dir.load().ok().map(|(file, _)| file);
    let url = orchestrator(url_flag, file.as_ref())?;
    let mut args = vec![
        "--orchestrator-url".to_owned(),
        url.to_string(),
        "--config-dir".to_owned(),
        dir.path().display().to_string(),
        "start".to_owned(),
        "--heartbeat-interval".to_owned(),
        heartbeat_interval.to_string(),
        "--max-jobs".to_owned(),
        max_jobs.to_string(),
    ];
    if let Some(name) = model_name {
        args.extend(["--model-name".to_owned(), name]);
    }
    Ok(args)
}

/// Runs `program ARGS`, failing with its stderr.
fn run_tool(program: &str, args: &[&str]) -> Result<()> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `launchctl ARGS`, failing with its stderr.
fn launchctl(args: &[&str]) -> Result<()> {
    run_tool("launchctl", args)
}

/// `sgl service` on macOS: a launchd agent.
fn launchd_service(command: ServiceCommand, dir: &ConfigDir, url_flag: Option<&str>) -> Result<()> {
    use etcetera::BaseStrategy as _;
    let strategy = etcetera::base_strategy::choose_native_strategy()
        .context("cannot find the home directory")?;
    let home = strategy.home_dir().to_path_buf();
    let path = sgl_node::service::launchd_plist_path(&home);
    let uid = std::process::Command::new("id")
        .arg("-u")
        .output()
        .context("cannot run id -u")?;
    let domain = format!("gui/{}", String::from_utf8_lossy(&uid.stdout).trim());
    let service = format!("{domain}/{}", sgl_node::service::LABEL);
    match command {
        ServiceCommand::Install {
            model_name,
            model_path,
            heartbeat_interval,
            max_jobs,
            print,
        } => {
            let exe = std::env::current_exe().context("cannot find this executable")?;
            let args = start_args(dir, url_flag, model_name, heartbeat_interval, max_jobs)?;
            let mut spec = sgl_node::service::ServiceSpec::new(exe, args);
            spec.model_path = model_path;
            let agent = sgl_node::service::launchd_plist(&spec, &home)?;
            if print {
                print!("{agent}");
                return Ok(());
            }
            if !dir.is_registered() {
                bail!("register first (`sgl init` or `sgl login`): the service runs `sgl start`");
            }
            let parent = path.parent().context("the agent path has no directory")?;
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            std::fs::write(&path, agent)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let plist = path.display().to_string();
            // Not loaded yet is fine.
            let _ = launchctl(&["bootout", &service]);
            launchctl(&["bootstrap", &domain, &plist])?;
            launchctl(&["enable", &service])?;
            launchctl(&["kickstart", "-k", &service])?;
            println!("installed {plist}; logs: ~/Library/Logs/sgl-node.log");
            Ok(())
        }
        ServiceCommand::Uninstall => {
            let _ = launchctl(&["bootout", &service]);
            match std::fs::remove_file(&path) {
                Ok(()) => println!("removed {}", path.display()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    println!("no agent at {}", path.display());
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
            Ok(())
        }
        ServiceCommand::Status => launchctl(&["print", &service]),
    }
}

/// `systemctl --user ARGS`, failing with its stderr.
fn systemctl(args: &[&str]) -> Result<()> {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    run_tool("systemctl", &all)
}

fn service(command: ServiceCommand, dir: &ConfigDir, url_flag: Option<&str>) -> Result<()> {
    use etcetera::BaseStrategy as _;
    if cfg!(target_os = "macos") {
        return launchd_service(command, dir, url_flag);
    }
    if !cfg!(target_os = "linux") {
        bail!(
            "`sgl service` writes a systemd user unit (Linux) or a launchd agent (macOS); run `sgl start` under your own supervisor here"
        );
    }
    let strategy = etcetera::base_strategy::choose_native_strategy()
        .context("cannot find the home directory")?;
    let unit_path = sgl_node::service::systemd_unit_path(&strategy.config_dir());
    match command {
        ServiceCommand::Install {
            model_name,
            model_path,
            heartbeat_interval,
            max_jobs,
            print,
        } => {
            let exe = std::env::current_exe().context("cannot find this executable")?;
            let args = start_args(dir, url_flag, model_name, heartbeat_interval, max_jobs)?;
            let mut spec = sgl_node::service::ServiceSpec::new(exe, args);
            spec.model_path = model_path;
            let unit = sgl_node::service::systemd_unit(&spec);
            if print {
                print!("{unit}");
                return Ok(());
            }
            if !dir.is_registered() {
                bail!("register first (`sgl init` or `sgl login`): the service runs `sgl start`");
            }
            let parent = unit_path
                .parent()
                .context("the unit path has no directory")?;
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            std::fs::create_dir_all(strategy.data_dir().join("sgl-node"))
                .context("cannot create the log directory")?;
            std::fs::write(&unit_path, unit)
                .with_context(|| format!("cannot write {}", unit_path.display()))?;
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", sgl_node::service::LABEL])?;
            println!("installed {}", unit_path.display());
            println!(
                "logs: ~/.local/share/sgl-node/sgl-node.log; to keep it running after you log out: loginctl enable-linger"
            );
            Ok(())
        }
        ServiceCommand::Uninstall => {
            // Stopping fails when it was never started: go on and remove the unit.
            let _ = systemctl(&["disable", "--now", sgl_node::service::LABEL]);
            match std::fs::remove_file(&unit_path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    println!("no unit at {}", unit_path.display());
                    return Ok(());
                }
                Err(error) => {
                    return Err(error)
                        .with_context(|| format!("cannot remove {}", unit_path.display()));
                }
            }
            systemctl(&["daemon-reload"])?;
            println!("removed {}", unit_path.display());
            Ok(())
        }
        ServiceCommand::Status => {
            let status = std::process::Command::new("systemctl")
                .args(["--user", "status", "--no-pager", sgl_node::service::LABEL])
                .status()
                .context("cannot run systemctl (is this a systemd machine?)")?;
            match status.code() {
                Some(0) => Ok(()),
                _ => bail!("the service is not running (systemctl status says so above)"),
            }
        }
    }
}

/// The coordinator: the flag, else node.json's, else the default.
fn orchestrator(flag: Option<&str>, file: Option<&NodeFile>) -> Result<OrchestratorUrl> {
    let text = flag
        .or(file.map(|f| f.orchestrator_url.as_str()))
        .unwrap_or(DEFAULT_ORCHESTRATOR_URL);
    Ok(OrchestratorUrl::parse(text)?)
}

/// The registered node and an authenticated client.
fn registered(
    cli_url: Option<&str>,
    dir: &ConfigDir,
) -> Result<(NodeFile, Identity, OrchestratorUrl, NodeClient)> {
    let (file, identity) = dir.identity()?;
    let url = orchestrator(cli_url, Some(&file))?;
    let client =
        Coordinator::new(url.clone())?.with_node(&identity.node_id, identity.token.clone());
    Ok((file, identity, url, client))
}

async fn run(cli: Cli) -> Result<()> {
    let dir = ConfigDir::new(match cli.config_dir {
        Some(dir) => dir,
        None => default_config_dir()?,
    });
    let url_flag = cli.orchestrator_url.as_deref();
    match cli.command {
        Command::Init { wallet, code, node } => {
            dir.ensure_unregistered()?;
            let coordinator = Coordinator::new(orchestrator(url_flag, None)?)?;
            let registration = registration(wallet, code, node);
            join(&coordinator, &dir, &registration).await
        }
        Command::Login { code, wallet, node } => {
            dir.ensure_unregistered()?;
            let coordinator = Coordinator::new(orchestrator(url_flag, None)?)?;
            let (wallet, code) = match (wallet, code) {
                (Some(wallet), Some(code)) => (wallet, code),
                (None, None) => {
                    let approval = device_login(&coordinator).await?;
                    (approval.wallet_address, approval.registration_code)
                }
                _ => bail!("give both --code and --wallet, or neither (device login)"),
            };
            let registration = registration(wallet, Some(code), node);
            join(&coordinator, &dir, &registration).await
        }
        Command::Start {
            model_name,
            heartbeat_interval,
            max_jobs,
            drain_timeout,
        } => {
            let (_, identity, url, _) = registered(url_flag, &dir)?;
            if let Some(model) = model_name {
                tracing::warn!(
                    model,
                    "this build has no inference engine: no model is advertised and jobs are failed"
                );
            }
            let mut config = NodeConfig::new(url, identity);
            config.heartbeat_interval = Duration::from_secs(heartbeat_interval);
            config.slots = max_jobs;
            config.drain_timeout = Duration::from_secs(drain_timeout);
            config.binary_hash = hardware::binary_hash();
            config.persist_token = Some(dir.token_persister());
            // The engine seam: the llama.cpp engines plug in here (next issue).
            let node = Node::start(config, None)?;
            wait_for_signal().await?;
            tracing::info!("stopping: finishing or handing back running jobs");
            let last = node.shutdown().await;
            tracing::info!(
                completed = last.completed,
                failed = last.failed,
                handed_back = last.handed_back,
                "stopped"
            );
            Ok(())
        }
        Command::Status { json } => {
            let (file, identity, url, client) = registered(url_flag, &dir)?;
            let (coordinator, coordinator_error) = match client.status().await {
                Ok(status) => (Some(status), None),
                Err(error) => (None, Some(error.to_string())),
            };
            let report = StatusReport {
                node_id: identity.node_id.clone(),
                wallet_address: file.wallet_address.clone(),
                tee_type: file.tee_type.clone(),
                orchestrator_url: url.to_string(),
                public_key: identity.keypair.public_b58(),
                encryption_public_key: identity.keypair.encryption_public_b58(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                coordinator,
                coordinator_error,
            };
            match json {
                true => println!("{}", serde_json::to_string(&report)?),
                false => print_status(&report, &dir),
            }
            Ok(())
        }
        Command::Service(command) => service(command, &dir, url_flag),
        Command::Detect { json } => {
            let hardware = Hardware::detect();
            let tsm =
                sgl_node::tsm::provider(std::path::Path::new(sgl_node::tsm::CONFIGFS_TSM_REPORT));
            let tee_type = tsm
                .as_deref()
                .and_then(sgl_node::tsm::tee_type)
                .unwrap_or(hardware::default_tee_type());
            let report = serde_json::json!({
                "os": hardware.os,
                "kernel_version": hardware.kernel_version,
                "cpu_cores": hardware.cpu_cores,
                "memory_bytes": hardware.memory_bytes,
                "gpu_model": hardware.gpu_model,
                "tee_type": tee_type,
                "configfs_tsm_provider": tsm,
                "hardware_attestation": tsm.is_some(),
            });
            if json {
                println!("{report}");
                return Ok(());
            }
            println!("os:          {} {}", hardware.os, hardware.kernel_version);
            println!("cpu cores:   {}", hardware.cpu_cores);
            println!(
                "memory:      {} bytes ({:.2} GB)",
                hardware.memory_bytes,
                hardware.ram_gb()
            );
            println!("gpu:         {}", hardware.gpu_model);
            match &tsm {
                Some(provider) => println!("tee:         {tee_type} (configfs-tsm {provider})"),
                None => {
                    println!("tee:         {tee_type} (no configfs-tsm: no hardware attestation)")
                }
            }
            Ok(())
        }
        Command::Version => {
            let file = dir.load().ok().map(|(file, _)| file);
            let url = orchestrator(url_flag, file.as_ref())?;
            println!("sgl {}", env!("CARGO_PKG_VERSION"));
            println!(
                "binary sha256: {}",
                hardware::binary_hash().unwrap_or_else(|| "unreadable".into())
            );
            println!("config dir: {}", dir.path().display());
            println!("orchestrator: {url}");
            Ok(())
        }
        Command::OffGrid | Command::OnGrid => {
            let off = matches!(cli.command, Command::OffGrid);
            let (_, _, _, client) = registered(url_flag, &dir)?;
            client.set_off_grid(off).await?;
            match off {
                true => println!("off grid: no new jobs (running jobs finish)"),
                false => println!("on grid: taking jobs"),
            }
            Ok(())
        }
        Command::Attest => {
            let (_, identity, _, client) = registered(url_flag, &dir)?;
            let binary_hash = hardware::binary_hash()
                .context("cannot read this executable to hash it for the report")?;
            let hardware = Hardware::detect();
            let (report, verdict) =
                hardware::attest(&client, &identity.keypair, &hardware, &binary_hash).await?;
            println!(
                "sent a signed report: tee_type {}, {} cores, {} bytes of RAM, GPU {}, kernel {}",
                report.tee_type,
                report.cpu_cores,
                report.memory_bytes,
                report.gpu_model,
                if report.kernel_version.is_empty() {
                    "unknown"
                } else {
                    &report.kernel_version
                }
            );
            println!("hardware attestation: none (the report is self-reported)");
            println!(
                "coordinator: verified {}, status {}",
                verdict.verified, verdict.status
            );
            if !verdict.verified {
                bail!("the coordinator did not verify the attestation");
            }
            Ok(())
        }
        Command::Price(command) => {
            let (_, _, _, client) = registered(url_flag, &dir)?;
            let answer = match command {
                PriceCommand::Show => client.prices().await?,
                PriceCommand::Set {
                    model,
                    input,
                    output,
                } => {
                    let body = grid_proto::node::SetPrice {
                        model,
                        input_per_m: Some(sgl_node::price::decimal_price(&input)?),
                        output_per_m: Some(sgl_node::price::decimal_price(&output)?),
                        reset: false,
                    };
                    client.set_price(&body).await?
                }
                PriceCommand::Reset { model } => {
                    let body = grid_proto::node::SetPrice {
                        model,
                        input_per_m: None,
                        output_per_m: None,
                        reset: true,
                    };
                    client.set_price(&body).await?
                }
            };
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
    }
}

fn registration(wallet: String, code: Option<String>, flags: NodeFlags) -> Registration {
    let mut registration = Registration::new(wallet);
    registration.registration_code = code;
    if let Some(tee_type) = flags.tee_type {
        registration.tee_type = tee_type;
    }
    registration.models = flags
        .models
        .into_iter()
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    registration
}

async fn join(
    coordinator: &Coordinator,
    dir: &ConfigDir,
    registration: &Registration,
) -> Result<()> {
    let node = register::register(coordinator, dir, registration, &Hardware::detect()).await?;
    println!("registered node {}", node.node_id);
    println!("config: {}", dir.node_path().display());
    println!("next: `sgl attest`, then `sgl start`");
    Ok(())
}

async fn device_login(coordinator: &Coordinator) -> Result<register::Approval> {
    let start = coordinator
        .device_start()
        .await
        .context("cannot start device login")?;
    println!("To approve this node, open {}", start.verify_url);
    println!("and enter the code {}", start.user_code);
    open_browser(&start.verify_url);
    let approval = register::wait_for_approval(coordinator, &start).await?;
    println!("approved by {}", approval.wallet_address);
    Ok(approval)
}

/// Opens `url` in the desktop's browser when there is one (errors are ignored: the URL is
/// printed anyway).
fn open_browser(url: &str) {
    let opener = match cfg!(target_os = "macos") {
        true => "open",
        false => "xdg-open",
    };
    if !cfg!(target_os = "macos")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        return;
    }
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

fn print_status(report: &StatusReport, dir: &ConfigDir) {
    println!("node:          {}", report.node_id);
    println!("wallet:        {}", report.wallet_address);
    println!("tee type:      {}", report.tee_type);
    println!("orchestrator:  {}", report.orchestrator_url);
    println!("node key:      {}", report.public_key);
    println!("encryption:    {}", report.encryption_public_key);
    println!("config dir:    {}", dir.path().display());
    match (&report.coordinator, &report.coordinator_error) {
        (Some(status), _) => {
            println!("status:        {}", status.status);
            println!("attested:      {}", status.attestation_verified);
            if let Some(score) = status.reputation_score {
                println!("reputation:    {score}");
            }
            println!(
                "jobs:          {} completed, {} failed",
                status.jobs_completed, status.jobs_failed
            );
        }
        (None, Some(error)) => println!("coordinator:   unavailable ({error})"),
        (None, None) => {}
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn wait_for_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result.context("cannot watch Ctrl-C")?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch Ctrl-C")?;
    Ok(())
}
