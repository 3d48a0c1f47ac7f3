//! `smimp-gateway status`: what an operator checks first — the accounts this gateway
//! serves, how many deliveries wait, how the latest ones went, and the latest trust
//! events. It reads the gateway's database only (no passphrase needed, so it can run
//! beside `run`), and shows routing data and outcomes, never message content.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::gateway::config::{ConfigError, GatewayConfig};
use crate::smimp::timestamp::Timestamp;
use crate::store::{AccountRecord, DeliveryRecord, GatewayStore, ProgressRecord, StoreError, TrustEvent};

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the gateway's database {database}: {source}")]
    Store { database: PathBuf, source: StoreError },
    #[error("there is no gateway database at {database} ([gateway] data_dir in {config}): set an account up with `smimp-gateway init --config {config} --address ADDRESS` first")]
    NoDatabase { database: PathBuf, config: PathBuf },
}

/// Everything `status` prints.
#[derive(Debug, Clone)]
pub struct Status {
    pub database: PathBuf,
    pub accounts: Vec<AccountRecord>,
    pub queue_depth: i64,
    /// Long work the running gateway is doing (PoW at high difficulty, a large sync).
    pub progress: Vec<ProgressRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    pub trust_events: Vec<TrustEvent>,
}

/// Reads the status of the gateway configured in `config_path`, with at most `recent`
/// deliveries and trust events.
pub async fn read(config_path: &Path, recent: u32) -> Result<Status, StatusError> {
    let config = GatewayConfig::load(config_path)?;
    let database = config.database();
    // Opening would create an empty database; a missing one means a wrong path or no `init` yet.
    if !database.exists() {
        return Err(StatusError::NoDatabase { database, config: config_path.into() });
    }
    let failed = |source| StatusError::Store { database: database.clone(), source };
    let store = GatewayStore::open(&database).await.map_err(failed)?;
    let accounts = store.accounts().await.map_err(failed)?;
    let queue_depth = store.queue_depth().await.map_err(failed)?;
    let progress = store.progress().await.map_err(failed)?;
    let deliveries = store.recent_deliveries(recent).await.map_err(failed)?;
    let trust_events = store.trust_events(recent).await.map_err(failed)?;
    Ok(Status { database, accounts, queue_depth, progress, deliveries, trust_events })
}

/// A Unix time as the spec's UTC form, or the number itself when out of range.
fn when(seconds: i64) -> String {
    Timestamp::from_unix(seconds).map(|t| format!("{t} UTC")).unwrap_or_else(|| seconds.to_string())
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "database: {}", self.database.display())?;
        writeln!(f, "accounts ({}):", self.accounts.len())?;
        if self.accounts.is_empty() {
            writeln!(f, "  none: set one up with `smimp-gateway init`")?;
        }
        for account in &self.accounts {
            writeln!(
                f,
                "  {}  login {}  since {}  keystore {}",
                account.address.to_email(),
                account.username,
                when(account.created_at),
                account.keystore_path
            )?;
        }
        writeln!(f, "outbound queue: {} waiting", self.queue_depth)?;
        writeln!(f, "work in progress ({}):", self.progress.len())?;
        for work in &self.progress {
            let percent = if work.total > 0 { work.done.saturating_mul(100) / work.total } else { 0 };
            writeln!(
                f,
                "  {}  {}  {} of {} ({percent}%)  since {}  updated {}",
                work.account.to_email(),
                work.task,
                work.done,
                work.total,
                when(work.started_at),
                when(work.updated_at)
            )?;
        }
        writeln!(f, "recent deliveries ({}, newest first):", self.deliveries.len())?;
        for delivery in &self.deliveries {
            let done = delivery.done_at.map(when).unwrap_or_else(|| "not yet".into());
            let plural = if delivery.attempts == 1 { "" } else { "s" };
            write!(
                f,
                "  {} → {}{}  {}  {} attempt{plural}  queued {}  done {}",
                delivery.account.to_email(),
                delivery.recipient.email(),
                if delivery.recipient.smimp().is_some() { "" } else { " (legacy relay, plain email)" },
                delivery.state,
                delivery.attempts,
                when(delivery.created_at),
                done
            )?;
            match &delivery.last_error {
                Some(error) => writeln!(f, "  last error: {error}")?,
                None => writeln!(f)?,
            }
        }
        writeln!(f, "recent trust events ({}, newest first):", self.trust_events.len())?;
        for event in &self.trust_events {
            writeln!(f, "  {}  {}  {}  {}", when(event.at), event.address.to_email(), event.kind, event.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::address::Address;
    use crate::store::Recipient;

    #[test]
    fn the_report_names_accounts_deliveries_and_events_without_content() {
        let alice: Address = "alice#example.org".parse().unwrap();
        let bob: Address = "bob#example.net".parse().unwrap();
        let status = Status {
            database: "data/gateway.sqlite".into(),
            accounts: vec![AccountRecord {
                address: alice.clone(),
                keystore_path: "data/keystores/alice@example.org.keystore".into(),
                username: "alice@example.org".into(),
                created_at: 0,
            }],
            queue_depth: 1,
            progress: vec![ProgressRecord {
                account: alice.clone(),
                task: "sync of INBOX".into(),
                done: 500,
                total: 2000,
                started_at: 0,
                updated_at: 30,
            }],
            deliveries: vec![
                DeliveryRecord {
                    account: alice.clone(),
                    recipient: Recipient::Smimp(bob.clone()),
                    state: "queued".into(),
                    attempts: 2,
                    last_error: Some("the server of example.net cannot be reached".into()),
                    created_at: 60,
                    done_at: None,
                },
                DeliveryRecord {
                    account: alice.clone(),
                    recipient: Recipient::Smimp(bob.clone()),
                    state: "sent".into(),
                    attempts: 1,
                    last_error: None,
                    created_at: 0,
                    done_at: Some(1),
                },
                DeliveryRecord {
                    account: alice,
                    recipient: Recipient::Relay { to: "first.last@legacy.example".into(), from: String::new() },
                    state: "sent".into(),
                    attempts: 1,
                    last_error: None,
                    created_at: 0,
                    done_at: Some(1),
                },
            ],
            trust_events: vec![TrustEvent {
                address: bob,
                at: 0,
                kind: "first_contact".into(),
                detail: "pinned".into(),
            }],
        };
        let text = status.to_string();
        assert!(
            text.contains("accounts (1):\n  alice@example.org  login alice@example.org  since 1970-01-01 00:00:00 UTC"),
            "{text}"
        );
        assert!(text.contains("outbound queue: 1 waiting"), "{text}");
        assert!(
            text.contains("work in progress (1):\n  alice@example.org  sync of INBOX  500 of 2000 (25%)  since 1970-01-01 00:00:00 UTC  updated 1970-01-01 00:00:30 UTC\n"),
            "{text}"
        );
        assert!(
            text.contains("alice@example.org → first.last@legacy.example (legacy relay, plain email)  sent"),
            "a relayed delivery says so: {text}"
        );
        assert!(text.contains("alice@example.org → bob@example.net  queued  2 attempts  queued 1970-01-01 00:01:00 UTC  done not yet  last error: the server of example.net cannot be reached"), "{text}");
        assert!(
            text.contains(
                "bob@example.net  sent  1 attempt  queued 1970-01-01 00:00:00 UTC  done 1970-01-01 00:00:01 UTC\n"
            ),
            "{text}"
        );
        assert!(text.contains("1970-01-01 00:00:00 UTC  bob@example.net  first_contact  pinned"), "{text}");
    }
}
