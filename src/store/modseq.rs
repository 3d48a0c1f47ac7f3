//! Modification sequences (RFC 7162; migrations/gateway/0008): the UIDs a mailbox lost
//! after a modseq, for QRESYNC's VANISHED, and how far the mailbox has followed its
//! server's `x-changes` feed (docs/protocol.md §8.29). The modseqs themselves are kept
//! by triggers on every write of the IMAP view, so no writer can forget one.

use super::rows::Uid;
use super::{GatewayStore, StoreError};

impl GatewayStore {
    /// The UIDs removed from `mailbox` after `modseq`, ascending.
    pub async fn expunged_since(&self, mailbox: i64, modseq: u64) -> Result<Vec<Uid>, StoreError> {
        let uids: Vec<i64> =
            sqlx::query_scalar("SELECT uid FROM expunged_uids WHERE mailbox = ? AND modseq > ? ORDER BY uid")
                .bind(mailbox)
                .bind(i64::try_from(modseq).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
        uids.into_iter()
            .map(|uid| {
                u32::try_from(uid).map(Uid::new).map_err(|_| StoreError::Corrupt("expunged UID out of range".into()))
            })
            .collect()
    }

    /// The server modseq `mailbox` has followed the change feed up to (0: not yet).
    pub async fn feed_modseq(&self, mailbox: i64) -> Result<u64, StoreError> {
        let modseq: i64 = sqlx::query_scalar("SELECT feed_modseq FROM mailboxes WHERE id = ?")
            .bind(mailbox)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(modseq).unwrap_or(0))
    }

    /// Records how far `mailbox` has followed the change feed.
    pub async fn set_feed_modseq(&self, mailbox: i64, modseq: u64) -> Result<(), StoreError> {
        sqlx::query("UPDATE mailboxes SET feed_modseq = ? WHERE id = ?")
            .bind(i64::try_from(modseq).unwrap_or(i64::MAX))
            .bind(mailbox)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::address::Address;
    use crate::smimp::encoding::Id32;
    use crate::store::{Flag, Flags, NewMessage};

    #[tokio::test]
    async fn every_change_of_the_view_takes_the_next_modseq() {
        let dir = std::env::temp_dir().join(format!("smimp-modseq-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).await.unwrap();
        let alice: Address = "alice#example.org".parse().unwrap();
        let inbox = store.add_mailbox(&alice, "INBOX", None, 100).await.unwrap();
        let start = inbox.highest_modseq;
        let new =
            |byte| NewMessage { message_id: Id32([byte; 32]), flags: Flags::default(), internal_date: 1, size: 1 };
        let uids = store.add_mailbox_messages(inbox.id, &[new(1), new(2)]).await.unwrap();
        let rows = store.mailbox_messages(inbox.id).await.unwrap();
        assert_eq!((rows[0].modseq, rows[1].modseq), (start + 1, start + 2), "each arrival its own");

        let mut flags = Flags::default();
        flags.set(Flag::Flagged, true);
        store.set_message_flags(inbox.id, uids[0], &flags).await.unwrap();
        store.set_message_flags(inbox.id, uids[0], &flags).await.unwrap();
        let first = store.mailbox_message(inbox.id, uids[0]).await.unwrap().unwrap();
        assert_eq!(first.modseq, start + 3, "a change bumps; the same flags again do not");

        assert!(store.expunged_since(inbox.id, 0).await.unwrap().is_empty());
        store.remove_mailbox_messages(inbox.id, &[uids[1]]).await.unwrap();
        let row = store.mailbox_for_folder(&alice, None).await.unwrap().unwrap();
        assert_eq!(row.highest_modseq, start + 4);
        assert_eq!(store.expunged_since(inbox.id, start + 3).await.unwrap(), vec![uids[1]]);
        assert!(store.expunged_since(inbox.id, start + 4).await.unwrap().is_empty());

        assert_eq!(store.feed_modseq(inbox.id).await.unwrap(), 0);
        store.set_feed_modseq(inbox.id, 42).await.unwrap();
        assert_eq!(store.feed_modseq(inbox.id).await.unwrap(), 42);
        store.remove_mailbox(inbox.id).await.unwrap();
        assert!(store.expunged_since(inbox.id, 0).await.unwrap().is_empty(), "gone with its mailbox");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
