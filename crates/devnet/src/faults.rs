//! Where faults are injected: the settings ([`FaultConfig`], from `Config`, the binary's flags or
//! `POST /devnet/faults`) and the live switches the services read ([`Faults`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};

use serde::Deserialize;

use crate::clock::SharedRandom;

/// Fault injection settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Per thousand paid instances, how many the simulated provider rejects (refunded to
    /// credits).
    #[serde(default)]
    pub provider_reject_permille: u16,
    /// How long a new instance stays `pending` before it is `active`.
    #[serde(default)]
    pub boot_delay_ms: u64,
    /// Per thousand Solana payments, how many get a transient 503 before settlement (the
    /// payment is not used; retry with a fresh blockhash).
    #[serde(default)]
    pub solana_transient_5xx_permille: u16,
}

/// The live fault switches, shared by every service and adjustable at runtime.
pub struct Faults {
    provider_reject_permille: AtomicU32,
    boot_delay_ms: AtomicU64,
    solana_5xx_permille: AtomicU32,
    random: SharedRandom,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("provider_reject_permille", &self.provider_reject_permille)
            .field("boot_delay_ms", &self.boot_delay_ms)
            .field("solana_5xx_permille", &self.solana_5xx_permille)
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// Faults from a configuration, drawing from `random`.
    pub fn new(config: FaultConfig, random: SharedRandom) -> Faults {
        let faults = Faults {
            provider_reject_permille: AtomicU32::new(0),
            boot_delay_ms: AtomicU64::new(0),
            solana_5xx_permille: AtomicU32::new(0),
            random,
        };
        faults.set(config);
        faults
    }

    /// Replaces the settings (permille values above 1000 count as 1000).
    pub fn set(&self, config: FaultConfig) {
        self.provider_reject_permille.store(
            u32::from(config.provider_reject_permille.min(1000)),
            Relaxed,
        );
        self.boot_delay_ms.store(config.boot_delay_ms, Relaxed);
        self.solana_5xx_permille.store(
            u32::from(config.solana_transient_5xx_permille.min(1000)),
            Relaxed,
        );
    }

    /// Draws whether the provider rejects this instance.
    pub fn provider_rejects(&self) -> bool {
        self.draw(self.provider_reject_permille.load(Relaxed))
    }

    /// Draws whether this Solana payment gets an injected transient 503.
    pub fn solana_transient_failure(&self) -> bool {
        self.draw(self.solana_5xx_permille.load(Relaxed))
    }

    /// How long a new instance stays `pending`.
    pub fn boot_delay_ms(&self) -> u64 {
        self.boot_delay_ms.load(Relaxed)
    }

    /// A random draw that is true `permille` times in a thousand.
    fn draw(&self, permille: u32) -> bool {
        if permille == 0 {
            return false;
        }
        let mut bytes = [0u8; 2];
        self.random.fill(&mut bytes);
        u32::from(u16::from_le_bytes(bytes)) % 1000 < permille
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_clamped_and_extremes_are_certain() {
        let faults = Faults::new(
            FaultConfig {
                provider_reject_permille: 5000,
                boot_delay_ms: 7,
                solana_transient_5xx_permille: 0,
            },
            std::sync::Arc::new(crate::clock::OsRandom),
        );
        assert_eq!(faults.boot_delay_ms(), 7);
        assert!((0..100).all(|_| faults.provider_rejects()));
        assert!((0..100).all(|_| !faults.solana_transient_failure()));
    }
}
