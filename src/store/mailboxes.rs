//! The IMAP view's state (migrations/gateway/0003): mailboxes with their UIDVALIDITY and
//! next UID, the UID of every message shown, its flags, and the sealed cache of rendered
//! messages. UIDs are handed out inside a transaction that also moves `uid_next`, so two
//! sessions never get the same UID and a UID is never given twice, across restarts.

use std::collections::HashSet;

use sqlx::Row;

use super::{GatewayStore, StoreError};
use crate::smimp::address::Address;

/// One mailbox as the gateway shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRow {
    pub id: i64,
    pub name: String,
    /// The SMIMP folder_name; `None` for the root `email` folder (INBOX).
    pub folder: Option<String>,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub subscribed: bool,
}

/// One message shown in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub uid: u32,
    /// The SMIMP message id (hex).
    pub message_id: String,
    /// IMAP flags, space-separated (`\Seen $Work`).
    pub flags: String,
    pub internal_date: i64,
    pub size: u32,
}

/// A message to add to a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub message_id: String,
    pub flags: String,
    pub internal_date: i64,
    pub size: u32,
}

fn mailbox_row(row: &sqlx::sqlite::SqliteRow) -> Result<MailboxRow, StoreError> {
    Ok(MailboxRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        folder: row.try_get("folder")?,
        uid_validity: u32::try_from(row.try_get::<i64, _>("uid_validity")?)
            .map_err(|_| StoreError::Corrupt("uid_validity out of range".into()))?,
        uid_next: u32::try_from(row.try_get::<i64, _>("uid_next")?)
            .map_err(|_| StoreError::Corrupt("uid_next out of range".into()))?,
        subscribed: row.try_get::<i64, _>("subscribed")? != 0,
    })
}

const MAILBOX_COLUMNS: &str = "id, name, folder, uid_validity, uid_next, subscribed";

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
        folder: Option<&str>,
    ) -> Result<Option<MailboxRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account = ? AND IFNULL(folder, '') = ?"
        ))
        .bind(account.as_str())
        .bind(folder.unwrap_or(""))
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
        folder: Option<&str>,
        now: i64,
    ) -> Result<MailboxRow, StoreError> {
        let mut tx = self.pool.begin().await?;
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
        .bind(folder)
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
        let rows = sqlx::query(
            "SELECT uid, message_id, flags, internal_date, size FROM mailbox_messages WHERE mailbox = ? ORDER BY uid",
        )
        .bind(mailbox)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageRow {
                    uid: u32::try_from(r.try_get::<i64, _>("uid")?)
                        .map_err(|_| StoreError::Corrupt("uid out of range".into()))?,
                    message_id: r.try_get("message_id")?,
                    flags: r.try_get("flags")?,
                    internal_date: r.try_get("internal_date")?,
                    size: u32::try_from(r.try_get::<i64, _>("size")?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// Gives each new message the next UID, in one transaction; returns the UIDs in order.
    /// A message already in the mailbox keeps its UID (returned as is).
    pub async fn add_mailbox_messages(&self, mailbox: i64, messages: &[NewMessage]) -> Result<Vec<u32>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut next: i64 =
            sqlx::query_scalar("SELECT uid_next FROM mailboxes WHERE id = ?").bind(mailbox).fetch_one(&mut *tx).await?;
        let mut uids = Vec::with_capacity(messages.len());
        for message in messages {
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT uid FROM mailbox_messages WHERE mailbox = ? AND message_id = ?")
                    .bind(mailbox)
                    .bind(&message.message_id)
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
                    .bind(&message.message_id)
                    .bind(&message.flags)
                    .bind(message.internal_date)
                    .bind(i64::from(message.size))
                    .execute(&mut *tx)
                    .await?;
                    next += 1;
                    next - 1
                }
            };
            uids.push(u32::try_from(uid).map_err(|_| StoreError::Corrupt("UIDs are exhausted".into()))?);
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
    pub async fn remove_mailbox_messages(&self, mailbox: i64, uids: &[u32]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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

    pub async fn set_message_flags(&self, mailbox: i64, uid: u32, flags: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailbox_messages SET flags = ? WHERE mailbox = ? AND uid = ?")
            .bind(flags)
            .bind(mailbox)
            .bind(i64::from(uid))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A rendered message from the sealed cache: (nonce, sealed bytes).
    pub async fn cached_message(
        &self,
        account: &Address,
        message_id: &str,
        now: i64,
    ) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        let row = sqlx::query(
            "UPDATE message_cache SET last_used = ? WHERE account = ? AND message_id = ? RETURNING nonce, sealed",
        )
        .bind(now)
        .bind(account.as_str())
        .bind(message_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get("nonce")?, r.try_get("sealed")?))).transpose()
    }

    /// Keeps a sealed rendered message, then trims the cache to `max_bytes` (least
    /// recently used first): a trimmed message is fetched and verified again when asked.
    pub async fn cache_message(
        &self,
        account: &Address,
        message_id: &str,
        nonce: &str,
        sealed: &[u8],
        now: i64,
        max_bytes: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO message_cache (account, message_id, nonce, sealed, last_used) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(account.as_str())
        .bind(message_id)
        .bind(nonce)
        .bind(sealed)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT IFNULL(SUM(LENGTH(sealed)), 0) FROM message_cache")
            .fetch_one(&self.pool)
            .await?;
        if u64::try_from(total).unwrap_or(0) > max_bytes {
            // Drops the older half of the entries by use, which keeps trimming rare.
            sqlx::query(
                "DELETE FROM message_cache WHERE rowid IN
                 (SELECT rowid FROM message_cache ORDER BY last_used LIMIT (SELECT COUNT(*) / 2 FROM message_cache))",
            )
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn forget_cached(&self, account: &Address, message_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM message_cache WHERE account = ? AND message_id = ?")
            .bind(account.as_str())
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Message ids the account's mailboxes do not show.
    pub async fn hidden_messages(&self, account: &Address) -> Result<HashSet<String>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT message_id FROM hidden_messages WHERE account = ?")
            .bind(account.as_str())
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.into_iter().collect())
    }

    pub async fn hide_message(&self, account: &Address, message_id: &str, reason: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO hidden_messages (account, message_id, reason) VALUES (?, ?, ?)")
            .bind(account.as_str())
            .bind(message_id)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that `message_id` carries `sender`'s delivery `delivery_id`; false when
    /// another message already carries it (a second copy of one submission).
    pub async fn claim_delivery(
        &self,
        account: &Address,
        sender: &Address,
        delivery_id: &str,
        message_id: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query(
            "INSERT OR IGNORE INTO deliveries_seen (account, sender, delivery_id, message_id) VALUES (?, ?, ?, ?)",
        )
        .bind(account.as_str())
        .bind(sender.as_str())
        .bind(delivery_id)
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        let owner: String = sqlx::query_scalar(
            "SELECT message_id FROM deliveries_seen WHERE account = ? AND sender = ? AND delivery_id = ?",
        )
        .bind(account.as_str())
        .bind(sender.as_str())
        .bind(delivery_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(owner == message_id)
    }
}
