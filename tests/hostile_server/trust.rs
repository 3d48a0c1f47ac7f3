//! Attacks on trust: the sender's server lies about the sender's keys, and the
//! recipient's gateway must never show the lie as verified mail. Earlier keys come only
//! from a history that passes the pin check (a forged "older key" history is a warning
//! and a trust event); a retired key counts only for mail the server received before
//! the rotation, whatever order the envelopes arrive in; a key lookup that fails leaves
//! the message unshown until it succeeds, then it shows verified.

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use crate::harness::{fronted_pair, Answer, Hostile};
use mail_parser::MessageParser;
use rand_core::OsRng;
use smimp_gateway::backend::account::Account as GatewayAccount;
use smimp_gateway::backend::mailbox::Mailboxes;
use smimp_gateway::backend::trust::trusted_key;
use smimp_gateway::client::ServerClient;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxSecretKey, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::message::{Email, Payload};
use smimp_gateway::smimp::profile::{verify_history, ProfileFields, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;
use smimp_gateway::smimp::wire::{MessageSent, ProfileLength, Route, UserHistory, UserInfoKind, UserPublicKey};

/// Bob's gateway (an account on `net`), with nothing synced yet.
struct Recipient {
    ctx: Context,
    boxes: Mailboxes,
    bob: Arc<GatewayAccount>,
    _dir: TempDir,
}

async fn recipient(servers: &[&dyn Endpoint], net: &TestServer) -> Recipient {
    let dir = TempDir::new("hostile-trust");
    let config = write_gateway_config(&dir, servers, "");
    init_on_gateway(&config, net, "bob").await;
    let ctx = Context::open(&config).await.unwrap();
    let accounts = unlock_accounts(&ctx).await.unwrap();
    let bob = accounts.values().find(|a| a.sender.address.local() == "bob").unwrap().clone();
    let boxes = Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts, 64 << 20);
    Recipient { ctx, boxes, bob, _dir: dir }
}

impl Recipient {
    fn address(&self) -> Address {
        self.bob.sender.address.clone()
    }

    /// One sync of INBOX: every message it shows, in UID order.
    async fn inbox(&self) -> Vec<Vec<u8>> {
        let (_, messages) = self.boxes.snapshot(&self.bob, "INBOX", true).await.unwrap();
        let mut shown = Vec::new();
        for message in messages {
            shown.push(self.boxes.message(&self.bob, "INBOX", message.uid).await.unwrap().to_vec());
        }
        shown
    }

    /// The kinds of the trust events the gateway recorded, newest first.
    async fn events(&self) -> Vec<(String, String)> {
        self.ctx.store.trust_events(20).await.unwrap().into_iter().map(|e| (e.kind, e.detail)).collect()
    }

    /// Pins `address` now (as sending to it or an earlier sync would).
    async fn pin(&self, address: &Address) {
        let server = ServerClient::connect(&self.ctx.discovery, address.domain()).await.unwrap();
        trusted_key(&server, &self.ctx.store, address, now().unix()).await.unwrap();
    }
}

/// The email payload of a message with `subject` and `body`.
pub(crate) fn payload(to: &Address, subject: &str, body: &str) -> Vec<u8> {
    Payload::Email(Box::new(Email {
        to: vec![to.clone()],
        cc: vec![],
        subject: subject.into(),
        thread_id: Id32::random(&mut OsRng),
        reply_to_message_id: None,
        date_sent: now(),
        body: format!("{body}\n"),
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    }))
    .to_bytes()
}

/// `sender` sends one message to `to` through `to`'s server, signing with `sender.key`
/// (a remote login there, checked against the sender's server).
async fn send(client: &Client, server: &TestServer, sender: &Account, to: &Address, subject: &str, body: &str) {
    let session = login(client, server, sender).await;
    let (envelope, _, _) = prepare_message(client, server, &session, sender, to, &payload(to, subject, body)).await;
    let _: MessageSent =
        ok(client.post(&url(server, &Route::SendMessage { address: to.clone() }), Some(&session.id), &envelope).await);
}

/// `account`'s history as its server answers it.
async fn history(client: &Client, server: &TestServer, account: &Address) -> Vec<ProfileRecord> {
    let route = Route::GetUser { address: account.clone(), kind: UserInfoKind::History };
    let answer: UserHistory = ok(client.get(&url(server, &route), None).await);
    answer.history
}

/// `account` rotates its master key to `new` with a record dated `at`, signed by its
/// current key, as `keys rotate` does; returns the account as it signs from now on.
async fn rotate(client: &Client, server: &TestServer, account: &Account, new: MasterKey, at: Timestamp) -> Account {
    let records = history(client, server, &account.address).await;
    let verified = verify_history(&account.address, &records).unwrap();
    let record =
        ProfileRecord::next(verified.latest(), &account.key, new.public(), ProfileFields::default(), at).unwrap();
    let session = login(client, server, account).await;
    let length: ProfileLength = ok(client.post(&url(server, &Route::UpdateProfile), Some(&session.id), &record).await);
    assert_eq!(length.length as usize, records.len() + 1);
    Account {
        address: account.address.clone(),
        key: new,
        nonephemeral: BoxSecretKey::generate(&mut OsRng),
        ephemeral: vec![],
    }
}

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::new().parse(bytes).expect("rendered mail parses")
}

fn verified(bytes: &[u8]) -> bool {
    parse(bytes).header_raw("X-SMIMP-Verified").unwrap_or_default().trim().starts_with("pass")
}

fn subject(bytes: &[u8]) -> String {
    parse(bytes).subject().unwrap_or_default().to_string()
}

/// The text of a message with quoted-printable soft line breaks joined.
fn text(bytes: &[u8]) -> String {
    parse(bytes).body_text(0).unwrap_or_default().replace("=\r\n", "")
}

fn show_all(messages: &[Vec<u8>]) -> String {
    messages.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect::<Vec<_>>().join("\n----\n")
}

/// Waits until the wall clock (whole seconds) is past `t`.
async fn after(t: Timestamp) {
    while now() <= t {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_key_counts_only_for_mail_received_before_the_rotation_whatever_the_order() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let bob_gateway = recipient(&[&org as &dyn Endpoint, &net], &net).await;
    let bob = bob_gateway.address();

    // Mail signed with Alice's first key: one before the rotation, one after its record's time.
    send(&client, &net, &alice, &bob, "before the rotation", "signed by the first key in time").await;
    let rotated_at = now();
    after(rotated_at).await;
    send(&client, &net, &alice, &bob, "after the rotation", "the words a retired key may not show").await;
    let alice = rotate(&client, &org, &alice, MasterKey::generate(&mut OsRng), rotated_at).await;
    send(&client, &net, &alice, &bob, "with the new key", "signed by the current key").await;
    // Bob's gateway already trusts Alice's current key: the history is read only for the older mail.
    bob_gateway.pin(&alice.address).await;

    let shown = bob_gateway.inbox().await;
    assert_eq!(shown.len(), 3, "all three are shown, in some form");
    let by_subject = |s: &str| shown.iter().find(|m| subject(m) == s);
    for good in ["before the rotation", "with the new key"] {
        let message = by_subject(good).unwrap_or_else(|| panic!("{good} is shown: {}", show_all(&shown)));
        assert!(verified(message), "{good}: {}", String::from_utf8_lossy(message));
    }
    let late = shown
        .iter()
        .find(|m| subject(m).starts_with("Unverified message from"))
        .unwrap_or_else(|| panic!("a warning: {}", show_all(&shown)));
    assert!(!verified(late));
    let late = text(late);
    assert!(!late.contains("the words a retired key may not show"), "{late}");
    assert!(late.contains("retired at"), "the warning names the cause: {late}");
    assert!(late.contains("but the server received it later"), "{late}");
    // A second sync (the same messages, a fresh fetch order) changes nothing.
    let again = bob_gateway.inbox().await;
    assert_eq!(again, shown);
    org.stop().await;
    net.stop().await;
}

/// From now on `hostile` answers `address`'s `history` with `records`, and its
/// `public_key` with their last key when `key_too` (else honestly).
fn lie_about_history(hostile: &Hostile, address: &Address, records: Vec<ProfileRecord>, key_too: bool) {
    let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::History };
    let answer = UserHistory { address: address.clone(), history: records.clone() };
    let body = serde_json::to_value(&answer).unwrap();
    hostile.lie_on(&route, move |_| {
        let body = body.clone();
        async move { Answer::json(200, &body) }
    });
    if key_too {
        let last = verify_history(address, &records).unwrap().current_key();
        let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::PublicKey };
        let body = serde_json::to_value(UserPublicKey { address: address.clone(), public_key: last }).unwrap();
        hostile.lie_on(&route, move |_| {
            let body = body.clone();
            async move { Answer::json(200, &body) }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_older_key_history_is_a_warning_and_a_trust_event_never_verified() {
    let (org, net, hostile) = fronted_pair("example.org", Options::default()).await;
    hostile.tell_the_truth();
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let bob_gateway = recipient(&[&hostile as &dyn Endpoint, &net], &net).await;
    let bob = bob_gateway.address();
    // Bob's gateway knows Alice: her one-record history is pinned. She writes once.
    bob_gateway.pin(&alice.address).await;
    send(&client, &net, &alice, &bob, "from the real alice", "signed by the pinned key").await;

    // Her server, now hostile, shows Bob's server a history that is the attacker's key
    // alone, so the attacker logs in there as Alice and delivers ...
    let attacker = MasterKey::generate(&mut OsRng);
    let forged_first = ProfileRecord::initial(&attacker, &alice.address, ProfileFields::default(), now());
    lie_about_history(&hostile, &alice.address, vec![forged_first.clone()], true);
    let impostor = Account {
        address: alice.address.clone(),
        key: attacker,
        nonephemeral: BoxSecretKey::generate(&mut OsRng),
        ephemeral: vec![],
    };
    send(&client, &net, &impostor, &bob, "from the attacker", "the attacker's words").await;
    // ... then answers `public_key` honestly and `history` with the attacker's key as an
    // "older key" rotated to Alice's real one: it verifies on its own and ends at the pin.
    hostile.tell_the_truth();
    let first_only = verify_history(&alice.address, std::slice::from_ref(&forged_first)).unwrap();
    let forged_rotation =
        ProfileRecord::next(first_only.latest(), &impostor.key, alice.key.public(), ProfileFields::default(), now())
            .unwrap();
    lie_about_history(&hostile, &alice.address, vec![forged_first, forged_rotation], false);

    let shown = bob_gateway.inbox().await;
    assert_eq!(shown.len(), 2, "{}", show_all(&shown));
    let real = shown.iter().find(|m| subject(m) == "from the real alice").expect("the genuine message is shown");
    assert!(verified(real), "mail signed by the pinned key still verifies");
    let warning = shown
        .iter()
        .find(|m| subject(m).starts_with("Unverified message from"))
        .unwrap_or_else(|| panic!("the attacker's message is a warning: {}", show_all(&shown)));
    assert!(!verified(warning), "{}", String::from_utf8_lossy(warning));
    let reason = text(warning);
    assert!(reason.contains(&format!("it is signed with the key {}", impostor.key.public())), "{reason}");
    assert!(reason.contains("history was replaced"), "the warning names the cause: {reason}");
    assert!(shown.iter().all(|m| !String::from_utf8_lossy(m).contains("the attacker's words")));
    let history_route = Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::History };
    assert!(hostile.seen().iter().any(|s| s.lied && s.path == history_route.path()), "the forged history was read");

    let events = bob_gateway.events().await;
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("replaced"), "{events:?}");
    // The pin did not move to the forged history.
    let pin = bob_gateway.ctx.store.pin(&alice.address).await.unwrap().unwrap();
    assert_eq!((pin.first_key, pin.length), (alice.key.public(), 1));
    drop(hostile);
    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_whose_key_lookup_fails_waits_unshown_then_shows_verified() {
    let (org, net, hostile) = fronted_pair("example.org", Options::default()).await;
    hostile.tell_the_truth();
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let bob_gateway = recipient(&[&hostile as &dyn Endpoint, &net], &net).await;
    let bob = bob_gateway.address();
    send(&client, &net, &alice, &bob, "while the lookup failed", "the words only a verified sender may show").await;

    // Discovery is answered; the key lookup on Alice's server is not (503 on both routes).
    for kind in [UserInfoKind::PublicKey, UserInfoKind::History] {
        let route = Route::GetUser { address: alice.address.clone(), kind };
        hostile.lie_on(&route, |_| async { Answer::error(503, "unavailable") });
    }
    for _ in 0..2 {
        let shown = bob_gateway.inbox().await;
        assert!(shown.is_empty(), "shown while its sender cannot be checked: {}", show_all(&shown));
    }
    assert!(hostile.seen().iter().any(|s| s.lied && s.status == 503), "the lookup met the lie: {:?}", hostile.seen());
    assert!(bob_gateway.events().await.is_empty(), "no verdict was recorded: {:?}", bob_gateway.events().await);

    // Alice's pin is now known, and the lookup fails again mid-way: still nothing shown.
    hostile.tell_the_truth();
    bob_gateway.pin(&alice.address).await;
    let route = Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::PublicKey };
    hostile.lie_on(&route, |_| async { Answer::error(503, "unavailable") });
    assert!(bob_gateway.inbox().await.is_empty());

    // The server answers again: the message appears, verified.
    hostile.tell_the_truth();
    let shown = bob_gateway.inbox().await;
    assert_eq!(shown.len(), 1, "{}", show_all(&shown));
    assert_eq!(subject(&shown[0]), "while the lookup failed");
    assert!(verified(&shown[0]), "{}", show_all(&shown));
    assert!(text(&shown[0]).contains("the words only a verified sender may show"));
    drop(hostile);
    org.stop().await;
    net.stop().await;
}
