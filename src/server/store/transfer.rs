//! Moving a pilot's store from SQLite to PostgreSQL (`server migrate-store`): every
//! table copied row by row in the source's order, inside one PostgreSQL transaction
//! that commits only when each table's row count and checksum read back from the
//! target equal the source's. A target that holds any row is refused, so nothing is
//! ever merged into or written over.

use std::path::{Path, PathBuf};

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgPool, Row, SqlitePool};

use crate::server::store::backend::{redacted, Backend, Location};
use crate::server::store::StoreError;

/// Why a store could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("there is no SQLite store at {0}")]
    NoSource(PathBuf),
    #[error("the target must be a PostgreSQL connection string (postgres://…) or credential:NAME, not {0:?}")]
    NotPostgres(String),
    #[error("the target database {url} is not empty (table {table} has rows); give an empty database")]
    TargetNotEmpty { url: String, table: &'static str },
    #[error("table {table}: the copy differs from the source ({detail}); nothing was written")]
    Differs { table: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// How a column is read and written.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    MaybeText,
    Int,
    Flag,
    Bytes,
}

use Kind::{Bytes, Flag, Int, MaybeText, Text};

/// Every table of the store, parents before children, with its columns (PostgreSQL's
/// `rowid` identity columns are filled by the insertion order, which is the source's).
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "accounts",
        &[
            ("address", Text),
            ("password_check", MaybeText),
            ("initialized", Flag),
            ("created_at", Int),
            ("modseq", Int),
            ("vanished_floor", Int),
        ],
    ),
    (
        "profile_records",
        &[("address", Text), ("seq", Int), ("data", Text), ("signed_hash", Text), ("public_key", Text)],
    ),
    (
        "message_keys",
        &[
            ("address", Text),
            ("public_key", Text),
            ("kind", Text),
            ("signature", Text),
            ("state", Text),
            ("added_at", Int),
        ],
    ),
    ("issued_keys", &[("session_hash", Text), ("recipient", Text), ("public_key", Text), ("issued_at", Int)]),
    ("login_tokens", &[("token_hash", Text), ("address", Text), ("expires_at", Int)]),
    (
        "sessions",
        &[
            ("session_hash", Text),
            ("address", Text),
            ("local", Flag),
            ("public_key", Text),
            ("login_token_hash", Text),
            ("expires_at", Int),
        ],
    ),
    (
        "pow_nonces",
        &[
            ("nonce", Text),
            ("session_hash", Text),
            ("recipient", Text),
            ("message_type", Text),
            ("zero_bits", Int),
            ("used", Flag),
        ],
    ),
    (
        "folders",
        &[
            ("address", Text),
            ("message_type", Text),
            ("folder_name", Text),
            ("display_name", Text),
            ("parent", MaybeText),
        ],
    ),
    (
        "messages",
        &[
            ("message_id", Text),
            ("recipient", Text),
            ("message_type", Text),
            ("folder_name", MaybeText),
            ("sender", Text),
            ("received_at", Int),
            ("read", Flag),
            ("size", Int),
            ("envelope", Text),
            ("extensions", MaybeText),
            ("modseq", Int),
        ],
    ),
    (
        "vanished_messages",
        &[
            ("recipient", Text),
            ("message_type", Text),
            ("folder_name", MaybeText),
            ("message_id", Text),
            ("modseq", Int),
            ("vanished_at", Int),
        ],
    ),
    ("list_entries", &[("address", Text), ("list", Text), ("hash", Text), ("entry", Text)]),
    ("avatars", &[("address", Text), ("content_type", Text), ("image", Bytes), ("hash", Text), ("signature", Text)]),
    (
        "key_grants",
        &[
            ("recipient", Text),
            ("sender", Text),
            ("ephemeral", Flag),
            ("issued_at", Int),
            ("public_key", Text),
            ("spent", Flag),
        ],
    ),
    ("rate_events", &[("kind", Text), ("rate_key", Text), ("at", Int)]),
    ("device_challenges", &[("nonce", Text), ("address", Text), ("zero_bits", Int), ("expires_at", Int)]),
    (
        "device_requests",
        &[
            ("request_id", Text),
            ("address", Text),
            ("name", Text),
            ("sign_key", Text),
            ("box_key", Text),
            ("nonce", Text),
            ("pin_proof", MaybeText),
            ("state", Text),
            ("approval", MaybeText),
            ("reason", MaybeText),
            ("created_at", Int),
            ("expires_at", Int),
        ],
    ),
    ("device_seen", &[("address", Text), ("box_key", Text), ("seen_at", Int)]),
    (
        "device_shares",
        &[("share_id", Text), ("address", Text), ("box_key", Text), ("share", Text), ("created_at", Int)],
    ),
];

/// Rows read per query.
const PAGE: i64 = 256;

/// One column's value.
#[derive(Debug, Clone)]
enum Value {
    Text(Option<String>),
    Int(i64),
    Flag(bool),
    Bytes(Vec<u8>),
}

/// One table as copied: its rows and the checksum over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    pub table: &'static str,
    pub rows: u64,
    /// SHA-256 over the sorted SHA-256 of each row's values, in hex.
    pub checksum: String,
}

/// Copies the SQLite store at `from` into the empty PostgreSQL database `to`, and
/// commits only once every table's count and checksum in the target equal the source's.
pub async fn migrate_store(from: &Path, to: &str) -> Result<Vec<TableCopy>, TransferError> {
    if !from.is_file() {
        return Err(TransferError::NoSource(from.to_path_buf()));
    }
    let Location::Postgres(url) = Location::of(Path::new(to)).resolve()? else {
        return Err(TransferError::NotPostgres(to.to_string()));
    };
    let Backend::Sqlite(source) = Backend::open(&Location::Sqlite(from.to_path_buf())).await? else {
        unreachable!("a SQLite location opens SQLite")
    };
    let Backend::Postgres(target) = Backend::open(&Location::Postgres(url.clone())).await? else {
        unreachable!("a PostgreSQL location opens PostgreSQL")
    };
    refuse_non_empty(&target, &url).await?;
    let mut tx = target.begin().await?;
    let mut copies = Vec::new();
    for (table, columns) in TABLES {
        let copied = copy_table(&source, &mut tx, table, columns).await?;
        let read_back = target_sum(&mut tx, table, columns).await?;
        if copied != read_back {
            return Err(TransferError::Differs {
                table,
                detail: format!(
                    "source {} rows, checksum {}; target {} rows, checksum {}",
                    copied.rows, copied.checksum, read_back.rows, read_back.checksum
                ),
            });
        }
        copies.push(copied);
    }
    tx.commit().await?;
    Ok(copies)
}

async fn refuse_non_empty(target: &PgPool, url: &str) -> Result<(), TransferError> {
    for (table, _) in TABLES {
        let any: Option<i32> =
            sqlx::query_scalar(&format!("SELECT 1 FROM {table} LIMIT 1")).fetch_optional(target).await?;
        if any.is_some() {
            return Err(TransferError::TargetNotEmpty { url: redacted(url), table });
        }
    }
    Ok(())
}

fn column_list(columns: &[(&str, Kind)]) -> String {
    columns.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

/// Copies one table in the source's rowid order; its count and checksum.
async fn copy_table(
    source: &SqlitePool,
    tx: &mut sqlx::PgConnection,
    table: &'static str,
    columns: &[(&str, Kind)],
) -> Result<TableCopy, TransferError> {
    let names = column_list(columns);
    let select = format!("SELECT rowid AS source_rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?");
    let placeholders = (1..=columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
    let insert = format!("INSERT INTO {table} ({names}) VALUES ({placeholders})");
    let mut sum = Checksum::new(table);
    let mut after = 0_i64;
    loop {
        let rows: Vec<SqliteRow> = sqlx::query(&select).bind(after).bind(PAGE).fetch_all(source).await?;
        for row in &rows {
            after = row.try_get("source_rowid")?;
            let values =
                columns.iter().map(|(name, kind)| sqlite_value(row, name, *kind)).collect::<Result<Vec<_>, _>>()?;
            sum.add(&values);
            let mut query = sqlx::query(&insert);
            for value in values {
                query = match value {
                    Value::Text(text) => query.bind(text),
                    Value::Int(n) => query.bind(n),
                    Value::Flag(flag) => query.bind(flag),
                    Value::Bytes(bytes) => query.bind(bytes),
                };
            }
            query.execute(&mut *tx).await?;
        }
        if (rows.len() as i64) < PAGE {
            return Ok(sum.finish());
        }
    }
}

/// The count and checksum of one table as the target holds it (in this transaction).
async fn target_sum(
    tx: &mut sqlx::PgConnection,
    table: &'static str,
    columns: &[(&str, Kind)],
) -> Result<TableCopy, TransferError> {
    let select = format!(
        "SELECT ctid::text AS position, {} FROM {table} WHERE ctid > $1::tid ORDER BY ctid LIMIT $2",
        column_list(columns)
    );
    let mut sum = Checksum::new(table);
    let mut after = "(0,0)".to_string();
    loop {
        let rows: Vec<PgRow> = sqlx::query(&select).bind(&after).bind(PAGE).fetch_all(&mut *tx).await?;
        for row in &rows {
            after = row.try_get("position")?;
            let values =
                columns.iter().map(|(name, kind)| pg_value(row, name, *kind)).collect::<Result<Vec<_>, _>>()?;
            sum.add(&values);
        }
        if (rows.len() as i64) < PAGE {
            return Ok(sum.finish());
        }
    }
}

fn sqlite_value(row: &SqliteRow, name: &str, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Text => Value::Text(Some(row.try_get(name)?)),
        MaybeText => Value::Text(row.try_get(name)?),
        Int => Value::Int(row.try_get(name)?),
        Flag => Value::Flag(row.try_get(name)?),
        Bytes => Value::Bytes(row.try_get(name)?),
    })
}

fn pg_value(row: &PgRow, name: &str, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Text => Value::Text(Some(row.try_get(name)?)),
        MaybeText => Value::Text(row.try_get(name)?),
        Int => Value::Int(row.try_get(name)?),
        Flag => Value::Flag(row.try_get(name)?),
        Bytes => Value::Bytes(row.try_get(name)?),
    })
}

/// A checksum that does not depend on row order: the sorted digests of the rows.
struct Checksum {
    table: &'static str,
    rows: Vec<[u8; 32]>,
}

impl Checksum {
    fn new(table: &'static str) -> Self {
        Self { table, rows: Vec::new() }
    }

    /// Adds a row: each value tagged by its kind and length, so no two rows collide
    /// by shifting bytes between columns.
    fn add(&mut self, values: &[Value]) {
        let mut row = ring::digest::Context::new(&ring::digest::SHA256);
        for value in values {
            let (tag, bytes): (u8, Vec<u8>) = match value {
                Value::Text(None) => (0, Vec::new()),
                Value::Text(Some(text)) => (1, text.as_bytes().to_vec()),
                Value::Int(n) => (2, n.to_be_bytes().to_vec()),
                Value::Flag(flag) => (3, vec![u8::from(*flag)]),
                Value::Bytes(bytes) => (4, bytes.clone()),
            };
            row.update(&[tag]);
            row.update(&(bytes.len() as u64).to_be_bytes());
            row.update(&bytes);
        }
        let mut digest = [0; 32];
        digest.copy_from_slice(row.finish().as_ref());
        self.rows.push(digest);
    }

    fn finish(mut self) -> TableCopy {
        self.rows.sort_unstable();
        let mut all = ring::digest::Context::new(&ring::digest::SHA256);
        for row in &self.rows {
            all.update(row);
        }
        TableCopy { table: self.table, rows: self.rows.len() as u64, checksum: hex::encode(all.finish()) }
    }
}
