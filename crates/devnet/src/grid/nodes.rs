//! The node side (§3): registration, device login, heartbeats, attestation, off-grid,
//! prices and status; and the devnet-only routes that stand in for the web side (codes,
//! device approval, the binary allowlist, token rotation).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use grid_proto::node::{
    AllowedBinaries, AttestationVerdict, Challenge, DevicePoll, DevicePollRequest, DeviceStart,
    GridStatus, HardwareReport, Heartbeat, HeartbeatResponse, NodeStatus, RegisterRequest,
    RegisterResponse, ServerMessage, SetPrice, VerifyAttestation,
};
use grid_proto::{envelope, seal};
use serde::Deserialize;
use serde_json::json;
use x402_core::PayTo;

use super::pricing::{self, Price};
use super::{Grid, node_status_word, pending_job};
use crate::api::{ApiError, ApiResult, parse_body, random_id, rfc3339};
use crate::auth::{Call, key_hash};
use crate::store::{CustomPrice, HeartbeatUpdate, NewNode, RegisterRefusal};

/// Device login codes last this long.
const DEVICE_EXPIRES_S: u64 = 600;
/// Attestation challenges last this long.
const CHALLENGE_EXPIRES_S: u64 = 300;
/// Most models a node may advertise.
const MAX_MODELS: usize = 16;

const NOT_ALLOWLISTED: &str = "Node binary is not a recognized SGL build";

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

fn check_models(models: &[String]) -> ApiResult<()> {
    if models.len() > MAX_MODELS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_MODELS} models may be advertised"
        )));
    }
    if let Some(bad) = models
        .iter()
        .find(|m| m.is_empty() || m.len() > 128 || m.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!(
            "model name `{}` must be 1 to 128 printable characters",
            bad.escape_debug()
        )));
    }
    Ok(())
}

fn check_wallet(wallet: &str) -> ApiResult<()> {
    wallet.parse::<PayTo>().map(|_| ()).map_err(|_| {
        ApiError::bad_request(format!(
            "wallet_address `{}` is neither a Solana nor an EVM address",
            wallet.escape_debug()
        ))
    })
}

/// `POST /grid/nodes/register`.
pub(super) async fn register(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let request: RegisterRequest = parse_body(
        &call.body,
        "{wallet_address, registration_code, tee_type, available_models, public_key, ...}",
    )?;
    let code = request
        .registration_code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "registration_code is required: get one with `sgl login` (device approval) or POST /devnet/grid/codes",
            )
        })?;
    let wallet = request.wallet_address.trim();
    check_wallet(wallet)?;
    seal::key_from_b58(&request.public_key)
        .map_err(|_| ApiError::bad_request("public_key must be base58 of 32 bytes (ed25519)"))?;
    check_models(&request.available_models)?;
    if request.tee_type.is_empty() || request.tee_type.len() > 64 {
        return Err(ApiError::bad_request("tee_type must be 1 to 64 characters"));
    }
    let id = random_id(&*grid.random);
    let token = format!("sgln_{}", grid.random_hex(32));
    let registration = json!({
        "cpu_cores": request.cpu_cores,
        "ram_gb": request.ram_gb,
        "gpu_model": request.gpu_model,
        "supported_runtimes": request.supported_runtimes,
    })
    .to_string();
    let refused = grid.store.register_grid_node(&NewNode {
        id: &id,
        wallet,
        code,
        public_key: request.public_key.trim(),
        token_hash: &key_hash(&token),
        tee_type: &request.tee_type,
        available_models: &request.available_models,
        registration: &registration,
        now_ms: grid.now_ms(),
    })?;
    match refused {
        Ok(()) => {}
        Err(RegisterRefusal::UnknownCode) => {
            return Err(forbidden("unknown registration code"));
        }
        Err(RegisterRefusal::UsedCode) => {
            return Err(forbidden(
                "registration code already used: get a new one (codes are single use)",
            ));
        }
        Err(RegisterRefusal::OtherWallet) => {
            return Err(forbidden(
                "registration code was issued to another wallet: register with the wallet that approved it",
            ));
        }
    }
    tracing::info!(node = %id, "grid node registered");
    Ok(Json(RegisterResponse {
        node_id: id,
        auth_token: token,
    })
    .into_response())
}

/// `POST /grid/auth/device/start`.
pub(super) async fn device_start(State(grid): State<Arc<Grid>>) -> ApiResult {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let device_code = grid.random_hex(16);
    let mut bytes = [0u8; 8];
    grid.random.fill(&mut bytes);
    let letters: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    let user_code = format!("{}-{}", &letters[..4], &letters[4..]);
    let expires = grid.now_ms().saturating_add(DEVICE_EXPIRES_S * 1000);
    grid.store
        .insert_device_code(&device_code, &user_code, expires)?;
    Ok(Json(DeviceStart {
        verify_url: format!("{}/devnet/grid/device?user_code={user_code}", grid.url),
        device_code,
        user_code,
        interval: 3,
        expires_in: DEVICE_EXPIRES_S,
    })
    .into_response())
}

/// `POST /grid/auth/device/poll`.
pub(super) async fn device_poll(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let request: DevicePollRequest = parse_body(&call.body, "{\"device_code\": ...}")?;
    let Some((approved, expired)) = grid
        .store
        .device_code(request.device_code.trim(), grid.now_ms())?
    else {
        return Err(ApiError::bad_request(
            "unknown device code: start again with POST /grid/auth/device/start",
        ));
    };
    let answer = match (approved, expired) {
        (Some((wallet, code)), _) => DevicePoll {
            status: "approved".into(),
            registration_code: Some(code),
            wallet_address: Some(wallet),
        },
        (None, true) => DevicePoll {
            status: "expired".into(),
            registration_code: None,
            wallet_address: None,
        },
        (None, false) => DevicePoll {
            status: "pending".into(),
            registration_code: None,
            wallet_address: None,
        },
    };
    Ok(Json(answer).into_response())
}

/// `POST /grid/nodes/heartbeat`.
pub(super) async fn heartbeat(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let node_id = call
        .headers
        .get("x-node-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(|| ApiError::bad_request("X-Node-Id is required"))?;
    let node = grid.node_auth(&call.headers, Some(node_id))?;
    let beat: Heartbeat = parse_body(
        &call.body,
        "{current_load, available_models, encryption_public_key, active_job_ids, ...}",
    )?;
    seal::key_from_b58(&beat.encryption_public_key).map_err(|_| {
        ApiError::bad_request("encryption_public_key must be base58 of 32 bytes (X25519)")
    })?;
    check_models(&beat.available_models)?;
    let allowed = grid.store.grid_allowed_binaries()?;
    if !allowed.is_empty()
        && !beat
            .binary_hash
            .as_deref()
            .is_some_and(|hash| allowed.iter().any(|a| a.eq_ignore_ascii_case(hash)))
    {
        return Err(forbidden(NOT_ALLOWLISTED));
    }
    let keybind_verified = match (&beat.encryption_public_key_signature, beat.key_version) {
        (Some(signature), Some(version)) => {
            match seal::verify_keybind(
                &node.id,
                &node.public_key,
                &beat.encryption_public_key,
                version,
                signature,
            ) {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(node = %node.id, %error, "a heartbeat's key binding does not verify");
                    false
                }
            }
        }
        _ => false,
    };
    let outcome = grid.store.grid_heartbeat(
        &node.id,
        &HeartbeatUpdate {
            current_load: if beat.current_load.is_finite() {
                beat.current_load.clamp(0.0, 1.0)
            } else {
                0.0
            },
            available_models: &beat.available_models,
            encryption_public_key: beat.encryption_public_key.trim(),
            keybind_signature: beat.encryption_public_key_signature.as_deref(),
            key_version: beat.key_version,
            keybind_verified,
            capabilities: beat.capabilities,
            active_job_ids: &beat.active_job_ids,
            binary_hash: beat.binary_hash.as_deref(),
            max_concurrent_jobs: beat.max_concurrent_jobs.clamp(1, 16),
            now_ms: grid.now_ms(),
        },
    )?;
    grid.tell_failed(&outcome.ghosts);
    grid.sweep()?;
    Ok(Json(HeartbeatResponse {
        status: "ok".into(),
        pending_jobs: outcome.pending.iter().map(pending_job).collect(),
        new_auth_token: outcome.new_token,
        token_expires_at: None,
    })
    .into_response())
}

/// `POST /grid/nodes/{id}/challenge`.
pub(super) async fn challenge(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let node = grid.node_auth(&call.headers, Some(&id))?;
    let challenge = format!("sgl-challenge-{}", grid.random_hex(32));
    let expires = grid.now_ms().saturating_add(CHALLENGE_EXPIRES_S * 1000);
    grid.store
        .insert_grid_challenge(&challenge, &node.id, expires)?;
    Ok(Json(Challenge {
        challenge,
        expires_at: Some(rfc3339(expires / 1000)),
        expires_in_seconds: Some(CHALLENGE_EXPIRES_S),
    })
    .into_response())
}

/// `POST /grid/nodes/{id}/verify-attestation`.
pub(super) async fn verify_attestation(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let node = grid.node_auth(&call.headers, Some(&id))?;
    let request: VerifyAttestation = parse_body(
        &call.body,
        "{signature, encryption_public_key, hardware_report, report_signature}",
    )?;
    let report: HardwareReport = serde_json::from_value(request.hardware_report.clone())
        .map_err(|e| {
            ApiError::bad_request(format!(
                "hardware_report must be our signed report (challenge, tee_type, os, kernel_version, cpu_cores, memory_bytes, gpu_model, binary_hash, hardware_attested): {e}"
            ))
        })?;
    if let Some(key) = &node.encryption_public_key
        && key != request.encryption_public_key.trim()
    {
        return Err(ApiError::bad_request(
            "encryption_public_key is not the key this node's heartbeats publish",
        ));
    }
    if !grid
        .store
        .take_grid_challenge(&report.challenge, &node.id, grid.now_ms())?
    {
        return Err(ApiError::bad_request(
            "the report's challenge is unknown, used or expired: ask POST /grid/nodes/{id}/challenge again",
        ));
    }
    envelope::verify(
        &node.public_key,
        &request.signature,
        report.challenge.as_bytes(),
        "challenge",
    )
    .map_err(|e| forbidden(format!("challenge signature: {e}")))?;
    let report_signature = request.report_signature.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "report_signature is required: sign the report bound to the challenge (sgl-attest-report-v1)",
        )
    })?;
    let signed = report.signed_json();
    envelope::verify(
        &node.public_key,
        report_signature,
        envelope::report_message(&report.challenge, &signed).as_bytes(),
        "hardware report",
    )
    .map_err(|e| forbidden(format!("report signature: {e}")))?;
    if report.hardware_attested != report.tee_evidence.is_some() {
        return Err(ApiError::bad_request(
            "hardware_attested must be true exactly when tee_evidence is attached",
        ));
    }
    if let Some(evidence) = &report.tee_evidence {
        tee_evidence_binds(
            evidence,
            &node.public_key,
            &request.encryption_public_key,
            &report.challenge,
        )
        .map_err(forbidden)?;
    }
    let allowed = grid.store.grid_allowed_binaries()?;
    if !allowed.is_empty()
        && !allowed
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&report.binary_hash))
    {
        return Err(forbidden(NOT_ALLOWLISTED));
    }
    let now = grid.now_ms();
    grid.store
        .set_grid_attestation(&node.id, true, &report.tee_type, &signed, now)?;
    let node = grid.store.grid_node(&node.id)?.unwrap_or(node);
    Ok(Json(AttestationVerdict {
        verified: true,
        status: node_status_word(&node, now).into(),
    })
    .into_response())
}

/// Whether a TDX quote or SEV-SNP report carries, at its provider's offset, the report data
/// that binds this node's keys to this challenge (`grid_proto::envelope::tee_report_data`).
/// The devnet checks this binding; it does not check the vendor's signature over the report
/// (no Intel PCS or AMD KDS offline), so such a report proves the binding only, and the node's
/// status says `verified` in that sense.
fn tee_evidence_binds(
    evidence: &grid_proto::node::TeeEvidence,
    ed25519_b58: &str,
    x25519_b58: &str,
    challenge: &str,
) -> Result<(), String> {
    let ed25519 = seal::key_from_b58(ed25519_b58).map_err(|e| e.to_string())?;
    let x25519 = seal::key_from_b58(x25519_b58).map_err(|e| e.to_string())?;
    let expected = envelope::tee_report_data(&ed25519, &x25519, challenge);
    let offset = envelope::report_data_offset(&evidence.provider).ok_or_else(|| {
        format!(
            "unknown TEE provider `{}` (tdx_guest, sev_guest)",
            evidence.provider.escape_debug()
        )
    })?;
    let report = alloy::hex::decode(evidence.report.trim())
        .map_err(|_| "tee_evidence.report is not hex".to_owned())?;
    let claimed = alloy::hex::decode(evidence.report_data.trim())
        .map_err(|_| "tee_evidence.report_data is not hex".to_owned())?;
    if claimed != expected || report.get(offset..offset + 64) != Some(&expected[..]) {
        return Err(
            "the TEE report's data is not SHA-512(node ed25519 key, X25519 key, challenge): not bound to this node and challenge"
                .to_owned(),
        );
    }
    Ok(())
}

/// `POST /grid/nodes/{id}/status`.
pub(super) async fn set_status(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let node = grid.node_auth(&call.headers, Some(&id))?;
    let request: GridStatus = parse_body(&call.body, "{\"off_grid\": true|false}")?;
    grid.store.set_grid_off_grid(&node.id, request.off_grid)?;
    Ok(Json(json!({ "ok": true, "off_grid": request.off_grid })).into_response())
}

fn price_entry(
    node: &crate::store::GridNode,
    model: &str,
    custom: &[CustomPrice],
) -> serde_json::Value {
    let (effective, own) = pricing::effective(node, model, custom);
    json!({
        "model": model,
        "effective": pricing::pair(effective),
        "custom": own.map(pricing::pair),
        "reference": pricing::pair(pricing::suggested(model)),
        "floor": pricing::pair(pricing::floor(model)),
        "ceiling": pricing::pair(pricing::ceiling(model)),
    })
}

/// `GET /grid/nodes/{id}/prices` (public).
pub(super) async fn prices(State(grid): State<Arc<Grid>>, Path(id): Path<String>) -> ApiResult {
    let node = grid
        .store
        .grid_node(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no node {id}")))?;
    let custom = grid.store.grid_prices()?;
    let prices: Vec<_> = node
        .available_models
        .iter()
        .map(|model| price_entry(&node, model, &custom))
        .collect();
    Ok(Json(json!({ "node_id": node.id, "prices": prices })).into_response())
}

/// `POST /grid/nodes/{id}/prices`: set a price within the band, or reset it.
pub(super) async fn set_price(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let node = grid.node_auth(&call.headers, Some(&id))?;
    let request: SetPrice = parse_body(
        &call.body,
        "{\"model\", \"input_per_m\", \"output_per_m\"} or {\"model\", \"reset\": true}",
    )?;
    if !node.available_models.contains(&request.model) {
        return Err(ApiError::bad_request(format!(
            "model `{}` is not one this node advertises ({})",
            request.model.escape_debug(),
            node.available_models.join(", ")
        )));
    }
    let cooldown = |grid: &Grid| {
        grid.price_change(&node.id, &request.model)
            .map_err(|wait_ms| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "the price of `{}` changed less than 30 s ago: retry in {} s",
                        request.model.escape_debug(),
                        wait_ms.div_ceil(1000)
                    ),
                )
            })
    };
    if request.reset {
        cooldown(&grid)?;
        grid.store.set_grid_price(&node.id, &request.model, None)?;
    } else {
        let (Some(input), Some(output)) = (&request.input_per_m, &request.output_per_m) else {
            return Err(ApiError::bad_request(
                "set both input_per_m and output_per_m (USD per 1M tokens), or send \"reset\": true",
            ));
        };
        let price = Price {
            input: pricing::parse_usd(input, "input_per_m")
                .map_err(ApiError::bad_request)?
                .0,
            output: pricing::parse_usd(output, "output_per_m")
                .map_err(ApiError::bad_request)?
                .0,
        };
        pricing::check_band(&request.model, price).map_err(ApiError::bad_request)?;
        cooldown(&grid)?;
        grid.store
            .set_grid_price(&node.id, &request.model, Some((price.input, price.output)))?;
    }
    let custom = grid.store.grid_prices()?;
    Ok(Json(json!({
        "ok": true,
        "node_id": node.id,
        "price": price_entry(&node, &request.model, &custom),
    }))
    .into_response())
}

/// `GET /grid/nodes/{id}` (the node's own status).
pub(super) async fn node_status(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let node = grid.node_auth(&call.headers, Some(&id))?;
    let status = NodeStatus {
        status: node_status_word(&node, grid.now_ms()).into(),
        attestation_verified: node.attestation_verified,
        reputation_score: None,
        jobs_completed: node.jobs_completed,
        jobs_failed: node.jobs_failed,
    };
    let mut body = serde_json::to_value(status).map_err(ApiError::internal)?;
    body["node_id"] = json!(node.id);
    body["tee_type"] = json!(node.tee_type);
    body["available_models"] = json!(node.available_models);
    body["keybind_verified"] = json!(node.keybind_verified);
    body["off_grid"] = json!(node.off_grid);
    body["tampered"] = json!(node.tampered);
    Ok(Json(body).into_response())
}

/// `GET /grid/allowed-binaries`.
pub(super) async fn allowed_binaries(State(grid): State<Arc<Grid>>) -> ApiResult {
    Ok(Json(AllowedBinaries {
        hashes: grid.store.grid_allowed_binaries()?,
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    wallet_address: String,
}

/// `POST /devnet/grid/codes {"wallet_address"}`: a single-use registration code.
pub(super) async fn issue_code(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let request: CodeRequest = parse_body(&call.body, "{\"wallet_address\": ...}")?;
    let wallet = request.wallet_address.trim();
    check_wallet(wallet)?;
    let code = format!("sglr_{}", grid.random_hex(16));
    grid.store.insert_grid_code(&code, wallet, grid.now_ms())?;
    Ok(Json(json!({ "registration_code": code, "wallet_address": wallet })).into_response())
}

/// `GET /devnet/grid/device?user_code=`: what the device login link opens.
pub(super) async fn device_page(
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let code = query.get("user_code").cloned().unwrap_or_default();
    format!(
        "devnet grid device login for code {code}\n\napprove it for a wallet with\n  POST /devnet/grid/device/approve {{\"user_code\": \"{code}\", \"wallet_address\": \"<wallet>\"}}\n"
    )
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    user_code: String,
    wallet_address: String,
}

/// `POST /devnet/grid/device/approve {"user_code", "wallet_address"}`.
pub(super) async fn device_approve(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let request: ApproveRequest =
        parse_body(&call.body, "{\"user_code\": ..., \"wallet_address\": ...}")?;
    let wallet = request.wallet_address.trim();
    check_wallet(wallet)?;
    let code = format!("sglr_{}", grid.random_hex(16));
    if !grid
        .store
        .approve_device_code(request.user_code.trim(), wallet, &code, grid.now_ms())?
    {
        return Err(ApiError::not_found(
            "unknown, expired or already approved user code",
        ));
    }
    Ok(Json(json!({ "approved": true, "wallet_address": wallet })).into_response())
}

/// `PUT /devnet/grid/allowed-binaries {"hashes": [...]}` (empty: no allowlist).
pub(super) async fn set_allowed_binaries(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let request: AllowedBinaries = parse_body(&call.body, "{\"hashes\": [\"<hex sha256>\", ...]}")?;
    if let Some(bad) = request
        .hashes
        .iter()
        .find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::bad_request(format!(
            "`{}` is not a hex SHA-256 (64 hex digits)",
            bad.escape_debug()
        )));
    }
    let hashes: Vec<String> = request
        .hashes
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    grid.store.set_grid_allowed_binaries(&hashes)?;
    Ok(Json(AllowedBinaries { hashes }).into_response())
}

/// `POST /devnet/grid/nodes/{id}/rotate-token`: a new token, pushed over the node's socket
/// and offered by its heartbeats until it is used.
pub(super) async fn rotate_token(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
) -> ApiResult {
    let token = format!("sgln_{}", grid.random_hex(32));
    if !grid
        .store
        .rotate_grid_token(&id, &token, &key_hash(&token))?
    {
        return Err(ApiError::not_found(format!("no node {id}")));
    }
    let pushed = grid.live.push(
        &id,
        ServerMessage::TokenRotated {
            new_auth_token: token,
            token_expires_at: None,
        },
    );
    Ok(Json(json!({ "rotated": true, "pushed": pushed })).into_response())
}
