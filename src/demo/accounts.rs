//! The demo's two accounts: made on first run as a new user would (`server
//! add-account`, then `init`), reused on later runs, and given a new mail client
//! password when the state file that kept the old one is gone.

use std::path::Path;

use super::server::DemoServer;
use super::state::{State, StoredLogin};
use super::{io, random_text, DemoError, DOMAIN, USERS};
use crate::clock::unix_now;
use crate::gateway::context::{CommandError, Context};
use crate::gateway::enroll::Initialised;
use crate::keystore::{Keystore, KeystoreLock};
use crate::server::admin::{self, AdminError};
use crate::server::config::ServerConfig;
use crate::smimp::address::Address;

/// Makes sure both accounts exist on the server and the gateway, with a kept password.
pub(super) async fn ensure(ctx: &Context, server: &DemoServer, state: &mut State, dir: &Path) -> Result<(), DemoError> {
    let server_accounts = admin::list_accounts(&server.state.store).await?;
    for user in USERS {
        let address = Address::from_email(&format!("{user}@{DOMAIN}"))
            .map_err(|e| DemoError::Inconsistent { dir: dir.into(), reason: e.to_string() })?;
        let registered = ctx.store.accounts().await?.into_iter().find(|a| a.address == address);
        let initialised = server_accounts.iter().any(|a| a.address == address && a.initialized);
        match (registered, state.login(&address).cloned()) {
            (Some(_), Some(_)) if initialised => continue,
            (Some(record), None) if initialised => {
                // The passwords were lost (the state file was removed): a new one is set.
                let password = random_text(18);
                reset_local_password(ctx, Path::new(&record.keystore_path), &password)?;
                state.set_login(StoredLogin { address: address.to_email(), username: record.username, password });
            }
            (Some(_), _) => {
                return Err(DemoError::Inconsistent {
                    dir: dir.into(),
                    reason: format!("the gateway serves {address}, but the demo's server does not know it"),
                })
            }
            (None, _) => {
                let done = create_account(ctx, &server.config, &server.state.store, &address).await?;
                let login =
                    StoredLogin { address: address.to_email(), username: done.username, password: done.password };
                state.set_login(login);
            }
        }
        state.save(dir)?;
    }
    Ok(())
}

/// Adds the account on the demo's server and runs `init` for it, as a new user would.
/// Leftovers of an interrupted earlier attempt (a keystore without registration, an
/// account the server made but nobody initialised) are the demo's own and are replaced.
async fn create_account(
    ctx: &Context,
    config: &ServerConfig,
    store: &crate::server::store::ServerStore,
    address: &Address,
) -> Result<Initialised, DemoError> {
    let keystore = ctx.config.keystore_path(address);
    if keystore.exists() {
        std::fs::remove_file(&keystore).map_err(io("remove the unfinished keystore", &keystore))?;
    }
    match admin::remove_account(config, store, address.as_str()).await {
        Ok(_) | Err(AdminError::Missing(_)) => {}
        Err(err) => return Err(err.into()),
    }
    let (_, one_time_password) = admin::add_account(config, store, address.as_str(), unix_now()).await?;
    Ok(crate::gateway::enroll::init(ctx, &address.to_email(), &one_time_password, unix_now()).await?)
}

/// Gives an account a new mail client password (its keystore keeps only the hash).
fn reset_local_password(ctx: &Context, keystore_path: &Path, password: &str) -> Result<(), DemoError> {
    let _lock = KeystoreLock::take(keystore_path).map_err(CommandError::from)?;
    let mut keystore = Keystore::load(keystore_path, &ctx.passphrase).map_err(CommandError::from)?;
    keystore.set_local_password(password).map_err(CommandError::from)?;
    keystore.save(keystore_path, &ctx.passphrase, ctx.config.keystore.kdf()).map_err(CommandError::from)?;
    Ok(())
}
