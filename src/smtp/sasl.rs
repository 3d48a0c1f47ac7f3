//! SASL for SMTP AUTH (pure): decoding the PLAIN (RFC 4616) and LOGIN responses of
//! RFC 4954, base64 (RFC 4648) and the delay that throttles failed attempts.
//!
//! Passwords live in [`Password`], which redacts Debug and overwrites its bytes on drop.
//! Depends only on std.

use std::fmt;
use std::time::Duration;

/// The LOGIN mechanism's prompts, base64 of `Username:` and `Password:`.
pub(crate) const LOGIN_USERNAME_PROMPT: &str = "VXNlcm5hbWU6";
pub(crate) const LOGIN_PASSWORD_PROMPT: &str = "UGFzc3dvcmQ6";

/// The longest delay after a failed attempt.
const MAX_DELAY: Duration = Duration::from_secs(30);

/// Why a SASL response could not be read. Wrong credentials are not an error here:
/// the backend decides those.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SaslError {
    #[error("the response is not valid base64")]
    Base64,
    #[error("the PLAIN response does not have three NUL-separated fields")]
    PlainFields,
}

/// A password: Debug shows nothing, and the bytes are overwritten when it is dropped.
pub(crate) struct Password(Vec<u8>);

impl Password {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Password(bytes)
    }

    /// The password as text, if it is UTF-8.
    pub(crate) fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// What a PLAIN response or a LOGIN exchange yields.
#[derive(Debug)]
pub(crate) struct Credentials {
    /// Raw bytes: a username that is not UTF-8 fails like a wrong one.
    pub(crate) username: Vec<u8>,
    /// The authorization identity; a non-empty one must equal the username.
    pub(crate) authzid: Vec<u8>,
    pub(crate) password: Password,
}

/// Decodes a PLAIN response (`authzid NUL authcid NUL passwd`, base64).
pub(crate) fn plain(response: &[u8]) -> Result<Credentials, SaslError> {
    let mut decoded = decode_base64(response)?;
    let result = {
        let mut fields = decoded.split(|&b| b == 0);
        match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(authzid), Some(username), Some(password), None) => Ok(Credentials {
                username: username.to_vec(),
                authzid: authzid.to_vec(),
                password: Password::new(password.to_vec()),
            }),
            _ => Err(SaslError::PlainFields),
        }
    };
    wipe(&mut decoded);
    result
}

/// Decodes base64 with the standard alphabet (RFC 4648 §4), with or without padding;
/// whitespace, other characters and non-canonical trailing bits are refused.
pub(crate) fn decode_base64(input: &[u8]) -> Result<Vec<u8>, SaslError> {
    use base64::engine::{general_purpose::GeneralPurpose, general_purpose::GeneralPurposeConfig, DecodePaddingMode};
    use base64::Engine as _;
    const LENIENT_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT_PADDING.decode(input).map_err(|_| SaslError::Base64)
}

/// The delay before answering the `failures`-th failed attempt of a connection: `base`,
/// doubled for each further failure, at most 30 seconds.
pub(crate) fn failure_delay(failures: u32, base: Duration) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(MAX_DELAY)
}

/// Overwrites secret bytes (credentials) before their memory is released.
pub(crate) fn wipe(bytes: &mut [u8]) {
    zeroize::Zeroize::zeroize(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_padded_and_unpadded_and_refuses_junk() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            ("Zg==", Some("f")),
            ("Zg", Some("f")),
            ("Zm8=", Some("fo")),
            ("Zm9v", Some("foo")),
            ("VXNlcm5hbWU6", Some("Username:")),
            ("UGFzc3dvcmQ6", Some("Password:")),
            ("Zm9v YmFy", None),
            ("Z", None),
            ("Zh==", None),
            ("Zg=", Some("f")),
            ("=", None),
            ("Zm9v!", None),
        ];
        for (input, expected) in cases {
            let got = decode_base64(input.as_bytes()).ok().map(|b| String::from_utf8(b).unwrap());
            assert_eq!(got.as_deref(), *expected, "{input}");
        }
    }

    #[test]
    fn plain_needs_exactly_three_fields() {
        // "\0alice\0secret"
        let creds = plain(b"AGFsaWNlAHNlY3JldA==").unwrap();
        assert_eq!(creds.username, b"alice");
        assert!(creds.authzid.is_empty());
        assert_eq!(creds.password.as_str(), Some("secret"));
        assert!(!format!("{creds:?}").contains("secret"));
        // "alice\0alice\0secret"
        let creds = plain(b"YWxpY2UAYWxpY2UAc2VjcmV0").unwrap();
        assert_eq!(creds.authzid, b"alice");
        // "alice\0secret" and "a\0b\0c\0d"
        assert_eq!(plain(b"YWxpY2UAc2VjcmV0").unwrap_err(), SaslError::PlainFields);
        assert_eq!(plain(b"YQBiAGMAZA==").unwrap_err(), SaslError::PlainFields);
        assert_eq!(plain(b"not base64!").unwrap_err(), SaslError::Base64);
    }

    #[test]
    fn the_delay_doubles_and_is_capped() {
        let base = Duration::from_millis(500);
        let delays: Vec<_> = (1..=8).map(|n| failure_delay(n, base).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(failure_delay(u32::MAX, base), MAX_DELAY);
    }
}
