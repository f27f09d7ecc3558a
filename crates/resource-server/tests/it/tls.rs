//! Over real TLS: an issuer serving its JWKS and metadata over HTTPS, a resource server that
//! requires client certificates and takes them from the connection (`capture_peer_certificate`),
//! and reqwest clients with certificates of their own.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::{App, HttpResponse, HttpServer, web};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tessera_resource_server::actix::{Authenticated, capture_peer_certificate};
use tessera_resource_server::{InvalidToken, RsError, Validator, ValidatorConfig, discover_jwks_uri};

use crate::support::*;

pub fn server_tls(server: &Issued, client_ca_pem: Option<&str>) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(server.cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let builder = match client_ca_pem {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).unwrap()
}

pub fn client(ca_pem: &str, identity: Option<&Issued>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none());
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{}{}", id.cert_pem, id.key_pem).as_bytes()).unwrap());
    }
    b.build().unwrap()
}

/// An issuer: `/jwks` (counted) and RFC 8414 metadata, over HTTPS without client auth.
pub struct FakeAs {
    pub issuer: String,
    pub jwks_hits: Arc<AtomicUsize>,
    pub handle: ServerHandle,
}

pub fn start_issuer(pki: &Pki, jwks_json: String) -> FakeAs {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let hits = Arc::new(AtomicUsize::new(0));
    let (hits2, issuer2) = (hits.clone(), issuer.clone());
    let server = HttpServer::new(move || {
        let (hits, jwks_json, issuer) = (hits2.clone(), jwks_json.clone(), issuer2.clone());
        App::new()
            .route(
                "/jwks",
                web::get().to(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let body = jwks_json.clone();
                    async move { HttpResponse::Ok().content_type("application/json").body(body) }
                }),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                web::get().to(move || {
                    let doc = json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") });
                    async move { HttpResponse::Ok().json(doc) }
                }),
            )
    })
    .workers(1)
    .listen_rustls_0_23(listener, server_tls(&pki.server(), None))
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    FakeAs { issuer, jwks_hits: hits, handle }
}

async fn accounts(auth: Authenticated) -> Result<HttpResponse, RsError> {
    auth.require("accounts:read")?;
    Ok(HttpResponse::Ok().json(json!({ "client_id": auth.client_id, "accounts": [] })))
}

fn start_resource_server(pki: &Pki, validator: Validator) -> (SocketAddr, ServerHandle) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let validator = web::Data::new(validator);
    let server =
        HttpServer::new(move || App::new().app_data(validator.clone()).route("/accounts", web::get().to(accounts)))
            .on_connect(capture_peer_certificate)
            .workers(1)
            .listen_rustls_0_23(listener, server_tls(&pki.server(), Some(&pki.ca_pem)))
            .unwrap()
            .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (addr, handle)
}

#[actix_web::test]
async fn certificate_bound_tokens_over_mutual_tls() {
    install_provider();
    let pki = Pki::new("Test CA");
    let key = TestKey::es256("k1");
    let fake_as = start_issuer(&pki, jwks(&[&key]));

    // Discovery (RFC 8414) gives the jwks_uri; the JWKS client trusts only the test CA.
    let as_client = client(&pki.ca_pem, None);
    let jwks_uri = discover_jwks_uri(&as_client, &fake_as.issuer).await.unwrap();
    assert_eq!(jwks_uri, format!("{}/jwks", fake_as.issuer));
    assert!(discover_jwks_uri(&as_client, &format!("{}/other", fake_as.issuer)).await.is_err());
    let validator = Validator::new(ValidatorConfig::new(&fake_as.issuer, AUDIENCE, jwks_uri), as_client);
    let (addr, rs) = start_resource_server(&pki, validator);
    let url = format!("https://127.0.0.1:{}/accounts", addr.port());

    let alice = pki.client("alice");
    let bob = pki.client("bob");
    let alice_token = key.token(&alice.der, json!({ "iss": fake_as.issuer }));
    let as_alice = client(&pki.ca_pem, Some(&alice));
    let as_bob = client(&pki.ca_pem, Some(&bob));

    // Alice with her token, any case of the scheme, over the same or new connections.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp =
            as_alice.get(&url).header(AUTHORIZATION.as_str(), format!("{scheme} {alice_token}")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["client_id"], "client-1");
    }
    assert_eq!(fake_as.jwks_hits.load(Ordering::SeqCst), 1);

    // Bob presents Alice's token over his own connection: RFC 8705 §3, 401 invalid_token.
    let resp = as_bob.get(&url).header(AUTHORIZATION.as_str(), format!("Bearer {alice_token}")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()[WWW_AUTHENTICATE.as_str()],
        r#"Bearer error="invalid_token", error_description="the token is bound to a different client certificate""#
    );
    // Bob with his own token.
    let bob_token = key.token(&bob.der, json!({ "iss": fake_as.issuer }));
    let resp = as_bob.get(&url).header(AUTHORIZATION.as_str(), format!("Bearer {bob_token}")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // No token at all.
    let resp = as_bob.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()[WWW_AUTHENTICATE.as_str()], "Bearer");
    // No client certificate: the handshake is refused (the verifier is mandatory).
    let anonymous = client(&pki.ca_pem, None);
    assert!(anonymous.get(&url).header(AUTHORIZATION.as_str(), format!("Bearer {alice_token}")).send().await.is_err());

    rs.stop(false).await;
    fake_as.handle.stop(false).await;
}

#[actix_web::test]
async fn a_burst_of_unknown_kids_costs_one_https_fetch() {
    install_provider();
    let pki = Pki::new("Test CA");
    let key = TestKey::es256("k1");
    let fake_as = start_issuer(&pki, jwks(&[&key]));
    let config = ValidatorConfig::new(&fake_as.issuer, AUDIENCE, format!("{}/jwks", fake_as.issuer));
    let validator = Arc::new(Validator::new(config, client(&pki.ca_pem, None)));
    let cert = client_cert("c1");
    let good = key.token(&cert, json!({ "iss": fake_as.issuer }));
    assert!(validator.validate(&good, Some(&cert), now()).await.is_ok());
    assert_eq!(fake_as.jwks_hits.load(Ordering::SeqCst), 1);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let claims = serde_json::Value::Object(valid_claims(&cert));
        let token = key.sign(json!({ "kid": format!("random-{i}") }), &claims);
        let (v, cert) = (validator.clone(), cert.clone());
        tasks.spawn(async move { v.validate(&token, Some(&cert), now()).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(matches!(result.unwrap(), Err(RsError::InvalidToken(InvalidToken::UnknownKey(_)))));
    }
    assert_eq!(fake_as.jwks_hits.load(Ordering::SeqCst), 2);
    assert!(validator.validate(&good, Some(&cert), now()).await.is_ok());

    // An issuer certificate the client does not trust: no keys, 503 (not invalid_token).
    let other_pki = Pki::new("Other CA");
    let config = ValidatorConfig::new(&fake_as.issuer, AUDIENCE, format!("{}/jwks", fake_as.issuer));
    let untrusting = Validator::new(config, client(&other_pki.ca_pem, None));
    let err = untrusting.validate(&good, Some(&cert), now()).await.unwrap_err();
    assert!(matches!(&err, RsError::Unavailable { .. }), "{err:?}");

    fake_as.handle.stop(false).await;
}
