//! The reference server end to end over real TLS: a user of another domain logs in
//! as a remote user (the server fetches and verifies their history from their home
//! server), gets a message key and PoW parameters, sends; the recipient lists, fetches
//! and opens the message with their own key.

mod common;

use common::*;
use smimp_gateway::smimp::envelope::StoredEnvelope;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{MessageList, MessageSent, Route};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_user_sends_and_the_recipient_opens() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 3).await;
    let bob = create_account(&client, &net, "bob", 0).await;

    let bob_at_org = login(&client, &org, &bob).await;
    let (envelope, key, _) = prepare_message(&client, &org, &bob_at_org, &bob, &alice.address, b"{\"hi\":1}").await;
    assert!(!key.nonephemeral, "alice has ephemeral keys left");
    assert_eq!(key.public_key, alice.key.public());
    let sent: MessageSent = ok(client
        .post(&url(&org, &Route::SendMessage { address: alice.address.clone() }), Some(&bob_at_org.id), &envelope)
        .await);

    let alice_session = login(&client, &org, &alice).await;
    let list: MessageList = ok(client
        .get(
            &url(&org, &Route::ListMessages { message_type: MessageType::Email, folder_name: None }),
            Some(&alice_session.id),
        )
        .await);
    assert_eq!(list.messages.len(), 1);
    assert_eq!(list.messages[0].message_id, sent.message_id);
    assert_eq!(list.messages[0].sender, bob.address);
    assert!(!list.messages[0].read);

    let stored: StoredEnvelope = ok(client
        .get(&url(&org, &Route::GetMessage { message_id: sent.message_id, update_read: true }), Some(&alice_session.id))
        .await);
    assert_eq!(stored.server.sender, bob.address);
    let secret = alice.secret_for(&stored.sent.message_public_key);
    let opened = stored.open(&bob.key.public(), &alice.key.public(), secret).unwrap();
    assert_eq!(opened, b"{\"hi\":1}");

    org.stop().await;
    net.stop().await;
}

// Every test above runs on SQLite (as written) and on PostgreSQL (`postgres::NAME`).
also_on_postgres!(a_remote_user_sends_and_the_recipient_opens,);
