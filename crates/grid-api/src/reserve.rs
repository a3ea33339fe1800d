//! A `/v1/reserve` answer and the gate before sealing to it: the node's X25519 key is used
//! only when its key binding (§2.4) verifies against the node's ed25519 key. The reference's
//! answer does not carry the binding; our coordinator adds `encryption_public_key_signature`
//! and `key_version` from the node's heartbeat. Against a grid that omits them, sealing is
//! refused unless the caller explicitly accepts an unverified node (`--allow-unverified-node`),
//! which gives up protection against a coordinator that swaps in its own key.

use serde::{Deserialize, Serialize};

use crate::seal::{self, SealError};

/// `POST /v1/reserve`'s answer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Reservation {
    /// Spent by the chat request.
    pub reservation_token: String,
    /// The node (a UUID where the binding applies).
    pub node_id: String,
    /// The key requests are sealed to (base58).
    pub node_x25519_pubkey: String,
    /// The node's identity key (base58).
    pub node_ed25519_pubkey: String,
    /// The node's TEE type, as the coordinator reports it.
    #[serde(default)]
    pub tee_type: Option<String>,
    /// Whether the coordinator verified the node's attestation (its word, not a proof).
    #[serde(default)]
    pub attestation_verified: Option<bool>,
    /// How long the reservation holds.
    #[serde(default)]
    pub expires_in_ms: Option<u64>,
    /// The key binding's signature (base58; added by our coordinator).
    #[serde(default)]
    pub encryption_public_key_signature: Option<String>,
    /// The binding's key version (added by our coordinator).
    #[serde(default)]
    pub key_version: Option<u32>,
}

/// How far a node's sealing key is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyTrust {
    /// The node's ed25519 key signed this X25519 key.
    Verified,
    /// No binding was offered and the caller accepted that (`--allow-unverified-node`).
    Unverified,
}

impl Reservation {
    /// The X25519 key to seal to, once its binding verifies; without a binding, only when
    /// `allow_unverified`.
    ///
    /// # Errors
    /// [`SealError::KeyBinding`] when the binding is absent (and not allowed) or does not
    /// verify — a wrong binding is never accepted, allowed or not.
    pub fn sealing_key(&self, allow_unverified: bool) -> Result<(&str, KeyTrust), SealError> {
        match (&self.encryption_public_key_signature, self.key_version) {
            (Some(signature), Some(version)) => {
                seal::verify_keybind(
                    &self.node_id,
                    &self.node_ed25519_pubkey,
                    &self.node_x25519_pubkey,
                    version,
                    signature,
                )?;
                Ok((&self.node_x25519_pubkey, KeyTrust::Verified))
            }
            _ if allow_unverified => Ok((&self.node_x25519_pubkey, KeyTrust::Unverified)),
            _ => Err(SealError::KeyBinding(
                "the grid gave no key binding for this node, so a coordinator could have swapped its key; refusing to seal (--allow-unverified-node accepts that risk, --plain sends in the clear)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn reservation(seed: [u8; 32], signed: bool) -> Reservation {
        let id = uuid::Uuid::parse_str("0b6f9d2c-1a2b-4c3d-8e4f-5a6b7c8d9e0f").unwrap();
        let ed = ed25519_dalek::SigningKey::from_bytes(&seed);
        let x = x25519_dalek::PublicKey::from(&seal::node_x25519_secret(&seed));
        Reservation {
            reservation_token: "r".into(),
            node_id: id.to_string(),
            node_x25519_pubkey: seal::b58(x.as_bytes()),
            node_ed25519_pubkey: seal::b58(ed.verifying_key().as_bytes()),
            tee_type: None,
            attestation_verified: None,
            expires_in_ms: Some(30_000),
            encryption_public_key_signature: signed.then(|| seal::sign_keybind(&id, &seed, 1)),
            key_version: signed.then_some(1),
        }
    }

    #[test]
    fn a_bound_key_is_verified_and_a_swapped_one_refused_even_when_allowed() {
        let good = reservation([5; 32], true);
        assert_eq!(good.sealing_key(false).unwrap().1, KeyTrust::Verified);
        let mut swapped = good.clone();
        swapped.node_x25519_pubkey = reservation([6; 32], true).node_x25519_pubkey;
        assert!(swapped.sealing_key(false).is_err());
        assert!(
            swapped.sealing_key(true).is_err(),
            "a wrong binding is never accepted"
        );
    }

    #[test]
    fn a_missing_binding_needs_the_callers_word() {
        let unsigned = reservation([5; 32], false);
        let refused = unsigned.sealing_key(false).unwrap_err();
        assert!(
            refused.to_string().contains("--allow-unverified-node"),
            "{refused}"
        );
        assert_eq!(unsigned.sealing_key(true).unwrap().1, KeyTrust::Unverified);
        // The reference's answer, without our fields, reads.
        let reference: Reservation = serde_json::from_str(
            r#"{"reservation_token":"t","node_id":"n","node_x25519_pubkey":"x","node_ed25519_pubkey":"e","expires_in_ms":30000}"#,
        )
        .unwrap();
        assert!(reference.sealing_key(false).is_err());
    }
}
