//! actix-web glue: the client certificate of the TLS connection, the [`Authenticated`] and
//! [`RequireScope`] extractors, and the `ResponseError` rendering of [`RsError`].
//!
//! Wiring (see `examples/resource_server.rs` for a complete server):
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use tessera_resource_server::actix::{Authenticated, capture_peer_certificate};
//! use tessera_resource_server::{RsError, Validator};
//!
//! async fn accounts(auth: Authenticated) -> Result<String, RsError> {
//!     auth.require("accounts:read")?;
//!     Ok(format!("hello {}", auth.client_id))
//! }
//!
//! # async fn run(validator: Validator, tls: rustls::ServerConfig) -> std::io::Result<()> {
//! let validator = web::Data::new(validator);
//! HttpServer::new(move || App::new().app_data(validator.clone()).route("/accounts", web::get().to(accounts)))
//!     .on_connect(capture_peer_certificate)
//!     .bind_rustls_0_23("127.0.0.1:8443", tls)?
//!     .run()
//!     .await
//! # }
//! ```

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::{Extensions, Payload};
use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, HeaderValue, WWW_AUTHENTICATE};
use actix_web::rt::net::TcpStream;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};

use crate::error::{RsError, error_parts};
use crate::request::{bearer_from_authorization, query_has_access_token};
use crate::validator::{AccessToken, Validator};

/// The DER of the leaf certificate the client authenticated the TLS connection with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate(Arc<[u8]>);

impl PeerCertificate {
    pub fn from_der(der: impl Into<Vec<u8>>) -> Self {
        PeerCertificate(der.into().into())
    }

    pub fn der(&self) -> &[u8] {
        &self.0
    }
}

/// For `HttpServer::on_connect`: keeps the client's leaf certificate with the connection, so
/// every request on it (HTTP/1.1 keep-alive, HTTP/2 streams) sees the certificate of its own
/// handshake. Connections that are not rustls 0.23 over TCP, or without a client certificate,
/// get nothing (and their bound tokens are refused).
pub fn capture_peer_certificate(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>()
        && let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|chain| chain.first())
    {
        ext.insert(PeerCertificate::from_der(leaf.as_ref()));
    }
}

/// The client certificate of a request: the connection's (from [`capture_peer_certificate`]),
/// else one that server-side code put in the request extensions (a middleware that trusts a
/// TLS-terminating proxy, or a test). Clients cannot write either place.
pub fn peer_certificate(req: &HttpRequest) -> Option<PeerCertificate> {
    req.conn_data::<PeerCertificate>().cloned().or_else(|| req.extensions().get::<PeerCertificate>().cloned())
}

/// Unix seconds from the system clock.
fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// A request that carried a valid, certificate-bound access token. Extract it in a handler;
/// failures become RFC 6750 responses (400 / 401) before the handler runs. Needs a
/// `web::Data<Validator>` in the app data.
#[derive(Clone, Debug)]
pub struct Authenticated(AccessToken);

impl Authenticated {
    pub fn token(&self) -> &AccessToken {
        &self.0
    }

    pub fn into_inner(self) -> AccessToken {
        self.0
    }

    /// `Ok` when the token grants every space-separated scope of `scope`, else the 403
    /// `insufficient_scope` error to return (`auth.require("accounts:read")?`).
    pub fn require(&self, scope: &str) -> Result<(), RsError> {
        self.0.require_scope(scope)
    }

    /// The checks shared by both extractors, with the request's data copied out so that the
    /// returned future does not borrow the request.
    fn extract(req: &HttpRequest) -> impl Future<Output = Result<Authenticated, RsError>> + 'static {
        let prepared = prepare(req);
        async move {
            let (validator, token, cert) = prepared?;
            let token = validator.validate(&token, cert.as_ref().map(PeerCertificate::der), now()).await?;
            Ok(Authenticated(token))
        }
    }
}

type Prepared = (web::Data<Validator>, String, Option<PeerCertificate>);

fn prepare(req: &HttpRequest) -> Result<Prepared, RsError> {
    // First, so that a forgotten registration fails loudly on every request, not only on those
    // that carry a token.
    let validator = req
        .app_data::<web::Data<Validator>>()
        .cloned()
        .ok_or(RsError::Misconfigured("no web::Data<Validator> registered"))?;
    // RFC 6750 §2.3 is refused outright, even next to a valid header (two methods, §3.1).
    if query_has_access_token(req.query_string()) {
        return Err(RsError::InvalidRequest("access tokens are not accepted in the query string".into()));
    }
    let values: Vec<&[u8]> = req.headers().get_all(AUTHORIZATION).map(HeaderValue::as_bytes).collect();
    let token = bearer_from_authorization(&values)?;
    Ok((validator, token, peer_certificate(req)))
}

impl Deref for Authenticated {
    type Target = AccessToken;

    fn deref(&self) -> &AccessToken {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = RsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, RsError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        Box::pin(Authenticated::extract(req))
    }
}

/// A scope a route needs, for [`RequireScope`].
pub trait ScopeRequirement {
    /// One scope or several separated by spaces (all required).
    const SCOPE: &'static str;
}

/// [`Authenticated`] plus a scope check, declared in the handler's signature:
///
/// ```
/// use tessera_resource_server::actix::{RequireScope, ScopeRequirement};
///
/// struct AccountsRead;
/// impl ScopeRequirement for AccountsRead {
///     const SCOPE: &'static str = "accounts:read";
/// }
///
/// async fn accounts(auth: RequireScope<AccountsRead>) -> String {
///     format!("hello {}", auth.client_id)
/// }
/// ```
pub struct RequireScope<S: ScopeRequirement> {
    auth: Authenticated,
    _scope: PhantomData<fn() -> S>,
}

impl<S: ScopeRequirement> RequireScope<S> {
    pub fn into_inner(self) -> Authenticated {
        self.auth
    }
}

impl<S: ScopeRequirement> Deref for RequireScope<S> {
    type Target = AccessToken;

    fn deref(&self) -> &AccessToken {
        &self.auth.0
    }
}

impl<S: ScopeRequirement> std::fmt::Debug for RequireScope<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireScope").field("scope", &S::SCOPE).field("token", &self.auth.0).finish()
    }
}

impl<S: ScopeRequirement + 'static> FromRequest for RequireScope<S> {
    type Error = RsError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, RsError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let auth = Authenticated::extract(req);
        Box::pin(async move {
            let auth = auth.await?;
            auth.require(S::SCOPE)?;
            Ok(RequireScope { auth, _scope: PhantomData })
        })
    }
}

impl ResponseError for RsError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            RsError::Unavailable { .. } | RsError::Misconfigured(_) => tracing::warn!(error = %self, "request refused"),
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let parts = error_parts(self);
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CACHE_CONTROL, "no-store"));
        if let Some(challenge) = parts.www_authenticate {
            response.insert_header((WWW_AUTHENTICATE, challenge));
        }
        response.json(parts.body)
    }
}
