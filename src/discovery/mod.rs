//! Finding an SMIMP server for a domain, fail closed (spec "Finding Mail Servers",
//! "HTTPS Transport"; docs/protocol.md §8.0): `https://{domain}/.well-known/smimp.txt`,
//! first line only, `https://` added when missing, `http://` refused, redirects only
//! to HTTPS, certificates always verified (public roots plus configured private CAs).
//!
//! Leaf utility shared by the gateway's client and the reference server (which looks
//! up remote users' keys, and connects only to public addresses: [`public_only`]);
//! depends only on `tls`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

mod public_only;

pub use public_only::{is_public, PublicOnlyResolver};

/// Why a server could not be found or reached. No request data is sent after any of these.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("the TLS configuration could not be built: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("the HTTPS client could not be built: {0}")]
    Client(String),
    #[error("{url}: the server's certificate is not trusted ({reason})")]
    Certificate { url: String, reason: String },
    #[error("{url}: cannot connect ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("{url}: answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{domain}: /.well-known/smimp.txt names a plain http:// server, which must never be used")]
    InsecureRecord { domain: String },
    #[error("{domain}: /.well-known/smimp.txt is empty or not a server address ({record:?})")]
    BadRecord { domain: String, record: String },
    #[error("{url}: {host} is a private, local or reserved address, which this server does not contact")]
    PrivateAddress { url: String, host: String },
    #[error("{domain:?} is not a domain name a server can be found by ({reason})")]
    BadDomain { domain: String, reason: String },
}

/// Which addresses discovery may connect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Any address (the gateway: its user chooses whom to write to).
    Any,
    /// Public addresses only, except domains mapped in `resolve` (the reference server,
    /// which remote users make look domains up).
    PublicOnly,
}

/// The host of `url` when it is an IP literal.
fn ip_literal(url: &reqwest::Url) -> Option<IpAddr> {
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// An HTTPS client that only speaks to verified servers, and the domain resolution
/// overrides of a private deployment.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// For /.well-known/smimp.txt, which may redirect (to HTTPS only).
    well_known: reqwest::Client,
    /// For API calls: no redirects.
    api: reqwest::Client,
    resolve: BTreeMap<String, SocketAddr>,
    reach: Reach,
}

impl Discovery {
    /// A client trusting the public roots plus `extra_ca_files`; `resolve` maps
    /// domains to socket addresses in place of DNS (its port is used for discovery).
    pub fn new(
        extra_ca_files: &[PathBuf],
        resolve: BTreeMap<String, SocketAddr>,
        timeout: Duration,
    ) -> Result<Self, DiscoveryError> {
        Self::with_reach(extra_ca_files, resolve, timeout, Reach::Any)
    }

    /// [`Discovery::new`] limited to the addresses `reach` allows.
    pub fn with_reach(
        extra_ca_files: &[PathBuf],
        resolve: BTreeMap<String, SocketAddr>,
        timeout: Duration,
        reach: Reach,
    ) -> Result<Self, DiscoveryError> {
        let tls = crate::tls::client_config(extra_ca_files)?;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let private = reach == Reach::PublicOnly && ip_literal(attempt.url()).is_some_and(|ip| !is_public(ip));
            if attempt.url().scheme() != "https" {
                attempt.error("a redirect to a non-HTTPS address was refused")
            } else if private {
                attempt.error("a redirect to a private, local or reserved address was refused")
            } else if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(redirects)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        let mut api = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls::client_config(extra_ca_files)?)
            .https_only(true)
            // API calls carry the session header and bodies: never to another place.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)));
        if reach == Reach::PublicOnly {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
            api = api.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        // Overrides come before the resolver: a mapped domain is trusted as configured.
        for (domain, addr) in &resolve {
            builder = builder.resolve(domain, *addr);
            api = api.resolve(domain, *addr);
        }
        let well_known = builder.build().map_err(|e| DiscoveryError::Client(e.to_string()))?;
        let api = api.build().map_err(|e| DiscoveryError::Client(e.to_string()))?;
        Ok(Self { well_known, api, resolve, reach })
    }

    /// Refuses an IP-literal host outside what this client may reach (DNS names are
    /// checked by the resolver as they are looked up).
    fn check_literal(&self, url: &str) -> Result<(), DiscoveryError> {
        let Ok(parsed) = reqwest::Url::parse(url) else { return Ok(()) };
        match ip_literal(&parsed) {
            Some(ip) if self.reach == Reach::PublicOnly && !is_public(ip) => {
                Err(DiscoveryError::PrivateAddress { url: url.into(), host: ip.to_string() })
            }
            _ => Ok(()),
        }
    }

    /// The verified HTTPS client for API calls to a discovered server (no redirects).
    pub fn client(&self) -> &reqwest::Client {
        &self.api
    }

    /// The well-known URL for `domain` (with the override port, when one is configured).
    pub fn well_known_url(&self, domain: &str) -> String {
        match self.resolve.get(domain) {
            Some(addr) if addr.port() != 443 => format!("https://{domain}:{}/.well-known/smimp.txt", addr.port()),
            _ => format!("https://{domain}/.well-known/smimp.txt"),
        }
    }

    /// The API base URL of `domain`'s SMIMP server, without a trailing slash.
    pub async fn base_url(&self, domain: &str) -> Result<String, DiscoveryError> {
        let url = self.well_known_url(domain);
        self.check_literal(&url)?;
        let response = self.well_known.get(&url).send().await.map_err(|e| describe(&url, &e))?;
        if !response.status().is_success() {
            return Err(DiscoveryError::Status { url, status: response.status().as_u16() });
        }
        let bytes = read_capped(response, MAX_RECORD_BYTES).await.map_err(|e| e.at(&url))?;
        let base = parse_record(domain, &String::from_utf8_lossy(&bytes))?;
        self.check_literal(&base)?;
        Ok(base)
    }
}

/// The most a smimp.txt file may hold.
pub const MAX_RECORD_BYTES: usize = 4096;

/// Why a body could not be read.
#[derive(Debug)]
pub enum ReadError {
    TooLarge(usize),
    Transport(reqwest::Error),
}

impl ReadError {
    /// As a discovery error for `url`.
    pub fn at(self, url: &str) -> DiscoveryError {
        match self {
            ReadError::TooLarge(limit) => DiscoveryError::Unreachable {
                url: url.into(),
                reason: format!("the answer is larger than {limit} bytes"),
            },
            ReadError::Transport(e) => describe(url, &e),
        }
    }
}

/// Reads a response body, refusing one longer than `limit` bytes without reading it all.
pub async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the first line of a smimp.txt file into an HTTPS base URL.
pub fn parse_record(domain: &str, text: &str) -> Result<String, DiscoveryError> {
    let first = text.lines().next().unwrap_or_default().trim();
    let bad = || DiscoveryError::BadRecord { domain: domain.into(), record: first.into() };
    if first.to_ascii_lowercase().starts_with("http://") {
        return Err(DiscoveryError::InsecureRecord { domain: domain.into() });
    }
    let with_scheme = if first.to_ascii_lowercase().starts_with("https://") {
        first.to_string()
    } else if first.contains("://") {
        return Err(bad());
    } else {
        format!("https://{first}")
    };
    let url = reqwest::Url::parse(&with_scheme).map_err(|_| bad())?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) || url.query().is_some() || first.is_empty()
    {
        return Err(bad());
    }
    Ok(with_scheme.trim_end_matches('/').to_string())
}

/// Turns a transport error into a reason a user can act on.
pub fn describe(url: &str, error: &reqwest::Error) -> DiscoveryError {
    if let Some(tls) = find_tls_error(error) {
        return DiscoveryError::Certificate { url: url.into(), reason: tls.to_string() };
    }
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(err) = source {
        reason = format!("{reason}: {err}");
        source = err.source();
    }
    DiscoveryError::Unreachable { url: url.into(), reason }
}

/// The TLS error inside a transport error, looking through `io::Error` wrappers,
/// whose `source()` skips the error they wrap.
fn find_tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        if let Some(tls) = find_tls_error(inner) {
            return Some(tls);
        }
    }
    error.source().and_then(find_tls_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_fail_closed() {
        assert_eq!(
            parse_record("example.org", "smimp.example.org\nother.example\n").unwrap(),
            "https://smimp.example.org"
        );
        assert_eq!(
            parse_record("example.org", "https://example.org:8443/smimp/\n").unwrap(),
            "https://example.org:8443/smimp"
        );
        assert!(matches!(
            parse_record("example.org", "http://smimp.example.org"),
            Err(DiscoveryError::InsecureRecord { .. })
        ));
        assert!(matches!(
            parse_record("example.org", "HTTP://smimp.example.org"),
            Err(DiscoveryError::InsecureRecord { .. })
        ));
        assert!(matches!(parse_record("example.org", ""), Err(DiscoveryError::BadRecord { .. })));
        assert!(matches!(parse_record("example.org", "ftp://x"), Err(DiscoveryError::BadRecord { .. })));
    }
}
