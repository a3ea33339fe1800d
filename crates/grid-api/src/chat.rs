//! Chat completions (`POST /v1/chat/completions`), sealed end to end by default (§1.4) or
//! plain (§1.3, which the coordinator reads), streamed or not, paid from an API key's
//! credits or per request with x402.
//!
//! Sealed: reserve a node, check its key binding ([`crate::reserve::Reservation::sealing_key`]),
//! seal `{messages, temperature, max_tokens, stream, nonce}` to its X25519 key with fresh
//! ephemeral and response keys, and open the answer (or each stream chunk, in order) with
//! the response key. What the coordinator sees: the model, `max_tokens` (which prices an
//! x402 chat) and sizes.
//!
//! Requests and answers are OpenAI's types ([`crate::openai`]), so a caller that speaks
//! OpenAI needs nothing else. A message's content must be text: an array of text parts is
//! joined (our choice, documented here); images and audio are refused, since the grid's
//! nodes take text only (§3.8).

use std::pin::Pin;
use std::task::{Context, Poll};

use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
};
use futures_util::{Stream, StreamExt as _};
use grid_proto::Usage;
use grid_proto::node::{ChatMessage, InnerRequest, PlainResult};
use serde::Deserialize;
use serde_json::{Value, json};
use x402_core::{Receipt, UsdMicros};

use crate::client::{ClientError, GridClient, ReserveRequest, refusal};
use crate::reserve::{KeyTrust, Reservation};
use crate::seal;
use crate::stream::{self, StreamError};

/// How a chat is paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChatPay {
    /// From the API key's prepaid credits.
    #[default]
    Credits,
    /// Per request with x402, priced from `max_tokens`; what is not used stays as the payer's
    /// credits on the grid.
    X402,
}

/// How to send a chat.
#[derive(Clone, Debug, Default)]
pub struct ChatOptions {
    /// Send in the clear: the coordinator reads the prompt and the answer. Not confidential.
    pub plain: bool,
    /// Seal to a node whose key binding the grid did not give (protection against a
    /// coordinator swapping the node's key is lost). A binding that fails is never accepted.
    pub allow_unverified_node: bool,
    /// Pin a node.
    pub node: Option<String>,
    /// The most to pay, USD per 1M tokens, blended.
    pub max_price_per_m: Option<UsdMicros>,
    /// How to pay.
    pub pay: ChatPay,
}

/// What is known about a chat besides its text.
#[derive(Clone, Debug, Default)]
pub struct ChatMeta {
    /// The grid's job id (`X-Grid-Job-Id`), for `/grid/jobs/{id}` and its attestation.
    pub job_id: Option<String>,
    /// The node that answered (from the reservation, for sealed chats).
    pub node_id: Option<String>,
    /// Its TEE type, as the grid reports it.
    pub tee_type: Option<String>,
    /// Whether the prompt and answer were sealed end to end.
    pub confidential: bool,
    /// How far the sealing key was trusted (sealed chats).
    pub key_trust: Option<KeyTrust>,
    /// The x402 receipt, when the chat was paid per request.
    pub receipt: Option<Receipt>,
}

/// A whole chat answer.
#[derive(Clone, Debug)]
pub struct ChatAnswer {
    /// OpenAI's `chat.completion`.
    pub response: CreateChatCompletionResponse,
    /// Who answered, and how.
    pub meta: ChatMeta,
}

type Chunks =
    Pin<Box<dyn Stream<Item = Result<CreateChatCompletionStreamResponse, ClientError>> + Send>>;

/// A streamed chat answer: OpenAI `chat.completion.chunk`s, the last with `usage`. It ends
/// after the answer's end; a cut, an error event or a tampered, reordered, replayed or
/// truncated sealed chunk is an error item, after which the stream ends.
pub struct ChatStream {
    /// Who answers, and how.
    pub meta: ChatMeta,
    chunks: Chunks,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl Stream for ChatStream {
    type Item = Result<CreateChatCompletionStreamResponse, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.as_mut().poll_next(cx)
    }
}

/// The text of a message's content: a string, or text parts joined.
fn content_text(content: &Value) -> Result<String, ClientError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(
                |part| match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(text)) => Ok(text),
                    (kind, _) => Err(ClientError::Invalid(format!(
                        "the grid's nodes take text only; a `{}` content part cannot be sent",
                        kind.unwrap_or("unknown")
                    ))),
                },
            )
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.concat()),
        Value::Null => Ok(String::new()),
        _ => Err(ClientError::Invalid(
            "a message's content must be text".into(),
        )),
    }
}

/// The messages as role and text (what a node takes).
fn messages(request: &CreateChatCompletionRequest) -> Result<Vec<ChatMessage>, ClientError> {
    request
        .messages
        .iter()
        .map(|message| {
            let json = serde_json::to_value(message)
                .map_err(|e| ClientError::Invalid(format!("cannot write a message: {e}")))?;
            Ok(ChatMessage {
                role: json["role"].as_str().unwrap_or("user").to_owned(),
                content: content_text(&json["content"])?,
            })
        })
        .collect()
}

fn max_tokens(request: &CreateChatCompletionRequest) -> Option<u64> {
    #[allow(deprecated)]
    let legacy = request.max_tokens;
    request.max_completion_tokens.or(legacy).map(u64::from)
}

/// The plain body: OpenAI's request with the grid's routing fields (`max_price` written from
/// its exact decimal text).
#[derive(serde::Serialize)]
struct PlainBody<'a> {
    #[serde(flatten)]
    request: &'a CreateChatCompletionRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::client::decimal_number"
    )]
    max_price: Option<UsdMicros>,
}

fn job_id(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-grid-job-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn now_secs(created: Option<u64>) -> u64 {
    created.unwrap_or(0)
}

/// An OpenAI `chat.completion` from a sealed answer's parts.
fn completion(
    id: &str,
    created: u64,
    model: &str,
    content: &str,
    usage: Usage,
) -> Result<CreateChatCompletionResponse, ClientError> {
    serde_json::from_value(json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop",
        }],
        "usage": usage,
    }))
    .map_err(|e| ClientError::Invalid(format!("cannot build the answer: {e}")))
}

/// An OpenAI `chat.completion.chunk`.
fn chunk(
    id: &str,
    model: &str,
    text: Option<&str>,
    first: bool,
    last: bool,
    usage: Option<Usage>,
) -> Result<CreateChatCompletionStreamResponse, ClientError> {
    let mut delta = json!({});
    if first {
        delta["role"] = json!("assistant");
    }
    if let Some(text) = text {
        delta["content"] = json!(text);
    }
    serde_json::from_value(json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": if last { json!("stop") } else { Value::Null } }],
        "usage": usage,
    }))
    .map_err(|e| ClientError::Invalid(format!("cannot build a chunk: {e}")))
}

#[derive(Deserialize)]
struct SealedAnswer {
    #[serde(default)]
    id: String,
    #[serde(default)]
    created: Option<u64>,
    sealed_result: SealedResultJson,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct SealedResultJson {
    ciphertext: String,
    ephemeral_public_key: String,
    #[serde(default)]
    algorithm: Option<String>,
}

/// A sealed request on its way: what opens its answer.
struct Sealing {
    response: seal::ResponseKey,
    nonce: String,
    reservation: Reservation,
    trust: KeyTrust,
    model: String,
}

impl GridClient {
    fn meta(&self, sealing: Option<&Sealing>, response: &reqwest::Response) -> ChatMeta {
        ChatMeta {
            job_id: job_id(response),
            node_id: sealing.map(|s| s.reservation.node_id.clone()),
            tee_type: sealing.and_then(|s| s.reservation.tee_type.clone()),
            confidential: sealing.is_some(),
            key_trust: sealing.map(|s| s.trust),
            receipt: response.extensions().get::<Receipt>().cloned(),
        }
    }

    /// Sends the chat body: with the key (credits), or through the paying client (x402).
    async fn send_chat(
        &self,
        body: Vec<u8>,
        pay: ChatPay,
    ) -> Result<reqwest::Response, ClientError> {
        let url = self.url("/v1/chat/completions")?;
        let response = match pay {
            ChatPay::Credits => {
                if self.key.is_none() {
                    return Err(ClientError::Auth(
                        "paying from credits needs an API key (X402C_GRID_KEY or COMPUTE_API_KEY); or pay per request with x402".into(),
                    ));
                }
                self.request_to(reqwest::Method::POST, url)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| ClientError::Network(e.to_string()))?
            }
            ChatPay::X402 => {
                let Some(paying) = &self.paying else {
                    return Err(ClientError::PaymentRefused(
                        "no payment key: set PRIVATE_KEY or SOLANA_SECRET_KEY, use a keystore wallet, or pay from credits with an API key".into(),
                    ));
                };
                paying
                    .post(url)
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(ClientError::of_paying)?
            }
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let bytes = crate::client::capped_body(response)
            .await
            .unwrap_or_default();
        Err(refusal(status, &bytes))
    }

    /// Reserves a node and seals the request to it, once its key binding verifies.
    async fn seal(
        &self,
        request: &CreateChatCompletionRequest,
        options: &ChatOptions,
        stream: bool,
    ) -> Result<(Vec<u8>, Sealing), ClientError> {
        let reserve = ReserveRequest {
            model: request.model.clone(),
            node: options.node.clone(),
            cluster: None,
            max_price: options.max_price_per_m,
        };
        // A chat paid with x402 reserves without a key: the reservation is bound to the chat
        // that pays for it.
        let builder = match options.pay {
            ChatPay::Credits => self.request(reqwest::Method::POST, "/v1/reserve")?,
            ChatPay::X402 => self.http.post(self.url("/v1/reserve")?),
        };
        let reservation: Reservation = Self::read(builder.json(&reserve)).await?;
        let (key, trust) = reservation.sealing_key(options.allow_unverified_node)?;
        let mut nonce = [0u8; 16];
        (self.entropy)(&mut nonce);
        let nonce = seal::b58(&nonce);
        let inner = InnerRequest {
            messages: messages(request)?,
            temperature: request.temperature.map(f64::from),
            max_tokens: max_tokens(request),
            stream: Some(stream),
            nonce: Some(nonce.clone()),
        };
        let plaintext = serde_json::to_vec(&inner)
            .map_err(|e| ClientError::Invalid(format!("cannot write the request: {e}")))?;
        let mut random = |buf: &mut [u8]| (self.entropy)(buf);
        let sealed = seal::seal_request(key, &plaintext, &mut random)?;
        let body = json!({
            "reservation_token": reservation.reservation_token,
            "max_tokens": max_tokens(request).unwrap_or(u64::from(grid_proto::limits::DEFAULT_MAX_TOKENS)),
            "stream": stream,
            "enc": {
                "ciphertext": sealed.ciphertext,
                "client_ephemeral_pubkey": sealed.client_ephemeral_pubkey,
                "client_response_pubkey": sealed.client_response_pubkey,
                "algorithm": sealed.algorithm.tag(),
            },
        });
        let body = serde_json::to_vec(&body)
            .map_err(|e| ClientError::Invalid(format!("cannot write the request: {e}")))?;
        Ok((
            body,
            Sealing {
                response: sealed.response,
                nonce,
                reservation,
                trust,
                model: request.model.clone(),
            },
        ))
    }

    /// The plain body: OpenAI's request with the grid's routing fields.
    fn plain_body(
        request: &CreateChatCompletionRequest,
        options: &ChatOptions,
        stream: bool,
    ) -> Result<Vec<u8>, ClientError> {
        let mut request = request.clone();
        request.stream = Some(stream);
        request.stream_options = stream
            .then(|| serde_json::from_value(json!({ "include_usage": true })).unwrap_or_default());
        serde_json::to_vec(&PlainBody {
            request: &request,
            node: options.node.as_deref(),
            max_price: options.max_price_per_m,
        })
        .map_err(|e| ClientError::Invalid(format!("cannot write the request: {e}")))
    }

    /// A whole chat answer.
    ///
    /// # Errors
    /// [`ClientError::Seal`] when the node's key binding fails or is absent (and not
    /// allowed), or the answer does not open; payment, auth and refusal errors as any call.
    pub async fn chat(
        &self,
        request: &CreateChatCompletionRequest,
        options: &ChatOptions,
    ) -> Result<ChatAnswer, ClientError> {
        if options.plain {
            let body = Self::plain_body(request, options, false)?;
            let response = self.send_chat(body, options.pay).await?;
            let meta = self.meta(None, &response);
            let mut json: Value = Self::read_response(response).await?;
            let mut meta = meta;
            meta.node_id = json["attestation"]["node_id"].as_str().map(str::to_owned);
            meta.tee_type = json["attestation"]["tee_type"].as_str().map(str::to_owned);
            if let Some(object) = json.as_object_mut() {
                object.remove("attestation");
            }
            let response = serde_json::from_value(json).map_err(|e| ClientError::Server {
                status: 200,
                message: format!("the answer is not an OpenAI chat completion: {e}"),
            })?;
            return Ok(ChatAnswer { response, meta });
        }
        let (body, sealing) = self.seal(request, options, false).await?;
        let response = self.send_chat(body, options.pay).await?;
        let meta = self.meta(Some(&sealing), &response);
        let answer: SealedAnswer = Self::read_response(response).await?;
        let response = Self::open_whole(answer, sealing)?;
        Ok(ChatAnswer { response, meta })
    }

    /// Opens a whole sealed answer into OpenAI's `chat.completion`.
    fn open_whole(
        answer: SealedAnswer,
        sealing: Sealing,
    ) -> Result<CreateChatCompletionResponse, ClientError> {
        let opened = sealing.response.open_result(
            &answer.sealed_result.ciphertext,
            &answer.sealed_result.ephemeral_public_key,
            answer.sealed_result.algorithm.as_deref(),
        )?;
        let result: PlainResult =
            serde_json::from_slice(&opened).map_err(|e| ClientError::Server {
                status: 200,
                message: format!("the sealed answer opened but is not the node's result: {e}"),
            })?;
        let usage = answer.usage.unwrap_or(result.usage);
        completion(
            &answer.id,
            now_secs(answer.created),
            &sealing.model,
            &result.content,
            usage,
        )
    }

    /// A streamed chat answer.
    ///
    /// # Errors
    /// As [`GridClient::chat`], for what happens before the first chunk; later failures are
    /// the stream's items.
    pub async fn chat_stream(
        &self,
        request: &CreateChatCompletionRequest,
        options: &ChatOptions,
    ) -> Result<ChatStream, ClientError> {
        if options.plain {
            let body = Self::plain_body(request, options, true)?;
            let response = self.send_chat(body, options.pay).await?;
            let meta = self.meta(None, &response);
            let chunks = stream::plain(Box::pin(response.bytes_stream())).map(|item| {
                let value = item?;
                serde_json::from_value::<CreateChatCompletionStreamResponse>(value)
                    .map_err(|e| ClientError::Stream(StreamError::Malformed(e.to_string())))
            });
            return Ok(ChatStream {
                meta,
                chunks: Box::pin(chunks),
            });
        }
        let (body, sealing) = self.seal(request, options, true).await?;
        let response = self.send_chat(body, options.pay).await?;
        let meta = self.meta(Some(&sealing), &response);
        let is_json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // A node that did not stream (§3.10: v1 sealing, say) answers whole; the grid
            // relays that as JSON (§1.4 step 5): one chunk with all of it.
            let answer: SealedAnswer = Self::read_response(response).await?;
            let whole = Self::open_whole(answer, sealing)?;
            let text = whole
                .choices
                .first()
                .and_then(|c| c.message.content.clone())
                .unwrap_or_default();
            let single = chunk(
                &whole.id,
                &whole.model,
                Some(&text),
                true,
                true,
                whole.usage.as_ref().map(|u| {
                    Usage::new(u64::from(u.prompt_tokens), u64::from(u.completion_tokens))
                }),
            );
            return Ok(ChatStream {
                meta,
                chunks: Box::pin(futures_util::stream::iter([single])),
            });
        }
        let id = meta.job_id.clone().unwrap_or_default();
        let model = sealing.model.clone();
        let opener = sealing.response.stream(sealing.nonce);
        let mut first = true;
        let chunks = stream::sealed(Box::pin(response.bytes_stream()), opener).map(move |item| {
            let opened = item?;
            let was_first = std::mem::replace(&mut first, false);
            chunk(
                &id,
                &model,
                (!opened.text.is_empty() || was_first).then_some(opened.text.as_str()),
                was_first,
                opened.last,
                opened.usage,
            )
        });
        Ok(ChatStream {
            meta,
            chunks: Box::pin(chunks),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn contents_are_text_or_refused() {
        assert_eq!(content_text(&json!("hi")).unwrap(), "hi");
        assert_eq!(
            content_text(&json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]))
                .unwrap(),
            "ab"
        );
        let refused =
            content_text(&json!([{"type": "image_url", "image_url": {"url": "x"}}])).unwrap_err();
        assert!(refused.to_string().contains("image_url"), "{refused}");
    }

    #[test]
    fn an_openai_request_gives_the_nodes_messages_and_max_tokens() {
        let request: CreateChatCompletionRequest = serde_json::from_value(json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello"}]},
            ],
            "max_completion_tokens": 12,
        }))
        .unwrap();
        let messages = messages(&request).unwrap();
        assert_eq!(messages[0].role, "system");
        assert_eq!(messages[1].content, "hello");
        assert_eq!(max_tokens(&request), Some(12));
        let c = chunk("id", "m", Some("x"), true, true, Some(Usage::new(1, 2))).unwrap();
        assert_eq!(c.choices[0].delta.content.as_deref(), Some("x"));
        assert_eq!(c.usage.unwrap().completion_tokens, 2);
    }
}
