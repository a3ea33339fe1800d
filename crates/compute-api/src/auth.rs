//! How requests are authenticated (reference §2): an `x402c_…` API key (`X-API-Key` only), a
//! wallet signature over the nine-line message (EVM `personal_sign` or Solana ed25519), or an
//! OWS wallet through the external `ows` binary. OWS signs requests only, never payments.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use x402_core::auth::{self, AuthChain};
use x402_core::{Clock, EvmSigner, LocalSolanaSigner, SolanaSigner};
use zeroize::Zeroizing;

use crate::Error;

/// The `X-API-Key` header.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// An `x402c_…` API key. `Debug` shows only its last four characters; zeroized on drop.
#[derive(Clone)]
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    /// Checks the shape (`x402c_` then letters, digits, `_` and `-`).
    ///
    /// # Errors
    /// [`Error::Invalid`] when it is not an `x402c_` key.
    pub fn new(key: impl Into<String>) -> Result<ApiKey, Error> {
        let key = Zeroizing::new(key.into().trim().to_owned());
        let well_formed = key.strip_prefix("x402c_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if !well_formed {
            return Err(Error::Invalid(
                "an API key starts with `x402c_` followed by letters, digits, `_` or `-`".into(),
            ));
        }
        Ok(ApiKey(key))
    }

    /// The key, for the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its last four characters.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len().saturating_sub(4)..]
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey(…{})", self.last4())
    }
}

/// An OWS wallet, signing through the `ows` binary (`ows sign message … --json`).
#[derive(Clone, Debug)]
pub struct Ows {
    bin: PathBuf,
    wallet: String,
}

impl Ows {
    /// `wallet` (a name or id) through the binary at `bin`.
    ///
    /// # Errors
    /// [`Error::Ows`] when `bin` is not an absolute path to an executable file that neither it
    /// nor its directory lets anyone write (reference §2.6).
    pub fn new(bin: impl Into<PathBuf>, wallet: impl Into<String>) -> Result<Ows, Error> {
        let bin = bin.into();
        check_binary(&bin)?;
        Ok(Ows {
            bin,
            wallet: wallet.into(),
        })
    }

    fn run(&self, args: &[&str]) -> Result<String, Error> {
        let output = std::process::Command::new(&self.bin)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Ows(format!("cannot run {}: {e}", self.bin.display())))?;
        if !output.status.success() {
            // Its stderr may echo the message; only the status is shown.
            return Err(Error::Ows(format!(
                "`ows {}` failed ({})",
                args.first().copied().unwrap_or_default(),
                output.status
            )));
        }
        String::from_utf8(output.stdout)
            .map_err(|_| Error::Ows("ows printed something that is not UTF-8".into()))
    }

    /// The wallet's address on `chain`, from `ows wallet list`.
    ///
    /// # Errors
    /// [`Error::Ows`] when the wallet or its address is not in the list.
    pub fn address(&self, chain: AuthChain) -> Result<String, Error> {
        let listing = self.run(&["wallet", "list"])?;
        address_in_listing(&listing, &self.wallet, chain).ok_or_else(|| {
            Error::Ows(format!(
                "`ows wallet list` has no {} address for wallet `{}`",
                if chain.is_evm() { "EVM" } else { "Solana" },
                self.wallet
            ))
        })
    }

    /// Signs `message` as `chain` wants it (EVM `0x` hex, Solana base64).
    fn sign(&self, chain: AuthChain, message: &str) -> Result<String, Error> {
        let ows_chain = if chain.is_evm() {
            "eip155:8453"
        } else {
            "solana"
        };
        let answer = self.run(&[
            "sign",
            "message",
            "--chain",
            ows_chain,
            "--wallet",
            &self.wallet,
            "--message",
            message,
            "--json",
        ])?;
        let json: serde_json::Value = serde_json::from_str(answer.trim())
            .map_err(|_| Error::Ows("`ows sign message --json` did not print JSON".into()))?;
        let hex = json["signature"]
            .as_str()
            .ok_or_else(|| Error::Ows("`ows sign message` printed no signature".into()))?;
        let hex = hex.strip_prefix("0x").unwrap_or(hex);
        if chain.is_evm() {
            return Ok(format!("0x{hex}"));
        }
        let bytes = alloy::hex::decode(hex)
            .map_err(|_| Error::Ows("the Solana signature from ows is not hex".into()))?;
        use base64::Engine as _;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// Reference §2.6: absolute, an existing executable file, and neither it nor its directory
/// writable by everyone.
fn check_binary(bin: &Path) -> Result<(), Error> {
    let refuse = |why: &str| Err(Error::Ows(format!("OWS_BIN {}: {why}", bin.display())));
    if !bin.is_absolute() {
        return refuse("must be an absolute path");
    }
    let Ok(meta) = std::fs::metadata(bin) else {
        return refuse("does not exist");
    };
    if !meta.is_file() {
        return refuse("is not a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o111 == 0 {
            return refuse("is not executable");
        }
        if meta.permissions().mode() & 0o002 != 0 {
            return refuse("is writable by everyone; fix its mode (chmod o-w)");
        }
        if let Some(dir) = bin.parent()
            && let Ok(dir_meta) = std::fs::metadata(dir)
            && dir_meta.permissions().mode() & 0o002 != 0
        {
            return refuse("is in a directory writable by everyone");
        }
    }
    Ok(())
}

/// The address of `wallet` (by `Name:` or `ID:`) for `chain` in `ows wallet list` output:
/// blank-line-separated blocks, addresses as `solana:… → <base58>` or `eip155:… → 0x…`.
fn address_in_listing(listing: &str, wallet: &str, chain: AuthChain) -> Option<String> {
    let block = listing.split("\n\n").find(|block| {
        block.lines().any(|line| {
            let line = line.trim();
            ["Name:", "ID:"].iter().any(|key| {
                line.strip_prefix(key)
                    .is_some_and(|value| value.trim() == wallet)
            })
        })
    })?;
    block.lines().find_map(|line| {
        let (caip, address) = line.trim().split_once('→')?;
        let (caip, address) = (caip.trim(), address.trim());
        match chain.is_evm() {
            true if caip.starts_with("eip155:") && address.starts_with("0x") => {
                Some(address.to_ascii_lowercase())
            }
            false if caip.starts_with("solana:") => Some(address.to_owned()),
            _ => None,
        }
    })
}

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// None: the catalog, and provision or extend paid with x402.
    None,
    /// `X-API-Key` only.
    ApiKey(ApiKey),
    /// A local EVM key, signing for `chain` (`base`, `megaeth` or `robinhood`).
    Evm {
        /// The key.
        signer: Arc<dyn EvmSigner + Send + Sync>,
        /// The auth chain named.
        chain: AuthChain,
    },
    /// A local Solana key.
    Solana(Arc<LocalSolanaSigner>),
    /// An OWS wallet, with its address on `chain` read once.
    Ows {
        /// The wallet.
        ows: Ows,
        /// The auth chain.
        chain: AuthChain,
        /// Its address on that chain.
        address: String,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("Auth::None"),
            Auth::ApiKey(key) => write!(f, "Auth::ApiKey({key:?})"),
            Auth::Evm { signer, chain } => write!(f, "Auth::Evm({chain}, {})", signer.address()),
            Auth::Solana(signer) => write!(f, "Auth::Solana({})", signer.pubkey()),
            Auth::Ows { chain, address, .. } => write!(f, "Auth::Ows({chain}, {address})"),
        }
    }
}

impl Auth {
    /// Whether requests carry any auth.
    pub fn is_some(&self) -> bool {
        !matches!(self, Auth::None)
    }

    /// Who is authenticated, for messages: an address, or an API key's last four.
    pub fn who(&self) -> String {
        match self {
            Auth::None => "nobody".into(),
            Auth::ApiKey(key) => format!("API key …{}", key.last4()),
            Auth::Evm { signer, .. } => format!("{:#x}", signer.address()),
            Auth::Solana(signer) => signer.pubkey().to_string(),
            Auth::Ows { address, .. } => address.clone(),
        }
    }

    /// The headers for one request (a fresh nonce each time).
    ///
    /// # Errors
    /// [`Error::Auth`] when signing fails; [`Error::Ows`] from the OWS binary.
    pub fn headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        clock: &dyn Clock,
        entropy: &mut dyn x402_core::Entropy,
    ) -> Result<Vec<(&'static str, String)>, Error> {
        let signed = match self {
            Auth::None => return Ok(Vec::new()),
            Auth::ApiKey(key) => return Ok(vec![(API_KEY_HEADER, key.expose().to_owned())]),
            Auth::Evm { signer, chain } => {
                auth::sign_evm(&**signer, *chain, method, path, body, clock, entropy)
            }
            Auth::Solana(signer) => {
                auth::sign_solana(&**signer, method, path, body, clock, entropy)
            }
            Auth::Ows {
                ows,
                chain,
                address,
            } => {
                let mut ows_error = None;
                let mut sign = |message: &str| {
                    ows.sign(*chain, message).map_err(|e| {
                        let text = e.to_string();
                        ows_error = Some(e);
                        x402_core::Error::Signing(text)
                    })
                };
                let request = auth::RequestParts { method, path, body };
                let signed = auth::sign_with(*chain, address, request, clock, entropy, &mut sign);
                if let Some(error) = ows_error {
                    return Err(error);
                }
                signed
            }
        }
        .map_err(|e| Error::Auth(format!("cannot sign the request: {e}")))?;
        Ok(signed.pairs().to_vec())
    }
}

/// Names of the wallet-auth headers, which a paid retry of provision and extend must not carry
/// (their nonce is spent).
pub const WALLET_AUTH_HEADERS: [&str; 6] = [
    auth::HEADER_ADDRESS,
    auth::HEADER_CHAIN,
    auth::HEADER_SIGNATURE,
    auth::HEADER_TIMESTAMP,
    auth::HEADER_NONCE,
    auth::HEADER_SIG_ENCODING,
];

/// Chooses the auth chain as the seed scripts do (reference §2.5), extended to the documented
/// `megaeth` and `robinhood`: `COMPUTE_AUTH_CHAIN` if it names one; else by the shape of
/// `WALLET_ADDRESS` (`0x…`: base, else solana); else solana when a Solana key or address is
/// configured; else base. The caller passes the values (this crate reads no environment).
pub fn resolve_chain(
    compute_auth_chain: Option<&str>,
    wallet_address: Option<&str>,
    has_solana: bool,
) -> AuthChain {
    if let Some(chain) = compute_auth_chain.and_then(|c| c.parse::<AuthChain>().ok()) {
        return chain;
    }
    match wallet_address.map(str::trim).filter(|a| !a.is_empty()) {
        Some(address) if address.starts_with("0x") => AuthChain::Base,
        Some(_) => AuthChain::Solana,
        None if has_solana => AuthChain::Solana,
        None => AuthChain::Base,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn api_keys_are_checked_and_hidden() {
        let key = ApiKey::new(" x402c_abcDEF-123_xyz ").unwrap();
        assert_eq!(key.expose(), "x402c_abcDEF-123_xyz");
        assert_eq!(format!("{key:?}"), "ApiKey(…_xyz)");
        for bad in ["", "x402c_", "sk-123", "x402c_a b", "X402C_abc"] {
            assert!(ApiKey::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_chain_is_resolved_as_the_scripts_do() {
        assert_eq!(
            resolve_chain(Some(" SOLANA "), Some("0xab"), false),
            AuthChain::Solana
        );
        assert_eq!(
            resolve_chain(Some("megaeth"), None, false),
            AuthChain::Megaeth
        );
        assert_eq!(
            resolve_chain(Some("ethereum"), Some("0xab"), false),
            AuthChain::Base
        );
        assert_eq!(
            resolve_chain(None, Some("So1ana"), false),
            AuthChain::Solana
        );
        assert_eq!(resolve_chain(None, None, true), AuthChain::Solana);
        assert_eq!(resolve_chain(None, None, false), AuthChain::Base);
    }

    #[test]
    fn ows_addresses_are_read_from_the_wallet_list() {
        let listing = "Name:    other\nID:      1\n  eip155:8453 → 0x1111111111111111111111111111111111111111\n\nName:    agent\nID:      2\n  eip155:8453 → 0xABCDEFabcdef0000000000000000000000000000\n  solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp → 7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV\n";
        assert_eq!(
            address_in_listing(listing, "agent", AuthChain::Base).as_deref(),
            Some("0xabcdefabcdef0000000000000000000000000000")
        );
        assert_eq!(
            address_in_listing(listing, "2", AuthChain::Solana).as_deref(),
            Some("7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV")
        );
        assert_eq!(
            address_in_listing(listing, "missing", AuthChain::Base),
            None
        );
        assert_eq!(
            address_in_listing(listing, "other", AuthChain::Solana),
            None
        );
    }

    #[test]
    fn an_unsafe_ows_binary_is_refused() {
        assert!(
            Ows::new("ows", "w")
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
        assert!(
            Ows::new("/nonexistent/ows", "w")
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }
}
