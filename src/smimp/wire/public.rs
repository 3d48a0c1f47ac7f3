//! Public data (spec "Public Data"; docs/protocol.md §8.1–§8.4, §8.26): what anyone may
//! read without a session — the versions and APIs a server speaks, a user's keys
//! and history, and the avatar with the hash its owner signs.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Api;
use crate::smimp::address::Address;
use crate::smimp::crypto::{Hash, MasterPublicKey, Signature};
use crate::smimp::encoding::base64_bytes;
use crate::smimp::profile::ProfileRecord;
use crate::smimp::transcript::{Purpose, Transcript};

/// The hash an avatar's signature covers: the owner's address and the raw image
/// bytes (not their base64), so an avatar cannot be moved to another profile.
pub fn avatar_hash(address: &Address, image: &[u8]) -> Hash {
    Transcript::new(Purpose::Avatar).field(address.as_str()).field(image).hash()
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

impl fmt::Display for UserInfoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
