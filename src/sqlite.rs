//! SQLite as both databases of the project use it (leaf utility): one way to open a
//! pool (WAL, full sync, foreign keys, busy timeout, migrations) and one way to read
//! a text column back into a typed value. Depends on nothing else in the crate.

use std::path::Path;
use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("database {path}: {source}")]
    Connect { path: String, source: sqlx::Error },
    #[error("database {path}: migration failed: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
}

/// Opens (creating it and its directory) the database at `path` and applies `migrations`.
pub async fn open(path: &Path, max_connections: u32, migrations: &Migrator) -> Result<SqlitePool, OpenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect { path: path.display().to_string(), source })?;
    migrations.run(&pool).await.map_err(|source| OpenError::Migrate { path: path.display().to_string(), source })?;
    Ok(pool)
}

/// Reads a stored text column as `T`; the error names what was read and why it failed.
pub fn parse_column<T: FromStr>(text: &str, what: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{what} {text:?}: {e}"))
}
