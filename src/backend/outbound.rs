//! Outbound mail (design §2 "Outbound"): an accepted message is queued as one row per
//! recipient, its payload sealed with the account's storage key, in one transaction;
//! a delivery then logs in at the recipient's server, takes a message key signed by
//! the recipient's pinned key, does the proof of work on all cores, seals and sends.
//! Transient failures are retried with exponential backoff until the message's time
//! runs out; permanent ones (no such user, trust violation, blacklisted) fail at once.
//! Rows for a domain with a legacy relay go through [`super::relay`] instead, with the
//! same queue, retries and delivery reports.
//!
//! A recipient's server is not trusted to be reasonable about the proof of work it asks
//! for: more than [`PowBudget::max_bits`] fails the delivery for good (a report to the
//! sender), work from [`PowBudget::lane_from`] bits on waits in one narrow lane so it
//! never holds the slots cheap deliveries need, and a server that answers
//! `nonce_unknown` to [`MAX_NONCE_UNKNOWN`] finished proofs in a row is not worked for
//! again. Trying a row ([`try_delivery`]) and recording what came of it ([`record`]) are
//! separate steps, so a caller whose database fails after the recipient's server took
//! the message can keep the outcome and record it later instead of sending again.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::OsRng;

use crate::backend::progress::Progress;
use crate::backend::relay::Relays;
use crate::backend::sessions::Sessions;
use crate::backend::trust::{verified_message_key, KeyTrustError};
use crate::client::trust::{self, TrustError};
use crate::client::{ClientError, Session, SessionClient};
use crate::discovery::Discovery;
use crate::mime::outbound::without_bcc;
use crate::mime::own::email_for_raw;
use crate::mime::report::{delivery_report, FailedDelivery, OriginalHeaders};
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxNonce, MasterKey, SecretBoxKey};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{Ciphertext, HashContext};
use crate::smimp::keys::SignedMessageKey;
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::pow::{zero_bits_for_size, PowParams, Preimage, SolveControl};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{ErrorCode, MessageSent, Route};
use crate::store::{GatewayStore, NewOutbound, OutboundRow, Recipient, StoreError};

/// The default [`PowBudget::max_bits`]: 2^28 hashes are about a minute on two cores;
/// a legitimate server asks for far less (the reference server's default is 20).
pub const DEFAULT_MAX_POW_BITS: u32 = 28;

/// The default [`PowBudget::lane_from`]: 2^22 hashes are about a second on two cores.
pub const DEFAULT_LANE_FROM_BITS: u32 = 22;

/// How many deliveries may be in the expensive lane at once: one working, one waiting
/// for it. A further one is deferred (retried later) rather than holding a slot.
const LANE_CAPACITY: usize = 2;

/// After this many `nonce_unknown` answers in a row to a finished proof of work, a
/// delivery fails for good. A legitimate server forgets a nonce only when it expired or
/// the server restarted; three times in a row, with the backoff between the tries,
/// means it will keep doing so, and each try costs a whole proof of work. Failing (with
/// a report to the sender) rather than backing off tells the sender now, not in days.
pub const MAX_NONCE_UNKNOWN: u32 = 3;

/// What proof of work deliveries may cost, and the lane expensive work waits in. Clones
/// share the lane and the `nonce_unknown` counts.
#[derive(Debug, Clone)]
pub struct PowBudget {
    /// Most bits of proof of work done for one delivery; a server asking more fails it.
    pub max_bits: u32,
    /// From this many bits on, the work runs in the expensive lane.
    pub lane_from: u32,
    lane: Arc<tokio::sync::Semaphore>,
    in_lane: Arc<AtomicUsize>,
    nonce_unknown: Arc<Mutex<HashMap<i64, u32>>>,
}

impl PowBudget {
    pub fn new(max_bits: u32, lane_from: u32) -> Self {
        Self {
            max_bits,
            lane_from,
            lane: Arc::new(tokio::sync::Semaphore::new(1)),
            in_lane: Arc::default(),
            nonce_unknown: Arc::default(),
        }
    }

    /// How many deliveries are in the expensive lane (working or waiting): they do not
    /// count against the delivery slots.
    pub fn in_lane(&self) -> usize {
        self.in_lane.load(Ordering::SeqCst)
    }

    /// Enters the expensive lane, waiting for the one working place; `None` when the
    /// lane is full.
    async fn enter_lane(&self) -> Option<LaneGuard> {
        if self.in_lane.fetch_add(1, Ordering::SeqCst) >= LANE_CAPACITY {
            self.in_lane.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let in_lane = self.in_lane.clone();
        match self.lane.clone().acquire_owned().await {
            Ok(permit) => Some(LaneGuard { _permit: permit, in_lane }),
            Err(_) => {
                in_lane.fetch_sub(1, Ordering::SeqCst);
                None
            }
        }
    }

    /// Counts one more `nonce_unknown` in a row for queue row `id`: the count so far.
    fn nonce_unknown_again(&self, id: i64) -> u32 {
        let mut counts = self.nonce_unknown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(id).or_insert(0);
        *count += 1;
        *count
    }

    /// Forgets row `id`'s `nonce_unknown` count: another answer broke the run.
    fn nonce_unknown_done(&self, id: i64) {
        self.nonce_unknown.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }
}

impl Default for PowBudget {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_POW_BITS, DEFAULT_LANE_FROM_BITS)
    }
}

/// A place in the expensive lane, given back on drop.
struct LaneGuard {
    _permit: tokio::sync::OwnedSemaphorePermit,
    in_lane: Arc<AtomicUsize>,
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        self.in_lane.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a delivery attempt failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
    /// The recipient's server refused a finished proof of work as made for a nonce it
    /// does not know: transient once, permanent when repeated (see [`MAX_NONCE_UNKNOWN`]).
    #[error("{0}")]
    NonceUnknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether trying again later may succeed: the network, the server's state or a race
/// may change; a refusal of this message or this recipient will not.
fn may_succeed_later(err: &ClientError) -> bool {
    use crate::discovery::DiscoveryError;
    match err {
        ClientError::Refused { code, .. } => matches!(
            code,
            ErrorCode::RateLimited
                | ErrorCode::Internal
                | ErrorCode::RemoteLookupFailed
                | ErrorCode::SessionExpired
                | ErrorCode::NotAuthenticated
                | ErrorCode::NonceUnknown
                | ErrorCode::KeyNotIssued
                | ErrorCode::QuotaExceeded
        ),
        ClientError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        ClientError::Discovery(DiscoveryError::InsecureRecord { .. } | DiscoveryError::BadRecord { .. }) => false,
        ClientError::Discovery(_) | ClientError::BadAnswer { .. } => true,
        ClientError::NoCommonVersion { .. } | ClientError::Unsupported { .. } => false,
    }
}

impl From<ClientError> for DeliveryError {
    fn from(err: ClientError) -> Self {
        if may_succeed_later(&err) {
            DeliveryError::Transient(err.to_string())
        } else {
            DeliveryError::Permanent(err.to_string())
        }
    }
}

impl From<KeyTrustError> for DeliveryError {
    fn from(err: KeyTrustError) -> Self {
        match err {
            KeyTrustError::Trust(TrustError::Client(client)) => client.into(),
            KeyTrustError::Store(store) => DeliveryError::Store(store),
            KeyTrustError::Trust(other) => DeliveryError::Permanent(other.to_string()),
        }
    }
}

/// The sending account's secrets a delivery needs, and its sessions at the servers it
/// talks to.
pub struct Sender {
    pub address: Address,
    pub master: Arc<MasterKey>,
    pub storage_key: SecretBoxKey,
    pub sessions: Sessions,
}

impl Sender {
    /// A sender with no session yet.
    pub fn new(address: Address, master: Arc<MasterKey>, storage_key: SecretBoxKey) -> Self {
        let sessions = Sessions::new(address.clone(), master.clone());
        Self { address, master, storage_key, sessions }
    }
}

/// When to try again, and how much one try may cost.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How long an accepted message is tried before it bounces.
    pub give_up_after: Duration,
    /// The proof of work a try may do.
    pub pow: PowBudget,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5 * 24 * 3600),
            pow: PowBudget::default(),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts: doubling from `first_delay`, capped.
    pub fn delay(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.saturating_sub(1)).min(1 << 20);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Queues `payload` for every recipient, atomically; returns the queue ids. Once this
/// returns, the message survives a crash.
pub async fn enqueue(
    store: &GatewayStore,
    sender: &Sender,
    message_type: &MessageType,
    payload: &[u8],
    recipients: &[Address],
    policy: &RetryPolicy,
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let rows: Vec<NewOutbound<'_>> = recipients
        .iter()
        .map(|recipient| {
            sealed_row(sender, Recipient::Smimp(recipient.clone()), message_type.as_str(), payload, policy, now)
        })
        .collect();
    store.enqueue(&rows, now).await
}

/// One queue row: `payload` sealed with the account's storage key under a fresh nonce,
/// so the gateway's disk never holds it in the clear, whatever the route.
pub fn sealed_row<'a>(
    sender: &'a Sender,
    recipient: Recipient,
    message_type: &'a str,
    payload: &[u8],
    policy: &RetryPolicy,
    now: i64,
) -> NewOutbound<'a> {
    let nonce = BoxNonce::random(&mut OsRng);
    NewOutbound {
        account: &sender.address,
        recipient,
        message_type,
        nonce: nonce.to_hex(),
        sealed_payload: sender.storage_key.seal(&nonce, payload),
        give_up_at: now + policy.give_up_after.as_secs() as i64,
    }
}

/// The message type stored on relay rows: their payload is the submitted RFC 5322
/// message, not an SMIMP payload.
pub const RELAY_MESSAGE_TYPE: &str = "rfc5322";

/// The outcome of one successful delivery.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub message_id: Id32,
    pub zero_bits: u32,
    pub pow_attempts: u64,
    pub elapsed: Duration,
}

/// Opens a row's sealed payload with the account's storage key.
fn open_payload(sender: &Sender, row: &OutboundRow) -> Result<Vec<u8>, DeliveryError> {
    let nonce: BoxNonce =
        row.nonce.parse().map_err(|_| DeliveryError::Permanent("the queued message is corrupt".into()))?;
    sender.storage_key.open(&nonce, &row.sealed_payload).map_err(|_| {
        DeliveryError::Permanent("the queued message cannot be opened with this account's storage key".into())
    })
}

/// Delivers one queued SMIMP row: trust, key, PoW (within `budget`), seal, send.
pub async fn deliver(
    discovery: &Discovery,
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    budget: &PowBudget,
    now: i64,
) -> Result<Delivered, DeliveryError> {
    let Recipient::Smimp(recipient) = &row.recipient else {
        return Err(DeliveryError::Permanent("a relay row is not delivered over SMIMP".into()));
    };
    let payload = open_payload(sender, row)?;
    let message_type = MessageType::parse(&row.message_type).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    let message = Outgoing { recipient, message_type, payload: &payload };
    send_within(discovery, store, sender, &message, budget, now).await
}

/// Delivers one queued relay row: the submitted message, as it is, to the relay
/// configured for the recipient's domain. A domain whose relay was removed from the
/// configuration since is not sent to at all.
pub async fn deliver_relayed(relays: &Relays, sender: &Sender, row: &OutboundRow) -> Result<(), DeliveryError> {
    let Recipient::Relay { to, from } = &row.recipient else {
        return Err(DeliveryError::Permanent("an SMIMP row is not relayed".into()));
    };
    let Some((_, relay)) = relays.for_recipient(to) else {
        return Err(DeliveryError::Permanent(format!(
            "no legacy relay is configured for {to}'s domain any more; the message was not sent"
        )));
    };
    // Rows are queued without Bcc; one queued by an older version may still hold it.
    let message = open_payload(sender, row)?;
    let message = without_bcc(&message)
        .ok_or_else(|| DeliveryError::Permanent("the queued message has no header section".into()))?;
    relay.send(from, to, &message).await
}

/// Sends one payload to one recipient: the sender's session at the recipient's server
/// (shared, see [`Sessions`]), a message
/// key signed by the recipient's trusted key, the proof of work, seal and send. Used by
/// IMAP APPEND (which sends to the account itself), with the default [`PowBudget`].
pub async fn send_payload(
    discovery: &Discovery,
    store: &GatewayStore,
    sender: &Sender,
    recipient: &Address,
    message_type: MessageType,
    payload: &[u8],
    now: i64,
) -> Result<Delivered, DeliveryError> {
    let message = Outgoing { recipient, message_type, payload };
    send_within(discovery, store, sender, &message, &PowBudget::default(), now).await
}

/// One message to one recipient, as a delivery sends it.
struct Outgoing<'a> {
    recipient: &'a Address,
    message_type: MessageType,
    payload: &'a [u8],
}

/// [`send_payload`] with the proof of work held to `budget`: refused above its cap, in
/// its lane from its threshold on.
async fn send_within(
    discovery: &Discovery,
    store: &GatewayStore,
    sender: &Sender,
    message: &Outgoing<'_>,
    budget: &PowBudget,
    now: i64,
) -> Result<Delivered, DeliveryError> {
    let started = Instant::now();
    let recipient = message.recipient;
    let client = sender.sessions.at(discovery, recipient.domain()).await?;
    let session = client.session().await?;
    let (key, _nonephemeral) = message_key(&client, &session, store, sender, recipient, now).await?;
    let sealed = Ciphertext::seal(
        message.payload,
        message.message_type.clone(),
        BoxNonce::random(&mut OsRng),
        &key.public_key,
        &sender.master,
    );
    // The issued difficulty grows with the message's size (docs/protocol.md §3.1).
    let size = sealed.bytes.len();
    let pow_route = Route::GetPowParams { address: recipient.clone(), message_type: message.message_type.clone() };
    let mut params: PowParams = client.call_in(&session, &pow_route, None::<&()>).await?;
    let mut zero_bits = within_cap(recipient, zero_bits_for_size(params.zero_bits, size), budget)?;
    let _lane = if zero_bits >= budget.lane_from {
        let Some(guard) = budget.enter_lane().await else {
            return Err(DeliveryError::Transient(format!(
                "{recipient}'s server asks for {zero_bits} bits of proof of work, and other deliveries already wait \
                 for expensive proof of work; tried again later"
            )));
        };
        // The wait may have outlived the nonce: ask again, now that the work can start.
        params = client.call_in(&session, &pow_route, None::<&()>).await?;
        zero_bits = within_cap(recipient, zero_bits_for_size(params.zero_bits, size), budget)?;
        Some(guard)
    } else {
        None
    };
    let context = HashContext { sender: &sender.address, recipient, login_token_hash: &session.login_token_hash };
    let preimage = Preimage::new(&sealed.pow_input(&context), &params.nonce);
    let control = Arc::new(SolveControl::default());
    let solving = control.clone();
    let work = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        let solution = preimage.solve(zero_bits, &Id32::random(&mut OsRng), threads, &solving);
        (solution, solving.attempts.load(Ordering::Relaxed))
    });
    let progress = Progress::new(store, &sender.address, format!("proof of work for {recipient}"));
    let (solution, pow_attempts) = report_progress(work, &control, progress, recipient, zero_bits, PROGRESS_EVERY)
        .await
        .map_err(|e| DeliveryError::Transient(format!("the proof of work stopped: {e}")))?;
    let solution = solution.map_err(|e| DeliveryError::Transient(e.to_string()))?;
    let envelope = sealed.into_envelope(&sender.master, &context, Some(solution));
    let sent: MessageSent =
        match client.call_in(&session, &Route::SendMessage { address: recipient.clone() }, Some(&envelope)).await {
            Ok(sent) => sent,
            Err(err) if err.code() == Some(ErrorCode::NonceUnknown) => {
                return Err(DeliveryError::NonceUnknown(format!(
                    "{recipient}'s server refused {zero_bits} bits of finished proof of work as made for a nonce it \
                     does not know ({err})"
                )))
            }
            Err(err) => return Err(err.into()),
        };
    Ok(Delivered { message_id: sent.message_id, zero_bits, pow_attempts, elapsed: started.elapsed() })
}

/// A message key of `recipient`, checked against the recipient's trusted key. Mail to
/// the account itself (a Sent copy, an APPEND) is checked against the account's own
/// key, which this gateway holds: asking the server which key it is would only give
/// a lying server a say, and costs a round trip per stored message.
async fn message_key(
    client: &SessionClient,
    session: &Session,
    store: &GatewayStore,
    sender: &Sender,
    recipient: &Address,
    now: i64,
) -> Result<(SignedMessageKey, bool), DeliveryError> {
    if *recipient == sender.address {
        let own = sender.master.public();
        return Ok(trust::verified_message_key(client, session, &own, recipient)
            .await
            .map_err(KeyTrustError::Trust)?);
    }
    Ok(verified_message_key(client, session, store, recipient, now).await?)
}

/// Refuses, for good, proof of work above the budget's cap (`zero_bits` as grown with
/// the message's size): no work is started. The bits to work otherwise.
fn within_cap(recipient: &Address, zero_bits: u32, budget: &PowBudget) -> Result<u32, DeliveryError> {
    if zero_bits > budget.max_bits {
        return Err(DeliveryError::Permanent(format!(
            "{recipient}'s server asks for {zero_bits} bits of proof of work for this message, more than the {} this \
             gateway does (max_pow_bits in [delivery]); no work was done",
            budget.max_bits
        )));
    }
    Ok(zero_bits)
}

/// How often a long proof of work reports its progress in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Awaits the proof of work, logging (and recording for `status`) every `every` how
/// many hashes were tried against the expected 2^bits, so a slow delivery at high
/// difficulty is visibly working rather than stuck.
async fn report_progress<T>(
    mut work: tokio::task::JoinHandle<T>,
    control: &SolveControl,
    mut progress: Progress<'_>,
    recipient: &Address,
    zero_bits: u32,
    every: Duration,
) -> Result<T, tokio::task::JoinError> {
    let started = Instant::now();
    let expected = 2f64.powi(zero_bits as i32);
    let done = loop {
        tokio::select! {
            done = &mut work => break done,
            () = tokio::time::sleep(every) => {
                let tried = control.attempts.load(std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    recipient = %recipient, zero_bits, attempts = tried,
                    expected_percent = (tried as f64 / expected * 100.0).round() as u64,
                    elapsed_s = started.elapsed().as_secs(), "proof of work in progress"
                );
                progress.report(tried, expected as u64).await;
            }
        }
    };
    progress.finish().await;
    done
}

/// What one try of a row came to, as the queue records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The recipient (or the relay) took it; SMIMP deliveries have a message id.
    Sent { message_id: Option<String> },
    /// Tried again at `retry_at`.
    Deferred { reason: String, retry_at: i64 },
    /// Failed for good; the sender gets a delivery report.
    Failed { reason: String },
}

impl Outcome {
    /// The reason, when the row failed for good.
    pub fn failure(&self) -> Option<&str> {
        match self {
            Outcome::Failed { reason } => Some(reason),
            _ => None,
        }
    }
}

/// Attempts one row over its route (SMIMP, or the legacy relay) and records the
/// outcome: sent, retry later, or failed for good. Returns the final error when the row
/// failed for good (a delivery report to the sender is queued with it).
pub async fn attempt(
    discovery: &Discovery,
    relays: &Relays,
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    policy: &RetryPolicy,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let outcome = try_delivery(discovery, relays, store, sender, row, policy, now).await;
    record(store, sender, row, &outcome, policy, now).await?;
    Ok(outcome.failure().map(str::to_string))
}

/// Tries one row over its route, once, and decides what came of it; writes nothing to
/// the queue (see [`record`]). Logs one line per try (recipient, route, outcome,
/// duration; never content). The database failing during the try (reading a pin)
/// defers the row like any transient failure.
pub async fn try_delivery(
    discovery: &Discovery,
    relays: &Relays,
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    policy: &RetryPolicy,
    now: i64,
) -> Outcome {
    let started = Instant::now();
    let (route, outcome) = match &row.recipient {
        Recipient::Smimp(_) => ("smimp", deliver(discovery, store, sender, row, &policy.pow, now).await.map(Some)),
        Recipient::Relay { .. } => ("relay", deliver_relayed(relays, sender, row).await.map(|()| None)),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let error = match outcome {
        Ok(done) => {
            policy.pow.nonce_unknown_done(row.id);
            match &done {
                Some(done) => tracing::info!(
                    recipient = %row.recipient, route, outcome = "sent", zero_bits = done.zero_bits,
                    pow_attempts = done.pow_attempts, duration_ms, "delivery"
                ),
                None => tracing::info!(recipient = %row.recipient, route, outcome = "sent", duration_ms, "delivery"),
            }
            return Outcome::Sent { message_id: done.map(|d| d.message_id.to_hex()) };
        }
        Err(DeliveryError::NonceUnknown(reason)) => {
            let times = policy.pow.nonce_unknown_again(row.id);
            if times >= MAX_NONCE_UNKNOWN {
                policy.pow.nonce_unknown_done(row.id);
                DeliveryError::Permanent(format!(
                    "{}'s server refused the finished proof of work {times} times in a row as made for a nonce it \
                     does not know; the work is not done again. The last refusal: {reason}",
                    row.recipient
                ))
            } else {
                DeliveryError::Transient(reason)
            }
        }
        Err(other) => {
            policy.pow.nonce_unknown_done(row.id);
            other
        }
    };
    let outcome = match error {
        DeliveryError::Store(err) => deferred(row, format!("the gateway's database failed: {err}"), policy, now),
        DeliveryError::Transient(reason) | DeliveryError::NonceUnknown(reason) => deferred(row, reason, policy, now),
        DeliveryError::Permanent(reason) => Outcome::Failed { reason },
    };
    match &outcome {
        Outcome::Deferred { reason, retry_at } => tracing::info!(
            recipient = %row.recipient, route, outcome = "deferred", reason, retry_at, duration_ms, "delivery"
        ),
        Outcome::Failed { reason } => {
            tracing::warn!(recipient = %row.recipient, route, outcome = "failed", reason, duration_ms, "delivery");
        }
        Outcome::Sent { .. } => {}
    }
    outcome
}

/// A transient failure: tried again after the backoff, or failed for good once the
/// message's time has run out.
fn deferred(row: &OutboundRow, reason: String, policy: &RetryPolicy, now: i64) -> Outcome {
    let retry_at = now + policy.delay(row.attempts as u32 + 1).as_secs() as i64;
    if retry_at < row.give_up_at {
        Outcome::Deferred { reason, retry_at }
    } else {
        Outcome::Failed { reason: format!("gave up after {} attempts: {reason}", row.attempts + 1) }
    }
}

/// Writes what came of a try to the queue: sent, retry later, or failed for good with a
/// delivery report to the sender. Each write is one statement or one transaction, so a
/// write that failed changed nothing and the caller may record the outcome again later.
pub async fn record(
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    outcome: &Outcome,
    policy: &RetryPolicy,
    now: i64,
) -> Result<(), StoreError> {
    match outcome {
        Outcome::Sent { message_id } => store.outbound_sent(row.id, message_id.as_deref(), now).await,
        Outcome::Deferred { reason, retry_at } => {
            store.outbound_attempt_failed(row.id, reason, Some(*retry_at), now).await
        }
        Outcome::Failed { reason } => fail(store, sender, row, reason, policy, now).await,
    }
}

/// Fails a row for good and, unless it was itself a report to the sender, queues a
/// delivery report (multipart/report) to the sender's own mailbox, where the mail
/// client finds it in INBOX.
async fn fail(
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    reason: &str,
    policy: &RetryPolicy,
    now: i64,
) -> Result<(), StoreError> {
    let payload =
        row.nonce.parse::<BoxNonce>().ok().and_then(|nonce| sender.storage_key.open(&nonce, &row.sealed_payload).ok());
    let Some(at) = Timestamp::from_unix(now) else {
        return store.outbound_attempt_failed(row.id, reason, None, now).await;
    };
    let original = match (&row.recipient, payload) {
        // A report that fails is not reported again.
        (Recipient::Smimp(to), _) if *to == sender.address => None,
        (Recipient::Smimp(_), Some(bytes)) => match Payload::parse(&MessageType::Email, &bytes) {
            Ok(Payload::Email(email)) => Some(OriginalHeaders::from_email(&email)),
            _ => None,
        },
        (Recipient::Relay { .. }, Some(bytes)) => Some(OriginalHeaders::from_rfc5322(&bytes, at)),
        (_, None) => None,
    };
    let Some(original) = original else {
        return store.outbound_attempt_failed(row.id, reason, None, now).await;
    };
    let recipient = row.recipient.email();
    let failed = FailedDelivery {
        sender: &sender.address,
        recipient: &recipient,
        original: &original,
        relayed: matches!(row.recipient, Recipient::Relay { .. }),
        reason,
        arrival: at,
        now: at,
    };
    let report = delivery_report(&failed, &Id32::random(&mut OsRng));
    let payload = Payload::Email(Box::new(email_for_raw(&report, &sender.address, at, &mut OsRng))).to_bytes();
    let report_row = sealed_row(
        sender,
        Recipient::Smimp(sender.address.clone()),
        MessageType::Email.as_str(),
        &payload,
        policy,
        now,
    );
    store.outbound_failed_with_report(row.id, reason, &report_row, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_proof_of_work_shows_in_status_until_it_ends() {
        let dir = std::env::temp_dir().join(format!("smimp-pow-progress-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).await.unwrap();
        let alice: Address = "alice#example.org".parse().unwrap();
        let bob: Address = "bob#example.net".parse().unwrap();
        let control = SolveControl::default();
        control.attempts.store(1 << 19, std::sync::atomic::Ordering::Relaxed);
        let (finish, finished) = tokio::sync::oneshot::channel::<()>();
        let work = tokio::spawn(async move {
            let _ = finished.await;
            "solved"
        });
        let progress = Progress::new(&store, &alice, format!("proof of work for {bob}"));
        let reporting = report_progress(work, &control, progress, &bob, 20, Duration::from_millis(20));
        tokio::pin!(reporting);
        let shown = loop {
            tokio::select! {
                _ = &mut reporting => panic!("the work ended before it was finished"),
                () = tokio::time::sleep(Duration::from_millis(30)) => {}
            }
            let rows = store.progress().await.unwrap();
            if !rows.is_empty() {
                break rows;
            }
        };
        assert_eq!(shown[0].task, "proof of work for bob#example.net");
        assert_eq!((shown[0].done, shown[0].total), (1 << 19, 1 << 20));
        finish.send(()).unwrap();
        assert_eq!(reporting.await.unwrap(), "solved");
        assert!(store.progress().await.unwrap().is_empty(), "finished work leaves status");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            ..Default::default()
        };
        let delays: Vec<u64> = (1..=9).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(policy.delay(u32::MAX).as_secs(), 3600);
    }
}
