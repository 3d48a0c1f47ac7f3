//! Which SMIMP message each UID of a mailbox shows, as of the mailbox's last snapshot.
//! A client's FETCH of thousands of messages asks for them one UID at a time; answering
//! from memory instead of two database queries per message is what keeps a warm fetch
//! close to a plain IMAP server. The database stays the record: a UID the index does
//! not hold is looked up there.
//!
//! Safe to keep because a mailbox's UID never changes its message (UIDs are never
//! reused), and every change to an account's mailbox list (create, rename, delete, a
//! folder change seen on the server) drops the account's index, so a name never
//! points at another mailbox's UIDs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::store::{MessageRow, Uid};

/// One mailbox's UIDs and the SMIMP message ids they show.
type MailboxMap = Arc<HashMap<Uid, Id32>>;

/// The UID → message id maps of every account's mailboxes, by mailbox name.
#[derive(Default)]
pub struct UidIndex {
    accounts: Mutex<HashMap<Address, HashMap<String, MailboxMap>>>,
}

/// INBOX is case-insensitive (RFC 3501 §5.1); every other name is exact.
fn key(name: &str) -> &str {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        name
    }
}

impl UidIndex {
    /// Replaces the mailbox's map with the messages of a fresh snapshot.
    pub fn remember(&self, address: &Address, name: &str, messages: &[MessageRow]) {
        let map: HashMap<Uid, Id32> = messages.iter().map(|m| (m.uid, m.message_id)).collect();
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.entry(address.clone()).or_default().insert(key(name).to_string(), Arc::new(map));
    }

    /// The message id shown under `uid`, if the last snapshot held it.
    pub fn lookup(&self, address: &Address, name: &str, uid: Uid) -> Option<Id32> {
        let accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.get(address)?.get(key(name))?.get(&uid).copied()
    }

    /// Drops UIDs that left the mailbox (expunged or moved away).
    pub fn forget_uids(&self, address: &Address, name: &str, uids: &[Uid]) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(map) = accounts.get_mut(address).and_then(|m| m.get_mut(key(name))) {
            let map = Arc::make_mut(map);
            for uid in uids {
                map.remove(uid);
            }
        }
    }

    /// Drops every map of the account: its mailbox names may now mean other mailboxes.
    pub fn forget_account(&self, address: &Address) {
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.remove(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Flags;

    /// A message id made of one repeated byte.
    fn id(byte: u8) -> Id32 {
        Id32([byte; 32])
    }

    fn row(uid: u32, byte: u8) -> MessageRow {
        MessageRow {
            uid: Uid::new(uid),
            message_id: id(byte),
            flags: Flags::default(),
            internal_date: 0,
            size: 0,
            modseq: 1,
        }
    }

    #[test]
    fn lookups_follow_the_last_snapshot_and_every_forget() {
        let alice: Address = "alice#example.org".parse().unwrap();
        let bob: Address = "bob#example.org".parse().unwrap();
        let index = UidIndex::default();
        let look = |address: &Address, name: &str, uid: u32| index.lookup(address, name, Uid::new(uid));
        index.remember(&alice, "INBOX", &[row(1, 0xa1), row(2, 0xa2)]);
        index.remember(&alice, "Work", &[row(1, 0x01)]);
        index.remember(&bob, "INBOX", &[row(1, 0xb1)]);
        assert_eq!(look(&alice, "inbox", 2), Some(id(0xa2)));
        assert_eq!(look(&alice, "Work", 1), Some(id(0x01)));
        assert_eq!(look(&alice, "work", 1), None, "only INBOX ignores case");
        assert_eq!(look(&bob, "INBOX", 1), Some(id(0xb1)));
        assert_eq!(look(&alice, "INBOX", 3), None);

        index.forget_uids(&alice, "INBOX", &[Uid::new(1)]);
        assert_eq!(look(&alice, "INBOX", 1), None);
        assert_eq!(look(&alice, "INBOX", 2), Some(id(0xa2)));

        index.remember(&alice, "INBOX", &[row(2, 0xa2), row(3, 0xa3)]);
        assert_eq!(look(&alice, "INBOX", 3), Some(id(0xa3)));

        index.forget_account(&alice);
        assert_eq!(look(&alice, "INBOX", 2), None);
        assert_eq!(look(&alice, "Work", 1), None);
        assert_eq!(look(&bob, "INBOX", 1), Some(id(0xb1)), "other accounts keep theirs");
    }
}
