//! The sealed original: the exact RFC 5322 bytes a mail client submitted, carried in the
//! `email` payload's `extensions_data["x-smimp-original"]` ([`X_ORIGINAL`]) so that the
//! recipient's gateway shows the message as it was written — its Message-ID, every
//! header, the MIME structure, HTML and attachments byte for byte — while the payload's
//! own fields stay complete for SMIMP-native clients (docs/protocol.md §7.1).
//!
//! Attachments are not stored twice: where the original's encoded attachment body is
//! exactly what re-encoding the payload's attachment gives (base64 at a line length and
//! line end, or the bytes as they are), the original refers to the attachment by index;
//! anything else stays inline as bytes. The sender checks that the pieces reassemble to
//! the original before it seals them, and falls back to one inline piece otherwise.
//!
//! Before sealing, the sender's gateway removes the fields in [`STRIPPED_FIELDS`] and
//! every `X-SMIMP-*` field (the gateway's own namespace). The receiver shows the original
//! only when it is consistent with the verified envelope and payload ([`shown_original`]):
//! it reassembles to the declared size and hash, its `From` (and `Sender`) name only the
//! verified sender, its Subject, To and Cc say what the payload says, and it holds no
//! stripped or gateway field. Anything else is refused with a reason, and the caller
//! renders the payload as for SMIMP-native mail.
//!
//! Pure: mail-parser for header offsets, no I/O. Every input is bounded
//! ([`MAX_ORIGINAL_BYTES`], [`MAX_PIECES`]).

use std::panic::{catch_unwind, AssertUnwindSafe};

use base64::Engine;
use mail_parser::{Encoding, HeaderName, HeaderValue, MessageParser};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::GatewayId;
use crate::smimp::address::Address;
use crate::smimp::encoding::{base64_bytes, Id32};
use crate::smimp::message::{Attachment, Email};

/// The `extensions_data` key of the sealed original (module docs).
pub const X_ORIGINAL: &str = "x-smimp-original";

/// The version of the extension's wire form this code writes and reads.
pub const VERSION: u32 = 1;

/// Largest original a receiver reassembles, in bytes.
pub const MAX_ORIGINAL_BYTES: u64 = 64 * 1024 * 1024;

/// Most pieces an original may be split into.
pub const MAX_PIECES: usize = 1024;

/// Longest base64 line a reference may ask for (RFC 5322 §2.1.1's 998).
const MAX_LINE_LENGTH: usize = 998;

/// The header fields the sender's gateway removes before sealing the original (besides
/// every `X-SMIMP-*` field): blind recipients must not reach anyone, and trace fields
/// say which machines and addresses the mail passed through, which the gateway must
/// not leak.
pub const STRIPPED_FIELDS: [&str; 5] = ["Bcc", "Resent-Bcc", "Received", "Return-Path", "X-Originating-IP"];

/// The prefix of the gateway's own header fields, which no original may carry.
const GATEWAY_PREFIX: &str = "x-smimp-";

/// The label under the original's hash (a transcript of one field, docs/protocol.md §3).
const HASH_LABEL: &[u8] = b"smimp-gateway/original-v1";

/// Why a sealed original is not shown (the payload is rendered instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginalError {
    #[error("its sealed original is not in the expected form: {0}")]
    Form(String),
    #[error("its sealed original is version {0}, which this gateway does not read")]
    Version(u32),
    #[error("its sealed original is too large ({0} bytes)")]
    TooLarge(u64),
    #[error("its sealed original refers to attachment {0}, which the message does not have")]
    NoAttachment(usize),
    #[error("its sealed original does not reassemble to what the sender declared")]
    Mismatch,
    #[error("its sealed original is inconsistent with the message: {0}")]
    Inconsistent(String),
}

/// The extension's wire form (docs/protocol.md §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    version: u32,
    size: u64,
    hash: Id32,
    pieces: Vec<Piece>,
}

/// One piece of the original, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Piece {
    /// Bytes as they are.
    Bytes {
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
    },
    /// The payload's attachment `index`, encoded so.
    Attachment {
        index: usize,
        encoding: PartEncoding,
        #[serde(default)]
        line_length: usize,
        line_end: LineEnd,
        final_line_end: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PartEncoding {
    Base64,
    Identity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LineEnd {
    Crlf,
    Lf,
}

impl LineEnd {
    fn bytes(self) -> &'static [u8] {
        match self {
            LineEnd::Crlf => b"\r\n",
            LineEnd::Lf => b"\n",
        }
    }
}

/// The submitted message without the [`STRIPPED_FIELDS`] and `X-SMIMP-*` fields (folded
/// lines included), every other byte as it was. `None` when it has no header section.
pub fn stripped(raw: &[u8]) -> Option<Vec<u8>> {
    let message = MessageParser::new().parse_headers(raw)?;
    if message.headers().is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    for field in message.headers() {
        if is_stripped(field.name.as_str()) {
            let (start, end) = (field.offset_field as usize, field.offset_end as usize);
            out.extend_from_slice(raw.get(at..start)?);
            at = end;
        }
    }
    out.extend_from_slice(raw.get(at..)?);
    Some(out)
}

/// Whether a field of this name is removed before sealing (and refused on receipt).
fn is_stripped(name: &str) -> bool {
    let name = name.trim();
    STRIPPED_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(name))
        || name.get(..GATEWAY_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(GATEWAY_PREFIX))
}

/// The extension value for a submitted message whose payload has `attachments`: the
/// stripped original in pieces (module docs). `None` when the message has no header
/// section or is larger than a receiver reassembles.
pub fn original_extension(raw: &[u8], attachments: &[Attachment]) -> Option<Value> {
    let original = stripped(raw)?;
    let size = u64::try_from(original.len()).ok().filter(|&s| s <= MAX_ORIGINAL_BYTES)?;
    let mut pieces = split(&original, attachments);
    if pieces.len() > MAX_PIECES || reassemble(&pieces, attachments, size).ok().as_deref() != Some(&original[..]) {
        pieces = vec![Piece::Bytes { bytes: original.clone() }];
    }
    let sealed = Sealed { version: VERSION, size, hash: original_hash(&original), pieces };
    serde_json::to_value(sealed).ok()
}

/// The pieces: inline bytes between the attachment bodies that re-encode exactly.
fn split(original: &[u8], attachments: &[Attachment]) -> Vec<Piece> {
    let parsed = catch_unwind(AssertUnwindSafe(|| MessageParser::new().parse(original))).ok().flatten();
    let mut bodies: Vec<(usize, usize, usize)> = parsed
        .iter()
        .flat_map(|message| {
            message
                .attachments()
                .enumerate()
                .filter(|(_, part)| part.encoding != Encoding::QuotedPrintable)
                .map(|(index, part)| (part.offset_body as usize, part.offset_end as usize, index))
        })
        .collect();
    bodies.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for (start, end, index) in bodies {
        let (Some(body), Some(attachment)) = (original.get(start..end), attachments.get(index)) else { continue };
        if start < at || body.is_empty() {
            continue;
        }
        let Some(reference) = reference_for(index, body, &attachment.content) else { continue };
        if start > at {
            pieces.push(Piece::Bytes { bytes: original[at..start].to_vec() });
        }
        pieces.push(reference);
        at = end;
    }
    if at < original.len() {
        pieces.push(Piece::Bytes { bytes: original[at..].to_vec() });
    }
    pieces
}

/// A reference to attachment `index` when one re-encoding of `content` gives exactly
/// `body`: base64 at the body's first line length and line end, or the bytes as they
/// are, each with or without a final line end.
fn reference_for(index: usize, body: &[u8], content: &[u8]) -> Option<Piece> {
    let final_end = |line_end: LineEnd| body.ends_with(line_end.bytes());
    let line_end = match body.iter().position(|&b| b == b'\n') {
        Some(at) if at > 0 && body[at - 1] == b'\r' => LineEnd::Crlf,
        _ => LineEnd::Lf,
    };
    let first_line = body.iter().position(|&b| b == b'\n').map_or(body.len(), |at| at);
    let first_line = first_line - usize::from(line_end == LineEnd::Crlf && first_line > 0);
    let candidates = [(PartEncoding::Base64, first_line), (PartEncoding::Identity, 0)];
    candidates.into_iter().find_map(|(encoding, line_length)| {
        let piece = Piece::Attachment { index, encoding, line_length, line_end, final_line_end: final_end(line_end) };
        (encode(&piece, content).as_deref() == Some(body)).then_some(piece)
    })
}

/// The bytes a reference stands for, given the attachment's content.
fn encode(piece: &Piece, content: &[u8]) -> Option<Vec<u8>> {
    let Piece::Attachment { encoding, line_length, line_end, final_line_end, .. } = *piece else { return None };
    let mut out = match encoding {
        PartEncoding::Identity => content.to_vec(),
        PartEncoding::Base64 => {
            if line_length == 0 || line_length > MAX_LINE_LENGTH {
                return None;
            }
            let text = base64::engine::general_purpose::STANDARD.encode(content);
            let mut out = Vec::with_capacity(text.len() + text.len() / line_length * 2 + 2);
            for (n, line) in text.as_bytes().chunks(line_length).enumerate() {
                if n > 0 {
                    out.extend_from_slice(line_end.bytes());
                }
                out.extend_from_slice(line);
            }
            out
        }
    };
    if final_line_end {
        out.extend_from_slice(line_end.bytes());
    }
    Some(out)
}

/// The pieces put together, never longer than `size`.
fn reassemble(pieces: &[Piece], attachments: &[Attachment], size: u64) -> Result<Vec<u8>, OriginalError> {
    let limit = usize::try_from(size).map_err(|_| OriginalError::TooLarge(size))?;
    // The declared size is the sender's claim: grow as the pieces come, not up front.
    let mut out = Vec::with_capacity(limit.min(1 << 20));
    for piece in pieces {
        let bytes = match piece {
            Piece::Bytes { bytes } => bytes.clone(),
            Piece::Attachment { index, .. } => {
                let attachment = attachments.get(*index).ok_or(OriginalError::NoAttachment(*index))?;
                encode(piece, &attachment.content).ok_or_else(|| OriginalError::Form("a bad line length".into()))?
            }
        };
        if out.len() + bytes.len() > limit {
            return Err(OriginalError::Mismatch);
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// BLAKE2b-256 of the transcript `T(label, original)` (docs/protocol.md §3), streamed
/// so a large original is not copied.
fn original_hash(original: &[u8]) -> Id32 {
    let mut state = blake2b_simd::Params::new().hash_length(32).to_state();
    state.update(&(HASH_LABEL.len() as u64).to_be_bytes());
    state.update(HASH_LABEL);
    state.update(&(original.len() as u64).to_be_bytes());
    state.update(original);
    let mut id = [0u8; 32];
    id.copy_from_slice(state.finalize().as_bytes());
    Id32(id)
}

/// The original as the recipient's client sees it: `X-SMIMP-Verified: {verification}`
/// first, a Message-ID derived from `message_id` only when the original has none, then
/// the original byte for byte. `None` when the payload carries no original; an error
/// when it carries one that is refused (module docs).
pub fn shown_original(
    email: &Email,
    sender: &Address,
    message_id: &Id32,
    verification: &str,
) -> Option<Result<Vec<u8>, OriginalError>> {
    let value = email.extensions_data.as_ref()?.get(X_ORIGINAL)?;
    Some(original_of(value, email, sender).map(|(original, has_id)| {
        let mut out = format!("X-SMIMP-Verified: {verification}\r\n").into_bytes();
        if !has_id {
            out.extend_from_slice(format!("Message-ID: {}\r\n", super::message_id_for(message_id)).as_bytes());
        }
        out.extend_from_slice(&original);
        out
    }))
}

/// The original Message-ID (without angle brackets) a payload's sealed original shows,
/// when it is one that would be shown: what the receiver records in its thread map.
pub fn original_message_id(email: &Email, sender: &Address) -> Option<String> {
    let value = email.extensions_data.as_ref()?.get(X_ORIGINAL)?;
    let (original, _) = original_of(value, email, sender).ok()?;
    let parsed = MessageParser::new().parse_headers(&original[..])?;
    parsed.message_id().map(str::to_string)
}

/// The reassembled, checked original and whether it has a Message-ID.
fn original_of(value: &Value, email: &Email, sender: &Address) -> Result<(Vec<u8>, bool), OriginalError> {
    let sealed: Sealed = Sealed::deserialize(value).map_err(|e| OriginalError::Form(e.to_string()))?;
    if sealed.version != VERSION {
        return Err(OriginalError::Version(sealed.version));
    }
    if sealed.size > MAX_ORIGINAL_BYTES {
        return Err(OriginalError::TooLarge(sealed.size));
    }
    if sealed.pieces.len() > MAX_PIECES {
        return Err(OriginalError::Form(format!("{} pieces, more than {MAX_PIECES}", sealed.pieces.len())));
    }
    let original = reassemble(&sealed.pieces, &email.attachments, sealed.size)?;
    if original.len() as u64 != sealed.size || original_hash(&original) != sealed.hash {
        return Err(OriginalError::Mismatch);
    }
    let has_id = consistent(&original, email, sender)?;
    Ok((original, has_id))
}

/// Checks the original's headers against the verified sender and the payload; returns
/// whether it has a Message-ID.
fn consistent(original: &[u8], email: &Email, sender: &Address) -> Result<bool, OriginalError> {
    let bad = |what: String| Err(OriginalError::Inconsistent(what));
    let Some(message) = MessageParser::new().parse_headers(original).filter(|m| !m.headers().is_empty()) else {
        return bad("it has no header section".into());
    };
    if let Some(field) = message.headers().iter().find(|f| is_stripped(f.name.as_str())) {
        return bad(format!("it carries a {} field", field.name.as_str()));
    }
    for name in [HeaderName::From, HeaderName::Sender] {
        let addresses = addresses(message.header_values(name.clone()));
        if name == HeaderName::From && addresses.is_empty() {
            return bad("it has no From address".into());
        }
        if let Some(other) = addresses.iter().find(|a| Address::from_email(a).ok().as_ref() != Some(sender)) {
            return bad(format!("its {} names {other}, not the verified sender {}", name.as_str(), sender.to_email()));
        }
    }
    if message.subject().unwrap_or_default() != email.subject {
        return bad("its Subject differs from the message's".into());
    }
    // Replies go where the payload says: a Reply-To the payload does not carry would send
    // a legacy client's answer to a verified sender's message somewhere else.
    let reply_to = addresses(message.header_values(HeaderName::ReplyTo));
    if normalised(reply_to) != normalised(email.reply_to.iter().map(Address::to_email).collect()) {
        return bad("its Reply-To differs from the message's".into());
    }
    let mut named = addresses(message.header_values(HeaderName::To));
    named.extend(addresses(message.header_values(HeaderName::Cc)));
    if normalised(named) != normalised(payload_addressees(email)) {
        return bad("its To and Cc differ from the message's".into());
    }
    let id = message.message_id();
    let gateway_form = |id: &str| {
        let domain = id.rsplit_once('@').map_or("", |(_, d)| d.trim_end_matches('>')).to_ascii_lowercase();
        GatewayId::parse(id).is_some() || domain == super::MESSAGE_ID_DOMAIN || domain.ends_with(".smimp.invalid")
    };
    if id.is_some_and(gateway_form) {
        return bad("its Message-ID is in the gateway's own form".into());
    }
    Ok(id.is_some())
}

/// Every address an address field names (groups flattened), as written.
fn addresses<'a>(values: impl Iterator<Item = &'a HeaderValue<'a>>) -> Vec<String> {
    values
        .filter_map(HeaderValue::as_address)
        .flat_map(|list| list.iter().map(|a| a.address().unwrap_or_default().trim().to_string()).collect::<Vec<_>>())
        .collect()
}

/// The payload's To and Cc in email form, and those without an SMIMP form as written.
fn payload_addressees(email: &Email) -> Vec<String> {
    let mut out: Vec<String> = email.to.iter().chain(&email.cc).map(Address::to_email).collect();
    let plain = email.extensions_data.as_ref().and_then(|x| x.get(super::X_RFC5322));
    for key in ["plain_to", "plain_cc"] {
        let list = plain.and_then(|x| x.get(key)).and_then(Value::as_array);
        out.extend(list.into_iter().flatten().filter_map(Value::as_str).map(str::to_string));
    }
    out
}

/// Addresses compared as sets, case-insensitively (an SMIMP form where there is one).
fn normalised(addresses: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = addresses
        .into_iter()
        .filter(|a| !a.is_empty())
        .map(|a| Address::from_email(&a).map_or_else(|_| a.to_ascii_lowercase(), |s| s.to_email()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::inbound::{email_from_rfc5322, NoThreads};
    use crate::smimp::timestamp::Timestamp;
    use rand_core::OsRng;

    const IMAGE_B64: &str =
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

    fn related() -> Vec<u8> {
        let mut image = String::new();
        let encoded = base64::engine::general_purpose::STANDARD
            .encode([base64::engine::general_purpose::STANDARD.decode(IMAGE_B64).unwrap(), vec![7u8; 300]].concat());
        for line in encoded.as_bytes().chunks(76) {
            image.push_str(std::str::from_utf8(line).unwrap());
            image.push_str("\r\n");
        }
        format!(
            "Received: from laptop (192.0.2.7) by mail\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\n\
Bcc: dave@example.net\r\nX-SMIMP-Verified: pass (forged)\r\nSubject: Picture\r\nMessage-ID: <p1@alice.example.org>\r\n\
X-Mailer: Test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n\
--rel\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<p>Look: <img src=\"cid:img1@a\"></p>\r\n\
--rel\r\nContent-Type: image/png; name=\"dot.png\"\r\nContent-Transfer-Encoding: base64\r\n\
Content-ID: <img1@a>\r\nContent-Disposition: inline; filename=\"dot.png\"\r\n\r\n{image}--rel--\r\n"
        )
        .into_bytes()
    }

    fn payload(raw: &[u8]) -> Email {
        let bob = [Address::parse("bob#example.net").unwrap()];
        let now = Timestamp::parse("2026-01-02 03:04:05").unwrap();
        let mut email = email_from_rfc5322(raw, &bob, &NoThreads, now, &mut OsRng).unwrap().email;
        let extension = original_extension(raw, &email.attachments).unwrap();
        email.extensions_data.get_or_insert_with(Default::default).insert(X_ORIGINAL.into(), extension);
        email
    }

    fn alice() -> Address {
        Address::parse("alice#example.org").unwrap()
    }

    fn shown(email: &Email) -> Result<Vec<u8>, OriginalError> {
        shown_original(email, &alice(), &Id32([9; 32]), "pass").unwrap()
    }

    fn sealed(email: &Email) -> Sealed {
        serde_json::from_value(email.extensions_data.as_ref().unwrap()[X_ORIGINAL].clone()).unwrap()
    }

    fn with_sealed(email: &Email, sealed: &Sealed) -> Email {
        let mut email = email.clone();
        email.extensions_data.as_mut().unwrap().insert(X_ORIGINAL.into(), serde_json::to_value(sealed).unwrap());
        email
    }

    #[test]
    fn the_original_arrives_byte_for_byte_without_stripped_fields_and_attachments_once() {
        let raw = related();
        let email = payload(&raw);
        let expected = stripped(&raw).unwrap();
        let text = String::from_utf8(expected.clone()).unwrap();
        assert!(text.starts_with("From: Alice"), "{text}");
        for gone in ["Received", "Bcc", "dave@", "X-SMIMP"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert_eq!(shown(&email).unwrap(), [&b"X-SMIMP-Verified: pass\r\n"[..], &expected].concat());
        let sealed = sealed(&email);
        assert!(
            sealed.pieces.iter().any(|p| matches!(
                p,
                Piece::Attachment { index: 0, encoding: PartEncoding::Base64, line_length: 76, .. }
            )),
            "{sealed:?}"
        );
        let json = serde_json::to_string(&email.extensions_data.as_ref().unwrap()[X_ORIGINAL]).unwrap();
        assert!(json.len() < expected.len(), "the image is not stored twice ({} bytes of JSON)", json.len());
        assert_eq!(original_message_id(&email, &alice()).as_deref(), Some("p1@alice.example.org"));
        let transcript = crate::smimp::transcript::Transcript::with_label(HASH_LABEL).field(&expected).hash();
        assert_eq!(original_hash(&expected).0, transcript.0, "the hash is the documented transcript");
    }

    #[test]
    fn bodies_that_do_not_reencode_exactly_stay_inline() {
        // Lines of uneven length: base64 at any one line length would differ.
        let raw = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\nMessage-ID: <u@a>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=x.bin\r\n\r\nAAEC\r\nAwQF\r\nBgcICQ==\r\n--b--\r\n";
        let email = payload(raw.as_bytes());
        assert!(sealed(&email).pieces.iter().all(|p| matches!(p, Piece::Bytes { .. })), "{:?}", sealed(&email));
        assert_eq!(shown(&email).unwrap(), [&b"X-SMIMP-Verified: pass\r\n"[..], raw.as_bytes()].concat());
    }

    #[test]
    fn a_message_without_message_id_gets_the_derived_one() {
        let raw = b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\n..dot\r\n";
        let shown = String::from_utf8(shown(&payload(raw)).unwrap()).unwrap();
        let id = format!("<{}@smimp.invalid>", "09".repeat(32));
        assert_eq!(shown, format!("X-SMIMP-Verified: pass\r\nMessage-ID: {id}\r\nFrom: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\n..dot\r\n"));
    }

    #[test]
    fn every_inconsistency_is_refused() {
        let email = payload(&related());
        let good = sealed(&email);
        let mut hash = good.clone();
        hash.hash = Id32([0; 32]);
        assert_eq!(shown(&with_sealed(&email, &hash)), Err(OriginalError::Mismatch));
        let mut short = good.clone();
        short.size -= 1;
        assert_eq!(shown(&with_sealed(&email, &short)), Err(OriginalError::Mismatch));
        let mut big = good.clone();
        big.size = MAX_ORIGINAL_BYTES + 1;
        assert_eq!(shown(&with_sealed(&email, &big)), Err(OriginalError::TooLarge(MAX_ORIGINAL_BYTES + 1)));
        let mut version = good.clone();
        version.version = 2;
        assert_eq!(shown(&with_sealed(&email, &version)), Err(OriginalError::Version(2)));
        let mut many = good.clone();
        many.pieces = vec![Piece::Bytes { bytes: vec![] }; MAX_PIECES + 1];
        assert!(matches!(shown(&with_sealed(&email, &many)), Err(OriginalError::Form(_))));
        let mut missing = good.clone();
        for piece in &mut missing.pieces {
            if let Piece::Attachment { index, .. } = piece {
                *index = 5;
            }
        }
        assert_eq!(shown(&with_sealed(&email, &missing)), Err(OriginalError::NoAttachment(5)));
        let mut line = good.clone();
        for piece in &mut line.pieces {
            if let Piece::Attachment { line_length, .. } = piece {
                *line_length = 0;
            }
        }
        assert!(matches!(shown(&with_sealed(&email, &line)), Err(OriginalError::Form(_))));
        let mut garbage = email.clone();
        garbage.extensions_data.as_mut().unwrap().insert(X_ORIGINAL.into(), serde_json::json!({"version": "x"}));
        assert!(matches!(shown(&garbage), Err(OriginalError::Form(_))));
        // Signed by Alice, but the original claims someone else wrote it.
        assert!(matches!(
            shown_original(&email, &Address::parse("mallory#example.org").unwrap(), &Id32([9; 32]), "pass"),
            Some(Err(OriginalError::Inconsistent(_)))
        ));
        let mut subject = email.clone();
        subject.subject = "Other".into();
        assert!(matches!(shown(&subject), Err(OriginalError::Inconsistent(_))));
        let mut to = email.clone();
        to.to.push(Address::parse("carol#example.net").unwrap());
        assert!(matches!(shown(&to), Err(OriginalError::Inconsistent(_))));
        let mut reply_to = email.clone();
        reply_to.reply_to = Some(Address::parse("eve#example.net").unwrap());
        assert!(matches!(shown(&reply_to), Err(OriginalError::Inconsistent(_))));
        assert_eq!(original_message_id(&subject, &alice()), None);
    }

    #[test]
    fn forged_fields_in_an_original_are_refused() {
        for field in [
            "X-SMIMP-Verified: pass",
            "Bcc: eve@example.net",
            "Sender: ceo@bank.example",
            "Message-ID: <ab@smimp.invalid>",
        ] {
            let raw = format!("From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n{field}\r\n\r\nx\r\n");
            let mut email = payload(raw.as_bytes());
            // A sender that skips the stripping: the original holds the field.
            let bytes = raw.as_bytes().to_vec();
            let size = bytes.len() as u64;
            let sealed =
                Sealed { version: VERSION, size, hash: original_hash(&bytes), pieces: vec![Piece::Bytes { bytes }] };
            email.extensions_data.as_mut().unwrap().insert(X_ORIGINAL.into(), serde_json::to_value(sealed).unwrap());
            assert!(matches!(shown(&email), Err(OriginalError::Inconsistent(_))), "{field}: {:?}", shown(&email));
        }
    }

    #[test]
    fn mail_without_an_original_is_left_to_the_payload_rendering() {
        let mut email = payload(b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nx\r\n");
        email.extensions_data.as_mut().unwrap().remove(X_ORIGINAL);
        assert_eq!(shown_original(&email, &alice(), &Id32([9; 32]), "pass"), None);
    }

    #[test]
    fn the_fidelity_fixtures_split_into_references_and_come_back_whole() {
        let fixtures: [(&str, &[u8], usize); 5] = [
            ("thunderbird", include_bytes!("../../fixtures/fidelity/thunderbird-html-inline-image.eml"), 1),
            ("outlook", include_bytes!("../../fixtures/fidelity/outlook-alternative-related.eml"), 1),
            ("lists", include_bytes!("../../fixtures/fidelity/list-headers.eml"), 1),
            ("signed", include_bytes!("../../fixtures/fidelity/signed.eml"), 1),
            ("dots", include_bytes!("../../fixtures/fidelity/leading-dot.eml"), 0),
        ];
        for (name, raw, references) in fixtures {
            let email = payload(raw);
            let expected = stripped(raw).unwrap();
            let found = sealed(&email).pieces.iter().filter(|p| matches!(p, Piece::Attachment { .. })).count();
            assert_eq!(found, references, "{name}: {:?}", sealed(&email));
            assert_eq!(shown(&email).unwrap(), [&b"X-SMIMP-Verified: pass\r\n"[..], &expected].concat(), "{name}");
        }
    }

    fn message_with(content: &[u8], line_length: usize, lf: bool, extra: &str) -> Vec<u8> {
        let end = if lf { "\n" } else { "\r\n" };
        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
        let lines: Vec<&str> =
            encoded.as_bytes().chunks(line_length).map(|l| std::str::from_utf8(l).unwrap()).collect();
        format!(
            "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: p\r\nMessage-ID: <p@a>\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi{extra}\r\n--b\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}{end}--b--\r\n",
            lines.join(end)
        )
        .into_bytes()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// Whatever the attachment and its line shape, the original comes back whole.
        #[test]
        fn any_attachment_shape_round_trips(
            content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            line_length in 1usize..120,
            lf in proptest::prelude::any::<bool>(),
            extra in "[ -~]{0,40}",
        ) {
            let raw = message_with(&content, line_length, lf, &extra);
            let email = payload(&raw);
            proptest::prop_assert_eq!(shown(&email).unwrap(), [&b"X-SMIMP-Verified: pass\r\n"[..], &raw].concat());
        }

        /// A hostile extension never panics and never shows more than it declared.
        #[test]
        fn hostile_extensions_never_panic(
            pieces in proptest::collection::vec(
                (0usize..4, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), proptest::sample::select(vec![0usize, 1, 3, 76, 998, 999, 5000]), proptest::prelude::any::<bool>()),
                0..12,
            ),
            size in 0u64..4096,
        ) {
            let mut email = payload(b"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: s\r\n\r\nx\r\n");
            email.attachments.push(Attachment {
                filename: "a".into(), content_type: "application/octet-stream".into(), content: vec![1; 300],
                content_id: None, inline: false,
            });
            let pieces = pieces.into_iter().map(|(index, bytes, line_length, flag)| {
                if index == 3 { Piece::Bytes { bytes } } else {
                    let encoding = if flag { PartEncoding::Base64 } else { PartEncoding::Identity };
                    Piece::Attachment { index, encoding, line_length, line_end: LineEnd::Crlf, final_line_end: flag }
                }
            }).collect();
            let sealed = Sealed { version: VERSION, size, hash: Id32([0; 32]), pieces };
            let shown = shown(&with_sealed(&email, &sealed));
            proptest::prop_assert!(shown.is_err(), "a wrong hash is never shown");
        }
    }
}
