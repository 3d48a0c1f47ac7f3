//! Every bad input to the reference server gets the status and error code of
//! docs/protocol.md §10 with a message in plain words, and changes nothing: no
//! message is stored, no session created, no history, key, folder or account
//! altered, no message key or PoW nonce consumed by a refused call.
//!
//! Servers run over real TLS (tests/common); "nothing changed" is checked through
//! the API where the API can show it, and by counting rows in the server's own
//! database where it cannot (sessions, login tokens).

mod common;

use std::num::NonZeroUsize;

use common::*;
use rand_core::OsRng;
use reqwest::Method;
use serde_json::{json, Value};
use smimp_gateway::server::admin;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, BoxPublicKey, Hash, MasterKey, Signature};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{
    login_token_hash, message_field_hash, message_hash, Ciphertext, HashContext, SentEnvelope,
};
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::pow::{leading_zero_bits, PowInput, PowParams, PowSolution, Preimage, SolveControl};
use smimp_gateway::smimp::profile::{
    record_hash, verify_history, ProfileData, ProfileFields, ProfileRecord, VerifiedRecord,
};
use smimp_gateway::smimp::timestamp::Timestamp;
use smimp_gateway::smimp::wire::{
    create_session_hash, init_password_hash, EphemeralKeys, Folder, FolderList, FolderName, InitializeAccountRequest,
    ListKind, MessageKeyResponse, MessageList, MessageSent, MessageSummary, Quota, Route, UserHistory, AUTH_HEADER,
    LOGIN_TOKEN_LIFETIME_SECS,
};
use sqlx::Connection;

// ---- helpers ------------------------------------------------------------------------

/// Sends raw bytes with an optional Content-Type, for bodies `Client` cannot produce.
async fn raw(
    client: &Client,
    method: Method,
    url: &str,
    session: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut request = client.http.request(method, url).body(body);
    if let Some(session) = session {
        request = request.header(AUTH_HEADER, session);
    }
    if let Some(content_type) = content_type {
        request = request.header(reqwest::header::CONTENT_TYPE, content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A JSON body posted with the right Content-Type, written as text (so it may be malformed).
async fn post_text(client: &Client, url: &str, session: Option<&str>, body: &str) -> (u16, Value) {
    raw(client, Method::POST, url, session, Some("application/json"), body.to_string()).await
}

/// One number from the server's own database (rows the API cannot show).
async fn db_count(server: &TestServer, sql: &str) -> i64 {
    let database = &server.config.server.database;
    if on_postgres_now() {
        let url = database.to_str().unwrap();
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut connection).await.unwrap();
        connection.close().await.unwrap();
        return n;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(database).read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut connection).await.unwrap();
    connection.close().await.unwrap();
    n
}

async fn sessions(server: &TestServer) -> i64 {
    db_count(server, "SELECT COUNT(*) FROM sessions").await
}

fn at(server: &TestServer, path: &str) -> String {
    format!("{}/{path}", server.base)
}

async fn login_token(client: &Client, server: &TestServer, address: &Address) -> Id32 {
    let challenge: smimp_gateway::smimp::wire::LoginChallenge =
        ok(client.get(&url(server, &Route::GetLoginToken { address: address.clone() }), None).await);
    challenge.token
}

async fn post_login(
    client: &Client,
    server: &TestServer,
    address: &Address,
    token: &Id32,
    signature: &Signature,
) -> (u16, Value) {
    let body = json!({ "token": token, "server": server.domain, "signature": signature });
    client.post(&url(server, &Route::CreateSession { address: address.clone() }), None, &body).await
}

async fn message_key(
    client: &Client,
    server: &TestServer,
    session: &Session,
    recipient: &Address,
) -> MessageKeyResponse {
    ok(client.post(&url(server, &Route::GetMessageKey), Some(&session.id), &json!({ "address": recipient })).await)
}

async fn pow_params(
    client: &Client,
    server: &TestServer,
    session: &Session,
    recipient: &Address,
    message_type: MessageType,
) -> PowParams {
    ok(client
        .get(&url(server, &Route::GetPowParams { address: recipient.clone(), message_type }), Some(&session.id))
        .await)
}

async fn send(
    client: &Client,
    server: &TestServer,
    session: &Session,
    recipient: &Address,
    envelope: &SentEnvelope,
) -> (u16, Value) {
    client.post(&url(server, &Route::SendMessage { address: recipient.clone() }), Some(&session.id), envelope).await
}

async fn inbox(client: &Client, server: &TestServer, owner: &Session) -> Vec<MessageSummary> {
    let list: MessageList = ok(client
        .get(
            &url(server, &Route::ListMessages { message_type: MessageType::Email, folder_name: None }),
            Some(&owner.id),
        )
        .await);
    list.messages
}

async fn folder_messages(
    client: &Client,
    server: &TestServer,
    owner: &Session,
    kind: MessageType,
    name: &str,
) -> Vec<MessageSummary> {
    let route = Route::ListMessages { message_type: kind, folder_name: Some(FolderName::parse(name).unwrap()) };
    let list: MessageList = ok(client.get(&url(server, &route), Some(&owner.id)).await);
    list.messages
}

async fn quota_used(client: &Client, server: &TestServer, owner: &Session) -> u64 {
    let quota: Quota = ok(client.get(&url(server, &Route::GetQuota), Some(&owner.id)).await);
    quota.used
}

async fn ephemeral_keys(client: &Client, server: &TestServer, owner: &Session) -> Vec<SignedMessageKey> {
    let keys: EphemeralKeys = ok(client.get(&url(server, &Route::ListEphemeralKeys), Some(&owner.id)).await);
    keys.keys
}

async fn nonephemeral_key(client: &Client, server: &TestServer, owner: &Session) -> SignedMessageKey {
    ok(client.get(&url(server, &Route::GetNonephemeralKey), Some(&owner.id)).await)
}

async fn folders(client: &Client, server: &TestServer, owner: &Session) -> Vec<Folder> {
    let list: FolderList =
        ok(client.get(&url(server, &Route::ListFolders { message_type: None }), Some(&owner.id)).await);
    list.folders
}

async fn history(client: &Client, server: &TestServer, address: &Address) -> Vec<ProfileRecord> {
    let route = Route::GetUser { address: address.clone(), kind: smimp_gateway::smimp::wire::UserInfoKind::History };
    let answer: UserHistory = ok(client.get(&url(server, &route), None).await);
    answer.history
}

fn addr(text: &str) -> Address {
    Address::parse(text).unwrap()
}

/// What to put in an envelope's proof of work.
#[derive(Clone, Copy)]
enum Work {
    /// No proof of work at all.
    Missing,
    /// A real solution for these parameters.
    Solved(PowParams),
    /// A genuine hash over the right preimage, but with fewer zero bits than required.
    TooFew(PowParams),
}

/// Everything an envelope is made of, so each test can get exactly one thing wrong.
struct Draft<'a> {
    /// The sender the hash names (the session's address).
    sender: &'a Address,
    /// Who signs the message hash (and whose converted key seals).
    signer: &'a MasterKey,
    /// The login token the hash and the PoW bind to.
    token: &'a Id32,
    recipient: &'a Address,
    key: BoxPublicKey,
    message_type: MessageType,
    payload: Vec<u8>,
    work: Work,
}

impl<'a> Draft<'a> {
    /// A correct draft from `sender` in `session` to `recipient`.
    fn new(
        sender: &'a Account,
        session: &'a Session,
        recipient: &'a Address,
        key: BoxPublicKey,
        params: PowParams,
    ) -> Self {
        Self {
            sender: &sender.address,
            signer: &sender.key,
            token: &session.token,
            recipient,
            key,
            message_type: MessageType::Email,
            payload: b"{\"subject\":\"hello\"}".to_vec(),
            work: Work::Solved(params),
        }
    }

    fn seal(&self) -> SentEnvelope {
        let token_hash = login_token_hash(self.token);
        let context = HashContext { sender: self.sender, recipient: self.recipient, login_token_hash: &token_hash };
        let sealed = Ciphertext::seal(
            &self.payload,
            self.message_type.clone(),
            BoxNonce::random(&mut OsRng),
            &self.key,
            self.signer,
        );
        let input = sealed.pow_input(&context);
        let pow = match self.work {
            Work::Missing => None,
            Work::Solved(params) => Some(solve(&input, &params)),
            Work::TooFew(params) => Some(solve_short(&input, &params)),
        };
        sealed.into_envelope(self.signer, &context, pow)
    }
}

fn solve(input: &PowInput<'_>, params: &PowParams) -> PowSolution {
    Preimage::new(input, &params.nonce)
        .solve(params.zero_bits, &Id32::random(&mut OsRng), NonZeroUsize::new(1).unwrap(), &SolveControl::default())
        .unwrap()
}

/// A solution found at 0 bits whose hash really has fewer zero bits than `params` asks.
fn solve_short(input: &PowInput<'_>, params: &PowParams) -> PowSolution {
    assert!(params.zero_bits > 0, "a weak solution needs a difficulty above 0");
    loop {
        let solution = Preimage::new(input, &params.nonce)
            .solve(0, &Id32::random(&mut OsRng), NonZeroUsize::new(1).unwrap(), &SolveControl::default())
            .unwrap();
        if leading_zero_bits(&solution.hash) < params.zero_bits {
            return solution;
        }
    }
}

/// Replaces the proof of work with one solved for the envelope's current ciphertext.
fn resolve_pow(envelope: &mut SentEnvelope, token: &Id32, recipient: &Address, params: &PowParams) {
    let token_hash = login_token_hash(token);
    let field_hash = message_field_hash(&envelope.message);
    let input = PowInput {
        login_token_hash: &token_hash,
        message_field_hash: &field_hash,
        recipient,
        message_type: envelope.message_type.as_str(),
    };
    envelope.proof_of_work = Some(solve(&input, params));
}

/// Recomputes the message hash for the given context and signs it with `signer`.
fn resign(envelope: &mut SentEnvelope, signer: &MasterKey, sender: &Address, recipient: &Address, token: &Id32) {
    let token_hash = login_token_hash(token);
    let context = HashContext { sender, recipient, login_token_hash: &token_hash };
    envelope.message_hash = message_hash(envelope, &message_field_hash(&envelope.message), &context);
    envelope.message_signature = signer.sign(&envelope.message_hash);
}

/// A fresh Ed25519 key that belongs to nobody on the servers.
fn stranger() -> MasterKey {
    MasterKey::generate(&mut OsRng)
}

// ---- bodies, paths, versions, methods -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_bad_requests_and_change_nothing() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let carol_session = login(&client, &org, &carol).await;
    let key_url = url(&org, &Route::GetMessageKey);
    let sid = Some(carol_session.id.as_str());
    let good = json!({ "address": alice.address }).to_string();

    // get_message_key: every malformed body is refused and hands out no key.
    for body in [
        "{not json",
        "",
        "[1, 2, 3]",
        "\"alice#example.org\"",
        "{\"address\": 5}",
        "{}",
        "{\"address\": \"alice#example.org\", \"extra\": true}",
    ] {
        let response = post_text(&client, &key_url, sid, body).await;
        assert_error(&response, 400, "bad_request");
    }
    assert_error(&raw(&client, Method::POST, &key_url, sid, None, good.clone()).await, 400, "bad_request");
    assert_error(
        &raw(&client, Method::POST, &key_url, sid, Some("text/plain"), good.clone()).await,
        400,
        "bad_request",
    );
    assert_error(
        &raw(&client, Method::POST, &key_url, sid, Some("application/x-www-form-urlencoded"), "address=x").await,
        400,
        "bad_request",
    );
    assert_eq!(ephemeral_keys(&client, &org, &alice_session).await.len(), 2, "no key was handed out");

    // create_session: an unknown field or a missing Content-Type is refused before the
    // token is read, so no session exists and the token still works afterwards.
    let before = sessions(&org).await;
    let token = login_token(&client, &org, &carol.address).await;
    let signature = carol.key.sign(&create_session_hash(&server_domain(&org), &carol.address, &token));
    let login_url = url(&org, &Route::CreateSession { address: carol.address.clone() });
    let extra = json!({ "token": token, "server": org.domain, "signature": signature, "remember_me": true });
    assert_error(&client.post(&login_url, None, &extra).await, 400, "bad_request");
    let plain = json!({ "token": token, "server": org.domain, "signature": signature }).to_string();
    assert_error(&raw(&client, Method::POST, &login_url, None, None, plain).await, 400, "bad_request");
    assert_error(
        &post_text(&client, &login_url, None, "{\"token\": \"abc\", \"signature\": \"def\"}").await,
        400,
        "bad_request",
    );
    assert_eq!(sessions(&org).await, before, "no session from a malformed login");
    ok::<Value>(post_login(&client, &org, &carol.address, &token, &signature).await);
    assert_eq!(sessions(&org).await, before + 1);

    // send_message: an envelope with an unknown field, or of the wrong shape, stores
    // nothing; the same key and nonce then still work.
    let key = message_key(&client, &org, &carol_session, &alice.address).await;
    let params = pow_params(&client, &org, &carol_session, &alice.address, MessageType::Email).await;
    let envelope = Draft::new(&carol, &carol_session, &alice.address, key.message_key.public_key, params).seal();
    let send_url = url(&org, &Route::SendMessage { address: alice.address.clone() });
    let mut extra = serde_json::to_value(&envelope).unwrap();
    extra["priority"] = json!("high");
    assert_error(&client.post(&send_url, sid, &extra).await, 400, "bad_request");
    let mut missing = serde_json::to_value(&envelope).unwrap();
    missing.as_object_mut().unwrap().remove("message_hash");
    assert_error(&client.post(&send_url, sid, &missing).await, 400, "bad_request");
    let mut bad_base64 = serde_json::to_value(&envelope).unwrap();
    bad_base64["message"] = json!("not base64 !!!");
    assert_error(&client.post(&send_url, sid, &bad_base64).await, 400, "bad_request");
    let mut bad_pow = serde_json::to_value(&envelope).unwrap();
    bad_pow["proof_of_work"] = json!("00:11");
    assert_error(&client.post(&send_url, sid, &bad_pow).await, 400, "bad_request");
    assert_error(&post_text(&client, &send_url, sid, "\"a message\"").await, 400, "bad_request");
    let text = serde_json::to_string(&envelope).unwrap();
    assert_error(&raw(&client, Method::POST, &send_url, sid, None, text).await, 400, "bad_request");
    assert!(inbox(&client, &org, &alice_session).await.is_empty());
    assert_eq!(quota_used(&client, &org, &alice_session).await, 0);
    let sent: MessageSent = ok(send(&client, &org, &carol_session, &alice.address, &envelope).await);

    // message_read takes the bare literal true or false, nothing else.
    let read_url = url(&org, &Route::SetReadStatus { message_id: sent.message_id });
    let owner = Some(alice_session.id.as_str());
    for body in ["\"yes\"", "1", "{\"read\": true}", "null", "tru"] {
        assert_error(&post_text(&client, &read_url, owner, body).await, 400, "bad_request");
    }
    assert!(!inbox(&client, &org, &alice_session).await[0].read, "the read flag is unchanged");

    // update_profile, initialize_account, folders: malformed documents change nothing.
    let before_history = history(&client, &org, &alice.address).await;
    let profile_url = url(&org, &Route::UpdateProfile);
    for body in ["{\"data\": 1}", "{}", "{\"data\": \"{}\", \"signed_hash\": \"00\"}", "[]"] {
        assert_error(&post_text(&client, &profile_url, owner, body).await, 400, "bad_request");
    }
    assert_eq!(history(&client, &org, &alice.address).await, before_history);
    assert_error(&post_text(&client, &url(&org, &Route::InitializeAccount), None, "{}").await, 400, "bad_request");
    let folder_url = url(&org, &Route::CreateFolder);
    for body in [
        json!({ "display_name": "Work", "folder_name": "Work", "parent": null, "message_type": "email" }),
        json!({ "display_name": "Work", "folder_name": "a b", "parent": null, "message_type": "email" }),
        json!({ "display_name": "Work", "folder_name": "x".repeat(65), "parent": null, "message_type": "email" }),
        json!({ "display_name": "Work", "folder_name": "work", "parent": null, "message_type": "sms" }),
        json!({ "display_name": "Work", "folder_name": "work", "parent": null, "message_type": "email", "color": 1 }),
        json!({ "display_name": "", "folder_name": "work", "parent": null, "message_type": "email" }),
    ] {
        assert_error(&client.post(&folder_url, owner, &body).await, 400, "bad_request");
    }
    assert!(folders(&client, &org, &alice_session).await.is_empty());

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_payload_too_large_and_stores_nothing() {
    let org = start_one(Options { extra: "[limits]\nmax_body_bytes = 4000\n".into(), ..Options::default() }).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let carol_session = login(&client, &org, &carol).await;

    let key = message_key(&client, &org, &carol_session, &alice.address).await;
    let params = pow_params(&client, &org, &carol_session, &alice.address, MessageType::Email).await;
    let mut draft = Draft::new(&carol, &carol_session, &alice.address, key.message_key.public_key, params);
    draft.payload = vec![b'x'; 8000];
    let big = draft.seal();
    assert!(serde_json::to_string(&big).unwrap().len() > 4000);
    let response = send(&client, &org, &carol_session, &alice.address, &big).await;
    assert_error(&response, 413, "payload_too_large");
    let padding = "x".repeat(5000);
    let response =
        post_text(&client, &url(&org, &Route::GetMessageKey), Some(&carol_session.id), &format!("\"{padding}\"")).await;
    assert_error(&response, 413, "payload_too_large");
    assert!(inbox(&client, &org, &alice_session).await.is_empty());
    assert_eq!(quota_used(&client, &org, &alice_session).await, 0);

    // The refused send consumed neither the key nor the nonce.
    draft.payload = b"{}".to_vec();
    ok::<MessageSent>(send(&client, &org, &carol_session, &alice.address, &draft.seal()).await);
    assert_eq!(inbox(&client, &org, &alice_session).await.len(), 1);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_versions_paths_and_methods_and_bad_path_parameters() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let session = login(&client, &org, &alice).await;
    let sid = Some(session.id.as_str());
    let alice_segment = "alice%23example.org";

    for path in ["0.2/server_information", "0.2/get_user/alice%23example.org/history", "1.0/quota", "0.10/version"] {
        assert_error(&client.get(&at(&org, path), sid).await, 404, "unsupported_version");
    }
    let response = client.post(&at(&org, "0.2/send_message/alice%23example.org"), sid, &json!({})).await;
    assert_error(&response, 404, "unsupported_version");

    for path in ["0.1/no_such_api", "nothing", "0.1", "0.1/get_user/alice%23example.org/history/more", "0.1/folder"] {
        assert_error(&client.get(&at(&org, path), sid).await, 404, "not_found");
    }

    for (method, path) in [
        (Method::DELETE, "0.1/quota".to_string()),
        (Method::POST, "0.1/quota".to_string()),
        (Method::GET, format!("0.1/send_message/{alice_segment}")),
        (Method::PUT, "0.1/folders".to_string()),
        (Method::GET, "0.1/initialize_account".to_string()),
        (Method::POST, "version".to_string()),
        (Method::GET, "0.1/destroy_session".to_string()),
        (Method::DELETE, format!("0.1/create_session/{alice_segment}")),
        (Method::POST, format!("0.1/get_user/{alice_segment}/history")),
    ] {
        assert_error(&client.call(method, &at(&org, &path), sid, None).await, 405, "method_not_allowed");
    }

    for path in [
        "0.1/get_user/not-an-address/history",
        "0.1/get_user/%23example.org/public_key",
        "0.1/get_user/alice%23/public_key",
        "0.1/user_avatar/alice",
        "0.1/create_session/alice%40example.org",
        "0.1/get_pow_params/alice/email",
    ] {
        assert_error(&client.get(&at(&org, path), sid).await, 400, "invalid_address");
    }
    assert_error(
        &client
            .post(
                &at(&org, "0.1/create_session/alice"),
                None,
                &json!({"token": Id32([0; 32]), "server": "example.org", "signature": Signature([0; 64])}),
            )
            .await,
        400,
        "invalid_address",
    );
    assert_error(&client.get(&at(&org, "0.1/get_user/alice%23example.org/avatar"), None).await, 404, "not_found");
    assert_error(&client.get(&at(&org, "0.1/get_user/nobody%23example.org/history"), None).await, 404, "not_found");
    assert_error(&client.get(&at(&org, "0.1/get_pow_params/alice%23example.org/sms"), sid).await, 400, "bad_request");

    let id = Id32::random(&mut OsRng).to_hex();
    for (method, path) in [
        (Method::GET, "0.1/message/zz/true".to_string()),
        (Method::GET, format!("0.1/message/{}/true", &id[..63])),
        (Method::GET, format!("0.1/message/{id}/maybe")),
        (Method::GET, format!("0.1/message/{}/false", id.to_uppercase().replace(|c: char| c.is_ascii_digit(), "G"))),
        (Method::DELETE, "0.1/message/123".to_string()),
        (Method::GET, "0.1/message_read/xyz".to_string()),
        (Method::GET, "0.1/folder/sms".to_string()),
        (Method::GET, "0.1/folder/email/Bad_Name".to_string()),
        (Method::GET, "0.1/folders/sms".to_string()),
        (Method::DELETE, "0.1/folders/email/UPPER".to_string()),
        (Method::DELETE, "0.1/whitelist/not-hex".to_string()),
        (Method::DELETE, "0.1/blacklist/abcd".to_string()),
    ] {
        assert_error(&client.call(method, &at(&org, &path), sid, None).await, 400, "bad_request");
    }
    let move_body = json!({ "folder_name": null });
    assert_error(&client.post(&at(&org, "0.1/message_move/nope"), sid, &move_body).await, 400, "bad_request");
    assert_error(&client.post(&at(&org, "0.1/message_read/nope"), sid, &json!(true)).await, 400, "bad_request");
    assert_error(&client.post(&at(&org, "0.1/message_extensions/nope"), sid, &Value::Null).await, 400, "bad_request");
    // A well-formed id that names nothing is not_found, for every message operation.
    let message_id: Id32 = id.parse().unwrap();
    for (method, route, body) in [
        (Method::GET, Route::GetMessage { message_id, update_read: true }, None),
        (Method::DELETE, Route::DeleteMessage { message_id }, None),
        (Method::GET, Route::GetReadStatus { message_id }, None),
        (Method::POST, Route::SetReadStatus { message_id }, Some(json!(true))),
        (Method::POST, Route::MoveMessage { message_id }, Some(move_body.clone())),
        (Method::POST, Route::SetMessageExtensions { message_id }, Some(Value::Null)),
    ] {
        assert_error(&client.call(method, &url(&org, &route), sid, body.as_ref()).await, 404, "not_found");
    }

    org.stop().await;
}

// ---- logging in -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_logins_create_no_session() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let sign = |account: &Account, address: &Address, token: &Id32| {
        account.key.sign(&create_session_hash(&server_domain(&org), address, token))
    };
    assert_eq!(sessions(&org).await, 0);

    // A signature that does not verify; the failed POST consumed the token (§9).
    let token = login_token(&client, &org, &alice.address).await;
    let mut bad = sign(&alice, &alice.address, &token);
    bad.0[5] ^= 0x40;
    assert_error(&post_login(&client, &org, &alice.address, &token, &bad).await, 403, "login_failed");
    assert_error(&post_login(&client, &org, &alice.address, &token, &Signature([0; 64])).await, 403, "login_failed");
    let good = sign(&alice, &alice.address, &token);
    assert_error(&post_login(&client, &org, &alice.address, &token, &good).await, 403, "login_failed");

    // A valid signature by another key (carol's, or nobody's).
    let token = login_token(&client, &org, &alice.address).await;
    assert_error(
        &post_login(&client, &org, &alice.address, &token, &sign(&carol, &alice.address, &token)).await,
        403,
        "login_failed",
    );
    let token = login_token(&client, &org, &alice.address).await;
    let nobody = stranger().sign(&create_session_hash(&server_domain(&org), &alice.address, &token));
    assert_error(&post_login(&client, &org, &alice.address, &token, &nobody).await, 403, "login_failed");
    // Alice's own key, but signed for another address: the signature binds the address.
    let token = login_token(&client, &org, &alice.address).await;
    assert_error(
        &post_login(&client, &org, &alice.address, &token, &sign(&alice, &carol.address, &token)).await,
        403,
        "login_failed",
    );

    // A token never issued.
    let made_up = Id32::random(&mut OsRng);
    assert_error(
        &post_login(&client, &org, &alice.address, &made_up, &sign(&alice, &alice.address, &made_up)).await,
        403,
        "login_failed",
    );

    // A token issued for alice, presented by carol for carol: refused, and spent.
    let token = login_token(&client, &org, &alice.address).await;
    assert_error(
        &post_login(&client, &org, &carol.address, &token, &sign(&carol, &carol.address, &token)).await,
        403,
        "login_failed",
    );
    assert_error(
        &post_login(&client, &org, &alice.address, &token, &sign(&alice, &alice.address, &token)).await,
        403,
        "login_failed",
    );

    // An expired token.
    let token = login_token(&client, &org, &alice.address).await;
    org.state.clock.advance(LOGIN_TOKEN_LIFETIME_SECS + 1);
    assert_error(
        &post_login(&client, &org, &alice.address, &token, &sign(&alice, &alice.address, &token)).await,
        403,
        "login_failed",
    );
    assert_eq!(sessions(&org).await, 0, "no refused login created a session");

    // A token used once cannot be replayed.
    let token = login_token(&client, &org, &alice.address).await;
    let good = sign(&alice, &alice.address, &token);
    ok::<Value>(post_login(&client, &org, &alice.address, &token, &good).await);
    assert_eq!(sessions(&org).await, 1);
    assert_error(&post_login(&client, &org, &alice.address, &token, &good).await, 403, "login_failed");
    assert_eq!(sessions(&org).await, 1);

    // Unknown and uninitialised local users get no token at all.
    let tokens = db_count(&org, "SELECT COUNT(*) FROM login_tokens").await;
    let nobody = addr("nobody#example.org");
    assert_error(
        &client.get(&url(&org, &Route::GetLoginToken { address: nobody.clone() }), None).await,
        404,
        "not_found",
    );
    let (pending, _) = admin::add_account(&org.config, &org.state.store, "pending#example.org", 0).await.unwrap();
    assert_error(
        &client.get(&url(&org, &Route::GetLoginToken { address: pending.clone() }), None).await,
        404,
        "not_found",
    );
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM login_tokens").await, tokens);
    let made_up = Id32::random(&mut OsRng);
    let signature = stranger().sign(&create_session_hash(&server_domain(&org), &nobody, &made_up));
    assert_error(&post_login(&client, &org, &nobody, &made_up, &signature).await, 403, "login_failed");
    assert_eq!(sessions(&org).await, 1);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_user_unknown_at_home_gets_remote_lookup_failed() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    create_account(&client, &org, "alice", 0).await;
    let bob = create_account(&client, &net, "bob", 0).await;

    let ghost = addr("ghost#example.net");
    let key = stranger();
    let token = login_token(&client, &org, &ghost).await;
    let response = post_login(
        &client,
        &org,
        &ghost,
        &token,
        &key.sign(&create_session_hash(&server_domain(&org), &ghost, &token)),
    )
    .await;
    assert_error(&response, 502, "remote_lookup_failed");
    assert_eq!(sessions(&org).await, 0);

    // A remote user the home server knows, but signing with another key.
    let token = login_token(&client, &org, &bob.address).await;
    let response = post_login(
        &client,
        &org,
        &bob.address,
        &token,
        &key.sign(&create_session_hash(&server_domain(&org), &bob.address, &token)),
    )
    .await;
    assert_error(&response, 403, "login_failed");
    assert_eq!(sessions(&org).await, 0);
    assert_eq!(sessions(&net).await, 0);

    org.stop().await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_users_cannot_make_the_server_contact_private_addresses() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let key = stranger();
    // IP-literal domains are valid SMIMP domains; the server's own machine and private
    // networks are never contacted on a remote user's behalf (mapped domains still are:
    // every two-server test resolves its peer to 127.0.0.1 through the configuration).
    for domain in ["127.0.0.1", "10.0.0.1", "169.254.169.254"] {
        let mallory = addr(&format!("mallory#{domain}"));
        let token = login_token(&client, &org, &mallory).await;
        let response = post_login(
            &client,
            &org,
            &mallory,
            &token,
            &key.sign(&create_session_hash(&server_domain(&org), &mallory, &token)),
        )
        .await;
        assert_error(&response, 502, "remote_lookup_failed");
        let message = response.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "{domain} is a private, local or reserved address, which this server does not contact"
            )),
            "{message}"
        );
    }
    assert_eq!(sessions(&org).await, 0);
    org.stop().await;
}

/// A TLS connection to the server at `addr` for `domain`, trusting `ca_file`, once the
/// handshake is done.
async fn tls_connection(
    addr: std::net::SocketAddr,
    domain: String,
    ca_file: std::path::PathBuf,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let config = smimp_gateway::tls::client_config(&[ca_file]).unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(domain).unwrap();
    connector.connect(name, tcp).await
}

// One thread, so that the clock can be paused around the "not served yet" check.
#[tokio::test]
async fn connections_past_the_limit_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let org = start_one(Options { extra: "[limits]\nmax_connections = 2\n".into(), ..Options::default() }).await;
    let connect = || tls_connection(org.addr, org.domain.clone(), org.ca_file.clone());
    let first = connect().await.unwrap();
    let _second = connect().await.unwrap();
    // The third is accepted by the kernel but not served: no handshake while two are open.
    let third = tokio::spawn(connect());
    // With the clock paused the sleep ends only once every task is idle and the loopback
    // sockets have nothing left to read: a handshake the server wrongly answered would be
    // done by then, however slow the machine. The clock runs again before the server is
    // asked for real work (its database thread is invisible to the paused clock).
    tokio::time::pause();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third connection was served past max_connections = 2");
    tokio::time::resume();
    drop(first);
    let mut third = tokio::time::timeout(std::time::Duration::from_secs(10), third)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .unwrap();
    let request = format!("GET /.well-known/smimp.txt HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", org.domain);
    third.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = third.read_to_end(&mut answer).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_time_limit_gets_a_json_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let org = start_one(Options { extra: "[limits]\nrequest_timeout = \"1s\"\n".into(), ..Options::default() }).await;
    let mut connection = tls_connection(org.addr, org.domain.clone(), org.ca_file.clone()).await.unwrap();
    // A body announced but never sent in full: the handler waits for it past the limit.
    let path = Route::CreateSession { address: addr("alice#example.org") }.path();
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"token\":",
        org.domain
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), connection.read(&mut answer))
        .await
        .expect("the server answers once its limit passes")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..read]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/json"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(text.contains("longer than the server's limit of 1 s"), "{text}");
    org.stop().await;
}

// ---- sessions -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_live_session_are_refused() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let quota_url = url(&org, &Route::GetQuota);
    let key_url = url(&org, &Route::GetMessageKey);
    let key_body = json!({ "address": alice.address });

    assert_error(&client.get(&quota_url, None).await, 401, "not_authenticated");
    assert_error(&client.post(&key_url, None, &key_body).await, 401, "not_authenticated");
    assert_error(&client.post(&url(&org, &Route::DestroySession), None, &json!({})).await, 401, "not_authenticated");
    let short = &Id32::random(&mut OsRng).to_hex()[..63];
    for garbage in ["garbage", "", short, "Bearer 00", &"zz".repeat(32)] {
        assert_error(&client.get(&quota_url, Some(garbage)).await, 401, "not_authenticated");
    }
    // A well-formed id this server never issued names no session (§9).
    let never = Id32::random(&mut OsRng).to_hex();
    assert_error(&client.get(&quota_url, Some(&never)).await, 401, "not_authenticated");
    assert_error(&client.post(&key_url, Some(&never), &key_body).await, 401, "not_authenticated");
    // The login token is not a session id.
    let carol_session = login(&client, &org, &carol).await;
    assert_error(
        &client.post(&key_url, Some(&carol_session.token.to_hex()), &key_body).await,
        401,
        "not_authenticated",
    );

    // A destroyed session.
    let alice_session = login(&client, &org, &alice).await;
    ok::<Value>(client.post(&url(&org, &Route::DestroySession), Some(&alice_session.id), &json!({})).await);
    assert_error(&client.get(&quota_url, Some(&alice_session.id)).await, 401, "session_expired");
    assert_error(
        &client.post(&url(&org, &Route::DestroySession), Some(&alice_session.id), &json!({})).await,
        401,
        "session_expired",
    );

    // An expired session: refused, and it hands out no key.
    let alice_session = login(&client, &org, &alice).await;
    org.state.clock.advance(org.config.limits.session_lifetime.as_secs() as i64 + 1);
    assert_error(&client.get(&quota_url, Some(&alice_session.id)).await, 401, "session_expired");
    assert_error(&client.post(&key_url, Some(&carol_session.id), &key_body).await, 401, "session_expired");
    let fresh = login(&client, &org, &alice).await;
    assert_eq!(ephemeral_keys(&client, &org, &fresh).await.len(), 2, "no key went to a dead session");

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_users_session_may_only_send() {
    let (org, net) = start_pair(Options::default()).await;
    let client = Client::new(&[&org, &net]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let bob = create_account(&client, &net, "bob", 0).await;
    let bob_at_org = login(&client, &org, &bob).await;
    let sid = Some(bob_at_org.id.as_str());

    let message_id = Id32::random(&mut OsRng);
    let folder = json!({ "display_name": "Work", "folder_name": "work", "parent": null, "message_type": "email" });
    let (_, ne_key) = SignedMessageKey::generate(&bob.key, &bob.address, KeyKind::Nonephemeral, &mut OsRng);
    let sealed = json!({ "nonce": BoxNonce([1; 24]), "ciphertext": "AAAA" });
    let entry = json!({ "hash": Hash([3; 32]), "entry": sealed });
    let routes: Vec<(Route, Option<Value>)> = vec![
        (Route::ListFolders { message_type: None }, None),
        (Route::ListFolders { message_type: Some(MessageType::Email) }, None),
        (Route::CreateFolder, Some(folder.clone())),
        (Route::UpdateFolder { folder_name: FolderName::parse("work").unwrap() }, Some(folder)),
        (
            Route::DeleteFolder { message_type: MessageType::Email, folder_name: FolderName::parse("work").unwrap() },
            None,
        ),
        (Route::ListMessages { message_type: MessageType::Email, folder_name: None }, None),
        (Route::GetMessage { message_id, update_read: false }, None),
        (Route::DeleteMessage { message_id }, None),
        (Route::MoveMessage { message_id }, Some(json!({ "folder_name": null }))),
        (Route::GetReadStatus { message_id }, None),
        (Route::SetReadStatus { message_id }, Some(json!(true))),
        (Route::SetMessageExtensions { message_id }, Some(Value::Null)),
        (Route::GetNonephemeralKey, None),
        (Route::SetNonephemeralKey, Some(serde_json::to_value(&ne_key).unwrap())),
        (Route::ListEphemeralKeys, None),
        (Route::SetEphemeralKeys, Some(json!({ "keys": [] }))),
        (
            Route::UpdateProfile,
            Some(serde_json::to_value(history(&client, &net, &bob.address).await[0].clone()).unwrap()),
        ),
        (
            Route::SetAvatar,
            Some(json!({ "content_type": "image/png", "image": "iVBORw0KGgo=", "signature": Signature([0; 64]) })),
        ),
        (Route::ListEntries { list: ListKind::Whitelist }, None),
        (Route::ListEntries { list: ListKind::Blacklist }, None),
        (Route::AddListEntry { list: ListKind::Whitelist }, Some(entry.clone())),
        (Route::AddListEntry { list: ListKind::Blacklist }, Some(entry)),
        (Route::RemoveListEntry { list: ListKind::Whitelist, hash: Hash([3; 32]) }, None),
        (Route::GetQuota, None),
    ];
    for (route, body) in routes {
        assert!(!route.remote_allowed());
        let method = match route.method() {
            smimp_gateway::smimp::wire::Method::Get => Method::GET,
            smimp_gateway::smimp::wire::Method::Post => Method::POST,
            smimp_gateway::smimp::wire::Method::Delete => Method::DELETE,
        };
        let response = client.call(method, &url(&org, &route), sid, body.as_ref()).await;
        assert_error(&response, 403, "forbidden");
    }
    for table in ["folders", "list_entries", "avatars", "messages"] {
        assert_eq!(db_count(&org, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM profile_records").await, 1, "only alice's record");
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM message_keys").await, 2, "only alice's keys");

    // What a remote session may do still works.
    let key = message_key(&client, &org, &bob_at_org, &alice.address).await;
    assert!(!key.nonephemeral);

    org.stop().await;
    net.stop().await;
}

// ---- sending -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_are_not_stored_and_consume_nothing() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 3).await;
    let erin = create_account(&client, &org, "erin", 0).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let dave = create_account(&client, &org, "dave", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let cs = login(&client, &org, &carol).await;
    let ds = login(&client, &org, &dave).await;
    let to = &alice.address;

    let key = message_key(&client, &org, &cs, to).await.message_key.public_key;
    let params = pow_params(&client, &org, &cs, to, MessageType::Email).await;
    assert_eq!(params.zero_bits, 6);
    let draft = || Draft::new(&carol, &cs, to, key, params);
    let refuse = |envelope: SentEnvelope, status: u16, code: &'static str| {
        let (client, org, cs) = (&client, &org, &cs);
        async move {
            let response = send(client, org, cs, to, &envelope).await;
            assert_error(&response, status, code);
        }
    };

    // Signed by the wrong key (a valid signature, by a key that is not carol's).
    let impostor = stranger();
    refuse(Draft { signer: &impostor, ..draft() }.seal(), 400, "invalid_signature").await;
    // A corrupted signature.
    let mut envelope = draft().seal();
    envelope.message_signature.0[0] ^= 1;
    refuse(envelope, 400, "invalid_signature").await;
    // Tampered ciphertext with a proof of work re-solved for it: only the hash is wrong.
    let mut envelope = draft().seal();
    envelope.message[0] ^= 1;
    resolve_pow(&mut envelope, &cs.token, to, &params);
    refuse(envelope, 400, "invalid_signature").await;
    // A correct signature over the hash of another session's login token, or of
    // another sender's address: the hash binds sender and session.
    let mut envelope = draft().seal();
    resign(&mut envelope, &carol.key, &carol.address, to, &ds.token);
    refuse(envelope, 400, "invalid_signature").await;
    let mut envelope = draft().seal();
    resign(&mut envelope, &carol.key, &dave.address, to, &cs.token);
    refuse(envelope, 400, "invalid_signature").await;

    // Proof of work: missing, too weak, not matching its inputs.
    refuse(Draft { work: Work::Missing, ..draft() }.seal(), 403, "pow_required").await;
    refuse(Draft { work: Work::TooFew(params), ..draft() }.seal(), 403, "pow_invalid").await;
    let mut envelope = draft().seal();
    let mut forged = envelope.proof_of_work.unwrap();
    forged.hash = Hash([0; 32]);
    envelope.proof_of_work = Some(forged);
    resign(&mut envelope, &carol.key, &carol.address, to, &cs.token);
    let resigned = envelope;
    refuse(resigned, 403, "pow_invalid").await;

    // Nonces: another session's, another recipient's, another type's, never issued.
    let foreign = pow_params(&client, &org, &ds, to, MessageType::Email).await;
    refuse(Draft { work: Work::Solved(foreign), ..draft() }.seal(), 403, "nonce_unknown").await;
    let for_erin = pow_params(&client, &org, &cs, &erin.address, MessageType::Email).await;
    refuse(Draft { work: Work::Solved(for_erin), ..draft() }.seal(), 403, "nonce_unknown").await;
    let for_short = pow_params(&client, &org, &cs, to, MessageType::ShortMessage).await;
    refuse(Draft { work: Work::Solved(for_short), ..draft() }.seal(), 403, "nonce_unknown").await;
    refuse(Draft { message_type: MessageType::ShortMessage, ..draft() }.seal(), 403, "nonce_unknown").await;
    let made_up = PowParams { zero_bits: 6, nonce: Id32::random(&mut OsRng) };
    refuse(Draft { work: Work::Solved(made_up), ..draft() }.seal(), 403, "nonce_unknown").await;

    // Message keys: issued to another session, issued for another recipient, never issued.
    let daves_key = message_key(&client, &org, &ds, to).await.message_key.public_key;
    refuse(Draft { key: daves_key, ..draft() }.seal(), 403, "key_not_issued").await;
    let erins_key = message_key(&client, &org, &cs, &erin.address).await.message_key.public_key;
    refuse(Draft { key: erins_key, ..draft() }.seal(), 403, "key_not_issued").await;
    let alices_fallback = nonephemeral_key(&client, &org, &alice_session).await.public_key;
    refuse(Draft { key: alices_fallback, ..draft() }.seal(), 403, "key_not_issued").await;
    refuse(Draft { key: BoxPublicKey([9; 32]), ..draft() }.seal(), 403, "key_not_issued").await;

    // The recipient's master key, raw and converted to Curve25519.
    let master = alice.key.public();
    refuse(Draft { key: BoxPublicKey(master.0), ..draft() }.seal(), 400, "master_key_refused").await;
    refuse(Draft { key: master.to_curve25519().unwrap(), ..draft() }.seal(), 400, "master_key_refused").await;

    // Recipients that are not initialised accounts of this server.
    for nobody in ["nobody#example.org", "bob#example.net"] {
        let nobody = addr(nobody);
        let response = send(&client, &org, &cs, &nobody, &draft().seal()).await;
        assert_error(&response, 404, "not_found");
        let response =
            client.post(&url(&org, &Route::GetMessageKey), Some(&cs.id), &json!({ "address": nobody })).await;
        assert_error(&response, 404, "not_found");
        let route = Route::GetPowParams { address: nobody.clone(), message_type: MessageType::Email };
        assert_error(&client.get(&url(&org, &route), Some(&cs.id)).await, 404, "not_found");
    }

    // Nothing was stored, and the key and nonce carol holds were not consumed.
    assert!(inbox(&client, &org, &alice_session).await.is_empty());
    assert_eq!(quota_used(&client, &org, &alice_session).await, 0);
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM messages").await, 0);
    let first: MessageSent = ok(send(&client, &org, &cs, to, &draft().seal()).await);
    assert_eq!(inbox(&client, &org, &alice_session).await.len(), 1);

    // The nonce is single use, even with a new key.
    let second_key = message_key(&client, &org, &cs, to).await.message_key.public_key;
    refuse(Draft { key: second_key, ..draft() }.seal(), 403, "nonce_unknown").await;
    // The ephemeral key is single use, even with a new nonce (§8.9 step 6).
    let fresh = pow_params(&client, &org, &cs, to, MessageType::Email).await;
    refuse(Draft { work: Work::Solved(fresh), ..draft() }.seal(), 403, "key_not_issued").await;
    let messages = inbox(&client, &org, &alice_session).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].message_id, first.message_id);
    // Both refusals left the new key and the fresh nonce usable.
    ok::<MessageSent>(
        send(&client, &org, &cs, to, &Draft { key: second_key, work: Work::Solved(fresh), ..draft() }.seal()).await,
    );
    assert_eq!(inbox(&client, &org, &alice_session).await.len(), 2);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_message_checks_run_in_the_documented_order() {
    // docs/protocol.md §8.9: algorithm, master key, issued key, proof of work, then
    // the signature; the first failure is the answer.
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let cs = login(&client, &org, &carol).await;
    let to = &alice.address;
    let key = message_key(&client, &org, &cs, to).await.message_key.public_key;
    let params = pow_params(&client, &org, &cs, to, MessageType::Email).await;
    let impostor = stranger();
    let draft = || Draft::new(&carol, &cs, to, key, params);
    let master = BoxPublicKey(alice.key.public().0);

    let mut unknown_algorithm = Draft { key: master, work: Work::Missing, signer: &impostor, ..draft() }.seal();
    unknown_algorithm.algorithm = "none".into();
    let cases = [
        (unknown_algorithm, 400, "bad_request"),
        (Draft { key: master, work: Work::Missing, signer: &impostor, ..draft() }.seal(), 400, "master_key_refused"),
        (
            Draft { key: BoxPublicKey([7; 32]), work: Work::Missing, signer: &impostor, ..draft() }.seal(),
            403,
            "key_not_issued",
        ),
        (Draft { work: Work::Missing, signer: &impostor, ..draft() }.seal(), 403, "pow_required"),
        (Draft { work: Work::TooFew(params), signer: &impostor, ..draft() }.seal(), 403, "pow_invalid"),
        (
            Draft {
                work: Work::Solved(PowParams { nonce: Id32::random(&mut OsRng), ..params }),
                signer: &impostor,
                ..draft()
            }
            .seal(),
            403,
            "nonce_unknown",
        ),
        (
            {
                // Tampered ciphertext without a new proof of work: the PoW no longer matches.
                let mut envelope = draft().seal();
                envelope.message[0] ^= 1;
                envelope
            },
            403,
            "pow_invalid",
        ),
    ];
    for (envelope, status, code) in cases {
        assert_error(&send(&client, &org, &cs, to, &envelope).await, status, code);
    }
    assert!(inbox(&client, &org, &alice_session).await.is_empty());
    ok::<MessageSent>(send(&client, &org, &cs, to, &draft().seal()).await);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_is_quota_exceeded_and_stores_nothing() {
    let org = start_one(Options { extra: "[limits]\nquota_bytes = 3000\n".into(), ..Options::default() }).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let cs = login(&client, &org, &carol).await;
    let to = &alice.address;

    let (envelope, _, _) = prepare_message(&client, &org, &cs, &carol, to, b"{}").await;
    ok::<MessageSent>(send(&client, &org, &cs, to, &envelope).await);
    let used = quota_used(&client, &org, &alice_session).await;
    assert!(used > 0 && used < 1500, "one small envelope is {used} bytes");

    let key = message_key(&client, &org, &cs, to).await.message_key.public_key;
    let params = pow_params(&client, &org, &cs, to, MessageType::Email).await;
    let mut draft = Draft::new(&carol, &cs, to, key, params);
    draft.payload = vec![b'x'; 2000];
    assert_error(&send(&client, &org, &cs, to, &draft.seal()).await, 507, "quota_exceeded");
    assert_eq!(inbox(&client, &org, &alice_session).await.len(), 1);
    assert_eq!(quota_used(&client, &org, &alice_session).await, used);

    // The refusal consumed neither the key nor the nonce: a message that fits goes through.
    draft.payload = b"{}".to_vec();
    ok::<MessageSent>(send(&client, &org, &cs, to, &draft.seal()).await);
    assert_eq!(inbox(&client, &org, &alice_session).await.len(), 2);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_messages_racing_for_the_last_free_bytes_are_not_both_stored() {
    let org = start_one(Options { extra: "[limits]\nquota_bytes = 3000\n".into(), ..Options::default() }).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let cs = login(&client, &org, &carol).await;
    let to = &alice.address;
    let mut sealed = Vec::new();
    for _ in 0..2 {
        let key = message_key(&client, &org, &cs, to).await.message_key.public_key;
        let params = pow_params(&client, &org, &cs, to, MessageType::Email).await;
        let mut draft = Draft::new(&carol, &cs, to, key, params);
        draft.payload = vec![b'x'; 800];
        sealed.push(draft.seal());
    }
    // Each fits alone; both do not.
    let (first, second) =
        tokio::join!(send(&client, &org, &cs, to, &sealed[0]), send(&client, &org, &cs, to, &sealed[1]));
    let statuses = [first.0, second.0];
    assert!(statuses.contains(&200) && statuses.contains(&507), "one stored, one refused: {first:?} {second:?}");
    let refused = if first.0 == 507 { &first } else { &second };
    assert_error(refused, 507, "quota_exceeded");
    assert_eq!(inbox(&client, &org, &alice_session).await.len(), 1);
    let used = quota_used(&client, &org, &alice_session).await;
    assert!(used > 1500 && used <= 3000, "{used} bytes stored of a 3000-byte quota");
    org.stop().await;
}

// ---- account administration -----------------------------------------------------------------

/// A correct initialisation request for `address`, to be spoilt one field at a time.
fn init_request(address: &Address, password: &str, key: &MasterKey) -> InitializeAccountRequest {
    let (_, nonephemeral_key) = SignedMessageKey::generate(key, address, KeyKind::Nonephemeral, &mut OsRng);
    let (_, ephemeral) = SignedMessageKey::generate(key, address, KeyKind::Ephemeral, &mut OsRng);
    InitializeAccountRequest {
        address: address.clone(),
        password_hash: init_password_hash(password),
        record: ProfileRecord::initial(key, address, ProfileFields::default(), now()),
        nonephemeral_key,
        ephemeral_keys: Some(vec![ephemeral]),
    }
}

/// A record over `data`, signed by `signer`.
fn record(signer: &MasterKey, data: &ProfileData) -> ProfileRecord {
    let data = serde_json::to_string(data).unwrap();
    ProfileRecord { signed_hash: signer.sign(&record_hash(&data)), data }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_initialisations_leave_the_account_as_it_was() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let (frank, password) = admin::add_account(&org.config, &org.state.store, "frank#example.org", 0).await.unwrap();
    let init_url = url(&org, &Route::InitializeAccount);
    let key = MasterKey::generate(&mut OsRng);
    let other = stranger();
    let carol = addr("carol#example.org");
    let good = init_request(&frank, &password, &key);
    let data = good.record.parse_data(0).unwrap();
    let sign_key =
        |kind: KeyKind, public: BoxPublicKey, by: &MasterKey| SignedMessageKey::sign(by, &frank, kind, public);

    let mut cases: Vec<(InitializeAccountRequest, u16, &str)> = Vec::new();
    cases.push((
        InitializeAccountRequest { password_hash: init_password_hash("wrong"), ..good.clone() },
        403,
        "login_failed",
    ));
    // The record names one key and is signed by another.
    let forged = ProfileRecord { signed_hash: other.sign(&record_hash(&good.record.data)), ..good.record.clone() };
    cases.push((InitializeAccountRequest { record: forged, ..good.clone() }, 400, "invalid_signature"));
    let mut bad_signature = good.record.clone();
    bad_signature.signed_hash.0[0] ^= 1;
    cases.push((InitializeAccountRequest { record: bad_signature, ..good.clone() }, 400, "invalid_signature"));
    // The record names a previous record, or is for another address.
    let with_previous = record(&key, &ProfileData { previous_signed_hash: Some(Signature([1; 64])), ..data.clone() });
    cases.push((InitializeAccountRequest { record: with_previous, ..good.clone() }, 409, "chain_broken"));
    let elsewhere = record(&key, &ProfileData { address: carol.clone(), ..data.clone() });
    cases.push((InitializeAccountRequest { record: elsewhere, ..good.clone() }, 409, "chain_broken"));
    // The record's data is not a profile document.
    let garbage =
        ProfileRecord { data: "{\"name\":\"x\"}".into(), signed_hash: key.sign(&record_hash("{\"name\":\"x\"}")) };
    cases.push((InitializeAccountRequest { record: garbage, ..good.clone() }, 400, "bad_request"));
    // The non-ephemeral key: of the wrong kind, signed by another key, for another
    // address, the master key raw or converted.
    let ephemeral_kind = good.ephemeral_keys.as_ref().unwrap()[0].clone();
    cases.push((InitializeAccountRequest { nonephemeral_key: ephemeral_kind, ..good.clone() }, 400, "bad_request"));
    let by_other = sign_key(KeyKind::Nonephemeral, good.nonephemeral_key.public_key, &other);
    cases.push((InitializeAccountRequest { nonephemeral_key: by_other, ..good.clone() }, 400, "invalid_signature"));
    let for_carol = SignedMessageKey::sign(&key, &carol, KeyKind::Nonephemeral, good.nonephemeral_key.public_key);
    cases.push((InitializeAccountRequest { nonephemeral_key: for_carol, ..good.clone() }, 400, "invalid_signature"));
    let raw_master = sign_key(KeyKind::Nonephemeral, BoxPublicKey(key.public().0), &key);
    cases.push((InitializeAccountRequest { nonephemeral_key: raw_master, ..good.clone() }, 400, "master_key_refused"));
    let converted = sign_key(KeyKind::Nonephemeral, key.public().to_curve25519().unwrap(), &key);
    cases.push((InitializeAccountRequest { nonephemeral_key: converted, ..good.clone() }, 400, "master_key_refused"));
    // An ephemeral key: signed by another key, of the wrong kind, the master key.
    let mut ephemeral = good.ephemeral_keys.clone().unwrap();
    ephemeral.push(sign_key(KeyKind::Ephemeral, BoxPublicKey([4; 32]), &other));
    cases.push((
        InitializeAccountRequest { ephemeral_keys: Some(ephemeral), ..good.clone() },
        400,
        "invalid_signature",
    ));
    let wrong_kind = sign_key(KeyKind::Nonephemeral, BoxPublicKey([5; 32]), &key);
    cases.push((
        InitializeAccountRequest { ephemeral_keys: Some(vec![wrong_kind]), ..good.clone() },
        400,
        "bad_request",
    ));
    let master_ephemeral = sign_key(KeyKind::Ephemeral, key.public().to_curve25519().unwrap(), &key);
    cases.push((
        InitializeAccountRequest { ephemeral_keys: Some(vec![master_ephemeral]), ..good.clone() },
        400,
        "master_key_refused",
    ));
    // Addresses with no account to initialise here.
    for nobody in ["nobody#example.org", "frank#example.net"] {
        let nobody = addr(nobody);
        cases.push((InitializeAccountRequest { address: nobody, ..good.clone() }, 404, "not_found"));
    }

    let uninitialised = |org: &TestServer| {
        let store = org.state.store.clone();
        let frank = frank.clone();
        async move {
            let account = store.account(&frank).await.unwrap().unwrap();
            assert!(!account.initialized);
            assert!(account.password_check.is_some(), "the password is kept until a successful initialisation");
        }
    };
    let user_url =
        url(&org, &Route::GetUser { address: frank.clone(), kind: smimp_gateway::smimp::wire::UserInfoKind::History });
    for (request, status, code) in cases {
        let response = client.post(&init_url, None, &request).await;
        assert_error(&response, status, code);
        uninitialised(&org).await;
        assert_error(&client.get(&user_url, None).await, 404, "not_found");
        assert_eq!(db_count(&org, "SELECT COUNT(*) FROM message_keys").await, 0);
        assert_eq!(db_count(&org, "SELECT COUNT(*) FROM profile_records").await, 0);
    }
    // An address that is not an address at all is refused with 400 and changes nothing.
    // (§8.21 and §10 name `invalid_address` for it; the server answers `bad_request`
    // because the body fails to parse, so only the status is pinned here.)
    let mut request = serde_json::to_value(&good).unwrap();
    request["address"] = json!("frank");
    let response = client.post(&init_url, None, &request).await;
    assert_eq!(response.0, 400, "{}", response.1);
    assert!(response.1["error"]["message"].as_str().is_some_and(|m| m.len() > 5), "{}", response.1);
    uninitialised(&org).await;

    // The password still works; then a second initialisation is refused and changes nothing.
    ok::<Value>(client.post(&init_url, None, &good).await);
    let first_history = history(&client, &org, &frank).await;
    assert_eq!(first_history, vec![good.record.clone()]);
    let again = init_request(&frank, &password, &stranger());
    assert_error(&client.post(&init_url, None, &again).await, 409, "already_initialized");
    assert_error(&client.post(&init_url, None, &good).await, 409, "already_initialized");
    assert_eq!(history(&client, &org, &frank).await, first_history);
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM message_keys").await, 2);
    let account = Account {
        address: frank.clone(),
        key,
        nonephemeral: smimp_gateway::smimp::crypto::BoxSecretKey::generate(&mut OsRng),
        ephemeral: vec![],
    };
    let session = login(&client, &org, &account).await;
    assert_eq!(nonephemeral_key(&client, &org, &session).await, good.nonephemeral_key);
    assert_eq!(ephemeral_keys(&client, &org, &session).await, good.ephemeral_keys.clone().unwrap());

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_profile_updates_leave_the_history_as_it_was() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 0).await;
    let session = login(&client, &org, &alice).await;
    let sid = Some(session.id.as_str());
    let update_url = url(&org, &Route::UpdateProfile);

    let before = history(&client, &org, &alice.address).await;
    let verified = verify_history(&alice.address, &before).unwrap();
    let latest: &VerifiedRecord = verified.latest();
    let next = ProfileData {
        previous_signed_hash: Some(latest.record.signed_hash),
        name: Some("Alice A.".into()),
        changed_at: Timestamp::from_unix(latest.data.changed_at.unix() + 10).unwrap(),
        ..latest.data.clone()
    };
    let other = stranger();
    let cases: Vec<(ProfileRecord, u16, &str)> = vec![
        // Signed by a key other than the newest record's, even if the record names it.
        (record(&other, &next), 400, "invalid_signature"),
        (record(&other, &ProfileData { public_key: other.public(), ..next.clone() }), 400, "invalid_signature"),
        // Not chaining to the newest record.
        (
            record(&alice.key, &ProfileData { previous_signed_hash: Some(Signature([7; 64])), ..next.clone() }),
            409,
            "chain_broken",
        ),
        (record(&alice.key, &ProfileData { previous_signed_hash: None, ..next.clone() }), 409, "chain_broken"),
        // Going back in time.
        (
            record(
                &alice.key,
                &ProfileData {
                    changed_at: Timestamp::from_unix(latest.data.changed_at.unix() - 60).unwrap(),
                    ..next.clone()
                },
            ),
            409,
            "chain_broken",
        ),
        // For another address.
        (record(&alice.key, &ProfileData { address: addr("carol#example.org"), ..next.clone() }), 403, "forbidden"),
        // Not a profile document.
        (ProfileRecord { data: "[]".into(), signed_hash: alice.key.sign(&record_hash("[]")) }, 400, "bad_request"),
        // The newest record again.
        (latest.record.clone(), 409, "chain_broken"),
    ];
    for (candidate, status, code) in cases {
        assert_error(&client.post(&update_url, sid, &candidate).await, status, code);
        assert_eq!(history(&client, &org, &alice.address).await, before, "history unchanged after {code}");
    }

    let good = record(&alice.key, &next);
    let length: smimp_gateway::smimp::wire::ProfileLength = ok(client.post(&update_url, sid, &good).await);
    assert_eq!(length.length, 2);
    // The same record again no longer chains to the newest one.
    assert_error(&client.post(&update_url, sid, &good).await, 409, "chain_broken");
    assert_eq!(history(&client, &org, &alice.address).await.len(), 2);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_message_key_uploads_change_no_key() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 2).await;
    let session = login(&client, &org, &alice).await;
    let sid = Some(session.id.as_str());
    let ne_url = url(&org, &Route::SetNonephemeralKey);
    let eph_url = url(&org, &Route::SetEphemeralKeys);
    let ne_before = nonephemeral_key(&client, &org, &session).await;
    let eph_before = ephemeral_keys(&client, &org, &session).await;
    let other = stranger();
    let me = &alice.address;
    let master_raw = BoxPublicKey(alice.key.public().0);
    let master_curve = alice.key.public().to_curve25519().unwrap();
    let fresh = |kind| SignedMessageKey::generate(&alice.key, me, kind, &mut OsRng).1;

    let mut tampered = fresh(KeyKind::Nonephemeral);
    tampered.signature.0[3] ^= 1;
    let ne_cases = vec![
        (SignedMessageKey::generate(&other, me, KeyKind::Nonephemeral, &mut OsRng).1, 400, "invalid_signature"),
        (tampered, 400, "invalid_signature"),
        (
            SignedMessageKey::generate(&alice.key, &addr("carol#example.org"), KeyKind::Nonephemeral, &mut OsRng).1,
            400,
            "invalid_signature",
        ),
        (SignedMessageKey::sign(&alice.key, me, KeyKind::Nonephemeral, master_raw), 400, "master_key_refused"),
        (SignedMessageKey::sign(&alice.key, me, KeyKind::Nonephemeral, master_curve), 400, "master_key_refused"),
        (fresh(KeyKind::Ephemeral), 400, "bad_request"),
    ];
    for (key, status, code) in ne_cases {
        assert_error(&client.post(&ne_url, sid, &key).await, status, code);
        assert_eq!(nonephemeral_key(&client, &org, &session).await, ne_before, "after {code}");
    }

    let good = fresh(KeyKind::Ephemeral);
    let eph_cases = vec![
        (
            vec![good.clone(), SignedMessageKey::generate(&other, me, KeyKind::Ephemeral, &mut OsRng).1],
            400,
            "invalid_signature",
        ),
        (
            vec![good.clone(), SignedMessageKey::sign(&alice.key, me, KeyKind::Ephemeral, master_raw)],
            400,
            "master_key_refused",
        ),
        (
            vec![good.clone(), SignedMessageKey::sign(&alice.key, me, KeyKind::Ephemeral, master_curve)],
            400,
            "master_key_refused",
        ),
        (vec![good.clone(), fresh(KeyKind::Nonephemeral)], 400, "bad_request"),
        (vec![good.clone(), good.clone()], 400, "bad_request"),
    ];
    for (keys, status, code) in eph_cases {
        assert_error(&client.post(&eph_url, sid, &EphemeralKeys { keys }).await, status, code);
        assert_eq!(ephemeral_keys(&client, &org, &session).await, eph_before, "after {code}");
    }
    assert_eq!(nonephemeral_key(&client, &org, &session).await, ne_before);

    org.stop().await;
}

// ---- rate limits ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_logins_from_one_address_are_rate_limited() {
    let org =
        start_one(Options { extra: "[limits]\ncreate_session_per_minute = 3\n".into(), ..Options::default() }).await;
    let client = Client::new(&[&org]);
    // initialize_account counts against the same limit (docs/protocol.md §9.1).
    let alice = create_account(&client, &org, "alice", 0).await;

    let token = login_token(&client, &org, &alice.address).await;
    login_token(&client, &org, &alice.address).await;
    let signature = alice.key.sign(&create_session_hash(&server_domain(&org), &alice.address, &token));
    let response = post_login(&client, &org, &alice.address, &token, &signature).await;
    assert_error(&response, 429, "rate_limited");
    assert_eq!(sessions(&org).await, 0);
    let response = client.get(&url(&org, &Route::GetLoginToken { address: alice.address.clone() }), None).await;
    assert_error(&response, 429, "rate_limited");
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM login_tokens").await, 2);

    org.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_holding_too_many_unspent_keys_is_rate_limited() {
    let org =
        start_one(Options { extra: "[limits]\nmax_unspent_keys_per_sender = 2\n".into(), ..Options::default() }).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 3).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let dave = create_account(&client, &org, "dave", 0).await;
    let alice_session = login(&client, &org, &alice).await;
    let cs = login(&client, &org, &carol).await;

    message_key(&client, &org, &cs, &alice.address).await;
    message_key(&client, &org, &cs, &alice.address).await;
    let response =
        client.post(&url(&org, &Route::GetMessageKey), Some(&cs.id), &json!({ "address": alice.address })).await;
    assert_error(&response, 429, "rate_limited");
    assert_eq!(ephemeral_keys(&client, &org, &alice_session).await.len(), 1, "the refused call took no key");
    assert_eq!(db_count(&org, "SELECT COUNT(*) FROM issued_keys").await, 2);

    // The limit is per sending identity: another sender still gets the last key.
    let ds = login(&client, &org, &dave).await;
    assert!(!message_key(&client, &org, &ds, &alice.address).await.nonephemeral);
    assert!(ephemeral_keys(&client, &org, &alice_session).await.is_empty());

    org.stop().await;
}

// ---- folders --------------------------------------------------------------------------------

/// A folder document.
fn folder(name: &str, display: &str, parent: Option<&str>, kind: &str) -> Value {
    json!({ "display_name": display, "folder_name": name, "parent": parent, "message_type": kind })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_folder_and_move_operations_change_nothing() {
    let org = start_one(Options::default()).await;
    let client = Client::new(&[&org]);
    let alice = create_account(&client, &org, "alice", 1).await;
    let carol = create_account(&client, &org, "carol", 0).await;
    let session = login(&client, &org, &alice).await;
    let cs = login(&client, &org, &carol).await;
    let sid = Some(session.id.as_str());
    let (envelope, _, _) = prepare_message(&client, &org, &cs, &carol, &alice.address, b"{}").await;
    let sent: MessageSent = ok(send(&client, &org, &cs, &alice.address, &envelope).await);

    let create_url = url(&org, &Route::CreateFolder);
    ok::<Folder>(client.post(&create_url, sid, &folder("work", "Work", None, "email")).await);
    ok::<Folder>(client.post(&create_url, sid, &folder("archive", "Archive", None, "email")).await);
    ok::<Folder>(client.post(&create_url, sid, &folder("chats", "Chats", None, "short-message")).await);
    let before = folders(&client, &org, &session).await;
    assert_eq!(before.len(), 3);

    // Creating: a name taken in the type, a parent of another type, a missing parent.
    let refusals = [
        (folder("work", "Work again", None, "email"), 409, "conflict"),
        (folder("sub", "Sub", Some("chats"), "email"), 404, "not_found"),
        (folder("sub", "Sub", Some("missing"), "email"), 404, "not_found"),
        (folder("sub", "Sub", Some("sub"), "email"), 409, "conflict"),
    ];
    for (body, status, code) in refusals {
        assert_error(&client.post(&create_url, sid, &body).await, status, code);
        assert_eq!(folders(&client, &org, &session).await, before, "after {code}");
    }

    // Renaming or moving: onto a taken name, under itself, a folder that does not
    // exist (or exists only in another type), to a parent of another type.
    let update = |name: &str| url(&org, &Route::UpdateFolder { folder_name: FolderName::parse(name).unwrap() });
    ok::<Folder>(client.post(&create_url, sid, &folder("child", "Child", Some("work"), "email")).await);
    let before = folders(&client, &org, &session).await;
    let refusals = [
        ("work", folder("archive", "Work", None, "email"), 409, "conflict"),
        ("work", folder("work", "Work", Some("work"), "email"), 409, "conflict"),
        ("work", folder("work", "Work", Some("child"), "email"), 409, "conflict"),
        ("missing", folder("missing", "Missing", None, "email"), 404, "not_found"),
        ("chats", folder("chats", "Chats", None, "email"), 404, "not_found"),
        ("work", folder("work", "Work", Some("chats"), "email"), 404, "not_found"),
        ("work", folder("work", "", None, "email"), 400, "bad_request"),
    ];
    for (name, body, status, code) in refusals {
        assert_error(&client.post(&update(name), sid, &body).await, status, code);
        assert_eq!(folders(&client, &org, &session).await, before, "after {code}");
    }

    // Moving the message: to another type's folder, to a missing folder.
    let move_url = url(&org, &Route::MoveMessage { message_id: sent.message_id });
    for target in ["chats", "missing"] {
        let response = client.post(&move_url, sid, &json!({ "folder_name": target })).await;
        assert_error(&response, 404, "not_found");
        assert_eq!(inbox(&client, &org, &session).await.len(), 1, "the message stays in the root");
        assert!(folder_messages(&client, &org, &session, MessageType::ShortMessage, "chats").await.is_empty());
    }
    assert_error(
        &client
            .get(
                &url(
                    &org,
                    &Route::ListMessages {
                        message_type: MessageType::Email,
                        folder_name: Some(FolderName::parse("chats").unwrap()),
                    },
                ),
                sid,
            )
            .await,
        404,
        "not_found",
    );

    // Deleting: a folder that holds a message or a folder, a missing one.
    ok::<Value>(client.post(&move_url, sid, &json!({ "folder_name": "archive" })).await);
    let delete = |kind: MessageType, name: &str| {
        url(&org, &Route::DeleteFolder { message_type: kind, folder_name: FolderName::parse(name).unwrap() })
    };
    assert_error(&client.delete(&delete(MessageType::Email, "archive"), sid).await, 409, "conflict");
    assert_error(&client.delete(&delete(MessageType::Email, "work"), sid).await, 409, "conflict");
    assert_error(&client.delete(&delete(MessageType::Email, "missing"), sid).await, 404, "not_found");
    assert_error(&client.delete(&delete(MessageType::Email, "chats"), sid).await, 404, "not_found");
    assert_eq!(folders(&client, &org, &session).await, before);
    assert_eq!(folder_messages(&client, &org, &session, MessageType::Email, "archive").await.len(), 1);
    assert!(inbox(&client, &org, &session).await.is_empty());

    org.stop().await;
}

// Every test above runs on SQLite (as written) and on PostgreSQL (`postgres::NAME`).
also_on_postgres!(
    malformed_bodies_are_bad_requests_and_change_nothing,
    an_oversized_body_is_payload_too_large_and_stores_nothing,
    unknown_versions_paths_and_methods_and_bad_path_parameters,
    refused_logins_create_no_session,
    a_remote_user_unknown_at_home_gets_remote_lookup_failed,
    remote_users_cannot_make_the_server_contact_private_addresses,
    connections_past_the_limit_wait_until_one_closes,
    a_request_past_the_time_limit_gets_a_json_error,
    calls_without_a_live_session_are_refused,
    a_remote_users_session_may_only_send,
    refused_messages_are_not_stored_and_consume_nothing,
    send_message_checks_run_in_the_documented_order,
    a_full_mailbox_is_quota_exceeded_and_stores_nothing,
    two_messages_racing_for_the_last_free_bytes_are_not_both_stored,
    refused_initialisations_leave_the_account_as_it_was,
    refused_profile_updates_leave_the_history_as_it_was,
    refused_message_key_uploads_change_no_key,
    too_many_logins_from_one_address_are_rate_limited,
    a_sender_holding_too_many_unspent_keys_is_rate_limited,
    refused_folder_and_move_operations_change_nothing,
);
