//! Issuing client-credentials tokens, without HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tessera_core::audit::{AuditEvent, AuditKind};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeState};
use tessera_core::error::TokenError;
use tessera_core::keys::{AccessTokenVerifier, SignerSource};
use tessera_core::{Clock, Issuer, Rng, UnixTime};
use tessera_http::PeerCertificates;
use tessera_http::mtls::TrustAnchors;
use tessera_jose::Jwk;
use tessera_store::{AuditSink, ClientCache, ReplayGuard, Revocations, TokenStore, UsageRecorder};

use crate::auth::{Credentials, Form};

/// A client's registered public keys (`jwks` by value or `jwks_uri`), for `private_key_jwt` and
/// `self_signed_tls_client_auth`. The server implements it with caching.
#[async_trait]
pub trait ClientKeys: Send + Sync {
    async fn keys(&self, client: &ClientRecord, refresh: bool) -> Result<Vec<Jwk>, String>;
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

        let lifetime = self.settings.lifetime_for(&client.risk_tier);
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
    fn grantable(&self, client: &ClientRecord, requested: &[String]) -> Result<Vec<String>, TokenError> {
        let granted: Vec<&str> = client.scopes_in(ScopeState::Granted).collect();
        if requested.is_empty() {
            return Ok(granted.iter().map(|s| (*s).to_owned()).collect());
        }
        for s in requested {
            if granted.contains(&s.as_str()) {
                continue;
            }
            let state = client.scopes.iter().find(|g| &g.scope == s).map(|g| g.state);
            return Err(TokenError::InvalidScope(match state {
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

fn check_state(client: &ClientRecord, now: UnixTime) -> Result<(), TokenError> {
    let why = |s: &str| client.status_reason.as_deref().map(|r| format!("{s}: {r}")).unwrap_or_else(|| s.to_owned());
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
