//! Attacks on outbound delivery: a recipient's server that demands ruinous proof of
//! work, answers `nonce_unknown` forever or stalls with costly work (cheap deliveries
//! must go on); a database that fails after the recipient's server took a message
//! (nothing may be sent twice); a mail client that sends in another's name or leaks Bcc
//! through the legacy relay.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::Mail;
use lettre::transport::smtp::extension::ClientId;
use lettre::AsyncTransport;
use smimp_gateway::backend::account::Account as GatewayAccount;
use smimp_gateway::backend::outbound::{attempt, enqueue, RetryPolicy};
use smimp_gateway::backend::relay::Relays;
use smimp_gateway::backend::submission::{delivery_loop, SubmissionBackend};
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{MessageList, Route};
use smimp_gateway::smtp::{self, SmtpConfig, Submission, TlsMode};
use sqlx::Connection;

use crate::common::relay::RecordingRelay;
use crate::common::*;
use crate::harness::{fronted_pair, Answer, Hostile};

/// A gateway for alice@example.org whose path to example.net goes through `hostile`.
struct Lied {
    org: TestServer,
    net: TestServer,
    hostile: Hostile,
    client: Client,
    alice: smimp_gateway::gateway::enroll::Initialised,
    config: std::path::PathBuf,
    _dir: TempDir,
}

async fn lied_to(extra: &str) -> Lied {
    let (org, net, hostile) = fronted_pair("example.net", Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let dir = TempDir::new("hostile-delivery");
    let smtp = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";
    let config = write_gateway_config(&dir, &[&org, &hostile], &format!("{extra}{smtp}"));
    let alice = init_on_gateway(&config, &org, "alice").await;
    Lied { org, net, hostile, client, alice, config, _dir: dir }
}

/// A plain message from alice to `to`.
fn message(to: &str, subject: &str) -> Vec<u8> {
    format!("From: <alice@example.org>\r\nTo: <{to}>\r\nSubject: {subject}\r\n\r\nhello\r\n").into_bytes()
}

/// Attacker: bob's server demands 36 bits of proof of work (a day of this machine's
/// cores, redone on every retry). Before, anything up to 36 bits was worked. Above the
/// configured cap (28 by default) the delivery fails at once: alice finds a delivery
/// report naming the cause, no work was done and nothing was sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_server_demanding_36_bits_gets_no_work_and_the_sender_a_report() {
    let lied = lied_to("").await;
    let bob = create_account(&lied.client, &lied.net, "bob", 4).await;
    let pow = Route::GetPowParams { address: bob.address.clone(), message_type: MessageType::Email };
    lied.hostile.lie_on(&pow, |call| async move {
        let mut params = call.forward().await.value();
        params["zero_bits"] = 36.into();
        Answer::json(200, &params)
    });
    let running = start_gateway(&lied.config).await;
    let mailer = gateway_mailer(&running, &lied.alice, Mechanism::Plain);
    let raw = message("bob@example.net", "costly");
    mailer.send_raw(&envelope("alice@example.org", &["bob@example.net"]), &raw).await.unwrap();
    let report = first_in_inbox(&lied.config).await;
    assert!(report.contains("Undelivered Mail: costly"), "{report}");
    assert!(
        report.contains("asks for 36 bits of proof of work for this message, more than the 28 this gateway does"),
        "{report}"
    );
    let send = Route::SendMessage { address: bob.address.clone() };
    assert_eq!(lied.hostile.count(&Method::POST, send.path().as_str()), 0, "nothing was sent");
    assert_eq!(held(&lied.client, &lied.net, &bob, &MessageType::Email).await, 0);
    running.stop().await;
    lied.org.stop().await;
    lied.net.stop().await;
}

/// Attacker: bob's server takes each finished proof of work and answers `nonce_unknown`
/// (a transient error) forever, so the work is redone on every retry for days. After
/// three in a row the delivery fails for good and alice gets a report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_unknown_forever_fails_after_three_tries_with_a_report() {
    let lied = lied_to("").await;
    let bob = create_account(&lied.client, &lied.net, "bob", 8).await;
    let send = Route::SendMessage { address: bob.address.clone() };
    lied.hostile.lie_on(&send, |_| async { Answer::error(400, "nonce_unknown") });
    let ctx = Context::open(&lied.config).await.unwrap();
    let accounts = unlock_accounts(&ctx).await.unwrap();
    let account = accounts.values().next().unwrap().clone();
    let backend = SubmissionBackend {
        store: ctx.store.clone(),
        discovery: ctx.discovery.clone(),
        policy: RetryPolicy::default(),
        accounts: accounts.clone(),
        relays: Arc::new(Relays::default()),
        queued: Arc::new(tokio::sync::Notify::new()),
    };
    let to = ["bob@example.net".to_string()];
    backend.accept(&account, "alice@example.org", &to, message("bob@example.net", "forgotten")).await.unwrap();
    let t = now().unix();
    let id = ctx.store.due_outbound(t, 10).await.unwrap()[0].id;
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let row = ctx.store.outbound(id).await.unwrap().unwrap();
        let policy = &backend.policy;
        outcomes.push(
            attempt(&ctx.discovery, &backend.relays, &ctx.store, &account.sender, &row, policy, t).await.unwrap(),
        );
    }
    assert_eq!(outcomes[..2], [None, None], "the first two are retried");
    let reason = outcomes[2].clone().expect("the third fails for good");
    assert!(reason.contains("a nonce it does not know") && reason.contains("3 times in a row"), "{reason}");
    assert_eq!(lied.hostile.count(&Method::POST, send.path().as_str()), 3, "three proofs of work, no more");
    // The report goes to alice's own server (not the liar) like any other.
    for row in ctx.store.due_outbound(t, 10).await.unwrap() {
        attempt(&ctx.discovery, &backend.relays, &ctx.store, &account.sender, &row, &backend.policy, t).await.unwrap();
    }
    let report = first_in_inbox(&lied.config).await;
    let unfolded = report.replace("\r\n ", " ").replace("\r\n", " ");
    assert!(report.contains("Undelivered Mail: forgotten"), "{report}");
    assert!(unfolded.contains("does not know") && unfolded.contains("times in a row"), "{report}");
    lied.org.stop().await;
    lied.net.stop().await;
}

/// Attacker: carol's server asks every delivery for costly proof of work and then holds
/// the connection for as long as the gateway waits (here a minute: the API timeout is
/// raised so that only the lane, not a timeout, can free a slot). Before, four such
/// deliveries took every delivery slot and mail to anyone else waited behind them.
/// Costly work now waits in a lane of its own (here from 12 bits, by configuration):
/// one works, one waits, the rest are deferred, and mail to bob is sent while carol's
/// server still holds the first costly delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_proof_of_work_never_holds_up_cheap_deliveries() {
    let lied = lied_to("[delivery]\npow_lane_from_bits = 12\n").await;
    let config = std::fs::read_to_string(&lied.config).unwrap();
    std::fs::write(&lied.config, config.replace("timeout = \"5s\"", "timeout = \"60s\"")).unwrap();
    let bob = create_account(&lied.client, &lied.net, "bob", 4).await;
    let carol = create_account(&lied.client, &lied.net, "carol", 16).await;
    let pow = Route::GetPowParams { address: carol.address.clone(), message_type: MessageType::Email };
    lied.hostile.lie_on(&pow, |call| async move {
        let mut params = call.forward().await.value();
        params["zero_bits"] = 14.into();
        Answer::json(200, &params)
    });
    let (release, released) = tokio::sync::watch::channel(false);
    let (carol_sending, held_carol) = (Arc::new(tokio::sync::Notify::new()), Arc::new(AtomicUsize::new(0)));
    let (sending, holding) = (carol_sending.clone(), held_carol.clone());
    lied.hostile.lie_on(&Route::SendMessage { address: carol.address.clone() }, move |_| {
        let (sending, holding, mut released) = (sending.clone(), holding.clone(), released.clone());
        async move {
            holding.fetch_add(1, Ordering::SeqCst);
            sending.notify_one();
            let _ = tokio::time::timeout(Duration::from_secs(60), released.wait_for(|r| *r)).await;
            Answer::error(503, "internal")
        }
    });
    let bob_arrived = Arc::new(tokio::sync::Notify::new());
    let arrived = bob_arrived.clone();
    lied.hostile.lie_on(&Route::SendMessage { address: bob.address.clone() }, move |call| {
        let arrived = arrived.clone();
        async move {
            arrived.notify_one();
            call.forward().await
        }
    });
    let running = start_gateway(&lied.config).await;
    let mailer = gateway_mailer(&running, &lied.alice, Mechanism::Plain);
    for n in 0..5 {
        let raw = message("carol@example.net", &format!("costly {n}"));
        mailer.send_raw(&envelope("alice@example.org", &["carol@example.net"]), &raw).await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), carol_sending.notified()).await.expect("carol's server is held");
    let raw = message("bob@example.net", "cheap");
    mailer.send_raw(&envelope("alice@example.org", &["bob@example.net"]), &raw).await.unwrap();
    let sent = tokio::time::timeout(Duration::from_secs(30), bob_arrived.notified()).await;
    assert!(sent.is_ok(), "bob's message waited behind costly work held by carol's server");
    assert_eq!(held_carol.load(Ordering::SeqCst), 1, "one costly delivery works at a time");
    wait_held(&lied.client, &lied.net, &bob, &MessageType::Email, 1).await;
    assert_eq!(held(&lied.client, &lied.net, &carol, &MessageType::Email).await, 0);
    release.send_replace(true);
    running.stop().await;
    lied.org.stop().await;
    lied.net.stop().await;
}

/// Waits (up to 60 s, polling each second so the server's login limit is not met) until
/// `account` holds `count` messages of `kind` on `server`: how long that took.
async fn wait_held(
    client: &Client,
    server: &TestServer,
    account: &Account,
    kind: &MessageType,
    count: usize,
) -> Duration {
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if held(client, server, account, kind).await == count {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("{} never held {count} messages", account.address);
}

/// How many messages of `kind` `account` holds on `server`.
async fn held(client: &Client, server: &TestServer, account: &Account, kind: &MessageType) -> usize {
    let session = login(client, server, account).await;
    let route = Route::ListMessages { message_type: kind.clone(), folder_name: None };
    let list: MessageList = ok(client.get(&url(server, &route), Some(&session.id)).await);
    list.messages.len()
}

/// Attacker: the gateway's own disk (full, or the database held by another process)
/// after the recipient's server accepted a message. Before, the queue row stayed due
/// and the message was sent again on every pass, spending the recipient's ephemeral
/// keys and quota. The database here is locked by a second connection holding a write
/// transaction (what a backup tool or an `sqlite3` shell does): reads still work (WAL),
/// every write fails with "database is locked" after the busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_fails_after_the_recipient_took_the_message_never_causes_a_second_copy() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let bob = create_account(&client, &net, "bob", 8).await;
    let dir = TempDir::new("hostile-store");
    let config = write_gateway_config(&dir, &[&org, &net], "");
    init_on_gateway(&config, &org, "alice").await;
    let ctx = Context::open(&config).await.unwrap();
    let accounts: HashMap<String, Arc<GatewayAccount>> = unlock_accounts(&ctx).await.unwrap();
    let alice = accounts.values().next().unwrap().clone();
    let policy = RetryPolicy::default();
    let kind = MessageType::parse("x-custom-test").unwrap();
    let to = [bob.address.clone()];

    // A first message pins bob's key (a write), as a first delivery does.
    let t = now().unix();
    enqueue(&ctx.store, &alice.sender, &kind, b"{\"n\":1}", &to, &policy, t).await.unwrap();
    for row in ctx.store.due_outbound(t, 10).await.unwrap() {
        attempt(&ctx.discovery, &Relays::default(), &ctx.store, &alice.sender, &row, &policy, t).await.unwrap();
    }
    assert_eq!(held(&client, &net, &bob, &kind).await, 1);
    let ids = enqueue(&ctx.store, &alice.sender, &kind, b"{\"n\":2}", &to, &policy, t).await.unwrap();

    // Another process takes the database's write lock; then delivery starts.
    let url = format!("sqlite://{}", ctx.config.database().display());
    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await.unwrap();
    let gateway = Arc::new(SubmissionBackend {
        store: ctx.store.clone(),
        discovery: ctx.discovery.clone(),
        policy: policy.clone(),
        accounts,
        relays: Arc::new(Relays::default()),
        queued: Arc::new(tokio::sync::Notify::new()),
    });
    let (stop, shutdown) = smimp_gateway::listen::Shutdown::new();
    let delivering = tokio::spawn(delivery_loop(gateway, Duration::from_millis(200), shutdown));
    wait_held(&client, &net, &bob, &kind, 2).await;
    // Recording "sent" fails after the 10 s busy timeout; before the fix the row was
    // due again at once and sent again within the next 200 ms pass.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(
        held(&client, &net, &bob, &kind).await,
        2,
        "the message was sent again while its outcome was unrecorded"
    );
    let row = ctx.store.outbound(ids[0]).await.unwrap().unwrap();
    assert_eq!(row.state, "queued", "nothing could be written while the lock was held");

    // The lock goes away: the outcome kept in memory is recorded, and still one copy.
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    drop(blocker);
    let sent = eventually("the outcome recorded", async || {
        let row = ctx.store.outbound(ids[0]).await.unwrap().unwrap();
        (row.state == "sent").then_some(row)
    })
    .await;
    assert!(sent.message_id.is_some(), "{sent:?}");
    assert_eq!(held(&client, &net, &bob, &kind).await, 2, "exactly one copy of each message");
    stop.stop();
    delivering.await.unwrap();
    org.stop().await;
    net.stop().await;
}

/// A relay over implicit TLS on loopback under its own CA, and the `[relay]` table for
/// legacy.example that trusts it.
async fn start_relay(dir: &TempDir) -> (Arc<RecordingRelay>, String, smimp_gateway::listen::StopHandle) {
    smimp_gateway::tls::install_crypto_provider();
    let certs = smimp_gateway::tls::ensure_dev_certificates(&dir.0, &["localhost".into()]).unwrap();
    let tls = smimp_gateway::tls::server_config(&certs.cert_file, &certs.key_file).unwrap();
    let recording = Arc::new(RecordingRelay::default());
    let (stop, stopping) = smimp_gateway::listen::Shutdown::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = SmtpConfig { allow_plain_auth_on_loopback: false, ..SmtpConfig::default() };
    tokio::spawn(smtp::run(listener, Some(tls), TlsMode::Implicit, recording.clone(), config, stopping));
    let table = format!(
        "[relay.\"legacy.example\"]\nhost = \"localhost\"\nport = {port}\ntls = \"tls\"\nca_file = \"{}\"\n\
         username = \"relayuser\"\npassword = \"relaypass\"\n",
        certs.ca_file.display()
    );
    (recording, table, stop)
}

/// `MAIL FROM:<from>` over STARTTLS after a good login: the reply the client sees.
async fn mail_from_reply(
    running: &TestGateway,
    login: &smimp_gateway::gateway::enroll::Initialised,
    from: &str,
) -> String {
    let ca = std::fs::read(&running.ca_file).unwrap();
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&ca).unwrap())
        .build_rustls()
        .unwrap();
    let hello = ClientId::Domain("client.test".into());
    let address = ("localhost", running.addresses.smtp.port());
    let mut connection =
        AsyncSmtpConnection::connect_tokio1(address, Some(Duration::from_secs(10)), &hello, None, None).await.unwrap();
    connection.starttls(tls, &hello).await.unwrap();
    let credentials = Credentials::new(login.username.clone(), login.password.clone());
    connection.auth(&[Mechanism::Plain], &credentials).await.unwrap();
    let reply = match connection.command(Mail::new(Some(from.parse().unwrap()), vec![])).await {
        Ok(response) => format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" ")),
        Err(err) => err.to_string(),
    };
    let _ = connection.quit().await;
    reply
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope::new(Some(from.parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect()).unwrap()
}

/// A gateway for alice with a legacy relay for legacy.example, and the relay's recording.
struct RelaySetup {
    org: TestServer,
    net: TestServer,
    relay: Arc<RecordingRelay>,
    relay_stop: smimp_gateway::listen::StopHandle,
    alice: smimp_gateway::gateway::enroll::Initialised,
    running: TestGateway,
    ctx: Context,
    _dirs: (TempDir, TempDir),
}

async fn relay_setup() -> RelaySetup {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    create_account(&client, &net, "bob", 2).await;
    let relay_dir = TempDir::new("hostile-relay");
    let (relay, table, relay_stop) = start_relay(&relay_dir).await;
    let dir = TempDir::new("hostile-relay-gateway");
    let smtp = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";
    let config = write_gateway_config(&dir, &[&org, &net], &format!("{table}{smtp}"));
    let alice = init_on_gateway(&config, &org, "alice").await;
    let running = start_gateway(&config).await;
    let ctx = Context::open(&config).await.unwrap();
    RelaySetup { org, net, relay, relay_stop, alice, running, ctx, _dirs: (relay_dir, dir) }
}

impl RelaySetup {
    async fn stop(self) {
        self.running.stop().await;
        self.relay_stop.stop();
        self.org.stop().await;
        self.net.stop().await;
    }
}

/// Attacker: a mail client (or a local program with the account's password) that gives
/// another envelope sender. Before, any MAIL FROM was taken and handed to the relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_envelope_sender_is_refused_at_mail_from() {
    let setup = relay_setup().await;
    for other in ["bob@example.net", "alice@example.org.evil", "eve@legacy.example"] {
        let reply = mail_from_reply(&setup.running, &setup.alice, other).await;
        assert!(reply.contains("553") && reply.contains("must be your account's address alice@example.org"), "{reply}");
    }
    let reply = mail_from_reply(&setup.running, &setup.alice, "Alice@Example.org").await;
    assert!(reply.starts_with("250"), "the account's own address, in any case: {reply}");
    setup.stop().await;
}

/// Attacker: a mail client that writes another's name in From: (or none). Before, the
/// relay sent it as written. Refused for SMIMP and relayed recipients alike, and
/// nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_from_header_naming_anyone_else_is_refused_and_nothing_is_queued() {
    let setup = relay_setup().await;
    let mailer = gateway_mailer(&setup.running, &setup.alice, Mechanism::Plain);
    for to in ["bob@example.net", "first.last@legacy.example"] {
        let forged = format!(
            "From: Alice <alice@example.org>, Boss <boss@example.org>\r\nTo: <{to}>\r\nSubject: pay\r\n\r\nnow\r\n"
        );
        let err = mailer.send_raw(&envelope("alice@example.org", &[to]), forged.as_bytes()).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("550") && text.contains("names boss@example.org"), "{to}: {text}");
        let missing = format!("To: <{to}>\r\nSubject: no from\r\n\r\nx\r\n");
        let err = mailer.send_raw(&envelope("alice@example.org", &[to]), missing.as_bytes()).await.unwrap_err();
        assert!(err.to_string().contains("has no From: header"), "{err}");
    }
    assert!(setup.ctx.store.recent_deliveries(10).await.unwrap().is_empty(), "nothing was queued");
    assert!(setup.relay.taken.lock().unwrap().is_empty(), "nothing was relayed");
    setup.stop().await;
}

/// Attacker's gain: a Bcc header the mail client left in the message, which the relay
/// would show every recipient. Bcc (folded) and Resent-Bcc are removed; every other
/// byte reaches the relay, one copy per recipient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_sees_bcc() {
    let setup = relay_setup().await;
    let mailer = gateway_mailer(&setup.running, &setup.alice, Mechanism::Plain);
    let raw = b"From: Alice <alice@example.org>\r\nTo: <first.last@legacy.example>\r\n\
Bcc: <secret@legacy.example>,\r\n <hidden@example.net>\r\nSubject: plans\r\nResent-Bcc: <r@legacy.example>\r\n\
Message-ID: <bcc.1@example.org>\r\n\r\nsee you\r\n";
    let expected = b"From: Alice <alice@example.org>\r\nTo: <first.last@legacy.example>\r\nSubject: plans\r\n\
Message-ID: <bcc.1@example.org>\r\n\r\nsee you\r\n";
    let to = ["first.last@legacy.example", "secret@legacy.example"];
    mailer.send_raw(&envelope("alice@example.org", &to), raw.strip_suffix(b"\r\n").unwrap()).await.unwrap();
    let taken = eventually("both relayed copies", async || {
        let taken = setup.relay.taken.lock().unwrap().clone();
        (taken.len() == 2).then_some(taken)
    })
    .await;
    for (from, _, bytes) in &taken {
        assert_eq!(from, "alice@example.org");
        assert_eq!(String::from_utf8_lossy(bytes), String::from_utf8_lossy(expected), "the relay's copy");
    }
    let mut recipients: Vec<&str> = taken.iter().map(|(_, to, _)| to[0].as_str()).collect();
    recipients.sort_unstable();
    assert_eq!(recipients, ["first.last@legacy.example", "secret@legacy.example"], "each copy to its recipient");
    setup.stop().await;
}
