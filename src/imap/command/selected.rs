//! Commands valid with a mailbox selected (RFC 3501 §6.4, with RFC 4315 UID EXPUNGE
//! and COPYUID, RFC 6851 MOVE, RFC 3691 UNSELECT): reading, searching, flagging,
//! copying and removing messages of the selected mailbox. The handlers work on the
//! session's view of it, so sequence numbers are those the client was told; an
//! EXAMINEd mailbox refuses every change. RFC 7162: FETCH … (CHANGEDSINCE n [VANISHED]),
//! the MODSEQ item, STORE … (UNCHANGEDSINCE n) with MODIFIED and SEARCH MODSEQ, each
//! turning CONDSTORE on for the session (`condstore.rs` decides, the view keeps it).

use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::flag::{Flag as WireFlag, StoreResponse, StoreType};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use tokio::io::AsyncWrite;

use std::collections::HashMap;

use super::{convert_flags, mailbox_name, Outcome, Selected};
use crate::imap::condstore;
use crate::imap::connection::flush;
use crate::imap::flow::Transition;
use crate::imap::response::{self, ImapError};
use crate::imap::view::View;
use crate::imap::wire::uid_set;
use crate::imap::NoCode;
use crate::imap::{fetch as fetching, search as searching, Flag, FlagOp, MailStore};

/// Output is written out once it grows past this (long FETCH responses).
const FLUSH_AT: usize = 256 * 1024;

type Done<S> = Result<Outcome<<S as MailStore>::Account>, ImapError>;

/// The commands of the selected state; `io` is where a long FETCH writes as it goes.
pub(super) async fn handle<IO, S>(cx: Selected<'_, S>, io: &mut IO, body: CommandBody<'static>) -> Done<S>
where
    IO: AsyncWrite + Unpin,
    S: MailStore,
{
    type C<'a> = CommandBody<'a>;
    match body {
        C::Check => Ok(Outcome::ok("CHECK completed")),
        C::Close => Ok(close(cx).await),
        C::Unselect => Ok(Outcome::ok("UNSELECT completed").with(Transition::Unselect)),
        C::Expunge => expunge(cx, None).await,
        C::ExpungeUid { sequence_set } => expunge(cx, Some(&sequence_set)).await,
        C::Search { charset, criteria, uid } => {
            let key = search_key(charset, criteria.into_inner())?;
            cx.view.condstore |= searching::names_modseq(&key);
            Ok(search(cx, &key, uid).await)
        }
        C::Fetch { sequence_set, macro_or_item_names, uid, modifiers } => {
            let (changed_since, vanished) = condstore::fetch_modifiers(&modifiers, uid, cx.view)?;
            let mut items = fetching::items(&macro_or_item_names, uid);
            if changed_since.is_some() && !items.contains(&fetching::Item::ModSeq) {
                items.push(fetching::Item::ModSeq);
            }
            cx.view.condstore |= items.contains(&fetching::Item::ModSeq);
            let only = Only { changed_since, vanished };
            fetch(cx, io, &sequence_set, &items, uid, only).await
        }
        C::Store { sequence_set, kind, response, flags, uid, modifiers } => {
            let op = match kind {
                StoreType::Add => FlagOp::Add,
                StoreType::Remove => FlagOp::Remove,
                StoreType::Replace => FlagOp::Replace,
            };
            let unchanged_since = condstore::unchanged_since(&modifiers);
            cx.view.condstore |= unchanged_since.is_some();
            let how = How { op, silent: response == StoreResponse::Silent, uid, unchanged_since };
            store(cx, &sequence_set, &flags, how).await
        }
        C::Copy { sequence_set, mailbox, uid } => copy(cx, &sequence_set, mailbox_name(&mailbox), uid, false).await,
        C::Move { sequence_set, mailbox, uid } => copy(cx, &sequence_set, mailbox_name(&mailbox), uid, true).await,
        other => Err(ImapError::Unsupported(other.name())),
    }
}

/// The view, when it may be changed (SELECTed, not EXAMINEd).
fn writable(view: &View) -> Result<&View, ImapError> {
    if view.read_only {
        return Err(ImapError::ReadOnly);
    }
    Ok(view)
}

/// Records flags the backend reports as changed in the view, announcing any new
/// keyword (an untagged FLAGS) before a FETCH shows it.
fn apply_flags(view: &mut View, changed: &[(u32, Vec<Flag>)], out: &mut Vec<u8>) {
    for (uid, flags) in changed {
        if let Some(update) = view.set_flags(*uid, flags) {
            response::updates(out, &[update]);
        }
    }
}

/// CLOSE expunges silently (RFC 3501 §6.4.2), unless the mailbox was EXAMINEd.
async fn close<S: MailStore>(cx: Selected<'_, S>) -> Outcome<S::Account> {
    if !cx.view.read_only {
        if let Err(no) = cx.shared.store.expunge(cx.account, &cx.view.mailbox, None).await {
            tracing::debug!(refusal = %no, "expunge on CLOSE failed");
        }
    }
    Outcome::ok("CLOSE completed").with(Transition::Unselect)
}

async fn expunge<S: MailStore>(cx: Selected<'_, S>, set: Option<&SequenceSet>) -> Done<S> {
    let view = writable(cx.view)?;
    let uids: Option<Vec<u32>> = match set {
        Some(set) => Some(view.resolve(set, true)?.into_iter().map(|i| view.messages[i].uid).collect()),
        None => None,
    };
    let removed = cx.shared.store.expunge(cx.account, &view.mailbox, uids.as_deref()).await?;
    let updates = cx.view.remove(&removed);
    response::updates(cx.out, &updates);
    Ok(Outcome::ok("EXPUNGE completed"))
}

/// The SEARCH criteria as one key, once the charset is known to be one we read.
fn search_key(charset: Option<Charset<'_>>, keys: Vec<SearchKey<'static>>) -> Result<SearchKey<'static>, ImapError> {
    let charset = charset.map(|c| c.as_ref().to_ascii_uppercase());
    if charset.as_deref().is_some_and(|c| c != "UTF-8" && c != "US-ASCII") {
        return Err(ImapError::BadCharset);
    }
    searching::one_key(keys)
}

async fn search<S: MailStore>(cx: Selected<'_, S>, key: &SearchKey<'_>, uid: bool) -> Outcome<S::Account> {
    let view = &*cx.view;
    let need = searching::needs_content(key);
    let mut found = Vec::new();
    let mut highest = 0;
    let (largest_seq, largest_uid) = (view.exists(), view.highest_uid());
    for (index, known) in view.messages.iter().enumerate() {
        let content = if need {
            match cx.shared.store.message(cx.account, &view.mailbox, known.uid).await {
                Ok(bytes) => Some(searching::Content::new(&bytes)),
                Err(_) => continue,
            }
        } else {
            None
        };
        let seq = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let candidate = searching::Candidate { seq, known, content: content.as_ref(), largest_seq, largest_uid };
        if searching::matches(key, &candidate) {
            found.push(if uid { known.uid } else { seq });
            highest = highest.max(known.modseq);
        }
    }
    response::search_modseq(cx.out, &found, searching::names_modseq(key).then_some(highest));
    Outcome::ok(if uid { "UID SEARCH completed" } else { "SEARCH completed" })
}

/// FETCH's CONDSTORE/QRESYNC modifiers: only messages changed after a modseq, and the
/// UIDs of the set expunged after it first.
struct Only {
    changed_since: Option<u64>,
    vanished: bool,
}

/// FETCH: a body fetch without PEEK sets \Seen first, so FLAGS shows it; messages the
/// backend no longer has are left out and reported after the others.
async fn fetch<IO, S>(
    cx: Selected<'_, S>,
    io: &mut IO,
    set: &SequenceSet,
    items: &[fetching::Item],
    uid: bool,
    only: Only,
) -> Done<S>
where
    IO: AsyncWrite + Unpin,
    S: MailStore,
{
    let done = Outcome::ok(if uid { "UID FETCH completed" } else { "FETCH completed" });
    let mut indices = cx.view.resolve(set, uid)?;
    if let Some(since) = only.changed_since {
        indices = condstore::changed_after(cx.view, indices, since);
        if only.vanished {
            let expunged = cx.shared.store.vanished(cx.account, &cx.view.mailbox, since).await?;
            response::vanished_earlier(cx.out, &condstore::in_known(expunged, Some(set)));
        }
    }
    if fetching::sets_seen(items) && !cx.view.read_only {
        let unseen: Vec<u32> = indices
            .iter()
            .map(|&i| &cx.view.messages[i])
            .filter(|m| !m.flags.contains(&Flag::Seen))
            .map(|m| m.uid)
            .collect();
        if !unseen.is_empty() {
            let changed =
                cx.shared.store.store_flags(cx.account, &cx.view.mailbox, &unseen, FlagOp::Add, &[Flag::Seen]).await?;
            apply_flags(cx.view, &changed, cx.out);
        }
    }
    let need = fetching::needs_content(items);
    let (mut gone, mut failed) = (false, None);
    for index in indices {
        let Some(known) = cx.view.messages.get(index) else { continue };
        let content = if need {
            match cx.shared.store.message(cx.account, &cx.view.mailbox, known.uid).await {
                Ok(bytes) => Some(bytes),
                Err(no) => {
                    tracing::debug!(uid = known.uid, refusal = %no, "message could not be fetched");
                    if no.code == Some(NoCode::ExpungeIssued) {
                        gone = true;
                    } else {
                        failed.get_or_insert(no);
                    }
                    continue;
                }
            }
        } else {
            None
        };
        let seq = u32::try_from(index + 1).unwrap_or(u32::MAX);
        fetching::render(cx.out, seq, known, content.as_deref(), items);
        if cx.out.len() >= FLUSH_AT {
            flush(io, cx.out).await?;
        }
    }
    match failed {
        Some(no) => Err(ImapError::No(no)),
        // RFC 5530: another session expunged some of them; the rest were sent, and the
        // client learns which went at its next NOOP, as from Dovecot.
        None if gone => Ok(Outcome::ok(
            "[EXPUNGEISSUED] some of the requested messages were expunged by another session; NOOP shows which",
        )),
        None => Ok(done),
    }
}

/// How a STORE changes flags.
struct How {
    op: FlagOp,
    silent: bool,
    uid: bool,
    /// UNCHANGEDSINCE (RFC 7162 §3.1.3): only messages not changed after this modseq.
    unchanged_since: Option<u64>,
}

/// STORE; with UNCHANGEDSINCE, messages changed since are left alone and named in
/// `[MODIFIED …]`, and every stored message is reported with its new MODSEQ.
async fn store<S: MailStore>(cx: Selected<'_, S>, set: &SequenceSet, flags: &[WireFlag<'_>], how: How) -> Done<S> {
    let flags = convert_flags(flags)?;
    let view = writable(cx.view)?;
    let mut indices = view.resolve(set, how.uid)?;
    let mut modified = Vec::new();
    if let Some(since) = how.unchanged_since {
        let now = current_modseqs(&cx).await?;
        (indices, modified) = condstore::split_unchanged(view, indices, since, &|uid| now.get(&uid).copied());
    }
    let uids: Vec<u32> = indices.iter().map(|&i| view.messages[i].uid).collect();
    if !uids.is_empty() {
        let changed = cx.shared.store.store_flags(cx.account, &view.mailbox, &uids, how.op, &flags).await?;
        apply_flags(cx.view, &changed, cx.out);
        if cx.view.condstore {
            for (uid, modseq) in current_modseqs(&cx).await? {
                if uids.contains(&uid) {
                    cx.view.set_modseq(uid, modseq);
                }
            }
        }
    }
    if !how.silent || how.unchanged_since.is_some() {
        for index in indices {
            let Some(m) = cx.view.messages.get(index) else { continue };
            let modseq = cx.view.condstore.then_some(m.modseq);
            response::fetch_flags(cx.out, index + 1, how.uid.then_some(m.uid), &m.flags, m.recent, modseq);
        }
    }
    let done = if how.uid { "UID STORE completed" } else { "STORE completed" };
    if modified.is_empty() {
        return Ok(Outcome::ok(done));
    }
    let named: Vec<u32> = modified
        .iter()
        .map(|&i| if how.uid { cx.view.messages[i].uid } else { u32::try_from(i + 1).unwrap_or(u32::MAX) })
        .collect();
    Ok(Outcome::ok(format!("[MODIFIED {}] {done}; some messages changed since and were left alone", uid_set(&named))))
}

/// The modseq of each message of the selected mailbox as the backend has it now.
async fn current_modseqs<S: MailStore>(cx: &Selected<'_, S>) -> Result<HashMap<u32, u64>, ImapError> {
    let snapshot = cx.shared.store.snapshot(cx.account, &cx.view.mailbox, false).await?;
    Ok(snapshot.messages.iter().map(|m| (m.uid, m.modseq)).collect())
}

/// COPY, or MOVE when `remove`: COPYUID in the tagged OK, or for MOVE in an untagged
/// OK before the EXPUNGEs (RFC 6851 §4.3).
async fn copy<S: MailStore>(
    cx: Selected<'_, S>,
    set: &SequenceSet,
    target: String,
    uid: bool,
    remove: bool,
) -> Done<S> {
    let view = if remove { writable(cx.view)? } else { &*cx.view };
    let uids: Vec<u32> = view.resolve(set, uid)?.into_iter().map(|i| view.messages[i].uid).collect();
    let what = match (uid, remove) {
        (false, false) => "COPY",
        (true, false) => "UID COPY",
        (false, true) => "MOVE",
        (true, true) => "UID MOVE",
    };
    if uids.is_empty() {
        return Ok(Outcome::ok(format!("{what} completed (no messages)")));
    }
    let copied = cx.shared.store.copy(cx.account, &view.mailbox, &uids, &target, remove).await?;
    let sources: Vec<u32> = copied.uids.iter().map(|p| p.0).collect();
    let targets: Vec<u32> = copied.uids.iter().map(|p| p.1).collect();
    let code = if copied.uids.is_empty() {
        String::new()
    } else {
        format!("[COPYUID {} {} {}] ", copied.uid_validity, uid_set(&sources), uid_set(&targets))
    };
    if !remove {
        return Ok(Outcome::ok(format!("{code}{what} completed")));
    }
    if !code.is_empty() {
        cx.out.extend_from_slice(format!("* OK {code}moved\r\n").as_bytes());
    }
    let updates = cx.view.remove(&uids);
    response::updates(cx.out, &updates);
    Ok(Outcome::ok(format!("{what} completed")))
}
