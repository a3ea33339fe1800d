//! Work for the grid's clients: chat completions (plain, or sealed end to end through a
//! reservation; whole or streamed), embeddings, and asynchronous jobs with their results and
//! attestations. Routing is `routing`, prices `pricing`; billing is the store's (a hold at
//! dispatch, the cost and the refund of the rest at completion).

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use grid_proto::node::{
    ChatMessage, ChatRequest, ChunkBody, EmbeddingsResult, Enc, InnerRequest, JOB_EMBEDDINGS,
    JOB_INFERENCE, PendingJob, PlainResult, SealedResultWire, ServerMessage,
};
use grid_proto::seal::{self, Algorithm, ResponseKey, SealedChunk, StreamOpener};
use grid_proto::{Usage, limits};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use x402_core::{PayTo, PaymentPayload, UsdMicros};

use super::catalog::max_price;
use super::live::{JobEvent, Waiter};
use super::pricing;
use super::routing::{self, Candidate, Want};
use super::{Grid, oai};
use crate::api::{ApiError, ApiResult, dollars, random_id, rfc3339};
use crate::auth::{Call, key_hash};
use crate::faults::GridStreamFault;
use crate::payment::{Family, Paid, Price};
use crate::store::{Effect, GridJob, GridNode, NewJob, ReservationUse};

/// The header naming the job behind a chat answer.
const JOB_HEADER: &str = "x-grid-job-id";

/// Prompt tokens a request is quoted for beyond its body's bytes.
const PROMPT_ALLOWANCE: u64 = 64;

fn bad(code: &str, message: impl Into<String>) -> ApiError {
    oai(StatusCode::BAD_REQUEST, code, message)
}

/// Who pays for a request.
enum Payer {
    /// An API key's wallet.
    Key(PayTo),
    /// An x402 payment, now the payer's credits.
    Paid(Box<Paid>),
}

impl Payer {
    fn wallet(&self) -> PayTo {
        match self {
            Payer::Key(wallet) => *wallet,
            Payer::Paid(paid) => paid.settlement.payer,
        }
    }

    /// `response`, with the payment's receipt when there was one.
    fn finish(&self, result: ApiResult) -> Response {
        let response = result.unwrap_or_else(IntoResponse::into_response);
        match self {
            Payer::Key(_) => response,
            Payer::Paid(paid) => paid.with_receipt(response),
        }
    }
}

impl Grid {
    /// The API key's wallet, or (without a key) an x402 payment of `quote` credited to the
    /// payer; `Err(response)` is the 402 (or refusal) to send.
    async fn pay(
        &self,
        call: &Call,
        key: Option<PayTo>,
        quote: u64,
        description: &str,
    ) -> ApiResult<Result<Payer, Response>> {
        if let Some(wallet) = key {
            return Ok(Ok(Payer::Key(wallet)));
        }
        let payment = PaymentPayload::from_headers(&call.headers)
            .map_err(|e| bad("invalid_payment", format!("unreadable payment header: {e}")))?;
        let price = Price {
            amount: UsdMicros(quote),
            description,
            family: Family::from_request(None)?,
            hint: "payment required: pay with X-PAYMENT (v1) or PAYMENT-SIGNATURE (v2), or send an API key",
        };
        let effect = Effect::Credit {
            wallet: None,
            micros: quote,
        };
        Ok(
            match self.cashier.charge(&call.uri, price, payment, effect).await {
                Ok(paid) => Ok(Payer::Paid(Box::new(paid))),
                Err(response) => Err(response),
            },
        )
    }

    /// Inserts a job on `candidate` holding `hold` of `wallet`'s credits, waits on it, and
    /// pushes it to the node's socket.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        self: &Arc<Self>,
        wallet: &PayTo,
        model: &str,
        candidate: &Candidate,
        job_type: &str,
        mode: &str,
        payload: &Value,
        hold: u64,
    ) -> ApiResult<(String, Waiter, UnboundedReceiver<JobEvent>)> {
        let id = random_id(&*self.random);
        let (waiter, events) = self.live.wait(&id);
        let inserted = self.store.insert_grid_job(&NewJob {
            id: &id,
            node_id: &candidate.node.id,
            model,
            job_type,
            mode,
            payload: &payload.to_string(),
            wallet,
            input_micros: candidate.price.input,
            output_micros: candidate.price.output,
            hold_micros: hold,
            now_ms: self.now_ms(),
        })?;
        if let Err(short) = inserted {
            return Err(oai(
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                format!(
                    "insufficient credits: ${} short (this request holds ${}); top up with POST /compute/credits/topup",
                    dollars(UsdMicros(short)),
                    dollars(UsdMicros(hold))
                ),
            ));
        }
        self.live.push(
            &candidate.node.id,
            ServerMessage::Job {
                job: PendingJob {
                    id: id.clone(),
                    job_type: job_type.to_owned(),
                    model: Some(model.to_owned()),
                    input_payload: Some(payload.clone()),
                },
            },
        );
        Ok((id, waiter, events))
    }
}

fn with_job(mut response: Response, job: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(job) {
        response.headers_mut().insert(JOB_HEADER, value);
    }
    response
}

fn attestation(node: &GridNode) -> Value {
    json!({ "node_id": node.id, "tee_type": node.tee_type, "verified": node.attestation_verified })
}

fn node_failed(message: String) -> ApiError {
    oai(StatusCode::BAD_GATEWAY, "node_failed", message)
}

// ---------------------------------------------------------------------------------------
// Chat

/// `POST /v1/chat/completions`: sealed (with a `reservation_token`) or plain (OpenAI's body).
pub(super) async fn completions(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let value: Value = serde_json::from_slice(&call.body)
        .map_err(|e| bad("invalid_json", format!("the body must be JSON: {e}")))?;
    if value.get("reservation_token").is_some() {
        sealed_chat(grid, call).await
    } else {
        plain_chat(grid, call).await
    }
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct PlainChat {
    model: String,
    messages: Vec<Value>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    max_price: Option<Box<RawValue>>,
}

/// Messages whose content is a string (§3.8), with the node's limits applied.
fn chat_request(
    messages: Vec<Value>,
    temperature: Option<f64>,
    max_tokens: Option<u64>,
) -> ApiResult<ChatRequest> {
    let messages: Vec<ChatMessage> = messages
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            bad(
                "invalid_messages",
                format!(
                    "every message needs a role and a string content (content parts are not supported): {e}"
                ),
            )
        })?;
    ChatRequest::from_inner(InnerRequest {
        messages,
        temperature,
        max_tokens,
        stream: None,
        nonce: None,
    })
    .map_err(|e| bad("invalid_messages", e.to_string()))
}

async fn plain_chat(grid: Arc<Grid>, call: Call) -> ApiResult {
    let request: PlainChat = serde_json::from_slice(&call.body).map_err(|e| {
        bad(
            "invalid_request",
            format!("body must be an OpenAI chat request {{model, messages, ...}}: {e}"),
        )
    })?;
    let key = grid.key_wallet(&call.headers)?;
    let chat = chat_request(
        request.messages,
        request.temperature,
        request.max_tokens.or(request.max_completion_tokens),
    )?;
    let stream = request.stream.unwrap_or(false);
    let candidates = grid.route(&Want {
        model: &request.model,
        pin: request.node.as_deref(),
        max_blended: max_price(request.max_price.as_deref())?,
        embeddings: false,
        sealing: stream,
    })?;
    let allowance = (call.body.len() as u64).saturating_add(PROMPT_ALLOWANCE);
    let max_tokens = u64::from(chat.max_tokens);
    let quote = |c: &Candidate| pricing::quote(allowance, max_tokens, c.price);
    // An x402 chat is quoted at the dearest candidate, so a failover to it is covered; what
    // the job does not use stays as the payer's credits.
    let dearest = candidates
        .iter()
        .map(quote)
        .max()
        .ok_or_else(|| ApiError::internal("routing found an empty list"))?;
    let description = format!("grid chat completion ({})", request.model);
    let payer = match grid.pay(&call, key, dearest, &description).await? {
        Ok(payer) => payer,
        Err(response) => return Ok(response),
    };
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let result = run_plain(
        &grid,
        &payer.wallet(),
        &request.model,
        &chat,
        &candidates,
        quote,
        stream,
        include_usage,
    )
    .await;
    Ok(payer.finish(result))
}

/// Runs a plain chat on the candidates in turn until one answers (failover before anything
/// reached the client).
#[allow(clippy::too_many_arguments)]
async fn run_plain(
    grid: &Arc<Grid>,
    wallet: &PayTo,
    model: &str,
    chat: &ChatRequest,
    candidates: &[Candidate],
    quote: impl Fn(&Candidate) -> u64,
    stream: bool,
    include_usage: bool,
) -> ApiResult {
    let mut failures = Vec::new();
    for candidate in candidates {
        let mut response_key = None;
        let payload = if stream {
            // The coordinator seals the request to the node itself, and opens its chunks.
            let Some(node_key) = &candidate.node.encryption_public_key else {
                continue;
            };
            let mut nonce = [0u8; 16];
            grid.random.fill(&mut nonce);
            let nonce = seal::b58(&nonce);
            let inner = InnerRequest {
                messages: chat.messages.clone(),
                temperature: Some(chat.temperature),
                max_tokens: Some(u64::from(chat.max_tokens)),
                stream: Some(true),
                nonce: Some(nonce.clone()),
            };
            let plaintext = serde_json::to_vec(&inner).map_err(ApiError::internal)?;
            let sealed =
                match seal::seal_request(node_key, &plaintext, &mut |b| grid.random.fill(b)) {
                    Ok(sealed) => sealed,
                    Err(error) => {
                        failures.push(format!("node {}: {error}", candidate.node.id));
                        continue;
                    }
                };
            let enc = Enc {
                ciphertext: sealed.ciphertext,
                client_ephemeral_pubkey: sealed.client_ephemeral_pubkey,
                client_response_pubkey: Some(sealed.client_response_pubkey),
                algorithm: Some(sealed.algorithm.tag().to_owned()),
            };
            response_key = Some((sealed.response, nonce));
            json!({ "enc": enc, "stream": true, "max_tokens": chat.max_tokens })
        } else {
            json!({
                "messages": chat.messages,
                "temperature": chat.temperature,
                "max_tokens": chat.max_tokens,
            })
        };
        let (job, waiter, mut events) = grid.dispatch(
            wallet,
            model,
            candidate,
            JOB_INFERENCE,
            "chat",
            &payload,
            quote(candidate),
        )?;
        let first = events.recv().await;
        let node = &candidate.node;
        let id = format!("chatcmpl-{job}");
        let created = grid.clock.now_unix();
        match first {
            None | Some(JobEvent::Failed { .. }) => {
                let reason = match first {
                    Some(JobEvent::Failed { reason, .. }) => reason,
                    _ => "no answer".into(),
                };
                failures.push(format!("node {}: {reason}", node.id));
                continue;
            }
            Some(JobEvent::Plain { result, job: done }) => {
                let Ok(result) = serde_json::from_str::<PlainResult>(&result) else {
                    return Err(node_failed("the node's result is unreadable".into()));
                };
                let answer = OneAnswer {
                    id,
                    created,
                    model: model.to_owned(),
                    content: result.content,
                    usage: result.usage,
                };
                return Ok(with_job(
                    answer.respond(stream, include_usage, node),
                    &done.id,
                ));
            }
            Some(JobEvent::Sealed {
                sealed,
                usage,
                job: done,
            }) => {
                // The node answered the stream request whole.
                let opened = response_key
                    .as_ref()
                    .ok_or_else(|| node_failed("a sealed answer to a plain request".into()))
                    .and_then(|(key, _)| open_whole(key, &sealed))?;
                let answer = OneAnswer {
                    id,
                    created,
                    model: model.to_owned(),
                    content: opened.content,
                    usage,
                };
                return Ok(with_job(
                    answer.respond(stream, include_usage, node),
                    &done.id,
                ));
            }
            Some(chunk @ JobEvent::Chunk(_)) => {
                let Some((key, nonce)) = response_key else {
                    return Err(node_failed("a stream chunk for a whole request".into()));
                };
                let sse = Sse {
                    events,
                    _waiter: waiter,
                    first: Some(chunk),
                    done: false,
                    kind: SseKind::Plain(Box::new(PlainStream {
                        opener: Some(key.stream(nonce)),
                        id,
                        created,
                        model: model.to_owned(),
                        include_usage,
                        started: false,
                    })),
                };
                return Ok(sse.respond(&job));
            }
        }
    }
    Err(node_failed(format!(
        "no node could finish the job ({}); nothing was billed",
        failures.join("; ")
    )))
}

fn open_whole(key: &ResponseKey, sealed: &SealedResultWire) -> ApiResult<PlainResult> {
    let plaintext = key
        .open_result(
            &sealed.ciphertext,
            &sealed.ephemeral_public_key,
            Some(&sealed.algorithm),
        )
        .map_err(|e| node_failed(format!("the node's sealed answer cannot be opened: {e}")))?;
    serde_json::from_slice(&plaintext)
        .map_err(|e| node_failed(format!("the node's sealed answer is unreadable: {e}")))
}

/// A whole plain answer, as JSON or as a stream of one piece.
struct OneAnswer {
    id: String,
    created: u64,
    model: String,
    content: String,
    usage: Usage,
}

impl OneAnswer {
    fn respond(self, stream: bool, include_usage: bool, node: &GridNode) -> Response {
        if !stream {
            return Json(json!({
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{
                    "index": 0,
                    "message": { "role": "assistant", "content": self.content },
                    "finish_reason": "stop",
                    "logprobs": null,
                }],
                "usage": self.usage,
                "attestation": attestation(node),
            }))
            .into_response();
        }
        let mut plain = PlainStream {
            opener: None,
            id: self.id,
            created: self.created,
            model: self.model,
            include_usage,
            started: false,
        };
        let mut out = plain.text(&self.content);
        out.push_str(&plain.end(&self.usage));
        sse_headers(Body::from(out))
    }
}

// ---------------------------------------------------------------------------------------
// Sealed chat

#[derive(Deserialize)]
struct SealedChat {
    reservation_token: String,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    enc: Enc,
}

async fn sealed_chat(grid: Arc<Grid>, call: Call) -> ApiResult {
    let request: SealedChat = serde_json::from_slice(&call.body).map_err(|e| {
        bad(
            "invalid_request",
            format!("a sealed chat is {{reservation_token, max_tokens, stream, enc}}: {e}"),
        )
    })?;
    Algorithm::parse(request.enc.algorithm.as_deref())
        .map_err(|e| bad("unknown_algorithm", e.to_string()))?;
    if request.enc.ciphertext.len() > seal::MAX_SEALED_B58 {
        return Err(oai(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "the sealed request is over 512 KiB of base58 (base58 is quadratic to decode)",
        ));
    }
    let key = grid.key_wallet(&call.headers)?;
    let token_hash = key_hash(request.reservation_token.trim());
    let reservation = match grid
        .store
        .grid_reservation(&token_hash, grid.now_ms(), false)?
    {
        ReservationUse::Valid(reservation) => reservation,
        ReservationUse::Unknown => {
            return Err(bad("invalid_reservation", "unknown reservation_token"));
        }
        ReservationUse::Used => {
            return Err(oai(
                StatusCode::CONFLICT,
                "reservation_used",
                "this reservation_token was used already: reserve again (POST /v1/reserve)",
            ));
        }
        ReservationUse::Expired => {
            return Err(oai(
                StatusCode::GONE,
                "reservation_expired",
                "this reservation_token expired (60 s): reserve again (POST /v1/reserve)",
            ));
        }
    };
    match (&reservation.wallet, &key) {
        (Some(reserved), Some(wallet)) if reserved == wallet => {}
        (Some(_), Some(_)) => {
            return Err(oai(
                StatusCode::FORBIDDEN,
                "reservation_wallet",
                "this reservation belongs to another API key's wallet",
            ));
        }
        (Some(_), None) => {
            return Err(oai(
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "this reservation was made with an API key: send the same key",
            ));
        }
        (None, Some(_)) => {
            return Err(oai(
                StatusCode::FORBIDDEN,
                "x402_reservation",
                "this reservation was made without an API key: pay for the chat with x402 and send no key",
            ));
        }
        (None, None) => {}
    }
    let node = grid
        .store
        .grid_node(&reservation.node_id)?
        .filter(|n| routing::is_live(n, grid.now_ms()) && routing::has_capacity(n))
        .ok_or_else(|| {
            oai(
                StatusCode::SERVICE_UNAVAILABLE,
                "node_unavailable",
                "the reserved node is no longer available: reserve again",
            )
        })?;
    // Billed at the price the caller reserved at (within its max_price), whatever the node
    // set since.
    let candidate = Candidate {
        price: pricing::Price {
            input: reservation.input_micros,
            output: reservation.output_micros,
        },
        node,
    };
    let allowance = (call.body.len() as u64).saturating_add(PROMPT_ALLOWANCE);
    let max_tokens = u64::from(limits::max_tokens(request.max_tokens));
    let quote = pricing::quote(allowance, max_tokens, candidate.price);
    let description = format!("grid sealed chat completion ({})", reservation.model);
    let payer = match grid.pay(&call, key, quote, &description).await? {
        Ok(payer) => payer,
        Err(response) => return Ok(response),
    };
    let stream = request.stream.unwrap_or(false);
    let result = async {
        if !matches!(
            grid.store
                .grid_reservation(&token_hash, grid.now_ms(), true)?,
            ReservationUse::Valid(_)
        ) {
            return Err(oai(
                StatusCode::CONFLICT,
                "reservation_used",
                "this reservation_token was used meanwhile; any payment stays as credits",
            ));
        }
        // The cleartext cap the chat was quoted for travels with it: the node writes no more.
        let payload = json!({ "enc": request.enc, "stream": stream, "max_tokens": max_tokens });
        let (job, waiter, mut events) = grid.dispatch(
            &payer.wallet(),
            &reservation.model,
            &candidate,
            JOB_INFERENCE,
            "sealed",
            &payload,
            quote,
        )?;
        match events.recv().await {
            None | Some(JobEvent::Failed { .. }) | Some(JobEvent::Plain { .. }) => {
                let detail = grid
                    .store
                    .grid_job(&job)?
                    .and_then(|j| j.error)
                    .unwrap_or_else(|| "the reserved node failed the job".to_owned());
                Err(node_failed(format!("{detail}; nothing was billed")))
            }
            Some(JobEvent::Sealed {
                sealed,
                usage,
                job: done,
            }) => Ok(with_job(
                Json(json!({
                    "id": format!("chatcmpl-{}", done.id),
                    "object": "chat.completion",
                    "created": grid.clock.now_unix(),
                    "model": reservation.model,
                    "sealed_result": sealed,
                    "usage": usage,
                    "attestation": attestation(&candidate.node),
                }))
                .into_response(),
                &done.id,
            )),
            Some(chunk @ JobEvent::Chunk(_)) => {
                let sse = Sse {
                    events,
                    _waiter: waiter,
                    first: Some(chunk),
                    done: false,
                    kind: SseKind::Sealed {
                        fault: grid.faults.grid_stream_fault(),
                        held: None,
                    },
                };
                Ok(sse.respond(&job))
            }
        }
    }
    .await;
    Ok(payer.finish(result))
}

// ---------------------------------------------------------------------------------------
// Server-sent events

fn sse_headers(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    response
}

const DONE: &str = "data: [DONE]\n\n";

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn error_event(message: &str) -> String {
    let body = json!({ "error": { "message": message, "code": "node_failed" } });
    format!("event: error\ndata: {body}\n\n")
}

/// A stream to a client, fed by the job's events.
struct Sse {
    events: UnboundedReceiver<JobEvent>,
    /// Dropped with the stream when the client goes away: the node then reads `closed`.
    _waiter: Waiter,
    first: Option<JobEvent>,
    done: bool,
    kind: SseKind,
}

enum SseKind {
    /// Sealed chunks relayed (renamed to `{seq, final, eph, ct}`), with the injected fault.
    Sealed {
        fault: Option<GridStreamFault>,
        held: Option<Box<ChunkBody>>,
    },
    /// Chunks the coordinator opens and turns into OpenAI chunks.
    Plain(Box<PlainStream>),
}

struct PlainStream {
    /// `None` for a whole answer sent as a stream.
    opener: Option<StreamOpener>,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
}

impl PlainStream {
    fn frame(&self, delta: Value, finish: Option<&str>) -> String {
        data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish, "logprobs": null }],
        }))
    }

    /// The events for `text` (the first one names the role).
    fn text(&mut self, text: &str) -> String {
        let mut out = String::new();
        if !self.started {
            self.started = true;
            out.push_str(&self.frame(json!({ "role": "assistant", "content": "" }), None));
        }
        if !text.is_empty() {
            out.push_str(&self.frame(json!({ "content": text }), None));
        }
        out
    }

    /// The closing events: `finish_reason: stop`, the usage when asked for, `[DONE]`.
    fn end(&mut self, usage: &Usage) -> String {
        let mut out = self.text("");
        out.push_str(&self.frame(json!({}), Some("stop")));
        if self.include_usage {
            out.push_str(&data(&json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage,
            })));
        }
        out.push_str(DONE);
        out
    }
}

/// Changes one base58 character in the middle of `ct`.
fn tamper(ct: &mut String) {
    let middle = ct.len() / 2;
    if let Some(c) = ct.as_bytes().get(middle) {
        let replacement = if *c == b'2' { "3" } else { "2" };
        ct.replace_range(middle..=middle, replacement);
    }
}

fn sealed_frame(chunk: &ChunkBody) -> String {
    let mut value = json!({ "seq": chunk.seq, "final": chunk.last, "ct": chunk.ciphertext });
    if let Some(eph) = &chunk.ephemeral_public_key {
        value["eph"] = json!(eph);
    }
    // Ours: the node's cleartext token counts ride on the final event, so a sealed caller
    // learns what it is billed for (the reference relays only seq/final/eph/ct).
    if let Some(usage) = &chunk.usage {
        value["usage"] = json!(usage);
    }
    data(&value)
}

impl Sse {
    /// The bytes to send for `event`.
    fn step(&mut self, event: Option<JobEvent>) -> String {
        let chunk = match event {
            Some(JobEvent::Chunk(chunk)) => chunk,
            Some(JobEvent::Failed {
                reason,
                billed_micros,
            }) => {
                self.done = true;
                let billed = match billed_micros {
                    0 => "nothing was billed".to_owned(),
                    micros => format!(
                        "billed {} USD for the tokens already delivered",
                        pricing::usd(micros)
                    ),
                };
                return error_event(&format!("{reason}; {billed}"));
            }
            _ => {
                self.done = true;
                return error_event("the node's stream ended unexpectedly");
            }
        };
        match &mut self.kind {
            SseKind::Sealed { fault, held } => {
                let mut chunk = chunk;
                let mut out = String::new();
                match fault {
                    Some(GridStreamFault::Reorder) if chunk.seq == 0 && !chunk.last => {
                        *held = Some(chunk);
                        return out;
                    }
                    Some(GridStreamFault::Truncate) if chunk.last => {
                        self.done = true;
                        return DONE.to_owned();
                    }
                    Some(GridStreamFault::Tamper) if chunk.seq == 0 => {
                        tamper(&mut chunk.ciphertext);
                    }
                    _ => {}
                }
                out.push_str(&sealed_frame(&chunk));
                if let Some(zero) = held.take() {
                    out.push_str(&sealed_frame(&zero));
                }
                if chunk.last {
                    self.done = true;
                    out.push_str(DONE);
                }
                out
            }
            SseKind::Plain(plain) => {
                let Some(opener) = &mut plain.opener else {
                    self.done = true;
                    return error_event("a stream chunk after a whole answer");
                };
                let opened = opener.open(&SealedChunk {
                    seq: chunk.seq,
                    last: chunk.last,
                    eph: chunk.ephemeral_public_key.clone(),
                    ct: chunk.ciphertext.clone(),
                });
                let text = match opened {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(error) => {
                        self.done = true;
                        return error_event(&format!(
                            "the node's stream cannot be opened: {error}"
                        ));
                    }
                };
                let mut out = plain.text(&text);
                if chunk.last {
                    self.done = true;
                    out.push_str(&plain.end(&chunk.usage.unwrap_or_default()));
                }
                out
            }
        }
    }

    /// The SSE answer.
    fn respond(self, job: &str) -> Response {
        let stream = futures_util::stream::unfold(self, |mut sse| async move {
            loop {
                if sse.done {
                    return None;
                }
                let event = match sse.first.take() {
                    Some(event) => Some(event),
                    None => sse.events.recv().await,
                };
                let out = sse.step(event);
                if !out.is_empty() {
                    return Some((Ok::<_, Infallible>(Bytes::from(out)), sse));
                }
            }
        });
        with_job(sse_headers(Body::from_stream(stream)), job)
    }
}

// ---------------------------------------------------------------------------------------
// Embeddings

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: Value,
    #[serde(default)]
    node: Option<String>,
}

/// `POST /v1/embeddings` (API key): routed to nodes that serve embeddings.
pub(super) async fn embeddings(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let wallet = grid.require_key(&call.headers)?;
    let request: EmbeddingsRequest = serde_json::from_slice(&call.body).map_err(|e| {
        bad(
            "invalid_request",
            format!("body must be {{model, input}}: {e}"),
        )
    })?;
    let inputs: Vec<String> = match &request.input {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("invalid_input", "input must be a string or strings"))?,
        _ => return Err(bad("invalid_input", "input must be a string or strings")),
    };
    if inputs.is_empty() || inputs.len() > limits::MAX_MESSAGES {
        return Err(bad(
            "invalid_input",
            format!("input must hold 1 to {} strings", limits::MAX_MESSAGES),
        ));
    }
    let candidates = grid.route(&Want {
        model: &request.model,
        pin: request.node.as_deref(),
        max_blended: None,
        embeddings: true,
        sealing: false,
    })?;
    let allowance = (call.body.len() as u64).saturating_add(PROMPT_ALLOWANCE);
    let payload = json!({ "input": inputs });
    let mut failures = Vec::new();
    for candidate in &candidates {
        let hold = pricing::quote(allowance, 0, candidate.price);
        let (_, _waiter, mut events) = grid.dispatch(
            &wallet,
            &request.model,
            candidate,
            JOB_EMBEDDINGS,
            "embeddings",
            &payload,
            hold,
        )?;
        match events.recv().await {
            Some(JobEvent::Plain { result, job }) => {
                let result: EmbeddingsResult = serde_json::from_str(&result).map_err(|e| {
                    node_failed(format!("the node's embeddings are unreadable: {e}"))
                })?;
                let data: Vec<Value> = result
                    .embeddings
                    .iter()
                    .enumerate()
                    .map(|(index, vector)| json!({ "object": "embedding", "index": index, "embedding": vector }))
                    .collect();
                let body = json!({
                    "object": "list",
                    "data": data,
                    "model": request.model,
                    "usage": {
                        "prompt_tokens": result.usage.prompt_tokens,
                        "total_tokens": result.usage.prompt_tokens,
                    },
                });
                return Ok(with_job(Json(body).into_response(), &job.id));
            }
            Some(JobEvent::Failed { reason, .. }) => {
                failures.push(format!("node {}: {reason}", candidate.node.id));
            }
            _ => failures.push(format!("node {}: no embeddings", candidate.node.id)),
        }
    }
    Err(node_failed(format!(
        "no node could finish the embeddings ({}); nothing was billed",
        failures.join("; ")
    )))
}

// ---------------------------------------------------------------------------------------
// Asynchronous jobs

#[derive(Deserialize)]
struct JobRequest {
    model: String,
    input: Value,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    node: Option<String>,
}

/// `POST /grid/jobs` (API key): a chat job to read later.
pub(super) async fn submit_job(State(grid): State<Arc<Grid>>, call: Call) -> ApiResult {
    let wallet = grid.require_key(&call.headers)?;
    let request: JobRequest = serde_json::from_slice(&call.body).map_err(|e| {
        bad(
            "invalid_request",
            format!("body must be {{model, input}}: {e}"),
        )
    })?;
    let messages = match request.input {
        Value::String(text) => vec![json!({ "role": "user", "content": text })],
        Value::Array(messages) => messages,
        _ => {
            return Err(bad(
                "invalid_input",
                "input must be a string or chat messages",
            ));
        }
    };
    let chat = chat_request(messages, request.temperature, request.max_tokens)?;
    let candidates = grid.route(&Want {
        model: &request.model,
        pin: request.node.as_deref(),
        max_blended: None,
        embeddings: false,
        sealing: false,
    })?;
    let candidate = candidates
        .first()
        .ok_or_else(|| ApiError::internal("routing found an empty list"))?;
    let allowance = (call.body.len() as u64).saturating_add(PROMPT_ALLOWANCE);
    let hold = pricing::quote(allowance, u64::from(chat.max_tokens), candidate.price);
    let payload = json!({
        "messages": chat.messages,
        "temperature": chat.temperature,
        "max_tokens": chat.max_tokens,
    });
    // Nobody waits: the result is read with GET /grid/jobs/{id}.
    let (job, _waiter, _events) = grid.dispatch(
        &wallet,
        &request.model,
        candidate,
        JOB_INFERENCE,
        "async",
        &payload,
        hold,
    )?;
    Ok((
        StatusCode::CREATED,
        with_job(
            Json(json!({
                "job_id": job,
                "status": "queued",
                "model": request.model,
                "node_id": candidate.node.id,
                "tee_type": candidate.node.tee_type,
                "estimated_cost_usd": pricing::usd(hold),
                "created_at": rfc3339(grid.clock.now_unix()),
            }))
            .into_response(),
            &job,
        ),
    )
        .into_response())
}

/// The caller's job `id`.
fn own_job(grid: &Grid, call: &Call, id: &str) -> ApiResult<GridJob> {
    let wallet = grid.require_key(&call.headers)?;
    grid.store
        .grid_job(id)?
        .filter(|job| job.wallet == wallet)
        .ok_or_else(|| {
            oai(
                StatusCode::NOT_FOUND,
                "job_not_found",
                format!("no job {id} of this key's wallet"),
            )
        })
}

/// `GET /grid/jobs/{id}`.
pub(super) async fn job(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let job = own_job(&grid, &call, &id)?;
    let node = grid.store.grid_node(&job.node_id)?;
    let mut body = json!({
        "job_id": job.id,
        "status": job.status,
        "model": job.model,
        "node_id": job.node_id,
        "tee_type": node.map(|n| n.tee_type),
        "created_at": rfc3339(job.created_ms / 1000),
    });
    if let Some(usage) = job
        .usage
        .as_deref()
        .and_then(|u| serde_json::from_str::<Value>(u).ok())
    {
        body["usage"] = usage;
    }
    // A failed job costs what it was billed: nothing, or (a stream the node's engine broke)
    // the tokens that had reached the client.
    if let Some(cost) = job
        .cost_micros
        .filter(|&cost| job.status == "completed" || cost > 0)
    {
        body["cost_usd"] = pricing::usd(cost);
        body["cost_micros"] = json!(cost);
    }
    if let Some(text) = &job.result {
        body["result"] = json!({ "content": text });
    }
    if let Some(error) = &job.error {
        body["error"] = json!(error);
    }
    if let Some(done) = job.completed_ms {
        body["completed_at"] = json!(rfc3339(done / 1000));
    }
    Ok(Json(body).into_response())
}

/// `GET /grid/jobs/{id}/attestation`: the node's signature over its final result, as the
/// coordinator verified it.
pub(super) async fn attestation_of(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let job = own_job(&grid, &call, &id)?;
    let node = grid.store.grid_node(&job.node_id)?;
    let report = node
        .as_ref()
        .and_then(|n| n.attestation_report.as_deref())
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    let verified = job.status == "completed" && job.result_signature.is_some();
    Ok(Json(json!({
        "node_id": job.node_id,
        "tee_type": node.as_ref().map(|n| n.tee_type.clone()),
        "job_id": job.id,
        "attestation_signature": job.result_signature,
        "result_kind": job.result_kind,
        "result_sha256": job.result_sha256,
        "node_public_key": node.as_ref().map(|n| n.public_key.clone()),
        "attestation_report": report,
        "verified": verified,
        "verified_at": job.completed_ms.filter(|_| verified).map(|ms| rfc3339(ms / 1000)),
    }))
    .into_response())
}
