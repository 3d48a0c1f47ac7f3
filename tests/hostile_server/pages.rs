//! The sync by the page (`x-envelopes`, docs/protocol.md §8.30) against the sync one
//! `GET` at a time: bob's two gateways on one account, one reaching a server that offers
//! the pages, the other a server that does not list them (an older server), must show
//! the very same mailbox — UIDs, flags, bytes and verdicts — and a server that tampers
//! with an envelope gets the same warning on both paths: a page is a transport, never a
//! verdict.

use std::path::Path;
use std::sync::Arc;

use axum::http::Method;
use serde_json::Value;
use smimp_gateway::backend::account::Account as GatewayAccount;
use smimp_gateway::backend::mailbox::Mailboxes;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::wire::{MessageSent, Route};

use crate::common::*;
use crate::harness::{fronted_pair, Answer, Hostile};
use crate::trust::payload;

/// One of bob's gateways, with nothing synced yet.
struct Device {
    boxes: Mailboxes,
    bob: Arc<GatewayAccount>,
}

impl Device {
    async fn open(config: &Path) -> Device {
        let ctx = Context::open(config).await.unwrap();
        let accounts = unlock_accounts(&ctx).await.unwrap();
        let bob = accounts.values().next().unwrap().clone();
        Device { boxes: Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts, 64 << 20), bob }
    }

    /// One sync of INBOX: (UID, flags, bytes) of every message, in UID order.
    async fn inbox(&self) -> Vec<(u32, String, Vec<u8>)> {
        let (_, messages) = self.boxes.snapshot(&self.bob, "INBOX", true).await.unwrap();
        let mut shown = Vec::new();
        for message in messages {
            let bytes = self.boxes.message(&self.bob, "INBOX", message.uid).await.unwrap().to_vec();
            shown.push((message.uid.get(), format!("{:?}", message.flags), bytes));
        }
        shown
    }
}

/// Alice (on `org`) sends bob (on `net`) a message; its id.
async fn send(client: &Client, net: &TestServer, alice: &Account, bob: &Address, subject: &str) -> Id32 {
    let session = login(client, net, alice).await;
    let (envelope, _, _) =
        prepare_message(client, net, &session, alice, bob, &payload(bob, subject, &format!("the text of {subject}")))
            .await;
    let sent: MessageSent =
        ok(client.post(&url(net, &Route::SendMessage { address: bob.clone() }), Some(&session.id), &envelope).await);
    sent.message_id
}

/// Flips the last hex digit of an envelope's signature when it is the message `target`.
fn tamper(envelope: &mut Value, target: &str) {
    if envelope["message_id"] == target {
        let signature = envelope["message_signature"].as_str().unwrap().to_string();
        let flipped = if signature.ends_with('0') { "1" } else { "0" };
        envelope["message_signature"] = format!("{}{flipped}", &signature[..signature.len() - 1]).into();
    }
}

/// From now on `proxy` hands out message `target` with a broken signature, alone and
/// in pages.
fn tamper_with(proxy: &Hostile, target: Id32) {
    let target = target.to_hex();
    let alone = target.clone();
    proxy.lie(Method::GET, format!("0.1/message/{target}"), move |call| {
        let target = alone.clone();
        async move {
            let mut envelope = call.forward().await.value();
            tamper(&mut envelope, &target);
            Answer::json(200, &envelope)
        }
    });
    proxy.lie(Method::GET, "0.1/x-envelopes/", move |call| {
        let target = target.clone();
        async move {
            let answer = call.forward().await;
            let mut page = answer.value();
            for item in page["envelopes"].as_array_mut().into_iter().flatten() {
                tamper(&mut item["envelope"], &target);
            }
            Answer::json(answer.status, &page)
        }
    });
}

/// `proxy` answers `server_information` without `x-envelopes`, as a server that does
/// not offer the pages.
fn without_pages(proxy: &Hostile) {
    proxy.lie(Method::GET, "0.1/server_information", |call| async move {
        let mut information = call.forward().await.value();
        information["apis"].as_array_mut().unwrap().retain(|api| api != "x-envelopes");
        Answer::json(200, &information)
    });
}

/// Attacker: bob's server tampers with one envelope. Bob has two gateways (copies of one
/// data directory): one reaches the server through a proxy that offers the pages, the
/// other through one that hides them. Both show the same mailbox, byte for byte, with
/// the tampered message a warning on both; the paged one fetched no message by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paged_sync_shows_exactly_what_the_one_by_one_sync_shows() {
    let (org, net, one_by_one) = fronted_pair("example.net", Options::default()).await;
    let paged = Hostile::start(&net).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 4).await;
    let paged_dir = TempDir::new("pages-paged");
    let paged_config = write_gateway_config(&paged_dir, &[&org, &paged], "");
    let bob = init_on_gateway(&paged_config, &net, "bob").await.address;
    // The second device: the same keystore and database, reaching the server another way.
    let single_dir = TempDir::new("pages-single");
    let single_config = write_gateway_config(&single_dir, &[&org, &one_by_one], "");
    let copied = std::process::Command::new("cp").arg("-r").arg(paged_dir.0.join("data")).arg(&single_dir.0).status();
    assert!(copied.unwrap().success());

    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(send(&client, &net, &alice, &bob, &format!("message {n}")).await);
    }
    tamper_with(&paged, ids[3]);
    tamper_with(&one_by_one, ids[3]);
    without_pages(&one_by_one);

    let by_pages = Device::open(&paged_config).await.inbox().await;
    let by_message = Device::open(&single_config).await.inbox().await;
    assert_eq!(by_pages.len(), 7, "every message is shown");
    assert_eq!(by_pages, by_message, "both paths show the same UIDs, flags and bytes");
    for (n, (_, _, bytes)) in by_pages.iter().enumerate() {
        let text = String::from_utf8_lossy(bytes);
        if n == 3 {
            assert!(text.contains("the signature") || text.contains("not signed"), "a warning: {text}");
            assert!(!text.contains("the text of message 3"), "the tampered content is never shown: {text}");
        } else {
            assert!(text.contains(&format!("the text of message {n}")), "{text}");
            assert!(text.contains("X-SMIMP-Verified: pass"), "{text}");
        }
    }
    assert!(paged.count(&Method::GET, "0.1/x-envelopes/") >= 1, "the pages were used");
    assert_eq!(paged.count(&Method::GET, "0.1/message/"), 0, "no message was fetched alone");
    assert_eq!(one_by_one.count(&Method::GET, "0.1/x-envelopes/"), 0, "no page was asked of a server without them");
    assert_eq!(one_by_one.count(&Method::GET, "0.1/message/"), 7, "each message was fetched alone");
    org.stop().await;
    net.stop().await;
}

/// A message the pages miss (one moved into the folder keeps its older position, so pages
/// read from a later one pass it by) is still fetched: the listing decides what is new,
/// and the rest comes one `GET` at a time, after the pages (so with a later UID, as a
/// message moved in gets). Simulated by a server whose pages leave one message out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_pages_leave_out_is_fetched_by_itself() {
    let (org, net, proxy) = fronted_pair("example.net", Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 4).await;
    let dir = TempDir::new("pages-missing");
    let config = write_gateway_config(&dir, &[&org, &proxy], "");
    let bob = init_on_gateway(&config, &net, "bob").await.address;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(send(&client, &net, &alice, &bob, &format!("message {n}")).await);
    }
    let left_out = ids[1].to_hex();
    proxy.lie(Method::GET, "0.1/x-envelopes/", move |call| {
        let left_out = left_out.clone();
        async move {
            let answer = call.forward().await;
            let mut page = answer.value();
            page["envelopes"].as_array_mut().unwrap().retain(|item| item["envelope"]["message_id"] != left_out);
            Answer::json(answer.status, &page)
        }
    });
    let shown = Device::open(&config).await.inbox().await;
    assert_eq!(shown.len(), 3);
    for n in 0..3 {
        let text = format!("the text of message {n}");
        let found = shown.iter().filter(|(_, _, bytes)| String::from_utf8_lossy(bytes).contains(&text)).count();
        assert_eq!(found, 1, "message {n} is shown once, verified");
    }
    assert_eq!(proxy.count(&Method::GET, "0.1/message/"), 1, "only the left-out message was fetched alone");
    org.stop().await;
    net.stop().await;
}
