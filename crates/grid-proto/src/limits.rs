//! The input limits a node enforces on a job (§3.8), and how out-of-range sampling values are
//! brought into range.

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 256;
/// Most bytes of roles and contents together.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// `temperature` when none is given.
pub const DEFAULT_TEMPERATURE: f64 = 0.7;
/// The highest `temperature`.
pub const MAX_TEMPERATURE: f64 = 2.0;
/// `max_tokens` when none is given.
pub const DEFAULT_MAX_TOKENS: u32 = 2048;
/// The highest `max_tokens`.
pub const MAX_MAX_TOKENS: u32 = 8192;

/// `temperature` clamped to [0, 2]; absent or not a number gives the default.
pub fn temperature(value: Option<f64>) -> f64 {
    match value {
        Some(t) if t.is_finite() => t.clamp(0.0, MAX_TEMPERATURE),
        _ => DEFAULT_TEMPERATURE,
    }
}

/// `max_tokens` clamped to [1, 8192]; absent gives the default.
pub fn max_tokens(value: Option<u64>) -> u32 {
    match value {
        None => DEFAULT_MAX_TOKENS,
        Some(n) => u32::try_from(n.clamp(1, u64::from(MAX_MAX_TOKENS))).unwrap_or(MAX_MAX_TOKENS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_values_are_brought_into_range() {
        assert_eq!(temperature(None), 0.7);
        assert_eq!(temperature(Some(-1.0)), 0.0);
        assert_eq!(temperature(Some(9.0)), 2.0);
        assert_eq!(temperature(Some(f64::NAN)), 0.7);
        assert_eq!(max_tokens(None), 2048);
        assert_eq!(max_tokens(Some(0)), 1);
        assert_eq!(max_tokens(Some(100_000)), 8192);
        assert_eq!(max_tokens(Some(12)), 12);
    }
}
