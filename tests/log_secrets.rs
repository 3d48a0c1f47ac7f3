//! No log line ever holds a subject, a body line, a password or a key: the gateway and
//! both reference servers run in this process at the most verbose level (`trace`, every
//! crate) through a full send and receive, SMTP in and IMAP out, and every line they
//! wrote is searched for each secret the run used, in the forms it could be written.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;
use smimp_gateway::server::admin;
use smimp_gateway::smimp::encoding::base64_encode;

const SUBJECT: &str = "Quarterly ledger for the lighthouse fund";
const BODY_LINE: &str = "Meet me by the old lighthouse at nine, bring the blue folder.";
const PASSPHRASE: &str = "keystore-passphrase-oyster-quill-98";

/// Every line any subscriber layer wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Creates `local` on `server` and runs `init` on the gateway: the gateway login and
/// the server's one-time password, both secrets.
async fn enrol(config: &std::path::Path, server: &TestServer, local: &str) -> (String, String, String) {
    let email = format!("{local}@{}", server.domain);
    let (_, one_time) = admin::add_account(&server.config, &server.state.store, &email, 0).await.unwrap();
    let ctx = Context::open(config).await.unwrap();
    let login = smimp_gateway::gateway::enroll::init(&ctx, &email, &one_time, now().unix()).await.unwrap();
    (login.username, login.password, one_time)
}

/// The forms a 32-byte secret could take in a log line.
fn spellings(bytes: &[u8]) -> Vec<String> {
    vec![hex::encode(bytes), hex::encode_upper(bytes), base64_encode(bytes), format!("{bytes:?}")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_holds_a_subject_body_password_or_key() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let (org, net) = start_pair(Options::default()).await;
    let dir = TempDir::new("log-secrets");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    std::fs::write(dir.0.join("passphrase.txt"), format!("{PASSPHRASE}\n")).unwrap();
    let (alice_user, alice_password, alice_once) = enrol(&config, &org, "alice").await;
    let (bob_user, bob_password, bob_once) = enrol(&config, &net, "bob").await;
    let running = common::start_gateway(&config).await;

    let login = smimp_gateway::gateway::enroll::Initialised {
        address: "alice#example.org".parse().unwrap(),
        username: alice_user,
        password: alice_password.clone(),
        keystore: dir.0.clone(),
    };
    let message = Message::builder()
        .from("Alice <alice@example.org>".parse().unwrap())
        .to("Bob <bob@example.net>".parse().unwrap())
        .subject(SUBJECT)
        .body(format!("Bob,\n\n{BODY_LINE}\n"))
        .unwrap();
    gateway_mailer(&running, &login, Mechanism::Plain).send(message).await.unwrap();

    let mut imap = common::imap_client::gateway_login(&running, &bob_user, &bob_password).await;
    let mut fetched = String::new();
    for attempt in 0..100 {
        imap.cmd(&format!("s{attempt}"), "SELECT INBOX").await;
        fetched = imap.cmd(&format!("f{attempt}"), "FETCH 1 BODY[]").await.join("\n");
        if fetched.contains(BODY_LINE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fetched.contains(BODY_LINE) && fetched.contains(SUBJECT), "Bob's client read the mail: {fetched}");
    imap.cmd("z", "LOGOUT").await;

    let mut secrets: Vec<(String, String)> = vec![
        ("the subject".into(), SUBJECT.into()),
        ("a body line".into(), BODY_LINE.into()),
        ("the keystore passphrase".into(), PASSPHRASE.into()),
        ("alice's gateway password".into(), alice_password),
        ("bob's gateway password".into(), bob_password),
        ("alice's one-time server password".into(), alice_once),
        ("bob's one-time server password".into(), bob_once),
    ];
    let ctx = Context::open(&config).await.unwrap();
    for account in unlock_accounts(&ctx).await.unwrap().values() {
        let keystore = account.keystore();
        let who = account.sender.address.to_string();
        let mut keys =
            vec![("master key", keystore.master().seed()), ("storage key", keystore.storage_key().to_bytes())];
        keys.extend(keystore.message_keys().iter().map(|k| ("message key", k.secret().to_bytes())));
        for (what, bytes) in keys {
            secrets.extend(spellings(&bytes[..]).into_iter().map(|s| (format!("{who}'s {what}"), s)));
        }
    }
    running.stop().await;
    net.stop().await;
    org.stop().await;

    let logs = captured.text();
    assert!(logs.lines().count() > 100, "the run logged at the most verbose level: {} lines", logs.lines().count());
    for (what, secret) in &secrets {
        if let Some(line) = logs.lines().find(|line| line.contains(secret.as_str())) {
            panic!("{what} is in a log line: {line}");
        }
    }
    // The search itself can fail: a line that does carry a secret is found.
    tracing::trace!(subject = SUBJECT, "a line that leaks");
    assert!(captured.text().lines().any(|line| line.contains(SUBJECT)), "the capture sees trace lines");
}
