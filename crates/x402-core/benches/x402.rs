//! Criterion benchmarks: parsing challenges, building and signing payments, and the raw
//! signatures underneath as the floor.
//!
//! Goals: payment creation within 2× of its raw signature; parsing under 5 µs.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;
use k256::ecdsa::SigningKey;
use x402_core::svm::{SolanaChainState, TokenProgram};
use x402_core::{
    Challenge, FixedClock, LocalEvmSigner, LocalSolanaSigner, PaymentPolicy, SolanaSigner, evm, svm,
};

const V1_BODY: &[u8] = br#"{"x402Version":1,"error":"X-PAYMENT header is required","accepts":[{"scheme":"exact","network":"base-sepolia","maxAmountRequired":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","resource":"https://api.example.com/premium-data","description":"Access to premium market data","mimeType":"application/json","outputSchema":null,"maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}"#;
const V2_JSON: &[u8] = br#"{"x402Version":2,"error":"PAYMENT-SIGNATURE header is required","resource":{"url":"https://api.example.com/premium-data","description":"Access to premium market data","mimeType":"application/json"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}"#;
const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

fn parsing(c: &mut Criterion) {
    c.bench_function("parse v1 body", |b| {
        b.iter(|| Challenge::from_body(black_box(V1_BODY)).unwrap())
    });
    let header = BASE64.encode(V2_JSON);
    c.bench_function("parse v2 header", |b| {
        b.iter(|| Challenge::from_v2_header(black_box(&header)).unwrap())
    });
}

fn evm_signing(c: &mut Criterion) {
    let challenge = Challenge::from_body(V1_BODY).unwrap();
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let signer = LocalEvmSigner::from_hex(KEY).unwrap();
    let clock = FixedClock::from_unix(1_740_672_100);
    let mut counter = 0u8;
    c.bench_function("evm exact: build and sign header", |b| {
        b.iter(|| {
            evm::exact::pay(
                black_box(&selected),
                &signer,
                &clock,
                &mut |buf: &mut [u8]| {
                    counter = counter.wrapping_add(1);
                    buf.fill(counter)
                },
            )
            .unwrap()
        })
    });
    let key = SigningKey::from_slice(&alloy_primitives::hex::decode(KEY).unwrap()).unwrap();
    let digest = [7u8; 32];
    c.bench_function("raw k256 signature (floor)", |b| {
        b.iter(|| key.sign_prehash_recoverable(black_box(&digest)).unwrap())
    });
}

fn solana_signing(c: &mut Criterion) {
    let fee_payer = LocalSolanaSigner::from_secret([42; 32]);
    let json = format!(
        r#"{{"x402Version":2,"resource":{{"url":"u"}},"accepts":[{{"scheme":"exact","network":"solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1","amount":"1000","asset":"4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU","payTo":"2wKupLR9q6wXYppw8Gr2NvWxKBUqm4PPJKkQfoxHDBg4","maxTimeoutSeconds":60,"extra":{{"feePayer":"{}"}}}}]}}"#,
        fee_payer.pubkey()
    );
    let challenge = Challenge::from_v2_header(&BASE64.encode(json.as_bytes())).unwrap();
    let selected = PaymentPolicy::default().select(&challenge).unwrap();
    let payer = LocalSolanaSigner::from_secret([8; 32]);
    let chain = SolanaChainState {
        recent_blockhash: [1; 32],
        decimals: 6,
        token_program: TokenProgram::Token,
    };
    // Steady state: the payer's and the recipient's token accounts are already memoized.
    c.bench_function("solana exact: build and sign header", |b| {
        b.iter(|| {
            svm::pay(
                black_box(&selected),
                &payer,
                &chain,
                &mut |buf: &mut [u8]| buf.fill(3),
            )
            .unwrap()
        })
    });
    let key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    let mut transaction =
        svm::build_transaction(selected.requirement(), payer.pubkey(), &chain, [3; 16]).unwrap();
    svm::sign_transaction(&mut transaction, &payer).unwrap();
    let message = transaction.message.serialize();
    c.bench_function("raw ed25519 signature (floor)", |b| {
        b.iter(|| key.sign(black_box(&message)))
    });
    let (owner, mint) = (
        payer.pubkey(),
        "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU"
            .parse()
            .unwrap(),
    );
    c.bench_function("solana: ATA derivation without the memo", |b| {
        b.iter(|| {
            svm::derive_associated_token_address(black_box(&owner), &mint, TokenProgram::Token)
        })
    });
}

criterion_group!(benches, parsing, evm_signing, solana_signing);
criterion_main!(benches);
