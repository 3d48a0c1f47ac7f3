//! The account's SMIMP mailbox as IMAP shows it (design §2 "Inbound"): folders of type
//! `email` become mailboxes (the root folder is INBOX), new messages get UIDs that are
//! never reused, each message is fetched, verified, opened and rendered once — on all
//! cores — and kept in the sealed cache, and IMAP's changes (flags, expunge, move,
//! append, folders) are carried out on the account's server, so every device sees them.
//!
//! This file holds what every part shares: [`Mailboxes`], each account's session and
//! sync lock, and [`MailboxError`]. The parts: [`folders`] (mailboxes ↔ folders),
//! [`sync`] (fetch → verify → render → record), [`cache`] (memory, then the sealed
//! table), [`flags`] (STORE), [`follow`] (the server's change feed: other devices'
//! flags) and [`changes`] (EXPUNGE, COPY, MOVE, APPEND).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use tokio::sync::{Mutex, Notify};

use crate::backend::account::Account;
use crate::backend::hot_cache::HotCache;
use crate::backend::outbound::DeliveryError;
use crate::backend::uid_index::UidIndex;
use crate::client::{ClientError, SessionClient};
use crate::discovery::Discovery;
use crate::imap::RecentClaims;
use crate::keystore::KdfParams;
use crate::smimp::address::Address;
use crate::smimp::wire::FolderNameError;
use crate::store::{GatewayStore, StoreError, Uid};

mod cache;
mod changes;
mod flags;
mod folders;
mod follow;
mod sync;

pub use flags::FlagChange;
pub use folders::SPECIAL_MAILBOXES;

/// Bytes of decrypted messages kept in memory for repeat fetches, unless
/// [`Mailboxes::with_hot_cache_bytes`] says otherwise (the gateway's `[imap]
/// hot_cache_bytes`, whose default this is).
const DEFAULT_HOT_CACHE_BYTES: usize = 32 << 20;

/// Why a mailbox operation failed; each says what the user can do about it. The IMAP
/// front-end's one mapping to `NO` responses is in `backend/imap_store.rs`.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("there is no mailbox {0}")]
    NoMailbox(String),
    #[error("the mailbox {0} already exists")]
    Exists(String),
    #[error("no message with UID {0}")]
    NoMessage(Uid),
    #[error("the mailbox name {0} has an empty level")]
    EmptyLevel(String),
    #[error("no folder name for {display}: {source}")]
    NoFolderName { display: String, source: FolderNameError },
    #[error("INBOX cannot hold other mailboxes here; create them at the top")]
    InboxNoChildren,
    #[error("INBOX cannot hold other mailboxes here")]
    InboxNotParent,
    #[error("INBOX cannot be deleted")]
    InboxDelete,
    #[error("INBOX cannot be renamed here; move its messages instead")]
    InboxRename,
    #[error("{0} is a special mailbox the gateway keeps")]
    Special(String),
    #[error("{0} has mailboxes inside it; delete those first")]
    HasChildren(String),
    #[error("rendering stopped: {0}")]
    Render(#[from] tokio::task::JoinError),
    #[error("the clock is out of range")]
    Clock,
    #[error("no UID was given")]
    NoUid,
    #[error("the account's SMIMP server cannot be reached or failed: {0}")]
    Server(#[from] ClientError),
    #[error("the account's SMIMP server cannot be reached or failed: {0}")]
    Send(DeliveryError),
    #[error("the gateway's database failed: {0}")]
    Store(#[from] StoreError),
    #[error("the keys of the message's sender {sender} cannot be checked now; try again later ({reason})")]
    SenderWaits { sender: Address, reason: String },
}

impl From<DeliveryError> for MailboxError {
    fn from(err: DeliveryError) -> Self {
        match err {
            DeliveryError::Store(err) => MailboxError::Store(err),
            other => MailboxError::Send(other),
        }
    }
}

/// One account's connection state: the lock that keeps two syncs of one account from
/// fetching the same messages twice, the change signal IDLE waits on, and which
/// messages every IMAP session of the account has been shown as `\Recent`.
#[derive(Default)]
struct AccountState {
    sync: Mutex<()>,
    changes: Arc<Notify>,
    recent: Arc<RecentClaims>,
}

/// The gateway's side of IMAP, for every account it serves.
pub struct Mailboxes {
    store: GatewayStore,
    discovery: Discovery,
    accounts: HashMap<String, Arc<Account>>,
    cache_max_bytes: u64,
    /// Bytes in the sealed cache (counted from the table once, then kept up to date).
    cache_bytes: AtomicU64,
    cache_counted: AtomicBool,
    /// Recently read messages, decrypted, in memory only (bounded).
    hot: HotCache,
    /// UID → message id per mailbox, from the last snapshot.
    index: UidIndex,
    states: std::sync::Mutex<HashMap<Address, Arc<AccountState>>>,
    /// How keystores are written when a sync picks up keys another device shared.
    keystore_kdf: Option<KdfParams>,
}

impl Mailboxes {
    pub fn new(
        store: GatewayStore,
        discovery: Discovery,
        accounts: HashMap<String, Arc<Account>>,
        cache_max_bytes: u64,
    ) -> Self {
        Self {
            store,
            discovery,
            accounts,
            cache_max_bytes,
            cache_bytes: AtomicU64::default(),
            cache_counted: AtomicBool::default(),
            hot: HotCache::new(DEFAULT_HOT_CACHE_BYTES),
            index: UidIndex::default(),
            states: std::sync::Mutex::new(HashMap::new()),
            keystore_kdf: None,
        }
    }

    /// Lets a sync pick up message keys the account's other devices shared, writing
    /// the keystore with `kdf` (`[keystore]`), when mail arrives sealed to one.
    pub fn with_keystore_kdf(mut self, kdf: KdfParams) -> Self {
        self.keystore_kdf = Some(kdf);
        self
    }

    /// Holds at most `bytes` of decrypted mail in memory (`[imap] hot_cache_bytes`).
    pub fn with_hot_cache_bytes(mut self, bytes: usize) -> Self {
        self.hot = HotCache::new(bytes);
        self
    }

    /// Checks a login against the account's keystore; `None` for any failure.
    pub async fn authenticate(&self, username: &str, password: &str) -> Option<Arc<Account>> {
        let account = self.accounts.get(&username.to_ascii_lowercase())?.clone();
        account.check_password(password).await.then_some(account)
    }

    fn state(&self, address: &Address) -> Arc<AccountState> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.entry(address.clone()).or_insert_with(|| Arc::new(AccountState::default())).clone()
    }

    /// Woken when any of the account's mailboxes changes.
    pub fn changes(&self, account: &Account) -> Arc<Notify> {
        self.state(&account.sender.address).changes.clone()
    }

    /// Which messages the account's IMAP sessions have been shown as `\Recent`, shared
    /// by all of them, on every listener; seeded from the mailbox's stored `recent_uid`
    /// at each snapshot, so a restart does not make them recent again.
    pub fn recent(&self, account: &Account) -> Arc<RecentClaims> {
        self.state(&account.sender.address).recent.clone()
    }

    /// Stores that a read-write session has been told of every UID up to `uid`.
    pub async fn keep_recent(&self, account: &Account, name: &str, uid: u32) -> Result<(), MailboxError> {
        let row = self.mailbox(account, name).await?;
        Ok(self.store.raise_recent_uid(row.id, uid).await?)
    }

    /// The UIDs `name` lost after modseq `since` (QRESYNC's VANISHED).
    pub async fn expunged_since(&self, account: &Account, name: &str, since: u64) -> Result<Vec<Uid>, MailboxError> {
        let row = self.mailbox(account, name).await?;
        Ok(self.store.expunged_since(row.id, since).await?)
    }

    /// The account's session at its own server, shared with its deliveries and APPENDs.
    async fn client(&self, account: &Account) -> Result<Arc<SessionClient>, MailboxError> {
        Ok(account.sender.sessions.own(&self.discovery).await?)
    }

    fn notify(&self, account: &Account) {
        self.state(&account.sender.address).changes.notify_waiters();
    }
}
