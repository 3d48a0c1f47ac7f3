//! `smimp-gateway setup-client`: the settings a mail client needs to use this gateway,
//! for the clients people have (Thunderbird, Outlook, Apple Mail), and a Thunderbird
//! autoconfig file (clientConfig 1.1, the `config-v1.1.xml` format of Thunderbird's
//! autoconfiguration) so Thunderbird can fill them in itself.
//!
//! Everything comes from the gateway's configuration (`[smtp]`, `[imap]`) and database
//! (the accounts `init` set up); the password is never known here — `init` printed it
//! and the keystore holds only its hash.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config_file::invalid;
use crate::gateway::config::{ConfigError, GatewayConfig};
use crate::smimp::address::Address;
use crate::store::{GatewayStore, StoreError};

/// Why the settings could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the gateway's database {database}: {source}")]
    Store { database: PathBuf, source: StoreError },
    #[error("no account is set up on this gateway ({database} has none): run `smimp-gateway init --config {config} --address ADDRESS` first")]
    NoAccounts { database: PathBuf, config: PathBuf },
    #[error("{address} is not set up on this gateway (it serves: {served}); run `smimp-gateway init --config {config} --address {address}` to add it")]
    UnknownAccount { address: String, served: String, config: PathBuf },
    /// Making or reading the gateway's local certificates failed.
    #[error(transparent)]
    Certificates(#[from] crate::gateway::context::CommandError),
    #[error("the gateway's TLS certificate: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Where a mail client connects for one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The plain port, upgraded with STARTTLS.
    pub starttls: SocketAddr,
    /// The implicit-TLS ("SSL/TLS") port, when one is served.
    pub tls: Option<SocketAddr>,
}

/// Everything one account's mail client needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The account's email address.
    pub address: String,
    /// Its mail domain (the autoconfig file is per domain).
    pub domain: String,
    /// The login name for both IMAP and SMTP.
    pub username: String,
    pub imap: Endpoint,
    pub smtp: Endpoint,
    /// The gateway's CA certificate, which the mail client must trust.
    pub ca_file: PathBuf,
    pub ca_fingerprint: String,
}

/// A listening address as mail clients are told it; port 0 ("any free port") cannot be
/// told to anyone, so it is refused naming the configuration key.
fn fixed(config_path: &Path, key: &str, addr: SocketAddr) -> Result<SocketAddr, ConfigError> {
    if addr.port() == 0 {
        return Err(invalid(
            config_path,
            key,
            "port 0 means any free port, chosen anew at every start, so a mail client cannot be set up for it: set a fixed port",
        ));
    }
    Ok(addr)
}

/// The settings of every account of the gateway configured at `config_path`, or of
/// `only` (an email or SMIMP address).
pub async fn settings(config_path: &Path, only: Option<&str>) -> Result<Vec<ClientSettings>, SetupError> {
    let config = GatewayConfig::load(config_path)?;
    let imap = Endpoint {
        starttls: fixed(config_path, "imap.listen", config.imap.listen)?,
        tls: config.imap.tls_listen.map(|a| fixed(config_path, "imap.tls_listen", a)).transpose()?,
    };
    let smtp = Endpoint {
        starttls: fixed(config_path, "smtp.listen", config.smtp.listen)?,
        tls: config.smtp.tls_listen.map(|a| fixed(config_path, "smtp.tls_listen", a)).transpose()?,
    };
    let database = config.database();
    let no_accounts = || SetupError::NoAccounts { database: database.clone(), config: config_path.into() };
    // Opening would create an empty database; a missing one means no `init` yet.
    if !database.exists() {
        return Err(no_accounts());
    }
    let failed = |source| SetupError::Store { database: database.clone(), source };
    let accounts = GatewayStore::open(&database).await.map_err(failed)?.accounts().await.map_err(failed)?;
    if accounts.is_empty() {
        return Err(no_accounts());
    }
    let chosen: Vec<_> = match only {
        None => accounts.iter().collect(),
        Some(text) => {
            let wanted = Address::from_email(text).or_else(|_| Address::parse(text)).ok();
            let found: Vec<_> = accounts.iter().filter(|a| Some(&a.address) == wanted.as_ref()).collect();
            if found.is_empty() {
                let served: Vec<String> = accounts.iter().map(|a| a.address.to_email()).collect();
                return Err(SetupError::UnknownAccount {
                    address: text.into(),
                    served: served.join(", "),
                    config: config_path.into(),
                });
            }
            found
        }
    };
    // The same files `run` uses: made now if `run` has not started yet, then kept.
    let certs = crate::gateway::local_certificates(&config)?;
    let ca_fingerprint = crate::tls::sha256_fingerprint(&certs.ca_file)?;
    Ok(chosen
        .into_iter()
        .map(|account| ClientSettings {
            address: account.address.to_email(),
            domain: account.address.domain().to_string(),
            username: account.username.clone(),
            imap: imap.clone(),
            smtp: smtp.clone(),
            ca_file: certs.ca_file.clone(),
            ca_fingerprint: ca_fingerprint.clone(),
        })
        .collect())
}

/// The host part mail clients are given: the IP literal the gateway listens on, which
/// its certificate names (so no name resolution can pick another address).
fn host(addr: &SocketAddr) -> String {
    addr.ip().to_string()
}

fn server_lines(out: &mut String, title: &str, endpoint: &Endpoint) {
    let _ = writeln!(out, "  {title}");
    let _ =
        writeln!(out, "    server {}  port {}  security STARTTLS", host(&endpoint.starttls), endpoint.starttls.port());
    if let Some(tls) = &endpoint.tls {
        let _ = writeln!(out, "    or server {}  port {}  security SSL/TLS", host(tls), tls.port());
    }
}

/// The human-readable instructions for one account: the settings, then how to enter
/// them and trust the CA in Thunderbird, Outlook and Apple Mail.
pub fn instructions(settings: &ClientSettings) -> String {
    let s = settings;
    let ca = s.ca_file.display();
    let mut out = String::new();
    let _ = writeln!(out, "Mail client settings for {} (smimp-gateway on this machine)", s.address);
    server_lines(&mut out, "Incoming mail: IMAP", &s.imap);
    server_lines(&mut out, "Outgoing mail: SMTP", &s.smtp);
    let _ = writeln!(out, "  Authentication: normal password (it only ever travels inside TLS)");
    let _ = writeln!(out, "  Username: {}", s.username);
    let _ = writeln!(out, "  Password: the one `smimp-gateway init` printed for {}", s.address);
    let _ = writeln!(out, "  Certificate authority to trust: {ca}");
    let _ = writeln!(out, "    SHA-256 fingerprint: {}", s.ca_fingerprint);
    let _ = writeln!(
        out,
        "  The gateway listens on this machine only: the mail client must run on it too.\n  \
         The CA is this gateway's own; trusting it lets the client check it is talking to the gateway."
    );
    let imap_tls = s.imap.tls.map(|a| a.port().to_string()).unwrap_or_else(|| "-".into());
    let smtp_tls = s.smtp.tls.map(|a| a.port().to_string()).unwrap_or_else(|| "-".into());
    let _ = writeln!(
        out,
        "\nThunderbird\n  \
         1. Trust the CA: Settings → Privacy & Security → Certificates → Manage Certificates → Authorities →\n     \
         Import… → {ca}; tick \"Trust this CA to identify websites\" (Thunderbird uses it for mail servers too).\n  \
         2. Account Settings → Account Actions → Add Mail Account: name, {address}, the password; then\n     \
         \"Configure manually\": the servers above, Authentication \"Normal password\", Username {user}.\n     \
         Or let Thunderbird fill them in: write the autoconfig file with\n     \
         `smimp-gateway setup-client --config FILE --account {address} --thunderbird-autoconfig {domain}.xml`\n     \
         and copy it to the isp/ directory of Thunderbird's installation (for example\n     \
         /usr/lib/thunderbird/isp/{domain}.xml) before adding the account.",
        address = s.address,
        user = s.username,
        domain = s.domain,
    );
    let _ = writeln!(
        out,
        "\nOutlook (Windows)\n  \
         1. Trust the CA: `certutil -user -addstore Root {ca}` (or certmgr.msc → Trusted Root Certification\n     \
         Authorities → Certificates → All Tasks → Import).\n  \
         2. File → Add Account → Advanced options → \"Let me set up my account manually\" → IMAP:\n     \
         incoming {imap_host} port {imap} encryption STARTTLS (or port {imap_tls} SSL/TLS), outgoing\n     \
         {smtp_host} port {smtp} encryption STARTTLS (or port {smtp_tls} SSL/TLS); leave \"Require logon\n     \
         using Secure Password Authentication (SPA)\" off; user name {user}.",
        imap_host = host(&s.imap.starttls),
        imap = s.imap.starttls.port(),
        smtp_host = host(&s.smtp.starttls),
        smtp = s.smtp.starttls.port(),
        user = s.username,
    );
    let _ = writeln!(
        out,
        "\nApple Mail (macOS)\n  \
         1. Trust the CA: `security add-trusted-cert -r trustRoot -k ~/Library/Keychains/login.keychain-db {ca}`\n     \
         (or Keychain Access → File → Import Items, then the certificate's Trust → \"Always Trust\").\n  \
         2. Mail → Add Account → Other Mail Account: name, {address}, the password; account type IMAP,\n     \
         incoming and outgoing server {imap_host}, user name {user}. Then Settings → Accounts → Server\n     \
         Settings: untick \"Automatically manage connection settings\", IMAP port {imap_tls} and SMTP port\n     \
         {smtp_tls} with \"Use TLS/SSL\", Authentication \"Password\".",
        address = s.address,
        imap_host = host(&s.imap.starttls),
        user = s.username,
    );
    out
}

/// Escapes text for an XML element or attribute.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn server_element(out: &mut String, element: &str, kind: &str, addr: &SocketAddr, socket: &str, username: &str) {
    let _ = writeln!(out, "    <{element} type=\"{kind}\">");
    let _ = writeln!(out, "      <hostname>{}</hostname>", xml(&host(addr)));
    let _ = writeln!(out, "      <port>{}</port>", addr.port());
    let _ = writeln!(out, "      <socketType>{socket}</socketType>");
    let _ = writeln!(out, "      <username>{}</username>", xml(username));
    let _ = writeln!(out, "      <authentication>password-cleartext</authentication>");
    let _ = writeln!(out, "    </{element}>");
}

/// The Thunderbird autoconfig file (clientConfig version 1.1) for one account. The
/// implicit-TLS servers come first (RFC 8314 prefers them), so Thunderbird picks them
/// by default; `password-cleartext` is Thunderbird's "Normal password", sent inside TLS.
pub fn thunderbird_autoconfig(settings: &ClientSettings) -> String {
    let s = settings;
    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str("<clientConfig version=\"1.1\">\n");
    let _ = writeln!(out, "  <emailProvider id=\"{}\">", xml(&s.domain));
    let _ = writeln!(out, "    <domain>{}</domain>", xml(&s.domain));
    let _ = writeln!(
        out,
        "    <displayName>{} through smimp-gateway (SMIMP, end-to-end encrypted)</displayName>",
        xml(&s.domain)
    );
    out.push_str("    <displayShortName>SMIMP</displayShortName>\n");
    for (element, kind, endpoint) in [("incomingServer", "imap", &s.imap), ("outgoingServer", "smtp", &s.smtp)] {
        if let Some(tls) = &endpoint.tls {
            server_element(&mut out, element, kind, tls, "SSL", &s.username);
        }
        server_element(&mut out, element, kind, &endpoint.starttls, "STARTTLS", &s.username);
    }
    out.push_str("  </emailProvider>\n</clientConfig>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ClientSettings {
        ClientSettings {
            address: "alice@example.org".into(),
            domain: "example.org".into(),
            username: "alice@example.org".into(),
            imap: Endpoint {
                starttls: "127.0.0.1:1143".parse().unwrap(),
                tls: Some("127.0.0.1:1993".parse().unwrap()),
            },
            smtp: Endpoint { starttls: "127.0.0.1:1025".parse().unwrap(), tls: None },
            ca_file: "/home/alice/gateway-data/tls/ca.pem".into(),
            ca_fingerprint: "AB:CD".into(),
        }
    }

    #[test]
    fn the_autoconfig_file_has_exactly_the_servers_of_the_configuration() {
        let expected = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>
<clientConfig version=\"1.1\">
  <emailProvider id=\"example.org\">
    <domain>example.org</domain>
    <displayName>example.org through smimp-gateway (SMIMP, end-to-end encrypted)</displayName>
    <displayShortName>SMIMP</displayShortName>
    <incomingServer type=\"imap\">
      <hostname>127.0.0.1</hostname>
      <port>1993</port>
      <socketType>SSL</socketType>
      <username>alice@example.org</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type=\"imap\">
      <hostname>127.0.0.1</hostname>
      <port>1143</port>
      <socketType>STARTTLS</socketType>
      <username>alice@example.org</username>
      <authentication>password-cleartext</authentication>
    </incomingServer>
    <outgoingServer type=\"smtp\">
      <hostname>127.0.0.1</hostname>
      <port>1025</port>
      <socketType>STARTTLS</socketType>
      <username>alice@example.org</username>
      <authentication>password-cleartext</authentication>
    </outgoingServer>
  </emailProvider>
</clientConfig>
";
        assert_eq!(thunderbird_autoconfig(&sample()), expected);
    }

    #[test]
    fn text_is_escaped_in_the_autoconfig_file() {
        assert_eq!(xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn the_instructions_name_every_setting_and_client() {
        let text = instructions(&sample());
        for needle in [
            "server 127.0.0.1  port 1143  security STARTTLS",
            "or server 127.0.0.1  port 1993  security SSL/TLS",
            "server 127.0.0.1  port 1025  security STARTTLS",
            "Authentication: normal password",
            "Username: alice@example.org",
            "Certificate authority to trust: /home/alice/gateway-data/tls/ca.pem",
            "SHA-256 fingerprint: AB:CD",
            "\nThunderbird\n",
            "\nOutlook (Windows)\n",
            "\nApple Mail (macOS)\n",
            "certutil -user -addstore Root /home/alice/gateway-data/tls/ca.pem",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
        }
        assert!(!text.contains("1465"), "no SMTP implicit-TLS port is configured: {text}");
    }

    #[test]
    fn port_zero_is_refused_naming_the_key() {
        let err = fixed(Path::new("gateway.toml"), "smtp.listen", "127.0.0.1:0".parse().unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("gateway.toml") && text.contains("smtp.listen") && text.contains("fixed port"), "{text}");
    }
}
