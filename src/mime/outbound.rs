//! An opened SMIMP `email` payload → RFC 5322 / MIME mail for IMAP clients, and the
//! plain warning that stands in for a message that failed verification
//! (docs/protocol.md §7; design "Inbound").
//!
//! Pure: built with lettre's message builder (RFC 5322 headers, RFC 2047 encoded words,
//! RFC 2231 filenames, MIME RFC 2045–2049), no I/O, no clock and no randomness — the
//! output is a function of the payload and [`RenderMeta`] alone, so it can be cached and
//! tested byte for byte. Multipart boundaries are a hash of the content, so no content
//! can contain them.
//!
//! The payload comes from a remote sender and is untrusted: every header value taken
//! from it is stripped of control characters (no header injection), ids must look like
//! ids, display names that hold an `@` are dropped (no `"ceo@bank.example" <x@evil>`),
//! and only images may be shown inline.
//!
//! Mail that carries a sealed original is shown as that original instead
//! ([`super::original`]); this rendering is for SMIMP-native mail and for an original
//! that is refused. What a client sees:
//! - `From`: the verified sender ([`RenderMeta::sender`]) with a display name;
//!   `To`, `Cc`, `Reply-To` from the payload in email form; `Subject`; `Date` from
//!   `date_sent`.
//! - `Message-ID: <{message id}@smimp.invalid>`; `In-Reply-To` the same form of
//!   `reply_to_message_id`; `References` the thread as `<{thread id}@thread.smimp.invalid>`,
//!   the sender's original references (`x-rfc5322`) and the parent, so every message of a
//!   thread shares an ancestor and clients group them (module docs of [`super`]).
//! - `X-SMIMP-Verified`: [`RenderMeta::verification`].
//! - The Markdown body as `text/plain; charset=utf-8`, the signature after an RFC 3676
//!   `-- ` line; with attachments, `multipart/mixed` with inline images as
//!   `Content-Disposition: inline` parts with their `Content-ID` (a text/plain body
//!   cannot reference them, so `multipart/related` would add nothing).
//!
//! Mail that leaves as plain email through a legacy relay is the submitted message, not a
//! rendering: [`without_bcc`] drops its `Bcc`/`Resent-Bcc` fields (RFC 5322 §3.6.3) and
//! keeps every other byte, and [`from_addresses`] reads who it claims to be from, so
//! submission can hold that to the account. Both use mail-parser's header offsets.

use std::time::{Duration, SystemTime};

use lettre::address::Envelope;
use lettre::message::header::{
    self, ContentDisposition, ContentTransferEncoding, ContentType, HeaderName, HeaderValue,
};
use lettre::message::{Body, Mailbox, MessageBuilder, MultiPart, SinglePart};
use lettre::Message;
use serde_json::{Map, Value};

use super::inbound::safe_filename;
use super::{message_id_for, thread_reference_for, X_RFC5322};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::{Attachment, Email};
use crate::smimp::timestamp::Timestamp;

/// What the rendering needs besides the payload: facts from the envelope and from the
/// verification, which the payload cannot vouch for itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderMeta {
    /// The SMIMP message id of this copy: becomes the Message-ID.
    pub message_id: Id32,
    /// The sender the envelope's signature was verified for: becomes From.
    pub sender: Address,
    /// A display name for the sender (for example from their verified profile); when
    /// `None`, the payload's `x-rfc5322.from_name` is used.
    pub sender_name: Option<String>,
    /// The mailbox owner, the envelope recipient of the rendered message.
    pub recipient: Address,
    /// When the server received the message: the warning message's Date.
    pub received_at: Timestamp,
    /// The verification result shown in `X-SMIMP-Verified`, such as
    /// `"pass; key pinned 2026-01-02"`.
    pub verification: String,
}

/// The sender of warning messages: the gateway itself, at a reserved domain.
const GATEWAY_LOCAL: &str = "gateway";
/// Most References entries written (RFC 5322 sets no limit; clients and servers do).
const MAX_REFERENCES: usize = 20;
/// Longest header text taken from a payload, in characters.
const MAX_HEADER_TEXT: usize = 998;

/// Renders an opened `email` payload as RFC 5322 / MIME bytes (CRLF line ends) for IMAP.
///
/// Why infallible: IMAP has to show something for every UID. The payload is sanitised
/// before lettre sees it, so building cannot fail; should it, the result is a warning
/// message rather than an error the IMAP session would have to invent a reply for.
pub fn rfc5322_from_email(email: &Email, meta: &RenderMeta) -> Vec<u8> {
    match build_email(email, meta) {
        Ok(message) => message.formatted(),
        Err(_) => warning_message("the message could not be rendered as mail", meta),
    }
}

/// Renders the plain message shown in place of a message that failed verification:
/// who claims to have sent it, when, and why it is withheld. Its content is never
/// shown — not the subject, not the body — because nothing in it can be trusted.
pub fn warning_message(reason: &str, meta: &RenderMeta) -> Vec<u8> {
    match build_warning(reason, meta) {
        Ok(message) => message.formatted(),
        Err(_) => fallback_warning(meta),
    }
}

fn build_email(email: &Email, meta: &RenderMeta) -> Result<Message, lettre::error::Error> {
    let rfc5322 = x_rfc5322(email);
    let from_name = meta
        .sender_name
        .as_deref()
        .or_else(|| rfc5322.and_then(|x| x.get("from_name")).and_then(Value::as_str))
        .and_then(display_name);
    let builder = Message::builder()
        .from(Mailbox::new(from_name, lettre_address(&meta.sender)))
        .subject(header_text(&email.subject))
        .date(system_time(email.date_sent))
        .message_id(Some(message_id_for(&meta.message_id)))
        .envelope(envelope(meta)?);
    let builder = with_addressees(builder, email, rfc5322);
    let builder = with_thread_headers(builder, email, rfc5322);
    let builder =
        with_original_headers(builder, rfc5322).raw_header(raw("X-SMIMP-Verified", &header_text(&meta.verification)));
    with_body(builder, email, meta)
}

/// To, Cc and Reply-To: the payload's SMIMP addressees in email form, then those
/// without an SMIMP form as the sender wrote them.
fn with_addressees(mut builder: MessageBuilder, email: &Email, rfc5322: Option<&Map<String, Value>>) -> MessageBuilder {
    for to in &email.to {
        builder = builder.to(Mailbox::new(None, lettre_address(to)));
    }
    for cc in &email.cc {
        builder = builder.cc(Mailbox::new(None, lettre_address(cc)));
    }
    // Addressees without an SMIMP form (reached through a legacy relay), as the sender
    // wrote them; lettre checks each is a valid address, and one that is not is left out.
    let plain = |key: &str| -> Vec<lettre::Address> {
        rfc5322
            .and_then(|x| x.get(key))
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).filter_map(|a| a.parse().ok()).collect())
            .unwrap_or_default()
    };
    for to in plain("plain_to") {
        builder = builder.to(Mailbox::new(None, to));
    }
    for cc in plain("plain_cc") {
        builder = builder.cc(Mailbox::new(None, cc));
    }
    if let Some(reply_to) = &email.reply_to {
        builder = builder.reply_to(Mailbox::new(None, lettre_address(reply_to)));
    }
    builder
}

/// In-Reply-To and References: the thread's own reference first, the sender's original
/// references (the newest, bounded), then the parent, each once.
fn with_thread_headers(
    mut builder: MessageBuilder,
    email: &Email,
    rfc5322: Option<&Map<String, Value>>,
) -> MessageBuilder {
    let original_ids = |key: &str| -> Vec<String> {
        rfc5322
            .and_then(|x| x.get(key))
            .and_then(Value::as_array)
            .map(|ids| ids.iter().filter_map(Value::as_str).filter_map(msg_id).collect())
            .unwrap_or_default()
    };
    let parent = email.reply_to_message_id.map(|id| message_id_for(&id));
    let in_reply_to = parent.clone().or_else(|| original_ids("in_reply_to").into_iter().next());
    if let Some(in_reply_to) = &in_reply_to {
        builder = builder.in_reply_to(in_reply_to.clone());
    }
    let mut references = vec![thread_reference_for(&email.thread_id)];
    let originals = original_ids("references");
    let keep = MAX_REFERENCES.saturating_sub(2);
    references.extend(originals.iter().skip(originals.len().saturating_sub(keep)).cloned());
    references.extend(in_reply_to);
    let mut unique: Vec<String> = Vec::new();
    for reference in references {
        if !unique.contains(&reference) {
            unique.push(reference);
        }
    }
    builder.references(unique.join(" "))
}

/// Content-Language, Importance and Organization from the sender's original headers,
/// each only when it holds a value safe to write.
fn with_original_headers(mut builder: MessageBuilder, rfc5322: Option<&Map<String, Value>>) -> MessageBuilder {
    let text = |key: &str| rfc5322.and_then(|x| x.get(key)).and_then(Value::as_str).unwrap_or_default();
    let language: String = text("content_language")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ',' | ' '))
        .collect();
    if !language.trim().is_empty() {
        builder = builder.raw_header(raw("Content-Language", language.trim()));
    }
    let importance = text("importance").trim().to_ascii_lowercase();
    if matches!(importance.as_str(), "high" | "normal" | "low") {
        builder = builder.raw_header(raw("Importance", &importance));
    }
    let organization = header_text(text("organization"));
    if !organization.is_empty() {
        builder = builder.raw_header(raw("Organization", &organization));
    }
    builder
}

/// The body: a single text/plain part, or with attachments a multipart/mixed of the
/// text and each attachment.
fn with_body(builder: MessageBuilder, email: &Email, meta: &RenderMeta) -> Result<Message, lettre::error::Error> {
    let text = body_text(email);
    if email.attachments.is_empty() {
        // lettre ends a single part's body with CRLF itself; in a multipart that CRLF
        // belongs to the boundary (RFC 2046 §5.1.1), so only here is one taken off.
        let text = text.strip_suffix('\n').unwrap_or(&text).to_string();
        return builder.singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(Body::new(text)));
    }
    let text_part = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(Body::new(text));
    let mut mixed = MultiPart::mixed().boundary(boundary(email, meta)).singlepart(text_part);
    for attachment in &email.attachments {
        mixed = mixed.singlepart(attachment_part(attachment));
    }
    builder.multipart(mixed)
}

fn build_warning(reason: &str, meta: &RenderMeta) -> Result<Message, lettre::error::Error> {
    // A fixed, valid address at a reserved domain.
    let gateway = lettre::Address::new_dangerous(GATEWAY_LOCAL, super::MESSAGE_ID_DOMAIN);
    let claimed = meta.sender.to_email();
    let body = format!(
        "A message that claims to come from {claimed} (SMIMP address {sender}), received {received} UTC, \
         failed verification, so the gateway does not show it.\n\n\
         Reason: {reason}\n\n\
         Its subject, text and attachments are withheld: nothing in it can be trusted. If you \
         expected mail from this sender, confirm their key with them by another channel before \
         trusting anything that claims to come from them.",
        sender = meta.sender,
        received = meta.received_at,
        reason = header_text(reason),
    );
    Message::builder()
        .from(Mailbox::new(Some("SMIMP gateway".into()), gateway))
        .to(Mailbox::new(None, lettre_address(&meta.recipient)))
        .subject(format!("Unverified message from {claimed} withheld"))
        .date(system_time(meta.received_at))
        .message_id(Some(message_id_for(&meta.message_id)))
        .raw_header(raw("X-SMIMP-Verified", &header_text(&meta.verification)))
        .envelope(envelope(meta)?)
        .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(Body::new(body)))
}

/// A warning written by hand, for the case lettre refused to build one (it cannot,
/// with these inputs; this keeps the renderer total without a panic).
fn fallback_warning(meta: &RenderMeta) -> Vec<u8> {
    format!(
        "From: SMIMP gateway <{GATEWAY_LOCAL}@{domain}>\r\nTo: <{to}>\r\nSubject: Message withheld\r\n\
         Message-ID: {id}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\nThis message could not be shown.\r\n",
        domain = super::MESSAGE_ID_DOMAIN,
        to = meta.recipient.to_email(),
        id = message_id_for(&meta.message_id),
    )
    .into_bytes()
}

fn x_rfc5322(email: &Email) -> Option<&Map<String, Value>> {
    email.extensions_data.as_ref()?.get(X_RFC5322)?.as_object()
}

fn envelope(meta: &RenderMeta) -> Result<Envelope, lettre::error::Error> {
    Envelope::new(Some(lettre_address(&meta.sender)), vec![lettre_address(&meta.recipient)])
}

/// An SMIMP address in email form. Validated SMIMP addresses (letters and digits `@` a
/// DNS name) are always valid email addresses, which is why skipping lettre's second
/// check is sound here.
fn lettre_address(address: &Address) -> lettre::Address {
    lettre::Address::new_dangerous(address.local(), address.domain())
}

fn raw(name: &'static str, value: &str) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string())
}

/// A payload time as the `SystemTime` lettre's Date takes, clamped to the years its
/// formatter handles (1970–9999); built from the epoch, never from the clock.
fn system_time(at: Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix()).unwrap_or(0))
}

/// Text for a header: control characters (CR and LF above all) become spaces, runs of
/// spaces shrink to one, and the length is bounded.
fn header_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().take(MAX_HEADER_TEXT) {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// A display name safe to show: none when it holds an address of its own, since a
/// client would show it where the real address belongs.
fn display_name(name: &str) -> Option<String> {
    let name: String = header_text(name).chars().take(128).collect();
    (!name.is_empty() && !name.contains('@') && !name.contains('<') && !name.contains('>')).then_some(name)
}

/// `<left@right>` when `id` is a plain RFC 5322 msg-id (dot-atoms, with or without the
/// brackets); `None` for anything that could smuggle other text into a header.
fn msg_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix('<').and_then(|i| i.strip_suffix('>')).unwrap_or(id);
    let (left, right) = id.split_once('@')?;
    let dot_atom = |part: &str| !part.is_empty() && part.chars().all(|c| c == '.' || is_atext(c));
    (id.len() <= 250 && dot_atom(left) && dot_atom(right)).then(|| format!("<{id}>"))
}

/// RFC 5322 `atext`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A Content-ID value (without brackets) when it is made of msg-id characters only.
fn content_id(id: &str) -> Option<String> {
    let id = id.trim();
    let id = id.strip_prefix('<').and_then(|i| i.strip_suffix('>')).unwrap_or(id);
    (!id.is_empty() && id.len() <= 250 && id.chars().all(|c| c == '.' || c == '@' || is_atext(c)))
        .then(|| id.to_string())
}

/// The text/plain body: the Markdown, then the signature after an RFC 3676 separator.
fn body_text(email: &Email) -> String {
    let mut text = email.body.replace("\r\n", "\n").replace('\r', "");
    if let Some(signature) = email.signature_text.as_deref().filter(|s| !s.trim().is_empty()) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("-- \n");
        text.push_str(&signature.replace("\r\n", "\n").replace('\r', ""));
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn attachment_part(attachment: &Attachment) -> SinglePart {
    let parsed = ContentType::parse(attachment.content_type.trim()).ok();
    let essence = attachment.content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let mut filename = safe_filename(&header_text(&attachment.filename));
    if filename.is_empty() {
        filename = "attachment".into();
    }
    let mut builder = SinglePart::builder();
    // base64 keeps the bytes exact: a 7bit body would be open to line-end rewriting.
    let mut body =
        Body::new_with_encoding(attachment.content.clone(), ContentTransferEncoding::Base64).unwrap_or_else(Body::new);
    let content_type = match parsed {
        // Containers are never taken as declared: their parts would become the message's.
        Some(_) if essence.starts_with("multipart/") => ContentType::parse("application/octet-stream").ok(),
        Some(ct) if essence == "message/rfc822" => {
            // RFC 2046 §5.2.1 allows only 7bit, 8bit or binary here, so an embedded message
            // that is not plain 7-bit text travels as an opaque file instead.
            match String::from_utf8(attachment.content.clone())
                .ok()
                .and_then(|text| Body::new_with_encoding(text, ContentTransferEncoding::SevenBit).ok())
            {
                Some(seven_bit) => {
                    body = seven_bit;
                    Some(ct)
                }
                None => ContentType::parse("application/octet-stream").ok(),
            }
        }
        Some(ct) => Some(ct),
        None => ContentType::parse("application/octet-stream").ok(),
    };
    if let Some(content_type) = content_type {
        builder = builder.header(content_type);
    }
    // Only images are shown inline: a client would render inline text or HTML as part of
    // the message, which the payload's Markdown body alone may be.
    let inline = attachment.inline && essence.starts_with("image/");
    builder = builder.header(if inline {
        ContentDisposition::inline_with_name(&filename)
    } else {
        ContentDisposition::attachment(&filename)
    });
    if let Some(id) = attachment.content_id.as_deref().and_then(content_id) {
        builder = builder.header(header::ContentId::from(format!("<{id}>")));
    }
    builder.body(body)
}

/// A multipart boundary no part can contain: a hash of everything the parts hold.
fn boundary(email: &Email, meta: &RenderMeta) -> String {
    let mut state = blake2b_simd::Params::new().hash_length(16).to_state();
    let mut field = |bytes: &[u8]| {
        state.update(&(bytes.len() as u64).to_be_bytes());
        state.update(bytes);
    };
    field(b"smimp-gateway mime boundary v1");
    field(meta.message_id.as_bytes());
    field(email.body.as_bytes());
    field(email.signature_text.as_deref().unwrap_or_default().as_bytes());
    for attachment in &email.attachments {
        field(attachment.filename.as_bytes());
        field(attachment.content_type.as_bytes());
        field(attachment.content_id.as_deref().unwrap_or_default().as_bytes());
        field(&attachment.content);
    }
    format!("=_smimp_{}", state.finalize().to_hex())
}

/// The submitted message without its `Bcc` and `Resent-Bcc` header fields (folded
/// lines included), every other byte as it was: the copy a legacy relay gets must not
/// tell its recipients who else was sent it in secret. `None` when the bytes are not a
/// message with headers.
pub fn without_bcc(raw: &[u8]) -> Option<Vec<u8>> {
    let message = mail_parser::MessageParser::new().parse_headers(raw)?;
    if message.headers().is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    for field in message.headers() {
        if matches!(field.name, mail_parser::HeaderName::Bcc | mail_parser::HeaderName::ResentBcc) {
            let (start, end) = (field.offset_field as usize, field.offset_end as usize);
            out.extend_from_slice(raw.get(at..start)?);
            at = end;
        }
    }
    out.extend_from_slice(raw.get(at..)?);
    Some(out)
}

/// A payload rendering ([`rfc5322_from_email`]) whose In-Reply-To names `parent` and
/// whose References also name `known` and `parent` (ids without angle brackets; any
/// that is not a plain msg-id is skipped), so an SMIMP-native reply threads with the
/// Message-IDs the account's mail client knows (`store/threads.rs`). The two fields move
/// to the end of the header section; every other byte stays. `None` when the bytes have
/// no header section.
pub fn with_known_ids(rendered: &[u8], parent: Option<&str>, known: &[String]) -> Option<Vec<u8>> {
    let message = mail_parser::MessageParser::new().parse_headers(rendered)?;
    let last = message.headers().last()?.offset_end as usize;
    let listed = |value: &mail_parser::HeaderValue<'_>| -> Vec<String> {
        match value {
            mail_parser::HeaderValue::Text(id) => msg_id(id).into_iter().collect(),
            mail_parser::HeaderValue::TextList(ids) => ids.iter().filter_map(|id| msg_id(id)).collect(),
            _ => Vec::new(),
        }
    };
    let in_reply_to = parent.and_then(msg_id).or_else(|| listed(message.in_reply_to()).into_iter().next());
    let mut references = listed(message.references());
    for id in known.iter().filter_map(|id| msg_id(id)).chain(in_reply_to.clone()) {
        references.retain(|r| r != &id);
        references.push(id);
    }
    let keep = references.len().saturating_sub(MAX_REFERENCES);
    let references = &references[keep..];
    let mut out = Vec::with_capacity(rendered.len() + 256);
    let mut at = 0;
    for field in message.headers() {
        if matches!(field.name, mail_parser::HeaderName::InReplyTo | mail_parser::HeaderName::References) {
            out.extend_from_slice(rendered.get(at..field.offset_field as usize)?);
            at = field.offset_end as usize;
        }
    }
    out.extend_from_slice(rendered.get(at..last.max(at))?);
    if let Some(id) = &in_reply_to {
        out.extend_from_slice(format!("In-Reply-To: {id}\r\n").as_bytes());
    }
    if !references.is_empty() {
        out.extend_from_slice(format!("References: {}\r\n", references.join("\r\n ")).as_bytes());
    }
    out.extend_from_slice(rendered.get(last.max(at)..)?);
    Some(out)
}

/// Every address the message's `From` fields name, as written (`local@domain`), so the
/// caller can require each to be the authenticated account. Empty when there is none.
pub fn from_addresses(raw: &[u8]) -> Vec<String> {
    let Some(message) = mail_parser::MessageParser::new().parse_headers(raw) else { return Vec::new() };
    message
        .header_values(mail_parser::HeaderName::From)
        .filter_map(mail_parser::HeaderValue::as_address)
        .flat_map(|address| address.iter().map(|addr| addr.address().unwrap_or_default().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_copy_loses_every_bcc_field_and_nothing_else() {
        let raw = b"From: Alice <alice@example.org>\r\nBcc: hidden@example.net,\r\n  other@example.net\r\n\
To: <bob@legacy.example>\r\nBCC: <third@example.net>\r\nSubject: Bcc: not a header\r\n\
Resent-Bcc: resent@example.net\r\nX-Bcc-Note: kept\r\nbcc:\r\n\r\nBcc: in the body stays\r\n";
        let out = without_bcc(raw).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From: Alice <alice@example.org>\r\nTo: <bob@legacy.example>\r\nSubject: Bcc: not a header\r\n\
X-Bcc-Note: kept\r\n\r\nBcc: in the body stays\r\n"
        );
        let plain = b"From: <alice@example.org>\r\nTo: <bob@legacy.example>\r\n\r\n.a dot\r\n";
        assert_eq!(without_bcc(plain).unwrap(), plain, "a message without Bcc is kept byte for byte");
        assert_eq!(without_bcc(b""), None);
    }

    #[test]
    fn every_from_address_is_read() {
        let raw = b"From: Alice <alice@example.org>, \"bob@example.org\" <eve@evil.example>\r\nTo: x@y.example\r\n\r\n";
        assert_eq!(from_addresses(raw), ["alice@example.org", "eve@evil.example"]);
        let group = b"From: team: a@example.org, b@example.org;\r\nFrom: c@example.org\r\n\r\n";
        assert_eq!(from_addresses(group), ["a@example.org", "b@example.org", "c@example.org"]);
        assert!(from_addresses(b"To: x@y.example\r\n\r\nbody").is_empty());
    }

    fn meta() -> RenderMeta {
        RenderMeta {
            message_id: Id32([0x11; 32]),
            sender: Address::parse("alice#example.org").unwrap(),
            sender_name: None,
            recipient: Address::parse("bob#example.org").unwrap(),
            received_at: Timestamp::parse("2026-01-02 03:04:05").unwrap(),
            verification: "pass".into(),
        }
    }

    fn email() -> Email {
        Email {
            to: vec![Address::parse("bob#example.org").unwrap()],
            cc: vec![],
            subject: "Hi".into(),
            thread_id: Id32([0x22; 32]),
            reply_to_message_id: None,
            date_sent: Timestamp::parse("2026-01-02 03:00:00").unwrap(),
            body: "Hello\n".into(),
            signature_text: None,
            attachments: vec![],
            extensions_data: None,
            reply_to: None,
            auto_reply_address: None,
        }
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn renders_headers_from_the_payload_and_the_meta() {
        let out = text(&rfc5322_from_email(&email(), &meta()));
        assert!(out.contains("From: alice@example.org\r\n"), "{out}");
        assert!(out.contains("To: bob@example.org\r\n"), "{out}");
        assert!(out.contains("Date: Fri, 02 Jan 2026 03:00:00 +0000\r\n"), "{out}");
        assert!(out.contains(&format!("Message-ID: <{}@smimp.invalid>\r\n", "11".repeat(32))), "{out}");
        assert!(out.contains(&format!("References: <{}@thread.smimp.invalid>\r\n", "22".repeat(32))), "{out}");
        assert!(out.contains("X-SMIMP-Verified: pass\r\n"), "{out}");
        assert!(out.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{out}");
        assert!(!out.contains("In-Reply-To"), "{out}");
        assert!(out.ends_with("\r\n\r\nHello\r\n"), "{out}");
        assert_eq!(rfc5322_from_email(&email(), &meta()), rfc5322_from_email(&email(), &meta()), "deterministic");
    }

    #[test]
    fn header_values_from_the_sender_cannot_inject_headers() {
        let mut hostile = email();
        hostile.subject = "hi\r\nBcc: eve@example.org\r\n\r\nbody".into();
        let mut x = Map::new();
        x.insert("from_name".into(), "Bank <ceo@bank.example>".into());
        x.insert("organization".into(), "Org\nX-Evil: 1".into());
        x.insert("references".into(), serde_json::json!(["ok@host", "bad>\r\nX-Evil: 1 <x@y"]));
        x.insert("importance".into(), "urgent!!".into());
        hostile.extensions_data = Some(Map::from_iter([(X_RFC5322.to_string(), Value::Object(x))]));
        let mut meta = meta();
        meta.verification = "pass\r\nX-Evil: 1".into();
        let out = text(&rfc5322_from_email(&hostile, &meta));
        let headers = out.split("\r\n\r\n").next().unwrap();
        for line in headers.split("\r\n") {
            assert!(!line.starts_with("Bcc") && !line.starts_with("X-Evil"), "{line:?} in {out}");
        }
        assert!(!out.contains("ceo@bank.example"), "{out}");
        assert!(out.contains("<ok@host>"), "{out}");
        assert!(!out.contains("Importance"), "{out}");
    }

    #[test]
    fn dates_outside_lettres_range_are_clamped_not_panics() {
        let mut old = email();
        old.date_sent = Timestamp::parse("0001-01-01 00:00:00").unwrap();
        assert!(text(&rfc5322_from_email(&old, &meta())).contains("Date: Thu, 01 Jan 1970 00:00:00 +0000"));
        old.date_sent = Timestamp::parse("9999-12-31 23:59:59").unwrap();
        assert!(text(&rfc5322_from_email(&old, &meta())).contains("9999"));
    }

    #[test]
    fn attachments_are_sanitised() {
        let mut mail = email();
        mail.attachments = vec![
            Attachment {
                filename: "../evil.html".into(),
                content_type: "text/html".into(),
                content: b"<script>x</script>".to_vec(),
                content_id: Some("a>b".into()),
                inline: true,
            },
            Attachment {
                filename: "nested".into(),
                content_type: "multipart/mixed; boundary=x".into(),
                content: b"--x\r\n".to_vec(),
                content_id: None,
                inline: false,
            },
        ];
        let out = text(&rfc5322_from_email(&mail, &meta()));
        assert!(out.contains("Content-Disposition: attachment; filename=\"_evil.html\""), "{out}");
        assert!(!out.contains("Content-ID"), "{out}");
        assert!(!out.contains("boundary=x"), "{out}");
        assert!(out.contains("Content-Type: application/octet-stream"), "{out}");
    }

    #[test]
    fn warning_shows_nothing_of_the_message() {
        let out = text(&warning_message("the signature does not verify\r\nX-Evil: 1", &meta()));
        assert!(out.contains("From: \"SMIMP gateway\" <gateway@smimp.invalid>\r\n"), "{out}");
        assert!(out.contains("To: bob@example.org\r\n"), "{out}");
        assert!(out.contains("Subject: Unverified message from alice@example.org withheld\r\n"), "{out}");
        assert!(out.contains("Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n"), "{out}");
        assert!(out.contains("the signature does not verify X-Evil: 1"), "{out}");
        assert!(!out.contains("\r\nX-Evil"), "{out}");
    }

    #[test]
    fn ids_and_names_are_checked() {
        assert_eq!(msg_id("<a.b@c.d>"), Some("<a.b@c.d>".into()));
        assert_eq!(msg_id("a@b"), Some("<a@b>".into()));
        for bad in ["", "a", "a@", "@b", "a b@c", "a@b>c", "<a@b\r\n>"] {
            assert_eq!(msg_id(bad), None, "{bad:?}");
        }
        assert_eq!(display_name("  Alice \r\n Example "), Some("Alice Example".into()));
        assert_eq!(display_name("x@y"), None);
        assert_eq!(content_id("<img1@host>"), Some("img1@host".into()));
        assert_eq!(content_id("a b"), None);
    }

    #[test]
    fn known_ids_join_in_reply_to_and_references() {
        let mut mail = email();
        mail.reply_to_message_id = Some(Id32([0x33; 32]));
        let rendered = rfc5322_from_email(&mail, &meta());
        let known = vec!["sent.1@alice.example".to_string(), "bad id\r\nX-Evil: 1".to_string()];
        let out = text(&with_known_ids(&rendered, Some("sent.1@alice.example"), &known).unwrap());
        let parsed = mail_parser::MessageParser::new().parse(out.as_bytes()).unwrap();
        assert_eq!(parsed.in_reply_to().as_text(), Some("sent.1@alice.example"), "{out}");
        let references: Vec<String> = match parsed.references() {
            mail_parser::HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
            other => panic!("{other:?} in {out}"),
        };
        let thread = format!("{}@thread.smimp.invalid", "22".repeat(32));
        let gateway_parent = format!("{}@smimp.invalid", "33".repeat(32));
        assert_eq!(references, [thread, gateway_parent, "sent.1@alice.example".to_string()], "{out}");
        assert!(!out.contains("X-Evil"), "{out}");
        assert_eq!(out.matches("In-Reply-To").count(), 1, "{out}");
        assert!(out.ends_with("\r\n\r\nHello\r\n"), "the body is untouched: {out}");
        assert_eq!(out.len(), out.lines().map(|l| l.len() + 2).sum::<usize>(), "CRLF line ends: {out}");
    }
}
