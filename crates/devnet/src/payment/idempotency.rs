//! The `payment-identifier` extension on the server side: a paid request whose v2 payment
//! carries an id is answered once; the same id with the same payment gets the stored answer
//! (receipt header included) without charging again, the same id with another payment 409.
//! A layer over the paid routes, so every paid endpoint of every service gets it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use x402_core::PaymentPayload;
use x402_core::extensions::payment_id;
use x402_core::receipt::{PAYMENT_RESPONSE, X_PAYMENT_RESPONSE};

use crate::api::ApiError;
use crate::store::{PaymentIdClaim, Store, StoredResponse};

/// The largest answer kept for replay.
const MAX_STORED_BODY: usize = 1024 * 1024;

/// The layer: see the module docs.
pub(crate) async fn idempotent(
    State(store): State<Arc<Store>>,
    request: Request,
    next: Next,
) -> Response {
    // A missing or unreadable payment header is the handler's to answer.
    let Ok(Some(payment)) = PaymentPayload::from_headers(request.headers()) else {
        return next.run(request).await;
    };
    let id = match payment_id(&payment) {
        Ok(Some(id)) => id,
        Ok(None) => return next.run(request).await,
        Err(error) => return ApiError::bad_request(error.to_string()).into_response(),
    };
    let header = request
        .headers()
        .get(x402_core::payload::PAYMENT_SIGNATURE)
        .or_else(|| request.headers().get(x402_core::payload::X_PAYMENT))
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let fingerprint = alloy::hex::encode(Sha256::digest(header));
    match store.claim_payment_id(id.as_str(), &fingerprint) {
        Err(error) => return ApiError::internal(error).into_response(),
        Ok(PaymentIdClaim::Stored(stored)) => return replay(stored),
        Ok(PaymentIdClaim::OtherPayment) => {
            return ApiError::conflict(format!(
                "payment id {id} was already used with another payment; a retry must resend the same signed payment"
            ))
            .into_response();
        }
        Ok(PaymentIdClaim::InProgress) => {
            return ApiError::conflict(format!(
                "a request with payment id {id} is still being answered; send it again shortly"
            ))
            .into_response();
        }
        Ok(PaymentIdClaim::New) => {}
    }
    // Forgets the id if the answer is never stored (the request is dropped or unwinds).
    let guard = Unanswered {
        store: &store,
        id: id.as_str(),
        answered: false,
    };
    let response = next.run(request).await;
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_STORED_BODY).await {
        Ok(body) => body,
        Err(error) => return ApiError::internal(error).into_response(),
    };
    if !parts.status.is_success() {
        // Only a final answer is kept: a refusal, `settlement_pending` or a 5xx is answered
        // afresh when the same payment comes again (the guard forgets the id).
        return Response::from_parts(parts, Body::from(body));
    }
    let kept = [
        http::header::CONTENT_TYPE.as_str(),
        PAYMENT_RESPONSE,
        X_PAYMENT_RESPONSE,
    ];
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        headers: kept
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect(),
        body: body.to_vec(),
    };
    match store.store_payment_id_response(id.as_str(), &stored) {
        Ok(()) => {
            let mut guard = guard;
            guard.answered = true;
        }
        Err(error) => tracing::error!(%error, "could not store the answer to a payment id"),
    }
    Response::from_parts(parts, Body::from(body))
}

/// Forgets a claimed payment id on drop unless its answer was stored.
struct Unanswered<'a> {
    store: &'a Store,
    id: &'a str,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.store.forget_payment_id(self.id);
        }
    }
}

/// The stored answer, as it was sent.
fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}
