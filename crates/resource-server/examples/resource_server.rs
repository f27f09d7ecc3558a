//! A runnable resource server that accepts Tessera access tokens: HTTPS with mandatory client
//! certificates, local validation of certificate-bound RFC 9068 JWTs, RFC 6750 errors.
//!
//! Routes:
//! - `GET /accounts`: scope `accounts:read`; `200 {"accounts": [...], "client_id": "..."}`
//! - `POST /payments`: scope `payments:write`; `201 {"payment_id": "...", "status": "accepted", "client_id": "..."}`
//!
//! Without a token: 401 `WWW-Authenticate: Bearer`; token in the query or malformed header: 400
//! `invalid_request`; bad, expired or foreign token, or a token bound to another certificate:
//! 401 `invalid_token`; missing scope: 403 `insufficient_scope`; issuer keys unreachable: 503.
//!
//! # Running
//!
//! ```text
//! cargo run -p tessera-resource-server --example resource_server -- \
//!     --issuer https://127.0.0.1:8443 \
//!     --audience https://rs.bank.example \
//!     --as-ca pki/ca.pem \
//!     --tls-cert pki/rs.pem --tls-key pki/rs.key \
//!     --client-ca pki/ca.pem \
//!     --listen 127.0.0.1:0
//! ```
//!
//! Every option can also come from the environment (the command line wins). The `RS_` prefix is
//! deliberate: `TESSERA_*` variables are configuration overrides of the authorization server,
//! which refuses unknown keys, so both can run from the same environment.
//!
//! | option | environment | meaning |
//! |---|---|---|
//! | `--issuer URL` | `RS_ISSUER` | required; Tessera's issuer exactly as its metadata's `issuer` (no trailing `/` added or removed), compared with `iss` |
//! | `--audience ID` | `RS_AUDIENCE` | required; this server's identifier, must be in `aud` (Tessera's `token.default_audience`, or a `resource` the client requested) |
//! | `--as-ca FILE` | `RS_AS_CA` | required; PEM CA certificate(s) that anchor Tessera's TLS certificate, for fetching its keys |
//! | `--tls-cert FILE` | `RS_TLS_CERT` | required; this server's PEM certificate chain (leaf first) |
//! | `--tls-key FILE` | `RS_TLS_KEY` | required; its PEM private key (PKCS#8, PKCS#1 or SEC1) |
//! | `--client-ca FILE` | `RS_CLIENT_CA` | required; PEM CA certificate(s) that client certificates must chain to |
//! | `--listen ADDR` | `RS_LISTEN` | default `127.0.0.1:8443`; port 0 picks a free port |
//! | `--jwks-uri URL` | `RS_JWKS_URI` | default `<issuer>/jwks` |
//! | `--discover` | `RS_DISCOVER=1` | read `jwks_uri` from `<issuer>/.well-known/oauth-authorization-server` at start (fails if Tessera is not up) |
//! | `--as-client-cert FILE`, `--as-client-key FILE` | `RS_AS_CLIENT_CERT`, `RS_AS_CLIENT_KEY` | optional; a client certificate to present when fetching keys, if Tessera requires one |
//! | `--max-skew-secs N` | `RS_MAX_SKEW_SECS` | default 60 |
//!
//! Once it listens, it prints exactly one line on stdout, `resource-server: listening on
//! https://ADDR` (with the real port when `--listen` used port 0), and then one line per request
//! on stderr (`resource-server: GET /accounts -> 401 Bearer error="invalid_token", ...`). Keys are
//! fetched on the first request, not at start, so it can start before Tessera (unless
//! `--discover`). On a configuration error it prints `resource-server: error: ...` on stderr and
//! exits with status 2. SIGINT/SIGTERM stop it gracefully.
//!
//! A client calls it with its own certificate and the token Tessera issued for that
//! certificate (mTLS `client_credentials`, scope `accounts:read`):
//!
//! ```text
//! curl --cacert pki/ca.pem --cert client.pem --key client.key \
//!      -H "Authorization: Bearer $TOKEN" https://127.0.0.1:PORT/accounts
//! ```

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::WWW_AUTHENTICATE;
use actix_web::{App, HttpResponse, HttpServer, web};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tessera_resource_server::actix::{Authenticated, RequireScope, ScopeRequirement, capture_peer_certificate};
use tessera_resource_server::{RsError, Validator, ValidatorConfig, discover_jwks_uri};

type BoxError = Box<dyn std::error::Error>;

const USAGE: &str = "usage: resource_server --issuer URL --audience ID --as-ca FILE --tls-cert FILE --tls-key FILE \
--client-ca FILE [--listen ADDR] [--jwks-uri URL] [--discover] [--as-client-cert FILE --as-client-key FILE] \
[--max-skew-secs N]   (or RS_ISSUER, RS_AUDIENCE, ... in the environment)";

struct Args {
    issuer: String,
    audience: String,
    as_ca: PathBuf,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    client_ca: PathBuf,
    listen: String,
    jwks_uri: Option<String>,
    discover: bool,
    as_client_cert: Option<PathBuf>,
    as_client_key: Option<PathBuf>,
    max_skew_secs: i64,
}

/// `--name value`, `--name=value` or `RS_NAME`, the command line first.
fn parse_args() -> Result<Args, String> {
    const VALUED: [&str; 11] = [
        "issuer",
        "audience",
        "as-ca",
        "tls-cert",
        "tls-key",
        "client-ca",
        "listen",
        "jwks-uri",
        "as-client-cert",
        "as-client-key",
        "max-skew-secs",
    ];
    let mut given: Vec<(String, String)> = Vec::new();
    let mut argv = std::env::args().skip(1);
    while let Some(arg) = argv.next() {
        let Some(name) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}\n{USAGE}"));
        };
        let (name, value) = match name.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None if name == "discover" => (name.to_owned(), "1".to_owned()),
            None => {
                let v = argv.next().ok_or_else(|| format!("--{name} needs a value"))?;
                (name.to_owned(), v)
            }
        };
        if !VALUED.contains(&name.as_str()) && name != "discover" {
            return Err(format!("unknown option --{name}\n{USAGE}"));
        }
        given.push((name, value));
    }
    let get = |name: &str| -> Option<String> {
        given.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone()).or_else(|| {
            std::env::var(format!("RS_{}", name.to_ascii_uppercase().replace('-', "_"))).ok().filter(|v| !v.is_empty())
        })
    };
    let required = |name: &str| get(name).ok_or_else(|| format!("--{name} is required\n{USAGE}"));
    let issuer = required("issuer")?;
    let discover = get("discover").is_some_and(|v| !matches!(v.as_str(), "0" | "false" | "no"));
    let max_skew_secs = match get("max-skew-secs") {
        None => 60,
        Some(v) => v.parse().map_err(|_| format!("--max-skew-secs: {v:?} is not a number"))?,
    };
    let args = Args {
        audience: required("audience")?,
        as_ca: required("as-ca")?.into(),
        tls_cert: required("tls-cert")?.into(),
        tls_key: required("tls-key")?.into(),
        client_ca: required("client-ca")?.into(),
        listen: get("listen").unwrap_or_else(|| "127.0.0.1:8443".to_owned()),
        jwks_uri: get("jwks-uri"),
        discover,
        as_client_cert: get("as-client-cert").map(PathBuf::from),
        as_client_key: get("as-client-key").map(PathBuf::from),
        max_skew_secs,
        issuer,
    };
    if args.as_client_cert.is_some() != args.as_client_key.is_some() {
        return Err("--as-client-cert and --as-client-key go together".to_owned());
    }
    Ok(args)
}

fn read(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// TLS for this server: its certificate, and a mandatory client certificate chained to the
/// client CA (RFC 8705 binding needs the certificate on every connection).
fn server_tls(args: &Args) -> Result<rustls::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in certs(&args.client_ca)? {
        roots.add(ca).map_err(|e| format!("{}: {e}", args.client_ca.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client CA: {e}"))?;
    let key =
        PrivateKeyDer::from_pem_slice(&read(&args.tls_key)?).map_err(|e| format!("{}: {e}", args.tls_key.display()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&args.tls_cert)?, key)
        .map_err(|e| format!("{}: {e}", args.tls_cert.display()))
}

/// The client for Tessera's JWKS: only the given CA, https only, no redirects, short timeouts.
fn jwks_client(args: &Args) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    for ca in certs(&args.as_ca)? {
        let ca = reqwest::Certificate::from_der(ca.as_ref()).map_err(|e| format!("{}: {e}", args.as_ca.display()))?;
        builder = builder.add_root_certificate(ca);
    }
    if let (Some(cert), Some(key)) = (&args.as_client_cert, &args.as_client_key) {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend(read(key)?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(|e| format!("AS client identity: {e}"))?);
    }
    builder.build().map_err(|e| format!("JWKS client: {e}"))
}

struct PaymentsWrite;
impl ScopeRequirement for PaymentsWrite {
    const SCOPE: &'static str = "payments:write";
}

async fn accounts(auth: Authenticated) -> Result<HttpResponse, RsError> {
    auth.require("accounts:read")?;
    Ok(HttpResponse::Ok().json(json!({
        "accounts": [
            { "account_id": "acc-001", "currency": "EUR", "balance": "1250.00" },
            { "account_id": "acc-002", "currency": "EUR", "balance": "80.15" },
        ],
        "client_id": auth.client_id,
    })))
}

async fn payments(auth: RequireScope<PaymentsWrite>, seq: web::Data<AtomicU64>) -> HttpResponse {
    let n = seq.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Created().json(json!({
        "payment_id": format!("pay-{n:06}"),
        "status": "accepted",
        "client_id": auth.client_id,
    }))
}

async fn run(args: Args) -> Result<(), BoxError> {
    let tls = server_tls(&args)?;
    let client = jwks_client(&args)?;
    let jwks_uri = match (&args.jwks_uri, args.discover) {
        (Some(uri), _) => uri.clone(),
        (None, true) => discover_jwks_uri(&client, &args.issuer).await.map_err(|e| format!("discovery: {e}"))?,
        (None, false) => format!("{}/jwks", args.issuer.trim_end_matches('/')),
    };
    let mut config = ValidatorConfig::new(&args.issuer, &args.audience, &jwks_uri);
    config.max_skew_secs = args.max_skew_secs;
    eprintln!("resource-server: issuer {} audience {} keys from {jwks_uri}", args.issuer, args.audience);
    let validator = web::Data::new(Validator::new(config, client));
    let seq = web::Data::new(AtomicU64::new(1));

    let listener = TcpListener::bind(&args.listen).map_err(|e| format!("listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(validator.clone())
            .app_data(seq.clone())
            .wrap_fn(|req, srv| {
                let line = format!("{} {}", req.method(), req.path());
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    let status = res.status().as_u16();
                    match res.headers().get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) {
                        Some(challenge) => eprintln!("resource-server: {line} -> {status} {challenge}"),
                        None => eprintln!("resource-server: {line} -> {status}"),
                    }
                    Ok(res)
                }
            })
            .route("/accounts", web::get().to(accounts))
            .route("/payments", web::post().to(payments))
    })
    .on_connect(capture_peer_certificate)
    .workers(2)
    .shutdown_timeout(5)
    .listen_rustls_0_23(listener, tls)?
    .run();

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "resource-server: listening on https://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    server.await?;
    Ok(())
}

#[actix_web::main]
async fn main() {
    // rustls needs one process-wide provider; it may already be set (stack-notes §3).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return;
    }
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("resource-server: {msg}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("resource-server: error: {e}");
        std::process::exit(2);
    }
}
