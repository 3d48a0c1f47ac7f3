//! The `x-devices` extension (docs/protocol.md §12): a new device asks to join an
//! account (unauthenticated, so admitted by proof of work and bounded), the owner's
//! enrolled devices list and answer the requests, and the new device fetches the
//! answer; enrolled devices also leave each other sealed shares of new message keys.
//! The server only stores and forwards: every secret travels sealed
//! (`smimp::device::Sealed`).

use serde::{Deserialize, Serialize};

use crate::smimp::crypto::{BoxPublicKey, Hash, Signature};
use crate::smimp::device::{DevicePublic, Sealed};
use crate::smimp::encoding::Id32;
use crate::smimp::pow::PowSolution;
use crate::smimp::timestamp::Timestamp;

/// How long a device request (and the challenge it answers) lives (docs/protocol.md §12.2).
pub const DEVICE_REQUEST_LIFETIME_SECS: i64 = 600;
/// The most requests one account may have pending at once.
pub const MAX_PENDING_DEVICE_REQUESTS: usize = 3;

/// `GET {v}/x-devices/challenge/{address}`: the nonce a request must use, and the work
/// it must prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChallenge {
    pub nonce: Id32,
    pub zero_bits: u32,
    pub expires_at: Timestamp,
}

/// `POST {v}/x-devices/request/{address}`: a new device asks to join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    pub name: String,
    pub device: DevicePublic,
    /// The challenge's nonce.
    pub nonce: Id32,
    /// The device's signature over `request_hash` with its signing key.
    pub signature: Signature,
    /// Admission: proof of work over `request_hash` (docs/protocol.md §12.2).
    pub pow: PowSolution,
    /// With a one-time PIN: keyed BLAKE2b of `request_hash` under the PIN's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_proof: Option<Hash>,
}

/// The answer to a [`DeviceRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRequested {
    pub request_id: Id32,
    pub expires_at: Timestamp,
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl RequestState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Approved => "approved",
            RequestState::Denied => "denied",
            RequestState::Expired => "expired",
        }
    }

    /// The state of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Expired].into_iter().find(|s| s.as_str() == text)
    }
}

/// Why an enrolled device denied a request by itself (a PIN request it could judge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    WrongPin,
    UsedPin,
    ExpiredPin,
}

impl DenyReason {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::WrongPin => "wrong_pin",
            DenyReason::UsedPin => "used_pin",
            DenyReason::ExpiredPin => "expired_pin",
        }
    }

    /// The reason of a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::WrongPin, Self::UsedPin, Self::ExpiredPin].into_iter().find(|r| r.as_str() == text)
    }
}

/// `POST {v}/x-devices/deny/{request_id}`: the optional reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Denial {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
}

/// `GET {v}/x-devices/status/{request_id}`: the state and, once approved, the approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestStatus {
    pub state: RequestState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Sealed>,
    /// Why it was denied, when the denying device said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
}

/// One pending request as the account's devices see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    pub request_id: Id32,
    pub name: String,
    pub device: DevicePublic,
    pub nonce: Id32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_proof: Option<Hash>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// `GET {v}/x-devices/pending`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequests {
    pub requests: Vec<PendingRequest>,
}

/// `POST {v}/x-devices/approve/{request_id}` and `…/deny/{request_id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub state: RequestState,
}

/// When one device last checked in for its shares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSeen {
    pub box_key: BoxPublicKey,
    pub seen_at: Timestamp,
}

/// `GET {v}/x-devices/seen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesSeen {
    pub devices: Vec<DeviceSeen>,
}

/// One sealed share of message keys for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceShare {
    pub share_id: Id32,
    /// The recipient device's public keys.
    pub recipient: DevicePublic,
    pub sealed: Sealed,
}

/// `POST {v}/x-devices/shares`: shares for other devices; `GET`: those for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceShares {
    pub shares: Vec<DeviceShare>,
}
