//! The charge: answer 402 without a payment; with one, find the offer it answers, settle it
//! through the facilitator, and turn a refusal into the 402 (or 502) to send.

use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use x402_core::challenge::PaymentRequired;
use x402_core::receipt::{PAYMENT_RESPONSE, X_PAYMENT_RESPONSE};
use x402_core::{Challenge, PaymentPayload, Receipt, X402Version};

use super::offers::payment_required;
use super::{Cashier, Paid, Price};
use crate::api::ApiError;
use crate::error::Error;
use crate::facilitator::{Settled, Settlement};
use crate::store::Effect;

impl Cashier {
    /// Charges `price` with x402: without a payment, the 402 to send; with one, the settled
    /// payment, or the 402 (or 502) saying why it was refused.
    pub(crate) async fn charge(
        &self,
        uri: &Uri,
        price: Price<'_>,
        payment: Option<PaymentPayload>,
        effect: Effect,
    ) -> Result<Paid, Response> {
        let required = self.offers(uri, &price);
        let Some(payment) = payment else {
            return Err(payment_required(&required, price.hint));
        };
        let settled = self.settle(&required, &payment, effect).await?;
        Ok(Paid {
            payment,
            settlement: settled.settlement,
            applied: settled.applied,
        })
    }

    /// Finds the offer `payment` answers and settles it; a failed payment becomes the 402 to
    /// send.
    async fn settle(
        &self,
        required: &PaymentRequired,
        payment: &PaymentPayload,
        effect: Effect,
    ) -> Result<Settled, Response> {
        let challenge = match payment.version() {
            X402Version::V1 => Challenge::from_body(&required.to_v1_body()),
            X402Version::V2 => Challenge::from_v2_header(&required.to_v2_header()),
        }
        .map_err(|e| ApiError::internal(e).into_response())?;
        let requirement = challenge
            .offers()
            .iter()
            .filter_map(|o| o.requirement().ok())
            .find(|r| r.network() == payment.network() && r.scheme() == payment.scheme())
            .ok_or_else(|| {
                payment_required(
                    required,
                    &format!(
                        "no offer for `{}` on {}",
                        payment.scheme(),
                        payment.network()
                    ),
                )
            })?;
        if payment.network().is_solana() && self.faults.solana_transient_failure() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient Solana facilitator error (injected); retry with a fresh blockhash",
            )
            .into_response());
        }
        match self.facilitator.settle(payment, requirement, effect).await {
            Ok(settled) => Ok(settled),
            Err(Error::Pending { transaction }) => {
                // Unknown outcome: never a refusal. The same payment sent again learns it.
                let pending = Receipt {
                    success: false,
                    transaction: transaction.clone(),
                    network: requirement.network_text().to_owned(),
                    payer: None,
                    error_reason: Some("settlement_pending".to_owned()),
                    amount: Some(requirement.amount()),
                };
                let mut response = payment_required(
                    required,
                    &format!(
                        "settlement_pending: transaction {transaction} is not confirmed yet; do not pay again: send the same payment again later to learn the outcome"
                    ),
                );
                let name = match payment.version() {
                    X402Version::V1 => X_PAYMENT_RESPONSE,
                    X402Version::V2 => PAYMENT_RESPONSE,
                };
                if let Ok(value) = HeaderValue::from_str(&pending.to_header_value()) {
                    response.headers_mut().insert(name, value);
                }
                Err(response)
            }
            Err(Error::AlreadySettled { transaction, payer }) => {
                // Refused, but with the receipt of the original settlement, so a client that
                // lost the first answer learns its payment went through.
                let original = Settlement {
                    network: requirement.network_text().to_owned(),
                    payer: payer
                        .parse()
                        .map_err(|e| ApiError::internal(e).into_response())?,
                    transaction: transaction.clone(),
                    amount: requirement.amount(),
                };
                let refusal = payment_required(
                    required,
                    &format!(
                        "payment refused (duplicate_settlement): already settled in transaction {transaction}; nothing was charged again"
                    ),
                );
                Err(super::receipt::with_settlement_receipt(
                    refusal,
                    payment.version(),
                    &original,
                ))
            }
            Err(error) => match error.invalid_reason() {
                Some(reason) => {
                    tracing::info!(%reason, %error, "payment refused");
                    Err(payment_required(
                        required,
                        &format!("payment refused ({reason}): {error}"),
                    ))
                }
                None => Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("settlement failed: {error}"),
                )
                .into_response()),
            },
        }
    }
}
