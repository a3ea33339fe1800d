//! The receipt header a paid answer carries: `X-PAYMENT-RESPONSE` for a v1 payment,
//! `PAYMENT-RESPONSE` for v2.

use axum::http::HeaderValue;
use axum::response::Response;
use x402_core::receipt::{PAYMENT_RESPONSE, X_PAYMENT_RESPONSE};
use x402_core::{Receipt, X402Version};

use super::Paid;
use crate::facilitator::Settlement;

impl Paid {
    /// `response` with this payment's receipt header.
    pub(crate) fn with_receipt(&self, response: Response) -> Response {
        with_settlement_receipt(response, self.payment.version(), &self.settlement)
    }
}

/// `response` with a successful receipt for `settlement`, in the header of `version`.
pub(crate) fn with_settlement_receipt(
    mut response: Response,
    version: X402Version,
    settlement: &Settlement,
) -> Response {
    let receipt = Receipt {
        success: true,
        transaction: settlement.transaction.clone(),
        network: settlement.network.clone(),
        payer: Some(settlement.payer.to_string()),
        error_reason: None,
        amount: Some(settlement.amount),
    };
    let name = match version {
        X402Version::V1 => X_PAYMENT_RESPONSE,
        X402Version::V2 => PAYMENT_RESPONSE,
    };
    if let Ok(value) = HeaderValue::from_str(&receipt.to_header_value()) {
        response.headers_mut().insert(name, value);
    }
    response
}
