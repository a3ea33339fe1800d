//! How a paid endpoint charges: the offers it makes (`offers.rs`), the charge itself — settle
//! through the in-process facilitator, or answer 402 (`charge.rs`) — and the receipt header it
//! returns (`receipt.rs`). Every x402-paid endpoint of every service goes through
//! `Cashier::charge`.

mod charge;
pub(crate) mod idempotency;
mod offers;
mod receipt;

use std::sync::Arc;

use x402_core::{PaymentPayload, UsdMicros};

use crate::api::{ApiError, ApiResult};
use crate::facilitator::{Facilitator, Settlement};
use crate::faults::Faults;

/// The payment families a request may ask for with its `network` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// EIP-3009 `exact` on Base Sepolia.
    BaseExact,
    /// ERC-2612 `permit` on MegaETH.
    MegaethPermit,
    /// SPL `exact` on Solana devnet.
    Solana,
}

impl Family {
    /// The family a request's `network` field names (`None`: offer every running chain).
    ///
    /// # Errors
    /// 400 for a name the devnet does not know.
    pub(crate) fn from_request(network: Option<&str>) -> ApiResult<Option<Family>> {
        match network {
            None => Ok(None),
            Some("base" | "base-sepolia") => Ok(Some(Family::BaseExact)),
            Some("megaeth") => Ok(Some(Family::MegaethPermit)),
            Some("solana" | "solana-devnet") => Ok(Some(Family::Solana)),
            Some(other) => Err(ApiError::bad_request(format!(
                "unknown network `{other}`: use base, megaeth or solana"
            ))),
        }
    }
}

/// What one paid endpoint asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Price<'a> {
    /// The price.
    pub(crate) amount: UsdMicros,
    /// What the payment buys (the challenge's resource description).
    pub(crate) description: &'a str,
    /// Only this family, when the request named one.
    pub(crate) family: Option<Family>,
    /// The 402's `error` text when no payment came.
    pub(crate) hint: &'a str,
}

/// A payment that settled, with the request's payment header it came from and what it
/// bought.
#[derive(Debug)]
pub(crate) struct Paid {
    /// The payment as sent.
    pub(crate) payment: PaymentPayload,
    /// Its settlement.
    pub(crate) settlement: Settlement,
    /// What applying its effect produced.
    pub(crate) applied: crate::store::Applied,
}

/// Makes offers and charges payments for every paid endpoint.
#[derive(Debug)]
pub struct Cashier {
    facilitator: Arc<Facilitator>,
    public_url: String,
    faults: Arc<Faults>,
}

impl Cashier {
    /// A cashier settling through `facilitator` to its payees; `public_url` prefixes the
    /// challenges' resource URLs.
    pub fn new(facilitator: Arc<Facilitator>, public_url: String, faults: Arc<Faults>) -> Cashier {
        Cashier {
            facilitator,
            public_url,
            faults,
        }
    }
}

/// The layers every paid route wears: the dropped-answer fault, and a `payment-identifier`
/// retry answered from the stored answer.
pub(crate) fn paid_layers<S: Clone + Send + Sync + 'static>(
    routes: axum::Router<S>,
    faults: std::sync::Arc<crate::faults::Faults>,
    store: std::sync::Arc<crate::store::Store>,
) -> axum::Router<S> {
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            faults,
            crate::faults::drop_paid_answers,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            store,
            idempotency::idempotent,
        ))
}
