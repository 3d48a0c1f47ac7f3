//! The thread map: the RFC 5322 Message-IDs an account's mail client knows, with the
//! SMIMP thread and message each stands for, so threading works both ways between
//! Message-IDs and SMIMP ids:
//! - mail the account sent (its Message-ID → the thread it started or joined), so a
//!   reply to the Sent copy joins the thread;
//! - mail the account received and the gateway showed (the sender's original
//!   Message-ID, or the gateway's own `<hex@smimp.invalid>` form → the thread and the
//!   SMIMP id of the account's copy), so a legacy client's reply names the SMIMP message
//!   it answers, and an SMIMP-native reply is shown with an In-Reply-To the client knows
//!   ([`GatewayStore::thread_names`]).

use std::collections::HashSet;

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

/// At most this many Message-IDs of one thread are named in a rendered References.
const MAX_THREAD_NAMES: i64 = 10;

/// The Message-IDs (without angle brackets) the account knows in one thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadNames {
    /// The Message-ID of the SMIMP message replied to, when the account holds it; else
    /// the newest message the account sent in the thread, else the newest it knows.
    pub parent: Option<String>,
    /// The newest Message-IDs of the thread, oldest first.
    pub known: Vec<String>,
}

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

    /// Of `threads` and `messages`, those the account's map holds at all: a sync asks
    /// [`GatewayStore::thread_names`] only for messages these name, one query a chunk
    /// instead of two a message.
    pub async fn threads_known(
        &self,
        account: &Address,
        threads: &[Id32],
        messages: &[Id32],
    ) -> Result<(HashSet<Id32>, HashSet<Id32>), StoreError> {
        let mut known = (HashSet::new(), HashSet::new());
        for (column, ids, found) in [("thread_id", threads, &mut known.0), ("smimp_message_id", messages, &mut known.1)]
        {
            for part in ids.chunks(500) {
                let marks = vec!["?"; part.len()].join(", ");
                let sql =
                    format!("SELECT DISTINCT {column} FROM thread_map WHERE account = ? AND {column} IN ({marks})");
                let mut query = sqlx::query_scalar::<_, String>(&sql).bind(account.as_str());
                for id in part {
                    query = query.bind(id.to_hex());
                }
                for hex in query.fetch_all(&self.pool).await? {
                    found.extend(hex.parse::<Id32>().ok());
                }
            }
        }
        Ok(known)
    }

    /// The Message-IDs the account knows in `thread_id` (those recorded by `until`, Unix
    /// seconds, so the answer for one message does not change later), and the one that
    /// stands for the SMIMP message `reply_to` (module docs).
    pub async fn thread_names(
        &self,
        account: &Address,
        thread_id: &Id32,
        reply_to: Option<&Id32>,
        until: i64,
    ) -> Result<ThreadNames, StoreError> {
        let mut exact = None;
        if let Some(reply_to) = reply_to {
            exact = sqlx::query_scalar::<_, String>(
                "SELECT message_id FROM thread_map WHERE account = ? AND smimp_message_id = ? LIMIT 1",
            )
            .bind(account.as_str())
            .bind(reply_to.to_hex())
            .fetch_optional(&self.pool)
            .await?;
        }
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT message_id, smimp_message_id FROM thread_map WHERE account = ? AND thread_id = ?
             AND created_at <= ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
        )
        .bind(account.as_str())
        .bind(thread_id.to_hex())
        .bind(until)
        .bind(MAX_THREAD_NAMES)
        .fetch_all(&self.pool)
        .await?;
        // A reply to a message this account does not hold (no exact entry) most often
        // answers the recipient's copy of mail this account sent: its newest own message
        // in the thread (recorded without an SMIMP id) stands in, else the newest.
        let own = rows.iter().find(|(_, smimp)| smimp.is_none()).or(rows.first()).map(|(id, _)| id.clone());
        let parent = exact.or(own);
        let known = rows.into_iter().rev().map(|(id, _)| id).collect();
        Ok(ThreadNames { parent, known })
    }
}
