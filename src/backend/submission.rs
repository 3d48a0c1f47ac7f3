//! What SMTP submission does with a message (design §2 "Outbound"): a login checked
//! against the account's keystore, each recipient checked at RCPT TO (an SMIMP form,
//! an SMIMP server, a profile, trust), and an accepted message converted to the SMIMP
//! `email` payload and queued durably — one sealed row per recipient — before the
//! client hears 250. Nothing is ever sent in the clear — except to a domain the
//! configuration explicitly gives a legacy relay ([`crate::backend::relay`]): such a
//! recipient is accepted without asking SMIMP, told so in the 250 reply, and queued
//! with the submitted message as it is (sealed at rest like every queue row).

use std::collections::HashMap;
use std::sync::Arc;

use rand_core::OsRng;
use tokio::sync::Notify;

use crate::backend::account::Account;
use crate::backend::outbound::{sealed_row, RetryPolicy, RELAY_MESSAGE_TYPE};
use crate::backend::relay::Relays;
use crate::backend::trust::{trusted_key, KeyTrustError};
use crate::client::trust::TrustError;
use crate::client::{ClientError, ServerClient};
use crate::clock::unix_now;
use crate::discovery::{Discovery, DiscoveryError};
use crate::mime::inbound::{email_from_rfc5322, KnownMessage};
use crate::mime::X_DELIVERY;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::ErrorCode;
use crate::smtp::{RecipientOk, Refusal, Submission};
use crate::store::{GatewayStore, Recipient, ThreadEntry};

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

impl Submission for SubmissionBackend {
    type Account = Arc<Account>;

    async fn authenticate(&self, username: &str, password: &str) -> Option<Arc<Account>> {
        let account = self.accounts.get(&username.to_ascii_lowercase())?.clone();
        account.check_password(password).await.then_some(account)
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
        let (relayed, smimp): (Vec<&String>, Vec<&String>) =
            recipients.iter().partition(|r| self.relays.for_recipient(r).is_some());
        let envelope: Vec<Address> = smimp.iter().filter_map(|r| Address::from_email(r).ok()).collect();
        let now = unix_now();
        let sender = &account.sender;
        // Relayed recipients get the message as submitted, one sealed row each.
        let mut rows: Vec<_> = relayed
            .iter()
            .map(|to| {
                let recipient = Recipient::Relay { to: to.to_string(), from: from.to_string() };
                sealed_row(sender, recipient, RELAY_MESSAGE_TYPE, &message, &self.policy, now)
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
            converted
                .email
                .extensions_data
                .get_or_insert_with(Default::default)
                .insert(X_DELIVERY.to_string(), delivery_id.into());
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
const CONCURRENT_DELIVERIES: usize = 4;

/// Delivers due rows until `shutdown`: after each queued message, after each finished
/// delivery, and at least every `tick` for retries. Up to [`CONCURRENT_DELIVERIES`] rows
/// are in flight at once; a row being delivered stays `queued` in the database until its
/// outcome is recorded, so the ids in flight are kept aside and never picked again by a
/// later pass (which would send the message twice). At shutdown no new delivery starts
/// and the ones in flight finish, since one cut short after the server took the message
/// would be sent again on the next start.
pub async fn delivery_loop(
    gateway: Arc<SubmissionBackend>,
    tick: std::time::Duration,
    shutdown: crate::listen::Shutdown,
) {
    let by_address: HashMap<Address, Arc<Account>> =
        gateway.accounts.values().map(|a| (a.sender.address.clone(), a.clone())).collect();
    let mut running = tokio::task::JoinSet::new();
    // Row id of each running task, by task id, so that even a panicked task's row is freed.
    let mut in_flight: HashMap<tokio::task::Id, i64> = HashMap::new();
    loop {
        let free = CONCURRENT_DELIVERIES.saturating_sub(running.len());
        if free > 0 {
            // Rows in flight are still due, so ask for enough to fill every free slot.
            let limit = u32::try_from(free + in_flight.len()).unwrap_or(u32::MAX);
            match gateway.store.due_outbound(unix_now(), limit).await {
                Ok(rows) => {
                    let busy: std::collections::HashSet<i64> = in_flight.values().copied().collect();
                    for row in rows.into_iter().filter(|row| !busy.contains(&row.id)).take(free) {
                        let Some(account) = by_address.get(&row.account).cloned() else { continue };
                        let (gateway, id) = (gateway.clone(), row.id);
                        let task = running.spawn(async move {
                            if let Err(err) = crate::backend::outbound::attempt(
                                &gateway.discovery,
                                &gateway.relays,
                                &gateway.store,
                                &account.sender,
                                &row,
                                &gateway.policy,
                                unix_now(),
                            )
                            .await
                            {
                                tracing::error!(error = %err, "the outbound queue could not be updated");
                            }
                        });
                        in_flight.insert(task.id(), id);
                    }
                }
                Err(err) => tracing::error!(error = %err, "the outbound queue could not be read"),
            }
        }
        tokio::select! {
            Some(done) = running.join_next_with_id() => {
                let task = match done {
                    Ok((task, ())) => task,
                    Err(err) => {
                        tracing::error!(error = %err, "a delivery stopped unexpectedly; it is retried");
                        err.id()
                    }
                };
                in_flight.remove(&task);
            }
            () = gateway.queued.notified() => {}
            () = tokio::time::sleep(tick) => {}
            () = shutdown.requested() => {
                while running.join_next().await.is_some() {}
                return;
            }
        }
    }
}
