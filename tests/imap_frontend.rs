//! The IMAP front-end end to end: `imap::run` on 127.0.0.1 with real TLS (implicit TLS
//! on one port, STARTTLS on another, under a development CA the client trusts;
//! verification is never disabled), over an in-memory mail store, driven in
//! transcript style (send a line, read the lines up to the tagged response, literals
//! included) so every response can be checked byte for byte.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smimp_gateway::imap::{
    self, Copied, Flag, FlagOp, ImapConfig, MailStore, MailboxInfo, MessageMeta, No, NoCode, RecentClaims, Snapshot,
    SpecialUse, TlsMode,
};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[path = "common/imap_client.rs"]
mod imap_client;
use imap_client::Client;

// ---------------------------------------------------------------------------------
// An in-memory mail store.

#[derive(Debug, Clone)]
struct Stored {
    uid: u32,
    flags: Vec<Flag>,
    date: i64,
    bytes: Arc<[u8]>,
    modseq: u64,
}

#[derive(Debug)]
struct Folder {
    uid_validity: u32,
    uid_next: u32,
    messages: Vec<Stored>,
    subscribed: bool,
    special_use: Option<SpecialUse>,
    /// CONDSTORE: every arrival, flag change and expunge takes the next one.
    highest_modseq: u64,
    /// Expunged UIDs with the modseq of their expunge (QRESYNC).
    expunged: Vec<(u32, u64)>,
}

impl Folder {
    fn new(uid_validity: u32, special_use: Option<SpecialUse>) -> Folder {
        Folder {
            uid_validity,
            uid_next: 1,
            messages: Vec::new(),
            subscribed: true,
            special_use,
            highest_modseq: 1,
            expunged: Vec::new(),
        }
    }

    fn next_modseq(&mut self) -> u64 {
        self.highest_modseq += 1;
        self.highest_modseq
    }

    fn add(&mut self, flags: Vec<Flag>, date: i64, bytes: &[u8]) -> u32 {
        let uid = self.uid_next;
        self.uid_next += 1;
        let modseq = self.next_modseq();
        self.messages.push(Stored { uid, flags, date, bytes: Arc::from(bytes), modseq });
        uid
    }

    fn remove(&mut self, uids: &[u32]) {
        for &uid in uids {
            let modseq = self.next_modseq();
            self.expunged.push((uid, modseq));
        }
        self.messages.retain(|m| !uids.contains(&m.uid));
    }
}

/// alice/secret with INBOX, Sent, Trash and Work/Projects.
struct MemStore {
    folders: Mutex<BTreeMap<String, Folder>>,
    changes: Arc<Notify>,
    recent: Arc<RecentClaims>,
}

impl MemStore {
    fn new() -> MemStore {
        let mut folders = BTreeMap::new();
        folders.insert("INBOX".to_string(), Folder::new(100, None));
        folders.insert("Sent".to_string(), Folder::new(200, Some(SpecialUse::Sent)));
        folders.insert("Trash".to_string(), Folder::new(300, Some(SpecialUse::Trash)));
        let mut work = Folder::new(400, None);
        work.subscribed = false;
        folders.insert("Work/Projects".to_string(), work);
        MemStore { folders: Mutex::new(folders), changes: Arc::new(Notify::new()), recent: Arc::default() }
    }

    fn add(&self, mailbox: &str, flags: Vec<Flag>, bytes: &[u8]) -> u32 {
        let uid = self.folders.lock().unwrap().get_mut(mailbox).unwrap().add(flags, 1_704_189_600, bytes);
        self.changes.notify_waiters();
        uid
    }

    fn flags(&self, mailbox: &str, uid: u32) -> Vec<Flag> {
        let folders = self.folders.lock().unwrap();
        folders[mailbox].messages.iter().find(|m| m.uid == uid).unwrap().flags.clone()
    }

    fn uids(&self, mailbox: &str) -> Vec<u32> {
        self.folders.lock().unwrap()[mailbox].messages.iter().map(|m| m.uid).collect()
    }

    fn with<T>(&self, mailbox: &str, f: impl FnOnce(&mut Folder) -> T) -> Result<T, No> {
        let mut folders = self.folders.lock().unwrap();
        let folder = folders.get_mut(mailbox).ok_or_else(|| No::with_code(NoCode::NonExistent, "no such mailbox"))?;
        Ok(f(folder))
    }
}

impl MailStore for MemStore {
    type Account = String;

    /// User names in any case, as the gateway's backend takes them.
    async fn authenticate(&self, username: &str, password: &str) -> Option<String> {
        (username.eq_ignore_ascii_case("alice") && password == "secret").then(|| "alice".to_string())
    }

    async fn list_mailboxes(&self, _account: &String) -> Result<Vec<MailboxInfo>, No> {
        Ok(self
            .folders
            .lock()
            .unwrap()
            .iter()
            .map(|(name, f)| MailboxInfo { name: name.clone(), special_use: f.special_use, subscribed: f.subscribed })
            .collect())
    }

    async fn create_mailbox(&self, _account: &String, name: &str) -> Result<(), No> {
        assert_ne!(name, "panic", "a backend bug, to show it ends only its own session");
        let mut folders = self.folders.lock().unwrap();
        if folders.contains_key(name) {
            return Err(No::with_code(NoCode::AlreadyExists, "mailbox exists"));
        }
        let uid_validity = 500 + folders.len() as u32;
        // CREATE does not subscribe, as in the gateway's backend.
        let mut folder = Folder::new(uid_validity, None);
        folder.subscribed = false;
        folders.insert(name.to_string(), folder);
        Ok(())
    }

    async fn delete_mailbox(&self, _account: &String, name: &str) -> Result<(), No> {
        self.folders.lock().unwrap().remove(name).map(|_| ()).ok_or_else(|| No::new("no such mailbox"))
    }

    async fn rename_mailbox(&self, _account: &String, from: &str, to: &str) -> Result<(), No> {
        let mut folders = self.folders.lock().unwrap();
        let folder = folders.remove(from).ok_or_else(|| No::new("no such mailbox"))?;
        folders.insert(to.to_string(), folder);
        Ok(())
    }

    async fn set_subscribed(&self, _account: &String, name: &str, subscribed: bool) -> Result<(), No> {
        self.with(name, |f| f.subscribed = subscribed)
    }

    async fn snapshot(&self, _account: &String, mailbox: &str, _sync: bool) -> Result<Snapshot, No> {
        self.with(mailbox, |f| Snapshot {
            uid_validity: f.uid_validity,
            uid_next: f.uid_next,
            highest_modseq: f.highest_modseq,
            messages: f
                .messages
                .iter()
                .map(|m| MessageMeta {
                    uid: m.uid,
                    flags: m.flags.clone(),
                    internal_date: m.date,
                    size: m.bytes.len() as u32,
                    modseq: m.modseq,
                })
                .collect(),
        })
    }

    async fn message(&self, _account: &String, mailbox: &str, uid: u32) -> Result<Arc<[u8]>, No> {
        self.with(mailbox, |f| f.messages.iter().find(|m| m.uid == uid).map(|m| Arc::clone(&m.bytes)))?
            .ok_or_else(|| No::with_code(NoCode::ExpungeIssued, "message gone"))
    }

    async fn store_flags(
        &self,
        _account: &String,
        mailbox: &str,
        uids: &[u32],
        op: FlagOp,
        flags: &[Flag],
    ) -> Result<Vec<(u32, Vec<Flag>)>, No> {
        let changed = self.with(mailbox, |f| {
            let mut changed = Vec::new();
            let mut next = f.highest_modseq;
            for m in f.messages.iter_mut().filter(|m| uids.contains(&m.uid)) {
                let before = m.flags.clone();
                match op {
                    FlagOp::Add => {
                        for flag in flags {
                            if !m.flags.contains(flag) {
                                m.flags.push(flag.clone());
                            }
                        }
                    }
                    FlagOp::Remove => m.flags.retain(|x| !flags.contains(x)),
                    FlagOp::Replace => m.flags = flags.to_vec(),
                }
                if m.flags != before {
                    next += 1;
                    m.modseq = next;
                    changed.push((m.uid, m.flags.clone()));
                }
            }
            f.highest_modseq = next;
            changed
        })?;
        self.changes.notify_waiters();
        Ok(changed)
    }

    async fn expunge(&self, _account: &String, mailbox: &str, uids: Option<&[u32]>) -> Result<Vec<u32>, No> {
        let removed = self.with(mailbox, |f| {
            let gone: Vec<u32> = f
                .messages
                .iter()
                .filter(|m| m.flags.contains(&Flag::Deleted) && uids.is_none_or(|u| u.contains(&m.uid)))
                .map(|m| m.uid)
                .collect();
            f.remove(&gone);
            gone
        })?;
        self.changes.notify_waiters();
        Ok(removed)
    }

    async fn copy(&self, _account: &String, from: &str, uids: &[u32], to: &str, remove: bool) -> Result<Copied, No> {
        let mut folders = self.folders.lock().unwrap();
        if !folders.contains_key(to) {
            return Err(No::with_code(NoCode::TryCreate, "no such target mailbox"));
        }
        let source = folders.get_mut(from).ok_or_else(|| No::new("no such mailbox"))?;
        let moving: Vec<Stored> = source.messages.iter().filter(|m| uids.contains(&m.uid)).cloned().collect();
        if remove {
            source.remove(uids);
        }
        let target = folders.get_mut(to).ok_or_else(|| No::new("no such mailbox"))?;
        let pairs = moving.iter().map(|m| (m.uid, target.add(m.flags.clone(), m.date, &m.bytes))).collect();
        let copied = Copied { uid_validity: target.uid_validity, uids: pairs };
        drop(folders);
        self.changes.notify_waiters();
        Ok(copied)
    }

    async fn append(
        &self,
        _account: &String,
        mailbox: &str,
        flags: &[Flag],
        internal_date: Option<i64>,
        message: Vec<u8>,
    ) -> Result<(u32, u32), No> {
        let result = {
            let mut folders = self.folders.lock().unwrap();
            let folder = folders.get_mut(mailbox).ok_or_else(|| No::with_code(NoCode::TryCreate, "no such mailbox"))?;
            let uid = folder.add(flags.to_vec(), internal_date.unwrap_or(1_704_189_600), &message);
            (folder.uid_validity, uid)
        };
        self.changes.notify_waiters();
        Ok(result)
    }

    async fn vanished(&self, _account: &String, mailbox: &str, since: u64) -> Result<Vec<u32>, No> {
        self.with(mailbox, |f| {
            let mut uids: Vec<u32> = f.expunged.iter().filter(|(_, m)| *m > since).map(|(uid, _)| *uid).collect();
            uids.sort_unstable();
            uids
        })
    }

    fn changes(&self, _account: &String) -> Arc<Notify> {
        Arc::clone(&self.changes)
    }

    fn recent(&self, _account: &String) -> Arc<RecentClaims> {
        Arc::clone(&self.recent)
    }
}

// ---------------------------------------------------------------------------------
// The gateway under test and a transcript client.

struct Gateway {
    store: Arc<MemStore>,
    implicit_port: u16,
    starttls_port: u16,
    client_tls: Arc<rustls::ClientConfig>,
    stop: smimp_gateway::listen::StopHandle,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
}

const LITERAL_LIMIT: u32 = 64 * 1024;

async fn start() -> Gateway {
    start_with(ImapConfig::default()).await
}

async fn start_with(config: ImapConfig) -> Gateway {
    smimp_gateway::tls::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("smimp-imap-frontend-{}", std::process::id()));
    let names = ["localhost".to_string(), "127.0.0.1".to_string()];
    let certs = smimp_gateway::tls::ensure_dev_certificates(&dir, &names).unwrap();
    let tls = smimp_gateway::tls::server_config(&certs.cert_file, &certs.key_file).unwrap();
    let client_tls = Arc::new(smimp_gateway::tls::client_config(std::slice::from_ref(&certs.ca_file)).unwrap());
    let store = Arc::new(MemStore::new());
    let config =
        ImapConfig { max_literal_size: LITERAL_LIMIT, auth_failure_delay: Duration::from_millis(10), ..config };
    let (stop, stopping) = smimp_gateway::listen::Shutdown::new();
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for mode in [TlsMode::Implicit, TlsMode::StartTls] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let shutdown = stopping.clone();
        servers.push(tokio::spawn(imap::run(
            listener,
            Some(Arc::clone(&tls)),
            mode,
            Arc::clone(&store),
            config.clone(),
            shutdown,
        )));
    }
    Gateway { store, implicit_port: ports[0], starttls_port: ports[1], client_tls, stop, servers }
}

impl Gateway {
    async fn stop(self) {
        self.stop.stop();
        for server in self.servers {
            server.await.unwrap().unwrap();
        }
    }

    /// A client over implicit TLS, past the greeting.
    async fn connect(&self) -> Client {
        let tcp = TcpStream::connect(("127.0.0.1", self.implicit_port)).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.client_tls));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let mut client = Client { io: BufReader::new(Box::new(tls)) };
        let greeting = client.line().await;
        assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{greeting}");
        client
    }

    /// A client on the plain port, in the clear (allowed on loopback), past the greeting.
    async fn connect_plain(&self) -> Client {
        let tcp = TcpStream::connect(("127.0.0.1", self.starttls_port)).await.unwrap();
        let mut client = Client { io: BufReader::new(Box::new(tcp)) };
        let greeting = client.line().await;
        assert!(greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "), "{greeting}");
        client
    }

    async fn login(&self) -> Client {
        let mut client = self.connect().await;
        let response = client.cmd("l1", "LOGIN alice secret").await;
        assert!(response.last().unwrap().starts_with("l1 OK [CAPABILITY IMAP4rev1"), "{response:?}");
        client
    }

    async fn select(&self, mailbox: &str) -> Client {
        let mut client = self.login().await;
        let response = client.cmd("s1", &format!("SELECT {mailbox}")).await;
        assert_eq!(response.last().unwrap(), "s1 OK [READ-WRITE] SELECT completed", "{response:?}");
        client
    }
}

const FIXTURE: &[u8] = "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\r\n\
To: Ann <ann@example.com>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a report\r\n\
Date: Tue, 2 Jan 2024 10:00:00 +0000\r\n\
Message-ID: <fixture@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"xx\"\r\n\
\r\n\
--xx\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Hallo Ann, schöne Grüße.\r\n\
--xx\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--xx--\r\n"
    .as_bytes();

fn simple(subject: &str, body: &str) -> Vec<u8> {
    format!("From: Bob <bob@example.net>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n").into_bytes()
}

// ---------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn login_and_authenticate_plain_succeed_and_fail() {
    let gateway = start().await;
    let mut c = gateway.connect().await;
    let caps = c.cmd("a", "CAPABILITY").await;
    assert_eq!(
        caps[0],
        "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS MOVE SPECIAL-USE NAMESPACE ID ENABLE UNSELECT CHILDREN CONDSTORE \
         QRESYNC AUTH=PLAIN"
    );
    assert_eq!(c.cmd("b", "LOGIN alice wrong").await, ["b NO [AUTHENTICATIONFAILED] authentication failed"]);
    assert_eq!(c.cmd("c", "LOGIN alice secret").await.last().unwrap().split(' ').nth(1), Some("OK"));
    assert_eq!(
        c.cmd("d", "LOGIN alice secret").await,
        ["d BAD LOGIN is not valid in this state: already authenticated"]
    );

    // SASL-IR: \0alice\0secret.
    let mut c = gateway.connect().await;
    let ok = c.cmd("a", "AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==").await;
    assert!(ok[0].starts_with("a OK [CAPABILITY"), "{ok:?}");
    // With a continuation.
    let mut c = gateway.connect().await;
    c.send("a AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "+ ");
    c.send("AGFsaWNlAHNlY3JldA==").await;
    assert!(c.response("a").await[0].starts_with("a OK"));
    assert_eq!(c.cmd("b", "NOOP").await, ["b OK NOOP completed"]);
    // Cancelled, then wrong passwords until the connection is closed.
    let mut c = gateway.connect().await;
    c.send("a AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "+ ");
    c.send("*").await;
    assert_eq!(c.response("a").await, ["a BAD authentication cancelled"]);
    assert_eq!(
        c.cmd("b", "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n").await,
        ["b NO [AUTHENTICATIONFAILED] authentication failed"]
    );
    assert_eq!(c.cmd("c", "AUTHENTICATE CRAM-MD5").await, ["c NO unsupported authentication mechanism; use PLAIN"]);
    assert_eq!(c.cmd("d", "LOGIN mallory secret").await, ["d NO [AUTHENTICATIONFAILED] authentication failed"]);
    c.send("e LOGIN alice nope").await;
    assert_eq!(c.line().await, "e NO [AUTHENTICATIONFAILED] authentication failed");
    assert_eq!(c.line().await, "* BYE too many failed attempts");
    assert!(c.closed().await);
    gateway.stop().await;
}

#[tokio::test]
async fn starttls_upgrades_the_plain_port() {
    let gateway = start().await;
    let tcp = TcpStream::connect(("127.0.0.1", gateway.starttls_port)).await.unwrap();
    let mut c = Client { io: BufReader::new(Box::new(tcp)) };
    let greeting = c.line().await;
    assert!(greeting.contains(" STARTTLS AUTH=PLAIN]"), "{greeting}");
    assert_eq!(c.cmd("a", "STARTTLS").await, ["a OK Begin TLS negotiation now"]);
    let tcp = c.io.into_inner();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&gateway.client_tls));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut c = Client { io: BufReader::new(Box::new(tls)) };
    let caps = c.cmd("b", "CAPABILITY").await;
    assert!(!caps[0].contains("STARTTLS") && caps[0].ends_with("CHILDREN CONDSTORE QRESYNC AUTH=PLAIN"), "{caps:?}");
    assert_eq!(
        c.cmd("c", "STARTTLS").await[0],
        "c BAD STARTTLS is not valid in this state: TLS is not offered here or already on"
    );
    assert!(c.cmd("d", "LOGIN alice secret").await[0].starts_with("d OK"));
    // Shutdown tells open connections BYE.
    gateway.stop.stop();
    assert_eq!(c.line().await, "* BYE server shutting down");
    assert!(c.closed().await);
    gateway.stop().await;
}

/// The plain port, past the greeting (returned), then STARTTLS sent together with
/// `pipelined` in one write, its answer read, and TLS negotiated over the same socket.
async fn starttls_with(gateway: &Gateway, pipelined: &str) -> (String, Client) {
    let tcp = TcpStream::connect(("127.0.0.1", gateway.starttls_port)).await.unwrap();
    let mut c = Client { io: BufReader::new(Box::new(tcp)) };
    let greeting = c.line().await;
    c.send_raw(format!("a STARTTLS\r\n{pipelined}").as_bytes()).await;
    assert_eq!(c.line().await, "a OK Begin TLS negotiation now");
    // Nothing else came in the clear: no answer to the pipelined plaintext.
    assert!(c.io.buffer().is_empty(), "{:?}", String::from_utf8_lossy(c.io.buffer()));
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&gateway.client_tls));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, c.io.into_inner()).await.unwrap();
    (greeting, Client { io: BufReader::new(Box::new(tls)) })
}

/// Where TLS is required for logging in (here: plain authentication on loopback turned
/// off, as for any peer beyond loopback), the plain port advertises LOGINDISABLED, and
/// LOGIN and AUTHENTICATE before STARTTLS are refused with PRIVACYREQUIRED without the
/// password being checked; after STARTTLS the same LOGIN works.
#[tokio::test]
async fn login_before_starttls_is_refused_where_tls_is_required() {
    let gateway = start_with(ImapConfig { allow_plain_auth_on_loopback: false, ..ImapConfig::default() }).await;
    let tcp = TcpStream::connect(("127.0.0.1", gateway.starttls_port)).await.unwrap();
    let mut c = Client { io: BufReader::new(Box::new(tcp)) };
    let greeting = c.line().await;
    assert!(greeting.ends_with(" STARTTLS LOGINDISABLED] smimp-gateway IMAP ready"), "{greeting}");
    let caps = c.cmd("a", "CAPABILITY").await;
    assert!(caps[0].ends_with(" STARTTLS LOGINDISABLED") && !caps[0].contains("AUTH="), "{caps:?}");
    let refused = "NO [PRIVACYREQUIRED] use STARTTLS before logging in";
    assert_eq!(c.cmd("b", "LOGIN alice secret").await, [format!("b {refused}")]);
    // A wrong password gets the same answer: nothing was checked.
    assert_eq!(c.cmd("c", "LOGIN alice wrong").await, [format!("c {refused}")]);
    assert_eq!(c.cmd("d", "AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==").await, [format!("d {refused}")]);
    let select = c.cmd("e", "SELECT INBOX").await;
    assert_eq!(select, ["e BAD SELECT is not valid in this state: log in first"], "still not logged in");
    assert_eq!(c.cmd("f", "STARTTLS").await, ["f OK Begin TLS negotiation now"]);
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&gateway.client_tls));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, c.io.into_inner()).await.unwrap();
    let mut c = Client { io: BufReader::new(Box::new(tls)) };
    let caps = c.cmd("g", "CAPABILITY").await;
    assert!(
        caps[0].ends_with("CHILDREN CONDSTORE QRESYNC AUTH=PLAIN") && !caps[0].contains("LOGINDISABLED"),
        "{caps:?}"
    );
    assert!(c.cmd("h", "LOGIN alice secret").await[0].starts_with("h OK [CAPABILITY"));
    // The implicit-TLS port takes the login from the start.
    let mut c = gateway.connect().await;
    assert!(c.cmd("a", "LOGIN alice secret").await[0].starts_with("a OK [CAPABILITY"));
    gateway.stop().await;
}

/// Plaintext pipelined after STARTTLS is dropped, never read as if it had come over TLS
/// (RFC 3501 §6.2.1; the SMTP twin is in smtp_submission.rs): a LOGIN injected behind
/// STARTTLS does not log the session in, and the first answer over TLS is the one to
/// the client's own first command.
#[tokio::test]
async fn plaintext_injected_after_starttls_is_discarded() {
    let gateway = start().await;
    let (greeting, mut c) = starttls_with(&gateway, "b LOGIN alice secret\r\nc SELECT INBOX\r\n").await;
    // The injected LOGIN would be accepted in the clear here (plain auth on loopback is
    // allowed by default), so only discarding it keeps the session logged out.
    assert!(greeting.contains(" STARTTLS AUTH=PLAIN]"), "{greeting}");
    let caps = c.cmd("d", "CAPABILITY").await;
    assert_eq!(caps.len(), 2, "only the answer to CAPABILITY: {caps:?}");
    assert!(caps[0].starts_with("* CAPABILITY ") && caps[0].ends_with(" AUTH=PLAIN"), "not logged in: {caps:?}");
    assert_eq!(caps[1], "d OK CAPABILITY completed");
    assert_eq!(c.cmd("e", "SELECT INBOX").await, ["e BAD SELECT is not valid in this state: log in first"]);
    assert!(c.cmd("f", "LOGIN alice secret").await[0].starts_with("f OK [CAPABILITY"));
    gateway.stop().await;
}

#[tokio::test]
async fn list_lsub_status_and_mailbox_management() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![Flag::Seen], &simple("one", "1"));
    gateway.store.add("INBOX", vec![], &simple("two", "2"));
    let mut c = gateway.login().await;
    assert_eq!(
        c.cmd("a", "LIST \"\" *").await,
        [
            "* LIST (\\HasNoChildren) \"/\" \"INBOX\"",
            "* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\"",
            "* LIST (\\HasNoChildren \\Trash) \"/\" \"Trash\"",
            "* LIST (\\Noselect \\HasChildren) \"/\" \"Work\"",
            "* LIST (\\HasNoChildren) \"/\" \"Work/Projects\"",
            "a OK LIST completed",
        ]
    );
    assert_eq!(c.cmd("b", "LIST \"\" \"\"").await, ["* LIST (\\Noselect) \"/\" \"\"", "b OK LIST completed"]);
    assert_eq!(
        c.cmd("c", "LIST Work/ %").await,
        ["* LIST (\\HasNoChildren) \"/\" \"Work/Projects\"", "c OK LIST completed"]
    );
    assert_eq!(
        c.cmd("d", "LSUB \"\" *").await,
        ["* LSUB () \"/\" \"INBOX\"", "* LSUB () \"/\" \"Sent\"", "* LSUB () \"/\" \"Trash\"", "d OK LSUB completed"]
    );
    assert_eq!(c.cmd("e", "SUBSCRIBE Work/Projects").await, ["e OK SUBSCRIBE completed"]);
    assert_eq!(c.cmd("f", "LSUB \"\" Work*").await, ["* LSUB () \"/\" \"Work/Projects\"", "f OK LSUB completed"]);
    assert_eq!(
        c.cmd("g", "STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)").await,
        ["* STATUS \"INBOX\" (MESSAGES 2 RECENT 2 UIDNEXT 3 UIDVALIDITY 100 UNSEEN 1)", "g OK STATUS completed"]
    );
    assert_eq!(c.cmd("h", "STATUS Nope (MESSAGES)").await, ["h NO [NONEXISTENT] no such mailbox"]);
    // CREATE, RENAME, DELETE with the INBOX rules; names in modified UTF-7.
    assert_eq!(c.cmd("i", "CREATE Entw&APw-rfe/").await, ["i OK CREATE completed"]);
    assert!(gateway.store.folders.lock().unwrap().contains_key("Entwürfe"));
    assert_eq!(c.cmd("j", "CREATE inbox").await, ["j NO [ALREADYEXISTS] INBOX always exists"]);
    assert_eq!(c.cmd("k", "CREATE Sent").await, ["k NO [ALREADYEXISTS] mailbox exists"]);
    assert_eq!(c.cmd("l", "RENAME Entw&APw-rfe Drafts").await, ["l OK RENAME completed"]);
    assert_eq!(c.cmd("m", "RENAME Drafts INBOX").await, ["m NO [ALREADYEXISTS] INBOX already exists"]);
    assert_eq!(c.cmd("n", "DELETE INBOX").await, ["n NO [CANNOT] INBOX cannot be deleted"]);
    assert_eq!(c.cmd("o", "DELETE Drafts").await, ["o OK DELETE completed"]);
    assert_eq!(c.cmd("p", "NAMESPACE").await, ["* NAMESPACE ((\"\" \"/\")) NIL NIL", "p OK NAMESPACE completed"]);
    assert_eq!(c.cmd("q", "ID (\"name\" \"test\")").await[1], "q OK ID completed");
    assert_eq!(c.cmd("r", "ENABLE CONDSTORE").await, ["* ENABLED CONDSTORE", "r OK ENABLE completed"]);
    assert_eq!(c.cmd("s", "ENABLE CONDSTORE UTF8=ACCEPT").await, ["* ENABLED", "s OK ENABLE completed"]);
    gateway.stop().await;
}

#[tokio::test]
async fn select_examine_and_fetch_every_item() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![Flag::Seen], &simple("one", "1"));
    gateway.store.add("INBOX", vec![Flag::Keyword("$Work".into())], FIXTURE);
    let mut c = gateway.login().await;
    assert_eq!(
        c.cmd("a", "EXAMINE INBOX").await,
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work)",
            "* OK [PERMANENTFLAGS ()] read-only",
            "* 2 EXISTS",
            "* 2 RECENT",
            "* OK [UNSEEN 2] first unseen",
            "* OK [UIDVALIDITY 100] UIDs valid",
            "* OK [UIDNEXT 3] predicted next UID",
            "* OK [HIGHESTMODSEQ 3] modseqs kept",
            "a OK [READ-ONLY] EXAMINE completed",
        ]
    );
    let selected = c.cmd("b", "SELECT INBOX").await;
    assert_eq!(
        selected[1],
        "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Work \\*)] flags permitted"
    );
    assert_eq!(selected[3], "* 2 RECENT", "EXAMINE did not take \\Recent away");
    let size = FIXTURE.len();
    let f = |lines: Vec<String>| {
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[1].ends_with("OK FETCH completed") || lines[1].ends_with("OK UID FETCH completed"));
        lines[0].clone()
    };
    assert_eq!(
        f(c.cmd("c", "FETCH 2 (FLAGS INTERNALDATE RFC822.SIZE UID)").await),
        format!(
            "* 2 FETCH (FLAGS ($Work \\Recent) INTERNALDATE \"02-Jan-2024 10:00:00 +0000\" RFC822.SIZE {size} UID 2)"
        )
    );
    let envelope = "ENVELOPE (\"Tue, 2 Jan 2024 10:00:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?= and a report\" \
((\"=?utf-8?b?SsO2cmc=?=\" NIL \"joerg\" \"example.org\")) ((\"=?utf-8?b?SsO2cmc=?=\" NIL \"joerg\" \"example.org\")) \
((\"=?utf-8?b?SsO2cmc=?=\" NIL \"joerg\" \"example.org\")) ((\"Ann\" NIL \"ann\" \"example.com\")) NIL NIL NIL \
\"<fixture@example.org>\")";
    assert_eq!(f(c.cmd("d", "FETCH 2 ENVELOPE").await), format!("* 2 FETCH ({envelope})"));
    let text_part = "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"8BIT\" 27 1";
    let pdf = "(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") NIL NIL \"BASE64\" 12";
    assert_eq!(
        f(c.cmd("e", "FETCH 2 BODYSTRUCTURE").await),
        format!(
            "* 2 FETCH (BODYSTRUCTURE ({text_part} NIL NIL NIL NIL){pdf} NIL (\"ATTACHMENT\" (\"FILENAME\" \"r.pdf\")) NIL NIL) \
\"MIXED\" (\"BOUNDARY\" \"xx\") NIL NIL NIL))"
        )
    );
    assert_eq!(f(c.cmd("f", "FETCH 2 BODY").await), format!("* 2 FETCH (BODY ({text_part}){pdf}) \"MIXED\"))"));
    assert_eq!(
        f(c.cmd("g", "FETCH 2 FAST").await),
        format!("* 2 FETCH (FLAGS ($Work \\Recent) INTERNALDATE \"02-Jan-2024 10:00:00 +0000\" RFC822.SIZE {size})")
    );
    assert!(f(c.cmd("h", "FETCH 2 ALL").await).ends_with(&format!("RFC822.SIZE {size} {envelope})")));
    assert!(f(c.cmd("i", "FETCH 2 FULL").await).ends_with(&format!("{envelope} BODY ({text_part}){pdf}) \"MIXED\"))")));
    let header_end = FIXTURE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let header = std::str::from_utf8(&FIXTURE[..header_end]).unwrap();
    let text = std::str::from_utf8(&FIXTURE[header_end..]).unwrap();
    let whole = std::str::from_utf8(FIXTURE).unwrap();
    let lit = |s: &str| format!("{{{}}}\r\n{s}", s.len());
    assert_eq!(f(c.cmd("j", "FETCH 2 BODY.PEEK[HEADER]").await), format!("* 2 FETCH (BODY[HEADER] {})", lit(header)));
    assert_eq!(
        f(c.cmd("k", "FETCH 2 BODY.PEEK[HEADER.FIELDS (Subject To)]").await),
        format!(
            "* 2 FETCH (BODY[HEADER.FIELDS (SUBJECT TO)] {})",
            lit("To: Ann <ann@example.com>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and a report\r\n\r\n")
        )
    );
    let not = c.cmd("l", "FETCH 2 BODY.PEEK[HEADER.FIELDS.NOT (From To Subject Date Message-ID)]").await;
    assert_eq!(
        f(not),
        format!(
            "* 2 FETCH (BODY[HEADER.FIELDS.NOT (FROM TO SUBJECT DATE MESSAGE-ID)] {})",
            lit("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n")
        )
    );
    assert_eq!(f(c.cmd("m", "FETCH 2 BODY.PEEK[TEXT]").await), format!("* 2 FETCH (BODY[TEXT] {})", lit(text)));
    assert_eq!(
        f(c.cmd("n", "FETCH 2 BODY.PEEK[1]").await),
        format!("* 2 FETCH (BODY[1] {})", lit("Hallo Ann, schöne Grüße."))
    );
    assert_eq!(
        f(c.cmd("o", "FETCH 2 BODY.PEEK[2.MIME]").await),
        format!(
            "* 2 FETCH (BODY[2.MIME] {})",
            lit("Content-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        )
    );
    assert_eq!(f(c.cmd("p", "FETCH 2 BODY.PEEK[2]<4.5>").await), format!("* 2 FETCH (BODY[2]<4> {})", lit("Ri0xL")));
    assert_eq!(f(c.cmd("q", "FETCH 2 BODY.PEEK[]<0.4>").await), format!("* 2 FETCH (BODY[]<0> {})", lit("From")));
    assert_eq!(f(c.cmd("r", "FETCH 2 RFC822.HEADER").await), format!("* 2 FETCH (RFC822.HEADER {})", lit(header)));
    assert_eq!(gateway.store.flags("INBOX", 2), [Flag::Keyword("$Work".into())], "nothing so far set \\Seen");
    // Non-PEEK fetches set \Seen and report FLAGS.
    assert_eq!(
        f(c.cmd("s", "UID FETCH 2 RFC822.TEXT").await),
        format!("* 2 FETCH (UID 2 RFC822.TEXT {} FLAGS ($Work \\Seen \\Recent))", lit(text))
    );
    assert_eq!(gateway.store.flags("INBOX", 2), [Flag::Keyword("$Work".into()), Flag::Seen]);
    assert_eq!(
        f(c.cmd("t", "FETCH 2 RFC822").await),
        format!("* 2 FETCH (RFC822 {} FLAGS ($Work \\Seen \\Recent))", lit(whole))
    );
    assert_eq!(
        f(c.cmd("u", "FETCH 2 BODY[]").await),
        format!("* 2 FETCH (BODY[] {} FLAGS ($Work \\Seen \\Recent))", lit(whole))
    );
    assert_eq!(
        c.cmd("v", "UID FETCH 1:* (FLAGS)").await,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))",
            "* 2 FETCH (UID 2 FLAGS ($Work \\Seen \\Recent))",
            "v OK UID FETCH completed"
        ]
    );
    assert_eq!(
        c.cmd("w", "FETCH 3 FLAGS").await,
        ["w BAD invalid sequence set: there is no message with sequence number 3"]
    );
    assert_eq!(
        c.cmd("x", "UID FETCH 3:* FLAGS").await,
        ["* 2 FETCH (UID 2 FLAGS ($Work \\Seen \\Recent))", "x OK UID FETCH completed"]
    );
    gateway.stop().await;
}

#[tokio::test]
async fn store_flags_and_search() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![Flag::Seen], &simple("Quarterly report", "numbers inside"));
    gateway.store.add("INBOX", vec![], &simple("=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "hello from Berlin"));
    gateway.store.add("INBOX", vec![Flag::Flagged], FIXTURE);
    let mut c = gateway.select("INBOX").await;
    assert_eq!(
        c.cmd("a", "STORE 1:2 +FLAGS (\\Answered $Label1)").await,
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] flags permitted",
            "* 1 FETCH (FLAGS (\\Seen \\Answered $Label1 \\Recent))",
            "* 2 FETCH (FLAGS (\\Answered $Label1 \\Recent))",
            "a OK STORE completed"
        ]
    );
    assert_eq!(c.cmd("b", "UID STORE 2 -FLAGS.SILENT ($Label1)").await, ["b OK UID STORE completed"]);
    assert_eq!(gateway.store.flags("INBOX", 2), [Flag::Answered]);
    assert_eq!(
        c.cmd("c", "UID STORE 3 FLAGS (\\Deleted)").await,
        ["* 3 FETCH (UID 3 FLAGS (\\Deleted \\Recent))", "c OK UID STORE completed"]
    );
    assert_eq!(c.cmd("d", "STORE 1 +FLAGS (\\Recent)").await, ["d BAD [CLIENTBUG] the flag \\Recent cannot be stored"]);
    let search = |lines: Vec<String>| lines[0].clone();
    assert_eq!(search(c.cmd("e", "SEARCH ANSWERED").await), "* SEARCH 1 2");
    assert_eq!(search(c.cmd("f", "SEARCH UNSEEN NOT DELETED").await), "* SEARCH 2");
    assert_eq!(search(c.cmd("g", "SEARCH CHARSET UTF-8 SUBJECT {7+}\r\ngrüße").await), "* SEARCH 2 3");
    assert_eq!(search(c.cmd("h", "SEARCH CHARSET UTF-8 BODY berlin").await), "* SEARCH 2");
    assert_eq!(search(c.cmd("i", "UID SEARCH OR FROM {5+}\r\njörg KEYWORD $label1").await), "* SEARCH 1 3");
    assert_eq!(search(c.cmd("j", "SEARCH TEXT quarterly").await), "* SEARCH 1");
    assert_eq!(search(c.cmd("k", "SEARCH LARGER 200 SINCE 1-Jan-2024").await), "* SEARCH 3");
    assert_eq!(search(c.cmd("l", "SEARCH SENTON 2-Jan-2024").await), "* SEARCH 3");
    assert_eq!(search(c.cmd("m", "SEARCH 2:* NOT (DELETED)").await), "* SEARCH 2");
    assert_eq!(search(c.cmd("n", "SEARCH HEADER Message-ID fixture").await), "* SEARCH 3");
    assert_eq!(search(c.cmd("o", "SEARCH RECENT NEW").await), "* SEARCH 2 3");
    assert_eq!(search(c.cmd("p", "SEARCH BEFORE 1-Jan-2024").await), "* SEARCH");
    assert_eq!(
        c.cmd("q", "SEARCH CHARSET KOI8-R ALL").await,
        ["q NO [BADCHARSET (UTF-8 US-ASCII)] unsupported charset"]
    );
    // EXPUNGE, then the sequence numbers shift.
    assert_eq!(c.cmd("r", "EXPUNGE").await, ["* 3 EXPUNGE", "r OK EXPUNGE completed"]);
    assert_eq!(gateway.store.uids("INBOX"), [1, 2]);
    gateway.stop().await;
}

#[tokio::test]
async fn copy_move_and_append_report_uidplus_codes() {
    let gateway = start().await;
    for i in 1..=3 {
        gateway.store.add("INBOX", vec![], &simple(&format!("m{i}"), "x"));
    }
    let mut c = gateway.select("INBOX").await;
    assert_eq!(c.cmd("a", "COPY 1:2 Trash").await, ["a OK [COPYUID 300 1:2 1:2] COPY completed"]);
    assert_eq!(c.cmd("b", "UID COPY 3 Nowhere").await, ["b NO [TRYCREATE] no such target mailbox"]);
    assert_eq!(
        c.cmd("c", "MOVE 2 Trash").await,
        ["* OK [COPYUID 300 2 3] moved", "* 2 EXPUNGE", "c OK MOVE completed"]
    );
    assert_eq!(gateway.store.uids("INBOX"), [1, 3]);
    assert_eq!(
        c.cmd("d", "UID MOVE 3 Sent").await,
        ["* OK [COPYUID 200 3 1] moved", "* 2 EXPUNGE", "d OK UID MOVE completed"]
    );
    let message = simple("appended", "hi");
    c.send(&format!("e APPEND Sent (\\Seen \\Draft) \"05-Jan-2024 12:00:00 +0100\" {{{}}}", message.len())).await;
    assert_eq!(c.line().await, "+ Ready for literal data");
    c.send_raw(&message).await;
    c.send_raw(b"\r\n").await;
    assert_eq!(c.response("e").await, ["e OK [APPENDUID 200 2] APPEND completed"]);
    {
        let folders = gateway.store.folders.lock().unwrap();
        let appended = &folders["Sent"].messages[1];
        assert_eq!(&*appended.bytes, &message[..]);
        assert_eq!(appended.flags, [Flag::Seen, Flag::Draft]);
        assert_eq!(appended.date, 1_704_452_400);
    }
    // LITERAL+ into the selected mailbox: EXISTS follows.
    let small = simple("plus", "y");
    let mut raw = format!("f APPEND INBOX {{{}+}}\r\n", small.len()).into_bytes();
    raw.extend_from_slice(&small);
    raw.extend_from_slice(b"\r\n");
    c.send_raw(&raw).await;
    // Every message this session has seen first is \\Recent for it: uid 1 and the new one.
    assert_eq!(c.response("f").await, ["* 2 EXISTS", "* 2 RECENT", "f OK [APPENDUID 100 4] APPEND completed"]);
    assert_eq!(c.cmd("g", "APPEND Nowhere {1+}\r\nx").await, ["g NO [TRYCREATE] no such mailbox"]);
    gateway.stop().await;
}

#[tokio::test]
async fn two_sessions_see_expunges_only_when_allowed() {
    let gateway = start().await;
    for i in 1..=4 {
        gateway.store.add("INBOX", vec![], &simple(&format!("m{i}"), "x"));
    }
    let mut a = gateway.select("INBOX").await;
    let mut b = gateway.select("INBOX").await;
    assert_eq!(a.cmd("a1", "STORE 2,3 +FLAGS.SILENT (\\Deleted)").await, ["a1 OK STORE completed"]);
    assert_eq!(a.cmd("a2", "EXPUNGE").await, ["* 3 EXPUNGE", "* 2 EXPUNGE", "a2 OK EXPUNGE completed"]);
    // B is told of the flag changes but not the expunges during FETCH, and its
    // sequence numbers still hold.
    assert_eq!(
        b.cmd("b1", "FETCH 1:4 (UID)").await,
        ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)", "b1 OK FETCH completed"]
    );
    assert_eq!(b.cmd("b2", "SEARCH ALL").await[0], "* SEARCH 1 2 3 4");
    // Content of messages A expunged is gone: B gets the rest and an OK that says so
    // (RFC 5530 EXPUNGEISSUED), not a NO that would fail the whole command.
    let fetched = b.cmd("b2b", "FETCH 1:4 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])").await;
    assert_eq!(
        fetched.iter().filter(|l| l.contains(" FETCH (BODY[HEADER.FIELDS (SUBJECT)]")).count(),
        2,
        "{fetched:?}"
    );
    assert!(fetched.iter().any(|l| l.starts_with("* 1 FETCH")) && fetched.iter().any(|l| l.starts_with("* 4 FETCH")));
    assert!(fetched.last().unwrap().starts_with("b2b OK [EXPUNGEISSUED] "), "{fetched:?}");
    assert_eq!(b.cmd("b3", "NOOP").await, ["* 3 EXPUNGE", "* 2 EXPUNGE", "* 2 EXISTS", "b3 OK NOOP completed"]);
    assert_eq!(b.cmd("b4", "FETCH 2 (UID)").await, ["* 2 FETCH (UID 4)", "b4 OK FETCH completed"]);
    // A flag change in one session reaches the other; a new message too.
    assert_eq!(a.cmd("a3", "STORE 2 +FLAGS.SILENT (\\Flagged)").await, ["a3 OK STORE completed"]);
    gateway.store.add("INBOX", vec![], &simple("m5", "x"));
    assert_eq!(
        b.cmd("b5", "CHECK").await,
        ["* 2 FETCH (UID 4 FLAGS (\\Flagged))", "* 3 EXISTS", "* 1 RECENT", "b5 OK CHECK completed"]
    );
    // Only one session gets \Recent for the new message: A keeps it for uids 1 and 4 only.
    assert_eq!(a.cmd("a4", "NOOP").await, ["* 3 EXISTS", "* 2 RECENT", "a4 OK NOOP completed"]);
    assert_eq!(a.cmd("a4b", "SEARCH RECENT").await[0], "* SEARCH 1 2");
    assert_eq!(b.cmd("b5b", "SEARCH RECENT").await[0], "* SEARCH 3");
    // CLOSE expunges silently; UNSELECT does not.
    assert_eq!(a.cmd("a5", "STORE 1 +FLAGS.SILENT (\\Deleted)").await, ["a5 OK STORE completed"]);
    assert_eq!(a.cmd("a6", "UNSELECT").await, ["a6 OK UNSELECT completed"]);
    assert_eq!(gateway.store.uids("INBOX"), [1, 4, 5]);
    assert_eq!(a.cmd("a7", "FETCH 1 FLAGS").await, ["a7 BAD FETCH is not valid in this state: select a mailbox first"]);
    assert!(a.cmd("a8", "SELECT INBOX").await.last().unwrap().starts_with("a8 OK"));
    assert_eq!(a.cmd("a9", "CLOSE").await, ["a9 OK CLOSE completed"]);
    assert_eq!(gateway.store.uids("INBOX"), [4, 5]);
    // B learns of the CLOSE's expunge after its next command.
    assert_eq!(
        b.cmd("b6", "UID STORE 4:5 +FLAGS.SILENT (\\Deleted)").await,
        ["* 1 EXPUNGE", "* 2 EXISTS", "b6 OK UID STORE completed"]
    );
    assert_eq!(gateway.store.uids("INBOX"), [4, 5]);
    assert_eq!(b.cmd("b7", "UID EXPUNGE 5").await, ["* 2 EXPUNGE", "b7 OK EXPUNGE completed"]);
    assert_eq!(gateway.store.uids("INBOX"), [4], "UID EXPUNGE removes only the UIDs given");
    gateway.stop().await;
}

#[tokio::test]
async fn idle_is_woken_by_a_change() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![], &simple("m1", "x"));
    let mut a = gateway.select("INBOX").await;
    a.send("i1 IDLE").await;
    assert_eq!(a.line().await, "+ idling");
    let mut b = gateway.login().await;
    let message = simple("new", "y");
    let appended =
        b.cmd("b1", &format!("APPEND INBOX {{{}+}}\r\n{}", message.len(), String::from_utf8(message).unwrap())).await;
    assert_eq!(appended, ["b1 OK [APPENDUID 100 2] APPEND completed"]);
    assert_eq!(a.line().await, "* 2 EXISTS");
    assert_eq!(a.line().await, "* 2 RECENT");
    assert_eq!(b.cmd("b2", "SELECT INBOX").await[3], "* 0 RECENT", "the idling session has seen both");
    assert_eq!(b.cmd("b3", "STORE 1 +FLAGS.SILENT (\\Seen)").await, ["b3 OK STORE completed"]);
    assert_eq!(a.line().await, "* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent))");
    a.send("DONE").await;
    assert_eq!(a.response("i1").await, ["i1 OK IDLE terminated"]);
    assert_eq!(a.cmd("i2", "NOOP").await, ["i2 OK NOOP completed"]);
    gateway.stop().await;
}

#[tokio::test]
async fn idle_polls_and_times_out() {
    let config = ImapConfig {
        poll_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(2),
        ..ImapConfig::default()
    };
    let gateway = start_with(config).await;
    let mut a = gateway.select("INBOX").await;
    a.send("i1 IDLE").await;
    assert_eq!(a.line().await, "+ idling");
    // A change the backend does not announce is found by the poll.
    gateway.store.folders.lock().unwrap().get_mut("INBOX").unwrap().add(vec![], 0, &simple("quiet", "z"));
    assert_eq!(a.line().await, "* 1 EXISTS");
    assert_eq!(a.line().await, "* 1 RECENT");
    assert_eq!(a.line().await, "* BYE IDLE lasted too long");
    assert_eq!(a.line().await, "i1 OK IDLE ended");
    assert!(a.closed().await);
    gateway.stop().await;
}

#[tokio::test]
async fn bad_input_wrong_state_and_big_literals_leave_the_connection_usable() {
    let gateway = start().await;
    let mut c = gateway.connect().await;
    assert_eq!(c.cmd("a1", "FROBNICATE").await, ["a1 BAD [CLIENTBUG] syntax error in the command"]);
    c.send("no-tag-here").await;
    assert_eq!(c.line().await, "* BAD [CLIENTBUG] syntax error in the command");
    assert_eq!(c.cmd("a2", "SELECT INBOX").await, ["a2 BAD SELECT is not valid in this state: log in first"]);
    assert_eq!(c.cmd("a3", "FETCH 1 FLAGS").await, ["a3 BAD FETCH is not valid in this state: log in first"]);
    // A synchronizing literal over the limit is refused before the continuation.
    c.send(&format!("a4 LOGIN {{{}}}", LITERAL_LIMIT + 1)).await;
    assert_eq!(c.line().await, format!("a4 NO [TOOBIG] literals are limited to {LITERAL_LIMIT} octets"));
    assert_eq!(c.cmd("a5", "LOGIN {5}\r\nalice {6}\r\nsecret").await.last().unwrap().split(' ').nth(1), Some("OK"));
    assert_eq!(c.cmd("a6", "FETCH 1 FLAGS").await, ["a6 BAD FETCH is not valid in this state: select a mailbox first"]);
    assert_eq!(c.cmd("a7", "SELECT INBOX (").await, ["a7 BAD [CLIENTBUG] syntax error in the command"]);
    assert_eq!(c.cmd("a8", "SELECT Nope").await, ["a8 NO [NONEXISTENT] no such mailbox"]);
    assert_eq!(c.cmd("a9", "SORT (DATE) UTF-8 ALL").await.last().unwrap(), "a9 BAD SORT is not supported");
    // Another session is not disturbed by this one's non-synchronizing literal over the limit.
    let mut other = gateway.login().await;
    c.send(&format!("b1 APPEND INBOX {{{}+}}", LITERAL_LIMIT + 1)).await;
    assert_eq!(c.line().await, format!("b1 BAD [TOOBIG] literals are limited to {LITERAL_LIMIT} octets"));
    assert_eq!(c.line().await, "* BYE cannot read past the literal");
    assert!(c.closed().await);
    assert_eq!(other.cmd("o1", "NOOP").await, ["o1 OK NOOP completed"]);
    // A panic in one session drops only that connection.
    let mut doomed = gateway.login().await;
    doomed.send("p1 CREATE panic").await;
    assert!(doomed.closed().await);
    assert_eq!(other.cmd("o1b", "NOOP").await, ["o1b OK NOOP completed"]);
    assert!(gateway.login().await.cmd("n1", "NOOP").await == ["n1 OK NOOP completed"]);
    assert_eq!(other.cmd("o2", "LOGOUT").await, ["* BYE smimp-gateway logging out", "o2 OK LOGOUT completed"]);
    assert!(other.closed().await);
    gateway.stop().await;
}

/// A connection that does not log in is closed after the login timeout, on either
/// port, and told why; one that logged in stays open past it.
#[tokio::test]
async fn a_connection_that_does_not_log_in_is_closed_after_the_login_timeout() {
    let config = ImapConfig { login_timeout: Duration::from_millis(300), ..ImapConfig::default() };
    let gateway = start_with(config).await;
    let mut logged_in = gateway.login().await;
    let mut stranger = gateway.connect().await;
    assert_eq!(stranger.cmd("a1", "NOOP").await, ["a1 OK NOOP completed"]);
    let plain = TcpStream::connect(("127.0.0.1", gateway.starttls_port)).await.unwrap();
    let mut plain = Client { io: BufReader::new(Box::new(plain)) };
    assert!(plain.line().await.starts_with("* OK"));
    let started = std::time::Instant::now();
    let told = tokio::time::timeout(Duration::from_secs(5), stranger.line()).await.expect("closed in time");
    assert_eq!(told, "* BYE autologout; no login in time");
    assert!(stranger.closed().await);
    let told = tokio::time::timeout(Duration::from_secs(5), plain.line()).await.expect("closed in time");
    assert_eq!(told, "* BYE autologout; no login in time");
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(logged_in.cmd("n1", "NOOP").await, ["n1 OK NOOP completed"]);
    gateway.stop().await;
}

/// Idle connections beyond `max_unauthenticated` close the oldest of them (told why),
/// and a listener full of logged-in sessions and idle connections still serves a
/// newcomer in place of the oldest idle one; a logged-in session is never closed for one.
#[tokio::test]
async fn idle_connections_make_room_for_a_client_that_logs_in() {
    const BYE: &str = "* BYE [UNAVAILABLE] too many connections are waiting to log in; closing the oldest";
    // Beyond the cap of idle connections, with room to spare on the listener.
    let gateway = start_with(ImapConfig { max_unauthenticated: 2, ..ImapConfig::default() }).await;
    let mut oldest = gateway.connect().await;
    let _idle = [gateway.connect().await, gateway.connect().await];
    let told = tokio::time::timeout(Duration::from_secs(5), oldest.line()).await.expect("the oldest is closed");
    assert_eq!(told, BYE);
    assert!(oldest.closed().await);
    gateway.stop().await;

    // A full listener: two logged-in sessions and one idle connection.
    let gateway = start_with(ImapConfig { max_connections: 3, max_unauthenticated: 2, ..ImapConfig::default() }).await;
    let mut first = gateway.login().await;
    let mut second = gateway.login().await;
    let mut idle = gateway.connect().await;
    let mut newcomer = gateway.login().await;
    let told = tokio::time::timeout(Duration::from_secs(5), idle.line()).await.expect("the idle one is closed");
    assert_eq!(told, BYE);
    assert_eq!(newcomer.cmd("n1", "NOOP").await, ["n1 OK NOOP completed"]);
    assert_eq!(first.cmd("f1", "NOOP").await, ["f1 OK NOOP completed"]);
    assert_eq!(second.cmd("s1", "NOOP").await, ["s1 OK NOOP completed"]);
    gateway.stop().await;
}

/// The atom NIL is not a flag (RFC 3501 §9: flag-keyword is an atom, and NIL is the
/// nil value): STORE and APPEND refuse it with a plain reason and store nothing.
#[tokio::test]
async fn nil_is_refused_as_a_flag() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![], &simple("m1", "x"));
    let mut c = gateway.select("INBOX").await;
    assert_eq!(c.cmd("a", "STORE 1 +FLAGS (NIL)").await, ["a BAD [CLIENTBUG] NIL is not a flag"]);
    assert_eq!(c.cmd("b", "UID STORE 1 FLAGS (\\Seen nil)").await, ["b BAD [CLIENTBUG] NIL is not a flag"]);
    assert_eq!(gateway.store.flags("INBOX", 1), []);
    assert_eq!(c.cmd("c", "APPEND INBOX (NIL) {1+}\r\nx").await, ["c BAD [CLIENTBUG] NIL is not a flag"]);
    assert_eq!(gateway.store.uids("INBOX"), [1]);
    gateway.stop().await;
}

/// A keyword is announced in an untagged FLAGS and PERMANENTFLAGS before any FETCH
/// shows it (RFC 3501 §7.2.6): on SELECT, and when a STORE or APPEND (or another
/// session) brings a new one into the selected mailbox.
#[tokio::test]
async fn new_keywords_are_announced_before_fetch_shows_them() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![Flag::Keyword("$Old".into())], &simple("m1", "x"));
    gateway.store.add("INBOX", vec![], &simple("m2", "x"));
    let mut c = gateway.select("INBOX").await;
    let flags = |k: &str| format!("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {k})");
    let permanent = |k: &str| {
        format!("* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft {k} \\*)] flags permitted")
    };
    assert_eq!(
        c.cmd("a", "STORE 2 +FLAGS ($New)").await,
        [
            flags("$Old $New"),
            permanent("$Old $New"),
            "* 2 FETCH (FLAGS ($New \\Recent))".to_string(),
            "a OK STORE completed".to_string()
        ]
    );
    // Known keywords are not announced again.
    assert_eq!(
        c.cmd("b", "STORE 1 +FLAGS ($New)").await,
        ["* 1 FETCH (FLAGS ($Old $New \\Recent))", "b OK STORE completed"]
    );
    // APPEND into the selected mailbox.
    assert_eq!(
        c.cmd("c", "APPEND INBOX ($Appended) {1+}\r\nx").await,
        [
            flags("$Old $New $Appended"),
            permanent("$Old $New $Appended"),
            "* 3 EXISTS".to_string(),
            "* 3 RECENT".to_string(),
            "c OK [APPENDUID 100 3] APPEND completed".to_string()
        ]
    );
    // Another session's keyword, before the FETCH that tells of it.
    let mut other = gateway.select("INBOX").await;
    assert_eq!(
        other.cmd("o", "STORE 3 +FLAGS.SILENT ($Other)").await,
        [flags("$Old $New $Appended $Other"), permanent("$Old $New $Appended $Other"), "o OK STORE completed".into()],
        "announced even when the STORE is silent"
    );
    assert_eq!(
        c.cmd("d", "NOOP").await,
        [
            flags("$Old $New $Appended $Other"),
            permanent("$Old $New $Appended $Other"),
            "* 3 FETCH (UID 3 FLAGS ($Appended $Other \\Recent))".to_string(),
            "d OK NOOP completed".to_string()
        ]
    );
    gateway.stop().await;
}

/// MOVE into the mailbox the message is in (RFC 6851 §3.3): the copy arrives (EXISTS)
/// and the source goes (EXPUNGE), as for any other target.
#[tokio::test]
async fn move_to_the_same_mailbox_reports_expunge_and_exists() {
    let gateway = start().await;
    for i in 1..=2 {
        gateway.store.add("INBOX", vec![], &simple(&format!("m{i}"), "x"));
    }
    let mut c = gateway.select("INBOX").await;
    assert_eq!(
        c.cmd("a", "MOVE 1 INBOX").await,
        ["* OK [COPYUID 100 1 3] moved", "* 1 EXPUNGE", "* 2 EXISTS", "* 2 RECENT", "a OK MOVE completed"]
    );
    assert_eq!(
        c.cmd("b", "UID MOVE 3 INBOX").await,
        ["* OK [COPYUID 100 3 4] moved", "* 2 EXPUNGE", "* 2 EXISTS", "* 2 RECENT", "b OK UID MOVE completed"]
    );
    assert_eq!(gateway.store.uids("INBOX"), [2, 4]);
    assert_eq!(
        c.cmd("c", "UID FETCH 1:* UID").await,
        ["* 1 FETCH (UID 2)", "* 2 FETCH (UID 4)", "c OK UID FETCH completed"]
    );
    gateway.stop().await;
}

/// LSUB with `%` (RFC 3501 §6.3.9): a subscribed mailbox's unsubscribed parent (here
/// one just created, as CREATE does not subscribe) is listed `\Noselect`; after
/// UNSUBSCRIBE neither is listed.
#[tokio::test]
async fn lsub_lists_hidden_parents_and_forgets_unsubscribed() {
    let gateway = start().await;
    let mut c = gateway.login().await;
    assert_eq!(c.cmd("a", "CREATE Work").await, ["a OK CREATE completed"]);
    assert_eq!(c.cmd("b", "LSUB \"\" Work*").await, ["b OK LSUB completed"], "neither is subscribed");
    assert_eq!(c.cmd("c", "SUBSCRIBE Work/Projects").await, ["c OK SUBSCRIBE completed"]);
    assert_eq!(
        c.cmd("d", "LSUB \"\" %").await,
        [
            "* LSUB () \"/\" \"INBOX\"",
            "* LSUB () \"/\" \"Sent\"",
            "* LSUB () \"/\" \"Trash\"",
            "* LSUB (\\Noselect) \"/\" \"Work\"",
            "d OK LSUB completed"
        ]
    );
    assert_eq!(c.cmd("e", "LSUB \"\" Work/%").await, ["* LSUB () \"/\" \"Work/Projects\"", "e OK LSUB completed"]);
    assert_eq!(c.cmd("f", "UNSUBSCRIBE Work/Projects").await, ["f OK UNSUBSCRIBE completed"]);
    assert_eq!(c.cmd("g", "LSUB \"\" Work/%").await, ["g OK LSUB completed"]);
    assert_eq!(
        c.cmd("h", "LSUB \"\" %").await,
        ["* LSUB () \"/\" \"INBOX\"", "* LSUB () \"/\" \"Sent\"", "* LSUB () \"/\" \"Trash\"", "h OK LSUB completed"]
    );
    gateway.stop().await;
}

/// `\Recent` across sessions (RFC 3501 §2.3.2, §6.3.1, §6.3.2, §6.3.10): a message is
/// recent in the first read-write session told of it, and in no later one, whichever
/// listener the sessions came through and however the user name was written. EXAMINE
/// shows it without taking it; STATUS counts what no such session has been told of.
#[tokio::test]
async fn recent_belongs_to_the_first_session_that_selects() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![], &simple("m1", "x"));
    gateway.store.add("INBOX", vec![Flag::Seen], &simple("m2", "x"));
    let status = |n: u32| vec![format!("* STATUS \"INBOX\" (MESSAGES 2 RECENT {n})"), "t OK STATUS completed".into()];
    // A only looks (EXAMINE): it sees both as recent and takes nothing.
    let mut a = gateway.login().await;
    let examined = a.cmd("a1", "EXAMINE INBOX").await;
    assert_eq!(examined[2..4], ["* 2 EXISTS", "* 2 RECENT"], "{examined:?}");
    assert_eq!(a.cmd("a2", "FETCH 1 FLAGS").await[0], "* 1 FETCH (FLAGS (\\Recent))");
    // B, on the other port and with the name in capitals, selects and takes both.
    let mut b = gateway.connect_plain().await;
    assert!(b.cmd("b0", "LOGIN ALICE secret").await[0].starts_with("b0 OK"));
    assert_eq!(b.cmd("t", "STATUS INBOX (MESSAGES RECENT)").await, status(2), "EXAMINE did not clear \\Recent");
    assert_eq!(b.cmd("b1", "SELECT INBOX").await[3], "* 2 RECENT");
    assert_eq!(b.cmd("b2", "SEARCH RECENT").await[0], "* SEARCH 1 2");
    assert_eq!(b.cmd("b3", "SEARCH NEW").await[0], "* SEARCH 1", "NEW is RECENT UNSEEN");
    assert_eq!(b.cmd("b4", "FETCH 2 FLAGS").await[0], "* 2 FETCH (FLAGS (\\Seen \\Recent))");
    // C, a second concurrent session through the first port, sees neither as recent.
    let mut c = gateway.login().await;
    assert_eq!(c.cmd("t", "STATUS INBOX (MESSAGES RECENT)").await, status(0));
    assert_eq!(c.cmd("c1", "SELECT INBOX").await[3], "* 0 RECENT");
    assert_eq!(c.cmd("c2", "SEARCH RECENT").await[0], "* SEARCH");
    assert_eq!(c.cmd("c3", "SEARCH OLD").await[0], "* SEARCH 1 2");
    assert_eq!(c.cmd("c4", "FETCH 1:2 FLAGS").await[..2], ["* 1 FETCH (FLAGS ())", "* 2 FETCH (FLAGS (\\Seen))"]);
    // New mail is recent in the first read-write session told of it: C's NOOP.
    gateway.store.add("INBOX", vec![], &simple("m3", "x"));
    assert_eq!(c.cmd("c5", "NOOP").await, ["* 3 EXISTS", "* 1 RECENT", "c5 OK NOOP completed"]);
    assert_eq!(b.cmd("b5", "NOOP").await, ["* 3 EXISTS", "* 2 RECENT", "b5 OK NOOP completed"]);
    assert_eq!(c.cmd("c6", "SEARCH NEW").await[0], "* SEARCH 3");
    assert_eq!(b.cmd("b6", "SEARCH RECENT").await[0], "* SEARCH 1 2");
    assert_eq!(b.cmd("b7", "FETCH 3 FLAGS").await[0], "* 3 FETCH (FLAGS ())");
    assert_eq!(a.cmd("a3", "NOOP").await, ["* 3 EXISTS", "* 2 RECENT", "a3 OK NOOP completed"]);
    // A fourth session's EXAMINE: nothing is recent any more.
    let mut d = gateway.connect_plain().await;
    assert!(d.cmd("d0", "LOGIN alice secret").await[0].starts_with("d0 OK"));
    assert_eq!(d.cmd("d1", "EXAMINE INBOX").await[3], "* 0 RECENT");
    // While B idles, mail that arrives is B's, as B is told of it first.
    b.send("i1 IDLE").await;
    assert_eq!(b.line().await, "+ idling");
    gateway.store.add("INBOX", vec![], &simple("m4", "x"));
    assert_eq!([b.line().await, b.line().await], ["* 4 EXISTS", "* 3 RECENT"]);
    b.send("DONE").await;
    assert_eq!(b.response("i1").await, ["i1 OK IDLE terminated"]);
    assert_eq!(c.cmd("c7", "NOOP").await, ["* 4 EXISTS", "* 1 RECENT", "c7 OK NOOP completed"]);
    assert_eq!(
        d.cmd("t", "STATUS INBOX (RECENT)").await,
        ["* STATUS \"INBOX\" (RECENT 0)", "* 4 EXISTS", "* 0 RECENT", "t OK STATUS completed"],
        "B took the fourth: D's EXAMINE, told of it later, does not show it as recent"
    );
    gateway.stop().await;
}

/// ENVELOPE's group syntax (RFC 3501 §7.4.2): a group is its start marker (NIL NIL
/// "name" NIL), its members and its end marker (NIL NIL NIL NIL), in its place among
/// the list's other addresses; `undisclosed-recipients:;` is the two markers alone.
/// The same holds for the ENVELOPE inside an encapsulated message's BODYSTRUCTURE.
#[tokio::test]
async fn envelope_renders_groups_with_their_markers() {
    let gateway = start().await;
    let message = "From: Bob <bob@example.net>\r\n\
To: a@example.org, Team: b@example.org, \"C\" <c@example.org>;, d@example.org\r\n\
Cc: undisclosed-recipients:;\r\n\
Subject: groups\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: e@example.org\r\n\
To: undisclosed-recipients:;\r\n\
\r\n\
inner\r\n\
--b--\r\n";
    gateway.store.add("INBOX", vec![], message.as_bytes());
    let mut c = gateway.select("INBOX").await;
    let bob = "((\"Bob\" NIL \"bob\" \"example.net\"))";
    let to = "((NIL NIL \"a\" \"example.org\")(NIL NIL \"Team\" NIL)(NIL NIL \"b\" \"example.org\")\
(\"C\" NIL \"c\" \"example.org\")(NIL NIL NIL NIL)(NIL NIL \"d\" \"example.org\"))";
    let undisclosed = "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL))";
    assert_eq!(
        c.cmd("a", "FETCH 1 ENVELOPE").await,
        [
            format!("* 1 FETCH (ENVELOPE (NIL \"groups\" {bob} {bob} {bob} {to} {undisclosed} NIL NIL NIL))"),
            "a OK FETCH completed".to_string()
        ]
    );
    let structure = c.cmd("b", "FETCH 1 BODYSTRUCTURE").await;
    let inner = "((NIL NIL \"e\" \"example.org\"))";
    let envelope = format!("(NIL NIL {inner} {inner} {inner} {undisclosed} NIL NIL NIL NIL)");
    assert!(structure[0].contains(&envelope), "{structure:?}");
    gateway.stop().await;
}

/// When the selected mailbox's UIDVALIDITY changes, its messages are new to the view;
/// a FETCH (which may not report EXPUNGE) does not take their `\Recent` before the
/// NOOP that shows them.
#[tokio::test]
async fn a_new_uidvalidity_keeps_recent_for_the_view_that_shows_it() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![], &simple("m1", "x"));
    let mut c = gateway.select("INBOX").await;
    gateway.store.folders.lock().unwrap().get_mut("INBOX").unwrap().uid_validity = 101;
    assert_eq!(c.cmd("a", "FETCH 1 UID").await, ["* 1 FETCH (UID 1)", "a OK FETCH completed"]);
    assert_eq!(c.cmd("b", "NOOP").await, ["* 1 EXPUNGE", "* 1 EXISTS", "* 1 RECENT", "b OK NOOP completed"]);
    assert_eq!(c.cmd("c", "FETCH 1 FLAGS").await, ["* 1 FETCH (FLAGS (\\Recent))", "c OK FETCH completed"]);
    gateway.stop().await;
}

/// NIL where a string is expected is the atom's text (imaptest's nil script): SEARCH
/// SUBJECT NIL and BODY nil match "nil" as text, and LIST "" NIL is a plain pattern.
#[tokio::test]
async fn nil_as_a_search_string_or_list_pattern_is_text() {
    let gateway = start().await;
    gateway.store.add("INBOX", vec![], &simple("about nil", "nothing here but nil"));
    gateway.store.add("INBOX", vec![], &simple("other", "x"));
    let mut c = gateway.select("INBOX").await;
    assert_eq!(c.cmd("a", "SEARCH SUBJECT NIL").await, ["* SEARCH 1", "a OK SEARCH completed"]);
    assert_eq!(c.cmd("b", "SEARCH BODY nil").await, ["* SEARCH 1", "b OK SEARCH completed"]);
    assert_eq!(c.cmd("c", "LIST \"\" NIL").await, ["c OK LIST completed"]);
    gateway.stop().await;
}

/// CONDSTORE (RFC 7162 §3.1): ENABLE, SELECT (CONDSTORE) with HIGHESTMODSEQ, FETCH …
/// (CHANGEDSINCE n) and the MODSEQ item, UID STORE … (UNCHANGEDSINCE n) with MODIFIED,
/// SEARCH MODSEQ, STATUS (HIGHESTMODSEQ), and another session's change with its MODSEQ.
#[tokio::test]
async fn condstore_fetches_stores_and_searches_by_modseq() {
    let gateway = start().await;
    // INBOX starts at modseq 1: the three arrivals take 2, 3 and 4.
    gateway.store.add("INBOX", vec![Flag::Seen], &simple("m1", "x"));
    gateway.store.add("INBOX", vec![], &simple("m2", "x"));
    gateway.store.add("INBOX", vec![], &simple("m3", "x"));
    let mut c = gateway.login().await;
    assert_eq!(c.cmd("e1", "ENABLE CONDSTORE").await, ["* ENABLED CONDSTORE", "e1 OK ENABLE completed"]);
    let selected = c.cmd("s1", "SELECT INBOX (CONDSTORE)").await;
    assert_eq!(
        selected[selected.len() - 2..],
        ["* OK [HIGHESTMODSEQ 4] modseqs kept", "s1 OK [READ-WRITE] SELECT completed"]
    );
    assert_eq!(
        c.cmd("f1", "FETCH 1:* (FLAGS) (CHANGEDSINCE 2)").await,
        ["* 2 FETCH (FLAGS (\\Recent) MODSEQ (3))", "* 3 FETCH (FLAGS (\\Recent) MODSEQ (4))", "f1 OK FETCH completed"]
    );
    assert_eq!(
        c.cmd("f2", "UID FETCH 1:* (MODSEQ)").await,
        [
            "* 1 FETCH (UID 1 MODSEQ (2))",
            "* 2 FETCH (UID 2 MODSEQ (3))",
            "* 3 FETCH (UID 3 MODSEQ (4))",
            "f2 OK UID FETCH completed"
        ]
    );
    // UID 3 changed after modseq 3: it is left alone and named in MODIFIED.
    assert_eq!(
        c.cmd("s2", "UID STORE 1:3 (UNCHANGEDSINCE 3) +FLAGS (\\Flagged)").await,
        [
            "* 1 FETCH (UID 1 FLAGS (\\Seen \\Flagged \\Recent) MODSEQ (5))",
            "* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ (6))",
            "s2 OK [MODIFIED 3] UID STORE completed; some messages changed since and were left alone"
        ]
    );
    assert_eq!(gateway.store.flags("INBOX", 3), []);
    assert_eq!(
        c.cmd("s3", "STORE 3 (UNCHANGEDSINCE 0) FLAGS.SILENT (\\Deleted)").await,
        ["s3 OK [MODIFIED 3] STORE completed; some messages changed since and were left alone"]
    );
    assert_eq!(c.cmd("q1", "SEARCH MODSEQ 5").await, ["* SEARCH 1 2 (MODSEQ 6)", "q1 OK SEARCH completed"]);
    assert_eq!(c.cmd("q2", "SEARCH MODSEQ 7").await, ["* SEARCH", "q2 OK SEARCH completed"]);
    assert_eq!(
        c.cmd("t1", "STATUS INBOX (HIGHESTMODSEQ MESSAGES)").await,
        ["* STATUS \"INBOX\" (HIGHESTMODSEQ 6 MESSAGES 3)", "t1 OK STATUS completed"]
    );
    // Another session's change arrives with its modseq.
    let mut other = gateway.select("INBOX").await;
    assert_eq!(other.cmd("o1", "STORE 3 +FLAGS.SILENT (\\Answered)").await, ["o1 OK STORE completed"]);
    let noop = c.cmd("n1", "NOOP").await;
    assert_eq!(
        noop[noop.len() - 2..],
        ["* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent) MODSEQ (7))", "n1 OK NOOP completed"]
    );
    gateway.stop().await;
}

/// QRESYNC (RFC 7162 §3.2): SELECT … (QRESYNC (…)) needs ENABLE first, then tells of the
/// expunges (VANISHED (EARLIER)) and flag changes since the client's modseq; UID FETCH
/// … (CHANGEDSINCE n VANISHED); and once on, expunges are VANISHED, not EXPUNGE.
#[tokio::test]
async fn qresync_resyncs_in_one_select_and_reports_vanished() {
    let gateway = start().await;
    for i in 1..=4 {
        gateway.store.add("INBOX", vec![], &simple(&format!("m{i}"), "x")); // modseqs 2..5
    }
    let mut a = gateway.select("INBOX").await;
    assert_eq!(a.cmd("a1", "STORE 2 +FLAGS.SILENT (\\Deleted)").await, ["a1 OK STORE completed"]); // 6
    assert_eq!(a.cmd("a2", "EXPUNGE").await, ["* 2 EXPUNGE", "a2 OK EXPUNGE completed"]); // 7
    assert_eq!(a.cmd("a3", "STORE 2 +FLAGS.SILENT (\\Seen)").await, ["a3 OK STORE completed"]); // uid 3: 8

    let mut q = gateway.login().await;
    assert_eq!(
        q.cmd("s0", "SELECT INBOX (QRESYNC (100 5))").await,
        ["s0 BAD [CLIENTBUG] enable QRESYNC first (ENABLE QRESYNC), then SELECT with it"]
    );
    assert_eq!(q.cmd("e1", "ENABLE QRESYNC").await, ["* ENABLED CONDSTORE QRESYNC", "e1 OK ENABLE completed"]);
    // A client that knew UIDs 1:4 at modseq 5: UID 2 went, UID 3 changed.
    let selected = q.cmd("s1", "SELECT INBOX (QRESYNC (100 5 1:4))").await;
    assert_eq!(
        selected[selected.len() - 4..],
        [
            "* OK [HIGHESTMODSEQ 8] modseqs kept",
            "* VANISHED (EARLIER) 2",
            "* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (8))",
            "s1 OK [READ-WRITE] SELECT completed"
        ]
    );
    // Known UIDs limit what is reported; another UIDVALIDITY means a full resync.
    let limited = q.cmd("s2", "SELECT INBOX (QRESYNC (100 5 3:4))").await;
    assert!(!limited.iter().any(|l| l.starts_with("* VANISHED")), "{limited:?}");
    assert_eq!(limited[0], "* OK [CLOSED] the previous mailbox is closed");
    let stale = q.cmd("s3", "SELECT INBOX (QRESYNC (99 5))").await;
    assert!(!stale.iter().any(|l| l.contains("VANISHED") || l.contains("MODSEQ (")), "{stale:?}");
    assert_eq!(
        q.cmd("f1", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED)").await,
        ["* VANISHED (EARLIER) 2", "* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (8))", "f1 OK UID FETCH completed"]
    );
    assert_eq!(
        q.cmd("f2", "UID FETCH 1:* (FLAGS) (VANISHED)").await,
        ["f2 BAD [CLIENTBUG] VANISHED needs CHANGEDSINCE"]
    );
    assert_eq!(
        q.cmd("f3", "FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED)").await,
        ["f3 BAD [CLIENTBUG] VANISHED is for UID FETCH only"]
    );
    // Expunges elsewhere and here are VANISHED now.
    assert_eq!(a.cmd("a4", "STORE 3 +FLAGS.SILENT (\\Deleted)").await, ["a4 OK STORE completed"]);
    assert_eq!(a.cmd("a5", "EXPUNGE").await, ["* 3 EXPUNGE", "a5 OK EXPUNGE completed"]);
    assert_eq!(q.cmd("n1", "NOOP").await, ["* VANISHED 4", "* 2 EXISTS", "n1 OK NOOP completed"]);
    assert_eq!(q.cmd("x1", "STORE 1 +FLAGS.SILENT (\\Deleted)").await, ["x1 OK STORE completed"]);
    assert_eq!(q.cmd("x2", "EXPUNGE").await, ["* VANISHED 1", "x2 OK EXPUNGE completed"]);
    assert_eq!(gateway.store.uids("INBOX"), [3]);
    // ENABLE while a mailbox is selected applies to it at once.
    let mut late = gateway.select("INBOX").await;
    assert_eq!(late.cmd("y1", "ENABLE QRESYNC").await, ["* ENABLED CONDSTORE QRESYNC", "y1 OK ENABLE completed"]);
    assert_eq!(late.cmd("y2", "STORE 1:* +FLAGS.SILENT (\\Deleted)").await.last().unwrap(), "y2 OK STORE completed");
    assert_eq!(late.cmd("y3", "EXPUNGE").await, ["* VANISHED 3", "y3 OK EXPUNGE completed"]);
    gateway.stop().await;
}
