use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::address::SolanaAddress;

const V1_BODY: &str = r#"{"x402Version":1,"error":"X-PAYMENT header is required","accepts":[{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","resource":"https://api.example.com/premium-data","description":"Access to premium market data","mimeType":"application/json","outputSchema":null,"maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}"#;

const V2_JSON: &str = r#"{"x402Version":2,"error":"PAYMENT-SIGNATURE header is required","resource":{"url":"https://api.example.com/premium-data","description":"Access to premium market data","mimeType":"application/json"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}],"extensions":{}}"#;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

#[test]
fn reads_the_spec_v1_body() {
    let challenge = Challenge::from_response(402, &HeaderMap::new(), V1_BODY.as_bytes()).unwrap();
    assert_eq!(challenge.version(), X402Version::V1);
    assert_eq!(challenge.error(), Some("X-PAYMENT header is required"));
    let requirement = challenge.offers()[0].requirement().unwrap();
    assert_eq!(requirement.network(), &Network::BASE_SEPOLIA);
    assert_eq!(requirement.network_text(), "base-sepolia");
    assert_eq!(requirement.amount(), TokenAmount::from_u64(10000));
    assert_eq!(requirement.max_timeout_seconds(), 60);
    assert_eq!(requirement.extra_str("name"), Some("USDC"));
    assert_eq!(
        requirement.resource(),
        Some("https://api.example.com/premium-data")
    );
}

#[test]
fn reads_the_spec_v2_header_in_any_case_and_prefers_it_to_the_body() {
    let value = encoding::encode(V2_JSON.as_bytes());
    for name in ["PAYMENT-REQUIRED", "payment-required", "Payment-Required"] {
        let mut map = HeaderMap::new();
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
        let challenge = Challenge::from_response(402, &map, V1_BODY.as_bytes()).unwrap();
        assert_eq!(challenge.version(), X402Version::V2);
        let offer = &challenge.offers()[0];
        // The raw text is kept byte for byte.
        assert_eq!(
            offer.raw_json(),
            r#"{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}"#
        );
        assert_eq!(
            challenge.resource().unwrap().url,
            "https://api.example.com/premium-data"
        );
        assert_eq!(challenge.extensions_json().unwrap().get(), "{}");
    }
}

#[test]
fn a_412_with_the_header_is_a_challenge() {
    let map = headers(&[("payment-required", &encoding::encode(V2_JSON.as_bytes()))]);
    assert!(Challenge::from_response(412, &map, b"").is_ok());
    assert!(matches!(
        Challenge::from_response(412, &HeaderMap::new(), b""),
        Err(Error::NoChallenge { status: 412, .. })
    ));
    assert!(matches!(
        Challenge::from_response(200, &map, b""),
        Err(Error::NotPaymentRequired { status: 200 })
    ));
}

#[test]
fn a_402_without_a_challenge_carries_the_server_message() {
    let cases: [(&[u8], &str); 5] = [
        (
            br#"{"error":"insufficient credits","shortfall":"12.50"}"#,
            "insufficient credits (shortfall 12.50)",
        ),
        (
            br#"{"error":{"message":"balance too low"}}"#,
            "balance too low",
        ),
        (br#"{"message":"pay up"}"#, "pay up"),
        (b"Payment Required", "Payment Required"),
        (b"", "(empty body)"),
    ];
    for (body, expected) in cases {
        match Challenge::from_response(402, &HeaderMap::new(), body) {
            Err(Error::NoChallenge {
                status: 402,
                message,
            }) => assert_eq!(message, expected),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn compute_api_body_without_asset_or_timeout_uses_the_registry() {
    let body = br#"{"x402Version":1,"accepts":[{"scheme":"exact","network":"base","maxAmountRequired":"90000000","resource":"https://compute.x402layer.cc/compute/provision","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","extra":{"name":"USD Coin","version":"2"}}]}"#;
    let challenge = Challenge::from_body(body).unwrap();
    let requirement = challenge.offers()[0].requirement().unwrap();
    assert_eq!(
        requirement.asset().to_string(),
        "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    );
    assert_eq!(
        requirement.max_timeout_seconds(),
        DEFAULT_MAX_TIMEOUT_SECONDS
    );
}

#[test]
fn malformed_challenges_are_typed_errors() {
    let bad_headers = [
        "%%%",
        "e30",
        &encoding::encode(b"[1,2]"),
        &encoding::encode(b"{\"x402Version\":2}"),
        &encoding::encode(br#"{"x402Version":1,"accepts":[]}"#),
        &encoding::encode(br#"{"x402Version":"2","accepts":[]}"#),
    ];
    for value in bad_headers {
        let err = Challenge::from_v2_header(value).unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{value}: {err:?}");
    }
    assert!(matches!(
        Challenge::from_v2_header(&encoding::encode(br#"{"x402Version":3,"accepts":[]}"#)),
        Err(Error::UnsupportedVersion(3))
    ));
    let bad_resource =
        encoding::encode(br#"{"x402Version":2,"resource":{"description":"no url"},"accepts":[]}"#);
    assert!(matches!(
        Challenge::from_v2_header(&bad_resource),
        Err(Error::Malformed { .. })
    ));
    for body in [
        &br#"{"x402Version":1}"#[..],
        br#"{"x402Version":1,"accepts":{}}"#,
        br#"{"x402Version":1,"accepts":[1]"#,
    ] {
        assert!(
            matches!(
                Challenge::from_response(402, &HeaderMap::new(), body),
                Err(Error::Malformed { .. })
            ),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn each_bad_offer_keeps_its_own_typed_error() {
    let base = json!({"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60});
    let variant = |key: &str, value: serde_json::Value| {
        let mut offer = base.clone();
        if value.is_null() {
            offer.as_object_mut().unwrap().remove(key);
        } else {
            offer[key] = value;
        }
        offer
    };
    type Check = fn(&Error) -> bool;
    let cases: Vec<(serde_json::Value, Check)> = vec![
        (variant("network", json!("nowhere")), |e| {
            matches!(e, Error::UnknownNetwork(_))
        }),
        (variant("network", json!("eip155:xyz")), |e| {
            matches!(e, Error::UnknownNetwork(_))
        }),
        (variant("amount", json!("1.5")), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("amount", json!("-1")), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("amount", json!("1".repeat(90))), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("amount", json!(1.5)), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("amount", serde_json::Value::Null), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("payTo", json!("0x12")), |e| {
            matches!(e, Error::InvalidAddress { .. })
        }),
        (variant("payTo", json!(42)), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (
            variant(
                "asset",
                json!("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
            ),
            |e| matches!(e, Error::InvalidAddress { .. }),
        ),
        (variant("maxTimeoutSeconds", json!("60")), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("maxTimeoutSeconds", json!(-5)), |e| {
            matches!(e, Error::Malformed { .. })
        }),
        (variant("network", json!("cosmos:cosmoshub-4")), |e| {
            matches!(e, Error::UnsupportedNetwork { .. })
        }),
    ];
    let offers: Vec<_> = cases
        .iter()
        .map(|(offer, _)| offer.clone())
        .chain([base.clone()])
        .collect();
    let json = json!({"x402Version":2,"resource":{"url":"u"},"accepts":offers});
    let challenge =
        Challenge::from_v2_header(&encoding::encode(json.to_string().as_bytes())).unwrap();
    for ((_, check), offer) in cases.iter().zip(challenge.offers()) {
        let err = offer.requirement().unwrap_err();
        assert!(check(err), "{}: {err:?}", offer.raw_json());
    }
    assert!(challenge.offers().last().unwrap().requirement().is_ok());
    // An unknown scheme parses; the policy refuses it by name.
    let other = variant("scheme", json!("upto"));
    let requirement = Requirement::parse(
        X402Version::V2,
        &serde_json::value::to_raw_value(&other).unwrap(),
    )
    .unwrap();
    assert_eq!(requirement.scheme(), &Scheme::Other("upto".into()));
}

fn spec_strategy() -> impl Strategy<Value = RequirementSpec> {
    let evm = (
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        prop::sample::select(vec![
            Network::BASE,
            Network::BASE_SEPOLIA,
            Network::MEGAETH,
            Network::evm(42161),
        ]),
    )
        .prop_map(|(asset, pay_to, network)| {
            (
                network,
                AssetId::Evm(asset.into()),
                PayTo::Evm(pay_to.into()),
            )
        });
    let solana = (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        prop::sample::select(vec![Network::SOLANA, Network::SOLANA_DEVNET]),
    )
        .prop_map(|(mint, pay_to, network)| {
            (
                network,
                AssetId::Solana(SolanaAddress::new(mint)),
                PayTo::Solana(SolanaAddress::new(pay_to)),
            )
        });
    (
        prop_oneof![evm, solana],
        any::<[u64; 4]>(),
        0u64..1_000_000,
        "[a-zA-Z0-9 ]{0,12}",
        prop::sample::select(vec![
            Scheme::Exact,
            Scheme::Permit,
            Scheme::Other("upto".into()),
        ]),
    )
        .prop_map(|((network, asset, pay_to), limbs, timeout, name, scheme)| {
            let mut extra = Map::new();
            if !name.is_empty() {
                extra.insert("name".into(), json!(name));
                extra.insert("version".into(), json!("2"));
            }
            RequirementSpec {
                scheme,
                network,
                amount: TokenAmount::new(alloy_primitives::U256::from_limbs(limbs)),
                asset,
                pay_to,
                max_timeout_seconds: timeout,
                extra,
            }
        })
}

fn assert_matches(spec: &RequirementSpec, requirement: &Requirement) {
    assert_eq!(requirement.scheme(), &spec.scheme);
    assert_eq!(requirement.network(), &spec.network);
    assert_eq!(requirement.amount(), spec.amount);
    assert_eq!(requirement.asset(), spec.asset);
    assert_eq!(requirement.pay_to(), spec.pay_to);
    assert_eq!(requirement.max_timeout_seconds(), spec.max_timeout_seconds);
    assert_eq!(requirement.extra(), &spec.extra);
}

proptest! {
    #[test]
    fn encoded_challenges_decode_to_what_was_encoded(specs in prop::collection::vec(spec_strategy(), 0..5), url in "[a-z:/.]{1,30}", error in ".{0,20}") {
        let required = PaymentRequired { resource: ResourceInfo { url: url.clone(), description: Some("d".into()), mime_type: None }, error: error.clone(), accepts: specs.clone(), extensions: Default::default() };
        let v2 = Challenge::from_v2_header(&required.to_v2_header()).unwrap();
        let v1 = Challenge::from_body(&required.to_v1_body()).unwrap();
        prop_assert_eq!(v2.resource().unwrap(), required.resource.clone());
        prop_assert_eq!(v1.error(), Some(error.as_str()));
        prop_assert_eq!(v2.offers().len(), specs.len());
        prop_assert_eq!(v1.offers().len(), specs.len());
        for ((spec, a), b) in specs.iter().zip(v2.offers()).zip(v1.offers()) {
            assert_matches(spec, a.requirement().unwrap());
            let v1_requirement = b.requirement().unwrap();
            assert_matches(spec, v1_requirement);
            prop_assert_eq!(v1_requirement.resource(), Some(url.as_str()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Challenge::from_response(402, &HeaderMap::new(), &bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Challenge::from_v2_header(&text);
        let _ = Challenge::from_v2_header(&encoding::encode(&bytes));
        let _ = crate::PaymentPayload::from_header_value(&encoding::encode(&bytes));
        let _ = crate::Receipt::from_header_value(&text);
    }

    #[test]
    fn mutated_json_never_panics(index in 0usize..400, byte in any::<u8>()) {
        let mut bytes = V2_JSON.as_bytes().to_vec();
        let i = index % bytes.len();
        bytes[i] = byte;
        if let Ok(challenge) = Challenge::from_v2_header(&encoding::encode(&bytes)) {
            for offer in challenge.offers() { let _ = offer.requirement(); }
        }
    }
}
