//! `server migrate-store` moves a pilot's SQLite store into an empty PostgreSQL
//! database: every table copied and verified (counts and checksums), the accounts,
//! histories, keys and messages then served from PostgreSQL as they were, and a
//! database that holds anything refused.

mod common;

use common::*;
use smimp_gateway::server::store::transfer::{migrate_store, TransferError};
use smimp_gateway::server::store::ServerStore;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{MessageSent, Route};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_moves_to_an_empty_postgres_database_whole() {
    let cluster = postgres_cluster();
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 3).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let cs = login(&client, &org, &carol).await;
    let mut sent = Vec::new();
    for payload in [&b"{\"n\":1}"[..], b"{\"n\":2}"] {
        let (envelope, _, _) = prepare_message(&client, &org, &cs, &carol, &alice.address, payload).await;
        let route = Route::SendMessage { address: alice.address.clone() };
        let done: MessageSent = ok(client.post(&url(&org, &route), Some(&cs.id), &envelope).await);
        sent.push(done.message_id);
    }
    let file = org.config.server.database.clone();
    let url = new_postgres_database(&cluster).await;

    let copies = migrate_store(&file, &url).await.unwrap();
    let rows = |table: &str| copies.iter().find(|c| c.table == table).map(|c| c.rows).unwrap();
    assert_eq!(rows("accounts"), 2);
    assert_eq!(rows("messages"), 2);
    assert!(rows("message_keys") >= 4, "alice's and carol's keys");
    assert!(rows("sessions") >= 1 && rows("profile_records") == 2);

    let before = &org.state.store;
    let after = ServerStore::open(std::path::Path::new(&url)).await.unwrap();
    assert!(after.is_postgres());
    assert_eq!(after.accounts().await.unwrap(), before.accounts().await.unwrap());
    for account in [&alice.address, &carol.address] {
        let (old, new) = (before.history(account).await.unwrap(), after.history(account).await.unwrap());
        assert_eq!(serde_json::to_string(&new).unwrap(), serde_json::to_string(&old).unwrap());
        assert_eq!(
            after.available_ephemeral_keys(account).await.unwrap(),
            before.available_ephemeral_keys(account).await.unwrap()
        );
    }
    let listed = after.list_messages(&alice.address, &MessageType::Email, None).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.message_id).collect::<Vec<_>>(), sent, "both messages, in their order");
    for id in &sent {
        let (old, new) = (
            before.message(&alice.address, id, false).await.unwrap(),
            after.message(&alice.address, id, false).await.unwrap(),
        );
        assert_eq!(new.unwrap().envelope, old.unwrap().envelope);
    }

    // A database with anything in it is refused, and left as it was.
    match migrate_store(&file, &url).await {
        Err(TransferError::TargetNotEmpty { table, .. }) => assert_eq!(table, "accounts"),
        other => panic!("a second copy into the same database: {other:?}"),
    }
    assert_eq!(after.accounts().await.unwrap().len(), 2);
    org.stop().await;
}
