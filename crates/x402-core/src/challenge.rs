//! Reading 402 challenges (v1 body, v2 `PAYMENT-REQUIRED` header) and writing them (server side).
//!
//! Each offered requirement keeps its original JSON text ([`Offer::raw_json`]) next to its
//! typed view ([`Requirement`]), so that the v2 `accepted` echo is byte-for-byte what the server
//! sent. An offer whose typed view cannot be built (unknown network, bad address, ...) stays in
//! the list with its error, so one odd offer does not hide the others and the policy can say
//! why it was refused.
//!
//! Leniencies, all documented in `x402.md`: base64 in any alphabet and padding; v1 `network`
//! in CAIP-2 form; v1 offers without `asset` (the compute API's documented body) take the
//! network's default asset from the registry; v1 offers without `maxTimeoutSeconds` get
//! [`DEFAULT_MAX_TIMEOUT_SECONDS`]; a v2 challenge in the body when no header is present;
//! v2 offers that spell the amount `maxAmountRequired`.

use std::fmt;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::address::PayTo;
use crate::encoding;
use crate::money::{AssetId, AssetRegistry, TokenAmount};
use crate::network::Network;
use crate::{Error, Result};

/// Header carrying the v2 challenge.
pub const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";

/// `maxTimeoutSeconds` assumed for v1 offers that omit it.
pub const DEFAULT_MAX_TIMEOUT_SECONDS: u64 = 300;

/// Largest body we look into for a v1 challenge.
const MAX_BODY_LEN: usize = 1024 * 1024;

/// The x402 protocol version of a message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum X402Version {
    /// Version 1: challenge in the body, `X-PAYMENT` header.
    V1,
    /// Version 2: `PAYMENT-REQUIRED` / `PAYMENT-SIGNATURE` headers, CAIP-2 networks.
    V2,
}

impl X402Version {
    /// The number on the wire.
    pub fn number(self) -> u8 {
        match self {
            X402Version::V1 => 1,
            X402Version::V2 => 2,
        }
    }

    pub(crate) fn from_number(number: u64) -> Result<X402Version> {
        match number {
            1 => Ok(X402Version::V1),
            2 => Ok(X402Version::V2),
            other => Err(Error::UnsupportedVersion(other)),
        }
    }
}

/// A payment scheme name.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Scheme {
    /// `exact`: EIP-3009 on EVM, SPL `TransferChecked` on Solana.
    Exact,
    /// `permit`: ERC-2612 permit then `transferFrom` (our MegaETH design, see `evm::permit`).
    Permit,
    /// Anything else, kept as written.
    Other(String),
}

impl Scheme {
    /// The scheme as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Exact => "exact",
            Scheme::Permit => "permit",
            Scheme::Other(other) => other,
        }
    }

    pub(crate) fn parse(text: &str) -> Scheme {
        match text {
            "exact" => Scheme::Exact,
            "permit" => Scheme::Permit,
            other => Scheme::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed view of one offered payment requirement.
///
/// Two requirements are equal when they came from the same JSON text in the same version.
#[derive(Clone, Debug)]
pub struct Requirement {
    version: X402Version,
    scheme: Scheme,
    network: Network,
    network_text: String,
    amount: TokenAmount,
    asset: AssetId,
    pay_to: PayTo,
    max_timeout_seconds: u64,
    resource: Option<String>,
    description: Option<String>,
    extra: Map<String, Value>,
    raw: Box<RawValue>,
}

impl PartialEq for Requirement {
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get() && self.version == other.version
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequirementV1 {
    scheme: String,
    network: String,
    max_amount_required: TokenAmount,
    #[serde(default)]
    asset: Option<String>,
    pay_to: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    max_timeout_seconds: Option<u64>,
    #[serde(default)]
    extra: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRequirementV2 {
    scheme: String,
    network: String,
    #[serde(alias = "maxAmountRequired")]
    amount: TokenAmount,
    asset: String,
    pay_to: String,
    max_timeout_seconds: u64,
    #[serde(default)]
    extra: Option<Map<String, Value>>,
}

impl Requirement {
    /// Builds the typed view of one `accepts` entry of a challenge of `version`.
    ///
    /// # Errors
    /// [`Error::Malformed`] for missing fields or wrong types, [`Error::UnknownNetwork`],
    /// [`Error::InvalidAddress`], [`Error::InvalidAmount`].
    pub fn parse(version: X402Version, raw: &RawValue) -> Result<Requirement> {
        let what = "payment requirement";
        let raw_box = raw.to_owned();
        match version {
            X402Version::V1 => {
                let wire: WireRequirementV1 =
                    serde_json::from_str(raw.get()).map_err(|e| Error::malformed(what, e))?;
                let network: Network = wire.network.parse()?;
                let asset = match wire.asset {
                    Some(asset) => parse_asset(&network, &asset)?,
                    None => AssetRegistry::known()
                        .default_for(&network)
                        .map(|a| a.id())
                        .ok_or(Error::MissingField {
                            field: "asset",
                            hint: "the offer names no asset and the network has no default asset",
                        })?,
                };
                Ok(Requirement {
                    version,
                    scheme: Scheme::parse(&wire.scheme),
                    pay_to: PayTo::parse_for(&network, &wire.pay_to)?,
                    network_text: wire.network,
                    network,
                    amount: wire.max_amount_required,
                    asset,
                    max_timeout_seconds: wire
                        .max_timeout_seconds
                        .unwrap_or(DEFAULT_MAX_TIMEOUT_SECONDS),
                    resource: wire.resource,
                    description: wire.description,
                    extra: wire.extra.unwrap_or_default(),
                    raw: raw_box,
                })
            }
            X402Version::V2 => {
                let wire: WireRequirementV2 =
                    serde_json::from_str(raw.get()).map_err(|e| Error::malformed(what, e))?;
                let network: Network = wire.network.parse()?;
                Ok(Requirement {
                    version,
                    scheme: Scheme::parse(&wire.scheme),
                    asset: parse_asset(&network, &wire.asset)?,
                    pay_to: PayTo::parse_for(&network, &wire.pay_to)?,
                    network_text: wire.network,
                    network,
                    amount: wire.amount,
                    max_timeout_seconds: wire.max_timeout_seconds,
                    resource: None,
                    description: None,
                    extra: wire.extra.unwrap_or_default(),
                    raw: raw_box,
                })
            }
        }
    }

    /// Protocol version of the challenge this came from.
    pub fn version(&self) -> X402Version {
        self.version
    }
    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }
    /// The network.
    pub fn network(&self) -> &Network {
        &self.network
    }
    /// The network exactly as the server wrote it (v1 payloads echo this).
    pub fn network_text(&self) -> &str {
        &self.network_text
    }
    /// Atomic amount (`amount` in v2, `maxAmountRequired` in v1).
    pub fn amount(&self) -> TokenAmount {
        self.amount
    }
    /// Token contract or mint.
    pub fn asset(&self) -> AssetId {
        self.asset
    }
    /// Recipient.
    pub fn pay_to(&self) -> PayTo {
        self.pay_to
    }
    /// How long a signed payment should stay valid.
    pub fn max_timeout_seconds(&self) -> u64 {
        self.max_timeout_seconds
    }
    /// v1 `resource` URL of the offer.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }
    /// v1 `description` of the offer.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The `extra` object (empty when absent).
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
    /// A string field of `extra`.
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }
    /// The offer's JSON exactly as received.
    pub fn raw_json(&self) -> &RawValue {
        &self.raw
    }

    /// A one-line public description: `exact on eip155:8453: 1.5 USDC to 0x…`.
    pub fn summary(&self) -> String {
        let amount = match AssetRegistry::known().find(&self.network, &self.asset) {
            Some(asset) => asset.display_amount(self.amount),
            None => format!("{} atomic units of {}", self.amount, self.asset),
        };
        format!(
            "{} on {}: {} to {}",
            self.scheme, self.network, amount, self.pay_to
        )
    }
}

fn parse_asset(network: &Network, text: &str) -> Result<AssetId> {
    match PayTo::parse_for(network, text)? {
        PayTo::Evm(address) => Ok(AssetId::Evm(address)),
        PayTo::Solana(mint) => Ok(AssetId::Solana(mint)),
    }
}

/// One entry of a challenge's `accepts`.
#[derive(Clone, Debug)]
pub struct Offer {
    index: usize,
    raw: Box<RawValue>,
    requirement: Result<Requirement>,
}

impl Offer {
    /// Position in `accepts`.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The JSON exactly as received.
    pub fn raw_json(&self) -> &str {
        self.raw.get()
    }
    /// The typed view, or why it could not be built.
    pub fn requirement(&self) -> Result<&Requirement, &Error> {
        self.requirement.as_ref()
    }
}

/// A parsed 402 challenge, v1 or v2.
#[derive(Clone, Debug)]
pub struct Challenge {
    version: X402Version,
    error: Option<String>,
    resource: Option<Box<RawValue>>,
    extensions: Option<Box<RawValue>>,
    offers: Vec<Offer>,
}

#[derive(Deserialize)]
struct WireChallenge {
    #[serde(rename = "x402Version")]
    x402_version: u64,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    resource: Option<Box<RawValue>>,
    accepts: Vec<Box<RawValue>>,
    #[serde(default)]
    extensions: Option<Box<RawValue>>,
}

/// The `resource` object of a v2 challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceInfo {
    /// URL of the paid resource.
    pub url: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// MIME type of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

impl Challenge {
    /// Reads a challenge from a response's status, headers and body.
    ///
    /// Accepts 402, and 412 (Permit2 allowance) when it carries `PAYMENT-REQUIRED`. The v2
    /// header wins; otherwise the body must be a JSON challenge with `x402Version`.
    ///
    /// # Errors
    /// - [`Error::NotPaymentRequired`] for other statuses;
    /// - [`Error::NoChallenge`] for a 402 without any challenge, carrying the server's message
    ///   (for example "insufficient credits");
    /// - [`Error::Malformed`] / [`Error::UnsupportedVersion`] for broken challenges.
    pub fn from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> Result<Challenge> {
        if status != 402 && status != 412 {
            return Err(Error::NotPaymentRequired { status });
        }
        if let Some(value) = headers.get(PAYMENT_REQUIRED) {
            let text = value
                .to_str()
                .map_err(|_| Error::malformed(PAYMENT_REQUIRED, "header is not ASCII"))?;
            return Challenge::from_v2_header(text);
        }
        let body = &body[..body.len().min(MAX_BODY_LEN)];
        if let Ok(json) = serde_json::from_slice::<Map<String, Value>>(body) {
            if json.contains_key("x402Version") {
                return Challenge::from_body(body);
            }
            return Err(Error::NoChallenge {
                status,
                message: message_from_json(&json).unwrap_or_else(|| text_message(body)),
            });
        }
        if body
            .windows(b"x402Version".len())
            .any(|w| w == b"x402Version")
        {
            // Looks like a challenge but is not valid JSON: say what is wrong with it.
            return Challenge::from_body(body);
        }
        Err(Error::NoChallenge {
            status,
            message: text_message(body),
        })
    }

    /// Reads the value of a `PAYMENT-REQUIRED` header (base64 JSON, `x402Version: 2`).
    ///
    /// # Errors
    /// As [`Challenge::from_response`].
    pub fn from_v2_header(value: &str) -> Result<Challenge> {
        let bytes = encoding::decode(PAYMENT_REQUIRED, value)?;
        let challenge = Challenge::parse(PAYMENT_REQUIRED, &bytes)?;
        if challenge.version != X402Version::V2 {
            return Err(Error::malformed(
                PAYMENT_REQUIRED,
                "the header must carry x402Version 2",
            ));
        }
        Ok(challenge)
    }

    /// Reads a JSON challenge body (normally v1).
    ///
    /// # Errors
    /// As [`Challenge::from_response`].
    pub fn from_body(body: &[u8]) -> Result<Challenge> {
        Challenge::parse("challenge body", body)
    }

    fn parse(what: &str, bytes: &[u8]) -> Result<Challenge> {
        let wire: WireChallenge =
            serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e))?;
        let version = X402Version::from_number(wire.x402_version)?;
        if let Some(resource) = &wire.resource
            && version == X402Version::V2
        {
            serde_json::from_str::<ResourceInfo>(resource.get())
                .map_err(|e| Error::malformed(format!("{what} resource"), e))?;
        }
        let offers = wire
            .accepts
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                let requirement = Requirement::parse(version, &raw);
                Offer {
                    index,
                    raw,
                    requirement,
                }
            })
            .collect();
        Ok(Challenge {
            version,
            error: wire
                .error
                .as_ref()
                .and_then(|e| e.as_str().map(str::to_owned)),
            resource: wire.resource,
            extensions: wire.extensions,
            offers,
        })
    }

    /// The protocol version.
    pub fn version(&self) -> X402Version {
        self.version
    }
    /// The server's `error` text.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// The offers, in the server's order.
    pub fn offers(&self) -> &[Offer] {
        &self.offers
    }
    /// The v2 `resource` object, as received.
    pub fn resource_json(&self) -> Option<&RawValue> {
        self.resource.as_deref()
    }
    /// The v2 `resource`, typed.
    pub fn resource(&self) -> Option<ResourceInfo> {
        self.resource
            .as_ref()
            .and_then(|r| serde_json::from_str(r.get()).ok())
    }
    /// The v2 `extensions` object, as received.
    pub fn extensions_json(&self) -> Option<&RawValue> {
        self.extensions.as_deref()
    }
}

fn message_from_json(json: &Map<String, Value>) -> Option<String> {
    for key in ["error", "message", "detail"] {
        match json.get(key) {
            Some(Value::String(text)) => return Some(with_shortfall(text, json)),
            Some(Value::Object(inner)) => {
                if let Some(Value::String(text)) = inner.get("message") {
                    return Some(with_shortfall(text, json));
                }
            }
            _ => {}
        }
    }
    None
}

fn with_shortfall(text: &str, json: &Map<String, Value>) -> String {
    match json.get("shortfall") {
        Some(Value::String(shortfall)) => format!("{text} (shortfall {shortfall})"),
        Some(Value::Number(shortfall)) => format!("{text} (shortfall {shortfall})"),
        _ => text.to_owned(),
    }
}

fn text_message(body: &[u8]) -> String {
    const LIMIT: usize = 300;
    let text = String::from_utf8_lossy(&body[..body.len().min(LIMIT * 4)]);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// What a server offers for one resource, for writing challenges (the devnet uses this).
#[derive(Clone, Debug, PartialEq)]
pub struct RequirementSpec {
    /// Scheme.
    pub scheme: Scheme,
    /// Network.
    pub network: Network,
    /// Exact atomic amount.
    pub amount: TokenAmount,
    /// Token.
    pub asset: AssetId,
    /// Recipient.
    pub pay_to: PayTo,
    /// Validity a client should give its signature.
    pub max_timeout_seconds: u64,
    /// The `extra` object (EIP-712 `name`/`version`, `feePayer`, ...).
    pub extra: Map<String, Value>,
}

impl RequirementSpec {
    /// An `exact` offer of `amount` atomic units of `network`'s default asset (its USDC) to
    /// `pay_to`, valid for a 60-second signature, with the token's EIP-712 `name` and `version`
    /// in `extra` where it has them. `None` for a network without a default asset.
    pub fn exact(network: Network, amount: TokenAmount, pay_to: PayTo) -> Option<RequirementSpec> {
        let asset = crate::AssetRegistry::known().default_for(&network)?;
        let mut extra = Map::new();
        if let Some((name, version)) = asset.eip712() {
            extra.insert("name".to_owned(), Value::from(name));
            extra.insert("version".to_owned(), Value::from(version));
        }
        Some(RequirementSpec {
            scheme: Scheme::Exact,
            asset: asset.id(),
            network,
            amount,
            pay_to,
            max_timeout_seconds: 60,
            extra,
        })
    }
}

/// A challenge to send: one resource, several offers; written as v1 body and v2 header.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentRequired {
    /// The resource being paid for.
    pub resource: ResourceInfo,
    /// The `error` text.
    pub error: String,
    /// The offers.
    pub accepts: Vec<RequirementSpec>,
    /// v2 `extensions` (for example `payment-identifier`, see [`crate::extensions`]); not
    /// written in v1.
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOutV1<'a> {
    scheme: &'a str,
    network: &'a str,
    max_amount_required: TokenAmount,
    resource: &'a str,
    description: &'a str,
    mime_type: &'a str,
    pay_to: String,
    max_timeout_seconds: u64,
    asset: String,
    extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireOutV2<'a> {
    scheme: &'a str,
    network: &'a str,
    amount: TokenAmount,
    asset: String,
    pay_to: String,
    max_timeout_seconds: u64,
    #[serde(skip_serializing_if = "Map::is_empty")]
    extra: &'a Map<String, Value>,
}

impl PaymentRequired {
    /// The v1 challenge body (JSON bytes).
    pub fn to_v1_body(&self) -> Vec<u8> {
        let accepts: Vec<WireOutV1<'_>> = self
            .accepts
            .iter()
            .map(|spec| WireOutV1 {
                scheme: spec.scheme.as_str(),
                network: spec.network.v1_name().unwrap_or(spec.network.as_str()),
                max_amount_required: spec.amount,
                resource: &self.resource.url,
                description: self.resource.description.as_deref().unwrap_or(""),
                mime_type: self
                    .resource
                    .mime_type
                    .as_deref()
                    .unwrap_or("application/json"),
                pay_to: spec.pay_to.to_string(),
                max_timeout_seconds: spec.max_timeout_seconds,
                asset: spec.asset.to_string(),
                extra: &spec.extra,
            })
            .collect();
        let body = serde_json::json!({ "x402Version": 1, "error": self.error, "accepts": accepts });
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// The v2 `PAYMENT-REQUIRED` header value (standard base64 of compact JSON).
    pub fn to_v2_header(&self) -> String {
        let accepts: Vec<WireOutV2<'_>> = self
            .accepts
            .iter()
            .map(|spec| WireOutV2 {
                scheme: spec.scheme.as_str(),
                network: spec.network.as_str(),
                amount: spec.amount,
                asset: spec.asset.to_string(),
                pay_to: spec.pay_to.to_string(),
                max_timeout_seconds: spec.max_timeout_seconds,
                extra: &spec.extra,
            })
            .collect();
        let mut body = serde_json::json!({ "x402Version": 2, "error": self.error, "resource": self.resource, "accepts": accepts });
        if !self.extensions.is_empty() {
            body["extensions"] = serde_json::Value::Object(self.extensions.clone());
        }
        encoding::encode(&serde_json::to_vec(&body).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests;
