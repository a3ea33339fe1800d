//! The `permit` scheme on EVM: an ERC-2612 permit to the facilitator, who then pulls the
//! payment with `transferFrom`. This is how the x402 compute service describes its MegaETH
//! (USDm) flow. **No public wire definition exists for it** (reference `compute-api.md` §9.6),
//! so this module is our own design; everything about it lives here so it can change in one
//! place.
//!
//! # Requirement
//!
//! ```json
//! { "scheme": "permit", "network": "eip155:4326", "amount": "1000000000000000000",
//!   "asset": "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7",
//!   "payTo": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "maxTimeoutSeconds": 60,
//!   "extra": { "name": "MegaUSD", "version": "1",
//!              "facilitatorAddress": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" } }
//! ```
//!
//! - `extra.name` / `extra.version`: the token's EIP-712 domain (as for `exact`).
//! - `extra.facilitatorAddress` (required): the permit's `spender`, the account that will call
//!   `permit()` and `transferFrom()`. The name follows the `upto` scheme's `extra` field.
//! - v1 challenges carry the same fields with `maxAmountRequired` and the v1 network name.
//!
//! # Payload
//!
//! ```json
//! { "signature": "0x<65 bytes r‖s‖v>",
//!   "permit": { "owner": "0x…", "spender": "0x…", "value": "1000000000000000000",
//!               "nonce": "0", "deadline": "1740672154" } }
//! ```
//!
//! The signature is over `Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)`
//! in the token's domain `{name, version, chainId, verifyingContract = asset}`.
//! - `owner` = the payer; `spender` = `extra.facilitatorAddress`; `value` = the amount exactly.
//! - `nonce` = the token's `nonces(owner)`, read from the chain by the caller and passed in
//!   (this crate does no IO).
//! - `deadline` = now + `maxTimeoutSeconds`.
//!
//! # Settlement (facilitator)
//!
//! `permit(owner, spender, value, deadline, v, r, s)`, then
//! `transferFrom(owner, payTo, value)` from the spender account. The permit does not bind
//! `payTo`: the payer trusts the facilitator named in the challenge to move the funds to the
//! recipient, which is the trust model the service documents. A client that does not trust
//! the facilitator should prefer an `exact` offer.
//!
//! # Verification
//!
//! [`verify`]: the payment answers the requirement; the signature recovers to `owner`;
//! `spender == extra.facilitatorAddress`; `value == amount`; `deadline ≥ now + 6` and
//! `deadline ≤ now + maxTimeoutSeconds + 600` (a client's clock may run up to 600 s ahead, the
//! backdating `exact` allows, but a captured permit cannot stay usable for days); and, when the
//! caller passes the on-chain nonce, `nonce` equals it.

use alloy_primitives::{Address, U256};
use alloy_sol_types::SolStruct;
use serde::{Deserialize, Serialize};

use super::types::Permit;
use super::{
    CLOCK_SKEW_SECONDS, VALIDITY_BUFFER_SECONDS, check_signer, parse_signature, signature_hex,
    token_domain,
};
use crate::address::parse_evm;
use crate::challenge::{Requirement, Scheme};
use crate::clock::Clock;
use crate::error::InvalidReason;
use crate::money::TokenAmount;
use crate::payload::{self, PaymentHeader, PaymentPayload};
use crate::policy::Selected;
use crate::signer::EvmSigner;
use crate::{Error, Result};

/// The `extra` key naming the spender.
pub const FACILITATOR_KEY: &str = "facilitatorAddress";

/// The signed permit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitAuthorization {
    /// Token holder (payer).
    #[serde(with = "super::checksummed")]
    pub owner: Address,
    /// Facilitator allowed to pull the funds.
    #[serde(with = "super::checksummed")]
    pub spender: Address,
    /// Atomic amount.
    pub value: TokenAmount,
    /// The token's `nonces(owner)` at signing time.
    pub nonce: TokenAmount,
    /// Unix seconds after which the permit is void.
    #[serde(with = "super::u64_string")]
    pub deadline: u64,
}

/// The scheme payload: `{ signature, permit }`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermitEvmPayload {
    /// `0x` hex of the 65-byte signature.
    pub signature: String,
    /// What was signed.
    pub permit: PermitAuthorization,
}

impl std::fmt::Debug for PermitEvmPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermitEvmPayload")
            .field("signature", &"<redacted>")
            .field("permit", &self.permit)
            .finish()
    }
}

impl PermitAuthorization {
    fn typed(&self) -> Permit {
        Permit {
            owner: self.owner,
            spender: self.spender,
            value: self.value.atomic(),
            nonce: self.nonce.atomic(),
            deadline: U256::from(self.deadline),
        }
    }
}

/// The spender (`extra.facilitatorAddress`) of a `permit` offer.
///
/// # Errors
/// [`Error::UnsupportedScheme`] unless the offer is `permit` on EVM; [`Error::MissingField`]
/// without a valid `extra.facilitatorAddress`.
pub fn spender(requirement: &Requirement) -> Result<Address> {
    if requirement.scheme() != &Scheme::Permit || !requirement.network().is_evm() {
        return Err(Error::UnsupportedScheme {
            scheme: requirement.scheme().to_string(),
            network: requirement.network().to_string(),
        });
    }
    let text = requirement
        .extra_str(FACILITATOR_KEY)
        .ok_or(Error::MissingField {
            field: "extra.facilitatorAddress",
            hint: "a permit offer must name the facilitator that will spend the permit",
        })?;
    parse_evm(text)
}

/// The permit a payer signs for `requirement` at unix time `now`, with the token's current
/// `nonces(owner)`.
///
/// # Errors
/// As [`spender`].
pub fn authorization_for(
    requirement: &Requirement,
    owner: Address,
    nonce: U256,
    now: u64,
) -> Result<PermitAuthorization> {
    Ok(PermitAuthorization {
        owner,
        spender: spender(requirement)?,
        value: requirement.amount(),
        nonce: TokenAmount::new(nonce),
        deadline: now.saturating_add(requirement.max_timeout_seconds()),
    })
}

/// The EIP-712 digest of `permit` under the offer's token domain.
///
/// # Errors
/// As [`token_domain`].
pub fn signing_hash(
    requirement: &Requirement,
    permit: &PermitAuthorization,
) -> Result<alloy_primitives::B256> {
    Ok(permit
        .typed()
        .eip712_signing_hash(&token_domain(requirement)?))
}

/// Builds and signs the payment header for a selected `permit` offer; `nonce` is the token's
/// `nonces(owner)`, read by the caller.
///
/// # Errors
/// As [`authorization_for`] and [`signing_hash`]; [`Error::Signing`] from the signer.
pub fn pay(
    selected: &Selected<'_>,
    signer: &dyn EvmSigner,
    nonce: U256,
    clock: &dyn Clock,
) -> Result<PaymentHeader> {
    let requirement = selected.requirement();
    let permit = authorization_for(requirement, signer.address(), nonce, clock.now_unix())?;
    let signature = signer.sign_hash(&signing_hash(requirement, &permit)?)?;
    payload::encode(
        selected,
        &PermitEvmPayload {
            signature: signature_hex(&signature),
            permit,
        },
    )
}

/// A permit payment that passed [`verify`]. `Debug` hides the signature.
#[derive(Clone)]
pub struct Verified {
    /// The payer.
    pub payer: Address,
    /// The permit to submit.
    pub permit: PermitAuthorization,
    /// Its signature.
    pub signature: alloy_primitives::Signature,
}

/// Verifies a `permit` payment against the server's requirement at unix time `now`.
/// `onchain_nonce` is the token's `nonces(owner)` when the caller has read it.
///
/// # Errors
/// [`Error::InvalidPayment`] with the matching [`InvalidReason`].
pub fn verify(
    payment: &PaymentPayload,
    requirement: &Requirement,
    now: u64,
    onchain_nonce: Option<U256>,
) -> Result<Verified> {
    payment.check_answers(requirement)?;
    let payload: PermitEvmPayload = payment.scheme_payload()?;
    verify_payload(&payload, requirement, now, onchain_nonce)
}

/// [`verify`] for a scheme payload already taken out of its envelope.
///
/// # Errors
/// As [`verify`].
pub fn verify_payload(
    payload: &PermitEvmPayload,
    requirement: &Requirement,
    now: u64,
    onchain_nonce: Option<U256>,
) -> Result<Verified> {
    let expected_spender = spender(requirement)
        .map_err(|e| Error::invalid(InvalidReason::Requirements, e.to_string()))?;
    let permit = &payload.permit;
    let signature = parse_signature(&payload.signature, InvalidReason::PermitSignature)?;
    let digest = signing_hash(requirement, permit)
        .map_err(|e| Error::invalid(InvalidReason::Requirements, e.to_string()))?;
    check_signer(
        &signature,
        &digest,
        permit.owner,
        InvalidReason::PermitSignature,
    )?;
    if permit.spender != expected_spender {
        return Err(Error::invalid(
            InvalidReason::PermitSpenderMismatch,
            format!(
                "permit spender is {}, the offer's facilitator is {expected_spender}",
                permit.spender
            ),
        ));
    }
    if permit.value != requirement.amount() {
        return Err(Error::invalid(
            InvalidReason::PermitValueMismatch,
            format!(
                "permit is for {} atomic units, the offer asks exactly {}",
                permit.value,
                requirement.amount()
            ),
        ));
    }
    if permit.deadline < now.saturating_add(VALIDITY_BUFFER_SECONDS) {
        return Err(Error::invalid(
            InvalidReason::PermitDeadline,
            format!(
                "permit expired or expires within {VALIDITY_BUFFER_SECONDS} s (deadline {}, now {now})",
                permit.deadline
            ),
        ));
    }
    let latest = now
        .saturating_add(requirement.max_timeout_seconds())
        .saturating_add(CLOCK_SKEW_SECONDS);
    if permit.deadline > latest {
        return Err(Error::invalid(
            InvalidReason::PermitDeadline,
            format!(
                "permit deadline {} is later than now ({now}) plus the offer's maxTimeoutSeconds ({}) plus {CLOCK_SKEW_SECONDS} s",
                permit.deadline,
                requirement.max_timeout_seconds()
            ),
        ));
    }
    if let Some(expected) = onchain_nonce
        && permit.nonce.atomic() != expected
    {
        return Err(Error::invalid(
            InvalidReason::PermitNonceMismatch,
            format!(
                "permit nonce is {}, the token expects {expected}",
                permit.nonce
            ),
        ));
    }
    Ok(Verified {
        payer: permit.owner,
        permit: permit.clone(),
        signature,
    })
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("payer", &self.payer)
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}
