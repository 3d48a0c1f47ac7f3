//! The delivery history `smimp-gateway status` shows: the latest outbound rows with
//! their outcome. Only routing data and the outcome are read — never the sealed
//! payload — so the status output cannot leak content even by mistake.

use sqlx::Row;

use super::{parse, GatewayStore, StoreError};
use crate::smimp::address::Address;

/// One delivery as `status` shows it: who it went to and how it went, not what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub account: Address,
    pub recipient: Address,
    /// `queued`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// When it was accepted into the queue (Unix seconds).
    pub created_at: i64,
    /// When it was sent or failed for good; `None` while it waits.
    pub done_at: Option<i64>,
}

impl GatewayStore {
    /// The latest `limit` deliveries, newest first.
    pub async fn recent_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, recipient, state, attempts, last_error, created_at, done_at FROM outbound \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRecord {
                    account: parse(&r.try_get::<String, _>("account")?, "account")?,
                    recipient: parse(&r.try_get::<String, _>("recipient")?, "recipient")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    done_at: r.try_get("done_at")?,
                })
            })
            .collect()
    }
}
