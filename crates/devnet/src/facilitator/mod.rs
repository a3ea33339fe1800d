//! The x402 facilitator: verification with x402-core plus on-chain checks, and settlement by
//! real transactions. The paid services call it in process; [`http`] serves it over HTTP
//! (`GET /supported`, `POST /verify`, `POST /settle`) for other servers and conformance tools.
//!
//! A payment is settled at most once: before anything is sent to a chain, the payment's key
//! (network, payer and authorization nonce) is claimed in the database with a unique insert, so
//! of any number of concurrent duplicates exactly one proceeds and the rest get
//! `duplicate_settlement`. A claim is released only when the chain did not take the payment.

pub mod http;

use std::sync::Arc;

use x402_core::challenge::Scheme;
use x402_core::{
    AssetId, Clock, InvalidReason, Network, PayTo, PaymentPayload, Requirement, TokenAmount,
};

use crate::chains::Chains;
use crate::chains::evm::EvmChain;
use crate::chains::solana::{SolanaChain, USDC_DECIMALS};
use crate::error::{Error, Result};
use crate::store::{Claim, Store};

/// A settled payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The network, as the requirement wrote it.
    pub network: String,
    /// The payer.
    pub payer: PayTo,
    /// Transaction hash.
    pub transaction: String,
    /// Amount moved.
    pub amount: TokenAmount,
}

/// One kind of payment the facilitator settles (an entry of `GET /supported`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The x402 version.
    pub version: x402_core::X402Version,
    /// The scheme.
    pub scheme: Scheme,
    /// The network.
    pub network: Network,
}

/// Where the devnet's payments go: the payees this facilitator serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payees {
    /// Recipient on the EVM chains.
    pub evm: alloy::primitives::Address,
    /// Recipient of Solana payments (owner of the receiving token account).
    pub solana: x402_core::SolanaAddress,
}

impl Payees {
    /// Whether `pay_to` is one of them.
    pub fn contains(&self, pay_to: &PayTo) -> bool {
        *pay_to == PayTo::Evm(self.evm) || *pay_to == PayTo::Solana(self.solana)
    }
}

/// The facilitator over the devnet's chains.
pub struct Facilitator {
    chains: Chains,
    payees: Payees,
    store: Arc<Store>,
    clock: Arc<dyn Clock + Send + Sync>,
}

impl std::fmt::Debug for Facilitator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facilitator")
            .field("chains", &self.chains)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Error {
    Error::Payment(x402_core::Error::InvalidPayment {
        reason,
        detail: detail.into(),
    })
}

/// The refusal of a requirement this facilitator does not settle.
fn unsupported(requirement: &Requirement) -> Error {
    invalid(
        InvalidReason::UnsupportedScheme,
        format!(
            "this facilitator does not settle `{}` on {} for asset {}",
            requirement.scheme(),
            requirement.network(),
            requirement.asset()
        ),
    )
}

impl Facilitator {
    /// A facilitator settling `exact` on Base Sepolia and, when they run, `permit` on MegaETH
    /// and `exact` on the Solana ledger. A `permit` moves the payer's tokens wherever the
    /// facilitator sends them (its signature does not bind `payTo`), so permits settle only to
    /// `payees`.
    pub fn new(
        chains: Chains,
        payees: Payees,
        store: Arc<Store>,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Facilitator {
        Facilitator {
            chains,
            payees,
            store,
            clock,
        }
    }

    /// The payees it serves.
    pub fn payees(&self) -> Payees {
        self.payees
    }

    /// The chains it settles on.
    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// The Solana ledger, if this facilitator serves `requirement` on it.
    fn solana_for(&self, requirement: &Requirement) -> Option<&SolanaChain> {
        let solana = self.chains.solana.as_deref()?;
        let ok = requirement.scheme() == &Scheme::Exact
            && requirement.network() == &Network::SOLANA_DEVNET
            && requirement.asset() == AssetId::Solana(solana.mint());
        ok.then_some(solana)
    }

    /// The Solana fee payer, when the Solana ledger runs.
    pub fn solana_fee_payer(&self) -> Option<x402_core::SolanaAddress> {
        self.chains
            .solana
            .as_ref()
            .map(|s| x402_core::SolanaSigner::pubkey(s.fee_payer()))
    }

    /// The chain a requirement settles on, if this facilitator serves its scheme, network and
    /// asset.
    fn chain_for(&self, requirement: &Requirement) -> Option<&EvmChain> {
        let chain = match requirement.scheme() {
            Scheme::Exact => Some(&*self.chains.base),
            Scheme::Permit => self.chains.megaeth.as_deref(),
            Scheme::Other(_) => None,
        }?;
        let network_ok = requirement.network().chain_id() == Some(chain.chain_id());
        let asset_ok = requirement.asset() == AssetId::Evm(chain.token().address);
        (network_ok && asset_ok).then_some(chain)
    }

    /// The facilitator's signer addresses (the permit spender, the transaction sender).
    pub fn evm_signer(&self) -> alloy::primitives::Address {
        self.chains.base.facilitator()
    }

    /// Every kind of payment this facilitator settles.
    pub fn kinds(&self) -> Vec<Kind> {
        let mut kinds = Vec::new();
        for version in [x402_core::X402Version::V1, x402_core::X402Version::V2] {
            let mut kind = |scheme: Scheme, network: Network| {
                kinds.push(Kind {
                    version,
                    scheme,
                    network,
                })
            };
            kind(Scheme::Exact, Network::evm(self.chains.base.chain_id()));
            if let Some(megaeth) = &self.chains.megaeth {
                kind(Scheme::Permit, Network::evm(megaeth.chain_id()));
            }
            if self.chains.solana.is_some() {
                kind(Scheme::Exact, Network::SOLANA_DEVNET);
            }
        }
        kinds
    }

    /// Verifies `payment` against `requirement`: x402-core's checks, then the chain's (balance,
    /// unused authorization or current permit nonce). Returns the payer.
    ///
    /// # Errors
    /// [`Error::Payment`] with the reason code; a chain error when the chain cannot answer.
    pub async fn verify(
        &self,
        payment: &PaymentPayload,
        requirement: &Requirement,
    ) -> Result<String> {
        Ok(self.check(payment, requirement).await?.payer())
    }

    async fn check(&self, payment: &PaymentPayload, requirement: &Requirement) -> Result<Checked> {
        let checked = self.verify_offchain(payment, requirement)?;
        self.check_onchain(requirement, &checked).await?;
        Ok(checked)
    }

    /// x402-core's checks, which need no chain, and the payee rule for permits.
    fn verify_offchain(
        &self,
        payment: &PaymentPayload,
        requirement: &Requirement,
    ) -> Result<Checked> {
        if requirement.network().is_solana() {
            let solana = self
                .solana_for(requirement)
                .ok_or_else(|| unsupported(requirement))?;
            let config = x402_core::svm::VerifyConfig {
                decimals: Some(USDC_DECIMALS),
                ..x402_core::svm::VerifyConfig::new(vec![x402_core::SolanaSigner::pubkey(
                    solana.fee_payer(),
                )])
            };
            let verified = x402_core::svm::verify(payment, requirement, &config)?;
            return Ok(Checked::Solana(Box::new(verified)));
        }
        self.chain_for(requirement)
            .ok_or_else(|| unsupported(requirement))?;
        let now = self.clock.now_unix();
        match requirement.scheme() {
            Scheme::Permit => {
                if !self.payees.contains(&requirement.pay_to()) {
                    return Err(invalid(
                        InvalidReason::Requirements,
                        format!(
                            "this facilitator settles permits only to the payee it serves ({}); payTo {} is not it",
                            self.payees.evm,
                            requirement.pay_to()
                        ),
                    ));
                }
                // The on-chain nonce is compared in `check_onchain`.
                let verified = x402_core::evm::permit::verify(payment, requirement, now, None)?;
                Ok(Checked::Permit(verified))
            }
            _ => Ok(Checked::Exact(x402_core::evm::exact::verify(
                payment,
                requirement,
                now,
            )?)),
        }
    }

    /// The chain's checks: the payer's balance, and an unused authorization or the current
    /// permit nonce.
    async fn check_onchain(&self, requirement: &Requirement, checked: &Checked) -> Result<()> {
        let insufficient = |payer: &dyn std::fmt::Display, amount: TokenAmount| {
            invalid(
                InvalidReason::InsufficientFunds,
                format!("{payer} holds less than {amount}"),
            )
        };
        if let Checked::Solana(verified) = checked {
            let solana = self
                .solana_for(requirement)
                .ok_or_else(|| unsupported(requirement))?;
            if TokenAmount::from_u64(solana.token_balance(&verified.payer)) < verified.amount {
                return Err(insufficient(&verified.payer, verified.amount));
            }
            return Ok(());
        }
        let chain = self
            .chain_for(requirement)
            .ok_or_else(|| unsupported(requirement))?;
        match checked {
            Checked::Permit(verified) => {
                let expected = chain.permit_nonce(verified.payer).await?;
                if verified.permit.nonce.atomic() != expected {
                    return Err(invalid(
                        InvalidReason::PermitNonceMismatch,
                        format!(
                            "permit nonce is {}, the token expects {expected}",
                            verified.permit.nonce
                        ),
                    ));
                }
                if chain.balance_of(verified.payer).await? < verified.permit.value.atomic() {
                    return Err(insufficient(&verified.payer, verified.permit.value));
                }
            }
            Checked::Exact(verified) => {
                if chain
                    .authorization_used(verified.payer, verified.authorization.nonce)
                    .await?
                {
                    return Err(invalid(
                        InvalidReason::NonceAlreadyUsed,
                        "this authorization was already used on chain",
                    ));
                }
                if chain.balance_of(verified.payer).await? < verified.authorization.value.atomic() {
                    return Err(insufficient(&verified.payer, verified.authorization.value));
                }
            }
            Checked::Solana(_) => {}
        }
        Ok(())
    }

    /// What settling `checked` claims: a key naming the network, the asset and what makes
    /// the payment unique on chain (the authorization or permit nonce, the Solana message).
    fn claim_of(requirement: &Requirement, checked: &Checked) -> PaymentClaim {
        let prefix = format!("{}:{}", requirement.network(), requirement.asset());
        match checked {
            Checked::Exact(v) => PaymentClaim {
                key: format!("{prefix}:{:#x}:{}", v.payer, v.authorization.nonce),
                payer: PayTo::Evm(v.payer),
                amount: v.authorization.value,
            },
            Checked::Permit(v) => PaymentClaim {
                key: format!("{prefix}:{:#x}:permit:{}", v.payer, v.permit.nonce),
                payer: PayTo::Evm(v.payer),
                amount: v.permit.value,
            },
            Checked::Solana(v) => {
                // The message (blockhash, memo, accounts, amount) identifies the payment.
                let digest =
                    <sha2::Sha256 as sha2::Digest>::digest(v.transaction.message.serialize());
                PaymentClaim {
                    key: format!("{prefix}:{}", alloy::hex::encode(digest)),
                    payer: PayTo::Solana(v.payer),
                    amount: v.amount,
                }
            }
        }
    }

    /// Verifies, claims and settles `payment` with a real transaction.
    ///
    /// # Errors
    /// As [`Facilitator::verify`]; [`Error::AlreadySettled`] (with the original transaction)
    /// when the same payment was settled before; `duplicate_settlement` when it is being
    /// settled.
    pub async fn settle(
        &self,
        payment: &PaymentPayload,
        requirement: &Requirement,
    ) -> Result<Settlement> {
        let checked = self.verify_offchain(payment, requirement)?;
        let claim = Facilitator::claim_of(requirement, &checked);
        // A payment seen before is answered from the record, before the chain (where it
        // would only show as a used nonce) is asked.
        self.refuse_if_seen(&claim.key)?;
        self.check_onchain(requirement, &checked).await?;
        self.claim(requirement, &claim)?;
        let sent = match checked {
            Checked::Solana(verified) => match self.solana_for(requirement) {
                Some(solana) => solana.settle(*verified),
                None => Err(unsupported(requirement)),
            },
            Checked::Exact(verified) => match self.chain_for(requirement) {
                Some(chain) => chain
                    .transfer_with_authorization(&verified)
                    .await
                    .map(|hash| format!("{hash:#x}")),
                None => Err(unsupported(requirement)),
            },
            Checked::Permit(verified) => {
                match (self.chain_for(requirement), requirement.pay_to()) {
                    (Some(chain), PayTo::Evm(pay_to)) => chain
                        .permit_and_pull(&verified, pay_to)
                        .await
                        .map(|hash| format!("{hash:#x}")),
                    _ => Err(unsupported(requirement)),
                }
            }
        };
        self.conclude(requirement, claim, sent)
    }

    /// Refuses a payment the store has a record of: settled (naming its transaction), or
    /// being settled.
    fn refuse_if_seen(&self, key: &str) -> Result<()> {
        match self.store.settlement(key)? {
            None => Ok(()),
            Some(record) => match record.transaction {
                Some(transaction) => Err(Error::AlreadySettled {
                    transaction,
                    payer: record.payer,
                }),
                None => Err(invalid(
                    InvalidReason::DuplicateSettlement,
                    "this payment is being settled; send it again later to learn the outcome",
                )),
            },
        }
    }

    /// Claims `claim` for settlement, or refuses it as a duplicate.
    fn claim(&self, requirement: &Requirement, claim: &PaymentClaim) -> Result<()> {
        let outcome = self.store.claim_settlement(
            &claim.key,
            requirement.network().as_str(),
            &claim.payer.to_string(),
            &claim.amount.to_string(),
            self.clock.now_unix_ms(),
        )?;
        match outcome {
            Claim::Claimed => Ok(()),
            // Someone claimed it between the look-up and the claim.
            Claim::Taken => self.refuse_if_seen(&claim.key).and(Err(invalid(
                InvalidReason::DuplicateSettlement,
                "this payment was already settled or is being settled",
            ))),
        }
    }

    /// Records how a claimed payment's transaction went: settled, or released when it failed.
    fn conclude(
        &self,
        requirement: &Requirement,
        claim: PaymentClaim,
        sent: Result<String>,
    ) -> Result<Settlement> {
        match sent {
            Ok(transaction) => {
                self.store.settled(&claim.key, &transaction)?;
                tracing::info!(network = %requirement.network(), payer = %claim.payer, amount = %claim.amount, %transaction, "settled");
                Ok(Settlement {
                    network: requirement.network_text().to_owned(),
                    payer: claim.payer,
                    transaction,
                    amount: claim.amount,
                })
            }
            Err(error) => {
                self.store.release(&claim.key)?;
                Err(error)
            }
        }
    }
}

/// What a settlement claims in the database before anything is sent to a chain.
struct PaymentClaim {
    key: String,
    payer: PayTo,
    amount: TokenAmount,
}

enum Checked {
    Exact(x402_core::evm::exact::Verified),
    Permit(x402_core::evm::permit::Verified),
    Solana(Box<x402_core::svm::Verified>),
}

impl Checked {
    fn payer(&self) -> String {
        match self {
            Checked::Exact(v) => v.payer.to_checksum(None),
            Checked::Permit(v) => v.payer.to_checksum(None),
            Checked::Solana(v) => v.payer.to_string(),
        }
    }
}
