//! Test harness for the reference server: real instances on loopback over real TLS,
//! two domains whose servers trust each other's private CA and resolve each other's
//! domain through configuration (as a private deployment does), and a client that
//! speaks the API with reqwest. Certificate verification is never disabled.
#![allow(dead_code)]

pub mod imap_client;
pub mod relay;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand_core::OsRng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use smimp_gateway::server::admin;
use smimp_gateway::server::config::ServerConfig;
use smimp_gateway::server::state::AppState;
use smimp_gateway::smimp::address::{Address, Domain};
use smimp_gateway::smimp::crypto::{BoxNonce, BoxSecretKey, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{login_token_hash, Ciphertext, HashContext, SentEnvelope};
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::pow::{PowParams, Preimage, SolveControl};
use smimp_gateway::smimp::profile::{ProfileFields, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;
use smimp_gateway::smimp::wire::{
    create_session_hash, init_password_hash, InitializeAccountRequest, LoginChallenge, MessageKeyResponse, Route,
    SessionCreated, AUTH_HEADER,
};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "smimp-test-{name}-{}-{}",
            std::process::id(),
            &Id32::random(&mut OsRng).to_hex()[..8]
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One running server.
pub struct TestServer {
    pub domain: String,
    pub addr: SocketAddr,
    pub base: String,
    pub ca_file: PathBuf,
    pub config: ServerConfig,
    pub state: Arc<AppState>,
    stop: Option<smimp_gateway::listen::StopHandle>,
    running: Option<smimp_gateway::server::Running>,
    _dir: TempDir,
}

impl TestServer {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.stop();
        }
        if let Some(running) = self.running.take() {
            running.finished().await.unwrap();
        }
    }
}

/// Where a party finds a domain's server: its name, loopback address and CA. A real
/// [`TestServer`] is one; so is a lying proxy in front of one.
pub trait Endpoint {
    fn domain(&self) -> &str;
    fn addr(&self) -> SocketAddr;
    fn ca_file(&self) -> &Path;
}

impl Endpoint for TestServer {
    fn domain(&self) -> &str {
        &self.domain
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn ca_file(&self) -> &Path {
        &self.ca_file
    }
}

/// Options for the test servers.
#[derive(Clone)]
pub struct Options {
    pub zero_bits: u32,
    pub extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Self { zero_bits: 6, extra: String::new() }
    }
}

/// The variable naming the PostgreSQL cluster the store tests also run on: the URL of
/// a database on it whose user may create databases (tests/pg/start.sh prints it).
pub const POSTGRES_VAR: &str = "SMIMP_TEST_POSTGRES";

thread_local! {
    /// The cluster this thread's test servers store in; `None`: SQLite files.
    static POSTGRES: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `test` (a `#[tokio::test]` function, which runs on this thread) with every
/// server it starts storing in a fresh database of the PostgreSQL cluster named by
/// [`POSTGRES_VAR`]. Without the variable the test fails and says what to run.
pub fn on_postgres(test: impl FnOnce()) {
    let url = postgres_cluster();
    POSTGRES.with(|p| *p.borrow_mut() = Some(url));
    test();
}

/// The URL [`POSTGRES_VAR`] names; a test that needs it fails without it, saying what to run.
pub fn postgres_cluster() -> String {
    std::env::var(POSTGRES_VAR).unwrap_or_else(|_| {
        panic!(
            "this test runs the server on PostgreSQL and {POSTGRES_VAR} is not set: run the whole suite with \
             `bash tests/run` (it starts a private cluster), or start one yourself with \
             `eval \"$(bash tests/pg/start.sh)\"` and run cargo nextest again in that shell \
             (`bash tests/pg/stop.sh \"$SMIMP_TEST_POSTGRES_DIR\"` stops it)"
        )
    })
}

/// Whether this thread's servers store in PostgreSQL.
pub fn on_postgres_now() -> bool {
    POSTGRES.with(|p| p.borrow().is_some())
}

/// A new, empty database on this thread's cluster, if the test runs on PostgreSQL.
pub async fn fresh_postgres_database() -> Option<String> {
    let url = POSTGRES.with(|p| p.borrow().clone())?;
    Some(new_postgres_database(&url).await)
}

/// A new, empty database on the cluster whose database `url` names; its URL.
pub async fn new_postgres_database(url: &str) -> String {
    use sqlx::Connection;
    let (base, _) = url.rsplit_once('/').expect("the PostgreSQL URL ends in /database");
    let name = format!("smimp_{}", &Id32::random(&mut OsRng).to_hex()[..16]);
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| panic!("{POSTGRES_VAR}={url}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
    format!("{base}/{name}")
}

/// Runs each named test of the file a second time with its servers on PostgreSQL, as
/// `postgres::NAME`, and checks that the list names every `#[tokio::test]` of the file.
#[macro_export]
macro_rules! also_on_postgres {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[test]
                fn $test() {
                    $crate::common::on_postgres(super::$test)
                }
            )*

            #[test]
            fn every_test_of_the_file_runs_on_both_stores() {
                $crate::common::assert_all_listed(file!(), &[$(stringify!($test)),*]);
            }
        }
    };
}

/// Fails unless `listed` names exactly the `#[tokio::test]` functions of `file`.
pub fn assert_all_listed(file: &str, listed: &[&str]) {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    let mut tests = Vec::new();
    let mut lines = source.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("#[tokio::test") {
            let signature = lines.next().unwrap_or_default();
            let name = signature.trim_start_matches("async fn ").split('(').next().unwrap_or_default();
            tests.push(name.to_string());
        }
    }
    let mut listed: Vec<String> = listed.iter().map(|s| s.to_string()).collect();
    tests.sort();
    listed.sort();
    assert_eq!(tests, listed, "also_on_postgres! in {file} must name every test of the file");
}

struct Planned {
    database: String,
    domain: String,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    dir: TempDir,
    ca_file: PathBuf,
}

async fn plan(domain: &str) -> Planned {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = TempDir::new(domain);
    let names = vec![domain.to_string(), "localhost".into(), "127.0.0.1".into()];
    let dev = smimp_gateway::tls::ensure_dev_certificates(&dir.0.join("tls"), &names).unwrap();
    let database = fresh_postgres_database().await.unwrap_or_else(|| "server.sqlite".into());
    Planned { database, domain: domain.into(), listener, addr, dir, ca_file: dev.ca_file }
}

fn config_text(me: &Planned, others: &[(&Planned, SocketAddr)], options: &Options) -> String {
    let mut resolve = String::new();
    let mut cas = Vec::new();
    for (other, addr) in others {
        resolve.push_str(&format!("\"{}\" = \"{}\"\n", other.domain, addr));
        cas.push(format!("\"{}\"", other.ca_file.display()));
    }
    format!(
        r#"
[server]
listen = "{addr}"
domain = "{domain}"
public_base = "{domain}:{port}"
database = "{database}"

[tls]
dev_ca_dir = "tls"
dev_names = ["{domain}", "localhost", "127.0.0.1"]

[pow]
default_zero_bits = {zero_bits}

[discovery]
trusted_ca_files = [{cas}]

[discovery.resolve]
{resolve}
{extra}
"#,
        addr = me.addr,
        database = me.database,
        domain = me.domain,
        port = me.addr.port(),
        zero_bits = options.zero_bits,
        cas = cas.join(", "),
        extra = options.extra,
    )
}

async fn launch(planned: Planned, text: String) -> TestServer {
    let path = planned.dir.0.join("server.toml");
    std::fs::write(&path, text).unwrap();
    let config = ServerConfig::load(&path).unwrap();
    let (stop, shutdown) = smimp_gateway::listen::Shutdown::new();
    let running = smimp_gateway::server::start(config.clone(), planned.listener, shutdown).await.unwrap();
    let state = running.state.clone();
    TestServer {
        base: format!("https://{}:{}", planned.domain, planned.addr.port()),
        domain: planned.domain,
        addr: planned.addr,
        ca_file: planned.ca_file,
        config,
        state,
        stop: Some(stop),
        running: Some(running),
        _dir: planned.dir,
    }
}

/// Two servers, `example.org` and `example.net`, that can find and trust each other.
pub async fn start_pair(options: Options) -> (TestServer, TestServer) {
    let a = plan("example.org").await;
    let b = plan("example.net").await;
    let text_a = config_text(&a, &[(&b, b.addr)], &options);
    let text_b = config_text(&b, &[(&a, a.addr)], &options);
    (launch(a, text_a).await, launch(b, text_b).await)
}

/// As [`start_pair`], but each server resolves `domain` (one of the two) to `addr`
/// instead of the real server: a lying proxy listening there is what the other server
/// meets when it looks that domain up.
pub async fn start_pair_resolving(options: Options, domain: &str, addr: SocketAddr) -> (TestServer, TestServer) {
    let a = plan("example.org").await;
    let b = plan("example.net").await;
    let seen = |p: &Planned| if p.domain == domain { addr } else { p.addr };
    let text_a = config_text(&a, &[(&b, seen(&b))], &options);
    let text_b = config_text(&b, &[(&a, seen(&a))], &options);
    (launch(a, text_a).await, launch(b, text_b).await)
}

/// One server for `example.org`.
pub async fn start_one(options: Options) -> TestServer {
    let a = plan("example.org").await;
    let text = config_text(&a, &[], &options);
    launch(a, text).await
}

/// Two instances of one server for `example.org`: one database (on PostgreSQL when the
/// test runs there), one certificate, two listening ports, as behind one name.
pub async fn start_twins(options: Options) -> (TestServer, TestServer) {
    let a = plan("example.org").await;
    let mut b = plan("example.org").await;
    b.database = a.database.clone();
    b.ca_file = a.ca_file.clone();
    let tls = b.dir.0.join("tls");
    std::fs::remove_dir_all(&tls).unwrap();
    std::fs::create_dir_all(&tls).unwrap();
    for entry in std::fs::read_dir(a.dir.0.join("tls")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tls.join(entry.file_name())).unwrap();
    }
    let text_a = config_text(&a, &[], &options);
    let text_b = config_text(&b, &[], &options);
    (launch(a, text_a).await, launch(b, text_b).await)
}

/// An HTTP client that trusts the servers' CAs and resolves their domains to loopback.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(servers: &[&TestServer]) -> Self {
        let cas: Vec<PathBuf> = servers.iter().map(|s| s.ca_file.clone()).collect();
        let tls = smimp_gateway::tls::client_config(&cas).unwrap();
        let mut builder = reqwest::Client::builder().use_preconfigured_tls(tls).https_only(true);
        for server in servers {
            builder = builder.resolve(&server.domain, server.addr);
        }
        Self { http: builder.build().unwrap() }
    }

    /// Sends a request and returns the status and JSON body (Null when empty or not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        session: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, url);
        if let Some(session) = session {
            request = request.header(AUTH_HEADER, session);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, url: &str, session: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, url, session, None).await
    }

    pub async fn post(&self, url: &str, session: Option<&str>, body: &impl Serialize) -> (u16, Value) {
        let body = serde_json::to_value(body).unwrap();
        self.call(reqwest::Method::POST, url, session, Some(&body)).await
    }

    pub async fn delete(&self, url: &str, session: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, url, session, None).await
    }
}

/// The URL of a route on a server.
pub fn url(server: &TestServer, route: &Route) -> String {
    format!("{}/{}", server.base, route.path())
}

/// Asserts an error response: status, code, and that the message is not empty.
pub fn assert_error(response: &(u16, Value), status: u16, code: &str) {
    assert_eq!(response.0, status, "unexpected status, body {}", response.1);
    assert_eq!(response.1["error"]["code"], code, "unexpected error body {}", response.1);
    assert!(response.1["error"]["message"].as_str().is_some_and(|m| m.len() > 5), "{}", response.1);
}

/// Parses a successful response.
pub fn ok<T: DeserializeOwned>(response: (u16, Value)) -> T {
    assert_eq!(response.0, 200, "expected success, got {}", response.1);
    serde_json::from_value(response.1).unwrap()
}

/// An initialised account with its secrets.
pub struct Account {
    pub address: Address,
    pub key: MasterKey,
    pub nonephemeral: BoxSecretKey,
    pub ephemeral: Vec<BoxSecretKey>,
}

impl Account {
    /// The secret for a message key this account issued.
    pub fn secret_for(&self, public: &smimp_gateway::smimp::crypto::BoxPublicKey) -> &BoxSecretKey {
        std::iter::once(&self.nonephemeral).chain(&self.ephemeral).find(|s| &s.public() == public).expect("own key")
    }
}

pub fn now() -> Timestamp {
    Timestamp::from_unix(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
        .unwrap()
}

/// Creates the account with the admin command and initialises it over the API.
pub async fn create_account(client: &Client, server: &TestServer, local: &str, ephemeral: usize) -> Account {
    let (address, password) =
        admin::add_account(&server.config, &server.state.store, &format!("{local}#{}", server.domain), 0)
            .await
            .unwrap();
    let key = MasterKey::generate(&mut OsRng);
    let (nonephemeral, ne_key) = SignedMessageKey::generate(&key, &address, KeyKind::Nonephemeral, &mut OsRng);
    let mut ephemeral_secrets = Vec::new();
    let mut ephemeral_keys = Vec::new();
    for _ in 0..ephemeral {
        let (secret, signed) = SignedMessageKey::generate(&key, &address, KeyKind::Ephemeral, &mut OsRng);
        ephemeral_secrets.push(secret);
        ephemeral_keys.push(signed);
    }
    let request = InitializeAccountRequest {
        address: address.clone(),
        password_hash: init_password_hash(&password),
        record: ProfileRecord::initial(&key, &address, ProfileFields::default(), now()),
        nonephemeral_key: ne_key,
        ephemeral_keys: Some(ephemeral_keys),
    };
    let response = client.post(&url(server, &Route::InitializeAccount), None, &request).await;
    assert_eq!(response.0, 200, "initialize_account: {}", response.1);
    Account { address, key, nonephemeral, ephemeral: ephemeral_secrets }
}

/// A session at `server` for `account` (local or remote), with its login token.
pub struct Session {
    pub id: String,
    pub token: Id32,
}

/// The domain a client discovers `server` by: the one a login there is signed for.
pub fn server_domain(server: &TestServer) -> Domain {
    Domain::parse(&server.domain).unwrap()
}

/// Logs in with the two create_session calls.
pub async fn login(client: &Client, server: &TestServer, account: &Account) -> Session {
    let challenge: LoginChallenge =
        ok(client.get(&url(server, &Route::GetLoginToken { address: account.address.clone() }), None).await);
    let signature = account.key.sign(&create_session_hash(&server_domain(server), &account.address, &challenge.token));
    let body = serde_json::json!({ "token": challenge.token, "server": server.domain, "signature": signature });
    let created: SessionCreated =
        ok(client.post(&url(server, &Route::CreateSession { address: account.address.clone() }), None, &body).await);
    Session { id: created.session.to_hex(), token: challenge.token }
}

/// Asks for a message key and PoW parameters, seals `payload`, solves and signs:
/// the envelope ready for `send_message`, and the key it was sealed to.
pub async fn prepare_message(
    client: &Client,
    server: &TestServer,
    session: &Session,
    sender: &Account,
    recipient: &Address,
    payload: &[u8],
) -> (SentEnvelope, MessageKeyResponse, PowParams) {
    let key: MessageKeyResponse = ok(client
        .post(&url(server, &Route::GetMessageKey), Some(&session.id), &serde_json::json!({ "address": recipient }))
        .await);
    let params: PowParams = ok(client
        .get(
            &url(server, &Route::GetPowParams { address: recipient.clone(), message_type: MessageType::Email }),
            Some(&session.id),
        )
        .await);
    let envelope = seal(sender, recipient, &session.token, &key.message_key.public_key, &params, payload);
    (envelope, key, params)
}

/// Seals, solves and signs one message.
pub fn seal(
    sender: &Account,
    recipient: &Address,
    token: &Id32,
    message_key: &smimp_gateway::smimp::crypto::BoxPublicKey,
    params: &PowParams,
    payload: &[u8],
) -> SentEnvelope {
    let token_hash = login_token_hash(token);
    let context = HashContext { sender: &sender.address, recipient, login_token_hash: &token_hash };
    let sealed = Ciphertext::seal(payload, MessageType::Email, BoxNonce::random(&mut OsRng), message_key, &sender.key);
    let pow = Preimage::new(&sealed.pow_input(&context), &params.nonce)
        .solve(params.zero_bits, &Id32::random(&mut OsRng), NonZeroUsize::new(2).unwrap(), &SolveControl::default())
        .unwrap();
    sealed.into_envelope(&sender.key, &context, Some(pow))
}

/// The directory of a path, for messages.
pub fn show(path: &Path) -> String {
    path.display().to_string()
}

/// Writes a gateway configuration in `dir` (passphrase file included) that trusts the
/// CAs of `servers` and resolves their domains to loopback; `extra` is appended.
pub fn write_gateway_config(dir: &TempDir, servers: &[&dyn Endpoint], extra: &str) -> PathBuf {
    std::fs::write(dir.0.join("passphrase.txt"), "passphrase\n").unwrap();
    let cas: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.ca_file().display())).collect();
    let resolve: String = servers.iter().map(|s| format!("\"{}\" = \"{}\"\n", s.domain(), s.addr())).collect();
    // Parallel tests must not share the default IMAP and SMTP ports.
    let imap =
        if extra.contains("[imap]") { "" } else { "[imap]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n" };
    let smtp =
        if extra.contains("[smtp]") { "" } else { "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n" };
    let keys = if extra.contains("[keys]") { "" } else { "[keys]\nephemeral_target = 2\n" };
    let text = format!(
        "[gateway]\ndata_dir = \"data\"\n[keystore]\npassphrase_file = \"passphrase.txt\"\nkdf_memory_kib = 8\nkdf_passes = 1\n\
         {keys}[discovery]\ntrusted_ca_files = [{}]\ntimeout = \"5s\"\n[discovery.resolve]\n{resolve}{extra}\n{imap}{smtp}",
        cas.join(", ")
    );
    let path = dir.0.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Creates `local@domain` on `server` with the admin command and runs `init` for it
/// with the gateway configuration at `config`, as a new user would.
pub async fn init_on_gateway(
    config: &Path,
    server: &TestServer,
    local: &str,
) -> smimp_gateway::gateway::enroll::Initialised {
    let email = format!("{local}@{}", server.domain);
    let (_, password) = admin::add_account(&server.config, &server.state.store, &email, 0).await.unwrap();
    let ctx = smimp_gateway::gateway::context::Context::open(config).await.unwrap();
    smimp_gateway::gateway::enroll::init(&ctx, &email, &password, now().unix()).await.unwrap()
}

/// Waits (up to 30 s, polling every 100 ms) for `check` to give an answer.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..300 {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The first message in the INBOX of the gateway's (only) account, as its mail client
/// reads it: waits for one to arrive.
pub async fn first_in_inbox(config: &Path) -> String {
    let ctx = smimp_gateway::gateway::context::Context::open(config).await.unwrap();
    let accounts = smimp_gateway::gateway::unlock_accounts(&ctx).await.unwrap();
    let account = accounts.values().next().unwrap().clone();
    let boxes =
        smimp_gateway::backend::mailbox::Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts, 64 << 20);
    let bytes = eventually("a message in the INBOX", async || {
        let (_, messages) = boxes.snapshot(&account, "INBOX", true).await.unwrap();
        let first = messages.first()?;
        Some(boxes.message(&account, "INBOX", first.uid).await.unwrap().to_vec())
    })
    .await;
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A mail client's SMTP transport to a running gateway: STARTTLS required, the
/// certificate checked against the gateway's own CA, AUTH with `mechanism`.
pub fn gateway_mailer(
    running: &smimp_gateway::gateway::Running,
    login: &smimp_gateway::gateway::enroll::Initialised,
    mechanism: lettre::transport::smtp::authentication::Mechanism,
) -> lettre::AsyncSmtpTransport<lettre::Tokio1Executor> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let ca = std::fs::read(&running.ca_file).unwrap();
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(&ca).unwrap())
        .build_rustls()
        .unwrap();
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("localhost")
        .port(running.addresses.smtp.port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(login.username.clone(), login.password.clone()))
        .authentication(vec![mechanism])
        .build()
}

/// A gateway started for a test on its configured ports, and the handle that stops it.
pub struct TestGateway {
    running: smimp_gateway::gateway::Running,
    stop: smimp_gateway::listen::StopHandle,
}

impl std::ops::Deref for TestGateway {
    type Target = smimp_gateway::gateway::Running;

    fn deref(&self) -> &Self::Target {
        &self.running
    }
}

impl TestGateway {
    /// Stops the gateway and waits until every part has ended.
    pub async fn stop(self) {
        self.stop.stop();
        self.running.finished().await;
    }
}

/// Starts the gateway of `config` as `smimp-gateway run` does.
pub async fn start_gateway(config: &Path) -> TestGateway {
    let ctx = smimp_gateway::gateway::context::Context::open(config).await.unwrap();
    let listeners = smimp_gateway::gateway::Listeners::bind(&ctx).await.unwrap();
    let (stop, shutdown) = smimp_gateway::listen::Shutdown::new();
    let running = smimp_gateway::gateway::start(ctx, listeners, shutdown).await.unwrap();
    TestGateway { running, stop }
}
