//! What the demo prints once it is ready: each account's mail client settings, the
//! server, the welcome message's verdict; as text for a person or, with `--json`,
//! exactly these types serialised for a script.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::server::DemoServer;
use super::state::State;
use super::{DemoError, DOMAIN, STATE_FILE, USERS};
use crate::gateway::Running;

/// Everything the demo prints, from the kept logins, the running gateway and server,
/// and the welcome message's verdict.
pub(super) fn build(
    state: &State,
    gateway: &Running,
    server: &DemoServer,
    welcome: WelcomeSettings,
    gateway_config: PathBuf,
    dir: &Path,
) -> Result<Settings, DemoError> {
    let at = &gateway.addresses;
    let mut accounts = Vec::new();
    for user in USERS {
        let address = format!("{user}@{DOMAIN}");
        let login = state.accounts.iter().find(|l| l.address == address).cloned().ok_or_else(|| {
            DemoError::Inconsistent { dir: dir.into(), reason: format!("no password is kept for {address}") }
        })?;
        accounts.push(AccountSettings {
            address: login.address,
            username: login.username,
            password: login.password,
            imap: Endpoint::new(Some(at.imap), at.imap_tls),
            smtp: Endpoint::new(Some(at.smtp), at.smtp_tls),
        });
    }
    Ok(Settings {
        accounts,
        gateway_ca_file: gateway.ca_file.clone(),
        gateway_ca_fingerprint: gateway.ca_fingerprint.clone(),
        gateway_config,
        server: ServerSettings {
            domain: DOMAIN.into(),
            url: format!("https://{DOMAIN}:{}", server.port),
            address: server.address(),
            ca_file: server.ca_file.clone(),
            database: server.config.server.database.clone(),
        },
        welcome,
        state_file: dir.join(STATE_FILE),
        dir: dir.into(),
    })
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
    pub(super) fn new(plain: Option<SocketAddr>, tls: Option<SocketAddr>) -> Self {
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

/// The two commands that enroll a second machine into `address` (docs/devices.md).
fn second_machine(address: &str, config: &std::path::Path) -> String {
    format!(
        "A second machine for {address} (docs/devices.md): on it, with a gateway configuration\n\
         that trusts this server's CA, ask to join and note the code it shows:\n\
         \x20 smimp-gateway device request --config OTHER/gateway.toml --address {address}\n\
         then here, check the code in `smimp-gateway device pending --config {config}` and approve:\n\
         \x20 smimp-gateway device approve --config {config} --address {address} ID --code CODE\n",
        config = config.display()
    )
}

pub(super) fn endpoint_text(name: &str, endpoint: &Endpoint, missing: &str) -> String {
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
            out += &endpoint_text("IMAP", &account.imap, "not served");
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
        if let Some(first) = self.accounts.first() {
            out += &second_machine(&first.address, &self.gateway_config);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_machine_commands_name_the_account_and_the_configuration() {
        let text = second_machine("alice@example.test", std::path::Path::new("/d/gateway.toml"));
        assert!(text.contains("smimp-gateway device request --config OTHER/gateway.toml --address alice@example.test"));
        assert!(
            text.contains("  smimp-gateway device approve --config /d/gateway.toml --address alice@example.test ID")
        );
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
}
