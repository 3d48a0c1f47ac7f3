//! What SMTP submission does with a message (design §2 "Outbound"): a login checked
//! against the account's keystore, each recipient checked at RCPT TO (an SMIMP form,
//! an SMIMP server, a profile, trust), and an accepted message converted to the SMIMP
//! `email` payload and queued durably — one sealed row per recipient — before the
//! client hears 250. Nothing is ever sent in the clear — except to a domain the
//! configuration explicitly gives a legacy relay ([`crate::backend::relay`]): such a
//! recipient is accepted without asking SMIMP, told so in the 250 reply, and queued
//! with the submitted message as it is but for its Bcc fields (sealed at rest like every
//! queue row).
//!
//! Whatever the route, mail goes out in the logged-in account's name only: `MAIL FROM`
//! must be the account's address (553 otherwise, before any recipient is checked), and
//! so must every address in the message's `From:` (550 at the end of DATA).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::backend::account::Account;
use crate::backend::outbound::{self, sealed_row, Outcome, RetryPolicy, RELAY_MESSAGE_TYPE};
use crate::backend::relay::Relays;
use crate::backend::trust::{trusted_key, KeyTrustError};
use crate::client::trust::TrustError;
use crate::client::{ClientError, ServerClient};
use crate::clock::unix_now;
use crate::discovery::{Discovery, DiscoveryError};
use crate::mime::inbound::{email_from_rfc5322, KnownMessage};
use crate::mime::original::{original_extension, X_ORIGINAL};
use crate::mime::outbound::{from_addresses, without_bcc};
use crate::mime::X_DELIVERY;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::ErrorCode;
use crate::smtp::{RecipientOk, Refusal, Submission};
use crate::store::{GatewayStore, OutboundRow, Recipient, ThreadEntry};

/// The SMTP side of the backend: what submission does with logins, recipients and
/// messages, and the queue the delivery loop works through.
pub struct SubmissionBackend {
    pub store: GatewayStore,
    pub discovery: Discovery,
    pub policy: RetryPolicy,
    pub accounts: HashMap<String, Arc<Account>>,
    /// Legacy relays by recipient domain (`[relay."DOMAIN"]`); none by default.
    pub relays: Arc<Relays>,
    /// Woken whenever something is queued, so delivery starts at once.
    pub queued: Arc<Notify>,
}

/// Turns a failed recipient check into the reply the mail client shows.
fn refusal_for(email: &str, domain: &str, err: KeyTrustError) -> Refusal {
    match err {
        KeyTrustError::Store(_) => Refusal::temporary("the gateway could not read its database; try again later"),
        KeyTrustError::Trust(err) => refusal_for_trust(email, domain, err),
    }
}

/// The reply for a recipient whose key could not be trusted.
fn refusal_for_trust(email: &str, domain: &str, err: TrustError) -> Refusal {
    match err {
        TrustError::Client(ClientError::Discovery(
            DiscoveryError::Status { status: 404, .. } | DiscoveryError::BadRecord { .. },
        )) => Refusal::new(
            550,
            [5, 1, 2],
            format!("{domain} has no SMIMP server, and this gateway never sends mail unencrypted"),
        ),
        TrustError::Client(ClientError::Discovery(DiscoveryError::InsecureRecord { .. })) => Refusal::new(
            550,
            [5, 7, 1],
            format!("{domain} names an unencrypted (http) SMIMP server, which is never used"),
        ),
        TrustError::Client(ClientError::Discovery(DiscoveryError::Certificate { reason, .. })) => Refusal::new(
            550,
            [5, 7, 1],
            format!("the SMIMP server of {domain} has a certificate this gateway does not trust ({reason})"),
        ),
        TrustError::Client(ClientError::Discovery(DiscoveryError::Unreachable { .. })) => Refusal::new(
            451,
            [4, 4, 1],
            format!(
                "the SMIMP server of {domain} cannot be reached now (or {domain} has no SMIMP server); try again later"
            ),
        ),
        TrustError::Client(err) if err.code() == Some(ErrorCode::NotFound) => {
            Refusal::new(550, [5, 1, 1], format!("{email} has no SMIMP profile"))
        }
        TrustError::Client(err) if err.is_transient() => {
            Refusal::new(451, [4, 4, 0], format!("the SMIMP server of {domain} failed ({err}); try again later"))
        }
        other => Refusal::new(550, [5, 7, 1], format!("{email} is refused: {other}")),
    }
}

/// Whether `email` (as a client wrote it) is the account's own address.
fn is_account(account: &Account, email: &str) -> bool {
    Address::from_email(email).is_ok_and(|address| address == account.sender.address)
}

/// Refuses a message whose `From:` names anyone but the account (or no one): every copy,
/// SMIMP or relayed, goes out in the account's name only.
fn check_from_header(account: &Account, message: &[u8]) -> Result<(), Refusal> {
    let own = account.sender.address.to_email();
    let from = from_addresses(message);
    if from.is_empty() {
        return Err(Refusal::new(
            550,
            [5, 6, 0],
            format!("the message has no From: header; it must name your account {own}"),
        ));
    }
    if let Some(other) = from.iter().find(|f| !is_account(account, f)) {
        let other = if other.is_empty() { "an address group with no address" } else { other.as_str() };
        return Err(Refusal::new(
            550,
            [5, 7, 1],
            format!("the From: header names {other}, but this account sends only as {own}; nothing was sent"),
        ));
    }
    Ok(())
}

impl Submission for SubmissionBackend {
    type Account = Arc<Account>;

    async fn authenticate(&self, username: &str, password: &str) -> Option<Arc<Account>> {
        let account = self.accounts.get(&username.to_ascii_lowercase())?.clone();
        account.check_password(password).await.then_some(account)
    }

    fn check_sender(&self, account: &Arc<Account>, mail_from: &str) -> Result<(), Refusal> {
        if is_account(account, mail_from) {
            return Ok(());
        }
        let own = account.sender.address.to_email();
        let given = if mail_from.is_empty() { "the null sender <>".to_string() } else { mail_from.to_string() };
        Err(Refusal::new(
            553,
            [5, 7, 1],
            format!("the envelope sender must be your account's address {own}, not {given} (MAIL FROM:<{own}>)"),
        ))
    }

    async fn check_recipient(&self, _account: &Arc<Account>, recipient: &str) -> Result<RecipientOk, Refusal> {
        if let Some((domain, relay)) = self.relays.for_recipient(recipient) {
            return Ok(RecipientOk::with_text(format!(
                "{recipient} is relayed as plain email through {} (the legacy relay configured for {domain}), \
                 NOT end-to-end encrypted",
                relay.server()
            )));
        }
        let address = Address::from_email(recipient).map_err(|e| {
            Refusal::new(
                550,
                [5, 1, 3],
                format!("{recipient} has no SMIMP form ({e}); SMIMP user names are letters and digits"),
            )
        })?;
        let domain = address.domain().to_string();
        let server = ServerClient::connect(&self.discovery, &domain)
            .await
            .map_err(|e| refusal_for_trust(recipient, &domain, TrustError::Client(e)))?;
        trusted_key(&server, &self.store, &address, unix_now())
            .await
            .map_err(|e| refusal_for(recipient, &domain, e))?;
        Ok(RecipientOk::ok())
    }

    async fn accept(
        &self,
        account: &Arc<Account>,
        from: &str,
        recipients: &[String],
        message: Vec<u8>,
    ) -> Result<(), Refusal> {
        check_from_header(account, &message)?;
        let (relayed, smimp): (Vec<&String>, Vec<&String>) =
            recipients.iter().partition(|r| self.relays.for_recipient(r).is_some());
        let envelope: Vec<Address> = smimp.iter().filter_map(|r| Address::from_email(r).ok()).collect();
        let now = unix_now();
        let sender = &account.sender;
        // Relayed recipients get the message as submitted but for its Bcc fields, one
        // sealed row each: the queue never holds who was sent it in secret.
        let relay_copy = if relayed.is_empty() {
            Vec::new()
        } else {
            without_bcc(&message).ok_or_else(|| {
                Refusal::new(554, [5, 6, 0], "the message has no header section and cannot be relayed")
            })?
        };
        let mut rows: Vec<_> = relayed
            .iter()
            .map(|to| {
                let recipient = Recipient::Relay { to: to.to_string(), from: from.to_string() };
                sealed_row(sender, recipient, RELAY_MESSAGE_TYPE, &relay_copy, &self.policy, now)
            })
            .collect();
        let mut smimp_part = None;
        if !envelope.is_empty() {
            let at =
                Timestamp::from_unix(now).ok_or_else(|| Refusal::temporary("the gateway's clock is out of range"))?;
            let threads = self.known_threads(&sender.address, &message).await?;
            let mut converted = email_from_rfc5322(&message, &envelope, &threads, at, &mut OsRng)
                .map_err(|e| Refusal::new(554, [5, 6, 0], format!("the message cannot be converted to SMIMP: {e}")))?;
            let delivery_id = Id32::random(&mut OsRng).to_hex()[..32].to_string();
            // The message as the client wrote it, for the recipients' mail clients; the
            // payload's fields above are what SMIMP-native clients read.
            let original = original_extension(&message, &converted.email.attachments);
            let extensions = converted.email.extensions_data.get_or_insert_with(Default::default);
            extensions.insert(X_DELIVERY.to_string(), delivery_id.into());
            if let Some(original) = original {
                extensions.insert(X_ORIGINAL.to_string(), original);
            }
            let thread_id = converted.email.thread_id;
            let payload = Payload::Email(Box::new(converted.email)).to_bytes();
            rows.extend(converted.recipients.iter().map(|r| {
                sealed_row(
                    sender,
                    Recipient::Smimp(r.clone()),
                    MessageType::Email.as_str(),
                    &payload,
                    &self.policy,
                    now,
                )
            }));
            smimp_part = Some((thread_id, converted.original_message_id));
        }
        // Every row of the message in one transaction: all are queued, or none.
        self.store.enqueue(&rows, now).await.map_err(|_| {
            Refusal::temporary("the gateway could not store the message; nothing was accepted, try again")
        })?;
        if let Some((thread_id, Some(original))) = &smimp_part {
            let entry = ThreadEntry { thread_id: *thread_id, message_id: None };
            if let Err(err) = self.store.remember_thread(&sender.address, original, entry, now).await {
                tracing::warn!(error = %err, "the thread map could not be updated; replies to this message start a new thread");
            }
        }
        tracing::info!(account = %sender.address, recipients = rows.len(), relayed = relayed.len(), "message queued");
        self.queued.notify_one();
        Ok(())
    }
}

impl SubmissionBackend {
    /// The thread map entries for the Message-IDs a submission replies to, so the
    /// (pure) conversion can thread it.
    async fn known_threads(&self, account: &Address, message: &[u8]) -> Result<HashMap<String, KnownMessage>, Refusal> {
        let ids = crate::mime::inbound::referenced_ids(message);
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let entries = self
            .store
            .thread_entries(account, &ids)
            .await
            .map_err(|_| Refusal::temporary("the gateway could not read its database; try again later"))?;
        Ok(entries
            .into_iter()
            .map(|(id, entry)| (id, KnownMessage { thread_id: entry.thread_id, message_id: entry.message_id }))
            .collect())
    }
}

/// How many rows are delivered at once. Each delivery's proof of work already uses every
/// core, so running more at once only helps while deliveries wait on the network (login,
/// message key, send) or on a slow server; a few cover that without starving the solver.
/// Deliveries in the expensive proof-of-work lane ([`crate::backend::outbound::PowBudget`])
/// do not count: a server asking for costly work cannot take these slots.
const CONCURRENT_DELIVERIES: usize = 4;

/// The first pause after the database failed, doubled after each further failure.
const STORE_BACKOFF_FIRST: Duration = Duration::from_secs(2);
/// The longest pause after the database failed.
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// A row that was tried but whose outcome the database did not take: kept here, never
/// tried again by this process, and recorded once the database works again.
struct Unrecorded {
    row: OutboundRow,
    account: Arc<Account>,
    outcome: Outcome,
}

/// The pause after database failures: none while it works, then doubling.
#[derive(Default)]
struct StoreBackoff {
    failures: u32,
    until: Option<Instant>,
}

impl StoreBackoff {
    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let factor = 2u32.saturating_pow(self.failures - 1).min(1 << 10);
        let pause = STORE_BACKOFF_FIRST.saturating_mul(factor).min(STORE_BACKOFF_MAX);
        tracing::warn!(pause_s = pause.as_secs(), "the gateway's database failed; the delivery loop pauses");
        self.until = Some(Instant::now() + pause);
    }

    fn worked(&mut self) {
        *self = Self::default();
    }

    /// Whether the database may be used now.
    fn ready(&self) -> bool {
        self.until.is_none_or(|until| Instant::now() >= until)
    }

    /// How long to wait before the next pass: the rest of the pause, or `tick`.
    fn wait(&self, tick: Duration) -> Duration {
        match self.until {
            Some(until) => until.saturating_duration_since(Instant::now()).min(tick).max(Duration::from_millis(10)),
            None => tick,
        }
    }
}

/// The delivery loop's state: the tasks in flight, the rows whose outcome waits to be
/// recorded, and the pause after database failures.
struct Deliveries {
    gateway: Arc<SubmissionBackend>,
    by_address: HashMap<Address, Arc<Account>>,
    running: JoinSet<Option<Unrecorded>>,
    /// Row id of each running task, by task id, so that even a panicked task's row is freed.
    in_flight: HashMap<tokio::task::Id, i64>,
    unrecorded: HashMap<i64, Unrecorded>,
    backoff: StoreBackoff,
}

impl Deliveries {
    /// Records the outcomes the database refused before, while it keeps taking them.
    async fn record_pending(&mut self) {
        let ids: Vec<i64> = self.unrecorded.keys().copied().collect();
        for id in ids {
            let Some(pending) = self.unrecorded.get(&id) else { continue };
            let (store, policy) = (&self.gateway.store, &self.gateway.policy);
            let sender = &pending.account.sender;
            match outbound::record(store, sender, &pending.row, &pending.outcome, policy, unix_now()).await {
                Ok(()) => {
                    tracing::info!(recipient = %pending.row.recipient, "a delivery's outcome is recorded at last");
                    self.unrecorded.remove(&id);
                }
                Err(err) => {
                    tracing::error!(error = %err, "the outcome of a delivery still cannot be recorded; it is not sent again");
                    self.backoff.failed();
                    return;
                }
            }
        }
    }

    /// Starts due rows in the free slots. Rows in flight or with an unrecorded outcome
    /// are still due in the database, so they are asked for too and then left out.
    async fn start_due(&mut self) {
        let cheap_running = self.running.len().saturating_sub(self.gateway.policy.pow.in_lane());
        let free = CONCURRENT_DELIVERIES.saturating_sub(cheap_running);
        if free == 0 {
            return;
        }
        let limit = u32::try_from(free + self.in_flight.len() + self.unrecorded.len()).unwrap_or(u32::MAX);
        let rows = match self.gateway.store.due_outbound(unix_now(), limit).await {
            Ok(rows) => rows,
            Err(err) => {
                tracing::error!(error = %err, "the outbound queue could not be read");
                self.backoff.failed();
                return;
            }
        };
        let busy: HashSet<i64> = self.in_flight.values().chain(self.unrecorded.keys()).copied().collect();
        for row in rows.into_iter().filter(|row| !busy.contains(&row.id)).take(free) {
            let Some(account) = self.by_address.get(&row.account).cloned() else { continue };
            let (gateway, id) = (self.gateway.clone(), row.id);
            let task = self.running.spawn(async move {
                let (g, sender, now) = (&gateway, &account.sender, unix_now());
                let outcome =
                    outbound::try_delivery(&g.discovery, &g.relays, &g.store, sender, &row, &g.policy, now).await;
                match outbound::record(&g.store, sender, &row, &outcome, &g.policy, now).await {
                    Ok(()) => None,
                    Err(err) => {
                        tracing::error!(error = %err, recipient = %row.recipient, "the outcome of a delivery cannot be \
                            recorded; it is kept in memory and the message is not sent again");
                        Some(Unrecorded { row, account, outcome })
                    }
                }
            });
            self.in_flight.insert(task.id(), id);
        }
    }

    /// Frees a finished task's slot, keeping its outcome if the database refused it.
    fn finished(&mut self, done: Result<(tokio::task::Id, Option<Unrecorded>), tokio::task::JoinError>) {
        let task = match done {
            Ok((task, None)) => task,
            Ok((task, Some(pending))) => {
                self.backoff.failed();
                self.unrecorded.insert(pending.row.id, pending);
                task
            }
            Err(err) => {
                tracing::error!(error = %err, "a delivery stopped unexpectedly; it is retried");
                err.id()
            }
        };
        self.in_flight.remove(&task);
    }
}

/// Delivers due rows until `shutdown`: after each queued message, after each finished
/// delivery, and at least every `tick` for retries. Up to [`CONCURRENT_DELIVERIES`] rows
/// are in flight at once; a row being delivered stays `queued` in the database until its
/// outcome is recorded, so the ids in flight are kept aside and never picked again by a
/// later pass (which would send the message twice). So are rows whose outcome the
/// database refused (a full disk after the recipient's server took the message): they
/// are never tried again by this process, and their outcome is recorded when the
/// database works again. After a database failure the loop leaves the database alone for
/// a pause that doubles while the failures go on. At shutdown no new delivery starts
/// and the ones in flight finish, since one cut short after the server took the message
/// would be sent again on the next start.
pub async fn delivery_loop(gateway: Arc<SubmissionBackend>, tick: Duration, shutdown: crate::listen::Shutdown) {
    let by_address: HashMap<Address, Arc<Account>> =
        gateway.accounts.values().map(|a| (a.sender.address.clone(), a.clone())).collect();
    let mut loop_state = Deliveries {
        gateway,
        by_address,
        running: JoinSet::new(),
        in_flight: HashMap::new(),
        unrecorded: HashMap::new(),
        backoff: StoreBackoff::default(),
    };
    loop {
        if loop_state.backoff.ready() {
            let failures = loop_state.backoff.failures;
            loop_state.record_pending().await;
            if loop_state.backoff.ready() {
                loop_state.start_due().await;
            }
            if loop_state.backoff.failures == failures && failures > 0 && loop_state.unrecorded.is_empty() {
                loop_state.backoff.worked();
            }
        }
        let wait = loop_state.backoff.wait(tick);
        tokio::select! {
            Some(done) = loop_state.running.join_next_with_id() => loop_state.finished(done),
            () = loop_state.gateway.queued.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = shutdown.requested() => {
                while loop_state.running.join_next().await.is_some() {}
                return;
            }
        }
    }
}
