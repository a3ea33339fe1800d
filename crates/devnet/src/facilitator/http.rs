//! The facilitator over HTTP: `GET /supported`, `POST /verify`, `POST /settle`, as the x402
//! facilitator API defines them.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use x402_core::{PaymentPayload, Requirement, X402Version};

use super::Facilitator;
use crate::error::Error;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FacilitatorRequest {
    payment_payload: Box<RawValue>,
    payment_requirements: Box<RawValue>,
}

/// Parses a `/verify` or `/settle` body into the payment and the requirement.
fn read_request(body: &[u8]) -> std::result::Result<(PaymentPayload, Requirement), Box<Response>> {
    let bad = |detail: String| {
        (
            ::http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": detail })),
        )
            .into_response()
    };
    let request: FacilitatorRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "body must be {{x402Version, paymentPayload, paymentRequirements}}: {e}"
        ))
    })?;
    let payment = PaymentPayload::from_json(request.payment_payload.get().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let requirement = Requirement::parse(payment.version(), &request.payment_requirements)
        .map_err(|e| bad(e.to_string()))?;
    Ok((payment, requirement))
}

fn reason_of(error: &Error) -> (&'static str, String) {
    match error.invalid_reason() {
        Some(reason) => (reason.as_str(), error.to_string()),
        None => ("unexpected_settle_error", error.to_string()),
    }
}

/// The facilitator's HTTP routes.
pub fn routes(facilitator: Arc<Facilitator>) -> Router {
    Router::new()
        .route("/supported", get(supported))
        .route("/verify", post(verify))
        .route("/settle", post(settle))
        .with_state(facilitator)
}

async fn supported(State(facilitator): State<Arc<Facilitator>>) -> Json<Value> {
    let kinds: Vec<Value> = facilitator
        .kinds()
        .into_iter()
        .map(|kind| {
            let network = match kind.version {
                X402Version::V1 => kind
                    .network
                    .v1_name()
                    .unwrap_or(kind.network.as_str())
                    .to_owned(),
                X402Version::V2 => kind.network.to_string(),
            };
            let mut kind = json!({ "x402Version": kind.version.number(), "scheme": kind.scheme.as_str(), "network": network });
            if let (true, Some(fee_payer)) = (
                network.starts_with("solana"),
                facilitator.solana_fee_payer(),
            ) {
                kind["extra"] = json!({ "feePayer": fee_payer.to_string() });
            }
            kind
        })
        .collect();
    let mut signers = json!({ "eip155:*": [facilitator.evm_signer().to_checksum(None)] });
    if let Some(fee_payer) = facilitator.solana_fee_payer() {
        signers["solana:*"] = json!([fee_payer.to_string()]);
    }
    Json(json!({ "kinds": kinds, "extensions": [], "signers": signers }))
}

async fn verify(State(facilitator): State<Arc<Facilitator>>, body: axum::body::Bytes) -> Response {
    let (payment, requirement) = match read_request(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    match facilitator.verify(&payment, &requirement).await {
        Ok(payer) => Json(json!({ "isValid": true, "payer": payer })).into_response(),
        Err(error) => {
            let (reason, message) = reason_of(&error);
            let reason = if error.invalid_reason().is_some() {
                reason
            } else {
                "unexpected_verify_error"
            };
            Json(json!({ "isValid": false, "invalidReason": reason, "invalidMessage": message }))
                .into_response()
        }
    }
}

async fn settle(State(facilitator): State<Arc<Facilitator>>, body: axum::body::Bytes) -> Response {
    let (payment, requirement) = match read_request(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let network = match payment.version() {
        X402Version::V1 => requirement.network_text().to_owned(),
        X402Version::V2 => requirement.network().to_string(),
    };
    match facilitator
        .settle(&payment, &requirement, crate::store::Effect::None)
        .await
    {
        Ok(settled) => {
            let settlement = settled.settlement;
            Json(json!({ "success": true, "payer": settlement.payer.to_string(), "transaction": settlement.transaction, "network": network, "amount": settlement.amount })).into_response()
        }
        Err(crate::error::Error::Pending { transaction }) => Json(json!({ "success": false, "errorReason": "settlement_pending", "errorMessage": format!("transaction {transaction} is not confirmed yet"), "transaction": transaction, "network": network })).into_response(),
        Err(error) => {
            let (reason, message) = reason_of(&error);
            Json(json!({ "success": false, "errorReason": reason, "errorMessage": message, "transaction": "", "network": network })).into_response()
        }
    }
}
