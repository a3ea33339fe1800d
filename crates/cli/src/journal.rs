//! The durable payment journal: SQLite in the user's data directory (WAL, `synchronous=FULL`,
//! so a payment recorded before it leaves survives a crash or a power cut).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use x402_core::{TokenAmount, UsdMicros};
use x402_reqwest::{Entry, EntryId, NewEntry, PaymentJournal, PaymentState};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    network TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount TEXT NOT NULL,
    usd_micros INTEGER,
    pay_to TEXT NOT NULL,
    identity TEXT NOT NULL,
    payment_id TEXT,
    header_name TEXT NOT NULL,
    header_value TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'rejected', 'unpaid')),
    tx TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS payments_pending ON payments (fingerprint) WHERE state = 'pending';
";

/// The schema's version (`PRAGMA user_version`). 0: the first journals, whose `state` check
/// lacks `unpaid`; 1: this one.
const SCHEMA_VERSION: i64 = 1;

/// Moves a version-0 journal to [`SCHEMA_VERSION`] in one transaction (SQLite cannot alter a
/// CHECK constraint: the table is copied).
fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    let transaction = connection.transaction()?;
    let exists: bool = transaction.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'payments')",
        [],
        |r| r.get(0),
    )?;
    if exists {
        transaction.execute_batch(&format!(
            "DROP INDEX IF EXISTS payments_pending;
             ALTER TABLE payments RENAME TO payments_v0;
             {SCHEMA}
             INSERT INTO payments ({COLUMNS}) SELECT {COLUMNS} FROM payments_v0;
             DROP TABLE payments_v0;"
        ))?;
    } else {
        transaction.execute_batch(SCHEMA)?;
    }
    transaction.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    transaction.commit()
}

/// The journal file.
#[derive(Debug)]
pub(crate) struct SqliteJournal {
    connection: Mutex<Connection>,
}

fn failed(error: impl std::fmt::Display) -> x402_reqwest::Error {
    x402_reqwest::Error::Journal(error.to_string())
}

const COLUMNS: &str = "id, operation, fingerprint, network, asset, amount, usd_micros, pay_to, identity, payment_id, header_name, header_value, body, content_type, created_ms, state, tx, reason";

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let amount: String = row.get(5)?;
    let usd: Option<i64> = row.get(6)?;
    let header_name: String = row.get(10)?;
    let created: i64 = row.get(14)?;
    let state: String = row.get(15)?;
    let tx: Option<String> = row.get(16)?;
    let reason: Option<String> = row.get(17)?;
    let id: i64 = row.get(0)?;
    Ok(Entry {
        id: EntryId(u64::try_from(id).unwrap_or_default()),
        payment: NewEntry {
            operation: row.get(1)?,
            fingerprint: row.get(2)?,
            network: row.get(3)?,
            asset: row.get(4)?,
            amount: amount.parse().unwrap_or(TokenAmount::ZERO),
            usd: usd.and_then(|u| u64::try_from(u).ok()).map(UsdMicros),
            pay_to: row.get(7)?,
            identity: row.get(8)?,
            payment_id: row.get(9)?,
            header_name: match header_name.as_str() {
                "X-PAYMENT" => "X-PAYMENT",
                _ => "PAYMENT-SIGNATURE",
            },
            header_value: row.get(11)?,
            body: row.get(12)?,
            content_type: row.get(13)?,
            created_ms: u64::try_from(created).unwrap_or_default(),
        },
        state: match state.as_str() {
            "settled" => PaymentState::Settled {
                transaction: tx.unwrap_or_default(),
            },
            "rejected" => PaymentState::Rejected {
                reason: reason.unwrap_or_default(),
            },
            "unpaid" => PaymentState::Unpaid {
                reason: reason.unwrap_or_default(),
            },
            _ => PaymentState::Pending { transaction: tx },
        },
    })
}

impl SqliteJournal {
    /// Opens (or creates) the journal at `path`, creating its directory (mode 0700 on Unix).
    pub(crate) fn open(path: &Path) -> anyhow::Result<SqliteJournal> {
        use anyhow::Context as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
            }
        }
        let mut connection = Connection::open(path)
            .with_context(|| format!("cannot open the payment journal {}", path.display()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .context("cannot configure the payment journal")?;
        migrate(&mut connection).with_context(|| {
            format!(
                "cannot create or upgrade the payment journal {}",
                path.display()
            )
        })?;
        Ok(SqliteJournal {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, x402_reqwest::Error> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&connection).map_err(failed)
    }

    /// One payment.
    pub(crate) fn entry(&self, id: EntryId) -> Result<Option<Entry>, x402_reqwest::Error> {
        let id = i64::try_from(id.0).map_err(failed)?;
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM payments WHERE id = ?1"),
                params![id],
                read,
            )
            .optional()
        })
    }

    /// The pending payments, oldest first.
    pub(crate) fn pending(&self) -> Result<Vec<Entry>, x402_reqwest::Error> {
        Ok(self
            .entries()?
            .into_iter()
            .filter(|e| matches!(e.state, PaymentState::Pending { .. }))
            .collect())
    }
}

impl PaymentJournal for SqliteJournal {
    fn record(&self, p: NewEntry) -> Result<EntryId, x402_reqwest::Error> {
        let usd = p
            .usd
            .map(|u| i64::try_from(u.0))
            .transpose()
            .map_err(failed)?;
        let created = i64::try_from(p.created_ms).map_err(failed)?;
        let id = self.with(|c| {
            c.execute(
                "INSERT INTO payments (operation, fingerprint, network, asset, amount, usd_micros, pay_to, identity,
                     payment_id, header_name, header_value, body, content_type, created_ms, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'pending')",
                params![
                    p.operation, p.fingerprint, p.network, p.asset, p.amount.to_string(), usd, p.pay_to,
                    p.identity, p.payment_id, p.header_name, p.header_value, p.body, p.content_type, created
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        Ok(EntryId(u64::try_from(id).map_err(failed)?))
    }

    fn update(&self, id: EntryId, state: PaymentState) -> Result<(), x402_reqwest::Error> {
        let id = i64::try_from(id.0).map_err(failed)?;
        let (name, tx, reason) = match state {
            PaymentState::Pending { transaction } => ("pending", transaction, None),
            PaymentState::Settled { transaction } => ("settled", Some(transaction), None),
            PaymentState::Rejected { reason } => ("rejected", None, Some(reason)),
            PaymentState::Unpaid { reason } => ("unpaid", None, Some(reason)),
        };
        let updated = self.with(|c| {
            c.execute(
                "UPDATE payments SET state = ?2, tx = COALESCE(?3, tx), reason = ?4 WHERE id = ?1",
                params![id, name, tx, reason],
            )
        })?;
        match updated {
            1 => Ok(()),
            _ => Err(failed(format!("no payment {id} in the journal"))),
        }
    }

    fn detach(&self, id: EntryId) -> Result<(), x402_reqwest::Error> {
        let id = i64::try_from(id.0).map_err(failed)?;
        let updated = self.with(|c| {
            c.execute(
                "UPDATE payments SET fingerprint = 'detached:' || id || ':' || fingerprint WHERE id = ?1",
                params![id],
            )
        })?;
        match updated {
            1 => Ok(()),
            _ => Err(failed(format!("no payment {id} in the journal"))),
        }
    }

    fn pending_for(&self, fingerprint: &str) -> Result<Option<Entry>, x402_reqwest::Error> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM payments WHERE fingerprint = ?1 AND state = 'pending' ORDER BY id DESC LIMIT 1"),
                params![fingerprint],
                read,
            )
            .optional()
        })
    }

    fn spent_since(&self, since_ms: u64) -> Result<UsdMicros, x402_reqwest::Error> {
        let since = i64::try_from(since_ms).map_err(failed)?;
        let total: i64 = self.with(|c| {
            c.query_row(
                "SELECT COALESCE(SUM(usd_micros), 0) FROM payments WHERE created_ms >= ?1 AND state IN ('pending', 'settled')",
                params![since],
                |r| r.get(0),
            )
        })?;
        Ok(UsdMicros(u64::try_from(total).map_err(failed)?))
    }

    fn entries(&self) -> Result<Vec<Entry>, x402_reqwest::Error> {
        self.with(|c| {
            let mut statement =
                c.prepare(&format!("SELECT {COLUMNS} FROM payments ORDER BY id"))?;
            let rows = statement.query_map([], read)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_first_version_journal_is_upgraded_with_its_payments() {
        let dir = std::env::temp_dir().join(format!("x402c-migrate-{}", std::process::id()));
        let path = dir.join("payments.sqlite");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        {
            let old = Connection::open(&path).unwrap();
            old.execute_batch(&SCHEMA.replace(", 'unpaid'", ""))
                .unwrap();
            old.execute(
                "INSERT INTO payments (operation, fingerprint, network, asset, amount, pay_to, identity,
                     header_name, header_value, body, created_ms, state)
                 VALUES ('GET http://x/', 'f', 'eip155:84532', '0xa', '10000', '0xb', '0xn',
                     'PAYMENT-SIGNATURE', 'header', x'', 1, 'pending')",
                [],
            )
            .unwrap();
            // The first schema refuses the new state.
            assert!(
                old.execute("UPDATE payments SET state = 'unpaid'", [])
                    .is_err()
            );
        }
        let journal = SqliteJournal::open(&path).unwrap();
        let entries = journal.entries().unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(journal.pending_for("f").unwrap().unwrap().id, EntryId(1));
        journal
            .update(
                EntryId(1),
                PaymentState::Unpaid {
                    reason: "expired".into(),
                },
            )
            .unwrap();
        drop(journal);
        // Opening again changes nothing.
        let journal = SqliteJournal::open(&path).unwrap();
        assert_eq!(
            journal.entry(EntryId(1)).unwrap().unwrap().state,
            PaymentState::Unpaid {
                reason: "expired".into()
            }
        );
        assert_eq!(journal.spent_since(0).unwrap(), UsdMicros(0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
