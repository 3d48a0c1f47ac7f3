//! The demo's SMIMP server for `example.test`, in this process: its configuration is
//! written from the server's own configuration types at every start (the port may
//! change, so edits would be lost), and a [`DemoServer`] stops it when dropped, so no
//! exit path of the demo leaves it running.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{io, listen_on, private_dir, DemoError, DOMAIN};
use crate::listen::{Shutdown, StopHandle};
use crate::server::admin::AdminError;
use crate::server::config::{PowSection, ServerConfig, ServerSection, TlsSection};
use crate::server::state::AppState;

/// The running server; dropping it asks the server to stop.
pub(super) struct DemoServer {
    pub(super) config: ServerConfig,
    pub(super) state: Arc<AppState>,
    /// Its development CA, which the gateway and `curl` trust.
    pub(super) ca_file: PathBuf,
    pub(super) port: u16,
    stop: StopHandle,
    running: crate::server::Running,
}

impl DemoServer {
    /// Starts the server on the port of the last run when it is free (`remembered`),
    /// or on a free one.
    pub(super) async fn start(dir: &Path, remembered: u16, zero_bits: u32) -> Result<DemoServer, DemoError> {
        let server_dir = dir.join("server");
        private_dir(&server_dir)?;
        let listener = listen_on(remembered)?;
        let port = listener.local_addr().map_err(io("read the address of", &server_dir))?.port();
        let path = server_dir.join("server.toml");
        write_config(&path, &config(port, zero_bits))?;
        let config = ServerConfig::load(&path)?;
        let (stop, shutdown) = Shutdown::new();
        let running = crate::server::start(config.clone(), listener, shutdown).await?;
        let ca_file = running.dev_ca_file.clone().ok_or(AdminError::NoDevCa)?;
        Ok(DemoServer { config, state: Arc::clone(&running.state), ca_file, port, stop, running })
    }

    /// Where the server listens.
    pub(super) fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Stops the server and waits until it has.
    pub(super) async fn stop(self) {
        self.stop.stop();
        if let Err(err) = self.running.finished().await {
            tracing::error!(error = %err, "the demo's SMIMP server stopped with an error");
        }
    }
}

/// The server's settings: the demo's domain on loopback, its own development CA, the
/// chosen proof-of-work difficulty; paths relative to the file's directory.
fn config(port: u16, zero_bits: u32) -> ServerConfig {
    ServerConfig {
        server: ServerSection {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            domain: DOMAIN.into(),
            public_base: format!("{DOMAIN}:{port}"),
            base_path: String::new(),
            database: "server.sqlite".into(),
        },
        tls: TlsSection { dev_ca_dir: "tls".into(), ..TlsSection::default() },
        pow: PowSection { default_zero_bits: zero_bits, ..PowSection::default() },
        limits: Default::default(),
        discovery: Default::default(),
    }
}

fn write_config(path: &Path, config: &ServerConfig) -> Result<(), DemoError> {
    let text =
        toml::to_string(config).map_err(|e| DemoError::ConfigText { path: path.into(), reason: e.to_string() })?;
    let header = "# Written by `smimp-gateway demo` at every start (its port may change); edits are lost.\n";
    std::fs::write(path, format!("{header}{text}")).map_err(io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_configuration_reads_back_as_written() {
        let dir = super::super::tests::temp("server-config");
        let path = dir.join("server.toml");
        write_config(&path, &config(4242, 7)).unwrap();
        let loaded = ServerConfig::load(&path).unwrap();
        assert_eq!(loaded.server.listen, SocketAddr::from((Ipv4Addr::LOCALHOST, 4242)));
        assert_eq!(loaded.server.public_base, "example.test:4242");
        assert_eq!(loaded.server.database, dir.join("server.sqlite"));
        assert_eq!(loaded.pow.default_zero_bits, 7);
        assert_eq!(loaded.tls.dev_ca_dir, dir.join("tls"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
