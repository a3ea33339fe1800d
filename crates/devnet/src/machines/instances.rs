//! Instances on a simulated provider: provision, list, details, destroy, one-time password,
//! extend and resize (`/compute/provision`, `/compute/instances/...`).
//!
//! An instance is `pending` until its boot delay passes, then `active` with an address from
//! the documentation range 203.0.113.0/24, `expired` once `expires_at` passes, and
//! `destroyed` after DELETE. Status is derived from the stored times, so it is right after a
//! restart too. A provider rejection after payment refunds the price to the payer's credits.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use x402_core::{PayTo, PaymentPayload, UsdMicros};

use super::Machines;
use super::catalog::{self, Plan};
use crate::api::{ApiError, ApiResult, dollars, parse_body, random_id, rfc3339};
use crate::auth::Call;
use crate::payment::{Family, Price};
use crate::store::InstanceRecord;
use crate::store::{Applied, Effect};

const HOUR_MS: u64 = 3_600_000;

/// Latest time an instance may run to: what the state database can hold, in unix ms.
const LATEST_MS: u64 = i64::MAX as u64;

/// `hours` from `start` in unix ms, or a 400 naming `field` when that does not fit.
fn hours_after(start: u64, hours: u64, field: &str) -> ApiResult<u64> {
    hours
        .checked_mul(HOUR_MS)
        .and_then(|ms| start.checked_add(ms))
        .filter(|end| *end <= LATEST_MS)
        .ok_or_else(|| {
            bad(format!(
                "{field} {hours} is too large: the instance would run past the year 292 million; ask for fewer hours"
            ))
        })
}
/// What a 402 on these endpoints says.
const CHALLENGE_HINT: &str =
    "payment required: pay with X-PAYMENT (v1) or PAYMENT-SIGNATURE (v2), or use_credits with auth";

/// Fewest hours a provision may prepay.
pub const MIN_PREPAID_HOURS: u64 = 24;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AiMachine {
    model_id: String,
    mode: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployNode {
    #[allow(dead_code)]
    model_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionRequest {
    plan: String,
    region: String,
    #[serde(default = "default_os")]
    os_id: u32,
    #[serde(default = "default_label")]
    label: String,
    prepaid_hours: u64,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    ssh_public_key: Option<String>,
    #[serde(default)]
    ssh_key_id: Option<Value>,
    #[serde(default)]
    ssh_key_ids: Option<Vec<Value>>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    use_credits: bool,
    #[serde(default)]
    ai_machine: Option<AiMachine>,
    #[serde(default)]
    deploy_node: Option<DeployNode>,
}

fn default_os() -> u32 {
    2284
}

fn default_label() -> String {
    "x402-instance".to_owned()
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("no instance {id}"))
}

impl ProvisionRequest {
    /// Checks everything that does not need money; returns the plan and the price.
    fn validate(&self) -> ApiResult<(&'static Plan, UsdMicros)> {
        let plan = catalog::plan(&self.plan).ok_or_else(|| {
            bad(format!(
                "unknown plan `{}`: see GET /compute/plans",
                self.plan
            ))
        })?;
        if !plan.locations.contains(&self.region.as_str()) {
            return Err(bad(format!(
                "plan {} is not offered in region `{}`; it is in {}",
                plan.id,
                self.region,
                plan.locations.join(", ")
            )));
        }
        if catalog::os_image(self.os_id).is_none() {
            return Err(bad(format!(
                "unknown os_id {}: see GET /compute/os",
                self.os_id
            )));
        }
        if self.prepaid_hours < MIN_PREPAID_HOURS {
            return Err(bad(format!(
                "prepaid_hours must be at least {MIN_PREPAID_HOURS}"
            )));
        }
        if plan.provider() == "digitalocean" && !self.has_ssh_key() {
            return Err(bad(
                "DigitalOcean (do:) plans need ssh_public_key or ssh_key_id(s); there is no password fallback",
            ));
        }
        if let Some(provider) = &self.provider
            && provider != plan.provider()
        {
            return Err(bad(format!(
                "plan {} is a {} plan, not {provider}",
                plan.id,
                plan.provider()
            )));
        }
        if self.ai_machine.is_some() && self.deploy_node.is_some() {
            return Err(bad("ai_machine and deploy_node are mutually exclusive"));
        }
        if let Some(ai) = &self.ai_machine {
            if ai.mode != "private" {
                return Err(bad("ai_machine.mode must be \"private\""));
            }
            if self.use_credits {
                return Err(bad("AI machines are paid with x402, not credits"));
            }
        }
        if self.deploy_node.is_some() {
            return Err(bad(
                "deploy_node needs 50,000 SGL staked to the paying wallet; the devnet has no SGL staking",
            ));
        }
        if let Some(hostname) = &self.hostname
            && !is_hostname(hostname)
        {
            return Err(bad(format!(
                "hostname `{hostname}` is not a valid host name (letters, digits and hyphens, 1-63 per label, at most 253 in all)"
            )));
        }
        if self.label.len() > 256 {
            return Err(bad("label is longer than 256 bytes"));
        }
        // Every number the purchase derives from the request is computed here, checked,
        // before any money moves.
        hours_after(0, self.prepaid_hours, "prepaid_hours")?;
        let price = plan.price(self.prepaid_hours).ok_or_else(|| {
            bad(format!(
                "prepaid_hours {} is too large: its price overflows",
                self.prepaid_hours
            ))
        })?;
        Ok((plan, price))
    }

    fn has_ssh_key(&self) -> bool {
        self.ssh_public_key
            .as_deref()
            .is_some_and(|k| !k.trim().is_empty())
            || self.ssh_key_id.is_some()
            || self.ssh_key_ids.as_ref().is_some_and(|k| !k.is_empty())
    }
}

/// Whether `name` is an RFC 1123 host name.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

pub(super) async fn provision(State(state): State<Arc<Machines>>, call: Call) -> ApiResult {
    let payment = PaymentPayload::from_headers(&call.headers)
        .map_err(|e| bad(format!("unreadable payment header: {e}")))?;
    let request: ProvisionRequest = parse_body(&call.body, "{plan, region, prepaid_hours, ...}")?;
    let (plan, price) = request.validate()?;
    let family = Family::from_request(request.network.as_deref())?;
    hours_after(
        state.clock.now_unix_ms(),
        request.prepaid_hours,
        "prepaid_hours",
    )?;
    let caller = if request.use_credits {
        Some(state.auth.wallet(&call)?)
    } else {
        state.auth.optional_wallet(&call)?
    };
    // Drawn before any money moves: a rejected paid instance becomes a refund to credits,
    // written with the payment.
    let rejected = state.faults.provider_rejects();
    let now = state.clock.now_unix_ms();
    let mut metadata = json!({});
    if let Some(ai) = &request.ai_machine {
        let mut key = [0u8; 16];
        state.random.fill(&mut key);
        metadata["ai"] = json!({ "model_id": ai.model_id, "api_key": format!("sk-{}", alloy::hex::encode(key)), "port": 8080 });
    }
    let mut record = InstanceRecord {
        id: random_id(&*state.random),
        // The owner: the caller, or (paid without auth) the payer once the payment settles.
        wallet: caller.unwrap_or(PayTo::Evm(alloy::primitives::Address::ZERO)),
        plan: plan.id.to_owned(),
        region: request.region.clone(),
        os_id: request.os_id,
        label: request.label.clone(),
        ssh_key: request.has_ssh_key(),
        created_ms: now,
        active_ms: now
            .saturating_add(state.faults.boot_delay_ms())
            .min(LATEST_MS),
        expires_ms: hours_after(now, request.prepaid_hours, "prepaid_hours")?,
        destroyed_ms: None,
        prepaid_hours: request.prepaid_hours,
        paid_micros: price.0,
        password_taken: false,
        tx_hash: None,
        metadata: metadata.to_string(),
    };
    let rejection = |tx_hash: Option<&str>| {
        let body = json!({
            "error": "the provider rejected the instance; the price was refunded to your credits",
            "refunded": dollars(price),
            "tx_hash": tx_hash,
        });
        (StatusCode::BAD_GATEWAY, Json(body)).into_response()
    };
    if request.use_credits {
        let owner = caller.ok_or_else(|| ApiError::unauthorized("use_credits needs auth"))?;
        if rejected {
            // Nothing is spent on an instance the provider refused.
            return Ok(rejection(None));
        }
        record.wallet = owner;
        let effect = Effect::Instance {
            record: Box::new(record),
            owner: Some(owner),
        };
        let Applied::Instance(record) = spend_credits(&state, &owner, price, &effect, now)? else {
            return Err(ApiError::internal("a provision applied no instance"));
        };
        let body =
            json!({ "success": true, "order": instance_json(&record, now), "tx_hash": null });
        return Ok((StatusCode::CREATED, Json(body)).into_response());
    }
    let description = format!("{} for {} hours", plan.id, request.prepaid_hours);
    let price_asked = Price {
        amount: price,
        description: &description,
        family,
        hint: CHALLENGE_HINT,
    };
    let effect = match rejected {
        true => Effect::Credit {
            wallet: caller,
            micros: price.0,
        },
        false => Effect::Instance {
            record: Box::new(record),
            owner: caller,
        },
    };
    let paid = match state
        .cashier
        .charge(&call.uri, price_asked, payment, effect)
        .await
    {
        Ok(paid) => paid,
        Err(response) => return Ok(response),
    };
    let tx_hash = paid.settlement.transaction.clone();
    let response = match &paid.applied {
        Applied::Instance(record) => {
            let body =
                json!({ "success": true, "order": instance_json(record, now), "tx_hash": tx_hash });
            (StatusCode::CREATED, Json(body)).into_response()
        }
        _ => rejection(Some(&tx_hash)),
    };
    Ok(paid.with_receipt(response))
}

/// Spends credits on `effect` (both or neither), or answers 402 with the shortfall.
fn spend_credits(
    state: &Machines,
    wallet: &PayTo,
    price: UsdMicros,
    effect: &Effect,
    now: u64,
) -> ApiResult<Applied> {
    match state.store.spend_on(wallet, price.0, effect, now)? {
        Ok(applied) => Ok(applied),
        Err(shortfall) => {
            let credits = state.store.credits(wallet)?;
            Err(ApiError::with_body(
                StatusCode::PAYMENT_REQUIRED,
                json!({
                    "error": format!("insufficient credits: ${} short", dollars(UsdMicros(shortfall))),
                    "required": dollars(price),
                    "balance": dollars(UsdMicros(credits.balance_micros())),
                    "shortfall": dollars(UsdMicros(shortfall)),
                }),
            ))
        }
    }
}

fn status(record: &InstanceRecord, now: u64) -> &'static str {
    if record.destroyed_ms.is_some() {
        "destroyed"
    } else if now >= record.expires_ms {
        "expired"
    } else if now >= record.active_ms {
        "active"
    } else {
        "pending"
    }
}

fn ip_address(record: &InstanceRecord) -> String {
    let last = record
        .id
        .bytes()
        .fold(0u8, |acc, b| acc.wrapping_mul(31).wrapping_add(b))
        % 250
        + 2;
    format!("203.0.113.{last}")
}

fn instance_json(record: &InstanceRecord, now: u64) -> Value {
    let plan = catalog::plan(&record.plan);
    let status = status(record, now);
    let booted = now >= record.active_ms;
    let ip = if booted {
        ip_address(record)
    } else {
        "pending".to_owned()
    };
    let mut metadata: Value = serde_json::from_str(&record.metadata).unwrap_or_else(|_| json!({}));
    if let Some(ai) = metadata.get_mut("ai") {
        ai["endpoint"] = json!(if booted {
            format!("http://{ip}:8080/v1")
        } else {
            "pending".to_owned()
        });
    }
    let os = catalog::os_image(record.os_id).map_or("", |o| o.name);
    json!({
        "id": record.id,
        "status": status,
        "label": record.label,
        "plan": record.plan,
        "region": record.region,
        "os_id": record.os_id,
        "ip_address": ip,
        "created_at": rfc3339(record.created_ms / 1000),
        "expires_at": rfc3339(record.expires_ms / 1000),
        "destroyed_at": record.destroyed_ms.map(|ms| rfc3339(ms / 1000)),
        "prepaid_hours": record.prepaid_hours,
        "payment_amount": dollars(UsdMicros(record.paid_micros)),
        "provider": plan.map(Plan::provider).unwrap_or("vultr"),
        "vultr_instance_id": format!("devnet-{}", &record.id[..8]),
        "vultr_status": if status == "pending" { "pending" } else { status },
        "vultr_server_status": if booted { "ok" } else { "none" },
        "vultr_vcpu_count": plan.map(|p| p.vcpu_count),
        "vultr_ram": plan.map(|p| p.ram_mb),
        "vultr_disk": plan.map(|p| p.disk_gb),
        "vultr_os": os,
        "access_method": if record.ssh_key { "ssh_key" } else { "one_time_password_fallback" },
        "tx_hash": record.tx_hash,
        "metadata": metadata,
    })
}

pub(super) async fn list(State(state): State<Arc<Machines>>, call: Call) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let now = state.clock.now_unix_ms();
    let instances: Vec<Value> = state
        .store
        .instances(&wallet)?
        .iter()
        .map(|i| instance_json(i, now))
        .collect();
    Ok(Json(json!({ "instances": instances })).into_response())
}

fn owned(state: &Machines, wallet: &PayTo, id: &str) -> ApiResult<InstanceRecord> {
    state
        .store
        .instance(wallet, id)?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn details(
    State(state): State<Arc<Machines>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let record = owned(&state, &wallet, &id)?;
    Ok(Json(json!({ "order": instance_json(&record, state.clock.now_unix_ms()) })).into_response())
}

pub(super) async fn destroy(
    State(state): State<Arc<Machines>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let mut record = owned(&state, &wallet, &id)?;
    let now = state.clock.now_unix_ms();
    if !state.store.destroy_instance(&id, now)? {
        return Err(ApiError::conflict(format!(
            "instance {id} is already destroyed"
        )));
    }
    record.destroyed_ms = Some(now);
    Ok(Json(json!({ "success": true, "instance": instance_json(&record, now) })).into_response())
}

pub(super) async fn password(
    State(state): State<Arc<Machines>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let record = owned(&state, &wallet, &id)?;
    if record.ssh_key || catalog::plan(&record.plan).is_some_and(|p| p.provider() == "digitalocean")
    {
        return Err(bad(
            "this instance uses SSH key access; there is no one-time password",
        ));
    }
    let now = state.clock.now_unix_ms();
    if status(&record, now) != "active" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("instance {id} is {}, not active", status(&record, now)),
        ));
    }
    if !state.store.take_password(&id)? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the one-time password was already retrieved",
        ));
    }
    let mut secret = [0u8; 12];
    state.random.fill(&mut secret);
    let password = alloy::hex::encode(secret);
    Ok(Json(json!({ "success": true, "access": { "method": "one_time_password", "username": "root", "ip_address": ip_address(&record), "password": password } })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendRequest {
    #[serde(default = "default_extend_hours")]
    extend_hours: u64,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    use_credits: bool,
}

fn default_extend_hours() -> u64 {
    24
}

pub(super) async fn extend(
    State(state): State<Arc<Machines>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let payment = PaymentPayload::from_headers(&call.headers)
        .map_err(|e| bad(format!("unreadable payment header: {e}")))?;
    let request: ExtendRequest = if call.body.is_empty() {
        ExtendRequest {
            extend_hours: 24,
            network: None,
            use_credits: false,
        }
    } else {
        parse_body(&call.body, "{extend_hours, network, use_credits}")?
    };
    let family = Family::from_request(request.network.as_deref())?;
    if request.extend_hours == 0 {
        return Err(bad("extend_hours must be at least 1"));
    }
    let caller = if request.use_credits {
        Some(state.auth.wallet(&call)?)
    } else {
        state.auth.optional_wallet(&call)?
    };
    let record = match &caller {
        Some(wallet) => owned(&state, wallet, &id)?,
        None => state
            .store
            .instance_by_id(&id)?
            .ok_or_else(|| not_found(&id))?,
    };
    if record.destroyed_ms.is_some() {
        return Err(ApiError::conflict(format!("instance {id} is destroyed")));
    }
    let plan = catalog::plan(&record.plan)
        .ok_or_else(|| ApiError::internal("instance on an unknown plan"))?;
    let price = plan.price(request.extend_hours).ok_or_else(|| {
        bad(format!(
            "extend_hours {} is too large: its price overflows",
            request.extend_hours
        ))
    })?;
    // Checked before any money moves; applied, from the time of payment, with it.
    let too_many = || {
        bad(format!(
            "extend_hours {} is too large",
            request.extend_hours
        ))
    };
    record
        .prepaid_hours
        .checked_add(request.extend_hours)
        .ok_or_else(too_many)?;
    record
        .paid_micros
        .checked_add(price.0)
        .ok_or_else(too_many)?;
    hours_after(
        record.expires_ms.max(state.clock.now_unix_ms()),
        request.extend_hours,
        "extend_hours",
    )?;
    if request.use_credits {
        let wallet = caller
            .as_ref()
            .ok_or_else(|| ApiError::unauthorized("use_credits needs auth"))?;
        let now = state.clock.now_unix_ms();
        // The credits and the extension are written in one database transaction.
        let effect = Effect::Extend {
            id: id.clone(),
            hours: request.extend_hours,
            micros: price.0,
        };
        let Applied::Instance(record) = spend_credits(&state, wallet, price, &effect, now)? else {
            return Err(ApiError::internal("an extension applied to no instance"));
        };
        let body =
            json!({ "success": true, "order": instance_json(&record, now), "tx_hash": null });
        return Ok(Json(body).into_response());
    }
    let description = format!("extend {id} by {} hours", request.extend_hours);
    let asked = Price {
        amount: price,
        description: &description,
        family,
        hint: CHALLENGE_HINT,
    };
    // The extension is written in the same database transaction that settles the payment.
    let effect = Effect::Extend {
        id: id.clone(),
        hours: request.extend_hours,
        micros: price.0,
    };
    let paid = match state
        .cashier
        .charge(&call.uri, asked, payment, effect)
        .await
    {
        Ok(paid) => paid,
        Err(response) => return Ok(response),
    };
    let record = match &paid.applied {
        Applied::Instance(record) => record,
        _ => {
            let body = json!({ "error": format!("instance {id} was destroyed while the payment settled; its price was added to your credits"), "tx_hash": paid.settlement.transaction });
            return Ok(paid.with_receipt((StatusCode::CONFLICT, Json(body)).into_response()));
        }
    };
    let now = state.clock.now_unix_ms();
    let body = json!({ "success": true, "order": instance_json(record, now), "tx_hash": paid.settlement.transaction });
    Ok(paid.with_receipt(Json(body).into_response()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeRequest {
    plan: String,
    #[serde(default)]
    confirm_disk_resize: bool,
}

pub(super) async fn resize(
    State(state): State<Arc<Machines>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let wallet = state.auth.wallet(&call)?;
    let request: ResizeRequest = parse_body(&call.body, "{plan, confirm_disk_resize}")?;
    let mut record = owned(&state, &wallet, &id)?;
    let now = state.clock.now_unix_ms();
    match status(&record, now) {
        "destroyed" | "expired" => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "instance {id} is {}; extend or provision first",
                    status(&record, now)
                ),
            ));
        }
        _ => {}
    }
    let from = catalog::plan(&record.plan)
        .ok_or_else(|| ApiError::internal("instance on an unknown plan"))?;
    let to = catalog::plan(&request.plan)
        .ok_or_else(|| bad(format!("unknown plan `{}`", request.plan)))?;
    if to.id == from.id {
        return Err(bad("the instance is already on that plan"));
    }
    if to.provider() != from.provider() {
        return Err(bad(format!(
            "cannot resize across providers ({} to {})",
            from.provider(),
            to.provider()
        )));
    }
    if !to.locations.contains(&record.region.as_str()) {
        return Err(bad(format!(
            "plan {} is not offered in {}",
            to.id, record.region
        )));
    }
    if from.provider() == "vultr" && (to.hourly <= from.hourly || to.disk_gb < from.disk_gb) {
        return Err(bad("Vultr plans can only be upgraded"));
    }
    if from.provider() == "digitalocean"
        && to.disk_gb > from.disk_gb
        && !request.confirm_disk_resize
    {
        return Err(bad(
            "growing the disk is irreversible: send confirm_disk_resize: true",
        ));
    }
    // Keep the remaining prepaid dollars; recompute the time they buy at the new rate.
    let remaining_ms = record.expires_ms.saturating_sub(now);
    let credit_micros = u128::from(from.hourly.0) * u128::from(remaining_ms) / u128::from(HOUR_MS);
    let new_remaining_ms = credit_micros * u128::from(HOUR_MS) / u128::from(to.hourly.0.max(1));
    let old_expires = record.expires_ms;
    let new_expires = u64::try_from(new_remaining_ms)
        .ok()
        .and_then(|ms| now.checked_add(ms))
        .filter(|ms| *ms <= LATEST_MS)
        .unwrap_or(LATEST_MS);
    if !state.store.resize_instance(&record, to.id, new_expires)? {
        return Err(ApiError::conflict(format!(
            "instance {id} changed while it was being resized; send the resize again"
        )));
    }
    record.expires_ms = new_expires;
    record.plan = to.id.to_owned();
    let hours = |ms: u128| {
        catalog::usd_number(UsdMicros(
            u64::try_from(ms * 1_000_000 / u128::from(HOUR_MS)).unwrap_or(u64::MAX),
        ))
    };
    let credit = UsdMicros(u64::try_from(credit_micros).unwrap_or(u64::MAX));
    Ok(Json(json!({
        "success": true,
        "instance_id": record.id,
        "provider": to.provider(),
        "from_plan": from.id,
        "to_plan": to.id,
        "old_expires_at": rfc3339(old_expires / 1000),
        "new_expires_at": rfc3339(record.expires_ms / 1000),
        "remaining_credit": catalog::usd_number(credit),
        "remaining_hours_before": hours(u128::from(remaining_ms)),
        "remaining_hours_after": hours(new_remaining_ms),
    }))
    .into_response())
}
