//! The machines commands: the catalog, the instance lifecycle, API keys, credits and wallets,
//! over `compute-api`. Keys come from the seed scripts' variables or a keystore wallet; the
//! auth from `COMPUTE_API_KEY`, OWS or a wallet signature (reference §2).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use compute_api::{Auth, Client, Pay, PlanType, ProvisionRequest};
use x402_core::auth::AuthChain;
use x402_core::{Clock, LocalEvmSigner, LocalSolanaSigner, SolanaSigner as _};

use crate::config::Config;
use crate::journal::SqliteJournal;
use crate::{SystemClock, Ui, exit, os_random, wallet};

/// How a paid machines command pays.
#[derive(Debug, Args)]
pub(crate) struct Payment {
    /// The API's payment network: base, solana, megaeth or robinhood (which chain it means is
    /// the server's: the devnet serves base on Base Sepolia and solana on Solana devnet).
    #[arg(long, default_value = "base")]
    network: String,
    /// Pay from prepaid credits instead (needs auth).
    #[arg(long, conflicts_with = "network")]
    use_credits: bool,
    /// The most to pay, in dollars (default $500, COMPUTE_MAX_SPEND_USD, `max_spend`).
    #[arg(long, value_name = "USD")]
    pub(crate) max_price: Option<String>,
    /// Print the price and what would be paid, and pay nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Payment {
    fn pay(&self) -> Pay {
        match self.use_credits {
            true => Pay::Credits,
            false => Pay::X402(self.network.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum PlanKind {
    Vps,
    Vhp,
    Vdc,
    Vcg,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Provider {
    Vultr,
    Do,
}

/// The machines commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Machines {
    /// Plans: price, CPUs, memory, disk, GPU, regions.
    Plans {
        /// The class (without it: the standard plans).
        #[arg(long = "type", value_enum)]
        kind: Option<PlanKind>,
        /// Only this provider's plans.
        #[arg(long, value_enum)]
        provider: Option<Provider>,
    },
    /// Regions.
    Regions,
    /// OS images.
    Os,
    /// Buy an instance: shows the price and asks before paying (unless --yes).
    Provision(Box<Provision>),
    /// Your instances (those expiring within 24 hours are marked).
    Instances,
    /// One instance.
    Instance {
        /// Its id.
        id: String,
    },
    /// Wait until an instance is active, then print its address.
    Wait {
        /// Its id.
        id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Log in with the system `ssh` (root, with the key given or ssh's own).
    Ssh {
        /// Its id.
        id: String,
        /// The private key to log in with (`ssh -i`).
        #[arg(short = 'i', long, value_name = "FILE")]
        identity: Option<PathBuf>,
        /// The user (default root).
        #[arg(short = 'l', long, default_value = "root")]
        user: String,
        /// More arguments for ssh (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The root password of an instance made without an SSH key: shown once, ever.
    Password {
        /// Its id.
        id: String,
        /// Also write it to FILE (mode 0600).
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Buy more hours for an instance.
    Extend {
        /// Its id.
        id: String,
        /// Hours to add.
        #[arg(long, default_value_t = 720)]
        hours: u64,
        #[command(flatten)]
        payment: Payment,
    },
    /// Move an instance to another plan (the remaining prepaid dollars carry over; never paid).
    Resize {
        /// Its id.
        id: String,
        /// The new plan.
        plan: String,
        /// Allow a DigitalOcean disk to grow (irreversible).
        #[arg(long)]
        confirm_disk_resize: bool,
    },
    /// Destroy an instance (asks unless --yes).
    Destroy {
        /// Its id.
        id: String,
    },
    /// API keys (`x402c_…`), for agents: created with a wallet signature, shown once.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Prepaid credits.
    #[command(subcommand)]
    Credits(CreditsCommand),
    /// Wallets on disk: an Ethereum keystore and a Solana keypair file.
    #[command(subcommand)]
    Wallet(WalletCommand),
}

/// `provision`.
#[derive(Debug, Args)]
pub(crate) struct Provision {
    /// The plan (`x402c plans`).
    plan: String,
    /// The region (`x402c regions`).
    region: String,
    /// Hours to prepay (at least 24).
    #[arg(long, conflicts_with_all = ["days", "months"])]
    hours: Option<u64>,
    /// Days to prepay.
    #[arg(long, conflicts_with = "months")]
    days: Option<u64>,
    /// Months (720 hours each) to prepay; the default is one.
    #[arg(long)]
    months: Option<u64>,
    /// The label.
    #[arg(long, default_value = compute_api::DEFAULT_LABEL)]
    label: String,
    /// The OS image (`x402c os`; default Ubuntu 24.04).
    #[arg(long, default_value_t = compute_api::DEFAULT_OS_ID)]
    os_id: u64,
    /// An SSH public key file to install (`~/.ssh/id_ed25519.pub`).
    #[arg(long, value_name = "FILE")]
    ssh_key_file: Option<PathBuf>,
    /// Wait until it is active and print its address.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    payment: Payment,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApiKeyCommand {
    /// Create one (printed once).
    Create {
        /// Its label.
        #[arg(long)]
        label: Option<String>,
    },
    /// List them (last four characters only).
    List,
    /// Revoke one.
    Revoke {
        /// Its id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CreditsCommand {
    /// The balance.
    Balance,
    /// Buy credits with x402.
    Topup {
        /// Dollars (at least 1).
        usd: String,
        #[command(flatten)]
        payment: Payment,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalletCommand {
    /// Make a new wallet: an EVM keystore (password from X402C_PASSWORD or a prompt) and,
    /// with --solana, a Solana keypair file.
    New {
        /// Also make a Solana keypair.
        #[arg(long)]
        solana: bool,
    },
    /// Import a key into a wallet: read from stdin (a hex EVM key, or with --solana a
    /// keypair as JSON bytes or base58), or from PRIVATE_KEY / SOLANA_SECRET_KEY.
    Import {
        /// Import a Solana keypair instead.
        #[arg(long)]
        solana: bool,
    },
    /// The wallet's addresses.
    Address {
        /// Decrypt the keystore (asking for its password) and check its key is the address's.
        #[arg(long)]
        verify: bool,
    },
    /// Every wallet.
    List,
}

impl Machines {
    /// Whether the command pays (and needs the journal).
    pub(crate) fn max_price(&self) -> Option<String> {
        match self {
            Machines::Provision(p) => p.payment.max_price.clone(),
            Machines::Extend { payment, .. } => payment.max_price.clone(),
            Machines::Credits(CreditsCommand::Topup { payment, .. }) => payment.max_price.clone(),
            _ => None,
        }
    }
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.trim().is_empty())
}

/// The keys this run signs with: the environment's (the seed scripts'), else the wallet's.
pub(crate) struct Keys {
    evm: Option<Arc<LocalEvmSigner>>,
    solana: Option<Arc<LocalSolanaSigner>>,
}

pub(crate) fn keys(config: &Config) -> Result<Keys> {
    let evm = match env("PRIVATE_KEY") {
        Some(key) => Some(Arc::new(LocalEvmSigner::from_hex(key.trim()).map_err(
            |_| anyhow::anyhow!("PRIVATE_KEY is not a 32-byte hex secp256k1 key"),
        )?)),
        None => {
            let files = wallet::files(&config.wallets_dir, &config.wallet)?;
            match files.evm.exists() {
                true => {
                    let password = wallet::password(false)?;
                    Some(Arc::new(wallet::read_evm(
                        &config.wallets_dir,
                        &config.wallet,
                        &password,
                    )?))
                }
                false => None,
            }
        }
    };
    let solana = match env("SOLANA_SECRET_KEY") {
        Some(key) => Some(Arc::new(LocalSolanaSigner::from_text(key.trim()).map_err(
            |_| {
                anyhow::anyhow!(
                    "SOLANA_SECRET_KEY is not a Solana keypair (base58, or a JSON array of 64 bytes)"
                )
            },
        )?)),
        None => wallet::read_solana(&config.wallets_dir, &config.wallet)?.map(Arc::new),
    };
    // The scripts take the address beside the key; one that is not the key's would sign for
    // an address the key does not hold (the server answers 401): say so first.
    if let (Some(key), Some(claimed)) = (&evm, env("WALLET_ADDRESS"))
        && claimed.trim().starts_with("0x")
    {
        let derived = format!("{:#x}", x402_core::EvmSigner::address(&**key));
        if !claimed.trim().eq_ignore_ascii_case(&derived) {
            bail!(
                "WALLET_ADDRESS {claimed} is not the address of the EVM key ({derived}): fix or unset it"
            );
        }
    }
    if let Some(key) = &solana {
        let derived = key.pubkey().to_string();
        for name in ["SOLANA_WALLET_ADDRESS", "WALLET_ADDRESS_SECONDARY"] {
            if let Some(claimed) = env(name)
                && claimed.trim() != derived
            {
                bail!(
                    "{name} {claimed} is not the address of the Solana key ({derived}): fix or unset it"
                );
            }
        }
    }
    Ok(Keys { evm, solana })
}

/// The auth of reference §2: API key, else OWS, else a wallet signature on the resolved
/// chain.
fn auth(keys: &Keys) -> Result<Auth> {
    if let Some(key) = env("COMPUTE_API_KEY") {
        return Ok(Auth::ApiKey(compute_api::ApiKey::new(key)?));
    }
    let mode = env("COMPUTE_AUTH_MODE").unwrap_or_else(|| "auto".into());
    // The scripts' rule (reference §2.5): a Solana key or address in the environment means
    // solana. A keystore wallet (ours) holding both keys signs in with its EVM key unless
    // COMPUTE_AUTH_CHAIN says solana.
    let has_solana = env("SOLANA_SECRET_KEY").is_some()
        || env("SOLANA_WALLET_ADDRESS").is_some()
        || (keys.solana.is_some() && keys.evm.is_none());
    let chain = compute_api::resolve_chain(
        env("COMPUTE_AUTH_CHAIN").as_deref(),
        env("WALLET_ADDRESS").as_deref(),
        has_solana,
    );
    let ows = match mode.trim().to_ascii_lowercase().as_str() {
        "ows" => true,
        "auto" => env("OWS_WALLET").is_some(),
        "private-key" => false,
        other => bail!("COMPUTE_AUTH_MODE `{other}` is not auto, private-key or ows"),
    };
    if ows {
        let wallet = env("OWS_WALLET").context("COMPUTE_AUTH_MODE=ows needs OWS_WALLET")?;
        let bin = match env("OWS_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => which("ows").context("no `ows` on PATH: install it or set OWS_BIN")?,
        };
        let ows = compute_api::Ows::new(bin, wallet)?;
        let address = ows.address(chain)?;
        return Ok(Auth::Ows {
            ows,
            chain,
            address,
        });
    }
    Ok(match (chain, &keys.evm, &keys.solana) {
        (_, None, None) => Auth::None,
        (AuthChain::Solana, _, Some(solana)) => Auth::Solana(solana.clone()),
        (AuthChain::Solana, _, None) => bail!(
            "the auth chain is solana (COMPUTE_AUTH_CHAIN, or a Solana address set) but there is no Solana key: set SOLANA_SECRET_KEY, add one to the wallet, or set COMPUTE_AUTH_CHAIN=base"
        ),
        (chain, Some(evm), _) => Auth::Evm {
            signer: evm.clone(),
            chain,
        },
        (chain, None, Some(_)) => bail!(
            "the auth chain is {chain} but there is no EVM key: set PRIVATE_KEY, use a keystore wallet, or set COMPUTE_AUTH_CHAIN=solana"
        ),
    })
}

/// `name` on PATH, as an absolute path.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// Who pays with x402 in this run: the keys' payers (EVM, with permit nonces read from the
/// configured endpoints; Solana, with its RPC endpoints), or none without keys.
pub(crate) fn payer(
    config: &Config,
    http: &reqwest::Client,
    clock: &Arc<dyn Clock + Send + Sync>,
    keys: &Keys,
) -> Result<Option<Arc<dyn x402_reqwest::Payer>>> {
    let mut payers = x402_reqwest::Payers::new();
    if let Some(evm) = &keys.evm {
        let mut nonces = x402_reqwest::PermitNonces::new().client(http.clone());
        for (network, url) in crate::endpoints(config)? {
            if !network.is_solana() {
                nonces = nonces.endpoint(network, url);
            }
        }
        payers = payers.evm(Arc::new(
            x402_reqwest::EvmPayer::new(evm.clone(), clock.clone(), Arc::new(os_random))
                .permits(nonces),
        ));
    }
    if let Some(solana) = &keys.solana {
        let mut payer = x402_reqwest::SolanaPayer::new(solana.clone(), Arc::new(os_random));
        for (network, url) in crate::endpoints(config)? {
            if network.is_solana() {
                payer = payer.endpoint(network, url.to_string());
            }
        }
        payers = payers.solana(Arc::new(payer));
    }
    Ok((keys.evm.is_some() || keys.solana.is_some())
        .then(|| Arc::new(payers) as Arc<dyn x402_reqwest::Payer>))
}

/// The question before each payment, on a terminal unless `--yes`.
pub(crate) fn before_sign(ui: Ui) -> Option<x402_reqwest::BeforeSign> {
    use std::io::IsTerminal as _;
    (!ui.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal())
        .then(|| Arc::new(crate::ask) as x402_reqwest::BeforeSign)
}

/// A compute client for this run. `signing`: whether the command needs keys (catalog
/// commands do not, and never ask for a password).
fn client(
    config: &Config,
    journal: Arc<dyn x402_reqwest::PaymentJournal>,
    ui: Ui,
    signing: bool,
) -> Result<Client> {
    let http = config.transport(Duration::from_secs(180))?.client()?;
    let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
    let keys = match signing {
        true => keys(config)?,
        false => Keys {
            evm: None,
            solana: None,
        },
    };
    let auth = match signing {
        true => auth(&keys)?,
        false => Auth::None,
    };
    let payer = payer(config, &http, &clock, &keys)?;
    let before_sign = before_sign(ui);
    let url: reqwest::Url = config.compute_url.parse().with_context(|| {
        format!(
            "the machines API URL `{}` is not a URL (--api-url, X402C_COMPUTE_URL)",
            config.compute_url
        )
    })?;
    Ok(Client::new(
        compute_api::Config {
            url,
            max_spend: config.max_spend,
            daily_budget: config.daily_budget,
        },
        compute_api::Parts {
            http,
            payer,
            journal,
            auth,
            clock,
            entropy: Arc::new(os_random),
            before_sign,
        },
    ))
}

/// The exit code for a compute error, with the error printed.
pub(crate) fn report(error: &anyhow::Error, json: bool) -> u8 {
    let code = match error.downcast_ref::<compute_api::Error>() {
        Some(compute_api::Error::Refused(_)) => exit::REFUSED,
        Some(
            compute_api::Error::Rejected { .. } | compute_api::Error::InsufficientCredits { .. },
        ) => exit::REJECTED,
        Some(compute_api::Error::Pending { .. }) => exit::PENDING,
        Some(
            compute_api::Error::Network(_)
            | compute_api::Error::Server { .. }
            | compute_api::Error::PaidWithoutAnswer { .. },
        ) => exit::NETWORK,
        _ => exit::OTHER,
    };
    if json {
        say!(
            "{}",
            serde_json::json!({ "error": code_name(code), "message": format!("{error:#}") })
        );
    } else {
        eprintln!("x402c: {error:#}");
    }
    code
}

fn code_name(code: u8) -> &'static str {
    match code {
        exit::REFUSED => "refused",
        exit::REJECTED => "rejected",
        exit::PENDING => "pending",
        exit::NETWORK => "network",
        _ => "error",
    }
}

/// [`spin`] for a call that may pay: without `--yes` the terminal may ask before signing, and
/// a spinner would draw over the question, so none is shown then.
async fn spin_paid<T>(ui: Ui, message: &str, future: impl std::future::Future<Output = T>) -> T {
    match ui.yes {
        true => spin(message, future).await,
        false => future.await,
    }
}

/// Runs `future`, with a spinner on stderr once it takes over a second (on a terminal).
async fn spin<T>(message: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(future);
    tokio::select! {
        done = &mut future => return done,
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(Duration::from_millis(100));
    let done = future.await;
    spinner.finish_and_clear();
    done
}

pub(crate) fn table(header: &[&str]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(header.iter().copied());
    table
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    say!("{}", serde_json::to_string(value)?);
    Ok(())
}

fn dollars(decimal: Option<&compute_api::Decimal>) -> String {
    decimal
        .and_then(compute_api::Decimal::usd)
        .map_or_else(|| "-".into(), |usd| usd.to_string())
}

/// Hours from the duration flags, as the scripts count them (§10).
fn hours_of(provision: &Provision) -> Result<u64> {
    let hours = match (provision.hours, provision.days, provision.months) {
        (Some(hours), _, _) => hours,
        (None, Some(days), _) => days.checked_mul(24).context("--days is too large")?,
        (None, None, months) => months
            .unwrap_or(1)
            .max(1)
            .checked_mul(compute_api::HOURS_PER_MONTH)
            .context("--months is too large")?,
    };
    if hours < compute_api::MIN_HOURS {
        bail!(
            "{hours} hours is too short: the API sells at least {} hours (--hours 24, --days 1)",
            compute_api::MIN_HOURS
        );
    }
    Ok(hours)
}

/// Asks `question` on the terminal unless `--yes`; without a terminal, `--yes` is required.
fn confirm(ui: Ui, question: &str) -> Result<bool> {
    if ui.yes {
        return Ok(true);
    }
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        bail!("{question} Pass --yes to confirm without a terminal");
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .context("cannot ask on the terminal; pass --yes")
}

/// A paid command without `--yes` needs a terminal to ask on: without one it pays nothing.
fn consent(ui: Ui) -> Result<()> {
    use std::io::IsTerminal as _;
    if ui.yes || (std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(());
    }
    Err(compute_api::Error::Refused(
        "this pays: pass --yes to pay without a terminal to ask on (nothing was paid)".into(),
    )
    .into())
}

/// Runs a machines command.
pub(crate) async fn run(
    command: Machines,
    config: &Config,
    open_journal: &dyn Fn() -> Result<Arc<SqliteJournal>>,
    ui: Ui,
) -> Result<u8> {
    // Commands that never pay get no journal (nothing is written for them).
    let unpaid = || -> Arc<dyn x402_reqwest::PaymentJournal> {
        Arc::new(x402_reqwest::MemoryJournal::new())
    };
    let paying = || -> Result<Arc<dyn x402_reqwest::PaymentJournal>> {
        Ok(open_journal()? as Arc<dyn x402_reqwest::PaymentJournal>)
    };
    let json = ui.json;
    match command {
        Machines::Plans { kind, provider } => {
            let api = client(config, unpaid(), ui, false)?;
            let kind = kind.map(|k| match k {
                PlanKind::Vps => PlanType::Vps,
                PlanKind::Vhp => PlanType::Vhp,
                PlanKind::Vdc => PlanType::Vdc,
                PlanKind::Vcg => PlanType::Vcg,
            });
            let mut plans = spin("reading plans", api.plans(kind)).await?;
            if let Some(provider) = provider {
                let wanted = match provider {
                    Provider::Vultr => "vultr",
                    Provider::Do => "digitalocean",
                };
                plans.retain(|p| {
                    p.provider.as_deref().unwrap_or(if p.id.starts_with("do:") {
                        "digitalocean"
                    } else {
                        "vultr"
                    }) == wanted
                });
            }
            if json {
                print_json(&plans)?;
                return Ok(0);
            }
            let mut out = table(&[
                "PLAN", "$/MONTH", "$/HOUR", "vCPU", "RAM GB", "DISK GB", "GPU", "REGIONS",
            ]);
            for plan in &plans {
                let gpu = match (&plan.gpu_type, plan.gpu_vram_gb) {
                    (Some(kind), Some(vram)) => format!("{kind} {vram} GB"),
                    (Some(kind), None) => kind.clone(),
                    _ => String::new(),
                };
                out.add_row(vec![
                    plan.id.clone(),
                    dollars(plan.monthly()),
                    dollars(plan.our_hourly.as_ref()),
                    plan.vcpu_count.map_or_else(String::new, |v| v.to_string()),
                    plan.ram
                        .map_or_else(String::new, |mb| (mb / 1024).to_string()),
                    plan.disk.map_or_else(String::new, |d| d.to_string()),
                    gpu,
                    plan.locations.join(" "),
                ]);
            }
            say!("{out}");
            Ok(0)
        }
        Machines::Regions => {
            let api = client(config, unpaid(), ui, false)?;
            let regions = spin("reading regions", api.regions()).await?;
            if json {
                print_json(&regions)?;
                return Ok(0);
            }
            let mut out = table(&["REGION", "CITY", "COUNTRY", "CONTINENT"]);
            for r in &regions {
                out.add_row(vec![
                    r.id.clone(),
                    r.city.clone().unwrap_or_default(),
                    r.country.clone().unwrap_or_default(),
                    r.continent.clone().unwrap_or_default(),
                ]);
            }
            say!("{out}");
            Ok(0)
        }
        Machines::Os => {
            let api = client(config, unpaid(), ui, false)?;
            let images = spin("reading OS images", api.os_images()).await?;
            if json {
                print_json(&images)?;
                return Ok(0);
            }
            let mut out = table(&["ID", "NAME", "ARCH", "FAMILY"]);
            for o in &images {
                out.add_row(vec![
                    o.id.to_string(),
                    o.name.clone().unwrap_or_default(),
                    o.arch.clone().unwrap_or_default(),
                    o.family.clone().unwrap_or_default(),
                ]);
            }
            say!("{out}");
            Ok(0)
        }
        Machines::Provision(provision) => {
            provision_command(*provision, config, paying()?, ui).await
        }
        Machines::Instances => {
            let api = client(config, unpaid(), ui, true)?;
            let instances = spin("reading instances", api.instances()).await?;
            let now = SystemClock.now_unix() as i64;
            let soon = |i: &compute_api::Instance| {
                i.status.is_live()
                    && i.expires_unix()
                        .is_some_and(|e| e > now && e - now <= 24 * 3600)
            };
            if json {
                let all: Vec<serde_json::Value> = instances
                    .iter()
                    .map(|i| {
                        let mut value = serde_json::to_value(i).unwrap_or_default();
                        value["expires_within_24h"] = serde_json::Value::Bool(soon(i));
                        value
                    })
                    .collect();
                print_json(&all)?;
                return Ok(0);
            }
            if instances.is_empty() {
                say!("no instances");
                return Ok(0);
            }
            let mut out = table(&["ID", "STATUS", "PLAN", "REGION", "IP", "EXPIRES", "LABEL"]);
            for i in &instances {
                let expires = i.expires_at.clone().unwrap_or_default();
                out.add_row(vec![
                    i.id.clone(),
                    i.status.to_string(),
                    i.plan.clone().unwrap_or_default(),
                    i.region.clone().unwrap_or_default(),
                    i.ip().unwrap_or("-").to_owned(),
                    if soon(i) {
                        format!("{expires} ⚠ within 24 h")
                    } else {
                        expires
                    },
                    i.label.clone().unwrap_or_default(),
                ]);
            }
            say!("{out}");
            let expiring = instances.iter().filter(|i| soon(i)).count();
            if expiring > 0 {
                eprintln!(
                    "x402c: {expiring} instance(s) expire within 24 hours: `x402c extend ID --hours N`"
                );
            }
            Ok(0)
        }
        Machines::Instance { id } => {
            let api = client(config, unpaid(), ui, true)?;
            let instance = spin("reading the instance", api.instance(&id)).await?;
            show_instance(&instance, json)?;
            Ok(0)
        }
        Machines::Wait { id, timeout } => {
            let api = client(config, unpaid(), ui, true)?;
            let instance = wait_active(&api, &id, Duration::from_secs(timeout)).await?;
            if json {
                print_json(&instance)?;
            } else {
                say!("{}", instance.ip().unwrap_or_default());
            }
            Ok(0)
        }
        Machines::Ssh {
            id,
            identity,
            user,
            args,
        } => {
            let api = client(config, unpaid(), ui, true)?;
            let instance = spin("reading the instance", api.instance(&id)).await?;
            let Some(ip) = instance.ip() else {
                bail!(
                    "instance {id} has no address yet ({}): `x402c wait {id}`",
                    instance.status
                );
            };
            let mut command = std::process::Command::new("ssh");
            if let Some(identity) = identity {
                command.arg("-i").arg(identity);
            }
            command.arg(format!("{user}@{ip}")).args(args);
            let status = command
                .status()
                .context("cannot run ssh: is OpenSSH installed?")?;
            Ok(status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(exit::OTHER))
        }
        Machines::Password { id, output } => {
            let api = client(config, unpaid(), ui, true)?;
            // The file first: the password is given once, so nothing may fail after it came.
            let mut file = match &output {
                Some(path) => {
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::OpenOptionsExt as _;
                        options.mode(0o600);
                    }
                    Some(options.open(path).with_context(|| {
                        format!("cannot create {} (it must not exist)", path.display())
                    })?)
                }
                None => None,
            };
            let access = spin("reading the password", api.password(&id)).await?;
            if let Some(file) = &mut file
                && let Err(error) = file
                    .write_all(access.password.as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
            {
                eprintln!(
                    "x402c: could not write the password to the file ({error}); it is printed below"
                );
            }
            if json {
                print_json(&access)?;
            } else {
                say!("user:     {}", access.username.as_deref().unwrap_or("root"));
                say!("address:  {}", access.ip_address.as_deref().unwrap_or("-"));
                say!("password: {}", access.password);
                eprintln!("x402c: this password is shown once; store it now");
            }
            Ok(0)
        }
        Machines::Extend { id, hours, payment } => {
            let api = client(config, paying()?, ui, true)?;
            if payment.dry_run {
                say!(
                    "would extend {id} by {hours} hours, paid {}; nothing paid (--dry-run)",
                    paid_how(&payment.pay())
                );
                return Ok(0);
            }
            consent(ui)?;
            if payment.use_credits
                && !confirm(ui, &format!("Extend {id} by {hours} hours from credits?"))?
            {
                eprintln!("x402c: not extended");
                return Ok(exit::REFUSED);
            }
            let bought = spin_paid(
                ui,
                "paying and extending",
                api.extend(&id, hours, &payment.pay()),
            )
            .await?;
            if json {
                print_json(&bought)?;
            } else {
                say!(
                    "{} now expires at {}",
                    bought.order.id,
                    bought.order.expires_at.as_deref().unwrap_or("-")
                );
                if let Some(tx) = &bought.tx_hash {
                    eprintln!("x402c: paid in transaction {tx}");
                }
            }
            Ok(0)
        }
        Machines::Resize {
            id,
            plan,
            confirm_disk_resize,
        } => {
            let api = client(config, unpaid(), ui, true)?;
            let resized = spin("resizing", api.resize(&id, &plan, confirm_disk_resize)).await?;
            if json {
                print_json(&resized)?;
            } else {
                say!(
                    "{} is now {} (was {}); expires at {} (was {}), ${} carried over",
                    resized.instance_id.as_deref().unwrap_or(&id),
                    resized.to_plan.as_deref().unwrap_or(&plan),
                    resized.from_plan.as_deref().unwrap_or("-"),
                    resized.new_expires_at.as_deref().unwrap_or("-"),
                    resized.old_expires_at.as_deref().unwrap_or("-"),
                    resized
                        .remaining_credit
                        .as_ref()
                        .map_or("-".into(), ToString::to_string),
                );
            }
            Ok(0)
        }
        Machines::Destroy { id } => {
            let api = client(config, unpaid(), ui, true)?;
            if !confirm(
                ui,
                &format!("Destroy instance {id}? Its remaining time is lost."),
            )? {
                eprintln!("x402c: not destroyed");
                return Ok(exit::REFUSED);
            }
            let gone = spin("destroying", api.destroy(&id)).await?;
            if json {
                print_json(&serde_json::json!({ "destroyed": id, "instance": gone }))?;
            } else {
                say!("destroyed {id}");
            }
            Ok(0)
        }
        Machines::ApiKey(ApiKeyCommand::Create { label }) => {
            let api = client(config, unpaid(), ui, true)?;
            let key = api.create_api_key(label.as_deref()).await?;
            if json {
                print_json(&key)?;
            } else {
                say!("{}", key.api_key);
                eprintln!(
                    "x402c: API key {} created; it is shown once: store it now (COMPUTE_API_KEY)",
                    key.id
                );
            }
            Ok(0)
        }
        Machines::ApiKey(ApiKeyCommand::List) => {
            let api = client(config, unpaid(), ui, true)?;
            let keys = api.api_keys().await?;
            if json {
                print_json(&keys)?;
                return Ok(0);
            }
            let mut out = table(&["ID", "LABEL", "KEY", "CREATED", "REVOKED"]);
            for k in &keys {
                out.add_row(vec![
                    k.id.clone(),
                    k.label.clone().unwrap_or_default(),
                    format!("x402c_…{}", k.key_last4.as_deref().unwrap_or("")),
                    k.created_at.clone().unwrap_or_default(),
                    k.revoked_at.clone().unwrap_or_default(),
                ]);
            }
            say!("{out}");
            Ok(0)
        }
        Machines::ApiKey(ApiKeyCommand::Revoke { id }) => {
            let api = client(config, unpaid(), ui, true)?;
            api.revoke_api_key(&id).await?;
            if json {
                print_json(&serde_json::json!({ "revoked": id }))?;
            } else {
                say!("revoked {id}");
            }
            Ok(0)
        }
        Machines::Credits(CreditsCommand::Balance) => {
            let api = client(config, unpaid(), ui, true)?;
            let credits = spin("reading credits", api.credits()).await?;
            if json {
                print_json(&credits)?;
            } else {
                say!(
                    "balance {} (deposited {}, spent {})",
                    dollars(Some(&credits.balance)),
                    dollars(Some(&credits.total_deposited)),
                    dollars(Some(&credits.total_spent))
                );
            }
            Ok(0)
        }
        Machines::Credits(CreditsCommand::Topup { usd, payment }) => {
            let amount: x402_core::UsdMicros = usd
                .trim()
                .trim_start_matches('$')
                .parse()
                .with_context(|| format!("`{usd}` is not an amount of dollars"))?;
            if payment.use_credits {
                bail!("credits are bought with x402, not with credits: drop --use-credits");
            }
            let api = client(config, paying()?, ui, true)?;
            if payment.dry_run {
                say!(
                    "would buy {amount} of credits on {}; nothing paid (--dry-run)",
                    payment.network
                );
                return Ok(0);
            }
            consent(ui)?;
            let topped = spin_paid(ui, "paying", api.top_up(amount, &payment.network)).await?;
            if json {
                print_json(&topped)?;
            } else {
                say!(
                    "credits: {} (deposited {})",
                    dollars(topped.new_balance.as_ref()),
                    dollars(topped.deposited.as_ref())
                );
            }
            Ok(0)
        }
        Machines::Wallet(command) => wallet_command(command, config, json),
    }
}

fn paid_how(pay: &Pay) -> String {
    match pay {
        Pay::X402(network) => format!("with x402 on {network}"),
        Pay::Credits => "from credits".into(),
    }
}

fn show_instance(instance: &compute_api::Instance, json: bool) -> Result<()> {
    if json {
        return print_json(instance);
    }
    let mut out = table(&["FIELD", "VALUE"]);
    let rows = [
        ("id", Some(instance.id.clone())),
        ("status", Some(instance.status.to_string())),
        ("label", instance.label.clone()),
        ("plan", instance.plan.clone()),
        ("region", instance.region.clone()),
        ("ip", instance.ip().map(str::to_owned)),
        ("created", instance.created_at.clone()),
        ("expires", instance.expires_at.clone()),
        ("destroyed", instance.destroyed_at.clone()),
        (
            "prepaid hours",
            instance.prepaid_hours.map(|h| h.to_string()),
        ),
        (
            "paid",
            instance.payment_amount.as_ref().map(|d| d.to_string()),
        ),
        ("provider", instance.provider.clone()),
        ("access", instance.access_method.clone()),
    ];
    for (field, value) in rows {
        if let Some(value) = value {
            out.add_row(vec![field.to_owned(), value]);
        }
    }
    if let Some(ai) = instance.metadata.get("ai") {
        out.add_row(vec![
            "ai endpoint".to_owned(),
            ai["endpoint"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    say!("{out}");
    Ok(())
}

/// Polls until `id` is up (every 2 s), with a spinner.
async fn wait_active(api: &Client, id: &str, timeout: Duration) -> Result<compute_api::Instance> {
    let deadline = tokio::time::Instant::now() + timeout;
    let poll = async {
        loop {
            let instance = api.instance(id).await?;
            if instance.status.is_up() && instance.ip().is_some() {
                return Ok::<_, anyhow::Error>(instance);
            }
            if !instance.status.is_live() {
                bail!(
                    "instance {id} is {}: it will not become active",
                    instance.status
                );
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "instance {id} is still {} after {} s; `x402c wait {id}` keeps waiting",
                    instance.status,
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    spin(&format!("waiting for {id} to become active"), poll).await
}

async fn provision_command(
    provision: Provision,
    config: &Config,
    journal: Arc<dyn x402_reqwest::PaymentJournal>,
    ui: Ui,
) -> Result<u8> {
    let hours = hours_of(&provision)?;
    let ssh_public_key = match &provision.ssh_key_file {
        Some(path) => {
            let key = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the SSH key {}", path.display()))?;
            let key = key.trim().to_owned();
            if !key.starts_with("ssh-") && !key.starts_with("ecdsa-") {
                bail!(
                    "{} is not an SSH public key (it should start with ssh-ed25519, ssh-rsa or ecdsa-)",
                    path.display()
                );
            }
            Some(key)
        }
        None => None,
    };
    let api = client(config, journal, ui, true)?;
    // The price, from the catalog, shown before anything is signed.
    let plans = match provision.plan.split('-').next() {
        Some("vcg") => api.plans(Some(PlanType::Vcg)).await?,
        Some("vhp") => api.plans(Some(PlanType::Vhp)).await?,
        Some("vdc") => api.plans(Some(PlanType::Vdc)).await?,
        _ => api.plans(None).await?,
    };
    let plan = plans
        .iter()
        .find(|p| p.id == provision.plan)
        .with_context(|| {
            format!(
                "no plan `{}`: `x402c plans` lists them (--type vcg for GPUs)",
                provision.plan
            )
        })?;
    if !plan.locations.is_empty() && !plan.locations.contains(&provision.region) {
        bail!(
            "plan {} is not offered in `{}`; it is in {}",
            plan.id,
            provision.region,
            plan.locations.join(", ")
        );
    }
    let price = plan
        .our_hourly
        .as_ref()
        .and_then(compute_api::Decimal::usd)
        .and_then(|hourly| hourly.0.checked_mul(hours))
        .map(x402_core::UsdMicros);
    let pay = provision.payment.pay();
    let days = match (hours % 24, hours / 24) {
        (0, 1) => " (1 day)".to_owned(),
        (0, days) => format!(" ({days} days)"),
        _ => String::new(),
    };
    let summary = format!(
        "{} in {} for {hours} hours{days}, {}: {}",
        plan.id,
        provision.region,
        paid_how(&pay),
        price.map_or_else(|| "price unknown".into(), |p| p.to_string())
    );
    if provision.payment.dry_run {
        if ui.json {
            print_json(
                &serde_json::json!({ "plan": plan.id, "region": provision.region, "hours": hours, "price": price.map(|p| p.to_string()), "paid": false }),
            )?;
        } else {
            say!("would buy {summary}; nothing paid (--dry-run)");
        }
        return Ok(0);
    }
    if let Some(price) = price
        && price > config.max_spend
    {
        eprintln!(
            "x402c: not paid: {summary} is over the cap of {} per payment (--max-price, COMPUTE_MAX_SPEND_USD)",
            config.max_spend
        );
        return Ok(exit::REFUSED);
    }
    consent(ui)?;
    if matches!(pay, Pay::Credits) && !confirm(ui, &format!("Buy {summary}?"))? {
        eprintln!("x402c: not bought");
        return Ok(exit::REFUSED);
    }
    if !ui.json {
        eprintln!("x402c: buying {summary}");
    }
    let mut request = ProvisionRequest::new(&provision.plan, &provision.region, hours);
    request.os_id = provision.os_id;
    request.label = provision.label.clone();
    request.ssh_public_key = ssh_public_key;
    let bought = spin_paid(ui, "paying and provisioning", api.provision(&request, &pay)).await?;
    if let Some(key) = &bought.management_api_key {
        eprintln!("x402c: management API key (shown once): {key}");
    }
    let instance = match provision.wait {
        true => wait_active(&api, &bought.order.id, Duration::from_secs(600)).await?,
        false => bought.order.clone(),
    };
    if ui.json {
        print_json(&serde_json::json!({ "order": instance, "tx_hash": bought.tx_hash }))?;
    } else {
        say!("{}", instance.id);
        eprintln!(
            "x402c: {} is {}{}; expires {}",
            instance.id,
            instance.status,
            instance
                .ip()
                .map(|ip| format!(" at {ip}"))
                .unwrap_or_default(),
            instance.expires_at.as_deref().unwrap_or("-")
        );
        if let Some(tx) = &bought.tx_hash {
            eprintln!("x402c: paid in transaction {tx}");
        }
    }
    Ok(0)
}

fn wallet_command(command: WalletCommand, config: &Config, json: bool) -> Result<u8> {
    let dir = &config.wallets_dir;
    let name = &config.wallet;
    match command {
        WalletCommand::New { solana } => {
            let password = wallet::password(true)?;
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            os_random(&mut *secret);
            wallet::write_evm(dir, name, &secret, &password)?;
            if solana {
                let mut secret = [0u8; 32];
                os_random(&mut secret);
                let signer = LocalSolanaSigner::from_secret(secret);
                wallet::write_solana(dir, name, &signer)?;
            }
            print_addresses(config, json)
        }
        WalletCommand::Import { solana } => {
            let text = match (solana, env("SOLANA_SECRET_KEY"), env("PRIVATE_KEY")) {
                (true, Some(key), _) | (false, _, Some(key)) => zeroize::Zeroizing::new(key),
                _ => {
                    use std::io::{IsTerminal as _, Read as _};
                    let mut text = String::new();
                    if std::io::stdin().is_terminal() {
                        text = dialoguer::Password::new()
                            .with_prompt(if solana {
                                "Solana keypair"
                            } else {
                                "EVM private key (hex)"
                            })
                            .interact()
                            .context("cannot read the key")?;
                    } else {
                        std::io::stdin()
                            .read_to_string(&mut text)
                            .context("cannot read the key from stdin")?;
                    }
                    zeroize::Zeroizing::new(text)
                }
            };
            if solana {
                let signer = LocalSolanaSigner::from_text(text.trim()).map_err(|_| {
                    anyhow::anyhow!("not a Solana keypair (a JSON array of 64 bytes, or base58)")
                })?;
                wallet::write_solana(dir, name, &signer)?;
            } else {
                let key = text.trim().trim_start_matches("0x");
                let mut secret = zeroize::Zeroizing::new([0u8; 32]);
                alloy::hex::decode_to_slice(key, &mut *secret)
                    .map_err(|_| anyhow::anyhow!("not a 32-byte hex private key"))?;
                LocalEvmSigner::from_bytes(&secret)
                    .map_err(|_| anyhow::anyhow!("not a valid secp256k1 private key"))?;
                let password = wallet::password(true)?;
                wallet::write_evm(dir, name, &secret, &password)?;
            }
            print_addresses(config, json)
        }
        WalletCommand::Address { verify } => {
            if verify {
                let files = wallet::files(dir, name)?;
                let stored = wallet::keystore_address(&files.evm)
                    .with_context(|| format!("no keystore for wallet `{name}`"))?;
                let password = wallet::password(false)?;
                let signer = wallet::read_evm(dir, name, &password)?;
                let derived = format!("{:#x}", x402_core::EvmSigner::address(&signer));
                if derived != stored.to_ascii_lowercase() {
                    bail!(
                        "the keystore of `{name}` decrypts to {derived}, not the {stored} it names"
                    );
                }
                if !json {
                    eprintln!("x402c: the password opens the keystore, and its key is {derived}");
                }
            }
            print_addresses(config, json)
        }
        WalletCommand::List => {
            let wallets = wallet::list(dir)?;
            if json {
                let all: Vec<_> = wallets
                    .iter()
                    .map(|(name, evm, solana)| {
                        let files = wallet::files(dir, name).ok();
                        serde_json::json!({
                            "name": name,
                            "evm": evm.then(|| files.as_ref().and_then(|f| wallet::keystore_address(&f.evm))).flatten(),
                            "solana": solana.then(|| wallet::read_solana(dir, name).ok().flatten().map(|s| s.pubkey().to_string())).flatten(),
                        })
                    })
                    .collect();
                print_json(&all)?;
                return Ok(0);
            }
            if wallets.is_empty() {
                say!("no wallets in {}: `x402c wallet new`", dir.display());
            }
            let mut out = table(&["NAME", "EVM", "SOLANA"]);
            for (name, evm, solana) in &wallets {
                let files = wallet::files(dir, name)?;
                out.add_row(vec![
                    name.clone(),
                    evm.then(|| wallet::keystore_address(&files.evm))
                        .flatten()
                        .unwrap_or_default(),
                    solana
                        .then(|| wallet::read_solana(dir, name).ok().flatten())
                        .flatten()
                        .map(|s| s.pubkey().to_string())
                        .unwrap_or_default(),
                ]);
            }
            say!("{out}");
            Ok(0)
        }
    }
}

fn print_addresses(config: &Config, json: bool) -> Result<u8> {
    let files = wallet::files(&config.wallets_dir, &config.wallet)?;
    let evm = wallet::keystore_address(&files.evm);
    let solana =
        wallet::read_solana(&config.wallets_dir, &config.wallet)?.map(|s| s.pubkey().to_string());
    if evm.is_none() && solana.is_none() {
        bail!(
            "no wallet `{}` in {}: `x402c wallet new` makes one",
            config.wallet,
            config.wallets_dir.display()
        );
    }
    if json {
        print_json(&serde_json::json!({ "name": config.wallet, "evm": evm, "solana": solana }))?;
    } else {
        if let Some(evm) = evm {
            say!("evm     {evm}");
        }
        if let Some(solana) = solana {
            say!("solana  {solana}");
        }
    }
    Ok(0)
}
