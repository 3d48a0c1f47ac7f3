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
    pub recipient: &'a Address,
    /// The failed message's payload, for its headers.
    pub email: &'a Email,
    /// Why, in plain words (the last error).
    pub reason: &'a str,
    /// When the gateway accepted the message.
    pub arrival: Timestamp,
    /// When the gateway gave up.
    pub now: Timestamp,
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
    let to = failed.recipient.to_email();
    let subject = one_line(&failed.email.subject);
    let reason = one_line(failed.reason);
    let original_id = failed
        .email
        .extensions_data
        .as_ref()
        .and_then(|e| e.get(super::X_RFC5322))
        .and_then(|x| x.get("message_id"))
        .and_then(|v| v.as_str())
        .map(one_line);
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
    line("The message was not sent to this recipient in any other way: the gateway never");
    line("sends mail unencrypted.");
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
    let list = |addresses: &[Address]| addresses.iter().map(|a| format!("<{}>", a.to_email())).collect::<Vec<_>>();
    if !failed.email.to.is_empty() {
        line(&format!("To: {}", list(&failed.email.to).join(", ")));
    }
    if !failed.email.cc.is_empty() {
        line(&format!("Cc: {}", list(&failed.email.cc).join(", ")));
    }
    line(&format!("Subject: {}", header_text(&subject)));
    line(&format!("Date: {}", rfc2822(failed.email.date_sent)));
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
        let failed = FailedDelivery {
            sender: &alice,
            recipient: &bob,
            email: &email,
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
    }
}
