//! JWS verification against a JWKS, with the FAPI algorithm allow-list (RFC 8725).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{ES256, EdDSA, JwsVerifier, PS256};
use serde_json::{Map, Value};
use tessera_core::keys::SigningAlg;

#[derive(Debug)]
pub struct VerifiedJwt {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("algorithm {0:?} is not accepted (PS256, ES256 or EdDSA only)")]
    Algorithm(String),
    #[error("header typ is {found:?}, expected {expected:?}")]
    Type { expected: String, found: Option<String> },
    #[error("no key in the key set matches the token's kid/alg")]
    UnknownKey,
    #[error("signature verification failed")]
    Signature,
    #[error("the payload is not a JSON object")]
    Payload,
}

pub(crate) fn verifier_for(alg: SigningAlg, jwk: &Jwk) -> Option<Box<dyn JwsVerifier>> {
    Some(match alg {
        SigningAlg::ES256 => Box::new(ES256.verifier_from_jwk(jwk).ok()?),
        SigningAlg::PS256 => Box::new(PS256.verifier_from_jwk(jwk).ok()?),
        SigningAlg::EdDSA => Box::new(EdDSA.verifier_from_jwk(jwk).ok()?),
    })
}

/// `typ` comparison per RFC 8725 §3.11 / RFC 9068 §2.1: case-insensitive, with or without the
/// `application/` prefix.
fn typ_matches(found: &str, expected: &str) -> bool {
    let found = found.to_ascii_lowercase();
    let found = found.strip_prefix("application/").unwrap_or(&found);
    found == expected.to_ascii_lowercase()
}

/// Verifies `token` with the verifier `select` returns for the header's `kid` and `alg`.
pub(crate) fn verify_with<'a>(
    token: &str,
    expected_typ: Option<&str>,
    select: impl Fn(Option<&str>, SigningAlg) -> Option<&'a dyn JwsVerifier>,
) -> Result<VerifiedJwt, VerifyError> {
    let (header, alg) = parse_header(token, expected_typ)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let verifier = select(kid, alg).ok_or(VerifyError::UnknownKey)?;
    let (payload, _) = josekit::jws::deserialize_compact(token, verifier).map_err(|_| VerifyError::Signature)?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload).map_err(|_| VerifyError::Payload)?;
    Ok(VerifiedJwt { header, claims })
}

fn parse_header(token: &str, expected_typ: Option<&str>) -> Result<(Map<String, Value>, SigningAlg), VerifyError> {
    let header_b64 = token.split('.').next().ok_or(VerifyError::Malformed)?;
    if token.split('.').count() != 3 {
        return Err(VerifyError::Malformed);
    }
    let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| VerifyError::Malformed)?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes).map_err(|_| VerifyError::Malformed)?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = SigningAlg::parse(alg_name).map_err(|_| VerifyError::Algorithm(alg_name.to_owned()))?;
    if let Some(expected) = expected_typ {
        let found = header.get("typ").and_then(Value::as_str);
        if !found.is_some_and(|t| typ_matches(t, expected)) {
            return Err(VerifyError::Type { expected: expected.to_owned(), found: found.map(str::to_owned) });
        }
    }
    Ok((header, alg))
}

/// Verifies `token` with a key of `jwks`. The key is chosen by `kid` when the header has one,
/// otherwise every key whose type fits the algorithm is tried (FAPI2 5.4.3: clients may send
/// keys without `kid`).
pub fn verify_with_jwks(token: &str, jwks: &[Jwk], expected_typ: Option<&str>) -> Result<VerifiedJwt, VerifyError> {
    let (header, alg) = parse_header(token, expected_typ)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let kty = match alg {
        SigningAlg::ES256 => "EC",
        SigningAlg::PS256 => "RSA",
        SigningAlg::EdDSA => "OKP",
    };
    let candidates = jwks.iter().filter(|k| {
        k.key_type() == kty
            && kid.is_none_or(|kid| k.key_id() == Some(kid))
            && k.algorithm().is_none_or(|a| a == alg.as_str())
            && k.key_use().is_none_or(|u| u == "sig")
    });
    let mut tried = false;
    for jwk in candidates {
        let Some(verifier) = verifier_for(alg, jwk) else {
            continue;
        };
        tried = true;
        if let Ok((payload, _)) = josekit::jws::deserialize_compact(token, verifier.as_ref()) {
            let claims: Map<String, Value> = serde_json::from_slice(&payload).map_err(|_| VerifyError::Payload)?;
            return Ok(VerifiedJwt { header, claims });
        }
    }
    Err(if tried { VerifyError::Signature } else { VerifyError::UnknownKey })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_rules() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("AT+JWT", "at+jwt"));
        assert!(typ_matches("application/at+jwt", "at+jwt"));
        assert!(!typ_matches("JWT", "at+jwt"));
    }

    #[test]
    fn rejects_none_rs256_and_garbage() {
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(verify_with_jwks(&none, &[], None).unwrap_err(), VerifyError::Algorithm("none".into()));
        let rs = format!("{}.{}.c2ln", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(verify_with_jwks(&rs, &[], None).unwrap_err(), VerifyError::Algorithm("RS256".into()));
        assert_eq!(verify_with_jwks("garbage", &[], None).unwrap_err(), VerifyError::Malformed);
        assert_eq!(verify_with_jwks("a.b.c.d", &[], None).unwrap_err(), VerifyError::Malformed);
    }
}
