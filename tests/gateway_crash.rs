//! The outbound queue survives a crash of the gateway.
//!
//! Real reference servers run in-process for two domains, with proof of work; the real
//! `smimp-gateway run` binary runs as a child process. A mail client (lettre, STARTTLS,
//! trusting the gateway's CA) submits messages to several recipients on both domains;
//! as soon as the delivery log shows one message sent, the gateway is killed with
//! SIGKILL (no shutdown code runs), wherever the other deliveries and submissions are.
//! It is started again with the same configuration, the client submits the messages it
//! had not yet sent, and the queue drains.
//!
//! What is guaranteed, and asserted here from the recipients' own mailboxes:
//! - nothing accepted is lost: every message the client heard `250` for reaches every
//!   one of its recipients, opened and verified with the recipient's keys. (A submission
//!   the kill cut short before its `250` may or may not arrive, as with any mail server.)
//! - delivery is at least once, not exactly once: a kill that lands after the
//!   recipient's server stored a message but before the gateway recorded it as sent
//!   makes the restarted gateway send that row again. Every copy of one submission, at
//!   every recipient, carries the submission's own delivery id (`x-smimp-delivery` in the
//!   payload's extensions data), so the receiving gateway shows such a second copy once;
//!   no recipient ever gets more than two copies;
//! - the queue is empty afterwards: every row of the gateway's database is `sent`, none
//!   `queued` or `failed`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smimp_gateway::gateway::enroll::Initialised;
use smimp_gateway::mime::X_DELIVERY;
use smimp_gateway::smimp::envelope::StoredEnvelope;
use smimp_gateway::smimp::message::{MessageType, Payload};
use smimp_gateway::smimp::wire::{MessageList, Route};
use smimp_gateway::store::GatewayStore;

/// Messages submitted before the crash.
const MESSAGES: usize = 6;
/// Proof-of-work difficulty the servers ask for: a delivery takes long enough (tens to
/// hundreds of milliseconds in the test build) that the kill lands between the first
/// delivery and the last.
const ZERO_BITS: u32 = 16;
/// Upper bound for any wait in this test; reaching it fails the test.
const DEADLINE: Duration = Duration::from_secs(180);

/// The gateway binary, running as a child process with its output in files.
struct Gateway {
    child: Child,
    log: PathBuf,
    smtp_port: u16,
}

impl Gateway {
    /// Starts `smimp-gateway run --config CONFIG`, logging to `NAME.log`, and waits
    /// until it prints the port it listens on.
    fn start(dir: &Path, config: &Path, name: &str) -> Self {
        let out = dir.join(format!("{name}.out"));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_smimp-gateway"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let smtp_port = loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if let Some(port) = text
                .lines()
                .find(|l| l.contains("(STARTTLS)"))
                .and_then(|l| l.split_whitespace().find(|w| w.starts_with("127.0.0.1:")))
                .and_then(|w| w.rsplit(':').next()?.parse().ok())
            {
                break port;
            }
            assert!(started.elapsed() < DEADLINE, "the gateway did not start: {}", read(&log));
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, log, smtp_port }
    }

    /// How many deliveries this run's log reports as sent.
    fn sent(&self) -> usize {
        sent_in(&self.log)
    }

    /// SIGKILL: the process ends wherever it is, as in a crash or power loss.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Deliveries a gateway log reports as sent (one line each, recipient and PoW named).
fn sent_in(log: &Path) -> usize {
    read(log).lines().filter(|l| l.contains("outcome=\"sent\"")).count()
}

/// A mail client submitting as `alice` over STARTTLS, trusting only the gateway's CA.
fn mailer(ca: &[u8], port: u16, alice: &Initialised) -> AsyncSmtpTransport<Tokio1Executor> {
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(ca).unwrap())
        .build_rustls()
        .unwrap();
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("localhost")
        .port(port)
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(alice.username.clone(), alice.password.clone()))
        .authentication(vec![Mechanism::Plain])
        .build()
}

/// Submission `n`, to every recipient; its subject and body name `n`.
fn message(recipients: &[Account], n: usize) -> Message {
    let mut message = Message::builder().from("Alice <alice@example.org>".parse().unwrap());
    for recipient in recipients {
        message = message.to(recipient.address.to_email().parse().unwrap());
    }
    message.subject(format!("crash test {n}")).body(format!("body of message {n}\n")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_survives_sigkill_and_is_delivered_once_per_delivery_id() {
    let options = Options { zero_bits: ZERO_BITS, extra: String::new() };
    let (org, net) = start_pair(options).await;
    let client = Client::new(&[&org, &net]);
    let recipients = [
        create_account(&client, &net, "bob", 0).await,
        create_account(&client, &net, "carol", 0).await,
        create_account(&client, &org, "dave", 0).await,
    ];
    let dir = TempDir::new("gateway-crash");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let alice = init_on_gateway(&config, &org, "alice").await;

    let first = Gateway::start(&dir.0, &config, "first");
    let ca = std::fs::read(dir.0.join("data/tls/ca.pem")).unwrap();
    let first_log = first.log.clone();
    let first_mailer = mailer(&ca, first.smtp_port, &alice);

    // The crash: a watcher SIGKILLs the gateway as soon as its log shows one delivery,
    // wherever the submissions and the other deliveries are by then (the submissions
    // race with the deliveries, so waiting for all of them first could see every row sent).
    let killer = std::thread::spawn(move || {
        let started = Instant::now();
        while first.sent() == 0 {
            assert!(started.elapsed() < DEADLINE, "nothing was delivered: {}", read(&first.log));
            std::thread::sleep(Duration::from_millis(5));
        }
        first.kill();
    });
    // Messages the client heard 250 for, and the one the kill cut short (no reply):
    // that one may or may not have been queued, as with any SMTP server that crashes.
    let (mut accepted, mut unacknowledged, mut next) = (Vec::new(), None, 0);
    while next < MESSAGES {
        let result = first_mailer.send(message(&recipients, next)).await;
        next += 1;
        match result {
            Ok(reply) => {
                assert!(reply.is_positive(), "message {} was not accepted: {reply:?}", next - 1);
                accepted.push(next - 1);
            }
            Err(_) => {
                unacknowledged = Some(next - 1);
                break;
            }
        }
    }
    killer.join().unwrap();
    let sent_before = sent_in(&first_log);
    let store = GatewayStore::open(&dir.0.join("data/gateway.sqlite")).await.unwrap();
    let left = store.queue_depth().await.unwrap();
    eprintln!("killed after {} submissions, {sent_before} deliveries logged, {left} rows queued", accepted.len());
    assert!(sent_before >= 1 && left > 0, "the kill lands between the first delivery and the last");

    // Same configuration, new process: it picks the queue up where the crash left it, and
    // the client submits the rest of its messages to it.
    let second = Gateway::start(&dir.0, &config, "second");
    let second_mailer = mailer(&ca, second.smtp_port, &alice);
    for n in next..MESSAGES {
        let reply = second_mailer.send(message(&recipients, n)).await.unwrap();
        assert!(reply.is_positive(), "message {n} was not accepted after the restart: {reply:?}");
        accepted.push(n);
    }
    let started = Instant::now();
    while store.queue_depth().await.unwrap() > 0 {
        assert!(started.elapsed() < DEADLINE, "the queue did not drain: {}", read(&second.log));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(second.sent() >= 1, "the restarted gateway delivered the rest: {}", read(&second.log));
    second.kill();

    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.0.join("data/gateway.sqlite").display())).await.unwrap();
    // One row per recipient of every queued submission (the cut-short one may or may
    // not have been queued), every one sent: none failed, none left queued.
    let states: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM outbound GROUP BY state ORDER BY state")
            .fetch_all(&pool)
            .await
            .unwrap();
    let rows = |submissions: usize| vec![("sent".to_string(), (submissions * recipients.len()) as i64)];
    assert!(
        states == rows(accepted.len()) || (unacknowledged.is_some() && states == rows(accepted.len() + 1)),
        "every row was sent: {states:?} for {} accepted submissions",
        accepted.len()
    );

    // Every recipient opens what arrived: every accepted submission at least once, any
    // second copy the same delivery (same delivery id) as the first, and one delivery id
    // per submission, the same for every recipient.
    let mut ids: HashMap<String, serde_json::Value> = HashMap::new();
    for recipient in &recipients {
        let server = if recipient.address.domain() == net.domain { &net } else { &org };
        let session = login(&client, server, recipient).await;
        let list_url = url(server, &Route::ListMessages { message_type: MessageType::Email, folder_name: None });
        let list: MessageList = ok(client.get(&list_url, Some(&session.id)).await);
        let mut copies: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
        for summary in &list.messages {
            let stored: StoredEnvelope = ok(client
                .get(
                    &url(server, &Route::GetMessage { message_id: summary.message_id, update_read: false }),
                    Some(&session.id),
                )
                .await);
            assert_eq!(stored.server.sender, alice.address);
            let sender_key = stored.server.sender_public_key;
            let opened = stored
                .open(&sender_key, &recipient.key.public(), recipient.secret_for(&stored.sent.message_public_key))
                .unwrap();
            let Payload::Email(email) = Payload::parse(&MessageType::Email, &opened).unwrap() else {
                panic!("not an email")
            };
            let n = email.subject.strip_prefix("crash test ").unwrap_or_default();
            assert!(email.body.contains(&format!("body of message {n}")), "{}: {}", email.subject, email.body);
            let delivery = email.extensions_data.as_ref().and_then(|x| x.get(X_DELIVERY)).cloned();
            let delivery = delivery.unwrap_or_else(|| panic!("{} has no delivery id", email.subject));
            let first_seen = ids.entry(email.subject.clone()).or_insert_with(|| delivery.clone());
            assert_eq!(*first_seen, delivery, "{}: every copy of one submission has its delivery id", email.subject);
            copies.entry(email.subject.clone()).or_default().push(delivery);
        }
        for n in 0..MESSAGES {
            let subject = format!("crash test {n}");
            let found = copies.remove(&subject).unwrap_or_default();
            if accepted.contains(&n) {
                assert!(!found.is_empty(), "{subject} never reached {}: lost in the crash", recipient.address);
            }
            assert!(found.len() <= 2, "{subject} reached {} {} times", recipient.address, found.len());
            if found.len() == 2 {
                eprintln!("{subject} reached {} twice, with one delivery id", recipient.address);
            }
        }
        assert!(copies.is_empty(), "{} got messages nobody sent: {:?}", recipient.address, copies.keys());
    }
    let distinct: std::collections::HashSet<String> = ids.values().map(|v| v.to_string()).collect();
    assert_eq!(distinct.len(), ids.len(), "each submission has its own delivery id: {ids:?}");
    org.stop().await;
    net.stop().await;
}
