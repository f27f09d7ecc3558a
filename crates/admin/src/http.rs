//! The admin API under `/admin`: JSON, reachable only with an administrator's client
//! certificate (a configured CA and subject list), never with a partner's certificate. Every
//! change records the administrator's certificate subject as its actor.

// The `Err` of the guards here is the finished refusal response, returned straight to actix;
// boxing it would only add an allocation to the refusal path.
#![allow(clippy::result_large_err)]

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use tessera_core::client::{ClientStatus, ScopeState};
use tessera_core::dn::DistinguishedName;
use tessera_core::{Clock, UnixTime};
use tessera_http::PeerCertificates;
use tessera_http::mtls::TrustAnchors;

use crate::service::{Admin, AdminError, ClientFilter, inventory_csv, inventory_row};

/// Who may call the admin API.
pub struct AdminAuth {
    pub anchors: TrustAnchors,
    pub subjects: Vec<DistinguishedName>,
    pub clock: std::sync::Arc<dyn Clock>,
}

fn error(status: StatusCode, code: &str, description: impl Into<String>) -> HttpResponse {
    tessera_http::no_store(
        HttpResponse::build(status).json(json!({"error": code, "error_description": description.into()})),
    )
}

impl AdminAuth {
    /// The administrator's subject, or the response refusing the caller.
    fn check(&self, peer: &PeerCertificates) -> Result<String, HttpResponse> {
        let facts = self.anchors.verify(peer, self.clock.now()).map_err(|e| {
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                format!("the admin API needs an administrator's client certificate: {e}"),
            )
        })?;
        if !self.subjects.iter().any(|s| s.matches(&facts.subject)) {
            tracing::warn!(subject = %facts.subject, "admin API refused a certificate that is not an administrator's");
            return Err(error(StatusCode::FORBIDDEN, "access_denied", "this certificate is not an administrator's"));
        }
        Ok(facts.subject.to_string())
    }
}

fn admin_error(e: AdminError) -> HttpResponse {
    match e {
        AdminError::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", format!("client {m} not found")),
        AdminError::Conflict(m) => error(StatusCode::CONFLICT, "conflict", m),
        AdminError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_request", m),
        AdminError::Store(e) => {
            tracing::error!(error = %e, "admin API storage error");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the database is unavailable; retry later",
            )
        }
    }
}

/// A query string or body that did not parse: the API's JSON error, and only after the caller
/// was authenticated (extractor errors would otherwise answer first, in plain text).
fn malformed<T>(input: Result<T, actix_web::Error>) -> Result<T, HttpResponse> {
    input.map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))
}

/// The prelude of every handler with a query string: the administrator's certificate first (an
/// unauthenticated caller learns nothing about the query), then the query parsed.
fn admitted_query<T>(
    auth: &AdminAuth,
    peer: &PeerCertificates,
    q: Result<web::Query<T>, actix_web::Error>,
) -> Result<web::Query<T>, HttpResponse> {
    auth.check(peer)?;
    malformed(q)
}

fn ok(v: Value) -> HttpResponse {
    tessera_http::no_store(HttpResponse::Ok().json(v))
}

/// The client as the admin API and `clients show --json` present it.
pub fn client_json(c: &tessera_core::client::ClientRecord) -> Value {
    inventory_row(c)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .route("/clients", web::get().to(list))
            .route("/clients/{id}", web::get().to(show))
            .route("/clients/{id}/suspend", web::post().to(suspend))
            .route("/clients/{id}/resume", web::post().to(resume))
            .route("/clients/{id}/offboard", web::post().to(offboard))
            .route("/clients/{id}/extend", web::post().to(extend))
            .route("/reviews", web::get().to(reviews))
            .route("/reviews/{id}/{scope}/approve", web::post().to(approve))
            .route("/reviews/{id}/{scope}/deny", web::post().to(deny))
            .route("/inventory", web::get().to(inventory))
            .route("/audit/verify", web::get().to(audit_verify))
            .route("/audit/export", web::get().to(audit_export))
            .default_service(web::to(|| async { error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint") })),
    );
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    tier: Option<String>,
    owner: Option<String>,
    dormant_for_days: Option<i64>,
    expiring_within_days: Option<i64>,
}

async fn list(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    q: Result<web::Query<ListQuery>, actix_web::Error>,
) -> HttpResponse {
    let q = match admitted_query(&auth, &peer, q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let status = match q.status.as_deref().map(|s| ClientStatus::parse(s).ok_or(s)) {
        Some(Err(s)) => return error(StatusCode::BAD_REQUEST, "invalid_request", format!("unknown status {s:?}")),
        Some(Ok(s)) => Some(s),
        None => None,
    };
    let filter = ClientFilter {
        status,
        tier: q.tier.clone(),
        owner: q.owner.clone(),
        dormant_for: q.dormant_for_days.map(|d| d * 86_400),
        expiring_within: q.expiring_within_days.map(|d| d * 86_400),
    };
    match admin.list(&filter).await {
        Ok(cs) => ok(json!({"clients": cs.iter().map(client_json).collect::<Vec<_>>()})),
        Err(e) => admin_error(e),
    }
}

async fn show(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    id: web::Path<String>,
) -> HttpResponse {
    if let Err(r) = auth.check(&peer) {
        return r;
    }
    match admin.show(&id).await {
        Ok(c) => ok(client_json(&c)),
        Err(e) => admin_error(e),
    }
}

#[derive(Deserialize)]
struct Reason {
    reason: Option<String>,
}

fn reason(body: &Option<web::Json<Reason>>, required: bool) -> Result<String, HttpResponse> {
    match body.as_ref().and_then(|b| b.reason.clone()).filter(|r| !r.trim().is_empty()) {
        Some(r) => Ok(r),
        None if required => {
            Err(error(StatusCode::BAD_REQUEST, "invalid_request", "a reason is required: {\"reason\": \"...\"}"))
        }
        None => Ok(String::new()),
    }
}

macro_rules! action {
    ($name:ident, $method:ident, $required:expr) => {
        async fn $name(
            peer: PeerCertificates,
            auth: web::Data<AdminAuth>,
            admin: web::Data<Admin>,
            id: web::Path<String>,
            body: Option<web::Json<Reason>>,
        ) -> HttpResponse {
            let actor = match auth.check(&peer) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let reason = match reason(&body, $required) {
                Ok(r) => r,
                Err(r) => return r,
            };
            match admin.$method(&id, &reason, &actor).await {
                Ok(c) => ok(client_json(&c)),
                Err(e) => admin_error(e),
            }
        }
    };
}

action!(suspend, suspend, true);
action!(resume, resume, false);
action!(offboard, offboard, true);

#[derive(Deserialize)]
struct Extend {
    /// Unix seconds.
    until: i64,
}

async fn extend(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    id: web::Path<String>,
    body: Result<web::Json<Extend>, actix_web::Error>,
) -> HttpResponse {
    let actor = match auth.check(&peer) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let body = match malformed(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match admin.extend(&id, UnixTime(body.until), &actor).await {
        Ok(c) => ok(client_json(&c)),
        Err(e) => admin_error(e),
    }
}

async fn reviews(peer: PeerCertificates, auth: web::Data<AdminAuth>, admin: web::Data<Admin>) -> HttpResponse {
    if let Err(r) = auth.check(&peer) {
        return r;
    }
    match admin.reviews().await {
        Ok(list) => ok(json!({"reviews": list.iter().map(|(c, scope)| {
            let g = c.scopes.iter().find(|g| &g.scope == scope);
            json!({"client_id": c.client_id, "owner_org_id": c.org_id, "owner_org_name": c.org_name, "software_id": c.software_id,
                   "purpose": c.purpose, "scope": scope, "state": ScopeState::PendingReview.as_str(),
                   "rule": g.map(|g| g.rule.clone()), "requested_at": g.map(|g| g.decided_at.0)})
        }).collect::<Vec<_>>()})),
        Err(e) => admin_error(e),
    }
}

async fn decide(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    path: (String, String),
    body: Option<web::Json<Reason>>,
    approve: bool,
) -> HttpResponse {
    let actor = match auth.check(&peer) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let reason = match reason(&body, true) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match admin.review(&path.0, &path.1, approve, &reason, &actor).await {
        Ok(c) => ok(client_json(&c)),
        Err(e) => admin_error(e),
    }
}

async fn approve(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<Reason>>,
) -> HttpResponse {
    decide(peer, auth, admin, path.into_inner(), body, true).await
}

async fn deny(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    path: web::Path<(String, String)>,
    body: Option<web::Json<Reason>>,
) -> HttpResponse {
    decide(peer, auth, admin, path.into_inner(), body, false).await
}

#[derive(Deserialize)]
struct Format {
    format: Option<String>,
}

async fn inventory(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    q: Result<web::Query<Format>, actix_web::Error>,
) -> HttpResponse {
    let q = match admitted_query(&auth, &peer, q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let clients = match admin.list(&ClientFilter::default()).await {
        Ok(c) => c,
        Err(e) => return admin_error(e),
    };
    match q.format.as_deref().unwrap_or("json") {
        "json" => ok(json!({"clients": clients.iter().map(inventory_row).collect::<Vec<_>>()})),
        "csv" => tessera_http::no_store(
            HttpResponse::Ok().insert_header((CONTENT_TYPE, "text/csv; charset=utf-8")).body(inventory_csv(&clients)),
        ),
        other => error(StatusCode::BAD_REQUEST, "invalid_request", format!("format {other:?}: use csv or json")),
    }
}

async fn audit_verify(peer: PeerCertificates, auth: web::Data<AdminAuth>, admin: web::Data<Admin>) -> HttpResponse {
    if let Err(r) = auth.check(&peer) {
        return r;
    }
    match admin.audit_verify().await {
        Ok(Ok((seq, hash))) => ok(json!({"intact": true, "records": seq, "last_hash": hash})),
        Ok(Err(broken)) => ok(json!({"intact": false, "broken_at_seq": broken.seq, "reason": broken.reason})),
        Err(e) => admin_error(e),
    }
}

#[derive(Deserialize)]
struct Since {
    since: Option<i64>,
}

async fn audit_export(
    peer: PeerCertificates,
    auth: web::Data<AdminAuth>,
    admin: web::Data<Admin>,
    q: Result<web::Query<Since>, actix_web::Error>,
) -> HttpResponse {
    let q = match admitted_query(&auth, &peer, q) {
        Ok(q) => q,
        Err(r) => return r,
    };
    match admin.audit_export(UnixTime(q.since.unwrap_or(0))).await {
        Ok(records) => {
            let mut out = String::new();
            for r in records {
                out.push_str(&serde_json::to_string(&r).unwrap_or_default());
                out.push('\n');
            }
            tessera_http::no_store(HttpResponse::Ok().insert_header((CONTENT_TYPE, "application/x-ndjson")).body(out))
        }
        Err(e) => admin_error(e),
    }
}
