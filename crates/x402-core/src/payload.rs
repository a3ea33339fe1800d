//! Payment payloads: the `X-PAYMENT` (v1) and `PAYMENT-SIGNATURE` (v2) headers.
//!
//! Clients get a [`PaymentHeader`] from a scheme builder; servers read one back with
//! [`PaymentPayload::from_headers`] and check that it answers their requirement with
//! [`PaymentPayload::check_answers`] before handing the scheme payload to a verifier.

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::challenge::{Requirement, Scheme, X402Version};
use crate::encoding;
use crate::error::InvalidReason;
use crate::network::Network;
use crate::policy::Selected;
use crate::signer::Redacted;
use crate::{Error, Result};

/// v1 payment header.
pub const X_PAYMENT: &str = "X-PAYMENT";
/// v2 payment header.
pub const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";

/// A payment header to attach to the retried request.
///
/// Its value carries a signature, so `Debug` shows only the header name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentHeader {
    name: &'static str,
    value: Redacted,
}

impl PaymentHeader {
    pub(crate) fn new(name: &'static str, value: String) -> PaymentHeader {
        PaymentHeader {
            name,
            value: Redacted::new(value),
        }
    }

    /// `X-PAYMENT` or `PAYMENT-SIGNATURE`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The base64 value, to put on the wire (and nowhere else).
    pub fn value(&self) -> &str {
        self.value.expose()
    }
}

#[cfg_attr(not(any(feature = "evm", feature = "solana")), allow(dead_code))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutV1<'a, P> {
    x402_version: u8,
    scheme: &'a str,
    network: &'a str,
    payload: &'a P,
}

#[cfg_attr(not(any(feature = "evm", feature = "solana")), allow(dead_code))]
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutV2<'a, P> {
    x402_version: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a RawValue>,
    accepted: &'a RawValue,
    payload: &'a P,
    #[serde(skip_serializing_if = "Option::is_none")]
    extensions: Option<&'a RawValue>,
}

/// Wraps a scheme payload in the envelope of the selected offer's version.
///
/// v2 echoes the offer's JSON text verbatim as `accepted` and copies `resource` and
/// `extensions` from the challenge.
#[cfg_attr(not(any(feature = "evm", feature = "solana")), allow(dead_code))]
pub(crate) fn encode<P: Serialize>(selected: &Selected<'_>, payload: &P) -> Result<PaymentHeader> {
    let requirement = selected.requirement();
    let json = match requirement.version() {
        X402Version::V1 => serde_json::to_vec(&OutV1 {
            x402_version: 1,
            scheme: requirement.scheme().as_str(),
            network: requirement.network_text(),
            payload,
        }),
        X402Version::V2 => serde_json::to_vec(&OutV2 {
            x402_version: 2,
            resource: selected.challenge().resource_json(),
            accepted: requirement.raw_json(),
            payload,
            extensions: selected.challenge().extensions_json(),
        }),
    }
    .map_err(|e| Error::malformed("payment payload", e))?;
    let name = match requirement.version() {
        X402Version::V1 => X_PAYMENT,
        X402Version::V2 => PAYMENT_SIGNATURE,
    };
    Ok(PaymentHeader {
        name,
        value: Redacted::new(encoding::encode(&json)),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InPayload {
    x402_version: u64,
    #[serde(default)]
    scheme: Option<String>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    accepted: Option<Box<RawValue>>,
    payload: Box<RawValue>,
    #[serde(default)]
    extensions: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct AcceptedHead {
    scheme: String,
    network: String,
}

/// A payment payload as a server receives it. `Debug` shows the envelope, not the signed
/// payload.
#[derive(Clone)]
pub struct PaymentPayload {
    version: X402Version,
    scheme: Scheme,
    network: Network,
    accepted: Option<Box<RawValue>>,
    payload: Box<RawValue>,
    extensions: Option<Box<RawValue>>,
}

impl PaymentPayload {
    /// Reads the payment header of a request: `PAYMENT-SIGNATURE` first, then `X-PAYMENT`.
    /// `Ok(None)` when there is neither.
    ///
    /// # Errors
    /// [`Error::Malformed`] when the header is there but unreadable.
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<PaymentPayload>> {
        for name in [PAYMENT_SIGNATURE, X_PAYMENT] {
            if let Some(value) = headers.get(name) {
                let text = value
                    .to_str()
                    .map_err(|_| Error::malformed(name, "header is not ASCII"))?;
                return PaymentPayload::from_header_value(text).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads a payment header value (base64 JSON of either version).
    ///
    /// # Errors
    /// [`Error::Malformed`], [`Error::UnsupportedVersion`], [`Error::UnknownNetwork`].
    pub fn from_header_value(value: &str) -> Result<PaymentPayload> {
        let bytes = encoding::decode("payment header", value)?;
        PaymentPayload::from_json(&bytes)
    }

    /// Reads a payment payload from its JSON (as a facilitator's `/verify` body carries it).
    ///
    /// # Errors
    /// As [`PaymentPayload::from_header_value`].
    pub fn from_json(bytes: &[u8]) -> Result<PaymentPayload> {
        let what = "payment payload";
        let wire: InPayload =
            serde_json::from_slice(bytes).map_err(|e| Error::malformed(what, e))?;
        let version = X402Version::from_number(wire.x402_version)?;
        let (scheme, network) = match version {
            X402Version::V1 => (
                wire.scheme
                    .ok_or_else(|| Error::malformed(what, "v1 payload lacks `scheme`"))?,
                wire.network
                    .ok_or_else(|| Error::malformed(what, "v1 payload lacks `network`"))?,
            ),
            X402Version::V2 => {
                let accepted = wire
                    .accepted
                    .as_ref()
                    .ok_or_else(|| Error::malformed(what, "v2 payload lacks `accepted`"))?;
                let head: AcceptedHead = serde_json::from_str(accepted.get())
                    .map_err(|e| Error::malformed("payment header `accepted`", e))?;
                (head.scheme, head.network)
            }
        };
        Ok(PaymentPayload {
            version,
            scheme: Scheme::parse(&scheme),
            network: network.parse()?,
            accepted: wire.accepted,
            payload: wire.payload,
            extensions: wire.extensions,
        })
    }

    /// The v2 `extensions` object, as sent (see [`crate::extensions`]).
    pub fn extensions_json(&self) -> Option<&RawValue> {
        self.extensions.as_deref()
    }

    /// Protocol version.
    pub fn version(&self) -> X402Version {
        self.version
    }
    /// Scheme (top level in v1, from `accepted` in v2).
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }
    /// Network.
    pub fn network(&self) -> &Network {
        &self.network
    }
    /// The v2 `accepted` echo as received.
    pub fn accepted_json(&self) -> Option<&RawValue> {
        self.accepted.as_deref()
    }
    /// The scheme-specific `payload` object as received.
    pub fn payload_json(&self) -> &RawValue {
        &self.payload
    }

    /// Checks that this payment answers `requirement`: same version, scheme and network, and
    /// for v2 an `accepted` whose fields equal the requirement's, with an `extra` that contains
    /// at least the requirement's `extra` (x402 issue #3171 matching).
    ///
    /// # Errors
    /// [`Error::InvalidPayment`] with `invalid_x402_version`, `invalid_scheme`,
    /// `invalid_network` or `invalid_payment_requirements`.
    pub fn check_answers(&self, requirement: &Requirement) -> Result<()> {
        if self.version != requirement.version() {
            return Err(Error::invalid(
                InvalidReason::Version,
                format!(
                    "payment is x402 v{} but the offer is v{}",
                    self.version.number(),
                    requirement.version().number()
                ),
            ));
        }
        if &self.scheme != requirement.scheme() {
            return Err(Error::invalid(
                InvalidReason::Scheme,
                format!(
                    "payment scheme `{}` does not match the offer's `{}`",
                    self.scheme,
                    requirement.scheme()
                ),
            ));
        }
        if &self.network != requirement.network() {
            return Err(Error::invalid(
                InvalidReason::Network,
                format!(
                    "payment network {} does not match the offer's {}",
                    self.network,
                    requirement.network()
                ),
            ));
        }
        if let Some(accepted) = &self.accepted
            && accepted.get() != requirement.raw_json().get()
        {
            // Not a verbatim echo: compare field by field.
            let mismatch = |detail: &str| {
                Error::invalid(
                    InvalidReason::Requirements,
                    format!("`accepted` does not match the offer: {detail}"),
                )
            };
            let accepted: Map<String, Value> =
                serde_json::from_str(accepted.get()).map_err(|_| mismatch("not an object"))?;
            let offered: Map<String, Value> = serde_json::from_str(requirement.raw_json().get())
                .map_err(|_| mismatch("offer is not an object"))?;
            for (key, value) in &offered {
                if key == "extra" {
                    continue;
                }
                if accepted.get(key) != Some(value) {
                    return Err(mismatch(&format!("field `{key}` differs")));
                }
            }
            if let Some(key) = accepted
                .keys()
                .find(|k| *k != "extra" && !offered.contains_key(*k))
            {
                return Err(mismatch(&format!("unexpected field `{key}`")));
            }
            let empty = Map::new();
            let offered_extra = offered
                .get("extra")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            let accepted_extra = accepted
                .get("extra")
                .and_then(Value::as_object)
                .unwrap_or(&empty);
            if let Some((key, _)) = offered_extra
                .iter()
                .find(|(k, v)| accepted_extra.get(*k) != Some(*v))
            {
                return Err(mismatch(&format!("extra.{key} differs")));
            }
        }
        Ok(())
    }

    /// Deserializes the scheme payload into `T`.
    #[cfg_attr(not(any(feature = "evm", feature = "solana")), allow(dead_code))]
    pub(crate) fn scheme_payload<T: for<'de> Deserialize<'de>>(&self) -> Result<T> {
        serde_json::from_str(self.payload.get())
            .map_err(|e| Error::invalid(InvalidReason::Payload, format!("scheme payload: {e}")))
    }
}

impl std::fmt::Debug for PaymentPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentPayload")
            .field("version", &self.version)
            .field("scheme", &self.scheme)
            .field("network", &self.network)
            .finish_non_exhaustive()
    }
}
