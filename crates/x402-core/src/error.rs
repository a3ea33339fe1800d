//! The crate's one error type and the facilitator reason codes.

use std::fmt;

/// Everything that can go wrong in `x402-core`.
///
/// Messages name what was wrong and, where there is one, what to do about it. They never
/// contain private keys, signatures, authorizations or API keys: variants carry only public
/// values (addresses, amounts, networks) and short descriptions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The response status is neither 402 nor 412, so there is nothing to pay.
    #[error(
        "status {status} is not a payment challenge (x402 uses 402, and 412 with PAYMENT-REQUIRED)"
    )]
    NotPaymentRequired {
        /// The HTTP status that was given.
        status: u16,
    },
    /// A 402 (or 412) without an x402 challenge, such as "insufficient credits".
    #[error("the server answered {status} without an x402 challenge: {message}")]
    NoChallenge {
        /// The HTTP status.
        status: u16,
        /// The server's own message, taken from its JSON `error`/`message` or its text body.
        message: String,
    },
    /// Input that is not well formed: bad base64, bad JSON, a missing field, a wrong type.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// What was being read (`PAYMENT-REQUIRED header`, `accepts[2]`, ...).
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// An `x402Version` this crate does not speak.
    #[error("unsupported x402Version {0}: this implementation speaks versions 1 and 2")]
    UnsupportedVersion(u64),
    /// A network name that is neither valid CAIP-2 nor a known v1 name.
    #[error(
        "unknown network `{0}`: use a CAIP-2 id such as `eip155:8453` or a known v1 name such as `base`"
    )]
    UnknownNetwork(String),
    /// A network that is valid but that this operation cannot use.
    #[error("network {network} is not supported here: {hint}")]
    UnsupportedNetwork {
        /// The network, as CAIP-2.
        network: String,
        /// What is supported instead.
        hint: &'static str,
    },
    /// A scheme this crate cannot pay or verify on the given network.
    #[error("unsupported scheme `{scheme}` on {network}")]
    UnsupportedScheme {
        /// The scheme as written.
        scheme: String,
        /// The network, as CAIP-2.
        network: String,
    },
    /// An amount that is not a non-negative integer of atomic units, or that does not fit.
    #[error("invalid amount `{input}`: {reason}")]
    InvalidAmount {
        /// The offending text (amounts are public).
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An address that does not parse for its chain.
    #[error("invalid {kind} address `{input}`")]
    InvalidAddress {
        /// The offending text.
        input: String,
        /// "EVM", "Solana", ...
        kind: &'static str,
    },
    /// A required field of a requirement's `extra` (or of chain state) is missing or invalid.
    #[error("requirement lacks {field}: {hint}")]
    MissingField {
        /// The field, e.g. `extra.name`.
        field: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// Arithmetic on amounts overflowed.
    #[error("amount arithmetic overflowed")]
    Overflow,
    /// No offer passed the payment policy. Each refusal says which offer and why.
    #[error("no offer in the challenge is acceptable under the payment policy: {}", Refusals(.refusals))]
    NoAcceptableOffer {
        /// One entry per offer, in challenge order.
        refusals: Vec<Refusal>,
    },
    /// Key material could not be loaded. The message never contains the key.
    #[error("invalid key: {0}")]
    InvalidKey(&'static str),
    /// A signer failed to sign.
    #[error("signing failed: {0}")]
    Signing(String),
    /// A payment failed verification; `reason` is the wire reason code.
    #[error("payment is invalid ({reason}): {detail}")]
    InvalidPayment {
        /// The reason code sent back to clients.
        reason: InvalidReason,
        /// A human explanation with public values only.
        detail: String,
    },
    /// Wallet-signature auth headers were missing, malformed, stale or wrongly signed.
    #[error("wallet auth rejected: {0}")]
    AuthRejected(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, detail: impl fmt::Display) -> Self {
        Error::Malformed {
            what: what.into(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Self {
        Error::InvalidPayment {
            reason,
            detail: detail.into(),
        }
    }

    /// The verification reason code, if this error is a failed verification.
    pub fn invalid_reason(&self) -> Option<InvalidReason> {
        match self {
            Error::InvalidPayment { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Whether this is a 402 that carried no challenge (for example "insufficient credits").
    pub fn is_no_challenge(&self) -> bool {
        matches!(self, Error::NoChallenge { .. })
    }

    /// Whether the policy refused every offer.
    pub fn is_policy_refusal(&self) -> bool {
        matches!(self, Error::NoAcceptableOffer { .. })
    }
}

/// Why one offer of a challenge was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Index in the challenge's `accepts`.
    pub index: usize,
    /// A short public description of the offer (`exact on eip155:8453: 1.5 USDC`).
    pub offer: String,
    /// Why the policy refused it.
    pub reason: String,
}

struct Refusals<'a>(&'a [Refusal]);

impl fmt::Display for Refusals<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the challenge offers nothing");
        }
        for (i, refusal) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "accepts[{}] ({}): {}",
                refusal.index, refusal.offer, refusal.reason
            )?;
        }
        Ok(())
    }
}

/// Verification failure reasons, mapped to the x402 reason strings.
///
/// EVM `exact` and the protocol-level reasons use the spec (v2 §9) strings. The `permit`
/// scheme is our own design and uses `invalid_permit_evm_*` by analogy. Solana reasons use the
/// `invalid_exact_svm_payload_*` family of the reference implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidReason {
    /// `insufficient_funds`
    InsufficientFunds,
    /// `invalid_exact_evm_payload_authorization_valid_after`
    ValidAfter,
    /// `invalid_exact_evm_payload_authorization_valid_before`
    ValidBefore,
    /// `invalid_exact_evm_payload_authorization_value_mismatch`
    ValueMismatch,
    /// `invalid_exact_evm_payload_signature`
    EvmSignature,
    /// `invalid_exact_evm_payload_recipient_mismatch`
    RecipientMismatch,
    /// `invalid_exact_evm_nonce_already_used`
    NonceAlreadyUsed,
    /// `invalid_network`
    Network,
    /// `invalid_payload`
    Payload,
    /// `invalid_payment_requirements`
    Requirements,
    /// `invalid_scheme`
    Scheme,
    /// `unsupported_scheme`
    UnsupportedScheme,
    /// `invalid_x402_version`
    Version,
    /// `invalid_transaction_state`
    TransactionState,
    /// `duplicate_settlement`
    DuplicateSettlement,
    /// `invalid_permit_evm_payload_signature`
    PermitSignature,
    /// `invalid_permit_evm_payload_deadline`
    PermitDeadline,
    /// `invalid_permit_evm_payload_value_mismatch`
    PermitValueMismatch,
    /// `invalid_permit_evm_payload_spender_mismatch`
    PermitSpenderMismatch,
    /// `invalid_permit_evm_payload_nonce_mismatch`
    PermitNonceMismatch,
    /// `invalid_exact_svm_payload_transaction`
    SvmTransaction,
    /// `invalid_exact_svm_payload_transaction_instructions_length`
    SvmInstructionsLength,
    /// `invalid_exact_svm_payload_transaction_instructions`
    SvmInstructions,
    /// `invalid_exact_svm_payload_compute_budget`
    SvmComputeBudget,
    /// `invalid_exact_svm_payload_amount_mismatch`
    SvmAmountMismatch,
    /// `invalid_exact_svm_payload_mint_mismatch`
    SvmMintMismatch,
    /// `invalid_exact_svm_payload_recipient_mismatch`
    SvmRecipientMismatch,
    /// `invalid_exact_svm_payload_memo_mismatch`
    SvmMemoMismatch,
    /// `invalid_exact_svm_payload_transaction_fee_payer_transferring_funds`
    SvmFeePayerTransferring,
    /// `fee_payer_not_managed_by_facilitator`
    SvmFeePayerNotManaged,
    /// `invalid_exact_svm_payload_signature`
    SvmSignature,
}

impl InvalidReason {
    /// The reason string on the wire.
    pub fn as_str(self) -> &'static str {
        use InvalidReason::*;
        match self {
            InsufficientFunds => "insufficient_funds",
            ValidAfter => "invalid_exact_evm_payload_authorization_valid_after",
            ValidBefore => "invalid_exact_evm_payload_authorization_valid_before",
            ValueMismatch => "invalid_exact_evm_payload_authorization_value_mismatch",
            EvmSignature => "invalid_exact_evm_payload_signature",
            RecipientMismatch => "invalid_exact_evm_payload_recipient_mismatch",
            NonceAlreadyUsed => "invalid_exact_evm_nonce_already_used",
            Network => "invalid_network",
            Payload => "invalid_payload",
            Requirements => "invalid_payment_requirements",
            Scheme => "invalid_scheme",
            UnsupportedScheme => "unsupported_scheme",
            Version => "invalid_x402_version",
            TransactionState => "invalid_transaction_state",
            DuplicateSettlement => "duplicate_settlement",
            PermitSignature => "invalid_permit_evm_payload_signature",
            PermitDeadline => "invalid_permit_evm_payload_deadline",
            PermitValueMismatch => "invalid_permit_evm_payload_value_mismatch",
            PermitSpenderMismatch => "invalid_permit_evm_payload_spender_mismatch",
            PermitNonceMismatch => "invalid_permit_evm_payload_nonce_mismatch",
            SvmTransaction => "invalid_exact_svm_payload_transaction",
            SvmInstructionsLength => "invalid_exact_svm_payload_transaction_instructions_length",
            SvmInstructions => "invalid_exact_svm_payload_transaction_instructions",
            SvmComputeBudget => "invalid_exact_svm_payload_compute_budget",
            SvmAmountMismatch => "invalid_exact_svm_payload_amount_mismatch",
            SvmMintMismatch => "invalid_exact_svm_payload_mint_mismatch",
            SvmRecipientMismatch => "invalid_exact_svm_payload_recipient_mismatch",
            SvmMemoMismatch => "invalid_exact_svm_payload_memo_mismatch",
            SvmFeePayerTransferring => {
                "invalid_exact_svm_payload_transaction_fee_payer_transferring_funds"
            }
            SvmFeePayerNotManaged => "fee_payer_not_managed_by_facilitator",
            SvmSignature => "invalid_exact_svm_payload_signature",
        }
    }
}

impl fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
