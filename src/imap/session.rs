//! The IMAP session: one connection over any `AsyncRead + AsyncWrite` stream (a TCP
//! socket, a TLS stream, an in-memory pipe). It owns the socket, framing, literals,
//! timeouts, STARTTLS, AUTHENTICATE, IDLE and shutdown; commands are decoded by
//! imap-codec and answered by the handlers below, which return an [`Outcome`] (text
//! and [`Transition`]) or an [`ImapError`]; errors become responses in exactly one
//! function, [`response_for`].
//!
//! RFC 3501 §5.4 (autologout), §5.5 (pipelining), §7.4.1 (no EXPUNGE during FETCH,
//! STORE, SEARCH); RFC 7888 (literals over the limit: a synchronizing one is refused
//! before its continuation, a non-synchronizing one gets BAD and the connection is
//! closed, as its bytes cannot be told from commands); RFC 2595 / RFC 3501 §6.2.1
//! (STARTTLS; buffered plaintext is dropped); RFC 2177 (IDLE). Depends only on std,
//! tokio, tokio-rustls, imap-codec, tracing and the sibling modules.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::{Flag as WireFlag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::StatusDataItemName;
use imap_codec::imap_types::IntoStatic;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::Instrument;

use super::flow::{needs, State, Transition};
use super::view::{RecentClaims, SetError, Update, View};
use super::wire::{flag_list, mailbox_to_wire, sanitize, string, uid_set};
use super::{fetch, list, search, Flag, FlagOp, ImapConfig, MailStore, No, TlsMode};

/// Client mistakes (BAD responses) after which the connection is closed.
const MAX_ERRORS: u32 = 30;
/// How much is read from the stream at once.
const READ_CHUNK: usize = 16 * 1024;
/// Room for the command line around the largest literal.
const LINE_ALLOWANCE: u32 = 64 * 1024;
/// What is offered in every state; STARTTLS and AUTH= are added before login.
const AUTHENTICATED_CAPABILITIES: &str =
    "IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS MOVE SPECIAL-USE NAMESPACE ID ENABLE UNSELECT CHILDREN";
/// Output is written out once it grows past this (long FETCH responses).
const FLUSH_AT: usize = 256 * 1024;

/// What the listener shares with every session.
pub(crate) struct Shared<S: MailStore> {
    pub store: Arc<S>,
    pub config: Arc<ImapConfig>,
    pub recent: Arc<RecentClaims>,
}

/// What the session does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Upgrade the stream to TLS, then continue.
    StartTls,
    Close,
}

/// Everything that ends a command other than success.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImapError {
    #[error("{0}")]
    Syntax(String),
    #[error("{command} is not valid now: {why}")]
    WrongState { command: &'static str, why: &'static str },
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    #[error("refused: {0}")]
    No(No),
    #[error("authentication failed")]
    AuthFailed,
    #[error("too many failed authentication attempts")]
    TooManyAuthFailures,
    #[error("authentication cancelled")]
    AuthCancelled,
    #[error("authentication needs TLS here")]
    PrivacyRequired,
    #[error("unsupported authentication mechanism")]
    UnsupportedMechanism,
    #[error("unsupported charset")]
    BadCharset,
    #[error("the mailbox is read-only")]
    ReadOnly,
    #[error(transparent)]
    Set(#[from] SetError),
    #[error("some messages could not be fetched")]
    MessagesMissing,
    #[error("a literal of {0} octets is over the limit")]
    LiteralTooBig(u32),
    #[error("a non-synchronizing literal of {0} octets is over the limit")]
    NonSyncLiteralTooBig(u32),
    #[error("too many errors")]
    TooManyErrors,
}

impl From<No> for ImapError {
    fn from(no: No) -> Self {
        ImapError::No(no)
    }
}

impl ImapError {
    /// Client mistakes that count towards [`MAX_ERRORS`].
    fn counts_as_error(&self) -> bool {
        matches!(
            self,
            ImapError::Syntax(_) | ImapError::WrongState { .. } | ImapError::Unsupported(_) | ImapError::Set(_)
        )
    }
}

/// The one place where errors become responses, and whether the connection goes on.
/// `tag` is `None` when the command's tag could not be read.
pub(crate) fn response_for(tag: Option<&str>, error: &ImapError, limit: u32) -> (String, Flow) {
    use ImapError as E;
    let tag = tag.unwrap_or("*");
    let bad = |text: String| (format!("{tag} BAD {text}\r\n"), Flow::Continue);
    let no = |text: String| (format!("{tag} NO {text}\r\n"), Flow::Continue);
    match error {
        E::Syntax(why) => bad(format!("[CLIENTBUG] {}", sanitize(why))),
        E::WrongState { command, why } => bad(format!("{command} is not valid in this state: {why}")),
        E::Unsupported(command) => bad(format!("{command} is not supported")),
        E::No(refusal) => no(sanitize(&refusal.to_string())),
        E::AuthFailed => no("[AUTHENTICATIONFAILED] authentication failed".into()),
        E::TooManyAuthFailures => (
            format!("{tag} NO [AUTHENTICATIONFAILED] authentication failed\r\n* BYE too many failed attempts\r\n"),
            Flow::Close,
        ),
        E::AuthCancelled => bad("authentication cancelled".into()),
        E::PrivacyRequired => no("[PRIVACYREQUIRED] use STARTTLS before logging in".into()),
        E::UnsupportedMechanism => no("unsupported authentication mechanism; use PLAIN".into()),
        E::BadCharset => no("[BADCHARSET (UTF-8 US-ASCII)] unsupported charset".into()),
        E::ReadOnly => no("the mailbox is read-only (opened with EXAMINE)".into()),
        E::Set(why) => bad(format!("invalid sequence set: {why}")),
        E::MessagesMissing => no("[EXPUNGEISSUED] some of the messages no longer exist".into()),
        E::LiteralTooBig(_) => no(format!("[TOOBIG] literals are limited to {limit} octets")),
        E::NonSyncLiteralTooBig(_) => (
            format!(
                "{tag} BAD [TOOBIG] literals are limited to {limit} octets\r\n* BYE cannot read past the literal\r\n"
            ),
            Flow::Close,
        ),
        E::TooManyErrors => ("* BYE too many errors\r\n".into(), Flow::Close),
    }
}

/// A command's success: the text after `OK` (with a response code if any), the
/// transition it asks for and what the connection does next.
pub(crate) struct Outcome<A> {
    text: String,
    transition: Transition<A>,
    flow: Flow,
}

impl<A> Outcome<A> {
    fn ok(text: impl Into<String>) -> Self {
        Outcome { text: text.into(), transition: Transition::None, flow: Flow::Continue }
    }

    fn with(mut self, transition: Transition<A>) -> Self {
        self.transition = transition;
        self
    }
}

/// What waiting for input ended with.
enum Read {
    /// A complete message is in the fragmentizer.
    Message,
    Closed,
    TimedOut,
    Shutdown,
}

/// One connection's session.
struct Session<S: MailStore> {
    shared: Shared<S>,
    peer: SocketAddr,
    tls: bool,
    starttls_offered: bool,
    state: State<S::Account>,
    fragmentizer: Fragmentizer,
    out: Vec<u8>,
    auth_failures: u32,
    errors: u32,
    shutdown: watch::Receiver<bool>,
}

/// Serves one connection: the greeting, commands until LOGOUT, an error that closes,
/// autologout or shutdown, and STARTTLS through `starttls` when it is given and `tls`
/// is false.
pub(crate) async fn serve<IO, S>(
    mut io: IO,
    peer: SocketAddr,
    tls: bool,
    starttls: Option<tokio_rustls::TlsAcceptor>,
    shared: Shared<S>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
    S: MailStore,
{
    let max = shared.config.max_literal_size.saturating_add(LINE_ALLOWANCE);
    let mut session = Session {
        peer,
        tls,
        starttls_offered: starttls.is_some() && !tls,
        state: State::NotAuthenticated,
        fragmentizer: Fragmentizer::new(max),
        out: Vec::new(),
        auth_failures: 0,
        errors: 0,
        shutdown,
        shared,
    };
    tracing::debug!(tls, "connected");
    if *session.shutdown.borrow() {
        session.out.extend_from_slice(b"* BYE shutting down\r\n");
        return session.flush(&mut io).await;
    }
    let greeting = format!("* OK [CAPABILITY {}] smimp-gateway IMAP ready\r\n", session.capabilities());
    session.out.extend_from_slice(greeting.as_bytes());
    let flow = session.drive(&mut io).await?;
    let Some(acceptor) = starttls.filter(|_| flow == Flow::StartTls) else {
        let _ = io.shutdown().await;
        return Ok(());
    };
    // Whatever was sent after STARTTLS in the clear is dropped (RFC 3501 §6.2.1).
    session.fragmentizer = Fragmentizer::new(max);
    let timeout = session.shared.config.tls_handshake_timeout;
    let mut io = match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "STARTTLS handshake failed");
            return Ok(());
        }
        Err(_) => {
            tracing::debug!("STARTTLS handshake timed out");
            return Ok(());
        }
    };
    session.tls = true;
    session.starttls_offered = false;
    tracing::debug!("TLS started");
    session.drive(&mut io).await?;
    let _ = io.shutdown().await;
    Ok(())
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

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        // Nobody can ask for shutdown any more.
        std::future::pending::<()>().await;
    }
}

fn mailbox_name(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => list::canonical_inbox(&super::wire::mailbox_from_wire(other.as_ref())),
    }
}

fn list_pattern(pattern: &ListMailbox<'_>) -> String {
    let bytes: &[u8] = match pattern {
        ListMailbox::Token(token) => token.as_ref(),
        ListMailbox::String(string) => string.as_ref(),
    };
    super::wire::mailbox_from_wire(bytes)
}

fn convert_flags(flags: &[WireFlag<'_>]) -> Result<Vec<Flag>, ImapError> {
    flags
        .iter()
        .map(|flag| match flag {
            WireFlag::Seen => Ok(Flag::Seen),
            WireFlag::Answered => Ok(Flag::Answered),
            WireFlag::Flagged => Ok(Flag::Flagged),
            WireFlag::Deleted => Ok(Flag::Deleted),
            WireFlag::Draft => Ok(Flag::Draft),
            WireFlag::Keyword(atom) => Ok(Flag::Keyword(atom.as_ref().to_string())),
            other @ WireFlag::Extension(_) => Err(ImapError::Syntax(format!("the flag {other} cannot be stored"))),
        })
        .collect()
}

fn command_name(body: &CommandBody<'_>) -> &'static str {
    body.name()
}

impl<S: MailStore> Session<S> {
    fn capabilities(&self) -> String {
        let mut caps = String::from(AUTHENTICATED_CAPABILITIES);
        if matches!(self.state, State::NotAuthenticated) {
            if self.starttls_offered && !self.tls {
                caps.push_str(" STARTTLS");
            }
            if self.auth_allowed() {
                caps.push_str(" AUTH=PLAIN");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    fn auth_allowed(&self) -> bool {
        self.tls || (self.shared.config.allow_plain_auth_on_loopback && self.peer.ip().is_loopback())
    }

    async fn flush<IO: AsyncWrite + Unpin>(&mut self, io: &mut IO) -> io::Result<()> {
        if !self.out.is_empty() {
            io.write_all(&self.out).await?;
            self.out.clear();
        }
        io.flush().await
    }

    /// Reads until a complete message is framed, answering literal announcements on
    /// the way: `+` for an acceptable synchronizing literal, a refusal for one over the
    /// limit (the flow says whether the connection can go on).
    async fn read_message<IO>(&mut self, io: &mut IO, timeout: Duration) -> io::Result<Result<Read, Flow>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = Instant::now() + timeout;
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            while let Some(fragment) = self.fragmentizer.progress() {
                if let FragmentInfo::Line { announcement: Some(LiteralAnnouncement { mode, length }), .. } = fragment {
                    let tag = self.fragmentizer.decode_tag().map(|t| t.as_ref().to_string());
                    if length > self.shared.config.max_literal_size {
                        let error = match mode {
                            LiteralMode::Sync => ImapError::LiteralTooBig(length),
                            LiteralMode::NonSync => ImapError::NonSyncLiteralTooBig(length),
                        };
                        tracing::info!(length, "literal over the limit refused");
                        let (text, flow) = response_for(tag.as_deref(), &error, self.shared.config.max_literal_size);
                        self.out.extend_from_slice(text.as_bytes());
                        self.fragmentizer.skip_message();
                        if flow == Flow::Close {
                            return Ok(Err(Flow::Close));
                        }
                        self.flush(io).await?;
                        continue;
                    }
                    if mode == LiteralMode::Sync {
                        if tag.is_some() {
                            self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                        } else {
                            // Unclear what follows: read on, but do not decode it.
                            self.fragmentizer.poison_message();
                        }
                    }
                }
                if self.fragmentizer.is_message_complete() {
                    return Ok(Ok(Read::Message));
                }
            }
            self.flush(io).await?;
            let read = tokio::select! {
                read = io.read(&mut chunk) => read?,
                () = tokio::time::sleep_until(deadline) => return Ok(Ok(Read::TimedOut)),
                () = shutdown_requested(&mut self.shutdown) => return Ok(Ok(Read::Shutdown)),
            };
            if read == 0 {
                return Ok(Ok(Read::Closed));
            }
            self.fragmentizer.enqueue_bytes(&chunk[..read]);
        }
    }

    /// Reads, decodes and answers commands until the flow is no longer `Continue`.
    async fn drive<IO>(&mut self, io: &mut IO) -> io::Result<Flow>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        loop {
            let timeout = self.shared.config.command_timeout;
            let flow = match self.read_message(io, timeout).await? {
                Err(flow) => flow,
                Ok(Read::Message) => self.on_message(io).await?,
                Ok(Read::Closed) => Flow::Close,
                Ok(Read::TimedOut) => {
                    self.out.extend_from_slice(b"* BYE autologout; idle for too long\r\n");
                    Flow::Close
                }
                Ok(Read::Shutdown) => {
                    self.out.extend_from_slice(b"* BYE server shutting down\r\n");
                    Flow::Close
                }
            };
            self.flush(io).await?;
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
    }

    /// Decodes the framed message as a command and answers it.
    async fn on_message<IO>(&mut self, io: &mut IO) -> io::Result<Flow>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let decoded: Result<Command<'static>, (Option<String>, String)> =
            match self.fragmentizer.decode_message(&CommandCodec::default()) {
                Ok(command) => Ok(command.into_static()),
                Err(error) => {
                    let tag = self.fragmentizer.decode_tag().map(|t| t.as_ref().to_string());
                    let why = match error {
                        imap_codec::fragmentizer::DecodeMessageError::MessageTooLong { .. } => {
                            "the command is too long".to_string()
                        }
                        imap_codec::fragmentizer::DecodeMessageError::MessagePoisoned { .. } => {
                            "the command could not be read".to_string()
                        }
                        _ => "syntax error in the command".to_string(),
                    };
                    Err((tag, why))
                }
            };
        let command = match decoded {
            Ok(command) => command,
            Err((tag, why)) => {
                tracing::debug!(%why, "malformed command");
                return Ok(self.fail(tag.as_deref(), &ImapError::Syntax(why)));
            }
        };
        let tag = command.tag.as_ref().to_string();
        let name = command_name(&command.body);
        let span = tracing::debug_span!("command", %tag, command = name);
        self.on_command(io, tag, command.body).instrument(span).await
    }

    /// Writes the response for an error and counts client mistakes.
    fn fail(&mut self, tag: Option<&str>, error: &ImapError) -> Flow {
        let (text, mut flow) = response_for(tag, error, self.shared.config.max_literal_size);
        self.out.extend_from_slice(text.as_bytes());
        if error.counts_as_error() {
            self.errors += 1;
            if self.errors >= MAX_ERRORS {
                let (text, close) = response_for(None, &ImapError::TooManyErrors, 0);
                self.out.extend_from_slice(text.as_bytes());
                flow = close;
            }
        }
        flow
    }

    async fn on_command<IO>(&mut self, io: &mut IO, tag: String, body: CommandBody<'static>) -> io::Result<Flow>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = command_name(&body);
        if let Err(why) = self.state.permits(needs(&body)) {
            return Ok(self.fail(Some(&tag), &ImapError::WrongState { command: name, why }));
        }
        // When the view may be brought up to date afterwards, and how.
        let (sync, allow_expunge) = match &body {
            CommandBody::Noop | CommandBody::Check => (true, true),
            CommandBody::Fetch { uid: false, .. }
            | CommandBody::Store { uid: false, .. }
            | CommandBody::Search { uid: false, .. } => (false, false),
            _ => (false, true),
        };
        let is_select = matches!(body, CommandBody::Select { .. } | CommandBody::Examine { .. });
        let result = self.handle(io, body).await?;
        let (transition, response, flow) = match result {
            Ok(outcome) => (outcome.transition, Some(format!("{tag} OK {}\r\n", outcome.text)), outcome.flow),
            Err(error) => {
                tracing::debug!(%error, "command failed");
                let flow = self.fail(Some(&tag), &error);
                // A SELECT that fails leaves no mailbox selected (RFC 3501 §6.3.1).
                let transition = if is_select { Transition::Unselect } else { Transition::None };
                (transition, None, flow)
            }
        };
        let select = matches!(transition, Transition::Select(_));
        if let Err(err) = self.state.apply(transition) {
            tracing::error!(error = %err, "invalid state transition");
        }
        if !select && response.is_some() {
            self.refresh(sync, allow_expunge).await;
        }
        if let Some(response) = response {
            self.out.extend_from_slice(response.as_bytes());
        }
        Ok(flow)
    }

    /// Brings the selected view up to date and writes the updates.
    async fn refresh(&mut self, sync: bool, allow_expunge: bool) {
        let Some((account, user)) = self.state.account() else { return };
        let Some(view) = self.state.view() else { return };
        let (account, key, mailbox, read_only) =
            (account.clone(), format!("{user}\0{}", view.mailbox), view.mailbox.clone(), view.read_only);
        let snapshot = match self.shared.store.snapshot(&account, &mailbox, sync).await {
            Ok(snapshot) => snapshot,
            Err(no) => {
                tracing::debug!(refusal = %no, "could not refresh the selected mailbox");
                return;
            }
        };
        let highest = snapshot.messages.last().map_or(0, |m| m.uid);
        let recent_above = if read_only {
            self.shared.recent.claim(&key, snapshot.uid_validity, 0)
        } else {
            self.shared.recent.claim(&key, snapshot.uid_validity, highest)
        };
        let Some(view) = self.state.view_mut() else { return };
        let updates = view.update(snapshot, allow_expunge, recent_above);
        self.write_updates(&updates);
    }

    fn write_updates(&mut self, updates: &[Update]) {
        for update in updates {
            match update {
                Update::Expunge(seq) => self.out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes()),
                Update::Exists(n) => self.out.extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes()),
                Update::Recent(n) => self.out.extend_from_slice(format!("* {n} RECENT\r\n").as_bytes()),
                Update::Flags { seq, uid, flags, recent } => {
                    self.out.extend_from_slice(format!("* {seq} FETCH (UID {uid} FLAGS ").as_bytes());
                    flag_list(&mut self.out, flags, *recent);
                    self.out.extend_from_slice(b")\r\n");
                }
            }
        }
    }

    fn account(&self) -> Result<S::Account, ImapError> {
        self.state
            .account()
            .map(|(a, _)| a.clone())
            .ok_or(ImapError::WrongState { command: "this command", why: "log in first" })
    }

    fn view(&self) -> Result<&View, ImapError> {
        self.state.view().ok_or(ImapError::WrongState { command: "this command", why: "select a mailbox first" })
    }

    fn writable_view(&self) -> Result<&View, ImapError> {
        let view = self.view()?;
        if view.read_only {
            return Err(ImapError::ReadOnly);
        }
        Ok(view)
    }

    #[allow(clippy::too_many_lines)]
    async fn handle<IO>(
        &mut self,
        io: &mut IO,
        body: CommandBody<'static>,
    ) -> io::Result<Result<Outcome<S::Account>, ImapError>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        type C<'a> = CommandBody<'a>;
        let store = Arc::clone(&self.shared.store);
        let result = match body {
            C::Capability => {
                let line = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.out.extend_from_slice(line.as_bytes());
                Ok(Outcome::ok("CAPABILITY completed"))
            }
            C::Noop => Ok(Outcome::ok("NOOP completed")),
            C::Check => Ok(Outcome::ok("CHECK completed")),
            C::Logout => {
                self.out.extend_from_slice(b"* BYE smimp-gateway logging out\r\n");
                let mut outcome = Outcome::ok("LOGOUT completed").with(Transition::Logout);
                outcome.flow = Flow::Close;
                Ok(outcome)
            }
            C::Id { .. } => {
                let version = env!("CARGO_PKG_VERSION");
                self.out.extend_from_slice(
                    format!("* ID (\"name\" \"smimp-gateway\" \"version\" \"{version}\")\r\n").as_bytes(),
                );
                Ok(Outcome::ok("ID completed"))
            }
            C::Enable { .. } => {
                // No ENABLE-able extension is offered: enable nothing (RFC 5161 §3.1).
                self.out.extend_from_slice(b"* ENABLED\r\n");
                Ok(Outcome::ok("ENABLE completed"))
            }
            C::Namespace => {
                self.out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Ok(Outcome::ok("NAMESPACE completed"))
            }
            C::StartTLS => {
                if self.starttls_offered && !self.tls {
                    let mut outcome = Outcome::ok("Begin TLS negotiation now");
                    outcome.flow = Flow::StartTls;
                    Ok(outcome)
                } else {
                    Err(ImapError::WrongState { command: "STARTTLS", why: "TLS is not offered here or already on" })
                }
            }
            C::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let password = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.login(user, password).await
            }
            C::Authenticate { mechanism, initial_response } => {
                self.authenticate(io, mechanism, initial_response.map(|r| r.declassify().to_vec())).await?
            }
            C::Select { mailbox, .. } => self.select(mailbox_name(&mailbox), false).await,
            C::Examine { mailbox, .. } => self.select(mailbox_name(&mailbox), true).await,
            C::Create { mailbox } => self.create(mailbox_name(&mailbox)).await,
            C::Delete { mailbox } => {
                let name = mailbox_name(&mailbox);
                if name == "INBOX" {
                    Err(ImapError::No(No::with_code(super::NoCode::Cannot, "INBOX cannot be deleted")))
                } else {
                    match self.account() {
                        Ok(account) => store
                            .delete_mailbox(&account, &name)
                            .await
                            .map(|()| Outcome::ok("DELETE completed"))
                            .map_err(Into::into),
                        Err(e) => Err(e),
                    }
                }
            }
            C::Rename { from, to } => {
                let (from, to) = (mailbox_name(&from), mailbox_name(&to));
                if to == "INBOX" {
                    Err(ImapError::No(No::with_code(super::NoCode::AlreadyExists, "INBOX already exists")))
                } else {
                    match self.account() {
                        Ok(account) => store
                            .rename_mailbox(&account, &from, to.trim_end_matches(list::DELIMITER))
                            .await
                            .map(|()| Outcome::ok("RENAME completed"))
                            .map_err(Into::into),
                        Err(e) => Err(e),
                    }
                }
            }
            C::Subscribe { mailbox } => self.subscribe(mailbox_name(&mailbox), true).await,
            C::Unsubscribe { mailbox } => self.subscribe(mailbox_name(&mailbox), false).await,
            C::List { reference, mailbox_wildcard } => {
                self.list(mailbox_name_raw(&reference), list_pattern(&mailbox_wildcard), false).await
            }
            C::Lsub { reference, mailbox_wildcard } => {
                self.list(mailbox_name_raw(&reference), list_pattern(&mailbox_wildcard), true).await
            }
            C::Status { mailbox, item_names } => self.status(mailbox_name(&mailbox), &item_names).await,
            C::Append { mailbox, flags, date, message } => {
                let data = match message {
                    LiteralOrLiteral8::Literal(literal) => literal.into_inner().into_owned(),
                    LiteralOrLiteral8::Literal8(literal) => literal.data.into_owned(),
                };
                let date = date.map(|d| d.as_ref().timestamp());
                self.append(mailbox_name(&mailbox), &flags, date, data).await
            }
            C::Close => {
                if let Ok(view) = self.writable_view() {
                    let (mailbox, account) = (view.mailbox.clone(), self.account());
                    if let Ok(account) = account {
                        // CLOSE expunges silently (RFC 3501 §6.4.2).
                        if let Err(no) = store.expunge(&account, &mailbox, None).await {
                            tracing::debug!(refusal = %no, "expunge on CLOSE failed");
                        }
                    }
                }
                Ok(Outcome::ok("CLOSE completed").with(Transition::Unselect))
            }
            C::Unselect => Ok(Outcome::ok("UNSELECT completed").with(Transition::Unselect)),
            C::Expunge => self.expunge(None).await,
            C::ExpungeUid { sequence_set } => self.expunge(Some(sequence_set)).await,
            C::Search { charset, criteria, uid } => {
                let charset = charset.map(|c| c.as_ref().to_ascii_uppercase());
                if charset.as_deref().is_some_and(|c| c != "UTF-8" && c != "US-ASCII") {
                    Err(ImapError::BadCharset)
                } else {
                    let mut keys = criteria.into_inner();
                    let key = if keys.len() == 1 {
                        keys.remove(0)
                    } else {
                        match imap_codec::imap_types::core::Vec1::try_from(keys) {
                            Ok(keys) => SearchKey::And(keys),
                            Err(_) => SearchKey::All,
                        }
                    };
                    self.search(&key, uid).await
                }
            }
            C::Fetch { sequence_set, macro_or_item_names, uid, .. } => {
                let items = fetch::items(&macro_or_item_names, uid);
                self.fetch(io, &sequence_set, &items, uid).await?
            }
            C::Store { sequence_set, kind, response, flags, uid, .. } => {
                let op = match kind {
                    StoreType::Add => FlagOp::Add,
                    StoreType::Remove => FlagOp::Remove,
                    StoreType::Replace => FlagOp::Replace,
                };
                self.store(&sequence_set, op, &flags, response == StoreResponse::Silent, uid).await
            }
            C::Copy { sequence_set, mailbox, uid } => {
                self.copy(&sequence_set, mailbox_name(&mailbox), uid, false).await
            }
            C::Move { sequence_set, mailbox, uid } => self.copy(&sequence_set, mailbox_name(&mailbox), uid, true).await,
            C::Idle => self.idle(io).await?,
            other => Err(ImapError::Unsupported(command_name(&other))),
        };
        Ok(result)
    }

    async fn login(&mut self, user: String, password: String) -> Result<Outcome<S::Account>, ImapError> {
        if !self.auth_allowed() {
            return Err(ImapError::PrivacyRequired);
        }
        match self.shared.store.authenticate(&user, &password).await {
            Some(account) => {
                tracing::info!(user = %user, "logged in");
                let caps = AUTHENTICATED_CAPABILITIES;
                Ok(Outcome::ok(format!("[CAPABILITY {caps}] logged in"))
                    .with(Transition::Authenticate { account, user }))
            }
            None => {
                self.auth_failures += 1;
                tracing::info!(failures = self.auth_failures, "authentication failed");
                let exponent = self.auth_failures.saturating_sub(1).min(16);
                let delay =
                    self.shared.config.auth_failure_delay.saturating_mul(1 << exponent).min(Duration::from_secs(30));
                tokio::time::sleep(delay).await;
                if self.auth_failures >= self.shared.config.max_auth_failures {
                    Err(ImapError::TooManyAuthFailures)
                } else {
                    Err(ImapError::AuthFailed)
                }
            }
        }
    }

    /// AUTHENTICATE PLAIN (RFC 4616), with the initial response in the command
    /// (SASL-IR, RFC 4959) or after a `+` continuation.
    async fn authenticate<IO>(
        &mut self,
        io: &mut IO,
        mechanism: AuthMechanism<'static>,
        initial: Option<Vec<u8>>,
    ) -> io::Result<Result<Outcome<S::Account>, ImapError>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        if mechanism != AuthMechanism::Plain {
            return Ok(Err(ImapError::UnsupportedMechanism));
        }
        if !self.auth_allowed() {
            return Ok(Err(ImapError::PrivacyRequired));
        }
        let response = match initial {
            Some(response) => response,
            None => {
                self.out.extend_from_slice(b"+ \r\n");
                let timeout = self.shared.config.command_timeout;
                match self.read_message(io, timeout).await? {
                    Ok(Read::Message) => {}
                    _ => return Ok(Err(ImapError::AuthCancelled)),
                }
                match self.fragmentizer.decode_message(&AuthenticateDataCodec::default()) {
                    Ok(AuthenticateData::Continue(data)) => data.declassify().to_vec(),
                    Ok(AuthenticateData::Cancel) => return Ok(Err(ImapError::AuthCancelled)),
                    Err(_) => return Ok(Err(ImapError::Syntax("cannot decode the SASL response".into()))),
                }
            }
        };
        let mut fields = response.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Ok(Err(ImapError::Syntax("a PLAIN response has three NUL-separated fields".into())));
        };
        let user = String::from_utf8_lossy(authcid).into_owned();
        let password = String::from_utf8_lossy(password).into_owned();
        if !authzid.is_empty() && authzid != authcid {
            // Acting for someone else is not offered: fail like a wrong password.
            return Ok(self.login(user, String::new()).await.and(Err(ImapError::AuthFailed)));
        }
        Ok(self.login(user, password).await)
    }

    async fn select(&mut self, name: String, read_only: bool) -> Result<Outcome<S::Account>, ImapError> {
        let (account, user) = match self.state.account() {
            Some((a, u)) => (a.clone(), u.to_string()),
            None => return Err(ImapError::WrongState { command: "SELECT", why: "log in first" }),
        };
        let snapshot = self.shared.store.snapshot(&account, &name, true).await?;
        let key = format!("{user}\0{name}");
        let highest = snapshot.messages.last().map_or(0, |m| m.uid);
        // EXAMINE must not take \Recent from other sessions (RFC 3501 §6.3.2).
        let recent_above = self.shared.recent.claim(&key, snapshot.uid_validity, if read_only { 0 } else { highest });
        let view = View::new(name, read_only, snapshot, recent_above);
        let mut keywords: Vec<String> = Vec::new();
        for message in &view.messages {
            for flag in &message.flags {
                if let Flag::Keyword(k) = flag {
                    if !keywords.contains(k) {
                        keywords.push(k.clone());
                    }
                }
            }
        }
        let keywords: String = keywords.iter().map(|k| format!(" {k}")).collect();
        let out = &mut self.out;
        out.extend_from_slice(
            format!("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords})\r\n").as_bytes(),
        );
        if read_only {
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ()] read-only\r\n");
        } else {
            out.extend_from_slice(
                format!("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft{keywords} \\*)] flags permitted\r\n")
                    .as_bytes(),
            );
        }
        out.extend_from_slice(format!("* {} EXISTS\r\n* {} RECENT\r\n", view.exists(), view.recent()).as_bytes());
        if let Some(seq) = view.first_unseen() {
            out.extend_from_slice(format!("* OK [UNSEEN {seq}] first unseen\r\n").as_bytes());
        }
        out.extend_from_slice(format!("* OK [UIDVALIDITY {}] UIDs valid\r\n", view.uid_validity).as_bytes());
        out.extend_from_slice(format!("* OK [UIDNEXT {}] predicted next UID\r\n", view.uid_next).as_bytes());
        let text = if read_only { "[READ-ONLY] EXAMINE completed" } else { "[READ-WRITE] SELECT completed" };
        Ok(Outcome::ok(text).with(Transition::Select(view)))
    }

    async fn create(&mut self, name: String) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let name = name.trim_end_matches(list::DELIMITER).to_string();
        if name == "INBOX" {
            return Err(ImapError::No(No::with_code(super::NoCode::AlreadyExists, "INBOX always exists")));
        }
        if name.is_empty() {
            return Err(ImapError::Syntax("empty mailbox name".into()));
        }
        self.shared.store.create_mailbox(&account, &name).await?;
        Ok(Outcome::ok("CREATE completed"))
    }

    async fn subscribe(&mut self, name: String, subscribed: bool) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        self.shared.store.set_subscribed(&account, &name, subscribed).await?;
        Ok(Outcome::ok(if subscribed { "SUBSCRIBE completed" } else { "UNSUBSCRIBE completed" }))
    }

    async fn list(&mut self, reference: String, pattern: String, lsub: bool) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let mailboxes =
            if pattern.is_empty() { Vec::new() } else { self.shared.store.list_mailboxes(&account).await? };
        for line in list::list(&mailboxes, &reference, &pattern, lsub) {
            self.out.extend_from_slice(&line);
        }
        Ok(Outcome::ok(if lsub { "LSUB completed" } else { "LIST completed" }))
    }

    async fn status(&mut self, name: String, items: &[StatusDataItemName]) -> Result<Outcome<S::Account>, ImapError> {
        let (account, user) = match self.state.account() {
            Some((a, u)) => (a.clone(), u.to_string()),
            None => return Err(ImapError::WrongState { command: "STATUS", why: "log in first" }),
        };
        let snapshot = self.shared.store.snapshot(&account, &name, true).await?;
        let key = format!("{user}\0{name}");
        let mut values = Vec::new();
        for item in items {
            let value = match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", snapshot.messages.len()),
                StatusDataItemName::Recent => format!(
                    "RECENT {}",
                    self.shared.recent.unclaimed(&key, snapshot.uid_validity, snapshot.messages.iter().map(|m| m.uid))
                ),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", snapshot.uid_next),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", snapshot.uid_validity),
                StatusDataItemName::Unseen => {
                    format!("UNSEEN {}", snapshot.messages.iter().filter(|m| !m.flags.contains(&Flag::Seen)).count())
                }
                #[allow(unreachable_patterns)]
                _ => continue,
            };
            values.push(value);
        }
        let mut line = b"* STATUS ".to_vec();
        string(&mut line, mailbox_to_wire(&name).as_bytes());
        line.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        self.out.extend_from_slice(&line);
        Ok(Outcome::ok("STATUS completed"))
    }

    async fn append(
        &mut self,
        name: String,
        flags: &[WireFlag<'_>],
        date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let flags = convert_flags(flags)?;
        let (validity, uid) = self.shared.store.append(&account, &name, &flags, date, message).await?;
        Ok(Outcome::ok(format!("[APPENDUID {validity} {uid}] APPEND completed")))
    }

    async fn expunge(&mut self, set: Option<SequenceSet>) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let view = self.writable_view()?;
        let mailbox = view.mailbox.clone();
        let uids: Option<Vec<u32>> = match &set {
            Some(set) => Some(view.resolve(set, true)?.into_iter().map(|i| view.messages[i].uid).collect()),
            None => None,
        };
        let removed = self.shared.store.expunge(&account, &mailbox, uids.as_deref()).await?;
        if let Some(view) = self.state.view_mut() {
            let updates = view.remove(&removed);
            self.write_updates(&updates);
        }
        Ok(Outcome::ok("EXPUNGE completed"))
    }

    async fn search(&mut self, key: &SearchKey<'_>, uid: bool) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let view = self.view()?;
        let need = search::needs_content(key);
        let mut found = Vec::new();
        let (largest_seq, largest_uid) = (view.exists(), view.highest_uid());
        for (index, known) in view.messages.iter().enumerate() {
            let content = if need {
                match self.shared.store.message(&account, &view.mailbox, known.uid).await {
                    Ok(bytes) => Some(search::Content::new(&bytes)),
                    Err(_) => continue,
                }
            } else {
                None
            };
            let seq = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let candidate = search::Candidate { seq, known, content: content.as_ref(), largest_seq, largest_uid };
            if search::matches(key, &candidate) {
                found.push(if uid { known.uid } else { seq });
            }
        }
        let mut line = String::from("* SEARCH");
        for n in found {
            line.push_str(&format!(" {n}"));
        }
        line.push_str("\r\n");
        self.out.extend_from_slice(line.as_bytes());
        Ok(Outcome::ok(if uid { "UID SEARCH completed" } else { "SEARCH completed" }))
    }

    async fn fetch<IO>(
        &mut self,
        io: &mut IO,
        set: &SequenceSet,
        items: &[fetch::Item],
        uid: bool,
    ) -> io::Result<Result<Outcome<S::Account>, ImapError>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let done = Outcome::ok(if uid { "UID FETCH completed" } else { "FETCH completed" });
        let account = match self.account() {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let (indices, mailbox, read_only) = match self.view() {
            Ok(view) => match view.resolve(set, uid) {
                Ok(indices) => (indices, view.mailbox.clone(), view.read_only),
                Err(e) => return Ok(Err(e.into())),
            },
            Err(e) => return Ok(Err(e)),
        };
        // A body fetch without PEEK sets \Seen first, so FLAGS shows it.
        if fetch::sets_seen(items) && !read_only {
            let unseen: Vec<u32> = self
                .state
                .view()
                .map(|v| {
                    indices
                        .iter()
                        .map(|&i| &v.messages[i])
                        .filter(|m| !m.flags.contains(&Flag::Seen))
                        .map(|m| m.uid)
                        .collect()
                })
                .unwrap_or_default();
            if !unseen.is_empty() {
                match self.shared.store.store_flags(&account, &mailbox, &unseen, FlagOp::Add, &[Flag::Seen]).await {
                    Ok(changed) => self.apply_flags(&changed),
                    Err(no) => return Ok(Err(no.into())),
                }
            }
        }
        let need = fetch::needs_content(items);
        let mut missing = false;
        for index in indices {
            let Some(known) = self.state.view().and_then(|v| v.messages.get(index)).cloned() else { continue };
            let content = if need {
                match self.shared.store.message(&account, &mailbox, known.uid).await {
                    Ok(bytes) => Some(bytes),
                    Err(no) => {
                        tracing::debug!(uid = known.uid, refusal = %no, "message could not be fetched");
                        missing = true;
                        continue;
                    }
                }
            } else {
                None
            };
            let seq = u32::try_from(index + 1).unwrap_or(u32::MAX);
            fetch::render(&mut self.out, seq, &known, content.as_deref(), items);
            if self.out.len() >= FLUSH_AT {
                self.flush(io).await?;
            }
        }
        if missing {
            return Ok(Err(ImapError::MessagesMissing));
        }
        Ok(Ok(done))
    }

    /// Records flags the backend reports as changed in the view.
    fn apply_flags(&mut self, changed: &[(u32, Vec<Flag>)]) {
        if let Some(view) = self.state.view_mut() {
            for (uid, flags) in changed {
                if let Some(index) = view.index_of(*uid) {
                    view.messages[index].flags = flags.clone();
                }
            }
        }
    }

    async fn store(
        &mut self,
        set: &SequenceSet,
        op: FlagOp,
        flags: &[WireFlag<'_>],
        silent: bool,
        uid: bool,
    ) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let flags = convert_flags(flags)?;
        let view = self.writable_view()?;
        let indices = view.resolve(set, uid)?;
        let uids: Vec<u32> = indices.iter().map(|&i| view.messages[i].uid).collect();
        let mailbox = view.mailbox.clone();
        if !uids.is_empty() {
            let changed = self.shared.store.store_flags(&account, &mailbox, &uids, op, &flags).await?;
            self.apply_flags(&changed);
        }
        if !silent {
            let mut out = Vec::new();
            if let Some(view) = self.state.view() {
                for index in indices {
                    let Some(m) = view.messages.get(index) else { continue };
                    out.extend_from_slice(format!("* {} FETCH (", index + 1).as_bytes());
                    if uid {
                        out.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
                    }
                    out.extend_from_slice(b"FLAGS ");
                    flag_list(&mut out, &m.flags, m.recent);
                    out.extend_from_slice(b")\r\n");
                }
            }
            self.out.extend_from_slice(&out);
        }
        Ok(Outcome::ok(if uid { "UID STORE completed" } else { "STORE completed" }))
    }

    async fn copy(
        &mut self,
        set: &SequenceSet,
        target: String,
        uid: bool,
        remove: bool,
    ) -> Result<Outcome<S::Account>, ImapError> {
        let account = self.account()?;
        let view = if remove { self.writable_view()? } else { self.view()? };
        let uids: Vec<u32> = view.resolve(set, uid)?.into_iter().map(|i| view.messages[i].uid).collect();
        let mailbox = view.mailbox.clone();
        let what = match (uid, remove) {
            (false, false) => "COPY",
            (true, false) => "UID COPY",
            (false, true) => "MOVE",
            (true, true) => "UID MOVE",
        };
        if uids.is_empty() {
            return Ok(Outcome::ok(format!("{what} completed (no messages)")));
        }
        let copied = self.shared.store.copy(&account, &mailbox, &uids, &target, remove).await?;
        let sources: Vec<u32> = copied.uids.iter().map(|p| p.0).collect();
        let targets: Vec<u32> = copied.uids.iter().map(|p| p.1).collect();
        let code = if copied.uids.is_empty() {
            String::new()
        } else {
            format!("[COPYUID {} {} {}] ", copied.uid_validity, uid_set(&sources), uid_set(&targets))
        };
        if remove {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs.
            if !code.is_empty() {
                self.out.extend_from_slice(format!("* OK {code}moved\r\n").as_bytes());
            }
            if let Some(view) = self.state.view_mut() {
                let updates = view.remove(&uids);
                self.write_updates(&updates);
            }
            return Ok(Outcome::ok(format!("{what} completed")));
        }
        Ok(Outcome::ok(format!("{code}{what} completed")))
    }

    /// IDLE (RFC 2177): reports changes when the backend notifies or every poll
    /// interval, until DONE, the idle timeout or shutdown.
    async fn idle<IO>(&mut self, io: &mut IO) -> io::Result<Result<Outcome<S::Account>, ImapError>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let notify = match self.state.account() {
            Some((account, _)) => self.shared.store.changes(account),
            None => Arc::new(Notify::new()),
        };
        let mut notified = Box::pin(notify.notified());
        notified.as_mut().enable();
        self.out.extend_from_slice(b"+ idling\r\n");
        // News may have arrived since the last command.
        self.refresh(false, true).await;
        self.flush(io).await?;
        let config = Arc::clone(&self.shared.config);
        let deadline = Instant::now() + config.idle_timeout;
        let mut poll = tokio::time::interval_at(Instant::now() + config.poll_interval, config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut chunk = vec![0u8; 1024];
        loop {
            if self.fragmentizer.progress().is_some() && self.fragmentizer.is_message_complete() {
                return Ok(match self.fragmentizer.decode_message(&IdleDoneCodec::default()) {
                    Ok(_) => Ok(Outcome::ok("IDLE terminated")),
                    Err(_) => Err(ImapError::Syntax("expected DONE".into())),
                });
            }
            tokio::select! {
                read = io.read(&mut chunk) => {
                    let read = read?;
                    if read == 0 {
                        let mut outcome = Outcome::ok("IDLE ended: connection closed");
                        outcome.flow = Flow::Close;
                        return Ok(Ok(outcome));
                    }
                    self.fragmentizer.enqueue_bytes(&chunk[..read]);
                }
                () = &mut notified => {
                    notified = Box::pin(notify.notified());
                    notified.as_mut().enable();
                    self.refresh(false, true).await;
                    self.flush(io).await?;
                }
                _ = poll.tick() => {
                    self.refresh(true, true).await;
                    self.flush(io).await?;
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.out.extend_from_slice(b"* BYE IDLE lasted too long\r\n");
                    let mut outcome = Outcome::ok("IDLE ended");
                    outcome.flow = Flow::Close;
                    return Ok(Ok(outcome));
                }
                () = shutdown_requested(&mut self.shutdown) => {
                    self.out.extend_from_slice(b"* BYE server shutting down\r\n");
                    let mut outcome = Outcome::ok("IDLE ended");
                    outcome.flow = Flow::Close;
                    return Ok(Ok(outcome));
                }
            }
        }
    }
}

/// The LIST reference as given (it is joined to the pattern, not a mailbox).
fn mailbox_name_raw(mailbox: &Mailbox<'_>) -> String {
    match mailbox {
        Mailbox::Inbox => "INBOX".into(),
        Mailbox::Other(other) => super::wire::mailbox_from_wire(other.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_responses() {
        let (text, flow) = response_for(Some("a1"), &ImapError::Syntax("bad\r\nthing".into()), 10);
        assert_eq!((text.as_str(), flow), ("a1 BAD [CLIENTBUG] bad  thing\r\n", Flow::Continue));
        let (text, _) =
            response_for(Some("a2"), &ImapError::No(No::with_code(super::super::NoCode::TryCreate, "no")), 10);
        assert_eq!(text, "a2 NO [TRYCREATE] no\r\n");
        let (text, flow) = response_for(Some("a3"), &ImapError::NonSyncLiteralTooBig(99), 10);
        assert!(text.starts_with("a3 BAD [TOOBIG]") && text.ends_with("* BYE cannot read past the literal\r\n"));
        assert_eq!(flow, Flow::Close);
        let (text, flow) = response_for(Some("a4"), &ImapError::LiteralTooBig(99), 10);
        assert_eq!((text.as_str(), flow), ("a4 NO [TOOBIG] literals are limited to 10 octets\r\n", Flow::Continue));
        let (text, _) = response_for(None, &ImapError::Syntax("x".into()), 10);
        assert_eq!(text, "* BAD [CLIENTBUG] x\r\n");
        assert_eq!(response_for(Some("t"), &ImapError::TooManyAuthFailures, 1).1, Flow::Close);
    }
}
