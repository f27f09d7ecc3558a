//! HTTP for introspection.

use actix_web::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use tessera_core::Issuer;
use tessera_core::discovery::{self, MetadataFragment};
use tessera_core::error::IntrospectionError;
use tessera_core::keys::SigningAlg;
use tessera_http::{PeerCertificates, no_store, render};
use tessera_token_endpoint::http::read_form;

use crate::service::{IntrospectionResult, Introspector};

pub const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/introspect").route(web::post().to(introspect)).default_service(web::to(method_not_allowed)),
    );
}

pub fn metadata(issuer: &Issuer, mtls_alias: Option<&Issuer>) -> MetadataFragment {
    let mut f = discovery::endpoint(issuer, mtls_alias, "introspection_endpoint", "/introspect");
    f.insert(
        "introspection_endpoint_auth_methods_supported".into(),
        json!(["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"]),
    );
    // RFC 9701 §7: FAPI algorithms only; RS256 (the RFC's default) is not offered.
    f.insert(
        "introspection_signing_alg_values_supported".into(),
        json!(SigningAlg::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>()),
    );
    f
}

async fn method_not_allowed() -> HttpResponse {
    // RFC 7662 §2.1: POST only. RFC 9110 §15.5.6: a 405 MUST carry Allow.
    let mut resp = render(&IntrospectionError::InvalidRequest("the introspection endpoint accepts POST only".into()));
    *resp.status_mut() = actix_web::http::StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(actix_web::http::header::ALLOW, actix_web::http::header::HeaderValue::from_static("POST"));
    resp
}

fn wants_jwt(req: &HttpRequest) -> bool {
    req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(',').any(|t| t.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case(JWT_MEDIA_TYPE))
    })
}

async fn introspect(
    req: HttpRequest,
    payload: web::Payload,
    peer: PeerCertificates,
    service: web::Data<Introspector>,
) -> HttpResponse {
    // RFC 6749 §2.3.1 / RFC 7662 §2.1: tokens and credentials never travel in the URL.
    if !req.query_string().is_empty() {
        return render(&IntrospectionError::InvalidRequest(
            "parameters must be sent in the request body, not in the URL".into(),
        ));
    }
    let form = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(e) => return render(&IntrospectionError::from(e)),
    };
    let authorization_header = req.headers().contains_key(AUTHORIZATION);
    match service.introspect(&form, authorization_header, &peer, wants_jwt(&req)).await {
        Ok(IntrospectionResult::Json(v)) => no_store(HttpResponse::Ok().json(v)),
        Ok(IntrospectionResult::Jwt(jwt)) => {
            no_store(HttpResponse::Ok().insert_header((CONTENT_TYPE, JWT_MEDIA_TYPE)).body(jwt))
        }
        Err(e) => render(&e),
    }
}
