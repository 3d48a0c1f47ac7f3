//! Wire encodings of binary values (docs/protocol.md §1): fixed-size values as
//! lowercase hex newtypes, variable-size blobs as standard padded base64.
//!
//! Pure: no I/O. Decoders refuse a wrong length instead of truncating or padding.

use base64::Engine as _;

/// Why a hex or base64 value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid hex: {0}")]
    Hex(String),
    #[error("expected {expected} bytes, found {found}")]
    Length { expected: usize, found: usize },
    #[error("not valid base64: {0}")]
    Base64(String),
}

/// Decodes hex into exactly `N` bytes.
pub fn hex_to_array<const N: usize>(text: &str) -> Result<[u8; N], DecodeError> {
    let bytes = hex::decode(text).map_err(|e| DecodeError::Hex(e.to_string()))?;
    bytes.as_slice().try_into().map_err(|_| DecodeError::Length { expected: N, found: bytes.len() })
}

/// Standard base64 with padding, the profile's form for ciphertext and attachments.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes standard padded base64.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| DecodeError::Base64(e.to_string()))
}

/// Serde adapter for `Vec<u8>` fields carried as base64.
pub mod base64_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::base64_encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::base64_decode(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for variable-length `Vec<u8>` fields carried as hex (test vectors).
pub mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(text.as_ref()).map_err(serde::de::Error::custom)
    }
}

/// Declares a fixed-size byte newtype that travels as lowercase hex, so that a
/// key, hash or nonce of the wrong size can never be constructed from the wire.
macro_rules! hex_newtype {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Number of bytes in this value.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lowercase hex, the wire form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::smimp::encoding::DecodeError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                $crate::smimp::encoding::hex_to_array(text).map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use hex_newtype;

hex_newtype!(
    /// A 32-byte identifier drawn at random: tokens, PoW nonces and values, message and thread ids.
    Id32,
    32
);

impl Id32 {
    /// Draws a fresh identifier; the random source is a parameter so tests can pin it.
    pub fn random(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_newtype_round_trips_and_refuses_wrong_lengths() {
        let id: Id32 = "00".repeat(32).parse().unwrap();
        assert_eq!(id.0, [0u8; 32]);
        assert_eq!(id.to_string(), "00".repeat(32));
        assert_eq!("00".repeat(31).parse::<Id32>(), Err(DecodeError::Length { expected: 32, found: 31 }));
        assert!(matches!("zz".parse::<Id32>(), Err(DecodeError::Hex(_))));
        let upper: Id32 = "AB".repeat(32).parse().unwrap();
        assert_eq!(upper.to_hex(), "ab".repeat(32));
    }

    #[test]
    fn hex_newtype_serde_uses_strings() {
        let id = Id32([7u8; 32]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", "07".repeat(32)));
        assert_eq!(serde_json::from_str::<Id32>(&json).unwrap(), id);
        assert!(serde_json::from_str::<Id32>("\"0707\"").is_err());
        assert!(serde_json::from_str::<Id32>("7").is_err());
    }

    #[test]
    fn base64_round_trips_and_refuses_garbage() {
        for input in [&b""[..], b"a", b"ab", b"abc", &[0u8, 255, 128, 7]] {
            assert_eq!(base64_decode(&base64_encode(input)).unwrap(), input);
        }
        assert!(base64_decode("not base64!").is_err());
        assert_eq!(base64_encode(b"abcd"), "YWJjZA==");
    }
}
