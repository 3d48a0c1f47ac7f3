//! TLS material for every listener and client of the project (leaf utility): loading
//! PEM certificates and keys, a private development CA that issues server
//! certificates, and rustls configurations. Verification is never disabled: a
//! private deployment (and every test) trusts its own CA instead.
//!
//! Depends on nothing else in the crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be loaded or made. Each names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("{path}: not a usable PEM file: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("cannot make a certificate: {0}")]
    Generate(String),
    #[error("the TLS configuration is not usable: {0}")]
    Config(String),
}

/// Installs the one crypto provider the project uses (ring). Idempotent; must run
/// before any rustls configuration is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads every certificate in a PEM file.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem { path: path.into(), reason: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// Reads the private key of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: path.into() },
        other => TlsError::BadPem { path: path.into(), reason: other.to_string() },
    })
}

/// A server configuration from a certificate chain file and its key file.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    Ok(Arc::new(build_server_config(cert_file, key_file)?))
}

/// The configuration of the gateway's own SMTP and IMAP listeners: as `server_config`,
/// but the handshake ends with the server's Finished and nothing follows it unasked, so
/// no TLS 1.3 session tickets. After STARTTLS the client speaks first, and a threaded
/// client (offlineimap's imaplib2: one thread reading, another writing the same OpenSSL
/// connection) that receives a ticket while it writes its first command can lose that
/// command and wait for the login timeout. Mail clients on loopback gain nothing from
/// resumption.
pub fn mail_server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = build_server_config(cert_file, key_file)?;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

fn build_server_config(cert_file: &Path, key_file: &Path) -> Result<rustls::ServerConfig, TlsError> {
    install_crypto_provider();
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(load_certificates(cert_file)?, load_private_key(key_file)?)
        .map_err(|e| TlsError::Config(format!("{} / {}: {e}", cert_file.display(), key_file.display())))
}

/// A client configuration that trusts the public web PKI plus `extra_ca_files`
/// (private deployments, tests). There is deliberately no way to trust everything.
pub fn client_config(extra_ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, TlsError> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for file in extra_ca_files {
        for cert in load_certificates(file)? {
            roots
                .add(cert)
                .map_err(|e| TlsError::BadPem { path: file.clone(), reason: format!("not a CA certificate: {e}") })?;
        }
    }
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// Files of a development CA and the server certificate it issued.
#[derive(Debug, Clone)]
pub struct DevCertificates {
    /// The CA certificate that clients must trust.
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, as mail clients
/// show it (`AB:CD:…`), so a user can compare what the client shows with what the
/// gateway printed before trusting it.
pub fn sha256_fingerprint(path: &Path) -> Result<String, TlsError> {
    let certs = load_certificates(path)?;
    let first = certs.first().ok_or_else(|| TlsError::BadPem { path: path.into(), reason: "no certificate".into() })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, first.as_ref());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":"))
}

/// Which names a development CA may certify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaScope {
    /// Any name: the reference server's CA, for whatever domains it is configured with.
    AnyName,
    /// This machine only: the CA carries X.509 name constraints permitting just the
    /// DNS name `localhost` (and names under it), 127.0.0.1/32 and ::1/128, so a copy of
    /// its key cannot mint a certificate for any other site that a client trusting the
    /// CA would accept. Its directory is kept private (0700).
    Loopback,
}

/// Creates (or reuses) a private CA in `dir` and a server certificate for `names`
/// (DNS names and IP addresses), the CA able to certify any name. Keys are written with
/// mode 0600. An existing set is reused, so clients that trust the CA keep working
/// across restarts; it is re-issued when the names change.
pub fn ensure_dev_certificates(dir: &Path, names: &[String]) -> Result<DevCertificates, TlsError> {
    ensure_certificates(dir, names, CaScope::AnyName)
}

/// As [`ensure_dev_certificates`], for a CA confined to this machine
/// ([`CaScope::Loopback`]): the gateway's local CA, which mail clients trust. A CA file
/// made before the constraint existed is kept as it is, since the mail clients already
/// trust that one; its key file and directory get the private modes.
pub fn ensure_loopback_certificates(dir: &Path, names: &[String]) -> Result<DevCertificates, TlsError> {
    ensure_certificates(dir, names, CaScope::Loopback)
}

fn ensure_certificates(dir: &Path, names: &[String], scope: CaScope) -> Result<DevCertificates, TlsError> {
    let files = DevCertificates {
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server-key.pem"),
    };
    make_dir(dir, scope)?;
    // Two processes (a server starting, `export-ca`) must not make two different CAs.
    let lock_path = dir.join(".lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|source| TlsError::Write { path: lock_path.clone(), source })?;
    lock.lock().map_err(|source| TlsError::Write { path: lock_path, source })?;
    let ca_key_file = dir.join("ca-key.pem");
    // Key files written by older versions (or copied in) are made private too.
    for key in [&ca_key_file, &files.key_file] {
        if key.exists() {
            set_mode(key, 0o600)?;
        }
    }
    let names_file = dir.join("server-names.txt");
    let wanted = names.join("\n");
    let current = std::fs::read_to_string(&names_file).ok();
    if files.ca_file.exists()
        && files.cert_file.exists()
        && files.key_file.exists()
        && current.as_deref() == Some(&wanted)
    {
        return Ok(files);
    }
    let gen = |e: rcgen::Error| TlsError::Generate(e.to_string());
    // The CA certificate on disk stays as it is; re-signing the same parameters with
    // the same key gives an issuer with the same name and key identifier to sign with.
    let (ca_cert, ca_key) = if files.ca_file.exists() && ca_key_file.exists() {
        let ca_key = rcgen::KeyPair::from_pem(&read_text(&ca_key_file)?).map_err(gen)?;
        (ca_params(scope)?.self_signed(&ca_key).map_err(gen)?, ca_key)
    } else {
        let ca_key = rcgen::KeyPair::generate().map_err(gen)?;
        let cert = ca_params(scope)?.self_signed(&ca_key).map_err(gen)?;
        write_file(&ca_key_file, ca_key.serialize_pem().as_bytes(), true)?;
        write_file(&files.ca_file, cert.pem().as_bytes(), false)?;
        (cert, ca_key)
    };
    let server_key = rcgen::KeyPair::generate().map_err(gen)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(gen)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, names.first().map(String::as_str).unwrap_or("localhost"));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &ca_cert, &ca_key).map_err(gen)?;
    write_file(&files.cert_file, cert.pem().as_bytes(), false)?;
    write_file(&files.key_file, server_key.serialize_pem().as_bytes(), true)?;
    write_file(&names_file, wanted.as_bytes(), false)?;
    Ok(files)
}

/// The CA's directory; a loopback CA's is private to its owner (0700), also when an
/// older version made it with the default mode.
fn make_dir(dir: &Path, scope: CaScope) -> Result<(), TlsError> {
    use std::os::unix::fs::DirBuilderExt;
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    if scope == CaScope::Loopback {
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| TlsError::Write { path: dir.into(), source })?;
    if scope == CaScope::Loopback {
        set_mode(dir, 0o700)?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|source| TlsError::Write { path: path.into(), source })
}

fn ca_params(scope: CaScope) -> Result<rcgen::CertificateParams, TlsError> {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "smimp-gateway local CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    if scope == CaScope::Loopback {
        params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![
                rcgen::GeneralSubtree::DnsName("localhost".into()),
                rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_v4_prefix([127, 0, 0, 1], 32)),
                rcgen::GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_v6_prefix(
                    std::net::Ipv6Addr::LOCALHOST.octets(),
                    128,
                )),
            ],
            excluded_subtrees: Vec::new(),
        });
    }
    Ok(params)
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.into(), source })
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TlsError::Write { path: path.into(), source };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .map_err(err)?;
    // A temporary file left by an interrupted run keeps its old mode: set it again.
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certificates_are_made_once_and_load() {
        let dir = std::env::temp_dir().join(format!("smimp-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let names = vec!["example.org".to_string(), "127.0.0.1".to_string()];
        let first = ensure_dev_certificates(&dir, &names).unwrap();
        let ca_before = std::fs::read(&first.ca_file).unwrap();
        let again = ensure_dev_certificates(&dir, &names).unwrap();
        assert_eq!(std::fs::read(&again.ca_file).unwrap(), ca_before);
        server_config(&again.cert_file, &again.key_file).unwrap();
        client_config(std::slice::from_ref(&again.ca_file)).unwrap();
        // New names re-issue the server certificate under the same CA.
        ensure_dev_certificates(&dir, &["other.example".to_string()]).unwrap();
        assert_eq!(std::fs::read(&first.ca_file).unwrap(), ca_before);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first.key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_empty_files_are_named() {
        let missing = Path::new("/nonexistent/cert.pem");
        let err = load_certificates(missing).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
        let empty = std::env::temp_dir().join(format!("smimp-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "nothing here").unwrap();
        assert!(matches!(load_certificates(&empty), Err(TlsError::NoCertificate { .. })));
        assert!(matches!(load_private_key(&empty), Err(TlsError::NoKey { .. })));
        std::fs::remove_file(&empty).unwrap();
    }
}
