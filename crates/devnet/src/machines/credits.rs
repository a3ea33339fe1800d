//! Prepaid credits: the balance, and top-ups paid with x402 (`/compute/credits/...`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use x402_core::{PaymentPayload, UsdMicros};

use super::Machines;
use super::catalog;
use crate::api::{ApiError, ApiResult, dollars, parse_body};
use crate::auth::{Call, has_credentials};
use crate::payment::{Family, Price};
use crate::store::{Applied, Effect, wallet_key};

/// The smallest top-up.
const MIN_TOPUP: UsdMicros = UsdMicros::from_dollars(1);

pub(super) async fn balance(State(state): State<Arc<Machines>>, call: Call) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let credits = state.store.credits(&wallet)?;
    let wallet = wallet_key(&wallet);
    let body = if credits.deposited_micros == 0 {
        json!({ "wallet": wallet, "balance": 0, "total_deposited": 0, "total_spent": 0 })
    } else {
        json!({
            "wallet": wallet,
            "balance": dollars(UsdMicros(credits.balance_micros())),
            "total_deposited": dollars(UsdMicros(credits.deposited_micros)),
            "total_spent": dollars(UsdMicros(credits.spent_micros)),
        })
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopupRequest {
    /// Kept as written: a JSON number never passes through `f64`.
    amount: Box<RawValue>,
    #[serde(default)]
    network: Option<String>,
}

pub(super) async fn topup(State(state): State<Arc<Machines>>, call: Call) -> ApiResult {
    let paying = PaymentPayload::from_headers(&call.headers)
        .map_err(|e| ApiError::bad_request(format!("unreadable payment header: {e}")))?;
    // The paid retry may come without auth (its nonce was spent on the first call): the
    // payment itself then identifies the wallet to credit.
    let wallet = match (state.auth.wallet(&call), &paying) {
        (Ok(wallet), _) => Some(wallet),
        (Err(error), None) => return Err(error),
        (Err(_), Some(_)) if has_credentials(&call.headers) => {
            return Err(ApiError::unauthorized(
                "bad auth on the paid retry; send the payment without auth headers or with fresh ones",
            ));
        }
        (Err(_), Some(_)) => None,
    };
    let request: TopupRequest = parse_body(&call.body, "{\"amount\": <USD>, \"network\": ...}")?;
    let amount = parse_usd(&request.amount)?;
    if amount < MIN_TOPUP {
        return Err(ApiError::bad_request("the minimum top-up is $1"));
    }
    let price = Price {
        amount,
        description: "Top up prepaid compute credits",
        family: Family::from_request(request.network.as_deref())?,
        hint: "payment required: pay with X-PAYMENT (v1) or PAYMENT-SIGNATURE (v2)",
    };
    // The credit is written in the same database transaction that marks the payment settled.
    let effect = Effect::Credit {
        wallet,
        micros: amount.0,
    };
    let paid = match state.cashier.charge(&call.uri, price, paying, effect).await {
        Ok(paid) => paid,
        Err(response) => return Ok(response),
    };
    let wallet = wallet.unwrap_or(paid.settlement.payer);
    let Applied::Credits(credits) = paid.applied else {
        return Err(ApiError::internal("a top-up applied no credit"));
    };
    let body = json!({
        "success": true,
        "deposited": catalog::usd_number(amount),
        "new_balance": dollars(UsdMicros(credits.balance_micros())),
        "tx_hash": paid.settlement.transaction,
        "wallet": wallet_key(&wallet),
    });
    Ok(paid.with_receipt(Json(body).into_response()))
}

/// A USD amount from a JSON number or string, exact to the micro-dollar: the number is read
/// from its decimal text, never through `f64`.
fn parse_usd(raw: &RawValue) -> ApiResult<UsdMicros> {
    let written = raw.get().trim();
    let text = match serde_json::from_str::<Value>(written) {
        Ok(Value::String(text)) => text,
        Ok(Value::Number(_)) if !written.contains(['e', 'E']) => written.to_owned(),
        Ok(Value::Number(_)) => {
            return Err(ApiError::bad_request(format!(
                "`amount` {written}: write the dollars as a plain decimal, without an exponent"
            )));
        }
        _ => {
            return Err(ApiError::bad_request(
                "`amount` must be a number of US dollars",
            ));
        }
    };
    text.parse()
        .map_err(|e: x402_core::Error| ApiError::bad_request(format!("`amount`: {e}")))
}
