//! Injected time and randomness: the library never reads the system clock or the OS RNG.

/// A source of the current time.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64 {
        self.now_unix_ms() / 1000
    }
}

/// A clock that always says the same time; for tests and replays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedClock {
    unix_ms: u64,
}

impl FixedClock {
    /// At `unix` seconds.
    pub const fn from_unix(unix: u64) -> FixedClock {
        FixedClock {
            unix_ms: unix.saturating_mul(1000),
        }
    }

    /// At `unix_ms` milliseconds.
    pub const fn from_unix_ms(unix_ms: u64) -> FixedClock {
        FixedClock { unix_ms }
    }
}

impl Clock for FixedClock {
    fn now_unix_ms(&self) -> u64 {
        self.unix_ms
    }
}

/// A source of cryptographically secure random bytes (EIP-3009 nonces, memos, auth nonces).
///
/// Any `FnMut(&mut [u8])` is one, so callers can pass a closure over the OS random source or a
/// seeded generator in tests without this crate depending on a particular `rand` version.
pub trait Entropy {
    /// Fills `dest` with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}
