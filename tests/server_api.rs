//! Every endpoint of the reference server driven through its successful behaviour
//! over real HTTPS, with the exact documents asserted: public data, sessions (local
//! and remote), message keys, proof-of-work parameters and the sender lists,
//! sending and the mailbox, folders, the owner's keys, profile updates and key
//! rotation, the avatar, the quota and the administrator's commands.

mod common;

use std::collections::HashSet;

use base64::Engine;
use common::*;
use rand_core::OsRng;
use serde_json::{json, Value};
use smimp_gateway::server::admin::{self, AdminError};
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, BoxPublicKey, MasterKey, SecretBoxKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{login_token_hash, ReceivedVia, SealedData, SentEnvelope, StoredEnvelope};
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::pow::PowParams;
use smimp_gateway::smimp::profile::{verify_history, ProfileFields, ProfileRecord, VerifiedHistory};
use smimp_gateway::smimp::wire::{
    avatar_hash, create_session_hash, list_entry_hash, Added, Api, AvatarContentType, AvatarInfo, AvatarStored,
    AvatarUpload, Deleted, EnvelopePage, EphemeralKeys, Folder, FolderList, FolderName, KeyCount, ListEntries,
    ListEntry, ListEntryContent, ListKind, LoginChallenge, MessageKeyResponse, MessageList, MessageSent, Moved,
    Position, ProfileLength, Quota, ReadStatus, Removed, Route, ServerInformation, SessionCreated, SessionEnded,
    Updated, UserHistory, UserInfoKind, UserMostRecent, UserPublicKey, VersionList,
};

// ---------------------------------------------------------------------------
// Helpers local to these tests
// ---------------------------------------------------------------------------

/// A GET whose body is returned as raw bytes, with the status and content type.
async fn get_raw(client: &Client, url: &str, session: Option<&str>) -> (u16, Option<String>, Vec<u8>) {
    let mut request = client.http.get(url);
    if let Some(session) = session {
        request = request.header(smimp_gateway::smimp::wire::AUTH_HEADER, session);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
    (status, content_type, response.bytes().await.unwrap().to_vec())
}

/// Both steps of a login, for an address and any key (the current one or not):
/// the raw answer of the POST and the token it signed.
async fn try_login(client: &Client, server: &TestServer, address: &Address, key: &MasterKey) -> ((u16, Value), Id32) {
    let challenge: LoginChallenge =
        ok(client.get(&url(server, &Route::GetLoginToken { address: address.clone() }), None).await);
    let signature = key.sign(&create_session_hash(&server_domain(server), address, &challenge.token));
    let body = json!({ "token": challenge.token, "server": server.domain, "signature": signature });
    (client.post(&url(server, &Route::CreateSession { address: address.clone() }), None, &body).await, challenge.token)
}

/// Sends one message from `sender` (logged in as `session` at `server`) to `recipient`.
async fn send(
    client: &Client,
    server: &TestServer,
    session: &Session,
    sender: &Account,
    recipient: &Address,
    payload: &[u8],
) -> (Id32, SentEnvelope, MessageKeyResponse, PowParams) {
    let (envelope, key, params) = prepare_message(client, server, session, sender, recipient, payload).await;
    let sent: MessageSent = ok(client
        .post(&url(server, &Route::SendMessage { address: recipient.clone() }), Some(&session.id), &envelope)
        .await);
    (sent.message_id, envelope, key, params)
}

fn email_root() -> Route {
    Route::ListMessages { message_type: MessageType::Email, folder_name: None }
}

fn email_folder(name: &str) -> Route {
    Route::ListMessages { message_type: MessageType::Email, folder_name: Some(folder(name)) }
}

fn folder(name: &str) -> FolderName {
    FolderName::parse(name).unwrap()
}

fn folder_doc(display: &str, name: &str, parent: Option<&str>, message_type: MessageType) -> Folder {
    Folder { display_name: display.into(), folder_name: folder(name), parent: parent.map(folder), message_type }
}

/// The ids of a folder listing, in order.
async fn listed(client: &Client, server: &TestServer, session: &Session, route: &Route) -> Vec<Id32> {
    let list: MessageList = ok(client.get(&url(server, route), Some(&session.id)).await);
    list.messages.into_iter().map(|m| m.message_id).collect()
}

/// A sealed list entry naming `target`, as a client builds it.
fn list_entry(key: &SecretBoxKey, target: &str) -> ListEntry {
    let content = ListEntryContent { entry: target.into(), note: Some(format!("note about {target}")) };
    let nonce = BoxNonce::random(&mut OsRng);
    let ciphertext = key.seal(&nonce, &serde_json::to_vec(&content).unwrap());
    ListEntry { hash: list_entry_hash(target), entry: SealedData { nonce, ciphertext } }
}

async fn pow_params(client: &Client, server: &TestServer, session: &Session, recipient: &Address) -> (u16, Value) {
    let route = Route::GetPowParams { address: recipient.clone(), message_type: MessageType::Email };
    client.get(&url(server, &route), Some(&session.id)).await
}

async fn message_key(client: &Client, server: &TestServer, session: &Session, recipient: &Address) -> (u16, Value) {
    client.post(&url(server, &Route::GetMessageKey), Some(&session.id), &json!({ "address": recipient })).await
}

/// The read flag of the only message in the email root, as the listing shows it.
async fn listing_read(client: &Client, server: &TestServer, session: &Session) -> bool {
    let list: MessageList = ok(client.get(&url(server, &email_root()), Some(&session.id)).await);
    assert_eq!(list.messages.len(), 1);
    list.messages[0].read
}

async fn history(client: &Client, server: &TestServer, address: &Address) -> UserHistory {
    ok(client.get(&url(server, &Route::GetUser { address: address.clone(), kind: UserInfoKind::History }), None).await)
}

async fn verified_history(client: &Client, server: &TestServer, address: &Address) -> VerifiedHistory {
    let answer = history(client, server, address).await;
    assert_eq!(&answer.address, address);
    verify_history(address, &answer.history).unwrap()
}

fn key_set<'a>(keys: impl IntoIterator<Item = &'a BoxPublicKey>) -> HashSet<String> {
    keys.into_iter().map(|k| k.to_hex()).collect()
}

// ---------------------------------------------------------------------------
// Public data
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_server_information_and_well_known_file() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);

    let versions: VersionList = ok(client.get(&url(&org, &Route::Version), None).await);
    assert_eq!(versions, VersionList { versions: vec!["0.1".into()] });
    let raw = client.get(&url(&org, &Route::Version), None).await;
    assert_eq!(raw.1, json!({ "versions": ["0.1"] }));

    let info: ServerInformation = ok(client.get(&url(&org, &Route::ServerInformation), None).await);
    let expected: Vec<String> = Api::ALL.iter().map(|api| api.as_str().to_string()).collect();
    assert_eq!(info.apis, expected);
    assert_eq!(info.apis.len(), 25, "the 22 of the spec, x-envelopes, x-changes and x-devices");
    assert!(info.apis.iter().any(|api| api == "x-envelopes"), "the extension is advertised");
    assert!(info.implements(Api::XDevices), "the x-devices extension is advertised");
    for api in Api::ALL {
        assert!(info.implements(api), "{api} missing");
    }

    let (status, content_type, body) = get_raw(&client, &format!("{}/.well-known/smimp.txt", org.base), None).await;
    assert_eq!(status, 200);
    assert!(content_type.unwrap().starts_with("text/plain"));
    let text = String::from_utf8(body).unwrap();
    assert_eq!(org.config.server.public_base, format!("example.org:{}", org.addr.port()));
    assert_eq!(text, format!("{}\n", org.config.server.public_base));
    // What the well-known file names is where the API answers.
    let base = format!("https://{}", text.lines().next().unwrap());
    assert_eq!(base, org.base);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_user_returns_the_key_the_newest_record_and_the_history() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let route = |kind| Route::GetUser { address: alice.address.clone(), kind };

    let key: UserPublicKey = ok(client.get(&url(&org, &route(UserInfoKind::PublicKey)), None).await);
    assert_eq!(key, UserPublicKey { address: alice.address.clone(), public_key: alice.key.public() });

    let answer = history(&client, &org, &alice.address).await;
    assert_eq!(answer.address, alice.address);
    assert_eq!(answer.history.len(), 1);
    let verified = verify_history(&alice.address, &answer.history).unwrap();
    assert_eq!(verified.current_key(), alice.key.public());
    assert_eq!(verified.first_key(), alice.key.public());
    let data = &verified.latest().data;
    assert_eq!(data.address, alice.address);
    assert_eq!(data.previous_signed_hash, None);
    assert_eq!(data.fields(), ProfileFields::default());

    let newest: UserMostRecent = ok(client.get(&url(&org, &route(UserInfoKind::MostRecent)), None).await);
    assert_eq!(newest, UserMostRecent { address: alice.address.clone(), record: answer.history[0].clone() });

    // Only initialised accounts exist publicly.
    admin::add_account(&org.config, &org.state.store, "carol#example.org", 0).await.unwrap();
    let carol = Address::parse("carol#example.org").unwrap();
    let response =
        client.get(&url(&org, &Route::GetUser { address: carol.clone(), kind: UserInfoKind::PublicKey }), None).await;
    assert_error(&response, 404, "not_found");

    org.stop().await;
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_session_is_created_used_and_destroyed() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;

    let before = now().unix();
    let challenge: LoginChallenge =
        ok(client.get(&url(&org, &Route::GetLoginToken { address: alice.address.clone() }), None).await);
    let after = now().unix();
    assert!((before + 300..=after + 300).contains(&challenge.expires_at.unix()), "{}", challenge.expires_at);

    let signature = alice.key.sign(&create_session_hash(&server_domain(&org), &alice.address, &challenge.token));
    let body = json!({ "token": challenge.token, "server": org.domain, "signature": signature });
    let login_url = url(&org, &Route::CreateSession { address: alice.address.clone() });
    let created: SessionCreated = ok(client.post(&login_url, None, &body).await);
    let after = now().unix();
    assert!((before + 3600..=after + 3600).contains(&created.expires_at.unix()), "{}", created.expires_at);
    assert_ne!(created.session, challenge.token, "the session id is not the login token");
    let session = created.session.to_hex();

    // The token was consumed by the login.
    assert_error(&client.post(&login_url, None, &body).await, 403, "login_failed");

    // The session works for the owner's calls.
    let quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), Some(&session)).await);
    assert_eq!(quota, Quota { used: 0, available: 1 << 30 }, "the default quota is 1 GiB");

    let ended: SessionEnded = ok(client.post(&url(&org, &Route::DestroySession), Some(&session), &Value::Null).await);
    assert_eq!(ended, SessionEnded { ended: true });
    assert_error(&client.get(&url(&org, &Route::GetQuota), Some(&session)).await, 401, "session_expired");
    assert_error(
        &client.post(&url(&org, &Route::DestroySession), Some(&session), &Value::Null).await,
        401,
        "session_expired",
    );

    // Another login gives another, working session.
    let again = login(&client, &org, &alice).await;
    assert_ne!(again.id, session);
    let _: Quota = ok(client.get(&url(&org, &Route::GetQuota), Some(&again.id)).await);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_user_logs_in_sends_only_and_logs_out() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &net, "bob", 0).await;

    // bob#example.net logs in at example.org with the key his home server publishes.
    let ((status, body), token) = try_login(&client, &org, &bob.address, &bob.key).await;
    assert_eq!(status, 200, "{body}");
    let created: SessionCreated = serde_json::from_value(body).unwrap();
    let session = Session { id: created.session.to_hex(), token };

    // A remote session may get keys and PoW parameters and send...
    let (message_id, envelope, key, params) = send(&client, &org, &session, &bob, &alice.address, b"from afar").await;
    assert_eq!(key.address, alice.address);
    assert_eq!(params.zero_bits, 6);
    // ...and the stored envelope records the remote sender and his key.
    let alice_session = login(&client, &org, &alice).await;
    let stored: StoredEnvelope = ok(client
        .get(&url(&org, &Route::GetMessage { message_id, update_read: false }), Some(&alice_session.id))
        .await);
    assert_eq!(stored.sent, envelope);
    assert_eq!(stored.server.sender, bob.address);
    assert_eq!(stored.server.sender_public_key, bob.key.public());

    // ...but nothing of an owner.
    assert_error(&client.get(&url(&org, &Route::GetQuota), Some(&session.id)).await, 403, "forbidden");

    let ended: SessionEnded =
        ok(client.post(&url(&org, &Route::DestroySession), Some(&session.id), &Value::Null).await);
    assert!(ended.ended);
    assert_error(&pow_params(&client, &org, &session, &alice.address).await, 401, "session_expired");
    assert_error(&message_key(&client, &org, &session, &alice.address).await, 401, "session_expired");

    // A wrong key does not log a remote user in.
    let ((status, body), _) = try_login(&client, &org, &bob.address, &alice.key).await;
    assert_error(&(status, body), 403, "login_failed");

    org.stop().await;
    net.stop().await;
}

// ---------------------------------------------------------------------------
// Message keys
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_ephemeral_key_is_issued_once_then_the_nonephemeral_key() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 4).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let carol_session = login(&client, &org, &carol).await;
    let own_ephemeral = key_set(alice.ephemeral.iter().map(|s| s.public()).collect::<Vec<_>>().iter());

    let pool: EphemeralKeys = ok(client.get(&url(&org, &Route::ListEphemeralKeys), Some(&alice_session.id)).await);
    assert_eq!(key_set(pool.keys.iter().map(|k| &k.public_key)), own_ephemeral);

    // Two senders draw from the same pool: four keys, all distinct, all alice's.
    let mut issued = Vec::new();
    for session in [&bob_session, &carol_session, &bob_session, &carol_session] {
        let key: MessageKeyResponse = ok(message_key(&client, &org, session, &alice.address).await);
        assert_eq!(key.address, alice.address);
        assert_eq!(key.public_key, alice.key.public());
        assert!(!key.nonephemeral);
        assert_eq!(key.message_key.kind, KeyKind::Ephemeral);
        key.message_key.verify(&alice.address, &alice.key.public()).unwrap();
        issued.push(key.message_key.public_key);
        if issued.len() == 2 {
            let left: EphemeralKeys =
                ok(client.get(&url(&org, &Route::ListEphemeralKeys), Some(&alice_session.id)).await);
            assert_eq!(left.keys.len(), 2);
            let left = key_set(left.keys.iter().map(|k| &k.public_key));
            assert!(left.is_disjoint(&key_set(&issued)), "an issued key is still offered");
        }
    }
    assert_eq!(key_set(&issued), own_ephemeral, "each key exactly once");

    let empty: EphemeralKeys = ok(client.get(&url(&org, &Route::ListEphemeralKeys), Some(&alice_session.id)).await);
    assert_eq!(empty.keys, vec![]);

    // Then the standing key, to everyone, as often as asked.
    for session in [&bob_session, &carol_session, &bob_session] {
        let key: MessageKeyResponse = ok(message_key(&client, &org, session, &alice.address).await);
        assert!(key.nonephemeral);
        assert_eq!(key.message_key.kind, KeyKind::Nonephemeral);
        assert_eq!(key.message_key.public_key, alice.nonephemeral.public());
        key.message_key.verify(&alice.address, &alice.key.public()).unwrap();
    }

    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ephemeral_key_carries_one_message() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let bob_session = login(&client, &org, &bob).await;

    let (_, _, key, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"one").await;
    assert!(!key.nonephemeral);

    // The same session, a fresh PoW nonce, the same (now used) ephemeral key.
    let params: PowParams = ok(pow_params(&client, &org, &bob_session, &alice.address).await);
    let envelope =
        seal(&bob, &alice.address, &bob_session.token, &key.message_key.public_key, &params, b"two on the same key");
    let response = client
        .post(&url(&org, &Route::SendMessage { address: alice.address.clone() }), Some(&bob_session.id), &envelope)
        .await;
    assert_error(&response, 403, "key_not_issued");

    // The non-ephemeral key, by contrast, carries any number of messages.
    let alice_session = login(&client, &org, &alice).await;
    let count: KeyCount = ok(client
        .post(&url(&org, &Route::SetEphemeralKeys), Some(&alice_session.id), &EphemeralKeys { keys: vec![] })
        .await);
    assert_eq!(count.count, 0, "the one unused key is withdrawn");
    for payload in [&b"three"[..], b"four"] {
        let (_, _, key, _) = send(&client, &org, &bob_session, &bob, &alice.address, payload).await;
        assert!(key.nonephemeral);
    }
    assert_eq!(listed(&client, &org, &alice_session, &email_root()).await.len(), 3);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_replaces_the_nonephemeral_and_ephemeral_keys() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());

    let current: SignedMessageKey = ok(client.get(&url(&org, &Route::GetNonephemeralKey), s).await);
    assert_eq!(current.public_key, alice.nonephemeral.public());
    assert_eq!(current.kind, KeyKind::Nonephemeral);
    current.verify(&alice.address, &alice.key.public()).unwrap();

    let (_, replacement) = SignedMessageKey::generate(&alice.key, &alice.address, KeyKind::Nonephemeral, &mut OsRng);
    let stored: SignedMessageKey = ok(client.post(&url(&org, &Route::SetNonephemeralKey), s, &replacement).await);
    assert_eq!(stored, replacement);
    let current: SignedMessageKey = ok(client.get(&url(&org, &Route::GetNonephemeralKey), s).await);
    assert_eq!(current, replacement);

    // One ephemeral key is issued; then the unissued rest is replaced by three new ones.
    let first: MessageKeyResponse = ok(message_key(&client, &org, &bob_session, &alice.address).await);
    assert!(!first.nonephemeral);
    let fresh: Vec<SignedMessageKey> = (0..3)
        .map(|_| SignedMessageKey::generate(&alice.key, &alice.address, KeyKind::Ephemeral, &mut OsRng).1)
        .collect();
    let count: KeyCount =
        ok(client.post(&url(&org, &Route::SetEphemeralKeys), s, &EphemeralKeys { keys: fresh.clone() }).await);
    assert_eq!(count, KeyCount { count: 3 });
    let pool: EphemeralKeys = ok(client.get(&url(&org, &Route::ListEphemeralKeys), s).await);
    let mut expected = fresh.clone();
    expected.sort_by_key(|k| k.public_key.to_hex());
    let mut got = pool.keys.clone();
    got.sort_by_key(|k| k.public_key.to_hex());
    assert_eq!(got, expected);

    // A second replacement drops the three unissued ones entirely.
    let newer: Vec<SignedMessageKey> = (0..2)
        .map(|_| SignedMessageKey::generate(&alice.key, &alice.address, KeyKind::Ephemeral, &mut OsRng).1)
        .collect();
    let count: KeyCount =
        ok(client.post(&url(&org, &Route::SetEphemeralKeys), s, &EphemeralKeys { keys: newer.clone() }).await);
    assert_eq!(count.count, 2);
    let pool: EphemeralKeys = ok(client.get(&url(&org, &Route::ListEphemeralKeys), s).await);
    assert_eq!(key_set(pool.keys.iter().map(|k| &k.public_key)), key_set(newer.iter().map(|k| &k.public_key)));

    // Senders now get exactly the new keys, then the new non-ephemeral key; the old
    // non-ephemeral key and the replaced ephemeral keys are never handed out again.
    let mut handed = Vec::new();
    for _ in 0..2 {
        let key: MessageKeyResponse = ok(message_key(&client, &org, &bob_session, &alice.address).await);
        assert!(!key.nonephemeral);
        handed.push(key.message_key.public_key);
    }
    assert_eq!(key_set(&handed), key_set(newer.iter().map(|k| &k.public_key)));
    let last: MessageKeyResponse = ok(message_key(&client, &org, &bob_session, &alice.address).await);
    assert!(last.nonephemeral);
    assert_eq!(last.message_key, replacement);
    assert_ne!(last.message_key.public_key, alice.nonephemeral.public());

    org.stop().await;
}

// ---------------------------------------------------------------------------
// Proof of work and the sender lists
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pow_difficulty_comes_from_the_configuration() {
    let options = Options { zero_bits: 7, extra: "[pow.zero_bits]\n\"short-message\" = 3\n".into() };
    let org = start_one(options).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let session = login(&client, &org, &bob).await;

    let first: PowParams = ok(pow_params(&client, &org, &session, &alice.address).await);
    let second: PowParams = ok(pow_params(&client, &org, &session, &alice.address).await);
    assert_eq!(first.zero_bits, 7);
    assert_eq!(second.zero_bits, 7);
    assert_ne!(first.nonce, second.nonce, "every nonce is fresh");
    let route = Route::GetPowParams { address: alice.address.clone(), message_type: MessageType::ShortMessage };
    let short: PowParams = ok(client.get(&url(&org, &route), Some(&session.id)).await);
    assert_eq!(short.zero_bits, 3);

    // A message solved at the issued difficulty is accepted and records it.
    let (message_id, _, _, params) = send(&client, &org, &session, &bob, &alice.address, b"work").await;
    assert_eq!(params.zero_bits, 7);
    let alice_session = login(&client, &org, &alice).await;
    let stored: StoredEnvelope = ok(client
        .get(&url(&org, &Route::GetMessage { message_id, update_read: false }), Some(&alice_session.id))
        .await);
    assert_eq!(stored.server.pow_params, Some(params));

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whitelisted_address_sends_without_work_until_removed() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());
    let lists = SecretBoxKey::generate(&mut OsRng);

    let empty: ListEntries = ok(client.get(&url(&org, &Route::ListEntries { list: ListKind::Whitelist }), s).await);
    assert_eq!(empty.entries, vec![]);

    let entry = list_entry(&lists, bob.address.as_str());
    assert_eq!(entry.hash, list_entry_hash("bob#example.net"));
    let added: Added = ok(client.post(&url(&org, &Route::AddListEntry { list: ListKind::Whitelist }), s, &entry).await);
    assert_eq!(added, Added { added: true });
    let listed_entries: ListEntries =
        ok(client.get(&url(&org, &Route::ListEntries { list: ListKind::Whitelist }), s).await);
    assert_eq!(listed_entries.entries, vec![entry.clone()]);
    // The owner can read back what the sealed entry says; the server never could.
    let content: ListEntryContent = serde_json::from_slice(
        &lists.open(&listed_entries.entries[0].entry.nonce, &listed_entries.entries[0].entry.ciphertext).unwrap(),
    )
    .unwrap();
    assert_eq!(content.entry, "bob#example.net");
    let black: ListEntries = ok(client.get(&url(&org, &Route::ListEntries { list: ListKind::Blacklist }), s).await);
    assert_eq!(black.entries, vec![], "the lists are separate");

    let params: PowParams = ok(pow_params(&client, &org, &bob_session, &alice.address).await);
    assert_eq!(params.zero_bits, 0);
    let (message_id, _, _, params) = send(&client, &org, &bob_session, &bob, &alice.address, b"no work").await;
    assert_eq!(params.zero_bits, 0);
    let stored: StoredEnvelope =
        ok(client.get(&url(&org, &Route::GetMessage { message_id, update_read: false }), s).await);
    assert_eq!(stored.server.pow_params, Some(params));
    let secret = alice.secret_for(&stored.sent.message_public_key);
    assert_eq!(stored.open(&bob.key.public(), &alice.key.public(), secret).unwrap(), b"no work");

    let removed: Removed =
        ok(client.delete(&url(&org, &Route::RemoveListEntry { list: ListKind::Whitelist, hash: entry.hash }), s).await);
    assert_eq!(removed, Removed { removed: true });
    let empty: ListEntries = ok(client.get(&url(&org, &Route::ListEntries { list: ListKind::Whitelist }), s).await);
    assert_eq!(empty.entries, vec![]);
    let params: PowParams = ok(pow_params(&client, &org, &bob_session, &alice.address).await);
    assert_eq!(params.zero_bits, 6);

    org.stop().await;
    net.stop().await;
}

/// A gateway stores its account's Sent copies, drafts and uploads (IMAP APPEND) as
/// messages to the account itself: the owner is implicitly whitelisted there, so it
/// pays no proof of work and meets no key limit however much it stores, while another
/// sender still pays and cannot hoard keys past its unspent limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_stores_in_their_own_mailbox_without_work_or_key_limits() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 6).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let own = login(&client, &org, &alice).await;
    for round in 0..130 {
        let params: PowParams = ok(pow_params(&client, &org, &own, &alice.address).await);
        assert_eq!(params.zero_bits, 0, "round {round}");
        let _: MessageKeyResponse = ok(message_key(&client, &org, &own, &alice.address).await);
    }
    let (_, _, _, params) = send(&client, &org, &own, &alice, &alice.address, b"a sent copy").await;
    assert_eq!(params.zero_bits, 0);

    let other = login(&client, &org, &carol).await;
    let params: PowParams = ok(pow_params(&client, &org, &other, &alice.address).await);
    assert_eq!(params.zero_bits, 6, "another sender still pays");
    let unspent = org.config.limits.max_unspent_keys_per_sender as usize;
    let mut statuses = Vec::new();
    for _ in 0..unspent + 3 {
        statuses.push(message_key(&client, &org, &other, &alice.address).await.0);
    }
    assert!(statuses[..unspent].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[unspent..], [429, 429, 429], "another sender hoarding keys is refused");
    org.stop().await;
}

/// A sender that sends with the keys it asks for is never paced, however much it sends
/// in one session: the server's defaults bound what a sender holds unspent, not how
/// fast it sends (proof of work prices each message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_that_sends_is_never_held_back_by_the_default_limits() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 4).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let session = login(&client, &org, &carol).await;
    let rounds = 2 * org.config.limits.max_unspent_keys_per_sender as usize + 10;
    for round in 0..rounds {
        let body = format!("message {round}");
        send(&client, &org, &session, &carol, &alice.address, body.as_bytes()).await;
    }
    let alice_session = login(&client, &org, &alice).await;
    let stored = listed(&client, &org, &alice_session, &email_root()).await;
    assert_eq!(stored.len(), rounds, "every message was stored");
    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whitelisted_domain_sends_without_work() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let carol_session = login(&client, &org, &carol).await;
    let s = Some(alice_session.id.as_str());
    let lists = SecretBoxKey::generate(&mut OsRng);

    let entry = list_entry(&lists, "example.net");
    let added: Added = ok(client.post(&url(&org, &Route::AddListEntry { list: ListKind::Whitelist }), s, &entry).await);
    assert!(added.added);

    let (_, _, _, params) = send(&client, &org, &bob_session, &bob, &alice.address, b"domain friend").await;
    assert_eq!(params.zero_bits, 0);
    // A sender of another domain is unaffected.
    let params: PowParams = ok(pow_params(&client, &org, &carol_session, &alice.address).await);
    assert_eq!(params.zero_bits, 6);

    let _: Removed =
        ok(client.delete(&url(&org, &Route::RemoveListEntry { list: ListKind::Whitelist, hash: entry.hash }), s).await);
    let params: PowParams = ok(pow_params(&client, &org, &bob_session, &alice.address).await);
    assert_eq!(params.zero_bits, 6);

    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_address_or_domain_is_refused_everywhere_until_removed() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 3).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());
    let lists = SecretBoxKey::generate(&mut OsRng);
    let send_url = url(&org, &Route::SendMessage { address: alice.address.clone() });

    // An envelope prepared before the block.
    let (envelope, _, _) =
        prepare_message(&client, &org, &bob_session, &bob, &alice.address, b"before the block").await;

    for target in ["bob#example.net", "example.net"] {
        let entry = list_entry(&lists, target);
        let added: Added =
            ok(client.post(&url(&org, &Route::AddListEntry { list: ListKind::Blacklist }), s, &entry).await);
        assert!(added.added);
        let listed_entries: ListEntries =
            ok(client.get(&url(&org, &Route::ListEntries { list: ListKind::Blacklist }), s).await);
        assert_eq!(listed_entries.entries, vec![entry.clone()]);

        assert_error(&pow_params(&client, &org, &bob_session, &alice.address).await, 403, "blacklisted");
        assert_error(&message_key(&client, &org, &bob_session, &alice.address).await, 403, "blacklisted");
        assert_error(&client.post(&send_url, Some(&bob_session.id), &envelope).await, 403, "blacklisted");

        let removed: Removed = ok(client
            .delete(&url(&org, &Route::RemoveListEntry { list: ListKind::Blacklist, hash: entry.hash }), s)
            .await);
        assert!(removed.removed);
    }
    let empty: ListEntries = ok(client.get(&url(&org, &Route::ListEntries { list: ListKind::Blacklist }), s).await);
    assert_eq!(empty.entries, vec![]);

    // Unblocked, the envelope prepared earlier goes through and everything works again.
    let sent: MessageSent = ok(client.post(&send_url, Some(&bob_session.id), &envelope).await);
    assert_eq!(listed(&client, &org, &alice_session, &email_root()).await, vec![sent.message_id]);
    let params: PowParams = ok(pow_params(&client, &org, &bob_session, &alice.address).await);
    assert_eq!(params.zero_bits, 6);
    let _: MessageKeyResponse = ok(message_key(&client, &org, &bob_session, &alice.address).await);

    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_entries_beat_domain_entries() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());
    let lists = SecretBoxKey::generate(&mut OsRng);
    let add = |list, target: &str| {
        let entry = list_entry(&lists, target);
        let client = client.clone();
        let url = url(&org, &Route::AddListEntry { list });
        let session = alice_session.id.clone();
        async move {
            let added: Added = ok(client.post(&url, Some(&session), &entry).await);
            assert!(added.added);
            entry.hash
        }
    };

    // The whole domain is blocked, but bob himself is whitelisted: he sends for free.
    let domain_black = add(ListKind::Blacklist, "example.net").await;
    let bob_white = add(ListKind::Whitelist, "bob#example.net").await;
    let (_, _, _, params) = send(&client, &org, &bob_session, &bob, &alice.address, b"exception").await;
    assert_eq!(params.zero_bits, 0);

    // Swapped: the domain whitelisted, bob blacklisted: bob is refused.
    for (list, hash) in [(ListKind::Blacklist, domain_black), (ListKind::Whitelist, bob_white)] {
        let removed: Removed = ok(client.delete(&url(&org, &Route::RemoveListEntry { list, hash }), s).await);
        assert!(removed.removed);
    }
    add(ListKind::Whitelist, "example.net").await;
    add(ListKind::Blacklist, "bob#example.net").await;
    assert_error(&pow_params(&client, &org, &bob_session, &alice.address).await, 403, "blacklisted");
    assert_error(&message_key(&client, &org, &bob_session, &alice.address).await, 403, "blacklisted");

    org.stop().await;
    net.stop().await;
}

// ---------------------------------------------------------------------------
// Sending and the mailbox
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_message_is_stored_listed_and_fetched_exactly() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let bob_session = login(&client, &org, &bob).await;
    let alice_session = login(&client, &org, &alice).await;
    let s = Some(alice_session.id.as_str());

    let before = now().unix();
    let (first, envelope, key, params) = send(&client, &org, &bob_session, &bob, &alice.address, b"first").await;
    let (second, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"second").await;
    let after = now().unix();
    assert_ne!(first, second);

    let list: MessageList = ok(client.get(&url(&org, &email_root()), s).await);
    assert_eq!(list.messages.len(), 2);
    let ids: HashSet<Id32> = list.messages.iter().map(|m| m.message_id).collect();
    assert_eq!(ids, HashSet::from([first, second]));
    assert!(list.messages.windows(2).all(|w| w[0].received_at <= w[1].received_at), "oldest first");
    for summary in &list.messages {
        assert_eq!(summary.sender, bob.address);
        assert!(!summary.read);
        assert!((before..=after).contains(&summary.received_at.unix()));
    }
    // Other types' roots are empty.
    let route = Route::ListMessages { message_type: MessageType::ShortMessage, folder_name: None };
    assert_eq!(listed(&client, &org, &alice_session, &route).await, vec![]);

    // The stored envelope: the sent fields untouched, the server fields as §8.9 says.
    let get_url = url(&org, &Route::GetMessage { message_id: first, update_read: false });
    let (status, _, raw) = get_raw(&client, &get_url, s).await;
    assert_eq!(status, 200);
    let stored: StoredEnvelope = serde_json::from_slice(&raw).unwrap();
    let summary = list.messages.iter().find(|m| m.message_id == first).unwrap();
    assert_eq!(summary.size, raw.len() as u64, "size is the stored envelope's JSON size");
    assert_eq!(stored.sent, envelope);
    let server = &stored.server;
    assert_eq!(server.recipient, alice.address);
    assert_eq!(server.sender, bob.address);
    assert_eq!(server.sender_public_key, bob.key.public());
    assert_eq!(server.received_at, summary.received_at);
    assert_eq!(server.pow_params, Some(params));
    assert_eq!(server.message_id, first);
    assert_eq!(server.login_token_hash, login_token_hash(&bob_session.token));
    assert_eq!(server.received_via, ReceivedVia::SmimpClient);
    assert!(!server.read);
    assert_eq!(server.extensions_data, None);
    assert_eq!(server.protocol_version, "0.1");
    assert_eq!(stored.sent.message_public_key, key.message_key.public_key);
    let secret = alice.secret_for(&stored.sent.message_public_key);
    assert_eq!(stored.open(&bob.key.public(), &alice.key.public(), secret).unwrap(), b"first");

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_flags_follow_get_message_and_message_read() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let bob_session = login(&client, &org, &bob).await;
    let alice_session = login(&client, &org, &alice).await;
    let s = Some(alice_session.id.as_str());
    let (id, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"read me").await;

    let read_url = url(&org, &Route::GetReadStatus { message_id: id });
    let set_url = url(&org, &Route::SetReadStatus { message_id: id });

    let status: ReadStatus = ok(client.get(&read_url, s).await);
    assert_eq!(status, ReadStatus { read: false });

    // update_read false leaves it unread.
    let stored: StoredEnvelope =
        ok(client.get(&url(&org, &Route::GetMessage { message_id: id, update_read: false }), s).await);
    assert!(!stored.server.read);
    assert!(!listing_read(&client, &org, &alice_session).await);
    let status: ReadStatus = ok(client.get(&read_url, s).await);
    assert!(!status.read);

    // update_read true marks it read, and says so in the answer.
    let stored: StoredEnvelope =
        ok(client.get(&url(&org, &Route::GetMessage { message_id: id, update_read: true }), s).await);
    assert!(stored.server.read);
    assert!(listing_read(&client, &org, &alice_session).await);
    let status: ReadStatus = ok(client.get(&read_url, s).await);
    assert!(status.read);
    // Fetching without updating keeps it read.
    let stored: StoredEnvelope =
        ok(client.get(&url(&org, &Route::GetMessage { message_id: id, update_read: false }), s).await);
    assert!(stored.server.read);

    // message_read POST with the bare literals.
    let status: ReadStatus = ok(client.post(&set_url, s, &false).await);
    assert_eq!(status, ReadStatus { read: false });
    assert_eq!(client.get(&read_url, s).await.1, json!({ "read": false }));
    assert!(!listing_read(&client, &org, &alice_session).await);
    let status: ReadStatus = ok(client.post(&set_url, s, &true).await);
    assert_eq!(status, ReadStatus { read: true });
    assert_eq!(client.get(&read_url, s).await.1, json!({ "read": true }));
    assert!(listing_read(&client, &org, &alice_session).await);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_data_is_set_returned_and_cleared() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let bob_session = login(&client, &org, &bob).await;
    let alice_session = login(&client, &org, &alice).await;
    let s = Some(alice_session.id.as_str());
    let (id, envelope, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"tag me").await;
    let get_url = url(&org, &Route::GetMessage { message_id: id, update_read: false });
    let ext_url = url(&org, &Route::SetMessageExtensions { message_id: id });

    let key = SecretBoxKey::generate(&mut OsRng);
    let nonce = BoxNonce::random(&mut OsRng);
    let sealed = SealedData { nonce, ciphertext: key.seal(&nonce, br#"{"flagged":true}"#) };
    let updated: Updated = ok(client.post(&ext_url, s, &sealed).await);
    assert_eq!(updated, Updated { updated: true });

    let stored: StoredEnvelope = ok(client.get(&get_url, s).await);
    assert_eq!(stored.server.extensions_data, Some(sealed.clone()));
    assert_eq!(stored.sent, envelope, "the message itself is immutable");
    let data = stored.server.extensions_data.unwrap();
    assert_eq!(key.open(&data.nonce, &data.ciphertext).unwrap(), br#"{"flagged":true}"#);

    // A replacement replaces; null clears.
    let nonce = BoxNonce::random(&mut OsRng);
    let replacement = SealedData { nonce, ciphertext: key.seal(&nonce, br#"{"flagged":false}"#) };
    let _: Updated = ok(client.post(&ext_url, s, &replacement).await);
    let stored: StoredEnvelope = ok(client.get(&get_url, s).await);
    assert_eq!(stored.server.extensions_data, Some(replacement));
    let cleared: Updated = ok(client.post(&ext_url, s, &Value::Null).await);
    assert!(cleared.updated);
    let stored: StoredEnvelope = ok(client.get(&get_url, s).await);
    assert_eq!(stored.server.extensions_data, None);

    org.stop().await;
}

/// Extension `x-envelopes` (docs/protocol.md §8.30): a folder's envelopes in pages of at
/// most 256, in the listing's order, each with its current read status and extensions
/// data; `next` and `more` walk to the end; bad positions and folders are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_is_read_by_the_page_in_storage_order() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let session = login(&client, &org, &alice).await;
    let s = Some(session.id.as_str());
    let mut ids = Vec::new();
    for n in 0..300 {
        ids.push(send(&client, &org, &session, &alice, &alice.address, format!("m{n}").as_bytes()).await.0);
    }
    let _: ReadStatus = ok(client.post(&url(&org, &Route::SetReadStatus { message_id: ids[5] }), s, &true).await);
    let nonce = BoxNonce::random(&mut OsRng);
    let sealed = SealedData { nonce, ciphertext: b"sealed flags".to_vec() };
    let ext = url(&org, &Route::SetMessageExtensions { message_id: ids[6] });
    let _: Updated = ok(client.post(&ext, s, &sealed).await);

    let page_at = |after: u64| {
        url(&org, &Route::ListEnvelopes { message_type: MessageType::Email, folder_name: None, after: Position(after) })
    };
    let first: EnvelopePage = ok(client.get(&page_at(0), s).await);
    assert_eq!(first.envelopes.len(), 256, "a page holds at most 256 envelopes");
    assert!(first.more);
    let second: EnvelopePage = ok(client.get(&page_at(first.next.0), s).await);
    assert_eq!(second.envelopes.len(), 44);
    assert!(!second.more, "the folder held nothing more");
    let empty: EnvelopePage = ok(client.get(&page_at(second.next.0), s).await);
    assert!(empty.envelopes.is_empty() && !empty.more);
    assert_eq!(empty.next, second.next, "an empty page stays where it was asked");

    let paged: Vec<StoredEnvelope> =
        first.envelopes.into_iter().chain(second.envelopes).map(|item| item.into_current()).collect();
    let paged_ids: Vec<Id32> = paged.iter().map(|e| e.server.message_id).collect();
    assert_eq!(paged_ids, ids, "every message once, in storage order");
    assert!(paged[5].server.read, "the current read status");
    assert!(!paged[4].server.read);
    assert_eq!(paged[6].server.extensions_data, Some(sealed), "the current extensions data");
    let alone: StoredEnvelope =
        ok(client.get(&url(&org, &Route::GetMessage { message_id: ids[7], update_read: false }), s).await);
    assert_eq!(paged[7], alone, "a paged envelope is the envelope `message` returns");

    let bad = format!("{}/0.1/x-envelopes/email/soon", org.base);
    assert_error(&client.get(&bad, s).await, 400, "bad_request");
    let missing = Route::ListEnvelopes {
        message_type: MessageType::Email,
        folder_name: Some(folder("nowhere")),
        after: Position(0),
    };
    assert_error(&client.get(&url(&org, &missing), s).await, 404, "not_found");
    assert_error(&client.get(&page_at(0), None).await, 401, "not_authenticated");
    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_move_between_folders_and_are_deleted_for_good() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let bob_session = login(&client, &org, &bob).await;
    let alice_session = login(&client, &org, &alice).await;
    let s = Some(alice_session.id.as_str());
    let (first, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"one").await;
    let (second, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"two").await;

    let receipts = folder_doc("Receipts", "receipts", None, MessageType::Email);
    let created: Folder = ok(client.post(&url(&org, &Route::CreateFolder), s, &receipts).await);
    assert_eq!(created, receipts);
    assert_eq!(listed(&client, &org, &alice_session, &email_folder("receipts")).await, vec![]);

    let move_url = url(&org, &Route::MoveMessage { message_id: first });
    let moved: Moved = ok(client.post(&move_url, s, &json!({ "folder_name": "receipts" })).await);
    assert_eq!(moved, Moved { moved: true });
    assert_eq!(listed(&client, &org, &alice_session, &email_root()).await, vec![second]);
    assert_eq!(listed(&client, &org, &alice_session, &email_folder("receipts")).await, vec![first]);
    // The message itself is unchanged by the move.
    let stored: StoredEnvelope =
        ok(client.get(&url(&org, &Route::GetMessage { message_id: first, update_read: false }), s).await);
    assert_eq!(stored.server.message_id, first);

    let moved: Moved = ok(client.post(&move_url, s, &json!({ "folder_name": null })).await);
    assert!(moved.moved);
    let root: HashSet<Id32> = listed(&client, &org, &alice_session, &email_root()).await.into_iter().collect();
    assert_eq!(root, HashSet::from([first, second]));
    assert_eq!(listed(&client, &org, &alice_session, &email_folder("receipts")).await, vec![]);

    // Delete: gone from every view, and from the quota.
    let deleted: Deleted = ok(client.delete(&url(&org, &Route::DeleteMessage { message_id: first }), s).await);
    assert_eq!(deleted, Deleted { deleted: true });
    assert_error(
        &client.get(&url(&org, &Route::GetMessage { message_id: first, update_read: false }), s).await,
        404,
        "not_found",
    );
    assert_error(&client.get(&url(&org, &Route::GetReadStatus { message_id: first }), s).await, 404, "not_found");
    assert_error(&client.delete(&url(&org, &Route::DeleteMessage { message_id: first }), s).await, 404, "not_found");
    assert_eq!(listed(&client, &org, &alice_session, &email_root()).await, vec![second]);
    let remaining = ok::<MessageList>(client.get(&url(&org, &email_root()), s).await).messages[0].size;
    let quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), s).await);
    assert_eq!(quota.used, remaining);

    org.stop().await;
}

// ---------------------------------------------------------------------------
// Folders
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folders_are_created_listed_renamed_and_deleted() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());
    let create = |doc: Folder| {
        let client = client.clone();
        let url = url(&org, &Route::CreateFolder);
        let session = alice_session.id.clone();
        async move {
            let created: Folder = ok(client.post(&url, Some(&session), &doc).await);
            assert_eq!(created, doc);
        }
    };
    let folders = |message_type: Option<MessageType>| {
        let client = client.clone();
        let url = url(&org, &Route::ListFolders { message_type });
        let session = alice_session.id.clone();
        async move { ok::<FolderList>(client.get(&url, Some(&session)).await).folders }
    };

    assert_eq!(folders(None).await, vec![]);
    let work = folder_doc("Work", "work", None, MessageType::Email);
    let work_2025 = folder_doc("Work / 2025", "work-2025", Some("work"), MessageType::Email);
    let chats = folder_doc("Chats", "chats", None, MessageType::ShortMessage);
    // The same name in another type is another folder.
    let work_short = folder_doc("Work chats", "work", None, MessageType::ShortMessage);
    for doc in [&work, &work_2025, &chats, &work_short] {
        create(doc.clone()).await;
    }

    assert_eq!(folders(None).await, vec![work.clone(), work_2025.clone(), chats.clone(), work_short.clone()]);
    assert_eq!(folders(Some(MessageType::Email)).await, vec![work.clone(), work_2025.clone()]);
    assert_eq!(folders(Some(MessageType::ShortMessage)).await, vec![chats.clone(), work_short.clone()]);
    assert_eq!(folders(Some(MessageType::SecretXsalsa20)).await, vec![]);

    // A message filed in work-2025 follows its folder's rename.
    let (id, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"filed").await;
    let _: Moved = ok(client
        .post(&url(&org, &Route::MoveMessage { message_id: id }), s, &json!({"folder_name": "work-2025"}))
        .await);
    let archive = folder_doc("Archive 2025", "archive-2025", Some("work"), MessageType::Email);
    let renamed: Folder =
        ok(client.post(&url(&org, &Route::UpdateFolder { folder_name: folder("work-2025") }), s, &archive).await);
    assert_eq!(renamed, archive);
    assert_eq!(folders(Some(MessageType::Email)).await, vec![archive.clone(), work.clone()]);
    assert_eq!(listed(&client, &org, &alice_session, &email_folder("archive-2025")).await, vec![id]);
    assert_error(&client.get(&url(&org, &email_folder("work-2025")), s).await, 404, "not_found");
    // The short-message folder of the same name as the parent is untouched.
    assert_eq!(folders(Some(MessageType::ShortMessage)).await, vec![chats.clone(), work_short.clone()]);

    // Renaming the parent carries the child's parent along.
    let jobs = folder_doc("Jobs", "jobs", None, MessageType::Email);
    let renamed: Folder =
        ok(client.post(&url(&org, &Route::UpdateFolder { folder_name: folder("work") }), s, &jobs).await);
    assert_eq!(renamed, jobs);
    let archive_in_jobs = folder_doc("Archive 2025", "archive-2025", Some("jobs"), MessageType::Email);
    assert_eq!(folders(Some(MessageType::Email)).await, vec![archive_in_jobs.clone(), jobs.clone()]);
    assert_eq!(folders(Some(MessageType::ShortMessage)).await, vec![chats.clone(), work_short.clone()]);

    // Moving a folder to the root (and renaming only its display name).
    let top = folder_doc("Archive (top)", "archive-2025", None, MessageType::Email);
    let moved: Folder =
        ok(client.post(&url(&org, &Route::UpdateFolder { folder_name: folder("archive-2025") }), s, &top).await);
    assert_eq!(moved, top);
    assert_eq!(folders(Some(MessageType::Email)).await, vec![top.clone(), jobs.clone()]);
    assert_eq!(listed(&client, &org, &alice_session, &email_folder("archive-2025")).await, vec![id]);

    // An empty folder is deleted; the listing no longer has it.
    let delete = |message_type: MessageType, name: &str| {
        url(&org, &Route::DeleteFolder { message_type, folder_name: folder(name) })
    };
    let deleted: Deleted = ok(client.delete(&delete(MessageType::Email, "jobs"), s).await);
    assert_eq!(deleted, Deleted { deleted: true });
    let deleted: Deleted = ok(client.delete(&delete(MessageType::ShortMessage, "work"), s).await);
    assert!(deleted.deleted);
    assert_eq!(folders(None).await, vec![top.clone(), chats.clone()]);

    org.stop().await;
}

// ---------------------------------------------------------------------------
// Profile updates and key rotation
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_updates_and_master_key_rotation_extend_the_history() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let s = Some(alice_session.id.as_str());
    let update_url = url(&org, &Route::UpdateProfile);

    // A name change, signed by the current key.
    let verified = verified_history(&client, &org, &alice.address).await;
    let named = ProfileFields {
        name: Some("Alice".into()),
        website: Some("https://alice.example".into()),
        ..Default::default()
    };
    let record = ProfileRecord::next(verified.latest(), &alice.key, alice.key.public(), named.clone(), now()).unwrap();
    let length: ProfileLength = ok(client.post(&update_url, s, &record).await);
    assert_eq!(length, ProfileLength { length: 2 });
    let newest: UserMostRecent = ok(client
        .get(&url(&org, &Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::MostRecent }), None)
        .await);
    assert_eq!(newest.record, record);
    assert_eq!(newest.record.parse_data(1).unwrap().fields(), named);

    // A master-key rotation, signed by the prior key.
    let verified = verified_history(&client, &org, &alice.address).await;
    assert_eq!(verified.records().len(), 2);
    let new_key = MasterKey::generate(&mut OsRng);
    let rotation = ProfileRecord::next(verified.latest(), &alice.key, new_key.public(), named.clone(), now()).unwrap();
    let length: ProfileLength = ok(client.post(&update_url, s, &rotation).await);
    assert_eq!(length.length, 3);

    let verified = verified_history(&client, &org, &alice.address).await;
    assert_eq!(verified.records().len(), 3);
    assert_eq!(verified.first_key(), alice.key.public());
    assert_eq!(verified.current_key(), new_key.public());
    assert!(verified.contains_key(&alice.key.public()));
    assert_eq!(verified.records()[1].record, record);
    assert_eq!(verified.records()[2].record, rotation);
    assert_eq!(verified.latest().data.fields(), named);
    let key: UserPublicKey = ok(client
        .get(&url(&org, &Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::PublicKey }), None)
        .await);
    assert_eq!(key.public_key, new_key.public());

    // The session opened before the rotation stays valid.
    let _: Quota = ok(client.get(&url(&org, &Route::GetQuota), s).await);

    // Logging in now takes the new key; the old one is refused.
    let (response, _) = try_login(&client, &org, &alice.address, &alice.key).await;
    assert_error(&response, 403, "login_failed");
    let (response, _) = try_login(&client, &org, &alice.address, &new_key).await;
    let created: SessionCreated = ok(response);
    let new_session = created.session.to_hex();

    // The next update must be signed by the new key (the old one no longer can).
    let stale = ProfileRecord::next(verified.latest(), &alice.key, alice.key.public(), named.clone(), now());
    assert!(stale.is_err(), "the library refuses to sign with a key that is no longer current");
    let renamed = ProfileFields { name: Some("Alice B.".into()), ..named };
    let next = ProfileRecord::next(verified.latest(), &new_key, new_key.public(), renamed.clone(), now()).unwrap();
    let length: ProfileLength = ok(client.post(&update_url, Some(&new_session), &next).await);
    assert_eq!(length.length, 4);
    let verified = verified_history(&client, &org, &alice.address).await;
    assert_eq!(verified.latest().data.fields(), renamed);
    assert_eq!(verified.current_key(), new_key.public());

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_remote_key_is_the_one_remote_logins_take() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let _alice = create_account(&client, &org, "alice", 0).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let bob_home = login(&client, &net, &bob).await;

    let verified = verified_history(&client, &net, &bob.address).await;
    let new_key = MasterKey::generate(&mut OsRng);
    let rotation =
        ProfileRecord::next(verified.latest(), &bob.key, new_key.public(), ProfileFields::default(), now()).unwrap();
    let length: ProfileLength = ok(client.post(&url(&net, &Route::UpdateProfile), Some(&bob_home.id), &rotation).await);
    assert_eq!(length.length, 2);

    let (response, _) = try_login(&client, &org, &bob.address, &bob.key).await;
    assert_error(&response, 403, "login_failed");
    let (response, _) = try_login(&client, &org, &bob.address, &new_key).await;
    let _: SessionCreated = ok(response);

    org.stop().await;
    net.stop().await;
}

// ---------------------------------------------------------------------------
// Avatar
// ---------------------------------------------------------------------------

/// A complete 1×1 PNG.
const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_avatar_is_uploaded_signed_and_served() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let info_url = url(&org, &Route::GetAvatar { address: alice.address.clone() });

    assert_error(&client.get(&info_url, None).await, 404, "not_found");

    let hash = avatar_hash(&alice.address, TINY_PNG);
    let upload = AvatarUpload {
        content_type: AvatarContentType::Png,
        image: TINY_PNG.to_vec(),
        signature: alice.key.sign(&hash),
    };
    assert_eq!(
        serde_json::to_value(&upload).unwrap()["image"],
        base64::engine::general_purpose::STANDARD.encode(TINY_PNG)
    );
    let stored: AvatarStored = ok(client.post(&url(&org, &Route::SetAvatar), Some(&alice_session.id), &upload).await);
    let expected_url = format!("https://{}/0.1/avatar_image/alice%23example.org", org.config.server.public_base);
    assert_eq!(stored, AvatarStored { url: expected_url.clone(), hash });

    // Public: no session needed.
    let info: AvatarInfo = ok(client.get(&info_url, None).await);
    assert_eq!(info.url, expected_url);
    assert_eq!(info.content_type, AvatarContentType::Png);
    assert_eq!(info.hash, hash);
    alice.key.public().verify(&info.hash, &info.signature).unwrap();

    // The URL serves the exact bytes, which hash to what the owner signed.
    let (status, content_type, image) = get_raw(&client, &info.url, None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(image, TINY_PNG);
    assert_eq!(avatar_hash(&alice.address, &image), info.hash);

    // A new upload replaces the old one.
    let mut other = TINY_PNG.to_vec();
    other.extend_from_slice(b"trailing");
    let other_hash = avatar_hash(&alice.address, &other);
    let upload = AvatarUpload {
        content_type: AvatarContentType::Png,
        image: other.clone(),
        signature: alice.key.sign(&other_hash),
    };
    let stored: AvatarStored = ok(client.post(&url(&org, &Route::SetAvatar), Some(&alice_session.id), &upload).await);
    assert_eq!(stored.hash, other_hash);
    let info: AvatarInfo = ok(client.get(&info_url, None).await);
    assert_eq!(info.hash, other_hash);
    alice.key.public().verify(&other_hash, &info.signature).unwrap();
    assert_eq!(get_raw(&client, &info.url, None).await.2, other);

    org.stop().await;
}

// ---------------------------------------------------------------------------
// Quota
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_is_one_gib_by_default_and_counts_stored_envelopes() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());

    assert_eq!(client.get(&url(&org, &Route::GetQuota), s).await.1, json!({ "used": 0, "available": 1 << 30 }));
    send(&client, &org, &bob_session, &bob, &alice.address, b"some bytes").await;
    send(&client, &org, &bob_session, &bob, &alice.address, b"some more bytes").await;
    let list: MessageList = ok(client.get(&url(&org, &email_root()), s).await);
    let total: u64 = list.messages.iter().map(|m| m.size).sum();
    assert!(total > 0);
    let quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), s).await);
    assert_eq!(quota, Quota { used: total, available: (1 << 30) - total as i64 });
    assert_eq!(quota.available_bytes(), Some((1 << 30) - total));
    // The sender's own quota is untouched.
    let bob_quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), Some(&bob_session.id)).await);
    assert_eq!(bob_quota.used, 0);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_quota_reports_what_is_left() {
    let options = Options { extra: "[limits]\nquota_bytes = 100000\n".into(), ..Default::default() };
    let org = start_one(options).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let bob_session = login(&client, &org, &bob).await;
    let s = Some(alice_session.id.as_str());

    let quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), s).await);
    assert_eq!(quota, Quota { used: 0, available: 100_000 });
    let (id, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"counted").await;
    let size = ok::<MessageList>(client.get(&url(&org, &email_root()), s).await).messages[0].size;
    let quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), s).await);
    assert_eq!(quota, Quota { used: size, available: 100_000 - size as i64 });
    assert_eq!(quota.available_bytes(), Some(100_000 - size));

    let _: Deleted = ok(client.delete(&url(&org, &Route::DeleteMessage { message_id: id }), s).await);
    let quota: Quota = ok(client.get(&url(&org, &Route::GetQuota), s).await);
    assert_eq!(quota, Quota { used: 0, available: 100_000 });

    org.stop().await;
}

// ---------------------------------------------------------------------------
// Administration
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_add_list_and_remove_accounts() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let store = &org.state.store;

    let (dave, password) = admin::add_account(&org.config, store, "dave#example.org", 42).await.unwrap();
    assert_eq!(dave.as_str(), "dave#example.org");
    assert_eq!(password.len(), 32);
    assert!(password.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(matches!(admin::add_account(&org.config, store, "dave#example.org", 43).await, Err(AdminError::Exists(_))));
    assert!(matches!(
        admin::add_account(&org.config, store, "dave#example.net", 43).await,
        Err(AdminError::ForeignDomain { .. })
    ));

    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &org, "bob", 0).await;
    let accounts = admin::list_accounts(store).await.unwrap();
    let summary: Vec<(String, bool)> = accounts.iter().map(|a| (a.address.to_string(), a.initialized)).collect();
    assert_eq!(
        summary,
        vec![("alice#example.org".into(), true), ("bob#example.org".into(), true), ("dave#example.org".into(), false)]
    );
    let dave_row = accounts.iter().find(|a| a.address == dave).unwrap();
    assert_eq!(dave_row.created_at, 42);
    assert!(dave_row.password_check.is_some());
    assert!(accounts.iter().filter(|a| a.initialized).all(|a| a.password_check.is_none()), "password forgotten");

    // alice has mail and a folder when she is removed.
    let bob_session = login(&client, &org, &bob).await;
    let alice_session = login(&client, &org, &alice).await;
    let (id, _, _, _) = send(&client, &org, &bob_session, &bob, &alice.address, b"last words").await;
    let _: Folder = ok(client
        .post(
            &url(&org, &Route::CreateFolder),
            Some(&alice_session.id),
            &folder_doc("Keep", "keep", None, MessageType::Email),
        )
        .await);
    assert!(store.quota_used(&alice.address).await.unwrap() > 0);

    let removed = admin::remove_account(&org.config, store, "alice#example.org").await.unwrap();
    assert_eq!(removed, alice.address);
    let remaining: Vec<Address> = admin::list_accounts(store).await.unwrap().into_iter().map(|a| a.address).collect();
    assert_eq!(remaining, vec![bob.address.clone(), dave.clone()]);

    // Gone publicly, for logins, for senders, and from storage.
    for kind in [UserInfoKind::PublicKey, UserInfoKind::MostRecent, UserInfoKind::History] {
        let response = client.get(&url(&org, &Route::GetUser { address: alice.address.clone(), kind }), None).await;
        assert_error(&response, 404, "not_found");
    }
    assert_error(
        &client.get(&url(&org, &Route::GetLoginToken { address: alice.address.clone() }), None).await,
        404,
        "not_found",
    );
    // The account and its sessions are gone: its session id names nothing any more.
    assert_error(&client.get(&url(&org, &Route::GetQuota), Some(&alice_session.id)).await, 401, "not_authenticated");
    assert_error(&message_key(&client, &org, &bob_session, &alice.address).await, 404, "not_found");
    assert!(store.message(&alice.address, &id, false).await.unwrap().is_none(), "messages are deleted");
    assert_eq!(store.quota_used(&alice.address).await.unwrap(), 0);
    assert!(store.folders(&alice.address, None).await.unwrap().is_empty());
    assert!(store.history(&alice.address).await.unwrap().is_empty());

    assert!(matches!(
        admin::remove_account(&org.config, store, "alice#example.org").await,
        Err(AdminError::Missing(_))
    ));
    // The address can be created again, as a new, uninitialised account.
    let (again, _) = admin::add_account(&org.config, store, "alice#example.org", 50).await.unwrap();
    assert_eq!(again, alice.address);
    let response = client
        .get(&url(&org, &Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::PublicKey }), None)
        .await;
    assert_error(&response, 404, "not_found");

    org.stop().await;
}

// Every test above runs on SQLite (as written) and on PostgreSQL (`postgres::NAME`).
also_on_postgres!(
    version_server_information_and_well_known_file,
    get_user_returns_the_key_the_newest_record_and_the_history,
    a_local_session_is_created_used_and_destroyed,
    a_remote_user_logs_in_sends_only_and_logs_out,
    each_ephemeral_key_is_issued_once_then_the_nonephemeral_key,
    an_ephemeral_key_carries_one_message,
    the_owner_replaces_the_nonephemeral_and_ephemeral_keys,
    pow_difficulty_comes_from_the_configuration,
    a_whitelisted_address_sends_without_work_until_removed,
    the_owner_stores_in_their_own_mailbox_without_work_or_key_limits,
    a_sender_that_sends_is_never_held_back_by_the_default_limits,
    a_whitelisted_domain_sends_without_work,
    a_blacklisted_address_or_domain_is_refused_everywhere_until_removed,
    address_entries_beat_domain_entries,
    a_sent_message_is_stored_listed_and_fetched_exactly,
    read_flags_follow_get_message_and_message_read,
    extensions_data_is_set_returned_and_cleared,
    a_folder_is_read_by_the_page_in_storage_order,
    messages_move_between_folders_and_are_deleted_for_good,
    folders_are_created_listed_renamed_and_deleted,
    profile_updates_and_master_key_rotation_extend_the_history,
    a_rotated_remote_key_is_the_one_remote_logins_take,
    an_avatar_is_uploaded_signed_and_served,
    quota_is_one_gib_by_default_and_counts_stored_envelopes,
    a_configured_quota_reports_what_is_left,
    admin_commands_add_list_and_remove_accounts,
);
