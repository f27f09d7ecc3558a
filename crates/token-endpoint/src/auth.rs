//! Client authentication at the token endpoint (and revocation): exactly one method per request,
//! and it must be the method the client registered.
//!
//! - `tls_client_auth` (RFC 8705 §2.1): chain validated to a trust anchor, then the registered
//!   subject DN or SAN matched (RFC 4517 matching);
//! - `self_signed_tls_client_auth` (§2.2): the presented certificate equals one registered in
//!   the client's JWKS (`x5c`); the chain is not validated;
//! - `private_key_jwt` (OIDC Core §9, FAPI2 5.3.2.1-8): assertion signed by a client key, `aud`
//!   the issuer as a plain string, `exp` required, `iat`/`nbf` at most 60 s ahead, `jti` once.
//!
//! Every failure is `invalid_client` with the same description: the response does not say which
//! check failed (RFC 6749 §5.2); the reason is logged.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tessera_core::cert::SubjectRule;
use tessera_core::client::ClientRecord;
use tessera_core::error::TokenError;
use tessera_core::keys::SigningAlg;
use tessera_core::{ClientId, UnixTime};
use tessera_http::PeerCertificates;
use tessera_jose::{VerifyError, verify_with_jwks};

use crate::service::TokenService;

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// FAPI2 5.3.2.1-13: `iat`/`nbf` up to 10 s ahead MUST be accepted; more than 60 s MUST be refused.
pub const MAX_FUTURE_SKEW_SECS: i64 = 60;

/// A form body with RFC 6749 §3.2's rule: no parameter more than once.
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn get(&self, name: &str) -> Result<Option<&str>, TokenError> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(TokenError::InvalidRequest(format!("parameter {name} is repeated; send it once")));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn fail(reason: impl std::fmt::Display, authorization_header: bool) -> TokenError {
    tracing::info!(reason = %reason, "client authentication failed");
    TokenError::InvalidClient { description: "client authentication failed".into(), authorization_header }
}

/// What the request carries for authentication.
pub struct Credentials<'a> {
    pub form: &'a Form,
    /// An `Authorization` header was sent (client_secret_basic is not offered here).
    pub authorization_header: bool,
    pub peer: &'a PeerCertificates,
}

impl TokenService {
    pub async fn authenticate(&self, creds: &Credentials<'_>, now: UnixTime) -> Result<Arc<ClientRecord>, TokenError> {
        let form = creds.form;
        let assertion = form.get("client_assertion")?;
        let assertion_type = form.get("client_assertion_type")?;
        let client_id = form.get("client_id")?;
        let has_secret = form.get("client_secret")?.is_some();
        let methods = [creds.authorization_header, assertion.is_some(), has_secret].iter().filter(|m| **m).count();
        if methods > 1 {
            // RFC 6749 §2.3: a client must not use more than one method per request.
            return Err(TokenError::InvalidRequest(
                "more than one client authentication method in one request; use exactly one".into(),
            ));
        }
        if creds.authorization_header || has_secret {
            return Err(fail("client secret authentication is not offered", creds.authorization_header));
        }
        match assertion {
            Some(assertion) => {
                if assertion_type != Some(CLIENT_ASSERTION_TYPE) {
                    return Err(TokenError::InvalidRequest(format!(
                        "client_assertion_type must be {CLIENT_ASSERTION_TYPE}"
                    )));
                }
                self.private_key_jwt(assertion, client_id, now).await
            }
            None => {
                let client_id = client_id.ok_or_else(|| {
                    // RFC 8705 §2: mTLS client authentication needs client_id in the request.
                    TokenError::InvalidRequest(
                        "client_id is required with TLS client certificate authentication".into(),
                    )
                })?;
                self.mtls(client_id, creds.peer, now).await
            }
        }
    }

    fn lookup(&self, client_id: &str) -> Result<Arc<ClientRecord>, TokenError> {
        self.clients.get(&ClientId::new(client_id)).ok_or_else(|| fail(format!("unknown client {client_id:?}"), false))
    }

    async fn mtls(
        &self,
        client_id: &str,
        peer: &PeerCertificates,
        now: UnixTime,
    ) -> Result<Arc<ClientRecord>, TokenError> {
        let client = self.lookup(client_id)?;
        if !peer.is_present() {
            return Err(TokenError::InvalidClient {
                description: "a TLS client certificate is required: this client authenticates with its certificate"
                    .into(),
                authorization_header: false,
            });
        }
        match registered_method(&client) {
            "tls_client_auth" => {
                let facts = self.anchors.verify(peer, now).map_err(|e| fail(format!("{client_id}: {e}"), false))?;
                let rule = subject_rule(&client)
                    .ok_or_else(|| fail(format!("{client_id}: no subject rule registered"), false))?;
                if !rule.matches(&facts) {
                    return Err(fail(
                        format!(
                            "{client_id}: certificate subject {} does not match the registered {}",
                            facts.subject,
                            rule.field()
                        ),
                        false,
                    ));
                }
            }
            "self_signed_tls_client_auth" => {
                let leaf = peer.leaf().map(|c| c.as_ref().to_vec()).unwrap_or_default();
                let mut matched = self.registered_certificates(&client, false).await?.contains(&leaf);
                if !matched {
                    // The client may have rotated its certificate through its jwks_uri.
                    matched = self.registered_certificates(&client, true).await?.contains(&leaf);
                }
                if !matched {
                    return Err(fail(
                        format!("{client_id}: certificate is not one registered in the client's JWKS"),
                        false,
                    ));
                }
            }
            other => {
                return Err(fail(format!("{client_id}: registered for {other}, presented a certificate only"), false));
            }
        }
        Ok(client)
    }

    async fn registered_certificates(&self, client: &ClientRecord, refresh: bool) -> Result<Vec<Vec<u8>>, TokenError> {
        let keys = self.client_keys.keys(client, refresh).await.map_err(|e| TokenError::Unavailable { internal: e })?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                k.parameter("x5c").and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str)
            })
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect())
    }

    async fn private_key_jwt(
        &self,
        assertion: &str,
        client_id: Option<&str>,
        now: UnixTime,
    ) -> Result<Arc<ClientRecord>, TokenError> {
        // The client is named by the assertion's sub; read unverified only to find its keys.
        let unverified_sub = assertion
            .split('.')
            .nth(1)
            .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Map<String, Value>>(&b).ok())
            .and_then(|m| m.get("sub").and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| fail("client_assertion is not a JWT with a sub claim", false))?;
        if client_id.is_some_and(|id| id != unverified_sub) {
            return Err(fail("client_id differs from the assertion's sub", false));
        }
        let client = self.lookup(&unverified_sub)?;
        if registered_method(&client) != "private_key_jwt" {
            return Err(fail(format!("{unverified_sub}: not registered for private_key_jwt"), false));
        }
        let keys = self.client_keys.keys(&client, false).await.map_err(|e| TokenError::Unavailable { internal: e })?;
        let verified = match verify_with_jwks(assertion, &keys, None) {
            Err(VerifyError::UnknownKey) => {
                let keys =
                    self.client_keys.keys(&client, true).await.map_err(|e| TokenError::Unavailable { internal: e })?;
                verify_with_jwks(assertion, &keys, None)
            }
            other => other,
        }
        .map_err(|e| fail(format!("{unverified_sub}: assertion: {e}"), false))?;
        if let Some(alg) = client.metadata.get("token_endpoint_auth_signing_alg").and_then(Value::as_str) {
            let used = verified.header.get("alg").and_then(Value::as_str).unwrap_or("");
            if SigningAlg::parse(alg).ok() != SigningAlg::parse(used).ok() {
                return Err(fail(format!("{unverified_sub}: assertion alg {used} is not the registered {alg}"), false));
            }
        }
        let c = &verified.claims;
        let id = client.client_id.as_str();
        if c.get("iss").and_then(Value::as_str) != Some(id) || c.get("sub").and_then(Value::as_str) != Some(id) {
            return Err(fail(format!("{id}: assertion iss and sub must both be the client_id"), false));
        }
        // FAPI2 5.3.2.1-8: the issuer identifier as a plain string; never an array.
        let aud_ok = match c.get("aud") {
            Some(Value::String(aud)) => {
                aud == self.issuer.as_str()
                    || (self.settings.accept_token_endpoint_audience && *aud == self.issuer.endpoint("/token"))
            }
            _ => false,
        };
        if !aud_ok {
            return Err(fail(
                format!("{id}: assertion aud must be the issuer {:?} as a string", self.issuer.as_str()),
                false,
            ));
        }
        let exp =
            c.get("exp").and_then(Value::as_i64).ok_or_else(|| fail(format!("{id}: assertion has no exp"), false))?;
        if exp <= now.0 {
            return Err(fail(format!("{id}: assertion expired"), false));
        }
        for claim in ["iat", "nbf"] {
            if let Some(t) = c.get(claim) {
                let t = t.as_i64().ok_or_else(|| fail(format!("{id}: assertion {claim} is not a number"), false))?;
                if t > now.0 + MAX_FUTURE_SKEW_SECS {
                    return Err(fail(format!("{id}: assertion {claim} is {} s in the future", t - now.0), false));
                }
            }
        }
        let jti =
            c.get("jti").and_then(Value::as_str).ok_or_else(|| fail(format!("{id}: assertion has no jti"), false))?;
        // Remembered until the assertion can no longer be valid.
        let first = self
            .replay
            .first_use("client_assertion", &format!("{id}:{jti}"), UnixTime(exp), now)
            .await
            .map_err(|e| TokenError::Unavailable { internal: e.to_string() })?;
        if !first {
            return Err(fail(format!("{id}: assertion jti {jti:?} replayed"), false));
        }
        Ok(client)
    }
}

pub fn registered_method(client: &ClientRecord) -> &str {
    client.metadata.get("token_endpoint_auth_method").and_then(Value::as_str).unwrap_or("tls_client_auth")
}

fn subject_rule(client: &ClientRecord) -> Option<SubjectRule> {
    SubjectRule::FIELDS.iter().find_map(|field| {
        client.metadata.get(*field).and_then(Value::as_str).and_then(|v| SubjectRule::from_metadata(field, v).ok())
    })
}
