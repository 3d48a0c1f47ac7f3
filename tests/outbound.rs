//! The outbound engine against two real servers over real TLS: a queued message is
//! delivered with a verified key, proof of work and a signed envelope, and the
//! recipient opens it; a user who does not exist fails at once; an unreachable domain
//! is deferred with backoff; the queue survives reopening the database.

mod common;

use std::sync::Arc;

use common::*;
use smimp_gateway::backend::outbound::{attempt, enqueue, RetryPolicy, Sender};
use smimp_gateway::backend::relay::Relays;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::keystore::Keystore;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::MasterKey;
use smimp_gateway::smimp::envelope::StoredEnvelope;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{MessageList, Route};
use smimp_gateway::store::{GatewayStore, Recipient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_is_delivered_refused_or_deferred() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let bob = create_account(&client, &net, "bob", 2).await;

    // Alice is set up the way `init` does it, with a gateway configuration and keystore.
    let dir = TempDir::new("outbound");
    let config = write_gateway_config(&dir, &[&org, &net], "");
    let done = init_on_gateway(&config, &org, "alice").await;
    let ctx = Context::open(&config).await.unwrap();
    let keystore = Keystore::load(&done.keystore, &ctx.passphrase).unwrap();
    let sender = Sender::new(
        done.address.clone(),
        Arc::new(MasterKey::from_seed(&keystore.master().seed())),
        keystore.storage_key().clone(),
    );

    let carol: Address = "carol#example.net".parse().unwrap();
    let nowhere: Address = "dave#unreachable.invalid".parse().unwrap();
    let policy = RetryPolicy::default();
    let payload = br#"{"note":"sealed at rest, sealed in transit"}"#;
    let kind = MessageType::parse("x-custom-test").unwrap();
    let t = now().unix();
    let ids = enqueue(
        &ctx.store,
        &sender,
        &kind,
        payload,
        &[bob.address.clone(), carol.clone(), nowhere.clone()],
        &policy,
        t,
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), 3);

    // The queue is durable: a fresh handle on the database sees every row, sealed.
    let reopened = GatewayStore::open(&ctx.config.database()).await.unwrap();
    let due = reopened.due_outbound(t, 10).await.unwrap();
    assert_eq!(due.len(), 3);
    assert!(
        due.iter().all(|row| !row.sealed_payload.windows(6).any(|w| w == b"sealed")),
        "payload is not stored in the clear"
    );

    let mut bounces = Vec::new();
    for row in &due {
        if let Some(reason) =
            attempt(&ctx.discovery, &Relays::default(), &reopened, &sender, row, &policy, t).await.unwrap()
        {
            bounces.push((row.recipient.clone(), reason));
        }
    }

    let sent = reopened.outbound(ids[0]).await.unwrap().unwrap();
    assert_eq!(sent.state, "sent", "{:?}", sent.last_error);
    assert!(sent.sealed_payload.is_empty(), "a delivered payload is not kept");
    let failed = reopened.outbound(ids[1]).await.unwrap().unwrap();
    assert_eq!(failed.state, "failed");
    assert!(failed.last_error.as_deref().unwrap_or_default().contains("carol#example.net"), "{failed:?}");
    let deferred = reopened.outbound(ids[2]).await.unwrap().unwrap();
    assert_eq!((deferred.state.as_str(), deferred.attempts), ("queued", 1), "{deferred:?}");
    assert!(reopened.due_outbound(t, 10).await.unwrap().is_empty(), "the deferred row waits for its backoff");
    assert_eq!(reopened.due_outbound(t + 30, 10).await.unwrap().len(), 1);
    assert_eq!(bounces.len(), 1);
    assert_eq!(bounces[0].0, Recipient::Smimp(carol));

    // Bob finds one message from Alice and opens it with his own key.
    let session = login(&client, &net, &bob).await;
    let list: MessageList = ok(client
        .get(&url(&net, &Route::ListMessages { message_type: kind.clone(), folder_name: None }), Some(&session.id))
        .await);
    assert_eq!(list.messages.len(), 1);
    let stored: StoredEnvelope = ok(client
        .get(
            &url(&net, &Route::GetMessage { message_id: list.messages[0].message_id, update_read: false }),
            Some(&session.id),
        )
        .await);
    assert_eq!(stored.server.sender, done.address);
    assert_eq!(Some(stored.server.message_id.to_hex()), sent.message_id);
    let opened = stored
        .open(&sender.master.public(), &bob.key.public(), bob.secret_for(&stored.sent.message_public_key))
        .unwrap();
    assert_eq!(opened, payload);

    // Bob's key was first seen here, and pinned.
    assert!(reopened.pin(&bob.address).await.unwrap().is_some());
    org.stop().await;
    net.stop().await;
}
