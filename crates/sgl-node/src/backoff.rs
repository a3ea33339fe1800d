//! Delays between attempts: from an initial delay, doubling, never above a cap.

use std::time::Duration;

/// A doubling delay with a cap. `next` gives the delay to wait now and doubles the following.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// From `initial`, doubling up to `max` (a `max` below `initial` is raised to it).
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        let max = max.max(initial);
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The delay to wait now.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        delay
    }

    /// Back to the initial delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let delays: Vec<u64> = (0..8).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
        let mut chunk = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let delays: Vec<u128> = (0..6).map(|_| chunk.next_delay().as_millis()).collect();
        assert_eq!(delays, [200, 400, 800, 1600, 2000, 2000]);
        let mut odd = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(odd.next_delay(), Duration::from_secs(5));
        assert_eq!(odd.next_delay(), Duration::from_secs(5));
    }
}
