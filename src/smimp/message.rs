//! Message types and the plaintext payload of each (docs/protocol.md §7; spec
//! "Message Types"): `email`, `short-message`, `secret-ed25519`,
//! `secret-curve25519`, `secret-xsalsa20` and opaque `x-custom-*`.
//!
//! Pure. Payloads are JSON documents except `x-custom-*`, which are raw bytes.

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxPublicKey, MasterPublicKey};
use crate::smimp::encoding::{base64_bytes, hex_newtype, Id32};
use crate::smimp::timestamp::Timestamp;

/// Why a message type or payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("{0:?} is not a message type (known: email, short-message, secret-ed25519, secret-curve25519, secret-xsalsa20, x-custom-[a-z0-9-]+)")]
    UnknownType(String),
    #[error("the {kind} payload is not valid: {reason}")]
    Payload { kind: String, reason: String },
}

/// The type of a message, as named in envelopes, folders and PoW parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    Email,
    ShortMessage,
    SecretEd25519,
    SecretCurve25519,
    SecretXsalsa20,
    /// `x-custom-` followed by lowercase letters, digits and dashes; holds the whole name.
    Custom(String),
}

impl MessageType {
    /// Parses a type name; `x-custom-*` names must be `[a-z0-9-]+` after the prefix.
    pub fn parse(name: &str) -> Result<Self, MessageError> {
        Ok(match name {
            "email" => Self::Email,
            "short-message" => Self::ShortMessage,
            "secret-ed25519" => Self::SecretEd25519,
            "secret-curve25519" => Self::SecretCurve25519,
            "secret-xsalsa20" => Self::SecretXsalsa20,
            custom => {
                let rest =
                    custom.strip_prefix("x-custom-").ok_or_else(|| MessageError::UnknownType(custom.to_string()))?;
                let valid = !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return Err(MessageError::UnknownType(custom.to_string()));
                }
                Self::Custom(custom.to_string())
            }
        })
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Email => "email",
            Self::ShortMessage => "short-message",
            Self::SecretEd25519 => "secret-ed25519",
            Self::SecretCurve25519 => "secret-curve25519",
            Self::SecretXsalsa20 => "secret-xsalsa20",
            Self::Custom(name) => name,
        }
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for MessageType {
    type Err = MessageError;
    fn from_str(name: &str) -> Result<Self, MessageError> {
        Self::parse(name)
    }
}

impl Serialize for MessageType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A file carried in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    #[serde(with = "base64_bytes")]
    pub content: Vec<u8>,
    #[serde(default)]
    pub content_id: Option<String>,
    #[serde(default)]
    pub inline: bool,
}

/// The `email` payload (spec "Email").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub to: Vec<Address>,
    #[serde(default)]
    pub cc: Vec<Address>,
    pub subject: String,
    pub thread_id: Id32,
    pub reply_to_message_id: Option<Id32>,
    pub date_sent: Timestamp,
    pub body: String,
    #[serde(default)]
    pub signature_text: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub extensions_data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub reply_to: Option<Address>,
    #[serde(default)]
    pub auto_reply_address: Option<Address>,
}

/// The `short-message` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortMessage {
    pub message: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

hex_newtype!(
    /// 32 bytes of secret key material inside a `secret-*` payload (already end-to-end encrypted).
    SecretBytes,
    32
);

/// The `secret-ed25519` payload: a signing key pair, by its seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEd25519 {
    pub public_key: MasterPublicKey,
    pub secret_key: SecretBytes,
    #[serde(default)]
    pub note: Option<String>,
}

/// The `secret-curve25519` payload: a message key pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretCurve25519 {
    pub public_key: BoxPublicKey,
    pub secret_key: SecretBytes,
    pub ephemeral: bool,
    #[serde(default)]
    pub note: Option<String>,
}

/// The `secret-xsalsa20` payload: a symmetric key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretXsalsa20 {
    pub key: SecretBytes,
    #[serde(default)]
    pub note: Option<String>,
}

/// A decrypted payload of any type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Email(Box<Email>),
    ShortMessage(ShortMessage),
    SecretEd25519(SecretEd25519),
    SecretCurve25519(SecretCurve25519),
    SecretXsalsa20(SecretXsalsa20),
    Custom { kind: MessageType, bytes: Vec<u8> },
}

impl Payload {
    /// The type this payload is sent as.
    pub fn message_type(&self) -> MessageType {
        match self {
            Payload::Email(_) => MessageType::Email,
            Payload::ShortMessage(_) => MessageType::ShortMessage,
            Payload::SecretEd25519(_) => MessageType::SecretEd25519,
            Payload::SecretCurve25519(_) => MessageType::SecretCurve25519,
            Payload::SecretXsalsa20(_) => MessageType::SecretXsalsa20,
            Payload::Custom { kind, .. } => kind.clone(),
        }
    }

    /// The plaintext bytes that are sealed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = match self {
            Payload::Email(m) => serde_json::to_vec(m),
            Payload::ShortMessage(m) => serde_json::to_vec(m),
            Payload::SecretEd25519(m) => serde_json::to_vec(m),
            Payload::SecretCurve25519(m) => serde_json::to_vec(m),
            Payload::SecretXsalsa20(m) => serde_json::to_vec(m),
            Payload::Custom { bytes, .. } => return bytes.clone(),
        };
        json.expect("payload documents always serialise")
    }

    /// Reads opened plaintext as `kind`.
    pub fn parse(kind: &MessageType, bytes: &[u8]) -> Result<Self, MessageError> {
        let bad = |e: serde_json::Error| MessageError::Payload { kind: kind.to_string(), reason: e.to_string() };
        Ok(match kind {
            MessageType::Email => Payload::Email(Box::new(serde_json::from_slice(bytes).map_err(bad)?)),
            MessageType::ShortMessage => Payload::ShortMessage(serde_json::from_slice(bytes).map_err(bad)?),
            MessageType::SecretEd25519 => Payload::SecretEd25519(serde_json::from_slice(bytes).map_err(bad)?),
            MessageType::SecretCurve25519 => Payload::SecretCurve25519(serde_json::from_slice(bytes).map_err(bad)?),
            MessageType::SecretXsalsa20 => Payload::SecretXsalsa20(serde_json::from_slice(bytes).map_err(bad)?),
            MessageType::Custom(_) => Payload::Custom { kind: kind.clone(), bytes: bytes.to_vec() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_custom_names_are_checked() {
        for name in
            ["email", "short-message", "secret-ed25519", "secret-curve25519", "secret-xsalsa20", "x-custom-chess-2"]
        {
            assert_eq!(MessageType::parse(name).unwrap().as_str(), name);
        }
        for bad in ["", "Email", "x-custom-", "x-custom-Chess", "x-custom-a_b", "sms"] {
            assert_eq!(MessageType::parse(bad), Err(MessageError::UnknownType(bad.into())), "{bad}");
        }
    }

    #[test]
    fn email_payload_round_trips_and_refuses_unknown_fields() {
        let email = Email {
            to: vec![Address::parse("bob#example.org").unwrap()],
            cc: vec![],
            subject: "Hi ✓".into(),
            thread_id: Id32([1; 32]),
            reply_to_message_id: None,
            date_sent: Timestamp::parse("2026-11-22 10:00:00").unwrap(),
            body: "# Hello\n".into(),
            signature_text: None,
            attachments: vec![Attachment {
                filename: "a.txt".into(),
                content_type: "text/plain".into(),
                content: b"abc".to_vec(),
                content_id: None,
                inline: false,
            }],
            extensions_data: None,
            reply_to: None,
            auto_reply_address: None,
        };
        let payload = Payload::Email(Box::new(email));
        let bytes = payload.to_bytes();
        assert!(String::from_utf8_lossy(&bytes).contains("\"content\":\"YWJj\""));
        assert_eq!(Payload::parse(&MessageType::Email, &bytes).unwrap(), payload);
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        json["html"] = "<b>no</b>".into();
        let err = Payload::parse(&MessageType::Email, json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, MessageError::Payload { .. }), "{err}");
        assert!(Payload::parse(&MessageType::ShortMessage, b"\xff").is_err());
    }

    #[test]
    fn custom_payloads_are_opaque_bytes() {
        let kind = MessageType::parse("x-custom-raw").unwrap();
        let payload = Payload::parse(&kind, &[0, 159, 255]).unwrap();
        assert_eq!(payload.to_bytes(), vec![0, 159, 255]);
        assert_eq!(payload.message_type(), kind);
    }
}
