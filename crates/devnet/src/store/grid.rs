//! The grid coordinator's state, in the same database as the machines API: nodes, jobs (with
//! the credits each one holds), registration and device codes, reservations, custom prices,
//! attestation challenges, the binary allowlist and failure counters.
//!
//! Money moves with the job it belongs to: a job's hold is spent from the caller's credits in
//! the transaction that inserts it, and its cost (capped at the hold) is written with the
//! refund of the rest in the transaction that completes it; a failed job gives the whole hold
//! back. A job leaves `queued`/`running` once, guarded in SQL, so it is billed at most once.

use rusqlite::{Connection, OptionalExtension, params};
use x402_core::PayTo;

use super::{Store, int, read_credits, read_wallet, uint, wallet_key};
use crate::error::Result;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS grid_nodes (
    id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    public_key TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    old_token_hash TEXT,
    pending_token TEXT,
    tee_type TEXT NOT NULL,
    registration TEXT NOT NULL,
    available_models TEXT NOT NULL DEFAULT '[]',
    encryption_public_key TEXT,
    keybind_signature TEXT,
    key_version INTEGER,
    keybind_verified INTEGER NOT NULL DEFAULT 0,
    streaming INTEGER NOT NULL DEFAULT 0,
    context_size INTEGER NOT NULL DEFAULT 0,
    embeddings INTEGER NOT NULL DEFAULT 0,
    max_concurrent_jobs INTEGER NOT NULL DEFAULT 1,
    binary_hash TEXT,
    current_load REAL NOT NULL DEFAULT 0,
    last_seen_ms INTEGER,
    prev_seen_ms INTEGER,
    lost INTEGER NOT NULL DEFAULT 0,
    off_grid INTEGER NOT NULL DEFAULT 0,
    tampered INTEGER NOT NULL DEFAULT 0,
    attestation_verified INTEGER NOT NULL DEFAULT 0,
    attestation_report TEXT,
    attested_ms INTEGER,
    jobs_completed INTEGER NOT NULL DEFAULT 0,
    jobs_failed INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_jobs (
    id TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    model TEXT NOT NULL,
    job_type TEXT NOT NULL,
    mode TEXT NOT NULL,
    payload TEXT NOT NULL,
    wallet TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    delivered INTEGER NOT NULL DEFAULT 0,
    delivered_ms INTEGER,
    streamed INTEGER NOT NULL DEFAULT 0,
    input_micros INTEGER NOT NULL,
    output_micros INTEGER NOT NULL,
    hold_micros INTEGER NOT NULL,
    cost_micros INTEGER,
    usage TEXT,
    result TEXT,
    result_kind TEXT,
    result_sha256 TEXT,
    result_signature TEXT,
    error TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    completed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS grid_jobs_by_node ON grid_jobs (node_id, status);
CREATE TABLE IF NOT EXISTS grid_codes (
    code TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_device_codes (
    device_code TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    wallet TEXT,
    registration_code TEXT,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_reservations (
    token_hash TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    model TEXT NOT NULL,
    wallet TEXT,
    expires_ms INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    input_micros INTEGER NOT NULL DEFAULT 0,
    output_micros INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS grid_prices (
    node_id TEXT NOT NULL,
    model TEXT NOT NULL,
    input_micros INTEGER NOT NULL,
    output_micros INTEGER NOT NULL,
    PRIMARY KEY (node_id, model)
);
CREATE TABLE IF NOT EXISTS grid_challenges (
    challenge TEXT PRIMARY KEY,
    node_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    input_micros INTEGER NOT NULL DEFAULT 0,
    output_micros INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS grid_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grid_failures (
    kind TEXT PRIMARY KEY,
    count INTEGER NOT NULL DEFAULT 0
);
";

/// A job's cost in micro-dollars: `ceil((prompt × input + completion × output) / 1e6)` with
/// prices in micro-dollars per 1M tokens, in `u128` (saturating at `u64::MAX`, which any hold
/// caps far below).
pub fn cost_micros(usage: &grid_proto::Usage, input_per_m: u64, output_per_m: u64) -> u64 {
    let input = u128::from(usage.prompt_tokens) * u128::from(input_per_m);
    let output = u128::from(usage.completion_tokens) * u128::from(output_per_m);
    let total = input.saturating_add(output);
    u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// A custom price: `(node, model, input, output)`, micro-dollars per 1M tokens.
pub type CustomPrice = (String, String, u64, u64);

/// A registered node.
#[derive(Clone, Debug, PartialEq)]
pub struct GridNode {
    /// Its id (a UUID).
    pub id: String,
    /// The operator's wallet, as registered.
    pub wallet: String,
    /// The ed25519 public key, base58.
    pub public_key: String,
    /// The TEE type it claims.
    pub tee_type: String,
    /// What it serves, from its last heartbeat (its registration's before one).
    pub available_models: Vec<String>,
    /// The X25519 key, base58.
    pub encryption_public_key: Option<String>,
    /// The key binding signature.
    pub keybind_signature: Option<String>,
    /// The key binding's version.
    pub key_version: Option<u32>,
    /// Whether the key binding verified.
    pub keybind_verified: bool,
    /// Capabilities: streams.
    pub streaming: bool,
    /// Capabilities: context per slot.
    pub context_size: u32,
    /// Capabilities (ours): serves embeddings.
    pub embeddings: bool,
    /// Slots, 1..16.
    pub max_concurrent_jobs: u32,
    /// Hex SHA-256 of its executable.
    pub binary_hash: Option<String>,
    /// As reported.
    pub current_load: f64,
    /// Its last heartbeat, unix ms.
    pub last_seen_ms: Option<u64>,
    /// Off-grid: takes no new jobs.
    pub off_grid: bool,
    /// Posted a forged result: never routed again.
    pub tampered: bool,
    /// Its attestation was accepted.
    pub attestation_verified: bool,
    /// Its last hardware report (JSON).
    pub attestation_report: Option<String>,
    /// Jobs completed.
    pub jobs_completed: u64,
    /// Jobs failed.
    pub jobs_failed: u64,
    /// Jobs queued or running on it now.
    pub active_jobs: u64,
}

const NODE_COLUMNS: &str = "id, wallet, public_key, tee_type, available_models, encryption_public_key, keybind_signature, key_version, keybind_verified, streaming, context_size, embeddings, max_concurrent_jobs, binary_hash, current_load, last_seen_ms, off_grid, tampered, attestation_verified, attestation_report, jobs_completed, jobs_failed, (SELECT COUNT(*) FROM grid_jobs j WHERE j.node_id = grid_nodes.id AND j.status IN ('queued', 'running'))";

fn opt_uint(r: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    match r.get::<_, Option<i64>>(index)? {
        Some(_) => uint(r, index).map(Some),
        None => Ok(None),
    }
}

fn read_node(r: &rusqlite::Row<'_>) -> rusqlite::Result<GridNode> {
    let models: String = r.get(4)?;
    Ok(GridNode {
        id: r.get(0)?,
        wallet: r.get(1)?,
        public_key: r.get(2)?,
        tee_type: r.get(3)?,
        available_models: serde_json::from_str(&models).unwrap_or_default(),
        encryption_public_key: r.get(5)?,
        keybind_signature: r.get(6)?,
        key_version: r.get(7)?,
        keybind_verified: r.get(8)?,
        streaming: r.get(9)?,
        context_size: r.get(10)?,
        embeddings: r.get(11)?,
        max_concurrent_jobs: r.get(12)?,
        binary_hash: r.get(13)?,
        current_load: r.get(14)?,
        last_seen_ms: opt_uint(r, 15)?,
        off_grid: r.get(16)?,
        tampered: r.get(17)?,
        attestation_verified: r.get(18)?,
        attestation_report: r.get(19)?,
        jobs_completed: uint(r, 20)?,
        jobs_failed: uint(r, 21)?,
        active_jobs: uint(r, 22)?,
    })
}

/// A node to register.
#[derive(Clone, Debug)]
pub struct NewNode<'a> {
    /// Its id.
    pub id: &'a str,
    /// The operator wallet (must be the code's).
    pub wallet: &'a str,
    /// The single-use code.
    pub code: &'a str,
    /// ed25519 public key, base58.
    pub public_key: &'a str,
    /// SHA-256 (hex) of its auth token.
    pub token_hash: &'a str,
    /// The TEE type it claims.
    pub tee_type: &'a str,
    /// Models it registers with.
    pub available_models: &'a [String],
    /// The registration body (hardware facts), JSON.
    pub registration: &'a str,
    /// Now.
    pub now_ms: u64,
}

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterRefusal {
    /// No such code.
    UnknownCode,
    /// Used before.
    UsedCode,
    /// Issued to another wallet.
    OtherWallet,
}

/// What a heartbeat writes.
#[derive(Clone, Debug)]
pub struct HeartbeatUpdate<'a> {
    /// Reported load.
    pub current_load: f64,
    /// Served models.
    pub available_models: &'a [String],
    /// X25519 key.
    pub encryption_public_key: &'a str,
    /// Key binding signature.
    pub keybind_signature: Option<&'a str>,
    /// Key binding version.
    pub key_version: Option<u32>,
    /// Whether the key binding verified.
    pub keybind_verified: bool,
    /// Capabilities.
    pub capabilities: grid_proto::node::Capabilities,
    /// Jobs in flight at the node.
    pub active_job_ids: &'a [String],
    /// Executable hash.
    pub binary_hash: Option<&'a str>,
    /// Slots, already clamped.
    pub max_concurrent_jobs: u32,
    /// Now.
    pub now_ms: u64,
}

/// What a heartbeat answers with.
#[derive(Debug, Default)]
pub struct HeartbeatOutcome {
    /// Jobs to hand over (now marked delivered).
    pub pending: Vec<GridJob>,
    /// Jobs the node no longer runs, failed (the ghost reconciler).
    pub ghosts: Vec<GridJob>,
    /// A rotated token the node has not used yet.
    pub new_token: Option<String>,
}

/// A job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GridJob {
    /// Its id.
    pub id: String,
    /// The node it is assigned to.
    pub node_id: String,
    /// The model.
    pub model: String,
    /// `inference` or `embeddings`.
    pub job_type: String,
    /// `chat` (a client waits on it), `sealed`, `embeddings` or `async` (`/grid/jobs`).
    pub mode: String,
    /// The node's `input_payload`, JSON.
    pub payload: String,
    /// Who pays.
    pub wallet: PayTo,
    /// `queued`, `running`, `completed`, `failed`.
    pub status: String,
    /// Offered by a heartbeat.
    pub delivered: bool,
    /// First handed to the node (heartbeat or WebSocket), unix ms.
    pub delivered_ms: Option<u64>,
    /// Its first chunk reached the client.
    pub streamed: bool,
    /// The node's input price, micro-dollars per 1M tokens.
    pub input_micros: u64,
    /// The node's output price, micro-dollars per 1M tokens.
    pub output_micros: u64,
    /// Credits held.
    pub hold_micros: u64,
    /// What it cost.
    pub cost_micros: Option<u64>,
    /// Token counts, JSON.
    pub usage: Option<String>,
    /// The answer's text (plain and async jobs).
    pub result: Option<String>,
    /// What the node's signature covers (`plain`, `sealed`, `stream:N:1`).
    pub result_kind: Option<String>,
    /// Hex SHA-256 of the signed payload.
    pub result_sha256: Option<String>,
    /// The node's signature of its final result.
    pub result_signature: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Created, unix ms.
    pub created_ms: u64,
    /// Last progress, unix ms.
    pub updated_ms: u64,
    /// Completed or failed, unix ms.
    pub completed_ms: Option<u64>,
}

const JOB_COLUMNS: &str = "id, node_id, model, job_type, mode, payload, wallet, status, delivered, delivered_ms, streamed, input_micros, output_micros, hold_micros, cost_micros, usage, result, result_kind, result_sha256, result_signature, error, created_ms, updated_ms, completed_ms";

fn read_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<GridJob> {
    Ok(GridJob {
        id: r.get(0)?,
        node_id: r.get(1)?,
        model: r.get(2)?,
        job_type: r.get(3)?,
        mode: r.get(4)?,
        payload: r.get(5)?,
        wallet: read_wallet(r, 6)?,
        status: r.get(7)?,
        delivered: r.get(8)?,
        delivered_ms: opt_uint(r, 9)?,
        streamed: r.get(10)?,
        input_micros: uint(r, 11)?,
        output_micros: uint(r, 12)?,
        hold_micros: uint(r, 13)?,
        cost_micros: opt_uint(r, 14)?,
        usage: r.get(15)?,
        result: r.get(16)?,
        result_kind: r.get(17)?,
        result_sha256: r.get(18)?,
        result_signature: r.get(19)?,
        error: r.get(20)?,
        created_ms: uint(r, 21)?,
        updated_ms: uint(r, 22)?,
        completed_ms: opt_uint(r, 23)?,
    })
}

/// A job to insert.
#[derive(Clone, Debug)]
pub struct NewJob<'a> {
    /// Its id.
    pub id: &'a str,
    /// The node.
    pub node_id: &'a str,
    /// The model.
    pub model: &'a str,
    /// `inference` or `embeddings`.
    pub job_type: &'a str,
    /// See [`GridJob::mode`].
    pub mode: &'a str,
    /// The node's payload, JSON.
    pub payload: &'a str,
    /// Who pays.
    pub wallet: &'a PayTo,
    /// Prices, micro-dollars per 1M tokens.
    pub input_micros: u64,
    /// Prices, micro-dollars per 1M tokens.
    pub output_micros: u64,
    /// Credits to hold.
    pub hold_micros: u64,
    /// Now.
    pub now_ms: u64,
}

/// The node's signed final result, kept for `/grid/jobs/{id}/attestation`.
#[derive(Clone, Debug)]
pub struct SignedResult<'a> {
    /// The answer's text, when the coordinator can read it.
    pub text: Option<&'a str>,
    /// `plain`, `sealed`, `stream:N:1`.
    pub kind: &'a str,
    /// Hex SHA-256 of the signed payload.
    pub sha256: &'a str,
    /// The signature, base58.
    pub signature: &'a str,
}

/// A reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The reserved node.
    pub node_id: String,
    /// The model.
    pub model: String,
    /// The key's wallet, or `None` for an x402 reservation.
    pub wallet: Option<PayTo>,
    /// The node's input price when reserved, micro-dollars per 1M tokens: the chat is billed
    /// at it, whatever the node sets meanwhile.
    pub input_micros: u64,
    /// The output price when reserved.
    pub output_micros: u64,
}

/// What became of a reservation token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReservationUse {
    /// Valid (and now used, when taken).
    Valid(Reservation),
    /// No such token.
    Unknown,
    /// Used before.
    Used,
    /// Past its time.
    Expired,
}

/// The failure counters `/grid/capacity` shows.
pub const FAILURE_KINDS: [&str; 5] = [
    "heartbeat_lost",
    "job_timeout",
    "socket_drop",
    "tampered",
    "ghost_job",
];

fn count_failure(c: &Connection, kind: &str, by: u64) -> rusqlite::Result<()> {
    if by == 0 {
        return Ok(());
    }
    c.execute(
        "INSERT INTO grid_failures (kind, count) VALUES (?1, ?2)
         ON CONFLICT(kind) DO UPDATE SET count = count + excluded.count",
        params![kind, int(by)?],
    )
    .map(|_| ())
}

/// Gives back `micros` of `wallet`'s spent credits.
fn refund_in(c: &Connection, wallet: &str, micros: u64) -> rusqlite::Result<()> {
    if micros == 0 {
        return Ok(());
    }
    c.execute(
        "UPDATE credits SET spent_micros = MAX(0, spent_micros - ?2) WHERE wallet = ?1",
        params![wallet, int(micros)?],
    )
    .map(|_| ())
}

fn job_in(c: &Connection, id: &str) -> rusqlite::Result<Option<GridJob>> {
    c.query_row(
        &format!("SELECT {JOB_COLUMNS} FROM grid_jobs WHERE id = ?1"),
        params![id],
        read_job,
    )
    .optional()
}

/// `node`'s job `id` with what `usage` costs at its prices (capped at its hold) and the usage
/// as JSON; `None` when there is no such job of `node`'s.
fn billable_in(
    c: &Connection,
    id: &str,
    node: &str,
    usage: &grid_proto::Usage,
) -> rusqlite::Result<Option<(GridJob, u64, String)>> {
    let Some(job) = job_in(c, id)?.filter(|job| job.node_id == node) else {
        return Ok(None);
    };
    let cost = cost_micros(usage, job.input_micros, job.output_micros).min(job.hold_micros);
    let usage_json = serde_json::to_string(usage).unwrap_or_default();
    Ok(Some((job, cost, usage_json)))
}

/// Ends a job billed `cost` (its status row just `changed`, or not, when it was no longer
/// active): the rest of the hold back to its wallet and the node's `counter` up by one, then
/// commits. The job as it now stands, or `None` when nothing changed.
fn settled_in(
    tx: rusqlite::Transaction<'_>,
    job: &GridJob,
    changed: usize,
    cost: u64,
    counter: &str,
) -> rusqlite::Result<Option<GridJob>> {
    if changed == 0 {
        return Ok(None);
    }
    refund_in(&tx, &wallet_key(&job.wallet), job.hold_micros - cost)?;
    // `counter` is one of two column names fixed in this file, never input.
    tx.execute(
        &format!("UPDATE grid_nodes SET {counter} = {counter} + 1 WHERE id = ?1"),
        params![job.node_id],
    )?;
    let settled = job_in(&tx, &job.id)?;
    tx.commit()?;
    Ok(settled)
}

/// Fails an active job inside the caller's transaction: the whole hold goes back. `None` when
/// it was not active (or not `node`'s).
fn fail_in(
    c: &Connection,
    id: &str,
    node: Option<&str>,
    reason: &str,
    now_ms: u64,
) -> rusqlite::Result<Option<GridJob>> {
    let Some(job) = job_in(c, id)? else {
        return Ok(None);
    };
    if node.is_some_and(|node| node != job.node_id) {
        return Ok(None);
    }
    let changed = c.execute(
        "UPDATE grid_jobs SET status = 'failed', error = ?2, cost_micros = 0, updated_ms = ?3, completed_ms = ?3
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![id, reason, int(now_ms)?],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    refund_in(c, &wallet_key(&job.wallet), job.hold_micros)?;
    c.execute(
        "UPDATE grid_nodes SET jobs_failed = jobs_failed + 1 WHERE id = ?1",
        params![job.node_id],
    )?;
    job_in(c, id)
}

impl Store {
    /// Issues a single-use registration code for `wallet`.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_grid_code(&self, code: &str, wallet: &str, now_ms: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO grid_codes (code, wallet, created_ms) VALUES (?1, ?2, ?3)",
                params![code, wallet, int(now_ms)?],
            )
            .map(|_| ())
        })
    }

    /// Uses the node's code and registers it, both or neither.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn register_grid_node(
        &self,
        node: &NewNode<'_>,
    ) -> Result<std::result::Result<(), RegisterRefusal>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let code: Option<(String, bool)> = tx
                .query_row(
                    "SELECT wallet, used FROM grid_codes WHERE code = ?1",
                    params![node.code],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match code {
                None => return Ok(Err(RegisterRefusal::UnknownCode)),
                Some((_, true)) => return Ok(Err(RegisterRefusal::UsedCode)),
                Some((wallet, false)) if wallet != node.wallet => {
                    return Ok(Err(RegisterRefusal::OtherWallet));
                }
                Some(_) => {}
            }
            tx.execute(
                "UPDATE grid_codes SET used = 1 WHERE code = ?1",
                params![node.code],
            )?;
            let models = serde_json::to_string(node.available_models).unwrap_or_default();
            tx.execute(
                "INSERT INTO grid_nodes (id, wallet, public_key, token_hash, tee_type, registration, available_models, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![node.id, node.wallet, node.public_key, node.token_hash, node.tee_type, node.registration, models, int(node.now_ms)?],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// Starts a device login.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_device_code(
        &self,
        device_code: &str,
        user_code: &str,
        expires_ms: u64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO grid_device_codes (device_code, user_code, expires_ms) VALUES (?1, ?2, ?3)",
                params![device_code, user_code, int(expires_ms)?],
            )
            .map(|_| ())
        })
    }

    /// Approves a device login for `wallet`, issuing its registration code in the same
    /// transaction; `false` when the user code is unknown, expired or approved already.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn approve_device_code(
        &self,
        user_code: &str,
        wallet: &str,
        registration_code: &str,
        now_ms: u64,
    ) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE grid_device_codes SET wallet = ?2, registration_code = ?3
                 WHERE user_code = ?1 AND wallet IS NULL AND expires_ms > ?4",
                params![user_code, wallet, registration_code, int(now_ms)?],
            )?;
            if changed == 1 {
                tx.execute(
                    "INSERT INTO grid_codes (code, wallet, created_ms) VALUES (?1, ?2, ?3)",
                    params![registration_code, wallet, int(now_ms)?],
                )?;
            }
            tx.commit()?;
            Ok(changed == 1)
        })
    }

    /// A device login's state: `None` for an unknown code, else `(wallet, registration code)`
    /// once approved and whether it expired.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    #[allow(clippy::type_complexity)]
    pub fn device_code(
        &self,
        device_code: &str,
        now_ms: u64,
    ) -> Result<Option<(Option<(String, String)>, bool)>> {
        self.with(|c| {
            c.query_row(
                "SELECT wallet, registration_code, expires_ms FROM grid_device_codes WHERE device_code = ?1",
                params![device_code],
                |r| {
                    let wallet: Option<String> = r.get(0)?;
                    let code: Option<String> = r.get(1)?;
                    let expires = uint(r, 2)?;
                    Ok((wallet.zip(code), expires <= now_ms))
                },
            )
            .optional()
        })
    }

    /// The node whose token hashes to `token_hash` (and whose id is `node_id`, when given).
    /// A rotated token's predecessor works until the new one is first used, which revokes it.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_node_by_token(
        &self,
        node_id: Option<&str>,
        token_hash: &str,
    ) -> Result<Option<GridNode>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let found: Option<(String, bool)> = tx
                .query_row(
                    "SELECT id, token_hash = ?1 FROM grid_nodes WHERE token_hash = ?1 OR old_token_hash = ?1",
                    params![token_hash],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, current)) = found else {
                return Ok(None);
            };
            if node_id.is_some_and(|node_id| node_id != id) {
                return Ok(None);
            }
            if current {
                tx.execute(
                    "UPDATE grid_nodes SET old_token_hash = NULL, pending_token = NULL WHERE id = ?1 AND old_token_hash IS NOT NULL",
                    params![id],
                )?;
            }
            let node = tx.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM grid_nodes WHERE id = ?1"),
                params![id],
                read_node,
            )?;
            tx.commit()?;
            Ok(Some(node))
        })
    }

    /// Rotates a node's token: the new one is current, the old one works until the new one is
    /// used. `false` for an unknown node.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn rotate_grid_token(&self, node_id: &str, token: &str, token_hash: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE grid_nodes SET old_token_hash = COALESCE(old_token_hash, token_hash), token_hash = ?2, pending_token = ?3 WHERE id = ?1",
                params![node_id, token_hash, token],
            )
            .map(|n| n == 1)
        })
    }

    /// A node.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_node(&self, id: &str) -> Result<Option<GridNode>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {NODE_COLUMNS} FROM grid_nodes WHERE id = ?1"),
                params![id],
                read_node,
            )
            .optional()
        })
    }

    /// Every node, oldest first.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_nodes(&self) -> Result<Vec<GridNode>> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {NODE_COLUMNS} FROM grid_nodes ORDER BY created_ms, id"
            ))?;
            let rows = statement.query_map([], read_node)?;
            rows.collect()
        })
    }

    /// Writes a heartbeat, hands over the node's undelivered jobs and fails the ones it no
    /// longer runs (delivered before its previous heartbeat and absent from
    /// `active_job_ids`), in one transaction.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_heartbeat(
        &self,
        node_id: &str,
        beat: &HeartbeatUpdate<'_>,
    ) -> Result<HeartbeatOutcome> {
        let now = beat.now_ms;
        self.with(|c| {
            let tx = c.transaction()?;
            let previous: Option<Option<i64>> = tx
                .query_row(
                    "SELECT last_seen_ms FROM grid_nodes WHERE id = ?1",
                    params![node_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(previous) = previous else {
                return Ok(HeartbeatOutcome::default());
            };
            let models = serde_json::to_string(beat.available_models).unwrap_or_default();
            tx.execute(
                "UPDATE grid_nodes SET current_load = ?2, available_models = ?3, encryption_public_key = ?4,
                 keybind_signature = ?5, key_version = ?6, keybind_verified = ?7, streaming = ?8, context_size = ?9,
                 embeddings = ?10, max_concurrent_jobs = ?11, binary_hash = ?12, prev_seen_ms = last_seen_ms,
                 last_seen_ms = ?13, lost = 0 WHERE id = ?1",
                params![
                    node_id,
                    beat.current_load,
                    models,
                    beat.encryption_public_key,
                    beat.keybind_signature,
                    beat.key_version,
                    beat.keybind_verified,
                    beat.capabilities.streaming,
                    beat.capabilities.context_size,
                    beat.capabilities.embeddings,
                    beat.max_concurrent_jobs,
                    beat.binary_hash,
                    int(now)?,
                ],
            )?;
            // Ghosts: delivered before the previous heartbeat, still running, not at the node.
            let mut ghosts = Vec::new();
            if let Some(previous) = previous {
                let candidates: Vec<String> = {
                    let mut statement = tx.prepare(
                        "SELECT id FROM grid_jobs WHERE node_id = ?1 AND status = 'running' AND delivered_ms < ?2",
                    )?;
                    let rows = statement.query_map(params![node_id, previous], |r| r.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for id in candidates {
                    if beat.active_job_ids.contains(&id) {
                        continue;
                    }
                    if let Some(job) = fail_in(
                        &tx,
                        &id,
                        Some(node_id),
                        "the node no longer runs this job (it was missing from its heartbeat)",
                        now,
                    )? {
                        ghosts.push(job);
                    }
                }
                count_failure(&tx, "ghost_job", ghosts.len() as u64)?;
            }
            let pending: Vec<GridJob> = {
                let mut statement = tx.prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM grid_jobs WHERE node_id = ?1 AND delivered = 0 AND status IN ('queued', 'running') ORDER BY created_ms, id"
                ))?;
                let rows = statement.query_map(params![node_id], read_job)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.execute(
                "UPDATE grid_jobs SET delivered = 1, status = 'running', delivered_ms = COALESCE(delivered_ms, ?2)
                 WHERE node_id = ?1 AND delivered = 0 AND status IN ('queued', 'running')",
                params![node_id, int(now)?],
            )?;
            let new_token: Option<String> = tx.query_row(
                "SELECT pending_token FROM grid_nodes WHERE id = ?1",
                params![node_id],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(HeartbeatOutcome {
                pending,
                ghosts,
                new_token,
            })
        })
    }

    /// Marks a job handed over the WebSocket: running, delivered at `now_ms` if it was not
    /// before (a heartbeat still offers it once, in case the socket lost it).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_job_pushed(&self, id: &str, now_ms: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE grid_jobs SET status = 'running', delivered_ms = COALESCE(delivered_ms, ?2)
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, int(now_ms)?],
            )
            .map(|_| ())
        })
    }

    /// Jobs assigned to `node_id` not yet taken by a heartbeat (to push on a new socket).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_undelivered_jobs(&self, node_id: &str) -> Result<Vec<GridJob>> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM grid_jobs WHERE node_id = ?1 AND delivered = 0 AND status IN ('queued', 'running') ORDER BY created_ms, id"
            ))?;
            let rows = statement.query_map(params![node_id], read_job)?;
            rows.collect()
        })
    }

    /// Inserts a job and holds its credits, both or neither: `Ok(Err(shortfall))` when the
    /// wallet's balance does not cover the hold (nothing changes then).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_grid_job(&self, job: &NewJob<'_>) -> Result<std::result::Result<(), u64>> {
        let key = wallet_key(job.wallet);
        self.with(|c| {
            let tx = c.transaction()?;
            let credits = read_credits(&tx, &key)?;
            if credits.balance_micros() < job.hold_micros {
                return Ok(Err(job.hold_micros - credits.balance_micros()));
            }
            if job.hold_micros > 0 {
                tx.execute(
                    "UPDATE credits SET spent_micros = ?2 WHERE wallet = ?1",
                    params![key, int(credits.spent_micros.saturating_add(job.hold_micros))?],
                )?;
            }
            tx.execute(
                &format!("INSERT INTO grid_jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', 0, NULL, 0, ?8, ?9, ?10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ?11, ?11, NULL)"),
                params![job.id, job.node_id, job.model, job.job_type, job.mode, job.payload, key, int(job.input_micros)?, int(job.output_micros)?, int(job.hold_micros)?, int(job.now_ms)?],
            )?;
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    /// A job.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_job(&self, id: &str) -> Result<Option<GridJob>> {
        self.with(|c| job_in(c, id))
    }

    /// Completes `node`'s active job: its cost at the job's prices (capped at the hold), the
    /// refund of the rest, the usage and the signed result, in one transaction. `None` when
    /// the job is not `node`'s or not active (it is billed at most once).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn complete_grid_job(
        &self,
        id: &str,
        node: &str,
        usage: &grid_proto::Usage,
        result: &SignedResult<'_>,
        now_ms: u64,
    ) -> Result<Option<GridJob>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let Some((job, cost, usage_json)) = billable_in(&tx, id, node, usage)? else {
                return Ok(None);
            };
            let changed = tx.execute(
                "UPDATE grid_jobs SET status = 'completed', cost_micros = ?2, usage = ?3, result = ?4, result_kind = ?5,
                 result_sha256 = ?6, result_signature = ?7, updated_ms = ?8, completed_ms = ?8
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, int(cost)?, usage_json, result.text, result.kind, result.sha256, result.signature, int(now_ms)?],
            )?;
            settled_in(tx, &job, changed, cost, "jobs_completed")
        })
    }

    /// Fails an active job (only `node`'s, when given), giving the whole hold back. `None`
    /// when it was not active.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn fail_grid_job(
        &self,
        id: &str,
        node: Option<&str>,
        reason: &str,
        now_ms: u64,
    ) -> Result<Option<GridJob>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let job = fail_in(&tx, id, node, reason, now_ms)?;
            tx.commit()?;
            Ok(job)
        })
    }

    /// Fails `node`'s active job whose stream broke after part of it reached the client:
    /// the delivered `usage` is billed (capped at the hold), the rest refunded, the reason
    /// kept, in one transaction. `None` when it was not active.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn fail_grid_job_billed(
        &self,
        id: &str,
        node: &str,
        reason: &str,
        usage: &grid_proto::Usage,
        now_ms: u64,
    ) -> Result<Option<GridJob>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let Some((job, cost, usage_json)) = billable_in(&tx, id, node, usage)? else {
                return Ok(None);
            };
            let changed = tx.execute(
                "UPDATE grid_jobs SET status = 'failed', error = ?2, cost_micros = ?3, usage = ?4, updated_ms = ?5, completed_ms = ?5
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, reason, int(cost)?, usage_json, int(now_ms)?],
            )?;
            settled_in(tx, &job, changed, cost, "jobs_failed")
        })
    }

    /// Records progress on an active job (a chunk), and that it reached the client.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_job_progress(&self, id: &str, streamed: bool, now_ms: u64) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE grid_jobs SET updated_ms = ?2, streamed = MAX(streamed, ?3), status = 'running'
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, int(now_ms)?, streamed],
            )
            .map(|_| ())
        })
    }

    /// Fails every active job of `node_id` (its socket dropped): those that started
    /// streaming, or all of them.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn fail_node_jobs(&self, node_id: &str, reason: &str, now_ms: u64) -> Result<Vec<GridJob>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let ids: Vec<String> = {
                let mut statement = tx.prepare(
                    "SELECT id FROM grid_jobs WHERE node_id = ?1 AND status IN ('queued', 'running')",
                )?;
                let rows = statement.query_map(params![node_id], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut failed = Vec::new();
            for id in ids {
                if let Some(job) = fail_in(&tx, &id, Some(node_id), reason, now_ms)? {
                    failed.push(job);
                }
            }
            tx.commit()?;
            Ok(failed)
        })
    }

    /// The timeout sweep: fails active jobs with no progress since `stale_before_ms` or whose
    /// node's last heartbeat is before `lost_before_ms`, and counts nodes newly lost.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn sweep_grid(
        &self,
        stale_before_ms: u64,
        lost_before_ms: u64,
        now_ms: u64,
    ) -> Result<Vec<GridJob>> {
        self.with(|c| {
            let tx = c.transaction()?;
            let lost = tx.execute(
                "UPDATE grid_nodes SET lost = 1 WHERE lost = 0 AND last_seen_ms IS NOT NULL AND last_seen_ms < ?1",
                params![int(lost_before_ms)?],
            )?;
            count_failure(&tx, "heartbeat_lost", lost as u64)?;
            let due: Vec<(String, bool)> = {
                let mut statement = tx.prepare(
                    "SELECT j.id, j.updated_ms < ?1 FROM grid_jobs j JOIN grid_nodes n ON n.id = j.node_id
                     WHERE j.status IN ('queued', 'running')
                       AND (j.updated_ms < ?1 OR n.last_seen_ms IS NULL OR n.last_seen_ms < ?2)",
                )?;
                let rows = statement.query_map(
                    params![int(stale_before_ms)?, int(lost_before_ms)?],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut failed = Vec::new();
            for (id, stale) in due {
                let reason = match stale {
                    true => "job timeout: the node made no progress for 120 s",
                    false => "job timeout: the node stopped sending heartbeats",
                };
                if let Some(job) = fail_in(&tx, &id, None, reason, now_ms)? {
                    failed.push(job);
                }
            }
            count_failure(&tx, "job_timeout", failed.len() as u64)?;
            tx.commit()?;
            Ok(failed)
        })
    }

    /// Marks a node tampered (slashed: never routed again) and counts it once.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn mark_grid_tampered(&self, node_id: &str) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE grid_nodes SET tampered = 1 WHERE id = ?1 AND tampered = 0",
                params![node_id],
            )?;
            count_failure(&tx, "tampered", changed as u64)?;
            tx.commit()
        })
    }

    /// Adds `by` to a failure counter.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn count_grid_failure(&self, kind: &str, by: u64) -> Result<()> {
        self.with(|c| count_failure(c, kind, by))
    }

    /// The failure counters, in [`FAILURE_KINDS`] order.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_failures(&self) -> Result<Vec<(&'static str, u64)>> {
        self.with(|c| {
            FAILURE_KINDS
                .iter()
                .map(|kind| {
                    let count = c
                        .query_row(
                            "SELECT count FROM grid_failures WHERE kind = ?1",
                            params![kind],
                            |r| uint(r, 0),
                        )
                        .optional()?;
                    Ok((*kind, count.unwrap_or(0)))
                })
                .collect()
        })
    }

    /// Sets or clears off-grid; `false` for an unknown node.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn set_grid_off_grid(&self, node_id: &str, off_grid: bool) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE grid_nodes SET off_grid = ?2 WHERE id = ?1",
                params![node_id, off_grid],
            )
            .map(|n| n == 1)
        })
    }

    /// Every custom price: `(node, model, input, output)` in micro-dollars per 1M tokens.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_prices(&self) -> Result<Vec<CustomPrice>> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT node_id, model, input_micros, output_micros FROM grid_prices ORDER BY node_id, model",
            )?;
            let rows =
                statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, uint(r, 2)?, uint(r, 3)?)))?;
            rows.collect()
        })
    }

    /// Sets a node's price for a model (`None`: back to the suggested one).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn set_grid_price(
        &self,
        node_id: &str,
        model: &str,
        price: Option<(u64, u64)>,
    ) -> Result<()> {
        self.with(|c| match price {
            Some((input, output)) => c
                .execute(
                    "INSERT INTO grid_prices (node_id, model, input_micros, output_micros) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(node_id, model) DO UPDATE SET input_micros = excluded.input_micros, output_micros = excluded.output_micros",
                    params![node_id, model, int(input)?, int(output)?],
                )
                .map(|_| ()),
            None => c
                .execute(
                    "DELETE FROM grid_prices WHERE node_id = ?1 AND model = ?2",
                    params![node_id, model],
                )
                .map(|_| ()),
        })
    }

    /// Stores a reservation.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_grid_reservation(
        &self,
        token_hash: &str,
        reservation: &Reservation,
        expires_ms: u64,
    ) -> Result<()> {
        let wallet = reservation.wallet.as_ref().map(wallet_key);
        self.with(|c| {
            c.execute(
                "INSERT INTO grid_reservations (token_hash, node_id, model, wallet, expires_ms, input_micros, output_micros) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    token_hash,
                    reservation.node_id,
                    reservation.model,
                    wallet,
                    int(expires_ms)?,
                    int(reservation.input_micros)?,
                    int(reservation.output_micros)?
                ],
            )
            .map(|_| ())
        })
    }

    /// Reads a reservation and, when `take`, uses it up (once).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_reservation(
        &self,
        token_hash: &str,
        now_ms: u64,
        take: bool,
    ) -> Result<ReservationUse> {
        self.with(|c| {
            let tx = c.transaction()?;
            let row = tx
                .query_row(
                    "SELECT node_id, model, wallet, expires_ms, used, input_micros, output_micros FROM grid_reservations WHERE token_hash = ?1",
                    params![token_hash],
                    |r| {
                        let wallet = match r.get::<_, Option<String>>(2)? {
                            Some(_) => Some(read_wallet(r, 2)?),
                            None => None,
                        };
                        Ok((
                            Reservation {
                                node_id: r.get(0)?,
                                model: r.get(1)?,
                                wallet,
                                input_micros: uint(r, 5)?,
                                output_micros: uint(r, 6)?,
                            },
                            uint(r, 3)?,
                            r.get::<_, bool>(4)?,
                        ))
                    },
                )
                .optional()?;
            let answer = match row {
                None => ReservationUse::Unknown,
                Some((_, _, true)) => ReservationUse::Used,
                Some((_, expires, _)) if expires <= now_ms => ReservationUse::Expired,
                Some((reservation, _, false)) => {
                    if take {
                        tx.execute(
                            "UPDATE grid_reservations SET used = 1 WHERE token_hash = ?1",
                            params![token_hash],
                        )?;
                    }
                    ReservationUse::Valid(reservation)
                }
            };
            tx.commit()?;
            Ok(answer)
        })
    }

    /// Stores an attestation challenge.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_grid_challenge(
        &self,
        challenge: &str,
        node_id: &str,
        expires_ms: u64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO grid_challenges (challenge, node_id, expires_ms) VALUES (?1, ?2, ?3)",
                params![challenge, node_id, int(expires_ms)?],
            )
            .map(|_| ())
        })
    }

    /// Uses up `node_id`'s unexpired challenge; `false` when there is none.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn take_grid_challenge(&self, challenge: &str, node_id: &str, now_ms: u64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE grid_challenges SET used = 1 WHERE challenge = ?1 AND node_id = ?2 AND used = 0 AND expires_ms > ?3",
                params![challenge, node_id, int(now_ms)?],
            )
            .map(|n| n == 1)
        })
    }

    /// Records an attestation's verdict and report.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn set_grid_attestation(
        &self,
        node_id: &str,
        verified: bool,
        tee_type: &str,
        report: &str,
        now_ms: u64,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE grid_nodes SET attestation_verified = ?2, tee_type = ?3, attestation_report = ?4, attested_ms = ?5 WHERE id = ?1",
                params![node_id, verified, tee_type, report, int(now_ms)?],
            )
            .map(|_| ())
        })
    }

    /// The binary allowlist (empty: disabled).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn grid_allowed_binaries(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let value: Option<String> = c
                .query_row(
                    "SELECT value FROM grid_settings WHERE key = 'allowed_binaries'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(value
                .and_then(|v| serde_json::from_str(&v).ok())
                .unwrap_or_default())
        })
    }

    /// Replaces the binary allowlist.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn set_grid_allowed_binaries(&self, hashes: &[String]) -> Result<()> {
        let value = serde_json::to_string(hashes).unwrap_or_default();
        self.with(|c| {
            c.execute(
                "INSERT INTO grid_settings (key, value) VALUES ('allowed_binaries', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![value],
            )
            .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use grid_proto::Usage;

    use super::*;

    fn wallet() -> PayTo {
        PayTo::Evm(alloy::primitives::Address::repeat_byte(9))
    }

    #[test]
    fn cost_rounds_up_to_the_micro_dollar_and_never_overflows() {
        assert_eq!(cost_micros(&Usage::new(0, 0), 100_000, 200_000), 0);
        // 1 token at $0.10 per 1M is a tenth of a micro-dollar: one micro.
        assert_eq!(cost_micros(&Usage::new(1, 0), 100_000, 200_000), 1);
        assert_eq!(cost_micros(&Usage::new(10, 5), 100_000, 200_000), 2);
        assert_eq!(
            cost_micros(&Usage::new(1_000_000, 1_000_000), 100_000, 200_000),
            300_000
        );
        assert_eq!(
            cost_micros(&Usage::new(u64::MAX, u64::MAX), u64::MAX, u64::MAX),
            u64::MAX
        );
    }

    fn job<'a>(id: &'a str, w: &'a PayTo, hold: u64) -> NewJob<'a> {
        NewJob {
            id,
            node_id: "n",
            model: "m",
            job_type: "inference",
            mode: "chat",
            payload: "{}",
            wallet: w,
            input_micros: 1_000_000,
            output_micros: 2_000_000,
            hold_micros: hold,
            now_ms: 0,
        }
    }

    #[test]
    fn a_job_holds_credits_bills_once_and_refunds_the_rest() {
        let store = Store::open(None).unwrap();
        let w = wallet();
        store.deposit(&w, 100).unwrap();
        assert_eq!(store.insert_grid_job(&job("a", &w, 150)).unwrap(), Err(50));
        assert_eq!(store.credits(&w).unwrap().balance_micros(), 100);
        store.insert_grid_job(&job("a", &w, 60)).unwrap().unwrap();
        assert_eq!(store.credits(&w).unwrap().balance_micros(), 40);
        let signed = SignedResult {
            text: Some("hi"),
            kind: "plain",
            sha256: "00",
            signature: "s",
        };
        assert!(
            store
                .complete_grid_job("a", "other", &Usage::new(5, 5), &signed, 1)
                .unwrap()
                .is_none(),
            "only the assigned node"
        );
        // 5 × $1 + 5 × $2 per 1M = 15 micros.
        let done = store
            .complete_grid_job("a", "n", &Usage::new(5, 5), &signed, 1)
            .unwrap()
            .unwrap();
        assert_eq!(done.cost_micros, Some(15));
        assert_eq!(store.credits(&w).unwrap().balance_micros(), 85);
        assert!(
            store
                .complete_grid_job("a", "n", &Usage::new(5, 5), &signed, 1)
                .unwrap()
                .is_none()
        );
        assert!(store.fail_grid_job("a", None, "x", 2).unwrap().is_none());
        assert_eq!(store.credits(&w).unwrap().balance_micros(), 85);
        // A cost above the hold is capped at the hold; a failed job refunds it all.
        store.insert_grid_job(&job("b", &w, 10)).unwrap().unwrap();
        let capped = store
            .complete_grid_job("b", "n", &Usage::new(1000, 1000), &signed, 1)
            .unwrap()
            .unwrap();
        assert_eq!(capped.cost_micros, Some(10));
        store.insert_grid_job(&job("c", &w, 30)).unwrap().unwrap();
        assert_eq!(store.credits(&w).unwrap().balance_micros(), 45);
        store
            .fail_grid_job("c", Some("n"), "x", 2)
            .unwrap()
            .unwrap();
        assert_eq!(store.credits(&w).unwrap().balance_micros(), 75);
    }

    #[test]
    fn codes_are_single_use_and_bound_to_a_wallet() {
        let store = Store::open(None).unwrap();
        store.insert_grid_code("c", "W", 0).unwrap();
        let node = |wallet, id| NewNode {
            id,
            wallet,
            code: "c",
            public_key: "k",
            token_hash: id,
            tee_type: "none",
            available_models: &[],
            registration: "{}",
            now_ms: 0,
        };
        assert_eq!(
            store.register_grid_node(&node("V", "1")).unwrap(),
            Err(RegisterRefusal::OtherWallet)
        );
        assert_eq!(store.register_grid_node(&node("W", "1")).unwrap(), Ok(()));
        assert_eq!(
            store.register_grid_node(&node("W", "2")).unwrap(),
            Err(RegisterRefusal::UsedCode)
        );
    }

    #[test]
    fn a_rotated_token_replaces_the_old_one_once_used() {
        let store = Store::open(None).unwrap();
        store.insert_grid_code("c", "W", 0).unwrap();
        store
            .register_grid_node(&NewNode {
                id: "n",
                wallet: "W",
                code: "c",
                public_key: "k",
                token_hash: "old",
                tee_type: "none",
                available_models: &[],
                registration: "{}",
                now_ms: 0,
            })
            .unwrap()
            .unwrap();
        assert!(store.rotate_grid_token("n", "NEW", "new").unwrap());
        assert!(
            store
                .grid_node_by_token(Some("n"), "old")
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .grid_node_by_token(Some("x"), "new")
                .unwrap()
                .is_none()
        );
        assert!(store.grid_node_by_token(None, "new").unwrap().is_some());
        assert!(store.grid_node_by_token(None, "old").unwrap().is_none());
    }
}
