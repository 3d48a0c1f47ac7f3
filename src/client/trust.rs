//! Trust on first use (spec "Get User Information"; docs/protocol.md §5.2): the first
//! contact with an address verifies its whole history and pins it; later contacts
//! compare the current key and, when it changed, accept only a verified history that
//! extends the pin. Truncation and replacement are refused. Message keys count only
//! when signed by the trusted key. A sender's earlier keys are taken only from a
//! history that passes the same pin check ([`check_history`]), never from one that
//! merely verifies on its own.
//!
//! The client decides and says what happened; it keeps nothing. The caller (the
//! backend's `trust` module) reads the pin it holds, passes it in, and records the new
//! pin and the trust event a [`Checked`] carries.

use crate::client::error::ClientError;
use crate::client::server::ServerClient;
use crate::client::session::{Session, SessionClient};
use crate::smimp::address::Address;
use crate::smimp::crypto::MasterPublicKey;
use crate::smimp::keys::{KeyError, SignedMessageKey};
use crate::smimp::profile::{verify_history, Pin, PinCheck, ProfileError, VerifiedHistory};
use crate::smimp::wire::{MessageKeyRequest, MessageKeyResponse, Route, UserHistory, UserInfoKind, UserPublicKey};

/// Why an address is not trusted. Each is a reason to refuse sending to or opening
/// from it, shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Client(#[from] ClientError),
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

/// What happened to trust in an address, for the user to review (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustEventKind {
    FirstContact,
    KeyChanged,
    HistoryExtended,
    Truncated,
    Replaced,
    InvalidHistory,
    Inconsistent,
}

impl TrustEventKind {
    /// The name the gateway's store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustEventKind::FirstContact => "first_contact",
            TrustEventKind::KeyChanged => "key_changed",
            TrustEventKind::HistoryExtended => "history_extended",
            TrustEventKind::Truncated => "truncated",
            TrustEventKind::Replaced => "replaced",
            TrustEventKind::InvalidHistory => "invalid_history",
            TrustEventKind::Inconsistent => "inconsistent",
        }
    }
}

/// A trust event to record, with its details in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustNote {
    pub kind: TrustEventKind,
    pub detail: String,
}

/// What one trust check found: the key that may be trusted (or why none), the pin to
/// keep from now on when it is new or extended, and the event to record, if any.
#[derive(Debug)]
pub struct Checked<T = MasterPublicKey> {
    pub verdict: Result<T, TrustError>,
    pub new_pin: Option<Pin>,
    pub note: Option<TrustNote>,
}

/// A trusted key and, when the check had to read it, the history it comes from, which
/// passed the pin check (first contact, unchanged or legitimately extended).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub key: MasterPublicKey,
    pub history: Option<VerifiedHistory>,
}

impl<T> Checked<T> {
    fn failed(err: TrustError) -> Self {
        Checked { verdict: Err(err), new_pin: None, note: None }
    }

    fn refused(err: TrustError, kind: TrustEventKind, detail: String) -> Self {
        Checked { verdict: Err(err), new_pin: None, note: Some(TrustNote { kind, detail }) }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Checked<U> {
        Checked { verdict: self.verdict.map(f), new_pin: self.new_pin, note: self.note }
    }
}

/// Checks the master key of `address` that may be trusted now against `pin`, the pin
/// the caller holds for it (none on first contact): the current key alone when it is
/// the pinned one, else the whole history against the pin.
pub async fn check_key(server: &ServerClient, address: &Address, pin: Option<&Pin>) -> Checked<TrustedKey> {
    if let Some(pin) = pin {
        let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::PublicKey };
        match server.call::<UserPublicKey, ()>(&route, None, None).await {
            Ok(current) if current.public_key == pin.latest_key && &current.address == address => {
                let trusted = TrustedKey { key: pin.latest_key, history: None };
                return Checked { verdict: Ok(trusted), new_pin: None, note: None };
            }
            Ok(_) => {}
            Err(err) => return Checked::failed(err.into()),
        }
    }
    // The current key is not the pinned one (or nothing is pinned): an unchanged history is inconsistent.
    check_history_with(server, address, pin, pin.is_some())
        .await
        .map(|history| TrustedKey { key: history.current_key(), history: Some(history) })
}

/// Reads the whole history of `address` and checks it against `pin`: the history the
/// sender's earlier keys may be taken from. Unchanged or extended histories are
/// trusted; truncated, replaced and broken ones are refused with an event to record.
pub async fn check_history(server: &ServerClient, address: &Address, pin: Option<&Pin>) -> Checked<VerifiedHistory> {
    check_history_with(server, address, pin, false).await
}

async fn check_history_with(
    server: &ServerClient,
    address: &Address,
    pin: Option<&Pin>,
    key_changed: bool,
) -> Checked<VerifiedHistory> {
    let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::History };
    let answer: UserHistory = match server.call(&route, None, None::<&()>).await {
        Ok(answer) => answer,
        Err(err) => return Checked::failed(err.into()),
    };
    match verify_history(address, &answer.history) {
        Ok(history) => judge(address, pin, history, key_changed),
        Err(reason) => {
            let detail = reason.to_string();
            let err = TrustError::InvalidHistory { address: address.clone(), reason };
            Checked::refused(err, TrustEventKind::InvalidHistory, detail)
        }
    }
}

/// The verdict on a verified history: pinned on first contact, else checked against
/// the pin. `key_changed`: the server's `public_key` named another key than the pin's,
/// so an unchanged history contradicts it.
fn judge(
    address: &Address,
    pin: Option<&Pin>,
    history: VerifiedHistory,
    key_changed: bool,
) -> Checked<VerifiedHistory> {
    let Some(pin) = pin else {
        let detail = format!("pinned key {} ({} records)", history.current_key(), history.records().len());
        let note = TrustNote { kind: TrustEventKind::FirstContact, detail };
        return Checked { new_pin: Some(history.pin()), verdict: Ok(history), note: Some(note) };
    };
    match pin.check(&history) {
        PinCheck::Unchanged if key_changed => Checked::refused(
            TrustError::Inconsistent { address: address.clone() },
            TrustEventKind::Inconsistent,
            "public_key disagrees with the unchanged history".into(),
        ),
        PinCheck::Unchanged => Checked { verdict: Ok(history), new_pin: None, note: None },
        PinCheck::Extended(new_pin) => {
            let note = if new_pin.latest_key != pin.latest_key {
                let detail =
                    format!("master key changed from {} to {} by a signed update", pin.latest_key, new_pin.latest_key);
                TrustNote { kind: TrustEventKind::KeyChanged, detail }
            } else {
                TrustNote {
                    kind: TrustEventKind::HistoryExtended,
                    detail: format!("profile updated ({} records)", new_pin.length),
                }
            };
            Checked { verdict: Ok(history), new_pin: Some(new_pin), note: Some(note) }
        }
        PinCheck::Truncated { pinned, found } => Checked::refused(
            TrustError::Truncated { address: address.clone(), pinned, found },
            TrustEventKind::Truncated,
            format!("{found} records where {pinned} were pinned"),
        ),
        PinCheck::Replaced => Checked::refused(
            TrustError::Replaced { address: address.clone() },
            TrustEventKind::Replaced,
            "the history no longer extends the pinned one".into(),
        ),
    }
}

/// A message key for `recipient`, asked in `session` at the recipient's server and
/// accepted only when signed by `trusted`, the recipient's trusted current key.
pub async fn verified_message_key(
    sender: &SessionClient,
    session: &Session,
    trusted: &MasterPublicKey,
    recipient: &Address,
) -> Result<(SignedMessageKey, bool), TrustError> {
    let answer: MessageKeyResponse =
        sender.call_in(session, &Route::GetMessageKey, Some(&MessageKeyRequest { address: recipient.clone() })).await?;
    if &answer.public_key != trusted || &answer.address != recipient {
        return Err(TrustError::Inconsistent { address: recipient.clone() });
    }
    answer
        .message_key
        .verify(recipient, trusted)
        .map_err(|reason| TrustError::BadMessageKey { address: recipient.clone(), reason })?;
    Ok((answer.message_key, answer.nonephemeral))
}

#[cfg(test)]
mod tests {
    //! The pin check of a fetched history: a history that verifies on its own is not
    //! enough; it must be the pinned one, unchanged or extended by the pinned key.

    use super::*;
    use crate::smimp::crypto::MasterKey;
    use crate::smimp::profile::{ProfileFields, ProfileRecord};
    use crate::smimp::timestamp::Timestamp;
    use rand_core::OsRng;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix(1_790_000_000 + seconds).unwrap()
    }

    fn alice() -> Address {
        Address::parse("alice#a.example").unwrap()
    }

    /// Alice's real history: created with `k0`, rotated to `k1`.
    fn rotated(k0: &MasterKey, k1: &MasterKey) -> VerifiedHistory {
        let r0 = ProfileRecord::initial(k0, &alice(), ProfileFields::default(), at(0));
        let h = verify_history(&alice(), &[r0]).unwrap();
        let r1 = ProfileRecord::next(h.latest(), k0, k1.public(), ProfileFields::default(), at(10)).unwrap();
        h.extend(r1).unwrap()
    }

    #[test]
    fn a_forged_older_key_history_ending_at_the_pinned_key_is_replaced() {
        let (k0, k1, attacker) =
            (MasterKey::generate(&mut OsRng), MasterKey::generate(&mut OsRng), MasterKey::generate(&mut OsRng));
        let pin = rotated(&k0, &k1).pin();
        // The server's lie: the attacker's key as the first, "rotated" to Alice's current key.
        let forged = rotated(&attacker, &k1);
        assert_eq!(forged.current_key(), pin.latest_key, "it ends at the pinned key");
        let checked = judge(&alice(), Some(&pin), forged, false);
        assert!(matches!(checked.verdict, Err(TrustError::Replaced { .. })), "{:?}", checked.verdict);
        assert_eq!(checked.note.map(|n| n.kind), Some(TrustEventKind::Replaced));
        assert_eq!(checked.new_pin, None);
    }

    #[test]
    fn an_unchanged_history_is_trusted_unless_public_key_said_otherwise() {
        let (k0, k1) = (MasterKey::generate(&mut OsRng), MasterKey::generate(&mut OsRng));
        let history = rotated(&k0, &k1);
        let pin = history.pin();
        let checked = judge(&alice(), Some(&pin), history.clone(), false);
        assert_eq!(checked.verdict.unwrap(), history);
        assert!(checked.note.is_none() && checked.new_pin.is_none());
        let contradicted = judge(&alice(), Some(&pin), history, true);
        assert!(matches!(contradicted.verdict, Err(TrustError::Inconsistent { .. })));
        assert_eq!(contradicted.note.map(|n| n.kind), Some(TrustEventKind::Inconsistent));
    }

    #[test]
    fn an_extension_by_the_pinned_key_is_trusted_and_moves_the_pin() {
        let (k0, k1) = (MasterKey::generate(&mut OsRng), MasterKey::generate(&mut OsRng));
        let history = rotated(&k0, &k1);
        let r0 = history.records()[0].clone();
        let pin = verify_history(&alice(), &[r0.record]).unwrap().pin();
        let checked = judge(&alice(), Some(&pin), history.clone(), true);
        assert_eq!(checked.new_pin, Some(history.pin()));
        assert_eq!(checked.note.map(|n| n.kind), Some(TrustEventKind::KeyChanged));
        assert_eq!(checked.verdict.unwrap().current_key(), k1.public());
    }
}
