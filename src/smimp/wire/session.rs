//! Sessions (spec "Session Management"; docs/protocol.md §8.5–§8.6, §9): the login token, the
//! signed answer that binds it to the address, and the session it opens.

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::{Hash, Signature};
use crate::smimp::encoding::Id32;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::transcript::{Purpose, Transcript};

/// How long a login token from `GET create_session/{address}` may be signed and
/// posted back, in seconds (docs/protocol.md §9).
pub const LOGIN_TOKEN_LIFETIME_SECS: i64 = 5 * 60;

/// A session's lifetime unless the server is configured otherwise, in seconds
/// (docs/protocol.md §9).
pub const DEFAULT_SESSION_LIFETIME_SECS: i64 = 60 * 60;

/// The hash a login signs (`create_session` POST): it binds the address, so a
/// signature made to log in as one user can never log in as another.
// SPEC: the spec signs only the token; binding the address is docs/protocol.md §11.
pub fn create_session_hash(address: &Address, token: &Id32) -> Hash {
    Transcript::new(Purpose::CreateSession).field(address.as_str()).field(token.as_bytes()).hash()
}

/// `GET {v}/create_session/{address}`: a single-use login token to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChallenge {
    pub token: Id32,
    pub expires_at: Timestamp,
}

/// `POST {v}/create_session/{address}`: the token back, with the user's signature
/// over [`create_session_hash`] by their current master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub token: Id32,
    pub signature: Signature,
}

/// A successful login: the session id for the `SMIMP-Authentication` header. It is
/// a fresh random value, never the login token (whose hash appears in envelopes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session: Id32,
    pub expires_at: Timestamp,
}

/// `POST {v}/destroy_session`: the session is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub ended: bool,
}
