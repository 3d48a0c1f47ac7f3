//! `smimp-gateway`: the command line. Parses arguments, builds the concrete types
//! and runs them; the only place `anyhow` is used.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use smimp_gateway::clock::unix_now;
use smimp_gateway::gateway::context::Context as GatewayContext;
use smimp_gateway::gateway::enroll;
use smimp_gateway::listen::Shutdown;
use smimp_gateway::server::admin;
use smimp_gateway::server::config::ServerConfig;
use smimp_gateway::server::store::ServerStore;
use smimp_gateway::smimp::profile::ProfileFields;

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
        /// Proof-of-work difficulty in leading zero bits that the demo server asks of
        /// new senders.
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
    /// A second machine for an account (docs/devices.md): request on the new machine,
    /// approve on an enrolled one.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
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

#[derive(clap::Args)]
struct EnrolledArgs {
    /// The gateway's configuration file.
    #[arg(long)]
    config: PathBuf,
    /// The account, as alice@example.org [default: the gateway's only account].
    #[arg(long)]
    address: Option<String>,
}

#[derive(Subcommand)]
enum DeviceAction {
    /// On the new machine: ask to join the account, show the witness code to compare
    /// on an enrolled machine, wait for the approval and write this machine's keystore.
    Request {
        #[command(flatten)]
        account: AccountArgs,
        /// This machine's name in the account's device list [default: the host name].
        #[arg(long)]
        name: Option<String>,
        /// A one-time PIN from `device pin` on an enrolled machine, whose running
        /// gateway then approves the request by itself.
        #[arg(long)]
        pin: Option<String>,
        /// How long to wait for the approval, in seconds.
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
    /// On an enrolled machine: the requests waiting for an answer, with their codes.
    Pending {
        #[command(flatten)]
        account: EnrolledArgs,
    },
    /// On an enrolled machine: approve a request (after comparing its code with the
    /// one the new machine shows).
    Approve {
        #[command(flatten)]
        account: EnrolledArgs,
        /// The request's id as `device pending` shows it (any unique start).
        id: String,
        /// The code the new machine shows; the approval is refused unless it matches.
        #[arg(long)]
        code: Option<String>,
    },
    /// On an enrolled machine: a one-time PIN (10 minutes) for `device request --pin`;
    /// the running gateway (`run`) then approves the request by itself.
    Pin {
        #[command(flatten)]
        account: EnrolledArgs,
    },
    /// The account's devices: name, when and by which device enrolled, last seen.
    List {
        #[command(flatten)]
        account: EnrolledArgs,
    },
    /// Revoke a lost or retired device: a new master key (recorded in the profile
    /// history), new message keys, re-shared with the remaining devices only.
    Revoke {
        #[command(flatten)]
        account: EnrolledArgs,
        /// The device's name as `device list` shows it.
        name: String,
    },
    /// On an enrolled machine: deny a request.
    Deny {
        #[command(flatten)]
        account: EnrolledArgs,
        /// The request's id as `device pending` shows it.
        id: String,
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
    /// Copy a SQLite store into an empty PostgreSQL database, verifying every table
    /// (no --config needed; stop the server first).
    MigrateStore {
        /// The SQLite store (the old `[server] database` file).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database, postgres://… (a password may come from PGPASSWORD).
        #[arg(long)]
        to: String,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo { dir, json, zero_bits } => {
            // Mail-client settings are the demo's output: routine logs would bury them.
            init_tracing_with(if json { "info" } else { "warn" });
            run_demo(dir, json, zero_bits)
        }
        Command::SetupClient { config, account, thunderbird_autoconfig } => {
            block_on(setup_client(config, account, thunderbird_autoconfig))
        }
        Command::Status { config, recent } => block_on(async move {
            print!("{}", smimp_gateway::gateway::status::read(&config, recent).await?);
            Ok(())
        }),
        Command::Init { config, address, password_file } => {
            let password = match password_file {
                Some(file) => std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read the one-time password from {}", file.display()))?,
                None => prompt("One-time initialisation password (from the server's administrator): ")?,
            };
            block_on(init(config, address, password))
        }
        Command::Run { config } => block_on(run(config)),
        Command::ExportCa { config } => export_ca(&config),
        Command::Keys { action } => block_on(keys(action)),
        Command::Device { action } => block_on(device(action)),
        Command::Profile { action: ProfileAction::Update { account, name, website, profiles } } => {
            block_on(async move {
                let ctx = GatewayContext::open(&account.config).await?;
                let fields = ProfileFields { name, website, profiles, additional_data: None };
                let length = enroll::update_profile(&ctx, &account.address, fields, unix_now()).await?;
                println!("profile of {} updated: the history has {length} records", account.address);
                Ok(())
            })
        }
        Command::Server { action: Some(ServerAction::MigrateStore { from, to }), .. } => {
            init_tracing();
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            for table in runtime.block_on(smimp_gateway::server::store::transfer::migrate_store(&from, &to))? {
                println!("{}\t{} rows\tsha256 {}", table.table, table.rows, table.checksum);
            }
            println!("copied and verified; point [server] database at the PostgreSQL database");
            Ok(())
        }
        Command::Server { config, action } => {
            let config = config.context("--config FILE is required: the server's configuration file")?;
            let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(server(config, action))
        }
    }
}

async fn setup_client(config: PathBuf, account: Option<String>, autoconfig: Option<PathBuf>) -> Result<()> {
    use smimp_gateway::gateway::setup_client::{instructions, settings, thunderbird_autoconfig};
    let settings = settings(&config, account.as_deref()).await?;
    for (index, account) in settings.iter().enumerate() {
        if index > 0 {
            println!();
        }
        print!("{}", instructions(account));
    }
    if let Some(out) = autoconfig {
        let [account] = settings.as_slice() else {
            bail!("this gateway serves several accounts: choose one for the autoconfig file with --account ADDRESS");
        };
        std::fs::write(&out, thunderbird_autoconfig(account))
            .with_context(|| format!("cannot write the autoconfig file {}", out.display()))?;
        println!("\nwrote the Thunderbird autoconfig file for {} to {}", account.address, out.display());
    }
    Ok(())
}

async fn init(config: PathBuf, address: String, password: String) -> Result<()> {
    let ctx = GatewayContext::open(&config).await?;
    let done = enroll::init(&ctx, &address, &password, unix_now()).await?;
    println!("initialised {} (keystore {})", done.address.to_email(), done.keystore.display());
    println!("mail client login for this gateway:");
    println!("  username: {}", done.username);
    println!("  password: {}", done.password);
    println!("keep the password: it is stored only as a hash in the keystore");
    Ok(())
}

/// `run`: the gateway on its configured ports until SIGTERM or SIGINT.
async fn run(config: PathBuf) -> Result<()> {
    let shutdown = shutdown_signals()?;
    let ctx = GatewayContext::open(&config).await?;
    let listeners = smimp_gateway::gateway::Listeners::bind(&ctx).await?;
    let (stop, stopping) = Shutdown::new();
    let running = smimp_gateway::gateway::start(ctx, listeners, stopping).await?;
    smimp_gateway::notify::ready();
    let at = running.addresses;
    println!("smimp-gateway is running for: {}", running.accounts.join(", "));
    println!("  SMTP submission: {} (STARTTLS)", at.smtp);
    if let Some(tls) = at.smtp_tls {
        println!("  SMTP submission: {tls} (implicit TLS)");
    }
    println!("  IMAP: {} (STARTTLS)", at.imap);
    if let Some(tls) = at.imap_tls {
        println!("  IMAP: {tls} (implicit TLS)");
    }
    println!("  TLS certificate authority to trust in the mail client: {}", running.ca_file.display());
    println!("  its SHA-256 fingerprint: {}", running.ca_fingerprint);
    shutdown.await;
    smimp_gateway::notify::stopping();
    tracing::info!("shutting down: open SMTP transactions finish, the queue is kept");
    stop.stop();
    running.finished().await;
    Ok(())
}

fn export_ca(config: &std::path::Path) -> Result<()> {
    let loaded = smimp_gateway::gateway::config::GatewayConfig::load(config)?;
    let certs = smimp_gateway::gateway::local_certificates(&loaded)?;
    let pem =
        std::fs::read_to_string(&certs.ca_file).with_context(|| format!("cannot read {}", certs.ca_file.display()))?;
    eprintln!("SHA-256 fingerprint: {}", smimp_gateway::tls::sha256_fingerprint(&certs.ca_file)?);
    print!("{pem}");
    Ok(())
}

async fn keys(action: KeysAction) -> Result<()> {
    match action {
        KeysAction::Rotate { account, master } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let which = if master { enroll::Rotate::Master } else { enroll::Rotate::Nonephemeral };
            let key = enroll::rotate(&ctx, &account.address, which, unix_now()).await?;
            let what = if master { "master key" } else { "non-ephemeral key" };
            println!("new {what} of {}: {key}", account.address);
        }
        KeysAction::Replenish { account } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let added = enroll::replenish(&ctx, &account.address, unix_now()).await?;
            println!("added {added} ephemeral keys for {}", account.address);
        }
    }
    Ok(())
}

async fn device(action: DeviceAction) -> Result<()> {
    use smimp_gateway::gateway::devices;
    match action {
        DeviceAction::Request { account, name, pin, wait } => device_request(account, name, pin, wait).await?,
        DeviceAction::Pending { account } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let address = devices::account_of(&ctx, account.address.as_deref()).await?;
            let pending = devices::pending(&ctx, &address).await?;
            if pending.is_empty() {
                println!("no device requests are pending for {address}");
            }
            for view in pending {
                let at = view.request.created_at.to_wire();
                let pin = if view.request.pin_proof.is_some() { "\t(with a PIN)" } else { "" };
                println!("{}\t{}\t{:?}\t{at}{pin}", view.short_id, view.code, view.request.name);
            }
        }
        DeviceAction::Approve { account, id, code } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let address = devices::account_of(&ctx, account.address.as_deref()).await?;
            let view = devices::approve(&ctx, &address, &id, code.as_deref()).await?;
            println!("approved {:?} (code {}) for {address}", view.request.name, view.code);
        }
        DeviceAction::Pin { account } => {
            use smimp_gateway::gateway::pins;
            let ctx = GatewayContext::open(&account.config).await?;
            let address = devices::account_of(&ctx, account.address.as_deref()).await?;
            let (pin, expires_at) = pins::issue(&ctx, &address, pins::PIN_LIFETIME).await?;
            let until = smimp_gateway::smimp::timestamp::Timestamp::from_unix(expires_at).map(|t| t.to_wire());
            println!("one-time PIN for {address}: {pin}");
            println!("valid once, until {} UTC; on the new machine run", until.unwrap_or_default());
            println!("  smimp-gateway device request --config CONFIG --address {address} --pin {pin}");
            println!("while `smimp-gateway run` is running here: it approves the request by itself");
        }
        DeviceAction::List { account } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let address = devices::account_of(&ctx, account.address.as_deref()).await?;
            let when = |at: i64| smimp_gateway::smimp::timestamp::Timestamp::from_unix(at).map(|t| t.to_wire());
            for view in devices::list(&ctx, &address).await? {
                let entry = &view.entry;
                let by = entry.enrolled_by.as_deref().unwrap_or("(created the account)");
                let seen = view.last_seen.and_then(when).unwrap_or_else(|| "never".into());
                let here = if view.this_machine { " (this machine)" } else { "" };
                let enrolled = when(entry.enrolled_at).unwrap_or_default();
                println!("{:?}{here}\tenrolled {enrolled} by {by}\tlast seen {seen}", entry.name);
            }
        }
        DeviceAction::Revoke { account, name } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let address = devices::account_of(&ctx, account.address.as_deref()).await?;
            let revoked = devices::revoke(&ctx, &address, &name).await?;
            println!("revoked {:?} for {address}: new master key {}", revoked.name, revoked.new_master);
            println!(
                "the new keys were sealed to {} remaining device(s); restart their gateways once they have",
                revoked.shared_with
            );
            println!("what the revoked device already had (old mail, old keys) stays readable to it");
        }
        DeviceAction::Deny { account, id } => {
            let ctx = GatewayContext::open(&account.config).await?;
            let address = devices::account_of(&ctx, account.address.as_deref()).await?;
            let view = devices::deny(&ctx, &address, &id).await?;
            println!("denied {:?} (code {}) for {address}", view.request.name, view.code);
        }
    }
    Ok(())
}

/// `device request`: asks, shows the code, waits for the approval.
async fn device_request(account: AccountArgs, name: Option<String>, pin: Option<String>, wait: u64) -> Result<()> {
    use smimp_gateway::gateway::devices;
    let ctx = GatewayContext::open(&account.config).await?;
    let name = name.unwrap_or_else(devices::machine_name);
    let requested = devices::request(&ctx, &account.address, &name, pin.as_deref()).await?;
    println!("asked to join {} as {name:?}", requested.address.to_email());
    println!("witness code: {}", requested.code);
    if pin.is_none() {
        println!("on an enrolled machine, run `smimp-gateway device pending`, check that the code is the same,");
        println!("then `smimp-gateway device approve {}`", &requested.request_id.to_hex()[..12]);
    }
    println!("waiting up to {wait} s for the approval...");
    let poll = std::time::Duration::from_secs(2);
    let enrolled = devices::await_approval(&ctx, requested, std::time::Duration::from_secs(wait), poll).await?;
    let done = &enrolled.account;
    println!("approved: {} is set up on this machine (keystore {})", done.address.to_email(), done.keystore.display());
    println!("the account's master key (trusted on first use): {}", enrolled.master_key);
    println!("mail client login for this gateway:\n  username: {}\n  password: {}", done.username, done.password);
    println!("start the gateway with `smimp-gateway run --config {}`", account.config.display());
    Ok(())
}

fn block_on(work: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    init_tracing();
    tokio::runtime::Runtime::new().context("cannot start the async runtime")?.block_on(work)
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
    let now = unix_now();
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
                ServerAction::ExportCa | ServerAction::MigrateStore { .. } => unreachable!("handled above"),
            }
            Ok(())
        }
    }
}

async fn serve(config: ServerConfig) -> Result<()> {
    let signals = shutdown_signals()?;
    let listen = config.server.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let (stop, shutdown) = Shutdown::new();
    let running = smimp_gateway::server::start(config, listener, shutdown).await?;
    tracing::info!(
        %address,
        domain = %running.state.config.server.domain,
        ca = ?running.dev_ca_file,
        "SMIMP server listening (HTTPS only)"
    );
    smimp_gateway::notify::ready();
    signals.await;
    smimp_gateway::notify::stopping();
    tracing::info!("shutting down");
    stop.stop();
    Ok(running.finished().await?)
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
