//! Time and randomness, injected: every part of the devnet reads the [`Clock`] and the
//! [`RandomSource`] its `Config` names. [`SystemClock`] and [`OsRandom`] are what a running
//! devnet uses; [`TestClock`] lets a test move time (auth windows, boot delays, expiry, the
//! chains' block timestamps) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use x402_core::Clock;

/// A clock shared by every part of the devnet.
pub type SharedClock = Arc<dyn Clock + Send + Sync>;

/// A source of random bytes shared by every part of the devnet.
pub type SharedRandom = Arc<dyn RandomSource>;

/// Random bytes for ids, API keys, passwords and fault draws.
pub trait RandomSource: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The operating system's random source.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // Invariant: the OS random source works; a devnet that cannot draw keys must stop.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("the operating system's random source works");
    }
}

/// A clock that moves only when told to; clones share the time.
#[derive(Clone, Debug)]
pub struct TestClock {
    unix_ms: Arc<AtomicU64>,
}

impl TestClock {
    /// A clock stopped at `unix_ms`.
    pub fn at(unix_ms: u64) -> TestClock {
        TestClock {
            unix_ms: Arc::new(AtomicU64::new(unix_ms)),
        }
    }

    /// A clock stopped at the system's current time.
    pub fn starting_now() -> TestClock {
        TestClock::at(SystemClock.now_unix_ms())
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // fetch_update with a closure that always returns Some cannot fail.
        let _ = self
            .unix_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }
}

impl Clock for TestClock {
    fn now_unix_ms(&self) -> u64 {
        self.unix_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_only_when_told_and_clones_share_it() {
        let clock = TestClock::at(1_000);
        let shared = clock.clone();
        assert_eq!(shared.now_unix_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(shared.now_unix_ms(), 3_000);
        clock.advance(Duration::MAX);
        assert_eq!(shared.now_unix_ms(), u64::MAX);
    }
}
