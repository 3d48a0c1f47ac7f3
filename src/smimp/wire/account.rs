//! Account administration (spec "Account Administration"; docs/protocol.md
//! §8.21–§8.28): initialisation by password hash, the message keys, profile
//! updates, the sender lists (hashed entries, sealed content) and the quota.

use serde::{Deserialize, Serialize};

use super::Api;
use crate::smimp::address::{normalise_domain, Address, AddressError};
use crate::smimp::crypto::{Hash, MasterPublicKey};
use crate::smimp::envelope::SealedData;
use crate::smimp::keys::SignedMessageKey;
use crate::smimp::profile::ProfileRecord;
use crate::smimp::transcript::{Purpose, Transcript};

/// The hash `initialize_account` carries instead of the password, so the password
/// itself never leaves the client.
pub fn init_password_hash(password: &str) -> Hash {
    Transcript::new(Purpose::InitPassword).field(password).hash()
}

/// What a whitelist or blacklist entry names: one address or a whole domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListTarget {
    Address(Address),
    /// A lowercase DNS name.
    Domain(String),
}

impl ListTarget {
    /// Reads `alice#example.org` as an address and `example.org` as a domain,
    /// normalised, so that the same entry always hashes the same.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.contains('#') {
            Address::parse(text).map(Self::Address)
        } else {
            normalise_domain(text).map(Self::Domain)
        }
    }

    /// The normalised text that is hashed and sealed.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Address(address) => address.as_str(),
            Self::Domain(domain) => domain,
        }
    }

    /// The hash the server stores and matches senders against.
    pub fn hash(&self) -> Hash {
        list_entry_hash(self.as_str())
    }
}

/// The hash of a list entry's normalised text (an address or a lowercase domain):
/// the server matches senders by it without being told the list in the clear.
pub fn list_entry_hash(entry: &str) -> Hash {
    Transcript::new(Purpose::ListEntry).field(entry).hash()
}

/// Which of the two sender lists an operation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Whitelist,
    Blacklist,
}

impl ListKind {
    /// The API (and path segment) of this list.
    pub fn api(self) -> Api {
        match self {
            ListKind::Whitelist => Api::Whitelist,
            ListKind::Blacklist => Api::Blacklist,
        }
    }
}

/// `POST {v}/initialize_account`: everything an account needs before it can be
/// found and receive mail, authenticated by the hash of the creation password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitializeAccountRequest {
    pub address: Address,
    /// [`init_password_hash`] of the password the operator set at account creation.
    pub password_hash: Hash,
    /// The first record of the history, signed by its own key.
    pub record: ProfileRecord,
    /// The spec's "public encryption key" and "non-ephemeral key" (one key here).
    // SPEC: read as one key, docs/protocol.md §8.21 and §11.
    pub nonephemeral_key: SignedMessageKey,
    pub ephemeral_keys: Option<Vec<SignedMessageKey>>,
}

/// The account is initialised: its address and master key as the server stored them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInitialized {
    pub address: Address,
    pub public_key: MasterPublicKey,
}

/// `GET {v}/ephemeral_keys` (the unissued keys) and the body of `POST`, which
/// replaces every unissued key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralKeys {
    pub keys: Vec<SignedMessageKey>,
}

/// How many unissued ephemeral keys the server now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub count: u64,
}

/// `POST {v}/update_profile` takes the next [`ProfileRecord`] and answers with the
/// history's new length, so the client can move its own pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileLength {
    pub length: u64,
}

/// A whitelist or blacklist entry: the hash the server matches senders by and the
/// sealed [`ListEntryContent`] only the owner can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntry {
    /// [`list_entry_hash`] of the entry's normalised text.
    pub hash: Hash,
    pub entry: SealedData,
}

/// The plaintext inside a list entry's `entry` (spec: "the address or domain, and
/// a note"); the server never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntryContent {
    /// The normalised address or lowercase domain.
    pub entry: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Extension: `GET {v}/whitelist` or `GET {v}/blacklist`, so a client can show the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntries {
    pub entries: Vec<ListEntry>,
}

/// `GET {v}/quota`: bytes used by stored messages, and bytes available (-1 when
/// unlimited, as the spec asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub used: u64,
    pub available: i64,
}

impl Quota {
    /// The wire value of "unlimited".
    pub const UNLIMITED: i64 = -1;

    /// The space available, or `None` when unlimited (any negative value).
    pub fn available_bytes(&self) -> Option<u64> {
        u64::try_from(self.available).ok()
    }
}

/// `POST {v}/whitelist` and `POST {v}/blacklist`: `{"added": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    pub added: bool,
}

/// `DELETE {v}/whitelist/{hash}` and `DELETE {v}/blacklist/{hash}`: `{"removed": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Address {
        Address::parse("alice#example.org").unwrap()
    }

    #[test]
    fn list_targets_normalise_before_hashing() {
        let a = ListTarget::parse("Alice#Example.org").unwrap();
        assert_eq!(a, ListTarget::Address(alice()));
        let d = ListTarget::parse("Example.ORG.").unwrap();
        assert_eq!(d, ListTarget::Domain("example.org".into()));
        assert_eq!(d.hash(), list_entry_hash("example.org"));
        assert_ne!(a.hash(), d.hash());
        assert!(ListTarget::parse("first.last#example.org").is_err());
    }
}
