//! The resource preset and the slot count (§4.4), and the wedge watchdog's threshold (§4.5):
//! plain functions of the machine's facts, so `sgl start`, `sgl service install` and the tests
//! agree.
//!
//! Sizes are in GB of 10⁹ bytes, as the reference node reads them. The arithmetic is done in
//! integers of bytes and per-mille where it decides a count, so a value on a boundary gives the
//! same answer on every machine.

use std::time::Duration;

/// The most parallel slots the server engine runs (`MAX_SLOTS`).
pub const MAX_SLOTS: u32 = 2;

/// The model size assumed when the GGUF's size cannot be read.
pub const UNKNOWN_MODEL_BYTES: u64 = 6_000_000_000;

/// Per-slot context in tokens unless `--context-size` says otherwise.
pub const DEFAULT_CONTEXT: u32 = 4096;

/// Tokens per logical batch unless `--batch-size` says otherwise.
pub const DEFAULT_BATCH: u32 = 512;

const GB: u64 = 1_000_000_000;

/// How much of the machine the engine uses, from `--resource-percent` and the explicit
/// overrides. (The reference also reports `1 − percent / 100` as its idle load; ours reports
/// the measured slot use, §8.6.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// CPU threads for generation (`-t`).
    pub threads: u32,
    /// Layers offloaded to a GPU (`-ngl`).
    pub gpu_layers: u32,
}

impl Preset {
    /// The preset for `percent` (clamped to 1..=100) of `cpus` cores; `threads` and
    /// `gpu_layers` override their derived values.
    pub fn new(percent: u8, cpus: u32, threads: Option<u32>, gpu_layers: Option<u32>) -> Preset {
        let percent = u32::from(percent.clamp(1, 100));
        let derived_threads = (cpus.max(1) * percent).div_ceil(100).max(1);
        let derived_layers = match percent >= 50 {
            true => 99,
            // round(99 × pct / 100), halves up.
            false => (99 * percent + 50) / 100,
        };
        Preset {
            threads: threads.unwrap_or(derived_threads).max(1),
            gpu_layers: gpu_layers.unwrap_or(derived_layers),
        }
    }
}

/// Parallel slots for a model of `model_bytes` (or [`UNKNOWN_MODEL_BYTES`]) with `context`
/// tokens per slot on a machine with `ram_bytes`, capped by `max_jobs` when it is above 1
/// (1 means automatic).
///
/// Under 16 GB of RAM: 1. Else `floor((RAM × 0.85 − model − 4 GB) / per_slot)` with
/// `per_slot = max(model × 0.20, 0.4 GB) × max(context / 8192, 0.25)`, clamped to
/// 1..=[`MAX_SLOTS`].
pub fn slots(ram_bytes: u64, model_bytes: Option<u64>, context: u32, max_jobs: u32) -> u32 {
    let model = u128::from(model_bytes.unwrap_or(UNKNOWN_MODEL_BYTES));
    let ram = u128::from(ram_bytes);
    let auto = match ram < u128::from(16 * GB) {
        true => 1,
        false => {
            // Both factors in per-mille: max(model × 200‰, 0.4 GB) and max(ctx/8192, 250‰).
            let kv = (model * 200 / 1000).max(u128::from(4 * GB / 10));
            let ctx_permille = (u128::from(context) * 1000 / 8192).max(250);
            let per_slot = (kv * ctx_permille / 1000).max(1);
            let free = (ram * 85 / 100).saturating_sub(model + u128::from(4 * GB));
            u32::try_from(free / per_slot).unwrap_or(u32::MAX)
        }
    };
    let auto = auto.clamp(1, MAX_SLOTS);
    match max_jobs > 1 {
        true => auto.min(max_jobs),
        false => auto,
    }
}

/// How long the engine may hold a job without progress before the watchdog restarts it:
/// 600 s for a GGUF under 11 GB, 1200 s under 40 GB, 2100 s above (longer than the
/// coordinator's stuck-job limits of about 360, 900 and 1800 s).
pub fn wedge_after(model_bytes: Option<u64>) -> Duration {
    let model = model_bytes.unwrap_or(UNKNOWN_MODEL_BYTES);
    Duration::from_secs(match model {
        m if m < 11 * GB => 600,
        m if m < 40 * GB => 1200,
        _ => 2100,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preset_follows_the_percent() {
        let full = Preset::new(100, 8, None, None);
        assert_eq!((full.threads, full.gpu_layers), (8, 99));
        let half = Preset::new(50, 8, None, None);
        assert_eq!((half.threads, half.gpu_layers), (4, 99));
        // ceil(3 × 0.3) = 1; round(29.7) = 30.
        let low = Preset::new(30, 3, None, None);
        assert_eq!((low.threads, low.gpu_layers), (1, 30));
        let tiny = Preset::new(1, 1, None, None);
        assert_eq!((tiny.threads, tiny.gpu_layers), (1, 1));
        let zero = Preset::new(0, 0, None, None);
        assert_eq!(zero, tiny);
        let over = Preset::new(250, 4, None, None);
        assert_eq!(over.threads, 4);
        let explicit = Preset::new(10, 16, Some(6), Some(0));
        assert_eq!((explicit.threads, explicit.gpu_layers), (6, 0));
        assert_eq!(Preset::new(100, 4, Some(0), None).threads, 1);
    }

    #[test]
    fn slots_follow_memory_and_are_capped() {
        // Under 16 GB: one slot, whatever the model.
        assert_eq!(slots(15 * GB, Some(100_000_000), 4096, 1), 1);
        // 64 GB, a 4 GB model, 4096 context: per slot 0.8 × 0.5 = 0.4 GB; plenty → MAX_SLOTS.
        assert_eq!(slots(64 * GB, Some(4 * GB), 4096, 1), MAX_SLOTS);
        // 16 GB, unknown (6 GB) model, 8192 context: 13.6 − 10 = 3.6 GB over 1.2 GB → 3 → 2.
        assert_eq!(slots(16 * GB, None, 8192, 1), 2);
        // 16 GB, a 9 GB model: 13.6 − 13 = 0.6 GB over 1.8 GB → 0 → 1.
        assert_eq!(slots(16 * GB, Some(9 * GB), 8192, 1), 1);
        // --max-jobs above 1 caps; 1 means automatic.
        assert_eq!(slots(64 * GB, Some(GB), 4096, 1), 2);
        assert_eq!(slots(64 * GB, Some(GB), 4096, 16), 2);
        assert_eq!(slots(8 * GB, Some(GB), 4096, 2), 1);
        assert_eq!(slots(u64::MAX, Some(u64::MAX), u32::MAX, 0), 1);
    }

    #[test]
    fn the_watchdog_waits_longer_for_bigger_models() {
        assert_eq!(wedge_after(Some(100_000_000)), Duration::from_secs(600));
        assert_eq!(wedge_after(None), Duration::from_secs(600));
        assert_eq!(wedge_after(Some(11 * GB)), Duration::from_secs(1200));
        assert_eq!(wedge_after(Some(40 * GB)), Duration::from_secs(2100));
    }
}
