//! The crate's error type.

use x402_core::UsdMicros;

use crate::journal::EntryId;

/// What can go wrong with a paid request. Inside a `reqwest_middleware::Error::Middleware`;
/// get it back with [`Error::of`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server asked for payment but its challenge is unreadable, or no offer passed the
    /// policy (each offer with its reason). Nothing was signed.
    #[error("not paid: {0}")]
    Policy(#[source] x402_core::Error),
    /// The payment would take the rolling 24-hour spending over its budget. Nothing was
    /// signed.
    #[error(
        "not paid: {amount} would bring the last 24 hours' spending to more than the daily budget of {budget} ({spent} spent); raise the budget or wait"
    )]
    OverBudget {
        /// This payment.
        amount: UsdMicros,
        /// Spent (or possibly spent) in the last 24 hours.
        spent: UsdMicros,
        /// The budget.
        budget: UsdMicros,
    },
    /// The hook that runs before signing refused. Nothing was signed.
    #[error("not paid: {0}")]
    Declined(String),
    /// The request's body is a stream, which cannot be resent safely with a payment.
    #[error(
        "the server asks for payment, but the request body is a stream and cannot be replayed: buffer the body (bytes or a string) to pay for this request"
    )]
    StreamingBody,
    /// A chain could not be asked about a payment (no endpoint, or the call failed). The
    /// payment's state is unchanged.
    #[error("{0}")]
    Chain(String),
    /// The HTTP client cannot be set up as asked (CA bundle, proxy, TLS). Nothing was sent.
    #[error("{0}")]
    Transport(String),
    /// Signing the payment failed. Nothing was sent.
    #[error("cannot sign the payment: {0}")]
    Signing(#[source] x402_core::Error),
    /// The server refused the payment (its reason, as x402 names it). The payment is
    /// recorded as rejected.
    #[error("the server refused the payment ({status}): {reason}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The reason.
        reason: String,
    },
    /// The payment left and its outcome is not known: the server said `settlement_pending`,
    /// or the answer was lost. It stays pending in the journal; sending the same request
    /// again resends the same payment (never a new one) and learns the outcome.
    #[error(
        "payment {entry} is pending{}: its outcome is not known yet; send the same request again later (the same signed payment is resent, never a new one)",
        transaction.as_deref().map(|t| format!(" (transaction {t})")).unwrap_or_default()
    )]
    Pending {
        /// The journal entry.
        entry: EntryId,
        /// The transaction, when the server named one.
        transaction: Option<String>,
    },
    /// The payment settled (the server says so and names the transaction), but the answer
    /// to the request was lost: look up what it bought.
    #[error(
        "payment {entry} settled in transaction {transaction}, but the server's answer to the request was lost: look up what it bought"
    )]
    PaidWithoutAnswer {
        /// The journal entry.
        entry: EntryId,
        /// The transaction.
        transaction: String,
    },
    /// The journal cannot be read or written. When writing fails the payment is not sent.
    #[error("payment journal: {0}")]
    Journal(String),
}

impl Error {
    /// This crate's error inside a middleware error, if it is one.
    pub fn of(error: &reqwest_middleware::Error) -> Option<&Error> {
        match error {
            reqwest_middleware::Error::Middleware(inner) => inner.downcast_ref::<Error>(),
            reqwest_middleware::Error::Reqwest(_) => None,
        }
    }
}

impl From<Error> for reqwest_middleware::Error {
    fn from(error: Error) -> reqwest_middleware::Error {
        reqwest_middleware::Error::middleware(error)
    }
}
