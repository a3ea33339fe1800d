//! The `exact` scheme on EVM: an EIP-3009 `TransferWithAuthorization` signed by the payer.
//!
//! Client: [`pay`] (or [`authorization_for`] + [`signing_hash`] + [`payload()`] for signers that
//! sign elsewhere). Server: [`verify`] checks everything that needs no chain; the balance
//! and `authorizationState` checks are the caller's, with chain access.

use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolStruct;
use serde::{Deserialize, Serialize};

use super::types::TransferWithAuthorization;
use super::{
    CLOCK_SKEW_SECONDS, VALIDITY_BUFFER_SECONDS, check_signer, parse_signature, pay_to_evm,
    random_b256, signature_hex, token_domain,
};
use crate::challenge::{Requirement, Scheme};
use crate::clock::{Clock, Entropy};
use crate::error::InvalidReason;
use crate::money::TokenAmount;
use crate::payload::{self, PaymentHeader, PaymentPayload};
use crate::policy::Selected;
use crate::signer::EvmSigner;
use crate::{Error, Result};

/// The `authorization` object of an exact EVM payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Payer.
    #[serde(with = "super::checksummed")]
    pub from: Address,
    /// Recipient (`payTo`).
    #[serde(with = "super::checksummed")]
    pub to: Address,
    /// Atomic amount.
    pub value: TokenAmount,
    /// Unix seconds after which the authorization is valid.
    #[serde(with = "super::u64_string")]
    pub valid_after: u64,
    /// Unix seconds before which it must be used.
    #[serde(with = "super::u64_string")]
    pub valid_before: u64,
    /// 32 random bytes.
    pub nonce: B256,
}

/// The scheme payload: `{ signature, authorization }`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactEvmPayload {
    /// `0x` hex of the 65-byte signature.
    pub signature: String,
    /// What was signed.
    pub authorization: Authorization,
}

impl std::fmt::Debug for ExactEvmPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExactEvmPayload")
            .field("signature", &"<redacted>")
            .field("authorization", &self.authorization)
            .finish()
    }
}

impl Authorization {
    fn typed(&self) -> TransferWithAuthorization {
        TransferWithAuthorization {
            from: self.from,
            to: self.to,
            value: self.value.atomic(),
            validAfter: U256::from(self.valid_after),
            validBefore: U256::from(self.valid_before),
            nonce: self.nonce,
        }
    }
}

fn check_offer(requirement: &Requirement) -> Result<()> {
    if requirement.scheme() != &Scheme::Exact || !requirement.network().is_evm() {
        return Err(Error::UnsupportedScheme {
            scheme: requirement.scheme().to_string(),
            network: requirement.network().to_string(),
        });
    }
    Ok(())
}

/// The authorization a payer signs for `requirement` at unix time `now`:
/// `validAfter = now − 600`, `validBefore = now + maxTimeoutSeconds`.
///
/// # Errors
/// [`Error::UnsupportedScheme`] unless the offer is `exact` on EVM;
/// [`Error::InvalidAddress`] when `payTo` is not an EVM address.
pub fn authorization_for(
    requirement: &Requirement,
    from: Address,
    now: u64,
    nonce: B256,
) -> Result<Authorization> {
    check_offer(requirement)?;
    Ok(Authorization {
        from,
        to: pay_to_evm(requirement)?,
        value: requirement.amount(),
        valid_after: now.saturating_sub(CLOCK_SKEW_SECONDS),
        valid_before: now.saturating_add(requirement.max_timeout_seconds()),
        nonce,
    })
}

/// The EIP-712 digest of `authorization` under the offer's token domain.
///
/// # Errors
/// As [`token_domain`].
pub fn signing_hash(requirement: &Requirement, authorization: &Authorization) -> Result<B256> {
    Ok(authorization
        .typed()
        .eip712_signing_hash(&token_domain(requirement)?))
}

/// Builds and signs the payment header for a selected `exact` EVM offer.
///
/// # Errors
/// As [`authorization_for`] and [`signing_hash`]; [`Error::Signing`] from the signer.
pub fn pay(
    selected: &Selected<'_>,
    signer: &dyn EvmSigner,
    clock: &dyn Clock,
    rng: &mut dyn Entropy,
) -> Result<PaymentHeader> {
    let requirement = selected.requirement();
    let authorization = authorization_for(
        requirement,
        signer.address(),
        clock.now_unix(),
        random_b256(rng),
    )?;
    let digest = signing_hash(requirement, &authorization)?;
    let signature = signer.sign_hash(&digest)?;
    payload(selected, authorization, &signature)
}

/// Wraps an authorization and its signature (made elsewhere, over [`signing_hash`]) into the
/// payment header of the selected offer.
///
/// # Errors
/// [`Error::Malformed`] if the payload cannot be serialized (it always can).
pub fn payload(
    selected: &Selected<'_>,
    authorization: Authorization,
    signature: &alloy_primitives::Signature,
) -> Result<PaymentHeader> {
    payload::encode(
        selected,
        &ExactEvmPayload {
            signature: signature_hex(signature),
            authorization,
        },
    )
}

/// A payment that passed [`verify`]; what settlement needs. `Debug` hides the signature.
#[derive(Clone)]
pub struct Verified {
    /// The payer.
    pub payer: Address,
    /// The authorization to submit.
    pub authorization: Authorization,
    /// The signature, `r ‖ s ‖ v`.
    pub signature: alloy_primitives::Signature,
}

/// Verifies an `exact` EVM payment against the server's own requirement at unix time `now`.
///
/// Checks, in order: the payment answers the requirement (version, scheme, network,
/// `accepted`); the signature recovers to `authorization.from` under the token's domain;
/// `to == payTo`; `validBefore ≥ now + 6` and `validAfter ≤ now`; `value == amount` exactly.
/// Balance and nonce state need the chain and are the caller's to check.
///
/// # Errors
/// [`Error::InvalidPayment`] with the matching [`InvalidReason`].
pub fn verify(payment: &PaymentPayload, requirement: &Requirement, now: u64) -> Result<Verified> {
    payment.check_answers(requirement)?;
    check_offer(requirement)
        .map_err(|e| Error::invalid(InvalidReason::UnsupportedScheme, e.to_string()))?;
    let payload: ExactEvmPayload = payment.scheme_payload()?;
    verify_payload(&payload, requirement, now)
}

/// [`verify`] for a scheme payload already taken out of its envelope.
///
/// # Errors
/// As [`verify`].
pub fn verify_payload(
    payload: &ExactEvmPayload,
    requirement: &Requirement,
    now: u64,
) -> Result<Verified> {
    let authorization = &payload.authorization;
    let signature = parse_signature(&payload.signature, InvalidReason::EvmSignature)?;
    let digest = signing_hash(requirement, authorization)
        .map_err(|e| Error::invalid(InvalidReason::Requirements, e.to_string()))?;
    check_signer(
        &signature,
        &digest,
        authorization.from,
        InvalidReason::EvmSignature,
    )?;
    let pay_to = pay_to_evm(requirement)
        .map_err(|e| Error::invalid(InvalidReason::Requirements, e.to_string()))?;
    if authorization.to != pay_to {
        return Err(Error::invalid(
            InvalidReason::RecipientMismatch,
            format!(
                "authorization pays {}, the offer's payTo is {pay_to}",
                authorization.to
            ),
        ));
    }
    if authorization.valid_before < now.saturating_add(VALIDITY_BUFFER_SECONDS) {
        return Err(Error::invalid(
            InvalidReason::ValidBefore,
            format!(
                "authorization expired or expires within {VALIDITY_BUFFER_SECONDS} s (validBefore {}, now {now})",
                authorization.valid_before
            ),
        ));
    }
    // A client sets `validBefore` to its now + maxTimeoutSeconds (and `validAfter` into the
    // past: ours by CLOCK_SKEW_SECONDS, the official SDKs' to 0). An authorization valid for
    // longer would let a captured payment stay usable far beyond what the offer allows; a
    // client clock up to CLOCK_SKEW_SECONDS ahead of ours is tolerated.
    let latest = now
        .saturating_add(requirement.max_timeout_seconds())
        .saturating_add(CLOCK_SKEW_SECONDS);
    if authorization.valid_before > latest {
        return Err(Error::invalid(
            InvalidReason::ValidBefore,
            format!(
                "authorization is valid until {}, later than now ({now}) plus the offer's maxTimeoutSeconds ({}) plus {CLOCK_SKEW_SECONDS} s",
                authorization.valid_before,
                requirement.max_timeout_seconds()
            ),
        ));
    }
    if authorization.valid_after > now {
        return Err(Error::invalid(
            InvalidReason::ValidAfter,
            format!(
                "authorization is not valid yet (validAfter {}, now {now})",
                authorization.valid_after
            ),
        ));
    }
    if authorization.value != requirement.amount() {
        return Err(Error::invalid(
            InvalidReason::ValueMismatch,
            format!(
                "authorization is for {} atomic units, the offer asks exactly {}",
                authorization.value,
                requirement.amount()
            ),
        ));
    }
    Ok(Verified {
        payer: authorization.from,
        authorization: authorization.clone(),
        signature,
    })
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("payer", &self.payer)
            .field("authorization", &self.authorization)
            .finish_non_exhaustive()
    }
}
