//! Several instances of the server on one PostgreSQL database behave as one: what an
//! instance must agree on (sessions, PoW nonces, ephemeral keys, quotas, the login
//! limit) lives in the database, so requests may alternate between instances freely.

mod common;

use std::future::Future;

use common::*;
use serde_json::Value;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{MessageList, MessageSent, Quota, Route, SessionEnded};

/// Runs `test` with two instances on one fresh PostgreSQL database.
fn on_two_instances<F: Future<Output = ()>>(test: impl FnOnce((TestServer, TestServer)) -> F) {
    on_postgres(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let twins = start_twins(Options::default()).await;
            test(twins).await;
        });
    });
}

async fn stop(a: TestServer, b: TestServer) {
    a.stop().await;
    b.stop().await;
}

#[test]
fn a_session_made_on_one_instance_works_and_ends_on_the_other() {
    on_two_instances(|(a, b)| async move {
        assert_ne!(a.addr, b.addr);
        let client = Client::new(&[&a]);
        let other = Client::new(&[&b]);
        let alice = create_account(&client, &a, "alice", 1).await;
        let session = login(&client, &a, &alice).await;
        let quota: Quota = ok(other.get(&url(&b, &Route::GetQuota), Some(&session.id)).await);
        assert_eq!(quota.used, 0);
        let ended: SessionEnded =
            ok(other.post(&url(&b, &Route::DestroySession), Some(&session.id), &Value::Null).await);
        let _ = ended;
        assert_error(&client.get(&url(&a, &Route::GetQuota), Some(&session.id)).await, 401, "session_expired");
        stop(a, b).await;
    });
}

#[test]
fn a_nonce_spent_on_one_instance_is_refused_by_the_other() {
    on_two_instances(|(a, b)| async move {
        let client = Client::new(&[&a]);
        let other = Client::new(&[&b]);
        // No ephemeral keys: both sends use the non-ephemeral key, so only the nonce can refuse.
        let alice = create_account(&client, &a, "alice", 0).await;
        let carol = create_account(&client, &a, "carol", 0).await;
        let cs = login(&client, &a, &carol).await;
        let (envelope, key, _) = prepare_message(&client, &a, &cs, &carol, &alice.address, b"{\"hi\":1}").await;
        assert!(key.nonephemeral);
        let send = Route::SendMessage { address: alice.address.clone() };
        let _: MessageSent = ok(client.post(&url(&a, &send), Some(&cs.id), &envelope).await);
        assert_error(&other.post(&url(&b, &send), Some(&cs.id), &envelope).await, 403, "nonce_unknown");
        let session = login(&other, &b, &alice).await;
        let list = Route::ListMessages { message_type: MessageType::Email, folder_name: None };
        let listed: MessageList = ok(other.get(&url(&b, &list), Some(&session.id)).await);
        assert_eq!(listed.messages.len(), 1, "stored once");
        stop(a, b).await;
    });
}

#[test]
fn two_messages_racing_for_the_last_quota_bytes_on_two_instances_store_exactly_one() {
    on_postgres(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let options = Options { extra: "[limits]\nquota_bytes = 3000\n".into(), ..Options::default() };
            let (a, b) = start_twins(options).await;
            let client = Client::new(&[&a]);
            let other = Client::new(&[&b]);
            let carol = create_account(&client, &a, "carol", 0).await;
            let cs = login(&client, &a, &carol).await;
            // Several rounds, each for a recipient of its own: a race lost once is seen.
            for round in 0..8 {
                let alice = create_account(&client, &a, &format!("alice{round}"), 2).await;
                let payload = vec![b'x'; 800];
                let (first, _, _) = prepare_message(&client, &a, &cs, &carol, &alice.address, &payload).await;
                let (second, _, _) = prepare_message(&other, &b, &cs, &carol, &alice.address, &payload).await;
                let send = Route::SendMessage { address: alice.address.clone() };
                let (on_a, on_b) = (url(&a, &send), url(&b, &send));
                let (one, two) =
                    tokio::join!(client.post(&on_a, Some(&cs.id), &first), other.post(&on_b, Some(&cs.id), &second));
                let statuses = [one.0, two.0];
                assert!(statuses.contains(&200) && statuses.contains(&507), "one stored, one refused: {one:?} {two:?}");
                let session = login(&client, &a, &alice).await;
                let list = Route::ListMessages { message_type: MessageType::Email, folder_name: None };
                let listed: MessageList = ok(other.get(&url(&b, &list), Some(&session.id)).await);
                assert_eq!(listed.messages.len(), 1, "exactly one stored");
                let quota: Quota = ok(client.get(&url(&a, &Route::GetQuota), Some(&session.id)).await);
                assert!(quota.used > 1500 && quota.used <= 3000, "{} bytes stored of a 3000-byte quota", quota.used);
            }
            stop(a, b).await;
        });
    });
}

#[test]
fn the_login_limit_counts_the_calls_of_every_instance() {
    on_two_instances(|(a, b)| async move {
        let client = Client::new(&[&a]);
        let other = Client::new(&[&b]);
        let alice = create_account(&client, &a, "alice", 0).await;
        // Alternating between the instances, one client address gets the limit once.
        let limit = 60;
        let mut accepted = 0;
        for call in 0..2 * limit {
            let (on, server) = if call % 2 == 0 { (&client, &a) } else { (&other, &b) };
            let answer = on.get(&url(server, &Route::GetLoginToken { address: alice.address.clone() }), None).await;
            match answer.0 {
                200 => accepted += 1,
                _ => {
                    assert_error(&answer, 429, "rate_limited");
                    break;
                }
            }
        }
        // create_account's initialisation was the first call counted.
        assert_eq!(accepted, limit - 1, "login calls accepted over both instances");
        stop(a, b).await;
    });
}
