use alloy_primitives::{B256, U256, address, b256};
use alloy_sol_types::SolStruct;

use super::exact::{self, Authorization, ExactEvmPayload};
use super::permit;
use super::types::TransferWithAuthorization;
use super::*;
use crate::challenge::{Challenge, X402Version};
use crate::clock::FixedClock;
use crate::money::TokenAmount;
use crate::payload::PaymentPayload;
use crate::policy::PaymentPolicy;
use crate::signer::{EvmSigner, LocalEvmSigner};

const SPEC_SIGNATURE: &str = "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c";
const HARDHAT_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const SPEC_NOW: u64 = 1_740_672_100;

fn v1_challenge(network: &str, name: &str, asset: &str) -> Challenge {
    let body = format!(
        r#"{{"x402Version":1,"accepts":[{{"scheme":"exact","network":"{network}","maxAmountRequired":"10000","asset":"{asset}","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","resource":"https://api.example.com/premium-data","description":"","maxTimeoutSeconds":60,"extra":{{"name":"{name}","version":"2"}}}}]}}"#
    );
    Challenge::from_body(body.as_bytes()).unwrap()
}

fn spec_authorization() -> Authorization {
    Authorization {
        from: address!("857b06519E91e3A54538791bDbb0E22373e36b66"),
        to: address!("209693Bc6afc0C5328bA36FaF03C514EF312287C"),
        value: TokenAmount::from_u64(10000),
        valid_after: 1740672089,
        valid_before: 1740672154,
        nonce: b256!("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"),
    }
}

fn spec_payload() -> ExactEvmPayload {
    ExactEvmPayload {
        signature: SPEC_SIGNATURE.into(),
        authorization: spec_authorization(),
    }
}

#[test]
fn spec_eip3009_example_golden() {
    let challenge = v1_challenge(
        "base-sepolia",
        "USDC",
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    );
    let requirement = challenge.offers()[0].requirement().unwrap();
    let domain = token_domain(requirement).unwrap();
    assert_eq!(
        domain.separator(),
        b256!("71f17a3b2ff373b803d70a5a07c046c1a2bc8e89c09ef722fcb047abe94c9818")
    );
    let typed = TransferWithAuthorization {
        from: spec_authorization().from,
        to: spec_authorization().to,
        value: U256::from(10000),
        validAfter: U256::from(1740672089u64),
        validBefore: U256::from(1740672154u64),
        nonce: spec_authorization().nonce,
    };
    assert_eq!(
        typed.eip712_hash_struct(),
        b256!("49ad644555c7bdf3ea4fc022a4940ae5589b230b1dde0065c5504fa19bbe39a4")
    );
    let digest = exact::signing_hash(requirement, &spec_authorization()).unwrap();
    assert_eq!(
        digest,
        b256!("f256992871671abcb27ff92885a7afa46218724e5fc0bac35d050115aa1d22e6")
    );
    let verified = exact::verify_payload(&spec_payload(), requirement, SPEC_NOW).unwrap();
    assert_eq!(
        verified.payer,
        address!("857b06519E91e3A54538791bDbb0E22373e36b66")
    );
}

#[test]
fn base_mainnet_domain_separator() {
    let challenge = v1_challenge(
        "base",
        "USD Coin",
        "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
    );
    let domain = token_domain(challenge.offers()[0].requirement().unwrap()).unwrap();
    assert_eq!(
        domain.separator(),
        b256!("02fa7265e7c5d81118673727957699e4d68f74cd74b7db77da710fe8a2c7834f")
    );
}

#[test]
fn the_spec_signature_does_not_verify_under_another_domain() {
    for (network, name) in [("base-sepolia", "USD Coin"), ("base", "USDC")] {
        let challenge = v1_challenge(network, name, "0x036CbD53842c5426634e7929541eC2318f3dCF7e");
        let err = exact::verify_payload(
            &spec_payload(),
            challenge.offers()[0].requirement().unwrap(),
            SPEC_NOW,
        )
        .unwrap_err();
        assert_eq!(
            err.invalid_reason(),
            Some(InvalidReason::EvmSignature),
            "{err}"
        );
    }
}

/// A v1 challenge for Base Sepolia USDC.
fn base_sepolia_usdc() -> Challenge {
    v1_challenge(
        "base-sepolia",
        "USDC",
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    )
}

/// `authorization` signed by `signer` for `requirement`.
fn signed(
    signer: &LocalEvmSigner,
    requirement: &crate::challenge::Requirement,
    authorization: Authorization,
) -> ExactEvmPayload {
    let digest = exact::signing_hash(requirement, &authorization).unwrap();
    ExactEvmPayload {
        signature: signature_hex(&signer.sign_hash(&digest).unwrap()),
        authorization,
    }
}

#[test]
fn verification_rejects_each_kind_of_bad_payment() {
    let challenge = base_sepolia_usdc();
    let requirement = challenge.offers()[0].requirement().unwrap();
    let reason = |payload: &ExactEvmPayload, now: u64| {
        exact::verify_payload(payload, requirement, now)
            .unwrap_err()
            .invalid_reason()
            .unwrap()
    };
    assert_eq!(
        reason(&spec_payload(), 1740672154),
        InvalidReason::ValidBefore
    );
    assert_eq!(
        reason(&spec_payload(), 1740672088),
        InvalidReason::ValidAfter
    );
    let mut tampered = spec_payload();
    tampered.authorization.value = TokenAmount::from_u64(10001);
    assert_eq!(reason(&tampered, SPEC_NOW), InvalidReason::EvmSignature);
    let mut bad_sig = spec_payload();
    bad_sig.signature = "0x1234".into();
    assert_eq!(reason(&bad_sig, SPEC_NOW), InvalidReason::EvmSignature);
    bad_sig.signature = "nothex".into();
    assert_eq!(reason(&bad_sig, SPEC_NOW), InvalidReason::EvmSignature);

    // Correctly signed payments that do not match the offer.
    let signer = LocalEvmSigner::from_hex(HARDHAT_0).unwrap();
    let sign = |authorization: Authorization| signed(&signer, requirement, authorization);
    let good = exact::authorization_for(
        requirement,
        signer.address(),
        SPEC_NOW,
        B256::repeat_byte(1),
    )
    .unwrap();
    assert!(exact::verify_payload(&sign(good.clone()), requirement, SPEC_NOW).is_ok());
    let mut over = good.clone();
    over.value = TokenAmount::from_u64(10001);
    assert_eq!(reason(&sign(over), SPEC_NOW), InvalidReason::ValueMismatch);
    let mut under = good.clone();
    under.value = TokenAmount::from_u64(9999);
    assert_eq!(reason(&sign(under), SPEC_NOW), InvalidReason::ValueMismatch);
    let mut elsewhere = good.clone();
    elsewhere.to = address!("0000000000000000000000000000000000000001");
    assert_eq!(
        reason(&sign(elsewhere), SPEC_NOW),
        InvalidReason::RecipientMismatch
    );
    // Someone else's signature over the same authorization.
    let mut forged = sign(good.clone());
    forged.authorization.from = address!("857b06519E91e3A54538791bDbb0E22373e36b66");
    assert_eq!(reason(&forged, SPEC_NOW), InvalidReason::EvmSignature);
    // High-s twin of a valid signature.
    let valid = signer
        .sign_hash(&exact::signing_hash(requirement, &good).unwrap())
        .unwrap();
    let high_s = alloy_primitives::Signature::new(
        valid.r(),
        alloy_primitives::U256::from_be_bytes(SECP256K1N) - valid.s(),
        !valid.v(),
    );
    let twin = ExactEvmPayload {
        signature: signature_hex(&high_s),
        authorization: good,
    };
    assert_eq!(reason(&twin, SPEC_NOW), InvalidReason::EvmSignature);
}

#[test]
fn authorizations_valid_for_longer_than_the_offer_allows_are_refused() {
    let challenge = base_sepolia_usdc();
    let requirement = challenge.offers()[0].requirement().unwrap();
    let signer = LocalEvmSigner::from_hex(HARDHAT_0).unwrap();
    let sign = |authorization: Authorization| signed(&signer, requirement, authorization);
    let good = exact::authorization_for(
        requirement,
        signer.address(),
        SPEC_NOW,
        B256::repeat_byte(2),
    )
    .unwrap();
    // What our client builds, and the official SDKs' shape (validAfter 0): accepted, also
    // when the client's clock runs up to 600 s ahead of ours.
    assert!(exact::verify_payload(&sign(good.clone()), requirement, SPEC_NOW).is_ok());
    let mut from_zero = good.clone();
    from_zero.valid_after = 0;
    assert!(exact::verify_payload(&sign(from_zero), requirement, SPEC_NOW).is_ok());
    assert!(exact::verify_payload(&sign(good.clone()), requirement, SPEC_NOW - 600).is_ok());
    // Valid for longer than the offer allows (a captured authorization usable for days):
    // refused.
    let latest = SPEC_NOW + requirement.max_timeout_seconds() + CLOCK_SKEW_SECONDS;
    for before in [latest + 1, SPEC_NOW + 3 * 86_400, u64::MAX] {
        let mut long = good.clone();
        long.valid_before = before;
        let refused = exact::verify_payload(&sign(long), requirement, SPEC_NOW).unwrap_err();
        assert_eq!(
            refused.invalid_reason(),
            Some(InvalidReason::ValidBefore),
            "valid until {before}: {refused}"
        );
    }
}

const SECP256K1N: [u8; 32] =
    alloy_primitives::hex!("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");

#[test]
fn pay_builds_v1_and_v2_headers_that_verify() {
    let signer = LocalEvmSigner::from_hex(HARDHAT_0).unwrap();
    let clock = FixedClock::from_unix(SPEC_NOW);
    let mut counter = 0u8;
    let mut rng = |buf: &mut [u8]| {
        counter += 1;
        buf.fill(counter)
    };
    let v1 = v1_challenge(
        "base-sepolia",
        "USDC",
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    );
    let v2_json = r#"{"x402Version":2,"resource":{"url":"https://api.example.com/x"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036cbd53842c5426634e7929541ec2318f3dcf7e","payTo":"0x209693bc6afc0c5328ba36faf03c514ef312287c","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2","unknownKey":[1,2.50]}}],"extensions":{"bazaar":{"info":{}}}}"#;
    let v2 = Challenge::from_v2_header(&crate::encoding::encode(v2_json.as_bytes())).unwrap();
    for (challenge, header_name) in [(&v1, "X-PAYMENT"), (&v2, "PAYMENT-SIGNATURE")] {
        let selected = PaymentPolicy::default().select(challenge).unwrap();
        let header = exact::pay(&selected, &signer, &clock, &mut rng).unwrap();
        assert_eq!(header.name(), header_name);
        assert!(!format!("{header:?}").contains(header.value()));
        let payment = PaymentPayload::from_header_value(header.value()).unwrap();
        let verified = exact::verify(&payment, selected.requirement(), SPEC_NOW).unwrap();
        assert_eq!(verified.payer, signer.address());
        let signature_hex = signature_hex(&verified.signature);
        for debug in [
            format!("{verified:?}"),
            format!("{payment:?}"),
            format!("{:?}", payment.scheme_payload::<ExactEvmPayload>().unwrap()),
        ] {
            assert!(
                !debug.contains(&signature_hex[2..20]),
                "Debug leaks the signature: {debug}"
            );
        }
        assert_eq!(verified.authorization.valid_after, SPEC_NOW - 600);
        assert_eq!(verified.authorization.valid_before, SPEC_NOW + 60);
        let decoded: serde_json::Value =
            serde_json::from_slice(&crate::encoding::decode("t", header.value()).unwrap()).unwrap();
        if challenge.version() == X402Version::V2 {
            // The echo is byte-for-byte, unknown extra keys and lowercase addresses included.
            let text =
                String::from_utf8(crate::encoding::decode("t", header.value()).unwrap()).unwrap();
            assert!(text.contains(challenge.offers()[0].raw_json()), "{text}");
            assert_eq!(
                decoded["extensions"],
                serde_json::json!({"bazaar":{"info":{}}})
            );
            assert_eq!(decoded["resource"]["url"], "https://api.example.com/x");
        } else {
            assert_eq!(decoded["network"], "base-sepolia");
            assert_eq!(decoded["scheme"], "exact");
        }
        let sig = decoded["payload"]["signature"].as_str().unwrap();
        assert_eq!(sig.len(), 132);
        assert!(sig.ends_with("1b") || sig.ends_with("1c"));
    }
}

#[test]
fn accepted_echo_must_match_the_offer() {
    let signer = LocalEvmSigner::from_hex(HARDHAT_0).unwrap();
    let offer = |amount: &str| {
        format!(
            r#"{{"x402Version":2,"resource":{{"url":"u"}},"accepts":[{{"scheme":"exact","network":"eip155:84532","amount":"{amount}","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{{"name":"USDC","version":"2"}}}}]}}"#
        )
    };
    let cheap = Challenge::from_v2_header(&crate::encoding::encode(offer("1").as_bytes())).unwrap();
    let dear =
        Challenge::from_v2_header(&crate::encoding::encode(offer("10000").as_bytes())).unwrap();
    let selected = PaymentPolicy::default().select(&cheap).unwrap();
    let header = exact::pay(
        &selected,
        &signer,
        &FixedClock::from_unix(SPEC_NOW),
        &mut |b: &mut [u8]| b.fill(3),
    )
    .unwrap();
    let payment = PaymentPayload::from_header_value(header.value()).unwrap();
    let err =
        exact::verify(&payment, dear.offers()[0].requirement().unwrap(), SPEC_NOW).unwrap_err();
    assert_eq!(err.invalid_reason(), Some(InvalidReason::Requirements));
    let v1 = v1_challenge(
        "base-sepolia",
        "USDC",
        "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
    );
    let err = exact::verify(&payment, v1.offers()[0].requirement().unwrap(), SPEC_NOW).unwrap_err();
    assert_eq!(err.invalid_reason(), Some(InvalidReason::Version));
}

fn permit_challenge(facilitator: Option<&str>) -> Challenge {
    let extra = match facilitator {
        Some(address) => {
            format!(r#"{{"name":"MegaUSD","version":"1","facilitatorAddress":"{address}"}}"#)
        }
        None => r#"{"name":"MegaUSD","version":"1"}"#.to_owned(),
    };
    let json = format!(
        r#"{{"x402Version":2,"resource":{{"url":"u"}},"accepts":[{{"scheme":"permit","network":"eip155:4326","amount":"1500000000000000000","asset":"0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":120,"extra":{extra}}}]}}"#
    );
    Challenge::from_v2_header(&crate::encoding::encode(json.as_bytes())).unwrap()
}

#[test]
fn permit_pays_and_verifies() {
    let facilitator = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
    let challenge = permit_challenge(Some(facilitator));
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let signer = LocalEvmSigner::from_hex(HARDHAT_0).unwrap();
    let header = permit::pay(
        &selected,
        &signer,
        U256::from(3),
        &FixedClock::from_unix(SPEC_NOW),
    )
    .unwrap();
    let payment = PaymentPayload::from_header_value(header.value()).unwrap();
    let requirement = selected.requirement();
    let verified = permit::verify(&payment, requirement, SPEC_NOW, Some(U256::from(3))).unwrap();
    assert_eq!(verified.payer, signer.address());
    assert_eq!(verified.permit.spender.to_string(), facilitator);
    assert_eq!(verified.permit.deadline, SPEC_NOW + 120);
    let reason = |now, nonce| {
        permit::verify(&payment, requirement, now, nonce)
            .unwrap_err()
            .invalid_reason()
            .unwrap()
    };
    assert_eq!(reason(SPEC_NOW + 120, None), InvalidReason::PermitDeadline);
    // A permit checked long before its deadline was ever offered (a captured permit that
    // would stay usable for days): refused; up to 600 s of client clock lead is tolerated.
    assert!(permit::verify(&payment, requirement, SPEC_NOW - 600, None).is_ok());
    assert_eq!(reason(SPEC_NOW - 601, None), InvalidReason::PermitDeadline);
    assert_eq!(
        reason(SPEC_NOW, Some(U256::from(4))),
        InvalidReason::PermitNonceMismatch
    );
    let other = permit_challenge(Some("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"));
    let mut payload: permit::PermitEvmPayload = payment.scheme_payload().unwrap();
    assert_eq!(
        permit::verify_payload(
            &payload,
            other.offers()[0].requirement().unwrap(),
            SPEC_NOW,
            None
        )
        .unwrap_err()
        .invalid_reason(),
        Some(InvalidReason::PermitSpenderMismatch)
    );
    payload.permit.value = TokenAmount::from_u64(1);
    assert_eq!(
        permit::verify_payload(&payload, requirement, SPEC_NOW, None)
            .unwrap_err()
            .invalid_reason(),
        Some(InvalidReason::PermitSignature)
    );
    let missing = permit_challenge(None);
    let selected = PaymentPolicy::default().select(&missing).unwrap();
    assert!(matches!(
        permit::pay(
            &selected,
            &signer,
            U256::ZERO,
            &FixedClock::from_unix(SPEC_NOW)
        ),
        Err(Error::MissingField { .. })
    ));
}

#[test]
fn exact_refuses_permit_offers_and_vice_versa() {
    let challenge = permit_challenge(Some("0x70997970C51812dc3A010C7d01b50e0d17dc79C8"));
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let signer = LocalEvmSigner::from_hex(HARDHAT_0).unwrap();
    let err = exact::pay(
        &selected,
        &signer,
        &FixedClock::from_unix(SPEC_NOW),
        &mut |b: &mut [u8]| b.fill(1),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnsupportedScheme { .. }));
}
