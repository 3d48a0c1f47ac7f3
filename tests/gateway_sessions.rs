//! One SMIMP session per account and server: deliveries, APPENDs, the mailbox sync and
//! key upkeep share the account's one session at each server, so a client that sends
//! and uploads many messages logs in once per server, not once per message (the
//! reference server allows 60 logins a minute from one address by default).

mod common;

use std::time::Duration;

use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};

/// Messages each way: within the server's default of 120 message keys and proof-of-work
/// requests a minute per session (two per message).
const COUNT: usize = 50;

async fn count(server: &TestServer, sql: &str, address: &str) -> i64 {
    let url = format!("sqlite://{}", server.config.server.database.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).bind(address).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_appends_share_one_session_per_server() {
    let (org, net) = start_pair(Options::default()).await;
    assert_eq!(org.config.limits.create_session_per_minute, 60, "the shipped login limit");
    let dir = TempDir::new("gateway-sessions");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let alice = init_on_gateway(&config, &org, "alice").await;
    init_on_gateway(&config, &net, "bob").await;
    let sessions_before = count(&org, "SELECT COUNT(*) FROM sessions WHERE address = ?", "alice#example.org").await;
    let running = common::start_gateway(&config).await;

    let mailer = gateway_mailer(&running, &alice, Mechanism::Plain);
    for n in 0..COUNT {
        let message = Message::builder()
            .from("Alice <alice@example.org>".parse().unwrap())
            .to("Bob <bob@example.net>".parse().unwrap())
            .subject(format!("message {n}"))
            .body(format!("number {n}\n"))
            .unwrap();
        mailer.send(message).await.unwrap();
    }
    let mut imap = common::imap_client::gateway_login(&running, &alice.username, &alice.password).await;
    for n in 0..COUNT {
        let raw = format!("From: alice@example.org\r\nSubject: draft {n}\r\n\r\nDraft number {n}.\r\n");
        imap.send(&format!("p{n} APPEND Sent {{{}+}}", raw.len())).await;
        imap.send_raw(raw.as_bytes()).await;
        imap.send("").await;
        let response = imap.response(&format!("p{n}")).await;
        assert!(response.last().unwrap().starts_with(&format!("p{n} OK")), "APPEND {n}: {response:?}");
    }

    let received = "SELECT COUNT(*) FROM messages WHERE recipient = ? AND folder_name IS NULL";
    for _ in 0..300 {
        if count(&net, received, "bob#example.net").await >= COUNT as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&net, received, "bob#example.net").await, COUNT as i64, "every message reached Bob's server");
    let sessions = "SELECT COUNT(*) FROM sessions WHERE address = ?";
    assert_eq!(count(&net, sessions, "alice#example.org").await, 1, "one session of Alice's at Bob's server");
    let own = count(&org, sessions, "alice#example.org").await - sessions_before;
    assert_eq!(own, 1, "one session of Alice's at her own server for APPEND, sync and key upkeep");
    imap.cmd("z", "LOGOUT").await;
    running.stop().await;
    net.stop().await;
    org.stop().await;
}
