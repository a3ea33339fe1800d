//! The node runtime against a small scripted coordinator (axum on 127.0.0.1:0): what is hard
//! to provoke in the real one — failing chunk posts, a client that leaves mid-stream, pings,
//! the same job pushed and pulled, token rotation, shutdown with a job running. The `sgl`
//! binary's commands run against the devnet's coordinator (`binary`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod binary;
mod engine;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt as _, StreamExt as _};
use grid_proto::Usage;
use grid_proto::envelope::{ResultKind, verify_result};
use grid_proto::node::ChatRequest;
use grid_proto::seal::{self, SealedChunk};
use serde_json::{Value, json};
use sgl_node::{
    AuthToken, ChatStream, Completion, Engine, HANDED_BACK, Identity, Keypair, Node, NodeConfig,
    NodeHandle, OrchestratorUrl, StreamEvent,
};

const NODE_ID: &str = "7f8d6c0e-55a4-4b1c-9d7e-0a1b2c3d4e5f";

// ---------------------------------------------------------------------------------------------
// The scripted coordinator.

#[derive(Default)]
struct Script {
    /// Jobs every heartbeat answers with (a real coordinator re-offers undispatched jobs).
    pending: Vec<Value>,
    /// A token the next heartbeat rotates to.
    rotate: Option<String>,
    /// Chunk posts (counted from 0, all of them) answered 500.
    failing_posts: HashSet<usize>,
    /// Chunks with this seq or later are answered `closed: true`.
    close_from_seq: Option<u64>,
    heartbeats: Vec<(String, String, Value)>,
    chunk_posts: usize,
    chunks: Vec<(String, Value)>,
    completes: Vec<(String, Value)>,
    fails: Vec<(String, String)>,
    ws_tokens: Vec<String>,
    ws_received: Vec<String>,
}

#[derive(Clone)]
struct Coordinator {
    script: Arc<Mutex<Script>>,
    push: tokio::sync::broadcast::Sender<String>,
}

impl Coordinator {
    fn with<T>(&self, f: impl FnOnce(&mut Script) -> T) -> T {
        f(&mut self.script.lock().unwrap())
    }

    /// Pushes a text to every connected WebSocket (`__close__` closes them).
    fn push(&self, text: &str) {
        let _ = self.push.send(text.to_owned());
    }
}

async fn coordinator() -> (Coordinator, OrchestratorUrl) {
    let (push, _) = tokio::sync::broadcast::channel(64);
    let state = Coordinator {
        script: Arc::default(),
        push,
    };
    let app = axum::Router::new()
        .route("/grid/nodes/heartbeat", post(heartbeat))
        .route("/grid/nodes/{id}/ws", get(websocket))
        .route("/grid/jobs/{id}/complete", post(complete))
        .route("/grid/jobs/{id}/fail", post(fail))
        .route("/grid/jobs/{id}/chunk", post(chunk))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = OrchestratorUrl::parse(&format!("http://{address}")).unwrap();
    (state, url)
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn heartbeat(
    State(state): State<Coordinator>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    state.with(|s| {
        s.heartbeats.push((
            header(&headers, "x-node-auth"),
            header(&headers, "x-node-id"),
            body,
        ));
        let mut answer = json!({"status": "ok", "pending_jobs": s.pending});
        if let Some(token) = s.rotate.take() {
            answer["new_auth_token"] = json!(token);
        }
        Json(answer)
    })
}

async fn complete(
    State(state): State<Coordinator>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    state.with(|s| s.completes.push((id, body)));
    Json(json!({"ok": true}))
}

async fn fail(
    State(state): State<Coordinator>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Json<Value> {
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    state.with(|s| s.fails.push((id, reason)));
    Json(json!({"ok": true}))
}

async fn chunk(
    State(state): State<Coordinator>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    state.with(|s| {
        let post = s.chunk_posts;
        s.chunk_posts += 1;
        if s.failing_posts.contains(&post) {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "busy"})),
            )
                .into_response();
        }
        let closed = s
            .close_from_seq
            .is_some_and(|from| body["seq"].as_u64().is_some_and(|seq| seq >= from));
        s.chunks.push((id, body));
        Json(json!({"ok": true, "closed": closed})).into_response()
    })
}

async fn websocket(
    State(state): State<Coordinator>,
    Path(_id): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let token = query.get("auth_token").cloned().unwrap_or_default();
    state.with(|s| s.ws_tokens.push(token));
    upgrade.on_upgrade(move |socket| session(state, socket))
}

async fn session(state: Coordinator, socket: WebSocket) {
    let (mut sender, mut receiver) = socket.split();
    let mut pushes = state.push.subscribe();
    loop {
        tokio::select! {
            pushed = pushes.recv() => {
                let Ok(text) = pushed else { return };
                if text == "__close__" {
                    let _ = sender.close().await;
                    return;
                }
                if sender.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
            received = receiver.next() => match received {
                Some(Ok(Message::Text(text))) => {
                    state.with(|s| s.ws_received.push(text.to_string()));
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A deterministic engine.

struct TestEngine {
    deltas: Vec<String>,
    delay: Duration,
    /// Deltas produced so far (to see that generation stopped).
    generated: Arc<AtomicUsize>,
    /// Never answers (a job that outlives the drain).
    hang: bool,
    /// Serves embeddings.
    embeddings: bool,
    /// The stream fails after this many deltas (the engine died).
    fail_after: Option<usize>,
}

impl TestEngine {
    fn new(deltas: usize) -> TestEngine {
        TestEngine {
            deltas: (0..deltas).map(|n| format!("t{n} ")).collect(),
            delay: Duration::ZERO,
            generated: Arc::default(),
            hang: false,
            embeddings: false,
            fail_after: None,
        }
    }

    fn usage(&self, request: &ChatRequest) -> Usage {
        let prompt = request
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count())
            .sum::<usize>();
        Usage::new(prompt as u64, self.deltas.len() as u64)
    }
}

#[async_trait::async_trait]
impl Engine for TestEngine {
    fn model(&self) -> String {
        "test-model".into()
    }

    async fn healthy(&self) -> bool {
        true
    }

    fn context_size(&self) -> u32 {
        4096
    }

    async fn chat(&self, request: &ChatRequest) -> sgl_node::Result<Completion> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(Completion {
            content: self.deltas.concat(),
            usage: self.usage(request),
        })
    }

    async fn chat_stream(&self, request: &ChatRequest) -> sgl_node::Result<ChatStream> {
        let deltas = self.deltas.clone();
        let usage = self.usage(request);
        let delay = self.delay;
        let generated = self.generated.clone();
        let hang = self.hang;
        let fail_after = self.fail_after;
        let events = futures_util::stream::unfold(0usize, move |n| {
            let deltas = deltas.clone();
            let generated = generated.clone();
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                if fail_after == Some(n) {
                    let died = sgl_node::Error::Engine("llama-server exited (signal: 9)".into());
                    return Some((Err(died), usize::MAX));
                }
                if n == usize::MAX {
                    return None;
                }
                if n < deltas.len() {
                    tokio::time::sleep(delay).await;
                    generated.fetch_add(1, Ordering::SeqCst);
                    Some((Ok(StreamEvent::Delta(deltas[n].clone())), n + 1))
                } else if n == deltas.len() {
                    Some((Ok(StreamEvent::Done(usage)), n + 1))
                } else {
                    None
                }
            }
        });
        Ok(Box::pin(events))
    }

    async fn count_tokens(&self, text: &str) -> sgl_node::Result<u64> {
        Ok(text.split_whitespace().count() as u64)
    }

    fn supports_embeddings(&self) -> bool {
        self.embeddings
    }

    async fn embeddings(&self, inputs: &[String]) -> sgl_node::Result<(Vec<Vec<f32>>, Usage)> {
        let vectors = inputs.iter().map(|i| vec![i.len() as f32, 0.5]).collect();
        Ok((vectors, Usage::new(inputs.len() as u64, 0)))
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn keypair() -> Keypair {
    Keypair::from_seed([1; 32])
}

fn config(url: &OrchestratorUrl) -> NodeConfig {
    let identity = Identity {
        node_id: NODE_ID.into(),
        token: AuthToken::new("token-1"),
        keypair: keypair(),
    };
    let mut config = NodeConfig::new(url.clone(), identity);
    config.heartbeat_interval = Duration::from_millis(50);
    config.reconnect_initial = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(100);
    config.post_retry.initial_delay = Duration::from_millis(10);
    config.drain_timeout = Duration::from_secs(5);
    config
}

fn start(config: NodeConfig, engine: TestEngine) -> NodeHandle {
    Node::start(config, Some(Arc::new(engine))).unwrap()
}

/// Waits (up to 10 s) for `check` to hold.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Waits for `future` with a 10 s limit.
async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .expect("timed out")
}

fn plain_job(id: &str) -> Value {
    json!({"id": id, "job_type": "inference",
           "input_payload": {"messages": [{"role": "user", "content": "say hi"}]}})
}

/// A sealed job to this node's key, and the client's key to open the answer.
fn sealed_job(id: &str, stream: bool) -> (Value, seal::SealedRequest, String) {
    let node_key = keypair().encryption_public_b58();
    let nonce = bs58::encode([7u8; 16]).into_string();
    let inner = json!({"messages": [{"role": "user", "content": "tell a story"}],
                       "stream": stream, "nonce": nonce});
    let mut counter = 0u8;
    let mut random = |buffer: &mut [u8]| {
        for byte in buffer {
            counter = counter.wrapping_add(31);
            *byte = counter;
        }
    };
    let sealed = seal::seal_request(&node_key, inner.to_string().as_bytes(), &mut random).unwrap();
    let job = json!({"id": id, "job_type": "inference", "input_payload": {
        "enc": {"ciphertext": sealed.ciphertext,
                "client_ephemeral_pubkey": sealed.client_ephemeral_pubkey,
                "client_response_pubkey": sealed.client_response_pubkey,
                "algorithm": sealed.algorithm.tag()},
        "stream": stream}});
    (job, sealed, nonce)
}

/// Opens the chunks of a stream in order; the texts.
fn open_stream(
    job_id: &str,
    chunks: &[Value],
    sealed: seal::SealedRequest,
    nonce: &str,
) -> Vec<String> {
    open_chunks(job_id, chunks, sealed, nonce, true)
}

/// Opens `chunks` in order; with `complete`, the stream must also have ended.
fn open_chunks(
    job_id: &str,
    chunks: &[Value],
    sealed: seal::SealedRequest,
    nonce: &str,
    complete: bool,
) -> Vec<String> {
    let public = keypair().public_b58();
    let mut opener = sealed.response.stream(nonce);
    let mut texts = Vec::new();
    for chunk in chunks {
        let seq = chunk["seq"].as_u64().unwrap();
        let last = chunk["final"].as_bool().unwrap();
        let ct = chunk["ciphertext"].as_str().unwrap();
        verify_result(
            &public,
            chunk["result_envelope_signature"].as_str().unwrap(),
            job_id,
            ResultKind::Stream { seq, last },
            ct.as_bytes(),
        )
        .unwrap();
        let opened = opener
            .open(&SealedChunk {
                seq,
                last,
                eph: chunk["ephemeral_public_key"].as_str().map(str::to_owned),
                ct: ct.to_owned(),
            })
            .unwrap();
        texts.push(String::from_utf8(opened).unwrap());
    }
    match complete {
        true => opener.finish().unwrap(),
        false => assert!(
            opener.finish().is_err(),
            "a cut stream must not look complete"
        ),
    }
    texts
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn heartbeats_carry_the_keys_load_and_model_and_jobs_complete_signed() {
    let (coordinator, url) = coordinator().await;
    let (sealed_value, sealed, _) = sealed_job("job-sealed", false);
    coordinator.with(|s| s.pending = vec![plain_job("job-plain"), sealed_value]);
    let mut config = config(&url);
    config.slots = 2;
    config.binary_hash = Some("ab".repeat(32));
    config.websocket = false;
    let node = start(config, TestEngine::new(3));
    eventually("both results", || {
        coordinator.with(|s| s.completes.len() == 2)
    })
    .await;

    let public = keypair().public_b58();
    let (completes, heartbeats) = coordinator.with(|s| (s.completes.clone(), s.heartbeats.clone()));
    let plain = &completes
        .iter()
        .find(|(id, _)| id == "job-plain")
        .unwrap()
        .1;
    let text = plain["encrypted_result"].as_str().unwrap();
    let result: Value = serde_json::from_str(text).unwrap();
    assert_eq!(result["content"], "t0 t1 t2 ");
    assert_eq!(result["model"], "test-model");
    assert_eq!(result["usage"]["completion_tokens"], 3);
    verify_result(
        &public,
        plain["result_envelope_signature"].as_str().unwrap(),
        "job-plain",
        ResultKind::Plain,
        text.as_bytes(),
    )
    .unwrap();
    assert_eq!(plain["result_envelope_version"], "v1");

    let body = &completes
        .iter()
        .find(|(id, _)| id == "job-sealed")
        .unwrap()
        .1;
    let sealed_result = &body["sealed_result"];
    let ct = sealed_result["ciphertext"].as_str().unwrap();
    verify_result(
        &public,
        body["result_envelope_signature"].as_str().unwrap(),
        "job-sealed",
        ResultKind::Sealed,
        ct.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        sealed_result["algorithm"],
        "x25519-xchacha20poly1305-hkdf-v2"
    );
    let opened = sealed
        .response
        .open_result(
            ct,
            sealed_result["ephemeral_public_key"].as_str().unwrap(),
            sealed_result["algorithm"].as_str(),
        )
        .unwrap();
    let opened: Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(opened["content"], "t0 t1 t2 ");
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let (token, node_id, first) = &heartbeats[0];
    assert_eq!((token.as_str(), node_id.as_str()), ("token-1", NODE_ID));
    assert_eq!(first["available_models"], json!(["test-model"]));
    assert_eq!(first["active_job_ids"], json!([]));
    assert_eq!(first["current_load"], 0.0);
    assert_eq!(first["max_concurrent_jobs"], 2);
    assert_eq!(first["key_version"], 1);
    assert_eq!(first["binary_hash"], "ab".repeat(32));
    assert_eq!(
        first["capabilities"],
        json!({"streaming": true, "context_size": 4096})
    );
    assert_eq!(
        first["encryption_public_key"],
        keypair().encryption_public_b58()
    );
    seal::verify_keybind(
        NODE_ID,
        &public,
        first["encryption_public_key"].as_str().unwrap(),
        1,
        first["encryption_public_key_signature"].as_str().unwrap(),
    )
    .unwrap();
    // The jobs keep being offered; each ran once.
    eventually("more heartbeats", || {
        coordinator.with(|s| s.heartbeats.len() >= heartbeats.len() + 3)
    })
    .await;
    let last = within(node.shutdown()).await;
    assert_eq!((last.completed, last.failed), (2, 0));
    assert_eq!(coordinator.with(|s| s.completes.len()), 2);
}

#[tokio::test]
async fn a_stream_sends_the_first_delta_alone_then_sixes_and_retries_failed_posts() {
    let (coordinator, url) = coordinator().await;
    let (job, sealed, nonce) = sealed_job("job-stream", true);
    coordinator.with(|s| {
        s.pending = vec![job];
        // The second chunk's first two posts fail; the third gets through.
        s.failing_posts = HashSet::from([1, 2]);
    });
    let mut config = config(&url);
    config.websocket = false;
    let node = start(config, TestEngine::new(14));
    eventually("the final chunk", || {
        coordinator.with(|s| s.chunks.iter().any(|(_, c)| c["final"] == true))
    })
    .await;
    let (chunks, posts) = coordinator.with(|s| {
        (
            s.chunks.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            s.chunk_posts,
        )
    });
    assert_eq!(posts, chunks.len() + 2);
    let seqs: Vec<u64> = chunks.iter().map(|c| c["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert!(chunks[0]["ephemeral_public_key"].is_string());
    assert!(chunks[1].get("ephemeral_public_key").is_none());
    assert_eq!(
        chunks[4]["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 14, "total_tokens": 17})
    );
    assert!(chunks[..4].iter().all(|c| c.get("usage").is_none()));
    let texts = open_stream("job-stream", &chunks, sealed, &nonce);
    assert_eq!(
        texts,
        [
            "t0 ",
            "t1 t2 t3 t4 t5 t6 ",
            "t7 t8 t9 t10 t11 t12 ",
            "t13 ",
            ""
        ]
    );
    let last = within(node.shutdown()).await;
    assert_eq!((last.completed, last.failed), (1, 0));
    assert!(coordinator.with(|s| s.completes.is_empty() && s.fails.is_empty()));
}

#[tokio::test]
async fn a_closed_stream_stops_generating_and_bills_only_what_reached_the_client() {
    let (coordinator, url) = coordinator().await;
    let (job, sealed, nonce) = sealed_job("job-closed", true);
    coordinator.with(|s| {
        s.pending = vec![job];
        s.close_from_seq = Some(1);
    });
    let mut engine = TestEngine::new(200);
    engine.delay = Duration::from_millis(5);
    let generated = engine.generated.clone();
    let mut config = config(&url);
    config.websocket = false;
    let node = start(config, engine);
    eventually("the final chunk", || {
        coordinator.with(|s| s.chunks.iter().any(|(_, c)| c["final"] == true))
    })
    .await;
    let stopped_at = generated.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        generated.load(Ordering::SeqCst),
        stopped_at,
        "still generating"
    );
    assert!(stopped_at < 200);
    let chunks: Vec<Value> =
        coordinator.with(|s| s.chunks.iter().map(|(_, c)| c.clone()).collect());
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[2]["usage"],
        // Chunk 0 (one token) was relayed; chunk 1 came back `closed`: it never reached the
        // client, so its six tokens are not billed.
        json!({"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1})
    );
    let texts = open_stream("job-closed", &chunks, sealed, &nonce);
    assert_eq!(texts, ["t0 ", "t1 t2 t3 t4 t5 t6 ", ""]);
    let last = within(node.shutdown()).await;
    assert_eq!((last.completed, last.failed), (1, 0));
}

#[tokio::test]
async fn an_engine_dying_mid_stream_reports_why_and_the_tokens_already_delivered() {
    let (coordinator, url) = coordinator().await;
    let (job, sealed, nonce) = sealed_job("job-died", true);
    coordinator.with(|s| s.pending = vec![job]);
    let mut engine = TestEngine::new(40);
    // Chunks of 1 and 6 deltas go out; the engine dies inside the third.
    engine.fail_after = Some(10);
    let mut config = config(&url);
    config.websocket = false;
    let node = start(config, engine);
    eventually("the error chunk", || {
        coordinator.with(|s| s.chunks.iter().any(|(_, c)| c["error"] == true))
    })
    .await;
    let chunks: Vec<Value> =
        coordinator.with(|s| s.chunks.iter().map(|(_, c)| c.clone()).collect());
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    let error = &chunks[2];
    assert_eq!(
        error["reason"],
        "engine error: llama-server exited (signal: 9)"
    );
    // Only the 1 + 6 tokens of the chunks the coordinator took; none of the three generated
    // since.
    assert_eq!(
        error["usage"],
        json!({"prompt_tokens": 0, "completion_tokens": 7, "total_tokens": 7})
    );
    let texts = open_chunks("job-died", &chunks[..2], sealed, &nonce, false);
    assert_eq!(texts, ["t0 ", "t1 t2 t3 t4 t5 t6 "]);
    let last = within(node.shutdown()).await;
    assert_eq!((last.completed, last.failed), (0, 1));
    assert!(
        coordinator.with(|s| s.fails.is_empty()),
        "no /fail after a reported error"
    );
}

#[tokio::test]
async fn pings_are_answered_and_a_job_pushed_and_pulled_runs_once() {
    let (coordinator, url) = coordinator().await;
    let node = start(config(&url), TestEngine::new(2));
    eventually("the websocket", || node.status().connected).await;
    coordinator.push(r#"{"type":"ping"}"#);
    eventually("the pong", || {
        coordinator.with(|s| s.ws_received.iter().any(|t| t == r#"{"type":"pong"}"#))
    })
    .await;
    let job = plain_job("job-twice");
    coordinator.push(&json!({"type": "job", "job": job}).to_string());
    coordinator.push(&json!({"type": "job", "job": job}).to_string());
    coordinator.with(|s| s.pending = vec![job.clone()]);
    eventually("the result", || {
        coordinator.with(|s| !s.completes.is_empty())
    })
    .await;
    let seen = coordinator.with(|s| s.heartbeats.len());
    eventually("more heartbeats", || {
        coordinator.with(|s| s.heartbeats.len() >= seen + 3)
    })
    .await;
    coordinator.push(&json!({"type": "job", "job": job}).to_string());
    coordinator.push(r#"{"type":"stream_chunk_ack"}"#);
    coordinator.push("not json");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(coordinator.with(|s| s.completes.len()), 1);
    // Only pongs went up the socket.
    assert!(coordinator.with(|s| s.ws_received.iter().all(|t| t == r#"{"type":"pong"}"#)));
    let last = within(node.shutdown()).await;
    assert_eq!((last.completed, last.failed), (1, 0));
}

#[tokio::test]
async fn rotated_tokens_are_used_persisted_and_read_on_reconnect() {
    let (coordinator, url) = coordinator().await;
    let saved: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut config = config(&url);
    let sink = saved.clone();
    config.persist_token = Some(Arc::new(move |token: &AuthToken| {
        sink.lock().unwrap().push(token.expose().to_owned());
        Ok(())
    }));
    let node = start(config, TestEngine::new(1));
    eventually("the websocket", || node.status().connected).await;
    coordinator.with(|s| s.rotate = Some("token-2".into()));
    eventually("a heartbeat with the new token", || {
        coordinator.with(|s| s.heartbeats.iter().any(|(t, _, _)| t == "token-2"))
    })
    .await;
    coordinator.push(r#"{"type":"token_rotated","new_auth_token":"token-3","token_expires_at":"2030-01-01T00:00:00Z"}"#);
    eventually("the pushed token saved", || {
        saved.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*saved.lock().unwrap(), ["token-2", "token-3"]);
    eventually("a heartbeat with the pushed token", || {
        coordinator.with(|s| s.heartbeats.last().is_some_and(|(t, _, _)| t == "token-3"))
    })
    .await;
    // The socket drops; the node reconnects with the token it holds now.
    coordinator.push("__close__");
    eventually("a reconnect", || {
        coordinator.with(|s| s.ws_tokens.len() >= 2)
    })
    .await;
    assert_eq!(
        coordinator.with(|s| s.ws_tokens.clone())[..2],
        ["token-1", "token-3"]
    );
    eventually("connected again", || node.status().connected).await;
    within(node.shutdown()).await;
}

#[tokio::test]
async fn shutdown_hands_back_a_job_that_outlives_the_drain() {
    let (coordinator, url) = coordinator().await;
    coordinator.with(|s| s.pending = vec![plain_job("job-long")]);
    let mut engine = TestEngine::new(1);
    engine.hang = true;
    let mut config = config(&url);
    config.drain_timeout = Duration::from_millis(200);
    config.websocket = false;
    let node = start(config, engine);
    eventually("the job running", || {
        node.status().active_jobs == ["job-long"]
    })
    .await;
    eventually("a heartbeat listing it", || {
        coordinator.with(|s| {
            s.heartbeats.iter().any(|(_, _, h)| {
                h["active_job_ids"] == json!(["job-long"]) && h["current_load"] == 1.0
            })
        })
    })
    .await;
    let last = within(node.shutdown()).await;
    assert_eq!((last.handed_back, last.completed), (1, 0));
    assert!(last.active_jobs.is_empty() && last.draining);
    assert_eq!(
        coordinator.with(|s| s.fails.clone()),
        [("job-long".to_owned(), HANDED_BACK.to_owned())]
    );
}

#[tokio::test]
async fn abort_posts_nothing_more() {
    let (coordinator, url) = coordinator().await;
    coordinator.with(|s| s.pending = vec![plain_job("job-killed")]);
    let mut engine = TestEngine::new(1);
    engine.hang = true;
    let node = start(config(&url), engine);
    eventually("the job running", || !node.status().active_jobs.is_empty()).await;
    node.abort();
    let beats = coordinator.with(|s| s.heartbeats.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    coordinator.with(|s| {
        assert!(s.fails.is_empty() && s.completes.is_empty());
        assert!(s.heartbeats.len() <= beats + 1);
    });
}

#[tokio::test]
async fn unsupported_or_malformed_jobs_fail_with_the_reason() {
    let (coordinator, url) = coordinator().await;
    coordinator.with(|s| {
        s.pending = vec![
            json!({"id": "job-train", "job_type": "training", "input_payload": {}}),
            json!({"id": "job-embed", "job_type": "embeddings", "input_payload": {"input": ["a"]}}),
            json!({"id": "job-parts", "job_type": "inference", "input_payload":
                {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}}),
        ]
    });
    let mut config = config(&url);
    config.slots = 3;
    config.websocket = false;
    let node = start(config, TestEngine::new(1));
    eventually("three failures", || {
        coordinator.with(|s| s.fails.len() == 3)
    })
    .await;
    let mut fails = coordinator.with(|s| s.fails.clone());
    fails.sort();
    assert_eq!(
        fails[0],
        (
            "job-embed".into(),
            "Unsupported job type: embeddings".into()
        )
    );
    assert!(
        fails[1].1.starts_with("Invalid messages format"),
        "{}",
        fails[1].1
    );
    assert_eq!(
        fails[2],
        ("job-train".into(), "Unsupported job type: training".into())
    );
    let last = within(node.shutdown()).await;
    assert_eq!(last.failed, 3);
}

#[tokio::test]
async fn without_an_engine_the_node_heartbeats_and_advertises_nothing() {
    let (coordinator, url) = coordinator().await;
    let mut config = config(&url);
    config.websocket = false;
    let node = Node::start(config, None).unwrap();
    eventually("a heartbeat", || {
        coordinator.with(|s| !s.heartbeats.is_empty())
    })
    .await;
    eventually("the heartbeat ok", || node.status().last_heartbeat_ok).await;
    let first = coordinator.with(|s| s.heartbeats[0].2.clone());
    assert_eq!(first["available_models"], json!([]));
    assert_eq!(first["active_job_ids"], json!([]));
    assert_eq!(first["max_concurrent_jobs"], 1);
    within(node.shutdown()).await;
}

#[tokio::test]
async fn embeddings_run_when_the_engine_serves_them() {
    let (coordinator, url) = coordinator().await;
    coordinator.with(|s| {
        s.pending = vec![json!({"id": "job-embed", "job_type": "embeddings",
                                "input_payload": {"input": ["abc", "de"]}})]
    });
    let mut engine = TestEngine::new(1);
    engine.embeddings = true;
    let mut config = config(&url);
    config.websocket = false;
    let node = start(config, engine);
    eventually("the result", || {
        coordinator.with(|s| !s.completes.is_empty())
    })
    .await;
    let (heartbeat, body) =
        coordinator.with(|s| (s.heartbeats[0].2.clone(), s.completes[0].1.clone()));
    assert_eq!(heartbeat["capabilities"]["embeddings"], true);
    let text = body["encrypted_result"].as_str().unwrap();
    verify_result(
        &keypair().public_b58(),
        body["result_envelope_signature"].as_str().unwrap(),
        "job-embed",
        ResultKind::Plain,
        text.as_bytes(),
    )
    .unwrap();
    let result: Value = serde_json::from_str(text).unwrap();
    assert_eq!(result["embeddings"], json!([[3.0, 0.5], [2.0, 0.5]]));
    assert_eq!(result["usage"]["prompt_tokens"], 2);
    within(node.shutdown()).await;
}
