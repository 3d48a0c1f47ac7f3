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
use std::time::Duration;

use rand_core::{OsRng, RngCore};

mod accounts;
mod gateway;
mod server;
mod settings;
mod state;
mod welcome;

pub use settings::{AccountSettings, Endpoint, ServerSettings, Settings, WelcomeSettings};

use crate::backend::mailbox::{MailboxError, Mailboxes};
use crate::config_file::ConfigError;
use crate::gateway::context::{CommandError, Context};
use crate::gateway::{unlock_accounts, Running};
use crate::listen::{Shutdown, StopHandle};
use crate::server::admin::AdminError;
use crate::store::StoreError;
use server::DemoServer;
use state::{private_dir, write_private, State};

/// The demo's mail domain: `.test` is reserved (RFC 2606), so it can never be a real one.
pub const DOMAIN: &str = "example.test";
/// The two accounts: the first sends the welcome message to the second.
pub const USERS: [&str; 2] = ["alice", "bob"];
pub(crate) const STATE_FILE: &str = "demo-state.json";
pub(crate) const WELCOME_SUBJECT: &str = "Welcome to SMIMP";
/// How long the welcome message may take to be delivered and to show in the INBOX.
pub(crate) const WELCOME_TIMEOUT: Duration = Duration::from_secs(180);

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
    #[error("cannot write the configuration {path}: {reason}")]
    ConfigText { path: PathBuf, reason: String },
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

/// A listener on the port of the last run when it is still free, or on a free port the
/// system picks, so a mail client set up once keeps working while nothing collides.
fn listen_on(remembered: u16) -> Result<tokio::net::TcpListener, DemoError> {
    let at = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let bound = match remembered {
        0 => None,
        port => std::net::TcpListener::bind(at(port)).ok(),
    };
    if remembered != 0 && bound.is_none() {
        tracing::info!(port = remembered, "the port of the last run is taken; using a free one");
    }
    let any = at(0);
    let failed = |source| DemoError::Io { action: "listen on", path: any.to_string().into(), source };
    let listener = match bound {
        Some(listener) => listener,
        None => std::net::TcpListener::bind(any).map_err(failed)?,
    };
    listener.set_nonblocking(true).map_err(failed)?;
    tokio::net::TcpListener::from_std(listener).map_err(failed)
}

fn random_text(bytes: usize) -> String {
    let mut secret = vec![0u8; bytes];
    OsRng.fill_bytes(&mut secret);
    hex::encode(secret)
}

/// A running demo: its settings, and what `stop` shuts down.
pub struct Demo {
    pub settings: Settings,
    gateway: Running,
    gateway_stop: StopHandle,
    server: DemoServer,
    _lock: std::fs::File,
}

impl Demo {
    /// Stops the gateway (open SMTP transactions finish, the queue is kept), then the server.
    pub async fn stop(self) {
        self.gateway_stop.stop();
        self.gateway.finished().await;
        self.server.stop().await;
    }
}

/// Starts everything and returns once the welcome message is in the recipient's INBOX.
/// Whatever fails after the server started, the server is stopped before the error
/// is returned (and, should this future be dropped, when its guard is).
pub async fn start(options: Options) -> Result<Demo, DemoError> {
    let dir = std::path::absolute(&options.dir).map_err(io("find", &options.dir))?;
    private_dir(&dir)?;
    let lock_path = dir.join("demo.lock");
    let lock = std::fs::File::create(&lock_path).map_err(io("create", &lock_path))?;
    if lock.try_lock().is_err() {
        return Err(DemoError::Busy(dir));
    }
    let mut state = State::load(&dir)?;
    let server = DemoServer::start(&dir, state.ports.server, options.zero_bits).await?;
    match with_server(&dir, &server, &mut state).await {
        Ok((settings, gateway, gateway_stop)) => Ok(Demo { settings, gateway, gateway_stop, server, _lock: lock }),
        Err(err) => {
            server.stop().await;
            Err(err)
        }
    }
}

/// Everything after the server: the gateway's configuration, the accounts, the
/// welcome message, the gateway itself (stopped again if the welcome fails).
async fn with_server(
    dir: &Path,
    server: &DemoServer,
    state: &mut State,
) -> Result<(Settings, Running, StopHandle), DemoError> {
    let gateway_dir = dir.join("gateway");
    private_dir(&gateway_dir)?;
    let passphrase_path = gateway_dir.join("passphrase.txt");
    if !passphrase_path.exists() {
        write_private(&passphrase_path, format!("{}\n", random_text(32)).as_bytes())?;
    }
    let listeners = gateway::bind(&state.ports)?;
    let at = listeners.addresses().map_err(io("read the address of", Path::new("a gateway listener")))?;
    let ports = gateway::ports(&at, server.port);
    let config_path = gateway_dir.join("gateway.toml");
    gateway::write_config(&config_path, &gateway::config(&at, server.address(), &server.ca_file))?;
    let ctx = Context::open(&config_path).await?;
    accounts::ensure(&ctx, server, state, dir).await?;
    let accounts = unlock_accounts(&ctx).await?;
    let find = |user: &str| {
        accounts.values().find(|a| a.sender.address.local() == user).cloned().ok_or_else(|| DemoError::Inconsistent {
            dir: dir.into(),
            reason: format!("the gateway has no keystore for {user}@{DOMAIN}"),
        })
    };
    let (sender, recipient) = (find(USERS[0])?, find(USERS[1])?);
    let mailboxes = Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts, 64 << 20);
    let welcome = welcome::Welcome { sender, recipient, mailboxes: &mailboxes };
    let queued = welcome.queue_if_needed(&ctx, state, dir).await?;
    let store = ctx.store.clone();
    let (gateway_stop, shutdown) = Shutdown::new();
    let running = crate::gateway::start(ctx, listeners, shutdown).await?;
    let greeted = match welcome.confirm(&store, queued, state, dir).await {
        Ok(greeted) => greeted,
        Err(err) => {
            gateway_stop.stop();
            running.finished().await;
            return Err(err);
        }
    };
    state.ports = ports;
    state.save(dir)?;
    let settings = settings::build(state, &running, server, greeted, config_path, dir)?;
    Ok((settings, running, gateway_stop))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("smimp-demo-{name}-{}-{}", std::process::id(), random_text(4)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_free_remembered_port_is_reused_and_a_taken_one_replaced() {
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
}
