//! Where faults are injected: the settings ([`FaultConfig`], from `Config`, the binary's flags or
//! `POST /devnet/faults`) and the live switches the services read ([`Faults`]).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64};

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
    /// Stop waiting for confirmations: a sent payment is answered `settlement_pending` and
    /// settled later by the reconciler.
    #[serde(default)]
    pub hold_confirmation: bool,
    /// Settle paid requests, then drop the connection instead of answering: the client sees
    /// a lost answer after paying.
    #[serde(default)]
    pub drop_paid_answers: bool,
    /// Kill the whole process (SIGKILL) when a settlement reaches this point. Only for a
    /// devnet running as its own process (`x402-devnet --crash-at`): it kills whatever
    /// process the devnet runs in.
    #[serde(default)]
    pub crash_at: Option<CrashPoint>,
    /// The grid's `/v1/reserve` answers another valid X25519 key than the node's (keeping the
    /// node's key binding signature): a client that checks the binding refuses it.
    #[serde(default)]
    pub grid_swap_reserved_key: bool,
    /// The grid's `/v1/reserve` answers a valid-looking but wrong key binding signature.
    #[serde(default)]
    pub grid_swap_reserved_signature: bool,
    /// What the grid does to the sealed stream chunks it relays to a client.
    #[serde(default)]
    pub grid_stream_fault: Option<GridStreamFault>,
}

/// How the grid can spoil a sealed stream on its way to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridStreamFault {
    /// Chunks 0 and 1 swapped.
    Reorder,
    /// The final chunk dropped; the stream ends with `data: [DONE]`.
    Truncate,
    /// A character of chunk 0's ciphertext changed.
    Tamper,
}

/// Where a settlement can be made to crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashPoint {
    /// The payment is claimed; nothing was sent.
    AfterClaim,
    /// The transaction was sent (and, on anvil, mined) but is not durable yet.
    AfterSubmission,
    /// The transaction is confirmed but not durable yet.
    AfterConfirmation,
    /// The chain is durable; the credit or instance is not written yet.
    BeforeCreditWrite,
}

impl CrashPoint {
    const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterClaim,
        CrashPoint::AfterSubmission,
        CrashPoint::AfterConfirmation,
        CrashPoint::BeforeCreditWrite,
    ];

    /// Its name on the command line and in `/devnet/faults`.
    pub fn as_str(self) -> &'static str {
        match self {
            CrashPoint::AfterClaim => "after_claim",
            CrashPoint::AfterSubmission => "after_submission",
            CrashPoint::AfterConfirmation => "after_confirmation",
            CrashPoint::BeforeCreditWrite => "before_credit_write",
        }
    }
}

impl std::str::FromStr for CrashPoint {
    type Err = String;

    fn from_str(text: &str) -> Result<CrashPoint, String> {
        CrashPoint::ALL
            .into_iter()
            .find(|point| point.as_str() == text.replace('-', "_"))
            .ok_or_else(|| {
                format!("unknown crash point `{text}`: use after_claim, after_submission, after_confirmation or before_credit_write")
            })
    }
}

/// The live fault switches, shared by every service and adjustable at runtime.
pub struct Faults {
    provider_reject_permille: AtomicU32,
    boot_delay_ms: AtomicU64,
    solana_5xx_permille: AtomicU32,
    hold_confirmation: AtomicBool,
    drop_paid_answers: AtomicBool,
    /// 0: none; 1 + the index in `CrashPoint::ALL`.
    crash_at: AtomicU8,
    grid_swap_reserved_key: AtomicBool,
    grid_swap_reserved_signature: AtomicBool,
    /// 0: none; 1 reorder, 2 truncate, 3 tamper.
    grid_stream_fault: AtomicU8,
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
            hold_confirmation: AtomicBool::new(false),
            drop_paid_answers: AtomicBool::new(false),
            crash_at: AtomicU8::new(0),
            grid_swap_reserved_key: AtomicBool::new(false),
            grid_swap_reserved_signature: AtomicBool::new(false),
            grid_stream_fault: AtomicU8::new(0),
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
        self.hold_confirmation
            .store(config.hold_confirmation, Relaxed);
        self.drop_paid_answers
            .store(config.drop_paid_answers, Relaxed);
        let crash = config.crash_at.map_or(0, |point| {
            CrashPoint::ALL
                .iter()
                .position(|p| *p == point)
                .and_then(|i| u8::try_from(i + 1).ok())
                .unwrap_or(0)
        });
        self.crash_at.store(crash, Relaxed);
        self.grid_swap_reserved_key
            .store(config.grid_swap_reserved_key, Relaxed);
        self.grid_swap_reserved_signature
            .store(config.grid_swap_reserved_signature, Relaxed);
        let stream = match config.grid_stream_fault {
            None => 0,
            Some(GridStreamFault::Reorder) => 1,
            Some(GridStreamFault::Truncate) => 2,
            Some(GridStreamFault::Tamper) => 3,
        };
        self.grid_stream_fault.store(stream, Relaxed);
    }

    /// Whether `/v1/reserve` swaps the node's X25519 key.
    pub fn grid_swap_reserved_key(&self) -> bool {
        self.grid_swap_reserved_key.load(Relaxed)
    }

    /// Whether `/v1/reserve` swaps the key binding signature.
    pub fn grid_swap_reserved_signature(&self) -> bool {
        self.grid_swap_reserved_signature.load(Relaxed)
    }

    /// What the grid does to sealed stream chunks.
    pub fn grid_stream_fault(&self) -> Option<GridStreamFault> {
        match self.grid_stream_fault.load(Relaxed) {
            1 => Some(GridStreamFault::Reorder),
            2 => Some(GridStreamFault::Truncate),
            3 => Some(GridStreamFault::Tamper),
            _ => None,
        }
    }

    /// Draws whether the provider rejects this instance.
    pub fn provider_rejects(&self) -> bool {
        self.draw(self.provider_reject_permille.load(Relaxed))
    }

    /// Draws whether this Solana payment gets an injected transient 503.
    pub fn solana_transient_failure(&self) -> bool {
        self.draw(self.solana_5xx_permille.load(Relaxed))
    }

    /// Whether confirmations are held (answered `settlement_pending`).
    pub fn hold_confirmation(&self) -> bool {
        self.hold_confirmation.load(Relaxed)
    }

    /// Kills this process with SIGKILL when `point` is the configured crash point.
    pub fn crash_if(&self, point: CrashPoint) {
        let configured = usize::from(self.crash_at.load(Relaxed));
        if configured == 0 || CrashPoint::ALL.get(configured - 1) != Some(&point) {
            return;
        }
        tracing::error!(point = point.as_str(), "crashing (injected fault)");
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg(std::process::id().to_string())
            .status();
        // SIGKILL cannot be caught; if `kill` was missing, end as abruptly as we can.
        std::process::abort();
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

/// The layer over the paid routes that drops their successful answers when told to: the
/// work is done and the payment settled, then the connection closes without an answer.
pub(crate) async fn drop_paid_answers(
    axum::extract::State(faults): axum::extract::State<std::sync::Arc<Faults>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = next.run(request).await;
    if faults.drop_paid_answers.load(Relaxed) && response.status().is_success() {
        tracing::warn!("dropping a paid answer (injected fault)");
        // Unwinding out of the connection's task closes the connection without a response;
        // `resume_unwind` skips the panic hook, so nothing is reported as a crash.
        std::panic::resume_unwind(Box::new("injected fault: the paid answer is dropped"));
    }
    response
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
                ..FaultConfig::default()
            },
            std::sync::Arc::new(crate::clock::OsRandom),
        );
        assert_eq!(faults.boot_delay_ms(), 7);
        assert!((0..100).all(|_| faults.provider_rejects()));
        assert!((0..100).all(|_| !faults.solana_transient_failure()));
    }
}
