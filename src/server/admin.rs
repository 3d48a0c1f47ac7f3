//! Building a server from its configuration, and the administrator's commands
//! (`server add-account`, `list-accounts`, `remove-account`, `export-ca`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};

use crate::discovery::{Discovery, DiscoveryError, Reach};
use crate::server::config::ServerConfig;
use crate::server::routes::account::password_check;
use crate::server::state::AppState;
use crate::server::store::{AccountRow, ServerStore, StoreError, Write};
use crate::smimp::address::{Address, AddressError};
use crate::smimp::wire::init_password_hash;
use crate::tls::TlsError;

/// Why a server could not be set up or an administrative command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("{0:?} is not an SMIMP address: {1}")]
    Address(String, AddressError),
    #[error("{address} is not of this server's domain {domain}")]
    ForeignDomain { address: String, domain: String },
    #[error("the account {0} already exists")]
    Exists(String),
    #[error("there is no account {0}")]
    Missing(String),
    #[error("no development CA is in use: this server's certificate comes from tls.cert_file")]
    NoDevCa,
}

/// Everything `run` needs, built from a configuration.
#[derive(Debug)]
pub struct Prepared {
    pub state: Arc<AppState>,
    pub tls: Arc<rustls::ServerConfig>,
    /// The CA clients must trust, when a development CA is in use.
    pub dev_ca_file: Option<PathBuf>,
}

/// The server's TLS configuration: the configured certificate, or the development CA's.
pub fn tls_for(config: &ServerConfig) -> Result<(Arc<rustls::ServerConfig>, Option<PathBuf>), AdminError> {
    match (&config.tls.cert_file, &config.tls.key_file) {
        (Some(cert), Some(key)) => Ok((crate::tls::server_config(cert, key)?, None)),
        _ => {
            let dev = crate::tls::ensure_dev_certificates(&config.tls.dev_ca_dir, &config.dev_names())?;
            Ok((crate::tls::server_config(&dev.cert_file, &dev.key_file)?, Some(dev.ca_file)))
        }
    }
}

/// Opens storage, TLS and the discovery client.
pub async fn prepare(config: ServerConfig) -> Result<Prepared, AdminError> {
    let (tls, dev_ca_file) = tls_for(&config)?;
    let store = ServerStore::open(&config.server.database).await?;
    // Remote users choose the domains looked up: only public addresses (or mapped ones).
    let discovery = Discovery::with_reach(
        &config.discovery.trusted_ca_files,
        config.discovery.resolve.clone(),
        config.limits.request_timeout.min(Duration::from_secs(30)),
        Reach::PublicOnly,
    )?;
    Ok(Prepared { state: AppState::new(config, store, discovery), tls, dev_ca_file })
}

fn local_address(config: &ServerConfig, text: &str) -> Result<Address, AdminError> {
    let address =
        Address::parse(text).or_else(|_| Address::from_email(text)).map_err(|e| AdminError::Address(text.into(), e))?;
    if address.domain() != config.server.domain {
        return Err(AdminError::ForeignDomain { address: address.to_string(), domain: config.server.domain.clone() });
    }
    Ok(address)
}

/// Creates an uninitialised account; returns its address and one-time password.
pub async fn add_account(
    config: &ServerConfig,
    store: &ServerStore,
    text: &str,
    now: i64,
) -> Result<(Address, String), AdminError> {
    let address = local_address(config, text)?;
    let mut secret = [0u8; 16];
    OsRng.fill_bytes(&mut secret);
    let password = hex::encode(secret);
    match store.add_account(&address, &password_check(&init_password_hash(&password)), now).await? {
        Write::Done => Ok((address, password)),
        _ => Err(AdminError::Exists(address.to_string())),
    }
}

/// Every account.
pub async fn list_accounts(store: &ServerStore) -> Result<Vec<AccountRow>, AdminError> {
    Ok(store.accounts().await?)
}

/// Deletes an account and all its data.
pub async fn remove_account(config: &ServerConfig, store: &ServerStore, text: &str) -> Result<Address, AdminError> {
    let address = local_address(config, text)?;
    if store.remove_account(&address).await? {
        Ok(address)
    } else {
        Err(AdminError::Missing(address.to_string()))
    }
}
