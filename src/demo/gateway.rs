//! The demo's gateway: its listeners, bound here on the ports of the last run when
//! they are free (and handed to the gateway, so no port is released and bound again),
//! and its configuration, written from the gateway's own configuration types.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::state::Ports;
use super::{io, listen_on, DemoError, DOMAIN};
use crate::gateway::config::{
    DiscoverySection, GatewayConfig, GatewaySection, ImapSection, KeystoreSection, SmtpSection,
};
use crate::gateway::{Addresses, Listeners};

/// Binds the gateway's four ports: those of the last run when free, others when not.
pub(super) fn bind(ports: &Ports) -> Result<Listeners, DemoError> {
    Ok(Listeners {
        smtp: listen_on(ports.smtp)?,
        smtp_tls: Some(listen_on(ports.smtp_tls)?),
        imap: listen_on(ports.imap)?,
        imap_tls: Some(listen_on(ports.imap_tls)?),
    })
}

/// The gateway's settings for listeners bound `at`, trusting the demo server's CA and finding
/// `example.test` at `server`; paths relative to the file's directory.
pub(super) fn config(at: &Addresses, server: SocketAddr, server_ca: &Path) -> GatewayConfig {
    GatewayConfig {
        gateway: GatewaySection { data_dir: "data".into() },
        keystore: KeystoreSection {
            passphrase_file: Some("passphrase.txt".into()),
            passphrase_env: None,
            passphrase_credential: None,
            // The passphrase lies beside the keystores in this private directory, so
            // stretching it hard would protect nothing here: start-up stays fast instead.
            kdf_memory_kib: 8192,
            kdf_passes: 1,
        },
        keys: Default::default(),
        discovery: DiscoverySection {
            trusted_ca_files: vec![server_ca.to_path_buf()],
            resolve: BTreeMap::from([(DOMAIN.to_string(), server)]),
            timeout: Some(Duration::from_secs(10)),
        },
        smtp: SmtpSection { listen: at.smtp, tls_listen: at.smtp_tls, ..SmtpSection::default() },
        imap: ImapSection { listen: at.imap, tls_listen: at.imap_tls, ..ImapSection::default() },
        delivery: Default::default(),
        relay: BTreeMap::new(),
    }
}

/// Writes the configuration with a note that the demo rewrites it at every start.
pub(super) fn write_config(path: &Path, config: &GatewayConfig) -> Result<(), DemoError> {
    let text =
        toml::to_string(config).map_err(|e| DemoError::ConfigText { path: path.into(), reason: e.to_string() })?;
    let header = "# Written by `smimp-gateway demo` at every start (ports may change); edits are lost.\n";
    std::fs::write(path, format!("{header}{text}")).map_err(io("write", path))
}

/// The ports `listeners` ended up on, to try first next time.
pub(super) fn ports(at: &Addresses, server: u16) -> Ports {
    let optional = |a: Option<SocketAddr>| a.map_or(0, |a| a.port());
    Ports {
        server,
        smtp: at.smtp.port(),
        smtp_tls: optional(at.smtp_tls),
        imap: at.imap.port(),
        imap_tls: optional(at.imap_tls),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[tokio::test]
    async fn the_written_configuration_reads_back_with_the_bound_ports() {
        let dir = super::super::tests::temp("gateway-config");
        let listeners = bind(&Ports::default()).unwrap();
        let server = SocketAddr::from((Ipv4Addr::LOCALHOST, 4242));
        let path = dir.join("gateway.toml");
        write_config(&path, &config(&listeners.addresses().unwrap(), server, &dir.join("ca.pem"))).unwrap();
        let loaded = GatewayConfig::load(&path).unwrap();
        assert_eq!(loaded.smtp.listen, listeners.smtp.local_addr().unwrap());
        assert_eq!(loaded.imap.tls_listen, Some(listeners.imap_tls.as_ref().unwrap().local_addr().unwrap()));
        assert_eq!(loaded.discovery.resolve.get(DOMAIN), Some(&server));
        assert_eq!(loaded.discovery.timeout, Some(Duration::from_secs(10)));
        assert_eq!(loaded.keystore.kdf_memory_kib, 8192);
        assert_eq!(loaded.gateway.data_dir, dir.join("data"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
