//! A mailbox's sync with its server folder, in four stages that run as one pipeline
//! over chunks of envelopes, so memory holds a few chunks whatever the mailbox's size:
//! **fetch** the new envelopes (by the page when the server offers `x-envelopes`, one
//! `GET` each otherwise or for what the pages missed), **verify** each sender's keys
//! (trust on first use, pins, a verified history; asked once per sender and sync),
//! **render** on the blocking pool (one batch signature check per chunk, each sender's
//! key converted once, open, build RFC 5322 and seal for the cache — all cores),
//! **record**: keep in the cache and give UIDs in server order. A message whose sender
//! cannot be checked now waits for the next sync; one that fails a check is rendered as
//! a warning, never as its content.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand_core::OsRng;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{MailboxError, Mailboxes};
use crate::backend::account::Account;
use crate::backend::devices;
use crate::backend::inbound::{
    complete_from_thread_map, open_and_render_all, own_trust, thread_entry, thread_question, Rendered, SenderKeys,
    SenderTrust,
};
use crate::backend::progress::Progress;
use crate::backend::trust::{trusted_history, trusted_key_and_history};
use crate::client::trust::TrustedKey;
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::clock::unix_now;
use crate::keystore::Keystore;
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxNonce;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::StoredEnvelope;
use crate::smimp::message::MessageType;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{Api, ErrorCode, MessageSummary, Position};
use crate::store::{Flag, Flags, MailboxRow, MessageRow, NewMessage, SyncedChunk};

/// Envelopes verified, rendered and recorded together: one batch signature check, one
/// database transaction. With [`CHUNKS_IN_FLIGHT`] it bounds what a sync holds.
const CHUNK: usize = 256;

/// Chunks waiting between two stages: enough to keep every stage busy.
const CHUNKS_IN_FLIGHT: usize = 2;

/// Envelopes fetched from the server at once when fetching one `GET` each.
const FETCH_CONCURRENCY: usize = 16;

/// Envelopes with the keys their senders may sign with.
type Verified = Vec<(StoredEnvelope, SenderTrust)>;

/// A rendered message ready to record, without its envelope.
struct Prepared {
    message_id: Id32,
    sender: Address,
    read: bool,
    received_at: Timestamp,
    rendered: Rendered,
    /// The rendering sealed with the storage key: (nonce in hex, ciphertext).
    sealed: (String, Vec<u8>),
}

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
        drop(known_ids);
        drop(known);
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
        let mut changed = self.drop_unlisted(account, row, known, listed).await?;
        let on_server: HashMap<&Id32, &MessageSummary> = listed.iter().map(|m| (&m.message_id, m)).collect();
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

    /// The pipeline for `new` messages: fetch → verify → render → record, chunk by
    /// chunk, overlapping. Returns how many messages were added; the first fetch error
    /// only when nothing was.
    async fn fetch_new(
        &self,
        account: &Account,
        client: &Arc<SessionClient>,
        row: &MailboxRow,
        new: &[&MessageSummary],
        progress: &mut Progress<'_>,
    ) -> Result<usize, MailboxError> {
        let (fetched_tx, fetched_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (verified_tx, verified_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let (rendered_tx, rendered_rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let fetcher = Fetcher { client, row, total: new.len() };
        let ((first_error, position), (), (), recorded) = tokio::join!(
            fetcher.run(new, fetched_tx, progress),
            self.verify(account, fetched_rx, verified_tx),
            render(account, verified_rx, rendered_tx),
            self.record_all(account, row, rendered_rx),
        );
        let added = recorded?;
        if let Some(position) = position.filter(|p| *p > row.server_position) {
            self.store.set_server_position(row.id, position).await?;
        }
        match first_error {
            Some(err) if added == 0 => Err(err),
            _ => Ok(added),
        }
    }

    /// Stage 2: the keys each sender may sign with (asked once per sender and sync). A
    /// message whose sender cannot be checked now is dropped from this sync: it stays
    /// unshown and is tried again at the next.
    async fn verify(
        &self,
        account: &Account,
        mut fetched: mpsc::Receiver<Vec<StoredEnvelope>>,
        out: mpsc::Sender<Verified>,
    ) {
        let mut senders = Senders::default();
        let mut reloaded = false;
        while let Some(chunk) = fetched.recv().await {
            let mut verified = Vec::with_capacity(chunk.len());
            for envelope in chunk {
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
                    // A key another device shared, or `keys replenish` added while the
                    // gateway runs: pick up shares and read the keystore again, once.
                    reloaded = true;
                    self.pick_up_shares(account).await;
                    account.reload();
                }
                verified.push((envelope, verdict));
            }
            if out.send(verified).await.is_err() {
                return;
            }
        }
    }

    /// The message keys the account's other devices shared with this one, written to
    /// its keystore (an account on one device has none, and its keystore stays closed).
    async fn pick_up_shares(&self, account: &Account) {
        let (Some(kdf), Some((path, passphrase))) = (self.keystore_kdf, account.keystore_file()) else { return };
        if account.keystore().devices().len() < 2 {
            return;
        }
        if let Err(err) = devices::pick_up_shares(&self.discovery, path, passphrase, kdf).await {
            tracing::warn!(account = %account.sender.address, error = %err, "keys shared by other devices could not be picked up");
        }
    }

    /// Stage 4: every rendered chunk recorded in order; the number of messages added.
    async fn record_all(
        &self,
        account: &Account,
        row: &MailboxRow,
        mut rendered: mpsc::Receiver<Vec<Prepared>>,
    ) -> Result<usize, MailboxError> {
        let mut added = 0;
        let mut failed = None;
        while let Some(chunk) = rendered.recv().await {
            if failed.is_some() {
                continue;
            }
            match self.record(account, row, chunk).await {
                Ok(count) => added += count,
                Err(err) => failed = Some(err),
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(added),
        }
    }

    /// One chunk: second copies of one delivery are hidden; the rest are kept sealed in
    /// the cache and in memory for the client's first FETCH, and given UIDs in order.
    async fn record(&self, account: &Account, row: &MailboxRow, chunk: Vec<Prepared>) -> Result<usize, MailboxError> {
        let address = &account.sender.address;
        let claims: Vec<(Address, String, Id32)> = chunk
            .iter()
            .filter_map(|p| Some((p.sender.clone(), p.rendered.delivery_id.clone()?, p.message_id)))
            .collect();
        let mut first_copy = self.store.claim_deliveries(address, &claims).await?.into_iter();
        let asks = self.thread_asks(address, &chunk).await;
        let (mut rows, mut cached, mut threads) = (Vec::new(), Vec::new(), Vec::new());
        for mut prepared in chunk {
            let id = prepared.message_id;
            if prepared.rendered.delivery_id.is_some() && first_copy.next() == Some(false) {
                self.store.hide_message(address, &id, "a second copy of one delivery").await?;
                continue;
            }
            if asks.needs(&prepared.rendered) {
                let before = prepared.rendered.bytes.len();
                complete_from_thread_map(&self.store, address, &mut prepared.rendered).await;
                if prepared.rendered.bytes.len() != before {
                    // The thread map completed the rendering: seal what is shown.
                    prepared.sealed = seal(&account.keystore(), &prepared.rendered.bytes);
                }
            }
            threads.extend(thread_entry(&id, &prepared.rendered));
            let (nonce, sealed) = prepared.sealed;
            cached.push((id, nonce, sealed));
            let mut flags: Flags = prepared.rendered.flags.iter().filter_map(|f| f.parse().ok()).collect();
            flags.remove(&Flag::Seen);
            flags.set(Flag::Seen, prepared.read);
            let size = u32::try_from(prepared.rendered.bytes.len()).unwrap_or(u32::MAX);
            self.hot.put(address, &id, Arc::from(prepared.rendered.bytes));
            rows.push(NewMessage { message_id: id, flags, internal_date: prepared.received_at.unix(), size });
        }
        let chunk = SyncedChunk {
            account: address,
            mailbox: row.id,
            cached: &cached,
            messages: &rows,
            threads: &threads,
            now: unix_now(),
        };
        let added = self.store.add_synced(&chunk).await?;
        self.count_in_cache(added).await?;
        Ok(rows.len())
    }

    /// Which of a chunk's renderings the thread map may complete: those whose thread or
    /// answered message it holds (all of them when it cannot be read now).
    async fn thread_asks(&self, address: &Address, chunk: &[Prepared]) -> ThreadAsks {
        let questions: Vec<(Id32, Option<Id32>)> = chunk.iter().filter_map(|p| thread_question(&p.rendered)).collect();
        if questions.is_empty() {
            return ThreadAsks::Known(HashSet::new(), HashSet::new());
        }
        let threads: Vec<Id32> = questions.iter().map(|(thread, _)| *thread).collect();
        let answered: Vec<Id32> = questions.iter().filter_map(|(_, reply_to)| *reply_to).collect();
        match self.store.threads_known(address, &threads, &answered).await {
            Ok((threads, answered)) => ThreadAsks::Known(threads, answered),
            Err(_) => ThreadAsks::All,
        }
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

/// The renderings of a chunk the thread map is asked to complete.
enum ThreadAsks {
    /// Those whose thread (first set) or answered message (second) the map holds.
    Known(HashSet<Id32>, HashSet<Id32>),
    /// Every one (the map could not be read in one step).
    All,
}

impl ThreadAsks {
    fn needs(&self, rendered: &Rendered) -> bool {
        let Some((thread, reply_to)) = thread_question(rendered) else { return false };
        match self {
            ThreadAsks::All => true,
            ThreadAsks::Known(threads, answered) => {
                threads.contains(&thread) || reply_to.is_some_and(|id| answered.contains(&id))
            }
        }
    }
}

/// Stage 1: the new envelopes, in chunks, in server order.
struct Fetcher<'a> {
    client: &'a Arc<SessionClient>,
    row: &'a MailboxRow,
    /// How many messages are new (for progress reports).
    total: usize,
}

impl Fetcher<'_> {
    /// Fetches `new` by the page when the server offers it, then one `GET` each for
    /// what the pages did not bring (all of them on a server without the extension).
    /// Returns the first error (a message deleted meanwhile is none) and the position
    /// the pages reached.
    async fn run(
        &self,
        new: &[&MessageSummary],
        out: mpsc::Sender<Vec<StoredEnvelope>>,
        progress: &mut Progress<'_>,
    ) -> (Option<MailboxError>, Option<Position>) {
        let mut wanted: HashSet<Id32> = new.iter().map(|m| m.message_id).collect();
        let mut done = 0;
        let (mut first_error, mut position) = (None, None);
        if self.client.server().implements(Api::XEnvelopes) {
            match self.pages(&mut wanted, &out, &mut done, progress).await {
                Ok(reached) => position = Some(reached),
                Err(err) => first_error = Some(err),
            }
        }
        let rest: Vec<Id32> = new.iter().map(|m| m.message_id).filter(|id| wanted.contains(id)).collect();
        for ids in rest.chunks(CHUNK) {
            let (chunk, error) = self.one_by_one(ids).await;
            if let Some(err) = error {
                first_error.get_or_insert(err);
            }
            done += ids.len();
            progress.report(done as u64, self.total as u64).await;
            if !chunk.is_empty() && out.send(chunk).await.is_err() {
                break;
            }
        }
        (first_error, position)
    }

    /// The folder's pages from the mailbox's position on, keeping the wanted envelopes
    /// (and taking them out of `wanted`); the position reached.
    async fn pages(
        &self,
        wanted: &mut HashSet<Id32>,
        out: &mpsc::Sender<Vec<StoredEnvelope>>,
        done: &mut usize,
        progress: &mut Progress<'_>,
    ) -> Result<Position, MailboxError> {
        let mut after = self.row.server_position;
        while !wanted.is_empty() {
            let page = self.client.envelope_page(MessageType::Email, self.row.folder.clone(), after).await?;
            let chunk: Vec<StoredEnvelope> = page
                .envelopes
                .into_iter()
                .map(|paged| paged.into_current())
                .filter(|envelope| wanted.remove(&envelope.server.message_id))
                .collect();
            // A server that does not move forward would loop: stop and fetch the rest one by one.
            let stuck = page.next <= after;
            after = page.next;
            *done += chunk.len();
            progress.report(*done as u64, self.total as u64).await;
            if !chunk.is_empty() && out.send(chunk).await.is_err() || !page.more || stuck {
                break;
            }
        }
        Ok(after)
    }

    /// The envelopes of `ids`, [`FETCH_CONCURRENCY`] at once, in the order given.
    async fn one_by_one(&self, ids: &[Id32]) -> (Vec<StoredEnvelope>, Option<MailboxError>) {
        let mut fetches: JoinSet<(usize, Result<StoredEnvelope, ClientError>)> = JoinSet::new();
        let spawn = |fetches: &mut JoinSet<_>, index: usize, id: Id32| {
            let client = self.client.clone();
            fetches.spawn(async move { (index, client.get_message(id).await) });
        };
        let mut pending = ids.iter().enumerate();
        for (index, id) in pending.by_ref().take(FETCH_CONCURRENCY) {
            spawn(&mut fetches, index, *id);
        }
        let mut slots: Vec<Option<StoredEnvelope>> = (0..ids.len()).map(|_| None).collect();
        let mut first_error = None;
        while let Some(joined) = fetches.join_next().await {
            if let Some((index, id)) = pending.next() {
                spawn(&mut fetches, index, *id);
            }
            match joined {
                Ok((index, Ok(envelope))) => {
                    if let Some(slot) = slots.get_mut(index) {
                        *slot = Some(envelope);
                    }
                }
                Ok((_, Err(err))) if err.code() == Some(ErrorCode::NotFound) => {}
                Ok((_, Err(err))) => {
                    first_error.get_or_insert(MailboxError::from(err));
                }
                Err(_) => {}
            }
        }
        (slots.into_iter().flatten().collect(), first_error)
    }
}

/// Stage 3: each verified chunk opened, rendered and sealed on the blocking pool, split
/// across the cores; passed on in order.
async fn render(account: &Account, mut verified: mpsc::Receiver<Verified>, out: mpsc::Sender<Vec<Prepared>>) {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    while let Some(mut chunk) = verified.recv().await {
        let keystore = account.keystore();
        let part = chunk.len().div_ceil(cores).max(1);
        let mut parts = Vec::new();
        while !chunk.is_empty() {
            let rest = chunk.split_off(part.min(chunk.len()));
            let mine = std::mem::replace(&mut chunk, rest);
            let keystore = keystore.clone();
            parts.push(tokio::task::spawn_blocking(move || prepare(&mine, &keystore)));
        }
        let mut prepared = Vec::new();
        for part in parts {
            if let Ok(done) = part.await {
                prepared.extend(done);
            }
        }
        if out.send(prepared).await.is_err() {
            return;
        }
    }
}

/// Opens, renders and seals a part of a chunk (blocking).
fn prepare(items: &[(StoredEnvelope, SenderTrust)], keystore: &Keystore) -> Vec<Prepared> {
    let refs: Vec<(&StoredEnvelope, &SenderTrust)> = items.iter().map(|(e, t)| (e, t)).collect();
    let rendered = open_and_render_all(&refs, keystore);
    items
        .iter()
        .zip(rendered)
        .map(|((envelope, _), rendered)| Prepared {
            message_id: envelope.server.message_id,
            sender: envelope.server.sender.clone(),
            read: envelope.server.read,
            received_at: envelope.server.received_at,
            sealed: seal(keystore, &rendered.bytes),
            rendered,
        })
        .collect()
}

/// A rendering sealed with the account's storage key for the cache: (nonce in hex, ciphertext).
fn seal(keystore: &Keystore, bytes: &[u8]) -> (String, Vec<u8>) {
    let nonce = BoxNonce::random(&mut OsRng);
    (nonce.to_hex(), keystore.storage_key().seal(&nonce, bytes))
}
