//! Rendering protocol errors. Every surface's error enum implements [`OAuthError`]; this module
//! is the single place where they become status, headers and body.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, HeaderName, HeaderValue, PRAGMA, WWW_AUTHENTICATE};
use serde::Serialize;

/// The HTTP status classes protocol errors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl Status {
    pub fn code(self) -> StatusCode {
        match self {
            Status::BadRequest => StatusCode::BAD_REQUEST,
            Status::Unauthorized => StatusCode::UNAUTHORIZED,
            Status::Forbidden => StatusCode::FORBIDDEN,
            Status::NotFound => StatusCode::NOT_FOUND,
            Status::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Status::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Status::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Status::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Status::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Status::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A protocol error as the wire sees it. `description` must be safe to show the client; internal
/// causes are logged by the surface, never rendered.
pub trait OAuthError: std::fmt::Debug {
    /// The registered error code (RFC 6749 §5.2, RFC 7591 §3.2.2, …).
    fn code(&self) -> &'static str;
    fn description(&self) -> String;
    fn status(&self) -> Status;
    /// `WWW-Authenticate` value, when the RFC asks for one (e.g. `invalid_client` after the
    /// `Authorization` header was used, RFC 6750 errors).
    fn www_authenticate(&self) -> Option<String> {
        None
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1): every response that may carry
/// a credential, and every error of those endpoints.
pub const NO_STORE_HEADERS: [(HeaderName, &str); 2] = [(CACHE_CONTROL, "no-store"), (PRAGMA, "no-cache")];

pub fn no_store(mut resp: HttpResponse) -> HttpResponse {
    for (name, value) in NO_STORE_HEADERS {
        resp.headers_mut().insert(name, HeaderValue::from_static(value));
    }
    resp
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error_description: &'a str,
}

/// RFC 6749 §5.2 restricts `error_description` to printable ASCII without `"` and `\`.
fn sanitize(description: &str) -> String {
    description.chars().map(|c| if (' '..='~').contains(&c) && c != '"' && c != '\\' { c } else { '\'' }).collect()
}

pub fn render(err: &dyn OAuthError) -> HttpResponse {
    let description = sanitize(&err.description());
    let mut builder = HttpResponse::build(err.status().code());
    if let Some(challenge) = err.www_authenticate() {
        builder.insert_header((WWW_AUTHENTICATE, challenge));
    }
    no_store(builder.json(Body { error: err.code(), error_description: &description }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[derive(Debug)]
    struct E(Status, Option<String>);
    impl OAuthError for E {
        fn code(&self) -> &'static str {
            "invalid_client"
        }
        fn description(&self) -> String {
            "bad \"quoted\"\nline\\ é".into()
        }
        fn status(&self) -> Status {
            self.0
        }
        fn www_authenticate(&self) -> Option<String> {
            self.1.clone()
        }
    }

    #[actix_web::test]
    async fn renders_status_headers_and_sanitized_body() {
        // spec-checklist J.100: error_description charset; J.99: no-store on errors.
        let resp = render(&E(Status::Unauthorized, Some("Basic realm=\"tessera\"".into())));
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers().get(CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(resp.headers().get(PRAGMA).unwrap(), "no-cache");
        assert_eq!(resp.headers().get(WWW_AUTHENTICATE).unwrap(), "Basic realm=\"tessera\"");
        let body = to_bytes(resp.into_body()).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "invalid_client");
        assert_eq!(v["error_description"], "bad 'quoted''line' '");
    }

    #[test]
    fn every_status_maps() {
        let table = [
            (Status::BadRequest, 400),
            (Status::Unauthorized, 401),
            (Status::Forbidden, 403),
            (Status::NotFound, 404),
            (Status::MethodNotAllowed, 405),
            (Status::PayloadTooLarge, 413),
            (Status::UnsupportedMediaType, 415),
            (Status::TooManyRequests, 429),
            (Status::Internal, 500),
            (Status::Unavailable, 503),
        ];
        for (s, code) in table {
            assert_eq!(s.code().as_u16(), code);
        }
    }
}
