//! Choosing which offer to pay, under a spend policy.
//!
//! [`PaymentPolicy::select`] is the only way to get a [`Selected`] offer, and every payment
//! builder takes a [`Selected`]: an offer above the caps can therefore never reach a signer.

use crate::address::PayTo;
use crate::challenge::{Challenge, Requirement, Scheme};
use crate::error::Refusal;
use crate::money::{Asset, AssetId, AssetRegistry, TokenAmount, UsdMicros};
use crate::network::Network;
use crate::{Error, Result};

/// Which offers a client is willing to pay, and how much.
///
/// The default has no network preference (challenge order), known assets only, and a cap of
/// $500 per payment in USD stablecoins (the compute API's documented default).
#[derive(Clone, Debug)]
pub struct PaymentPolicy {
    networks: Vec<Network>,
    allowed_assets: Option<Vec<(Network, AssetId)>>,
    asset_caps: Vec<(Network, AssetId, TokenAmount)>,
    usd_cap: Option<UsdMicros>,
    pay_to_allowlist: Option<Vec<PayTo>>,
    allow_unknown_assets: bool,
}

impl Default for PaymentPolicy {
    fn default() -> Self {
        PaymentPolicy {
            networks: Vec::new(),
            allowed_assets: None,
            asset_caps: Vec::new(),
            usd_cap: Some(UsdMicros::from_dollars(500)),
            pay_to_allowlist: None,
            allow_unknown_assets: false,
        }
    }
}

impl PaymentPolicy {
    /// Pay only on these networks, preferring earlier ones.
    pub fn networks(mut self, networks: impl IntoIterator<Item = Network>) -> Self {
        self.networks = networks.into_iter().collect();
        self
    }

    /// The networks it pays on, in order of preference (empty: any).
    pub fn preferred_networks(&self) -> &[Network] {
        &self.networks
    }

    /// Pay only with these assets (in addition to the other rules).
    pub fn allow_assets(mut self, assets: impl IntoIterator<Item = (Network, AssetId)>) -> Self {
        self.allowed_assets = Some(assets.into_iter().collect());
        self
    }

    /// Never pay more than `cap` atomic units of this asset in one payment.
    pub fn cap_asset(mut self, network: Network, asset: AssetId, cap: TokenAmount) -> Self {
        self.asset_caps.push((network, asset, cap));
        self
    }

    /// Never pay more than this many dollars in one payment of a USD stablecoin; `None` lifts
    /// the dollar cap (per-asset caps still apply).
    pub fn usd_cap(mut self, cap: Option<UsdMicros>) -> Self {
        self.usd_cap = cap;
        self
    }

    /// Pay only these recipients.
    pub fn allow_pay_to(mut self, recipients: impl IntoIterator<Item = PayTo>) -> Self {
        self.pay_to_allowlist = Some(recipients.into_iter().collect());
        self
    }

    /// Also pay assets missing from the registry. Such an asset has no known dollar value,
    /// so only a [`PaymentPolicy::cap_asset`] cap bounds it; without one it is refused.
    pub fn allow_unknown_assets(mut self, allow: bool) -> Self {
        self.allow_unknown_assets = allow;
        self
    }

    /// Chooses the offer to pay.
    ///
    /// # Errors
    /// [`Error::NoAcceptableOffer`] listing every offer with the reason it was refused.
    pub fn select<'c>(&self, challenge: &'c Challenge) -> Result<Selected<'c>> {
        let mut refusals = Vec::new();
        let mut best: Option<(usize, Selected<'c>)> = None;
        for offer in challenge.offers() {
            let requirement = match offer.requirement() {
                Ok(requirement) => requirement,
                Err(error) => {
                    refusals.push(Refusal {
                        index: offer.index(),
                        offer: short_raw(offer.raw_json()),
                        reason: error.to_string(),
                    });
                    continue;
                }
            };
            match self.evaluate(requirement) {
                Ok((rank, asset)) => {
                    if best.as_ref().is_none_or(|(best_rank, _)| rank < *best_rank) {
                        best = Some((
                            rank,
                            Selected {
                                challenge,
                                requirement,
                                index: offer.index(),
                                asset,
                            },
                        ));
                    }
                }
                Err(reason) => refusals.push(Refusal {
                    index: offer.index(),
                    offer: requirement.summary(),
                    reason,
                }),
            }
        }
        best.map(|(_, selected)| selected)
            .ok_or(Error::NoAcceptableOffer { refusals })
    }

    /// `Ok((preference rank, known asset))` or the refusal reason.
    fn evaluate(&self, requirement: &Requirement) -> Result<(usize, Option<Asset>), String> {
        let network = requirement.network();
        if !scheme_supported(requirement.scheme(), network) {
            return Err(format!(
                "scheme `{}` on {network} is not supported by this build",
                requirement.scheme()
            ));
        }
        // `extra.paymentFlow`: `authorization` (verify, work, settle) is the default and the
        // only flow these builders implement; `escrow`, `upfront` or anything newer changes
        // when the money moves, so such an offer is never paid blindly.
        match requirement.extra().get("paymentFlow") {
            None => {}
            Some(serde_json::Value::String(flow)) if flow == "authorization" => {}
            Some(flow) => {
                return Err(format!(
                    "paymentFlow {flow} is not supported (only \"authorization\")"
                ));
            }
        }
        let rank = if self.networks.is_empty() {
            0
        } else {
            self.networks
                .iter()
                .position(|n| n == network)
                .ok_or_else(|| format!("network {network} is not among the allowed networks"))?
        };
        if let Some(allowlist) = &self.pay_to_allowlist
            && !allowlist.contains(&requirement.pay_to())
        {
            return Err(format!(
                "recipient {} is not on the payTo allowlist",
                requirement.pay_to()
            ));
        }
        let asset_id = requirement.asset();
        if let Some(allowed) = &self.allowed_assets
            && !allowed.iter().any(|(n, a)| n == network && *a == asset_id)
        {
            return Err(format!("asset {asset_id} is not among the allowed assets"));
        }
        let amount = requirement.amount();
        let asset_cap = self
            .asset_caps
            .iter()
            .find(|(n, a, _)| n == network && *a == asset_id)
            .map(|(_, _, cap)| *cap);
        if let Some(cap) = asset_cap
            && amount > cap
        {
            return Err(format!(
                "amount {amount} is above the cap of {cap} atomic units for this asset"
            ));
        }
        let known = AssetRegistry::known().find(network, &asset_id).cloned();
        match &known {
            None if !self.allow_unknown_assets => {
                return Err(format!(
                    "asset {asset_id} is not a known asset on {network}; allow unknown assets explicitly to pay it"
                ));
            }
            None if asset_cap.is_none() => {
                return Err(format!(
                    "asset {asset_id} is unknown, so it needs an explicit per-asset cap"
                ));
            }
            None => {}
            Some(asset) => {
                if let Some(cap) = self.usd_cap {
                    if asset.is_usd_stable() {
                        match asset.usd_value(amount) {
                            Some(value) if value <= cap => {}
                            Some(value) => {
                                return Err(format!(
                                    "{} ({value}) is above the cap of {cap}",
                                    asset.display_amount(amount)
                                ));
                            }
                            None => {
                                return Err(format!(
                                    "{} is above the cap of {cap}",
                                    asset.display_amount(amount)
                                ));
                            }
                        }
                    } else if asset_cap.is_none() {
                        return Err(format!(
                            "{} has no dollar value and no per-asset cap",
                            asset.symbol()
                        ));
                    }
                }
            }
        }
        Ok((rank, known))
    }
}

fn scheme_supported(scheme: &Scheme, network: &Network) -> bool {
    let evm = cfg!(feature = "evm")
        && network.is_evm()
        && matches!(scheme, Scheme::Exact | Scheme::Permit);
    let solana = cfg!(feature = "solana") && network.is_solana() && *scheme == Scheme::Exact;
    evm || solana
}

fn short_raw(raw: &str) -> String {
    match raw.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &raw[..end]),
        None => raw.to_owned(),
    }
}

/// An offer that passed a [`PaymentPolicy`], with the challenge it came from.
#[derive(Clone, Debug)]
pub struct Selected<'c> {
    challenge: &'c Challenge,
    requirement: &'c Requirement,
    index: usize,
    asset: Option<Asset>,
}

impl<'c> Selected<'c> {
    /// The challenge.
    pub fn challenge(&self) -> &'c Challenge {
        self.challenge
    }
    /// The chosen requirement.
    pub fn requirement(&self) -> &'c Requirement {
        self.requirement
    }
    /// Its index in `accepts`.
    pub fn index(&self) -> usize {
        self.index
    }
    /// The registry entry for its asset, when known.
    pub fn asset(&self) -> Option<&Asset> {
        self.asset.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::challenge::{PaymentRequired, RequirementSpec, ResourceInfo};
    use crate::network::ChainFamily;
    use proptest::prelude::*;
    use serde_json::Map;

    fn spec(network: Network, amount: u64) -> RequirementSpec {
        let asset = AssetRegistry::known().default_for(&network).unwrap().id();
        let pay_to = match network.family() {
            ChainFamily::Solana => "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4"
                .parse()
                .unwrap(),
            _ => "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
                .parse()
                .unwrap(),
        };
        RequirementSpec {
            scheme: Scheme::Exact,
            network,
            amount: TokenAmount::from_u64(amount),
            asset,
            pay_to,
            max_timeout_seconds: 60,
            extra: Map::new(),
        }
    }

    fn challenge(specs: Vec<RequirementSpec>) -> Challenge {
        let required = PaymentRequired {
            resource: ResourceInfo {
                url: "http://x/".into(),
                description: None,
                mime_type: None,
            },
            error: String::new(),
            accepts: specs,
            extensions: Default::default(),
        };
        Challenge::from_v2_header(&required.to_v2_header()).unwrap()
    }

    #[test]
    fn unknown_payment_flows_are_refused_with_the_reason() {
        let mut escrow = spec(Network::BASE, 1_000);
        escrow
            .extra
            .insert("paymentFlow".into(), serde_json::json!("escrow"));
        let mut authorization = spec(Network::BASE_SEPOLIA, 1_000);
        authorization
            .extra
            .insert("paymentFlow".into(), serde_json::json!("authorization"));
        let c = challenge(vec![escrow.clone(), authorization]);
        let selected = PaymentPolicy::default().select(&c).unwrap();
        assert_eq!(selected.index(), 1);
        let only_escrow = challenge(vec![escrow]);
        let Err(Error::NoAcceptableOffer { refusals }) =
            PaymentPolicy::default().select(&only_escrow)
        else {
            panic!("an escrow offer was selected");
        };
        assert!(
            refusals[0].reason.contains("paymentFlow \"escrow\""),
            "{refusals:?}"
        );
    }

    #[test]
    fn prefers_networks_in_order_and_explains_refusals() {
        let c = challenge(vec![
            spec(Network::BASE, 1_000_000),
            spec(Network::BASE_SEPOLIA, 1_000_000),
        ]);
        let policy = PaymentPolicy::default().networks([Network::BASE_SEPOLIA, Network::BASE]);
        assert_eq!(policy.select(&c).unwrap().index(), 1);
        let policy = PaymentPolicy::default().usd_cap(Some(UsdMicros::from_dollars(0)));
        let err = policy.select(&c).unwrap_err();
        let Error::NoAcceptableOffer { refusals } = &err else {
            panic!("{err}")
        };
        assert_eq!(refusals.len(), 2);
        assert!(err.to_string().contains("above the cap of $0.00"), "{err}");
    }

    #[test]
    fn unknown_assets_need_opt_in_and_a_cap() {
        let mut odd = spec(Network::BASE, 5);
        odd.asset = AssetId::Evm(
            "0x1111111111111111111111111111111111111111"
                .parse()
                .unwrap(),
        );
        let c = challenge(vec![odd.clone()]);
        assert!(
            PaymentPolicy::default()
                .select(&c)
                .unwrap_err()
                .to_string()
                .contains("not a known asset")
        );
        assert!(
            PaymentPolicy::default()
                .allow_unknown_assets(true)
                .select(&c)
                .is_err()
        );
        let ok = PaymentPolicy::default()
            .allow_unknown_assets(true)
            .cap_asset(Network::BASE, odd.asset, TokenAmount::from_u64(5));
        assert!(ok.select(&c).is_ok());
    }

    #[test]
    fn pay_to_allowlist_and_bad_offers_are_reported() {
        let c = challenge(vec![spec(Network::BASE, 1)]);
        let other: PayTo = "0x0000000000000000000000000000000000000001"
            .parse()
            .unwrap();
        assert!(
            PaymentPolicy::default()
                .allow_pay_to([other])
                .select(&c)
                .is_err()
        );
        let body = br#"{"x402Version":1,"accepts":[{"scheme":"exact","network":"nowhere","maxAmountRequired":"1","payTo":"0x0000000000000000000000000000000000000001"}]}"#;
        let c = Challenge::from_body(body).unwrap();
        let err = PaymentPolicy::default().select(&c).unwrap_err();
        assert!(
            err.to_string().contains("unknown network `nowhere`"),
            "{err}"
        );
    }

    proptest! {
        #[test]
        fn never_selects_above_the_caps(amounts in proptest::collection::vec(0u64..5_000_000_000u64, 1..6), usd_cap in 0u64..3_000_000_000u64, asset_cap in 0u64..5_000_000_000u64) {
            let networks = [Network::BASE, Network::BASE_SEPOLIA, Network::MEGAETH, Network::SOLANA_DEVNET];
            let specs: Vec<_> = amounts.iter().enumerate().map(|(i, a)| {
                let network = networks[i % networks.len()].clone();
                let mut s = spec(network.clone(), *a);
                if network == Network::MEGAETH { s.scheme = Scheme::Permit; s.amount = s.amount.checked_mul(1_000_000_000_000).unwrap(); }
                s
            }).collect();
            let c = challenge(specs);
            let base_usdc = AssetRegistry::known().default_for(&Network::BASE).unwrap().id();
            let policy = PaymentPolicy::default().usd_cap(Some(UsdMicros(usd_cap))).cap_asset(Network::BASE, base_usdc, TokenAmount::from_u64(asset_cap));
            if let Ok(selected) = policy.select(&c) {
                let requirement = selected.requirement();
                let asset = selected.asset().unwrap();
                prop_assert!(asset.usd_value(requirement.amount()).unwrap() <= UsdMicros(usd_cap));
                if requirement.network() == &Network::BASE {
                    prop_assert!(requirement.amount() <= TokenAmount::from_u64(asset_cap));
                }
            }
        }
    }
}
