//! One SMIMP server as a client sees it (spec "Server Version Request", "Server
//! Information Request"): found by discovery, version negotiated, its API list cached,
//! and every call made through one function that reads JSON answers and JSON errors.
//! Idempotent calls are retried with backoff; others are sent once.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::error::ClientError;
use crate::discovery::{describe, read_capped, Discovery, DiscoveryError};
use crate::smimp::address::Domain;
use crate::smimp::encoding::Id32;
use crate::smimp::wire::{Api, ErrorBody, Method, Route, ServerInformation, VersionList, AUTH_HEADER, VERSION};

/// The largest answer read from a server: a stored envelope with large attachments.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

/// How many times an idempotent call is tried before its error is returned.
const ATTEMPTS: u32 = 3;

/// A discovered, version-checked server.
#[derive(Debug, Clone)]
pub struct ServerClient {
    http: reqwest::Client,
    domain: Domain,
    base: String,
    information: ServerInformation,
}

impl ServerClient {
    /// Finds `domain`'s server, checks it speaks this profile's version, and reads
    /// which APIs it implements.
    pub async fn connect(discovery: &Discovery, domain: &str) -> Result<Self, ClientError> {
        let domain = Domain::parse(domain)
            .map_err(|e| DiscoveryError::BadDomain { domain: domain.to_string(), reason: e.to_string() })?;
        let base = discovery.base_url(domain.as_str()).await?;
        let http = discovery.client().clone();
        let mut server = Self { http, domain, base, information: ServerInformation::new([]) };
        let versions: VersionList = server.call(&Route::Version, None, None::<&()>).await?;
        if !versions.versions.iter().any(|v| v == VERSION) {
            return Err(ClientError::NoCommonVersion {
                url: server.url(&Route::Version),
                offered: versions.versions,
                ours: VERSION,
            });
        }
        server.information = server.call(&Route::ServerInformation, None, None::<&()>).await?;
        Ok(server)
    }

    /// The domain this server was discovered by: the one a login here is signed for.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether the server lists `api`.
    pub fn implements(&self, api: Api) -> bool {
        self.information.implements(api)
    }

    /// Refuses early when the server lacks `api`.
    pub fn require(&self, api: Api) -> Result<(), ClientError> {
        if self.implements(api) {
            Ok(())
        } else {
            Err(ClientError::Unsupported { url: self.base.clone(), api: api.as_str() })
        }
    }

    /// The full URL of a route.
    pub fn url(&self, route: &Route) -> String {
        format!("{}/{}", self.base, route.path())
    }

    /// Calls a route and reads the JSON answer. `session` goes in the
    /// `SMIMP-Authentication` header. GETs are retried on transient failures.
    pub async fn call<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        route: &Route,
        session: Option<&Id32>,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let url = self.url(route);
        let idempotent = route.method() == Method::Get;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send(route, &url, session, body).await {
                Err(err) if idempotent && attempt < ATTEMPTS && err.is_transient() => {
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
                }
                other => return other,
            }
        }
    }

    async fn send<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        route: &Route,
        url: &str,
        session: Option<&Id32>,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let method = match route.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, url);
        if let Some(session) = session {
            request = request.header(AUTH_HEADER, session.to_hex());
        }
        if let Some(body) = body {
            request = request.json(body);
        } else if route.method() == Method::Post {
            request = request.header(reqwest::header::CONTENT_LENGTH, 0);
        }
        let response = request.send().await.map_err(|e| ClientError::Discovery(describe(url, &e)))?;
        let status = response.status().as_u16();
        let bytes = read_capped(response, MAX_ANSWER_BYTES).await.map_err(|e| ClientError::Discovery(e.at(url)))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::BadAnswer { url: url.to_string(), reason: e.to_string() });
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Refused {
                url: url.to_string(),
                status,
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(ClientError::Status { url: url.to_string(), status }),
        }
    }
}
