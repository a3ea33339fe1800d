//! The coordinator's connection state, in memory only: each node's WebSocket (a sender of the
//! messages to push) and each job a client is waiting on (a sender of what the node posts).
//! A restart loses it; the database holds everything that matters for money.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use grid_proto::Usage;
use grid_proto::node::{ChunkBody, SealedResultWire, ServerMessage};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::store::GridJob;

/// What happened to a job a client waits on.
#[derive(Debug)]
pub(crate) enum JobEvent {
    /// Completed with a plain (or embeddings) result: the result JSON string.
    Plain {
        /// The node's `encrypted_result`.
        result: String,
        /// The job as billed.
        job: Box<GridJob>,
    },
    /// Completed with a sealed result.
    Sealed {
        /// The sealed answer.
        sealed: SealedResultWire,
        /// Token counts.
        usage: Usage,
        /// The job as billed.
        job: Box<GridJob>,
    },
    /// A stream chunk (verified); the final one is already billed.
    Chunk(Box<ChunkBody>),
    /// The job failed: why, and what was billed (micro-dollars: nothing, but for a stream
    /// whose node reported the tokens already delivered).
    Failed {
        /// Why.
        reason: String,
        /// Billed for tokens already delivered.
        billed_micros: u64,
    },
}

#[derive(Default)]
struct Inner {
    sockets: HashMap<String, (u64, UnboundedSender<ServerMessage>)>,
    waiters: HashMap<String, UnboundedSender<JobEvent>>,
    /// The next chunk due from each streaming job's node.
    next_seq: HashMap<String, u64>,
    next_connection: u64,
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Live {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

/// A client waiting on a job; dropping it (the client went away) stops the waiting.
pub(crate) struct Waiter {
    live: Arc<Live>,
    job: String,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.live.lock().waiters.remove(&self.job);
    }
}

impl Live {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A node's socket connected: the messages to push to it (a previous socket of the same
    /// node is replaced, and its loop ends).
    pub(crate) fn connect(&self, node: &str) -> (u64, UnboundedReceiver<ServerMessage>) {
        let (sender, receiver) = unbounded_channel();
        let mut inner = self.lock();
        inner.next_connection += 1;
        let id = inner.next_connection;
        inner.sockets.insert(node.to_owned(), (id, sender));
        (id, receiver)
    }

    /// A node's socket closed; `true` when it was the node's current one.
    pub(crate) fn disconnect(&self, node: &str, connection: u64) -> bool {
        let mut inner = self.lock();
        match inner.sockets.get(node) {
            Some((id, _)) if *id == connection => {
                inner.sockets.remove(node);
                true
            }
            _ => false,
        }
    }

    /// Pushes `message` to the node's socket; `false` when it has none.
    /// The next chunk due for `job` (0 before any).
    pub(crate) fn next_seq(&self, job: &str) -> u64 {
        self.lock().next_seq.get(job).copied().unwrap_or(0)
    }

    /// Chunk `seq` of `job` was accepted; after the final one the job's count is dropped
    /// (a stream that fails leaves its count until the devnet restarts: a few bytes each).
    pub(crate) fn advance_seq(&self, job: &str, seq: u64, last: bool) {
        let mut inner = self.lock();
        match last {
            true => inner.next_seq.remove(job),
            false => inner.next_seq.insert(job.to_owned(), seq.saturating_add(1)),
        };
    }

    pub(crate) fn push(&self, node: &str, message: ServerMessage) -> bool {
        self.lock()
            .sockets
            .get(node)
            .is_some_and(|(_, sender)| sender.send(message).is_ok())
    }

    /// Starts waiting on `job`.
    pub(crate) fn wait(self: &Arc<Self>, job: &str) -> (Waiter, UnboundedReceiver<JobEvent>) {
        let (sender, receiver) = unbounded_channel();
        self.lock().waiters.insert(job.to_owned(), sender);
        (
            Waiter {
                live: self.clone(),
                job: job.to_owned(),
            },
            receiver,
        )
    }

    /// Whether a client waits on `job`.
    pub(crate) fn is_waited(&self, job: &str) -> bool {
        self.lock().waiters.contains_key(job)
    }

    /// Tells the client waiting on `job`; `false` when none is (it went away).
    pub(crate) fn notify(&self, job: &str, event: JobEvent) -> bool {
        self.lock()
            .waiters
            .get(job)
            .is_some_and(|sender| sender.send(event).is_ok())
    }
}
