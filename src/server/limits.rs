//! The limits a remote attacker meets before the server does any work for them
//! (docs/protocol.md §9.1): per-route body limits read from the route table and
//! checked from `Content-Length` before a body is read, the per-address limit of
//! unauthenticated calls checked before their body is read, and the key under which
//! an address is counted (an IPv6 client by its /64, which one host can fill).
//!
//! Must not depend on handlers: `routes/mod.rs` wraps every route in these layers.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::error::ApiError;
use crate::server::routes::session::ClientIp;
use crate::server::state::AppState;
use crate::server::store::RateLimit;
use crate::smimp::wire::ErrorCode;

/// The key an address is rate-limited under: an IPv4 address as it is (IPv4-mapped
/// IPv6 too), an IPv6 address by its /64 prefix, since one host or home network is
/// routinely given a whole /64 and can send from any address in it.
pub fn rate_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The refusal for an address over its login limit.
pub fn too_many_logins() -> ApiError {
    ApiError::new(ErrorCode::RateLimited, "too many logins from this address; wait a minute and try again")
}

/// Counts one unauthenticated call (a login step, an initialisation) against the
/// client address's per-minute limit.
/// Counted in the database too, so instances sharing one grant no more than one.
pub async fn check_login_rate(state: &AppState, ip: IpAddr) -> Result<(), ApiError> {
    if state.rate_allows(RateLimit::Login, &rate_key(ip)).await? {
        Ok(())
    } else {
        Err(too_many_logins())
    }
}

/// Layer of the unauthenticated routes that carry a body (`create_session`,
/// `initialize_account`): the address's limit is counted before the body is read, so
/// a client over its limit cannot make the server read anything.
pub async fn limit_unauthenticated(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(ClientIp(ip)) = request.extensions().get::<ClientIp>().copied() else {
        return ApiError::new(ErrorCode::Internal, "the client's address is unknown").into_response();
    };
    if let Err(refused) = check_login_rate(&state, ip).await {
        return refused.into_response();
    }
    next.run(request).await
}

/// The refusal for a body over a route's limit.
pub fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the request body is larger than this server accepts for this call ({limit} bytes)"),
    )
}

/// Refuses a request whose declared `Content-Length` is over `limit` before its body
/// is read; a body without a length is cut off at `limit` as it is read (axum's
/// `DefaultBodyLimit`, set to the same number beside this layer).
pub async fn refuse_long_body(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => body_too_large(limit).into_response(),
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_slash_64() {
        let cases = [
            ("203.0.113.7", "203.0.113.7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::1", "0:0:0:0::/64"),
        ];
        for (ip, key) in cases {
            assert_eq!(rate_key(ip.parse().unwrap()), key, "{ip}");
        }
    }
}
