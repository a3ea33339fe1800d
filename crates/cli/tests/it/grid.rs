//! The grid end to end: the devnet's coordinator, one `sgl` node (the `sgl-node` runtime in
//! this process, serving a deterministic engine defined here and nowhere else), and the
//! `x402c` binary. Sealed by default, plain, paid with x402, billed exactly; a coordinator
//! that swaps the node's key or signature is refused and the node receives nothing; spoiled
//! streams are refused; off-grid leaves capacity; a node killed mid-stream costs nothing; the
//! official OpenAI Python SDK streams through it by `base_url` alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use grid_api::Usage;
use grid_api::node::ChatRequest;
use serde_json::{Value, json};
use sgl_node::engine::{ChatStream, Completion, Engine, StreamEvent};

use super::{Run, User};

const MODEL: &str = "echo-1";

/// The test engine: answers `echo: <the last message>`, one word per token; the prompt is as
/// many tokens as its messages have words. `stall_after` deltas, it stops producing (a node
/// that is then killed mid-stream).
struct Echo {
    stall_after: Option<usize>,
    /// Between deltas.
    delay: Duration,
    /// Jobs it was given.
    runs: AtomicUsize,
}

impl Echo {
    fn new() -> Echo {
        Echo {
            stall_after: None,
            delay: Duration::ZERO,
            runs: AtomicUsize::new(0),
        }
    }

    fn answer(request: &ChatRequest) -> (Vec<String>, Usage) {
        let last = request
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        let words: Vec<String> = std::iter::once("echo:".to_owned())
            .chain(last.split_whitespace().map(str::to_owned))
            .collect();
        let deltas = words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.clone() } else { format!(" {w}") })
            .collect::<Vec<_>>();
        let prompt = request
            .messages
            .iter()
            .map(|m| m.content.split_whitespace().count() as u64)
            .sum();
        let usage = Usage::new(prompt, deltas.len() as u64);
        (deltas, usage)
    }
}

/// What the engine answers to a one-message prompt.
fn expected(prompt: &str) -> (String, u64, u64) {
    let words = prompt.split_whitespace().count() as u64;
    (format!("echo: {prompt}"), words, words + 1)
}

#[async_trait::async_trait]
impl Engine for Echo {
    fn model(&self) -> String {
        MODEL.to_owned()
    }

    async fn healthy(&self) -> bool {
        true
    }

    fn context_size(&self) -> u32 {
        4096
    }

    async fn chat(&self, request: &ChatRequest) -> sgl_node::Result<Completion> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let (deltas, usage) = Echo::answer(request);
        Ok(Completion {
            content: deltas.concat(),
            usage,
        })
    }

    async fn chat_stream(&self, request: &ChatRequest) -> sgl_node::Result<ChatStream> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let (deltas, usage) = Echo::answer(request);
        let stall_after = self.stall_after;
        let delay = self.delay;
        let events = deltas
            .into_iter()
            .map(StreamEvent::Delta)
            .chain(std::iter::once(StreamEvent::Done(usage)))
            .enumerate()
            .map(Ok);
        let stream = futures_util::stream::iter(events).then(move |item| async move {
            let (i, event) = item?;
            if stall_after.is_some_and(|n| i >= n) {
                futures_util::future::pending::<()>().await;
            }
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(event)
        });
        Ok(Box::pin(stream))
    }

    async fn count_tokens(&self, text: &str) -> sgl_node::Result<u64> {
        Ok(text.split_whitespace().count() as u64)
    }

    fn supports_embeddings(&self) -> bool {
        true
    }

    /// `[words, characters]` per input; one token per word.
    async fn embeddings(&self, inputs: &[String]) -> sgl_node::Result<(Vec<Vec<f32>>, Usage)> {
        let vectors = inputs
            .iter()
            .map(|i| {
                vec![
                    i.split_whitespace().count() as f32,
                    i.chars().count() as f32,
                ]
            })
            .collect();
        let tokens = inputs
            .iter()
            .map(|i| i.split_whitespace().count() as u64)
            .sum();
        Ok((vectors, Usage::new(tokens, 0)))
    }
}

/// A node registered with the devnet and running `engine` in this process.
pub(super) struct TestNode {
    pub(super) handle: Option<sgl_node::NodeHandle>,
    pub(super) node_id: String,
    dir: std::path::PathBuf,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) async fn post(devnet: &devnet::Devnet, path: &str, body: Value) -> Value {
    let response = test_support::http()
        .post(format!("{}{path}", devnet.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

pub(super) async fn get(devnet: &devnet::Devnet, path: &str) -> Value {
    let response = test_support::http()
        .get(format!("{}{path}", devnet.url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}");
    response.json().await.unwrap()
}

/// Registers a node for `engine`'s model and starts it; returns once the grid routes to it.
pub(super) async fn start_node(devnet: &devnet::Devnet, engine: Arc<dyn Engine>) -> TestNode {
    let mut seed = [0u8; 6];
    test_support::os_random(&mut seed);
    let dir = std::env::temp_dir().join(format!(
        "sgl-{}-{}",
        std::process::id(),
        seed.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let wallet = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU";
    let code = post(
        devnet,
        "/devnet/grid/codes",
        json!({ "wallet_address": wallet }),
    )
    .await["registration_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = sgl_node::url::OrchestratorUrl::parse(devnet.url()).unwrap();
    let coordinator = sgl_node::coordinator::Coordinator::new(url.clone()).unwrap();
    let config_dir = sgl_node::files::ConfigDir::new(dir.clone());
    let mut registration = sgl_node::register::Registration::new(wallet);
    registration.registration_code = Some(code);
    registration.models = vec![engine.model()];
    let node = sgl_node::register::register(
        &coordinator,
        &config_dir,
        &registration,
        &sgl_node::hardware::Hardware::detect(),
    )
    .await
    .unwrap();
    let (_, identity) = config_dir.identity().unwrap();
    let mut config = sgl_node::NodeConfig::new(url, identity);
    config.heartbeat_interval = Duration::from_millis(200);
    config.reconnect_initial = Duration::from_millis(100);
    config.reconnect_max = Duration::from_millis(400);
    config.post_retry.initial_delay = Duration::from_millis(20);
    config.drain_timeout = Duration::from_secs(2);
    let handle = sgl_node::Node::start(config, Some(engine)).unwrap();
    let test_node = TestNode {
        handle: Some(handle),
        node_id: node.node_id.clone(),
        dir,
    };
    wait_for(devnet, |capacity| capacity["available_nodes"] == 1).await;
    test_node
}

/// Waits (a bounded number of short polls) until `/grid/capacity` satisfies `ready`.
pub(super) async fn wait_for(devnet: &devnet::Devnet, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let capacity = get(devnet, "/grid/capacity").await;
        if ready(&capacity) {
            return capacity;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the grid never reached the state: {}",
        get(devnet, "/grid/capacity").await
    );
}

/// A user with $1 of credits and an API key.
pub(super) async fn keyed_user(devnet: &devnet::Devnet) -> (User, String) {
    let user = User::funded(devnet, 3).await;
    user.json(devnet, &["credits", "topup", "1", "--yes"], &[])
        .await;
    let created = user
        .json(devnet, &["api-key", "create", "--label", "grid"], &[])
        .await;
    let key = created["api_key"].as_str().unwrap().to_owned();
    (user, key)
}

impl User {
    /// `x402c` against the devnet's grid with an API key and no payment keys.
    pub(super) async fn grid(&self, devnet: &devnet::Devnet, key: &str, args: &[&str]) -> Run {
        self.x402c(
            devnet,
            args,
            &[
                ("X402C_GRID_URL", devnet.url()),
                ("COMPUTE_API_KEY", key),
                ("PRIVATE_KEY", ""),
                ("SOLANA_SECRET_KEY", ""),
            ],
        )
        .await
    }

    pub(super) async fn balance_micros(&self, devnet: &devnet::Devnet) -> u64 {
        let balance = self.json(devnet, &["credits", "balance"], &[]).await;
        let text = match &balance["balance"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let micros: x402_core::UsdMicros = text.parse().unwrap();
        micros.0
    }
}

/// The cost the grid must charge: per-1M prices in micro-dollars, rounded up once.
pub(super) fn cost_micros(usage: &Value, input_per_m_micros: u64, output_per_m_micros: u64) -> u64 {
    let prompt = u128::from(usage["prompt_tokens"].as_u64().unwrap());
    let completion = u128::from(usage["completion_tokens"].as_u64().unwrap());
    let total =
        prompt * u128::from(input_per_m_micros) + completion * u128::from(output_per_m_micros);
    u64::try_from(total.div_ceil(1_000_000)).unwrap()
}

/// The node's prices for the echo model, micro-dollars per 1M tokens.
async fn prices(devnet: &devnet::Devnet, node: &str) -> (u64, u64) {
    model_prices(devnet, node, MODEL).await
}

/// The node's prices for `model`, micro-dollars per 1M tokens (from
/// `/grid/nodes/{id}/prices`).
pub(super) async fn model_prices(devnet: &devnet::Devnet, node: &str, model: &str) -> (u64, u64) {
    let prices = get(devnet, &format!("/grid/nodes/{node}/prices")).await;
    let row = prices["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == model)
        .unwrap()
        .clone();
    let micros = |v: &Value| -> u64 {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        text.parse::<x402_core::UsdMicros>().unwrap().0
    };
    (
        micros(&row["effective"]["inputPerM"]),
        micros(&row["effective"]["outputPerM"]),
    )
}

pub(super) fn job_id(run: &Run) -> String {
    let start = run.stderr.find("job ").expect("a job id on stderr") + 4;
    run.stderr[start..]
        .split(|c: char| c.is_whitespace() || c == '·')
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_sealed_chat_streams_through_the_grid_and_is_billed_exactly() {
    let devnet = test_support::start().await.unwrap();
    let engine = Arc::new(Echo::new());
    let node = start_node(&devnet, engine.clone()).await;
    let (user, key) = keyed_user(&devnet).await;

    // The catalog commands see the node.
    let models = user
        .grid(&devnet, &key, &["grid", "models", "--json"])
        .await;
    assert_eq!(models.code, 0, "{}", models.stderr);
    assert!(models.stdout.contains(MODEL), "{}", models.stdout);
    let providers = user
        .grid(&devnet, &key, &["grid", "providers", "--model", MODEL])
        .await;
    assert!(
        providers.stdout.contains(&node.node_id),
        "{}",
        providers.stdout
    );
    let pricing = user
        .grid(&devnet, &key, &["grid", "pricing", "--json"])
        .await;
    assert_eq!(pricing.code, 0, "{}", pricing.stderr);
    let pricing: Value = serde_json::from_str(pricing.stdout.trim()).unwrap();
    assert!(
        pricing["pricing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["model"] == MODEL && p["price_per_1k_output_tokens_usd"].is_number()),
        "{pricing}"
    );
    let capacity = user.grid(&devnet, &key, &["grid", "capacity"]).await;
    assert!(
        capacity.stdout.contains("available_nodes") && capacity.stdout.contains(MODEL),
        "{}",
        capacity.stdout
    );

    let prompt = "hello sealed grid";
    let (text, prompt_tokens, completion_tokens) = expected(prompt);
    let before = user.balance_micros(&devnet).await;
    let run = user
        .grid(&devnet, &key, &["chat", "-m", MODEL, "--stream", prompt])
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim_end(), text);
    assert!(
        run.stderr
            .contains("sealed end to end to the node's verified key"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "{prompt_tokens} prompt + {completion_tokens} completion tokens"
        )),
        "{}",
        run.stderr
    );
    // Billed exactly what the job's usage costs at the node's prices, rounded up once.
    let job = job_id(&run);
    let details = user
        .grid(&devnet, &key, &["grid", "capacity", "--json"])
        .await;
    assert_eq!(details.code, 0);
    let (input, output) = prices(&devnet, &node.node_id).await;
    let usage = json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens });
    let cost = cost_micros(&usage, input, output);
    assert!(cost > 0);
    let after = user.balance_micros(&devnet).await;
    assert_eq!(before - after, cost, "job {job}");

    // Whole, not streamed; and plain, labelled.
    let whole = user
        .grid(&devnet, &key, &["chat", "-m", MODEL, prompt])
        .await;
    assert_eq!(whole.code, 0, "{}", whole.stderr);
    assert_eq!(whole.stdout.trim_end(), text);
    let plain = user
        .grid(
            &devnet,
            &key,
            &["chat", "-m", MODEL, "--plain", "--stream", prompt],
        )
        .await;
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert_eq!(plain.stdout.trim_end(), text);
    assert!(
        plain.stderr.contains("PLAIN: not confidential"),
        "{}",
        plain.stderr
    );
    let plain_whole = user
        .grid(
            &devnet,
            &key,
            &["chat", "-m", MODEL, "--plain", "--json", prompt],
        )
        .await;
    assert_eq!(plain_whole.code, 0, "{}", plain_whole.stderr);
    let answer: Value = serde_json::from_str(plain_whole.stdout.trim()).unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], text.as_str());
    assert_eq!(answer["usage"]["completion_tokens"], completion_tokens);
    assert_eq!(answer["x402c"]["confidential"], false);
    assert_eq!(engine.runs.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_coordinator_that_swaps_the_node_key_is_refused_and_the_node_gets_nothing() {
    let devnet = test_support::start().await.unwrap();
    let engine = Arc::new(Echo::new());
    let _node = start_node(&devnet, engine.clone()).await;
    let (user, key) = keyed_user(&devnet).await;
    let before = user.balance_micros(&devnet).await;
    for fault in [
        json!({ "grid_swap_reserved_key": true }),
        json!({ "grid_swap_reserved_signature": true }),
    ] {
        post(&devnet, "/devnet/faults", fault.clone()).await;
        let run = user
            .grid(
                &devnet,
                &key,
                &["chat", "-m", MODEL, "--stream", "secret words"],
            )
            .await;
        assert_eq!(run.code, 3, "{fault}: {}", run.stderr);
        assert!(
            run.stderr.contains("key binding"),
            "{fault}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
        // --allow-unverified-node does not accept a binding that fails.
        let run = user
            .grid(
                &devnet,
                &key,
                &[
                    "chat",
                    "-m",
                    MODEL,
                    "--allow-unverified-node",
                    "secret words",
                ],
            )
            .await;
        assert_eq!(run.code, 3, "{fault}: {}", run.stderr);
    }
    assert_eq!(
        engine.runs.load(Ordering::SeqCst),
        0,
        "the node received nothing"
    );
    assert_eq!(user.balance_micros(&devnet).await, before, "nothing billed");

    // Spoiled streams: each refused with its own error, and the answer is not printed as whole.
    post(&devnet, "/devnet/faults", json!({})).await;
    for (fault, says) in [
        ("reorder", "arrived where chunk"),
        ("truncate", "truncated"),
        ("tamper", "tampered"),
    ] {
        post(
            &devnet,
            "/devnet/faults",
            json!({ "grid_stream_fault": fault }),
        )
        .await;
        let run = user
            .grid(
                &devnet,
                &key,
                &[
                    "chat",
                    "-m",
                    MODEL,
                    "--stream",
                    "one two three four five six seven eight nine",
                ],
            )
            .await;
        assert_eq!(run.code, 6, "{fault}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{fault}: {}", run.stderr);
        assert!(run.stderr.contains("incomplete"), "{fault}: {}", run.stderr);
    }
}

#[tokio::test]
async fn a_chat_paid_with_x402_off_grid_and_a_node_killed_mid_stream() {
    let devnet = test_support::start().await.unwrap();
    let engine = Arc::new(Echo::new());
    let node = start_node(&devnet, engine.clone()).await;
    let user = User::funded(&devnet, 3).await;

    // Paid per request with x402 (no API key): journaled, settled; what the job did not use
    // stays as the payer's credits.
    let prompt = "pay as you go";
    let (text, prompt_tokens, completion_tokens) = expected(prompt);
    let run = user
        .x402c(
            &devnet,
            &[
                "chat",
                "-m",
                MODEL,
                "--stream",
                "--yes",
                "--max-tokens",
                "64",
                prompt,
            ],
            &[("X402C_GRID_URL", devnet.url())],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim_end(), text);
    assert!(run.stderr.contains("paid on"), "{}", run.stderr);
    let payments = user.payments().await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["state"], "settled", "{payments:?}");
    let paid = u64::try_from(
        payments[0]["amount"]
            .as_str()
            .map(|a| a.parse::<u128>().unwrap())
            .unwrap(),
    )
    .unwrap();
    let (input, output) = prices(&devnet, &node.node_id).await;
    let cost = cost_micros(
        &json!({ "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens }),
        input,
        output,
    );
    // USDC has six decimals: atomic units are micro-dollars.
    let left = user.balance_micros(&devnet).await;
    assert_eq!(
        left,
        paid - cost,
        "the quote less the cost stays as credits"
    );

    // Off grid: out of capacity, and chats find no node.
    let (_, identity) = sgl_node::files::ConfigDir::new(node.dir.clone())
        .identity()
        .unwrap();
    let client = sgl_node::coordinator::Coordinator::new(
        sgl_node::url::OrchestratorUrl::parse(devnet.url()).unwrap(),
    )
    .unwrap()
    .with_node(&identity.node_id, identity.token.clone());
    client.set_off_grid(true).await.unwrap();
    wait_for(&devnet, |c| c["available_nodes"] == 0).await;
    client.set_off_grid(false).await.unwrap();
    wait_for(&devnet, |c| c["available_nodes"] == 1).await;
    // Off grid for good: the next node is the only one chats can reach.
    client.set_off_grid(true).await.unwrap();
    wait_for(&devnet, |c| c["available_nodes"] == 0).await;
    drop(node);

    // A node that stalls mid-stream and is then killed: a clear error, nothing charged.
    let stalling = Arc::new(Echo {
        stall_after: Some(2),
        ..Echo::new()
    });
    let mut node = start_node(&devnet, stalling.clone()).await;
    let (keyed, key) = keyed_user(&devnet).await;
    let before = keyed.balance_micros(&devnet).await;
    let chat = {
        let devnet_url = devnet.url().to_owned();
        let key = key.clone();
        let keyed = &keyed;
        let devnet = &devnet;
        async move {
            keyed
                .x402c(
                    devnet,
                    &[
                        "chat",
                        "-m",
                        MODEL,
                        "--stream",
                        "one two three four five six seven eight nine ten",
                    ],
                    &[
                        ("X402C_GRID_URL", devnet_url.as_str()),
                        ("COMPUTE_API_KEY", key.as_str()),
                        ("PRIVATE_KEY", ""),
                        ("SOLANA_SECRET_KEY", ""),
                    ],
                )
                .await
        }
    };
    let kill = async {
        for _ in 0..200 {
            if stalling.runs.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        // Its first chunk is out (the first delta is flushed at once), then it stalls.
        tokio::time::sleep(Duration::from_millis(300)).await;
        node.handle.take().unwrap().abort();
    };
    let (run, ()) = tokio::join!(chat, kill);
    assert_eq!(run.code, 6, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("incomplete"), "{}", run.stderr);
    assert_eq!(keyed.balance_micros(&devnet).await, before, "no charge");
    assert!(
        run.stdout.starts_with("echo:"),
        "the first chunk was shown: {}",
        run.stdout
    );
    // The dropped socket shows in capacity.
    wait_for(&devnet, |c| {
        c["failures"]["socket_drop"].as_u64() >= Some(1)
    })
    .await;
}

#[tokio::test]
async fn the_official_openai_sdk_streams_a_plain_chat_by_base_url_alone() {
    let Some(python) = std::env::var_os("X402C_INTEROP_PYTHON") else {
        // `cargo xtask ci` sets it (the interop venv has the pinned `openai`); a plain
        // `cargo test` cannot run the SDK and says so.
        eprintln!("skipped: X402C_INTEROP_PYTHON is not set (cargo xtask ci sets it)");
        return;
    };
    let devnet = test_support::start().await.unwrap();
    let _node = start_node(&devnet, Arc::new(Echo::new())).await;
    let (_user, key) = keyed_user(&devnet).await;
    let prompt = "hello from the openai sdk";
    let (text, prompt_tokens, completion_tokens) = expected(prompt);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../xtask/interop/openai_chat.py"
    );
    let output = tokio::process::Command::new(python)
        .arg(script)
        .args([
            devnet.url(),
            &key,
            MODEL,
            prompt,
            &text,
            &prompt_tokens.to_string(),
            &completion_tokens.to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `grid-api` client for `key` at the devnet.
pub(super) fn grid_client(devnet: &devnet::Devnet, key: &str) -> grid_api::client::GridClient {
    grid_api::client::GridClient::new(
        devnet.url().parse().unwrap(),
        test_support::http(),
        Some(grid_api::client::GridKey::new(key)),
        Arc::new(test_support::os_random),
    )
}

#[tokio::test]
async fn embeddings_jobs_attestation_and_a_client_that_leaves_through_grid_api() {
    let devnet = test_support::start().await.unwrap();
    let engine = Arc::new(Echo {
        delay: Duration::from_millis(40),
        ..Echo::new()
    });
    let node = start_node(&devnet, engine.clone()).await;
    let (user, key) = keyed_user(&devnet).await;
    let client = grid_client(&devnet, &key);
    let (input, output) = prices(&devnet, &node.node_id).await;

    // Embeddings (our extension), in OpenAI's shape, billed at the input price.
    let request: grid_api::openai::embeddings::CreateEmbeddingRequest =
        serde_json::from_value(json!({ "model": MODEL, "input": ["one two", "three"] })).unwrap();
    let before = user.balance_micros(&devnet).await;
    let embedded = client.embeddings(&request).await.unwrap();
    assert_eq!(embedded.data.len(), 2);
    assert_eq!(embedded.data[0].embedding, vec![2.0, 7.0]);
    assert_eq!(embedded.usage.prompt_tokens, 3);
    let cost = cost_micros(
        &json!({ "prompt_tokens": 3, "completion_tokens": 0 }),
        input,
        output,
    );
    assert_eq!(before - user.balance_micros(&devnet).await, cost);

    // An asynchronous job: submitted, polled to its end, its attestation checked here.
    let job = client
        .submit_job(&grid_api::jobs::JobRequest {
            model: MODEL.into(),
            input: json!("a queued job"),
        })
        .await
        .unwrap();
    let mut done = None;
    for _ in 0..200 {
        let state = client.job(&job.job_id).await.unwrap();
        if state.status == "completed" {
            done = Some(state);
            break;
        }
        assert_ne!(state.status, "failed", "{state:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let done = done.expect("the job never completed");
    assert_eq!(
        done.result.as_ref().unwrap()["content"],
        "echo: a queued job"
    );
    let attestation = client.job_attestation(&job.job_id).await.unwrap();
    assert_eq!(attestation.node_id, node.node_id);
    attestation.verify().unwrap();
    assert!(matches!(
        client.job("../../compute/plans").await,
        Err(grid_api::client::ClientError::Invalid(_))
    ));

    // A client that reads one chunk and leaves: billed only what reached it.
    let before = user.balance_micros(&devnet).await;
    let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let request: grid_api::openai::chat::CreateChatCompletionRequest =
        serde_json::from_value(json!({
            "model": MODEL,
            "messages": [{ "role": "user", "content": words.join(" ") }],
            "max_completion_tokens": 100,
        }))
        .unwrap();
    let mut stream = client
        .chat_stream(&request, &grid_api::chat::ChatOptions::default())
        .await
        .unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.choices[0].delta.content.as_deref(), Some("echo:"));
    let job_id = stream.meta.job_id.clone().unwrap();
    drop(stream);
    let mut left = None;
    for _ in 0..200 {
        let state = client.job(&job_id).await.unwrap();
        if state.status == "completed" || state.status == "failed" {
            left = Some(state);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let left = left.expect("the abandoned job never ended");
    let charged = before - user.balance_micros(&devnet).await;
    let usage = left.usage.unwrap_or_default();
    assert_eq!(left.status, "completed", "{left:?}");
    assert!(
        (1..41).contains(&usage.completion_tokens),
        "billed for tokens never sent, or not for the one that was: {usage:?}"
    );
    assert_eq!(usage.prompt_tokens, 0, "{usage:?}");
    assert_eq!(
        charged,
        cost_micros(
            &json!({ "prompt_tokens": 0, "completion_tokens": usage.completion_tokens }),
            input,
            output
        )
    );
}
