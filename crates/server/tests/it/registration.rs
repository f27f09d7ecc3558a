//! Dynamic client registration end to end (RFC 7591, RFC 7592): the real binary in dev mode, real
//! TLS with the dev client certificates, software statements from `tessera dev
//! software-statement` or signed here with the demo directory's key, and an independent client
//! (`openidconnect`). Checklist items: C.57, D.67-D.73, E.74-E.80.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreApplicationType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreRegisterErrorResponseType, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::registration::{
    AdditionalClientMetadata, AdditionalClientRegistrationResponse, ClientRegistrationError, ClientRegistrationRequest,
};
use openidconnect::{RedirectUrl, RegistrationUrl};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeState};
use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, OsRng, Rng};
use tessera_store::ClientStore;
use tessera_store_diesel::{DieselStore, PoolOptions};
use tessera_testkit::process::run;

use crate::common::*;

/// The dev software statement's default redirect URI.
const REDIRECT: &str = "https://demo-fintech.example/callback";
const DEV_DIRECTORY: &str = "tessera-dev-directory";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `tessera dev software-statement --data-dir D ARGS`: a statement signed by the demo directory.
fn statement(dev: &Dev, args: &[&str]) -> String {
    let data = dev.server.data_dir.to_str().unwrap();
    let mut all = vec!["dev", "software-statement", "--data-dir", data];
    all.extend_from_slice(args);
    let out = run(&bin(), &all, dev.dir.path(), &[]);
    assert!(out.status.success(), "software-statement {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The claims `tessera dev software-statement` would sign, issued now.
fn demo_claims() -> Value {
    json!({
        "iss": DEV_DIRECTORY,
        "iat": now(),
        "jti": OsRng.token(16).unwrap(),
        "software_id": "demo-fintech-client",
        "software_roles": ["AISP", "PISP"],
        "software_redirect_uris": [REDIRECT],
        "org_id": "demo-org-0001",
        "org_name": "Tessera Dev Demo Fintech",
        "org_status": "Active",
    })
}

/// Signs `claims` with the demo directory's private key, as the directory would.
fn sign_as_directory(dev: &Dev, claims: &Value) -> String {
    let path = dev.manifest["directory"]["signing_key_jwk"].as_str().unwrap();
    let jwk = tessera_jose::Jwk::from_bytes(std::fs::read(path).unwrap()).unwrap();
    tessera_jose::sign_with_jwk(SigningAlg::ES256, &jwk, "JWT", claims.as_object().unwrap()).unwrap()
}

/// A status, the headers and the JSON body (Null when empty).
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("status {status}: not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    Reply { status, headers, body }
}

async fn register(c: &reqwest::Client, dev: &Dev, body: &Value) -> Reply {
    send(c.post(dev.server.url("/register")).json(body)).await
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

/// An RFC 6749 §5.2-shaped error with this status and code, a description, and no-store.
fn assert_error(r: &Reply, status: u16, code: &str, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.body);
    assert_eq!(r.body["error"], code, "{context}: {}", r.body);
    let description = r.body["error_description"].as_str().unwrap_or("");
    assert!(!description.is_empty(), "{context}: no error_description in {}", r.body);
    assert_eq!(header(r, "cache-control"), "no-store", "{context}");
}

/// The clients the demo directory's statements registered, read from the server's database
/// through the store (not through the server). Clients dev mode provisions itself (the gateway)
/// are not registrations and are left out.
async fn stored_clients(dev: &Dev) -> Vec<ClientRecord> {
    let url = format!("sqlite://{}", dev.manifest["database"].as_str().unwrap());
    let store = DieselStore::connect(&url, PoolOptions::default()).await.unwrap();
    store.list_clients().await.unwrap().into_iter().filter(|c| c.directory == DEV_DIRECTORY).collect()
}

fn without(v: &Value, members: &[&str]) -> Value {
    let mut v = v.clone();
    for m in members {
        v.as_object_mut().unwrap().remove(*m);
    }
    v
}

/// RFC 7591 §3.2.1, checklist D.71/D.73/E.74: the success response, as a manual run showed it.
#[tokio::test]
async fn register_happy_path() {
    let dev = Dev::start(&[]);
    let c = dev.client_as("client");
    let ssa = statement(&dev, &[]);
    let before = now();
    let r = register(&c, &dev, &json!({ "software_statement": ssa, "scope": "accounts:read payments:write" })).await;
    let after = now();
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(header(&r, "pragma"), "no-cache");
    assert_eq!(header(&r, "content-type"), "application/json");
    let b = &r.body;

    let id = b["client_id"].as_str().unwrap();
    assert!(!id.is_empty() && id.len() <= 36, "{id}");
    let token = b["registration_access_token"].as_str().unwrap();
    // FAPI2 5.4.1-4: at least 128 bits of entropy.
    assert!(URL_SAFE_NO_PAD.decode(token).unwrap().len() >= 16, "{token}");
    assert_eq!(b["registration_client_uri"], dev.server.url(&format!("/register/{id}")));
    let issued_at = b["client_id_issued_at"].as_i64().unwrap();
    assert!((before..=after).contains(&issued_at), "{issued_at}");
    assert!(b.get("client_secret").is_none(), "no secret is issued");

    // The policy: read-only granted, payments wait for review.
    assert_eq!(b["scope"], "accounts:read");
    assert_eq!(b["pending_scopes"], json!(["payments:write"]));
    // The server chose the subject of the certificate used to register (RFC 8705 §2.1.2).
    assert_eq!(b["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(b["tls_client_auth_subject_dn"], dev.manifest["client"]["subject"]);
    assert_eq!(
        b["tls_client_auth_subject_dn"],
        "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB"
    );
    assert_eq!(b["tls_client_certificate_bound_access_tokens"], true);
    // RFC 7591 §3.1.1 / §3.2.1: the statement's values, and the statement itself unchanged.
    assert_eq!(b["software_statement"], ssa.as_str());
    assert_eq!(b["software_id"], "demo-fintech-client");
    assert_eq!(b["client_name"], "demo-fintech-client (demo)");
    assert_eq!(b["redirect_uris"], json!([REDIRECT]));
    assert_eq!(b["grant_types"], json!(["client_credentials"]));

    // Discovery names the endpoint (RFC 8414 §2).
    let doc = get_json(&dev.client(), &dev.server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(doc["registration_endpoint"], dev.server.url("/register"));

    // The database holds the client; the registration access token only as a hash.
    let clients = stored_clients(&dev).await;
    assert_eq!(clients.len(), 1);
    let stored = &clients[0];
    assert_eq!(stored.client_id.as_str(), id);
    assert_eq!(stored.status, ClientStatus::Active);
    assert_eq!(stored.org_id, "demo-org-0001");
    assert_eq!(stored.directory, DEV_DIRECTORY);
    assert_ne!(stored.registration_token_hash, token);
    let scopes: Vec<(&str, ScopeState)> = stored.scopes.iter().map(|g| (g.scope.as_str(), g.state)).collect();
    assert_eq!(scopes, [("accounts:read", ScopeState::Granted), ("payments:write", ScopeState::PendingReview)]);
    let db = std::path::PathBuf::from(dev.manifest["database"].as_str().unwrap());
    for file in [db.clone(), db.with_extension("db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(!String::from_utf8_lossy(&bytes).contains(token), "token in clear in {}", file.display());
        }
    }
}

// --- the same registration through openidconnect's registration types -------------------------

/// The request members openidconnect does not model: the statement and the scope.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StatementMetadata {
    software_statement: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}
impl AdditionalClientMetadata for StatementMetadata {}

/// Response members beyond RFC 7591 / OIDC Registration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct TesseraResponse {
    #[serde(default)]
    pending_scopes: Vec<String>,
    #[serde(default)]
    tls_client_auth_subject_dn: Option<String>,
    #[serde(default)]
    tls_client_certificate_bound_access_tokens: Option<bool>,
}
impl AdditionalClientRegistrationResponse for TesseraResponse {}

type Registration = ClientRegistrationRequest<
    StatementMetadata,
    TesseraResponse,
    CoreApplicationType,
    CoreClientAuthMethod,
    CoreRegisterErrorResponseType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A reqwest 0.12 client as openidconnect takes it: the dev CA only, the demo client identity,
/// no redirects (stack notes §5), aws-lc-rs installed as the process provider (§3).
fn oidc_http_client(dev: &Dev) -> openidconnect::reqwest::Client {
    tessera_testkit::init_crypto();
    let cert = std::fs::read_to_string(dev.manifest["client"]["cert"].as_str().unwrap()).unwrap();
    let key = std::fs::read_to_string(dev.manifest["client"]["key"].as_str().unwrap()).unwrap();
    openidconnect::reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(openidconnect::reqwest::Certificate::from_pem(&dev.ca).unwrap())
        .identity(openidconnect::reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap())
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn oidc_request(ssa: &str, redirect: &str) -> Registration {
    Registration::new(
        vec![RedirectUrl::new(redirect.to_owned()).unwrap()],
        StatementMetadata { software_statement: ssa.to_owned(), scope: Some("accounts:read payments:write".into()) },
    )
    .set_token_endpoint_auth_method(Some(CoreClientAuthMethod::Extension("tls_client_auth".into())))
    .set_grant_types(Some(vec![CoreGrantType::ClientCredentials]))
}

#[tokio::test]
async fn register_with_the_openidconnect_client() {
    let dev = Dev::start(&[]);
    let http = oidc_http_client(&dev);
    // The endpoint as discovery publishes it.
    let doc = get_json(&dev.client(), &dev.server.url("/.well-known/openid-configuration")).await;
    let endpoint = RegistrationUrl::new(doc["registration_endpoint"].as_str().unwrap().to_owned()).unwrap();
    let ssa = statement(&dev, &[]);

    let response = oidc_request(&ssa, REDIRECT).register_async(&endpoint, &http).await.unwrap();
    let id = response.client_id().as_str().to_owned();
    assert!(!id.is_empty() && id.len() <= 36, "{id}");
    assert!(response.client_secret().is_none());
    assert!(response.client_secret_expires_at().is_none());
    assert!(response.client_id_issued_at().is_some());
    let token = response.registration_access_token().unwrap().secret().clone();
    assert!(URL_SAFE_NO_PAD.decode(&token).unwrap().len() >= 16);
    assert_eq!(response.registration_client_uri().unwrap().as_str(), dev.server.url(&format!("/register/{id}")));
    assert_eq!(response.redirect_uris(), &vec![RedirectUrl::new(REDIRECT.into()).unwrap()]);
    assert_eq!(response.grant_types(), Some(&vec![CoreGrantType::ClientCredentials]));
    assert_eq!(response.token_endpoint_auth_method(), Some(&CoreClientAuthMethod::Extension("tls_client_auth".into())));
    assert_eq!(response.application_type(), Some(&CoreApplicationType::Web));
    assert_eq!(response.additional_metadata().software_statement, ssa, "returned unchanged");
    assert_eq!(response.additional_metadata().scope.as_deref(), Some("accounts:read"));
    let extra = response.additional_response();
    assert_eq!(extra.pending_scopes, ["payments:write"]);
    assert_eq!(extra.tls_client_auth_subject_dn.as_deref(), dev.manifest["client"]["subject"].as_str());
    assert_eq!(extra.tls_client_certificate_bound_access_tokens, Some(true));

    // RFC 7591 errors as the library sees them: 400 with the registered codes.
    let replay = oidc_request(&ssa, REDIRECT).register_async(&endpoint, &http).await.unwrap_err();
    match replay {
        ClientRegistrationError::ServerResponse(e) => {
            assert_eq!(e.error(), &CoreRegisterErrorResponseType::Extension("invalid_software_statement".into()));
            assert!(e.error_description().is_some_and(|d| d.contains("already used")), "{e:?}");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    let fresh = statement(&dev, &[]);
    let bad = oidc_request(&fresh, "https://evil.example/callback").register_async(&endpoint, &http).await.unwrap_err();
    match bad {
        ClientRegistrationError::ServerResponse(e) => {
            assert_eq!(e.error(), &CoreRegisterErrorResponseType::InvalidRedirectUri);
        }
        other => panic!("expected a server error, got {other:?}"),
    }
    assert_eq!(stored_clients(&dev).await.len(), 1);
}

/// RFC 7591 §3.2.2, checklist D.72: every error code over the wire, 400, with a description;
/// nothing stored.
#[tokio::test]
async fn each_registration_error_over_the_wire() {
    let dev = Dev::start(&[]);
    let c = dev.client_as("client");
    let replayed = statement(&dev, &[]);
    let first = register(&c, &dev, &json!({ "software_statement": replayed })).await;
    assert_eq!(first.status, 201, "{}", first.body);

    let impostor = tessera_jose::generate(SigningAlg::ES256, KeyId::new("dev-directory-1")).unwrap();
    let forged = tessera_jose::sign_with_jwk(
        SigningAlg::ES256,
        &impostor.private_jwk,
        "JWT",
        demo_claims().as_object().unwrap(),
    )
    .unwrap();
    let mut rogue = demo_claims();
    rogue["iss"] = json!("https://rogue-directory.example");

    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "redirect URI outside the statement",
            json!({ "software_statement": statement(&dev, &[]), "redirect_uris": ["https://evil.example/callback"] }),
            "invalid_redirect_uri",
            "software_redirect_uris",
        ),
        (
            "client_secret_basic",
            json!({ "software_statement": statement(&dev, &[]), "token_endpoint_auth_method": "client_secret_basic" }),
            "invalid_client_metadata",
            "client_secret_basic",
        ),
        (
            "scope outside the roles",
            json!({ "software_statement": statement(&dev, &[]), "scope": "fundsconfirmations:read" }),
            "invalid_client_metadata",
            "not allowed for the software's roles",
        ),
        (
            "bad signature (another key, the directory's kid)",
            json!({ "software_statement": forged }),
            "invalid_software_statement",
            "signature does not verify",
        ),
        (
            "too old",
            json!({ "software_statement": statement(&dev, &["--iat-offset=-3601"]) }),
            "invalid_software_statement",
            "at most 3600 s old",
        ),
        ("replayed", json!({ "software_statement": replayed }), "invalid_software_statement", "already used"),
        (
            "untrusted issuer",
            json!({ "software_statement": sign_as_directory(&dev, &rogue) }),
            "unapproved_software_statement",
            "not a directory this server trusts",
        ),
        (
            "revoked organisation",
            json!({ "software_statement": statement(&dev, &["--org-status", "Revoked"]) }),
            "unapproved_software_statement",
            "Revoked",
        ),
        ("no statement", json!({ "scope": "accounts:read" }), "invalid_software_statement", "required"),
        ("not a JWT", json!({ "software_statement": "hello" }), "invalid_software_statement", "not a signed JWT"),
    ];
    for (name, body, code, says) in &cases {
        let r = register(&c, &dev, body).await;
        assert_error(&r, 400, code, name);
        assert!(r.body["error_description"].as_str().unwrap().contains(says), "{name}: {}", r.body);
    }
    // A body that is not JSON at all.
    let r = send(c.post(dev.server.url("/register")).header("content-type", "application/json").body("{nope")).await;
    assert_error(&r, 400, "invalid_request", "not JSON");

    let clients = stored_clients(&dev).await;
    assert_eq!(clients.len(), 1, "only the first registration is stored");
    assert_eq!(clients[0].client_id.as_str(), first.body["client_id"].as_str().unwrap());
}

/// Checklist D.67, C.57: registration needs a trusted transport certificate of the statement's
/// organisation. Every refusal is 401 invalid_client and stores nothing.
#[tokio::test]
async fn transport_certificate_is_required() {
    let dev = Dev::start(&[]);
    let subject = dev.manifest["client"]["subject"].as_str().unwrap();

    // Self-signed, with exactly the demo client's subject: only the trust is missing.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "GB");
    dn.push(rcgen::DnType::OrganizationName, "Tessera Dev Demo Fintech");
    dn.push(rcgen::DnType::OrganizationalUnitName, "demo-org-0001");
    dn.push(rcgen::DnType::CommonName, "demo-fintech-client");
    params.distinguished_name = dn;
    let self_signed = params.self_signed(&key).unwrap();
    let self_signed = https_client(&dev.ca, Some((&self_signed.pem(), &key.serialize_pem())));

    // Issued by the dev CA, with the demo client's subject, but expired.
    let ca_key = std::fs::read_to_string(dev.manifest["ca"]["key"].as_str().unwrap()).unwrap();
    let (expired_cert, expired_key) = tessera_testkit::pki::client_signed_by(
        dev.manifest["ca"]["subject"].as_str().unwrap(),
        &ca_key,
        subject,
        (2020, 1, 1),
        (2021, 1, 1),
    );
    let expired = https_client(&dev.ca, Some((&expired_cert, &expired_key)));

    let cases = [
        ("no certificate", dev.client(), "no TLS client certificate"),
        ("self-signed certificate", self_signed, "does not trust"),
        ("expired certificate of the trusted CA", expired, "expired"),
        // The dev gateway certificate is trusted but has no OU=demo-org-0001.
        ("certificate of another organisation", dev.client_as("gateway"), "does not belong to organisation"),
    ];
    for (name, client, says) in &cases {
        let r = register(client, &dev, &json!({ "software_statement": statement(&dev, &[]) })).await;
        assert_error(&r, 401, "invalid_client", name);
        assert!(r.body["error_description"].as_str().unwrap().contains(says), "{name}: {}", r.body);
    }
    assert!(stored_clients(&dev).await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn request_size_type_and_method() {
    let dev = Dev::start(&[]);
    let c = dev.client_as("client");
    let url = dev.server.url("/register");

    // registration.max_body_bytes defaults to 64 KiB.
    let big = json!({ "software_statement": statement(&dev, &[]), "padding": "x".repeat(64 * 1024) });
    let r = register(&c, &dev, &big).await;
    assert_error(&r, 413, "invalid_request", "64 KiB body");

    let r = send(c.post(&url).header("content-type", "text/plain").body("{}")).await;
    assert_error(&r, 415, "invalid_request", "text/plain");
    let r = send(c.post(&url).body(json!({ "software_statement": statement(&dev, &[]) }).to_string())).await;
    assert_error(&r, 415, "invalid_request", "no content type");
    let r = send(c.post(&url).header("content-type", "application/x-www-form-urlencoded").body("a=b")).await;
    assert_error(&r, 415, "invalid_request", "form");

    let r = send(c.get(&url)).await;
    assert_error(&r, 405, "invalid_request", "GET /register");
    let r = send(c.put(&url).json(&json!({}))).await;
    assert_error(&r, 405, "invalid_request", "PUT /register");
    let r = send(c.post(format!("{url}/some-client")).json(&json!({}))).await;
    assert_error(&r, 405, "invalid_request", "POST /register/{id}");

    assert!(stored_clients(&dev).await.is_empty());
}

/// RFC 7592, checklist E.74-E.80: read, update (Brazil OIDF style: the response sent back as the
/// body), add a scope, refusals, delete.
#[tokio::test]
async fn client_management_lifecycle() {
    let dev = Dev::start(&[]);
    let c = dev.client_as("client");
    let reg = register(
        &c,
        &dev,
        &json!({ "software_statement": statement(&dev, &[]), "scope": "accounts:read payments:write" }),
    )
    .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let uri = reg.body["registration_client_uri"].as_str().unwrap().to_owned();
    let token = reg.body["registration_access_token"].as_str().unwrap().to_owned();
    let id = reg.body["client_id"].as_str().unwrap().to_owned();

    // §2.1 read: 200, the registered metadata, no new token.
    let read = send(c.get(&uri).bearer_auth(&token)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(header(&read, "cache-control"), "no-store");
    assert_eq!(read.body, without(&reg.body, &["registration_access_token"]));

    // §2.2 update with the registration response as the body (it carries
    // registration_access_token, registration_client_uri, client_id_issued_at): nothing changes.
    let put = send(c.put(&uri).bearer_auth(&token).json(&reg.body)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(header(&put, "cache-control"), "no-store");
    assert_eq!(put.body, read.body);
    assert_eq!(put.body["client_id"], id.as_str(), "client_id never changes");
    assert_eq!(put.body["pending_scopes"], json!(["payments:write"]), "the scope under review is kept");

    // Adding a read-only scope: the policy grants it.
    let mut body = reg.body.clone();
    body["scope"] = json!("accounts:read balances:read");
    let put = send(c.put(&uri).bearer_auth(&token).json(&body)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.body["scope"], "accounts:read balances:read");
    assert_eq!(put.body["pending_scopes"], json!(["payments:write"]));
    let read = send(c.get(&uri).bearer_auth(&token)).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body, put.body);

    // An invalid update is an RFC 7591 error (400), and changes nothing.
    let mut body = reg.body.clone();
    body["redirect_uris"] = json!(["https://evil.example/callback"]);
    let r = send(c.put(&uri).bearer_auth(&token).json(&body)).await;
    assert_error(&r, 400, "invalid_redirect_uri", "bad redirect on update");
    let mut body = reg.body.clone();
    body["client_id"] = json!("another-client");
    let r = send(c.put(&uri).bearer_auth(&token).json(&body)).await;
    assert_error(&r, 400, "invalid_client_metadata", "client_id mismatch");

    // §2 / checklist E.79: refusals.
    let wrong = send(c.get(&uri).bearer_auth("not-the-token")).await;
    assert_error(&wrong, 401, "invalid_token", "wrong token");
    assert_eq!(header(&wrong, "www-authenticate"), "Bearer error=\"invalid_token\"");
    let r = send(c.get(&uri)).await;
    assert_error(&r, 401, "invalid_token", "no token");
    let r = send(c.get(dev.server.url("/register/no-such-client")).bearer_auth(&token)).await;
    assert_error(&r, 401, "invalid_token", "unknown client");
    let r = send(dev.client().get(&uri).bearer_auth(&token)).await;
    assert_error(&r, 401, "invalid_client", "no certificate");
    let r = send(dev.client_as("gateway").get(&uri).bearer_auth(&token)).await;
    assert_error(&r, 401, "invalid_client", "another organisation's certificate");
    let r = send(c.put(&uri).bearer_auth("not-the-token").json(&reg.body)).await;
    assert_error(&r, 401, "invalid_token", "update with a wrong token");
    let r = send(c.delete(&uri).bearer_auth("not-the-token")).await;
    assert_error(&r, 401, "invalid_token", "delete with a wrong token");
    assert_eq!(send(c.get(&uri).bearer_auth(&token)).await.status, 200, "still registered");

    // §2.3 delete: 204, then the client and its token are gone (checklist E.78, E.80).
    let del = send(c.delete(&uri).bearer_auth(&token)).await;
    assert_eq!(del.status, 204, "{}", del.body);
    assert_eq!(del.body, Value::Null);
    let r = send(c.get(&uri).bearer_auth(&token)).await;
    assert_error(&r, 401, "invalid_token", "read after delete");
    let r = send(c.put(&uri).bearer_auth(&token).json(&reg.body)).await;
    assert_error(&r, 401, "invalid_token", "update after delete");
    let r = send(c.delete(&uri).bearer_auth(&token)).await;
    assert_error(&r, 401, "invalid_token", "delete after delete");
    let clients = stored_clients(&dev).await;
    assert_eq!(clients.len(), 1, "kept for the inventory");
    assert_eq!(clients[0].status, ClientStatus::Offboarded);
}

/// The registration is durable: a new process on the same data directory serves it.
#[tokio::test]
async fn registration_survives_a_restart() {
    let mut dev = Dev::start(&[]);
    let reg = register(&dev.client_as("client"), &dev, &json!({ "software_statement": statement(&dev, &[]) })).await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let id = reg.body["client_id"].as_str().unwrap().to_owned();
    let token = reg.body["registration_access_token"].as_str().unwrap().to_owned();

    let data = dev.server.data_dir.clone();
    dev.server.kill();
    dev.server = Tessera::start_dev(&bin(), &data, &[]);
    // A new ephemeral port, so a new issuer: the path is the same.
    let read = send(dev.client_as("client").get(dev.server.url(&format!("/register/{id}"))).bearer_auth(&token)).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["client_id"], id.as_str());
    assert_eq!(read.body["software_statement"], reg.body["software_statement"]);
    assert_eq!(read.body["scope"], reg.body["scope"]);
    assert_eq!(read.body["pending_scopes"], reg.body["pending_scopes"]);
    assert_eq!(read.body["registration_client_uri"], dev.server.url(&format!("/register/{id}")));
    let r = send(dev.client_as("client").get(dev.server.url(&format!("/register/{id}"))).bearer_auth("wrong")).await;
    assert_error(&r, 401, "invalid_token", "wrong token after restart");
}
