//! The node runtime: what `sgl start` runs and what tests run in process.
//!
//! [`Node::start`] spawns, on the current tokio runtime, a heartbeat loop (§3.5), a WebSocket
//! loop (§3.6) and one task per job, and returns a [`NodeHandle`]. Jobs from both loops go
//! through one admission (each id once, within the slots); each job is completed, failed with a reason,
//! or handed back at shutdown — never dropped silently.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grid_proto::node::{Capabilities, Heartbeat, KEY_VERSION, PendingJob};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::Result;
use crate::coordinator::{Coordinator, NodeClient};
use crate::dispatch::{Admission, Refusal};
use crate::engine::Engine;
use crate::files::TokenPersister;
use crate::identity::{AuthToken, Identity, Keypair};
use crate::url::OrchestratorUrl;

/// The reason a job is failed with when the node hands it back at shutdown.
pub const HANDED_BACK: &str = "node shutting down; job handed back";

/// How chunk posts (and result posts) are retried before the client is taken as gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// The delay after the first failure; it doubles after each.
    pub initial_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(200),
        }
    }
}

/// How the runtime behaves. Build with [`NodeConfig::new`] and change the fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The coordinator.
    pub orchestrator_url: OrchestratorUrl,
    /// The node's id, token and key.
    pub identity: Identity,
    /// Between heartbeats (default 5 s).
    pub heartbeat_interval: Duration,
    /// Jobs at once (default 1; sent as `max_concurrent_jobs`).
    pub slots: u32,
    /// Hex SHA-256 of the running executable, when known.
    pub binary_hash: Option<String>,
    /// Whether to keep the push WebSocket (default true; the heartbeat alone also works).
    pub websocket: bool,
    /// The first reconnect delay (default 1 s).
    pub reconnect_initial: Duration,
    /// The longest reconnect delay (default 30 s).
    pub reconnect_max: Duration,
    /// Chunk and result posts.
    pub post_retry: RetryPolicy,
    /// How long [`NodeHandle::shutdown`] lets running jobs finish before handing them back
    /// (default 30 s).
    pub drain_timeout: Duration,
    /// Where rotated tokens are persisted (`node.json`); `None` keeps them in memory only.
    pub persist_token: Option<TokenPersister>,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConfig")
            .field("orchestrator_url", &self.orchestrator_url)
            .field("identity", &self.identity)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("slots", &self.slots)
            .field("websocket", &self.websocket)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

impl NodeConfig {
    /// The defaults of `sgl start` for this coordinator and identity.
    pub fn new(orchestrator_url: OrchestratorUrl, identity: Identity) -> NodeConfig {
        NodeConfig {
            orchestrator_url,
            identity,
            heartbeat_interval: Duration::from_secs(5),
            slots: 1,
            binary_hash: None,
            websocket: true,
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
            post_retry: RetryPolicy::default(),
            drain_timeout: Duration::from_secs(30),
            persist_token: None,
        }
    }
}

/// What the runtime is doing.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NodeSnapshot {
    /// Jobs in flight.
    pub active_jobs: Vec<String>,
    /// Jobs completed (a stream the client left counts: its partial usage was settled).
    pub completed: u64,
    /// Jobs failed (with a reason posted, or a stream error chunk).
    pub failed: u64,
    /// Jobs handed back at shutdown.
    pub handed_back: u64,
    /// Whether the WebSocket is connected.
    pub connected: bool,
    /// Whether the last heartbeat was answered with success.
    pub last_heartbeat_ok: bool,
    /// Whether the node is shutting down (takes no new jobs).
    pub draining: bool,
}

/// The node runtime.
#[derive(Debug)]
pub struct Node;

impl Node {
    /// Starts the node on the current tokio runtime: heartbeats at once, then every interval,
    /// and (unless turned off) the WebSocket.
    ///
    /// # Errors
    /// [`crate::Error::Network`] when the HTTP client cannot be built.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn` does).
    pub fn start(config: NodeConfig, engine: Option<Arc<dyn Engine>>) -> Result<NodeHandle> {
        let client = Coordinator::new(config.orchestrator_url.clone())?
            .with_node(&config.identity.node_id, config.identity.token.clone());
        let keypair = config.identity.keypair.clone();
        let x25519 = grid_proto::seal::node_x25519_secret(keypair.seed());
        let (stop, _) = watch::channel(false);
        let (handback, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            encryption_public: keypair.encryption_public_b58(),
            keybind: keypair.keybind(&config.identity.node_id),
            keypair,
            x25519,
            client,
            engine,
            slots: usize::try_from(config.slots.max(1)).unwrap_or(1),
            admission: Mutex::new(Admission::new()),
            active: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            handed_back: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            last_heartbeat_ok: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            handback,
            stop,
            jobs: Mutex::new(JoinSet::new()),
            idle: Notify::new(),
            config,
        });
        let mut loops = vec![tokio::spawn(heartbeat_loop(shared.clone()))];
        if shared.config.websocket {
            loops.push(tokio::spawn(crate::ws::run(shared.clone())));
        }
        tracing::info!(
            node_id = %shared.config.identity.node_id,
            coordinator = %shared.config.orchestrator_url,
            slots = shared.slots,
            model = shared.engine.as_ref().map(|e| e.model()).unwrap_or_default(),
            "node started"
        );
        Ok(NodeHandle { shared, loops })
    }
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    shared: Arc<Shared>,
    loops: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// What the node is doing now.
    pub fn status(&self) -> NodeSnapshot {
        self.shared.snapshot()
    }

    /// Graceful stop: takes no new jobs, lets running ones finish for up to the drain timeout,
    /// hands the rest back (`/fail` with [`HANDED_BACK`]), then stops heartbeating and closes
    /// the WebSocket. Returns the final snapshot.
    pub async fn shutdown(mut self) -> NodeSnapshot {
        let shared = self.shared.clone();
        let shared = &shared;
        shared.draining.store(true, Ordering::SeqCst);
        let running = shared.active.load(Ordering::SeqCst);
        if running > 0 {
            tracing::info!(running, "draining: waiting for running jobs");
        }
        let deadline = Instant::now() + shared.config.drain_timeout;
        if !shared.wait_idle(deadline).await {
            tracing::warn!(
                running = shared.active.load(Ordering::SeqCst),
                "drain timeout: handing the running jobs back"
            );
            shared.handback.send_replace(true);
            // Each hand-back is one `/fail` post, bounded by its retries and timeouts.
            let grace = crate::coordinator::TOTAL_TIMEOUT
                .saturating_mul(shared.config.post_retry.attempts.max(1))
                .saturating_add(Duration::from_secs(1));
            if !shared.wait_idle(Instant::now() + grace).await {
                tracing::error!("jobs did not hand back in time: dropping them");
            }
        }
        shared.stop.send_replace(true);
        shared.lock_jobs().abort_all();
        for handle in std::mem::take(&mut self.loops) {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        tracing::info!("node stopped");
        shared.snapshot()
    }

    /// Stops at once, as a kill would: every task dropped, nothing more posted.
    pub fn abort(self) {
        // Drop does it.
    }

    fn stop_now(&mut self) {
        self.shared.stop.send_replace(true);
        for handle in &self.loops {
            handle.abort();
        }
        self.shared.lock_jobs().abort_all();
    }
}

/// A handle dropped without [`NodeHandle::shutdown`] stops the node as
/// [`NodeHandle::abort`] does, so no task outlives it.
impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// State shared by the loops and the jobs.
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    pub(crate) client: NodeClient,
    pub(crate) keypair: Keypair,
    pub(crate) x25519: x25519_dalek::StaticSecret,
    pub(crate) encryption_public: String,
    keybind: Option<String>,
    pub(crate) engine: Option<Arc<dyn Engine>>,
    slots: usize,
    admission: Mutex<Admission>,
    active: AtomicUsize,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) handed_back: AtomicU64,
    pub(crate) connected: AtomicBool,
    last_heartbeat_ok: AtomicBool,
    draining: AtomicBool,
    pub(crate) handback: watch::Sender<bool>,
    pub(crate) stop: watch::Sender<bool>,
    jobs: Mutex<JoinSet<()>>,
    idle: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("node_id", &self.config.identity.node_id)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn snapshot(&self) -> NodeSnapshot {
        NodeSnapshot {
            active_jobs: self.lock_admission().active_ids(),
            completed: self.completed.load(Ordering::SeqCst),
            failed: self.failed.load(Ordering::SeqCst),
            handed_back: self.handed_back.load(Ordering::SeqCst),
            connected: self.connected.load(Ordering::SeqCst),
            last_heartbeat_ok: self.last_heartbeat_ok.load(Ordering::SeqCst),
            draining: self.draining.load(Ordering::SeqCst),
        }
    }

    fn lock_admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        self.admission
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until no job runs, or `deadline`; whether none runs.
    async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => {
                    return self.active.load(Ordering::SeqCst) == 0;
                }
            }
        }
    }

    /// Takes a job from either loop: once per id, while a slot is free and the node is not
    /// draining.
    pub(crate) fn dispatch(self: &Arc<Self>, job: PendingJob, source: &'static str) {
        if *self.stop.borrow() {
            tracing::debug!(job_id = %job.id, source, "stopped: job not taken");
            return;
        }
        if self.draining.load(Ordering::SeqCst) {
            if !self.lock_admission().refuse(&job.id) {
                return;
            }
            // Handed back at once, so the coordinator routes it elsewhere instead of waiting
            // for it to time out.
            tracing::info!(job_id = %job.id, source, "draining: job handed back");
            let shared = self.clone();
            tokio::spawn(async move {
                crate::job::hand_back(&shared, &job.id).await;
            });
            return;
        }
        let admitted = self
            .lock_admission()
            .admit(&job.id, &self.active, self.slots);
        match admitted {
            Err(Refusal::Duplicate) => {
                tracing::debug!(job_id = %job.id, source, "job already taken");
            }
            Err(Refusal::Full) => {
                tracing::debug!(job_id = %job.id, source, "every slot busy: job left for later");
            }
            Ok(()) => {
                tracing::info!(job_id = %job.id, job_type = %job.job_type, source, "job taken");
                let guard = SlotGuard {
                    shared: self.clone(),
                    id: job.id.clone(),
                };
                let mut jobs = self.lock_jobs();
                while jobs.try_join_next().is_some() {}
                jobs.spawn(crate::job::run(self.clone(), job, guard));
            }
        }
    }

    /// Swaps in a rotated token and persists it.
    pub(crate) fn rotate_token(&self, token: String, source: &'static str) {
        let token = AuthToken::new(token);
        self.client.set_token(token.clone());
        match &self.config.persist_token {
            Some(persist) => match persist(&token) {
                Ok(()) => tracing::info!(source, "auth token rotated and saved"),
                Err(error) => {
                    tracing::error!(source, %error, "auth token rotated but not saved");
                }
            },
            None => tracing::info!(source, "auth token rotated (kept in memory)"),
        }
    }

    async fn heartbeat(self: &Arc<Self>) {
        let (models, capabilities) = match &self.engine {
            Some(engine) => {
                // Nothing is advertised while draining: no new jobs are routed here.
                let healthy = !self.draining.load(Ordering::SeqCst) && engine.healthy().await;
                let models = match healthy {
                    true => vec![engine.model()],
                    false => Vec::new(),
                };
                let capabilities = Capabilities {
                    streaming: true,
                    context_size: engine.context_size(),
                    embeddings: engine.supports_embeddings(),
                };
                (models, capabilities)
            }
            None => (
                Vec::new(),
                Capabilities {
                    streaming: true,
                    context_size: 0,
                    embeddings: false,
                },
            ),
        };
        let active = self.active.load(Ordering::SeqCst);
        let heartbeat = Heartbeat {
            current_load: load(active, self.slots),
            available_models: models,
            encryption_public_key: self.encryption_public.clone(),
            encryption_public_key_signature: self.keybind.clone(),
            key_version: self.keybind.as_ref().map(|_| KEY_VERSION),
            capabilities,
            active_job_ids: self.lock_admission().active_ids(),
            binary_hash: self.config.binary_hash.clone(),
            max_concurrent_jobs: self.config.slots.max(1),
        };
        match self.client.heartbeat(&heartbeat).await {
            Ok(answer) => {
                if !self.last_heartbeat_ok.swap(true, Ordering::SeqCst) {
                    tracing::info!("heartbeat accepted");
                }
                if let Some(token) = answer.new_auth_token {
                    self.rotate_token(token, "heartbeat");
                }
                for job in answer.pending_jobs {
                    self.dispatch(job, "heartbeat");
                }
            }
            Err(error) => {
                self.last_heartbeat_ok.store(false, Ordering::SeqCst);
                tracing::warn!(%error, "heartbeat failed");
            }
        }
    }
}

/// Returns once `flag` is true (never, if its sender is gone).
pub(crate) async fn stopped(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Busy slots over slots.
fn load(active: usize, slots: usize) -> f64 {
    let active = u32::try_from(active).unwrap_or(u32::MAX);
    let slots = u32::try_from(slots.max(1)).unwrap_or(u32::MAX);
    (f64::from(active) / f64::from(slots)).min(1.0)
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut interval = tokio::time::interval(shared.config.heartbeat_interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = crate::node::stopped(&mut stop) => return,
            _ = interval.tick() => {}
        }
        tokio::select! {
            () = crate::node::stopped(&mut stop) => return,
            () = shared.heartbeat() => {}
        }
    }
}

/// Holds a job's slot; frees it (and wakes a draining shutdown) when the job's task ends,
/// however it ends.
pub(crate) struct SlotGuard {
    shared: Arc<Shared>,
    id: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared
            .lock_admission()
            .release(&self.id, &self.shared.active);
        self.shared.idle.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_is_busy_slots_over_slots() {
        assert_eq!(load(0, 4), 0.0);
        assert_eq!(load(1, 4), 0.25);
        assert_eq!(load(4, 4), 1.0);
        assert_eq!(load(1, 0), 1.0);
    }
}
