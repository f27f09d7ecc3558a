//! `Validator::validate`: each RFC 9068 §4 / RFC 8705 §3 failure class, with its error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use tessera_resource_server::{Algorithm, InvalidToken, JwksCache, RsError, Validator, error_parts};

use crate::support::*;

fn invalid(reason: InvalidToken) -> Result<(), RsError> {
    Err(RsError::InvalidToken(reason))
}

/// Validates and keeps only the error (or `Ok(())`).
async fn check(v: &Validator, token: &str, cert: Option<&[u8]>) -> Result<(), RsError> {
    v.validate(token, cert, now()).await.map(|_| ())
}

#[tokio::test]
async fn valid_tokens_of_every_algorithm_are_accepted() {
    let cert = client_cert("c1");
    let keys = [TestKey::es256("es"), TestKey::ps256("ps"), TestKey::eddsa("ed")];
    let v = static_validator(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let token = key.token(&cert, json!({}));
        let at = v.validate(&token, Some(&cert), now()).await.unwrap_or_else(|e| panic!("{}: {e:?}", key.alg));
        assert_eq!(at.sub, "client-1");
        assert_eq!(at.client_id, "client-1");
        assert_eq!(at.scope, vec!["accounts:read", "payments:write"]);
        assert!(at.jti.starts_with("jti-"));
        assert!(at.exp > now());
        assert!(at.has_scope("accounts:read"));
        assert!(!at.has_scope("accounts"));
        assert_eq!(at.claims["iss"], ISSUER);
        assert_eq!(at.x5t_s256(), Some(tessera_core::thumbprint::x5t_s256(&cert).as_str()));
    }
}

#[tokio::test]
async fn typ_variants_and_audience_arrays_are_accepted() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"] {
        let token = key.sign(json!({ "typ": typ }), &serde_json::Value::Object(valid_claims(&cert)));
        assert_eq!(check(&v, &token, Some(&cert)).await, Ok(()), "{typ}");
    }
    let token = key.token(&cert, json!({ "aud": ["https://other.example", AUDIENCE] }));
    assert_eq!(check(&v, &token, Some(&cert)).await, Ok(()));
    // No scope claim: valid, with no scope.
    let at = v.validate(&key.token(&cert, json!({ "scope": null })), Some(&cert), now()).await.unwrap();
    assert!(at.scope.is_empty());
}

#[tokio::test]
async fn bad_signatures_are_rejected() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);

    // Payload changed after signing.
    let token = key.token(&cert, json!({}));
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = valid_claims(&cert);
    claims.insert("scope".into(), json!("accounts:read payments:write admin"));
    let forged = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()), parts[2]);
    assert_eq!(check(&v, &forged, Some(&cert)).await, invalid(InvalidToken::Signature));

    // Signed by another key that claims the same kid.
    let impostor = TestKey::es256("k1");
    assert_eq!(check(&v, &impostor.token(&cert, json!({})), Some(&cert)).await, invalid(InvalidToken::Signature));

    // Signature bytes flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[5] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(check(&v, &flipped, Some(&cert)).await, invalid(InvalidToken::Signature));

    // The ES256 key must not verify a token that says PS256 (algorithm confusion).
    let ps = key.sign(json!({ "alg": "PS256" }), &serde_json::Value::Object(valid_claims(&cert)));
    assert_eq!(check(&v, &ps, Some(&cert)).await, invalid(InvalidToken::UnknownKey(Some("k1".into()))));
}

#[tokio::test]
async fn forbidden_algorithms_are_rejected() {
    let cert = client_cert("c1");
    let es = TestKey::es256("es");
    let rs = TestKey::rs256("rs");
    let v = static_validator(&[&es, &rs]);

    // alg none, with and without a signature part.
    let claims = serde_json::Value::Object(valid_claims(&cert));
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    for alg in ["none", "None", "NONE"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"es"}}"#));
        for token in [format!("{header}.{body}."), format!("{header}.{body}.c2ln")] {
            assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::Algorithm(alg.into())));
        }
    }
    // RS256, correctly signed by a key the issuer publishes.
    assert_eq!(
        check(&v, &rs.token(&cert, json!({})), Some(&cert)).await,
        invalid(InvalidToken::Algorithm("RS256".into()))
    );
    // HS256 (e.g. keyed with a public key's bytes in the classic confusion attack).
    let hs = TestKey::hs256("es");
    assert_eq!(
        check(&v, &hs.token(&cert, json!({})), Some(&cert)).await,
        invalid(InvalidToken::Algorithm("HS256".into()))
    );
    // No alg at all.
    let no_alg = es.sign(json!({ "alg": null }), &claims);
    assert_eq!(check(&v, &no_alg, Some(&cert)).await, invalid(InvalidToken::Algorithm(String::new())));

    // An allowed algorithm the configuration narrowed away.
    let ps = TestKey::ps256("ps");
    let mut config = config();
    config.algorithms = vec![Algorithm::ES256];
    let narrow = Validator::with_jwks(config, JwksCache::from_static(&jwks(&[&es, &ps])).unwrap());
    assert_eq!(
        check(&narrow, &ps.token(&cert, json!({})), Some(&cert)).await,
        invalid(InvalidToken::Algorithm("PS256".into()))
    );
    assert_eq!(check(&narrow, &es.token(&cert, json!({})), Some(&cert)).await, Ok(()));
}

#[tokio::test]
async fn wrong_typ_is_rejected() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    let claims = serde_json::Value::Object(valid_claims(&cert));
    for typ in ["JWT", "jwt", "application/jwt", "dpop+jwt", "at+jwt+x"] {
        let token = key.sign(json!({ "typ": typ }), &claims);
        assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::Type(Some(typ.into()))), "{typ}");
    }
    let token = key.sign(json!({ "typ": null }), &claims);
    assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::Type(None)));
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_rejected() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    for iss in ["https://evil.example", "https://as.example.test/", "HTTPS://AS.EXAMPLE.TEST"] {
        let token = key.token(&cert, json!({ "iss": iss }));
        assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::Issuer), "{iss}");
    }
    let token = key.token(&cert, json!({ "iss": null }));
    assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::MissingClaim("iss")));

    for aud in [json!("https://other.example"), json!([]), json!(["https://other.example"]), json!(ISSUER)] {
        let token = key.token(&cert, json!({ "aud": aud }));
        assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::Audience), "{aud}");
    }
    let token = key.token(&cert, json!({ "aud": null }));
    assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::MissingClaim("aud")));
}

#[tokio::test]
async fn time_claims_respect_the_skew() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    let t = now();
    let at = |claims: serde_json::Value| key.token(&cert, claims);
    let validate_at = |token: String| {
        let v = &v;
        let cert = cert.clone();
        async move { v.validate(&token, Some(&cert), t).await.map(|_| ()) }
    };

    // exp: valid while exp > now - 60.
    assert_eq!(validate_at(at(json!({ "exp": t - 30, "iat": t - 300, "nbf": t - 300 }))).await, Ok(()));
    assert_eq!(
        validate_at(at(json!({ "exp": t - 60, "iat": t - 300, "nbf": t - 300 }))).await,
        invalid(InvalidToken::Expired)
    );
    assert_eq!(
        validate_at(at(json!({ "exp": t - 3600, "iat": t - 4000, "nbf": t - 4000 }))).await,
        invalid(InvalidToken::Expired)
    );
    // nbf / iat: +10 s passes, more than +60 s fails (spec-checklist R.9).
    assert_eq!(validate_at(at(json!({ "nbf": t + 10, "iat": t + 10 }))).await, Ok(()));
    assert_eq!(validate_at(at(json!({ "nbf": t + 60, "iat": t + 60 }))).await, Ok(()));
    assert_eq!(validate_at(at(json!({ "nbf": t + 61, "iat": t }))).await, invalid(InvalidToken::NotYetValid));
    assert_eq!(validate_at(at(json!({ "nbf": null, "iat": t + 61 }))).await, invalid(InvalidToken::IssuedInFuture));
    // nbf is optional; exp and iat are not (RFC 9068 §2.2).
    assert_eq!(validate_at(at(json!({ "nbf": null }))).await, Ok(()));
    assert_eq!(validate_at(at(json!({ "exp": null }))).await, invalid(InvalidToken::MissingClaim("exp")));
    assert_eq!(validate_at(at(json!({ "iat": null }))).await, invalid(InvalidToken::MissingClaim("iat")));
    assert_eq!(validate_at(at(json!({ "exp": "soon" }))).await, invalid(InvalidToken::MissingClaim("exp")));

    // A stricter configured skew.
    let mut config = config();
    config.max_skew_secs = 5;
    let strict = Validator::with_jwks(config, JwksCache::from_static(&jwks(&[&key])).unwrap());
    let token = at(json!({ "nbf": t + 10 }));
    assert_eq!(strict.validate(&token, Some(&cert), t).await.map(|_| ()), invalid(InvalidToken::NotYetValid));
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    for claim in ["sub", "client_id", "jti"] {
        let token = key.token(&cert, json!({ claim: null }));
        assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::MissingClaim(claim)), "{claim}");
        let token = key.token(&cert, json!({ claim: 42 }));
        assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::MissingClaim(claim)), "{claim}");
    }
    let token = key.token(&cert, json!({ "scope": ["accounts:read"] }));
    assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::MissingClaim("scope")));
}

#[tokio::test]
async fn certificate_binding_is_enforced() {
    let cert = client_cert("c1");
    let other = client_cert("c2");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    let token = key.token(&cert, json!({}));

    assert_eq!(check(&v, &token, Some(&cert)).await, Ok(()));
    assert_eq!(check(&v, &token, Some(&other)).await, invalid(InvalidToken::CertificateMismatch));
    assert_eq!(check(&v, &token, None).await, invalid(InvalidToken::NoCertificate));

    // Unbound tokens, and tokens bound some other way (DPoP), are refused even with a cert.
    for cnf in [json!(null), json!({}), json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }), json!("x")] {
        let token = key.token(&cert, json!({ "cnf": cnf }));
        assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::Unbound), "{cnf}");
    }
    // The thumbprint is compared exactly (no padding, no case folding).
    let padded = format!("{}=", tessera_core::thumbprint::x5t_s256(&cert));
    let token = key.token(&cert, json!({ "cnf": { "x5t#S256": padded } }));
    assert_eq!(check(&v, &token, Some(&cert)).await, invalid(InvalidToken::CertificateMismatch));
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    let good = key.token(&cert, json!({}));
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "".to_owned(),
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{good}.x"),
        format!("!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", URL_SAFE_NO_PAD.encode("[1]"), parts[1], parts[2]),
    ];
    for token in &cases {
        assert!(
            matches!(check(&v, token, Some(&cert)).await, Err(RsError::InvalidToken(InvalidToken::Malformed(_)))),
            "{token}"
        );
    }
    // A correctly signed payload that is not a JSON object.
    let not_object = key.sign(json!({}), &json!(["iss"]));
    assert!(matches!(
        check(&v, &not_object, Some(&cert)).await,
        Err(RsError::InvalidToken(InvalidToken::Malformed(_)))
    ));
    // Critical header extensions are not understood, so refused (RFC 7515 §4.1.11).
    let crit = key.sign(json!({ "crit": ["exp"], "exp": 1 }), &serde_json::Value::Object(valid_claims(&cert)));
    assert!(matches!(check(&v, &crit, Some(&cert)).await, Err(RsError::InvalidToken(InvalidToken::Malformed(_)))));
    let b64 = key.sign(json!({ "crit": ["b64"], "b64": false }), &serde_json::Value::Object(valid_claims(&cert)));
    assert!(matches!(check(&v, &b64, Some(&cert)).await, Err(RsError::InvalidToken(InvalidToken::Malformed(_)))));
}

#[tokio::test]
async fn unknown_kid_on_a_static_set_is_an_error() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let stranger = TestKey::es256("k2");
    let v = static_validator(&[&key]);
    assert_eq!(
        check(&v, &stranger.token(&cert, json!({})), Some(&cert)).await,
        invalid(InvalidToken::UnknownKey(Some("k2".into())))
    );
    assert_eq!(v.jwks().fetch_attempts(), 0);
    // A token without kid is tried against every key of its algorithm.
    let no_kid = key.sign(json!({ "kid": null }), &serde_json::Value::Object(valid_claims(&cert)));
    assert_eq!(check(&v, &no_kid, Some(&cert)).await, Ok(()));
}

#[tokio::test]
async fn every_validation_failure_is_401_invalid_token() {
    let cert = client_cert("c1");
    let key = TestKey::es256("k1");
    let v = static_validator(&[&key]);
    let failures = [
        key.token(&cert, json!({ "iss": "https://evil.example" })),
        key.token(&cert, json!({ "exp": now() - 3600 })),
        key.token(&client_cert("c2"), json!({})),
        "garbage".to_owned(),
    ];
    for token in failures {
        let err = v.validate(&token, Some(&cert), now()).await.unwrap_err();
        let parts = error_parts(&err);
        assert_eq!(parts.status, 401, "{err:?}");
        assert_eq!(parts.body["error"], "invalid_token");
        let header = parts.www_authenticate.unwrap();
        assert!(header.starts_with(r#"Bearer error="invalid_token", error_description=""#), "{header}");
    }
}

#[test]
fn x5t_matches_the_authorization_server() {
    // The AS computes cnf with tessera-core; both must agree byte for byte (RFC 8705 §3.1).
    for name in ["a", "b"] {
        let der = client_cert(name);
        let ours = tessera_resource_server::x5t_s256(&der);
        assert_eq!(ours, tessera_core::thumbprint::x5t_s256(&der));
        assert_eq!(ours.len(), 43);
        assert!(!ours.contains('='));
    }
}
