//! The protocol error enums, one per surface. Each variant's text is a description safe to show
//! the client; infrastructure detail travels separately (`internal`) and is only logged. The
//! wire mapping (status, headers, body) lives in one place: `tessera-http`.

/// Errors of dynamic client registration (RFC 7591 §3.2.2, RFC 7592 §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// A redirect URI is invalid (RFC 7591 `invalid_redirect_uri`).
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    /// Any other metadata value is invalid (RFC 7591 `invalid_client_metadata`).
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// The software statement is invalid: signature, claims, expiry, replay (RFC 7591).
    #[error("invalid_software_statement: {0}")]
    InvalidSoftwareStatement(String),
    /// The software statement is valid but not approved here: untrusted issuer, revoked
    /// organisation (RFC 7591 `unapproved_software_statement`).
    #[error("unapproved_software_statement: {0}")]
    UnapprovedSoftwareStatement(String),
    /// The request is not a JSON object (or JWS, in the UK profile) at all.
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// The caller's transport certificate is missing or not trusted.
    #[error("invalid_client: {0}")]
    TransportCertificate(String),
    /// RFC 7592: the registration access token (or client) is unknown, wrong or revoked; 401.
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    #[error("request body too large (at most {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("unsupported content type: {0}")]
    UnsupportedMediaType(String),
    #[error("temporarily unavailable")]
    Unavailable { internal: String },
    #[error("server error")]
    Internal { internal: String },
}

/// Errors of the token endpoint (RFC 6749 §5.2, RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// Client authentication failed (401). `authorization_header` is true when the client tried
    /// the `Authorization` header, which asks for `WWW-Authenticate` in the response.
    #[error("invalid_client: {description}")]
    InvalidClient { description: String, authorization_header: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    /// RFC 8707: the `resource` is not allowed for this client.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// RFC 7009 §2.2.1.
    #[error("unsupported_token_type: {0}")]
    UnsupportedTokenType(String),
    #[error("request body too large (at most {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("temporarily unavailable")]
    Unavailable { internal: String },
    #[error("server error")]
    Internal { internal: String },
}

/// Errors of token introspection (RFC 7662 §2.3). An inactive token is not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectionError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// The caller did not authenticate (401).
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    /// The caller authenticated but is not entitled to introspect (403).
    #[error("forbidden: {0}")]
    NotEntitled(String),
    #[error("request body too large (at most {0} bytes)")]
    PayloadTooLarge(usize),
    #[error("temporarily unavailable")]
    Unavailable { internal: String },
    #[error("server error")]
    Internal { internal: String },
}

impl From<TokenError> for IntrospectionError {
    /// Caller authentication reuses the token endpoint's; its failures keep their meaning.
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::InvalidClient { description, .. } => IntrospectionError::InvalidClient(description),
            TokenError::InvalidRequest(d) => IntrospectionError::InvalidRequest(d),
            TokenError::PayloadTooLarge(n) => IntrospectionError::PayloadTooLarge(n),
            TokenError::Unavailable { internal } => IntrospectionError::Unavailable { internal },
            TokenError::Internal { internal } => IntrospectionError::Internal { internal },
            other => IntrospectionError::InvalidRequest(other.to_string()),
        }
    }
}
