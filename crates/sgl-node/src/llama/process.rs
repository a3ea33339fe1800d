//! Starting `llama-server` (§4.2) and draining its output (§8.2).
//!
//! The child's stdout and stderr are piped and read continuously by two tasks until they
//! close, whatever the engine is doing: a chatty server can never fill a pipe and block (the
//! reference node pipes stderr and never reads it, so a full pipe wedges llama-server while
//! `/health` still passes). Lines go to the tracing log under the target
//! `sgl_node::llama_server` — error lines at `warn`, the rest at `debug` — cut at
//! [`MAX_LINE`] bytes; the bytes read are counted for `sgl status`.
//!
//! The server runs in a process group of its own, so a terminal's Ctrl-C (or a service
//! manager's SIGTERM, with `KillMode=mixed`) reaches only `sgl`, which drains its running jobs
//! before it stops the engine. The server listens on 127.0.0.1 only, with a fresh random API key per start passed in its
//! environment (`LLAMA_ARG_API_KEY`, readable only by the operator's own user), so another
//! local user cannot use the engine behind the node's back. `/health` needs no key.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The longest log line kept; the rest of a longer line is dropped (still read).
pub const MAX_LINE: usize = 4096;

/// A started engine process: where it listens and how to stop it.
pub struct Instance {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The key its API takes (`Authorization: Bearer`), if any.
    pub api_key: Option<Zeroizing<String>>,
    /// The process.
    pub process: Box<dyn Process>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("base_url", &self.base_url)
            .field("pid", &self.process.pid())
            .finish_non_exhaustive()
    }
}

/// A running engine process.
#[async_trait::async_trait]
pub trait Process: Send {
    /// Its OS process id, when it is one.
    fn pid(&self) -> Option<u32>;
    /// Resolves when it exits, saying how.
    async fn exited(&mut self) -> String;
    /// Kills it and waits for it to be gone.
    async fn kill(&mut self);
}

/// Starts engine processes; the supervisor calls it at start and at every restart.
#[async_trait::async_trait]
pub trait Launch: Send + Sync {
    /// Starts one.
    ///
    /// # Errors
    /// [`Error::Engine`] when it cannot be started.
    async fn launch(&self) -> Result<Instance>;
}

/// How to run `llama-server`: `-m <gguf> --host 127.0.0.1 --port <p> -ngl <layers>
/// -c <slots × context> -t <threads> -b <batch> --parallel <slots> --cont-batching
/// --alias <model>`.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The binary ([`crate::llama::find_llama_server`]).
    pub binary: PathBuf,
    /// The GGUF file.
    pub model_path: PathBuf,
    /// The name the API reports.
    pub model_name: String,
    /// The port to try first (`--inference-port`, default 8081); a free one is taken when it
    /// is busy.
    pub port: u16,
    /// Tokens per slot.
    pub context: u32,
    /// Parallel slots.
    pub slots: u32,
    /// `-t`.
    pub threads: u32,
    /// `-ngl`.
    pub gpu_layers: u32,
    /// `-b`.
    pub batch: u32,
    /// Extra environment, e.g. `LD_LIBRARY_PATH` for a bundled build.
    pub env: Vec<(String, String)>,
}

impl ServerCommand {
    /// The arguments for `port`.
    pub fn args(&self, port: u16) -> Vec<String> {
        let total = self.context.saturating_mul(self.slots.max(1));
        vec![
            "-m".into(),
            self.model_path.display().to_string(),
            "--host".into(),
            Ipv4Addr::LOCALHOST.to_string(),
            "--port".into(),
            port.to_string(),
            "-ngl".into(),
            self.gpu_layers.to_string(),
            "-c".into(),
            total.to_string(),
            "-t".into(),
            self.threads.to_string(),
            "-b".into(),
            self.batch.to_string(),
            "--parallel".into(),
            self.slots.max(1).to_string(),
            "--cont-batching".into(),
            "--alias".into(),
            self.model_name.clone(),
        ]
    }
}

/// Starts a real `llama-server` per [`ServerCommand`], draining its output.
#[derive(Debug)]
pub struct SpawnLauncher {
    command: ServerCommand,
    drained: Arc<AtomicU64>,
}

impl SpawnLauncher {
    /// A launcher for `command`.
    pub fn new(command: ServerCommand) -> SpawnLauncher {
        SpawnLauncher {
            command,
            drained: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Bytes read from the processes' stdout and stderr so far, over every start.
    pub fn drained(&self) -> Arc<AtomicU64> {
        self.drained.clone()
    }
}

/// `preferred` when it can be bound on loopback now, else one the OS picks.
fn free_port(preferred: u16) -> Result<u16> {
    if preferred != 0 && TcpListener::bind((Ipv4Addr::LOCALHOST, preferred)).is_ok() {
        return Ok(preferred);
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr: SocketAddr| addr.port())
        .map_err(|e| Error::Engine(format!("no free loopback port for llama-server: {e}")))
}

fn api_key() -> Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 24]);
    getrandom::fill(bytes.as_mut())
        .map_err(|e| Error::Engine(format!("the OS random source failed: {e}")))?;
    let mut key = Zeroizing::new(String::with_capacity(48));
    for byte in bytes.iter() {
        key.push_str(&format!("{byte:02x}"));
    }
    Ok(key)
}

#[async_trait::async_trait]
impl Launch for SpawnLauncher {
    async fn launch(&self) -> Result<Instance> {
        let port = free_port(self.command.port)?;
        let key = api_key()?;
        let mut command = Command::new(&self.command.binary);
        command
            .args(self.command.args(port))
            .envs(
                self.command
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .env("LLAMA_ARG_API_KEY", key.as_str())
            // systemd's socket is for `sgl` alone (`NotifyAccess=main`).
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group: a Ctrl-C at the terminal reaches `sgl`, which drains its jobs
        // and then stops the engine, not both at once.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command.spawn().map_err(|e| {
            Error::Engine(format!(
                "cannot start {}: {e}",
                self.command.binary.display()
            ))
        })?;
        let pid = child.id();
        let last_error = Arc::new(std::sync::Mutex::new(None));
        let mut drains = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            drains.push(tokio::spawn(drain(
                stdout,
                "stdout",
                self.drained.clone(),
                last_error.clone(),
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            drains.push(tokio::spawn(drain(
                stderr,
                "stderr",
                self.drained.clone(),
                last_error.clone(),
            )));
        }
        tracing::info!(
            pid,
            port,
            binary = %self.command.binary.display(),
            "llama-server started"
        );
        Ok(Instance {
            base_url: format!("http://127.0.0.1:{port}"),
            api_key: Some(key),
            process: Box::new(ChildProcess {
                child,
                drains,
                last_error,
            }),
        })
    }
}

struct ChildProcess {
    child: Child,
    drains: Vec<tokio::task::JoinHandle<()>>,
    /// The last error line the server wrote, told with its exit.
    last_error: LastError,
}

type LastError = Arc<std::sync::Mutex<Option<String>>>;

#[async_trait::async_trait]
impl Process for ChildProcess {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn exited(&mut self) -> String {
        let how = match self.child.wait().await {
            Ok(status) => status.to_string(),
            Err(error) => format!("its status could not be read: {error}"),
        };
        // Its pipes close with it: let the drains read its last words (bounded, in case a
        // child of its own holds them open).
        let drains = std::mem::take(&mut self.drains);
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(1),
            futures_util::future::join_all(drains),
        )
        .await;
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match last {
            Some(line) => format!("{how}; its last error: {line}"),
            None => how,
        }
    }

    async fn kill(&mut self) {
        if let Err(error) = self.child.kill().await {
            tracing::debug!(%error, "llama-server was already gone");
        }
    }
}

/// Reads `pipe` to its end, line by line into the log.
pub(crate) async fn drain(
    mut pipe: impl AsyncRead + Unpin,
    stream: &'static str,
    drained: Arc<AtomicU64>,
    last_error: LastError,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut cut = false;
    loop {
        let read = match pipe.read(&mut buffer).await {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(stream, %error, "reading llama-server's output failed");
                break;
            }
        };
        drained.fetch_add(read as u64, Ordering::Relaxed);
        for &byte in &buffer[..read] {
            if byte == b'\n' {
                log_line(stream, &line, cut, &last_error);
                line.clear();
                cut = false;
            } else if line.len() < MAX_LINE {
                line.push(byte);
            } else {
                cut = true;
            }
        }
    }
    if !line.is_empty() {
        log_line(stream, &line, cut, &last_error);
    }
}

/// The most of an error line kept for the status.
const MAX_ERROR_LINE: usize = 300;

fn log_line(stream: &'static str, line: &[u8], cut: bool, last_error: &LastError) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    let cut = if cut { " [line cut]" } else { "" };
    // llama.cpp marks a line's level with a lone letter after the timestamp: ` E ` is an
    // error.
    if text.contains(" E ") || text.starts_with("error") {
        tracing::warn!(target: "sgl_node::llama_server", stream, "{text}{cut}");
        *last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some(text.chars().take(MAX_ERROR_LINE).collect());
    } else {
        tracing::debug!(target: "sgl_node::llama_server", stream, "{text}{cut}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_command_line_is_the_references() {
        let command = ServerCommand {
            binary: "/opt/sgl/bin/llama-server".into(),
            model_path: "/models/m.gguf".into(),
            model_name: "m".into(),
            port: 8081,
            context: 4096,
            slots: 2,
            threads: 6,
            gpu_layers: 99,
            batch: 512,
            env: Vec::new(),
        };
        assert_eq!(
            command.args(9000).join(" "),
            "-m /models/m.gguf --host 127.0.0.1 --port 9000 -ngl 99 -c 8192 -t 6 -b 512 --parallel 2 --cont-batching --alias m"
        );
    }

    #[test]
    fn a_busy_port_gives_way_to_a_free_one() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = busy.local_addr().unwrap().port();
        let port = free_port(taken).unwrap();
        assert_ne!(port, taken);
        assert_ne!(port, 0);
        drop(busy);
        assert_eq!(free_port(taken).unwrap(), taken);
    }

    #[test]
    fn api_keys_are_fresh_hex() {
        let (a, b) = (api_key().unwrap(), api_key().unwrap());
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(*a, *b);
    }

    #[tokio::test]
    async fn draining_reads_everything_and_cuts_long_lines() {
        let (mut writer, reader) = tokio::io::duplex(1024);
        let drained = Arc::new(AtomicU64::new(0));
        let last_error = LastError::default();
        let task = tokio::spawn(drain(reader, "stderr", drained.clone(), last_error.clone()));
        // Far more than the pipe holds, in lines longer than the cut.
        let line = format!("{}\n", "x".repeat(MAX_LINE * 3));
        let mut written = 0u64;
        for _ in 0..200 {
            tokio::io::AsyncWriteExt::write_all(&mut writer, line.as_bytes())
                .await
                .unwrap();
            written += line.len() as u64;
        }
        drop(writer);
        task.await.unwrap();
        assert_eq!(drained.load(Ordering::Relaxed), written);
        assert_eq!(*last_error.lock().unwrap(), None);
        let (mut writer, reader) = tokio::io::duplex(64);
        let task = tokio::spawn(drain(reader, "stderr", drained, last_error.clone()));
        tokio::io::AsyncWriteExt::write_all(
            &mut writer,
            b"0.01 I loading\n0.02 E failed to load model 'x.gguf'\n0.03 I bye",
        )
        .await
        .unwrap();
        drop(writer);
        task.await.unwrap();
        assert_eq!(
            last_error.lock().unwrap().as_deref(),
            Some("0.02 E failed to load model 'x.gguf'")
        );
    }
}
