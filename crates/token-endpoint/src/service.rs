//! Issuing client-credentials tokens, without HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tessera_core::audit::{AuditEvent, AuditKind};
use tessera_core::client::{CachedClient, ClientStatus, ScopeState};
use tessera_core::error::TokenError;
use tessera_core::keys::{AccessTokenVerifier, SignerSource};
use tessera_core::{Clock, Issuer, Rng, UnixTime};
use tessera_http::PeerCertificates;
use tessera_http::mtls::TrustAnchors;
use tessera_jose::Jwk;
use tessera_store::{AuditSink, ClientCache, ReplayGuard, Revocations, TokenStore, UsageRecorder};

use crate::auth::{Credentials, Form};

/// A client's registered public keys (`jwks` by value or `jwks_uri`, see
/// [`TokenEndpointAuth::keys`](tessera_core::client::TokenEndpointAuth::keys)), for
/// `private_key_jwt` and `self_signed_tls_client_auth`. The server implements it with caching.
#[async_trait]
pub trait ClientKeys: Send + Sync {
    async fn keys(&self, client: &CachedClient, refresh: bool) -> Result<Vec<Jwk>, String>;
}

#[derive(Clone, Debug)]
pub struct TokenSettings {
    /// `aud` when no `resource` is requested.
    pub default_audience: String,
    /// RFC 8707 resources a client may ask for (besides the default audience).
    pub resources: Vec<String>,
    /// Access-token lifetime per risk tier; others get `default_lifetime_secs`.
    pub tier_lifetimes: BTreeMap<String, i64>,
    pub default_lifetime_secs: i64,
    /// No token lives longer, whatever a tier says.
    pub max_lifetime_secs: i64,
    /// UK profile option: also accept the token endpoint URL as assertion `aud`.
    pub accept_token_endpoint_audience: bool,
}

impl TokenSettings {
    pub fn lifetime_for(&self, tier: &str) -> i64 {
        self.tier_lifetimes.get(tier).copied().unwrap_or(self.default_lifetime_secs).clamp(1, self.max_lifetime_secs)
    }
}

pub struct TokenService {
    pub(crate) issuer: Issuer,
    pub(crate) settings: TokenSettings,
    pub(crate) clients: Arc<ClientCache>,
    pub(crate) anchors: TrustAnchors,
    pub(crate) client_keys: Arc<dyn ClientKeys>,
    pub(crate) replay: Arc<dyn ReplayGuard>,
    signer: Arc<dyn SignerSource>,
    audit: AuditSink,
    usage: Arc<UsageRecorder>,
    pub(crate) clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    pub(crate) verifier: Option<Arc<dyn AccessTokenVerifier>>,
    pub(crate) revocations: Arc<Revocations>,
    pub(crate) tokens: Arc<dyn TokenStore>,
    /// Called after a revocation is durable: how other nodes hear of it (Redis, in a cluster).
    pub(crate) on_revoke: Option<RevokeHook>,
}

pub type RevokeHook = Arc<dyn Fn(&str, UnixTime) + Send + Sync>;

/// What revocation needs besides the token endpoint's own parts.
pub struct RevocationParts {
    pub verifier: Arc<dyn AccessTokenVerifier>,
    pub revocations: Arc<Revocations>,
    pub tokens: Arc<dyn TokenStore>,
    pub on_revoke: Option<RevokeHook>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
}

/// Bytes of randomness in a token's `jti` (FAPI2 5.4.1-4: at least 128 bits).
const JTI_BYTES: usize = 18;

fn requested_scopes(form: &Form) -> Result<Vec<String>, TokenError> {
    let mut out: Vec<String> = Vec::new();
    if let Some(s) = form.get("scope")? {
        for scope in s.split(' ').filter(|s| !s.is_empty()) {
            if !out.iter().any(|o| o == scope) {
                out.push(scope.to_owned());
            }
        }
    }
    Ok(out)
}

impl TokenService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        issuer: Issuer,
        settings: TokenSettings,
        clients: Arc<ClientCache>,
        anchors: TrustAnchors,
        client_keys: Arc<dyn ClientKeys>,
        replay: Arc<dyn ReplayGuard>,
        signer: Arc<dyn SignerSource>,
        audit: AuditSink,
        usage: Arc<UsageRecorder>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
    ) -> TokenService {
        TokenService {
            issuer,
            settings,
            clients,
            anchors,
            client_keys,
            replay,
            signer,
            audit,
            usage,
            clock,
            rng,
            verifier: None,
            revocations: Arc::new(Revocations::new()),
            tokens: Arc::new(tessera_store::MemoryStore::new()),
            on_revoke: None,
        }
    }

    /// Enables `/revoke` with the node's shared revocation state.
    pub fn with_revocation(mut self, parts: RevocationParts) -> TokenService {
        self.verifier = Some(parts.verifier);
        self.revocations = parts.revocations;
        self.tokens = parts.tokens;
        self.on_revoke = parts.on_revoke;
        self
    }

    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    pub fn clients(&self) -> &Arc<ClientCache> {
        &self.clients
    }

    /// `POST /token`.
    pub async fn token(
        &self,
        form: &Form,
        authorization_header: bool,
        peer: &PeerCertificates,
    ) -> Result<TokenResponse, TokenError> {
        let now = self.clock.now();
        match form.get("grant_type")? {
            None => return Err(TokenError::InvalidRequest("grant_type is required".into())),
            Some("client_credentials") => {}
            // FAPI2 5.3.2.1-2: the password grant is refused, always.
            Some("password") => {
                return Err(TokenError::UnsupportedGrantType("the password grant is not supported".into()));
            }
            Some(other) => {
                return Err(TokenError::UnsupportedGrantType(format!(
                    "grant_type {other:?} is not supported; use client_credentials"
                )));
            }
        }
        let client = self.authenticate(&Credentials { form, authorization_header, peer }, now).await?;
        // FAPI2 5.3.2.1-4: only sender-constrained tokens. With private_key_jwt the certificate
        // is not the credential, but the token is still bound to it.
        let Some(x5t) = peer.leaf_x5t_s256() else {
            return Err(TokenError::InvalidRequest(
                "a TLS client certificate is required: access tokens are bound to the certificate of the request (RFC 8705)".into(),
            ));
        };
        check_state(&client, now)?;
        let scopes = self.grantable(&client, &requested_scopes(form)?)?;
        let audience = self.audience(form)?;

        let lifetime = self.settings.lifetime_for(client.risk_tier());
        let jti = self.rng.token(JTI_BYTES).map_err(|e| TokenError::Internal { internal: e.to_string() })?;
        let scope = scopes.join(" ");
        let exp = now.plus(lifetime);
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer.as_str()));
        claims.insert("sub".into(), json!(client.client_id));
        claims.insert("client_id".into(), json!(client.client_id));
        claims.insert("aud".into(), json!(audience));
        claims.insert("iat".into(), json!(now.0));
        claims.insert("nbf".into(), json!(now.0));
        claims.insert("exp".into(), json!(exp.0));
        claims.insert("jti".into(), json!(jti));
        claims.insert("scope".into(), json!(scope));
        claims.insert("cnf".into(), json!({ "x5t#S256": x5t }));
        let signed = self
            .signer
            .current()
            .sign("at+jwt", &claims)
            .map_err(|e| TokenError::Unavailable { internal: format!("signing: {e}") })?;

        // No token leaves unless the audit log knows it (group commit keeps this cheap).
        let mut data = Map::new();
        data.insert("jti".into(), json!(jti));
        data.insert("cnf_x5t#S256".into(), json!(x5t));
        data.insert("scope".into(), json!(scope));
        data.insert("aud".into(), json!(audience));
        data.insert("exp".into(), json!(exp.0));
        data.insert("kid".into(), json!(signed.kid));
        let event = AuditEvent {
            at: now,
            kind: AuditKind::TokenIssued,
            actor: client.client_id.to_string(),
            client_id: Some(client.client_id.clone()),
            data,
        };
        self.audit.record(event).await.map_err(|e| TokenError::Unavailable { internal: format!("audit: {e}") })?;
        self.usage.used(&client.client_id, now);
        Ok(TokenResponse { access_token: signed.compact, token_type: "Bearer", expires_in: lifetime, scope })
    }

    /// Requested scopes must all be granted; none requested means the client's granted scopes.
    fn grantable(&self, client: &CachedClient, requested: &[String]) -> Result<Vec<String>, TokenError> {
        let granted: Vec<&str> = client.scopes_in(ScopeState::Granted).collect();
        if requested.is_empty() {
            return Ok(granted.iter().map(|s| (*s).to_owned()).collect());
        }
        for s in requested {
            if granted.contains(&s.as_str()) {
                continue;
            }
            return Err(TokenError::InvalidScope(match client.scope_state(s) {
                Some(ScopeState::PendingReview) => {
                    format!("scope {s:?} is waiting for review and cannot be granted yet")
                }
                Some(ScopeState::Denied) => format!("scope {s:?} was denied for this client"),
                _ => format!("scope {s:?} is not registered for this client"),
            }));
        }
        Ok(requested.to_vec())
    }

    /// RFC 8707: one `resource`, one of the configured resources; else the default audience.
    fn audience(&self, form: &Form) -> Result<String, TokenError> {
        let resources: Vec<&str> = form.all("resource").collect();
        match resources.as_slice() {
            [] => Ok(self.settings.default_audience.clone()),
            [r] if *r == self.settings.default_audience || self.settings.resources.iter().any(|x| x == r) => {
                Ok((*r).to_owned())
            }
            [r] => Err(TokenError::InvalidTarget(format!("resource {r:?} is not served by this authorization server"))),
            _ => Err(TokenError::InvalidTarget(
                "request one resource per token; an audience must not be ambiguous".into(),
            )),
        }
    }
}

fn check_state(client: &CachedClient, now: UnixTime) -> Result<(), TokenError> {
    let why = |s: &str| client.status_reason().map(|r| format!("{s}: {r}")).unwrap_or_else(|| s.to_owned());
    match client.status {
        ClientStatus::Suspended => return Err(TokenError::UnauthorizedClient(why("the client is suspended"))),
        ClientStatus::Offboarded => return Err(TokenError::UnauthorizedClient(why("the client has been offboarded"))),
        ClientStatus::Active => {}
    }
    if client.is_expired(now) {
        return Err(TokenError::UnauthorizedClient(
            "the client's registration has expired; it must be extended or renewed".into(),
        ));
    }
    if client.scopes_in(ScopeState::Granted).next().is_none() {
        let pending = client.scopes_in(ScopeState::PendingReview).count();
        return Err(TokenError::UnauthorizedClient(format!(
            "no scope has been granted to this client yet ({pending} waiting for review)"
        )));
    }
    Ok(())
}

/// Values for the server's discovery document.
pub fn grant_types() -> Value {
    json!(["client_credentials"])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod tests {
    //! Pure pieces of issuing, with a fixed clock and in-memory stores; `crate::auth::tests`
    //! reuses the fixture.

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use rustls_pki_types::CertificateDer;
    use tessera_core::client::{ClientRecord, RegisteredKeys, ScopeGrant};
    use tessera_core::keys::{SignError, SignedJwt, SigningAlg, TokenSigner};
    use tessera_core::{ClientId, FixedClock, KeyId, OsRng};
    use tessera_store::{AuditLog, MemoryStore};

    use super::*;

    pub const NOW: i64 = 1_800_000_000;
    pub const ISSUER: &str = "https://as.bank.example";
    pub const AUDIENCE: &str = "https://api.bank.example";
    pub const PAYMENTS: &str = "https://api.bank.example/payments";

    /// Signs with a generated ES256 key through tessera-jose.
    pub struct TestSigner {
        pub key: tessera_jose::KeyMaterial,
    }

    impl TokenSigner for TestSigner {
        fn sign(&self, typ: &str, claims: &Map<String, Value>) -> Result<SignedJwt, SignError> {
            let compact = tessera_jose::sign_with_jwk(SigningAlg::ES256, &self.key.private_jwk, typ, claims)
                .map_err(|e| SignError::Crypto(e.to_string()))?;
            Ok(SignedJwt { compact, kid: self.key.kid.clone(), alg: SigningAlg::ES256 })
        }
    }

    pub struct TestSigners(pub Arc<TestSigner>);

    impl SignerSource for TestSigners {
        fn current(&self) -> Arc<dyn TokenSigner> {
            self.0.clone()
        }
    }

    /// A client's `jwks` by value; `refreshed` is what a refetch of its `jwks_uri` would give.
    #[derive(Default)]
    pub struct TestKeys {
        pub refreshed: Mutex<Option<Vec<Value>>>,
        pub refreshes: Mutex<u32>,
    }

    fn parse(keys: &[Value]) -> Vec<Jwk> {
        keys.iter().map(|k| Jwk::from_map(k.as_object().unwrap().clone()).unwrap()).collect()
    }

    #[async_trait]
    impl ClientKeys for TestKeys {
        async fn keys(&self, client: &CachedClient, refresh: bool) -> Result<Vec<Jwk>, String> {
            if refresh {
                *self.refreshes.lock().unwrap() += 1;
                if let Some(keys) = self.refreshed.lock().unwrap().as_ref() {
                    return Ok(parse(keys));
                }
            }
            let Some(RegisteredKeys::Jwks(jwks)) = client.auth().keys() else { return Ok(vec![]) };
            let jwks: Value = serde_json::from_str(jwks).unwrap();
            Ok(jwks["keys"].as_array().map(|k| parse(k)).unwrap_or_default())
        }
    }

    pub struct Fixture {
        pub service: TokenService,
        pub clock: FixedClock,
        pub clients: Arc<ClientCache>,
        pub keys: Arc<TestKeys>,
        pub store: Arc<MemoryStore>,
        pub signer: Arc<TestSigner>,
    }

    pub fn settings() -> TokenSettings {
        TokenSettings {
            default_audience: AUDIENCE.into(),
            resources: vec![PAYMENTS.into()],
            tier_lifetimes: BTreeMap::from([("high".to_owned(), 120), ("low".to_owned(), 600)]),
            default_lifetime_secs: 300,
            max_lifetime_secs: 900,
            accept_token_endpoint_audience: false,
        }
    }

    /// Needs a tokio runtime (the audit writer is a task).
    pub fn fixture(settings: TokenSettings, trust: &[Vec<u8>]) -> Fixture {
        let clock = FixedClock::new(NOW);
        let clients = Arc::new(ClientCache::new());
        let keys = Arc::new(TestKeys::default());
        let store = Arc::new(MemoryStore::new());
        let signer =
            Arc::new(TestSigner { key: tessera_jose::generate(SigningAlg::ES256, KeyId::new("as-1")).unwrap() });
        let anchors =
            TrustAnchors::from_ders(&trust.iter().map(|d| CertificateDer::from(d.clone())).collect::<Vec<_>>())
                .unwrap();
        let service = TokenService::new(
            Issuer::parse(ISSUER).unwrap(),
            settings,
            clients.clone(),
            anchors,
            keys.clone(),
            store.clone(),
            Arc::new(TestSigners(signer.clone())),
            AuditSink::start(store.clone()),
            UsageRecorder::new(60),
            Arc::new(clock.clone()),
            Arc::new(OsRng),
        );
        Fixture { service, clock, clients, keys, store, signer }
    }

    pub fn grant(scope: &str, state: ScopeState) -> ScopeGrant {
        ScopeGrant { scope: scope.into(), state, rule: "test".into(), decided_at: UnixTime(NOW), reason: None }
    }

    /// An active client with `metadata`, granted `accounts:read` and `balances:read`,
    /// `payments:write` waiting for review and `admin` denied.
    pub fn client(id: &str, tier: &str, metadata: Value) -> ClientRecord {
        ClientRecord {
            client_id: ClientId::new(id),
            status: ClientStatus::Active,
            status_reason: None,
            org_id: "org-1".into(),
            org_name: "Org One".into(),
            software_id: "software-1".into(),
            directory: "directory".into(),
            purpose: "tests".into(),
            risk_tier: tier.into(),
            created_at: UnixTime(NOW - 100),
            updated_at: UnixTime(NOW - 100),
            expires_at: Some(UnixTime(NOW + 86_400)),
            last_used_at: None,
            tokens_not_before: None,
            registration_token_hash: String::new(),
            ssa_jti: None,
            transport_cert_subject: "CN=client".into(),
            scopes: vec![
                grant("accounts:read", ScopeState::Granted),
                grant("payments:write", ScopeState::PendingReview),
                grant("balances:read", ScopeState::Granted),
                grant("admin", ScopeState::Denied),
            ],
            metadata: metadata.as_object().cloned().unwrap_or_default(),
        }
    }

    pub fn form(pairs: &[(&str, &str)]) -> Form {
        Form(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    /// A self-signed certificate (DER) and its public JWK carrying it in `x5c`.
    pub fn self_signed(cn: &str) -> (Vec<u8>, Value) {
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

    pub fn peer(der: &[u8]) -> PeerCertificates {
        PeerCertificates::from_chain(vec![CertificateDer::from(der.to_vec())])
    }

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    fn decode(part: &str) -> Map<String, Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn lifetime_per_tier_is_clamped() {
        // Checklist A.6-49: short-lived tokens; no tier may exceed the server's maximum.
        let mut s = settings();
        s.tier_lifetimes.insert("too-long".into(), 5_000);
        s.tier_lifetimes.insert("zero".into(), 0);
        s.tier_lifetimes.insert("negative".into(), -30);
        let table =
            [("high", 120), ("low", 600), ("medium", 300), ("", 300), ("too-long", 900), ("zero", 1), ("negative", 1)];
        for (tier, expected) in table {
            assert_eq!(s.lifetime_for(tier), expected, "tier {tier:?}");
        }
        s.default_lifetime_secs = 3_600;
        assert_eq!(s.lifetime_for("medium"), 900, "a default above the maximum is clamped too");
        s.max_lifetime_secs = 60;
        assert_eq!(s.lifetime_for("low"), 60);
    }

    #[test]
    fn requested_scopes_split_on_spaces_and_drop_duplicates() {
        assert_eq!(requested_scopes(&form(&[])).unwrap(), Vec::<String>::new());
        assert_eq!(requested_scopes(&form(&[("scope", "")])).unwrap(), Vec::<String>::new());
        assert_eq!(requested_scopes(&form(&[("scope", " b  a b ")])).unwrap(), scopes(&["b", "a"]));
        // RFC 6749 §3.2: the parameter itself must not be repeated.
        assert!(matches!(
            requested_scopes(&form(&[("scope", "a"), ("scope", "b")])),
            Err(TokenError::InvalidRequest(_))
        ));
    }

    #[tokio::test]
    async fn scope_selection() {
        let f = fixture(settings(), &[]);
        let c = CachedClient::from(&client("c1", "low", json!({})));
        // RFC 6749 §3.3 (checklist J.105): none requested means the granted ones, in order.
        assert_eq!(f.service.grantable(&c, &[]).unwrap(), scopes(&["accounts:read", "balances:read"]));
        assert_eq!(f.service.grantable(&c, &scopes(&["balances:read"])).unwrap(), scopes(&["balances:read"]));
        assert_eq!(
            f.service.grantable(&c, &scopes(&["balances:read", "accounts:read"])).unwrap(),
            scopes(&["balances:read", "accounts:read"]),
            "order is the client's, not significant"
        );
        let refused = |requested: &[&str]| match f.service.grantable(&c, &scopes(requested)) {
            Err(TokenError::InvalidScope(d)) => d,
            other => panic!("{requested:?}: {other:?}"),
        };
        assert!(refused(&["payments:write"]).contains("waiting for review"));
        assert!(refused(&["accounts:read", "payments:write"]).contains("waiting for review"), "all or nothing");
        assert!(refused(&["admin"]).contains("denied"));
        assert!(refused(&["accounts:write"]).contains("not registered"));
        assert!(refused(&["accounts:read", "accounts:write"]).contains("\"accounts:write\""));
    }

    #[tokio::test]
    async fn audience_selection() {
        // RFC 8707, checklist H.92/H.94: one known resource, else the default; never ambiguous.
        let f = fixture(settings(), &[]);
        let aud = |pairs: &[(&str, &str)]| f.service.audience(&form(pairs));
        assert_eq!(aud(&[]).unwrap(), AUDIENCE);
        assert_eq!(aud(&[("resource", AUDIENCE)]).unwrap(), AUDIENCE);
        assert_eq!(aud(&[("resource", PAYMENTS)]).unwrap(), PAYMENTS);
        for bad in [
            vec![("resource", "https://elsewhere.example")],
            vec![("resource", "https://api.bank.example/")],
            vec![("resource", "")],
            vec![("resource", AUDIENCE), ("resource", PAYMENTS)],
            vec![("resource", PAYMENTS), ("resource", PAYMENTS)],
        ] {
            assert!(matches!(aud(&bad), Err(TokenError::InvalidTarget(_))), "{bad:?}");
        }
    }

    #[test]
    fn client_state_gates_issuing() {
        let now = UnixTime(NOW);
        let check = |c: &ClientRecord| check_state(&CachedClient::from(c), now);
        assert!(check(&client("c", "low", json!({}))).is_ok());
        let unauthorized = |c: &ClientRecord| match check(c) {
            Err(TokenError::UnauthorizedClient(d)) => d,
            other => panic!("{other:?}"),
        };
        let mut c = client("c", "low", json!({}));
        c.status = ClientStatus::Suspended;
        c.status_reason = Some("certificate compromised".into());
        let d = unauthorized(&c);
        assert!(d.contains("suspended") && d.contains("certificate compromised"), "{d}");
        c.status = ClientStatus::Offboarded;
        c.status_reason = None;
        assert!(unauthorized(&c).contains("offboarded"));
        let mut c = client("c", "low", json!({}));
        c.expires_at = Some(now);
        assert!(unauthorized(&c).contains("expired"), "expiry at now is expired");
        c.expires_at = Some(now.plus(1));
        assert!(check(&c).is_ok());
        c.scopes = vec![grant("payments:write", ScopeState::PendingReview), grant("admin", ScopeState::Denied)];
        assert!(unauthorized(&c).contains("1 waiting for review"));
    }

    #[tokio::test]
    async fn issues_a_bound_token_and_audits_it_first() {
        let f = fixture(settings(), &[]);
        let (der, jwk) = self_signed("c1");
        let metadata =
            json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": { "keys": [jwk] } });
        f.clients.put(client("c1", "high", metadata));
        let cc = [("grant_type", "client_credentials"), ("client_id", "c1")];

        let resp = f.service.token(&form(&cc), false, &peer(&der)).await.unwrap();
        assert_eq!(
            (resp.token_type, resp.expires_in, resp.scope.as_str()),
            ("Bearer", 120, "accounts:read balances:read")
        );
        let keys = [f.signer.key.public_jwk.clone()];
        let verified = tessera_jose::verify_with_jwks(&resp.access_token, &keys, Some("at+jwt")).unwrap();
        assert_eq!(verified.header["kid"], "as-1");
        let c = &verified.claims;
        assert_eq!(
            (c["iss"].as_str(), c["sub"].as_str(), c["client_id"].as_str()),
            (Some(ISSUER), Some("c1"), Some("c1"))
        );
        assert_eq!(
            (c["aud"].as_str(), c["iat"].as_i64(), c["nbf"].as_i64(), c["exp"].as_i64()),
            (Some(AUDIENCE), Some(NOW), Some(NOW), Some(NOW + 120))
        );
        assert_eq!(c["cnf"], json!({ "x5t#S256": tessera_core::thumbprint::x5t_s256(&der) }));
        let jti = c["jti"].as_str().unwrap();
        assert!(URL_SAFE_NO_PAD.decode(jti).unwrap().len() >= 16, "FAPI2 A.6-46: 128 bits or more");

        // The audit record exists by the time the response does.
        let log = AuditLog::read(f.store.as_ref(), 0, 100).await.unwrap();
        let issued: Vec<_> = log.iter().filter(|r| r.event.kind == AuditKind::TokenIssued).collect();
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].event.data["jti"], jti);
        assert_eq!(issued[0].event.data["cnf_x5t#S256"], c["cnf"]["x5t#S256"]);
        assert_eq!(issued[0].event.client_id, Some(ClientId::new("c1")));

        // A second token has another jti; the clock moves the times.
        f.clock.advance(7);
        let again = f.service.token(&form(&cc), false, &peer(&der)).await.unwrap();
        let claims = decode(again.access_token.split('.').nth(1).unwrap());
        assert_ne!(claims["jti"], jti);
        assert_eq!(claims["iat"].as_i64(), Some(NOW + 7));

        // Without a certificate: no token, and nothing audited (FAPI2 A.2-11).
        let err = f.service.token(&form(&cc), false, &PeerCertificates::default()).await.unwrap_err();
        assert!(matches!(err, TokenError::InvalidClient { .. }), "{err:?}");
        assert_eq!(AuditLog::read(f.store.as_ref(), 0, 100).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn grant_type_is_checked_first() {
        let f = fixture(settings(), &[]);
        let none = PeerCertificates::default();
        let err = |pairs: &[(&str, &str)]| {
            let form = form(pairs);
            let service = &f.service;
            let none = &none;
            async move { service.token(&form, false, none).await.unwrap_err() }
        };
        assert!(matches!(err(&[("client_id", "c")]).await, TokenError::InvalidRequest(_)));
        assert!(matches!(err(&[("grant_type", "")]).await, TokenError::InvalidRequest(_)));
        // FAPI2 A.2-9: the password grant, always refused.
        for g in ["password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"] {
            assert!(matches!(err(&[("grant_type", g)]).await, TokenError::UnsupportedGrantType(_)), "{g}");
        }
        let repeated = err(&[("grant_type", "client_credentials"), ("grant_type", "client_credentials")]).await;
        assert!(matches!(repeated, TokenError::InvalidRequest(_)));
    }
}
