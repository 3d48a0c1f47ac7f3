//! The reference SMIMP server (`smimp-gateway server`): the whole API of the spec
//! over HTTPS only (docs/protocol.md §8), on axum and rustls, with its own SQLite
//! store. Shares only the protocol core (`smimp`) and leaf utilities (`tls`,
//! `discovery`) with the gateway.
//!
//! `start(config, listener, shutdown)` serves until `shutdown`; the caller binds the
//! socket (port 0 in tests) and owns shutdown. Connections go through the shared
//! listener (`listen`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower::ServiceExt;

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod limits;
pub mod remote;
mod routes;
pub mod state;
pub mod store;

use crate::listen::{tls_handshake, Limits, Shutdown, WhenFull};
use crate::server::error::ApiError;
use crate::server::state::AppState;
use crate::smimp::wire::{ErrorCode, VERSION};

pub use routes::session::ClientIp;

/// The complete application: the well-known file, the API under the base path, JSON
/// errors for unknown endpoints and methods, body limit, timeout and request logs.
pub fn app(state: Arc<AppState>) -> Router {
    let limits = &state.config.limits;
    let base = state.config.server.base_path.trim_end_matches('/').to_string();
    let api = routes::router(&state);
    let app = Router::new().route("/.well-known/smimp.txt", get(well_known));
    let app = if base.is_empty() { app.merge(api) } else { app.nest(&base, api) };
    app.fallback(unknown_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::from_fn(log_request))
        .layer(axum::middleware::from_fn_with_state(limits.request_timeout, time_limit))
        .with_state(state)
}

/// Answers a request that runs past `limit` with a JSON `request_timeout` error, like
/// every other error the server gives.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the request took longer than the server's limit of {} s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

async fn well_known(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{}\n", state.config.server.public_base))
}

async fn unknown_endpoint(uri: Uri) -> ApiError {
    let version =
        uri.path().trim_start_matches('/').split('/').find(|s| s.chars().next().is_some_and(|c| c.is_ascii_digit()));
    match version {
        Some(v) if v != VERSION && v.contains('.') => ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {v} is not supported; this server speaks {VERSION}"),
        ),
        _ => ApiError::new(ErrorCode::NotFound, format!("there is no endpoint {}", uri.path())),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not allowed on {}", uri.path()))
}

/// One log line per request: method, endpoint template, status, latency. Never
/// bodies, addresses in paths, or the session header.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let endpoint =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "(unknown)".into());
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(%method, endpoint, status = response.status().as_u16(), latency_ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    response
}

/// A started server: its shared state (tests read its store and clock) and the task
/// serving it.
pub struct Running {
    pub state: Arc<AppState>,
    /// The CA clients must trust, when a development CA is in use.
    pub dev_ca_file: Option<std::path::PathBuf>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Waits until the server has stopped (after its shutdown was requested).
    pub async fn finished(self) -> std::io::Result<()> {
        self.task.await.unwrap_or_else(|err| Err(std::io::Error::other(err)))
    }
}

/// Opens the store, then serves the API on `listener` and purges expired rows, both
/// until `shutdown`. The caller binds the socket (port 0 in tests) and owns shutdown.
pub async fn start(
    config: config::ServerConfig,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<Running, admin::AdminError> {
    let prepared = admin::prepare(config).await?;
    let state = prepared.state;
    let max_connections = state.config.limits.max_connections;
    let purge = tokio::spawn(purge_loop(Arc::clone(&state), shutdown.clone()));
    let served = run(listener, prepared.tls, app(Arc::clone(&state)), max_connections, shutdown);
    let task = tokio::spawn(async move {
        let result = served.await;
        let _ = purge.await;
        result
    });
    Ok(Running { state, dev_ca_file: prepared.dev_ca_file, task })
}

/// Serves HTTPS on `listener` until `shutdown`, then lets open requests finish (up to
/// 10 seconds). Plain HTTP is never served: a connection that does not complete a TLS
/// handshake is closed. At most `max_connections` are served at once; further clients
/// wait in the listen backlog, so a flood of idle connections cannot exhaust the
/// server's memory or file descriptors.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    max_connections: usize,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let limits = Limits { name: "SMIMP server", max_connections, when_full: WhenFull::Wait, drain: GRACE };
    let serve = |tcp, peer| serve_connection(acceptor.clone(), app.clone(), tcp, peer, shutdown.clone());
    crate::listen::serve(listener, limits, shutdown.clone(), serve, |_, _| async {}).await;
    Ok(())
}

/// How long open requests may take to finish after shutdown, and a TLS handshake at most.
const GRACE: Duration = Duration::from_secs(10);

/// One HTTPS connection: the TLS handshake, then HTTP/1.1 until the client is done or
/// shutdown asks the connection to finish its request in flight and close.
async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let Some(stream) = tls_handshake(&acceptor, tcp, GRACE).await else { return Ok(()) };
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ClientIp(peer.ip()));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = shutdown.requested() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    result.map_err(std::io::Error::other)
}

/// Deletes expired sessions, tokens and nonces, and forgets idle rate-limit keys,
/// every minute until `shutdown`.
pub async fn purge_loop(state: Arc<AppState>, shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(err) = state.store.purge_expired(state.clock.now()).await {
                    tracing::warn!(error = %err, "purging expired sessions failed");
                }
                state.limits.create_session.retain_recent();
                state.remote_keys.retain_fresh(state.clock.now());
            }
            () = shutdown.requested() => return,
        }
    }
}
