//! Opening one received message for IMAP (design §2 "Inbound"): the envelope's sender
//! key is checked against what trust on first use allows for the sender, the signed
//! message hash and the proof of work are verified, the payload is decrypted with the
//! message key it names, and the `email` payload is shown as its sender's client wrote
//! it (its sealed original, when consistent: `mime/original.rs`) or else rendered as
//! RFC 5322 / MIME. A message that fails any check becomes a plain warning in its place;
//! its content is never shown.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::keystore::Keystore;
use crate::mime::message_id_for;
use crate::mime::original::{original_message_id, shown_original};
use crate::mime::outbound::{rfc5322_from_email, warning_message, with_known_ids, RenderMeta};
use crate::mime::own::raw_of;
use crate::mime::X_DELIVERY;
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxNonce, MasterPublicKey};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{check_signatures, Checked, EnvelopeError, SenderCurve, StoredEnvelope};
use crate::smimp::message::{Email, Payload};
use crate::smimp::profile::VerifiedHistory;
use crate::smimp::timestamp::Timestamp;
use crate::store::{GatewayStore, ThreadEntry};

/// What the account may accept as a sender's signing key, decided once per sender and sync.
#[derive(Debug, Clone)]
pub enum SenderTrust {
    /// Keys that verify: the pinned current key, and earlier keys of a history that
    /// passed the pin check, each within its window.
    Keys(Arc<SenderKeys>),
    /// The sender is refused, for this reason.
    Refused(String),
}

/// The keys a sender may sign with, and until when. Computed from the pin and the
/// sender's history alone, never from the message at hand, so every message of one
/// sync gets the same answer whatever order the messages arrive in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderKeys {
    /// Accepted whenever the message was received: the current key (the account's own
    /// masters, for its own mail).
    current: HashSet<MasterPublicKey>,
    /// Keys a rotation in the checked history retired, each with the time of the
    /// record that retired it.
    retired: HashMap<MasterPublicKey, Timestamp>,
    /// Why no earlier key is accepted: the history failed the pin check.
    history_refused: Option<String>,
}

/// Why a key is not accepted for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Not the current key, and not in the checked history.
    Unknown,
    /// Retired at this time, and the server received the message later.
    RetiredBefore(Timestamp),
    /// Not the current key, and the history earlier keys would come from was refused.
    HistoryRefused(String),
}

impl SenderKeys {
    /// Only these keys, whenever received.
    pub fn current(keys: impl IntoIterator<Item = MasterPublicKey>) -> Self {
        Self { current: keys.into_iter().collect(), ..Self::default() }
    }

    /// The keys of a history that passed the pin check: its current key, and each
    /// earlier key until the record that retired it.
    pub fn from_history(history: &VerifiedHistory) -> Self {
        Self { retired: history.retired_keys(), ..Self::current([history.current_key()]) }
    }

    /// These keys, with no earlier key accepted because the history was refused.
    pub fn with_history_refused(mut self, reason: String) -> Self {
        self.retired.clear();
        self.history_refused = Some(reason);
        self
    }

    /// Whether `key` is accepted whenever received (no history is needed for it).
    pub fn is_current(&self, key: &MasterPublicKey) -> bool {
        self.current.contains(key)
    }

    /// Whether a message signed by `key` that the server received at `received_at` is
    /// accepted. Timestamps count whole seconds: a message received in the second of
    /// the rotation counts as before it, since neither server can order the two.
    pub fn accepts(&self, key: &MasterPublicKey, received_at: Timestamp) -> Result<(), KeyRefusal> {
        if self.current.contains(key) {
            return Ok(());
        }
        match (self.retired.get(key), &self.history_refused) {
            (Some(until), _) if received_at <= *until => Ok(()),
            (Some(until), _) => Err(KeyRefusal::RetiredBefore(*until)),
            (None, Some(reason)) => Err(KeyRefusal::HistoryRefused(reason.clone())),
            (None, None) => Err(KeyRefusal::Unknown),
        }
    }
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
    /// The thread facts of verified mail from someone else, for the thread map.
    pub threading: Option<Threading>,
}

/// What the thread map needs of a rendered message (`store/threads.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Threading {
    /// The payload's thread.
    pub thread_id: Id32,
    /// The SMIMP message the payload answers, as its sender named it.
    pub reply_to: Option<Id32>,
    /// When the server received it: the thread's Message-IDs named in its rendering are
    /// those recorded by then, so rendering it again gives the same bytes.
    pub received_at: Timestamp,
    /// The sender's own Message-ID (without angle brackets) when the message is shown as
    /// its sealed original; `None` when it is rendered from the payload (its Message-ID
    /// is then the gateway's own form, which replies resolve without the map).
    pub original_message_id: Option<String>,
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
    open_and_render_all(&[(envelope, trust)], keystore).pop().unwrap_or_else(|| Rendered {
        bytes: Vec::new(),
        verified: false,
        delivery_id: None,
        flags: Vec::new(),
        threading: None,
    })
}

/// Verifies, opens and renders many stored envelopes, in the order given: their
/// signatures checked in one batch, each sender's key converted once. The same checks
/// and the same answers as [`open_and_render`] on each. CPU-bound: the blocking pool.
pub fn open_and_render_all(items: &[(&StoredEnvelope, &SenderTrust)], keystore: &Keystore) -> Vec<Rendered> {
    let admitted: Vec<Result<(), String>> = items.iter().map(|(e, trust)| admit(e, keystore, trust)).collect();
    let to_check: Vec<(&StoredEnvelope, &MasterPublicKey)> = items
        .iter()
        .zip(&admitted)
        .filter(|(_, admitted)| admitted.is_ok())
        .map(|((envelope, _), _)| (*envelope, &envelope.server.sender_public_key))
        .collect();
    let mut checks = check_signatures(&to_check).into_iter();
    let mut curves = HashMap::new();
    items
        .iter()
        .zip(admitted)
        .map(|((envelope, _), admitted)| {
            let checked = admitted.and_then(|()| {
                checks.next().unwrap_or(Err(EnvelopeError::BadSignature)).map_err(|e| failed_verification(&e))
            });
            open_checked_and_render(envelope, keystore, checked, &mut curves)
        })
        .collect()
}

fn failed_verification(err: &EnvelopeError) -> String {
    format!("it failed verification: {err}")
}

/// The checks before the signature: the copy is addressed to this account, the sender
/// is trusted and the envelope's key is one it accepts for that time, the account holds
/// the message key, and the message is not sealed to the master key. `Err`: why not.
fn admit(envelope: &StoredEnvelope, keystore: &Keystore, trust: &SenderTrust) -> Result<(), String> {
    let server = &envelope.server;
    if &server.recipient != keystore.address() {
        return Err(format!("the server delivered a copy addressed to {}, not to this account", server.recipient));
    }
    let keys = match trust {
        SenderTrust::Refused(reason) => return Err(format!("the sender is not trusted: {reason}")),
        SenderTrust::Keys(keys) => keys,
    };
    keys.accepts(&server.sender_public_key, server.received_at).map_err(|refusal| key_warning(&refusal, envelope))?;
    let Some(secret) = keystore.secret_for(&envelope.sent.message_public_key) else {
        return Err("it is encrypted to a message key this gateway does not hold".into());
    };
    envelope
        .check_keys(&server.sender_public_key, &keystore.master().public(), secret)
        .map_err(|e| failed_verification(&e))
}

/// Opens an admitted envelope whose signature check ended as `checked` and renders it;
/// a warning in its place for any failure. `curves`: senders' converted keys so far.
fn open_checked_and_render(
    envelope: &StoredEnvelope,
    keystore: &Keystore,
    checked: Result<Checked, String>,
    curves: &mut HashMap<MasterPublicKey, Result<SenderCurve, EnvelopeError>>,
) -> Rendered {
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
        threading: None,
    };
    let plaintext = match open_with(envelope, keystore, checked, curves) {
        Ok(bytes) => bytes,
        Err(reason) => return warning(reason),
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
            return Rendered { bytes: raw, verified: true, delivery_id, flags, threading: None };
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
    let (bytes, threading) = render_verified(&email, &server.sender, &server.message_id, meta);
    Rendered { bytes, verified: true, delivery_id, flags, threading: Some(threading) }
}

/// The plaintext of an envelope whose checks so far ended as `checked`.
fn open_with(
    envelope: &StoredEnvelope,
    keystore: &Keystore,
    checked: Result<Checked, String>,
    curves: &mut HashMap<MasterPublicKey, Result<SenderCurve, EnvelopeError>>,
) -> Result<Vec<u8>, String> {
    let checked = checked?;
    let key = envelope.server.sender_public_key;
    let sender = curves.entry(key).or_insert_with(|| SenderCurve::of(&key)).as_ref().map_err(failed_verification)?;
    let Some(secret) = keystore.secret_for(&envelope.sent.message_public_key) else {
        return Err("it is encrypted to a message key this gateway does not hold".into());
    };
    envelope.open_checked(&checked, sender, &keystore.master().public(), secret).map_err(|e| failed_verification(&e))
}

/// Verified mail from someone else: the message as its sender's client wrote it, when
/// the payload carries a sealed original consistent with it; otherwise (SMIMP-native
/// mail, or an original that is refused) the payload's own rendering.
fn render_verified(email: &Email, sender: &Address, message_id: &Id32, mut meta: RenderMeta) -> (Vec<u8>, Threading) {
    let mut threading = Threading {
        thread_id: email.thread_id,
        reply_to: email.reply_to_message_id,
        received_at: meta.received_at,
        original_message_id: None,
    };
    let bytes = match shown_original(email, sender, message_id, &meta.verification) {
        Some(Ok(bytes)) => {
            threading.original_message_id = original_message_id(email, sender);
            bytes
        }
        Some(Err(err)) => {
            tracing::warn!(sender = %sender, error = %err, "a sealed original is refused; the payload is shown");
            meta.verification = format!("{}; {err}, so it is shown as the SMIMP message", meta.verification);
            rfc5322_from_email(email, &meta)
        }
        None => rfc5322_from_email(email, &meta),
    };
    (bytes, threading)
}

/// Keeps the thread map in step with a message about to be shown (`store/threads.rs`):
/// the Message-ID it is shown with is recorded for its thread and the account's copy
/// `copy`, so a mail client's reply to it names this SMIMP message; and a message shown
/// from its payload (SMIMP-native mail) gets the In-Reply-To and References the
/// account's client knows for its thread. A database failure costs threading only: it is
/// logged and the message is shown as rendered.
pub async fn keep_thread(store: &GatewayStore, account: &Address, copy: &Id32, rendered: &mut Rendered, now: i64) {
    complete_from_thread_map(store, account, rendered).await;
    let Some((shown, entry)) = thread_entry(copy, rendered) else { return };
    if let Err(err) = store.remember_thread(account, &shown, entry, now).await {
        tracing::warn!(error = %err, "the thread map could not be updated; replies to this message start a new thread");
    }
}

/// What the thread map is asked to complete a rendering from the payload (SMIMP-native
/// mail): its thread, and the message it answers. `None` when nothing is asked (mail
/// shown as its sealed original, or not verified).
pub fn thread_question(rendered: &Rendered) -> Option<(Id32, Option<Id32>)> {
    let threading = rendered.threading.as_ref()?;
    threading.original_message_id.is_none().then_some((threading.thread_id, threading.reply_to))
}

/// [`keep_thread`]'s first half: a rendering from the payload gets the In-Reply-To and
/// References the account's client knows for its thread. A database failure costs
/// threading only: it is logged and the message is shown as rendered.
pub async fn complete_from_thread_map(store: &GatewayStore, account: &Address, rendered: &mut Rendered) {
    let Some(threading) = &rendered.threading else { return };
    if threading.original_message_id.is_some() {
        return;
    }
    let (thread, reply_to, until) = (&threading.thread_id, threading.reply_to.as_ref(), threading.received_at.unix());
    match store.thread_names(account, thread, reply_to, until).await {
        Ok(names) if names.parent.is_some() => {
            if let Some(bytes) = with_known_ids(&rendered.bytes, names.parent.as_deref(), &names.known) {
                rendered.bytes = bytes;
            }
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "the thread map could not be read; the message is shown without it"),
    }
}

/// [`keep_thread`]'s second half: the Message-ID the client sees for `copy` and its
/// thread map entry (a sync remembers a chunk's in one step).
pub fn thread_entry(copy: &Id32, rendered: &Rendered) -> Option<(String, ThreadEntry)> {
    let threading = rendered.threading.as_ref()?;
    let shown = match &threading.original_message_id {
        Some(id) => id.clone(),
        None => message_id_for(copy).trim_matches(['<', '>']).to_string(),
    };
    Some((shown, ThreadEntry { thread_id: threading.thread_id, message_id: Some(*copy) }))
}

/// The warning's reason for a message signed by a key the sender's keys do not accept.
fn key_warning(refusal: &KeyRefusal, envelope: &StoredEnvelope) -> String {
    let (key, sender, received) =
        (&envelope.server.sender_public_key, &envelope.server.sender, envelope.server.received_at);
    match refusal {
        KeyRefusal::Unknown => format!("it is signed with the key {key}, which is not in {sender}'s verified profile history"),
        KeyRefusal::RetiredBefore(until) => format!(
            "it is signed with the key {key}, which {sender} retired at {until}, but the server received it later, at {received}"
        ),
        KeyRefusal::HistoryRefused(reason) => format!(
            "it is signed with the key {key}, which is not {sender}'s current key, and {sender}'s earlier keys cannot be checked: {reason}"
        ),
    }
}

/// The account's own sealed extras of a message; empty when absent or unreadable.
fn extras(envelope: &StoredEnvelope, keystore: &Keystore) -> MessageExtras {
    envelope.server.extensions_data.as_ref().map(|sealed| open_extras(sealed, keystore)).unwrap_or_default()
}

/// The account's extras from a message's sealed `extensions_data`; none when it does
/// not open with the storage key or is not the gateway's document.
pub fn open_extras(sealed: &crate::smimp::envelope::SealedData, keystore: &Keystore) -> MessageExtras {
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
    let previous = keystore.previous_masters().iter().map(|m| m.public());
    SenderTrust::Keys(Arc::new(SenderKeys::current(previous.chain([keystore.master().public()]))))
}

#[cfg(test)]
mod tests {
    //! The trust check of the inbound path: content is shown only when the envelope is
    //! signed by a key the sender's verified history holds.

    use super::*;
    use crate::smimp::address::Address;
    use crate::smimp::crypto::{BoxPublicKey, BoxSecretKey, MasterKey, SecretBoxKey};
    use crate::smimp::encoding::Id32;
    use crate::smimp::envelope::{
        login_token_hash, Ciphertext, HashContext, ReceivedVia, ServerFields, PROTOCOL_VERSION,
    };
    use crate::smimp::keys::KeyKind;
    use crate::smimp::message::{Email, MessageType};
    use crate::smimp::timestamp::Timestamp;
    use rand_core::OsRng;

    const SECRET_BODY: &str = "the vault code is 7291";

    struct World {
        alice: Address,
        alice_key: MasterKey,
        bob: Keystore,
        bob_message: BoxPublicKey,
    }

    fn world() -> World {
        let alice = Address::parse("alice#a.example").unwrap();
        let mut bob = Keystore::new(
            Address::parse("bob#b.example").unwrap(),
            MasterKey::generate(&mut OsRng),
            SecretBoxKey::generate(&mut OsRng),
        );
        let bob_message = bob.add_message_key(BoxSecretKey::generate(&mut OsRng), KeyKind::Ephemeral, 1_000);
        World { alice, alice_key: MasterKey::generate(&mut OsRng), bob, bob_message }
    }

    fn payload(w: &World) -> Vec<u8> {
        Payload::Email(Box::new(Email {
            to: vec![w.bob.address().clone()],
            cc: vec![],
            subject: "Quarterly numbers".into(),
            thread_id: Id32([1; 32]),
            reply_to_message_id: None,
            date_sent: Timestamp::parse("2026-11-22 10:00:00").unwrap(),
            body: format!("{SECRET_BODY}\n"),
            signature_text: None,
            attachments: vec![],
            extensions_data: None,
            reply_to: None,
            auto_reply_address: None,
        }))
        .to_bytes()
    }

    /// An envelope from Alice to Bob sealed and signed with `signer`, which the server's
    /// fields name as `claimed` (the key it says the sender used).
    fn envelope(w: &World, signer: &MasterKey, claimed: MasterPublicKey) -> StoredEnvelope {
        envelope_of(w, signer, claimed, &payload(w))
    }

    fn envelope_of(w: &World, signer: &MasterKey, claimed: MasterPublicKey, payload: &[u8]) -> StoredEnvelope {
        let token_hash = login_token_hash(&Id32::random(&mut OsRng));
        let recipient = w.bob.address();
        let context = HashContext { sender: &w.alice, recipient, login_token_hash: &token_hash };
        let sealed =
            Ciphertext::seal(payload, MessageType::Email, BoxNonce::random(&mut OsRng), &w.bob_message, signer);
        StoredEnvelope {
            sent: sealed.into_envelope(signer, &context, None),
            server: ServerFields {
                recipient: recipient.clone(),
                sender: w.alice.clone(),
                sender_public_key: claimed,
                received_at: Timestamp::parse("2026-11-22 12:00:00").unwrap(),
                pow_params: None,
                message_id: Id32::random(&mut OsRng),
                login_token_hash: token_hash,
                received_via: ReceivedVia::SmimpClient,
                read: false,
                extensions_data: None,
                protocol_version: PROTOCOL_VERSION.into(),
            },
        }
    }

    fn pinned(keys: &[MasterPublicKey]) -> SenderTrust {
        SenderTrust::Keys(Arc::new(SenderKeys::current(keys.iter().copied())))
    }

    /// The message's text with quoted-printable soft line breaks joined.
    fn text(rendered: &Rendered) -> String {
        String::from_utf8_lossy(&rendered.bytes).replace("=\r\n", "")
    }

    fn assert_warning(rendered: &Rendered, reason: &str) {
        let text = text(rendered);
        assert!(!rendered.verified, "shown as verified:\n{text}");
        assert!(!text.contains(SECRET_BODY), "the content was shown:\n{text}");
        assert!(text.contains("Subject: Unverified message from alice@a.example withheld"), "{text}");
        assert!(text.contains(reason), "the warning does not say {reason:?}:\n{text}");
    }

    #[test]
    fn a_message_signed_by_the_senders_verified_key_is_shown() {
        let w = world();
        let envelope = envelope(&w, &w.alice_key, w.alice_key.public());
        let rendered = open_and_render(&envelope, &w.bob, &pinned(&[w.alice_key.public()]));
        assert!(rendered.verified, "{}", text(&rendered));
        assert!(text(&rendered).contains(SECRET_BODY), "{}", text(&rendered));
    }

    #[test]
    fn a_message_signed_by_another_key_is_a_warning() {
        let w = world();
        let mallory = MasterKey::generate(&mut OsRng);
        let envelope = envelope(&w, &mallory, mallory.public());
        let rendered = open_and_render(&envelope, &w.bob, &pinned(&[w.alice_key.public()]));
        assert_warning(&rendered, "which is not in alice#a.example's verified profile history");
    }

    #[test]
    fn a_server_sealing_with_its_own_key_under_the_senders_name_is_a_warning() {
        let w = world();
        let server = MasterKey::generate(&mut OsRng);
        // The server names its own key as the sender's ...
        let envelope_own = envelope(&w, &server, server.public());
        assert_warning(
            &open_and_render(&envelope_own, &w.bob, &pinned(&[w.alice_key.public()])),
            "Reason: it is signed with the key",
        );
        // ... or claims the sender's pinned key while the signature is its own.
        let envelope_claimed = envelope(&w, &server, w.alice_key.public());
        assert_warning(
            &open_and_render(&envelope_claimed, &w.bob, &pinned(&[w.alice_key.public()])),
            "Reason: it failed verification",
        );
    }

    #[test]
    fn a_refused_sender_is_a_warning_even_with_a_good_signature() {
        let w = world();
        let envelope = envelope(&w, &w.alice_key, w.alice_key.public());
        let refused = SenderTrust::Refused("the profile history does not verify".into());
        assert_warning(&open_and_render(&envelope, &w.bob, &refused), "the sender is not trusted");
    }

    /// Bob's view of Alice after she rotated from `old` to the test's key at noon.
    fn rotated_at_noon(w: &World, old: &MasterKey) -> SenderTrust {
        let none = crate::smimp::profile::ProfileFields::default;
        let morning = Timestamp::parse("2026-11-22 08:00:00").unwrap();
        let noon = Timestamp::parse("2026-11-22 12:00:00").unwrap();
        let r0 = crate::smimp::profile::ProfileRecord::initial(old, &w.alice, none(), morning);
        let h = crate::smimp::profile::verify_history(&w.alice, &[r0]).unwrap();
        let r1 =
            crate::smimp::profile::ProfileRecord::next(h.latest(), old, w.alice_key.public(), none(), noon).unwrap();
        SenderTrust::Keys(Arc::new(SenderKeys::from_history(&h.extend(r1).unwrap())))
    }

    fn received(mut envelope: StoredEnvelope, at: &str) -> StoredEnvelope {
        envelope.server.received_at = Timestamp::parse(at).unwrap();
        envelope
    }

    #[test]
    fn a_retired_key_counts_only_for_mail_received_before_its_rotation() {
        let w = world();
        let old = MasterKey::generate(&mut OsRng);
        let trust = rotated_at_noon(&w, &old);
        for at in ["2026-11-22 11:59:59", "2026-11-22 12:00:00"] {
            let before = received(envelope(&w, &old, old.public()), at);
            let rendered = open_and_render(&before, &w.bob, &trust);
            assert!(rendered.verified, "received {at}: {}", text(&rendered));
        }
        let after = received(envelope(&w, &old, old.public()), "2026-11-22 12:00:01");
        assert_warning(
            &open_and_render(&after, &w.bob, &trust),
            "which alice#a.example retired at 2026-11-22 12:00:00, but the server received it later, at 2026-11-22 12:00:01",
        );
        // The current key counts whenever received.
        let current = received(envelope(&w, &w.alice_key, w.alice_key.public()), "2026-11-22 07:00:00");
        assert!(open_and_render(&current, &w.bob, &trust).verified);
    }

    #[test]
    fn an_earlier_key_from_a_refused_history_is_a_warning_naming_the_cause() {
        let w = world();
        let attacker = MasterKey::generate(&mut OsRng);
        let keys = SenderKeys::current([w.alice_key.public()])
            .with_history_refused("alice#a.example's profile history was replaced".into());
        let trust = SenderTrust::Keys(Arc::new(keys));
        let forged = envelope(&w, &attacker, attacker.public());
        assert_warning(
            &open_and_render(&forged, &w.bob, &trust),
            "earlier keys cannot be checked: alice#a.example's profile history was replaced",
        );
        let genuine = envelope(&w, &w.alice_key, w.alice_key.public());
        assert!(open_and_render(&genuine, &w.bob, &trust).verified);
    }

    #[test]
    fn the_verdict_on_a_key_depends_on_the_key_and_the_time_received_only() {
        let old = MasterKey::generate(&mut OsRng).public();
        let current = MasterKey::generate(&mut OsRng).public();
        let noon = Timestamp::parse("2026-11-22 12:00:00").unwrap();
        let later = Timestamp::parse("2026-11-22 13:00:00").unwrap();
        let keys = SenderKeys { retired: HashMap::from([(old, noon)]), ..SenderKeys::current([current]) };
        assert_eq!(keys.accepts(&current, later), Ok(()));
        assert_eq!(keys.accepts(&old, noon), Ok(()));
        assert_eq!(keys.accepts(&old, later), Err(KeyRefusal::RetiredBefore(noon)));
        let stranger = MasterKey::generate(&mut OsRng).public();
        assert_eq!(keys.accepts(&stranger, noon), Err(KeyRefusal::Unknown));
        let refused = keys.with_history_refused("replaced".into());
        assert_eq!(refused.accepts(&old, noon), Err(KeyRefusal::HistoryRefused("replaced".into())));
        assert_eq!(refused.accepts(&current, later), Ok(()));
    }

    /// A payload as submission builds it for `raw` from Alice, with its sealed original.
    fn submitted(w: &World, raw: &str) -> Email {
        let converted = crate::mime::inbound::email_from_rfc5322(
            raw.as_bytes(),
            std::slice::from_ref(w.bob.address()),
            &crate::mime::inbound::NoThreads,
            Timestamp::parse("2026-11-22 10:00:00").unwrap(),
            &mut OsRng,
        )
        .unwrap();
        let mut email = converted.email;
        let original = crate::mime::original::original_extension(raw.as_bytes(), &email.attachments).unwrap();
        email.extensions_data.get_or_insert_with(Default::default).insert("x-smimp-original".into(), original);
        email
    }

    #[test]
    fn a_sealed_original_is_shown_as_written_and_a_forged_one_falls_back() {
        let w = world();
        let raw = "From: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: Hi\r\nMessage-ID: <m1@a.example>\r\n\
List-Id: <team.a.example>\r\nContent-Type: text/html\r\n\r\n<p>the <b>vault</b></p>\r\n";
        let email = submitted(&w, raw);
        let trust = pinned(&[w.alice_key.public()]);
        let bytes = Payload::Email(Box::new(email.clone())).to_bytes();
        let rendered = open_and_render(&envelope_of(&w, &w.alice_key, w.alice_key.public(), &bytes), &w.bob, &trust);
        assert!(rendered.verified);
        let text = String::from_utf8(rendered.bytes.clone()).unwrap();
        let (first, rest) = text.split_once("\r\n").unwrap();
        assert!(first.starts_with("X-SMIMP-Verified: pass; signed by alice@a.example"), "{text}");
        assert_eq!(rest, raw, "the original byte for byte after the one added field");
        let threading = rendered.threading.unwrap();
        assert_eq!(threading.original_message_id.as_deref(), Some("m1@a.example"));
        assert_eq!(threading.thread_id, email.thread_id);

        // The payload says another subject than the original: the payload is shown.
        let mut forged = email;
        forged.subject = "Other".into();
        let bytes = Payload::Email(Box::new(forged)).to_bytes();
        let rendered = open_and_render(&envelope_of(&w, &w.alice_key, w.alice_key.public(), &bytes), &w.bob, &trust);
        let text = String::from_utf8(rendered.bytes.clone()).unwrap();
        assert!(rendered.verified, "the payload itself is verified");
        assert!(text.contains("Subject: Other"), "{text}");
        assert!(!text.contains("List-Id") && !text.contains("<m1@a.example>\r\nList"), "{text}");
        assert!(text.contains("its sealed original is inconsistent"), "{text}");
        assert_eq!(rendered.threading.unwrap().original_message_id, None);
    }
}
