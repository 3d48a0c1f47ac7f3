//! The reference server's storage: every table and query behind one type, so that
//! no handler knows which database holds it. SQLite (the default) or PostgreSQL
//! (several instances sharing one database), through sqlx with embedded migrations
//! (migrations/server/, migrations/server-postgres/); runtime queries only, so
//! builds need no database. Each query is written once and compiled for both
//! (`with_pool!`); `backend` holds what differs.
//!
//! Sessions, login tokens, PoW nonces, issued keys and key grants live here with
//! their expiry, not in process memory, so every instance on one database sees the
//! same ones. Envelopes are stored sealed, as received.

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

pub mod backend;
pub mod transfer;

use backend::{Backend, Location};

use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxPublicKey, Hash, MasterPublicKey};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{login_token_hash, SealedData};
use crate::smimp::keys::{KeyKind, SignedMessageKey};
use crate::smimp::message::MessageType;
use crate::smimp::profile::ProfileRecord;
use crate::smimp::wire::{Folder, FolderName, ListEntry, ListKind, MessageSummary};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Open(#[from] crate::sqlite::OpenError),
    #[error("PostgreSQL database {url}: {source}")]
    Postgres { url: String, source: sqlx::Error },
    #[error("the database credential {name} cannot be used: {why}")]
    Credential { name: String, why: String },
    #[error("PostgreSQL database {url}: migration failed: {source}")]
    Migrate { url: String, source: sqlx::migrate::MigrateError },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An account as the administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub address: Address,
    pub initialized: bool,
    pub created_at: i64,
    pub password_check: Option<Hash>,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub session_hash: Hash,
    pub address: Address,
    pub local: bool,
    pub public_key: MasterPublicKey,
    pub login_token_hash: Hash,
    pub expires_at: i64,
}

/// A stored message with its mutable fields.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub envelope: String,
    pub read: bool,
    pub extensions: Option<SealedData>,
    pub message_type: MessageType,
}

/// One message of an envelope page, as stored.
#[derive(Debug, Clone)]
pub struct PagedRow {
    pub position: i64,
    pub envelope: String,
    pub read: bool,
    /// The sealed extensions data's JSON, if any.
    pub extensions: Option<String>,
}

/// What happened to a guarded write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Done,
    /// The row it needed is missing.
    NotFound,
    /// A unique row already exists, or a guard did not hold.
    Conflict,
}

/// What became of a message handed to [`ServerStore::deliver`]; nothing is stored
/// unless it is `Stored`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Stored,
    /// Its ephemeral key already carried a message.
    KeyUsed,
    /// Its proof-of-work nonce was used already (or never issued).
    NonceUsed,
    /// It would take the recipient past the quota.
    Full,
}

/// The limits on handing out message keys (docs/protocol.md §9.1), counted over
/// [`ServerStore::issue_message_key`]'s grants of the last hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBudget {
    /// Keys held by one sending identity and not yet spent on a stored message, over
    /// all its sessions and recipients: a sender that sends is never held back, one
    /// that hoards keys is.
    pub sender_unspent: u32,
    /// Ephemeral keys of the recipient to senders it has not whitelisted; `None` for a
    /// whitelisted sender, who is not held to it.
    pub recipient_ephemeral: Option<(u32, u32)>,
}

/// What [`ServerStore::issue_message_key`] handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issued {
    /// A key, and whether it is the non-ephemeral one.
    Key(SignedMessageKey, bool),
    /// The sender is over its limit: nothing was handed out.
    SenderLimited,
    /// The recipient has no key at all.
    NoKey,
}

/// A per-minute limit whose calls [`ServerStore::count_call`] counts for every
/// instance on the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// Logins and initialisations per client address.
    Login,
}

impl RateLimit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
        }
    }
}

/// How long key grants are counted (the longest window of [`KeyBudget`]).
const GRANT_MEMORY_SECS: i64 = 3600;

/// How long an ended or expired session is remembered, so that its id answers
/// `session_expired` rather than `not_authenticated`.
pub const ENDED_SESSION_MEMORY_SECS: i64 = 24 * 60 * 60;

/// The server's database.
#[derive(Debug, Clone)]
pub struct ServerStore {
    backend: Backend,
}

/// Runs `$body` with `$pool` bound to the store's pool and `$sql` to the module of
/// query helpers for its database (`backend::sqlite` or `backend::postgres`): the
/// body is compiled once for each.
macro_rules! with_pool {
    ($store:expr, $pool:ident, $sql:ident, $body:block) => {
        match &$store.backend {
            Backend::Sqlite($pool) => {
                use backend::sqlite as $sql;
                $body
            }
            Backend::Postgres($pool) => {
                use backend::postgres as $sql;
                $body
            }
        }
    };
}

/// Key grants to one sending identity in the last hour not yet spent on a message.
const UNSPENT_GRANTS_OF_SENDER: &str =
    "SELECT COUNT(*) AS unspent FROM key_grants WHERE sender = ? AND spent = FALSE AND issued_at > ?";
/// Ephemeral keys of one recipient granted in the last minute and hour.
const EPHEMERAL_GRANTS_OF_RECIPIENT: &str =
    "SELECT COALESCE(SUM(CASE WHEN issued_at > ? THEN 1 ELSE 0 END), 0) AS minute, COUNT(*) AS hour \
     FROM key_grants WHERE recipient = ? AND ephemeral = TRUE AND issued_at > ?";

/// Key grants counted by `$query` (one of the two above) for `$who`: (minute, hour).
macro_rules! grants {
    ($sql:ident, $tx:expr, $query:expr, $who:expr, $now:expr) => {{
        let row = $sql::query($query)
            .bind($now - 60)
            .bind($who.as_str())
            .bind($now - GRANT_MEMORY_SECS)
            .fetch_one(&mut *$tx)
            .await?;
        (row.int("minute")?, row.int("hour")?)
    }};
}

/// Records that `$key` was handed to session `$session_hash` of `$sender` for `$recipient`.
macro_rules! record_grant {
    ($sql:ident, $tx:expr, $session_hash:expr, $recipient:expr, $sender:expr, $key:expr, $ephemeral:expr, $now:expr) => {{
        $sql::query(
            "INSERT INTO issued_keys (session_hash, recipient, public_key, issued_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind($session_hash.to_hex())
        .bind($recipient.as_str())
        .bind($key.public_key.to_hex())
        .bind($now)
        .execute(&mut *$tx)
        .await?;
        $sql::query(
            "INSERT INTO key_grants (recipient, sender, ephemeral, issued_at, public_key) VALUES (?, ?, ?, ?, ?)",
        )
        .bind($recipient.as_str())
        .bind($sender.as_str())
        .bind($ephemeral)
        .bind($now)
        .bind($key.public_key.to_hex())
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Marks one of the sender's grants of the message's key spent, so it no longer counts
/// against the sender's unspent keys (a non-ephemeral key may have several grants).
macro_rules! spend_grant {
    ($sql:ident, $tx:expr, $message:expr) => {{
        $sql::query(
            "UPDATE key_grants SET spent = TRUE WHERE rowid = (SELECT rowid FROM key_grants WHERE sender = ? \
             AND recipient = ? AND public_key = ? AND spent = FALSE ORDER BY issued_at LIMIT 1)",
        )
        .bind($message.sender.as_str())
        .bind($message.recipient.as_str())
        .bind($message.message_key.to_hex())
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The steps of one delivery inside the transaction `$tx` (see
/// [`ServerStore::deliver`]); returns from the calling function with the outcome when
/// the message cannot be stored, so the transaction is dropped and rolled back.
macro_rules! deliver_in {
    ($sql:ident, $tx:expr, $message:expr) => {{
            // The write comes first, so the transaction holds the write lock from its start.
            let claimed = $sql::query(
                "UPDATE message_keys SET state = 'used' WHERE address = ? AND public_key = ? AND kind = 'ephemeral' \
                 AND state = 'issued'",
            )
            .bind($message.recipient.as_str())
            .bind($message.message_key.to_hex())
            .execute(&mut *$tx)
            .await?;
            if claimed.rows_affected() != 1 {
                let ephemeral = $sql::query(
                    "SELECT 1 FROM message_keys WHERE address = ? AND public_key = ? AND kind = 'ephemeral'",
                )
                .bind($message.recipient.as_str())
                .bind($message.message_key.to_hex())
                .fetch_optional(&mut *$tx)
                .await?;
                if ephemeral.is_some() {
                    return Ok(Delivery::KeyUsed);
                }
            }
            if let Some(nonce) = $message.pow_nonce {
                let used = $sql::query("UPDATE pow_nonces SET used = TRUE WHERE nonce = ? AND used = FALSE")
                    .bind(nonce.to_hex())
                    .execute(&mut *$tx)
                    .await?;
                if used.rows_affected() != 1 {
                    return Ok(Delivery::NonceUsed);
                }
            }
            // The quota is checked again inside the transaction, which holds the write lock:
            // two messages racing for the last free bytes cannot both be stored.
            if let Some(limit) = $message.quota_bytes {
                let used: i64 = $sql::query_scalar(
                    "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM messages WHERE recipient = ?",
                )
                .bind($message.recipient.as_str())
                .fetch_one(&mut *$tx)
                .await?;
                if used.max(0) as u64 + $message.envelope.len() as u64 > limit {
                    return Ok(Delivery::Full);
                }
            }
            spend_grant!($sql, $tx, $message);
            let modseq = next_modseq!($sql, $tx, $message.recipient);
            $sql::query(
                "INSERT INTO messages (message_id, recipient, message_type, folder_name, sender, received_at, read, size, envelope, modseq) \
                 VALUES (?, ?, ?, NULL, ?, ?, FALSE, ?, ?, ?)",
            )
            .bind($message.message_id.to_hex())
            .bind($message.recipient.as_str())
            .bind($message.message_type.as_str())
            .bind($message.sender.as_str())
            .bind($message.received_at)
            .bind($message.envelope.len() as i64)
            .bind($message.envelope)
            .bind(modseq)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Inserts profile record `$seq` of `$address`; the statement's own result.
macro_rules! insert_record {
    ($sql:ident, $tx:expr, $address:expr, $seq:expr, $record:expr, $public_key:expr) => {
        $sql::query("INSERT INTO profile_records (address, seq, data, signed_hash, public_key) VALUES (?, ?, ?, ?, ?)")
            .bind($address.as_str())
            .bind($seq)
            .bind(&$record.data)
            .bind($record.signed_hash.to_hex())
            .bind($public_key.to_hex())
            .execute(&mut *$tx)
            .await
            .map(|_| ())
    };
}

/// Adds a message key of `$address` in `$state` unless it is there already.
macro_rules! insert_key {
    ($sql:ident, $tx:expr, $address:expr, $key:expr, $state:expr, $now:expr) => {
        $sql::query(
            "INSERT INTO message_keys (address, public_key, kind, signature, state, added_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind($address.as_str())
        .bind($key.public_key.to_hex())
        .bind(kind_str($key.kind))
        .bind($key.signature.to_hex())
        .bind($state)
        .bind($now)
        .execute(&mut *$tx)
        .await?
    };
}

/// Sets one column of a message of `$address` (`$query` binds value, modseq, id,
/// address) and gives it the account's next modseq, in one transaction.
macro_rules! update_message {
    ($store:expr, $query:expr, $value:expr, $address:expr, $id:expr) => {
        with_pool!($store, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let modseq = next_modseq!(sql, tx, $address);
            let updated = sql::query($query)
                .bind($value)
                .bind(modseq)
                .bind($id.to_hex())
                .bind($address.as_str())
                .execute(&mut *tx)
                .await?;
            if updated.rows_affected() != 1 {
                return Ok(Write::NotFound);
            }
            tx.commit().await?;
            Ok(Write::Done)
        })
    };
}

/// The account's next modseq (docs/protocol.md §8.29), taken inside write transaction `$tx`.
macro_rules! next_modseq {
    ($sql:ident, $tx:expr, $address:expr) => {{
        let modseq: i64 =
            $sql::query_scalar("UPDATE accounts SET modseq = modseq + 1 WHERE address = ? RETURNING modseq")
                .bind($address.as_str())
                .fetch_one(&mut *$tx)
                .await?;
        modseq
    }};
}

/// Leaves a tombstone of message `$id` in the folder it left (`$place`: its type and
/// folder as stored), with the modseq of its going.
macro_rules! tombstone {
    ($sql:ident, $tx:expr, $address:expr, $place:expr, $id:expr, $modseq:expr, $now:expr) => {{
        $sql::query(
            "INSERT INTO vanished_messages (recipient, message_type, folder_name, message_id, modseq, vanished_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind($address.as_str())
        .bind(&$place.0)
        .bind(&$place.1)
        .bind($id.to_hex())
        .bind($modseq)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// The type and folder message `$id` of `$address` is stored in; `None` when missing.
macro_rules! place_of {
    ($sql:ident, $tx:expr, $address:expr, $id:expr) => {{
        let row = $sql::query("SELECT message_type, folder_name FROM messages WHERE message_id = ? AND recipient = ?")
            .bind($id.to_hex())
            .bind($address.as_str())
            .fetch_optional(&mut *$tx)
            .await?;
        match row {
            Some(r) => Some((r.try_get::<String, _>("message_type")?, r.try_get::<Option<String>, _>("folder_name")?)),
            None => None,
        }
    }};
}

mod changes;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

fn parse<T: FromStr>(text: &str, what: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    crate::sqlite::parse_column(text, what).map_err(StoreError::Corrupt)
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn kind_str(kind: KeyKind) -> &'static str {
    kind.as_str()
}

/// Typed columns of a row of either database.
trait Columns {
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String, sqlx::Error> {
                self.try_get(column)
            }
            fn maybe_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(column)
            }
            fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
                self.try_get(column)
            }
            fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
                self.try_get(column)
            }
        }
    };
}
columns!(SqliteRow);
columns!(PgRow);

fn key_from_row(row: &impl Columns) -> Result<SignedMessageKey, StoreError> {
    let kind = match row.text("kind")?.as_str() {
        "ephemeral" => KeyKind::Ephemeral,
        "nonephemeral" => KeyKind::Nonephemeral,
        other => return Err(corrupt(format!("key kind {other:?}"))),
    };
    Ok(SignedMessageKey {
        public_key: parse(&row.text("public_key")?, "message key")?,
        kind,
        signature: parse(&row.text("signature")?, "key signature")?,
    })
}

impl ServerStore {
    /// Opens the store `database` names (`[server] database`): a PostgreSQL
    /// connection string, or a SQLite file (created if needed); applies migrations.
    pub async fn open(database: &Path) -> Result<Self, StoreError> {
        Self::open_at(&Location::of(database)).await
    }

    /// Opens the store at `location` and applies its migrations.
    pub async fn open_at(location: &Location) -> Result<Self, StoreError> {
        Ok(Self { backend: Backend::open(location).await? })
    }

    /// Which database holds the store.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    // ---- accounts -------------------------------------------------------------------

    /// Creates an uninitialised account; `Conflict` if it exists.
    pub async fn add_account(&self, address: &Address, password_check: &Hash, now: i64) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let result = sql::query(
                "INSERT INTO accounts (address, password_check, initialized, created_at) VALUES (?, ?, FALSE, ?)",
            )
            .bind(address.as_str())
            .bind(password_check.to_hex())
            .bind(now)
            .execute(pool)
            .await;
            match result {
                Ok(_) => Ok(Write::Done),
                Err(e) if is_unique_violation(&e) => Ok(Write::Conflict),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// One account.
    pub async fn account(&self, address: &Address) -> Result<Option<AccountRow>, StoreError> {
        with_pool!(self, pool, sql, {
            let row =
                sql::query("SELECT address, initialized, created_at, password_check FROM accounts WHERE address = ?")
                    .bind(address.as_str())
                    .fetch_optional(pool)
                    .await?;
            row.map(|r| account_from_row(&r)).transpose()
        })
    }

    /// Every account, by address.
    pub async fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows =
                sql::query("SELECT address, initialized, created_at, password_check FROM accounts ORDER BY address")
                    .fetch_all(pool)
                    .await?;
            rows.iter().map(account_from_row).collect()
        })
    }

    /// Deletes an account and everything stored for it; false if there was none.
    pub async fn remove_account(&self, address: &Address) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            for sql in [
                "DELETE FROM sessions WHERE address = ? AND local = TRUE",
                "DELETE FROM login_tokens WHERE address = ?",
                "DELETE FROM issued_keys WHERE recipient = ?",
                "DELETE FROM pow_nonces WHERE recipient = ?",
            ] {
                sql::query(sql).bind(address.as_str()).execute(&mut *tx).await?;
            }
            let removed =
                sql::query("DELETE FROM accounts WHERE address = ?").bind(address.as_str()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(removed.rows_affected() == 1)
        })
    }

    /// Initialises an account once: the first record, the non-ephemeral key and the
    /// first ephemeral keys, atomically. `Conflict` when already initialised.
    pub async fn initialize(
        &self,
        address: &Address,
        record: &ProfileRecord,
        public_key: &MasterPublicKey,
        nonephemeral: &SignedMessageKey,
        ephemeral: &[SignedMessageKey],
        now: i64,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let claimed = sql::query(
                "UPDATE accounts SET initialized = TRUE, password_check = NULL WHERE address = ? AND initialized = FALSE",
            )
            .bind(address.as_str())
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() != 1 {
                return Ok(Write::Conflict);
            }
            insert_record!(sql, tx, address, 0_i64, record, public_key)?;
            insert_key!(sql, tx, address, nonephemeral, "current", now);
            for key in ephemeral {
                insert_key!(sql, tx, address, key, "available", now);
            }
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    // ---- profile history ------------------------------------------------------------

    /// The history, oldest first (empty for an unknown or uninitialised account).
    pub async fn history(&self, address: &Address) -> Result<Vec<ProfileRecord>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query("SELECT data, signed_hash FROM profile_records WHERE address = ? ORDER BY seq")
                .bind(address.as_str())
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ProfileRecord {
                        data: r.try_get("data")?,
                        signed_hash: parse(&r.try_get::<String, _>("signed_hash")?, "signed hash")?,
                    })
                })
                .collect()
        })
    }

    /// The current master key of a local, initialised account.
    pub async fn current_key(&self, address: &Address) -> Result<Option<MasterPublicKey>, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query("SELECT public_key FROM profile_records WHERE address = ? ORDER BY seq DESC LIMIT 1")
                .bind(address.as_str())
                .fetch_optional(pool)
                .await?;
            row.map(|r| parse(&r.try_get::<String, _>("public_key")?, "public key")).transpose()
        })
    }

    /// Appends a record at position `seq`; `Conflict` if another write got there first.
    pub async fn append_record(
        &self,
        address: &Address,
        seq: i64,
        record: &ProfileRecord,
        public_key: &MasterPublicKey,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            match insert_record!(sql, tx, address, seq, record, public_key) {
                Ok(()) => {}
                Err(e) if is_unique_violation(&e) => return Ok(Write::Conflict),
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    // ---- login and sessions ---------------------------------------------------------

    /// Records a login token for `address`, by its hash only: a copy of the database
    /// holds no token that could be presented.
    pub async fn add_login_token(&self, token: &Id32, address: &Address, expires_at: i64) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            sql::query("INSERT INTO login_tokens (token_hash, address, expires_at) VALUES (?, ?, ?)")
                .bind(login_token_hash(token).to_hex())
                .bind(address.as_str())
                .bind(expires_at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Consumes a login token, whoever presents it: true once, if it was issued for
    /// `address` and is unexpired. A token presented for another address, or after
    /// its expiry, is gone all the same (docs/protocol.md §9).
    pub async fn take_login_token(&self, token: &Id32, address: &Address, now: i64) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let taken = sql::query("DELETE FROM login_tokens WHERE token_hash = ? RETURNING address, expires_at")
                .bind(login_token_hash(token).to_hex())
                .fetch_optional(pool)
                .await?;
            let Some(row) = taken else { return Ok(false) };
            Ok(row.try_get::<String, _>("address")? == address.as_str() && row.try_get::<i64, _>("expires_at")? > now)
        })
    }

    /// Stores a new session and ends the oldest live sessions of its identity past
    /// `max_live` (with their nonces and key grants), so no identity holds more.
    pub async fn add_session(&self, session: &SessionRow, now: i64, max_live: u32) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query(
                "INSERT INTO sessions (session_hash, address, local, public_key, login_token_hash, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(session.session_hash.to_hex())
            .bind(session.address.as_str())
            .bind(session.local)
            .bind(session.public_key.to_hex())
            .bind(session.login_token_hash.to_hex())
            .bind(session.expires_at)
            .execute(&mut *tx)
            .await?;
            let surplus: Vec<String> = sql::query_scalar(
                "SELECT session_hash FROM sessions WHERE address = ? AND expires_at > ? \
                 ORDER BY expires_at DESC, rowid DESC LIMIT -1 OFFSET ?",
            )
            .bind(session.address.as_str())
            .bind(now)
            .bind(i64::from(max_live.max(1)))
            .fetch_all(&mut *tx)
            .await?;
            for hash in surplus {
                for sql in
                    ["DELETE FROM pow_nonces WHERE session_hash = ?", "DELETE FROM issued_keys WHERE session_hash = ?"]
                {
                    sql::query(sql).bind(&hash).execute(&mut *tx).await?;
                }
                sql::query("UPDATE sessions SET expires_at = ? WHERE session_hash = ?")
                    .bind(now)
                    .bind(&hash)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// How many live sessions `address` holds.
    pub async fn live_sessions(&self, address: &Address, now: i64) -> Result<u64, StoreError> {
        with_pool!(self, pool, sql, {
            let count: i64 = sql::query_scalar("SELECT COUNT(*) FROM sessions WHERE address = ? AND expires_at > ?")
                .bind(address.as_str())
                .bind(now)
                .fetch_one(pool)
                .await?;
            Ok(count.max(0) as u64)
        })
    }

    /// A session by the hash of its id, if it exists and has not expired.
    pub async fn session(&self, session_hash: &Hash, now: i64) -> Result<Option<SessionRow>, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query(
                "SELECT address, local, public_key, login_token_hash, expires_at FROM sessions \
                 WHERE session_hash = ? AND expires_at > ?",
            )
            .bind(session_hash.to_hex())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                Ok(SessionRow {
                    session_hash: *session_hash,
                    address: parse(&r.try_get::<String, _>("address")?, "address")?,
                    local: r.try_get("local")?,
                    public_key: parse(&r.try_get::<String, _>("public_key")?, "public key")?,
                    login_token_hash: parse(&r.try_get::<String, _>("login_token_hash")?, "login token hash")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .transpose()
        })
    }

    /// Whether a session with this hash was ever created and is still remembered,
    /// live or not: an ended id answers `session_expired`, an unknown one
    /// `not_authenticated` (docs/protocol.md §9).
    pub async fn session_known(&self, session_hash: &Hash) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query("SELECT 1 FROM sessions WHERE session_hash = ?")
                .bind(session_hash.to_hex())
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
    }

    /// Ends a session at `now` and invalidates its unused PoW nonces and its record of
    /// issued keys (spec "Get Proof of Work Parameters"). The row stays, expired, so
    /// its id is still recognised as ended until the purge forgets it.
    pub async fn end_session(&self, session_hash: &Hash, now: i64) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            for sql in
                ["DELETE FROM pow_nonces WHERE session_hash = ?", "DELETE FROM issued_keys WHERE session_hash = ?"]
            {
                sql::query(sql).bind(session_hash.to_hex()).execute(&mut *tx).await?;
            }
            let ended = sql::query("UPDATE sessions SET expires_at = ? WHERE session_hash = ? AND expires_at > ?")
                .bind(now)
                .bind(session_hash.to_hex())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ended.rows_affected() == 1)
        })
    }

    /// Deletes expired login tokens, the nonces and key grants of ended sessions,
    /// sessions that ended more than [`ENDED_SESSION_MEMORY_SECS`] ago, and tombstones
    /// older than [`changes::TOMBSTONE_MEMORY_SECS`].
    pub async fn purge_expired(&self, now: i64) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query("DELETE FROM login_tokens WHERE expires_at <= ?").bind(now).execute(&mut *tx).await?;
            sql::query("DELETE FROM rate_events WHERE at <= ?").bind(now - 60).execute(&mut *tx).await?;
            sql::query("DELETE FROM key_grants WHERE issued_at <= ?")
                .bind(now - GRANT_MEMORY_SECS)
                .execute(&mut *tx)
                .await?;
            sql::query("DELETE FROM sessions WHERE expires_at <= ?")
                .bind(now - ENDED_SESSION_MEMORY_SECS)
                .execute(&mut *tx)
                .await?;
            for sql in [
                "DELETE FROM pow_nonces WHERE session_hash NOT IN (SELECT session_hash FROM sessions WHERE expires_at > ?)",
                "DELETE FROM issued_keys WHERE session_hash NOT IN (SELECT session_hash FROM sessions WHERE expires_at > ?)",
            ] {
                sql::query(sql).bind(now).execute(&mut *tx).await?;
            }
            // Tombstones past their time go; the account's floor rises to the newest of them.
            sql::query(
                "UPDATE accounts SET vanished_floor = (SELECT MAX(modseq) FROM vanished_messages v \
                 WHERE v.recipient = accounts.address AND v.vanished_at <= ?) WHERE EXISTS (SELECT 1 \
                 FROM vanished_messages v WHERE v.recipient = accounts.address AND v.vanished_at <= ?)",
            )
            .bind(now - changes::TOMBSTONE_MEMORY_SECS)
            .bind(now - changes::TOMBSTONE_MEMORY_SECS)
            .execute(&mut *tx)
            .await?;
            sql::query("DELETE FROM vanished_messages WHERE vanished_at <= ?")
                .bind(now - changes::TOMBSTONE_MEMORY_SECS)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Counts one call under `limit` for `key` unless `per_minute` were counted in
    /// the last minute already: true when counted (the call may proceed). Counting and
    /// checking are one transaction, so racing instances cannot pass the limit.
    pub async fn count_call(&self, limit: RateLimit, key: &str, per_minute: u32, now: i64) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let counted: i64 =
                sql::query_scalar("SELECT COUNT(*) FROM rate_events WHERE kind = ? AND rate_key = ? AND at > ?")
                    .bind(limit.as_str())
                    .bind(key)
                    .bind(now - 60)
                    .fetch_one(&mut *tx)
                    .await?;
            if counted >= i64::from(per_minute) {
                return Ok(false);
            }
            sql::query("INSERT INTO rate_events (kind, rate_key, at) VALUES (?, ?, ?)")
                .bind(limit.as_str())
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    // ---- message keys ---------------------------------------------------------------

    /// The current non-ephemeral key.
    pub async fn nonephemeral_key(&self, address: &Address) -> Result<Option<SignedMessageKey>, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query(
                "SELECT public_key, kind, signature FROM message_keys WHERE address = ? AND state = 'current' LIMIT 1",
            )
            .bind(address.as_str())
            .fetch_optional(pool)
            .await?;
            row.map(|r| key_from_row(&r)).transpose()
        })
    }

    /// Replaces the non-ephemeral key (the old one is retired, never deleted, so a
    /// message already encrypted to it can still be accepted).
    pub async fn set_nonephemeral_key(
        &self,
        address: &Address,
        key: &SignedMessageKey,
        now: i64,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query("UPDATE message_keys SET state = 'retired' WHERE address = ? AND state = 'current'")
                .bind(address.as_str())
                .execute(&mut *tx)
                .await?;
            let inserted = sql::query(
                "INSERT INTO message_keys (address, public_key, kind, signature, state, added_at) VALUES (?, ?, ?, ?, 'current', ?) \
                 ON CONFLICT (address, public_key) DO NOTHING",
            )
            .bind(address.as_str())
            .bind(key.public_key.to_hex())
            .bind(kind_str(key.kind))
            .bind(key.signature.to_hex())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if inserted.rows_affected() != 1 {
                return Ok(Write::Conflict);
            }
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    /// The ephemeral keys not yet issued.
    pub async fn available_ephemeral_keys(&self, address: &Address) -> Result<Vec<SignedMessageKey>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query(
                "SELECT public_key, kind, signature FROM message_keys WHERE address = ? AND state = 'available' ORDER BY added_at, public_key",
            )
            .bind(address.as_str())
            .fetch_all(pool)
            .await?;
            rows.iter().map(key_from_row).collect()
        })
    }

    /// Replaces every unissued ephemeral key with `keys`. A key that was ever issued
    /// or used as the non-ephemeral key is never made available again.
    pub async fn replace_ephemeral_keys(
        &self,
        address: &Address,
        keys: &[SignedMessageKey],
        now: i64,
    ) -> Result<usize, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query("UPDATE message_keys SET state = 'retired' WHERE address = ? AND state = 'available'")
                .bind(address.as_str())
                .execute(&mut *tx)
                .await?;
            let mut count = 0;
            for key in keys {
                let result = sql::query(
                    "INSERT INTO message_keys (address, public_key, kind, signature, state, added_at) \
                     VALUES (?, ?, 'ephemeral', ?, 'available', ?) \
                     ON CONFLICT (address, public_key) DO UPDATE SET state = 'available', \
                     signature = excluded.signature, added_at = excluded.added_at \
                     WHERE message_keys.state = 'retired' AND message_keys.kind = 'ephemeral'",
                )
                .bind(address.as_str())
                .bind(key.public_key.to_hex())
                .bind(key.signature.to_hex())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                count += result.rows_affected() as usize;
            }
            tx.commit().await?;
            Ok(count)
        })
    }

    /// Hands one key of `recipient` to a session of `sender`, within `budget`
    /// (docs/protocol.md §9.1): nothing when the sender is over its limit; else an
    /// unissued ephemeral key (marked issued at once, so no two senders get it) while
    /// the recipient's ephemeral budget allows, else the non-ephemeral key. Counting and
    /// handing out are one transaction, so racing requests cannot pass a limit.
    pub async fn issue_message_key(
        &self,
        recipient: &Address,
        sender: &Address,
        session_hash: &Hash,
        budget: &KeyBudget,
        now: i64,
    ) -> Result<Issued, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let unspent = sql::query(UNSPENT_GRANTS_OF_SENDER)
                .bind(sender.as_str())
                .bind(now - GRANT_MEMORY_SECS)
                .fetch_one(&mut *tx)
                .await?
                .int("unspent")?;
            if unspent >= i64::from(budget.sender_unspent) {
                return Ok(Issued::SenderLimited);
            }
            let ephemeral_allowed = match budget.recipient_ephemeral {
                None => true,
                Some((per_minute, per_hour)) => {
                    let (minute, hour) = grants!(sql, tx, EPHEMERAL_GRANTS_OF_RECIPIENT, recipient, now);
                    minute < i64::from(per_minute) && hour < i64::from(per_hour)
                }
            };
            let ephemeral = if ephemeral_allowed {
                sql::query(
                    "UPDATE message_keys SET state = 'issued' WHERE rowid = (SELECT rowid FROM message_keys \
                     WHERE address = ? AND state = 'available' ORDER BY added_at, public_key LIMIT 1) \
                     RETURNING public_key, kind, signature",
                )
                .bind(recipient.as_str())
                .fetch_optional(&mut *tx)
                .await?
            } else {
                None
            };
            let (key, nonephemeral) = match ephemeral {
                Some(row) => (key_from_row(&row)?, false),
                None => {
                    let current = sql::query(
                        "SELECT public_key, kind, signature FROM message_keys WHERE address = ? AND state = 'current' LIMIT 1",
                    )
                    .bind(recipient.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    match current {
                        Some(row) => (key_from_row(&row)?, true),
                        None => return Ok(Issued::NoKey),
                    }
                }
            };
            record_grant!(sql, tx, session_hash, recipient, sender, key, !nonephemeral, now);
            tx.commit().await?;
            Ok(Issued::Key(key, nonephemeral))
        })
    }

    /// Whether `public_key` was issued to this session for `recipient` and, if it is
    /// an ephemeral key, has not carried a message yet (state `used`).
    pub async fn key_was_issued(
        &self,
        session_hash: &Hash,
        recipient: &Address,
        public_key: &str,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query(
                "SELECT 1 FROM issued_keys i WHERE i.session_hash = ? AND i.recipient = ? AND i.public_key = ? \
                 AND NOT EXISTS (SELECT 1 FROM message_keys k WHERE k.address = i.recipient \
                 AND k.public_key = i.public_key AND k.kind = 'ephemeral' AND k.state = 'used')",
            )
            .bind(session_hash.to_hex())
            .bind(recipient.as_str())
            .bind(public_key)
            .fetch_optional(pool)
            .await?;
            Ok(row.is_some())
        })
    }

    // ---- proof of work --------------------------------------------------------------

    /// Records a PoW nonce issued to a session for one recipient and message
    /// type, and drops the identity's oldest unused nonces past `max_unused`, so no
    /// identity piles up nonce rows.
    pub async fn add_pow_nonce(
        &self,
        nonce: &Id32,
        session: &SessionRow,
        recipient: &Address,
        message_type: &MessageType,
        zero_bits: u32,
        max_unused: u32,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query(
                "INSERT INTO pow_nonces (nonce, session_hash, recipient, message_type, zero_bits) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(nonce.to_hex())
            .bind(session.session_hash.to_hex())
            .bind(recipient.as_str())
            .bind(message_type.as_str())
            .bind(i64::from(zero_bits))
            .execute(&mut *tx)
            .await?;
            sql::query(
                "DELETE FROM pow_nonces WHERE rowid IN (SELECT p.rowid FROM pow_nonces p \
                 JOIN sessions s ON s.session_hash = p.session_hash WHERE s.address = ? AND p.used = FALSE \
                 ORDER BY p.rowid DESC LIMIT -1 OFFSET ?)",
            )
            .bind(session.address.as_str())
            .bind(i64::from(max_unused.max(1)))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// The difficulty of an unused nonce issued to this session for this recipient
    /// and type; `None` when it is unknown, foreign, for another recipient or used.
    pub async fn pow_nonce(
        &self,
        nonce: &Id32,
        session_hash: &Hash,
        recipient: &Address,
        message_type: &MessageType,
    ) -> Result<Option<u32>, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query(
                "SELECT zero_bits FROM pow_nonces WHERE nonce = ? AND session_hash = ? AND recipient = ? \
                 AND message_type = ? AND used = FALSE",
            )
            .bind(nonce.to_hex())
            .bind(session_hash.to_hex())
            .bind(recipient.as_str())
            .bind(message_type.as_str())
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                let bits = r.int("zero_bits")?;
                u32::try_from(bits).map_err(|_| corrupt(format!("zero bits {bits}")))
            })
            .transpose()
        })
    }

    // ---- messages -------------------------------------------------------------------

    /// Stores a message, marks its PoW nonce used and an ephemeral message key used
    /// (state `used`: it carries one message only), atomically; `NotFound` when the
    /// ephemeral key was used meanwhile, `Conflict` when the nonce was (a replay
    /// racing the first send).
    pub async fn deliver(&self, message: &NewMessage<'_>) -> Result<Delivery, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            deliver_in!(sql, tx, message);
            tx.commit().await?;
            Ok(Delivery::Stored)
        })
    }

    /// Stores many messages in one transaction, each through every step of
    /// [`ServerStore::deliver`]: an import of a whole mailbox (the benchmark's seeding
    /// tool) pays one commit, not one per message. Stores none unless it stores all:
    /// the first outcome other than `Stored` is returned.
    pub async fn deliver_all(&self, messages: &[NewMessage<'_>]) -> Result<Delivery, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            for message in messages {
                deliver_in!(sql, tx, message);
            }
            tx.commit().await?;
            Ok(Delivery::Stored)
        })
    }

    /// Total size of an account's stored envelopes.
    pub async fn quota_used(&self, address: &Address) -> Result<u64, StoreError> {
        with_pool!(self, pool, sql, {
            let row =
                sql::query("SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS used FROM messages WHERE recipient = ?")
                    .bind(address.as_str())
                    .fetch_one(pool)
                    .await?;
            Ok(row.try_get::<i64, _>("used")?.max(0) as u64)
        })
    }

    /// Summaries of the messages in one folder (`None` = the type's root folder), oldest first.
    pub async fn list_messages(
        &self,
        address: &Address,
        message_type: &MessageType,
        folder: Option<&FolderName>,
    ) -> Result<Vec<MessageSummary>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query(
                "SELECT message_id, received_at, read, sender, size FROM messages WHERE recipient = ? AND message_type = ? \
                 AND folder_name IS NOT DISTINCT FROM ? ORDER BY received_at, rowid",
            )
            .bind(address.as_str())
            .bind(message_type.as_str())
            .bind(folder.map(FolderName::as_str))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let received_at: i64 = r.try_get("received_at")?;
                    Ok(MessageSummary {
                        message_id: parse(&r.try_get::<String, _>("message_id")?, "message id")?,
                        received_at: crate::smimp::timestamp::Timestamp::from_unix(received_at)
                            .ok_or_else(|| corrupt(format!("time {received_at}")))?,
                        read: r.try_get("read")?,
                        sender: parse(&r.try_get::<String, _>("sender")?, "sender")?,
                        size: r.try_get::<i64, _>("size")?.max(0) as u64,
                    })
                })
                .collect()
        })
    }

    /// Up to `max_count` messages of one folder stored after `after`, in storage order,
    /// stopping before `max_bytes` of envelopes (but never returning none when one is
    /// there). Their envelope and extensions are as stored: JSON the server wrote.
    /// With them, whether the page was cut short (more may follow).
    pub async fn envelope_page(
        &self,
        address: &Address,
        message_type: &MessageType,
        folder: Option<&FolderName>,
        after: i64,
        (max_count, max_bytes): (u32, u64),
    ) -> Result<(Vec<PagedRow>, bool), StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query(
                "SELECT rowid, envelope, read, extensions, size FROM messages WHERE recipient = ? \
                 AND message_type = ? AND folder_name IS NOT DISTINCT FROM ? AND rowid > ? ORDER BY rowid LIMIT ?",
            )
            .bind(address.as_str())
            .bind(message_type.as_str())
            .bind(folder.map(FolderName::as_str))
            .bind(after)
            .bind(i64::from(max_count))
            .fetch_all(pool)
            .await?;
            let mut page = Vec::with_capacity(rows.len());
            let mut bytes = 0u64;
            for r in &rows {
                bytes += r.try_get::<i64, _>("size")?.max(0) as u64;
                if bytes > max_bytes && !page.is_empty() {
                    break;
                }
                page.push(PagedRow {
                    position: r.try_get("rowid")?,
                    envelope: r.try_get("envelope")?,
                    read: r.try_get("read")?,
                    extensions: r.try_get("extensions")?,
                });
            }
            let cut = page.len() < rows.len() || rows.len() == max_count as usize;
            Ok((page, cut))
        })
    }

    /// One message of `address`, optionally marking it read in the same step.
    pub async fn message(
        &self,
        address: &Address,
        id: &Id32,
        mark_read: bool,
    ) -> Result<Option<MessageRow>, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            if mark_read {
                let unread =
                    sql::query("SELECT 1 FROM messages WHERE message_id = ? AND recipient = ? AND read = FALSE")
                        .bind(id.to_hex())
                        .bind(address.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if unread.is_some() {
                    let modseq = next_modseq!(sql, tx, address);
                    sql::query("UPDATE messages SET read = TRUE, modseq = ? WHERE message_id = ? AND recipient = ?")
                        .bind(modseq)
                        .bind(id.to_hex())
                        .bind(address.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let row = sql::query(
                "SELECT envelope, read, extensions, message_type FROM messages WHERE message_id = ? AND recipient = ?",
            )
            .bind(id.to_hex())
            .bind(address.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row.map(|r| {
                let extensions: Option<String> = r.try_get("extensions")?;
                Ok(MessageRow {
                    envelope: r.try_get("envelope")?,
                    read: r.try_get("read")?,
                    extensions: extensions
                        .map(|text| serde_json::from_str(&text).map_err(|e| corrupt(format!("extensions: {e}"))))
                        .transpose()?,
                    message_type: parse(&r.try_get::<String, _>("message_type")?, "message type")?,
                })
            })
            .transpose()
        })
    }

    /// Sets the read flag; `NotFound` for a message the account does not have.
    pub async fn set_read(&self, address: &Address, id: &Id32, read: bool) -> Result<Write, StoreError> {
        update_message!(
            self,
            "UPDATE messages SET read = ?, modseq = ? WHERE message_id = ? AND recipient = ?",
            read,
            address,
            id
        )
    }

    /// Replaces the envelope-level extensions data.
    pub async fn set_extensions(
        &self,
        address: &Address,
        id: &Id32,
        data: Option<&SealedData>,
    ) -> Result<Write, StoreError> {
        let text = data.map(|d| serde_json::to_string(d).expect("sealed data serialises"));
        update_message!(
            self,
            "UPDATE messages SET extensions = ?, modseq = ? WHERE message_id = ? AND recipient = ?",
            text,
            address,
            id
        )
    }

    /// Moves a message to a folder of its own type (`None` = root); `Conflict` when the
    /// folder is missing. The message leaves a tombstone in the folder it left.
    pub async fn move_message(
        &self,
        address: &Address,
        id: &Id32,
        folder: Option<&FolderName>,
        now: i64,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let Some(place) = place_of!(sql, tx, address, id) else { return Ok(Write::NotFound) };
            if let Some(folder) = folder {
                let exists =
                    sql::query("SELECT 1 FROM folders WHERE address = ? AND message_type = ? AND folder_name = ?")
                        .bind(address.as_str())
                        .bind(&place.0)
                        .bind(folder.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Ok(Write::Conflict);
                }
            }
            if place.1.as_deref() == folder.map(FolderName::as_str) {
                return Ok(Write::Done);
            }
            let modseq = next_modseq!(sql, tx, address);
            tombstone!(sql, tx, address, place, id, modseq, now);
            sql::query(
                "DELETE FROM vanished_messages WHERE recipient = ? AND message_id = ? AND folder_name IS NOT DISTINCT FROM ?",
            )
            .bind(address.as_str())
            .bind(id.to_hex())
            .bind(folder.map(FolderName::as_str))
            .execute(&mut *tx)
            .await?;
            sql::query("UPDATE messages SET folder_name = ?, modseq = ? WHERE message_id = ? AND recipient = ?")
                .bind(folder.map(FolderName::as_str))
                .bind(modseq)
                .bind(id.to_hex())
                .bind(address.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    /// Deletes a message for good (spec "No Trash on Deletion"), leaving a tombstone.
    pub async fn delete_message(&self, address: &Address, id: &Id32, now: i64) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let Some(place) = place_of!(sql, tx, address, id) else { return Ok(Write::NotFound) };
            let modseq = next_modseq!(sql, tx, address);
            tombstone!(sql, tx, address, place, id, modseq, now);
            sql::query("DELETE FROM messages WHERE message_id = ? AND recipient = ?")
                .bind(id.to_hex())
                .bind(address.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    // ---- folders --------------------------------------------------------------------

    /// The account's folders, of one type or all, by type then name.
    pub async fn folders(
        &self,
        address: &Address,
        message_type: Option<&MessageType>,
    ) -> Result<Vec<Folder>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query(
                "SELECT message_type, folder_name, display_name, parent FROM folders WHERE address = ? \
                 AND (? IS NULL OR message_type = ?) ORDER BY message_type, folder_name",
            )
            .bind(address.as_str())
            .bind(message_type.map(MessageType::as_str))
            .bind(message_type.map(MessageType::as_str))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let parent: Option<String> = r.try_get("parent")?;
                    Ok(Folder {
                        display_name: r.try_get("display_name")?,
                        folder_name: parse(&r.try_get::<String, _>("folder_name")?, "folder name")?,
                        parent: parent.map(|p| parse(&p, "parent folder")).transpose()?,
                        message_type: parse(&r.try_get::<String, _>("message_type")?, "message type")?,
                    })
                })
                .collect()
        })
    }

    /// Whether a folder exists.
    pub async fn folder_exists(
        &self,
        address: &Address,
        message_type: &MessageType,
        name: &FolderName,
    ) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query("SELECT 1 FROM folders WHERE address = ? AND message_type = ? AND folder_name = ?")
                .bind(address.as_str())
                .bind(message_type.as_str())
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
    }

    /// Creates a folder; `Conflict` if the name is taken for the type.
    pub async fn create_folder(&self, address: &Address, folder: &Folder) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let result = sql::query(
                "INSERT INTO folders (address, message_type, folder_name, display_name, parent) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(address.as_str())
            .bind(folder.message_type.as_str())
            .bind(folder.folder_name.as_str())
            .bind(&folder.display_name)
            .bind(folder.parent.as_ref().map(FolderName::as_str))
            .execute(pool)
            .await;
            match result {
                Ok(_) => Ok(Write::Done),
                Err(e) if is_unique_violation(&e) => Ok(Write::Conflict),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Renames or moves `old` to the state `folder`, carrying its messages and children along.
    pub async fn update_folder(
        &self,
        address: &Address,
        old: &FolderName,
        folder: &Folder,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let kind = folder.message_type.as_str();
            let updated = sql::query(
                "UPDATE folders SET folder_name = ?, display_name = ?, parent = ? WHERE address = ? AND message_type = ? AND folder_name = ?",
            )
            .bind(folder.folder_name.as_str())
            .bind(&folder.display_name)
            .bind(folder.parent.as_ref().map(FolderName::as_str))
            .bind(address.as_str())
            .bind(kind)
            .bind(old.as_str())
            .execute(&mut *tx)
            .await;
            match updated {
                Ok(r) if r.rows_affected() == 0 => return Ok(Write::NotFound),
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Ok(Write::Conflict),
                Err(e) => return Err(e.into()),
            }
            for sql in [
                "UPDATE messages SET folder_name = ? WHERE recipient = ? AND message_type = ? AND folder_name = ?",
                "UPDATE vanished_messages SET folder_name = ? WHERE recipient = ? AND message_type = ? AND folder_name = ?",
                "UPDATE folders SET parent = ? WHERE address = ? AND message_type = ? AND parent = ?",
            ] {
                sql::query(sql)
                    .bind(folder.folder_name.as_str())
                    .bind(address.as_str())
                    .bind(kind)
                    .bind(old.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    /// Deletes an empty folder without children; `Conflict` if it is not empty.
    pub async fn delete_folder(
        &self,
        address: &Address,
        message_type: &MessageType,
        name: &FolderName,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            let busy = sql::query(
                "SELECT 1 FROM messages WHERE recipient = ?1 AND message_type = ?2 AND folder_name = ?3 \
                 UNION ALL SELECT 1 FROM folders WHERE address = ?1 AND message_type = ?2 AND parent = ?3 LIMIT 1",
            )
            .bind(address.as_str())
            .bind(message_type.as_str())
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if busy.is_some() {
                return Ok(Write::Conflict);
            }
            let deleted = sql::query("DELETE FROM folders WHERE address = ? AND message_type = ? AND folder_name = ?")
                .bind(address.as_str())
                .bind(message_type.as_str())
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(if deleted.rows_affected() == 1 { Write::Done } else { Write::NotFound })
        })
    }

    // ---- whitelist / blacklist ------------------------------------------------------

    /// Adds an entry; `Conflict` if the hash is already listed.
    pub async fn add_list_entry(
        &self,
        address: &Address,
        list: ListKind,
        entry: &ListEntry,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let result = sql::query("INSERT INTO list_entries (address, list, hash, entry) VALUES (?, ?, ?, ?)")
                .bind(address.as_str())
                .bind(list_name(list))
                .bind(entry.hash.to_hex())
                .bind(serde_json::to_string(&entry.entry).expect("sealed data serialises"))
                .execute(pool)
                .await;
            match result {
                Ok(_) => Ok(Write::Done),
                Err(e) if is_unique_violation(&e) => Ok(Write::Conflict),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Removes an entry by hash.
    pub async fn remove_list_entry(&self, address: &Address, list: ListKind, hash: &Hash) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let removed = sql::query("DELETE FROM list_entries WHERE address = ? AND list = ? AND hash = ?")
                .bind(address.as_str())
                .bind(list_name(list))
                .bind(hash.to_hex())
                .execute(pool)
                .await?;
            Ok(if removed.rows_affected() == 1 { Write::Done } else { Write::NotFound })
        })
    }

    /// Every entry of one list.
    pub async fn list_entries(&self, address: &Address, list: ListKind) -> Result<Vec<ListEntry>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query("SELECT hash, entry FROM list_entries WHERE address = ? AND list = ? ORDER BY hash")
                .bind(address.as_str())
                .bind(list_name(list))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(ListEntry {
                        hash: parse(&r.try_get::<String, _>("hash")?, "list hash")?,
                        entry: serde_json::from_str(&r.try_get::<String, _>("entry")?)
                            .map_err(|e| corrupt(e.to_string()))?,
                    })
                })
                .collect()
        })
    }

    /// Whether `hash` is on `list` of `address`.
    pub async fn is_listed(&self, address: &Address, list: ListKind, hash: &Hash) -> Result<bool, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query("SELECT 1 FROM list_entries WHERE address = ? AND list = ? AND hash = ?")
                .bind(address.as_str())
                .bind(list_name(list))
                .bind(hash.to_hex())
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
    }

    // ---- avatars --------------------------------------------------------------------

    /// Stores (replaces) the avatar.
    pub async fn set_avatar(&self, address: &Address, avatar: &StoredAvatar) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            sql::query(
                "INSERT INTO avatars (address, content_type, image, hash, signature) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (address) DO UPDATE SET content_type = excluded.content_type, image = excluded.image, \
                 hash = excluded.hash, signature = excluded.signature",
            )
            .bind(address.as_str())
            .bind(&avatar.content_type)
            .bind(&avatar.image)
            .bind(avatar.hash.to_hex())
            .bind(avatar.signature.to_hex())
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The avatar, if one was set.
    pub async fn avatar(&self, address: &Address) -> Result<Option<StoredAvatar>, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query("SELECT content_type, image, hash, signature FROM avatars WHERE address = ?")
                .bind(address.as_str())
                .fetch_optional(pool)
                .await?;
            row.map(|r| {
                Ok(StoredAvatar {
                    content_type: r.try_get("content_type")?,
                    image: r.try_get("image")?,
                    hash: parse(&r.try_get::<String, _>("hash")?, "avatar hash")?,
                    signature: parse(&r.try_get::<String, _>("signature")?, "avatar signature")?,
                })
            })
            .transpose()
        })
    }
}

/// A message to store, with its PoW nonce to consume.
#[derive(Debug)]
pub struct NewMessage<'a> {
    pub message_id: Id32,
    pub recipient: &'a Address,
    pub sender: &'a Address,
    pub message_type: &'a MessageType,
    pub received_at: i64,
    pub envelope: &'a str,
    pub pow_nonce: Option<&'a Id32>,
    /// The message key it is encrypted to; an ephemeral one is used up by it.
    pub message_key: &'a BoxPublicKey,
    /// The recipient's quota in bytes (`None`: unlimited).
    pub quota_bytes: Option<u64>,
}

/// An avatar as stored.
#[derive(Debug, Clone)]
pub struct StoredAvatar {
    pub content_type: String,
    pub image: Vec<u8>,
    pub hash: Hash,
    pub signature: crate::smimp::crypto::Signature,
}

fn list_name(list: ListKind) -> &'static str {
    match list {
        ListKind::Whitelist => "whitelist",
        ListKind::Blacklist => "blacklist",
    }
}

fn account_from_row(r: &impl Columns) -> Result<AccountRow, StoreError> {
    let check = r.maybe_text("password_check")?;
    Ok(AccountRow {
        address: parse(&r.text("address")?, "address")?,
        initialized: r.flag("initialized")?,
        created_at: r.int("created_at")?,
        password_check: check.map(|c| parse(&c, "password check")).transpose()?,
    })
}
mod devices;
pub use devices::DeviceRequestRow;
