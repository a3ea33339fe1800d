//! The confidential grid's wire, without IO: what a grid client, the `sgl` node and the
//! devnet coordinator must agree on byte for byte (`shared/reference/grid-and-node.md`).
//!
//! - [`seal`]: end-to-end sealing (§2) and the node key binding (§2.4).
//! - [`envelope`]: the node's signatures over its results (§3.9) and over its attestation.
//! - [`node`]: the node ⇄ coordinator messages (§3) and the job payloads (§3.8).
//! - [`limits`]: the input limits a node enforces (§3.8).
//!
//! Where the reference leaves something open, the choice is made here, once, and documented
//! where it is made: the embeddings job type ([`node::JOB_EMBEDDINGS`]), the signed and
//! challenge-bound hardware report ([`envelope::report_message`]).

pub mod base58;
pub mod envelope;
pub mod limits;
pub mod node;
pub mod seal;

/// Token counts of one job, as OpenAI writes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: u64,
    /// Tokens written.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
}

impl Usage {
    /// Counts with their total (saturating: counts are never near `u64::MAX`).
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}
