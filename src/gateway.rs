//! `smimp-gateway run`: the gateway's long-running part. Unlocks every registered
//! account's keystore, serves SMTP submission (STARTTLS and implicit TLS, with a
//! certificate made on first run and kept), and runs the delivery worker, until
//! shutdown, and IMAP (STARTTLS and implicit TLS, same certificate) over the
//! decrypted, verified mailbox.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::backend::mailbox::Mailboxes;
use crate::backend::outbound::RetryPolicy;
use crate::backend::relay::Relays;
use crate::backend::submission::{delivery_loop, Account, Gateway};
use crate::enroll::{CommandError, Context};
use crate::imap::ImapConfig;
use crate::keystore::Keystore;
use crate::smtp::{SmtpConfig, TlsMode};

/// A started gateway: where it listens, and how to stop it.
pub struct Running {
    pub smtp: SocketAddr,
    pub smtp_tls: Option<SocketAddr>,
    /// IMAP with STARTTLS, and IMAP over implicit TLS.
    pub imap: Option<SocketAddr>,
    pub imap_tls: Option<SocketAddr>,
    /// The CA certificate mail clients must trust for the gateway's TLS.
    pub ca_file: PathBuf,
    /// Its SHA-256 fingerprint, to compare with what the mail client shows.
    pub ca_fingerprint: String,
    pub accounts: Vec<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets open SMTP transactions finish, keeps the queue.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The gateway's local TLS certificates, made on first use and kept: a private CA the
/// mail client trusts once, confined to this machine by name constraints, and a
/// certificate for localhost, 127.0.0.1 and ::1.
pub fn local_certificates(config: &crate::config::GatewayConfig) -> Result<crate::tls::DevCertificates, CommandError> {
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

/// Unlocks the accounts, binds the listeners and starts serving.
pub async fn start(ctx: Context) -> Result<Running, CommandError> {
    let accounts = unlock_accounts(&ctx).await?;
    // Progress rows left by a gateway that was killed describe work no one is doing.
    ctx.store.clear_all_progress().await?;
    let io = |what: &str, addr: SocketAddr, e: std::io::Error| CommandError::Unreachable {
        domain: format!("{what} {addr}"),
        reason: e.to_string(),
        config: ctx.config_path.display().to_string(),
    };
    let certs = local_certificates(&ctx.config)?;
    let fingerprint = crate::tls::sha256_fingerprint(&certs.ca_file)?;
    let tls = crate::tls::server_config(&certs.cert_file, &certs.key_file)?;
    let smtp_config = SmtpConfig { max_message_size: ctx.config.smtp.max_message_size, ..SmtpConfig::default() };
    let listen = ctx.config.smtp.listen;
    let plain = TcpListener::bind(listen).await.map_err(|e| io("cannot listen for SMTP on", listen, e))?;
    let implicit = match ctx.config.smtp.tls_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| io("cannot listen for SMTP on", addr, e))?),
        None => None,
    };
    let smtp = plain.local_addr().map_err(|e| io("cannot read the address of", listen, e))?;
    let smtp_tls = implicit.as_ref().and_then(|l| l.local_addr().ok());
    let imap_listen = ctx.config.imap.listen;
    let imap_plain =
        TcpListener::bind(imap_listen).await.map_err(|e| io("cannot listen for IMAP on", imap_listen, e))?;
    let imap_implicit = match ctx.config.imap.tls_listen {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| io("cannot listen for IMAP on", addr, e))?),
        None => None,
    };
    let imap = imap_plain.local_addr().map_err(|e| io("cannot read the address of", imap_listen, e))?;
    let imap_tls = imap_implicit.as_ref().and_then(|l| l.local_addr().ok());
    let account_names: Vec<String> = accounts.values().map(|a| a.username.clone()).collect();
    let mailboxes = Arc::new(Mailboxes::new(
        ctx.store.clone(),
        ctx.discovery.clone(),
        accounts.clone(),
        ctx.config.imap.cache_max_bytes,
    ));
    let imap_config = ImapConfig { poll_interval: ctx.config.imap.poll_interval, ..ImapConfig::default() };
    let relays = Relays::from_config(&ctx.config.relay)
        .map_err(|e| CommandError::Relay { reason: e.to_string(), config: ctx.config_path.display().to_string() })?;
    for domain in ctx.config.relay.keys() {
        tracing::warn!(
            domain,
            "mail to this domain is relayed as plain email, not end-to-end encrypted ([relay] in the configuration)"
        );
    }
    let gateway = Arc::new(Gateway {
        store: ctx.store.clone(),
        discovery: ctx.discovery.clone(),
        policy: RetryPolicy::default(),
        accounts,
        relays: Arc::new(relays),
        queued: Arc::new(tokio::sync::Notify::new()),
    });
    let (stop, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    {
        let (gateway, tls, config, rx) = (gateway.clone(), tls.clone(), smtp_config.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = crate::smtp::run(plain, Some(tls), TlsMode::StartTls, gateway, config, stopped(rx)).await
            {
                tracing::error!(error = %err, "SMTP (STARTTLS) stopped");
            }
        }));
    }
    if let Some(implicit) = implicit {
        let (gateway, tls, config, rx) = (gateway.clone(), tls.clone(), smtp_config.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) =
                crate::smtp::run(implicit, Some(tls), TlsMode::Implicit, gateway, config, stopped(rx)).await
            {
                tracing::error!(error = %err, "SMTP (implicit TLS) stopped");
            }
        }));
    }
    for (listener, mode, what) in [
        (Some(imap_plain), crate::imap::TlsMode::StartTls, "IMAP (STARTTLS)"),
        (imap_implicit, crate::imap::TlsMode::Implicit, "IMAP (implicit TLS)"),
    ] {
        let Some(listener) = listener else { continue };
        let (mailboxes, tls, config, rx) = (mailboxes.clone(), tls.clone(), imap_config.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = crate::imap::run(listener, Some(tls), mode, mailboxes, config, stopped(rx)).await {
                tracing::error!(error = %err, "{what} stopped");
            }
        }));
    }
    let upkept: Vec<Arc<Account>> = gateway.accounts.values().cloned().collect();
    tasks.push(tokio::spawn(delivery_loop(gateway, Duration::from_secs(30), stopped(rx.clone()))));
    tasks.push(tokio::spawn(crate::key_upkeep::key_upkeep_loop(Arc::new(ctx), upkept, stopped(rx))));
    Ok(Running {
        smtp,
        smtp_tls,
        imap: Some(imap),
        imap_tls,
        ca_file: certs.ca_file,
        ca_fingerprint: fingerprint,
        accounts: account_names,
        stop,
        tasks,
    })
}
