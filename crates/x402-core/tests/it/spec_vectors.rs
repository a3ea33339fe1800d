//! The exact header strings of the x402 transport specs (v1 and v2 `http.md`).

use alloy_primitives::{Signature, address, b256};
use http::{HeaderMap, HeaderValue};
use x402_core::evm::exact::{self, Authorization};
use x402_core::{
    Challenge, InvalidReason, PaymentPayload, PaymentPolicy, Receipt, TokenAmount, X402Version,
};

const V2_PAYMENT_REQUIRED: &str = "eyJ4NDAyVmVyc2lvbiI6MiwiZXJyb3IiOiJQQVlNRU5ULVNJR05BVFVSRSBoZWFkZXIgaXMgcmVxdWlyZWQiLCJyZXNvdXJjZSI6eyJ1cmwiOiJodHRwczovL2FwaS5leGFtcGxlLmNvbS9wcmVtaXVtLWRhdGEiLCJkZXNjcmlwdGlvbiI6IkFjY2VzcyB0byBwcmVtaXVtIG1hcmtldCBkYXRhIiwibWltZVR5cGUiOiJhcHBsaWNhdGlvbi9qc29uIn0sImFjY2VwdHMiOlt7InNjaGVtZSI6ImV4YWN0IiwibmV0d29yayI6ImVpcDE1NTo4NDUzMiIsImFtb3VudCI6IjEwMDAwIiwiYXNzZXQiOiIweDAzNkNiRDUzODQyYzU0MjY2MzRlNzkyOTU0MWVDMjMxOGYzZENGN2UiLCJwYXlUbyI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsIm1heFRpbWVvdXRTZWNvbmRzIjo2MCwiZXh0cmEiOnsibmFtZSI6IlVTREMiLCJ2ZXJzaW9uIjoiMiJ9fV19";

const V2_PAYMENT_SIGNATURE: &str = "eyJ4NDAyVmVyc2lvbiI6MiwicmVzb3VyY2UiOnsidXJsIjoiaHR0cHM6Ly9hcGkuZXhhbXBsZS5jb20vcHJlbWl1bS1kYXRhIiwiZGVzY3JpcHRpb24iOiJBY2Nlc3MgdG8gcHJlbWl1bSBtYXJrZXQgZGF0YSIsIm1pbWVUeXBlIjoiYXBwbGljYXRpb24vanNvbiJ9LCJhY2NlcHRlZCI6eyJzY2hlbWUiOiJleGFjdCIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJhbW91bnQiOiIxMDAwMCIsImFzc2V0IjoiMHgwMzZDYkQ1Mzg0MmM1NDI2NjM0ZTc5Mjk1NDFlQzIzMThmM2RDRjdlIiwicGF5VG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJtYXhUaW1lb3V0U2Vjb25kcyI6NjAsImV4dHJhIjp7Im5hbWUiOiJVU0RDIiwidmVyc2lvbiI6IjIifX0sInBheWxvYWQiOnsic2lnbmF0dXJlIjoiMHgyZDZhNzU4OGQ2YWNjYTUwNWNiZjBkOWE0YTIyN2UwYzUyYzZjMzQwMDhjOGU4OTg2YTEyODMyNTk3NjQxNzM2MDhhMmNlNjQ5NjY0MmUzNzdkNmRhOGRiYmY1ODM2ZTliZDE1MDkyZjllY2FiMDVkZWQzZDYyOTNhZjE0OGI1NzFjIiwiYXV0aG9yaXphdGlvbiI6eyJmcm9tIjoiMHg4NTdiMDY1MTlFOTFlM0E1NDUzODc5MWJEYmIwRTIyMzczZTM2YjY2IiwidG8iOiIweDIwOTY5M0JjNmFmYzBDNTMyOGJBMzZGYUYwM0M1MTRFRjMxMjI4N0MiLCJ2YWx1ZSI6IjEwMDAwIiwidmFsaWRBZnRlciI6IjE3NDA2NzIwODkiLCJ2YWxpZEJlZm9yZSI6IjE3NDA2NzIxNTQiLCJub25jZSI6IjB4ZjM3NDY2MTNjMmQ5MjBiNWZkYWJjMDg1NmYyYWViMmQ0Zjg4ZWU2MDM3YjhjYzVkMDRhNzFhNDQ2MmYxMzQ4MCJ9fX0=";

const V1_X_PAYMENT: &str = "eyJ4NDAyVmVyc2lvbiI6MSwic2NoZW1lIjoiZXhhY3QiLCJuZXR3b3JrIjoiYmFzZS1zZXBvbGlhIiwicGF5bG9hZCI6eyJzaWduYXR1cmUiOiIweDJkNmE3NTg4ZDZhY2NhNTA1Y2JmMGQ5YTRhMjI3ZTBjNTJjNmMzNDAwOGM4ZTg5ODZhMTI4MzI1OTc2NDE3MzYwOGEyY2U2NDk2NjQyZTM3N2Q2ZGE4ZGJiZjU4MzZlOWJkMTUwOTJmOWVjYWIwNWRlZDNkNjI5M2FmMTQ4YjU3MWMiLCJhdXRob3JpemF0aW9uIjp7ImZyb20iOiIweDg1N2IwNjUxOUU5MWUzQTU0NTM4NzkxYkRiYjBFMjIzNzNlMzZiNjYiLCJ0byI6IjB4MjA5NjkzQmM2YWZjMEM1MzI4YkEzNkZhRjAzQzUxNEVGMzEyMjg3QyIsInZhbHVlIjoiMTAwMDAiLCJ2YWxpZEFmdGVyIjoiMTc0MDY3MjA4OSIsInZhbGlkQmVmb3JlIjoiMTc0MDY3MjE1NCIsIm5vbmNlIjoiMHhmMzc0NjYxM2MyZDkyMGI1ZmRhYmMwODU2ZjJhZWIyZDRmODhlZTYwMzdiOGNjNWQwNGE3MWE0NDYyZjEzNDgwIn19fQ==";

const V2_RESPONSE_SUCCESS: &str = "eyJzdWNjZXNzIjp0cnVlLCJ0cmFuc2FjdGlvbiI6IjB4MTIzNDU2Nzg5MGFiY2RlZjEyMzQ1Njc4OTBhYmNkZWYxMjM0NTY3ODkwYWJjZGVmMTIzNDU2Nzg5MGFiY2RlZiIsIm5ldHdvcmsiOiJlaXAxNTU6ODQ1MzIiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";
const V2_RESPONSE_FAILURE: &str = "eyJzdWNjZXNzIjpmYWxzZSwiZXJyb3JSZWFzb24iOiJpbnN1ZmZpY2llbnRfZnVuZHMiLCJuZXR3b3JrIjoiZWlwMTU1Ojg0NTMyIn0=";
const V1_RESPONSE_SUCCESS: &str = "eyJzdWNjZXNzIjp0cnVlLCJ0cmFuc2FjdGlvbiI6IjB4MTIzNDU2Nzg5MGFiY2RlZjEyMzQ1Njc4OTBhYmNkZWYxMjM0NTY3ODkwYWJjZGVmMTIzNDU2Nzg5MGFiY2RlZiIsIm5ldHdvcmsiOiJiYXNlLXNlcG9saWEiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";
const V1_RESPONSE_FAILURE: &str = "eyJzdWNjZXNzIjpmYWxzZSwiZXJyb3JSZWFzb24iOiJpbnN1ZmZpY2llbnRfZnVuZHMiLCJ0cmFuc2FjdGlvbiI6IiIsIm5ldHdvcmsiOiJiYXNlLXNlcG9saWEiLCJwYXllciI6IjB4ODU3YjA2NTE5RTkxZTNBNTQ1Mzg3OTFiRGJiMEUyMjM3M2UzNmI2NiJ9";

const SPEC_SIGNATURE: [u8; 65] = alloy_primitives::hex!(
    "2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c"
);
const SPEC_NOW: u64 = 1_740_672_100;

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

#[test]
fn v2_spec_payment_signature_is_reproduced_byte_for_byte() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "payment-required",
        HeaderValue::from_static(V2_PAYMENT_REQUIRED),
    );
    let challenge = Challenge::from_response(402, &headers, b"{}").unwrap();
    assert_eq!(challenge.version(), X402Version::V2);
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let signature = Signature::from_raw(&SPEC_SIGNATURE).unwrap();
    let header = exact::payload(&selected, spec_authorization(), &signature).unwrap();
    assert_eq!(header.name(), "PAYMENT-SIGNATURE");
    assert_eq!(header.value(), V2_PAYMENT_SIGNATURE);
}

#[test]
fn v1_spec_x_payment_is_reproduced_byte_for_byte() {
    let body = br#"{"x402Version":1,"error":"Payment required to access this resource","accepts":[{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","resource":"https://api.example.com/premium-data","description":"Access to premium market data","mimeType":"application/json","outputSchema":null,"maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}"#;
    let challenge = Challenge::from_response(402, &HeaderMap::new(), body).unwrap();
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let header = exact::payload(
        &selected,
        spec_authorization(),
        &Signature::from_raw(&SPEC_SIGNATURE).unwrap(),
    )
    .unwrap();
    assert_eq!(header.name(), "X-PAYMENT");
    assert_eq!(header.value(), V1_X_PAYMENT);
}

#[test]
fn spec_payment_headers_verify_on_the_server_side() {
    let challenge = Challenge::from_v2_header(V2_PAYMENT_REQUIRED).unwrap();
    let requirement = challenge.offers()[0].requirement().unwrap();
    for (name, value) in [
        ("PAYMENT-SIGNATURE", V2_PAYMENT_SIGNATURE),
        ("x-payment", V1_X_PAYMENT),
    ] {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_static(value),
        );
        let payment = PaymentPayload::from_headers(&headers).unwrap().unwrap();
        let payload_only: exact::ExactEvmPayload =
            serde_json::from_str(payment.payload_json().get()).unwrap();
        let verified = exact::verify_payload(&payload_only, requirement, SPEC_NOW).unwrap();
        assert_eq!(
            verified.payer,
            address!("857b06519E91e3A54538791bDbb0E22373e36b66")
        );
        if payment.version() == X402Version::V2 {
            assert!(exact::verify(&payment, requirement, SPEC_NOW).is_ok());
        } else {
            // A v1 payment does not answer a v2 offer.
            assert_eq!(
                exact::verify(&payment, requirement, SPEC_NOW)
                    .unwrap_err()
                    .invalid_reason(),
                Some(InvalidReason::Version)
            );
        }
    }
    assert!(
        PaymentPayload::from_headers(&HeaderMap::new())
            .unwrap()
            .is_none()
    );
}

#[test]
fn spec_receipts_parse_and_successes_re_encode_exactly() {
    for (value, success, network) in [
        (V2_RESPONSE_SUCCESS, true, "eip155:84532"),
        (V2_RESPONSE_FAILURE, false, "eip155:84532"),
        (V1_RESPONSE_SUCCESS, true, "base-sepolia"),
        (V1_RESPONSE_FAILURE, false, "base-sepolia"),
    ] {
        let receipt = Receipt::from_header_value(value).unwrap();
        assert_eq!(receipt.success, success);
        assert_eq!(receipt.network, network);
        if success {
            assert_eq!(
                receipt.transaction,
                "0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"
            );
            assert_eq!(
                receipt.payer.as_deref(),
                Some("0x857b06519E91e3A54538791bDbb0E22373e36b66")
            );
            assert_eq!(receipt.to_header_value(), value);
        } else {
            assert_eq!(receipt.error_reason.as_deref(), Some("insufficient_funds"));
            assert_eq!(receipt.transaction, "");
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-payment-response",
        HeaderValue::from_static(V1_RESPONSE_SUCCESS),
    );
    headers.insert(
        "payment-response",
        HeaderValue::from_static(V2_RESPONSE_SUCCESS),
    );
    assert_eq!(
        Receipt::from_headers(&headers).unwrap().unwrap().network,
        "eip155:84532",
        "PAYMENT-RESPONSE wins"
    );
    let mut bad = HeaderMap::new();
    bad.insert("payment-response", HeaderValue::from_static("bm90IGpzb24="));
    assert!(Receipt::from_headers(&bad).is_err());
}
