//! Sending a message (spec "Get Message Key", "Get Proof of Work Parameters", "Send
//! Message"): keys handed out once per sender session, PoW nonces bound to session,
//! recipient and type, and every check of docs/protocol.md §8.9 before a message is
//! stored.

use std::sync::Arc;

use axum::extract::{Path, State};
use rand_core::OsRng;

use crate::server::auth::Session;
use crate::server::error::{ApiError, ApiResult, Json};
use crate::server::routes::{address, message_type, no_such_user};
use crate::server::state::AppState;
use crate::server::store::{Delivery, Issued, KeyBudget, NewMessage, RateLimit, SessionRow};
use crate::smimp::address::Address;
use crate::smimp::crypto::{blake2b_256, MasterPublicKey};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{
    message_field_hash, EnvelopeError, HashContext, ReceivedVia, SentEnvelope, ServerFields, StoredEnvelope, ALGORITHM,
    PROTOCOL_VERSION,
};
use crate::smimp::keys::is_master_key;
use crate::smimp::pow::{zero_bits_for_size, PowParams};
use crate::smimp::timestamp::Timestamp;
use crate::smimp::wire::{
    list_entry_hash, ErrorCode, ListKind, MessageKeyRequest, MessageKeyResponse, MessageSent, SendMessageRequest,
};

/// How the recipient's lists treat a sender (docs/protocol.md §8.27: address entries
/// before domain entries, whitelist before blacklist at the same level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Whitelisted,
    Blacklisted,
    Unlisted,
}

/// Mail a local account stores in its own mailbox (a gateway's IMAP APPEND, COPY or a
/// delivery report to itself): the owner is implicitly whitelisted there (0 bits of
/// proof of work, docs/protocol.md §8.27) and held to no per-session or per-sender key
/// limit, which exist to protect a recipient from others; its quota still bounds it.
fn is_own_mailbox(session: &SessionRow, recipient: &Address) -> bool {
    session.local && session.address == *recipient
}

async fn standing(state: &AppState, session: &SessionRow, recipient: &Address) -> ApiResult<Standing> {
    if is_own_mailbox(session, recipient) {
        return Ok(Standing::Whitelisted);
    }
    let sender = &session.address;
    for entry in [sender.as_str(), sender.domain()] {
        let hash = list_entry_hash(entry);
        if state.store.is_listed(recipient, ListKind::Whitelist, &hash).await? {
            return Ok(Standing::Whitelisted);
        }
        if state.store.is_listed(recipient, ListKind::Blacklist, &hash).await? {
            return Ok(Standing::Blacklisted);
        }
    }
    Ok(Standing::Unlisted)
}

fn blacklisted(recipient: &Address) -> ApiError {
    ApiError::new(ErrorCode::Blacklisted, format!("{recipient} does not accept messages from this sender"))
}

/// The recipient's current key, if it is a local, initialised account.
async fn recipient_key(state: &AppState, recipient: &Address) -> ApiResult<MasterPublicKey> {
    if !state.is_local(recipient) {
        return Err(no_such_user(recipient));
    }
    state.store.current_key(recipient).await?.ok_or_else(|| no_such_user(recipient))
}

fn rate_limited(what: &str) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, format!("too many {what} in this session; wait a minute and try again"))
}

/// `POST get_message_key`: one key of the recipient, issued to this session.
pub async fn get_message_key(
    State(state): State<Arc<AppState>>,
    Session(session): Session,
    Json(request): Json<MessageKeyRequest>,
) -> ApiResult<Json<MessageKeyResponse>> {
    let recipient = request.address;
    if !is_own_mailbox(&session, &recipient)
        && !state.rate_allows(RateLimit::MessageKey, &session.session_hash.to_hex()).await?
    {
        return Err(rate_limited("message key requests"));
    }
    let public_key = recipient_key(&state, &recipient).await?;
    let listed = standing(&state, &session, &recipient).await?;
    if listed == Standing::Blacklisted {
        return Err(blacklisted(&recipient));
    }
    let budget = key_budget(&state, &session, &recipient, listed);
    let issued = state
        .store
        .issue_message_key(&recipient, &session.address, &session.session_hash, &budget, state.clock.now())
        .await?;
    let (message_key, nonephemeral) = match issued {
        Issued::Key(key, nonephemeral) => (key, nonephemeral),
        Issued::SenderLimited => {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "{} was handed too many message keys on this server (at most {} a minute and {} an hour); \
                     wait and try again",
                    session.address, budget.sender_per_minute, budget.sender_per_hour
                ),
            ))
        }
        Issued::NoKey => {
            return Err(ApiError::new(ErrorCode::NotFound, format!("{recipient} has no message key to hand out")))
        }
    };
    Ok(Json(MessageKeyResponse { address: recipient, public_key, message_key, nonephemeral }))
}

/// The limits on handing `recipient`'s keys to `session` (docs/protocol.md §9.1): per
/// sending identity, and per recipient for the senders it has not whitelisted, so no
/// one drains the recipient's ephemeral keys. An account storing mail in its own
/// mailbox (IMAP APPEND through a gateway) is held to neither.
fn key_budget(state: &AppState, session: &SessionRow, recipient: &Address, listed: Standing) -> KeyBudget {
    let limits = &state.config.limits;
    if is_own_mailbox(session, recipient) {
        return KeyBudget { sender_per_minute: u32::MAX, sender_per_hour: u32::MAX, recipient_ephemeral: None };
    }
    KeyBudget {
        sender_per_minute: limits.keys_per_sender_per_minute,
        sender_per_hour: limits.keys_per_sender_per_hour,
        recipient_ephemeral: (listed != Standing::Whitelisted)
            .then_some((limits.ephemeral_keys_per_recipient_per_minute, limits.ephemeral_keys_per_recipient_per_hour)),
    }
}

/// `GET get_pow_params/{address}/{message_type}`: a single-use nonce and the difficulty.
pub async fn get_pow_params(
    State(state): State<Arc<AppState>>,
    Session(session): Session,
    Path((recipient, kind)): Path<(String, String)>,
) -> ApiResult<Json<PowParams>> {
    let recipient = address(&recipient)?;
    // Each call stores a nonce: it counts against the same per-session limit as message keys.
    if !is_own_mailbox(&session, &recipient)
        && !state.rate_allows(RateLimit::MessageKey, &session.session_hash.to_hex()).await?
    {
        return Err(rate_limited("proof-of-work requests"));
    }
    let kind = message_type(&kind)?;
    recipient_key(&state, &recipient).await?;
    let zero_bits = match standing(&state, &session, &recipient).await? {
        Standing::Blacklisted => return Err(blacklisted(&recipient)),
        Standing::Whitelisted => 0,
        Standing::Unlisted => state.config.pow.zero_bits_for(&kind),
    };
    let nonce = Id32::random(&mut OsRng);
    let max_unused = state.config.limits.max_pow_nonces_per_identity;
    state.store.add_pow_nonce(&nonce, &session, &recipient, &kind, zero_bits, max_unused).await?;
    Ok(Json(PowParams { zero_bits, nonce }))
}

/// `POST send_message/{address}`: every check, then the sealed envelope is stored.
pub async fn send_message(
    State(state): State<Arc<AppState>>,
    Session(session): Session,
    Path(recipient): Path<String>,
    Json(SendMessageRequest(sent)): Json<SendMessageRequest>,
) -> ApiResult<Json<MessageSent>> {
    if !state.rate_allows(RateLimit::SendMessage, &session.session_hash.to_hex()).await? {
        return Err(rate_limited("messages"));
    }
    let recipient = address(&recipient)?;
    let recipient_master = recipient_key(&state, &recipient).await?;
    if standing(&state, &session, &recipient).await? == Standing::Blacklisted {
        return Err(blacklisted(&recipient));
    }
    check_message_key(&state, &session, &recipient, &recipient_master, &sent).await?;
    let context =
        HashContext { sender: &session.address, recipient: &recipient, login_token_hash: &session.login_token_hash };
    // The proof of work (one hash) before the signature (§8.9 steps 7 and 8).
    let field_hash = message_field_hash(&sent.message);
    let params = check_pow(&state, &session, &recipient, &sent, &field_hash, &context).await?;
    sent.verify_signature(&session.public_key, &context).map_err(|e| {
        ApiError::new(ErrorCode::InvalidSignature, format!("{e} (the hash binds sender, recipient and this session)"))
    })?;
    let now = state.clock.now();
    let stored = stored_envelope(&session, &recipient, sent, params, now)?;
    let envelope = serde_json::to_string(&stored).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    check_quota(&state, &recipient, envelope.len() as u64).await?;
    let message_id = stored.server.message_id;
    let written = state
        .store
        .deliver(&NewMessage {
            message_id,
            recipient: &recipient,
            sender: &session.address,
            message_type: &stored.sent.message_type,
            received_at: now,
            envelope: &envelope,
            pow_nonce: Some(&params.nonce),
            message_key: &stored.sent.message_public_key,
            quota_bytes: u64::try_from(state.config.limits.quota_bytes).ok(),
        })
        .await?;
    match written {
        Delivery::Stored => {}
        Delivery::KeyUsed => return Err(ephemeral_key_used()),
        Delivery::NonceUsed => return Err(nonce_unknown()),
        Delivery::Full => return Err(mailbox_full(&recipient)),
    }
    tracing::info!(recipient = %recipient, sender = %session.address, bytes = envelope.len(), zero_bits = params.zero_bits, "message stored");
    Ok(Json(MessageSent { message_id }))
}

/// The envelope's algorithm is known and its message key is one issued to this session
/// for this recipient, not the recipient's master key (§8.9).
async fn check_message_key(
    state: &AppState,
    session: &SessionRow,
    recipient: &Address,
    recipient_master: &MasterPublicKey,
    sent: &SentEnvelope,
) -> ApiResult<()> {
    if sent.algorithm != ALGORITHM {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            EnvelopeError::UnknownAlgorithm(sent.algorithm.clone()).to_string(),
        ));
    }
    if is_master_key(&sent.message_public_key, recipient_master) {
        return Err(ApiError::new(
            ErrorCode::MasterKeyRefused,
            "the message is encrypted to the recipient's master key, which is for signing only",
        ));
    }
    let issued =
        state.store.key_was_issued(&session.session_hash, recipient, &sent.message_public_key.to_hex()).await?;
    if !issued {
        return Err(ApiError::new(
            ErrorCode::KeyNotIssued,
            "the message key was not issued to this session for this recipient, or is an ephemeral key already \
             used (ask get_message_key first)",
        ));
    }
    Ok(())
}

/// The envelope as stored: the sender's part with the server's fields (a new message
/// id, the time received, the PoW parameters met).
fn stored_envelope(
    session: &SessionRow,
    recipient: &Address,
    sent: SentEnvelope,
    params: PowParams,
    now: i64,
) -> ApiResult<StoredEnvelope> {
    Ok(StoredEnvelope {
        server: ServerFields {
            recipient: recipient.clone(),
            sender: session.address.clone(),
            sender_public_key: session.public_key,
            received_at: Timestamp::from_unix(now)
                .ok_or_else(|| ApiError::new(ErrorCode::Internal, "the server's clock is out of range"))?,
            pow_params: Some(params),
            message_id: Id32(blake2b_256(Id32::random(&mut OsRng).as_bytes()).0),
            login_token_hash: session.login_token_hash,
            received_via: ReceivedVia::SmimpClient,
            read: false,
            extensions_data: None,
            protocol_version: PROTOCOL_VERSION.into(),
        },
        sent,
    })
}

fn ephemeral_key_used() -> ApiError {
    ApiError::new(
        ErrorCode::KeyNotIssued,
        "the ephemeral message key already carried a message; ask get_message_key again",
    )
}

fn nonce_unknown() -> ApiError {
    ApiError::new(
        ErrorCode::NonceUnknown,
        "the proof of work's nonce was not issued in this session for this recipient and message type, or was already used",
    )
}

async fn check_pow(
    state: &AppState,
    session: &SessionRow,
    recipient: &Address,
    sent: &SentEnvelope,
    field_hash: &crate::smimp::crypto::Hash,
    context: &HashContext<'_>,
) -> ApiResult<PowParams> {
    let solution = sent.proof_of_work.ok_or_else(|| {
        ApiError::new(ErrorCode::PowRequired, "this server requires a proof of work (ask get_pow_params first)")
    })?;
    let zero_bits = state
        .store
        .pow_nonce(&solution.nonce, &session.session_hash, recipient, &sent.message_type)
        .await?
        .ok_or_else(nonce_unknown)?;
    // docs/protocol.md §3.1: the issued difficulty grows with the message's size.
    let params = PowParams { zero_bits: zero_bits_for_size(zero_bits, sent.message.len()), nonce: solution.nonce };
    sent.verify_pow(field_hash, context, &params).map_err(|e| ApiError::new(ErrorCode::PowInvalid, e.to_string()))?;
    Ok(params)
}

fn mailbox_full(recipient: &Address) -> ApiError {
    ApiError::new(ErrorCode::QuotaExceeded, format!("{recipient}'s mailbox is full"))
}

/// The early check, before the work of storing; `deliver` checks again under its lock.
async fn check_quota(state: &AppState, recipient: &Address, size: u64) -> ApiResult<()> {
    let limit = state.config.limits.quota_bytes;
    if limit >= 0 && state.store.quota_used(recipient).await? + size > limit as u64 {
        return Err(mailbox_full(recipient));
    }
    Ok(())
}
