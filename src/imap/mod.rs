//! The IMAP front-end: mail clients read the SMIMP mailbox here, on 127.0.0.1, with
//! STARTTLS on the plain port and implicit TLS on a second one. Where the mail comes
//! from is the backend's business, reached only through the [`MailStore`] trait.
//!
//! Standards: RFC 3501 (IMAP4rev1), RFC 7888 (LITERAL+), RFC 2177 (IDLE), RFC 4315
//! (UIDPLUS), RFC 6851 (MOVE), RFC 6154 (SPECIAL-USE), RFC 2342 (NAMESPACE), RFC 2971
//! (ID), RFC 5161 (ENABLE), RFC 7162 (CONDSTORE, QRESYNC), RFC 3691 (UNSELECT), RFC 3348 (CHILDREN), RFC 4959
//! (SASL-IR), RFC 4616 (PLAIN), RFC 8314 (implicit TLS), RFC 5530 (response codes).
//!
//! Layout (sans-I/O pieces under an async session):
//! - `wire` (pure): response syntax — strings, literals, flag lists, modified UTF-7.
//! - `structure` (pure): the MIME tree with exact byte ranges; ENVELOPE, BODYSTRUCTURE
//!   and body sections.
//! - `fetch` (pure): FETCH items and their rendering; `search` (pure): SEARCH keys.
//! - `view` (pure): the selected mailbox as one session sees it; sequence sets;
//!   snapshot diffs as EXPUNGE/EXISTS/RECENT/FETCH updates.
//! - `flow` (pure): the session states and the one place transitions are applied.
//! - `response` (pure): `ImapError`, the one function that maps errors to responses,
//!   and the untagged lines commands answer with (SELECT's, STATUS, SEARCH, updates).
//! - `connection`: one connection's I/O loop: framing (imap-codec's fragmentizer and
//!   decoders), literals, timeouts, STARTTLS, refusing a connection over the cap.
//! - `command`: the state gate and the handlers, grouped by the state they are valid
//!   in (`any`, `auth`, `mailbox` for authenticated, `selected`, `idle`), each given
//!   the context its state guarantees.
//! - [`run`]: the listener loop, connection cap and graceful shutdown.
//!
//! imap-codec (2.0.0-alpha.10, the version imap-next 0.3 is built on, pinned exactly)
//! parses commands; imap-next's server flow is not used because its stream is TCP
//! only (no STARTTLS) and its typed responses would need ENVELOPE and BODYSTRUCTURE
//! rebuilt as imap-types values. Responses are written by `wire`.
//!
//! Must not depend on anything else in the crate: only std, tokio (with
//! tokio-rustls), rustls, imap-codec, mail-parser, tracing, thiserror and zeroize
//! (passwords are wiped once checked). Never logs passwords or message content.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use crate::listen::TlsMode;
use crate::listen::{Guests, Limits, Shutdown};
/// For the fuzz crate only (fuzz/fuzz_targets/imap_commands.rs); not part of the API.
#[doc(hidden)]
pub use fuzz_entry::fuzz_command;
pub use view::RecentClaims;

mod command;
mod condstore;
mod connection;
mod fetch;
mod flow;
mod fuzz_entry;
mod list;
mod response;
mod search;
mod structure;
mod view;
mod wire;

/// What the gateway's backend does for the IMAP front-end: who may log in, the
/// mailboxes, their messages and flags. A [`No`] becomes a tagged NO as it is.
pub trait MailStore: Send + Sync + 'static {
    /// The account an authenticated connection acts for.
    type Account: Clone + Send + Sync + 'static;

    /// Checks a login. `None` for any failure (unknown user, wrong password, locked
    /// account): the client sees the same answer whatever failed.
    fn authenticate(&self, username: &str, password: &str) -> impl Future<Output = Option<Self::Account>> + Send;

    /// Every mailbox; names are full paths with '/' as the hierarchy delimiter;
    /// "INBOX" is always present.
    fn list_mailboxes(&self, account: &Self::Account) -> impl Future<Output = Result<Vec<MailboxInfo>, No>> + Send;

    fn create_mailbox(&self, account: &Self::Account, name: &str) -> impl Future<Output = Result<(), No>> + Send;

    fn delete_mailbox(&self, account: &Self::Account, name: &str) -> impl Future<Output = Result<(), No>> + Send;

    /// Renames `from` to `to`. A rename onto INBOX is refused by the front-end; a
    /// rename of INBOX itself reaches the backend, and the gateway's backend refuses
    /// it with `NO [CANNOT]` (the client moves the messages instead) rather than take
    /// RFC 3501 §6.3.5's option of moving INBOX's messages to `to`.
    fn rename_mailbox(
        &self,
        account: &Self::Account,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<(), No>> + Send;

    fn set_subscribed(
        &self,
        account: &Self::Account,
        name: &str,
        subscribed: bool,
    ) -> impl Future<Output = Result<(), No>> + Send;

    /// The mailbox's messages in ascending UID order. `sync` = true asks the backend
    /// to fetch news from the server first (SELECT/EXAMINE, NOOP, IDLE polls, STATUS);
    /// false = what it already knows (cheap).
    fn snapshot(
        &self,
        account: &Self::Account,
        mailbox: &str,
        sync: bool,
    ) -> impl Future<Output = Result<Snapshot, No>> + Send;

    /// The whole message as the client sees it: RFC 5322 bytes with CRLF line ends.
    fn message(
        &self,
        account: &Self::Account,
        mailbox: &str,
        uid: u32,
    ) -> impl Future<Output = Result<Arc<[u8]>, No>> + Send;

    /// Changes flags; returns the new flags of each message changed (uid, flags).
    fn store_flags(
        &self,
        account: &Self::Account,
        mailbox: &str,
        uids: &[u32],
        op: FlagOp,
        flags: &[Flag],
    ) -> impl Future<Output = Result<Vec<(u32, Vec<Flag>)>, No>> + Send;

    /// Permanently removes the messages flagged \Deleted (only among `uids` when
    /// given, for UID EXPUNGE); returns the removed UIDs.
    fn expunge(
        &self,
        account: &Self::Account,
        mailbox: &str,
        uids: Option<&[u32]>,
    ) -> impl Future<Output = Result<Vec<u32>, No>> + Send;

    /// COPY (remove = false) or MOVE (remove = true); returns the target's
    /// UIDVALIDITY and (source uid, new uid) pairs for COPYUID.
    fn copy(
        &self,
        account: &Self::Account,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> impl Future<Output = Result<Copied, No>> + Send;

    /// APPEND; returns (UIDVALIDITY, new UID) for APPENDUID. `internal_date` in unix
    /// seconds.
    fn append(
        &self,
        account: &Self::Account,
        mailbox: &str,
        flags: &[Flag],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<(u32, u32), No>> + Send;

    /// Notified whenever the backend learns of a change to any of the account's
    /// mailboxes (its own writes or a sync that found news); IDLE wakes on it as well
    /// as on [`ImapConfig::poll_interval`].
    fn changes(&self, account: &Self::Account) -> Arc<Notify>;

    /// Which messages of the account's mailboxes have been shown as `\Recent`: one
    /// [`RecentClaims`] per account, the same for every session of it on every
    /// listener, so that a message is recent in one session only (RFC 3501 §2.3.2).
    /// The front-end decides; the backend only keeps it.
    fn recent(&self, account: &Self::Account) -> Arc<RecentClaims>;

    /// Called once a read-write session has been told of every UID up to `uid` of
    /// `mailbox`, so the backend can keep that across a restart (and give it back to
    /// [`RecentClaims::claim`] before the next claim); by default it is not kept.
    /// The UIDs of `mailbox` expunged after modseq `since`, ascending (QRESYNC's
    /// VANISHED, RFC 7162 §3.2.5.1); by default the backend remembers none.
    fn vanished(
        &self,
        account: &Self::Account,
        mailbox: &str,
        since: u64,
    ) -> impl Future<Output = Result<Vec<u32>, No>> + Send {
        let _ = (account, mailbox, since);
        std::future::ready(Ok(Vec::new()))
    }

    fn keep_recent(&self, account: &Self::Account, mailbox: &str, uid: u32) -> impl Future<Output = ()> + Send {
        let _ = (account, mailbox, uid);
        std::future::ready(())
    }
}

/// A mailbox as LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// The full path, '/' delimited, in UTF-8 (sent in modified UTF-7).
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
}

/// RFC 6154 special-use attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }
}

/// A mailbox's state as the backend knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub uid_validity: u32,
    pub uid_next: u32,
    /// CONDSTORE's HIGHESTMODSEQ (RFC 7162 §3.1.2.1): at least every message's modseq,
    /// and raised by every expunge.
    pub highest_modseq: u64,
    /// In ascending UID order.
    pub messages: Vec<MessageMeta>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Vec<Flag>,
    /// Unix seconds.
    pub internal_date: i64,
    /// RFC822.SIZE: the length of what [`MailStore::message`] returns.
    pub size: u32,
    /// The modseq of the message's last change (RFC 7162 §3.1.1), 1 or more.
    pub modseq: u64,
}

/// A message flag; `\Recent` is the front-end's own business and never stored.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
    /// A keyword (an atom such as `$Forwarded` or `$Label1`).
    Keyword(String),
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// What COPY or MOVE did, for the COPYUID response code (RFC 4315).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uid_validity: u32,
    /// (source uid, new uid) pairs.
    pub uids: Vec<(u32, u32)>,
}

/// A refusal from the backend, sent as a tagged NO with this text (and response code
/// if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct No {
    pub text: String,
    pub code: Option<NoCode>,
}

impl No {
    pub fn new(text: impl Into<String>) -> No {
        No { text: text.into(), code: None }
    }

    pub fn with_code(code: NoCode, text: impl Into<String>) -> No {
        No { text: text.into(), code: Some(code) }
    }
}

impl std::fmt::Display for No {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(f, "[{}] {}", code.atom(), self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// Response codes a backend may give with a NO (RFC 3501 §7.1, RFC 5530).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoCode {
    /// The target mailbox does not exist but could be created (COPY, APPEND).
    TryCreate,
    NonExistent,
    AlreadyExists,
    /// The operation is refused for what it is (e.g. deleting INBOX).
    Cannot,
    /// A temporary failure: the SMIMP server cannot be reached.
    Unavailable,
    ServerBug,
    /// The message is gone (RFC 5530 EXPUNGEISSUED).
    ExpungeIssued,
    /// Over a quota or size limit.
    Limit,
    OverQuota,
    NoPerm,
    InUse,
}

impl NoCode {
    fn atom(self) -> &'static str {
        match self {
            NoCode::TryCreate => "TRYCREATE",
            NoCode::NonExistent => "NONEXISTENT",
            NoCode::AlreadyExists => "ALREADYEXISTS",
            NoCode::Cannot => "CANNOT",
            NoCode::Unavailable => "UNAVAILABLE",
            NoCode::ServerBug => "SERVERBUG",
            NoCode::ExpungeIssued => "EXPUNGEISSUED",
            NoCode::Limit => "LIMIT",
            NoCode::OverQuota => "OVERQUOTA",
            NoCode::NoPerm => "NOPERM",
            NoCode::InUse => "INUSE",
        }
    }
}

/// Limits and policy of the IMAP front-end. The defaults suit a local gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// The largest literal (an APPENDed message), in octets; larger ones are refused.
    pub max_literal_size: u32,
    /// How often IDLE asks the backend to sync when nothing notified it.
    pub poll_interval: Duration,
    /// The delay before answering the first failed login; it doubles with each further
    /// failure of the connection (at most 30 seconds).
    pub auth_failure_delay: Duration,
    /// Failed logins after which the connection is closed.
    pub max_auth_failures: u32,
    /// How long IDLE lasts before the server ends it (RFC 2177: under 30 minutes).
    pub idle_timeout: Duration,
    /// Autologout: how long to wait for the next command once logged in (RFC 3501
    /// §5.4: at least 30 minutes).
    pub command_timeout: Duration,
    /// How long a connection that has not logged in waits for its next command (a
    /// mail client logs in at once; an idle stranger only holds a place).
    pub login_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
    /// Connections served at once; more are told BYE.
    pub max_connections: usize,
    /// Connections not logged in yet, at once (below `max_connections`); a newcomer
    /// beyond it closes the oldest of them, so they never keep a client out.
    pub max_unauthenticated: usize,
    /// LOGIN and AUTHENTICATE without TLS from a loopback address (the customary set-up
    /// for a local bridge); elsewhere they need TLS and LOGINDISABLED is advertised.
    pub allow_plain_auth_on_loopback: bool,
    /// After shutdown is requested, how long connections get to end before they are
    /// aborted.
    pub shutdown_grace: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_literal_size: 50 * 1024 * 1024,
            poll_interval: Duration::from_secs(60),
            auth_failure_delay: Duration::from_secs(1),
            max_auth_failures: 3,
            idle_timeout: Duration::from_secs(29 * 60),
            command_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(30),
            max_connections: 64,
            max_unauthenticated: 16,
            allow_plain_auth_on_loopback: true,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves IMAP on `listener` until `shutdown`. Then it stops accepting, tells every
/// connection `* BYE` (an IDLE or a command in progress ends first), and returns once
/// every connection has ended (aborting those still open after
/// `config.shutdown_grace`). The caller binds the socket (port 0 in tests) and owns
/// shutdown. A panic in one session ends only that connection.
pub async fn run<S: MailStore>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mode: TlsMode,
    store: Arc<S>,
    config: ImapConfig,
    shutdown: Shutdown,
) -> io::Result<()> {
    let acceptor = mode.acceptor(tls)?;
    let config = Arc::new(config);
    let name = if mode == TlsMode::Implicit { "IMAP (implicit TLS)" } else { "IMAP" };
    let limits = Limits::refusing(name, config.max_connections, config.shutdown_grace + config.tls_handshake_timeout);
    let refusing = Arc::clone(&config);
    let guests = Guests::new(config.max_unauthenticated);
    let serve = |tcp, peer, guest| {
        let (store, config, shutdown) = (Arc::clone(&store), Arc::clone(&config), shutdown.clone());
        let connection = connection::Connection { peer, acceptor: acceptor.clone(), store, config, shutdown };
        connection.serve(tcp, mode, guest)
    };
    let refuse = |tcp, _| connection::refuse_busy(tcp, mode, Arc::clone(&refusing));
    crate::listen::serve_guests(listener, limits, Some(guests), shutdown.clone(), serve, refuse).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_print_with_their_code() {
        assert_eq!(No::new("no such mailbox").to_string(), "no such mailbox");
        assert_eq!(No::with_code(NoCode::TryCreate, "create it first").to_string(), "[TRYCREATE] create it first");
        let config = ImapConfig::default();
        assert_eq!(config.max_literal_size, 50 * 1024 * 1024);
        assert!(config.idle_timeout < Duration::from_secs(30 * 60));
        assert!(config.login_timeout <= Duration::from_secs(60), "a stranger holds a place briefly");
        assert!(config.max_unauthenticated < config.max_connections);
    }
}
