//! HTTP for the token endpoint: form parsing, limits, rendering; no logic.

use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tessera_core::Issuer;
use tessera_core::discovery::{self, MetadataFragment};
use tessera_core::error::TokenError;
use tessera_core::keys::SigningAlg;
use tessera_http::{BodyError, PeerCertificates, media_type, no_store, read_limited, render};

use crate::auth::Form;
use crate::service::TokenService;

/// Token requests are small; anything larger is not a token request.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/token").route(web::post().to(token)).default_service(web::to(method_not_allowed)))
        .service(web::resource("/revoke").route(web::post().to(revoke)).default_service(web::to(method_not_allowed)));
}

pub fn metadata(issuer: &Issuer, mtls_alias: Option<&Issuer>) -> MetadataFragment {
    let mut f = discovery::endpoint(issuer, mtls_alias, "token_endpoint", "/token");
    f.insert("grant_types_supported".into(), crate::service::grant_types());
    f.insert(
        "token_endpoint_auth_methods_supported".into(),
        json!(["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"]),
    );
    f.insert(
        "token_endpoint_auth_signing_alg_values_supported".into(),
        json!(SigningAlg::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>()),
    );
    f.insert("tls_client_certificate_bound_access_tokens".into(), json!(true));
    let revocation = discovery::endpoint(issuer, mtls_alias, "revocation_endpoint", "/revoke");
    let mut merged = discovery::merge([f, revocation]).unwrap_or_default();
    merged.insert(
        "revocation_endpoint_auth_methods_supported".into(),
        json!(["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"]),
    );
    merged
}

async fn method_not_allowed() -> HttpResponse {
    // RFC 6749 §3.2: POST only. RFC 9110 §15.5.6: a 405 MUST carry Allow.
    let mut resp = render(&TokenError::InvalidRequest("the token endpoint accepts POST only".into()));
    *resp.status_mut() = actix_web::http::StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("POST"));
    resp
}

pub async fn read_form(req: &HttpRequest, payload: web::Payload) -> Result<Form, TokenError> {
    if media_type(req) != "application/x-www-form-urlencoded" {
        return Err(TokenError::InvalidRequest("send the request as application/x-www-form-urlencoded".into()));
    }
    let body = read_limited(payload, MAX_FORM_BYTES).await.map_err(|e| match e {
        BodyError::TooLarge(max) => TokenError::PayloadTooLarge(max),
        BodyError::Read(m) => TokenError::InvalidRequest(format!("the request body could not be read: {m}")),
    })?;
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&body)?;
    Ok(Form(pairs))
}

fn serde_urlencoded_pairs(body: &[u8]) -> Result<Vec<(String, String)>, TokenError> {
    web::Query::<Vec<(String, String)>>::from_query(
        std::str::from_utf8(body).map_err(|_| TokenError::InvalidRequest("the form is not UTF-8".into()))?,
    )
    .map(|q| q.into_inner())
    .map_err(|_| TokenError::InvalidRequest("the form body is malformed".into()))
}

async fn token(
    req: HttpRequest,
    payload: web::Payload,
    peer: PeerCertificates,
    service: web::Data<TokenService>,
) -> HttpResponse {
    // RFC 6749 §2.3.1: credentials never come from the query string.
    if !req.query_string().is_empty() {
        return render(&TokenError::InvalidRequest(
            "parameters must be sent in the request body, not in the URL".into(),
        ));
    }
    let form = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(e) => return render(&e),
    };
    let authorization_header = req.headers().contains_key(AUTHORIZATION);
    match service.token(&form, authorization_header, &peer).await {
        Ok(resp) => no_store(HttpResponse::Ok().insert_header((CONTENT_TYPE, "application/json")).json(resp)),
        Err(e) => render(&e),
    }
}

async fn revoke(
    req: HttpRequest,
    payload: web::Payload,
    peer: PeerCertificates,
    service: web::Data<TokenService>,
) -> HttpResponse {
    if !req.query_string().is_empty() {
        return render(&TokenError::InvalidRequest(
            "parameters must be sent in the request body, not in the URL".into(),
        ));
    }
    let form = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(e) => return render(&e),
    };
    let authorization_header = req.headers().contains_key(AUTHORIZATION);
    match service.revoke(&form, authorization_header, &peer).await {
        // RFC 7009 §2.2: 200, no body needed.
        Ok(()) => no_store(HttpResponse::Ok().finish()),
        Err(e) => render(&e),
    }
}
