//! A bounded load run against running reference servers on loopback, through the
//! crate's own client code: it measures what an operator must know before sizing a
//! deployment (requests/s and latency per call kind), and it checks that instances
//! sharing one database agree, since each virtual client's calls go round-robin
//! across the instances given.
//!
//! Each virtual client initialises one account (created beforehand with
//! `smimp-gateway server add-account`), logs in once (both steps) and keeps its
//! session, as a gateway does; then, per round: get_message_key, get_pow_params,
//! send_message (a 4 KB email to itself, PoW as the server asks: run the server with
//! `default_zero_bits = 0`), list messages, get message, delete message. It stops after
//! `--seconds` (default 10) or `--rounds` rounds per client, and prints one JSON line.
//!
//! ```text
//! cargo run --release --example server_load -- --domain example.org --ca CA.pem \
//!     --server 127.0.0.1:PORT [--server 127.0.0.1:PORT2] --accounts FILE \
//!     [--clients 8] [--seconds 10] [--rounds M]
//! ```
//!
//! FILE holds one `address password` line per account (the one-time initialisation
//! passwords `add-account` printed); at least `--clients` lines.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand_core::OsRng;

use smimp_gateway::client::account::send_initialization;
use smimp_gateway::client::error::ClientError;
use smimp_gateway::client::server::ServerClient;
use smimp_gateway::client::session::{Session, SessionClient};
use smimp_gateway::clock::unix_now;
use smimp_gateway::discovery::Discovery;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{Ciphertext, HashContext, StoredEnvelope};
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::{Email, MessageType, Payload};
use smimp_gateway::smimp::pow::{zero_bits_for_size, PowParams, Preimage, SolveControl};
use smimp_gateway::smimp::profile::{ProfileFields, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;
use smimp_gateway::smimp::wire::{
    init_password_hash, Deleted, InitializeAccountRequest, MessageKeyRequest, MessageKeyResponse, MessageList,
    MessageSent, Route,
};

/// The most virtual clients: each one's initialisation and two login steps count
/// against the server's shipped limit of 60 unauthenticated calls per minute per
/// client address, and every virtual client calls from 127.0.0.1.
const MAX_CLIENTS: usize = 16;
/// The longest run.
const MAX_SECONDS: u64 = 600;
/// The payload's size.
const PAYLOAD_BYTES: usize = 4096;
/// Ephemeral keys each account uploads at initialisation (a gateway keeps a few).
const EPHEMERAL_KEYS: usize = 4;

/// The call kinds of a round, in order, as they appear in the output.
const KINDS: [&str; 6] =
    ["get_message_key", "get_pow_params", "send_message", "list_messages", "get_message", "delete_message"];

struct Args {
    domain: String,
    ca: PathBuf,
    servers: Vec<SocketAddr>,
    accounts: PathBuf,
    clients: usize,
    seconds: u64,
    rounds: u64,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        domain: String::new(),
        ca: PathBuf::new(),
        servers: Vec::new(),
        accounts: PathBuf::new(),
        clients: 8,
        seconds: 10,
        rounds: u64::MAX,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--domain" => args.domain = value,
            "--ca" => args.ca = value.into(),
            "--server" => args.servers.push(value.parse().with_context(|| format!("--server {value}: not IP:PORT"))?),
            "--accounts" => args.accounts = value.into(),
            "--clients" => args.clients = value.parse().context("--clients is a number")?,
            "--seconds" => args.seconds = value.parse().context("--seconds is a number")?,
            "--rounds" => args.rounds = value.parse().context("--rounds is a number")?,
            other => bail!("unknown argument {other} (see the example's header)"),
        }
    }
    if args.domain.is_empty()
        || args.ca.as_os_str().is_empty()
        || args.servers.is_empty()
        || args.accounts.as_os_str().is_empty()
    {
        bail!("--domain, --ca, --server and --accounts are required");
    }
    if let Some(far) = args.servers.iter().find(|a| !a.ip().is_loopback()) {
        bail!("{far} is not a loopback address: this tool only loads servers on this machine");
    }
    if args.clients == 0 || args.clients > MAX_CLIENTS {
        bail!("--clients must be 1..={MAX_CLIENTS} (the servers' shipped login limit per client address)");
    }
    if args.seconds == 0 || args.seconds > MAX_SECONDS {
        bail!("--seconds must be 1..={MAX_SECONDS}");
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(run(args))?;
    println!("{report}");
    Ok(())
}

/// One server instance per address, each found through its own resolution of the
/// one domain (as a load balancer in front of them would pick one).
async fn connect(args: &Args) -> Result<Vec<ServerClient>> {
    let mut servers = Vec::new();
    for addr in &args.servers {
        let resolve = BTreeMap::from([(args.domain.clone(), *addr)]);
        let discovery = Discovery::new(std::slice::from_ref(&args.ca), resolve, Duration::from_secs(30))?;
        let server = ServerClient::connect(&discovery, &args.domain)
            .await
            .with_context(|| format!("cannot reach the server at {addr}"))?;
        servers.push(server);
    }
    Ok(servers)
}

fn read_accounts(args: &Args) -> Result<Vec<(Address, String)>> {
    let text =
        std::fs::read_to_string(&args.accounts).with_context(|| format!("cannot read {}", args.accounts.display()))?;
    let accounts: Vec<(Address, String)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (address, password) = line.split_once(' ').context("each line is `address password`")?;
            Ok((Address::from_email(address.trim())?, password.trim().to_string()))
        })
        .collect::<Result<_>>()?;
    if accounts.len() < args.clients {
        bail!("{} names {} accounts, fewer than --clients {}", args.accounts.display(), accounts.len(), args.clients);
    }
    Ok(accounts)
}

fn now() -> Result<Timestamp> {
    Timestamp::from_unix(unix_now()).context("the system clock is outside the years 0000-9999")
}

/// Initialises the account as a new gateway does (first record, keys) and returns its
/// master key.
async fn initialise(server: &ServerClient, address: &Address, password: &str) -> Result<MasterKey> {
    let key = MasterKey::generate(&mut OsRng);
    let (_, nonephemeral_key) = SignedMessageKey::generate(&key, address, KeyKind::Nonephemeral, &mut OsRng);
    let ephemeral_keys = (0..EPHEMERAL_KEYS)
        .map(|_| SignedMessageKey::generate(&key, address, KeyKind::Ephemeral, &mut OsRng).1)
        .collect();
    let request = InitializeAccountRequest {
        address: address.clone(),
        password_hash: init_password_hash(password),
        record: ProfileRecord::initial(&key, address, ProfileFields::default(), now()?),
        nonephemeral_key,
        ephemeral_keys: Some(ephemeral_keys),
    };
    send_initialization(server, &request).await.with_context(|| format!("initialising {address}"))?;
    Ok(key)
}

/// A virtual client: its account, session, and the instances it calls in turn.
struct Virtual {
    address: Address,
    key: Arc<MasterKey>,
    session: Session,
    servers: Arc<Vec<ServerClient>>,
    next: usize,
    payload: Arc<Vec<u8>>,
}

/// What one virtual client saw.
#[derive(Default)]
struct Seen {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    rounds: u64,
    errors: u64,
    divergence: u64,
    first_error: Option<String>,
}

impl Seen {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    fn diverged(&mut self, what: String) {
        self.divergence += 1;
        self.first_error.get_or_insert(what);
    }
}

impl Virtual {
    /// The next instance, round-robin per call.
    fn server(&mut self) -> &ServerClient {
        let server = &self.servers[self.next % self.servers.len()];
        self.next += 1;
        server
    }

    async fn timed<T: serde::de::DeserializeOwned, B: serde::Serialize + ?Sized>(
        &mut self,
        seen: &mut Seen,
        kind: &'static str,
        route: Route,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let id = self.session.id;
        let started = Instant::now();
        let answer = self.server().call(&route, Some(&id), body).await;
        seen.latencies.entry(kind).or_default().push(started.elapsed());
        answer
    }

    /// One round; `deleted` is the message the previous round deleted, which no
    /// instance may list any more.
    async fn round(&mut self, seen: &mut Seen, deleted: Option<Id32>) -> Result<Id32, ClientError> {
        let me = self.address.clone();
        let request = MessageKeyRequest { address: me.clone() };
        let key: MessageKeyResponse = self.timed(seen, KINDS[0], Route::GetMessageKey, Some(&request)).await?;
        let pow_route = Route::GetPowParams { address: me.clone(), message_type: MessageType::Email };
        let params: PowParams = self.timed(seen, KINDS[1], pow_route, None::<&()>).await?;
        let envelope = {
            let sealed = Ciphertext::seal(
                &self.payload,
                MessageType::Email,
                BoxNonce::random(&mut OsRng),
                &key.message_key.public_key,
                &self.key,
            );
            let context = HashContext { sender: &me, recipient: &me, login_token_hash: &self.session.login_token_hash };
            let bits = zero_bits_for_size(params.zero_bits, sealed.bytes.len());
            let pow = Preimage::new(&sealed.pow_input(&context), &params.nonce)
                .solve(bits, &Id32::random(&mut OsRng), NonZeroUsize::MIN, &SolveControl::default())
                .map_err(|e| ClientError::BadAnswer { url: "proof of work".into(), reason: e.to_string() })?;
            sealed.into_envelope(&self.key, &context, Some(pow))
        };
        let send_route = Route::SendMessage { address: me.clone() };
        let sent: MessageSent = self.timed(seen, KINDS[2], send_route, Some(&envelope)).await?;
        let list_route = Route::ListMessages { message_type: MessageType::Email, folder_name: None };
        let list: MessageList = self.timed(seen, KINDS[3], list_route, None::<&()>).await?;
        if !list.messages.iter().any(|m| m.message_id == sent.message_id) {
            seen.diverged(format!("message {} was stored but is not listed", sent.message_id.to_hex()));
        }
        if let Some(gone) = deleted.filter(|d| list.messages.iter().any(|m| m.message_id == *d)) {
            seen.diverged(format!("message {} was deleted but is still listed", gone.to_hex()));
        }
        let get_route = Route::GetMessage { message_id: sent.message_id, update_read: false };
        let _: StoredEnvelope = self.timed(seen, KINDS[4], get_route, None::<&()>).await?;
        let delete_route = Route::DeleteMessage { message_id: sent.message_id };
        let _: Deleted = self.timed(seen, KINDS[5], delete_route, None::<&()>).await?;
        Ok(sent.message_id)
    }

    async fn run(mut self, until: Instant, rounds: u64) -> Seen {
        let mut seen = Seen::default();
        let mut deleted = None;
        while Instant::now() < until && seen.rounds < rounds {
            match self.round(&mut seen, deleted).await {
                Ok(id) => deleted = Some(id),
                Err(err) => {
                    seen.error(err.to_string());
                    deleted = None;
                }
            }
            seen.rounds += 1;
        }
        seen
    }
}

fn payload(to: &Address) -> Result<Vec<u8>> {
    let body: String = (0..PAYLOAD_BYTES / 64).map(|_| Id32::random(&mut OsRng).to_hex()).collect();
    let email = Email {
        to: vec![to.clone()],
        cc: vec![],
        subject: "load".into(),
        thread_id: Id32::random(&mut OsRng),
        reply_to_message_id: None,
        date_sent: now()?,
        body,
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    };
    Ok(Payload::Email(Box::new(email)).to_bytes())
}

/// Initialises and logs in every virtual client (setup, timed apart from the run).
async fn set_up(args: &Args, servers: &Arc<Vec<ServerClient>>) -> Result<(Vec<Virtual>, Vec<Duration>)> {
    let accounts = read_accounts(args)?;
    let mut clients = Vec::new();
    let mut logins = Vec::new();
    for (i, (address, password)) in accounts.into_iter().take(args.clients).enumerate() {
        let home = &servers[i % servers.len()];
        let key = Arc::new(initialise(home, &address, password.as_str()).await?);
        let started = Instant::now();
        let session = SessionClient::new(home.clone(), address.clone(), key.clone())
            .session()
            .await
            .with_context(|| format!("logging in {address}"))?;
        logins.push(started.elapsed());
        let payload = Arc::new(payload(&address)?);
        clients.push(Virtual { address, key, session, servers: servers.clone(), next: i, payload });
    }
    Ok((clients, logins))
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn kind_report(mut latencies: Vec<Duration>, elapsed: f64) -> serde_json::Value {
    latencies.sort();
    serde_json::json!({
        "count": latencies.len(),
        "per_s": (latencies.len() as f64 / elapsed * 10.0).round() / 10.0,
        "p50_ms": millis(percentile(&latencies, 0.50)),
        "p99_ms": millis(percentile(&latencies, 0.99)),
    })
}

async fn run(args: Args) -> Result<serde_json::Value> {
    let servers = Arc::new(connect(&args).await?);
    let (clients, logins) = set_up(&args, &servers).await?;
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = clients.into_iter().map(|c| tokio::spawn(c.run(until, args.rounds))).collect();
    let mut all = Seen::default();
    for task in tasks {
        let seen = task.await?;
        for (kind, latencies) in seen.latencies {
            all.latencies.entry(kind).or_default().extend(latencies);
        }
        all.rounds += seen.rounds;
        all.errors += seen.errors;
        all.divergence += seen.divergence;
        if all.first_error.is_none() {
            all.first_error = seen.first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let requests: usize = all.latencies.values().map(Vec::len).sum();
    let mut kinds = serde_json::Map::new();
    for kind in KINDS {
        kinds.insert(kind.into(), kind_report(all.latencies.remove(kind).unwrap_or_default(), elapsed));
    }
    Ok(serde_json::json!({
        "servers": args.servers.len(),
        "clients": args.clients,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "rounds": all.rounds,
        "requests": requests,
        "requests_per_s": (requests as f64 / elapsed * 10.0).round() / 10.0,
        "errors": all.errors,
        "divergence": all.divergence,
        "first_error": all.first_error,
        "login": kind_report(logins, elapsed),
        "kinds": kinds,
    }))
}
