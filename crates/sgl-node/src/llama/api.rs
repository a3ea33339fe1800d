//! The parts of llama-server's HTTP API the node calls (§4.2): `GET /health`,
//! `POST /v1/chat/completions` (streamed, with `stream_options.include_usage`; the engine
//! collects whole answers from the stream, so every token is progress for its watchdog) and
//! `POST /tokenize`. A connection that fails or breaks is [`Error::EngineUnreachable`], an
//! answer the server refuses [`Error::Engine`].
//!
//! A stream yields the content deltas, then [`StreamEvent::Done`] with the server's usage when
//! `data: [DONE]` arrives; usage missing from the stream counts the deltas (as the reference
//! does). A stream that ends without `[DONE]`, or an `error` object in it, is an error.

use std::time::Duration;

use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use grid_proto::Usage;
use grid_proto::node::ChatRequest;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::StreamEvent;
use crate::{Error, Result};

/// One instance's API.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    /// `Bearer <key>`; never logged (the client's `Debug` does not show headers).
    auth: Option<reqwest::header::HeaderValue>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(usage: WireUsage) -> Usage {
        Usage::new(usage.prompt_tokens, usage.completion_tokens)
    }
}

fn body(request: &ChatRequest, stream: bool) -> Value {
    let mut body = json!({
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({ "include_usage": true });
    }
    body
}

fn engine_error(context: &str, error: impl std::fmt::Display) -> Error {
    Error::Engine(format!("{context}: {error}"))
}

fn unreachable(context: &str, error: impl std::fmt::Display) -> Error {
    Error::EngineUnreachable(format!("{context}: {error}"))
}

/// The message of an `{"error": {...}}` answer, or the text.
fn error_message(text: &str) -> String {
    let value: Option<Value> = serde_json::from_str(text).ok();
    value
        .as_ref()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str))
        .map_or_else(|| text.chars().take(300).collect(), str::to_owned)
}

impl Api {
    pub(crate) fn new(base: &str, api_key: Option<&str>) -> Result<Api> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| engine_error("cannot build the engine's HTTP client", e))?;
        let auth = api_key
            .map(|key| {
                let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {key}"))
                    .map_err(|e| engine_error("the engine's API key", e))?;
                value.set_sensitive(true);
                Ok::<_, Error>(value)
            })
            .transpose()?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.post(format!("{}{path}", self.base));
        match &self.auth {
            Some(auth) => request.header(reqwest::header::AUTHORIZATION, auth.clone()),
            None => request,
        }
    }

    /// Whether `/health` answers `{"status":"ok"}` within `timeout`.
    pub(crate) async fn health(&self, timeout: Duration) -> std::result::Result<(), String> {
        let answer = self
            .http
            .get(format!("{}/health", self.base))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| match () {
                () if e.is_timeout() => {
                    format!("/health did not answer within {} s", timeout.as_secs())
                }
                () if e.is_connect() => "nothing listens on its port".to_owned(),
                () => format!("/health failed: {e}"),
            })?;
        let status = answer.status();
        let body: Value = answer
            .json()
            .await
            .map_err(|e| format!("/health answered {status} with no JSON: {e}"))?;
        match status.is_success() && body.get("status").and_then(Value::as_str) == Some("ok") {
            true => Ok(()),
            false => Err(format!("/health answered {status}: {body}")),
        }
    }

    async fn send(&self, path: &str, body: &Value) -> Result<reqwest::Response> {
        let answer = self
            .post(path)
            .json(body)
            .send()
            .await
            .map_err(|e| unreachable("llama-server did not answer", e))?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        Err(Error::Engine(format!(
            "llama-server answered {status}: {}",
            error_message(&text)
        )))
    }

    /// A streamed chat completion: deltas, then `Done` with the usage.
    pub(crate) async fn chat_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<impl futures_util::Stream<Item = Result<StreamEvent>> + Send + use<>> {
        let answer = self
            .send("/v1/chat/completions", &body(request, true))
            .await?;
        let events = answer.bytes_stream().eventsource();
        let state = StreamState {
            events: Box::pin(events),
            usage: None,
            deltas: 0,
            done: false,
        };
        Ok(futures_util::stream::unfold(
            state,
            |mut state| async move {
                let item = state.next().await?;
                Some((item, state))
            },
        ))
    }

    /// How many tokens `text` is.
    pub(crate) async fn count_tokens(&self, text: &str) -> Result<u64> {
        #[derive(Deserialize)]
        struct Tokens {
            tokens: Vec<Value>,
        }
        let answer = self.send("/tokenize", &json!({ "content": text })).await?;
        let tokens: Tokens = answer
            .json()
            .await
            .map_err(|e| engine_error("unreadable /tokenize answer", e))?;
        Ok(tokens.tokens.len() as u64)
    }
}

type Events = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = std::result::Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<reqwest::Error>,
                >,
            > + Send,
    >,
>;

struct StreamState {
    events: Events,
    usage: Option<Usage>,
    deltas: u64,
    done: bool,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<StreamEvent>> {
        if self.done {
            return None;
        }
        loop {
            let event = match self.events.next().await {
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    self.done = true;
                    return Some(Err(unreachable("llama-server's stream broke", error)));
                }
                None => {
                    self.done = true;
                    return Some(Err(Error::EngineUnreachable(
                        "llama-server's stream ended before [DONE]".into(),
                    )));
                }
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                self.done = true;
                let usage = self.usage.unwrap_or_else(|| Usage::new(0, self.deltas));
                return Some(Ok(StreamEvent::Done(usage)));
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Chunk = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(error) => {
                    self.done = true;
                    return Some(Err(engine_error("unreadable stream chunk", error)));
                }
            };
            if let Some(error) = chunk.error {
                self.done = true;
                let message = error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned);
                return Some(Err(Error::Engine(format!(
                    "llama-server failed mid-stream: {message}"
                ))));
            }
            if let Some(usage) = chunk.usage {
                self.usage = Some(usage.into());
            }
            let text = chunk
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.delta)
                .and_then(|d| d.content)
                .unwrap_or_default();
            if !text.is_empty() {
                self.deltas += 1;
                return Some(Ok(StreamEvent::Delta(text)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_are_read_from_the_servers_error_object() {
        assert_eq!(
            error_message(r#"{"error":{"code":400,"message":"context too long","type":"x"}}"#),
            "context too long"
        );
        assert_eq!(error_message("plain failure"), "plain failure");
    }

    #[test]
    fn streams_ask_for_usage() {
        let request = ChatRequest {
            messages: vec![grid_proto::node::ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            temperature: 0.0,
            max_tokens: 8,
            stream: true,
            nonce: "n".into(),
        };
        let streamed = body(&request, true);
        assert_eq!(streamed["stream_options"]["include_usage"], true);
        assert_eq!(streamed["max_tokens"], 8);
        assert!(streamed.get("nonce").is_none());
        assert!(body(&request, false).get("stream_options").is_none());
    }
}
