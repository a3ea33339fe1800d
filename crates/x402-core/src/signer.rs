//! Signer traits and local-key implementations.
//!
//! The schemes only ever ask a signer for its address and for a signature over bytes this
//! crate computed (an EIP-712 digest, an EIP-191 message, a Solana message). Local keys are
//! implemented here; an encrypted keystore, OWS or a hardware wallet plugs in by implementing
//! the same trait. Key material is zeroized on drop (by `k256` and `ed25519-dalek`, whose
//! signing keys are `ZeroizeOnDrop`, and by [`zeroize::Zeroizing`] for every buffer we decode
//! a key from) and never appears in `Debug`, `Display` or errors.

use std::fmt;

#[cfg(feature = "solana")]
use crate::Error;
use crate::Result;
use crate::address::SolanaAddress;

#[cfg(feature = "evm")]
pub use evm::{EvmSigner, LocalEvmSigner};

#[cfg(feature = "evm")]
mod evm {
    use std::fmt;

    use alloy_primitives::{Address, B256, Signature};
    use alloy_signer::SignerSync;
    use alloy_signer_local::PrivateKeySigner;
    use zeroize::Zeroizing;

    use crate::{Error, Result};

    /// Something that can sign 32-byte digests for one EVM address.
    pub trait EvmSigner {
        /// The address whose key signs.
        fn address(&self) -> Address;

        /// Signs `digest` exactly as given (no prefixing). Must return a low-s signature.
        ///
        /// # Errors
        /// [`Error::Signing`] when the signer refuses or fails.
        fn sign_hash(&self, digest: &B256) -> Result<Signature>;

        /// EIP-191 `personal_sign` over `message`.
        ///
        /// # Errors
        /// As [`EvmSigner::sign_hash`].
        fn sign_personal_message(&self, message: &[u8]) -> Result<Signature> {
            self.sign_hash(&alloy_primitives::eip191_hash_message(message))
        }
    }

    /// A secp256k1 private key held in memory.
    pub struct LocalEvmSigner {
        inner: PrivateKeySigner,
    }

    impl LocalEvmSigner {
        /// From `0x`-prefixed (or bare) hex of 32 bytes.
        ///
        /// # Errors
        /// [`Error::InvalidKey`]; the message never contains the key.
        pub fn from_hex(text: &str) -> Result<LocalEvmSigner> {
            let text = text.trim();
            let hex = text.strip_prefix("0x").unwrap_or(text);
            let mut bytes = Zeroizing::new([0u8; 32]);
            if hex.len() != 64 {
                return Err(crate::Error::InvalidKey(
                    "an EVM private key is 32 bytes: 64 hex digits, optionally 0x-prefixed",
                ));
            }
            alloy_primitives::hex::decode_to_slice(hex, bytes.as_mut_slice())
                .map_err(|_| crate::Error::InvalidKey("an EVM private key must be hex"))?;
            LocalEvmSigner::from_bytes(&bytes)
        }

        /// From 32 raw bytes.
        ///
        /// # Errors
        /// [`Error::InvalidKey`] when the bytes are not a valid secp256k1 scalar.
        pub fn from_bytes(bytes: &[u8; 32]) -> Result<LocalEvmSigner> {
            let inner = PrivateKeySigner::from_bytes(&B256::from(*bytes))
                .map_err(|_| crate::Error::InvalidKey("not a valid secp256k1 private key"))?;
            Ok(LocalEvmSigner { inner })
        }
    }

    impl EvmSigner for LocalEvmSigner {
        fn address(&self) -> Address {
            self.inner.address()
        }

        fn sign_hash(&self, digest: &B256) -> Result<Signature> {
            self.inner
                .sign_hash_sync(digest)
                .map_err(|e| Error::Signing(e.to_string()))
        }
    }

    impl fmt::Debug for LocalEvmSigner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("LocalEvmSigner")
                .field("address", &self.address())
                .finish_non_exhaustive()
        }
    }
}

/// Something that can sign bytes with one Solana (ed25519) key.
pub trait SolanaSigner {
    /// The public key.
    fn pubkey(&self) -> SolanaAddress;

    /// An ed25519 signature over `message`.
    ///
    /// # Errors
    /// [`Error::Signing`] when the signer refuses or fails.
    fn sign_message(&self, message: &[u8]) -> Result<[u8; 64]>;
}

/// An ed25519 keypair held in memory.
#[cfg(feature = "solana")]
pub struct LocalSolanaSigner {
    keypair: solana_keypair::Keypair,
}

#[cfg(feature = "solana")]
impl LocalSolanaSigner {
    /// From the Solana CLI forms: a JSON array of 64 bytes, or a base58 string of those 64
    /// bytes (secret then public half).
    ///
    /// # Errors
    /// [`Error::InvalidKey`]; the message never contains the key.
    pub fn from_text(text: &str) -> Result<LocalSolanaSigner> {
        use zeroize::Zeroizing;
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; 64]);
        if text.starts_with('[') {
            let parsed: Zeroizing<Vec<u8>> =
                Zeroizing::new(serde_json::from_str(text).map_err(|_| {
                    Error::InvalidKey("a Solana keypair JSON must be an array of 64 byte values")
                })?);
            if parsed.len() != 64 {
                return Err(crate::Error::InvalidKey(
                    "a Solana keypair JSON must be an array of 64 byte values",
                ));
            }
            bytes.copy_from_slice(&parsed);
        } else {
            match bs58::decode(text).onto(bytes.as_mut_slice()) {
                Ok(64) => {}
                _ => {
                    return Err(crate::Error::InvalidKey(
                        "a base58 Solana keypair must decode to 64 bytes",
                    ));
                }
            }
        }
        LocalSolanaSigner::from_keypair_bytes(&bytes)
    }

    /// From 64 bytes: the 32-byte secret then the 32-byte public key.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] when the public half does not belong to the secret half.
    pub fn from_keypair_bytes(bytes: &[u8; 64]) -> Result<LocalSolanaSigner> {
        let keypair = solana_keypair::Keypair::try_from(&bytes[..]).map_err(|_| {
            Error::InvalidKey(
                "the public half of the Solana keypair does not match its secret half",
            )
        })?;
        Ok(LocalSolanaSigner { keypair })
    }

    /// The 64 keypair bytes (secret then public), as `solana-keygen` writes them: for saving
    /// a keypair file. A secret: keep it out of logs and drop it soon (it zeroizes itself).
    pub fn keypair_bytes(&self) -> zeroize::Zeroizing<[u8; 64]> {
        zeroize::Zeroizing::new(self.keypair.to_bytes())
    }

    /// From a 32-byte secret seed.
    pub fn from_secret(secret: [u8; 32]) -> LocalSolanaSigner {
        let mut secret = zeroize::Zeroizing::new(secret);
        LocalSolanaSigner {
            keypair: solana_keypair::Keypair::new_from_array(std::mem::take(&mut *secret)),
        }
    }
}

#[cfg(feature = "solana")]
impl SolanaSigner for LocalSolanaSigner {
    fn pubkey(&self) -> SolanaAddress {
        use solana_signer::Signer;
        SolanaAddress::new(self.keypair.pubkey().to_bytes())
    }

    fn sign_message(&self, message: &[u8]) -> Result<[u8; 64]> {
        use solana_signer::Signer;
        let signature = self
            .keypair
            .try_sign_message(message)
            .map_err(|e| crate::Error::Signing(e.to_string()))?;
        Ok(signature.into())
    }
}

#[cfg(feature = "solana")]
impl fmt::Debug for LocalSolanaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSolanaSigner")
            .field("pubkey", &self.pubkey())
            .finish_non_exhaustive()
    }
}

/// Wraps a secret string (a signature, a header value) so that `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub(crate) fn new(value: String) -> Redacted {
        Redacted(value)
    }

    /// The secret itself, for putting on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

impl Drop for Redacted {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::Error;

    #[cfg(feature = "evm")]
    #[test]
    fn evm_keys_never_show() {
        let key = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let signer = LocalEvmSigner::from_hex(key).unwrap();
        assert_eq!(
            signer.address().to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        let debug = format!("{signer:?}");
        assert!(!debug.contains("ac0974"), "{debug}");
        for bad in [
            "",
            "0x12",
            "zz0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
            "0x0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let err = LocalEvmSigner::from_hex(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidKey(_)));
            assert!(!err.to_string().contains("0974bec"));
        }
    }

    #[cfg(feature = "solana")]
    #[test]
    fn solana_keys_load_from_both_cli_forms_and_never_show() {
        let signer = LocalSolanaSigner::from_secret([7; 32]);
        let bytes = signer.keypair.to_bytes();
        let json = serde_json::to_string(&bytes.to_vec()).unwrap();
        let base58 = bs58::encode(bytes).into_string();
        assert_eq!(
            LocalSolanaSigner::from_text(&json).unwrap().pubkey(),
            signer.pubkey()
        );
        assert_eq!(
            LocalSolanaSigner::from_text(&base58).unwrap().pubkey(),
            signer.pubkey()
        );
        assert!(!format!("{signer:?}").contains(&base58[..10]));
        let mut mismatched = bytes;
        mismatched[40] ^= 1;
        assert!(LocalSolanaSigner::from_keypair_bytes(&mismatched).is_err());
        assert!(LocalSolanaSigner::from_text("[1,2,3]").is_err());
        assert!(LocalSolanaSigner::from_text("notbase58!").is_err());
    }

    #[test]
    fn redacted_hides_its_value() {
        let secret = Redacted::new("0xdeadbeef".into());
        assert!(!format!("{secret:?}").contains("dead"));
        assert_eq!(secret.expose(), "0xdeadbeef");
    }
}
