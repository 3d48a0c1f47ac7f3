//! The account's SMIMP mailbox as IMAP shows it (design §2 "Inbound"): folders of type
//! `email` become mailboxes (the root folder is INBOX), new messages get UIDs that are
//! never reused, each message is fetched, verified, opened and rendered once — on all
//! cores — and kept in the sealed cache, and IMAP's changes (flags, expunge, move,
//! append, folders) are carried out on the account's server, so every device sees them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand_core::OsRng;
use tokio::sync::{Mutex, Notify, OnceCell};
use tokio::task::JoinSet;

use crate::backend::hot_cache::HotCache;
use crate::backend::inbound::{open_and_render, own_trust, seal_extras, MessageExtras, Rendered, SenderTrust};
use crate::backend::outbound::{send_payload, DeliveryError};
use crate::backend::progress::Progress;
use crate::backend::submission::Account;
use crate::backend::uid_index::UidIndex;
use crate::client::trust::{trusted_key, TrustError};
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::clock::unix_now;
use crate::discovery::Discovery;
use crate::mime::own::email_for_raw;
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxNonce;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::StoredEnvelope;
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::profile::verify_history;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{
    Deleted, ErrorCode, Folder, FolderList, FolderName, MessageList, MessageSummary, MoveMessageRequest, Moved,
    ReadStatus, Route, Updated, UserHistory, UserInfoKind,
};
use crate::store::{GatewayStore, MailboxRow, MessageRow, NewMessage, StoreError};

/// A sync of many new messages reports its progress (log and `status`) after every this many.
const SYNC_PROGRESS_EVERY: usize = 500;

/// Envelopes fetched from the server at once during a sync.
const FETCH_CONCURRENCY: usize = 16;

/// Bytes of decrypted messages kept in memory for repeat fetches.
const HOT_CACHE_BYTES: usize = 128 << 20;

/// The special mailboxes every account has: (IMAP name, SMIMP folder_name, SPECIAL-USE).
pub const SPECIAL_MAILBOXES: [(&str, &str, &str); 5] = [
    ("Sent", "sent", "\\Sent"),
    ("Drafts", "drafts", "\\Drafts"),
    ("Trash", "trash", "\\Trash"),
    ("Junk", "junk", "\\Junk"),
    ("Archive", "archive", "\\Archive"),
];

/// Why a mailbox operation failed; each says what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("there is no mailbox {0}")]
    NoMailbox(String),
    #[error("the mailbox {0} already exists")]
    Exists(String),
    #[error("{0}")]
    Cannot(String),
    #[error("the account's SMIMP server cannot be reached or failed: {0}")]
    Server(String),
    #[error("the gateway's database failed: {0}")]
    Store(#[from] StoreError),
    #[error("no message with UID {0}")]
    NoMessage(u32),
}

impl From<ClientError> for MailboxError {
    fn from(err: ClientError) -> Self {
        MailboxError::Server(err.to_string())
    }
}

/// How `store_flags` changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Add,
    Remove,
    Replace,
}

/// One account's connection state: its server session and the lock that keeps two
/// syncs of one account from fetching the same messages twice.
struct AccountState {
    client: OnceCell<Arc<SessionClient>>,
    sync: Mutex<()>,
    changes: Arc<Notify>,
}

/// The gateway's side of IMAP, for every account it serves.
pub struct Mailboxes {
    store: GatewayStore,
    discovery: Discovery,
    accounts: HashMap<String, Arc<Account>>,
    cache_max_bytes: u64,
    /// Bytes in the sealed cache (counted from the table once, then kept up to date).
    cache_bytes: std::sync::atomic::AtomicU64,
    cache_counted: std::sync::atomic::AtomicBool,
    /// Recently read messages, decrypted, in memory only (bounded).
    hot: HotCache,
    /// UID → message id per mailbox, from the last snapshot.
    index: UidIndex,
    states: std::sync::Mutex<HashMap<Address, Arc<AccountState>>>,
}

/// Flags as stored: a set of words.
pub fn parse_flags(text: &str) -> Vec<String> {
    let mut flags: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        if !flags.iter().any(|f| f.eq_ignore_ascii_case(word)) {
            flags.push(word.to_string());
        }
    }
    flags
}

fn join_flags(flags: &[String]) -> String {
    flags.join(" ")
}

fn has_flag(flags: &[String], flag: &str) -> bool {
    flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

/// A `[a-z0-9-]` folder name for a new mailbox: a readable stem and a random suffix,
/// so two mailboxes of one display name never collide.
fn new_folder_name(display: &str) -> Result<FolderName, MailboxError> {
    let stem: String = display
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_lowercase() || c.is_ascii_digit()).then_some(c)
        })
        .take(40)
        .collect();
    let suffix = &Id32::random(&mut OsRng).to_hex()[..8];
    let name = if stem.is_empty() { format!("box-{suffix}") } else { format!("{stem}-{suffix}") };
    FolderName::parse(&name).map_err(|e| MailboxError::Cannot(format!("no folder name for {display}: {e}")))
}

fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
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
            cache_bytes: Default::default(),
            cache_counted: Default::default(),
            hot: HotCache::new(HOT_CACHE_BYTES),
            index: UidIndex::default(),
            states: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Checks a login against the account's keystore; `None` for any failure.
    pub async fn authenticate(&self, username: &str, password: &str) -> Option<Arc<Account>> {
        let account = self.accounts.get(&username.to_ascii_lowercase())?.clone();
        account.check_password(password).await.then_some(account)
    }

    fn state(&self, address: &Address) -> Arc<AccountState> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states
            .entry(address.clone())
            .or_insert_with(|| {
                Arc::new(AccountState {
                    client: OnceCell::new(),
                    sync: Mutex::new(()),
                    changes: Arc::new(Notify::new()),
                })
            })
            .clone()
    }

    /// Woken when any of the account's mailboxes changes.
    pub fn changes(&self, account: &Account) -> Arc<Notify> {
        self.state(&account.sender.address).changes.clone()
    }

    async fn client(&self, account: &Account) -> Result<Arc<SessionClient>, MailboxError> {
        let state = self.state(&account.sender.address);
        let client = state
            .client
            .get_or_try_init(|| async {
                let server = ServerClient::connect(&self.discovery, account.sender.address.domain()).await?;
                Ok::<_, ClientError>(Arc::new(SessionClient::new(
                    server,
                    account.sender.address.clone(),
                    account.sender.master.clone(),
                )))
            })
            .await?;
        Ok(client.clone())
    }

    fn notify(&self, account: &Account) {
        self.state(&account.sender.address).changes.notify_waiters();
    }

    // ---- mailboxes ------------------------------------------------------------------

    /// Every mailbox, after reconciling with the server's folders (creating the special
    /// ones the first time).
    pub async fn list(&self, account: &Account) -> Result<Vec<MailboxRow>, MailboxError> {
        self.reconcile_folders(account).await?;
        Ok(self.store.mailboxes(&account.sender.address).await?)
    }

    async fn server_folders(&self, account: &Account) -> Result<Vec<Folder>, MailboxError> {
        let client = self.client(account).await?;
        let list: FolderList =
            client.call(&Route::ListFolders { message_type: Some(MessageType::Email) }, None::<&()>).await?;
        Ok(list.folders.into_iter().filter(|f| f.message_type == MessageType::Email).collect())
    }

    async fn reconcile_folders(&self, account: &Account) -> Result<(), MailboxError> {
        let address = &account.sender.address;
        self.index.forget_account(address);
        let client = self.client(account).await?;
        let mut folders = self.server_folders(account).await?;
        for (display, folder_name, _) in SPECIAL_MAILBOXES {
            if !folders.iter().any(|f| f.folder_name.as_str() == folder_name && f.parent.is_none()) {
                let folder = Folder {
                    display_name: display.to_string(),
                    folder_name: FolderName::parse(folder_name).map_err(|e| MailboxError::Cannot(e.to_string()))?,
                    parent: None,
                    message_type: MessageType::Email,
                };
                match client.call::<Folder, _>(&Route::CreateFolder, Some(&folder)).await {
                    Ok(created) => folders.push(created),
                    Err(err) if err.code() == Some(ErrorCode::Conflict) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        let paths = folder_paths(&folders);
        let now = unix_now();
        if self.store.mailbox_for_folder(address, None).await?.is_none() {
            self.store.add_mailbox(address, "INBOX", None, now).await?;
        }
        let rows = self.store.mailboxes(address).await?;
        for row in &rows {
            match &row.folder {
                None => {}
                Some(folder) => match paths.get(folder.as_str()) {
                    None => self.store.remove_mailbox(row.id).await?,
                    Some(path) if path != &row.name => self.store.rename_mailbox_row(row.id, path).await?,
                    Some(_) => {}
                },
            }
        }
        for (folder, path) in &paths {
            if self.store.mailbox_for_folder(address, Some(folder)).await?.is_none() {
                self.store.add_mailbox(address, path, Some(folder), now).await?;
            }
        }
        Ok(())
    }

    async fn mailbox(&self, account: &Account, name: &str) -> Result<MailboxRow, MailboxError> {
        let find = |rows: Vec<MailboxRow>| {
            rows.into_iter().find(|r| if is_inbox(name) { r.folder.is_none() } else { r.name == name })
        };
        if let Some(row) = find(self.store.mailboxes(&account.sender.address).await?) {
            return Ok(row);
        }
        find(self.list(account).await?).ok_or_else(|| MailboxError::NoMailbox(name.to_string()))
    }

    /// CREATE: a folder on the server (and its missing parents).
    pub async fn create(&self, account: &Account, name: &str) -> Result<(), MailboxError> {
        let name = name.trim_end_matches('/');
        if is_inbox(name) || name.is_empty() {
            return Err(MailboxError::Exists(name.to_string()));
        }
        let rows = self.list(account).await?;
        if rows.iter().any(|r| r.name == name) {
            return Err(MailboxError::Exists(name.to_string()));
        }
        let client = self.client(account).await?;
        let mut parent: Option<FolderName> = None;
        let mut path = String::new();
        for part in name.split('/') {
            if part.is_empty() {
                return Err(MailboxError::Cannot(format!("the mailbox name {name} has an empty level")));
            }
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
            if let Some(row) = rows.iter().find(|r| r.name == path) {
                let folder = row.folder.as_deref().ok_or_else(|| {
                    MailboxError::Cannot("INBOX cannot hold other mailboxes here; create them at the top".into())
                })?;
                parent = Some(FolderName::parse(folder).map_err(|e| MailboxError::Cannot(e.to_string()))?);
                continue;
            }
            let folder = Folder {
                display_name: part.to_string(),
                folder_name: new_folder_name(part)?,
                parent: parent.clone(),
                message_type: MessageType::Email,
            };
            let created: Folder = client.call(&Route::CreateFolder, Some(&folder)).await?;
            parent = Some(created.folder_name);
        }
        self.reconcile_folders(account).await?;
        self.notify(account);
        Ok(())
    }

    /// DELETE: the mailbox's messages, then its folder. INBOX, the special mailboxes and
    /// mailboxes with children stay.
    pub async fn delete(&self, account: &Account, name: &str) -> Result<(), MailboxError> {
        let row = self.mailbox(account, name).await?;
        let Some(folder) = row.folder.clone() else {
            return Err(MailboxError::Cannot("INBOX cannot be deleted".into()));
        };
        if SPECIAL_MAILBOXES.iter().any(|(_, f, _)| *f == folder) {
            return Err(MailboxError::Cannot(format!("{name} is a special mailbox the gateway keeps")));
        }
        let rows = self.store.mailboxes(&account.sender.address).await?;
        if rows.iter().any(|r| r.name.starts_with(&format!("{}/", row.name))) {
            return Err(MailboxError::Cannot(format!("{name} has mailboxes inside it; delete those first")));
        }
        let client = self.client(account).await?;
        let folder_name = FolderName::parse(&folder).map_err(|e| MailboxError::Cannot(e.to_string()))?;
        let listed: MessageList = client
            .call(
                &Route::ListMessages { message_type: MessageType::Email, folder_name: Some(folder_name.clone()) },
                None::<&()>,
            )
            .await?;
        for message in listed.messages {
            let _: Deleted = client.call(&Route::DeleteMessage { message_id: message.message_id }, None::<&()>).await?;
        }
        let _: Deleted =
            client.call(&Route::DeleteFolder { message_type: MessageType::Email, folder_name }, None::<&()>).await?;
        self.store.remove_mailbox(row.id).await?;
        self.index.forget_account(&account.sender.address);
        self.notify(account);
        Ok(())
    }

    /// RENAME: the folder's display name and parent change; its UIDs stay.
    pub async fn rename(&self, account: &Account, from: &str, to: &str) -> Result<(), MailboxError> {
        let to = to.trim_end_matches('/');
        let row = self.mailbox(account, from).await?;
        let Some(folder) = row.folder.clone() else {
            return Err(MailboxError::Cannot("INBOX cannot be renamed here; move its messages instead".into()));
        };
        let rows = self.store.mailboxes(&account.sender.address).await?;
        if is_inbox(to) || rows.iter().any(|r| r.name == to) {
            return Err(MailboxError::Exists(to.to_string()));
        }
        let (parent_path, display) = match to.rsplit_once('/') {
            Some((parent, display)) => (Some(parent), display),
            None => (None, to),
        };
        let parent = match parent_path {
            None => None,
            Some(path) => {
                if !rows.iter().any(|r| r.name == path) {
                    self.create(account, path).await?;
                }
                let parent_row = self.mailbox(account, path).await?;
                let parent_folder = parent_row
                    .folder
                    .ok_or_else(|| MailboxError::Cannot("INBOX cannot hold other mailboxes here".into()))?;
                Some(FolderName::parse(&parent_folder).map_err(|e| MailboxError::Cannot(e.to_string()))?)
            }
        };
        let folder_name = FolderName::parse(&folder).map_err(|e| MailboxError::Cannot(e.to_string()))?;
        let update = Folder {
            display_name: display.to_string(),
            folder_name: folder_name.clone(),
            parent,
            message_type: MessageType::Email,
        };
        let _: Folder = self.client(account).await?.call(&Route::UpdateFolder { folder_name }, Some(&update)).await?;
        self.reconcile_folders(account).await?;
        self.notify(account);
        Ok(())
    }

    pub async fn set_subscribed(&self, account: &Account, name: &str, subscribed: bool) -> Result<(), MailboxError> {
        let row = self.mailbox(account, name).await?;
        self.store.set_subscribed(row.id, subscribed).await?;
        Ok(())
    }

    // ---- messages -------------------------------------------------------------------

    /// The mailbox and its messages in UID order; with `sync`, after fetching news.
    pub async fn snapshot(
        &self,
        account: &Account,
        name: &str,
        sync: bool,
    ) -> Result<(MailboxRow, Vec<MessageRow>), MailboxError> {
        let row = self.mailbox(account, name).await?;
        if sync {
            self.sync(account, &row).await?;
        }
        let row = self.mailbox(account, name).await?;
        let messages = self.store.mailbox_messages(row.id).await?;
        self.index.remember(&account.sender.address, name, &messages);
        Ok((row, messages))
    }

    /// Brings one mailbox's view up to date with its server folder: new messages are
    /// fetched, verified, rendered and given UIDs; removed ones leave the view; the read
    /// status becomes \Seen.
    async fn sync(&self, account: &Account, row: &MailboxRow) -> Result<(), MailboxError> {
        let state = self.state(&account.sender.address);
        let _one_at_a_time = state.sync.lock().await;
        let client = self.client(account).await?;
        let folder_name = match &row.folder {
            Some(f) => Some(FolderName::parse(f).map_err(|e| MailboxError::Cannot(e.to_string()))?),
            None => None,
        };
        let listed: MessageList =
            client.call(&Route::ListMessages { message_type: MessageType::Email, folder_name }, None::<&()>).await?;
        let known = self.store.mailbox_messages(row.id).await?;
        let on_server: HashMap<String, &MessageSummary> =
            listed.messages.iter().map(|m| (m.message_id.to_hex(), m)).collect();
        let mut changed = false;
        let gone: Vec<u32> = known.iter().filter(|m| !on_server.contains_key(&m.message_id)).map(|m| m.uid).collect();
        if !gone.is_empty() {
            self.store.remove_mailbox_messages(row.id, &gone).await?;
            self.index.forget_uids(&account.sender.address, &row.name, &gone);
            changed = true;
        }
        for message in &known {
            let Some(summary) = on_server.get(&message.message_id) else { continue };
            let mut flags = parse_flags(&message.flags);
            if summary.read != has_flag(&flags, "\\Seen") {
                if summary.read {
                    flags.push("\\Seen".into());
                } else {
                    flags.retain(|f| !f.eq_ignore_ascii_case("\\Seen"));
                }
                self.store.set_message_flags(row.id, message.uid, &join_flags(&flags)).await?;
                changed = true;
            }
        }
        let known_ids: HashSet<&str> = known.iter().map(|m| m.message_id.as_str()).collect();
        let hidden = self.store.hidden_messages(&account.sender.address).await?;
        let mut new: Vec<&MessageSummary> = listed
            .messages
            .iter()
            .filter(|m| {
                let id = m.message_id.to_hex();
                !known_ids.contains(id.as_str()) && !hidden.contains(&id)
            })
            .collect();
        // The server lists in arrival order; a stable sort keeps its order within a second.
        new.sort_by_key(|m| m.received_at);
        if !new.is_empty() {
            let mut progress = Progress::new(&self.store, &account.sender.address, format!("sync of {}", row.name));
            let added = self.fetch_new(account, &client, row, &new, &mut progress).await;
            progress.finish().await;
            let added = added?;
            changed |= added > 0;
        }
        if changed {
            self.notify(account);
        }
        Ok(())
    }

    /// Fetches, verifies and renders `new` messages — fetches and renders overlapping,
    /// on all cores — caches them sealed and gives them UIDs in arrival order.
    async fn fetch_new(
        &self,
        account: &Account,
        client: &Arc<SessionClient>,
        row: &MailboxRow,
        new: &[&MessageSummary],
        progress: &mut Progress<'_>,
    ) -> Result<usize, MailboxError> {
        let mut trust: HashMap<Address, SenderTrust> = HashMap::new();
        let mut fetches: JoinSet<(usize, Result<StoredEnvelope, ClientError>)> = JoinSet::new();
        let mut renders: JoinSet<(usize, StoredEnvelope, Rendered)> = JoinSet::new();
        let mut pending = new.iter().enumerate();
        let mut results: Vec<Option<(StoredEnvelope, Rendered)>> = (0..new.len()).map(|_| None).collect();
        let spawn_fetch = |fetches: &mut JoinSet<_>, index: usize, id: Id32| {
            let client = client.clone();
            fetches.spawn(async move {
                (index, client.call(&Route::GetMessage { message_id: id, update_read: false }, None::<&()>).await)
            });
        };
        for (index, summary) in pending.by_ref().take(FETCH_CONCURRENCY) {
            spawn_fetch(&mut fetches, index, summary.message_id);
        }
        let mut first_error: Option<MailboxError> = None;
        let mut reloaded = false;
        let mut fetched = 0usize;
        while let Some(done) = fetches.join_next().await {
            fetched += 1;
            if fetched.is_multiple_of(SYNC_PROGRESS_EVERY) {
                tracing::info!(
                    account = %account.sender.address, mailbox = %row.name, fetched, total = new.len(),
                    "sync in progress"
                );
                progress.report(fetched as u64, new.len() as u64).await;
            }
            if let Some((index, summary)) = pending.next() {
                spawn_fetch(&mut fetches, index, summary.message_id);
            }
            let Ok((index, fetched)) = done else { continue };
            let envelope = match fetched {
                Ok(envelope) => envelope,
                Err(err) if err.code() == Some(ErrorCode::NotFound) => continue,
                Err(err) => {
                    first_error.get_or_insert(err.into());
                    continue;
                }
            };
            let sender = envelope.server.sender.clone();
            if !trust.contains_key(&sender) {
                match self.sender_trust(account, &sender, &envelope).await {
                    Ok(verdict) => {
                        trust.insert(sender.clone(), verdict);
                    }
                    Err(err) => {
                        // The sender's server cannot be asked now: the message waits for
                        // the next sync rather than being shown unverified.
                        tracing::info!(sender = %sender, error = %err, "a message waits: its sender cannot be checked now");
                        continue;
                    }
                }
            }
            let verdict = trust.get(&sender).cloned().unwrap_or_else(|| SenderTrust::Refused("unknown".into()));
            if account.keystore().secret_for(&envelope.sent.message_public_key).is_none() && !reloaded {
                // A key `keys replenish` added while the gateway runs: read the keystore again, once.
                reloaded = true;
                account.reload();
            }
            let keystore = account.keystore();
            renders.spawn_blocking(move || {
                let rendered = open_and_render(&envelope, &keystore, &verdict);
                (index, envelope, rendered)
            });
        }
        while let Some(done) = renders.join_next().await {
            if let Ok((index, envelope, rendered)) = done {
                results[index] = Some((envelope, rendered));
            }
        }
        let now = unix_now();
        let address = &account.sender.address;
        let rendered: Vec<(StoredEnvelope, Rendered)> = results.into_iter().flatten().collect();
        let claims: Vec<(Address, String, String)> = rendered
            .iter()
            .filter_map(|(envelope, r)| {
                let delivery = r.delivery_id.clone()?;
                Some((envelope.server.sender.clone(), delivery, envelope.server.message_id.to_hex()))
            })
            .collect();
        let mut first_copy = self.store.claim_deliveries(address, &claims).await?.into_iter();
        let mut rows = Vec::new();
        let mut cached = Vec::new();
        for (envelope, rendered) in rendered {
            let id = envelope.server.message_id.to_hex();
            if rendered.delivery_id.is_some() && first_copy.next() == Some(false) {
                self.store.hide_message(address, &id, "a second copy of one delivery").await?;
                continue;
            }
            let nonce = BoxNonce::random(&mut OsRng);
            cached.push((id.clone(), nonce.to_hex(), account.sender.storage_key.seal(&nonce, &rendered.bytes)));
            let mut flags = rendered.flags.clone();
            flags.retain(|f| !f.eq_ignore_ascii_case("\\Seen") && !f.eq_ignore_ascii_case("\\Recent"));
            if envelope.server.read {
                flags.push("\\Seen".into());
            }
            let size = u32::try_from(rendered.bytes.len()).unwrap_or(u32::MAX);
            // A client's first FETCH follows its SELECT: it reads from memory, not the sealed cache.
            self.hot.put(address, &id, Arc::from(rendered.bytes));
            rows.push(NewMessage {
                message_id: id,
                flags: join_flags(&flags),
                internal_date: envelope.server.received_at.unix(),
                size,
            });
        }
        self.keep_in_cache(address, &cached, now).await?;
        let added = rows.len();
        if !rows.is_empty() {
            self.store.add_mailbox_messages(row.id, &rows).await?;
        }
        match first_error {
            Some(err) if added == 0 => Err(err),
            _ => Ok(added),
        }
    }

    /// What the account accepts as `sender`'s keys: its own masters, or the key trust on
    /// first use pins now plus, if `envelope` was signed by another, the keys of the
    /// sender's verified history (an earlier key of a rotation).
    async fn sender_trust(
        &self,
        account: &Account,
        sender: &Address,
        envelope: &StoredEnvelope,
    ) -> Result<SenderTrust, ClientError> {
        if sender == &account.sender.address {
            return Ok(own_trust(&account.keystore()));
        }
        let server = ServerClient::connect(&self.discovery, sender.domain()).await?;
        let current = match trusted_key(&server, &self.store, sender, unix_now()).await {
            Ok(key) => key,
            Err(TrustError::Client(err)) if err.is_transient() || matches!(err, ClientError::Discovery(_)) => {
                return Err(err)
            }
            Err(err) => return Ok(SenderTrust::Refused(err.to_string())),
        };
        let mut keys = HashSet::from([current]);
        if envelope.server.sender_public_key != current {
            let history: UserHistory = server
                .call(&Route::GetUser { address: sender.clone(), kind: UserInfoKind::History }, None, None::<&()>)
                .await?;
            if let Ok(verified) = verify_history(sender, &history.history) {
                if verified.current_key() == current && verified.contains_key(&envelope.server.sender_public_key) {
                    keys.insert(envelope.server.sender_public_key);
                }
            }
        }
        Ok(SenderTrust::Keys(keys))
    }

    async fn cache(&self, account: &Account, message_id: &str, bytes: &[u8], now: i64) -> Result<(), MailboxError> {
        let nonce = BoxNonce::random(&mut OsRng);
        let sealed = account.sender.storage_key.seal(&nonce, bytes);
        self.keep_in_cache(&account.sender.address, &[(message_id.to_string(), nonce.to_hex(), sealed)], now).await
    }

    /// Stores sealed entries and trims the cache when it grows past its bound. The
    /// size is counted in memory (read once), so a sync of thousands of messages does
    /// not sum the table for each.
    async fn keep_in_cache(
        &self,
        address: &Address,
        entries: &[(String, String, Vec<u8>)],
        now: i64,
    ) -> Result<(), MailboxError> {
        use std::sync::atomic::Ordering;
        if entries.is_empty() {
            return Ok(());
        }
        if !self.cache_counted.swap(true, Ordering::AcqRel) {
            self.cache_bytes.store(self.store.cache_size().await?, Ordering::Release);
        }
        let added = self.store.cache_messages(address, entries, now).await?;
        let total = self.cache_bytes.fetch_add(added, Ordering::AcqRel) + added;
        if total > self.cache_max_bytes {
            let left = self.store.trim_cache().await?;
            self.cache_bytes.store(left, Ordering::Release);
        }
        Ok(())
    }

    /// The rendered message with `uid`: from the sealed cache, or fetched, verified and
    /// rendered again when the cache no longer holds it.
    pub async fn message(&self, account: &Account, name: &str, uid: u32) -> Result<Arc<[u8]>, MailboxError> {
        if let Some(message_id) = self.index.lookup(&account.sender.address, name, uid) {
            return self.rendered(account, &message_id).await;
        }
        let row = self.mailbox(account, name).await?;
        let message = self.store.mailbox_message(row.id, uid).await?.ok_or(MailboxError::NoMessage(uid))?;
        self.rendered(account, &message.message_id).await
    }

    async fn rendered(&self, account: &Account, message_id: &str) -> Result<Arc<[u8]>, MailboxError> {
        let address = &account.sender.address;
        if let Some(bytes) = self.hot.get(address, message_id) {
            return Ok(bytes);
        }
        let now = unix_now();
        if let Some((nonce, sealed)) = self.store.cached_message(address, message_id, now).await? {
            let opened =
                nonce.parse::<BoxNonce>().ok().and_then(|nonce| account.sender.storage_key.open(&nonce, &sealed).ok());
            if let Some(bytes) = opened {
                let bytes: Arc<[u8]> = bytes.into();
                self.hot.put(address, message_id, bytes.clone());
                return Ok(bytes);
            }
        }
        let id: Id32 = message_id.parse().map_err(|_| MailboxError::Cannot("a stored message id is corrupt".into()))?;
        let client = self.client(account).await?;
        let envelope: StoredEnvelope =
            client.call(&Route::GetMessage { message_id: id, update_read: false }, None::<&()>).await?;
        let sender = envelope.server.sender.clone();
        let verdict = self.sender_trust(account, &sender, &envelope).await?;
        if account.keystore().secret_for(&envelope.sent.message_public_key).is_none() {
            account.reload();
        }
        let keystore = account.keystore();
        let rendered = tokio::task::spawn_blocking(move || open_and_render(&envelope, &keystore, &verdict))
            .await
            .map_err(|e| MailboxError::Cannot(format!("rendering stopped: {e}")))?;
        self.cache(account, message_id, &rendered.bytes, now).await?;
        let bytes: Arc<[u8]> = rendered.bytes.into();
        self.hot.put(address, message_id, bytes.clone());
        Ok(bytes)
    }

    /// STORE: local flags change at once; \Seen goes to the server's read status, the
    /// other flags to the message's sealed extensions data, so other devices see them.
    pub async fn store_flags(
        &self,
        account: &Account,
        name: &str,
        uids: &[u32],
        change: FlagChange,
        flags: &[String],
    ) -> Result<Vec<(u32, Vec<String>)>, MailboxError> {
        let row = self.mailbox(account, name).await?;
        let messages = self.store.mailbox_messages(row.id).await?;
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let client = self.client(account).await?;
        let mut out = Vec::new();
        for message in messages.iter().filter(|m| wanted.contains(&m.uid)) {
            let before = parse_flags(&message.flags);
            let mut after = match change {
                FlagChange::Replace => Vec::new(),
                _ => before.clone(),
            };
            match change {
                FlagChange::Add | FlagChange::Replace => {
                    for flag in flags {
                        if !has_flag(&after, flag) {
                            after.push(flag.clone());
                        }
                    }
                }
                FlagChange::Remove => after.retain(|f| !flags.iter().any(|g| g.eq_ignore_ascii_case(f))),
            }
            after.retain(|f| !f.eq_ignore_ascii_case("\\Recent"));
            let id: Id32 = message.message_id.parse().map_err(|_| MailboxError::Cannot("corrupt message id".into()))?;
            if has_flag(&before, "\\Seen") != has_flag(&after, "\\Seen") {
                let _: ReadStatus =
                    client.call(&Route::SetReadStatus { message_id: id }, Some(&has_flag(&after, "\\Seen"))).await?;
            }
            let extras = |flags: &[String]| -> Vec<String> {
                let mut kept: Vec<String> =
                    flags.iter().filter(|f| !f.eq_ignore_ascii_case("\\Seen")).map(|f| f.to_string()).collect();
                kept.sort();
                kept
            };
            if extras(&before) != extras(&after) {
                let sealed = seal_extras(&MessageExtras { flags: extras(&after) }, &account.keystore());
                let _: Updated =
                    client.call(&Route::SetMessageExtensions { message_id: id }, Some(&Some(sealed))).await?;
            }
            self.store.set_message_flags(row.id, message.uid, &join_flags(&after)).await?;
            out.push((message.uid, after));
        }
        if !out.is_empty() {
            self.notify(account);
        }
        Ok(out)
    }

    /// EXPUNGE: messages flagged \Deleted (among `uids`, if given) are deleted on the
    /// server and leave the view.
    pub async fn expunge(&self, account: &Account, name: &str, uids: Option<&[u32]>) -> Result<Vec<u32>, MailboxError> {
        let row = self.mailbox(account, name).await?;
        let messages = self.store.mailbox_messages(row.id).await?;
        let client = self.client(account).await?;
        let mut removed = Vec::new();
        for message in &messages {
            if !has_flag(&parse_flags(&message.flags), "\\Deleted") || uids.is_some_and(|u| !u.contains(&message.uid)) {
                continue;
            }
            let id: Id32 = message.message_id.parse().map_err(|_| MailboxError::Cannot("corrupt message id".into()))?;
            match client.call::<Deleted, _>(&Route::DeleteMessage { message_id: id }, None::<&()>).await {
                Ok(_) => {}
                Err(err) if err.code() == Some(ErrorCode::NotFound) => {}
                Err(err) => return Err(err.into()),
            }
            self.store.forget_cached(&account.sender.address, &message.message_id).await?;
            self.hot.forget(&account.sender.address, &message.message_id);
            removed.push(message.uid);
        }
        if !removed.is_empty() {
            self.store.remove_mailbox_messages(row.id, &removed).await?;
            self.index.forget_uids(&account.sender.address, name, &removed);
            self.notify(account);
        }
        Ok(removed)
    }

    /// COPY (the messages are stored again, sealed to the account) or MOVE (the server
    /// moves them). Returns the target's UIDVALIDITY and (source, target) UID pairs.
    pub async fn copy(
        &self,
        account: &Account,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<(u32, Vec<(u32, u32)>), MailboxError> {
        let source = self.mailbox(account, from).await?;
        let target = self.mailbox(account, to).await?;
        let messages = self.store.mailbox_messages(source.id).await?;
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let mut pairs = Vec::new();
        if !remove || source.id == target.id {
            for message in messages.iter().filter(|m| wanted.contains(&m.uid)) {
                let bytes = self.rendered(account, &message.message_id).await?;
                let flags = parse_flags(&message.flags);
                let (_, uid) = self.append(account, to, &flags, Some(message.internal_date), bytes.to_vec()).await?;
                pairs.push((message.uid, uid));
            }
            return Ok((target.uid_validity, pairs));
        }
        let client = self.client(account).await?;
        let destination = match &target.folder {
            Some(f) => Some(FolderName::parse(f).map_err(|e| MailboxError::Cannot(e.to_string()))?),
            None => None,
        };
        let mut moved_uids = Vec::new();
        let mut new_rows = Vec::new();
        for message in messages.iter().filter(|m| wanted.contains(&m.uid)) {
            let id: Id32 = message.message_id.parse().map_err(|_| MailboxError::Cannot("corrupt message id".into()))?;
            let _: Moved = client
                .call(
                    &Route::MoveMessage { message_id: id },
                    Some(&MoveMessageRequest { folder_name: destination.clone() }),
                )
                .await?;
            moved_uids.push(message.uid);
            new_rows.push(NewMessage {
                message_id: message.message_id.clone(),
                flags: message.flags.clone(),
                internal_date: message.internal_date,
                size: message.size,
            });
        }
        let state = self.state(&account.sender.address);
        let guard = state.sync.lock().await;
        self.store.remove_mailbox_messages(source.id, &moved_uids).await?;
        self.index.forget_uids(&account.sender.address, &source.name, &moved_uids);
        let new_uids = self.store.add_mailbox_messages(target.id, &new_rows).await?;
        drop(guard);
        pairs.extend(moved_uids.into_iter().zip(new_uids));
        self.notify(account);
        Ok((target.uid_validity, pairs))
    }

    /// APPEND: the message is sent to the account itself (sealed to its own key, with
    /// proof of work like any message), moved into the mailbox's folder, cached and given
    /// a UID. Returns (UIDVALIDITY, UID).
    pub async fn append(
        &self,
        account: &Account,
        name: &str,
        flags: &[String],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<(u32, u32), MailboxError> {
        let row = self.mailbox(account, name).await?;
        let now = unix_now();
        let at = Timestamp::from_unix(now).ok_or_else(|| MailboxError::Cannot("the clock is out of range".into()))?;
        let address = account.sender.address.clone();
        let email = email_for_raw(&message, &address, at, &mut OsRng);
        let payload = Payload::Email(Box::new(email)).to_bytes();
        let sent =
            send_payload(&self.discovery, &self.store, &account.sender, &address, MessageType::Email, &payload, now)
                .await
                .map_err(|err| match err {
                    DeliveryError::Store(err) => MailboxError::Store(err),
                    DeliveryError::Transient(text) | DeliveryError::Permanent(text) => MailboxError::Server(text),
                })?;
        let client = self.client(account).await?;
        if let Some(folder) = &row.folder {
            let folder_name = FolderName::parse(folder).map_err(|e| MailboxError::Cannot(e.to_string()))?;
            let _: Moved = client
                .call(
                    &Route::MoveMessage { message_id: sent.message_id },
                    Some(&MoveMessageRequest { folder_name: Some(folder_name) }),
                )
                .await?;
        }
        let id = sent.message_id.to_hex();
        let mut kept: Vec<String> = parse_flags(&join_flags(flags));
        kept.retain(|f| !f.eq_ignore_ascii_case("\\Recent"));
        if has_flag(&kept, "\\Seen") {
            let _: ReadStatus = client.call(&Route::SetReadStatus { message_id: sent.message_id }, Some(&true)).await?;
        }
        let extras: Vec<String> = kept.iter().filter(|f| !f.eq_ignore_ascii_case("\\Seen")).cloned().collect();
        if !extras.is_empty() {
            let sealed = seal_extras(&MessageExtras { flags: extras }, &account.keystore());
            let _: Updated =
                client.call(&Route::SetMessageExtensions { message_id: sent.message_id }, Some(&Some(sealed))).await?;
        }
        self.cache(account, &id, &message, now).await?;
        let state = self.state(&address);
        let guard = state.sync.lock().await;
        let uids = self
            .store
            .add_mailbox_messages(
                row.id,
                &[NewMessage {
                    message_id: id,
                    flags: join_flags(&kept),
                    internal_date: internal_date.unwrap_or(now),
                    size: u32::try_from(message.len()).unwrap_or(u32::MAX),
                }],
            )
            .await?;
        drop(guard);
        self.notify(account);
        let uid = uids.first().copied().ok_or_else(|| MailboxError::Cannot("no UID was given".into()))?;
        Ok((row.uid_validity, uid))
    }
}

/// The IMAP name of every folder: display names along the parent chain, joined by '/'.
/// A folder whose chain is broken or loops is shown at the top level.
fn folder_paths(folders: &[Folder]) -> HashMap<String, String> {
    let by_name: HashMap<&str, &Folder> = folders.iter().map(|f| (f.folder_name.as_str(), f)).collect();
    let clean = |display: &str, fallback: &str| {
        let text: String = display.chars().filter(|c| !c.is_control() && *c != '/' && *c != '*' && *c != '%').collect();
        let text = text.trim().to_string();
        if text.is_empty() || is_inbox(&text) {
            fallback.to_string()
        } else {
            text
        }
    };
    let mut paths = HashMap::new();
    for folder in folders {
        let mut parts = vec![clean(&folder.display_name, folder.folder_name.as_str())];
        let mut seen = HashSet::from([folder.folder_name.as_str()]);
        let mut parent = folder.parent.as_ref();
        while let Some(name) = parent {
            let Some(up) = by_name.get(name.as_str()) else { break };
            if !seen.insert(up.folder_name.as_str()) {
                break;
            }
            parts.push(clean(&up.display_name, up.folder_name.as_str()));
            parent = up.parent.as_ref();
        }
        parts.reverse();
        paths.insert(folder.folder_name.to_string(), parts.join("/"));
    }
    // Two folders shown under one name: the later ones get their folder name added.
    let mut taken: HashSet<String> = HashSet::new();
    let mut names: Vec<(String, String)> = paths.into_iter().collect();
    names.sort();
    names
        .into_iter()
        .map(|(folder, path)| {
            let path = if taken.contains(&path) { format!("{path} ({folder})") } else { path };
            taken.insert(path.clone());
            (folder, path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, display: &str, parent: Option<&str>) -> Folder {
        Folder {
            display_name: display.into(),
            folder_name: FolderName::parse(name).unwrap(),
            parent: parent.map(|p| FolderName::parse(p).unwrap()),
            message_type: MessageType::Email,
        }
    }

    #[test]
    fn folder_paths_follow_parents_and_survive_loops_and_clashes() {
        let folders = [
            folder("work", "Work", None),
            folder("acme", "Acme", Some("work")),
            folder("a", "Loop", Some("b")),
            folder("b", "Back", Some("a")),
            folder("x1", "Same", None),
            folder("x2", "Same", None),
            folder("odd", "in/box*", None),
        ];
        let paths = folder_paths(&folders);
        assert_eq!(paths["work"], "Work");
        assert_eq!(paths["acme"], "Work/Acme");
        assert_eq!(paths["a"], "Back/Loop");
        assert_eq!(paths["b"], "Loop/Back");
        assert_eq!(paths["x1"], "Same");
        assert_eq!(paths["x2"], "Same (x2)");
        assert_eq!(paths["odd"], "odd", "a name that cleans to INBOX shows as its folder name");
    }

    #[test]
    fn new_folder_names_are_valid_and_distinct() {
        let a = new_folder_name("Projects 2026!").unwrap();
        let b = new_folder_name("Projects 2026!").unwrap();
        assert!(a.as_str().starts_with("projects2026-"));
        assert_ne!(a, b);
        assert!(new_folder_name("Ünïcödé ✉").unwrap().as_str().starts_with("ncd-"));
        assert!(new_folder_name("✉").unwrap().as_str().starts_with("box-"));
    }

    #[test]
    fn flags_are_a_set_without_regard_to_case() {
        assert_eq!(parse_flags("\\Seen \\seen $Work  \\Flagged"), vec!["\\Seen", "$Work", "\\Flagged"]);
    }
}
