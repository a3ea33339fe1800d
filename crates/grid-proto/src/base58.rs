//! Base58 (Bitcoin alphabet) for the grid's sealed blobs, in 64-bit limbs.
//!
//! The wire carries whole ciphertexts in base58, and base58 of an arbitrary length is a
//! big-number base conversion: quadratic in the length. The `bs58` crate converts a byte (or
//! digit) at a time, which is fine for keys and signatures but takes seconds for a 64 KiB
//! prompt and hours at the reference's 8 MiB ceiling (measured: 64 KiB encodes in 5.2 s and
//! decodes in 1.8 s; 256 KiB in 83 s and 27 s). Here ten base58 digits (58^10 < 2^64) or
//! eight bytes move per limb operation, about 80 times less work for the same quadratic
//! shape. Its output is identical to `bs58`'s (checked by property tests against it); keys
//! and signatures still use `bs58`.
//!
//! Even so the cost stays quadratic, so sealed blobs are capped well below 8 MiB:
//! [`crate::seal::MAX_SEALED_B58`].

const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// 58^10, the base of a limb of digits.
const DIGITS_BASE: u64 = 430_804_206_899_405_824;

/// The digit of each ASCII byte, or 0xff.
const DECODE: [u8; 128] = {
    let mut table = [0xffu8; 128];
    let mut i = 0;
    while i < 58 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a text is not base58.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{character}` at {index} is not a base58 character")]
pub struct InvalidBase58 {
    /// The character.
    pub character: char,
    /// Its byte index.
    pub index: usize,
}

/// `bytes` in base58.
pub fn encode(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    let rest = &bytes[zeros..];
    // Little-endian limbs in base 58^10.
    let mut limbs: Vec<u64> = Vec::with_capacity(rest.len() / 7 + 1);
    // Eight bytes at a time (the first group takes the remainder).
    let first = rest.len() % 8;
    let mut groups: Vec<(&[u8], u32)> = Vec::with_capacity(rest.len() / 8 + 1);
    if first > 0 {
        groups.push((&rest[..first], (first * 8) as u32));
    }
    for chunk in rest[first..].chunks_exact(8) {
        groups.push((chunk, 64));
    }
    for (group, bits) in groups {
        let mut carry: u128 = group
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        for limb in &mut limbs {
            let value = (u128::from(*limb) << bits) + carry;
            *limb = (value % u128::from(DIGITS_BASE)) as u64;
            carry = value / u128::from(DIGITS_BASE);
        }
        while carry > 0 {
            limbs.push((carry % u128::from(DIGITS_BASE)) as u64);
            carry /= u128::from(DIGITS_BASE);
        }
    }
    let mut out = Vec::with_capacity(zeros + limbs.len() * 10);
    out.resize(zeros, b'1');
    let mut digits = Vec::with_capacity(limbs.len() * 10);
    for (i, limb) in limbs.iter().enumerate() {
        let mut limb = *limb;
        let last = i + 1 == limbs.len();
        let mut n = 0;
        while (!last && n < 10) || (last && limb > 0) {
            digits.push(ALPHABET[(limb % 58) as usize]);
            limb /= 58;
            n += 1;
        }
    }
    out.extend(digits.iter().rev());
    // Only alphabet bytes were pushed.
    String::from_utf8(out).unwrap_or_default()
}

/// The bytes `text` encodes.
///
/// # Errors
/// [`InvalidBase58`] at the first character outside the alphabet.
pub fn decode(text: &str) -> Result<Vec<u8>, InvalidBase58> {
    let input = text.as_bytes();
    let mut digits = Vec::with_capacity(input.len());
    for (index, byte) in input.iter().enumerate() {
        let digit = DECODE.get(usize::from(*byte)).copied().unwrap_or(0xff);
        if digit == 0xff {
            let character = text[index..].chars().next().unwrap_or('?');
            return Err(InvalidBase58 { character, index });
        }
        digits.push(digit);
    }
    let zeros = digits.iter().take_while(|d| **d == 0).count();
    let rest = &digits[zeros..];
    // Little-endian 64-bit limbs of the number.
    let mut limbs: Vec<u64> = Vec::with_capacity(rest.len() * 3 / 32 + 1);
    let first = rest.len() % 10;
    let mut groups: Vec<&[u8]> = Vec::with_capacity(rest.len() / 10 + 1);
    if first > 0 {
        groups.push(&rest[..first]);
    }
    for chunk in rest[first..].chunks_exact(10) {
        groups.push(chunk);
    }
    for group in groups {
        let multiplier = 58u128.pow(group.len() as u32);
        let mut carry: u128 = group.iter().fold(0u128, |acc, d| acc * 58 + u128::from(*d));
        for limb in &mut limbs {
            let value = u128::from(*limb) * multiplier + carry;
            *limb = value as u64;
            carry = value >> 64;
        }
        while carry > 0 {
            limbs.push(carry as u64);
            carry >>= 64;
        }
    }
    let mut out = vec![0u8; zeros];
    let mut started = false;
    for limb in limbs.iter().rev() {
        for byte in limb.to_be_bytes() {
            if started || byte != 0 {
                started = true;
                out.push(byte);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_values_and_edges() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(&[0]), "1");
        assert_eq!(encode(&[0, 0, 1]), "112");
        assert_eq!(encode(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(decode("StV1DL6CwTryKyV").unwrap(), b"hello world");
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode("111").unwrap(), [0, 0, 0]);
        assert_eq!(
            decode("abc0"),
            Err(InvalidBase58 {
                character: '0',
                index: 3
            })
        );
        assert!(decode("é").is_err());
        assert!(decode("Il").is_err());
    }

    proptest! {
        #[test]
        fn encoding_is_bs58s(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                             zeros in 0usize..4) {
            let mut input = vec![0u8; zeros];
            input.extend(bytes);
            let ours = encode(&input);
            prop_assert_eq!(&ours, &bs58::encode(&input).into_string());
            prop_assert_eq!(decode(&ours).unwrap(), input);
        }

        #[test]
        fn decoding_is_bs58s(text in "[1-9A-HJ-NP-Za-km-z]{0,300}") {
            prop_assert_eq!(decode(&text).unwrap(), bs58::decode(&text).into_vec().unwrap());
        }

        #[test]
        fn any_text_decodes_or_is_refused_without_panicking(text in "\\PC{0,64}") {
            let _ = decode(&text);
        }
    }
}
