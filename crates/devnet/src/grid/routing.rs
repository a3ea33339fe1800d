//! Which node runs a request: live nodes serving the model, within the caller's price cap,
//! with a free slot, cheapest blended price first.

use super::pricing::{self, Price};
use crate::store::{CustomPrice, GridNode};

/// A node is live when its last heartbeat is this recent.
pub(crate) const LIVE_MS: u64 = 15_000;

/// Whether `node` takes new jobs at `now_ms`: a recent heartbeat, on the grid, not tampered,
/// serving something.
pub(crate) fn is_live(node: &GridNode, now_ms: u64) -> bool {
    node.last_seen_ms
        .is_some_and(|seen| now_ms.saturating_sub(seen) <= LIVE_MS)
        && !node.off_grid
        && !node.tampered
        && !node.available_models.is_empty()
}

/// Whether `node` has a free slot.
pub(crate) fn has_capacity(node: &GridNode) -> bool {
    node.active_jobs < u64::from(node.max_concurrent_jobs.max(1))
}

/// A node that can run the request, at its price.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    /// The node.
    pub(crate) node: GridNode,
    /// Its price for the model.
    pub(crate) price: Price,
}

/// Why no node can run a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// No live node serves the model (or the pinned node does not).
    ModelNotFound,
    /// Some serve it, none within the price cap.
    PriceCapUnmet,
    /// Some serve it within the cap, all busy.
    NoCapacity,
}

/// What a request asks of its node.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Want<'a> {
    /// The model.
    pub(crate) model: &'a str,
    /// Only this node.
    pub(crate) pin: Option<&'a str>,
    /// The most blended USD per 1M tokens, in micro-dollars.
    pub(crate) max_blended: Option<u64>,
    /// Only nodes that serve embeddings.
    pub(crate) embeddings: bool,
    /// Only nodes that published an X25519 key (sealed requests).
    pub(crate) sealing: bool,
}

/// The nodes that can run `want`, cheapest blended first (ties: fewer active jobs, then id).
pub(crate) fn candidates(
    nodes: &[GridNode],
    custom: &[CustomPrice],
    want: &Want<'_>,
    now_ms: u64,
) -> Result<Vec<Candidate>, NoRoute> {
    let serving: Vec<Candidate> = nodes
        .iter()
        .filter(|node| is_live(node, now_ms))
        .filter(|node| want.pin.is_none_or(|pin| pin == node.id))
        .filter(|node| node.available_models.iter().any(|m| m == want.model))
        .filter(|node| !want.embeddings || node.embeddings)
        .filter(|node| !want.sealing || node.encryption_public_key.is_some())
        .map(|node| Candidate {
            node: node.clone(),
            price: pricing::effective(node, want.model, custom).0,
        })
        .collect();
    if serving.is_empty() {
        return Err(NoRoute::ModelNotFound);
    }
    let affordable: Vec<Candidate> = serving
        .into_iter()
        .filter(|c| {
            want.max_blended
                .is_none_or(|max| c.price.doubled_blend() <= u128::from(max) * 2)
        })
        .collect();
    if affordable.is_empty() {
        return Err(NoRoute::PriceCapUnmet);
    }
    let mut free: Vec<Candidate> = affordable
        .into_iter()
        .filter(|c| has_capacity(&c.node))
        .collect();
    if free.is_empty() {
        return Err(NoRoute::NoCapacity);
    }
    free.sort_by(|a, b| {
        a.price
            .doubled_blend()
            .cmp(&b.price.doubled_blend())
            .then(a.node.active_jobs.cmp(&b.node.active_jobs))
            .then_with(|| a.node.id.cmp(&b.node.id))
    });
    Ok(free)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, models: &[&str]) -> GridNode {
        GridNode {
            id: id.into(),
            wallet: "w".into(),
            public_key: "k".into(),
            tee_type: "none".into(),
            available_models: models.iter().map(|m| (*m).to_owned()).collect(),
            encryption_public_key: Some("x".into()),
            keybind_signature: None,
            key_version: None,
            keybind_verified: false,
            streaming: true,
            context_size: 0,
            embeddings: false,
            max_concurrent_jobs: 1,
            binary_hash: None,
            current_load: 0.0,
            last_seen_ms: Some(100_000),
            off_grid: false,
            tampered: false,
            attestation_verified: false,
            attestation_report: None,
            jobs_completed: 0,
            jobs_failed: 0,
            active_jobs: 0,
        }
    }

    fn ids(found: &[Candidate]) -> Vec<&str> {
        found.iter().map(|c| c.node.id.as_str()).collect()
    }

    #[test]
    fn cheapest_live_free_node_first() {
        let m = "llama-3.2-3b";
        let mut stale = node("stale", &[m]);
        stale.last_seen_ms = Some(100_000 - LIVE_MS - 1);
        let mut off = node("off", &[m]);
        off.off_grid = true;
        let mut tampered = node("tampered", &[m]);
        tampered.tampered = true;
        let nodes = vec![
            node("b", &[m]),
            node("a", &[m]),
            node("cheap", &[m]),
            node("other", &["x"]),
            stale,
            off,
            tampered,
        ];
        let custom = vec![("cheap".to_owned(), m.to_owned(), 30_000, 60_000)];
        let want = Want {
            model: m,
            ..Want::default()
        };
        let found = candidates(&nodes, &custom, &want, 100_000).unwrap();
        assert_eq!(ids(&found), ["cheap", "a", "b"]);
        // Blended $0.045 per 1M: only the cheap one fits $0.05, none fits $0.04.
        let capped = |max| {
            candidates(
                &nodes,
                &custom,
                &Want {
                    max_blended: Some(max),
                    ..want
                },
                100_000,
            )
        };
        assert_eq!(ids(&capped(45_000).unwrap()), ["cheap"]);
        assert_eq!(capped(44_999).unwrap_err(), NoRoute::PriceCapUnmet);
        let pinned = Want {
            pin: Some("b"),
            ..want
        };
        assert_eq!(
            ids(&candidates(&nodes, &custom, &pinned, 100_000).unwrap()),
            ["b"]
        );
        let missing = Want {
            model: "nope",
            ..want
        };
        assert_eq!(
            candidates(&nodes, &custom, &missing, 100_000).unwrap_err(),
            NoRoute::ModelNotFound
        );
        let busy: Vec<GridNode> = nodes
            .iter()
            .cloned()
            .map(|mut n| {
                n.active_jobs = 1;
                n
            })
            .collect();
        assert_eq!(
            candidates(&busy, &custom, &want, 100_000).unwrap_err(),
            NoRoute::NoCapacity
        );
        let embeddings = Want {
            embeddings: true,
            ..want
        };
        assert_eq!(
            candidates(&nodes, &custom, &embeddings, 100_000).unwrap_err(),
            NoRoute::ModelNotFound
        );
    }
}
