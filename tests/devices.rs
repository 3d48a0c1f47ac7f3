//! A second machine for one account (docs/devices.md): two gateways with separate
//! data directories against a real reference server over real TLS. The witness flow
//! end to end, mail to the account read on both machines, and a hostile server that
//! swaps the new device's key, replays an old approval or withholds the approval.

mod common;
#[path = "hostile_server/harness.rs"]
mod harness;

use std::path::PathBuf;
use std::time::Duration;

use axum::http::Method;
use common::*;
use harness::{Answer, Hostile};
use rand_core::OsRng;
use smimp_gateway::gateway::context::{CommandError, Context};
use smimp_gateway::gateway::devices::{self, DeviceCommandError};
use smimp_gateway::gateway::pins;
use smimp_gateway::keystore::Keystore;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::BoxSecretKey;
use smimp_gateway::smimp::device::DeviceError;
use smimp_gateway::smimp::message::{Email, Payload};
use smimp_gateway::smimp::wire::{DenyReason, Route};

const POLL: Duration = Duration::from_millis(100);

/// One machine: its directory (kept while the test runs) and its configuration.
struct Machine {
    _dir: TempDir,
    config: PathBuf,
}

impl Machine {
    fn new(name: &str, endpoint: &dyn Endpoint) -> Self {
        let dir = TempDir::new(name);
        let config = write_gateway_config(&dir, &[endpoint], "");
        Self { _dir: dir, config }
    }

    async fn ctx(&self) -> Context {
        Context::open(&self.config).await.unwrap()
    }

    async fn keystore(&self, email: &str) -> Keystore {
        let ctx = self.ctx().await;
        let address = Address::from_email(email).unwrap();
        Keystore::load(&ctx.config.keystore_path(&address), &ctx.passphrase).unwrap()
    }
}

/// A sending account `bob` on `server`.
async fn bob(server: &TestServer) -> Account {
    create_account(&Client::new(&[server]), server, "bob", 1).await
}

/// Sends a plain email from `bob` to `to`.
async fn send_to(server: &TestServer, bob: &Account, to: &Address, body: &str) {
    let client = Client::new(&[server]);
    let email = Email {
        to: vec![to.clone()],
        cc: vec![],
        subject: "for every device".into(),
        thread_id: smimp_gateway::smimp::encoding::Id32::random(&mut OsRng),
        reply_to_message_id: None,
        date_sent: now(),
        body: body.into(),
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    };
    let session = login(&client, server, bob).await;
    let payload = Payload::Email(Box::new(email)).to_bytes();
    let (envelope, _, _) = prepare_message(&client, server, &session, bob, to, &payload).await;
    let sent =
        client.post(&url(server, &Route::SendMessage { address: to.clone() }), Some(&session.id), &envelope).await;
    assert_eq!(sent.0, 200, "{}", sent.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn witness_flow_enrolls_a_second_machine_that_reads_the_same_mail() {
    let server = start_one(Options::default()).await;
    let desktop = Machine::new("devices-desktop", &server);
    let laptop = Machine::new("devices-laptop", &server);
    let alice = init_on_gateway(&desktop.config, &server, "alice").await;
    let email = alice.address.to_email();

    let requested = devices::request(&laptop.ctx().await, &email, "laptop", None).await.unwrap();
    let pending = devices::pending(&desktop.ctx().await, &email).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].request.name, "laptop");
    assert_eq!(pending[0].code, requested.code, "both machines show the same witness code");
    devices::approve(&desktop.ctx().await, &email, &pending[0].short_id, Some(requested.code.as_str())).await.unwrap();
    assert!(devices::pending(&desktop.ctx().await, &email).await.unwrap().is_empty(), "answered requests are gone");

    let enrolled =
        devices::await_approval(&laptop.ctx().await, requested, Duration::from_secs(20), POLL).await.unwrap();
    let (on_desktop, on_laptop) = (desktop.keystore(&email).await, laptop.keystore(&email).await);
    assert_eq!(enrolled.master_key, on_desktop.master().public());
    assert_eq!(on_laptop.master().public(), on_desktop.master().public());
    assert_eq!(*on_laptop.storage_key().to_bytes(), *on_desktop.storage_key().to_bytes());
    assert_eq!(on_laptop.message_keys().len(), on_desktop.message_keys().len());
    assert_eq!(on_laptop.device().unwrap().name, "laptop");
    let names: Vec<&str> = on_desktop.devices().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(on_laptop.devices(), on_desktop.devices(), "both machines know the same device list");
    assert!(on_laptop.verify_local_password(&enrolled.account.password));

    send_to(&server, &bob(&server).await, &alice.address, "read me on both machines").await;
    for machine in [&desktop, &laptop] {
        let text = first_in_inbox(&machine.config).await;
        assert!(text.contains("read me on both machines"), "{text}");
    }

    // A mail client's Sent copy stored through the desktop shows in the laptop's Sent.
    let sent = b"From: <alice@example.org>\r\nTo: <bob@example.org>\r\nSubject: sent from the desktop\r\n\
Message-ID: <sent.1@example.org>\r\n\r\nwritten on the desktop\r\n"
        .to_vec();
    let (boxes, account) = mailboxes(&desktop.config).await;
    boxes.append(&account, "Sent", &Default::default(), None, sent).await.unwrap();
    let on_laptop = messages(&laptop.config, "Sent").await;
    assert_eq!(on_laptop.len(), 1, "{on_laptop:?}");
    assert!(on_laptop[0].contains("written on the desktop"), "{}", on_laptop[0]);
    server.stop().await;
}

/// A request to join `email` from `machine` under `name`.
async fn ask(machine: &Machine, email: &str, name: &str) -> devices::Requested {
    devices::request(&machine.ctx().await, email, name, None).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_swaps_the_device_key_changes_the_witness_code() {
    let server = start_one(Options::default()).await;
    let hostile = Hostile::start(&server).await;
    let desktop = Machine::new("devices-swap-desktop", &hostile);
    let laptop = Machine::new("devices-swap-laptop", &hostile);
    let alice = init_on_gateway(&desktop.config, &server, "alice").await;
    let email = alice.address.to_email();
    let requested = ask(&laptop, &email, "laptop").await;

    // The server shows the enrolled machine its own box key in place of the laptop's.
    let swapped = BoxSecretKey::generate(&mut OsRng).public().to_hex();
    hostile.lie(Method::GET, "0.1/x-devices/pending", move |call| {
        let swapped = swapped.clone();
        async move {
            let mut body = call.forward().await.value();
            for request in body["requests"].as_array_mut().unwrap() {
                request["device"]["box_key"] = swapped.clone().into();
            }
            Answer::json(200, &body)
        }
    });
    let pending = devices::pending(&desktop.ctx().await, &email).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_ne!(pending[0].code, requested.code, "the swapped key shows another code");
    let refused = devices::approve(&desktop.ctx().await, &email, &pending[0].short_id, Some(requested.code.as_str()))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, CommandError::Device(DeviceCommandError::CodeMismatch { .. })),
        "approving against the laptop's code is refused: {refused}"
    );
    assert!(refused.to_string().contains("swapped"), "{refused}");
    // Nothing was approved: the laptop is still waiting.
    let waited = devices::await_approval(&laptop.ctx().await, requested, Duration::from_millis(500), POLL).await;
    assert!(matches!(waited, Err(CommandError::Device(DeviceCommandError::Withheld { .. }))), "{waited:?}");
    drop(hostile);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_approval_is_refused_and_a_withheld_one_times_out() {
    let server = start_one(Options::default()).await;
    let hostile = Hostile::start(&server).await;
    let desktop = Machine::new("devices-replay-desktop", &hostile);
    let laptop = Machine::new("devices-replay-laptop", &hostile);
    let tablet = Machine::new("devices-replay-tablet", &hostile);
    let alice = init_on_gateway(&desktop.config, &server, "alice").await;
    let email = alice.address.to_email();

    // A first, honest enrollment leaves an approval the server could keep.
    let first = ask(&laptop, &email, "laptop").await;
    let first_id = first.request_id;
    let short = devices::pending(&desktop.ctx().await, &email).await.unwrap()[0].short_id.clone();
    devices::approve(&desktop.ctx().await, &email, &short, Some(first.code.as_str())).await.unwrap();
    devices::await_approval(&laptop.ctx().await, first, Duration::from_secs(20), POLL).await.unwrap();
    let client = Client::new(&[&server]);
    let old = client.get(&url(&server, &Route::DeviceStatus { request_id: first_id }), None).await;
    assert_eq!(old.0, 200, "{}", old.1);
    let old = old.1;

    // The tablet's request: the server withholds the answer, then replays the old one.
    let second = ask(&tablet, &email, "tablet").await;
    let status = Route::DeviceStatus { request_id: second.request_id };
    hostile.lie_on(&status, |_| async { Answer::json(200, &serde_json::json!({ "state": "pending" })) });
    let short = devices::pending(&desktop.ctx().await, &email).await.unwrap()[0].short_id.clone();
    devices::approve(&desktop.ctx().await, &email, &short, Some(second.code.as_str())).await.unwrap();
    let withheld = devices::await_approval(&tablet.ctx().await, second, Duration::from_millis(700), POLL).await;
    let err = withheld.unwrap_err();
    assert!(matches!(err, CommandError::Device(DeviceCommandError::Withheld { .. })), "{err}");
    assert!(err.to_string().contains("no approval arrived"), "{err}");

    let third = ask(&tablet, &email, "tablet-2").await;
    hostile.lie_on(&Route::DeviceStatus { request_id: third.request_id }, move |_| {
        let old = old.clone();
        async move { Answer::json(200, &old) }
    });
    let replayed = devices::await_approval(&tablet.ctx().await, third, Duration::from_secs(5), POLL).await;
    let err = replayed.unwrap_err();
    assert!(
        matches!(err, CommandError::Device(DeviceCommandError::BadApproval(DeviceError::BadSignature))),
        "an approval for another request is refused: {err}"
    );
    let ctx = tablet.ctx().await;
    assert!(!ctx.config.keystore_path(&alice.address).exists(), "nothing was written");
    assert!(ctx.store.accounts().await.unwrap().is_empty());
    drop(hostile);
    server.stop().await;
}

/// Requests with `pin` from a fresh machine and waits for the running gateway's answer.
async fn request_with_pin(
    name: &str,
    endpoint: &dyn Endpoint,
    email: &str,
    pin: &str,
) -> (Machine, Result<devices::Enrolled, CommandError>) {
    let machine = Machine::new(&format!("devices-pin-{name}"), endpoint);
    let requested = devices::request(&machine.ctx().await, email, name, Some(pin)).await.unwrap();
    let answer = devices::await_approval(&machine.ctx().await, requested, Duration::from_secs(20), POLL).await;
    (machine, answer)
}

fn denied_for(result: &Result<devices::Enrolled, CommandError>, reason: DenyReason, words: &str) {
    match result {
        Err(CommandError::Device(DeviceCommandError::Denied(Some(found)))) => {
            assert_eq!(*found, reason);
            let text = result.as_ref().unwrap_err().to_string();
            assert!(text.contains(words), "{text}");
        }
        other => panic!("expected a denial for {reason:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_time_pin_is_approved_by_the_running_gateway_once_and_refused_when_wrong_used_or_expired() {
    let server = start_one(Options::default()).await;
    let desktop = Machine::new("devices-pin-desktop", &server);
    let alice = init_on_gateway(&desktop.config, &server, "alice").await;
    let email = alice.address.to_email();
    let running = start_gateway(&desktop.config).await;

    let (pin, _) = pins::issue(&desktop.ctx().await, &email, pins::PIN_LIFETIME).await.unwrap();
    let (laptop, enrolled) = request_with_pin("laptop", &server, &email, &pin).await;
    let enrolled = enrolled.unwrap();
    assert_eq!(enrolled.master_key, desktop.keystore(&email).await.master().public());
    assert_eq!(laptop.keystore(&email).await.devices().len(), 2);

    let (_, reused) = request_with_pin("tablet", &server, &email, &pin).await;
    denied_for(&reused, DenyReason::UsedPin, "already used");
    let (_, wrong) = request_with_pin("phone", &server, &email, "AAAA-BBBB-CCCC-DDDD").await;
    denied_for(&wrong, DenyReason::WrongPin, "wrong");
    let (short, _) = pins::issue(&desktop.ctx().await, &email, Duration::from_secs(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, expired) = request_with_pin("watch", &server, &email, &short).await;
    denied_for(&expired, DenyReason::ExpiredPin, "expired");
    running.stop().await;
    server.stop().await;
}

type Boxes = smimp_gateway::backend::mailbox::Mailboxes;

/// The mailbox view of `config`'s (only) account.
async fn mailboxes(config: &std::path::Path) -> (Boxes, std::sync::Arc<smimp_gateway::backend::account::Account>) {
    let ctx = Context::open(config).await.unwrap();
    let accounts = smimp_gateway::gateway::unlock_accounts(&ctx).await.unwrap();
    let account = accounts.values().next().unwrap().clone();
    (Boxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts, 64 << 20), account)
}

/// Every message of the INBOX of `config`'s account, as its mail client reads them.
async fn inbox(config: &std::path::Path) -> Vec<String> {
    messages(config, "INBOX").await
}

/// Every message of one mailbox of `config`'s account.
async fn messages(config: &std::path::Path, mailbox: &str) -> Vec<String> {
    let (boxes, account) = mailboxes(config).await;
    let (_, messages) = boxes.snapshot(&account, mailbox, true).await.unwrap();
    let mut texts = Vec::new();
    for message in messages {
        let bytes = boxes.message(&account, mailbox, message.uid).await.unwrap();
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    texts
}

#[tokio::test(flavor = "multi_thread")]
async fn message_keys_topped_up_on_one_machine_open_mail_on_the_other() {
    let server = start_one(Options::default()).await;
    let desktop = Machine::new("devices-keys-desktop", &server);
    let laptop = Machine::new("devices-keys-laptop", &server);
    let alice = init_on_gateway(&desktop.config, &server, "alice").await;
    let email = alice.address.to_email();
    let requested = devices::request(&laptop.ctx().await, &email, "laptop", None).await.unwrap();
    let short = devices::pending(&desktop.ctx().await, &email).await.unwrap()[0].short_id.clone();
    devices::approve(&desktop.ctx().await, &email, &short, Some(requested.code.as_str())).await.unwrap();
    devices::await_approval(&laptop.ctx().await, requested, Duration::from_secs(20), POLL).await.unwrap();

    // Two messages use up the ephemeral keys both machines know; the desktop tops up.
    let bob = bob(&server).await;
    send_to(&server, &bob, &alice.address, "first, to a key both know").await;
    send_to(&server, &bob, &alice.address, "second, to a key both know").await;
    let known = laptop.keystore(&email).await.message_keys().len();
    let added = smimp_gateway::gateway::enroll::replenish(&desktop.ctx().await, &email, now().unix()).await.unwrap();
    assert!(added > 0);
    send_to(&server, &bob, &alice.address, "third, to a key only the desktop made").await;

    // The laptop's key upkeep picks the shared keys up before it reads the mail.
    let ctx = laptop.ctx().await;
    let path = ctx.config.keystore_path(&alice.address);
    let picked = smimp_gateway::backend::devices::pick_up_shares(
        &ctx.discovery,
        &path,
        &ctx.passphrase,
        ctx.config.keystore.kdf(),
    )
    .await
    .unwrap();
    assert_eq!(picked, added);
    assert_eq!(laptop.keystore(&email).await.message_keys().len(), known + added);
    let texts = inbox(&laptop.config).await;
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("third, to a key only the desktop made")), "{texts:?}");
    assert!(texts.iter().all(|t| !t.contains("does not hold")), "{texts:?}");
    server.stop().await;
}

/// Enrolls `machine` under `name` through the witness flow, approved on `by`.
async fn enroll(machine: &Machine, by: &Machine, email: &str, name: &str) {
    let requested = devices::request(&machine.ctx().await, email, name, None).await.unwrap();
    let pending = devices::pending(&by.ctx().await, email).await.unwrap();
    let short = pending.iter().find(|p| p.request.name == name).unwrap().short_id.clone();
    devices::approve(&by.ctx().await, email, &short, Some(requested.code.as_str())).await.unwrap();
    devices::await_approval(&machine.ctx().await, requested, Duration::from_secs(20), POLL).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_device_cannot_log_in_or_read_new_mail_while_the_others_carry_on() {
    let server = start_one(Options::default()).await;
    let desktop = Machine::new("devices-revoke-desktop", &server);
    let laptop = Machine::new("devices-revoke-laptop", &server);
    let lost = Machine::new("devices-revoke-lost", &server);
    let alice = init_on_gateway(&desktop.config, &server, "alice").await;
    let email = alice.address.to_email();
    enroll(&laptop, &desktop, &email, "laptop").await;
    enroll(&lost, &desktop, &email, "lost phone").await;
    let listed = devices::list(&desktop.ctx().await, &email).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|v| v.entry.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let phone = listed.iter().find(|v| v.entry.name == "lost phone").unwrap();
    assert_eq!(
        phone.entry.enrolled_by.as_deref(),
        listed.iter().find(|v| v.this_machine).map(|v| v.entry.name.as_str())
    );
    let old_master = desktop.keystore(&email).await.master().public();

    let revoked = devices::revoke(&desktop.ctx().await, &email, "lost phone").await.unwrap();
    assert_eq!(revoked.shared_with, 1, "only the laptop gets the new secrets");
    assert_ne!(revoked.new_master, old_master);
    let history = Client::new(&[&server])
        .get(
            &url(
                &server,
                &Route::GetUser {
                    address: alice.address.clone(),
                    kind: smimp_gateway::smimp::wire::UserInfoKind::History,
                },
            ),
            None,
        )
        .await;
    assert_eq!(history.1["history"].as_array().unwrap().len(), 2, "the rotation is a record of the history");

    // The laptop picks the new secrets up; the lost phone finds nothing for it.
    let pick = |machine: &Machine| {
        let config = machine.config.clone();
        async move {
            let ctx = Context::open(&config).await.unwrap();
            let path = ctx.config.keystore_path(&Address::from_email("alice@example.org").unwrap());
            smimp_gateway::backend::devices::pick_up_shares(
                &ctx.discovery,
                &path,
                &ctx.passphrase,
                ctx.config.keystore.kdf(),
            )
            .await
            .unwrap()
        }
    };
    assert!(pick(&laptop).await > 0);
    assert_eq!(pick(&lost).await, 0);
    assert_eq!(laptop.keystore(&email).await.master().public(), revoked.new_master);
    assert_eq!(lost.keystore(&email).await.master().public(), old_master);

    // The lost phone cannot log in any more: its master key is not the account's.
    let refused = devices::pending(&lost.ctx().await, &email).await.unwrap_err();
    assert!(refused.to_string().contains("never held"), "{refused}");
    assert!(devices::pending(&laptop.ctx().await, &email).await.is_ok(), "the laptop logs in with the new key");

    // New mail is sealed to keys made after the revocation: the laptop and the desktop
    // read it, the lost phone holds none of those keys.
    let bob = bob(&server).await;
    send_to(&server, &bob, &alice.address, "after the revocation").await;
    for machine in [&desktop, &laptop] {
        let texts = inbox(&machine.config).await;
        assert!(texts.iter().any(|t| t.contains("after the revocation")), "{texts:?}");
    }
    let on_laptop = laptop.keystore(&email).await;
    let on_lost = lost.keystore(&email).await;
    let new_keys: Vec<_> = on_laptop.message_keys().iter().filter(|k| k.retired_at().is_none()).collect();
    assert!(!new_keys.is_empty());
    assert!(new_keys.iter().all(|k| on_lost.secret_for(k.public()).is_none()), "the lost phone has no new key");
    server.stop().await;
}
