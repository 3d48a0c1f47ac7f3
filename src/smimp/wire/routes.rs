//! The one route table of SMIMP v0.1 (docs/protocol.md §8): every operation's
//! method, path template, authentication, API group and body types, declared once
//! in [`table`], so the client that builds paths and the server that routes them
//! read the same line and cannot drift apart. [`Route`] is what a caller names (an
//! operation with its path parameters); its one `match` picks the table entry and
//! the parameter values, and everything else about it is read from the entry.
//!
//! Pure: templates are plain text (`{v}` for the protocol version, `{name}` for a
//! parameter); the server turns them into its router's patterns.

use std::fmt;

use super::{
    AccountInitialized, Added, AvatarInfo, AvatarStored, AvatarUpload, ChangeList, Decided, Deleted, Denial,
    DeviceChallenge, DeviceRequest, DeviceRequested, DeviceShares, DevicesSeen, EnvelopePage, EphemeralKeys,
    ExtensionsUpdate, Folder, FolderList, FolderName, GetMessageResponse, InitializeAccountRequest, KeyCount,
    ListEntries, ListEntry, ListKind, LoginChallenge, LoginRequest, MessageKeyRequest, MessageKeyResponse, MessageList,
    MessageSent, MoveMessageRequest, Moved, PendingRequests, Position, PowParamsResponse, ProfileLength, Quota,
    ReadStatus, Removed, RequestStatus, SendMessageRequest, ServerInformation, SessionCreated, SessionEnded,
    SetReadRequest, UpdateFolderRequest, Updated, UserHistory, UserInfoKind, UserMostRecent, UserPublicKey,
    VersionList, VERSION,
};
use crate::smimp::address::Address;
use crate::smimp::crypto::{BoxPublicKey, Hash};
use crate::smimp::device::Sealed;
use crate::smimp::encoding::Id32;
use crate::smimp::keys::SignedMessageKey;
use crate::smimp::message::MessageType;
use crate::smimp::profile::ProfileRecord;

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
    /// Extension: a folder's envelopes by the page (docs/protocol.md §8.30).
    XEnvelopes,
    /// Extension: the per-mailbox change sequence (docs/protocol.md §8.29).
    XChanges,
    /// Extension (docs/protocol.md §12): device enrollment and key shares.
    XDevices,
}

impl Api {
    /// Every API, in the spec's order.
    pub const ALL: [Api; 25] = [
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
        Api::XEnvelopes,
        Api::XChanges,
        Api::XDevices,
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
            Api::XEnvelopes => "x-envelopes",
            Api::XChanges => "x-changes",
            Api::XDevices => "x-devices",
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
                | Api::XEnvelopes
                | Api::XChanges
                | Api::XDevices
        )
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

/// The placeholder a path template holds where the protocol version goes.
const VERSION_SLOT: &str = "{v}";

/// One HTTP operation (a method on a path template): everything the client needs
/// to call it and the server needs to route it. Each is declared once, in [`table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// The entry's name in [`table`].
    pub name: &'static str,
    pub method: Method,
    /// The path below the server's base URL, without a leading slash: literal
    /// segments, `{v}` for [`VERSION`], and `{name}` for each path parameter, in order.
    pub path_template: &'static str,
    pub auth: Auth,
    /// The endpoint it belongs to (the first segment after the version).
    pub api: Api,
    /// Whether a session of a user from another server may call it (spec "Create
    /// Session": remote users log in to send).
    pub remote_allowed: bool,
    /// Whether it is this profile's addition, not the spec's.
    pub extension: bool,
    /// The request body's type as the table names it (`()`: no body).
    pub request: &'static str,
    /// The response body's type (alternatives separated by `|`).
    pub response: &'static str,
    /// The largest request body the server reads for it, in bytes; a longer one is
    /// refused (`payload_too_large`) before it is read (docs/protocol.md §9.1).
    pub max_body: usize,
}

/// Body limits of the route table (docs/protocol.md §9.1). Each is what the largest
/// valid request needs, with room to spare; the server refuses a longer body before
/// reading it.
pub mod body_limit {
    /// Routes with no body, or a few ids, keys and signatures (logins, message key
    /// requests, folders, list entries, one signed key).
    pub const SMALL: usize = 4 * 1024;
    /// One profile record: its fields (name, website, profile links, additional data)
    /// and the signature.
    pub const PROFILE_RECORD: usize = 16 * 1024;
    /// Sealed extension data of one message.
    pub const EXTENSIONS: usize = 64 * 1024;
    /// Up to 1000 signed ephemeral keys (about 250 bytes each in JSON), with the first
    /// profile record for `initialize_account`.
    pub const KEYS: usize = 512 * 1024;
    /// An avatar image (base64) and its signature.
    pub const AVATAR: usize = 1024 * 1024;
    /// One sealed envelope (base64 ciphertext of a message of up to 32 MiB, its
    /// sealed original included); `[limits] max_body_bytes` may lower it.
    pub const ENVELOPE: usize = 48 * 1024 * 1024;
}

impl RouteSpec {
    /// The names of the path parameters, in template order.
    pub fn parameters(&self) -> impl Iterator<Item = &'static str> {
        self.path_template.split('/').filter(|s| *s != VERSION_SLOT).filter_map(parameter_name)
    }

    /// The pattern a router matches, with a leading slash: the template with the
    /// version filled in and each `{name}` kept (`/0.1/get_user/{address}/{kind}`).
    pub fn pattern(&self) -> String {
        format!("/{}", self.path_template.replace(VERSION_SLOT, VERSION))
    }

    /// The concrete path, without a leading slash: the version filled in and each
    /// parameter, in order, percent-encoded.
    pub fn fill(&self, values: &[&dyn fmt::Display]) -> String {
        debug_assert_eq!(values.len(), self.parameters().count(), "{}", self.name);
        let mut values = values.iter();
        let segments: Vec<String> = self
            .path_template
            .split('/')
            .map(|segment| match (segment, parameter_name(segment)) {
                (VERSION_SLOT, _) => VERSION.to_string(),
                (_, Some(_)) => {
                    values.next().map(|value| percent_encode_segment(&value.to_string())).unwrap_or_default()
                }
                (literal, None) => literal.to_string(),
            })
            .collect();
        segments.join("/")
    }
}

/// The name inside a `{name}` segment; `None` for a literal segment.
fn parameter_name(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

/// Declares the table: one `const` [`RouteSpec`] per entry and [`table::ALL`].
/// An entry reads `NAME: Method "template", Auth, Api, Request [max body] => Response[, flags]`
/// with the flags `remote` and `extension`; the body limit defaults to
/// [`body_limit::SMALL`]. The body types are real types (the
/// compiler checks they exist) kept as text for people and tests.
macro_rules! route_table {
    (@body) => { body_limit::SMALL };
    (@body $max_body:expr) => { $max_body };
    (@flag $want:ident) => { false };
    (@flag remote remote $($rest:ident)*) => { true };
    (@flag extension extension $($rest:ident)*) => { true };
    (@flag $want:ident $other:ident $($rest:ident)*) => { route_table!(@flag $want $($rest)*) };
    ($(
        $(#[$meta:meta])*
        $name:ident: $method:ident $template:literal, $auth:ident, $api:ident,
            $request:ty $([$max_body:expr])? => $($response:ty)|+ $(, $flag:ident)*;
    )*) => {
        $(
            $(#[$meta])*
            pub const $name: RouteSpec = RouteSpec {
                name: stringify!($name),
                method: Method::$method,
                path_template: $template,
                auth: Auth::$auth,
                api: Api::$api,
                remote_allowed: route_table!(@flag remote $($flag)*),
                extension: route_table!(@flag extension $($flag)*),
                request: stringify!($request),
                response: stringify!($($response)|+),
                max_body: route_table!(@body $($max_body)?),
            };
            const _: Option<fn($request) -> ($($response,)+)> = None;
        )*

        /// Every entry, in the spec's order.
        pub const ALL: &[&RouteSpec] = &[$(&$name),*];
    };
}

/// The route table: one line per HTTP operation of docs/protocol.md §8.
pub mod table {
    use super::*;

    route_table! {
        // Public data
        VERSION: Get "version", None, Version, () => VersionList;
        SERVER_INFORMATION: Get "{v}/server_information", None, ServerInformation, () => ServerInformation;
        GET_USER: Get "{v}/get_user/{address}/{kind}", None, GetUser,
            () => UserPublicKey | UserMostRecent | UserHistory;
        GET_AVATAR: Get "{v}/user_avatar/{address}", None, UserAvatar, () => AvatarInfo;
        SET_AVATAR: Post "{v}/user_avatar", Session, UserAvatar, AvatarUpload [body_limit::AVATAR] => AvatarStored;
        /// The image an [`AvatarInfo`] URL points at on this profile's server; not
        /// an operation a client names (the URL comes from `GET user_avatar`).
        AVATAR_IMAGE: Get "{v}/avatar_image/{address}", None, UserAvatar, () => Vec<u8>, extension;
        // Sessions
        GET_LOGIN_TOKEN: Get "{v}/create_session/{address}", None, CreateSession, () => LoginChallenge;
        CREATE_SESSION: Post "{v}/create_session/{address}", None, CreateSession, LoginRequest => SessionCreated;
        DESTROY_SESSION: Post "{v}/destroy_session", Session, DestroySession, () => SessionEnded, remote;
        // Sending a message
        GET_MESSAGE_KEY: Post "{v}/get_message_key", Session, GetMessageKey,
            MessageKeyRequest => MessageKeyResponse, remote;
        GET_POW_PARAMS: Get "{v}/get_pow_params/{address}/{message_type}", Session, GetPowParams,
            () => PowParamsResponse, remote;
        SEND_MESSAGE: Post "{v}/send_message/{address}", Session, SendMessage,
            SendMessageRequest [body_limit::ENVELOPE] => MessageSent, remote;
        // Mailbox management
        LIST_ALL_FOLDERS: Get "{v}/folders", Session, Folders, () => FolderList;
        LIST_FOLDERS: Get "{v}/folders/{message_type}", Session, Folders, () => FolderList;
        CREATE_FOLDER: Post "{v}/folders", Session, Folders, Folder => Folder;
        UPDATE_FOLDER: Post "{v}/folders/{folder_name}", Session, Folders, UpdateFolderRequest => Folder;
        DELETE_FOLDER: Delete "{v}/folders/{message_type}/{folder_name}", Session, Folders, () => Deleted, extension;
        LIST_ROOT_MESSAGES: Get "{v}/folder/{message_type}", Session, Folder, () => MessageList;
        LIST_MESSAGES: Get "{v}/folder/{message_type}/{folder_name}", Session, Folder, () => MessageList;
        GET_MESSAGE: Get "{v}/message/{message_id}/{update_read}", Session, Message, () => GetMessageResponse;
        DELETE_MESSAGE: Delete "{v}/message/{message_id}", Session, Message, () => Deleted;
        MOVE_MESSAGE: Post "{v}/message_move/{message_id}", Session, MessageMove, MoveMessageRequest => Moved;
        GET_READ_STATUS: Get "{v}/message_read/{message_id}", Session, MessageRead, () => ReadStatus;
        SET_READ_STATUS: Post "{v}/message_read/{message_id}", Session, MessageRead, SetReadRequest => ReadStatus;
        SET_MESSAGE_EXTENSIONS: Post "{v}/message_extensions/{message_id}", Session, MessageExtensions,
            ExtensionsUpdate [body_limit::EXTENSIONS] => Updated;
        LIST_ROOT_ENVELOPES: Get "{v}/x-envelopes/{message_type}/{after}", Session, XEnvelopes,
            () => EnvelopePage, extension;
        LIST_ENVELOPES: Get "{v}/x-envelopes/{message_type}/{folder_name}/{after}", Session, XEnvelopes,
            () => EnvelopePage, extension;
        // Account administration
        INITIALIZE_ACCOUNT: Post "{v}/initialize_account", Password, InitializeAccount,
            InitializeAccountRequest [body_limit::KEYS] => AccountInitialized;
        GET_NONEPHEMERAL_KEY: Get "{v}/nonephemeral_key", Session, NonephemeralKey, () => SignedMessageKey;
        SET_NONEPHEMERAL_KEY: Post "{v}/nonephemeral_key", Session, NonephemeralKey,
            SignedMessageKey => SignedMessageKey;
        LIST_EPHEMERAL_KEYS: Get "{v}/ephemeral_keys", Session, EphemeralKeys, () => EphemeralKeys;
        SET_EPHEMERAL_KEYS: Post "{v}/ephemeral_keys", Session, EphemeralKeys, EphemeralKeys [body_limit::KEYS] => KeyCount;
        UPDATE_PROFILE: Post "{v}/update_profile", Session, UpdateProfile, ProfileRecord [body_limit::PROFILE_RECORD] => ProfileLength;
        LIST_WHITELIST: Get "{v}/whitelist", Session, Whitelist, () => ListEntries, extension;
        ADD_WHITELIST: Post "{v}/whitelist", Session, Whitelist, ListEntry => Added;
        REMOVE_WHITELIST: Delete "{v}/whitelist/{hash}", Session, Whitelist, () => Removed;
        LIST_BLACKLIST: Get "{v}/blacklist", Session, Blacklist, () => ListEntries, extension;
        ADD_BLACKLIST: Post "{v}/blacklist", Session, Blacklist, ListEntry => Added;
        REMOVE_BLACKLIST: Delete "{v}/blacklist/{hash}", Session, Blacklist, () => Removed;
        GET_QUOTA: Get "{v}/quota", Session, Quota, () => Quota;
        // Extensions of this profile
        LIST_ROOT_CHANGES: Get "{v}/x-changes/{message_type}/{since}", Session, XChanges, () => ChangeList, extension;
        LIST_CHANGES: Get "{v}/x-changes/{message_type}/{folder_name}/{since}", Session, XChanges,
            () => ChangeList, extension;
        // Extension: devices (docs/protocol.md §12)
        DEVICE_CHALLENGE: Get "{v}/x-devices/challenge/{address}", None, XDevices, () => DeviceChallenge, extension;
        DEVICE_REQUEST: Post "{v}/x-devices/request/{address}", None, XDevices, DeviceRequest => DeviceRequested, extension;
        DEVICE_STATUS: Get "{v}/x-devices/status/{request_id}", None, XDevices, () => RequestStatus, extension;
        DEVICE_PENDING: Get "{v}/x-devices/pending", Session, XDevices, () => PendingRequests, extension;
        DEVICE_APPROVE: Post "{v}/x-devices/approve/{request_id}", Session, XDevices,
            Sealed [body_limit::KEYS] => Decided, extension;
        DEVICE_DENY: Post "{v}/x-devices/deny/{request_id}", Session, XDevices, Denial => Decided, extension;
        DEVICE_PUT_SHARES: Post "{v}/x-devices/shares", Session, XDevices,
            DeviceShares [body_limit::KEYS] => Updated, extension;
        DEVICE_GET_SHARES: Get "{v}/x-devices/shares/{address}/{box_key}", None, XDevices, () => DeviceShares, extension;
        DEVICE_SEEN: Get "{v}/x-devices/seen", Session, XDevices, () => DevicesSeen, extension;
    }
}

// ---------------------------------------------------------------------------
// Operations as callers name them
// ---------------------------------------------------------------------------

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
    /// Extension: `GET {v}/x-envelopes/{message_type}[/{folder_name}]/{after}` → [`EnvelopePage`].
    ListEnvelopes { message_type: MessageType, folder_name: Option<FolderName>, after: Position },
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
    /// Extension: `GET {v}/x-changes/{message_type}[/{folder_name}]/{since}` → [`ChangeList`].
    ListChanges { message_type: MessageType, folder_name: Option<FolderName>, since: u64 },
    /// Extension: `GET {v}/x-devices/challenge/{address}` → [`DeviceChallenge`].
    DeviceChallenge { address: Address },
    /// Extension: `POST {v}/x-devices/request/{address}` [`DeviceRequest`] → [`DeviceRequested`].
    DeviceRequest { address: Address },
    /// Extension: `GET {v}/x-devices/status/{request_id}` → [`RequestStatus`].
    DeviceStatus { request_id: Id32 },
    /// Extension: `GET {v}/x-devices/pending` → [`PendingRequests`].
    DevicePending,
    /// Extension: `POST {v}/x-devices/approve/{request_id}` [`Sealed`] → [`Decided`].
    DeviceApprove { request_id: Id32 },
    /// Extension: `POST {v}/x-devices/deny/{request_id}` [`Denial`] → [`Decided`].
    DeviceDeny { request_id: Id32 },
    /// Extension: `POST {v}/x-devices/shares` [`DeviceShares`] → [`Updated`].
    DevicePutShares,
    /// Extension: `GET {v}/x-devices/shares/{address}/{box_key}` → [`DeviceShares`].
    DeviceGetShares { address: Address, box_key: BoxPublicKey },
    /// Extension: `GET {v}/x-devices/seen` → [`DevicesSeen`].
    DeviceSeen,
}

/// A list of path parameter values, each shown as its path segment.
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        vec![$($value as &dyn fmt::Display),*]
    };
}

impl Route {
    /// The operation's table entry and its path parameter values in template
    /// order: the one place a variant meets the table.
    fn resolve(&self) -> (&'static RouteSpec, Vec<&dyn fmt::Display>) {
        use table as t;
        let list = |list: &ListKind, white: &'static RouteSpec, black: &'static RouteSpec| match list {
            ListKind::Whitelist => white,
            ListKind::Blacklist => black,
        };
        match self {
            Route::Version => (&t::VERSION, values![]),
            Route::ServerInformation => (&t::SERVER_INFORMATION, values![]),
            Route::GetUser { address, kind } => (&t::GET_USER, values![address, kind]),
            Route::GetAvatar { address } => (&t::GET_AVATAR, values![address]),
            Route::SetAvatar => (&t::SET_AVATAR, values![]),
            Route::GetLoginToken { address } => (&t::GET_LOGIN_TOKEN, values![address]),
            Route::CreateSession { address } => (&t::CREATE_SESSION, values![address]),
            Route::DestroySession => (&t::DESTROY_SESSION, values![]),
            Route::GetMessageKey => (&t::GET_MESSAGE_KEY, values![]),
            Route::GetPowParams { address, message_type } => (&t::GET_POW_PARAMS, values![address, message_type]),
            Route::SendMessage { address } => (&t::SEND_MESSAGE, values![address]),
            Route::ListFolders { message_type: None } => (&t::LIST_ALL_FOLDERS, values![]),
            Route::ListFolders { message_type: Some(message_type) } => (&t::LIST_FOLDERS, values![message_type]),
            Route::CreateFolder => (&t::CREATE_FOLDER, values![]),
            Route::UpdateFolder { folder_name } => (&t::UPDATE_FOLDER, values![folder_name]),
            Route::DeleteFolder { message_type, folder_name } => {
                (&t::DELETE_FOLDER, values![message_type, folder_name])
            }
            Route::ListMessages { message_type, folder_name: None } => (&t::LIST_ROOT_MESSAGES, values![message_type]),
            Route::ListMessages { message_type, folder_name: Some(folder_name) } => {
                (&t::LIST_MESSAGES, values![message_type, folder_name])
            }
            Route::GetMessage { message_id, update_read } => (&t::GET_MESSAGE, values![message_id, update_read]),
            Route::ListEnvelopes { message_type, folder_name: None, after } => {
                (&t::LIST_ROOT_ENVELOPES, values![message_type, after])
            }
            Route::ListEnvelopes { message_type, folder_name: Some(folder_name), after } => {
                (&t::LIST_ENVELOPES, values![message_type, folder_name, after])
            }
            Route::DeleteMessage { message_id } => (&t::DELETE_MESSAGE, values![message_id]),
            Route::MoveMessage { message_id } => (&t::MOVE_MESSAGE, values![message_id]),
            Route::GetReadStatus { message_id } => (&t::GET_READ_STATUS, values![message_id]),
            Route::SetReadStatus { message_id } => (&t::SET_READ_STATUS, values![message_id]),
            Route::SetMessageExtensions { message_id } => (&t::SET_MESSAGE_EXTENSIONS, values![message_id]),
            Route::InitializeAccount => (&t::INITIALIZE_ACCOUNT, values![]),
            Route::GetNonephemeralKey => (&t::GET_NONEPHEMERAL_KEY, values![]),
            Route::SetNonephemeralKey => (&t::SET_NONEPHEMERAL_KEY, values![]),
            Route::ListEphemeralKeys => (&t::LIST_EPHEMERAL_KEYS, values![]),
            Route::SetEphemeralKeys => (&t::SET_EPHEMERAL_KEYS, values![]),
            Route::UpdateProfile => (&t::UPDATE_PROFILE, values![]),
            Route::ListEntries { list: kind } => (list(kind, &t::LIST_WHITELIST, &t::LIST_BLACKLIST), values![]),
            Route::AddListEntry { list: kind } => (list(kind, &t::ADD_WHITELIST, &t::ADD_BLACKLIST), values![]),
            Route::RemoveListEntry { list: kind, hash } => {
                (list(kind, &t::REMOVE_WHITELIST, &t::REMOVE_BLACKLIST), values![hash])
            }
            Route::GetQuota => (&t::GET_QUOTA, values![]),
            Route::ListChanges { message_type, folder_name: None, since } => {
                (&t::LIST_ROOT_CHANGES, values![message_type, since])
            }
            Route::ListChanges { message_type, folder_name: Some(folder_name), since } => {
                (&t::LIST_CHANGES, values![message_type, folder_name, since])
            }
            Route::DeviceChallenge { address } => (&t::DEVICE_CHALLENGE, values![address]),
            Route::DeviceRequest { address } => (&t::DEVICE_REQUEST, values![address]),
            Route::DeviceStatus { request_id } => (&t::DEVICE_STATUS, values![request_id]),
            Route::DevicePending => (&t::DEVICE_PENDING, values![]),
            Route::DeviceApprove { request_id } => (&t::DEVICE_APPROVE, values![request_id]),
            Route::DeviceDeny { request_id } => (&t::DEVICE_DENY, values![request_id]),
            Route::DevicePutShares => (&t::DEVICE_PUT_SHARES, values![]),
            Route::DeviceGetShares { address, box_key } => (&t::DEVICE_GET_SHARES, values![address, box_key]),
            Route::DeviceSeen => (&t::DEVICE_SEEN, values![]),
        }
    }

    /// The operation's entry in the route table.
    pub fn spec(&self) -> &'static RouteSpec {
        self.resolve().0
    }

    /// The endpoint this operation belongs to.
    pub fn api(&self) -> Api {
        self.spec().api
    }

    /// The HTTP method.
    pub fn method(&self) -> Method {
        self.spec().method
    }

    /// How the caller proves who it is: public look-ups and the login itself need
    /// nothing, `initialize_account` a password, everything else a session.
    pub fn auth(&self) -> Auth {
        self.spec().auth
    }

    /// Whether a session of a user from another server may call it (spec "Create
    /// Session": remote users log in to send). Every other session operation is
    /// for the account's owner only.
    pub fn remote_allowed(&self) -> bool {
        self.spec().remote_allowed
    }

    /// Whether the operation is this profile's addition, not the spec's.
    pub fn is_extension(&self) -> bool {
        self.spec().extension
    }

    /// The path below the server's base URL, without a leading slash:
    /// `version`, or `{VERSION}/{api}/{parameters…}` with each parameter
    /// percent-encoded (`0.1/get_user/alice%23example.org/history`).
    pub fn path(&self) -> String {
        let (spec, values) = self.resolve();
        spec.fill(&values)
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn alice() -> Address {
        Address::parse("alice#example.org").unwrap()
    }

    fn bob() -> Address {
        Address::parse("bob#example.org").unwrap()
    }

    /// One value of every variant (both lists, both sides of every `Option`).
    fn every_route() -> Vec<Route> {
        let id = Id32([0xab; 32]);
        let work = FolderName::parse("work").unwrap();
        let mut routes = vec![
            Route::Version,
            Route::ServerInformation,
            Route::GetUser { address: alice(), kind: UserInfoKind::History },
            Route::GetAvatar { address: alice() },
            Route::SetAvatar,
            Route::GetLoginToken { address: alice() },
            Route::CreateSession { address: alice() },
            Route::DestroySession,
            Route::GetMessageKey,
            Route::GetPowParams { address: bob(), message_type: MessageType::Email },
            Route::SendMessage { address: bob() },
            Route::ListFolders { message_type: None },
            Route::ListFolders { message_type: Some(MessageType::Email) },
            Route::CreateFolder,
            Route::UpdateFolder { folder_name: work.clone() },
            Route::DeleteFolder { message_type: MessageType::Email, folder_name: work.clone() },
            Route::ListMessages { message_type: MessageType::Email, folder_name: None },
            Route::ListMessages { message_type: MessageType::Email, folder_name: Some(work.clone()) },
            Route::ListChanges { message_type: MessageType::Email, folder_name: None, since: 7 },
            Route::ListChanges { message_type: MessageType::Email, folder_name: Some(work.clone()), since: 0 },
            Route::GetMessage { message_id: id, update_read: true },
            Route::ListEnvelopes { message_type: MessageType::Email, folder_name: None, after: Position(0) },
            Route::ListEnvelopes { message_type: MessageType::Email, folder_name: Some(work), after: Position(7) },
            Route::DeleteMessage { message_id: id },
            Route::MoveMessage { message_id: id },
            Route::GetReadStatus { message_id: id },
            Route::SetReadStatus { message_id: id },
            Route::SetMessageExtensions { message_id: id },
            Route::InitializeAccount,
            Route::GetNonephemeralKey,
            Route::SetNonephemeralKey,
            Route::ListEphemeralKeys,
            Route::SetEphemeralKeys,
            Route::UpdateProfile,
            Route::GetQuota,
            Route::DeviceChallenge { address: alice() },
            Route::DeviceRequest { address: alice() },
            Route::DeviceStatus { request_id: id },
            Route::DevicePending,
            Route::DeviceApprove { request_id: id },
            Route::DeviceDeny { request_id: id },
            Route::DevicePutShares,
            Route::DeviceGetShares { address: alice(), box_key: BoxPublicKey([2; 32]) },
            Route::DeviceSeen,
        ];
        for list in [ListKind::Whitelist, ListKind::Blacklist] {
            routes.push(Route::ListEntries { list });
            routes.push(Route::AddListEntry { list });
            routes.push(Route::RemoveListEntry { list, hash: Hash([1; 32]) });
        }
        routes
    }

    #[test]
    fn every_operation_has_its_own_table_entry() {
        let names: HashSet<_> = table::ALL.iter().map(|spec| spec.name).collect();
        assert_eq!(names.len(), table::ALL.len(), "entry names are unique");
        let reached: Vec<&str> = every_route().iter().map(|route| route.spec().name).collect();
        let unique: HashSet<_> = reached.iter().copied().collect();
        assert_eq!(unique.len(), reached.len(), "no two operations share an entry");
        let unreached: Vec<_> = names.difference(&unique).collect();
        assert_eq!(unreached, [&table::AVATAR_IMAGE.name], "only the avatar image is no operation");
    }

    #[test]
    fn templates_name_their_api_and_take_every_parameter() {
        for spec in table::ALL {
            let after_version = spec.path_template.strip_prefix("{v}/").unwrap_or(spec.path_template);
            let first = after_version.split('/').next().unwrap_or_default();
            if spec.name != table::AVATAR_IMAGE.name {
                assert_eq!(first, spec.api.as_str(), "{}", spec.name);
            }
            assert_eq!(spec.path_template.starts_with("{v}/"), spec.api != Api::Version, "{}", spec.name);
        }
        for route in every_route() {
            let (spec, values) = route.resolve();
            assert_eq!(values.len(), spec.parameters().count(), "{route:?}");
            assert!(!route.path().contains(['{', '}']), "{route:?}");
        }
        let shapes: HashSet<(Method, String)> = table::ALL
            .iter()
            .map(|spec| {
                let shape: Vec<&str> =
                    spec.path_template.split('/').map(|s| if parameter_name(s).is_some() { "{}" } else { s }).collect();
                (spec.method, shape.join("/"))
            })
            .collect();
        assert_eq!(shapes.len(), table::ALL.len(), "no two entries claim the same method and path");
    }

    #[test]
    fn patterns_keep_parameter_names() {
        assert_eq!(table::GET_USER.pattern(), "/0.1/get_user/{address}/{kind}");
        assert_eq!(table::VERSION.pattern(), "/version");
        assert_eq!(table::DELETE_FOLDER.parameters().collect::<Vec<_>>(), ["message_type", "folder_name"]);
        assert_eq!(table::GET_USER.response, "UserPublicKey | UserMostRecent | UserHistory");
        assert_eq!(table::SET_READ_STATUS.request, "SetReadRequest");
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
}
