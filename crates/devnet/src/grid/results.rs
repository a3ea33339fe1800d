//! What a node posts about its jobs (§3.9): a result, a failure, a stream chunk or a stream
//! error. Every result is checked against the node's ed25519 key; a forged one fails the job
//! and marks the node tampered.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use grid_proto::Usage;
use grid_proto::envelope::{self, ResultKind};
use grid_proto::node::{
    ChunkAck, ChunkPost, CompleteBody, EmbeddingsResult, FailBody, JOB_EMBEDDINGS, PlainResult,
};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::Grid;
use super::live::JobEvent;
use crate::api::{ApiError, ApiResult, parse_body};
use crate::auth::Call;
use crate::store::{GridJob, GridNode, SignedResult};

fn sha256_hex(bytes: &[u8]) -> String {
    alloy::hex::encode(Sha256::digest(bytes))
}

/// The calling node and its active job `id`.
fn assigned(grid: &Grid, id: &str, call: &Call) -> ApiResult<(GridNode, GridJob)> {
    let node = grid.node_auth(&call.headers, None)?;
    let job = grid
        .store
        .grid_job(id)?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    if job.node_id != node.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("job {id} is not assigned to this node"),
        ));
    }
    if !matches!(job.status.as_str(), "queued" | "running") {
        return Err(ApiError::conflict(format!(
            "job {id} is already {}{}",
            job.status,
            job.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )));
    }
    Ok((node, job))
}

/// Whether the job's payload is sealed to the node (its answer must be sealed too).
fn sealed_job(job: &GridJob) -> bool {
    serde_json::from_str::<serde_json::Value>(&job.payload)
        .is_ok_and(|payload| payload.get("enc").is_some())
}

/// Whether the job was marked for streaming.
fn streaming_job(job: &GridJob) -> bool {
    serde_json::from_str::<serde_json::Value>(&job.payload).is_ok_and(|payload| {
        payload.get("stream").and_then(serde_json::Value::as_bool) == Some(true)
    })
}

/// Checks the node's signature over its result; a forgery fails the job, marks the node
/// tampered and answers 403.
fn check_signature(
    grid: &Grid,
    node: &GridNode,
    job: &GridJob,
    signature: &str,
    kind: ResultKind,
    payload: &[u8],
) -> ApiResult<()> {
    let Err(error) = envelope::verify_result(&node.public_key, signature, &job.id, kind, payload)
    else {
        return Ok(());
    };
    tracing::warn!(node = %node.id, job = %job.id, %error, "a forged result: the node is marked tampered");
    grid.store.mark_grid_tampered(&node.id)?;
    if let Some(failed) = grid.store.fail_grid_job(
        &job.id,
        Some(&node.id),
        "the node's result signature did not verify (the node is marked tampered)",
        grid.now_ms(),
    )? {
        grid.tell_failed(&[failed]);
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!("result signature rejected ({error}); the node is marked tampered"),
    ))
}

/// Fails `job` for a reason of the node's own making and tells its client.
fn fail(grid: &Grid, node: &GridNode, job: &GridJob, reason: &str) -> ApiResult<()> {
    if let Some(failed) =
        grid.store
            .fail_grid_job(&job.id, Some(&node.id), reason, grid.now_ms())?
    {
        grid.tell_failed(&[failed]);
    }
    Ok(())
}

/// `POST /grid/jobs/{id}/complete`.
pub(super) async fn complete(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let (node, job) = assigned(&grid, &id, &call)?;
    let body: CompleteBody = parse_body(
        &call.body,
        "{encrypted_result | sealed_result, usage?, result_envelope_signature, result_envelope_version}",
    )?;
    let (kind, payload) = match (&body.encrypted_result, &body.sealed_result) {
        (Some(result), None) => (ResultKind::Plain, result.as_bytes()),
        (None, Some(sealed)) => (ResultKind::Sealed, sealed.ciphertext.as_bytes()),
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of encrypted_result (plain) and sealed_result",
            ));
        }
    };
    if sealed_job(&job) != matches!(kind, ResultKind::Sealed) {
        let reason = match kind {
            ResultKind::Sealed => "a sealed result for a plain job",
            _ => "a plain result for a sealed job: the node must answer sealed",
        };
        fail(&grid, &node, &job, reason)?;
        return Err(ApiError::bad_request(format!(
            "{reason}; the job failed, nothing billed"
        )));
    }
    check_signature(
        &grid,
        &node,
        &job,
        &body.result_envelope_signature,
        kind,
        payload,
    )?;
    // What the result says it used, and (plain) the text it answered.
    let (usage, text) = match (&body.encrypted_result, &body.sealed_result) {
        (Some(result), _) if job.job_type == JOB_EMBEDDINGS => {
            match serde_json::from_str::<EmbeddingsResult>(result) {
                Ok(read) => (read.usage, None),
                Err(e) => {
                    let reason = format!("the node's embeddings result is unreadable: {e}");
                    fail(&grid, &node, &job, &reason)?;
                    return Err(ApiError::bad_request(reason));
                }
            }
        }
        (Some(result), _) => match serde_json::from_str::<PlainResult>(result) {
            Ok(read) => (read.usage, Some(read.content)),
            Err(e) => {
                let reason = format!("the node's result is unreadable: {e}");
                fail(&grid, &node, &job, &reason)?;
                return Err(ApiError::bad_request(reason));
            }
        },
        _ => (body.usage.unwrap_or_default(), None),
    };
    let usage = Usage::new(usage.prompt_tokens, usage.completion_tokens);
    if job.mode != "async" && !grid.live.is_waited(&job.id) {
        // Nobody to answer: nothing was delivered, so nothing is billed.
        fail(&grid, &node, &job, "the client went away before the answer")?;
        return Ok(Json(json!({ "ok": true, "delivered": false })).into_response());
    }
    let Some(done) = grid.store.complete_grid_job(
        &job.id,
        &node.id,
        &usage,
        &SignedResult {
            text: text.as_deref(),
            kind: &kind.to_string(),
            sha256: &sha256_hex(payload),
            signature: &body.result_envelope_signature,
        },
        grid.now_ms(),
    )?
    else {
        return Err(ApiError::conflict(format!("job {id} is no longer active")));
    };
    let event = match (body.encrypted_result, body.sealed_result) {
        (Some(result), _) => JobEvent::Plain {
            result,
            job: Box::new(done),
        },
        (None, Some(sealed)) => JobEvent::Sealed {
            sealed,
            usage,
            job: Box::new(done),
        },
        (None, None) => return Err(ApiError::internal("a result without a body")),
    };
    let delivered = grid.live.notify(&id, event);
    Ok(Json(json!({ "ok": true, "delivered": delivered })).into_response())
}

/// `POST /grid/jobs/{id}/fail`.
pub(super) async fn fail_job(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let (node, job) = assigned(&grid, &id, &call)?;
    let body: FailBody = parse_body(&call.body, "{\"reason\": ...}")?;
    let reason: String = body.reason.chars().take(500).collect();
    fail(
        &grid,
        &node,
        &job,
        &format!("the node failed the job: {reason}"),
    )?;
    Ok(Json(json!({ "ok": true })).into_response())
}

/// `POST /grid/jobs/{id}/chunk`: a chunk (forwarded to the client; the final one bills the
/// job) or `{"error": true}` (the client's stream is aborted; only the tokens the node says
/// were already delivered are billed, and only when a chunk did reach the client).
pub(super) async fn chunk(
    State(grid): State<Arc<Grid>>,
    Path(id): Path<String>,
    call: Call,
) -> ApiResult {
    let (node, job) = assigned(&grid, &id, &call)?;
    let post = ChunkPost::parse(&call.body).map_err(|e| {
        ApiError::bad_request(format!(
            "body must be a chunk {{seq, final, ciphertext, algorithm, ...}} or {{\"error\": true}}: {e}"
        ))
    })?;
    let chunk = match post {
        ChunkPost::Error(error) => {
            let reason = match &error.reason {
                Some(why) => format!(
                    "the node's stream failed: {}",
                    why.chars().take(500).collect::<String>()
                ),
                None => "the node's stream failed".to_owned(),
            };
            // Tokens already relayed to the client are billed (ours: a reference node sends
            // no usage here, and nothing is billed); none when nothing reached the client.
            let billed = error
                .usage
                .filter(|_| job.streamed)
                .map(|usage| Usage::new(0, usage.completion_tokens));
            match billed {
                Some(usage) => {
                    if let Some(failed) = grid.store.fail_grid_job_billed(
                        &job.id,
                        &node.id,
                        &reason,
                        &usage,
                        grid.now_ms(),
                    )? {
                        grid.tell_failed(&[failed]);
                    }
                }
                None => fail(&grid, &node, &job, &reason)?,
            }
            return Ok(Json(ChunkAck {
                ok: true,
                closed: true,
            })
            .into_response());
        }
        ChunkPost::Chunk(chunk) => chunk,
    };
    if !sealed_job(&job) || !streaming_job(&job) {
        let reason = "stream chunks for a job that was not asked to stream";
        fail(&grid, &node, &job, reason)?;
        return Err(ApiError::bad_request(format!(
            "{reason}; the job failed, nothing billed"
        )));
    }
    let kind = ResultKind::Stream {
        seq: chunk.seq,
        last: chunk.last,
    };
    // A chunk posted again (its answer was lost and the node retried) is acknowledged and
    // not relayed twice; a gap is refused.
    match grid.live.next_seq(&id) {
        next if chunk.seq < next => {
            return Ok(Json(ChunkAck {
                ok: true,
                closed: !grid.live.is_waited(&id),
            })
            .into_response());
        }
        next if chunk.seq > next => {
            return Err(ApiError::bad_request(format!(
                "chunk {} arrived where chunk {next} was due",
                chunk.seq
            )));
        }
        _ => {}
    }
    check_signature(
        &grid,
        &node,
        &job,
        &chunk.result_envelope_signature,
        kind,
        chunk.ciphertext.as_bytes(),
    )?;
    let now = grid.now_ms();
    grid.live.advance_seq(&id, chunk.seq, chunk.last);
    if chunk.last && !job.streamed && !grid.live.is_waited(&id) {
        // The client left before any chunk reached it: nothing was delivered, nothing is
        // billed, whatever the final chunk reports.
        fail(
            &grid,
            &node,
            &job,
            "the client went away before the first chunk",
        )?;
        return Ok(Json(ChunkAck {
            ok: true,
            closed: true,
        })
        .into_response());
    }
    if chunk.last {
        let usage = chunk.usage.unwrap_or_default();
        let usage = Usage::new(usage.prompt_tokens, usage.completion_tokens);
        grid.store.complete_grid_job(
            &job.id,
            &node.id,
            &usage,
            &SignedResult {
                text: None,
                kind: &kind.to_string(),
                sha256: &sha256_hex(chunk.ciphertext.as_bytes()),
                signature: &chunk.result_envelope_signature,
            },
            now,
        )?;
    }
    let delivered = grid.live.notify(&id, JobEvent::Chunk(Box::new(chunk)));
    grid.store.grid_job_progress(&id, delivered, now)?;
    Ok(Json(ChunkAck {
        ok: true,
        closed: !delivered,
    })
    .into_response())
}
