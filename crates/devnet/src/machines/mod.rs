//! The machines API (`/compute/...`): catalog, credits, API keys and x402-paid top-ups.
//!
//! Paid endpoints answer 402 with both forms of the challenge (a v1 JSON body and a v2
//! `PAYMENT-REQUIRED` header), accept `X-PAYMENT` or `PAYMENT-SIGNATURE`, settle through the
//! in-process [`Facilitator`] and only then act, returning the receipt header of the payment's
//! version. Errors are `{"error": "..."}` with the right 4xx; a rejected request changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use x402_core::challenge::{PaymentRequired, RequirementSpec, ResourceInfo, Scheme};
use x402_core::receipt::{PAYMENT_RESPONSE, X_PAYMENT_RESPONSE};
use x402_core::{
    AssetId, Challenge, Clock, PayTo, PaymentPayload, Receipt, TokenAmount, UsdMicros, X402Version,
};

use crate::catalog;
use crate::evm::EvmChain;
use crate::facilitator::{Facilitator, Settlement};
use crate::store::Store;

/// Auth timestamps are accepted this far from the server clock, either way.
pub const AUTH_WINDOW_MS: u64 = 300_000;

/// Everything the handlers share.
pub struct AppState {
    /// Durable state.
    pub store: Arc<Store>,
    /// The facilitator.
    pub facilitator: Arc<Facilitator>,
    /// Base Sepolia chain (`exact`).
    pub base: Arc<EvmChain>,
    /// MegaETH chain (`permit`), when running.
    pub megaeth: Option<Arc<EvmChain>>,
    /// The Solana ledger, when running.
    pub solana: Option<Arc<crate::solana::SolanaChain>>,
    /// Recipient of Solana payments (owner of the receiving token account).
    pub pay_to_solana: x402_core::SolanaAddress,
    /// Recipient of payments on EVM chains.
    pub pay_to_evm: alloy::primitives::Address,
    /// Public base URL, for challenge `resource` URLs.
    pub public_url: String,
    /// Time source.
    pub clock: Arc<dyn Clock + Send + Sync>,
    /// Fault injection for tests.
    pub faults: Faults,
}

/// A random draw that is true `permille` times in a thousand.
fn draw(permille: u32) -> bool {
    if permille == 0 {
        return false;
    }
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes).is_ok() && u32::from(u16::from_le_bytes(bytes)) % 1000 < permille
}

/// Fault injection: how often the simulated provider rejects a paid instance, and how long
/// instances take to boot. Adjustable at runtime through `POST /devnet/faults`.
#[derive(Debug, Default)]
pub struct Faults {
    provider_reject_permille: std::sync::atomic::AtomicU32,
    boot_delay_ms: std::sync::atomic::AtomicU64,
    solana_5xx_permille: std::sync::atomic::AtomicU32,
}

impl Faults {
    /// Faults from a configuration.
    pub fn new(config: crate::FaultConfig) -> Faults {
        let faults = Faults::default();
        faults.set(config);
        faults
    }

    /// Replaces the settings.
    pub fn set(&self, config: crate::FaultConfig) {
        use std::sync::atomic::Ordering::Relaxed;
        self.provider_reject_permille.store(
            u32::from(config.provider_reject_permille.min(1000)),
            Relaxed,
        );
        self.boot_delay_ms.store(config.boot_delay_ms, Relaxed);
        self.solana_5xx_permille.store(
            u32::from(config.solana_transient_5xx_permille.min(1000)),
            Relaxed,
        );
    }

    /// Draws whether the provider rejects this instance.
    pub fn provider_rejects(&self) -> bool {
        draw(
            self.provider_reject_permille
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Draws whether this Solana payment gets an injected transient 503.
    pub fn solana_transient_failure(&self) -> bool {
        draw(
            self.solana_5xx_permille
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// How long a new instance stays `pending`.
    pub fn boot_delay_ms(&self) -> u64 {
        self.boot_delay_ms
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// An error response: status plus `{"error": message}` (and extra fields).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    pub(crate) fn with_body(status: StatusCode, body: Value) -> ApiError {
        ApiError { status, body }
    }
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({ "error": message.into() }),
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
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

impl From<crate::Error> for ApiError {
    fn from(error: crate::Error) -> ApiError {
        ApiError::internal(error)
    }
}

pub(crate) type ApiResult<T = Response> = std::result::Result<T, ApiError>;

/// The machines API routes.
pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/compute/plans", get(plans))
        .route(
            "/compute/regions",
            get(|| async { Json(catalog::regions_json()) }),
        )
        .route("/compute/os", get(|| async { Json(catalog::os_json()) }))
        .route("/compute/credits/balance", get(credits_balance))
        .route("/compute/credits/topup", post(credits_topup))
        .route("/compute/api-keys", post(create_api_key).get(list_api_keys))
        .route("/compute/api-keys/{id}", delete(revoke_api_key))
        .with_state(state)
}

#[derive(Deserialize)]
struct PlansQuery {
    #[serde(rename = "type")]
    class: Option<String>,
}

async fn plans(Query(query): Query<PlansQuery>) -> ApiResult {
    match query.class.as_deref() {
        None | Some("vps" | "vhp" | "vdc" | "vcg") => {
            Ok(Json(catalog::plans_json(query.class.as_deref())).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown plan type `{other}`: use vps, vhp, vdc or vcg"
        ))),
    }
}

/// Who is calling: `X-API-Key`, else the six `X-Auth-*` headers (single-use nonce).
pub(crate) fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    body: &[u8],
) -> ApiResult<String> {
    if let Some(key) = headers.get("x-api-key") {
        let key = key
            .to_str()
            .map_err(|_| ApiError::unauthorized("X-API-Key is not ASCII"))?;
        return state
            .store
            .wallet_for_key(&key_hash(key))?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API key"));
    }
    if !headers.contains_key(x402_core::auth::HEADER_SIGNATURE) {
        return Err(ApiError::unauthorized(
            "authentication required: send X-API-Key or the X-Auth-* wallet signature headers",
        ));
    }
    let now_ms = state.clock.now_unix_ms();
    let identity = x402_core::auth::verify(
        headers,
        method.as_str(),
        uri.path(),
        body,
        now_ms,
        AUTH_WINDOW_MS,
    )
    .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    if !state
        .store
        .use_auth_nonce(&identity.nonce, now_ms, 2 * AUTH_WINDOW_MS)?
    {
        return Err(ApiError::unauthorized(
            "auth nonce already used: sign every request with a fresh nonce",
        ));
    }
    Ok(identity.address)
}

fn key_hash(key: &str) -> String {
    alloy::hex::encode(Sha256::digest(key.as_bytes()))
}

async fn credits_balance(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let wallet = authenticate(&state, &headers, &method, &uri, &body)?;
    let credits = state.store.credits(&wallet)?;
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

/// `"150.00"`-style dollar strings (at least two decimals, more when needed).
pub(crate) fn dollars(amount: UsdMicros) -> String {
    amount.to_string().trim_start_matches('$').to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopupRequest {
    amount: Value,
    #[serde(default)]
    network: Option<String>,
}

async fn credits_topup(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let paying = PaymentPayload::from_headers(&headers)
        .map_err(|e| ApiError::bad_request(format!("unreadable payment header: {e}")))?;
    // The paid retry may come without auth (its nonce was spent on the first call): the
    // payment itself then identifies the wallet to credit.
    let wallet = match (
        authenticate(&state, &headers, &method, &uri, &body),
        &paying,
    ) {
        (Ok(wallet), _) => Some(wallet),
        (Err(error), None) => return Err(error),
        (Err(_), Some(_)) if has_auth(&headers) => {
            return Err(ApiError::unauthorized(
                "bad auth on the paid retry; send the payment without auth headers or with fresh ones",
            ));
        }
        (Err(_), Some(_)) => None,
    };
    let request: TopupRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be {{\"amount\": <USD>, \"network\": ...}}: {e}"
        ))
    })?;
    let amount = parse_usd(&request.amount)?;
    if amount < UsdMicros::from_dollars(1) {
        return Err(ApiError::bad_request("the minimum top-up is $1"));
    }
    let networks = network_filter(request.network.as_deref())?;
    let hint = "payment required: pay with X-PAYMENT (v1) or PAYMENT-SIGNATURE (v2)";
    let (payment, settlement) = match charge(
        &state,
        &uri,
        amount,
        "Top up prepaid compute credits",
        networks,
        paying,
        hint,
    )
    .await
    {
        Ok(paid) => paid,
        Err(response) => return Ok(response),
    };
    let wallet = wallet.unwrap_or_else(|| settlement.payer.to_lowercase());
    let credits = state.store.deposit(&wallet, amount.0)?;
    let body = json!({
        "success": true,
        "deposited": catalog::usd_number(amount),
        "new_balance": dollars(UsdMicros(credits.balance_micros())),
        "tx_hash": settlement.transaction,
        "wallet": wallet,
    });
    Ok(with_receipt(
        Json(body).into_response(),
        &payment,
        &settlement,
    ))
}

pub(crate) fn has_auth(headers: &HeaderMap) -> bool {
    headers.contains_key("x-api-key") || headers.contains_key(x402_core::auth::HEADER_SIGNATURE)
}

/// A USD amount from a JSON number or string, exact to the micro-dollar.
fn parse_usd(value: &Value) -> ApiResult<UsdMicros> {
    let text = match value {
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "`amount` must be a number of US dollars",
            ));
        }
    };
    text.parse()
        .map_err(|e: x402_core::Error| ApiError::bad_request(format!("`amount`: {e}")))
}

/// Which chain family a request's `network` field asks for (`None`: offer every chain).
pub(crate) fn network_filter(network: Option<&str>) -> ApiResult<Option<&'static str>> {
    match network {
        None => Ok(None),
        Some("base" | "base-sepolia") => Ok(Some("evm-exact")),
        Some("megaeth") => Ok(Some("evm-permit")),
        Some("solana" | "solana-devnet") => Ok(Some("solana")),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown network `{other}`: use base, megaeth or solana"
        ))),
    }
}

/// Charges `price` with x402: without a payment, the 402 to send; with one, the settled
/// payment, or the 402 (or 502) saying why it was refused.
pub(crate) async fn charge(
    state: &AppState,
    uri: &Uri,
    price: UsdMicros,
    description: &str,
    only: Option<&str>,
    payment: Option<PaymentPayload>,
    hint: &str,
) -> std::result::Result<(PaymentPayload, Settlement), Response> {
    let required = offers(state, uri, price, description, only);
    let Some(payment) = payment else {
        return Err(payment_required(&required, hint));
    };
    let settlement = settle(state, &required, &payment).await?;
    Ok((payment, settlement))
}

/// The offers for `price` on every running chain (or the one family asked for).
pub(crate) fn offers(
    state: &AppState,
    uri: &Uri,
    price: UsdMicros,
    description: &str,
    only: Option<&str>,
) -> PaymentRequired {
    let mut accepts = Vec::new();
    let amount_for = |decimals: u8| {
        let scale = 10u64
            .checked_pow(u32::from(decimals.saturating_sub(6)))
            .unwrap_or(1);
        TokenAmount::from_u64(price.0)
            .checked_mul(scale)
            .unwrap_or(TokenAmount::ZERO)
    };
    let evm_offer = |chain: &EvmChain, scheme: Scheme| {
        let token = chain.token();
        let mut extra = serde_json::Map::new();
        extra.insert("name".into(), json!(token.name));
        extra.insert("version".into(), json!(token.version));
        if scheme == Scheme::Permit {
            extra.insert(
                x402_core::evm::permit::FACILITATOR_KEY.into(),
                json!(chain.facilitator().to_checksum(None)),
            );
        }
        RequirementSpec {
            scheme,
            network: x402_core::Network::evm(chain.chain_id()),
            amount: amount_for(token.decimals),
            asset: AssetId::Evm(token.address),
            pay_to: PayTo::Evm(state.pay_to_evm),
            max_timeout_seconds: 300,
            extra,
        }
    };
    if only.is_none_or(|o| o == "evm-exact") {
        accepts.push(evm_offer(&state.base, Scheme::Exact));
    }
    if let Some(megaeth) = &state.megaeth
        && only.is_none_or(|o| o == "evm-permit")
    {
        accepts.push(evm_offer(megaeth, Scheme::Permit));
    }
    if let Some(solana) = &state.solana
        && only.is_none_or(|o| o == "solana")
    {
        let mut extra = serde_json::Map::new();
        extra.insert(
            "feePayer".into(),
            json!(x402_core::SolanaSigner::pubkey(solana.fee_payer()).to_string()),
        );
        accepts.push(RequirementSpec {
            scheme: Scheme::Exact,
            network: x402_core::Network::SOLANA_DEVNET,
            amount: amount_for(crate::solana::USDC_DECIMALS),
            asset: AssetId::Solana(solana.mint()),
            pay_to: PayTo::Solana(state.pay_to_solana),
            max_timeout_seconds: 300,
            extra,
        });
    }
    PaymentRequired {
        resource: ResourceInfo {
            url: format!("{}{}", state.public_url, uri.path()),
            description: Some(description.to_owned()),
            mime_type: Some("application/json".into()),
        },
        error: String::new(),
        accepts,
    }
}

/// A 402 with both challenge forms.
pub(crate) fn payment_required(required: &PaymentRequired, error: &str) -> Response {
    let mut required = required.clone();
    required.error = error.to_owned();
    let mut response = (StatusCode::PAYMENT_REQUIRED, required.to_v1_body()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&required.to_v2_header()) {
        headers.insert(x402_core::challenge::PAYMENT_REQUIRED, value);
    }
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"),
    );
    response
}

/// Finds the offer `payment` answers and settles it; a failed payment becomes the 402 to send.
pub(crate) async fn settle(
    state: &AppState,
    required: &PaymentRequired,
    payment: &PaymentPayload,
) -> std::result::Result<Settlement, Response> {
    let challenge = match payment.version() {
        X402Version::V1 => Challenge::from_body(&required.to_v1_body()),
        X402Version::V2 => Challenge::from_v2_header(&required.to_v2_header()),
    }
    .map_err(|e| ApiError::internal(e).into_response())?;
    let requirement = challenge
        .offers()
        .iter()
        .filter_map(|o| o.requirement().ok())
        .find(|r| r.network() == payment.network() && r.scheme() == payment.scheme())
        .ok_or_else(|| {
            payment_required(
                required,
                &format!(
                    "no offer for `{}` on {}",
                    payment.scheme(),
                    payment.network()
                ),
            )
        })?;
    if payment.network().is_solana() && state.faults.solana_transient_failure() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient Solana facilitator error (injected); retry with a fresh blockhash",
        )
        .into_response());
    }
    match state.facilitator.settle(payment, requirement).await {
        Ok(settlement) => Ok(settlement),
        Err(error) => match error.invalid_reason() {
            Some(reason) => {
                tracing::info!(%reason, %error, "payment refused");
                Err(payment_required(
                    required,
                    &format!("payment refused ({reason}): {error}"),
                ))
            }
            None => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("settlement failed: {error}"),
            )
            .into_response()),
        },
    }
}

pub(crate) fn with_receipt(
    mut response: Response,
    payment: &PaymentPayload,
    settlement: &Settlement,
) -> Response {
    let receipt = Receipt {
        success: true,
        transaction: settlement.transaction.clone(),
        network: settlement.network.clone(),
        payer: Some(settlement.payer.clone()),
        error_reason: None,
        amount: Some(settlement.amount),
    };
    let name = match payment.version() {
        X402Version::V1 => X_PAYMENT_RESPONSE,
        X402Version::V2 => PAYMENT_RESPONSE,
    };
    if let Ok(value) = HeaderValue::from_str(&receipt.to_header_value()) {
        response.headers_mut().insert(name, value);
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    #[serde(default)]
    label: Option<String>,
}

async fn create_api_key(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    if headers.contains_key("x-api-key") {
        return Err(ApiError::unauthorized(
            "creating an API key needs the wallet signature headers",
        ));
    }
    let wallet = authenticate(&state, &headers, &method, &uri, &body)?;
    let request: CreateKey = if body.is_empty() {
        CreateKey { label: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("body must be {{\"label\": \"...\"}}: {e}"))
        })?
    };
    let mut secret = [0u8; 24];
    getrandom::fill(&mut secret).map_err(ApiError::internal)?;
    let key = format!("x402c_{}", alloy::hex::encode(secret));
    let id = random_id()?;
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

async fn list_api_keys(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let wallet = authenticate(&state, &headers, &method, &uri, &body)?;
    let keys: Vec<Value> = state
        .store
        .api_keys(&wallet)?
        .into_iter()
        .map(|k| json!({ "id": k.id, "label": k.label, "key_last4": k.key_last4, "created_at": k.created_at, "revoked_at": k.revoked_at }))
        .collect();
    Ok(Json(json!({ "api_keys": keys })).into_response())
}

async fn revoke_api_key(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    if headers.contains_key("x-api-key") {
        return Err(ApiError::unauthorized(
            "revoking an API key needs the wallet signature headers",
        ));
    }
    let wallet = authenticate(&state, &headers, &method, &uri, &body)?;
    if !state
        .store
        .revoke_api_key(&wallet, &id, &now_rfc3339(&*state.clock))?
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no API key {id}"),
        ));
    }
    Ok(Json(json!({ "success": true, "id": id })).into_response())
}

/// A random UUID-shaped id.
pub(crate) fn random_id() -> ApiResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = alloy::hex::encode(bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

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
