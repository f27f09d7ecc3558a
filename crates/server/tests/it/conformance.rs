//! The OpenID Foundation conformance plan of the machine-to-machine variant, offline:
//!
//! ```text
//! fapi2-security-profile-final-test-plan[openid=plain_oauth][client_auth_type=mtls]
//!     [sender_constrain=mtls][fapi_profile=fapi_client_credentials_grant]
//! ```
//!
//! runs five modules (`conformance/README.md`; project notes `conformance-modules.md` §2.1 and §3,
//! modules 1, 2, 9, 31 and 32). Each test below is one module, with what the suite checks, against
//! what the suite would drive: the real `tessera` binary in dev mode, two clients registered
//! through `POST /register` with different certificates and subject DNs (the suite's `mtls` and
//! `mtls2`, §6), and the example resource server of `crates/resource-server` as the protected
//! resource (`resourceUrl` = `GET /accounts`, scope `accounts:read`), which validates the token
//! locally against Tessera's JWKS and checks `cnf.x5t#S256` against the caller's certificate.
//!
//! Checklist items: A.1-1/2/3/5, A.5-39..43, C.56-61, J.99-101/104/106/107, I.95-98.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_testkit::pki::client_signed_by;
use tessera_testkit::process::run;
use tessera_testkit::rs::{ResourceServer, RsConfig};

use crate::common::*;

/// Dev mode's default access-token audience: the resource server's identifier.
const DEV_AUDIENCE: &str = "https://api.tessera-dev.example";
/// Client 2 (the suite's `client2` / `mtls2`): its own organisation and software, and a
/// certificate whose subject names them (OU = org_id for the transport-certificate binding).
const ORG_2: &str = "conformance-org-0002";
const SOFTWARE_2: &str = "conformance-client-2";
const SUBJECT_2: &str = "CN=conformance-client-2,OU=conformance-org-0002,O=Conformance Second Fintech,C=GB";

// ---------------------------------------------------------------------------------------------
// Certificates and clients

/// A client certificate and key in PEM, with the certificate's DER.
struct Cert {
    pem: String,
    key: String,
    der: Vec<u8>,
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

impl Cert {
    /// A dev certificate from the manifest ("client" is the demo fintech's).
    fn dev(dev: &Dev, who: &str) -> Cert {
        let pem = std::fs::read_to_string(dev.manifest[who]["cert"].as_str().unwrap()).unwrap();
        let key = std::fs::read_to_string(dev.manifest[who]["key"].as_str().unwrap()).unwrap();
        let der = pem_to_der(&pem);
        Cert { pem, key, der }
    }

    /// A client certificate with `subject`, signed by the dev CA (valid from last year to two
    /// years ahead).
    fn from_dev_ca(dev: &Dev, subject: &str) -> Cert {
        let ca_subject = dev.manifest["ca"]["subject"].as_str().unwrap();
        let ca_key = std::fs::read_to_string(dev.manifest["ca"]["key"].as_str().unwrap()).unwrap();
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let year = 1970 + (secs / 31_556_952) as i32;
        let (pem, key) = client_signed_by(ca_subject, &ca_key, subject, (year - 1, 1, 1), (year + 2, 1, 1));
        let der = pem_to_der(&pem);
        Cert { pem, key, der }
    }

    fn client(&self, dev: &Dev) -> reqwest::Client {
        https_client(&dev.ca, Some((&self.pem, &self.key)))
    }

    /// RFC 8705 §3.1: base64url(SHA-256(DER)), no padding.
    fn x5t(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
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

/// Registers a `tls_client_auth` client for `accounts:read` over `cert` (the transport
/// certificate that becomes its credential), with a statement made with `ssa_args`; returns
/// the client_id.
async fn register(dev: &Dev, cert: &Cert, ssa_args: &[&str]) -> String {
    let body = json!({ "scope": "accounts:read", "software_statement": statement(dev, ssa_args) });
    let resp = cert.client(dev).post(dev.server.url("/register")).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let reg: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "registration refused: {reg}");
    assert_eq!(reg["token_endpoint_auth_method"], "tls_client_auth", "{reg}");
    assert_eq!(reg["scope"], "accounts:read", "accounts:read is granted in dev mode: {reg}");
    reg["client_id"].as_str().unwrap().to_owned()
}

/// The suite's configuration, in short: a dev server and two clients with different
/// certificates and subject DNs (client 1 = the demo fintech's certificate, client 2 = a second
/// organisation's certificate from the same CA).
struct Clients {
    dev: Dev,
    cert1: Cert,
    cert2: Cert,
    id1: String,
    id2: String,
}

impl Clients {
    async fn start() -> Clients {
        let dev = Dev::start(&[]);
        let cert1 = Cert::dev(&dev, "client");
        let cert2 = Cert::from_dev_ca(&dev, SUBJECT_2);
        assert_ne!(cert1.x5t(), cert2.x5t());
        let id1 = register(&dev, &cert1, &[]).await;
        let id2 = register(
            &dev,
            &cert2,
            &["--org-id", ORG_2, "--software-id", SOFTWARE_2, "--org-name", "Conformance Second Fintech"],
        )
        .await;
        assert_ne!(id1, id2);
        Clients { dev, cert1, cert2, id1, id2 }
    }

    /// The example resource server in front of this dev server: TLS with the dev server's
    /// certificate (valid for 127.0.0.1), client certificates from the dev CA, Tessera's keys
    /// fetched from `<issuer>/jwks` through the dev CA, audience = dev mode's default.
    fn resource_server(&self) -> ResourceServer {
        let m = &self.dev.manifest;
        let path = |who: &str, part: &str| std::path::PathBuf::from(m[who][part].as_str().unwrap());
        let (ca, cert, key) = (path("ca", "cert"), path("server", "cert"), path("server", "key"));
        let config = RsConfig {
            issuer: self.dev.server.base(),
            audience: DEV_AUDIENCE,
            as_ca: &ca,
            tls_cert: &cert,
            tls_key: &key,
            client_ca: &ca,
        };
        ResourceServer::start(&config, self.dev.dir.path())
    }
}

// ---------------------------------------------------------------------------------------------
// Token endpoint and resource calls

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
}

/// A `client_credentials` request naming `client_id`, over `http` (whose certificate, if any, is
/// the credential). Every token endpoint answer is JSON.
async fn token_request(http: &reqwest::Client, dev: &Dev, client_id: &str) -> Reply {
    let form = [("grant_type", "client_credentials"), ("client_id", client_id)];
    let resp = http.post(dev.server.url("/token")).form(&form).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    let reply = Reply { status, headers, body };
    assert!(reply.header("content-type").unwrap_or("").starts_with("application/json"), "{reply:?}");
    reply
}

/// Asserts an RFC 6749 §5.2 error (checklist J.100/J.101): the status, an `error` from `codes`,
/// an `error_description` in the allowed charset (OIDF checks it), no token, no-store.
fn assert_token_error(r: &Reply, statuses: &[u16], codes: &[&str], context: &str) {
    assert!(statuses.contains(&r.status), "{context}: status {} not in {statuses:?}: {r:?}", r.status);
    let code = r.body["error"].as_str().unwrap_or_else(|| panic!("{context}: no error: {r:?}"));
    assert!(codes.contains(&code), "{context}: error {code:?} not in {codes:?}");
    let description = r.body["error_description"].as_str().unwrap_or_else(|| panic!("{context}: no description"));
    assert!(description.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\'), "{description:?}");
    assert!(r.body.get("access_token").is_none(), "{context}: {r:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{context}: {r:?}");
}

/// The claims of a JWT access token, decoded without verification (the resource server verifies).
fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// The suite's entropy estimate (EnsureMinimumAccessTokenEntropy): Shannon entropy per character
/// of the string times its length.
fn shannon_bits(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = s.chars().count() as f64;
    let per_char: f64 = counts.values().map(|&k| k as f64 / n).map(|p| -p * p.log2()).sum();
    per_char * n
}

/// Module 2's checks on a successful token response (checklist J.99, J.104, J.106, C.61),
/// returning the access token.
fn assert_token_response(r: &Reply, client_id: &str, cert: &Cert, context: &str) -> String {
    assert_eq!(r.status, 200, "{context}: {r:?}");
    // CheckTokenEndpointCacheHeaders (J.99).
    assert_eq!(r.header("cache-control"), Some("no-store"), "{context}: {r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{context}: {r:?}");
    // RFC 6749 §5.1 / FAPI2 with mTLS binding: Bearer, with a positive expires_in.
    assert_eq!(r.body["token_type"], "Bearer", "{context}: {r:?}");
    assert!(r.body["expires_in"].as_i64().is_some_and(|s| s > 0), "{context}: {r:?}");
    // J.104 (FAPI2 A.2-16): no refresh token in a client_credentials response.
    assert!(r.body.get("refresh_token").is_none(), "{context}: {r:?}");
    let token = r.body["access_token"].as_str().unwrap_or_else(|| panic!("{context}: {r:?}")).to_owned();
    // J.106: at least 128 bits, by the suite's estimate over the whole token and by the
    // token's own random part (the jti of the RFC 9068 JWT).
    assert!(shannon_bits(&token) >= 128.0, "{context}: {} bits", shannon_bits(&token));
    let claims = claims_of(&token);
    let jti = claims["jti"].as_str().unwrap();
    assert!(URL_SAFE_NO_PAD.decode(jti).unwrap().len() * 8 >= 128, "{context}: jti {jti}");
    assert_eq!(claims["client_id"], client_id, "{context}: {claims}");
    assert_eq!(claims["aud"], DEV_AUDIENCE, "{context}: {claims}");
    // C.60/C.61: bound to the certificate the request came over.
    assert_eq!(claims["cnf"], json!({ "x5t#S256": cert.x5t() }), "{context}: {claims}");
    token
}

/// A resource server answer: status, `WWW-Authenticate` and body.
#[derive(Debug)]
struct RsReply {
    status: u16,
    challenge: Option<String>,
    body: String,
}

/// `GET url` with an optional raw `Authorization` header value.
async fn get_resource(http: &reqwest::Client, url: &str, authorization: Option<&str>) -> RsReply {
    let mut req = http.get(url);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    RsReply { status, challenge, body }
}

/// A 200 from `GET /accounts` for `client_id` (checklist A.5-39/42/43).
fn assert_resource_served(r: &RsReply, client_id: &str, context: &str) {
    assert_eq!(r.status, 200, "{context}: {r:?}");
    let body: Value = serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("{context}: {r:?}"));
    assert!(body["accounts"].as_array().is_some_and(|a| !a.is_empty()), "{context}: {body}");
    assert_eq!(body["client_id"], client_id, "{context}: {body}");
}

/// An RFC 6750 §3.1 error from the resource server (checklist J.107): status and
/// `WWW-Authenticate: Bearer ... error="<code>"`.
fn assert_resource_error(r: &RsReply, status: u16, code: &str, context: &str) {
    assert_eq!(r.status, status, "{context}: {r:?}");
    let challenge = r.challenge.as_deref().unwrap_or_else(|| panic!("{context}: no WWW-Authenticate: {r:?}"));
    assert!(challenge.starts_with("Bearer "), "{context}: {challenge}");
    assert!(challenge.contains(&format!("error=\"{code}\"")), "{context}: {challenge}");
    assert!(!r.body.contains("acc-001"), "{context}: the resource leaked: {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Module 1: fapi2-security-profile-final-discovery-end-point-verification

/// Module 1 (`discovery-end-point-verification`, CC): the metadata, issuer, certificate-bound
/// tokens, an MTLS auth method, PS256/ES256/EdDSA only, `client_credentials`; and the keys it
/// points to. Checklist I.95-98, C.63, A.6-44/47, A.1-1.
#[tokio::test]
async fn discovery_end_point_verification() {
    let dev = Dev::start(&[]);
    let c = dev.client();
    let base = dev.server.base();

    // I.95: both documents, JSON; I.96: issuer exact (the URL they were fetched from) and https.
    let mut docs = Vec::new();
    for path in ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"] {
        let resp = c.get(dev.server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["issuer"], base, "{path}");
        docs.push(doc);
    }
    assert_eq!(docs[0], docs[1], "the two documents differ");
    let md = &docs[0];
    let issuer = md["issuer"].as_str().unwrap();
    assert!(issuer.starts_with("https://") && !issuer.contains(['?', '#']), "{issuer}");
    assert!(!issuer.ends_with('/'), "{issuer}");

    // I.97: the members RFC 8414 requires, and the endpoints this variant uses, all https
    // under the issuer (A.1-1).
    assert!(md["response_types_supported"].is_array(), "RFC 8414 §2 requires response_types_supported: {md}");
    for member in
        ["token_endpoint", "jwks_uri", "registration_endpoint", "introspection_endpoint", "revocation_endpoint"]
    {
        let url = md[member].as_str().unwrap_or_else(|| panic!("{member} missing: {md}"));
        assert!(url.starts_with(&format!("{issuer}/")), "{member} = {url} is not under {issuer}");
    }
    // C.63: certificate-bound access tokens.
    assert_eq!(md["tls_client_certificate_bound_access_tokens"], true, "{md}");
    // An MTLS client authentication method (the variant's client_auth_type=mtls), never a
    // secret or none (FAPI2 A.2-13).
    let methods: Vec<&str> = md["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("no token_endpoint_auth_methods_supported: {md}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(methods.iter().any(|m| ["tls_client_auth", "self_signed_tls_client_auth"].contains(m)), "{methods:?}");
    for bad in ["none", "client_secret_basic", "client_secret_post", "client_secret_jwt"] {
        assert!(!methods.contains(&bad), "{bad} is advertised: {methods:?}");
    }
    // A.6-44: only PS256, ES256 and EdDSA are advertised, wherever algorithms are listed.
    let allowed = ["PS256", "ES256", "EdDSA"];
    let algs = md["token_endpoint_auth_signing_alg_values_supported"].as_array().unwrap();
    assert!(!algs.is_empty());
    for (member, value) in md.as_object().unwrap() {
        if member.ends_with("_alg_values_supported") {
            for alg in value.as_array().unwrap() {
                assert!(allowed.contains(&alg.as_str().unwrap()), "{member} advertises {alg}");
            }
        }
    }
    // The variant's profile: client_credentials is a supported grant.
    let grants = md["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!("client_credentials")), "{grants:?}");

    // The keys (A.6-47): each has kty, kid, alg and use; EC on P-256 or stronger, RSA ≥ 2048
    // bits; public parts only; algorithms from the allowed set; kids unique.
    let jwks = get_json(&c, md["jwks_uri"].as_str().unwrap()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty(), "{jwks}");
    let mut kids = Vec::new();
    for k in keys {
        for member in ["kty", "kid", "alg", "use"] {
            assert!(k[member].is_string(), "{member} missing: {k}");
        }
        assert_eq!(k["use"], "sig", "{k}");
        assert!(allowed.contains(&k["alg"].as_str().unwrap()), "{k}");
        match k["kty"].as_str().unwrap() {
            "EC" => assert!(["P-256", "P-384", "P-521"].contains(&k["crv"].as_str().unwrap_or("")), "{k}"),
            "RSA" => {
                let n = URL_SAFE_NO_PAD.decode(k["n"].as_str().unwrap()).unwrap();
                let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
                assert!(bits >= 2048, "RSA key of {bits} bits: {k}");
            }
            "OKP" => assert_eq!(k["crv"], "Ed25519", "{k}"),
            other => panic!("unexpected kty {other}: {k}"),
        }
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "JWKS leaks {private}");
        }
        kids.push(k["kid"].as_str().unwrap());
    }
    kids.sort_unstable();
    kids.dedup();
    assert_eq!(kids.len(), keys.len(), "duplicate kid: {jwks}");
}

// ---------------------------------------------------------------------------------------------
// Module 2: fapi2-security-profile-final-happy-flow

/// Module 2 (`happy-flow`, CC): two clients with different certificates each get a token (200,
/// JSON, no-store, token_type, expires_in, ≥ 128 bits, no refresh token) and call the resource;
/// each certificate with the other client's token is refused by the resource server. Checklist
/// J.99/J.104/J.106, C.56/C.60/C.61, A.5-39/41/42/43, J.107.
#[tokio::test]
async fn happy_flow() {
    let s = Clients::start().await;
    let rs = s.resource_server();
    let accounts = rs.url("/accounts");
    let (http1, http2) = (s.cert1.client(&s.dev), s.cert2.client(&s.dev));

    let t1 = assert_token_response(&token_request(&http1, &s.dev, &s.id1).await, &s.id1, &s.cert1, "client 1");
    let t2 = assert_token_response(&token_request(&http2, &s.dev, &s.id2).await, &s.id2, &s.cert2, "client 2");
    assert_ne!(t1, t2);
    assert_ne!(claims_of(&t1)["jti"], claims_of(&t2)["jti"]);

    // Each client with its own certificate and token: the resource.
    let r = get_resource(&http1, &accounts, Some(&format!("Bearer {t1}"))).await;
    assert_resource_served(&r, &s.id1, "client 1 with its own token");
    let r = get_resource(&http2, &accounts, Some(&format!("Bearer {t2}"))).await;
    assert_resource_served(&r, &s.id2, "client 2 with its own token");

    // C.60 / A.5-43: a token bound to the other certificate is invalid_token (401), both ways,
    // and for that reason (the tokens themselves were just accepted).
    for (http, token, context) in [
        (&http1, &t2, "client 1's certificate with client 2's token"),
        (&http2, &t1, "client 2's certificate with client 1's token"),
    ] {
        let r = get_resource(http, &accounts, Some(&format!("Bearer {token}"))).await;
        assert_resource_error(&r, 401, "invalid_token", context);
        assert!(r.challenge.as_deref().is_some_and(|c| c.contains("certificate")), "{context}: {r:?}");
    }

    // A.5-41: a tampered token (one character of the signature changed) is invalid_token; no
    // token at all is a bare Bearer challenge (RFC 6750 §3.1: no error code).
    let mut tampered = t1.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let r = get_resource(&http1, &accounts, Some(&format!("Bearer {tampered}"))).await;
    assert_resource_error(&r, 401, "invalid_token", "tampered signature");
    let r = get_resource(&http1, &accounts, None).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.challenge.as_deref().is_some_and(|c| c.starts_with("Bearer") && !c.contains("error=")), "{r:?}");

    // And the right pairs still work afterwards.
    let r = get_resource(&http1, &accounts, Some(&format!("Bearer {t1}"))).await;
    assert_resource_served(&r, &s.id1, "client 1 again");
    let r = get_resource(&http2, &accounts, Some(&format!("Bearer {t2}"))).await;
    assert_resource_served(&r, &s.id2, "client 2 again");
    drop(rs);
}

// ---------------------------------------------------------------------------------------------
// Module 9: fapi2-security-profile-final-access-token-type-header-case-sensitivity

/// Module 9 (`access-token-type-header-case-sensitivity`, CC): the resource server accepts the
/// `Bearer` scheme in any letter case (RFC 6750 §2.1 with RFC 9110 §11.1); and never a token in
/// the query string (RFC 6750 §2.3). Checklist A.5-39/40, J.107.
#[tokio::test]
async fn access_token_type_header_case_sensitivity() {
    let s = Clients::start().await;
    let rs = s.resource_server();
    let accounts = rs.url("/accounts");
    let http1 = s.cert1.client(&s.dev);
    let token = assert_token_response(&token_request(&http1, &s.dev, &s.id1).await, &s.id1, &s.cert1, "client 1");

    for scheme in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let r = get_resource(&http1, &accounts, Some(&format!("{scheme} {token}"))).await;
        assert_resource_served(&r, &s.id1, scheme);
    }

    // A.5-40: the token in the query string is refused, alone or next to a valid header.
    let in_query = format!("{accounts}?access_token={token}");
    let r = get_resource(&http1, &in_query, None).await;
    assert_resource_error(&r, 400, "invalid_request", "token in the query string");
    let r = get_resource(&http1, &in_query, Some(&format!("Bearer {token}"))).await;
    assert_resource_error(&r, 400, "invalid_request", "token in the query string and the header");
    drop(rs);
}

// ---------------------------------------------------------------------------------------------
// Module 31: fapi2-security-profile-final-ensure-client-id-in-token-endpoint

/// Module 31 (`ensure-client-id-in-token-endpoint`, CC): client 2's `client_id` over client 1's
/// certificate (a different subject DN) is `invalid_client`, and the other way round. Checklist
/// C.56/C.57, J.101.
#[tokio::test]
async fn ensure_client_id_in_token_endpoint() {
    let s = Clients::start().await;
    let (http1, http2) = (s.cert1.client(&s.dev), s.cert2.client(&s.dev));

    let r = token_request(&http1, &s.dev, &s.id2).await;
    assert_token_error(&r, &[401], &["invalid_client"], "client 2's client_id with client 1's certificate");
    let r = token_request(&http2, &s.dev, &s.id1).await;
    assert_token_error(&r, &[401], &["invalid_client"], "client 1's client_id with client 2's certificate");
    // No Authorization header was used, so no WWW-Authenticate is due (RFC 6749 §5.2).
    assert!(r.header("www-authenticate").is_none(), "{r:?}");

    // The control: each pair that belongs together works, so the refusals were the binding.
    assert_token_response(&token_request(&http1, &s.dev, &s.id1).await, &s.id1, &s.cert1, "client 1");
    assert_token_response(&token_request(&http2, &s.dev, &s.id2).await, &s.id2, &s.cert2, "client 2");
}

// ---------------------------------------------------------------------------------------------
// Module 32: fapi2-security-profile-final-ensure-holder-of-key-required

/// TLS 1.2 suites the suite allows on server-to-server endpoints (RFC 9325 §4.2 plus the IANA
/// "Recommended=Y" ECDHE AEAD suites), in OpenSSL's names.
const TLS12_ALLOWED: [&str; 6] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

/// TLS 1.2 suites that must be refused: CBC (with and without ECDHE), static RSA key exchange
/// (even with GCM), finite-field DHE (the FAPI1 list's DHE-RSA), anonymous (ECDH and DH), NULL, ARIA,
/// CAMELLIA and CCM8.
const TLS12_REFUSED: [&str; 18] = [
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES128-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA256",
    "AES128-SHA",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "AECDH-AES128-SHA",
    "ECDHE-ECDSA-NULL-SHA",
    "ADH-AES128-GCM-SHA256",
    "ECDHE-ECDSA-ARIA128-GCM-SHA256",
    "ECDHE-ECDSA-CAMELLIA128-SHA256",
    "ECDHE-ECDSA-AES128-CCM8",
    "NULL-SHA256",
];

/// A TLS 1.2 handshake offering every suite OpenSSL has: the suite the server picks.
fn tls12_choice(base: &str) -> Result<String, String> {
    let addr = base.trim_start_matches("https://");
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_verify(SslVerifyMode::NONE);
    b.set_min_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    b.set_cipher_list("ALL:COMPLEMENTOFALL:@SECLEVEL=0").unwrap();
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let stream = b.build().connect("localhost", tcp).map_err(|e| e.to_string())?;
    Ok(stream.ssl().current_cipher().map(|c| c.name().to_owned()).unwrap_or_default())
}

/// Module 32 (`ensure-holder-of-key-required`, CC): a TLS probe of every endpoint the metadata
/// names (no TLS 1.0/1.1; TLS 1.3 negotiated when offered; on TLS 1.2 only the BCP 195 suites);
/// and a token request without a client certificate fails with 400/401 and an error JSON.
/// Checklist A.1-1/2/3/5, C.56, J.100/J.101.
#[tokio::test]
async fn ensure_holder_of_key_required() {
    let s = Clients::start().await;
    let dev = &s.dev;
    let md = get_json(&dev.client(), &dev.server.url("/.well-known/oauth-authorization-server")).await;

    // Every distinct https origin the metadata names (endpoints and any mtls_endpoint_aliases).
    let mut urls: Vec<String> = Vec::new();
    let mut collect = |v: &Value| {
        for url in v.as_object().unwrap().values().filter_map(Value::as_str) {
            if url.starts_with("https://") {
                urls.push(url.to_owned());
            }
        }
    };
    collect(&md);
    if let Some(aliases) = md.get("mtls_endpoint_aliases") {
        collect(aliases);
    }
    let mut origins: Vec<String> = urls
        .iter()
        .map(|u| {
            let rest = u.trim_start_matches("https://");
            format!("https://{}", rest.split('/').next().unwrap())
        })
        .collect();
    origins.sort_unstable();
    origins.dedup();
    assert!(origins.contains(&dev.server.base().to_owned()), "{origins:?}");
    for base in origins.iter().map(String::as_str) {
        // A.1-2: TLS 1.0 and 1.1 fail.
        assert!(openssl_handshake(base, SslVersion::TLS1, SslVersion::TLS1, None).is_err(), "{base}: TLS 1.0");
        assert!(openssl_handshake(base, SslVersion::TLS1_1, SslVersion::TLS1_1, None).is_err(), "{base}: TLS 1.1");
        // A.1-3: TLS 1.3 is negotiated whenever the client offers it (RFC 9325 §3.1.1).
        for min in [SslVersion::TLS1, SslVersion::TLS1_2, SslVersion::TLS1_3] {
            assert_eq!(openssl_handshake(base, min, SslVersion::TLS1_3, None).as_deref(), Ok("TLSv1.3"), "{base}");
        }
        // A.1-5: TLS 1.2 is allowed, with the BCP 195 suites only.
        for suite in &TLS12_ALLOWED[..2] {
            let got = openssl_handshake(base, SslVersion::TLS1_2, SslVersion::TLS1_2, Some(suite));
            assert_eq!(got.as_deref(), Ok("TLSv1.2"), "{base}: {suite} must be accepted");
        }
        for suite in TLS12_REFUSED {
            let offer = format!("{suite}:@SECLEVEL=0");
            let got = openssl_handshake(base, SslVersion::TLS1_2, SslVersion::TLS1_2, Some(&offer));
            assert!(got.is_err(), "{base}: {suite} must be refused, got {got:?}");
        }
        let chosen = tls12_choice(base).unwrap_or_else(|e| panic!("{base}: TLS 1.2 offering everything: {e}"));
        assert!(TLS12_ALLOWED.contains(&chosen.as_str()), "{base}: the server chose {chosen}");
    }

    // C.56: a valid request for a tls_client_auth client, without a client certificate: no
    // token, 400 or 401 with an RFC 6749 §5.2 error JSON.
    let r = token_request(&dev.client(), dev, &s.id1).await;
    assert_token_error(&r, &[400, 401], &["invalid_client", "invalid_request"], "no client certificate");
    // The same request with the certificate works: the refusal was the missing certificate.
    assert_token_response(&token_request(&s.cert1.client(dev), dev, &s.id1).await, &s.id1, &s.cert1, "client 1");
}
