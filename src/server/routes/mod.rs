//! The API's handlers, one module per part of the spec, and the router that maps
//! every entry of the route table (`smimp::wire::table`, docs/protocol.md §8) onto
//! them: the paths come from the table's templates, so the server cannot answer on
//! a path the client does not call, and this file only pairs entries with handlers.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::server::error::ApiError;
use crate::server::limits::{limit_unauthenticated, refuse_long_body};
use crate::server::state::AppState;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::MessageType;
use crate::smimp::wire::{table, Auth, ErrorCode, FolderName, Method, RouteSpec};

pub(crate) mod account;
mod devices;
mod mailbox;
mod public;
mod sending;
pub(crate) mod session;

/// A table entry with the handler that serves it.
type Served = (&'static RouteSpec, MethodRouter<Arc<AppState>>);

/// Pairs a table entry with its handler, on the entry's method.
fn serve<H, T>(spec: &'static RouteSpec, handler: H) -> Served
where
    H: Handler<T, Arc<AppState>>,
    T: 'static,
{
    let filter = match spec.method {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Delete => MethodFilter::DELETE,
    };
    (spec, on(filter, handler))
}

/// The handler of every entry of the route table.
fn served() -> Vec<Served> {
    use table as t;
    vec![
        serve(&t::VERSION, public::version),
        serve(&t::SERVER_INFORMATION, public::server_information),
        serve(&t::GET_USER, public::get_user),
        serve(&t::GET_AVATAR, public::get_avatar),
        serve(&t::SET_AVATAR, account::set_avatar),
        serve(&t::AVATAR_IMAGE, public::avatar_image),
        serve(&t::GET_LOGIN_TOKEN, session::login_token),
        serve(&t::CREATE_SESSION, session::create_session),
        serve(&t::DESTROY_SESSION, session::destroy_session),
        serve(&t::GET_MESSAGE_KEY, sending::get_message_key),
        serve(&t::GET_POW_PARAMS, sending::get_pow_params),
        serve(&t::SEND_MESSAGE, sending::send_message),
        serve(&t::LIST_ALL_FOLDERS, mailbox::list_all_folders),
        serve(&t::LIST_FOLDERS, mailbox::list_folders),
        serve(&t::CREATE_FOLDER, mailbox::create_folder),
        serve(&t::UPDATE_FOLDER, mailbox::update_folder),
        serve(&t::DELETE_FOLDER, mailbox::delete_folder),
        serve(&t::LIST_ROOT_MESSAGES, mailbox::list_root_messages),
        serve(&t::LIST_MESSAGES, mailbox::list_messages),
        serve(&t::GET_MESSAGE, mailbox::get_message),
        serve(&t::DELETE_MESSAGE, mailbox::delete_message),
        serve(&t::MOVE_MESSAGE, mailbox::move_message),
        serve(&t::GET_READ_STATUS, mailbox::read_status),
        serve(&t::SET_READ_STATUS, mailbox::set_read_status),
        serve(&t::SET_MESSAGE_EXTENSIONS, mailbox::set_extensions),
        serve(&t::LIST_ROOT_ENVELOPES, mailbox::list_root_envelopes),
        serve(&t::LIST_ENVELOPES, mailbox::list_envelopes),
        serve(&t::INITIALIZE_ACCOUNT, account::initialize_account),
        serve(&t::GET_NONEPHEMERAL_KEY, account::nonephemeral_key),
        serve(&t::SET_NONEPHEMERAL_KEY, account::set_nonephemeral_key),
        serve(&t::LIST_EPHEMERAL_KEYS, account::ephemeral_keys),
        serve(&t::SET_EPHEMERAL_KEYS, account::set_ephemeral_keys),
        serve(&t::UPDATE_PROFILE, account::update_profile),
        serve(&t::LIST_WHITELIST, account::whitelist),
        serve(&t::ADD_WHITELIST, account::add_whitelist),
        serve(&t::REMOVE_WHITELIST, account::remove_whitelist),
        serve(&t::LIST_BLACKLIST, account::blacklist),
        serve(&t::ADD_BLACKLIST, account::add_blacklist),
        serve(&t::REMOVE_BLACKLIST, account::remove_blacklist),
        serve(&t::GET_QUOTA, account::quota),
        serve(&t::LIST_ROOT_CHANGES, mailbox::root_changes),
        serve(&t::LIST_CHANGES, mailbox::changes),
        serve(&t::DEVICE_CHALLENGE, devices::challenge),
        serve(&t::DEVICE_REQUEST, devices::request),
        serve(&t::DEVICE_STATUS, devices::status),
        serve(&t::DEVICE_PENDING, devices::pending),
        serve(&t::DEVICE_APPROVE, devices::approve),
        serve(&t::DEVICE_DENY, devices::deny),
        serve(&t::DEVICE_PUT_SHARES, devices::put_shares),
        serve(&t::DEVICE_GET_SHARES, devices::get_shares),
        serve(&t::DEVICE_SEEN, devices::seen),
    ]
}

/// A pattern with its parameter names blanked: two templates that differ only in
/// those names (`folders/{message_type}` GET, `folders/{folder_name}` POST) are one
/// path to the router.
fn shape(pattern: &str) -> String {
    let segments: Vec<&str> =
        pattern.split('/').map(|s| if s.starts_with('{') && s.ends_with('}') { "{}" } else { s }).collect();
    segments.join("/")
}

/// Wraps a handler in its entry's limits (docs/protocol.md §9.1): the body limit
/// (the entry's, lowered by `[limits] max_body_bytes`), refused from
/// `Content-Length` before the body is read; and for an unauthenticated entry with a
/// body, the client address's rate limit, counted before the body is read.
fn limited(
    state: &Arc<AppState>,
    spec: &RouteSpec,
    handler: MethodRouter<Arc<AppState>>,
) -> MethodRouter<Arc<AppState>> {
    let limit = spec.max_body.min(state.config.limits.max_body_bytes);
    let handler = handler
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn(move |request, next| refuse_long_body(limit, request, next)));
    if spec.auth != Auth::Session && spec.method == Method::Post {
        handler.layer(from_fn_with_state(Arc::clone(state), limit_unauthenticated))
    } else {
        handler
    }
}

/// Every route of the API below the base path, built from the route table. Entries
/// whose patterns have the same shape are registered under the first one's spelling,
/// so their methods share one path (handlers read parameters by position).
pub fn router(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    router_with(|spec, handler| limited(state, spec, handler))
}

/// The router with `wrap` applied to each entry's handler.
fn router_with(
    wrap: impl Fn(&RouteSpec, MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>>,
) -> Router<Arc<AppState>> {
    let mut spellings: Vec<(String, String)> = Vec::new();
    served().into_iter().fold(Router::new(), |router, (spec, handler)| {
        let handler = wrap(spec, handler);
        let pattern = spec.pattern();
        let shape = shape(&pattern);
        let pattern = match spellings.iter().find(|(known, _)| *known == shape) {
            Some((_, first)) => first.clone(),
            None => {
                spellings.push((shape, pattern.clone()));
                pattern
            }
        };
        router.route(&pattern, handler)
    })
}

/// Reads an address from a path segment.
pub(crate) fn address(text: &str) -> Result<Address, ApiError> {
    Address::parse(text)
        .map_err(|e| ApiError::new(ErrorCode::InvalidAddress, format!("{text:?} is not an SMIMP address: {e}")))
}

/// Reads a message id from a path segment.
pub(crate) fn message_id(text: &str) -> Result<Id32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("{text:?} is not a message id (64 hex digits)")))
}

/// Reads a message type from a path segment.
pub(crate) fn message_type(text: &str) -> Result<MessageType, ApiError> {
    MessageType::parse(text).map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string()))
}

/// Reads a folder name from a path segment.
pub(crate) fn folder_name(text: &str) -> Result<FolderName, ApiError> {
    FolderName::parse(text).map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("{text:?}: {e}")))
}

/// The refusal for an address this server does not hold.
pub(crate) fn no_such_user(address: &Address) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("there is no initialised account {address} on this server"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_is_served_once() {
        let served: Vec<&str> = served().iter().map(|(spec, _)| spec.name).collect();
        let table: Vec<&str> = table::ALL.iter().map(|spec| spec.name).collect();
        assert_eq!(served, table);
    }

    #[test]
    fn shapes_blank_parameter_names() {
        assert_eq!(shape("/0.1/folders/{message_type}"), shape("/0.1/folders/{folder_name}"));
        assert_ne!(shape("/0.1/folders/{message_type}"), shape("/0.1/folder/{message_type}"));
        // Building the router panics on a clash axum cannot merge.
        let _ = router_with(|_, handler| handler);
    }
}
