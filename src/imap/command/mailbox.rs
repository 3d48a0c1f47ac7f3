//! Commands valid once logged in (RFC 3501 §6.3, with RFC 2342 NAMESPACE and RFC 5161
//! ENABLE): opening a mailbox, managing mailboxes and subscriptions, listing them, their
//! status, and APPEND. The handlers work on the account the login gave; INBOX's rules
//! (it always exists, cannot be deleted or renamed onto) are kept here, before the
//! backend is asked.

use imap_codec::imap_types::command::{CommandBody, SelectParameter};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag as WireFlag;
use imap_codec::imap_types::status::StatusDataItemName;

use super::{convert_flags, list_pattern, list_reference, mailbox_name, Authenticated, Outcome};
use crate::imap::condstore;
use crate::imap::flow::Transition;
use crate::imap::response::{self, ImapError};
use crate::imap::view::View;
use crate::imap::{list, MailStore, No, NoCode};

type Done<S> = Result<Outcome<<S as MailStore>::Account>, ImapError>;

/// The commands of the authenticated state (IDLE apart).
pub(super) async fn handle<S: MailStore>(cx: Authenticated<'_, S>, body: CommandBody<'static>) -> Done<S> {
    type C<'a> = CommandBody<'a>;
    match body {
        C::Select { mailbox, parameters } => select(cx, mailbox_name(&mailbox), false, &parameters).await,
        C::Examine { mailbox, parameters } => select(cx, mailbox_name(&mailbox), true, &parameters).await,
        C::Create { mailbox } => create(cx, mailbox_name(&mailbox)).await,
        C::Delete { mailbox } => delete(cx, mailbox_name(&mailbox)).await,
        C::Rename { from, to } => rename(cx, mailbox_name(&from), mailbox_name(&to)).await,
        C::Subscribe { mailbox } => subscribe(cx, mailbox_name(&mailbox), true).await,
        C::Unsubscribe { mailbox } => subscribe(cx, mailbox_name(&mailbox), false).await,
        C::List { reference, mailbox_wildcard } => {
            list(cx, list_reference(&reference), list_pattern(&mailbox_wildcard), false).await
        }
        C::Lsub { reference, mailbox_wildcard } => {
            list(cx, list_reference(&reference), list_pattern(&mailbox_wildcard), true).await
        }
        C::Status { mailbox, item_names } => status(cx, mailbox_name(&mailbox), &item_names).await,
        C::Append { mailbox, flags, date, message } => {
            let data = match message {
                LiteralOrLiteral8::Literal(literal) => literal.into_inner().into_owned(),
                LiteralOrLiteral8::Literal8(literal) => literal.data.into_owned(),
            };
            let date = date.map(|d| d.as_ref().timestamp());
            append(cx, mailbox_name(&mailbox), &flags, date, data).await
        }
        C::Enable { capabilities } => {
            // CONDSTORE and QRESYNC are the ENABLE-able extensions offered (RFC 5161 §3.1).
            let newly = cx.enabled.enable(capabilities.as_ref());
            let names: String = newly.iter().map(|n| format!(" {n}")).collect();
            cx.out.extend_from_slice(format!("* ENABLED{names}\r\n").as_bytes());
            Ok(Outcome::ok("ENABLE completed"))
        }
        C::Namespace => {
            cx.out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
            Ok(Outcome::ok("NAMESPACE completed"))
        }
        other => Err(ImapError::Unsupported(other.name())),
    }
}

/// SELECT, or EXAMINE when `read_only`: the mailbox's state, and the view that the
/// transition makes the selected one. With `(QRESYNC (…))` and the client's
/// UIDVALIDITY still valid, what changed since its modseq follows (RFC 7162 §3.2.5).
async fn select<S: MailStore>(
    cx: Authenticated<'_, S>,
    name: String,
    read_only: bool,
    parameters: &[SelectParameter],
) -> Done<S> {
    let resync = condstore::select_parameters(parameters, cx.enabled)?;
    let snapshot = cx.shared.store.snapshot(cx.account, &name, true).await?;
    let highest = snapshot.messages.last().map_or(0, |m| m.uid);
    // EXAMINE must not take \Recent from other sessions (RFC 3501 §6.3.2).
    let claims = cx.shared.store.recent(cx.account);
    let recent_above = claims.claim(&name, snapshot.uid_validity, if read_only { 0 } else { highest });
    if !read_only && highest > recent_above {
        cx.shared.store.keep_recent(cx.account, &name, highest).await;
    }
    let mut view = View::new(name, read_only, snapshot, recent_above);
    (view.condstore, view.qresync) = (cx.enabled.condstore, cx.enabled.qresync);
    response::select(cx.out, &view);
    if let Some(resync) = resync.filter(|r| r.uid_validity == view.uid_validity) {
        let expunged = cx.shared.store.vanished(cx.account, &view.mailbox, resync.modseq).await?;
        response::vanished_earlier(cx.out, &condstore::in_known(expunged, resync.known_uids.as_ref()));
        for (index, m) in view.messages.iter().enumerate().filter(|(_, m)| m.modseq > resync.modseq) {
            response::fetch_flags(cx.out, index + 1, Some(m.uid), &m.flags, m.recent, Some(m.modseq));
        }
    }
    let text = if read_only { "[READ-ONLY] EXAMINE completed" } else { "[READ-WRITE] SELECT completed" };
    Ok(Outcome::ok(text).with(Transition::Select(view)))
}

async fn create<S: MailStore>(cx: Authenticated<'_, S>, name: String) -> Done<S> {
    let name = name.trim_end_matches(list::DELIMITER).to_string();
    if name == "INBOX" {
        return Err(ImapError::No(No::with_code(NoCode::AlreadyExists, "INBOX always exists")));
    }
    if name.is_empty() {
        return Err(ImapError::Syntax("empty mailbox name".into()));
    }
    cx.shared.store.create_mailbox(cx.account, &name).await?;
    Ok(Outcome::ok("CREATE completed"))
}

async fn delete<S: MailStore>(cx: Authenticated<'_, S>, name: String) -> Done<S> {
    if name == "INBOX" {
        return Err(ImapError::No(No::with_code(NoCode::Cannot, "INBOX cannot be deleted")));
    }
    cx.shared.store.delete_mailbox(cx.account, &name).await?;
    Ok(Outcome::ok("DELETE completed"))
}

async fn rename<S: MailStore>(cx: Authenticated<'_, S>, from: String, to: String) -> Done<S> {
    if to == "INBOX" {
        return Err(ImapError::No(No::with_code(NoCode::AlreadyExists, "INBOX already exists")));
    }
    cx.shared.store.rename_mailbox(cx.account, &from, to.trim_end_matches(list::DELIMITER)).await?;
    Ok(Outcome::ok("RENAME completed"))
}

async fn subscribe<S: MailStore>(cx: Authenticated<'_, S>, name: String, subscribed: bool) -> Done<S> {
    cx.shared.store.set_subscribed(cx.account, &name, subscribed).await?;
    Ok(Outcome::ok(if subscribed { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }))
}

/// LIST, or LSUB when `lsub`; an empty pattern asks only for the delimiter.
async fn list<S: MailStore>(cx: Authenticated<'_, S>, reference: String, pattern: String, lsub: bool) -> Done<S> {
    let mailboxes = if pattern.is_empty() { Vec::new() } else { cx.shared.store.list_mailboxes(cx.account).await? };
    for line in list::list(&mailboxes, &reference, &pattern, lsub)? {
        cx.out.extend_from_slice(&line);
    }
    Ok(Outcome::ok(if lsub { "LSUB completed" } else { "LIST completed" }))
}

/// STATUS, after a sync; RECENT counts what no session has seen, claiming nothing.
async fn status<S: MailStore>(cx: Authenticated<'_, S>, name: String, items: &[StatusDataItemName]) -> Done<S> {
    // Asking for HIGHESTMODSEQ turns CONDSTORE on (RFC 7162 §3.1).
    cx.enabled.condstore |= items.contains(&StatusDataItemName::HighestModSeq);
    let snapshot = cx.shared.store.snapshot(cx.account, &name, true).await?;
    let claims = cx.shared.store.recent(cx.account);
    let recent = claims.unclaimed(&name, snapshot.uid_validity, snapshot.messages.iter().map(|m| m.uid));
    response::status(cx.out, &name, items, &snapshot, recent);
    Ok(Outcome::ok("STATUS completed"))
}

async fn append<S: MailStore>(
    cx: Authenticated<'_, S>,
    name: String,
    flags: &[WireFlag<'_>],
    date: Option<i64>,
    message: Vec<u8>,
) -> Done<S> {
    let flags = convert_flags(flags)?;
    let (validity, uid) = cx.shared.store.append(cx.account, &name, &flags, date, message).await?;
    Ok(Outcome::ok(format!("[APPENDUID {validity} {uid}] APPEND completed")))
}
