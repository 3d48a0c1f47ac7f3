//! The gateway's configuration file (config/gateway.example.toml documents every
//! key): a pure TOML parse with `deny_unknown_fields`, then `validate()`; errors name
//! the file and the key. Relative paths are taken from the file's directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::outbound::{DEFAULT_LANE_FROM_BITS, DEFAULT_MAX_POW_BITS};
use crate::backend::relay_settings::RelaySection;
pub use crate::config_file::ConfigError;
use crate::config_file::{anchor, invalid, read_toml};
use crate::keystore::{KdfParams, PassphraseConfig, PassphraseSource};
use crate::smimp::address::normalise_domain;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub gateway: GatewaySection,
    pub keystore: KeystoreSection,
    #[serde(default)]
    pub keys: KeysSection,
    #[serde(default)]
    pub discovery: DiscoverySection,
    #[serde(default)]
    pub smtp: SmtpSection,
    #[serde(default)]
    pub imap: ImapSection,
    #[serde(default)]
    pub delivery: DeliverySection,
    /// `[relay."DOMAIN"]`: legacy relays by recipient domain. Empty (the default): no
    /// mail is ever sent as plain email.
    #[serde(default)]
    pub relay: BTreeMap<String, RelaySection>,
}

/// `[imap]`: where mail clients read the decrypted, verified mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImapSection {
    /// Plain port with STARTTLS.
    pub listen: SocketAddr,
    /// Implicit-TLS port; absent to serve none.
    pub tls_listen: Option<SocketAddr>,
    /// How often an idling client's mailbox is compared with the server.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Most bytes of rendered mail kept in the sealed cache; beyond it the least
    /// recently used are dropped (and fetched and verified again when asked).
    pub cache_max_bytes: u64,
    /// Most bytes of decrypted, rendered mail held in memory for repeat fetches (the
    /// sealed cache on disk serves the rest): what the gateway's memory grows by for
    /// mail, whatever the mailbox's size.
    pub hot_cache_bytes: usize,
}

impl Default for ImapSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1143)),
            tls_listen: Some(SocketAddr::from(([127, 0, 0, 1], 1993))),
            poll_interval: Duration::from_secs(60),
            cache_max_bytes: 1 << 30,
            hot_cache_bytes: 32 << 20,
        }
    }
}

/// `[smtp]`: where mail clients submit mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    /// Plain port with STARTTLS (AUTH is allowed without TLS only on loopback).
    pub listen: SocketAddr,
    /// Implicit-TLS port; absent to serve none.
    pub tls_listen: Option<SocketAddr>,
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
}

impl Default for SmtpSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1025)),
            tls_listen: Some(SocketAddr::from(([127, 0, 0, 1], 1465))),
            max_message_size: 32 * 1024 * 1024,
        }
    }
}

/// `[delivery]`: what delivering one message to a recipient's server may cost. The
/// recipient's server sets the proof of work; these bounds keep a hostile one from
/// spending this machine's time without end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySection {
    /// Most leading zero bits of proof of work done for one delivery; a server asking
    /// more fails the delivery at once, with a report to the sender.
    pub max_pow_bits: u32,
    /// From this many bits on, the work waits in a lane of its own, so it never holds
    /// the delivery slots cheap deliveries need.
    pub pow_lane_from_bits: u32,
}

/// The highest `max_pow_bits` accepted: 2^36 hashes are about a day on two cores.
const MAX_POW_BITS_LIMIT: u32 = 36;

impl Default for DeliverySection {
    fn default() -> Self {
        Self { max_pow_bits: DEFAULT_MAX_POW_BITS, pow_lane_from_bits: DEFAULT_LANE_FROM_BITS }
    }
}

/// `[gateway]`: where its state lives.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Directory of the gateway's database and keystores.
    pub data_dir: PathBuf,
}

/// `[keystore]`: how keystores are unlocked and how hard the passphrase is stretched.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreSection {
    /// The passphrase's first line is read from this file.
    pub passphrase_file: Option<PathBuf>,
    /// The passphrase is this environment variable's value.
    pub passphrase_env: Option<String>,
    /// The passphrase is this systemd credential (`LoadCredential=`).
    pub passphrase_credential: Option<String>,
    /// Argon2id memory in KiB (default 65536).
    #[serde(default = "default_m_cost")]
    pub kdf_memory_kib: u32,
    /// Argon2id passes (default 3).
    #[serde(default = "default_t_cost")]
    pub kdf_passes: u32,
}

fn default_m_cost() -> u32 {
    KdfParams::default().m_cost_kib
}

fn default_t_cost() -> u32 {
    KdfParams::default().t_cost
}

impl KeystoreSection {
    /// The passphrase settings as one value.
    pub fn passphrase(&self) -> PassphraseConfig {
        PassphraseConfig {
            passphrase_file: self.passphrase_file.clone(),
            passphrase_env: self.passphrase_env.clone(),
            passphrase_credential: self.passphrase_credential.clone(),
        }
    }

    /// The KDF parameters new keystores are written with.
    pub fn kdf(&self) -> KdfParams {
        KdfParams { m_cost_kib: self.kdf_memory_kib, t_cost: self.kdf_passes, ..KdfParams::default() }
    }
}

/// `[keys]`: the supply of message keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// Unissued ephemeral keys the gateway keeps on the server.
    pub ephemeral_target: usize,
    /// How long secrets of discarded message keys are kept (messages sealed to them may still arrive).
    #[serde(with = "humantime_serde")]
    pub retain_discarded: Duration,
    /// How often `run` checks the ephemeral keys and tops them up below half the target.
    #[serde(with = "humantime_serde")]
    pub replenish_every: Duration,
}

impl Default for KeysSection {
    fn default() -> Self {
        Self {
            ephemeral_target: 20,
            retain_discarded: Duration::from_secs(30 * 24 * 3600),
            replenish_every: Duration::from_secs(10 * 60),
        }
    }
}

/// `[discovery]`: private CAs and domain overrides (private deployments, tests).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoverySection {
    pub trusted_ca_files: Vec<PathBuf>,
    pub resolve: BTreeMap<String, SocketAddr>,
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl GatewayConfig {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let mut config: Self = read_toml(path)?;
        config.validate(path)?;
        anchor(path, &mut config.gateway.data_dir);
        config.discovery.trusted_ca_files.iter_mut().for_each(|p| anchor(path, p));
        if let Some(file) = config.keystore.passphrase_file.as_mut() {
            anchor(path, file);
        }
        for (domain, relay) in config.relay.iter_mut() {
            if let Some(file) = relay.ca_file.as_mut() {
                anchor(path, file);
                if !file.is_file() {
                    let message = format!("{} is not a readable file", file.display());
                    return Err(invalid(path, &format!("relay.{domain}.ca_file"), message));
                }
            }
        }
        Ok(config)
    }

    /// Checks what the types cannot.
    pub fn validate(&mut self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| invalid(path, key, message);
        self.keystore.passphrase().source().map_err(|e| invalid("keystore.passphrase_*", e.to_string()))?;
        self.keystore.kdf().validate().map_err(|e| invalid("keystore.kdf_memory_kib", e.to_string()))?;
        if self.keys.ephemeral_target > 1000 {
            return Err(invalid("keys.ephemeral_target", "at most 1000 keys".into()));
        }
        let listeners = [
            ("smtp.listen", Some(self.smtp.listen)),
            ("smtp.tls_listen", self.smtp.tls_listen),
            ("imap.listen", Some(self.imap.listen)),
            ("imap.tls_listen", self.imap.tls_listen),
        ];
        for (key, addr) in listeners {
            if addr.is_some_and(|a| !a.ip().is_loopback()) {
                return Err(invalid(
                    key,
                    "the gateway serves this machine's mail clients: listen on 127.0.0.1 or ::1 (other addresses would expose unencrypted local mail)".into(),
                ));
            }
        }
        if self.delivery.max_pow_bits > MAX_POW_BITS_LIMIT {
            return Err(invalid(
                "delivery.max_pow_bits",
                format!("at most {MAX_POW_BITS_LIMIT} (2^36 hashes are about a day of work)"),
            ));
        }
        if self.keys.replenish_every < Duration::from_secs(1) {
            return Err(invalid("keys.replenish_every", "at least 1s, so the server is not polled in a loop".into()));
        }
        if self.imap.poll_interval < Duration::from_secs(1) {
            return Err(invalid("imap.poll_interval", "at least 1s, so the server is not polled in a loop".into()));
        }
        let resolve = std::mem::take(&mut self.discovery.resolve);
        for (domain, addr) in resolve {
            let normal = normalise_domain(&domain)
                .map_err(|e| invalid(&format!("discovery.resolve.{domain}"), e.to_string()))?;
            self.discovery.resolve.insert(normal, addr);
        }
        let relays = std::mem::take(&mut self.relay);
        for (domain, relay) in relays {
            let key = |name: &str| format!("relay.{domain}.{name}");
            let normal = normalise_domain(&domain).map_err(|e| invalid(&format!("relay.{domain}"), e.to_string()))?;
            if relay.host.is_empty() || relay.host.contains(|c: char| c.is_whitespace() || c == '/' || c == ':') {
                return Err(invalid(&key("host"), "a host name or IP address, without port or scheme".into()));
            }
            if relay.port == Some(0) {
                return Err(invalid(&key("port"), "a port from 1 to 65535".into()));
            }
            match (&relay.username, &relay.password) {
                (Some(_), None) => {
                    return Err(invalid(&key("password"), "username is set, so password is needed".into()))
                }
                (None, Some(_)) => {
                    return Err(invalid(&key("username"), "password is set, so username is needed".into()))
                }
                (Some(name), Some(_)) if name.is_empty() => {
                    return Err(invalid(&key("username"), "must not be empty".into()))
                }
                _ => {}
            }
            if self.relay.insert(normal.clone(), relay).is_some() {
                return Err(invalid(&format!("relay.{domain}"), format!("{normal} has a relay already")));
            }
        }
        Ok(())
    }

    /// Where the passphrase comes from.
    pub fn passphrase_source(&self) -> PassphraseSource {
        self.keystore.passphrase().source().expect("validated on load")
    }

    /// The gateway's database file.
    pub fn database(&self) -> PathBuf {
        self.gateway.data_dir.join("gateway.sqlite")
    }

    /// Where the gateway keeps the TLS certificate it shows mail clients.
    pub fn tls_dir(&self) -> PathBuf {
        self.gateway.data_dir.join("tls")
    }

    /// The keystore file of an account.
    pub fn keystore_path(&self, address: &crate::smimp::address::Address) -> PathBuf {
        self.gateway.data_dir.join("keystores").join(format!("{}.keystore", address.to_email()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::relay_settings::{RelayPassword, RelayTls};
    use crate::config_file::parse_toml;

    const MINIMAL: &str = "[gateway]\ndata_dir = \"data\"\n[keystore]\npassphrase_env = \"PASS\"\n";

    fn load(extra: &str) -> Result<GatewayConfig, ConfigError> {
        let path = Path::new("gw.toml");
        let mut config: GatewayConfig = parse_toml(&format!("{MINIMAL}{extra}"), path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn error(extra: &str) -> String {
        load(extra).unwrap_err().to_string()
    }

    #[test]
    fn no_relay_table_means_no_relay() {
        assert!(load("").unwrap().relay.is_empty());
    }

    #[test]
    fn a_relay_parses_with_its_domain_normalised_and_default_ports() {
        let config = load(
            "[relay.\"Legacy.Example\"]\nhost = \"smtp.legacy.example\"\ntls = \"starttls\"\n\
             username = \"alice\"\npassword = \"hunter2\"\n\
             [relay.\"other.example\"]\nhost = \"mx.other.example\"\ntls = \"tls\"\n\
             [relay.\"third.example\"]\nhost = \"10.0.0.1\"\nport = 2525\ntls = \"tls\"\n",
        )
        .unwrap();
        let legacy = &config.relay["legacy.example"];
        assert_eq!((legacy.host.as_str(), legacy.port(), legacy.tls), ("smtp.legacy.example", 587, RelayTls::StartTls));
        assert_eq!(legacy.password.as_ref().map(RelayPassword::expose), Some("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"), "the password never shows in Debug output");
        assert_eq!(config.relay["other.example"].port(), 465);
        assert_eq!(config.relay["third.example"].port(), 2525);
    }

    #[test]
    fn there_is_no_plaintext_relay() {
        for mode in ["none", "plain", "off", ""] {
            let err = error(&format!("[relay.\"legacy.example\"]\nhost = \"smtp.legacy.example\"\ntls = \"{mode}\"\n"));
            assert!(err.contains("gw.toml") && err.contains("tls") && err.contains("starttls"), "{mode}: {err}");
        }
        let err = error("[relay.\"legacy.example\"]\nhost = \"smtp.legacy.example\"\n");
        assert!(err.contains("gw.toml") && err.contains("missing field `tls`"), "TLS is chosen explicitly: {err}");
    }

    #[test]
    fn relay_errors_name_the_file_and_key() {
        let relay = |body: &str| format!("[relay.\"legacy.example\"]\ntls = \"tls\"\n{body}");
        let cases = [
            (relay("host = \"smtp.legacy.example\"\nusername = \"a\"\n"), "key relay.legacy.example.password"),
            (relay("host = \"smtp.legacy.example\"\npassword = \"p\"\n"), "key relay.legacy.example.username"),
            (relay("host = \"smtp.legacy.example\"\nusername = \"\"\npassword = \"p\"\n"), "relay.legacy.example.username"),
            (relay("host = \"smtp.legacy.example\"\nport = 0\n"), "key relay.legacy.example.port"),
            (relay("host = \"smtp.legacy.example:25\"\n"), "key relay.legacy.example.host"),
            (relay("host = \"\"\n"), "key relay.legacy.example.host"),
            (relay("host = \"smtp.legacy.example\"\nverify = false\n"), "unknown field `verify`"),
            ("[relay.\"nodots\"]\nhost = \"h.example\"\ntls = \"tls\"\n".to_string(), "key relay.nodots"),
            (
                "[relay.\"A.example\"]\nhost = \"h.example\"\ntls = \"tls\"\n[relay.\"a.example\"]\nhost = \"h.example\"\ntls = \"tls\"\n"
                    .to_string(),
                "a.example has a relay already",
            ),
        ];
        for (text, expected) in cases {
            let err = error(&text);
            assert!(err.starts_with("gw.toml") && err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_missing_ca_file_is_named_on_load() {
        let dir = std::env::temp_dir().join(format!("smimp-config-relay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        let text = format!(
            "{MINIMAL}[relay.\"legacy.example\"]\nhost = \"smtp.legacy.example\"\ntls = \"tls\"\nca_file = \"relay-ca.pem\"\n"
        );
        std::fs::write(&path, &text).unwrap();
        let err = GatewayConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("key relay.legacy.example.ca_file") && err.contains("relay-ca.pem"), "{err}");
        std::fs::write(dir.join("relay-ca.pem"), "pem").unwrap();
        let config = GatewayConfig::load(&path).unwrap();
        assert_eq!(config.relay["legacy.example"].ca_file.as_deref(), Some(dir.join("relay-ca.pem").as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
