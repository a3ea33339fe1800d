//! Money: atomic token amounts, assets, exact decimal conversion and the known-asset registry.
//!
//! Amounts are integers of atomic units ([`TokenAmount`], a `U256`); decimals belong to the
//! [`Asset`], never to the number. Conversion to and from human decimal text is exact: text
//! with more fractional digits than the asset has is refused, never rounded. There is no
//! floating point anywhere in this module.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use alloy_primitives::{U256, address};

use crate::address::{Address, SolanaAddress};
use crate::network::Network;
use crate::{Error, Result};

/// A non-negative integer amount of a token's atomic units.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TokenAmount(U256);

impl TokenAmount {
    /// Zero.
    pub const ZERO: TokenAmount = TokenAmount(U256::ZERO);

    /// Wraps a `U256` of atomic units.
    pub const fn new(atomic: U256) -> TokenAmount {
        TokenAmount(atomic)
    }

    /// From a `u64` of atomic units.
    pub fn from_u64(atomic: u64) -> TokenAmount {
        TokenAmount(U256::from(atomic))
    }

    /// The atomic units.
    pub const fn atomic(&self) -> U256 {
        self.0
    }

    /// The amount as `u64`, if it fits (SPL token amounts are `u64`).
    pub fn to_u64(&self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: TokenAmount) -> Option<TokenAmount> {
        self.0.checked_add(other.0).map(TokenAmount)
    }

    /// `self - other`, or `None` when `other` is larger.
    pub fn checked_sub(self, other: TokenAmount) -> Option<TokenAmount> {
        self.0.checked_sub(other.0).map(TokenAmount)
    }

    /// `self * factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: u64) -> Option<TokenAmount> {
        self.0.checked_mul(U256::from(factor)).map(TokenAmount)
    }

    /// Parses human decimal text (`"1.5"`) in units of `decimals` fractional digits.
    ///
    /// # Errors
    /// [`Error::InvalidAmount`] for signs, exponents, empty parts, more fractional digits than
    /// `decimals`, or values that do not fit 256 bits.
    pub fn from_decimal_str(text: &str, decimals: u8) -> Result<TokenAmount> {
        parse_units(text, decimals).map(TokenAmount)
    }

    /// Formats as exact human decimal text with `decimals` fractional digits, trailing zeros
    /// trimmed (`1500000` at 6 decimals is `"1.5"`).
    pub fn to_decimal_string(&self, decimals: u8) -> String {
        format_units(self.0, decimals)
    }
}

impl FromStr for TokenAmount {
    type Err = Error;

    /// Parses a decimal integer of atomic units (the wire form): digits only.
    fn from_str(text: &str) -> Result<TokenAmount> {
        let invalid = |reason| Error::InvalidAmount {
            input: truncate(text),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("empty"));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "atomic amounts are integers of digits only, without sign, decimal point or exponent",
            ));
        }
        if text.len() > 78 {
            return Err(invalid("does not fit in 256 bits"));
        }
        U256::from_str_radix(text, 10)
            .map(TokenAmount)
            .map_err(|_| invalid("does not fit in 256 bits"))
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenAmount({})", self.0)
    }
}

impl serde::Serialize for TokenAmount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for TokenAmount {
    /// Accepts the decimal string form, and non-negative JSON integers.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = TokenAmount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount of atomic units as a decimal string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TokenAmount, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TokenAmount, E> {
                Ok(TokenAmount::from_u64(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TokenAmount, E> {
                u64::try_from(v)
                    .map(TokenAmount::from_u64)
                    .map_err(|_| E::custom("amount is negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<TokenAmount, E> {
                Err(E::custom(
                    "amount must be an integer of atomic units, not a fractional number",
                ))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn truncate(text: &str) -> String {
    const LIMIT: usize = 96;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Parses human decimal text into atomic units; exact, never rounds.
fn parse_units(text: &str, decimals: u8) -> Result<U256> {
    let invalid = |reason| Error::InvalidAmount {
        input: truncate(text),
        reason,
    };
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "expected digits, optionally followed by `.` and more digits",
        ));
    }
    if text.contains('.') && fraction.is_empty() {
        return Err(invalid("expected digits after the decimal point"));
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("expected digits after the decimal point"));
    }
    let significant = fraction.trim_end_matches('0');
    if significant.len() > usize::from(decimals) {
        return Err(invalid(
            "more fractional digits than the asset's decimals; amounts are never rounded",
        ));
    }
    if whole.len() > 78 {
        return Err(invalid("does not fit in 256 bits"));
    }
    let overflow = || invalid("does not fit in 256 bits");
    let scale = U256::from(10u8)
        .checked_pow(U256::from(decimals))
        .ok_or_else(overflow)?;
    let whole = U256::from_str_radix(whole, 10).map_err(|_| overflow())?;
    let mut fraction_units = U256::ZERO;
    if !significant.is_empty() {
        let digits = U256::from_str_radix(significant, 10).map_err(|_| overflow())?;
        let pad = U256::from(10u8)
            .checked_pow(U256::from(usize::from(decimals) - significant.len()))
            .ok_or_else(overflow)?;
        fraction_units = digits.checked_mul(pad).ok_or_else(overflow)?;
    }
    whole
        .checked_mul(scale)
        .and_then(|w| w.checked_add(fraction_units))
        .ok_or_else(overflow)
}

/// Formats atomic units as exact decimal text, trailing fractional zeros trimmed.
fn format_units(atomic: U256, decimals: u8) -> String {
    let digits = atomic.to_string();
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return digits;
    }
    let (whole, fraction) = if digits.len() > decimals {
        let (w, f) = digits.split_at(digits.len() - decimals);
        (w.to_owned(), f.to_owned())
    } else {
        ("0".to_owned(), format!("{digits:0>decimals$}"))
    };
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        whole
    } else {
        format!("{whole}.{fraction}")
    }
}

/// An amount of US dollars in millionths (`UsdMicros(1_500_000)` is $1.50).
///
/// Used for spend caps and prices that are denominated in dollars rather than in a token.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UsdMicros(pub u64);

impl UsdMicros {
    /// Whole dollars.
    pub const fn from_dollars(dollars: u64) -> UsdMicros {
        UsdMicros(dollars.saturating_mul(1_000_000))
    }
}

impl FromStr for UsdMicros {
    type Err = Error;

    /// Parses `"500"`, `"12.50"` or `"$0.001"`; at most 6 fractional digits.
    fn from_str(text: &str) -> Result<UsdMicros> {
        let digits = text.strip_prefix('$').unwrap_or(text);
        let atomic = parse_units(digits, 6)?;
        u64::try_from(atomic)
            .map(UsdMicros)
            .map_err(|_| Error::InvalidAmount {
                input: truncate(text),
                reason: "dollar amount is too large",
            })
    }
}

impl fmt::Display for UsdMicros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format_units(U256::from(self.0), 6);
        match text.split_once('.') {
            None => write!(f, "${text}.00"),
            Some((w, frac)) if frac.len() < 2 => write!(f, "${w}.{frac:0<2}"),
            Some(_) => write!(f, "${text}"),
        }
    }
}

impl fmt::Debug for UsdMicros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UsdMicros({self})")
    }
}

/// The on-chain identity of a token: an ERC-20 contract or an SPL mint.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AssetId {
    /// An ERC-20 contract address.
    Evm(Address),
    /// An SPL token mint.
    Solana(SolanaAddress),
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AssetId::Evm(address) => write!(f, "{address}"),
            AssetId::Solana(mint) => write!(f, "{mint}"),
        }
    }
}

/// How a token is moved by the schemes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum TransferMethod {
    /// EIP-3009 `transferWithAuthorization` (USDC and friends).
    Eip3009,
    /// ERC-2612 `permit` then `transferFrom` by the facilitator.
    Permit,
    /// SPL `TransferChecked`.
    SplTransferChecked,
}

/// A token on a network, with what is needed to sign for it and to show it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Asset {
    network: Network,
    id: AssetId,
    symbol: &'static str,
    decimals: u8,
    eip712: Option<(&'static str, &'static str)>,
    usd_stable: bool,
    transfer: TransferMethod,
}

impl Asset {
    /// The network the token lives on.
    pub fn network(&self) -> &Network {
        &self.network
    }
    /// The contract or mint.
    pub fn id(&self) -> AssetId {
        self.id
    }
    /// Ticker symbol.
    pub fn symbol(&self) -> &'static str {
        self.symbol
    }
    /// Decimal places of one whole token.
    pub fn decimals(&self) -> u8 {
        self.decimals
    }
    /// EIP-712 domain `name` and `version` of the token contract (EVM only).
    pub fn eip712(&self) -> Option<(&'static str, &'static str)> {
        self.eip712
    }
    /// Whether one whole token is worth one US dollar (USDC, MegaUSD, ...).
    pub fn is_usd_stable(&self) -> bool {
        self.usd_stable
    }
    /// How the schemes move it.
    pub fn transfer_method(&self) -> TransferMethod {
        self.transfer
    }

    /// `amount` of this asset in US dollar millionths, rounded **up**, for USD stablecoins.
    ///
    /// Rounding up makes spend caps conservative: a cap is never exceeded by a sub-micro
    /// remainder.
    pub fn usd_value(&self, amount: TokenAmount) -> Option<UsdMicros> {
        if !self.usd_stable {
            return None;
        }
        let atomic = amount.atomic();
        let micros = if self.decimals >= 6 {
            let divisor = U256::from(10u8).pow(U256::from(self.decimals - 6));
            let (quotient, remainder) = atomic.div_rem(divisor);
            if remainder.is_zero() {
                quotient
            } else {
                quotient.checked_add(U256::from(1u8))?
            }
        } else {
            atomic.checked_mul(U256::from(10u8).pow(U256::from(6 - self.decimals)))?
        };
        u64::try_from(micros).ok().map(UsdMicros)
    }

    /// Human text for an amount of this asset: `"1.5 USDC"`.
    pub fn display_amount(&self, amount: TokenAmount) -> String {
        format!(
            "{} {}",
            amount.to_decimal_string(self.decimals),
            self.symbol
        )
    }
}

/// The registry of known assets (reference `x402.md` §6).
#[derive(Debug)]
pub struct AssetRegistry {
    assets: Vec<Asset>,
}

impl AssetRegistry {
    /// The built-in registry.
    pub fn known() -> &'static AssetRegistry {
        static REGISTRY: OnceLock<AssetRegistry> = OnceLock::new();
        REGISTRY.get_or_init(|| AssetRegistry {
            assets: builtin_assets(),
        })
    }

    /// The asset with this id on this network.
    pub fn find(&self, network: &Network, id: &AssetId) -> Option<&Asset> {
        self.assets
            .iter()
            .find(|a| &a.network == network && &a.id == id)
    }

    /// The default payment asset of a network (its USDC, or MegaUSD on MegaETH).
    pub fn default_for(&self, network: &Network) -> Option<&Asset> {
        self.assets.iter().find(|a| &a.network == network)
    }

    /// Every known asset.
    pub fn iter(&self) -> impl Iterator<Item = &Asset> {
        self.assets.iter()
    }
}

fn builtin_assets() -> Vec<Asset> {
    fn evm(
        network: Network,
        id: Address,
        symbol: &'static str,
        decimals: u8,
        eip712: (&'static str, &'static str),
        transfer: TransferMethod,
    ) -> Asset {
        Asset {
            network,
            id: AssetId::Evm(id),
            symbol,
            decimals,
            eip712: Some(eip712),
            usd_stable: true,
            transfer,
        }
    }
    fn solana(network: Network, mint: &str) -> Asset {
        let mint: SolanaAddress = match mint.parse() {
            Ok(mint) => mint,
            // The table below is static and tested; a typo here fails `registry_parses`.
            Err(_) => SolanaAddress::new([0; 32]),
        };
        Asset {
            network,
            id: AssetId::Solana(mint),
            symbol: "USDC",
            decimals: 6,
            eip712: None,
            usd_stable: true,
            transfer: TransferMethod::SplTransferChecked,
        }
    }
    use TransferMethod::{Eip3009, Permit};
    vec![
        evm(
            Network::BASE,
            address!("833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
            "USDC",
            6,
            ("USD Coin", "2"),
            Eip3009,
        ),
        evm(
            Network::BASE_SEPOLIA,
            address!("036CbD53842c5426634e7929541eC2318f3dCF7e"),
            "USDC",
            6,
            ("USDC", "2"),
            Eip3009,
        ),
        evm(
            Network::AVALANCHE,
            address!("B97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E"),
            "USDC",
            6,
            ("USD Coin", "2"),
            Eip3009,
        ),
        evm(
            Network::AVALANCHE_FUJI,
            address!("5425890298aed601595a70AB815c96711a31Bc65"),
            "USDC",
            6,
            ("USD Coin", "2"),
            Eip3009,
        ),
        evm(
            Network::POLYGON,
            address!("3c499c542cEF5E3811e1192ce70d8cC03d5c3359"),
            "USDC",
            6,
            ("USD Coin", "2"),
            Eip3009,
        ),
        evm(
            Network::POLYGON_AMOY,
            address!("41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582"),
            "USDC",
            6,
            ("USDC", "2"),
            Eip3009,
        ),
        evm(
            Network::evm(42161),
            address!("af88d065e77c8cC2239327C5EDb3A432268e5831"),
            "USDC",
            6,
            ("USD Coin", "2"),
            Eip3009,
        ),
        evm(
            Network::evm(421614),
            address!("75faf114eafb1BDbe2F0316DF893fd58CE46AA4d"),
            "USDC",
            6,
            ("USD Coin", "2"),
            Eip3009,
        ),
        evm(
            Network::MONAD,
            address!("754704Bc059F8C67012fEd69BC8A327a5aafb603"),
            "USDC",
            6,
            ("USDC", "2"),
            Eip3009,
        ),
        evm(
            Network::STABLE,
            address!("779Ded0c9e1022225f8E0630b35a9b54bE713736"),
            "USDT0",
            6,
            ("USDT0", "1"),
            Eip3009,
        ),
        evm(
            Network::STABLE_TESTNET,
            address!("78Cf24370174180738C5B8E352B6D14c83a6c9A9"),
            "USDT0",
            6,
            ("USDT0", "1"),
            Eip3009,
        ),
        evm(
            Network::MEGAETH,
            address!("FAfDdbb3FC7688494971a79cc65DCa3EF82079E7"),
            "USDM",
            18,
            ("MegaUSD", "1"),
            Permit,
        ),
        evm(
            Network::evm(31611),
            address!("118917a40FAF1CD7a13dB0Ef56C86De7973Ac503"),
            "mUSD",
            18,
            ("Mezo USD", "1"),
            Permit,
        ),
        evm(
            Network::ROBINHOOD,
            address!("5fc5360D0400a0Fd4f2af552ADD042D716F1d168"),
            "USDG",
            6,
            ("Global Dollar", "1"),
            Eip3009,
        ),
        solana(
            Network::SOLANA,
            "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        ),
        solana(
            Network::SOLANA_DEVNET,
            "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn registry_parses() {
        let registry = AssetRegistry::known();
        for asset in registry.iter() {
            if let AssetId::Solana(mint) = asset.id {
                assert_ne!(mint, SolanaAddress::new([0; 32]), "bad mint in table");
            }
        }
        let usdc = registry.default_for(&Network::BASE_SEPOLIA).unwrap();
        assert_eq!(usdc.eip712(), Some(("USDC", "2")));
        let megausd = registry.default_for(&Network::MEGAETH).unwrap();
        assert_eq!(megausd.decimals(), 18);
    }

    #[test]
    fn decimal_conversions() {
        let cases = [
            ("1.5", 6, "1500000"),
            ("0.000001", 6, "1"),
            ("90", 6, "90000000"),
            ("0.001", 18, "1000000000000000"),
            ("7", 0, "7"),
            ("1.50000000", 6, "1500000"),
        ];
        for (text, decimals, atomic) in cases {
            let amount = TokenAmount::from_decimal_str(text, decimals).unwrap();
            assert_eq!(amount.to_string(), atomic, "{text}");
        }
        assert_eq!(TokenAmount::from_u64(1_500_000).to_decimal_string(6), "1.5");
        assert_eq!(
            TokenAmount::from_u64(1).to_decimal_string(18),
            "0.000000000000000001"
        );
        assert_eq!(TokenAmount::ZERO.to_decimal_string(6), "0");
    }

    #[test]
    fn bad_decimal_text_is_refused_not_rounded() {
        for bad in [
            "",
            ".5",
            "1.",
            "-1",
            "+1",
            "1e6",
            "1.0000001",
            "1,5",
            " 1",
            "0x10",
            "1.2.3",
        ] {
            assert!(
                matches!(
                    TokenAmount::from_decimal_str(bad, 6),
                    Err(Error::InvalidAmount { .. })
                ),
                "{bad:?}"
            );
        }
        let huge = "9".repeat(80);
        assert!(TokenAmount::from_decimal_str(&huge, 0).is_err());
        assert!(TokenAmount::from_decimal_str(&"9".repeat(77), 18).is_err());
    }

    #[test]
    fn atomic_wire_form_is_strict() {
        assert_eq!(
            "10000".parse::<TokenAmount>().unwrap(),
            TokenAmount::from_u64(10000)
        );
        for bad in [
            "",
            "1.5",
            "-1",
            "1e3",
            "0x10",
            &"1".repeat(79),
            "115792089237316195423570985008687907853269984665640564039457584007913129639936",
        ] {
            assert!(bad.parse::<TokenAmount>().is_err(), "{bad}");
        }
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(max.parse::<TokenAmount>().unwrap().atomic(), U256::MAX);
        assert_eq!(
            serde_json::from_str::<TokenAmount>("12").unwrap(),
            TokenAmount::from_u64(12)
        );
        assert!(serde_json::from_str::<TokenAmount>("1.5").is_err());
        assert!(serde_json::from_str::<TokenAmount>("-3").is_err());
        assert!(serde_json::from_str::<TokenAmount>("true").is_err());
    }

    #[test]
    fn usd_value_rounds_up_and_respects_decimals() {
        let registry = AssetRegistry::known();
        let usdc = registry.default_for(&Network::BASE).unwrap();
        assert_eq!(
            usdc.usd_value(TokenAmount::from_u64(1_500_000)),
            Some(UsdMicros(1_500_000))
        );
        let megausd = registry.default_for(&Network::MEGAETH).unwrap();
        let one_dollar = TokenAmount::from_decimal_str("1", 18).unwrap();
        assert_eq!(megausd.usd_value(one_dollar), Some(UsdMicros(1_000_000)));
        assert_eq!(
            megausd.usd_value(TokenAmount::from_u64(1)),
            Some(UsdMicros(1))
        );
        assert_eq!("$12.5".parse::<UsdMicros>().unwrap().to_string(), "$12.50");
        assert_eq!(
            "500".parse::<UsdMicros>().unwrap(),
            UsdMicros::from_dollars(500)
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(limbs in any::<[u64; 4]>(), decimals in 0u8..=30) {
            let atomic = U256::from_limbs(limbs);
            let text = format_units(atomic, decimals);
            prop_assert_eq!(parse_units(&text, decimals).unwrap(), atomic);
        }

        #[test]
        fn parse_then_format_is_canonical(whole in "[0-9]{1,20}", fraction in "[0-9]{0,18}", decimals in 18u8..=24) {
            let text = if fraction.is_empty() { whole.clone() } else { format!("{whole}.{fraction}") };
            let atomic = parse_units(&text, decimals).unwrap();
            let back = format_units(atomic, decimals);
            // Canonical form: no leading zeros in the whole part, no trailing fractional zeros.
            let canonical_whole = whole.trim_start_matches('0');
            let canonical_whole = if canonical_whole.is_empty() { "0" } else { canonical_whole };
            let canonical_fraction = fraction.trim_end_matches('0');
            let expected = if canonical_fraction.is_empty() { canonical_whole.to_owned() } else { format!("{canonical_whole}.{canonical_fraction}") };
            prop_assert_eq!(back, expected);
        }

        #[test]
        fn excess_precision_is_always_refused(whole in "[0-9]{1,10}", fraction in "[0-9]{7,12}") {
            prop_assume!(fraction.trim_end_matches('0').len() > 6);
            let text = format!("{whole}.{fraction}");
            prop_assert!(parse_units(&text, 6).is_err());
        }

        #[test]
        fn checked_arithmetic_never_wraps(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b) = (TokenAmount::new(U256::from_limbs(a)), TokenAmount::new(U256::from_limbs(b)));
            match a.checked_add(b) {
                Some(sum) => { prop_assert!(sum >= a && sum >= b); prop_assert_eq!(sum.checked_sub(b), Some(a)); }
                None => prop_assert!(a.atomic().overflowing_add(b.atomic()).1),
            }
            if a < b { prop_assert_eq!(a.checked_sub(b), None); }
        }

        #[test]
        fn atomic_text_round_trips(limbs in any::<[u64; 4]>()) {
            let amount = TokenAmount::new(U256::from_limbs(limbs));
            prop_assert_eq!(amount.to_string().parse::<TokenAmount>().unwrap(), amount);
            let json = serde_json::to_string(&amount).unwrap();
            prop_assert_eq!(serde_json::from_str::<TokenAmount>(&json).unwrap(), amount);
        }
    }
}
