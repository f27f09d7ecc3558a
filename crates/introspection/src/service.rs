//! Introspection as a service, without HTTP.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_core::client::{ClientStatus, ScopeState};
use tessera_core::error::IntrospectionError;
use tessera_core::keys::{AccessTokenVerifier, SignerSource};
use tessera_core::{Clock, Issuer};
use tessera_http::PeerCertificates;
use tessera_store::{ClientCache, ClientStore, Revocations, TokenStore};
use tessera_token_endpoint::TokenService;
use tessera_token_endpoint::auth::{Credentials, Form};
use tessera_token_endpoint::inspect::{IssuedToken, is_active, issued_by_us};

pub struct Introspector {
    issuer: Issuer,
    auth: Arc<TokenService>,
    verifier: Arc<dyn AccessTokenVerifier>,
    signer: Arc<dyn SignerSource>,
    clients: Arc<ClientCache>,
    revocations: Arc<Revocations>,
    clock: Arc<dyn Clock>,
    /// The granted scope that entitles a client to introspect.
    entitlement_scope: String,
    fallback: Option<Fallback>,
}

/// In a cluster, the caches are trusted only while change notices arrive. When they may have
/// been missed (`live` false: Redis unreachable), revocation and client state are read from SQL,
/// and if SQL cannot answer either, the answer is 503: a revoked token is never reported active.
pub struct Fallback {
    pub live: Arc<AtomicBool>,
    pub tokens: Arc<dyn TokenStore>,
    pub clients: Arc<dyn ClientStore>,
}

/// The RFC 7662 response, or its RFC 9701 signed form.
#[derive(Debug)]
pub enum IntrospectionResult {
    Json(Value),
    Jwt(String),
}

/// Members copied from the token to an active response (RFC 7662 §2.2, RFC 8705 §3.2).
const MEMBERS: [&str; 10] = ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf"];

impl Introspector {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        issuer: Issuer,
        auth: Arc<TokenService>,
        verifier: Arc<dyn AccessTokenVerifier>,
        signer: Arc<dyn SignerSource>,
        clients: Arc<ClientCache>,
        revocations: Arc<Revocations>,
        clock: Arc<dyn Clock>,
        entitlement_scope: String,
    ) -> Introspector {
        Introspector { issuer, auth, verifier, signer, clients, revocations, clock, entitlement_scope, fallback: None }
    }

    pub fn with_fallback(mut self, fallback: Fallback) -> Introspector {
        self.fallback = Some(fallback);
        self
    }

    /// State from SQL, for a node that may have missed notices.
    async fn active_per_sql(
        &self,
        issued: &IssuedToken,
        now: tessera_core::UnixTime,
        fb: &Fallback,
    ) -> Result<bool, IntrospectionError> {
        let unavailable =
            |e: tessera_store::StoreError| IntrospectionError::Unavailable { internal: format!("degraded check: {e}") };
        if issued.exp <= now.0 || fb.tokens.is_revoked(&issued.jti).await.map_err(unavailable)? {
            return Ok(false);
        }
        let Some(client) = fb.clients.get_client(&issued.client_id).await.map_err(unavailable)? else {
            return Ok(false);
        };
        Ok(client.status == ClientStatus::Active && client.tokens_not_before.is_none_or(|nb| issued.iat >= nb.0))
    }

    /// `POST /introspect`.
    pub async fn introspect(
        &self,
        form: &Form,
        authorization_header: bool,
        peer: &PeerCertificates,
        want_jwt: bool,
    ) -> Result<IntrospectionResult, IntrospectionError> {
        let now = self.clock.now();
        // RFC 7662 §2.1 / FAPI2 MS §6.2: only authenticated, entitled callers, so that an
        // ordinary client cannot probe tokens.
        let caller = self.auth.authenticate(&Credentials { form, authorization_header, peer }, now).await?;
        // A registration that has expired entitles to nothing, as at the token endpoint.
        let entitled = caller.status == tessera_core::client::ClientStatus::Active
            && !caller.is_expired(now)
            && caller.scopes_in(ScopeState::Granted).any(|s| s == self.entitlement_scope);
        if !entitled {
            return Err(IntrospectionError::NotEntitled(format!(
                "this client is not entitled to introspect tokens: it needs the {:?} scope granted",
                self.entitlement_scope
            )));
        }
        let token = form
            .get("token")
            .map_err(IntrospectionError::from)?
            .ok_or_else(|| IntrospectionError::InvalidRequest("token is required".into()))?;
        let _hint = form.get("token_type_hint").map_err(IntrospectionError::from)?;

        let mut body = Map::new();
        let issued = issued_by_us(token, self.verifier.as_ref(), &self.issuer);
        let active = match (&issued, &self.fallback) {
            (None, _) => false,
            (Some(t), Some(fb)) if !fb.live.load(Ordering::SeqCst) => {
                // Caches may be stale: both the memory and SQL must agree the token is good.
                is_active(t, &self.clients, &self.revocations, now) && self.active_per_sql(t, now, fb).await?
            }
            (Some(t), _) => is_active(t, &self.clients, &self.revocations, now),
        };
        match issued {
            Some(issued) if active => {
                body.insert("active".into(), json!(true));
                for m in MEMBERS {
                    if let Some(v) = issued.claims.get(m) {
                        body.insert(m.into(), v.clone());
                    }
                }
                body.insert("token_type".into(), json!("Bearer"));
            }
            // Inactive, unknown, expired, revoked, foreign: `active: false` and nothing else
            // (RFC 7662 §2.2), never an error.
            _ => {
                body.insert("active".into(), json!(false));
            }
        }
        if !want_jwt {
            return Ok(IntrospectionResult::Json(Value::Object(body)));
        }
        // RFC 9701 §5: the members go inside `token_introspection`, never at the top level.
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer.as_str()));
        claims.insert("aud".into(), json!(caller.client_id));
        claims.insert("iat".into(), json!(now.0));
        claims.insert("token_introspection".into(), Value::Object(body));
        let signed = self
            .signer
            .current()
            .sign("token-introspection+jwt", &claims)
            .map_err(|e| IntrospectionError::Unavailable { internal: format!("signing: {e}") })?;
        Ok(IntrospectionResult::Jwt(signed.compact))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The service without HTTP: a gateway authenticating with a self-signed certificate
    //! (RFC 8705 §2.2), tokens signed with a generated ES256 key, a fixed clock, in-memory stores.
    //! Checklist F.81-85, C.62.

    use std::collections::BTreeMap;

    use async_trait::async_trait;
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use rustls_pki_types::CertificateDer;
    use tessera_core::client::{CachedClient, ClientRecord, ScopeGrant};
    use tessera_core::keys::{SignError, SignedJwt, SigningAlg, TokenSigner};
    use tessera_core::{ClientId, FixedClock, KeyId, OsRng, UnixTime};
    use tessera_http::mtls::TrustAnchors;
    use tessera_jose::{Jwk, KeyMaterial};
    use tessera_store::{AuditSink, MemoryStore, StoreError, UsageRecorder};
    use tessera_token_endpoint::{ClientKeys, TokenSettings};

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://as.bank.example";
    const ENTITLEMENT: &str = "introspection";

    /// The server's key: signs (SignerSource) and verifies (AccessTokenVerifier) like KeyService.
    struct ServerKey(Arc<Signer>);
    struct Signer(KeyMaterial);

    impl TokenSigner for Signer {
        fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<SignedJwt, SignError> {
            sign(&self.0, typ, claims).map(|compact| SignedJwt {
                compact,
                kid: self.0.kid.clone(),
                alg: SigningAlg::ES256,
            })
        }
    }

    impl SignerSource for ServerKey {
        fn current(&self) -> Arc<dyn TokenSigner> {
            self.0.clone()
        }
    }

    impl AccessTokenVerifier for ServerKey {
        fn verify(&self, token: &str, typ: &str) -> Option<Map<String, Value>> {
            tessera_jose::verify_with_jwks(token, std::slice::from_ref(&self.0.0.public_jwk), Some(typ))
                .ok()
                .map(|v| v.claims)
        }
    }

    fn sign(key: &KeyMaterial, typ: &str, claims: &Map<String, Value>) -> Result<String, SignError> {
        tessera_jose::sign_with_jwk(SigningAlg::ES256, &key.private_jwk, typ, claims)
            .map_err(|e| SignError::Crypto(e.to_string()))
    }

    /// A client's keys are the `jwks` it registered.
    struct RegisteredKeys;

    #[async_trait]
    impl ClientKeys for RegisteredKeys {
        async fn keys(&self, client: &CachedClient, _refresh: bool) -> Result<Vec<Jwk>, String> {
            let Some(tessera_core::client::RegisteredKeys::Jwks(jwks)) = client.auth().keys() else {
                return Ok(vec![]);
            };
            let jwks: Value = serde_json::from_str(jwks).map_err(|e| e.to_string())?;
            let keys = jwks.get("keys").and_then(Value::as_array);
            keys.into_iter()
                .flatten()
                .map(|k| Jwk::from_map(k.as_object().cloned().unwrap_or_default()).map_err(|e| e.to_string()))
                .collect()
        }
    }

    /// A SQL store that cannot be reached.
    struct Down;

    #[async_trait]
    impl TokenStore for Down {
        async fn revoke(
            &self,
            _: &str,
            _: &ClientId,
            _: UnixTime,
            _: UnixTime,
            _: &[tessera_core::audit::AuditEvent],
        ) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn revoked(&self, _: UnixTime) -> Result<Vec<(String, UnixTime)>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn is_revoked(&self, _: &str) -> Result<bool, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn purge_expired(&self, _: UnixTime) -> Result<u64, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
    }

    /// A self-signed certificate (DER) and its public JWK carrying it in `x5c`.
    fn self_signed(cn: &str) -> (Vec<u8>, Value) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let raw = key.public_key_raw();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
            "x5c": [STANDARD.encode(&der)],
        });
        (der, jwk)
    }

    fn peer(der: &[u8]) -> PeerCertificates {
        PeerCertificates::from_chain(vec![CertificateDer::from(der.to_vec())])
    }

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    fn grant(scope: &str, state: ScopeState) -> ScopeGrant {
        ScopeGrant { scope: scope.into(), state, rule: "test".into(), decided_at: UnixTime(NOW), reason: None }
    }

    /// An active self_signed_tls_client_auth client registered with `jwk`.
    fn client(id: &str, jwk: &Value, scopes: Vec<ScopeGrant>) -> ClientRecord {
        let metadata = json!({
            "token_endpoint_auth_method": "self_signed_tls_client_auth",
            "jwks": { "keys": [jwk] },
        });
        ClientRecord {
            client_id: ClientId::new(id),
            status: ClientStatus::Active,
            status_reason: None,
            org_id: "org-1".into(),
            org_name: "Org One".into(),
            software_id: id.into(),
            directory: "directory".into(),
            purpose: "tests".into(),
            risk_tier: "medium".into(),
            created_at: UnixTime(NOW - 1000),
            updated_at: UnixTime(NOW - 1000),
            expires_at: Some(UnixTime(NOW + 86_400)),
            last_used_at: None,
            tokens_not_before: None,
            registration_token_hash: String::new(),
            ssa_jti: None,
            transport_cert_subject: format!("CN={id}"),
            scopes,
            metadata: metadata.as_object().cloned().unwrap(),
        }
    }

    struct Fixture {
        introspector: Introspector,
        clients: Arc<ClientCache>,
        revocations: Arc<Revocations>,
        key: Arc<ServerKey>,
        gateway: (Vec<u8>, Value),
        fintech: (Vec<u8>, Value),
    }

    impl Fixture {
        /// Needs a tokio runtime (the audit writer is a task).
        fn new(fallback: Option<Fallback>) -> Fixture {
            let clock = FixedClock::new(NOW);
            let clients = Arc::new(ClientCache::new());
            let revocations = Arc::new(Revocations::new());
            let store = Arc::new(MemoryStore::new());
            let key = Arc::new(ServerKey(Arc::new(Signer(
                tessera_jose::generate(SigningAlg::ES256, KeyId::new("as-1")).unwrap(),
            ))));
            let settings = TokenSettings {
                default_audience: "https://api.bank.example".into(),
                resources: vec![],
                tier_lifetimes: BTreeMap::new(),
                default_lifetime_secs: 300,
                max_lifetime_secs: 900,
                accept_token_endpoint_audience: false,
            };
            let auth = Arc::new(TokenService::new(
                Issuer::parse(ISSUER).unwrap(),
                settings,
                clients.clone(),
                TrustAnchors::from_ders(&[]).unwrap(),
                Arc::new(RegisteredKeys),
                store.clone(),
                key.clone(),
                AuditSink::start(store.clone()),
                UsageRecorder::new(60),
                Arc::new(clock.clone()),
                Arc::new(OsRng),
            ));
            let mut introspector = Introspector::new(
                Issuer::parse(ISSUER).unwrap(),
                auth,
                key.clone(),
                key.clone(),
                clients.clone(),
                revocations.clone(),
                Arc::new(clock),
                ENTITLEMENT.into(),
            );
            if let Some(fb) = fallback {
                introspector = introspector.with_fallback(fb);
            }
            let gateway = self_signed("gateway");
            let fintech = self_signed("fintech");
            clients.put(client("gw", &gateway.1, vec![grant(ENTITLEMENT, ScopeState::Granted)]));
            clients.put(client("fin", &fintech.1, vec![grant("accounts:read", ScopeState::Granted)]));
            Fixture { introspector, clients, revocations, key, gateway, fintech }
        }

        /// An access token of this server with `claims`.
        fn token(&self, claims: &Value) -> String {
            sign(&self.key.0.0, "at+jwt", claims.as_object().unwrap()).unwrap()
        }

        /// `POST /introspect` by the gateway.
        async fn ask(&self, token: &str, jwt: bool) -> Result<IntrospectionResult, IntrospectionError> {
            self.introspector
                .introspect(&form(&[("client_id", "gw"), ("token", token)]), false, &peer(&self.gateway.0), jwt)
                .await
        }

        async fn json(&self, token: &str) -> Value {
            match self.ask(token, false).await {
                Ok(IntrospectionResult::Json(v)) => v,
                other => panic!("{other:?}"),
            }
        }
    }

    /// A fintech token's claims, as the token endpoint issues them, plus one claim that is not an
    /// introspection member.
    fn claims(jti: &str) -> Value {
        json!({
            "iss": ISSUER, "sub": "fin", "client_id": "fin", "aud": "https://api.bank.example",
            "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 290, "jti": jti, "scope": "accounts:read",
            "cnf": { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" },
            "acr": "not-a-member",
        })
    }

    fn with(claims: &Value, name: &str, value: Value) -> Value {
        let mut c = claims.clone();
        c[name] = value;
        c
    }

    fn active_body(claims: &Value) -> Value {
        let mut body = json!({ "active": true, "token_type": "Bearer" });
        for m in ["scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "cnf"] {
            body[m] = claims[m].clone();
        }
        body
    }

    #[tokio::test]
    async fn active_token_gives_every_member_and_nothing_else() {
        let f = Fixture::new(None);
        let c = claims("jti-1");
        let body = f.json(&f.token(&c)).await;
        // RFC 7662 §2.2 members and RFC 8705 §3.2 cnf at the top level (checklist F.82, C.62).
        assert_eq!(body, active_body(&c));
        assert_eq!(body["cnf"]["x5t#S256"], "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2");
        assert!(body.get("acr").is_none(), "only the introspection members are copied");
    }

    #[tokio::test]
    async fn every_inactive_token_is_active_false_and_nothing_more() {
        let f = Fixture::new(None);
        let good = claims("jti-good");
        // The same kid, another key: the kid alone proves nothing.
        let other_key = tessera_jose::generate(SigningAlg::ES256, KeyId::new("as-1")).unwrap();
        // One character of the signature changed (mid-signature: the last one carries padding bits).
        let mut flipped = f.token(&good).into_bytes();
        let i = flipped.len() - 20;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        f.revocations.insert("jti-revoked".into(), UnixTime(NOW + 290));
        let mut suspended = client("suspended", &f.fintech.1, vec![grant("accounts:read", ScopeState::Granted)]);
        suspended.status = ClientStatus::Suspended;
        f.clients.put(suspended);
        let mut cut = client("cut", &f.fintech.1, vec![grant("accounts:read", ScopeState::Granted)]);
        cut.tokens_not_before = Some(UnixTime(NOW - 5));
        f.clients.put(cut);

        let cases: Vec<(&str, String)> = vec![
            ("garbage", "not-a-token".into()),
            ("empty segments", "..".into()),
            ("bad signature", flipped),
            ("another key with our kid", sign(&other_key, "at+jwt", good.as_object().unwrap()).unwrap()),
            ("our key, not an access token (typ JWT)", sign(&f.key.0.0, "JWT", good.as_object().unwrap()).unwrap()),
            ("another issuer", f.token(&with(&good, "iss", json!("https://other.example")))),
            ("expired", f.token(&with(&good, "exp", json!(NOW)))),
            ("not yet valid", f.token(&with(&good, "nbf", json!(NOW + 3600)))),
            ("revoked", f.token(&with(&good, "jti", json!("jti-revoked")))),
            ("unknown client", f.token(&with(&good, "client_id", json!("nobody")))),
            ("suspended client", f.token(&with(&good, "client_id", json!("suspended")))),
            ("issued before the client's cut-off", f.token(&with(&good, "client_id", json!("cut")))),
            ("no jti", f.token(&with(&good, "jti", Value::Null))),
        ];
        for (case, token) in cases {
            assert_eq!(f.json(&token).await, json!({"active": false}), "{case}");
            // The RFC 9701 form says the same, inside token_introspection only.
            let Ok(IntrospectionResult::Jwt(jwt)) = f.ask(&token, true).await else { panic!("{case}") };
            let claims = f.key.verify(&jwt, "token-introspection+jwt").unwrap();
            assert_eq!(claims["token_introspection"], json!({"active": false}), "{case}");
        }
        // The control: the same token, untouched, is active.
        assert_eq!(f.json(&f.token(&good)).await["active"], true);
    }

    #[tokio::test]
    async fn jwt_response_wraps_the_members() {
        let f = Fixture::new(None);
        let c = claims("jti-1");
        let Ok(IntrospectionResult::Jwt(jwt)) = f.ask(&f.token(&c), true).await else { panic!() };
        // RFC 9701 §5: typed, signed by the server's key.
        let verified = tessera_jose::verify_with_jwks(
            &jwt,
            std::slice::from_ref(&f.key.0.0.public_jwk),
            Some("token-introspection+jwt"),
        )
        .unwrap();
        assert_eq!(verified.header["typ"], "token-introspection+jwt");
        assert_eq!(verified.header["kid"], "as-1");
        assert_eq!(
            Value::Object(verified.claims),
            json!({ "iss": ISSUER, "aud": "gw", "iat": NOW, "token_introspection": active_body(&c) }),
            "iss, aud = the caller, iat, and the members inside token_introspection only"
        );
        // The response cannot pass for an access token of this server.
        assert!(f.key.verify(&jwt, "at+jwt").is_none());
    }

    #[tokio::test]
    async fn callers_must_authenticate_and_be_entitled() {
        let f = Fixture::new(None);
        let token = f.token(&claims("jti-1"));
        let t = token.as_str();
        let (gw, fin) = (peer(&f.gateway.0), peer(&f.fintech.0));
        let ask = |pairs: &[(&str, &str)], authz: bool, p: &PeerCertificates| {
            let form = form(pairs);
            let p = p.clone();
            let introspector = &f.introspector;
            async move { introspector.introspect(&form, authz, &p, false).await }
        };

        // RFC 7662 §2.1 / checklist F.81, F.84: unauthenticated callers get 401 invalid_client.
        for (case, r) in [
            ("no certificate", ask(&[("client_id", "gw"), ("token", t)], false, &PeerCertificates::default()).await),
            ("another certificate", ask(&[("client_id", "gw"), ("token", t)], false, &fin).await),
            ("unknown client", ask(&[("client_id", "nobody"), ("token", t)], false, &gw).await),
            ("a client secret", ask(&[("client_id", "gw"), ("client_secret", "s"), ("token", t)], false, &gw).await),
            ("an Authorization header", ask(&[("client_id", "gw"), ("token", t)], true, &gw).await),
        ] {
            assert!(matches!(r, Err(IntrospectionError::InvalidClient(_))), "{case}: {r:?}");
        }
        // RFC 8705 §2: mTLS authentication names the client; without it the request is malformed.
        let r = ask(&[("token", t)], false, &gw).await;
        assert!(matches!(r, Err(IntrospectionError::InvalidRequest(_))), "no client_id: {r:?}");

        // MS §6.2: an ordinary client may not probe tokens, not even its own (403).
        match ask(&[("client_id", "fin"), ("token", t)], false, &fin).await {
            Err(IntrospectionError::NotEntitled(d)) => assert!(d.contains(ENTITLEMENT), "{d}"),
            other => panic!("fintech: {other:?}"),
        }
        // The entitlement must be granted, the caller active and its registration current.
        let mut pending = client("gw", &f.gateway.1, vec![grant(ENTITLEMENT, ScopeState::PendingReview)]);
        f.clients.put(pending.clone());
        let r = ask(&[("client_id", "gw"), ("token", t)], false, &gw).await;
        assert!(matches!(r, Err(IntrospectionError::NotEntitled(_))), "pending review: {r:?}");
        pending.scopes = vec![grant(ENTITLEMENT, ScopeState::Granted)];
        for (case, status, expires_at) in [
            ("suspended", ClientStatus::Suspended, Some(UnixTime(NOW + 86_400))),
            ("offboarded", ClientStatus::Offboarded, Some(UnixTime(NOW + 86_400))),
            ("registration expired", ClientStatus::Active, Some(UnixTime(NOW))),
        ] {
            let mut c = pending.clone();
            (c.status, c.expires_at) = (status, expires_at);
            f.clients.put(c);
            let r = ask(&[("client_id", "gw"), ("token", t)], false, &gw).await;
            assert!(matches!(r, Err(IntrospectionError::NotEntitled(_))), "{case}: {r:?}");
        }
        f.clients.put(pending);
        let r = ask(&[("client_id", "gw"), ("token", t)], false, &gw).await;
        assert!(matches!(r, Ok(IntrospectionResult::Json(ref v)) if v["active"] == true), "{r:?}");
    }

    #[tokio::test]
    async fn malformed_requests_are_invalid_request() {
        let f = Fixture::new(None);
        let token = f.token(&claims("jti-1"));
        let gw = peer(&f.gateway.0);
        for (case, pairs) in [
            ("no token", vec![("client_id", "gw")]),
            ("empty token", vec![("client_id", "gw"), ("token", "")]),
            ("token twice", vec![("client_id", "gw"), ("token", token.as_str()), ("token", token.as_str())]),
            (
                "hint twice",
                vec![
                    ("client_id", "gw"),
                    ("token", token.as_str()),
                    ("token_type_hint", "a"),
                    ("token_type_hint", "b"),
                ],
            ),
        ] {
            let r = f.introspector.introspect(&form(&pairs), false, &gw, false).await;
            assert!(matches!(r, Err(IntrospectionError::InvalidRequest(_))), "{case}: {r:?}");
        }
        // An unknown hint is only a hint (RFC 7662 §2.1).
        let pairs = [("client_id", "gw"), ("token", token.as_str()), ("token_type_hint", "refresh_token")];
        let r = f.introspector.introspect(&form(&pairs), false, &gw, false).await;
        assert!(matches!(r, Ok(IntrospectionResult::Json(ref v)) if v["active"] == true), "{r:?}");
    }

    #[tokio::test]
    async fn with_notices_missed_sql_must_agree_and_an_unreachable_sql_is_503() {
        let sql = Arc::new(MemoryStore::new());
        let live = Arc::new(AtomicBool::new(false));
        let f = Fixture::new(Some(Fallback { live: live.clone(), tokens: sql.clone(), clients: sql.clone() }));
        // The record the fixture cached, as SQL holds it.
        let fin = client("fin", &f.fintech.1, vec![grant("accounts:read", ScopeState::Granted)]);
        assert_eq!(*f.clients.get(&ClientId::new("fin")).unwrap(), CachedClient::from(&fin));
        sql.insert_client(&fin, &[]).await.unwrap();
        let token = f.token(&claims("jti-1"));
        assert_eq!(f.json(&token).await["active"], true, "memory and SQL agree");

        // Revoked on another node: SQL knows, this node's memory does not.
        sql.revoke("jti-1", &ClientId::new("fin"), UnixTime(NOW + 290), UnixTime(NOW), &[]).await.unwrap();
        assert_eq!(f.json(&token).await, json!({"active": false}));
        // Once notices flow again, memory is trusted (and has caught up by then).
        live.store(true, Ordering::SeqCst);
        assert_eq!(f.json(&token).await["active"], true, "live: memory only");
        live.store(false, Ordering::SeqCst);

        // Suspended on another node.
        let token = f.token(&claims("jti-2"));
        assert_eq!(f.json(&token).await["active"], true);
        let mut suspended = fin.clone();
        suspended.status = ClientStatus::Suspended;
        sql.update_client(&suspended, &[]).await.unwrap();
        assert_eq!(f.json(&token).await, json!({"active": false}));
        // Unknown to SQL (deleted there): inactive too.
        let other = MemoryStore::new();
        let f2 = Fixture::new(Some(Fallback { live: live.clone(), tokens: sql.clone(), clients: Arc::new(other) }));
        assert_eq!(f2.json(&f2.token(&claims("jti-3"))).await, json!({"active": false}));

        // SQL unreachable too: 503, never a guess.
        let f3 = Fixture::new(Some(Fallback { live: live.clone(), tokens: Arc::new(Down), clients: sql.clone() }));
        let r = f3.ask(&f3.token(&claims("jti-4")), false).await;
        assert!(matches!(r, Err(IntrospectionError::Unavailable { .. })), "{r:?}");
        // ... unless memory already says inactive: no need to ask.
        assert_eq!(f3.json("garbage").await, json!({"active": false}));
        f3.revocations.insert("jti-5".into(), UnixTime(NOW + 290));
        assert_eq!(f3.json(&f3.token(&claims("jti-5"))).await, json!({"active": false}));
        // And with notices flowing, SQL is not consulted at all.
        live.store(true, Ordering::SeqCst);
        assert_eq!(f3.json(&f3.token(&claims("jti-4"))).await["active"], true);
    }
}
