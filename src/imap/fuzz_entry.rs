//! The fuzz crate's one way into the IMAP front-end (fuzz/fuzz_targets/imap_commands.rs):
//! a mail client's bytes are untrusted, and the front-end's own code that reads them
//! must neither panic nor allocate without bound, whatever they are. This runs that
//! code the way a session would, without a store or a socket: framing as `connection`
//! does it (imap-codec's fragmentizer, the same literal limit), imap-codec's command
//! codec, then per command the pure pieces that take its untrusted parts — LIST/LSUB
//! patterns through `list`, mailbox names through `wire`, sequence sets through
//! `view::View::resolve` against a fixed view of 1,000 messages with gaps, SEARCH keys
//! through the same limits as the handler and through `search::matches`, FETCH items
//! through `fetch::render`, APPENDed messages through `fetch::render` and
//! `search::Content`.
//!
//! The glue a handler adds around these pieces (a LIST reference and pattern taken from
//! the wire, a mailbox name made canonical, the SEARCH keys joined and counted) is
//! repeated here in a few lines, as the handlers are async and need a store. Not part
//! of the crate's API: hidden from the docs, free of I/O, used by nothing else.

use std::sync::OnceLock;

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::CommandCodec;

use super::connection::LINE_ALLOWANCE;
use super::response;
use super::search::{self as searching, Candidate, Content};
use super::view::View;
use super::wire::{mailbox_from_wire, uid_set};
use super::{fetch, list, Flag, ImapConfig, MailboxInfo, MessageMeta, Snapshot, SpecialUse};

/// How many resolved messages a FETCH renders, and how many a SEARCH tests with
/// content: enough to reach every branch, few enough to keep each run fast.
const SAMPLE: usize = 4;

/// A message with a few MIME parts, for FETCH sections and content SEARCH keys.
const MESSAGE: &[u8] = b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\n\
To: Ann <ann@example.com>, bob@example.net\r\n\
Subject: Report\r\n\
Date: Mon, 01 Jan 2024 23:30:00 -0500\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
the quarterly report\r\n\
--b1\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
\r\n\
inner body\r\n\
--b1--\r\n";

/// Frames `bytes` as one connection's input and runs each command framed from it.
#[doc(hidden)]
pub fn fuzz_command(bytes: &[u8]) {
    drive(bytes);
}

/// [`fuzz_command`], telling how many messages were decoded as commands and how many
/// were refused (skipped, poisoned or not a command).
fn drive(bytes: &[u8]) -> (usize, usize) {
    let max_literal = ImapConfig::default().max_literal_size;
    let mut fragmentizer = Fragmentizer::new(max_literal.saturating_add(LINE_ALLOWANCE));
    fragmentizer.enqueue_bytes(bytes);
    let (mut decoded, mut refused) = (0, 0);
    while let Some(fragment) = fragmentizer.progress() {
        if let FragmentInfo::Line { announcement: Some(LiteralAnnouncement { mode, length }), .. } = fragment {
            // As `connection::Link::announced`: over the limit is skipped, a
            // synchronizing literal without a tag is read on but not decoded.
            let tag = fragmentizer.decode_tag();
            if length > max_literal {
                fragmentizer.skip_message();
                refused += 1;
                continue;
            }
            if mode == LiteralMode::Sync && tag.is_none() {
                fragmentizer.poison_message();
            }
        }
        if !fragmentizer.is_message_complete() {
            continue;
        }
        match fragmentizer.decode_message(&CommandCodec::default()) {
            Ok(command) => {
                decoded += 1;
                run(command.body);
            }
            Err(_) => {
                refused += 1;
                let _ = fragmentizer.decode_tag();
            }
        }
    }
    (decoded, refused)
}

/// The fixed mailbox list LIST and LSUB run against.
fn mailboxes() -> &'static [MailboxInfo] {
    static MAILBOXES: OnceLock<Vec<MailboxInfo>> = OnceLock::new();
    MAILBOXES.get_or_init(|| {
        let info = |name: &str, special_use, subscribed| MailboxInfo { name: name.into(), special_use, subscribed };
        vec![
            info("INBOX", None, true),
            info("INBOX/Receipts", None, false),
            info("Sent", Some(SpecialUse::Sent), true),
            info("Work/Projects/Alpha", None, true),
            info("Work/Reports", None, false),
            info("Archiv/Entwürfe", Some(SpecialUse::Archive), false),
        ]
    })
}

/// The fixed selected mailbox: 1,000 messages, UIDs 1 to 1,499 without every third,
/// with assorted flags, sizes and dates; the newest are `\Recent`.
fn view() -> &'static View {
    static VIEW: OnceLock<View> = OnceLock::new();
    VIEW.get_or_init(|| {
        let messages = (1..1500u32)
            .filter(|uid| uid % 3 != 0)
            .map(|uid| {
                let flags = match uid % 5 {
                    0 => vec![Flag::Seen],
                    1 => vec![Flag::Deleted, Flag::Flagged],
                    2 => vec![Flag::Keyword("$Work".into())],
                    _ => vec![],
                };
                let internal_date = 1_700_000_000 + i64::from(uid) * 86_400;
                MessageMeta { uid, flags, internal_date, size: uid * 7, modseq: u64::from(uid % 40) + 1 }
            })
            .collect();
        let snapshot = Snapshot { uid_validity: 7, uid_next: 1600, highest_modseq: 41, messages };
        View::new("INBOX".into(), false, snapshot, 1400)
    })
}

fn content() -> &'static Content {
    static CONTENT: OnceLock<Content> = OnceLock::new();
    CONTENT.get_or_init(|| Content::new(MESSAGE))
}

/// The untrusted parts of one parsed command through the code that takes them.
fn run(body: CommandBody<'_>) {
    type C<'a> = CommandBody<'a>;
    match body {
        C::List { reference, mailbox_wildcard } | C::Lsub { reference, mailbox_wildcard } => {
            patterns(&reference, &mailbox_wildcard);
        }
        C::Select { mailbox, .. }
        | C::Examine { mailbox, .. }
        | C::Create { mailbox }
        | C::Delete { mailbox }
        | C::Subscribe { mailbox }
        | C::Unsubscribe { mailbox }
        | C::Status { mailbox, .. } => {
            let _ = mailbox_name(&mailbox);
        }
        C::Rename { from, to } => {
            let _ = (mailbox_name(&from), mailbox_name(&to));
        }
        C::Append { mailbox, message, .. } => {
            let _ = mailbox_name(&mailbox);
            let data = match &message {
                LiteralOrLiteral8::Literal(literal) => literal.as_ref(),
                LiteralOrLiteral8::Literal8(literal) => literal.data.as_ref(),
            };
            appended(data);
        }
        C::Fetch { sequence_set, macro_or_item_names, uid, .. } => {
            let items = fetch::items(&macro_or_item_names, uid);
            fetched(&sequence_set, &items, uid);
        }
        C::Store { sequence_set, uid, .. } | C::Copy { sequence_set, uid, .. } | C::Move { sequence_set, uid, .. } => {
            resolved(&sequence_set, uid);
        }
        C::ExpungeUid { sequence_set } => {
            resolved(&sequence_set, true);
        }
        C::Search { criteria, uid, .. } => searched(criteria.into_inner(), uid),
        _ => {}
    }
}

/// As `command::mailbox_name`: modified UTF-7 decoded, INBOX in any case made canonical.
fn mailbox_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => list::canonical_inbox(&mailbox_from_wire(other.as_ref())),
    }
}

/// LIST and LSUB as the handler runs them (`command::list_reference`,
/// `command::list_pattern`, `list::list`), and the joined pattern matched against each
/// name when it is within the length LIST accepts.
fn patterns(reference: &Mailbox<'_>, pattern: &ListMailbox<'_>) {
    let reference = match reference {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => mailbox_from_wire(other.as_ref()),
    };
    let pattern = match pattern {
        ListMailbox::Token(token) => mailbox_from_wire(token.as_ref()),
        ListMailbox::String(string) => mailbox_from_wire(string.as_ref()),
    };
    for lsub in [false, true] {
        let _ = list::list(mailboxes(), &reference, &pattern, lsub);
    }
    let full = format!("{reference}{pattern}");
    if full.chars().count() <= list::MAX_PATTERN_CHARS {
        for info in mailboxes() {
            let _ = list::matches(&full, &info.name);
        }
        let _ = list::canonical_inbox(&full);
    }
}

/// The indices a set names in the fixed view, as STORE, COPY, MOVE and EXPUNGE take
/// them, with the UIDs a COPYUID response would list.
fn resolved(set: &SequenceSet, uid: bool) -> Vec<usize> {
    let view = view();
    let indices = view.resolve(set, uid).unwrap_or_default();
    let uids: Vec<u32> = indices.iter().filter_map(|&i| view.messages.get(i)).map(|m| m.uid).collect();
    let _ = uid_set(&uids);
    indices
}

/// FETCH: the set resolved, and the first few messages and the last rendered.
fn fetched(set: &SequenceSet, items: &[fetch::Item], uid: bool) {
    let view = view();
    let indices = resolved(set, uid);
    let message = fetch::needs_content(items).then_some(MESSAGE);
    let mut out = Vec::new();
    for index in sample(&indices) {
        if let Some(known) = view.messages.get(index) {
            fetch::render(&mut out, u32::try_from(index + 1).unwrap_or(u32::MAX), known, message, items);
        }
    }
}

/// An APPENDed message as FETCH and SEARCH later read it.
fn appended(message: &[u8]) {
    let items = [
        fetch::Item::Envelope,
        fetch::Item::Structure(true),
        fetch::Item::Structure(false),
        fetch::Item::Section {
            spec: super::structure::SectionSpec::Text(vec![1, 2]),
            partial: Some((1, 100)),
            peek: true,
            name: fetch::SectionName::Body("1.2.TEXT".into()),
        },
    ];
    let Some(known) = view().messages.first() else { return };
    let mut out = Vec::new();
    fetch::render(&mut out, 1, known, Some(message), &items);
    let _ = Content::new(message);
}

/// SEARCH as the handler checks it (`search::one_key`: the keys joined, counted and
/// their ranges limited), then tested against a sample of the fixed view.
fn searched(keys: Vec<SearchKey<'_>>, uid: bool) {
    let Ok(key) = searching::one_key(keys) else { return };
    let view = view();
    let need = searching::needs_content(&key);
    let all: Vec<usize> = (0..view.messages.len()).collect();
    let mut found = Vec::new();
    for index in sample(&all) {
        let Some(known) = view.messages.get(index) else { continue };
        let seq = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let candidate = Candidate {
            seq,
            known,
            content: need.then(content),
            largest_seq: view.exists(),
            largest_uid: view.highest_uid(),
        };
        if searching::matches(&key, &candidate) {
            found.push(if uid { known.uid } else { seq });
        }
    }
    response::search(&mut Vec::new(), &found);
}

/// The first few of `items` and the last.
fn sample(items: &[usize]) -> Vec<usize> {
    let mut sample: Vec<usize> = items.iter().take(SAMPLE).copied().collect();
    sample.extend(items.iter().skip(SAMPLE).last());
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed seed is a valid stream of commands: each is decoded, none refused.
    #[test]
    fn the_fuzz_seeds_are_commands() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/imap_commands");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let (decoded, refused) = drive(&bytes);
            assert!(decoded > 0 && refused == 0, "{}: {decoded} decoded, {refused} refused", path.display());
            seen += 1;
        }
        assert!(seen >= 10, "{seen} seeds");
    }

    #[test]
    fn refused_input_is_counted() {
        assert_eq!(drive(b"a LOGIN {60000000}\r\n"), (0, 1), "a literal over the limit");
        assert_eq!(drive(b"a NOSUCH\r\nb NOOP\r\n"), (1, 1));
        assert_eq!(view().messages.len(), 1_000);
    }
}
