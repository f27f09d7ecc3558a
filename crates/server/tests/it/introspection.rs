//! Token introspection (RFC 7662, RFC 9701) and revocation (RFC 7009) end to end: the real binary
//! in dev mode, real TLS, the dev gateway client (`dev-gateway`, entitled to introspect) and
//! fintech clients registered through `POST /register`. The `oauth2` crate is the independent
//! client for both endpoints; raw `reqwest` is used where the crate hides something (`cnf`,
//! headers, exact bodies, malformed requests). RFC 9701 responses are checked with josekit
//! directly against `/jwks` (not through tessera-jose).
//!
//! Checklist items: C.62, F.81-85, G.87-89.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use oauth2::basic::{
    BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, ClientId, HttpClientError, IntrospectionUrl, RefreshToken, RequestTokenError,
    RevocationErrorResponseType, RevocationUrl, StandardRevocableToken, TokenIntrospectionResponse,
};
use reqwest::header::{ACCEPT, HeaderMap};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tessera_testkit::process::run;

use crate::common::*;

/// Dev mode's default access-token audience.
const DEV_AUDIENCE: &str = "https://api.tessera-dev.example";
/// The client dev mode provisions for the generated gateway certificate.
const GATEWAY: &str = "dev-gateway";
const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";
/// The members of an RFC 7662 response for an active token here, and `cnf` (RFC 8705 §3.2).
const MEMBERS: [&str; 12] =
    ["active", "aud", "client_id", "cnf", "exp", "iat", "iss", "jti", "nbf", "scope", "sub", "token_type"];

type IntrospectError = RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>;
type RevokeError = RequestTokenError<HttpClientError<reqwest::Error>, BasicRevocationErrorResponse>;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64url_json(part: &str) -> Map<String, Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The claims of a compact JWS, unverified (the signature is checked elsewhere).
fn payload_of(token: &str) -> Map<String, Value> {
    b64url_json(token.split('.').nth(1).unwrap())
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

/// One character of the signature changed (mid-signature: the last character also carries
/// padding bits a lenient decoder could ignore).
fn flip_signature(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let i = bytes.len() - 20;
    assert!(i > token.rfind('.').unwrap(), "inside the signature");
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// The same claims and header `kid`, signed by a key that is not the server's (josekit directly).
fn forge_with_our_kid(token: &str) -> String {
    let header = header_of(token);
    assert_eq!(header["alg"], "ES256", "dev mode signs with ES256");
    let key = josekit::jws::ES256.generate_key_pair().unwrap();
    let signer = josekit::jws::ES256.signer_from_jwk(&key.to_jwk_private_key()).unwrap();
    let mut h = josekit::jws::JwsHeader::new();
    h.set_token_type("at+jwt");
    h.set_key_id(header["kid"].as_str().unwrap());
    let payload = josekit::jwt::JwtPayload::from_map(payload_of(token)).unwrap();
    josekit::jwt::encode_with_signer(&payload, &h, &signer).unwrap()
}

/// A status, the headers and the body of a response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    text: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }

    /// An RFC 6749 §5.2 style error: status, code and a JSON content type.
    fn assert_error(&self, status: u16, code: &str, context: &str) {
        assert_eq!((self.status, self.json()["error"].as_str()), (status, Some(code)), "{context}: {self:?}");
        assert!(self.header("content-type").unwrap_or("").starts_with("application/json"), "{context}: {self:?}");
    }
}

/// Sends a request and checks what every introspection and revocation response carries, errors
/// included: `Cache-Control: no-store` and `Pragma: no-cache` (RFC 7662 §2.2 / RFC 6749 §5.1).
async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.unwrap();
    let reply =
        Reply { status: resp.status().as_u16(), headers: resp.headers().clone(), text: resp.text().await.unwrap() };
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    assert_eq!(reply.header("pragma"), Some("no-cache"), "{reply:?}");
    reply
}

/// An authorization server under test: a dev mode server, or one started by this file.
struct As {
    base: String,
    data_dir: PathBuf,
    work_dir: PathBuf,
    ca: Vec<u8>,
    manifest: Value,
}

impl As {
    fn of(dev: &Dev) -> As {
        As {
            base: dev.server.base().to_owned(),
            data_dir: dev.server.data_dir.clone(),
            work_dir: dev.dir.path().to_owned(),
            ca: dev.ca.clone(),
            manifest: dev.manifest.clone(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn client(&self) -> reqwest::Client {
        https_client(&self.ca, None)
    }

    fn pem(&self, who: &str, part: &str) -> String {
        std::fs::read_to_string(self.manifest[who][part].as_str().unwrap()).unwrap()
    }

    /// A client presenting the dev certificate `who` ("client", "gateway").
    fn client_as(&self, who: &str) -> reqwest::Client {
        https_client(&self.ca, Some((&self.pem(who, "cert"), &self.pem(who, "key"))))
    }

    fn fintech(&self) -> reqwest::Client {
        self.client_as("client")
    }

    fn gateway(&self) -> reqwest::Client {
        self.client_as("gateway")
    }

    async fn discovery(&self) -> Value {
        get_json(&self.client(), &self.url("/.well-known/oauth-authorization-server")).await
    }

    /// Registers a fintech client (tls_client_auth with the dev client certificate) from a fresh
    /// software statement of the demo directory; returns the 201 body.
    async fn register(&self, scope: &str) -> Value {
        let data = self.data_dir.to_str().unwrap();
        let out = run(&bin(), &["dev", "software-statement", "--data-dir", data], &self.work_dir, &[]);
        assert!(out.status.success(), "software-statement: {}", String::from_utf8_lossy(&out.stderr));
        let ssa = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let resp = self
            .fintech()
            .post(self.url("/register"))
            .json(&json!({ "software_statement": ssa, "scope": scope }))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 201, "registration refused: {body}");
        assert_eq!(body["token_endpoint_auth_method"], "tls_client_auth", "{body}");
        body
    }

    /// An access token for the fintech client `client_id` (client credentials over mTLS).
    async fn token(&self, client_id: &str) -> String {
        let form = [("grant_type", "client_credentials"), ("client_id", client_id)];
        let r = send(self.fintech().post(self.url("/token")).form(&form)).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Introspection with the `oauth2` crate as `caller` (client_id in the body, no secret: the
    /// certificate authenticates).
    async fn oauth2_introspect(
        &self,
        http: &reqwest::Client,
        caller: &str,
        token: &str,
    ) -> Result<BasicTokenIntrospectionResponse, IntrospectError> {
        let client = BasicClient::new(ClientId::new(caller.to_owned()))
            .set_introspection_url(IntrospectionUrl::new(self.url("/introspect")).unwrap())
            .set_auth_type(AuthType::RequestBody);
        client.introspect(&AccessToken::new(token.to_owned())).request_async(http).await
    }

    /// Introspection by the dev gateway with the `oauth2` crate.
    async fn introspect(&self, token: &str) -> BasicTokenIntrospectionResponse {
        self.oauth2_introspect(&self.gateway(), GATEWAY, token).await.unwrap_or_else(|e| panic!("introspection: {e:?}"))
    }

    /// Raw `POST /introspect` as `http`, with `form` and an optional `Accept`.
    async fn introspect_raw(&self, http: &reqwest::Client, form: &[(&str, &str)], accept: Option<&str>) -> Reply {
        let mut req = http.post(self.url("/introspect")).form(form);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        send(req).await
    }

    /// Raw introspection by the dev gateway: the JSON body of a 200.
    async fn introspect_json(&self, token: &str) -> Value {
        let r = self.introspect_raw(&self.gateway(), &[("client_id", GATEWAY), ("token", token)], None).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.header("content-type").unwrap_or("").starts_with("application/json"), "{r:?}");
        r.json()
    }

    /// Checklist F.83: exactly 200 `{"active": false}`, raw and through the oauth2 crate.
    async fn assert_inactive(&self, token: &str, case: &str) {
        assert_eq!(self.introspect_json(token).await, json!({"active": false}), "{case}");
        let typed = self.introspect(token).await;
        assert!(!typed.active(), "{case}");
        assert!(
            typed.scopes().is_none()
                && typed.client_id().is_none()
                && typed.token_type().is_none()
                && typed.exp().is_none()
                && typed.iat().is_none()
                && typed.nbf().is_none()
                && typed.sub().is_none()
                && typed.aud().is_none()
                && typed.iss().is_none()
                && typed.jti().is_none(),
            "{case}: {typed:?}"
        );
    }

    async fn assert_active(&self, token: &str, case: &str) {
        let body = self.introspect_json(token).await;
        assert_eq!(body["active"], true, "{case}: {body}");
    }

    /// Revocation with the `oauth2` crate as the fintech `client_id`.
    async fn revoke(&self, client_id: &str, token: StandardRevocableToken) -> Result<(), RevokeError> {
        self.revoke_as(&self.fintech(), client_id, token).await
    }

    async fn revoke_as(
        &self,
        http: &reqwest::Client,
        client_id: &str,
        token: StandardRevocableToken,
    ) -> Result<(), RevokeError> {
        let client = BasicClient::new(ClientId::new(client_id.to_owned()))
            .set_revocation_url(RevocationUrl::new(self.url("/revoke")).unwrap())
            .set_auth_type(AuthType::RequestBody);
        client.revoke_token(token).unwrap().request_async(http).await
    }
}

fn access(token: &str) -> StandardRevocableToken {
    StandardRevocableToken::AccessToken(AccessToken::new(token.to_owned()))
}

fn revocation_error(r: Result<(), RevokeError>, context: &str) -> RevocationErrorResponseType {
    match r {
        Err(RequestTokenError::ServerResponse(e)) => e.error().clone(),
        other => panic!("{context}: expected an error response, got {other:?}"),
    }
}

fn introspection_error(
    r: Result<BasicTokenIntrospectionResponse, IntrospectError>,
    context: &str,
) -> BasicErrorResponse {
    match r {
        Err(RequestTokenError::ServerResponse(e)) => e,
        other => panic!("{context}: expected an error response, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_active_token_gives_every_member_and_cnf() {
    let dev = Dev::start(&[]);
    let a = As::of(&dev);
    let meta = a.discovery().await;
    // RFC 8414 / RFC 9701 §7: the endpoints and their methods are advertised; no RS256.
    assert_eq!(meta["introspection_endpoint"], a.url("/introspect"));
    assert_eq!(meta["revocation_endpoint"], a.url("/revoke"));
    for m in ["introspection_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported"] {
        assert_eq!(meta[m], json!(["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"]), "{m}");
    }
    assert_eq!(meta["introspection_signing_alg_values_supported"], json!(["PS256", "ES256", "EdDSA"]));

    let reg = a.register("accounts:read").await;
    let id = reg["client_id"].as_str().unwrap();
    let token = a.token(id).await;
    let jwks = get_json(&a.client(), &a.url("/jwks")).await;
    let claims = verify_with_jwks(&token, &jwks);

    // The oauth2 crate's typed view: every RFC 7662 §2.2 member it knows (checklist F.82).
    let typed = a.introspect(&token).await;
    assert!(typed.active());
    let scopes: Vec<&str> = typed.scopes().unwrap().iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["accounts:read"]);
    assert_eq!(typed.client_id().unwrap().as_str(), id);
    assert_eq!(typed.sub(), Some(id), "client credentials: sub is the client");
    assert_eq!(typed.aud(), Some(&vec![DEV_AUDIENCE.to_owned()]));
    assert_eq!(typed.iss(), Some(a.base.as_str()));
    assert_eq!(typed.token_type(), Some(&BasicTokenType::Bearer));
    assert_eq!(typed.exp().unwrap().timestamp(), claims["exp"].as_i64().unwrap());
    assert_eq!(typed.iat().unwrap().timestamp(), claims["iat"].as_i64().unwrap());
    assert_eq!(typed.nbf().unwrap().timestamp(), claims["nbf"].as_i64().unwrap());
    assert_eq!(typed.jti(), claims["jti"].as_str());
    assert!(typed.username().is_none(), "no resource owner in client credentials");

    // The raw body: exactly these members, equal to the token's claims, and cnf at the top level
    // with the certificate's thumbprint, recomputed here (RFC 8705 §3.2, checklist C.62).
    let body = a.introspect_json(&token).await;
    let mut members: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, MEMBERS, "{body}");
    for m in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf"] {
        assert_eq!(body[m], claims[m], "{m}");
    }
    assert_eq!((&body["active"], &body["token_type"]), (&json!(true), &json!("Bearer")));
    let der = pem_to_der(&a.pem("client", "cert"));
    let x5t = URL_SAFE_NO_PAD.encode(Sha256::digest(&der));
    assert_eq!(body["cnf"], json!({ "x5t#S256": x5t }));
    // A hint, even one for another type, is only a hint (RFC 7662 §2.1).
    for hint in ["access_token", "refresh_token", "something-else"] {
        let form = [("client_id", GATEWAY), ("token", token.as_str()), ("token_type_hint", hint)];
        let r = a.introspect_raw(&a.gateway(), &form, None).await;
        assert_eq!((r.status, r.json()), (200, body.clone()), "hint {hint}");
    }

    // RFC 9701: the signed form on request (checklist F.85).
    let form = [("client_id", GATEWAY), ("token", token.as_str())];
    for accept in [JWT_MEDIA_TYPE, "application/json;q=0.5, application/token-introspection+jwt"] {
        let r = a.introspect_raw(&a.gateway(), &form, Some(accept)).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some(JWT_MEDIA_TYPE), "{accept}");
        let jwt = r.text.trim();
        let header = header_of(jwt);
        assert_eq!(header["typ"], "token-introspection+jwt", "{header}");
        assert_eq!(header["alg"], "ES256", "{header}");
        let signed = verify_with_jwks(jwt, &jwks);
        assert_eq!(signed["iss"], a.base);
        assert_eq!(signed["aud"], GATEWAY, "aud is the caller's client_id");
        assert!((signed["iat"].as_i64().unwrap() - now()).abs() <= 30, "{signed}");
        assert_eq!(signed["token_introspection"], body, "the RFC 7662 members, inside token_introspection");
        // Nothing that could make the response pass for an access token: no RFC 7662 member at
        // the top level (iss, aud and iat are the response's own), and not typed at+jwt.
        for m in MEMBERS.iter().filter(|m| !["iss", "aud", "iat"].contains(m)) {
            assert!(signed.get(*m).is_none(), "{m} at the top level: {signed}");
        }
        let mut top: Vec<&str> = signed.as_object().unwrap().keys().map(String::as_str).collect();
        top.sort_unstable();
        assert_eq!(top, ["aud", "iat", "iss", "token_introspection"]);
    }
    // An inactive token in the signed form: the same `{"active": false}`, inside.
    let r = a.introspect_raw(&a.gateway(), &[("client_id", GATEWAY), ("token", "garbage")], Some(JWT_MEDIA_TYPE)).await;
    assert_eq!((r.status, r.header("content-type")), (200, Some(JWT_MEDIA_TYPE)));
    assert_eq!(verify_with_jwks(r.text.trim(), &jwks)["token_introspection"], json!({"active": false}));
    // Without the JWT media type in Accept: plain JSON.
    let r = a.introspect_raw(&a.gateway(), &form, Some("application/json")).await;
    assert!(r.header("content-type").unwrap().starts_with("application/json"), "{r:?}");
    assert_eq!(r.json(), body);
}

#[tokio::test]
async fn inactive_tokens_are_active_false_and_nothing_else() {
    let dev = Dev::start(&[]);
    let a = As::of(&dev);
    let reg = a.register("accounts:read").await;
    let id = reg["client_id"].as_str().unwrap();
    let good = a.token(id).await;
    a.assert_active(&good, "the control").await;
    let meta = a.discovery().await;
    let signed_metadata = meta["signed_metadata"].as_str().unwrap();
    let jwt_response = a
        .introspect_raw(&a.gateway(), &[("client_id", GATEWAY), ("token", good.as_str())], Some(JWT_MEDIA_TYPE))
        .await
        .text;

    // Checklist F.83: unknown, forged, foreign-typed tokens.
    let cases = [
        ("garbage", "garbage".to_owned()),
        ("three empty segments", "..".to_owned()),
        ("a bad signature", flip_signature(&good)),
        ("another key with our kid", forge_with_our_kid(&good)),
        ("signed_metadata: ours, but not an access token", signed_metadata.to_owned()),
        ("an introspection response: ours, but not an access token", jwt_response.trim().to_owned()),
        ("longer than any token of ours", "a".repeat(9_000)),
    ];
    for (case, token) in &cases {
        a.assert_inactive(token, case).await;
    }

    // Revoked through the oauth2 crate (RFC 7009).
    let revoked = a.token(id).await;
    a.assert_active(&revoked, "before revocation").await;
    a.revoke(id, access(&revoked)).await.unwrap();
    a.assert_inactive(&revoked, "revoked").await;
    a.assert_active(&good, "revoking one token leaves the others").await;

    // A client that deleted itself (RFC 7592 §2.3 offboards it): its tokens die with it.
    let gone = a.register("accounts:read").await;
    let gone_id = gone["client_id"].as_str().unwrap();
    let orphan = a.token(gone_id).await;
    a.assert_active(&orphan, "before the delete").await;
    let r = a
        .fintech()
        .delete(gone["registration_client_uri"].as_str().unwrap())
        .bearer_auth(gone["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    a.assert_inactive(&orphan, "a token of a deleted client").await;
    a.assert_active(&good, "another client's token is unaffected").await;

    // Another issuer: a second dev server's token, active there, is inactive here.
    let other = Dev::start(&[]);
    let b = As::of(&other);
    let b_reg = b.register("accounts:read").await;
    let foreign = b.token(b_reg["client_id"].as_str().unwrap()).await;
    b.assert_active(&foreign, "at its own issuer").await;
    a.assert_inactive(&foreign, "issued by another issuer").await;
    b.assert_inactive(&good, "the other way round").await;
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    let dev = Dev::start(&[("TESSERA_TOKEN__DEFAULT_LIFETIME_SECS", "1")]);
    let a = As::of(&dev);
    let reg = a.register("accounts:read").await;
    let id = reg["client_id"].as_str().unwrap();
    // A one-second token may already be past its exp when introspected; one fresh enough shows
    // the setup is sound.
    let mut token = String::new();
    let mut seen_active = false;
    for _ in 0..5 {
        token = a.token(id).await;
        let claims = payload_of(&token);
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1, "{claims:?}");
        if a.introspect_json(&token).await["active"] == true {
            seen_active = true;
            break;
        }
    }
    assert!(seen_active, "no one-second token was ever active");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    a.assert_inactive(&token, "expired").await;
    // RFC 7009 §2.2: revoking an expired token is a success (nothing left to do).
    a.revoke(id, access(&token)).await.unwrap();
    a.assert_inactive(&token, "expired, then revoked").await;
}

#[tokio::test]
async fn introspection_callers_must_authenticate_and_be_entitled() {
    let dev = Dev::start(&[]);
    let a = As::of(&dev);
    let reg = a.register("accounts:read").await;
    let id = reg["client_id"].as_str().unwrap();
    let token = a.token(id).await;
    let form = [("client_id", GATEWAY), ("token", token.as_str())];

    // RFC 7662 §2.1/§2.3, checklist F.81/F.84: a caller that does not authenticate gets 401.
    let r = a.introspect_raw(&a.client(), &form, None).await;
    r.assert_error(401, "invalid_client", "no client certificate");
    let r = a.introspect_raw(&a.fintech(), &form, None).await;
    r.assert_error(401, "invalid_client", "the gateway's client_id with another certificate");
    let r = a.introspect_raw(&a.gateway(), &[("client_id", "no-such-client"), ("token", &token)], None).await;
    r.assert_error(401, "invalid_client", "an unknown client");
    let r = a
        .introspect_raw(&a.gateway(), &[("client_id", GATEWAY), ("client_secret", "x"), ("token", &token)], None)
        .await;
    r.assert_error(401, "invalid_client", "a client secret");
    let e =
        introspection_error(a.oauth2_introspect(&a.client(), GATEWAY, &token).await, "oauth2 without a certificate");
    assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient);
    // Unauthenticated callers learn nothing about the token, whatever it is.
    let r = a.introspect_raw(&a.client(), &[("client_id", GATEWAY), ("token", "garbage")], None).await;
    r.assert_error(401, "invalid_client", "no certificate, garbage token");

    // MS §6.2: an ordinary client is not entitled, even for its own token (403, naming the
    // entitlement it lacks).
    let r = a.introspect_raw(&a.fintech(), &[("client_id", id), ("token", &token)], None).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.json()["error_description"].as_str().unwrap().contains("introspection"), "{r:?}");
    assert!(r.json().get("active").is_none(), "{r:?}");
    let e = introspection_error(a.oauth2_introspect(&a.fintech(), id, &token).await, "oauth2 as the fintech");
    assert_eq!(*e.error(), BasicErrorResponseType::UnauthorizedClient);
    assert!(e.error_description().unwrap().contains("introspection"), "{e:?}");

    // §2.1: POST only; the token is required; form-encoded.
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = send(a.gateway().request(method.clone(), a.url("/introspect"))).await;
        r.assert_error(405, "invalid_request", &format!("{method} /introspect"));
        // RFC 9110 §15.5.6: a 405 names the allowed methods.
        assert_eq!(r.header("allow"), Some("POST"), "{r:?}");
    }
    let r = a.introspect_raw(&a.gateway(), &[("client_id", GATEWAY)], None).await;
    r.assert_error(400, "invalid_request", "no token");
    let r = a.introspect_raw(&a.gateway(), &[("client_id", GATEWAY), ("token", "")], None).await;
    r.assert_error(400, "invalid_request", "an empty token");
    let r = a.introspect_raw(&a.gateway(), &[("client_id", GATEWAY), ("token", &token), ("token", &token)], None).await;
    r.assert_error(400, "invalid_request", "the token twice");
    let r = send(a.gateway().post(a.url("/introspect")).json(&json!({"client_id": GATEWAY, "token": token}))).await;
    r.assert_error(400, "invalid_request", "a JSON body");

    // And the entitled gateway, for contrast, with the same token.
    a.assert_active(&token, "the gateway").await;
}

#[tokio::test]
async fn revocation_with_the_oauth2_crate() {
    let dev = Dev::start(&[]);
    let a = As::of(&dev);
    let one = a.register("accounts:read").await;
    let one = one["client_id"].as_str().unwrap();
    let two = a.register("accounts:read").await;
    let two = two["client_id"].as_str().unwrap();

    // RFC 7009 §2.2: the client's own token: 200, then inactive; again: 200 (idempotent).
    let token = a.token(one).await;
    a.assert_active(&token, "before").await;
    a.revoke(one, access(&token)).await.unwrap();
    a.assert_inactive(&token, "revoked by its client").await;
    a.revoke(one, access(&token)).await.unwrap();

    // An unknown or malformed token: 200 as well (§2.2).
    a.revoke(one, access("no-such-token")).await.unwrap();
    a.revoke(one, access(&flip_signature(&a.token(one).await))).await.unwrap();

    // §2.1: another client's token is refused, and stays active.
    let theirs = a.token(two).await;
    let err = revocation_error(a.revoke(one, access(&theirs)).await, "another client's token");
    assert_eq!(err, RevocationErrorResponseType::Basic(BasicErrorResponseType::UnauthorizedClient));
    a.assert_active(&theirs, "after another client tried to revoke it").await;
    // The gateway is no exception.
    let err = revocation_error(a.revoke_as(&a.gateway(), GATEWAY, access(&theirs)).await, "the gateway");
    assert_eq!(err, RevocationErrorResponseType::Basic(BasicErrorResponseType::UnauthorizedClient));
    a.assert_active(&theirs, "after the gateway tried to revoke it").await;

    // §2.2.1: a JWT of ours that is not an access token cannot be revoked here.
    let signed_metadata = a.discovery().await["signed_metadata"].as_str().unwrap().to_owned();
    let err = revocation_error(a.revoke(one, access(&signed_metadata)).await, "signed_metadata");
    assert_eq!(err, RevocationErrorResponseType::UnsupportedTokenType);
    let r = send(a.fintech().post(a.url("/revoke")).form(&[("client_id", one), ("token", &signed_metadata)])).await;
    r.assert_error(400, "unsupported_token_type", "signed_metadata, raw");

    // Unauthenticated: 401, and the token stays active.
    let err = revocation_error(a.revoke_as(&a.client(), two, access(&theirs)).await, "no certificate");
    assert_eq!(err, RevocationErrorResponseType::Basic(BasicErrorResponseType::InvalidClient));
    let r = send(a.client().post(a.url("/revoke")).form(&[("client_id", two), ("token", &theirs)])).await;
    r.assert_error(401, "invalid_client", "no certificate, raw");
    let r = send(a.gateway().post(a.url("/revoke")).form(&[("client_id", two), ("token", &theirs)])).await;
    r.assert_error(401, "invalid_client", "another client's certificate");
    a.assert_active(&theirs, "after unauthenticated attempts").await;

    // §2.1: token_type_hint is only a hint: refresh_token with an access token still revokes it.
    let hinted = a.token(two).await;
    a.revoke(two, StandardRevocableToken::RefreshToken(RefreshToken::new(hinted.clone()))).await.unwrap();
    a.assert_inactive(&hinted, "revoked with a refresh_token hint").await;
    let unknown_hint = a.token(two).await;
    let form = [("client_id", two), ("token", unknown_hint.as_str()), ("token_type_hint", "no-such-type")];
    let r = send(a.fintech().post(a.url("/revoke")).form(&form)).await;
    assert_eq!(r.status, 200, "an unknown hint is ignored: {r:?}");
    a.assert_inactive(&unknown_hint, "revoked with an unknown hint").await;

    // Malformed requests.
    let r = send(a.fintech().get(a.url("/revoke"))).await;
    r.assert_error(405, "invalid_request", "GET /revoke");
    assert_eq!(r.header("allow"), Some("POST"), "{r:?}");
    let r = send(a.fintech().post(a.url("/revoke")).form(&[("client_id", two)])).await;
    r.assert_error(400, "invalid_request", "no token");
    let r = send(a.fintech().post(a.url(&format!("/revoke?token={theirs}"))).form(&[("client_id", two)])).await;
    r.assert_error(400, "invalid_request", "the token in the URL");
    a.assert_active(&theirs, "the end").await;
}

// ---------------------------------------------------------------------------------------------
// Restarts on the same data directory. Dev mode's issuer is https://ADDRESS, so a restart keeps
// the issuer only on the same port: these servers are started here with a fixed `--listen`.

/// `tessera serve` in dev mode on `listen` with `data_dir`; killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(data_dir: &Path, listen: &str) -> Server {
        let log = data_dir.parent().unwrap().join("stderr.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--data-dir", data_dir.to_str().unwrap()])
            .current_dir(data_dir.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout for the life of the process.
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("tessera: listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(base) => Server { child, base },
            Err(_) => {
                let _ = child.kill();
                panic!("tessera did not start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        }
    }

    fn of(&self, data_dir: &Path, work_dir: &Path) -> As {
        let manifest = read_manifest(data_dir);
        let ca = std::fs::read(manifest["ca"]["cert"].as_str().unwrap()).unwrap();
        As { base: self.base.clone(), data_dir: data_dir.to_owned(), work_dir: work_dir.to_owned(), ca, manifest }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn revocation_is_durable_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start(&data, "127.0.0.1:0");
    let listen = first.base.trim_start_matches("https://").to_owned();
    let a = first.of(&data, dir.path());
    let reg = a.register("accounts:read").await;
    let id = reg["client_id"].as_str().unwrap();
    let revoked = a.token(id).await;
    let kept = a.token(id).await;
    a.revoke(id, access(&revoked)).await.unwrap();
    a.assert_inactive(&revoked, "revoked").await;
    a.assert_active(&kept, "not revoked").await;
    drop(first);

    // Same data directory, same address: same issuer, same keys, same clients.
    let second = Server::start(&data, &listen);
    assert_eq!(second.base, a.base);
    let a2 = second.of(&data, dir.path());
    a2.assert_active(&kept, "the unrevoked token survives the restart").await;
    a2.assert_inactive(&revoked, "the revocation survives the restart").await;
    // Revocation after the restart works too, and a fresh token is active.
    a2.revoke(id, access(&kept)).await.unwrap();
    a2.assert_inactive(&kept, "revoked after the restart").await;
    let fresh = a2.token(id).await;
    a2.assert_active(&fresh, "issued after the restart").await;
    drop(second);

    // Same keys, another address, so another issuer: the signature verifies, but the tokens are
    // not this issuer's (RFC 9068 §4 iss check) and are inactive.
    let third = Server::start(&data, "127.0.0.1:0");
    assert_ne!(third.base, a.base);
    let a3 = third.of(&data, dir.path());
    let jwks = get_json(&a3.client(), &a3.url("/jwks")).await;
    assert_eq!(verify_with_jwks(&fresh, &jwks)["iss"], a.base, "the same key signed it");
    a3.assert_inactive(&fresh, "a token of the same key under another issuer").await;
    let own = a3.token(id).await;
    a3.assert_active(&own, "its own token").await;
}
