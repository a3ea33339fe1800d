//! API keys (`/compute/api-keys`): created and revoked with a wallet signature, shown once,
//! stored hashed, listed by their last four characters.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Machines;
use crate::api::{ApiError, ApiResult, now_rfc3339, parse_body, random_id};
use crate::auth::{Call, key_hash};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[serde(default)]
    label: Option<String>,
}

pub(super) async fn create(State(state): State<Arc<Machines>>, call: Call) -> ApiResult {
    let wallet = state
        .auth
        .wallet_by_signature(&call, "creating an API key")?;
    let request: CreateKey = if call.body.is_empty() {
        CreateKey { label: None }
    } else {
        parse_body(&call.body, "{\"label\": \"...\"}")?
    };
    let mut secret = [0u8; 24];
    state.random.fill(&mut secret);
    let key = format!("x402c_{}", alloy::hex::encode(secret));
    let id = random_id(&*state.random);
    let created_at = now_rfc3339(&*state.clock);
    let last4 = key[key.len() - 4..].to_owned();
    state.store.insert_api_key(
        &wallet,
        &id,
        &key_hash(&key),
        &last4,
        request.label.as_deref(),
        &created_at,
    )?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "api_key": key, "id": id, "label": request.label, "created_at": created_at })),
    )
        .into_response())
}

pub(super) async fn list(State(state): State<Arc<Machines>>, call: Call) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let keys: Vec<Value> = state
        .store
        .api_keys(&wallet)?
        .into_iter()
        .map(|k| json!({ "id": k.id, "label": k.label, "key_last4": k.key_last4, "created_at": k.created_at, "revoked_at": k.revoked_at }))
        .collect();
    Ok(Json(json!({ "api_keys": keys })).into_response())
}

pub(super) async fn revoke(
    State(state): State<Arc<Machines>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let wallet = state
        .auth
        .wallet_by_signature(&call, "revoking an API key")?;
    if !state
        .store
        .revoke_api_key(&wallet, &id, &now_rfc3339(&*state.clock))?
    {
        return Err(ApiError::not_found(format!("no API key {id}")));
    }
    Ok(Json(json!({ "success": true, "id": id })).into_response())
}
