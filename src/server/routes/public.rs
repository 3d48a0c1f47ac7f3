//! Public data (spec "Public Data (Unauthenticated)"): versions, the API list,
//! user histories and avatars. Answers only for initialised local accounts.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;

use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::routes::{address, no_such_user};
use crate::server::state::AppState;
use crate::smimp::address::Address;
use crate::smimp::profile::ProfileRecord;
use crate::smimp::wire::{
    percent_encode_segment, Api, AvatarContentType, AvatarInfo, ErrorCode, ServerInformation, UserHistory,
    UserInfoKind, UserMostRecent, UserPublicKey, VersionList, VERSION,
};

/// `GET version`.
pub async fn version() -> Json<VersionList> {
    Json(VersionList { versions: vec![VERSION.to_string()] })
}

/// `GET server_information`: this server implements every API of the profile.
pub async fn server_information() -> Json<ServerInformation> {
    Json(ServerInformation::new(Api::ALL.iter().copied()))
}

/// The history of a local, initialised account, or the refusal.
pub(crate) async fn local_history(state: &AppState, address: &Address) -> ApiResult<Vec<ProfileRecord>> {
    if !state.is_local(address) {
        return Err(no_such_user(address));
    }
    let history = state.store.history(address).await?;
    if history.is_empty() {
        return Err(no_such_user(address));
    }
    Ok(history)
}

/// `GET get_user/{address}/{kind}`.
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    Path((user, kind)): Path<(String, String)>,
) -> ApiResult<axum::response::Response> {
    let user = address(&user)?;
    let kind = UserInfoKind::parse(&kind).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("{kind:?} is not a kind of user information (public_key, most_recent, history)"),
        )
    })?;
    let mut history = local_history(&state, &user).await?;
    Ok(match kind {
        UserInfoKind::History => Json(UserHistory { address: user, history }).into_response(),
        UserInfoKind::MostRecent => {
            let record = history.pop().expect("a local history is never empty");
            Json(UserMostRecent { address: user, record }).into_response()
        }
        UserInfoKind::PublicKey => {
            let public_key = state.store.current_key(&user).await?.ok_or_else(|| no_such_user(&user))?;
            Json(UserPublicKey { address: user, public_key }).into_response()
        }
    })
}

/// `GET user_avatar/{address}`: where the image is and its signed hash.
pub async fn get_avatar(State(state): State<Arc<AppState>>, Path(user): Path<String>) -> ApiResult<Json<AvatarInfo>> {
    let user = address(&user)?;
    local_history(&state, &user).await?;
    let avatar = state
        .store
        .avatar(&user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("{user} has not set an avatar")))?;
    let content_type = match avatar.content_type.as_str() {
        "image/png" => AvatarContentType::Png,
        _ => AvatarContentType::Jpeg,
    };
    let base = &state.config.server.public_base;
    Ok(Json(AvatarInfo {
        url: format!("https://{base}/{VERSION}/avatar_image/{}", percent_encode_segment(user.as_str())),
        content_type,
        hash: avatar.hash,
        signature: avatar.signature,
    }))
}

/// `GET avatar_image/{address}`: the image bytes the avatar URL points at.
pub async fn avatar_image(
    State(state): State<Arc<AppState>>,
    Path(user): Path<String>,
) -> ApiResult<axum::response::Response> {
    let user = address(&user)?;
    let avatar = state
        .store
        .avatar(&user)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("{user} has not set an avatar")))?;
    Ok(([(header::CONTENT_TYPE, avatar.content_type)], avatar.image).into_response())
}
