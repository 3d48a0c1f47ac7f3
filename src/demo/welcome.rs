//! The welcome message: written as a mail client would, converted and queued as SMTP
//! submission does (before the gateway starts, so its delivery worker takes it on its
//! first pass), then awaited until the recipient's INBOX shows it verified.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand_core::OsRng;

use super::settings::WelcomeSettings;
use super::state::State;
use super::{DemoError, WELCOME_SUBJECT, WELCOME_TIMEOUT};
use crate::backend::account::Account;
use crate::backend::mailbox::Mailboxes;
use crate::backend::outbound::{enqueue, RetryPolicy};
use crate::clock::unix_now;
use crate::gateway::context::Context;
use crate::mime::inbound::{email_from_rfc5322, NoThreads};
use crate::smimp::message::{MessageType, Payload};
use crate::smimp::timestamp::Timestamp;
use crate::store::{GatewayStore, MessageRow};

/// The sender and recipient of the welcome message, and the mailbox view to find it in.
pub(super) struct Welcome<'a> {
    pub(super) sender: Arc<Account>,
    pub(super) recipient: Arc<Account>,
    pub(super) mailboxes: &'a Mailboxes,
}

impl Welcome<'_> {
    /// Queues the message unless an earlier run's copy is in the INBOX or still queued;
    /// the queue row this run waits for, if any.
    pub(super) async fn queue_if_needed(
        &self,
        ctx: &Context,
        state: &mut State,
        dir: &Path,
    ) -> Result<Option<i64>, DemoError> {
        let messages = self.inbox().await?;
        let arrived =
            state.welcome_message_id.as_ref().is_some_and(|id| messages.iter().any(|m| m.message_id.to_hex() == *id));
        if arrived {
            return Ok(None);
        }
        let waiting = match state.welcome_queue_id {
            Some(id) => ctx.store.outbound(id).await?.filter(|row| row.state == "queued").map(|row| row.id),
            None => None,
        };
        let id = match waiting {
            Some(id) => id,
            None => queue_welcome(ctx, &self.sender, &self.recipient).await?,
        };
        state.welcome_queue_id = Some(id);
        state.welcome_message_id = None;
        state.save(dir)?;
        Ok(Some(id))
    }

    /// Waits for the delivery of `queued` (when this run sent it) and for the message
    /// in the recipient's INBOX, and checks the gateway's verdict on it.
    pub(super) async fn confirm(
        &self,
        store: &GatewayStore,
        queued: Option<i64>,
        state: &mut State,
        dir: &Path,
    ) -> Result<WelcomeSettings, DemoError> {
        if let Some(id) = queued {
            let message_id = await_delivery(store, id).await?;
            state.welcome_message_id = Some(message_id);
            state.welcome_queue_id = None;
            state.save(dir)?;
        }
        let message_id = state.welcome_message_id.clone().unwrap_or_default();
        let uid = await_in_inbox(self.mailboxes, &self.recipient, &message_id).await?;
        let bytes = self
            .mailboxes
            .message(&self.recipient, "INBOX", uid.into())
            .await
            .map_err(|source| DemoError::Mailbox { account: self.recipient.sender.address.to_email(), source })?;
        let parsed = mail_parser::MessageParser::new()
            .parse(&bytes[..])
            .ok_or_else(|| DemoError::Welcome("the rendered message does not parse".into()))?;
        // Unfolded: the header may be folded over several lines.
        let verified =
            parsed.header_raw("X-SMIMP-Verified").unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
        if !verified.starts_with("pass") {
            return Err(DemoError::Welcome(format!("it failed verification: {verified:?}")));
        }
        Ok(WelcomeSettings {
            from: self.sender.sender.address.to_email(),
            to: self.recipient.sender.address.to_email(),
            subject: parsed.subject().unwrap_or_default().to_string(),
            uid,
            verified,
            sent_by_this_run: queued.is_some(),
        })
    }

    async fn inbox(&self) -> Result<Vec<MessageRow>, DemoError> {
        let (_, messages) = self
            .mailboxes
            .snapshot(&self.recipient, "INBOX", true)
            .await
            .map_err(|source| DemoError::Mailbox { account: self.recipient.sender.address.to_email(), source })?;
        Ok(messages)
    }
}

/// Converts the welcome message from RFC 5322 as SMTP submission does, and queues it.
async fn queue_welcome(ctx: &Context, from: &Account, to: &Account) -> Result<i64, DemoError> {
    let (sender, recipient) = (from.sender.address.to_email(), to.sender.address.to_email());
    let body = format!(
        "Hello {recipient},\n\n\
         this message left {sender}'s gateway as ordinary mail and travelled end-to-end\n\
         encrypted over SMIMP: the gateway checked your signed key against the key it pinned\n\
         for you, worked out the proof of work, sealed and signed it; your gateway fetched it,\n\
         checked the signature against {sender}'s verified key history, and opened it.\n\
         The X-SMIMP-Verified header says what was checked.\n\n\
         Reply to it from your mail client: the reply takes the same path.\n"
    );
    let message = lettre::Message::builder()
        .from(sender.parse().map_err(|e| DemoError::Welcome(format!("{sender}: {e}")))?)
        .to(recipient.parse().map_err(|e| DemoError::Welcome(format!("{recipient}: {e}")))?)
        .subject(WELCOME_SUBJECT)
        .body(body)
        .map_err(|e| DemoError::Welcome(format!("it cannot be written: {e}")))?;
    let now = unix_now();
    let at = Timestamp::from_unix(now).ok_or_else(|| DemoError::Welcome("the clock is out of range".into()))?;
    let converted =
        email_from_rfc5322(&message.formatted(), std::slice::from_ref(&to.sender.address), &NoThreads, at, &mut OsRng)
            .map_err(|e| DemoError::Welcome(format!("it cannot be converted to SMIMP: {e}")))?;
    let payload = Payload::Email(Box::new(converted.email)).to_bytes();
    let ids = enqueue(
        &ctx.store,
        &from.sender,
        &MessageType::Email,
        &payload,
        &converted.recipients,
        &RetryPolicy::default(),
        now,
    )
    .await?;
    ids.first().copied().ok_or_else(|| DemoError::Welcome("it had no recipient".into()))
}

/// Waits (bounded) until the delivery worker has sent queue row `id`; its SMIMP message id.
async fn await_delivery(store: &GatewayStore, id: i64) -> Result<String, DemoError> {
    let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
    loop {
        let row = store.outbound(id).await?.ok_or_else(|| DemoError::Welcome("its queue row vanished".into()))?;
        match (row.state.as_str(), row.message_id) {
            ("sent", Some(message_id)) => return Ok(message_id),
            ("failed", _) => {
                return Err(DemoError::Welcome(format!(
                    "its delivery failed: {}",
                    row.last_error.unwrap_or_else(|| "no reason was recorded".into())
                )))
            }
            _ if tokio::time::Instant::now() >= deadline => {
                return Err(DemoError::Welcome(format!(
                    "it was not delivered within {} s (attempts: {}, last error: {})",
                    WELCOME_TIMEOUT.as_secs(),
                    row.attempts,
                    row.last_error.unwrap_or_else(|| "none".into())
                )))
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Syncs the recipient's INBOX (bounded) until the message shows; its UID.
async fn await_in_inbox(mailboxes: &Mailboxes, account: &Account, message_id: &str) -> Result<u32, DemoError> {
    let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
    loop {
        let (_, messages) = mailboxes
            .snapshot(account, "INBOX", true)
            .await
            .map_err(|source| DemoError::Mailbox { account: account.sender.address.to_email(), source })?;
        if let Some(found) = messages.iter().find(|m| m.message_id.to_hex() == message_id) {
            return Ok(found.uid.get());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DemoError::Welcome(format!(
                "it was sent but did not show in {}'s INBOX within {} s",
                account.sender.address.to_email(),
                WELCOME_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
