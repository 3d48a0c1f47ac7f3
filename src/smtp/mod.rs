//! The SMTP submission front-end: mail clients (Thunderbird, Outlook, mutt, ...) hand
//! their outgoing mail to the gateway here, on 127.0.0.1, with STARTTLS on the plain
//! port and implicit TLS on a second one. What happens to a message is the backend's
//! business, reached only through the [`Submission`] trait.
//!
//! Standards: RFC 5321 (SMTP), RFC 6409 (message submission: AUTH before MAIL), RFC 4954
//! (AUTH; PLAIN per RFC 4616 and LOGIN), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS),
//! RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 2034 and RFC 3463
//! (enhanced status codes), RFC 6531 (SMTPUTF8).
//!
//! Layout (sans-I/O codecs under an async session):
//! - `codec` and `data` (pure): command lines and SASL lines framed with a length
//!   limit and parsed with smtp-proto; DATA with dot-unstuffing, the size limit and an
//!   end-of-data detection that resists SMTP smuggling (only `CRLF . CRLF` ends a
//!   message; one with a bare CR or LF is refused with 5.5.2).
//! - `reply` (pure): reply formatting with smtp-proto; `sasl` (pure): PLAIN and LOGIN.
//! - `session`: the state machine over any `AsyncRead + AsyncWrite` stream — input
//!   mode, transaction and session state kept apart — with timeouts, STARTTLS, AUTH
//!   throttling and the one function that maps errors to replies.
//! - [`run`]: the listener loop and graceful shutdown.
//!
//! Must not depend on anything else in the crate (client, server, store, keystore,
//! backend) but the leaf `listen`: only std, tokio (with tokio-rustls), rustls, smtp-proto and tracing (and
//! thiserror's derive). Never logs message bodies, passwords or SASL responses.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use crate::listen::TlsMode;
use crate::listen::{Guest, Guests, Incoming, Limits, Shutdown};

mod codec;
mod data;
mod reply;
mod sasl;
mod session;

/// What the gateway's backend does for the SMTP front-end. Implementations decide who
/// may log in, which recipients are reachable and what happens to a message; a
/// [`Refusal`] becomes the SMTP reply as it is.
pub trait Submission: Send + Sync + 'static {
    /// The account an authenticated connection acts for.
    type Account: Send + Sync + 'static;

    /// Checks a login. `None` for any failure (unknown user, wrong password, locked
    /// account): the client sees the same answer whatever failed.
    fn authenticate(&self, username: &str, password: &str) -> impl Future<Output = Option<Self::Account>> + Send;

    /// Decides whether the logged-in account may give `mail_from` (as in `MAIL FROM`,
    /// empty for the null reverse-path) as the envelope sender, e.g.
    /// `Refusal::new(553, [5, 7, 1], "…")`. The default takes any sender, as a relay that
    /// trusts its users does; the gateway holds it to the account.
    fn check_sender(&self, account: &Self::Account, mail_from: &str) -> Result<(), Refusal> {
        let _ = (account, mail_from);
        Ok(())
    }

    /// Decides whether `recipient` (as given in `RCPT TO`) can be sent to, e.g.
    /// `Refusal::new(550, [5, 1, 1], "bob@example.org has no SMIMP profile")`. An
    /// accepted recipient's [`RecipientOk`] text is the `250` reply's, so the client can
    /// be told how the recipient will be reached.
    fn check_recipient(
        &self,
        account: &Self::Account,
        recipient: &str,
    ) -> impl Future<Output = Result<RecipientOk, Refusal>> + Send;

    /// Takes a complete message (RFC 5322 bytes, dot-unstuffed, CRLF line ends) for
    /// the recipients that passed [`Submission::check_recipient`]. `mail_from` is empty
    /// for the null reverse-path. The client is told `250` only after this returns
    /// `Ok`, so `Ok` must mean the message is stored durably.
    fn accept(
        &self,
        account: &Self::Account,
        mail_from: &str,
        recipients: &[String],
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;
}

/// The backend's yes to a recipient: the text of the `250 2.1.5` reply. Control
/// characters in it are replaced by spaces when written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOk {
    text: String,
}

impl RecipientOk {
    /// The plain yes: `250 2.1.5 recipient OK`.
    pub fn ok() -> Self {
        Self::with_text("recipient OK")
    }

    /// A yes that says something the client's user should know (how the recipient is reached).
    pub fn with_text(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// A negative SMTP reply chosen by the backend: a 4xx or 5xx code, an enhanced status
/// code (RFC 3463) of the same class and plain words. Control characters in the text
/// are replaced by spaces when written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    code: u16,
    status: [u8; 3],
    text: String,
}

impl Refusal {
    /// A refusal, e.g. `Refusal::new(550, [5, 1, 1], "bob@example.org has no SMIMP
    /// profile")`. It is always a valid negative reply: a code outside 400–599 becomes
    /// 451 (if it started with 4) or 554, and the status code's class follows the code.
    pub fn new(code: u16, status: [u8; 3], text: impl Into<String>) -> Self {
        let code = match code {
            400..=599 => code,
            _ if status[0] == 4 => 451,
            _ => 554,
        };
        let [_, subject, detail] = status;
        // Reply codes are three digits, so the class fits a u8.
        let class = u8::try_from(code / 100).unwrap_or(5);
        Refusal { code, status: [class, subject, detail], text: text.into() }
    }

    /// A temporary failure: `451 4.3.0` with `text`.
    pub fn temporary(text: impl Into<String>) -> Self {
        Refusal::new(451, [4, 3, 0], text)
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn status(&self) -> [u8; 3] {
        self.status
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [class, subject, detail] = self.status;
        write!(f, "{} {class}.{subject}.{detail} {}", self.code, self.text)
    }
}

/// Limits and policy of the SMTP front-end. The defaults suit a local gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// The largest message, in octets (advertised as SIZE).
    pub max_message_size: usize,
    /// The most recipients of one message.
    pub max_recipients: usize,
    /// The longest command line with its CRLF (RFC 5321 says at least 512).
    pub max_command_line: usize,
    /// The longest line of a message with its CRLF (RFC 5321 §4.5.3.1.6: 1000).
    pub max_data_line: usize,
    /// AUTH without TLS from a loopback address (the customary set-up for a local
    /// bridge); elsewhere AUTH needs TLS.
    pub allow_plain_auth_on_loopback: bool,
    /// How long to wait for the next command once authenticated.
    pub command_timeout: Duration,
    /// How long a connection that has not authenticated waits for its next command
    /// (the shorter of this and `command_timeout`): a mail client authenticates at
    /// once; an idle stranger only holds a place.
    pub login_timeout: Duration,
    /// How long to wait for more message data.
    pub data_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Failed AUTH attempts after which the connection is closed.
    pub max_auth_failures: u32,
    /// The delay before answering the first failed AUTH; it doubles with each further
    /// failure of the connection (at most 30 seconds).
    pub auth_failure_delay: Duration,
    /// Connections served at once; more are told 421.
    pub max_connections: usize,
    /// Connections not authenticated yet, at once (below `max_connections`); a
    /// newcomer beyond it closes the oldest of them, so they never keep a client out.
    pub max_unauthenticated: usize,
    /// After shutdown is requested, how long an open transaction may take to finish
    /// before it is told 421.
    pub shutdown_grace: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: "localhost".into(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_command_line: 2048,
            max_data_line: 1000,
            allow_plain_auth_on_loopback: true,
            command_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(30),
            data_timeout: Duration::from_secs(300),
            tls_handshake_timeout: Duration::from_secs(30),
            max_auth_failures: 3,
            auth_failure_delay: Duration::from_secs(1),
            max_connections: 64,
            max_unauthenticated: 16,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves SMTP submission on `listener` until `shutdown`. Then it stops accepting,
/// tells idle connections `421`, lets open transactions finish for
/// `config.shutdown_grace` (then `421`), and returns once every connection has ended.
/// The caller binds the socket (port 0 in tests) and owns shutdown.
pub async fn run<B: Submission>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mode: TlsMode,
    submission: Arc<B>,
    config: SmtpConfig,
    shutdown: Shutdown,
) -> io::Result<()> {
    let acceptor = mode.acceptor(tls)?;
    let config = Arc::new(config);
    let name = if mode == TlsMode::Implicit { "SMTP (implicit TLS)" } else { "SMTP" };
    let limits = Limits::refusing(name, config.max_connections, config.shutdown_grace + config.tls_handshake_timeout);
    let refusing = Arc::clone(&config);
    let guests = Guests::new(config.max_unauthenticated);
    let serve = |tcp, peer, guest| {
        let submission = Arc::clone(&submission);
        let (config, shutdown) = (Arc::clone(&config), shutdown.clone());
        Connection { peer, acceptor: acceptor.clone(), submission, config, shutdown }.serve(tcp, mode, guest)
    };
    let refuse = |tcp, _| session::refuse_busy(tcp, mode, Arc::clone(&refusing));
    crate::listen::serve_guests(listener, limits, Some(guests), shutdown.clone(), serve, refuse).await;
    Ok(())
}

/// One accepted connection and what serving it needs.
struct Connection<B: Submission> {
    peer: SocketAddr,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    submission: Arc<B>,
    config: Arc<SmtpConfig>,
    shutdown: Shutdown,
}

impl<B: Submission> Connection<B> {
    async fn serve(self, tcp: tokio::net::TcpStream, mode: TlsMode, guest: Guest) -> io::Result<()> {
        let Connection { peer, acceptor, submission, config, shutdown } = self;
        let accepted = Incoming::new(peer, acceptor, shutdown).with_guest(guest);
        let Some((io, accepted)) = accepted.open(tcp, mode, config.tls_handshake_timeout).await else {
            return Ok(());
        };
        session::serve(io, accepted, submission, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_always_valid_negative_replies() {
        let r = Refusal::new(550, [5, 1, 1], "bob@example.org has no SMIMP profile");
        assert_eq!(r.to_string(), "550 5.1.1 bob@example.org has no SMIMP profile");
        assert_eq!((r.code(), r.status(), r.text()), (550, [5, 1, 1], "bob@example.org has no SMIMP profile"));
        assert_eq!(Refusal::new(250, [2, 0, 0], "ok?").to_string(), "554 5.0.0 ok?");
        assert_eq!(Refusal::new(250, [4, 0, 0], "later").to_string(), "451 4.0.0 later");
        assert_eq!(Refusal::new(452, [5, 2, 2], "full").to_string(), "452 4.2.2 full");
        assert_eq!(Refusal::temporary("try later").to_string(), "451 4.3.0 try later");
    }
}
