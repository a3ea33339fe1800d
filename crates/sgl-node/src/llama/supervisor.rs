//! The supervised engine (§4.5, §8.14): [`LlamaServer`] starts an engine process through a
//! [`Launch`], waits for `/health`, and then watches it.
//!
//! - **Health**: probed every [`Supervision::probe_interval`] with a
//!   [`Supervision::probe_timeout`]. After [`Supervision::unhealthy_after`] failures in a row
//!   the model is no longer advertised and the process is restarted.
//! - **Exit**: a process that exits is noticed at once (not at the next probe) and restarted.
//! - **Restarts**: kill, wait [`Supervision::restart_delay`] (doubling up to a minute), start
//!   again. After [`Supervision::max_restarts`] restarts without reaching health in between,
//!   the engine gives up: [`Phase::Failed`]. `sgl start` then exits non-zero, so the service
//!   manager restarts the node.
//! - **Wedge watchdog**: while a job is in flight and no job has made progress (started,
//!   received a token or finished) for [`Supervision::wedge_after`], the engine is restarted.
//!   [`Supervision::max_wedges`] wedges without a completed job in between give up as above.
//! - **In-flight jobs** of a process that is restarted fail at once with the reason (their
//!   requests are cut, not left to time out). A streaming job then reports the tokens it had
//!   delivered ([`crate::job`]).
//!
//! Every timer is tokio's, so tests move time with tokio's paused clock.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use grid_proto::node::ChatRequest;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::api::Api;
use super::process::{Instance, Launch};
use crate::backoff::Backoff;
use crate::engine::{ChatStream, Completion, Engine, StreamEvent};
use crate::{Error, Result};

/// How the engine is watched. [`Supervision::default`] is the reference's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Supervision {
    /// Between health probes (5 s).
    pub probe_interval: Duration,
    /// A probe's limit (3 s).
    pub probe_timeout: Duration,
    /// Failed probes in a row that take the model off the heartbeat and restart (2).
    pub unhealthy_after: u32,
    /// Restarts without reaching health in between before giving up (5).
    pub max_restarts: u32,
    /// The first wait between kill and start (2 s; doubles up to 60 s).
    pub restart_delay: Duration,
    /// How long a start may take to answer `/health` (600 s: large models load slowly).
    pub startup_timeout: Duration,
    /// No progress for this long with a job in flight is a wedge
    /// ([`super::preset::wedge_after`]; 600 s).
    pub wedge_after: Duration,
    /// Wedges without a completed job in between before giving up (3).
    pub max_wedges: u32,
}

impl Default for Supervision {
    fn default() -> Supervision {
        Supervision {
            probe_interval: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(3),
            unhealthy_after: 2,
            max_restarts: 5,
            restart_delay: Duration::from_secs(2),
            startup_timeout: Duration::from_secs(600),
            wedge_after: Duration::from_secs(600),
            max_wedges: 3,
        }
    }
}

/// Where the engine is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Started, waiting for `/health`.
    Starting,
    /// Healthy: the model is advertised.
    Ready,
    /// Being restarted (killed, waiting to start again).
    Restarting,
    /// Gave up after too many restarts or wedges.
    Failed,
    /// Stopped by the node.
    Stopped,
}

/// What the engine is doing, for `sgl status` and the logs. Field names are stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// The model served.
    pub model: String,
    /// See [`Phase`].
    pub phase: Phase,
    /// The process id of the running engine.
    pub pid: Option<u32>,
    /// Where it listens (loopback).
    pub base_url: Option<String>,
    /// Failed health probes in a row.
    pub failed_probes: u32,
    /// Restarts since the engine was last healthy.
    pub restarts: u32,
    /// Restarts since the node started.
    pub total_restarts: u64,
    /// Wedges since a job last completed.
    pub wedges: u32,
    /// Jobs running on the engine now.
    pub in_flight: u32,
    /// Why it was last restarted or gave up.
    pub last_error: Option<String>,
    /// Bytes read from the engine's stdout and stderr.
    pub drained_bytes: u64,
}

impl EngineStatus {
    /// Whether the model is advertised (the engine is ready).
    pub fn advertised(&self) -> bool {
        self.phase == Phase::Ready
    }
}

/// The llama-server engine: a supervised process behind [`Engine`]. Dropping it kills the
/// process.
pub struct LlamaServer {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for LlamaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaServer")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

struct Inner {
    model: String,
    context: u32,
    policy: Supervision,
    launcher: Box<dyn Launch>,
    drained: Option<Arc<AtomicU64>>,
    status: watch::Sender<EngineStatus>,
    /// Bumped at every restart or stop, with why: requests of an older generation are cut.
    generation: watch::Sender<(u64, String)>,
    /// The API of the ready instance, with its generation.
    api: Mutex<Option<(u64, Api)>>,
    last_progress: Mutex<Instant>,
    stop: watch::Sender<bool>,
}

impl LlamaServer {
    /// Starts supervising on the current tokio runtime: the first process starts at once;
    /// the model is advertised once it is healthy.
    ///
    /// `context` is the per-slot context advertised; `drained` is the launcher's counter of
    /// output bytes, shown in the status.
    pub fn start(
        model: String,
        context: u32,
        launcher: Box<dyn Launch>,
        policy: Supervision,
        drained: Option<Arc<AtomicU64>>,
    ) -> LlamaServer {
        let status = EngineStatus {
            model: model.clone(),
            phase: Phase::Starting,
            pid: None,
            base_url: None,
            failed_probes: 0,
            restarts: 0,
            total_restarts: 0,
            wedges: 0,
            in_flight: 0,
            last_error: None,
            drained_bytes: 0,
        };
        let inner = Arc::new(Inner {
            model,
            context,
            policy,
            launcher,
            drained,
            status: watch::channel(status).0,
            generation: watch::channel((0, String::new())).0,
            api: Mutex::new(None),
            last_progress: Mutex::new(Instant::now()),
            stop: watch::channel(false).0,
        });
        let supervisor = inner.clone();
        let task = tokio::spawn(async move {
            // A bug in the supervisor must not leave the engine looking alive.
            let run = std::panic::AssertUnwindSafe(supervise(supervisor.clone()));
            if futures_util::FutureExt::catch_unwind(run).await.is_err() {
                tracing::error!("llama-server's supervisor panicked: the engine is stopped");
                let why = "the engine's supervisor panicked (a bug)";
                supervisor.retire(why);
                supervisor.update(|s| {
                    s.phase = Phase::Failed;
                    s.last_error = Some(why.into());
                });
            }
        });
        LlamaServer { inner, task }
    }

    /// What it is doing now.
    pub fn status(&self) -> EngineStatus {
        let mut status = self.inner.status.borrow().clone();
        if let Some(drained) = &self.inner.drained {
            status.drained_bytes = drained.load(std::sync::atomic::Ordering::Relaxed);
        }
        status
    }

    /// Follows status changes.
    pub fn subscribe(&self) -> watch::Receiver<EngineStatus> {
        self.inner.status.subscribe()
    }

    /// Stops supervising and kills the process; running requests fail.
    pub async fn stop(&self) {
        self.inner.stop.send_replace(true);
        let mut status = self.inner.status.subscribe();
        let _ = status
            .wait_for(|s| matches!(s.phase, Phase::Stopped | Phase::Failed))
            .await;
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        // The instance (and its child, killed on drop) goes with the task.
        self.task.abort();
    }
}

impl Inner {
    fn update(&self, change: impl FnOnce(&mut EngineStatus)) {
        self.status.send_modify(change);
    }

    /// Takes the model off and cuts the requests of the current instance, saying `why`.
    fn retire(&self, why: &str) {
        self.api
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        self.generation.send_modify(|(g, reason)| {
            *g += 1;
            why.clone_into(reason);
        });
    }

    fn progress(&self) {
        *self
            .last_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
    }

    fn since_progress(&self) -> Duration {
        self.last_progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .elapsed()
    }

    /// The ready instance's API, or why there is none.
    fn ready(&self) -> Result<(u64, Api)> {
        let api = self
            .api
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        api.ok_or_else(|| {
            let status = self.status.borrow();
            Error::Engine(format!(
                "llama-server is not ready ({:?}{})",
                status.phase,
                status
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))
        })
    }

    fn busy(self: &Arc<Self>) -> Busy {
        self.progress();
        self.update(|s| s.in_flight = s.in_flight.saturating_add(1));
        Busy {
            inner: self.clone(),
        }
    }

    /// A job finished on the engine: wedges no longer count against it.
    fn completed(&self) {
        self.progress();
        self.update(|s| s.wedges = 0);
    }

    /// `error` from a request of `generation`; when the connection to the engine failed (the
    /// process died, say), the supervisor is given a moment to notice, and the restart's reason
    /// is told instead.
    async fn explain(&self, generation: u64, error: Error) -> Error {
        if !matches!(error, Error::EngineUnreachable(_)) {
            return error;
        }
        match tokio::time::timeout(RESTART_NOTICE, self.restarted(generation)).await {
            Ok(restarted) => restarted,
            Err(_) => error,
        }
    }

    /// Resolves when the engine is restarted or stopped after `generation`, with why.
    async fn restarted(&self, generation: u64) -> Error {
        let mut receiver = self.generation.subscribe();
        let reason = match receiver.wait_for(|(g, _)| *g != generation).await {
            Ok(current) => current.1.clone(),
            Err(_) => "the engine is gone".into(),
        };
        Error::Engine(format!(
            "llama-server was restarted while the job ran ({reason})"
        ))
    }
}

/// How long a failed request waits to learn whether the engine is being restarted.
const RESTART_NOTICE: Duration = Duration::from_secs(1);

/// A job on the engine; counted in `in_flight` until dropped.
struct Busy {
    inner: Arc<Inner>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.inner.progress();
        self.inner
            .update(|s| s.in_flight = s.in_flight.saturating_sub(1));
    }
}

#[async_trait::async_trait]
impl Engine for LlamaServer {
    fn model(&self) -> String {
        self.inner.model.clone()
    }

    async fn healthy(&self) -> bool {
        self.inner.status.borrow().advertised()
    }

    fn context_size(&self) -> u32 {
        self.inner.context
    }

    /// Collected from a stream: every token is progress for the watchdog, so a long whole
    /// answer is not taken for a wedge.
    async fn chat(&self, request: &ChatRequest) -> Result<Completion> {
        let mut events = self.chat_stream(request).await?;
        let mut content = String::new();
        while let Some(event) = events.next().await {
            match event? {
                StreamEvent::Delta(text) => content.push_str(&text),
                StreamEvent::Done(usage) => return Ok(Completion { content, usage }),
            }
        }
        Err(Error::Engine(
            "llama-server's answer ended before it was complete".into(),
        ))
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let (generation, api) = self.inner.ready()?;
        let busy = self.inner.busy();
        let events = tokio::select! {
            events = api.chat_stream(request) => match events {
                Ok(events) => events,
                Err(error) => return Err(self.inner.explain(generation, error).await),
            },
            error = self.inner.restarted(generation) => return Err(error),
        };
        let state = Watched {
            events: Box::pin(events),
            inner: self.inner.clone(),
            generation,
            _busy: busy,
            ended: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            },
        )))
    }

    async fn count_tokens(&self, text: &str) -> Result<u64> {
        let (generation, api) = self.inner.ready()?;
        tokio::select! {
            count = api.count_tokens(text) => count,
            error = self.inner.restarted(generation) => Err(error),
        }
    }
}

/// A stream from the engine, cut when the engine restarts.
struct Watched {
    events: ChatStream,
    inner: Arc<Inner>,
    generation: u64,
    _busy: Busy,
    ended: bool,
}

impl Watched {
    async fn next(&mut self) -> Option<Result<StreamEvent>> {
        if self.ended {
            return None;
        }
        let item = tokio::select! {
            item = self.events.next() => item,
            error = self.inner.restarted(self.generation) => Some(Err(error)),
        };
        let item = match item {
            Some(Err(error)) => Some(Err(self.inner.explain(self.generation, error).await)),
            other => other,
        };
        match &item {
            Some(Ok(StreamEvent::Delta(_))) => self.inner.progress(),
            Some(Ok(StreamEvent::Done(_))) => {
                self.ended = true;
                self.inner.completed();
            }
            Some(Err(_)) | None => self.ended = true,
        }
        item
    }
}

/// Why a watched instance is left.
enum Leave {
    Restart(String),
    Stop,
}

async fn supervise(inner: Arc<Inner>) {
    let policy = inner.policy;
    let mut stop = inner.stop.subscribe();
    let mut backoff = Backoff::new(policy.restart_delay, Duration::from_secs(60));
    loop {
        inner.update(|s| {
            s.phase = Phase::Starting;
            s.failed_probes = 0;
        });
        let leave = match inner.launcher.launch().await {
            Ok(instance) => run_instance(&inner, instance, &mut stop, &mut backoff).await,
            Err(error) => Leave::Restart(format!("it could not be started: {error}")),
        };
        let reason = match leave {
            Leave::Stop => {
                inner.update(|s| {
                    s.phase = Phase::Stopped;
                    s.pid = None;
                });
                tracing::info!("llama-server stopped");
                return;
            }
            Leave::Restart(reason) => reason,
        };
        let (restarts, wedges) = {
            let status = inner.status.borrow();
            (status.restarts, status.wedges)
        };
        let give_up = match () {
            () if wedges >= policy.max_wedges => Some(format!(
                "{wedges} wedges without a completed job in between"
            )),
            () if restarts >= policy.max_restarts => Some(format!(
                "{restarts} restarts without becoming healthy in between"
            )),
            () => None,
        };
        if let Some(why) = give_up {
            tracing::error!(%reason, "llama-server: giving up after {why}");
            inner.update(|s| {
                s.phase = Phase::Failed;
                s.last_error = Some(format!("gave up after {why}; last: {reason}"));
            });
            return;
        }
        let delay = backoff.next_delay();
        tracing::warn!(%reason, delay_ms = delay.as_millis() as u64, "llama-server: restarting");
        inner.update(|s| {
            s.restarts = s.restarts.saturating_add(1);
            s.total_restarts = s.total_restarts.saturating_add(1);
            s.last_error = Some(reason);
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = crate::node::stopped(&mut stop) => {
                inner.update(|s| s.phase = Phase::Stopped);
                return;
            }
        }
    }
}

/// Waits for `instance` to be healthy, then watches it until it must be restarted (killed
/// here) or the engine stops.
async fn run_instance(
    inner: &Arc<Inner>,
    mut instance: Instance,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Leave {
    let policy = inner.policy;
    inner.update(|s| {
        s.pid = instance.process.pid();
        s.base_url = Some(instance.base_url.clone());
    });
    let api = match Api::new(
        &instance.base_url,
        instance.api_key.as_deref().map(String::as_str),
    ) {
        Ok(api) => api,
        Err(error) => {
            instance.process.kill().await;
            return Leave::Restart(error.to_string());
        }
    };
    let leave = watch_instance(inner, &mut instance, &api, stop, backoff, policy).await;
    // Take the model off and cut the running requests before the process goes.
    match &leave {
        Leave::Restart(reason) => {
            inner.update(|s| {
                s.phase = Phase::Restarting;
                s.last_error = Some(reason.clone());
            });
            inner.retire(reason);
        }
        Leave::Stop => inner.retire("the node is stopping"),
    }
    instance.process.kill().await;
    inner.update(|s| s.pid = None);
    leave
}

async fn watch_instance(
    inner: &Arc<Inner>,
    instance: &mut Instance,
    api: &Api,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
    policy: Supervision,
) -> Leave {
    // Starting: `/health` every second until it answers ok.
    let deadline = Instant::now() + policy.startup_timeout;
    let mut last = String::new();
    loop {
        tokio::select! {
            how = instance.process.exited() => {
                return Leave::Restart(format!("llama-server exited while starting ({how}){}",
                    if last.is_empty() { String::new() } else { format!("; last probe: {last}") }));
            }
            () = crate::node::stopped(stop) => return Leave::Stop,
            probe = api.health(policy.probe_timeout) => match probe {
                Ok(()) => break,
                Err(why) => last = why,
            },
        }
        if Instant::now() >= deadline {
            return Leave::Restart(format!(
                "llama-server did not become healthy within {} s ({last})",
                policy.startup_timeout.as_secs()
            ));
        }
        tokio::select! {
            how = instance.process.exited() => {
                return Leave::Restart(format!("llama-server exited while starting ({how})"));
            }
            () = crate::node::stopped(stop) => return Leave::Stop,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    *inner
        .api
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) =
        Some((inner.generation.borrow().0, api.clone()));
    inner.progress();
    inner.update(|s| {
        s.phase = Phase::Ready;
        s.restarts = 0;
        s.failed_probes = 0;
    });
    backoff.reset();
    tracing::info!(pid = instance.process.pid(), model = %inner.model, "llama-server is healthy: the model is advertised");
    let mut interval = tokio::time::interval_at(
        Instant::now() + policy.probe_interval,
        policy.probe_interval,
    );
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            how = instance.process.exited() => {
                return Leave::Restart(format!("llama-server exited ({how})"));
            }
            () = crate::node::stopped(stop) => return Leave::Stop,
            _ = interval.tick() => {}
        }
        let in_flight = inner.status.borrow().in_flight;
        let idle_for = inner.since_progress();
        if in_flight > 0 && idle_for >= policy.wedge_after {
            inner.update(|s| s.wedges = s.wedges.saturating_add(1));
            return Leave::Restart(format!(
                "wedged: {in_flight} job(s) in flight and no progress for {} s",
                idle_for.as_secs()
            ));
        }
        let probe = tokio::select! {
            how = instance.process.exited() => {
                return Leave::Restart(format!("llama-server exited ({how})"));
            }
            () = crate::node::stopped(stop) => return Leave::Stop,
            probe = api.health(policy.probe_timeout) => probe,
        };
        match probe {
            Ok(()) => {
                let recovered = inner.status.borrow().failed_probes > 0;
                if recovered {
                    tracing::info!("llama-server answers /health again");
                    inner.update(|s| s.failed_probes = 0);
                }
            }
            Err(why) => {
                let failed = inner.status.borrow().failed_probes + 1;
                tracing::warn!(failed, %why, "llama-server health probe failed");
                inner.update(|s| s.failed_probes = failed);
                if failed >= policy.unhealthy_after {
                    return Leave::Restart(format!(
                        "{failed} health probes failed in a row (last: {why})"
                    ));
                }
            }
        }
    }
}
