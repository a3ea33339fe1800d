//! The devnet's real local chains, at the bottom of the crate: two anvil EVM chains
//! ([`evm`]), an in-process litesvm Solana ledger ([`solana`]) and the Solana JSON-RPC subset
//! served over it ([`solana_rpc`]). Nothing here knows about payments or HTTP APIs above it.

pub mod evm;
pub mod solana;
pub mod solana_rpc;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use alloy::primitives::{Address, U256, address};
use x402_core::{Network, SolanaAddress};

use crate::clock::SharedClock;
use crate::error::Result;
use evm::{EvmChain, TokenSpec};
use solana::SolanaChain;

/// The facilitator's Solana fee payer secret (a devnet key: public, worthless).
pub(crate) const SOLANA_FEE_PAYER_SECRET: [u8; 32] = [0x46; 32];

/// Where Solana payments to the devnet go (the owner of the receiving USDC account).
pub const SOLANA_TREASURY: SolanaAddress = SolanaAddress::new([0x7e; 32]);

/// Where payments to the devnet go on the EVM chains (anvil's third default account).
pub const TREASURY: Address = address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC");

/// Chain id of the Base Sepolia stand-in.
pub const BASE_SEPOLIA_CHAIN_ID: u64 = 84532;
/// Chain id of the MegaETH stand-in.
pub const MEGAETH_CHAIN_ID: u64 = 4326;

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

/// Which chains to start, and where they keep their state.
#[derive(Clone)]
pub struct ChainsConfig {
    /// The `anvil` binary.
    pub anvil: PathBuf,
    /// Where the chains keep their state; `None` keeps it in memory.
    pub data_dir: Option<PathBuf>,
    /// Whether to start the MegaETH chain.
    pub megaeth: bool,
    /// Whether to start the Solana ledger.
    pub solana: bool,
    /// The devnet's clock: the EVM chains' block timestamps, the Solana ledger's clock and
    /// its blockhashes follow it.
    pub clock: SharedClock,
}

/// Every running chain of the devnet.
#[derive(Clone, Debug)]
pub struct Chains {
    /// Base Sepolia (`exact`, EIP-3009).
    pub base: Arc<EvmChain>,
    /// MegaETH (`permit`), when running.
    pub megaeth: Option<Arc<EvmChain>>,
    /// The Solana ledger, when running.
    pub solana: Option<Arc<SolanaChain>>,
}

impl Chains {
    /// Starts (or resumes, from `config.data_dir`) every configured chain.
    ///
    /// # Errors
    /// A chain error when anvil cannot start or the ledger cannot be created or restored.
    pub async fn start(config: &ChainsConfig) -> Result<Chains> {
        let state_file = |name: &str| config.data_dir.as_deref().map(|d: &Path| d.join(name));
        let base = EvmChain::start(
            &config.anvil,
            BASE_SEPOLIA_CHAIN_ID,
            base_sepolia_usdc(),
            state_file("base-sepolia.anvil.json"),
            config.clock.clone(),
        )
        .await?;
        let megaeth = match config.megaeth {
            true => Some(Arc::new(
                EvmChain::start(
                    &config.anvil,
                    MEGAETH_CHAIN_ID,
                    megaeth_usdm(),
                    state_file("megaeth.anvil.json"),
                    config.clock.clone(),
                )
                .await?,
            )),
            false => None,
        };
        let solana = match config.solana {
            true => {
                let chain = SolanaChain::new(
                    SOLANA_FEE_PAYER_SECRET,
                    state_file("solana-ledger.json"),
                    config.clock.clone(),
                )?;
                // The receiving token account must exist: x402 payments never create it.
                chain.fund(&SOLANA_TREASURY, 0)?;
                Some(Arc::new(chain))
            }
            false => None,
        };
        Ok(Chains {
            base: Arc::new(base),
            megaeth,
            solana,
        })
    }

    /// The running EVM chains, Base Sepolia first.
    pub fn evm(&self) -> impl Iterator<Item = &EvmChain> {
        std::iter::once(&*self.base).chain(self.megaeth.as_deref())
    }

    /// Mints `micros` micro-dollars of the devnet stablecoin (and gas) to `to` on every EVM
    /// chain, scaled to each token's decimals. Returns each chain's network and transaction.
    ///
    /// # Errors
    /// A chain error when a mint fails.
    pub async fn fund_evm(
        &self,
        to: Address,
        micros: u64,
    ) -> Result<Vec<(Network, alloy::primitives::B256)>> {
        let mut transactions = Vec::new();
        for chain in self.evm() {
            let scale = U256::from(10u64).pow(U256::from(chain.token().decimals.saturating_sub(6)));
            let amount = U256::from(micros).checked_mul(scale).unwrap_or(U256::MAX);
            let transaction = chain.fund(to, amount).await?;
            transactions.push((Network::evm(chain.chain_id()), transaction));
        }
        Ok(transactions)
    }
}

/// Writes `bytes` to `path` so that a crash leaves the old file or the new one, never a mix:
/// a temporary file beside it, fsynced, renamed over it, and the directory fsynced.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> crate::error::Result<()> {
    let failed = |error: std::io::Error| crate::error::Error::Snapshot {
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::File::create(&temporary).map_err(failed)?;
    std::io::Write::write_all(&mut file, bytes).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(failed)?;
    if let Some(directory) = path.parent() {
        std::fs::File::open(directory)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
    }
    Ok(())
}
