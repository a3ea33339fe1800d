//! A real Solana ledger for the devnet: litesvm in process, with the Solana devnet USDC mint
//! (6 decimals) at its real address, a facilitator fee payer, and SPL token accounts.
//!
//! With a data directory, every token account (and the mint), their owners' and the fee
//! payer's lamports are snapshotted to `solana-ledger.json` after each change, before the
//! change is reported (written atomically and fsynced), and restored at start, so a restart keeps balances. Transaction history is not kept;
//! used payments stay refused through the settlement records in SQLite.
//!
//! **Time.** The ledger's clock is the devnet's: its `Clock` sysvar is set from it before
//! every transaction, and its blockhashes are derived from it, one per
//! [`BLOCKHASH_PERIOD_SECS`], each valid for [`BLOCKHASH_VALID_SECS`] (about the 150 slots
//! of a real cluster). A transaction whose blockhash is older is refused as
//! `BlockhashNotFound`, so moving a test clock expires blockhashes without sleeping.
//! Derived, not stored, they survive a restart. (litesvm's own check accepts only its
//! latest blockhash, so it is off.)
//!
//! litesvm builds on the Solana 4.x component line while x402-core uses the 3.x line that
//! spl-token 9 needs; the two meet only at the wire: transactions cross as their bincode
//! bytes, keys and hashes as 32-byte arrays.

use std::sync::Mutex;

use litesvm::LiteSVM;
use solana_account::Account;
use solana_address::Address;
use solana_program_pack::Pack;
use solana_transaction_v4::versioned::VersionedTransaction;
use x402_core::svm::{TokenProgram, associated_token_address};
use x402_core::{LocalSolanaSigner, SolanaAddress, SolanaSigner};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::clock::SharedClock;
use crate::error::{Error, Result};

/// The Solana devnet USDC mint.
pub const USDC_MINT: &str = "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU";
/// Decimals of the mint.
pub const USDC_DECIMALS: u8 = 6;
/// A new blockhash every this many seconds of the devnet's clock…
pub const BLOCKHASH_PERIOD_SECS: u64 = 1;
/// …each valid for this long (a real cluster: 150 slots of about 400 ms).
pub const BLOCKHASH_VALID_SECS: u64 = 60;

/// Lamports given to wallets so they can pay rent and fees.
const AIRDROP_LAMPORTS: u64 = 10_000_000_000;

/// Transactions whose bodies the ledger keeps (a node without long-term storage keeps a
/// window too); older ones keep only their signature's status.
pub const HISTORY_LEN: usize = 1024;

/// A processed transaction, as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Landed {
    /// Its id: the first (fee payer's) signature, base58.
    pub signature: String,
    /// The slot it landed in.
    pub slot: u64,
    /// Its static account keys, base58.
    pub accounts: Vec<String>,
    /// The transaction, bincode in base64.
    pub transaction: String,
}

impl Landed {
    fn of(signature: String, slot: u64, transaction: &VersionedTransaction) -> Landed {
        Landed {
            signature,
            slot,
            accounts: transaction
                .message
                .static_account_keys()
                .iter()
                .map(ToString::to_string)
                .collect(),
            transaction: bincode::serialize(transaction)
                .map(|bytes| BASE64.encode(bytes))
                .unwrap_or_default(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "signature": self.signature, "slot": self.slot, "accounts": self.accounts, "transaction": self.transaction })
    }

    fn from_json(value: &serde_json::Value) -> Option<Landed> {
        Some(Landed {
            signature: value["signature"].as_str()?.to_owned(),
            slot: value["slot"].as_u64()?,
            accounts: value["accounts"]
                .as_array()?
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
            transaction: value["transaction"].as_str()?.to_owned(),
        })
    }
}

/// The in-process Solana ledger.
pub struct SolanaChain {
    svm: Mutex<LiteSVM>,
    snapshot: Option<std::path::PathBuf>,
    slot: std::sync::atomic::AtomicU64,
    /// Signatures of the transactions this ledger processed successfully, kept in the
    /// snapshot (litesvm's own history is not), so a payment is known after a restart.
    processed: Mutex<std::collections::BTreeSet<String>>,
    /// The last [`HISTORY_LEN`] transactions processed, oldest first, also in the snapshot:
    /// what `getSignaturesForAddress` and `getTransaction` serve (a client reconciling a
    /// payment looks for its own signature among its wallet's transactions).
    history: Mutex<std::collections::VecDeque<Landed>>,
    /// Held while a snapshot is captured and written.
    saving: Mutex<()>,
    fee_payer: LocalSolanaSigner,
    mint: SolanaAddress,
    clock: SharedClock,
}

impl std::fmt::Debug for SolanaChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolanaChain")
            .field("fee_payer", &self.fee_payer.pubkey())
            .field("mint", &self.mint)
            .finish_non_exhaustive()
    }
}

fn address(key: &SolanaAddress) -> Address {
    Address::new_from_array(key.to_bytes())
}

/// A rent-exempt account owned by the SPL Token program holding `state`.
fn token_program_account<T: Pack>(svm: &LiteSVM, state: T, what: &'static str) -> Result<Account> {
    let mut data = vec![0u8; T::LEN];
    T::pack(state, &mut data).map_err(|e| Error::solana(what, e.to_string()))?;
    Ok(Account {
        lamports: svm.minimum_balance_for_rent_exemption(data.len()),
        data,
        owner: Address::new_from_array(TokenProgram::Token.id().to_bytes()),
        executable: false,
        rent_epoch: 0,
    })
}

/// An account as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// Balance in lamports.
    pub lamports: u64,
    /// The account's data.
    pub data: Vec<u8>,
    /// The owning program.
    pub owner: SolanaAddress,
    /// Whether it is a program.
    pub executable: bool,
}

/// What a simulated transaction would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Simulation {
    /// The ledger's error, when the transaction would fail.
    pub error: Option<String>,
    /// Program logs.
    pub logs: Vec<String>,
    /// Compute units consumed.
    pub compute_units: u64,
}

/// A transaction the ledger refused; nothing moved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the ledger refused the transaction: {reason}")]
pub struct Refused {
    /// The ledger's reason.
    pub reason: String,
}

impl SolanaChain {
    /// A fresh ledger with the USDC mint, a funded fee payer from `fee_payer_secret`, and
    /// the token program, ATA program and memo program loaded.
    ///
    /// # Errors
    /// [`Error::Solana`] when the ledger refuses the genesis accounts; [`Error::Snapshot`] when
    /// the snapshot cannot be read.
    pub fn new(
        fee_payer_secret: [u8; 32],
        snapshot: Option<std::path::PathBuf>,
        clock: SharedClock,
    ) -> Result<SolanaChain> {
        // Blockhashes are checked here, against the devnet's clock.
        let mut svm = LiteSVM::new().with_blockhash_check(false);
        let fee_payer = LocalSolanaSigner::from_secret(fee_payer_secret);
        svm.airdrop(&address(&fee_payer.pubkey()), AIRDROP_LAMPORTS)
            .map_err(|e| Error::solana("airdrop to the fee payer", format!("{:?}", e.err)))?;
        let mint: SolanaAddress = USDC_MINT.parse().map_err(|e: x402_core::Error| {
            Error::solana("reading the mint address", e.to_string())
        })?;
        let mint_state = spl_token::state::Mint {
            mint_authority: solana_program_option::COption::None,
            supply: 0,
            decimals: USDC_DECIMALS,
            is_initialized: true,
            freeze_authority: solana_program_option::COption::None,
        };
        let account = token_program_account(&svm, mint_state, "packing the mint")?;
        svm.set_account(address(&mint), account)
            .map_err(|e| Error::solana("creating the mint", format!("{e:?}")))?;
        let chain = SolanaChain {
            svm: Mutex::new(svm),
            snapshot,
            slot: std::sync::atomic::AtomicU64::new(1),
            processed: Mutex::new(std::collections::BTreeSet::new()),
            history: Mutex::new(std::collections::VecDeque::new()),
            saving: Mutex::new(()),
            fee_payer,
            mint,
            clock,
        };
        chain.restore()?;
        Ok(chain)
    }

    /// Loads the accounts saved by [`SolanaChain::save`], if the snapshot exists.
    fn restore(&self) -> Result<()> {
        let Some(path) = &self.snapshot else {
            return Ok(());
        };
        let unreadable = |reason: String| Error::Snapshot {
            path: path.clone(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(unreadable(error.to_string())),
        };
        let saved: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
        let mut svm = self.svm();
        for account in saved["accounts"].as_array().into_iter().flatten() {
            let parse = || -> Option<(Address, Account)> {
                let key: SolanaAddress = account["address"].as_str()?.parse().ok()?;
                let owner: SolanaAddress = account["owner"].as_str()?.parse().ok()?;
                let data = BASE64.decode(account["data"].as_str()?).ok()?;
                Some((
                    address(&key),
                    Account {
                        lamports: account["lamports"].as_u64()?,
                        data,
                        owner: address(&owner),
                        executable: false,
                        rent_epoch: 0,
                    },
                ))
            };
            let (key, value) =
                parse().ok_or_else(|| unreadable("it holds an unreadable account".to_owned()))?;
            svm.set_account(key, value)
                .map_err(|e| Error::solana("restoring an account", format!("{e:?}")))?;
        }
        let mut processed = self
            .processed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for signature in saved["signatures"].as_array().into_iter().flatten() {
            if let Some(signature) = signature.as_str() {
                processed.insert(signature.to_owned());
            }
        }
        drop(processed);
        let mut history = self.history();
        for landed in saved["history"].as_array().into_iter().flatten() {
            history.push_back(
                Landed::from_json(landed)
                    .ok_or_else(|| unreadable("it holds an unreadable transaction".to_owned()))?,
            );
        }
        drop(history);
        if let Some(slot) = saved["slot"].as_u64() {
            self.slot.store(slot, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes every token account (with the mint) and the lamports of their owners and of the
    /// fee payer to the snapshot file, atomically (write, then rename).
    fn save(&self) -> Result<()> {
        let Some(path) = &self.snapshot else {
            return Ok(());
        };
        // One save at a time, each capturing the ledger after the previous one wrote: a
        // snapshot never replaces a newer one, and the temporary file is never shared.
        let _saving = self
            .saving
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let svm = self.svm();
        let token_program = Address::new_from_array(TokenProgram::Token.id().to_bytes());
        let mut owners: Vec<Address> = Vec::new();
        let mut accounts = Vec::new();
        for (key, account) in svm.get_program_accounts(&token_program) {
            if let Ok(state) = spl_token::state::Account::unpack(&account.data) {
                owners.push(Address::new_from_array(state.owner.to_bytes()));
            }
            accounts.push((key, account));
        }
        owners.push(address(&self.fee_payer.pubkey()));
        for key in owners {
            if let Some(account) = svm.get_account(&key)
                && !accounts.iter().any(|(k, _)| *k == key)
            {
                accounts.push((key, account));
            }
        }
        // Captured under the ledger lock: the signatures of exactly the transfers captured.
        let signatures: Vec<String> = self
            .processed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .cloned()
            .collect();
        let history: Vec<serde_json::Value> = self.history().iter().map(Landed::to_json).collect();
        let slot = self.slot();
        drop(svm);
        let json: Vec<serde_json::Value> = accounts
            .iter()
            .map(|(key, account)| {
                serde_json::json!({
                    "address": SolanaAddress::new(key.to_bytes()).to_string(),
                    "owner": SolanaAddress::new(account.owner.to_bytes()).to_string(),
                    "lamports": account.lamports,
                    "data": BASE64.encode(&account.data),
                })
            })
            .collect();
        let body = serde_json::json!({ "slot": slot, "accounts": json, "signatures": signatures, "history": history });
        super::write_atomically(path, body.to_string().as_bytes())
    }

    fn history(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<Landed>> {
        self.history
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The kept transactions naming `account`, newest first, at most `limit`.
    pub fn transactions_of(&self, account: &SolanaAddress, limit: usize) -> Vec<Landed> {
        let wanted = account.to_string();
        self.history()
            .iter()
            .rev()
            .filter(|landed| landed.accounts.contains(&wanted))
            .take(limit)
            .cloned()
            .collect()
    }

    /// A kept transaction by its id.
    pub fn transaction(&self, signature: &str) -> Option<Landed> {
        self.history()
            .iter()
            .rev()
            .find(|landed| landed.signature == signature)
            .cloned()
    }

    fn svm(&self) -> std::sync::MutexGuard<'_, LiteSVM> {
        self.svm
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The facilitator's fee payer.
    pub fn fee_payer(&self) -> &LocalSolanaSigner {
        &self.fee_payer
    }

    /// The USDC mint.
    pub fn mint(&self) -> SolanaAddress {
        self.mint
    }

    /// The latest blockhash: the one of the devnet clock's current period.
    pub fn latest_blockhash(&self) -> [u8; 32] {
        blockhash_of(self.clock.now_unix() / BLOCKHASH_PERIOD_SECS)
    }

    /// When `blockhash` stops being valid (unix seconds), if it is one of this ledger's
    /// blockhashes still valid now.
    pub fn blockhash_valid_until(&self, blockhash: &[u8; 32]) -> Option<u64> {
        let now = self.clock.now_unix() / BLOCKHASH_PERIOD_SECS;
        let periods = BLOCKHASH_VALID_SECS / BLOCKHASH_PERIOD_SECS;
        (now.saturating_sub(periods)..=now)
            .rev()
            .find(|period| blockhash_of(*period) == *blockhash)
            .map(|period| period * BLOCKHASH_PERIOD_SECS + BLOCKHASH_VALID_SECS)
    }

    /// The ledger's `Clock` sysvar, as the devnet's clock sets it before each transaction.
    pub fn clock_sysvar(&self) -> solana_clock::Clock {
        self.svm().get_sysvar::<solana_clock::Clock>()
    }

    /// Refuses a transaction whose blockhash is not valid now, and sets the ledger's clock.
    fn admit(
        &self,
        svm: &mut LiteSVM,
        transaction: &VersionedTransaction,
    ) -> std::result::Result<(), Refused> {
        let blockhash = transaction.message.recent_blockhash().to_bytes();
        if self.blockhash_valid_until(&blockhash).is_none() {
            return Err(Refused {
                reason: format!(
                    "BlockhashNotFound: the blockhash is unknown or older than {BLOCKHASH_VALID_SECS} s; sign again with a recent one (getLatestBlockhash)"
                ),
            });
        }
        let now = i64::try_from(self.clock.now_unix()).unwrap_or(i64::MAX);
        let mut clock = svm.get_sysvar::<solana_clock::Clock>();
        clock.slot = self.slot();
        clock.unix_timestamp = now;
        svm.set_sysvar(&clock);
        Ok(())
    }

    /// `owner`'s USDC balance in atomic units (0 without a token account).
    pub fn token_balance(&self, owner: &SolanaAddress) -> u64 {
        let ata = associated_token_address(owner, &self.mint, TokenProgram::Token);
        self.svm()
            .get_account(&address(&ata))
            .and_then(|account| spl_token::state::Account::unpack(&account.data).ok())
            .map_or(0, |state| state.amount)
    }

    /// SOL balance in lamports.
    pub fn lamports(&self, owner: &SolanaAddress) -> u64 {
        self.svm().get_balance(&address(owner)).unwrap_or(0)
    }

    /// Gives `owner` `amount` atomic USDC (creating its token account) and SOL for fees.
    ///
    /// # Errors
    /// [`Error::Solana`] when the ledger refuses the account.
    pub fn fund(&self, owner: &SolanaAddress, amount: u64) -> Result<()> {
        let ata = associated_token_address(owner, &self.mint, TokenProgram::Token);
        let mut svm = self.svm();
        let existing = svm
            .get_account(&address(&ata))
            .and_then(|account| spl_token::state::Account::unpack(&account.data).ok());
        let state = spl_token::state::Account {
            mint: self.mint.into(),
            owner: (*owner).into(),
            amount: existing
                .map_or(0, |s| s.amount)
                .checked_add(amount)
                .ok_or_else(|| Error::solana("funding", "the balance would overflow a u64"))?,
            state: spl_token::state::AccountState::Initialized,
            ..Default::default()
        };
        let account = token_program_account(&svm, state, "packing the token account")?;
        svm.set_account(address(&ata), account)
            .map_err(|e| Error::solana("creating the token account", format!("{e:?}")))?;
        if svm.get_balance(&address(owner)).unwrap_or(0) == 0 {
            svm.airdrop(&address(owner), AIRDROP_LAMPORTS)
                .map_err(|e| Error::solana("airdrop", format!("{:?}", e.err)))?;
        }
        drop(svm);
        self.save()
    }

    /// Co-signs a verified payment as fee payer: the transaction to send and its signature
    /// (known before it is sent).
    ///
    /// # Errors
    /// [`Error::Solana`] when the transaction cannot be signed or re-encoded.
    pub fn cosign(
        &self,
        mut verified: x402_core::svm::Verified,
    ) -> Result<(VersionedTransaction, String)> {
        verified.cosign(&self.fee_payer)?;
        let bytes = bincode::serialize(&verified.transaction)
            .map_err(|e| Error::solana("encoding the transaction", e.to_string()))?;
        let transaction: VersionedTransaction = bincode::deserialize(&bytes)
            .map_err(|e| Error::solana("decoding the transaction", e.to_string()))?;
        let signature = transaction
            .signatures
            .first()
            .map(ToString::to_string)
            .ok_or_else(|| Error::solana("co-signing", "the transaction has no signature"))?;
        Ok((transaction, signature))
    }

    /// Processes a co-signed payment; its signature once the ledger holds it durably.
    ///
    /// # Errors
    /// [`Error::Solana`] when the ledger refuses it (nothing moved then).
    pub fn submit(&self, transaction: VersionedTransaction) -> Result<String> {
        match self.send(transaction) {
            Ok(signature) => Ok(signature),
            Err(SendError::Refused(refused)) => {
                Err(Error::solana("send transaction", refused.reason))
            }
            Err(SendError::Snapshot(error)) => Err(error),
        }
    }

    /// The current slot: one per processed transaction, as a devnet ledger counts them.
    pub fn slot(&self) -> u64 {
        self.slot.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Processes a transaction; returns its base58 signature.
    ///
    /// # Errors
    /// [`SendError::Refused`] when the ledger refuses it (nothing moved);
    /// [`SendError::Snapshot`] when it was processed but the snapshot could not be written.
    pub fn send(
        &self,
        transaction: VersionedTransaction,
    ) -> std::result::Result<String, SendError> {
        let mut svm = self.svm();
        self.admit(&mut svm, &transaction)
            .map_err(SendError::Refused)?;
        let kept = transaction.clone();
        let result = svm.send_transaction(transaction);
        if let Ok(meta) = &result {
            // Recorded with the ledger still locked, so no snapshot holds the transfer
            // without its signature.
            let slot = self.slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            self.processed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(meta.signature.to_string());
            let mut history = self.history();
            history.push_back(Landed::of(meta.signature.to_string(), slot, &kept));
            while history.len() > HISTORY_LEN {
                history.pop_front();
            }
        }
        drop(svm);
        match result {
            Ok(meta) => {
                self.save().map_err(SendError::Snapshot)?;
                Ok(meta.signature.to_string())
            }
            Err(failed) => Err(SendError::Refused(Refused {
                reason: format!("{:?}", failed.err),
            })),
        }
    }

    /// Simulates a transaction.
    pub fn simulate(&self, transaction: VersionedTransaction) -> Simulation {
        let mut svm = self.svm();
        if let Err(refused) = self.admit(&mut svm, &transaction) {
            return Simulation {
                error: Some(refused.reason),
                logs: Vec::new(),
                compute_units: 0,
            };
        }
        match svm.simulate_transaction(transaction) {
            Ok(info) => Simulation {
                error: None,
                logs: info.meta.logs,
                compute_units: info.meta.compute_units_consumed,
            },
            Err(failed) => Simulation {
                error: Some(format!("{:?}", failed.err)),
                logs: failed.meta.logs,
                compute_units: failed.meta.compute_units_consumed,
            },
        }
    }

    /// `Some(error)` for a processed transaction (`None` inside when it succeeded), `None` when
    /// the ledger has not seen it.
    pub fn signature_status(&self, signature: &str) -> Option<Option<String>> {
        let parsed: solana_signature::Signature = signature.parse().ok()?;
        let seen = self.svm().get_transaction(&parsed).map(|result| {
            result
                .as_ref()
                .err()
                .map(|failed| format!("{:?}", failed.err))
        });
        seen.or_else(|| {
            self.processed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains(signature)
                .then_some(None)
        })
    }

    /// An account, if it exists.
    pub fn account(&self, key: &SolanaAddress) -> Option<AccountInfo> {
        self.svm().get_account(&address(key)).map(|a| AccountInfo {
            lamports: a.lamports,
            data: a.data,
            owner: SolanaAddress::new(a.owner.to_bytes()),
            executable: a.executable,
        })
    }

    /// Rent-exempt minimum for `len` bytes.
    pub fn rent_exempt_minimum(&self, len: usize) -> u64 {
        self.svm().minimum_balance_for_rent_exemption(len)
    }

    /// Sends `lamports` to `to`; returns the airdrop signature.
    ///
    /// # Errors
    /// [`Error::Solana`] when the airdrop fails.
    pub fn airdrop(&self, to: &SolanaAddress, lamports: u64) -> Result<String> {
        let result = self.svm().airdrop(&address(to), lamports);
        match result {
            Ok(meta) => {
                self.slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.save()?;
                Ok(meta.signature.to_string())
            }
            Err(failed) => Err(Error::solana("airdrop", format!("{:?}", failed.err))),
        }
    }
}

/// Why [`SolanaChain::send`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The ledger refused the transaction; nothing moved.
    #[error(transparent)]
    Refused(Refused),
    /// The transaction was processed, but the ledger snapshot could not be written.
    #[error("processed, but {0}")]
    Snapshot(Error),
}

/// The blockhash of clock period `period`: derived, so the same after a restart.
fn blockhash_of(period: u64) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"x402-devnet solana blockhash");
    hasher.update(period.to_le_bytes());
    hasher.finalize().into()
}
