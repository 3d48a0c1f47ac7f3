//! A transcript-style IMAP client for tests: send a line, read the lines up to the
//! tagged response (literals read into their line), so every response can be checked
//! byte for byte. Shared by the front-end tests and the gateway's IMAP tests.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    pub io: BufReader<Box<dyn Io>>,
}

impl Client {
    pub async fn send(&mut self, text: &str) {
        self.io.write_all(text.as_bytes()).await.unwrap();
        self.io.write_all(b"\r\n").await.unwrap();
        self.io.flush().await.unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
        self.io.flush().await.unwrap();
    }

    /// One response line with its CRLF removed; literals are read into the line
    /// (`{n}\r\n` followed by the n bytes), so one line is one whole response.
    pub async fn line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.read_line()).await.expect("a response in time")
    }

    pub async fn read_line(&mut self) -> String {
        let mut line = Vec::new();
        loop {
            let read = self.io.read_until(b'\n', &mut line).await.unwrap();
            if read == 0 {
                return String::from_utf8(line).unwrap();
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let literal = text
                .strip_suffix("}\r\n")
                .and_then(|t| t.rfind('{').map(|at| &t[at + 1..]))
                .and_then(|n| n.parse::<usize>().ok());
            match literal {
                Some(n) => {
                    let mut data = vec![0; n];
                    self.io.read_exact(&mut data).await.unwrap();
                    line.extend_from_slice(&data);
                }
                None => {
                    line.truncate(line.len() - 2);
                    return String::from_utf8(line).unwrap();
                }
            }
        }
    }

    /// Lines up to and including the tagged one.
    pub async fn response(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await;
            assert!(!line.is_empty(), "connection closed before the tagged response; got {lines:?}");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    pub async fn cmd(&mut self, tag: &str, command: &str) -> Vec<String> {
        self.send(&format!("{tag} {command}")).await;
        self.response(tag).await
    }

    /// True when the server closed the connection (EOF or a TLS close).
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.io.read_to_end(&mut rest)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }
}

/// A client on a running gateway's implicit-TLS IMAP port, trusting the gateway's own
/// CA, after the greeting.
pub async fn gateway_connect(running: &smimp_gateway::gateway::Running) -> Client {
    let ca = smimp_gateway::tls::client_config(std::slice::from_ref(&running.ca_file)).unwrap();
    let tcp = tokio::net::TcpStream::connect(running.addresses.imap_tls.unwrap()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(ca));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut client = Client { io: BufReader::new(Box::new(tls)) };
    let greeting = client.line().await;
    assert!(greeting.starts_with("* OK"), "{greeting}");
    client
}

/// [`gateway_connect`], then LOGIN.
pub async fn gateway_login(running: &smimp_gateway::gateway::Running, user: &str, password: &str) -> Client {
    let mut client = gateway_connect(running).await;
    let response = client.cmd("a1", &format!("LOGIN {user} \"{password}\"")).await;
    assert!(response.last().unwrap().starts_with("a1 OK"), "{response:?}");
    client
}
