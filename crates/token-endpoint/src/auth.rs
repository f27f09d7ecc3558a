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
use tessera_core::client::{CachedClient, TokenEndpointAuth};
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
    pub async fn authenticate(&self, creds: &Credentials<'_>, now: UnixTime) -> Result<Arc<CachedClient>, TokenError> {
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

    fn lookup(&self, client_id: &str) -> Result<Arc<CachedClient>, TokenError> {
        self.clients.get(&ClientId::new(client_id)).ok_or_else(|| fail(format!("unknown client {client_id:?}"), false))
    }

    async fn mtls(
        &self,
        client_id: &str,
        peer: &PeerCertificates,
        now: UnixTime,
    ) -> Result<Arc<CachedClient>, TokenError> {
        let client = self.lookup(client_id)?;
        if !peer.is_present() {
            return Err(TokenError::InvalidClient {
                description: "a TLS client certificate is required: this client authenticates with its certificate"
                    .into(),
                authorization_header: false,
            });
        }
        match client.auth() {
            TokenEndpointAuth::TlsClientAuth(subject) => {
                let facts = self.anchors.verify(peer, now).map_err(|e| fail(format!("{client_id}: {e}"), false))?;
                let subject =
                    subject.as_ref().ok_or_else(|| fail(format!("{client_id}: no subject rule registered"), false))?;
                if !subject.matches(&facts) {
                    return Err(fail(
                        format!(
                            "{client_id}: certificate subject {} does not match the registered {}",
                            facts.subject,
                            subject.field()
                        ),
                        false,
                    ));
                }
            }
            TokenEndpointAuth::SelfSignedTlsClientAuth(_) => {
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
                return Err(fail(
                    format!("{client_id}: registered for {}, presented a certificate only", other.method()),
                    false,
                ));
            }
        }
        Ok(client)
    }

    async fn registered_certificates(&self, client: &CachedClient, refresh: bool) -> Result<Vec<Vec<u8>>, TokenError> {
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
    ) -> Result<Arc<CachedClient>, TokenError> {
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
        let TokenEndpointAuth::PrivateKeyJwt { signing_alg, .. } = client.auth() else {
            return Err(fail(format!("{unverified_sub}: not registered for private_key_jwt"), false));
        };
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
        if let Some(alg) = signing_alg.as_deref() {
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

/// The client's registered `token_endpoint_auth_method` (`tls_client_auth` when none is).
pub fn registered_method(client: &CachedClient) -> &str {
    client.auth().method()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;
    use tessera_core::error::TokenError;
    use tessera_core::{Clock, KeyId};

    use super::*;
    use crate::service::tests::{Fixture, NOW, client, fixture, form, peer, self_signed, settings};

    /// A CA and a client certificate it issued with subject `CN=<cn>,O=Org One` (DER each).
    fn ca_and_client(cn: &str) -> (Vec<u8>, Vec<u8>, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_der = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = issue(&issuer, cn);
        (ca_der, leaf, issuer)
    }

    fn issue(ca: &rcgen::Issuer<'static, rcgen::KeyPair>, cn: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        // Certificate order O, CN: RFC 4514 writes it `CN=..,O=..`.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "Org One");
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.signed_by(&key, ca).unwrap().der().to_vec()
    }

    async fn auth(
        f: &Fixture,
        pairs: &[(&str, &str)],
        header: bool,
        peer: &PeerCertificates,
    ) -> Result<String, TokenError> {
        let form = form(pairs);
        let creds = Credentials { form: &form, authorization_header: header, peer };
        f.service.authenticate(&creds, f.clock.now()).await.map(|c| c.client_id.to_string())
    }

    fn is_invalid_client(r: &Result<String, TokenError>) -> bool {
        matches!(r, Err(TokenError::InvalidClient { .. }))
    }

    #[test]
    fn form_parameters_are_single_and_non_empty() {
        // RFC 6749 §3.2: "Request and response parameters MUST NOT be included more than once."
        let f = form(&[("a", "1"), ("b", ""), ("c", "x"), ("c", "y"), ("d", ""), ("d", "z"), ("r", "1"), ("r", "2")]);
        assert_eq!(f.get("a").unwrap(), Some("1"));
        assert_eq!(f.get("b").unwrap(), None, "an empty value is an absent parameter");
        assert_eq!(f.get("missing").unwrap(), None);
        for repeated in ["c", "d", "r"] {
            match f.get(repeated) {
                Err(TokenError::InvalidRequest(d)) => assert!(d.contains(repeated), "{d}"),
                other => panic!("{repeated}: {other:?}"),
            }
        }
        assert_eq!(f.get("A").unwrap(), None, "names are case-sensitive");
        // `all` is for the parameters that may repeat (RFC 8707 resource).
        assert_eq!(f.all("r").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(f.all("missing").count(), 0);
    }

    #[tokio::test]
    async fn one_method_per_request_and_no_secrets() {
        let f = fixture(settings(), &[]);
        let none = PeerCertificates::default();
        let assertion = [("client_assertion_type", CLIENT_ASSERTION_TYPE), ("client_assertion", "a.b.c")];
        // RFC 6749 §2.3 (checklist J.103): more than one method is invalid_request.
        let r = auth(&f, &assertion, true, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidRequest(_))), "{r:?}");
        let r = auth(&f, &[assertion[0], assertion[1], ("client_secret", "s")], false, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidRequest(_))), "{r:?}");
        let r = auth(&f, &[("client_id", "c"), ("client_secret", "s")], true, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidRequest(_))), "{r:?}");
        // FAPI2 A.2-13: secrets are not a method here; WWW-Authenticate only after the header.
        let r = auth(&f, &[("client_id", "c")], true, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidClient { authorization_header: true, .. })), "{r:?}");
        let r = auth(&f, &[("client_id", "c"), ("client_secret", "s")], false, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidClient { authorization_header: false, .. })), "{r:?}");
        // RFC 8705 §2 (checklist C.56): mTLS needs client_id.
        let r = auth(&f, &[], false, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidRequest(_))), "{r:?}");
        // An assertion of another type is not a guess.
        let r = auth(&f, &[("client_assertion_type", "urn:x"), ("client_assertion", "a.b.c")], false, &none).await;
        assert!(matches!(r, Err(TokenError::InvalidRequest(_))), "{r:?}");
    }

    #[tokio::test]
    async fn tls_client_auth_validates_the_chain_then_the_subject() {
        // RFC 8705 §2.1, checklist C.57.
        let (ca, leaf, issuer) = ca_and_client("fintech-1");
        let f = fixture(settings(), &[ca]);
        let md = json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=fintech-1,O=Org One" });
        f.clients.put(client("c1", "low", md));
        let id = [("client_id", "c1")];
        assert_eq!(auth(&f, &id, false, &peer(&leaf)).await.unwrap(), "c1");
        // RFC 4517 matching: case and spacing of the registered DN do not matter.
        let md = json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "cn=FINTECH-1, o=org one" });
        f.clients.put(client("c2", "low", md));
        assert_eq!(auth(&f, &[("client_id", "c2")], false, &peer(&leaf)).await.unwrap(), "c2");

        let other = issue(&issuer, "fintech-2");
        assert!(is_invalid_client(&auth(&f, &id, false, &peer(&other)).await), "same CA, other subject");
        let (_, same_name_other_ca, _) = ca_and_client("fintech-1");
        assert!(is_invalid_client(&auth(&f, &id, false, &peer(&same_name_other_ca)).await), "untrusted CA");
        let (selfsigned, _) = self_signed("fintech-1");
        assert!(is_invalid_client(&auth(&f, &id, false, &peer(&selfsigned)).await), "self-signed");
        match auth(&f, &id, false, &PeerCertificates::default()).await {
            Err(TokenError::InvalidClient { description, .. }) => {
                assert!(description.contains("certificate is required"))
            }
            other => panic!("{other:?}"),
        }
        assert!(is_invalid_client(&auth(&f, &[("client_id", "unknown")], false, &peer(&leaf)).await));
        // Validity is judged at the service clock's time: before rcgen's default notBefore (1975)
        // the certificate is not valid yet.
        f.clock.set(100_000_000);
        assert!(is_invalid_client(&auth(&f, &id, false, &peer(&leaf)).await), "not valid yet at the clock's time");
    }

    #[tokio::test]
    async fn self_signed_matches_a_registered_certificate() {
        // RFC 8705 §2.2, checklist C.59.
        let f = fixture(settings(), &[]);
        let (a, jwk_a) = self_signed("a");
        let (b, jwk_b) = self_signed("b");
        let md =
            json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": { "keys": [jwk_a, jwk_b] } });
        f.clients.put(client("c1", "low", md));
        let id = [("client_id", "c1")];
        assert_eq!(auth(&f, &id, false, &peer(&a)).await.unwrap(), "c1");
        assert_eq!(auth(&f, &id, false, &peer(&b)).await.unwrap(), "c1");
        let (c, jwk_c) = self_signed("c");
        assert!(is_invalid_client(&auth(&f, &id, false, &peer(&c)).await));
        // A certificate rotated through jwks_uri is found on the refresh.
        let refreshes = *f.keys.refreshes.lock().unwrap();
        *f.keys.refreshed.lock().unwrap() = Some(vec![jwk_c]);
        assert_eq!(auth(&f, &id, false, &peer(&c)).await.unwrap(), "c1");
        assert!(*f.keys.refreshes.lock().unwrap() > refreshes);
        // A client registered for another method cannot use its certificate alone.
        let md = json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [self_signed("d").1] } });
        f.clients.put(client("c2", "low", md));
        assert!(is_invalid_client(&auth(&f, &[("client_id", "c2")], false, &peer(&a)).await));
    }

    struct Pkj {
        f: Fixture,
        key: tessera_jose::KeyMaterial,
    }

    fn pkj(accept_token_endpoint_audience: bool, registered_alg: Option<&str>) -> Pkj {
        let mut s = settings();
        s.accept_token_endpoint_audience = accept_token_endpoint_audience;
        let f = fixture(s, &[]);
        let key = tessera_jose::generate(SigningAlg::ES256, KeyId::new("k1")).unwrap();
        let mut md =
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [key.public_jwk.as_ref()] } });
        if let Some(alg) = registered_alg {
            md["token_endpoint_auth_signing_alg"] = json!(alg);
        }
        f.clients.put(client("c1", "low", md));
        Pkj { f, key }
    }

    fn claims(jti: &str) -> Value {
        json!({ "iss": "c1", "sub": "c1", "aud": crate::service::tests::ISSUER, "iat": NOW, "exp": NOW + 60, "jti": jti })
    }

    impl Pkj {
        async fn try_with(&self, claims: &Value) -> Result<String, TokenError> {
            let jwt = tessera_jose::sign_with_jwk(
                SigningAlg::ES256,
                &self.key.private_jwk,
                "JWT",
                claims.as_object().unwrap(),
            )
            .unwrap();
            self.send(&jwt, None).await
        }

        async fn send(&self, jwt: &str, client_id: Option<&str>) -> Result<String, TokenError> {
            let mut pairs = vec![("client_assertion_type", CLIENT_ASSERTION_TYPE), ("client_assertion", jwt)];
            if let Some(id) = client_id {
                pairs.push(("client_id", id));
            }
            auth(&self.f, &pairs, false, &PeerCertificates::default()).await
        }
    }

    #[tokio::test]
    async fn private_key_jwt_clock_skew_boundaries() {
        // FAPI2 A.2-20 (checklist 20): 0-10 s ahead accepted; more than 60 s refused.
        let p = pkj(false, None);
        let table: &[(&str, i64, bool)] = &[
            ("iat", 0, true),
            ("iat", 10, true),
            ("iat", 60, true),
            ("iat", 61, false),
            ("iat", 3_600, false),
            ("nbf", 10, true),
            ("nbf", 60, true),
            ("nbf", 61, false),
            ("iat", -3_600, true),
        ];
        for (i, (claim, ahead, ok)) in table.iter().enumerate() {
            let mut c = claims(&format!("skew-{i}"));
            c[*claim] = json!(NOW + ahead);
            c["exp"] = json!(NOW + ahead.max(&0) + 60);
            let r = p.try_with(&c).await;
            assert_eq!(r.is_ok(), *ok, "{claim} {ahead:+} s: {r:?}");
        }
        // exp is required and must be after now.
        for (i, (exp, ok)) in
            [(Some(NOW), false), (Some(NOW + 1), true), (Some(NOW - 1), false), (None, false)].iter().enumerate()
        {
            let mut c = claims(&format!("exp-{i}"));
            match exp {
                Some(e) => c["exp"] = json!(e),
                None => {
                    c.as_object_mut().unwrap().remove("exp");
                }
            }
            assert_eq!(p.try_with(&c).await.is_ok(), *ok, "exp {exp:?}");
        }
        let mut c = claims("iat-string");
        c["iat"] = json!("soon");
        assert!(is_invalid_client(&p.try_with(&c).await));
    }

    #[tokio::test]
    async fn private_key_jwt_claims_and_replay() {
        let p = pkj(false, None);
        let base = claims("first");
        assert_eq!(p.try_with(&base).await.unwrap(), "c1");
        // Replay of the same jti (the same or a re-signed assertion): refused.
        assert!(is_invalid_client(&p.try_with(&base).await));
        // The jti is per client and remembered until the assertion's exp, not forever.
        p.f.clock.advance(61);
        let mut later = claims("first");
        later["iat"] = json!(NOW + 61);
        later["exp"] = json!(NOW + 120);
        assert_eq!(p.try_with(&later).await.unwrap(), "c1", "the first assertion expired; its jti may be reused");
        p.f.clock.set(NOW);

        // FAPI2 A.2-15 (checklist 15): the issuer as a plain string only.
        let refused = [
            ("aud", json!([crate::service::tests::ISSUER])),
            ("aud", json!(format!("{}/token", crate::service::tests::ISSUER))),
            ("aud", json!(format!("{}/", crate::service::tests::ISSUER))),
            ("aud", json!("https://other.example")),
            ("iss", json!("c2")),
            ("sub", json!("c2")),
            ("jti", json!(null)),
        ];
        for (i, (claim, value)) in refused.iter().enumerate() {
            let mut c = claims(&format!("refused-{i}"));
            if value.is_null() {
                c.as_object_mut().unwrap().remove(*claim);
            } else {
                c[*claim] = value.clone();
            }
            assert!(is_invalid_client(&p.try_with(&c).await), "{claim} = {value}");
        }
        // client_id, when present, must be the assertion's subject.
        let jwt = |jti: &str| {
            tessera_jose::sign_with_jwk(SigningAlg::ES256, &p.key.private_jwk, "JWT", claims(jti).as_object().unwrap())
                .unwrap()
        };
        assert_eq!(p.send(&jwt("with-id"), Some("c1")).await.unwrap(), "c1");
        assert!(is_invalid_client(&p.send(&jwt("other-id"), Some("c2")).await));

        // Another key under the registered kid, RS256-like and unsigned headers: refused.
        let other = tessera_jose::generate(SigningAlg::ES256, KeyId::new("k1")).unwrap();
        let forged = tessera_jose::sign_with_jwk(
            SigningAlg::ES256,
            &other.private_jwk,
            "JWT",
            claims("forged").as_object().unwrap(),
        )
        .unwrap();
        assert!(is_invalid_client(&p.send(&forged, None).await));
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = URL_SAFE_NO_PAD.encode(claims("none").to_string());
        for header in [r#"{"alg":"none"}"#, r#"{"alg":"RS256","kid":"k1"}"#, r#"{"alg":"HS256"}"#] {
            let jwt = format!("{}.{body}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode("sig"));
            assert!(is_invalid_client(&p.send(&jwt, None).await), "{header}");
        }
        assert!(is_invalid_client(&p.send("not a jwt", None).await));

        // A client of another method cannot authenticate with an assertion.
        let (_, jwk) = self_signed("x");
        let md = json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": { "keys": [jwk] } });
        p.f.clients.put(client("c3", "low", md));
        let mut c = claims("c3");
        c["iss"] = json!("c3");
        c["sub"] = json!("c3");
        assert!(is_invalid_client(&p.try_with(&c).await));
    }

    #[tokio::test]
    async fn private_key_jwt_audience_option_and_registered_alg() {
        // The UK profile option: the token endpoint URL is accepted too, still only as a string.
        let p = pkj(true, None);
        let token_endpoint = format!("{}/token", crate::service::tests::ISSUER);
        let mut c = claims("uk-1");
        c["aud"] = json!(token_endpoint);
        assert!(p.try_with(&c).await.is_ok());
        c["jti"] = json!("uk-2");
        c["aud"] = json!([token_endpoint]);
        assert!(is_invalid_client(&p.try_with(&c).await));

        // token_endpoint_auth_signing_alg, when registered, is the only algorithm accepted.
        let p = pkj(false, Some("PS256"));
        assert!(is_invalid_client(&p.try_with(&claims("alg-1")).await));
        let p = pkj(false, Some("ES256"));
        assert!(p.try_with(&claims("alg-2")).await.is_ok());
    }
}
