//! The one table from each surface's error enum to the wire: code, status, description,
//! challenge. Internal causes are logged here and never rendered.

use tessera_core::error::{IntrospectionError, RegistrationError, TokenError};

use crate::{OAuthError, Status};

impl OAuthError for RegistrationError {
    fn code(&self) -> &'static str {
        use RegistrationError::*;
        match self {
            InvalidRedirectUri(_) => "invalid_redirect_uri",
            InvalidClientMetadata(_) => "invalid_client_metadata",
            InvalidSoftwareStatement(_) => "invalid_software_statement",
            UnapprovedSoftwareStatement(_) => "unapproved_software_statement",
            InvalidRequest(_) | PayloadTooLarge(_) | UnsupportedMediaType(_) => "invalid_request",
            TransportCertificate(_) => "invalid_client",
            InvalidToken(_) => "invalid_token",
            Unavailable { .. } => "temporarily_unavailable",
            Internal { .. } => "server_error",
            _ => "server_error",
        }
    }

    fn description(&self) -> String {
        use RegistrationError::*;
        match self {
            InvalidRedirectUri(d)
            | InvalidClientMetadata(d)
            | InvalidSoftwareStatement(d)
            | UnapprovedSoftwareStatement(d)
            | InvalidRequest(d)
            | TransportCertificate(d)
            | InvalidToken(d) => d.clone(),
            // The surface says what it accepts: JSON, or a JWS in the UK profile.
            UnsupportedMediaType(d) => d.clone(),
            PayloadTooLarge(max) => format!("the request body is larger than {max} bytes"),
            Unavailable { internal } => {
                tracing::warn!(cause = %internal, "registration temporarily unavailable");
                "the registration service is temporarily unavailable; retry later".into()
            }
            Internal { internal } => {
                tracing::error!(cause = %internal, "registration failed");
                "the registration could not be completed because of a server error".into()
            }
            _ => "server error".into(),
        }
    }

    fn status(&self) -> Status {
        use RegistrationError::*;
        match self {
            TransportCertificate(_) | InvalidToken(_) => Status::Unauthorized,
            PayloadTooLarge(_) => Status::PayloadTooLarge,
            UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            Unavailable { .. } => Status::Unavailable,
            Internal { .. } => Status::Internal,
            _ => Status::BadRequest,
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        match self {
            RegistrationError::InvalidToken(_) => Some("Bearer error=\"invalid_token\"".into()),
            _ => None,
        }
    }
}

impl OAuthError for TokenError {
    fn code(&self) -> &'static str {
        use TokenError::*;
        match self {
            InvalidRequest(_) | PayloadTooLarge(_) => "invalid_request",
            InvalidClient { .. } => "invalid_client",
            InvalidGrant(_) => "invalid_grant",
            UnauthorizedClient(_) => "unauthorized_client",
            UnsupportedGrantType(_) => "unsupported_grant_type",
            InvalidScope(_) => "invalid_scope",
            InvalidTarget(_) => "invalid_target",
            UnsupportedTokenType(_) => "unsupported_token_type",
            Unavailable { .. } => "temporarily_unavailable",
            _ => "server_error",
        }
    }

    fn description(&self) -> String {
        use TokenError::*;
        match self {
            InvalidRequest(d)
            | InvalidGrant(d)
            | UnauthorizedClient(d)
            | UnsupportedGrantType(d)
            | InvalidScope(d)
            | InvalidTarget(d)
            | UnsupportedTokenType(d) => d.clone(),
            InvalidClient { description, .. } => description.clone(),
            PayloadTooLarge(max) => format!("the request body is larger than {max} bytes"),
            Unavailable { internal } => {
                tracing::warn!(cause = %internal, "token endpoint temporarily unavailable");
                "the service is temporarily unavailable; retry later".into()
            }
            Internal { internal } => {
                tracing::error!(cause = %internal, "token endpoint failed");
                "the request could not be completed because of a server error".into()
            }
            _ => "server error".into(),
        }
    }

    fn status(&self) -> Status {
        use TokenError::*;
        match self {
            InvalidClient { .. } => Status::Unauthorized,
            PayloadTooLarge(_) => Status::PayloadTooLarge,
            Unavailable { .. } => Status::Unavailable,
            Internal { .. } => Status::Internal,
            _ => Status::BadRequest,
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        match self {
            // RFC 6749 §5.2: only when the client used the Authorization header.
            TokenError::InvalidClient { authorization_header: true, .. } => Some("Basic realm=\"tessera\"".into()),
            _ => None,
        }
    }
}

impl OAuthError for IntrospectionError {
    fn code(&self) -> &'static str {
        use IntrospectionError::*;
        match self {
            InvalidRequest(_) | PayloadTooLarge(_) => "invalid_request",
            InvalidClient(_) => "invalid_client",
            NotEntitled(_) => "unauthorized_client",
            Unavailable { .. } => "temporarily_unavailable",
            _ => "server_error",
        }
    }

    fn description(&self) -> String {
        use IntrospectionError::*;
        match self {
            InvalidRequest(d) | InvalidClient(d) | NotEntitled(d) => d.clone(),
            PayloadTooLarge(max) => format!("the request body is larger than {max} bytes"),
            Unavailable { internal } => {
                tracing::warn!(cause = %internal, "introspection temporarily unavailable");
                "introspection is temporarily unavailable; retry later".into()
            }
            Internal { internal } => {
                tracing::error!(cause = %internal, "introspection failed");
                "the request could not be completed because of a server error".into()
            }
            _ => "server error".into(),
        }
    }

    fn status(&self) -> Status {
        use IntrospectionError::*;
        match self {
            InvalidClient(_) => Status::Unauthorized,
            NotEntitled(_) => Status::Forbidden,
            PayloadTooLarge(_) => Status::PayloadTooLarge,
            Unavailable { .. } => Status::Unavailable,
            Internal { .. } => Status::Internal,
            _ => Status::BadRequest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render;
    use actix_web::body::to_bytes;

    async fn wire(e: &dyn OAuthError) -> (u16, String, Option<String>, String) {
        let resp = render(e);
        let status = resp.status().as_u16();
        let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
        let body: serde_json::Value = serde_json::from_slice(&to_bytes(resp.into_body()).await.unwrap()).unwrap();
        (
            status,
            body["error"].as_str().unwrap().to_owned(),
            challenge,
            body["error_description"].as_str().unwrap_or("").to_owned(),
        )
    }

    #[actix_web::test]
    async fn registration_errors_row_by_row() {
        // RFC 7591 §3.2.2 (checklist D.72), RFC 7592 §3 (E.79)
        use RegistrationError::*;
        let rows: Vec<(RegistrationError, u16, &str)> = vec![
            (InvalidRedirectUri("r".into()), 400, "invalid_redirect_uri"),
            (InvalidClientMetadata("m".into()), 400, "invalid_client_metadata"),
            (InvalidSoftwareStatement("s".into()), 400, "invalid_software_statement"),
            (UnapprovedSoftwareStatement("u".into()), 400, "unapproved_software_statement"),
            (InvalidRequest("j".into()), 400, "invalid_request"),
            (TransportCertificate("t".into()), 401, "invalid_client"),
            (InvalidToken("x".into()), 401, "invalid_token"),
            (PayloadTooLarge(10), 413, "invalid_request"),
            (UnsupportedMediaType("text/plain".into()), 415, "invalid_request"),
            (Unavailable { internal: "db down".into() }, 503, "temporarily_unavailable"),
            (Internal { internal: "secret detail".into() }, 500, "server_error"),
        ];
        for (e, status, code) in rows {
            let (s, c, challenge, description) = wire(&e).await;
            assert_eq!((s, c.as_str()), (status, code), "{e:?}");
            assert_eq!(challenge.is_some(), matches!(e, InvalidToken(_)));
            assert!(!description.contains("secret detail") && !description.contains("db down"));
        }
    }

    #[actix_web::test]
    async fn introspection_errors_row_by_row() {
        // RFC 7662 §2.3 (checklist F.84)
        use IntrospectionError::*;
        let rows: Vec<(IntrospectionError, u16, &str)> = vec![
            (InvalidRequest("r".into()), 400, "invalid_request"),
            (InvalidClient("c".into()), 401, "invalid_client"),
            (NotEntitled("n".into()), 403, "unauthorized_client"),
            (PayloadTooLarge(1), 413, "invalid_request"),
            (Unavailable { internal: "x".into() }, 503, "temporarily_unavailable"),
            (Internal { internal: "x".into() }, 500, "server_error"),
        ];
        for (e, status, code) in rows {
            let (s, c, _, _) = wire(&e).await;
            assert_eq!((s, c.as_str()), (status, code), "{e:?}");
        }
    }

    #[actix_web::test]
    async fn token_errors_row_by_row() {
        // RFC 6749 §5.2 (checklist J.101)
        use TokenError::*;
        let rows: Vec<(TokenError, u16, &str, bool)> = vec![
            (InvalidRequest("r".into()), 400, "invalid_request", false),
            (InvalidClient { description: "c".into(), authorization_header: false }, 401, "invalid_client", false),
            (InvalidClient { description: "c".into(), authorization_header: true }, 401, "invalid_client", true),
            (InvalidGrant("g".into()), 400, "invalid_grant", false),
            (UnauthorizedClient("u".into()), 400, "unauthorized_client", false),
            (UnsupportedGrantType("p".into()), 400, "unsupported_grant_type", false),
            (InvalidScope("s".into()), 400, "invalid_scope", false),
            (InvalidTarget("t".into()), 400, "invalid_target", false),
            (UnsupportedTokenType("t".into()), 400, "unsupported_token_type", false),
            (PayloadTooLarge(1), 413, "invalid_request", false),
            (Unavailable { internal: "x".into() }, 503, "temporarily_unavailable", false),
            (Internal { internal: "x".into() }, 500, "server_error", false),
        ];
        for (e, status, code, challenge) in rows {
            let (s, c, ch, _) = wire(&e).await;
            assert_eq!((s, c.as_str(), ch.is_some()), (status, code, challenge), "{e:?}");
        }
    }
}
