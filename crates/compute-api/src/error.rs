//! The crate's error type.

use x402_reqwest::EntryId;

/// What can go wrong with a machines call. Each says what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spend policy, the daily budget or the user refused the payment. Nothing was signed.
    #[error("{0}")]
    Refused(String),
    /// The server refused the payment (its x402 reason). Nothing was charged.
    #[error("the server refused the payment: {reason}")]
    Rejected {
        /// The server's reason.
        reason: String,
    },
    /// The prepaid credits do not cover the price.
    #[error(
        "insufficient credits: ${shortfall} short (price ${required}, balance ${balance}); top up with `x402c credits topup` or pay with x402"
    )]
    InsufficientCredits {
        /// The price.
        required: String,
        /// The balance.
        balance: String,
        /// What is missing.
        shortfall: String,
    },
    /// No such instance or key, or not yours (the API answers 404 for both).
    #[error("not found: {0}")]
    NotFound(String),
    /// The server refused a repeat (the one-time password was already retrieved).
    #[error("{0}")]
    Conflict(String),
    /// The server refused the credentials (bad, expired or replayed auth, or none).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// A payment left and its outcome is not known yet.
    #[error(
        "payment {entry} is pending{}: its outcome is not known yet; `x402c payments reconcile {entry}` learns it, and nothing is paid twice meanwhile",
        .transaction.as_ref().map(|t| format!(" (transaction {t})")).unwrap_or_default()
    )]
    Pending {
        /// The journal entry.
        entry: EntryId,
        /// The transaction a server named, if any.
        transaction: Option<String>,
    },
    /// The payment settled but the server's answer was lost.
    #[error(
        "payment {entry} settled{}, but the server's answer was lost: list your instances (`x402c instances`) to find what it bought",
        .transaction.as_ref().map(|t| format!(" in transaction {t}")).unwrap_or_default()
    )]
    PaidWithoutAnswer {
        /// The journal entry.
        entry: EntryId,
        /// The transaction.
        transaction: Option<String>,
    },
    /// The server refused the request (its message).
    #[error("the server refused the request ({status}): {message}")]
    BadRequest {
        /// The HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The server failed (5xx) or answered something unreadable.
    #[error("the server failed ({status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the server: {0}")]
    Network(String),
    /// The input is not valid (checked before anything is sent).
    #[error("{0}")]
    Invalid(String),
    /// The OWS binary failed or is unsafe.
    #[error("OWS: {0}")]
    Ows(String),
    /// The payment layer failed otherwise (signing, the journal).
    #[error(transparent)]
    Payment(x402_reqwest::Error),
}

impl Error {
    /// The error of a paying request.
    pub(crate) fn of_paying(error: reqwest_middleware::Error) -> Error {
        let Some(paying) = x402_reqwest::Error::of(&error) else {
            return match error {
                reqwest_middleware::Error::Reqwest(error) => Error::Network(with_causes(&error)),
                reqwest_middleware::Error::Middleware(other) => {
                    Error::Network(format!("{other:#}"))
                }
            };
        };
        match paying {
            x402_reqwest::Error::Policy(_)
            | x402_reqwest::Error::OverBudget { .. }
            | x402_reqwest::Error::Declined(_) => Error::Refused(paying.to_string()),
            x402_reqwest::Error::Rejected { reason, .. } => Error::Rejected {
                reason: reason.clone(),
            },
            x402_reqwest::Error::Pending { entry, transaction } => Error::Pending {
                entry: *entry,
                transaction: transaction.clone(),
            },
            x402_reqwest::Error::PaidWithoutAnswer { entry, transaction } => {
                Error::PaidWithoutAnswer {
                    entry: *entry,
                    transaction: Some(transaction.clone()),
                }
            }
            _ => match error {
                reqwest_middleware::Error::Middleware(inner) => match inner.downcast() {
                    Ok(paying) => Error::Payment(paying),
                    Err(other) => Error::Network(other.to_string()),
                },
                reqwest_middleware::Error::Reqwest(error) => Error::Network(with_causes(&error)),
            },
        }
    }
}

/// An error with its causes, each once (a TLS failure's reason is several sources down).
pub(crate) fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
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
