//! Typed columns and the IMAP view's rows, read from SQLite in one place: each column is
//! parsed once here (addresses, UIDs, SMIMP message ids, folder names, flags, a queue
//! row's route), so the backend never re-parses a string, and no two row mappings are
//! copies of each other.

use std::fmt;

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::deliveries::DeliveryRecord;
use super::flags::Flags;
use super::{OutboundRow, Recipient, StoreError};
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::wire::{FolderName, Position};

/// An IMAP UID (RFC 3501 §2.3.1.1): never 0 for a message, never given twice in a
/// mailbox of one UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(u32);

impl Uid {
    pub const fn new(value: u32) -> Self {
        Self(value)
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl From<u32> for Uid {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

impl From<Uid> for u32 {
    fn from(uid: Uid) -> Self {
        uid.0
    }
}

impl From<Uid> for i64 {
    fn from(uid: Uid) -> Self {
        i64::from(uid.0)
    }
}

impl PartialEq<u32> for Uid {
    fn eq(&self, other: &u32) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One mailbox as the gateway shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxRow {
    pub id: i64,
    pub name: String,
    /// The SMIMP folder; `None` for the root `email` folder (INBOX).
    pub folder: Option<FolderName>,
    pub uid_validity: u32,
    pub uid_next: Uid,
    pub subscribed: bool,
    /// The highest UID a read-write IMAP session has been told of (`\Recent` above it).
    pub recent_uid: u32,
    /// How far the sync has read the server folder by the page.
    pub server_position: Position,
    /// CONDSTORE's HIGHESTMODSEQ (RFC 7162 §3.1.2.1), kept by triggers (migrations/gateway/0008).
    pub highest_modseq: u64,
}

/// One message shown in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub uid: Uid,
    /// The SMIMP message id.
    pub message_id: Id32,
    pub flags: Flags,
    pub internal_date: i64,
    pub size: u32,
    /// The modseq of its last change (RFC 7162 §3.1.1).
    pub modseq: u64,
}

/// A message to add to a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub message_id: Id32,
    pub flags: Flags,
    pub internal_date: i64,
    pub size: u32,
}

/// An integer column that must fit a `u32`.
fn u32_column(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    u32::try_from(row.try_get::<i64, _>(column)?).map_err(|_| StoreError::Corrupt(format!("{column} out of range")))
}

/// A text column holding a value of a parsed type.
pub(super) fn parsed_column<T: std::str::FromStr>(row: &SqliteRow, column: &str) -> Result<T, StoreError>
where
    T::Err: fmt::Display,
{
    super::parse(&row.try_get::<String, _>(column)?, column)
}

/// A nullable text column holding a value of a parsed type.
pub(super) fn optional_parsed_column<T: std::str::FromStr>(
    row: &SqliteRow,
    column: &str,
) -> Result<Option<T>, StoreError>
where
    T::Err: fmt::Display,
{
    let text: Option<String> = row.try_get(column)?;
    text.map(|text| super::parse(&text, column)).transpose()
}

/// A queue row's recipient: its `route`, `recipient` and `envelope_from` columns.
fn recipient_columns(row: &SqliteRow) -> Result<Recipient, StoreError> {
    Recipient::from_columns(
        &row.try_get::<String, _>("route")?,
        row.try_get("recipient")?,
        row.try_get("envelope_from")?,
    )
}

/// What every reading of a queue row shares: whose, to whom, and how it stands.
struct QueueState {
    account: Address,
    recipient: Recipient,
    state: String,
    attempts: i64,
    last_error: Option<String>,
}

impl QueueState {
    fn read(row: &SqliteRow) -> Result<QueueState, StoreError> {
        Ok(QueueState {
            account: parsed_column(row, "account")?,
            recipient: recipient_columns(row)?,
            state: row.try_get("state")?,
            attempts: row.try_get("attempts")?,
            last_error: row.try_get("last_error")?,
        })
    }
}

/// A queue row as the delivery worker reads it.
pub(super) fn outbound_row(row: &SqliteRow) -> Result<OutboundRow, StoreError> {
    let QueueState { account, recipient, state, attempts, last_error } = QueueState::read(row)?;
    Ok(OutboundRow {
        id: row.try_get("id")?,
        account,
        recipient,
        message_type: row.try_get("message_type")?,
        nonce: row.try_get("nonce")?,
        sealed_payload: row.try_get("sealed_payload")?,
        state,
        attempts,
        give_up_at: row.try_get("give_up_at")?,
        last_error,
        message_id: row.try_get("message_id")?,
    })
}

/// A queue row as `status` shows it (`recent_deliveries`): never its payload.
pub(super) fn delivery_record(row: &SqliteRow) -> Result<DeliveryRecord, StoreError> {
    let QueueState { account, recipient, state, attempts, last_error } = QueueState::read(row)?;
    let (created_at, done_at) = (row.try_get("created_at")?, row.try_get("done_at")?);
    Ok(DeliveryRecord { account, recipient, state, attempts, last_error, created_at, done_at })
}

/// A size: the largest `u32` when the stored value is larger.
fn size_column(row: &SqliteRow, column: &str) -> Result<u32, StoreError> {
    Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(u32::MAX))
}

pub(super) const MAILBOX_COLUMNS: &str =
    "id, name, folder, uid_validity, uid_next, subscribed, recent_uid, server_position, highest_modseq";

pub(super) fn mailbox_row(row: &SqliteRow) -> Result<MailboxRow, StoreError> {
    Ok(MailboxRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        folder: optional_parsed_column(row, "folder")?,
        uid_validity: u32_column(row, "uid_validity")?,
        uid_next: Uid(u32_column(row, "uid_next")?),
        subscribed: row.try_get::<i64, _>("subscribed")? != 0,
        recent_uid: u32_column(row, "recent_uid")?,
        server_position: Position(u64::try_from(row.try_get::<i64, _>("server_position")?).unwrap_or(0)),
        highest_modseq: modseq_column(row, "highest_modseq")?,
    })
}

pub(super) const MESSAGE_COLUMNS: &str = "uid, message_id, flags, internal_date, size, modseq";

pub(super) fn message_row(row: &SqliteRow) -> Result<MessageRow, StoreError> {
    Ok(MessageRow {
        uid: Uid(u32_column(row, "uid")?),
        message_id: parsed_column(row, "message_id")?,
        flags: Flags::from_column(&row.try_get::<String, _>("flags")?),
        internal_date: row.try_get("internal_date")?,
        size: size_column(row, "size")?,
        modseq: modseq_column(row, "modseq")?,
    })
}

/// A modseq: positive, at most 2^63 - 1 (RFC 7162 §7, mod-sequence-value).
pub(super) fn modseq_column(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    u64::try_from(row.try_get::<i64, _>(column)?).map_err(|_| StoreError::Corrupt(format!("{column} out of range")))
}
