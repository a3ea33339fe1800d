//! Which jobs the node takes (§3.7): each job id once, whether it came by WebSocket or by
//! heartbeat (a bounded seen-set, 1024 ids, oldest forgotten first), and no more at once than
//! the node has slots (compare-and-swap on the active counter). A job refused for capacity is
//! not remembered, so a later heartbeat can deliver it again.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many job ids are remembered.
pub(crate) const SEEN_CAPACITY: usize = 1024;

/// Job ids seen, forgetting the oldest past the capacity.
#[derive(Debug)]
pub(crate) struct SeenSet {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl SeenSet {
    pub(crate) fn new(capacity: usize) -> SeenSet {
        SeenSet {
            ids: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Remembers `id`; false when it was already there.
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.ids.remove(&oldest);
            }
        }
        true
    }
}

/// Why a job was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its id was seen before.
    Duplicate,
    /// Every slot is busy (the id is not remembered).
    Full,
}

/// The admission state: seen ids and jobs in flight.
#[derive(Debug)]
pub(crate) struct Admission {
    seen: SeenSet,
    active_ids: BTreeSet<String>,
}

impl Admission {
    pub(crate) fn new() -> Admission {
        Admission {
            seen: SeenSet::new(SEEN_CAPACITY),
            active_ids: BTreeSet::new(),
        }
    }

    /// Takes `id` if it is new and a slot is free (reserving it on `active` by CAS).
    pub(crate) fn admit(
        &mut self,
        id: &str,
        active: &AtomicUsize,
        slots: usize,
    ) -> Result<(), Refusal> {
        if self.seen.contains(id) {
            return Err(Refusal::Duplicate);
        }
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < slots).then_some(n + 1)
            })
            .map_err(|_| Refusal::Full)?;
        self.seen.insert(id);
        self.active_ids.insert(id.to_owned());
        Ok(())
    }

    /// Marks `id` seen without running it (a job handed back while draining); `false` when
    /// it was seen already.
    pub(crate) fn refuse(&mut self, id: &str) -> bool {
        self.seen.insert(id)
    }

    /// A job ended: its slot is free (its id stays seen).
    pub(crate) fn release(&mut self, id: &str, active: &AtomicUsize) {
        if self.active_ids.remove(id) {
            let _ = active.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    /// The jobs in flight.
    pub(crate) fn active_ids(&self) -> Vec<String> {
        self.active_ids.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_seen_set_forgets_the_oldest_first() {
        let mut seen = SeenSet::new(3);
        for id in ["a", "b", "c"] {
            assert!(seen.insert(id));
        }
        assert!(!seen.insert("a"));
        assert!(seen.insert("d"));
        assert!(!seen.contains("a"));
        assert!(seen.contains("b") && seen.contains("c") && seen.contains("d"));
        assert!(seen.insert("a"));
        assert!(!seen.contains("b"));
        let mut big = SeenSet::new(SEEN_CAPACITY);
        for n in 0..SEEN_CAPACITY + 1 {
            big.insert(&n.to_string());
        }
        assert!(!big.contains("0") && big.contains("1") && big.contains("1024"));
    }

    #[test]
    fn a_job_refused_for_capacity_is_not_marked_seen() {
        let active = AtomicUsize::new(0);
        let mut admission = Admission::new();
        assert_eq!(admission.admit("a", &active, 1), Ok(()));
        assert_eq!(admission.admit("a", &active, 1), Err(Refusal::Duplicate));
        assert_eq!(admission.admit("b", &active, 1), Err(Refusal::Full));
        assert_eq!(active.load(Ordering::Acquire), 1);
        assert_eq!(admission.active_ids(), ["a"]);
        admission.release("a", &active);
        assert_eq!(active.load(Ordering::Acquire), 0);
        // b comes again (a later heartbeat) and is taken; a stays seen.
        assert_eq!(admission.admit("b", &active, 1), Ok(()));
        admission.release("b", &active);
        assert_eq!(admission.admit("a", &active, 1), Err(Refusal::Duplicate));
        admission.release("never", &active);
        assert_eq!(active.load(Ordering::Acquire), 0);
    }
}
