//! The optional legacy relay (issue 5): for a domain the gateway's configuration lists
//! under `[relay."DOMAIN"]`, mail leaves SMIMP's protection and is handed, as the mail
//! client submitted it but without its `Bcc` fields (RFC 5322 §3.6.3; removed when it is
//! queued), to that SMTP server (lettre's async SMTP transport, RFC 6409 submission),
//! with the account's own address as envelope sender and `From:` (submission checks
//! both). Off by default: with no relay table nothing is ever sent as plain email.
//!
//! TLS is mandatory (STARTTLS required, or implicit TLS, RFC 8314) and the relay's
//! certificate is always verified, against its configured private CA or else the public
//! web PKI roots; an unverified relay is never sent to. A 5xx reply fails the delivery
//! for good (the sender gets a delivery report); connection, TLS and 4xx failures are
//! retried like SMIMP deliveries.

use std::collections::{BTreeMap, HashMap};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::backend::outbound::DeliveryError;
use crate::backend::relay_settings::{RelaySection, RelayTls};
use crate::smimp::address::normalise_domain;

/// Why a configured relay cannot be set up. Names the domain's table.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("[relay.\"{domain}\"] ca_file: {source}")]
    Ca { domain: String, source: crate::tls::TlsError },
    #[error("[relay.\"{domain}\"]: {message}")]
    Setup { domain: String, message: String },
}

/// One domain's relay: where it is and the transport that reaches it.
pub struct Relay {
    host: String,
    port: u16,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Relay {
    /// Builds the transport for one `[relay."DOMAIN"]` table. Nothing connects yet.
    fn new(domain: &str, section: &RelaySection) -> Result<Self, RelayError> {
        crate::tls::install_crypto_provider();
        let setup =
            |e: lettre::transport::smtp::Error| RelayError::Setup { domain: domain.into(), message: e.to_string() };
        let mut tls = TlsParameters::builder(section.host.clone());
        match &section.ca_file {
            Some(file) => {
                let certificates = crate::tls::load_certificates(file)
                    .map_err(|source| RelayError::Ca { domain: domain.into(), source })?;
                tls = tls.certificate_store(CertificateStore::None);
                for der in certificates {
                    tls = tls.add_root_certificate(Certificate::from_der(der.to_vec()).map_err(setup)?);
                }
            }
            None => tls = tls.certificate_store(CertificateStore::WebpkiRoots),
        }
        let tls = tls.build_rustls().map_err(setup)?;
        let tls = match section.tls {
            RelayTls::StartTls => Tls::Required(tls),
            RelayTls::Tls => Tls::Wrapper(tls),
        };
        // `builder_dangerous` only means "no TLS chosen yet": it is chosen on the next line,
        // and both choices verify the certificate.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(section.host.as_str())
            .port(section.port())
            .tls(tls);
        if let (Some(username), Some(password)) = (&section.username, &section.password) {
            builder = builder.credentials(Credentials::new(username.clone(), password.expose().to_string()));
        }
        Ok(Self { host: section.host.clone(), port: section.port(), transport: builder.build() })
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Hands `message` (as submitted) to the relay for one recipient, with the envelope
    /// sender `from` ('' for the null reverse-path). One connection per call.
    pub async fn send(&self, from: &str, to: &str, message: &[u8]) -> Result<(), DeliveryError> {
        let bad = |what: &str, value: &str, e: lettre::address::AddressError| {
            DeliveryError::Permanent(format!("the {what} {value:?} cannot be used with the relay: {e}"))
        };
        let from = match from {
            "" => None,
            from => Some(from.parse().map_err(|e| bad("envelope sender", from, e))?),
        };
        let to = to.parse().map_err(|e| bad("recipient", to, e))?;
        let envelope = Envelope::new(from, vec![to])
            .map_err(|e| DeliveryError::Permanent(format!("the relay envelope is not usable: {e}")))?;
        // lettre ends DATA with CRLF . CRLF after the bytes it is given, so the line end
        // that closes the message's last line is left to it; otherwise the relay would
        // see one empty line more than was submitted.
        let message = message.strip_suffix(b"\r\n").unwrap_or(message);
        match self.transport.send_raw(&envelope, message).await {
            Ok(_) => Ok(()),
            Err(err) if err.is_permanent() => {
                Err(DeliveryError::Permanent(format!("the legacy relay {} refused the message: {err}", self.server())))
            }
            Err(err) => {
                Err(DeliveryError::Transient(format!("the legacy relay {} failed: {}", self.server(), chain(&err))))
            }
        }
    }
}

/// An error with its causes, so a TLS failure says which certificate check failed.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Every configured relay, by normalised recipient domain. Empty by default.
#[derive(Default)]
pub struct Relays {
    by_domain: HashMap<String, Relay>,
}

impl Relays {
    /// The relays of the configuration's `[relay."DOMAIN"]` tables (domains already
    /// normalised by `GatewayConfig::validate`).
    pub fn from_config(sections: &BTreeMap<String, RelaySection>) -> Result<Self, RelayError> {
        let by_domain = sections
            .iter()
            .map(|(domain, section)| Ok((domain.clone(), Relay::new(domain, section)?)))
            .collect::<Result<_, RelayError>>()?;
        Ok(Self { by_domain })
    }

    /// The relay for a recipient (`user@domain` as in RCPT TO) and its normalised
    /// domain, when that domain has one. A domain with a relay is always relayed: its
    /// owner declared it legacy, so SMIMP is not asked.
    pub fn for_recipient(&self, recipient: &str) -> Option<(&str, &Relay)> {
        if self.by_domain.is_empty() {
            return None;
        }
        let (_, domain) = recipient.rsplit_once('@')?;
        self.by_domain.get_key_value(&normalise_domain(domain).ok()?).map(|(d, r)| (d.as_str(), r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(ca_file: Option<&str>) -> RelaySection {
        let text = match ca_file {
            Some(file) => format!("host = \"smtp.legacy.example\"\ntls = \"starttls\"\nca_file = \"{file}\"\n"),
            None => "host = \"smtp.legacy.example\"\ntls = \"tls\"\n".to_string(),
        };
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn only_the_configured_domains_are_relayed() {
        assert!(Relays::default().for_recipient("bob@legacy.example").is_none(), "no relay unless configured");
        let relays = Relays::from_config(&BTreeMap::from([("legacy.example".to_string(), section(None))])).unwrap();
        let (domain, relay) = relays.for_recipient("First.Last@Legacy.Example.").unwrap();
        assert_eq!((domain, relay.server().as_str()), ("legacy.example", "smtp.legacy.example:465"));
        for other in ["bob@example.org", "bob@sub.legacy.example", "bob@legacy.example.org", "no-at-sign"] {
            assert!(relays.for_recipient(other).is_none(), "{other}");
        }
    }

    #[test]
    fn an_unreadable_ca_file_names_the_relay_and_the_file() {
        let sections = BTreeMap::from([("legacy.example".to_string(), section(Some("/nonexistent/relay-ca.pem")))]);
        let err = Relays::from_config(&sections).err().expect("no relay without its CA").to_string();
        assert!(err.contains("[relay.\"legacy.example\"]") && err.contains("/nonexistent/relay-ca.pem"), "{err}");
    }
}
