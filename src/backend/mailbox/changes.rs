//! Changes to a mailbox's messages, carried out on the account's server first so every
//! device sees them: EXPUNGE deletes, MOVE moves, COPY stores the message again, and
//! APPEND sends the message to the account itself (sealed to its own key, with proof of
//! work like any message) — the server keeps nothing the gateway wrote in the clear.

use std::collections::HashSet;

use rand_core::OsRng;

use super::flags::write_flags;
use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::backend::outbound::send_payload;
use crate::clock::unix_now;
use crate::mime::own::{email_for_raw, shown};
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::ErrorCode;
use crate::store::{Flag, Flags, MailboxRow, MessageRow, NewMessage, Uid};

impl Mailboxes {
    /// EXPUNGE: messages flagged \Deleted (among `uids`, if given) are deleted on the
    /// server and leave the view.
    pub async fn expunge(&self, account: &Account, name: &str, uids: Option<&[Uid]>) -> Result<Vec<Uid>, MailboxError> {
        let row = self.mailbox(account, name).await?;
        let messages = self.store.mailbox_messages(row.id).await?;
        let doomed: Vec<&MessageRow> = messages
            .iter()
            .filter(|m| m.flags.contains(&Flag::Deleted) && uids.is_none_or(|u| u.contains(&m.uid)))
            .collect();
        self.remove_messages(account, &row, &doomed).await
    }

    /// Deletes `messages` on the server and takes them out of `row`'s view; returns
    /// their UIDs.
    async fn remove_messages(
        &self,
        account: &Account,
        row: &MailboxRow,
        messages: &[&MessageRow],
    ) -> Result<Vec<Uid>, MailboxError> {
        let client = self.client(account).await?;
        let address = &account.sender.address;
        let mut removed = Vec::new();
        for message in messages {
            match client.delete_message(message.message_id).await {
                Ok(()) => {}
                Err(err) if err.code() == Some(ErrorCode::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
            self.store.forget_cached(address, &message.message_id).await?;
            self.hot.forget(address, &message.message_id);
            removed.push(message.uid);
        }
        if !removed.is_empty() {
            self.store.remove_mailbox_messages(row.id, &removed).await?;
            self.index.forget_uids(address, &row.name, &removed);
            self.notify(account);
        }
        Ok(removed)
    }

    /// COPY (the messages are stored again, sealed to the account) or MOVE (the server
    /// moves them; within one mailbox, a copy is stored and the original deleted).
    /// Returns the target's UIDVALIDITY and (source, target) UID pairs.
    pub async fn copy(
        &self,
        account: &Account,
        from: &str,
        uids: &[Uid],
        to: &str,
        remove: bool,
    ) -> Result<(u32, Vec<(Uid, Uid)>), MailboxError> {
        let source = self.mailbox(account, from).await?;
        let target = self.mailbox(account, to).await?;
        let messages = self.store.mailbox_messages(source.id).await?;
        let wanted: HashSet<Uid> = uids.iter().copied().collect();
        let chosen: Vec<&MessageRow> = messages.iter().filter(|m| wanted.contains(&m.uid)).collect();
        let pairs = if !remove || source.id == target.id {
            let mut pairs = Vec::new();
            for message in &chosen {
                let bytes = self.rendered(account, &message.message_id).await?;
                let appended = self.append(account, to, &message.flags, Some(message.internal_date), bytes.to_vec());
                pairs.push((message.uid, appended.await?.1));
            }
            if remove {
                // A MOVE within one mailbox: the copies are in, the originals go (RFC 6851).
                self.remove_messages(account, &source, &chosen).await?;
            }
            pairs
        } else {
            self.move_messages(account, &source, &target, &chosen).await?
        };
        Ok((target.uid_validity, pairs))
    }

    /// MOVE on the server, then the messages leave `source`'s view and get UIDs in
    /// `target`'s, under the sync lock so a sync never sees them half moved.
    async fn move_messages(
        &self,
        account: &Account,
        source: &MailboxRow,
        target: &MailboxRow,
        messages: &[&MessageRow],
    ) -> Result<Vec<(Uid, Uid)>, MailboxError> {
        let client = self.client(account).await?;
        let mut moved_uids = Vec::new();
        let mut new_rows = Vec::new();
        for message in messages {
            client.move_message(message.message_id, target.folder.clone()).await?;
            moved_uids.push(message.uid);
            new_rows.push(NewMessage {
                message_id: message.message_id,
                flags: message.flags.clone(),
                internal_date: message.internal_date,
                size: message.size,
            });
        }
        let state = self.state(&account.sender.address);
        let guard = state.sync.lock().await;
        self.store.remove_mailbox_messages(source.id, &moved_uids).await?;
        self.index.forget_uids(&account.sender.address, &source.name, &moved_uids);
        let new_uids = self.store.add_mailbox_messages(target.id, &new_rows).await?;
        drop(guard);
        self.notify(account);
        Ok(moved_uids.into_iter().zip(new_uids).collect())
    }

    /// APPEND: the message is sent to the account itself (sealed to its own key, with
    /// proof of work like any message), moved into the mailbox's folder, cached and given
    /// a UID. Returns (UIDVALIDITY, UID).
    pub async fn append(
        &self,
        account: &Account,
        name: &str,
        flags: &Flags,
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<(u32, Uid), MailboxError> {
        let row = self.mailbox(account, name).await?;
        let now = unix_now();
        let at = Timestamp::from_unix(now).ok_or(MailboxError::Clock)?;
        let address = account.sender.address.clone();
        let email = email_for_raw(&message, &address, at, &mut OsRng);
        let payload = Payload::Email(Box::new(email)).to_bytes();
        // Cached and sized as the client will be shown it (stored, not verified).
        let message = shown(&message);
        let sent =
            send_payload(&self.discovery, &self.store, &account.sender, &address, MessageType::Email, &payload, now)
                .await?;
        let client = self.client(account).await?;
        if let Some(folder) = &row.folder {
            client.move_message(sent.message_id, Some(folder.clone())).await?;
        }
        write_flags(&client, account, sent.message_id, &Flags::default(), flags).await?;
        self.cache(account, &sent.message_id, &message, now).await?;
        let state = self.state(&address);
        let guard = state.sync.lock().await;
        let new = NewMessage {
            message_id: sent.message_id,
            flags: flags.clone(),
            internal_date: internal_date.unwrap_or(now),
            size: u32::try_from(message.len()).unwrap_or(u32::MAX),
        };
        let uids = self.store.add_mailbox_messages(row.id, &[new]).await?;
        drop(guard);
        self.notify(account);
        let uid = uids.first().copied().ok_or(MailboxError::NoUid)?;
        Ok((row.uid_validity, uid))
    }
}
