//! Payments as a persisted state machine: `claimed → submitted(tx) → settled | failed`.
//!
//! A row is claimed (a unique insert, so of concurrent duplicates exactly one proceeds) before
//! anything is sent to a chain, with the [`Proof`] that tells the chain's answer apart later
//! and the [`Effect`] the payment buys. It is marked `submitted` with its transaction before
//! the facilitator waits for it, and `settled` in the same database transaction that applies
//! its effect (the credit, the instance, the extension), so a crash never leaves one without
//! the other. A row is `failed` only when nothing moved and nothing can; the same payment may
//! then claim it again. Rows left `claimed` or `submitted` by a devnet that died (another
//! `boot`), or `held` when confirmation did not come in time, are reconciled against their
//! chain.

use alloy::primitives::{Address, B256, U256};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use x402_core::PayTo;

use super::{
    Credits, INSTANCE_COLUMNS, InstanceRecord, Store, deposit_in, insert_instance_in, int,
    read_instance, read_wallet, update_instance_in, wallet_key,
};
use crate::error::Result;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    key TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    payer TEXT NOT NULL,
    amount TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('claimed', 'submitted', 'settled', 'failed')),
    tx TEXT,
    boot TEXT NOT NULL,
    held INTEGER NOT NULL DEFAULT 0,
    proof TEXT NOT NULL,
    effect TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0
);
";

const HOUR_MS: u64 = 3_600_000;

/// Where a payment is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Claimed; nothing sent yet (as far as the row knows).
    Claimed,
    /// Its transaction was sent.
    Submitted,
    /// Settled, with its effect applied.
    Settled,
    /// Nothing moved and nothing can: the same payment may claim it again.
    Failed,
}

impl PaymentStatus {
    fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Claimed => "claimed",
            PaymentStatus::Submitted => "submitted",
            PaymentStatus::Settled => "settled",
            PaymentStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> PaymentStatus {
        match text {
            "submitted" => PaymentStatus::Submitted,
            "settled" => PaymentStatus::Settled,
            "failed" => PaymentStatus::Failed,
            _ => PaymentStatus::Claimed,
        }
    }
}

/// How to ask the chain whether a payment moved money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Proof {
    /// EIP-3009: `authorizationState(payer, nonce)`, usable until `valid_before`.
    Exact {
        /// The chain.
        chain_id: u64,
        /// The authorizer.
        payer: Address,
        /// The authorization nonce.
        nonce: B256,
        /// Unix seconds after which it cannot land.
        valid_before: u64,
    },
    /// ERC-2612 permit then `transferFrom`: the owner's permit nonce moves past `nonce`.
    Permit {
        /// The chain.
        chain_id: u64,
        /// The payer.
        owner: Address,
        /// The permit's nonce.
        nonce: U256,
        /// What `transferFrom` pulls.
        value: U256,
        /// Where it goes.
        pay_to: Address,
        /// Unix seconds after which the permit cannot land.
        deadline: u64,
        /// The facilitator's `transferFrom`, once recorded (before it is sent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pull: Option<B256>,
    },
    /// Solana: the transaction's signature, once it is known, and until when its blockhash
    /// lets it land.
    Solana {
        /// Base58 signature of the co-signed transaction.
        signature: Option<String>,
        /// Unix seconds after which its blockhash is expired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_until: Option<u64>,
    },
}

impl Proof {
    /// This permit proof with its `transferFrom` recorded; other proofs unchanged.
    pub fn with_pull(&self, hash: B256) -> Proof {
        let mut proof = self.clone();
        if let Proof::Permit { pull, .. } = &mut proof {
            *pull = Some(hash);
        }
        proof
    }
}

/// What a payment buys, applied in the same database transaction that marks it settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing (a payment settled for another server through `/settle`).
    None,
    /// Credits for `wallet`, or for the payer when `None`.
    Credit {
        /// Who is credited.
        wallet: Option<PayTo>,
        /// How much, in micro-dollars.
        micros: u64,
    },
    /// A new instance, owned by `owner` or by the payer when `None`.
    Instance {
        /// The instance (its `wallet` is replaced by the owner).
        record: Box<InstanceRecord>,
        /// Who owns it.
        owner: Option<PayTo>,
    },
    /// More prepaid hours for an instance.
    Extend {
        /// The instance.
        id: String,
        /// Hours added.
        hours: u64,
        /// Dollars paid, micros.
        micros: u64,
    },
}

/// What applying an [`Effect`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing to report.
    None,
    /// The wallet's credits afterwards.
    Credits(Credits),
    /// The instance created or extended.
    Instance(Box<InstanceRecord>),
}

/// A payment's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRow {
    /// Its key (network, asset and what makes it unique on chain).
    pub key: String,
    /// The network, CAIP-2.
    pub network: String,
    /// The payer.
    pub payer: PayTo,
    /// The amount, atomic units.
    pub amount: String,
    /// Where it is.
    pub status: PaymentStatus,
    /// Its transaction, once sent.
    pub tx: Option<String>,
    /// The devnet run that claimed it.
    pub boot: String,
    /// Whether the facilitator stopped waiting for it (answered `settlement_pending`).
    pub held: bool,
    /// How to ask the chain.
    pub proof: Proof,
    /// What it buys.
    pub effect: Effect,
    /// How many times it was claimed again after failing; a reconciler acting on an older
    /// read of the row must not touch a newer claim.
    pub attempt: u32,
}

/// A payment to claim.
#[derive(Clone, Debug)]
pub struct NewPayment<'a> {
    /// Its key.
    pub key: &'a str,
    /// The network, CAIP-2.
    pub network: &'a str,
    /// The payer.
    pub payer: PayTo,
    /// The amount, atomic units.
    pub amount: String,
    /// This devnet run.
    pub boot: &'a str,
    /// How to ask the chain.
    pub proof: Proof,
    /// What it buys.
    pub effect: Effect,
    /// Now, unix ms.
    pub now_ms: u64,
}

/// The outcome of a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentClaim {
    /// The caller settles it now (first time, or again after it failed).
    Claimed,
    /// Someone else has it: its row.
    Taken(Box<PaymentRow>),
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum EffectWire {
    None,
    Credit {
        wallet: Option<String>,
        micros: u64,
    },
    Instance {
        owner: Option<String>,
        id: String,
        plan: String,
        region: String,
        os_id: u32,
        label: String,
        ssh_key: bool,
        created_ms: u64,
        active_ms: u64,
        expires_ms: u64,
        prepaid_hours: u64,
        paid_micros: u64,
        metadata: String,
    },
    Extend {
        id: String,
        hours: u64,
        micros: u64,
    },
}

fn effect_json(effect: &Effect) -> String {
    let wire = match effect {
        Effect::None => EffectWire::None,
        Effect::Credit { wallet, micros } => EffectWire::Credit {
            wallet: wallet.as_ref().map(wallet_key),
            micros: *micros,
        },
        Effect::Instance { record, owner } => EffectWire::Instance {
            owner: owner.as_ref().map(wallet_key),
            id: record.id.clone(),
            plan: record.plan.clone(),
            region: record.region.clone(),
            os_id: record.os_id,
            label: record.label.clone(),
            ssh_key: record.ssh_key,
            created_ms: record.created_ms,
            active_ms: record.active_ms,
            expires_ms: record.expires_ms,
            prepaid_hours: record.prepaid_hours,
            paid_micros: record.paid_micros,
            metadata: record.metadata.clone(),
        },
        Effect::Extend { id, hours, micros } => EffectWire::Extend {
            id: id.clone(),
            hours: *hours,
            micros: *micros,
        },
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

fn conversion(
    index: usize,
    error: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(error))
}

fn parse_wallet(text: Option<String>, index: usize) -> rusqlite::Result<Option<PayTo>> {
    text.map(|t| t.parse::<PayTo>().map_err(|e| conversion(index, e)))
        .transpose()
}

fn read_effect(text: &str, index: usize) -> rusqlite::Result<Effect> {
    let wire: EffectWire = serde_json::from_str(text).map_err(|e| conversion(index, e))?;
    Ok(match wire {
        EffectWire::None => Effect::None,
        EffectWire::Credit { wallet, micros } => Effect::Credit {
            wallet: parse_wallet(wallet, index)?,
            micros,
        },
        EffectWire::Instance {
            owner,
            id,
            plan,
            region,
            os_id,
            label,
            ssh_key,
            created_ms,
            active_ms,
            expires_ms,
            prepaid_hours,
            paid_micros,
            metadata,
        } => {
            let owner = parse_wallet(owner, index)?;
            Effect::Instance {
                record: Box::new(InstanceRecord {
                    id,
                    // Replaced by the owner (or the payer) when applied.
                    wallet: owner.unwrap_or(PayTo::Evm(Address::ZERO)),
                    plan,
                    region,
                    os_id,
                    label,
                    ssh_key,
                    created_ms,
                    active_ms,
                    expires_ms,
                    destroyed_ms: None,
                    prepaid_hours,
                    paid_micros,
                    password_taken: false,
                    tx_hash: None,
                    metadata,
                }),
                owner,
            }
        }
        EffectWire::Extend { id, hours, micros } => Effect::Extend { id, hours, micros },
    })
}

const PAYMENT_COLUMNS: &str =
    "key, network, payer, amount, status, tx, boot, held, proof, effect, attempt";

fn read_payment(r: &rusqlite::Row<'_>) -> rusqlite::Result<PaymentRow> {
    let status: String = r.get(4)?;
    let proof: String = r.get(8)?;
    let effect: String = r.get(9)?;
    Ok(PaymentRow {
        key: r.get(0)?,
        network: r.get(1)?,
        payer: read_wallet(r, 2)?,
        amount: r.get(3)?,
        status: PaymentStatus::parse(&status),
        tx: r.get(5)?,
        boot: r.get(6)?,
        held: r.get(7)?,
        proof: serde_json::from_str(&proof).map_err(|e| conversion(8, e))?,
        effect: read_effect(&effect, 9)?,
        attempt: r.get(10)?,
    })
}

fn payment_in(c: &Connection, key: &str) -> rusqlite::Result<Option<PaymentRow>> {
    c.query_row(
        &format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE key = ?1"),
        params![key],
        read_payment,
    )
    .optional()
}

/// Applies `effect` for `payer`, paid in `tx` (none: from credits), inside the caller's
/// transaction.
pub(super) fn apply(
    c: &Connection,
    effect: &Effect,
    payer: &PayTo,
    tx: Option<&str>,
    now_ms: u64,
) -> rusqlite::Result<Applied> {
    match effect {
        Effect::None => Ok(Applied::None),
        Effect::Credit { wallet, micros } => {
            deposit_in(c, wallet.as_ref().unwrap_or(payer), *micros).map(Applied::Credits)
        }
        Effect::Instance { record, owner } => {
            let mut record = (**record).clone();
            record.wallet = owner.unwrap_or(*payer);
            record.tx_hash = tx.map(str::to_owned);
            // Its time starts when it is paid: one settled late (by the reconciler, after
            // a crash or a held confirmation) still gets every hour it was paid for.
            let late = now_ms.saturating_sub(record.created_ms);
            record.created_ms = record.created_ms.saturating_add(late);
            record.active_ms = record.active_ms.saturating_add(late);
            record.expires_ms = record.expires_ms.saturating_add(late);
            insert_instance_in(c, &record)?;
            Ok(Applied::Instance(Box::new(record)))
        }
        Effect::Extend { id, hours, micros } => {
            let Some(mut record) = c
                .query_row(
                    &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"),
                    params![id],
                    read_instance,
                )
                .optional()?
            else {
                return Ok(Applied::None);
            };
            if record.destroyed_ms.is_some() {
                // Destroyed while the payment settled: the money becomes credits.
                return deposit_in(c, payer, *micros).map(Applied::Credits);
            }
            // Checked against the time of the request before it was paid.
            record.expires_ms = record
                .expires_ms
                .max(now_ms)
                .saturating_add(hours.saturating_mul(HOUR_MS))
                .min(i64::MAX.unsigned_abs());
            record.prepaid_hours = record.prepaid_hours.saturating_add(*hours);
            record.paid_micros = record.paid_micros.saturating_add(*micros);
            update_instance_in(c, &record)?;
            Ok(Applied::Instance(Box::new(record)))
        }
    }
}

impl Store {
    /// Claims a payment: a unique insert, or taking back a `failed` row of the same payment.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn claim_payment(&self, new: &NewPayment<'_>) -> Result<PaymentClaim> {
        let proof = serde_json::to_string(&new.proof).unwrap_or_default();
        let effect = effect_json(&new.effect);
        self.with(|c| {
            let tx = c.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO payments (key, network, payer, amount, status, boot, proof, effect, created_ms)
                 VALUES (?1, ?2, ?3, ?4, 'claimed', ?5, ?6, ?7, ?8)",
                params![new.key, new.network, wallet_key(&new.payer), new.amount, new.boot, proof, effect, int(new.now_ms)?],
            )?;
            let retried = inserted == 0
                && tx.execute(
                    "UPDATE payments SET status = 'claimed', tx = NULL, held = 0, boot = ?2, proof = ?3, effect = ?4,
                         created_ms = ?5, attempt = attempt + 1
                     WHERE key = ?1 AND status = 'failed'",
                    params![new.key, new.boot, proof, effect, int(new.now_ms)?],
                )? == 1;
            let claim = if inserted == 1 || retried {
                PaymentClaim::Claimed
            } else {
                match payment_in(&tx, new.key)? {
                    Some(row) => PaymentClaim::Taken(Box::new(row)),
                    None => PaymentClaim::Claimed,
                }
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    /// A payment's row.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn payment(&self, key: &str) -> Result<Option<PaymentRow>> {
        self.with(|c| payment_in(c, key))
    }

    /// Records the payment's transaction (and a new proof) before it is sent. `false` when
    /// the payment is no longer waiting to settle (the reconciler resolved it meanwhile): the
    /// transaction must then not be sent.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn payment_submitted(&self, key: &str, tx: &str, proof: Option<&Proof>) -> Result<bool> {
        let proof = proof.map(|p| serde_json::to_string(p).unwrap_or_default());
        self.with(|c| {
            c.execute(
                "UPDATE payments SET status = 'submitted', tx = ?2, proof = COALESCE(?3, proof)
                 WHERE key = ?1 AND status IN ('claimed', 'submitted')",
                params![key, tx, proof],
            )
            .map(|updated| updated == 1)
        })
    }

    /// Marks a payment whose confirmation the facilitator stopped waiting for: the
    /// reconciler takes it from here.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn payment_held(&self, key: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE payments SET held = 1 WHERE key = ?1 AND status IN ('claimed', 'submitted')",
                params![key],
            )
            .map(|_| ())
        })
    }

    /// Marks a payment failed: nothing moved and nothing can. With `attempt`, only that
    /// claim of it.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn payment_failed(&self, key: &str, attempt: Option<u32>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE payments SET status = 'failed', held = 0
                 WHERE key = ?1 AND status IN ('claimed', 'submitted') AND (?2 IS NULL OR attempt = ?2)",
                params![key, attempt],
            )
            .map(|_| ())
        })
    }

    /// Marks a payment settled in `tx` and applies its effect, in one database transaction.
    /// `None` when it was not waiting to settle (settled already, or failed), or, with
    /// `attempt`, when it is another claim of it.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn payment_settled(
        &self,
        key: &str,
        tx: &str,
        now_ms: u64,
        attempt: Option<u32>,
    ) -> Result<Option<Applied>> {
        self.with(|c| {
            let db = c.transaction()?;
            let Some(row) = payment_in(&db, key)? else {
                return Ok(None);
            };
            if !matches!(
                row.status,
                PaymentStatus::Claimed | PaymentStatus::Submitted
            ) || attempt.is_some_and(|attempt| attempt != row.attempt)
            {
                return Ok(None);
            }
            db.execute(
                "UPDATE payments SET status = ?2, tx = ?3, held = 0 WHERE key = ?1",
                params![key, PaymentStatus::Settled.as_str(), tx],
            )?;
            let applied = apply(&db, &row.effect, &row.payer, Some(tx), now_ms)?;
            db.commit()?;
            Ok(Some(applied))
        })
    }

    /// Payments to reconcile: claimed or submitted by another devnet run than `boot`, held,
    /// or claimed before `stale_ms` (a request that stopped, e.g. its client went away).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn unresolved_payments(&self, boot: &str, stale_ms: u64) -> Result<Vec<PaymentRow>> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {PAYMENT_COLUMNS} FROM payments
                 WHERE status IN ('claimed', 'submitted') AND (boot != ?1 OR held = 1 OR created_ms < ?2)"
            ))?;
            let rows = statement.query_map(params![boot, int(stale_ms)?], read_payment)?;
            rows.collect()
        })
    }

    /// Number of settled payments.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn settlement_count(&self) -> Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM payments WHERE status = 'settled'",
                [],
                |r| super::uint(r, 0),
            )
        })
    }
}
