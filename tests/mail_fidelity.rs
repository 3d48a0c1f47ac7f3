//! The message arrives as it was written: each message of fixtures/fidelity/ is
//! submitted over real SMTP to Alice's gateway and read over real IMAP from Bob's
//! gateway (two gateways, two SMIMP servers, all on loopback with real TLS). What Bob's
//! client reads, without the one field Bob's gateway adds (`X-SMIMP-Verified`), hashes
//! (SHA-256) to what Alice's client submitted without the fields her gateway strips (Bcc
//! and trace fields) — and the S/MIME signature still verifies with openssl. Threading
//! works both ways: a legacy client's reply that names the original Message-ID answers
//! the SMIMP message, and an SMIMP-native reply names, in its In-Reply-To, the
//! Message-ID the legacy client knows.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::imap_client::gateway_login;
use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::AsyncTransport;
use rand_core::OsRng;
use smimp_gateway::backend::inbound::{open_and_render, SenderKeys, SenderTrust};
use smimp_gateway::client::{ServerClient, SessionClient};
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::enroll::Initialised;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxSecretKey, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::message::{Email, MessageType, Payload};
use smimp_gateway::smimp::wire::Route;

/// The fields the sender's gateway strips (src/mime/original.rs, docs/protocol.md §7.1),
/// spelled out here so the test does not take them from the code under test.
const STRIPPED: [&str; 5] = ["bcc", "resent-bcc", "received", "return-path", "x-originating-ip"];

/// The one field the recipient's gateway adds to a message that has a Message-ID.
const ADDED: [&str; 1] = ["x-smimp-verified"];

const FIXTURES: [&str; 5] =
    ["thunderbird-html-inline-image", "outlook-alternative-related", "list-headers", "signed", "leading-dot"];

/// One account's gateway.
struct Side {
    config: PathBuf,
    login: Initialised,
    running: TestGateway,
    _dir: TempDir,
}

/// Alice's gateway (example.org) and Bob's (example.net), each with its own account.
async fn two_gateways(org: &TestServer, net: &TestServer) -> (Side, Side) {
    let mut sides = Vec::new();
    for (server, local) in [(org, "alice"), (net, "bob")] {
        let dir = TempDir::new(&format!("fidelity-{local}"));
        let smtp = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";
        let config = write_gateway_config(&dir, &[org, net], smtp);
        let login = init_on_gateway(&config, server, local).await;
        let running = start_gateway(&config).await;
        sides.push(Side { config, login, running, _dir: dir });
    }
    let bob = sides.pop().unwrap();
    (sides.pop().unwrap(), bob)
}

/// Submits `raw` as it is over SMTP (STARTTLS, AUTH) from `from` to `to`. lettre ends
/// DATA with `CRLF . CRLF` after the bytes it is given, so the message's own final CRLF
/// is left to that.
async fn submit(side: &Side, from: &str, to: &str, raw: &[u8]) {
    let mailer = gateway_mailer(&side.running, &side.login, Mechanism::Plain);
    let envelope = lettre::address::Envelope::new(Some(from.parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
    let data = raw.strip_suffix(b"\r\n").expect("fixtures end with CRLF");
    mailer.send_raw(&envelope, data).await.unwrap();
}

/// Every message in the INBOX over IMAP (implicit TLS), once there are `count`.
async fn inbox(side: &Side, count: usize) -> Vec<Vec<u8>> {
    eventually("messages in the INBOX over IMAP", async || {
        let mut client = gateway_login(&side.running, &side.login.username, &side.login.password).await;
        let selected = client.cmd("s", "SELECT INBOX").await;
        let exists = selected
            .iter()
            .find_map(|l| l.strip_prefix("* ").and_then(|l| l.strip_suffix(" EXISTS")))
            .and_then(|n| n.parse::<usize>().ok())?;
        if exists < count {
            return None;
        }
        let fetched = client.cmd("f", "FETCH 1:* (BODY.PEEK[])").await;
        let bodies: Vec<Vec<u8>> = fetched.iter().filter(|l| l.starts_with("* ")).map(|l| literal(l)).collect();
        Some(bodies)
    })
    .await
}

/// The literal of a one-literal FETCH line (`* n FETCH (BODY[] {len}\r\n…)`).
fn literal(line: &str) -> Vec<u8> {
    let open = line.find('{').expect("a literal");
    let close = open + line[open..].find("}\r\n").expect("a literal's length");
    let length: usize = line[open + 1..close].parse().unwrap();
    line.as_bytes()[close + 3..close + 3 + length].to_vec()
}

/// `raw` without the header fields named in `names` (any case, folded lines included):
/// written here, independently of the gateway's own code.
fn without_fields(raw: &[u8], names: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut dropping = false;
    let mut rest = raw;
    while !rest.is_empty() {
        let end = rest.windows(2).position(|w| w == b"\r\n").map_or(rest.len(), |i| i + 2);
        let (line, after) = rest.split_at(end);
        if line == b"\r\n" {
            out.extend_from_slice(rest);
            break;
        }
        if !matches!(line[0], b' ' | b'\t') {
            let name = line.split(|&b| b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).trim().to_ascii_lowercase();
            dropping = names.contains(&name.as_str()) || name.starts_with("x-smimp-");
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        rest = after;
    }
    out
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// The value of the first header field `name` (unfolded), if any.
fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ").replace("\r\n\t", " ");
    head.lines().find_map(|line| {
        let (field, value) = line.split_once(':')?;
        field.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fidelity").join(format!("{name}.eml"));
    std::fs::read(path).unwrap()
}

/// Whether openssl accepts the S/MIME signature of `message` (signed by signer.pem).
fn signature_verifies(message: &[u8], dir: &TempDir) -> bool {
    let path = dir.0.join("arrived.eml");
    std::fs::write(&path, message).unwrap();
    let ca = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fidelity/signer.pem");
    let status = std::process::Command::new("openssl")
        .args(["smime", "-verify", "-purpose", "any", "-out", "/dev/null", "-CAfile"])
        .arg(ca)
        .arg("-in")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs (Debian's openssl package)");
    status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_arrives_byte_for_byte_but_the_stripped_and_added_fields() {
    let (org, net) = start_pair(Options::default()).await;
    let (alice, bob) = two_gateways(&org, &net).await;
    for name in FIXTURES {
        submit(&alice, "alice@example.org", "bob@example.net", &fixture(name)).await;
    }
    let arrived = inbox(&bob, FIXTURES.len()).await;
    assert_eq!(arrived.len(), FIXTURES.len(), "one copy of each");
    let scratch = TempDir::new("fidelity-signed");
    for name in FIXTURES {
        let submitted = fixture(name);
        let id = header(&submitted, "Message-ID").unwrap();
        let got = arrived.iter().find(|m| header(m, "Message-ID").as_deref() == Some(&id));
        let got = got.unwrap_or_else(|| panic!("{name}: no message with the Message-ID {id}"));
        let verified = header(got, "X-SMIMP-Verified").unwrap_or_default();
        assert!(verified.starts_with("pass; signed by alice@example.org"), "{name}: {verified}");
        assert!(got.starts_with(b"X-SMIMP-Verified: pass"), "{name}: the gateway's field comes first");
        let expected = without_fields(&submitted, &STRIPPED);
        assert_ne!(expected.len(), 0);
        assert_eq!(
            sha256(&without_fields(got, &ADDED)),
            sha256(&expected),
            "{name} arrived changed:\n{}",
            String::from_utf8_lossy(got)
        );
        if name == "signed" {
            assert!(signature_verifies(got, &scratch), "the S/MIME signature verifies for the recipient");
            let mut broken = got.clone();
            let at = broken.windows(6).position(|w| w == b"Hi Bob").unwrap();
            broken[at + 3] = b'R';
            assert!(!signature_verifies(&broken, &scratch), "openssl notices one changed byte");
        }
    }
    // Nothing the sender's gateway strips reaches the recipient.
    let all = arrived.concat();
    let text = String::from_utf8_lossy(&all).to_ascii_lowercase();
    for gone in ["dave@example.net", "192.0.2.44", "198.51.100.23", "\r\nbcc:", "\r\nreceived:"] {
        assert!(!text.contains(gone), "{gone} reached the recipient");
    }
    alice.running.stop().await;
    bob.running.stop().await;
    org.stop().await;
    net.stop().await;
}

/// An account's SMIMP session and keystore, as an SMIMP-native client of it would hold.
async fn native(side: &Side) -> (SessionClient, Arc<smimp_gateway::keystore::Keystore>) {
    let ctx = Context::open(&side.config).await.unwrap();
    let accounts = smimp_gateway::gateway::unlock_accounts(&ctx).await.unwrap();
    let account = accounts.values().next().unwrap().clone();
    let keystore = account.keystore();
    let address = keystore.address().clone();
    let server = ServerClient::connect(&ctx.discovery, address.domain()).await.unwrap();
    let key = Arc::new(MasterKey::from_seed(&keystore.master().seed()));
    (SessionClient::new(server, address, key), keystore)
}

/// The payload of every email in the account's root folder, with its SMIMP id, opened
/// with the account's keys (the test trusts the key the server names).
async fn payloads(side: &Side) -> Vec<(Id32, Email, Option<Id32>, Option<Id32>)> {
    let (session, keystore) = native(side).await;
    let mut out = Vec::new();
    for summary in session.list_messages(MessageType::Email, None).await.unwrap() {
        let envelope = session.get_message(summary.message_id).await.unwrap();
        let trust = SenderTrust::Keys(Arc::new(SenderKeys::current([envelope.server.sender_public_key])));
        let rendered = open_and_render(&envelope, &keystore, &trust);
        let secret = keystore.secret_for(&envelope.sent.message_public_key).unwrap();
        let plain = envelope.open(&envelope.server.sender_public_key, &keystore.master().public(), secret).unwrap();
        let Payload::Email(email) = Payload::parse(&MessageType::Email, &plain).unwrap() else { panic!("an email") };
        let threading = rendered.threading.unwrap();
        assert_eq!(threading.thread_id, email.thread_id);
        out.push((summary.message_id, *email, threading.reply_to, Some(threading.thread_id)));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_thread_both_ways_between_legacy_clients_and_smimp() {
    let (org, net) = start_pair(Options::default()).await;
    let (alice, bob) = two_gateways(&org, &net).await;

    // Alice's legacy client writes; Bob's sees her Message-ID.
    let first = b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\nSubject: Lunch?\r\n\
Date: Mon, 07 Dec 2026 12:00:00 +0000\r\nMessage-ID: <lunch.1@example.org>\r\n\r\nTomorrow at noon?\r\n";
    submit(&alice, "alice@example.org", "bob@example.net", first).await;
    let at_bob = inbox(&bob, 1).await;
    assert_eq!(header(&at_bob[0], "Message-ID").as_deref(), Some("<lunch.1@example.org>"));
    let bob_copies = payloads(&bob).await;
    let (bob_copy, original, _, _) = &bob_copies[0];

    // Bob's legacy client replies to that Message-ID: the SMIMP reply answers Bob's
    // copy of the message, in its thread.
    let reply = b"From: Bob <bob@example.net>\r\nTo: Alice <alice@example.org>\r\nSubject: Re: Lunch?\r\n\
Date: Mon, 07 Dec 2026 12:05:00 +0000\r\nMessage-ID: <re.lunch.1@example.net>\r\n\
In-Reply-To: <lunch.1@example.org>\r\nReferences: <lunch.1@example.org>\r\n\r\nYes!\r\n";
    submit(&bob, "bob@example.net", "alice@example.org", reply).await;
    let at_alice = inbox(&alice, 1).await;
    assert_eq!(header(&at_alice[0], "In-Reply-To").as_deref(), Some("<lunch.1@example.org>"));
    let alice_copies = payloads(&alice).await;
    let (_, answer, reply_to, _) = &alice_copies[0];
    assert_eq!(answer.thread_id, original.thread_id, "the legacy reply joins the SMIMP thread");
    assert_eq!(answer.reply_to_message_id, Some(*bob_copy), "and names the SMIMP message it answers");
    assert_eq!(reply_to, &Some(*bob_copy));

    // An SMIMP-native client of Bob's answers his copy of Alice's message: Alice's legacy
    // client sees an In-Reply-To naming the Message-ID it knows, and References too.
    let (session, keystore) = native(&bob).await;
    drop(session);
    let sender = Account {
        address: keystore.address().clone(),
        key: MasterKey::from_seed(&keystore.master().seed()),
        nonephemeral: BoxSecretKey::generate(&mut OsRng),
        ephemeral: Vec::new(),
    };
    let alice_address = Address::parse("alice#example.org").unwrap();
    let native_reply = Email {
        to: vec![alice_address.clone()],
        cc: vec![],
        subject: "Re: Lunch?".into(),
        thread_id: original.thread_id,
        reply_to_message_id: Some(*bob_copy),
        date_sent: now(),
        body: "Booked a table.\n".into(),
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    };
    let client = Client::new(&[&org, &net]);
    let login = login(&client, &org, &sender).await;
    let payload = Payload::Email(Box::new(native_reply)).to_bytes();
    let (envelope, _, _) = prepare_message(&client, &org, &login, &sender, &alice_address, &payload).await;
    let sent =
        client.post(&url(&org, &Route::SendMessage { address: alice_address }), Some(&login.id), &envelope).await;
    assert_eq!(sent.0, 200, "{}", sent.1);
    let at_alice = inbox(&alice, 2).await;
    let shown = at_alice.iter().find(|m| String::from_utf8_lossy(m).contains("Booked a table.")).unwrap();
    let text = String::from_utf8_lossy(shown);
    assert_eq!(header(shown, "In-Reply-To").as_deref(), Some("<lunch.1@example.org>"), "{text}");
    let references = header(shown, "References").unwrap_or_default();
    assert!(references.contains("<lunch.1@example.org>"), "{text}");
    assert!(header(shown, "Message-ID").is_some_and(|id| id.ends_with("@smimp.invalid>")), "{text}");

    alice.running.stop().await;
    bob.running.stop().await;
    org.stop().await;
    net.stop().await;
}
