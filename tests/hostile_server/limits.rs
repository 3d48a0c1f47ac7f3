//! Attacks on the reference server's limits by a remote party (docs/protocol.md §9.1):
//! draining a recipient's ephemeral keys with many sessions, piling up PoW nonces and
//! sessions, bodies sent before login, large messages at the price of small ones, a
//! hostile sender's server serving a huge history or redirecting the server's
//! look-ups to its own machine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use reqwest::Method;
use serde_json::{json, Value};
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::pow::{leading_zero_bits, zero_bits_for_size, PowParams};
use smimp_gateway::smimp::wire::{create_session_hash, ListKind, MessageKeyResponse, MessageSent, Route};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::harness::{fronted_pair, Answer};

// ---- helpers ------------------------------------------------------------------------

async fn db_count(server: &TestServer, sql: &str) -> i64 {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&server.config.server.database).read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut connection).await.unwrap();
    connection.close().await.unwrap();
    n
}

async fn unissued_keys(server: &TestServer, address: &Address) -> i64 {
    db_count(
        server,
        &format!("SELECT COUNT(*) FROM message_keys WHERE address = '{address}' AND kind = 'ephemeral' AND state = 'available'"),
    )
    .await
}

async fn ask_key(client: &Client, server: &TestServer, session: &Session, recipient: &Address) -> (u16, Value) {
    client.post(&url(server, &Route::GetMessageKey), Some(&session.id), &json!({ "address": recipient })).await
}

/// Sends `head` (request line and headers, no body) over TLS and returns the status
/// line the server answers with, or `None` when it does not answer within `wait`
/// (it is waiting for the body).
async fn status_without_body(server: &TestServer, head: &str, wait: Duration) -> Option<String> {
    let config = smimp_gateway::tls::client_config(std::slice::from_ref(&server.ca_file)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(server.domain.clone()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(wait, tls.read(&mut answer)).await.ok()?.ok()?;
    let text = String::from_utf8_lossy(&answer[..read]).to_string();
    Some(text.lines().next().unwrap_or_default().to_string())
}

fn post_head(server: &TestServer, route: &Route, length: usize) -> String {
    format!(
        "POST /{} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        route.path(),
        server.domain
    )
}

// ---- ephemeral keys -------------------------------------------------------------------

/// Attacker: any SMIMP user (here with many sessions). Attack: ask for a recipient's
/// message keys until every ephemeral key is handed out, so all later mail to them is
/// sealed to the non-ephemeral key (forward secrecy silently gone). Defence: the keys a
/// sending identity holds unspent are capped, and ephemeral keys per recipient are
/// limited per minute and hour;
/// past the recipient's limit unlisted senders get the non-ephemeral key and the
/// ephemeral keys stay for later; a whitelisted correspondent is not held to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_sessions_cannot_drain_a_recipients_ephemeral_keys() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 40).await;
    let mallory = create_account(&client, &org, "mallory", 0).await;
    let dave = create_account(&client, &org, "dave", 0).await;
    let limits = &org.config.limits;
    let (per_recipient, per_sender) =
        (limits.ephemeral_keys_per_recipient_per_minute as usize, limits.max_unspent_keys_per_sender as usize);

    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(login(&client, &org, &mallory).await);
    }
    let mut ephemeral = 0;
    let mut refused = 0;
    for n in 0..per_sender + 10 {
        let response = ask_key(&client, &org, &sessions[n % sessions.len()], &alice.address).await;
        match response.0 {
            200 => ephemeral += usize::from(!ok::<MessageKeyResponse>(response).nonephemeral),
            _ => {
                assert_error(&response, 429, "rate_limited");
                refused += 1;
            }
        }
    }
    assert_eq!(ephemeral, per_recipient, "only the recipient's budget of ephemeral keys went to the attacker");
    assert_eq!(refused, 10, "the sender's own limit refused the rest");
    assert_eq!(unissued_keys(&org, &alice.address).await, (40 - per_recipient) as i64);

    // A correspondent alice whitelisted still gets an ephemeral key.
    let alice_session = login(&client, &org, &alice).await;
    let sealed = json!({ "nonce": "00".repeat(24), "ciphertext": "" });
    let entry = json!({ "hash": smimp_gateway::smimp::wire::list_entry_hash(dave.address.as_str()), "entry": sealed });
    let added = client
        .post(&url(&org, &Route::AddListEntry { list: ListKind::Whitelist }), Some(&alice_session.id), &entry)
        .await;
    assert_eq!(added.0, 200, "{}", added.1);
    let ds = login(&client, &org, &dave).await;
    assert!(!ok::<MessageKeyResponse>(ask_key(&client, &org, &ds, &alice.address).await).nonephemeral);

    // A minute later the recipient's ephemeral budget is back, but the attacker still
    // holds its hoard unspent; only when its grants lapse (an hour) may it ask again.
    org.state.clock.advance(61);
    assert_error(&ask_key(&client, &org, &sessions[0], &alice.address).await, 429, "rate_limited");
    org.state.clock.advance(3600);
    let fresh = login(&client, &org, &mallory).await;
    let response = ask_key(&client, &org, &fresh, &alice.address).await;
    assert!(!ok::<MessageKeyResponse>(response).nonephemeral);

    org.stop().await;
}

// ---- nonces and sessions ---------------------------------------------------------------

/// Attacker: any SMIMP user. Attack: ask for PoW parameters without ever sending, from
/// many sessions, so `pow_nonces` rows pile up. Defence: unused nonces are capped per
/// identity (the oldest go) and live sessions per identity (a new login ends the
/// oldest, with its nonces).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pow_nonces_and_sessions_do_not_pile_up() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let mallory = create_account(&client, &org, "mallory", 0).await;
    let limits = &org.config.limits;
    let max_sessions = limits.max_sessions_per_identity as i64;
    let max_nonces = limits.max_pow_nonces_per_identity as i64;

    let mut sessions = Vec::new();
    for _ in 0..max_sessions + 4 {
        sessions.push(login(&client, &org, &mallory).await);
    }
    let live = format!(
        "SELECT COUNT(*) FROM sessions WHERE address = '{}' AND expires_at > strftime('%s','now')",
        mallory.address
    );
    assert_eq!(db_count(&org, &live).await, max_sessions);
    let oldest = client.get(&url(&org, &Route::GetQuota), Some(&sessions[0].id)).await;
    assert_error(&oldest, 401, "session_expired");

    let pow = Route::GetPowParams { address: alice.address.clone(), message_type: MessageType::Email };
    let newest = &sessions[sessions.len() - 4..];
    for n in 0..max_nonces + 40 {
        let _: PowParams = ok(client.get(&url(&org, &pow), Some(&newest[n as usize % newest.len()].id)).await);
    }
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM pow_nonces").await, max_nonces);

    org.stop().await;
}

// ---- bodies before login -----------------------------------------------------------

/// Attacker: anyone on the network. Attack: declare a large body on an unauthenticated
/// route (before any login or rate limit) and make the server read it. Defence: each
/// route's body limit comes from the route table and is refused from Content-Length
/// before the body is read; the address's login limit is counted before the body of
/// `create_session` and `initialize_account` is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_rate_limited_bodies_are_refused_before_they_are_read() {
    let org =
        start_one(Options { extra: "[limits]\ncreate_session_per_minute = 2\n".into(), ..Options::default() }).await;
    let alice = Address::parse("alice#example.org").unwrap();
    let wait = Duration::from_secs(5);
    let login = Route::CreateSession { address: alice.clone() };

    // 1 MiB declared, nothing sent: refused at once (the old limit was 48 MiB for all).
    let status = status_without_body(&org, &post_head(&org, &login, 1 << 20), wait).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"), "create_session");
    let status = status_without_body(&org, &post_head(&org, &Route::InitializeAccount, 8 << 20), wait).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 413 Payload Too Large"), "initialize_account");

    // Over the login limit: refused before the (small, unsent) body is read.
    let status = status_without_body(&org, &post_head(&org, &login, 200), wait).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 429 Too Many Requests"), "create_session");
    let status = status_without_body(&org, &post_head(&org, &Route::InitializeAccount, 200), wait).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 429 Too Many Requests"), "initialize_account");

    org.stop().await;
}

// ---- proof of work by size ----------------------------------------------------------

/// Attacker: any SMIMP user. Attack: fill a recipient's quota with large messages at
/// the proof-of-work price of small ones. Defence: the issued difficulty grows by one
/// bit per doubling above 1 MiB of ciphertext; the server checks the grown number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_pays_more_proof_of_work() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let mallory = create_account(&client, &org, "mallory", 0).await;
    let ms = login(&client, &org, &mallory).await;
    let payload = vec![b'x'; 3 << 20];

    // Solved at the issued difficulty only (a solution that happens to meet the grown
    // one too, one in four, is solved again): refused.
    let (envelope, params) = loop {
        let (envelope, _, params) = prepare_message(&client, &org, &ms, &mallory, &alice.address, &payload).await;
        let hash = &envelope.proof_of_work.as_ref().unwrap().hash;
        if leading_zero_bits(hash) < params.zero_bits + 2 {
            break (envelope, params);
        }
    };
    assert_eq!(zero_bits_for_size(params.zero_bits, envelope.message.len()), params.zero_bits + 2);
    let send = url(&org, &Route::SendMessage { address: alice.address.clone() });
    let response = client.post(&send, Some(&ms.id), &envelope).await;
    assert_error(&response, 403, "pow_invalid");
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM messages").await, 0);

    // Solved at the grown difficulty: stored.
    let key: MessageKeyResponse = ok(ask_key(&client, &org, &ms, &alice.address).await);
    let pow = Route::GetPowParams { address: alice.address.clone(), message_type: MessageType::Email };
    let issued: PowParams = ok(client.get(&url(&org, &pow), Some(&ms.id)).await);
    let grown = PowParams { zero_bits: issued.zero_bits + 2, nonce: issued.nonce };
    let envelope = seal(&mallory, &alice.address, &ms.token, &key.message_key.public_key, &grown, &payload);
    let _: MessageSent = ok(client.post(&send, Some(&ms.id), &envelope).await);

    org.stop().await;
}

// ---- a hostile sender's server ------------------------------------------------------

/// Attacker: a sender's server. Attack: serve a history of several MiB (valid, padded)
/// for each of many logins, so the recipient's server parses and verifies megabytes on
/// its async workers for every login. Defence: histories over 1 MiB are refused
/// unread; a verified key is cached for a minute, so repeated logins fetch it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_history_is_refused_and_a_verified_one_is_fetched_once_a_minute() {
    let (org, net, hostile) = fronted_pair("example.net", Options::default()).await;
    let client = Client::new(&[&org, &net]);
    create_account(&client, &org, "alice", 0).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let history =
        Route::GetUser { address: bob.address.clone(), kind: smimp_gateway::smimp::wire::UserInfoKind::History };

    // The true history padded with JSON whitespace to 2 MiB: still a valid document.
    hostile.lie_on(&history, |call| async move {
        let truth = call.forward().await;
        let mut padded = truth.body.to_vec();
        padded.splice(1..1, std::iter::repeat_n(b' ', 2 << 20));
        Answer { status: truth.status, body: padded.into() }
    });
    let token = ok::<smimp_gateway::smimp::wire::LoginChallenge>(
        client.get(&url(&org, &Route::GetLoginToken { address: bob.address.clone() }), None).await,
    )
    .token;
    let body = json!({ "token": token, "server": org.domain, "signature": bob.key.sign(&create_session_hash(&server_domain(&org), &bob.address, &token)) });
    let response = client.post(&url(&org, &Route::CreateSession { address: bob.address.clone() }), None, &body).await;
    assert_error(&response, 502, "remote_lookup_failed");
    let message = response.1["error"]["message"].as_str().unwrap();
    assert!(message.contains("larger than 1048576 bytes"), "{message}");

    // Told the truth, the history is fetched once for two logins within a minute.
    hostile.lie_on(&history, |call| async move { call.forward().await });
    login(&client, &org, &bob).await;
    login(&client, &org, &bob).await;
    let path = history.path();
    assert_eq!(hostile.count(&Method::GET, &path), 2, "one refused, one verified and cached");
    org.state.clock.advance(61);
    login(&client, &org, &bob).await;
    assert_eq!(hostile.count(&Method::GET, &path), 3, "fetched again once the cached key expired");

    org.stop().await;
    net.stop().await;
}

/// What the redirecting server answers.
#[derive(Clone)]
struct Redirecting {
    /// Its own port, where the redirect targets point (as `127.0.0.1`).
    port: u16,
    /// Bob's true history document.
    history: Value,
    /// Requests to the private targets (never to be made).
    private_hits: Arc<AtomicUsize>,
    /// Whether the well-known record redirects (else the history look-up does).
    well_known_redirects: bool,
}

async fn redirecting(
    axum::extract::State(r): axum::extract::State<Redirecting>,
    uri: axum::http::Uri,
) -> axum::response::Response {
    let path = uri.path();
    let to = |target: String| (StatusCode::FOUND, [(header::LOCATION, target)]).into_response();
    if path.starts_with("/private/") {
        r.private_hits.fetch_add(1, Ordering::SeqCst);
    }
    match path {
        "/.well-known/smimp.txt" if r.well_known_redirects => {
            to(format!("https://127.0.0.1:{}/private/.well-known/smimp.txt", r.port))
        }
        "/.well-known/smimp.txt" => format!("example.net:{}\n", r.port).into_response(),
        "/private/.well-known/smimp.txt" => format!("example.net:{}/private\n", r.port).into_response(),
        p if p.starts_with("/private/") => axum::Json(r.history.clone()).into_response(),
        p if p.contains("/get_user/") => to(format!("https://127.0.0.1:{}/private{p}", r.port)),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Starts the redirecting stand-in for example.net on `listener`, with net's certificate
/// (valid for 127.0.0.1 too, so only the redirect policy stands in the way).
fn start_redirecting(
    listener: tokio::net::TcpListener,
    net: &TestServer,
    state: Redirecting,
) -> smimp_gateway::listen::StopHandle {
    let names = vec![net.domain.clone(), "localhost".into(), "127.0.0.1".into()];
    let dev = smimp_gateway::tls::ensure_dev_certificates(net.ca_file.parent().unwrap(), &names).unwrap();
    let tls = smimp_gateway::tls::server_config(&dev.cert_file, &dev.key_file).unwrap();
    let app = axum::Router::new().fallback(redirecting).with_state(state);
    let (stop, shutdown) = smimp_gateway::listen::Shutdown::new();
    tokio::spawn(smimp_gateway::server::run(listener, tls, app, 64, shutdown));
    stop
}

/// Attacker: a sender's server (issue 17, promise 2). Attack: answer the recipient
/// server's look-ups (the well-known record, the history) with an HTTP redirect to
/// https://127.0.0.1/…, so the server fetches from its own machine on a remote user's
/// behalf. Defence: API look-ups never follow redirects; the well-known look-up follows
/// only HTTPS redirects to public addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_the_servers_own_machine_are_refused() {
    for well_known_redirects in [false, true] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (org, net) = start_pair_resolving(Options::default(), "example.net", addr).await;
        let client = Client::new(&[&org, &net]);
        let bob = create_account(&client, &net, "bob", 0).await;
        let history =
            Route::GetUser { address: bob.address.clone(), kind: smimp_gateway::smimp::wire::UserInfoKind::History };
        let (status, truth) = client.get(&url(&net, &history), None).await;
        assert_eq!(status, 200);
        let hits = Arc::new(AtomicUsize::new(0));
        let state =
            Redirecting { port: addr.port(), history: truth, private_hits: Arc::clone(&hits), well_known_redirects };
        let stop = start_redirecting(listener, &net, state);

        let token = ok::<smimp_gateway::smimp::wire::LoginChallenge>(
            client.get(&url(&org, &Route::GetLoginToken { address: bob.address.clone() }), None).await,
        )
        .token;
        let body = json!({ "token": token, "server": org.domain, "signature": bob.key.sign(&create_session_hash(&server_domain(&org), &bob.address, &token)) });
        let response =
            client.post(&url(&org, &Route::CreateSession { address: bob.address.clone() }), None, &body).await;
        assert_error(&response, 502, "remote_lookup_failed");
        let message = response.1["error"]["message"].as_str().unwrap().to_string();
        if well_known_redirects {
            assert!(message.contains("a redirect to a private, local or reserved address was refused"), "{message}");
        } else {
            assert!(message.contains("answered HTTP 302"), "{message}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the private target was contacted ({message})");
        assert_eq!(db_count(&org, "SELECT COUNT(*) FROM sessions").await, 0);

        stop.stop();
        org.stop().await;
        net.stop().await;
    }
}
