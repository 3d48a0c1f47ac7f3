//! The IMAP front-end's view of the backend: [`Mailboxes`] behind the
//! [`MailStore`](crate::imap::MailStore) trait. Only names, flags and errors are
//! translated here; what each operation does is [`Mailboxes`]'s business.

use std::sync::Arc;

use crate::backend::account::Account;
use crate::backend::mailbox::{FlagChange, MailboxError, Mailboxes, SPECIAL_MAILBOXES};
use crate::imap::{
    Copied, Flag, FlagOp, MailStore, MailboxInfo, MessageMeta, No, NoCode, RecentClaims, Snapshot, SpecialUse,
};
use crate::store::{self, Flags, Keyword, Uid};

/// Every refusal the IMAP client sees for a mailbox operation: the error's text, and
/// the response code that says whether trying again, or anything else, can help.
fn no(err: MailboxError) -> No {
    use MailboxError as E;
    let code = match &err {
        E::NoMailbox(_) => Some(NoCode::NonExistent),
        E::Exists(_) => Some(NoCode::AlreadyExists),
        // Another session expunged it (RFC 5530).
        E::NoMessage(_) => Some(NoCode::ExpungeIssued),
        E::EmptyLevel(_)
        | E::NoFolderName { .. }
        | E::InboxNoChildren
        | E::InboxNotParent
        | E::InboxDelete
        | E::InboxRename
        | E::Special(_)
        | E::HasChildren(_)
        | E::Render(_)
        | E::Clock
        | E::NoUid => Some(NoCode::Cannot),
        E::Server(_) | E::Send(_) | E::SenderWaits { .. } => Some(NoCode::Unavailable),
        E::Store(_) => Some(NoCode::ServerBug),
    };
    if matches!(err, E::Store(_)) {
        tracing::error!(error = %err, "IMAP: the gateway's database failed");
    }
    No { text: err.to_string(), code }
}

/// As [`no`], for COPY and APPEND: a missing target mailbox could be created.
fn no_for_target(err: MailboxError) -> No {
    let mut refusal = no(err);
    if refusal.code == Some(NoCode::NonExistent) {
        refusal.code = Some(NoCode::TryCreate);
    }
    refusal
}

/// An IMAP flag as the store keeps it; `None` for a keyword the store refuses.
fn stored(flag: &Flag) -> Option<store::Flag> {
    Some(match flag {
        Flag::Seen => store::Flag::Seen,
        Flag::Answered => store::Flag::Answered,
        Flag::Flagged => store::Flag::Flagged,
        Flag::Deleted => store::Flag::Deleted,
        Flag::Draft => store::Flag::Draft,
        Flag::Keyword(word) => store::Flag::Keyword(Keyword::parse(word).ok()?),
    })
}

fn flags_of(flags: &Flags) -> Vec<Flag> {
    flags
        .iter()
        .map(|flag| match flag {
            store::Flag::Seen => Flag::Seen,
            store::Flag::Answered => Flag::Answered,
            store::Flag::Flagged => Flag::Flagged,
            store::Flag::Deleted => Flag::Deleted,
            store::Flag::Draft => Flag::Draft,
            store::Flag::Keyword(word) => Flag::Keyword(word.as_str().to_string()),
        })
        .collect()
}

fn flags_from(flags: &[Flag]) -> Flags {
    flags.iter().filter_map(stored).collect()
}

fn uids_of(uids: &[u32]) -> Vec<Uid> {
    uids.iter().copied().map(Uid::new).collect()
}

fn special_use(folder: Option<&str>) -> Option<SpecialUse> {
    let (_, _, attribute) = SPECIAL_MAILBOXES.iter().find(|(_, name, _)| Some(*name) == folder)?;
    Some(match *attribute {
        "\\Sent" => SpecialUse::Sent,
        "\\Drafts" => SpecialUse::Drafts,
        "\\Trash" => SpecialUse::Trash,
        "\\Junk" => SpecialUse::Junk,
        _ => SpecialUse::Archive,
    })
}

impl MailStore for Mailboxes {
    type Account = Arc<Account>;

    async fn authenticate(&self, username: &str, password: &str) -> Option<Arc<Account>> {
        Mailboxes::authenticate(self, username, password).await
    }

    async fn list_mailboxes(&self, account: &Arc<Account>) -> Result<Vec<MailboxInfo>, No> {
        let rows = self.list(account).await.map_err(no)?;
        Ok(rows
            .into_iter()
            .map(|row| MailboxInfo {
                name: if row.folder.is_none() { "INBOX".to_string() } else { row.name.clone() },
                special_use: special_use(row.folder.as_ref().map(|f| f.as_str())),
                subscribed: row.subscribed,
            })
            .collect())
    }

    async fn create_mailbox(&self, account: &Arc<Account>, name: &str) -> Result<(), No> {
        self.create(account, name).await.map_err(no)
    }

    async fn delete_mailbox(&self, account: &Arc<Account>, name: &str) -> Result<(), No> {
        self.delete(account, name).await.map_err(no)
    }

    async fn rename_mailbox(&self, account: &Arc<Account>, from: &str, to: &str) -> Result<(), No> {
        self.rename(account, from, to).await.map_err(no)
    }

    async fn set_subscribed(&self, account: &Arc<Account>, name: &str, subscribed: bool) -> Result<(), No> {
        Mailboxes::set_subscribed(self, account, name, subscribed).await.map_err(no)
    }

    async fn snapshot(&self, account: &Arc<Account>, mailbox: &str, sync: bool) -> Result<Snapshot, No> {
        let (row, messages) = Mailboxes::snapshot(self, account, mailbox, sync).await.map_err(no)?;
        // What sessions before a restart were told of is not recent again.
        self.recent(account).claim(mailbox, row.uid_validity, row.recent_uid);
        Ok(Snapshot {
            uid_validity: row.uid_validity,
            uid_next: row.uid_next.get(),
            highest_modseq: row.highest_modseq,
            messages: messages
                .into_iter()
                .map(|m| MessageMeta {
                    uid: m.uid.get(),
                    flags: flags_of(&m.flags),
                    internal_date: m.internal_date,
                    size: m.size,
                    modseq: m.modseq,
                })
                .collect(),
        })
    }

    async fn message(&self, account: &Arc<Account>, mailbox: &str, uid: u32) -> Result<Arc<[u8]>, No> {
        Mailboxes::message(self, account, mailbox, Uid::new(uid)).await.map_err(no)
    }

    async fn store_flags(
        &self,
        account: &Arc<Account>,
        mailbox: &str,
        uids: &[u32],
        op: FlagOp,
        flags: &[Flag],
    ) -> Result<Vec<(u32, Vec<Flag>)>, No> {
        let change = match op {
            FlagOp::Add => FlagChange::Add,
            FlagOp::Remove => FlagChange::Remove,
            FlagOp::Replace => FlagChange::Replace,
        };
        let changed = Mailboxes::store_flags(self, account, mailbox, &uids_of(uids), change, &flags_from(flags))
            .await
            .map_err(no)?;
        Ok(changed.into_iter().map(|(uid, flags)| (uid.get(), flags_of(&flags))).collect())
    }

    async fn expunge(&self, account: &Arc<Account>, mailbox: &str, uids: Option<&[u32]>) -> Result<Vec<u32>, No> {
        let uids = uids.map(uids_of);
        let removed = Mailboxes::expunge(self, account, mailbox, uids.as_deref()).await.map_err(no)?;
        Ok(removed.into_iter().map(Uid::get).collect())
    }

    async fn copy(
        &self,
        account: &Arc<Account>,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Copied, No> {
        let (uid_validity, pairs) =
            Mailboxes::copy(self, account, from, &uids_of(uids), to, remove).await.map_err(no_for_target)?;
        Ok(Copied { uid_validity, uids: pairs.into_iter().map(|(from, to)| (from.get(), to.get())).collect() })
    }

    async fn append(
        &self,
        account: &Arc<Account>,
        mailbox: &str,
        flags: &[Flag],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<(u32, u32), No> {
        let (uid_validity, uid) = Mailboxes::append(self, account, mailbox, &flags_from(flags), internal_date, message)
            .await
            .map_err(no_for_target)?;
        Ok((uid_validity, uid.get()))
    }

    fn changes(&self, account: &Arc<Account>) -> Arc<tokio::sync::Notify> {
        Mailboxes::changes(self, account)
    }

    async fn vanished(&self, account: &Arc<Account>, mailbox: &str, since: u64) -> Result<Vec<u32>, No> {
        let uids = Mailboxes::expunged_since(self, account, mailbox, since).await.map_err(no)?;
        Ok(uids.into_iter().map(Uid::get).collect())
    }

    fn recent(&self, account: &Arc<Account>) -> Arc<RecentClaims> {
        Mailboxes::recent(self, account)
    }

    async fn keep_recent(&self, account: &Arc<Account>, mailbox: &str, uid: u32) {
        if let Err(err) = Mailboxes::keep_recent(self, account, mailbox, uid).await {
            // This session's \Recent stays right; only after a restart would these be
            // recent again.
            tracing::warn!(error = %err, "could not record which messages are no longer recent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_translate_both_ways_and_unknown_system_flags_are_dropped() {
        let stored = Flags::from_column("\\Seen \\flagged $Work \\Recent \\Bogus");
        let flags = flags_of(&stored);
        assert_eq!(flags, vec![Flag::Seen, Flag::Flagged, Flag::Keyword("$Work".into())]);
        assert_eq!(flags_from(&flags).to_column(), "\\Seen \\Flagged $Work");
    }

    #[test]
    fn special_folders_carry_their_attribute() {
        assert!(matches!(special_use(Some("sent")), Some(SpecialUse::Sent)));
        assert!(matches!(special_use(Some("junk")), Some(SpecialUse::Junk)));
        assert!(special_use(Some("projects-1234")).is_none());
        assert!(special_use(None).is_none());
    }
}
