//! `x402c`: the command-line client. The thin top layer: it alone reads flags, the
//! environment, the config file and the terminal, and drives `x402-reqwest` (and, with their
//! issues, `compute-api` and `grid-api`).
//!
//! Commands: `fetch` (pay any x402 URL like curl), `payments` (the journal: list, show,
//! reconcile), the machines commands (`plans`, `regions`, `os`, `provision`, `instances`,
//! `instance`, `wait`, `ssh`, `password`, `extend`, `resize`, `destroy`, `api-key`, `credits`,
//! `wallet`), the grid commands (`chat`, `grid models|capacity|providers|pricing`), `config`
//! and `completions`.
//!
//! Exit codes: 0 success; 1 any other error, including bad input and the machines API refusing
//! a request (not found, authentication, already retrieved, a bad request); 2 usage; 3 refused
//! by the policy, the budget or the user, or a paid command without `--yes` and without a
//! terminal to ask on (nothing was signed), or a grid node whose key binding fails (nothing
//! was sent); 4 the server rejected the payment (or the credits
//! fall short); 5 a payment's outcome is not known yet (pending: `x402c payments reconcile`);
//! 6 a network or server error (5xx, an unreadable answer; for `fetch` also any HTTP status of
//! 400 and above, as curl's `--fail` would treat it).

// A command-line program prints: its output is stdout, its diagnostics stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` that ends the program quietly when the reader went away (`x402c plans | head`)
/// instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => { $crate::emit(&format!($($arg)*)) };
}

mod config;
mod grid;
mod journal;
mod machines;
mod wallet;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use x402_core::{Challenge, Clock, LocalEvmSigner, Network, PaymentPolicy, Receipt};
use x402_reqwest::{Config as PayConfig, EntryId, PaymentJournal, PaymentState};

use crate::config::{Config, Overrides};
use crate::journal::SqliteJournal;

/// Pay for HTTP resources with x402, and keep every payment in a journal.
#[derive(Debug, Parser)]
#[command(name = "x402c", version, about)]
struct Cli {
    /// More output on stderr (-v: what is paid and its receipt, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// The payment journal (default: `payments.sqlite` in the user data directory;
    /// `X402C_JOURNAL`; `journal` in the config file).
    #[arg(long, global = true, value_name = "FILE")]
    journal: Option<PathBuf>,
    /// PEM certificates to trust besides the system's, for a private endpoint (`SSL_CERT_FILE`;
    /// `ca_bundle` in the config file).
    #[arg(long, global = true, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// The proxy for http and https (default `HTTPS_PROXY`, `http_proxy`, `ALL_PROXY`; `proxy`
    /// in the config file). Loopback addresses are never proxied.
    #[arg(long, global = true, value_name = "URL")]
    proxy: Option<String>,
    /// Hosts, domains and CIDR ranges to reach directly, comma-separated (default `NO_PROXY`;
    /// `no_proxy` in the config file).
    #[arg(long, global = true, value_name = "HOSTS")]
    no_proxy: Option<String>,
    /// A JSON-RPC endpoint for a network, `NETWORK=URL` (repeatable; `[rpc]` in the config
    /// file): where a permit payment reads its nonce, a Solana payment its blockhash and mint,
    /// and `payments reconcile` asks whether a payment landed.
    #[arg(long = "rpc", global = true, value_name = "NETWORK=URL")]
    rpc: Vec<String>,
    /// Pay without asking (the terminal asks before each payment otherwise; without a
    /// terminal nothing asks).
    #[arg(short = 'y', long, global = true)]
    yes: bool,
    /// The machines API (default `https://compute.x402layer.cc`; `X402C_COMPUTE_URL`;
    /// `compute_url` in the config file).
    #[arg(long, global = true, value_name = "URL")]
    api_url: Option<String>,
    /// The inference grid (default `https://grid.x402compute.cc`; `X402C_GRID_URL`;
    /// `grid_url` in the config file).
    #[arg(long, global = true, value_name = "URL")]
    grid_url: Option<String>,
    /// The keystore wallet to sign with (default `default`; `X402C_WALLET`; `wallet`).
    #[arg(long, global = true, value_name = "NAME")]
    wallet: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Fetch a URL like curl, paying a 402 under the spend policy. The body goes to stdout.
    Fetch(Box<Fetch>),
    /// The payment journal.
    #[command(subcommand)]
    Payments(Payments),
    /// The configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    #[command(flatten)]
    Machines(machines::Machines),
    /// Chat with a model on the inference grid, sealed end to end to the node by default.
    Chat(Box<grid::Chat>),
    /// The inference grid: models, capacity, providers, pricing.
    #[command(subcommand)]
    Grid(grid::GridCommand),
    /// Shell completions, printed for SHELL (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Where the config file is read from.
    Path,
    /// The settings in effect (flags, environment, file, defaults).
    Show,
}

#[derive(Debug, clap::Args)]
struct Fetch {
    /// The URL.
    url: String,
    /// The HTTP method (default GET, or POST with a body).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// A header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// The request body; `@FILE` reads a file, `@-` stdin.
    #[arg(short = 'd', long = "data", value_name = "BODY")]
    data: Option<String>,
    /// Pay only on these networks, in this order of preference (CAIP-2 ids or names such as
    /// base, base-sepolia, megaeth; repeatable).
    #[arg(long = "network", value_name = "NETWORK")]
    networks: Vec<String>,
    /// The most to pay for this request, in dollars (default $1, `X402C_MAX_PRICE`,
    /// `max_price` in the config file).
    #[arg(long, value_name = "USD")]
    max_price: Option<String>,
    /// The most to pay in any 24 hours, in dollars (`X402C_DAILY_BUDGET`, `daily_budget`).
    #[arg(long, value_name = "USD")]
    daily_budget: Option<String>,
    /// Print the status line and headers before the body.
    #[arg(short = 'i', long = "include")]
    include: bool,
    /// Write the body to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Ask, print the challenge and what would be paid, and sign nothing.
    #[arg(long)]
    dry_run: bool,
    /// Pay anew even though an earlier payment for this same request is pending. That
    /// payment may still settle, so this may pay twice: reconcile it first
    /// (`x402c payments reconcile`) unless you know it failed.
    #[arg(long)]
    force: bool,
    /// Total time for the request and its payment, in seconds (longer than a server's
    /// settlement wait).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

#[derive(Debug, Subcommand)]
enum Payments {
    /// Every payment in the journal.
    List,
    /// One payment.
    Show {
        /// Its id.
        id: u64,
    },
    /// Resolve pending payments by resending the same signed payment (never a new one): the
    /// server settles each payment once and answers with its outcome.
    Reconcile {
        /// Only this payment.
        id: Option<u64>,
    },
}

/// Exit codes (see the crate docs).
pub(crate) mod exit {
    pub(crate) const OTHER: u8 = 1;
    pub(crate) const REFUSED: u8 = 3;
    pub(crate) const REJECTED: u8 = 4;
    pub(crate) const PENDING: u8 = 5;
    pub(crate) const NETWORK: u8 = 6;
}

/// Writes a line to stdout; a closed pipe ends the program with success, as `head` expects.
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("x402c: cannot write the output: {error}");
        std::process::exit(i32::from(exit::OTHER));
    }
}

/// The system clock.
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default()
    }
}

pub(crate) fn os_random(buf: &mut [u8]) {
    // Without OS randomness no payment can be signed safely.
    if let Err(error) = getrandom::fill(buf) {
        panic!("the operating system's random number generator failed: {error}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("X402C_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    // One thread: a command does one thing at a time, and a second worker and its allocator
    // arena would only add start-up time and memory.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("x402c: cannot start: {error}");
            return ExitCode::from(exit::OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("x402c: {error:#}");
            ExitCode::from(exit::OTHER)
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let max_price = match &cli.command {
        Command::Fetch(fetch) => fetch.max_price.clone(),
        _ => None,
    };
    let daily_budget = match &cli.command {
        Command::Fetch(fetch) => fetch.daily_budget.clone(),
        _ => None,
    };
    let rpc = cli.rpc.clone();
    let max_spend = match &cli.command {
        Command::Machines(machines) => machines.max_price(),
        _ => None,
    };
    let config = Config::load(Overrides {
        max_price,
        max_spend,
        daily_budget,
        journal: cli.journal.clone(),
        compute_url: cli.api_url.clone(),
        grid_url: cli.grid_url.clone(),
        wallet: cli.wallet.clone(),
        rpc,
        ca_bundle: cli.cacert.clone(),
        proxy: cli.proxy.clone(),
        no_proxy: cli.no_proxy.clone(),
    })?;
    match cli.command {
        Command::Config(ConfigCommand::Path) => {
            say!("{}", config.path.display());
            return Ok(0);
        }
        Command::Config(ConfigCommand::Show) => {
            let shown = config.shown();
            if cli.json {
                say!("{shown}");
                return Ok(0);
            }
            say!("config file  {}", config.path.display());
            say!("wallets      {}", config.wallets_dir.display());
            if let Some(fields) = shown.as_object() {
                for (key, entry) in fields {
                    let Some(source) = entry.get("source").and_then(|s| s.as_str()) else {
                        continue;
                    };
                    let value = match &entry["value"] {
                        serde_json::Value::String(text) => text.clone(),
                        serde_json::Value::Null => "-".to_owned(),
                        other => other.to_string(),
                    };
                    say!("{key:<13}{value}  ({source})");
                }
            }
            for (network, url) in &config.rpc {
                say!("rpc          {network} = {}", config::redact_url(url));
            }
            return Ok(0);
        }
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "x402c", &mut script);
            say!("{}", String::from_utf8_lossy(&script).trim_end());
            return Ok(0);
        }
        _ => {}
    }
    // The journal is opened when it exists (to list pending payments at the start of every
    // run) or when a command may pay; a user who never paid has none, and a catalog command
    // does not make one.
    let existing = match config.journal.exists() {
        true => Some(Arc::new(SqliteJournal::open(&config.journal)?)),
        false => None,
    };
    if let Some(journal) = &existing {
        let pending = journal.pending()?;
        if !pending.is_empty() && !matches!(cli.command, Command::Payments(_)) {
            eprintln!(
                "x402c: {} payment(s) pending in {}: run `x402c payments reconcile`",
                pending.len(),
                config.journal.display()
            );
        }
    }
    let open = || -> Result<Arc<SqliteJournal>> {
        match &existing {
            Some(journal) => Ok(journal.clone()),
            None => Ok(Arc::new(SqliteJournal::open(&config.journal)?)),
        }
    };
    match cli.command {
        Command::Fetch(fetch) => {
            let ui = Ui {
                json: cli.json,
                verbose: cli.verbose > 0,
                yes: cli.yes,
            };
            run_fetch(*fetch, &config, open()?, ui).await
        }
        Command::Payments(Payments::List) => list(&*open()?, cli.json),
        Command::Payments(Payments::Show { id }) => show(&*open()?, id, cli.json),
        Command::Payments(Payments::Reconcile { id }) => {
            reconcile(&*open()?, &config, id, cli.json).await
        }
        Command::Machines(command) => {
            let ui = Ui {
                json: cli.json,
                verbose: cli.verbose > 0,
                yes: cli.yes,
            };
            match machines::run(command, &config, &open, ui).await {
                Ok(code) => Ok(code),
                Err(error) => Ok(machines::report(&error, cli.json)),
            }
        }
        Command::Chat(chat) => {
            let ui = Ui {
                json: cli.json,
                verbose: cli.verbose > 0,
                yes: cli.yes,
            };
            match grid::chat(*chat, &config, &open, ui).await {
                Ok(code) => Ok(code),
                Err(error) => Ok(grid::report(&error, cli.json)),
            }
        }
        Command::Grid(command) => {
            let ui = Ui {
                json: cli.json,
                verbose: cli.verbose > 0,
                yes: cli.yes,
            };
            match grid::grid(command, &config, ui).await {
                Ok(code) => Ok(code),
                Err(error) => Ok(grid::report(&error, cli.json)),
            }
        }
        Command::Config(_) | Command::Completions { .. } => Ok(0),
    }
}

/// A request's method, headers and body.
type RequestParts = (reqwest::Method, Vec<(String, String)>, Option<Vec<u8>>);

/// The request a `fetch` describes.
fn request_of(fetch: &Fetch) -> Result<RequestParts> {
    let body = match fetch.data.as_deref() {
        None => None,
        Some("@-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read the body from stdin")?;
            Some(bytes)
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("cannot read {path}"))?),
            None => Some(text.as_bytes().to_vec()),
        },
    };
    let method = match (&fetch.method, &body) {
        (Some(method), _) => reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("`{method}` is not an HTTP method"))?,
        (None, Some(_)) => reqwest::Method::POST,
        (None, None) => reqwest::Method::GET,
    };
    let mut headers = Vec::new();
    for header in &fetch.headers {
        let Some((name, value)) = header.split_once(':') else {
            bail!("header `{header}` is not `Name: value`");
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok((method, headers, body))
}

fn policy_of(fetch: &Fetch, config: &Config) -> Result<PaymentPolicy> {
    let mut networks = Vec::new();
    for text in &fetch.networks {
        networks.push(
            text.parse::<Network>()
                .with_context(|| format!("`{text}` is not a network x402c knows"))?,
        );
    }
    Ok(PaymentPolicy::default()
        .networks(networks)
        .usd_cap(Some(config.max_price)))
}

/// How a command talks to its user.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ui {
    pub(crate) json: bool,
    pub(crate) verbose: bool,
    pub(crate) yes: bool,
}

/// Asks the user on the terminal before a payment is signed.
pub(crate) fn ask(quote: &x402_reqwest::Quote) -> Result<(), String> {
    let price = quote.usd.map_or_else(
        || format!("{} atomic units of {}", quote.amount, quote.asset),
        |usd| usd.to_string(),
    );
    let question = format!(
        "Pay {price} on {} to {} for {}?",
        quote.network, quote.pay_to, quote.operation
    );
    match dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
    {
        Ok(true) => Ok(()),
        Ok(false) => Err("you declined the payment".to_owned()),
        Err(error) => Err(format!(
            "cannot ask on the terminal ({error}); pass --yes to pay without asking"
        )),
    }
}

async fn run_fetch(
    fetch: Fetch,
    config: &Config,
    journal: Arc<SqliteJournal>,
    ui: Ui,
) -> Result<u8> {
    let Ui { json, verbose, .. } = ui;
    let (method, headers, body) = request_of(&fetch)?;
    let policy = policy_of(&fetch, config)?;
    let http = config
        .transport(Duration::from_secs(fetch.timeout))?
        .client()?;
    if fetch.dry_run {
        return dry_run(&http, &fetch, method, &headers, body, &policy, json).await;
    }
    let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
    let endpoints = endpoints(config)?;
    let mut payers = x402_reqwest::Payers::new();
    let env = |key: &str| std::env::var(key).ok().filter(|k| !k.is_empty());
    if let Some(key) = env("PRIVATE_KEY") {
        let signer = LocalEvmSigner::from_hex(&key)
            .map_err(|_| anyhow::anyhow!("PRIVATE_KEY is not a 32-byte hex secp256k1 key"))?;
        let nonces = endpoints.iter().filter(|(n, _)| !n.is_solana()).fold(
            x402_reqwest::PermitNonces::new().client(http.clone()),
            |nonces, (n, url)| nonces.endpoint(n.clone(), url.clone()),
        );
        payers = payers.evm(Arc::new(
            x402_reqwest::EvmPayer::new(Arc::new(signer), clock.clone(), Arc::new(os_random))
                .permits(nonces),
        ));
    }
    if let Some(key) = env("SOLANA_SECRET_KEY") {
        let signer = x402_core::LocalSolanaSigner::from_text(&key).map_err(|_| {
            anyhow::anyhow!(
                "SOLANA_SECRET_KEY is not a Solana keypair (base58, or a JSON array of 64 bytes)"
            )
        })?;
        let payer = endpoints.iter().filter(|(n, _)| n.is_solana()).fold(
            x402_reqwest::SolanaPayer::new(Arc::new(signer), Arc::new(os_random)),
            |payer, (n, url)| payer.endpoint(n.clone(), url.to_string()),
        );
        payers = payers.solana(Arc::new(payer));
    }
    if env("PRIVATE_KEY").is_none() && env("SOLANA_SECRET_KEY").is_none() {
        bail!(
            "set PRIVATE_KEY (EVM, hex) or SOLANA_SECRET_KEY (Solana) to pay; --dry-run signs nothing"
        );
    }
    let payer = Arc::new(payers);
    let pay = PayConfig {
        policy,
        daily_budget: config.daily_budget,
        ..PayConfig::default()
    };
    let mut middleware =
        x402_reqwest::X402Middleware::new(payer, journal.clone(), clock, Arc::new(os_random), pay);
    {
        use std::io::IsTerminal as _;
        if !ui.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
            middleware = middleware.before_sign(Arc::new(ask));
        }
    }
    let fingerprint = x402_reqwest::fingerprint(
        method.as_str(),
        &normalized(&fetch.url),
        &body.clone().unwrap_or_default(),
    );
    // An earlier payment for this request whose outcome is unknown is resent, never replaced,
    // unless the user says so.
    let mut resending = None;
    if let Some(entry) = journal.pending_for(&fingerprint)? {
        if fetch.force {
            eprintln!(
                "x402c: payment {} for this request is pending and may still settle; --force pays anew, so this may pay twice",
                entry.id
            );
            journal.detach(entry.id)?;
        } else {
            tracing::info!(entry = %entry.id, "resending the pending payment for this request");
            resending = Some(entry.id);
        }
    }
    let client = reqwest_middleware::ClientBuilder::new(http)
        .with(middleware)
        .build();
    let mut request = client.request(method.clone(), &fetch.url);
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let outcome = tokio::select! {
        outcome = request.send() => outcome,
        _ = tokio::signal::ctrl_c() => {
            // Before signing nothing happened; after, the journal holds the payment.
            return Ok(match journal.pending_for(&fingerprint)? {
                Some(entry) => {
                    eprintln!("x402c: interrupted after payment {} left: it is pending; run `x402c payments reconcile {}`", entry.id, entry.id);
                    exit::PENDING
                }
                None => {
                    eprintln!("x402c: interrupted; nothing was paid");
                    130
                }
            });
        }
    };
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let code = report_error(&error, json);
            if let (exit::PENDING, Some(id), false) = (code, resending, json) {
                eprintln!(
                    "x402c: payment {id} was resent and its outcome is still unknown; it may still settle. `x402c payments reconcile {id}` learns it (add --rpc to ask the chain); `x402c fetch --force` pays anew and may pay twice"
                );
            }
            return Ok(code);
        }
    };
    let status = response.status();
    let receipt = response.extensions().get::<Receipt>().cloned();
    let head = format!(
        "{:?} {}\n{}",
        response.version(),
        status,
        response
            .headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}\n", v.to_str().unwrap_or("<binary>")))
            .collect::<String>()
    );
    let bytes = response
        .bytes()
        .await
        .context("the answer's body was cut")?;
    if let Some(receipt) = receipt.as_ref().filter(|_| verbose) {
        eprintln!("x402c: receipt {}", serde_json::to_string(receipt)?);
    }
    if json {
        let answer = serde_json::json!({
            "status": status.as_u16(),
            "receipt": receipt,
            "body": String::from_utf8_lossy(&bytes),
        });
        say!("{answer}");
    } else {
        let mut out: Box<dyn std::io::Write> = match &fetch.output {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout().lock()),
        };
        if fetch.include {
            out.write_all(head.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.write_all(&bytes)?;
        out.flush()?;
    }
    Ok(if status.is_client_error() || status.is_server_error() {
        exit::NETWORK
    } else {
        0
    })
}

/// The URL as reqwest writes it (what the middleware fingerprints).
fn normalized(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.to_string())
}

/// An error with its causes (a TLS failure's reason is three sources down), each once.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Prints what went wrong with a paid request and returns its exit code.
fn report_error(error: &reqwest_middleware::Error, json: bool) -> u8 {
    let (code, kind) = match x402_reqwest::Error::of(error) {
        Some(
            x402_reqwest::Error::Policy(_)
            | x402_reqwest::Error::OverBudget { .. }
            | x402_reqwest::Error::Declined(_),
        ) => (exit::REFUSED, "refused"),
        Some(x402_reqwest::Error::Rejected { .. }) => (exit::REJECTED, "rejected"),
        Some(x402_reqwest::Error::Pending { .. }) => (exit::PENDING, "pending"),
        Some(x402_reqwest::Error::PaidWithoutAnswer { .. }) => {
            (exit::NETWORK, "paid_without_answer")
        }
        Some(_) => (exit::OTHER, "error"),
        None => (exit::NETWORK, "network"),
    };
    let message = with_causes(error);
    if json {
        say!(
            "{}",
            serde_json::json!({ "error": kind, "message": message })
        );
    } else {
        eprintln!("x402c: {message}");
        if code == exit::PENDING {
            eprintln!("x402c: run `x402c payments reconcile` later to learn the outcome");
        }
    }
    code
}

async fn dry_run(
    http: &reqwest::Client,
    fetch: &Fetch,
    method: reqwest::Method,
    headers: &[(String, String)],
    body: Option<Vec<u8>>,
    policy: &PaymentPolicy,
    json: bool,
) -> Result<u8> {
    let mut request = http.request(method, &fetch.url);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            eprintln!("x402c: {}", with_causes(&error));
            return Ok(exit::NETWORK);
        }
    };
    let status = response.status().as_u16();
    if status != 402 && status != 412 {
        say!("no payment asked: the server answered {status}");
        return Ok(0);
    }
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    let challenge = Challenge::from_response(status, &headers, &bytes)
        .context("the server asks for payment but its challenge is unreadable")?;
    let offers: Vec<String> = challenge
        .offers()
        .iter()
        .map(|offer| match offer.requirement() {
            Ok(r) => r.summary(),
            Err(error) => format!("unreadable offer: {error}"),
        })
        .collect();
    let selected = policy.select(&challenge);
    if json {
        let chosen = selected.as_ref().ok().map(|s| s.requirement().summary());
        let refused = selected.as_ref().err().map(ToString::to_string);
        say!(
            "{}",
            serde_json::json!({ "offers": offers, "would_pay": chosen, "refused": refused, "signed": false })
        );
    } else {
        say!("the server asks for payment ({} offers):", offers.len());
        for offer in &offers {
            say!("  {offer}");
        }
        match &selected {
            Ok(s) => say!(
                "would pay: {} (nothing signed: --dry-run)",
                s.requirement().summary()
            ),
            Err(error) => say!("would not pay: {error}"),
        }
    }
    Ok(if selected.is_ok() { 0 } else { exit::REFUSED })
}

fn state_text(state: &PaymentState) -> (String, String) {
    match state {
        PaymentState::Pending { transaction } => {
            ("pending".into(), transaction.clone().unwrap_or_default())
        }
        PaymentState::Settled { transaction } => ("settled".into(), transaction.clone()),
        PaymentState::Rejected { reason } => ("rejected".into(), reason.clone()),
        PaymentState::Unpaid { reason } => ("unpaid".into(), reason.clone()),
    }
}

fn entry_json(entry: &x402_reqwest::Entry) -> serde_json::Value {
    let (state, detail) = state_text(&entry.state);
    let p = &entry.payment;
    serde_json::json!({
        "id": entry.id.0,
        "state": state,
        "transaction_or_reason": detail,
        "operation": p.operation,
        "network": p.network,
        "asset": p.asset,
        "amount": p.amount.to_string(),
        "usd": p.usd.map(|u| u.to_string()),
        "pay_to": p.pay_to,
        "identity": p.identity,
        "payment_id": p.payment_id,
        "created_ms": p.created_ms,
    })
}

fn list(journal: &SqliteJournal, json: bool) -> Result<u8> {
    let entries = journal.entries()?;
    if json {
        let all: Vec<_> = entries.iter().map(entry_json).collect();
        say!("{}", serde_json::Value::Array(all));
        return Ok(0);
    }
    if entries.is_empty() {
        say!("no payments");
        return Ok(0);
    }
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header([
        "ID",
        "STATE",
        "AMOUNT",
        "NETWORK",
        "FOR",
        "TRANSACTION OR REASON",
    ]);
    for entry in &entries {
        let (state, detail) = state_text(&entry.state);
        let usd = entry
            .payment
            .usd
            .map_or_else(|| entry.payment.amount.to_string(), |u| u.to_string());
        table.add_row(vec![
            entry.id.to_string(),
            state,
            usd,
            entry.payment.network.clone(),
            entry.payment.operation.clone(),
            detail,
        ]);
    }
    say!("{table}");
    Ok(0)
}

fn show(journal: &SqliteJournal, id: u64, json: bool) -> Result<u8> {
    let Some(entry) = journal.entry(EntryId(id))? else {
        bail!("no payment {id} in the journal (`x402c payments list`)");
    };
    let shown = entry_json(&entry);
    if json {
        say!("{shown}");
    } else if let Some(fields) = shown.as_object() {
        for (key, value) in fields {
            say!(
                "{key:<22} {}",
                value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned)
            );
        }
    }
    Ok(0)
}

/// The configured RPC endpoints, parsed, one per network (the last given wins: flags over
/// the file over the defaults).
pub(crate) fn endpoints(config: &Config) -> Result<Vec<(Network, reqwest::Url)>> {
    let mut endpoints: Vec<(Network, reqwest::Url)> = Vec::new();
    for (network, url) in &config.rpc {
        let network: Network = network
            .parse()
            .with_context(|| format!("rpc: `{network}` is not a network x402c knows"))?;
        // Not echoed: an RPC URL often carries an API key.
        let parsed: reqwest::Url = url
            .parse()
            .with_context(|| format!("rpc: the endpoint for {network} is not a URL"))?;
        endpoints.retain(|(n, _)| *n != network);
        endpoints.push((network, parsed));
    }
    Ok(endpoints)
}

/// Resolves pending payments: first by resending each to its server (which settles a payment
/// at most once and answers with its outcome), then, if still unknown, by asking the chain.
/// A payment is marked unpaid only when the chain proves it never landed and never can.
async fn reconcile(
    journal: &SqliteJournal,
    config: &Config,
    id: Option<u64>,
    json: bool,
) -> Result<u8> {
    let entries = match id {
        Some(id) => vec![
            journal
                .entry(EntryId(id))?
                .with_context(|| format!("no payment {id} in the journal"))?,
        ],
        None => journal.pending()?,
    };
    let http = config.transport(Duration::from_secs(120))?.client()?;
    let mut chain = x402_reqwest::ChainCheck::new().client(http.clone());
    for (network, url) in endpoints(config)? {
        chain = match network.is_solana() {
            true => chain.solana(network, url.to_string()),
            false => chain.evm(network, url),
        };
    }
    let mut still_pending = false;
    for entry in entries {
        if !matches!(entry.state, PaymentState::Pending { .. }) {
            let (state, detail) = state_text(&entry.state);
            say!("payment {}: already {state} {detail}", entry.id);
            continue;
        }
        let mut notes = Vec::new();
        if let Err(error) = x402_reqwest::resend(&http, journal, &entry).await {
            notes.push(format!("the server: {}", with_causes(&error)));
        }
        let resent = journal.entry(entry.id)?.map(|e| e.state);
        if let Some(PaymentState::Pending { .. }) = resent {
            match chain.check(&entry).await {
                Ok(x402_reqwest::OnChain::Used { transaction }) => {
                    notes.push("the chain: it was used".into());
                    journal.update(
                        entry.id,
                        PaymentState::Settled {
                            transaction: transaction.unwrap_or_default(),
                        },
                    )?;
                }
                Ok(x402_reqwest::OnChain::Expired { why }) => {
                    notes.push(format!("the chain: {why}"));
                    journal.update(entry.id, PaymentState::Unpaid { reason: why })?;
                }
                Ok(x402_reqwest::OnChain::Open { until }) => notes.push(match until {
                    0 => "the chain: not landed yet, and it still can: ask again later".into(),
                    until => format!(
                        "the chain: not landed yet, and it can until {until} (unix time): ask again after"
                    ),
                }),
                Err(error) => notes.push(error.to_string()),
            }
        }
        let now = journal.entry(entry.id)?.map(|e| e.state);
        let (state, detail) = now.as_ref().map(state_text).unwrap_or_default();
        still_pending |= state == "pending";
        if json {
            say!(
                "{}",
                serde_json::json!({ "id": entry.id.0, "state": state, "transaction_or_reason": detail, "notes": notes })
            );
        } else {
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" {detail}")
            };
            say!("payment {}: {state}{detail}", entry.id);
            for note in &notes {
                say!("  {note}");
            }
        }
    }
    Ok(if still_pending { exit::PENDING } else { 0 })
}
