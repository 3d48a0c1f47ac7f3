//! The documents of every API group together: each round-trips, keeps the
//! profile's field names, is strict or lenient as its direction asks, and the
//! API-only hashes agree with libsodium's vectors.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;
use crate::smimp::address::{Address, Domain};
use crate::smimp::crypto::{BoxNonce, BoxPublicKey, Hash, MasterKey, Signature};
use crate::smimp::encoding::Id32;
use crate::smimp::envelope::{ReceivedVia, SealedData, SentEnvelope, ServerFields, StoredEnvelope, PROTOCOL_VERSION};
use crate::smimp::keys::{KeyKind, SignedMessageKey};
use crate::smimp::message::MessageType;
use crate::smimp::pow::{PowParams, PowSolution};
use crate::smimp::profile::{ProfileFields, ProfileRecord};
use crate::smimp::timestamp::Timestamp;

fn example_org() -> Domain {
    Domain::parse("example.org").unwrap()
}

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
    round_trip(&LoginRequest { token: Id32([1; 32]), server: example_org(), signature: Signature([2; 64]) });
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
    let mut login = serde_json::to_value(LoginRequest {
        token: Id32([1; 32]),
        server: example_org(),
        signature: Signature([2; 64]),
    })
    .unwrap();
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

/// The API-only hashes agree with the transcripts libsodium computed.
#[test]
fn api_hashes_match_the_libsodium_vectors() {
    let doc: Value = serde_json::from_str(include_str!("../../../fixtures/vectors/libsodium.json")).unwrap();
    let mut checked = 0;
    for t in doc["transcripts"].as_array().unwrap() {
        let fields: Vec<Vec<u8>> =
            t["fields"].as_array().unwrap().iter().map(|f| hex::decode(f.as_str().unwrap()).unwrap()).collect();
        let text = |i: usize| String::from_utf8(fields[i].clone()).unwrap();
        let computed = match t["label"].as_str().unwrap() {
            "SMIMP-v0.1/create-session" => create_session_hash(
                &Domain::parse(&text(0)).unwrap(),
                &Address::parse(&text(1)).unwrap(),
                &Id32(fields[2].clone().try_into().unwrap()),
            ),
            "SMIMP-v0.1/avatar" => avatar_hash(&Address::parse(&text(0)).unwrap(), &fields[1]),
            "SMIMP-v0.1/init-password" => init_password_hash(&text(0)),
            "SMIMP-v0.1/list-entry" => list_entry_hash(&text(0)),
            _ => continue,
        };
        assert_eq!(computed.to_hex(), t["hash"].as_str().unwrap(), "{}", t["label"]);
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} vectors checked");
}
