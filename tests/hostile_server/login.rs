//! Attacks on the login: a recipient's server (the lying proxy in front of example.net)
//! that, when alice logs in there, fetches a real login token for her from her own
//! server (example.org), hands it over as its own challenge, and relays the signature
//! it receives to example.org's `create_session`. Defence: the login signs the domain
//! the client discovered the server by (docs/protocol.md §9), and a server verifies over
//! its own; example.org refuses, and the relayed call gets no session.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::Mechanism;
use lettre::{AsyncTransport, Message};
use serde_json::{json, Value};
use smimp_gateway::client::server::ServerClient;
use smimp_gateway::client::session::SessionClient;
use smimp_gateway::discovery::Discovery;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::login_token_hash;
use smimp_gateway::smimp::wire::{ErrorCode, Route};
use tokio::sync::mpsc;

use crate::common::{self, Client, Options, TempDir, TestServer};
use crate::harness::{fronted_pair, Answer, Hostile};

/// What example.org answered to the relayed login, and the token it was for.
struct Relayed {
    token: Id32,
    status: u16,
    body: Value,
}

/// Makes `hostile` answer alice's login challenge with a real token from her own server
/// `home`, and relay the login it then receives to `home`, after `rewrite` changed its
/// body. Each relayed attempt's outcome at `home` is sent on the returned channel, and
/// the client is given `home`'s answer.
fn relay_logins_to_home(
    hostile: &Hostile,
    home: &TestServer,
    alice: &Address,
    rewrite: fn(&mut Value),
) -> mpsc::UnboundedReceiver<Relayed> {
    let client = Arc::new(Client::new(&[home]));
    let challenge_url = common::url(home, &Route::GetLoginToken { address: alice.clone() });
    let login_url = common::url(home, &Route::CreateSession { address: alice.clone() });
    let upstream = Arc::clone(&client);
    hostile.lie_on(&Route::GetLoginToken { address: alice.clone() }, move |_| {
        let (client, url) = (Arc::clone(&upstream), challenge_url.clone());
        async move {
            let (status, body) = client.get(&url, None).await;
            Answer::json(status, &body)
        }
    });
    let (tx, rx) = mpsc::unbounded_channel();
    hostile.lie_on(&Route::CreateSession { address: alice.clone() }, move |call| {
        let (client, url, tx) = (Arc::clone(&client), login_url.clone(), tx.clone());
        async move {
            let mut body = call.json();
            rewrite(&mut body);
            let token: Id32 = serde_json::from_value(body["token"].clone()).unwrap();
            let (status, answer) = client.post(&url, None, &body).await;
            let _ = tx.send(Relayed { token, status, body: answer.clone() });
            Answer::json(status, &answer)
        }
    });
    rx
}

/// How many sessions `server` holds that were opened with `token`.
async fn sessions_from(server: &TestServer, token: &Id32) -> i64 {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", server.config.server.database.display())).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE login_token_hash = ?")
        .bind(login_token_hash(token).to_hex())
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Relayed>) -> Relayed {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the hostile server saw no login to relay")
        .expect("the relay ended")
}

/// The attack end to end through alice's gateway: she mails bob at example.net, the
/// gateway logs in at example.net to deliver, and example.net relays that login to
/// example.org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_server_relaying_the_senders_login_to_her_own_server_gets_no_session() {
    let (org, net, hostile) = fronted_pair("example.net", Options::default()).await;
    let client = Client::new(&[&org, &net]);
    common::create_account(&client, &net, "bob", 2).await;
    let dir = TempDir::new("hostile-login");
    let smtp = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";
    let config = common::write_gateway_config(&dir, &[&org, &hostile], smtp);
    let alice = common::init_on_gateway(&config, &org, "alice").await;
    let mut relayed = relay_logins_to_home(&hostile, &org, &alice.address, |_| {});
    let running = common::start_gateway(&config).await;

    let message = Message::builder()
        .from("alice@example.org".parse().unwrap())
        .to("bob@example.net".parse().unwrap())
        .subject("hello")
        .body("hello bob\n".to_string())
        .unwrap();
    common::gateway_mailer(&running, &alice, Mechanism::Plain).send(message).await.unwrap();

    let attempt = next(&mut relayed).await;
    assert_eq!(attempt.status, 401, "example.org refuses the relayed login: {}", attempt.body);
    assert_eq!(attempt.body["error"]["code"], ErrorCode::WrongServer.as_str());
    let text = attempt.body["error"]["message"].as_str().unwrap();
    assert!(text.contains("signed for example.net, not for this server (example.org)"), "{text}");
    assert!(attempt.body.get("session").is_none(), "the relayed call got no session");
    assert_eq!(sessions_from(&org, &attempt.token).await, 0, "example.org opened no session with the token");

    running.stop().await;
    drop(hostile);
    net.stop().await;
    org.stop().await;
}

/// The same relay with the signed-for domain rewritten to example.org's on the way: the
/// signature no longer matches, and the SMIMP client logging in as alice fails too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_login_whose_server_field_is_rewritten_fails_its_signature() {
    let (org, net, hostile) = fronted_pair("example.net", Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = common::create_account(&client, &org, "alice", 0).await;
    let mut relayed = relay_logins_to_home(&hostile, &org, &alice.address, |body| {
        body["server"] = json!("example.org");
    });

    let resolve = BTreeMap::from([(org.domain.clone(), org.addr), (hostile.domain.clone(), hostile.addr)]);
    let cas = [org.ca_file.clone(), hostile.ca_file.clone()];
    let discovery = Discovery::new(&cas, resolve, Duration::from_secs(10)).unwrap();
    let server = ServerClient::connect(&discovery, "example.net").await.unwrap();
    let session = SessionClient::new(server, alice.address.clone(), Arc::new(alice.key));
    let err = session.session().await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::LoginFailed), "{err}");

    let attempt = next(&mut relayed).await;
    assert_eq!(attempt.status, 403, "{}", attempt.body);
    assert_eq!(attempt.body["error"]["code"], ErrorCode::LoginFailed.as_str());
    let text = attempt.body["error"]["message"].as_str().unwrap();
    assert!(text.contains("for this server (example.org)"), "{text}");
    assert_eq!(sessions_from(&org, &attempt.token).await, 0, "example.org opened no session with the token");

    drop(hostile);
    net.stop().await;
    org.stop().await;
}
