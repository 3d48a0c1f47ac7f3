//! Following the account's other devices (docs/protocol.md §8.29): when the account's
//! server offers the `x-changes` feed, each sync asks what changed in the mailbox's
//! folder since the server modseq it last saw (kept per mailbox in the store) and
//! applies it to the known messages — the read status as \Seen, the flags and keywords
//! sealed in the extensions data (§8.20, opened with the storage key) — and drops the
//! messages that left the folder. Each applied change bumps the mailbox's own modseq
//! (the store's triggers), so IMAP clients see it through IDLE, NOOP and QRESYNC.
//! Without the feed, the listing's read status is all there is (`sync::follow_server`).

use std::collections::HashMap;

use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::backend::inbound::open_extras;
use crate::client::SessionClient;
use crate::smimp::encoding::Id32;
use crate::smimp::message::MessageType;
use crate::smimp::wire::{Api, ChangeList, MessageChange, MessageSummary};
use crate::store::{Flag, Flags, MailboxRow, MessageRow, Uid};

/// Pages of the feed read in one sync at most (1000 changes each); the rest waits for
/// the next sync, which goes on from where this one stopped.
const MAX_PAGES_PER_SYNC: usize = 20;

impl Mailboxes {
    /// Brings the known messages' flags and presence up to date with the server: from
    /// its change feed when it has one, else from the listing. Whether anything changed.
    pub(super) async fn follow(
        &self,
        account: &Account,
        client: &SessionClient,
        row: &MailboxRow,
        known: &[MessageRow],
        listed: &[MessageSummary],
    ) -> Result<bool, MailboxError> {
        if !client.server().implements(Api::XChanges) {
            return self.follow_server(account, row, known, listed).await;
        }
        // Messages the listing no longer holds leave the view as before; the feed's
        // departures are applied too, as they come.
        let mut changed = self.drop_unlisted(account, row, known, listed).await?;
        let by_id: HashMap<Id32, &MessageRow> = known.iter().map(|m| (m.message_id, m)).collect();
        let mut since = self.store.feed_modseq(row.id).await?;
        for _ in 0..MAX_PAGES_PER_SYNC {
            let mut page = client.list_changes(MessageType::Email, row.folder.clone(), since).await?;
            if page.expired {
                // The server forgot departures we had not seen: start again from 0 (every
                // message's state); the listing has removed what is gone.
                page = client.list_changes(MessageType::Email, row.folder.clone(), 0).await?;
            }
            changed |= self.apply_page(account, row, &by_id, &page).await?;
            self.store.set_feed_modseq(row.id, page.modseq).await?;
            since = page.modseq;
            if !page.more {
                break;
            }
        }
        Ok(changed)
    }

    /// Known messages the listing no longer holds leave the view.
    pub(super) async fn drop_unlisted(
        &self,
        account: &Account,
        row: &MailboxRow,
        known: &[MessageRow],
        listed: &[MessageSummary],
    ) -> Result<bool, MailboxError> {
        let on_server: std::collections::HashSet<&Id32> = listed.iter().map(|m| &m.message_id).collect();
        let gone: Vec<Uid> = known.iter().filter(|m| !on_server.contains(&m.message_id)).map(|m| m.uid).collect();
        self.drop_uids(account, row, &gone).await
    }

    async fn drop_uids(&self, account: &Account, row: &MailboxRow, gone: &[Uid]) -> Result<bool, MailboxError> {
        if gone.is_empty() {
            return Ok(false);
        }
        self.store.remove_mailbox_messages(row.id, gone).await?;
        self.index.forget_uids(&account.sender.address, &row.name, gone);
        Ok(true)
    }

    /// One page: each known message takes the flags the server has for it; departed ones
    /// leave. Messages not known yet are left to the sync's fetch, which reads their
    /// state with their envelope.
    async fn apply_page(
        &self,
        account: &Account,
        row: &MailboxRow,
        known: &HashMap<Id32, &MessageRow>,
        page: &ChangeList,
    ) -> Result<bool, MailboxError> {
        let mut changed = false;
        for change in &page.changes {
            let Some(message) = known.get(&change.message_id) else { continue };
            let flags = server_flags(account, change);
            if flags != message.flags {
                self.store.set_message_flags(row.id, message.uid, &flags).await?;
                changed = true;
            }
        }
        let gone: Vec<Uid> = page.vanished.iter().filter_map(|id| known.get(id)).map(|m| m.uid).collect();
        changed |= self.drop_uids(account, row, &gone).await?;
        Ok(changed)
    }
}

/// The flags the server holds for a message: \Seen from its read status, the others
/// from its sealed extensions data (as `flags::write_flags` wrote them).
fn server_flags(account: &Account, change: &MessageChange) -> Flags {
    let extras = change.extensions_data.as_ref().map(|sealed| open_extras(sealed, &account.keystore()));
    let mut flags: Flags = extras.into_iter().flat_map(|e| e.flags).filter_map(|f| f.parse().ok()).collect();
    flags.remove(&Flag::Seen);
    flags.set(Flag::Seen, change.read);
    flags
}
