//! The gateway product, mirroring `server/`: `start(context, listeners, shutdown)`
//! runs `smimp-gateway run` — it unlocks every registered account's keystore and
//! serves SMTP submission and IMAP (STARTTLS and implicit TLS, with a local certificate
//! made on first run and kept), runs the delivery worker and keeps ephemeral keys
//! topped up, until shutdown. Beside it: its configuration, the context its commands
//! share, the account commands, `status` and `setup-client`.
//!
//! Nothing below the gateway imports from it: the backend, the front-ends and the
//! client take their own settings types.

pub mod config;
pub mod context;
pub mod devices;
pub mod enroll;
pub mod pins;
pub mod setup_client;
pub mod status;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::backend::account::Account;
use crate::backend::key_upkeep::key_upkeep_loop;
use crate::backend::mailbox::Mailboxes;
use crate::backend::outbound::{PowBudget, RetryPolicy};
use crate::backend::relay::Relays;
use crate::backend::submission::{delivery_loop, SubmissionBackend};
use crate::gateway::context::{CommandError, Context};
use crate::imap::ImapConfig;
use crate::keystore::Keystore;
use crate::listen::Shutdown;
use crate::smtp::{SmtpConfig, TlsMode};

/// The gateway's sockets, bound by the caller: `bind` for the configured addresses,
/// or listeners the caller made itself (the demo, tests on port 0).
pub struct Listeners {
    pub smtp: TcpListener,
    pub smtp_tls: Option<TcpListener>,
    pub imap: TcpListener,
    pub imap_tls: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of the configuration's `[smtp]` and `[imap]` sections.
    pub async fn bind(ctx: &Context) -> Result<Listeners, CommandError> {
        let (smtp, imap) = (&ctx.config.smtp, &ctx.config.imap);
        Ok(Listeners {
            smtp: bind(ctx, "SMTP", smtp.listen).await?,
            smtp_tls: bind_optional(ctx, "SMTP", smtp.tls_listen).await?,
            imap: bind(ctx, "IMAP", imap.listen).await?,
            imap_tls: bind_optional(ctx, "IMAP", imap.tls_listen).await?,
        })
    }

    /// Where the listeners are bound (port 0 resolved).
    pub fn addresses(&self) -> std::io::Result<Addresses> {
        let optional = |l: &Option<TcpListener>| l.as_ref().map(TcpListener::local_addr).transpose();
        Ok(Addresses {
            smtp: self.smtp.local_addr()?,
            smtp_tls: optional(&self.smtp_tls)?,
            imap: self.imap.local_addr()?,
            imap_tls: optional(&self.imap_tls)?,
        })
    }
}

async fn bind(ctx: &Context, what: &str, addr: SocketAddr) -> Result<TcpListener, CommandError> {
    TcpListener::bind(addr).await.map_err(|e| CommandError::Unreachable {
        domain: format!("cannot listen for {what} on {addr}"),
        reason: e.to_string(),
        config: ctx.config_path.display().to_string(),
    })
}

async fn bind_optional(
    ctx: &Context,
    what: &str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, CommandError> {
    match addr {
        Some(addr) => Ok(Some(bind(ctx, what, addr).await?)),
        None => Ok(None),
    }
}

/// Where a started gateway listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub smtp: SocketAddr,
    pub smtp_tls: Option<SocketAddr>,
    /// IMAP with STARTTLS, and IMAP over implicit TLS.
    pub imap: SocketAddr,
    pub imap_tls: Option<SocketAddr>,
}

/// A started gateway: where it listens, what clients must trust, and its tasks.
pub struct Running {
    pub addresses: Addresses,
    /// The CA certificate mail clients must trust for the gateway's TLS.
    pub ca_file: PathBuf,
    /// Its SHA-256 fingerprint, to compare with what the mail client shows.
    pub ca_fingerprint: String,
    pub accounts: Vec<String>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits for every part to end once shutdown was requested: listeners stop
    /// accepting, open SMTP transactions finish, the queue is kept.
    pub async fn finished(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The gateway's local TLS certificates, made on first use and kept: a private CA the
/// mail client trusts once, confined to this machine by name constraints, and a
/// certificate for localhost, 127.0.0.1 and ::1.
pub fn local_certificates(
    config: &crate::gateway::config::GatewayConfig,
) -> Result<crate::tls::DevCertificates, CommandError> {
    let names = ["localhost", "127.0.0.1", "::1"].map(String::from);
    Ok(crate::tls::ensure_loopback_certificates(&config.tls_dir(), &names)?)
}

/// Every registered account, its keystore unlocked, by lowercase user name.
pub async fn unlock_accounts(ctx: &Context) -> Result<HashMap<String, Arc<Account>>, CommandError> {
    let mut accounts = HashMap::new();
    for record in ctx.store.accounts().await? {
        let path = PathBuf::from(&record.keystore_path);
        let keystore = Keystore::load(&path, &ctx.passphrase)?;
        let account = Account::new(record.username.clone(), keystore, Some((path, ctx.passphrase.clone())));
        accounts.insert(record.username.to_ascii_lowercase(), Arc::new(account));
    }
    Ok(accounts)
}

/// Unlocks the accounts and serves on `listeners` until `shutdown`.
pub async fn start(ctx: Context, listeners: Listeners, shutdown: Shutdown) -> Result<Running, CommandError> {
    let accounts = unlock_accounts(&ctx).await?;
    // Progress rows left by a gateway that was killed describe work no one is doing.
    ctx.store.clear_all_progress().await?;
    let certs = local_certificates(&ctx.config)?;
    let ca_fingerprint = crate::tls::sha256_fingerprint(&certs.ca_file)?;
    let tls = crate::tls::mail_server_config(&certs.cert_file, &certs.key_file)?;
    let addresses = listeners.addresses().map_err(|e| CommandError::Unreachable {
        domain: "the gateway's listening sockets".into(),
        reason: e.to_string(),
        config: ctx.config_path.display().to_string(),
    })?;
    let account_names: Vec<String> = accounts.values().map(|a| a.username.clone()).collect();
    let mailboxes = Arc::new(
        Mailboxes::new(ctx.store.clone(), ctx.discovery.clone(), accounts.clone(), ctx.config.imap.cache_max_bytes)
            .with_hot_cache_bytes(ctx.config.imap.hot_cache_bytes)
            .with_keystore_kdf(ctx.config.keystore.kdf()),
    );
    let gateway = Arc::new(submission_backend(&ctx, accounts)?);
    let Listeners { smtp, smtp_tls, imap, imap_tls } = listeners;
    let smtp_config = SmtpConfig { max_message_size: ctx.config.smtp.max_message_size, ..SmtpConfig::default() };
    let imap_config = ImapConfig { poll_interval: ctx.config.imap.poll_interval, ..ImapConfig::default() };
    let mut tasks = Vec::new();
    for (listener, mode) in [(Some(smtp), TlsMode::StartTls), (smtp_tls, TlsMode::Implicit)] {
        let Some(listener) = listener else { continue };
        let serving =
            crate::smtp::run(listener, Some(tls.clone()), mode, gateway.clone(), smtp_config.clone(), shutdown.clone());
        tasks.push(spawn_logged(serving, "SMTP", mode == TlsMode::Implicit));
    }
    for (listener, mode) in [(Some(imap), crate::imap::TlsMode::StartTls), (imap_tls, crate::imap::TlsMode::Implicit)] {
        let Some(listener) = listener else { continue };
        let serving = crate::imap::run(
            listener,
            Some(tls.clone()),
            mode,
            mailboxes.clone(),
            imap_config.clone(),
            shutdown.clone(),
        );
        tasks.push(spawn_logged(serving, "IMAP", mode == crate::imap::TlsMode::Implicit));
    }
    let upkept: Vec<Arc<Account>> = gateway.accounts.values().cloned().collect();
    tasks.push(tokio::spawn(delivery_loop(gateway, Duration::from_secs(30), shutdown.clone())));
    let supply = ctx.key_supply();
    let pins = crate::gateway::pins::PinSettings { data_dir: ctx.config.gateway.data_dir.clone(), kdf: supply.kdf };
    let pinned = upkept.clone();
    tasks.push(tokio::spawn(crate::gateway::pins::pin_approval_loop(
        ctx.discovery.clone(),
        pinned,
        pins,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(key_upkeep_loop(ctx.discovery.clone(), upkept, supply, shutdown)));
    Ok(Running { addresses, ca_file: certs.ca_file, ca_fingerprint, accounts: account_names, tasks })
}

/// Runs a front-end's listener as a task that logs why it stopped, if it failed.
fn spawn_logged(
    serving: impl std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    what: &'static str,
    implicit: bool,
) -> JoinHandle<()> {
    let mode = if implicit { "implicit TLS" } else { "STARTTLS" };
    tokio::spawn(async move {
        if let Err(err) = serving.await {
            tracing::error!(error = %err, "{what} ({mode}) stopped");
        }
    })
}

/// The SMTP side of the backend: accounts, queue, relays, retry policy.
fn submission_backend(
    ctx: &Context,
    accounts: HashMap<String, Arc<Account>>,
) -> Result<SubmissionBackend, CommandError> {
    let relays = Relays::from_config(&ctx.config.relay)
        .map_err(|e| CommandError::Relay { reason: e.to_string(), config: ctx.config_path.display().to_string() })?;
    for domain in ctx.config.relay.keys() {
        tracing::warn!(
            domain,
            "mail to this domain is relayed as plain email, not end-to-end encrypted ([relay] in the configuration)"
        );
    }
    Ok(SubmissionBackend {
        store: ctx.store.clone(),
        discovery: ctx.discovery.clone(),
        policy: RetryPolicy {
            pow: PowBudget::new(ctx.config.delivery.max_pow_bits, ctx.config.delivery.pow_lane_from_bits),
            ..RetryPolicy::default()
        },
        accounts,
        relays: Arc::new(relays),
        queued: Arc::new(tokio::sync::Notify::new()),
    })
}
