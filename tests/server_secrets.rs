//! The reference server's database never holds a raw session id, login token or
//! one-time initialisation password: it keeps only their hashes, so a copy of the
//! database (a backup, a stolen disk) gives no way in. The test logs in for real and
//! searches every file of the database (WAL included) for the values the client saw.

mod common;

use common::*;
use smimp_gateway::server::admin;

/// Everything the server's database holds: on SQLite every file of it (the main file,
/// its WAL and shared memory); on PostgreSQL every row of every table, as text.
async fn database_bytes(server: &TestServer) -> Vec<u8> {
    let main = &server.config.server.database;
    let mut bytes = Vec::new();
    if on_postgres_now() {
        use sqlx::Connection;
        let mut db = sqlx::PgConnection::connect(main.to_str().unwrap()).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut db)
                .await
                .unwrap();
        assert!(tables.len() > 5, "the server's tables were found: {tables:?}");
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM {table} t")).fetch_all(&mut db).await.unwrap();
            for row in rows {
                bytes.extend(row.into_bytes());
            }
        }
        db.close().await.unwrap();
        return bytes;
    }
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", main.display());
        if let Ok(content) = std::fs::read(&path) {
            bytes.extend(content);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_never_holds_a_raw_session_id_login_token_or_one_time_password() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let account = create_account(&client, &server, "alice", 1).await;
    let session = login(&client, &server, &account).await;
    let (pending, password) =
        admin::add_account(&server.config, &server.state.store, &format!("carol#{}", server.domain), 0).await.unwrap();
    let bytes = database_bytes(&server).await;
    // The search reads the real database: the addresses it holds in the clear are found.
    assert!(contains(&bytes, account.address.as_str().as_bytes()), "the database files were not read");
    assert!(contains(&bytes, pending.as_str().as_bytes()), "the pending account is in the database");
    let token_hex = session.token.to_hex();
    let raw_token = session.token.0;
    let raw_session = hex::decode(&session.id).unwrap();
    for (what, needle) in [
        ("the session id (hex)", session.id.as_bytes().to_vec()),
        ("the session id (bytes)", raw_session),
        ("the login token (hex)", token_hex.into_bytes()),
        ("the login token (bytes)", raw_token.to_vec()),
        ("the one-time password", password.as_bytes().to_vec()),
    ] {
        assert!(!contains(&bytes, &needle), "{what} is in the server's database in the clear");
    }
    server.stop().await;
}

// Every test above runs on SQLite (as written) and on PostgreSQL (`postgres::NAME`).
also_on_postgres!(the_database_never_holds_a_raw_session_id_login_token_or_one_time_password,);
