//! Opening one received message for IMAP (design §2 "Inbound"): the envelope's sender
//! key is checked against what trust on first use allows for the sender, the signed
//! message hash and the proof of work are verified, the payload is decrypted with the
//! message key it names, and the `email` payload is rendered as RFC 5322 / MIME. A
//! message that fails any check becomes a plain warning in its place; its content is
//! never shown.

use std::collections::HashSet;

use crate::keystore::Keystore;
use crate::mime::outbound::{rfc5322_from_email, warning_message, RenderMeta};
use crate::mime::own::raw_of;
use crate::mime::X_DELIVERY;
use crate::smimp::crypto::{BoxNonce, MasterPublicKey};
use crate::smimp::envelope::StoredEnvelope;
use crate::smimp::message::Payload;

/// What the account may accept as a sender's signing key, decided once per sender.
#[derive(Debug, Clone)]
pub enum SenderTrust {
    /// Keys that verify: the pinned current key, and earlier keys of a verified history.
    Keys(HashSet<MasterPublicKey>),
    /// The sender is refused, for this reason.
    Refused(String),
}

/// A rendered message and what the IMAP view needs to know about it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// RFC 5322 bytes, CRLF line ends.
    pub bytes: Vec<u8>,
    /// Whether it passed every check (false: `bytes` is a warning message).
    pub verified: bool,
    /// The sender's delivery id, for dropping a second copy of one submission.
    pub delivery_id: Option<String>,
    /// IMAP flags other than \Seen that the account's devices keep in the message's
    /// extensions data.
    pub flags: Vec<String>,
}

/// The sealed document an account keeps in a message's `extensions_data`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MessageExtras {
    #[serde(default)]
    pub flags: Vec<String>,
}

/// Verifies, opens and renders one stored envelope for its recipient, the owner of
/// `keystore`. CPU-bound: callers run it on the blocking pool.
pub fn open_and_render(envelope: &StoredEnvelope, keystore: &Keystore, trust: &SenderTrust) -> Rendered {
    let server = &envelope.server;
    let owner = keystore.address();
    let meta = RenderMeta {
        message_id: server.message_id,
        sender: server.sender.clone(),
        sender_name: None,
        recipient: owner.clone(),
        received_at: server.received_at,
        verification: String::new(),
    };
    let flags = extras(envelope, keystore).flags;
    let warning = |reason: String| Rendered {
        bytes: warning_message(&reason, &meta),
        verified: false,
        delivery_id: None,
        flags: flags.clone(),
    };
    if &server.recipient != owner {
        return warning(format!("the server delivered a copy addressed to {}, not to this account", server.recipient));
    }
    match trust {
        SenderTrust::Refused(reason) => return warning(format!("the sender is not trusted: {reason}")),
        SenderTrust::Keys(keys) if !keys.contains(&server.sender_public_key) => {
            return warning(format!(
                "it is signed with the key {}, which is not in {}'s verified profile history",
                server.sender_public_key, server.sender
            ))
        }
        SenderTrust::Keys(_) => {}
    }
    let Some(secret) = keystore.secret_for(&envelope.sent.message_public_key) else {
        return warning("it is encrypted to a message key this gateway does not hold".into());
    };
    let own_master = keystore.master().public();
    let plaintext = match envelope.open(&server.sender_public_key, &own_master, secret) {
        Ok(bytes) => bytes,
        Err(err) => return warning(format!("it failed verification: {err}")),
    };
    let email = match Payload::parse(&envelope.sent.message_type, &plaintext) {
        Ok(Payload::Email(email)) => email,
        Ok(other) => {
            return warning(format!("it is a {} message, which mail clients cannot show", other.message_type()))
        }
        Err(err) => return warning(format!("its content is malformed: {err}")),
    };
    let delivery_id = email
        .extensions_data
        .as_ref()
        .and_then(|e| e.get(X_DELIVERY))
        .and_then(|v| v.as_str())
        .map(|s| s.chars().take(64).collect());
    // The owner's own stored mail comes back byte for byte; from anyone else the raw
    // form is ignored (it would let them write any header).
    if &server.sender == owner {
        if let Some(raw) = raw_of(&email) {
            return Rendered { bytes: raw, verified: true, delivery_id, flags };
        }
    }
    let meta = RenderMeta {
        verification: format!(
            "pass; signed by {}'s verified key {}, decrypted by this gateway",
            server.sender.to_email(),
            server.sender_public_key
        ),
        ..meta
    };
    Rendered { bytes: rfc5322_from_email(&email, &meta), verified: true, delivery_id, flags }
}

/// The account's own sealed extras of a message; empty when absent or unreadable.
fn extras(envelope: &StoredEnvelope, keystore: &Keystore) -> MessageExtras {
    let Some(sealed) = &envelope.server.extensions_data else { return MessageExtras::default() };
    keystore
        .storage_key()
        .open(&sealed.nonce, &sealed.ciphertext)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Seals the account's extras for a message's `extensions_data`.
pub fn seal_extras(extras: &MessageExtras, keystore: &Keystore) -> crate::smimp::envelope::SealedData {
    let nonce = BoxNonce::random(&mut rand_core::OsRng);
    let bytes = serde_json::to_vec(extras).unwrap_or_default();
    crate::smimp::envelope::SealedData { ciphertext: keystore.storage_key().seal(&nonce, &bytes), nonce }
}

/// The owner's own mail: signed by any of its master keys, current or earlier.
pub fn own_trust(keystore: &Keystore) -> SenderTrust {
    let mut keys: HashSet<MasterPublicKey> = keystore.previous_masters().iter().map(|m| m.public()).collect();
    keys.insert(keystore.master().public());
    SenderTrust::Keys(keys)
}
