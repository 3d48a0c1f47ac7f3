//! What every gateway command works with: the configuration, the gateway's store, the
//! discovery client and the keystore passphrase, opened once; and the one error type
//! of the gateway's commands, whose texts say what to do next, naming the
//! configuration file and key concerned.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::account::AccountError;
use crate::client::{ClientError, ServerClient};
use crate::discovery::{Discovery, DiscoveryError};
use crate::gateway::config::{ConfigError, GatewayConfig};
use crate::keystore::{KeystoreError, Passphrase};
use crate::smimp::address::AddressError;
use crate::store::{GatewayStore, StoreError};

/// Why an account command failed, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the gateway's TLS certificate: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Keystore(#[from] KeystoreError),
    #[error("{0:?} is not an address SMIMP can use: {1}")]
    Address(String, AddressError),
    #[error("cannot reach the SMIMP server of {domain}: {reason}. Check the network, or map the domain with [discovery] resolve in {config}")]
    Unreachable { domain: String, reason: String, config: String },
    #[error("the SMIMP server of {domain} presented a certificate this gateway does not trust ({reason}). If it uses a private CA, add that CA's file to [discovery] trusted_ca_files in {config} (now: {cas:?})")]
    Untrusted { domain: String, reason: String, config: String, cas: Vec<PathBuf> },
    #[error("{address} is already initialised at its server; an account is initialised once. Use the keystore made then, or ask the server's administrator for a new account")]
    AlreadyInitialised { address: String },
    #[error("{address} is already set up on this gateway (keystore {keystore})")]
    AlreadyHere { address: String, keystore: String },
    #[error("the server refused the one-time initialisation password for {address}: check it with the server's administrator")]
    WrongPassword { address: String },
    #[error(
        "{address} is not set up on this gateway: run `smimp-gateway init --config {config} --address {address}` first"
    )]
    NotHere { address: String, config: String },
    #[error("the SMIMP server refused: {0}")]
    Server(ClientError),
    #[error("{0}")]
    Account(AccountError),
    #[error("the answer to initialising {address} was lost ({reason}). The server may have accepted it, so the keystore {keystore} is kept; ask the server's administrator whether {address} is initialised (`server list-accounts`) before trying again")]
    Interrupted { address: String, keystore: String, reason: String },
    #[error("{config}: {reason}")]
    Relay { reason: String, config: String },
    #[error(transparent)]
    Device(crate::gateway::devices::DeviceCommandError),
}

/// Everything an account command needs.
pub struct Context {
    pub config_path: PathBuf,
    pub config: GatewayConfig,
    pub store: GatewayStore,
    pub discovery: Discovery,
    pub passphrase: Passphrase,
}

impl Context {
    /// Loads the configuration, opens the database, reads the passphrase.
    pub async fn open(config_path: &Path) -> Result<Self, CommandError> {
        let config = GatewayConfig::load(config_path)?;
        let passphrase = Passphrase::from_source(&config.passphrase_source())?;
        let store = GatewayStore::open(&config.database()).await?;
        let discovery = Discovery::new(
            &config.discovery.trusted_ca_files,
            config.discovery.resolve.clone(),
            config.discovery.timeout.unwrap_or(Duration::from_secs(30)),
        )
        .map_err(|e| CommandError::Unreachable {
            domain: "-".into(),
            reason: e.to_string(),
            config: config_path.display().to_string(),
        })?;
        Ok(Self { config_path: config_path.into(), config, store, discovery, passphrase })
    }

    /// Turns a client error into the command error that names the setting to change.
    pub fn explain(&self, domain: &str, err: ClientError) -> CommandError {
        let config = self.config_path.display().to_string();
        match err {
            ClientError::Discovery(DiscoveryError::Certificate { reason, .. }) => CommandError::Untrusted {
                domain: domain.into(),
                reason,
                config,
                cas: self.config.discovery.trusted_ca_files.clone(),
            },
            ClientError::Discovery(DiscoveryError::Unreachable { reason, .. }) => {
                CommandError::Unreachable { domain: domain.into(), reason, config }
            }
            other => CommandError::Server(other),
        }
    }

    /// The account's server, found and version-checked.
    pub async fn server(&self, domain: &str) -> Result<ServerClient, CommandError> {
        ServerClient::connect(&self.discovery, domain).await.map_err(|e| self.explain(domain, e))
    }
}
