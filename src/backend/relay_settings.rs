//! The settings of one legacy SMTP relay, as the gateway's configuration gives them
//! (`[relay."DOMAIN"]`): the backend's own type, so the backend needs nothing from the
//! gateway's configuration module.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[relay."legacy.example"]`: a domain whose mail leaves SMIMP's protection and goes
/// as plain email through this SMTP server (RFC 6409 submission), because its users have
/// no SMIMP. Only ever configured on purpose: without the table, such recipients are
/// refused at RCPT TO. TLS is mandatory and the certificate always verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// The relay's host name, also the name its certificate must carry.
    pub host: String,
    /// Default: 587 with `tls = "starttls"`, 465 with `tls = "tls"`.
    pub port: Option<u16>,
    /// How TLS starts; there is no plaintext mode.
    pub tls: RelayTls,
    /// The CA that issued the relay's certificate (a private CA); when absent, the
    /// public web PKI roots (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// AUTH user name at the relay; needs `password`.
    pub username: Option<String>,
    /// AUTH password at the relay; needs `username`.
    pub password: Option<RelayPassword>,
}

impl RelaySection {
    /// The port to connect to: the configured one, or the standard port of the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            RelayTls::StartTls => 587,
            RelayTls::Tls => 465,
        })
    }
}

/// How a relay connection is protected. Both verify the certificate; neither falls
/// back to plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayTls {
    /// Plain TCP upgraded with STARTTLS (RFC 3207), required before anything is sent.
    #[serde(rename = "starttls")]
    StartTls,
    /// TLS from the first byte (RFC 8314).
    #[serde(rename = "tls")]
    Tls,
}

/// A relay's AUTH password: kept out of Debug output so configuration dumps and logs
/// never show it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RelayPassword(String);

impl RelayPassword {
    /// The password itself, for the AUTH exchange.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RelayPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayPassword(<redacted>)")
    }
}
