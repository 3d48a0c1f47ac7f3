//! Long work in progress, as `smimp-gateway status` shows it from another process: a
//! proof of work at high difficulty or the first sync of a large mailbox. Only work
//! that has already taken a while is written (short work would cost a write for
//! nothing), and its row goes when the work ends. Rows name the account, the task and
//! counts — never content.

use super::{GatewayStore, StoreError};
use crate::smimp::address::Address;

/// One piece of long work.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProgressRecord {
    #[sqlx(try_from = "String")]
    pub account: Address,
    /// What is being done, in words: `proof of work for bob#example.net`, `first sync of INBOX`.
    pub task: String,
    /// Units done so far (hashes tried, messages fetched) of `total` (expected hashes, messages).
    pub done: i64,
    pub total: i64,
    /// Unix seconds.
    pub started_at: i64,
    pub updated_at: i64,
}

impl GatewayStore {
    /// Records (or updates) the progress of `task`.
    pub async fn set_progress(&self, record: &ProgressRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO progress (account, task, done, total, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (account, task) DO UPDATE SET done = excluded.done, total = excluded.total, \
             updated_at = excluded.updated_at",
        )
        .bind(record.account.as_str())
        .bind(&record.task)
        .bind(record.done)
        .bind(record.total)
        .bind(record.started_at)
        .bind(record.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The task ended (done, failed or stopped).
    pub async fn clear_progress(&self, account: &Address, task: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM progress WHERE account = ? AND task = ?")
            .bind(account.as_str())
            .bind(task)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets all progress: at start, rows left by a gateway that was killed are stale.
    pub async fn clear_all_progress(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM progress").execute(&self.pool).await?;
        Ok(())
    }

    /// Every piece of work in progress, oldest first.
    pub async fn progress(&self) -> Result<Vec<ProgressRecord>, StoreError> {
        let sql = "SELECT account, task, done, total, started_at, updated_at FROM progress ORDER BY started_at, task";
        Ok(sqlx::query_as(sql).fetch_all(&self.pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn progress_is_set_updated_listed_and_cleared() {
        let dir = std::env::temp_dir().join(format!("smimp-progress-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).await.unwrap();
        let alice: Address = "alice#example.org".parse().unwrap();
        let record = |task: &str, done, at| ProgressRecord {
            account: alice.clone(),
            task: task.into(),
            done,
            total: 1000,
            started_at: at,
            updated_at: at,
        };
        store.set_progress(&record("first sync of INBOX", 500, 10)).await.unwrap();
        store.set_progress(&record("proof of work for bob#example.net", 1, 20)).await.unwrap();
        let mut later = record("first sync of INBOX", 900, 99);
        later.started_at = 11;
        store.set_progress(&later).await.unwrap();
        let listed = store.progress().await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].task, "first sync of INBOX");
        assert_eq!((listed[0].done, listed[0].started_at, listed[0].updated_at), (900, 10, 99), "start kept");
        store.clear_progress(&alice, "first sync of INBOX").await.unwrap();
        assert_eq!(store.progress().await.unwrap().len(), 1);
        store.clear_all_progress().await.unwrap();
        assert!(store.progress().await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
