//! The devnet's durable state, in SQLite: payments ([`payments`](self) as a state machine),
//! credits, API keys, instances, payment ids and used auth nonces.
//!
//! Every write is a single statement or a transaction, so a crash never leaves half a change.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use x402_core::PayTo;

use crate::error::Result;

mod grid;
mod payments;

pub use grid::{
    CustomPrice, FAILURE_KINDS, GridJob, GridNode, HeartbeatOutcome, HeartbeatUpdate, NewJob,
    NewNode, RegisterRefusal, Reservation, ReservationUse, SignedResult, cost_micros,
};
pub use payments::{Applied, Effect, NewPayment, PaymentClaim, PaymentRow, PaymentStatus, Proof};

/// How a wallet is written in the database and in the API's JSON: EVM addresses in lowercase
/// hex (as the compute API's wallet auth sends them), Solana addresses in base58, whose case
/// is part of the address.
pub fn wallet_key(wallet: &PayTo) -> String {
    match wallet {
        PayTo::Evm(address) => format!("{address:#x}"),
        PayTo::Solana(address) => address.to_string(),
    }
}

/// Reads a wallet written by [`wallet_key`].
fn read_wallet(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<PayTo> {
    let text: String = row.get(index)?;
    text.parse().map_err(|e: x402_core::Error| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// `value` as SQLite's signed integer, refusing what does not fit (never wrapping).
fn int(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// A column written by [`int`], refusing a negative value (never wrapping).
fn uint(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            Box::new(e),
        )
    })
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS credits (
    wallet TEXT PRIMARY KEY,
    deposited_micros INTEGER NOT NULL DEFAULT 0,
    spent_micros INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    key_last4 TEXT NOT NULL,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY,
    wallet TEXT NOT NULL,
    plan TEXT NOT NULL,
    region TEXT NOT NULL,
    os_id INTEGER NOT NULL,
    label TEXT NOT NULL,
    ssh_key INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    active_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    destroyed_ms INTEGER,
    prepaid_hours INTEGER NOT NULL,
    paid_micros INTEGER NOT NULL,
    password_taken INTEGER NOT NULL DEFAULT 0,
    tx_hash TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS instances_by_wallet ON instances (wallet);
CREATE TABLE IF NOT EXISTS payment_ids (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER,
    headers TEXT,
    body BLOB
);
CREATE TABLE IF NOT EXISTS auth_nonces (
    nonce TEXT PRIMARY KEY,
    seen_ms INTEGER NOT NULL
);
";

/// What became of a payment id's claim.
#[derive(Debug, PartialEq, Eq)]
pub enum PaymentIdClaim {
    /// First seen: the caller answers it, then stores the answer.
    New,
    /// Answered before, with the same payment: this answer.
    Stored(StoredResponse),
    /// Being answered right now.
    InProgress,
    /// Used with another payment.
    OtherPayment,
}

/// An answer kept for a payment id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// The headers worth replaying (content type, receipt).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Credit balances of one wallet, in US dollar micros.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Credits {
    /// Total deposited.
    pub deposited_micros: u64,
    /// Total spent.
    pub spent_micros: u64,
}

impl Credits {
    /// What is left.
    pub fn balance_micros(&self) -> u64 {
        self.deposited_micros.saturating_sub(self.spent_micros)
    }
}

/// An API key as listed (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Key id.
    pub id: String,
    /// Label.
    pub label: Option<String>,
    /// Last four characters.
    pub key_last4: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
}

/// The SQLite store.
#[derive(Debug)]
pub struct Store {
    connection: Mutex<Connection>,
}

impl Store {
    /// Opens (or creates) the database at `path`; `None` keeps it in memory.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn open(path: Option<&Path>) -> Result<Store> {
        let connection = match path {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(payments::SCHEMA)?;
        connection.execute_batch(grid::SCHEMA)?;
        Ok(Store {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(f(&mut connection)?)
    }

    /// Claims `id` for the payment whose fingerprint is `fingerprint`.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn claim_payment_id(&self, id: &str, fingerprint: &str) -> Result<PaymentIdClaim> {
        self.with(|c| {
            let tx = c.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO payment_ids (id, fingerprint) VALUES (?1, ?2)",
                params![id, fingerprint],
            )?;
            let claim = if inserted == 1 {
                PaymentIdClaim::New
            } else {
                tx.query_row(
                    "SELECT fingerprint, status, headers, body FROM payment_ids WHERE id = ?1",
                    params![id],
                    |r| {
                        let seen: String = r.get(0)?;
                        let status: Option<u16> = r.get(1)?;
                        Ok(match (seen == fingerprint, status) {
                            (false, _) => PaymentIdClaim::OtherPayment,
                            (true, None) => PaymentIdClaim::InProgress,
                            (true, Some(status)) => {
                                let headers: String = r.get(2)?;
                                PaymentIdClaim::Stored(StoredResponse {
                                    status,
                                    headers: serde_json::from_str(&headers).unwrap_or_default(),
                                    body: r.get(3)?,
                                })
                            }
                        })
                    },
                )?
            };
            tx.commit()?;
            Ok(claim)
        })
    }

    /// Stores the answer to a claimed payment id.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn store_payment_id_response(&self, id: &str, response: &StoredResponse) -> Result<()> {
        let headers = serde_json::to_string(&response.headers).unwrap_or_default();
        self.with(|c| {
            c.execute(
                "UPDATE payment_ids SET status = ?2, headers = ?3, body = ?4 WHERE id = ?1",
                params![id, response.status, headers, response.body],
            )
            .map(|_| ())
        })
    }

    /// Forgets every payment id still being answered: at start, those requests are gone.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn forget_unanswered_payment_ids(&self) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM payment_ids WHERE status IS NULL", [])
                .map(|_| ())
        })
    }

    /// Forgets an unanswered payment id, so the same payment may try again.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn forget_payment_id(&self, id: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "DELETE FROM payment_ids WHERE id = ?1 AND status IS NULL",
                params![id],
            )
            .map(|_| ())
        })
    }

    /// Adds a deposit.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn deposit(&self, wallet: &PayTo, micros: u64) -> Result<Credits> {
        self.with(|c| {
            let tx = c.transaction()?;
            let credits = deposit_in(&tx, wallet, micros)?;
            tx.commit()?;
            Ok(credits)
        })
    }

    /// Spends `micros` of `wallet`'s credits on `effect` and applies it, in one database
    /// transaction: both happen or neither. `Ok(Err(shortfall))` when the balance does not
    /// cover it (nothing changes then).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn spend_on(
        &self,
        wallet: &PayTo,
        micros: u64,
        effect: &Effect,
        now_ms: u64,
    ) -> Result<std::result::Result<Applied, u64>> {
        let key = wallet_key(wallet);
        self.with(|c| {
            let tx = c.transaction()?;
            let credits = read_credits(&tx, &key)?;
            if credits.balance_micros() < micros {
                return Ok(Err(micros - credits.balance_micros()));
            }
            // Covered by the balance, so the sum stays at most the deposits.
            let spent = credits.spent_micros.saturating_add(micros);
            tx.execute(
                "UPDATE credits SET spent_micros = ?2 WHERE wallet = ?1",
                params![key, int(spent)?],
            )?;
            let applied = payments::apply(&tx, effect, wallet, None, now_ms)?;
            tx.commit()?;
            Ok(Ok(applied))
        })
    }

    /// Gives back credits spent on something that did not happen.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn unspend(&self, wallet: &PayTo, micros: u64) -> Result<()> {
        let wallet = wallet_key(wallet);
        self.with(|c| {
            c.execute(
                "UPDATE credits SET spent_micros = MAX(0, spent_micros - ?2) WHERE wallet = ?1",
                params![wallet, int(micros)?],
            )
            .map(|_| ())
        })
    }

    /// A wallet's credits.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn credits(&self, wallet: &PayTo) -> Result<Credits> {
        self.with(|c| read_credits(c, &wallet_key(wallet)))
    }

    /// Records an auth nonce; `false` when it was already used. Forgets nonces older than
    /// `keep_ms`.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn use_auth_nonce(&self, nonce: &str, now_ms: u64, keep_ms: u64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "DELETE FROM auth_nonces WHERE seen_ms < ?1",
                params![int(now_ms.saturating_sub(keep_ms))?],
            )?;
            let inserted = c.execute(
                "INSERT OR IGNORE INTO auth_nonces (nonce, seen_ms) VALUES (?1, ?2)",
                params![nonce, int(now_ms)?],
            )?;
            Ok(inserted == 1)
        })
    }

    /// Stores a new API key (by hash).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_api_key(
        &self,
        wallet: &PayTo,
        id: &str,
        key_hash: &str,
        key_last4: &str,
        label: Option<&str>,
        created_at: &str,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO api_keys (id, wallet, key_hash, key_last4, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, wallet_key(wallet), key_hash, key_last4, label, created_at],
            )
            .map(|_| ())
        })
    }

    /// The wallet owning an unrevoked key with this hash.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn wallet_for_key(&self, key_hash: &str) -> Result<Option<PayTo>> {
        self.with(|c| {
            c.query_row(
                "SELECT wallet FROM api_keys WHERE key_hash = ?1 AND revoked_at IS NULL",
                params![key_hash],
                |r| read_wallet(r, 0),
            )
            .optional()
        })
    }

    /// A wallet's keys.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn api_keys(&self, wallet: &PayTo) -> Result<Vec<ApiKeyRecord>> {
        let wallet = wallet_key(wallet);
        self.with(|c| {
            let mut statement = c.prepare("SELECT id, label, key_last4, created_at, revoked_at FROM api_keys WHERE wallet = ?1 ORDER BY created_at, id")?;
            let rows = statement.query_map(params![wallet], |r| {
                Ok(ApiKeyRecord { id: r.get(0)?, label: r.get(1)?, key_last4: r.get(2)?, created_at: r.get(3)?, revoked_at: r.get(4)? })
            })?;
            rows.collect()
        })
    }

    /// Revokes a wallet's key; `false` when the wallet has no such unrevoked key.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn revoke_api_key(&self, wallet: &PayTo, id: &str, at: &str) -> Result<bool> {
        let wallet = wallet_key(wallet);
        self.with(|c| {
            c.execute("UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND wallet = ?2 AND revoked_at IS NULL", params![id, wallet, at]).map(|n| n == 1)
        })
    }
}

/// One instance row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    /// Id.
    pub id: String,
    /// Owner.
    pub wallet: PayTo,
    /// Plan id.
    pub plan: String,
    /// Region id.
    pub region: String,
    /// OS image id.
    pub os_id: u32,
    /// Label.
    pub label: String,
    /// Whether it was created with an SSH key.
    pub ssh_key: bool,
    /// Created, unix ms.
    pub created_ms: u64,
    /// Boots (becomes active), unix ms.
    pub active_ms: u64,
    /// Prepaid until, unix ms.
    pub expires_ms: u64,
    /// Destroyed, unix ms.
    pub destroyed_ms: Option<u64>,
    /// Hours bought in total.
    pub prepaid_hours: u64,
    /// Dollars paid in total, micros.
    pub paid_micros: u64,
    /// Whether the one-time password was handed out.
    pub password_taken: bool,
    /// Payment transaction of the purchase.
    pub tx_hash: Option<String>,
    /// Extra JSON (AI machine, resize state).
    pub metadata: String,
}

const INSTANCE_COLUMNS: &str = "id, wallet, plan, region, os_id, label, ssh_key, created_ms, active_ms, expires_ms, destroyed_ms, prepaid_hours, paid_micros, password_taken, tx_hash, metadata";

fn read_instance(r: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRecord> {
    Ok(InstanceRecord {
        id: r.get(0)?,
        wallet: read_wallet(r, 1)?,
        plan: r.get(2)?,
        region: r.get(3)?,
        os_id: r.get(4)?,
        label: r.get(5)?,
        ssh_key: r.get(6)?,
        created_ms: uint(r, 7)?,
        active_ms: uint(r, 8)?,
        expires_ms: uint(r, 9)?,
        destroyed_ms: match r.get::<_, Option<i64>>(10)? {
            Some(_) => Some(uint(r, 10)?),
            None => None,
        },
        prepaid_hours: uint(r, 11)?,
        paid_micros: uint(r, 12)?,
        password_taken: r.get(13)?,
        tx_hash: r.get(14)?,
        metadata: r.get(15)?,
    })
}

impl Store {
    /// Stores a new instance.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn insert_instance(&self, i: &InstanceRecord) -> Result<()> {
        self.with(|c| insert_instance_in(c, i))
    }

    /// An instance, if `wallet` owns it.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn instance(&self, wallet: &PayTo, id: &str) -> Result<Option<InstanceRecord>> {
        let wallet = wallet_key(wallet);
        self.with(|c| {
            c.query_row(
                &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1 AND wallet = ?2"),
                params![id, wallet],
                read_instance,
            )
            .optional()
        })
    }

    /// An instance by id, whoever owns it (paid extends need no auth).
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn instance_by_id(&self, id: &str) -> Result<Option<InstanceRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"),
                params![id],
                read_instance,
            )
            .optional()
        })
    }

    /// A wallet's instances, newest first.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn instances(&self, wallet: &PayTo) -> Result<Vec<InstanceRecord>> {
        let wallet = wallet_key(wallet);
        self.with(|c| {
            let mut statement = c.prepare(&format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE wallet = ?1 ORDER BY created_ms DESC, id"))?;
            let rows = statement.query_map(params![wallet], read_instance)?;
            rows.collect()
        })
    }

    /// Destroys an instance at `now_ms`; `false` when it was destroyed already.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn destroy_instance(&self, id: &str, now_ms: u64) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE instances SET destroyed_ms = ?2 WHERE id = ?1 AND destroyed_ms IS NULL",
                params![id, int(now_ms)?],
            )
            .map(|n| n == 1)
        })
    }

    /// Moves `before` to `plan`, running until `expires_ms`, only if nothing changed it since
    /// it was read (an extension paid meanwhile is never overwritten); `false` otherwise.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn resize_instance(
        &self,
        before: &InstanceRecord,
        plan: &str,
        expires_ms: u64,
    ) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE instances SET plan = ?2, expires_ms = ?3
                 WHERE id = ?1 AND plan = ?4 AND expires_ms = ?5 AND destroyed_ms IS NULL",
                params![
                    before.id,
                    plan,
                    int(expires_ms)?,
                    before.plan,
                    int(before.expires_ms)?
                ],
            )
            .map(|n| n == 1)
        })
    }

    /// Takes the one-time password: `true` the first time only.
    ///
    /// # Errors
    /// [`crate::Error::Store`].
    pub fn take_password(&self, id: &str) -> Result<bool> {
        self.with(|c| {
            c.execute(
                "UPDATE instances SET password_taken = 1 WHERE id = ?1 AND password_taken = 0",
                params![id],
            )
            .map(|n| n == 1)
        })
    }
}

/// Adds a deposit inside the caller's transaction.
fn deposit_in(c: &Connection, wallet: &PayTo, micros: u64) -> rusqlite::Result<Credits> {
    let wallet = wallet_key(wallet);
    let before = read_credits(c, &wallet)?;
    let deposited = before.deposited_micros.checked_add(micros).ok_or_else(|| {
        rusqlite::Error::ToSqlConversionFailure("the deposit total would overflow".into())
    })?;
    c.execute(
        "INSERT INTO credits (wallet, deposited_micros) VALUES (?1, ?2)
         ON CONFLICT(wallet) DO UPDATE SET deposited_micros = excluded.deposited_micros",
        params![wallet, int(deposited)?],
    )?;
    read_credits(c, &wallet)
}

fn insert_instance_in(c: &Connection, i: &InstanceRecord) -> rusqlite::Result<()> {
    c.execute(
        &format!("INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"),
        params![
            i.id, wallet_key(&i.wallet), i.plan, i.region, i.os_id, i.label, i.ssh_key, int(i.created_ms)?, int(i.active_ms)?, int(i.expires_ms)?,
            i.destroyed_ms.map(int).transpose()?, int(i.prepaid_hours)?, int(i.paid_micros)?, i.password_taken, i.tx_hash, i.metadata
        ],
    )
    .map(|_| ())
}

/// Writes an extension (expiry, hours, dollars) inside the caller's transaction, which read
/// the record in it.
fn update_instance_in(c: &Connection, i: &InstanceRecord) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE instances SET expires_ms = ?2, prepaid_hours = ?3, paid_micros = ?4 WHERE id = ?1",
        params![
            i.id,
            int(i.expires_ms)?,
            int(i.prepaid_hours)?,
            int(i.paid_micros)?
        ],
    )
    .map(|_| ())
}

fn read_credits(c: &Connection, wallet: &str) -> rusqlite::Result<Credits> {
    c.query_row(
        "SELECT deposited_micros, spent_micros FROM credits WHERE wallet = ?1",
        params![wallet],
        |r| {
            Ok(Credits {
                deposited_micros: uint(r, 0)?,
                spent_micros: uint(r, 1)?,
            })
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wallet() -> PayTo {
        PayTo::Evm(alloy::primitives::Address::repeat_byte(7))
    }

    fn payment(key: &str) -> NewPayment<'_> {
        NewPayment {
            key,
            network: "eip155:84532",
            payer: wallet(),
            amount: "5".into(),
            boot: "b",
            proof: Proof::Solana {
                signature: None,
                valid_until: None,
            },
            effect: Effect::Credit {
                wallet: None,
                micros: 5,
            },
            now_ms: 0,
        }
    }

    #[test]
    fn a_payment_is_claimed_once_and_settles_with_its_effect() {
        let store = Store::open(None).unwrap();
        let payer = wallet();
        let new = payment("k");
        assert_eq!(store.claim_payment(&new).unwrap(), PaymentClaim::Claimed);
        assert!(matches!(
            store.claim_payment(&new).unwrap(),
            PaymentClaim::Taken(row) if row.status == PaymentStatus::Claimed
        ));
        // Failed: the same payment may claim it again.
        store.payment_failed("k", None).unwrap();
        assert_eq!(store.claim_payment(&new).unwrap(), PaymentClaim::Claimed);
        store.payment_submitted("k", "0xabc", None).unwrap();
        // A reconciler that read the first claim cannot touch the second.
        store.payment_failed("k", Some(0)).unwrap();
        assert_eq!(
            store.payment_settled("k", "0xabc", 0, Some(0)).unwrap(),
            None
        );
        assert_eq!(
            store.payment_settled("k", "0xabc", 0, Some(1)).unwrap(),
            Some(Applied::Credits(Credits {
                deposited_micros: 5,
                spent_micros: 0
            }))
        );
        assert_eq!(
            store.payment_settled("k", "0xabc", 0, None).unwrap(),
            None,
            "once"
        );
        assert_eq!(store.credits(&payer).unwrap().deposited_micros, 5);
        assert_eq!(store.settlement_count().unwrap(), 1);
        store.payment_failed("k", None).unwrap();
        assert_eq!(
            store.payment("k").unwrap().unwrap().status,
            PaymentStatus::Settled
        );
    }

    #[test]
    fn credits_never_go_negative() {
        let store = Store::open(None).unwrap();
        assert_eq!(store.credits(&wallet()).unwrap(), Credits::default());
        store.deposit(&wallet(), 5_000_000).unwrap();
        let spend = |micros| store.spend_on(&wallet(), micros, &Effect::None, 0).unwrap();
        assert_eq!(spend(7_000_000), Err(2_000_000));
        assert_eq!(spend(3_000_000), Ok(Applied::None));
        assert_eq!(
            store.credits(&wallet()).unwrap().balance_micros(),
            2_000_000
        );
    }

    #[test]
    fn auth_nonces_are_single_use() {
        let store = Store::open(None).unwrap();
        assert!(store.use_auth_nonce("n", 1000, 600_000).unwrap());
        assert!(!store.use_auth_nonce("n", 2000, 600_000).unwrap());
    }

    #[test]
    fn state_survives_reopening() {
        let dir = std::env::temp_dir().join(format!("devnet-store-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("state.sqlite");
        let _ = std::fs::remove_file(&path);
        {
            let store = Store::open(Some(&path)).unwrap();
            store.deposit(&wallet(), 42).unwrap();
            store.claim_payment(&payment("k")).unwrap();
            store.payment_settled("k", "tx", 0, None).unwrap();
        }
        let store = Store::open(Some(&path)).unwrap();
        // The deposit, and the 5 the settled payment credited.
        assert_eq!(store.credits(&wallet()).unwrap().deposited_micros, 47);
        assert!(matches!(
            store.claim_payment(&payment("k")).unwrap(),
            PaymentClaim::Taken(row) if row.status == PaymentStatus::Settled
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
