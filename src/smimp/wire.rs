//! The API documents of SMIMP v0.1 (docs/protocol.md §8–§10; spec "Public Data",
//! "Session Management", "Sending A Message", "Mailbox Management", "Account
//! Administration"): the serde type of every request and response body, the path
//! and method of every operation, the hashes only the API uses (login, avatar, list
//! entry, initialisation password) and the error body with its codes.
//!
//! The reference server and the client both speak through these types, so they
//! cannot drift apart. Pure: no I/O, no HTTP crate; methods and statuses are plain
//! values that the callers map onto their HTTP library. Request documents refuse
//! unknown fields (`deny_unknown_fields`); response documents ignore them, so an
//! older client can read a newer server.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::smimp::address::{normalise_domain, Address, AddressError};
use crate::smimp::crypto::{BoxNonce, BoxPublicKey, Hash, MasterPublicKey, Signature};
use crate::smimp::encoding::{base64_bytes, Id32};
use crate::smimp::envelope::{SealedData, SentEnvelope, StoredEnvelope};
use crate::smimp::keys::SignedMessageKey;
use crate::smimp::message::MessageType;
use crate::smimp::pow::{PowParams, PowSolution};
use crate::smimp::profile::ProfileRecord;
use crate::smimp::timestamp::Timestamp;
use crate::smimp::transcript::{Purpose, Transcript};

/// The only protocol version this profile defines; the second segment of every path
/// except `version` (spec "Server Version Request").
pub const VERSION: &str = "0.1";

/// The HTTP header that carries the session id (hex) on every authenticated call
/// (spec "Create Session").
pub const AUTH_HEADER: &str = "SMIMP-Authentication";

/// How long a login token from `GET create_session/{address}` may be signed and
/// posted back, in seconds (docs/protocol.md §9).
pub const LOGIN_TOKEN_LIFETIME_SECS: i64 = 5 * 60;

/// A session's lifetime unless the server is configured otherwise, in seconds
/// (docs/protocol.md §9).
pub const DEFAULT_SESSION_LIFETIME_SECS: i64 = 60 * 60;

// ---------------------------------------------------------------------------
// Hashes that only the API uses (docs/protocol.md §3)
// ---------------------------------------------------------------------------

/// The hash a login signs (`create_session` POST): it binds the address, so a
/// signature made to log in as one user can never log in as another.
// SPEC: the spec signs only the token; binding the address is docs/protocol.md §11.
pub fn create_session_hash(address: &Address, token: &Id32) -> Hash {
    Transcript::new(Purpose::CreateSession).field(address.as_str()).field(token.as_bytes()).hash()
}

/// The hash an avatar's signature covers: the owner's address and the raw image
/// bytes (not their base64), so an avatar cannot be moved to another profile.
pub fn avatar_hash(address: &Address, image: &[u8]) -> Hash {
    Transcript::new(Purpose::Avatar).field(address.as_str()).field(image).hash()
}

/// The hash `initialize_account` carries instead of the password, so the password
/// itself never leaves the client.
pub fn init_password_hash(password: &str) -> Hash {
    Transcript::new(Purpose::InitPassword).field(password).hash()
}

/// What a whitelist or blacklist entry names: one address or a whole domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListTarget {
    Address(Address),
    /// A lowercase DNS name.
    Domain(String),
}

impl ListTarget {
    /// Reads `alice#example.org` as an address and `example.org` as a domain,
    /// normalised, so that the same entry always hashes the same.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        if text.contains('#') {
            Address::parse(text).map(Self::Address)
        } else {
            normalise_domain(text).map(Self::Domain)
        }
    }

    /// The normalised text that is hashed and sealed.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Address(address) => address.as_str(),
            Self::Domain(domain) => domain,
        }
    }

    /// The hash the server stores and matches senders against.
    pub fn hash(&self) -> Hash {
        list_entry_hash(self.as_str())
    }
}

/// The hash of a list entry's normalised text (an address or a lowercase domain):
/// the server matches senders by it without being told the list in the clear.
pub fn list_entry_hash(entry: &str) -> Hash {
    Transcript::new(Purpose::ListEntry).field(entry).hash()
}

// ---------------------------------------------------------------------------
// Operations: method, path, authentication
// ---------------------------------------------------------------------------

/// The HTTP method of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    /// The method's name as HTTP writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// How an operation is authenticated (docs/protocol.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Public: anyone may call it.
    None,
    /// A session from `create_session`, in the `SMIMP-Authentication` header.
    Session,
    /// The account's one-time initialisation password, as a hash in the body.
    Password,
}

/// The API names a server lists in `server_information` (spec "Server Information
/// Request"): one per endpoint, the first path segment after the version.
// SPEC: names cover endpoints, not operations; docs/protocol.md §8.2 and §11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Api {
    Version,
    ServerInformation,
    GetUser,
    UserAvatar,
    CreateSession,
    DestroySession,
    GetMessageKey,
    GetPowParams,
    SendMessage,
    Folders,
    Folder,
    Message,
    MessageMove,
    MessageRead,
    MessageExtensions,
    InitializeAccount,
    NonephemeralKey,
    EphemeralKeys,
    UpdateProfile,
    Whitelist,
    Blacklist,
    Quota,
}

impl Api {
    /// Every API, in the spec's order.
    pub const ALL: [Api; 22] = [
        Api::Version,
        Api::ServerInformation,
        Api::GetUser,
        Api::UserAvatar,
        Api::CreateSession,
        Api::DestroySession,
        Api::GetMessageKey,
        Api::GetPowParams,
        Api::SendMessage,
        Api::Folders,
        Api::Folder,
        Api::Message,
        Api::MessageMove,
        Api::MessageRead,
        Api::MessageExtensions,
        Api::InitializeAccount,
        Api::NonephemeralKey,
        Api::EphemeralKeys,
        Api::UpdateProfile,
        Api::Whitelist,
        Api::Blacklist,
        Api::Quota,
    ];

    /// The name as it appears in paths and in `server_information`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Version => "version",
            Api::ServerInformation => "server_information",
            Api::GetUser => "get_user",
            Api::UserAvatar => "user_avatar",
            Api::CreateSession => "create_session",
            Api::DestroySession => "destroy_session",
            Api::GetMessageKey => "get_message_key",
            Api::GetPowParams => "get_pow_params",
            Api::SendMessage => "send_message",
            Api::Folders => "folders",
            Api::Folder => "folder",
            Api::Message => "message",
            Api::MessageMove => "message_move",
            Api::MessageRead => "message_read",
            Api::MessageExtensions => "message_extensions",
            Api::InitializeAccount => "initialize_account",
            Api::NonephemeralKey => "nonephemeral_key",
            Api::EphemeralKeys => "ephemeral_keys",
            Api::UpdateProfile => "update_profile",
            Api::Whitelist => "whitelist",
            Api::Blacklist => "blacklist",
            Api::Quota => "quota",
        }
    }

    /// The API of a name; `None` for names this profile does not know.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|api| api.as_str() == name)
    }

    /// Whether every compliant server must implement it (spec: "(Required)"). An
    /// endpoint with any required operation counts as required.
    pub fn is_required(self) -> bool {
        !matches!(
            self,
            Api::UserAvatar
                | Api::GetPowParams
                | Api::Folders
                | Api::MessageMove
                | Api::MessageExtensions
                | Api::Whitelist
                | Api::Blacklist
                | Api::Quota
        )
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which `get_user` view is asked for (spec "Get User Information").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserInfoKind {
    /// The most recent master public key only: the cheap check before each send.
    PublicKey,
    /// The newest record.
    MostRecent,
    /// Every record, oldest first: what the first contact verifies.
    History,
}

impl UserInfoKind {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            UserInfoKind::PublicKey => "public_key",
            UserInfoKind::MostRecent => "most_recent",
            UserInfoKind::History => "history",
        }
    }

    /// Reads the path segment.
    pub fn parse(text: &str) -> Option<Self> {
        [UserInfoKind::PublicKey, UserInfoKind::MostRecent, UserInfoKind::History]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Which of the two sender lists an operation is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Whitelist,
    Blacklist,
}

impl ListKind {
    /// The API (and path segment) of this list.
    pub fn api(self) -> Api {
        match self {
            ListKind::Whitelist => Api::Whitelist,
            ListKind::Blacklist => Api::Blacklist,
        }
    }
}

/// One operation of the API with its path parameters: what a client calls and what
/// the server routes. Each variant is one subsection of docs/protocol.md §8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET version` → [`VersionList`].
    Version,
    /// `GET {v}/server_information` → [`ServerInformation`].
    ServerInformation,
    /// `GET {v}/get_user/{address}/{kind}` → [`UserPublicKey`], [`UserMostRecent`] or [`UserHistory`].
    GetUser { address: Address, kind: UserInfoKind },
    /// `GET {v}/user_avatar/{address}` → [`AvatarInfo`].
    GetAvatar { address: Address },
    /// `POST {v}/user_avatar` [`AvatarUpload`] → [`AvatarStored`].
    SetAvatar,
    /// `GET {v}/create_session/{address}` → [`LoginChallenge`].
    GetLoginToken { address: Address },
    /// `POST {v}/create_session/{address}` [`LoginRequest`] → [`SessionCreated`].
    CreateSession { address: Address },
    /// `POST {v}/destroy_session` (empty) → [`SessionEnded`].
    DestroySession,
    /// `POST {v}/get_message_key` [`MessageKeyRequest`] → [`MessageKeyResponse`].
    GetMessageKey,
    /// `GET {v}/get_pow_params/{address}/{message_type}` → [`PowParams`].
    GetPowParams { address: Address, message_type: MessageType },
    /// `POST {v}/send_message/{address}` [`SendMessageRequest`] → [`MessageSent`].
    SendMessage { address: Address },
    /// `GET {v}/folders` or `GET {v}/folders/{message_type}` → [`FolderList`].
    ListFolders { message_type: Option<MessageType> },
    /// `POST {v}/folders` [`Folder`] → [`Folder`].
    CreateFolder,
    /// `POST {v}/folders/{folder_name}` [`Folder`] (its new state) → [`Folder`].
    UpdateFolder { folder_name: FolderName },
    /// Extension: `DELETE {v}/folders/{message_type}/{folder_name}` → [`Deleted`].
    DeleteFolder { message_type: MessageType, folder_name: FolderName },
    /// `GET {v}/folder/{message_type}` or `…/{folder_name}` → [`MessageList`].
    ListMessages { message_type: MessageType, folder_name: Option<FolderName> },
    /// `GET {v}/message/{message_id}/{update_read}` → [`StoredEnvelope`].
    GetMessage { message_id: Id32, update_read: bool },
    /// `DELETE {v}/message/{message_id}` → [`Deleted`].
    DeleteMessage { message_id: Id32 },
    /// `POST {v}/message_move/{message_id}` [`MoveMessageRequest`] → [`Moved`].
    MoveMessage { message_id: Id32 },
    /// `GET {v}/message_read/{message_id}` → [`ReadStatus`].
    GetReadStatus { message_id: Id32 },
    /// `POST {v}/message_read/{message_id}` `true`|`false` → [`ReadStatus`].
    SetReadStatus { message_id: Id32 },
    /// `POST {v}/message_extensions/{message_id}` [`ExtensionsUpdate`] → [`Updated`].
    SetMessageExtensions { message_id: Id32 },
    /// `POST {v}/initialize_account` [`InitializeAccountRequest`] → [`AccountInitialized`].
    InitializeAccount,
    /// `GET {v}/nonephemeral_key` → [`SignedMessageKey`].
    GetNonephemeralKey,
    /// `POST {v}/nonephemeral_key` [`SignedMessageKey`] → [`SignedMessageKey`].
    SetNonephemeralKey,
    /// `GET {v}/ephemeral_keys` → [`EphemeralKeys`].
    ListEphemeralKeys,
    /// `POST {v}/ephemeral_keys` [`EphemeralKeys`] → [`KeyCount`].
    SetEphemeralKeys,
    /// `POST {v}/update_profile` [`ProfileRecord`] → [`ProfileLength`].
    UpdateProfile,
    /// Extension: `GET {v}/whitelist` or `GET {v}/blacklist` → [`ListEntries`].
    ListEntries { list: ListKind },
    /// `POST {v}/whitelist` or `POST {v}/blacklist` [`ListEntry`] → [`Added`].
    AddListEntry { list: ListKind },
    /// `DELETE {v}/whitelist/{hash}` or `DELETE {v}/blacklist/{hash}` → [`Removed`].
    RemoveListEntry { list: ListKind, hash: Hash },
    /// `GET {v}/quota` → [`Quota`].
    GetQuota,
}

impl Route {
    /// The endpoint this operation belongs to.
    pub fn api(&self) -> Api {
        match self {
            Route::Version => Api::Version,
            Route::ServerInformation => Api::ServerInformation,
            Route::GetUser { .. } => Api::GetUser,
            Route::GetAvatar { .. } | Route::SetAvatar => Api::UserAvatar,
            Route::GetLoginToken { .. } | Route::CreateSession { .. } => Api::CreateSession,
            Route::DestroySession => Api::DestroySession,
            Route::GetMessageKey => Api::GetMessageKey,
            Route::GetPowParams { .. } => Api::GetPowParams,
            Route::SendMessage { .. } => Api::SendMessage,
            Route::ListFolders { .. }
            | Route::CreateFolder
            | Route::UpdateFolder { .. }
            | Route::DeleteFolder { .. } => Api::Folders,
            Route::ListMessages { .. } => Api::Folder,
            Route::GetMessage { .. } | Route::DeleteMessage { .. } => Api::Message,
            Route::MoveMessage { .. } => Api::MessageMove,
            Route::GetReadStatus { .. } | Route::SetReadStatus { .. } => Api::MessageRead,
            Route::SetMessageExtensions { .. } => Api::MessageExtensions,
            Route::InitializeAccount => Api::InitializeAccount,
            Route::GetNonephemeralKey | Route::SetNonephemeralKey => Api::NonephemeralKey,
            Route::ListEphemeralKeys | Route::SetEphemeralKeys => Api::EphemeralKeys,
            Route::UpdateProfile => Api::UpdateProfile,
            Route::ListEntries { list } | Route::AddListEntry { list } | Route::RemoveListEntry { list, .. } => {
                list.api()
            }
            Route::GetQuota => Api::Quota,
        }
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        match self {
            Route::Version
            | Route::ServerInformation
            | Route::GetUser { .. }
            | Route::GetAvatar { .. }
            | Route::GetLoginToken { .. }
            | Route::GetPowParams { .. }
            | Route::ListFolders { .. }
            | Route::ListMessages { .. }
            | Route::GetMessage { .. }
            | Route::GetReadStatus { .. }
            | Route::GetNonephemeralKey
            | Route::ListEphemeralKeys
            | Route::ListEntries { .. }
            | Route::GetQuota => Method::Get,
            Route::DeleteFolder { .. } | Route::DeleteMessage { .. } | Route::RemoveListEntry { .. } => Method::Delete,
            Route::SetAvatar
            | Route::CreateSession { .. }
            | Route::DestroySession
            | Route::GetMessageKey
            | Route::SendMessage { .. }
            | Route::CreateFolder
            | Route::UpdateFolder { .. }
            | Route::MoveMessage { .. }
            | Route::SetReadStatus { .. }
            | Route::SetMessageExtensions { .. }
            | Route::InitializeAccount
            | Route::SetNonephemeralKey
            | Route::SetEphemeralKeys
            | Route::UpdateProfile
            | Route::AddListEntry { .. } => Method::Post,
        }
    }

    /// How the caller proves who it is: public look-ups and the login itself need
    /// nothing, `initialize_account` a password, everything else a session.
    pub fn auth(&self) -> Auth {
        match self {
            Route::Version
            | Route::ServerInformation
            | Route::GetUser { .. }
            | Route::GetAvatar { .. }
            | Route::GetLoginToken { .. }
            | Route::CreateSession { .. } => Auth::None,
            Route::InitializeAccount => Auth::Password,
            _ => Auth::Session,
        }
    }

    /// Whether a session of a user from another server may call it (spec "Create
    /// Session": remote users log in to send). Every other session operation is
    /// for the account's owner only.
    pub fn remote_allowed(&self) -> bool {
        matches!(
            self,
            Route::DestroySession | Route::GetMessageKey | Route::GetPowParams { .. } | Route::SendMessage { .. }
        )
    }

    /// Whether the operation is this profile's addition, not the spec's.
    pub fn is_extension(&self) -> bool {
        matches!(self, Route::DeleteFolder { .. } | Route::ListEntries { .. })
    }

    /// The path below the server's base URL, without a leading slash:
    /// `version`, or `{VERSION}/{api}/{parameters…}` with each parameter
    /// percent-encoded (`0.1/get_user/alice%23example.org/history`).
    pub fn path(&self) -> String {
        if let Route::Version = self {
            return Api::Version.as_str().to_string();
        }
        let mut segments: Vec<String> = Vec::with_capacity(4);
        match self {
            Route::GetUser { address, kind } => {
                segments.push(address.to_string());
                segments.push(kind.as_str().to_string());
            }
            Route::GetAvatar { address }
            | Route::GetLoginToken { address }
            | Route::CreateSession { address }
            | Route::SendMessage { address } => segments.push(address.to_string()),
            Route::GetPowParams { address, message_type } => {
                segments.push(address.to_string());
                segments.push(message_type.to_string());
            }
            Route::ListFolders { message_type } => segments.extend(message_type.iter().map(|t| t.to_string())),
            Route::UpdateFolder { folder_name } => segments.push(folder_name.to_string()),
            Route::DeleteFolder { message_type, folder_name } => {
                segments.push(message_type.to_string());
                segments.push(folder_name.to_string());
            }
            Route::ListMessages { message_type, folder_name } => {
                segments.push(message_type.to_string());
                segments.extend(folder_name.iter().map(|n| n.to_string()));
            }
            Route::GetMessage { message_id, update_read } => {
                segments.push(message_id.to_hex());
                segments.push(update_read.to_string());
            }
            Route::DeleteMessage { message_id }
            | Route::MoveMessage { message_id }
            | Route::GetReadStatus { message_id }
            | Route::SetReadStatus { message_id }
            | Route::SetMessageExtensions { message_id } => segments.push(message_id.to_hex()),
            Route::RemoveListEntry { hash, .. } => segments.push(hash.to_hex()),
            Route::Version
            | Route::ServerInformation
            | Route::SetAvatar
            | Route::DestroySession
            | Route::GetMessageKey
            | Route::CreateFolder
            | Route::InitializeAccount
            | Route::GetNonephemeralKey
            | Route::SetNonephemeralKey
            | Route::ListEphemeralKeys
            | Route::SetEphemeralKeys
            | Route::UpdateProfile
            | Route::ListEntries { .. }
            | Route::AddListEntry { .. }
            | Route::GetQuota => {}
        }
        let mut path = format!("{VERSION}/{}", self.api());
        for segment in segments {
            path.push('/');
            path.push_str(&percent_encode_segment(&segment));
        }
        path
    }
}

/// Percent-encodes one path segment: every byte outside RFC 3986's unreserved set
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, so an address's `#` is `%23` and never
/// starts a URL fragment.
pub fn percent_encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Public data
// ---------------------------------------------------------------------------

/// `GET version`: the protocol versions the server speaks, so the client can pick
/// the greatest common one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionList {
    pub versions: Vec<String>,
}

/// `GET {v}/server_information`: the API names the server implements. Kept as text
/// so a client can read a server that lists APIs this profile does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInformation {
    pub apis: Vec<String>,
}

impl ServerInformation {
    /// The document a server implementing exactly `apis` returns.
    pub fn new(apis: impl IntoIterator<Item = Api>) -> Self {
        Self { apis: apis.into_iter().map(|api| api.as_str().to_string()).collect() }
    }

    /// Whether the server lists `api`, so a client can skip optional calls it lacks.
    pub fn implements(&self, api: Api) -> bool {
        self.apis.iter().any(|name| name == api.as_str())
    }
}

/// `GET {v}/get_user/{address}/public_key`: the most recent master key, which a
/// client compares with its pin before every send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPublicKey {
    pub address: Address,
    pub public_key: MasterPublicKey,
}

/// `GET {v}/get_user/{address}/most_recent`: the newest profile record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMostRecent {
    pub address: Address,
    pub record: ProfileRecord,
}

/// `GET {v}/get_user/{address}/history`: every record, oldest first, for the
/// client to verify the whole chain (docs/protocol.md §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserHistory {
    pub address: Address,
    pub history: Vec<ProfileRecord>,
}

/// The image formats an avatar may be (spec "Get User Avatar": JPG or PNG).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AvatarContentType {
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/jpeg")]
    Jpeg,
}

impl AvatarContentType {
    /// The media type, as in `Content-Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            AvatarContentType::Png => "image/png",
            AvatarContentType::Jpeg => "image/jpeg",
        }
    }
}

/// `GET {v}/user_avatar/{address}`: where to fetch the image and the owner's
/// signature over [`avatar_hash`], so a client can refuse an image the owner did
/// not upload and skip the download when the hash is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarInfo {
    /// An `https://` URL; it may be temporary.
    pub url: String,
    pub content_type: AvatarContentType,
    pub hash: Hash,
    pub signature: Signature,
}

/// `POST {v}/user_avatar`: the image and the owner's signature over [`avatar_hash`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvatarUpload {
    pub content_type: AvatarContentType,
    #[serde(with = "base64_bytes")]
    pub image: Vec<u8>,
    pub signature: Signature,
}

/// The answer to an avatar upload: where it is served and the hash the server
/// computed, for the client to compare with what it signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvatarStored {
    pub url: String,
    pub hash: Hash,
}

// ---------------------------------------------------------------------------
// Sessions (docs/protocol.md §9)
// ---------------------------------------------------------------------------

/// `GET {v}/create_session/{address}`: a single-use login token to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginChallenge {
    pub token: Id32,
    pub expires_at: Timestamp,
}

/// `POST {v}/create_session/{address}`: the token back, with the user's signature
/// over [`create_session_hash`] by their current master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub token: Id32,
    pub signature: Signature,
}

/// A successful login: the session id for the `SMIMP-Authentication` header. It is
/// a fresh random value, never the login token (whose hash appears in envelopes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCreated {
    pub session: Id32,
    pub expires_at: Timestamp,
}

/// `POST {v}/destroy_session`: the session is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub ended: bool,
}

// ---------------------------------------------------------------------------
// Sending a message
// ---------------------------------------------------------------------------

/// `POST {v}/get_message_key`: whose key the sender wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageKeyRequest {
    pub address: Address,
}

/// The key to encrypt to, with the recipient's current master key so the sender
/// can check the key's signature against its pin in the same round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageKeyResponse {
    pub address: Address,
    pub public_key: MasterPublicKey,
    pub message_key: SignedMessageKey,
    /// True when the ephemeral keys ran out and this is the standing fallback key,
    /// so a cautious sender can wait and ask again.
    pub nonephemeral: bool,
}

/// The strict reading of a posted envelope: same fields as [`SentEnvelope`], but an
/// unknown field is refused. (The stored envelope flattens `SentEnvelope`, so the
/// type itself must stay lenient.) Declared through serde's `remote`, so the
/// compiler checks it against `SentEnvelope` field by field.
#[derive(Deserialize)]
#[serde(remote = "SentEnvelope", deny_unknown_fields)]
struct StrictSentEnvelope {
    #[serde(with = "base64_bytes")]
    message: Vec<u8>,
    message_type: MessageType,
    algorithm: String,
    message_public_key: BoxPublicKey,
    nonce: BoxNonce,
    proof_of_work: Option<PowSolution>,
    message_hash: Hash,
    message_signature: Signature,
}

/// `POST {v}/send_message/{address}`: the envelope exactly as docs/protocol.md §6
/// describes it, read strictly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SendMessageRequest(#[serde(deserialize_with = "StrictSentEnvelope::deserialize")] pub SentEnvelope);

/// `GET {v}/get_pow_params/{address}/{message_type}` returns the PoW parameters
/// themselves: the difficulty and a nonce single-use within this session.
pub type PowParamsResponse = PowParams;

/// The id the recipient's server gave the stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: Id32,
}

// ---------------------------------------------------------------------------
// Mailbox management
// ---------------------------------------------------------------------------

/// Longest folder name accepted.
pub const MAX_FOLDER_NAME_LEN: usize = 64;

/// Why a folder name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FolderNameError {
    #[error("the folder name is empty")]
    Empty,
    #[error("the folder name is longer than {MAX_FOLDER_NAME_LEN} characters")]
    TooLong,
    #[error("the folder name may contain only lowercase letters, digits and '-', not {0:?}")]
    Character(char),
}

/// A folder's name as used in paths: `[a-z0-9-]{1,64}` (spec "Create Folder":
/// special characters removed, lowercase). Unique within a message type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderName(String);

impl FolderName {
    /// Validates a name; uppercase is refused, not folded, so two clients never
    /// disagree about which folder a name means.
    pub fn parse(text: &str) -> Result<Self, FolderNameError> {
        if text.is_empty() {
            return Err(FolderNameError::Empty);
        }
        if let Some(bad) = text.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
            return Err(FolderNameError::Character(bad));
        }
        if text.len() > MAX_FOLDER_NAME_LEN {
            return Err(FolderNameError::TooLong);
        }
        Ok(Self(text.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FolderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for FolderName {
    type Err = FolderNameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for FolderName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FolderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A folder. The root folder of each message type is implicit and unnamed
/// (`parent: null` means "in the root"); the gateway shows the `email` root as INBOX.
/// The same document creates a folder, renames or moves one (its new state), and
/// is returned by both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Folder {
    pub display_name: String,
    pub folder_name: FolderName,
    pub parent: Option<FolderName>,
    pub message_type: MessageType,
}

/// `POST {v}/folders/{folder_name}`: the folder's new display name, name and parent;
/// `message_type` says which folder of that name is meant.
pub type UpdateFolderRequest = Folder;

/// `GET {v}/folders[/{message_type}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderList {
    pub folders: Vec<Folder>,
}

/// One line of a folder listing: enough to show a message list without fetching
/// any envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSummary {
    pub message_id: Id32,
    pub received_at: Timestamp,
    pub read: bool,
    pub sender: Address,
    /// The stored envelope's size in bytes.
    pub size: u64,
}

/// `GET {v}/folder/{message_type}[/{folder_name}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageList {
    pub messages: Vec<MessageSummary>,
}

/// `GET {v}/message/{message_id}/{update_read}` returns the stored envelope itself.
pub type GetMessageResponse = StoredEnvelope;

/// `POST {v}/message_move/{message_id}`: the destination; `null` is the root folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveMessageRequest {
    pub folder_name: Option<FolderName>,
}

/// `GET` and `POST {v}/message_read/{message_id}`: the read flag after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStatus {
    pub read: bool,
}

/// `POST {v}/message_read/{message_id}`: the body is the bare JSON literal `true` or
/// `false`, as the spec words it ("POST either true or false").
// SPEC: docs/protocol.md §8.19 and §11.
pub type SetReadRequest = bool;

/// `POST {v}/message_extensions/{message_id}`: the replacement sealed document, or
/// `null` to clear it.
pub type ExtensionsUpdate = Option<SealedData>;

// ---------------------------------------------------------------------------
// Account administration
// ---------------------------------------------------------------------------

/// `POST {v}/initialize_account`: everything an account needs before it can be
/// found and receive mail, authenticated by the hash of the creation password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitializeAccountRequest {
    pub address: Address,
    /// [`init_password_hash`] of the password the operator set at account creation.
    pub password_hash: Hash,
    /// The first record of the history, signed by its own key.
    pub record: ProfileRecord,
    /// The spec's "public encryption key" and "non-ephemeral key" (one key here).
    // SPEC: read as one key, docs/protocol.md §8.21 and §11.
    pub nonephemeral_key: SignedMessageKey,
    pub ephemeral_keys: Option<Vec<SignedMessageKey>>,
}

/// The account is initialised: its address and master key as the server stored them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInitialized {
    pub address: Address,
    pub public_key: MasterPublicKey,
}

/// `GET {v}/ephemeral_keys` (the unissued keys) and the body of `POST`, which
/// replaces every unissued key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EphemeralKeys {
    pub keys: Vec<SignedMessageKey>,
}

/// How many unissued ephemeral keys the server now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub count: u64,
}

/// `POST {v}/update_profile` takes the next [`ProfileRecord`] and answers with the
/// history's new length, so the client can move its own pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileLength {
    pub length: u64,
}

/// A whitelist or blacklist entry: the hash the server matches senders by and the
/// sealed [`ListEntryContent`] only the owner can read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntry {
    /// [`list_entry_hash`] of the entry's normalised text.
    pub hash: Hash,
    pub entry: SealedData,
}

/// The plaintext inside a list entry's `entry` (spec: "the address or domain, and
/// a note"); the server never sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEntryContent {
    /// The normalised address or lowercase domain.
    pub entry: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Extension: `GET {v}/whitelist` or `GET {v}/blacklist`, so a client can show the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntries {
    pub entries: Vec<ListEntry>,
}

/// `GET {v}/quota`: bytes used by stored messages, and bytes available (-1 when
/// unlimited, as the spec asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub used: u64,
    pub available: i64,
}

impl Quota {
    /// The wire value of "unlimited".
    pub const UNLIMITED: i64 = -1;

    /// The space available, or `None` when unlimited (any negative value).
    pub fn available_bytes(&self) -> Option<u64> {
        u64::try_from(self.available).ok()
    }
}

// ---------------------------------------------------------------------------
// One-field acknowledgements
// ---------------------------------------------------------------------------

/// `DELETE {v}/message/{id}` and the folder-delete extension: `{"deleted": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

/// `POST {v}/message_move/{id}`: `{"moved": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub moved: bool,
}

/// `POST {v}/message_extensions/{id}`: `{"updated": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Updated {
    pub updated: bool,
}

/// `POST {v}/whitelist` and `POST {v}/blacklist`: `{"added": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Added {
    pub added: bool,
}

/// `DELETE {v}/whitelist/{hash}` and `DELETE {v}/blacklist/{hash}`: `{"removed": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: bool,
}

// ---------------------------------------------------------------------------
// Errors (docs/protocol.md §10)
// ---------------------------------------------------------------------------

/// Why a call failed: the `code` of every error body, each with one HTTP status.
/// A client acts on the code; the message is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body or a path parameter is malformed: not JSON, an unknown or missing
    /// field, bad hex or base64, a bad folder name or message type.
    BadRequest,
    /// An address in the path or body is not a valid SMIMP address.
    InvalidAddress,
    /// A hash or signature inside the request does not verify (envelope, message
    /// key, profile record, avatar).
    InvalidSignature,
    /// A message key is the owner's master key (spec: must be rejected).
    MasterKeyRefused,
    /// No `SMIMP-Authentication` header, or it names no session.
    NotAuthenticated,
    /// The session expired or was destroyed.
    SessionExpired,
    /// The login or initialisation proof was refused: the token is unknown, used or
    /// expired, the signature is not by the current master key, or the password
    /// hash is wrong.
    LoginFailed,
    /// Authenticated, but this session may not do this (for example a remote user
    /// reading a mailbox).
    Forbidden,
    /// The proof of work is missing although the server asked for one.
    PowRequired,
    /// The proof of work does not verify or has too few zero bits.
    PowInvalid,
    /// The PoW nonce was not issued in this session for this recipient and type,
    /// or was already used.
    NonceUnknown,
    /// The message is encrypted to a key this server did not issue to this session
    /// for this recipient, or to an ephemeral key already used.
    KeyNotIssued,
    /// The recipient does not accept messages from this sender.
    Blacklisted,
    /// No such user, message, folder or list entry, or no such path.
    NotFound,
    /// The version segment of the path names a version the server does not speak.
    UnsupportedVersion,
    /// The path exists but not with this method.
    MethodNotAllowed,
    /// The request took longer than the server allows; nothing was changed by it
    /// unless it completed (a retry is safe for every call).
    RequestTimeout,
    /// `initialize_account` on an account that is already initialised.
    AlreadyInitialized,
    /// The request clashes with the current state: a folder name in use, a folder
    /// that is not empty, a folder moved under itself, a list entry already present.
    Conflict,
    /// A profile record is not the next record of the chain.
    ChainBroken,
    /// The body, image or key list is larger than the server accepts.
    PayloadTooLarge,
    /// Storing the message would exceed the recipient's quota.
    QuotaExceeded,
    /// Too many requests; try later.
    RateLimited,
    /// The remote user's home server could not be reached or gave no valid key.
    RemoteLookupFailed,
    /// The server failed; nothing was changed.
    Internal,
}

impl ErrorCode {
    /// Every code, in the order of docs/protocol.md §10 (by status).
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidAddress,
        ErrorCode::InvalidSignature,
        ErrorCode::MasterKeyRefused,
        ErrorCode::NotAuthenticated,
        ErrorCode::SessionExpired,
        ErrorCode::LoginFailed,
        ErrorCode::Forbidden,
        ErrorCode::PowRequired,
        ErrorCode::PowInvalid,
        ErrorCode::NonceUnknown,
        ErrorCode::KeyNotIssued,
        ErrorCode::Blacklisted,
        ErrorCode::NotFound,
        ErrorCode::UnsupportedVersion,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::AlreadyInitialized,
        ErrorCode::Conflict,
        ErrorCode::ChainBroken,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::RemoteLookupFailed,
        ErrorCode::QuotaExceeded,
    ];

    /// The wire name (equal to the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidAddress => "invalid_address",
            ErrorCode::InvalidSignature => "invalid_signature",
            ErrorCode::MasterKeyRefused => "master_key_refused",
            ErrorCode::NotAuthenticated => "not_authenticated",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::LoginFailed => "login_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::PowRequired => "pow_required",
            ErrorCode::PowInvalid => "pow_invalid",
            ErrorCode::NonceUnknown => "nonce_unknown",
            ErrorCode::KeyNotIssued => "key_not_issued",
            ErrorCode::Blacklisted => "blacklisted",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::AlreadyInitialized => "already_initialized",
            ErrorCode::Conflict => "conflict",
            ErrorCode::ChainBroken => "chain_broken",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RemoteLookupFailed => "remote_lookup_failed",
            ErrorCode::Internal => "internal",
        }
    }

    /// The code of a wire name; `None` for a code this profile does not define (a
    /// client then falls back on the HTTP status).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// The HTTP status the code is always sent with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::InvalidAddress
            | ErrorCode::InvalidSignature
            | ErrorCode::MasterKeyRefused => 400,
            ErrorCode::NotAuthenticated | ErrorCode::SessionExpired => 401,
            ErrorCode::LoginFailed
            | ErrorCode::Forbidden
            | ErrorCode::PowRequired
            | ErrorCode::PowInvalid
            | ErrorCode::NonceUnknown
            | ErrorCode::KeyNotIssued
            | ErrorCode::Blacklisted => 403,
            ErrorCode::NotFound | ErrorCode::UnsupportedVersion => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::AlreadyInitialized | ErrorCode::Conflict | ErrorCode::ChainBroken => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::RemoteLookupFailed => 502,
            ErrorCode::QuotaExceeded => 507,
        }
    }

    /// Whether the same call may succeed later without the caller changing it
    /// (the gateway's outbound queue retries these and bounces the rest).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::RemoteLookupFailed | ErrorCode::Internal | ErrorCode::RequestTimeout
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every non-2xx response: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The code a program acts on and the plain words a person reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    /// An error body for `code` with a plain-words `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code, message: message.into() } }
    }

    /// The HTTP status to send it with.
    pub fn status(&self) -> u16 {
        self.error.code.status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smimp::crypto::MasterKey;
    use crate::smimp::envelope::{ReceivedVia, ServerFields, PROTOCOL_VERSION};
    use crate::smimp::keys::KeyKind;
    use crate::smimp::profile::ProfileFields;
    use serde::de::DeserializeOwned;
    use serde_json::{json, Value};

    fn alice() -> Address {
        Address::parse("alice#example.org").unwrap()
    }

    fn bob() -> Address {
        Address::parse("bob#example.org").unwrap()
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn master() -> MasterKey {
        MasterKey::from_seed(&[1; 32])
    }

    fn record() -> ProfileRecord {
        ProfileRecord::initial(&master(), &alice(), ProfileFields::default(), at("2026-01-02 03:04:05"))
    }

    fn message_key(kind: KeyKind) -> SignedMessageKey {
        SignedMessageKey::sign(&master(), &alice(), kind, BoxPublicKey([2; 32]))
    }

    fn sealed() -> SealedData {
        SealedData { nonce: BoxNonce([3; 24]), ciphertext: vec![4; 20] }
    }

    fn folder(name: &str, parent: Option<&str>) -> Folder {
        Folder {
            display_name: format!("Folder {name}"),
            folder_name: FolderName::parse(name).unwrap(),
            parent: parent.map(|p| FolderName::parse(p).unwrap()),
            message_type: MessageType::Email,
        }
    }

    fn sent() -> SentEnvelope {
        SentEnvelope {
            message: vec![5; 40],
            message_type: MessageType::ShortMessage,
            algorithm: "curve25519xsalsa20poly1305".into(),
            message_public_key: BoxPublicKey([6; 32]),
            nonce: BoxNonce([7; 24]),
            proof_of_work: Some(PowSolution { hash: Hash([0; 32]), value: Id32([8; 32]), nonce: Id32([9; 32]) }),
            message_hash: Hash([10; 32]),
            message_signature: Signature([11; 64]),
        }
    }

    fn stored() -> StoredEnvelope {
        StoredEnvelope {
            sent: sent(),
            server: ServerFields {
                recipient: bob(),
                sender: alice(),
                sender_public_key: master().public(),
                received_at: at("2026-01-02 03:04:06"),
                pow_params: Some(PowParams { zero_bits: 20, nonce: Id32([9; 32]) }),
                message_id: Id32([12; 32]),
                login_token_hash: Hash([13; 32]),
                received_via: ReceivedVia::SmimpClient,
                read: false,
                extensions_data: Some(sealed()),
                protocol_version: PROTOCOL_VERSION.into(),
            },
        }
    }

    /// Serialises, reads back, checks equality and returns the JSON for field checks.
    fn round_trip<T: Serialize + DeserializeOwned + PartialEq + fmt::Debug>(value: &T) -> Value {
        let text = serde_json::to_string(value).unwrap();
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, value, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    fn keys_of(value: &Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn every_document_round_trips() {
        round_trip(&VersionList { versions: vec![VERSION.into()] });
        round_trip(&ServerInformation::new(Api::ALL));
        round_trip(&UserPublicKey { address: alice(), public_key: master().public() });
        round_trip(&UserMostRecent { address: alice(), record: record() });
        round_trip(&UserHistory { address: alice(), history: vec![record()] });
        let hash = avatar_hash(&alice(), b"png bytes");
        round_trip(&AvatarInfo {
            url: "https://smimp.example.org/avatars/a.png".into(),
            content_type: AvatarContentType::Png,
            hash,
            signature: master().sign(&hash),
        });
        round_trip(&AvatarUpload {
            content_type: AvatarContentType::Jpeg,
            image: b"jpeg bytes".to_vec(),
            signature: master().sign(&hash),
        });
        round_trip(&AvatarStored { url: "https://smimp.example.org/avatars/a.png".into(), hash });
        round_trip(&LoginChallenge { token: Id32([1; 32]), expires_at: at("2026-01-02 03:09:05") });
        round_trip(&LoginRequest { token: Id32([1; 32]), signature: Signature([2; 64]) });
        round_trip(&SessionCreated { session: Id32([3; 32]), expires_at: at("2026-01-02 04:04:05") });
        round_trip(&SessionEnded { ended: true });
        round_trip(&MessageKeyRequest { address: bob() });
        round_trip(&MessageKeyResponse {
            address: alice(),
            public_key: master().public(),
            message_key: message_key(KeyKind::Ephemeral),
            nonephemeral: false,
        });
        round_trip(&PowParams { zero_bits: 18, nonce: Id32([4; 32]) });
        round_trip(&SendMessageRequest(sent()));
        round_trip(&SendMessageRequest(SentEnvelope { proof_of_work: None, ..sent() }));
        round_trip(&MessageSent { message_id: Id32([5; 32]) });
        round_trip(&FolderList { folders: vec![folder("work", None), folder("old-work", Some("work"))] });
        round_trip(&folder("work", None));
        round_trip(&MessageList {
            messages: vec![MessageSummary {
                message_id: Id32([6; 32]),
                received_at: at("2026-01-02 03:04:06"),
                read: true,
                sender: bob(),
                size: 1234,
            }],
        });
        round_trip(&stored());
        round_trip(&MoveMessageRequest { folder_name: None });
        round_trip(&MoveMessageRequest { folder_name: Some(FolderName::parse("work").unwrap()) });
        round_trip(&ReadStatus { read: true });
        round_trip::<SetReadRequest>(&false);
        round_trip::<ExtensionsUpdate>(&Some(sealed()));
        round_trip::<ExtensionsUpdate>(&None);
        round_trip(&InitializeAccountRequest {
            address: alice(),
            password_hash: init_password_hash("correct horse"),
            record: record(),
            nonephemeral_key: message_key(KeyKind::Nonephemeral),
            ephemeral_keys: Some(vec![message_key(KeyKind::Ephemeral)]),
        });
        round_trip(&AccountInitialized { address: alice(), public_key: master().public() });
        round_trip(&message_key(KeyKind::Nonephemeral));
        round_trip(&EphemeralKeys { keys: vec![message_key(KeyKind::Ephemeral)] });
        round_trip(&KeyCount { count: 100 });
        round_trip(&record());
        round_trip(&ProfileLength { length: 2 });
        let entry = ListEntry { hash: ListTarget::parse("example.org").unwrap().hash(), entry: sealed() };
        round_trip(&entry);
        round_trip(&ListEntryContent { entry: "example.org".into(), note: Some("newsletters".into()) });
        round_trip(&ListEntries { entries: vec![entry] });
        round_trip(&Quota { used: 10, available: Quota::UNLIMITED });
        round_trip(&Deleted { deleted: true });
        round_trip(&Moved { moved: true });
        round_trip(&Updated { updated: true });
        round_trip(&Added { added: true });
        round_trip(&Removed { removed: true });
        round_trip(&ErrorBody::new(ErrorCode::PowInvalid, "the proof of work has 3 zero bits, 20 are required"));
    }

    // These assertions pin the wire names: renaming a field breaks them.
    #[test]
    fn field_names_are_the_profile_s() {
        let v = round_trip(&MessageKeyResponse {
            address: alice(),
            public_key: master().public(),
            message_key: message_key(KeyKind::Ephemeral),
            nonephemeral: true,
        });
        assert_eq!(keys_of(&v), ["address", "message_key", "nonephemeral", "public_key"]);
        assert_eq!(keys_of(&v["message_key"]), ["kind", "public_key", "signature"]);
        assert_eq!(v["address"], "alice#example.org");
        assert_eq!(v["public_key"], master().public().to_hex());

        let v = round_trip(&InitializeAccountRequest {
            address: alice(),
            password_hash: init_password_hash("pw"),
            record: record(),
            nonephemeral_key: message_key(KeyKind::Nonephemeral),
            ephemeral_keys: None,
        });
        assert_eq!(keys_of(&v), ["address", "ephemeral_keys", "nonephemeral_key", "password_hash", "record"]);
        assert_eq!(v["ephemeral_keys"], Value::Null);
        assert_eq!(keys_of(&v["record"]), ["data", "signed_hash"]);

        let v = round_trip(&folder("archive-2025", Some("work")));
        assert_eq!(
            v,
            json!({"display_name": "Folder archive-2025", "folder_name": "archive-2025", "parent": "work",
                   "message_type": "email"})
        );

        let v = round_trip(&MessageSummary {
            message_id: Id32([6; 32]),
            received_at: at("2026-01-02 03:04:06"),
            read: false,
            sender: bob(),
            size: 77,
        });
        assert_eq!(
            v,
            json!({"message_id": "06".repeat(32), "received_at": "2026-01-02 03:04:06", "read": false,
                   "sender": "bob#example.org", "size": 77})
        );

        let v = round_trip(&SessionCreated { session: Id32([3; 32]), expires_at: at("2026-01-02 04:04:05") });
        assert_eq!(v, json!({"session": "03".repeat(32), "expires_at": "2026-01-02 04:04:05"}));

        let v = round_trip(&AvatarUpload {
            content_type: AvatarContentType::Png,
            image: b"abcd".to_vec(),
            signature: Signature([1; 64]),
        });
        assert_eq!(v, json!({"content_type": "image/png", "image": "YWJjZA==", "signature": "01".repeat(64)}));

        let v = round_trip(&ErrorBody::new(ErrorCode::NotFound, "no such user"));
        assert_eq!(v, json!({"error": {"code": "not_found", "message": "no such user"}}));

        let v = round_trip(&Quota { used: 5, available: -1 });
        assert_eq!(v, json!({"used": 5, "available": -1}));

        let v = round_trip(&SendMessageRequest(sent()));
        assert_eq!(
            keys_of(&v),
            [
                "algorithm",
                "message",
                "message_hash",
                "message_public_key",
                "message_signature",
                "message_type",
                "nonce",
                "proof_of_work"
            ]
        );
        let v = round_trip(&ListEntry { hash: Hash([1; 32]), entry: sealed() });
        assert_eq!(keys_of(&v), ["entry", "hash"]);
        assert_eq!(keys_of(&v["entry"]), ["ciphertext", "nonce"]);
    }

    #[test]
    fn requests_refuse_unknown_fields_and_responses_ignore_them() {
        let mut login =
            serde_json::to_value(LoginRequest { token: Id32([1; 32]), signature: Signature([2; 64]) }).unwrap();
        login["extra"] = json!(1);
        assert!(serde_json::from_value::<LoginRequest>(login).is_err());

        let mut envelope = serde_json::to_value(SendMessageRequest(sent())).unwrap();
        envelope["sender"] = json!("mallory#example.org");
        assert!(serde_json::from_value::<SendMessageRequest>(envelope.clone()).is_err());
        // The lenient type alone would have accepted it: the strictness is the wrapper's.
        assert!(serde_json::from_value::<SentEnvelope>(envelope).is_ok());

        let mut init = serde_json::to_value(InitializeAccountRequest {
            address: alice(),
            password_hash: init_password_hash("pw"),
            record: record(),
            nonephemeral_key: message_key(KeyKind::Nonephemeral),
            ephemeral_keys: None,
        })
        .unwrap();
        init["password"] = json!("pw");
        assert!(serde_json::from_value::<InitializeAccountRequest>(init).is_err());
        assert!(serde_json::from_value::<MoveMessageRequest>(json!({"folder_name": null, "x": 1})).is_err());
        assert!(serde_json::from_value::<MessageKeyRequest>(json!({"address": "bob#example.org", "x": 1})).is_err());

        let info: ServerInformation =
            serde_json::from_value(json!({"apis": ["version", "future_api"], "motd": "hi"})).unwrap();
        assert!(info.implements(Api::Version));
        assert!(!info.implements(Api::Quota));
        let mut stored = serde_json::to_value(stored()).unwrap();
        stored["future_field"] = json!(true);
        assert!(serde_json::from_value::<StoredEnvelope>(stored).is_ok());
    }

    #[test]
    fn bodies_that_are_json_literals() {
        assert!(serde_json::from_str::<SetReadRequest>("true").unwrap());
        assert!(!serde_json::from_str::<SetReadRequest>("false").unwrap());
        assert!(serde_json::from_str::<SetReadRequest>("\"true\"").is_err());
        assert_eq!(serde_json::from_str::<ExtensionsUpdate>("null").unwrap(), None);
    }

    #[test]
    fn folder_names_are_lowercase_path_safe() {
        assert_eq!(FolderName::parse("work-2025").unwrap().as_str(), "work-2025");
        assert_eq!(FolderName::parse(""), Err(FolderNameError::Empty));
        assert_eq!(FolderName::parse("Work"), Err(FolderNameError::Character('W')));
        assert_eq!(FolderName::parse("a b"), Err(FolderNameError::Character(' ')));
        assert_eq!(FolderName::parse("a/b"), Err(FolderNameError::Character('/')));
        assert_eq!(FolderName::parse(&"a".repeat(65)), Err(FolderNameError::TooLong));
        assert!(serde_json::from_value::<Folder>(
            json!({"display_name": "W", "folder_name": "W", "parent": null, "message_type": "email"})
        )
        .is_err());
    }

    #[test]
    fn paths_are_versioned_and_percent_encoded() {
        let id = Id32([0xab; 32]);
        let cases = [
            (Route::Version, "version"),
            (Route::ServerInformation, "0.1/server_information"),
            (
                Route::GetUser { address: alice(), kind: UserInfoKind::History },
                "0.1/get_user/alice%23example.org/history",
            ),
            (Route::GetAvatar { address: alice() }, "0.1/user_avatar/alice%23example.org"),
            (Route::SetAvatar, "0.1/user_avatar"),
            (Route::GetLoginToken { address: alice() }, "0.1/create_session/alice%23example.org"),
            (Route::CreateSession { address: alice() }, "0.1/create_session/alice%23example.org"),
            (
                Route::GetPowParams { address: bob(), message_type: MessageType::ShortMessage },
                "0.1/get_pow_params/bob%23example.org/short-message",
            ),
            (Route::SendMessage { address: bob() }, "0.1/send_message/bob%23example.org"),
            (Route::ListFolders { message_type: None }, "0.1/folders"),
            (Route::ListFolders { message_type: Some(MessageType::Email) }, "0.1/folders/email"),
            (Route::UpdateFolder { folder_name: FolderName::parse("work").unwrap() }, "0.1/folders/work"),
            (
                Route::DeleteFolder { message_type: MessageType::Email, folder_name: FolderName::parse("w").unwrap() },
                "0.1/folders/email/w",
            ),
            (Route::ListMessages { message_type: MessageType::Email, folder_name: None }, "0.1/folder/email"),
            (Route::GetMessage { message_id: id, update_read: false }, &format!("0.1/message/{id}/false")),
            (Route::SetReadStatus { message_id: id }, &format!("0.1/message_read/{id}")),
            (
                Route::RemoveListEntry { list: ListKind::Blacklist, hash: Hash([1; 32]) },
                &format!("0.1/blacklist/{}", "01".repeat(32)),
            ),
            (Route::GetQuota, "0.1/quota"),
        ];
        for (route, path) in cases {
            assert_eq!(route.path(), path, "{route:?}");
            assert!(route.path().starts_with(if route == Route::Version { "version" } else { "0.1/" }));
        }
        assert_eq!(percent_encode_segment("a#b c/é"), "a%23b%20c%2F%C3%A9");
    }

    #[test]
    fn authentication_follows_the_spec() {
        let public = [
            Route::Version,
            Route::ServerInformation,
            Route::GetUser { address: alice(), kind: UserInfoKind::PublicKey },
            Route::GetAvatar { address: alice() },
            Route::GetLoginToken { address: alice() },
            Route::CreateSession { address: alice() },
        ];
        assert!(public.iter().all(|r| r.auth() == Auth::None));
        assert_eq!(Route::InitializeAccount.auth(), Auth::Password);
        for route in [Route::SetAvatar, Route::DestroySession, Route::GetMessageKey, Route::GetQuota] {
            assert_eq!(route.auth(), Auth::Session, "{route:?}");
        }
        assert!(Route::SendMessage { address: bob() }.remote_allowed());
        assert!(!Route::ListEphemeralKeys.remote_allowed());
        assert_eq!(Route::GetAvatar { address: alice() }.method(), Method::Get);
        assert_eq!(Route::SetAvatar.method(), Method::Post);
        assert_eq!(Route::DeleteMessage { message_id: Id32([0; 32]) }.method(), Method::Delete);
        assert!(Route::ListEntries { list: ListKind::Whitelist }.is_extension());
        assert!(!Route::AddListEntry { list: ListKind::Whitelist }.is_extension());
    }

    #[test]
    fn api_names_are_unique_and_parse_back() {
        let names: std::collections::HashSet<_> = Api::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), Api::ALL.len());
        for api in Api::ALL {
            assert_eq!(Api::parse(api.as_str()), Some(api));
        }
        assert_eq!(Api::parse("get_user_avatar"), None);
        assert!(Api::SendMessage.is_required());
        assert!(!Api::Quota.is_required());
        for kind in [UserInfoKind::PublicKey, UserInfoKind::MostRecent, UserInfoKind::History] {
            assert_eq!(UserInfoKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn error_codes_are_coherent() {
        let names: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str(), "{code:?}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!((400..600).contains(&code.status()), "{code:?}");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        let expected = [
            (ErrorCode::BadRequest, 400),
            (ErrorCode::NotAuthenticated, 401),
            (ErrorCode::SessionExpired, 401),
            (ErrorCode::LoginFailed, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::AlreadyInitialized, 409),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::Internal, 500),
            (ErrorCode::QuotaExceeded, 507),
        ];
        for (code, status) in expected {
            assert_eq!(code.status(), status, "{code:?}");
        }
        assert!(ErrorCode::ALL.windows(2).all(|w| w[0].status() <= w[1].status()), "ALL is ordered by status");
        assert_eq!(ErrorBody::new(ErrorCode::ChainBroken, "x").status(), 409);
        assert_eq!(ErrorCode::parse("teapot"), None);
    }

    #[test]
    fn list_targets_normalise_before_hashing() {
        let a = ListTarget::parse("Alice#Example.org").unwrap();
        assert_eq!(a, ListTarget::Address(alice()));
        let d = ListTarget::parse("Example.ORG.").unwrap();
        assert_eq!(d, ListTarget::Domain("example.org".into()));
        assert_eq!(d.hash(), list_entry_hash("example.org"));
        assert_ne!(a.hash(), d.hash());
        assert!(ListTarget::parse("first.last#example.org").is_err());
    }

    /// The API-only hashes agree with the transcripts libsodium computed.
    #[test]
    fn api_hashes_match_the_libsodium_vectors() {
        let doc: Value = serde_json::from_str(include_str!("../../fixtures/vectors/libsodium.json")).unwrap();
        let mut checked = 0;
        for t in doc["transcripts"].as_array().unwrap() {
            let fields: Vec<Vec<u8>> =
                t["fields"].as_array().unwrap().iter().map(|f| hex::decode(f.as_str().unwrap()).unwrap()).collect();
            let text = |i: usize| String::from_utf8(fields[i].clone()).unwrap();
            let computed = match t["label"].as_str().unwrap() {
                "SMIMP-v0.1/create-session" => create_session_hash(
                    &Address::parse(&text(0)).unwrap(),
                    &Id32(fields[1].clone().try_into().unwrap()),
                ),
                "SMIMP-v0.1/avatar" => avatar_hash(&Address::parse(&text(0)).unwrap(), &fields[1]),
                "SMIMP-v0.1/init-password" => init_password_hash(&text(0)),
                "SMIMP-v0.1/list-entry" => list_entry_hash(&text(0)),
                _ => continue,
            };
            assert_eq!(computed.to_hex(), t["hash"].as_str().unwrap(), "{}", t["label"]);
            checked += 1;
        }
        assert!(checked >= 4, "only {checked} vectors checked");
    }
}
