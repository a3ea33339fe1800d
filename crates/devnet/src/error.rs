//! The devnet's error type.

use std::path::PathBuf;

use alloy::primitives::B256;

/// Everything that can go wrong inside the devnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `anvil` binary could not be started.
    #[error("cannot start anvil at {}: {source}; run `cargo xtask tools`", path.display())]
    AnvilStart {
        /// The binary that was tried.
        path: PathBuf,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// anvil started but never said where it listens.
    #[error("anvil for chain {chain_id} did not report its listening address within 30 s")]
    AnvilSilent {
        /// The chain it was started for.
        chain_id: u64,
    },
    /// A JSON-RPC call to anvil failed.
    #[error("chain {chain_id}: `{call}` failed: {source}")]
    Rpc {
        /// The chain.
        chain_id: u64,
        /// The RPC method or contract call.
        call: &'static str,
        /// What the transport said.
        #[source]
        source: Box<alloy::transports::TransportError>,
    },
    /// A contract call or deployment failed before it was mined.
    #[error("chain {chain_id}: `{call}` failed: {source}")]
    Contract {
        /// The chain.
        chain_id: u64,
        /// The contract function.
        call: &'static str,
        /// What the contract binding said.
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// A transaction could not be signed.
    #[error("chain {chain_id}: cannot sign `{call}`: {reason}")]
    Sign {
        /// The chain.
        chain_id: u64,
        /// The contract function.
        call: &'static str,
        /// What the signer said.
        reason: String,
    },
    /// A sent transaction's receipt did not come.
    #[error("chain {chain_id}: waiting for the receipt of `{call}` failed: {source}")]
    Receipt {
        /// The chain.
        chain_id: u64,
        /// The contract function.
        call: &'static str,
        /// What the provider said.
        #[source]
        source: Box<alloy::providers::PendingTransactionError>,
    },
    /// A transaction was mined but reverted.
    #[error("chain {chain_id}: `{call}` reverted in transaction {transaction}")]
    Reverted {
        /// The chain.
        chain_id: u64,
        /// The contract function.
        call: &'static str,
        /// The reverted transaction.
        transaction: B256,
    },
    /// The Solana ledger refused an operation.
    #[error("solana ledger: {operation} failed: {reason}")]
    Solana {
        /// What was attempted (`airdrop`, `send transaction`, …).
        operation: &'static str,
        /// The ledger's reason.
        reason: String,
    },
    /// A chain snapshot in the data directory could not be read or written.
    #[error("chain snapshot {}: {reason}", path.display())]
    Snapshot {
        /// The snapshot file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// Another devnet holds the data directory.
    #[error(
        "the data directory {} is in use by another devnet: stop it, or choose another --data-dir",
        path.display()
    )]
    DataDirLocked {
        /// The lock file.
        path: PathBuf,
    },
    /// The SQLite state failed.
    #[error("state database: {0}")]
    Store(#[from] rusqlite::Error),
    /// The same payment was settled before: nothing moved now, and `transaction` is where it
    /// moved then.
    #[error(
        "duplicate_settlement: this payment was already settled in transaction {transaction}; nothing was charged again"
    )]
    AlreadySettled {
        /// The original settlement's transaction.
        transaction: String,
        /// Its payer.
        payer: String,
    },
    /// The payment's transaction was sent but its outcome is not known yet: the same payment
    /// sent again learns it. Never a refusal: nothing must be paid again.
    #[error(
        "settlement_pending: transaction {transaction} was sent and is not confirmed yet; send the same payment again later to learn the outcome"
    )]
    Pending {
        /// The sent transaction.
        transaction: String,
    },
    /// A payment or protocol error from x402-core (bad payments carry their reason code).
    #[error(transparent)]
    Payment(#[from] x402_core::Error),
    /// Starting or binding a server, or a file in the data directory, failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with the devnet's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn solana(operation: &'static str, reason: impl Into<String>) -> Error {
        Error::Solana {
            operation,
            reason: reason.into(),
        }
    }

    /// The x402 reason code, when this is a rejected payment.
    pub fn invalid_reason(&self) -> Option<x402_core::InvalidReason> {
        match self {
            Error::Payment(error) => error.invalid_reason(),
            Error::AlreadySettled { .. } => Some(x402_core::InvalidReason::DuplicateSettlement),
            _ => None,
        }
    }

    /// Whether this is a refused payment (as opposed to a failure of the devnet or a chain).
    pub fn is_invalid_payment(&self) -> bool {
        self.invalid_reason().is_some()
    }
}
