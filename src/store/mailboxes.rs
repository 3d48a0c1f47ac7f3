//! The IMAP view's state (migrations/gateway/0003, 0006): mailboxes with their
//! UIDVALIDITY, next UID and the highest UID no longer `\Recent`, the UID of every
//! message shown, its flags, and the sealed cache of rendered messages. UIDs are handed
//! out inside a transaction that also moves `uid_next`, so two sessions never get the
//! same UID and a UID is never given twice, across restarts.

use std::collections::HashSet;

use sqlx::Row;

use super::flags::Flags;
use super::rows::{
    mailbox_row, message_row, MailboxRow, MessageRow, NewMessage, Uid, MAILBOX_COLUMNS, MESSAGE_COLUMNS,
};
use super::{GatewayStore, StoreError};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::wire::{FolderName, Position};

impl GatewayStore {
    /// Every mailbox of `account`, by name.
    pub async fn mailboxes(&self, account: &Address) -> Result<Vec<MailboxRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account = ? ORDER BY name"))
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(mailbox_row).collect()
    }

    /// The mailbox shown for an SMIMP folder (`None`: the root folder).
    pub async fn mailbox_for_folder(
        &self,
        account: &Address,
        folder: Option<&FolderName>,
    ) -> Result<Option<MailboxRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account = ? AND IFNULL(folder, '') = ?"
        ))
        .bind(account.as_str())
        .bind(folder.map_or("", FolderName::as_str))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(mailbox_row).transpose()
    }

    /// Adds a mailbox with a UIDVALIDITY larger than any the account had, so a mailbox
    /// deleted and created again under its old name never looks like the old one.
    pub async fn add_mailbox(
        &self,
        account: &Address,
        name: &str,
        folder: Option<&FolderName>,
        now: i64,
    ) -> Result<MailboxRow, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let highest: Option<i64> = sqlx::query_scalar("SELECT MAX(uid_validity) FROM mailboxes WHERE account = ?")
            .bind(account.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let uid_validity = (now.clamp(1, i64::from(u32::MAX) - 1)).max(highest.unwrap_or(0) + 1);
        let row = sqlx::query(&format!(
            "INSERT INTO mailboxes (account, name, folder, uid_validity) VALUES (?, ?, ?, ?) RETURNING {MAILBOX_COLUMNS}"
        ))
        .bind(account.as_str())
        .bind(name)
        .bind(folder.map(FolderName::as_str))
        .bind(uid_validity)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        mailbox_row(&row)
    }

    /// Renames one mailbox (its UIDs and UIDVALIDITY stay).
    pub async fn rename_mailbox_row(&self, id: i64, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET name = ? WHERE id = ?").bind(name).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Forgets a mailbox and its messages.
    pub async fn remove_mailbox(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mailboxes WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Records that a read-write IMAP session has been told of every UID up to `uid`
    /// (it only grows), so those are not `\Recent` after a restart.
    pub async fn raise_recent_uid(&self, id: i64, uid: u32) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET recent_uid = MAX(recent_uid, ?) WHERE id = ?")
            .bind(i64::from(uid))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records how far the sync has read the mailbox's server folder by the page.
    pub async fn set_server_position(&self, id: i64, position: Position) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET server_position = ? WHERE id = ?")
            .bind(i64::try_from(position.0).unwrap_or(i64::MAX))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_subscribed(&self, id: i64, subscribed: bool) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET subscribed = ? WHERE id = ?")
            .bind(i64::from(subscribed))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The mailbox's messages in UID order.
    pub async fn mailbox_messages(&self, mailbox: i64) -> Result<Vec<MessageRow>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM mailbox_messages WHERE mailbox = ? ORDER BY uid"))
                .bind(mailbox)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(message_row).collect()
    }

    /// Gives each new message the next UID, in one transaction; returns the UIDs in order.
    /// A message already in the mailbox keeps its UID (returned as is).
    pub async fn add_mailbox_messages(&self, mailbox: i64, messages: &[NewMessage]) -> Result<Vec<Uid>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut next: i64 =
            sqlx::query_scalar("SELECT uid_next FROM mailboxes WHERE id = ?").bind(mailbox).fetch_one(&mut *tx).await?;
        let mut uids = Vec::with_capacity(messages.len());
        for message in messages {
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT uid FROM mailbox_messages WHERE mailbox = ? AND message_id = ?")
                    .bind(mailbox)
                    .bind(message.message_id.to_hex())
                    .fetch_optional(&mut *tx)
                    .await?;
            let uid = match existing {
                Some(uid) => uid,
                None => {
                    sqlx::query(
                        "INSERT INTO mailbox_messages (mailbox, uid, message_id, flags, internal_date, size)
                         VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(mailbox)
                    .bind(next)
                    .bind(message.message_id.to_hex())
                    .bind(message.flags.to_column())
                    .bind(message.internal_date)
                    .bind(i64::from(message.size))
                    .execute(&mut *tx)
                    .await?;
                    next += 1;
                    next - 1
                }
            };
            uids.push(Uid::new(u32::try_from(uid).map_err(|_| StoreError::Corrupt("UIDs are exhausted".into()))?));
        }
        sqlx::query("UPDATE mailboxes SET uid_next = ? WHERE id = ?")
            .bind(next)
            .bind(mailbox)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(uids)
    }

    /// Removes messages from a mailbox's view (their UIDs are never given again).
    pub async fn remove_mailbox_messages(&self, mailbox: i64, uids: &[Uid]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for uid in uids {
            sqlx::query("DELETE FROM mailbox_messages WHERE mailbox = ? AND uid = ?")
                .bind(mailbox)
                .bind(i64::from(*uid))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_message_flags(&self, mailbox: i64, uid: Uid, flags: &Flags) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailbox_messages SET flags = ? WHERE mailbox = ? AND uid = ?")
            .bind(flags.to_column())
            .bind(mailbox)
            .bind(i64::from(uid))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One message of a mailbox by UID.
    pub async fn mailbox_message(&self, mailbox: i64, uid: Uid) -> Result<Option<MessageRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {MESSAGE_COLUMNS} FROM mailbox_messages WHERE mailbox = ? AND uid = ?"))
            .bind(mailbox)
            .bind(i64::from(uid))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(message_row).transpose()
    }

    /// A rendered message from the sealed cache: (nonce, sealed bytes). Its last use is
    /// recorded at most hourly, so reading the cache seldom writes to the database.
    pub async fn cached_message(
        &self,
        account: &Address,
        message_id: &Id32,
        now: i64,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let message_id = message_id.to_hex();
        let row =
            sqlx::query("SELECT nonce, sealed, last_used FROM message_cache WHERE account = ? AND message_id = ?")
                .bind(account.as_str())
                .bind(&message_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else { return Ok(None) };
        if row.try_get::<i64, _>("last_used")? < now - 3600 {
            sqlx::query("UPDATE message_cache SET last_used = ? WHERE account = ? AND message_id = ?")
                .bind(now)
                .bind(account.as_str())
                .bind(&message_id)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some((row.try_get("nonce")?, row.try_get("sealed")?)))
    }

    /// Many cached messages in one query: (message id, nonce, sealed bytes) of those
    /// the table holds. Their `last_used` is left as it is (a read of one message
    /// refreshes it).
    pub async fn cached_messages(
        &self,
        account: &Address,
        ids: &[Id32],
    ) -> Result<Vec<(Id32, String, Vec<u8>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT message_id, nonce, sealed FROM message_cache WHERE account = ",
        );
        query.push_bind(account.as_str()).push(" AND message_id IN (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.to_hex());
        }
        query.push(")");
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((super::rows::parsed_column(row, "message_id")?, row.try_get("nonce")?, row.try_get("sealed")?))
            })
            .collect()
    }

    /// Keeps sealed rendered messages, (message id, nonce, sealed bytes) each, in one
    /// transaction; returns the bytes added.
    pub async fn cache_messages(
        &self,
        account: &Address,
        entries: &[(Id32, String, Vec<u8>)],
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut added = 0u64;
        for (message_id, nonce, sealed) in entries {
            sqlx::query(
                "INSERT OR REPLACE INTO message_cache (account, message_id, nonce, sealed, last_used) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(account.as_str())
            .bind(message_id.to_hex())
            .bind(nonce)
            .bind(sealed)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            added += sealed.len() as u64;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Bytes held by the sealed cache, for every account.
    pub async fn cache_size(&self) -> Result<u64, StoreError> {
        let total: i64 = sqlx::query_scalar("SELECT IFNULL(SUM(LENGTH(sealed)), 0) FROM message_cache")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Drops the least recently used half of the cache (a dropped message is fetched and
    /// verified again when asked); returns the bytes left.
    pub async fn trim_cache(&self) -> Result<u64, StoreError> {
        sqlx::query(
            "DELETE FROM message_cache WHERE rowid IN
             (SELECT rowid FROM message_cache ORDER BY last_used LIMIT (SELECT COUNT(*) / 2 + 1 FROM message_cache))",
        )
        .execute(&self.pool)
        .await?;
        self.cache_size().await
    }

    pub async fn forget_cached(&self, account: &Address, message_id: &Id32) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM message_cache WHERE account = ? AND message_id = ?")
            .bind(account.as_str())
            .bind(message_id.to_hex())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Message ids the account's mailboxes do not show.
    pub async fn hidden_messages(&self, account: &Address) -> Result<HashSet<Id32>, StoreError> {
        let rows = sqlx::query("SELECT message_id FROM hidden_messages WHERE account = ?")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| super::rows::parsed_column(row, "message_id")).collect()
    }

    pub async fn hide_message(&self, account: &Address, message_id: &Id32, reason: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO hidden_messages (account, message_id, reason) VALUES (?, ?, ?)")
            .bind(account.as_str())
            .bind(message_id.to_hex())
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records which message carries each (sender, delivery id); for each entry, false
    /// when another message already carries it (a second copy of one submission).
    pub async fn claim_deliveries(
        &self,
        account: &Address,
        claims: &[(Address, String, Id32)],
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut out = Vec::with_capacity(claims.len());
        for (sender, delivery_id, message_id) in claims {
            sqlx::query(
                "INSERT OR IGNORE INTO deliveries_seen (account, sender, delivery_id, message_id) VALUES (?, ?, ?, ?)",
            )
            .bind(account.as_str())
            .bind(sender.as_str())
            .bind(delivery_id)
            .bind(message_id.to_hex())
            .execute(&mut *tx)
            .await?;
            let owner: String = sqlx::query_scalar(
                "SELECT message_id FROM deliveries_seen WHERE account = ? AND sender = ? AND delivery_id = ?",
            )
            .bind(account.as_str())
            .bind(sender.as_str())
            .bind(delivery_id)
            .fetch_one(&mut *tx)
            .await?;
            out.push(owner == message_id.to_hex());
        }
        tx.commit().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recent_uid_starts_at_zero_and_only_grows() {
        let dir = std::env::temp_dir().join(format!("smimp-recent-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).await.unwrap();
        let alice: Address = "alice#example.org".parse().unwrap();
        let inbox = store.add_mailbox(&alice, "INBOX", None, 100).await.unwrap();
        assert_eq!(inbox.recent_uid, 0, "a new mailbox has told no session of anything");
        store.raise_recent_uid(inbox.id, 7).await.unwrap();
        store.raise_recent_uid(inbox.id, 3).await.unwrap();
        let row = store.mailbox_for_folder(&alice, None).await.unwrap().unwrap();
        assert_eq!(row.recent_uid, 7);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
