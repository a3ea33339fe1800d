//! The devnet's error type.

use std::fmt::Display;

/// Everything that can go wrong inside the devnet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A local chain (anvil) failed or refused a call.
    #[error("chain: {0}")]
    Chain(String),
    /// The SQLite state failed.
    #[error("state database: {0}")]
    Store(#[from] rusqlite::Error),
    /// A payment or protocol error from x402-core (bad payments carry their reason code).
    #[error(transparent)]
    Payment(#[from] x402_core::Error),
    /// Starting or binding a server failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// `Result` with the devnet's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn chain(detail: impl Display) -> Error {
        Error::Chain(detail.to_string())
    }
    pub(crate) fn rpc(error: impl Display) -> Error {
        Error::Chain(format!("rpc: {error}"))
    }
    pub(crate) fn contract(error: impl Display) -> Error {
        Error::Chain(format!("contract call: {error}"))
    }
    pub(crate) fn pending(error: impl Display) -> Error {
        Error::Chain(format!("waiting for the receipt: {error}"))
    }

    /// The x402 reason code, when this is a rejected payment.
    pub fn invalid_reason(&self) -> Option<x402_core::InvalidReason> {
        match self {
            Error::Payment(error) => error.invalid_reason(),
            _ => None,
        }
    }
}
