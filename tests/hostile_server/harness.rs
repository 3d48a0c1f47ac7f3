//! A programmable lying SMIMP server: a TLS proxy in front of a real reference server,
//! under that server's domain and certificate, that forwards every request unchanged
//! unless a test has told it to lie on that route. A lie is an async function of the
//! request that may forward it, rewrite the answer, invent one, or stall; every request
//! the proxy saw is logged, so a test can also assert what the victim never asked.
//!
//! The proxy answers discovery (`/.well-known/smimp.txt`) with its own address unless a
//! test lies there itself, so a party that looked the domain up keeps talking to the
//! proxy rather than the real server's port that the real record names.
//!
//! Parties reach the proxy instead of the real server through configuration only: a
//! gateway by [`common::write_gateway_config`] with the [`Hostile`] as an endpoint, the
//! other reference server by [`fronted_pair`], which plans the proxy's address before the
//! servers start.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use smimp_gateway::listen::{Shutdown, StopHandle};
use smimp_gateway::smimp::wire::Route;

use crate::common::{self, Endpoint, Options, TestServer};

/// One request as the proxy received it, with the means to pass it on.
#[derive(Clone)]
pub struct Call {
    pub method: Method,
    /// The path without its leading `/`, as [`Route::path`] spells it, plus the query.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    upstream: Upstream,
}

impl Call {
    /// The request body as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// Sends the request, unchanged, to the real server and returns its answer.
    pub async fn forward(&self) -> Answer {
        self.upstream.send(&self.method, &self.path, &self.headers, self.body.clone()).await
    }

    /// Sends this request with another body to the real server.
    pub async fn forward_with(&self, body: &Value) -> Answer {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap());
        self.upstream.send(&self.method, &self.path, &self.headers, bytes).await
    }
}

/// What the proxy answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Answer {
        Answer { status, body: Bytes::from(serde_json::to_vec(body).unwrap()) }
    }

    /// An SMIMP error answer with `code` and a message.
    pub fn error(status: u16, code: &str) -> Answer {
        Answer::json(status, &serde_json::json!({ "error": { "code": code, "message": format!("lie: {code}") } }))
    }

    /// The body as JSON (Null when it is not JSON).
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A lie: given the request, the answer to give instead of the truth.
pub type Lie = Arc<dyn Fn(Call) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

/// A request the proxy saw, and what it answered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub lied: bool,
}

struct Rule {
    method: Method,
    path_prefix: String,
    lie: Lie,
}

struct Script {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
    /// The discovery record naming the proxy.
    record: String,
}

/// Where discovery is answered.
const DISCOVERY_PATH: &str = ".well-known/smimp.txt";

/// The real server behind the proxy.
#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
}

impl Upstream {
    async fn send(&self, method: &Method, path: &str, headers: &HeaderMap, body: Bytes) -> Answer {
        let mut request = self.http.request(method.clone(), format!("{}/{path}", self.base)).body(body);
        for (name, value) in headers {
            if name != "host" && name != "content-length" {
                request = request.header(name, value);
            }
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                Answer { status, body: response.bytes().await.unwrap_or_default() }
            }
            Err(err) => Answer::error(502, &format!("upstream: {err}")),
        }
    }
}

/// A running lying proxy; stopping it (or dropping it) closes its port.
pub struct Hostile {
    pub domain: String,
    pub addr: SocketAddr,
    pub ca_file: PathBuf,
    script: Arc<Mutex<Script>>,
    _stop: StopHandle,
}

impl Endpoint for Hostile {
    fn domain(&self) -> &str {
        &self.domain
    }
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn ca_file(&self) -> &Path {
        &self.ca_file
    }
}

impl Hostile {
    /// Starts a proxy for `upstream` on a new loopback port.
    pub async fn start(upstream: &TestServer) -> Hostile {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Hostile::start_on(listener, upstream).await
    }

    /// Starts a proxy for `upstream` on `listener`, presenting the upstream's certificate.
    pub async fn start_on(listener: tokio::net::TcpListener, upstream: &TestServer) -> Hostile {
        let addr = listener.local_addr().unwrap();
        let domain = upstream.domain.clone();
        let names = vec![upstream.domain.clone(), "localhost".into(), "127.0.0.1".into()];
        let tls_dir = upstream.ca_file.parent().unwrap();
        let dev = smimp_gateway::tls::ensure_dev_certificates(tls_dir, &names).unwrap();
        let tls = smimp_gateway::tls::server_config(&dev.cert_file, &dev.key_file).unwrap();
        let client = common::Client::new(&[upstream]);
        let upstream = Upstream { base: upstream.base.clone(), http: client.http };
        let record = format!("{domain}:{}\n", addr.port());
        let script = Arc::new(Mutex::new(Script { rules: Vec::new(), seen: Vec::new(), record }));
        let app = {
            let script = Arc::clone(&script);
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let call = Call {
                    method,
                    path: uri.path_and_query().map_or("", |p| p.as_str()).trim_start_matches('/').to_string(),
                    headers,
                    body,
                    upstream: upstream.clone(),
                };
                answer(Arc::clone(&script), call)
            })
        };
        let (stop, shutdown) = Shutdown::new();
        tokio::spawn(smimp_gateway::server::run(listener, tls, app, 256, shutdown));
        Hostile { domain, addr, ca_file: dev.ca_file, script, _stop: stop }
    }

    /// From now on, requests with `method` whose path starts with `path_prefix` (as
    /// [`Route::path`] spells it: no leading `/`) are answered by `lie`. Later rules win.
    pub fn lie<F, Fut>(&self, method: Method, path_prefix: impl Into<String>, lie: F)
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let lie: Lie = Arc::new(move |call| Box::pin(lie(call)));
        self.script.lock().unwrap().rules.push(Rule { method, path_prefix: path_prefix.into(), lie });
    }

    /// Lies on exactly the operation `route` (its method and path).
    pub fn lie_on<F, Fut>(&self, route: &Route, lie: F)
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let method = Method::from_bytes(route.method().as_str().as_bytes()).unwrap();
        self.lie(method, route.path(), lie);
    }

    /// Stops every lie: the proxy forwards everything from now on.
    pub fn tell_the_truth(&self) {
        self.script.lock().unwrap().rules.clear();
    }

    /// Every request seen so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// How many requests with `method` and a path starting with `path_prefix` were seen.
    pub fn count(&self, method: &Method, path_prefix: &str) -> usize {
        self.seen().iter().filter(|s| s.method == *method && s.path.starts_with(path_prefix)).count()
    }
}

async fn answer(script: Arc<Mutex<Script>>, call: Call) -> Response {
    let (lie, record) = {
        let script = script.lock().unwrap();
        let rule = script.rules.iter().rev().find(|r| r.method == call.method && call.path.starts_with(&r.path_prefix));
        (rule.map(|r| Arc::clone(&r.lie)), script.record.clone())
    };
    let (method, path) = (call.method.clone(), call.path.clone());
    let lied = lie.is_some();
    let answer = match lie {
        Some(lie) => lie(call).await,
        None if call.method == Method::GET && call.path == DISCOVERY_PATH => {
            Answer { status: 200, body: Bytes::from(record) }
        }
        None => call.forward().await,
    };
    script.lock().unwrap().seen.push(Seen { method, path, status: answer.status, lied });
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [("content-type", "application/json")], answer.body).into_response()
}

/// The two test servers, `example.org` and `example.net`, with a lying proxy in front
/// of the one for `fronted`: the other server resolves `fronted` to the proxy, so its
/// remote look-ups (a sender's history at login) meet the lies too. Gateways reach the
/// proxy when it is passed to [`common::write_gateway_config`] in place of the server.
pub async fn fronted_pair(fronted: &str, options: Options) -> (TestServer, TestServer, Hostile) {
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (org, net) = common::start_pair_resolving(options, fronted, proxy.local_addr().unwrap()).await;
    let hostile = Hostile::start_on(proxy, if fronted == org.domain { &org } else { &net }).await;
    (org, net, hostile)
}
