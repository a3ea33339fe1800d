//! The node's WebSocket (§3.6): jobs and rotated tokens pushed as they happen, a text
//! `{"type":"ping"}` every 15 s, WebSocket Ping frames answered. A socket that closes is
//! counted (`socket_drop`) and fails the node's active jobs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use grid_proto::node::ServerMessage;

use super::Grid;
use super::pending_job;
use crate::api::{ApiError, ApiResult};
use crate::auth::key_hash;

/// How often the coordinator pings a node's socket.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// `GET /grid/nodes/{id}/ws?auth_token=...`.
pub(super) async fn connect(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let token = query
        .get("auth_token")
        .ok_or_else(|| ApiError::unauthorized("auth_token is required"))?;
    let node = grid
        .store
        .grid_node_by_token(Some(&id), &key_hash(token.trim()))?
        .ok_or_else(|| ApiError::unauthorized("unknown or revoked node token"))?;
    Ok(upgrade
        .on_upgrade(move |socket| serve(grid, node.id, socket))
        .into_response())
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    let Ok(text) = serde_json::to_string(message) else {
        return true;
    };
    socket.send(Message::Text(text.into())).await.is_ok()
}

async fn serve(grid: Arc<Grid>, node: String, mut socket: WebSocket) {
    let (connection, mut outgoing) = grid.live.connect(&node);
    tracing::info!(%node, "grid node socket connected");
    // What was dispatched before the socket came.
    match grid.store.grid_undelivered_jobs(&node) {
        Ok(jobs) => {
            for job in jobs {
                grid.live.push(
                    &node,
                    ServerMessage::Job {
                        job: pending_job(&job),
                    },
                );
            }
        }
        Err(error) => tracing::warn!(%error, "reading a node's undelivered jobs failed"),
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = outgoing.recv() => {
                let Some(message) = message else { break };
                if !send(&mut socket, &message).await {
                    break;
                }
                if let ServerMessage::Job { job } = &message
                    && let Err(error) = grid.store.grid_job_pushed(&job.id, grid.now_ms())
                {
                    tracing::warn!(%error, "marking a pushed job failed");
                }
            }
            _ = ping.tick() => {
                if !send(&mut socket, &ServerMessage::Ping).await {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Ping(payload))) => {
                    if socket.send(Message::Pong(payload)).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                // Text pongs and anything else: nothing to do.
                Some(Ok(_)) => {}
            },
        }
    }
    if grid.live.disconnect(&node, connection) {
        tracing::info!(%node, "grid node socket dropped");
        let now = grid.now_ms();
        let failed = grid
            .store
            .count_grid_failure("socket_drop", 1)
            .and_then(|()| {
                grid.store.fail_node_jobs(
                    &node,
                    "the node's connection to the coordinator dropped",
                    now,
                )
            });
        match failed {
            Ok(failed) => grid.tell_failed(&failed),
            Err(error) => tracing::warn!(%error, "failing a dropped node's jobs failed"),
        }
    }
}
