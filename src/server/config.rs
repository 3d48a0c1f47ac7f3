//! The reference server's configuration file (config/server.example.toml documents
//! every key): a pure TOML parse with `deny_unknown_fields`, then `validate()`.
//! Relative paths are resolved against the configuration file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::config_file::ConfigError;
use crate::config_file::{anchor, invalid, parse_toml, read_toml};
use crate::server::store::backend::Location;
use crate::smimp::address::normalise_domain;
use crate::smimp::message::MessageType;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub server: ServerSection,
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub pow: PowSection,
    #[serde(default)]
    pub discovery: DiscoverySection,
}

/// `[server]`: what is served, where.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The mail domain whose accounts this server holds.
    pub domain: String,
    /// What `/.well-known/smimp.txt` names: `host[:port][/path]` of this server.
    pub public_base: String,
    /// Path prefix under which the API is served (e.g. `/smimp`), empty for none.
    #[serde(default)]
    pub base_path: String,
    /// The store: a SQLite database file (relative to this file), a PostgreSQL
    /// connection string `postgres://…` (several instances may share one), or
    /// `credential:NAME` for a connection string in a systemd credential; see
    /// [`crate::server::store::backend::Location`].
    pub database: PathBuf,
}

/// `[tls]`: a real certificate, or a development CA.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Where a development CA and server certificate are kept when no certificate is set.
    #[serde(default = "default_dev_ca_dir")]
    pub dev_ca_dir: PathBuf,
    /// Names the development certificate is issued for (the domain and `localhost`,
    /// `127.0.0.1`, `::1` when empty).
    #[serde(default)]
    pub dev_names: Vec<String>,
}

impl Default for TlsSection {
    fn default() -> Self {
        Self { cert_file: None, key_file: None, dev_ca_dir: default_dev_ca_dir(), dev_names: Vec::new() }
    }
}

fn default_dev_ca_dir() -> PathBuf {
    PathBuf::from("tls")
}

/// `[limits]`: abuse limits and lifetimes (docs/protocol.md §9.1). Every default is
/// finite.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// The largest request body (a `send_message` envelope); every other route has a
    /// smaller limit from the route table.
    pub max_body_bytes: usize,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// Logins (both steps) per client IP per minute.
    pub create_session_per_minute: u32,
    /// Message keys one sending identity holds and has not yet sent with (all its
    /// sessions, all recipients; a grant lapses after an hour); more are refused
    /// (`rate_limited`). This bounds what a sender can take without sending, and never
    /// paces one that sends: proof of work prices each message. An account storing
    /// mail in its own mailbox is not counted.
    pub max_unspent_keys_per_sender: u32,
    /// Ephemeral keys of one recipient handed to senders it has not whitelisted, per
    /// minute and per hour; past them such senders get the non-ephemeral key, so no
    /// one can drain the recipient's ephemeral keys.
    pub ephemeral_keys_per_recipient_per_minute: u32,
    pub ephemeral_keys_per_recipient_per_hour: u32,
    /// Live sessions per identity; a new login ends the oldest past it.
    pub max_sessions_per_identity: u32,
    /// Unused PoW nonces per identity; a new one drops the oldest past it.
    pub max_pow_nonces_per_identity: u32,
    /// Bytes of stored envelopes per account; -1 for unlimited.
    pub quota_bytes: i64,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Per-session and per-minute key and message limits of earlier versions, replaced
    /// by `max_unspent_keys_per_sender`: still read, so an older file starts, and
    /// ignored with a warning.
    #[serde(skip_serializing)]
    pub message_key_per_minute: Option<u32>,
    #[serde(skip_serializing)]
    pub send_message_per_minute: Option<u32>,
    #[serde(skip_serializing)]
    pub keys_per_sender_per_minute: Option<u32>,
    #[serde(skip_serializing)]
    pub keys_per_sender_per_hour: Option<u32>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            max_body_bytes: 48 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            session_lifetime: Duration::from_secs(3600),
            create_session_per_minute: 60,
            max_unspent_keys_per_sender: 64,
            ephemeral_keys_per_recipient_per_minute: 5,
            ephemeral_keys_per_recipient_per_hour: 30,
            max_sessions_per_identity: 16,
            max_pow_nonces_per_identity: 64,
            quota_bytes: 1 << 30,
            max_connections: 1024,
            message_key_per_minute: None,
            send_message_per_minute: None,
            keys_per_sender_per_minute: None,
            keys_per_sender_per_hour: None,
        }
    }
}

impl LimitsSection {
    fn warn_retired(&self) {
        let retired = [
            ("message_key_per_minute", self.message_key_per_minute),
            ("send_message_per_minute", self.send_message_per_minute),
            ("keys_per_sender_per_minute", self.keys_per_sender_per_minute),
            ("keys_per_sender_per_hour", self.keys_per_sender_per_hour),
        ];
        for (key, _) in retired.iter().filter(|(_, value)| value.is_some()) {
            tracing::warn!(
                key = %format!("limits.{key}"),
                "this limit is retired and ignored: a sender is now bounded by the message keys it holds \
                 unspent (limits.max_unspent_keys_per_sender); remove the key"
            );
        }
    }
}

/// `[pow]`: difficulty per message type; whitelisted senders always get 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowSection {
    pub default_zero_bits: u32,
    /// Per message type (`email`, `short-message`, …) overrides.
    pub zero_bits: BTreeMap<String, u32>,
}

impl Default for PowSection {
    fn default() -> Self {
        Self { default_zero_bits: 20, zero_bits: BTreeMap::new() }
    }
}

impl PowSection {
    /// The difficulty for a type of message from a sender not on the whitelist.
    pub fn zero_bits_for(&self, message_type: &MessageType) -> u32 {
        self.zero_bits.get(message_type.as_str()).copied().unwrap_or(self.default_zero_bits)
    }
}

/// `[discovery]`: how this server finds other servers (remote users' keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySection {
    /// CA certificates to trust in addition to the public ones (private deployments).
    pub trusted_ca_files: Vec<PathBuf>,
    /// Domain → `ip:port` to connect to instead of DNS (private deployments, tests).
    pub resolve: BTreeMap<String, SocketAddr>,
}

impl ServerConfig {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = read_toml(path)?;
        config.validate(path)?;
        config.resolve_paths(path);
        Ok(config)
    }

    /// Parses TOML text; errors carry the line and key from the TOML parser.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        parse_toml(text, path)
    }

    /// Checks what the types cannot.
    pub fn validate(&mut self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| invalid(path, key, message);
        self.server.domain =
            normalise_domain(&self.server.domain).map_err(|e| invalid("server.domain", e.to_string()))?;
        if self.server.public_base.contains("://") {
            return Err(invalid(
                "server.public_base",
                "give host[:port][/path] without a scheme; https is implied".into(),
            ));
        }
        if !self.server.base_path.is_empty() && !self.server.base_path.starts_with('/') {
            return Err(invalid("server.base_path", "must start with '/' (or be empty)".into()));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(invalid("tls.cert_file", "cert_file and key_file must be set together".into()));
        }
        for kind in self.pow.zero_bits.keys() {
            MessageType::parse(kind).map_err(|e| invalid(&format!("pow.zero_bits.{kind}"), e.to_string()))?;
        }
        for (key, bits) in std::iter::once(("pow.default_zero_bits".to_string(), self.pow.default_zero_bits))
            .chain(self.pow.zero_bits.iter().map(|(k, v)| (format!("pow.zero_bits.{k}"), *v)))
        {
            if bits > 40 {
                return Err(invalid(&key, format!("{bits} zero bits would take senders days; use at most 40")));
            }
        }
        for (name, value) in [
            ("limits.create_session_per_minute", self.limits.create_session_per_minute),
            ("limits.max_unspent_keys_per_sender", self.limits.max_unspent_keys_per_sender),
            ("limits.max_sessions_per_identity", self.limits.max_sessions_per_identity),
            ("limits.max_pow_nonces_per_identity", self.limits.max_pow_nonces_per_identity),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1".into()));
            }
        }
        self.limits.warn_retired();
        if self.limits.max_connections == 0 {
            return Err(invalid("limits.max_connections", "must be at least 1".into()));
        }
        if self.limits.quota_bytes < -1 {
            return Err(invalid("limits.quota_bytes", "use -1 for unlimited or a number of bytes".into()));
        }
        let resolve = std::mem::take(&mut self.discovery.resolve);
        for (domain, addr) in resolve {
            let normal = normalise_domain(&domain)
                .map_err(|e| invalid(&format!("discovery.resolve.{domain}"), e.to_string()))?;
            self.discovery.resolve.insert(normal, addr);
        }
        Ok(())
    }

    fn resolve_paths(&mut self, config_file: &Path) {
        if matches!(Location::of(&self.server.database), Location::Sqlite(_)) {
            anchor(config_file, &mut self.server.database);
        }
        anchor(config_file, &mut self.tls.dev_ca_dir);
        for path in [self.tls.cert_file.as_mut(), self.tls.key_file.as_mut()].into_iter().flatten() {
            anchor(config_file, path);
        }
        self.discovery.trusted_ca_files.iter_mut().for_each(|p| anchor(config_file, p));
    }

    /// The names a development certificate covers.
    pub fn dev_names(&self) -> Vec<String> {
        if self.tls.dev_names.is_empty() {
            vec![self.server.domain.clone(), "localhost".into(), "127.0.0.1".into(), "::1".into()]
        } else {
            self.tls.dev_names.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[server]
listen = "127.0.0.1:8443"
domain = "Example.ORG"
public_base = "example.org:8443"
database = "server.sqlite"
"#;

    #[test]
    fn a_minimal_file_gets_defaults_and_normalised_values() {
        let mut config = ServerConfig::parse(MINIMAL, Path::new("s.toml")).unwrap();
        config.validate(Path::new("s.toml")).unwrap();
        assert_eq!(config.server.domain, "example.org");
        assert_eq!(config.limits.request_timeout, Duration::from_secs(30));
        assert_eq!(config.pow.zero_bits_for(&MessageType::Email), 20);
        assert_eq!(config.dev_names()[0], "example.org");
        assert_eq!(config.limits.quota_bytes, 1 << 30, "the default quota is finite");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let unknown = format!("{MINIMAL}\n[limits]\nmax_body = 3\n");
        let err = ServerConfig::parse(&unknown, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains("s.toml") && err.contains("max_body"), "{err}");
        let bad_type = format!("{MINIMAL}\n[pow.zero_bits]\nsms = 3\n");
        let mut config = ServerConfig::parse(&bad_type, Path::new("s.toml")).unwrap();
        let err = config.validate(Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains("pow.zero_bits.sms"), "{err}");
        let scheme = MINIMAL.replace("example.org:8443\"", "https://example.org\"");
        let mut config = ServerConfig::parse(&scheme, Path::new("s.toml")).unwrap();
        assert!(config.validate(Path::new("s.toml")).unwrap_err().to_string().contains("server.public_base"));
    }

    #[test]
    fn a_file_with_the_retired_rate_limits_still_starts_with_the_new_limit() {
        let old = format!("{MINIMAL}\n[limits]\nmessage_key_per_minute = 2\nkeys_per_sender_per_hour = 5\n");
        let mut config = ServerConfig::parse(&old, Path::new("s.toml")).unwrap();
        config.validate(Path::new("s.toml")).unwrap();
        assert_eq!(config.limits.max_unspent_keys_per_sender, 64);
        assert_eq!(config.limits.message_key_per_minute, Some(2), "read, to be warned about");
        let written = toml::to_string(&config.limits).unwrap();
        assert!(!written.contains("message_key_per_minute"), "never written back: {written}");
    }

    #[test]
    fn a_postgres_connection_string_is_kept_as_written_and_a_file_is_anchored() {
        let dir = std::env::temp_dir().join(format!("smimp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.toml");
        let url = "postgres://smimp@127.0.0.1:5432/smimp";
        std::fs::write(&path, MINIMAL.replace("server.sqlite", url)).unwrap();
        let config = ServerConfig::load(&path).unwrap();
        assert_eq!(Location::of(&config.server.database), Location::Postgres(url.into()));
        std::fs::write(&path, MINIMAL).unwrap();
        let config = ServerConfig::load(&path).unwrap();
        assert_eq!(Location::of(&config.server.database), Location::Sqlite(dir.join("server.sqlite")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
