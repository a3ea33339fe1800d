//! The x402 facilitator: verification with x402-core plus on-chain checks, and settlement by
//! real transactions. The machines API calls it in process; [`routes`] serves it over HTTP
//! (`GET /supported`, `POST /verify`, `POST /settle`) for other servers and conformance tools.
//!
//! A payment is settled at most once: before anything is sent to a chain, the payment's key
//! (network, payer and authorization nonce) is claimed in the database with a unique insert, so
//! of any number of concurrent duplicates exactly one proceeds and the rest get
//! `duplicate_settlement`. A claim is released only when the chain did not take the payment.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use x402_core::challenge::Scheme;
use x402_core::{
    AssetId, Clock, InvalidReason, Network, PayTo, PaymentPayload, Requirement, TokenAmount,
    X402Version,
};

use crate::evm::EvmChain;
use crate::solana::SolanaChain;
use crate::store::{Claim, Store};
use crate::{Error, Result};

/// A settled payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// The network, as the requirement wrote it.
    pub network: String,
    /// The payer's address.
    pub payer: String,
    /// Transaction hash.
    pub transaction: String,
    /// Amount moved.
    pub amount: TokenAmount,
}

/// The facilitator over the devnet's chains.
pub struct Facilitator {
    base: Arc<EvmChain>,
    megaeth: Option<Arc<EvmChain>>,
    solana: Option<Arc<SolanaChain>>,
    store: Arc<Store>,
    clock: Arc<dyn Clock + Send + Sync>,
}

impl std::fmt::Debug for Facilitator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facilitator")
            .field("base", &self.base)
            .field("megaeth", &self.megaeth)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: InvalidReason, detail: impl Into<String>) -> Error {
    Error::Payment(x402_core::Error::InvalidPayment {
        reason,
        detail: detail.into(),
    })
}

impl Facilitator {
    /// A facilitator settling `exact` on the Base Sepolia chain and, if given, `permit` on the
    /// MegaETH chain.
    pub fn new(
        base: Arc<EvmChain>,
        megaeth: Option<Arc<EvmChain>>,
        solana: Option<Arc<SolanaChain>>,
        store: Arc<Store>,
        clock: Arc<dyn Clock + Send + Sync>,
    ) -> Facilitator {
        Facilitator {
            base,
            megaeth,
            solana,
            store,
            clock,
        }
    }

    /// The Solana ledger, if this facilitator serves `requirement` on it.
    fn solana_for(&self, requirement: &Requirement) -> Option<&SolanaChain> {
        let solana = self.solana.as_deref()?;
        let ok = requirement.scheme() == &Scheme::Exact
            && requirement.network() == &Network::SOLANA_DEVNET
            && requirement.asset() == AssetId::Solana(solana.mint());
        ok.then_some(solana)
    }

    /// The Solana fee payer, when the Solana ledger runs.
    pub fn solana_fee_payer(&self) -> Option<x402_core::SolanaAddress> {
        self.solana
            .as_ref()
            .map(|s| x402_core::SolanaSigner::pubkey(s.fee_payer()))
    }

    /// The chain a requirement settles on, if this facilitator serves its scheme, network and
    /// asset.
    fn chain_for(&self, requirement: &Requirement) -> Option<&EvmChain> {
        let chain = match requirement.scheme() {
            Scheme::Exact => Some(&*self.base),
            Scheme::Permit => self.megaeth.as_deref(),
            Scheme::Other(_) => None,
        }?;
        let network_ok = requirement.network().chain_id() == Some(chain.chain_id());
        let asset_ok = requirement.asset() == AssetId::Evm(chain.token().address);
        (network_ok && asset_ok).then_some(chain)
    }

    /// The facilitator's signer addresses (the permit spender, the transaction sender).
    pub fn evm_signer(&self) -> alloy::primitives::Address {
        self.base.facilitator()
    }

    /// `(x402Version, scheme, network)` of every kind this facilitator settles.
    pub fn kinds(&self) -> Vec<(u8, &'static str, Network)> {
        let mut kinds = Vec::new();
        for version in [1u8, 2] {
            kinds.push((version, "exact", Network::evm(self.base.chain_id())));
            if let Some(megaeth) = &self.megaeth {
                kinds.push((version, "permit", Network::evm(megaeth.chain_id())));
            }
            if self.solana.is_some() {
                kinds.push((version, "exact", Network::SOLANA_DEVNET));
            }
        }
        kinds
    }

    /// Verifies `payment` against `requirement`: x402-core's checks, then the chain's (balance,
    /// unused authorization or current permit nonce). Returns the payer.
    ///
    /// # Errors
    /// [`Error::Payment`] with the reason code; [`Error::Chain`] when the chain cannot answer.
    pub async fn verify(
        &self,
        payment: &PaymentPayload,
        requirement: &Requirement,
    ) -> Result<String> {
        Ok(self.check(payment, requirement).await?.payer())
    }

    async fn check(&self, payment: &PaymentPayload, requirement: &Requirement) -> Result<Checked> {
        if requirement.network().is_solana() {
            let solana = self.solana_for(requirement).ok_or_else(|| {
                invalid(
                    InvalidReason::UnsupportedScheme,
                    format!(
                        "this facilitator does not settle `{}` on {} for asset {}",
                        requirement.scheme(),
                        requirement.network(),
                        requirement.asset()
                    ),
                )
            })?;
            let config = x402_core::svm::VerifyConfig {
                decimals: Some(crate::solana::USDC_DECIMALS),
                ..x402_core::svm::VerifyConfig::new(vec![x402_core::SolanaSigner::pubkey(
                    solana.fee_payer(),
                )])
            };
            let verified = x402_core::svm::verify(payment, requirement, &config)?;
            if TokenAmount::from_u64(solana.token_balance(&verified.payer)) < verified.amount {
                return Err(invalid(
                    InvalidReason::InsufficientFunds,
                    format!("{} holds less than {}", verified.payer, verified.amount),
                ));
            }
            return Ok(Checked::Solana(Box::new(verified)));
        }
        let chain = self.chain_for(requirement).ok_or_else(|| {
            invalid(
                InvalidReason::UnsupportedScheme,
                format!(
                    "this facilitator does not settle `{}` on {} for asset {}",
                    requirement.scheme(),
                    requirement.network(),
                    requirement.asset()
                ),
            )
        })?;
        let now = self.clock.now_unix();
        match requirement.scheme() {
            Scheme::Permit => {
                let owner = payment_owner(payment)?;
                let nonce = chain.permit_nonce(owner).await?;
                let verified =
                    x402_core::evm::permit::verify(payment, requirement, now, Some(nonce))?;
                if chain.balance_of(verified.payer).await? < verified.permit.value.atomic() {
                    return Err(invalid(
                        InvalidReason::InsufficientFunds,
                        format!(
                            "{} holds less than {}",
                            verified.payer, verified.permit.value
                        ),
                    ));
                }
                Ok(Checked::Permit(verified))
            }
            _ => {
                let verified = x402_core::evm::exact::verify(payment, requirement, now)?;
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
                    return Err(invalid(
                        InvalidReason::InsufficientFunds,
                        format!(
                            "{} holds less than {}",
                            verified.payer, verified.authorization.value
                        ),
                    ));
                }
                Ok(Checked::Exact(verified))
            }
        }
    }

    /// Verifies, claims and settles `payment` with a real transaction.
    ///
    /// # Errors
    /// As [`Facilitator::verify`]; `duplicate_settlement` when the payment was already settled
    /// or is being settled.
    pub async fn settle(
        &self,
        payment: &PaymentPayload,
        requirement: &Requirement,
    ) -> Result<Settlement> {
        let checked = self.check(payment, requirement).await?;
        if let Checked::Solana(verified) = checked {
            return self.settle_solana(*verified, requirement);
        }
        let chain = self
            .chain_for(requirement)
            .ok_or_else(|| invalid(InvalidReason::UnsupportedScheme, "unsupported"))?;
        let (key, payer, amount) = match &checked {
            Checked::Exact(v) => (
                format!(
                    "{}:{:#x}:{}",
                    requirement.network(),
                    v.payer,
                    v.authorization.nonce
                ),
                v.payer,
                v.authorization.value,
            ),
            Checked::Permit(v) => (
                format!(
                    "{}:{:#x}:permit:{}",
                    requirement.network(),
                    v.payer,
                    v.permit.nonce
                ),
                v.payer,
                v.permit.value,
            ),
            Checked::Solana(_) => {
                return Err(invalid(InvalidReason::UnsupportedScheme, "unreachable"));
            }
        };
        let payer_text = payer.to_checksum(None);
        if self.store.claim_settlement(
            &key,
            requirement.network().as_str(),
            &payer_text,
            &amount.to_string(),
            self.clock.now_unix_ms(),
        )? == Claim::Taken
        {
            return Err(invalid(
                InvalidReason::DuplicateSettlement,
                "this payment was already settled or is being settled",
            ));
        }
        let sent = match &checked {
            Checked::Exact(v) => chain.transfer_with_authorization(v).await,
            Checked::Permit(v) => match requirement.pay_to() {
                PayTo::Evm(pay_to) => chain.permit_and_pull(v, pay_to).await,
                PayTo::Solana(_) => Err(invalid(
                    InvalidReason::Requirements,
                    "an EVM offer needs an EVM payTo",
                )),
            },
            Checked::Solana(_) => Err(invalid(InvalidReason::UnsupportedScheme, "unreachable")),
        };
        match sent {
            Ok(hash) => {
                let transaction = format!("{hash:#x}");
                self.store.settled(&key, &transaction)?;
                tracing::info!(network = %requirement.network(), payer = %payer_text, amount = %amount, %transaction, "settled");
                Ok(Settlement {
                    network: requirement.network_text().to_owned(),
                    payer: payer_text,
                    transaction,
                    amount,
                })
            }
            Err(error) => {
                self.store.release(&key)?;
                Err(error)
            }
        }
    }
}

impl Facilitator {
    /// Claims, co-signs and processes a verified Solana payment.
    fn settle_solana(
        &self,
        verified: x402_core::svm::Verified,
        requirement: &Requirement,
    ) -> Result<Settlement> {
        let solana = self.solana_for(requirement).ok_or_else(|| {
            invalid(
                InvalidReason::UnsupportedScheme,
                "the Solana ledger is not running",
            )
        })?;
        // The message (blockhash, memo, accounts, amount) identifies the payment.
        let digest =
            <sha2::Sha256 as sha2::Digest>::digest(verified.transaction.message.serialize());
        let key = format!("{}:{}", requirement.network(), alloy::hex::encode(digest));
        let payer = verified.payer.to_string();
        let amount = verified.amount;
        if self.store.claim_settlement(
            &key,
            requirement.network().as_str(),
            &payer,
            &amount.to_string(),
            self.clock.now_unix_ms(),
        )? == Claim::Taken
        {
            return Err(invalid(
                InvalidReason::DuplicateSettlement,
                "this payment was already settled or is being settled",
            ));
        }
        match solana.settle(verified) {
            Ok(transaction) => {
                self.store.settled(&key, &transaction)?;
                tracing::info!(network = %requirement.network(), %payer, %amount, %transaction, "settled");
                Ok(Settlement {
                    network: requirement.network_text().to_owned(),
                    payer,
                    transaction,
                    amount,
                })
            }
            Err(error) => {
                self.store.release(&key)?;
                Err(error)
            }
        }
    }
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

fn payment_owner(payment: &PaymentPayload) -> Result<alloy::primitives::Address> {
    #[derive(Deserialize)]
    struct Owner {
        permit: OwnerInner,
    }
    #[derive(Deserialize)]
    struct OwnerInner {
        owner: String,
    }
    let owner: Owner = serde_json::from_str(payment.payload_json().get())
        .map_err(|e| invalid(InvalidReason::Payload, format!("permit payload: {e}")))?;
    owner
        .permit
        .owner
        .parse()
        .map_err(|_| invalid(InvalidReason::Payload, "permit owner is not an address"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FacilitatorRequest {
    payment_payload: Box<RawValue>,
    payment_requirements: Box<RawValue>,
}

/// Parses a `/verify` or `/settle` body into the payment and the requirement.
fn read_request(body: &[u8]) -> std::result::Result<(PaymentPayload, Requirement), Box<Response>> {
    let bad = |detail: String| {
        (
            http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": detail })),
        )
            .into_response()
    };
    let request: FacilitatorRequest = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "body must be {{x402Version, paymentPayload, paymentRequirements}}: {e}"
        ))
    })?;
    let payment = PaymentPayload::from_json(request.payment_payload.get().as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let requirement = Requirement::parse(payment.version(), &request.payment_requirements)
        .map_err(|e| bad(e.to_string()))?;
    Ok((payment, requirement))
}

fn reason_of(error: &Error) -> (&'static str, String) {
    match error.invalid_reason() {
        Some(reason) => (reason.as_str(), error.to_string()),
        None => ("unexpected_settle_error", error.to_string()),
    }
}

/// The facilitator's HTTP routes.
pub fn routes(facilitator: Arc<Facilitator>) -> Router {
    Router::new()
        .route("/supported", get(supported))
        .route("/verify", post(verify))
        .route("/settle", post(settle))
        .with_state(facilitator)
}

async fn supported(State(facilitator): State<Arc<Facilitator>>) -> Json<Value> {
    let kinds: Vec<Value> = facilitator
        .kinds()
        .into_iter()
        .map(|(version, scheme, network)| {
            let network = match version {
                1 => network.v1_name().unwrap_or(network.as_str()).to_owned(),
                _ => network.to_string(),
            };
            let mut kind = json!({ "x402Version": version, "scheme": scheme, "network": network });
            if let (true, Some(fee_payer)) = (
                network.starts_with("solana"),
                facilitator.solana_fee_payer(),
            ) {
                kind["extra"] = json!({ "feePayer": fee_payer.to_string() });
            }
            kind
        })
        .collect();
    let mut signers = json!({ "eip155:*": [facilitator.evm_signer().to_checksum(None)] });
    if let Some(fee_payer) = facilitator.solana_fee_payer() {
        signers["solana:*"] = json!([fee_payer.to_string()]);
    }
    Json(json!({ "kinds": kinds, "extensions": [], "signers": signers }))
}

async fn verify(State(facilitator): State<Arc<Facilitator>>, body: axum::body::Bytes) -> Response {
    let (payment, requirement) = match read_request(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    match facilitator.verify(&payment, &requirement).await {
        Ok(payer) => Json(json!({ "isValid": true, "payer": payer })).into_response(),
        Err(error) => {
            let (reason, message) = reason_of(&error);
            let reason = if error.invalid_reason().is_some() {
                reason
            } else {
                "unexpected_verify_error"
            };
            Json(json!({ "isValid": false, "invalidReason": reason, "invalidMessage": message }))
                .into_response()
        }
    }
}

async fn settle(State(facilitator): State<Arc<Facilitator>>, body: axum::body::Bytes) -> Response {
    let (payment, requirement) = match read_request(&body) {
        Ok(parsed) => parsed,
        Err(response) => return *response,
    };
    let network = match payment.version() {
        X402Version::V1 => requirement.network_text().to_owned(),
        X402Version::V2 => requirement.network().to_string(),
    };
    match facilitator.settle(&payment, &requirement).await {
        Ok(settlement) => Json(json!({ "success": true, "payer": settlement.payer, "transaction": settlement.transaction, "network": network, "amount": settlement.amount })).into_response(),
        Err(error) => {
            let (reason, message) = reason_of(&error);
            Json(json!({ "success": false, "errorReason": reason, "errorMessage": message, "transaction": "", "network": network })).into_response()
        }
    }
}
