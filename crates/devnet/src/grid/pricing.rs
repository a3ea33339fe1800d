//! Prices, in micro-dollars per 1M tokens (`u64`), never floats: the devnet's suggested table,
//! the band a node's own price must stay in, the quote a request holds, and the decimal JSON
//! numbers the price endpoints write.

use serde_json::Value;
use serde_json::value::RawValue;
use x402_core::{TokenAmount, UsdMicros};

use crate::store::{CustomPrice, GridNode};

/// A price pair: micro-dollars per 1M input and output tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Price {
    /// Per 1M input tokens.
    pub(crate) input: u64,
    /// Per 1M output tokens.
    pub(crate) output: u64,
}

impl Price {
    /// Input plus output: twice the blended price (kept doubled so it stays an integer).
    pub(crate) fn doubled_blend(self) -> u128 {
        u128::from(self.input) + u128::from(self.output)
    }
}

/// Suggested prices (about OpenRouter ÷ 10) for the models the devnet knows.
const SUGGESTED: &[(&str, Price)] = &[
    (
        "qwen2.5-0.5b",
        Price {
            input: 20_000,
            output: 40_000,
        },
    ),
    (
        "llama-3.2-1b",
        Price {
            input: 50_000,
            output: 100_000,
        },
    ),
    (
        "llama-3.2-3b",
        Price {
            input: 60_000,
            output: 120_000,
        },
    ),
    (
        "llama-3.1-8b",
        Price {
            input: 100_000,
            output: 200_000,
        },
    ),
];

/// Any other model: $0.10 per 1M input tokens, $0.20 per 1M output tokens.
const DEFAULT: Price = Price {
    input: 100_000,
    output: 200_000,
};

/// The suggested (reference) price of `model`.
pub(crate) fn suggested(model: &str) -> Price {
    SUGGESTED
        .iter()
        .find(|(name, _)| *name == model)
        .map_or(DEFAULT, |(_, price)| *price)
}

/// The lowest price a node may set: half the suggested one (rounded up).
pub(crate) fn floor(model: &str) -> Price {
    let s = suggested(model);
    Price {
        input: s.input.div_ceil(2),
        output: s.output.div_ceil(2),
    }
}

/// The highest price a node may set: five times the suggested one.
pub(crate) fn ceiling(model: &str) -> Price {
    let s = suggested(model);
    Price {
        input: s.input.saturating_mul(5),
        output: s.output.saturating_mul(5),
    }
}

/// Checks a price against `model`'s band, naming it when outside.
pub(crate) fn check_band(model: &str, price: Price) -> Result<(), String> {
    let (low, high) = (floor(model), ceiling(model));
    for (what, value, low, high) in [
        ("input_per_m", price.input, low.input, high.input),
        ("output_per_m", price.output, low.output, high.output),
    ] {
        if value < low || value > high {
            return Err(format!(
                "{what} ${} is outside the band for {model}: ${} (suggested × 0.5) to ${} (suggested × 5)",
                per_m_text(value),
                per_m_text(low),
                per_m_text(high)
            ));
        }
    }
    Ok(())
}

/// A node's price for `model`: its own (from `custom`, `(node, model, input, output)`), else
/// the suggested one; and whether it is its own.
pub(crate) fn effective(
    node: &GridNode,
    model: &str,
    custom: &[CustomPrice],
) -> (Price, Option<Price>) {
    let own = custom
        .iter()
        .find(|(n, m, _, _)| *n == node.id && m == model)
        .map(|(_, _, input, output)| Price {
            input: *input,
            output: *output,
        });
    (own.unwrap_or_else(|| suggested(model)), own)
}

/// What a request holds: the cost of `prompt_allowance` input tokens and `max_tokens` output
/// tokens at `price`, rounded up, at least one micro-dollar.
pub(crate) fn quote(prompt_allowance: u64, max_tokens: u64, price: Price) -> u64 {
    crate::store::cost_micros(
        &grid_proto::Usage::new(prompt_allowance, max_tokens),
        price.input,
        price.output,
    )
    .max(1)
}

/// `value / 10^decimals` as a JSON number written from its exact decimal text.
fn decimal(value: u128, decimals: u8) -> Value {
    let text = match u64::try_from(value) {
        Ok(value) => TokenAmount::from_u64(value).to_decimal_string(decimals),
        Err(_) => return Value::Null,
    };
    RawValue::from_string(text)
        .ok()
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or(Value::Null)
}

fn per_m_text(micros: u64) -> String {
    TokenAmount::from_u64(micros).to_decimal_string(6)
}

/// A dollar amount in micro-dollars, as a JSON number.
pub(crate) fn usd(micros: u64) -> Value {
    decimal(u128::from(micros), 6)
}

/// USD per 1M tokens, as a JSON number.
pub(crate) fn per_m(micros: u64) -> Value {
    decimal(u128::from(micros), 6)
}

/// USD per 1k tokens (micro-dollars per 1M are nano-dollars per 1k), as a JSON number.
pub(crate) fn per_1k(micros_per_m: u64) -> Value {
    decimal(u128::from(micros_per_m), 9)
}

/// The blended price, (input + output) / 2, in USD per 1k tokens, as a JSON number.
pub(crate) fn blended_per_1k(price: Price) -> Value {
    // (in + out) / 2 micro-dollars per 1M = (in + out) × 5 / 10^10 dollars per 1k.
    decimal(price.doubled_blend() * 5, 10)
}

/// `{"inputPerM", "outputPerM"}` for the node prices endpoint.
pub(crate) fn pair(price: Price) -> Value {
    serde_json::json!({ "inputPerM": per_m(price.input), "outputPerM": per_m(price.output) })
}

/// A USD amount (per 1M tokens) from a JSON number or string, exact: read from its decimal
/// text, never through `f64`. `field` names it in errors.
pub(crate) fn parse_usd(raw: &RawValue, field: &str) -> Result<UsdMicros, String> {
    let written = raw.get().trim();
    let text = match serde_json::from_str::<Value>(written) {
        Ok(Value::String(text)) => text,
        Ok(Value::Number(_)) if !written.contains(['e', 'E']) => written.to_owned(),
        Ok(Value::Number(_)) => {
            return Err(format!(
                "`{field}` {written}: write the dollars as a plain decimal, without an exponent"
            ));
        }
        _ => return Err(format!("`{field}` must be a number of US dollars")),
    };
    text.parse()
        .map_err(|e: x402_core::Error| format!("`{field}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn the_band_is_half_to_five_times_the_suggested_price() {
        let model = "llama-3.2-3b";
        assert_eq!(
            floor(model),
            Price {
                input: 30_000,
                output: 60_000
            }
        );
        assert_eq!(
            ceiling(model),
            Price {
                input: 300_000,
                output: 600_000
            }
        );
        assert!(check_band(model, floor(model)).is_ok());
        assert!(check_band(model, ceiling(model)).is_ok());
        let low = check_band(
            model,
            Price {
                input: 29_999,
                output: 60_000,
            },
        )
        .unwrap_err();
        assert!(low.contains("input_per_m $0.029999"), "{low}");
        assert!(low.contains("$0.03 (suggested × 0.5)"), "{low}");
        let high = check_band(
            model,
            Price {
                input: 30_000,
                output: 600_001,
            },
        )
        .unwrap_err();
        assert!(high.starts_with("output_per_m"), "{high}");
        assert_eq!(suggested("unknown-model"), DEFAULT);
    }

    #[test]
    fn prices_are_written_exactly() {
        assert_eq!(per_m(100_000).to_string(), "0.1");
        assert_eq!(per_1k(100_000).to_string(), "0.0001");
        assert_eq!(per_1k(1).to_string(), "1e-9");
        assert_eq!(
            blended_per_1k(Price {
                input: 100_000,
                output: 200_000
            })
            .to_string(),
            "0.00015"
        );
        assert_eq!(
            blended_per_1k(Price {
                input: 1,
                output: 0
            })
            .to_string(),
            "5e-10"
        );
    }

    #[test]
    fn quotes_round_up_and_are_never_zero() {
        assert_eq!(quote(0, 0, DEFAULT), 1);
        // 100 × $0.10 + 2048 × $0.20 per 1M = 0.00001 + 0.0004096 = 420 micros (419.6 up).
        assert_eq!(quote(100, 2048, DEFAULT), 420);
    }

    #[test]
    fn usd_is_parsed_from_its_text() {
        assert_eq!(parse_usd(&raw("0.15"), "x").unwrap(), UsdMicros(150_000));
        assert_eq!(parse_usd(&raw("\"0.3\""), "x").unwrap(), UsdMicros(300_000));
        assert!(parse_usd(&raw("1e-1"), "x").is_err());
        assert!(parse_usd(&raw("0.0000001"), "x").is_err());
        assert!(parse_usd(&raw("true"), "x").is_err());
    }
}
