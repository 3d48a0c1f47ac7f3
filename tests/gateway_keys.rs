//! `run` keeps the ephemeral-key supply: mail to an account uses up its single-use
//! keys; the running gateway sees the supply fall below half its target, tops it up
//! on the server (the new secrets saved in the keystore first), and mail sealed to the
//! new keys opens at once — read decrypted and verified over the gateway's IMAP.

mod common;

use std::time::Duration;

use common::imap_client::gateway_login;
use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};

async fn available_keys(db: &sqlx::SqlitePool, address: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM message_keys WHERE address = ? AND state = 'available'")
        .bind(address)
        .fetch_one(db)
        .await
        .unwrap()
}

fn note(n: u32) -> Message {
    Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("bob@example.net".parse().unwrap())
        .subject(format!("key note {n}"))
        .body(format!("Sealed to one of bob's single-use keys ({n}).\n"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tops_up_ephemeral_keys_and_mail_to_the_new_keys_opens() {
    let (org, net) = start_pair(Options::default()).await;
    let dir = TempDir::new("gateway-keys");
    let extra = "[keys]\nephemeral_target = 4\nreplenish_every = \"1s\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n";
    let config = write_gateway_config(&dir, &[&org, &net], extra);
    let alice = init_on_gateway(&config, &org, "alice").await;
    let bob = init_on_gateway(&config, &net, "bob").await;
    let server_db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", net.config.server.database.display())).await.unwrap();
    assert_eq!(available_keys(&server_db, "bob#example.net").await, 4, "init uploads the target");
    let keys_at_init: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_keys WHERE address = 'bob#example.net'")
        .fetch_one(&server_db)
        .await
        .unwrap();

    let running = common::start_gateway(&config).await;
    let smtp = gateway_mailer(&running, &alice, Mechanism::Plain);
    for n in 1..=3 {
        smtp.send(note(n)).await.unwrap();
    }
    // Three of four keys used, one left: below half the target, so the next round tops up.
    let mut topped_up = false;
    for _ in 0..200 {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM message_keys WHERE address = 'bob#example.net'")
            .fetch_one(&server_db)
            .await
            .unwrap();
        if total > keys_at_init && available_keys(&server_db, "bob#example.net").await == 4 {
            topped_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(topped_up, "the running gateway put bob's supply back to 4 unissued keys");

    // Mail sealed to the new keys (at most one old key is left) opens in the running
    // gateway, verified.
    for n in 4..=6 {
        smtp.send(note(n)).await.unwrap();
    }
    let mut imap = gateway_login(&running, &bob.username, &bob.password).await;
    let mut fetched = Vec::new();
    for round in 0..150 {
        let selected = imap.cmd(&format!("s{round}"), "SELECT INBOX").await;
        if selected.iter().any(|l| l == "* 6 EXISTS") {
            fetched = imap.cmd("f1", "UID FETCH 1:6 (BODY.PEEK[HEADER.FIELDS (SUBJECT X-SMIMP-VERIFIED)])").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 1..=6 {
        let line = fetched.iter().position(|l| l.contains(&format!("Subject: key note {n}")));
        assert!(line.is_some(), "note {n} is shown: {fetched:?}");
    }
    let verified = fetched.iter().filter(|l| l.contains("\r\nX-SMIMP-Verified: pass; ")).count();
    assert_eq!(verified, 6, "every note is verified and decrypted: {fetched:?}");

    running.stop().await;
    org.stop().await;
    net.stop().await;
}
