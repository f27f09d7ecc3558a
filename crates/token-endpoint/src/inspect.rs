//! Is an access token good right now? Shared by introspection and revocation.
//!
//! Active means: signed by one of this server's published keys with `typ: at+jwt`; `iss` is this
//! issuer; not expired and not before its `nbf`; its `jti` not revoked; its client known, active,
//! and with no not-before later than the token's `iat` (suspension and offboarding).

use serde_json::{Map, Value};
use tessera_core::client::ClientStatus;
use tessera_core::keys::AccessTokenVerifier;
use tessera_core::{ClientId, Issuer, UnixTime};
use tessera_store::{ClientCache, Revocations};

/// Clock skew tolerated on `nbf`.
const NBF_SKEW_SECS: i64 = 60;

/// A token this server issued, verified, with the claims the checks need.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub claims: Map<String, Value>,
    pub jti: String,
    pub client_id: ClientId,
    pub iat: i64,
    pub exp: i64,
}

/// Signature, type and issuer only: a token of ours, whatever its state.
pub fn issued_by_us(token: &str, verifier: &dyn AccessTokenVerifier, issuer: &Issuer) -> Option<IssuedToken> {
    // Tokens are a few hundred bytes; anything huge is not one of ours.
    if token.len() > 8 * 1024 {
        return None;
    }
    let claims = verifier.verify(token, "at+jwt")?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str()) {
        return None;
    }
    Some(IssuedToken {
        jti: claims.get("jti").and_then(Value::as_str)?.to_owned(),
        client_id: ClientId::new(claims.get("client_id").and_then(Value::as_str)?),
        iat: claims.get("iat").and_then(Value::as_i64)?,
        exp: claims.get("exp").and_then(Value::as_i64)?,
        claims,
    })
}

/// The token's state now.
pub fn is_active(token: &IssuedToken, clients: &ClientCache, revocations: &Revocations, now: UnixTime) -> bool {
    if token.exp <= now.0 {
        return false;
    }
    if token.claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf > now.0 + NBF_SKEW_SECS) {
        return false;
    }
    if revocations.is_revoked(&token.jti) {
        return false;
    }
    let Some(client) = clients.get(&token.client_id) else {
        return false;
    };
    client.status == ClientStatus::Active
        && !client.is_expired(now)
        && client.tokens_not_before.is_none_or(|nb| token.iat >= nb.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! One definition of "active" (checklist F.83, G.87-89), as a table: each row changes one
    //! thing about a good token or its client.

    use std::collections::HashMap;

    use serde_json::json;
    use tessera_core::client::ClientRecord;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const ISSUER: &str = "https://as.bank.example";

    /// Knows a fixed set of tokens, each with the header `typ` it was "signed" with; anything
    /// else fails verification, as a bad signature would.
    #[derive(Default)]
    struct FakeVerifier(HashMap<String, (&'static str, Map<String, Value>)>);

    impl FakeVerifier {
        fn with(mut self, token: &str, typ: &'static str, claims: Value) -> Self {
            self.0.insert(token.to_owned(), (typ, claims.as_object().unwrap().clone()));
            self
        }
    }

    impl AccessTokenVerifier for FakeVerifier {
        fn verify(&self, token: &str, typ: &str) -> Option<Map<String, Value>> {
            self.0.get(token).filter(|(t, _)| *t == typ).map(|(_, c)| c.clone())
        }
    }

    fn issuer() -> Issuer {
        Issuer::parse(ISSUER).unwrap()
    }

    fn claims(client_id: &str, jti: &str) -> Value {
        json!({
            "iss": ISSUER, "sub": client_id, "client_id": client_id, "aud": "https://api.bank.example",
            "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 290, "jti": jti, "scope": "accounts:read",
            "cnf": { "x5t#S256": "x5t" },
        })
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

    fn client(id: &str, status: ClientStatus, tokens_not_before: Option<i64>) -> ClientRecord {
        ClientRecord {
            client_id: ClientId::new(id),
            status,
            status_reason: None,
            org_id: "org-1".into(),
            org_name: "Org One".into(),
            software_id: "software-1".into(),
            directory: "directory".into(),
            purpose: "tests".into(),
            risk_tier: "medium".into(),
            created_at: UnixTime(NOW - 1000),
            updated_at: UnixTime(NOW - 1000),
            expires_at: None,
            last_used_at: None,
            tokens_not_before: tokens_not_before.map(UnixTime),
            registration_token_hash: String::new(),
            ssa_jti: None,
            transport_cert_subject: "CN=client".into(),
            scopes: vec![],
            metadata: Map::new(),
        }
    }

    /// A verified token with `claims`, through `issued_by_us` as the endpoints get it.
    fn issued(claims: &Value) -> IssuedToken {
        let verifier = FakeVerifier::default().with("t", "at+jwt", claims.clone());
        issued_by_us("t", &verifier, &issuer()).expect("a token of ours")
    }

    #[test]
    fn is_active_table() {
        let good = claims("c1", "jti-good");
        let clients = ClientCache::new();
        clients.put(client("c1", ClientStatus::Active, None));
        clients.put(client("suspended", ClientStatus::Suspended, Some(NOW - 5)));
        clients.put(client("suspended-no-cutoff", ClientStatus::Suspended, None));
        let mut expired = client("expired-registration", ClientStatus::Active, None);
        expired.expires_at = Some(UnixTime(NOW - 1));
        clients.put(expired);
        clients.put(client("offboarded", ClientStatus::Offboarded, Some(NOW - 5)));
        // Reinstated clients keep a cut-off: tokens issued before it stay inactive.
        clients.put(client("cut-after-iat", ClientStatus::Active, Some(NOW - 9)));
        clients.put(client("cut-at-iat", ClientStatus::Active, Some(NOW - 10)));
        clients.put(client("cut-before-iat", ClientStatus::Active, Some(NOW - 11)));
        let revocations = Revocations::new();
        revocations.insert("jti-revoked".into(), UnixTime(NOW + 290));
        revocations.insert("jti-other".into(), UnixTime(NOW + 290));

        let table: [(&str, Value, bool); 18] = [
            ("active", good.clone(), true),
            ("without nbf", without(&good, "nbf"), true),
            ("expired a second ago", with(&good, "exp", json!(NOW - 1)), false),
            ("expiring now (exp is exclusive)", with(&good, "exp", json!(NOW)), false),
            ("expiring in a second", with(&good, "exp", json!(NOW + 1)), true),
            ("nbf in the future, beyond the skew", with(&good, "nbf", json!(NOW + NBF_SKEW_SECS + 1)), false),
            ("nbf in the future, within the skew", with(&good, "nbf", json!(NOW + NBF_SKEW_SECS)), true),
            ("revoked", with(&good, "jti", json!("jti-revoked")), false),
            ("unknown client", claims("nobody", "jti-good"), false),
            ("suspended client", claims("suspended", "jti-good"), false),
            ("suspended client without a cut-off", claims("suspended-no-cutoff", "jti-good"), false),
            ("client registration expired since", claims("expired-registration", "jti-good"), false),
            ("offboarded client", claims("offboarded", "jti-good"), false),
            ("tokens_not_before after iat", claims("cut-after-iat", "jti-good"), false),
            ("tokens_not_before equal to iat", claims("cut-at-iat", "jti-good"), true),
            ("tokens_not_before before iat", claims("cut-before-iat", "jti-good"), true),
            (
                "issued a second before the cut-off",
                with(&claims("cut-at-iat", "jti-good"), "iat", json!(NOW - 11)),
                false,
            ),
            ("nbf is not an integer: ignored, not a crash", with(&good, "nbf", json!("soon")), true),
        ];
        for (case, claims, want) in table {
            assert_eq!(is_active(&issued(&claims), &clients, &revocations, UnixTime(NOW)), want, "{case}: {claims}");
        }
    }

    #[test]
    fn is_active_follows_state_changes() {
        let clients = ClientCache::new();
        let revocations = Revocations::new();
        let token = issued(&claims("c1", "jti-1"));
        let at = UnixTime(NOW);
        assert!(!is_active(&token, &clients, &revocations, at), "client not (yet) known");
        clients.put(client("c1", ClientStatus::Active, None));
        assert!(is_active(&token, &clients, &revocations, at));
        clients.put(client("c1", ClientStatus::Suspended, Some(NOW)));
        assert!(!is_active(&token, &clients, &revocations, at), "suspended");
        clients.put(client("c1", ClientStatus::Active, Some(NOW)));
        assert!(!is_active(&token, &clients, &revocations, at), "reinstated: earlier tokens stay inactive");
        clients.put(client("c1", ClientStatus::Active, None));
        assert!(is_active(&token, &clients, &revocations, at));
        revocations.insert("jti-1".into(), UnixTime(NOW + 290));
        assert!(!is_active(&token, &clients, &revocations, at), "revoked");
        // Purging happens only once the token has expired: never makes a live token active again.
        revocations.purge(UnixTime(NOW + 289));
        assert!(!is_active(&token, &clients, &revocations, at), "still revoked before its expiry");
        assert!(!is_active(&token, &clients, &revocations, UnixTime(NOW + 290)), "expired");
    }

    #[test]
    fn issued_by_us_checks_signature_type_issuer_and_claims() {
        let good = claims("c1", "jti-1");
        let verifier = FakeVerifier::default()
            .with("good", "at+jwt", good.clone())
            .with("metadata", "JWT", good.clone())
            .with("introspection-response", "token-introspection+jwt", good.clone())
            .with("other-issuer", "at+jwt", with(&good, "iss", json!("https://other.example")))
            .with("issuer-with-slash", "at+jwt", with(&good, "iss", json!(format!("{ISSUER}/"))))
            .with("no-iss", "at+jwt", without(&good, "iss"))
            .with("no-jti", "at+jwt", without(&good, "jti"))
            .with("no-client_id", "at+jwt", without(&good, "client_id"))
            .with("no-iat", "at+jwt", without(&good, "iat"))
            .with("no-exp", "at+jwt", without(&good, "exp"))
            .with("string-exp", "at+jwt", with(&good, "exp", json!("1800000290")))
            .with("numeric-jti", "at+jwt", with(&good, "jti", json!(7)));

        let t = issued_by_us("good", &verifier, &issuer()).unwrap();
        assert_eq!((t.jti.as_str(), t.client_id.as_str(), t.iat, t.exp), ("jti-1", "c1", NOW - 10, NOW + 290));
        assert_eq!(Value::Object(t.claims), good, "every claim is kept for the introspection response");

        for token in [
            "unknown",
            "metadata",
            "introspection-response",
            "other-issuer",
            "issuer-with-slash",
            "no-iss",
            "no-jti",
            "no-client_id",
            "no-iat",
            "no-exp",
            "string-exp",
            "numeric-jti",
        ] {
            assert!(issued_by_us(token, &verifier, &issuer()).is_none(), "{token} must not pass for one of our tokens");
        }

        // Anything longer than any token of ours is refused before verification.
        let huge = "a".repeat(8 * 1024 + 1);
        let verifier = FakeVerifier::default().with(&huge, "at+jwt", good);
        assert!(issued_by_us(&huge, &verifier, &issuer()).is_none());
    }
}
