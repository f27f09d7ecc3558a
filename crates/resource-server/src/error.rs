//! What a resource server answers when a request is not authorized: RFC 6750 §3 in one table.
//!
//! | error | status | `WWW-Authenticate` |
//! |---|---|---|
//! | [`RsError::MissingToken`] | 401 | `Bearer` (no error code, RFC 6750 §3.1) |
//! | [`RsError::InvalidRequest`] | 400 | `Bearer error="invalid_request", error_description="..."` |
//! | [`RsError::InvalidToken`] | 401 | `Bearer error="invalid_token", error_description="..."` |
//! | [`RsError::InsufficientScope`] | 403 | `Bearer error="insufficient_scope", error_description="...", scope="..."` |
//! | [`RsError::Unavailable`] | 503 | none (the keys could not be fetched: not the client's fault) |
//! | [`RsError::Misconfigured`] | 500 | none |
//!
//! [`error_parts`] is the only place that turns an error into status, header and body; the
//! actix `ResponseError` impl (feature `actix`) renders its result.

use serde_json::{Map, Value, json};

/// Why a request was refused. Wire strings come from [`RsError::code`], never from `Debug`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RsError {
    /// RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the client was
    /// unaware that authentication is necessary ...), the resource server SHOULD NOT include an
    /// error code or other error information." No `Authorization: Bearer` header at all.
    #[error("no access token in the request")]
    MissingToken,
    /// RFC 6750 §3.1 `invalid_request` (400): "The request is missing a required parameter,
    /// includes an unsupported parameter or parameter value, repeats the same parameter, uses
    /// more than one method for including an access token, or is otherwise malformed."
    /// For example a token in the query string (§2.3 is not supported) or two `Authorization`
    /// headers.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// RFC 6750 §3.1 `invalid_token` (401): "The access token provided is expired, revoked,
    /// malformed, or invalid for other reasons." Also RFC 9068 §4 (every validation failure)
    /// and RFC 8705 §3 (certificate binding mismatch).
    #[error("invalid token: {0}")]
    InvalidToken(#[from] InvalidToken),
    /// RFC 6750 §3.1 `insufficient_scope` (403): "The request requires higher privileges than
    /// provided by the access token." `required` is the space-separated scope the resource needs.
    #[error("the token lacks the scope {required:?}")]
    InsufficientScope { required: String },
    /// The issuer's keys could not be obtained (no cached copy and the fetch failed). Not the
    /// client's fault, so not `invalid_token`: a client would otherwise throw away a good token.
    /// `internal` is for logs only and is never sent.
    #[error("signing keys unavailable: {internal}")]
    Unavailable { internal: String },
    /// The application forgot to register the validator (`web::Data<Validator>`).
    #[error("resource server misconfigured: {0}")]
    Misconfigured(&'static str),
}

/// Why a token was not accepted. All of these are `invalid_token` on the wire; the variant lets
/// tests and logs tell them apart. Descriptions never echo more than a short, sanitised part of
/// what the client sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not three base64url parts, header or payload not a JSON object, forbidden header member.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg` outside the allow-list (RFC 8725 §3.1; FAPI 2.0 §5.4: PS256, ES256, EdDSA).
    #[error("the token algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// `typ` is not `at+jwt` (RFC 9068 §2.1, §4).
    #[error("the token type {0:?} is not at+jwt")]
    Type(Option<String>),
    /// No key of the issuer's key set has this `kid` (after one refresh).
    #[error("no signing key matches the token's kid {0:?}")]
    UnknownKey(Option<String>),
    /// The signature does not verify.
    #[error("the token signature is invalid")]
    Signature,
    /// `iss` is not exactly the configured issuer.
    #[error("the token was not issued by the expected issuer")]
    Issuer,
    /// `aud` does not contain this resource server.
    #[error("the token is not intended for this resource server")]
    Audience,
    /// `exp` has passed (beyond the allowed clock skew).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the allowed clock skew).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (beyond the allowed clock skew).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// A required claim (RFC 9068 §2.2) is absent or has the wrong type.
    #[error("the token has no valid {0} claim")]
    MissingClaim(&'static str),
    /// No `cnf.x5t#S256`: the token is not certificate-bound, and this resource server accepts
    /// only certificate-bound tokens (FAPI 2.0 §5.3.4, RFC 8705 §3).
    #[error("the token is not bound to a certificate")]
    Unbound,
    /// The token is certificate-bound but the request came without a client certificate.
    #[error("the token is certificate-bound but no client certificate was presented")]
    NoCertificate,
    /// The presented client certificate is not the one the token is bound to (RFC 8705 §3).
    #[error("the token is bound to a different client certificate")]
    CertificateMismatch,
}

impl InvalidToken {
    /// Text for `error_description`: fixed per variant, plus at most a short sanitised echo.
    fn description(&self) -> String {
        match self {
            InvalidToken::Algorithm(alg) => format!("the token algorithm {} is not accepted", short(alg)),
            InvalidToken::Type(Some(t)) => format!("the token type {} is not at+jwt", short(t)),
            InvalidToken::Type(None) => "the token has no typ header; at+jwt is required".to_owned(),
            InvalidToken::UnknownKey(_) => "no signing key of the issuer matches the token's kid".to_owned(),
            other => other.to_string(),
        }
    }
}

impl RsError {
    /// The RFC 6750 §3.1 error code, or `None` for a request without any token.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            RsError::MissingToken => None,
            RsError::InvalidRequest(_) => Some("invalid_request"),
            RsError::InvalidToken(_) => Some("invalid_token"),
            RsError::InsufficientScope { .. } => Some("insufficient_scope"),
            RsError::Unavailable { .. } => Some("temporarily_unavailable"),
            RsError::Misconfigured(_) => Some("server_error"),
        }
    }

    /// The HTTP status (RFC 6750 §3.1).
    pub fn status(&self) -> u16 {
        match self {
            RsError::MissingToken | RsError::InvalidToken(_) => 401,
            RsError::InvalidRequest(_) => 400,
            RsError::InsufficientScope { .. } => 403,
            RsError::Unavailable { .. } => 503,
            RsError::Misconfigured(_) => 500,
        }
    }

    /// What may be shown to the client (no internal detail).
    pub fn description(&self) -> String {
        match self {
            RsError::MissingToken => "an access token is required: Authorization: Bearer <token>".to_owned(),
            RsError::InvalidRequest(d) => d.clone(),
            RsError::InvalidToken(reason) => reason.description(),
            RsError::InsufficientScope { required } => format!("the access token lacks the scope {required}"),
            RsError::Unavailable { .. } => "the issuer's signing keys are unavailable; try again later".to_owned(),
            RsError::Misconfigured(_) => "the resource server is misconfigured".to_owned(),
        }
    }
}

/// An error rendered for the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorParts {
    pub status: u16,
    /// The `WWW-Authenticate` value, when the status calls for one.
    pub www_authenticate: Option<String>,
    /// JSON body: `error` (absent for [`RsError::MissingToken`], like the header), then
    /// `error_description`, and `scope` for `insufficient_scope`.
    pub body: Value,
}

/// The one mapping from [`RsError`] to status, `WWW-Authenticate` and JSON body (RFC 6750 §3).
pub fn error_parts(err: &RsError) -> ErrorParts {
    let description = sanitize(&err.description());
    let mut body = Map::new();
    if let Some(code) = err.code() {
        body.insert("error".into(), json!(code));
    }
    body.insert("error_description".into(), json!(description));
    let www_authenticate = match err {
        RsError::MissingToken => Some("Bearer".to_owned()),
        RsError::InvalidRequest(_) | RsError::InvalidToken(_) => {
            Some(format!(r#"Bearer error="{}", error_description="{description}""#, err.code().unwrap_or_default()))
        }
        RsError::InsufficientScope { required } => {
            let scope = sanitize_scope(required);
            body.insert("scope".into(), json!(scope));
            Some(format!(r#"Bearer error="insufficient_scope", error_description="{description}", scope="{scope}""#))
        }
        RsError::Unavailable { .. } | RsError::Misconfigured(_) => None,
    };
    ErrorParts { status: err.status(), www_authenticate, body: Value::Object(body) }
}

/// RFC 6750 §3: `error_description` uses `%x20-21 / %x23-5B / %x5D-7E` only (no `"`, no `\`,
/// no control characters, ASCII only). Anything else becomes `?`; `"` becomes `'`.
pub(crate) fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            ' '..='~' if c != '\\' => c,
            _ => '?',
        })
        .collect()
}

/// RFC 6750 §3 `scope`: scope tokens of `%x21 / %x23-5B / %x5D-7E`, separated by single spaces.
fn sanitize_scope(s: &str) -> String {
    s.split(' ')
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().filter(|c| matches!(c, '!'..='~') && *c != '"' && *c != '\\').collect::<String>())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most 32 characters of a client-supplied value, for a description.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(32).collect();
    if s.chars().count() > 32 {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(err: RsError) -> Option<String> {
        error_parts(&err).www_authenticate
    }

    #[test]
    fn table() {
        // (error, status, code in body, header prefix)
        let rows: Vec<(RsError, u16, Option<&str>, Option<&str>)> = vec![
            (RsError::MissingToken, 401, None, Some("Bearer")),
            (
                RsError::InvalidRequest("x".into()),
                400,
                Some("invalid_request"),
                Some(r#"Bearer error="invalid_request""#),
            ),
            (
                RsError::InvalidToken(InvalidToken::Expired),
                401,
                Some("invalid_token"),
                Some(r#"Bearer error="invalid_token""#),
            ),
            (
                RsError::InsufficientScope { required: "a b".into() },
                403,
                Some("insufficient_scope"),
                Some(r#"Bearer error="insufficient_scope""#),
            ),
            (RsError::Unavailable { internal: "secret detail".into() }, 503, Some("temporarily_unavailable"), None),
            (RsError::Misconfigured("x"), 500, Some("server_error"), None),
        ];
        for (err, status, code, header) in rows {
            let parts = error_parts(&err);
            assert_eq!(parts.status, status, "{err:?}");
            assert_eq!(parts.body.get("error").and_then(Value::as_str), code, "{err:?}");
            match header {
                Some(prefix) => assert!(parts.www_authenticate.as_deref().unwrap().starts_with(prefix), "{err:?}"),
                None => assert!(parts.www_authenticate.is_none(), "{err:?}"),
            }
            assert!(!parts.body.to_string().contains("secret detail"));
        }
    }

    #[test]
    fn missing_token_has_no_error_code() {
        assert_eq!(header_of(RsError::MissingToken).as_deref(), Some("Bearer"));
        assert!(error_parts(&RsError::MissingToken).body.get("error").is_none());
    }

    #[test]
    fn exact_header_formats() {
        assert_eq!(
            header_of(RsError::InvalidToken(InvalidToken::Expired)).unwrap(),
            r#"Bearer error="invalid_token", error_description="the token has expired""#
        );
        assert_eq!(
            header_of(RsError::InsufficientScope { required: "accounts:read".into() }).unwrap(),
            r#"Bearer error="insufficient_scope", error_description="the access token lacks the scope accounts:read", scope="accounts:read""#
        );
        assert_eq!(
            error_parts(&RsError::InsufficientScope { required: "accounts:read".into() }).body["scope"],
            "accounts:read"
        );
    }

    #[test]
    fn descriptions_are_rfc6750_safe() {
        let err = RsError::InvalidToken(InvalidToken::Algorithm("\"\\\r\n\té".into()));
        let parts = error_parts(&err);
        let header = parts.www_authenticate.unwrap();
        let inner = header.strip_prefix(r#"Bearer error="invalid_token", error_description=""#).unwrap();
        let inner = inner.strip_suffix('"').unwrap();
        assert!(inner.chars().all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'), "{inner}");
        assert_eq!(sanitize("a\"b\\c\u{7f}d"), "a'b?c?d");
    }

    #[test]
    fn long_echoes_are_cut() {
        let long = "A".repeat(500);
        let d = RsError::InvalidToken(InvalidToken::Type(Some(long))).description();
        assert!(d.len() < 100, "{d}");
    }

    #[test]
    fn scope_is_sanitised() {
        assert_eq!(sanitize_scope(" a  b\"c \\ "), "a bc");
    }
}
