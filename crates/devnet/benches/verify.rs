//! Facilitator verification throughput: EVM `exact` payments verified per second on one core
//! (goal ≥ 20,000/s). This measures the verification the facilitator does for every payment:
//! parsing the payment header, matching `accepted` against the offer, EIP-712 hashing,
//! signature recovery and the amount, recipient and time checks. The two on-chain reads that
//! follow (balance, authorization state) are anvil round trips and are not CPU work of ours.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use x402_core::{Challenge, FixedClock, LocalEvmSigner, PaymentPayload, PaymentPolicy, evm};

const OFFER: &str = r#"{"x402Version":2,"resource":{"url":"http://127.0.0.1:8402/compute/credits/topup"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"5000000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC","maxTimeoutSeconds":300,"extra":{"name":"USDC","version":"2"}}]}"#;
const NOW: u64 = 1_800_000_000;

fn verification(c: &mut Criterion) {
    let challenge = Challenge::from_v2_header(&BASE64.encode(OFFER.as_bytes())).unwrap();
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let requirement = selected.requirement();
    let signer = LocalEvmSigner::from_hex(
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    )
    .unwrap();
    let header = evm::exact::pay(
        &selected,
        &signer,
        &FixedClock::from_unix(NOW),
        &mut |b: &mut [u8]| b.fill(7),
    )
    .unwrap();
    let mut group = c.benchmark_group("facilitator");
    group.throughput(Throughput::Elements(1));
    group.bench_function("verify evm exact (header to verified payment)", |b| {
        b.iter(|| {
            let payment = PaymentPayload::from_header_value(black_box(header.value())).unwrap();
            evm::exact::verify(&payment, requirement, NOW).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
