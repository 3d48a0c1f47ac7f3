//! The `x-changes` extension's reads (docs/protocol.md §8.29): what changed in one
//! folder after a modseq, so a second device follows flags and departures without
//! listing the folder again. Writers give every changed message the account's next
//! modseq and leave tombstones (`store/mod.rs`); this file only reads them, bounded
//! to one page.

use super::{backend, corrupt, parse, Backend, Columns, ServerStore, StoreError};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::MessageType;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{ChangeList, FolderName, MessageChange, CHANGES_PER_PAGE};

/// How long a tombstone is kept: a device away for longer lists its folders afresh.
pub const TOMBSTONE_MEMORY_SECS: i64 = 30 * 24 * 60 * 60;

/// One entry of a page, before the two kinds are split.
enum Entry {
    Changed(MessageChange),
    Vanished(i64, Id32),
}

impl Entry {
    fn modseq(&self) -> i64 {
        match self {
            Entry::Changed(change) => change.modseq as i64,
            Entry::Vanished(modseq, _) => *modseq,
        }
    }
}

fn change_from_row(r: &impl Columns) -> Result<MessageChange, StoreError> {
    let received_at = r.int("received_at")?;
    Ok(MessageChange {
        message_id: parse(&r.text("message_id")?, "message id")?,
        modseq: r.int("modseq")?.max(0) as u64,
        read: r.flag("read")?,
        extensions_data: r
            .maybe_text("extensions")?
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt(format!("extensions: {e}"))))
            .transpose()?,
        received_at: Timestamp::from_unix(received_at).ok_or_else(|| corrupt(format!("time {received_at}")))?,
        sender: parse(&r.text("sender")?, "sender")?,
        size: r.int("size")?.max(0) as u64,
    })
}

/// Splits entries (sorted by modseq) into a page: at most [`CHANGES_PER_PAGE`], and
/// the modseq to ask from next (`current` when nothing is left over).
fn page(mut entries: Vec<Entry>, current: i64) -> ChangeList {
    entries.sort_by_key(Entry::modseq);
    let more = entries.len() > CHANGES_PER_PAGE;
    entries.truncate(CHANGES_PER_PAGE);
    let modseq = if more { entries.last().map_or(current, Entry::modseq) } else { current };
    let (mut changes, mut vanished) = (Vec::new(), Vec::new());
    for entry in entries {
        match entry {
            Entry::Changed(change) => changes.push(change),
            Entry::Vanished(_, id) => vanished.push(id),
        }
    }
    ChangeList { modseq: modseq.max(0) as u64, changes, vanished, more, expired: false }
}

impl ServerStore {
    /// What changed in one folder (`None` = the type's root) after modseq `since`:
    /// one page, oldest first. The account's counter is read first and the rows up to
    /// it only, so a change committed meanwhile is left for the next call, never lost.
    pub async fn changes(
        &self,
        address: &Address,
        message_type: &MessageType,
        folder: Option<&FolderName>,
        since: u64,
    ) -> Result<ChangeList, StoreError> {
        let since = i64::try_from(since).unwrap_or(i64::MAX);
        let limit = CHANGES_PER_PAGE as i64 + 1;
        with_pool!(self, pool, sql, {
            let account = sql::query("SELECT modseq, vanished_floor FROM accounts WHERE address = ?")
                .bind(address.as_str())
                .fetch_one(pool)
                .await?;
            let (current, floor) = (account.int("modseq")?, account.int("vanished_floor")?);
            // From 0 a client asks for every message, and loses nothing to a forgotten tombstone.
            if since > 0 && since < floor {
                let modseq = current.max(0) as u64;
                return Ok(ChangeList { modseq, changes: vec![], vanished: vec![], more: false, expired: true });
            }
            let rows = sql::query(
                "SELECT message_id, modseq, read, extensions, received_at, sender, size FROM messages \
                 WHERE recipient = ? AND message_type = ? AND folder_name IS NOT DISTINCT FROM ? \
                 AND modseq > ? AND modseq <= ? ORDER BY modseq LIMIT ?",
            )
            .bind(address.as_str())
            .bind(message_type.as_str())
            .bind(folder.map(FolderName::as_str))
            .bind(since)
            .bind(current)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let gone = sql::query(
                "SELECT message_id, modseq FROM vanished_messages \
                 WHERE recipient = ? AND message_type = ? AND folder_name IS NOT DISTINCT FROM ? \
                 AND modseq > ? AND modseq <= ? ORDER BY modseq LIMIT ?",
            )
            .bind(address.as_str())
            .bind(message_type.as_str())
            .bind(folder.map(FolderName::as_str))
            .bind(since)
            .bind(current)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut entries = Vec::with_capacity(rows.len() + gone.len());
            for row in &rows {
                entries.push(Entry::Changed(change_from_row(row)?));
            }
            for row in &gone {
                entries.push(Entry::Vanished(row.int("modseq")?, parse(&row.text("message_id")?, "message id")?));
            }
            Ok(page(entries, current))
        })
    }
}
