//! Streamed chat answers: server-sent events parsed by `eventsource-stream` over any byte
//! stream (reqwest's `bytes_stream()`), each way a stream can end given its own outcome
//! (`grid-and-node.md` §1.4): `data: [DONE]` ends a plain stream; keep-alive comments are
//! skipped; an `event: error` is the server's error; a connection that ends first is
//! [`StreamError::Dropped`]. A sealed stream's chunks (`{"seq", "final", "eph", "ct"}`) are
//! opened in order by a [`crate::seal::StreamOpener`]; it ends with its `final` chunk
//! (`[DONE]` is ignored there), and ending earlier is [`StreamError::Seal`]
//! ([`crate::seal::SealError::Truncated`]).

use eventsource_stream::Eventsource as _;
use futures_util::{Stream, StreamExt as _};

use crate::seal::{SealError, SealedChunk, StreamOpener};

/// How a stream went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The server sent an `event: error` (its message).
    #[error("the grid ended the stream with an error: {0}")]
    Server(String),
    /// The connection ended before the stream's end (`[DONE]`, or the final sealed chunk).
    #[error("the stream was cut before its end: the answer is incomplete")]
    Dropped,
    /// Reading the connection failed.
    #[error("reading the stream failed: {0}")]
    Transport(String),
    /// An event is not what the protocol says.
    #[error("an unreadable stream event: {0}")]
    Malformed(String),
    /// A sealed chunk failed to open (tampered, reordered, replayed, truncated).
    #[error(transparent)]
    Seal(#[from] SealError),
}

fn server_message(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|json| {
            json["error"]["message"]
                .as_str()
                .or_else(|| json["error"].as_str())
                .or_else(|| json["message"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| data.chars().take(300).collect())
}

/// The chunks of a plain (unsealed) stream, each an OpenAI `chat.completion.chunk` as JSON.
/// The stream ends after `[DONE]`; every other end is an error.
pub fn plain<S, B, E>(bytes: S) -> impl Stream<Item = Result<serde_json::Value, StreamError>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let events = bytes.eventsource();
    futures_util::stream::unfold(Some(events), |state| async move {
        let mut events = state?;
        loop {
            let Some(event) = events.next().await else {
                return Some((Err(StreamError::Dropped), None));
            };
            let event = match event {
                Ok(event) => event,
                Err(error) => return Some((Err(StreamError::Transport(error.to_string())), None)),
            };
            if event.event == "error" {
                return Some((Err(StreamError::Server(server_message(&event.data))), None));
            }
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return None;
            }
            return Some(match serde_json::from_str(data) {
                Ok(chunk) => (Ok(chunk), Some(events)),
                Err(error) => (Err(StreamError::Malformed(error.to_string())), None),
            });
        }
    })
}

/// A sealed chunk event, as the coordinator relays it.
#[derive(serde::Deserialize)]
struct ChunkEvent {
    seq: u64,
    #[serde(rename = "final")]
    last: bool,
    #[serde(default)]
    eph: Option<String>,
    ct: String,
    /// Our coordinator relays the node's cleartext token counts on the final chunk.
    #[serde(default)]
    usage: Option<grid_proto::Usage>,
}

/// One opened chunk of a sealed stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The text of the deltas the node sealed in it (the final chunk's is usually empty).
    pub text: String,
    /// Whether it is the final chunk.
    pub last: bool,
    /// The token counts, on the final chunk when the grid relays them.
    pub usage: Option<grid_proto::Usage>,
}

/// The opened chunks of a sealed stream. The stream ends after the chunk marked final; ending
/// earlier, reordering, replay and tampering are errors.
pub fn sealed<S, B, E>(
    bytes: S,
    opener: StreamOpener,
) -> impl Stream<Item = Result<Opened, StreamError>>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let events = bytes.eventsource();
    futures_util::stream::unfold(Some((events, opener)), |state| async move {
        let (mut events, mut opener) = state?;
        if opener.is_finished() {
            return None;
        }
        loop {
            let Some(event) = events.next().await else {
                let error = match opener.finish() {
                    Ok(()) => StreamError::Dropped,
                    Err(truncated) => StreamError::Seal(truncated),
                };
                return Some((Err(error), None));
            };
            let event = match event {
                Ok(event) => event,
                Err(error) => return Some((Err(StreamError::Transport(error.to_string())), None)),
            };
            if event.event == "error" {
                return Some((Err(StreamError::Server(server_message(&event.data))), None));
            }
            let data = event.data.trim();
            // `[DONE]` may appear and is ignored: a sealed stream ends with its final chunk.
            if data.is_empty() || data == "[DONE]" {
                continue;
            }
            let chunk: ChunkEvent = match serde_json::from_str(data) {
                Ok(chunk) => chunk,
                Err(error) => {
                    return Some((Err(StreamError::Malformed(error.to_string())), None));
                }
            };
            let (last, usage) = (chunk.last, chunk.usage);
            let sealed = SealedChunk {
                seq: chunk.seq,
                last: chunk.last,
                eph: chunk.eph,
                ct: chunk.ct,
            };
            let opened = match opener.open(&sealed) {
                Ok(plaintext) => plaintext,
                Err(error) => return Some((Err(StreamError::Seal(error)), None)),
            };
            return Some(match String::from_utf8(opened) {
                Ok(text) => (Ok(Opened { text, last, usage }), Some((events, opener))),
                Err(_) => (
                    Err(StreamError::Malformed(
                        "a sealed chunk's text is not UTF-8".to_owned(),
                    )),
                    None,
                ),
            });
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::seal;

    fn bytes(parts: &[&str]) -> impl Stream<Item = Result<Vec<u8>, String>> + Unpin {
        let owned: Vec<Result<Vec<u8>, String>> =
            parts.iter().map(|p| Ok(p.as_bytes().to_vec())).collect();
        futures_util::stream::iter(owned)
    }

    async fn collect<T>(
        stream: impl Stream<Item = Result<T, StreamError>>,
    ) -> (Vec<T>, Option<StreamError>) {
        let mut values = Vec::new();
        futures_util::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(value) => values.push(value),
                Err(error) => return (values, Some(error)),
            }
        }
        (values, None)
    }

    #[tokio::test]
    async fn a_plain_stream_has_a_distinct_outcome_for_each_ending() {
        // Chunks split across reads, a keep-alive comment, then [DONE].
        let (values, end) = collect(plain(bytes(&[
            ": keep-alive\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n",
            "\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n",
            "data: [DONE]\n\n",
        ])))
        .await;
        assert_eq!(values.len(), 2);
        assert!(end.is_none(), "{end:?}");

        let (values, end) = collect(plain(bytes(&[
            "data: {\"choices\":[]}\n\n",
            "event: error\ndata: {\"error\":{\"message\":\"node went away\"}}\n\n",
        ])))
        .await;
        assert_eq!(values.len(), 1);
        assert!(
            matches!(end, Some(StreamError::Server(ref m)) if m == "node went away"),
            "{end:?}"
        );

        let (_, end) = collect(plain(bytes(&["data: {\"choices\":[]}\n\n"]))).await;
        assert!(matches!(end, Some(StreamError::Dropped)), "{end:?}");

        let failing = futures_util::stream::iter(vec![
            Ok::<Vec<u8>, String>(b"data: {}\n\n".to_vec()),
            Err("connection reset".to_owned()),
        ]);
        let (_, end) = collect(plain(failing)).await;
        assert!(
            matches!(end, Some(StreamError::Transport(ref m)) if m.contains("connection reset")),
            "{end:?}"
        );
    }

    /// A sealed stream of `n` chunks as SSE lines, with the opener for it.
    fn sealed_events(n: u64) -> (Vec<String>, StreamOpener) {
        let node = seal::node_x25519_secret(&[3; 32]);
        let node_pub = seal::b58(x25519_dalek::PublicKey::from(&node).as_bytes());
        let mut counter = 0u8;
        let mut random = move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                counter = counter.wrapping_add(1);
                *b = counter;
            }
        };
        let request = seal::seal_request(&node_pub, b"{}", &mut random).unwrap();
        let mut sealer =
            seal::StreamSealer::new(&request.client_response_pubkey, "n", &mut random).unwrap();
        let lines = (0..n)
            .map(|i| {
                let chunk = sealer.seal(format!("part{i}").as_bytes(), i + 1 == n, &mut random);
                let mut json =
                    serde_json::json!({ "seq": chunk.seq, "final": chunk.last, "ct": chunk.ct });
                if let Some(eph) = chunk.eph {
                    json["eph"] = serde_json::Value::from(eph);
                }
                format!("data: {json}\n\n")
            })
            .collect();
        (lines, request.response.stream("n"))
    }

    #[tokio::test]
    async fn a_sealed_stream_opens_in_order_and_its_endings_are_told_apart() {
        let (lines, opener) = sealed_events(3);
        let mut parts: Vec<&str> = lines.iter().map(String::as_str).collect();
        parts.insert(1, ": keep-alive\n\n");
        parts.push("data: [DONE]\n\n");
        let (values, end) = collect(sealed(bytes(&parts), opener)).await;
        assert_eq!(values.len(), 3);
        let texts: Vec<_> = values.iter().map(|o| o.text.as_str()).collect();
        assert_eq!(texts, ["part0", "part1", "part2"]);
        assert!(values[2].last && !values[1].last);
        assert!(end.is_none(), "{end:?}");

        // Cut after two chunks: truncated, even with a [DONE].
        let (lines, opener) = sealed_events(3);
        let parts = [lines[0].as_str(), lines[1].as_str(), "data: [DONE]\n\n"];
        let (values, end) = collect(sealed(bytes(&parts), opener)).await;
        assert_eq!(values.len(), 2);
        assert!(
            matches!(end, Some(StreamError::Seal(SealError::Truncated(2)))),
            "{end:?}"
        );

        // Reordered, replayed: each refused with its own error.
        let (lines, opener) = sealed_events(3);
        let parts = [lines[0].as_str(), lines[2].as_str()];
        let (_, end) = collect(sealed(bytes(&parts), opener)).await;
        assert!(
            matches!(
                end,
                Some(StreamError::Seal(SealError::OutOfOrder {
                    expected: 1,
                    got: 2
                }))
            ),
            "{end:?}"
        );
        let (lines, opener) = sealed_events(3);
        let parts = [lines[0].as_str(), lines[0].as_str()];
        let (_, end) = collect(sealed(bytes(&parts), opener)).await;
        assert!(
            matches!(end, Some(StreamError::Seal(SealError::Replayed(0)))),
            "{end:?}"
        );

        // The server's error event.
        let (lines, opener) = sealed_events(2);
        let parts = [lines[0].as_str(), "event: error\ndata: engine died\n\n"];
        let (_, end) = collect(sealed(bytes(&parts), opener)).await;
        assert!(
            matches!(end, Some(StreamError::Server(ref m)) if m == "engine died"),
            "{end:?}"
        );
    }
}
