//! The grid coordinator over HTTP, driven as a node and as a client would: registration by
//! code and by device login, heartbeats with a real key binding, jobs pulled by heartbeat and
//! pushed over the WebSocket, results signed with the node's key, credits billed exactly,
//! x402 without a key, forged results, the price band, off-grid, streams and timeouts. The
//! devnet's clock is a `TestClock`: nothing sleeps for timing.

use std::sync::Arc;
use std::time::Duration;

use devnet::TestClock;
use futures_util::StreamExt as _;
use grid_proto::envelope::{self, ResultKind};
use grid_proto::node::{InnerRequest, PlainResult};
use grid_proto::seal::{self, StreamSealer};
use grid_proto::{Usage, node::KEY_VERSION};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::Client;
use x402_core::{LocalEvmSigner, PayTo};

const MODEL: &str = "llama-3.2-3b";
/// The suggested price of `MODEL`, micro-dollars per 1M tokens.
const INPUT: u64 = 60_000;
const OUTPUT: u64 = 120_000;

fn cost(prompt: u64, completion: u64, input: u64, output: u64) -> u64 {
    (u128::from(prompt) * u128::from(input) + u128::from(completion) * u128::from(output))
        .div_ceil(1_000_000) as u64
}

struct Node {
    id: String,
    token: String,
    seed: [u8; 32],
}

impl Node {
    fn public(&self) -> String {
        envelope::public_key(&self.seed)
    }
}

async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn post(
    api: &Client,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = api.post(path, body.to_string().as_bytes());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    json_of(request.send().await.unwrap()).await
}

async fn get(api: &Client, path: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut request = api.get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    json_of(request.send().await.unwrap()).await
}

fn operator() -> String {
    format!("{:#x}", alloy::primitives::Address::repeat_byte(0x11))
}

fn register_body(wallet: &str, code: &str, seed: &[u8; 32]) -> Value {
    json!({
        "wallet_address": wallet,
        "registration_code": code,
        "tee_type": "none",
        "available_models": [MODEL],
        "public_key": envelope::public_key(seed),
        "cpu_cores": 2,
        "ram_gb": 4.0,
        "gpu_model": "none",
        "supported_runtimes": ["llama.cpp"],
    })
}

async fn register(api: &Client, seed: [u8; 32]) -> Node {
    let (status, code) = post(
        api,
        "/devnet/grid/codes",
        json!({"wallet_address": operator()}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{code}");
    let code = code["registration_code"].as_str().unwrap();
    let (status, registered) = post(
        api,
        "/grid/nodes/register",
        register_body(&operator(), code, &seed),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    Node {
        id: registered["node_id"].as_str().unwrap().to_owned(),
        token: registered["auth_token"].as_str().unwrap().to_owned(),
        seed,
    }
}

fn heartbeat_body(node: &Node, active: &[&str]) -> Value {
    let id = uuid::Uuid::parse_str(&node.id).unwrap();
    json!({
        "current_load": 0.0,
        "available_models": [MODEL],
        "encryption_public_key": seal::node_x25519_public(&node.seed),
        "encryption_public_key_signature": seal::sign_keybind(&id, &node.seed, KEY_VERSION),
        "key_version": KEY_VERSION,
        "capabilities": {"streaming": true, "context_size": 4096, "embeddings": true},
        "active_job_ids": active,
        "binary_hash": "ab".repeat(32),
        "max_concurrent_jobs": 2,
    })
}

async fn heartbeat(api: &Client, node: &Node, active: &[&str]) -> Value {
    let (status, answer) = post(
        api,
        "/grid/nodes/heartbeat",
        heartbeat_body(node, active),
        &[("x-node-auth", &node.token), ("x-node-id", &node.id)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// Heartbeats until a job comes (the client's request is dispatched concurrently).
async fn next_job(api: &Client, node: &Node) -> Value {
    for _ in 0..200 {
        let beat = heartbeat(api, node, &[]).await;
        if let Some(job) = beat["pending_jobs"]
            .as_array()
            .and_then(|jobs| jobs.first())
        {
            return job.clone();
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no job was dispatched");
}

fn plain_completion(node: &Node, job: &str, content: &str, usage: Usage, seed: &[u8; 32]) -> Value {
    let result = serde_json::to_string(&PlainResult {
        content: content.into(),
        model: MODEL.into(),
        usage,
    })
    .unwrap();
    let _ = node;
    json!({
        "encrypted_result": result,
        "result_envelope_signature": envelope::sign_result(seed, job, ResultKind::Plain, result.as_bytes()),
        "result_envelope_version": "v1",
    })
}

async fn api_key(api: &Client, wallet: &LocalEvmSigner) -> String {
    let created = api
        .call_ok(
            wallet,
            Method::POST,
            "/compute/api-keys",
            Some(json!({"label": "grid"})),
        )
        .await
        .unwrap();
    created["api_key"].as_str().unwrap().to_owned()
}

fn chat_body() -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100})
}

#[tokio::test]
async fn a_node_registers_serves_a_billed_chat_and_is_slashed_for_a_forged_result() {
    let clock = TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());

    // Registration: a code is single use and bound to its wallet; the key must be 32 bytes.
    let (_, code) = post(
        &api,
        "/devnet/grid/codes",
        json!({"wallet_address": operator()}),
        &[],
    )
    .await;
    let code = code["registration_code"].as_str().unwrap();
    let other = format!("{:#x}", alloy::primitives::Address::repeat_byte(0x22));
    let (status, refused) = post(
        &api,
        "/grid/nodes/register",
        register_body(&other, code, &[1; 32]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("another wallet")
    );
    let mut bad_key = register_body(&operator(), code, &[1; 32]);
    bad_key["public_key"] = json!("abc");
    let (status, _) = post(&api, "/grid/nodes/register", bad_key, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(
        &api,
        "/grid/nodes/register",
        register_body(&operator(), code, &[1; 32]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, used) = post(
        &api,
        "/grid/nodes/register",
        register_body(&operator(), code, &[1; 32]),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{used}");

    let node = register(&api, [7; 32]).await;
    assert!(uuid::Uuid::parse_str(&node.id).is_ok());
    heartbeat(&api, &node, &[]).await;
    let auth = [("x-node-auth", node.token.as_str())];
    let (_, status) = get(&api, &format!("/grid/nodes/{}", node.id), &auth).await;
    assert_eq!(status["status"], "online");
    assert_eq!(status["keybind_verified"], true);

    // A customer with an API key and $1 of credits.
    let customer = LocalEvmSigner::from_bytes(&[0x33; 32]).unwrap();
    let wallet = PayTo::Evm(x402_core::EvmSigner::address(&customer));
    let key = api_key(&api, &customer).await;
    devnet.store().deposit(&wallet, 1_000_000).unwrap();
    let bearer = format!("Bearer {key}");
    let (status, models) = get(&api, "/v1/models", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    assert_eq!(models["data"][0]["id"], MODEL);
    assert_eq!(models["data"][0]["owned_by"], "sgl-grid");
    let (status, _) = get(&api, "/v1/models", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A plain chat: dispatched by heartbeat, completed with a signed result, billed exactly.
    let chat = tokio::spawn({
        let api = api.clone();
        let bearer = bearer.clone();
        async move {
            let response = api
                .post("/v1/chat/completions", chat_body().to_string().as_bytes())
                .header("authorization", bearer)
                .send()
                .await
                .unwrap();
            let job = response
                .headers()
                .get("x-grid-job-id")
                .map(|v| v.to_str().unwrap().to_owned());
            let (status, body) = json_of(response).await;
            (status, body, job)
        }
    });
    let job = next_job(&api, &node).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["job_type"], "inference");
    assert_eq!(job["input_payload"]["messages"][0]["content"], "hi");
    assert_eq!(job["input_payload"]["max_tokens"], 100);
    let held = devnet.store().credits(&wallet).unwrap().balance_micros();
    assert!(held < 1_000_000, "the quote is held while the job runs");
    // Within the hold (a cost above it would be capped at it).
    let usage = Usage::new(50, 100);
    let (status, done) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        plain_completion(&node, &job_id, "hello there", usage, &node.seed),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (status, answer, header) = chat.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header.as_deref(), Some(job_id.as_str()));
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["choices"][0]["message"]["content"], "hello there");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["total_tokens"], 150);
    assert_eq!(answer["attestation"]["node_id"], node.id.as_str());
    let billed = cost(50, 100, INPUT, OUTPUT);
    assert_eq!(billed, 15);
    assert_eq!(
        devnet.store().credits(&wallet).unwrap().balance_micros(),
        1_000_000 - billed,
        "exactly the cost, the rest of the hold refunded"
    );
    let key_header = [("x-api-key", key.as_str())];
    let (_, read) = get(&api, &format!("/grid/jobs/{job_id}"), &key_header).await;
    assert_eq!(read["status"], "completed");
    assert_eq!(read["cost_micros"], 15);
    assert_eq!(read["result"]["content"], "hello there");
    let (_, attested) = get(
        &api,
        &format!("/grid/jobs/{job_id}/attestation"),
        &key_header,
    )
    .await;
    assert_eq!(attested["verified"], true);
    assert_eq!(attested["result_kind"], "plain");
    assert_eq!(attested["node_public_key"], node.public().as_str());
    // Only the node the job was assigned to may post its result, and only once.
    let (status, _) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        plain_completion(&node, &job_id, "again", usage, &node.seed),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Prices: within the band of an advertised model only.
    let prices = format!("/grid/nodes/{}/prices", node.id);
    let (status, refused) = post(
        &api,
        &prices,
        json!({"model": MODEL, "input_per_m": 0.01, "output_per_m": 0.12}),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("outside the band"),
        "{refused}"
    );
    let (status, _) = post(
        &api,
        &prices,
        json!({"model": "other", "input_per_m": 0.1, "output_per_m": 0.2}),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, set) = post(
        &api,
        &prices,
        json!({"model": MODEL, "input_per_m": 0.09, "output_per_m": "0.18"}),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (_, listed) = get(&api, &prices, &[]).await;
    assert_eq!(listed["prices"][0]["effective"]["inputPerM"], json!(0.09));
    assert_eq!(listed["prices"][0]["reference"]["outputPerM"], json!(0.12));
    let (_, providers) = get(&api, &format!("/v1/providers?model={MODEL}"), &[]).await;
    // Cheapest first: the node registered above (never heard from) is at the suggested price.
    assert_eq!(providers["count"], 2);
    assert_eq!(providers["providers"][0]["online"], false);
    assert_eq!(providers["providers"][1]["node_id"], node.id.as_str());
    assert_eq!(providers["providers"][1]["is_custom"], true);
    assert_eq!(providers["providers"][1]["online"], true);
    assert_eq!(providers["providers"][1]["blended_per_1k"], json!(0.000135));
    // Anti-flap: the next change waits 30 s of the devnet's clock.
    let (status, early) = post(&api, &prices, json!({"model": MODEL, "reset": true}), &auth).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{early}");
    assert!(early.to_string().contains("retry in 30 s"), "{early}");
    clock.advance(Duration::from_secs(30));
    heartbeat(&api, &node, &[]).await;
    let (status, _) = post(&api, &prices, json!({"model": MODEL, "reset": true}), &auth).await;
    assert_eq!(status, StatusCode::OK);

    // A forged result: 403, the job fails (nothing billed) and the node is never routed again.
    let before = devnet.store().credits(&wallet).unwrap().balance_micros();
    let chat = tokio::spawn({
        let api = api.clone();
        let bearer = bearer.clone();
        async move {
            json_of(
                api.post("/v1/chat/completions", chat_body().to_string().as_bytes())
                    .header("authorization", bearer)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    });
    let job = next_job(&api, &node).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let (status, forged) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        plain_completion(&node, &job_id, "forged", usage, &[8; 32]),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{forged}");
    let (status, failed) = chat.await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{failed}");
    assert_eq!(failed["error"]["code"], "node_failed");
    assert_eq!(
        devnet.store().credits(&wallet).unwrap().balance_micros(),
        before
    );
    let (_, status) = get(&api, &format!("/grid/nodes/{}", node.id), &auth).await;
    assert_eq!(status["status"], "tampered");
    let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
    assert_eq!(capacity["failures"]["tampered"], 1);
    assert_eq!(capacity["active_nodes"], 0);
    let (status, missing) = post(
        &api,
        "/v1/chat/completions",
        chat_body(),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn x402_pays_a_chat_without_a_key_and_the_unused_quote_stays_as_credits() {
    let clock = TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());
    let node = register(&api, [9; 32]).await;
    heartbeat(&api, &node, &[]).await;
    let payer = Arc::new(test_support::funded_wallet(&devnet, 5).await.unwrap());
    let body = chat_body();
    let quote = cost(body.to_string().len() as u64 + 64, 100, INPUT, OUTPUT).max(1);

    let first = api
        .post("/v1/chat/completions", body.to_string().as_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::PAYMENT_REQUIRED);
    let challenge = test_support::challenge(first).await.unwrap();
    assert!(!challenge.offers().is_empty());

    let paying = tokio::spawn({
        let api = api.clone();
        let payer = payer.clone();
        let body = body.clone();
        async move {
            let response = api
                .pay_base(&payer, "/v1/chat/completions", body)
                .await
                .unwrap();
            let receipt = test_support::receipt(&response).unwrap();
            let (status, answer) = json_of(response).await;
            (status, answer, receipt)
        }
    });
    let job = next_job(&api, &node).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let auth = [("x-node-auth", node.token.as_str())];
    let (status, _) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        plain_completion(&node, &job_id, "paid", Usage::new(10, 20), &node.seed),
        &auth,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer, receipt) = paying.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(receipt.is_some_and(|r| r.success));
    let payer_wallet = PayTo::Evm(x402_core::EvmSigner::address(&*payer));
    assert_eq!(
        devnet
            .store()
            .credits(&payer_wallet)
            .unwrap()
            .balance_micros(),
        quote - cost(10, 20, INPUT, OUTPUT),
        "undelivered tokens are returned to the payer's credits"
    );
}

#[tokio::test]
async fn device_login_off_grid_websocket_push_a_plain_stream_and_timeouts() {
    let clock = TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());

    // Device login: pending, approved with a code for the wallet, then registration.
    let (_, start) = post(&api, "/grid/auth/device/start", json!({}), &[]).await;
    assert!(
        start["verify_url"]
            .as_str()
            .unwrap()
            .contains("/devnet/grid/device?user_code=")
    );
    let device = json!({"device_code": start["device_code"]});
    let (_, poll) = post(&api, "/grid/auth/device/poll", device.clone(), &[]).await;
    assert_eq!(poll["status"], "pending");
    let (status, _) = post(
        &api,
        "/devnet/grid/device/approve",
        json!({"user_code": start["user_code"], "wallet_address": operator()}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, poll) = post(&api, "/grid/auth/device/poll", device, &[]).await;
    assert_eq!(poll["status"], "approved");
    let seed = [5u8; 32];
    let (status, registered) = post(
        &api,
        "/grid/nodes/register",
        register_body(
            poll["wallet_address"].as_str().unwrap(),
            poll["registration_code"].as_str().unwrap(),
            &seed,
        ),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    let node = Node {
        id: registered["node_id"].as_str().unwrap().to_owned(),
        token: registered["auth_token"].as_str().unwrap().to_owned(),
        seed,
    };
    heartbeat(&api, &node, &[]).await;
    let auth = [("x-node-auth", node.token.as_str())];

    let customer = LocalEvmSigner::from_bytes(&[0x44; 32]).unwrap();
    let wallet = PayTo::Evm(x402_core::EvmSigner::address(&customer));
    let key = api_key(&api, &customer).await;
    devnet.store().deposit(&wallet, 1_000_000).unwrap();
    let bearer = format!("Bearer {key}");

    // Off-grid takes the node out of capacity and routing.
    let status_path = format!("/grid/nodes/{}/status", node.id);
    post(&api, &status_path, json!({"off_grid": true}), &auth).await;
    let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
    assert_eq!(capacity["active_nodes"], 0);
    assert_eq!(capacity["total_nodes"], 1);
    let (status, _) = post(
        &api,
        "/v1/chat/completions",
        chat_body(),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    post(&api, &status_path, json!({"off_grid": false}), &auth).await;
    let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
    assert_eq!(capacity["active_nodes"], 1);
    assert_eq!(capacity["models"][0]["model"], MODEL);

    // The WebSocket: a streamed plain chat's job is pushed; the coordinator sealed it to us.
    let ws_url = format!(
        "{}/grid/nodes/{}/ws?auth_token={}",
        devnet.url().replacen("http", "ws", 1),
        node.id,
        node.token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    let streamed = tokio::spawn({
        let api = api.clone();
        let bearer = bearer.clone();
        async move {
            let mut body = chat_body();
            body["stream"] = json!(true);
            body["stream_options"] = json!({"include_usage": true});
            let response = api
                .post("/v1/chat/completions", body.to_string().as_bytes())
                .header("authorization", bearer)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.text().await.unwrap())
        }
    });
    let pushed: Value = loop {
        let message = socket.next().await.unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            if value["type"] == "job" {
                break value;
            }
        }
    };
    let job_id = pushed["job"]["id"].as_str().unwrap().to_owned();
    let enc = &pushed["job"]["input_payload"]["enc"];
    assert_eq!(pushed["job"]["input_payload"]["stream"], true);
    let opened = seal::open_request(
        &seal::node_x25519_secret(&seed),
        enc["ciphertext"].as_str().unwrap(),
        enc["client_ephemeral_pubkey"].as_str().unwrap(),
        enc["client_response_pubkey"].as_str(),
        enc["algorithm"].as_str(),
    )
    .unwrap();
    let inner: InnerRequest = serde_json::from_slice(&opened.plaintext).unwrap();
    assert_eq!(inner.messages[0].content, "hi");
    let nonce = inner.nonce.unwrap();
    let mut sealer = StreamSealer::new(
        opened.response_pubkey.as_deref().unwrap(),
        nonce,
        &mut test_support::os_random,
    )
    .unwrap();
    for (text, last) in [("Hello", false), (" world", false), ("", true)] {
        let chunk = sealer.seal(text.as_bytes(), last, &mut test_support::os_random);
        let kind = ResultKind::Stream {
            seq: chunk.seq,
            last,
        };
        let mut body = json!({
            "seq": chunk.seq,
            "final": last,
            "ciphertext": chunk.ct,
            "algorithm": "x25519-xchacha20poly1305-hkdf-v2-stream",
            "result_envelope_signature": envelope::sign_result(&seed, &job_id, kind, chunk.ct.as_bytes()),
            "result_envelope_version": "v1",
        });
        if let Some(eph) = chunk.eph {
            body["ephemeral_public_key"] = json!(eph);
        }
        if last {
            body["usage"] = json!(Usage::new(30, 2));
        }
        let (status, ack) = post(&api, &format!("/grid/jobs/{job_id}/chunk"), body, &auth).await;
        assert_eq!(status, StatusCode::OK, "{ack}");
        assert_eq!(ack["ok"], true);
    }
    let (status, text) = streamed.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello world");
    assert!(
        events
            .iter()
            .any(|e| e["choices"][0]["finish_reason"] == "stop")
    );
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 2);
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(
        devnet.store().credits(&wallet).unwrap().balance_micros(),
        1_000_000 - cost(30, 2, INPUT, OUTPUT)
    );

    // A job with no progress for 120 s fails; nothing is billed; the failure is counted.
    let before = devnet.store().credits(&wallet).unwrap().balance_micros();
    let stuck = tokio::spawn({
        let api = api.clone();
        let bearer = bearer.clone();
        async move {
            json_of(
                api.post("/v1/chat/completions", chat_body().to_string().as_bytes())
                    .header("authorization", bearer)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    });
    let job = next_job(&api, &node).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    clock.advance(Duration::from_secs(121));
    heartbeat(&api, &node, &[job_id.as_str()]).await;
    let (status, failed) = stuck.await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timeout"),
        "{failed}"
    );
    assert_eq!(
        devnet.store().credits(&wallet).unwrap().balance_micros(),
        before
    );

    // The socket drops: counted.
    drop(socket);
    let mut dropped = 0;
    for _ in 0..200 {
        let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
        dropped = capacity["failures"]["socket_drop"].as_u64().unwrap();
        if dropped > 0 {
            assert!(capacity["failures"]["job_timeout"].as_u64().unwrap() >= 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dropped, 1);

    // Heartbeats stop: the node goes offline and is counted once.
    clock.advance(Duration::from_secs(16));
    let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
    assert_eq!(capacity["active_nodes"], 0);
    // Counted by the sweep, which runs every second (on the devnet's clock's terms).
    let mut lost = Value::Null;
    for _ in 0..300 {
        let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
        lost = capacity["failures"]["heartbeat_lost"].clone();
        if lost == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lost, 1);
    let (_, status) = get(&api, &format!("/grid/nodes/{}", node.id), &auth).await;
    assert_eq!(status["status"], "offline");

    // The binary allowlist: a heartbeat from an unlisted build is refused, a listed one taken.
    for (hashes, allowed) in [
        (vec!["cd".repeat(32)], false),
        (vec!["ab".repeat(32)], true),
    ] {
        let response = api
            .request(reqwest::Method::PUT, "/devnet/grid/allowed-binaries")
            .json(&json!({ "hashes": hashes }))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let (_, listed) = get(&api, "/grid/allowed-binaries", &[]).await;
        assert_eq!(listed["hashes"], json!(hashes));
        let (status, answer) = post(
            &api,
            "/grid/nodes/heartbeat",
            heartbeat_body(&node, &[]),
            &[("x-node-auth", &node.token), ("x-node-id", &node.id)],
        )
        .await;
        match allowed {
            true => assert_eq!(status, StatusCode::OK, "{answer}"),
            false => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
                assert!(
                    answer.to_string().contains("not a recognized SGL build"),
                    "{answer}"
                );
            }
        }
    }
}

#[tokio::test]
async fn sealed_chats_attestation_rotation_ghosts_failover_and_embeddings() {
    let clock = TestClock::starting_now();
    let devnet = test_support::start_with(|config| devnet::Config {
        clock: Arc::new(clock.clone()),
        ..config
    })
    .await
    .unwrap();
    let api = Client::of(&devnet).with_clock(clock.clone());
    let a = register(&api, [21; 32]).await;
    let b = register(&api, [22; 32]).await;
    heartbeat(&api, &a, &[]).await;
    heartbeat(&api, &b, &[]).await;
    let auth_a = [("x-node-auth", a.token.as_str())];
    let auth_b = [("x-node-auth", b.token.as_str())];
    // A is cheaper: routing tries it first.
    let (status, _) = post(
        &api,
        &format!("/grid/nodes/{}/prices", a.id),
        json!({"model": MODEL, "input_per_m": 0.03, "output_per_m": 0.06}),
        &auth_a,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let customer = LocalEvmSigner::from_bytes(&[0x55; 32]).unwrap();
    let wallet = PayTo::Evm(x402_core::EvmSigner::address(&customer));
    let key = api_key(&api, &customer).await;
    devnet.store().deposit(&wallet, 1_000_000).unwrap();
    let key_header = [("x-api-key", key.as_str())];

    // A sealed chat through a reservation: the coordinator never sees the prompt.
    let (status, reserved) = post(&api, "/v1/reserve", json!({"model": MODEL}), &key_header).await;
    assert_eq!(status, StatusCode::OK, "{reserved}");
    assert_eq!(reserved["node_id"], a.id.as_str());
    assert_eq!(reserved["expires_in_ms"], 60_000);
    let x25519 = reserved["node_x25519_pubkey"].as_str().unwrap();
    seal::verify_keybind(
        &a.id,
        reserved["node_ed25519_pubkey"].as_str().unwrap(),
        x25519,
        reserved["key_version"].as_u64().unwrap() as u32,
        reserved["encryption_public_key_signature"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let inner = json!({"messages": [{"role": "user", "content": "secret"}], "max_tokens": 50});
    let sealed = seal::seal_request(
        x25519,
        inner.to_string().as_bytes(),
        &mut test_support::os_random,
    )
    .unwrap();
    let body = json!({
        "reservation_token": reserved["reservation_token"],
        "max_tokens": 50,
        "stream": false,
        "enc": {
            "ciphertext": sealed.ciphertext,
            "client_ephemeral_pubkey": sealed.client_ephemeral_pubkey,
            "client_response_pubkey": sealed.client_response_pubkey,
            "algorithm": sealed.algorithm.tag(),
        },
    });
    let chat = tokio::spawn({
        let api = api.clone();
        let key = key.clone();
        let body = body.clone();
        async move { post(&api, "/v1/chat/completions", body, &[("x-api-key", &key)]).await }
    });
    let job = next_job(&api, &a).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let enc = &job["input_payload"]["enc"];
    assert_eq!(job["input_payload"]["stream"], false);
    let opened = seal::open_request(
        &seal::node_x25519_secret(&a.seed),
        enc["ciphertext"].as_str().unwrap(),
        enc["client_ephemeral_pubkey"].as_str().unwrap(),
        enc["client_response_pubkey"].as_str(),
        enc["algorithm"].as_str(),
    )
    .unwrap();
    assert!(
        String::from_utf8(opened.plaintext)
            .unwrap()
            .contains("secret")
    );
    let answer = serde_json::to_vec(&PlainResult {
        content: "sealed answer".into(),
        model: MODEL.into(),
        usage: Usage::new(5, 5),
    })
    .unwrap();
    let result = seal::seal_result(
        opened.response_pubkey.as_deref().unwrap(),
        &answer,
        opened.algorithm,
        &mut test_support::os_random,
    )
    .unwrap();
    let (status, _) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        json!({
            "sealed_result": {
                "ciphertext": result.ciphertext,
                "ephemeral_public_key": result.ephemeral_public_key,
                "algorithm": result.algorithm.tag(),
            },
            "usage": Usage::new(5, 5),
            "result_envelope_signature": envelope::sign_result(&a.seed, &job_id, ResultKind::Sealed, result.ciphertext.as_bytes()),
            "result_envelope_version": "v1",
        }),
        &auth_a,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = chat.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let plaintext = sealed
        .response
        .open_result(
            answer["sealed_result"]["ciphertext"].as_str().unwrap(),
            answer["sealed_result"]["ephemeral_public_key"]
                .as_str()
                .unwrap(),
            answer["sealed_result"]["algorithm"].as_str(),
        )
        .unwrap();
    let opened: PlainResult = serde_json::from_slice(&plaintext).unwrap();
    assert_eq!(opened.content, "sealed answer");
    assert_eq!(
        devnet.store().credits(&wallet).unwrap().balance_micros(),
        1_000_000 - cost(5, 5, 30_000, 60_000)
    );
    let (status, reused) = post(&api, "/v1/chat/completions", body, &key_header).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reused}");
    assert_eq!(reused["error"]["code"], "reservation_used");
    let (_, attested) = get(
        &api,
        &format!("/grid/jobs/{job_id}/attestation"),
        &key_header,
    )
    .await;
    assert_eq!(attested["result_kind"], "sealed");
    assert_eq!(attested["verified"], true);

    // A coordinator that swaps the node's key is caught by the key binding.
    let (status, _) = post(
        &api,
        "/devnet/faults",
        json!({"grid_swap_reserved_key": true}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, swapped) = post(&api, "/v1/reserve", json!({"model": MODEL}), &key_header).await;
    assert!(
        seal::verify_keybind(
            &a.id,
            swapped["node_ed25519_pubkey"].as_str().unwrap(),
            swapped["node_x25519_pubkey"].as_str().unwrap(),
            1,
            swapped["encryption_public_key_signature"].as_str().unwrap(),
        )
        .is_err()
    );
    post(&api, "/devnet/faults", json!({}), &[]).await;

    // Attestation: the challenge and the report, both signed, the challenge used once.
    let (_, challenge) = post(
        &api,
        &format!("/grid/nodes/{}/challenge", a.id),
        json!({}),
        &auth_a,
    )
    .await;
    assert_eq!(challenge["expires_in_seconds"], 300);
    let challenge = challenge["challenge"].as_str().unwrap();
    let report = grid_proto::node::HardwareReport {
        challenge: challenge.into(),
        tee_type: "none".into(),
        os: "linux".into(),
        kernel_version: "6.1".into(),
        cpu_cores: 2,
        memory_bytes: 4 << 30,
        gpu_model: "none".into(),
        binary_hash: "ab".repeat(32),
        hardware_attested: false,
        tee_evidence: None,
    };
    let attestation = json!({
        "signature": envelope::sign(&a.seed, challenge.as_bytes()),
        "encryption_public_key": seal::node_x25519_public(&a.seed),
        "hardware_report": report,
        "report_signature": envelope::sign(&a.seed, envelope::report_message(challenge, &report.signed_json()).as_bytes()),
    });
    let verify = format!("/grid/nodes/{}/verify-attestation", a.id);
    let (status, verdict) = post(&api, &verify, attestation.clone(), &auth_a).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["verified"], true);
    let (status, _) = post(&api, &verify, attestation, &auth_a).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a challenge is single use");
    let (_, status) = get(&api, &format!("/grid/nodes/{}", a.id), &auth_a).await;
    assert_eq!(status["attestation_verified"], true);

    // A TDX quote bound to both keys and this challenge is accepted; one bound to another
    // challenge (a replay) is refused.
    let ed25519 = seal::key_from_b58(&envelope::public_key(&a.seed)).unwrap();
    let x25519 = seal::key_from_b58(&seal::node_x25519_public(&a.seed)).unwrap();
    for (bound_to, accepted) in [(None, true), (Some("an old challenge"), false)] {
        let (_, fresh) = post(
            &api,
            &format!("/grid/nodes/{}/challenge", a.id),
            json!({}),
            &auth_a,
        )
        .await;
        let fresh = fresh["challenge"].as_str().unwrap();
        let data = envelope::tee_report_data(&ed25519, &x25519, bound_to.unwrap_or(fresh));
        let mut quote = vec![0x5au8; 1000];
        quote[568..632].copy_from_slice(&data);
        let report = grid_proto::node::HardwareReport {
            challenge: fresh.into(),
            tee_type: "tdx".into(),
            hardware_attested: true,
            tee_evidence: Some(grid_proto::node::TeeEvidence {
                provider: "tdx_guest".into(),
                report_data: alloy::hex::encode(data),
                report: alloy::hex::encode(&quote),
            }),
            ..report.clone()
        };
        let attestation = json!({
            "signature": envelope::sign(&a.seed, fresh.as_bytes()),
            "encryption_public_key": seal::node_x25519_public(&a.seed),
            "hardware_report": report,
            "report_signature": envelope::sign(&a.seed, envelope::report_message(fresh, &report.signed_json()).as_bytes()),
        });
        let (status, verdict) = post(&api, &verify, attestation, &auth_a).await;
        match accepted {
            true => assert_eq!(status, StatusCode::OK, "{verdict}"),
            false => {
                assert_eq!(status, StatusCode::FORBIDDEN, "{verdict}");
                assert!(verdict.to_string().contains("not bound"), "{verdict}");
            }
        }
    }

    // Failover: A loses the job (the ghost reconciler), B finishes it; only B's price is billed.
    let before = devnet.store().credits(&wallet).unwrap().balance_micros();
    let chat = tokio::spawn({
        let api = api.clone();
        let key = key.clone();
        async move {
            post(
                &api,
                "/v1/chat/completions",
                chat_body(),
                &[("x-api-key", &key)],
            )
            .await
        }
    });
    let lost = next_job(&api, &a).await;
    clock.advance(Duration::from_secs(1));
    heartbeat(&api, &b, &[]).await;
    // Not yet: the heartbeat after the one that delivered it may not list it yet...
    let beat = heartbeat(&api, &a, &[]).await;
    assert!(beat["pending_jobs"].as_array().unwrap().is_empty());
    // ...but the next one must.
    clock.advance(Duration::from_secs(1));
    heartbeat(&api, &a, &[]).await;
    let job = next_job(&api, &b).await;
    assert_ne!(job["id"], lost["id"]);
    let job_id = job["id"].as_str().unwrap().to_owned();
    let (status, _) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        plain_completion(&b, &job_id, "from b", Usage::new(10, 10), &b.seed),
        &auth_b,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = chat.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["choices"][0]["message"]["content"], "from b");
    assert_eq!(answer["attestation"]["node_id"], b.id.as_str());
    assert_eq!(
        devnet.store().credits(&wallet).unwrap().balance_micros(),
        before - cost(10, 10, INPUT, OUTPUT)
    );
    let (_, capacity) = get(&api, "/grid/capacity", &[]).await;
    assert_eq!(capacity["failures"]["ghost_job"], 1);

    // Embeddings, to a node that says it serves them.
    let embed = tokio::spawn({
        let api = api.clone();
        let key = key.clone();
        async move {
            post(
                &api,
                "/v1/embeddings",
                json!({"model": MODEL, "input": ["a", "b"]}),
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await
        }
    });
    let job = next_job(&api, &a).await;
    assert_eq!(job["job_type"], "embeddings");
    assert_eq!(job["input_payload"]["input"], json!(["a", "b"]));
    let job_id = job["id"].as_str().unwrap().to_owned();
    let result = serde_json::to_string(&grid_proto::node::EmbeddingsResult {
        embeddings: vec![vec![0.5, 0.25], vec![1.0, 0.0]],
        model: MODEL.into(),
        usage: Usage::new(2, 0),
    })
    .unwrap();
    let (status, _) = post(
        &api,
        &format!("/grid/jobs/{job_id}/complete"),
        json!({
            "encrypted_result": result,
            "result_envelope_signature": envelope::sign_result(&a.seed, &job_id, ResultKind::Plain, result.as_bytes()),
            "result_envelope_version": "v1",
        }),
        &auth_a,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, embedded) = embed.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{embedded}");
    assert_eq!(embedded["object"], "list");
    assert_eq!(embedded["data"][1]["index"], 1);
    assert_eq!(embedded["data"][0]["embedding"], json!([0.5, 0.25]));
    assert_eq!(embedded["usage"]["prompt_tokens"], 2);

    // Token rotation: offered by the heartbeat; the old token works until the new one is used.
    let (status, _) = post(
        &api,
        &format!("/devnet/grid/nodes/{}/rotate-token", b.id),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let beat = heartbeat(&api, &b, &[]).await;
    let rotated = Node {
        id: b.id.clone(),
        token: beat["new_auth_token"].as_str().unwrap().to_owned(),
        seed: b.seed,
    };
    assert!(
        heartbeat(&api, &rotated, &[])
            .await
            .get("new_auth_token")
            .is_none()
    );
    let (status, _) = post(
        &api,
        "/grid/nodes/heartbeat",
        heartbeat_body(&b, &[]),
        &[("x-node-auth", &b.token), ("x-node-id", &b.id)],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the old token is revoked by the new one's use"
    );
}
