//! A real EVM chain for the devnet: an `anvil` process on loopback with the devnet token placed
//! at the real token address, and the calls the facilitator makes on it.
//!
//! **Durability.** anvil never writes a file of ours. With a state file, the chain is loaded
//! from it at start (`anvil_loadState`), and every transaction that moves money is followed by
//! [`EvmChain::persist`] before its caller goes on: the devnet dumps anvil's state
//! (`anvil_dumpState`) and writes it atomically (temporary file, fsync, rename, fsync of the
//! directory). Concurrent callers share one dump (group commit): each waits for a dump that
//! started after its transaction was mined, and one dump serves every transaction mined before
//! it began. So what a caller was told settled survives SIGKILL.
//!
//! **Lifetime.** anvil runs under a small `sh` watchdog that reads the devnet's end of a pipe
//! and kills anvil when it closes, which the kernel does when the devnet exits for any reason,
//! SIGKILL included: no anvil outlives its devnet.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alloy::network::{Ethereum, EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use tokio::io::{AsyncBufReadExt, BufReader};

use tokio::process::{Child, ChildStdin, Command};

use crate::clock::{Clock, SharedClock, SystemClock};
use crate::error::{Error, Result};

alloy::sol!(
    #[sol(rpc)]
    #[allow(missing_docs, clippy::too_many_arguments)]
    DevnetToken,
    "contracts/out/DevnetToken.json"
);

/// anvil's first default account (from its well-known test mnemonic): deploys, mints, pays gas.
const DEPLOYER_KEY: [u8; 32] =
    alloy::hex!("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
/// anvil's second default account: the facilitator that submits settlements.
const FACILITATOR_KEY: [u8; 32] =
    alloy::hex!("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d");

/// What a token on a devnet chain looks like.
#[derive(Clone, Debug)]
pub struct TokenSpec {
    /// EIP-712 and ERC-20 name.
    pub name: &'static str,
    /// Ticker.
    pub symbol: &'static str,
    /// EIP-712 version.
    pub version: &'static str,
    /// Decimals.
    pub decimals: u8,
    /// Where the token is placed (the real network's token address).
    pub address: Address,
}

/// A running anvil with the devnet token deployed.
pub struct EvmChain {
    chain_id: u64,
    url: String,
    token: TokenSpec,
    provider: DynProvider,
    facilitator: Address,
    /// The facilitator's key, which signs the settlements here (see
    /// [`EvmChain::send_recorded`]).
    wallet: EthereumWallet,
    /// Where the chain's state is persisted, if anywhere.
    state: Option<PathBuf>,
    /// Persist requests so far (each taken after its transaction was mined).
    requested: AtomicU64,
    /// The block number at the last compaction (or start).
    compacted_at: AtomicU64,
    /// The highest request a finished dump covers; held while dumping, so dumps are serial.
    persisted: tokio::sync::Mutex<u64>,
    /// The devnet's clock, and how far ahead of the system clock anvil was last set (s).
    clock: SharedClock,
    offset: AtomicI64,
    /// Held while a transaction is filled (nonce, gas) and sent: one at a time per chain.
    sending: tokio::sync::Mutex<()>,
    /// The watchdog; dropping its stdin (with the chain) stops anvil.
    _anvil: Child,
    _lifeline: Option<ChildStdin>,
}

/// The `sh` watchdog anvil runs under: anvil in the background with no stdin, then wait for
/// the devnet's pipe to close and kill anvil.
const WATCHDOG: &str = r#""$0" "$@" </dev/null & anvil=$!; cat >/dev/null; kill -9 "$anvil" 2>/dev/null; wait "$anvil""#;

impl std::fmt::Debug for EvmChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvmChain")
            .field("chain_id", &self.chain_id)
            .field("url", &self.url)
            .field("token", &self.token.address)
            .finish_non_exhaustive()
    }
}

/// The chain is compacted ([`EvmChain::compact`]) every this many blocks…
const COMPACT_AFTER_BLOCKS: u64 = 1024;
/// …keeping this many (as many as anvil keeps transactions of: `--transaction-block-keeper`).
const KEEP_BLOCKS: u64 = 64;
/// Without a state file, how many settlements between two looks at the chain's length.
const COMPACT_CHECK_EVERY: u64 = 64;

/// How long a sent transaction may take to show its receipt.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often to ask for it meanwhile.
const RECEIPT_POLL: Duration = Duration::from_millis(5);

/// What sending a contract call returns.
type Sent = std::result::Result<
    alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    alloy::contract::Error,
>;

impl EvmChain {
    /// Starts anvil with `chain_id` on a free loopback port and places the token.
    ///
    /// `state` is the chain's state file: the chain is loaded from it at start, and
    /// [`EvmChain::persist`] writes it, so a restart keeps balances and used authorizations.
    ///
    /// # Errors
    /// [`Error::AnvilStart`] or [`Error::AnvilSilent`] when anvil cannot start; a chain error
    /// when placing the token fails.
    pub async fn start(
        anvil: &Path,
        chain_id: u64,
        token: TokenSpec,
        state: Option<PathBuf>,
        clock: SharedClock,
    ) -> Result<EvmChain> {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg(anvil)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--chain-id",
                &chain_id.to_string(),
                "--accounts",
                "4",
                // Keep the transactions (and receipts) of recent blocks only; see
                // `EvmChain::compact` for the blocks themselves. Not `--prune-history`: it
                // makes every transaction slower as the chain grows.
                "--transaction-block-keeper",
                &KEEP_BLOCKS.to_string(),
                // Cancun, the EVM the token is compiled for. Prague's block-hash history
                // contract (EIP-2935) stores every block's hash in the state, and anvil's
                // calls and transactions get slower with every block mined (measured: 3×
                // within a minute of settlements); nothing here needs Prague.
                "--hardfork",
                "cancun",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let saved = match &state {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => {
                    return Err(Error::Snapshot {
                        path: path.clone(),
                        reason: error.to_string(),
                    });
                }
            },
            None => None,
        };
        let mut child = command.spawn().map_err(|source| Error::AnvilStart {
            path: anvil.to_owned(),
            source,
        })?;
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take().ok_or(Error::AnvilSilent { chain_id })?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(address) = line.strip_prefix("Listening on ") {
                    return Some(format!("http://{}", address.trim()));
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or(Error::AnvilSilent { chain_id })?;
        // Keep draining anvil's output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        // Invariant: both constants are anvil's well-known, valid secp256k1 keys.
        let deployer = PrivateKeySigner::from_bytes(&DEPLOYER_KEY.into())
            .expect("anvil's first default key is a valid secp256k1 key");
        let facilitator = PrivateKeySigner::from_bytes(&FACILITATOR_KEY.into())
            .expect("anvil's second default key is a valid secp256k1 key");
        let facilitator_address = facilitator.address();
        let facilitator_wallet = EthereumWallet::from(facilitator.clone());
        let mut wallet = EthereumWallet::from(deployer.clone());
        wallet.register_signer(facilitator);
        let endpoint = url.parse().map_err(|_| Error::AnvilSilent { chain_id })?;
        // The account nonce is read from the chain (pending) for every transaction, under
        // `sending`: a cached nonce manager keeps a nonce that a transaction refused at gas
        // estimation never used, leaving a gap that stalls every later transaction.
        crate::install_crypto_provider();
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .with_chain_id(chain_id)
            .wallet(wallet)
            .connect_http(endpoint)
            .erased();
        let chain = EvmChain {
            chain_id,
            url,
            token,
            provider,
            facilitator: facilitator_address,
            wallet: facilitator_wallet,
            state,
            requested: AtomicU64::new(0),
            compacted_at: AtomicU64::new(0),
            persisted: tokio::sync::Mutex::new(0),
            clock,
            offset: AtomicI64::new(0),
            sending: tokio::sync::Mutex::new(()),
            _anvil: child,
            _lifeline: lifeline,
        };
        if let Some(saved) = &saved {
            let bytes: Bytes = saved.trim().parse().map_err(|_| Error::Snapshot {
                path: chain.state.clone().unwrap_or_default(),
                reason: "not the hex anvil_dumpState writes".to_owned(),
            })?;
            chain
                .provider
                .raw_request::<_, bool>("anvil_loadState".into(), (bytes,))
                .await
                .map_err(chain.rpc("anvil_loadState"))?;
        }
        let placed = !chain
            .provider
            .get_code_at(chain.token.address)
            .await
            .map_err(chain.rpc("eth_getCode"))?
            .is_empty();
        if !(saved.is_some() && placed) {
            chain.place_token(deployer.address()).await?;
            chain.persist().await?;
        }
        Ok(chain)
    }

    async fn place_token(&self, minter: Address) -> Result<()> {
        let t = &self.token;
        let deployed = DevnetToken::deploy(
            &self.provider,
            t.name.to_owned(),
            t.symbol.to_owned(),
            t.version.to_owned(),
            t.decimals,
            minter,
        )
        .await
        .map_err(self.contract_error("deploy DevnetToken"))?;
        let code = self
            .provider
            .get_code_at(*deployed.address())
            .await
            .map_err(self.rpc("eth_getCode"))?;
        self.provider
            .raw_request::<_, ()>("anvil_setCode".into(), (t.address, code))
            .await
            .map_err(self.rpc("anvil_setCode"))?;
        Ok(())
    }

    /// Sets anvil's time to the devnet's clock when the two have drifted apart by more than a
    /// second (a test moved its clock): the next block's timestamp is then the clock's, so
    /// the token checks `validBefore` and permit deadlines against the same time as the
    /// facilitator.
    ///
    /// # Errors
    /// A chain error when anvil refuses.
    async fn follow_clock(&self) -> Result<()> {
        let now = self.clock.now_unix();
        let offset = i128::from(now) - i128::from(SystemClock.now_unix());
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        if offset.abs_diff(self.offset.load(Ordering::SeqCst)) <= 1 {
            return Ok(());
        }
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_setTime".into(), (now,))
            .await
            .map_err(self.rpc("anvil_setTime"))?;
        self.offset.store(offset, Ordering::SeqCst);
        Ok(())
    }

    /// Makes everything mined so far durable: returns once a dump of anvil's state that began
    /// after this call was written to the state file (atomically). Concurrent callers share
    /// one dump. Without a state file, only keeps the chain short (see `EvmChain::compact`).
    ///
    /// # Errors
    /// A chain error when anvil cannot dump; [`Error::Snapshot`] when the file cannot be
    /// written.
    pub async fn persist(&self) -> Result<()> {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let Some(path) = &self.state else {
            if mine.is_multiple_of(COMPACT_CHECK_EVERY) {
                let _persisting = self.persisted.lock().await;
                let _sending = self.sending.lock().await;
                if self.long_since_compaction().await? {
                    self.wait_mined().await?;
                    let dump = self.dump().await?;
                    self.compact(&dump).await?;
                }
            }
            return Ok(());
        };
        let mut persisted = self.persisted.lock().await;
        if *persisted >= mine {
            return Ok(());
        }
        // Every request up to here was made after its transaction was mined, so this dump,
        // which starts now, covers them all.
        let covers = self.requested.load(Ordering::SeqCst);
        // No transaction is sent or mined while anvil dumps: it reads its blocks and
        // receipts before its accounts, so one mined in between would be in the state without
        // its receipt, and a restarted devnet could not tell our transaction from someone
        // else's. anvil answers a send before its miner has stored the block, so wait for
        // its pool to empty first.
        let dump: Bytes = {
            let _sending = self.sending.lock().await;
            self.wait_mined().await?;
            let dump = self.dump().await?;
            match self.long_since_compaction().await? {
                true => self.compact(&dump).await?,
                false => dump,
            }
        };
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            super::write_atomically(&path, dump.to_string().as_bytes())
        })
        .await
        .map_err(|e| Error::Snapshot {
            path: self.state.clone().unwrap_or_default(),
            reason: e.to_string(),
        })??;
        *persisted = covers;
        Ok(())
    }

    /// anvil's state (`anvil_dumpState`: gzipped JSON).
    async fn dump(&self) -> Result<Bytes> {
        self.provider
            .raw_request("anvil_dumpState".into(), ())
            .await
            .map_err(self.rpc("anvil_dumpState"))
    }

    /// Whether [`COMPACT_AFTER_BLOCKS`] were mined since the chain was last compacted.
    async fn long_since_compaction(&self) -> Result<bool> {
        let best = self
            .provider
            .get_block_number()
            .await
            .map_err(self.rpc("eth_blockNumber"))?;
        let compacted = self.compacted_at.load(Ordering::SeqCst);
        Ok(best.saturating_sub(compacted) >= COMPACT_AFTER_BLOCKS)
    }

    /// Keeps the chain short: anvil mines every block more slowly the more blocks it holds
    /// (measured: 5,000 blocks take 2.8 s at the start, 13.8 s after 10,000 more) and dumps
    /// all of them every time. So every [`COMPACT_AFTER_BLOCKS`] blocks the chain is
    /// reloaded from `dump` with only its last [`KEEP_BLOCKS`] blocks (anvil keeps the
    /// transactions and receipts of those only anyway): balances, contracts, nonces and
    /// block numbers stay; the history before goes. Returns the compacted state, to be
    /// written instead of `dump`. Called with nothing being sent or mined.
    ///
    /// # Errors
    /// [`Error::Snapshot`] when the dump is not what anvil writes; a chain error when anvil
    /// refuses the compacted state (it is then reloaded with `dump` itself).
    async fn compact(&self, dump: &Bytes) -> Result<Bytes> {
        let unreadable = |reason: String| Error::Snapshot {
            path: self.state.clone().unwrap_or_default(),
            reason,
        };
        let mut state: serde_json::Value =
            serde_json::from_reader(flate2::read::GzDecoder::new(dump.as_ref()))
                .map_err(|e| unreadable(format!("anvil's dump is not gzipped JSON: {e}")))?;
        let best = state["best_block_number"]
            .as_u64()
            .ok_or_else(|| unreadable("anvil's dump has no best_block_number".to_owned()))?;
        let keep_from = best.saturating_sub(KEEP_BLOCKS);
        let number = |block: &serde_json::Value| {
            let number = &block["header"]["number"];
            number.as_u64().or_else(|| {
                let hex = number.as_str()?.strip_prefix("0x")?;
                u64::from_str_radix(hex, 16).ok()
            })
        };
        if let Some(blocks) = state["blocks"].as_array_mut() {
            blocks.retain(|block| number(block).is_none_or(|n| n > keep_from));
        }
        let mut compacted = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        serde_json::to_writer(&mut compacted, &state)
            .map_err(|e| unreadable(format!("cannot write the compacted state: {e}")))?;
        let compacted = Bytes::from(
            compacted
                .finish()
                .map_err(|e| unreadable(format!("cannot compress the compacted state: {e}")))?,
        );
        self.provider
            .raw_request::<_, serde_json::Value>("anvil_reset".into(), ())
            .await
            .map_err(self.rpc("anvil_reset"))?;
        // anvil's clock was reset too: the next transaction sets it again.
        self.offset.store(i64::MIN, Ordering::SeqCst);
        let loaded = self
            .provider
            .raw_request::<_, bool>("anvil_loadState".into(), (compacted.clone(),))
            .await;
        if !matches!(loaded, Ok(true)) {
            tracing::error!(
                chain_id = self.chain_id,
                ?loaded,
                "anvil refused the compacted state; reloading the whole state"
            );
            self.provider
                .raw_request::<_, bool>("anvil_loadState".into(), (dump.clone(),))
                .await
                .map_err(self.rpc("anvil_loadState"))?;
            return Ok(dump.clone());
        }
        self.compacted_at.store(best, Ordering::SeqCst);
        tracing::debug!(chain_id = self.chain_id, best, "compacted the chain");
        Ok(compacted)
    }

    /// Waits until anvil's pool holds no transaction (everything sent was mined).
    async fn wait_mined(&self) -> Result<()> {
        #[derive(Clone, Debug, serde::Deserialize)]
        struct PoolStatus {
            pending: alloy::primitives::U64,
            queued: alloy::primitives::U64,
        }
        let deadline = tokio::time::Instant::now() + RECEIPT_TIMEOUT;
        loop {
            let pool: PoolStatus = self
                .provider
                .raw_request("txpool_status".into(), ())
                .await
                .map_err(self.rpc("txpool_status"))?;
            if pool.pending.is_zero() && pool.queued.is_zero() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Snapshot {
                    path: self.state.clone().unwrap_or_default(),
                    reason: format!(
                        "anvil still holds {} pending and {} queued transactions after {} s; not dumping a state that could hold a transaction without its receipt",
                        pool.pending,
                        pool.queued,
                        RECEIPT_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(RECEIPT_POLL).await;
        }
    }

    fn rpc(
        &self,
        call: &'static str,
    ) -> impl FnOnce(alloy::transports::TransportError) -> Error + use<> {
        let chain_id = self.chain_id;
        move |source| Error::Rpc {
            chain_id,
            call,
            source: Box::new(source),
        }
    }

    fn contract_error(
        &self,
        call: &'static str,
    ) -> impl FnOnce(alloy::contract::Error) -> Error + use<> {
        let chain_id = self.chain_id;
        move |source| Error::Contract {
            chain_id,
            call,
            source: Box::new(source),
        }
    }

    /// Waits for a sent transaction's receipt and refuses a reverted one.
    async fn confirm(&self, sent: Sent, call: &'static str) -> Result<B256> {
        let hash = self.sent(sent, call)?;
        self.wait_confirmed(hash, call).await
    }

    /// The hash of a sent transaction.
    fn sent(&self, sent: Sent, call: &'static str) -> Result<B256> {
        Ok(*sent.map_err(self.contract_error(call))?.tx_hash())
    }

    /// Waits for the receipt of `hash`: its hash when it succeeded, [`Error::Reverted`] when
    /// it reverted (nothing moved), [`Error::Receipt`] when none came in time.
    ///
    /// # Errors
    /// As above, or a chain error when the RPC call fails.
    pub async fn wait_confirmed(&self, hash: B256, call: &'static str) -> Result<B256> {
        // anvil mines on send, so the receipt is there at once; ask for it directly rather
        // than through a block-polling watcher, which adds a poll interval to every payment
        // and falls behind when every transaction is its own block.
        let deadline = tokio::time::Instant::now() + RECEIPT_TIMEOUT;
        let receipt = loop {
            let found = self
                .provider
                .get_transaction_receipt(hash)
                .await
                .map_err(self.rpc("eth_getTransactionReceipt"))?;
            if let Some(receipt) = found {
                break receipt;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Receipt {
                    chain_id: self.chain_id,
                    call,
                    source: Box::new(alloy::providers::PendingTransactionError::TxWatcher(
                        alloy::providers::WatchTxError::Timeout,
                    )),
                });
            }
            tokio::time::sleep(RECEIPT_POLL).await;
        };
        if !receipt.status() {
            return Err(Error::Reverted {
                chain_id: self.chain_id,
                call,
                transaction: receipt.transaction_hash,
            });
        }
        Ok(receipt.transaction_hash)
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }
    /// anvil's JSON-RPC URL.
    pub fn rpc_url(&self) -> &str {
        &self.url
    }
    /// The token.
    pub fn token(&self) -> &TokenSpec {
        &self.token
    }
    /// The account that submits settlements (and spends permits).
    pub fn facilitator(&self) -> Address {
        self.facilitator
    }

    fn contract(&self) -> DevnetToken::DevnetTokenInstance<&DynProvider> {
        DevnetToken::new(self.token.address, &self.provider)
    }

    /// Mints `amount` atomic units to `to`, and gives it 1 ETH for gas if it has none.
    ///
    /// # Errors
    /// A chain error when the transaction fails.
    pub async fn fund(&self, to: Address, amount: U256) -> Result<B256> {
        self.follow_clock().await?;
        let contract = self.contract();
        let transaction = self
            .confirm(
                {
                    let _sending = self.sending.lock().await;
                    contract.mint(to, amount).send().await
                },
                "mint",
            )
            .await?;
        if self
            .provider
            .get_balance(to)
            .await
            .map_err(self.rpc("eth_getBalance"))?
            .is_zero()
        {
            let wei = U256::from(10u64).pow(U256::from(18u64));
            // Not while the chain is compacted, which would lose it.
            let _sending = self.sending.lock().await;
            self.provider
                .raw_request::<_, ()>("anvil_setBalance".into(), (to, wei))
                .await
                .map_err(self.rpc("anvil_setBalance"))?;
        }
        self.persist().await?;
        Ok(transaction)
    }

    /// Token balance of `owner`.
    ///
    /// # Errors
    /// A chain error when the RPC call fails.
    pub async fn balance_of(&self, owner: Address) -> Result<U256> {
        self.contract()
            .balanceOf(owner)
            .call()
            .await
            .map_err(self.contract_error("balanceOf"))
    }

    /// Whether an EIP-3009 authorization nonce is used.
    ///
    /// # Errors
    /// A chain error when the RPC call fails.
    pub async fn authorization_used(&self, authorizer: Address, nonce: B256) -> Result<bool> {
        self.contract()
            .authorizationState(authorizer, nonce)
            .call()
            .await
            .map_err(self.contract_error("authorizationState"))
    }

    /// The ERC-2612 nonce of `owner`.
    ///
    /// # Errors
    /// A chain error when the RPC call fails.
    pub async fn permit_nonce(&self, owner: Address) -> Result<U256> {
        self.contract()
            .nonces(owner)
            .call()
            .await
            .map_err(self.contract_error("nonces"))
    }

    /// What became of a transaction recorded by [`EvmChain::send_recorded`].
    ///
    /// # Errors
    /// A chain error when the RPC call fails.
    pub async fn transaction_outcome(&self, hash: B256) -> Result<Outcome> {
        // Not while a transaction is between being recorded and being sent: one recorded
        // and about to leave must not read as unknown.
        let _sending = self.sending.lock().await;
        let receipt = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(self.rpc("eth_getTransactionReceipt"))?;
        if let Some(receipt) = receipt {
            return Ok(match receipt.status() {
                true => Outcome::Succeeded,
                false => Outcome::Reverted,
            });
        }
        let known = self
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(self.rpc("eth_getTransactionByHash"))?
            .is_some();
        Ok(match known {
            true => Outcome::Waiting,
            false => Outcome::Unknown,
        })
    }

    /// The facilitator's allowance from `owner` (what a confirmed permit left to pull).
    ///
    /// # Errors
    /// A chain error when the RPC call fails.
    pub async fn allowance(&self, owner: Address) -> Result<U256> {
        self.contract()
            .allowance(owner, self.facilitator)
            .call()
            .await
            .map_err(self.contract_error("allowance"))
    }

    /// Sends an EIP-3009 `transferWithAuthorization` from the facilitator, recorded first
    /// (see [`EvmChain::send_recorded`]).
    ///
    /// # Errors
    /// As [`EvmChain::send_recorded`].
    pub async fn send_transfer_with_authorization(
        &self,
        verified: &x402_core::evm::exact::Verified,
        record: impl FnOnce(B256) -> Result<()>,
    ) -> Result<B256, Unsent> {
        let a = &verified.authorization;
        let signature = Bytes::from(verified.signature.as_bytes().to_vec());
        let request = self
            .contract()
            .transferWithAuthorization_0(
                a.from,
                a.to,
                a.value.atomic(),
                U256::from(a.valid_after),
                U256::from(a.valid_before),
                a.nonce,
                signature,
            )
            .into_transaction_request();
        self.send_recorded(request, "transferWithAuthorization", record)
            .await
    }

    /// Sends an ERC-2612 `permit` from the facilitator, recorded first.
    ///
    /// # Errors
    /// As [`EvmChain::send_recorded`].
    pub async fn send_permit(
        &self,
        verified: &x402_core::evm::permit::Verified,
        record: impl FnOnce(B256) -> Result<()>,
    ) -> Result<B256, Unsent> {
        let p = &verified.permit;
        let s = &verified.signature;
        let v = if s.v() { 28 } else { 27 };
        let request = self
            .contract()
            .permit(
                p.owner,
                p.spender,
                p.value.atomic(),
                U256::from(p.deadline),
                v,
                B256::from(s.r()),
                B256::from(s.s()),
            )
            .into_transaction_request();
        self.send_recorded(request, "permit", record).await
    }

    /// Sends `transferFrom(owner, pay_to, value)` from the facilitator, recorded first.
    ///
    /// # Errors
    /// As [`EvmChain::send_recorded`].
    pub async fn send_pull(
        &self,
        owner: Address,
        pay_to: Address,
        value: U256,
        record: impl FnOnce(B256) -> Result<()>,
    ) -> Result<B256, Unsent> {
        let request = self
            .contract()
            .transferFrom(owner, pay_to, value)
            .into_transaction_request();
        self.send_recorded(request, "transferFrom", record).await
    }

    /// Signs `request` as the facilitator's next transaction, hands its hash to `record`, and
    /// only then sends it: whoever records the hash (a payment's row) can always ask the
    /// chain what became of exactly that transaction, whatever happens after it leaves. One
    /// transaction at a time per chain, so the account's nonces stay in order.
    ///
    /// # Errors
    /// [`Unsent::NotSent`] when it was not sent (it would revert, or `record` failed): nothing
    /// of it can reach the chain. [`Unsent::Unknown`] when sending failed after it was
    /// recorded: it may or may not have reached the chain.
    pub async fn send_recorded(
        &self,
        request: TransactionRequest,
        call: &'static str,
        record: impl FnOnce(B256) -> Result<()>,
    ) -> Result<B256, Unsent> {
        self.follow_clock().await.map_err(Unsent::NotSent)?;
        let _sending = self.sending.lock().await;
        let request = request
            .with_from(self.facilitator)
            .with_chain_id(self.chain_id);
        let nonce = self
            .provider
            .get_transaction_count(self.facilitator)
            .pending()
            .await
            .map_err(|e| Unsent::NotSent(self.rpc("eth_getTransactionCount")(e)))?;
        // Refuses a call that would revert now: it is never sent.
        let gas = self
            .provider
            .estimate_gas(request.clone())
            .await
            .map_err(|e| Unsent::NotSent(self.rpc(call)(e)))?;
        let fees = self
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(|e| Unsent::NotSent(self.rpc("eth_feeHistory")(e)))?;
        let request = request
            .with_nonce(nonce)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope = <TransactionRequest as NetworkTransactionBuilder<Ethereum>>::build(
            request,
            &self.wallet,
        )
        .await
        .map_err(|e| {
            Unsent::NotSent(Error::Sign {
                chain_id: self.chain_id,
                call,
                reason: e.to_string(),
            })
        })?;
        let hash = *envelope.tx_hash();
        record(hash).map_err(Unsent::NotSent)?;
        // The caller waits for the receipt by hash (`wait_confirmed`), not through a watcher.
        let _pending = self
            .provider
            .send_tx_envelope(envelope)
            .await
            .map_err(|e| Unsent::Unknown(hash, self.rpc(call)(e)))?;
        Ok(hash)
    }
}

/// What became of a transaction, as the chain tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Mined and succeeded.
    Succeeded,
    /// Mined and reverted: it moved nothing.
    Reverted,
    /// Known to the chain, not mined yet.
    Waiting,
    /// Unknown to the chain: never received, or lost with a restart (a restarted chain
    /// keeps the receipts of its recent blocks, so not one mined just before it stopped).
    Unknown,
}

/// Why [`EvmChain::send_recorded`] did not return a sent transaction.
#[derive(Debug)]
pub enum Unsent {
    /// Nothing was sent and nothing of it can reach the chain.
    NotSent(Error),
    /// The recorded transaction (its hash) may or may not have reached the chain.
    Unknown(B256, Error),
}

impl From<Unsent> for Error {
    fn from(unsent: Unsent) -> Error {
        match unsent {
            Unsent::NotSent(error) | Unsent::Unknown(_, error) => error,
        }
    }
}
