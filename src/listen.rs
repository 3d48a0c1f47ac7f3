//! Leaf: the one listener every network front-end uses (SMTP submission, IMAP, the
//! reference server), so connection caps, TLS handshakes, panics and shutdown behave
//! the same everywhere and are written once.
//!
//! The caller binds the socket (port 0 in tests) and owns shutdown: it makes a
//! [`Shutdown`] pair, hands the watching half to every part, and keeps the
//! [`StopHandle`]. Dropping the handle counts as a request to stop, so a service whose
//! owner is gone winds down instead of running unowned.
//!
//! Depends on nothing else in the crate: std, tokio, tokio-rustls and tracing only.

use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

/// The watching half of a shutdown request; cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    /// `None` for a service that is never asked to stop (tests, one-shot tools).
    rx: Option<watch::Receiver<bool>>,
}

/// The owner's half: [`StopHandle::stop`] asks every holder of the paired
/// [`Shutdown`] to stop; so does dropping it.
#[derive(Debug)]
pub struct StopHandle {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    /// A new request, not yet made, and the handle that makes it.
    pub fn new() -> (StopHandle, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (StopHandle { tx }, Shutdown { rx: Some(rx) })
    }

    /// A shutdown that never comes.
    pub fn never() -> Shutdown {
        Shutdown { rx: None }
    }

    /// Whether stopping was asked for (or the handle is gone).
    pub fn is_requested(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| *rx.borrow() || rx.has_changed().is_err())
    }

    /// Resolves once stopping is asked for (or the handle is gone); never for
    /// [`Shutdown::never`].
    pub async fn requested(&self) {
        let Some(rx) = &self.rx else { return std::future::pending().await };
        let mut rx = rx.clone();
        // An error means the handle is gone: nobody can keep the service running.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl StopHandle {
    /// Asks every holder of the paired [`Shutdown`] to stop.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }
}

/// How a mail front-end's listener uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP with STARTTLS offered (RFC 3207, RFC 3501 §6.2.1), when a TLS
    /// configuration is given; without one the port is plain only.
    StartTls,
    /// TLS from the first byte (RFC 8314); needs a TLS configuration.
    Implicit,
}

impl TlsMode {
    /// The acceptor for `tls`, refusing implicit TLS without a TLS configuration.
    pub fn acceptor(
        self,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<Option<tokio_rustls::TlsAcceptor>> {
        if self == TlsMode::Implicit && tls.is_none() {
            let missing = "implicit TLS needs a TLS configuration";
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, missing));
        }
        Ok(tls.map(tokio_rustls::TlsAcceptor::from))
    }
}

/// What the listener does with a connection beyond the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Accept it and hand it to the refusal callback (a mail client is told to come
    /// back later rather than left hanging).
    Refuse,
    /// Leave it in the kernel's listen backlog until a slot is free (a flood of idle
    /// connections cannot exhaust memory or file descriptors).
    Wait,
}

/// How a listener admits and drains connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The service's name in log lines ("SMTP", "IMAP", "SMIMP server").
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    pub when_full: WhenFull,
    /// After shutdown, how long open connections may take before they are aborted.
    pub drain: Duration,
}

impl Limits {
    /// A mail front-end's limits: a client beyond the cap is told to come back later.
    pub fn refusing(name: &'static str, max_connections: usize, drain: Duration) -> Limits {
        Limits { name, max_connections, when_full: WhenFull::Refuse, drain }
    }
}

/// The connections of one mail listener that have not logged in yet, under a cap of
/// their own (below the listener's total), so that a flood of idle connections cannot
/// fill the listener: when the cap (or the total) is reached, the oldest one is told
/// to go and the newcomer is served. A mail client that logs in leaves the list and is
/// never closed for a newcomer.
#[derive(Debug, Clone)]
pub struct Guests {
    cap: usize,
    list: Arc<Mutex<GuestList>>,
}

#[derive(Debug, Default)]
struct GuestList {
    next: u64,
    /// Oldest first: (id, the signal that tells it to go).
    waiting: VecDeque<(u64, Arc<Notify>)>,
}

/// One connection's place among the [`Guests`] until it logs in.
#[derive(Debug)]
pub struct Guest {
    id: u64,
    evict: Arc<Notify>,
    list: Option<Arc<Mutex<GuestList>>>,
}

impl Guests {
    /// At most `cap` connections (at least one) wait to log in at once.
    pub fn new(cap: usize) -> Guests {
        Guests { cap: cap.max(1), list: Arc::default() }
    }

    /// A place for a new connection, and whether the oldest guest was told to go to
    /// make room for it (the cap was reached).
    pub fn admit(&self) -> (Guest, bool) {
        let evict = Arc::new(Notify::new());
        let Ok(mut list) = self.list.lock() else {
            return (Guest::none(), false);
        };
        let mut made_room = false;
        while list.waiting.len() >= self.cap {
            let Some((_, oldest)) = list.waiting.pop_front() else { break };
            tracing::info!("too many connections waiting to log in; closing the oldest");
            oldest.notify_one();
            made_room = true;
        }
        list.next += 1;
        let id = list.next;
        list.waiting.push_back((id, Arc::clone(&evict)));
        (Guest { id, evict, list: Some(Arc::clone(&self.list)) }, made_room)
    }

    /// Tells the oldest guest other than `newcomer` to go; false when there is none.
    fn evict_oldest_but(&self, newcomer: &Guest) -> bool {
        let Ok(mut list) = self.list.lock() else { return false };
        let Some(index) = list.waiting.iter().position(|(id, _)| *id != newcomer.id) else { return false };
        if let Some((_, oldest)) = list.waiting.remove(index) {
            tracing::info!("the listener is full; closing the oldest connection waiting to log in");
            oldest.notify_one();
        }
        true
    }
}

impl Guest {
    /// A connection outside any list (tests, a listener without a guest cap).
    pub fn none() -> Guest {
        Guest { id: 0, evict: Arc::new(Notify::new()), list: None }
    }

    /// Resolves when the listener needs this connection's place for a newcomer; never
    /// once it has logged in.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// The connection has logged in: it leaves the list and is never evicted.
    pub fn authenticated(&mut self) {
        self.leave();
        self.evict = Arc::new(Notify::new());
    }

    fn leave(&mut self) {
        if let Some(list) = self.list.take() {
            if let Ok(mut list) = list.lock() {
                list.waiting.retain(|(id, _)| *id != self.id);
            }
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.leave();
    }
}

/// What a protocol session does after a command or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Upgrade the stream to TLS, then continue.
    StartTls,
    Close,
}

/// Serves connections on `listener` until `shutdown`: each accepted one is passed to
/// `serve` (or, when full under [`WhenFull::Refuse`], to `refuse`) and runs as its own
/// task holding a slot, in a span naming the service and the peer; an error that ends
/// it is logged. Then it stops accepting, waits up to `limits.drain` for open
/// connections and aborts the rest. A connection task that panics is logged and its
/// slot freed; the listener carries on.
pub async fn serve<S, SF, R, RF>(listener: TcpListener, limits: Limits, shutdown: Shutdown, mut serve: S, refuse: R)
where
    S: FnMut(TcpStream, SocketAddr) -> SF,
    SF: Future<Output = std::io::Result<()>> + Send + 'static,
    R: FnMut(TcpStream, SocketAddr) -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    serve_guests(listener, limits, None, shutdown, move |tcp, peer, _| serve(tcp, peer), refuse).await;
}

/// How long a newcomer waits for the place of a guest told to go.
const EVICTION_WAIT: Duration = Duration::from_secs(5);

/// [`serve`] for a mail front-end whose connections log in: each is given its
/// [`Guest`] place (evicting the oldest guest when `guests` is full), and when the
/// listener is full a newcomer takes the place of the oldest guest rather than being
/// refused; only a listener full of logged-in clients refuses.
pub async fn serve_guests<S, SF, R, RF>(
    listener: TcpListener,
    limits: Limits,
    guests: Option<Guests>,
    shutdown: Shutdown,
    mut serve: S,
    mut refuse: R,
) where
    S: FnMut(TcpStream, SocketAddr, Guest) -> SF,
    SF: Future<Output = std::io::Result<()>> + Send + 'static,
    R: FnMut(TcpStream, SocketAddr) -> RF,
    RF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let reserved = match limits.when_full {
            WhenFull::Refuse => None,
            WhenFull::Wait => tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot.ok(),
                () = shutdown.requested() => break,
            },
        };
        tokio::select! {
            accepted = listener.accept() => {
                let Some((tcp, peer)) = accepted_or_pause(accepted).await else { continue };
                let _ = tcp.set_nodelay(true);
                let span = tracing::info_span!("connection", service = limits.name, %peer);
                let (guest, made_room) = guests.as_ref().map_or_else(|| (Guest::none(), false), Guests::admit);
                match reserved.or_else(|| Arc::clone(&slots).try_acquire_owned().ok()) {
                    Some(slot) => connections.spawn(holding(slot, serve(tcp, peer, guest)).instrument(span)),
                    None if made_room || guests.as_ref().is_some_and(|g| g.evict_oldest_but(&guest)) => {
                        // The evicted guest frees its slot as it closes.
                        let connection = serve(tcp, peer, guest);
                        let slots = Arc::clone(&slots);
                        connections.spawn(async move {
                            if let Ok(Ok(slot)) = tokio::time::timeout(EVICTION_WAIT, slots.acquire_owned()).await {
                                holding(slot, connection).await;
                            }
                        }.instrument(span))
                    }
                    None => connections.spawn(refuse(tcp, peer).instrument(span)),
                };
            }
            Some(joined) = connections.join_next(), if !connections.is_empty() => log_panic(limits.name, joined),
            () = shutdown.requested() => break,
        }
    }
    drop(listener);
    drain(limits, connections).await;
}

/// A connection's future, holding its slot until it ends; an error that ends it is
/// logged (at debug level: a client that goes away is no event).
async fn holding(slot: OwnedSemaphorePermit, connection: impl Future<Output = std::io::Result<()>>) {
    let _slot = slot;
    if let Err(err) = connection.await {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// An accepted connection, or `None` after a short pause when accepting failed (out of
/// file descriptors, say): the pause keeps a failing accept from spinning the CPU.
async fn accepted_or_pause(accepted: std::io::Result<(TcpStream, SocketAddr)>) -> Option<(TcpStream, SocketAddr)> {
    match accepted {
        Ok(pair) => Some(pair),
        Err(err) => {
            tracing::warn!(error = %err, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

fn log_panic(name: &str, joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        if err.is_panic() {
            tracing::error!(service = name, "a connection task panicked; its connection was dropped");
        }
    }
}

/// Waits up to `limits.drain` for open connections, then aborts what is left.
async fn drain(limits: Limits, mut connections: JoinSet<()>) {
    let drained = tokio::time::timeout(limits.drain, async {
        while let Some(joined) = connections.join_next().await {
            log_panic(limits.name, joined);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            service = limits.name,
            open = connections.len(),
            "connections did not end in time; aborting them"
        );
        connections.abort_all();
    }
}

/// A mail client's stream as its protocol session sees it: plain TCP, or TLS over it.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for T {}

/// Acknowledges what the client sent at once instead of after the kernel's delayed-ACK
/// timer. A client that writes a command in two pieces without TCP_NODELAY (Python's
/// imaplib sends an APPEND literal, then its CRLF) has Nagle's algorithm hold the second
/// piece until the first is acknowledged, so without this every such command waits
/// about 40 ms. Linux clears the setting as it goes, so it is set before each read;
/// elsewhere, or on a socket it cannot be set on, it does nothing.
pub struct AckNow(Option<socket2::Socket>);

impl AckNow {
    /// For `tcp` (a second handle on the same socket, closed with the connection).
    pub fn of(tcp: &TcpStream) -> AckNow {
        use std::os::fd::AsFd;
        AckNow(tcp.as_fd().try_clone_to_owned().ok().map(socket2::Socket::from))
    }

    /// Nothing to acknowledge early (a stream that is not TCP, in tests).
    pub fn none() -> AckNow {
        AckNow(None)
    }

    /// Asks for the next data to be acknowledged at once.
    pub fn arm(&self) {
        if let Some(socket) = &self.0 {
            let _ = socket.set_tcp_quickack(true);
        }
    }
}

/// What a protocol session knows of its connection as it starts.
pub struct Incoming {
    pub peer: SocketAddr,
    /// Early acknowledgements on its TCP socket.
    pub ack: AckNow,
    /// TLS is on from the first byte (implicit TLS).
    pub tls: bool,
    /// The acceptor for STARTTLS, when the plain port offers it.
    pub starttls: Option<tokio_rustls::TlsAcceptor>,
    pub shutdown: Shutdown,
    /// Its place among the connections that have not logged in.
    pub guest: Guest,
}

impl Incoming {
    /// A connection as accepted, before any TLS: `acceptor` is the listener's.
    pub fn new(peer: SocketAddr, acceptor: Option<tokio_rustls::TlsAcceptor>, shutdown: Shutdown) -> Incoming {
        Incoming { peer, ack: AckNow::none(), tls: false, starttls: acceptor, shutdown, guest: Guest::none() }
    }

    /// The connection with its place among those that have not logged in.
    pub fn with_guest(mut self, guest: Guest) -> Incoming {
        self.guest = guest;
        self
    }

    /// Readies the connection for its session under `mode`: an implicit-TLS port's
    /// handshake is done here (bounded by `timeout`), a plain port keeps the acceptor
    /// for STARTTLS. `None` when there is nothing to serve (the handshake failed,
    /// shutdown came first, its guest place was needed for a newcomer, or an
    /// implicit-TLS port has no TLS configuration): the connection is just closed.
    pub async fn open(
        mut self,
        tcp: TcpStream,
        mode: TlsMode,
        timeout: Duration,
    ) -> Option<(Box<dyn ClientStream>, Incoming)> {
        self.ack = AckNow::of(&tcp);
        if mode == TlsMode::StartTls {
            return Some((Box::new(tcp), self));
        }
        let acceptor = self.starttls.take()?;
        let stream = tokio::select! {
            stream = tls_handshake(&acceptor, tcp, timeout) => stream?,
            () = self.guest.evicted() => return None,
            () = self.shutdown.requested() => return None,
        };
        self.tls = true;
        Some((Box::new(stream), self))
    }
}

/// A TLS handshake that gives up after `timeout`; `None` (logged at debug level) when
/// it failed or timed out, since a client that cannot finish a handshake is only closed.
pub async fn tls_handshake<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Whether a front-end may take a password on this connection: always over TLS, and
/// without it only from this machine (IPv4-mapped loopback included, as a dual-stack
/// socket reports it) when `allow_on_loopback` says so. SMTP and IMAP ask this one
/// place, so the two never disagree on which connections may send a password in clear.
pub fn password_allowed(tls: bool, allow_on_loopback: bool, peer: IpAddr) -> bool {
    let loopback = match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    tls || (allow_on_loopback && loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_clear_is_taken_only_from_loopback_and_only_when_allowed() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        for peer in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(password_allowed(false, true, ip(peer)), "{peer} is this machine");
            assert!(!password_allowed(false, false, ip(peer)), "{peer}: the switch is off");
        }
        for peer in ["192.0.2.7", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.7", "fe80::1"] {
            assert!(!password_allowed(false, true, ip(peer)), "{peer} is not this machine");
            assert!(password_allowed(true, true, ip(peer)), "{peer} over TLS");
        }
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(max_connections: usize, when_full: WhenFull) -> Limits {
        Limits { name: "test", max_connections, when_full, drain: Duration::from_secs(1) }
    }

    #[tokio::test]
    async fn a_dropped_handle_counts_as_a_request_and_never_never_comes() {
        let (handle, shutdown) = Shutdown::new();
        assert!(!shutdown.is_requested());
        drop(handle);
        assert!(shutdown.is_requested());
        shutdown.requested().await;
        let never = Shutdown::never();
        assert!(!never.is_requested());
        assert!(tokio::time::timeout(Duration::from_millis(20), never.requested()).await.is_err());
    }

    /// Serves a one-line greeting on one slot; a second client is refused while the
    /// first holds it, and shutdown ends the loop with the open connection aborted.
    #[tokio::test]
    async fn connections_beyond_the_cap_are_refused_and_shutdown_ends_the_loop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (handle, shutdown) = Shutdown::new();
        let serving = tokio::spawn(serve(
            listener,
            limits(1, WhenFull::Refuse),
            shutdown,
            |mut tcp, _| async move {
                tcp.write_all(b"hello\n").await?;
                let mut rest = Vec::new();
                tcp.read_to_end(&mut rest).await.map(drop)
            },
            |mut tcp, _| async move {
                let _ = tcp.write_all(b"busy\n").await;
            },
        ));
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let mut line = [0u8; 6];
        first.read_exact(&mut line).await.expect("greeting");
        assert_eq!(&line, b"hello\n");
        let mut second = TcpStream::connect(addr).await.expect("connect");
        let mut refused = Vec::new();
        second.read_to_end(&mut refused).await.expect("refusal");
        assert_eq!(refused, b"busy\n");
        handle.stop();
        tokio::time::timeout(Duration::from_secs(5), serving).await.expect("stops").expect("no panic");
    }

    #[tokio::test]
    async fn the_oldest_guest_makes_room_and_a_logged_in_one_never_does() {
        let guests = Guests::new(2);
        let (mut first, _) = guests.admit();
        let (second, _) = guests.admit();
        first.authenticated();
        let (third, made_room) = guests.admit();
        assert!(!made_room);
        assert!(tokio::time::timeout(Duration::from_millis(20), second.evicted()).await.is_err(), "cap not reached");
        let (fourth, made_room) = guests.admit();
        assert!(made_room);
        tokio::time::timeout(Duration::from_secs(1), second.evicted()).await.expect("the oldest guest goes");
        assert!(tokio::time::timeout(Duration::from_millis(20), first.evicted()).await.is_err(), "logged in");
        assert!(tokio::time::timeout(Duration::from_millis(20), third.evicted()).await.is_err());
        assert!(guests.evict_oldest_but(&fourth));
        tokio::time::timeout(Duration::from_secs(1), third.evicted()).await.expect("made room for the total");
        assert!(!guests.evict_oldest_but(&fourth), "only the newcomer is left");
        drop(fourth);
        assert!(guests.list.lock().unwrap().waiting.is_empty());
    }

    /// A listener full of idle connections that never logged in still serves a
    /// newcomer: the oldest idle one is closed for it.
    #[tokio::test]
    async fn a_full_listener_closes_the_oldest_guest_for_a_newcomer() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (handle, shutdown) = Shutdown::new();
        let serving = tokio::spawn(serve_guests(
            listener,
            limits(2, WhenFull::Refuse),
            Some(Guests::new(2)),
            shutdown,
            |mut tcp, _, guest| async move {
                tcp.write_all(b"hello\n").await?;
                let mut byte = [0u8; 1];
                tokio::select! {
                    read = tcp.read(&mut byte) => read.map(drop),
                    () = guest.evicted() => tcp.write_all(b"bye\n").await,
                }
            },
            |mut tcp, _| async move {
                let _ = tcp.write_all(b"busy\n").await;
            },
        ));
        let mut idle = Vec::new();
        for _ in 0..2 {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let mut line = [0u8; 6];
            tcp.read_exact(&mut line).await.expect("greeting");
            idle.push(tcp);
        }
        let mut newcomer = TcpStream::connect(addr).await.expect("connect");
        let mut line = [0u8; 6];
        newcomer.read_exact(&mut line).await.expect("served, not refused");
        assert_eq!(&line, b"hello\n");
        let mut told = Vec::new();
        idle[0].read_to_end(&mut told).await.expect("closed");
        assert_eq!(told, b"bye\n");
        handle.stop();
        tokio::time::timeout(Duration::from_secs(5), serving).await.expect("stops").expect("no panic");
    }

    #[tokio::test]
    async fn a_panicking_connection_frees_its_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (handle, shutdown) = Shutdown::new();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&served);
        let serving = tokio::spawn(serve(
            listener,
            limits(1, WhenFull::Wait),
            shutdown,
            move |_, _| {
                let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async move {
                    assert!(n > 0, "the first connection's task panics on purpose");
                    Ok(())
                }
            },
            |_, _| async {},
        ));
        for _ in 0..2 {
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest).await;
        }
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 2);
        drop(handle);
        tokio::time::timeout(Duration::from_secs(5), serving).await.expect("stops").expect("no panic");
    }
}
