//! The devnet-only routes under `/devnet/...`: funding wallets with devnet stablecoins,
//! changing the injected faults at runtime, and `/devnet/paid`, a resource that costs one cent
//! and needs no account (what `x402c fetch` and the paying client's tests pay). The real
//! services have nothing like them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use x402_core::{Network, SolanaAddress, UsdMicros};

use crate::api::{ApiError, ApiResult};
use crate::chains::Chains;
use crate::faults::{FaultConfig, Faults};
use crate::payment::{Cashier, Family, Price};
use crate::store::{Effect, Store};

/// What the admin routes act on.
#[derive(Debug)]
pub struct Admin {
    chains: Chains,
    faults: Arc<Faults>,
    cashier: Arc<Cashier>,
    store: Arc<Store>,
}

/// What `/devnet/paid` costs.
const PAID_PRICE: UsdMicros = UsdMicros(10_000);

impl Admin {
    /// Admin routes over the devnet's chains and fault switches, and the paid resource
    /// charged through `cashier`.
    pub(crate) fn new(
        chains: Chains,
        faults: Arc<Faults>,
        cashier: Arc<Cashier>,
        store: Arc<Store>,
    ) -> Admin {
        Admin {
            chains,
            faults,
            cashier,
            store,
        }
    }

    /// `POST /devnet/fund`, `POST /devnet/faults`, and `GET|POST /devnet/paid` (with the
    /// `payment-identifier` layer and the dropped-answer fault, like every paid route).
    pub fn routes(self: Arc<Self>) -> Router {
        let paid = crate::payment::paid_layers(
            Router::new().route("/devnet/paid", get(paid).post(paid)),
            self.faults.clone(),
            self.store.clone(),
        )
        .with_state(self.clone());
        Router::new()
            .route("/devnet/fund", post(fund))
            .route("/devnet/faults", post(set_faults))
            .with_state(self)
            .merge(paid)
    }
}

/// `GET|POST /devnet/paid[?network=base|megaeth|solana]`: one cent, no account; answers who
/// paid and the transaction.
async fn paid(State(admin): State<Arc<Admin>>, uri: Uri, headers: HeaderMap) -> ApiResult {
    let paying = x402_core::PaymentPayload::from_headers(&headers)
        .map_err(|e| ApiError::bad_request(format!("unreadable payment header: {e}")))?;
    let network = uri.query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("network="))
    });
    let price = Price {
        amount: PAID_PRICE,
        description: "A devnet resource that costs one cent",
        family: Family::from_request(network)?,
        hint: "payment required: pay with X-PAYMENT (v1) or PAYMENT-SIGNATURE (v2)",
    };
    let paid = match admin
        .cashier
        .charge(&uri, price, paying, Effect::None)
        .await
    {
        Ok(paid) => paid,
        Err(response) => return Ok(response),
    };
    let body = json!({
        "paid": true,
        "payer": paid.settlement.payer.to_string(),
        "network": paid.settlement.network,
        "transaction": paid.settlement.transaction,
    });
    Ok(paid.with_receipt(Json(body).into_response()))
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
