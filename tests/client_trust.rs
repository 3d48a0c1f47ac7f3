//! The client side against real servers over real TLS: discovery fails closed,
//! sessions come back after expiry, and trust on first use accepts a legitimate key
//! rotation but refuses (and records) truncated and replaced histories and message
//! keys not signed by the pinned key. A misbehaving server is simulated by editing
//! its database directly, as a compromised server could.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand_core::OsRng;
use smimp_gateway::backend::trust::{trusted_key, verified_message_key, KeyTrustError};
use smimp_gateway::client::trust::TrustError;
use smimp_gateway::client::{ServerClient, SessionClient};
use smimp_gateway::discovery::{Discovery, DiscoveryError};
use smimp_gateway::smimp::crypto::MasterKey;
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::profile::{verify_history, ProfileFields, ProfileRecord};
use smimp_gateway::smimp::wire::{ProfileLength, Quota, Route, UserHistory, UserInfoKind};
use smimp_gateway::store::GatewayStore;

fn discovery_for(servers: &[&TestServer]) -> Discovery {
    let cas: Vec<_> = servers.iter().map(|s| s.ca_file.clone()).collect();
    let resolve: BTreeMap<_, _> = servers.iter().map(|s| (s.domain.clone(), s.addr)).collect();
    Discovery::new(&cas, resolve, Duration::from_secs(10)).unwrap()
}

async fn gateway_store(dir: &TempDir) -> GatewayStore {
    GatewayStore::open(&dir.0.join("gateway.sqlite")).await.unwrap()
}

async fn server_db(server: &TestServer) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", server.config.server.database.display())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_contact_pins_and_a_signed_rotation_is_accepted() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let alice = create_account(&client, &server, "alice", 1).await;
    let dir = TempDir::new("trust-rotation");
    let store = gateway_store(&dir).await;
    let remote = ServerClient::connect(&discovery_for(&[&server]), "example.org").await.unwrap();

    let key = trusted_key(&remote, &store, &alice.address, 1).await.unwrap();
    assert_eq!(key, alice.key.public());
    assert_eq!(store.pin(&alice.address).await.unwrap().unwrap().length, 1);
    // Unchanged: the cheap public_key check is enough.
    assert_eq!(trusted_key(&remote, &store, &alice.address, 2).await.unwrap(), key);

    // Alice rotates her master key with a record signed by the prior key.
    let owner =
        SessionClient::new(remote.clone(), alice.address.clone(), Arc::new(MasterKey::from_seed(&alice.key.seed())));
    let history: UserHistory = remote
        .call(&Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::History }, None, None::<&()>)
        .await
        .unwrap();
    let verified = verify_history(&alice.address, &history.history).unwrap();
    let new_key = MasterKey::generate(&mut OsRng);
    let record =
        ProfileRecord::next(verified.latest(), &alice.key, new_key.public(), ProfileFields::default(), now()).unwrap();
    let length: ProfileLength = owner.call(&Route::UpdateProfile, Some(&record)).await.unwrap();
    assert_eq!(length.length, 2);

    assert_eq!(trusted_key(&remote, &store, &alice.address, 3).await.unwrap(), new_key.public());
    let events = store.trust_events(10).await.unwrap();
    assert_eq!(events[0].kind, "key_changed", "{events:?}");
    assert_eq!(events[1].kind, "first_contact");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_replaced_histories_are_refused_and_recorded() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let alice = create_account(&client, &server, "alice", 0).await;
    let dir = TempDir::new("trust-refusals");
    let store = gateway_store(&dir).await;
    let remote = ServerClient::connect(&discovery_for(&[&server]), "example.org").await.unwrap();

    // Two records pinned: creation and a rotation.
    let owner =
        SessionClient::new(remote.clone(), alice.address.clone(), Arc::new(MasterKey::from_seed(&alice.key.seed())));
    let history: UserHistory = remote
        .call(&Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::History }, None, None::<&()>)
        .await
        .unwrap();
    let verified = verify_history(&alice.address, &history.history).unwrap();
    let rotated = MasterKey::generate(&mut OsRng);
    let record =
        ProfileRecord::next(verified.latest(), &alice.key, rotated.public(), ProfileFields::default(), now()).unwrap();
    let _: ProfileLength = owner.call(&Route::UpdateProfile, Some(&record)).await.unwrap();
    trusted_key(&remote, &store, &alice.address, 1).await.unwrap();

    // The server drops the rotation: back to the first key (truncated).
    let db = server_db(&server).await;
    sqlx::query("DELETE FROM profile_records WHERE seq > 0").execute(&db).await.unwrap();
    let err = trusted_key(&remote, &store, &alice.address, 2).await.unwrap_err();
    assert!(matches!(err, KeyTrustError::Trust(TrustError::Truncated { pinned: 2, found: 1, .. })), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");

    // The server replaces the whole history with a new identity (replaced).
    let impostor = MasterKey::generate(&mut OsRng);
    let fake = ProfileRecord::initial(&impostor, &alice.address, ProfileFields::default(), now());
    sqlx::query("UPDATE profile_records SET data = ?, signed_hash = ?, public_key = ? WHERE seq = 0")
        .bind(&fake.data)
        .bind(fake.signed_hash.to_hex())
        .bind(impostor.public().to_hex())
        .execute(&db)
        .await
        .unwrap();
    let err = trusted_key(&remote, &store, &alice.address, 3).await.unwrap_err();
    assert!(matches!(err, KeyTrustError::Trust(TrustError::Replaced { .. })), "{err}");

    let kinds: Vec<String> = store.trust_events(10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["replaced", "truncated", "first_contact"]);
    // The pin did not move.
    assert_eq!(store.pin(&alice.address).await.unwrap().unwrap().latest_key, rotated.public());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_key_signed_by_another_key_is_refused() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let dir = TempDir::new("trust-key");
    let store = gateway_store(&dir).await;
    let discovery = discovery_for(&[&org, &net]);
    let org_client = ServerClient::connect(&discovery, "example.org").await.unwrap();
    let sender = SessionClient::new(org_client, bob.address.clone(), Arc::new(MasterKey::from_seed(&bob.key.seed())));
    let session = sender.session().await.unwrap();

    // A genuine key verifies.
    let (key, nonephemeral) = verified_message_key(&sender, &session, &store, &alice.address, 1).await.unwrap();
    assert!(nonephemeral);
    assert_eq!(key.public_key, alice.nonephemeral.public());

    // The server swaps in a key signed by someone else.
    let mallory = MasterKey::generate(&mut OsRng);
    let (_, forged) = SignedMessageKey::generate(&mallory, &alice.address, KeyKind::Nonephemeral, &mut OsRng);
    let db = server_db(&org).await;
    sqlx::query("UPDATE message_keys SET public_key = ?, signature = ? WHERE address = ? AND state = 'current'")
        .bind(forged.public_key.to_hex())
        .bind(forged.signature.to_hex())
        .bind(alice.address.as_str())
        .execute(&db)
        .await
        .unwrap();
    let err = verified_message_key(&sender, &session, &store, &alice.address, 2).await.unwrap_err();
    assert!(matches!(err, KeyTrustError::Trust(TrustError::BadMessageKey { .. })), "{err}");
    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_established_again() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let alice = create_account(&client, &server, "alice", 0).await;
    let remote = ServerClient::connect(&discovery_for(&[&server]), "example.org").await.unwrap();
    let owner = SessionClient::new(remote, alice.address.clone(), Arc::new(MasterKey::from_seed(&alice.key.seed())));
    let _: Quota = owner.call(&Route::GetQuota, None::<&()>).await.unwrap();
    let first = owner.session().await.unwrap();
    server.state.clock.advance(2 * 3600);
    let _: Quota = owner.call(&Route::GetQuota, None::<&()>).await.unwrap();
    let second = owner.session().await.unwrap();
    assert_ne!(first.id, second.id, "a new session replaced the expired one");
    owner.logout().await.unwrap();
    server.stop().await;
}

/// The paths requested of a fake server, in order.
type Requests = Arc<Mutex<Vec<String>>>;

/// A router answering /.well-known/smimp.txt with `body`, or with a redirect to
/// `redirect`, and every other path with a 404, recording each path requested.
fn recording(requests: &Requests, body: &'static str, redirect: Option<String>) -> axum::Router {
    use axum::response::IntoResponse;
    let requests = requests.clone();
    axum::Router::new().fallback(move |uri: axum::http::Uri| {
        requests.lock().unwrap().push(uri.path().to_string());
        let answer = match (uri.path(), &redirect) {
            ("/.well-known/smimp.txt", Some(to)) => axum::response::Redirect::temporary(to).into_response(),
            ("/.well-known/smimp.txt", None) => body.into_response(),
            _ => axum::http::StatusCode::NOT_FOUND.into_response(),
        };
        async move { answer }
    })
}

/// A tiny HTTPS server with the given well-known answer — or, with `redirect`, a redirect
/// to `/followed` on a plain-HTTP twin — recording the paths requested of both.
async fn fake_well_known(body: &'static str, redirect: bool) -> (TestServer, Requests) {
    let server = start_one(Options::default()).await;
    let requests = Requests::default();
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://127.0.0.1:{}/followed", plain.local_addr().unwrap().port());
    let plain_app = recording(&requests, "example.org\n", None);
    tokio::spawn(async move { axum::serve(plain, plain_app).await });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dev = smimp_gateway::tls::ensure_dev_certificates(
        server.ca_file.parent().unwrap(),
        &["example.org".into(), "localhost".into(), "127.0.0.1".into()],
    )
    .unwrap();
    let tls = smimp_gateway::tls::server_config(&dev.cert_file, &dev.key_file).unwrap();
    let app = recording(&requests, body, redirect.then_some(target));
    tokio::spawn(smimp_gateway::server::run(listener, tls, app, 64, smimp_gateway::listen::Shutdown::never()));
    let mut fake = server;
    fake.addr = addr;
    (fake, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_refuses_http_records_http_redirects_and_untrusted_certificates() {
    let (insecure, _) = fake_well_known("http://example.org/smimp\n", false).await;
    let err = discovery_for(&[&insecure]).base_url("example.org").await.unwrap_err();
    assert!(matches!(err, DiscoveryError::InsecureRecord { .. }), "{err}");

    // The redirect's target answers plain HTTP: had the client followed it, the plain
    // server would have seen a request for /followed.
    let (redirecting, requests) = fake_well_known("", true).await;
    let err = discovery_for(&[&redirecting]).base_url("example.org").await.unwrap_err();
    assert_eq!(
        *requests.lock().unwrap(),
        ["/.well-known/smimp.txt"],
        "only the first, verified request was made; /followed, over plain HTTP, must never be requested"
    );
    assert!(err.to_string().contains("non-HTTPS"), "{err}");

    // A client that does not trust the server's CA sends nothing at all.
    let (untrusted, requests) = fake_well_known("example.org\n", false).await;
    let resolve: BTreeMap<_, _> = [(untrusted.domain.clone(), untrusted.addr)].into_iter().collect();
    let stranger = Discovery::new(&[], resolve, Duration::from_secs(10)).unwrap();
    let err = stranger.base_url("example.org").await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Certificate { .. }), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
    assert!(requests.lock().unwrap().is_empty(), "no request reached the server: {:?}", requests.lock().unwrap());
}
