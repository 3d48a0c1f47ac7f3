//! Outbound mail (design §2 "Outbound"): an accepted message is queued as one row per
//! recipient, its payload sealed with the account's storage key, in one transaction;
//! a delivery then logs in at the recipient's server, takes a message key signed by
//! the recipient's pinned key, does the proof of work on all cores, seals and sends.
//! Transient failures are retried with exponential backoff until the message's time
//! runs out; permanent ones (no such user, trust violation, blacklisted) fail at once.
//! Rows for a domain with a legacy relay go through [`super::relay`] instead, with the
//! same queue, retries and delivery reports.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::OsRng;

use crate::backend::progress::Progress;
use crate::backend::relay::Relays;
use crate::backend::sessions::Sessions;
use crate::backend::trust::{verified_message_key, KeyTrustError};
use crate::client::trust::TrustError;
use crate::client::ClientError;
use crate::discovery::Discovery;
use crate::mime::own::email_for_raw;
use crate::mime::report::{delivery_report, FailedDelivery, OriginalHeaders};
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxNonce, MasterKey, SecretBoxKey};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{Ciphertext, HashContext};
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::pow::{zero_bits_for_size, PowParams, Preimage, SolveControl};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{ErrorCode, MessageSent, Route};
use crate::store::{GatewayStore, NewOutbound, OutboundRow, Recipient, StoreError};

/// Difficulty above which a delivery is refused rather than attempted (about a day of work).
pub const MAX_ACCEPTED_ZERO_BITS: u32 = 36;

/// Why a delivery attempt failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
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

/// When to try again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How long an accepted message is tried before it bounces.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(5 * 24 * 3600),
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

/// Delivers one queued SMIMP row: trust, key, PoW, seal, send.
pub async fn deliver(
    discovery: &Discovery,
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    now: i64,
) -> Result<Delivered, DeliveryError> {
    let Recipient::Smimp(recipient) = &row.recipient else {
        return Err(DeliveryError::Permanent("a relay row is not delivered over SMIMP".into()));
    };
    let payload = open_payload(sender, row)?;
    let message_type = MessageType::parse(&row.message_type).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    send_payload(discovery, store, sender, recipient, message_type, &payload, now).await
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
    relay.send(from, to, &open_payload(sender, row)?).await
}

/// Sends one payload to one recipient: the sender's session at the recipient's server
/// (shared, see [`Sessions`]), a message
/// key signed by the recipient's trusted key, the proof of work, seal and send. Used by
/// the queue and by IMAP APPEND (which sends to the account itself).
pub async fn send_payload(
    discovery: &Discovery,
    store: &GatewayStore,
    sender: &Sender,
    recipient: &Address,
    message_type: MessageType,
    payload: &[u8],
    now: i64,
) -> Result<Delivered, DeliveryError> {
    let started = Instant::now();
    let client = sender.sessions.at(discovery, recipient.domain()).await?;
    let session = client.session().await?;
    let (key, _nonephemeral) = verified_message_key(&client, &session, store, recipient, now).await?;
    let params: PowParams = client
        .call_in(
            &session,
            &Route::GetPowParams { address: recipient.clone(), message_type: message_type.clone() },
            None::<&()>,
        )
        .await?;
    let sealed = Ciphertext::seal(payload, message_type, BoxNonce::random(&mut OsRng), &key.public_key, &sender.master);
    // The issued difficulty grows with the message's size (docs/protocol.md §3.1).
    let zero_bits = zero_bits_for_size(params.zero_bits, sealed.bytes.len());
    if zero_bits > MAX_ACCEPTED_ZERO_BITS {
        return Err(DeliveryError::Permanent(format!(
            "{}'s server asks for {} bits of proof of work for this message, more than the {MAX_ACCEPTED_ZERO_BITS} \
             this gateway will do",
            recipient, zero_bits
        )));
    }
    let context = HashContext { sender: &sender.address, recipient, login_token_hash: &session.login_token_hash };
    let preimage = Preimage::new(&sealed.pow_input(&context), &params.nonce);
    let control = Arc::new(SolveControl::default());
    let solving = control.clone();
    let work = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN);
        let solution = preimage.solve(zero_bits, &Id32::random(&mut OsRng), threads, &solving);
        (solution, solving.attempts.load(std::sync::atomic::Ordering::Relaxed))
    });
    let progress = Progress::new(store, &sender.address, format!("proof of work for {recipient}"));
    let (solution, pow_attempts) = report_progress(work, &control, progress, recipient, zero_bits, PROGRESS_EVERY)
        .await
        .map_err(|e| DeliveryError::Transient(format!("the proof of work stopped: {e}")))?;
    let solution = solution.map_err(|e| DeliveryError::Transient(e.to_string()))?;
    let envelope = sealed.into_envelope(&sender.master, &context, Some(solution));
    let sent: MessageSent =
        client.call_in(&session, &Route::SendMessage { address: recipient.clone() }, Some(&envelope)).await?;
    Ok(Delivered { message_id: sent.message_id, zero_bits, pow_attempts, elapsed: started.elapsed() })
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

/// Attempts one row over its route (SMIMP, or the legacy relay) and records the
/// outcome: sent, retry later, or failed for good. Logs one line per attempt (recipient,
/// route, outcome, duration; never content). Returns the final error when the row failed
/// for good (a delivery report to the sender is queued with it).
pub async fn attempt(
    discovery: &Discovery,
    relays: &Relays,
    store: &GatewayStore,
    sender: &Sender,
    row: &OutboundRow,
    policy: &RetryPolicy,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let started = Instant::now();
    let (route, outcome) = match &row.recipient {
        Recipient::Smimp(_) => ("smimp", deliver(discovery, store, sender, row, now).await.map(Some)),
        Recipient::Relay { .. } => ("relay", deliver_relayed(relays, sender, row).await.map(|()| None)),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(done) => {
            match &done {
                Some(done) => tracing::info!(
                    recipient = %row.recipient, route, outcome = "sent", zero_bits = done.zero_bits,
                    pow_attempts = done.pow_attempts, duration_ms, "delivery"
                ),
                None => tracing::info!(recipient = %row.recipient, route, outcome = "sent", duration_ms, "delivery"),
            }
            let message_id = done.map(|d| d.message_id.to_hex());
            store.outbound_sent(row.id, message_id.as_deref(), now).await?;
            Ok(None)
        }
        Err(DeliveryError::Store(err)) => Err(err),
        Err(DeliveryError::Transient(reason)) => {
            let retry_at = now + policy.delay(row.attempts as u32 + 1).as_secs() as i64;
            if retry_at < row.give_up_at {
                tracing::info!(recipient = %row.recipient, route, outcome = "deferred", reason, retry_at, duration_ms, "delivery");
                store.outbound_attempt_failed(row.id, &reason, Some(retry_at), now).await?;
                Ok(None)
            } else {
                let reason = format!("gave up after {} attempts: {reason}", row.attempts + 1);
                tracing::warn!(recipient = %row.recipient, route, outcome = "failed", reason, duration_ms, "delivery");
                fail(store, sender, row, &reason, policy, now).await?;
                Ok(Some(reason))
            }
        }
        Err(DeliveryError::Permanent(reason)) => {
            tracing::warn!(recipient = %row.recipient, route, outcome = "failed", reason, duration_ms, "delivery");
            fail(store, sender, row, &reason, policy, now).await?;
            Ok(Some(reason))
        }
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
