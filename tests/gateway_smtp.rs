//! The gateway end to end: a mail client (lettre, over STARTTLS, trusting the
//! gateway's own CA) submits a message to `smimp-gateway run`'s SMTP port; the gateway
//! checks the recipient at RCPT TO, converts and queues the message, and delivers it
//! encrypted, with proof of work, to the recipient's SMIMP server, where the recipient
//! opens it. Recipients SMIMP cannot reach are refused at RCPT TO with the reason.

mod common;

use std::time::Duration;

use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use smimp_gateway::smimp::envelope::StoredEnvelope;
use smimp_gateway::smimp::message::{MessageType, Payload};
use smimp_gateway::smimp::wire::{MessageList, Route};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_submitted_over_smtp_arrives_encrypted() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let bob = create_account(&client, &net, "bob", 2).await;
    let dir = TempDir::new("gateway-smtp");
    let config =
        write_gateway_config(&dir, &[&org, &net], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let done = init_on_gateway(&config, &org, "alice").await;
    let running = common::start_gateway(&config).await;

    let mailer = gateway_mailer(&running, &done, Mechanism::Plain);

    // A recipient without an SMIMP profile is refused at RCPT TO, naming why.
    let nobody = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("nobody@example.net".parse().unwrap())
        .subject("x")
        .body("x".to_string())
        .unwrap();
    let err = mailer.send(nobody).await.unwrap_err().to_string();
    assert!(err.contains("550") && err.contains("nobody@example.net has no SMIMP profile"), "{err}");
    let dotted = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("first.last@example.net".parse().unwrap())
        .subject("x")
        .body("x".to_string())
        .unwrap();
    let err = mailer.send(dotted).await.unwrap_err().to_string();
    assert!(err.contains("has no SMIMP form"), "{err}");

    let message = Message::builder()
        .from("Alice <alice@example.org>".parse().unwrap())
        .to("Bob <bob@example.net>".parse().unwrap())
        .subject("Grüße über SMIMP")
        .body("Hello Bob,\n\nthis left Thunderbird as plain mail.\n".to_string())
        .unwrap();
    mailer.send(message).await.unwrap();

    // The delivery worker runs at once; wait (bounded) for the message to arrive.
    let session = login(&client, &net, &bob).await;
    let list_url = url(&net, &Route::ListMessages { message_type: MessageType::Email, folder_name: None });
    let mut list = MessageList { messages: vec![] };
    for _ in 0..100 {
        list = ok(client.get(&list_url, Some(&session.id)).await);
        if !list.messages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(list.messages.len(), 1, "the message was delivered");
    let stored: StoredEnvelope = ok(client
        .get(
            &url(&net, &Route::GetMessage { message_id: list.messages[0].message_id, update_read: false }),
            Some(&session.id),
        )
        .await);
    assert_eq!(stored.server.sender, done.address);
    assert!(stored.server.pow_params.is_some_and(|p| p.zero_bits == 6));
    let sender_key = stored.server.sender_public_key;
    let opened = stored.open(&sender_key, &bob.key.public(), bob.secret_for(&stored.sent.message_public_key)).unwrap();
    let Payload::Email(email) = Payload::parse(&MessageType::Email, &opened).unwrap() else { panic!("not an email") };
    assert_eq!(email.subject, "Grüße über SMIMP");
    assert_eq!(email.to, vec![bob.address.clone()]);
    assert!(email.body.contains("this left Thunderbird as plain mail."), "{}", email.body);

    running.stop().await;
    org.stop().await;
    net.stop().await;
}
