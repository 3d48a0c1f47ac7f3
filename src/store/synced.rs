//! What one chunk of a mailbox sync adds, written in one transaction with one statement
//! per table: its sealed renderings (the cache), its messages with their UIDs, and its
//! thread map entries. Row by row, the statements' round trips to SQLite's worker and
//! three commits a chunk were the slowest stage of a first sync.

use std::collections::HashSet;

use sqlx::{QueryBuilder, Sqlite};

use super::rows::NewMessage;
use super::threads::ThreadEntry;
use super::{GatewayStore, StoreError};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;

/// Rows per statement: SQLite allows 32,766 parameters; the widest row here has six.
const ROWS_PER_STATEMENT: usize = 1000;

/// One chunk of a sync, ready to write.
pub struct SyncedChunk<'a> {
    pub account: &'a Address,
    pub mailbox: i64,
    /// (message id, nonce in hex, sealed rendering) for the cache.
    pub cached: &'a [(Id32, String, Vec<u8>)],
    /// The messages, given UIDs in this order.
    pub messages: &'a [NewMessage],
    /// The Message-IDs the client sees, for the thread map.
    pub threads: &'a [(String, ThreadEntry)],
    pub now: i64,
}

impl GatewayStore {
    /// Writes a chunk; returns the bytes added to the cache. A message the mailbox
    /// already holds keeps its UID (as [`GatewayStore::add_mailbox_messages`] does).
    pub async fn add_synced(&self, chunk: &SyncedChunk<'_>) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for part in chunk.cached.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR REPLACE INTO message_cache (account, message_id, nonce, sealed, last_used) ",
            );
            insert.push_values(part, |mut row, (id, nonce, sealed)| {
                row.push_bind(chunk.account.as_str())
                    .push_bind(id.to_hex())
                    .push_bind(nonce.as_str())
                    .push_bind(sealed.as_slice())
                    .push_bind(chunk.now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for part in chunk.threads.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO thread_map (account, message_id, thread_id, smimp_message_id, created_at) ",
            );
            insert.push_values(part, |mut row, (message_id, entry)| {
                row.push_bind(chunk.account.as_str())
                    .push_bind(message_id.as_str())
                    .push_bind(entry.thread_id.to_hex())
                    .push_bind(entry.message_id.map(|id| id.to_hex()))
                    .push_bind(chunk.now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        add_messages(&mut tx, chunk.mailbox, chunk.messages).await?;
        tx.commit().await?;
        Ok(chunk.cached.iter().map(|(_, _, sealed)| sealed.len() as u64).sum())
    }
}

/// The messages the mailbox does not hold yet, with the next UIDs in order.
async fn add_messages(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    mailbox: i64,
    messages: &[NewMessage],
) -> Result<(), StoreError> {
    let mut held = HashSet::new();
    for part in messages.chunks(ROWS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT message_id FROM mailbox_messages WHERE mailbox = ");
        query.push_bind(mailbox).push(" AND message_id IN (");
        let mut ids = query.separated(", ");
        for message in part {
            ids.push_bind(message.message_id.to_hex());
        }
        query.push(")");
        let found: Vec<String> = query.build_query_scalar().fetch_all(&mut **tx).await?;
        held.extend(found);
    }
    let new: Vec<&NewMessage> = messages.iter().filter(|m| !held.contains(&m.message_id.to_hex())).collect();
    if new.is_empty() {
        return Ok(());
    }
    let first: i64 =
        sqlx::query_scalar("SELECT uid_next FROM mailboxes WHERE id = ?").bind(mailbox).fetch_one(&mut **tx).await?;
    if first + new.len() as i64 > i64::from(u32::MAX) {
        return Err(StoreError::Corrupt("UIDs are exhausted".into()));
    }
    for (n, part) in new.chunks(ROWS_PER_STATEMENT).enumerate() {
        let base = first + (n * ROWS_PER_STATEMENT) as i64;
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO mailbox_messages (mailbox, uid, message_id, flags, internal_date, size) ",
        );
        insert.push_values(part.iter().enumerate(), |mut row, (i, message)| {
            row.push_bind(mailbox)
                .push_bind(base + i as i64)
                .push_bind(message.message_id.to_hex())
                .push_bind(message.flags.to_column())
                .push_bind(message.internal_date)
                .push_bind(i64::from(message.size));
        });
        insert.build().execute(&mut **tx).await?;
    }
    sqlx::query("UPDATE mailboxes SET uid_next = ? WHERE id = ?")
        .bind(first + new.len() as i64)
        .bind(mailbox)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
