//! Rendered messages in two tiers: memory first ([`HotCache`](crate::backend::hot_cache),
//! bounded, never on disk), then the sealed table (sealed with the account's storage
//! key, trimmed past its bound). A message neither holds is fetched, verified and
//! rendered again, so dropping either tier never loses mail.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rand_core::OsRng;

use super::sync::Senders;
use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::backend::inbound::{keep_thread, open_and_render};
use crate::clock::unix_now;
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxNonce;
use crate::smimp::encoding::Id32;
use crate::smimp::wire::ErrorCode;
use crate::store::Uid;

/// Messages read from the sealed table together (see [`Mailboxes::read_ahead`]).
const READ_AHEAD: u32 = 64;

impl Mailboxes {
    /// The rendered message with `uid`: from the caches, or fetched, verified and
    /// rendered again when they no longer hold it.
    pub async fn message(&self, account: &Account, name: &str, uid: Uid) -> Result<Arc<[u8]>, MailboxError> {
        let message_id = match self.index.lookup(&account.sender.address, name, uid) {
            Some(message_id) => message_id,
            None => {
                let row = self.mailbox(account, name).await?;
                self.store.mailbox_message(row.id, uid).await?.ok_or(MailboxError::NoMessage(uid))?.message_id
            }
        };
        if let Some(bytes) = self.hot.get(&account.sender.address, &message_id) {
            return Ok(bytes);
        }
        self.read_ahead(account, name, uid, message_id).await;
        // Another session (here or on another device) may have expunged it since this
        // session's view was taken: the server no longer has it, and that is "gone".
        self.rendered(account, &message_id).await.map_err(|err| match err {
            MailboxError::Server(ref refused) if refused.code() == Some(ErrorCode::NotFound) => {
                MailboxError::NoMessage(uid)
            }
            other => other,
        })
    }

    /// Brings `uid` and the messages after it that memory lacks from the sealed table
    /// into memory in one query: clients read a mailbox in UID order, and one query for
    /// [`READ_AHEAD`] rows costs little more than one for a single row. Best effort: a
    /// failure here leaves each message to be read alone.
    async fn read_ahead(&self, account: &Account, name: &str, uid: Uid, first: Id32) {
        let address = &account.sender.address;
        let following = (1..=2 * READ_AHEAD).filter_map(|step| {
            let next = Uid::new(uid.get().checked_add(step)?);
            self.index.lookup(address, name, next).filter(|id| self.hot.get(address, id).is_none())
        });
        let ids: Vec<Id32> = std::iter::once(first).chain(following).take(READ_AHEAD as usize).collect();
        let Ok(rows) = self.store.cached_messages(address, &ids).await else { return };
        for (id, nonce, sealed) in rows {
            let opened = nonce.parse::<BoxNonce>().ok().and_then(|n| account.sender.storage_key.open(&n, &sealed).ok());
            if let Some(bytes) = opened {
                self.hot.put(address, &id, bytes.into());
            }
        }
    }

    pub(super) async fn rendered(&self, account: &Account, message_id: &Id32) -> Result<Arc<[u8]>, MailboxError> {
        let address = &account.sender.address;
        if let Some(bytes) = self.hot.get(address, message_id) {
            return Ok(bytes);
        }
        let now = unix_now();
        let bytes = match self.sealed(account, message_id, now).await? {
            Some(bytes) => bytes,
            None => self.render_again(account, message_id, now).await?,
        };
        let bytes: Arc<[u8]> = bytes.into();
        self.hot.put(address, message_id, bytes.clone());
        Ok(bytes)
    }

    /// The message from the sealed table, if it holds it and it opens.
    async fn sealed(&self, account: &Account, message_id: &Id32, now: i64) -> Result<Option<Vec<u8>>, MailboxError> {
        let Some((nonce, sealed)) = self.store.cached_message(&account.sender.address, message_id, now).await? else {
            return Ok(None);
        };
        Ok(nonce.parse::<BoxNonce>().ok().and_then(|nonce| account.sender.storage_key.open(&nonce, &sealed).ok()))
    }

    /// Fetches, verifies and renders the message once more, and seals it into the table.
    async fn render_again(&self, account: &Account, message_id: &Id32, now: i64) -> Result<Vec<u8>, MailboxError> {
        let envelope = self.client(account).await?.get_message(*message_id).await?;
        let sender = envelope.server.sender.clone();
        let verdict = self
            .sender_trust(account, &mut Senders::default(), &envelope)
            .await
            .map_err(|reason| MailboxError::SenderWaits { sender, reason })?;
        if account.keystore().secret_for(&envelope.sent.message_public_key).is_none() {
            account.reload();
        }
        let keystore = account.keystore();
        let mut rendered = tokio::task::spawn_blocking(move || open_and_render(&envelope, &keystore, &verdict)).await?;
        keep_thread(&self.store, &account.sender.address, message_id, &mut rendered, now).await;
        self.cache(account, message_id, &rendered.bytes, now).await?;
        Ok(rendered.bytes)
    }

    /// Seals one rendered message into the table.
    pub(super) async fn cache(
        &self,
        account: &Account,
        message_id: &Id32,
        bytes: &[u8],
        now: i64,
    ) -> Result<(), MailboxError> {
        let nonce = BoxNonce::random(&mut OsRng);
        let sealed = account.sender.storage_key.seal(&nonce, bytes);
        self.keep_in_cache(&account.sender.address, &[(*message_id, nonce.to_hex(), sealed)], now).await
    }

    /// Stores sealed entries and trims the cache when it grows past its bound. The
    /// size is counted in memory (read once), so a sync of thousands of messages does
    /// not sum the table for each.
    pub(super) async fn keep_in_cache(
        &self,
        address: &Address,
        entries: &[(Id32, String, Vec<u8>)],
        now: i64,
    ) -> Result<(), MailboxError> {
        if entries.is_empty() {
            return Ok(());
        }
        let added = self.store.cache_messages(address, entries, now).await?;
        self.count_in_cache(added).await
    }

    /// Counts `added` bytes newly kept in the sealed cache, trimming it when over its size.
    pub(super) async fn count_in_cache(&self, added: u64) -> Result<(), MailboxError> {
        let total = if self.cache_counted.swap(true, Ordering::AcqRel) {
            self.cache_bytes.fetch_add(added, Ordering::AcqRel) + added
        } else {
            // The first count reads the table, which already holds `added`.
            let size = self.store.cache_size().await?;
            self.cache_bytes.store(size, Ordering::Release);
            size
        };
        if total > self.cache_max_bytes {
            let left = self.store.trim_cache().await?;
            self.cache_bytes.store(left, Ordering::Release);
        }
        Ok(())
    }
}
