//! Trust on first use, kept: the client's checks (`client::trust`) decide, and this
//! module holds their memory — it reads the pin the gateway's store keeps for an
//! address, and records the new pin and the trust event each check reports — so the
//! client never writes to the store.

use crate::client::session::{Session, SessionClient};
use crate::client::trust::{self, Checked, TrustError};
use crate::client::ServerClient;
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::keys::SignedMessageKey;
use crate::store::{GatewayStore, StoreError, TrustEvent};

/// Why no key could be trusted: the check's verdict, or the store that keeps pins.
#[derive(Debug, thiserror::Error)]
pub enum KeyTrustError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The master key of `address` that may be trusted now, establishing or checking the
/// pin; the new pin and the trust event are recorded before the verdict is returned.
pub async fn trusted_key(
    server: &ServerClient,
    store: &GatewayStore,
    address: &Address,
    now: i64,
) -> Result<MasterPublicKey, KeyTrustError> {
    let pin = store.pin(address).await?;
    let Checked { verdict, new_pin, note } = trust::check_key(server, address, pin.as_ref()).await;
    if let Some(new_pin) = new_pin {
        store.set_pin(address, &new_pin, now).await?;
    }
    if let Some(note) = note {
        let event =
            TrustEvent { address: address.clone(), at: now, kind: note.kind.as_str().into(), detail: note.detail };
        store.add_trust_event(&event).await?;
    }
    Ok(verdict?)
}

/// A message key for `recipient`, asked in `session` at the recipient's server and
/// accepted only when signed by the recipient's trusted current key.
pub async fn verified_message_key(
    sender: &SessionClient,
    session: &Session,
    store: &GatewayStore,
    recipient: &Address,
    now: i64,
) -> Result<(SignedMessageKey, bool), KeyTrustError> {
    let trusted = trusted_key(sender.server(), store, recipient, now).await?;
    Ok(trust::verified_message_key(sender, session, &trusted, recipient).await?)
}
