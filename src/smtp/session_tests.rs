//! Transcript tests of the SMTP session over an in-memory pipe (`tokio::io::duplex`)
//! with a paused clock: send a line, expect a line.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::Notify;

use crate::listen::{Incoming, Shutdown, StopHandle};
use tokio::task::JoinHandle;

use super::*;

/// A message the test backend accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Accepted {
    account: String,
    from: String,
    recipients: Vec<String>,
    message: Vec<u8>,
}

/// Knows alice/secret; refuses recipients at bob@; records what it accepts. With a
/// gate, `accept` announces itself and waits to be let through.
#[derive(Default)]
struct TestBackend {
    accepted: Mutex<Vec<Accepted>>,
    gate: Option<(Notify, Notify)>,
}

impl Submission for TestBackend {
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
        self.accepted.lock().unwrap().push(Accepted {
            account: account.clone(),
            from: from.into(),
            recipients: recipients.to_vec(),
            message,
        });
        Ok(())
    }
}

struct Client {
    io: BufReader<DuplexStream>,
}

impl Client {
    async fn send(&mut self, text: &str) {
        self.io.get_mut().write_all(text.as_bytes()).await.unwrap();
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.io.read_line(&mut line).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    async fn expect(&mut self, expected: &str) {
        assert_eq!(self.line().await, expected);
    }

    /// A whole reply, multi-line or not.
    async fn reply(&mut self) -> Vec<String> {
        let mut lines = vec![self.line().await];
        while lines.last().unwrap().as_bytes().get(3) == Some(&b'-') {
            lines.push(self.line().await);
        }
        lines
    }

    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        self.io.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "unexpected: {:?}", String::from_utf8_lossy(&rest));
    }

    async fn ehlo(&mut self) -> Vec<String> {
        self.send("EHLO client.example\r\n").await;
        self.reply().await
    }

    async fn login(&mut self) {
        self.ehlo().await;
        // "\0alice\0secret"
        self.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
        self.expect("235 2.7.0 authentication successful").await;
    }
}

struct Harness {
    client: Client,
    backend: Arc<TestBackend>,
    stop: StopHandle,
    server: JoinHandle<io::Result<()>>,
}

const LOOPBACK: &str = "127.0.0.1:40000";
const REMOTE: &str = "192.0.2.7:40000";

fn config() -> SmtpConfig {
    SmtpConfig { max_message_size: 1000, ..SmtpConfig::default() }
}

async fn start_with(config: SmtpConfig, peer: &str, backend: TestBackend) -> Harness {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let backend = Arc::new(backend);
    let (stop, stopping) = Shutdown::new();
    let incoming = Incoming::new(peer.parse().unwrap(), None, stopping);
    let server = tokio::spawn(serve(server, incoming, Arc::clone(&backend), Arc::new(config)));
    let mut client = Client { io: BufReader::new(client) };
    client.expect("220 localhost ESMTP smimp-gateway ready").await;
    Harness { client, backend, stop, server }
}

async fn start() -> Harness {
    start_with(config(), LOOPBACK, TestBackend::default()).await
}

#[tokio::test(start_paused = true)]
async fn a_message_goes_from_greeting_to_250_and_quit() {
    let mut h = start().await;
    assert_eq!(
        h.client.ehlo().await,
        [
            "250-localhost you had me at EHLO",
            "250-SMTPUTF8",
            "250-SIZE 1000",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-AUTH PLAIN LOGIN",
            "250 8BITMIME",
        ]
    );
    h.client.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
    h.client.expect("235 2.7.0 authentication successful").await;
    h.client.send("MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME\r\n").await;
    h.client.expect("250 2.1.0 sender OK").await;
    h.client.send("RCPT TO:<carol@example.org>\r\n").await;
    h.client.expect("250 2.1.5 recipient OK").await;
    h.client.send("RCPT TO:<dave@example.net>\r\n").await;
    h.client.expect("250 2.1.5 recipient OK").await;
    // The backend's own text for an accepted recipient, on one line whatever it holds.
    h.client.send("RCPT TO:<erin@legacy.example>\r\n").await;
    h.client.expect("250 2.1.5 relayed as plain email  INJECTED").await;
    h.client.send("DATA\r\n").await;
    h.client.expect("354 end data with <CR><LF>.<CR><LF>").await;
    h.client.send("Subject: hello\r\n\r\n..leading dot\r\nbody\r\n.\r\n").await;
    h.client.expect("250 2.0.0 message accepted for delivery").await;
    h.client.send("QUIT\r\n").await;
    h.client.expect("221 2.0.0 localhost closing connection").await;
    h.client.expect_closed().await;
    h.server.await.unwrap().unwrap();
    assert_eq!(
        *h.backend.accepted.lock().unwrap(),
        [Accepted {
            account: "alice".into(),
            from: "alice@example.org".into(),
            recipients: vec!["carol@example.org".into(), "dave@example.net".into(), "erin@legacy.example".into()],
            message: b"Subject: hello\r\n\r\n.leading dot\r\nbody\r\n".to_vec(),
        }]
    );
}

#[tokio::test(start_paused = true)]
async fn mail_needs_authentication_and_the_right_order() {
    let mut h = start().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\n").await;
    h.client.expect("503 5.5.1 send EHLO first").await;
    h.client.ehlo().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\n").await;
    h.client.expect("530 5.7.0 authentication required").await;
    h.client.send("RCPT TO:<carol@example.org>\r\n").await;
    h.client.expect("503 5.5.1 send MAIL first").await;
    h.client.send("DATA\r\n").await;
    h.client.expect("503 5.5.1 send MAIL first").await;
    h.client.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
    h.client.expect("235 2.7.0 authentication successful").await;
    h.client.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
    h.client.expect("503 5.5.1 already authenticated").await;
    h.client.send("MAIL FROM:<alice@example.org>\r\n").await;
    h.client.expect("250 2.1.0 sender OK").await;
    h.client.send("MAIL FROM:<alice@example.org>\r\n").await;
    h.client.expect("503 5.5.1 a mail transaction is already open").await;
    h.client.send("DATA\r\n").await;
    h.client.expect("503 5.5.1 send RCPT first").await;
    h.client.send("RSET\r\n").await;
    h.client.expect("250 2.0.0 reset").await;
    h.client.send("RCPT TO:<carol@example.org>\r\n").await;
    h.client.expect("503 5.5.1 send MAIL first").await;
}

#[tokio::test(start_paused = true)]
async fn auth_without_tls_only_from_loopback_and_only_when_allowed() {
    let mut h = start_with(config(), REMOTE, TestBackend::default()).await;
    let ehlo = h.client.ehlo().await;
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    h.client.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
    h.client.expect("538 5.7.11 encryption required: use STARTTLS before AUTH").await;
    // No STARTTLS without a TLS configuration.
    h.client.send("STARTTLS\r\n").await;
    h.client.expect("502 5.5.1 STARTTLS is not offered").await;

    let strict = SmtpConfig { allow_plain_auth_on_loopback: false, ..config() };
    let mut h = start_with(strict, LOOPBACK, TestBackend::default()).await;
    let ehlo = h.client.ehlo().await;
    assert!(!ehlo.iter().any(|l| l.contains("AUTH")), "{ehlo:?}");
    h.client.send("AUTH LOGIN\r\n").await;
    h.client.expect("538 5.7.11 encryption required: use STARTTLS before AUTH").await;

    // An IPv4-mapped loopback address is loopback.
    let mut h = start_with(config(), "[::ffff:127.0.0.1]:40000", TestBackend::default()).await;
    h.client.login().await;
}

#[tokio::test(start_paused = true)]
async fn failed_auth_answers_are_identical_throttled_and_end_the_connection() {
    let mut h = start().await;
    h.client.ehlo().await;
    let attempts = [
        // wrong password: "\0alice\0wrong"
        "AUTH PLAIN AGFsaWNlAHdyb25n\r\n",
        // unknown user: "\0mallory\0secret"
        "AUTH PLAIN AG1hbGxvcnkAc2VjcmV0\r\n",
        // someone else's authorization identity: "bob\0alice\0secret"
        "AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n",
    ];
    let mut delays = Vec::new();
    for attempt in attempts {
        let started = tokio::time::Instant::now();
        h.client.send(attempt).await;
        h.client.expect("535 5.7.8 authentication credentials invalid").await;
        delays.push(started.elapsed().as_secs());
    }
    assert_eq!(delays, [1, 2, 4]);
    h.client.expect("421 4.7.0 localhost too many failed authentication attempts; closing").await;
    h.client.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn login_works_fails_like_plain_and_can_be_cancelled() {
    let mut h = start().await;
    h.client.ehlo().await;
    h.client.send("AUTH LOGIN\r\n").await;
    h.client.expect("334 VXNlcm5hbWU6").await;
    h.client.send("*\r\n").await;
    h.client.expect("501 5.0.0 authentication cancelled").await;
    // LOGIN with the username as initial response, a wrong password.
    h.client.send("AUTH LOGIN YWxpY2U=\r\n").await;
    h.client.expect("334 UGFzc3dvcmQ6").await;
    h.client.send("d3Jvbmc=\r\n").await;
    h.client.expect("535 5.7.8 authentication credentials invalid").await;
    // Undecodable base64 is a syntax error, still counted and delayed.
    h.client.send("AUTH PLAIN\r\n").await;
    h.client.expect("334 ").await;
    h.client.send("not base64!\r\n").await;
    h.client.expect("501 5.5.2 cannot decode the authentication response").await;
    h.client.send("AUTH CRAM-MD5\r\n").await;
    h.client.expect("504 5.5.4 unrecognised authentication mechanism; use PLAIN or LOGIN").await;
    // Two failures so far; the right credentials still work.
    h.client.send("AUTH LOGIN\r\n").await;
    h.client.expect("334 VXNlcm5hbWU6").await;
    h.client.send("YWxpY2U=\r\n").await;
    h.client.expect("334 UGFzc3dvcmQ6").await;
    h.client.send("c2VjcmV0\r\n").await;
    h.client.expect("235 2.7.0 authentication successful").await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_recipient_gets_the_backends_code_and_words() {
    let mut h = start().await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\n").await;
    h.client.expect("250 2.1.0 sender OK").await;
    h.client.send("RCPT TO:<bob@example.org>\r\n").await;
    h.client.expect("550 5.1.1 bob@example.org has no SMIMP profile").await;
    h.client.send("DATA\r\n").await;
    h.client.expect("554 5.5.1 no valid recipients").await;
    h.client.send("RCPT TO:<jörg@example.org>\r\n").await;
    h.client.expect("553 5.6.7 a non-ASCII address needs the SMTPUTF8 parameter").await;
    h.client.send("RCPT TO:<bob@example.org> NOTIFY=NEVER\r\n").await;
    h.client.expect("555 5.5.4 parameter NOTIFY is not supported").await;
    h.client.send("RSET\r\n").await;
    h.client.expect("250 2.0.0 reset").await;
    h.client.send("MAIL FROM:<jörg@example.org> SMTPUTF8\r\n").await;
    h.client.expect("250 2.1.0 sender OK").await;
    h.client.send("RCPT TO:<jörg@example.org>\r\n").await;
    h.client.expect("250 2.1.5 recipient OK").await;
}

#[tokio::test(start_paused = true)]
async fn pipelined_commands_are_answered_in_order() {
    let mut h = start().await;
    h.client.login().await;
    h.client
        .send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n")
        .await;
    h.client.expect("250 2.1.0 sender OK").await;
    h.client.expect("550 5.1.1 bob@example.org has no SMIMP profile").await;
    h.client.expect("250 2.1.5 recipient OK").await;
    h.client.expect("354 end data with <CR><LF>.<CR><LF>").await;
    h.client.send(".\r\nNOOP\r\n").await;
    h.client.expect("250 2.0.0 message accepted for delivery").await;
    h.client.expect("250 2.0.0 OK").await;
    // An immediate "." ends the data: an empty message.
    let accepted = h.backend.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].recipients, ["carol@example.org"]);
    assert!(accepted[0].message.is_empty());
}

#[tokio::test(start_paused = true)]
async fn smuggled_commands_stay_inside_a_message_that_is_refused() {
    let smuggled = "MAIL FROM:<mallory@evil.example>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\nforged\r\n";
    for (fake_end, reply) in [
        ("\n.\n", "554 5.5.2 message refused: it contains a bare LF; every line must end with CRLF"),
        ("\r.\r", "554 5.5.2 message refused: it contains a bare CR; every line must end with CRLF"),
        ("\r\n.\n", "554 5.5.2 message refused: it contains a bare LF; every line must end with CRLF"),
    ] {
        let mut h = start().await;
        h.client.login().await;
        h.client.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n").await;
        h.client.expect("250 2.1.0 sender OK").await;
        h.client.expect("250 2.1.5 recipient OK").await;
        h.client.expect("354 end data with <CR><LF>.<CR><LF>").await;
        h.client.send(&format!("Subject: x\r\n\r\nhello{fake_end}{smuggled}.\r\nNOOP\r\n")).await;
        // One reply for the whole message, none for the smuggled commands.
        h.client.expect(reply).await;
        h.client.expect("250 2.0.0 OK").await;
        assert!(h.backend.accepted.lock().unwrap().is_empty(), "{fake_end:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn size_limits_are_enforced_before_and_after_data() {
    let mut h = start().await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org> SIZE=1001\r\n").await;
    h.client.expect("552 5.3.4 message too big; the limit is 1000 octets").await;
    h.client.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n").await;
    h.client.reply().await;
    h.client.reply().await;
    h.client.expect("354 end data with <CR><LF>.<CR><LF>").await;
    let line = format!("{}\r\n", "x".repeat(98));
    h.client.send(&line.repeat(11)).await;
    h.client.send(".\r\n").await;
    h.client.expect("552 5.3.4 message too big; the limit is 1000 octets").await;
    // A line over 1000 octets within the size limit.
    let big = SmtpConfig { max_message_size: 10_000, ..config() };
    let mut h = start_with(big, LOOPBACK, TestBackend::default()).await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n").await;
    h.client.reply().await;
    h.client.reply().await;
    h.client.reply().await;
    h.client.send(&format!("ok\r\n{}\r\n.\r\n", "y".repeat(999))).await;
    h.client.expect("554 5.5.2 message refused: line 2 is longer than 1000 octets").await;
    assert!(h.backend.accepted.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_250_comes_only_after_accept_returns() {
    let backend = TestBackend { gate: Some((Notify::new(), Notify::new())), ..TestBackend::default() };
    let mut h = start_with(config(), LOOPBACK, backend).await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n").await;
    for _ in 0..3 {
        h.client.reply().await;
    }
    h.client.send("hi\r\n.\r\n").await;
    let (entered, open) = h.backend.gate.as_ref().unwrap();
    entered.notified().await;
    // While accept is pending, nothing is answered (the paused clock runs the full hour).
    assert!(tokio::time::timeout(Duration::from_secs(3600), h.client.line()).await.is_err());
    assert!(h.backend.accepted.lock().unwrap().is_empty());
    open.notify_one();
    h.client.expect("250 2.0.0 message accepted for delivery").await;
    assert_eq!(h.backend.accepted.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn other_commands() {
    let mut h = start().await;
    h.client.send("HELO client\r\n").await;
    h.client.expect("250 localhost").await;
    h.client.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n").await;
    h.client.expect("503 5.5.1 send EHLO first").await;
    h.client.send("NOOP\r\n").await;
    h.client.expect("250 2.0.0 OK").await;
    h.client.send("VRFY bob\r\n").await;
    h.client.expect("252 2.0.0 cannot VRFY; RCPT tells whether a recipient can be reached").await;
    h.client.send("EXPN staff\r\n").await;
    h.client.expect("502 5.5.1 EXPN is not offered").await;
    h.client.send("HELP\r\n").await;
    assert_eq!(
        h.client.reply().await,
        [
            "214-2.0.0 smimp-gateway mail submission (RFC 6409)",
            "214 2.0.0 commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"
        ]
    );
    h.client.send("ETRN example.org\r\n").await;
    h.client.expect("502 5.5.1 ETRN is not offered").await;
    h.client.send("FROB\r\n").await;
    h.client.expect("500 5.5.1 command not recognised").await;
    h.client.send("MAIL FROM:<a..b@example.org>\r\n").await;
    h.client.expect("501 5.1.7 bad sender address syntax").await;
    h.client.send(&format!("NOOP {}RSET\r\nNOOP\r\n", "x".repeat(3000))).await;
    h.client.expect("500 5.5.2 line too long; the limit is 2048 octets").await;
    h.client.expect("250 2.0.0 OK").await;
    h.client.send_bytes(b"NOOP a\rb\r\n").await;
    h.client.expect("500 5.5.2 a CR must be followed by LF").await;
    h.client.send("BDAT 5 LAST\r\nhello").await;
    h.client.expect("502 5.5.1 BDAT is not offered; closing, as its data cannot be told from commands").await;
    h.client.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn too_many_errors_close_the_connection() {
    let mut h = start().await;
    for _ in 0..19 {
        h.client.send("FROB\r\n").await;
        h.client.expect("500 5.5.1 command not recognised").await;
    }
    h.client.send("FROB\r\n").await;
    h.client.expect("500 5.5.1 command not recognised").await;
    h.client.expect("421 4.7.0 localhost too many errors; closing").await;
    h.client.expect_closed().await;
}

#[tokio::test(start_paused = true)]
async fn idle_connections_time_out() {
    // Before AUTH, the login timeout.
    let mut h = start().await;
    let started = tokio::time::Instant::now();
    h.client.expect("421 4.4.2 localhost no login in time; closing").await;
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    h.client.expect_closed().await;
    // After it, the command timeout.
    let mut h = start().await;
    h.client.login().await;
    let started = tokio::time::Instant::now();
    h.client.expect("421 4.4.2 localhost idle for too long; closing").await;
    assert_eq!(started.elapsed(), Duration::from_secs(300));
    h.client.expect_closed().await;
    // In DATA too.
    let quick = SmtpConfig { data_timeout: Duration::from_secs(7), ..config() };
    let mut h = start_with(quick, LOOPBACK, TestBackend::default()).await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\npart of a mess").await;
    for _ in 0..3 {
        h.client.reply().await;
    }
    let started = tokio::time::Instant::now();
    h.client.expect("421 4.4.2 localhost idle for too long; closing").await;
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert!(h.backend.accepted.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_idle_sessions_and_lets_transactions_finish() {
    // Idle: 421 at once.
    let mut h = start().await;
    h.client.login().await;
    h.stop.stop();
    h.client.expect("421 4.3.2 localhost shutting down; try again later").await;
    h.client.expect_closed().await;
    h.server.await.unwrap().unwrap();

    // In a transaction: it finishes, then 421.
    let mut h = start().await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n").await;
    for _ in 0..3 {
        h.client.reply().await;
    }
    h.client.send("first part\r\n").await;
    h.stop.stop();
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.client.send("second part\r\n.\r\n").await;
    h.client.expect("250 2.0.0 message accepted for delivery").await;
    h.client.expect("421 4.3.2 localhost shutting down; try again later").await;
    h.client.expect_closed().await;
    assert_eq!(h.backend.accepted.lock().unwrap()[0].message, b"first part\r\nsecond part\r\n");

    // A transaction that does not finish within the grace period gets 421.
    let mut h = start().await;
    h.client.login().await;
    h.client.send("MAIL FROM:<alice@example.org>\r\n").await;
    h.client.reply().await;
    let started = tokio::time::Instant::now();
    h.stop.stop();
    h.client.expect("421 4.3.2 localhost shutting down; try again later").await;
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    h.client.expect_closed().await;
}
