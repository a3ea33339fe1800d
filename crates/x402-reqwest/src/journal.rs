//! The payment journal: every payment is written down before it leaves the process, and its
//! outcome after.
//!
//! A payment whose outcome is not known (the answer was lost, or the server said
//! `settlement_pending`) stays [`PaymentState::Pending`]; the middleware never signs a new
//! payment for an operation that has one, and resends the same signed payment instead (a
//! server settles each payment at most once). [`MemoryJournal`] keeps it in memory; the CLI
//! keeps a durable one.

use std::sync::Mutex;

use x402_core::{TokenAmount, UsdMicros};

use crate::Error;

/// A journal's id for one payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId(pub u64);

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a payment is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentState {
    /// It left the process (or was about to); its outcome is not known.
    Pending {
        /// The transaction a server named (`settlement_pending`), if any.
        transaction: Option<String>,
    },
    /// It settled.
    Settled {
        /// The transaction (empty when the server sent no receipt).
        transaction: String,
    },
    /// The server refused it; the chain was not asked.
    Rejected {
        /// The server's reason.
        reason: String,
    },
    /// The chain proved it never landed and never can (see [`crate::chain`]): no money moved.
    Unpaid {
        /// The chain's evidence.
        reason: String,
    },
}

impl PaymentState {
    /// Whether money moved or may still move: what a budget counts.
    pub fn may_have_paid(&self) -> bool {
        matches!(
            self,
            PaymentState::Pending { .. } | PaymentState::Settled { .. }
        )
    }
}

/// A payment about to leave the process.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// What the payment is for: the request's method and URL.
    pub operation: String,
    /// SHA-256 of the method, URL and body: the same request is the same operation.
    pub fingerprint: String,
    /// The network, CAIP-2.
    pub network: String,
    /// The asset (token address or mint).
    pub asset: String,
    /// The amount, atomic units.
    pub amount: TokenAmount,
    /// The amount in dollars, when the asset is a known USD stablecoin.
    pub usd: Option<UsdMicros>,
    /// The recipient.
    pub pay_to: String,
    /// What makes the payment unique on chain (authorization nonce, permit nonce, Solana
    /// message digest), as the payer reports it.
    pub identity: String,
    /// The `payment-identifier` id sent with it (v2), if any.
    pub payment_id: Option<String>,
    /// The payment header's name.
    pub header_name: &'static str,
    /// The signed payment header's value: what a safe retry resends. A signature: never
    /// logged, never in `Debug`.
    pub header_value: String,
    /// The request's body, resent with the payment when its outcome is reconciled.
    pub body: Vec<u8>,
    /// The request's content type.
    pub content_type: Option<String>,
    /// When it was written, unix ms.
    pub created_ms: u64,
}

impl std::fmt::Debug for NewEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEntry")
            .field("operation", &self.operation)
            .field("network", &self.network)
            .field("amount", &self.amount)
            .field("pay_to", &self.pay_to)
            .field("header_value", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A payment as the journal holds it. `Debug` redacts the signed payment (through
/// [`NewEntry`]'s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: EntryId,
    /// What was written before it left.
    pub payment: NewEntry,
    /// Where it is.
    pub state: PaymentState,
}

/// Where payments are written down. Implementations must make [`PaymentJournal::record`]
/// durable before returning: the payment leaves the process right after.
pub trait PaymentJournal: Send + Sync {
    /// Writes a payment before it is sent.
    ///
    /// # Errors
    /// [`Error::Journal`] when it cannot be written (the payment is then not sent).
    fn record(&self, payment: NewEntry) -> Result<EntryId, Error>;

    /// Records where a payment is now.
    ///
    /// # Errors
    /// [`Error::Journal`].
    fn update(&self, id: EntryId, state: PaymentState) -> Result<(), Error>;

    /// Lets `id`'s operation be paid anew: the payment stays pending (it may still settle,
    /// and reconciling it still resolves it), but the middleware no longer resends it for
    /// that operation. Only on the user's explicit word (`x402c fetch --force`).
    ///
    /// # Errors
    /// [`Error::Journal`].
    fn detach(&self, id: EntryId) -> Result<(), Error>;

    /// The pending payment of an operation (by fingerprint), if there is one.
    ///
    /// # Errors
    /// [`Error::Journal`].
    fn pending_for(&self, fingerprint: &str) -> Result<Option<Entry>, Error>;

    /// Dollars paid or possibly paid (settled and pending) since `since_ms`: what a rolling
    /// budget counts.
    ///
    /// # Errors
    /// [`Error::Journal`].
    fn spent_since(&self, since_ms: u64) -> Result<UsdMicros, Error>;

    /// Every payment, oldest first.
    ///
    /// # Errors
    /// [`Error::Journal`].
    fn entries(&self) -> Result<Vec<Entry>, Error>;
}

/// A journal in memory: for tests and short-lived programs (a crash forgets it).
#[derive(Debug, Default)]
pub struct MemoryJournal {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    entries: Vec<Entry>,
    /// The pending payment of each operation, by fingerprint (an index into `entries`).
    pending: std::collections::HashMap<String, usize>,
}

impl MemoryJournal {
    /// An empty journal.
    pub fn new() -> MemoryJournal {
        MemoryJournal::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PaymentJournal for MemoryJournal {
    fn record(&self, payment: NewEntry) -> Result<EntryId, Error> {
        let mut memory = self.lock();
        let index = memory.entries.len();
        let id = EntryId(u64::try_from(index).unwrap_or(u64::MAX).saturating_add(1));
        memory.pending.insert(payment.fingerprint.clone(), index);
        memory.entries.push(Entry {
            id,
            payment,
            state: PaymentState::Pending { transaction: None },
        });
        Ok(id)
    }

    fn update(&self, id: EntryId, state: PaymentState) -> Result<(), Error> {
        let mut memory = self.lock();
        let index = usize::try_from(id.0)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|index| *index < memory.entries.len())
            .ok_or_else(|| Error::Journal(format!("no payment {id} in the journal")))?;
        let pending = matches!(state, PaymentState::Pending { .. });
        let fingerprint = memory.entries[index].payment.fingerprint.clone();
        memory.entries[index].state = state;
        match pending {
            true => {
                memory.pending.insert(fingerprint, index);
            }
            false => {
                if memory.pending.get(&fingerprint) == Some(&index) {
                    memory.pending.remove(&fingerprint);
                }
            }
        }
        Ok(())
    }

    fn detach(&self, id: EntryId) -> Result<(), Error> {
        let mut memory = self.lock();
        let index = usize::try_from(id.0)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|index| *index < memory.entries.len())
            .ok_or_else(|| Error::Journal(format!("no payment {id} in the journal")))?;
        let fingerprint = memory.entries[index].payment.fingerprint.clone();
        if memory.pending.get(&fingerprint) == Some(&index) {
            memory.pending.remove(&fingerprint);
        }
        memory.entries[index].payment.fingerprint = format!("detached:{id}:{fingerprint}");
        Ok(())
    }

    fn pending_for(&self, fingerprint: &str) -> Result<Option<Entry>, Error> {
        let memory = self.lock();
        Ok(memory
            .pending
            .get(fingerprint)
            .and_then(|index| memory.entries.get(*index))
            .cloned())
    }

    fn spent_since(&self, since_ms: u64) -> Result<UsdMicros, Error> {
        let mut total = 0u64;
        for entry in self.lock().entries.iter().rev() {
            if entry.payment.created_ms < since_ms {
                // Entries are in the order they were written, with the clock's times.
                break;
            }
            if entry.state.may_have_paid() {
                let usd = entry.payment.usd.map_or(0, |u| u.0);
                total = total.checked_add(usd).ok_or_else(|| {
                    Error::Journal("the journal's dollar total overflows".to_owned())
                })?;
            }
        }
        Ok(UsdMicros(total))
    }

    fn entries(&self) -> Result<Vec<Entry>, Error> {
        Ok(self.lock().entries.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fingerprint: &str, usd: u64, created_ms: u64) -> NewEntry {
        NewEntry {
            operation: "POST http://x/".into(),
            fingerprint: fingerprint.into(),
            network: "eip155:84532".into(),
            asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e".into(),
            amount: TokenAmount::from_u64(usd),
            usd: Some(UsdMicros(usd)),
            pay_to: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C".into(),
            identity: "0x01".into(),
            payment_id: None,
            header_name: "X-PAYMENT",
            header_value: "c2VjcmV0LXNpZ25hdHVyZQ==".into(),
            body: b"{}".to_vec(),
            content_type: None,
            created_ms,
        }
    }

    #[test]
    fn pending_payments_are_found_by_operation_and_counted_until_rejected() {
        let journal = MemoryJournal::new();
        let a = journal.record(entry("a", 2_000_000, 10)).unwrap();
        let b = journal.record(entry("b", 3_000_000, 20)).unwrap();
        assert_eq!(journal.pending_for("a").unwrap().unwrap().id, a);
        assert_eq!(journal.spent_since(0).unwrap(), UsdMicros(5_000_000));
        assert_eq!(journal.spent_since(15).unwrap(), UsdMicros(3_000_000));
        journal
            .update(
                a,
                PaymentState::Settled {
                    transaction: "0xabc".into(),
                },
            )
            .unwrap();
        assert_eq!(journal.pending_for("a").unwrap(), None);
        journal
            .update(
                b,
                PaymentState::Rejected {
                    reason: "invalid_signature".into(),
                },
            )
            .unwrap();
        assert_eq!(journal.spent_since(0).unwrap(), UsdMicros(2_000_000));
        assert!(matches!(
            journal.update(EntryId(9), PaymentState::Pending { transaction: None }),
            Err(Error::Journal(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_signed_header() {
        let journal = MemoryJournal::new();
        journal.record(entry("a", 1, 1)).unwrap();
        let shown = format!("{:?} {journal:?}", journal.entries().unwrap());
        assert!(!shown.contains("c2VjcmV0LXNpZ25hdHVyZQ=="), "{shown}");
    }
}
