//! `smimp-gateway`: the command line. Parses arguments, builds the concrete types
//! and runs them; the only place `anyhow` is used.

use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use rand_core::OsRng;

use std::path::PathBuf;

use smimp_gateway::enroll;
use smimp_gateway::server::admin;
use smimp_gateway::server::config::ServerConfig;
use smimp_gateway::server::store::ServerStore;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::{BoxNonce, MasterKey};
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::envelope::{
    login_token_hash, Ciphertext, HashContext, ReceivedVia, ServerFields, StoredEnvelope, PROTOCOL_VERSION,
};
use smimp_gateway::smimp::keys::{KeyKind, SignedMessageKey};
use smimp_gateway::smimp::message::{Email, MessageType, Payload};
use smimp_gateway::smimp::pow::{leading_zero_bits, PowParams, Preimage, SolveControl};
use smimp_gateway::smimp::profile::{verify_history, ProfileFields, ProfileRecord};
use smimp_gateway::smimp::timestamp::Timestamp;

/// End-to-end encrypted mail (SMIMP) for the mail clients people already have.
#[derive(Parser)]
#[command(name = "smimp-gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine: a SMIMP server for example.test on loopback
    /// (with its own CA), two accounts (alice@ and bob@example.test) set up with `init`,
    /// the gateway serving both, and a welcome message from alice to bob through the
    /// full encrypted path; then print what a mail client needs, and serve until Ctrl-C
    /// or SIGTERM.
    ///
    /// Ports: those of the previous run in the same directory when they are still
    /// free, otherwise free ports the system picks (127.0.0.1:0). State, including the
    /// mail client passwords (demo-state.json, mode 0600), stays in --dir, so a second
    /// run reuses the accounts.
    Demo {
        /// The state directory [default: $XDG_DATA_HOME/smimp-gateway-demo, or
        /// ~/.local/share/smimp-gateway-demo].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print the settings as one JSON object on stdout (logs go to stderr), for scripts.
        #[arg(long)]
        json: bool,
        /// Instead, walk one message through the SMIMP protocol core in this process only:
        /// two new identities, their signed histories and pins, a signed message key,
        /// proof of work on all cores, seal, verify and open.
        #[arg(long)]
        offline: bool,
        /// Proof-of-work difficulty in leading zero bits (the demo server's, or the
        /// offline walk's).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=40))]
        zero_bits: u32,
    },
    /// Create this gateway's identity for an account: keys, initialisation at the
    /// account's SMIMP server, the encrypted keystore, and the local mail-client login.
    Init {
        /// The gateway's configuration file (see config/gateway.example.toml).
        #[arg(long)]
        config: PathBuf,
        /// The account, as alice@example.org.
        #[arg(long)]
        address: String,
        /// A file holding the one-time initialisation password the server's administrator
        /// gave (prompted for when absent; never given on the command line).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Run the gateway for every account set up with `init`: SMTP submission with
    /// delivery of queued mail, and IMAP over the decrypted, verified mailbox.
    Run {
        /// The gateway's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the CA certificate of the gateway's local TLS (PEM, on stdout) for the
    /// mail client to trust, and its SHA-256 fingerprint (on stderr).
    ExportCa {
        /// The gateway's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the settings of Thunderbird, Outlook and Apple Mail for this gateway's
    /// accounts (servers, ports, security, login, the CA to trust and how), and
    /// optionally write a Thunderbird autoconfig file.
    SetupClient {
        /// The gateway's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Only this account (as alice@example.org); all accounts when absent.
        #[arg(long)]
        account: Option<String>,
        /// Write the account's Thunderbird autoconfig file (config-v1.1.xml format) here;
        /// needs --account when the gateway serves several.
        #[arg(long, value_name = "OUT.xml")]
        thunderbird_autoconfig: Option<PathBuf>,
    },
    /// Show the accounts, the outbound queue, recent deliveries and recent trust events
    /// (from the gateway's database; never message content).
    Status {
        /// The gateway's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// How many recent deliveries and trust events to show.
        #[arg(long, default_value_t = 10)]
        recent: u32,
    },
    /// Manage an account's keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage an account's public profile.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// The reference SMIMP server: serves HTTPS with `--config FILE`, or administers it.
    Server {
        /// The server's configuration file (see config/server.example.toml).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<ServerAction>,
    },
}

#[derive(clap::Args)]
struct AccountArgs {
    /// The gateway's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// The account, as alice@example.org.
    #[arg(long)]
    address: String,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Replace the non-ephemeral message key, or (with --master) the master key by a
    /// signed profile update that everyone who pinned the old key will accept.
    Rotate {
        #[command(flatten)]
        account: AccountArgs,
        /// Rotate the master key instead of the non-ephemeral key.
        #[arg(long)]
        master: bool,
    },
    /// Top the server's supply of ephemeral keys up to keys.ephemeral_target.
    Replenish {
        #[command(flatten)]
        account: AccountArgs,
    },
}

#[derive(Subcommand)]
enum ProfileAction {
    /// Publish new profile fields as the next signed record of the history.
    Update {
        #[command(flatten)]
        account: AccountArgs,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Web site (https://…).
        #[arg(long)]
        website: Option<String>,
        /// Other profiles the user claims (repeat for several).
        #[arg(long = "profile")]
        profiles: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ServerAction {
    /// Create an uninitialised account and print its one-time initialisation password.
    AddAccount {
        /// The account's address (alice#example.org or alice@example.org).
        address: String,
    },
    /// List the accounts and whether each is initialised.
    ListAccounts,
    /// Delete an account and everything stored for it.
    RemoveAccount {
        /// The account's address.
        address: String,
    },
    /// Print the development CA certificate (PEM) that clients must trust.
    ExportCa,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo { offline: true, zero_bits, .. } => demo(zero_bits),
        Command::Demo { dir, json, zero_bits, offline: false } => {
            // Mail-client settings are the demo's output: routine logs would bury them.
            init_tracing_with(if json { "info" } else { "warn" });
            run_demo(dir, json, zero_bits)
        }
        Command::SetupClient { config, account, thunderbird_autoconfig } => block_on(async move {
            let settings = smimp_gateway::setup_client::settings(&config, account.as_deref()).await?;
            for (index, account) in settings.iter().enumerate() {
                if index > 0 {
                    println!();
                }
                print!("{}", smimp_gateway::setup_client::instructions(account));
            }
            if let Some(out) = thunderbird_autoconfig {
                let [account] = settings.as_slice() else {
                    bail!("this gateway serves several accounts: choose one for the autoconfig file with --account ADDRESS");
                };
                std::fs::write(&out, smimp_gateway::setup_client::thunderbird_autoconfig(account))
                    .with_context(|| format!("cannot write the autoconfig file {}", out.display()))?;
                println!("\nwrote the Thunderbird autoconfig file for {} to {}", account.address, out.display());
            }
            Ok(())
        }),
        Command::Status { config, recent } => block_on(async move {
            print!("{}", smimp_gateway::status::read(&config, recent).await?);
            Ok(())
        }),
        Command::Init { config, address, password_file } => {
            let password = match password_file {
                Some(file) => std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the one-time password from {}", file.display()))?,
                None => prompt("One-time initialisation password (from the server's administrator): ")?,
            };
            block_on(async move {
                let ctx = enroll::Context::open(&config).await?;
                let done = enroll::init(&ctx, &address, &password, unix_now()?).await?;
                println!("initialised {} (keystore {})", done.address.to_email(), done.keystore.display());
                println!("mail client login for this gateway:");
                println!("  username: {}", done.username);
                println!("  password: {}", done.password);
                println!("keep the password: it is stored only as a hash in the keystore");
                Ok(())
            })
        }
        Command::Run { config } => block_on(async move {
            let shutdown = shutdown_signals()?;
            let ctx = enroll::Context::open(&config).await?;
            let running = smimp_gateway::gateway::start(ctx).await?;
            smimp_gateway::notify::ready();
            println!("smimp-gateway is running for: {}", running.accounts.join(", "));
            println!("  SMTP submission: {} (STARTTLS)", running.smtp);
            if let Some(tls) = running.smtp_tls {
                println!("  SMTP submission: {tls} (implicit TLS)");
            }
            if let Some(imap) = running.imap {
                println!("  IMAP: {imap} (STARTTLS)");
            }
            if let Some(tls) = running.imap_tls {
                println!("  IMAP: {tls} (implicit TLS)");
            }
            println!("  TLS certificate authority to trust in the mail client: {}", running.ca_file.display());
            println!("  its SHA-256 fingerprint: {}", running.ca_fingerprint);
            shutdown.await;
            smimp_gateway::notify::stopping();
            tracing::info!("shutting down: open SMTP transactions finish, the queue is kept");
            running.stop().await;
            Ok(())
        }),
        Command::ExportCa { config } => {
            let loaded = smimp_gateway::config::GatewayConfig::load(&config)?;
            let certs = smimp_gateway::gateway::local_certificates(&loaded)?;
            let pem = std::fs::read_to_string(&certs.ca_file)
                .with_context(|| format!("cannot read {}", certs.ca_file.display()))?;
            eprintln!("SHA-256 fingerprint: {}", smimp_gateway::tls::sha256_fingerprint(&certs.ca_file)?);
            print!("{pem}");
            Ok(())
        }
        Command::Keys { action } => block_on(async move {
            match action {
                KeysAction::Rotate { account, master } => {
                    let ctx = enroll::Context::open(&account.config).await?;
                    let which = if master { enroll::Rotate::Master } else { enroll::Rotate::Nonephemeral };
                    let key = enroll::rotate(&ctx, &account.address, which, unix_now()?).await?;
                    let what = if master { "master key" } else { "non-ephemeral key" };
                    println!("new {what} of {}: {key}", account.address);
                }
                KeysAction::Replenish { account } => {
                    let ctx = enroll::Context::open(&account.config).await?;
                    let added = enroll::replenish(&ctx, &account.address, unix_now()?).await?;
                    println!("added {added} ephemeral keys for {}", account.address);
                }
            }
            Ok(())
        }),
        Command::Profile { action: ProfileAction::Update { account, name, website, profiles } } => {
            block_on(async move {
                let ctx = enroll::Context::open(&account.config).await?;
                let fields = ProfileFields { name, website, profiles, additional_data: None };
                let length = enroll::update_profile(&ctx, &account.address, fields, unix_now()?).await?;
                println!("profile of {} updated: the history has {length} records", account.address);
                Ok(())
            })
        }
        Command::Server { config, action } => {
            let config = config.context("--config FILE is required: the server's configuration file")?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(server(config, action))
        }
    }
}

fn block_on(work: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    init_tracing();
    tokio::runtime::Runtime::new().context("cannot start the async runtime")?.block_on(work)
}

fn unix_now() -> Result<i64> {
    Ok(i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?)
}

/// Reads one line from standard input, prompting on standard error when it is a terminal.
fn prompt(question: &str) -> Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("{question}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    if line.trim().is_empty() {
        bail!("no password was given: type it at the prompt or use --password-file FILE");
    }
    Ok(line.trim().to_string())
}

fn init_tracing() {
    init_tracing_with("info");
}

/// Logs to stderr at `default` level unless RUST_LOG says otherwise; the first call wins.
fn init_tracing_with(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn server(path: PathBuf, action: Option<ServerAction>) -> Result<()> {
    init_tracing();
    let config = ServerConfig::load(&path)?;
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs())?;
    match action {
        None => serve(config).await,
        Some(ServerAction::ExportCa) => {
            let (_, ca) = admin::tls_for(&config)?;
            let ca = ca.ok_or(admin::AdminError::NoDevCa)?;
            print!("{}", std::fs::read_to_string(&ca).with_context(|| format!("cannot read {}", ca.display()))?);
            Ok(())
        }
        Some(other) => {
            let store = ServerStore::open(&config.server.database).await?;
            match other {
                ServerAction::AddAccount { address } => {
                    let (address, password) = admin::add_account(&config, &store, &address, now).await?;
                    println!("created {address}");
                    println!("one-time initialisation password: {password}");
                }
                ServerAction::ListAccounts => {
                    for account in admin::list_accounts(&store).await? {
                        let state = if account.initialized { "initialised" } else { "waiting for initialisation" };
                        println!("{}\t{state}", account.address);
                    }
                }
                ServerAction::RemoveAccount { address } => {
                    let address = admin::remove_account(&config, &store, &address).await?;
                    println!("removed {address} and all its data");
                }
                ServerAction::ExportCa => unreachable!("handled above"),
            }
            Ok(())
        }
    }
}

async fn serve(config: ServerConfig) -> Result<()> {
    let shutdown = shutdown_signals()?;
    let listen = config.server.listen;
    let prepared = admin::prepare(config).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let state = prepared.state.clone();
    tracing::info!(
        address = %listener.local_addr()?,
        domain = %state.config.server.domain,
        ca = ?prepared.dev_ca_file,
        "SMIMP server listening (HTTPS only)"
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let purge = {
        let mut rx = stop_rx.clone();
        tokio::spawn(smimp_gateway::server::purge_loop(state.clone(), async move {
            let _ = rx.changed().await;
        }))
    };
    let max_connections = state.config.limits.max_connections;
    let app = smimp_gateway::server::app(state);
    let mut rx = stop_rx;
    let served = smimp_gateway::server::run(listener, prepared.tls, app, max_connections, async move {
        let _ = rx.changed().await;
    });
    tokio::pin!(served);
    smimp_gateway::notify::ready();
    let result = tokio::select! {
        result = &mut served => result,
        () = shutdown => {
            smimp_gateway::notify::stopping();
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
            served.await
        }
    };
    let _ = stop_tx.send(true);
    let _ = purge.await;
    Ok(result?)
}

/// Takes over SIGTERM and SIGINT (Ctrl-C) now, and returns what resolves when one
/// arrives. Installed before anything starts, so a signal sent as soon as the process
/// reports ready (systemd, a test) shuts it down cleanly instead of killing it.
fn shutdown_signals() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// The networked demo: starts it, prints the settings (text or one JSON object) once
/// the welcome message has arrived, serves until a signal, and stops cleanly.
fn run_demo(dir: Option<PathBuf>, json: bool, zero_bits: u32) -> Result<()> {
    let dir = match dir {
        Some(dir) => dir,
        None => smimp_gateway::demo::default_dir()?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        use std::io::Write;
        let shutdown = shutdown_signals()?;
        let demo = smimp_gateway::demo::start(smimp_gateway::demo::Options { dir, zero_bits }).await?;
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", serde_json::to_string(&demo.settings)?)?;
        } else {
            write!(out, "{}", demo.settings.describe())?;
            writeln!(out, "ready: serving until Ctrl-C or SIGTERM")?;
        }
        out.flush()?;
        drop(out);
        shutdown.await;
        tracing::info!("shutting down the demo: gateway, then server");
        demo.stop().await;
        Ok(())
    })
}

fn now() -> Result<Timestamp> {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    Timestamp::from_unix(i64::try_from(seconds)?).context("the system clock is outside the years 0000-9999")
}

fn demo(zero_bits: u32) -> Result<()> {
    let alice = Address::from_email("alice@example.org")?;
    let bob = Address::from_email("bob@example.org")?;
    let at = now()?;

    let alice_key = MasterKey::generate(&mut OsRng);
    let bob_key = MasterKey::generate(&mut OsRng);
    let alice_history = [ProfileRecord::initial(&alice_key, &alice, ProfileFields::default(), at)];
    let bob_history = [ProfileRecord::initial(&bob_key, &bob, ProfileFields::default(), at)];
    let bob_pin = verify_history(&bob, &bob_history)?.pin();
    let alice_pin = verify_history(&alice, &alice_history)?.pin();
    println!("identities: {alice} key {}, {bob} key {}", alice_key.public(), bob_key.public());
    println!("histories verified and pinned (first key = latest key, {} record each)", bob_pin.length);

    let (bob_secret, bob_message_key) = SignedMessageKey::generate(&bob_key, &bob, KeyKind::Ephemeral, &mut OsRng);
    bob_message_key.verify(&bob, &bob_pin.latest_key)?;
    println!("message key {} verified against bob's pinned key", bob_message_key.public_key);

    let email = Email {
        to: vec![bob.clone()],
        cc: vec![],
        subject: "Welcome".into(),
        thread_id: Id32::random(&mut OsRng),
        reply_to_message_id: None,
        date_sent: at,
        body: "This message was **sealed**, worked for and opened by the SMIMP core.".into(),
        signature_text: None,
        attachments: vec![],
        extensions_data: None,
        reply_to: None,
        auto_reply_address: None,
    };
    let payload = Payload::Email(Box::new(email)).to_bytes();
    let token_hash = login_token_hash(&Id32::random(&mut OsRng));
    let context = HashContext { sender: &alice, recipient: &bob, login_token_hash: &token_hash };
    let sealed = Ciphertext::seal(
        &payload,
        MessageType::Email,
        BoxNonce::random(&mut OsRng),
        &bob_message_key.public_key,
        &alice_key,
    );

    let params = PowParams { zero_bits, nonce: Id32::random(&mut OsRng) };
    let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
    let control = SolveControl::default();
    let started = Instant::now();
    let pow = Preimage::new(&sealed.pow_input(&context), &params.nonce).solve(
        zero_bits,
        &Id32::random(&mut OsRng),
        threads,
        &control,
    )?;
    let elapsed = started.elapsed();
    let attempts = control.attempts.load(Ordering::Relaxed);
    println!(
        "proof of work: {} zero bits wanted, {} found, {attempts} hashes on {threads} threads in {:.2?} ({:.1} M hashes/s)",
        zero_bits,
        leading_zero_bits(&pow.hash),
        elapsed,
        attempts as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6
    );

    let stored = StoredEnvelope {
        sent: sealed.into_envelope(&alice_key, &context, Some(pow)),
        server: ServerFields {
            recipient: bob.clone(),
            sender: alice.clone(),
            sender_public_key: alice_key.public(),
            received_at: at,
            pow_params: Some(params),
            message_id: Id32::random(&mut OsRng),
            login_token_hash: token_hash,
            received_via: ReceivedVia::SmimpClient,
            read: false,
            extensions_data: None,
            protocol_version: PROTOCOL_VERSION.into(),
        },
    };
    let wire = serde_json::to_string(&stored)?;
    println!("envelope: {} bytes of JSON, signed message hash {}", wire.len(), stored.sent.message_hash);

    let received: StoredEnvelope = serde_json::from_str(&wire)?;
    let opened = received.open(&alice_pin.latest_key, &bob_key.public(), &bob_secret)?;
    let Payload::Email(email) = Payload::parse(&received.sent.message_type, &opened)? else {
        bail!("the opened payload is not an email");
    };
    println!("opened by bob after every check: subject {:?}, body {:?}", email.subject, email.body);
    Ok(())
}
