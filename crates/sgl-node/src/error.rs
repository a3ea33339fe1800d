//! The library's one error type.

use std::path::PathBuf;

/// What went wrong. Messages carry only public values: never the auth token, the seed or a
/// signature.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A config file is not what the node wrote.
    #[error("{} is not a valid node file: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `init`/`login` found an existing registration.
    #[error(
        "this node is already registered ({} exists); delete the config directory to register again",
        .0.display()
    )]
    AlreadyRegistered(PathBuf),
    /// A command needs a registration that is not there.
    #[error("this node is not registered ({} is missing); run `sgl init` or `sgl login` first", .0.display())]
    NotRegistered(PathBuf),
    /// A value given by the operator (URL, price, flag) is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// The coordinator answered with an error status.
    #[error("the coordinator answered {status}: {message}")]
    Coordinator {
        /// The HTTP status.
        status: u16,
        /// Its `{"error": ...}` text, or the start of the body.
        message: String,
    },
    /// The coordinator could not be reached, or the connection broke.
    #[error("cannot reach the coordinator: {0}")]
    Network(String),
    /// The coordinator's answer could not be read.
    #[error("unreadable answer from the coordinator: {0}")]
    Protocol(String),
    /// A hardware TEE report could not be made or does not hold.
    #[error("TEE attestation: {0}")]
    Attestation(String),
    /// The inference engine failed.
    #[error("engine error: {0}")]
    Engine(String),
    /// The connection to the engine failed or broke (it may have died).
    #[error("engine error: {0}")]
    EngineUnreachable(String),
    /// The engine does not do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// Device login ended without a registration code.
    #[error("device login {0}")]
    Login(String),
}

impl Error {
    /// Whether the coordinator was not reached or failed on its side (5xx): worth retrying.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network(_) => true,
            Error::Coordinator { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// Whether the coordinator refused the node's credentials (401/403).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            Error::Coordinator {
                status: 401 | 403,
                ..
            }
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: &std::path::Path,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
