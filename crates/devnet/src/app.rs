//! The top of the crate: [`Devnet::start`] starts the chains, opens the ledger, builds the
//! facilitator, auth and cashier every service shares, and mounts the services (the machines
//! API, the grid coordinator, the facilitator's HTTP face, the Solana JSON-RPC, the admin routes) on one port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;

use crate::admin::Admin;
use crate::auth::Authenticator;
use crate::chains::evm::EvmChain;
use crate::chains::solana::SolanaChain;
use crate::chains::{Chains, ChainsConfig, SOLANA_TREASURY, TREASURY, solana_rpc};
use crate::clock::{OsRandom, SharedClock, SharedRandom, SystemClock};
use crate::error::Result;
use crate::facilitator::{self, Facilitator, Payees};
use crate::faults::{FaultConfig, Faults};
use crate::grid::Grid;
use crate::machines::Machines;
use crate::payment::Cashier;
use crate::store::Store;

/// How to run the devnet.
#[derive(Clone)]
pub struct Config {
    /// The `anvil` binary (`cargo xtask tools` installs it under `.tools/`).
    pub anvil: PathBuf,
    /// Where state lives; `None` keeps everything in memory and temporary files.
    pub data_dir: Option<PathBuf>,
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Whether to start the MegaETH chain too.
    pub megaeth: bool,
    /// Whether to start the Solana ledger (litesvm) too.
    pub solana: bool,
    /// Fault injection.
    pub faults: FaultConfig,
    /// The time every part of the devnet reads, the chains' block timestamps included.
    pub clock: SharedClock,
    /// Where ids, API keys, passwords and fault draws come from.
    pub random: SharedRandom,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("anvil", &self.anvil)
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("megaeth", &self.megaeth)
            .field("solana", &self.solana)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// In-memory state, a free loopback port, every chain.
    pub fn ephemeral(anvil: PathBuf) -> Config {
        Config {
            anvil,
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            megaeth: true,
            solana: true,
            faults: FaultConfig::default(),
            clock: Arc::new(SystemClock),
            random: Arc::new(OsRandom),
        }
    }
}

/// How often payments whose confirmation was not awaited are checked.
const RECONCILE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Creates `dir` if needed and takes its lock file, or says another devnet holds it.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("devnet.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(crate::error::Error::DataDirLocked { path }),
        Err(std::fs::TryLockError::Error(error)) => Err(error.into()),
    }
}

/// A running devnet.
pub struct Devnet {
    url: String,
    chains: Chains,
    facilitator: Arc<Facilitator>,
    store: Arc<Store>,
    faults: Arc<Faults>,
    server: tokio::task::JoinHandle<()>,
    reconciler: tokio::task::JoinHandle<()>,
    sweeper: tokio::task::JoinHandle<()>,
    /// Held for the devnet's life: no other devnet writes this data directory meanwhile.
    _lock: Option<std::fs::File>,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet")
            .field("url", &self.url)
            .field("chains", &self.chains)
            .finish_non_exhaustive()
    }
}

impl Devnet {
    /// Starts the chains, opens the state and serves.
    ///
    /// # Errors
    /// A chain error when anvil or the ledger cannot start; [`crate::Error::Store`];
    /// [`crate::Error::Io`] when the data directory or the port cannot be used.
    pub async fn start(config: Config) -> Result<Devnet> {
        crate::install_crypto_provider();
        let lock = match &config.data_dir {
            Some(dir) => Some(lock_data_dir(dir)?),
            None => None,
        };
        let store = Arc::new(Store::open(
            config
                .data_dir
                .as_ref()
                .map(|d| d.join("devnet.sqlite"))
                .as_deref(),
        )?);
        // Requests a previous run was answering are gone; their payment ids may be used again.
        store.forget_unanswered_payment_ids()?;
        let chains = Chains::start(&ChainsConfig {
            anvil: config.anvil.clone(),
            data_dir: config.data_dir.clone(),
            megaeth: config.megaeth,
            solana: config.solana,
            clock: config.clock.clone(),
        })
        .await?;
        let clock = config.clock.clone();
        let faults = Arc::new(Faults::new(config.faults, config.random.clone()));
        let payees = Payees {
            evm: TREASURY,
            solana: SOLANA_TREASURY,
        };
        let mut boot = [0u8; 16];
        config.random.fill(&mut boot);
        let facilitator = Arc::new(Facilitator::new(
            chains.clone(),
            payees,
            store.clone(),
            clock.clone(),
            faults.clone(),
            alloy::hex::encode(boot),
        ));
        // What a previous run left half-settled is resolved before anyone is served.
        let resolved = facilitator.reconcile().await?;
        if resolved > 0 {
            tracing::info!(
                resolved,
                "reconciled the payments a previous run left unresolved"
            );
        }
        let reconciler = tokio::spawn({
            let facilitator = facilitator.clone();
            async move {
                let mut every = tokio::time::interval(RECONCILE_EVERY);
                loop {
                    every.tick().await;
                    if let Err(error) = facilitator.reconcile().await {
                        tracing::warn!(%error, "reconciling pending payments failed; will retry");
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let url = format!("http://{}", listener.local_addr()?);

        let auth = Arc::new(Authenticator::new(store.clone(), clock.clone()));
        let cashier = Arc::new(Cashier::new(
            facilitator.clone(),
            url.clone(),
            faults.clone(),
        ));
        let machines = Arc::new(Machines::new(
            store.clone(),
            auth.clone(),
            cashier.clone(),
            clock.clone(),
            config.random.clone(),
            faults.clone(),
        ));
        let grid = Arc::new(Grid::new(
            store.clone(),
            auth,
            cashier.clone(),
            clock,
            config.random.clone(),
            faults.clone(),
            url.clone(),
        ));
        let sweeper = grid.clone().spawn_sweeper();
        let admin = Arc::new(Admin::new(
            chains.clone(),
            faults.clone(),
            cashier,
            store.clone(),
        ));
        let mut app = Router::new()
            .merge(machines.routes())
            .merge(grid.routes())
            .merge(facilitator::http::routes(facilitator.clone()))
            .merge(admin.routes());
        if let Some(solana) = &chains.solana {
            app = app.merge(solana_rpc::routes(solana.clone()));
        }
        // Answers and stream events go out as written: without TCP_NODELAY, a small SSE event
        // right after another waits for the first one's delayed ACK (up to 40 ms on Linux).
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
            }
        });
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "devnet server stopped");
            }
        });
        tracing::info!(%url, base = chains.base.rpc_url(), "devnet listening");
        Ok(Devnet {
            url,
            chains,
            facilitator,
            store,
            faults,
            server,
            reconciler,
            sweeper,
            _lock: lock,
        })
    }

    /// Base URL of the machines API and facilitator.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// Every running chain.
    pub fn chains(&self) -> &Chains {
        &self.chains
    }
    /// The Base Sepolia chain.
    pub fn base(&self) -> &EvmChain {
        &self.chains.base
    }
    /// The MegaETH chain.
    pub fn megaeth(&self) -> Option<&EvmChain> {
        self.chains.megaeth.as_deref()
    }
    /// The Solana ledger.
    pub fn solana(&self) -> Option<&SolanaChain> {
        self.chains.solana.as_deref()
    }
    /// The facilitator.
    pub fn facilitator(&self) -> &Facilitator {
        &self.facilitator
    }
    /// The state database.
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// The live fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Stops serving and stops the chains (their state files are written on exit).
    pub async fn shutdown(self) {
        self.reconciler.abort();
        let _ = self.reconciler.await;
        self.sweeper.abort();
        let _ = self.sweeper.await;
        self.server.abort();
        let _ = self.server.await;
    }
}
