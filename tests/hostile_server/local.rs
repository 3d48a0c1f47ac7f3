//! Attacks by a local process on the gateway's mail ports: a flood of idle connections
//! that never log in must not lock a mail client out, and must not close one that has
//! logged in.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::imap_client::{gateway_connect, gateway_login};
use crate::common::{self, init_on_gateway, write_gateway_config, Options, TempDir};

/// More than the gateway's connection cap (64) on each port.
const FLOOD: usize = 70;

/// A line from `reader`, or what happened instead (end of stream, a timeout).
async fn line_of(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    match tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line)).await {
        Ok(Ok(0)) => "<closed>".into(),
        Ok(Ok(_)) => line.trim_end().to_string(),
        Ok(Err(err)) => format!("<error: {err}>"),
        Err(_) => "<nothing for 10 s>".into(),
    }
}

/// `count` idle connections to `addr` that never send a byte, oldest first.
async fn flood(addr: SocketAddr, count: usize) -> Vec<BufReader<TcpStream>> {
    let mut idle = Vec::new();
    for _ in 0..count {
        idle.push(BufReader::new(TcpStream::connect(addr).await.unwrap()));
    }
    idle
}

/// AUTH PLAIN on the plain SMTP port from loopback; the reply to AUTH.
async fn smtp_login(addr: SocketAddr, username: &str, password: &str) -> String {
    let mut smtp = BufReader::new(TcpStream::connect(addr).await.unwrap());
    let greeting = line_of(&mut smtp).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
    smtp.get_mut().write_all(b"EHLO client.example\r\n").await.unwrap();
    while line_of(&mut smtp).await.starts_with("250-") {}
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{username}\0{password}"));
    smtp.get_mut().write_all(format!("AUTH PLAIN {plain}\r\n").as_bytes()).await.unwrap();
    line_of(&mut smtp).await
}

/// About 70 idle connections on each of the gateway's IMAP and SMTP ports (more than
/// its connection cap) do not keep alice out: she logs in on each port, the oldest
/// idle connection is told why it is closed, and a session that logged in before the
/// flood is never closed for a newcomer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_never_lock_a_mail_client_out() {
    let org = common::start_one(Options::default()).await;
    let dir = TempDir::new("hostile-local-flood");
    let config =
        write_gateway_config(&dir, &[&org], "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n");
    let alice = init_on_gateway(&config, &org, "alice").await;
    let running = common::start_gateway(&config).await;
    let (user, password) = (alice.username.as_str(), alice.password.as_str());
    let mut before = gateway_login(&running, user, password).await;

    let addresses = &running.addresses;
    let mut imap_idle = flood(addresses.imap, FLOOD).await;
    let _tls_idle = flood(addresses.imap_tls.unwrap(), FLOOD).await;
    let mut smtp_idle = flood(addresses.smtp, FLOOD).await;

    // A mail client still gets in, on every port.
    let mut client = gateway_login(&running, user, password).await;
    assert_eq!(client.cmd("c1", "NOOP").await, ["c1 OK NOOP completed"]);
    let mut plain = BufReader::new(TcpStream::connect(addresses.imap).await.unwrap());
    assert!(line_of(&mut plain).await.starts_with("* OK"), "served, not refused");
    plain.get_mut().write_all(format!("p1 LOGIN {user} \"{password}\"\r\n").as_bytes()).await.unwrap();
    let mut answer = line_of(&mut plain).await;
    while answer.starts_with("* ") {
        answer = line_of(&mut plain).await;
    }
    assert!(answer.starts_with("p1 OK"), "{answer}");
    let auth = smtp_login(addresses.smtp, user, password).await;
    assert!(auth.starts_with("235 "), "{auth}");
    // The session from before the flood is still served.
    assert_eq!(before.cmd("b1", "NOOP").await, ["b1 OK NOOP completed"]);

    // The oldest idle connections were told why they were closed.
    assert!(line_of(&mut imap_idle[0]).await.starts_with("* OK"), "its greeting");
    assert_eq!(
        line_of(&mut imap_idle[0]).await,
        "* BYE [UNAVAILABLE] too many connections are waiting to log in; closing the oldest"
    );
    assert_eq!(line_of(&mut imap_idle[0]).await, "<closed>");
    assert!(line_of(&mut smtp_idle[0]).await.starts_with("220 "), "its greeting");
    let told = line_of(&mut smtp_idle[0]).await;
    assert!(
        told.starts_with("421 4.3.2 ")
            && told.ends_with("too many connections are waiting to log in; closing the oldest"),
        "{told}"
    );
    // And a fresh TLS client, after all that, still gets its greeting.
    drop(gateway_connect(&running).await);
    running.stop().await;
    org.stop().await;
}
