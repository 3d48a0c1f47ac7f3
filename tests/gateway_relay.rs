//! The optional legacy relay end to end, over real sockets and real TLS: the relay is
//! the project's own SMTP front-end (`smtp::run`) on loopback with a recording
//! `Submission`, its certificate issued by a private CA that the gateway's
//! `[relay."legacy.example"]` table names. Mail to the relayed domain arrives there with
//! the exact bytes and envelope the mail client submitted; a message with an SMIMP and a
//! relayed recipient reaches each its own way; a relay's 5xx becomes a delivery report in
//! the sender's INBOX; a relay whose certificate is not trusted is never sent to (the
//! delivery waits for a retry), nor is one that offers no STARTTLS or whose certificate
//! names another host; and without a relay table the domain is refused at RCPT
//! TO as before. Certificate checks are never disabled.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::relay::{RecordingRelay, Taken};
use common::*;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::AsyncTransport;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::enroll::Initialised;
use smimp_gateway::gateway::Running;
use smimp_gateway::smimp::envelope::StoredEnvelope;
use smimp_gateway::smimp::message::{MessageType, Payload};
use smimp_gateway::smimp::wire::{MessageList, Route};
use smimp_gateway::smtp::{self, SmtpConfig, TlsMode};
use smimp_gateway::store::Recipient;
use tokio::net::TcpListener;

/// The relay on two loopback ports (STARTTLS and implicit TLS) under a private CA.
struct RelayServer {
    recording: Arc<RecordingRelay>,
    starttls_port: u16,
    implicit_port: u16,
    ca_file: std::path::PathBuf,
    stop: smimp_gateway::listen::StopHandle,
    _dir: TempDir,
}

async fn start_relay() -> RelayServer {
    smimp_gateway::tls::install_crypto_provider();
    let dir = TempDir::new("legacy-relay");
    let certs = smimp_gateway::tls::ensure_dev_certificates(&dir.0, &["localhost".into(), "127.0.0.1".into()]).unwrap();
    let tls = smimp_gateway::tls::server_config(&certs.cert_file, &certs.key_file).unwrap();
    let recording = Arc::new(RecordingRelay::default());
    // The relay is not on loopback in real life: AUTH only after TLS here too.
    let config = SmtpConfig { allow_plain_auth_on_loopback: false, ..SmtpConfig::default() };
    let (stop, stopping) = smimp_gateway::listen::Shutdown::new();
    let mut ports = Vec::new();
    for mode in [TlsMode::StartTls, TlsMode::Implicit] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let shutdown = stopping.clone();
        tokio::spawn(smtp::run(listener, Some(tls.clone()), mode, recording.clone(), config.clone(), shutdown));
    }
    RelayServer { recording, starttls_port: ports[0], implicit_port: ports[1], ca_file: certs.ca_file, stop, _dir: dir }
}

impl RelayServer {
    fn taken(&self) -> Vec<Taken> {
        self.recording.taken.lock().unwrap().clone()
    }
}

/// The `[relay]` tables: legacy.example over STARTTLS and implicit.example over implicit
/// TLS, both trusting the relay's CA; untrusted.example without `ca_file`, so only the
/// public roots are trusted and the relay's private certificate is not.
fn relay_tables(relay: &RelayServer) -> String {
    let ca = relay.ca_file.display();
    let auth = "username = \"relayuser\"\npassword = \"relaypass\"\n";
    format!(
        "[relay.\"legacy.example\"]\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nca_file = \"{ca}\"\n{auth}\
         [relay.\"implicit.example\"]\nhost = \"localhost\"\nport = {}\ntls = \"tls\"\nca_file = \"{ca}\"\n{auth}\
         [relay.\"untrusted.example\"]\nhost = \"localhost\"\nport = {}\ntls = \"tls\"\n{auth}",
        relay.starttls_port, relay.implicit_port, relay.implicit_port
    )
}

const SMTP: &str = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";

/// MAIL FROM alice, then RCPT TO `to` by hand over STARTTLS: the reply the mail client sees.
async fn rcpt_reply(running: &Running, login: &Initialised, to: &str) -> String {
    let ca = std::fs::read(&running.ca_file).unwrap();
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&ca).unwrap())
        .build_rustls()
        .unwrap();
    let hello = ClientId::Domain("client.test".into());
    let mut connection = AsyncSmtpConnection::connect_tokio1(
        ("localhost", running.addresses.smtp.port()),
        Some(Duration::from_secs(10)),
        &hello,
        None,
        None,
    )
    .await
    .unwrap();
    connection.starttls(tls, &hello).await.unwrap();
    let credentials = Credentials::new(login.username.clone(), login.password.clone());
    connection.auth(&[Mechanism::Plain], &credentials).await.unwrap();
    connection.command(Mail::new(Some(login.address.to_email().parse().unwrap()), vec![])).await.unwrap();
    let reply = match connection.command(Rcpt::new(to.parse().unwrap(), vec![])).await {
        Ok(response) => format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" ")),
        Err(err) => err.to_string(),
    };
    let _ = connection.quit().await;
    reply
}

/// lettre ends DATA with CRLF . CRLF after the bytes it sends, so a mail client whose
/// message is `raw` (ending in CRLF) hands lettre `raw` without that last line end.
fn as_sent(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r\n").unwrap()
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(Some(from.parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_domains_get_the_submitted_bytes_over_verified_tls_and_nothing_else_does() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let bob = create_account(&client, &net, "bob", 2).await;
    let relay = start_relay().await;
    let dir = TempDir::new("gateway-relay");
    let config = write_gateway_config(&dir, &[&org, &net], &format!("{}{SMTP}", relay_tables(&relay)));
    let alice = init_on_gateway(&config, &org, "alice").await;
    let running = common::start_gateway(&config).await;
    let mailer = gateway_mailer(&running, &alice, Mechanism::Plain);

    // RCPT TO: a relayed recipient needs no SMIMP form, and the client is told it goes as plain email.
    let reply = rcpt_reply(&running, &alice, "first.last@legacy.example").await;
    assert!(reply.starts_with("250 2.1.5 first.last@legacy.example is relayed as plain email"), "{reply}");
    assert!(reply.contains("NOT end-to-end encrypted") && reply.contains("localhost:"), "{reply}");
    let reply = rcpt_reply(&running, &alice, "first.last@example.net").await;
    assert!(reply.contains("550") && reply.contains("has no SMIMP form"), "other domains as before: {reply}");

    // 1. Relayed only: the exact bytes (a leading dot, 8-bit text, a Bcc header the client
    // left in) with the submitted envelope.
    let raw = b"From: Alice <alice@example.org>\r\nTo: <first.last@legacy.example>\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <relay.1@example.org>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Gr\xc3\xbc\xc3\x9fe aus dem Gateway.\r\n.a line that starts with a dot\r\n..and two\r\n\r\nAlice\r\n"
        .to_vec();
    mailer.send_raw(&envelope("alice@example.org", &["first.last@legacy.example"]), as_sent(&raw)).await.unwrap();
    let taken = eventually("the relayed message", async || relay.taken().first().cloned()).await;
    assert_eq!(taken.0, "alice@example.org");
    assert_eq!(taken.1, vec!["first.last@legacy.example".to_string()]);
    assert_eq!(taken.2, raw, "the relay gets the message byte for byte as submitted");

    // 2. Mixed: bob over SMIMP, carol (implicit TLS relay) as plain email.
    // Its To also names an address SMIMP cannot (no envelope copy goes there): the SMIMP
    // copy carries it as written.
    let mixed = b"From: <alice@example.org>\r\nTo: <bob@example.net>, <carol@implicit.example>, <first.last@legacy.example>\r\n\
Subject: mixed\r\nMessage-ID: <relay.2@example.org>\r\n\r\nto each their own way\r\n"
        .to_vec();
    mailer
        .send_raw(&envelope("alice@example.org", &["bob@example.net", "carol@implicit.example"]), as_sent(&mixed))
        .await
        .unwrap();
    let taken = eventually("the mixed message at the relay", async || relay.taken().get(1).cloned()).await;
    assert_eq!(taken, ("alice@example.org".to_string(), vec!["carol@implicit.example".to_string()], mixed.clone()));
    let session = login(&client, &net, &bob).await;
    let list_url = url(&net, &Route::ListMessages { message_type: MessageType::Email, folder_name: None });
    let listed = eventually("bob's SMIMP copy", async || {
        let list: MessageList = ok(client.get(&list_url, Some(&session.id)).await);
        list.messages.first().cloned()
    })
    .await;
    let stored: StoredEnvelope = ok(client
        .get(&url(&net, &Route::GetMessage { message_id: listed.message_id, update_read: false }), Some(&session.id))
        .await);
    let opened = stored
        .open(&stored.server.sender_public_key, &bob.key.public(), bob.secret_for(&stored.sent.message_public_key))
        .unwrap();
    let Payload::Email(email) = Payload::parse(&MessageType::Email, &opened).unwrap() else { panic!("not an email") };
    assert_eq!(email.subject, "mixed");
    assert!(email.body.contains("to each their own way"), "{}", email.body);
    assert_eq!(
        email.to.iter().map(|a| a.to_email()).collect::<Vec<_>>(),
        ["bob@example.net", "carol@implicit.example"]
    );
    let plain_to = &email.extensions_data.as_ref().unwrap()["x-rfc5322"]["plain_to"];
    assert_eq!(plain_to, &serde_json::json!(["first.last@legacy.example"]));

    // 3. The relay refuses a recipient (550): a delivery report in Alice's INBOX.
    let refused = b"From: <alice@example.org>\r\nTo: <refused@legacy.example>\r\nSubject: will bounce\r\n\
Message-ID: <relay.3@example.org>\r\n\r\nx\r\n"
        .to_vec();
    mailer.send_raw(&envelope("alice@example.org", &["refused@legacy.example"]), &refused).await.unwrap();
    let report = first_in_inbox(&config).await;
    let ctx = Context::open(&config).await.unwrap();
    assert!(report.contains("Undelivered Mail: will bounce"), "{report}");
    assert!(report.contains("Final-Recipient: rfc822; refused@legacy.example"), "{report}");
    assert!(report.contains("refused@legacy.example: no such mailbox here"), "the relay's reason: {report}");
    assert!(report.contains("sent as plain email"), "{report}");
    assert!(report.contains("In-Reply-To: <relay.3@example.org>"), "{report}");

    // 4. A relay whose certificate is not trusted is never sent to: the delivery waits
    // for a retry, sealed at rest, and the relay has nothing from it.
    let secret = b"From: <alice@example.org>\r\nTo: <dora@untrusted.example>\r\nSubject: held\r\n\r\nsecret words\r\n";
    mailer.send_raw(&envelope("alice@example.org", &["dora@untrusted.example"]), secret).await.unwrap();
    let dora = Recipient::Relay { to: "dora@untrusted.example".into(), from: "alice@example.org".into() };
    let held = eventually("the untrusted relay's first attempt", async || {
        let recent = ctx.store.recent_deliveries(20).await.unwrap();
        recent.into_iter().find(|d| d.recipient == dora && d.attempts >= 1)
    })
    .await;
    assert_eq!(held.state, "queued", "retried later, not given up: {held:?}");
    let error = held.last_error.unwrap_or_default();
    assert!(error.contains("legacy relay localhost:") && error.contains("UnknownIssuer"), "{error}");
    assert!(relay.taken().iter().all(|(_, to, _)| !to.iter().any(|t| t.contains("untrusted"))), "nothing was sent");
    let later = now().unix() + 7 * 24 * 3600;
    let rows = ctx.store.due_outbound(later, 50).await.unwrap();
    let row = rows.iter().find(|r| r.recipient == dora).expect("the held row is still queued");
    assert_eq!(row.message_type, "rfc5322");
    assert!(!row.sealed_payload.windows(12).any(|w| w == b"secret words"), "the queue holds it sealed");
    assert_eq!(relay.taken().len(), 2, "the relay took exactly the two deliverable messages");
    running.stop().await;

    // 5. Without a relay table, the same domain is refused at RCPT TO as before.
    let plain_dir = TempDir::new("gateway-no-relay");
    let closed = "\"legacy.example\" = \"127.0.0.1:9\"\n";
    let plain_config = write_gateway_config(&plain_dir, &[&org, &net], &format!("{closed}{SMTP}"));
    let erin = init_on_gateway(&plain_config, &org, "erin").await;
    let plain = common::start_gateway(&plain_config).await;
    let reply = rcpt_reply(&plain, &erin, "first.last@legacy.example").await;
    assert!(reply.contains("550") && reply.contains("has no SMIMP form"), "{reply}");
    let reply = rcpt_reply(&plain, &erin, "carol@legacy.example").await;
    assert!(
        reply.contains("451") && reply.contains("legacy.example cannot be reached now"),
        "refused (here: its SMIMP server cannot be reached), not relayed: {reply}"
    );
    plain.stop().await;
    assert_eq!(relay.taken().len(), 2);
    relay.stop.stop();
    org.stop().await;
    net.stop().await;
}

/// A relay the gateway must refuse: on one loopback port with STARTTLS under `tls`
/// (`None`: no STARTTLS offered at all), AUTH allowed on loopback even without TLS so
/// that only the gateway's own checks stand between a message and this recording.
async fn start_refusable_relay(
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (Arc<RecordingRelay>, u16, smimp_gateway::listen::StopHandle) {
    let recording = Arc::new(RecordingRelay::default());
    let config = SmtpConfig { allow_plain_auth_on_loopback: true, ..SmtpConfig::default() };
    let (stop, stopping) = smimp_gateway::listen::Shutdown::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(smtp::run(listener, tls, TlsMode::StartTls, recording.clone(), config, stopping));
    (recording, port, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_without_starttls_or_with_a_certificate_for_another_host_is_never_sent_to() {
    smimp_gateway::tls::install_crypto_provider();
    let (org, net) = start_pair(Options::default()).await;
    // No STARTTLS offered.
    let (plain, plain_port, plain_stop) = start_refusable_relay(None).await;
    // STARTTLS with a certificate the trusted CA issued for another host.
    let other_dir = TempDir::new("relay-other-name");
    let other = smimp_gateway::tls::ensure_dev_certificates(&other_dir.0, &["mail.other.example".into()]).unwrap();
    let other_tls = smimp_gateway::tls::server_config(&other.cert_file, &other.key_file).unwrap();
    let (misnamed, misnamed_port, misnamed_stop) = start_refusable_relay(Some(other_tls)).await;
    let auth = "username = \"relayuser\"\npassword = \"relaypass\"\n";
    let ca = other.ca_file.display();
    let tables = format!(
        "[relay.\"plain.example\"]\nhost = \"localhost\"\nport = {plain_port}\ntls = \"starttls\"\nca_file = \"{ca}\"\n{auth}\
         [relay.\"misnamed.example\"]\nhost = \"localhost\"\nport = {misnamed_port}\ntls = \"starttls\"\nca_file = \"{ca}\"\n{auth}"
    );
    let dir = TempDir::new("gateway-refused-relays");
    let config = write_gateway_config(&dir, &[&org, &net], &format!("{tables}{SMTP}"));
    let alice = init_on_gateway(&config, &org, "alice").await;
    let running = common::start_gateway(&config).await;
    let mailer = gateway_mailer(&running, &alice, Mechanism::Plain);
    let ctx = Context::open(&config).await.unwrap();

    for (to, reason) in
        [("pat@plain.example", "STARTTLS"), ("max@misnamed.example", "certificate not valid for name \"localhost\"")]
    {
        let message = format!("From: <alice@example.org>\r\nTo: <{to}>\r\nSubject: held\r\n\r\nsecret words\r\n");
        mailer.send_raw(&envelope("alice@example.org", &[to]), message.as_bytes()).await.unwrap();
        let recipient = Recipient::Relay { to: to.into(), from: "alice@example.org".into() };
        let held = eventually("the relay's first attempt", async || {
            let recent = ctx.store.recent_deliveries(20).await.unwrap();
            recent.into_iter().find(|d| d.recipient == recipient && d.attempts >= 1)
        })
        .await;
        assert_eq!(held.state, "queued", "retried later, not given up: {held:?}");
        let error = held.last_error.unwrap_or_default();
        assert!(error.contains("legacy relay localhost:") && error.contains(reason), "{to}: {error}");
    }
    assert!(plain.taken.lock().unwrap().is_empty(), "sent to a relay without STARTTLS");
    assert!(misnamed.taken.lock().unwrap().is_empty(), "sent to a relay whose certificate names another host");
    running.stop().await;
    plain_stop.stop();
    misnamed_stop.stop();
    org.stop().await;
    net.stop().await;
}
