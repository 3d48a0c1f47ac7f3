//! The gateway's SQLite database (sqlx, migrations/gateway/): the accounts it serves,
//! trust-on-first-use pins and trust events. Runtime queries only, so builds need no
//! database. Secrets never live here (they are in the keystore).

use std::path::Path;

use sqlx::{Row, SqlitePool};

use crate::smimp::address::Address;
use crate::smimp::profile::Pin;

mod deliveries;
mod flags;
mod mailboxes;
mod modseq;
mod progress;
mod rows;
mod synced;
mod threads;

pub use deliveries::DeliveryRecord;
pub use flags::{Flag, FlagError, Flags, Keyword};
pub use progress::ProgressRecord;
pub use rows::{MailboxRow, MessageRow, NewMessage, Uid};
pub use synced::SyncedChunk;
pub use threads::{ThreadEntry, ThreadNames};

use rows::parsed_column;

/// Why the gateway's database failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Open(#[from] crate::sqlite::OpenError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{0} is already registered with this gateway")]
    AccountExists(String),
}

/// An account the gateway serves.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AccountRecord {
    #[sqlx(try_from = "String")]
    pub address: Address,
    pub keystore_path: String,
    pub username: String,
    pub created_at: i64,
}

/// What happened to trust in an address, for the user to review.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TrustEvent {
    #[sqlx(try_from = "String")]
    pub address: Address,
    pub at: i64,
    /// `first_contact`, `key_changed`, `history_extended`, `truncated`, `replaced`, `invalid_history`.
    pub kind: String,
    pub detail: String,
}

/// Where a queued delivery goes, and so how it is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Sealed and sent to the recipient's SMIMP server.
    Smimp(Address),
    /// Sent as plain email, as submitted, through the legacy relay configured for the
    /// recipient's domain: `to` as given in RCPT TO, `from` the MAIL FROM ('' for `<>`).
    Relay { to: String, from: String },
}

impl Recipient {
    /// The recipient as a mail client writes it (`bob@example.org`).
    pub fn email(&self) -> String {
        match self {
            Recipient::Smimp(address) => address.to_email(),
            Recipient::Relay { to, .. } => to.clone(),
        }
    }

    /// The SMIMP address, for rows delivered over SMIMP.
    pub fn smimp(&self) -> Option<&Address> {
        match self {
            Recipient::Smimp(address) => Some(address),
            Recipient::Relay { .. } => None,
        }
    }

    fn columns(&self) -> (&'static str, &str, Option<&str>) {
        match self {
            Recipient::Smimp(address) => ("smimp", address.as_str(), None),
            Recipient::Relay { to, from } => ("relay", to, Some(from)),
        }
    }

    fn from_columns(route: &str, recipient: String, envelope_from: Option<String>) -> Result<Self, StoreError> {
        match route {
            "smimp" => Ok(Recipient::Smimp(parse(&recipient, "recipient")?)),
            "relay" => Ok(Recipient::Relay { to: recipient, from: envelope_from.unwrap_or_default() }),
            other => Err(StoreError::Corrupt(format!("unknown delivery route {other:?}"))),
        }
    }
}

impl std::fmt::Display for Recipient {
    /// SMIMP addresses in their SMIMP form; relayed ones as given, marked as relayed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipient::Smimp(address) => write!(f, "{address}"),
            Recipient::Relay { to, .. } => write!(f, "{to} (relay)"),
        }
    }
}

/// One queued delivery (one recipient of one accepted message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRow {
    pub id: i64,
    pub account: Address,
    pub recipient: Recipient,
    pub message_type: String,
    pub nonce: String,
    pub sealed_payload: Vec<u8>,
    pub state: String,
    pub attempts: i64,
    pub give_up_at: i64,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
}

/// A new delivery to queue.
#[derive(Debug, Clone)]
pub struct NewOutbound<'a> {
    pub account: &'a Address,
    pub recipient: Recipient,
    pub message_type: &'a str,
    pub nonce: String,
    pub sealed_payload: Vec<u8>,
    pub give_up_at: i64,
}

/// The gateway's database.
#[derive(Debug, Clone)]
pub struct GatewayStore {
    pool: SqlitePool,
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    crate::sqlite::parse_column(text, what).map_err(StoreError::Corrupt)
}

impl GatewayStore {
    /// Opens (creating) the database and applies migrations. Its directory (the
    /// gateway's data directory) is made 0700 and its files 0600, also when they exist.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/gateway");
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::sqlite::private_dir(dir)
                .map_err(|source| crate::sqlite::OpenError::Permissions { path: path.display().to_string(), source })?;
        }
        Ok(Self { pool: crate::sqlite::open(path, 4, &MIGRATIONS).await? })
    }

    /// Registers an account.
    pub async fn add_account(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let result =
            sqlx::query("INSERT INTO accounts (address, keystore_path, username, created_at) VALUES (?, ?, ?, ?)")
                .bind(account.address.as_str())
                .bind(&account.keystore_path)
                .bind(&account.username)
                .bind(account.created_at)
                .execute(&self.pool)
                .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(StoreError::AccountExists(account.address.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every registered account.
    pub async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let sql = "SELECT address, keystore_path, username, created_at FROM accounts ORDER BY address";
        Ok(sqlx::query_as(sql).fetch_all(&self.pool).await?)
    }

    /// The pin of an address, if it was ever contacted.
    pub async fn pin(&self, address: &Address) -> Result<Option<Pin>, StoreError> {
        let row = sqlx::query("SELECT first_key, latest_key, latest_signed_hash, length FROM pins WHERE address = ?")
            .bind(address.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Pin {
                first_key: parsed_column(&r, "first_key")?,
                latest_key: parsed_column(&r, "latest_key")?,
                latest_signed_hash: parsed_column(&r, "latest_signed_hash")?,
                length: r.try_get::<i64, _>("length")?.max(0) as u64,
            })
        })
        .transpose()
    }

    /// Stores the first pin of an address, or moves it forward; a concurrent check that
    /// saw an older history can never move it back.
    pub async fn set_pin(&self, address: &Address, pin: &Pin, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pins (address, first_key, latest_key, latest_signed_hash, length, first_seen, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET latest_key = excluded.latest_key, \
             latest_signed_hash = excluded.latest_signed_hash, length = excluded.length, updated_at = excluded.updated_at \
             WHERE pins.first_key = excluded.first_key AND pins.length <= excluded.length",
        )
        .bind(address.as_str())
        .bind(pin.first_key.to_hex())
        .bind(pin.latest_key.to_hex())
        .bind(pin.latest_signed_hash.to_hex())
        .bind(pin.length as i64)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a trust event.
    pub async fn add_trust_event(&self, event: &TrustEvent) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO trust_events (address, at, kind, detail) VALUES (?, ?, ?, ?)")
            .bind(event.address.as_str())
            .bind(event.at)
            .bind(&event.kind)
            .bind(&event.detail)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The most recent trust events, newest first.
    pub async fn trust_events(&self, limit: u32) -> Result<Vec<TrustEvent>, StoreError> {
        let sql = "SELECT address, at, kind, detail FROM trust_events ORDER BY id DESC LIMIT ?";
        Ok(sqlx::query_as(sql).bind(limit).fetch_all(&self.pool).await?)
    }

    // ---- outbound queue -------------------------------------------------------------

    /// Queues one delivery per recipient in one transaction: all are committed, or none.
    pub async fn enqueue(&self, rows: &[NewOutbound<'_>], now: i64) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            ids.push(insert_outbound(&mut tx, row, now).await?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Deliveries whose next attempt is due, oldest first.
    pub async fn due_outbound(&self, now: i64, limit: u32) -> Result<Vec<OutboundRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, account, recipient, message_type, nonce, sealed_payload, state, attempts, give_up_at, last_error, \
             message_id, route, envelope_from FROM outbound WHERE state = 'queued' AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::outbound_row).collect()
    }

    /// One delivery by id.
    pub async fn outbound(&self, id: i64) -> Result<Option<OutboundRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, account, recipient, message_type, nonce, sealed_payload, state, attempts, give_up_at, last_error, \
             message_id, route, envelope_from FROM outbound WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::outbound_row).transpose()
    }

    /// Marks a delivery sent; its sealed payload is dropped (it is at the recipient now).
    /// `message_id` is the SMIMP message id; relayed mail has none.
    pub async fn outbound_sent(&self, id: i64, message_id: Option<&str>, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbound SET state = 'sent', message_id = ?, done_at = ?, sealed_payload = x'', \
             attempts = attempts + 1, last_error = NULL WHERE id = ?",
        )
        .bind(message_id)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or failed for good when `None`.
    pub async fn outbound_attempt_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (state, next) = match retry_at {
            Some(at) => ("queued", at),
            None => ("failed", now),
        };
        sqlx::query(
            "UPDATE outbound SET state = ?, next_attempt_at = ?, attempts = attempts + 1, last_error = ?, \
             done_at = CASE WHEN ? = 'failed' THEN ? ELSE NULL END, \
             sealed_payload = CASE WHEN ? = 'failed' THEN x'' ELSE sealed_payload END WHERE id = ?",
        )
        .bind(state)
        .bind(next)
        .bind(error)
        .bind(state)
        .bind(now)
        .bind(state)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Fails a delivery for good and queues the delivery report to its sender, in one
    /// transaction: a crash leaves either the delivery to retry or both done.
    pub async fn outbound_failed_with_report(
        &self,
        id: i64,
        error: &str,
        report: &NewOutbound<'_>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "UPDATE outbound SET state = 'failed', next_attempt_at = ?, attempts = attempts + 1, last_error = ?, \
             done_at = ?, sealed_payload = x'' WHERE id = ? AND state = 'queued'",
        )
        .bind(now)
        .bind(error)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_outbound(&mut tx, report, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many deliveries wait.
    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM outbound WHERE state = 'queued'").fetch_one(&self.pool).await?)
    }
}

/// Inserts one queue row, due at once, inside `tx`: its id.
async fn insert_outbound(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    row: &NewOutbound<'_>,
    now: i64,
) -> Result<i64, StoreError> {
    let (route, recipient, envelope_from) = row.recipient.columns();
    let id = sqlx::query_scalar(
        "INSERT INTO outbound (account, recipient, message_type, nonce, sealed_payload, next_attempt_at, \
         give_up_at, created_at, route, envelope_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(row.account.as_str())
    .bind(recipient)
    .bind(row.message_type)
    .bind(&row.nonce)
    .bind(&row.sealed_payload)
    .bind(now)
    .bind(row.give_up_at)
    .bind(now)
    .bind(route)
    .bind(envelope_from)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}
