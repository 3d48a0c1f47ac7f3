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
use crate::backend::inbound::{open_and_render, own_trust, Rendered, SenderTrust};
use crate::backend::progress::Progress;
use crate::backend::trust::{trusted_key, KeyTrustError};
use crate::client::trust::TrustError;
use crate::client::{ClientError, ServerClient, SessionClient};
use crate::clock::unix_now;
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxNonce;
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::StoredEnvelope;
use crate::smimp::message::MessageType;
use crate::smimp::profile::verify_history;
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
        let mut changed = self.follow_server(account, row, &known, &listed).await?;
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
    async fn follow_server(
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

    /// Stage 2: the keys each sender may sign with (asked once per sender). A message
    /// whose sender's server cannot be asked now is dropped from this sync.
    async fn verify(&self, account: &Account, mut fetched: mpsc::Receiver<Fetched>, out: mpsc::Sender<Verified>) {
        let mut trust: HashMap<Address, SenderTrust> = HashMap::new();
        let mut reloaded = false;
        while let Some((index, envelope)) = fetched.recv().await {
            let sender = envelope.server.sender.clone();
            let verdict = match trust.get(&sender) {
                Some(verdict) => verdict.clone(),
                None => match self.sender_trust(account, &sender, &envelope).await {
                    Ok(verdict) => trust.entry(sender).or_insert(verdict).clone(),
                    Err(err) => {
                        // The message waits for the next sync rather than being shown unverified.
                        tracing::info!(sender = %sender, error = %err, "a message waits: its sender cannot be checked now");
                        continue;
                    }
                },
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
        for (envelope, rendered) in rendered {
            let id = envelope.server.message_id;
            if rendered.delivery_id.is_some() && first_copy.next() == Some(false) {
                self.store.hide_message(address, &id, "a second copy of one delivery").await?;
                continue;
            }
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

    /// What the account accepts as `sender`'s keys: its own masters, or the key trust on
    /// first use pins now plus, if `envelope` was signed by another, the keys of the
    /// sender's verified history (an earlier key of a rotation).
    pub(super) async fn sender_trust(
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
            Err(KeyTrustError::Trust(TrustError::Client(err)))
                if err.is_transient() || matches!(err, ClientError::Discovery(_)) =>
            {
                return Err(err)
            }
            Err(err) => return Ok(SenderTrust::Refused(err.to_string())),
        };
        let mut keys = HashSet::from([current]);
        if envelope.server.sender_public_key != current {
            let history = server.user_history(sender).await?;
            if let Ok(verified) = verify_history(sender, &history.history) {
                if verified.current_key() == current && verified.contains_key(&envelope.server.sender_public_key) {
                    keys.insert(envelope.server.sender_public_key);
                }
            }
        }
        Ok(SenderTrust::Keys(keys))
    }
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
