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
//! `start --model-path M.gguf` serves the model through a supervised `llama-server`
//! (`sgl_node::llama`; the binary from `--llama-server`, `SGL_LLAMA_SERVER` or `PATH`; the
//! engine from `SGL_ENGINE=server`, the only one this build has). Without `--model-path` it
//! registers and heartbeats but advertises no model. While it runs it keeps `runtime.json` in
//! the config directory (its jobs and its engine's phase), which `status` shows, and under
//! systemd it reports readiness and a status line (`sd-notify`). If the engine gives up after
//! its bounded restarts, `start` drains and exits 1, for the service manager to restart it.
//!
//! Exit codes: 0 success, 1 an error, 2 usage.

// A command-line program prints: its output is stdout, its diagnostics stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::sync::Arc;

use sgl_node::hardware::{self, Hardware};
use sgl_node::llama::{EngineOptions, EngineStatus, LlamaServer, Phase};
use sgl_node::register::{self, Registration};
use sgl_node::status::RuntimeReport;
use sgl_node::status::StatusReport;
use sgl_node::{
    ConfigDir, Coordinator, DEFAULT_ORCHESTRATOR_URL, Identity, Node, NodeClient, NodeConfig,
    NodeFile, NodeHandle, NodeSnapshot, OrchestratorUrl,
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
        #[command(flatten)]
        engine: EngineFlags,
        /// Seconds between heartbeats.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        heartbeat_interval: u64,
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

/// The engine's flags (`start`, `service install`).
#[derive(Clone, Debug, clap::Args)]
struct EngineFlags {
    /// The GGUF model to serve. Without it the node registers and heartbeats but takes no
    /// jobs.
    #[arg(long, value_name = "GGUF")]
    model_path: Option<PathBuf>,
    /// The model name to advertise (default: the GGUF file's stem).
    #[arg(long)]
    model_name: Option<String>,
    /// The llama-server binary (default: SGL_LLAMA_SERVER, else llama-server on PATH, then
    /// /usr/local/bin, /opt/homebrew/bin, /opt/sgl/bin; never llama-cli).
    #[arg(long, value_name = "PATH")]
    llama_server: Option<PathBuf>,
    /// The loopback port llama-server listens on (a free one is taken when it is busy).
    #[arg(long, default_value_t = 8081)]
    inference_port: u16,
    /// How much of the machine to use, 1 to 100: threads = cores × percent (rounded up), all
    /// GPU layers from 50 (default 100 for start, 50 for service install).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100))]
    resource_percent: Option<u8>,
    /// CPU threads (overrides the preset).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Layers offloaded to the GPU (overrides the preset).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=1000))]
    gpu_layers: Option<u32>,
    /// Tokens of context per slot.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(512..=131_072))]
    context_size: u32,
    /// Tokens per batch.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    batch_size: u32,
    /// Jobs at once: 1 = from memory (at most 2 with a model); above 1 caps that.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    max_jobs: u32,
    /// Accepted for the reference node's scripts; streaming is always on.
    #[arg(long, hide = true)]
    enable_streaming: bool,
}

impl EngineFlags {
    /// The llama-server to run: the flag, else `SGL_LLAMA_SERVER`, else the search.
    fn llama_server(&self) -> Result<PathBuf> {
        let env = std::env::var_os("SGL_LLAMA_SERVER").filter(|v| !v.is_empty());
        let explicit = self.llama_server.clone().or(env.map(PathBuf::from));
        let path = std::env::var_os("PATH");
        let found = sgl_node::llama::find_llama_server(explicit.as_deref(), path.as_deref())?;
        // Absolute and with symlinks resolved: the service unit runs and binds the real file.
        std::fs::canonicalize(&found).with_context(|| format!("cannot resolve {}", found.display()))
    }

    /// The engine's options, when a model is given.
    fn options(&self, default_percent: u8) -> Result<Option<EngineOptions>> {
        let Some(model_path) = &self.model_path else {
            return Ok(None);
        };
        match std::env::var("SGL_ENGINE").ok().as_deref() {
            None | Some("" | "server") => {}
            Some("inprocess") => bail!(
                "SGL_ENGINE=inprocess: this build has no in-process engine; unset SGL_ENGINE (or set it to server)"
            ),
            Some(other) => bail!("SGL_ENGINE={other} is not an engine; use server"),
        }
        // Absolute, symlinks resolved: the unit binds and names the real file.
        let model_path = std::fs::canonicalize(model_path).with_context(|| {
            format!(
                "cannot read the model {}; give --model-path a GGUF file",
                model_path.display()
            )
        })?;
        let mut options = EngineOptions::new(model_path, self.llama_server()?);
        options.model_name = self.model_name.clone();
        options.port = self.inference_port;
        options.resource_percent = self.resource_percent.unwrap_or(default_percent);
        options.threads = self.threads;
        options.gpu_layers = self.gpu_layers;
        options.context = self.context_size;
        options.batch = self.batch_size;
        options.max_jobs = self.max_jobs;
        Ok(Some(options))
    }
}

#[derive(Debug, Subcommand)]
enum ServiceCommand {
    /// Write the hardened user unit and enable it (`systemctl --user enable --now`).
    Install {
        #[command(flatten)]
        engine: EngineFlags,
        /// Seconds between heartbeats.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        heartbeat_interval: u64,
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
        // A service's log file gets no colour codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

/// The arguments the service runs `sgl` with: the coordinator, the config directory and
/// `start` with the engine flags (the llama-server found now, so the service does not depend
/// on its `PATH`), and the model path and llama-server directory to bind into its sandbox.
fn service_spec(
    dir: &ConfigDir,
    url_flag: Option<&str>,
    engine: &EngineFlags,
    heartbeat_interval: u64,
) -> Result<sgl_node::service::ServiceSpec> {
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
        engine.max_jobs.to_string(),
        "--inference-port".to_owned(),
        engine.inference_port.to_string(),
        "--context-size".to_owned(),
        engine.context_size.to_string(),
        "--batch-size".to_owned(),
        engine.batch_size.to_string(),
        "--resource-percent".to_owned(),
        engine.resource_percent.unwrap_or(50).to_string(),
    ];
    if let Some(threads) = engine.threads {
        args.extend(["--threads".to_owned(), threads.to_string()]);
    }
    if let Some(layers) = engine.gpu_layers {
        args.extend(["--gpu-layers".to_owned(), layers.to_string()]);
    }
    if let Some(name) = &engine.model_name {
        args.extend(["--model-name".to_owned(), name.clone()]);
    }
    let options = engine.options(50)?;
    if let Some(options) = &options {
        args.extend([
            "--model-path".to_owned(),
            options.model_path.display().to_string(),
            "--llama-server".to_owned(),
            options.llama_server.display().to_string(),
        ]);
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut spec = sgl_node::service::ServiceSpec::new(exe, args);
    if let Some(options) = options {
        // The binary's real directory, and a `lib` beside it (Homebrew's and most prefixes'
        // layout), so the sandbox can load it.
        if let Some(bin) = options.llama_server.parent() {
            spec.engine_dirs.push(bin.to_path_buf());
            if let Some(lib) = bin.parent().map(|prefix| prefix.join("lib"))
                && lib.is_dir()
            {
                spec.engine_dirs.push(lib);
            }
        }
        spec.model_path = Some(options.model_path);
    }
    Ok(spec)
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
            engine,
            heartbeat_interval,
            print,
        } => {
            let spec = service_spec(dir, url_flag, &engine, heartbeat_interval)?;
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
            engine,
            heartbeat_interval,
            print,
        } => {
            let spec = service_spec(dir, url_flag, &engine, heartbeat_interval)?;
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
    // Absolute: node.json records the key's path, and a service runs from another directory.
    let dir = ConfigDir::new(match cli.config_dir {
        Some(dir) => std::path::absolute(&dir)
            .with_context(|| format!("cannot resolve --config-dir {}", dir.display()))?,
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
            engine,
            heartbeat_interval,
            drain_timeout,
        } => {
            let (_, identity, url, _) = registered(url_flag, &dir)?;
            let mut config = NodeConfig::new(url, identity);
            config.heartbeat_interval = Duration::from_secs(heartbeat_interval);
            config.slots = engine.max_jobs;
            config.drain_timeout = Duration::from_secs(drain_timeout);
            config.binary_hash = hardware::binary_hash();
            config.persist_token = Some(dir.token_persister());
            // One node per identity: the lock is held until this process ends.
            let _lock = lock_config_dir(&dir)?;
            // Holding it, any earlier node is gone; a llama-server it left is stopped.
            if let Some(engine) = dir.load_runtime().and_then(|previous| previous.engine) {
                stop_orphaned_engine(&engine).await;
            }
            let server = match engine.options(100)? {
                Some(options) => {
                    let plan = sgl_node::llama::plan(&options, &Hardware::detect())?;
                    config.slots = plan.slots;
                    tracing::info!(
                        model = %plan.command.model_name,
                        llama_server = %plan.command.binary.display(),
                        slots = plan.slots,
                        threads = plan.command.threads,
                        gpu_layers = plan.command.gpu_layers,
                        context = plan.command.context,
                        "starting the engine"
                    );
                    Some(Arc::new(LlamaServer::spawn(&plan)))
                }
                None => {
                    tracing::warn!(
                        "no --model-path: the node heartbeats but advertises no model and takes no jobs"
                    );
                    None
                }
            };
            let node = Node::start(
                config,
                server.clone().map(|s| s as Arc<dyn sgl_node::Engine>),
            )?;
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            let gave_up = tokio::select! {
                signal = wait_for_signal() => {
                    signal?;
                    None
                }
                reason = report_runtime(&dir, &node, server.as_deref()) => Some(reason),
            };
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
            tracing::info!("stopping: finishing or handing back running jobs");
            let last = node.shutdown().await;
            if let Some(server) = &server {
                server.stop().await;
            }
            tracing::info!(
                completed = last.completed,
                failed = last.failed,
                handed_back = last.handed_back,
                "stopped"
            );
            match gave_up {
                None => {
                    let _ = std::fs::remove_file(dir.runtime_path());
                    Ok(())
                }
                Some(reason) => {
                    write_runtime(&dir, &last, server.as_deref());
                    bail!(
                        "the engine {reason}; exiting for the service manager to restart the node"
                    )
                }
            }
        }
        Command::Status { json } => {
            let (file, identity, url, client) = registered(url_flag, &dir)?;
            let runtime = dir.load_runtime();
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
                runtime_stale: runtime
                    .as_ref()
                    .is_some_and(|r| r.is_stale(unix_ms()) || !process_alive(r.pid)),
                runtime,
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
    let Some(runtime) = &report.runtime else {
        println!("runtime:       not running (no sgl start has reported here)");
        return;
    };
    let state = match report.runtime_stale {
        true => "NOT RUNNING (this is its last report)",
        false => "running",
    };
    println!("runtime:       {state}, pid {}", runtime.pid);
    let node = &runtime.node;
    println!(
        "  coordinator: heartbeat {}, websocket {}{}",
        if node.last_heartbeat_ok {
            "ok"
        } else {
            "failing"
        },
        if node.connected { "connected" } else { "down" },
        if node.draining { ", draining" } else { "" },
    );
    println!(
        "  jobs:        {} running, {} completed, {} failed, {} handed back",
        node.active_jobs.len(),
        node.completed,
        node.failed,
        node.handed_back
    );
    let Some(engine) = &runtime.engine else {
        println!("  engine:      none (no --model-path)");
        return;
    };
    let advertised = match engine.advertised() {
        true => "advertised",
        false => "NOT advertised",
    };
    println!(
        "  engine:      {:?}, model {} {advertised}{}",
        engine.phase,
        engine.model,
        engine.pid.map(|p| format!(", pid {p}")).unwrap_or_default()
    );
    println!(
        "  supervision: {} failed probes, {} restarts since healthy ({} in all), {} wedges, {} in flight, {} bytes of engine output drained",
        engine.failed_probes,
        engine.restarts,
        engine.total_restarts,
        engine.wedges,
        engine.in_flight,
        engine.drained_bytes
    );
    if let Some(error) = &engine.last_error {
        println!("  last error:  {error}");
    }
}

/// Takes the config directory's `sgl.lock` for this process's life.
fn lock_config_dir(dir: &ConfigDir) -> Result<std::fs::File> {
    let path = dir.path().join("sgl.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another `sgl start` runs with {} (it holds {}); stop it first: two processes with one node identity fight over its jobs",
            dir.path().display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Whether process `pid` runs with a command line (a zombie has none).
fn running(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

/// Stops the llama-server a previous `sgl start`, killed hard, left running: the process must
/// still be the one `sgl` started (Linux: its command line has that engine's `--port` and
/// `--alias`), so a reused pid is left alone. SIGTERM, up to 10 s, then SIGKILL; the new
/// engine starts once it is gone (its memory free).
async fn stop_orphaned_engine(engine: &EngineStatus) {
    let (Some(pid), Some(base)) = (engine.pid, engine.base_url.as_deref()) else {
        return;
    };
    let Some(port) = base.rsplit(':').next() else {
        return;
    };
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let follows = |flag: &str, value: &str| {
        args.windows(2)
            .any(|pair| pair[0] == flag.as_bytes() && pair[1] == value.as_bytes())
    };
    if !follows("--port", port) || !follows("--alias", &engine.model) {
        return;
    }
    tracing::warn!(
        pid,
        "a llama-server left by a previous sgl start is still running: stopping it"
    );
    let signal = |name: &str| {
        let _ = std::process::Command::new("kill")
            .args([name, &pid.to_string()])
            .status();
    };
    signal("-TERM");
    for _ in 0..100 {
        if !running(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!(pid, "the old llama-server ignored SIGTERM: killing it");
    signal("-KILL");
}

/// Whether process `pid` exists (Linux's `/proc`; elsewhere assumed, and the report's age
/// decides).
fn process_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes `runtime.json` (a failure is logged: the node serves on without it).
fn write_runtime(dir: &ConfigDir, node: &NodeSnapshot, server: Option<&LlamaServer>) {
    let report = RuntimeReport {
        pid: std::process::id(),
        updated_at_ms: unix_ms(),
        node: node.clone(),
        engine: server.map(LlamaServer::status),
    };
    if let Err(error) = dir.save_runtime(&report) {
        tracing::warn!(%error, "cannot write runtime.json (sgl status will not show the runtime)");
    }
}

/// Keeps `runtime.json` and systemd's status line current; returns only when the engine gives
/// up, with its reason.
async fn report_runtime(
    dir: &ConfigDir,
    node: &NodeHandle,
    server: Option<&LlamaServer>,
) -> String {
    let mut last: Option<(NodeSnapshot, Option<EngineStatus>)> = None;
    let mut written = tokio::time::Instant::now();
    let mut line = String::new();
    loop {
        let snapshot = node.status();
        let engine = server.map(LlamaServer::status);
        if let Some(engine) = &engine
            && engine.phase == Phase::Failed
        {
            write_runtime(dir, &snapshot, server);
            return engine.last_error.clone().unwrap_or_default();
        }
        // The engine's log volume alone is no reason to rewrite the file.
        let current = (
            snapshot,
            engine.map(|mut engine| {
                engine.drained_bytes = 0;
                engine
            }),
        );
        let due = written.elapsed() >= Duration::from_secs(RuntimeReport::REFRESH_SECS);
        if due || last.as_ref() != Some(&current) {
            // A small file written and synced: off the async workers' way.
            tokio::task::block_in_place(|| write_runtime(dir, &current.0, server));
            written = tokio::time::Instant::now();
            let status = match &current.1 {
                Some(engine) => format!(
                    "engine {:?} ({}), {} jobs running, {} completed, {} failed",
                    engine.phase,
                    engine.model,
                    current.0.active_jobs.len(),
                    current.0.completed,
                    current.0.failed
                ),
                None => "no model served".to_owned(),
            };
            if status != line {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status)]);
                line = status;
            }
            last = Some(current);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
