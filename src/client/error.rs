//! What can go wrong talking to an SMIMP server, in words a user can act on.

use crate::discovery::DiscoveryError;
use crate::smimp::wire::ErrorCode;

/// Why a call to an SMIMP server failed. No variant is ever resolved by falling back
/// to an unverified or unencrypted path.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error("{url}: the server refused the request ({code}): {message}")]
    Refused { url: String, status: u16, code: ErrorCode, message: String },
    #[error("{url}: HTTP {status} without an SMIMP error body")]
    Status { url: String, status: u16 },
    #[error("{url}: the answer is not the expected document: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("{url}: the server speaks protocol versions {offered:?}, none of which this client speaks ({ours})")]
    NoCommonVersion { url: String, offered: Vec<String>, ours: &'static str },
    #[error("{url}: the server does not implement {api}")]
    Unsupported { url: String, api: &'static str },
}

impl ClientError {
    /// The server's error code, when the server refused with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed (the server or network was unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Discovery(DiscoveryError::Unreachable { .. }) => true,
            ClientError::Status { status, .. } | ClientError::Refused { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            _ => false,
        }
    }
}
