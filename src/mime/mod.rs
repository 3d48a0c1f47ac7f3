//! RFC 5322 / MIME mail ↔ the SMIMP `email` payload (docs/protocol.md §7).
//!
//! - [`inbound`]: what a mail client submits over SMTP (RFC 5322, MIME RFC 2045–2049,
//!   encoded words RFC 2047, parameters RFC 2231) becomes an [`Email`] payload, parsed
//!   with mail-parser.
//! - [`outbound`]: an opened [`Email`] becomes RFC 5322 / MIME for IMAP, built with
//!   lettre's message builder; a message that failed verification becomes a plain
//!   warning in its place.
//! - [`original`]: the sealed original — the submitted bytes in the payload's extension
//!   data, shown to the recipient's client as they were written when they agree with the
//!   verified envelope (docs/protocol.md §7.1); [`outbound`] renders the rest.
//! - [`html`]: the HTML → Markdown conversion for HTML-only mail (the payload body is
//!   Markdown and may hold no HTML: spec "Email").
//!
//! Pure by rule (docs/architecture.md): no tokio, sockets, files, database or HTTP;
//! the current time and the random source are parameters, so tests pin them. Every
//! input is untrusted: parsing returns a typed [`MimeError`], rendering sanitises every
//! header value it takes from a payload, and nothing here panics on input.
//!
//! # Threading ids
//!
//! Mail that arrives with a sealed original keeps its sender's Message-ID, In-Reply-To
//! and References; the gateway's thread map (`store/threads.rs`) links those to SMIMP
//! ids. For mail rendered from the payload:
//! SMIMP ids are 32 random bytes; legacy clients thread by `Message-ID`,
//! `In-Reply-To` and `References` (RFC 5322 §3.6.4). The gateway writes them as
//! `<{hex}@smimp.invalid>` for a message and `<{hex}@thread.smimp.invalid>` for a
//! thread (`.invalid` is reserved by RFC 2606, so they never collide with real ids),
//! and recognises both forms when a client replies.
//!
//! # `extensions_data["x-rfc5322"]`
//!
//! Header data a client needs to show a message faithfully but the payload has no field
//! for travels in the payload's `extensions_data` under the key [`X_RFC5322`], an object
//! whose members are all optional: `message_id` (the original Message-ID, without angle
//! brackets), `from_name` (the From display name), `date` (the original Date header, with
//! its zone), `in_reply_to` and `references` (arrays of ids without angle brackets),
//! `content_language`, `importance`, `organization` and `keywords` (an array), and
//! `plain_to` and `plain_cc` (arrays of the To and Cc addresses that have no SMIMP form,
//! as written: legacy recipients reached through a relay). Receivers treat every member
//! as the sender's unverified claim.
//!
//! `extensions_data["x-smimp-delivery"]` ([`X_DELIVERY`]) is the submission's delivery
//! id, which lets a receiver drop a second copy of one message.
//!
//! [`Email`]: crate::smimp::message::Email

pub mod html;
pub mod inbound;
pub mod original;
pub mod outbound;
pub mod own;
pub mod report;

#[cfg(test)]
mod tests;

use crate::smimp::address::AddressError;
use crate::smimp::encoding::Id32;

/// The `extensions_data` key under which RFC 5322 header data travels (module docs).
pub const X_RFC5322: &str = "x-rfc5322";

/// The `extensions_data` key of a submission's delivery id: 16 random bytes in hex,
/// the same in every recipient's copy of one accepted message. A delivery retried after
/// a crash between sending and recording it may reach a recipient twice; the receiving
/// gateway shows one copy per sender and delivery id.
pub const X_DELIVERY: &str = "x-smimp-delivery";

/// The domain of the Message-IDs the gateway derives from SMIMP message ids.
pub const MESSAGE_ID_DOMAIN: &str = "smimp.invalid";

/// The domain of the References entries the gateway derives from SMIMP thread ids.
pub const THREAD_ID_DOMAIN: &str = "thread.smimp.invalid";

/// Why submitted mail cannot become an SMIMP payload. Each variant says what the user
/// can fix, so the SMTP front-end can answer with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MimeError {
    #[error("the message is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the message could not be read as RFC 5322 mail")]
    Malformed,
    #[error("the {header} address {address:?} has no SMIMP form: {reason}")]
    Address { header: &'static str, address: String, reason: AddressError },
    #[error("the {header} header names {name:?} without an email address")]
    MissingAddress { header: &'static str, name: String },
    #[error("the message names {count} recipients, more than the limit of {limit}")]
    TooManyRecipients { count: usize, limit: usize },
    #[error("the message has {count} attachments, more than the limit of {limit}")]
    TooManyAttachments { count: usize, limit: usize },
    #[error("the message has no recipients")]
    NoRecipients,
}

/// The Message-ID (with angle brackets) a client sees for the SMIMP message `id`.
pub fn message_id_for(id: &Id32) -> String {
    format!("<{}@{MESSAGE_ID_DOMAIN}>", id.to_hex())
}

/// The References entry (with angle brackets) that stands for the SMIMP thread `id`.
pub fn thread_reference_for(id: &Id32) -> String {
    format!("<{}@{THREAD_ID_DOMAIN}>", id.to_hex())
}

/// An id in one of the gateway's own forms, recognised in a client's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayId {
    Message(Id32),
    Thread(Id32),
}

impl GatewayId {
    /// Reads `hex@smimp.invalid` or `hex@thread.smimp.invalid`, with or without angle
    /// brackets, case-insensitively; anything else is not one of ours.
    pub fn parse(id: &str) -> Option<Self> {
        let id = id.trim();
        let id = id.strip_prefix('<').and_then(|i| i.strip_suffix('>')).unwrap_or(id);
        let (left, right) = id.split_once('@')?;
        let parsed: Id32 = left.parse().ok()?;
        if right.eq_ignore_ascii_case(MESSAGE_ID_DOMAIN) {
            Some(Self::Message(parsed))
        } else if right.eq_ignore_ascii_case(THREAD_ID_DOMAIN) {
            Some(Self::Thread(parsed))
        } else {
            None
        }
    }
}
