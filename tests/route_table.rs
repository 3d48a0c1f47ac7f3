//! Every operation the client can name reaches a handler of the reference server:
//! each `Route` variant (both lists, both sides of every optional segment) and the
//! avatar image are sent, with their table method and path, through the server's
//! real router over HTTPS, and none may come back from the router's fallbacks (no
//! such endpoint, unsupported version, method not allowed). No session or body is
//! sent, so the handlers refuse; what matters is that it is they who answer.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;
use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::crypto::Hash;
use smimp_gateway::smimp::encoding::Id32;
use smimp_gateway::smimp::message::MessageType;
use smimp_gateway::smimp::wire::{table, FolderName, ListKind, Method, Position, Route, RouteSpec, UserInfoKind};

/// How many variants `Route` has; `variant` below must name each.
const VARIANTS: usize = 43;

/// The variant's position. The match has no wildcard, so a new variant does not
/// compile until it is listed here and in `every_route`.
fn variant(route: &Route) -> usize {
    match route {
        Route::Version => 0,
        Route::ServerInformation => 1,
        Route::GetUser { .. } => 2,
        Route::GetAvatar { .. } => 3,
        Route::SetAvatar => 4,
        Route::GetLoginToken { .. } => 5,
        Route::CreateSession { .. } => 6,
        Route::DestroySession => 7,
        Route::GetMessageKey => 8,
        Route::GetPowParams { .. } => 9,
        Route::SendMessage { .. } => 10,
        Route::ListFolders { .. } => 11,
        Route::CreateFolder => 12,
        Route::UpdateFolder { .. } => 13,
        Route::DeleteFolder { .. } => 14,
        Route::ListMessages { .. } => 15,
        Route::GetMessage { .. } => 16,
        Route::DeleteMessage { .. } => 17,
        Route::MoveMessage { .. } => 18,
        Route::GetReadStatus { .. } => 19,
        Route::SetReadStatus { .. } => 20,
        Route::SetMessageExtensions { .. } => 21,
        Route::InitializeAccount => 22,
        Route::GetNonephemeralKey => 23,
        Route::SetNonephemeralKey => 24,
        Route::ListEphemeralKeys => 25,
        Route::SetEphemeralKeys => 26,
        Route::UpdateProfile => 27,
        Route::ListEntries { .. } => 28,
        Route::AddListEntry { .. } => 29,
        Route::RemoveListEntry { .. } => 30,
        Route::GetQuota => 31,
        Route::ListEnvelopes { .. } => 32,
        Route::ListChanges { .. } => 33,
        Route::DeviceChallenge { .. } => 34,
        Route::DeviceRequest { .. } => 35,
        Route::DeviceStatus { .. } => 36,
        Route::DevicePending => 37,
        Route::DeviceApprove { .. } => 38,
        Route::DeviceDeny { .. } => 39,
        Route::DevicePutShares => 40,
        Route::DeviceGetShares { .. } => 41,
        Route::DeviceSeen => 42,
    }
}

/// One value of every variant, with both sides of each list and optional segment.
fn every_route() -> Vec<Route> {
    let alice = Address::parse("alice#example.org").unwrap();
    let id = Id32([0xab; 32]);
    let work = FolderName::parse("work").unwrap();
    let mut routes = vec![
        Route::Version,
        Route::ServerInformation,
        Route::GetUser { address: alice.clone(), kind: UserInfoKind::History },
        Route::GetAvatar { address: alice.clone() },
        Route::SetAvatar,
        Route::GetLoginToken { address: alice.clone() },
        Route::CreateSession { address: alice.clone() },
        Route::DestroySession,
        Route::GetMessageKey,
        Route::GetPowParams { address: alice.clone(), message_type: MessageType::Email },
        Route::SendMessage { address: alice.clone() },
        Route::ListFolders { message_type: None },
        Route::ListFolders { message_type: Some(MessageType::Email) },
        Route::CreateFolder,
        Route::UpdateFolder { folder_name: work.clone() },
        Route::DeleteFolder { message_type: MessageType::Email, folder_name: work.clone() },
        Route::ListMessages { message_type: MessageType::Email, folder_name: None },
        Route::ListMessages { message_type: MessageType::Email, folder_name: Some(work.clone()) },
        Route::ListEnvelopes { message_type: MessageType::Email, folder_name: None, after: Position(0) },
        Route::ListEnvelopes { message_type: MessageType::Email, folder_name: Some(work.clone()), after: Position(3) },
        Route::ListChanges { message_type: MessageType::Email, folder_name: None, since: 0 },
        Route::ListChanges { message_type: MessageType::Email, folder_name: Some(work), since: 9 },
        Route::GetMessage { message_id: id, update_read: false },
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
        Route::DeviceChallenge { address: alice.clone() },
        Route::DeviceRequest { address: alice },
        Route::DeviceStatus { request_id: id },
        Route::DevicePending,
        Route::DeviceApprove { request_id: id },
        Route::DeviceDeny { request_id: id },
        Route::DevicePutShares,
        Route::DeviceGetShares {
            address: Address::parse("alice#example.org").unwrap(),
            box_key: smimp_gateway::smimp::crypto::BoxPublicKey([2; 32]),
        },
        Route::DeviceSeen,
    ];
    for list in [ListKind::Whitelist, ListKind::Blacklist] {
        routes.push(Route::ListEntries { list });
        routes.push(Route::AddListEntry { list });
        routes.push(Route::RemoveListEntry { list, hash: Hash([1; 32]) });
    }
    routes
}

fn http_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Delete => reqwest::Method::DELETE,
    }
}

/// Whether the answer came from the router's fallbacks rather than a handler.
fn from_fallback(status: u16, body: &Value) -> bool {
    let code = body["error"]["code"].as_str().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    status == 405
        || code == "method_not_allowed"
        || code == "unsupported_version"
        || (code == "not_found" && message.starts_with("there is no endpoint"))
}

#[test]
fn the_sample_names_every_variant() {
    let seen: BTreeSet<usize> = every_route().iter().map(variant).collect();
    assert_eq!(seen, (0..VARIANTS).collect());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_reaches_a_handler() {
    let server = start_one(Options::default()).await;
    let client = Client::new(&[&server]);
    let alice = Address::parse("alice#example.org").unwrap();
    let mut calls: Vec<(String, &'static RouteSpec, String)> =
        every_route().iter().map(|route| (format!("{route:?}"), route.spec(), url(&server, route))).collect();
    let image = format!("{}/{}", server.base, table::AVATAR_IMAGE.fill(&[&alice]));
    calls.push(("avatar image".into(), &table::AVATAR_IMAGE, image));
    let mut missed = Vec::new();
    for (name, spec, url) in &calls {
        let (status, body) = client.call(http_method(spec.method), url, None, None).await;
        if from_fallback(status, &body) {
            missed.push(format!("{name}: {} {url} → {status} {body}", spec.method.as_str()));
        }
    }
    assert!(missed.is_empty(), "routes that reach no handler:\n{}", missed.join("\n"));
    server.stop().await;
}
