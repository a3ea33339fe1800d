//! The push WebSocket (§3.6): `ws://`/`wss://` to `/grid/nodes/{id}/ws?auth_token=…` (the
//! token read fresh on every connect; the URL is never logged because it carries it), jobs
//! dispatched like the heartbeat's, `{"type":"pong"}` for `{"type":"ping"}`, rotated tokens
//! persisted; reconnects from 1 s doubling to 30 s. The node sends nothing else on it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use grid_proto::node::ServerMessage;
use tokio_tungstenite::tungstenite::Message;

use crate::backoff::Backoff;
use crate::node::Shared;

/// How long a connect (TCP, TLS and upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A WebSocket ping is sent after this long without a message...
const KEEPALIVE: Duration = Duration::from_secs(30);
/// ...and the connection is dropped after this long without one.
const IDLE_LIMIT: Duration = Duration::from_secs(75);

/// The text a node answers a ping with.
const PONG: &str = r#"{"type":"pong"}"#;

pub(crate) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut backoff = Backoff::new(shared.config.reconnect_initial, shared.config.reconnect_max);
    loop {
        let url = shared.client.url().websocket(
            &shared.config.identity.node_id,
            shared.client.token().expose(),
        );
        let connect = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_tungstenite::connect_async(url.as_str()),
        );
        let connected = tokio::select! {
            () = crate::node::stopped(&mut stop) => return,
            connected = connect => connected,
        };
        drop(url);
        match connected {
            Ok(Ok((socket, _))) => {
                tracing::info!("websocket connected");
                shared.connected.store(true, Ordering::SeqCst);
                backoff.reset();
                session(&shared, socket, &mut stop).await;
                shared.connected.store(false, Ordering::SeqCst);
                if *stop.borrow() {
                    return;
                }
                tracing::info!("websocket closed; reconnecting");
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %describe(&error), "websocket connect failed");
            }
            Err(_) => tracing::warn!("websocket connect timed out"),
        }
        let delay = backoff.next_delay();
        tokio::select! {
            () = crate::node::stopped(&mut stop) => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// A connect error without the URL (which carries the token).
fn describe(error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::UrlError;
    match error {
        Error::Url(UrlError::UnableToConnect(_)) => "unable to connect".into(),
        Error::Url(_) => "the WebSocket URL was refused".into(),
        Error::Http(response) => format!("the coordinator answered {}", response.status()),
        other => other.to_string(),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn session(
    shared: &Arc<Shared>,
    mut socket: Socket,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let mut last_heard = tokio::time::Instant::now();
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.reset();
    loop {
        let message = tokio::select! {
            () = crate::node::stopped(stop) => {
                let _ = socket.close(None).await;
                return;
            }
            _ = keepalive.tick() => {
                if last_heard.elapsed() >= IDLE_LIMIT {
                    tracing::warn!("websocket silent for too long; reconnecting");
                    return;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
                continue;
            }
            message = socket.next() => message,
        };
        last_heard = tokio::time::Instant::now();
        let text = match message {
            None => return,
            Some(Err(error)) => {
                tracing::warn!(%error, "websocket error");
                return;
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) => {
                // tungstenite answers the close; the stream ends next.
                continue;
            }
            // Ping frames are answered by tungstenite on the next flush.
            Some(Ok(Message::Ping(_))) => {
                if socket.flush().await.is_err() {
                    return;
                }
                continue;
            }
            Some(Ok(_)) => continue,
        };
        match serde_json::from_str::<ServerMessage>(text.as_str()) {
            Ok(ServerMessage::Ping) => {
                if let Err(error) = socket.send(Message::Text(PONG.into())).await {
                    tracing::warn!(%error, "websocket pong failed");
                    return;
                }
            }
            Ok(ServerMessage::Job { job }) => shared.dispatch(job, "websocket"),
            Ok(ServerMessage::TokenRotated { new_auth_token, .. }) => {
                shared.rotate_token(new_auth_token, "websocket");
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "unreadable websocket message ignored"),
        }
    }
}
