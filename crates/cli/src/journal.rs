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
    state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'rejected')),
    tx TEXT,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS payments_pending ON payments (fingerprint) WHERE state = 'pending';
";

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
        let connection = Connection::open(path)
            .with_context(|| format!("cannot open the payment journal {}", path.display()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
            )
            .context("cannot configure the payment journal")?;
        connection
            .execute_batch(SCHEMA)
            .context("cannot create the payment journal's table")?;
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
                "SELECT COALESCE(SUM(usd_micros), 0) FROM payments WHERE created_ms >= ?1 AND state != 'rejected'",
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
