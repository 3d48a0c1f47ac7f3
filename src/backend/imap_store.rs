//! The IMAP front-end's view of the backend: [`Mailboxes`] behind the
//! [`MailStore`](crate::imap::MailStore) trait. Only names, flags and errors are
//! translated here; what each operation does is [`Mailboxes`]'s business.

use std::sync::Arc;

use crate::backend::mailbox::{FlagChange, MailboxError, Mailboxes, SPECIAL_MAILBOXES};
use crate::backend::submission::Account;
use crate::imap::{Copied, Flag, FlagOp, MailStore, MailboxInfo, MessageMeta, No, NoCode, Snapshot, SpecialUse};

fn no(err: MailboxError) -> No {
    let code = match &err {
        MailboxError::NoMailbox(_) => Some(NoCode::NonExistent),
        MailboxError::Exists(_) => Some(NoCode::AlreadyExists),
        MailboxError::Cannot(_) => Some(NoCode::Cannot),
        MailboxError::Server(_) => Some(NoCode::Unavailable),
        MailboxError::Store(_) => Some(NoCode::ServerBug),
        MailboxError::NoMessage(_) => None,
    };
    if matches!(err, MailboxError::Store(_)) {
        tracing::error!(error = %err, "IMAP: the gateway's database failed");
    }
    No { text: err.to_string(), code }
}

fn flag_text(flag: &Flag) -> String {
    match flag {
        Flag::Seen => "\\Seen".into(),
        Flag::Answered => "\\Answered".into(),
        Flag::Flagged => "\\Flagged".into(),
        Flag::Deleted => "\\Deleted".into(),
        Flag::Draft => "\\Draft".into(),
        Flag::Keyword(word) => word.clone(),
    }
}

fn flag_of(text: &str) -> Option<Flag> {
    let flag = match text.to_ascii_lowercase().as_str() {
        "\\seen" => Flag::Seen,
        "\\answered" => Flag::Answered,
        "\\flagged" => Flag::Flagged,
        "\\deleted" => Flag::Deleted,
        "\\draft" => Flag::Draft,
        _ if text.starts_with('\\') => return None,
        _ => Flag::Keyword(text.to_string()),
    };
    Some(flag)
}

fn flags_of(text: &[String]) -> Vec<Flag> {
    text.iter().filter_map(|f| flag_of(f)).collect()
}

fn texts(flags: &[Flag]) -> Vec<String> {
    flags.iter().map(flag_text).collect()
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
                special_use: special_use(row.folder.as_deref()),
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
        Ok(Snapshot {
            uid_validity: row.uid_validity,
            uid_next: row.uid_next,
            messages: messages
                .into_iter()
                .map(|m| MessageMeta {
                    uid: m.uid,
                    flags: flags_of(&crate::backend::mailbox::parse_flags(&m.flags)),
                    internal_date: m.internal_date,
                    size: m.size,
                })
                .collect(),
        })
    }

    async fn message(&self, account: &Arc<Account>, mailbox: &str, uid: u32) -> Result<Arc<[u8]>, No> {
        Mailboxes::message(self, account, mailbox, uid).await.map_err(no)
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
        let changed = Mailboxes::store_flags(self, account, mailbox, uids, change, &texts(flags)).await.map_err(no)?;
        Ok(changed.into_iter().map(|(uid, flags)| (uid, flags_of(&flags))).collect())
    }

    async fn expunge(&self, account: &Arc<Account>, mailbox: &str, uids: Option<&[u32]>) -> Result<Vec<u32>, No> {
        Mailboxes::expunge(self, account, mailbox, uids).await.map_err(no)
    }

    async fn copy(
        &self,
        account: &Arc<Account>,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Copied, No> {
        let (uid_validity, uids) = Mailboxes::copy(self, account, from, uids, to, remove).await.map_err(|err| {
            let mut refusal = no(err);
            if refusal.code == Some(NoCode::NonExistent) {
                refusal.code = Some(NoCode::TryCreate);
            }
            refusal
        })?;
        Ok(Copied { uid_validity, uids })
    }

    async fn append(
        &self,
        account: &Arc<Account>,
        mailbox: &str,
        flags: &[Flag],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<(u32, u32), No> {
        Mailboxes::append(self, account, mailbox, &texts(flags), internal_date, message).await.map_err(|err| {
            let mut refusal = no(err);
            if refusal.code == Some(NoCode::NonExistent) {
                refusal.code = Some(NoCode::TryCreate);
            }
            refusal
        })
    }

    fn changes(&self, account: &Arc<Account>) -> Arc<tokio::sync::Notify> {
        Mailboxes::changes(self, account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_translate_both_ways_and_unknown_system_flags_are_dropped() {
        let stored =
            vec!["\\Seen".to_string(), "\\flagged".into(), "$Work".into(), "\\Recent".into(), "\\Bogus".into()];
        let flags = flags_of(&stored);
        assert_eq!(flags, vec![Flag::Seen, Flag::Flagged, Flag::Keyword("$Work".into())]);
        assert_eq!(texts(&flags), vec!["\\Seen", "\\Flagged", "$Work"]);
    }

    #[test]
    fn special_folders_carry_their_attribute() {
        assert!(matches!(special_use(Some("sent")), Some(SpecialUse::Sent)));
        assert!(matches!(special_use(Some("junk")), Some(SpecialUse::Junk)));
        assert!(special_use(Some("projects-1234")).is_none());
        assert!(special_use(None).is_none());
    }
}
