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
    async fn active_per_sql(&self, issued: &IssuedToken, now: tessera_core::UnixTime, fb: &Fallback) -> Result<bool, IntrospectionError> {
        let unavailable = |e: tessera_store::StoreError| IntrospectionError::Unavailable { internal: format!("degraded check: {e}") };
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
        let entitled = caller.status == tessera_core::client::ClientStatus::Active
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
