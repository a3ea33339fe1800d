//! The devnet's catalog: plans, regions and OS images, shaped like the machines API's.
//!
//! Prices are integers of US dollar micros per hour; monthly is 720 hours and daily 24, as the
//! compute API counts them. JSON numbers are written from exact decimal text, never from floats.

use axum::Json;
use axum::extract::Query;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use x402_core::UsdMicros;

use crate::api::{ApiError, ApiResult};

/// One plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Plan id (`vcg-…`, `vc2-…`, `vhp-…`, `vdc-…`, `do:…`).
    pub id: &'static str,
    /// `vps`, `vhp`, `vdc` or `vcg` (the `?type=` filter).
    pub class: &'static str,
    /// vCPUs.
    pub vcpu_count: u32,
    /// RAM in MB.
    pub ram_mb: u32,
    /// Disk in GB.
    pub disk_gb: u32,
    /// Monthly transfer in GB.
    pub bandwidth_gb: u32,
    /// GPU model, for GPU plans.
    pub gpu: Option<(&'static str, u32)>,
    /// Price per hour.
    pub hourly: UsdMicros,
    /// Regions it is offered in.
    pub locations: &'static [&'static str],
}

impl Plan {
    /// `vultr` or `digitalocean`.
    pub fn provider(&self) -> &'static str {
        if self.id.starts_with("do:") {
            "digitalocean"
        } else {
            "vultr"
        }
    }

    /// Price of `hours` hours.
    pub fn price(&self, hours: u64) -> Option<UsdMicros> {
        self.hourly.0.checked_mul(hours).map(UsdMicros)
    }

    fn to_json(&self) -> Value {
        let monthly = usd_number(UsdMicros(self.hourly.0 * 720));
        let mut plan = json!({
            "id": self.id,
            "vcpu_count": self.vcpu_count,
            "ram": self.ram_mb,
            "disk": self.disk_gb,
            "disk_count": 1,
            "bandwidth": self.bandwidth_gb,
            "monthly_cost": monthly,
            "vultr_monthly": monthly,
            "our_monthly": monthly,
            "our_daily": usd_number(UsdMicros(self.hourly.0 * 24)),
            "our_hourly": usd_number(self.hourly),
            "type": match self.class { "vcg" => "GPU", "vhp" => "High Performance", "vdc" => "Dedicated", _ => "Cloud Compute" },
            "provider": self.provider(),
            "locations": self.locations,
        });
        if let Some((gpu, vram)) = self.gpu {
            plan["gpu_type"] = json!(gpu);
            plan["gpu_vram_gb"] = json!(vram);
        }
        plan
    }
}

/// A JSON number with the exact decimal value of `amount` dollars.
pub fn usd_number(amount: UsdMicros) -> Value {
    let text = x402_core::TokenAmount::from_u64(amount.0).to_decimal_string(6);
    RawValue::from_string(text)
        .ok()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(Value::Null)
}

const US: &[&str] = &["ewr", "ord", "lax", "sjc"];
const WORLD: &[&str] = &["ewr", "ord", "lax", "sjc", "ams", "fra", "nrt", "sgp"];
const GPU: &[&str] = &["ewr", "lax", "ams"];
const DO: &[&str] = &["nyc3", "sfo3", "ams3"];

const fn usd(micros: u64) -> UsdMicros {
    UsdMicros(micros)
}

/// Every plan.
pub const PLANS: &[Plan] = &[
    Plan {
        id: "vc2-1c-1gb",
        class: "vps",
        vcpu_count: 1,
        ram_mb: 1024,
        disk_gb: 25,
        bandwidth_gb: 1024,
        gpu: None,
        hourly: usd(8_000),
        locations: WORLD,
    },
    Plan {
        id: "vc2-1c-2gb",
        class: "vps",
        vcpu_count: 1,
        ram_mb: 2048,
        disk_gb: 55,
        bandwidth_gb: 2048,
        gpu: None,
        hourly: usd(15_000),
        locations: WORLD,
    },
    Plan {
        id: "vc2-2c-4gb",
        class: "vps",
        vcpu_count: 2,
        ram_mb: 4096,
        disk_gb: 80,
        bandwidth_gb: 3072,
        gpu: None,
        hourly: usd(30_000),
        locations: WORLD,
    },
    Plan {
        id: "vc2-4c-8gb",
        class: "vps",
        vcpu_count: 4,
        ram_mb: 8192,
        disk_gb: 160,
        bandwidth_gb: 4096,
        gpu: None,
        hourly: usd(60_000),
        locations: WORLD,
    },
    Plan {
        id: "vc2-6c-16gb",
        class: "vps",
        vcpu_count: 6,
        ram_mb: 16384,
        disk_gb: 320,
        bandwidth_gb: 5120,
        gpu: None,
        hourly: usd(120_000),
        locations: US,
    },
    Plan {
        id: "vhp-1c-1gb-amd",
        class: "vhp",
        vcpu_count: 1,
        ram_mb: 1024,
        disk_gb: 25,
        bandwidth_gb: 2048,
        gpu: None,
        hourly: usd(9_000),
        locations: WORLD,
    },
    Plan {
        id: "vhp-2c-4gb-amd",
        class: "vhp",
        vcpu_count: 2,
        ram_mb: 4096,
        disk_gb: 100,
        bandwidth_gb: 5120,
        gpu: None,
        hourly: usd(36_000),
        locations: WORLD,
    },
    Plan {
        id: "vhp-4c-8gb-intel",
        class: "vhp",
        vcpu_count: 4,
        ram_mb: 8192,
        disk_gb: 180,
        bandwidth_gb: 6144,
        gpu: None,
        hourly: usd(72_000),
        locations: US,
    },
    Plan {
        id: "vhp-8c-16gb-amd",
        class: "vhp",
        vcpu_count: 8,
        ram_mb: 16384,
        disk_gb: 350,
        bandwidth_gb: 7168,
        gpu: None,
        hourly: usd(144_000),
        locations: US,
    },
    Plan {
        id: "vdc-2c-8gb",
        class: "vdc",
        vcpu_count: 2,
        ram_mb: 8192,
        disk_gb: 50,
        bandwidth_gb: 10240,
        gpu: None,
        hourly: usd(90_000),
        locations: US,
    },
    Plan {
        id: "vdc-4c-16gb",
        class: "vdc",
        vcpu_count: 4,
        ram_mb: 16384,
        disk_gb: 80,
        bandwidth_gb: 10240,
        gpu: None,
        hourly: usd(180_000),
        locations: US,
    },
    Plan {
        id: "vdc-8c-32gb",
        class: "vdc",
        vcpu_count: 8,
        ram_mb: 32768,
        disk_gb: 170,
        bandwidth_gb: 10240,
        gpu: None,
        hourly: usd(360_000),
        locations: US,
    },
    Plan {
        id: "vcg-a16-2c-16g-4vram",
        class: "vcg",
        vcpu_count: 2,
        ram_mb: 16384,
        disk_gb: 50,
        bandwidth_gb: 3072,
        gpu: Some(("NVIDIA A16", 4)),
        hourly: usd(118_000),
        locations: GPU,
    },
    Plan {
        id: "vcg-l40s-8c-90g-48vram",
        class: "vcg",
        vcpu_count: 8,
        ram_mb: 92160,
        disk_gb: 350,
        bandwidth_gb: 10240,
        gpu: Some(("NVIDIA L40S", 48)),
        hourly: usd(1_671_000),
        locations: GPU,
    },
    Plan {
        id: "vcg-a100-1c-2g-6gb",
        class: "vcg",
        vcpu_count: 1,
        ram_mb: 6144,
        disk_gb: 70,
        bandwidth_gb: 1024,
        gpu: Some(("NVIDIA A100", 6)),
        hourly: usd(125_000),
        locations: GPU,
    },
    Plan {
        id: "vcg-a100-12c-120g-80vram",
        class: "vcg",
        vcpu_count: 12,
        ram_mb: 122880,
        disk_gb: 1400,
        bandwidth_gb: 10240,
        gpu: Some(("NVIDIA A100", 80)),
        hourly: usd(2_397_000),
        locations: GPU,
    },
    Plan {
        id: "vcg-h100-16c-240g-80vram",
        class: "vcg",
        vcpu_count: 16,
        ram_mb: 245760,
        disk_gb: 2600,
        bandwidth_gb: 15360,
        gpu: Some(("NVIDIA H100", 80)),
        hourly: usd(2_990_000),
        locations: GPU,
    },
    Plan {
        id: "do:s-1vcpu-1gb",
        class: "vps",
        vcpu_count: 1,
        ram_mb: 1024,
        disk_gb: 25,
        bandwidth_gb: 1024,
        gpu: None,
        hourly: usd(9_000),
        locations: DO,
    },
    Plan {
        id: "do:s-2vcpu-4gb",
        class: "vps",
        vcpu_count: 2,
        ram_mb: 4096,
        disk_gb: 80,
        bandwidth_gb: 4096,
        gpu: None,
        hourly: usd(36_000),
        locations: DO,
    },
    Plan {
        id: "do:s-4vcpu-8gb",
        class: "vps",
        vcpu_count: 4,
        ram_mb: 8192,
        disk_gb: 160,
        bandwidth_gb: 5120,
        gpu: None,
        hourly: usd(72_000),
        locations: DO,
    },
    Plan {
        id: "do:c-8-16gib",
        class: "vhp",
        vcpu_count: 8,
        ram_mb: 16384,
        disk_gb: 100,
        bandwidth_gb: 6144,
        gpu: None,
        hourly: usd(250_000),
        locations: DO,
    },
    Plan {
        id: "do:gpu-h100x1-80gb",
        class: "vcg",
        vcpu_count: 20,
        ram_mb: 245760,
        disk_gb: 720,
        bandwidth_gb: 15360,
        gpu: Some(("NVIDIA H100", 80)),
        hourly: usd(3_390_000),
        locations: &["nyc2", "tor1"],
    },
];

/// A region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Region id (`ewr`, `nyc3`, …).
    pub id: &'static str,
    /// City.
    pub city: &'static str,
    /// ISO country code.
    pub country: &'static str,
    /// Continent.
    pub continent: &'static str,
}

/// An OS image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsImage {
    /// The `os_id` a provision names.
    pub id: u32,
    /// Display name.
    pub name: &'static str,
    /// Architecture.
    pub arch: &'static str,
    /// Distribution family.
    pub family: &'static str,
}

const fn region(
    id: &'static str,
    city: &'static str,
    country: &'static str,
    continent: &'static str,
) -> Region {
    Region {
        id,
        city,
        country,
        continent,
    }
}

const fn image(id: u32, name: &'static str, arch: &'static str, family: &'static str) -> OsImage {
    OsImage {
        id,
        name,
        arch,
        family,
    }
}

/// The regions.
pub const REGIONS: &[Region] = &[
    region("ewr", "New Jersey", "US", "North America"),
    region("ord", "Chicago", "US", "North America"),
    region("lax", "Los Angeles", "US", "North America"),
    region("sjc", "Silicon Valley", "US", "North America"),
    region("ams", "Amsterdam", "NL", "Europe"),
    region("fra", "Frankfurt", "DE", "Europe"),
    region("nrt", "Tokyo", "JP", "Asia"),
    region("sgp", "Singapore", "SG", "Asia"),
    region("nyc3", "New York (DigitalOcean)", "US", "North America"),
    region(
        "sfo3",
        "San Francisco (DigitalOcean)",
        "US",
        "North America",
    ),
    region("ams3", "Amsterdam (DigitalOcean)", "NL", "Europe"),
    region("nyc2", "New York (DigitalOcean GPU)", "US", "North America"),
    region("tor1", "Toronto (DigitalOcean GPU)", "CA", "North America"),
];

/// The OS images.
pub const OS_IMAGES: &[OsImage] = &[
    image(2284, "Ubuntu 24.04 LTS x64", "x64", "ubuntu"),
    image(1743, "Ubuntu 22.04 LTS x64", "x64", "ubuntu"),
    image(2136, "Debian 12 x64 (bookworm)", "x64", "debian"),
    image(2571, "Rocky Linux 9 x64", "x64", "rockylinux"),
];

/// An OS image by id.
pub fn os_image(id: u32) -> Option<&'static OsImage> {
    OS_IMAGES.iter().find(|o| o.id == id)
}

/// A plan by id.
pub fn plan(id: &str) -> Option<&'static Plan> {
    PLANS.iter().find(|p| p.id == id)
}

/// `GET /compute/plans[?type=]` body: standard plans when no type is given.
pub fn plans_json(class: Option<&str>) -> Value {
    let class = class.unwrap_or("vps");
    let plans: Vec<Value> = PLANS
        .iter()
        .filter(|p| p.class == class)
        .map(Plan::to_json)
        .collect();
    json!({ "count": plans.len(), "plans": plans })
}

/// `GET /compute/regions` body.
pub fn regions_json() -> Value {
    let regions: Vec<Value> = REGIONS
        .iter()
        .map(|r| json!({ "id": r.id, "city": r.city, "country": r.country, "continent": r.continent }))
        .collect();
    json!({ "regions": regions })
}

/// `GET /compute/os` body.
pub fn os_json() -> Value {
    let images: Vec<Value> = OS_IMAGES
        .iter()
        .map(|o| json!({ "id": o.id, "name": o.name, "arch": o.arch, "family": o.family }))
        .collect();
    json!({ "os_options": images })
}

#[derive(Deserialize)]
pub(super) struct PlansQuery {
    #[serde(rename = "type")]
    class: Option<String>,
}

/// `GET /compute/plans[?type=vps|vhp|vdc|vcg]`.
pub(super) async fn plans(Query(query): Query<PlansQuery>) -> ApiResult {
    match query.class.as_deref() {
        None | Some("vps" | "vhp" | "vdc" | "vcg") => {
            Ok(Json(plans_json(query.class.as_deref())).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown plan type `{other}`: use vps, vhp, vdc or vcg"
        ))),
    }
}

/// `GET /compute/regions`.
pub(super) async fn regions() -> Json<Value> {
    Json(regions_json())
}

/// `GET /compute/os`.
pub(super) async fn os() -> Json<Value> {
    Json(os_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_realistic_and_consistent() {
        assert!(PLANS.len() >= 20);
        for prefix in ["vcg-", "vc2-", "vhp-", "vdc-", "do:"] {
            assert!(PLANS.iter().any(|p| p.id.starts_with(prefix)), "{prefix}");
        }
        for plan in PLANS {
            for location in plan.locations {
                assert!(
                    REGIONS.iter().any(|r| r.id == *location),
                    "{} in unknown region {location}",
                    plan.id
                );
            }
        }
        let vps = plans_json(None);
        assert!(
            vps["plans"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["type"] == "Cloud Compute")
        );
        let gpu = plans_json(Some("vcg"));
        assert_eq!(gpu["plans"][0]["gpu_type"], "NVIDIA A16");
        assert_eq!(plans_json(Some("nope"))["count"], 0);
    }

    #[test]
    fn prices_are_exact() {
        let plan = plan("vc2-1c-1gb").unwrap();
        assert_eq!(plan.price(720), Some(UsdMicros(5_760_000)));
        assert_eq!(
            serde_json::to_string(&usd_number(UsdMicros(5_760_000))).unwrap(),
            "5.76"
        );
        assert_eq!(
            serde_json::to_string(&usd_number(UsdMicros(8_000))).unwrap(),
            "0.008"
        );
    }
}
