//! The llama-server engine's supervision, against a fake llama-server (axum on 127.0.0.1:0,
//! in this process) under tokio's paused clock: the watchdog's ten minutes pass in
//! milliseconds, and nothing here sleeps on the wall clock.
//!
//! The fake answers `/health`, `/v1/chat/completions` (whole or streamed, with usage) and
//! `/tokenize` as llama-server does, and can be told to fail its probes, stall its answers or
//! exit.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt as _;
use grid_proto::node::{ChatMessage, ChatRequest};
use serde_json::{Value, json};
use sgl_node::Engine as _;
use sgl_node::StreamEvent;
use sgl_node::llama::{EngineStatus, Instance, Launch, LlamaServer, Phase, Process, Supervision};
use tokio::sync::watch;

/// What the fake does; shared by every instance the launcher starts.
#[derive(Default)]
struct Behaviour {
    /// `/health` answers 503.
    sick: AtomicBool,
    /// Chat answers never come (a stream sends two deltas first).
    stall: AtomicBool,
    /// Every start exits at once.
    crash_on_start: AtomicBool,
    launches: AtomicU32,
    /// The current instance's exit switch.
    exit: Mutex<Option<watch::Sender<bool>>>,
}

struct FakeLauncher(Arc<Behaviour>);

struct FakeProcess {
    exit: watch::Receiver<bool>,
    server: tokio::task::JoinHandle<()>,
}

#[async_trait::async_trait]
impl Process for FakeProcess {
    fn pid(&self) -> Option<u32> {
        None
    }

    async fn exited(&mut self) -> String {
        let _ = self.exit.wait_for(|gone| *gone).await;
        "signal: 9 (SIGKILL)".into()
    }

    async fn kill(&mut self) {
        self.server.abort();
    }
}

impl Drop for FakeProcess {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn chunk(content: Option<&str>, usage: Option<Value>) -> String {
    let choices = match content {
        Some(text) => json!([{ "index": 0, "delta": { "content": text } }]),
        None => json!([]),
    };
    let mut body = json!({ "object": "chat.completion.chunk", "choices": choices });
    if let Some(usage) = usage {
        body["usage"] = usage;
    }
    format!("data: {body}\n\n")
}

async fn chat(behaviour: Arc<Behaviour>, body: Value) -> Response {
    let stream = body["stream"] == true;
    let stall = behaviour.stall.load(Ordering::SeqCst);
    let usage = json!({ "prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10 });
    if !stream {
        if stall {
            std::future::pending::<()>().await;
        }
        return Json(json!({
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "one two three" } }],
            "usage": usage,
        }))
        .into_response();
    }
    assert_eq!(body["stream_options"]["include_usage"], true);
    let mut events = vec![chunk(Some("one"), None), chunk(Some(" two"), None)];
    if !stall {
        events.push(chunk(Some(" three"), None));
        events.push(chunk(None, Some(usage)));
        events.push("data: [DONE]\n\n".into());
    }
    let head = futures_util::stream::iter(
        events
            .into_iter()
            .map(|e| Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(e))),
    );
    let body = match stall {
        true => Body::from_stream(head.chain(futures_util::stream::pending())),
        false => Body::from_stream(head),
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

#[async_trait::async_trait]
impl Launch for FakeLauncher {
    async fn launch(&self) -> sgl_node::Result<Instance> {
        let behaviour = self.0.clone();
        behaviour.launches.fetch_add(1, Ordering::SeqCst);
        let (exit, exit_rx) = watch::channel(behaviour.crash_on_start.load(Ordering::SeqCst));
        *behaviour.exit.lock().unwrap() = Some(exit);
        let health = behaviour.clone();
        let chats = behaviour.clone();
        let app = axum::Router::new()
            .route(
                "/health",
                get(move || {
                    let sick = health.sick.load(Ordering::SeqCst);
                    async move {
                        match sick {
                            true => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                Json(json!({ "error": { "message": "Loading model" } })),
                            ),
                            false => (StatusCode::OK, Json(json!({ "status": "ok" }))),
                        }
                    }
                }),
            )
            .route(
                "/v1/chat/completions",
                post(move |Json(body): Json<Value>| chat(chats.clone(), body)),
            )
            .route(
                "/tokenize",
                post(|Json(body): Json<Value>| async move {
                    let words = body["content"].as_str().unwrap_or("").split(' ').count();
                    Json(json!({ "tokens": vec![1; words] }))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Ok(Instance {
            base_url: format!("http://127.0.0.1:{port}"),
            api_key: None,
            process: Box::new(FakeProcess {
                exit: exit_rx,
                server,
            }),
        })
    }
}

fn engine(behaviour: &Arc<Behaviour>) -> LlamaServer {
    LlamaServer::start(
        "SmolLM2-135M-Instruct".into(),
        4096,
        Box::new(FakeLauncher(behaviour.clone())),
        Supervision::default(),
        None,
    )
}

async fn until(engine: &LlamaServer, what: &str, check: impl Fn(&EngineStatus) -> bool) {
    let mut status = engine.subscribe();
    // Ten simulated hours: only a supervisor that never gets there runs into it.
    tokio::time::timeout(Duration::from_secs(36_000), status.wait_for(|s| check(s)))
        .await
        .unwrap_or_else(|_| panic!("the engine never got to: {what} ({:?})", engine.status()))
        .unwrap();
}

fn request(stream: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "count to three".into(),
        }],
        temperature: 0.0,
        max_tokens: 16,
        stream,
        nonce: String::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_engine_serves_whole_and_streamed_answers_with_its_usage() {
    let behaviour = Arc::new(Behaviour::default());
    let engine = engine(&behaviour);
    assert!(!engine.healthy().await, "not advertised before /health");
    until(&engine, "ready", |s| s.phase == Phase::Ready).await;
    assert!(engine.healthy().await);
    assert_eq!(engine.model(), "SmolLM2-135M-Instruct");
    assert_eq!(engine.context_size(), 4096);

    let whole = engine.chat(&request(false)).await.unwrap();
    assert_eq!(whole.content, "one two three");
    assert_eq!(whole.usage, grid_proto::Usage::new(7, 3));

    let events: Vec<StreamEvent> = engine
        .chat_stream(&request(true))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(
        events,
        [
            StreamEvent::Delta("one".into()),
            StreamEvent::Delta(" two".into()),
            StreamEvent::Delta(" three".into()),
            StreamEvent::Done(grid_proto::Usage::new(7, 3)),
        ]
    );
    assert_eq!(engine.count_tokens("a b c d").await.unwrap(), 4);
    let status = engine.status();
    assert_eq!((status.in_flight, status.total_restarts), (0, 0));
    engine.stop().await;
    assert_eq!(engine.status().phase, Phase::Stopped);
    assert!(!engine.healthy().await);
}

#[tokio::test(start_paused = true)]
async fn an_engine_that_exits_is_dropped_restarted_and_advertised_again() {
    let behaviour = Arc::new(Behaviour::default());
    let engine = engine(&behaviour);
    until(&engine, "ready", |s| s.phase == Phase::Ready).await;
    behaviour
        .exit
        .lock()
        .unwrap()
        .as_ref()
        .unwrap()
        .send_replace(true);
    until(&engine, "restarting", |s| s.phase == Phase::Restarting).await;
    assert!(!engine.healthy().await, "the model is off the heartbeat");
    let status = engine.status();
    assert!(
        status.last_error.as_deref().unwrap().contains("exited"),
        "{status:?}"
    );
    until(&engine, "ready again", |s| s.phase == Phase::Ready).await;
    assert_eq!(behaviour.launches.load(Ordering::SeqCst), 2);
    let status = engine.status();
    assert_eq!((status.restarts, status.total_restarts), (0, 1));
    assert_eq!(
        engine.chat(&request(false)).await.unwrap().content,
        "one two three"
    );
}

#[tokio::test(start_paused = true)]
async fn two_failed_probes_take_the_model_off_and_restart_the_engine() {
    let behaviour = Arc::new(Behaviour::default());
    let engine = engine(&behaviour);
    until(&engine, "ready", |s| s.phase == Phase::Ready).await;
    behaviour.sick.store(true, Ordering::SeqCst);
    until(&engine, "one failed probe", |s| s.failed_probes == 1).await;
    assert!(engine.healthy().await, "one failed probe is not enough");
    until(&engine, "restarting", |s| s.phase == Phase::Restarting).await;
    assert!(!engine.healthy().await);
    assert!(
        engine
            .status()
            .last_error
            .unwrap()
            .contains("2 health probes failed")
    );
    // Jobs asked of an engine that is not ready fail at once, saying why.
    let error = engine.chat(&request(false)).await.unwrap_err();
    assert!(error.to_string().contains("not ready"), "{error}");
    behaviour.sick.store(false, Ordering::SeqCst);
    until(&engine, "ready again", |s| s.phase == Phase::Ready).await;
    assert!(engine.healthy().await);
    assert_eq!(engine.status().failed_probes, 0);
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_restarts_a_stalled_engine_and_fails_its_jobs() {
    let behaviour = Arc::new(Behaviour::default());
    let engine = engine(&behaviour);
    until(&engine, "ready", |s| s.phase == Phase::Ready).await;
    behaviour.stall.store(true, Ordering::SeqCst);
    let started = tokio::time::Instant::now();

    // A whole answer that never comes.
    let error = engine.chat(&request(false)).await.unwrap_err().to_string();
    assert!(error.contains("wedged"), "{error}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(600) && waited <= Duration::from_secs(610),
        "{waited:?}"
    );
    assert_eq!(engine.status().wedges, 1);
    until(&engine, "ready again", |s| s.phase == Phase::Ready).await;

    // A stream that stops after two deltas: they arrive, then the stream fails.
    let mut events = engine.chat_stream(&request(true)).await.unwrap();
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        StreamEvent::Delta("one".into())
    );
    assert_eq!(
        events.next().await.unwrap().unwrap(),
        StreamEvent::Delta(" two".into())
    );
    let error = events.next().await.unwrap().unwrap_err().to_string();
    assert!(error.contains("wedged"), "{error}");
    assert!(events.next().await.is_none());
    drop(events);
    assert_eq!(engine.status().wedges, 2);
    until(&engine, "ready again", |s| s.phase == Phase::Ready).await;

    // A completed job clears the wedges; three in a row without one give up.
    behaviour.stall.store(false, Ordering::SeqCst);
    engine.chat(&request(false)).await.unwrap();
    assert_eq!(engine.status().wedges, 0);
    behaviour.stall.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        until(&engine, "ready", |s| s.phase == Phase::Ready).await;
        engine.chat(&request(false)).await.unwrap_err();
    }
    until(&engine, "failed", |s| s.phase == Phase::Failed).await;
    let status = engine.status();
    assert!(
        status.last_error.as_deref().unwrap().contains("3 wedges"),
        "{status:?}"
    );
    assert!(!engine.healthy().await);
}

#[tokio::test(start_paused = true)]
async fn restarts_are_bounded() {
    let behaviour = Arc::new(Behaviour::default());
    behaviour.crash_on_start.store(true, Ordering::SeqCst);
    let engine = engine(&behaviour);
    until(&engine, "failed", |s| s.phase == Phase::Failed).await;
    // The first start and five restarts.
    assert_eq!(behaviour.launches.load(Ordering::SeqCst), 6);
    let status = engine.status();
    assert_eq!(status.total_restarts, 5);
    assert!(
        status.last_error.as_deref().unwrap().contains("5 restarts"),
        "{status:?}"
    );
}

/// A llama-server that writes 16 MB to stderr before it starts (far more than a pipe holds):
/// the node drains it, so the server neither blocks nor fails its health checks. The real
/// pinned llama-server behind a shell wrapper, on the wall clock.
#[tokio::test]
async fn a_chatty_engine_is_drained_and_does_not_wedge() {
    use std::os::unix::fs::PermissionsExt as _;

    let llama = test_support::llama().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("chatty-llama-server");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nhead -c 16000000 /dev/zero | tr '\\000' 'x' | fold -w 200 >&2\nexec '{}' \"$@\"\n",
            llama.server.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut options = sgl_node::llama::EngineOptions::new(llama.model, wrapper);
    options.port = 0;
    options.context = 1024;
    options.model_name = Some("smol".into());
    let plan = sgl_node::llama::plan(&options, &sgl_node::hardware::Hardware::detect()).unwrap();
    let engine = LlamaServer::spawn(&plan);
    let mut status = engine.subscribe();
    tokio::time::timeout(
        Duration::from_secs(120),
        status.wait_for(|s| s.phase == Phase::Ready),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the chatty engine never became healthy: {:?}",
            engine.status()
        )
    })
    .unwrap();
    assert!(
        engine.status().drained_bytes >= 16_000_000,
        "{:?}",
        engine.status()
    );
    let mut short = request(false);
    short.max_tokens = 4;
    let answer = engine.chat(&short).await.unwrap();
    assert!(
        (1..=4).contains(&answer.usage.completion_tokens),
        "{answer:?}"
    );
    assert!(answer.usage.prompt_tokens > 0);
    let status = engine.status();
    assert_eq!((status.total_restarts, status.failed_probes), (0, 0));
    engine.stop().await;
}
