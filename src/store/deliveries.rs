//! The delivery history `smimp-gateway status` shows: the latest outbound rows with
//! their outcome. Only routing data and the outcome are read — never the sealed
//! payload — so the status output cannot leak content even by mistake.

use super::rows::delivery_record;
use super::{GatewayStore, Recipient, StoreError};
use crate::smimp::address::Address;

/// One delivery as `status` shows it: who it went to and how it went, not what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub account: Address,
    pub recipient: Recipient,
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
            "SELECT account, recipient, route, envelope_from, state, attempts, last_error, created_at, done_at FROM outbound \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_record).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewOutbound;

    #[tokio::test]
    async fn the_latest_deliveries_come_newest_first_with_their_outcome() {
        let dir = std::env::temp_dir().join(format!("smimp-deliveries-{}-{}", std::process::id(), line!()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = GatewayStore::open(&dir.join("gateway.sqlite")).await.unwrap();
        let alice: Address = "alice#example.org".parse().unwrap();
        let recipients: Vec<Address> =
            ["bob#example.net", "carol#example.net", "dave#example.net"].iter().map(|a| a.parse().unwrap()).collect();
        let mut ids = Vec::new();
        for (at, recipient) in recipients.iter().enumerate() {
            let row = NewOutbound {
                account: &alice,
                recipient: Recipient::Smimp(recipient.clone()),
                message_type: "email",
                nonce: "00".into(),
                sealed_payload: b"sealed secret words".to_vec(),
                give_up_at: 1000,
            };
            ids.extend(store.enqueue(&[row], 100 + at as i64).await.unwrap());
        }
        store.outbound_sent(ids[0], Some("ab"), 110).await.unwrap();
        store.outbound_attempt_failed(ids[1], "no such user", None, 120).await.unwrap();
        store.outbound_attempt_failed(ids[2], "unreachable", Some(500), 130).await.unwrap();

        let recent = store.recent_deliveries(10).await.unwrap();
        let seen: Vec<String> = recent
            .iter()
            .map(|d| format!("{} {} {} {:?} {:?}", d.recipient, d.state, d.attempts, d.last_error, d.done_at))
            .collect();
        assert_eq!(
            seen,
            vec![
                "dave#example.net queued 1 Some(\"unreachable\") None",
                "carol#example.net failed 1 Some(\"no such user\") Some(120)",
                "bob#example.net sent 1 None Some(110)",
            ]
        );
        assert!(recent.iter().all(|d| d.account == alice && d.created_at >= 100));
        assert_eq!(store.recent_deliveries(1).await.unwrap().len(), 1, "the limit holds");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
