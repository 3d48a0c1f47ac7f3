//! The SMTP submission session: one connection's state machine over any
//! `AsyncRead + AsyncWrite` stream (a TCP socket, a TLS stream, an in-memory pipe in
//! tests). It owns the socket, the timeouts, STARTTLS and shutdown; the bytes are
//! decoded by the pure codec.
//!
//! Three things are kept apart: the input mode (a command, a SASL response or message
//! data is expected next), the mail transaction (sender and recipients, RFC 5321 §3.3)
//! and the session (peer, TLS, greeting, account, error counters). Handlers return a
//! [`Flow`]; errors become replies in exactly one function, [`reply_for`].
//!
//! RFC 5321 (commands, replies, timeouts §4.5.3.2), RFC 6409 §4.3 (AUTH before MAIL),
//! RFC 4954 (AUTH, 530, 535, 538), RFC 3207 (STARTTLS; buffered plaintext is dropped and
//! everything learnt before TLS forgotten), RFC 2920 (replies to a pipelined group are
//! sent together), RFC 1870 (SIZE), RFC 6531 §3.4 (non-ASCII addresses need SMTPUTF8).
//! Depends only on std, tokio, tokio-rustls, tracing and the sibling modules.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::Instrument;

use super::codec::{Command, CommandError, Decoder, LineTooLong, MailFrom, Mechanism, SaslData, MAX_SASL_LINE};
use super::data::{DataDecoder, DataError, DataLimits};
use super::reply::{write_ehlo, Capabilities, Reply};
use super::sasl::{self, Credentials, Password};
use super::{RecipientOk, Refusal, SmtpConfig, Submission, TlsMode};
use crate::listen::{password_allowed, tls_handshake, Flow, Guest, Incoming, Shutdown};

/// Protocol errors (unknown commands, bad sequences) after which the connection is closed.
const MAX_ERRORS: u32 = 20;
/// How much is read from the stream at once.
const READ_CHUNK: usize = 16 * 1024;

/// Everything that ends in a reply other than the success of a command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SmtpError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("SASL response line too long")]
    SaslLineTooLong,
    #[error("bad sequence of commands: {0}")]
    BadSequence(&'static str),
    #[error("{0} is not offered")]
    NotOffered(&'static str),
    #[error("BDAT is not offered")]
    BdatNotOffered,
    #[error("authentication required")]
    AuthRequired,
    #[error("AUTH needs TLS here")]
    EncryptionRequired,
    #[error("unsupported AUTH mechanism")]
    UnsupportedMechanism,
    #[error("authentication failed")]
    AuthFailed,
    #[error("undecodable SASL response")]
    SaslSyntax,
    #[error("authentication cancelled")]
    AuthCancelled,
    #[error("too many failed authentication attempts")]
    TooManyAuthFailures,
    #[error("too many errors")]
    TooManyErrors,
    #[error("declared size over the limit of {limit}")]
    DeclaredTooBig { limit: usize },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("too many recipients")]
    TooManyRecipients,
    #[error("non-ASCII address without SMTPUTF8")]
    NeedsSmtpUtf8,
    #[error("no valid recipients")]
    NoValidRecipients,
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("timed out")]
    Timeout,
    #[error("no login in time")]
    LoginTimeout,
    #[error("its place was needed for a newcomer")]
    Evicted,
    #[error("shutting down")]
    ShuttingDown,
}

impl SmtpError {
    /// Client mistakes that count towards [`MAX_ERRORS`].
    fn counts_as_error(&self) -> bool {
        matches!(
            self,
            SmtpError::Command(_) | SmtpError::SaslLineTooLong | SmtpError::BadSequence(_) | SmtpError::NotOffered(_)
        )
    }
}

/// The one place where errors become replies, and whether the connection goes on.
pub(crate) fn reply_for(error: &SmtpError, hostname: &str) -> (Reply, Flow) {
    use SmtpError as E;
    let go_on = |reply| (reply, Flow::Continue);
    let close = |reply| (reply, Flow::Close);
    match error {
        E::Command(error) => go_on(match error {
            CommandError::Unknown => Reply::new(500, [5, 5, 1], "command not recognised"),
            CommandError::Syntax(syntax) => Reply::new(501, [5, 5, 4], format!("syntax: {syntax}")),
            CommandError::BadSender => Reply::new(501, [5, 1, 7], "bad sender address syntax"),
            CommandError::BadRecipient => Reply::new(501, [5, 1, 3], "bad recipient address syntax"),
            CommandError::BadParameter(name) => Reply::new(501, [5, 5, 4], format!("invalid value for {name}")),
            CommandError::UnsupportedParameter(name) => {
                Reply::new(555, [5, 5, 4], format!("parameter {name} is not supported"))
            }
            CommandError::LineTooLong(limit) => {
                Reply::new(500, [5, 5, 2], format!("line too long; the limit is {limit} octets"))
            }
            CommandError::BareCr => Reply::new(500, [5, 5, 2], "a CR must be followed by LF"),
            CommandError::NotUtf8 => Reply::new(500, [5, 5, 2], "command lines must be UTF-8"),
        }),
        E::SaslLineTooLong => go_on(Reply::new(500, [5, 5, 6], "authentication exchange line is too long")),
        E::BadSequence(why) => go_on(Reply::new(503, [5, 5, 1], *why)),
        E::NotOffered(name) => go_on(Reply::new(502, [5, 5, 1], format!("{name} is not offered"))),
        E::BdatNotOffered => {
            close(Reply::new(502, [5, 5, 1], "BDAT is not offered; closing, as its data cannot be told from commands"))
        }
        E::AuthRequired => go_on(Reply::new(530, [5, 7, 0], "authentication required")),
        E::EncryptionRequired => go_on(Reply::new(538, [5, 7, 11], "encryption required: use STARTTLS before AUTH")),
        E::UnsupportedMechanism => {
            go_on(Reply::new(504, [5, 5, 4], "unrecognised authentication mechanism; use PLAIN or LOGIN"))
        }
        E::AuthFailed => go_on(Reply::new(535, [5, 7, 8], "authentication credentials invalid")),
        E::SaslSyntax => go_on(Reply::new(501, [5, 5, 2], "cannot decode the authentication response")),
        E::AuthCancelled => go_on(Reply::new(501, [5, 0, 0], "authentication cancelled")),
        E::TooManyAuthFailures => {
            close(Reply::new(421, [4, 7, 0], format!("{hostname} too many failed authentication attempts; closing")))
        }
        E::TooManyErrors => close(Reply::new(421, [4, 7, 0], format!("{hostname} too many errors; closing"))),
        E::DeclaredTooBig { limit } | E::Data(DataError::TooBig { limit }) => {
            go_on(Reply::new(552, [5, 3, 4], format!("message too big; the limit is {limit} octets")))
        }
        E::Data(DataError::BareCr) => {
            go_on(Reply::new(554, [5, 5, 2], "message refused: it contains a bare CR; every line must end with CRLF"))
        }
        E::Data(DataError::BareLf) => {
            go_on(Reply::new(554, [5, 5, 2], "message refused: it contains a bare LF; every line must end with CRLF"))
        }
        E::Data(DataError::LineTooLong { line, limit }) => {
            go_on(Reply::new(554, [5, 5, 2], format!("message refused: line {line} is longer than {limit} octets")))
        }
        E::TooManyRecipients => go_on(Reply::new(452, [4, 5, 3], "too many recipients")),
        E::NeedsSmtpUtf8 => go_on(Reply::new(553, [5, 6, 7], "a non-ASCII address needs the SMTPUTF8 parameter")),
        E::NoValidRecipients => go_on(Reply::new(554, [5, 5, 1], "no valid recipients")),
        E::Refused(refusal) => go_on(Reply::new(refusal.code(), refusal.status(), refusal.text())),
        E::Timeout => close(Reply::new(421, [4, 4, 2], format!("{hostname} idle for too long; closing"))),
        E::LoginTimeout => close(Reply::new(421, [4, 4, 2], format!("{hostname} no login in time; closing"))),
        E::Evicted => close(Reply::new(
            421,
            [4, 3, 2],
            format!("{hostname} too many connections are waiting to log in; closing the oldest"),
        )),
        E::ShuttingDown => close(Reply::new(421, [4, 3, 2], format!("{hostname} shutting down; try again later"))),
    }
}

/// What the client expects next.
enum InputMode {
    Command,
    Sasl(SaslStep),
    Data(Box<DataDecoder>),
}

/// Where an AUTH exchange is.
enum SaslStep {
    PlainResponse,
    LoginUsername,
    LoginPassword { username: Vec<u8> },
}

/// One decoded input, as the input mode asked for it.
enum Input {
    Command(Result<Command, CommandError>),
    Sasl(SaslStep, Result<Vec<u8>, LineTooLong>),
    Message(Result<Vec<u8>, DataError>),
}

/// The mail transaction: from MAIL to the end of DATA, or RSET.
#[derive(Debug, Default)]
struct Transaction {
    from: Option<String>,
    smtputf8: bool,
    recipients: Vec<String>,
    rcpt_attempts: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greeting {
    Helo,
    Ehlo,
}

/// What is known about the connection.
struct SessionState<A> {
    peer: SocketAddr,
    tls: bool,
    starttls_offered: bool,
    greeting: Option<Greeting>,
    account: Option<A>,
    auth_failures: u32,
    errors: u32,
}

/// One connection's session.
struct Session<B: Submission> {
    backend: Arc<B>,
    config: Arc<SmtpConfig>,
    state: SessionState<B::Account>,
    transaction: Transaction,
    mode: InputMode,
    decoder: Decoder,
    out: Vec<u8>,
    /// Set once shutdown is requested while a transaction is open.
    draining_until: Option<Instant>,
    /// The connection's place among those not authenticated yet.
    guest: Guest,
}

/// Serves one connection: the greeting, commands until QUIT, an error that closes, a
/// timeout or shutdown, and STARTTLS through `starttls` when it is given and `tls` is
/// false.
pub(crate) async fn serve<S, B>(
    mut io: S,
    accepted: Incoming,
    backend: Arc<B>,
    config: Arc<SmtpConfig>,
) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Submission,
{
    let Incoming { peer, tls, starttls, shutdown, guest, .. } = accepted;
    let mut session = Session {
        state: SessionState {
            peer,
            tls,
            starttls_offered: starttls.is_some() && !tls,
            greeting: None,
            account: None,
            auth_failures: 0,
            errors: 0,
        },
        backend,
        transaction: Transaction::default(),
        mode: InputMode::Command,
        decoder: Decoder::default(),
        out: Vec::new(),
        draining_until: None,
        guest,
        config,
    };
    tracing::debug!(tls, "connected");
    if shutdown.is_requested() {
        session.fail(&SmtpError::ShuttingDown);
        return session.flush(&mut io).await;
    }
    session.reply(Reply::bare(220, format!("{} ESMTP smimp-gateway ready", session.config.hostname)));
    let flow = session.drive(&mut io, &shutdown).await?;
    let Some(acceptor) = starttls.filter(|_| flow == Flow::StartTls) else {
        let _ = io.shutdown().await;
        return Ok(());
    };
    let dropped = session.decoder.discard();
    if dropped > 0 {
        tracing::warn!(dropped, "discarded plaintext sent after STARTTLS");
    }
    let io = tokio::select! {
        io = tls_handshake(&acceptor, io, session.config.tls_handshake_timeout) => io,
        () = session.guest.evicted() => None,
    };
    let Some(mut io) = io else {
        return Ok(());
    };
    session.tls_started();
    tracing::debug!("TLS started");
    session.drive(&mut io, &shutdown).await?;
    let _ = io.shutdown().await;
    Ok(())
}

/// Tells a connection over the limit to come back later (on the plain port; an implicit
/// TLS connection is just closed).
pub(crate) async fn refuse_busy(mut tcp: tokio::net::TcpStream, mode: TlsMode, config: Arc<SmtpConfig>) {
    tracing::info!("too many connections; refusing one");
    if mode == TlsMode::StartTls {
        let mut out = Vec::new();
        Reply::new(421, [4, 3, 2], format!("{} too many connections; try again later", config.hostname))
            .write(&mut out);
        let _ = tokio::time::timeout(config.tls_handshake_timeout, tcp.write_all(&out)).await;
    }
    let _ = tcp.shutdown().await;
}

impl<B: Submission> Session<B> {
    /// Reads, decodes and answers until the flow is no longer `Continue`. Replies to a
    /// pipelined group are written together, before the next read.
    async fn drive<S>(&mut self, io: &mut S, shutdown: &Shutdown) -> io::Result<Flow>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            while let Some(input) = self.next_input() {
                let flow = self.on_input(input).await;
                if flow != Flow::Continue {
                    self.flush(io).await?;
                    return Ok(flow);
                }
                if self.draining_until.is_some() && !self.transaction_open() {
                    self.fail(&SmtpError::ShuttingDown);
                    self.flush(io).await?;
                    return Ok(Flow::Close);
                }
            }
            self.flush(io).await?;
            let guest = self.state.account.is_none();
            let idle = match self.mode {
                InputMode::Data(_) => self.config.data_timeout,
                _ if guest => self.config.login_timeout.min(self.config.command_timeout),
                _ => self.config.command_timeout,
            };
            let draining = self.draining_until;
            tokio::select! {
                read = tokio::time::timeout(idle, io.read(&mut chunk)) => match read {
                    Ok(Ok(0)) => {
                        tracing::debug!("client closed the connection");
                        return Ok(Flow::Close);
                    }
                    Ok(Ok(n)) => self.decoder.feed(&chunk[..n]),
                    Ok(Err(err)) => return Err(err),
                    Err(_) => {
                        tracing::debug!("idle timeout");
                        self.fail(if guest { &SmtpError::LoginTimeout } else { &SmtpError::Timeout });
                        self.flush(io).await?;
                        return Ok(Flow::Close);
                    }
                },
                () = self.guest.evicted() => {
                    self.fail(&SmtpError::Evicted);
                    self.flush(io).await?;
                    return Ok(Flow::Close);
                }
                () = shutdown.requested(), if draining.is_none() => {
                    if self.transaction_open() {
                        self.draining_until = Some(Instant::now() + self.config.shutdown_grace);
                    } else {
                        self.fail(&SmtpError::ShuttingDown);
                        self.flush(io).await?;
                        return Ok(Flow::Close);
                    }
                }
                () = tokio::time::sleep_until(draining.unwrap_or_else(Instant::now)), if draining.is_some() => {
                    self.fail(&SmtpError::ShuttingDown);
                    self.flush(io).await?;
                    return Ok(Flow::Close);
                }
            }
        }
    }

    fn next_input(&mut self) -> Option<Input> {
        match &mut self.mode {
            InputMode::Command => self.decoder.next_command(self.config.max_command_line).map(Input::Command),
            InputMode::Data(data) => {
                let outcome = self.decoder.next_message(data)?;
                self.mode = InputMode::Command;
                Some(Input::Message(outcome))
            }
            InputMode::Sasl(_) => {
                let line = self.decoder.next_line(MAX_SASL_LINE)?;
                match std::mem::replace(&mut self.mode, InputMode::Command) {
                    InputMode::Sasl(step) => Some(Input::Sasl(step, line)),
                    other => {
                        self.mode = other;
                        None
                    }
                }
            }
        }
    }

    async fn on_input(&mut self, input: Input) -> Flow {
        let result = match input {
            Input::Command(Ok(command)) => {
                let span = tracing::debug_span!("command", name = command.name());
                self.on_command(command).instrument(span).await
            }
            Input::Command(Err(error)) => Err(SmtpError::Command(error)),
            Input::Sasl(step, line) => {
                let span = tracing::debug_span!("command", name = "AUTH");
                self.on_sasl(step, line).instrument(span).await
            }
            Input::Message(outcome) => {
                let span = tracing::debug_span!("command", name = "DATA");
                self.on_message(outcome).instrument(span).await
            }
        };
        match result {
            Ok(flow) => flow,
            Err(error) => self.fail(&error),
        }
    }

    /// Writes the reply for `error` and counts protocol errors.
    fn fail(&mut self, error: &SmtpError) -> Flow {
        tracing::debug!(%error, "command failed");
        let (reply, flow) = reply_for(error, &self.config.hostname);
        self.reply(reply);
        if error.counts_as_error() {
            self.state.errors += 1;
            if self.state.errors >= MAX_ERRORS && flow == Flow::Continue {
                return self.fail(&SmtpError::TooManyErrors);
            }
        }
        flow
    }

    fn reply(&mut self, reply: Reply) {
        reply.write(&mut self.out);
    }

    async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = tokio::time::timeout(self.config.command_timeout, async {
            io.write_all(&self.out).await?;
            io.flush().await
        })
        .await;
        self.out.clear();
        match written {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "the client does not read its replies")),
        }
    }

    fn transaction_open(&self) -> bool {
        self.transaction.from.is_some() || matches!(self.mode, InputMode::Data(_))
    }

    /// RFC 3207 §4.2: forget everything the client said before TLS.
    fn tls_started(&mut self) {
        self.state.tls = true;
        self.state.greeting = None;
        self.state.account = None;
        self.transaction = Transaction::default();
        self.mode = InputMode::Command;
    }

    /// AUTH is offered over TLS, and without it only from loopback when so configured.
    fn auth_offered(&self) -> bool {
        password_allowed(self.state.tls, self.config.allow_plain_auth_on_loopback, self.state.peer.ip())
    }

    async fn on_command(&mut self, command: Command) -> Result<Flow, SmtpError> {
        match command {
            Command::Ehlo(_) => {
                self.transaction = Transaction::default();
                self.state.greeting = Some(Greeting::Ehlo);
                let capabilities = Capabilities {
                    max_message_size: self.config.max_message_size,
                    starttls: self.state.starttls_offered && !self.state.tls,
                    auth: self.auth_offered(),
                };
                write_ehlo(&self.config.hostname, capabilities, &mut self.out);
                Ok(Flow::Continue)
            }
            Command::Helo(_) => {
                self.transaction = Transaction::default();
                self.state.greeting = Some(Greeting::Helo);
                self.reply(Reply::bare(250, self.config.hostname.clone()));
                Ok(Flow::Continue)
            }
            Command::StartTls => {
                if self.state.tls {
                    return Err(SmtpError::BadSequence("TLS is already active"));
                }
                if !self.state.starttls_offered {
                    return Err(SmtpError::NotOffered("STARTTLS"));
                }
                self.reply(Reply::new(220, [2, 0, 0], "ready to start TLS"));
                Ok(Flow::StartTls)
            }
            Command::Auth { mechanism, initial } => self.on_auth(mechanism, initial).await,
            Command::Mail(from) => self.on_mail(from),
            Command::Rcpt(to) => self.on_rcpt(to).await,
            Command::Data => self.on_data(),
            Command::Bdat => Err(SmtpError::BdatNotOffered),
            Command::Rset => {
                self.transaction = Transaction::default();
                self.reply(Reply::new(250, [2, 0, 0], "reset"));
                Ok(Flow::Continue)
            }
            Command::Noop => {
                self.reply(Reply::new(250, [2, 0, 0], "OK"));
                Ok(Flow::Continue)
            }
            Command::Quit => {
                self.reply(Reply::new(221, [2, 0, 0], format!("{} closing connection", self.config.hostname)));
                Ok(Flow::Close)
            }
            Command::Vrfy => {
                self.reply(Reply::new(252, [2, 0, 0], "cannot VRFY; RCPT tells whether a recipient can be reached"));
                Ok(Flow::Continue)
            }
            Command::Expn => Err(SmtpError::NotOffered("EXPN")),
            Command::Help => {
                self.reply(
                    Reply::new(214, [2, 0, 0], "smimp-gateway mail submission (RFC 6409)")
                        .line("commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT"),
                );
                Ok(Flow::Continue)
            }
            Command::NotOffered(name) => Err(SmtpError::NotOffered(name)),
        }
    }

    async fn on_auth(&mut self, mechanism: Mechanism, initial: Option<SaslData>) -> Result<Flow, SmtpError> {
        if self.state.greeting != Some(Greeting::Ehlo) {
            return Err(SmtpError::BadSequence("send EHLO first"));
        }
        if self.state.account.is_some() {
            return Err(SmtpError::BadSequence("already authenticated"));
        }
        if self.transaction.from.is_some() {
            return Err(SmtpError::BadSequence("AUTH is not allowed during a mail transaction"));
        }
        if !self.auth_offered() {
            return Err(SmtpError::EncryptionRequired);
        }
        match (mechanism, initial) {
            (Mechanism::Plain, Some(response)) => self.finish_plain(&response).await,
            (Mechanism::Plain, None) => {
                self.reply(Reply::bare(334, ""));
                self.mode = InputMode::Sasl(SaslStep::PlainResponse);
                Ok(Flow::Continue)
            }
            (Mechanism::Login, Some(username)) => self.login_username(&username).await,
            (Mechanism::Login, None) => {
                self.reply(Reply::bare(334, sasl::LOGIN_USERNAME_PROMPT));
                self.mode = InputMode::Sasl(SaslStep::LoginUsername);
                Ok(Flow::Continue)
            }
            (Mechanism::Other, _) => Err(SmtpError::UnsupportedMechanism),
        }
    }

    async fn on_sasl(&mut self, step: SaslStep, line: Result<Vec<u8>, LineTooLong>) -> Result<Flow, SmtpError> {
        let response = SaslData(line.map_err(|_| SmtpError::SaslLineTooLong)?);
        if response.0 == b"*" {
            return Err(SmtpError::AuthCancelled);
        }
        match step {
            SaslStep::PlainResponse => self.finish_plain(&response).await,
            SaslStep::LoginUsername => self.login_username(&response).await,
            SaslStep::LoginPassword { username } => match sasl::decode_base64(&response.0) {
                Ok(password) => {
                    let credentials = Credentials { username, authzid: Vec::new(), password: Password::new(password) };
                    self.authenticate(credentials).await
                }
                Err(_) => self.auth_failed(SmtpError::SaslSyntax).await,
            },
        }
    }

    async fn login_username(&mut self, response: &SaslData) -> Result<Flow, SmtpError> {
        match sasl::decode_base64(&response.0) {
            Ok(username) => {
                self.reply(Reply::bare(334, sasl::LOGIN_PASSWORD_PROMPT));
                self.mode = InputMode::Sasl(SaslStep::LoginPassword { username });
                Ok(Flow::Continue)
            }
            Err(_) => self.auth_failed(SmtpError::SaslSyntax).await,
        }
    }

    async fn finish_plain(&mut self, response: &SaslData) -> Result<Flow, SmtpError> {
        match sasl::plain(&response.0) {
            Ok(credentials) => self.authenticate(credentials).await,
            Err(_) => self.auth_failed(SmtpError::SaslSyntax).await,
        }
    }

    async fn authenticate(&mut self, credentials: Credentials) -> Result<Flow, SmtpError> {
        let username = String::from_utf8(credentials.username).ok();
        let account = match (username.as_deref(), credentials.password.as_str()) {
            (Some(username), Some(password))
                if credentials.authzid.is_empty() || credentials.authzid == username.as_bytes() =>
            {
                self.backend.authenticate(username, password).await
            }
            _ => None,
        };
        drop(credentials.password);
        match account {
            Some(account) => {
                tracing::info!(username = username.as_deref().unwrap_or_default(), "authenticated");
                self.state.account = Some(account);
                self.guest.authenticated();
                self.reply(Reply::new(235, [2, 7, 0], "authentication successful"));
                Ok(Flow::Continue)
            }
            None => self.auth_failed(SmtpError::AuthFailed).await,
        }
    }

    /// Counts a failed attempt, waits the growing delay, and answers `error`; after too
    /// many failures the connection is closed as well.
    async fn auth_failed(&mut self, error: SmtpError) -> Result<Flow, SmtpError> {
        self.state.auth_failures += 1;
        tracing::info!(failures = self.state.auth_failures, "authentication failed");
        tokio::time::sleep(sasl::failure_delay(self.state.auth_failures, self.config.auth_failure_delay)).await;
        if self.state.auth_failures >= self.config.max_auth_failures {
            self.fail(&error);
            return Err(SmtpError::TooManyAuthFailures);
        }
        Err(error)
    }

    fn on_mail(&mut self, from: MailFrom) -> Result<Flow, SmtpError> {
        if self.state.greeting.is_none() {
            return Err(SmtpError::BadSequence("send EHLO first"));
        }
        let Some(account) = &self.state.account else {
            return Err(SmtpError::AuthRequired);
        };
        if self.transaction.from.is_some() {
            return Err(SmtpError::BadSequence("a mail transaction is already open"));
        }
        self.backend.check_sender(account, &from.address).map_err(|refusal| {
            tracing::info!(code = refusal.code(), "envelope sender refused");
            SmtpError::Refused(refusal)
        })?;
        if from.size.is_some_and(|size| size > self.config.max_message_size) {
            return Err(SmtpError::DeclaredTooBig { limit: self.config.max_message_size });
        }
        if !from.address.is_ascii() && !from.smtputf8 {
            return Err(SmtpError::NeedsSmtpUtf8);
        }
        self.transaction = Transaction { from: Some(from.address), smtputf8: from.smtputf8, ..Transaction::default() };
        self.reply(Reply::new(250, [2, 1, 0], "sender OK"));
        Ok(Flow::Continue)
    }

    async fn on_rcpt(&mut self, to: String) -> Result<Flow, SmtpError> {
        if self.transaction.from.is_none() {
            return Err(SmtpError::BadSequence("send MAIL first"));
        }
        let Some(account) = &self.state.account else {
            return Err(SmtpError::AuthRequired);
        };
        if !to.is_ascii() && !self.transaction.smtputf8 {
            return Err(SmtpError::NeedsSmtpUtf8);
        }
        if self.transaction.recipients.len() >= self.config.max_recipients {
            return Err(SmtpError::TooManyRecipients);
        }
        self.transaction.rcpt_attempts += 1;
        let mut accepted = RecipientOk::ok();
        if !self.transaction.recipients.contains(&to) {
            accepted = self.backend.check_recipient(account, &to).await.map_err(|refusal| {
                tracing::debug!(code = refusal.code(), "recipient refused");
                SmtpError::Refused(refusal)
            })?;
            self.transaction.recipients.push(to);
        }
        self.reply(Reply::new(250, [2, 1, 5], accepted.text()));
        Ok(Flow::Continue)
    }

    fn on_data(&mut self) -> Result<Flow, SmtpError> {
        if self.transaction.from.is_none() {
            return Err(SmtpError::BadSequence("send MAIL first"));
        }
        if self.transaction.recipients.is_empty() {
            return Err(if self.transaction.rcpt_attempts > 0 {
                SmtpError::NoValidRecipients
            } else {
                SmtpError::BadSequence("send RCPT first")
            });
        }
        self.reply(Reply::bare(354, "end data with <CR><LF>.<CR><LF>"));
        let limits = DataLimits { max_size: self.config.max_message_size, max_line: self.config.max_data_line };
        self.mode = InputMode::Data(Box::new(DataDecoder::new(limits)));
        Ok(Flow::Continue)
    }

    async fn on_message(&mut self, outcome: Result<Vec<u8>, DataError>) -> Result<Flow, SmtpError> {
        let transaction = std::mem::take(&mut self.transaction);
        let message = outcome.inspect_err(|error| tracing::info!(%error, "message refused"))?;
        let (Some(account), Some(from)) = (&self.state.account, transaction.from) else {
            return Err(SmtpError::BadSequence("send MAIL first"));
        };
        let size = message.len();
        let recipients = transaction.recipients.len();
        match self.backend.accept(account, &from, &transaction.recipients, message).await {
            Ok(()) => {
                tracing::info!(size, recipients, "message accepted");
                self.reply(Reply::new(250, [2, 0, 0], "message accepted for delivery"));
                Ok(Flow::Continue)
            }
            Err(refusal) => {
                tracing::info!(size, recipients, code = refusal.code(), "message refused by the backend");
                Err(SmtpError::Refused(refusal))
            }
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
