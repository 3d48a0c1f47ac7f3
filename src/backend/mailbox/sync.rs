//! A mailbox's sync with its server folder, in four visible stages that run as one
//! pipeline: **fetch** the new envelopes (several at once), **verify** each sender's keys
//! (trust on first use, pins, a verified history), **render** on the blocking pool (open
//! and build RFC 5322 — all cores), **record**: seal into the cache and give UIDs in
//! arrival order. A message whose sender cannot be checked now waits for the next sync;
//! one that fails a check is rendered as a warning, never as its content.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand_core::OsRng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::backend::inbound::{keep_thread, open_and_render, own_trust, Rendered, SenderKeys, SenderTrust};
use crate::backend::progress::Progress;
use crate::backend::trust::{trusted_history, trusted_key_and_history};
use crate::client::trust::TrustedKey;
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::clock::unix_now;
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxNonce;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::StoredEnvelope;
use crate::smimp::message::MessageType;
use crate::smimp::wire::{ErrorCode, MessageSummary};
use crate::store::{Flag, Flags, MailboxRow, MessageRow, NewMessage, Uid};

/// A sync of many new messages reports its progress (log and `status`) after every this many.
const SYNC_PROGRESS_EVERY: usize = 500;

/// Envelopes fetched from the server at once during a sync.
const FETCH_CONCURRENCY: usize = 16;

/// A fetched envelope and its place in arrival order.
type Fetched = (usize, StoredEnvelope);
/// A fetched envelope with the keys its sender may sign with.
type Verified = (usize, StoredEnvelope, SenderTrust);

impl Mailboxes {
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

    /// Brings one mailbox's view up to date with its server folder: removed messages
    /// leave the view, the read status becomes \Seen, and new messages are fetched,
    /// verified, rendered and given UIDs.
    async fn sync(&self, account: &Account, row: &MailboxRow) -> Result<(), MailboxError> {
        let state = self.state(&account.sender.address);
        let _one_at_a_time = state.sync.lock().await;
        let client = self.client(account).await?;
        let listed = client.list_messages(MessageType::Email, row.folder.clone()).await?;
        let known = self.store.mailbox_messages(row.id).await?;
        let mut changed = self.follow(account, &client, row, &known, &listed).await?;
        let known_ids: HashSet<&Id32> = known.iter().map(|m| &m.message_id).collect();
        let hidden = self.store.hidden_messages(&account.sender.address).await?;
        let mut new: Vec<&MessageSummary> =
            listed.iter().filter(|m| !known_ids.contains(&m.message_id) && !hidden.contains(&m.message_id)).collect();
        // The server lists in arrival order; a stable sort keeps its order within a second.
        new.sort_by_key(|m| m.received_at);
        if !new.is_empty() {
            let mut progress = Progress::new(&self.store, &account.sender.address, format!("sync of {}", row.name));
            let added = self.fetch_new(account, &client, row, &new, &mut progress).await;
            progress.finish().await;
            changed |= added? > 0;
        }
        if changed {
            self.notify(account);
        }
        Ok(())
    }

    /// Known messages the server no longer lists leave the view; the server's read
    /// status becomes \Seen. Whether anything changed.
    pub(super) async fn follow_server(
        &self,
        account: &Account,
        row: &MailboxRow,
        known: &[MessageRow],
        listed: &[MessageSummary],
    ) -> Result<bool, MailboxError> {
        let on_server: HashMap<&Id32, &MessageSummary> = listed.iter().map(|m| (&m.message_id, m)).collect();
        let mut changed = false;
        let gone: Vec<Uid> = known.iter().filter(|m| !on_server.contains_key(&m.message_id)).map(|m| m.uid).collect();
        if !gone.is_empty() {
            self.store.remove_mailbox_messages(row.id, &gone).await?;
            self.index.forget_uids(&account.sender.address, &row.name, &gone);
            changed = true;
        }
        for message in known {
            let Some(summary) = on_server.get(&message.message_id) else { continue };
            if summary.read != message.flags.contains(&Flag::Seen) {
                let mut flags = message.flags.clone();
                flags.set(Flag::Seen, summary.read);
                self.store.set_message_flags(row.id, message.uid, &flags).await?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// The pipeline for `new` messages: fetch → verify → render, overlapping, then
    /// record. Returns how many messages were added; the first fetch error only when
    /// nothing was.
    async fn fetch_new(
        &self,
        account: &Account,
        client: &Arc<SessionClient>,
        row: &MailboxRow,
        new: &[&MessageSummary],
        progress: &mut Progress<'_>,
    ) -> Result<usize, MailboxError> {
        let (fetched_tx, fetched_rx) = mpsc::channel(FETCH_CONCURRENCY);
        let (verified_tx, verified_rx) = mpsc::channel(FETCH_CONCURRENCY);
        let (first_error, (), rendered) = tokio::join!(
            fetch(account, client, row, new, fetched_tx, progress),
            self.verify(account, fetched_rx, verified_tx),
            render(account, verified_rx, new.len()),
        );
        let added = self.record(account, row, rendered).await?;
        match first_error {
            Some(err) if added == 0 => Err(err),
            _ => Ok(added),
        }
    }

    /// Stage 2: the keys each sender may sign with (asked once per sender and sync). A
    /// message whose sender cannot be checked now is dropped from this sync: it stays
    /// unshown and is tried again at the next.
    async fn verify(&self, account: &Account, mut fetched: mpsc::Receiver<Fetched>, out: mpsc::Sender<Verified>) {
        let mut senders = Senders::default();
        let mut reloaded = false;
        while let Some((index, envelope)) = fetched.recv().await {
            let verdict = match self.sender_trust(account, &mut senders, &envelope).await {
                Ok(verdict) => verdict,
                Err(reason) => {
                    // The message waits for the next sync rather than being shown unverified.
                    let sender = &envelope.server.sender;
                    tracing::info!(sender = %sender, error = %reason, "a message waits: its sender cannot be checked now");
                    continue;
                }
            };
            if !reloaded && account.keystore().secret_for(&envelope.sent.message_public_key).is_none() {
                // A key `keys replenish` added while the gateway runs: read the keystore again, once.
                reloaded = true;
                account.reload();
            }
            if out.send((index, envelope, verdict)).await.is_err() {
                return;
            }
        }
    }

    /// Stage 4: second copies of one delivery are hidden; the rest are sealed into the
    /// cache, kept in memory for the client's first FETCH, and given UIDs in order.
    async fn record(
        &self,
        account: &Account,
        row: &MailboxRow,
        rendered: Vec<(StoredEnvelope, Rendered)>,
    ) -> Result<usize, MailboxError> {
        let address = &account.sender.address;
        let claims: Vec<(Address, String, Id32)> = rendered
            .iter()
            .filter_map(|(envelope, r)| {
                Some((envelope.server.sender.clone(), r.delivery_id.clone()?, envelope.server.message_id))
            })
            .collect();
        let mut first_copy = self.store.claim_deliveries(address, &claims).await?.into_iter();
        let mut rows = Vec::new();
        let mut cached = Vec::new();
        for (envelope, mut rendered) in rendered {
            let id = envelope.server.message_id;
            if rendered.delivery_id.is_some() && first_copy.next() == Some(false) {
                self.store.hide_message(address, &id, "a second copy of one delivery").await?;
                continue;
            }
            keep_thread(&self.store, address, &id, &mut rendered, unix_now()).await;
            let nonce = BoxNonce::random(&mut OsRng);
            cached.push((id, nonce.to_hex(), account.sender.storage_key.seal(&nonce, &rendered.bytes)));
            let mut flags: Flags = rendered.flags.iter().filter_map(|f| f.parse().ok()).collect();
            flags.remove(&Flag::Seen);
            flags.set(Flag::Seen, envelope.server.read);
            let size = u32::try_from(rendered.bytes.len()).unwrap_or(u32::MAX);
            self.hot.put(address, &id, Arc::from(rendered.bytes));
            rows.push(NewMessage { message_id: id, flags, internal_date: envelope.server.received_at.unix(), size });
        }
        self.keep_in_cache(address, &cached, unix_now()).await?;
        if !rows.is_empty() {
            self.store.add_mailbox_messages(row.id, &rows).await?;
        }
        Ok(rows.len())
    }

    /// What the account accepts as `envelope`'s sender's keys, from what `senders`
    /// already learnt in this sync or by asking: its own masters, or the key trust on
    /// first use pins now and — once an envelope is signed by another key — the earlier
    /// keys of the sender's history, only when that history passes the pin check, each
    /// until the record that retired it. `Err`: the sender cannot be checked now (its
    /// server, the network or the gateway's database failed); the message waits.
    pub(super) async fn sender_trust(
        &self,
        account: &Account,
        senders: &mut Senders,
        envelope: &StoredEnvelope,
    ) -> Result<SenderTrust, String> {
        let sender = &envelope.server.sender;
        if sender == &account.sender.address {
            return Ok(own_trust(&account.keystore()));
        }
        if !senders.known.contains_key(sender) {
            let known = self.current_keys(sender).await;
            senders.known.insert(sender.clone(), known);
        }
        let needs_history = match senders.known.get(sender) {
            Some(Known::Keys { keys, history: HistoryState::NotAsked, .. }) => {
                !keys.is_current(&envelope.server.sender_public_key)
            }
            _ => false,
        };
        if needs_history {
            if let Some(Known::Keys { keys, server, history }) = senders.known.get_mut(sender) {
                let (new_keys, state) = self.earlier_keys(server, sender, keys).await;
                *keys = new_keys;
                *history = state;
            }
        }
        match senders.known.get(sender) {
            Some(Known::Refused(reason)) => Ok(SenderTrust::Refused(reason.clone())),
            Some(Known::Wait(reason)) => Err(reason.clone()),
            Some(Known::Keys { history: HistoryState::Wait(reason), keys, .. })
                if !keys.is_current(&envelope.server.sender_public_key) =>
            {
                Err(reason.clone())
            }
            Some(Known::Keys { keys, .. }) => Ok(SenderTrust::Keys(keys.clone())),
            None => Err(format!("{sender}'s keys were not looked up")),
        }
    }

    /// The sender's current key, checked against the pin (the new pin and any trust
    /// event recorded), with the earlier keys when the check read a history.
    async fn current_keys(&self, sender: &Address) -> Known {
        let server = match ServerClient::connect(&self.discovery, sender.domain()).await {
            Ok(server) => server,
            Err(err) => return Known::Wait(err.to_string()),
        };
        match trusted_key_and_history(&server, &self.store, sender, unix_now()).await {
            Ok(TrustedKey { history: Some(history), .. }) => Known::Keys {
                keys: Arc::new(SenderKeys::from_history(&history)),
                server,
                history: HistoryState::Checked,
            },
            Ok(TrustedKey { key, history: None }) => {
                Known::Keys { keys: Arc::new(SenderKeys::current([key])), server, history: HistoryState::NotAsked }
            }
            Err(err) if err.is_retryable() => Known::Wait(err.to_string()),
            Err(err) => Known::Refused(err.to_string()),
        }
    }

    /// The sender's keys once its history is read and checked against the pin: the
    /// history's keys with their windows, or the current key alone when the history is
    /// refused (the refusal recorded as a trust event, and named in each warning).
    async fn earlier_keys(
        &self,
        server: &ServerClient,
        sender: &Address,
        keys: &Arc<SenderKeys>,
    ) -> (Arc<SenderKeys>, HistoryState) {
        match trusted_history(server, &self.store, sender, unix_now()).await {
            Ok(history) => (Arc::new(SenderKeys::from_history(&history)), HistoryState::Checked),
            Err(err) if err.is_retryable() => (keys.clone(), HistoryState::Wait(err.to_string())),
            Err(err) => {
                tracing::warn!(sender = %sender, error = %err, "a sender's history is refused: only its current key is accepted");
                (Arc::new(SenderKeys::clone(keys).with_history_refused(err.to_string())), HistoryState::Checked)
            }
        }
    }
}

/// What one sync learnt about each sender, so each is asked at most once per sync
/// and every message from one sender gets the same keys whatever order they arrive in.
#[derive(Default)]
pub(super) struct Senders {
    known: HashMap<Address, Known>,
}

/// One sender's state in a sync.
enum Known {
    /// Its keys; `server` to read its history when a message needs it.
    Keys { keys: Arc<SenderKeys>, server: ServerClient, history: HistoryState },
    /// Refused: every message from it is a warning naming this reason.
    Refused(String),
    /// It cannot be checked now, for this reason: its messages wait for the next sync.
    Wait(String),
}

/// Whether the sender's history was read in this sync.
enum HistoryState {
    /// Not yet: every message so far was signed by the current key.
    NotAsked,
    /// Read and judged; the keys hold the verdict.
    Checked,
    /// It could not be read now: messages that need an earlier key wait.
    Wait(String),
}

/// Stage 1: the envelopes of `new`, at most [`FETCH_CONCURRENCY`] at once, passed on
/// as they arrive. A message deleted meanwhile is skipped; the first other error is
/// returned once every fetch is done.
async fn fetch(
    account: &Account,
    client: &Arc<SessionClient>,
    row: &MailboxRow,
    new: &[&MessageSummary],
    out: mpsc::Sender<Fetched>,
    progress: &mut Progress<'_>,
) -> Option<MailboxError> {
    let mut fetches: JoinSet<(usize, Result<StoredEnvelope, ClientError>)> = JoinSet::new();
    let spawn = |fetches: &mut JoinSet<_>, index: usize, id: Id32| {
        let client = client.clone();
        fetches.spawn(async move { (index, client.get_message(id).await) });
    };
    let mut pending = new.iter().enumerate();
    for (index, summary) in pending.by_ref().take(FETCH_CONCURRENCY) {
        spawn(&mut fetches, index, summary.message_id);
    }
    let mut first_error = None;
    let mut done = 0usize;
    while let Some(joined) = fetches.join_next().await {
        done += 1;
        if done.is_multiple_of(SYNC_PROGRESS_EVERY) {
            tracing::info!(
                account = %account.sender.address, mailbox = %row.name, fetched = done, total = new.len(),
                "sync in progress"
            );
            progress.report(done as u64, new.len() as u64).await;
        }
        if let Some((index, summary)) = pending.next() {
            spawn(&mut fetches, index, summary.message_id);
        }
        match joined {
            Ok((index, Ok(envelope))) => {
                // The later stages stopped: nothing more can be recorded.
                if out.send((index, envelope)).await.is_err() {
                    break;
                }
            }
            Ok((_, Err(err))) if err.code() == Some(ErrorCode::NotFound) => {}
            Ok((_, Err(err))) => {
                first_error.get_or_insert(MailboxError::from(err));
            }
            Err(_) => {}
        }
    }
    first_error
}

/// Stage 3: opens and renders each verified envelope on the blocking pool (all cores);
/// returns them in arrival order.
async fn render(
    account: &Account,
    mut verified: mpsc::Receiver<Verified>,
    count: usize,
) -> Vec<(StoredEnvelope, Rendered)> {
    let mut renders: JoinSet<(usize, StoredEnvelope, Rendered)> = JoinSet::new();
    while let Some((index, envelope, verdict)) = verified.recv().await {
        let keystore = account.keystore();
        renders.spawn_blocking(move || {
            let rendered = open_and_render(&envelope, &keystore, &verdict);
            (index, envelope, rendered)
        });
    }
    let mut results: Vec<Option<(StoredEnvelope, Rendered)>> = (0..count).map(|_| None).collect();
    while let Some(done) = renders.join_next().await {
        if let Ok((index, envelope, rendered)) = done {
            if let Some(slot) = results.get_mut(index) {
                *slot = Some((envelope, rendered));
            }
        }
    }
    results.into_iter().flatten().collect()
}
