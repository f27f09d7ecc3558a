//! HTTP for registration: extract, call the service, render. No policy here.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;
use tessera_core::Issuer;
use tessera_core::discovery::{self, MetadataFragment};
use tessera_core::error::RegistrationError;
use tessera_http::{BodyError, PeerCertificates, bearer_token, media_type, no_store, read_limited, render};

use crate::service::Registrar;
use crate::settings::Profile;

/// Routes: `POST /register`, `GET|PUT|DELETE /register/{client_id}`. Needs `web::Data<Registrar>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/register").route(web::post().to(register)).default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/register/{client_id}")
            .route(web::get().to(read))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}

/// This surface's discovery members.
pub fn metadata(issuer: &Issuer, mtls_alias: Option<&Issuer>) -> MetadataFragment {
    discovery::endpoint(issuer, mtls_alias, "registration_endpoint", "/register")
}

async fn method_not_allowed() -> HttpResponse {
    no_store(HttpResponse::MethodNotAllowed().json(serde_json::json!({
        "error": "invalid_request",
        "error_description": "method not allowed on this endpoint"
    })))
}

fn json(status: StatusCode, body: Value) -> HttpResponse {
    no_store(HttpResponse::build(status).json(body))
}

async fn body(
    req: &HttpRequest,
    payload: web::Payload,
    registrar: &Registrar,
) -> Result<web::Bytes, RegistrationError> {
    let media = media_type(req);
    let accepted: &[&str] = match registrar.settings.profile {
        Profile::Rfc7591 => &["application/json"],
        Profile::UkOpenBanking { .. } => &["application/jose", "application/jwt"],
    };
    if !accepted.contains(&media.as_str()) {
        let received = if media.is_empty() { "(none)" } else { media.as_str() };
        return Err(RegistrationError::UnsupportedMediaType(format!(
            "content type {received:?} is not accepted; send {}",
            accepted.join(" or ")
        )));
    }
    read_limited(payload, registrar.settings.max_body_bytes).await.map_err(|e| match e {
        BodyError::TooLarge(max) => RegistrationError::PayloadTooLarge(max),
        BodyError::Read(m) => RegistrationError::InvalidRequest(format!("the request body could not be read: {m}")),
    })
}

async fn register(
    req: HttpRequest,
    payload: web::Payload,
    peer: PeerCertificates,
    registrar: web::Data<Registrar>,
) -> HttpResponse {
    let result = match body(&req, payload, &registrar).await {
        Ok(bytes) => registrar.register(&bytes, &peer).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => json(StatusCode::CREATED, v),
        Err(e) => render(&e),
    }
}

async fn read(
    req: HttpRequest,
    path: web::Path<String>,
    peer: PeerCertificates,
    registrar: web::Data<Registrar>,
) -> HttpResponse {
    match registrar.read(&path, bearer_token(&req).as_deref(), &peer).await {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => render(&e),
    }
}

async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    peer: PeerCertificates,
    registrar: web::Data<Registrar>,
) -> HttpResponse {
    let bearer = bearer_token(&req);
    let result = match body(&req, payload, &registrar).await {
        Ok(bytes) => registrar.update(&path, bearer.as_deref(), &peer, &bytes).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => json(StatusCode::OK, v),
        Err(e) => render(&e),
    }
}

async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    peer: PeerCertificates,
    registrar: web::Data<Registrar>,
) -> HttpResponse {
    match registrar.delete(&path, bearer_token(&req).as_deref(), &peer).await {
        Ok(()) => no_store(HttpResponse::NoContent().finish()),
        Err(e) => render(&e),
    }
}
