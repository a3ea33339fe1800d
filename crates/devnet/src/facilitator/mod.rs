//! The x402 facilitator: verification with x402-core plus on-chain checks, and settlement by
//! real transactions. The paid services call it in process; [`http`] serves it over HTTP
//! (`GET /supported`, `POST /verify`, `POST /settle`) for other servers and conformance tools.
//!
//! A payment is settled at most once, as a persisted state machine in the store
//! (`claimed → submitted(tx) → settled | failed`, see `store::payments`): before anything is
//! sent to a chain the payment's key (network, asset and what makes it unique on chain) is
//! claimed with a unique insert, so of any number of concurrent duplicates exactly one
//! proceeds; each transaction is signed here and recorded before it is sent; the chain is
//! made durable before the payment is marked settled, together with what it buys, in one
//! database transaction.
//!
//! Only the facilitator's own transaction proves a payment: an authorization that reads as
//! used, or a permit nonce that moved, may have been cancelled or spent by the payer, so the
//! reconciler settles a payment on the receipt of the transaction its row recorded (a
//! restarted anvil keeps the receipts of its recent blocks) and otherwise fails it once
//! nothing of ours can still land: ours reverted, is unknown to the chain, or its validity
//! passed. A permit whose allowance still holds the payment is pulled once, recorded first.
//! [`Facilitator::reconcile`] resolves the payments of a devnet that died and those whose
//! confirmation was not awaited (`settlement_pending`).

pub mod http;

use std::sync::Arc;

use x402_core::challenge::Scheme;
use x402_core::{
    AssetId, Clock, InvalidReason, Network, PayTo, PaymentPayload, Requirement, TokenAmount,
};

use crate::chains::Chains;
use alloy::primitives::B256;

use crate::chains::evm::{EvmChain, Outcome, Unsent};
use crate::chains::solana::{SolanaChain, USDC_DECIMALS};
use crate::error::{Error, Result};
use crate::faults::{CrashPoint, Faults};
use crate::store::{
    Applied, Effect, NewPayment, PaymentClaim as StoreClaim, PaymentRow, PaymentStatus, Proof,
    Store,
};

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
    faults: Arc<Faults>,
    /// This run of the devnet: payments claimed by another run are reconciled.
    boot: String,
    /// Held while one payment is reconciled.
    reconciling: tokio::sync::Mutex<()>,
}

/// A claim this old whose request never finished (its client went away) is reconciled.
const STALE_CLAIM_MS: u64 = 60_000;

/// A settled payment and what it bought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    /// The settlement.
    pub settlement: Settlement,
    /// What applying the payment's effect produced.
    pub applied: Applied,
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
        faults: Arc<Faults>,
        boot: String,
    ) -> Facilitator {
        Facilitator {
            chains,
            payees,
            store,
            clock,
            faults,
            boot,
            reconciling: tokio::sync::Mutex::new(()),
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

    /// Verifies, claims and settles `payment` with a real transaction, and applies `effect`
    /// in the same database transaction that marks it settled.
    ///
    /// # Errors
    /// As [`Facilitator::verify`]; [`Error::AlreadySettled`] (with the original transaction)
    /// when the same payment settled before; [`Error::Pending`] when its outcome is not known
    /// yet; `duplicate_settlement` when it is being settled right now.
    pub async fn settle(
        &self,
        payment: &PaymentPayload,
        requirement: &Requirement,
        effect: Effect,
    ) -> Result<Settled> {
        let checked = self.verify_offchain(payment, requirement)?;
        let claim = Facilitator::claim_of(requirement, &checked);
        // A payment seen before is answered from its record (and the chain), before the chain
        // is asked whether it can pay again (where it would only show as a used nonce).
        if let Some(row) = self.store.payment(&claim.key)? {
            self.answer_seen(row).await?;
        }
        self.check_onchain(requirement, &checked).await?;
        let new = NewPayment {
            key: &claim.key,
            network: requirement.network().as_str(),
            payer: claim.payer,
            amount: claim.amount.to_string(),
            boot: &self.boot,
            proof: Facilitator::proof_of(&checked, requirement),
            effect,
            now_ms: self.clock.now_unix_ms(),
        };
        if let StoreClaim::Taken(row) = self.store.claim_payment(&new)? {
            self.answer_seen(*row).await?;
            return Err(being_settled());
        }
        self.faults.crash_if(CrashPoint::AfterClaim);
        match self.settle_claimed(requirement, &claim, checked).await {
            Ok(settled) => Ok(settled),
            Err(error) => Err(self.after_failure(&claim.key, error)?),
        }
    }

    /// What to answer when settling a claimed payment went wrong: a definitive refusal has
    /// already failed the row; anything else leaves the outcome unknown, so the row goes to
    /// the reconciler and, once a transaction was sent, the answer is `settlement_pending`
    /// (never a refusal that invites paying again).
    fn after_failure(&self, key: &str, error: Error) -> Result<Error> {
        let Some(row) = self.store.payment(key)? else {
            return Ok(error);
        };
        match row.status {
            PaymentStatus::Claimed | PaymentStatus::Submitted => {
                self.store.payment_held(key)?;
                match (row.tx, &error) {
                    (_, Error::Pending { .. }) | (None, _) => Ok(error),
                    (Some(transaction), _) => {
                        tracing::warn!(%error, %transaction, "settlement interrupted; pending");
                        Ok(Error::Pending { transaction })
                    }
                }
            }
            PaymentStatus::Settled => Ok(Error::AlreadySettled {
                transaction: row.tx.unwrap_or_default(),
                payer: row.payer.to_string(),
            }),
            PaymentStatus::Failed => Ok(error),
        }
    }

    /// Sends a claimed payment, makes the chain durable and marks it settled with its
    /// effect.
    async fn settle_claimed(
        &self,
        requirement: &Requirement,
        claim: &PaymentClaim,
        checked: Checked,
    ) -> Result<Settled> {
        let transaction = self.send(requirement, claim, checked).await?;
        self.faults.crash_if(CrashPoint::AfterConfirmation);
        if let Some(chain) = self.evm_chain_of(requirement) {
            chain.persist().await?;
        }
        self.faults.crash_if(CrashPoint::BeforeCreditWrite);
        let applied = self
            .store
            .payment_settled(&claim.key, &transaction, self.clock.now_unix_ms(), None)?
            .ok_or_else(|| {
                invalid(
                    InvalidReason::DuplicateSettlement,
                    "this payment was settled by the reconciler meanwhile; send it again for its receipt",
                )
            })?;
        tracing::info!(network = %requirement.network(), payer = %claim.payer, amount = %claim.amount, %transaction, "settled");
        Ok(Settled {
            settlement: Settlement {
                network: requirement.network_text().to_owned(),
                payer: claim.payer,
                transaction,
                amount: claim.amount,
            },
            applied,
        })
    }

    /// The EVM chain a requirement settles on, if it is an EVM one.
    fn evm_chain_of(&self, requirement: &Requirement) -> Option<&EvmChain> {
        match requirement.network().is_solana() {
            true => None,
            false => self.chain_for(requirement),
        }
    }

    /// Sends a claimed payment's transaction(s), records each before awaiting it, and
    /// returns the one that moved the money once it is confirmed.
    async fn send(
        &self,
        requirement: &Requirement,
        claim: &PaymentClaim,
        checked: Checked,
    ) -> Result<String> {
        let key = claim.key.as_str();
        match checked {
            Checked::Solana(verified) => {
                let solana = self
                    .solana_for(requirement)
                    .ok_or_else(|| unsupported(requirement))?;
                let blockhash = verified.transaction.message.recent_blockhash().to_bytes();
                let (transaction, signature) = solana.cosign(*verified)?;
                let proof = Proof::Solana {
                    signature: Some(signature.clone()),
                    valid_until: solana.blockhash_valid_until(&blockhash),
                };
                if !self
                    .store
                    .payment_submitted(key, &signature, Some(&proof))?
                {
                    return Err(invalid(
                        InvalidReason::DuplicateSettlement,
                        "this payment was resolved meanwhile; send it again for its outcome",
                    ));
                }
                self.faults.crash_if(CrashPoint::AfterSubmission);
                match solana.submit(transaction) {
                    Ok(signature) => Ok(signature),
                    Err(error @ Error::Solana { .. }) => {
                        self.store.payment_failed(key, None)?;
                        Err(error)
                    }
                    Err(error) => Err(error),
                }
            }
            Checked::Exact(verified) => {
                let chain = self
                    .chain_for(requirement)
                    .ok_or_else(|| unsupported(requirement))?;
                let sent = chain
                    .send_transfer_with_authorization(&verified, |hash| {
                        self.submitted(key, hash, None)
                    })
                    .await;
                let hash = self.sent_first(key, sent)?;
                self.faults.crash_if(CrashPoint::AfterSubmission);
                self.confirmed(chain, key, hash, "transferWithAuthorization")
                    .await
            }
            Checked::Permit(verified) => {
                let chain = self
                    .chain_for(requirement)
                    .ok_or_else(|| unsupported(requirement))?;
                let PayTo::Evm(pay_to) = requirement.pay_to() else {
                    return Err(unsupported(requirement));
                };
                let proof = Facilitator::proof_of(&Checked::Permit(verified.clone()), requirement);
                let sent = chain
                    .send_permit(&verified, |hash| self.submitted(key, hash, None))
                    .await;
                let hash = self.sent_first(key, sent)?;
                self.confirmed(chain, key, hash, "permit").await?;
                let value = verified.permit.value.atomic();
                let pull = chain
                    .send_pull(verified.payer, pay_to, value, |hash| {
                        self.submitted(key, hash, Some(&proof.with_pull(hash)))
                    })
                    .await;
                // The permit went through: whatever happened to the pull, the reconciler
                // finishes it (it pulls what the allowance still holds, once).
                let pull = pull.inspect_err(|_| {
                    let _ = self.store.payment_held(key);
                })?;
                self.faults.crash_if(CrashPoint::AfterSubmission);
                self.confirmed(chain, key, pull, "transferFrom").await
            }
        }
    }

    /// Records `hash` as the payment's transaction (before it is sent); refuses when the
    /// payment was resolved meanwhile, so the transaction is not sent.
    fn submitted(&self, key: &str, hash: B256, proof: Option<&Proof>) -> Result<()> {
        match self
            .store
            .payment_submitted(key, &format!("{hash:#x}"), proof)?
        {
            true => Ok(()),
            false => Err(invalid(
                InvalidReason::DuplicateSettlement,
                "this payment was resolved meanwhile; send it again for its outcome",
            )),
        }
    }

    /// The payment's first transaction: when it was never sent, nothing moved and nothing
    /// can, so the payment fails (and may be sent again); when its fate is unknown, the
    /// reconciler takes it.
    fn sent_first(&self, key: &str, sent: Result<B256, Unsent>) -> Result<B256> {
        match sent {
            Ok(hash) => Ok(hash),
            Err(Unsent::NotSent(error)) => {
                self.store.payment_failed(key, None)?;
                Err(error)
            }
            Err(Unsent::Unknown(_, error)) => {
                self.store.payment_held(key)?;
                Err(error)
            }
        }
    }

    /// Waits for a recorded transaction: its hash when confirmed; a reverted one fails the
    /// payment (nothing moved); no answer, or held confirmations, leave it pending.
    async fn confirmed(
        &self,
        chain: &EvmChain,
        key: &str,
        hash: alloy::primitives::B256,
        call: &'static str,
    ) -> Result<String> {
        let transaction = format!("{hash:#x}");
        if self.faults.hold_confirmation() {
            self.store.payment_held(key)?;
            return Err(Error::Pending { transaction });
        }
        match chain.wait_confirmed(hash, call).await {
            Ok(_) => Ok(transaction),
            Err(error @ Error::Reverted { .. }) => {
                self.store.payment_failed(key, None)?;
                Err(error)
            }
            Err(_) => {
                self.store.payment_held(key)?;
                Err(Error::Pending { transaction })
            }
        }
    }

    /// Answers a payment whose record exists: settled (with its transaction), pending, or
    /// being settled; `Ok` when it failed and may be claimed again.
    async fn answer_seen(&self, row: PaymentRow) -> Result<()> {
        let row = match row.status {
            PaymentStatus::Claimed | PaymentStatus::Submitted
                if row.boot != self.boot || row.held =>
            {
                self.reconcile_one(&row).await?;
                self.store.payment(&row.key)?.unwrap_or(row)
            }
            _ => row,
        };
        match row.status {
            PaymentStatus::Settled => Err(Error::AlreadySettled {
                transaction: row.tx.unwrap_or_default(),
                payer: row.payer.to_string(),
            }),
            PaymentStatus::Failed => Ok(()),
            PaymentStatus::Claimed | PaymentStatus::Submitted => match (row.held, row.tx) {
                (true, Some(transaction)) => Err(Error::Pending { transaction }),
                _ => Err(being_settled()),
            },
        }
    }

    /// Resolves every payment a previous run of the devnet left claimed or submitted, and
    /// those whose confirmation was not awaited. Run before serving, and then periodically.
    ///
    /// # Errors
    /// A store or chain error; payments that cannot be resolved yet stay as they are.
    pub async fn reconcile(&self) -> Result<usize> {
        let stale = self.clock.now_unix_ms().saturating_sub(STALE_CLAIM_MS);
        let rows = self.store.unresolved_payments(&self.boot, stale)?;
        let mut resolved = 0;
        for row in rows {
            // One payment that cannot be resolved now must not hold up the others.
            match self.reconcile_one(&row).await {
                Ok(true) => resolved += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(key = %row.key, %error, "cannot reconcile yet"),
            }
        }
        Ok(resolved)
    }

    /// Asks the chain about one unresolved payment: settles it (applying its effect) when the
    /// money moved, fails it when nothing moved and nothing can. `true` when resolved.
    async fn reconcile_one(&self, row: &PaymentRow) -> Result<bool> {
        // One reconciliation at a time, on a fresh read of the row.
        let _reconciling = self.reconciling.lock().await;
        let Some(row) = self.store.payment(&row.key)? else {
            return Ok(false);
        };
        let row = &row;
        if !matches!(
            row.status,
            PaymentStatus::Claimed | PaymentStatus::Submitted
        ) {
            return Ok(true);
        }
        let restarted = row.boot != self.boot;
        let now = self.clock.now_unix();
        let evm = |chain_id: u64| self.chains.evm().find(|c| c.chain_id() == chain_id);
        let recorded = row.tx.as_deref().and_then(|tx| tx.parse::<B256>().ok());
        let moved: Option<String> = match &row.proof {
            Proof::Exact {
                chain_id,
                payer,
                nonce,
                valid_before: _,
            } => {
                let Some(chain) = evm(*chain_id) else {
                    return Ok(false);
                };
                // The authorization's state first, then our transaction: had ours been mined
                // by the time the state was read, its receipt is there when asked after.
                let used = chain.authorization_used(*payer, *nonce).await?;
                let ours = match recorded {
                    Some(hash) => chain.transaction_outcome(hash).await?,
                    None => Outcome::Unknown,
                };
                match (ours, used) {
                    // Our transaction moved the money.
                    (Outcome::Succeeded, _) => {
                        chain.persist().await?;
                        row.tx.clone()
                    }
                    // Ours reverted: it moved nothing.
                    (Outcome::Reverted, _) => None,
                    // Ours may still be mined (even after `validBefore` by our clock: the
                    // chain judges it by its block's timestamp), so nothing is decided yet.
                    (Outcome::Waiting, _) => return Ok(false),
                    (_, true) => {
                        // Used, but not by a transaction of ours: cancelled by the payer, or
                        // submitted by someone else. Nothing is credited without our own
                        // proof that the money moved.
                        tracing::warn!(key = %row.key, "authorization used or cancelled outside this facilitator; nothing credited");
                        None
                    }
                    // Ours is nowhere and the authorization is unused: nothing moved, and
                    // nothing of ours can.
                    (Outcome::Unknown, false) => None,
                }
            }
            Proof::Permit {
                chain_id,
                owner,
                nonce,
                value,
                pay_to,
                deadline: _,
                pull,
            } => {
                let Some(chain) = evm(*chain_id) else {
                    return Ok(false);
                };
                let permit_nonce = chain.permit_nonce(*owner).await?;
                let allowance = chain.allowance(*owner).await?;
                let pulled = match pull {
                    Some(hash) => chain.transaction_outcome(*hash).await?,
                    None => Outcome::Unknown,
                };
                let permit = match (pull, recorded) {
                    (None, Some(hash)) => chain.transaction_outcome(hash).await?,
                    _ => Outcome::Unknown,
                };
                match pulled {
                    // Our pull moved the money.
                    Outcome::Succeeded => {
                        chain.persist().await?;
                        pull.map(|hash| format!("{hash:#x}"))
                    }
                    // Our pull may still be mined: never a second one meanwhile.
                    Outcome::Waiting => return Ok(false),
                    // The permit went through and the allowance still holds the payment:
                    // pull it now, recorded first.
                    _ if permit_nonce > *nonce && allowance >= *value => {
                        let key = row.key.as_str();
                        let proof = row.proof.clone();
                        let hash = chain
                            .send_pull(*owner, *pay_to, *value, |hash| {
                                self.submitted(key, hash, Some(&proof.with_pull(hash)))
                            })
                            .await?;
                        chain.wait_confirmed(hash, "transferFrom").await?;
                        chain.persist().await?;
                        Some(format!("{hash:#x}"))
                    }
                    // The permit was used but no pull of ours moved money, and the allowance
                    // is gone (revoked or spent by the payer's own doing): nothing credited.
                    _ if permit_nonce > *nonce => {
                        tracing::warn!(key = %row.key, "permit used but its allowance is gone and no pull of ours moved money; nothing credited");
                        None
                    }
                    // Our permit may still be mined.
                    _ if permit == Outcome::Waiting => return Ok(false),
                    // The permit is unused and ours is nowhere or reverted.
                    _ => None,
                }
            }
            Proof::Solana {
                signature,
                valid_until,
            } => {
                let Some(solana) = self.chains.solana.as_deref() else {
                    return Ok(false);
                };
                // Only the facilitator holds the co-signed transaction, and the ledger
                // processes it at once: unknown to a restarted ledger, or once its blockhash
                // expired, or after the facilitator gave up on it, it never lands.
                let expired = valid_until.is_none_or(|until| now > until);
                match signature
                    .as_deref()
                    .map(|s| (s, solana.signature_status(s)))
                {
                    Some((signature, Some(None))) => Some(signature.to_owned()),
                    _ if restarted || row.held || expired => None,
                    _ => return Ok(false),
                }
            }
        };
        match moved {
            Some(transaction) => {
                self.store.payment_settled(
                    &row.key,
                    &transaction,
                    self.clock.now_unix_ms(),
                    Some(row.attempt),
                )?;
                tracing::info!(key = %row.key, %transaction, "reconciled: settled");
            }
            None => {
                self.store.payment_failed(&row.key, Some(row.attempt))?;
                tracing::info!(key = %row.key, "reconciled: nothing moved, failed");
            }
        }
        Ok(true)
    }

    /// How the chain will tell whether `checked` moved money.
    fn proof_of(checked: &Checked, requirement: &Requirement) -> Proof {
        let chain_id = requirement.network().chain_id().unwrap_or_default();
        match checked {
            Checked::Exact(v) => Proof::Exact {
                chain_id,
                payer: v.payer,
                nonce: v.authorization.nonce,
                valid_before: v.authorization.valid_before,
            },
            Checked::Permit(v) => Proof::Permit {
                chain_id,
                owner: v.payer,
                nonce: v.permit.nonce.atomic(),
                value: v.permit.value.atomic(),
                pay_to: requirement.pay_to().as_evm().unwrap_or_default(),
                deadline: v.permit.deadline,
                pull: None,
            },
            Checked::Solana(_) => Proof::Solana {
                signature: None,
                valid_until: None,
            },
        }
    }
}

/// The refusal of a payment another request is settling right now.
fn being_settled() -> Error {
    invalid(
        InvalidReason::DuplicateSettlement,
        "this payment is being settled; send it again shortly to learn the outcome",
    )
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
