//! One account on two gateways (two devices), each with its own data directory, against
//! one real reference server over real TLS: a flag or keyword set over IMAP on device A
//! reaches device B through the server's `x-changes` feed (docs/protocol.md §8.29) — an
//! IDLE client on B is told, and a client reconnecting to B resyncs in one round trip
//! with QRESYNC (RFC 7162), expunges included.
//!
//! Until device enrollment exists, device B is made by copying A's keystore file (made
//! by `init`) into B's data directory and registering the account in B's store, which is
//! what enrollment will leave behind.

mod common;

use std::path::Path;
use std::time::Duration;

use common::imap_client::{gateway_login as login, Client};
use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use smimp_gateway::gateway::enroll::Initialised;
use smimp_gateway::store::AccountRecord;

const IMAP: &str =
    "[imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\npoll_interval = \"1s\"\n[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";

/// Device B: its own configuration and data directory, holding a copy of A's keystore.
async fn second_device(dir: &TempDir, server: &TestServer, alice: &Initialised) -> std::path::PathBuf {
    let config = write_gateway_config(dir, &[server], IMAP);
    let keystores = dir.0.join("data").join("keystores");
    std::fs::create_dir_all(&keystores).unwrap();
    let copy = keystores.join(alice.keystore.file_name().unwrap());
    std::fs::copy(&alice.keystore, &copy).unwrap();
    let ctx = smimp_gateway::gateway::context::Context::open(&config).await.unwrap();
    let record = AccountRecord {
        address: alice.address.clone(),
        keystore_path: copy.display().to_string(),
        username: alice.username.clone(),
        created_at: 0,
    };
    ctx.store.add_account(&record).await.unwrap();
    config
}

/// SELECTs INBOX (with `how` after the name) until it holds `count` messages.
async fn select_until(client: &mut Client, how: &str, count: usize) -> Vec<String> {
    for round in 0..150 {
        let response = client.cmd(&format!("s{round}"), &format!("SELECT INBOX{how}")).await;
        if response.iter().any(|l| l == &format!("* {count} EXISTS")) {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("INBOX never held {count} messages");
}

/// The number in `[CODE n]` of a SELECT's answer.
fn code(lines: &[String], name: &str) -> u64 {
    let line =
        lines.iter().find(|l| l.contains(&format!("[{name} "))).unwrap_or_else(|| panic!("no {name}: {lines:?}"));
    let start = line.find(&format!("[{name} ")).unwrap() + name.len() + 2;
    line[start..].split(']').next().unwrap().parse().unwrap()
}

/// Reads untagged lines during IDLE until one satisfies `wanted`.
async fn idle_until(client: &mut Client, wanted: impl Fn(&str) -> bool) -> String {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = client.line().await;
            if wanted(&line) {
                return line;
            }
        }
    })
    .await
    .expect("IDLE told of the change in time")
}

fn config_dir(config: &Path) -> &Path {
    config.parent().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flag_set_on_one_device_reaches_the_other_by_idle_and_qresync() {
    let org = start_one(Options::default()).await;
    let dir_a = TempDir::new("device-a");
    let config_a = write_gateway_config(&dir_a, &[&org], IMAP);
    let alice = init_on_gateway(&config_a, &org, "alice").await;
    let bob = init_on_gateway(&config_a, &org, "bob").await;
    let dir_b = TempDir::new("device-b");
    let config_b = second_device(&dir_b, &org, &alice).await;
    assert_ne!(config_dir(&config_a), config_dir(&config_b), "separate data directories");

    // Two messages to alice, read on device A.
    let device_a = start_gateway(&config_a).await;
    let smtp = gateway_mailer(&device_a, &bob, Mechanism::Plain);
    for n in 1..=2 {
        let message = Message::builder()
            .from("bob@example.org".parse().unwrap())
            .to("alice@example.org".parse().unwrap())
            .subject(format!("note {n}"))
            .body(format!("Note {n}.\n"))
            .unwrap();
        smtp.send(message).await.unwrap();
    }
    let mut a = login(&device_a, &alice.username, &alice.password).await;
    select_until(&mut a, "", 2).await;

    // Device B sees them too; a client remembers its state, another one IDLEs.
    let device_b = start_gateway(&config_b).await;
    let mut b = login(&device_b, &alice.username, &alice.password).await;
    assert_eq!(b.cmd("e1", "ENABLE QRESYNC").await, ["* ENABLED CONDSTORE QRESYNC", "e1 OK ENABLE completed"]);
    let before = select_until(&mut b, "", 2).await;
    let (validity, modseq) = (code(&before, "UIDVALIDITY"), code(&before, "HIGHESTMODSEQ"));
    let fetched = b.cmd("f1", "UID FETCH 1:* (FLAGS)").await;
    assert!(!fetched.iter().any(|l| l.contains("\\Flagged")), "{fetched:?}");
    b.cmd("l1", "LOGOUT").await;
    let mut idle = login(&device_b, &alice.username, &alice.password).await;
    assert_eq!(idle.cmd("e2", "ENABLE CONDSTORE").await[0], "* ENABLED CONDSTORE");
    select_until(&mut idle, "", 2).await;
    idle.send("i1 IDLE").await;
    assert_eq!(idle.line().await, "+ idling");

    // On A: a flag and a keyword on UID 1, and UID 2 expunged.
    let stored = a.cmd("a1", "UID STORE 1 +FLAGS ($Work \\Flagged)").await;
    assert!(stored.last().unwrap().starts_with("a1 OK"), "{stored:?}");
    assert!(a.cmd("a2", "UID STORE 2 +FLAGS.SILENT (\\Deleted)").await.last().unwrap().starts_with("a2 OK"));
    assert!(a.cmd("a3", "EXPUNGE").await.last().unwrap().starts_with("a3 OK"));

    // B's IDLE client is told, with the change's modseq.
    let told = idle_until(&mut idle, |l| l.starts_with("* 1 FETCH") && l.contains("\\Flagged")).await;
    assert!(told.contains("$Work") && told.contains("MODSEQ ("), "{told}");
    idle.send("DONE").await;
    let done = idle.response("i1").await;
    assert_eq!(done.last().unwrap(), "i1 OK IDLE terminated", "{done:?}");

    // A client reconnecting to B resyncs in one SELECT.
    let mut again = login(&device_b, &alice.username, &alice.password).await;
    again.cmd("e3", "ENABLE QRESYNC").await;
    let resynced = eventually("B to know of the expunge", async || {
        let lines = again.cmd("r1", &format!("SELECT INBOX (QRESYNC ({validity} {modseq}))")).await;
        lines.iter().any(|l| l.starts_with("* VANISHED (EARLIER)")).then_some(lines)
    })
    .await;
    assert!(resynced.contains(&"* VANISHED (EARLIER) 2".to_string()), "{resynced:?}");
    let flags = resynced.iter().find(|l| l.starts_with("* 1 FETCH (UID 1 ")).expect("UID 1's change");
    assert!(flags.contains("\\Flagged") && flags.contains("$Work") && flags.contains("MODSEQ ("), "{flags}");
    assert!(code(&resynced, "HIGHESTMODSEQ") > modseq);
    assert!(resynced.contains(&"* 1 EXISTS".to_string()), "{resynced:?}");

    device_b.stop().await;
    device_a.stop().await;
    org.stop().await;
}
