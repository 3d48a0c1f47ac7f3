//! What the server says: every way a command can fail ([`ImapError`]), the one place
//! such a failure becomes a response ([`response_for`]), and the untagged lines that
//! commands answer with (capabilities, SELECT's mailbox state, STATUS, SEARCH, the
//! updates of a view). Kept pure so that the exact bytes a client sees are tested here,
//! apart from sockets.
//!
//! RFC 3501 §7 (server responses), RFC 5530 (response codes), RFC 7888 (TOOBIG).
//! Depends only on std, imap-codec's STATUS item type and the sibling pure modules.

use std::io;

use imap_codec::imap_types::status::StatusDataItemName;

use super::list::PatternTooLong;
use super::view::{SetError, Update, View};
use super::wire::{flag_list, mailbox_to_wire, sanitize, string, uid_set};
use super::{Flag, No, Snapshot};
pub(crate) use crate::listen::Flow;

/// What is offered in every state; STARTTLS and AUTH= are added before login.
pub(crate) const AUTHENTICATED_CAPABILITIES: &str =
    "IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS MOVE SPECIAL-USE NAMESPACE ID ENABLE UNSELECT CHILDREN CONDSTORE QRESYNC";

/// Everything that ends a command other than success.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImapError {
    #[error("{0}")]
    Syntax(String),
    #[error("{command} is not valid now: {why}")]
    WrongState { command: &'static str, why: &'static str },
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    #[error("refused: {0}")]
    No(No),
    #[error("authentication failed")]
    AuthFailed,
    #[error("too many failed authentication attempts")]
    TooManyAuthFailures,
    #[error("authentication cancelled")]
    AuthCancelled,
    #[error("authentication needs TLS here")]
    PrivacyRequired,
    #[error("unsupported authentication mechanism")]
    UnsupportedMechanism,
    #[error("unsupported charset")]
    BadCharset,
    #[error("the mailbox is read-only")]
    ReadOnly,
    #[error(transparent)]
    Set(#[from] SetError),
    #[error(transparent)]
    Pattern(#[from] PatternTooLong),
    #[error("a literal of {0} octets is over the limit")]
    LiteralTooBig(u32),
    #[error("a non-synchronizing literal of {0} octets is over the limit")]
    NonSyncLiteralTooBig(u32),
    #[error("too many errors")]
    TooManyErrors,
    /// The stream failed while a command ran (writing a long FETCH, reading a SASL
    /// response or DONE): the connection ends without another word.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<No> for ImapError {
    fn from(no: No) -> Self {
        ImapError::No(no)
    }
}

impl ImapError {
    /// Client mistakes, which count towards closing a connection that keeps making them.
    pub(crate) fn counts_as_error(&self) -> bool {
        matches!(
            self,
            ImapError::Syntax(_)
                | ImapError::WrongState { .. }
                | ImapError::Unsupported(_)
                | ImapError::Set(_)
                | ImapError::Pattern(_)
        )
    }
}

/// The one place where errors become responses, and whether the connection goes on.
/// `tag` is `None` when the command's tag could not be read; `limit` is the literal
/// size limit TOOBIG names.
pub(crate) fn response_for(tag: Option<&str>, error: &ImapError, limit: u32) -> (String, Flow) {
    use ImapError as E;
    let tag = tag.unwrap_or("*");
    let bad = |text: String| (format!("{tag} BAD {text}\r\n"), Flow::Continue);
    let no = |text: String| (format!("{tag} NO {text}\r\n"), Flow::Continue);
    match error {
        E::Syntax(why) => bad(format!("[CLIENTBUG] {}", sanitize(why))),
        E::WrongState { command, why } => bad(format!("{command} is not valid in this state: {why}")),
        E::Unsupported(command) => bad(format!("{command} is not supported")),
        E::No(refusal) => no(sanitize(&refusal.to_string())),
        E::AuthFailed => no("[AUTHENTICATIONFAILED] authentication failed".into()),
        E::TooManyAuthFailures => (
            format!("{tag} NO [AUTHENTICATIONFAILED] authentication failed\r\n* BYE too many failed attempts\r\n"),
            Flow::Close,
        ),
        E::AuthCancelled => bad("authentication cancelled".into()),
        E::PrivacyRequired => no("[PRIVACYREQUIRED] use STARTTLS before logging in".into()),
        E::UnsupportedMechanism => no("unsupported authentication mechanism; use PLAIN".into()),
        E::BadCharset => no("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into()),
        E::ReadOnly => no("the mailbox is read-only (opened with EXAMINE)".into()),
        E::Set(why) => bad(format!("invalid sequence set: {why}")),
        E::Pattern(why) => bad(why.to_string()),
        E::LiteralTooBig(_) => no(format!("[TOOBIG] literals are limited to {limit} octets")),
        E::NonSyncLiteralTooBig(_) => (
            format!(
                "{tag} BAD [TOOBIG] literals are limited to {limit} octets\r\n* BYE cannot read past the literal\r\n"
            ),
            Flow::Close,
        ),
        E::TooManyErrors => ("* BYE too many errors\r\n".into(), Flow::Close),
        E::Io(_) => (String::new(), Flow::Close),
    }
}

/// The capability list for a connection: before login it adds STARTTLS when offered
/// and AUTH=PLAIN, or LOGINDISABLED when logging in needs TLS first.
pub(crate) fn capabilities(logged_in: bool, starttls_offered: bool, auth_allowed: bool) -> String {
    let mut caps = String::from(AUTHENTICATED_CAPABILITIES);
    if !logged_in {
        if starttls_offered {
            caps.push_str(" STARTTLS");
        }
        caps.push_str(if auth_allowed { " AUTH=PLAIN" } else { " LOGINDISABLED" });
    }
    caps
}

/// The untagged lines of a successful SELECT or EXAMINE (RFC 3501 §6.3.1): FLAGS,
/// PERMANENTFLAGS, EXISTS, RECENT, UNSEEN when a message is unseen, UIDVALIDITY and
/// UIDNEXT, and HIGHESTMODSEQ (RFC 7162 §3.1.2.1: with every SELECT, since modseqs are
/// kept). Keywords in use are listed as flags; EXAMINE permits none.
pub(crate) fn select(out: &mut Vec<u8>, view: &View) {
    mailbox_flags(out, &view.keywords, view.read_only);
    out.extend_from_slice(format!("* {} EXISTS\r\n* {} RECENT\r\n", view.exists(), view.recent()).as_bytes());
    if let Some(seq) = view.first_unseen() {
        out.extend_from_slice(format!("* OK [UNSEEN {seq}] first unseen\r\n").as_bytes());
    }
    out.extend_from_slice(format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", view.uid_validity).as_bytes());
    out.extend_from_slice(format!("* OK [UIDNEXT {}] predicted next UID\r\n", view.uid_next).as_bytes());
    out.extend_from_slice(format!("* OK [HIGHESTMODSEQ {}] modseqs kept\r\n", view.highest_modseq).as_bytes());
}

/// `* FLAGS` with the system flags and `keywords`, then PERMANENTFLAGS: the same and
/// `\\*` (any new keyword may be stored), or none when the mailbox is read-only.
fn mailbox_flags(out: &mut Vec<u8>, keywords: &[String], read_only: bool) {
    let keywords: String = keywords.iter().map(|k| format!(" {k}")).collect();
    out.extend_from_slice(format!("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords})\r\n").as_bytes());
    if read_only {
        out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] read-only\r\n");
    } else {
        out.extend_from_slice(
            format!(
                "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords} \\*)] flags permitted\r\n"
            )
            .as_bytes(),
        );
    }
}

/// `* STATUS` for `name` with the items asked for, in the order asked (RFC 3501
/// §7.2.4); `recent` is the count of messages no session has seen yet.
pub(crate) fn status(out: &mut Vec<u8>, name: &str, items: &[StatusDataItemName], snapshot: &Snapshot, recent: u32) {
    let mut values = Vec::new();
    for item in items {
        let value = match item {
            StatusDataItemName::Messages => format!("MESSAGES {}", snapshot.messages.len()),
            StatusDataItemName::Recent => format!("RECENT {recent}"),
            StatusDataItemName::UidNext => format!("UIDNEXT {}", snapshot.uid_next),
            StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", snapshot.uid_validity),
            StatusDataItemName::HighestModSeq => format!("HIGHESTMODSEQ {}", snapshot.highest_modseq),
            StatusDataItemName::Unseen => {
                format!("UNSEEN {}", snapshot.messages.iter().filter(|m| !m.flags.contains(&Flag::Seen)).count())
            }
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        values.push(value);
    }
    out.extend_from_slice(b"* STATUS ");
    string(out, mailbox_to_wire(name).as_bytes());
    out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
}

/// `* VANISHED (EARLIER) uids` (RFC 7162 §3.2.10): messages expunged before this
/// command, for a client resynchronising; nothing when there are none.
pub(crate) fn vanished_earlier(out: &mut Vec<u8>, uids: &[u32]) {
    if !uids.is_empty() {
        out.extend_from_slice(format!("* VANISHED (EARLIER) {}\r\n", uid_set(uids)).as_bytes());
    }
}

/// `* SEARCH … (MODSEQ m)` when the criteria named MODSEQ (RFC 7162 §3.1.5): the
/// highest modseq of the messages found.
pub(crate) fn search_modseq(out: &mut Vec<u8>, found: &[u32], modseq: Option<u64>) {
    search(out, found);
    if let (Some(modseq), false) = (modseq, found.is_empty()) {
        out.truncate(out.len() - 2);
        out.extend_from_slice(format!(" (MODSEQ {modseq})\r\n").as_bytes());
    }
}

/// `* SEARCH` with the sequence numbers or UIDs found.
pub(crate) fn search(out: &mut Vec<u8>, found: &[u32]) {
    let mut line = String::from("* SEARCH");
    for n in found {
        line.push_str(&format!(" {n}"));
    }
    line.push_str("\r\n");
    out.extend_from_slice(line.as_bytes());
}

/// A message's flags as STORE reports them: `* seq FETCH ([UID uid ]FLAGS (...)[ MODSEQ (m)])`,
/// the modseq once CONDSTORE is on (RFC 7162 §3.1.3).
pub(crate) fn fetch_flags(
    out: &mut Vec<u8>,
    seq: usize,
    uid: Option<u32>,
    flags: &[Flag],
    recent: bool,
    modseq: Option<u64>,
) {
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    if let Some(uid) = uid {
        out.extend_from_slice(format!("UID {uid} ").as_bytes());
    }
    out.extend_from_slice(b"FLAGS ");
    flag_list(out, flags, recent);
    if let Some(modseq) = modseq {
        out.extend_from_slice(format!(" MODSEQ ({modseq})").as_bytes());
    }
    out.extend_from_slice(b")\r\n");
}

/// The unsolicited responses that bring a client's view up to date.
pub(crate) fn updates(out: &mut Vec<u8>, updates: &[Update]) {
    for update in updates {
        match update {
            Update::Expunge(seq) => out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes()),
            Update::Vanished(uids) => out.extend_from_slice(format!("* VANISHED {}\r\n", uid_set(uids)).as_bytes()),
            Update::Exists(n) => out.extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes()),
            Update::Recent(n) => out.extend_from_slice(format!("* {n} RECENT\r\n").as_bytes()),
            Update::Keywords { keywords, read_only } => mailbox_flags(out, keywords, *read_only),
            Update::Flags { seq, uid, flags, recent, modseq } => {
                out.extend_from_slice(format!("* {seq} FETCH (UID {uid} FLAGS ").as_bytes());
                flag_list(out, flags, *recent);
                if let Some(modseq) = modseq {
                    out.extend_from_slice(format!(" MODSEQ ({modseq})").as_bytes());
                }
                out.extend_from_slice(b")\r\n");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::{MessageMeta, NoCode};

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    fn snapshot() -> Snapshot {
        let meta = |uid, flags| MessageMeta { uid, flags, internal_date: 0, size: 10, modseq: 3 };
        Snapshot {
            uid_validity: 7,
            highest_modseq: 12,
            uid_next: 4,
            messages: vec![
                meta(1, vec![Flag::Seen, Flag::Keyword("$Label1".into())]),
                meta(2, vec![Flag::Keyword("$Label1".into()), Flag::Keyword("$Forwarded".into())]),
                meta(3, vec![Flag::Seen]),
            ],
        }
    }

    #[test]
    fn errors_map_to_responses() {
        let (text, flow) = response_for(Some("a1"), &ImapError::Syntax("bad\r\nthing".into()), 10);
        assert_eq!((text.as_str(), flow), ("a1 BAD [CLIENTBUG] bad  thing\r\n", Flow::Continue));
        let (text, _) = response_for(Some("a2"), &ImapError::No(No::with_code(NoCode::TryCreate, "no")), 10);
        assert_eq!(text, "a2 NO [TRYCREATE] no\r\n");
        let (text, flow) = response_for(Some("a3"), &ImapError::NonSyncLiteralTooBig(99), 10);
        assert!(text.starts_with("a3 BAD [TOOBIG]") && text.ends_with("* BYE cannot read past the literal\r\n"));
        assert_eq!(flow, Flow::Close);
        let (text, flow) = response_for(Some("a4"), &ImapError::LiteralTooBig(99), 10);
        assert_eq!((text.as_str(), flow), ("a4 NO [TOOBIG] literals are limited to 10 octets\r\n", Flow::Continue));
        let (text, _) = response_for(None, &ImapError::Syntax("x".into()), 10);
        assert_eq!(text, "* BAD [CLIENTBUG] x\r\n");
        assert_eq!(response_for(Some("t"), &ImapError::TooManyAuthFailures, 1).1, Flow::Close);
        let io = ImapError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "gone"));
        assert_eq!(response_for(Some("t"), &io, 1), (String::new(), Flow::Close));
    }

    #[test]
    fn capabilities_before_and_after_login() {
        let caps = capabilities(false, true, false);
        assert!(
            caps.starts_with("IMAP4rev1 LITERAL+")
                && caps.ends_with(" CHILDREN CONDSTORE QRESYNC STARTTLS LOGINDISABLED")
        );
        assert!(capabilities(false, false, true).ends_with(" QRESYNC AUTH=PLAIN"));
        assert_eq!(capabilities(true, true, true), AUTHENTICATED_CAPABILITIES);
    }

    #[test]
    fn select_shows_the_mailbox_state() {
        let view = View::new("INBOX".into(), false, snapshot(), 2);
        assert_eq!(
            text(|out| select(out, &view)),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $Forwarded)\r\n\
             * OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 $Forwarded \\*)] flags permitted\r\n\
             * 3 EXISTS\r\n* 1 RECENT\r\n\
             * OK [UNSEEN 2] first unseen\r\n\
             * OK [UIDVALIDITY 7] UIDs valid\r\n\
             * OK [UIDNEXT 4] predicted next UID\r\n\
             * OK [HIGHESTMODSEQ 12] modseqs kept\r\n"
        );
        let mut seen = snapshot();
        seen.messages.truncate(1);
        let view = View::new("Archive".into(), true, seen, 1);
        assert_eq!(
            text(|out| select(out, &view)),
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n\
             * OK [PERMANENTFLAGS ()] read-only\r\n\
             * 1 EXISTS\r\n* 0 RECENT\r\n\
             * OK [UIDVALIDITY 7] UIDs valid\r\n\
             * OK [UIDNEXT 4] predicted next UID\r\n\
             * OK [HIGHESTMODSEQ 12] modseqs kept\r\n"
        );
    }

    #[test]
    fn status_lists_the_items_asked_for() {
        use StatusDataItemName as I;
        let items = [I::UidNext, I::Messages, I::Unseen, I::Recent, I::UidValidity, I::HighestModSeq];
        assert_eq!(
            text(|out| status(out, "Entwürfe", &items, &snapshot(), 2)),
            "* STATUS \"Entw&APw-rfe\" (UIDNEXT 4 MESSAGES 3 UNSEEN 1 RECENT 2 UIDVALIDITY 7 HIGHESTMODSEQ 12)\r\n"
        );
        assert_eq!(text(|out| status(out, "My Box", &[], &snapshot(), 0)), "* STATUS \"My Box\" ()\r\n");
    }

    #[test]
    fn search_store_and_update_lines() {
        assert_eq!(text(|out| search(out, &[])), "* SEARCH\r\n");
        assert_eq!(text(|out| search(out, &[2, 5])), "* SEARCH 2 5\r\n");
        assert_eq!(text(|out| fetch_flags(out, 3, None, &[Flag::Seen], false, None)), "* 3 FETCH (FLAGS (\\Seen))\r\n");
        assert_eq!(
            text(|out| fetch_flags(out, 1, Some(9), &[], true, Some(40))),
            "* 1 FETCH (UID 9 FLAGS (\\Recent) MODSEQ (40))\r\n"
        );
        let all = [
            Update::Expunge(2),
            Update::Exists(4),
            Update::Recent(1),
            Update::Flags { seq: 1, uid: 5, flags: vec![Flag::Flagged], recent: false, modseq: None },
            Update::Vanished(vec![3, 4, 5, 9]),
            Update::Flags { seq: 1, uid: 5, flags: vec![], recent: false, modseq: Some(77) },
        ];
        assert_eq!(
            text(|out| updates(out, &all)),
            "* 2 EXPUNGE\r\n* 4 EXISTS\r\n* 1 RECENT\r\n* 1 FETCH (UID 5 FLAGS (\\Flagged))\r\n\
             * VANISHED 3:5,9\r\n* 1 FETCH (UID 5 FLAGS () MODSEQ (77))\r\n"
        );
    }
}
