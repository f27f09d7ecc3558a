//! Outbound lifecycle notifications: a suspension through the admin API reaches a webhook as a
//! JWT signed with the server's key, retried after a failure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tessera_testkit::process::run;

use crate::common::*;

#[derive(Default)]
struct Received {
    attempts: usize,
    bodies: Vec<String>,
}

async fn hook(body: String, state: web::Data<Mutex<Received>>) -> HttpResponse {
    let mut s = state.lock().unwrap();
    s.attempts += 1;
    if s.attempts == 1 {
        // The first delivery fails: the server must retry.
        return HttpResponse::ServiceUnavailable().finish();
    }
    s.bodies.push(body);
    HttpResponse::Ok().finish()
}

#[tokio::test]
async fn suspension_is_notified_to_the_webhook_signed_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Generate the dev material first: the receiver uses the dev server certificate.
    assert!(run(&bin(), &["keys", "list", "--data-dir", data.to_str().unwrap()], dir.path(), &[]).status.success());
    let manifest = read_manifest(&data);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(manifest["server"]["cert"].as_str().unwrap())
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(manifest["server"]["key"].as_str().unwrap()).unwrap();
    tessera_testkit::init_crypto();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let state = web::Data::new(Mutex::new(Received::default()));
    let receiver_state = state.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server =
        HttpServer::new(move || App::new().app_data(receiver_state.clone()).route("/hook", web::post().to(hook)))
            .workers(1)
            .listen_rustls_0_23(listener, tls)
            .unwrap()
            .run();
    let handle = server.handle();
    tokio::spawn(server);

    let urls = format!("[\"https://127.0.0.1:{port}/hook\"]");
    let cas = format!("[\"{}\"]", manifest["ca"]["cert"].as_str().unwrap());
    let tessera = Tessera::start_dev(
        &bin(),
        &data,
        &[("TESSERA_NOTIFICATIONS__WEBHOOK_URLS", urls.as_str()), ("TESSERA_NOTIFICATIONS__CA_FILES", cas.as_str())],
    );
    let ca = std::fs::read(manifest["ca"]["cert"].as_str().unwrap()).unwrap();
    let cert = std::fs::read_to_string(manifest["admin"]["cert"].as_str().unwrap()).unwrap();
    let key = std::fs::read_to_string(manifest["admin"]["key"].as_str().unwrap()).unwrap();
    let admin = https_client(&ca, Some((&cert, &key)));
    let resp = admin
        .post(tessera.url("/admin/clients/dev-gateway/suspend"))
        .json(&serde_json::json!({"reason": "rotating the gateway"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    let start = Instant::now();
    let body = loop {
        if let Some(b) = state.lock().unwrap().bodies.first().cloned() {
            break b;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no notification arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(state.lock().unwrap().attempts >= 2, "the first (failed) delivery was retried");
    assert_eq!(header_of(&body)["typ"], "tessera-event+jwt");
    let jwks = get_json(&https_client(&ca, None), &tessera.url("/jwks")).await;
    let claims = verify_with_jwks(&body, &jwks);
    assert_eq!(claims["iss"], tessera.base());
    let event: &Value = &claims["event"];
    assert_eq!(event["type"], "client_suspended");
    assert_eq!(event["client_id"], "dev-gateway");
    assert_eq!(event["details"]["reason"], "rotating the gateway");
    assert!(event["actor"].as_str().unwrap().contains("CN=tessera-admin"), "{event}");
    handle.stop(false).await;
}
