//! x402 v2 extensions: `payment-identifier`, which makes a paid retry idempotent.
//!
//! A server that supports it advertises [`payment_identifier_offer`] under
//! `extensions["payment-identifier"]` in its v2 challenge; the client echoes the extension in
//! its payment payload with `info.id` set ([`PaymentId`]); the server answers the same id with
//! the same payload from its stored response, without charging again, and the same id with
//! another payload with 409. v1 has no extensions.

use std::fmt;
use std::str::FromStr;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::challenge::Challenge;
use crate::payload::{PAYMENT_SIGNATURE, PaymentHeader, PaymentPayload};
use crate::{Entropy, Error, Result, encoding};

/// The extension's key in `extensions`.
pub const PAYMENT_IDENTIFIER: &str = "payment-identifier";

/// A client-chosen payment id: 16 to 128 characters of `A-Z a-z 0-9 _ -` (the official
/// generator writes `pay_` and a UUID without dashes).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PaymentId(String);

impl PaymentId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PaymentId {
    type Err = Error;

    fn from_str(text: &str) -> Result<PaymentId> {
        let valid_length = (16..=128).contains(&text.len());
        let valid_chars = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !(valid_length && valid_chars) {
            return Err(Error::malformed(
                "payment-identifier id",
                "it must be 16 to 128 characters of letters, digits, `_` and `-`",
            ));
        }
        Ok(PaymentId(text.to_owned()))
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a server puts under `extensions["payment-identifier"]` in its v2 challenge.
pub fn payment_identifier_offer(required: bool) -> Value {
    json!({
        "info": { "required": required },
        "schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "required": { "type": "boolean" },
                "id": { "type": "string", "minLength": 16, "maxLength": 128, "pattern": "^[a-zA-Z0-9_-]+$" }
            },
            "required": ["required"]
        }
    })
}

#[derive(Deserialize)]
struct Extension {
    #[serde(default)]
    info: Info,
}

#[derive(Deserialize, Default)]
struct Info {
    #[serde(default)]
    id: Option<String>,
}

/// Whether a challenge offers the extension (only v2 challenges can), and whether it
/// requires an id.
pub fn offered(challenge: &Challenge) -> Option<bool> {
    let extensions: serde_json::Map<String, Value> =
        serde_json::from_str(challenge.extensions_json()?.get()).ok()?;
    let extension = extensions.get(PAYMENT_IDENTIFIER)?;
    Some(extension["info"]["required"].as_bool().unwrap_or(false))
}

/// A fresh id: `pay_` and 32 hex digits from `entropy` (the official generator's shape).
pub fn new_payment_id(entropy: &mut dyn Entropy) -> PaymentId {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    PaymentId(format!("pay_{hex}"))
}

/// The same v2 payment with `extensions["payment-identifier"].info.id` set to `id` (the
/// extension as the challenge offered it, echoed with the id). Only the unsigned part of the
/// payload changes; every other member keeps its bytes.
///
/// # Errors
/// [`Error::Malformed`] for a v1 payment (v1 has no extensions) or an unreadable header.
pub fn with_payment_id(header: &PaymentHeader, id: &PaymentId) -> Result<PaymentHeader> {
    if header.name() != PAYMENT_SIGNATURE {
        return Err(Error::malformed(
            "payment-identifier",
            "only v2 payments (PAYMENT-SIGNATURE) carry extensions",
        ));
    }
    let bytes = encoding::decode("payment header", header.value())?;
    let mut payload: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(&bytes).map_err(|e| Error::malformed("payment header", e))?;
    let mut extensions: serde_json::Map<String, Value> = match payload.get("extensions") {
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| Error::malformed("payment payload `extensions`", e))?,
        None => serde_json::Map::new(),
    };
    let mut extension = extensions
        .remove(PAYMENT_IDENTIFIER)
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({ "info": { "required": false } }));
    if !extension["info"].is_object() {
        extension["info"] = json!({ "required": false });
    }
    extension["info"]["id"] = json!(id.as_str());
    extensions.insert(PAYMENT_IDENTIFIER.to_owned(), extension);
    let extensions = serde_json::value::to_raw_value(&extensions)
        .map_err(|e| Error::malformed("payment payload `extensions`", e))?;
    payload.insert("extensions".to_owned(), extensions);
    let json = serde_json::to_vec(&payload).map_err(|e| Error::malformed("payment payload", e))?;
    Ok(PaymentHeader::new(header.name(), encoding::encode(&json)))
}

/// The payment id a payment carries, if it carries one.
///
/// # Errors
/// [`Error::Malformed`] when the extension is there but unreadable or its id is invalid.
pub fn payment_id(payment: &PaymentPayload) -> Result<Option<PaymentId>> {
    let Some(extensions) = payment.extensions_json() else {
        return Ok(None);
    };
    let extensions: serde_json::Map<String, Value> = serde_json::from_str(extensions.get())
        .map_err(|e| Error::malformed("payment payload `extensions`", e))?;
    let Some(extension) = extensions.get(PAYMENT_IDENTIFIER) else {
        return Ok(None);
    };
    let extension = Extension::deserialize(extension)
        .map_err(|e| Error::malformed("payment-identifier extension", e))?;
    extension.info.id.as_deref().map(str::parse).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "evm")]
    #[test]
    fn a_payment_id_goes_into_the_unsigned_extensions_and_nothing_else_changes() {
        use crate::challenge::{PaymentRequired, RequirementSpec, ResourceInfo};
        use crate::{FixedClock, LocalEvmSigner, Network, PaymentPolicy, TokenAmount};
        let mut extensions = serde_json::Map::new();
        extensions.insert(
            PAYMENT_IDENTIFIER.to_owned(),
            payment_identifier_offer(false),
        );
        let required = PaymentRequired {
            resource: ResourceInfo {
                url: "http://x/".into(),
                description: None,
                mime_type: None,
            },
            error: String::new(),
            accepts: vec![
                RequirementSpec::exact(
                    Network::BASE_SEPOLIA,
                    TokenAmount::from_u64(10_000),
                    "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
                        .parse()
                        .unwrap(),
                )
                .unwrap(),
            ],
            extensions,
        };
        let challenge = Challenge::from_v2_header(&required.to_v2_header()).unwrap();
        assert_eq!(offered(&challenge), Some(false));
        let selected = PaymentPolicy::default().select(&challenge).unwrap();
        let signer = LocalEvmSigner::from_bytes(&[7; 32]).unwrap();
        let mut zeros = |buf: &mut [u8]| buf.fill(1);
        let header = crate::evm::exact::pay(
            &selected,
            &signer,
            &FixedClock::from_unix(1_700_000_000),
            &mut zeros,
        )
        .unwrap();
        let id = new_payment_id(&mut zeros);
        assert_eq!(id.as_str(), format!("pay_{}", "01".repeat(16)));
        let with_id = with_payment_id(&header, &id).unwrap();
        let before = PaymentPayload::from_header_value(header.value()).unwrap();
        let after = PaymentPayload::from_header_value(with_id.value()).unwrap();
        assert_eq!(payment_id(&before).unwrap(), None);
        assert_eq!(payment_id(&after).unwrap(), Some(id));
        assert_eq!(before.payload_json().get(), after.payload_json().get());
        assert_eq!(
            before.accepted_json().map(RawValue::get),
            after.accepted_json().map(RawValue::get)
        );
        after.check_answers(selected.requirement()).unwrap();
    }

    #[test]
    fn ids_are_validated_as_the_spec_says() {
        for good in [
            "pay_3f1c0d2e4b5a69788796a5b4c3d2e1f0",
            "abcdefghijklmnop",
            &"a".repeat(128),
        ] {
            assert_eq!(good.parse::<PaymentId>().unwrap().as_str(), good);
        }
        for bad in [
            "",
            "short",
            &"a".repeat(129),
            "pay_3f1c0d2e4b5a6978 space",
            "pay_ünïcödé_0123456789",
        ] {
            assert!(bad.parse::<PaymentId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_payload_carries_its_id_or_none() {
        let with = |extensions: &str| {
            let json = format!(
                r#"{{"x402Version":2,"accepted":{{"scheme":"exact","network":"eip155:84532"}},"payload":{{}}{extensions}}}"#
            );
            PaymentPayload::from_json(json.as_bytes()).unwrap()
        };
        assert_eq!(payment_id(&with("")).unwrap(), None);
        assert_eq!(payment_id(&with(r#","extensions":{}"#)).unwrap(), None);
        assert_eq!(
            payment_id(&with(
                r#","extensions":{"payment-identifier":{"info":{"required":false}}}"#
            ))
            .unwrap(),
            None
        );
        assert_eq!(
            payment_id(&with(r#","extensions":{"payment-identifier":{"info":{"required":false,"id":"pay_0123456789abcdef"}}}"#))
                .unwrap()
                .map(|id| id.to_string()),
            Some("pay_0123456789abcdef".to_owned())
        );
        assert!(
            payment_id(&with(
                r#","extensions":{"payment-identifier":{"info":{"id":"short"}}}"#
            ))
            .is_err()
        );
        assert!(payment_id(&with(r#","extensions":[]"#)).is_err());
    }
}
