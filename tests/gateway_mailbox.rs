//! The IMAP view's backend against real SMIMP servers over TLS: mail sent through the
//! gateway's SMTP shows up in the recipient's INBOX verified and rendered; a tampered
//! envelope shows as a warning, never as its content; APPEND stores mail sealed on the
//! account's own server and gives it back byte for byte, after a restart too; flags
//! reach the server (another device sees them); MOVE and EXPUNGE act on the server; a
//! delivery that fails for good puts a multipart/report in the sender's INBOX; mail whose
//! sender's server cannot be reached waits unshown and appears verified once it answers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use mail_parser::MessageParser;
use smimp_gateway::backend::account::Account;
use smimp_gateway::backend::mailbox::{FlagChange, Mailboxes};
use smimp_gateway::backend::outbound::{attempt, enqueue, RetryPolicy};
use smimp_gateway::backend::relay::Relays;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::message::{Email, MessageType, Payload};
use smimp_gateway::store::{Flag, Flags, GatewayStore, Uid};

async fn mailboxes(ctx: &Context, store: GatewayStore) -> (Mailboxes, Arc<Account>, Arc<Account>) {
    let accounts = unlock_accounts(ctx).await.unwrap();
    let alice = accounts.values().find(|a| a.sender.address.local() == "alice").unwrap().clone();
    let bob = accounts.values().find(|a| a.sender.address.local() == "bob").unwrap().clone();
    (Mailboxes::new(store, ctx.discovery.clone(), accounts, 64 << 20), alice, bob)
}

/// Syncs `mailbox` until it holds `count` messages (bounded: delivery runs in the
/// background).
async fn wait_for(boxes: &Mailboxes, account: &Account, mailbox: &str, count: usize) -> Vec<Uid> {
    for _ in 0..150 {
        let (_, messages) = boxes.snapshot(account, mailbox, true).await.unwrap();
        if messages.len() >= count {
            return messages.iter().map(|m| m.uid).collect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{mailbox} never held {count} messages");
}

fn email_template() -> Email {
    Email {
        to: vec![],
        cc: vec![],
        subject: String::new(),
        thread_id: smimp_gateway::smimp::encoding::Id32::random(&mut rand_core::OsRng),
        reply_to_message_id: None,
        date_sent: now(),
        body: "text".into(),
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    }
}

fn header(bytes: &[u8], name: &str) -> String {
    let parsed = MessageParser::new().parse(bytes).expect("rendered mail parses");
    parsed.header_raw(name).unwrap_or_default().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mailbox_shows_verified_mail_and_keeps_changes_on_the_server() {
    let (org, net) = start_pair(Options::default()).await;
    let dir = TempDir::new("gateway-mailbox");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let alice_login = init_on_gateway(&config, &org, "alice").await;
    init_on_gateway(&config, &net, "bob").await;
    let running = common::start_gateway(&config).await;
    let ctx = Context::open(&config).await.unwrap();
    let (boxes, alice, bob) = mailboxes(&ctx, ctx.store.clone()).await;

    // Alice sends through the gateway's SMTP; Bob's INBOX shows it verified.
    let mailer = gateway_mailer(&running, &alice_login, Mechanism::Plain);
    for subject in ["Grüße über SMIMP", "second"] {
        let message = Message::builder()
            .from("Alice <alice@example.org>".parse().unwrap())
            .to("Bob <bob@example.net>".parse().unwrap())
            .subject(subject)
            .body("Hello Bob,\n\nthis left a legacy client as plain mail.\n".to_string())
            .unwrap();
        mailer.send(message).await.unwrap();
    }
    let uids = wait_for(&boxes, &bob, "INBOX", 2).await;
    assert_eq!(uids, vec![1, 2], "UIDs start at 1 and follow arrival");
    // Up to four deliveries run at once, so either message may have arrived first.
    let mut first = boxes.message(&bob, "INBOX", Uid::new(1)).await.unwrap();
    if MessageParser::new().parse(&first[..]).unwrap().subject() != Some("Grüße über SMIMP") {
        first = boxes.message(&bob, "INBOX", Uid::new(2)).await.unwrap();
    }
    let parsed = MessageParser::new().parse(&first[..]).unwrap();
    assert_eq!(parsed.subject(), Some("Grüße über SMIMP"));
    assert!(parsed.body_text(0).unwrap().contains("this left a legacy client as plain mail."));
    assert!(header(&first, "X-SMIMP-Verified").starts_with("pass"), "{}", header(&first, "X-SMIMP-Verified"));
    assert_eq!(parsed.from().and_then(|f| f.first()).and_then(|a| a.address()), Some("alice@example.org"));

    // The cache on disk is sealed: the subject is nowhere in the gateway's database.
    let database = std::fs::read_dir(dir.0.join("data"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("sqlite"))
        .flat_map(|e| std::fs::read(e.path()).unwrap())
        .collect::<Vec<u8>>();
    assert!(!database.is_empty());
    assert!(!database.windows(b"legacy client".len()).any(|w| w == b"legacy client"), "plaintext on disk");

    // A tampered envelope on the server shows as a warning, not as its content.
    let server_db =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", net.config.server.database.display())).await.unwrap();
    let (_, before) = boxes.snapshot(&bob, "INBOX", false).await.unwrap();
    sqlx::query(
        "UPDATE messages SET envelope = json_set(envelope, '$.message', \
         'AAAA' || substr(json_extract(envelope, '$.message'), 5)) WHERE message_id = ?",
    )
    .bind(before[1].message_id.to_hex())
    .execute(&server_db)
    .await
    .unwrap();
    // What was verified stays in this gateway's memory; a restarted gateway whose sealed
    // cache no longer holds the message fetches it again and meets the tampering.
    ctx.store.forget_cached(&bob.sender.address, &before[1].message_id).await.unwrap();
    let (restarted, _, restarted_bob) = mailboxes(&ctx, ctx.store.clone()).await;
    let warned = restarted.message(&restarted_bob, "INBOX", Uid::new(2)).await.unwrap();
    let text = String::from_utf8_lossy(&warned);
    assert!(text.contains("Subject: Unverified message from alice@example.org withheld"), "{text}");
    assert!(text.contains("failed verification"), "{text}");
    assert!(!text.contains("second") && !text.contains("legacy client"), "the content is never shown: {text}");

    // Flags: \Seen is the server's read status, others its sealed extensions data, so a
    // second device (a gateway with a database of its own) sees both.
    let changed = boxes
        .store_flags(
            &bob,
            "INBOX",
            &[Uid::new(1)],
            FlagChange::Add,
            &Flags::from_iter([Flag::Seen, Flag::Flagged, "$Work".parse().unwrap()]),
        )
        .await
        .unwrap();
    let changed: Vec<(u32, Vec<String>)> =
        changed.into_iter().map(|(uid, flags)| (uid.get(), flags.iter().map(ToString::to_string).collect())).collect();
    assert_eq!(changed, vec![(1, vec!["\\Seen".to_string(), "\\Flagged".into(), "$Work".into()])]);
    let other_dir = TempDir::new("gateway-mailbox-other-device");
    let other_store = GatewayStore::open(&other_dir.0.join("other.sqlite")).await.unwrap();
    let (other, _, other_bob) = mailboxes(&ctx, other_store).await;
    let (_, seen_there) = other.snapshot(&other_bob, "INBOX", true).await.unwrap();
    let flags = &seen_there.iter().find(|m| m.message_id == before[0].message_id).unwrap().flags;
    for flag in ["\\Seen", "\\Flagged", "$Work"] {
        assert!(flags.contains(&flag.parse().unwrap()), "the other device sees {flag}: {flags}");
    }

    // APPEND to Sent stores the exact bytes on the server; they survive a restart and a
    // cold cache.
    let raw = b"From: Bob <bob@example.net>\r\nTo: Alice <alice@example.org>\r\nSubject: kept as sent\r\n\
Message-ID: <appended.1@example.net>\r\nDate: Wed, 4 Nov 2026 10:00:00 +0000\r\n\r\nExactly these bytes.\r\n"
        .to_vec();
    let (validity, uid) = boxes.append(&bob, "Sent", &Flags::from_iter([Flag::Seen]), None, raw.clone()).await.unwrap();
    assert_eq!(uid, 1);
    // Shown with the notice that the account stored it, not verified as received mail.
    let notice = format!("X-SMIMP-Verified: {}\r\n", smimp_gateway::mime::own::STORED_VERIFIED);
    let shown = [notice.as_bytes(), &raw[..]].concat();
    assert_eq!(&boxes.message(&bob, "Sent", uid).await.unwrap()[..], &shown[..]);
    let (restarted, _, bob_again) = mailboxes(&ctx, ctx.store.clone()).await;
    let (sent, messages) = restarted.snapshot(&bob_again, "Sent", true).await.unwrap();
    assert_eq!((sent.uid_validity, messages.len(), messages[0].uid), (validity, 1, uid), "UIDs survive a restart");
    ctx.store.forget_cached(&bob.sender.address, &messages[0].message_id).await.unwrap();
    assert_eq!(&restarted.message(&bob_again, "Sent", uid).await.unwrap()[..], &shown[..], "refetched from the server");
    let (_, inbox) = restarted.snapshot(&bob_again, "INBOX", true).await.unwrap();
    assert_eq!(inbox.len(), 2, "the appended message is in Sent only");

    // MOVE to Archive on the server, then EXPUNGE of a \Deleted message.
    let (_, pairs) = boxes.copy(&bob, "INBOX", &[Uid::new(1)], "Archive", true).await.unwrap();
    let pairs: Vec<(u32, u32)> = pairs.into_iter().map(|(from, to)| (from.get(), to.get())).collect();
    assert_eq!(pairs, vec![(1, 1)]);
    let (_, archive) = other.snapshot(&other_bob, "Archive", true).await.unwrap();
    assert_eq!(archive.len(), 1, "the other device sees the move");
    // MOVE within one mailbox (RFC 6851): a copy with a new UID, and the original gone.
    let (_, pairs) = boxes.copy(&bob, "Archive", &[Uid::new(1)], "Archive", true).await.unwrap();
    let pairs: Vec<(u32, u32)> = pairs.into_iter().map(|(from, to)| (from.get(), to.get())).collect();
    assert_eq!(pairs, vec![(1, 2)]);
    let (_, archive) = boxes.snapshot(&bob, "Archive", true).await.unwrap();
    assert_eq!(archive.iter().map(|m| m.uid.get()).collect::<Vec<_>>(), [2], "the original is gone");
    let (_, archive) = other.snapshot(&other_bob, "Archive", true).await.unwrap();
    assert_eq!(archive.len(), 1, "and gone on the server");
    boxes
        .store_flags(&bob, "INBOX", &[Uid::new(2)], FlagChange::Add, &Flags::from_iter([Flag::Deleted]))
        .await
        .unwrap();
    assert_eq!(boxes.expunge(&bob, "INBOX", None).await.unwrap(), vec![2]);
    let (_, inbox) = other.snapshot(&other_bob, "INBOX", true).await.unwrap();
    assert!(inbox.is_empty(), "expunged on the server");
    let (_, inbox) = boxes.snapshot(&bob, "INBOX", true).await.unwrap();
    assert!(inbox.is_empty());
    let later = boxes.append(&bob, "INBOX", &Flags::default(), None, raw.clone()).await.unwrap();
    assert_eq!(later.1, 3, "UIDs are never given twice");

    // Mailboxes: create a hierarchy, rename it, delete it.
    boxes.create(&bob, "Projects/2026").await.unwrap();
    let subscribed: Vec<String> =
        boxes.list(&bob).await.unwrap().into_iter().filter(|m| m.subscribed).map(|m| m.name).collect();
    assert!(!subscribed.iter().any(|n| n.starts_with("Projects")), "CREATE does not subscribe: {subscribed:?}");
    assert!(subscribed.contains(&"Archive".to_string()), "folders found on the server do: {subscribed:?}");
    let names: Vec<String> = boxes.list(&bob).await.unwrap().into_iter().map(|m| m.name).collect();
    for name in ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Projects", "Projects/2026"] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    boxes.rename(&bob, "Projects", "Work").await.unwrap();
    let names: Vec<String> = boxes.list(&bob).await.unwrap().into_iter().map(|m| m.name).collect();
    assert!(names.contains(&"Work/2026".to_string()), "{names:?}");
    assert!(boxes.delete(&bob, "Work").await.unwrap_err().to_string().contains("mailboxes inside it"));
    boxes.delete(&bob, "Work/2026").await.unwrap();
    boxes.delete(&bob, "Work").await.unwrap();
    assert!(boxes.delete(&bob, "INBOX").await.unwrap_err().to_string().contains("INBOX cannot be deleted"));

    // A delivery that fails for good bounces: a multipart/report in Alice's INBOX.
    let ghost = Address::from_email("ghost@example.net").unwrap();
    let email = Email { to: vec![ghost.clone()], subject: "to nobody".into(), ..email_template() };
    let payload = Payload::Email(Box::new(email)).to_bytes();
    let policy = RetryPolicy::default();
    let at = now().unix();
    let ids = enqueue(&ctx.store, &alice.sender, &MessageType::Email, &payload, &[ghost], &policy, at).await.unwrap();
    let row = ctx.store.outbound(ids[0]).await.unwrap().unwrap();
    let failed =
        attempt(&ctx.discovery, &Relays::default(), &ctx.store, &alice.sender, &row, &policy, at).await.unwrap();
    let reason = failed.expect("the delivery failed for good");
    assert!(reason.contains("ghost#example.net") || reason.contains("ghost@example.net"), "{reason}");
    let report_row = ctx
        .store
        .due_outbound(at, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.recipient.smimp() == Some(&alice.sender.address));
    let report_row = report_row.expect("a report to the sender is queued");
    assert_eq!(
        attempt(&ctx.discovery, &Relays::default(), &ctx.store, &alice.sender, &report_row, &policy, at).await.unwrap(),
        None
    );
    let uids = wait_for(&boxes, &alice, "INBOX", 1).await;
    let report = boxes.message(&alice, "INBOX", uids[0]).await.unwrap();
    let parsed = MessageParser::new().parse(&report[..]).unwrap();
    assert!(header(&report, "Content-Type").starts_with("multipart/report; report-type=delivery-status"));
    assert_eq!(parsed.subject(), Some("Undelivered Mail: to nobody"));
    let text = String::from_utf8_lossy(&report);
    assert!(text.contains("Final-Recipient: rfc822; ghost@example.net"), "{text}");
    assert!(text.contains("there is no initialised account ghost#example.net"), "{text}");

    // Two copies of one submission (a delivery sent again after a crash) show once.
    let mut twice = Email { subject: "sent twice".into(), to: vec![bob.sender.address.clone()], ..email_template() };
    twice.extensions_data = Some(serde_json::Map::from_iter([(
        smimp_gateway::mime::X_DELIVERY.to_string(),
        serde_json::Value::String("0123456789abcdef0123456789abcdef".into()),
    )]));
    let payload = Payload::Email(Box::new(twice)).to_bytes();
    let (_, before) = boxes.snapshot(&bob, "INBOX", true).await.unwrap();
    for _ in 0..2 {
        let to = [bob.sender.address.clone()];
        let ids = enqueue(&ctx.store, &alice.sender, &MessageType::Email, &payload, &to, &policy, at).await.unwrap();
        let row = ctx.store.outbound(ids[0]).await.unwrap().unwrap();
        assert_eq!(
            attempt(&ctx.discovery, &Relays::default(), &ctx.store, &alice.sender, &row, &policy, at).await.unwrap(),
            None
        );
    }
    let (_, after) = boxes.snapshot(&bob, "INBOX", true).await.unwrap();
    assert_eq!(after.len(), before.len() + 1, "the second copy is not shown");

    // Keys added by `keys replenish` while the gateway runs open new mail at once.
    let added = smimp_gateway::gateway::enroll::replenish(&ctx, "bob@example.net", now().unix()).await.unwrap();
    assert!(added > 0, "bob's used ephemeral keys were replaced");
    let fresh = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("bob@example.net".parse().unwrap())
        .subject("to a new key")
        .body("Encrypted to a key added while the gateway ran.\n".to_string())
        .unwrap();
    mailer.send(fresh).await.unwrap();
    let uids = wait_for(&boxes, &bob, "INBOX", 3).await;
    let newest = boxes.message(&bob, "INBOX", *uids.last().unwrap()).await.unwrap();
    assert!(header(&newest, "X-SMIMP-Verified").starts_with("pass"), "{}", String::from_utf8_lossy(&newest));
    assert_eq!(MessageParser::new().parse(&newest[..]).unwrap().subject(), Some("to a new key"));

    running.stop().await;
    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_from_a_sender_whose_server_cannot_be_reached_waits_unshown_then_shows_verified() {
    let (org, net) = start_pair(Options::default()).await;
    let dir = TempDir::new("gateway-sender-away");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let alice_login = init_on_gateway(&config, &org, "alice").await;
    init_on_gateway(&config, &net, "bob").await;
    // The same gateway, but the sender's domain (example.org) resolves to a closed port.
    let text = std::fs::read_to_string(&config).unwrap();
    let away = text.replace(&format!("\"example.org\" = \"{}\"", org.addr), "\"example.org\" = \"127.0.0.1:9\"");
    assert_ne!(away, text, "the sender's domain is redirected");
    let away_config = dir.0.join("gateway-away.toml");
    std::fs::write(&away_config, away).unwrap();

    let running = common::start_gateway(&config).await;
    let ctx = Context::open(&config).await.unwrap();
    let mailer = gateway_mailer(&running, &alice_login, Mechanism::Plain);
    let message = Message::builder()
        .from("Alice <alice@example.org>".parse().unwrap())
        .to("Bob <bob@example.net>".parse().unwrap())
        .subject("while you were away")
        .body("the words only a verified sender may show\n".to_string())
        .unwrap();
    mailer.send(message).await.unwrap();
    for _ in 0..150 {
        let recent = ctx.store.recent_deliveries(20).await.unwrap();
        if recent.iter().any(|d| d.state == "sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recent = ctx.store.recent_deliveries(20).await.unwrap();
    assert!(recent.iter().any(|d| d.state == "sent"), "delivered to bob's server: {recent:?}");

    // Alice's server cannot be asked for her key: the message is not shown, in any form.
    let away_ctx = Context::open(&away_config).await.unwrap();
    let (away_boxes, _, away_bob) = mailboxes(&away_ctx, away_ctx.store.clone()).await;
    for _ in 0..3 {
        let (_, messages) = away_boxes.snapshot(&away_bob, "INBOX", true).await.unwrap();
        assert!(messages.is_empty(), "shown while its sender cannot be checked: {messages:?}");
    }

    // Her server answers again: the message appears, verified.
    let (boxes, _, bob) = mailboxes(&ctx, ctx.store.clone()).await;
    let uids = wait_for(&boxes, &bob, "INBOX", 1).await;
    assert_eq!(uids.len(), 1);
    let shown = boxes.message(&bob, "INBOX", uids[0]).await.unwrap();
    let parsed = MessageParser::new().parse(&shown[..]).unwrap();
    assert_eq!(parsed.subject(), Some("while you were away"));
    assert!(parsed.body_text(0).unwrap().contains("the words only a verified sender may show"));
    assert!(header(&shown, "X-SMIMP-Verified").starts_with("pass"), "{}", header(&shown, "X-SMIMP-Verified"));
    running.stop().await;
    org.stop().await;
    net.stop().await;
}
