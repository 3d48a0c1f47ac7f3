//! Typed calls of the `x-devices` extension (docs/protocol.md §12): the new device's
//! unauthenticated challenge, request and status; the enrolled devices' pending list,
//! answers and key shares.

use crate::client::error::ClientError;
use crate::client::server::ServerClient;
use crate::client::session::SessionClient;
use crate::smimp::address::Address;
use crate::smimp::crypto::BoxPublicKey;
use crate::smimp::device::Sealed;
use crate::smimp::encoding::Id32;
use crate::smimp::wire::{
    Api, Decided, Denial, DenyReason, DeviceChallenge, DeviceRequest, DeviceRequested, DeviceSeen, DeviceShare,
    DeviceShares, DevicesSeen, PendingRequest, PendingRequests, RequestStatus, Route, Updated,
};

impl ServerClient {
    /// A single-use challenge for a request to join `address`.
    pub async fn device_challenge(&self, address: &Address) -> Result<DeviceChallenge, ClientError> {
        self.require(Api::XDevices)?;
        self.call(&Route::DeviceChallenge { address: address.clone() }, None, None::<&()>).await
    }

    /// Posts a request to join `address`.
    pub async fn device_request(
        &self,
        address: &Address,
        request: &DeviceRequest,
    ) -> Result<DeviceRequested, ClientError> {
        self.call(&Route::DeviceRequest { address: address.clone() }, None, Some(request)).await
    }

    /// The shares left for the device of `address` with `box_key`.
    pub async fn device_shares(
        &self,
        address: &Address,
        box_key: BoxPublicKey,
    ) -> Result<Vec<DeviceShare>, ClientError> {
        let route = Route::DeviceGetShares { address: address.clone(), box_key };
        let list: DeviceShares = self.call(&route, None, None::<&()>).await?;
        Ok(list.shares)
    }

    /// Where a request stands.
    pub async fn device_status(&self, request_id: Id32) -> Result<RequestStatus, ClientError> {
        self.call(&Route::DeviceStatus { request_id }, None, None::<&()>).await
    }
}

impl SessionClient {
    /// The account's pending device requests.
    pub async fn device_pending(&self) -> Result<Vec<PendingRequest>, ClientError> {
        let list: PendingRequests = self.call(&Route::DevicePending, None::<&()>).await?;
        Ok(list.requests)
    }

    /// Approves a request with its sealed approval.
    pub async fn device_approve(&self, request_id: Id32, approval: &Sealed) -> Result<(), ClientError> {
        let _: Decided = self.call(&Route::DeviceApprove { request_id }, Some(approval)).await?;
        Ok(())
    }

    /// Denies a request, saying why when the reason is a PIN.
    pub async fn device_deny(&self, request_id: Id32, reason: Option<DenyReason>) -> Result<(), ClientError> {
        let _: Decided = self.call(&Route::DeviceDeny { request_id }, Some(&Denial { reason })).await?;
        Ok(())
    }

    /// Leaves sealed shares for other devices.
    pub async fn device_put_shares(&self, shares: Vec<DeviceShare>) -> Result<(), ClientError> {
        let _: Updated = self.call(&Route::DevicePutShares, Some(&DeviceShares { shares })).await?;
        Ok(())
    }

    /// When each device last checked in.
    pub async fn devices_seen(&self) -> Result<Vec<DeviceSeen>, ClientError> {
        let list: DevicesSeen = self.call(&Route::DeviceSeen, None::<&()>).await?;
        Ok(list.devices)
    }
}
