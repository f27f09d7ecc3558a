//! Registration as a service: every check, the policy, and the durable write, without HTTP.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tessera_core::audit::{AuditEvent, AuditKind};
use tessera_core::cert::CertFacts;
use tessera_core::client::{ClientRecord, ClientStatus, ScopeGrant, ScopeState};
use tessera_core::error::RegistrationError;
use tessera_core::keys::AccessTokenVerifier;
use tessera_core::{ClientId, Clock, Rng, UnixTime};
use tessera_http::PeerCertificates;
use tessera_http::mtls::TrustAnchors;
use tessera_store::{AuditLog, ClientCache, ClientStore, Revocations, StoreError};

use crate::metadata::{self, Validated, check_binding};
use crate::policy::{OnboardingPolicy, PolicyInput};
use crate::settings::{Profile, RegistrationSettings};
use crate::ssa::{self, SoftwareStatement};

/// Bytes of entropy in a registration access token (FAPI2 5.4.1-4 asks for 128 bits at least).
const REGISTRATION_TOKEN_BYTES: usize = 32;
/// Bytes of entropy in a client id: 22 characters, well under RFC-friendly 36.
const CLIENT_ID_BYTES: usize = 16;

/// A fresh client id: 128 random bits, base64url, never starting with `-`. On a command line
/// such an id reads as an option (`tessera clients suspend -x…`), and the inventory CSV has to
/// neutralise it as a formula (`'-x…`), which breaks matching it by id. One in 64 ids would; the
/// leading `-` becomes `A` (the id keeps 126 bits of randomness).
pub(crate) fn new_client_id(rng: &dyn Rng) -> Result<ClientId, tessera_core::RngError> {
    let mut id = rng.token(CLIENT_ID_BYTES)?;
    if id.starts_with('-') {
        id.replace_range(..1, "A");
    }
    Ok(ClientId::new(id))
}

pub struct Registrar {
    pub settings: RegistrationSettings,
    policy: Arc<OnboardingPolicy>,
    anchors: TrustAnchors,
    clients: Arc<dyn ClientStore>,
    audit: Arc<dyn AuditLog>,
    cache: Arc<ClientCache>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    on_change: Option<ChangeHook>,
    /// UK profile: management is authorised by the client's own access token, unless revoked.
    access_tokens: Option<(Arc<dyn AccessTokenVerifier>, Arc<Revocations>)>,
}

/// Called after a client's record changed durably: how other nodes hear of it.
pub type ChangeHook = Arc<dyn Fn(&ClientId) + Send + Sync>;

fn store_error(e: StoreError) -> RegistrationError {
    match e {
        StoreError::Unavailable(m) => RegistrationError::Unavailable { internal: m },
        other => RegistrationError::Internal { internal: other.to_string() },
    }
}

pub fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison, so the time to reject a token says nothing about how much of it
/// was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, RegistrationError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => {
            Err(RegistrationError::InvalidRequest("the request body must be a JSON object of client metadata".into()))
        }
        Err(e) => Err(RegistrationError::InvalidRequest(format!("the request body is not valid JSON: {e}"))),
    }
}

impl Registrar {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: RegistrationSettings,
        policy: Arc<OnboardingPolicy>,
        anchors: TrustAnchors,
        clients: Arc<dyn ClientStore>,
        audit: Arc<dyn AuditLog>,
        cache: Arc<ClientCache>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
    ) -> Registrar {
        Registrar { settings, policy, anchors, clients, audit, cache, clock, rng, on_change: None, access_tokens: None }
    }

    /// UK profile: verifies the access tokens that authorise registration management; a token
    /// in `revocations` (RFC 7009) authorises nothing.
    pub fn with_access_token_verifier(
        mut self,
        verifier: Arc<dyn AccessTokenVerifier>,
        revocations: Arc<Revocations>,
    ) -> Registrar {
        self.access_tokens = Some((verifier, revocations));
        self
    }

    pub fn with_change_hook(mut self, hook: ChangeHook) -> Registrar {
        self.on_change = Some(hook);
        self
    }

    fn changed(&self, client: ClientRecord) {
        let id = client.client_id.clone();
        self.cache.put(client);
        if let Some(hook) = &self.on_change {
            hook(&id);
        }
    }

    fn transport(&self, peer: &PeerCertificates, now: UnixTime) -> Result<CertFacts, RegistrationError> {
        self.anchors.verify(peer, now).map_err(|e| {
            RegistrationError::TransportCertificate(format!(
                "registration needs a TLS client (transport) certificate issued by a CA this server trusts: {e}"
            ))
        })
    }

    fn registration_client_uri(&self, id: &ClientId) -> String {
        self.settings.issuer.endpoint(&format!("/register/{id}"))
    }

    /// The RFC 7591/7592 response body for `client`.
    pub fn response(&self, client: &ClientRecord, registration_token: Option<&str>) -> Value {
        let mut body = client.metadata.clone();
        body.insert("client_id".into(), json!(client.client_id));
        body.insert("client_id_issued_at".into(), json!(client.created_at.0));
        body.insert("registration_client_uri".into(), json!(self.registration_client_uri(&client.client_id)));
        if let Some(t) = registration_token {
            body.insert("registration_access_token".into(), json!(t));
        }
        let granted: Vec<&str> = client.scopes_in(ScopeState::Granted).collect();
        body.insert("scope".into(), json!(granted.join(" ")));
        let pending: Vec<&str> = client.scopes_in(ScopeState::PendingReview).collect();
        if !pending.is_empty() {
            body.insert("pending_scopes".into(), json!(pending));
        }
        Value::Object(body)
    }

    fn policy_input(
        &self,
        ssa: &SoftwareStatement,
        v: &Validated,
        cert: &CertFacts,
        scopes: &[String],
        now: UnixTime,
    ) -> PolicyInput {
        PolicyInput {
            software_id: ssa.software_id.clone(),
            org_id: ssa.org_id.clone(),
            org_name: ssa.org_name.clone(),
            org_status: ssa.org_status.clone(),
            roles: ssa.roles.clone(),
            software_mode: ssa.software_mode.clone(),
            directory: ssa.issuer.clone(),
            auth_method: v.auth.as_str().to_owned(),
            grant_types: v
                .metadata
                .get("grant_types")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            requested_scopes: scopes.to_vec(),
            cert_subject: cert.subject.to_string(),
            cert_issuer: String::new(),
            now: now.0,
        }
    }

    /// Decides `scopes` with the policy. Errors in a policy fail closed.
    fn decide(&self, input: &PolicyInput, now: UnixTime) -> Result<(Vec<ScopeGrant>, String), RegistrationError> {
        let decision = self
            .policy
            .decide(input)
            .map_err(|e| RegistrationError::Internal { internal: format!("onboarding policy: {e}") })?;
        let grants = decision
            .scopes
            .iter()
            .map(|d| ScopeGrant {
                scope: d.scope.clone(),
                state: d.state,
                rule: d.rule.clone(),
                decided_at: now,
                reason: None,
            })
            .collect();
        Ok((grants, decision.tier.clone()))
    }

    async fn audit_refusal(&self, actor: &str, reason: &RegistrationError, data: Map<String, Value>, now: UnixTime) {
        let mut data = data;
        data.insert("error".into(), json!(reason.to_string()));
        let event = AuditEvent {
            at: now,
            kind: AuditKind::RegistrationRefused,
            actor: actor.to_owned(),
            client_id: None,
            data,
        };
        if let Err(e) = self.audit.append(&[event]).await {
            tracing::error!(error = %e, "could not audit a refused registration");
        }
    }

    /// RFC 7591 §3: register a client.
    pub async fn register(&self, body: &[u8], peer: &PeerCertificates) -> Result<Value, RegistrationError> {
        let now = self.clock.now();
        let cert = self.transport(peer, now)?;
        let actor = cert.subject.to_string();
        let result = match &self.settings.profile {
            // A body that is not JSON at all is refused before anything is decided.
            Profile::Rfc7591 => {
                let request = parse_json_object(body)?;
                self.register_json(&request, &cert, now).await
            }
            Profile::UkOpenBanking { audiences } => match self.uk_request(body, audiences, now).await {
                Ok((request, ssa_claims)) => {
                    self.register_json(&request, &cert, now).await.map(|body| uk_response(body, &request, &ssa_claims))
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = &result {
            // A refused registration by an authenticated caller is a decision the bank keeps.
            if !matches!(e, RegistrationError::Unavailable { .. } | RegistrationError::Internal { .. }) {
                let mut data = Map::new();
                data.insert("cert_x5t#S256".into(), json!(cert.x5t_s256));
                self.audit_refusal(&actor, e, data, now).await;
            }
        }
        result
    }

    async fn register_json(
        &self,
        request: &Map<String, Value>,
        cert: &CertFacts,
        now: UnixTime,
    ) -> Result<Value, RegistrationError> {
        let raw_ssa = request.get("software_statement").and_then(Value::as_str).ok_or_else(|| {
            RegistrationError::InvalidSoftwareStatement(
                "a software_statement signed by a trusted directory is required".into(),
            )
        })?;
        self.register_checked(request, raw_ssa, cert, now).await
    }

    /// UK Open Banking DCR v3.3: the body is a JWS by the software's own key, found through the
    /// statement (its `software_jwks_endpoint`, fetched over TLS, or a `software_jwks` JWKS).
    /// Returns the request claims and the statement's claims.
    async fn uk_request(
        &self,
        body: &[u8],
        audiences: &[String],
        now: UnixTime,
    ) -> Result<(Map<String, Value>, Map<String, Value>), RegistrationError> {
        let bad = RegistrationError::InvalidClientMetadata;
        let jwt = std::str::from_utf8(body).map_err(|_| bad("the registration request is not text".into()))?.trim();
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(bad("the registration request must be a signed JWT (JWS compact serialization)".into()));
        };
        let header: Map<String, Value> =
            URL_SAFE_NO_PAD
                .decode(h)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| bad("the registration request header is not base64url JSON".into()))?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        // UK DCR v3.3 with FAPI: PS256 or ES256; never RS256 or none.
        if !matches!(alg, "PS256" | "ES256") {
            return Err(bad(format!("the registration request is signed with {alg:?}; use PS256 or ES256")));
        }
        let unverified: Map<String, Value> = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| bad("the registration request payload is not base64url JSON".into()))?;
        let raw_ssa = unverified.get("software_statement").and_then(Value::as_str).ok_or_else(|| {
            RegistrationError::InvalidSoftwareStatement(
                "the registration request must carry a software_statement".into(),
            )
        })?;
        let ssa = ssa::verify(raw_ssa, &self.settings, now).await?;
        let keys = self.software_keys(&ssa).await?;
        let verified = tessera_jose::verify_with_jwks(jwt, &keys, None).map_err(|e| {
            bad(format!("the registration request signature does not verify with the software's keys: {e}"))
        })?;
        let claims = verified.claims;
        match claims.get("iss").and_then(Value::as_str) {
            Some(iss) if iss == ssa.software_id => {}
            Some("") | None => {
                return Err(bad("the registration request has no iss; it must be the software_id".into()));
            }
            Some(iss) if iss.len() > 22 => return Err(bad(format!("iss {iss:?} is longer than 22 characters"))),
            Some(iss) => {
                return Err(bad(format!("iss {iss:?} is not the statement's software_id {:?}", ssa.software_id)));
            }
        }
        let accepted: Vec<&str> = if audiences.is_empty() {
            vec![self.settings.issuer.as_str()]
        } else {
            audiences.iter().map(String::as_str).collect()
        };
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => accepted.contains(&a.as_str()),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).any(|x| accepted.contains(&x)),
            _ => false,
        };
        if !aud_ok {
            return Err(bad(format!("the registration request aud must be one of {accepted:?}")));
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("the registration request has no exp".into()))?;
        if exp <= now.0 {
            return Err(bad("the registration request has expired (exp)".into()));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("the registration request has no iat".into()))?;
        if iat > now.0 + ssa::MAX_FUTURE_SKEW_SECS {
            return Err(bad("the registration request iat is in the future".into()));
        }
        if claims.get("jti").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(bad("the registration request has no jti".into()));
        }
        if let Some(id) = claims.get("software_id").and_then(Value::as_str)
            && id != ssa.software_id
        {
            return Err(bad("software_id differs from the statement's".into()));
        }
        Ok((claims, ssa.claims))
    }

    async fn software_keys(&self, ssa: &SoftwareStatement) -> Result<Vec<tessera_jose::Jwk>, RegistrationError> {
        if let Some(url) = ssa.claims.get("software_jwks_endpoint").and_then(Value::as_str) {
            let fetcher = self.settings.software_jwks.as_ref().ok_or_else(|| RegistrationError::Internal {
                internal: "UK profile without a software JWKS fetcher".into(),
            })?;
            return fetcher.fetch(url).await.map_err(|e| {
                RegistrationError::InvalidSoftwareStatement(format!(
                    "the software's JWKS ({url}) could not be fetched: {e}"
                ))
            });
        }
        if let Some(jwks) = ssa.claims.get("software_jwks") {
            let keys = jwks.get("keys").and_then(Value::as_array).ok_or_else(|| {
                RegistrationError::InvalidSoftwareStatement("software_jwks must be a JWKS object".into())
            })?;
            return Ok(keys
                .iter()
                .filter_map(|k| k.as_object().and_then(|m| tessera_jose::Jwk::from_map(m.clone()).ok()))
                .collect());
        }
        Err(RegistrationError::InvalidSoftwareStatement(
            "the statement names no software keys (software_jwks_endpoint or software_jwks)".into(),
        ))
    }

    fn access_token_authorises(&self, token: &str, client: &ClientRecord, cert: &CertFacts, now: UnixTime) -> bool {
        let Some((verifier, revocations)) = &self.access_tokens else { return false };
        let Some(claims) = verifier.verify(token, "at+jwt") else { return false };
        let s = |k: &str| claims.get(k).and_then(Value::as_str);
        let n = |k: &str| claims.get(k).and_then(Value::as_i64);
        s("iss") == Some(self.settings.issuer.as_str())
            && s("client_id") == Some(client.client_id.as_str())
            && n("exp").is_some_and(|e| e > now.0)
            && s("jti").is_some_and(|jti| !revocations.is_revoked(jti))
            && n("iat").is_some_and(|iat| client.tokens_not_before.is_none_or(|nb| iat >= nb.0))
            && client.status == ClientStatus::Active
            && claims.get("cnf").and_then(|c| c.get("x5t#S256")).and_then(Value::as_str) == Some(cert.x5t_s256.as_str())
    }

    async fn register_checked(
        &self,
        request: &Map<String, Value>,
        raw_ssa: &str,
        cert: &CertFacts,
        now: UnixTime,
    ) -> Result<Value, RegistrationError> {
        let ssa = ssa::verify(raw_ssa, &self.settings, now).await?;
        check_binding(self.settings.transport_binding, cert, &ssa.org_id, &ssa.software_id)
            .map_err(RegistrationError::TransportCertificate)?;
        let mut validated = metadata::build(request, &ssa, cert, &self.settings)?;
        validated.metadata.insert("software_statement".into(), json!(ssa.raw));
        let input = self.policy_input(&ssa, &validated, cert, &validated.requested_scopes, now);
        let (scopes, tier) = self.decide(&input, now)?;
        if scopes.is_empty() || scopes.iter().all(|g| g.state == ScopeState::Denied) {
            return Err(all_denied(&scopes));
        }

        let client_id =
            new_client_id(self.rng.as_ref()).map_err(|e| RegistrationError::Internal { internal: e.to_string() })?;
        let registration_token = self
            .rng
            .token(REGISTRATION_TOKEN_BYTES)
            .map_err(|e| RegistrationError::Internal { internal: e.to_string() })?;
        let directory = self.settings.directory(&ssa.issuer);
        let client = ClientRecord {
            client_id: client_id.clone(),
            status: ClientStatus::Active,
            status_reason: None,
            org_id: ssa.org_id.clone(),
            org_name: ssa.org_name.clone(),
            software_id: ssa.software_id.clone(),
            directory: ssa.issuer.clone(),
            purpose: validated.purpose.clone(),
            risk_tier: tier.clone(),
            created_at: now,
            updated_at: now,
            expires_at: Some(now.plus(self.settings.lifetime_for(&tier))),
            last_used_at: None,
            tokens_not_before: None,
            registration_token_hash: token_hash(&registration_token),
            ssa_jti: directory.filter(|d| !d.allow_reuse).map(|_| ssa.jti.clone()),
            transport_cert_subject: cert.subject.to_string(),
            scopes,
            metadata: validated.metadata,
        };
        let events =
            registration_events(&client, &ssa, cert, AuditKind::RegistrationAccepted, now, client.scopes.iter());
        match self.clients.insert_client(&client, &events).await {
            Ok(()) => {}
            Err(StoreError::Conflict(m)) if m.contains("ssa_jti") => {
                return Err(RegistrationError::InvalidSoftwareStatement(format!(
                    "this software statement (jti {:?}) was already used to register a client; get a new one from the directory",
                    ssa.jti
                )));
            }
            Err(e) => return Err(store_error(e)),
        }
        tracing::info!(client_id = %client.client_id, software_id = %client.software_id, org_id = %client.org_id, tier = %client.risk_tier, "client registered");
        let body = self.response(&client, Some(&registration_token));
        self.changed(client);
        Ok(body)
    }

    /// RFC 7592 §2: the caller must present the registration access token **and** a trusted
    /// transport certificate of the client's organisation. Every failure looks the same (401),
    /// so the endpoint does not tell which client ids exist.
    async fn authorize_management(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        peer: &PeerCertificates,
        now: UnixTime,
    ) -> Result<(ClientRecord, CertFacts), RegistrationError> {
        let cert = self.transport(peer, now)?;
        let unknown = || {
            RegistrationError::InvalidToken(
                "the registration access token is not valid for this client (or the client does not exist)".into(),
            )
        };
        let bearer = bearer.ok_or_else(|| {
            RegistrationError::InvalidToken(
                "send the registration access token in an Authorization: Bearer header".into(),
            )
        })?;
        let client =
            self.clients.get_client(&ClientId::new(client_id)).await.map_err(store_error)?.ok_or_else(unknown)?;
        if client.status == ClientStatus::Offboarded {
            return Err(unknown());
        }
        let authorised = match &self.settings.profile {
            Profile::Rfc7591 => same(&token_hash(bearer), &client.registration_token_hash),
            // UK DCR: an access token the client obtained with client_credentials, bound to the
            // certificate of this request.
            Profile::UkOpenBanking { .. } => self.access_token_authorises(bearer, &client, &cert, now),
        };
        if !authorised {
            return Err(unknown());
        }
        check_binding(self.settings.transport_binding, &cert, &client.org_id, &client.software_id)
            .map_err(RegistrationError::TransportCertificate)?;
        Ok((client, cert))
    }

    /// RFC 7592 §2.1
    pub async fn read(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        peer: &PeerCertificates,
    ) -> Result<Value, RegistrationError> {
        let (client, _) = self.authorize_management(client_id, bearer, peer, self.clock.now()).await?;
        Ok(self.response(&client, None))
    }

    /// RFC 7592 §2.2: the body replaces the registration; every check and the policy run again.
    /// Scopes already decided (by policy or by a reviewer) keep their decision; new scopes go
    /// through the policy; scopes no longer requested are dropped.
    pub async fn update(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        peer: &PeerCertificates,
        body: &[u8],
    ) -> Result<Value, RegistrationError> {
        let now = self.clock.now();
        let (current, cert) = self.authorize_management(client_id, bearer, peer, now).await?;
        let request = match &self.settings.profile {
            Profile::Rfc7591 => parse_json_object(body)?,
            Profile::UkOpenBanking { audiences } => {
                let (mut claims, _) = self.uk_request(body, audiences, now).await?;
                // The UK update names the client by the URL; the body may omit client_id.
                claims.entry("client_id").or_insert_with(|| json!(client_id));
                claims
            }
        };
        match request.get("client_id").and_then(Value::as_str) {
            Some(id) if id == client_id => {}
            Some(_) => {
                return Err(RegistrationError::InvalidClientMetadata(
                    "client_id in the body does not match the client being updated".into(),
                ));
            }
            None => {
                return Err(RegistrationError::InvalidClientMetadata(
                    "the update must include client_id (RFC 7592 §2.2)".into(),
                ));
            }
        }
        let (ssa, ssa_jti) = match request.get("software_statement").and_then(Value::as_str) {
            Some(raw) if Some(raw) != current.metadata.get("software_statement").and_then(Value::as_str) => {
                let ssa = ssa::verify(raw, &self.settings, now).await?;
                if ssa.org_id != current.org_id || ssa.software_id != current.software_id {
                    return Err(RegistrationError::InvalidSoftwareStatement(
                        "the new software_statement names another organisation or software than the registered client"
                            .into(),
                    ));
                }
                let reuse = self.settings.directory(&ssa.issuer).is_none_or(|d| d.allow_reuse);
                let jti = if reuse { None } else { Some(ssa.jti.clone()) };
                (ssa, jti)
            }
            _ => (self.stored_statement(&current)?, current.ssa_jti.clone()),
        };
        check_binding(self.settings.transport_binding, &cert, &ssa.org_id, &ssa.software_id)
            .map_err(RegistrationError::TransportCertificate)?;
        let mut validated = metadata::build(&request, &ssa, &cert, &self.settings)?;
        validated.metadata.insert("software_statement".into(), json!(ssa.raw));
        // Responses list scopes waiting for review in `pending_scopes`, not in `scope`: a client
        // that sends back what it read (RFC 7592 §2.2) still asks for them. Only scopes that wait
        // now are kept this way; `pending_scopes` cannot ask for anything new.
        for s in request.get("pending_scopes").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
        {
            let waiting = current.scopes.iter().any(|g| g.scope == s && g.state == ScopeState::PendingReview);
            if waiting && !validated.requested_scopes.iter().any(|r| r == s) {
                validated.requested_scopes.push(s.to_owned());
            }
        }

        let mut scopes = Vec::new();
        let mut new_scopes = Vec::new();
        for s in &validated.requested_scopes {
            match current.scopes.iter().find(|g| &g.scope == s) {
                Some(g) => scopes.push(g.clone()),
                None => new_scopes.push(s.clone()),
            }
        }
        let mut tier = current.risk_tier.clone();
        let mut decided = Vec::new();
        if !new_scopes.is_empty() {
            let input = self.policy_input(&ssa, &validated, &cert, &new_scopes, now);
            let (grants, new_tier) = self.decide(&input, now)?;
            tier = higher_tier(&tier, &new_tier);
            decided = grants.clone();
            scopes.extend(grants);
        }
        if scopes.is_empty() || scopes.iter().all(|g| g.state == ScopeState::Denied) {
            return Err(all_denied(&scopes));
        }
        let mut updated = current.clone();
        updated.metadata = validated.metadata;
        updated.scopes = scopes;
        updated.purpose = validated.purpose;
        updated.risk_tier = tier;
        updated.updated_at = now;
        updated.ssa_jti = ssa_jti;
        let events = registration_events(&updated, &ssa, &cert, AuditKind::RegistrationUpdated, now, decided.iter());
        match self.clients.update_client(&updated, &events).await {
            Ok(()) => {}
            Err(StoreError::Conflict(m)) if m.contains("ssa_jti") => {
                return Err(RegistrationError::InvalidSoftwareStatement(
                    "this software statement was already used to register a client".into(),
                ));
            }
            Err(StoreError::NotFound(_)) => {
                return Err(RegistrationError::InvalidToken("the client does not exist".into()));
            }
            Err(e) => return Err(store_error(e)),
        }
        let body = self.response(&updated, None);
        self.changed(updated);
        Ok(body)
    }

    /// RFC 7592 §2.3: the client is offboarded (kept for the inventory and the audit trail, never
    /// usable again); its tokens stop being accepted.
    pub async fn delete(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        peer: &PeerCertificates,
    ) -> Result<(), RegistrationError> {
        let now = self.clock.now();
        let (current, cert) = self.authorize_management(client_id, bearer, peer, now).await?;
        let mut gone = current.clone();
        gone.status = ClientStatus::Offboarded;
        gone.status_reason = Some("deleted by the client (RFC 7592)".into());
        gone.tokens_not_before = Some(now.plus(1));
        gone.updated_at = now;
        let mut data = Map::new();
        data.insert("reason".into(), json!("deleted by the client (RFC 7592)"));
        data.insert("cert_subject".into(), json!(cert.subject.to_string()));
        let events = [
            AuditEvent {
                at: now,
                kind: AuditKind::RegistrationDeleted,
                actor: current.client_id.to_string(),
                client_id: Some(current.client_id.clone()),
                data: data.clone(),
            },
            AuditEvent {
                at: now,
                kind: AuditKind::ClientOffboarded,
                actor: current.client_id.to_string(),
                client_id: Some(current.client_id.clone()),
                data,
            },
        ];
        self.clients.update_client(&gone, &events).await.map_err(store_error)?;
        self.changed(gone);
        Ok(())
    }

    /// The statement stored with the client. It was verified at registration; it is read again
    /// here only to re-run the metadata rules, not to re-establish trust.
    fn stored_statement(&self, client: &ClientRecord) -> Result<SoftwareStatement, RegistrationError> {
        let raw = client.metadata.get("software_statement").and_then(Value::as_str).unwrap_or_default();
        let claims: Map<String, Value> = raw
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| RegistrationError::Internal {
                internal: format!("stored software statement of {} unreadable", client.client_id),
            })?;
        let roles = claims
            .get("software_roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        Ok(SoftwareStatement {
            raw: raw.to_owned(),
            issuer: client.directory.clone(),
            jti: claims.get("jti").and_then(Value::as_str).unwrap_or_default().to_owned(),
            software_id: client.software_id.clone(),
            org_id: client.org_id.clone(),
            org_name: client.org_name.clone(),
            org_status: "Active".into(),
            roles,
            software_mode: claims.get("software_mode").and_then(Value::as_str).unwrap_or("Live").to_owned(),
            claims,
        })
    }
}

fn higher_tier(a: &str, b: &str) -> String {
    let rank = |t: &str| match t {
        "high" => 3,
        "medium" => 2,
        _ => 1,
    };
    if rank(b) > rank(a) { b.to_owned() } else { a.to_owned() }
}

fn all_denied(scopes: &[ScopeGrant]) -> RegistrationError {
    if scopes.is_empty() {
        return RegistrationError::InvalidClientMetadata(
            "no scope was requested and the software's roles allow none".into(),
        );
    }
    let detail: Vec<String> = scopes.iter().map(|g| format!("{} denied by rule {}", g.scope, g.rule)).collect();
    RegistrationError::InvalidClientMetadata(format!("no requested scope can be granted: {}", detail.join("; ")))
}

fn registration_events<'a>(
    client: &ClientRecord,
    ssa: &SoftwareStatement,
    cert: &CertFacts,
    kind: AuditKind,
    now: UnixTime,
    decided: impl Iterator<Item = &'a ScopeGrant>,
) -> Vec<AuditEvent> {
    let actor = cert.subject.to_string();
    let mut data = Map::new();
    data.insert("software_id".into(), json!(client.software_id));
    data.insert("org_id".into(), json!(client.org_id));
    data.insert("directory".into(), json!(client.directory));
    data.insert("ssa_jti".into(), json!(ssa.jti));
    data.insert(
        "auth_method".into(),
        client.metadata.get("token_endpoint_auth_method").cloned().unwrap_or(Value::Null),
    );
    data.insert("risk_tier".into(), json!(client.risk_tier));
    data.insert("expires_at".into(), json!(client.expires_at.map(|t| t.0)));
    data.insert("cert_subject".into(), json!(actor));
    data.insert("cert_x5t#S256".into(), json!(cert.x5t_s256));
    let mut events =
        vec![AuditEvent { at: now, kind, actor: actor.clone(), client_id: Some(client.client_id.clone()), data }];
    for g in decided {
        let mut d = Map::new();
        d.insert("scope".into(), json!(g.scope));
        d.insert("state".into(), json!(g.state.as_str()));
        d.insert("rule".into(), json!(g.rule));
        events.push(AuditEvent {
            at: now,
            kind: AuditKind::ScopeDecision,
            actor: "policy".into(),
            client_id: Some(client.client_id.clone()),
            data: d,
        });
    }
    events
}

/// UK DCR v3.3: the response repeats the request claims and flattens the statement's claims to
/// the top level; the registered values win where they overlap.
fn uk_response(body: Value, request: &Map<String, Value>, ssa_claims: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (k, v) in ssa_claims {
        if !matches!(k.as_str(), "iss" | "iat" | "exp" | "jti") {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in request {
        out.insert(k.clone(), v.clone());
    }
    if let Value::Object(registered) = body {
        for (k, v) in registered {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}
