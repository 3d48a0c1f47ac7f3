//! Sessions (spec "Session Management"; docs/protocol.md §8.5–§8.6, §9): the login token, the
//! signed answer that binds it to the server and the address, and the session it opens.

use serde::{Deserialize, Serialize};

use crate::smimp::address::{Address, Domain};
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

/// The hash a login signs (`create_session` POST). Its label names the endpoint, so
/// no other signature serves as a login; it binds the domain the client discovered
/// the server by, so a server that hands a client another server's token cannot
/// relay the signature there; and it binds the address, so a signature made to log
/// in as one user can never log in as another.
// SPEC: the spec signs only the token; binding the server and the address is
// docs/protocol.md §9 and §11.
pub fn create_session_hash(server: &Domain, address: &Address, token: &Id32) -> Hash {
    Transcript::new(Purpose::CreateSession)
        .field(server.as_str())
        .field(address.as_str())
        .field(token.as_bytes())
        .hash()
}

/// `GET {v}/create_session/{address}`: a single-use login token to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChallenge {
    pub token: Id32,
    pub expires_at: Timestamp,
}

/// `POST {v}/create_session/{address}`: the token back, the server domain the
/// signature was made for, and the user's signature over [`create_session_hash`] by
/// their current master key. A server verifies over its own domain whatever `server`
/// says; the field lets it name the cause when a login was made for another server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub token: Id32,
    pub server: Domain,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::crypto::MasterKey;

    fn domain(text: &str) -> Domain {
        Domain::parse(text).unwrap()
    }

    /// A login signed for one server never verifies at another: a recipient's server
    /// that passes on a token of the user's own server as its own challenge gets a
    /// signature it cannot use there.
    #[test]
    fn a_login_signed_for_one_server_does_not_verify_for_another() {
        let key = MasterKey::from_seed(&[7; 32]);
        let alice = Address::parse("alice#example.org").unwrap();
        let token = Id32([9; 32]);
        let signature = key.sign(&create_session_hash(&domain("example.net"), &alice, &token));
        let public = key.public();
        assert!(public.verify(&create_session_hash(&domain("example.net"), &alice, &token), &signature).is_ok());
        assert!(public.verify(&create_session_hash(&domain("example.org"), &alice, &token), &signature).is_err());
    }

    #[test]
    fn the_login_hash_binds_server_address_and_token() {
        let alice = Address::parse("alice#example.org").unwrap();
        let bob = Address::parse("bob#example.org").unwrap();
        let base = create_session_hash(&domain("example.org"), &alice, &Id32([1; 32]));
        assert_eq!(base, create_session_hash(&domain("Example.ORG."), &alice, &Id32([1; 32])));
        for other in [
            create_session_hash(&domain("example.net"), &alice, &Id32([1; 32])),
            create_session_hash(&domain("example.org"), &bob, &Id32([1; 32])),
            create_session_hash(&domain("example.org"), &alice, &Id32([2; 32])),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn a_login_request_names_a_valid_server_domain() {
        let body = |server: &str| serde_json::json!({ "token": Id32([1; 32]), "server": server, "signature": Signature([2; 64]) });
        let request: LoginRequest = serde_json::from_value(body("Example.NET")).unwrap();
        assert_eq!(request.server, domain("example.net"));
        assert!(serde_json::from_value::<LoginRequest>(body("https://example.net/")).is_err());
        let mut missing = body("example.net");
        missing.as_object_mut().unwrap().remove("server");
        assert!(serde_json::from_value::<LoginRequest>(missing).is_err());
    }
}
