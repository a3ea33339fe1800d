//! x402 v2 extensions: `payment-identifier`, which makes a paid retry idempotent.
//!
//! A server that supports it advertises [`payment_identifier_offer`] under
//! `extensions["payment-identifier"]` in its v2 challenge; the client echoes the extension in
//! its payment payload with `info.id` set ([`PaymentId`]); the server answers the same id with
//! the same payload from its stored response, without charging again, and the same id with
//! another payload with 409. v1 has no extensions.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::payload::PaymentPayload;
use crate::{Error, Result};

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
