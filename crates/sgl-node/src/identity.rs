//! The node's identity: its ed25519 key (from which its X25519 key is derived, §2.1), its id
//! and its auth token. Secrets are zeroized on drop and never shown by `Debug`.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use grid_proto::seal;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The node's ed25519 key. The seed is zeroized on drop; `Debug` shows the public key only.
#[derive(Clone)]
pub struct Keypair {
    seed: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public_b58())
    }
}

impl Keypair {
    /// A fresh key from the OS random source.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] if the OS has no randomness.
    pub fn generate() -> Result<Keypair> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice())
            .map_err(|e| Error::InvalidInput(format!("the OS random source failed: {e}")))?;
        Ok(Keypair::from_seed(*seed))
    }

    /// The key of a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let seed = Zeroizing::new(seed);
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        Keypair { seed, public }
    }

    /// Reads the Solana-style 64 bytes (seed ‖ public key), checking that the public half is
    /// the seed's.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the length or the public half is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keypair> {
        if bytes.len() != 64 {
            return Err(Error::InvalidInput(format!(
                "a keypair is 64 bytes (seed and public key), not {}",
                bytes.len()
            )));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[..32]);
        let keypair = Keypair::from_seed(*seed);
        if keypair.public[..] != bytes[32..] {
            return Err(Error::InvalidInput(
                "the keypair's public half is not its seed's public key".into(),
            ));
        }
        Ok(keypair)
    }

    /// seed ‖ public key, zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(64));
        bytes.extend_from_slice(self.seed.as_slice());
        bytes.extend_from_slice(&self.public);
        bytes
    }

    /// The seed (for signing with [`grid_proto::envelope`]).
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The ed25519 public key, base58 (`public_key` at registration).
    pub fn public_b58(&self) -> String {
        seal::b58(&self.public)
    }

    /// The X25519 public key derived from the seed (§2.1), base58.
    pub fn encryption_public_b58(&self) -> String {
        let secret = seal::node_x25519_secret(&self.seed);
        seal::b58(x25519_public(&secret).as_bytes())
    }

    /// The key binding signature (§2.4) for `node_id`, when it is a UUID.
    pub fn keybind(&self, node_id: &str) -> Option<String> {
        let id = uuid::Uuid::parse_str(node_id).ok()?;
        Some(seal::sign_keybind(
            &id,
            &self.seed,
            grid_proto::node::KEY_VERSION,
        ))
    }

    /// Signs `message`: base58 of the signature.
    pub fn sign(&self, message: &[u8]) -> String {
        grid_proto::envelope::sign(&self.seed, message)
    }
}

fn x25519_public(secret: &x25519_dalek::StaticSecret) -> x25519_dalek::PublicKey {
    x25519_dalek::PublicKey::from(secret)
}

/// The opaque token for `X-Node-Auth`. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken(Arc<Zeroizing<String>>);

impl AuthToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> AuthToken {
        AuthToken(Arc::new(Zeroizing::new(token.into())))
    }

    /// The token, for a header or for node.json. Never log it.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthToken(<redacted>)")
    }
}

/// A registered node: its id, its token and its key.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The id the coordinator gave (a UUID).
    pub node_id: String,
    /// The current auth token.
    pub token: AuthToken,
    /// The node's key.
    pub keypair: Keypair,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keypair_bytes_round_trip_and_check_the_public_half() {
        let keypair = Keypair::from_seed([5; 32]);
        let bytes = keypair.to_bytes();
        assert_eq!(bytes.len(), 64);
        let again = Keypair::from_bytes(&bytes).unwrap();
        assert_eq!(again.public_b58(), keypair.public_b58());
        assert_eq!(again.seed(), &[5; 32]);
        let mut wrong = bytes.to_vec();
        wrong[40] ^= 1;
        assert!(Keypair::from_bytes(&wrong).is_err());
        assert!(Keypair::from_bytes(&bytes[..63]).is_err());
        assert_eq!(
            format!("{keypair:?}"),
            format!("Keypair({})", keypair.public_b58())
        );
    }

    #[test]
    fn the_keybind_verifies_and_needs_a_uuid() {
        let keypair = Keypair::from_seed([9; 32]);
        let id = "7f8d6c0e-55a4-4b1c-9d7e-0a1b2c3d4e5f";
        let signature = keypair.keybind(id).unwrap();
        seal::verify_keybind(
            id,
            &keypair.public_b58(),
            &keypair.encryption_public_b58(),
            grid_proto::node::KEY_VERSION,
            &signature,
        )
        .unwrap();
        assert!(keypair.keybind("node-1").is_none());
    }

    #[test]
    fn tokens_are_not_shown() {
        let token = AuthToken::new("s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(token.expose(), "s3cret");
    }
}
