//! Keeps each account's supply of single-use (ephemeral) message keys on its server
//! while `run` runs. Every message a sender seals takes one; once they run out,
//! senders fall back to the non-ephemeral key and mail loses forward secrecy. So the
//! gateway checks the supply at start and every `keys.replenish_every`, and when fewer
//! than half of `keys.ephemeral_target` are left, tops it up exactly as
//! `smimp-gateway keys replenish` would (keystore lock, save before upload), then
//! rereads the keystore so mail sealed to the new keys opens at once.

use std::sync::Arc;

use crate::backend::submission::Account;
use crate::client::SessionClient;
use crate::clock::unix_now;
use crate::gateway::context::{CommandError, Context};
use crate::gateway::enroll::replenish;
use crate::listen::Shutdown;
use crate::smimp::wire::{EphemeralKeys, Route};

/// Below this many unissued keys, the supply is topped up to `target`.
pub fn low_water(target: usize) -> usize {
    target.div_ceil(2)
}

/// Unissued ephemeral keys the server holds for `account`, signed by its current key.
async fn unissued(ctx: &Context, account: &Account) -> Result<usize, CommandError> {
    let address = &account.sender.address;
    let server = ctx.server(address.domain()).await?;
    let owner = SessionClient::new(server, address.clone(), account.sender.master.clone());
    let keys: EphemeralKeys =
        owner.call(&Route::ListEphemeralKeys, None::<&()>).await.map_err(|e| ctx.explain(address.domain(), e))?;
    let _ = owner.logout().await;
    let current = account.sender.master.public();
    Ok(keys.keys.iter().filter(|k| k.verify(address, &current).is_ok()).count())
}

/// Checks one account and tops its supply up when low: the number of keys added.
pub async fn top_up(ctx: &Context, account: &Account, now: i64) -> Result<usize, CommandError> {
    let target = ctx.config.keys.ephemeral_target;
    if unissued(ctx, account).await? >= low_water(target) {
        return Ok(0);
    }
    let added = replenish(ctx, &account.sender.address.to_email(), now).await?;
    if added > 0 {
        account.reload();
    }
    Ok(added)
}

/// Checks every account now and then every `keys.replenish_every`, until `shutdown`.
/// A failure (server unreachable, keystore busy with a command) is logged and tried
/// again at the next round; it never stops the gateway.
pub async fn key_upkeep_loop(ctx: Arc<Context>, accounts: Vec<Arc<Account>>, shutdown: Shutdown) {
    loop {
        for account in &accounts {
            match top_up(&ctx, account, unix_now()).await {
                Ok(0) => {}
                Ok(added) => tracing::info!(account = %account.sender.address, added, "ephemeral keys topped up"),
                Err(err) => {
                    tracing::warn!(account = %account.sender.address, error = %err, "ephemeral keys could not be checked")
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(ctx.config.keys.replenish_every) => {}
            () = shutdown.requested() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supply_is_topped_up_below_half_the_target() {
        assert_eq!(low_water(20), 10);
        assert_eq!(low_water(5), 3);
        assert_eq!(low_water(1), 1);
        assert_eq!(low_water(0), 0, "a target of 0 never tops up");
    }
}
