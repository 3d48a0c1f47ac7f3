//! What a message carries from a legacy client, through the gateway's SMTP, SMIMP and
//! the recipients' gateway mailboxes: To and Cc as written, a blind copy that reaches
//! its recipient without any other copy naming it, UTF-8 headers and 8-bit bodies,
//! attachments with their names and types, a reply that joins the thread of the
//! sender's own Sent copy, and a 20 MB message — each checked in what every recipient
//! decrypts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use mail_parser::{MessageParser, MimeHeaders};
use smimp_gateway::backend::account::Account;
use smimp_gateway::backend::mailbox::Mailboxes;
use smimp_gateway::gateway::context::Context;
use smimp_gateway::gateway::unlock_accounts;

async fn inbox(boxes: &Mailboxes, account: &Account, count: usize) -> Vec<Vec<u8>> {
    for _ in 0..300 {
        let (_, messages) = boxes.snapshot(account, "INBOX", true).await.unwrap();
        if messages.len() >= count {
            let mut out = Vec::new();
            for message in messages {
                out.push(boxes.message(account, "INBOX", message.uid).await.unwrap().to_vec());
            }
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never received {count} messages", account.sender.address);
}

/// The SMIMP thread of a shown message: the thread its recipient's gateway recorded for
/// the Message-ID the mail client sees (the sender's own, since messages arrive as
/// they were written).
async fn thread_of(ctx: &Context, account: &Account, bytes: &[u8]) -> String {
    let parsed = MessageParser::new().parse(bytes).unwrap();
    let id = parsed.message_id().expect("a Message-ID").to_string();
    let entries = ctx.store.thread_entries(&account.sender.address, &[id]).await.unwrap();
    entries.first().expect("the shown Message-ID is in the thread map").1.thread_id.to_hex()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_decrypt_what_the_client_wrote_and_bcc_never_leaks() {
    let (org, net) = start_pair(Options::default()).await;
    let dir = TempDir::new("gateway-smtp-content");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let alice_login = init_on_gateway(&config, &org, "alice").await;
    for user in ["bob", "carol", "dave"] {
        init_on_gateway(&config, &net, user).await;
    }
    let running = common::start_gateway(&config).await;
    let ctx = Context::open(&config).await.unwrap();
    let accounts = unlock_accounts(&ctx).await.unwrap();
    let user = |local: &str| -> Arc<Account> {
        accounts.values().find(|a| a.sender.address.local() == local).unwrap().clone()
    };
    let boxes = Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts.clone(), 256 << 20);

    let mailer = gateway_mailer(&running, &alice_login, Mechanism::Login);

    let pdf: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let original = Message::builder()
        .from("Alice Müller <alice@example.org>".parse().unwrap())
        .to("Bob <bob@example.net>".parse().unwrap())
        .cc("Carol <carol@example.net>".parse().unwrap())
        .bcc("dave@example.net".parse().unwrap())
        .message_id(Some("<original.1@alice.example.org>".into()))
        .subject("Änderungen — 日本語 ✓")
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain("Grüße! The report is attached.\n".to_string()))
                .singlepart(
                    Attachment::new("bericht über Q3.pdf".into()).body(pdf.clone(), "application/pdf".parse().unwrap()),
                ),
        )
        .unwrap();
    mailer.send(original).await.unwrap();

    for local in ["bob", "carol", "dave"] {
        let received = inbox(&boxes, &user(local), 1).await;
        assert_eq!(received.len(), 1, "{local} gets exactly one copy");
        let text = String::from_utf8_lossy(&received[0]).to_string();
        let parsed = MessageParser::new().parse(&received[0]).unwrap();
        assert_eq!(parsed.subject(), Some("Änderungen — 日本語 ✓"), "{local}");
        assert!(parsed.body_text(0).unwrap().contains("Grüße! The report is attached."), "{local}");
        let to: Vec<&str> = parsed.to().unwrap().iter().filter_map(|a| a.address()).collect();
        let cc: Vec<&str> = parsed.cc().unwrap().iter().filter_map(|a| a.address()).collect();
        assert_eq!((to, cc), (vec!["bob@example.net"], vec!["carol@example.net"]), "{local}");
        assert!(!text.to_lowercase().contains("dave@"), "no copy names the blind recipient ({local}): {text}");
        let attachment = parsed.attachment(0).expect("the attachment arrives");
        assert_eq!(attachment.attachment_name(), Some("bericht über Q3.pdf"));
        assert!(attachment.content_type().is_some_and(|c| c.ctype() == "application" && c.subtype() == Some("pdf")));
        assert_eq!(attachment.contents(), &pdf[..], "{local}: the attachment's bytes");
    }
    let first_thread = thread_of(&ctx, &user("bob"), &inbox(&boxes, &user("bob"), 1).await[0]).await;

    // Alice's client replies to its own Sent copy (by its original Message-ID): the
    // reply joins the thread.
    let follow_up = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("bob@example.net".parse().unwrap())
        .in_reply_to("<original.1@alice.example.org>".into())
        .references("<original.1@alice.example.org>".into())
        .subject("Re: Änderungen")
        .header(ContentType::TEXT_PLAIN)
        .body("One more thing.\n".to_string())
        .unwrap();
    mailer.send(follow_up).await.unwrap();
    let received = inbox(&boxes, &user("bob"), 2).await;
    assert_eq!(
        thread_of(&ctx, &user("bob"), &received[1]).await,
        first_thread,
        "the reply is in the same SMIMP thread"
    );

    // A 20 MB message goes through whole.
    let big: Vec<u8> = (0..15_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let large = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("carol@example.net".parse().unwrap())
        .subject("large")
        .multipart(MultiPart::mixed().singlepart(SinglePart::plain("twenty megabytes\n".to_string())).singlepart(
            Attachment::new("big.bin".into()).body(big.clone(), "application/octet-stream".parse().unwrap()),
        ))
        .unwrap();
    let size = large.formatted().len();
    assert!(size > 20_000_000, "the message is {size} bytes as submitted");
    mailer.send(large).await.unwrap();
    let received = inbox(&boxes, &user("carol"), 2).await;
    let parsed = MessageParser::new().parse(&received[1]).unwrap();
    assert_eq!(parsed.subject(), Some("large"));
    assert_eq!(parsed.attachment(0).unwrap().contents(), &big[..], "20 MB arrive intact");

    running.stop().await;
    org.stop().await;
    net.stop().await;
}
