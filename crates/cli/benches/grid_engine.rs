//! The inference grid's overhead with a real model (`cargo xtask bench`): tokens per second
//! and time to first token (TTFT) through the devnet's coordinator and one `sgl` node, against
//! the very same `llama-server` process called directly, side by side in one run.
//!
//! One llama-server (the pinned build `cargo xtask tools` installs, serving SmolLM2-135M on
//! the CPU) runs under the node's supervisor; its launcher is wrapped so the benchmark learns
//! the server's loopback address and per-start API key and can call it directly. Both paths
//! stream the same messages with the same `max_tokens` at temperature 0 (greedy, so both
//! decode the same tokens; the direct call also sends `seed: 42`, which the grid's request has
//! no field for). After one warm-up each, the paths alternate for [`ROUNDS`] rounds each.
//!
//! Per run: TTFT is the time from sending the request (through the grid: from calling
//! `GridClient::chat_stream`, so the reservation and the sealing count) to the first non-empty
//! content delta; decode throughput is `(completion_tokens − 1) / (last content − first
//! content)`; end-to-end throughput is `completion_tokens / total time`; `completion_tokens`
//! is the usage of the final chunk.
//!
//! Goals: through-grid decode throughput ≥ 98% of direct, and ≤ 5 ms added to the first
//! token. They are reported in the output (and in `target/bench/grid_engine.json`, or
//! `grid_engine-tN.json` with `GRID_BENCH_THREADS=N`), never asserted.
//!
//! llama-server's threads are `sgl start`'s (all cores at 100%) unless `GRID_BENCH_THREADS`
//! says otherwise: `cargo xtask bench` runs both that and one core fewer, because here the
//! client, the coordinator and the node share the machine's cores with the engine (in
//! production only the node does), and an engine on every core turns their CPU into lost
//! decoding.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use grid_api::chat::ChatOptions;
use grid_api::client::{GridClient, GridKey};
use grid_api::openai::chat::CreateChatCompletionRequest;
use serde_json::{Value, json};
use sgl_node::engine::Engine as _;
use sgl_node::hardware::Hardware;
use sgl_node::llama::{EngineOptions, Instance, Launch, LlamaServer, Phase, SpawnLauncher};
use x402_core::{EvmSigner as _, LocalEvmSigner, PayTo};
use zeroize::Zeroizing;

const MODEL: &str = "SmolLM2-135M-Instruct";
const PROMPT: &str = "Write a long story about a lighthouse keeper.";
const MAX_TOKENS: u32 = 128;
const SEED: u64 = 42;
/// Measured runs per path, after one warm-up each.
const ROUNDS: usize = 10;
/// Goal: through-grid decode throughput at least this fraction of direct.
const THROUGHPUT_GOAL: f64 = 0.98;
/// Goal: at most this many milliseconds added to the first token.
const TTFT_GOAL_MS: f64 = 5.0;

/// Where the supervised llama-server listens, and its key, as its last start gave them.
type Endpoint = Arc<Mutex<Option<(String, Option<Zeroizing<String>>)>>>;

/// [`SpawnLauncher`], telling the benchmark where each instance it starts listens.
struct Tapped {
    inner: SpawnLauncher,
    seen: Endpoint,
}

#[async_trait::async_trait]
impl Launch for Tapped {
    async fn launch(&self) -> sgl_node::Result<Instance> {
        let instance = self.inner.launch().await?;
        *self.seen.lock().unwrap() = Some((instance.base_url.clone(), instance.api_key.clone()));
        Ok(instance)
    }
}

/// One streamed answer, timed.
#[derive(Clone, Debug)]
struct Sample {
    /// Response headers (direct) or an open stream (grid: reserved, sealed, dispatched).
    open: Duration,
    /// The first non-empty content delta.
    ttft: Duration,
    /// The last content delta.
    last: Duration,
    /// The stream's end.
    total: Duration,
    prompt_tokens: u64,
    completion_tokens: u64,
    /// llama-server's own decode rate (`timings.predicted_per_second`), direct only.
    engine_tps: Option<f64>,
    /// CPU time of this process (the client, the devnet's coordinator and the node) during
    /// the run.
    own_cpu: Duration,
    /// CPU time of llama-server during the run.
    engine_cpu: Duration,
    text: String,
}

impl Sample {
    fn decode_tps(&self) -> f64 {
        let span = self.last.saturating_sub(self.ttft).as_secs_f64();
        if span > 0.0 {
            self.completion_tokens.saturating_sub(1) as f64 / span
        } else {
            0.0
        }
    }

    fn e2e_tps(&self) -> f64 {
        self.completion_tokens as f64 / self.total.as_secs_f64()
    }

    fn json(&self) -> Value {
        json!({
            "open_ms": ms(self.open),
            "ttft_ms": ms(self.ttft),
            "last_content_ms": ms(self.last),
            "total_ms": ms(self.total),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "decode_tokens_per_s": self.decode_tps(),
            "e2e_tokens_per_s": self.e2e_tps(),
            "engine_tokens_per_s": self.engine_tps,
            "own_cpu_ms": ms(self.own_cpu),
            "engine_cpu_ms": ms(self.engine_cpu),
        })
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Collects a stream's content deltas and usage against the time it was sent.
struct Timer {
    sent: Instant,
    open: Duration,
    first: Option<Duration>,
    last: Duration,
    prompt_tokens: u64,
    completion_tokens: Option<u64>,
    engine_tps: Option<f64>,
    text: String,
}

impl Timer {
    fn new(sent: Instant) -> Timer {
        Timer {
            sent,
            open: Duration::ZERO,
            first: None,
            last: Duration::ZERO,
            prompt_tokens: 0,
            completion_tokens: None,
            engine_tps: None,
            text: String::new(),
        }
    }

    fn opened(&mut self) {
        self.open = self.sent.elapsed();
    }

    fn content(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        let now = self.sent.elapsed();
        self.first.get_or_insert(now);
        self.last = now;
        self.text.push_str(text);
    }

    fn finish(self) -> Sample {
        let total = self.sent.elapsed();
        Sample {
            open: self.open,
            ttft: self.first.expect("the answer had no content"),
            last: self.last,
            total,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens.expect("the stream carried no usage"),
            engine_tps: self.engine_tps,
            own_cpu: Duration::ZERO,
            engine_cpu: Duration::ZERO,
            text: self.text,
        }
    }
}

/// The request as the node sends it to llama-server, plus the seed.
fn direct_body() -> Value {
    json!({
        "messages": [{ "role": "user", "content": PROMPT }],
        "temperature": 0.0,
        "seed": SEED,
        "max_tokens": MAX_TOKENS,
        "stream": true,
        "stream_options": { "include_usage": true },
    })
}

/// One streamed chat straight to llama-server, its SSE read line by line.
async fn direct(http: &reqwest::Client, base: &str, key: Option<&str>) -> Sample {
    let mut request = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&direct_body());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let sent = Instant::now();
    let response = request.send().await.expect("llama-server answers");
    let mut timer = Timer::new(sent);
    timer.opened();
    let status = response.status();
    assert!(status.is_success(), "llama-server answered {status}");
    let mut bytes = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    'read: while let Some(part) = bytes.next().await {
        buffer.extend_from_slice(&part.expect("the stream from llama-server"));
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                break 'read;
            }
            let event: Value = serde_json::from_str(data).expect("a JSON event");
            assert!(event.get("error").is_none(), "llama-server failed: {event}");
            if let Some(text) = event
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
            {
                timer.content(text);
            }
            if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                timer.prompt_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0);
                timer.completion_tokens = usage["completion_tokens"].as_u64();
            }
            if let Some(rate) = event
                .pointer("/timings/predicted_per_second")
                .and_then(Value::as_f64)
            {
                timer.engine_tps = Some(rate);
            }
        }
    }
    timer.finish()
}

/// One sealed, streamed chat through the grid.
async fn grid(client: &GridClient) -> Sample {
    let request: CreateChatCompletionRequest = serde_json::from_value(json!({
        "model": MODEL,
        "messages": [{ "role": "user", "content": PROMPT }],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "stream": true,
    }))
    .unwrap();
    let sent = Instant::now();
    let mut stream = client
        .chat_stream(&request, &ChatOptions::default())
        .await
        .expect("the grid opens a stream");
    let mut timer = Timer::new(sent);
    timer.opened();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("the sealed stream");
        if let Some(text) = chunk
            .choices
            .first()
            .and_then(|c| c.delta.content.as_deref())
        {
            timer.content(text);
        }
        if let Some(usage) = &chunk.usage {
            timer.prompt_tokens = u64::from(usage.prompt_tokens);
            timer.completion_tokens = Some(u64::from(usage.completion_tokens));
        }
    }
    timer.finish()
}

/// The pinned llama-server under the node's supervisor, healthy; where it listens; its
/// threads and slots.
async fn engine() -> (Arc<LlamaServer>, Endpoint, u32, u32) {
    let llama = test_support::llama().expect("llama-server and SmolLM2 (cargo xtask tools)");
    let mut options = EngineOptions::new(llama.model, llama.server);
    options.model_name = Some(MODEL.to_owned());
    options.port = 0;
    options.context = 2048;
    options.threads = bench_threads();
    let plan = sgl_node::llama::plan(&options, &Hardware::detect()).unwrap();
    let inner = SpawnLauncher::new(plan.command.clone());
    let drained = inner.drained();
    let seen = Endpoint::default();
    let launcher = Tapped {
        inner,
        seen: seen.clone(),
    };
    let engine = Arc::new(LlamaServer::start(
        MODEL.to_owned(),
        plan.command.context,
        Box::new(launcher),
        plan.supervision,
        Some(drained),
    ));
    let mut status = engine.subscribe();
    tokio::time::timeout(
        Duration::from_secs(120),
        status.wait_for(|s| s.phase == Phase::Ready),
    )
    .await
    .unwrap_or_else(|_| panic!("llama-server never became healthy: {:?}", engine.status()))
    .unwrap();
    (engine, seen, plan.command.threads, plan.slots)
}

async fn post(http: &reqwest::Client, devnet: &devnet::Devnet, path: &str, body: Value) -> Value {
    let response = http
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

/// Registers a node for `engine` and starts it; returns once the grid routes to it.
async fn start_node(
    http: &reqwest::Client,
    devnet: &devnet::Devnet,
    engine: Arc<LlamaServer>,
    slots: u32,
    dir: &std::path::Path,
) -> sgl_node::NodeHandle {
    let wallet = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU";
    let code = post(
        http,
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
    let config_dir = sgl_node::files::ConfigDir::new(dir.to_path_buf());
    let mut registration = sgl_node::register::Registration::new(wallet);
    registration.registration_code = Some(code);
    registration.models = vec![engine.model()];
    sgl_node::register::register(
        &coordinator,
        &config_dir,
        &registration,
        &Hardware::detect(),
    )
    .await
    .unwrap();
    let (_, identity) = config_dir.identity().unwrap();
    let mut config = sgl_node::NodeConfig::new(url, identity);
    config.heartbeat_interval = Duration::from_millis(200);
    config.slots = slots;
    let handle = sgl_node::Node::start(config, Some(engine)).unwrap();
    for _ in 0..200 {
        let capacity: Value = http
            .get(format!("{}/grid/capacity", devnet.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if capacity["available_nodes"] == 1 {
            return handle;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the node never became available on the grid");
}

/// An API key whose wallet holds $100 of grid credits.
async fn api_key(devnet: &devnet::Devnet) -> String {
    let mut secret = [0u8; 32];
    test_support::os_random(&mut secret);
    let customer = LocalEvmSigner::from_bytes(&secret).unwrap();
    let created = test_support::Client::of(devnet)
        .call_ok(
            &customer,
            reqwest::Method::POST,
            "/compute/api-keys",
            Some(json!({ "label": "bench" })),
        )
        .await
        .unwrap();
    devnet
        .store()
        .deposit(&PayTo::Evm(customer.address()), 100_000_000)
        .unwrap();
    created["api_key"].as_str().unwrap().to_owned()
}

/// CPU time of every thread of process `pid` ("self" for this one) so far, from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds on a CPU; threads that have exited are lost,
/// which the long-lived runtime and engine threads are not).
fn cpu_time(pid: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

/// llama-server's own decode rates, read from its `eval time = … tokens per second` log lines
/// as the node drains them (so they are known for grid runs too, whose usage carries none).
static ENGINE_RATES: Mutex<Vec<f64>> = Mutex::new(Vec::new());

/// The decode rate of an `eval time` line (not `prompt eval time`).
fn eval_rate(line: &str) -> Option<f64> {
    let at = line.find(" eval time")?;
    if line[..at].trim_end().ends_with("prompt") {
        return None;
    }
    let tail = &line[at..];
    let end = tail.find(" tokens per second")?;
    tail[..end]
        .rsplit(|c: char| c == ',' || c.is_whitespace())
        .find(|word| !word.is_empty())?
        .parse()
        .ok()
}

/// Where the node's log of llama-server's output goes: only the decode rates are kept.
struct RateWriter;

impl std::io::Write for RateWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for line in String::from_utf8_lossy(buf).lines() {
            if let Some(rate) = eval_rate(line) {
                ENGINE_RATES.lock().unwrap().push(rate);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs one timed request, adding the CPU time this process and llama-server (`engine_pid`)
/// spent meanwhile, and llama-server's own decode rate for it.
async fn with_cpu(engine_pid: Option<u32>, run: impl Future<Output = Sample>) -> Sample {
    let engine_pid = engine_pid.map_or_else(|| "none".to_owned(), |pid| pid.to_string());
    let rates_before = ENGINE_RATES.lock().unwrap().len();
    let (own, engine) = (cpu_time("self"), cpu_time(&engine_pid));
    let mut sample = run.await;
    sample.own_cpu = cpu_time("self").saturating_sub(own);
    sample.engine_cpu = cpu_time(&engine_pid).saturating_sub(engine);
    // Its timing line follows the answer by a moment.
    for _ in 0..50 {
        if ENGINE_RATES.lock().unwrap().len() > rates_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if let Some(&rate) = ENGINE_RATES.lock().unwrap()[rates_before..].last() {
        sample.engine_tps = Some(rate);
    }
    sample
}

/// The 1-, 5- and 15-minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The CPU model and the logical processors listed in /proc/cpuinfo.
fn machine() -> (String, usize) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    (model, processors)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Medians of one path's samples.
struct Summary {
    open_ms: f64,
    ttft_ms: f64,
    decode_tps: f64,
    e2e_tps: f64,
    total_ms: f64,
    engine_tps: Option<f64>,
    own_cpu_ms: f64,
    engine_cpu_ms: f64,
}

fn summary(samples: &[Sample]) -> Summary {
    let of = |f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let engine: Vec<f64> = samples.iter().filter_map(|s| s.engine_tps).collect();
    Summary {
        open_ms: of(|s| ms(s.open)),
        ttft_ms: of(|s| ms(s.ttft)),
        decode_tps: of(Sample::decode_tps),
        e2e_tps: of(Sample::e2e_tps),
        total_ms: of(|s| ms(s.total)),
        engine_tps: (!engine.is_empty()).then(|| median(engine)),
        own_cpu_ms: of(|s| ms(s.own_cpu)),
        engine_cpu_ms: of(|s| ms(s.engine_cpu)),
    }
}

/// `target/bench/grid_engine.json`: the target directory is three levels above this
/// benchmark's executable (`target/release/deps/grid_engine-…`).
fn json_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        })
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target"))
        });
    match bench_threads() {
        Some(threads) => target.join(format!("bench/grid_engine-t{threads}.json")),
        None => target.join("bench/grid_engine.json"),
    }
}

/// `GRID_BENCH_THREADS`: llama-server's threads, when not `sgl start`'s.
fn bench_threads() -> Option<u32> {
    std::env::var("GRID_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .filter(|&t| t > 0)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; under `cargo test --all-targets` there is nothing to
    // check without it, and a minute of model runs would only slow the tests.
    if !std::env::args().any(|a| a == "--bench") {
        println!("grid_engine: run it with `cargo bench` (cargo xtask bench)");
        return;
    }
    devnet::install_crypto_provider();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "sgl_node::llama_server=debug",
        ))
        .with_ansi(false)
        .with_writer(|| RateWriter)
        .init();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let (cpu, processors) = machine();
    let parallelism = std::thread::available_parallelism().map_or(0, usize::from);

    let devnet = test_support::start()
        .await
        .expect("a devnet (cargo xtask tools)");
    let (engine, endpoint, threads, slots) = engine().await;
    let (base, key) = endpoint
        .lock()
        .unwrap()
        .clone()
        .expect("the launcher saw the instance");
    let mut seed = [0u8; 6];
    test_support::os_random(&mut seed);
    let dir = std::env::temp_dir().join(format!(
        "sgl-bench-{}-{}",
        std::process::id(),
        seed.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    let node = start_node(&http, &devnet, engine.clone(), slots, &dir).await;
    let client = GridClient::new(
        devnet.url().parse().unwrap(),
        http.clone(),
        Some(GridKey::new(api_key(&devnet).await)),
        Arc::new(test_support::os_random),
    );
    let key = key.as_ref().map(|k| k.as_str());

    println!(
        "grid_engine: {MODEL} on llama-server ({threads} threads, {slots} slot(s)), \
         {MAX_TOKENS} max tokens, temperature 0"
    );
    println!("machine: {cpu}, {processors} logical CPUs ({parallelism} available to this process)");
    let load_before = load_average();
    println!(
        "warming up each path once, then {ROUNDS} rounds of both (the first path swapping each \
         round); load average before: {load_before}"
    );
    let pid = || engine.status().pid;
    let warm_direct = with_cpu(pid(), direct(&http, &base, key)).await;
    let warm_grid = with_cpu(pid(), grid(&client)).await;
    let mut directs = Vec::new();
    let mut grids = Vec::new();
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            directs.push(with_cpu(pid(), direct(&http, &base, key)).await);
            grids.push(with_cpu(pid(), grid(&client)).await);
        } else {
            grids.push(with_cpu(pid(), grid(&client)).await);
            directs.push(with_cpu(pid(), direct(&http, &base, key)).await);
        }
    }
    let load_after = load_average();

    println!();
    println!(
        "{:<8} {:>3} {:>9} {:>9} {:>10} {:>11} {:>9} {:>8} {:>8} {:>9} {:>9}",
        "path",
        "run",
        "open ms",
        "TTFT ms",
        "decode t/s",
        "e2e tok/s",
        "total ms",
        "prompt",
        "tokens",
        "cpu ms",
        "llama cpu"
    );
    let row = |path: &str, run: &str, s: &Sample| {
        println!(
            "{:<8} {:>3} {:>9.2} {:>9.2} {:>10.1} {:>11.1} {:>9.1} {:>8} {:>8} {:>9.1} {:>9.1}",
            path,
            run,
            ms(s.open),
            ms(s.ttft),
            s.decode_tps(),
            s.e2e_tps(),
            ms(s.total),
            s.prompt_tokens,
            s.completion_tokens,
            ms(s.own_cpu),
            ms(s.engine_cpu)
        );
    };
    row("direct", "w", &warm_direct);
    row("grid", "w", &warm_grid);
    for (i, (d, g)) in directs.iter().zip(&grids).enumerate() {
        row("direct", &(i + 1).to_string(), d);
        row("grid", &(i + 1).to_string(), g);
    }

    let d = summary(&directs);
    let g = summary(&grids);
    let throughput_ratio = g.decode_tps / d.decode_tps;
    let e2e_ratio = g.e2e_tps / d.e2e_tps;
    let ttft_added_ms = g.ttft_ms - d.ttft_ms;
    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>16}",
        format!("median of {ROUNDS}"),
        "direct",
        "grid",
        "grid vs direct"
    );
    println!(
        "{:<28} {:>10.2} {:>10.2} {:>+13.2} ms",
        "stream open (ms)",
        d.open_ms,
        g.open_ms,
        g.open_ms - d.open_ms
    );
    println!(
        "{:<28} {:>10.2} {:>10.2} {:>+13.2} ms",
        "time to first token (ms)", d.ttft_ms, g.ttft_ms, ttft_added_ms
    );
    println!(
        "{:<28} {:>10.1} {:>10.1} {:>14.1} %",
        "decode tokens/s",
        d.decode_tps,
        g.decode_tps,
        throughput_ratio * 100.0
    );
    let range = |samples: &[Sample]| {
        let rates: Vec<f64> = samples.iter().map(Sample::decode_tps).collect();
        let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let high = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{low:.1}–{high:.1}")
    };
    println!(
        "{:<28} {:>10} {:>10}",
        "decode tokens/s, min–max",
        range(&directs),
        range(&grids)
    );
    println!(
        "{:<28} {:>10.1} {:>10.1} {:>14.1} %",
        "end-to-end tokens/s",
        d.e2e_tps,
        g.e2e_tps,
        e2e_ratio * 100.0
    );
    println!(
        "{:<28} {:>10.1} {:>10.1} {:>+13.1} ms",
        "total (ms)",
        d.total_ms,
        g.total_ms,
        g.total_ms - d.total_ms
    );
    println!(
        "{:<28} {:>10.1} {:>10.1} {:>+13.1} ms",
        "CPU of this process (ms)",
        d.own_cpu_ms,
        g.own_cpu_ms,
        g.own_cpu_ms - d.own_cpu_ms
    );
    println!(
        "{:<28} {:>10.1} {:>10.1} {:>+13.1} ms",
        "CPU of llama-server (ms)",
        d.engine_cpu_ms,
        g.engine_cpu_ms,
        g.engine_cpu_ms - d.engine_cpu_ms
    );
    if let (Some(direct), Some(grid)) = (d.engine_tps, g.engine_tps) {
        println!(
            "{:<28} {:>10.1} {:>10.1} {:>14.1} %",
            "llama-server's own decode t/s",
            direct,
            grid,
            grid / direct * 100.0
        );
        println!(
            "{:<28} {:>10.1} % {:>8.1} %",
            "delivered / engine's own",
            d.decode_tps / direct * 100.0,
            g.decode_tps / grid * 100.0
        );
        println!(
            "(the grid path's own cost is the last row; the engine's slowdown beside it is the \
             CPU and cache it shares with the client, coordinator and node on this machine)"
        );
    }
    println!();
    println!(
        "goal: through-grid decode throughput >= {:.0}% of direct: {:.1}% — {}",
        THROUGHPUT_GOAL * 100.0,
        throughput_ratio * 100.0,
        met(throughput_ratio >= THROUGHPUT_GOAL)
    );
    println!(
        "goal: <= {TTFT_GOAL_MS:.0} ms added to the first token: {ttft_added_ms:+.2} ms — {}",
        met(ttft_added_ms <= TTFT_GOAL_MS)
    );

    let all: Vec<&Sample> = directs
        .iter()
        .chain(&grids)
        .chain([&warm_direct, &warm_grid])
        .collect();
    let counts_match = all
        .iter()
        .all(|s| s.completion_tokens == warm_direct.completion_tokens);
    let prompts_match = all
        .iter()
        .all(|s| s.prompt_tokens == warm_direct.prompt_tokens);
    let texts_match = all.iter().all(|s| s.text == warm_direct.text);
    println!(
        "completion tokens: direct {} / grid {}; prompt tokens: direct {} / grid {}; \
         same text on every run: {}",
        warm_direct.completion_tokens,
        warm_grid.completion_tokens,
        warm_direct.prompt_tokens,
        warm_grid.prompt_tokens,
        if texts_match { "yes" } else { "no" }
    );
    if !counts_match {
        println!("WARNING: the completion token counts differ between runs or paths");
    }
    if !prompts_match {
        println!("WARNING: the prompt token counts differ between runs or paths");
    }
    println!(
        "load average after: {load_after}. CPU columns: this process is the client, the \
         devnet's coordinator and the node; llama-server runs with {threads} threads on \
         {parallelism} CPUs, so CPU the grid path uses is taken from decoding when they are \
         all busy."
    );
    println!(
        "note: the grid's request has no seed; temperature 0 is greedy, so both paths decode \
         the same tokens (the direct call also sends seed {SEED}). Grid TTFT includes the \
         reservation and the sealing; the node sends tokens in sealed chunks of up to 6."
    );

    let report = json!({
        "model": MODEL,
        "prompt": PROMPT,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.0,
        "direct_seed": SEED,
        "rounds": ROUNDS,
        "machine": {
            "cpu": cpu,
            "logical_cpus": processors,
            "available_parallelism": parallelism,
            "llama_server_threads": threads,
            "slots": slots,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
        "median": {
            "direct": {
                "open_ms": d.open_ms,
                "ttft_ms": d.ttft_ms,
                "decode_tokens_per_s": d.decode_tps,
                "e2e_tokens_per_s": d.e2e_tps,
                "total_ms": d.total_ms,
                "engine_tokens_per_s": d.engine_tps,
                "own_cpu_ms": d.own_cpu_ms,
                "engine_cpu_ms": d.engine_cpu_ms,
            },
            "grid": {
                "open_ms": g.open_ms,
                "ttft_ms": g.ttft_ms,
                "decode_tokens_per_s": g.decode_tps,
                "e2e_tokens_per_s": g.e2e_tps,
                "total_ms": g.total_ms,
                "engine_tokens_per_s": g.engine_tps,
                "own_cpu_ms": g.own_cpu_ms,
                "engine_cpu_ms": g.engine_cpu_ms,
            },
        },
        "throughput_ratio": throughput_ratio,
        "e2e_throughput_ratio": e2e_ratio,
        "ttft_added_ms": ttft_added_ms,
        "goals": {
            "throughput_ratio_min": THROUGHPUT_GOAL,
            "throughput_met": throughput_ratio >= THROUGHPUT_GOAL,
            "ttft_added_ms_max": TTFT_GOAL_MS,
            "ttft_met": ttft_added_ms <= TTFT_GOAL_MS,
        },
        "completion_tokens_match": counts_match,
        "prompt_tokens_match": prompts_match,
        "texts_match": texts_match,
        "runs": {
            "warmup": { "direct": warm_direct.json(), "grid": warm_grid.json() },
            "direct": directs.iter().map(Sample::json).collect::<Vec<_>>(),
            "grid": grids.iter().map(Sample::json).collect::<Vec<_>>(),
        },
    });
    let path = json_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    println!("wrote {}", path.display());

    node.abort();
    engine.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
