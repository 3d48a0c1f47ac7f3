//! Every reason the gateway refuses a recipient at RCPT TO, as the mail client sees it
//! (lettre over STARTTLS against real servers): an address with no SMIMP form, a user
//! without a profile, a server whose certificate is not trusted, a server that cannot
//! be reached (a temporary 451), and a trust violation — a profile history that no
//! longer extends the one pinned at first contact. Nothing is sent in any of these.

mod common;

use common::*;
use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use smimp_gateway::gateway::context::Context;
use smimp_gateway::server::admin;

fn message(to: &str) -> Message {
    Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to(to.parse().unwrap())
        .subject("refused?")
        .body("x".to_string())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refused_recipient_gets_its_reason() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let dir = TempDir::new("gateway-rcpt");
    // example.com answers with example.org's certificate (a name mismatch); nothing
    // listens for closed.example.
    let extra = format!(
        "\"example.com\" = \"{}\"\n\"closed.example\" = \"127.0.0.1:9\"\n[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n",
        org.addr
    );
    let config = write_gateway_config(&dir, &[&org, &net], &extra);
    let done = init_on_gateway(&config, &org, "alice").await;
    create_account(&client, &net, "bob", 2).await;
    let running = common::start_gateway(&config).await;
    let mailer = gateway_mailer(&running, &done, Mechanism::Plain);
    let refusal = |to: &'static str| {
        let mailer = mailer.clone();
        async move { mailer.send(message(to)).await.unwrap_err().to_string() }
    };

    let err = refusal("first.last@example.net").await;
    assert!(err.contains("550") && err.contains("first.last@example.net has no SMIMP form"), "{err}");
    let err = refusal("nobody@example.net").await;
    assert!(err.contains("550") && err.contains("nobody@example.net has no SMIMP profile"), "{err}");
    let err = refusal("carol@example.com").await;
    assert!(
        err.contains("550")
            && err.contains("the SMIMP server of example.com has a certificate this gateway does not trust"),
        "{err}"
    );
    let err = refusal("dave@closed.example").await;
    assert!(
        err.contains("451") && err.contains("the SMIMP server of closed.example cannot be reached now"),
        "a temporary failure, so the client tries again later: {err}"
    );
    // Nothing is sent: none of the refused recipients left a row in the queue.
    let ctx = Context::open(&config).await.unwrap();
    let queued = ctx.store.recent_deliveries(100).await.unwrap();
    assert!(queued.is_empty(), "a refused recipient was queued: {queued:?}");

    // First contact pins Bob's history; the message goes through.
    mailer.send(message("bob@example.net")).await.unwrap();
    // Bob's account is removed and made again with a new identity: his history is
    // replaced, which trust on first use refuses.
    admin::remove_account(&net.config, &net.state.store, "bob@example.net").await.unwrap();
    create_account(&client, &net, "bob", 2).await;
    let err = refusal("bob@example.net").await;
    assert!(err.contains("550") && err.contains("bob@example.net is refused"), "{err}");
    assert!(err.contains("replaced"), "the reason names the replaced history: {err}");
    let queued = ctx.store.recent_deliveries(100).await.unwrap();
    // Bob's accepted message is the only one sent out; the worker may already have
    // tried it against his new history and queued a delivery report back to Alice.
    let recipients: Vec<String> = queued.iter().map(|d| d.recipient.to_string()).collect();
    let sent_out: Vec<&String> = recipients.iter().filter(|r| *r != "alice#example.org").collect();
    assert_eq!(sent_out, ["bob#example.net"], "only the accepted message is queued: {queued:?}");
    let events = ctx.store.trust_events(10).await.unwrap();
    assert!(events.iter().any(|e| e.kind == "replaced" && e.address.local() == "bob"), "{events:?}");

    running.stop().await;
    org.stop().await;
    net.stop().await;
}
