//! The API's request and answer types, with the reference's field names
//! (`shared/reference/compute-api.md`). Answers tolerate unknown fields and the documented
//! alternates: `instances`, `orders` or a bare array; `order`, `instance` or the root; credit
//! amounts as strings or numbers.

use serde::{Deserialize, Deserializer, Serialize};

/// A number the API sends as a JSON number or a decimal string (`"150.00"`, `0`), kept as
/// its decimal text so no amount goes through a float.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Decimal(pub String);

impl Decimal {
    /// Dollars as integer micros, when the text is a plain decimal.
    pub fn usd(&self) -> Option<x402_core::UsdMicros> {
        self.0.trim().parse().ok()
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Decimal, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(Decimal(text)),
            serde_json::Value::Number(number) => Ok(Decimal(number.to_string())),
            serde_json::Value::Null => Ok(Decimal::default()),
            other => Err(serde::de::Error::custom(format!(
                "expected a number or a decimal string, found {other}"
            ))),
        }
    }
}

fn decimal_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Decimal>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(Decimal(text))),
        Some(serde_json::Value::Number(number)) => Ok(Some(Decimal(number.to_string()))),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a number or a decimal string, found {other}"
        ))),
    }
}

/// Plan classes (`?type=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanType {
    /// Standard cloud compute (`vps`).
    Vps,
    /// High performance (`vhp`).
    Vhp,
    /// Dedicated (`vdc`).
    Vdc,
    /// GPU (`vcg`).
    Vcg,
}

impl PlanType {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanType::Vps => "vps",
            PlanType::Vhp => "vhp",
            PlanType::Vdc => "vdc",
            PlanType::Vcg => "vcg",
        }
    }
}

/// A plan (`GET /compute/plans`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Plan {
    /// Its id (`vcg-…` GPU, `vc2-…` VPS, `vhp-…`, `vdc-…`, `do:…` DigitalOcean).
    pub id: String,
    /// Virtual CPUs.
    #[serde(default)]
    pub vcpu_count: Option<u32>,
    /// Memory in MB.
    #[serde(default)]
    pub ram: Option<u64>,
    /// Disk in GB.
    #[serde(default)]
    pub disk: Option<u64>,
    /// Monthly transfer.
    #[serde(default)]
    pub bandwidth: Option<serde_json::Value>,
    /// Provider's monthly price, USD.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub monthly_cost: Option<Decimal>,
    /// The service's monthly price, USD (what is charged).
    #[serde(default, deserialize_with = "decimal_opt")]
    pub our_monthly: Option<Decimal>,
    /// The service's daily price, USD.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub our_daily: Option<Decimal>,
    /// The service's hourly price, USD.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub our_hourly: Option<Decimal>,
    /// Fallback monthly price.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub vultr_monthly: Option<Decimal>,
    /// Its class, e.g. `GPU`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// GPU memory.
    #[serde(default)]
    pub gpu_vram_gb: Option<u32>,
    /// GPU model.
    #[serde(default)]
    pub gpu_type: Option<String>,
    /// Region ids where it exists.
    #[serde(default)]
    pub locations: Vec<String>,
    /// `vultr` or `digitalocean`.
    #[serde(default)]
    pub provider: Option<String>,
}

impl Plan {
    /// The monthly price shown: `our_monthly`, else `monthly_cost`, else `vultr_monthly`.
    pub fn monthly(&self) -> Option<&Decimal> {
        self.our_monthly
            .as_ref()
            .or(self.monthly_cost.as_ref())
            .or(self.vultr_monthly.as_ref())
    }
}

/// A region (`GET /compute/regions`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Region {
    /// Its id (`lax`, `ewr`, `nyc3`, …).
    pub id: String,
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Country code.
    #[serde(default)]
    pub country: Option<String>,
    /// Continent.
    #[serde(default)]
    pub continent: Option<String>,
}

/// An OS image (`GET /compute/os`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct OsImage {
    /// Its id (2284: Ubuntu 24.04 LTS x64).
    pub id: u64,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
    /// Architecture.
    #[serde(default)]
    pub arch: Option<String>,
    /// Family (`ubuntu`, …).
    #[serde(default)]
    pub family: Option<String>,
}

/// An instance's status: an open set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Running and paid for.
    Active,
    /// Bought, not yet booted.
    Pending,
    /// Being built.
    Provisioning,
    /// Running (another spelling of active).
    Running,
    /// Destroyed by its owner.
    Destroyed,
    /// Ended by the provider.
    Terminated,
    /// Failed to provision.
    Failed,
    /// Its prepaid time ran out.
    Expired,
    /// A status this client does not know.
    Other(String),
}

impl Status {
    /// The wire text.
    pub fn as_str(&self) -> &str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Provisioning => "provisioning",
            Status::Running => "running",
            Status::Destroyed => "destroyed",
            Status::Terminated => "terminated",
            Status::Failed => "failed",
            Status::Expired => "expired",
            Status::Other(other) => other,
        }
    }

    /// Whether it runs (or will, once booted).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            Status::Active | Status::Running | Status::Pending | Status::Provisioning
        )
    }

    /// Whether it is up.
    pub fn is_up(&self) -> bool {
        matches!(self, Status::Active | Status::Running)
    }
}

impl From<&str> for Status {
    fn from(text: &str) -> Status {
        match text.trim().to_ascii_lowercase().as_str() {
            "active" => Status::Active,
            "pending" => Status::Pending,
            "provisioning" => Status::Provisioning,
            "running" => Status::Running,
            "destroyed" => Status::Destroyed,
            "terminated" => Status::Terminated,
            "failed" => Status::Failed,
            "expired" => Status::Expired,
            _ => Status::Other(text.to_owned()),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Status, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Status::from(text.as_str()))
    }
}

/// An instance (an "order").
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Instance {
    /// Its id (an extend answer may carry only the new expiry: empty then, and filled in by
    /// [`crate::Client::extend`]).
    #[serde(default)]
    pub id: String,
    /// Its status.
    #[serde(default = "unknown_status")]
    pub status: Status,
    /// Its label.
    #[serde(default)]
    pub label: Option<String>,
    /// Its plan (`plan` or `vultr_plan`).
    #[serde(default, alias = "vultr_plan")]
    pub plan: Option<String>,
    /// Its region (`region` or `vultr_region`).
    #[serde(default, alias = "vultr_region")]
    pub region: Option<String>,
    /// Its IPv4 address (`0.0.0.0` or `pending` before it boots).
    #[serde(default)]
    pub ip_address: Option<String>,
    /// Created, RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Paid until, RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Destroyed, RFC 3339.
    #[serde(default)]
    pub destroyed_at: Option<String>,
    /// Hours bought.
    #[serde(default)]
    pub prepaid_hours: Option<u64>,
    /// Dollars paid.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub payment_amount: Option<Decimal>,
    /// `vultr` or `digitalocean`.
    #[serde(default)]
    pub provider: Option<String>,
    /// How to log in (`ssh_key`, `one_time_password_fallback`).
    #[serde(default)]
    pub access_method: Option<String>,
    /// Provider data and `ai` / `resize_pending`.
    #[serde(default)]
    pub metadata: serde_json::Value,
    /// Every other field, kept.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

fn unknown_status() -> Status {
    Status::Other(String::new())
}

impl Instance {
    /// Its address once booted (not `0.0.0.0` or `pending`).
    pub fn ip(&self) -> Option<&str> {
        self.ip_address
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "0.0.0.0" && *ip != "pending")
    }

    /// Expiry as unix seconds, when readable.
    pub fn expires_unix(&self) -> Option<i64> {
        let text = self.expires_at.as_deref()?;
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(time::OffsetDateTime::unix_timestamp)
    }
}

/// `{ "instances": […] }`, `{ "orders": […] }` or a bare array.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum InstanceList {
    Instances { instances: Vec<Instance> },
    Orders { orders: Vec<Instance> },
    Bare(Vec<Instance>),
}

impl InstanceList {
    pub(crate) fn into_vec(self) -> Vec<Instance> {
        match self {
            InstanceList::Instances { instances } => instances,
            InstanceList::Orders { orders } => orders,
            InstanceList::Bare(all) => all,
        }
    }
}

/// `{ "order": … }`, `{ "instance": … }` or the instance at the root.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneInstance {
    Order { order: Instance },
    Instance { instance: Instance },
    Root(Instance),
}

impl OneInstance {
    pub(crate) fn into_instance(self) -> Instance {
        match self {
            OneInstance::Order { order } => order,
            OneInstance::Instance { instance } => instance,
            OneInstance::Root(instance) => instance,
        }
    }
}

/// What to provision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// Plan id.
    pub plan: String,
    /// Region id.
    pub region: String,
    /// OS image (default 2284).
    pub os_id: u64,
    /// Label (default `x402-instance`).
    pub label: String,
    /// Hours to prepay (at least 24).
    pub prepaid_hours: u64,
    /// An SSH public key to install.
    pub ssh_public_key: Option<String>,
}

/// Hours in a month, as the API counts them.
pub const HOURS_PER_MONTH: u64 = 720;
/// The fewest hours the API sells.
pub const MIN_HOURS: u64 = 24;
/// The default OS image: Ubuntu 24.04 LTS x64.
pub const DEFAULT_OS_ID: u64 = 2284;
/// The default label.
pub const DEFAULT_LABEL: &str = "x402-instance";

impl ProvisionRequest {
    /// `plan` in `region` for `prepaid_hours`, with the default OS and label.
    pub fn new(plan: impl Into<String>, region: impl Into<String>, prepaid_hours: u64) -> Self {
        ProvisionRequest {
            plan: plan.into(),
            region: region.into(),
            os_id: DEFAULT_OS_ID,
            label: DEFAULT_LABEL.to_owned(),
            prepaid_hours,
            ssh_public_key: None,
        }
    }
}

/// A provision or extend answer. `Debug` hides the management key.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
pub struct Bought {
    /// The instance.
    pub order: Instance,
    /// The payment's transaction, when paid on chain.
    #[serde(default)]
    pub tx_hash: Option<String>,
    /// Returned once when paid by MPP without auth.
    #[serde(default, skip_serializing)]
    pub management_api_key: Option<String>,
}

impl std::fmt::Debug for Bought {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bought")
            .field("order", &self.order)
            .field("tx_hash", &self.tx_hash)
            .field(
                "management_api_key",
                &self.management_api_key.as_ref().map(|_| "…"),
            )
            .finish()
    }
}

/// A one-time password (`POST …/password`). `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Access {
    /// `one_time_password`.
    #[serde(default)]
    pub method: Option<String>,
    /// The user (`root`).
    #[serde(default)]
    pub username: Option<String>,
    /// The address.
    #[serde(default)]
    pub ip_address: Option<String>,
    /// The password: shown once, never logged.
    pub password: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("method", &self.method)
            .field("username", &self.username)
            .field("ip_address", &self.ip_address)
            .finish_non_exhaustive()
    }
}

/// A resize answer.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Resized {
    /// Whether it was done.
    #[serde(default)]
    pub success: bool,
    /// The instance.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The old plan.
    #[serde(default)]
    pub from_plan: Option<String>,
    /// The new plan.
    #[serde(default)]
    pub to_plan: Option<String>,
    /// Expiry before.
    #[serde(default)]
    pub old_expires_at: Option<String>,
    /// Expiry after (the remaining credit at the new rate).
    #[serde(default)]
    pub new_expires_at: Option<String>,
    /// Dollars of prepaid time carried over.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub remaining_credit: Option<Decimal>,
    /// Hours left before.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub remaining_hours_before: Option<Decimal>,
    /// Hours left after.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub remaining_hours_after: Option<Decimal>,
}

/// A new API key (`POST /compute/api-keys`): the key is shown once. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct NewApiKey {
    /// The key, `x402c_…`.
    pub api_key: String,
    /// Its id.
    pub id: String,
    /// Its label.
    #[serde(default)]
    pub label: Option<String>,
    /// Created, RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// A listed API key (only its last four characters).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiKeyInfo {
    /// Its id.
    pub id: String,
    /// Its label.
    #[serde(default)]
    pub label: Option<String>,
    /// Its last four characters.
    #[serde(default)]
    pub key_last4: Option<String>,
    /// Created, RFC 3339.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Revoked, RFC 3339.
    #[serde(default)]
    pub revoked_at: Option<String>,
}

/// The credit balance (`GET /compute/credits/balance`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Credits {
    /// The wallet.
    #[serde(default)]
    pub wallet: Option<String>,
    /// Dollars available.
    #[serde(default)]
    pub balance: Decimal,
    /// Dollars deposited.
    #[serde(default)]
    pub total_deposited: Decimal,
    /// Dollars spent.
    #[serde(default)]
    pub total_spent: Decimal,
}

/// A top-up answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TopUp {
    /// Dollars deposited.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub deposited: Option<Decimal>,
    /// The balance after.
    #[serde(default, deserialize_with = "decimal_opt")]
    pub new_balance: Option<Decimal>,
    /// The payment's transaction.
    #[serde(default)]
    pub tx_hash: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn credits_read_as_strings_or_numeric_zeros() {
        let strings: Credits = serde_json::from_str(
            r#"{"wallet":"0xab","balance":"150.00","total_deposited":"200.00","total_spent":"50.00"}"#,
        )
        .unwrap();
        assert_eq!(
            strings.balance.usd(),
            Some(x402_core::UsdMicros(150_000_000))
        );
        let zeros: Credits =
            serde_json::from_str(r#"{"balance":0,"total_deposited":0,"total_spent":0}"#).unwrap();
        assert_eq!(zeros.balance.usd(), Some(x402_core::UsdMicros(0)));
    }

    #[test]
    fn instance_lists_read_in_every_documented_shape() {
        let one = r#"{"id":"a","status":"active","vultr_plan":"vc2-1c-1gb","future_field":1}"#;
        for text in [
            format!(r#"{{"instances":[{one}]}}"#),
            format!(r#"{{"orders":[{one}]}}"#),
            format!("[{one}]"),
        ] {
            let list = serde_json::from_str::<InstanceList>(&text)
                .unwrap()
                .into_vec();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].plan.as_deref(), Some("vc2-1c-1gb"));
            assert_eq!(list[0].other["future_field"], 1);
        }
        for text in [
            format!(r#"{{"order":{one}}}"#),
            format!(r#"{{"instance":{one}}}"#),
            one.to_owned(),
        ] {
            let instance = serde_json::from_str::<OneInstance>(&text)
                .unwrap()
                .into_instance();
            assert_eq!(instance.id, "a");
            assert_eq!(instance.status, Status::Active);
        }
    }

    #[test]
    fn the_documented_extend_answer_reads() {
        let bought: Bought = serde_json::from_str(
            r#"{"order":{"expires_at":"2026-03-17T00:00:00Z"},"tx_hash":"0xab"}"#,
        )
        .unwrap();
        assert_eq!(bought.order.id, "");
        assert_eq!(
            bought.order.expires_at.as_deref(),
            Some("2026-03-17T00:00:00Z")
        );
    }

    #[test]
    fn unknown_statuses_are_kept() {
        assert_eq!(
            Status::from("hibernating"),
            Status::Other("hibernating".into())
        );
        assert!(Status::from("RUNNING").is_up());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let key = NewApiKey {
            api_key: "x402c_secret".into(),
            id: "1".into(),
            label: None,
            created_at: None,
        };
        assert!(!format!("{key:?}").contains("x402c_secret"));
        let access = Access {
            method: None,
            username: Some("root".into()),
            ip_address: None,
            password: "hunter2".into(),
        };
        assert!(!format!("{access:?}").contains("hunter2"));
    }
}
