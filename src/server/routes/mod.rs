//! The API's handlers, one module per part of the spec, and the router that maps
//! every path of docs/protocol.md §8 onto them.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::smimp::address::Address;
use crate::smimp::encoding::Id32;
use crate::smimp::message::MessageType;
use crate::smimp::wire::{ErrorCode, FolderName, VERSION};

pub(crate) mod account;
mod mailbox;
mod public;
mod sending;
pub(crate) mod session;

/// Every route of the API below the base path.
pub fn router() -> Router<Arc<AppState>> {
    let v = |path: &str| format!("/{VERSION}/{path}");
    Router::new()
        .route("/version", get(public::version))
        .route(&v("server_information"), get(public::server_information))
        .route(&v("get_user/{address}/{kind}"), get(public::get_user))
        .route(&v("user_avatar/{address}"), get(public::get_avatar))
        .route(&v("user_avatar"), post(account::set_avatar))
        .route(&v("avatar_image/{address}"), get(public::avatar_image))
        .route(&v("create_session/{address}"), get(session::login_token).post(session::create_session))
        .route(&v("destroy_session"), post(session::destroy_session))
        .route(&v("get_message_key"), post(sending::get_message_key))
        .route(&v("get_pow_params/{address}/{message_type}"), get(sending::get_pow_params))
        .route(&v("send_message/{address}"), post(sending::send_message))
        .route(&v("folders"), get(mailbox::list_all_folders).post(mailbox::create_folder))
        .route(&v("folders/{name}"), get(mailbox::list_folders).post(mailbox::update_folder))
        .route(&v("folders/{message_type}/{folder_name}"), axum::routing::delete(mailbox::delete_folder))
        .route(&v("folder/{message_type}"), get(mailbox::list_root_messages))
        .route(&v("folder/{message_type}/{folder_name}"), get(mailbox::list_messages))
        .route(&v("message/{message_id}"), axum::routing::delete(mailbox::delete_message))
        .route(&v("message/{message_id}/{update_read}"), get(mailbox::get_message))
        .route(&v("message_move/{message_id}"), post(mailbox::move_message))
        .route(&v("message_read/{message_id}"), get(mailbox::read_status).post(mailbox::set_read_status))
        .route(&v("message_extensions/{message_id}"), post(mailbox::set_extensions))
        .route(&v("initialize_account"), post(account::initialize_account))
        .route(&v("nonephemeral_key"), get(account::nonephemeral_key).post(account::set_nonephemeral_key))
        .route(&v("ephemeral_keys"), get(account::ephemeral_keys).post(account::set_ephemeral_keys))
        .route(&v("update_profile"), post(account::update_profile))
        .route(&v("whitelist"), get(account::whitelist).post(account::add_whitelist))
        .route(&v("whitelist/{hash}"), axum::routing::delete(account::remove_whitelist))
        .route(&v("blacklist"), get(account::blacklist).post(account::add_blacklist))
        .route(&v("blacklist/{hash}"), axum::routing::delete(account::remove_blacklist))
        .route(&v("quota"), get(account::quota))
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
