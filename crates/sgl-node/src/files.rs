//! The node's files (§5.2): `node.json` (id, token, wallet, TEE type, coordinator URL, keypair
//! path) and `keypair.json` (a JSON array of 64 numbers: seed ‖ public key) in one directory.
//! The directory is 0700 and the files 0600; modes are repaired whenever the files are loaded.
//! Files are written whole (a temporary file renamed over the old one).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::identity::{AuthToken, Identity, Keypair};
use crate::{Error, Result};

/// `node.json`.
pub const NODE_FILE: &str = "node.json";
/// `keypair.json`.
pub const KEYPAIR_FILE: &str = "keypair.json";

/// What `node.json` holds. `Debug` does not show the token.
#[derive(Clone, Debug)]
pub struct NodeFile {
    /// The id the coordinator gave.
    pub node_id: String,
    /// The current token.
    pub auth_token: AuthToken,
    /// The operator's wallet.
    pub wallet_address: String,
    /// The TEE type registered.
    pub tee_type: String,
    /// The coordinator registered with.
    pub orchestrator_url: String,
    /// Where the key is.
    pub keypair_path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct NodeFileWire {
    node_id: String,
    auth_token: String,
    wallet_address: String,
    tee_type: String,
    orchestrator_url: String,
    keypair_path: PathBuf,
}

/// Persists a rotated token (called by the runtime on a heartbeat's `new_auth_token` or a
/// WebSocket `token_rotated`).
pub type TokenPersister = Arc<dyn Fn(&AuthToken) -> Result<()> + Send + Sync>;

/// The config directory.
#[derive(Clone, Debug)]
pub struct ConfigDir {
    dir: PathBuf,
}

impl ConfigDir {
    /// The directory at `dir` (created when first written).
    pub fn new(dir: PathBuf) -> ConfigDir {
        ConfigDir { dir }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// `node.json`'s path.
    pub fn node_path(&self) -> PathBuf {
        self.dir.join(NODE_FILE)
    }

    /// `runtime.json`'s path: what the running node reports ([`crate::status::RuntimeReport`]).
    pub fn runtime_path(&self) -> PathBuf {
        self.dir.join("runtime.json")
    }

    /// Writes what the running node reports (`runtime.json`, 0600, atomically).
    ///
    /// # Errors
    /// [`Error::Io`] when it cannot be written.
    pub fn save_runtime(&self, report: &crate::status::RuntimeReport) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(report).map_err(|e| Error::BadFile {
            path: self.runtime_path(),
            reason: e.to_string(),
        })?;
        write_private(&self.runtime_path(), &bytes)
    }

    /// What a node running here last reported; `None` when none has (or the file is not
    /// readable as one).
    pub fn load_runtime(&self) -> Option<crate::status::RuntimeReport> {
        let bytes = fs::read(self.runtime_path()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// `keypair.json`'s path.
    pub fn keypair_path(&self) -> PathBuf {
        self.dir.join(KEYPAIR_FILE)
    }

    /// Whether `node.json` exists.
    pub fn is_registered(&self) -> bool {
        self.node_path().exists()
    }

    /// Refuses when `node.json` exists (`init`/`login` do not overwrite a registration).
    ///
    /// # Errors
    /// [`Error::AlreadyRegistered`].
    pub fn ensure_unregistered(&self) -> Result<()> {
        match self.is_registered() {
            true => Err(Error::AlreadyRegistered(self.node_path())),
            false => Ok(()),
        }
    }

    /// The key in `keypair.json`, or a new one written there (a key left by a registration
    /// that failed is reused, so it is never lost after it may have reached the coordinator).
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::BadFile`].
    pub fn load_or_create_keypair(&self) -> Result<Keypair> {
        let path = self.keypair_path();
        if path.exists() {
            return load_keypair(&path);
        }
        let keypair = Keypair::generate()?;
        self.create_dir()?;
        let numbers: Zeroizing<Vec<u16>> =
            Zeroizing::new(keypair.to_bytes().iter().map(|b| u16::from(*b)).collect());
        let json = Zeroizing::new(serde_json::to_vec(&*numbers).map_err(|e| Error::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?);
        write_private(&path, &json)?;
        Ok(keypair)
    }

    /// Writes `node.json`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn save_node(&self, node: &NodeFile) -> Result<()> {
        self.create_dir()?;
        let wire = NodeFileWire {
            node_id: node.node_id.clone(),
            auth_token: node.auth_token.expose().to_owned(),
            wallet_address: node.wallet_address.clone(),
            tee_type: node.tee_type.clone(),
            orchestrator_url: node.orchestrator_url.clone(),
            keypair_path: node.keypair_path.clone(),
        };
        let json =
            Zeroizing::new(
                serde_json::to_vec_pretty(&wire).map_err(|e| Error::BadFile {
                    path: self.node_path(),
                    reason: e.to_string(),
                })?,
            );
        let NodeFileWire { auth_token, .. } = wire;
        drop(Zeroizing::new(auth_token));
        write_private(&self.node_path(), &json)
    }

    /// Reads `node.json` and its key, repairing the modes of the directory and both files.
    ///
    /// # Errors
    /// [`Error::NotRegistered`], [`Error::Io`], [`Error::BadFile`].
    pub fn load(&self) -> Result<(NodeFile, Keypair)> {
        let path = self.node_path();
        if !path.exists() {
            return Err(Error::NotRegistered(path));
        }
        repair_mode(&self.dir, 0o700)?;
        repair_mode(&path, 0o600)?;
        let bytes = Zeroizing::new(fs::read(&path).map_err(|e| Error::io("reading", &path, e))?);
        let wire: NodeFileWire = serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // A relative path is the directory's; an older `sgl` wrote it relative to where it
        // ran, so the file's name in the directory is tried too.
        let keypair_path = match wire.keypair_path.is_absolute() {
            true => wire.keypair_path.clone(),
            false => {
                let joined = self.dir.join(&wire.keypair_path);
                match (joined.exists(), wire.keypair_path.file_name()) {
                    (false, Some(name)) => self.dir.join(name),
                    _ => joined,
                }
            }
        };
        let keypair = load_keypair(&keypair_path)?;
        let node = NodeFile {
            node_id: wire.node_id,
            auth_token: AuthToken::new(wire.auth_token),
            wallet_address: wire.wallet_address,
            tee_type: wire.tee_type,
            orchestrator_url: wire.orchestrator_url,
            keypair_path: wire.keypair_path,
        };
        Ok((node, keypair))
    }

    /// The identity `node.json` and the key make.
    ///
    /// # Errors
    /// As [`ConfigDir::load`].
    pub fn identity(&self) -> Result<(NodeFile, Identity)> {
        let (node, keypair) = self.load()?;
        let identity = Identity {
            node_id: node.node_id.clone(),
            token: node.auth_token.clone(),
            keypair,
        };
        Ok((node, identity))
    }

    /// A [`TokenPersister`] that rewrites `node.json` with the new token.
    pub fn token_persister(&self) -> TokenPersister {
        let dir = self.clone();
        let lock = Mutex::new(());
        Arc::new(move |token: &AuthToken| {
            let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (mut node, _) = dir.load()?;
            node.auth_token = token.clone();
            dir.save_node(&node)
        })
    }

    fn create_dir(&self) -> Result<()> {
        if !self.dir.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                builder.mode(0o700);
            }
            builder
                .create(&self.dir)
                .map_err(|e| Error::io("creating", &self.dir, e))?;
        }
        repair_mode(&self.dir, 0o700)
    }
}

fn load_keypair(path: &Path) -> Result<Keypair> {
    repair_mode(path, 0o600)?;
    let bytes = Zeroizing::new(fs::read(path).map_err(|e| Error::io("reading", path, e))?);
    let numbers: Zeroizing<Vec<u8>> =
        Zeroizing::new(serde_json::from_slice(&bytes).map_err(|_| Error::BadFile {
            path: path.to_path_buf(),
            reason: "expected a JSON array of 64 numbers from 0 to 255".into(),
        })?);
    Keypair::from_bytes(&numbers).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` to a 0600 temporary file beside `path` and renames it over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let _ = fs::remove_file(&temporary);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .map_err(|e| Error::io("writing", &temporary, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("writing", &temporary, e))?;
    drop(file);
    repair_mode(&temporary, 0o600)?;
    fs::rename(&temporary, path).map_err(|e| Error::io("writing", path, e))
}

/// Sets `path`'s permission bits to `mode` when they differ (Unix only).
fn repair_mode(path: &Path, mode: u32) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let metadata = fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
        if metadata.permissions().mode() & 0o777 != mode {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("setting the permissions of", path, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests;
