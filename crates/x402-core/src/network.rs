//! Networks as CAIP-2 identifiers, with the x402 v1 names.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A chain identified by CAIP-2 (`eip155:8453`, `solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp`).
///
/// Parses both CAIP-2 and the x402 v1 names (`base`, `solana-devnet`, `megaeth`, ...) and
/// always displays CAIP-2. [`Network::v1_name`] gives the v1 name back where one exists.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network {
    caip2: Cow<'static, str>,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Kind {
    Evm(u64),
    Solana,
    Other,
}

/// The namespace family of a [`Network`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ChainFamily {
    /// `eip155:*`
    Evm,
    /// `solana:*`
    Solana,
    /// Any other CAIP-2 namespace; no scheme here can pay on it.
    Other,
}

macro_rules! networks {
    ($( $(#[$doc:meta])* $const_name:ident = $caip2:literal, $kind:expr, $v1:expr; )*) => {
        impl Network {
            $( $(#[$doc])* pub const $const_name: Network = Network { caip2: Cow::Borrowed($caip2), kind: $kind }; )*
        }
        /// (v1 name, CAIP-2) pairs from the reference table.
        const V1_NAMES: &[(&str, &str)] = &[ $( ($v1, $caip2), )* ];
    };
}

networks! {
    /// Base mainnet, v1 `base`.
    BASE = "eip155:8453", Kind::Evm(8453), "base";
    /// Base Sepolia, v1 `base-sepolia`.
    BASE_SEPOLIA = "eip155:84532", Kind::Evm(84532), "base-sepolia";
    /// Avalanche C-Chain, v1 `avalanche`.
    AVALANCHE = "eip155:43114", Kind::Evm(43114), "avalanche";
    /// Avalanche Fuji, v1 `avalanche-fuji`.
    AVALANCHE_FUJI = "eip155:43113", Kind::Evm(43113), "avalanche-fuji";
    /// Polygon PoS, v1 `polygon`.
    POLYGON = "eip155:137", Kind::Evm(137), "polygon";
    /// Polygon Amoy, v1 `polygon-amoy`.
    POLYGON_AMOY = "eip155:80002", Kind::Evm(80002), "polygon-amoy";
    /// Sei, v1 `sei`.
    SEI = "eip155:1329", Kind::Evm(1329), "sei";
    /// Sei testnet, v1 `sei-testnet`.
    SEI_TESTNET = "eip155:1328", Kind::Evm(1328), "sei-testnet";
    /// IoTeX, v1 `iotex`.
    IOTEX = "eip155:4689", Kind::Evm(4689), "iotex";
    /// peaq, v1 `peaq`.
    PEAQ = "eip155:3338", Kind::Evm(3338), "peaq";
    /// Ethereum mainnet, v1 `ethereum`.
    ETHEREUM = "eip155:1", Kind::Evm(1), "ethereum";
    /// Sepolia, v1 `sepolia`.
    SEPOLIA = "eip155:11155111", Kind::Evm(11155111), "sepolia";
    /// Abstract, v1 `abstract`.
    ABSTRACT = "eip155:2741", Kind::Evm(2741), "abstract";
    /// Abstract testnet, v1 `abstract-testnet`.
    ABSTRACT_TESTNET = "eip155:11124", Kind::Evm(11124), "abstract-testnet";
    /// Story, v1 `story`.
    STORY = "eip155:1514", Kind::Evm(1514), "story";
    /// EDU Chain, v1 `educhain`.
    EDUCHAIN = "eip155:41923", Kind::Evm(41923), "educhain";
    /// SKALE Base Sepolia, v1 `skale-base-sepolia`.
    SKALE_BASE_SEPOLIA = "eip155:324705682", Kind::Evm(324705682), "skale-base-sepolia";
    /// MegaETH, v1 `megaeth`.
    MEGAETH = "eip155:4326", Kind::Evm(4326), "megaeth";
    /// Monad, v1 `monad`.
    MONAD = "eip155:143", Kind::Evm(143), "monad";
    /// Stable, v1 `stable`.
    STABLE = "eip155:988", Kind::Evm(988), "stable";
    /// Stable testnet, v1 `stable-testnet`.
    STABLE_TESTNET = "eip155:2201", Kind::Evm(2201), "stable-testnet";
    /// XDC, v1 `xdc`.
    XDC = "eip155:50", Kind::Evm(50), "xdc";
    /// XRPL EVM, v1 `xrpl-evm`.
    XRPL_EVM = "eip155:1440000", Kind::Evm(1440000), "xrpl-evm";
    /// Celo, v1 `celo`.
    CELO = "eip155:42220", Kind::Evm(42220), "celo";
    /// Celo Sepolia, v1 `celo-sepolia`.
    CELO_SEPOLIA = "eip155:11142220", Kind::Evm(11142220), "celo-sepolia";
    /// Radius, v1 `radius`.
    RADIUS = "eip155:723487", Kind::Evm(723487), "radius";
    /// Radius testnet, v1 `radius-testnet`.
    RADIUS_TESTNET = "eip155:72344", Kind::Evm(72344), "radius-testnet";
    /// Robinhood chain, v1 `robinhood` (x402-compute scripts only).
    ROBINHOOD = "eip155:4663", Kind::Evm(4663), "robinhood";
    /// Solana mainnet, v1 `solana`.
    SOLANA = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", Kind::Solana, "solana";
    /// Solana devnet, v1 `solana-devnet`.
    SOLANA_DEVNET = "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1", Kind::Solana, "solana-devnet";
    /// Solana testnet, v1 `solana-testnet`.
    SOLANA_TESTNET = "solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z", Kind::Solana, "solana-testnet";
}

impl Network {
    /// An EVM network by chain id.
    pub fn evm(chain_id: u64) -> Network {
        Network {
            caip2: Cow::Owned(format!("eip155:{chain_id}")),
            kind: Kind::Evm(chain_id),
        }
    }

    /// The CAIP-2 form.
    pub fn as_str(&self) -> &str {
        &self.caip2
    }

    /// The x402 v1 name, if the reference table has one.
    pub fn v1_name(&self) -> Option<&'static str> {
        V1_NAMES
            .iter()
            .find(|(_, caip2)| *caip2 == self.caip2)
            .map(|(name, _)| *name)
    }

    /// The EVM chain id, for `eip155:*` networks.
    pub fn chain_id(&self) -> Option<u64> {
        match self.kind {
            Kind::Evm(id) => Some(id),
            _ => None,
        }
    }

    /// Which family of chains this is.
    pub fn family(&self) -> ChainFamily {
        match self.kind {
            Kind::Evm(_) => ChainFamily::Evm,
            Kind::Solana => ChainFamily::Solana,
            Kind::Other => ChainFamily::Other,
        }
    }

    /// Whether this is an EVM chain.
    pub fn is_evm(&self) -> bool {
        self.family() == ChainFamily::Evm
    }

    /// Whether this is a Solana cluster.
    pub fn is_solana(&self) -> bool {
        self.family() == ChainFamily::Solana
    }

    fn parse_caip2(input: &str) -> Result<Network> {
        let unknown = || Error::UnknownNetwork(input.to_owned());
        let (namespace, reference) = input.split_once(':').ok_or_else(unknown)?;
        // CAIP-2: namespace [-a-z0-9]{3,8}, reference [-_a-zA-Z0-9]{1,32}.
        let namespace_ok = (3..=8).contains(&namespace.len())
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let reference_ok = (1..=32).contains(&reference.len())
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !namespace_ok || !reference_ok {
            return Err(unknown());
        }
        if let Some((_, caip2)) = V1_NAMES.iter().find(|(_, caip2)| *caip2 == input) {
            return Network::parse_known(caip2).ok_or_else(unknown);
        }
        let kind = match namespace {
            "eip155" => {
                let canonical = !reference.starts_with('0') || reference == "0";
                match reference.parse::<u64>() {
                    Ok(id) if canonical && reference.bytes().all(|b| b.is_ascii_digit()) => {
                        Kind::Evm(id)
                    }
                    _ => return Err(unknown()),
                }
            }
            "solana" => Kind::Solana,
            _ => Kind::Other,
        };
        Ok(Network {
            caip2: Cow::Owned(input.to_owned()),
            kind,
        })
    }

    fn parse_known(caip2: &'static str) -> Option<Network> {
        let (namespace, reference) = caip2.split_once(':')?;
        let kind = match namespace {
            "eip155" => Kind::Evm(reference.parse().ok()?),
            "solana" => Kind::Solana,
            _ => Kind::Other,
        };
        Some(Network {
            caip2: Cow::Borrowed(caip2),
            kind,
        })
    }
}

impl FromStr for Network {
    type Err = Error;

    /// Parses CAIP-2, or a v1 name (case-insensitive) from the reference table.
    fn from_str(input: &str) -> Result<Network> {
        if input.contains(':') {
            return Network::parse_caip2(input);
        }
        V1_NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(input))
            .and_then(|(_, caip2)| Network::parse_known(caip2))
            .ok_or_else(|| Error::UnknownNetwork(input.to_owned()))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.caip2)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Network({})", self.caip2)
    }
}

impl serde::Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.caip2)
    }
}

impl<'de> serde::Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_names_and_caip2_agree() {
        for (name, caip2) in V1_NAMES {
            let by_name: Network = name.parse().unwrap();
            let by_id: Network = caip2.parse().unwrap();
            assert_eq!(by_name, by_id);
            assert_eq!(by_name.to_string(), *caip2);
            assert_eq!(by_id.v1_name(), Some(*name));
        }
    }

    #[test]
    fn constants_match_the_table() {
        assert_eq!("base".parse::<Network>().unwrap(), Network::BASE);
        assert_eq!(Network::BASE_SEPOLIA.chain_id(), Some(84532));
        assert_eq!(
            "BASE-SEPOLIA".parse::<Network>().unwrap(),
            Network::BASE_SEPOLIA
        );
        assert_eq!(Network::evm(4326), Network::MEGAETH);
        assert!(Network::SOLANA_DEVNET.is_solana());
        assert_eq!(Network::SOLANA_DEVNET.v1_name(), Some("solana-devnet"));
    }

    #[test]
    fn unknown_and_malformed_networks_are_errors() {
        for bad in [
            "",
            "basee",
            "eip155:",
            "eip155:abc",
            "eip155:08453",
            "EIP155:1",
            "x:1",
            ":",
            "eip155:99999999999999999999999",
        ] {
            assert!(
                matches!(bad.parse::<Network>(), Err(Error::UnknownNetwork(_))),
                "{bad}"
            );
        }
        let unknown_chain: Network = "eip155:42161".parse().unwrap();
        assert_eq!(unknown_chain.chain_id(), Some(42161));
        assert_eq!(unknown_chain.v1_name(), None);
        let other: Network = "cosmos:cosmoshub-4".parse().unwrap();
        assert_eq!(other.family(), ChainFamily::Other);
    }

    #[test]
    fn serde_uses_caip2_and_reads_v1() {
        let n: Network = serde_json::from_str("\"base\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"eip155:8453\"");
    }
}
