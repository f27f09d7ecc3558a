//! The bare ceiling for the token endpoint: what actix-web + rustls + josekit can do on this
//! machine with nothing else in the way. One POST /token that reads the form, binds the token to
//! the presented certificate (x5t#S256) and signs an ES256 JWT. No client lookup, no storage, no
//! audit, no per-request chain validation (rustls validates the chain once per handshake).
//!
//! ceiling --listen 127.0.0.1:9443 --cert server.pem --key server.key --ca ca.pem

use std::any::Any;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jws::{ES256, JwsSigner};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

#[derive(Clone)]
struct Leaf(Option<Arc<Vec<u8>>>);

struct State {
    signer: Box<dyn JwsSigner>,
    kid: String,
}

fn capture(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(tls) = conn.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<TcpStream>>() {
        let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Arc::new(c.as_ref().to_vec()));
        ext.insert(Leaf(leaf));
    }
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let Some(Leaf(Some(leaf))) = req.conn_data::<Leaf>().cloned() else {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    };
    let Ok(form) = web::Query::<Vec<(String, String)>>::from_query(std::str::from_utf8(&body).unwrap_or("")) else {
        return HttpResponse::BadRequest().json(json!({"error": "invalid_request"}));
    };
    let client_id = form.iter().find(|(k, _)| k == "client_id").map(|(_, v)| v.clone()).unwrap_or_default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut jti = [0u8; 18];
    let _ = getrandom::fill(&mut jti);
    let mut claims = Map::new();
    claims.insert("iss".into(), json!("https://ceiling.bench"));
    claims.insert("sub".into(), json!(client_id));
    claims.insert("client_id".into(), json!(client_id));
    claims.insert("aud".into(), json!("https://api.bench"));
    claims.insert("iat".into(), json!(now));
    claims.insert("nbf".into(), json!(now));
    claims.insert("exp".into(), json!(now + 300));
    claims.insert("jti".into(), json!(URL_SAFE_NO_PAD.encode(jti)));
    claims.insert("scope".into(), json!("accounts:read"));
    claims.insert("cnf".into(), json!({ "x5t#S256": URL_SAFE_NO_PAD.encode(Sha256::digest(leaf.as_slice())) }));
    let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": state.kid });
    let mut compact = String::with_capacity(800);
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&header).unwrap_or_default(), &mut compact);
    compact.push('.');
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&Value::Object(claims)).unwrap_or_default(), &mut compact);
    let Ok(sig) = state.signer.sign(compact.as_bytes()) else {
        return HttpResponse::InternalServerError().finish();
    };
    compact.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut compact);
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "access_token": compact, "token_type": "Bearer", "expires_in": 300, "scope": "accounts:read" }))
}

fn arg(args: &[String], name: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| panic!("missing {name}; usage: ceiling --listen ADDR --cert PEM --key PEM --ca PEM"))
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(arg(&args, "--cert")).expect("cert").collect::<Result<_, _>>().expect("cert");
    let key = PrivateKeyDer::from_pem_file(arg(&args, "--key")).expect("key");
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(arg(&args, "--ca")).expect("ca") {
        roots.add(ca.expect("ca")).expect("ca");
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .expect("verifier");
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("tls");
    let pair = ES256.generate_key_pair().expect("key pair");
    let pem = pair.to_pem_private_key();
    let listen = arg(&args, "--listen");
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            let signer = ES256.signer_from_pem(&pem).expect("signer");
            App::new()
                .app_data(web::Data::new(State { signer: Box::new(signer), kid: "ceiling-1".into() }))
                .route("/token", web::post().to(token))
        })
        .on_connect(capture)
        .listen_rustls_0_23(std::net::TcpListener::bind(&listen)?, tls)?;
        for addr in server.addrs() {
            println!("ceiling: listening on https://{addr}");
        }
        server.run().await
    })
}
