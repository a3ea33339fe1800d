//! End-to-end sealing between a grid client and a node (`grid-and-node.md` §2): X25519, a key
//! from SHA-256 (v1) or HKDF-SHA256 (v2), XChaCha20-Poly1305 with a random 24-byte nonce, and
//! the v2 AAD strings that bind the keys (and, for streams, the chunk's place) into every
//! ciphertext. Sealed blobs are `nonce ‖ ciphertext ‖ tag` in base58; public keys are base58 of
//! 32 bytes. Pure computation: randomness comes in as a closure.
//!
//! Also the key binding (§2.4): a node's ed25519 key signs its X25519 key, so a client can
//! refuse a coordinator that swapped the key it seals to.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// The largest sealed blob accepted, as base58 text. The reference says 8 MiB (§2.3), but
/// base58 is quadratic in the length (see [`crate::base58`]): 8 MiB would take hours to
/// decode. 512 KiB of base58 (a prompt of about 370 KB) decodes in about a second, so that is
/// the ceiling here, on every side: a client refuses to seal more, a node and our coordinator
/// refuse to open more.
pub const MAX_SEALED_B58: usize = 512 * 1024;

/// The largest plaintext [`seal_request`] takes: its blob (nonce, tag, base58's 1.37×) stays
/// under [`MAX_SEALED_B58`].
pub const MAX_SEALED_PLAINTEXT: usize = MAX_SEALED_B58 / 138 * 100 - NONCE_LEN - TAG_LEN;

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HKDF_SALT: &[u8] = b"sgl-e2e-v2-salt";
const INFO_INPUT: &[u8] = b"sgl-e2e-v2-input";
const INFO_OUTPUT: &[u8] = b"sgl-e2e-v2-output";
const X25519_DERIVE: &[u8] = b"sgl-x25519-derive:";
const KEYBIND_TAG: &[u8] = b"SGL-NODE-KEYBIND-v1";

/// What can go wrong opening or checking sealed data. Each names what was wrong; none
/// contains key material or plaintext.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// An algorithm tag this client does not know: refused (fail closed).
    #[error("unknown sealing algorithm `{0}`")]
    UnknownAlgorithm(String),
    /// A key, nonce or blob is not what the format says.
    #[error("malformed sealed data: {0}")]
    Malformed(&'static str),
    /// The sealed blob is over [`MAX_SEALED_B58`] characters of base58 (or a request to
    /// seal over [`MAX_SEALED_PLAINTEXT`] bytes).
    #[error(
        "sealed data of {0} characters or bytes is over the limit (512 KiB of base58, about 370 KB of prompt): send less"
    )]
    TooLarge(usize),
    /// A peer key gives a non-contributory (low-order) shared secret.
    #[error("the peer's key is a low-order point: refused")]
    LowOrderKey,
    /// Authentication failed: tampered, sealed to another key, or with other bound values.
    #[error("cannot open the sealed data: it was tampered with or sealed for someone else")]
    Tampered,
    /// A stream chunk came out of order.
    #[error("stream chunk {got} arrived where chunk {expected} was due (reordered or dropped)")]
    OutOfOrder {
        /// The sequence number due.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// A stream chunk came again.
    #[error("stream chunk {0} arrived twice (replayed)")]
    Replayed(u64),
    /// A chunk came after the final one.
    #[error("stream chunk {0} arrived after the final chunk")]
    AfterFinal(u64),
    /// The stream ended without its final chunk.
    #[error("the stream ended after {0} chunks without its final chunk (truncated)")]
    Truncated(u64),
    /// The node's key binding does not verify.
    #[error("the node's key binding does not verify: {0}")]
    KeyBinding(&'static str),
}

/// The sealing versions (`algorithm` tags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `x25519-xchacha20poly1305` (legacy: SHA-256 of the shared secret, no AAD); also what an
    /// absent tag means.
    V1,
    /// `x25519-xchacha20poly1305-hkdf-v2`.
    V2,
    /// `x25519-xchacha20poly1305-hkdf-v2-stream`.
    V2Stream,
}

impl Algorithm {
    /// The wire tag.
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::V1 => "x25519-xchacha20poly1305",
            Algorithm::V2 => "x25519-xchacha20poly1305-hkdf-v2",
            Algorithm::V2Stream => "x25519-xchacha20poly1305-hkdf-v2-stream",
        }
    }

    /// Reads a tag; `None` (absent) is v1, as the reference says.
    ///
    /// # Errors
    /// [`SealError::UnknownAlgorithm`] for any other tag.
    pub fn parse(tag: Option<&str>) -> Result<Algorithm, SealError> {
        match tag {
            None | Some("x25519-xchacha20poly1305") => Ok(Algorithm::V1),
            Some("x25519-xchacha20poly1305-hkdf-v2") => Ok(Algorithm::V2),
            Some("x25519-xchacha20poly1305-hkdf-v2-stream") => Ok(Algorithm::V2Stream),
            Some(other) => Err(SealError::UnknownAlgorithm(
                other.chars().take(64).collect(),
            )),
        }
    }
}

/// Base58 of 32 bytes.
pub fn b58(bytes: &[u8]) -> String {
    bs58::encode(bytes).into_string()
}

/// A 32-byte public key from base58.
///
/// # Errors
/// [`SealError::Malformed`] when it is not base58 of 32 bytes.
pub fn key_from_b58(text: &str) -> Result<[u8; 32], SealError> {
    let mut key = [0u8; 32];
    match bs58::decode(text.trim()).onto(&mut key) {
        Ok(32) => Ok(key),
        _ => Err(SealError::Malformed(
            "a public key must be base58 of 32 bytes",
        )),
    }
}

/// A node's X25519 secret from its ed25519 seed: SHA-256 of `sgl-x25519-derive:` and the
/// seed (§2.1; not the standard ed25519-to-curve25519 map).
pub fn node_x25519_secret(ed25519_seed: &[u8; 32]) -> StaticSecret {
    let mut hasher = Sha256::new();
    hasher.update(X25519_DERIVE);
    hasher.update(ed25519_seed);
    let digest: Zeroizing<[u8; 32]> = Zeroizing::new(hasher.finalize().into());
    StaticSecret::from(*digest)
}

/// A node's X25519 public key (base58) from its ed25519 seed: what its heartbeat publishes as
/// `encryption_public_key`.
pub fn node_x25519_public(ed25519_seed: &[u8; 32]) -> String {
    b58(PublicKey::from(&node_x25519_secret(ed25519_seed)).as_bytes())
}

fn shared(secret: &StaticSecret, peer: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let shared = secret.diffie_hellman(&PublicKey::from(*peer));
    if !shared.was_contributory() {
        return Err(SealError::LowOrderKey);
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

fn key_for(algorithm: Algorithm, shared: &[u8; 32], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    match algorithm {
        Algorithm::V1 => key.copy_from_slice(&Sha256::digest(shared)),
        Algorithm::V2 | Algorithm::V2Stream => {
            let hkdf = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), shared);
            // 32 bytes is far below HKDF's limit: this cannot fail.
            let _ = hkdf.expand(info, &mut *key);
        }
    }
    key
}

fn seal_blob(
    key: &[u8; 32],
    plaintext: &[u8],
    aad: &[u8],
    random: &mut dyn FnMut(&mut [u8]),
) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    random(&mut nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    // Encryption fails only for plaintexts beyond the cipher's limit (256 GiB).
    let sealed = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    crate::base58::encode(&blob)
}

fn open_blob(key: &[u8; 32], blob_b58: &str, aad: &[u8]) -> Result<Vec<u8>, SealError> {
    if blob_b58.len() > MAX_SEALED_B58 {
        return Err(SealError::TooLarge(blob_b58.len()));
    }
    let blob = crate::base58::decode(blob_b58.trim())
        .map_err(|_| SealError::Malformed("the sealed blob is not base58"))?;
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(SealError::Malformed(
            "the sealed blob is shorter than a nonce and a tag",
        ));
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| SealError::Malformed("the sealed blob's nonce is not 24 bytes"))?;
    XChaCha20Poly1305::new(key.into())
        .decrypt(&XNonce::from(nonce), Payload { msg: sealed, aad })
        .map_err(|_| SealError::Tampered)
}

fn input_aad(node: &str, eph: &str, resp: &str) -> String {
    format!("sgl-aad/v2/input|node={node}|eph={eph}|resp={resp}")
}

fn output_aad(resp: &str, eph: &str) -> String {
    format!("sgl-aad/v2/output|resp={resp}|eph={eph}")
}

fn stream_aad(resp: &str, eph: &str, nonce: &str, seq: u64, last: bool) -> String {
    format!(
        "sgl-aad/v2/stream|resp={resp}|eph={eph}|nonce={nonce}|seq={seq}|final={}",
        u8::from(last)
    )
}

fn random_secret(random: &mut dyn FnMut(&mut [u8])) -> StaticSecret {
    let mut bytes = Zeroizing::new([0u8; 32]);
    random(&mut *bytes);
    StaticSecret::from(*bytes)
}

/// A sealed request (the `enc` object), and the secret that opens its answer.
pub struct SealedRequest {
    /// `enc.ciphertext`.
    pub ciphertext: String,
    /// `enc.client_ephemeral_pubkey`.
    pub client_ephemeral_pubkey: String,
    /// `enc.client_response_pubkey`.
    pub client_response_pubkey: String,
    /// `enc.algorithm`.
    pub algorithm: Algorithm,
    /// Opens the answer (kept by the client, never sent).
    pub response: ResponseKey,
}

impl std::fmt::Debug for SealedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRequest")
            .field("client_ephemeral_pubkey", &self.client_ephemeral_pubkey)
            .field("client_response_pubkey", &self.client_response_pubkey)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The client's response keypair for one request. `Debug` shows only the public half.
pub struct ResponseKey {
    secret: StaticSecret,
    public_b58: String,
}

impl std::fmt::Debug for ResponseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponseKey({})", self.public_b58)
    }
}

/// Seals `plaintext` (the inner request JSON) to a node's X25519 key with v2.
///
/// # Errors
/// [`SealError::Malformed`] for a bad node key; [`SealError::LowOrderKey`];
/// [`SealError::TooLarge`] over [`MAX_SEALED_PLAINTEXT`].
pub fn seal_request(
    node_x25519_b58: &str,
    plaintext: &[u8],
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<SealedRequest, SealError> {
    if plaintext.len() > MAX_SEALED_PLAINTEXT {
        return Err(SealError::TooLarge(plaintext.len()));
    }
    let node = key_from_b58(node_x25519_b58)?;
    let ephemeral = random_secret(random);
    let response = random_secret(random);
    let eph_b58 = b58(PublicKey::from(&ephemeral).as_bytes());
    let resp_b58 = b58(PublicKey::from(&response).as_bytes());
    let secret = shared(&ephemeral, &node)?;
    let key = key_for(Algorithm::V2, &secret, INFO_INPUT);
    let node_b58 = b58(&node);
    let ciphertext = seal_blob(
        &key,
        plaintext,
        input_aad(&node_b58, &eph_b58, &resp_b58).as_bytes(),
        random,
    );
    Ok(SealedRequest {
        ciphertext,
        client_ephemeral_pubkey: eph_b58,
        client_response_pubkey: resp_b58.clone(),
        algorithm: Algorithm::V2,
        response: ResponseKey {
            secret: response,
            public_b58: resp_b58,
        },
    })
}

/// What a node opens: the inner request, where to seal the answer, and the version to answer
/// with.
#[derive(Debug)]
pub struct OpenedRequest {
    /// The inner request JSON bytes.
    pub plaintext: Vec<u8>,
    /// `client_response_pubkey` (base58), when given (v2 always has it).
    pub response_pubkey: Option<String>,
    /// The version the client used (the answer uses the same).
    pub algorithm: Algorithm,
}

/// Opens a sealed request on the node (with its X25519 secret).
///
/// # Errors
/// [`SealError`] for an unknown algorithm, bad keys, a low-order key, or a tampered or
/// misbound ciphertext.
pub fn open_request(
    node_secret: &StaticSecret,
    ciphertext: &str,
    client_ephemeral_b58: &str,
    client_response_b58: Option<&str>,
    algorithm: Option<&str>,
) -> Result<OpenedRequest, SealError> {
    let algorithm = Algorithm::parse(algorithm)?;
    let eph = key_from_b58(client_ephemeral_b58)?;
    let shared = shared(node_secret, &eph)?;
    let plaintext = match algorithm {
        Algorithm::V1 => open_blob(&key_for(Algorithm::V1, &shared, b""), ciphertext, b"")?,
        Algorithm::V2 => {
            let resp = client_response_b58.ok_or(SealError::Malformed(
                "a v2 request carries its response key",
            ))?;
            key_from_b58(resp)?;
            let node_b58 = b58(PublicKey::from(node_secret).as_bytes());
            let aad = input_aad(&node_b58, &b58(&eph), resp.trim());
            open_blob(
                &key_for(Algorithm::V2, &shared, INFO_INPUT),
                ciphertext,
                aad.as_bytes(),
            )?
        }
        Algorithm::V2Stream => {
            return Err(SealError::Malformed(
                "a request is sealed with v1 or v2, not the stream tag",
            ));
        }
    };
    Ok(OpenedRequest {
        plaintext,
        response_pubkey: client_response_b58.map(|r| r.trim().to_owned()),
        algorithm,
    })
}

/// A sealed answer (`sealed_result`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedResult {
    /// `ciphertext`.
    pub ciphertext: String,
    /// `ephemeral_public_key`: the node's ephemeral key.
    pub ephemeral_public_key: String,
    /// `algorithm`.
    pub algorithm: Algorithm,
}

/// Seals an answer to the client's response key (node side), with the request's version.
///
/// # Errors
/// [`SealError::Malformed`] for a bad key or a stream tag; [`SealError::LowOrderKey`].
pub fn seal_result(
    response_b58: &str,
    plaintext: &[u8],
    algorithm: Algorithm,
    random: &mut dyn FnMut(&mut [u8]),
) -> Result<SealedResult, SealError> {
    let resp = key_from_b58(response_b58)?;
    let ephemeral = random_secret(random);
    let eph_b58 = b58(PublicKey::from(&ephemeral).as_bytes());
    let shared = shared(&ephemeral, &resp)?;
    let ciphertext = match algorithm {
        Algorithm::V1 => seal_blob(
            &key_for(Algorithm::V1, &shared, b""),
            plaintext,
            b"",
            random,
        ),
        Algorithm::V2 => seal_blob(
            &key_for(Algorithm::V2, &shared, INFO_OUTPUT),
            plaintext,
            output_aad(&b58(&resp), &eph_b58).as_bytes(),
            random,
        ),
        Algorithm::V2Stream => {
            return Err(SealError::Malformed(
                "a whole answer is sealed with v1 or v2",
            ));
        }
    };
    Ok(SealedResult {
        ciphertext,
        ephemeral_public_key: eph_b58,
        algorithm,
    })
}

impl ResponseKey {
    /// The public key (`client_response_pubkey`).
    pub fn public(&self) -> &str {
        &self.public_b58
    }

    /// Opens a whole sealed answer.
    ///
    /// # Errors
    /// [`SealError`] as for [`open_request`].
    pub fn open_result(
        &self,
        ciphertext: &str,
        ephemeral_b58: &str,
        algorithm: Option<&str>,
    ) -> Result<Vec<u8>, SealError> {
        let algorithm = Algorithm::parse(algorithm)?;
        let eph = key_from_b58(ephemeral_b58)?;
        let shared = shared(&self.secret, &eph)?;
        match algorithm {
            Algorithm::V1 => open_blob(&key_for(Algorithm::V1, &shared, b""), ciphertext, b""),
            Algorithm::V2 => open_blob(
                &key_for(Algorithm::V2, &shared, INFO_OUTPUT),
                ciphertext,
                output_aad(&self.public_b58, &b58(&eph)).as_bytes(),
            ),
            Algorithm::V2Stream => Err(SealError::Malformed(
                "a stream is opened chunk by chunk (ResponseKey::stream)",
            )),
        }
    }

    /// Opens a stream's chunks in order, for the request sealed with `request_nonce` (the
    /// inner request's `nonce`, base58; empty when it had none).
    pub fn stream(self, request_nonce: impl Into<String>) -> StreamOpener {
        StreamOpener {
            response: self,
            request_nonce: request_nonce.into(),
            key: None,
            eph_b58: String::new(),
            next: 0,
            finished: false,
        }
    }
}

/// One sealed stream chunk, as the SSE event carries it (`{seq, final, eph?, ct}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedChunk {
    /// Its place, from 0.
    pub seq: u64,
    /// Whether it is the last.
    pub last: bool,
    /// The node's stream key, on chunk 0 only.
    pub eph: Option<String>,
    /// The sealed blob.
    pub ct: String,
}

/// Seals a stream's chunks (node side): one ephemeral key and one output key for the whole
/// stream, a fresh nonce per chunk, each chunk bound to its place and finality.
pub struct StreamSealer {
    key: Zeroizing<[u8; 32]>,
    resp_b58: String,
    eph_b58: String,
    request_nonce: String,
    next: u64,
}

impl std::fmt::Debug for StreamSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSealer")
            .field("eph", &self.eph_b58)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl StreamSealer {
    /// A sealer for the client at `response_b58`, for the request carrying `request_nonce`.
    ///
    /// # Errors
    /// [`SealError::Malformed`]; [`SealError::LowOrderKey`].
    pub fn new(
        response_b58: &str,
        request_nonce: impl Into<String>,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Result<StreamSealer, SealError> {
        let resp = key_from_b58(response_b58)?;
        let ephemeral = random_secret(random);
        let shared = shared(&ephemeral, &resp)?;
        Ok(StreamSealer {
            key: key_for(Algorithm::V2Stream, &shared, INFO_OUTPUT),
            resp_b58: b58(&resp),
            eph_b58: b58(PublicKey::from(&ephemeral).as_bytes()),
            request_nonce: request_nonce.into(),
            next: 0,
        })
    }

    /// Seals the next chunk.
    pub fn seal(
        &mut self,
        plaintext: &[u8],
        last: bool,
        random: &mut dyn FnMut(&mut [u8]),
    ) -> SealedChunk {
        let seq = self.next;
        self.next = self.next.saturating_add(1);
        let aad = stream_aad(
            &self.resp_b58,
            &self.eph_b58,
            &self.request_nonce,
            seq,
            last,
        );
        SealedChunk {
            seq,
            last,
            eph: (seq == 0).then(|| self.eph_b58.clone()),
            ct: seal_blob(&self.key, plaintext, aad.as_bytes(), random),
        }
    }
}

/// Opens a stream's chunks in order (client side), refusing reordering, replay, chunks after
/// the final one, and (at [`StreamOpener::finish`]) truncation.
pub struct StreamOpener {
    response: ResponseKey,
    request_nonce: String,
    key: Option<Zeroizing<[u8; 32]>>,
    eph_b58: String,
    next: u64,
    finished: bool,
}

impl std::fmt::Debug for StreamOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamOpener")
            .field("next", &self.next)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl StreamOpener {
    /// Opens the next chunk.
    ///
    /// # Errors
    /// [`SealError::OutOfOrder`], [`SealError::Replayed`], [`SealError::AfterFinal`],
    /// [`SealError::Tampered`] (including a wrong `final` flag), [`SealError::Malformed`] (no
    /// key on chunk 0).
    pub fn open(&mut self, chunk: &SealedChunk) -> Result<Vec<u8>, SealError> {
        if self.finished {
            return Err(SealError::AfterFinal(chunk.seq));
        }
        if chunk.seq < self.next {
            return Err(SealError::Replayed(chunk.seq));
        }
        if chunk.seq > self.next {
            return Err(SealError::OutOfOrder {
                expected: self.next,
                got: chunk.seq,
            });
        }
        if self.key.is_none() {
            let eph = chunk.eph.as_deref().ok_or(SealError::Malformed(
                "the first chunk carries the node's stream key",
            ))?;
            let eph = key_from_b58(eph)?;
            let shared = shared(&self.response.secret, &eph)?;
            self.key = Some(key_for(Algorithm::V2Stream, &shared, INFO_OUTPUT));
            self.eph_b58 = b58(&eph);
        }
        let Some(key) = &self.key else {
            return Err(SealError::Malformed("no stream key"));
        };
        let aad = stream_aad(
            self.response.public(),
            &self.eph_b58,
            &self.request_nonce,
            chunk.seq,
            chunk.last,
        );
        let plaintext = open_blob(key, &chunk.ct, aad.as_bytes())?;
        self.next = self.next.saturating_add(1);
        self.finished = chunk.last;
        Ok(plaintext)
    }

    /// Whether the final chunk has been opened.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Ends the stream.
    ///
    /// # Errors
    /// [`SealError::Truncated`] when the final chunk never came.
    pub fn finish(self) -> Result<(), SealError> {
        match self.finished {
            true => Ok(()),
            false => Err(SealError::Truncated(self.next)),
        }
    }
}

/// The 104-byte key-binding blob (§2.4): `SGL-NODE-KEYBIND-v1`, a zero byte, the node id's 16
/// UUID bytes, the ed25519 and X25519 public keys, and `key_version` (u32 little-endian).
pub fn keybind_blob(
    node_id: &uuid::Uuid,
    ed25519_public: &[u8; 32],
    x25519_public: &[u8; 32],
    key_version: u32,
) -> [u8; 104] {
    let mut blob = [0u8; 104];
    blob[..19].copy_from_slice(KEYBIND_TAG);
    // blob[19] stays 0.
    blob[20..36].copy_from_slice(node_id.as_bytes());
    blob[36..68].copy_from_slice(ed25519_public);
    blob[68..100].copy_from_slice(x25519_public);
    blob[100..].copy_from_slice(&key_version.to_le_bytes());
    blob
}

/// Checks that a node's ed25519 key signed its X25519 key (everything base58 as the wire
/// carries it).
///
/// # Errors
/// [`SealError::KeyBinding`] naming what failed.
pub fn verify_keybind(
    node_id: &str,
    ed25519_b58: &str,
    x25519_b58: &str,
    key_version: u32,
    signature_b58: &str,
) -> Result<(), SealError> {
    let id = uuid::Uuid::parse_str(node_id.trim())
        .map_err(|_| SealError::KeyBinding("the node id is not a UUID"))?;
    let ed = key_from_b58(ed25519_b58)
        .map_err(|_| SealError::KeyBinding("the node's ed25519 key is not base58 of 32 bytes"))?;
    let x = key_from_b58(x25519_b58)
        .map_err(|_| SealError::KeyBinding("the node's X25519 key is not base58 of 32 bytes"))?;
    let mut signature = [0u8; 64];
    match bs58::decode(signature_b58.trim()).onto(&mut signature) {
        Ok(64) => {}
        _ => {
            return Err(SealError::KeyBinding(
                "the signature is not base58 of 64 bytes",
            ));
        }
    }
    let key = ed25519_dalek::VerifyingKey::from_bytes(&ed)
        .map_err(|_| SealError::KeyBinding("the node's ed25519 key is not a curve point"))?;
    key.verify_strict(
        &keybind_blob(&id, &ed, &x, key_version),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .map_err(|_| SealError::KeyBinding("the signature is not the node key's over its X25519 key"))
}

/// Signs the key binding with a node's ed25519 seed (node side): base58 of the signature.
pub fn sign_keybind(node_id: &uuid::Uuid, ed25519_seed: &[u8; 32], key_version: u32) -> String {
    use ed25519_dalek::Signer as _;
    let signing = ed25519_dalek::SigningKey::from_bytes(ed25519_seed);
    let x = PublicKey::from(&node_x25519_secret(ed25519_seed));
    let blob = keybind_blob(
        node_id,
        signing.verifying_key().as_bytes(),
        x.as_bytes(),
        key_version,
    );
    b58(&signing.sign(&blob).to_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn counter() -> impl FnMut(&mut [u8]) {
        let mut n = 0u8;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                n = n.wrapping_add(1);
                *b = n;
            }
        }
    }

    /// The cross-language vector of §2.5 (facts from the reference node's and the Python
    /// SDK's tests; this implementation is ours): node seed `[0x42; 32]`, a v2 request sealed
    /// elsewhere.
    #[test]
    fn the_cross_language_v2_vector_opens() {
        let node = node_x25519_secret(&[0x42; 32]);
        let opened = open_request(
            &node,
            "gbEA6dFFVPxdar6e8QsjPKWj7xHcBo32nAqweQC5arnt4M5LmHhjREKoUTdVZsU6mmkxKu1XmvEo4oG8EUySndq2ytTyzDgyfMjyBSmPE2fqjdPDzKYtdrC2kZbAfCXv227GczHgmtQBqchA5qMB5ydxgxYnk9V8jb8sifTjHM61iEQkisdwYCqna",
            "DQFdwcBsqukJEBn9UNfQruaTHKHxHFMVRA2B5qZuFdfB",
            Some("2L54SXdEHm5mraF2X2GPid3m4PSkwVehEvhk487mWTx8"),
            Some("x25519-xchacha20poly1305-hkdf-v2"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(opened.plaintext).unwrap(),
            r#"{"messages":[{"role":"user","content":"cross-lang v2 test"}],"temperature":0.7,"max_tokens":512}"#
        );
        assert_eq!(opened.algorithm, Algorithm::V2);
        // A relay that swaps the response key breaks it: the key is bound in the AAD.
        let swapped = open_request(
            &node,
            "gbEA6dFFVPxdar6e8QsjPKWj7xHcBo32nAqweQC5arnt4M5LmHhjREKoUTdVZsU6mmkxKu1XmvEo4oG8EUySndq2ytTyzDgyfMjyBSmPE2fqjdPDzKYtdrC2kZbAfCXv227GczHgmtQBqchA5qMB5ydxgxYnk9V8jb8sifTjHM61iEQkisdwYCqna",
            "DQFdwcBsqukJEBn9UNfQruaTHKHxHFMVRA2B5qZuFdfB",
            Some("11111111111111111111111111111112"),
            Some("x25519-xchacha20poly1305-hkdf-v2"),
        );
        assert!(swapped.is_err());
    }

    #[test]
    fn a_request_and_its_answer_round_trip_in_both_versions() {
        let seed = [7u8; 32];
        let node = node_x25519_secret(&seed);
        let node_pub = b58(PublicKey::from(&node).as_bytes());
        let mut random = counter();
        let sealed = seal_request(&node_pub, b"{\"messages\":[]}", &mut random).unwrap();
        let opened = open_request(
            &node,
            &sealed.ciphertext,
            &sealed.client_ephemeral_pubkey,
            Some(&sealed.client_response_pubkey),
            Some(sealed.algorithm.tag()),
        )
        .unwrap();
        assert_eq!(opened.plaintext, b"{\"messages\":[]}");
        for algorithm in [Algorithm::V1, Algorithm::V2] {
            let answer = seal_result(
                opened.response_pubkey.as_deref().unwrap(),
                b"answer",
                algorithm,
                &mut random,
            )
            .unwrap();
            let plain = sealed
                .response
                .open_result(
                    &answer.ciphertext,
                    &answer.ephemeral_public_key,
                    Some(algorithm.tag()),
                )
                .unwrap();
            assert_eq!(plain, b"answer");
            // One flipped character: refused.
            let mut tampered = answer.ciphertext.clone();
            let last = tampered.pop().unwrap();
            tampered.push(if last == '2' { '3' } else { '2' });
            assert!(
                sealed
                    .response
                    .open_result(
                        &tampered,
                        &answer.ephemeral_public_key,
                        Some(algorithm.tag())
                    )
                    .is_err()
            );
        }
        assert_eq!(
            Algorithm::parse(Some("aes-gcm")),
            Err(SealError::UnknownAlgorithm("aes-gcm".into()))
        );
    }

    #[test]
    fn a_low_order_key_is_refused() {
        let node = node_x25519_secret(&[1; 32]);
        // The all-zero point gives an all-zero shared secret.
        let zero = b58(&[0u8; 32]);
        assert_eq!(
            seal_request(&zero, b"x", &mut counter()).unwrap_err(),
            SealError::LowOrderKey
        );
        assert_eq!(
            open_request(&node, "x", &zero, None, None).unwrap_err(),
            SealError::LowOrderKey
        );
    }

    #[test]
    fn streams_refuse_reordering_replay_truncation_and_tampering() {
        let node = node_x25519_secret(&[9; 32]);
        let node_pub = b58(PublicKey::from(&node).as_bytes());
        let mut random = counter();
        let chunks = |random: &mut dyn FnMut(&mut [u8])| {
            let sealed = seal_request(&node_pub, b"{}", random).unwrap();
            let mut sealer =
                StreamSealer::new(&sealed.client_response_pubkey, "nonce58", random).unwrap();
            let chunks: Vec<SealedChunk> = (0..3)
                .map(|i| sealer.seal(format!("part {i}").as_bytes(), i == 2, random))
                .collect();
            (sealed.response, chunks)
        };

        let (response, all) = chunks(&mut random);
        let mut opener = response.stream("nonce58");
        let text: Vec<Vec<u8>> = all.iter().map(|c| opener.open(c).unwrap()).collect();
        assert_eq!(
            text,
            vec![b"part 0".to_vec(), b"part 1".to_vec(), b"part 2".to_vec()]
        );
        assert_eq!(opener.open(&all[2]), Err(SealError::AfterFinal(2)));
        assert!(opener.finish().is_ok());

        let (response, all) = chunks(&mut random);
        let mut opener = response.stream("nonce58");
        opener.open(&all[0]).unwrap();
        assert_eq!(opener.open(&all[0]), Err(SealError::Replayed(0)));
        assert_eq!(
            opener.open(&all[2]),
            Err(SealError::OutOfOrder {
                expected: 1,
                got: 2
            })
        );
        opener.open(&all[1]).unwrap();
        assert_eq!(opener.finish(), Err(SealError::Truncated(2)));

        // A chunk claiming to be final when it was not, or another request's nonce: refused.
        let (response, all) = chunks(&mut random);
        let mut opener = response.stream("nonce58");
        opener.open(&all[0]).unwrap();
        let mut lying = all[1].clone();
        lying.last = true;
        assert_eq!(opener.open(&lying), Err(SealError::Tampered));
        let (response, all) = chunks(&mut random);
        let mut other = response.stream("another nonce");
        assert_eq!(other.open(&all[0]), Err(SealError::Tampered));
    }

    #[test]
    fn the_key_binding_verifies_and_catches_a_swapped_key() {
        let seed = [0x42u8; 32];
        let id = uuid::Uuid::parse_str("6f1c2b8e-3d4a-4b5c-9d6e-7f8091a2b3c4").unwrap();
        let signature = sign_keybind(&id, &seed, 1);
        let ed = b58(ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .as_bytes());
        let x = b58(PublicKey::from(&node_x25519_secret(&seed)).as_bytes());
        verify_keybind(&id.to_string(), &ed, &x, 1, &signature).unwrap();
        let blob = keybind_blob(&id, &[1; 32], &[2; 32], 1);
        assert_eq!(&blob[..20], b"SGL-NODE-KEYBIND-v1\0");
        assert_eq!(&blob[100..], &[1, 0, 0, 0]);
        // A coordinator that swaps in its own X25519 key, or another version: refused.
        let swapped = b58(PublicKey::from(&node_x25519_secret(&[1; 32])).as_bytes());
        assert!(verify_keybind(&id.to_string(), &ed, &swapped, 1, &signature).is_err());
        assert!(verify_keybind(&id.to_string(), &ed, &x, 2, &signature).is_err());
        assert!(verify_keybind("not-a-uuid", &ed, &x, 1, &signature).is_err());
    }
}
