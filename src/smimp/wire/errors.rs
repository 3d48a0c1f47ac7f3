//! Errors (docs/protocol.md §10): the code of every error body with its one HTTP
//! status, so a client acts on the code and a person reads the message.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a call failed: the `code` of every error body, each with one HTTP status.
/// A client acts on the code; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or a path parameter is malformed: not JSON, an unknown or missing
    /// field, bad hex or base64, a bad folder name or message type.
    BadRequest,
    /// An address in the path or body is not a valid SMIMP address.
    InvalidAddress,
    /// A hash or signature inside the request does not verify (envelope, message
    /// key, profile record, avatar).
    InvalidSignature,
    /// A message key is the owner's master key (spec: must be rejected).
    MasterKeyRefused,
    /// No `SMIMP-Authentication` header, or it names no session.
    NotAuthenticated,
    /// The session expired or was destroyed.
    SessionExpired,
    /// The login was signed for another server's domain (a signature is good only at
    /// the server the client discovered and meant to log in to).
    WrongServer,
    /// The login or initialisation proof was refused: the token is unknown, used or
    /// expired, the signature is not by the current master key, or the password
    /// hash is wrong.
    LoginFailed,
    /// Authenticated, but this session may not do this (for example a remote user
    /// reading a mailbox).
    Forbidden,
    /// The proof of work is missing although the server asked for one.
    PowRequired,
    /// The proof of work does not verify or has too few zero bits.
    PowInvalid,
    /// The PoW nonce was not issued in this session for this recipient and type,
    /// or was already used.
    NonceUnknown,
    /// The message is encrypted to a key this server did not issue to this session
    /// for this recipient, or to an ephemeral key already used.
    KeyNotIssued,
    /// The recipient does not accept messages from this sender.
    Blacklisted,
    /// No such user, message, folder or list entry, or no such path.
    NotFound,
    /// The version segment of the path names a version the server does not speak.
    UnsupportedVersion,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// The request took longer than the server allows; nothing was changed by it
    /// unless it completed (a retry is safe for every call).
    RequestTimeout,
    /// `initialize_account` on an account that is already initialised.
    AlreadyInitialized,
    /// The request clashes with the current state: a folder name in use, a folder
    /// that is not empty, a folder moved under itself, a list entry already present.
    Conflict,
    /// A profile record is not the next record of the chain.
    ChainBroken,
    /// The body, image or key list is larger than the server accepts.
    PayloadTooLarge,
    /// Storing the message would exceed the recipient's quota.
    QuotaExceeded,
    /// Too many requests; try later.
    RateLimited,
    /// The remote user's home server could not be reached or gave no valid key.
    RemoteLookupFailed,
    /// The server failed; nothing was changed.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of docs/protocol.md §10 (by status).
    pub const ALL: [ErrorCode; 26] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidAddress,
        ErrorCode::InvalidSignature,
        ErrorCode::MasterKeyRefused,
        ErrorCode::NotAuthenticated,
        ErrorCode::SessionExpired,
        ErrorCode::WrongServer,
        ErrorCode::LoginFailed,
        ErrorCode::Forbidden,
        ErrorCode::PowRequired,
        ErrorCode::PowInvalid,
        ErrorCode::NonceUnknown,
        ErrorCode::KeyNotIssued,
        ErrorCode::Blacklisted,
        ErrorCode::NotFound,
        ErrorCode::UnsupportedVersion,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::AlreadyInitialized,
        ErrorCode::Conflict,
        ErrorCode::ChainBroken,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::RemoteLookupFailed,
        ErrorCode::QuotaExceeded,
    ];

    /// The wire name (equal to the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidAddress => "invalid_address",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::MasterKeyRefused => "master_key_refused",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::WrongServer => "wrong_server",
            ErrorCode::LoginFailed => "login_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::PowRequired => "pow_required",
            ErrorCode::PowInvalid => "pow_invalid",
            ErrorCode::NonceUnknown => "nonce_unknown",
            ErrorCode::KeyNotIssued => "key_not_issued",
            ErrorCode::Blacklisted => "blacklisted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::AlreadyInitialized => "already_initialized",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ChainBroken => "chain_broken",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RemoteLookupFailed => "remote_lookup_failed",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code of a wire name; `None` for a code this profile does not define (a
    /// client then falls back on the HTTP status).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// The HTTP status the code is always sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidAddress
            | ErrorCode::InvalidSignature
            | ErrorCode::MasterKeyRefused => 400,
            ErrorCode::NotAuthenticated | ErrorCode::SessionExpired | ErrorCode::WrongServer => 401,
            ErrorCode::LoginFailed
            | ErrorCode::Forbidden
            | ErrorCode::PowRequired
            | ErrorCode::PowInvalid
            | ErrorCode::NonceUnknown
            | ErrorCode::KeyNotIssued
            | ErrorCode::Blacklisted => 403,
            ErrorCode::NotFound | ErrorCode::UnsupportedVersion => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::AlreadyInitialized | ErrorCode::Conflict | ErrorCode::ChainBroken => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::RemoteLookupFailed => 502,
            ErrorCode::QuotaExceeded => 507,
        }
    }

    /// Whether the same call may succeed later without the caller changing it
    /// (the gateway's outbound queue retries these and bounces the rest).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::RemoteLookupFailed | ErrorCode::Internal | ErrorCode::RequestTimeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-2xx response: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The code a program acts on and the plain words a person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    /// An error body for `code` with a plain-words `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code, message: message.into() } }
    }

    /// The HTTP status to send it with.
    pub fn status(&self) -> u16 {
        self.error.code.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_coherent() {
        let names: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!((400..600).contains(&code.status()), "{code:?}");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        let expected = [
            (ErrorCode::BadRequest, 400),
            (ErrorCode::NotAuthenticated, 401),
            (ErrorCode::SessionExpired, 401),
            (ErrorCode::WrongServer, 401),
            (ErrorCode::LoginFailed, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::AlreadyInitialized, 409),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Internal, 500),
            (ErrorCode::QuotaExceeded, 507),
        ];
        for (code, status) in expected {
            assert_eq!(code.status(), status, "{code:?}");
        }
        assert!(ErrorCode::ALL.windows(2).all(|w| w[0].status() <= w[1].status()), "ALL is ordered by status");
        assert_eq!(ErrorBody::new(ErrorCode::ChainBroken, "x").status(), 409);
        assert_eq!(ErrorCode::parse("teapot"), None);
    }
}
