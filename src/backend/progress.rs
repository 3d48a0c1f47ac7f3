//! Long work made visible to `smimp-gateway status`: a reporter the proof of work and
//! the mailbox sync call as they go. The first report writes the task's row (so only
//! work long enough to report is ever written), later ones update it, and `finish`
//! removes it. A database failure here is logged and never stops the work itself.

use crate::clock::unix_now;
use crate::smimp::address::Address;
use crate::store::{GatewayStore, ProgressRecord};

/// One task's progress: `task` says what is being done, in words.
pub struct Progress<'a> {
    store: &'a GatewayStore,
    account: &'a Address,
    task: String,
    started_at: i64,
    written: bool,
}

impl<'a> Progress<'a> {
    pub fn new(store: &'a GatewayStore, account: &'a Address, task: String) -> Self {
        Self { store, account, task, started_at: unix_now(), written: false }
    }

    /// `done` units of an expected `total` so far.
    pub async fn report(&mut self, done: u64, total: u64) {
        let record = ProgressRecord {
            account: self.account.clone(),
            task: self.task.clone(),
            done: i64::try_from(done).unwrap_or(i64::MAX),
            total: i64::try_from(total).unwrap_or(i64::MAX),
            started_at: self.started_at,
            updated_at: unix_now(),
        };
        match self.store.set_progress(&record).await {
            Ok(()) => self.written = true,
            Err(err) => tracing::warn!(task = %self.task, error = %err, "progress could not be recorded for status"),
        }
    }

    /// The task ended, however it ended.
    pub async fn finish(self) {
        if self.written {
            if let Err(err) = self.store.clear_progress(self.account, &self.task).await {
                tracing::warn!(task = %self.task, error = %err, "finished work could not be cleared from status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_reported_work_is_written_and_finishing_removes_it() {
        let dir = std::env::temp_dir().join(format!("smimp-progress-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).await.unwrap();
        let alice: Address = "alice#example.org".parse().unwrap();

        let quick = Progress::new(&store, &alice, "proof of work for bob#example.net".into());
        assert!(store.progress().await.unwrap().is_empty());
        quick.finish().await;

        let mut long = Progress::new(&store, &alice, "sync of INBOX".into());
        long.report(500, 10_000).await;
        long.report(1000, 10_000).await;
        let listed = store.progress().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].task.as_str(), listed[0].done, listed[0].total), ("sync of INBOX", 1000, 10_000));
        long.finish().await;
        assert!(store.progress().await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
