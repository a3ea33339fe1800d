//! The node's ed25519 signatures: over each result it posts (`sgl-result-v1`, §3.9), over an
//! attestation challenge (§3.11), and — our addition — over its hardware report bound to that
//! challenge, so a report cannot be replayed or altered (§8.1).

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::seal::{b58, key_from_b58};

/// What a signature check found wrong. Never carries the signature or key material.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key is not base58 of a 32-byte curve point.
    #[error("the node's ed25519 key is not base58 of a 32-byte curve point")]
    BadKey,
    /// The signature is not base58 of 64 bytes.
    #[error("the signature is not base58 of 64 bytes")]
    Malformed,
    /// The signature does not verify over the message.
    #[error("the signature is not the node's over this {0}")]
    Forged(&'static str),
}

/// What a result signature covers (the `kind` line of the signed message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultKind {
    /// A plain result: the payload is the result JSON string.
    Plain,
    /// A sealed result: the payload is the base58 ciphertext.
    Sealed,
    /// A stream chunk: the payload is the chunk's base58 ciphertext.
    Stream {
        /// The chunk's sequence number.
        seq: u64,
        /// Whether it is the last.
        last: bool,
    },
}

impl std::fmt::Display for ResultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResultKind::Plain => f.write_str("plain"),
            ResultKind::Sealed => f.write_str("sealed"),
            ResultKind::Stream { seq, last } => write!(f, "stream:{seq}:{}", u8::from(*last)),
        }
    }
}

/// The result envelope version the node writes (`result_envelope_version`).
pub const RESULT_ENVELOPE_VERSION: &str = "v1";

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The signed text of a result: `sgl-result-v1\n{job_id}\n{kind}\n{sha256_hex(payload)}`.
pub fn result_message(job_id: &str, kind: ResultKind, payload: &[u8]) -> String {
    format!("sgl-result-v1\n{job_id}\n{kind}\n{}", sha256_hex(payload))
}

/// The text a hardware report's signature covers (our design, §8.1: the reference node sends
/// its report unsigned and unbound): `sgl-attest-report-v1\n{challenge}\n{sha256_hex(report)}`
/// where `report` is the report's JSON as [`crate::node::HardwareReport`] serializes it
/// (fixed field order, so the coordinator can serialize what it read and get the same bytes).
pub fn report_message(challenge: &str, report_json: &str) -> String {
    format!(
        "sgl-attest-report-v1\n{challenge}\n{}",
        sha256_hex(report_json.as_bytes())
    )
}

/// The 64 bytes a hardware TEE report must carry as its report data to be bound to this node
/// and this challenge (ours, §8.1): SHA-512 of the node's ed25519 public key, its X25519
/// public key and the challenge's UTF-8 bytes, in that order. Defined here only; the node
/// writes it to configfs-tsm's `inblob`, the coordinator looks for it in the quote.
pub fn tee_report_data(
    ed25519_public: &[u8; 32],
    x25519_public: &[u8; 32],
    challenge: &str,
) -> [u8; 64] {
    let mut hasher = sha2::Sha512::new();
    hasher.update(ed25519_public);
    hasher.update(x25519_public);
    hasher.update(challenge.as_bytes());
    hasher.finalize().into()
}

/// Where a TEE report carries its 64 bytes of report data: a TDX quote (v4: a 48-byte
/// header, then the TD report body whose `REPORTDATA` is at 520) or an SEV-SNP attestation
/// report (`REPORT_DATA` at 0x50). `provider` is configfs-tsm's (`tdx_guest`, `sev_guest`).
pub fn report_data_offset(provider: &str) -> Option<usize> {
    match provider {
        "tdx_guest" => Some(48 + 520),
        "sev_guest" => Some(0x50),
        _ => None,
    }
}

/// Signs `message` with an ed25519 seed: base58 of the 64-byte signature.
pub fn sign(seed: &[u8; 32], message: &[u8]) -> String {
    b58(&SigningKey::from_bytes(seed).sign(message).to_bytes())
}

/// Checks `signature_b58` over `message` by `public_b58`; `what` names the message in the
/// error.
///
/// # Errors
/// [`SignatureError`] naming what failed.
pub fn verify(
    public_b58: &str,
    signature_b58: &str,
    message: &[u8],
    what: &'static str,
) -> Result<(), SignatureError> {
    let public = key_from_b58(public_b58).map_err(|_| SignatureError::BadKey)?;
    let key = VerifyingKey::from_bytes(&public).map_err(|_| SignatureError::BadKey)?;
    let mut signature = [0u8; 64];
    match bs58::decode(signature_b58.trim()).onto(&mut signature) {
        Ok(64) => {}
        _ => return Err(SignatureError::Malformed),
    }
    key.verify_strict(message, &Signature::from_bytes(&signature))
        .map_err(|_| SignatureError::Forged(what))
}

/// The node's signature over a result.
pub fn sign_result(seed: &[u8; 32], job_id: &str, kind: ResultKind, payload: &[u8]) -> String {
    sign(seed, result_message(job_id, kind, payload).as_bytes())
}

/// Checks a node's signature over a result.
///
/// # Errors
/// [`SignatureError`].
pub fn verify_result(
    public_b58: &str,
    signature_b58: &str,
    job_id: &str,
    kind: ResultKind,
    payload: &[u8],
) -> Result<(), SignatureError> {
    verify(
        public_b58,
        signature_b58,
        result_message(job_id, kind, payload).as_bytes(),
        "result",
    )
}

/// The base58 ed25519 public key of a seed.
pub fn public_key(seed: &[u8; 32]) -> String {
    b58(SigningKey::from_bytes(seed).verifying_key().as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tee_report_data_is_sha512_of_both_keys_and_the_challenge() {
        let data = tee_report_data(&[1; 32], &[2; 32], "ch");
        let mut whole = vec![1u8; 32];
        whole.extend([2u8; 32]);
        whole.extend(b"ch");
        assert_eq!(data.to_vec(), sha2::Sha512::digest(&whole).to_vec());
        assert_ne!(data, tee_report_data(&[1; 32], &[2; 32], "ci"));
        assert_eq!(report_data_offset("tdx_guest"), Some(568));
        assert_eq!(report_data_offset("sev_guest"), Some(80));
        assert_eq!(report_data_offset("other"), None);
    }

    #[test]
    fn the_signed_text_is_the_references() {
        assert_eq!(
            result_message("j1", ResultKind::Stream { seq: 3, last: true }, b""),
            "sgl-result-v1\nj1\nstream:3:1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(ResultKind::Plain.to_string(), "plain");
        assert_eq!(ResultKind::Sealed.to_string(), "sealed");
        assert_eq!(
            ResultKind::Stream {
                seq: 0,
                last: false
            }
            .to_string(),
            "stream:0:0"
        );
    }

    #[test]
    fn a_result_verifies_only_for_its_job_kind_payload_and_key() {
        let seed = [7u8; 32];
        let public = public_key(&seed);
        let signature = sign_result(&seed, "job", ResultKind::Sealed, b"ct");
        verify_result(&public, &signature, "job", ResultKind::Sealed, b"ct").unwrap();
        for (job, kind, payload) in [
            ("other", ResultKind::Sealed, &b"ct"[..]),
            ("job", ResultKind::Plain, b"ct"),
            ("job", ResultKind::Sealed, b"cu"),
        ] {
            assert_eq!(
                verify_result(&public, &signature, job, kind, payload),
                Err(SignatureError::Forged("result"))
            );
        }
        assert_eq!(
            verify_result(
                &public_key(&[8; 32]),
                &signature,
                "job",
                ResultKind::Sealed,
                b"ct"
            ),
            Err(SignatureError::Forged("result"))
        );
        assert_eq!(
            verify_result(&public, "abc", "job", ResultKind::Sealed, b"ct"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_result("0OIl", &signature, "job", ResultKind::Sealed, b"ct"),
            Err(SignatureError::BadKey)
        );
    }
}
