//! `smimp-gateway demo`: the whole product on one machine, in one process, so a mail
//! client can be pointed at it within a minute. It starts a reference SMIMP server for
//! the test domain `example.test` on loopback (with its own development CA, the domain
//! mapped to it through the gateway's `[discovery.resolve]`), two initialised accounts
//! (`server add-account` + `init`), the gateway serving both, and sends a welcome
//! message from one to the other through the full encrypted path — the gateway's queue
//! and delivery worker (trust, message key, proof of work, seal, send), then sync,
//! verify, open and render in the recipient's INBOX — before it reports ready.
//!
//! All state lives in one directory (`--dir`, by default
//! `$XDG_DATA_HOME/smimp-gateway-demo`): the server's and gateway's configuration,
//! databases, CAs and keystores, and `demo-state.json` (mode 0600), which keeps the mail
//! client passwords (the keystores hold only their hashes) and the ports, so a second
//! run reuses the accounts, prints the same logins and, when the ports are still free,
//! listens where the mail client already looks. It is a demonstration: the keystore
//! passphrase lies in the same directory, so the directory must stay private.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::backend::mailbox::{MailboxError, Mailboxes};
use crate::backend::outbound::{enqueue, RetryPolicy};
use crate::backend::submission::Account;
use crate::clock::unix_now;
use crate::config_file::ConfigError;
use crate::enroll::{CommandError, Context, KeystoreLock};
use crate::gateway::{unlock_accounts, Running};
use crate::keystore::Keystore;
use crate::mime::inbound::{email_from_rfc5322, NoThreads};
use crate::server::admin::{self, AdminError};
use crate::server::config::ServerConfig;
use crate::smimp::address::Address;
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::timestamp::Timestamp;
use crate::store::StoreError;

/// The demo's mail domain: `.test` is reserved (RFC 2606), so it can never be a real one.
pub const DOMAIN: &str = "example.test";
/// The two accounts: the first sends the welcome message to the second.
pub const USERS: [&str; 2] = ["alice", "bob"];
const STATE_FILE: &str = "demo-state.json";
const WELCOME_SUBJECT: &str = "Welcome to SMIMP";
/// How long the welcome message may take to be delivered and to show in the INBOX.
const WELCOME_TIMEOUT: Duration = Duration::from_secs(180);

/// Why the demo could not start; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("no place for the demo's state: neither $XDG_DATA_HOME nor $HOME is set; choose one with --dir DIR")]
    NoDataDir,
    #[error("cannot {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("another `smimp-gateway demo` is using {0}; stop it first, or choose another directory with --dir")]
    Busy(PathBuf),
    #[error("the demo's state file {path} cannot be used ({reason}); remove the directory {dir} to start afresh")]
    State { path: PathBuf, dir: PathBuf, reason: String },
    #[error("the demo's state in {dir} is inconsistent: {reason}; remove the directory to start afresh")]
    Inconsistent { dir: PathBuf, reason: String },
    #[error("the demo's SMIMP server: {0}")]
    Server(#[from] AdminError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Gateway(#[from] CommandError),
    #[error("the gateway's database: {0}")]
    Store(#[from] StoreError),
    #[error("reading {account}'s INBOX: {source}")]
    Mailbox { account: String, source: MailboxError },
    #[error("the welcome message did not arrive: {0}")]
    Welcome(String),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> DemoError + 'a {
    move |source| DemoError::Io { action, path: path.into(), source }
}

/// The default state directory: `$XDG_DATA_HOME/smimp-gateway-demo`, or
/// `~/.local/share/smimp-gateway-demo` (the XDG base directory default).
pub fn default_dir() -> Result<PathBuf, DemoError> {
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let home = || std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share"));
    Ok(xdg.or_else(home).ok_or(DemoError::NoDataDir)?.join("smimp-gateway-demo"))
}

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct Options {
    /// The state directory.
    pub dir: PathBuf,
    /// The server's proof-of-work difficulty (leading zero bits) for new senders.
    pub zero_bits: u32,
}

/// What `demo-state.json` keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    accounts: Vec<StoredLogin>,
    ports: Ports,
    /// The welcome message's queue row, while it may still be waiting for delivery.
    welcome_queue_id: Option<i64>,
    /// Its SMIMP message id once sent, to find it in the INBOX on later runs.
    welcome_message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredLogin {
    address: String,
    username: String,
    password: String,
}

/// The ports of the last run (0: none yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ports {
    server: u16,
    smtp: u16,
    smtp_tls: u16,
    imap: u16,
    imap_tls: u16,
}

impl State {
    fn load(dir: &Path) -> Result<Self, DemoError> {
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| DemoError::State {
                path: path.clone(),
                dir: dir.into(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(DemoError::Io { action: "read", path, source }),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), DemoError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| DemoError::State {
            path: dir.join(STATE_FILE),
            dir: dir.into(),
            reason: e.to_string(),
        })?;
        write_private(&dir.join(STATE_FILE), &bytes)
    }

    fn login(&self, address: &Address) -> Option<&StoredLogin> {
        self.accounts.iter().find(|l| l.address == address.to_email())
    }

    fn set_login(&mut self, login: StoredLogin) {
        self.accounts.retain(|l| l.address != login.address);
        self.accounts.push(login);
    }
}

/// Writes a file only its owner can read (0600), atomically: a crash leaves the old
/// file or the new one, never half of the passwords.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DemoError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io("create", &temporary))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io("write", &temporary))?;
    std::fs::rename(&temporary, path).map_err(io("replace", path))
}

/// Creates a directory only its owner can enter (0700): it holds keys and passwords.
fn private_dir(path: &Path) -> Result<(), DemoError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).map_err(io("create", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(io("restrict", path))
}

/// A listener on the port of the last run when it is still free, or on a free port the
/// system picks, so a mail client set up once keeps working while nothing collides.
fn listen_on(remembered: u16) -> Result<std::net::TcpListener, DemoError> {
    let at = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if remembered != 0 {
        if let Ok(listener) = std::net::TcpListener::bind(at(remembered)) {
            return Ok(listener);
        }
        tracing::info!(port = remembered, "the port of the last run is taken; using a free one");
    }
    let any = at(0);
    std::net::TcpListener::bind(any).map_err(|source| DemoError::Io {
        action: "listen on",
        path: any.to_string().into(),
        source,
    })
}

fn port_of(listener: &std::net::TcpListener) -> Result<u16, DemoError> {
    listener.local_addr().map(|a| a.port()).map_err(io("read the address of", Path::new("a listener")))
}

/// A TOML basic string (JSON's string escapes are valid TOML ones).
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.into()).to_string()
}

/// Where a mail client connects for one protocol; `None` ports are not served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    /// The plain port, upgraded with STARTTLS.
    pub port: Option<u16>,
    /// The implicit-TLS ("SSL/TLS") port.
    pub tls_port: Option<u16>,
}

impl Endpoint {
    fn new(plain: Option<SocketAddr>, tls: Option<SocketAddr>) -> Self {
        let host = plain.or(tls).map(|a| a.ip().to_string()).unwrap_or_else(|| Ipv4Addr::LOCALHOST.to_string());
        Self { host, port: plain.map(|a| a.port()), tls_port: tls.map(|a| a.port()) }
    }
}

/// One account's mail client settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountSettings {
    pub address: String,
    pub username: String,
    pub password: String,
    pub imap: Endpoint,
    pub smtp: Endpoint,
}

/// The demo's SMIMP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerSettings {
    pub domain: String,
    /// Its URL; the domain resolves to `address` only inside the demo (`curl --resolve`).
    pub url: String,
    pub address: SocketAddr,
    /// Its development CA, to trust when talking to it directly.
    pub ca_file: PathBuf,
    pub database: PathBuf,
}

/// The welcome message as the recipient's INBOX shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WelcomeSettings {
    pub from: String,
    pub to: String,
    pub subject: String,
    pub uid: u32,
    /// The gateway's `X-SMIMP-Verified` verdict (`pass …`).
    pub verified: String,
    /// Whether this run sent it (false: an earlier run did and it is still there).
    pub sent_by_this_run: bool,
}

/// Everything the demo prints: `--json` prints exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub accounts: Vec<AccountSettings>,
    /// The gateway's CA certificate, which mail clients must trust.
    pub gateway_ca_file: PathBuf,
    pub gateway_ca_fingerprint: String,
    /// The gateway's configuration, for `setup-client` and `status`.
    pub gateway_config: PathBuf,
    pub server: ServerSettings,
    pub welcome: WelcomeSettings,
    pub dir: PathBuf,
    /// Where the passwords are kept (mode 0600).
    pub state_file: PathBuf,
}

fn endpoint_text(name: &str, endpoint: &Endpoint, missing: &str) -> String {
    let mut parts = Vec::new();
    if let Some(port) = endpoint.port {
        parts.push(format!("{}:{port} STARTTLS", endpoint.host));
    }
    if let Some(port) = endpoint.tls_port {
        parts.push(format!("{}:{port} SSL/TLS", endpoint.host));
    }
    if parts.is_empty() {
        format!("    {name}  {missing}\n")
    } else {
        format!("    {name}  {}\n", parts.join(", or "))
    }
}

impl Settings {
    /// The settings as a person reads them.
    pub fn describe(&self) -> String {
        let mut out = format!("smimp-gateway demo, state in {}\n", self.dir.display());
        let s = &self.server;
        out += &format!(
            "  SMIMP server for {}: {} (at {}), its CA {}, database {}\n",
            s.domain,
            s.url,
            s.address,
            s.ca_file.display(),
            s.database.display()
        );
        let w = &self.welcome;
        let when = if w.sent_by_this_run { "sent now" } else { "sent by an earlier run" };
        out += &format!(
            "  welcome message {} → {} ({when}): in {}'s INBOX as UID {}, \"{}\", verified: {}\n\n",
            w.from, w.to, w.to, w.uid, w.subject, w.verified
        );
        out += "Mail client settings (authentication: normal password; the server names are this machine):\n";
        for account in &self.accounts {
            out += &format!("  {}\n", account.address);
            out += &endpoint_text(
                "IMAP",
                &account.imap,
                "not served by this build (IMAP is not wired into the gateway yet)",
            );
            out += &endpoint_text("SMTP", &account.smtp, "not served");
            out += &format!("    username {}\n    password {}\n", account.username, account.password);
        }
        out += &format!(
            "  TLS: trust the certificate authority {} in the mail client\n    (SHA-256 fingerprint {})\n",
            self.gateway_ca_file.display(),
            self.gateway_ca_fingerprint
        );
        out += &format!(
            "The passwords are kept in {} (mode 0600) so later runs print them again;\n\
             the gateway's configuration is {} (for `setup-client` and `status`).\n",
            self.state_file.display(),
            self.gateway_config.display()
        );
        out
    }
}

/// A running demo: its settings, and what `stop` shuts down.
pub struct Demo {
    pub settings: Settings,
    running: Running,
    server_stop: watch::Sender<bool>,
    server_tasks: Vec<tokio::task::JoinHandle<()>>,
    _lock: std::fs::File,
}

impl Demo {
    /// Stops the gateway (open SMTP transactions finish, the queue is kept), then the server.
    pub async fn stop(self) {
        self.running.stop().await;
        let _ = self.server_stop.send(true);
        for task in self.server_tasks {
            let _ = task.await;
        }
    }
}

/// Resolves once the flag is set or its sender is gone.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn random_text(bytes: usize) -> String {
    let mut secret = vec![0u8; bytes];
    OsRng.fill_bytes(&mut secret);
    hex::encode(secret)
}

/// Starts everything and returns once the welcome message is in the recipient's INBOX.
pub async fn start(options: Options) -> Result<Demo, DemoError> {
    let dir = std::path::absolute(&options.dir).map_err(io("find", &options.dir))?;
    private_dir(&dir)?;
    let lock_path = dir.join("demo.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    if lock.try_lock().is_err() {
        return Err(DemoError::Busy(dir));
    }
    let mut state = State::load(&dir)?;

    // The SMIMP server, on its own development CA.
    let server_dir = dir.join("server");
    private_dir(&server_dir)?;
    let server_listener = listen_on(state.ports.server)?;
    let server_port = port_of(&server_listener)?;
    let server_config_path = server_dir.join("server.toml");
    let server_text = format!(
        "# Written by `smimp-gateway demo` at every start (its port may change); edits are lost.\n\
         [server]\nlisten = \"127.0.0.1:{server_port}\"\ndomain = \"{DOMAIN}\"\npublic_base = \"{DOMAIN}:{server_port}\"\n\
         database = \"server.sqlite\"\n\n[tls]\ndev_ca_dir = \"tls\"\n\n[pow]\ndefault_zero_bits = {}\n",
        options.zero_bits
    );
    std::fs::write(&server_config_path, server_text).map_err(io("write", &server_config_path))?;
    let server_config = ServerConfig::load(&server_config_path)?;
    let admin::Prepared { state: server_state, tls: server_tls, dev_ca_file } =
        admin::prepare(server_config.clone()).await?;
    let server_ca = dev_ca_file.ok_or(AdminError::NoDevCa)?;
    server_listener.set_nonblocking(true).map_err(io("configure", &server_config_path))?;
    let server_listener =
        tokio::net::TcpListener::from_std(server_listener).map_err(io("listen for", &server_config_path))?;
    let (server_stop, server_rx) = watch::channel(false);
    let mut server_tasks = Vec::new();
    {
        let app = crate::server::app(server_state.clone());
        let rx = server_rx.clone();
        let max_connections = server_state.config.limits.max_connections;
        server_tasks.push(tokio::spawn(async move {
            if let Err(err) = crate::server::run(server_listener, server_tls, app, max_connections, stopped(rx)).await {
                tracing::error!(error = %err, "the demo's SMIMP server stopped");
            }
        }));
        server_tasks.push(tokio::spawn(crate::server::purge_loop(server_state.clone(), stopped(server_rx))));
    }

    // The gateway's configuration, on the ports of the last run when they are free.
    let gateway_dir = dir.join("gateway");
    private_dir(&gateway_dir)?;
    let passphrase_path = gateway_dir.join("passphrase.txt");
    if !passphrase_path.exists() {
        write_private(&passphrase_path, format!("{}\n", random_text(32)).as_bytes())?;
    }
    let probes = [state.ports.smtp, state.ports.smtp_tls, state.ports.imap, state.ports.imap_tls]
        .into_iter()
        .map(listen_on)
        .collect::<Result<Vec<_>, _>>()?;
    let ports = probes.iter().map(port_of).collect::<Result<Vec<_>, _>>()?;
    // Released just before the gateway binds them (a small window in which another
    // program could take one; the gateway would then say which port it could not bind).
    drop(probes);
    let gateway_config_path = gateway_dir.join("gateway.toml");
    let gateway_text = format!(
        "# Written by `smimp-gateway demo` at every start (ports may change); edits are lost.\n\
         [gateway]\ndata_dir = \"data\"\n\n\
         # The passphrase lies beside the keystores in this private directory, so stretching\n\
         # it hard would protect nothing here: the demo keeps start-up fast instead.\n\
         [keystore]\npassphrase_file = \"passphrase.txt\"\nkdf_memory_kib = 8192\nkdf_passes = 1\n\n\
         [discovery]\ntrusted_ca_files = [{ca}]\ntimeout = \"10s\"\n\n[discovery.resolve]\n\"{DOMAIN}\" = \"127.0.0.1:{server_port}\"\n\n\
         [smtp]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\n\n\
         [imap]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\n",
        ports[0],
        ports[1],
        ports[2],
        ports[3],
        ca = toml_string(&server_ca.display().to_string()),
    );
    std::fs::write(&gateway_config_path, gateway_text).map_err(io("write", &gateway_config_path))?;
    let ctx = Context::open(&gateway_config_path).await?;

    // The two accounts: reused when an earlier run made them.
    let server_accounts = admin::list_accounts(&server_state.store).await?;
    for user in USERS {
        let address = Address::from_email(&format!("{user}@{DOMAIN}"))
            .map_err(|e| DemoError::Inconsistent { dir: dir.clone(), reason: e.to_string() })?;
        let registered = ctx.store.accounts().await?.into_iter().find(|a| a.address == address);
        let initialised = server_accounts.iter().any(|a| a.address == address && a.initialized);
        match (registered, state.login(&address).cloned()) {
            (Some(_), Some(_)) if initialised => {}
            (Some(record), None) if initialised => {
                // The passwords were lost (the state file was removed): a new one is set.
                let password = random_text(18);
                reset_local_password(&ctx, Path::new(&record.keystore_path), &password)?;
                state.set_login(StoredLogin { address: address.to_email(), username: record.username, password });
                state.save(&dir)?;
            }
            (Some(_), _) => {
                return Err(DemoError::Inconsistent {
                    dir: dir.clone(),
                    reason: format!("the gateway serves {address}, but the demo's server does not know it"),
                })
            }
            (None, _) => {
                let done = create_account(&ctx, &server_config, &server_state.store, &address).await?;
                state.set_login(StoredLogin {
                    address: address.to_email(),
                    username: done.username,
                    password: done.password,
                });
                state.save(&dir)?;
            }
        }
    }

    // The welcome message: queued before the gateway starts, so its delivery worker
    // takes it on its first pass.
    let accounts = unlock_accounts(&ctx).await?;
    let find = |user: &str| {
        accounts.values().find(|a| a.sender.address.local() == user).cloned().ok_or_else(|| DemoError::Inconsistent {
            dir: dir.clone(),
            reason: format!("the gateway has no keystore for {user}@{DOMAIN}"),
        })
    };
    let (sender, recipient) = (find(USERS[0])?, find(USERS[1])?);
    let mailboxes = Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts, 64 << 20);
    let inbox = |account: &Arc<Account>| {
        let (mailboxes, account) = (&mailboxes, account.clone());
        async move {
            mailboxes
                .snapshot(&account, "INBOX", true)
                .await
                .map_err(|source| DemoError::Mailbox { account: account.sender.address.to_email(), source })
        }
    };
    let (_, messages) = inbox(&recipient).await?;
    let already =
        state.welcome_message_id.as_ref().is_some_and(|id| messages.iter().any(|m| m.message_id.to_hex() == *id));
    let mut queue_id = None;
    if !already {
        let waiting = match state.welcome_queue_id {
            Some(id) => ctx.store.outbound(id).await?.filter(|row| row.state == "queued").map(|row| row.id),
            None => None,
        };
        let id = match waiting {
            Some(id) => id,
            None => queue_welcome(&ctx, &sender, &recipient).await?,
        };
        state.welcome_queue_id = Some(id);
        state.welcome_message_id = None;
        state.save(&dir)?;
        queue_id = Some(id);
    }

    let store = ctx.store.clone();
    let stop_server = |server_stop: watch::Sender<bool>, tasks: Vec<tokio::task::JoinHandle<()>>| async move {
        let _ = server_stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    };
    let running = match crate::gateway::start(ctx).await {
        Ok(running) => running,
        Err(err) => {
            stop_server(server_stop, server_tasks).await;
            return Err(err.into());
        }
    };
    let welcome = async {
        if let Some(id) = queue_id {
            let message_id = await_delivery(&store, id).await?;
            state.welcome_message_id = Some(message_id);
            state.welcome_queue_id = None;
            state.save(&dir)?;
        }
        let message_id = state.welcome_message_id.clone().unwrap_or_default();
        let uid = await_in_inbox(&mailboxes, &recipient, &message_id).await?;
        let bytes = mailboxes
            .message(&recipient, "INBOX", uid.into())
            .await
            .map_err(|source| DemoError::Mailbox { account: recipient.sender.address.to_email(), source })?;
        let parsed = mail_parser::MessageParser::new()
            .parse(&bytes[..])
            .ok_or_else(|| DemoError::Welcome("the rendered message does not parse".into()))?;
        // Unfolded: the header may be folded over several lines.
        let verified =
            parsed.header_raw("X-SMIMP-Verified").unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
        if !verified.starts_with("pass") {
            return Err(DemoError::Welcome(format!("it failed verification: {verified:?}")));
        }
        Ok::<_, DemoError>(WelcomeSettings {
            from: sender.sender.address.to_email(),
            to: recipient.sender.address.to_email(),
            subject: parsed.subject().unwrap_or_default().to_string(),
            uid,
            verified,
            sent_by_this_run: queue_id.is_some(),
        })
    };
    let welcome = match welcome.await {
        Ok(welcome) => welcome,
        Err(err) => {
            running.stop().await;
            stop_server(server_stop, server_tasks).await;
            return Err(err);
        }
    };

    state.ports = Ports {
        server: server_port,
        smtp: running.smtp.port(),
        smtp_tls: running.smtp_tls.map_or(ports[1], |a| a.port()),
        imap: running.imap.map_or(ports[2], |a| a.port()),
        imap_tls: running.imap_tls.map_or(ports[3], |a| a.port()),
    };
    state.save(&dir)?;
    let mut logins = Vec::new();
    for user in USERS {
        let address = format!("{user}@{DOMAIN}");
        let login = state.accounts.iter().find(|l| l.address == address).cloned().ok_or_else(|| {
            DemoError::Inconsistent { dir: dir.clone(), reason: format!("no password is kept for {address}") }
        })?;
        logins.push(AccountSettings {
            address: login.address,
            username: login.username,
            password: login.password,
            imap: Endpoint::new(running.imap, running.imap_tls),
            smtp: Endpoint::new(Some(running.smtp), running.smtp_tls),
        });
    }
    let settings = Settings {
        accounts: logins,
        gateway_ca_file: running.ca_file.clone(),
        gateway_ca_fingerprint: running.ca_fingerprint.clone(),
        gateway_config: gateway_config_path,
        server: ServerSettings {
            domain: DOMAIN.into(),
            url: format!("https://{DOMAIN}:{server_port}"),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, server_port)),
            ca_file: server_ca,
            database: server_config.server.database.clone(),
        },
        welcome,
        state_file: dir.join(STATE_FILE),
        dir,
    };
    Ok(Demo { settings, running, server_stop, server_tasks, _lock: lock })
}

/// Adds the account on the demo's server and runs `init` for it, as a new user would.
/// Leftovers of an interrupted earlier attempt (a keystore without registration, an
/// account the server made but nobody initialised) are the demo's own and are replaced.
async fn create_account(
    ctx: &Context,
    config: &ServerConfig,
    store: &crate::server::store::ServerStore,
    address: &Address,
) -> Result<crate::enroll::Initialised, DemoError> {
    let keystore = ctx.config.keystore_path(address);
    if keystore.exists() {
        std::fs::remove_file(&keystore).map_err(io("remove the unfinished keystore", &keystore))?;
    }
    match admin::remove_account(config, store, address.as_str()).await {
        Ok(_) | Err(AdminError::Missing(_)) => {}
        Err(err) => return Err(err.into()),
    }
    let (_, one_time_password) = admin::add_account(config, store, address.as_str(), unix_now()).await?;
    Ok(crate::enroll::init(ctx, &address.to_email(), &one_time_password, unix_now()).await?)
}

/// Gives an account a new mail client password (its keystore keeps only the hash).
fn reset_local_password(ctx: &Context, keystore_path: &Path, password: &str) -> Result<(), DemoError> {
    let _lock = KeystoreLock::take(keystore_path)?;
    let mut keystore = Keystore::load(keystore_path, &ctx.passphrase).map_err(CommandError::from)?;
    keystore.set_local_password(password).map_err(CommandError::from)?;
    keystore.save(keystore_path, &ctx.passphrase, ctx.config.keystore.kdf()).map_err(CommandError::from)?;
    Ok(())
}

/// Converts the welcome message from RFC 5322 as SMTP submission does, and queues it.
async fn queue_welcome(ctx: &Context, from: &Account, to: &Account) -> Result<i64, DemoError> {
    let (sender, recipient) = (from.sender.address.to_email(), to.sender.address.to_email());
    let body = format!(
        "Hello {recipient},\n\n\
         this message left {sender}'s gateway as ordinary mail and travelled end-to-end\n\
         encrypted over SMIMP: the gateway checked your signed key against the key it pinned\n\
         for you, worked out the proof of work, sealed and signed it; your gateway fetched it,\n\
         checked the signature against {sender}'s verified key history, and opened it.\n\
         The X-SMIMP-Verified header says what was checked.\n\n\
         Reply to it from your mail client: the reply takes the same path.\n"
    );
    let message = lettre::Message::builder()
        .from(sender.parse().map_err(|e| DemoError::Welcome(format!("{sender}: {e}")))?)
        .to(recipient.parse().map_err(|e| DemoError::Welcome(format!("{recipient}: {e}")))?)
        .subject(WELCOME_SUBJECT)
        .body(body)
        .map_err(|e| DemoError::Welcome(format!("it cannot be written: {e}")))?;
    let now = unix_now();
    let at = Timestamp::from_unix(now).ok_or_else(|| DemoError::Welcome("the clock is out of range".into()))?;
    let converted =
        email_from_rfc5322(&message.formatted(), std::slice::from_ref(&to.sender.address), &NoThreads, at, &mut OsRng)
            .map_err(|e| DemoError::Welcome(format!("it cannot be converted to SMIMP: {e}")))?;
    let payload = Payload::Email(Box::new(converted.email)).to_bytes();
    let ids = enqueue(
        &ctx.store,
        &from.sender,
        &MessageType::Email,
        &payload,
        &converted.recipients,
        &RetryPolicy::default(),
        now,
    )
    .await?;
    ids.first().copied().ok_or_else(|| DemoError::Welcome("it had no recipient".into()))
}

/// Waits (bounded) until the delivery worker has sent queue row `id`; its SMIMP message id.
async fn await_delivery(store: &crate::store::GatewayStore, id: i64) -> Result<String, DemoError> {
    let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
    loop {
        let row = store.outbound(id).await?.ok_or_else(|| DemoError::Welcome("its queue row vanished".into()))?;
        match (row.state.as_str(), row.message_id) {
            ("sent", Some(message_id)) => return Ok(message_id),
            ("failed", _) => {
                return Err(DemoError::Welcome(format!(
                    "its delivery failed: {}",
                    row.last_error.unwrap_or_else(|| "no reason was recorded".into())
                )))
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(DemoError::Welcome(format!(
                    "it was not delivered within {} s (attempts: {}, last error: {})",
                    WELCOME_TIMEOUT.as_secs(),
                    row.attempts,
                    row.last_error.unwrap_or_else(|| "none".into())
                )))
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Syncs the recipient's INBOX (bounded) until the message shows; its UID.
async fn await_in_inbox(mailboxes: &Mailboxes, account: &Account, message_id: &str) -> Result<u32, DemoError> {
    let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
    loop {
        let (_, messages) = mailboxes
            .snapshot(account, "INBOX", true)
            .await
            .map_err(|source| DemoError::Mailbox { account: account.sender.address.to_email(), source })?;
        if let Some(found) = messages.iter().find(|m| m.message_id.to_hex() == message_id) {
            return Ok(found.uid.get());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::Welcome(format!(
                "it was sent but did not show in {}'s INBOX within {} s",
                account.sender.address.to_email(),
                WELCOME_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smimp-demo-{name}-{}-{}", std::process::id(), random_text(4)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_state_survives_a_restart_and_only_its_owner_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("state");
        assert_eq!(State::load(&dir).unwrap(), State::default(), "no file: a fresh state");
        let mut state = State::default();
        state.set_login(StoredLogin {
            address: "alice@example.test".into(),
            username: "a".into(),
            password: "p".into(),
        });
        state.set_login(StoredLogin {
            address: "alice@example.test".into(),
            username: "a".into(),
            password: "q".into(),
        });
        state.ports.smtp = 2525;
        state.save(&dir).unwrap();
        let loaded = State::load(&dir).unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.accounts.len(), 1, "one login per address");
        assert_eq!(loaded.accounts[0].password, "q");
        let mode = std::fs::metadata(dir.join(STATE_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::write(dir.join(STATE_FILE), "{not json").unwrap();
        let err = State::load(&dir).unwrap_err().to_string();
        assert!(err.contains(STATE_FILE) && err.contains("start afresh"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_free_remembered_port_is_reused_and_a_taken_one_replaced() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let other = listen_on(port).unwrap();
        assert_ne!(other.local_addr().unwrap().port(), port, "a taken port falls back to a free one");
        drop(taken);
        let again = listen_on(port).unwrap();
        assert_eq!(again.local_addr().unwrap().port(), port, "a free remembered port is used again");
    }

    #[test]
    fn the_default_directory_follows_xdg() {
        let dir = default_dir().unwrap();
        assert!(dir.ends_with("smimp-gateway-demo"), "{}", dir.display());
    }

    #[test]
    fn missing_imap_is_said_in_the_text_and_null_in_json() {
        let endpoint = Endpoint::new(None, None);
        assert_eq!(endpoint.port, None);
        let text = endpoint_text("IMAP", &endpoint, "not served");
        assert_eq!(text, "    IMAP  not served\n");
        let json = serde_json::to_value(&endpoint).unwrap();
        assert_eq!(json["port"], serde_json::Value::Null);
        let served = Endpoint::new(Some("127.0.0.1:1143".parse().unwrap()), Some("127.0.0.1:1993".parse().unwrap()));
        assert_eq!(
            endpoint_text("IMAP", &served, "-"),
            "    IMAP  127.0.0.1:1143 STARTTLS, or 127.0.0.1:1993 SSL/TLS\n"
        );
    }

    #[test]
    fn paths_are_quoted_for_toml() {
        assert_eq!(toml_string("/a \"b\"\\c"), "\"/a \\\"b\\\"\\\\c\"");
        let parsed: toml::Value = toml::from_str(&format!("x = {}", toml_string("/a \"b\"\\c"))).unwrap();
        assert_eq!(parsed["x"].as_str(), Some("/a \"b\"\\c"));
    }
}
