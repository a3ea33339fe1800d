//! Wallet-signature auth for the compute API's management endpoints (`X402-COMPUTE-AUTH` v1).
//!
//! The client signs nine lines joined by `\n` (no trailing newline):
//!
//! ```text
//! X402-COMPUTE-AUTH
//! v1
//! <chain>
//! <address>            (EVM: lowercased)
//! <METHOD>
//! <path>               (no scheme, host or query)
//! <sha256 hex of the exact body bytes>
//! <timestamp, unix ms>
//! <nonce, 32 lowercase hex>
//! ```
//!
//! and sends six headers: `X-Auth-Address`, `X-Auth-Chain`, `X-Auth-Signature`,
//! `X-Auth-Timestamp`, `X-Auth-Nonce`, `X-Auth-Sig-Encoding`. EVM chains sign with EIP-191
//! `personal_sign` (hex); Solana with raw ed25519 (standard base64). [`verify`] is the matching
//! server side; nonce single-use is the server's to enforce with the returned [`AuthIdentity`].

use std::fmt;
use std::str::FromStr;

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::address::SolanaAddress;
use crate::clock::{Clock, Entropy};
use crate::signer::{Redacted, SolanaSigner};
use crate::{Error, Result};

/// `X-Auth-Address`
pub const HEADER_ADDRESS: &str = "X-Auth-Address";
/// `X-Auth-Chain`
pub const HEADER_CHAIN: &str = "X-Auth-Chain";
/// `X-Auth-Signature`
pub const HEADER_SIGNATURE: &str = "X-Auth-Signature";
/// `X-Auth-Timestamp`
pub const HEADER_TIMESTAMP: &str = "X-Auth-Timestamp";
/// `X-Auth-Nonce`
pub const HEADER_NONCE: &str = "X-Auth-Nonce";
/// `X-Auth-Sig-Encoding`
pub const HEADER_SIG_ENCODING: &str = "X-Auth-Sig-Encoding";

/// The chain named in `X-Auth-Chain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthChain {
    /// `base` (EVM).
    Base,
    /// `megaeth` (EVM).
    Megaeth,
    /// `robinhood` (EVM).
    Robinhood,
    /// `solana`.
    Solana,
}

impl AuthChain {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthChain::Base => "base",
            AuthChain::Megaeth => "megaeth",
            AuthChain::Robinhood => "robinhood",
            AuthChain::Solana => "solana",
        }
    }

    /// Whether signatures are EIP-191 (hex) rather than ed25519 (base64).
    pub fn is_evm(self) -> bool {
        self != AuthChain::Solana
    }
}

impl FromStr for AuthChain {
    type Err = Error;

    fn from_str(text: &str) -> Result<AuthChain> {
        match text.trim().to_ascii_lowercase().as_str() {
            "base" => Ok(AuthChain::Base),
            "megaeth" => Ok(AuthChain::Megaeth),
            "robinhood" => Ok(AuthChain::Robinhood),
            "solana" => Ok(AuthChain::Solana),
            _ => Err(Error::AuthRejected(format!(
                "unknown auth chain `{text}`: expected base, megaeth, robinhood or solana"
            ))),
        }
    }
}

impl fmt::Display for AuthChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six auth headers for one request. `Debug` hides the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthHeaders {
    address: String,
    chain: AuthChain,
    signature: Redacted,
    timestamp_ms: u64,
    nonce: String,
}

impl AuthHeaders {
    /// `(name, value)` pairs to add to the request.
    pub fn pairs(&self) -> [(&'static str, String); 6] {
        [
            (HEADER_ADDRESS, self.address.clone()),
            (HEADER_CHAIN, self.chain.as_str().to_owned()),
            (HEADER_SIGNATURE, self.signature.expose().to_owned()),
            (HEADER_TIMESTAMP, self.timestamp_ms.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (
                HEADER_SIG_ENCODING,
                if self.chain.is_evm() { "hex" } else { "base64" }.to_owned(),
            ),
        ]
    }

    /// The nonce used (public).
    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

/// Lowercase hex SHA-256 of the exact body bytes (empty body included).
pub fn body_sha256_hex(body: &[u8]) -> String {
    alloy_primitives::hex::encode(Sha256::digest(body))
}

/// The path as signed: no query string.
fn signed_path(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// The nine-line message.
pub fn message(
    chain: AuthChain,
    address: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp_ms: u64,
    nonce: &str,
) -> String {
    format!(
        "X402-COMPUTE-AUTH\nv1\n{chain}\n{address}\n{}\n{}\n{}\n{timestamp_ms}\n{nonce}",
        method.to_ascii_uppercase(),
        signed_path(path),
        body_sha256_hex(body)
    )
}

fn fresh_nonce(rng: &mut dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    alloy_primitives::hex::encode(bytes)
}

/// Signs a request with an EVM key (`personal_sign`, hex).
///
/// # Errors
/// [`Error::AuthRejected`] for `AuthChain::Solana`; [`Error::Signing`] from the signer.
#[cfg(feature = "evm")]
pub fn sign_evm(
    signer: &dyn crate::signer::EvmSigner,
    chain: AuthChain,
    method: &str,
    path: &str,
    body: &[u8],
    clock: &dyn Clock,
    rng: &mut dyn Entropy,
) -> Result<AuthHeaders> {
    if !chain.is_evm() {
        return Err(Error::AuthRejected(
            "an EVM key cannot sign for the solana auth chain".to_owned(),
        ));
    }
    let address = format!("{:#x}", signer.address());
    let timestamp_ms = clock.now_unix_ms();
    let nonce = fresh_nonce(rng);
    let text = message(chain, &address, method, path, body, timestamp_ms, &nonce);
    let signature = signer.sign_personal_message(text.as_bytes())?;
    let signature = alloy_primitives::hex::encode_prefixed(signature.as_bytes());
    Ok(AuthHeaders {
        address,
        chain,
        signature: Redacted::new(signature),
        timestamp_ms,
        nonce,
    })
}

/// Signs a request with a Solana key (ed25519, base64).
///
/// # Errors
/// [`Error::Signing`] from the signer.
pub fn sign_solana(
    signer: &dyn SolanaSigner,
    method: &str,
    path: &str,
    body: &[u8],
    clock: &dyn Clock,
    rng: &mut dyn Entropy,
) -> Result<AuthHeaders> {
    let address = signer.pubkey().to_string();
    let timestamp_ms = clock.now_unix_ms();
    let nonce = fresh_nonce(rng);
    let text = message(
        AuthChain::Solana,
        &address,
        method,
        path,
        body,
        timestamp_ms,
        &nonce,
    );
    let signature = crate::encoding::encode(&signer.sign_message(text.as_bytes())?);
    Ok(AuthHeaders {
        address,
        chain: AuthChain::Solana,
        signature: Redacted::new(signature),
        timestamp_ms,
        nonce,
    })
}

/// What the message covers of a request: its method, path (the query is dropped) and exact
/// body bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// `GET`, `POST`, `DELETE`, ….
    pub method: &'a str,
    /// The URL path.
    pub path: &'a str,
    /// The body bytes sent (empty for none).
    pub body: &'a [u8],
}

/// Signs a request with an outside signer (an OWS wallet, a hardware key): `sign` gets the
/// message text and returns the signature as the chain encodes it (EVM: `0x` and 130 hex
/// characters; Solana: standard base64 of 64 bytes). `address` is the signer's (an EVM one
/// is lowercased here, as the scheme wants).
///
/// # Errors
/// What `sign` returns; [`Error::Signing`] when its signature is not in the chain's encoding.
pub fn sign_with(
    chain: AuthChain,
    address: &str,
    request: RequestParts<'_>,
    clock: &dyn Clock,
    rng: &mut dyn Entropy,
    sign: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<AuthHeaders> {
    let RequestParts { method, path, body } = request;
    let address = match chain.is_evm() {
        true => address.to_ascii_lowercase(),
        false => address.to_owned(),
    };
    let timestamp_ms = clock.now_unix_ms();
    let nonce = fresh_nonce(rng);
    let text = message(chain, &address, method, path, body, timestamp_ms, &nonce);
    let signature = sign(&text)?;
    let well_formed = match chain.is_evm() {
        true => {
            signature.len() == 132
                && signature.starts_with("0x")
                && signature[2..].bytes().all(|b| b.is_ascii_hexdigit())
        }
        false => crate::encoding::decode("the signature", &signature)
            .is_ok_and(|bytes| bytes.len() == 64),
    };
    if !well_formed {
        return Err(Error::Signing(format!(
            "the outside signer's signature is not {}",
            if chain.is_evm() {
                "0x and 130 hex characters"
            } else {
                "64 bytes in standard base64"
            }
        )));
    }
    Ok(AuthHeaders {
        address,
        chain,
        signature: Redacted::new(signature),
        timestamp_ms,
        nonce,
    })
}

/// Who signed a request that passed [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthIdentity {
    /// The chain.
    pub chain: AuthChain,
    /// The address as sent (lowercase hex for EVM, base58 for Solana).
    pub address: String,
    /// The request's timestamp.
    pub timestamp_ms: u64,
    /// The nonce, which the server must accept only once.
    pub nonce: String,
}

/// Verifies the six headers of a request against its method, path and exact body bytes, at
/// `now_ms`, accepting timestamps within `window_ms` either side.
///
/// # Errors
/// [`Error::AuthRejected`] naming what is missing or wrong (never echoing the signature).
pub fn verify(
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
    now_ms: u64,
    window_ms: u64,
) -> Result<AuthIdentity> {
    let get = |name: &'static str| -> Result<&str> {
        headers
            .get(name)
            .ok_or_else(|| Error::AuthRejected(format!("missing {name} header")))?
            .to_str()
            .map_err(|_| Error::AuthRejected(format!("{name} is not ASCII")))
    };
    let chain: AuthChain = get(HEADER_CHAIN)?.parse()?;
    let address = get(HEADER_ADDRESS)?.trim();
    let signature = get(HEADER_SIGNATURE)?.trim();
    let timestamp_ms: u64 = get(HEADER_TIMESTAMP)?.trim().parse().map_err(|_| {
        Error::AuthRejected(format!("{HEADER_TIMESTAMP} must be unix milliseconds"))
    })?;
    let nonce = get(HEADER_NONCE)?.trim();
    if nonce.len() != 32
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Error::AuthRejected(format!(
            "{HEADER_NONCE} must be 32 lowercase hex characters"
        )));
    }
    if let Ok(encoding) = get(HEADER_SIG_ENCODING) {
        let expected = if chain.is_evm() { "hex" } else { "base64" };
        if !encoding.trim().eq_ignore_ascii_case(expected) {
            return Err(Error::AuthRejected(format!(
                "{HEADER_SIG_ENCODING} must be {expected} for {chain}"
            )));
        }
    }
    if timestamp_ms.abs_diff(now_ms) > window_ms {
        return Err(Error::AuthRejected(format!(
            "timestamp is outside the ±{} s window; check the clock",
            window_ms / 1000
        )));
    }
    let text = message(chain, address, method, path, body, timestamp_ms, nonce);
    if chain.is_evm() {
        verify_evm(address, signature, &text)?;
    } else {
        verify_solana(address, signature, &text)?;
    }
    Ok(AuthIdentity {
        chain,
        address: address.to_owned(),
        timestamp_ms,
        nonce: nonce.to_owned(),
    })
}

#[cfg(feature = "evm")]
fn verify_evm(address: &str, signature: &str, text: &str) -> Result<()> {
    let reject = |why: &str| Error::AuthRejected(why.to_owned());
    if address.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(reject("X-Auth-Address must be the lowercased EVM address"));
    }
    let expected = crate::address::parse_evm(address)
        .map_err(|_| reject("X-Auth-Address is not an EVM address"))?;
    let bytes = alloy_primitives::hex::decode(signature)
        .map_err(|_| reject("X-Auth-Signature must be 0x hex"))?;
    let signature = alloy_primitives::Signature::from_raw(&bytes)
        .map_err(|_| reject("X-Auth-Signature must be 65 bytes"))?;
    let recovered = signature
        .recover_address_from_msg(text.as_bytes())
        .map_err(|_| reject("signature does not recover"))?;
    if recovered != expected {
        return Err(reject("signature was not made by X-Auth-Address"));
    }
    Ok(())
}

#[cfg(not(feature = "evm"))]
fn verify_evm(_: &str, _: &str, _: &str) -> Result<()> {
    Err(Error::AuthRejected(
        "EVM wallet auth needs the `evm` feature".to_owned(),
    ))
}

#[cfg(feature = "solana")]
fn verify_solana(address: &str, signature: &str, text: &str) -> Result<()> {
    let reject = |why: &str| Error::AuthRejected(why.to_owned());
    let key: SolanaAddress = address
        .parse()
        .map_err(|_| reject("X-Auth-Address is not a Solana address"))?;
    let bytes = crate::encoding::decode("X-Auth-Signature", signature)
        .map_err(|_| reject("X-Auth-Signature must be base64"))?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| reject("X-Auth-Signature must be 64 bytes"))?;
    if !solana_signature::Signature::from(bytes).verify(key.as_bytes(), text.as_bytes()) {
        return Err(reject("signature was not made by X-Auth-Address"));
    }
    Ok(())
}

#[cfg(not(feature = "solana"))]
fn verify_solana(_: &str, _: &str, _: &str) -> Result<()> {
    let _ = SolanaAddress::new;
    Err(Error::AuthRejected(
        "Solana wallet auth needs the `solana` feature".to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    // Most cases need a signing feature; the message format is tested in every build.
    #![cfg_attr(
        not(any(feature = "evm", feature = "solana")),
        allow(dead_code, unused_imports)
    )]

    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::clock::FixedClock;

    const NOW_MS: u64 = 1_760_000_000_000;
    const WINDOW_MS: u64 = 300_000;

    fn to_map(headers: &AuthHeaders) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in headers.pairs() {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn message_is_nine_lines_without_trailing_newline() {
        let text = message(
            AuthChain::Base,
            "0xabc",
            "post",
            "/compute/instances/abc/extend?x=1",
            b"",
            1760000000000,
            "0123456789abcdef0123456789abcdef",
        );
        assert_eq!(
            text,
            "X402-COMPUTE-AUTH\nv1\nbase\n0xabc\nPOST\n/compute/instances/abc/extend\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n1760000000000\n0123456789abcdef0123456789abcdef"
        );
    }

    #[cfg(all(feature = "evm", feature = "solana"))]
    #[test]
    fn an_outside_signer_signs_what_the_server_verifies() {
        use crate::signer::{EvmSigner as _, SolanaSigner as _};
        let evm = crate::signer::LocalEvmSigner::from_hex(
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        let clock = FixedClock::from_unix_ms(NOW_MS);
        // An outside EVM signer, with the address checksummed: lowercased for the scheme.
        let address = evm.address().to_checksum(None);
        let headers = sign_with(
            AuthChain::Base,
            &address,
            RequestParts {
                method: "GET",
                path: "/compute/instances",
                body: b"",
            },
            &clock,
            &mut |b: &mut [u8]| b.fill(7),
            &mut |text: &str| {
                let signature = evm.sign_personal_message(text.as_bytes())?;
                Ok(alloy_primitives::hex::encode_prefixed(signature.as_bytes()))
            },
        )
        .unwrap();
        let identity = verify(
            &to_map(&headers),
            "GET",
            "/compute/instances",
            b"",
            NOW_MS,
            WINDOW_MS,
        )
        .unwrap();
        assert_eq!(identity.address, address.to_ascii_lowercase());

        let solana = crate::signer::LocalSolanaSigner::from_secret([9; 32]);
        let headers = sign_with(
            AuthChain::Solana,
            &solana.pubkey().to_string(),
            RequestParts {
                method: "GET",
                path: "/compute/instances",
                body: b"",
            },
            &clock,
            &mut |b: &mut [u8]| b.fill(7),
            &mut |text: &str| {
                Ok(crate::encoding::encode(
                    &solana.sign_message(text.as_bytes())?,
                ))
            },
        )
        .unwrap();
        assert!(
            verify(
                &to_map(&headers),
                "GET",
                "/compute/instances",
                b"",
                NOW_MS,
                WINDOW_MS
            )
            .is_ok()
        );

        // A signature in the wrong encoding is refused before anything is sent.
        let refused = sign_with(
            AuthChain::Solana,
            "x",
            RequestParts {
                method: "GET",
                path: "/",
                body: b"",
            },
            &clock,
            &mut |b: &mut [u8]| b.fill(7),
            &mut |_: &str| Ok("0xabcdef".to_owned()),
        );
        assert!(matches!(refused, Err(Error::Signing(_))));
    }

    #[cfg(feature = "evm")]
    #[test]
    fn evm_round_trip_and_rejections() {
        let signer = crate::signer::LocalEvmSigner::from_hex(
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )
        .unwrap();
        let body = br#"{"label":"x"}"#;
        let headers = sign_evm(
            &signer,
            AuthChain::Base,
            "POST",
            "/compute/api-keys",
            body,
            &FixedClock::from_unix_ms(NOW_MS),
            &mut |b: &mut [u8]| b.fill(0x11),
        )
        .unwrap();
        assert!(!format!("{headers:?}").contains(headers.pairs()[2].1.as_str()));
        let map = to_map(&headers);
        assert_eq!(
            map.get(HEADER_ADDRESS).unwrap(),
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        assert_eq!(
            map.get(HEADER_NONCE).unwrap(),
            "11111111111111111111111111111111"
        );
        let identity = verify(
            &map,
            "POST",
            "/compute/api-keys",
            body,
            NOW_MS + 1000,
            WINDOW_MS,
        )
        .unwrap();
        assert_eq!(
            identity.address,
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        );
        assert!(verify(&map, "POST", "/compute/api-keys", b"{}", NOW_MS, WINDOW_MS).is_err());
        assert!(verify(&map, "DELETE", "/compute/api-keys", body, NOW_MS, WINDOW_MS).is_err());
        assert!(verify(&map, "POST", "/compute/credits", body, NOW_MS, WINDOW_MS).is_err());
        assert!(
            verify(
                &map,
                "POST",
                "/compute/api-keys",
                body,
                NOW_MS + WINDOW_MS + 1,
                WINDOW_MS
            )
            .is_err()
        );
        let mut upper = map.clone();
        upper.insert(
            HEADER_ADDRESS,
            HeaderValue::from_static("0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266"),
        );
        assert!(verify(&upper, "POST", "/compute/api-keys", body, NOW_MS, WINDOW_MS).is_err());
        let mut missing = map.clone();
        missing.remove(HEADER_NONCE);
        let err = verify(
            &missing,
            "POST",
            "/compute/api-keys",
            body,
            NOW_MS,
            WINDOW_MS,
        )
        .unwrap_err();
        assert!(err.to_string().contains("X-Auth-Nonce"));
        let mut other_chain = map.clone();
        other_chain.insert(HEADER_CHAIN, HeaderValue::from_static("megaeth"));
        assert!(
            verify(
                &other_chain,
                "POST",
                "/compute/api-keys",
                body,
                NOW_MS,
                WINDOW_MS
            )
            .is_err()
        );
        assert!(
            sign_evm(
                &signer,
                AuthChain::Solana,
                "GET",
                "/",
                b"",
                &FixedClock::from_unix_ms(NOW_MS),
                &mut |b: &mut [u8]| b.fill(1)
            )
            .is_err()
        );
    }

    #[cfg(feature = "solana")]
    #[test]
    fn solana_round_trip_and_rejections() {
        let signer = crate::signer::LocalSolanaSigner::from_secret([3; 32]);
        let headers = sign_solana(
            &signer,
            "GET",
            "/compute/instances",
            b"",
            &FixedClock::from_unix_ms(NOW_MS),
            &mut |b: &mut [u8]| b.fill(0x22),
        )
        .unwrap();
        let map = to_map(&headers);
        assert_eq!(map.get(HEADER_SIG_ENCODING).unwrap(), "base64");
        let identity = verify(&map, "GET", "/compute/instances", b"", NOW_MS, WINDOW_MS).unwrap();
        assert_eq!(identity.chain, AuthChain::Solana);
        assert_eq!(identity.address, signer.pubkey().to_string());
        let mut wrong_key = map.clone();
        wrong_key.insert(
            HEADER_ADDRESS,
            HeaderValue::from_str(
                &crate::signer::LocalSolanaSigner::from_secret([4; 32])
                    .pubkey()
                    .to_string(),
            )
            .unwrap(),
        );
        assert!(
            verify(
                &wrong_key,
                "GET",
                "/compute/instances",
                b"",
                NOW_MS,
                WINDOW_MS
            )
            .is_err()
        );
        let mut hex = map.clone();
        hex.insert(HEADER_SIG_ENCODING, HeaderValue::from_static("hex"));
        assert!(verify(&hex, "GET", "/compute/instances", b"", NOW_MS, WINDOW_MS).is_err());
    }
}
