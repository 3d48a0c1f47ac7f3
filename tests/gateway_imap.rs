//! The gateway's IMAP against real SMIMP servers over real TLS, in transcript style:
//! mail sent through the gateway's SMTP is read decrypted and verified; two sessions on
//! one mailbox see each other's flag changes and expunges as RFC 3501 says (never an
//! EXPUNGE during FETCH); a tampered envelope shows as a warning in place of its
//! content; and a restart of the gateway keeps UIDVALIDITY and every UID, and does not
//! make mail that sessions were told of `\Recent` again.

mod common;

use std::time::Duration;

use common::imap_client::{gateway_login as login, Client};
use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};

/// SELECTs INBOX until it holds `count` messages (delivery runs in the background).
async fn select_until(client: &mut Client, count: usize) -> Vec<String> {
    for round in 0..150 {
        let response = client.cmd(&format!("s{round}"), "SELECT INBOX").await;
        if response.iter().any(|l| l == &format!("* {count} EXISTS")) {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("INBOX never held {count} messages");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_shows_verified_mail_to_concurrent_sessions_and_keeps_uids_across_a_restart() {
    let (org, net) = start_pair(Options::default()).await;
    let dir = TempDir::new("gateway-imap");
    let extra = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n[imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\npoll_interval = \"1s\"\n";
    let config = write_gateway_config(&dir, &[&org, &net], extra);
    let alice = init_on_gateway(&config, &org, "alice").await;
    let bob = init_on_gateway(&config, &net, "bob").await;
    let running = common::start_gateway(&config).await;
    let smtp = gateway_mailer(&running, &alice, Mechanism::Plain);
    for n in 1..=3 {
        let message = Message::builder()
            .from("Alice <alice@example.org>".parse().unwrap())
            .to("Bob <bob@example.net>".parse().unwrap())
            .subject(format!("note {n}"))
            .body(format!("Body of note {n}, sealed on the way.\n"))
            .unwrap();
        smtp.send(message).await.unwrap();
    }

    let mut one = login(&running, &bob.username, &bob.password).await;
    let selected = select_until(&mut one, 3).await;
    let validity = selected.iter().find(|l| l.contains("UIDVALIDITY")).unwrap().clone();
    let fetched = one.cmd("f1", "UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])").await;
    // UIDs follow arrival at the server, and the gateway delivers up to four messages at
    // once, so which note holds which UID is read from the answer: note_of[uid - 1].
    let note_of: Vec<u32> = (1..=3u32)
        .map(|uid| {
            let line = fetched.iter().find(|l| l.contains(&format!("(UID {uid} "))).unwrap_or_else(|| {
                panic!("UID {uid} is missing: {fetched:?}");
            });
            (1..=3u32).find(|n| line.contains(&format!("Subject: note {n}\r\n"))).unwrap_or_else(|| {
                panic!("UID {uid} shows no note: {line}");
            })
        })
        .collect();
    let mut seen = note_of.clone();
    seen.sort();
    assert_eq!(seen, [1, 2, 3], "each note has one UID: {fetched:?}");
    let uid_of_note_2 = note_of.iter().position(|n| *n == 2).unwrap() + 1;
    let body = one.cmd("f2", &format!("UID FETCH {uid_of_note_2} (BODY[TEXT])")).await;
    assert!(body.iter().any(|l| l.contains("Body of note 2, sealed on the way.")), "{body:?}");
    assert!(body.iter().any(|l| l.contains("\\Seen")), "a non-PEEK fetch sets \\Seen: {body:?}");

    // A second session on the same mailbox.
    let mut two = login(&running, &bob.username, &bob.password).await;
    let response = two.cmd("t1", "SELECT INBOX").await;
    assert!(response.iter().any(|l| l == "* 3 EXISTS"), "{response:?}");
    let response = two.cmd("t2", "STORE 1 +FLAGS (\\Flagged)").await;
    assert!(response.iter().any(|l| l.starts_with("* 1 FETCH (") && l.contains("\\Flagged")), "{response:?}");
    let response = one.cmd("n1", "NOOP").await;
    assert!(response.iter().any(|l| l.starts_with("* 1 FETCH (") && l.contains("\\Flagged")), "{response:?}");
    // Session two expunges message 1; session one learns it on NOOP, not during FETCH.
    let response = two.cmd("t3", "STORE 1 +FLAGS.SILENT (\\Deleted)").await;
    assert_eq!(response.last().unwrap(), "t3 OK STORE completed", "{response:?}");
    let response = two.cmd("t4", "EXPUNGE").await;
    assert!(response.contains(&"* 1 EXPUNGE".to_string()), "{response:?}");
    let response = one.cmd("f3", "FETCH 1:3 (UID)").await;
    assert!(!response.iter().any(|l| l.contains("EXPUNGE")), "no EXPUNGE during FETCH: {response:?}");
    let response = one.cmd("n2", "NOOP").await;
    assert!(response.contains(&"* 1 EXPUNGE".to_string()), "{response:?}");
    let response = one.cmd("f4", "FETCH 1:* (UID)").await;
    assert!(response.contains(&"* 1 FETCH (UID 2)".to_string()) && response.contains(&"* 2 FETCH (UID 3)".to_string()));

    // A tampered envelope on the server shows as a warning, never as its content.
    let server_db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", net.config.server.database.display())).await.unwrap();
    let fourth = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("bob@example.net".parse().unwrap())
        .subject("tampered")
        .body("This text must never be shown.\n".to_string())
        .unwrap();
    smtp.send(fourth).await.unwrap();
    let mut tampered = 0;
    for _ in 0..150 {
        tampered = sqlx::query(
            "UPDATE messages SET envelope = json_set(envelope, '$.message', \
             'AAAA' || substr(json_extract(envelope, '$.message'), 5)) \
             WHERE rowid = (SELECT MAX(rowid) FROM messages WHERE recipient = 'bob#example.net') \
             AND (SELECT COUNT(*) FROM messages WHERE recipient = 'bob#example.net') = 3",
        )
        .execute(&server_db)
        .await
        .unwrap()
        .rows_affected();
        if tampered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tampered, 1, "the fourth message arrived and was tampered with");
    let mut three = login(&running, &bob.username, &bob.password).await;
    select_until(&mut three, 3).await;
    let response = three.cmd("w1", "UID FETCH 4 (BODY.PEEK[])").await;
    let text = response.join("\n");
    assert!(text.contains("withheld") && text.contains("failed verification"), "{text}");
    assert!(!text.contains("must never be shown"), "{text}");

    // A restart keeps UIDVALIDITY and the UIDs.
    running.stop().await;
    let running = common::start_gateway(&config).await;
    let mut again = login(&running, &bob.username, &bob.password).await;
    let selected = again.cmd("r1", "SELECT INBOX").await;
    assert!(selected.contains(&validity), "the same {validity}: {selected:?}");
    // Sessions before the restart were told of every message: none is \Recent again.
    assert!(selected.contains(&"* 0 RECENT".to_string()), "{selected:?}");
    let response = again.cmd("r2", "UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])").await;
    let uids: Vec<&String> = response.iter().filter(|l| l.starts_with("* ")).collect();
    assert_eq!(uids.len(), 3, "{response:?}");
    // Message 1 (UID 1) was expunged; UIDs 2 and 3 keep their notes.
    assert!(uids[0].contains("UID 2") && uids[0].contains(&format!("note {}", note_of[1])), "{response:?}");
    assert!(uids[1].contains("UID 3") && uids[1].contains(&format!("note {}", note_of[2])), "{response:?}");
    assert!(uids[2].contains("UID 4"), "{response:?}");

    running.stop().await;
    org.stop().await;
    net.stop().await;
}
