//! The two databases the server can keep its store in, behind one set of queries:
//! SQLite (a file, the default) and PostgreSQL (`postgres://…`, for several
//! instances sharing one database). Queries are written once, in SQLite's dialect
//! restricted to what PostgreSQL also accepts; this module opens either pool, applies
//! its migrations, and for PostgreSQL rewrites `?` placeholders to `$n` and serialises
//! write transactions as SQLite's `BEGIN IMMEDIATE` does, so both stores behave alike.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, SqlitePool};

use crate::server::store::StoreError;

/// Where the store lives, as `[server] database` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://…` or `postgresql://…`).
    Postgres(String),
    /// `credential:NAME`: a connection string in the systemd credential NAME
    /// (`$CREDENTIALS_DIRECTORY/NAME`), so that no unit or configuration file holds it.
    Credential(String),
}

/// The prefix naming a systemd credential in `[server] database`.
const CREDENTIAL: &str = "credential:";

impl Location {
    /// A connection string or credential when `database` is one, else the SQLite file it names.
    pub fn of(database: &std::path::Path) -> Self {
        match database.to_str() {
            Some(text) if is_postgres_url(text) => Self::Postgres(text.to_string()),
            Some(text) if text.starts_with(CREDENTIAL) => Self::Credential(text[CREDENTIAL.len()..].to_string()),
            _ => Self::Sqlite(database.to_path_buf()),
        }
    }

    /// The connection string a credential holds; any other location as it is.
    pub fn resolve(self) -> Result<Self, StoreError> {
        self.resolve_in(std::env::var_os("CREDENTIALS_DIRECTORY"))
    }

    /// As [`Location::resolve`], with the credentials directory given.
    fn resolve_in(self, dir: Option<std::ffi::OsString>) -> Result<Self, StoreError> {
        let Self::Credential(name) = self else { return Ok(self) };
        let unreadable = |why: String| StoreError::Credential { name: name.clone(), why };
        let dir = dir.ok_or_else(|| {
            unreadable("CREDENTIALS_DIRECTORY is not set (give it with LoadCredential= in the unit)".into())
        })?;
        let text = std::fs::read_to_string(PathBuf::from(dir).join(&name)).map_err(|e| unreadable(e.to_string()))?;
        let url = text.trim();
        if !is_postgres_url(url) {
            return Err(unreadable("it does not hold a postgres://… connection string".into()));
        }
        Ok(Self::Postgres(url.to_string()))
    }
}

/// Whether `text` is a PostgreSQL connection string rather than a file name.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// An open pool of either database.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Connections per instance: enough for the handlers' short transactions.
const MAX_CONNECTIONS: u32 = 8;

impl Backend {
    /// Opens the store at `location` and applies its migrations.
    pub async fn open(location: &Location) -> Result<Self, StoreError> {
        match &location.clone().resolve()? {
            Location::Sqlite(path) => {
                static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/server");
                Ok(Self::Sqlite(crate::sqlite::open(path, MAX_CONNECTIONS, &MIGRATIONS).await?))
            }
            Location::Credential(_) => unreachable!("resolved above"),
            Location::Postgres(url) => {
                static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/server-postgres");
                let pool = PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .connect(url)
                    .await
                    .map_err(|source| StoreError::Postgres { url: redacted(url), source })?;
                // The migrator takes PostgreSQL's advisory lock: instances starting
                // together migrate once.
                MIGRATIONS.run(&pool).await.map_err(|source| StoreError::Migrate { url: redacted(url), source })?;
                Ok(Self::Postgres(pool))
            }
        }
    }
}

/// A connection string fit for a log or an error: without its password.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else { return url.to_string() };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// Queries on SQLite: the SQL as written.
pub mod sqlite {
    use sqlx::sqlite::SqliteArguments;
    use sqlx::{Sqlite, SqlitePool, Transaction};

    pub fn query<'q>(sql: &'static str) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
        sqlx::query(sql)
    }

    pub fn query_scalar<'q, O>(sql: &'static str) -> sqlx::query::QueryScalar<'q, Sqlite, O, SqliteArguments<'q>>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    {
        sqlx::query_scalar(sql)
    }

    /// A write transaction: it holds SQLite's write lock from its start.
    pub async fn begin(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }
}

/// Queries on PostgreSQL: placeholders rewritten, write transactions serialised.
pub mod postgres {
    use sqlx::postgres::PgArguments;
    use sqlx::{PgPool, Postgres, Transaction};

    pub fn query<'q>(sql: &'static str) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        sqlx::query(super::translated(sql))
    }

    pub fn query_scalar<'q, O>(sql: &'static str) -> sqlx::query::QueryScalar<'q, Postgres, O, PgArguments>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
    {
        sqlx::query_scalar(super::translated(sql))
    }

    /// The advisory lock every write transaction takes first (any constant would do;
    /// this one is "SMIMP" in ASCII). Held to commit, it orders write transactions one
    /// after the other as SQLite's `BEGIN IMMEDIATE` does, across every instance on
    /// the database: each then reads what the previous ones committed (READ
    /// COMMITTED takes a fresh snapshot per statement), so nonces, ephemeral keys,
    /// quotas and key grants cannot be claimed twice by racing instances.
    const WRITE_LOCK: &str = "SELECT pg_advisory_xact_lock(358486625616)";

    /// A write transaction, serialised with every other one (see [`WRITE_LOCK`]).
    pub async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query(WRITE_LOCK).execute(&mut *tx).await?;
        Ok(tx)
    }
}

/// `sql` in PostgreSQL's dialect, translated once per distinct statement: the
/// statements are the program's own literals, so the cache is bounded by them.
fn translated(sql: &'static str) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<&'static str, &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cache.entry(sql).or_insert_with(|| Box::leak(to_postgres(sql).into_boxed_str()))
}

/// Rewrites SQLite's placeholders (`?` in order, `?N` by number) to PostgreSQL's
/// `$N`, and `LIMIT -1` (no limit, as SQLite requires before `OFFSET`) away. The
/// statements hold no string literal with a `?`.
pub fn to_postgres(sql: &str) -> String {
    let sql = sql.replace("LIMIT -1 OFFSET", "OFFSET");
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '?' {
            out.push(c);
        } else if chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            next += 1;
            out.push('$');
            out.push_str(&next.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_and_numbered_ones_keep_their_number() {
        assert_eq!(
            to_postgres("SELECT 1 FROM t WHERE a = ? AND b IN (?, ?)"),
            "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(
            to_postgres("SELECT 1 WHERE a = ?1 OR b = ?2 OR c = ?1"),
            "SELECT 1 WHERE a = $1 OR b = $2 OR c = $1"
        );
        assert_eq!(to_postgres("SELECT x FROM t ORDER BY y LIMIT -1 OFFSET ?"), "SELECT x FROM t ORDER BY y OFFSET $1");
    }

    #[test]
    fn a_connection_string_selects_postgres_and_anything_else_is_a_file() {
        let url = "postgres://smimp@127.0.0.1:5432/smimp";
        assert_eq!(Location::of(std::path::Path::new(url)), Location::Postgres(url.into()));
        let file = std::path::Path::new("/var/lib/smimp/server.sqlite");
        assert_eq!(Location::of(file), Location::Sqlite(file.into()));
        assert_eq!(redacted("postgres://u:secret@h/db"), "postgres://u:***@h/db");
    }

    #[test]
    fn a_credential_names_the_connection_string_systemd_hands_over() {
        let dir = std::env::temp_dir().join(format!("smimp-credentials-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = "postgres://smimp:secret@10.0.0.5/smimp";
        std::fs::write(dir.join("database"), format!("{url}\n")).unwrap();
        let location = Location::of(std::path::Path::new("credential:database"));
        assert_eq!(location, Location::Credential("database".into()));
        assert_eq!(location.clone().resolve_in(Some(dir.clone().into())).unwrap(), Location::Postgres(url.into()));
        let missing = location.clone().resolve_in(None).unwrap_err().to_string();
        assert!(missing.contains("CREDENTIALS_DIRECTORY"), "{missing}");
        std::fs::write(dir.join("database"), "/var/lib/x.sqlite").unwrap();
        let wrong = location.resolve_in(Some(dir.clone().into())).unwrap_err().to_string();
        assert!(wrong.contains("postgres://") && !wrong.contains("secret"), "{wrong}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
