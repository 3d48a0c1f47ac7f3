//! Trust on first use (spec "Get User Information"; docs/protocol.md §5.2): the first
//! contact with an address verifies its whole history and pins it; later contacts
//! compare the current key and, when it changed, accept only a verified history that
//! extends the pin. Truncation and replacement are refused. Message keys count only
//! when signed by the trusted key.
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
pub struct Checked {
    pub verdict: Result<MasterPublicKey, TrustError>,
    pub new_pin: Option<Pin>,
    pub note: Option<TrustNote>,
}

impl Checked {
    fn trusted(key: MasterPublicKey) -> Checked {
        Checked { verdict: Ok(key), new_pin: None, note: None }
    }

    fn failed(err: TrustError) -> Checked {
        Checked { verdict: Err(err), new_pin: None, note: None }
    }

    fn refused(err: TrustError, kind: TrustEventKind, detail: String) -> Checked {
        Checked { verdict: Err(err), new_pin: None, note: Some(TrustNote { kind, detail }) }
    }
}

/// Checks the master key of `address` that may be trusted now against `pin`, the pin
/// the caller holds for it (none on first contact).
pub async fn check_key(server: &ServerClient, address: &Address, pin: Option<&Pin>) -> Checked {
    if let Some(pin) = pin {
        let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::PublicKey };
        match server.call::<UserPublicKey, ()>(&route, None, None).await {
            Ok(current) if current.public_key == pin.latest_key && &current.address == address => {
                return Checked::trusted(pin.latest_key);
            }
            Ok(_) => {}
            Err(err) => return Checked::failed(err.into()),
        }
    }
    let route = Route::GetUser { address: address.clone(), kind: UserInfoKind::History };
    let answer: UserHistory = match server.call(&route, None, None::<&()>).await {
        Ok(answer) => answer,
        Err(err) => return Checked::failed(err.into()),
    };
    match verify_history(address, &answer.history) {
        Ok(history) => judge(address, pin, &history),
        Err(reason) => {
            let detail = reason.to_string();
            let err = TrustError::InvalidHistory { address: address.clone(), reason };
            Checked::refused(err, TrustEventKind::InvalidHistory, detail)
        }
    }
}

/// The verdict on a verified history: pinned on first contact, else checked against the pin.
fn judge(address: &Address, pin: Option<&Pin>, history: &VerifiedHistory) -> Checked {
    let Some(pin) = pin else {
        let detail = format!("pinned key {} ({} records)", history.current_key(), history.records().len());
        let note = TrustNote { kind: TrustEventKind::FirstContact, detail };
        return Checked { verdict: Ok(history.current_key()), new_pin: Some(history.pin()), note: Some(note) };
    };
    match pin.check(history) {
        PinCheck::Unchanged => Checked::refused(
            TrustError::Inconsistent { address: address.clone() },
            TrustEventKind::Inconsistent,
            "public_key disagrees with the unchanged history".into(),
        ),
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
            Checked { verdict: Ok(new_pin.latest_key), new_pin: Some(new_pin), note: Some(note) }
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
