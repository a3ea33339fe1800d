//! The devnet: a local, faithful stand-in for the machines API (`compute.x402layer.cc`) and its
//! x402 facilitator, on real local chains.
//!
//! [`Devnet::start`] starts an `anvil` chain with chain id 84532 (Base Sepolia) whose USDC
//! (EIP-3009 and ERC-2612, 6 decimals, domain `USDC`/`2`) sits at the real Base Sepolia USDC
//! address, and a second anvil with chain id 4326 (MegaETH) carrying an 18-decimal MegaUSD-like
//! permit token at the real MegaUSD address; a litesvm Solana ledger with the Solana devnet
//! USDC mint and a fee payer; opens the SQLite state; and serves on one loopback
//! port:
//!
//! - the machines API under `/compute/...` ([`machines`]);
//! - the facilitator at `/supported`, `/verify`, `/settle` ([`facilitator`]);
//! - a Solana JSON-RPC subset over the litesvm ledger at `/solana` ([`solana_rpc`]);
//! - devnet-only admin routes under `/devnet/...` (funding wallets, fault injection).
//!
//! Every signature is verified with `x402-core` and every payment settles by a real
//! transaction on the local chain. State lives in the data directory: restarting with the same
//! directory keeps credits, API keys, used nonces, settlements and the chains' balances.
//!
//! **Status:** every machines endpoint (catalog, provision, instances, extend, resize,
//! password, destroy, credits, API keys) with wallet and API-key auth; x402 on Base Sepolia
//! (`exact`), MegaETH (`permit`) and Solana devnet (`exact`, litesvm in process, with a
//! JSON-RPC subset at `/solana`) or credits; the facilitator for all three; fault injection
//! (provider rejection, boot delay, Solana transient 5xx). The official Python SDK pays it and
//! `x402conf live` passes against it.

pub mod catalog;
mod error;
pub mod evm;
pub mod facilitator;
pub mod instances;
pub mod machines;
pub mod solana;
pub mod solana_rpc;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, U256, address};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use x402_core::{Clock, Network};

pub use error::{Error, Result};

use crate::evm::{EvmChain, TokenSpec};
use crate::facilitator::Facilitator;
use crate::machines::AppState;
use crate::store::Store;

/// The facilitator's Solana fee payer (a devnet key: public, worthless).
pub const SOLANA_FEE_PAYER_SECRET: [u8; 32] = [0x46; 32];

/// Where Solana payments to the devnet go (the owner of the receiving USDC account).
pub const SOLANA_TREASURY: x402_core::SolanaAddress = x402_core::SolanaAddress::new([0x7e; 32]);

/// Where payments to the devnet go (anvil's third default account).
pub const TREASURY: Address = address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");

/// How to run the devnet.
#[derive(Clone, Debug)]
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
}

/// Fault injection settings (also adjustable at runtime with `POST /devnet/faults`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Per thousand paid instances, how many the simulated provider rejects (refunded to
    /// credits).
    #[serde(default)]
    pub provider_reject_permille: u16,
    /// How long a new instance stays `pending` before it is `active`.
    #[serde(default)]
    pub boot_delay_ms: u64,
    /// Per thousand Solana payments, how many get a transient 503 before settlement (the
    /// payment is not used; retry with a fresh blockhash).
    #[serde(default)]
    pub solana_transient_5xx_permille: u16,
}

impl Config {
    /// In-memory state, a free loopback port, both EVM chains.
    pub fn ephemeral(anvil: PathBuf) -> Config {
        Config {
            anvil,
            data_dir: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            megaeth: true,
            solana: true,
            faults: FaultConfig::default(),
        }
    }
}

/// The Base Sepolia USDC stand-in.
pub fn base_sepolia_usdc() -> TokenSpec {
    TokenSpec {
        name: "USDC",
        symbol: "USDC",
        version: "2",
        decimals: 6,
        address: address!("036CbD53842c5426634e7929541eC2318f3dCF7e"),
    }
}

/// The MegaETH MegaUSD stand-in.
pub fn megaeth_usdm() -> TokenSpec {
    TokenSpec {
        name: "MegaUSD",
        symbol: "USDM",
        version: "1",
        decimals: 18,
        address: address!("FAfDdbb3FC7688494971a79cc65DCa3EF82079E7"),
    }
}

/// The system clock (the devnet is a server; it may read the time).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A running devnet.
pub struct Devnet {
    url: String,
    base: Arc<EvmChain>,
    megaeth: Option<Arc<EvmChain>>,
    solana: Option<Arc<solana::SolanaChain>>,
    store: Arc<Store>,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Devnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devnet")
            .field("url", &self.url)
            .field("base", &self.base)
            .field("megaeth", &self.megaeth)
            .finish_non_exhaustive()
    }
}

impl Devnet {
    /// Starts the chains, opens the state and serves.
    ///
    /// # Errors
    /// [`Error::Chain`] when anvil cannot start; [`Error::Store`]; [`Error::Io`] when the port
    /// cannot be bound.
    pub async fn start(config: Config) -> Result<Devnet> {
        if let Some(dir) = &config.data_dir {
            std::fs::create_dir_all(dir)?;
        }
        let state_file = |name: &str| config.data_dir.as_ref().map(|d| d.join(name));
        let store = Arc::new(Store::open(state_file("devnet.sqlite").as_deref())?);
        let base = Arc::new(
            EvmChain::start(
                &config.anvil,
                84532,
                base_sepolia_usdc(),
                state_file("base-sepolia.anvil.json"),
            )
            .await?,
        );
        let megaeth = match config.megaeth {
            true => Some(Arc::new(
                EvmChain::start(
                    &config.anvil,
                    4326,
                    megaeth_usdm(),
                    state_file("megaeth.anvil.json"),
                )
                .await?,
            )),
            false => None,
        };
        let solana = match config.solana {
            true => {
                let chain = solana::SolanaChain::new(
                    SOLANA_FEE_PAYER_SECRET,
                    state_file("solana-ledger.json"),
                )?;
                // The receiving token account must exist: x402 payments never create it.
                chain.fund(&SOLANA_TREASURY, 0)?;
                Some(Arc::new(chain))
            }
            false => None,
        };
        let clock: Arc<dyn Clock + Send + Sync> = Arc::new(SystemClock);
        let facilitator = Arc::new(Facilitator::new(
            base.clone(),
            megaeth.clone(),
            solana.clone(),
            store.clone(),
            clock.clone(),
        ));
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let url = format!("http://{address}");
        let state = Arc::new(AppState {
            store: store.clone(),
            facilitator: facilitator.clone(),
            base: base.clone(),
            megaeth: megaeth.clone(),
            solana: solana.clone(),
            pay_to_evm: TREASURY,
            pay_to_solana: SOLANA_TREASURY,
            public_url: url.clone(),
            clock,
            faults: machines::Faults::new(config.faults),
        });
        let app = Router::new()
            .merge(machines::routes(state.clone()))
            .merge(instances::routes(state.clone()))
            .merge(facilitator::routes(facilitator))
            .merge(match &solana {
                Some(chain) => solana_rpc::routes(chain.clone()),
                None => Router::new(),
            })
            .merge(
                Router::new()
                    .route("/devnet/fund", post(fund))
                    .route("/devnet/faults", post(set_faults))
                    .with_state(state),
            );
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "devnet server stopped");
            }
        });
        tracing::info!(%url, base = base.rpc_url(), "devnet listening");
        Ok(Devnet {
            url,
            base,
            megaeth,
            solana,
            store,
            server,
        })
    }

    /// Base URL of the machines API and facilitator.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The Base Sepolia chain.
    pub fn base(&self) -> &EvmChain {
        &self.base
    }
    /// The MegaETH chain.
    pub fn megaeth(&self) -> Option<&EvmChain> {
        self.megaeth.as_deref()
    }
    /// The Solana ledger.
    pub fn solana(&self) -> Option<&solana::SolanaChain> {
        self.solana.as_deref()
    }

    /// The state database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops serving and stops the chains (their state files are written on exit).
    pub async fn shutdown(self) {
        self.server.abort();
        let _ = self.server.await;
    }
}

/// `POST /devnet/faults {"provider_reject_permille", "boot_delay_ms"}`: devnet only.
async fn set_faults(
    State(state): State<Arc<AppState>>,
    Json(config): Json<FaultConfig>,
) -> Response {
    state.faults.set(config);
    Json(json!({ "success": true })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRequest {
    address: String,
    usdc: String,
}

/// `POST /devnet/fund {"address", "usdc"}`: mints devnet stablecoins (and gas) to an EVM address
/// on both EVM chains. Devnet only.
async fn fund(State(state): State<Arc<AppState>>, Json(request): Json<FundRequest>) -> Response {
    let bad = |message: String| {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
    };
    let Ok(dollars) = request.usdc.parse::<x402_core::UsdMicros>() else {
        return bad(format!("`{}` is not a dollar amount", request.usdc));
    };
    if let Ok(owner) = request.address.parse::<x402_core::SolanaAddress>() {
        let Some(solana) = &state.solana else {
            return bad("the Solana ledger is not running".to_owned());
        };
        if let Err(error) = solana.fund(&owner, dollars.0) {
            return (
                StatusCode::BAD_GATEWAY,
                Json(json!({ "error": error.to_string() })),
            )
                .into_response();
        }
        return Json(json!({ "success": true, "address": owner.to_string(), "usdc": request.usdc, "network": Network::SOLANA_DEVNET.to_string() })).into_response();
    }
    let Ok(address) = request.address.parse::<Address>() else {
        return bad(format!(
            "`{}` is neither an EVM nor a Solana address",
            request.address
        ));
    };
    let mut transactions = serde_json::Map::new();
    let chains = std::iter::once(&state.base).chain(state.megaeth.as_ref());
    for chain in chains {
        let scale = U256::from(10u64).pow(U256::from(chain.token().decimals.saturating_sub(6)));
        match chain.fund(address, U256::from(dollars.0) * scale).await {
            Ok(hash) => {
                transactions.insert(
                    format!("eip155:{}", chain.chain_id()),
                    json!(format!("{hash:#x}")),
                );
            }
            Err(error) => {
                return (
                    StatusCode::BAD_GATEWAY,
                    Json(json!({ "error": error.to_string() })),
                )
                    .into_response();
            }
        }
    }
    Json(json!({ "success": true, "address": address.to_checksum(None), "usdc": request.usdc, "transactions": transactions })).into_response()
}
