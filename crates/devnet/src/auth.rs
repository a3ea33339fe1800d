//! How a request is authenticated: an `X-API-Key` (stored hashed), or the six `X-Auth-*`
//! wallet-signature headers of the compute API (EVM or Solana, a ±5 minute window, a
//! single-use nonce).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use x402_core::{Clock, PayTo};

use crate::api::{ApiError, ApiResult};
use crate::store::Store;

/// The largest request body the services read.
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A request as authentication and payment need it: the wallet signature covers the method,
/// the path and the raw body, and the payment header sits among the headers. An extractor,
/// so it comes last among a handler's arguments.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Call {
    type Rejection = Response;

    async fn from_request(request: Request, _state: &S) -> Result<Call, Response> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "unreadable body (at most {MAX_BODY_BYTES} bytes): {e}"
                ))
                .into_response()
            })?;
        Ok(Call {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
        })
    }
}

/// Auth timestamps are accepted this far from the server clock, either way.
pub const AUTH_WINDOW_MS: u64 = 300_000;

/// The header carrying an API key.
pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// Checks who is calling.
pub struct Authenticator {
    store: Arc<Store>,
    clock: Arc<dyn Clock + Send + Sync>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over the stored API keys and used nonces.
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock + Send + Sync>) -> Authenticator {
        Authenticator { store, clock }
    }

    /// The calling wallet: from `X-API-Key`, else from the `X-Auth-*` headers (whose nonce is
    /// then used up). EVM or Solana, typed: a base58 address keeps its case.
    pub(crate) fn wallet(&self, call: &Call) -> ApiResult<PayTo> {
        let Call {
            method,
            uri,
            headers,
            body,
        } = call;
        if let Some(key) = headers.get(API_KEY_HEADER) {
            let key = key
                .to_str()
                .map_err(|_| ApiError::unauthorized("X-API-Key is not ASCII"))?;
            return self
                .store
                .wallet_for_key(&key_hash(key))?
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"));
        }
        if !headers.contains_key(x402_core::auth::HEADER_SIGNATURE) {
            return Err(ApiError::unauthorized(
                "authentication required: send X-API-Key or the X-Auth-* wallet signature headers",
            ));
        }
        let now_ms = self.clock.now_unix_ms();
        let identity = x402_core::auth::verify(
            headers,
            method.as_str(),
            uri.path(),
            body,
            now_ms,
            AUTH_WINDOW_MS,
        )
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        if !self
            .store
            .use_auth_nonce(&identity.nonce, now_ms, 2 * AUTH_WINDOW_MS)?
        {
            return Err(ApiError::unauthorized(
                "auth nonce already used: sign every request with a fresh nonce",
            ));
        }
        identity
            .address
            .parse()
            .map_err(|e: x402_core::Error| ApiError::unauthorized(e.to_string()))
    }

    /// The wallet owning the unrevoked API key `key`, if any (the grid reads keys from
    /// `Authorization: Bearer` too).
    pub(crate) fn key_wallet(&self, key: &str) -> ApiResult<Option<PayTo>> {
        Ok(self.store.wallet_for_key(&key_hash(key))?)
    }

    /// The calling wallet when the request carries credentials, `None` when it carries none.
    pub(crate) fn optional_wallet(&self, call: &Call) -> ApiResult<Option<PayTo>> {
        match has_credentials(&call.headers) {
            true => self.wallet(call).map(Some),
            false => Ok(None),
        }
    }

    /// The calling wallet, refusing API keys: for managing the keys themselves.
    pub(crate) fn wallet_by_signature(&self, call: &Call, action: &str) -> ApiResult<PayTo> {
        if call.headers.contains_key(API_KEY_HEADER) {
            return Err(ApiError::unauthorized(format!(
                "{action} needs the wallet signature headers, not an API key"
            )));
        }
        self.wallet(call)
    }
}

/// Whether the request carries an API key or a wallet signature.
pub(crate) fn has_credentials(headers: &HeaderMap) -> bool {
    headers.contains_key(API_KEY_HEADER) || headers.contains_key(x402_core::auth::HEADER_SIGNATURE)
}

/// How an API key is stored: its SHA-256, hex.
pub(crate) fn key_hash(key: &str) -> String {
    alloy::hex::encode(Sha256::digest(key.as_bytes()))
}
