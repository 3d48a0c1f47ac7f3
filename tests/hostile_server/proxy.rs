//! The lying proxy itself: it tells the truth until told to lie, lies only on the
//! routes it was given, and logs what it saw.

use smimp_gateway::smimp::address::Address;
use smimp_gateway::smimp::wire::{Route, UserInfoKind};

use crate::common::{self, Options};
use crate::harness::{fronted_pair, Answer};

#[tokio::test]
async fn forwards_the_truth_until_told_to_lie() {
    let (org, net, hostile) = fronted_pair("example.org", Options::default()).await;
    let client = common::Client::new(&[&org]);
    let alice = common::create_account(&client, &org, "alice", 1).await;
    let route = Route::GetUser { address: alice.address.clone(), kind: UserInfoKind::PublicKey };
    let through = format!("https://{}:{}/{}", hostile.domain, hostile.addr.port(), route.path());
    let proxied = reqwest::Client::builder()
        .use_preconfigured_tls(smimp_gateway::tls::client_config(std::slice::from_ref(&hostile.ca_file)).unwrap())
        .resolve(&hostile.domain, hostile.addr)
        .build()
        .unwrap();

    // Discovery names the proxy, so whoever looked the domain up keeps talking to it.
    let record = format!("https://{}:{}/.well-known/smimp.txt", hostile.domain, hostile.addr.port());
    let record = proxied.get(record).send().await.unwrap().text().await.unwrap();
    assert_eq!(record.trim(), format!("example.org:{}", hostile.addr.port()));

    let truth = proxied.get(&through).send().await.unwrap();
    assert_eq!(truth.status(), 200);
    let direct = client.get(&common::url(&org, &route), None).await;
    assert_eq!(truth.json::<serde_json::Value>().await.unwrap(), direct.1, "the proxy forwards the real answer");

    hostile.lie_on(&route, |_| async { Answer::error(404, "not_found") });
    let lie = proxied.get(&through).send().await.unwrap();
    assert_eq!(lie.status(), 404, "the lie replaces the answer");
    let other = Route::GetUser { address: Address::parse("bob#example.org").unwrap(), kind: UserInfoKind::History };
    let untouched = proxied.get(format!("https://{}:{}/{}", hostile.domain, hostile.addr.port(), other.path())).send();
    assert_ne!(untouched.await.unwrap().status(), 502, "other routes still reach the real server");

    let seen = hostile.seen();
    assert_eq!(
        seen.iter().map(|s| (s.status, s.lied)).collect::<Vec<_>>(),
        [(200, false), (200, false), (404, true), (404, false)]
    );
    hostile.tell_the_truth();
    assert_eq!(proxied.get(&through).send().await.unwrap().status(), 200);
    drop(hostile);
    net.stop().await;
    org.stop().await;
}
