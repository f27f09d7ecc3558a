//! UK Open Banking DCR v3.3 end to end (`registration.profile = "uk_open_banking"`): the real
//! binary in dev mode, real TLS with the dev client certificates, software statements signed here
//! with the demo directory's key, registration requests signed here with the software's own key
//! (tessera-jose, and josekit directly for what tessera-jose refuses to make), and a tiny HTTPS
//! server of this test's own PKI serving a `software_jwks_endpoint`.
//!
//! Checklist items: O.125-O.131 (UK DCR v3.3 and the OB Directory statement), S.3/S.4.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_core::client::{ClientRecord, ClientStatus};
use tessera_core::keys::SigningAlg;
use tessera_core::{KeyId, OsRng, Rng};
use tessera_store::ClientStore;
use tessera_store_diesel::{DieselStore, PoolOptions};
use tessera_testkit::pki::{Issued, TestPki, client_signed_by};
use tessera_testkit::process::init_crypto;

use crate::common::*;

const DEV_DIRECTORY: &str = "tessera-dev-directory";
const SOFTWARE_ID: &str = "demo-fintech-client";
const ORG_ID: &str = "demo-org-0001";
const REDIRECT: &str = "https://demo-fintech.example/callback";
/// An OB Directory organisation id, the `aud` a UK ASPSP is usually configured to accept.
const ASPSP_DIRECTORY_ID: &str = "0015800001041REbAAM";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random UUIDv4, as UK DCR asks for the request `jti`.
fn uuid_v4() -> String {
    let mut b = URL_SAFE_NO_PAD.decode(OsRng.token(16).unwrap()).unwrap();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Dev mode in the UK profile, with `env` on top.
fn uk_dev(env: &[(&str, &str)]) -> Dev {
    let mut all = vec![("TESSERA_REGISTRATION__PROFILE", "uk_open_banking")];
    all.extend_from_slice(env);
    Dev::start(&all)
}

/// `claims` with `changes` applied; a `null` change removes the claim.
fn with(claims: &Value, changes: Value) -> Value {
    let mut c = claims.clone();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

// --- keys, statements and requests -------------------------------------------------------------

/// The software's signing key (what the TPP holds), made with tessera-jose.
struct SoftwareKey {
    alg: SigningAlg,
    private: tessera_jose::Jwk,
    public: Value,
}

impl SoftwareKey {
    fn new(alg: SigningAlg, kid: &str) -> SoftwareKey {
        let km = tessera_jose::generate(alg, KeyId::new(kid)).unwrap();
        SoftwareKey { alg, private: km.private_jwk, public: Value::Object(km.public_jwk.as_ref().clone()) }
    }

    fn jwks(&self) -> Value {
        json!({ "keys": [self.public] })
    }

    fn sign(&self, claims: &Value) -> String {
        tessera_jose::sign_with_jwk(self.alg, &self.private, "JWT", claims.as_object().unwrap()).unwrap()
    }
}

/// A compact JWS with exactly `header`, signed by `signer` (josekit directly, so headers and
/// algorithms tessera-jose would never produce can be sent).
fn sign_raw(header: &Value, claims: &Value, signer: &dyn josekit::jws::JwsSigner) -> String {
    let input = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
    let signature = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64url(&signature))
}

/// The claims of an OB Directory statement for the demo software (checklist O.130), issued now;
/// `keys` names the software's keys (`software_jwks` or `software_jwks_endpoint`).
fn ssa_claims(keys: Value) -> Value {
    let mut c = json!({
        "iss": DEV_DIRECTORY,
        "iat": now(),
        "jti": uuid_v4(),
        "software_id": SOFTWARE_ID,
        "software_client_id": SOFTWARE_ID,
        "software_client_name": "Demo Fintech AIS",
        "software_client_description": "Account information for the demo fintech",
        "software_version": "1.0",
        "software_environment": "sandbox",
        "software_mode": "Test",
        "software_roles": ["AISP"],
        "software_redirect_uris": [REDIRECT],
        "org_id": ORG_ID,
        "org_name": "Tessera Dev Demo Fintech",
        "org_status": "Active",
        "organisation_competent_authority_claims": {
            "authority_id": "FCAGBR",
            "registration_id": "123456",
            "status": "Active",
            "authorisations": [{ "member_state": "GB", "roles": ["AISP"] }]
        },
    });
    for (k, v) in keys.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Signs `claims` with the demo directory's private key, as the directory would.
fn sign_as_directory(dev: &Dev, claims: &Value) -> String {
    let path = dev.manifest["directory"]["signing_key_jwk"].as_str().unwrap();
    let jwk = tessera_jose::Jwk::from_bytes(std::fs::read(path).unwrap()).unwrap();
    tessera_jose::sign_with_jwk(SigningAlg::ES256, &jwk, "JWT", claims.as_object().unwrap()).unwrap()
}

/// A fresh statement naming `key` by value.
fn embedded_ssa(dev: &Dev, key: &SoftwareKey) -> String {
    sign_as_directory(dev, &ssa_claims(json!({ "software_jwks": key.jwks() })))
}

/// The claims of a UK DCR v3.3 registration request (checklist O.126), valid for five minutes,
/// for `aud` (the issuer unless the server is configured otherwise).
fn request_claims(dev: &Dev, aud: &str, ssa: &str) -> Value {
    let now = now();
    json!({
        "iss": SOFTWARE_ID,
        "aud": aud,
        "iat": now,
        "exp": now + 300,
        "jti": uuid_v4(),
        "software_id": SOFTWARE_ID,
        "software_statement": ssa,
        "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": dev.manifest["client"]["subject"],
        "grant_types": ["client_credentials"],
        "scope": "accounts:read",
        "redirect_uris": [REDIRECT],
        "application_type": "web",
        "id_token_signed_response_alg": "PS256",
        "request_object_signing_alg": "PS256",
    })
}

// --- certificates ------------------------------------------------------------------------------

/// The DER of the first certificate in a PEM text.
fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
}

impl Cert {
    fn dev(dev: &Dev, who: &str) -> Cert {
        let pem = std::fs::read_to_string(dev.manifest[who]["cert"].as_str().unwrap()).unwrap();
        let key = std::fs::read_to_string(dev.manifest[who]["key"].as_str().unwrap()).unwrap();
        let der = pem_to_der(&pem);
        Cert { pem, key, der }
    }

    /// Another certificate of the dev CA with exactly `subject` (another key, another thumbprint).
    fn from_dev_ca(dev: &Dev, subject: &str) -> Cert {
        let ca_subject = dev.manifest["ca"]["subject"].as_str().unwrap();
        let ca_key = std::fs::read_to_string(dev.manifest["ca"]["key"].as_str().unwrap()).unwrap();
        let year = 1970 + (now() / 31_556_952) as i32;
        let (pem, key) = client_signed_by(ca_subject, &ca_key, subject, (year - 1, 1, 1), (year + 2, 1, 1));
        let der = pem_to_der(&pem);
        Cert { pem, key, der }
    }

    fn client(&self, dev: &Dev) -> reqwest::Client {
        https_client(&dev.ca, Some((&self.pem, &self.key)))
    }

    /// RFC 8705 §3.1: base64url(SHA-256(DER)).
    fn x5t(&self) -> String {
        b64url(&Sha256::digest(&self.der))
    }
}

// --- HTTP --------------------------------------------------------------------------------------

/// A status, the headers and the JSON body (Null when empty).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }
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

/// `POST /register` with a body of media type `media`.
async fn post_register(c: &reqwest::Client, dev: &Dev, media: &str, body: &str) -> Reply {
    send(c.post(dev.server.url("/register")).header("content-type", media).body(body.to_owned())).await
}

/// `PUT /register/{id}` with a signed request and `bearer`.
async fn put_register(c: &reqwest::Client, dev: &Dev, id: &str, bearer: &str, media: &str, body: &str) -> Reply {
    let url = dev.server.url(&format!("/register/{id}"));
    send(c.put(url).bearer_auth(bearer).header("content-type", media).body(body.to_owned())).await
}

async fn get_register(c: &reqwest::Client, dev: &Dev, id: &str, bearer: Option<&str>) -> Reply {
    let mut req = c.get(dev.server.url(&format!("/register/{id}")));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    send(req).await
}

async fn delete_register(c: &reqwest::Client, dev: &Dev, id: &str, bearer: &str) -> Reply {
    send(c.delete(dev.server.url(&format!("/register/{id}"))).bearer_auth(bearer)).await
}

/// An error response (checklist O.131): this status and code, a description saying `says`, JSON,
/// and not cached.
fn assert_error(r: &Reply, status: u16, code: &str, says: &str, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.body);
    assert_eq!(r.body["error"], code, "{context}: {}", r.body);
    let description = r.body["error_description"].as_str().unwrap_or("");
    assert!(description.contains(says), "{context}: {description:?} does not say {says:?}");
    assert!(r.header("content-type").starts_with("application/json"), "{context}: {:?}", r.headers);
    assert_eq!(r.header("cache-control"), "no-store", "{context}");
    assert!(r.body.get("client_id").is_none(), "{context}: {}", r.body);
}

/// RFC 7592 §2 / RFC 6750 §3: 401 invalid_token with a Bearer challenge.
fn assert_unauthorised(r: &Reply, context: &str) {
    assert_error(r, 401, "invalid_token", "", context);
    assert_eq!(r.header("www-authenticate"), "Bearer error=\"invalid_token\"", "{context}");
}

/// A client-credentials access token for `client_id`, authenticated by `http`'s certificate.
async fn access_token(http: &reqwest::Client, dev: &Dev, client_id: &str) -> String {
    let form = [("grant_type", "client_credentials"), ("client_id", client_id)];
    let r = send(http.post(dev.server.url("/token")).form(&form)).await;
    assert_eq!(r.status, 200, "token for {client_id}: {}", r.body);
    r.body["access_token"].as_str().unwrap().to_owned()
}

/// The claims of a JWT, unverified (the server's signature is checked elsewhere).
fn claims_of(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// The clients the demo directory's statements registered, read straight from the database.
async fn stored_clients(dev: &Dev) -> Vec<ClientRecord> {
    let url = format!("sqlite://{}", dev.manifest["database"].as_str().unwrap());
    let store = DieselStore::connect(&url, PoolOptions::default()).await.unwrap();
    store.list_clients().await.unwrap().into_iter().filter(|c| c.directory == DEV_DIRECTORY).collect()
}

// --- a software's JWKS over TLS ----------------------------------------------------------------

/// An HTTPS server (rustls, a certificate of this test's own CA) serving JSON documents by path,
/// counting the requests for each.
struct JwksHost {
    base: String,
    hits: Arc<std::sync::Mutex<BTreeMap<String, usize>>>,
    connections: Arc<AtomicUsize>,
}

impl JwksHost {
    fn start(cert: &Issued, documents: BTreeMap<String, Value>) -> JwksHost {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        init_crypto();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes()).map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let hits = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let documents = Arc::new(documents);
        let (h, n) = (hits.clone(), connections.clone());
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                n.fetch_add(1, Ordering::SeqCst);
                let (config, documents, hits) = (config.clone(), documents.clone(), h.clone());
                std::thread::spawn(move || {
                    let _ = answer(tcp, config, &documents, &hits);
                });
            }
        });
        JwksHost { base, hits, connections }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// One HTTP/1.1 exchange over TLS, then close.
fn answer(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    documents: &BTreeMap<String, Value>,
    hits: &std::sync::Mutex<BTreeMap<String, usize>>,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let (status, body) = match documents.get(&path) {
        Some(doc) => ("200 OK", doc.to_string()),
        None => ("404 Not Found", "{}".to_owned()),
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.conn.send_close_notify();
    tls.flush()
}

// --- tests -------------------------------------------------------------------------------------

/// Checklist O.125-O.127, O.130: a request JWT signed by the software's key (named by value in
/// the statement's `software_jwks`), ES256 and PS256, `application/jose` and `application/jwt`.
/// The response repeats the request's claims, flattens the statement's claims to the top level,
/// and the client then gets certificate-bound client-credentials tokens.
#[tokio::test]
async fn uk_registration_with_embedded_software_jwks() {
    let dev = uk_dev(&[]);
    let c = dev.client_as("client");
    let subject = dev.manifest["client"]["subject"].as_str().unwrap();

    // O.125: the registration endpoint is advertised.
    let doc = get_json(&dev.client(), &dev.server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(doc["registration_endpoint"], dev.server.url("/register"));
    assert_eq!(doc["issuer"], dev.server.base());

    let key = SoftwareKey::new(SigningAlg::ES256, "software-es256");
    let ssa = embedded_ssa(&dev, &key);
    let request = request_claims(&dev, dev.server.base(), &ssa);
    let r = post_register(&c, &dev, "application/jose", &key.sign(&request)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(r.header("content-type").starts_with("application/json"), "{:?}", r.headers);
    let b = &r.body;

    // The registration itself.
    let id = b["client_id"].as_str().unwrap();
    assert!(!id.is_empty() && id.len() <= 36, "{id}");
    assert_eq!(b["scope"], "accounts:read");
    assert_eq!(b["registration_client_uri"], dev.server.url(&format!("/register/{id}")));
    assert!(b.get("client_secret").is_none(), "no secret is issued: {b}");
    // O.127: the request's claims are repeated.
    assert_eq!(b["software_statement"], ssa.as_str());
    assert_eq!(b["software_id"], SOFTWARE_ID);
    assert_eq!(b["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(b["tls_client_auth_subject_dn"], subject);
    assert_eq!(b["grant_types"], json!(["client_credentials"]));
    assert_eq!(b["redirect_uris"], json!([REDIRECT]));
    assert_eq!(b["application_type"], "web");
    assert_eq!(b["id_token_signed_response_alg"], "PS256");
    assert_eq!(b["request_object_signing_alg"], "PS256");
    // O.127: the statement's claims, flattened to the top level.
    assert_eq!(b["org_id"], ORG_ID);
    assert_eq!(b["org_name"], "Tessera Dev Demo Fintech");
    assert_eq!(b["org_status"], "Active");
    assert_eq!(b["software_roles"], json!(["AISP"]));
    assert_eq!(b["software_client_name"], "Demo Fintech AIS");
    assert_eq!(b["software_mode"], "Test");
    assert_eq!(b["software_environment"], "sandbox");
    assert_eq!(b["software_redirect_uris"], json!([REDIRECT]));
    assert_eq!(b["software_jwks"], key.jwks());
    assert_eq!(b["organisation_competent_authority_claims"]["authority_id"], "FCAGBR");
    // The statement's own JWT envelope is not presented as the registration's.
    assert_ne!(b["jti"], claims_of(&ssa)["jti"], "{b}");
    assert_ne!(b["iss"], DEV_DIRECTORY, "{b}");

    // The stored client.
    let stored = stored_clients(&dev).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].client_id.as_str(), id);
    assert_eq!((stored[0].org_id.as_str(), stored[0].software_id.as_str()), (ORG_ID, SOFTWARE_ID));
    assert_eq!(stored[0].status, ClientStatus::Active);

    // The client works: a client-credentials token bound to the certificate.
    let token = access_token(&c, &dev, id).await;
    let claims = claims_of(&token);
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["scope"], "accounts:read");
    assert_eq!(claims["cnf"]["x5t#S256"], Cert::dev(&dev, "client").x5t());

    // PS256 (a 3072-bit RSA key) and the application/jwt media type.
    let ps = SoftwareKey::new(SigningAlg::PS256, "software-ps256");
    let ssa = embedded_ssa(&dev, &ps);
    let request =
        with(&request_claims(&dev, dev.server.base(), &ssa), json!({ "scope": "accounts:read balances:read" }));
    let r = post_register(&c, &dev, "application/jwt", &ps.sign(&request)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["scope"], "accounts:read balances:read");
    assert_ne!(r.body["client_id"], id);
    // Media type parameters are allowed; no tls_client_auth_subject_dn: the server picks the
    // subject of the certificate used to register (RFC 8705 §2.1.2).
    let ssa = embedded_ssa(&dev, &key);
    let request = with(&request_claims(&dev, dev.server.base(), &ssa), json!({ "tls_client_auth_subject_dn": null }));
    let r = post_register(&c, &dev, "application/jose; charset=utf-8", &key.sign(&request)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["tls_client_auth_subject_dn"], subject);
    assert_eq!(stored_clients(&dev).await.len(), 3);
}

/// Checklist O.126, O.129-O.131: every refusal is a 400 JSON error and stores nothing.
#[tokio::test]
async fn uk_registration_refusals() {
    let dev = uk_dev(&[]);
    let c = dev.client_as("client");
    let key = SoftwareKey::new(SigningAlg::ES256, "software-key");
    // An RSA-2048 key whose public half is among the software's keys, without `alg`, so only
    // the algorithm rule can refuse an RS256 signature made with it.
    let rsa = josekit::jws::RS256.generate_key_pair(2048).unwrap();
    let rsa_public = rsa.to_jwk_public_key();
    let rsa_public = json!({
        "kty": "RSA", "kid": "software-rsa", "use": "sig",
        "n": rsa_public.parameter("n").unwrap(), "e": rsa_public.parameter("e").unwrap(),
    });
    let jwks = json!({ "keys": [key.public, rsa_public] });
    let ssa = sign_as_directory(&dev, &ssa_claims(json!({ "software_jwks": jwks })));
    let good = request_claims(&dev, dev.server.base(), &ssa);
    let now = now();

    // Signatures the software's keys must not accept.
    let rs256 = {
        let signer = josekit::jws::RS256.signer_from_der(rsa.to_der_private_key()).unwrap();
        sign_raw(&json!({ "alg": "RS256", "typ": "JWT", "kid": "software-rsa" }), &good, &signer)
    };
    let none = format!(
        "{}.{}.",
        b64url(json!({ "alg": "none", "typ": "JWT" }).to_string().as_bytes()),
        b64url(good.to_string().as_bytes())
    );
    let impostor = SoftwareKey::new(SigningAlg::ES256, "software-key");
    let stranger = SoftwareKey::new(SigningAlg::ES256, "stranger");
    // O.129: a key carried in the request's own header is not a key of the software.
    let embedded_jwk = {
        let kp = josekit::jws::ES256.generate_key_pair().unwrap();
        let public = Value::Object(kp.to_jwk_public_key().as_ref().clone());
        let signer = josekit::jws::ES256.signer_from_der(kp.to_der_private_key()).unwrap();
        sign_raw(&json!({ "alg": "ES256", "typ": "JWT", "jwk": public }), &good, &signer)
    };
    let tampered = {
        let signed = key.sign(&good);
        let parts: Vec<&str> = signed.split('.').collect();
        let forged = with(&good, json!({ "scope": "accounts:read payments:write" }));
        format!("{}.{}.{}", parts[0], b64url(forged.to_string().as_bytes()), parts[2])
    };
    let statement = |changes: Value| {
        let ssa = sign_as_directory(&dev, &with(&ssa_claims(json!({ "software_jwks": key.jwks() })), changes));
        key.sign(&with(&good, json!({ "software_statement": ssa })))
    };
    let self_signed_statement = {
        let ssa = key.sign(&with(&ssa_claims(json!({ "software_jwks": key.jwks() })), json!({ "iss": SOFTWARE_ID })));
        key.sign(&with(&good, json!({ "software_statement": ssa })))
    };
    // UK DCR v3.3 lets an ASPSP accept unsigned statements; FAPI 2.0 does not (O.129, S.3).
    let unsigned_statement = {
        let claims = ssa_claims(json!({ "software_jwks": key.jwks() }));
        let ssa = format!(
            "{}.{}.",
            b64url(json!({ "alg": "none", "typ": "JWT" }).to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        key.sign(&with(&good, json!({ "software_statement": ssa })))
    };
    let signed = |changes: Value| key.sign(&with(&good, changes));

    let cases: Vec<(&str, String, &str, &str)> = vec![
        // O.126, O.131: expired.
        (
            "expired request JWT",
            signed(json!({ "iat": now - 600, "exp": now - 60 })),
            "invalid_client_metadata",
            "expired",
        ),
        ("request JWT expiring now", signed(json!({ "exp": now - 1 })), "invalid_client_metadata", "expired"),
        ("no exp", signed(json!({ "exp": null })), "invalid_client_metadata", "no exp"),
        ("no iat", signed(json!({ "iat": null })), "invalid_client_metadata", "no iat"),
        (
            "iat in the future",
            signed(json!({ "iat": now + 600, "exp": now + 900 })),
            "invalid_client_metadata",
            "future",
        ),
        ("no jti", signed(json!({ "jti": null })), "invalid_client_metadata", "no jti"),
        // O.126, O.131: iss is the software_id, at most 22 characters.
        (
            "iss of another software",
            signed(json!({ "iss": "another-software" })),
            "invalid_client_metadata",
            "software_id",
        ),
        ("empty iss", signed(json!({ "iss": "" })), "invalid_client_metadata", "no iss"),
        ("no iss", signed(json!({ "iss": null })), "invalid_client_metadata", "no iss"),
        (
            "iss longer than 22 characters",
            signed(json!({ "iss": "demo-fintech-client-0001" })),
            "invalid_client_metadata",
            "longer than 22",
        ),
        (
            "software_id of another software",
            signed(json!({ "software_id": "other" })),
            "invalid_client_metadata",
            "software_id",
        ),
        // O.126: aud is checked.
        (
            "aud of another server",
            signed(json!({ "aud": "https://other-bank.example" })),
            "invalid_client_metadata",
            "aud",
        ),
        (
            "aud list without this server",
            signed(json!({ "aud": ["https://other-bank.example"] })),
            "invalid_client_metadata",
            "aud",
        ),
        ("no aud", signed(json!({ "aud": null })), "invalid_client_metadata", "aud"),
        // O.129-O.131, S.3: PS256 or ES256 only, by the software's keys only.
        ("RS256", rs256, "invalid_client_metadata", "RS256"),
        ("alg none", none, "invalid_client_metadata", "none"),
        ("another key with the software key's kid", impostor.sign(&good), "invalid_client_metadata", "does not verify"),
        ("a key the software does not have", stranger.sign(&good), "invalid_client_metadata", "does not verify"),
        ("a key embedded in the header", embedded_jwk, "invalid_client_metadata", "does not verify"),
        ("payload changed after signing", tampered, "invalid_client_metadata", "does not verify"),
        // O.127, O.131: unsupported values are refused with an RFC 7591 error.
        (
            "response_types code id_token",
            signed(json!({ "response_types": ["code id_token"] })),
            "invalid_client_metadata",
            "response type",
        ),
        (
            "grant type authorization_code",
            signed(json!({ "grant_types": ["authorization_code"] })),
            "invalid_client_metadata",
            "authorization_code",
        ),
        (
            "client_secret_basic",
            signed(json!({ "token_endpoint_auth_method": "client_secret_basic" })),
            "invalid_client_metadata",
            "client_secret_basic",
        ),
        (
            "scope beyond the software's roles",
            signed(json!({ "scope": "payments:write" })),
            "invalid_client_metadata",
            "roles",
        ),
        (
            "redirect URI outside the statement's",
            signed(json!({ "redirect_uris": ["https://evil.example/cb"] })),
            "invalid_redirect_uri",
            "software_redirect_uris",
        ),
        (
            "http redirect URI",
            signed(json!({ "redirect_uris": ["http://demo-fintech.example/callback"] })),
            "invalid_redirect_uri",
            "https",
        ),
        // O.126, O.130: the statement.
        (
            "no software_statement",
            signed(json!({ "software_statement": null })),
            "invalid_software_statement",
            "software_statement",
        ),
        (
            "statement of a revoked organisation",
            statement(json!({ "org_status": "Revoked" })),
            "unapproved_software_statement",
            "Revoked",
        ),
        (
            "statement naming no software keys",
            statement(json!({ "software_jwks": null })),
            "invalid_software_statement",
            "software keys",
        ),
        (
            "statement with software_jwks that is not a JWKS",
            statement(json!({ "software_jwks": "https://x.example/jwks" })),
            "invalid_software_statement",
            "JWKS",
        ),
        ("self-signed statement (O.129)", self_signed_statement, "unapproved_software_statement", "not a directory"),
        ("unsigned statement (alg none)", unsigned_statement, "invalid_software_statement", "none"),
        // Not a JWS at all.
        ("not a JWT", "hello".to_owned(), "invalid_client_metadata", "signed JWT"),
        ("JSON sent as a JWT", good.to_string(), "invalid_client_metadata", "signed JWT"),
    ];
    for (name, body, code, says) in &cases {
        let r = post_register(&c, &dev, "application/jose", body).await;
        assert_error(&r, 400, code, says, name);
    }

    // A JSON body (the RFC 7591 format) is the wrong media type here: 415, with a JSON error.
    let r = send(c.post(dev.server.url("/register")).json(&good)).await;
    assert_error(&r, 415, "invalid_request", "application/json", "JSON body");
    assert!(r.body["error_description"].as_str().unwrap().contains("application/jwt"), "{}", r.body);
    let r = send(c.post(dev.server.url("/register")).body(key.sign(&good))).await;
    assert_error(&r, 415, "invalid_request", "", "no content type");

    assert!(stored_clients(&dev).await.is_empty(), "a refused registration stored a client");
    // The good request, unchanged, is accepted: every refusal above was for its one change.
    let r = post_register(&c, &dev, "application/jose", &key.sign(&good)).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Checklist O.129, S.4: the software's keys fetched from `software_jwks_endpoint` over TLS that
/// `registration.software_jwks_ca_files` anchors; `registration.uk_audiences` replaces the issuer
/// as the accepted `aud`.
#[tokio::test]
async fn uk_registration_with_software_jwks_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let trusted = TestPki::new(&tmp.path().join("jwks-pki"), "Software JWKS CA");
    let rogue = TestPki::new(&tmp.path().join("rogue-pki"), "Rogue CA");
    let key = SoftwareKey::new(SigningAlg::PS256, "software-ps256");
    let attacker = SoftwareKey::new(SigningAlg::PS256, "attacker");
    let docs = BTreeMap::from([
        ("/jwks".to_owned(), key.jwks()),
        ("/attacker-jwks".to_owned(), attacker.jwks()),
        ("/not-a-jwks".to_owned(), json!({ "hello": "world" })),
    ]);
    let host = JwksHost::start(&trusted.server("jwks-host"), docs.clone());
    let rogue_host = JwksHost::start(&rogue.server("rogue-host"), docs);

    let cas = format!("[\"{}\"]", trusted.ca_cert.display());
    let audiences = format!("[\"{ASPSP_DIRECTORY_ID}\"]");
    let dev = uk_dev(&[
        ("TESSERA_REGISTRATION__SOFTWARE_JWKS_CA_FILES", &cas),
        ("TESSERA_REGISTRATION__UK_AUDIENCES", &audiences),
    ]);
    let c = dev.client_as("client");
    let endpoint_ssa = |url: &str| sign_as_directory(&dev, &ssa_claims(json!({ "software_jwks_endpoint": url })));

    let ssa = endpoint_ssa(&host.url("/jwks"));
    let request = request_claims(&dev, ASPSP_DIRECTORY_ID, &ssa);
    let r = post_register(&c, &dev, "application/jwt", &key.sign(&request)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["software_jwks_endpoint"], host.url("/jwks"));
    assert_eq!(r.body["jwks_uri"], host.url("/jwks"), "the statement's key location is the client's");
    assert_eq!(r.body["scope"], "accounts:read");
    assert_eq!(host.hits("/jwks"), 1);

    // The issuer is no longer an accepted audience once uk_audiences is configured.
    let ssa = endpoint_ssa(&host.url("/jwks"));
    let r = post_register(&c, &dev, "application/jwt", &key.sign(&request_claims(&dev, dev.server.base(), &ssa))).await;
    assert_error(&r, 400, "invalid_client_metadata", ASPSP_DIRECTORY_ID, "aud = issuer");

    // A `jku` header naming another JWKS is not followed (O.129).
    let ssa = endpoint_ssa(&host.url("/jwks"));
    let mut header = json!({ "alg": "PS256", "typ": "JWT", "kid": "attacker", "jku": host.url("/attacker-jwks") });
    let signer = josekit::jws::PS256.signer_from_jwk(&attacker.private).unwrap();
    let r = post_register(
        &c,
        &dev,
        "application/jwt",
        &sign_raw(&header, &request_claims(&dev, ASPSP_DIRECTORY_ID, &ssa), &signer),
    )
    .await;
    assert_error(&r, 400, "invalid_client_metadata", "does not verify", "jku");
    assert_eq!(host.hits("/attacker-jwks"), 0, "jku was fetched");
    header["x5u"] = json!(host.url("/attacker-jwks"));
    let r = post_register(
        &c,
        &dev,
        "application/jwt",
        &sign_raw(&header, &request_claims(&dev, ASPSP_DIRECTORY_ID, &ssa), &signer),
    )
    .await;
    assert_error(&r, 400, "invalid_client_metadata", "does not verify", "x5u");
    assert_eq!(host.hits("/attacker-jwks"), 0, "x5u was fetched");

    // Endpoints the server must not (or cannot) use.
    let cases = [
        ("a host whose certificate the configured CAs did not issue", rogue_host.url("/jwks")),
        ("plain http", host.url("/jwks").replace("https://", "http://")),
        ("404", host.url("/missing")),
        ("not a JWKS", host.url("/not-a-jwks")),
    ];
    for (name, url) in &cases {
        let ssa = endpoint_ssa(url);
        let r = post_register(&c, &dev, "application/jwt", &key.sign(&request_claims(&dev, ASPSP_DIRECTORY_ID, &ssa)))
            .await;
        assert_error(&r, 400, "invalid_software_statement", "could not be fetched", name);
    }
    assert_eq!(rogue_host.hits("/jwks"), 0, "the rogue host served a JWKS over untrusted TLS");
    assert!(rogue_host.connections.load(Ordering::SeqCst) >= 1, "the rogue host was never contacted");

    // A key that is not in the fetched JWKS.
    let ssa = endpoint_ssa(&host.url("/jwks"));
    let r = post_register(&c, &dev, "application/jwt", &attacker.sign(&request_claims(&dev, ASPSP_DIRECTORY_ID, &ssa)))
        .await;
    assert_error(&r, 400, "invalid_client_metadata", "does not verify", "attacker key");
    assert_eq!(stored_clients(&dev).await.len(), 1);
}

/// Checklist O.128, O.131: GET, PUT and DELETE /register/{id} are authorised by a
/// client-credentials access token of that client, bound to the certificate of the request; not
/// by a registration access token.
#[tokio::test]
async fn uk_management_with_client_credentials_tokens() {
    let dev = uk_dev(&[]);
    let demo = Cert::dev(&dev, "client");
    let c = demo.client(&dev);
    let key = SoftwareKey::new(SigningAlg::ES256, "software-key");
    let ssa = embedded_ssa(&dev, &key);
    let request = request_claims(&dev, dev.server.base(), &ssa);
    let r = post_register(&c, &dev, "application/jose", &key.sign(&request)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let registered = r.body.clone();
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let at = access_token(&c, &dev, &id).await;

    // GET with the client's access token and the same certificate.
    let r = get_register(&c, &dev, &id, Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), "no-store");
    assert_eq!(r.body["client_id"], id.as_str());
    assert_eq!(r.body["scope"], "accounts:read");
    assert_eq!(r.body["software_statement"], ssa.as_str());
    assert_eq!(r.body["token_endpoint_auth_method"], "tls_client_auth");
    assert!(r.body.get("registration_access_token").is_none(), "{}", r.body);

    // What does not authorise management.
    if let Some(rat) = registered["registration_access_token"].as_str() {
        assert_unauthorised(&get_register(&c, &dev, &id, Some(rat)).await, "registration access token, GET");
        let put = key.sign(&with(&request_claims(&dev, dev.server.base(), &ssa), json!({ "client_id": id })));
        assert_unauthorised(
            &put_register(&c, &dev, &id, rat, "application/jose", &put).await,
            "registration access token, PUT",
        );
        assert_unauthorised(&delete_register(&c, &dev, &id, rat).await, "registration access token, DELETE");
    }
    assert_unauthorised(&get_register(&c, &dev, &id, None).await, "no token");
    assert_unauthorised(&get_register(&c, &dev, &id, Some("not-a-token")).await, "garbage token");
    let parts: Vec<&str> = at.split('.').collect();
    let mut forged = claims_of(&at);
    forged["exp"] = json!(now() + 86_400);
    let forged = format!("{}.{}.{}", parts[0], b64url(forged.to_string().as_bytes()), parts[2]);
    assert_unauthorised(&get_register(&c, &dev, &id, Some(&forged)).await, "payload changed after signing");
    // Another client's token (the dev gateway's), with its own certificate or with this one.
    let gateway = dev.client_as("gateway");
    let gateway_token = access_token(&gateway, &dev, "dev-gateway").await;
    assert_unauthorised(&get_register(&gateway, &dev, &id, Some(&gateway_token)).await, "gateway token + gateway cert");
    assert_unauthorised(&get_register(&c, &dev, &id, Some(&gateway_token)).await, "gateway token + client cert");
    // A token of this client bound to another certificate (same subject, another key): only the
    // certificate it is bound to may present it.
    let twin = Cert::from_dev_ca(&dev, dev.manifest["client"]["subject"].as_str().unwrap());
    assert_ne!(twin.x5t(), demo.x5t());
    let twin_client = twin.client(&dev);
    let twin_token = access_token(&twin_client, &dev, &id).await;
    assert_eq!(claims_of(&twin_token)["cnf"]["x5t#S256"], twin.x5t());
    assert_unauthorised(&get_register(&c, &dev, &id, Some(&twin_token)).await, "token bound to another certificate");
    assert_eq!(get_register(&twin_client, &dev, &id, Some(&twin_token)).await.status, 200, "its own certificate");
    assert_unauthorised(&get_register(&twin_client, &dev, &id, Some(&at)).await, "this token, the twin's certificate");
    // No client certificate at all.
    let r = get_register(&dev.client(), &dev, &id, Some(&at)).await;
    assert_error(&r, 401, "invalid_client", "certificate", "no certificate");

    // PUT: a new signed request, every claim again (O.128).
    let update = with(
        &request_claims(&dev, dev.server.base(), &ssa),
        json!({ "client_id": id, "scope": "accounts:read balances:read" }),
    );
    let r = put_register(&c, &dev, &id, &at, "application/jose", &key.sign(&update)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["client_id"], id.as_str());
    assert_eq!(r.body["scope"], "accounts:read balances:read");
    // The UK update may leave client_id out (the URL names the client) and may bring a fresh
    // statement of the same software.
    let fresh = embedded_ssa(&dev, &key);
    let update =
        with(&request_claims(&dev, dev.server.base(), &fresh), json!({ "scope": "accounts:read transactions:read" }));
    let r = put_register(&c, &dev, &id, &at, "application/jwt", &key.sign(&update)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "accounts:read transactions:read");
    assert_eq!(r.body["software_statement"], fresh.as_str());
    // A PUT is checked like a registration.
    let expired = with(&update, json!({ "iat": now() - 600, "exp": now() - 60 }));
    let r = put_register(&c, &dev, &id, &at, "application/jose", &key.sign(&expired)).await;
    assert_error(&r, 400, "invalid_client_metadata", "expired", "expired PUT");
    let other = with(&update, json!({ "client_id": "someone-else" }));
    let r = put_register(&c, &dev, &id, &at, "application/jose", &key.sign(&other)).await;
    assert_error(&r, 400, "invalid_client_metadata", "client_id", "PUT naming another client");
    let r = send(c.put(dev.server.url(&format!("/register/{id}"))).bearer_auth(&at).json(&update)).await;
    assert_error(&r, 415, "invalid_request", "", "JSON PUT");
    assert_eq!(stored_clients(&dev).await[0].scopes.len(), 2, "refused updates changed nothing");
    // O.128: a PUT does not invalidate the tokens the client already holds.
    let r = get_register(&c, &dev, &id, Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["scope"], "accounts:read transactions:read");
    let after_put = access_token(&c, &dev, &id).await;
    assert_eq!(claims_of(&after_put)["scope"], "accounts:read transactions:read");

    // An unknown client id: 401, whatever the token (O.128, O.131).
    assert_unauthorised(&get_register(&c, &dev, "no-such-client", Some(&at)).await, "unknown id, GET");
    let r = put_register(&c, &dev, "no-such-client", &at, "application/jose", &key.sign(&update)).await;
    assert_unauthorised(&r, "unknown id, PUT");
    assert_unauthorised(&delete_register(&c, &dev, "no-such-client", &at).await, "unknown id, DELETE");

    // RFC 7009: a token the client revoked no longer authorises anything, management included.
    let revoked = access_token(&c, &dev, &id).await;
    assert_eq!(get_register(&c, &dev, &id, Some(&revoked)).await.status, 200);
    let form = [("client_id", id.as_str()), ("token", revoked.as_str())];
    let r = c.post(dev.server.url("/revoke")).form(&form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_unauthorised(&get_register(&c, &dev, &id, Some(&revoked)).await, "revoked token, GET");
    let r = put_register(&c, &dev, &id, &revoked, "application/jose", &key.sign(&update)).await;
    assert_unauthorised(&r, "revoked token, PUT");
    assert_unauthorised(&delete_register(&c, &dev, &id, &revoked).await, "revoked token, DELETE");
    assert_eq!(get_register(&c, &dev, &id, Some(&at)).await.status, 200, "only the revoked token");

    // DELETE: 204, then the client is gone for every operation and for the token endpoint.
    let r = delete_register(&c, &dev, &id, &at).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    assert_unauthorised(&get_register(&c, &dev, &id, Some(&at)).await, "deleted, GET");
    assert_unauthorised(&get_register(&c, &dev, &id, Some(&after_put)).await, "deleted, GET with the newer token");
    let r = put_register(&c, &dev, &id, &at, "application/jose", &key.sign(&update)).await;
    assert_unauthorised(&r, "deleted, PUT");
    assert_unauthorised(&delete_register(&c, &dev, &id, &at).await, "deleted, DELETE");
    let form = [("grant_type", "client_credentials"), ("client_id", id.as_str())];
    let r = send(c.post(dev.server.url("/token")).form(&form)).await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "token after delete: {}",
        r.body
    );
    assert!(r.body["error_description"].as_str().unwrap().contains("offboarded"), "{}", r.body);
    let stored = stored_clients(&dev).await;
    assert_eq!(stored[0].status, ClientStatus::Offboarded);
}
