//! The thread map: RFC 5322 Message-IDs of mail an account sent, with the SMIMP thread
//! they started or joined, so a reply to the Sent copy threads like a reply to mail the
//! gateway rendered (whose ids carry the SMIMP ids themselves).

use super::rows::{optional_parsed_column, parsed_column};
use super::{GatewayStore, StoreError};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;

/// What is known of a Message-ID: its SMIMP thread and, when known, the SMIMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadEntry {
    pub thread_id: Id32,
    pub message_id: Option<Id32>,
}

/// At most this many ids are looked up for one submission (a long References header).
const MAX_LOOKUPS: usize = 64;

impl GatewayStore {
    /// The entries known for any of `message_ids` (without angle brackets).
    pub async fn thread_entries(
        &self,
        account: &Address,
        message_ids: &[String],
    ) -> Result<Vec<(String, ThreadEntry)>, StoreError> {
        let mut found = Vec::new();
        for id in message_ids.iter().take(MAX_LOOKUPS) {
            let row =
                sqlx::query("SELECT thread_id, smimp_message_id FROM thread_map WHERE account = ? AND message_id = ?")
                    .bind(account.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = row {
                let thread_id = parsed_column(&row, "thread_id")?;
                let message_id = optional_parsed_column(&row, "smimp_message_id")?;
                found.push((id.clone(), ThreadEntry { thread_id, message_id }));
            }
        }
        Ok(found)
    }

    /// Remembers a Message-ID the account sent (the first record of an id wins).
    pub async fn remember_thread(
        &self,
        account: &Address,
        message_id: &str,
        entry: ThreadEntry,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR IGNORE INTO thread_map (account, message_id, thread_id, smimp_message_id, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(account.as_str())
        .bind(message_id)
        .bind(entry.thread_id.to_hex())
        .bind(entry.message_id.map(|id| id.to_hex()))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
