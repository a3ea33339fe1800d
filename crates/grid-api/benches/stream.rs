//! The grid client's streaming cost (`cargo xtask bench`): SSE framing alone
//! (`eventsource-stream` over a byte stream cut into 4 KiB reads, as a socket delivers it),
//! framing plus JSON decode into OpenAI's `chat.completion.chunk`, and a sealed chunk's
//! overhead over a plain one (seal on the node, then open in order on the client).
//!
//! Goal: framing ≥ 1M events/s. The rest is reported.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use grid_api::openai::chat::CreateChatCompletionStreamResponse;
use grid_api::seal;

const EVENTS: usize = 10_000;

/// `EVENTS` OpenAI chunks as SSE, then `[DONE]`, cut into 4 KiB reads.
fn sse() -> Vec<Vec<u8>> {
    let mut text = String::new();
    for i in 0..EVENTS {
        text.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"smollm2-135m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token{i}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    text.push_str("data: [DONE]\n\n");
    text.as_bytes().chunks(4096).map(<[u8]>::to_vec).collect()
}

fn reads(parts: &[Vec<u8>]) -> impl futures_util::Stream<Item = Result<Vec<u8>, String>> + Unpin {
    futures_util::stream::iter(parts.iter().cloned().map(Ok).collect::<Vec<_>>())
}

fn counter() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n = n.wrapping_add(1);
            *b = n;
        }
    }
}

fn streaming(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let parts = sse();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("framing", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut events = reads(&parts).eventsource();
                let mut n = 0usize;
                while let Some(event) = events.next().await {
                    n += usize::from(!event.unwrap().data.is_empty());
                }
                assert_eq!(n, EVENTS + 1);
            })
        })
    });
    group.bench_function("framing+json", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let stream = grid_api::stream::plain(reads(&parts));
                futures_util::pin_mut!(stream);
                let mut n = 0usize;
                while let Some(chunk) = stream.next().await {
                    let chunk: CreateChatCompletionStreamResponse =
                        serde_json::from_value(chunk.unwrap()).unwrap();
                    n += chunk.choices.len();
                }
                assert_eq!(n, EVENTS);
            })
        })
    });
    group.finish();

    // One chunk of six deltas (what a node flushes), sealed on the node and opened on the
    // client, against the same text sent plain.
    let text = b" the quick brown fox jumps over";
    let node = seal::node_x25519_secret(&[5; 32]);
    let node_pub = seal::b58(x25519_dalek::PublicKey::from(&node).as_bytes());
    let mut random = counter();
    let mut group = c.benchmark_group("chunk");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("sealed (seal+open, 1000 chunks)", |b| {
        b.iter(|| {
            let request = seal::seal_request(&node_pub, b"{}", &mut random).unwrap();
            let mut sealer =
                seal::StreamSealer::new(&request.client_response_pubkey, "nonce", &mut random)
                    .unwrap();
            let mut opener = request.response.stream("nonce");
            for i in 0..1_000u32 {
                let chunk = sealer.seal(text, i == 999, &mut random);
                let opened = opener.open(&chunk).unwrap();
                assert_eq!(opened.len(), text.len());
            }
            opener.finish().unwrap();
        })
    });
    group.bench_function("plain (1000 chunks)", |b| {
        b.iter(|| {
            for _ in 0..1_000u32 {
                let json = serde_json::json!({ "choices": [{ "delta": { "content": std::str::from_utf8(text).unwrap() } }] });
                let back: serde_json::Value =
                    serde_json::from_slice(&serde_json::to_vec(&json).unwrap()).unwrap();
                assert!(back["choices"][0]["delta"]["content"].is_string());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, streaming);
criterion_main!(benches);
