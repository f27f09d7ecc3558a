//! Reading a request body with a size limit that answers with the surface's own error (413)
//! instead of the framework's default page.

use actix_web::web::{Bytes, BytesMut, Payload};
use futures_util::StreamExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    TooLarge(usize),
    Read(String),
}

pub async fn read_limited(mut payload: Payload, max: usize) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The bearer token of an `Authorization: Bearer <token>` header (scheme case-insensitive,
/// RFC 6750 §2.1). Tokens in the query string are never looked at (§2.3).
pub fn bearer_token(req: &actix_web::HttpRequest) -> Option<String> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The media type of the request without parameters, lower-cased.
pub fn media_type(req: &actix_web::HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bearer_parsing() {
        let r = TestRequest::default().insert_header(("Authorization", "bearer abc")).to_http_request();
        assert_eq!(bearer_token(&r).as_deref(), Some("abc"));
        let r = TestRequest::default().insert_header(("Authorization", "Basic abc")).to_http_request();
        assert_eq!(bearer_token(&r), None);
        let r = TestRequest::default().insert_header(("Authorization", "Bearer ")).to_http_request();
        assert_eq!(bearer_token(&r), None);
        let r = TestRequest::default().uri("/x?access_token=abc").to_http_request();
        assert_eq!(bearer_token(&r), None);
    }

    #[test]
    fn media_type_drops_parameters() {
        let r =
            TestRequest::default().insert_header(("Content-Type", "Application/JSON; charset=utf-8")).to_http_request();
        assert_eq!(media_type(&r), "application/json");
    }
}
