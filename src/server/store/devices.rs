//! The `x-devices` tables (docs/protocol.md §12): challenges, requests with their
//! sealed approvals, and sealed key shares. Public data and ciphertext only.

use super::*;
use crate::smimp::device::{DevicePublic, Sealed};
use crate::smimp::wire::{DenyReason, DeviceShare, RequestState};

/// A device request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRequestRow {
    pub request_id: Id32,
    pub address: Address,
    pub name: String,
    pub device: DevicePublic,
    pub nonce: Id32,
    pub pin_proof: Option<Hash>,
    pub state: RequestState,
    pub approval: Option<Sealed>,
    pub reason: Option<DenyReason>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The most live challenges one account keeps; older ones go first.
const MAX_CHALLENGES: i64 = 16;

/// The columns of a request, in `SELECT` order (a macro, so queries stay `&'static str`).
macro_rules! request_columns {
    () => {
        "request_id, address, name, sign_key, box_key, nonce, pin_proof, state, approval, reason, created_at, expires_at"
    };
}

fn request_from_row(row: &impl Columns) -> Result<DeviceRequestRow, StoreError> {
    let state = row.text("state")?;
    let approval = match row.maybe_text("approval")? {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| corrupt(format!("approval: {e}")))?),
        None => None,
    };
    Ok(DeviceRequestRow {
        request_id: parse(&row.text("request_id")?, "request id")?,
        address: parse(&row.text("address")?, "address")?,
        name: row.text("name")?,
        device: DevicePublic {
            sign_key: parse(&row.text("sign_key")?, "device signing key")?,
            box_key: parse(&row.text("box_key")?, "device box key")?,
        },
        nonce: parse(&row.text("nonce")?, "request nonce")?,
        pin_proof: row.maybe_text("pin_proof")?.map(|text| parse(&text, "PIN proof")).transpose()?,
        state: RequestState::parse(&state).ok_or_else(|| corrupt(format!("request state {state:?}")))?,
        approval,
        reason: match row.maybe_text("reason")? {
            Some(text) => Some(DenyReason::parse(&text).ok_or_else(|| corrupt(format!("deny reason {text:?}")))?),
            None => None,
        },
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
    })
}

impl ServerStore {
    /// Records a challenge for `address` and drops its expired ones and any past the
    /// newest [`MAX_CHALLENGES`].
    pub async fn add_device_challenge(
        &self,
        address: &Address,
        nonce: &Id32,
        zero_bits: u32,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query("DELETE FROM device_challenges WHERE address = ? AND expires_at <= ?")
                .bind(address.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sql::query("INSERT INTO device_challenges (nonce, address, zero_bits, expires_at) VALUES (?, ?, ?, ?)")
                .bind(nonce.to_hex())
                .bind(address.as_str())
                .bind(i64::from(zero_bits))
                .bind(expires_at)
                .execute(&mut *tx)
                .await?;
            sql::query(
                "DELETE FROM device_challenges WHERE address = ? AND nonce NOT IN (SELECT nonce FROM \
                 device_challenges WHERE address = ? ORDER BY expires_at DESC, nonce LIMIT ?)",
            )
            .bind(address.as_str())
            .bind(address.as_str())
            .bind(MAX_CHALLENGES)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Uses up a live challenge of `address`: its difficulty, or `None` when it is
    /// unknown, for another account, used or expired.
    pub async fn take_device_challenge(
        &self,
        address: &Address,
        nonce: &Id32,
        now: i64,
    ) -> Result<Option<u32>, StoreError> {
        with_pool!(self, pool, sql, {
            let row = sql::query(
                "DELETE FROM device_challenges WHERE nonce = ? AND address = ? AND expires_at > ? RETURNING zero_bits",
            )
            .bind(nonce.to_hex())
            .bind(address.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|r| {
                let bits = r.int("zero_bits")?;
                u32::try_from(bits).map_err(|_| corrupt(format!("zero bits {bits}")))
            })
            .transpose()
        })
    }

    /// Stores a new request unless its account has `max_pending` live ones already
    /// (`Conflict`). Requests past their expiry are marked expired first.
    pub async fn add_device_request(
        &self,
        request: &DeviceRequestRow,
        max_pending: usize,
        now: i64,
    ) -> Result<Write, StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            sql::query("UPDATE device_requests SET state = 'expired' WHERE address = ? AND state = 'pending' AND expires_at <= ?")
                .bind(request.address.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let row =
                sql::query("SELECT COUNT(*) AS pending FROM device_requests WHERE address = ? AND state = 'pending'")
                    .bind(request.address.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
            if usize::try_from(row.int("pending")?).unwrap_or(usize::MAX) >= max_pending {
                return Ok(Write::Conflict);
            }
            sql::query(
                "INSERT INTO device_requests (request_id, address, name, sign_key, box_key, nonce, pin_proof, state, \
                 approval, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL, ?, ?)",
            )
            .bind(request.request_id.to_hex())
            .bind(request.address.as_str())
            .bind(&request.name)
            .bind(request.device.sign_key.to_hex())
            .bind(request.device.box_key.to_hex())
            .bind(request.nonce.to_hex())
            .bind(request.pin_proof.map(|proof| proof.to_hex()))
            .bind(request.created_at)
            .bind(request.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Write::Done)
        })
    }

    /// One request, its state brought up to date (a pending request past its expiry
    /// reads as expired).
    pub async fn device_request(&self, request_id: &Id32, now: i64) -> Result<Option<DeviceRequestRow>, StoreError> {
        let row = with_pool!(self, pool, sql, {
            let row = sql::query(concat!("SELECT ", request_columns!(), " FROM device_requests WHERE request_id = ?"))
                .bind(request_id.to_hex())
                .fetch_optional(pool)
                .await?;
            row.map(|r| request_from_row(&r)).transpose()?
        });
        Ok(row.map(|mut request| {
            if request.state == RequestState::Pending && request.expires_at <= now {
                request.state = RequestState::Expired;
            }
            request
        }))
    }

    /// The live pending requests of an account, oldest first.
    pub async fn pending_device_requests(
        &self,
        address: &Address,
        now: i64,
    ) -> Result<Vec<DeviceRequestRow>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query(concat!(
                "SELECT ",
                request_columns!(),
                " FROM device_requests WHERE address = ? AND state = 'pending' AND expires_at > ? \
                 ORDER BY created_at, request_id"
            ))
            .bind(address.as_str())
            .bind(now)
            .fetch_all(pool)
            .await?;
            rows.iter().map(request_from_row).collect()
        })
    }

    /// Answers a live pending request of `address` (approved with its sealed
    /// approval, or denied); `NotFound` when there is none to answer.
    pub async fn decide_device_request(
        &self,
        address: &Address,
        request_id: &Id32,
        state: RequestState,
        approval: Option<&Sealed>,
        reason: Option<DenyReason>,
        now: i64,
    ) -> Result<Write, StoreError> {
        let approval = approval.map(|sealed| serde_json::to_string(sealed).expect("a sealed approval serialises"));
        with_pool!(self, pool, sql, {
            let updated = sql::query(
                "UPDATE device_requests SET state = ?, approval = ?, reason = ? WHERE request_id = ? AND address = ? \
                 AND state = 'pending' AND expires_at > ?",
            )
            .bind(state.as_str())
            .bind(approval)
            .bind(reason.map(DenyReason::as_str))
            .bind(request_id.to_hex())
            .bind(address.as_str())
            .bind(now)
            .execute(pool)
            .await?;
            Ok(if updated.rows_affected() == 1 { Write::Done } else { Write::NotFound })
        })
    }

    /// Stores shares for devices of `address`; a share id already stored is kept as it was.
    pub async fn add_device_shares(
        &self,
        address: &Address,
        shares: &[DeviceShare],
        now: i64,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            let mut tx = sql::begin(pool).await?;
            for share in shares {
                sql::query(
                    "INSERT INTO device_shares (share_id, address, box_key, share, created_at) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(share.share_id.to_hex())
                .bind(address.as_str())
                .bind(share.recipient.box_key.to_hex())
                .bind(serde_json::to_string(share).expect("a share serialises"))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records that the device with `box_key` checked in now.
    pub async fn touch_device(&self, address: &Address, box_key: &BoxPublicKey, now: i64) -> Result<(), StoreError> {
        with_pool!(self, pool, sql, {
            sql::query(
                "INSERT INTO device_seen (address, box_key, seen_at) VALUES (?, ?, ?) \
                 ON CONFLICT (address, box_key) DO UPDATE SET seen_at = excluded.seen_at",
            )
            .bind(address.as_str())
            .bind(box_key.to_hex())
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// When each device of `address` last checked in.
    pub async fn devices_seen(&self, address: &Address) -> Result<Vec<(BoxPublicKey, i64)>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query("SELECT box_key, seen_at FROM device_seen WHERE address = ? ORDER BY box_key")
                .bind(address.as_str())
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| Ok((parse(&r.text("box_key")?, "device box key")?, r.int("seen_at")?))).collect()
        })
    }

    /// The shares left for one device of `address`, oldest first.
    pub async fn device_shares(
        &self,
        address: &Address,
        box_key: &BoxPublicKey,
    ) -> Result<Vec<DeviceShare>, StoreError> {
        with_pool!(self, pool, sql, {
            let rows = sql::query(
                "SELECT share FROM device_shares WHERE address = ? AND box_key = ? ORDER BY created_at, share_id",
            )
            .bind(address.as_str())
            .bind(box_key.to_hex())
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| serde_json::from_str(&r.text("share")?).map_err(|e| corrupt(format!("device share: {e}"))))
                .collect()
        })
    }
}
