//! The token endpoint end to end (client credentials, RFC 6749 §4.4): the real binary in dev mode,
//! real TLS with rcgen certificates, clients registered through `POST /register`, tokens fetched
//! with the `oauth2` crate (and raw `reqwest` for malformed requests), access tokens checked with
//! josekit directly against `/jwks` (not through tessera-jose), and the audit log read straight
//! from the SQLite database after a SIGKILL.
//!
//! Checklist items: A.2-9/10/11/13/15/16/20/22, A.6-44/46, C.56-61, H.90-92/94, J.99-101/103-106.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenResponse, BasicTokenType};
use oauth2::{AuthType, ClientId, RequestTokenError, Scope, TokenResponse, TokenUrl};
use reqwest::header::HeaderMap;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tessera_core::audit::{AuditKind, GENESIS_HASH, verify_chain};
use tessera_store::AuditLog;
use tessera_store_diesel::{DieselStore, PoolOptions};
use tessera_testkit::pki::self_signed_client;
use tessera_testkit::process::run;

use crate::common::*;

/// Dev mode's default access-token audience and its one extra RFC 8707 resource.
const DEV_AUDIENCE: &str = "https://api.tessera-dev.example";
const DEV_PAYMENTS: &str = "https://api.tessera-dev.example/payments";
/// Dev mode's default token lifetime (token.default_lifetime_secs).
const DEV_LIFETIME: i64 = 300;
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A fresh 128-bit identifier for assertions.
fn fresh_jti() -> String {
    use tessera_core::Rng;
    tessera_core::OsRng.token(16).unwrap()
}

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

/// RFC 8705 §3.1 recomputed here: base64url(SHA-256(DER)), no padding.
fn x5t_s256(der: &[u8]) -> String {
    b64url(&Sha256::digest(der))
}

/// A certificate and key in PEM, with the certificate's DER.
#[derive(Clone)]
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

    fn self_signed(cn: &str) -> Cert {
        let (pem, key, der) = self_signed_client(cn);
        assert_eq!(pem_to_der(&pem), der);
        Cert { pem, key, der }
    }

    fn client(&self, dev: &Dev) -> reqwest::Client {
        https_client(&dev.ca, Some((&self.pem, &self.key)))
    }

    /// The public JWK of the certificate's P-256 key, with the certificate in `x5c`
    /// (RFC 8705 §2.2: how a self-signed certificate is registered).
    fn jwk_with_x5c(&self, kid: &str) -> Value {
        let kp = rcgen::KeyPair::from_pem(&self.key).unwrap();
        let raw = kp.public_key_raw();
        assert_eq!((raw.len(), raw[0]), (65, 4), "uncompressed P-256 point");
        json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": b64url(&raw[1..33]), "y": b64url(&raw[33..65]),
            "x5c": [STANDARD.encode(&self.der)],
        })
    }

    fn x5t(&self) -> String {
        x5t_s256(&self.der)
    }
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

/// Registers a client (`metadata` plus a fresh software statement) with the demo client
/// certificate (OU=demo-org-0001, the statement's org_id) and returns the 201 body.
async fn register(dev: &Dev, metadata: Value) -> Value {
    let mut body = metadata.as_object().unwrap().clone();
    body.insert("software_statement".into(), json!(statement(dev, &[])));
    let resp = dev.client_as("client").post(dev.server.url("/register")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "registration refused: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["client_id"].is_string(), "{v}");
    v
}

/// A status, the headers and the JSON body of a token endpoint response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }
}

/// Sends a request and checks what every token endpoint response carries, errors included:
/// JSON and `Cache-Control: no-store` / `Pragma: no-cache` (RFC 6749 §5.1, checklist J.99).
async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    let reply = Reply { status, headers, body };
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    assert_eq!(reply.header("pragma"), Some("no-cache"), "{reply:?}");
    assert!(reply.header("content-type").unwrap_or("").starts_with("application/json"), "{reply:?}");
    // RFC 6749 §5.2 / checklist J.100: printable ASCII without `"` and `\` in descriptions.
    if let Some(d) = reply.body.get("error_description").and_then(Value::as_str) {
        assert!(d.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'), "{d:?}");
    }
    reply
}

async fn post_token(http: &reqwest::Client, dev: &Dev, form: &[(&str, &str)]) -> Reply {
    send(http.post(dev.server.url("/token")).form(form)).await
}

/// Asserts an RFC 6749 §5.2 error: status and code; and that no token leaked into it.
fn assert_error(r: &Reply, status: u16, code: &str, context: &str) {
    assert_eq!((r.status, r.body["error"].as_str()), (status, Some(code)), "{context}: {r:?}");
    assert!(r.body.get("access_token").is_none(), "{context}: {r:?}");
}

/// A successful RFC 6749 §5.1 response, returning the access token.
fn assert_issued(r: &Reply, context: &str) -> String {
    assert_eq!(r.status, 200, "{context}: {r:?}");
    assert_eq!(r.body["token_type"], "Bearer", "{context}");
    assert_eq!(r.body["expires_in"].as_i64(), Some(DEV_LIFETIME), "{context}");
    // FAPI2 A.2-16, RFC 6749 §4.4.3: no refresh token for client credentials.
    assert!(r.body.get("refresh_token").is_none(), "{context}: {r:?}");
    r.body["access_token"].as_str().unwrap().to_owned()
}

/// The JOSE header of a compact JWS.
fn jws_header(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

/// Verifies a compact JWS against the published JWKS with josekit directly (an independent JOSE
/// path, not tessera-jose): the key is the one whose `kid` the header names.
fn verify_independently(token: &str, jwks: &Value) -> Result<Value, String> {
    use josekit::jws::{ES256, EdDSA, PS256};
    let header = jws_header(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).ok_or("kid not published")?;
    let jwk = josekit::jwk::Jwk::from_map(key.as_object().unwrap().clone()).map_err(|e| e.to_string())?;
    let decoded = match header["alg"].as_str().unwrap_or("") {
        "ES256" => josekit::jwt::decode_with_verifier(token, &ES256.verifier_from_jwk(&jwk).unwrap()),
        "PS256" => josekit::jwt::decode_with_verifier(token, &PS256.verifier_from_jwk(&jwk).unwrap()),
        "EdDSA" => josekit::jwt::decode_with_verifier(token, &EdDSA.verifier_from_jwk(&jwk).unwrap()),
        other => return Err(format!("alg {other:?}")),
    };
    decoded.map(|(payload, _)| Value::Object(payload.claims_set().clone())).map_err(|e| e.to_string())
}

/// What a token must say.
struct Expect<'a> {
    client_id: &'a str,
    cert: &'a Cert,
    scope: &'a str,
    aud: &'a str,
    lifetime: i64,
}

/// Checks an access token as a resource server would (RFC 9068 §4) and every claim this server
/// promises; returns the claims.
async fn check_access_token(dev: &Dev, token: &str, e: &Expect<'_>) -> Value {
    let c = dev.client();
    let jwks = get_json(&c, &dev.server.url("/jwks")).await;
    let issuer = get_json(&c, &dev.server.url("/.well-known/oauth-authorization-server")).await["issuer"].clone();
    assert_eq!(issuer, dev.server.base());

    // RFC 9068 §2.1, checklist H.90: typed, signed with a FAPI algorithm, kid of a published key.
    let header = jws_header(token);
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(header["alg"], "ES256", "dev mode signs with ES256: {header}");
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == header["kid"]), "{header}");
    let claims = verify_independently(token, &jwks).unwrap_or_else(|err| panic!("signature: {err}"));
    // The signature covers the payload: changing one claim breaks it.
    let parts: Vec<&str> = token.split('.').collect();
    let mut forged: Map<String, Value> = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    forged.insert("scope".into(), json!("payments:write"));
    let forged = format!("{}.{}.{}", parts[0], b64url(&serde_json::to_vec(&forged).unwrap()), parts[2]);
    assert!(verify_independently(&forged, &jwks).is_err(), "a forged payload verified");

    // RFC 9068 §2.2, checklist H.91: required claims; for client credentials sub = client_id.
    assert_eq!(claims["iss"], issuer, "{claims}");
    assert_eq!(claims["sub"], e.client_id, "{claims}");
    assert_eq!(claims["client_id"], e.client_id, "{claims}");
    // H.92/H.94: a single, unambiguous audience.
    assert_eq!(claims["aud"], e.aud, "{claims}");
    for t in ["iat", "nbf", "exp"] {
        assert!(claims[t].is_i64(), "{t} must be an integer NumericDate: {claims}");
    }
    let (iat, nbf, exp) =
        (claims["iat"].as_i64().unwrap(), claims["nbf"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!((iat - now()).abs() <= 30, "iat {iat} is not now");
    assert!(nbf <= iat, "{claims}");
    assert_eq!(exp - iat, e.lifetime, "{claims}");
    // FAPI2 A.6-46, RFC 6749 §10.10 (J.106): jti carries at least 128 bits, base64url.
    let jti = claims["jti"].as_str().unwrap();
    assert!(jti.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{jti}");
    assert!(URL_SAFE_NO_PAD.decode(jti).unwrap().len() * 8 >= 128, "{jti}");
    assert_eq!(claims["scope"], e.scope, "{claims}");
    // RFC 8705 §3.1, checklist C.60/C.61: bound to the certificate of the request.
    assert_eq!(claims["cnf"], json!({ "x5t#S256": e.cert.x5t() }), "{claims}");
    claims
}

/// The `oauth2` crate as the client: client_id in the body (no secret), extra parameters added.
type OAuth2Result = Result<
    BasicTokenResponse,
    RequestTokenError<oauth2::HttpClientError<reqwest::Error>, oauth2::basic::BasicErrorResponse>,
>;

async fn oauth2_token(
    http: &reqwest::Client,
    dev: &Dev,
    client_id: &str,
    extra: &[(&str, String)],
    scopes: &[&str],
) -> OAuth2Result {
    let client = BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_token_uri(TokenUrl::new(dev.server.url("/token")).unwrap())
        .set_auth_type(AuthType::RequestBody);
    let mut req = client.exchange_client_credentials();
    for (k, v) in extra {
        req = req.add_extra_param((*k).to_owned(), v.clone());
    }
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_owned()));
    }
    req.request_async(http).await
}

fn assert_oauth2_response(r: &BasicTokenResponse, scope: &[&str]) {
    assert_eq!(*r.token_type(), BasicTokenType::Bearer);
    assert_eq!(r.expires_in().map(|d| d.as_secs() as i64), Some(DEV_LIFETIME));
    assert!(r.refresh_token().is_none(), "FAPI2 A.2-16: no refresh token for client credentials");
    let got: Vec<&str> = r.scopes().map(|s| s.iter().map(|s| s.as_str()).collect()).unwrap_or_default();
    assert_eq!(got, scope);
}

// ---------------------------------------------------------------------------------------------
// Client keys for private_key_jwt (OIDC Core §9), made and used with josekit directly.

struct ClientKey {
    private: josekit::jwk::Jwk,
    public: Value,
}

fn es256_key(kid: &str) -> ClientKey {
    let kp = josekit::jws::ES256.generate_key_pair().unwrap();
    let mut private = kp.to_jwk_private_key();
    private.set_key_id(kid);
    let mut public = kp.to_jwk_public_key();
    public.set_key_id(kid);
    public.set_key_use("sig");
    ClientKey { private, public: Value::Object(public.as_ref().clone()) }
}

/// An RSA-2048 key whose public JWK carries no `alg`, so only the algorithm policy can refuse an
/// RS256 signature made with it.
fn rsa_key(kid: &str) -> ClientKey {
    let kp = josekit::jws::RS256.generate_key_pair(2048).unwrap();
    let mut private = kp.to_jwk_private_key();
    private.set_key_id(kid);
    let public = kp.to_jwk_public_key();
    let public =
        json!({ "kty": "RSA", "kid": kid, "n": public.parameter("n").unwrap(), "e": public.parameter("e").unwrap() });
    ClientKey { private, public }
}

fn sign(signer: &dyn josekit::jws::JwsSigner, kid: &str, claims: &Value) -> String {
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id(kid);
    let payload = josekit::jwt::JwtPayload::from_map(claims.as_object().unwrap().clone()).unwrap();
    josekit::jwt::encode_with_signer(&payload, &header, signer).unwrap()
}

fn sign_es256(key: &josekit::jwk::Jwk, claims: &Value) -> String {
    let signer = josekit::jws::ES256.signer_from_jwk(key).unwrap();
    sign(&signer, key.key_id().unwrap(), claims)
}

/// A valid client assertion's claims: iss = sub = client_id, aud = the issuer as a plain string
/// (FAPI2 A.2-15), exp, iat and a fresh jti.
fn assertion_claims(client_id: &str, issuer: &str) -> Value {
    let now = now();
    json!({ "iss": client_id, "sub": client_id, "aud": issuer, "iat": now, "exp": now + 60, "jti": fresh_jti() })
}

fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut c = claims.clone();
    c[name] = value;
    c
}

fn without(claims: &Value, name: &str) -> Value {
    let mut c = claims.clone();
    c.as_object_mut().unwrap().remove(name);
    c
}

async fn assertion_request(http: &reqwest::Client, dev: &Dev, assertion: &str) -> Reply {
    post_token(
        http,
        dev,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Happy paths, one per authentication method (FAPI2 A.2-13, RFC 8705 §2), with the oauth2 crate.

#[tokio::test]
async fn tls_client_auth_with_the_oauth2_crate() {
    let dev = Dev::start(&[]);
    let demo = Cert::dev(&dev, "client");
    let reg = register(&dev, json!({ "scope": "accounts:read payments:write" })).await;
    let client_id = reg["client_id"].as_str().unwrap();
    // The premise: tls_client_auth by default, accounts:read granted, payments:write in review.
    assert_eq!(reg["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(reg["scope"], "accounts:read");
    assert_eq!(reg["pending_scopes"], json!(["payments:write"]));

    let http = demo.client(&dev);
    let resp = oauth2_token(&http, &dev, client_id, &[], &[]).await.unwrap();
    assert_oauth2_response(&resp, &["accounts:read"]);
    let expect = Expect { client_id, cert: &demo, scope: "accounts:read", aud: DEV_AUDIENCE, lifetime: DEV_LIFETIME };
    check_access_token(&dev, resp.access_token().secret(), &expect).await;

    // Same with an explicit scope; the oauth2 crate parses a refusal as an RFC 6749 §5.2 error.
    let resp = oauth2_token(&http, &dev, client_id, &[], &["accounts:read"]).await.unwrap();
    check_access_token(&dev, resp.access_token().secret(), &expect).await;
    match oauth2_token(&http, &dev, client_id, &[], &["payments:write"]).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope),
        other => panic!("payments:write is pending review: {other:?}"),
    }

    // The raw response: RFC 6749 §5.1 members and headers (checklist J.99), nothing else.
    let r = post_token(&http, &dev, &[("grant_type", "client_credentials"), ("client_id", client_id)]).await;
    assert_issued(&r, "raw");
    let mut members: Vec<&str> = r.body.as_object().unwrap().keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["access_token", "expires_in", "scope", "token_type"]);
    assert_eq!(r.body["scope"], "accounts:read");
}

#[tokio::test]
async fn self_signed_tls_client_auth_with_the_oauth2_crate() {
    let dev = Dev::start(&[]);
    let own = Cert::self_signed("self-signed-fintech");
    let reg = register(
        &dev,
        json!({
            "scope": "accounts:read",
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": { "keys": [own.jwk_with_x5c("own-1")] },
        }),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap();
    assert_eq!(reg["token_endpoint_auth_method"], "self_signed_tls_client_auth");

    // RFC 8705 §2.2, checklist C.59: the registered certificate, not chain-validated.
    let resp = oauth2_token(&own.client(&dev), &dev, client_id, &[], &[]).await.unwrap();
    assert_oauth2_response(&resp, &["accounts:read"]);
    let expect = Expect { client_id, cert: &own, scope: "accounts:read", aud: DEV_AUDIENCE, lifetime: DEV_LIFETIME };
    check_access_token(&dev, resp.access_token().secret(), &expect).await;

    // Another self-signed certificate, or the CA-issued demo certificate that registered the
    // client: neither is the registered one (401 invalid_client, RFC 8705 §2 / checklist C.56).
    let form = [("grant_type", "client_credentials"), ("client_id", client_id)];
    for (who, cert) in [("stranger", Cert::self_signed("self-signed-fintech")), ("demo", Cert::dev(&dev, "client"))] {
        let r = post_token(&cert.client(&dev), &dev, &form).await;
        assert_error(&r, 401, "invalid_client", who);
        assert!(r.header("www-authenticate").is_none(), "{who}: {r:?}");
    }
}

#[tokio::test]
async fn private_key_jwt_with_the_oauth2_crate() {
    let dev = Dev::start(&[]);
    let key = es256_key("pkj-1");
    let reg = register(
        &dev,
        json!({
            "scope": "accounts:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": { "keys": [key.public] },
        }),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap();
    assert_eq!(reg["token_endpoint_auth_method"], "private_key_jwt");

    // The certificate is not the credential here, but the token is still bound to it
    // (FAPI2 A.2-11, RFC 8705 §4 / checklist C.64).
    let demo = Cert::dev(&dev, "client");
    let assertion = sign_es256(&key.private, &assertion_claims(client_id, dev.server.base()));
    let extra = [("client_assertion_type", ASSERTION_TYPE.to_owned()), ("client_assertion", assertion)];
    let resp = oauth2_token(&demo.client(&dev), &dev, client_id, &extra, &[]).await.unwrap();
    assert_oauth2_response(&resp, &["accounts:read"]);
    let expect = Expect { client_id, cert: &demo, scope: "accounts:read", aud: DEV_AUDIENCE, lifetime: DEV_LIFETIME };
    check_access_token(&dev, resp.access_token().secret(), &expect).await;

    // With a self-signed certificate on the connection the token is bound to that one instead.
    let other = Cert::self_signed("pkj-transport");
    let assertion = sign_es256(&key.private, &assertion_claims(client_id, dev.server.base()));
    let extra = [("client_assertion_type", ASSERTION_TYPE.to_owned()), ("client_assertion", assertion)];
    let resp = oauth2_token(&other.client(&dev), &dev, client_id, &extra, &[]).await.unwrap();
    let expect = Expect { cert: &other, ..expect };
    check_access_token(&dev, resp.access_token().secret(), &expect).await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn each_certificate_binds_its_own_token() {
    // RFC 8705 §2.2 + §3 (checklist C.59/C.60): a client with two registered certificates (a
    // rotation) gets tokens bound to whichever one the request used.
    let dev = Dev::start(&[]);
    let (a, b) = (Cert::self_signed("rotating-a"), Cert::self_signed("rotating-b"));
    assert_ne!(a.x5t(), b.x5t());
    let reg = register(
        &dev,
        json!({
            "scope": "accounts:read",
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": { "keys": [a.jwk_with_x5c("a"), b.jwk_with_x5c("b")] },
        }),
    )
    .await;
    let client_id = reg["client_id"].as_str().unwrap();
    let form = [("grant_type", "client_credentials"), ("client_id", client_id)];
    for (cert, then) in [(&a, &b), (&b, &a), (&a, &b)] {
        let r = post_token(&cert.client(&dev), &dev, &form).await;
        let token = assert_issued(&r, "registered certificate");
        let expect = Expect { client_id, cert, scope: "accounts:read", aud: DEV_AUDIENCE, lifetime: DEV_LIFETIME };
        let claims = check_access_token(&dev, &token, &expect).await;
        assert_ne!(claims["cnf"]["x5t#S256"], then.x5t());
    }
    let r = post_token(&Cert::self_signed("rotating-c").client(&dev), &dev, &form).await;
    assert_error(&r, 401, "invalid_client", "a third, unregistered certificate");
}

#[tokio::test]
async fn each_failure_has_its_error_code() {
    let dev = Dev::start(&[]);
    let demo = Cert::dev(&dev, "client");
    let reg = register(&dev, json!({ "scope": "accounts:read balances:read payments:write" })).await;
    let id = reg["client_id"].as_str().unwrap();
    assert_eq!(reg["pending_scopes"], json!(["payments:write"]));
    let http = demo.client(&dev);
    let cc = ("grant_type", "client_credentials");
    let cid = ("client_id", id);

    // RFC 6749 §4.4.2: grant_type is required.
    assert_error(&post_token(&http, &dev, &[cid]).await, 400, "invalid_request", "no grant_type");
    assert_error(
        &post_token(&http, &dev, &[("grant_type", ""), cid]).await,
        400,
        "invalid_request",
        "empty grant_type",
    );
    // FAPI2 A.2-9: no password grant; and nothing but client_credentials here.
    for grant in ["password", "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"] {
        let r = post_token(&http, &dev, &[("grant_type", grant), cid, ("username", "u"), ("password", "p")]).await;
        assert_error(&r, 400, "unsupported_grant_type", grant);
    }
    // RFC 6749 §3.2: parameters must not be repeated.
    for dup in [[cc, cc, cid], [cc, cid, cid]] {
        assert_error(&post_token(&http, &dev, &dup).await, 400, "invalid_request", "repeated parameter");
    }
    let r = post_token(&http, &dev, &[cc, cid, ("scope", "accounts:read"), ("scope", "accounts:read")]).await;
    assert_error(&r, 400, "invalid_request", "repeated scope");

    // RFC 6749 §2.3 (checklist J.103): one authentication method per request.
    let basic = format!("Basic {}", STANDARD.encode(format!("{id}:secret")));
    let some_jwt = sign_es256(&es256_key("x").private, &assertion_claims(id, dev.server.base()));
    let two = [cc, cid, ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &some_jwt)];
    let r = send(http.post(dev.server.url("/token")).header("Authorization", &basic).form(&two)).await;
    assert_error(&r, 400, "invalid_request", "Authorization header and assertion");
    let two =
        [cc, cid, ("client_assertion_type", ASSERTION_TYPE), ("client_assertion", &some_jwt), ("client_secret", "s")];
    assert_error(&post_token(&http, &dev, &two).await, 400, "invalid_request", "assertion and secret");

    // FAPI2 A.2-13: no client secrets. With the Authorization header, 401 and WWW-Authenticate
    // (RFC 6749 §5.2, checklist J.101).
    let r = send(http.post(dev.server.url("/token")).header("Authorization", &basic).form(&[cc, cid])).await;
    assert_error(&r, 401, "invalid_client", "Basic");
    assert!(r.header("www-authenticate").is_some_and(|v| v.starts_with("Basic")), "{r:?}");
    let r = post_token(&http, &dev, &[cc, cid, ("client_secret", "secret")]).await;
    assert_error(&r, 401, "invalid_client", "client_secret_post");
    assert!(r.header("www-authenticate").is_none(), "no Authorization header was used: {r:?}");

    // RFC 8705 §2 (checklist C.56): mTLS authentication names the client.
    assert_error(&post_token(&http, &dev, &[cc]).await, 400, "invalid_request", "no client_id");
    let r = post_token(&http, &dev, &[cc, ("client_id", "no-such-client")]).await;
    assert_error(&r, 401, "invalid_client", "unknown client");
    assert!(r.header("www-authenticate").is_none(), "{r:?}");
    // The gateway's certificate is trusted, but its subject is not the client's (C.57).
    let r = post_token(&dev.client_as("gateway"), &dev, &[cc, cid]).await;
    assert_error(&r, 401, "invalid_client", "gateway certificate");
    // A self-signed copy of nothing: the chain does not validate.
    let r = post_token(&Cert::self_signed("demo-fintech-client").client(&dev), &dev, &[cc, cid]).await;
    assert_error(&r, 401, "invalid_client", "untrusted certificate");
    // No certificate at all: no token (FAPI2 A.2-11), and the client is told why.
    let r = post_token(&dev.client(), &dev, &[cc, cid]).await;
    assert!(r.status == 401 || r.status == 400, "{r:?}");
    assert!(r.body.get("access_token").is_none());
    assert!(r.description().contains("certificate is required"), "{r:?}");

    // Scopes (RFC 6749 §3.3, checklist J.105): absent means the granted ones; order is irrelevant;
    // pending and unknown scopes are refused.
    let r = post_token(&http, &dev, &[cc, cid]).await;
    let expect = Expect {
        client_id: id,
        cert: &demo,
        scope: "accounts:read balances:read",
        aud: DEV_AUDIENCE,
        lifetime: DEV_LIFETIME,
    };
    check_access_token(&dev, &assert_issued(&r, "no scope"), &expect).await;
    assert_eq!(r.body["scope"], "accounts:read balances:read");
    for order in ["accounts:read balances:read", "balances:read accounts:read"] {
        let r = post_token(&http, &dev, &[cc, cid, ("scope", order)]).await;
        assert_issued(&r, order);
        let mut got: Vec<&str> = r.body["scope"].as_str().unwrap().split(' ').collect();
        got.sort_unstable();
        assert_eq!(got, ["accounts:read", "balances:read"], "{order}");
    }
    let r = post_token(&http, &dev, &[cc, cid, ("scope", "balances:read")]).await;
    assert_eq!(r.body["scope"], "balances:read", "a narrower request gets what it asked for");
    for pending in ["payments:write", "accounts:read payments:write"] {
        let r = post_token(&http, &dev, &[cc, cid, ("scope", pending)]).await;
        assert_error(&r, 400, "invalid_scope", pending);
        assert!(r.description().contains("review"), "{r:?}");
    }
    for unknown in ["accounts:write", "transactions:read", "openid"] {
        let r = post_token(&http, &dev, &[cc, cid, ("scope", unknown)]).await;
        assert_error(&r, 400, "invalid_scope", unknown);
    }

    // RFC 8707 (checklist H.92/H.94): one known resource gives that audience.
    let r = post_token(&http, &dev, &[cc, cid, ("resource", DEV_PAYMENTS)]).await;
    let payments = Expect { aud: DEV_PAYMENTS, ..expect };
    check_access_token(&dev, &assert_issued(&r, "payments resource"), &payments).await;
    let r = post_token(&http, &dev, &[cc, cid, ("resource", DEV_AUDIENCE)]).await;
    check_access_token(&dev, &assert_issued(&r, "default resource"), &Expect { aud: DEV_AUDIENCE, ..payments }).await;
    let r = post_token(&http, &dev, &[cc, cid, ("resource", "https://elsewhere.example/api")]).await;
    assert_error(&r, 400, "invalid_target", "unknown resource");
    let r = post_token(&http, &dev, &[cc, cid, ("resource", DEV_AUDIENCE), ("resource", DEV_PAYMENTS)]).await;
    assert_error(&r, 400, "invalid_target", "two resources");

    // The request's shape (RFC 6749 §3.2, §2.3.1).
    let url = dev.server.url("/token");
    let form_body = format!("grant_type=client_credentials&client_id={id}");
    let r = send(
        http.post(&url)
            .header("Content-Type", "application/json")
            .body(json!({"grant_type": "client_credentials", "client_id": id}).to_string()),
    )
    .await;
    assert_error(&r, 400, "invalid_request", "JSON body");
    let r = send(http.post(&url).header("Content-Type", "text/plain").body(form_body.clone())).await;
    assert_error(&r, 400, "invalid_request", "text/plain");
    let r = send(http.post(&url).body(form_body.clone())).await;
    assert_error(&r, 400, "invalid_request", "no content type");
    let r = send(
        http.post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8")
            .body(form_body.clone()),
    )
    .await;
    assert_issued(&r, "content type with a charset parameter");
    // 16 KiB is the limit: exactly 16 KiB is read, one byte more is 413.
    let sized = |n: usize| {
        let mut b = format!("{form_body}&padding=");
        let pad = n - b.len();
        b.push_str(&"x".repeat(pad));
        assert_eq!(b.len(), n);
        b
    };
    let form_type = ("Content-Type", "application/x-www-form-urlencoded");
    let r = send(http.post(&url).header(form_type.0, form_type.1).body(sized(16 * 1024))).await;
    assert_issued(&r, "16 KiB body (unknown parameters are ignored, RFC 6749 §3.2)");
    let r = send(http.post(&url).header(form_type.0, form_type.1).body(sized(16 * 1024 + 1))).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.get("access_token").is_none());
    let r = send(http.post(&url).header(form_type.0, form_type.1).body(sized(64 * 1024))).await;
    assert_eq!(r.status, 413, "{r:?}");
    // Parameters in the query string are refused, even with a complete body (RFC 6749 §2.3.1).
    let r = send(http.post(format!("{url}?client_id={id}")).form(&[cc, cid])).await;
    assert_error(&r, 400, "invalid_request", "query string");
    let r = send(
        http.post(format!("{url}?grant_type=client_credentials&client_id={id}")).form(&[("scope", "accounts:read")]),
    )
    .await;
    assert_error(&r, 400, "invalid_request", "parameters only in the query string");
    // RFC 6749 §3.2: POST only; RFC 9110 §15.5.6: a 405 names the allowed methods.
    let r = send(http.get(format!("{url}?grant_type=client_credentials&client_id={id}"))).await;
    assert_error(&r, 405, "invalid_request", "GET");
    assert_eq!(r.header("allow"), Some("POST"), "{r:?}");
    let r = send(http.put(&url).form(&[cc, cid])).await;
    assert_error(&r, 405, "invalid_request", "PUT");
    assert_eq!(r.header("allow"), Some("POST"), "{r:?}");
}

#[tokio::test]
async fn private_key_jwt_assertion_rules() {
    let dev = Dev::start(&[]);
    let issuer = dev.server.base().to_owned();
    let key = es256_key("pkj-1");
    let rsa = rsa_key("rsa-1");
    // The RSA key is registered too: if RS256 were accepted, it would verify.
    let reg = register(
        &dev,
        json!({
            "scope": "accounts:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": { "keys": [key.public, rsa.public] },
        }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap();
    let demo = Cert::dev(&dev, "client");
    let http = demo.client(&dev);
    let fresh = || assertion_claims(id, &issuer);
    let expect =
        Expect { client_id: id, cert: &demo, scope: "accounts:read", aud: DEV_AUDIENCE, lifetime: DEV_LIFETIME };

    // The control: a valid assertion works (and names the client without client_id).
    let valid = sign_es256(&key.private, &fresh());
    let r = assertion_request(&http, &dev, &valid).await;
    check_access_token(&dev, &assert_issued(&r, "valid assertion"), &expect).await;
    // OIDC Core §9 / checklist A.2-22: each jti once; the replay is refused.
    let r = assertion_request(&http, &dev, &valid).await;
    assert_error(&r, 401, "invalid_client", "replayed assertion");

    // FAPI2 A.2-15 (checklist 15): aud is the issuer as a plain string; not an array, not the
    // token endpoint URL (this server is not in the UK option that allows it).
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &with(&fresh(), "aud", json!([issuer])))).await;
    assert_error(&r, 401, "invalid_client", "aud as an array");
    let token_url = dev.server.url("/token");
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &with(&fresh(), "aud", json!(token_url)))).await;
    assert_error(&r, 401, "invalid_client", "aud = token endpoint");
    let r =
        assertion_request(&http, &dev, &sign_es256(&key.private, &with(&fresh(), "aud", json!(format!("{issuer}/")))))
            .await;
    assert_error(&r, 401, "invalid_client", "aud = issuer with a trailing slash");
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &without(&fresh(), "aud"))).await;
    assert_error(&r, 401, "invalid_client", "no aud");

    // FAPI2 A.2-20 (checklist 20): iat/nbf up to 10 s ahead accepted, more than 60 s refused.
    for ahead in [8, 10] {
        let c = with(&with(&fresh(), "iat", json!(now() + ahead)), "exp", json!(now() + ahead + 60));
        let r = assertion_request(&http, &dev, &sign_es256(&key.private, &c)).await;
        check_access_token(&dev, &assert_issued(&r, &format!("iat +{ahead} s")), &expect).await;
    }
    let c = with(&fresh(), "nbf", json!(now() + 10));
    assert_issued(&assertion_request(&http, &dev, &sign_es256(&key.private, &c)).await, "nbf +10 s");
    for claim in ["iat", "nbf"] {
        let c = with(&with(&fresh(), claim, json!(now() + 70)), "exp", json!(now() + 130));
        let r = assertion_request(&http, &dev, &sign_es256(&key.private, &c)).await;
        assert_error(&r, 401, "invalid_client", &format!("{claim} +70 s"));
    }

    // exp is required, and must be in the future; jti is required.
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &without(&fresh(), "exp"))).await;
    assert_error(&r, 401, "invalid_client", "no exp");
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &with(&fresh(), "exp", json!(now() - 5)))).await;
    assert_error(&r, 401, "invalid_client", "expired");
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &without(&fresh(), "jti"))).await;
    assert_error(&r, 401, "invalid_client", "no jti");
    // iss and sub are both the client.
    let r =
        assertion_request(&http, &dev, &sign_es256(&key.private, &with(&fresh(), "iss", json!("someone-else")))).await;
    assert_error(&r, 401, "invalid_client", "iss is not the client");
    // client_id, when sent, must be the assertion's sub.
    let a = sign_es256(&key.private, &fresh());
    let r = post_token(
        &http,
        &dev,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "another"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_error(&r, 401, "invalid_client", "client_id differs from sub");
    // The assertion type must be the JWT bearer one.
    let a = sign_es256(&key.private, &fresh());
    let r = post_token(
        &http,
        &dev,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:other"),
            ("client_assertion", &a),
        ],
    )
    .await;
    assert_error(&r, 400, "invalid_request", "wrong client_assertion_type");

    // Signed with another key under the registered kid: 401.
    let impostor = es256_key("pkj-1");
    let r = assertion_request(&http, &dev, &sign_es256(&impostor.private, &fresh())).await;
    assert_error(&r, 401, "invalid_client", "another key");
    // FAPI2 A.6-44 (checklist 44): RS256 and none are refused, even with a registered RSA key.
    let rs256 = josekit::jws::RS256.signer_from_jwk(&rsa.private).unwrap();
    let r = assertion_request(&http, &dev, &sign(&rs256, "rsa-1", &fresh())).await;
    assert_error(&r, 401, "invalid_client", "RS256");
    let unsigned =
        format!("{}.{}.", b64url(br#"{"alg":"none","typ":"JWT"}"#), b64url(&serde_json::to_vec(&fresh()).unwrap()));
    assert_error(&assertion_request(&http, &dev, &unsigned).await, 401, "invalid_client", "alg none");
    assert_error(&assertion_request(&http, &dev, "not-a-jwt").await, 401, "invalid_client", "garbage");

    // FAPI2 A.2-11: without a TLS client certificate there is nothing to bind the token to.
    let r = assertion_request(&dev.client(), &dev, &sign_es256(&key.private, &fresh())).await;
    assert_error(&r, 400, "invalid_request", "no certificate");
    assert!(r.description().contains("certificate is required"), "{r:?}");

    // And a final valid one still works: nothing above broke the client.
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &fresh())).await;
    assert_issued(&r, "valid assertion at the end");
}

#[tokio::test]
async fn configured_tier_lifetime_and_token_endpoint_audience() {
    // A tier lifetime from the configuration (token.tier_lifetime_secs) and the UK option that
    // also accepts the token endpoint URL as assertion audience.
    let dev = Dev::start(&[
        ("TESSERA_TOKEN__TIER_LIFETIME_SECS__HIGH", "120"),
        ("TESSERA_TOKEN__ACCEPT_TOKEN_ENDPOINT_AUDIENCE", "true"),
    ]);
    let demo = Cert::dev(&dev, "client");
    let http = demo.client(&dev);
    // payments:write (pending, tier high) makes the client high; read-only stays low.
    let high = register(&dev, json!({ "scope": "accounts:read payments:write" })).await;
    let low = register(&dev, json!({ "scope": "accounts:read" })).await;
    for (reg, lifetime) in [(&high, 120), (&low, DEV_LIFETIME)] {
        let id = reg["client_id"].as_str().unwrap();
        let r = post_token(&http, &dev, &[("grant_type", "client_credentials"), ("client_id", id)]).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["expires_in"].as_i64(), Some(lifetime), "{r:?}");
        let expect = Expect { client_id: id, cert: &demo, scope: "accounts:read", aud: DEV_AUDIENCE, lifetime };
        check_access_token(&dev, r.body["access_token"].as_str().unwrap(), &expect).await;
    }

    let key = es256_key("uk-1");
    let reg = register(
        &dev,
        json!({ "scope": "accounts:read", "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [key.public] } }),
    )
    .await;
    let id = reg["client_id"].as_str().unwrap();
    let c = with(&assertion_claims(id, dev.server.base()), "aud", json!(dev.server.url("/token")));
    assert_issued(
        &assertion_request(&http, &dev, &sign_es256(&key.private, &c)).await,
        "token endpoint aud (UK option)",
    );
    let c = with(&assertion_claims(id, dev.server.base()), "aud", json!([dev.server.url("/token")]));
    let r = assertion_request(&http, &dev, &sign_es256(&key.private, &c)).await;
    assert_error(&r, 401, "invalid_client", "an array is still refused");
}

#[tokio::test]
async fn offboarded_and_pending_only_clients_get_no_token() {
    let dev = Dev::start(&[]);
    let demo = Cert::dev(&dev, "client");
    let http = demo.client(&dev);

    // RFC 7592 §2.3 offboards the client; the token endpoint then refuses it.
    let reg = register(&dev, json!({ "scope": "accounts:read" })).await;
    let id = reg["client_id"].as_str().unwrap();
    let form = [("grant_type", "client_credentials"), ("client_id", id)];
    assert_issued(&post_token(&http, &dev, &form).await, "before the delete");
    let resp = http
        .delete(reg["registration_client_uri"].as_str().unwrap())
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let r = post_token(&http, &dev, &form).await;
    assert_error(&r, 400, "unauthorized_client", "offboarded client");
    assert!(r.description().contains("offboarded"), "{r:?}");

    // Registered with only a scope that waits for review: nothing is grantable yet.
    let reg = register(&dev, json!({ "scope": "payments:write" })).await;
    assert_eq!(reg["pending_scopes"], json!(["payments:write"]));
    let id = reg["client_id"].as_str().unwrap();
    let r = post_token(&http, &dev, &[("grant_type", "client_credentials"), ("client_id", id)]).await;
    assert_error(&r, 400, "unauthorized_client", "pending-only client");
    assert!(r.description().contains("review"), "{r:?}");
    let r = post_token(
        &http,
        &dev,
        &[("grant_type", "client_credentials"), ("client_id", id), ("scope", "payments:write")],
    )
    .await;
    assert_error(&r, 400, "unauthorized_client", "pending-only client asking for its pending scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_issued_token_is_in_the_audit_log_after_a_sigkill() {
    // "No token leaves the server unless the audit log knows it": tokens issued one by one and
    // concurrently, then SIGKILL (nothing flushed), then the SQLite database read directly.
    let mut dev = Dev::start(&[]);
    let demo = Cert::dev(&dev, "client");
    let reg = register(&dev, json!({ "scope": "accounts:read" })).await;
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let http = demo.client(&dev);
    let url = dev.server.url("/token");

    let issue = |http: reqwest::Client, url: String, id: String| async move {
        let r = send(http.post(url).form(&[("grant_type", "client_credentials"), ("client_id", id.as_str())])).await;
        let token = assert_issued(&r, "audit run");
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
        claims["jti"].as_str().unwrap().to_owned()
    };
    let mut returned = Vec::new();
    for _ in 0..10 {
        returned.push(issue(http.clone(), url.clone(), id.clone()).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        tasks.spawn(issue(http.clone(), url.clone(), id.clone()));
    }
    while let Some(jti) = tasks.join_next().await {
        returned.push(jti.unwrap());
    }
    assert_eq!(returned.len(), 50);
    let mut unique = returned.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 50, "every token has its own jti");

    dev.server.kill();
    let restarted = Tessera::start_dev(&bin(), &dev.server.data_dir, &[]);
    // The restarted server knows the client and still issues tokens.
    let r = send(
        https_client(&dev.ca, Some((&demo.pem, &demo.key)))
            .post(restarted.url("/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", id.as_str())]),
    )
    .await;
    let after = assert_issued(&r, "after the restart");
    let after: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(after.split('.').nth(1).unwrap()).unwrap()).unwrap();
    returned.push(after["jti"].as_str().unwrap().to_owned());

    let db = dev.manifest["database"].as_str().unwrap();
    let store = DieselStore::connect(
        &format!("sqlite://{db}"),
        PoolOptions { max_size: 1, connection_timeout: std::time::Duration::from_secs(10) },
    )
    .await
    .unwrap();
    let records = AuditLog::read(&store, 0, usize::MAX).await.unwrap();
    // The chain is intact from the first record to the last.
    let (last, _) = verify_chain(&records, 0, GENESIS_HASH.to_owned()).unwrap();
    assert_eq!(last, records.len() as i64);
    let issued: Vec<&Map<String, Value>> =
        records.iter().filter(|r| r.event.kind == AuditKind::TokenIssued).map(|r| &r.event.data).collect();
    for jti in &returned {
        let rec = issued
            .iter()
            .find(|d| d["jti"] == jti.as_str())
            .unwrap_or_else(|| panic!("jti {jti} is not in the audit log"));
        assert_eq!(rec["cnf_x5t#S256"], demo.x5t());
        assert_eq!(rec["scope"], "accounts:read");
        assert_eq!(rec["aud"], DEV_AUDIENCE);
    }
    for r in records.iter().filter(|r| r.event.kind == AuditKind::TokenIssued) {
        assert_eq!(r.event.actor, id);
        assert_eq!(r.event.client_id.as_ref().map(|c| c.as_str()), Some(id.as_str()));
    }
    drop(restarted);
}
