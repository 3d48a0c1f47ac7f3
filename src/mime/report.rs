//! Delivery status notifications (RFC 3464 inside RFC 6522 multipart/report): what the
//! sender's mail client shows when a message it handed to the gateway could not be
//! delivered — a human-readable part saying why in plain words, the machine-readable
//! `message/delivery-status` part, and the headers of the message that failed.
//!
//! lettre's builder has no multipart/report, so the (short, fixed-shape) report is
//! written here; every value taken from the failed message is reduced to one line of
//! printable text first, so nothing in it can add a header or a MIME part.

use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

use super::MESSAGE_ID_DOMAIN;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::Email;
use crate::smimp::timestamp::Timestamp;

/// What failed: one recipient of one message.
#[derive(Debug, Clone)]
pub struct FailedDelivery<'a> {
    /// The account that sent the message, to whom the report goes.
    pub sender: &'a Address,
    /// The recipient as mail writes it (`bob@example.org`).
    pub recipient: &'a str,
    /// The failed message's headers.
    pub original: &'a OriginalHeaders,
    /// Whether the message was to go as plain email through a legacy relay, so the
    /// report does not claim it was only ever to be sent encrypted.
    pub relayed: bool,
    /// Why, in plain words (the last error).
    pub reason: &'a str,
    /// When the gateway accepted the message.
    pub arrival: Timestamp,
    /// When the gateway gave up.
    pub now: Timestamp,
}

/// The headers of the failed message the report repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalHeaders {
    pub subject: String,
    /// To and Cc addresses as mail writes them.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub date: Timestamp,
    /// Without angle brackets.
    pub message_id: Option<String>,
}

impl OriginalHeaders {
    /// The headers of an SMIMP `email` payload (the original Message-ID is in its
    /// `x-rfc5322` extension data).
    pub fn from_email(email: &Email) -> Self {
        let emails = |addresses: &[Address]| addresses.iter().map(Address::to_email).collect();
        let message_id = email
            .extensions_data
            .as_ref()
            .and_then(|e| e.get(super::X_RFC5322))
            .and_then(|x| x.get("message_id"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Self {
            subject: email.subject.clone(),
            to: emails(&email.to),
            cc: emails(&email.cc),
            date: email.date_sent,
            message_id,
        }
    }

    /// The headers of a message as submitted (relayed mail is kept that way); `received`
    /// stands in for a missing or invalid Date. Anything unparsable is left out.
    pub fn from_rfc5322(raw: &[u8], received: Timestamp) -> Self {
        let parsed = std::panic::catch_unwind(|| mail_parser::MessageParser::new().parse_headers(raw)).ok().flatten();
        let Some(message) = parsed else {
            return Self { subject: String::new(), to: vec![], cc: vec![], date: received, message_id: None };
        };
        let emails = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            list.map(|l| l.iter().filter_map(|a| a.address()).map(str::to_string).collect()).unwrap_or_default()
        };
        let date = message
            .date()
            .filter(|d| d.is_valid())
            .and_then(|d| Timestamp::from_unix(d.to_timestamp()))
            .unwrap_or(received);
        Self {
            subject: message.subject().unwrap_or_default().to_string(),
            to: emails(message.to()),
            cc: emails(message.cc()),
            date,
            message_id: message.message_id().map(str::to_string),
        }
    }
}

/// Longest value copied from the failed message into the report, in characters.
const MAX_VALUE: usize = 200;

/// One printable line: control characters become spaces, long values are cut.
fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_VALUE).collect()
}

fn rfc2822(at: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp(at.unix())
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 1 Jan 1970 00:00:00 +0000".to_string())
}

/// Encodes a header value as RFC 2047 UTF-8 base64 when it is not plain ASCII.
fn header_text(text: &str) -> String {
    use base64::Engine;
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
    }
}

/// The report as RFC 5322 bytes with CRLF line ends. `id` names it (its Message-ID and
/// MIME boundary).
pub fn delivery_report(failed: &FailedDelivery<'_>, id: &Id32) -> Vec<u8> {
    let hex = id.to_hex();
    let boundary = format!("report-{}", &hex[..24]);
    let to = one_line(failed.recipient);
    let subject = one_line(&failed.original.subject);
    let reason = one_line(failed.reason);
    let original_id = failed.original.message_id.as_deref().map(one_line);
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push_str("\r\n");
    };
    line(&format!("From: Mail Delivery System <mailer-daemon@{MESSAGE_ID_DOMAIN}>"));
    line(&format!("To: <{}>", failed.sender.to_email()));
    line(&format!("Subject: {}", header_text(&format!("Undelivered Mail: {subject}"))));
    line(&format!("Date: {}", rfc2822(failed.now)));
    line(&format!("Message-ID: <{hex}@{MESSAGE_ID_DOMAIN}>"));
    if let Some(original) = &original_id {
        line(&format!("In-Reply-To: <{original}>"));
        line(&format!("References: <{original}>"));
    }
    line("Auto-Submitted: auto-replied");
    line("MIME-Version: 1.0");
    line(&format!("Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\""));
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: text/plain; charset=utf-8");
    line("Content-Transfer-Encoding: 8bit");
    line("");
    line(&format!("Your message \"{subject}\" could not be delivered to {to}."));
    line("");
    line(&format!("Reason: {reason}"));
    line("");
    if failed.relayed {
        line("This recipient's domain is configured on the gateway for a legacy relay: the message");
        line("was to be sent as plain email (not end-to-end encrypted), and the relay did not take it.");
    } else {
        line("The message was not sent to this recipient in any other way: the gateway never");
        line("sends mail unencrypted.");
    }
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: message/delivery-status");
    line("");
    line(&format!("Reporting-MTA: dns; gateway.{MESSAGE_ID_DOMAIN}"));
    line(&format!("Arrival-Date: {}", rfc2822(failed.arrival)));
    line("");
    line(&format!("Final-Recipient: rfc822; {to}"));
    line("Action: failed");
    line("Status: 5.0.0");
    line(&format!("Diagnostic-Code: smtp; 550 {reason}"));
    line(&format!("Last-Attempt-Date: {}", rfc2822(failed.now)));
    line("");
    line(&format!("--{boundary}"));
    line("Content-Type: text/rfc822-headers");
    line("");
    line(&format!("From: <{}>", failed.sender.to_email()));
    let list = |addresses: &[String]| addresses.iter().map(|a| format!("<{}>", one_line(a))).collect::<Vec<_>>();
    if !failed.original.to.is_empty() {
        line(&format!("To: {}", list(&failed.original.to).join(", ")));
    }
    if !failed.original.cc.is_empty() {
        line(&format!("Cc: {}", list(&failed.original.cc).join(", ")));
    }
    line(&format!("Subject: {}", header_text(&subject)));
    line(&format!("Date: {}", rfc2822(failed.original.date)));
    if let Some(original) = &original_id {
        line(&format!("Message-ID: <{original}>"));
    }
    line("");
    line(&format!("--{boundary}--"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MimeHeaders;
    use rand_core::OsRng;

    #[test]
    fn a_report_is_multipart_report_with_the_reason_and_the_original_headers() {
        let alice = Address::from_email("alice@example.org").unwrap();
        let bob = Address::from_email("bob@example.net").unwrap();
        let email = Email {
            to: vec![bob.clone()],
            cc: vec![],
            subject: "Quarterly\r\nBcc: evil@example.com numbers".into(),
            thread_id: Id32::random(&mut OsRng),
            reply_to_message_id: None,
            date_sent: Timestamp::from_unix(1_800_000_000).unwrap(),
            body: "secret body".into(),
            signature_text: None,
            attachments: vec![],
            extensions_data: None,
            reply_to: None,
            auto_reply_address: None,
        };
        let at = Timestamp::from_unix(1_800_000_100).unwrap();
        let original = OriginalHeaders::from_email(&email);
        let failed = FailedDelivery {
            sender: &alice,
            recipient: "bob@example.net",
            original: &original,
            relayed: false,
            reason: "bob@example.net has no SMIMP profile",
            arrival: at,
            now: at,
        };
        let bytes = delivery_report(&failed, &Id32::random(&mut OsRng));
        let parsed = mail_parser::MessageParser::new().parse(&bytes).expect("a report parses as mail");
        assert!(parsed.content_type().is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("report")));
        assert_eq!(parsed.parts.len(), 4, "the report and its three parts");
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; bob@example.net\r\n"));
        assert!(text.contains("Action: failed\r\n"));
        assert!(text.contains("Reason: bob@example.net has no SMIMP profile\r\n"));
        assert!(!text.contains("\r\nBcc:"), "a value from the message cannot add a header");
        assert!(!text.contains("secret body"), "the body is not repeated");
        assert!(parsed.subject().unwrap().starts_with("Undelivered Mail: Quarterly"));
        assert!(text.contains("never\r\nsends mail unencrypted"), "{text}");
        let _ = bob;
    }

    #[test]
    fn a_relayed_failure_says_it_was_to_go_as_plain_email_and_repeats_the_submitted_headers() {
        let alice = Address::from_email("alice@example.org").unwrap();
        let raw = b"From: alice@example.org\r\nTo: Carol <first.last@legacy.example>\r\nCc: dan@legacy.example\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nDate: Thu, 15 Jan 2027 08:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\nbody words\r\n";
        let at = Timestamp::from_unix(1_800_000_100).unwrap();
        let original = OriginalHeaders::from_rfc5322(raw, at);
        assert_eq!(original.subject, "Grüße");
        assert_eq!(original.to, vec!["first.last@legacy.example".to_string()]);
        assert_eq!(original.cc, vec!["dan@legacy.example".to_string()]);
        assert_eq!(original.message_id.as_deref(), Some("m1@example.org"));
        assert_ne!(original.date, at, "the message's own Date is used");
        let failed = FailedDelivery {
            sender: &alice,
            recipient: "first.last@legacy.example",
            original: &original,
            relayed: true,
            reason: "the relay refused: 550 no such user",
            arrival: at,
            now: at,
        };
        let text = String::from_utf8(delivery_report(&failed, &Id32::random(&mut OsRng))).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; first.last@legacy.example\r\n"), "{text}");
        assert!(text.contains("In-Reply-To: <m1@example.org>\r\n"), "{text}");
        assert!(text.contains("sent as plain email"), "{text}");
        assert!(!text.contains("never\r\nsends mail unencrypted"), "{text}");
        assert!(!text.contains("body words"), "the body is not repeated");
        let garbage = OriginalHeaders::from_rfc5322(b"\x00\xff", at);
        assert_eq!((garbage.subject.as_str(), garbage.date), ("", at));
    }
}
