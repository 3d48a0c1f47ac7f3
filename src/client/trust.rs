//! Trust on first use (spec "Get User Information"; docs/protocol.md §5.2): the first
//! contact with an address verifies its whole history and pins it; later contacts
//! compare the current key and, when it changed, accept only a verified history that
//! extends the pin. Truncation and replacement are refused and recorded as trust
//! events the user can review. Message keys count only when signed by the pinned key.

use crate::client::error::ClientError;
use crate::client::server::ServerClient;
use crate::client::session::{Session, SessionClient};
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::keys::{KeyError, SignedMessageKey};
use crate::smimp::profile::{verify_history, PinCheck, ProfileError};
use crate::smimp::wire::{MessageKeyRequest, MessageKeyResponse, Route, UserHistory, UserInfoKind, UserPublicKey};
use crate::store::{GatewayStore, StoreError, TrustEvent};

/// Why an address is not trusted. Each is a reason to refuse sending to or opening
/// from it, shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{address}'s profile history does not verify ({reason}); nothing is sent to or accepted from it")]
    InvalidHistory { address: Address, reason: ProfileError },
    #[error("{address}'s server now shows {found} profile records where {pinned} were seen before: the history was truncated, so the address is refused")]
    Truncated { address: Address, pinned: u64, found: u64 },
    #[error("{address}'s profile history was replaced (it no longer extends the history first seen): the address is refused")]
    Replaced { address: Address },
    #[error("{address}'s server answered inconsistently about its current key: the address is refused")]
    Inconsistent { address: Address },
    #[error("a message key for {address} is refused: {reason}")]
    BadMessageKey { address: Address, reason: KeyError },
}

async fn record(
    store: &GatewayStore,
    address: &Address,
    now: i64,
    kind: &str,
    detail: String,
) -> Result<(), StoreError> {
    store.add_trust_event(&TrustEvent { address: address.clone(), at: now, kind: kind.into(), detail }).await
}

/// The master key of `address` that may be trusted now, establishing or checking the pin.
pub async fn trusted_key(
    server: &ServerClient,
    store: &GatewayStore,
    address: &Address,
    now: i64,
) -> Result<MasterPublicKey, TrustError> {
    let pin = store.pin(address).await?;
    if let Some(pin) = &pin {
        let current: UserPublicKey = server
            .call(&Route::GetUser { address: address.clone(), kind: UserInfoKind::PublicKey }, None, None::<&()>)
            .await?;
        if current.public_key == pin.latest_key && &current.address == address {
            return Ok(pin.latest_key);
        }
    }
    let answer: UserHistory = server
        .call(&Route::GetUser { address: address.clone(), kind: UserInfoKind::History }, None, None::<&()>)
        .await?;
    let history = match verify_history(address, &answer.history) {
        Ok(history) => history,
        Err(reason) => {
            record(store, address, now, "invalid_history", reason.to_string()).await?;
            return Err(TrustError::InvalidHistory { address: address.clone(), reason });
        }
    };
    let Some(pin) = pin else {
        store.set_pin(address, &history.pin(), now).await?;
        record(
            store,
            address,
            now,
            "first_contact",
            format!("pinned key {} ({} records)", history.current_key(), history.records().len()),
        )
        .await?;
        return Ok(history.current_key());
    };
    match pin.check(&history) {
        PinCheck::Unchanged => {
            record(store, address, now, "inconsistent", "public_key disagrees with the unchanged history".into())
                .await?;
            Err(TrustError::Inconsistent { address: address.clone() })
        }
        PinCheck::Extended(new_pin) => {
            store.set_pin(address, &new_pin, now).await?;
            let detail = if new_pin.latest_key != pin.latest_key {
                format!("master key changed from {} to {} by a signed update", pin.latest_key, new_pin.latest_key)
            } else {
                format!("profile updated ({} records)", new_pin.length)
            };
            let kind = if new_pin.latest_key != pin.latest_key { "key_changed" } else { "history_extended" };
            record(store, address, now, kind, detail).await?;
            Ok(new_pin.latest_key)
        }
        PinCheck::Truncated { pinned, found } => {
            record(store, address, now, "truncated", format!("{found} records where {pinned} were pinned")).await?;
            Err(TrustError::Truncated { address: address.clone(), pinned, found })
        }
        PinCheck::Replaced => {
            record(store, address, now, "replaced", "the history no longer extends the pinned one".into()).await?;
            Err(TrustError::Replaced { address: address.clone() })
        }
    }
}

/// A message key for `recipient`, asked in `session` at the recipient's server and
/// accepted only when signed by the recipient's trusted current key.
pub async fn verified_message_key(
    sender: &SessionClient,
    session: &Session,
    store: &GatewayStore,
    recipient: &Address,
    now: i64,
) -> Result<(SignedMessageKey, bool), TrustError> {
    let trusted = trusted_key(sender.server(), store, recipient, now).await?;
    let answer: MessageKeyResponse =
        sender.call_in(session, &Route::GetMessageKey, Some(&MessageKeyRequest { address: recipient.clone() })).await?;
    if answer.public_key != trusted || &answer.address != recipient {
        return Err(TrustError::Inconsistent { address: recipient.clone() });
    }
    answer
        .message_key
        .verify(recipient, &trusted)
        .map_err(|reason| TrustError::BadMessageKey { address: recipient.clone(), reason })?;
    Ok((answer.message_key, answer.nonephemeral))
}
