//! Wallets on disk, so a raw `PRIVATE_KEY` in the environment is optional: an EVM key in the
//! standard Ethereum JSON keystore (scrypt, through alloy-signer-local's `keystore`), and a
//! Solana keypair in `solana-keygen`'s JSON format (64 numbers), mode 0600, beside it.
//!
//! `<wallets>/<name>.json` and `<wallets>/<name>.solana.json`; the password from
//! `X402C_PASSWORD` or a prompt.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use x402_core::{LocalEvmSigner, LocalSolanaSigner};
use zeroize::Zeroizing;

/// A wallet's files.
pub(crate) struct WalletFiles {
    pub(crate) evm: PathBuf,
    pub(crate) solana: PathBuf,
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("`{name}` is not a wallet name (letters, digits, `-`, `_`)");
    }
    Ok(())
}

pub(crate) fn files(dir: &Path, name: &str) -> Result<WalletFiles> {
    check_name(name)?;
    Ok(WalletFiles {
        evm: dir.join(format!("{name}.json")),
        solana: dir.join(format!("{name}.solana.json")),
    })
}

fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    Ok(())
}

/// The password: `X402C_PASSWORD`, or asked on the terminal (twice when `new`).
pub(crate) fn password(new: bool) -> Result<Zeroizing<String>> {
    if let Ok(password) = std::env::var("X402C_PASSWORD")
        && !password.is_empty()
    {
        return Ok(Zeroizing::new(password));
    }
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        bail!("the wallet's password: set X402C_PASSWORD or run on a terminal");
    }
    let mut prompt = dialoguer::Password::new().with_prompt("Wallet password");
    if new {
        prompt = prompt.with_confirmation("Repeat it", "the passwords differ");
    }
    Ok(Zeroizing::new(
        prompt.interact().context("cannot read the password")?,
    ))
}

/// Writes `secret` (32 bytes) as an encrypted keystore; refuses to overwrite one.
pub(crate) fn write_evm(dir: &Path, name: &str, secret: &[u8; 32], password: &str) -> Result<()> {
    let files = files(dir, name)?;
    if files.evm.exists() {
        bail!(
            "a wallet named `{name}` exists ({}); choose another --name",
            files.evm.display()
        );
    }
    private_dir(dir)?;
    let mut rng = rand08::rngs::OsRng;
    alloy_signer_local::PrivateKeySigner::encrypt_keystore(
        dir,
        &mut rng,
        secret,
        password,
        Some(&format!("{name}.json")),
    )
    .map_err(|e| anyhow::anyhow!("cannot write the keystore: {e}"))?;
    #[cfg(unix)]
    {
        // Encrypted, but nobody else's business: like the Solana keypair beside it.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&files.evm, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", files.evm.display()))?;
    }
    Ok(())
}

/// Reads the EVM key of wallet `name`, if it exists.
pub(crate) fn read_evm(dir: &Path, name: &str, password: &str) -> Result<LocalEvmSigner> {
    let files = files(dir, name)?;
    let signer = alloy_signer_local::PrivateKeySigner::decrypt_keystore(&files.evm, password)
        .map_err(|e| match e.to_string().to_lowercase().contains("mac") {
            true => anyhow::anyhow!("wrong password for wallet `{name}`"),
            false => anyhow::anyhow!("cannot read the keystore {}: {e}", files.evm.display()),
        })?;
    let secret = Zeroizing::new(<[u8; 32]>::from(signer.credential().to_bytes()));
    LocalEvmSigner::from_bytes(&secret)
        .map_err(|_| anyhow::anyhow!("the keystore's key is invalid"))
}

/// Writes a Solana keypair (secret ‖ public, as `solana-keygen` does), mode 0600.
pub(crate) fn write_solana(dir: &Path, name: &str, signer: &LocalSolanaSigner) -> Result<()> {
    let files = files(dir, name)?;
    if files.solana.exists() {
        bail!(
            "a Solana keypair named `{name}` exists ({}); choose another --name",
            files.solana.display()
        );
    }
    private_dir(dir)?;
    let bytes = signer.keypair_bytes();
    let text = Zeroizing::new(serde_json::to_string(&bytes[..])?);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    use std::io::Write as _;
    let mut file = options
        .open(&files.solana)
        .with_context(|| format!("cannot create {}", files.solana.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Reads the Solana keypair of wallet `name`, if it exists (refusing one others can read).
pub(crate) fn read_solana(dir: &Path, name: &str) -> Result<Option<LocalSolanaSigner>> {
    let files = files(dir, name)?;
    let text = match std::fs::read_to_string(&files.solana) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot read {}", files.solana.display()));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.solana)?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} can be read by others (mode {:o}): chmod 600 it",
                files.solana.display(),
                mode & 0o777
            );
        }
    }
    LocalSolanaSigner::from_text(text.trim())
        .map(Some)
        .map_err(|_| anyhow::anyhow!("{} is not a Solana keypair", files.solana.display()))
}

/// The wallets in `dir`: names with an EVM keystore, a Solana keypair, or both.
pub(crate) fn list(dir: &Path) -> Result<Vec<(String, bool, bool)>> {
    let mut names = std::collections::BTreeMap::<String, (bool, bool)>::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".solana.json") {
            names.entry(stem.to_owned()).or_default().1 = true;
        } else if let Some(stem) = name.strip_suffix(".json") {
            names.entry(stem.to_owned()).or_default().0 = true;
        }
    }
    Ok(names.into_iter().map(|(n, (e, s))| (n, e, s)).collect())
}

/// The EVM address of a keystore, read without the password (keystores carry it; ours do).
pub(crate) fn keystore_address(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["address"]
        .as_str()
        .map(|a| format!("0x{}", a.trim_start_matches("0x")))
}
