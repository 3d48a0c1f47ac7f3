//! Mailbox management for the account's owner (spec "Mailbox Management"): folders
//! per message type, message listings, fetching (optionally marking read), moving,
//! deleting, read status and the envelope-level extensions data.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::server::auth::OwnerSession;
use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::routes::{folder_name, message_id, message_type};
use crate::server::state::AppState;
use crate::server::store::Write;
use crate::smimp::address::Address;
use crate::smimp::envelope::{SealedData, StoredEnvelope};
use crate::smimp::message::MessageType;
use crate::smimp::wire::{
    ChangeList, Deleted, ErrorCode, Folder, FolderList, FolderName, MessageList, MoveMessageRequest, Moved, Position,
    ReadStatus, Updated,
};

fn no_folder(kind: &MessageType, name: &FolderName) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("there is no {kind} folder {name}"))
}

fn no_message() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "there is no such message in this mailbox")
}

fn found(write: Write, missing: impl FnOnce() -> ApiError) -> ApiResult<()> {
    match write {
        Write::Done => Ok(()),
        Write::NotFound => Err(missing()),
        Write::Conflict => Err(ApiError::new(ErrorCode::Conflict, "the change conflicts with the mailbox's state")),
    }
}

/// `GET folders`: every folder of every type.
pub async fn list_all_folders(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
) -> ApiResult<Json<FolderList>> {
    Ok(Json(FolderList { folders: state.store.folders(&s.address, None).await? }))
}

/// `GET folders/{message_type}`.
pub async fn list_folders(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(kind): Path<String>,
) -> ApiResult<Json<FolderList>> {
    let kind = message_type(&kind)?;
    Ok(Json(FolderList { folders: state.store.folders(&s.address, Some(&kind)).await? }))
}

/// Refuses an empty display name (docs/protocol.md §8.11).
fn check_display_name(folder: &Folder) -> ApiResult<()> {
    if folder.display_name.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::BadRequest, "a folder's display_name must not be empty"));
    }
    Ok(())
}

/// Refuses a parent that is missing, or that would make the folder its own ancestor.
async fn check_parent(
    state: &AppState,
    owner: &Address,
    folder: &Folder,
    renaming: Option<&FolderName>,
) -> ApiResult<()> {
    let Some(parent) = &folder.parent else { return Ok(()) };
    let all = state.store.folders(owner, Some(&folder.message_type)).await?;
    let mut cursor = Some(parent.clone());
    let mut steps = 0;
    while let Some(name) = cursor {
        if Some(&name) == renaming || name == folder.folder_name {
            return Err(ApiError::new(ErrorCode::Conflict, "a folder cannot be placed inside itself"));
        }
        let Some(found) = all.iter().find(|f| f.folder_name == name) else {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("the parent folder {name} does not exist for message type {}", folder.message_type),
            ));
        };
        cursor = found.parent.clone();
        steps += 1;
        if steps > all.len() {
            break;
        }
    }
    Ok(())
}

/// `POST folders`: creates a folder.
pub async fn create_folder(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Json(folder): Json<Folder>,
) -> ApiResult<Json<Folder>> {
    check_display_name(&folder)?;
    check_parent(&state, &s.address, &folder, None).await?;
    match state.store.create_folder(&s.address, &folder).await? {
        Write::Done => Ok(Json(folder)),
        _ => Err(ApiError::new(
            ErrorCode::Conflict,
            format!("a {} folder named {} already exists", folder.message_type, folder.folder_name),
        )),
    }
}

/// `POST folders/{folder_name}`: renames or moves a folder.
pub async fn update_folder(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(old): Path<String>,
    Json(folder): Json<Folder>,
) -> ApiResult<Json<Folder>> {
    let old = folder_name(&old)?;
    check_display_name(&folder)?;
    if !state.store.folder_exists(&s.address, &folder.message_type, &old).await? {
        return Err(no_folder(&folder.message_type, &old));
    }
    check_parent(&state, &s.address, &folder, Some(&old)).await?;
    found(state.store.update_folder(&s.address, &old, &folder).await?, || no_folder(&folder.message_type, &old))
        .map_err(|e| {
            if e.code == ErrorCode::Conflict {
                ApiError::new(
                    ErrorCode::Conflict,
                    format!("a {} folder named {} already exists", folder.message_type, folder.folder_name),
                )
            } else {
                e
            }
        })?;
    Ok(Json(folder))
}

/// Extension: `DELETE folders/{message_type}/{folder_name}`, only when empty.
pub async fn delete_folder(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Json<Deleted>> {
    let (kind, name) = (message_type(&kind)?, folder_name(&name)?);
    match state.store.delete_folder(&s.address, &kind, &name).await? {
        Write::Done => Ok(Json(Deleted { deleted: true })),
        Write::NotFound => Err(no_folder(&kind, &name)),
        Write::Conflict => {
            Err(ApiError::new(ErrorCode::Conflict, format!("the folder {name} still holds messages or folders")))
        }
    }
}

/// `GET folder/{message_type}`: the root folder's messages.
pub async fn list_root_messages(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(kind): Path<String>,
) -> ApiResult<Json<MessageList>> {
    let kind = message_type(&kind)?;
    Ok(Json(MessageList { messages: state.store.list_messages(&s.address, &kind, None).await? }))
}

/// `GET folder/{message_type}/{folder_name}`.
pub async fn list_messages(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((kind, name)): Path<(String, String)>,
) -> ApiResult<Json<MessageList>> {
    let (kind, name) = (message_type(&kind)?, folder_name(&name)?);
    if !state.store.folder_exists(&s.address, &kind, &name).await? {
        return Err(no_folder(&kind, &name));
    }
    Ok(Json(MessageList { messages: state.store.list_messages(&s.address, &kind, Some(&name)).await? }))
}

/// `GET message/{message_id}/{update_read}`: the stored envelope.
pub async fn get_message(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((id, update_read)): Path<(String, String)>,
) -> ApiResult<Json<StoredEnvelope>> {
    let id = message_id(&id)?;
    let update_read = match update_read.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("update_read must be true or false, not {other:?}"),
            ))
        }
    };
    let row = state.store.message(&s.address, &id, update_read).await?.ok_or_else(no_message)?;
    let mut envelope: StoredEnvelope = serde_json::from_str(&row.envelope)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("a stored envelope is unreadable: {e}")))?;
    envelope.server.read = row.read;
    envelope.server.extensions_data = row.extensions;
    Ok(Json(envelope))
}

/// Envelopes in one `x-envelopes` page: enough to keep a client's pipeline busy, few
/// enough that a page of small messages is a few hundred kilobytes.
const PAGE_ENVELOPES: u32 = 256;

/// Bytes of envelopes in one page; a single larger envelope still comes alone.
const PAGE_BYTES: u64 = 8 * 1024 * 1024;

/// Extension `GET x-envelopes/{message_type}/{after}`: the root folder's envelopes.
pub async fn list_root_envelopes(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((kind, after)): Path<(String, String)>,
) -> ApiResult<Response> {
    envelope_page(&state, &s.address, &message_type(&kind)?, None, &after).await
}

/// Extension `GET x-envelopes/{message_type}/{folder_name}/{after}`.
pub async fn list_envelopes(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((kind, name, after)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (kind, name) = (message_type(&kind)?, folder_name(&name)?);
    if !state.store.folder_exists(&s.address, &kind, &name).await? {
        return Err(no_folder(&kind, &name));
    }
    envelope_page(&state, &s.address, &kind, Some(&name), &after).await
}

/// One page of envelopes after `after` (docs/protocol.md §8.30). The stored envelopes
/// are JSON this server wrote at delivery, so they go out as stored, without being
/// parsed and written again: a page costs the database read and the copy.
async fn envelope_page(
    state: &AppState,
    owner: &Address,
    kind: &MessageType,
    folder: Option<&FolderName>,
    after: &str,
) -> ApiResult<Response> {
    let after: Position = after.parse().map_err(|_| {
        ApiError::new(ErrorCode::BadRequest, format!("the position must be a whole number, not {after:?}"))
    })?;
    let start = i64::try_from(after.0).unwrap_or(i64::MAX);
    let (rows, more) = state.store.envelope_page(owner, kind, folder, start, (PAGE_ENVELOPES, PAGE_BYTES)).await?;
    let next = rows.last().map_or(after, |row| Position(u64::try_from(row.position).unwrap_or(0)));
    let mut body = String::with_capacity(rows.iter().map(|r| r.envelope.len() + 64).sum::<usize>() + 64);
    body.push_str("{\"envelopes\":[");
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            body.push(',');
        }
        body.push_str("{\"envelope\":");
        body.push_str(&row.envelope);
        body.push_str(if row.read { ",\"read\":true" } else { ",\"read\":false" });
        body.push_str(",\"extensions_data\":");
        body.push_str(row.extensions.as_deref().unwrap_or("null"));
        body.push('}');
    }
    body.push_str(&format!("],\"next\":{next},\"more\":{more}}}"));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `DELETE message/{message_id}`: gone for good.
pub async fn delete_message(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    found(state.store.delete_message(&s.address, &message_id(&id)?, state.clock.now()).await?, no_message)?;
    Ok(Json(Deleted { deleted: true }))
}

/// `POST message_move/{message_id}`: to a folder of the message's own type.
pub async fn move_message(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(id): Path<String>,
    Json(request): Json<MoveMessageRequest>,
) -> ApiResult<Json<Moved>> {
    let id = message_id(&id)?;
    match state.store.move_message(&s.address, &id, request.folder_name.as_ref(), state.clock.now()).await? {
        Write::Done => Ok(Json(Moved { moved: true })),
        Write::NotFound => Err(no_message()),
        Write::Conflict => Err(ApiError::new(
            ErrorCode::NotFound,
            "the target folder does not exist for the message's type (a message cannot move to another type's folder)",
        )),
    }
}

/// `GET message_read/{message_id}`.
pub async fn read_status(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(id): Path<String>,
) -> ApiResult<Json<ReadStatus>> {
    let row = state.store.message(&s.address, &message_id(&id)?, false).await?.ok_or_else(no_message)?;
    Ok(Json(ReadStatus { read: row.read }))
}

/// `POST message_read/{message_id}` with `true` or `false`.
pub async fn set_read_status(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(id): Path<String>,
    Json(read): Json<bool>,
) -> ApiResult<Json<ReadStatus>> {
    found(state.store.set_read(&s.address, &message_id(&id)?, read).await?, no_message)?;
    Ok(Json(ReadStatus { read }))
}

/// `POST message_extensions/{message_id}` with sealed data or null.
pub async fn set_extensions(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path(id): Path<String>,
    Json(data): Json<Option<SealedData>>,
) -> ApiResult<Json<Updated>> {
    found(state.store.set_extensions(&s.address, &message_id(&id)?, data.as_ref()).await?, no_message)?;
    Ok(Json(Updated { updated: true }))
}

/// Extension `GET x-changes/{message_type}/{since}`: the root folder's changes.
pub async fn root_changes(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((kind, since)): Path<(String, String)>,
) -> ApiResult<Json<ChangeList>> {
    let kind = message_type(&kind)?;
    Ok(Json(state.store.changes(&s.address, &kind, None, modseq(&since)?).await?))
}

/// Extension `GET x-changes/{message_type}/{folder_name}/{since}`.
pub async fn changes(
    State(state): State<Arc<AppState>>,
    OwnerSession(s): OwnerSession,
    Path((kind, name, since)): Path<(String, String, String)>,
) -> ApiResult<Json<ChangeList>> {
    let (kind, name, since) = (message_type(&kind)?, folder_name(&name)?, modseq(&since)?);
    if !state.store.folder_exists(&s.address, &kind, &name).await? {
        return Err(no_folder(&kind, &name));
    }
    Ok(Json(state.store.changes(&s.address, &kind, Some(&name), since).await?))
}

/// A modseq path segment: a decimal number.
fn modseq(text: &str) -> ApiResult<u64> {
    text.parse()
        .map_err(|_| ApiError::new(ErrorCode::BadRequest, format!("since must be a modseq (a number), not {text:?}")))
}
