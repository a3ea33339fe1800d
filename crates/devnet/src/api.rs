//! What every HTTP service of the devnet answers with: the `{"error": "..."}` body with its
//! status ([`ApiError`]), and the formats shared by their JSON (dollar strings, RFC 3339 times,
//! UUID-shaped ids).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use x402_core::{Clock, UsdMicros};

use crate::clock::RandomSource;

/// An error response: status plus `{"error": message}` (and extra fields).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// An error with a body of its own shape.
    pub(crate) fn with_body(status: StatusCode, body: Value) -> ApiError {
        ApiError { status, body }
    }

    /// `{"error": message}` with `status`.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 500, logged; the caller sees no detail.
    pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the devnet log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<crate::error::Error> for ApiError {
    fn from(error: crate::error::Error) -> ApiError {
        ApiError::internal(error)
    }
}

/// A handler's result: the response, or the error to answer with.
pub(crate) type ApiResult<T = Response> = std::result::Result<T, ApiError>;

/// Parses a JSON request body, or answers 400 naming the expected `shape`.
pub(crate) fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> ApiResult<T> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body must be {shape}: {e}")))
}

/// `"150.00"`-style dollar strings (at least two decimals, more when needed).
pub(crate) fn dollars(amount: UsdMicros) -> String {
    amount.to_string().trim_start_matches('$').to_owned()
}

/// A random UUID-shaped id.
pub(crate) fn random_id(random: &dyn RandomSource) -> String {
    let mut bytes = [0u8; 16];
    random.fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = alloy::hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The clock's time as RFC 3339.
pub(crate) fn now_rfc3339(clock: &dyn Clock) -> String {
    rfc3339(clock.now_unix())
}

/// Unix seconds as RFC 3339 (`2026-02-18T00:00:00Z`).
pub(crate) fn rfc3339(unix: u64) -> String {
    let seconds = i64::try_from(unix).unwrap_or(0);
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
