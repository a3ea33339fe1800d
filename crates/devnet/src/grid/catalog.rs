//! What the grid offers (§1.2): models, prices, capacity, providers, and reservations for
//! sealed chats.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::pricing::{self, Price};
use super::routing::{self, Candidate, NoRoute, Want};
use super::{Grid, oai};
use crate::api::{ApiResult, now_rfc3339};
use crate::auth::{Call, key_hash};
use crate::store::{CustomPrice, GridNode, Reservation};

/// Each served model's live nodes.
type LiveModels = BTreeMap<String, Vec<GridNode>>;

/// Reservations last this long.
const RESERVATION_MS: u64 = 60_000;

impl Grid {
    /// Every node and every custom price.
    fn nodes_and_prices(&self) -> ApiResult<(Vec<GridNode>, Vec<CustomPrice>)> {
        Ok((self.store.grid_nodes()?, self.store.grid_prices()?))
    }

    /// The nodes that can run `want`, or the OpenAI-shaped error saying why none can.
    pub(super) fn route(&self, want: &Want<'_>) -> ApiResult<Vec<Candidate>> {
        let (nodes, custom) = self.nodes_and_prices()?;
        routing::candidates(&nodes, &custom, want, self.now_ms()).map_err(|no| match no {
            NoRoute::ModelNotFound => oai(
                StatusCode::NOT_FOUND,
                "model_not_found",
                match want.pin {
                    Some(pin) => format!(
                        "node {pin} is not live or does not serve `{}`{}",
                        want.model,
                        if want.embeddings { " embeddings" } else { "" }
                    ),
                    None => format!(
                        "no live node serves `{}`{}: see GET /grid/models",
                        want.model,
                        if want.embeddings { " embeddings" } else { "" }
                    ),
                },
            ),
            NoRoute::PriceCapUnmet => oai(
                StatusCode::SERVICE_UNAVAILABLE,
                "price_cap_unmet",
                format!(
                    "no node serves `{}` within max_price (USD per 1M tokens, blended): see GET /v1/providers?model={}",
                    want.model, want.model
                ),
            ),
            NoRoute::NoCapacity => oai(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_capacity",
                format!(
                    "every node serving `{}` is busy; retry shortly",
                    want.model
                ),
            ),
        })
    }

    /// Models served by live nodes: for each, its live nodes.
    fn live_models(&self) -> ApiResult<(LiveModels, Vec<CustomPrice>)> {
        let (nodes, custom) = self.nodes_and_prices()?;
        let now = self.now_ms();
        let mut models = LiveModels::new();
        for node in nodes.into_iter().filter(|n| routing::is_live(n, now)) {
            for model in &node.available_models {
                models.entry(model.clone()).or_default().push(node.clone());
            }
        }
        Ok((models, custom))
    }
}

/// The cheapest effective price among `nodes` for `model`.
fn cheapest(nodes: &[GridNode], model: &str, custom: &[CustomPrice]) -> Price {
    nodes
        .iter()
        .map(|n| pricing::effective(n, model, custom).0)
        .min_by_key(|p| p.doubled_blend())
        .unwrap_or_else(|| pricing::suggested(model))
}

/// `GET /v1/models` (API key): OpenAI's model list, of models live nodes serve.
pub(super) async fn openai_models(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    grid.require_key(&call.headers)?;
    let (models, _) = grid.live_models()?;
    let created = grid.clock.now_unix();
    let data: Vec<Value> = models
        .keys()
        .map(
            |id| json!({ "id": id, "object": "model", "created": created, "owned_by": "sgl-grid" }),
        )
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })).into_response())
}

/// `GET /grid/models`.
pub(super) async fn models(State(grid): State<Arc<Grid>>) -> ApiResult {
    let (models, custom) = grid.live_models()?;
    let list: Vec<Value> = models
        .iter()
        .map(|(id, nodes)| {
            let mut tee: Vec<&str> = nodes.iter().map(|n| n.tee_type.as_str()).collect();
            tee.sort_unstable();
            tee.dedup();
            let price = cheapest(nodes, id, &custom);
            json!({
                "id": id,
                "object": "model",
                "owned_by": "sgl-grid",
                "sgl_node_count": nodes.len(),
                "sgl_tee_types": tee,
                "sgl_pricing": {
                    "price_per_1k_input_tokens_usd": pricing::per_1k(price.input),
                    "price_per_1k_output_tokens_usd": pricing::per_1k(price.output),
                },
            })
        })
        .collect();
    Ok(Json(json!({ "models": list })).into_response())
}

/// `GET /grid/pricing`: the cheapest live price per model.
pub(super) async fn pricing(State(grid): State<Arc<Grid>>) -> ApiResult {
    let (models, custom) = grid.live_models()?;
    let list: Vec<Value> = models
        .iter()
        .map(|(id, nodes)| {
            let price = cheapest(nodes, id, &custom);
            json!({
                "model": id,
                "price_per_1k_input_tokens_usd": pricing::per_1k(price.input),
                "price_per_1k_output_tokens_usd": pricing::per_1k(price.output),
            })
        })
        .collect();
    Ok(Json(json!({ "pricing": list })).into_response())
}

#[derive(Default)]
struct Counts {
    total: u64,
    active: u64,
    available: u64,
}

impl Counts {
    fn json(&self) -> Value {
        json!({ "total_nodes": self.total, "active_nodes": self.active, "available_nodes": self.available })
    }
}

/// `GET /grid/capacity`: node counts, served models, TEE types and failures.
pub(super) async fn capacity(State(grid): State<Arc<Grid>>) -> ApiResult {
    let nodes = grid.store.grid_nodes()?;
    let now = grid.now_ms();
    let mut all = Counts::default();
    let mut at_capacity = 0u64;
    let mut tampered = 0u64;
    let mut off_grid = 0u64;
    let mut by_tee: BTreeMap<String, Counts> = BTreeMap::new();
    let mut by_model: BTreeMap<String, Counts> = BTreeMap::new();
    for node in &nodes {
        let live = routing::is_live(node, now);
        let free = live && routing::has_capacity(node);
        tampered += u64::from(node.tampered);
        off_grid += u64::from(node.off_grid);
        at_capacity += u64::from(live && !free);
        for counts in [&mut all, by_tee.entry(node.tee_type.clone()).or_default()] {
            counts.total += 1;
            counts.active += u64::from(live);
            counts.available += u64::from(free);
        }
        if live {
            for model in &node.available_models {
                let counts = by_model.entry(model.clone()).or_default();
                counts.total += 1;
                counts.active += 1;
                counts.available += u64::from(free);
            }
        }
    }
    let failures: serde_json::Map<String, Value> = grid
        .store
        .grid_failures()?
        .into_iter()
        .map(|(kind, count)| (kind.to_owned(), json!(count)))
        .collect();
    Ok(Json(json!({
        "total_nodes": all.total,
        "active_nodes": all.active,
        "available_nodes": all.available,
        "at_capacity": at_capacity,
        "tampered_nodes": tampered,
        "off_grid_nodes": off_grid,
        "models": by_model.iter().map(|(model, c)| {
            let mut entry = c.json();
            entry["model"] = json!(model);
            entry
        }).collect::<Vec<_>>(),
        "by_tee_type": by_tee.iter().map(|(tee, c)| {
            let mut entry = c.json();
            entry["tee_type"] = json!(tee);
            entry
        }).collect::<Vec<_>>(),
        "failures": failures,
        "updated_at": now_rfc3339(&*grid.clock),
    }))
    .into_response())
}

/// `GET /v1/providers?model=&cluster=`: the nodes serving a model, cheapest first.
pub(super) async fn providers(
    State(grid): State<Arc<Grid>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> ApiResult {
    let model = query.get("model").cloned().unwrap_or_default();
    if model.is_empty() {
        return Err(oai(
            StatusCode::BAD_REQUEST,
            "missing_model",
            "model is required: GET /v1/providers?model=<id>",
        ));
    }
    let (nodes, custom) = grid.nodes_and_prices()?;
    let now = grid.now_ms();
    let mut serving: Vec<(GridNode, Price, bool)> = nodes
        .into_iter()
        .filter(|n| !n.tampered && n.available_models.contains(&model))
        .map(|n| {
            let (price, own) = pricing::effective(&n, &model, &custom);
            (n, price, own.is_some())
        })
        .collect();
    serving.sort_by(|a, b| {
        a.1.doubled_blend()
            .cmp(&b.1.doubled_blend())
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    let list: Vec<Value> = serving
        .iter()
        .map(|(node, price, custom)| {
            json!({
                "node_id": node.id,
                "input_per_m": pricing::per_m(price.input),
                "output_per_m": pricing::per_m(price.output),
                "blended_per_1k": pricing::blended_per_1k(*price),
                "is_custom": custom,
                "reputation": null,
                "load": node.current_load,
                "max_concurrent_jobs": node.max_concurrent_jobs,
                "active_jobs": node.active_jobs,
                "tee_type": node.tee_type,
                "attestation_verified": node.attestation_verified,
                "online": routing::is_live(node, now),
            })
        })
        .collect();
    Ok(Json(json!({
        "model": model,
        "cluster": query.get("cluster"),
        "count": list.len(),
        "providers": list,
    }))
    .into_response())
}

/// A `max_price` (USD per 1M tokens, blended) in micro-dollars.
pub(super) fn max_price(raw: Option<&RawValue>) -> ApiResult<Option<u64>> {
    raw.filter(|r| r.get().trim() != "null")
        .map(|raw| {
            pricing::parse_usd(raw, "max_price")
                .map(|usd| usd.0)
                .map_err(|e| oai(StatusCode::BAD_REQUEST, "invalid_max_price", e))
        })
        .transpose()
}

#[derive(Deserialize)]
struct ReserveRequest {
    model: String,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    max_price: Option<Box<RawValue>>,
}

/// `POST /v1/reserve`: a node for a sealed chat, with its keys.
pub(super) async fn reserve(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let wallet = grid.key_wallet(&call.headers)?;
    let request: ReserveRequest = serde_json::from_slice(&call.body).map_err(|e| {
        oai(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("body must be {{model, node?, max_price?}}: {e}"),
        )
    })?;
    let candidates = grid.route(&Want {
        model: &request.model,
        pin: request.node.as_deref(),
        max_blended: max_price(request.max_price.as_deref())?,
        embeddings: false,
        sealing: true,
    })?;
    let Some(chosen) = candidates.first() else {
        return Err(crate::api::ApiError::internal(
            "routing found an empty list",
        ));
    };
    let node = &chosen.node;
    let token = format!("sglres_{}", grid.random_hex(32));
    grid.store.insert_grid_reservation(
        &key_hash(&token),
        &Reservation {
            node_id: node.id.clone(),
            model: request.model.clone(),
            wallet,
            input_micros: chosen.price.input,
            output_micros: chosen.price.output,
        },
        grid.now_ms().saturating_add(RESERVATION_MS),
    )?;
    let mut x25519 = node.encryption_public_key.clone().unwrap_or_default();
    let mut signature = node.keybind_signature.clone();
    if grid.faults.grid_swap_reserved_key() {
        let mut seed = [0u8; 32];
        grid.random.fill(&mut seed);
        x25519 = grid_proto::seal::node_x25519_public(&seed);
    }
    if grid.faults.grid_swap_reserved_signature() {
        let mut seed = [0u8; 32];
        grid.random.fill(&mut seed);
        signature = Some(grid_proto::envelope::sign(
            &seed,
            b"not this node's key binding",
        ));
    }
    Ok(Json(json!({
        "reservation_token": token,
        "node_id": node.id,
        "node_x25519_pubkey": x25519,
        "node_ed25519_pubkey": node.public_key,
        "tee_type": node.tee_type,
        "attestation_verified": node.attestation_verified,
        "expires_in_ms": RESERVATION_MS,
        "encryption_public_key_signature": signature,
        "key_version": node.key_version,
        "payment": if wallet.is_some() { "credits" } else { "x402" },
    }))
    .into_response())
}
