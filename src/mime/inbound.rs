//! Submitted mail → the SMIMP `email` payload: what SMTP submission hands the backend
//! to seal, once per recipient (docs/protocol.md §7; spec "Email").
//!
//! Pure: parsing with mail-parser (RFC 5322 messages, MIME RFC 2045–2049, encoded words
//! RFC 2047, parameter values RFC 2231), no I/O; the current time, the random source and
//! the map of known Message-IDs are parameters.
//!
//! How each part maps:
//! - `To`/`Cc` headers → `to`/`cc`, each address mapped to its SMIMP form
//!   (docs/protocol.md §4); one without a form is refused by name.
//! - Bcc: never in the payload. The envelope decides who gets a copy: every envelope
//!   recipient gets one ([`Converted::recipients`]); those not named in To or Cc are
//!   [`Converted::bcc`]. A `Bcc` header in the submitted text is ignored.
//! - `Subject` (RFC 2047 decoded) → `subject`; `Date` → `date_sent` in UTC, `now` when
//!   missing or invalid; `Reply-To` (its first address) → `reply_to`.
//! - `In-Reply-To`/`References` → `thread_id` and `reply_to_message_id`, through the
//!   caller's [`ThreadContext`] and the gateway's own id forms ([`super::GatewayId`]);
//!   otherwise a new thread id: random bytes hashed with BLAKE2b, as the spec suggests.
//! - Body → Markdown: text/plain as it is (line ends normalised to `\n`; an RFC 3676
//!   `-- ` separator splits off `signature_text`); HTML-only mail through
//!   [`super::html::html_to_markdown`]; multipart/alternative prefers text/plain
//!   unless it is blank. Several inline text parts are joined by blank lines.
//! - Every other part → an attachment with its filename, content type, Content-ID and
//!   inline flag (inline images included). Text parts arrive decoded to UTF-8, so their
//!   content type says `charset=utf-8`.
//! - The original Message-ID, the From display name, the original Date and a few other
//!   headers → `extensions_data["x-rfc5322"]` (see the module docs of [`super`]).

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{Addr, HeaderName, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use rand_core::CryptoRngCore;
use serde_json::{Map, Value};

use super::html::html_to_markdown;
use super::{GatewayId, MimeError, X_RFC5322};
use crate::smimp::address::Address;
use crate::smimp::crypto::blake2b_256;
use crate::smimp::encoding::Id32;
use crate::smimp::message::{Attachment, Email};
use crate::smimp::timestamp::Timestamp;

/// Bounds on what one submission may hold, so a single message cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest raw message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most addresses in To and Cc together, and most envelope recipients.
    pub max_recipients: usize,
    /// Most attachments.
    pub max_attachments: usize,
}

impl Default for Limits {
    /// 32 MiB, 500 recipients, 256 attachments: above what common providers accept.
    fn default() -> Self {
        Self { max_message_bytes: 32 * 1024 * 1024, max_recipients: 500, max_attachments: 256 }
    }
}

/// What the gateway knows about a Message-ID it has seen or rendered: the thread it
/// belongs to and, when known, the SMIMP message id a reply should name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownMessage {
    pub thread_id: Id32,
    pub message_id: Option<Id32>,
}

/// The caller's map from RFC 5322 Message-IDs to SMIMP ids. The conversion is pure, so
/// the backend (which owns the store) answers these look-ups.
pub trait ThreadContext {
    /// Looks up a Message-ID, given without angle brackets (`abc@host`).
    fn lookup(&self, message_id: &str) -> Option<KnownMessage>;
}

/// A context that knows no Message-IDs: only the gateway's own id forms thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoThreads;

impl ThreadContext for NoThreads {
    fn lookup(&self, _message_id: &str) -> Option<KnownMessage> {
        None
    }
}

impl ThreadContext for HashMap<String, KnownMessage> {
    fn lookup(&self, message_id: &str) -> Option<KnownMessage> {
        self.get(message_id).copied()
    }
}

/// A converted submission: the payload and who gets a sealed copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The payload; the same for every recipient, and never naming Bcc recipients.
    pub email: Email,
    /// Every envelope recipient, once each, in order: each needs its own sealed copy.
    pub recipients: Vec<Address>,
    /// The envelope recipients named in neither To nor Cc (blind copies).
    pub bcc: Vec<Address>,
    /// The first From address as written, so the caller can check it against the
    /// authenticated account (the payload has no From: the sender is the account).
    pub from: Option<String>,
    /// The original Message-ID (without angle brackets), so the caller can record it in
    /// its thread map once the message has ids.
    pub original_message_id: Option<String>,
}

/// Converts submitted RFC 5322 mail to an SMIMP `email` payload, with the default
/// [`Limits`].
///
/// Why the parameters: `envelope_recipients` (the SMTP `RCPT TO`s, already mapped) decide
/// who gets a copy; `thread` resolves replies; `now` stands in for a missing Date and
/// `rng` draws new thread ids, so the conversion stays pure and testable.
pub fn email_from_rfc5322(
    raw: &[u8],
    envelope_recipients: &[Address],
    thread: &dyn ThreadContext,
    now: Timestamp,
    rng: &mut impl CryptoRngCore,
) -> Result<Converted, MimeError> {
    email_from_rfc5322_with_limits(raw, envelope_recipients, thread, now, rng, &Limits::default())
}

/// [`email_from_rfc5322`] with explicit limits (the SMTP front-end's configured size).
pub fn email_from_rfc5322_with_limits(
    raw: &[u8],
    envelope_recipients: &[Address],
    thread: &dyn ThreadContext,
    now: Timestamp,
    rng: &mut impl CryptoRngCore,
    limits: &Limits,
) -> Result<Converted, MimeError> {
    let recipients = checked_envelope(raw, envelope_recipients, limits)?;
    let message = parse_message(raw)?;

    let (to, plain_to) = header_addresses(message.header_values(HeaderName::To), "To")?;
    let (cc, plain_cc) = header_addresses(message.header_values(HeaderName::Cc), "Cc")?;
    let cc: Vec<Address> = cc.into_iter().filter(|address| !to.contains(address)).collect();
    if to.len() + cc.len() > limits.max_recipients {
        return Err(MimeError::TooManyRecipients { count: to.len() + cc.len(), limit: limits.max_recipients });
    }
    let bcc = recipients.iter().filter(|r| !to.contains(r) && !cc.contains(r)).cloned().collect();
    let reply_to = reply_to_address(&message)?;

    let date_sent = message
        .date()
        .filter(|date| date.is_valid())
        .and_then(|date| Timestamp::from_unix(date.to_timestamp()))
        .unwrap_or(now);

    let in_reply_to = ids(message.in_reply_to());
    let references = ids(message.references());
    let (thread_id, reply_to_message_id) = resolve_thread(&in_reply_to, &references, thread, rng);

    let (body, signature_text) = body(&message);
    let attachments = attachments(&message, limits)?;

    let from_addr = message.from().and_then(|from| from.first());
    let from = from_addr.and_then(Addr::address).map(str::to_string);
    let original_message_id = message.message_id().map(str::to_string);
    let original = OriginalHeaders {
        message_id: original_message_id.clone(),
        from_name: from_addr.and_then(Addr::name),
        in_reply_to,
        references,
        plain_to,
        plain_cc,
    };
    let extensions_data = rfc5322_extensions(&message, original);

    let email = Email {
        to,
        cc,
        subject: message.subject().unwrap_or_default().to_string(),
        thread_id,
        reply_to_message_id,
        date_sent,
        body,
        signature_text,
        attachments,
        extensions_data,
        reply_to,
        auto_reply_address: None,
    };
    Ok(Converted { email, recipients, bcc, from, original_message_id })
}

/// The envelope recipients, once each, after the size and recipient limits are checked.
fn checked_envelope(raw: &[u8], envelope_recipients: &[Address], limits: &Limits) -> Result<Vec<Address>, MimeError> {
    if raw.len() > limits.max_message_bytes {
        return Err(MimeError::TooLarge { size: raw.len(), limit: limits.max_message_bytes });
    }
    let recipients = dedup(envelope_recipients.iter().cloned());
    if recipients.is_empty() {
        return Err(MimeError::NoRecipients);
    }
    if recipients.len() > limits.max_recipients {
        return Err(MimeError::TooManyRecipients { count: recipients.len(), limit: limits.max_recipients });
    }
    Ok(recipients)
}

/// Parses the submitted bytes; a message without headers is malformed.
fn parse_message(raw: &[u8]) -> Result<mail_parser::Message<'_>, MimeError> {
    // mail-parser is built to take any bytes; should it ever panic, the submission is
    // refused as malformed rather than taking the SMTP session down.
    let parsed = catch_unwind(AssertUnwindSafe(|| MessageParser::new().parse(raw))).ok().flatten();
    parsed.filter(|m| !m.headers().is_empty()).ok_or(MimeError::Malformed)
}

/// The first Reply-To address in its SMIMP form.
fn reply_to_address(message: &mail_parser::Message<'_>) -> Result<Option<Address>, MimeError> {
    Ok(match header_addresses(message.header_values(HeaderName::ReplyTo), "Reply-To")? {
        (smimp, _) if !smimp.is_empty() => smimp.into_iter().next(),
        (_, plain) => match plain.first() {
            // A reply goes where Reply-To says: one that SMIMP cannot name is refused
            // rather than silently dropped.
            Some(email) => match Address::from_email(email) {
                Ok(address) => Some(address),
                Err(reason) => return Err(MimeError::Address { header: "Reply-To", address: email.clone(), reason }),
            },
            None => None,
        },
    })
}

/// The original headers [`rfc5322_extensions`] keeps that the conversion has already read.
struct OriginalHeaders<'a> {
    message_id: Option<String>,
    from_name: Option<&'a str>,
    in_reply_to: Vec<String>,
    references: Vec<String>,
    plain_to: Vec<String>,
    plain_cc: Vec<String>,
}

/// The original headers SMIMP has no field for, as `extensions_data["x-rfc5322"]`;
/// empty values are left out, and `None` when nothing is left.
fn rfc5322_extensions(message: &mail_parser::Message<'_>, original: OriginalHeaders<'_>) -> Option<Map<String, Value>> {
    let mut rfc5322 = Map::new();
    let mut put = |key: &str, value: Value| {
        let empty = match &value {
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        if !empty {
            rfc5322.insert(key.to_string(), value);
        }
    };
    put("message_id", original.message_id.unwrap_or_default().into());
    put("from_name", original.from_name.unwrap_or_default().trim().into());
    put("date", message.header_raw(HeaderName::Date).unwrap_or_default().trim().into());
    put("in_reply_to", original.in_reply_to.into());
    put("references", original.references.into());
    put("content_language", texts(message.header(HeaderName::ContentLanguage)).join(", ").into());
    put("importance", texts(message.header(HeaderName::Importance)).join(" ").trim().into());
    put("organization", texts(message.header(HeaderName::Organization)).join(" ").trim().into());
    put("keywords", texts(message.header(HeaderName::Keywords)).into());
    put("plain_to", original.plain_to.into());
    put("plain_cc", original.plain_cc.into());
    (!rfc5322.is_empty()).then(|| Map::from_iter([(X_RFC5322.to_string(), rfc5322.into())]))
}

fn dedup(addresses: impl Iterator<Item = Address>) -> Vec<Address> {
    let mut out: Vec<Address> = Vec::new();
    for address in addresses {
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// Every address of every instance of an address header (groups flattened): those with
/// an SMIMP form, mapped to it, and the others as written (a legacy recipient the
/// gateway relays as plain email, say `first.last@legacy.example`). Those travel in
/// `x-rfc5322` (`plain_to`, `plain_cc`), so every recipient still sees whom the message
/// was addressed to.
fn header_addresses<'a>(
    values: impl Iterator<Item = &'a HeaderValue<'a>>,
    header: &'static str,
) -> Result<(Vec<Address>, Vec<String>), MimeError> {
    let mut smimp = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for value in values {
        let Some(list) = value.as_address() else { continue };
        for addr in list.iter() {
            let Some(email) = addr.address().map(str::trim).filter(|a| !a.is_empty()) else {
                let name = addr.name().unwrap_or_default().to_string();
                return Err(MimeError::MissingAddress { header, name });
            };
            match Address::from_email(email) {
                Ok(address) => smimp.push(address),
                Err(_) if !plain.iter().any(|p| p.eq_ignore_ascii_case(email)) => plain.push(email.to_string()),
                Err(_) => {}
            }
        }
    }
    Ok((dedup(smimp.into_iter()), plain))
}

/// The ids a message's In-Reply-To and References name, without angle brackets, read
/// from its headers alone: what the caller looks up in its thread map before converting.
pub fn referenced_ids(raw: &[u8]) -> Vec<String> {
    let Some(parsed) = MessageParser::new().parse_headers(raw) else { return Vec::new() };
    let mut out = ids(parsed.in_reply_to());
    out.extend(ids(parsed.references()));
    out
}

/// The ids of an id-list header (`In-Reply-To`, `References`), without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let mut out: Vec<String> = match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    };
    out.retain(|id| !id.trim().is_empty());
    out
}

/// A header's text, whichever form mail-parser gave it.
fn texts(value: Option<&HeaderValue<'_>>) -> Vec<String> {
    match value {
        Some(HeaderValue::Text(text)) => vec![text.trim().to_string()],
        Some(HeaderValue::TextList(list)) => list.iter().map(|t| t.trim().to_string()).collect(),
        _ => Vec::new(),
    }
}

/// How many ids of a long References header are looked at (newest first).
const MAX_THREAD_LOOKUPS: usize = 64;

/// Picks the thread and the message replied to (module docs): the parent's entry in the
/// caller's map first, then a gateway thread reference, then any other known ancestor;
/// a new thread when nothing is known.
fn resolve_thread(
    in_reply_to: &[String],
    references: &[String],
    context: &dyn ThreadContext,
    rng: &mut impl CryptoRngCore,
) -> (Id32, Option<Id32>) {
    let parent = in_reply_to.first().or_else(|| references.last());
    let known_parent = parent.and_then(|id| context.lookup(id));
    let reply_to =
        known_parent.and_then(|known| known.message_id).or_else(|| match parent.and_then(|id| GatewayId::parse(id)) {
            Some(GatewayId::Message(id)) => Some(id),
            _ => None,
        });
    // Newest ancestors first: In-Reply-To, then References from the end.
    let ancestors = || in_reply_to.iter().chain(references.iter().rev()).take(MAX_THREAD_LOOKUPS);
    let thread = known_parent
        .map(|known| known.thread_id)
        .or_else(|| {
            ancestors().find_map(|id| match GatewayId::parse(id) {
                Some(GatewayId::Thread(thread)) => Some(thread),
                _ => None,
            })
        })
        .or_else(|| ancestors().find_map(|id| context.lookup(id)).map(|known| known.thread_id))
        .unwrap_or_else(|| new_thread_id(rng));
    (thread, reply_to)
}

/// A fresh thread id: random bytes hashed (spec "Email": "may generate a random value,
/// and hash it to reduce exposure of random values"), under a label of its own.
pub fn new_thread_id(rng: &mut impl CryptoRngCore) -> Id32 {
    let mut input = b"smimp-gateway thread id v1\0".to_vec();
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    input.extend_from_slice(&random);
    Id32(blake2b_256(&input).0)
}

/// The Markdown body and the signature split from it (module docs).
fn body(message: &mail_parser::Message<'_>) -> (String, Option<String>) {
    let mut pieces: Vec<String> = Vec::new();
    let mut signature = None;
    for part in message.text_bodies() {
        let text = match &part.body {
            PartType::Text(text) => {
                let text = text.replace("\r\n", "\n");
                let (text, sig) = split_signature(&text);
                if signature.is_none() {
                    signature = sig;
                }
                text
            }
            PartType::Html(html) => html_to_markdown(html),
            _ => continue,
        };
        pieces.push(text);
    }
    if pieces.iter().all(|piece| piece.trim().is_empty()) {
        // Some clients send an empty text/plain beside the real HTML alternative.
        if let Some(html) = message.html_bodies().find_map(|part| match &part.body {
            PartType::Html(html) => Some(html_to_markdown(html)),
            _ => None,
        }) {
            return (html, None);
        }
    }
    if pieces.len() == 1 {
        return (pieces.pop().unwrap_or_default(), signature);
    }
    let joined: Vec<&str> = pieces.iter().map(|p| p.trim_end_matches('\n')).filter(|p| !p.is_empty()).collect();
    let mut body = joined.join("\n\n");
    if !body.is_empty() {
        body.push('\n');
    }
    (body, signature)
}

/// Splits text at its last RFC 3676 §4.3 signature separator (a line that is exactly
/// `-- `); the separator itself belongs to neither part.
fn split_signature(text: &str) -> (String, Option<String>) {
    let at = if text.starts_with("-- \n") { Some(0) } else { text.rfind("\n-- \n").map(|n| n + 1) };
    match at {
        Some(at) => {
            let signature = text[at + 4..].trim_end_matches('\n');
            if signature.trim().is_empty() {
                return (text.to_string(), None);
            }
            (text[..at].to_string(), Some(format!("{signature}\n")))
        }
        None => (text.to_string(), None),
    }
}

fn attachments(message: &mail_parser::Message<'_>, limits: &Limits) -> Result<Vec<Attachment>, MimeError> {
    if message.attachment_count() > limits.max_attachments {
        return Err(MimeError::TooManyAttachments { count: message.attachment_count(), limit: limits.max_attachments });
    }
    Ok(message.attachments().enumerate().map(|(n, part)| attachment(n + 1, part)).collect())
}

fn attachment(number: usize, part: &MessagePart<'_>) -> Attachment {
    let content_type = content_type(part);
    let filename = part
        .attachment_name()
        .map(safe_filename)
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("attachment-{number}{}", extension_for(&content_type)));
    let content_id = part.content_id().map(|id| id.trim().to_string()).filter(|id| !id.is_empty());
    let inline = match part.content_disposition() {
        Some(disposition) => disposition.is_inline(),
        None => content_id.is_some() || matches!(part.body, PartType::InlineBinary(_)),
    };
    Attachment { filename, content_type, content: part.contents().to_vec(), content_id, inline }
}

/// `type/subtype`, lowercase; text arrives decoded to UTF-8 and says so.
fn content_type(part: &MessagePart<'_>) -> String {
    let declared = part.content_type().map(|ct| {
        let subtype = ct.subtype().unwrap_or("octet-stream");
        format!("{}/{}", ct.ctype(), subtype).to_ascii_lowercase()
    });
    match &part.body {
        PartType::Text(_) | PartType::Html(_) => {
            let base = declared.filter(|t| t.starts_with("text/")).unwrap_or_else(|| {
                if matches!(part.body, PartType::Html(_)) { "text/html" } else { "text/plain" }.to_string()
            });
            format!("{base}; charset=utf-8")
        }
        PartType::Message(_) => "message/rfc822".to_string(),
        _ => declared.filter(|t| is_token_pair(t)).unwrap_or_else(|| "application/octet-stream".to_string()),
    }
}

/// `type/subtype` made of RFC 2045 token characters only.
fn is_token_pair(value: &str) -> bool {
    let token =
        |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?=".contains(&b));
    value.split_once('/').is_some_and(|(a, b)| token(a) && token(b))
}

/// A filename without directories or control characters, so no client can be led to
/// write outside the folder it saves into.
pub(crate) fn safe_filename(name: &str) -> String {
    let cleaned: String = name.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    trimmed.chars().take(255).collect()
}

fn extension_for(content_type: &str) -> &'static str {
    let base = content_type.split(';').next().unwrap_or_default();
    match base {
        "image/png" => ".png",
        "image/jpeg" => ".jpg",
        "image/gif" => ".gif",
        "image/webp" => ".webp",
        "image/svg+xml" => ".svg",
        "application/pdf" => ".pdf",
        "text/plain" => ".txt",
        "text/html" => ".html",
        "text/calendar" => ".ics",
        "message/rfc822" => ".eml",
        _ => ".bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl rand_core::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            7
        }
        fn next_u64(&mut self) -> u64 {
            7
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(7);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(7);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Fixed {}

    fn now() -> Timestamp {
        Timestamp::parse("2026-01-02 03:04:05").unwrap()
    }

    fn bob() -> Vec<Address> {
        vec![Address::parse("bob#example.org").unwrap()]
    }

    fn convert(raw: &str) -> Result<Converted, MimeError> {
        email_from_rfc5322(raw.as_bytes(), &bob(), &NoThreads, now(), &mut Fixed)
    }

    #[test]
    fn minimal_message_uses_now_and_a_hashed_new_thread() {
        let converted = convert("To: bob@example.org\r\nSubject: hi\r\n\r\nbody\r\n").unwrap();
        assert_eq!(converted.email.date_sent, now());
        assert_eq!(converted.email.body, "body\n");
        assert_eq!(converted.email.thread_id, new_thread_id(&mut Fixed));
        assert_ne!(converted.email.thread_id, Id32([7; 32]), "the random bytes are hashed");
        assert_eq!(converted.email.extensions_data, None);
        assert!(converted.bcc.is_empty());
    }

    #[test]
    fn addressees_without_an_smimp_form_travel_as_written() {
        let converted =
            convert("To: first.last@example.org, bob@example.org\r\nCc: Carol <carol@localhost>, FIRST.LAST@example.org\r\n\r\nx")
                .unwrap();
        let email = &converted.email;
        assert_eq!(email.to.iter().map(Address::as_str).collect::<Vec<_>>(), ["bob#example.org"]);
        assert!(email.cc.is_empty());
        let x = &email.extensions_data.as_ref().unwrap()[X_RFC5322];
        assert_eq!(x["plain_to"], serde_json::json!(["first.last@example.org"]));
        assert_eq!(x["plain_cc"], serde_json::json!(["carol@localhost", "FIRST.LAST@example.org"]));
        let plain = convert("To: bob@example.org\r\n\r\nx").unwrap();
        assert!(plain.email.extensions_data.is_none_or(|x| x[X_RFC5322].get("plain_to").is_none()), "only when needed");
    }

    #[test]
    fn refusals_are_typed() {
        let err = convert("To: bob@example.org\r\nReply-To: a+b@example.org\r\n\r\nx").unwrap_err();
        assert!(
            matches!(&err, MimeError::Address { header: "Reply-To", address, .. } if address == "a+b@example.org"),
            "{err}"
        );
        assert!(err.to_string().contains("a+b@example.org"), "{err}");
        assert_eq!(convert(""), Err(MimeError::Malformed));
        let empty: &[Address] = &[];
        assert_eq!(
            email_from_rfc5322(b"To: x@y.org\r\n\r\n", empty, &NoThreads, now(), &mut Fixed),
            Err(MimeError::NoRecipients)
        );
        let limits = Limits { max_message_bytes: 10, ..Limits::default() };
        let err = email_from_rfc5322_with_limits(
            b"To: bob@example.org\r\n\r\nx",
            &bob(),
            &NoThreads,
            now(),
            &mut Fixed,
            &limits,
        );
        assert_eq!(err, Err(MimeError::TooLarge { size: 24, limit: 10 }));
    }

    #[test]
    fn undisclosed_recipients_groups_are_empty_and_everyone_is_bcc() {
        let converted = convert("To: undisclosed-recipients:;\r\nSubject: s\r\n\r\nx").unwrap();
        assert!(converted.email.to.is_empty());
        assert_eq!(converted.bcc, bob());
    }

    #[test]
    fn signature_splits_at_the_last_separator_only() {
        assert_eq!(split_signature("a\n-- \nsig\n"), ("a\n".into(), Some("sig\n".into())));
        assert_eq!(split_signature("a\n-- \nold\n-- \nnew"), ("a\n-- \nold\n".into(), Some("new\n".into())));
        assert_eq!(split_signature("a\n--\nnot\n"), ("a\n--\nnot\n".into(), None));
        assert_eq!(split_signature("a\n-- \n\n"), ("a\n-- \n\n".into(), None));
    }

    #[test]
    fn gateway_ids_thread_without_a_map() {
        let thread = Id32([0xaa; 32]);
        let parent = Id32([0xbb; 32]);
        let raw = format!(
            "To: bob@example.org\r\nIn-Reply-To: {}\r\nReferences: {} {}\r\n\r\nx",
            super::super::message_id_for(&parent),
            super::super::thread_reference_for(&thread),
            super::super::message_id_for(&parent)
        );
        let converted = convert(&raw).unwrap();
        assert_eq!(converted.email.thread_id, thread);
        assert_eq!(converted.email.reply_to_message_id, Some(parent));
    }

    #[test]
    fn an_empty_text_alternative_falls_back_to_the_html() {
        let raw = "To: bob@example.org\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\n\r\n\
                   --b\r\nContent-Type: text/html\r\n\r\n<p>Hi <b>there</b></p>\r\n--b--\r\n";
        assert_eq!(convert(raw).unwrap().email.body, "Hi **there**\n");
    }

    #[test]
    fn filenames_lose_paths_and_controls() {
        assert_eq!(safe_filename("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(safe_filename("a\r\nb.txt"), "a__b.txt");
        assert_eq!(safe_filename("C:\\x.doc"), "C:_x.doc");
    }
}
