//! Typed addresses: EVM (alloy's [`Address`]), Solana ([`SolanaAddress`]) and [`PayTo`].

use std::fmt;
use std::str::FromStr;

pub use alloy_primitives::Address;

use crate::network::{ChainFamily, Network};
use crate::{Error, Result};

/// A Solana public key (32 bytes, base58 text).
///
/// Always available, so that EVM-only builds can still read Solana offers; conversion to the
/// Solana SDK's `Pubkey` exists with the `solana` feature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SolanaAddress([u8; 32]);

impl SolanaAddress {
    /// Wraps 32 raw bytes.
    pub const fn new(bytes: [u8; 32]) -> SolanaAddress {
        SolanaAddress(bytes)
    }

    /// The raw bytes.
    pub const fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Borrowed raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for SolanaAddress {
    type Err = Error;

    fn from_str(input: &str) -> Result<SolanaAddress> {
        let invalid = || Error::InvalidAddress {
            input: input.to_owned(),
            kind: "Solana",
        };
        if input.len() > 44 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        match bs58::decode(input).onto(&mut bytes) {
            Ok(32) => Ok(SolanaAddress(bytes)),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for SolanaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(self.0).into_string())
    }
}

impl fmt::Debug for SolanaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SolanaAddress({self})")
    }
}

#[cfg(feature = "solana")]
impl From<SolanaAddress> for solana_pubkey::Pubkey {
    fn from(address: SolanaAddress) -> Self {
        solana_pubkey::Pubkey::new_from_array(address.0)
    }
}

#[cfg(feature = "solana")]
impl From<solana_pubkey::Pubkey> for SolanaAddress {
    fn from(pubkey: solana_pubkey::Pubkey) -> Self {
        SolanaAddress(pubkey.to_bytes())
    }
}

/// An account on some chain: a payment recipient, a payer, or a token (asset) id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayTo {
    /// An EVM address.
    Evm(Address),
    /// A Solana public key.
    Solana(SolanaAddress),
}

impl PayTo {
    /// Parses `input` as an address of `network`'s family.
    ///
    /// # Errors
    /// [`Error::InvalidAddress`] when the text is not an address of that chain family, and
    /// [`Error::UnsupportedNetwork`] for networks outside EVM and Solana.
    pub fn parse_for(network: &Network, input: &str) -> Result<PayTo> {
        match network.family() {
            ChainFamily::Evm => parse_evm(input).map(PayTo::Evm),
            ChainFamily::Solana => input.parse().map(PayTo::Solana),
            ChainFamily::Other => Err(Error::UnsupportedNetwork {
                network: network.to_string(),
                hint: "only eip155:* and solana:* networks are supported",
            }),
        }
    }

    /// The EVM address, if this is one.
    pub fn as_evm(&self) -> Option<Address> {
        match self {
            PayTo::Evm(address) => Some(*address),
            PayTo::Solana(_) => None,
        }
    }

    /// The Solana address, if this is one.
    pub fn as_solana(&self) -> Option<SolanaAddress> {
        match self {
            PayTo::Solana(address) => Some(*address),
            PayTo::Evm(_) => None,
        }
    }
}

impl FromStr for PayTo {
    type Err = Error;

    /// `0x…` parses as EVM, anything else as Solana base58.
    fn from_str(input: &str) -> Result<PayTo> {
        if input.starts_with("0x") || input.starts_with("0X") {
            parse_evm(input).map(PayTo::Evm)
        } else {
            input.parse().map(PayTo::Solana)
        }
    }
}

impl fmt::Display for PayTo {
    /// EVM addresses print EIP-55 checksummed; Solana in base58.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayTo::Evm(address) => write!(f, "{address}"),
            PayTo::Solana(address) => write!(f, "{address}"),
        }
    }
}

impl fmt::Debug for PayTo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayTo({self})")
    }
}

/// Parses an EVM address in any letter case (`0x` + 40 hex digits).
pub(crate) fn parse_evm(input: &str) -> Result<Address> {
    let invalid = || Error::InvalidAddress {
        input: input.to_owned(),
        kind: "EVM",
    };
    let hex = input
        .strip_prefix("0x")
        .or_else(|| input.strip_prefix("0X"))
        .ok_or_else(invalid)?;
    if hex.len() != 40 {
        return Err(invalid());
    }
    let mut bytes = [0u8; 20];
    alloy_primitives::hex::decode_to_slice(hex, &mut bytes).map_err(|_| invalid())?;
    Ok(Address::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evm_addresses_parse_in_any_case_and_print_checksummed() {
        let lower: PayTo = "0x209693bc6afc0c5328ba36faf03c514ef312287c"
            .parse()
            .unwrap();
        assert_eq!(
            lower.to_string(),
            "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
        );
        for bad in [
            "0x123",
            "209693bc6afc0c5328ba36faf03c514ef312287c",
            "0xzz9693bc6afc0c5328ba36faf03c514ef312287c",
        ] {
            assert!(
                matches!(bad.parse::<PayTo>(), Err(Error::InvalidAddress { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn solana_addresses_round_trip_and_reject_wrong_lengths() {
        let text = "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4";
        let address: SolanaAddress = text.parse().unwrap();
        assert_eq!(address.to_string(), text);
        for bad in [
            "",
            "0OIl",
            "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg",
            "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4zz",
        ] {
            assert!(bad.parse::<SolanaAddress>().is_err(), "{bad}");
        }
    }
}
