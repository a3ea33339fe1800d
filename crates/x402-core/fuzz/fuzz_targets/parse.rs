//! Feeds arbitrary bytes to every parser of untrusted input in x402-core: 402 responses (v1
//! bodies, v2 headers), payment headers (and the scheme verifiers behind them), receipts and
//! wallet-auth headers. The first byte picks the parser. Nothing may panic.

#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use x402_core::{Challenge, PaymentPayload, PaymentPolicy, Receipt, auth, evm, svm};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match mode % 5 {
        0 => {
            if let Ok(challenge) = Challenge::from_response(402, &HeaderMap::new(), rest) {
                let _ = PaymentPolicy::default().allow_unknown_assets(true).select(&challenge);
            }
        }
        1 => {
            if let Ok(challenge) = Challenge::from_v2_header(&text) {
                let _ = PaymentPolicy::default().select(&challenge);
            }
        }
        2 => {
            let Ok(payment) = PaymentPayload::from_header_value(&text) else { return };
            let body = br#"{"x402Version":2,"resource":{"url":"u"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}},{"scheme":"exact","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1","amount":"1000","asset":"4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU","payTo":"2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4","maxTimeoutSeconds":60,"extra":{"feePayer":"EwWqGE4ZFKLofuestmU4LDdK7XM1N4ALgdZccwYugwGd"}}]}"#;
            let Ok(challenge) = Challenge::from_body(body) else { return };
            for offer in challenge.offers() {
                let Ok(requirement) = offer.requirement() else { continue };
                let _ = evm::exact::verify(&payment, requirement, 1_740_672_100);
                let _ = evm::permit::verify(&payment, requirement, 1_740_672_100, None);
                let config = svm::VerifyConfig::new(vec!["EwWqGE4ZFKLofuestmU4LDdK7XM1N4ALgdZccwYugwGd".parse().expect("static key")]);
                let _ = svm::verify(&payment, requirement, &config);
            }
        }
        3 => {
            let _ = Receipt::from_header_value(&text);
        }
        _ => {
            let mut headers = HeaderMap::new();
            for (i, line) in text.lines().take(6).enumerate() {
                let name = [auth::HEADER_ADDRESS, auth::HEADER_CHAIN, auth::HEADER_SIGNATURE, auth::HEADER_TIMESTAMP, auth::HEADER_NONCE, auth::HEADER_SIG_ENCODING][i];
                if let Ok(value) = HeaderValue::from_str(line) {
                    headers.insert(name, value);
                }
            }
            let _ = auth::verify(&headers, "POST", "/compute/api-keys", rest, 1_760_000_000_000, 300_000);
        }
    }
});
