//! The gateway's local CA, the one mail clients are told to trust (README, security
//! model): its private key is readable by its owner only, and the CA can certify this
//! machine alone — X.509 name constraints permit `localhost`, 127.0.0.1 and ::1 — so
//! whoever obtains a copy of the key still cannot mint a certificate for another site
//! that those mail clients would accept. The reference server's development CA stays
//! free to certify the domains it is configured with.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use smimp_gateway::gateway::config::GatewayConfig;

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smimp-local-ca-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The gateway's own certificates, made the way `run` makes them, for a configuration
/// whose data directory is inside `dir`.
fn gateway_certificates(dir: &Path) -> smimp_gateway::tls::DevCertificates {
    let config_file = dir.join("gateway.toml");
    std::fs::write(&config_file, "[gateway]\ndata_dir = \"data\"\n[keystore]\npassphrase_env = \"PASS\"\n").unwrap();
    let config = GatewayConfig::load(&config_file).unwrap();
    smimp_gateway::gateway::local_certificates(&config).unwrap()
}

/// The permission bits, in octal as `ls` and `chmod` write them.
fn mode(path: &Path) -> String {
    format!("{:o}", std::fs::metadata(path).unwrap().permissions().mode() & 0o777)
}

/// A rustls client's certificate verifier (webpki) that trusts only `ca_file`.
fn verifier(ca_file: &Path) -> Arc<dyn ServerCertVerifier> {
    smimp_gateway::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in smimp_gateway::tls::load_certificates(ca_file).unwrap() {
        roots.add(cert).unwrap();
    }
    rustls::client::WebPkiServerVerifier::builder(Arc::new(roots)).build().unwrap()
}

fn verify(verifier: &dyn ServerCertVerifier, leaf: &CertificateDer<'static>, name: &str) -> Result<(), rustls::Error> {
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    verifier.verify_server_cert(leaf, &[], &server_name, &[], UnixTime::now()).map(|_| ())
}

/// What anyone holding a copy of the CA's key file can do: sign a server certificate
/// for `names` under the CA's name and key.
fn mint(ca_key_file: &Path, names: &[&str]) -> CertificateDer<'static> {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_key_file).unwrap()).unwrap();
    let mut issuer = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    issuer.distinguished_name.push(rcgen::DnType::CommonName, "smimp-gateway local CA");
    issuer.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let issuer = issuer.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, names[0]);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.signed_by(&leaf_key, &issuer, &ca_key).unwrap().der().clone()
}

#[test]
fn the_local_ca_key_is_private_to_its_owner() {
    let dir = scratch("modes");
    let certs = gateway_certificates(&dir);
    let tls_dir = certs.ca_file.parent().unwrap();
    assert_eq!(mode(&tls_dir.join("ca-key.pem")), "600", "the CA's private key");
    assert_eq!(mode(&certs.key_file), "600", "the server certificate's private key");
    assert_eq!(mode(tls_dir), "700", "the directory holding them");
    // A directory and key file left readable (by an older version, or a copy) are made
    // private again the next time the gateway starts.
    std::fs::set_permissions(tls_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(tls_dir.join("ca-key.pem"), std::fs::Permissions::from_mode(0o644)).unwrap();
    gateway_certificates(&dir);
    assert_eq!(mode(&tls_dir.join("ca-key.pem")), "600");
    assert_eq!(mode(tls_dir), "700");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_local_ca_certifies_this_machine_and_nothing_else() {
    let dir = scratch("constraints");
    let certs = gateway_certificates(&dir);
    let verifier = verifier(&certs.ca_file);
    // The certificate the gateway shows its mail clients verifies for every loopback name.
    let served = smimp_gateway::tls::load_certificates(&certs.cert_file).unwrap().remove(0);
    for name in ["localhost", "127.0.0.1", "::1"] {
        verify(verifier.as_ref(), &served, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // A certificate minted with the CA's key verifies for localhost ...
    let ca_key_file = certs.ca_file.with_file_name("ca-key.pem");
    verify(verifier.as_ref(), &mint(&ca_key_file, &["localhost"]), "localhost").unwrap();
    // ... and is refused for any other name, even though the signature is the CA's.
    for (names, name) in [
        (&["example.org"][..], "example.org"),
        (&["mail.example.com", "localhost"][..], "mail.example.com"),
        (&["localhost.example.org"][..], "localhost.example.org"),
        (&["192.0.2.1"][..], "192.0.2.1"),
        (&["127.0.0.2"][..], "127.0.0.2"),
    ] {
        let Err(err) = verify(verifier.as_ref(), &mint(&ca_key_file, names), name) else {
            panic!("a certificate for {name} minted with the local CA's key was accepted");
        };
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(rustls::CertificateError::Other(ref other))
                if other.to_string().contains("NameConstraintViolation")),
            "{name}: refused, but not for the name constraint: {err:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_servers_development_ca_is_not_constrained() {
    let dir = scratch("server");
    let names = vec!["example.org".to_string(), "127.0.0.1".to_string()];
    let certs = smimp_gateway::tls::ensure_dev_certificates(&dir, &names).unwrap();
    let verifier = verifier(&certs.ca_file);
    let served = smimp_gateway::tls::load_certificates(&certs.cert_file).unwrap().remove(0);
    verify(verifier.as_ref(), &served, "example.org").unwrap();
    verify(verifier.as_ref(), &mint(&dir.join("ca-key.pem"), &["other.example"]), "other.example").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_ca_made_before_the_constraint_is_kept_and_still_works() {
    // An unconstrained CA in the gateway's directory, as older versions made it: the
    // mail clients already trust that file, so the gateway keeps it and issues under it.
    let dir = scratch("upgrade");
    let tls_dir = dir.join("data/tls");
    let old = smimp_gateway::tls::ensure_dev_certificates(&tls_dir, &["localhost".to_string()]).unwrap();
    let ca_before = std::fs::read(&old.ca_file).unwrap();
    std::fs::write(tls_dir.join("server-names.txt"), "older names").unwrap();
    let certs = gateway_certificates(&dir);
    assert_eq!(std::fs::read(&certs.ca_file).unwrap(), ca_before, "the trusted CA file is unchanged");
    let served = smimp_gateway::tls::load_certificates(&certs.cert_file).unwrap().remove(0);
    verify(verifier(&certs.ca_file).as_ref(), &served, "127.0.0.1").unwrap();
    assert_eq!(mode(&tls_dir.join("ca-key.pem")), "600");
    assert_eq!(mode(&tls_dir), "700");
    std::fs::remove_dir_all(&dir).unwrap();
}
