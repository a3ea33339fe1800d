//! Prices as the operator writes them (`sgl price set --input 0.15`): decimal text, never a
//! float, sent as a JSON number made from the same digits.

use serde_json::value::RawValue;

use crate::{Error, Result};

/// Checks that `text` is a plain non-negative decimal (`12`, `0.15`, `.5` is refused) and
/// returns it as a JSON number with the same digits (leading zeros of the integer part
/// dropped, as JSON requires).
///
/// # Errors
/// [`Error::InvalidInput`] naming the rule.
pub fn decimal_price(text: &str) -> Result<Box<RawValue>> {
    let text = text.trim();
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return Err(Error::InvalidInput(format!(
            "`{}` is not a price: write USD per 1M tokens as plain decimal digits, like 0.15 or 2",
            text.chars().take(40).collect::<String>()
        )));
    }
    if text.len() > 40 {
        return Err(Error::InvalidInput(
            "a price has at most 40 characters".into(),
        ));
    }
    let whole = match whole.trim_start_matches('0') {
        "" => "0",
        rest => rest,
    };
    let number = match fraction {
        Some(fraction) => format!("{whole}.{fraction}"),
        None => whole.to_owned(),
    };
    RawValue::from_string(number).map_err(|e| Error::InvalidInput(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn prices_are_plain_decimals_kept_digit_for_digit() {
        for (text, json) in [
            ("0.15", "0.15"),
            ("2", "2"),
            ("007.50", "7.50"),
            ("0", "0"),
            ("0.000000000000000000001", "0.000000000000000000001"),
        ] {
            assert_eq!(decimal_price(text).unwrap().get(), json);
        }
        for bad in [
            "", "-1", "1e3", ".5", "5.", "1.2.3", "NaN", "0x10", "1,5", "+1", " ",
        ] {
            assert!(decimal_price(bad).is_err(), "{bad:?} was accepted");
        }
        let body = grid_proto::node::SetPrice {
            model: "m".into(),
            input_per_m: Some(decimal_price("0.10").unwrap()),
            output_per_m: Some(decimal_price("1").unwrap()),
            reset: false,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"model":"m","input_per_m":0.10,"output_per_m":1}"#
        );
    }
}
