//! The `x-changes` extension of the reference server (docs/protocol.md §8.29) over
//! real HTTPS, on SQLite and PostgreSQL: every kind of change (arrival, read,
//! extensions data, move in and out, deletion) is reported once after the modseq it
//! happened at; a page holds at most 1000 entries and says there is more; tombstones
//! past their time leave a client that asks from before them told to list afresh.

mod common;

use common::*;
use rand_core::OsRng;
use serde_json::json;
use smimp_gateway::server::store::NewMessage;
use smimp_gateway::smimp::crypto::{BoxNonce, BoxSecretKey, SecretBoxKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::SealedData;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{
    Api, ChangeList, FolderName, MessageSent, Route, ServerInformation, CHANGES_PER_PAGE,
};

fn changes_route(folder: Option<&str>, since: u64) -> Route {
    Route::ListChanges {
        message_type: MessageType::Email,
        folder_name: folder.map(|f| FolderName::parse(f).unwrap()),
        since,
    }
}

async fn changes(
    client: &Client,
    server: &TestServer,
    session: &Session,
    folder: Option<&str>,
    since: u64,
) -> ChangeList {
    ok(client.get(&url(server, &changes_route(folder, since)), Some(&session.id)).await)
}

fn ids(list: &ChangeList) -> Vec<Id32> {
    list.changes.iter().map(|c| c.message_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_reported_once_after_its_modseq() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let info: ServerInformation = ok(client.get(&url(&org, &Route::ServerInformation), None).await);
    assert!(info.apis.iter().any(|a| a == Api::XChanges.as_str()), "x-changes is advertised");
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let bob_session = login(&client, &org, &bob).await;
    let session = login(&client, &org, &alice).await;
    let s = Some(session.id.as_str());
    let mut sent = Vec::new();
    for body in [b"one".as_slice(), b"two"] {
        let (envelope, _, _) = prepare_message(&client, &org, &bob_session, &bob, &alice.address, body).await;
        let done: MessageSent = ok(client
            .post(&url(&org, &Route::SendMessage { address: alice.address.clone() }), Some(&bob_session.id), &envelope)
            .await);
        sent.push(done.message_id);
    }
    let (first, second) = (sent[0], sent[1]);

    let all = changes(&client, &org, &session, None, 0).await;
    assert_eq!(ids(&all), vec![first, second], "arrivals, in order");
    assert!(all.changes[0].modseq < all.changes[1].modseq && all.changes[1].modseq <= all.modseq);
    assert!(!all.more && !all.expired && all.vanished.is_empty());
    assert_eq!(all.changes[0].sender, bob.address);
    let mark = all.modseq;
    assert_eq!(changes(&client, &org, &session, None, mark).await.changes, vec![], "nothing since");

    // Read status and extensions data.
    let _: serde_json::Value = ok(client.post(&url(&org, &Route::SetReadStatus { message_id: first }), s, &true).await);
    let key = SecretBoxKey::generate(&mut OsRng);
    let nonce = BoxNonce::random(&mut OsRng);
    let sealed = SealedData { nonce, ciphertext: key.seal(&nonce, br#"{"flags":["\\Flagged"]}"#) };
    let _: serde_json::Value =
        ok(client.post(&url(&org, &Route::SetMessageExtensions { message_id: second }), s, &sealed).await);
    let flags = changes(&client, &org, &session, None, mark).await;
    assert_eq!(ids(&flags), vec![first, second]);
    assert!(flags.changes[0].read);
    assert_eq!(flags.changes[1].extensions_data, Some(sealed));
    let mark = flags.modseq;

    // A move leaves the root and arrives in the folder; a delete leaves a tombstone.
    let folder = json!({"display_name": "Work", "folder_name": "work", "parent": null, "message_type": "email"});
    let _: serde_json::Value = ok(client.post(&url(&org, &Route::CreateFolder), s, &folder).await);
    let to_work = json!({ "folder_name": "work" });
    let _: serde_json::Value =
        ok(client.post(&url(&org, &Route::MoveMessage { message_id: second }), s, &to_work).await);
    let _: serde_json::Value = ok(client.delete(&url(&org, &Route::DeleteMessage { message_id: first }), s).await);
    let root = changes(&client, &org, &session, None, mark).await;
    assert_eq!(root.changes, vec![]);
    assert_eq!(root.vanished, vec![second, first], "in the order they left");
    let work = changes(&client, &org, &session, Some("work"), 0).await;
    assert_eq!(ids(&work), vec![second]);
    assert!(work.vanished.is_empty());
    assert_eq!(work.modseq, root.modseq, "one counter per account");

    // Back to the root: no longer vanished there, vanished from work.
    let _: serde_json::Value = ok(client
        .post(&url(&org, &Route::MoveMessage { message_id: second }), s, &json!({ "folder_name": null }))
        .await);
    let root = changes(&client, &org, &session, None, mark).await;
    assert_eq!((ids(&root), root.vanished), (vec![second], vec![first]));
    assert_eq!(changes(&client, &org, &session, Some("work"), work.modseq).await.vanished, vec![second]);

    // Each owner their own, and only numbers.
    let bobs = changes(&client, &org, &bob_session, None, 0).await;
    assert!(bobs.changes.is_empty() && bobs.vanished.is_empty(), "a session sees its own mailbox only");
    let bad = format!("{}/0.1/x-changes/email/soon", org.base);
    assert_error(&client.get(&bad, s).await, 400, "bad_request");
    assert_error(&client.get(&url(&org, &changes_route(Some("nowhere"), 0)), s).await, 404, "not_found");
    org.stop().await;
}

/// Stores `count` messages for `address` straight through the store (no key, no work):
/// the page bound is about counting, not about sending.
async fn store_many(org: &TestServer, address: &smimp_gateway::smimp::address::Address, count: usize) {
    let key = BoxSecretKey::generate(&mut OsRng).public();
    for n in 0..count {
        let message = NewMessage {
            message_id: Id32::random(&mut OsRng),
            recipient: address,
            sender: address,
            message_type: &MessageType::Email,
            received_at: 1_700_000_000 + n as i64,
            envelope: "{}",
            pow_nonce: None,
            message_key: &key,
            quota_bytes: None,
        };
        org.state.store.deliver(&message).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_holds_at_most_a_thousand_and_says_there_is_more() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let session = login(&client, &org, &alice).await;
    store_many(&org, &alice.address, CHANGES_PER_PAGE + 5).await;

    let first = changes(&client, &org, &session, None, 0).await;
    assert_eq!(first.changes.len(), CHANGES_PER_PAGE);
    assert!(first.more);
    assert_eq!(first.modseq, first.changes.last().unwrap().modseq, "ask again from the page's last change");
    let rest = changes(&client, &org, &session, None, first.modseq).await;
    assert_eq!(rest.changes.len(), 5);
    assert!(!rest.more);
    let seen: std::collections::HashSet<Id32> = ids(&first).into_iter().chain(ids(&rest)).collect();
    assert_eq!(seen.len(), CHANGES_PER_PAGE + 5, "every message once");
    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_older_than_the_kept_tombstones_is_told_to_list_afresh() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let session = login(&client, &org, &alice).await;
    let s = Some(session.id.as_str());
    store_many(&org, &alice.address, 2).await;
    let before = changes(&client, &org, &session, None, 0).await;
    let gone = before.changes[0].message_id;
    let _: serde_json::Value = ok(client.delete(&url(&org, &Route::DeleteMessage { message_id: gone }), s).await);
    let after = changes(&client, &org, &session, None, before.modseq).await;
    assert_eq!(after.vanished, vec![gone]);

    // A day later the tombstone is still there; past 30 days it is not.
    let now = org.state.clock.now();
    org.state.store.purge_expired(now + 24 * 3600).await.unwrap();
    let session = login(&client, &org, &alice).await;
    assert_eq!(changes(&client, &org, &session, None, before.modseq).await.vanished, vec![gone]);
    org.state.store.purge_expired(now + 31 * 24 * 3600).await.unwrap();
    let session = login(&client, &org, &alice).await; // the purge ended the old session
    let stale = changes(&client, &org, &session, None, before.modseq).await;
    assert!(stale.expired, "asked from before a forgotten tombstone");
    assert!(stale.changes.is_empty() && stale.vanished.is_empty());
    assert_eq!(stale.modseq, after.modseq);
    let current = changes(&client, &org, &session, None, after.modseq).await;
    assert!(!current.expired, "a client that saw the deletion goes on");
    let afresh = changes(&client, &org, &session, None, 0).await;
    assert!(!afresh.expired, "from 0 nothing is lost");
    assert_eq!(ids(&afresh), vec![before.changes[1].message_id]);
    org.stop().await;
}

// Every test above runs on SQLite (as written) and on PostgreSQL (`postgres::NAME`).
also_on_postgres!(
    every_change_is_reported_once_after_its_modseq,
    a_page_holds_at_most_a_thousand_and_says_there_is_more,
    a_client_older_than_the_kept_tombstones_is_told_to_list_afresh,
);
