//! `init`, key rotation, profile updates and ephemeral-key replenishment against a
//! real server over real TLS, through the same code the CLI runs, with a real
//! gateway configuration file and keystore.

mod common;

use common::*;
use smimp_gateway::backend::trust::trusted_key;
use smimp_gateway::client::ServerClient;
use smimp_gateway::gateway::context::{CommandError, Context};
use smimp_gateway::gateway::enroll::{self, Rotate};
use smimp_gateway::keystore::Keystore;
use smimp_gateway::smimp::keys::KeyKind;
use smimp_gateway::smimp::profile::{verify_history, ProfileFields};
use smimp_gateway::smimp::wire::{MessageKeyResponse, Route, UserHistory, UserInfoKind};
use smimp_gateway::store::GatewayStore;

/// Writes a gateway configuration that trusts `cas` and resolves `servers`.
fn gateway_config(
    dir: &TempDir,
    servers: &[&TestServer],
    cas: &[&std::path::Path],
    target: usize,
) -> std::path::PathBuf {
    std::fs::write(dir.0.join("passphrase.txt"), "correct horse battery staple\n").unwrap();
    let resolve: String = servers.iter().map(|s| format!("\"{}\" = \"{}\"\n", s.domain, s.addr)).collect();
    let cas: Vec<String> = cas.iter().map(|c| format!("\"{}\"", c.display())).collect();
    let text = format!(
        "[gateway]\ndata_dir = \"data\"\n\n[keystore]\npassphrase_file = \"passphrase.txt\"\nkdf_memory_kib = 8\nkdf_passes = 1\n\n\
         [keys]\nephemeral_target = {target}\n\n[discovery]\ntrusted_ca_files = [{}]\n\n[discovery.resolve]\n{resolve}",
        cas.join(", ")
    );
    let path = dir.0.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn add_account(server: &TestServer, local: &str) -> String {
    let (_, password) = smimp_gateway::server::admin::add_account(
        &server.config,
        &server.state.store,
        &format!("{local}@{}", server.domain),
        0,
    )
    .await
    .unwrap();
    password
}

fn unix_now() -> i64 {
    now().unix()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_the_identity_keystore_and_credentials() {
    let server = start_one(Options::default()).await;
    let password = add_account(&server, "alice").await;
    let dir = TempDir::new("init");
    let config = gateway_config(&dir, &[&server], &[&server.ca_file], 5);
    let ctx = Context::open(&config).await.unwrap();

    let done = enroll::init(&ctx, "Alice@example.org", &format!("{password}\n"), unix_now()).await.unwrap();
    assert_eq!(done.username, "alice@example.org");
    assert!(done.password.len() >= 20);
    let keystore = Keystore::load(&done.keystore, &ctx.passphrase).unwrap();
    assert!(keystore.verify_local_password(&done.password));
    assert!(!keystore.verify_local_password("guess"));
    assert_eq!(keystore.unretired_ephemeral().count(), 5);
    assert!(keystore.current_nonephemeral().is_some());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&done.keystore).unwrap().permissions().mode() & 0o777, 0o600);

    // The server now publishes a history ending in the keystore's key.
    let client = Client::new(&[&server]);
    let history: UserHistory = ok(client
        .get(&url(&server, &Route::GetUser { address: done.address.clone(), kind: UserInfoKind::History }), None)
        .await);
    assert_eq!(verify_history(&done.address, &history.history).unwrap().current_key(), keystore.master().public());
    let accounts = GatewayStore::open(&ctx.config.database()).await.unwrap().accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);

    // A second init here, and an init of an initialised account elsewhere, are refused.
    let again = enroll::init(&ctx, "alice@example.org", &password, unix_now()).await.unwrap_err();
    assert!(matches!(again, CommandError::AlreadyHere { .. }), "{again}");
    let other_dir = TempDir::new("init-elsewhere");
    let other = Context::open(&gateway_config(&other_dir, &[&server], &[&server.ca_file], 5)).await.unwrap();
    let err = enroll::init(&other, "alice@example.org", &password, unix_now()).await.unwrap_err();
    assert!(matches!(err, CommandError::AlreadyInitialised { .. }), "{err}");
    assert!(err.to_string().contains("initialised once"), "{err}");
    assert!(!other.config.keystore_path(&done.address).exists(), "no keystore is left for a refused init");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_errors_say_what_to_do() {
    let server = start_one(Options::default()).await;
    let password = add_account(&server, "bob").await;
    let dir = TempDir::new("init-errors");

    // Wrong one-time password.
    let ctx = Context::open(&gateway_config(&dir, &[&server], &[&server.ca_file], 2)).await.unwrap();
    let err = enroll::init(&ctx, "bob@example.org", "not-the-password", unix_now()).await.unwrap_err();
    assert!(matches!(err, CommandError::WrongPassword { .. }), "{err}");
    assert!(!ctx.config.keystore_path(&"bob#example.org".parse().unwrap()).exists());

    // A server whose CA is not trusted: the error names the config key to set.
    let untrusted_dir = TempDir::new("init-untrusted");
    let untrusted = Context::open(&gateway_config(&untrusted_dir, &[&server], &[], 2)).await.unwrap();
    let err = enroll::init(&untrusted, "bob@example.org", &password, unix_now()).await.unwrap_err();
    assert!(matches!(err, CommandError::Untrusted { .. }), "{err}");
    assert!(err.to_string().contains("trusted_ca_files"), "{err}");

    // A wrong keystore passphrase is named as such.
    enroll::init(&ctx, "bob@example.org", &password, unix_now()).await.unwrap();
    std::fs::write(dir.0.join("passphrase.txt"), "wrong\n").unwrap();
    let wrong = Context::open(&dir.0.join("gateway.toml")).await.unwrap();
    let err = enroll::replenish(&wrong, "bob@example.org", unix_now()).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("passphrase"), "{err}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_keys_are_replenished_after_depletion() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let password = add_account(&server, "carol").await;
    let dir = TempDir::new("replenish");
    let ctx = Context::open(&gateway_config(&dir, &[&server], &[&server.ca_file], 3)).await.unwrap();
    let done = enroll::init(&ctx, "carol@example.org", &password, unix_now()).await.unwrap();

    // A sender drains the three ephemeral keys; the fourth request gets the fallback.
    let sender = create_account(&client, &server, "dave", 0).await;
    let session = login(&client, &server, &sender).await;
    let body = serde_json::json!({ "address": done.address });
    let key_url = url(&server, &Route::GetMessageKey);
    let ask = || client.post(&key_url, Some(&session.id), &body);
    for _ in 0..3 {
        let key: MessageKeyResponse = ok(ask().await);
        assert!(!key.nonephemeral);
    }
    let fallback: MessageKeyResponse = ok(ask().await);
    assert!(fallback.nonephemeral);

    // The server hands a recipient's ephemeral keys to unlisted senders at most 5 a
    // minute (docs/protocol.md §9.1): the second round is a minute later.
    server.state.clock.advance(61);
    assert_eq!(enroll::replenish(&ctx, "carol@example.org", unix_now()).await.unwrap(), 3);
    assert_eq!(enroll::replenish(&ctx, "carol@example.org", unix_now()).await.unwrap(), 0, "already at the target");
    let keystore = Keystore::load(&done.keystore, &ctx.passphrase).unwrap();
    for _ in 0..3 {
        let key: MessageKeyResponse = ok(ask().await);
        assert!(!key.nonephemeral);
        assert!(
            keystore.secret_for(&key.message_key.public_key).is_some(),
            "the keystore holds every issued key's secret"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_profile_are_rotated_and_updated_by_signed_records() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let password = add_account(&server, "erin").await;
    let dir = TempDir::new("rotate");
    let ctx = Context::open(&gateway_config(&dir, &[&server], &[&server.ca_file], 2)).await.unwrap();
    let done = enroll::init(&ctx, "erin@example.org", &password, unix_now()).await.unwrap();
    let remote = ServerClient::connect(&ctx.discovery, "example.org").await.unwrap();
    let watcher = GatewayStore::open(&dir.0.join("watcher.sqlite")).await.unwrap();
    let first = trusted_key(&remote, &watcher, &done.address, 1).await.unwrap();

    let new_ne = enroll::rotate(&ctx, "erin@example.org", Rotate::Nonephemeral, unix_now()).await.unwrap();
    let keystore = Keystore::load(&done.keystore, &ctx.passphrase).unwrap();
    assert_eq!(keystore.current_nonephemeral().unwrap().public().to_hex(), new_ne);
    assert_eq!(
        keystore.message_keys().iter().filter(|k| k.kind() == KeyKind::Nonephemeral).count(),
        2,
        "the old secret is kept"
    );

    let fields = ProfileFields { name: Some("Erin".into()), ..Default::default() };
    assert_eq!(enroll::update_profile(&ctx, "erin@example.org", fields, unix_now()).await.unwrap(), 2);

    let new_master = enroll::rotate(&ctx, "erin@example.org", Rotate::Master, unix_now()).await.unwrap();
    let keystore = Keystore::load(&done.keystore, &ctx.passphrase).unwrap();
    assert_eq!(keystore.master().public().to_hex(), new_master);
    assert_eq!(keystore.previous_masters().len(), 1);
    let now_trusted = trusted_key(&remote, &watcher, &done.address, 2).await.unwrap();
    assert_ne!(now_trusted, first);
    assert_eq!(now_trusted.to_hex(), new_master);
    assert_eq!(watcher.trust_events(1).await.unwrap()[0].kind, "key_changed");

    // Message keys handed out now are signed by the new master key.
    let sender = create_account(&client, &server, "frank", 0).await;
    let session = login(&client, &server, &sender).await;
    let key: MessageKeyResponse = ok(client
        .post(&url(&server, &Route::GetMessageKey), Some(&session.id), &serde_json::json!({ "address": done.address }))
        .await);
    key.message_key.verify(&done.address, &now_trusted).unwrap();
    assert!(keystore.secret_for(&key.message_key.public_key).is_some());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_master_rotation_is_completed_by_the_next_one() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let password = add_account(&server, "gina").await;
    let dir = TempDir::new("resume");
    let ctx = Context::open(&gateway_config(&dir, &[&server], &[&server.ca_file], 2)).await.unwrap();
    let done = enroll::init(&ctx, "gina@example.org", &password, unix_now()).await.unwrap();

    // A rotation saved its new key, then stopped before the server heard of it.
    let mut keystore = Keystore::load(&done.keystore, &ctx.passphrase).unwrap();
    let pending = smimp_gateway::smimp::crypto::MasterKey::generate(&mut rand_core::OsRng);
    let pending_public = pending.public();
    keystore.rotate_master(pending);
    keystore.save(&done.keystore, &ctx.passphrase, smimp_gateway::keystore::KdfParams::for_tests()).unwrap();

    // The next rotation logs in with the key the server still names and publishes the pending one.
    let published = enroll::rotate(&ctx, "gina@example.org", Rotate::Master, unix_now()).await.unwrap();
    assert_eq!(published, pending_public.to_hex());
    let history: UserHistory = ok(client
        .get(&url(&server, &Route::GetUser { address: done.address.clone(), kind: UserInfoKind::History }), None)
        .await);
    assert_eq!(verify_history(&done.address, &history.history).unwrap().current_key(), pending_public);
    // Keys handed out now are signed by the published key, and replenishing works again.
    assert_eq!(enroll::replenish(&ctx, "gina@example.org", unix_now()).await.unwrap(), 0);
    server.stop().await;
}
