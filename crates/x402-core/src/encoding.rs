//! Base64 as x402 uses it: strict on the way out, lenient on the way in.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::{Error, Result};

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// Largest header value we decode (x402 headers are a few KiB; this bounds memory).
pub(crate) const MAX_HEADER_LEN: usize = 64 * 1024;

/// Standard alphabet, `=` padded: the only form x402 emits.
pub(crate) fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard or URL-safe base64, padded or not, ignoring surrounding whitespace.
///
/// # Errors
/// [`Error::Malformed`] naming `what` when the text is not base64 or is too large.
pub(crate) fn decode(what: &str, text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    if text.len() > MAX_HEADER_LEN {
        return Err(Error::malformed(
            what,
            format_args!("longer than {MAX_HEADER_LEN} bytes"),
        ));
    }
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE_LENIENT
    } else {
        &STANDARD_LENIENT
    };
    engine
        .decode(text)
        .map_err(|e| Error::malformed(what, format_args!("not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_variant_and_encodes_padded() {
        let bytes = b"{\"a\":\"\xfb\xff\"}";
        let standard = encode(bytes);
        assert!(standard.ends_with('='));
        for variant in [
            standard.clone(),
            standard.trim_end_matches('=').to_owned(),
            standard.replace('+', "-").replace('/', "_"),
            format!(" {standard}\n"),
        ] {
            assert_eq!(decode("x", &variant).unwrap(), bytes, "{variant}");
        }
        assert!(matches!(
            decode("x", "not base64!"),
            Err(Error::Malformed { .. })
        ));
        assert!(decode("x", &"A".repeat(MAX_HEADER_LEN + 4)).is_err());
    }
}
