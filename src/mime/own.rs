//! Mail an account stores for itself (IMAP APPEND to Sent or Drafts, the gateway's
//! delivery reports): the exact RFC 5322 bytes travel base64-encoded in the payload's
//! `extensions_data["x-smimp-raw"]` ([`X_RAW`]), sealed to the account's own key like
//! any message, so the mail client gets back byte for byte what it stored, and other
//! devices see it. The payload's own fields (To, Subject, Date, a text body) are filled
//! in as well as the mail allows, for SMIMP clients that do not read the raw form.
//!
//! A receiver honours the raw form only when the verified sender is the mailbox owner:
//! from anyone else it would let them write arbitrary headers.
//!
//! Byte for byte, except for one thing: what the account stored may be anyone's mail (a
//! phishing message dragged in from another account, a draft with a forged `From`), and
//! the gateway never vouched for it. So [`raw_of`] removes every `X-SMIMP-*` header
//! field (the gateway's own namespace, where `X-SMIMP-Verified: pass` lives) and puts
//! [`STORED_VERIFIED`] first, saying the message was stored by this account and not
//! verified as received mail.

use base64::Engine;
use mail_parser::MessageParser;
use rand_core::CryptoRngCore;
use serde_json::{Map, Value};

use super::inbound::new_thread_id;
use crate::smimp::address::Address;
use crate::smimp::message::Email;
use crate::smimp::timestamp::Timestamp;

/// The `extensions_data` key of the raw RFC 5322 form (module docs).
pub const X_RAW: &str = "x-smimp-raw";

/// The `X-SMIMP-Verified` value of mail the account stored itself (module docs);
/// verified received mail has `pass; …` there.
pub const STORED_VERIFIED: &str = "none; stored by this account (APPEND, COPY or a delivery report), \
not verified as received mail";

/// Header fields whose names start with this (any case) are the gateway's to write.
const GATEWAY_PREFIX: &[u8] = b"x-smimp-";

/// Longest text body copied into the payload's `body` besides the raw form, in bytes.
const MAX_BODY_COPY: usize = 256 * 1024;

/// The payload that stores `raw` for its owner. Never fails: what cannot be read from
/// the headers is left empty, since the raw form is what counts.
pub fn email_for_raw(raw: &[u8], owner: &Address, now: Timestamp, rng: &mut impl CryptoRngCore) -> Email {
    let parsed = MessageParser::new().parse(raw);
    let mut to = Vec::new();
    let mut subject = String::new();
    let mut body = String::new();
    let mut date_sent = now;
    if let Some(message) = &parsed {
        if let Some(list) = message.to() {
            to.extend(list.iter().filter_map(|a| a.address()).filter_map(|a| Address::from_email(a).ok()));
        }
        subject = message.subject().unwrap_or_default().to_string();
        if let Some(date) = message.date().filter(|d| d.is_valid()) {
            date_sent = Timestamp::from_unix(date.to_timestamp()).unwrap_or(now);
        }
        if let Some(text) = message.body_text(0) {
            let mut end = text.len().min(MAX_BODY_COPY);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            body = text[..end].to_string();
        }
    }
    if to.is_empty() {
        to.push(owner.clone());
    }
    let raw_text = base64::engine::general_purpose::STANDARD.encode(raw);
    Email {
        to,
        cc: Vec::new(),
        subject,
        thread_id: new_thread_id(rng),
        reply_to_message_id: None,
        date_sent,
        body,
        signature_text: None,
        attachments: Vec::new(),
        extensions_data: Some(Map::from_iter([(X_RAW.to_string(), Value::String(raw_text))])),
        reply_to: None,
        auto_reply_address: None,
    }
}

/// The raw form an owner stored, if the payload has one that decodes, as it is shown:
/// without `X-SMIMP-*` fields and with `X-SMIMP-Verified:` [`STORED_VERIFIED`] first.
pub fn raw_of(email: &Email) -> Option<Vec<u8>> {
    let text = email.extensions_data.as_ref()?.get(X_RAW)?.as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    Some(shown(&raw))
}

/// `raw` with its `X-SMIMP-*` header fields (continuation lines included) removed and
/// the stored-by-this-account field first. The body is left as it is.
pub fn shown(raw: &[u8]) -> Vec<u8> {
    let mut out = format!("X-SMIMP-Verified: {STORED_VERIFIED}\r\n").into_bytes();
    out.reserve(raw.len());
    let mut dropping = false;
    let mut rest = raw;
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
        let (line, after) = rest.split_at(end);
        if line == b"\r\n" || line == b"\n" {
            // The end of the header section: the body follows untouched.
            out.extend_from_slice(rest);
            return out;
        }
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            dropping = is_gateway_field(line);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        rest = after;
    }
    out
}

/// Whether a header line starts a field named `X-SMIMP-…` (any case, blanks allowed
/// before the colon, as lenient readers allow).
fn is_gateway_field(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else { return false };
    let name = line[..colon].trim_ascii();
    name.len() >= GATEWAY_PREFIX.len() && name[..GATEWAY_PREFIX.len()].eq_ignore_ascii_case(GATEWAY_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn the_raw_form_round_trips_byte_for_byte_and_fills_the_fields() {
        let owner = Address::from_email("alice@example.org").unwrap();
        let raw = b"From: alice@example.org\r\nTo: Bob <bob@example.org>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Wed, 4 Nov 2026 10:00:00 +0000\r\n\r\nHello Bob\r\n";
        let now = Timestamp::from_unix(1_800_000_000).unwrap();
        let email = email_for_raw(raw, &owner, now, &mut OsRng);
        let shown = [format!("X-SMIMP-Verified: {STORED_VERIFIED}\r\n").as_bytes(), &raw[..]].concat();
        assert_eq!(raw_of(&email), Some(shown));
        assert_eq!(email.subject, "Grüße");
        assert_eq!(email.to, vec![Address::from_email("bob@example.org").unwrap()]);
        assert_eq!(email.body.trim(), "Hello Bob");
        assert_eq!(email.date_sent, Timestamp::from_unix(1_793_786_400).unwrap());
    }

    #[test]
    fn unreadable_mail_is_still_kept_whole() {
        let owner = Address::from_email("alice@example.org").unwrap();
        let raw = b"\xff\xfe not mail at all";
        let now = Timestamp::from_unix(1_800_000_000).unwrap();
        let email = email_for_raw(raw, &owner, now, &mut OsRng);
        let shown = [format!("X-SMIMP-Verified: {STORED_VERIFIED}\r\n").as_bytes(), &raw[..]].concat();
        assert_eq!(raw_of(&email), Some(shown));
        assert_eq!(email.to, vec![owner]);
        assert_eq!(email.date_sent, now);
    }

    #[test]
    fn forged_verification_headers_are_replaced_by_the_stored_notice() {
        let owner = Address::from_email("alice@example.org").unwrap();
        let raw = b"X-SMIMP-Verified: pass; signed by bank@example.org's verified key\r\n\
From: Your Bank <bank@example.org>\r\n\
x-smimp-verified : pass\r\n\
X-Smimp-Other: folded\r\n\tpass; continued\r\n\
Subject: Verify your account\r\n\
\r\n\
X-SMIMP-Verified: pass (in the body, left alone)\r\n";
        let email = email_for_raw(raw, &owner, Timestamp::from_unix(1_800_000_000).unwrap(), &mut OsRng);
        let shown = String::from_utf8(raw_of(&email).unwrap()).unwrap();
        assert_eq!(
            shown,
            format!(
                "X-SMIMP-Verified: {STORED_VERIFIED}\r\n\
From: Your Bank <bank@example.org>\r\n\
Subject: Verify your account\r\n\
\r\n\
X-SMIMP-Verified: pass (in the body, left alone)\r\n"
            )
        );
        let parsed = MessageParser::new().parse(shown.as_bytes()).unwrap();
        let verified: Vec<_> = parsed.header_values("X-SMIMP-Verified").filter_map(|v| v.as_text()).collect();
        assert_eq!(verified, [STORED_VERIFIED]);
        // LF line ends and a message that is all header.
        assert_eq!(shown_text(b"X-SMIMP-Verified: pass\nA: b\n\nbody\n"), format!("{}A: b\n\nbody\n", notice()));
        assert_eq!(shown_text(b"A: b\r\nX-SMIMP-X: y"), format!("{}A: b\r\n", notice()));
    }

    fn notice() -> String {
        format!("X-SMIMP-Verified: {STORED_VERIFIED}\r\n")
    }

    fn shown_text(raw: &[u8]) -> String {
        String::from_utf8(shown(raw)).unwrap()
    }
}
