//! STARTTLS on the gateway's plain IMAP and SMTP ports ends with the client speaking
//! first: once the TLS handshake is done, the server must send nothing until the client
//! has sent its first command. A TLS 1.3 session ticket sent after the handshake lands
//! exactly when a threaded client (offlineimap's imaplib2: one thread reading, another
//! writing the same OpenSSL connection) writes that command, and such a client then
//! loses the command and hangs until the login timeout. Driven here by hand with rustls
//! over a plain socket, so that every byte the server sends after the handshake is seen.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// Reads one CRLF-terminated line from the plain socket, byte by byte so that nothing
/// after it (the server's TLS handshake) is taken from the socket.
fn plain_line(tcp: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert_eq!(tcp.read(&mut byte).unwrap(), 1, "the connection closed after {line:?}");
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

/// Reads plain lines until one starts with `prefix`; returns it.
fn plain_until(tcp: &mut TcpStream, prefix: &str) -> String {
    loop {
        let line = plain_line(tcp);
        if line.starts_with(prefix) {
            return line;
        }
    }
}

/// The TLS handshake after STARTTLS, then what the server sends before the client
/// speaks (within `wait`), then `command` and the server's reply up to a line starting
/// with `done`.
fn after_starttls(mut tcp: TcpStream, ca: &Path, wait: Duration, command: &str, done: &str) -> (usize, Vec<String>) {
    let config = Arc::new(smimp_gateway::tls::client_config(&[ca.to_path_buf()]).unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = rustls::ClientConnection::new(config, name).unwrap();
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp).unwrap();
    }
    while tls.wants_write() {
        tls.write_tls(&mut tcp).unwrap();
    }
    assert_eq!(tls.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3), "TLS 1.3 is negotiated");
    tcp.set_read_timeout(Some(wait)).unwrap();
    let mut unasked = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => panic!("the server closed the connection after the handshake"),
            Ok(n) => unasked.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("reading after the handshake: {e}"),
        }
    }
    // Whatever came (a ticket) is handed to rustls, so the command below still works.
    let mut slice = &unasked[..];
    while !slice.is_empty() {
        tls.read_tls(&mut slice).unwrap();
        tls.process_new_packets().unwrap();
    }
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    stream.write_all(command.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut reader = BufReader::new(stream);
    let mut reply = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the connection closed after {reply:?}");
        let last = line.starts_with(done);
        reply.push(line);
        if last {
            return (unasked.len(), reply);
        }
    }
}

fn imap_starttls(addr: SocketAddr, ca: &Path) -> (usize, Vec<String>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    assert!(plain_line(&mut tcp).starts_with("* OK"));
    tcp.write_all(b"a STARTTLS\r\n").unwrap();
    assert!(plain_until(&mut tcp, "a ").starts_with("a OK"));
    after_starttls(tcp, ca, Duration::from_millis(500), "b CAPABILITY\r\n", "b ")
}

fn smtp_starttls(addr: SocketAddr, ca: &Path) -> (usize, Vec<String>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    assert!(plain_until(&mut tcp, "220 ").starts_with("220 "));
    tcp.write_all(b"EHLO client.example\r\n").unwrap();
    plain_until(&mut tcp, "250 ");
    tcp.write_all(b"STARTTLS\r\n").unwrap();
    assert!(plain_line(&mut tcp).starts_with("220"));
    after_starttls(tcp, ca, Duration::from_millis(500), "EHLO client.example\r\n", "250 ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_starttls_the_server_sends_nothing_before_the_client_speaks() {
    let org = start_one(Options::default()).await;
    let dir = TempDir::new("gateway-starttls");
    let extra = "[smtp]\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n";
    let config = write_gateway_config(&dir, &[&org], extra);
    init_on_gateway(&config, &org, "alice").await;
    let running = common::start_gateway(&config).await;
    let ca: PathBuf = running.ca_file.clone();
    let (imap, smtp) = (running.addresses.imap, running.addresses.smtp);

    let (unasked, reply) = tokio::task::spawn_blocking({
        let ca = ca.clone();
        move || imap_starttls(imap, &ca)
    })
    .await
    .unwrap();
    assert_eq!(unasked, 0, "IMAP: bytes sent after the handshake before the client spoke (TLS 1.3 session tickets)");
    assert!(reply[0].starts_with("* CAPABILITY IMAP4rev1") && !reply[0].contains("STARTTLS"), "{reply:?}");
    assert!(reply.last().unwrap().starts_with("b OK"), "{reply:?}");

    let (unasked, reply) = tokio::task::spawn_blocking(move || smtp_starttls(smtp, &ca)).await.unwrap();
    assert_eq!(unasked, 0, "SMTP: bytes sent after the handshake before the client spoke (TLS 1.3 session tickets)");
    assert!(reply.iter().any(|l| l.contains("AUTH")) && !reply.iter().any(|l| l.contains("STARTTLS")), "{reply:?}");
    running.stop().await;
}
