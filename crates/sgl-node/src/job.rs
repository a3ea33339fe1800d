//! One job, from payload to posted result (§3.8–3.10).
//!
//! - Plain payloads run as they are; the answer is the [`PlainResult`] JSON as a string in
//!   `encrypted_result`, signed `plain` over that string.
//! - Sealed payloads are opened with the node's X25519 secret. Streamed when all of §3.10
//!   hold (the cleartext `stream` marker, the inner `stream`, v2, an inference job, a response
//!   key): the first delta is sent alone at once, then every 6 deltas, then an empty final
//!   chunk with the usage, each chunk signed `stream:{seq}:{0|1}` over its ciphertext.
//!   Otherwise the whole answer is sealed with the request's version and signed `sealed`,
//!   with the usage in cleartext.
//! - Chunk and result posts are retried ([`crate::node::RetryPolicy`]) on network errors and
//!   5xx. A chunk that still fails, or `closed: true`, means the client left: generation stops
//!   (the engine stream is dropped) and a final chunk bills the tokens of the chunks the
//!   coordinator relayed, with `prompt_tokens` 0 (the reference bills all generated). A 409
//!   on a retried post means an earlier attempt was recorded and its answer lost.
//! - An engine error mid-stream (the engine died, or its watchdog restarted it), or a stream
//!   that ends without its usage, posts `{"error": true}` with the reason and the tokens of
//!   the chunks already relayed ([`StreamError`]: the only tokens the job may be billed for),
//!   and `/fail` when that post fails.
//! - Embeddings jobs (our extension) run when the engine supports them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt as _;
use grid_proto::Usage;
use grid_proto::envelope::{RESULT_ENVELOPE_VERSION, ResultKind, sign_result};
use grid_proto::node::{
    ChatRequest, ChunkBody, ChunkPost, CompleteBody, EmbeddingsResult, JOB_EMBEDDINGS,
    JOB_INFERENCE, JobInput, PendingJob, PlainResult, SealedResultWire, StreamError,
};
use grid_proto::seal::{self, Algorithm, SealedChunk, StreamSealer};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::backoff::Backoff;
use crate::coordinator::ChunkOutcome;
use crate::engine::{Engine, StreamEvent};
use crate::node::{HANDED_BACK, Shared, SlotGuard};

/// Deltas per chunk after the first.
pub(crate) const BATCH: usize = 6;

/// How a job ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Its result was accepted (or a left stream's partial usage was).
    Completed,
    /// It failed; the reason is to be posted to `/fail`.
    Fail(String),
    /// It failed and the coordinator was told (a stream error chunk).
    Reported,
}

/// Runs a job in its slot; the slot is freed when this returns (or is dropped).
pub(crate) async fn run(shared: Arc<Shared>, job: PendingJob, guard: SlotGuard) {
    let mut handback = shared.handback.subscribe();
    let outcome = tokio::select! {
        outcome = execute(&shared, &job) => Some(outcome),
        () = crate::node::stopped(&mut handback) => None,
    };
    match outcome {
        Some(Outcome::Completed) => {
            shared.completed.fetch_add(1, Ordering::SeqCst);
            tracing::info!(job_id = %job.id, "job completed");
        }
        Some(Outcome::Reported) => {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(job_id = %job.id, "job failed (stream error reported)");
        }
        Some(Outcome::Fail(reason)) => {
            shared.failed.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(job_id = %job.id, %reason, "job failed");
            post_fail(&shared, &job.id, &reason).await;
        }
        None => {
            shared.handed_back.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(job_id = %job.id, "job handed back");
            post_fail(&shared, &job.id, HANDED_BACK).await;
        }
    }
    drop(guard);
}

/// Hands back a job that arrived while the node drains.
pub(crate) async fn hand_back(shared: &Shared, job_id: &str) {
    shared.handed_back.fetch_add(1, Ordering::SeqCst);
    post_fail(shared, job_id, HANDED_BACK).await;
}

async fn post_fail(shared: &Shared, job_id: &str, reason: &str) {
    let result = retry(shared, || shared.client.fail(job_id, reason)).await;
    if let Err(error) = result {
        tracing::error!(job_id, %error, "could not report the failure");
    }
}

/// Calls `post` until it succeeds, fails for good (not a network error or 5xx), or the
/// attempts run out.
async fn retry<T, F, Fut>(shared: &Shared, post: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    retry_or(shared, post, None).await
}

/// As [`retry`]; a 409 (already recorded) on a later attempt means an earlier attempt's
/// answer was lost after the coordinator took it: that is `recorded`, not a failure.
async fn retry_or<T, F, Fut>(shared: &Shared, mut post: F, recorded: Option<T>) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut recorded = recorded;
    let policy = shared.config.post_retry;
    let mut backoff = Backoff::new(policy.initial_delay, policy.initial_delay.saturating_mul(8));
    let mut attempt = 1;
    loop {
        match post().await {
            Ok(value) => return Ok(value),
            Err(Error::Coordinator { status: 409, .. }) if attempt > 1 && recorded.is_some() => {
                if let Some(value) = recorded.take() {
                    return Ok(value);
                }
            }
            Err(error) if error.is_transient() && attempt < policy.attempts => {
                tracing::debug!(attempt, %error, "post failed; retrying");
                attempt += 1;
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Fills buffers from the OS, remembering a failure (the sealing API takes an infallible
/// closure; a failure fails the job rather than sealing with a weak nonce).
struct OsRandom {
    failed: bool,
}

impl OsRandom {
    fn new() -> OsRandom {
        OsRandom { failed: false }
    }

    fn fill(&mut self, buffer: &mut [u8]) {
        if getrandom::fill(buffer).is_err() {
            self.failed = true;
        }
    }

    fn check(&self) -> Result<(), String> {
        match self.failed {
            true => Err("the node's random source failed".into()),
            false => Ok(()),
        }
    }
}

async fn execute(shared: &Arc<Shared>, job: &PendingJob) -> Outcome {
    let Some(engine) = shared.engine.clone() else {
        return Outcome::Fail("no model is loaded on this node".into());
    };
    let embeddings = job.job_type == JOB_EMBEDDINGS && engine.supports_embeddings();
    if job.job_type != JOB_INFERENCE && !embeddings {
        return Outcome::Fail(format!(
            "Unsupported job type: {}",
            job.job_type.chars().take(64).collect::<String>()
        ));
    }
    let input = match JobInput::parse(&job.job_type, job.input_payload.as_ref()) {
        Ok(input) => input,
        Err(error) => return Outcome::Fail(error.to_string()),
    };
    match input {
        JobInput::Plain(chat) => match engine.chat(&chat).await {
            Ok(completion) => {
                let result = PlainResult {
                    content: completion.content,
                    model: engine.model(),
                    usage: completion.usage,
                };
                complete_plain(shared, &job.id, &result).await
            }
            Err(error) => Outcome::Fail(error.to_string()),
        },
        JobInput::Embeddings(inputs) => match engine.embeddings(&inputs).await {
            Ok((vectors, usage)) => {
                let result = EmbeddingsResult {
                    embeddings: vectors,
                    model: engine.model(),
                    usage,
                };
                complete_plain(shared, &job.id, &result).await
            }
            Err(error) => Outcome::Fail(error.to_string()),
        },
        JobInput::Sealed {
            enc,
            stream,
            max_tokens,
        } => {
            let opened = match seal::open_request(
                &shared.x25519,
                &enc.ciphertext,
                &enc.client_ephemeral_pubkey,
                enc.client_response_pubkey.as_deref(),
                enc.algorithm.as_deref(),
            ) {
                Ok(opened) => opened,
                Err(error) => return Outcome::Fail(format!("cannot open the request: {error}")),
            };
            let plaintext = Zeroizing::new(opened.plaintext);
            let mut chat = match ChatRequest::from_json(&plaintext) {
                Ok(chat) => chat,
                Err(error) => return Outcome::Fail(error.to_string()),
            };
            drop(plaintext);
            // No more than the chat was quoted and paid for in the clear.
            if let Some(paid) = max_tokens {
                chat.max_tokens = chat
                    .max_tokens
                    .min(grid_proto::limits::max_tokens(Some(paid)));
            }
            let Some(response) = opened.response_pubkey else {
                return Outcome::Fail("the sealed request carries no response key".into());
            };
            let streamed = stream
                && chat.stream
                && opened.algorithm == Algorithm::V2
                && job.job_type == JOB_INFERENCE;
            match streamed {
                true => run_stream(shared, engine.as_ref(), &job.id, &chat, &response).await,
                false => {
                    run_sealed(
                        shared,
                        engine.as_ref(),
                        &job.id,
                        &chat,
                        &response,
                        opened.algorithm,
                    )
                    .await
                }
            }
        }
    }
}

async fn complete_plain(shared: &Shared, job_id: &str, result: &impl Serialize) -> Outcome {
    let text = match serde_json::to_string(result) {
        Ok(text) => text,
        Err(error) => return Outcome::Fail(format!("cannot write the result: {error}")),
    };
    let body = CompleteBody {
        result_envelope_signature: sign_result(
            shared.keypair.seed(),
            job_id,
            ResultKind::Plain,
            text.as_bytes(),
        ),
        encrypted_result: Some(text),
        sealed_result: None,
        usage: None,
        result_envelope_version: RESULT_ENVELOPE_VERSION.into(),
    };
    complete(shared, job_id, &body).await
}

async fn complete(shared: &Shared, job_id: &str, body: &CompleteBody) -> Outcome {
    match retry_or(shared, || shared.client.complete(job_id, body), Some(())).await {
        Ok(()) => Outcome::Completed,
        Err(error) => Outcome::Fail(format!("the result could not be delivered: {error}")),
    }
}

async fn run_sealed(
    shared: &Shared,
    engine: &dyn Engine,
    job_id: &str,
    chat: &ChatRequest,
    response: &str,
    algorithm: Algorithm,
) -> Outcome {
    let completion = match engine.chat(chat).await {
        Ok(completion) => completion,
        Err(error) => return Outcome::Fail(error.to_string()),
    };
    let usage = completion.usage;
    let result = PlainResult {
        content: completion.content,
        model: engine.model(),
        usage,
    };
    let plaintext = match serde_json::to_vec(&result) {
        Ok(bytes) => Zeroizing::new(bytes),
        Err(error) => return Outcome::Fail(format!("cannot write the result: {error}")),
    };
    drop(result);
    let mut random = OsRandom::new();
    let sealed = seal::seal_result(response, &plaintext, algorithm, &mut |b| random.fill(b));
    if let Err(reason) = random.check() {
        return Outcome::Fail(reason);
    }
    let sealed = match sealed {
        Ok(sealed) => sealed,
        Err(error) => return Outcome::Fail(format!("cannot seal the answer: {error}")),
    };
    let body = CompleteBody {
        encrypted_result: None,
        result_envelope_signature: sign_result(
            shared.keypair.seed(),
            job_id,
            ResultKind::Sealed,
            sealed.ciphertext.as_bytes(),
        ),
        sealed_result: Some(SealedResultWire {
            ciphertext: sealed.ciphertext,
            ephemeral_public_key: sealed.ephemeral_public_key,
            algorithm: sealed.algorithm.tag().into(),
        }),
        usage: Some(usage),
        result_envelope_version: RESULT_ENVELOPE_VERSION.into(),
    };
    complete(shared, job_id, &body).await
}

/// Groups deltas into chunks: the first delta alone (the client sees text at once), then
/// every [`BATCH`].
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    pending: String,
    count: usize,
    started: bool,
}

impl Batcher {
    /// Adds a delta; the text to send now, if a chunk is due.
    pub(crate) fn push(&mut self, delta: &str) -> Option<String> {
        self.pending.push_str(delta);
        self.count += 1;
        if !self.started || self.count >= BATCH {
            self.started = true;
            return self.take();
        }
        None
    }

    /// What is left at the end.
    pub(crate) fn finish(&mut self) -> Option<String> {
        self.take()
    }

    fn take(&mut self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        self.count = 0;
        Some(std::mem::take(&mut self.pending))
    }
}

/// Where a stream chunk went.
enum Delivery {
    /// Taken; the client reads on.
    Accepted,
    /// Answered `closed: true` (or `ok: false`): the client left.
    Closed,
    /// Not delivered after the retries: the client is taken as gone.
    Failed,
}

struct Streamer<'a> {
    shared: &'a Shared,
    job_id: &'a str,
    sealer: StreamSealer,
}

impl Streamer<'_> {
    fn body(&self, chunk: SealedChunk, usage: Option<Usage>) -> ChunkBody {
        ChunkBody {
            seq: chunk.seq,
            last: chunk.last,
            result_envelope_signature: sign_result(
                self.shared.keypair.seed(),
                self.job_id,
                ResultKind::Stream {
                    seq: chunk.seq,
                    last: chunk.last,
                },
                chunk.ct.as_bytes(),
            ),
            ciphertext: chunk.ct,
            algorithm: Algorithm::V2Stream.tag().into(),
            ephemeral_public_key: chunk.eph,
            usage,
            result_envelope_version: RESULT_ENVELOPE_VERSION.into(),
        }
    }

    /// Seals and posts one chunk.
    async fn send(
        &mut self,
        text: &str,
        last: bool,
        usage: Option<Usage>,
    ) -> Result<Delivery, String> {
        let mut random = OsRandom::new();
        let chunk = self
            .sealer
            .seal(text.as_bytes(), last, &mut |b| random.fill(b));
        random.check()?;
        let body = self.body(chunk, usage);
        let posted = retry_or(
            self.shared,
            || self.shared.client.chunk(self.job_id, &body),
            Some(ChunkOutcome::Accepted),
        )
        .await;
        Ok(match posted {
            Ok(ChunkOutcome::Accepted) => Delivery::Accepted,
            Ok(ChunkOutcome::Closed) => {
                tracing::info!(
                    job_id = self.job_id,
                    seq = body.seq,
                    "client closed the stream"
                );
                Delivery::Closed
            }
            Err(error) => {
                tracing::warn!(job_id = self.job_id, seq = body.seq, %error, "chunk not delivered; taking the client as gone");
                Delivery::Failed
            }
        })
    }

    /// The client left: bill the tokens it was sent (prompt tokens 0, as the reference does).
    async fn settle_partial(&mut self, delivered: u64) -> Outcome {
        let usage = Usage::new(0, delivered);
        match self.send("", true, Some(usage)).await {
            // Closed again: the coordinator heard the final chunk all the same.
            Ok(Delivery::Accepted | Delivery::Closed) => Outcome::Completed,
            Ok(Delivery::Failed) => {
                Outcome::Fail("the client left and the final chunk could not be delivered".into())
            }
            Err(reason) => Outcome::Fail(reason),
        }
    }

    /// The stream broke: `{"error": true}` with the reason and the tokens already delivered
    /// (the only ones that may be billed), or `/fail` when that cannot be posted.
    async fn error(&self, reason: String, delivered: u64) -> Outcome {
        tracing::warn!(job_id = self.job_id, %reason, delivered, "stream failed");
        let body = ChunkPost::error_body(&StreamError {
            reason: Some(reason.clone()),
            usage: (delivered > 0).then(|| Usage::new(0, delivered)),
        });
        match retry(self.shared, || self.shared.client.chunk(self.job_id, &body)).await {
            Ok(_) => Outcome::Reported,
            Err(_) => Outcome::Fail(reason),
        }
    }
}

async fn run_stream(
    shared: &Shared,
    engine: &dyn Engine,
    job_id: &str,
    chat: &ChatRequest,
    response: &str,
) -> Outcome {
    let mut random = OsRandom::new();
    let sealer = StreamSealer::new(response, chat.nonce.clone(), &mut |b| random.fill(b));
    if let Err(reason) = random.check() {
        return Outcome::Fail(reason);
    }
    let sealer = match sealer {
        Ok(sealer) => sealer,
        Err(error) => return Outcome::Fail(format!("cannot seal the answer: {error}")),
    };
    let mut streamer = Streamer {
        shared,
        job_id,
        sealer,
    };
    let mut events = match engine.chat_stream(chat).await {
        Ok(events) => events,
        Err(error) => return streamer.error(error.to_string(), 0).await,
    };
    let mut batcher = Batcher::default();
    // Tokens in chunks the coordinator relayed to the client (a partial bill counts only
    // these), and tokens generated since the last chunk.
    let mut delivered = 0u64;
    let mut unsent = 0u64;
    loop {
        match events.next().await {
            Some(Ok(StreamEvent::Delta(text))) => {
                unsent = unsent.saturating_add(1);
                let Some(batch) = batcher.push(&text) else {
                    continue;
                };
                match streamer.send(&batch, false, None).await {
                    Ok(Delivery::Accepted) => {
                        delivered = delivered.saturating_add(std::mem::take(&mut unsent));
                    }
                    Ok(Delivery::Closed | Delivery::Failed) => {
                        drop(events);
                        return streamer.settle_partial(delivered).await;
                    }
                    Err(reason) => return streamer.error(reason, delivered).await,
                }
            }
            Some(Ok(StreamEvent::Done(usage))) => {
                drop(events);
                if let Some(rest) = batcher.finish() {
                    match streamer.send(&rest, false, None).await {
                        Ok(Delivery::Accepted) => {}
                        Ok(Delivery::Closed | Delivery::Failed) => {
                            return streamer.settle_partial(delivered).await;
                        }
                        Err(reason) => return streamer.error(reason, delivered).await,
                    }
                }
                return match streamer.send("", true, Some(usage)).await {
                    Ok(Delivery::Accepted | Delivery::Closed) => Outcome::Completed,
                    Ok(Delivery::Failed) => {
                        Outcome::Fail("the final chunk could not be delivered".into())
                    }
                    Err(reason) => Outcome::Fail(reason),
                };
            }
            Some(Err(error)) => return streamer.error(error.to_string(), delivered).await,
            None => {
                return streamer
                    .error(
                        "the engine's stream ended before the answer was complete".into(),
                        delivered,
                    )
                    .await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_delta_goes_alone_then_groups_of_six() {
        let mut batcher = Batcher::default();
        let mut chunks = Vec::new();
        for n in 0..15 {
            if let Some(chunk) = batcher.push(&n.to_string()) {
                chunks.push(chunk);
            }
        }
        chunks.extend(batcher.finish());
        assert_eq!(chunks, ["0", "123456", "789101112", "1314"]);
        assert_eq!(batcher.finish(), None);
        let mut one = Batcher::default();
        assert_eq!(one.push("a").as_deref(), Some("a"));
        assert_eq!(one.finish(), None);
        let mut empty = Batcher::default();
        assert_eq!(empty.finish(), None);
    }
}
