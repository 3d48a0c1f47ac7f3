//! Trust on first use, kept: the client's checks (`client::trust`) decide, and this
//! module holds their memory — it reads the pin the gateway's store keeps for an
//! address, and records the new pin and the trust event each check reports — so the
//! client never writes to the store.

use crate::client::session::{Session, SessionClient};
use crate::client::trust::{self, Checked, TrustError, TrustedKey};
use crate::client::{ClientError, ServerClient};
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::keys::SignedMessageKey;
use crate::smimp::profile::VerifiedHistory;
use crate::store::{GatewayStore, StoreError, TrustEvent};

/// Why no key could be trusted: the check's verdict, or the store that keeps pins.
#[derive(Debug, thiserror::Error)]
pub enum KeyTrustError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyTrustError {
    /// Whether no verdict was reached: the gateway's database, the network or the
    /// address's server failed for now, so asking again later may succeed. Anything
    /// else is a verdict on the address.
    pub fn is_retryable(&self) -> bool {
        match self {
            KeyTrustError::Store(_) => true,
            KeyTrustError::Trust(TrustError::Client(err)) => {
                err.is_transient() || matches!(err, ClientError::Discovery(_))
            }
            KeyTrustError::Trust(_) => false,
        }
    }
}

/// The master key of `address` that may be trusted now, establishing or checking the
/// pin; the new pin and the trust event are recorded before the verdict is returned.
pub async fn trusted_key(
    server: &ServerClient,
    store: &GatewayStore,
    address: &Address,
    now: i64,
) -> Result<MasterPublicKey, KeyTrustError> {
    Ok(trusted_key_and_history(server, store, address, now).await?.key)
}

/// As [`trusted_key`], with the history the check read, if it read one (first contact
/// or a changed key): a history that passed the pin check.
pub async fn trusted_key_and_history(
    server: &ServerClient,
    store: &GatewayStore,
    address: &Address,
    now: i64,
) -> Result<TrustedKey, KeyTrustError> {
    let pin = store.pin(address).await?;
    keep(store, address, trust::check_key(server, address, pin.as_ref()).await, now).await
}

/// The whole history of `address`, trusted only when it passes the pin check
/// (unchanged or legitimately extended); a refusal is recorded as a trust event.
pub async fn trusted_history(
    server: &ServerClient,
    store: &GatewayStore,
    address: &Address,
    now: i64,
) -> Result<VerifiedHistory, KeyTrustError> {
    let pin = store.pin(address).await?;
    keep(store, address, trust::check_history(server, address, pin.as_ref()).await, now).await
}

/// Records what a check found (the new pin, the event), then gives its verdict.
async fn keep<T>(store: &GatewayStore, address: &Address, checked: Checked<T>, now: i64) -> Result<T, KeyTrustError> {
    let Checked { verdict, new_pin, note } = checked;
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

#[cfg(test)]
mod tests {
    //! A failed check is a verdict only when the address's server answered: the
    //! database, the network and a server that is down mean "ask again later".

    use super::*;
    use crate::discovery::DiscoveryError;
    use crate::smimp::wire::ErrorCode;

    #[test]
    fn only_answers_are_verdicts_failures_to_ask_are_retried() {
        let url = || "https://a.example/smimp/user".to_string();
        let alice = || Address::parse("alice#a.example").unwrap();
        let client = |err: ClientError| KeyTrustError::Trust(TrustError::Client(err));
        let retried = [
            KeyTrustError::Store(StoreError::Corrupt("disk full".into())),
            client(ClientError::Status { url: url(), status: 503 }),
            client(ClientError::Refused {
                url: url(),
                status: 429,
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
            }),
            client(ClientError::Discovery(DiscoveryError::Unreachable { url: url(), reason: "reset".into() })),
            client(ClientError::Discovery(DiscoveryError::Certificate { url: url(), reason: "expired".into() })),
        ];
        for err in retried {
            assert!(err.is_retryable(), "{err}");
        }
        let verdicts = [
            client(ClientError::Refused {
                url: url(),
                status: 404,
                code: ErrorCode::NotFound,
                message: "no such user".into(),
            }),
            KeyTrustError::Trust(TrustError::Replaced { address: alice() }),
            KeyTrustError::Trust(TrustError::Truncated { address: alice(), pinned: 2, found: 1 }),
            KeyTrustError::Trust(TrustError::Inconsistent { address: alice() }),
        ];
        for err in verdicts {
            assert!(!err.is_retryable(), "{err}");
        }
    }
}
