//! The actix extractors and RFC 6750 responses, through `actix_web::test` (no TLS: the client
//! certificate is put in the request extensions, where a trusted middleware would put it).

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use actix_web::{App, HttpMessage, HttpResponse, test, web};
use serde_json::{Value, json};
use tessera_resource_server::actix::{Authenticated, PeerCertificate, RequireScope, ScopeRequirement};
use tessera_resource_server::{RsError, Validator};

use crate::support::*;

struct PaymentsWrite;
impl ScopeRequirement for PaymentsWrite {
    const SCOPE: &'static str = "payments:write";
}

async fn accounts(auth: Authenticated) -> Result<HttpResponse, RsError> {
    auth.require("accounts:read")?;
    Ok(HttpResponse::Ok().json(json!({ "client_id": auth.client_id })))
}

async fn admin(auth: Authenticated) -> Result<HttpResponse, RsError> {
    auth.require("admin")?;
    Ok(HttpResponse::Ok().finish())
}

async fn payments(auth: RequireScope<PaymentsWrite>) -> HttpResponse {
    HttpResponse::Created().json(json!({ "client_id": auth.client_id }))
}

async fn unregistered(_auth: Authenticated) -> HttpResponse {
    HttpResponse::Ok().finish()
}

struct Fixture {
    key: TestKey,
    cert: Vec<u8>,
    validator: web::Data<Validator>,
}

fn fixture() -> Fixture {
    let key = TestKey::es256("k1");
    let validator = web::Data::new(static_validator(&[&key]));
    Fixture { key, cert: client_cert("c1"), validator }
}

/// Sends `req` (with the client certificate `cert`, if any) and returns status, headers, body.
async fn send(
    f: &Fixture,
    req: test::TestRequest,
    cert: Option<&[u8]>,
) -> (StatusCode, actix_web::http::header::HeaderMap, Value) {
    let app = test::init_service(
        App::new()
            .app_data(f.validator.clone())
            .route("/accounts", web::get().to(accounts))
            .route("/admin", web::get().to(admin))
            .route("/payments", web::post().to(payments)),
    )
    .await;
    let req = req.to_request();
    if let Some(cert) = cert {
        req.extensions_mut().insert(PeerCertificate::from_der(cert.to_vec()));
    }
    let resp = test::call_service(&app, req).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = test::read_body(resp).await;
    let json = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
    (status, headers, json)
}

fn www(headers: &actix_web::http::header::HeaderMap) -> String {
    headers.get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[actix_web::test]
async fn the_bearer_scheme_is_case_insensitive() {
    // OIDF access-token-type-header-case-sensitivity.
    let f = fixture();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let token = f.key.token(&f.cert, json!({}));
        let req = test::TestRequest::get().uri("/accounts").insert_header((AUTHORIZATION, format!("{scheme} {token}")));
        let (status, _, body) = send(&f, req, Some(&f.cert)).await;
        assert_eq!(status, StatusCode::OK, "{scheme}: {body}");
        assert_eq!(body["client_id"], "client-1");
    }
}

#[actix_web::test]
async fn no_token_is_401_with_a_bare_challenge() {
    let f = fixture();
    for req in [
        test::TestRequest::get().uri("/accounts"),
        test::TestRequest::get().uri("/accounts").insert_header((AUTHORIZATION, "Basic Zm9vOmJhcg==")),
    ] {
        let (status, headers, body) = send(&f, req, Some(&f.cert)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(www(&headers), "Bearer");
        assert!(body.get("error").is_none(), "{body}");
    }
}

#[actix_web::test]
async fn malformed_requests_are_400_invalid_request() {
    let f = fixture();
    let token = f.key.token(&f.cert, json!({}));
    let cases = [
        // RFC 6750 §2.3 is never accepted, not even next to a valid header.
        test::TestRequest::get().uri(&format!("/accounts?access_token={token}")),
        test::TestRequest::get()
            .uri(&format!("/accounts?x=1&access_token={token}"))
            .insert_header((AUTHORIZATION, format!("Bearer {token}"))),
        // Two Authorization headers.
        test::TestRequest::get()
            .uri("/accounts")
            .append_header((AUTHORIZATION, format!("Bearer {token}")))
            .append_header((AUTHORIZATION, format!("Bearer {token}"))),
        // Bearer without a token, or with something that is not a token.
        test::TestRequest::get().uri("/accounts").insert_header((AUTHORIZATION, "Bearer")),
        test::TestRequest::get().uri("/accounts").insert_header((AUTHORIZATION, format!("Bearer {token} extra"))),
    ];
    for req in cases {
        let (status, headers, body) = send(&f, req, Some(&f.cert)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(www(&headers).starts_with(r#"Bearer error="invalid_request", error_description=""#), "{headers:?}");
        assert_eq!(body["error"], "invalid_request");
    }
}

#[actix_web::test]
async fn invalid_tokens_are_401_invalid_token() {
    let f = fixture();
    let cases = [
        ("expired", f.key.token(&f.cert, json!({ "exp": now() - 3600 })), Some(f.cert.clone())),
        ("wrong audience", f.key.token(&f.cert, json!({ "aud": "https://other.example" })), Some(f.cert.clone())),
        ("garbage", "abc.def.ghi".to_owned(), Some(f.cert.clone())),
        ("no certificate", f.key.token(&f.cert, json!({})), None),
        ("another certificate", f.key.token(&f.cert, json!({})), Some(client_cert("c2"))),
    ];
    for (name, token, cert) in cases {
        let req = test::TestRequest::get().uri("/accounts").insert_header((AUTHORIZATION, format!("Bearer {token}")));
        let (status, headers, body) = send(&f, req, cert.as_deref()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        let challenge = www(&headers);
        assert!(challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#), "{name}: {challenge}");
        assert!(challenge.ends_with('"'), "{name}: {challenge}");
        assert_eq!(body["error"], "invalid_token", "{name}");
        assert_eq!(headers.get(CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "application/json");
    }
}

#[actix_web::test]
async fn exact_invalid_token_challenge_for_a_certificate_mismatch() {
    let f = fixture();
    let token = f.key.token(&f.cert, json!({}));
    let req = test::TestRequest::get().uri("/accounts").insert_header((AUTHORIZATION, format!("Bearer {token}")));
    let (_, headers, body) = send(&f, req, Some(&client_cert("c2"))).await;
    assert_eq!(
        www(&headers),
        r#"Bearer error="invalid_token", error_description="the token is bound to a different client certificate""#
    );
    assert_eq!(
        body,
        json!({"error": "invalid_token", "error_description": "the token is bound to a different client certificate"})
    );
}

#[actix_web::test]
async fn insufficient_scope_is_403_with_the_scope() {
    let f = fixture();
    let token = f.key.token(&f.cert, json!({ "scope": "accounts:read" }));
    let req = test::TestRequest::get().uri("/admin").insert_header((AUTHORIZATION, format!("Bearer {token}")));
    let (status, headers, body) = send(&f, req, Some(&f.cert)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        www(&headers),
        r#"Bearer error="insufficient_scope", error_description="the access token lacks the scope admin", scope="admin""#
    );
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "admin");

    // RequireScope in the signature: missing scope is 403, present scope passes.
    let req = test::TestRequest::post().uri("/payments").insert_header((AUTHORIZATION, format!("bearer {token}")));
    let (status, headers, _) = send(&f, req, Some(&f.cert)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(www(&headers).ends_with(r#"scope="payments:write""#));
    let token = f.key.token(&f.cert, json!({}));
    let req = test::TestRequest::post().uri("/payments").insert_header((AUTHORIZATION, format!("BEARER {token}")));
    let (status, _, body) = send(&f, req, Some(&f.cert)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // An invalid token is still 401 on a RequireScope route (token first, scope second).
    let token = f.key.token(&f.cert, json!({ "exp": now() - 3600 }));
    let req = test::TestRequest::post().uri("/payments").insert_header((AUTHORIZATION, format!("Bearer {token}")));
    assert_eq!(send(&f, req, Some(&f.cert)).await.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_missing_validator_is_a_500_not_a_pass() {
    let app = test::init_service(App::new().route("/x", web::get().to(unregistered))).await;
    for req in [
        test::TestRequest::get().uri("/x").insert_header((AUTHORIZATION, "Bearer abc")),
        test::TestRequest::get().uri("/x"),
    ] {
        let resp = test::call_service(&app, req.to_request()).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(resp.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
