//! The SMTP submission front-end end to end: `smtp::run` on 127.0.0.1 with real TLS
//! (STARTTLS on one port, implicit TLS on another, both under a development CA that
//! the clients trust; verification is never disabled), driven by the lettre SMTP
//! client and, for the STARTTLS injection check, by hand over tokio-rustls.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use smimp_gateway::smtp::{self, RecipientOk, Refusal, SmtpConfig, Submission, TlsMode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

const MAX_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Accepted {
    account: String,
    from: String,
    recipients: Vec<String>,
    message: Vec<u8>,
}

/// In memory: alice/secret, no SMIMP profile for bob@, every accepted message recorded.
/// With a gate, `accept` announces itself and waits to be let through.
#[derive(Default)]
struct TestSubmission {
    accepted: Mutex<Vec<Accepted>>,
    gate: Option<(Notify, Notify)>,
}

impl Submission for TestSubmission {
    type Account = String;

    async fn authenticate(&self, username: &str, password: &str) -> Option<String> {
        (username == "alice" && password == "secret").then(|| username.to_string())
    }

    async fn check_recipient(&self, _account: &String, recipient: &str) -> Result<RecipientOk, Refusal> {
        if recipient.starts_with("bob@") {
            return Err(Refusal::new(550, [5, 1, 1], format!("{recipient} has no SMIMP profile")));
        }
        if recipient.ends_with("@legacy.example") {
            return Ok(RecipientOk::with_text("relayed as plain email\r\nINJECTED"));
        }
        Ok(RecipientOk::ok())
    }

    async fn accept(
        &self,
        account: &String,
        from: &str,
        recipients: &[String],
        message: Vec<u8>,
    ) -> Result<(), Refusal> {
        if let Some((entered, open)) = &self.gate {
            entered.notify_one();
            open.notified().await;
        }
        let accepted =
            Accepted { account: account.clone(), from: from.into(), recipients: recipients.to_vec(), message };
        self.accepted.lock().unwrap().push(accepted);
        Ok(())
    }
}

struct Gateway {
    submission: Arc<TestSubmission>,
    starttls_port: u16,
    implicit_port: u16,
    ca_pem: Vec<u8>,
    ca_file: std::path::PathBuf,
    stop: smimp_gateway::listen::StopHandle,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

async fn start(submission: TestSubmission) -> Gateway {
    smimp_gateway::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("smimp-smtp-submission-{}", std::process::id()));
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    let certs = smimp_gateway::tls::ensure_dev_certificates(&dir, &names).unwrap();
    let tls = smimp_gateway::tls::server_config(&certs.cert_file, &certs.key_file).unwrap();
    let submission = Arc::new(submission);
    let config = SmtpConfig {
        max_message_size: MAX_SIZE,
        auth_failure_delay: Duration::from_millis(10),
        // Plain AUTH is off, so every login here goes over TLS.
        allow_plain_auth_on_loopback: false,
        ..SmtpConfig::default()
    };
    let (stop, stopping) = smimp_gateway::listen::Shutdown::new();
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for mode in [TlsMode::StartTls, TlsMode::Implicit] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let shutdown = stopping.clone();
        servers.push(tokio::spawn(smtp::run(
            listener,
            Some(Arc::clone(&tls)),
            mode,
            Arc::clone(&submission),
            config.clone(),
            shutdown,
        )));
    }
    Gateway {
        submission,
        starttls_port: ports[0],
        implicit_port: ports[1],
        ca_pem: std::fs::read(&certs.ca_file).unwrap(),
        ca_file: certs.ca_file,
        stop,
        servers,
    }
}

impl Gateway {
    fn client(
        &self,
        implicit: bool,
        mechanism: Mechanism,
        user: &str,
        password: &str,
    ) -> AsyncSmtpTransport<Tokio1Executor> {
        let parameters = TlsParameters::builder("127.0.0.1".into())
            .add_root_certificate(Certificate::from_pem(&self.ca_pem).unwrap())
            .build_rustls()
            .unwrap();
        let (tls, port) = if implicit {
            (Tls::Wrapper(parameters), self.implicit_port)
        } else {
            (Tls::Required(parameters), self.starttls_port)
        };
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
            .port(port)
            .tls(tls)
            .credentials(Credentials::new(user.into(), password.into()))
            .authentication(vec![mechanism])
            .timeout(Some(Duration::from_secs(20)))
            .build()
    }

    async fn stop(self) {
        self.stop.stop();
        for server in self.servers {
            server.await.unwrap().unwrap();
        }
    }
}

fn message(to: &str, body: String) -> Message {
    Message::builder()
        .from("Alice <alice@example.org>".parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject("hello over SMIMP")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn plain_and_login_over_starttls_and_implicit_tls_deliver() {
    let gateway = start(TestSubmission::default()).await;
    let mut sent = 0;
    for implicit in [false, true] {
        for mechanism in [Mechanism::Plain, Mechanism::Login] {
            let client = gateway.client(implicit, mechanism, "alice", "secret");
            let body = format!("sent with {mechanism:?}, implicit TLS: {implicit}\r\n.leading dot\r\n");
            let response = client.send(message("carol@example.org", body.clone())).await.unwrap();
            assert_eq!(response.code().to_string(), "250");
            sent += 1;
            let accepted = gateway.submission.accepted.lock().unwrap().last().cloned().unwrap();
            assert_eq!(accepted.account, "alice");
            assert_eq!(accepted.from, "alice@example.org");
            assert_eq!(accepted.recipients, ["carol@example.org"]);
            let text = String::from_utf8(accepted.message).unwrap();
            assert!(text.contains("Subject: hello over SMIMP\r\n"), "{text}");
            // lettre dot-stuffs the ".leading dot" line; the gateway unstuffs it again.
            assert!(text.contains(&format!("\r\n\r\n{body}")), "{text}");
        }
    }
    assert_eq!(gateway.submission.accepted.lock().unwrap().len(), sent);
    gateway.stop().await;
}

#[tokio::test]
async fn wrong_credentials_fail_identically() {
    let gateway = start(TestSubmission::default()).await;
    let mut answers = Vec::new();
    for implicit in [false, true] {
        for mechanism in [Mechanism::Plain, Mechanism::Login] {
            for (user, password) in [("alice", "wrong"), ("mallory", "secret"), ("", "")] {
                let client = gateway.client(implicit, mechanism, user, password);
                let error = client.send(message("carol@example.org", "x".into())).await.unwrap_err();
                assert_eq!(error.status().map(|c| c.to_string()).as_deref(), Some("535"));
                answers.push(error.to_string());
            }
        }
    }
    assert!(
        answers.iter().all(|a| a == "permanent error (535): 5.7.8 authentication credentials invalid"),
        "{answers:?}"
    );
    assert!(gateway.submission.accepted.lock().unwrap().is_empty());
    gateway.stop().await;
}

#[tokio::test]
async fn a_refused_recipient_gets_the_exact_code_and_text() {
    let gateway = start(TestSubmission::default()).await;
    let client = gateway.client(false, Mechanism::Plain, "alice", "secret");
    let error = client.send(message("bob@example.org", "hi".into())).await.unwrap_err();
    assert_eq!(error.status().map(|c| c.to_string()).as_deref(), Some("550"));
    assert_eq!(error.to_string(), "permanent error (550): 5.1.1 bob@example.org has no SMIMP profile");
    assert!(gateway.submission.accepted.lock().unwrap().is_empty());
    gateway.stop().await;
}

#[tokio::test]
async fn a_too_large_message_is_refused_with_552() {
    let gateway = start(TestSubmission::default()).await;
    let client = gateway.client(true, Mechanism::Plain, "alice", "secret");
    let body = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(MAX_SIZE / 66 + 10);
    let error = client.send(message("carol@example.org", body)).await.unwrap_err();
    assert_eq!(error.status().map(|c| c.to_string()).as_deref(), Some("552"));
    assert_eq!(
        error.to_string(),
        format!("permanent error (552): 5.3.4 message too big; the limit is {MAX_SIZE} octets")
    );
    assert!(gateway.submission.accepted.lock().unwrap().is_empty());
    gateway.stop().await;
}

#[tokio::test]
async fn the_message_is_accepted_only_after_accept_returns() {
    let gateway = start(TestSubmission { gate: Some((Notify::new(), Notify::new())), ..Default::default() }).await;
    let client = gateway.client(false, Mechanism::Login, "alice", "secret");
    let sending = tokio::spawn(async move { client.send(message("carol@example.org", "wait for it".into())).await });
    let (entered, open) = gateway.submission.gate.as_ref().unwrap();
    entered.notified().await;
    // accept is running and has not returned: the client must not have its 250 yet.
    // With the clock paused the sleep ends only once every task is idle and the loopback
    // sockets have nothing left to read, so a 250 written early would have reached the
    // client by then, however slow the machine. Paused here, once the session is set up,
    // so that nothing before this point can see its timers jumped forward.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!sending.is_finished());
    assert!(gateway.submission.accepted.lock().unwrap().is_empty());
    tokio::time::resume();
    open.notify_one();
    let response = sending.await.unwrap().unwrap();
    assert_eq!(response.code().to_string(), "250");
    assert_eq!(gateway.submission.accepted.lock().unwrap().len(), 1);
    gateway.stop().await;
}

/// Plaintext pipelined after STARTTLS is dropped, never read as if it came over TLS
/// (RFC 3207 §4.2), and the EHLO after TLS offers AUTH but not STARTTLS.
#[tokio::test]
async fn plaintext_injected_after_starttls_is_discarded() {
    let gateway = start(TestSubmission::default()).await;
    let tcp = TcpStream::connect(("127.0.0.1", gateway.starttls_port)).await.unwrap();
    let mut plain = BufReader::new(tcp);
    let mut line = String::new();
    plain.read_line(&mut line).await.unwrap();
    assert_eq!(line, "220 localhost ESMTP smimp-gateway ready\r\n");
    plain.get_mut().write_all(b"EHLO client.example\r\n").await.unwrap();
    let mut ehlo = Vec::new();
    loop {
        line.clear();
        plain.read_line(&mut line).await.unwrap();
        ehlo.push(line.clone());
        if line.as_bytes()[3] == b' ' {
            break;
        }
    }
    assert!(ehlo.contains(&"250-STARTTLS\r\n".to_string()), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "no AUTH before TLS: {ehlo:?}");
    plain.get_mut().write_all(b"STARTTLS\r\nMAIL FROM:<mallory@evil.example>\r\n").await.unwrap();
    line.clear();
    plain.read_line(&mut line).await.unwrap();
    assert_eq!(line, "220 2.0.0 ready to start TLS\r\n");
    assert!(plain.buffer().is_empty());

    let config = smimp_gateway::tls::client_config(std::slice::from_ref(&gateway.ca_file)).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, plain.into_inner()).await.unwrap();
    let mut tls = BufReader::new(tls);
    tls.get_mut().write_all(b"EHLO client.example\r\n").await.unwrap();
    let mut ehlo = Vec::new();
    loop {
        line.clear();
        tls.read_line(&mut line).await.unwrap();
        ehlo.push(line.clone());
        if line.as_bytes()[3] == b' ' {
            break;
        }
    }
    // The first answer is the EHLO reply, not one to the injected MAIL.
    assert!(ehlo[0].starts_with("250-localhost"), "{ehlo:?}");
    assert!(ehlo.contains(&"250-AUTH PLAIN LOGIN\r\n".to_string()), "{ehlo:?}");
    assert!(!ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    tls.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    line.clear();
    tls.read_line(&mut line).await.unwrap();
    assert_eq!(line, "221 2.0.0 localhost closing connection\r\n");
    gateway.stop().await;
}
