//! One IMAP connection over any `AsyncRead + AsyncWrite` stream (a TCP socket, a TLS
//! stream, an in-memory pipe): the greeting, framing commands out of the byte stream,
//! literals and their limits, autologout, STARTTLS, shutdown and refusing a connection
//! over the cap. What a command does is `command`'s business; this module owns the
//! bytes and the loop around it, so that the handlers never touch a socket except
//! where the protocol makes them (AUTHENTICATE, a long FETCH, IDLE).
//!
//! RFC 3501 §5.4 (autologout), §5.5 (pipelining); RFC 7888 (literals over the limit:
//! a synchronizing one is refused before its continuation, a non-synchronizing one gets
//! BAD and the connection is closed, as its bytes cannot be told from commands);
//! RFC 2595 / RFC 3501 §6.2.1 (STARTTLS; buffered plaintext is dropped). Depends only
//! on std, tokio, tokio-rustls, imap-codec, tracing and the sibling modules.

use crate::imap::condstore::Enabled;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::fragmentizer::{DecodeMessageError, FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::command::Command;
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::IntoStatic;
use imap_codec::CommandCodec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::command;
use super::flow::State;
use super::response::{capabilities, response_for, Flow, ImapError};
use super::{ImapConfig, MailStore, TlsMode};
use crate::listen::{password_allowed, tls_handshake, AckNow, Guest, Incoming, Shutdown};

/// Client mistakes (BAD responses) after which the connection is closed.
const MAX_ERRORS: u32 = 30;
/// How much is read from the stream at once.
const READ_CHUNK: usize = 16 * 1024;
/// Room for the command line around the largest literal.
pub(super) const LINE_ALLOWANCE: u32 = 64 * 1024;

/// What the listener shares with every session.
pub(crate) struct Shared<S: MailStore> {
    pub store: Arc<S>,
    pub config: Arc<ImapConfig>,
}

/// One accepted connection and what serving it needs.
pub(crate) struct Connection<S: MailStore> {
    pub peer: SocketAddr,
    pub acceptor: Option<tokio_rustls::TlsAcceptor>,
    pub store: Arc<S>,
    pub config: Arc<ImapConfig>,
    pub shutdown: Shutdown,
}

impl<S: MailStore> Connection<S> {
    pub(crate) async fn serve(self, tcp: tokio::net::TcpStream, mode: TlsMode, guest: Guest) -> io::Result<()> {
        let Connection { peer, acceptor, store, config, shutdown } = self;
        let accepted = Incoming::new(peer, acceptor, shutdown).with_guest(guest);
        let Some((io, accepted)) = accepted.open(tcp, mode, config.tls_handshake_timeout).await else {
            return Ok(());
        };
        serve(io, accepted, Shared { store, config }).await
    }
}

/// What waiting for input ended with.
pub(crate) enum Read {
    /// A complete message is in the fragmentizer.
    Message,
    Closed,
    TimedOut,
    Shutdown,
    /// A non-synchronizing literal over the limit was refused: what follows cannot be
    /// told from commands, so the connection must close.
    Unreadable,
    /// The connection has not logged in and its place is needed for a newcomer.
    Evicted,
}

/// The byte side of a connection: the stream, the framing of what comes in and the
/// responses waiting to go out.
pub(crate) struct Link<IO> {
    pub io: IO,
    pub fragmentizer: Fragmentizer,
    pub out: Vec<u8>,
    pub shutdown: Shutdown,
    /// The connection's place among those not logged in yet.
    pub guest: Guest,
    /// The largest literal accepted, in octets.
    max_literal: u32,
    /// Early acknowledgements on the TCP socket (see [`AckNow`]).
    pub ack: AckNow,
}

/// Writes out what is buffered in `out`.
pub(crate) async fn flush<IO: AsyncWrite + Unpin>(io: &mut IO, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.flush().await
}

/// What a literal announcement leads to.
enum Announced {
    Incoming,
    /// Refused with a response; the connection goes on.
    Refused,
    Unreadable,
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Link<IO> {
    /// A link over `io` with nothing framed yet.
    fn new(io: IO, max_literal: u32, shutdown: Shutdown, guest: Guest) -> Self {
        let fragmentizer = Fragmentizer::new(max_literal.saturating_add(LINE_ALLOWANCE));
        Link { io, fragmentizer, out: Vec::new(), shutdown, guest, max_literal, ack: AckNow::none() }
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        flush(&mut self.io, &mut self.out).await
    }

    /// Reads until a complete message is framed, answering literal announcements on
    /// the way: `+` for an acceptable synchronizing literal, a refusal for one over the
    /// limit.
    pub(crate) async fn read_message(&mut self, timeout: Duration) -> io::Result<Read> {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            while let Some(fragment) = self.fragmentizer.progress() {
                if let FragmentInfo::Line { announcement: Some(LiteralAnnouncement { mode, length }), .. } = fragment {
                    match self.announced(mode, length) {
                        Announced::Incoming => {}
                        Announced::Refused => {
                            self.flush().await?;
                            continue;
                        }
                        Announced::Unreadable => return Ok(Read::Unreadable),
                    }
                }
                if self.fragmentizer.is_message_complete() {
                    return Ok(Read::Message);
                }
            }
            self.flush().await?;
            self.ack.arm();
            let read = tokio::select! {
                read = self.io.read(&mut chunk) => read?,
                () = tokio::time::sleep_until(deadline) => return Ok(Read::TimedOut),
                () = self.shutdown.requested() => return Ok(Read::Shutdown),
                () = self.guest.evicted() => return Ok(Read::Evicted),
            };
            if read == 0 {
                return Ok(Read::Closed);
            }
            self.fragmentizer.enqueue_bytes(&chunk[..read]);
        }
    }

    /// Answers a literal announcement: over the limit it is refused and skipped; a
    /// synchronizing one within it gets its continuation.
    fn announced(&mut self, mode: LiteralMode, length: u32) -> Announced {
        let tag = self.fragmentizer.decode_tag().map(|t| t.as_ref().to_string());
        if length > self.max_literal {
            let error = match mode {
                LiteralMode::Sync => ImapError::LiteralTooBig(length),
                LiteralMode::NonSync => ImapError::NonSyncLiteralTooBig(length),
            };
            tracing::info!(length, "literal over the limit refused");
            let (text, flow) = response_for(tag.as_deref(), &error, self.max_literal);
            self.out.extend_from_slice(text.as_bytes());
            self.fragmentizer.skip_message();
            return if flow == Flow::Close { Announced::Unreadable } else { Announced::Refused };
        }
        if mode == LiteralMode::Sync {
            if tag.is_some() {
                self.out.extend_from_slice(b"+ Ready for literal data\r\n");
            } else {
                // Unclear what follows: read on, but do not decode it.
                self.fragmentizer.poison_message();
            }
        }
        Announced::Incoming
    }
}

/// One connection's session: who it is, where it stands, what it has done wrong.
pub(crate) struct Session<S: MailStore> {
    pub shared: Shared<S>,
    pub peer: SocketAddr,
    pub tls: bool,
    pub starttls_offered: bool,
    pub state: State<S::Account>,
    pub auth_failures: u32,
    pub errors: u32,
    /// CONDSTORE and QRESYNC, once the client turned them on (RFC 7162).
    pub enabled: Enabled,
}

impl<S: MailStore> Session<S> {
    pub(crate) fn capabilities(&self) -> String {
        let logged_in = !matches!(self.state, State::NotAuthenticated);
        capabilities(logged_in, self.starttls_offered && !self.tls, self.auth_allowed())
    }

    /// Whether LOGIN and AUTHENTICATE may be used: over TLS, or from loopback when
    /// the configuration allows it.
    pub(crate) fn auth_allowed(&self) -> bool {
        password_allowed(self.tls, self.shared.config.allow_plain_auth_on_loopback, self.peer.ip())
    }

    /// Writes the response for an error and counts client mistakes.
    pub(crate) fn fail(&mut self, out: &mut Vec<u8>, tag: Option<&str>, error: &ImapError) -> Flow {
        let (text, mut flow) = response_for(tag, error, self.shared.config.max_literal_size);
        out.extend_from_slice(text.as_bytes());
        if error.counts_as_error() {
            self.errors += 1;
            if self.errors >= MAX_ERRORS {
                let (text, close) = response_for(None, &ImapError::TooManyErrors, 0);
                out.extend_from_slice(text.as_bytes());
                flow = close;
            }
        }
        flow
    }
}

/// Serves one connection: the greeting, commands until LOGOUT, an error that closes,
/// autologout or shutdown, and STARTTLS through `starttls` when it is given and `tls`
/// is false.
pub(crate) async fn serve<IO, S>(io: IO, accepted: Incoming, shared: Shared<S>) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    let Incoming { peer, ack, tls, starttls, shutdown, guest } = accepted;
    let max_literal = shared.config.max_literal_size;
    let mut link = Link::new(io, max_literal, shutdown, guest);
    link.ack = ack;
    let mut session = Session {
        peer,
        tls,
        starttls_offered: starttls.is_some() && !tls,
        state: State::NotAuthenticated,
        auth_failures: 0,
        errors: 0,
        enabled: Enabled::default(),
        shared,
    };
    tracing::debug!(tls, "connected");
    if link.shutdown.is_requested() {
        link.out.extend_from_slice(b"* BYE shutting down\r\n");
        return link.flush().await;
    }
    let greeting = format!("* OK [CAPABILITY {}] smimp-gateway IMAP ready\r\n", session.capabilities());
    link.out.extend_from_slice(greeting.as_bytes());
    let flow = drive(&mut session, &mut link).await?;
    let Some(acceptor) = starttls.filter(|_| flow == Flow::StartTls) else {
        let _ = link.io.shutdown().await;
        return Ok(());
    };
    // Whatever was sent after STARTTLS in the clear is dropped (RFC 3501 §6.2.1).
    let Link { io, shutdown, guest, ack, .. } = link;
    let timeout = session.shared.config.tls_handshake_timeout;
    let io = tokio::select! {
        io = tls_handshake(&acceptor, io, timeout) => io,
        () = guest.evicted() => None,
    };
    let Some(io) = io else {
        return Ok(());
    };
    let mut link = Link::new(io, max_literal, shutdown, guest);
    link.ack = ack;
    session.tls = true;
    session.starttls_offered = false;
    tracing::debug!("TLS started");
    drive(&mut session, &mut link).await?;
    let _ = link.io.shutdown().await;
    Ok(())
}

/// Reads, decodes and answers commands until the flow is no longer `Continue`.
async fn drive<IO, S>(session: &mut Session<S>, link: &mut Link<IO>) -> io::Result<Flow>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    loop {
        let logged_in = !matches!(session.state, State::NotAuthenticated);
        let config = &session.shared.config;
        let timeout = if logged_in { config.command_timeout } else { config.login_timeout.min(config.command_timeout) };
        let flow = match link.read_message(timeout).await? {
            Read::Message => {
                let flow = on_message(session, link).await?;
                if !matches!(session.state, State::NotAuthenticated) {
                    link.guest.authenticated();
                }
                flow
            }
            Read::Closed | Read::Unreadable => Flow::Close,
            Read::TimedOut if !logged_in => {
                link.out.extend_from_slice(b"* BYE autologout; no login in time\r\n");
                Flow::Close
            }
            Read::TimedOut => {
                link.out.extend_from_slice(b"* BYE autologout; idle for too long\r\n");
                Flow::Close
            }
            Read::Evicted => {
                let line = "* BYE [UNAVAILABLE] too many connections are waiting to log in; closing the oldest\r\n";
                link.out.extend_from_slice(line.as_bytes());
                Flow::Close
            }
            Read::Shutdown => {
                link.out.extend_from_slice(b"* BYE server shutting down\r\n");
                Flow::Close
            }
        };
        link.flush().await?;
        if flow != Flow::Continue {
            return Ok(flow);
        }
    }
}

/// Decodes the framed message as a command and has it answered.
async fn on_message<IO, S>(session: &mut Session<S>, link: &mut Link<IO>) -> io::Result<Flow>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    let command: Command<'static> = match link.fragmentizer.decode_message(&CommandCodec::default()) {
        Ok(command) => command.into_static(),
        Err(error) => {
            let tag = link.fragmentizer.decode_tag().map(|t| t.as_ref().to_string());
            let why = match error {
                DecodeMessageError::MessageTooLong { .. } => "the command is too long",
                DecodeMessageError::MessagePoisoned { .. } => "the command could not be read",
                _ => "syntax error in the command",
            };
            tracing::debug!(%why, "malformed command");
            return Ok(session.fail(&mut link.out, tag.as_deref(), &ImapError::Syntax(why.to_string())));
        }
    };
    let tag = command.tag.as_ref().to_string();
    let span = tracing::debug_span!("command", %tag, command = command.body.name());
    command::dispatch(session, link, tag, command.body).instrument(span).await
}

/// Tells a connection over the limit to come back later (on the plain port; an
/// implicit TLS connection is just closed).
pub(crate) async fn refuse_busy(mut tcp: tokio::net::TcpStream, mode: TlsMode, config: Arc<ImapConfig>) {
    tracing::info!("too many connections; refusing one");
    if mode == TlsMode::StartTls {
        let line = b"* BYE [UNAVAILABLE] too many connections; try again later\r\n";
        let _ = tokio::time::timeout(config.tls_handshake_timeout, tcp.write_all(line)).await;
    }
    let _ = tcp.shutdown().await;
}
