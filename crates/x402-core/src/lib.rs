//! Sans-IO primitives of the x402 payment protocol, for clients and servers.
//!
//! `x402-core` reads 402 challenges, chooses an offer under a spend policy, signs payments
//! (EVM `exact` with EIP-3009, EVM `permit` with ERC-2612, Solana `exact` with SPL
//! `TransferChecked`), reads settlement receipts, verifies payments on the server side, and
//! signs and verifies the compute API's wallet-auth headers.
//!
//! It performs no IO: it never opens a socket, reads a file or the environment, looks at the
//! clock or asks the OS for randomness. Time comes in through [`Clock`], randomness through
//! [`Entropy`], and chain state (a permit nonce, a Solana blockhash, mint decimals and token
//! program) as plain arguments.
//!
//! # Overview
//!
//! - [`Challenge`]: a parsed 402 (v1 body or v2 `PAYMENT-REQUIRED`), each offer kept as its
//!   original JSON plus a typed [`Requirement`].
//! - [`PaymentPolicy`] → [`Selected`]: which offer to pay; nothing above the caps can be signed.
//! - [`evm::exact::pay`], [`evm::permit::pay`], `svm::pay` → [`PaymentHeader`].
//! - [`PaymentPayload`] and the `verify` functions of each scheme, for servers.
//! - [`Receipt`]: `PAYMENT-RESPONSE` / `X-PAYMENT-RESPONSE`.
//! - [`auth`]: `X-Auth-*` headers.
//! - Money is [`TokenAmount`] (atomic `U256`) with an [`Asset`]; networks are CAIP-2
//!   [`Network`]s that also read v1 names.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "evm")] {
//! use http::HeaderMap;
//! use x402_core::{Challenge, FixedClock, LocalEvmSigner, PaymentPolicy, evm};
//!
//! let body = br#"{"x402Version":1,"error":"X-PAYMENT header is required","accepts":[{
//!   "scheme":"exact","network":"base-sepolia","maxAmountRequired":"10000",
//!   "asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e",
//!   "payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","resource":"https://api.example/x",
//!   "description":"","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}"#;
//! let challenge = Challenge::from_response(402, &HeaderMap::new(), body)?;
//! let selected = PaymentPolicy::default().select(&challenge)?;
//!
//! let signer = LocalEvmSigner::from_hex("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")?;
//! let clock = FixedClock::from_unix(1_740_672_100);
//! let mut rng = |buf: &mut [u8]| buf.fill(7); // use a CSPRNG in real code
//! let header = evm::exact::pay(&selected, &signer, &clock, &mut rng)?;
//! assert_eq!(header.name(), "X-PAYMENT");
//! # }
//! # Ok::<(), x402_core::Error>(())
//! ```
//!
//! # Crate features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `evm` | yes | EVM `exact` and `permit`, [`LocalEvmSigner`], EIP-191 wallet auth (alloy) |
//! | `solana` | no | `svm` (Solana `exact`), `LocalSolanaSigner`, ed25519 wallet auth (Solana component crates, spl-token) |
//! | `secp256k1` | no | implies `evm`; recovers EVM signatures with libsecp256k1 (C) instead of pure-Rust k256: several times faster verification, for facilitators and servers; signing is unchanged |
//!
//! Without `solana`, no `solana-*` crate is compiled; Solana offers can still be read.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod address;
pub mod auth;
pub mod challenge;
pub mod clock;
mod encoding;
mod error;
#[cfg(feature = "evm")]
pub mod evm;
pub mod extensions;
pub mod money;
pub mod network;
pub mod payload;
pub mod policy;
pub mod receipt;
pub mod signer;
#[cfg(feature = "solana")]
pub mod svm;

pub use address::{Address, PayTo, SolanaAddress};
pub use challenge::{
    Challenge, Offer, PaymentRequired, Requirement, RequirementSpec, ResourceInfo, Scheme,
    X402Version,
};
pub use clock::{Clock, Entropy, FixedClock};
pub use error::{Error, InvalidReason, Refusal, Result};
pub use money::{Asset, AssetId, AssetRegistry, TokenAmount, TransferMethod, UsdMicros};
pub use network::{ChainFamily, Network};
pub use payload::{PaymentHeader, PaymentPayload};
pub use policy::{PaymentPolicy, Selected};
pub use receipt::Receipt;
#[cfg(feature = "solana")]
pub use signer::LocalSolanaSigner;
pub use signer::SolanaSigner;
#[cfg(feature = "evm")]
pub use signer::{EvmSigner, LocalEvmSigner};
