//! Mailbox management (spec "Mailbox Management"; docs/protocol.md §8.10–§8.20):
//! folders and their path-safe names, message listings, moving, the read flag and
//! the sealed extension data, with their one-field acknowledgements.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{SealedData, StoredEnvelope};
use crate::smimp::message::MessageType;
use crate::smimp::timestamp::Timestamp;

/// Longest folder name accepted.
pub const MAX_FOLDER_NAME_LEN: usize = 64;

/// Why a folder name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolderNameError {
    #[error("the folder name is empty")]
    Empty,
    #[error("the folder name is longer than {MAX_FOLDER_NAME_LEN} characters")]
    TooLong,
    #[error("the folder name may contain only lowercase letters, digits and '-', not {0:?}")]
    Character(char),
}

/// A folder's name as used in paths: `[a-z0-9-]{1,64}` (spec "Create Folder":
/// special characters removed, lowercase). Unique within a message type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderName(String);

impl FolderName {
    /// Validates a name; uppercase is refused, not folded, so two clients never
    /// disagree about which folder a name means.
    pub fn parse(text: &str) -> Result<Self, FolderNameError> {
        if text.is_empty() {
            return Err(FolderNameError::Empty);
        }
        if let Some(bad) = text.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(FolderNameError::Character(bad));
        }
        if text.len() > MAX_FOLDER_NAME_LEN {
            return Err(FolderNameError::TooLong);
        }
        Ok(Self(text.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for FolderName {
    type Err = FolderNameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for FolderName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FolderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A folder. The root folder of each message type is implicit and unnamed
/// (`parent: null` means "in the root"); the gateway shows the `email` root as INBOX.
/// The same document creates a folder, renames or moves one (its new state), and
/// is returned by both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Folder {
    pub display_name: String,
    pub folder_name: FolderName,
    pub parent: Option<FolderName>,
    pub message_type: MessageType,
}

/// `POST {v}/folders/{folder_name}`: the folder's new display name, name and parent;
/// `message_type` says which folder of that name is meant.
pub type UpdateFolderRequest = Folder;

/// `GET {v}/folders[/{message_type}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderList {
    pub folders: Vec<Folder>,
}

/// One line of a folder listing: enough to show a message list without fetching
/// any envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub message_id: Id32,
    pub received_at: Timestamp,
    pub read: bool,
    pub sender: Address,
    /// The stored envelope's size in bytes.
    pub size: u64,
}

/// `GET {v}/folder/{message_type}[/{folder_name}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageList {
    pub messages: Vec<MessageSummary>,
}

/// Messages a page of [`ChangeList`] carries at most (docs/protocol.md §8.29).
pub const CHANGES_PER_PAGE: usize = 1000;

/// Extension `x-changes`: one message of a folder as it is after its last change,
/// with the modseq of that change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageChange {
    pub message_id: Id32,
    pub modseq: u64,
    pub read: bool,
    /// The sealed envelope-level extensions data (§8.20), as the owner last set it.
    pub extensions_data: Option<SealedData>,
    pub received_at: Timestamp,
    pub sender: Address,
    pub size: u64,
}

/// Extension `GET {v}/x-changes/{message_type}[/{folder_name}]/{since}`: what changed
/// in one folder after modseq `since`, oldest change first, at most
/// [`CHANGES_PER_PAGE`] entries (changes and vanished ids together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeList {
    /// Ask from here next: the account's modseq, or the last change on this page
    /// when `more` is set.
    pub modseq: u64,
    pub changes: Vec<MessageChange>,
    /// Messages that left the folder (deleted or moved out) after `since`.
    pub vanished: Vec<Id32>,
    /// More changes follow: ask again from `modseq`.
    pub more: bool,
    /// `since` is older than the oldest departure the server still remembers: the
    /// lists are empty, and the client lists the folder afresh and goes on from `modseq`.
    #[serde(default)]
    pub expired: bool,
}

/// `GET {v}/message/{message_id}/{update_read}` returns the stored envelope itself.
pub type GetMessageResponse = StoredEnvelope;

/// A folder's storage position (extension `x-envelopes`, docs/protocol.md §8.30): the
/// server's order of arrival, increasing; `0` is before the first message. Opaque to
/// clients, which only hand back what a page gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub u64);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Position {
    type Err = std::num::ParseIntError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Self)
    }
}

/// One envelope of an `x-envelopes` page: the envelope as stored at delivery, with the
/// read status and extensions data as they are now (they override the envelope's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagedEnvelope {
    pub envelope: StoredEnvelope,
    pub read: bool,
    pub extensions_data: Option<SealedData>,
}

impl PagedEnvelope {
    /// The stored envelope with its current read status and extensions data.
    pub fn into_current(self) -> StoredEnvelope {
        let mut envelope = self.envelope;
        envelope.server.read = self.read;
        envelope.server.extensions_data = self.extensions_data;
        envelope
    }
}

/// Extension: `GET {v}/x-envelopes/{message_type}[/{folder_name}]/{after}`: the
/// folder's envelopes stored after position `after`, oldest first, bounded in count
/// and bytes; `next` is the position to ask from for the rest, `more` whether there
/// may be any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopePage {
    pub envelopes: Vec<PagedEnvelope>,
    pub next: Position,
    pub more: bool,
}

/// `POST {v}/message_move/{message_id}`: the destination; `null` is the root folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveMessageRequest {
    pub folder_name: Option<FolderName>,
}

/// `GET` and `POST {v}/message_read/{message_id}`: the read flag after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStatus {
    pub read: bool,
}

/// `POST {v}/message_read/{message_id}`: the body is the bare JSON literal `true` or
/// `false`, as the spec words it ("POST either true or false").
// SPEC: docs/protocol.md §8.19 and §11.
pub type SetReadRequest = bool;

/// `POST {v}/message_extensions/{message_id}`: the replacement sealed document, or
/// `null` to clear it.
pub type ExtensionsUpdate = Option<SealedData>;

/// `DELETE {v}/message/{id}` and the folder-delete extension: `{"deleted": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

/// `POST {v}/message_move/{id}`: `{"moved": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub moved: bool,
}

/// `POST {v}/message_extensions/{id}`: `{"updated": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    pub updated: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn folder_names_are_lowercase_path_safe() {
        assert_eq!(FolderName::parse("work-2025").unwrap().as_str(), "work-2025");
        assert_eq!(FolderName::parse(""), Err(FolderNameError::Empty));
        assert_eq!(FolderName::parse("Work"), Err(FolderNameError::Character('W')));
        assert_eq!(FolderName::parse("a b"), Err(FolderNameError::Character(' ')));
        assert_eq!(FolderName::parse("a/b"), Err(FolderNameError::Character('/')));
        assert_eq!(FolderName::parse(&"a".repeat(65)), Err(FolderNameError::TooLong));
        assert!(serde_json::from_value::<Folder>(
            json!({"display_name": "W", "folder_name": "W", "parent": null, "message_type": "email"})
        )
        .is_err());
    }
}
