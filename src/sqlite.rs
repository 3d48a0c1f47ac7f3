//! SQLite as both databases of the project use it (leaf utility): one way to open a
//! pool (WAL, full sync, foreign keys, busy timeout, migrations) and one way to read
//! a text column back into a typed value. Depends on nothing else in the crate.
//!
//! The files hold what other local users must not read (the gateway's pins,
//! correspondents, Message-IDs and mailbox names; the server's accounts): the
//! database, its `-wal` and `-shm` files are made 0600 whatever the umask (SQLite gives
//! the `-wal` and `-shm` files the database file's mode), and a directory created for
//! them 0700. [`private_dir`] tightens an existing directory its owner names.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    #[error("database {path}: cannot make it readable by its owner only: {source}")]
    Permissions { path: String, source: io::Error },
}

/// Opens (creating it and its directory) the database at `path` and applies
/// `migrations`. The database file and its `-wal` and `-shm` files are made 0600,
/// also when they exist already; missing directories are created 0700.
pub async fn open(path: &Path, max_connections: u32, migrations: &Migrator) -> Result<SqlitePool, OpenError> {
    let denied = |source| OpenError::Permissions { path: path.display().to_string(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(denied)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(denied)?;
        }
    }
    // Created here with its mode, before SQLite creates it with the umask's.
    fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(path).map_err(denied)?;
    private_files(path).map_err(denied)?;
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
    // WAL mode is on now, so the `-wal` and `-shm` files exist.
    private_files(path).map_err(denied)?;
    Ok(pool)
}

/// Makes the database at `path` and its `-wal` and `-shm` files (those that exist) 0600.
fn private_files(path: &Path) -> io::Result<()> {
    let mut names = vec![path.as_os_str().to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name);
    }
    for name in names {
        match fs::set_permissions(&name, fs::Permissions::from_mode(0o600)) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

/// Creates `dir` (and missing parents) and makes it 0700 whatever the umask, also when
/// it exists: for a directory that is its owner's alone (the gateway's data
/// directory). A shared directory (sticky bit, such as /tmp) is never changed.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if fs::metadata(dir)?.permissions().mode() & 0o1000 != 0 {
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Reads a stored text column as `T`; the error names what was read and why it failed.
pub fn parse_column<T: FromStr>(text: &str, what: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| format!("{what} {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: impl AsRef<Path>) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_database_files_and_a_new_directory_are_private() {
        let root = std::env::temp_dir().join(format!("sqlite-modes-{}", std::process::id()));
        let db = root.join("data").join("x.sqlite");
        static NONE: Migrator = Migrator::DEFAULT;
        let pool = open(&db, 1, &NONE).await.unwrap();
        sqlx::query("CREATE TABLE t (x)").execute(&pool).await.unwrap();
        assert_eq!(mode(root.join("data")), 0o700);
        for suffix in ["", "-wal", "-shm"] {
            assert_eq!(mode(format!("{}{suffix}", db.display())), 0o600, "x.sqlite{suffix}");
        }
        pool.close().await;
        // Files left readable by an older version are tightened at the next open.
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        let pool = open(&db, 1, &NONE).await.unwrap();
        assert_eq!(mode(&db), 0o600);
        pool.close().await;
        fs::set_permissions(root.join("data"), fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&root.join("data")).unwrap();
        assert_eq!(mode(root.join("data")), 0o700);
        let _ = fs::remove_dir_all(&root);
    }
}
