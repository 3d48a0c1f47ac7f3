//! The server's two stores hold the same data: the SQLite migrations
//! (migrations/server/) and the PostgreSQL ones (migrations/server-postgres/) must end
//! in the same tables with the same columns, each of a matching type and nullability,
//! so that one set of queries serves both and a store can be moved from one to the
//! other. PostgreSQL's explicit `rowid` columns stand for SQLite's implicit one.

mod common;

use std::collections::BTreeMap;

use common::*;
use smimp_gateway::server::store::ServerStore;
use sqlx::Connection;

/// table → column → (type class, NOT NULL).
type Schema = BTreeMap<String, BTreeMap<String, (String, bool)>>;

async fn sqlite_schema(path: &std::path::Path) -> Schema {
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let rows: Vec<(String, String, String, bool, i64)> = sqlx::query_as(
        "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table, column, kind, not_null, pk) in rows {
        // SQLite lets a non-INTEGER primary key column hold NULL unless it says NOT NULL;
        // PostgreSQL's primary keys are NOT NULL always. Every key here says NOT NULL.
        let not_null = not_null || (pk > 0 && kind == "INTEGER");
        let class = match kind.as_str() {
            "INTEGER" => "integer",
            "TEXT" => "text",
            "BLOB" => "bytes",
            other => panic!("{table}.{column}: SQLite type {other} has no class here"),
        };
        schema.entry(table).or_default().insert(column, (class.to_string(), not_null));
    }
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_sqlx%'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut schema = Schema::new();
    for (table, column, kind, nullable) in rows {
        if column == "rowid" {
            continue;
        }
        // SQLite keeps flags in INTEGER columns.
        let class = match kind.as_str() {
            "bigint" | "boolean" => "integer",
            "text" => "text",
            "bytea" => "bytes",
            other => panic!("{table}.{column}: PostgreSQL type {other} has no class here"),
        };
        schema.entry(table).or_default().insert(column, (class.to_string(), nullable == "NO"));
    }
    schema
}

#[tokio::test]
async fn both_stores_have_the_same_tables_and_columns() {
    let dir = TempDir::new("schema");
    let file = dir.0.join("server.sqlite");
    ServerStore::open(&file).await.unwrap();
    let url = new_postgres_database(&postgres_cluster()).await;
    let store = ServerStore::open(std::path::Path::new(&url)).await.unwrap();
    assert!(store.is_postgres(), "{url} opened PostgreSQL");
    let sqlite = sqlite_schema(&file).await;
    let postgres = postgres_schema(&url).await;
    assert!(sqlite.len() >= 12, "the SQLite tables were read: {:?}", sqlite.keys());
    assert_eq!(sqlite, postgres, "left: SQLite, right: PostgreSQL");
}
