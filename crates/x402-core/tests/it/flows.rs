//! Client builds a payment from a server's challenge; the server verifies it. One test per
//! scheme and version, plus the policy in between.

use alloy_primitives::U256;
use serde_json::{Map, json};
use x402_core::svm::{self, SolanaChainState, TokenProgram, VerifyConfig};
use x402_core::{
    AssetRegistry, Challenge, EvmSigner, FixedClock, LocalEvmSigner, LocalSolanaSigner, Network,
    PayTo, PaymentPayload, PaymentPolicy, PaymentRequired, RequirementSpec, ResourceInfo, Scheme,
    SolanaSigner, TokenAmount, UsdMicros, evm,
};

const NOW: u64 = 1_800_000_000;
const HARDHAT_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn facilitator_fee_payer() -> LocalSolanaSigner {
    LocalSolanaSigner::from_secret([42; 32])
}

/// The devnet's three offers for one resource.
fn devnet_offers(usd: u64) -> PaymentRequired {
    let registry = AssetRegistry::known();
    let pay_to_evm: PayTo = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
        .parse()
        .unwrap();
    let mut offers = Vec::new();
    for network in [
        Network::BASE_SEPOLIA,
        Network::MEGAETH,
        Network::SOLANA_DEVNET,
    ] {
        let asset = registry.default_for(&network).unwrap();
        let amount = TokenAmount::from_decimal_str(&usd.to_string(), asset.decimals()).unwrap();
        let mut extra = Map::new();
        if let Some((name, version)) = asset.eip712() {
            extra.insert("name".into(), json!(name));
            extra.insert("version".into(), json!(version));
        }
        let (scheme, pay_to) = match network.family() {
            x402_core::ChainFamily::Solana => {
                extra.insert(
                    "feePayer".into(),
                    json!(facilitator_fee_payer().pubkey().to_string()),
                );
                (
                    Scheme::Exact,
                    "2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4"
                        .parse()
                        .unwrap(),
                )
            }
            _ if network == Network::MEGAETH => {
                extra.insert(
                    "facilitatorAddress".into(),
                    json!("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"),
                );
                (Scheme::Permit, pay_to_evm)
            }
            _ => (Scheme::Exact, pay_to_evm),
        };
        offers.push(RequirementSpec {
            scheme,
            network,
            amount,
            asset: asset.id(),
            pay_to,
            max_timeout_seconds: 120,
            extra,
        });
    }
    PaymentRequired {
        resource: ResourceInfo {
            url: "http://127.0.0.1/compute/credits/topup".into(),
            description: Some("top up".into()),
            mime_type: None,
        },
        error: "payment required".into(),
        accepts: offers,
        extensions: Default::default(),
    }
}

fn both_versions(required: &PaymentRequired) -> [Challenge; 2] {
    [
        Challenge::from_body(&required.to_v1_body()).unwrap(),
        Challenge::from_v2_header(&required.to_v2_header()).unwrap(),
    ]
}

#[test]
fn evm_exact_round_trip_in_both_versions() {
    let signer = LocalEvmSigner::from_hex(HARDHAT_1).unwrap();
    for challenge in both_versions(&devnet_offers(25)) {
        let selected = PaymentPolicy::default()
            .networks([Network::BASE_SEPOLIA])
            .select(&challenge)
            .unwrap();
        let header = evm::exact::pay(
            &selected,
            &signer,
            &FixedClock::from_unix(NOW),
            &mut |b: &mut [u8]| b.fill(9),
        )
        .unwrap();
        let payment = PaymentPayload::from_header_value(header.value()).unwrap();
        // The server looks its offer up by the payment's network.
        let offer = challenge
            .offers()
            .iter()
            .filter_map(|o| o.requirement().ok())
            .find(|r| r.network() == payment.network())
            .unwrap();
        let verified = evm::exact::verify(&payment, offer, NOW + 30).unwrap();
        assert_eq!(verified.payer, signer.address());
        assert_eq!(
            verified.authorization.value,
            TokenAmount::from_u64(25_000_000)
        );
    }
}

#[test]
fn megaeth_permit_round_trip_with_18_decimals() {
    let signer = LocalEvmSigner::from_hex(HARDHAT_1).unwrap();
    for challenge in both_versions(&devnet_offers(3)) {
        let selected = PaymentPolicy::default()
            .networks([Network::MEGAETH])
            .select(&challenge)
            .unwrap();
        assert_eq!(selected.asset().unwrap().decimals(), 18);
        let header = evm::permit::pay(
            &selected,
            &signer,
            U256::from(5),
            &FixedClock::from_unix(NOW),
        )
        .unwrap();
        let payment = PaymentPayload::from_header_value(header.value()).unwrap();
        let verified =
            evm::permit::verify(&payment, selected.requirement(), NOW, Some(U256::from(5)))
                .unwrap();
        assert_eq!(verified.permit.value.to_string(), "3000000000000000000");
    }
}

#[test]
fn solana_round_trip_in_both_versions() {
    let payer = LocalSolanaSigner::from_secret([8; 32]);
    let chain = SolanaChainState {
        recent_blockhash: [1; 32],
        decimals: 6,
        token_program: TokenProgram::Token,
    };
    let config = VerifyConfig {
        decimals: Some(6),
        ..VerifyConfig::new(vec![facilitator_fee_payer().pubkey()])
    };
    for challenge in both_versions(&devnet_offers(7)) {
        let selected = PaymentPolicy::default()
            .networks([Network::SOLANA_DEVNET])
            .select(&challenge)
            .unwrap();
        let header = svm::pay(&selected, &payer, &chain, &mut |b: &mut [u8]| b.fill(4)).unwrap();
        let payment = PaymentPayload::from_header_value(header.value()).unwrap();
        let mut verified = svm::verify(&payment, selected.requirement(), &config).unwrap();
        assert_eq!(verified.payer, payer.pubkey());
        verified.cosign(&facilitator_fee_payer()).unwrap();
        assert!(
            verified
                .transaction
                .verify_with_results()
                .into_iter()
                .all(|ok| ok)
        );
    }
}

#[test]
fn the_policy_stands_between_challenge_and_signer() {
    let challenge = Challenge::from_v2_header(&devnet_offers(600).to_v2_header()).unwrap();
    let err = PaymentPolicy::default().select(&challenge).unwrap_err();
    let text = err.to_string();
    for needle in [
        "accepts[0]",
        "accepts[1]",
        "accepts[2]",
        "above the cap of $500.00",
    ] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    let cheap = PaymentPolicy::default().usd_cap(Some(UsdMicros::from_dollars(1000)));
    assert!(cheap.select(&challenge).is_ok());
}
