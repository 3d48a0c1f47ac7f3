//! The gateway's SQLite database (sqlx, migrations/gateway/): the accounts it serves,
//! trust-on-first-use pins and trust events. Runtime queries only, so builds need no
//! database. Secrets never live here (they are in the keystore).

use std::path::Path;

use sqlx::{Row, SqlitePool};

use crate::smimp::address::Address;
use crate::smimp::profile::Pin;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub address: Address,
    pub keystore_path: String,
    pub username: String,
    pub created_at: i64,
}

/// What happened to trust in an address, for the user to review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustEvent {
    pub address: Address,
    pub at: i64,
    /// `first_contact`, `key_changed`, `history_extended`, `truncated`, `replaced`, `invalid_history`.
    pub kind: String,
    pub detail: String,
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
    /// Opens (creating) the database and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/gateway");
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
        let rows = sqlx::query("SELECT address, keystore_path, username, created_at FROM accounts ORDER BY address")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AccountRecord {
                    address: parse(&r.try_get::<String, _>("address")?, "address")?,
                    keystore_path: r.try_get("keystore_path")?,
                    username: r.try_get("username")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The pin of an address, if it was ever contacted.
    pub async fn pin(&self, address: &Address) -> Result<Option<Pin>, StoreError> {
        let row = sqlx::query("SELECT first_key, latest_key, latest_signed_hash, length FROM pins WHERE address = ?")
            .bind(address.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(Pin {
                first_key: parse(&r.try_get::<String, _>("first_key")?, "first key")?,
                latest_key: parse(&r.try_get::<String, _>("latest_key")?, "latest key")?,
                latest_signed_hash: parse(&r.try_get::<String, _>("latest_signed_hash")?, "signed hash")?,
                length: r.try_get::<i64, _>("length")?.max(0) as u64,
            })
        })
        .transpose()
    }

    /// Stores or moves forward the pin of an address.
    pub async fn set_pin(&self, address: &Address, pin: &Pin, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pins (address, first_key, latest_key, latest_signed_hash, length, first_seen, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (address) DO UPDATE SET latest_key = excluded.latest_key, \
             latest_signed_hash = excluded.latest_signed_hash, length = excluded.length, updated_at = excluded.updated_at",
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
        let rows = sqlx::query("SELECT address, at, kind, detail FROM trust_events ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TrustEvent {
                    address: parse(&r.try_get::<String, _>("address")?, "address")?,
                    at: r.try_get("at")?,
                    kind: r.try_get("kind")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
