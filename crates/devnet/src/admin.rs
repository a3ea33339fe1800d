//! The devnet-only admin routes under `/devnet/...`: funding wallets with devnet stablecoins
//! and changing the injected faults at runtime. The real services have nothing like them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use x402_core::{Network, SolanaAddress, UsdMicros};

use crate::api::{ApiError, ApiResult};
use crate::chains::Chains;
use crate::faults::{FaultConfig, Faults};

/// What the admin routes act on.
#[derive(Debug)]
pub struct Admin {
    chains: Chains,
    faults: Arc<Faults>,
}

impl Admin {
    /// Admin routes over the devnet's chains and fault switches.
    pub fn new(chains: Chains, faults: Arc<Faults>) -> Admin {
        Admin { chains, faults }
    }

    /// `POST /devnet/fund` and `POST /devnet/faults`.
    pub fn routes(self: Arc<Self>) -> Router {
        Router::new()
            .route("/devnet/fund", post(fund))
            .route("/devnet/faults", post(set_faults))
            .with_state(self)
    }
}

/// `POST /devnet/faults` with a [`FaultConfig`]: replaces the injected faults.
async fn set_faults(State(admin): State<Arc<Admin>>, Json(config): Json<FaultConfig>) -> Response {
    admin.faults.set(config);
    Json(json!({ "success": true })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundRequest {
    address: String,
    usdc: String,
}

/// `POST /devnet/fund {"address", "usdc"}`: mints devnet stablecoins (and gas) to an EVM
/// address on every EVM chain, or to a Solana wallet on the ledger.
async fn fund(State(admin): State<Arc<Admin>>, Json(request): Json<FundRequest>) -> ApiResult {
    let dollars: UsdMicros = request
        .usdc
        .parse()
        .map_err(|_| ApiError::bad_request(format!("`{}` is not a dollar amount", request.usdc)))?;
    let chain_failed =
        |error: crate::error::Error| ApiError::new(StatusCode::BAD_GATEWAY, error.to_string());
    if let Ok(owner) = request.address.parse::<SolanaAddress>() {
        let solana = admin
            .chains
            .solana
            .as_ref()
            .ok_or_else(|| ApiError::bad_request("the Solana ledger is not running"))?;
        solana.fund(&owner, dollars.0).map_err(chain_failed)?;
        return Ok(Json(json!({
            "success": true,
            "address": owner.to_string(),
            "usdc": request.usdc,
            "network": Network::SOLANA_DEVNET.to_string(),
        }))
        .into_response());
    }
    let address: alloy::primitives::Address = request.address.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "`{}` is neither an EVM nor a Solana address",
            request.address
        ))
    })?;
    let funded = admin
        .chains
        .fund_evm(address, dollars.0)
        .await
        .map_err(chain_failed)?;
    let transactions: serde_json::Map<String, serde_json::Value> = funded
        .into_iter()
        .map(|(network, hash)| (network.to_string(), json!(format!("{hash:#x}"))))
        .collect();
    Ok(Json(json!({
        "success": true,
        "address": address.to_checksum(None),
        "usdc": request.usdc,
        "transactions": transactions,
    }))
    .into_response())
}
