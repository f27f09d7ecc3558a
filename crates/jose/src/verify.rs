//! JWS verification against a JWKS, with the FAPI algorithm allow-list (RFC 8725).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{JwsVerifier, PS256};
use serde_json::{Map, Value};
use tessera_core::keys::SigningAlg;

use crate::native::NativeVerifier;

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
    #[error("the header has a crit member: no JWS extension is supported")]
    Critical,
}

/// A public key ready to verify: aws-lc-rs for ES256 and EdDSA (the hot path, see `native.rs`),
/// josekit for PS256.
pub(crate) enum Verifier {
    Native(NativeVerifier),
    Jose(Box<dyn JwsVerifier>),
}

impl Verifier {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Verifier::Native(v) => v.verify(message, signature),
            Verifier::Jose(v) => v.verify(message, signature).is_ok(),
        }
    }
}

/// `None` when `jwk` is not a usable key for `alg` (wrong type or curve, malformed members).
pub(crate) fn verifier_for(alg: SigningAlg, jwk: &Jwk) -> Option<Verifier> {
    match alg {
        SigningAlg::ES256 | SigningAlg::EdDSA => {
            NativeVerifier::from_jwk(alg, jwk).ok().flatten().map(Verifier::Native)
        }
        SigningAlg::PS256 => PS256.verifier_from_jwk(jwk).ok().map(|v| Verifier::Jose(Box::new(v))),
    }
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
    select: impl Fn(Option<&str>, SigningAlg) -> Option<&'a Verifier>,
) -> Result<VerifiedJwt, VerifyError> {
    let (header, alg) = parse_header(token, expected_typ)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let verifier = select(kid, alg).ok_or(VerifyError::UnknownKey)?;
    let claims = check_signature(token, verifier)?;
    Ok(VerifiedJwt { header, claims })
}

/// The JWS Compact Serialization check (RFC 7515 §5.2) for a header already parsed: the
/// signature over `BASE64URL(header) || '.' || BASE64URL(payload)`, then the payload as a JSON
/// object.
fn check_signature(token: &str, verifier: &Verifier) -> Result<Map<String, Value>, VerifyError> {
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed);
    };
    let signing_input = &token[..header.len() + 1 + payload.len()];
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| VerifyError::Malformed)?;
    if !verifier.verify(signing_input.as_bytes(), &signature) {
        return Err(VerifyError::Signature);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| VerifyError::Payload)?;
    serde_json::from_slice(&payload).map_err(|_| VerifyError::Payload)
}

fn parse_header(token: &str, expected_typ: Option<&str>) -> Result<(Map<String, Value>, SigningAlg), VerifyError> {
    let header_b64 = token.split('.').next().ok_or(VerifyError::Malformed)?;
    if token.split('.').count() != 3 {
        return Err(VerifyError::Malformed);
    }
    let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| VerifyError::Malformed)?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes).map_err(|_| VerifyError::Malformed)?;
    // RFC 7515 §4.1.11: a recipient must reject a JWS whose `crit` names an extension it does
    // not understand, and this verifier understands none (no RFC 7797 unencoded payloads).
    if header.contains_key("crit") {
        return Err(VerifyError::Critical);
    }
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

/// Whether `jwk` may verify a JWS with `alg` and header `kid`: the key type fits the algorithm,
/// the `kid` matches when the header has one, and the key's own `alg`/`use` do not forbid it.
fn fits(jwk: &Jwk, alg: SigningAlg, kid: Option<&str>) -> bool {
    let kty = match alg {
        SigningAlg::ES256 => "EC",
        SigningAlg::PS256 => "RSA",
        SigningAlg::EdDSA => "OKP",
    };
    jwk.key_type() == kty
        && kid.is_none_or(|kid| jwk.key_id() == Some(kid))
        && jwk.algorithm().is_none_or(|a| a == alg.as_str())
        && jwk.key_use().is_none_or(|u| u == "sig")
}

/// Tries each candidate in turn: the key is chosen by `kid` when the header has one, otherwise
/// every key whose type fits the algorithm is tried (FAPI2 5.4.3: clients may send keys without
/// `kid`).
fn verify_candidates<'a>(
    token: &str,
    header: Map<String, Value>,
    candidates: impl Iterator<Item = &'a Verifier>,
) -> Result<VerifiedJwt, VerifyError> {
    let mut tried = false;
    for verifier in candidates {
        tried = true;
        match check_signature(token, verifier) {
            Ok(claims) => return Ok(VerifiedJwt { header, claims }),
            Err(VerifyError::Signature) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(if tried { VerifyError::Signature } else { VerifyError::UnknownKey })
}

/// Verifies `token` with a key of `jwks`, building a verifier for each candidate key on the
/// way: for a key set used once. A key set used again and again (a directory's, a client's)
/// belongs in a [`PreparedJwks`].
pub fn verify_with_jwks(token: &str, jwks: &[Jwk], expected_typ: Option<&str>) -> Result<VerifiedJwt, VerifyError> {
    let (header, alg) = parse_header(token, expected_typ)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let verifiers: Vec<Verifier> =
        jwks.iter().filter(|k| fits(k, alg, kid)).filter_map(|k| verifier_for(alg, k)).collect();
    verify_candidates(token, header, verifiers.iter())
}

/// A JWKS with a ready verifier for each usable key and algorithm: building a verifier from a
/// JWK costs more than the verification itself (about 130 µs against 60 µs for ES256 through
/// josekit), so a key set that verifies many JWTs (a directory's software statements) is
/// prepared once, when it is loaded. Same selection rules and results as [`verify_with_jwks`].
pub struct PreparedJwks {
    keys: Vec<(Jwk, SigningAlg, Verifier)>,
}

impl PreparedJwks {
    /// Keys that fit none of the accepted algorithms are skipped, as `verify_with_jwks` skips them.
    pub fn new(jwks: &[Jwk]) -> PreparedJwks {
        let mut keys = Vec::new();
        for jwk in jwks {
            for alg in SigningAlg::ALL {
                if fits(jwk, alg, None)
                    && let Some(v) = verifier_for(alg, jwk)
                {
                    keys.push((jwk.clone(), alg, v));
                }
            }
        }
        PreparedJwks { keys }
    }

    pub fn verify(&self, token: &str, expected_typ: Option<&str>) -> Result<VerifiedJwt, VerifyError> {
        let (header, alg) = parse_header(token, expected_typ)?;
        let kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
        let candidates =
            self.keys.iter().filter(move |(jwk, a, _)| *a == alg && fits(jwk, alg, kid.as_deref())).map(|(_, _, v)| v);
        verify_candidates(token, header, candidates)
    }

    /// The number of (key, algorithm) pairs ready to verify.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
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

    fn signed(alg: SigningAlg, kid: &str, header_extra: Map<String, Value>) -> (crate::KeyMaterial, String) {
        let km = crate::generate(alg, tessera_core::KeyId::new(kid)).unwrap();
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from("s"));
        let token = crate::sign_with_jwk(alg, &km.private_jwk, "JWT", &claims).unwrap();
        if header_extra.is_empty() {
            return (km, token);
        }
        // Re-sign with extra header members, through josekit, as a foreign signer would.
        let mut header = josekit::jws::JwsHeader::new();
        header.set_algorithm(alg.as_str());
        header.set_key_id(kid);
        for (k, v) in header_extra {
            header.set_claim(&k, Some(v)).unwrap();
        }
        let signer = crate::keyset::signer_for(alg, &km.private_jwk).unwrap();
        let token = josekit::jws::serialize_compact(br#"{"sub":"s"}"#, &header, signer.as_ref()).unwrap();
        (km, token)
    }

    #[test]
    fn prepared_jwks_agrees_with_verify_with_jwks() {
        for alg in SigningAlg::ALL {
            let (km, token) = signed(alg, "k1", Map::new());
            let (other, _) = signed(alg, "k2", Map::new());
            let jwks = vec![other.public_jwk.clone(), km.public_jwk.clone()];
            let prepared = PreparedJwks::new(&jwks);
            assert_eq!(prepared.len(), 2, "{alg}: one verifier per key");
            assert_eq!(prepared.verify(&token, None).unwrap().claims["sub"], "s");
            assert_eq!(verify_with_jwks(&token, &jwks, None).unwrap().claims["sub"], "s");
            // Only the other key: its kid does not match.
            let only_other = PreparedJwks::new(std::slice::from_ref(&other.public_jwk));
            assert_eq!(only_other.verify(&token, None).unwrap_err(), VerifyError::UnknownKey);
            // Keys without kid: every key of the type is tried (FAPI2 5.4.3), the right one wins.
            let strip = |j: &Jwk| {
                let mut m = j.as_ref().clone();
                m.remove("kid");
                Jwk::from_map(m).unwrap()
            };
            let mut claims = Map::new();
            claims.insert("sub".into(), Value::from("s"));
            let no_kid_token = crate::sign_with_jwk(alg, &strip(&km.private_jwk), "JWT", &claims).unwrap();
            let no_kids = PreparedJwks::new(&[strip(&other.public_jwk), strip(&km.public_jwk)]);
            assert_eq!(no_kids.verify(&no_kid_token, None).unwrap().claims["sub"], "s");
            let wrong_only = PreparedJwks::new(&[strip(&other.public_jwk)]);
            assert_eq!(wrong_only.verify(&no_kid_token, None).unwrap_err(), VerifyError::Signature);
            assert_eq!(
                verify_with_jwks(&no_kid_token, &[strip(&other.public_jwk)], None).unwrap_err(),
                VerifyError::Signature
            );
            // A kid in the header must match: keys without one are not candidates for it.
            assert_eq!(no_kids.verify(&token, None).unwrap_err(), VerifyError::UnknownKey);
            // A bent signature.
            let mut bent = token.clone();
            let last = bent.pop().unwrap();
            bent.push(if last == 'A' { 'B' } else { 'A' });
            assert!(prepared.verify(&bent, None).is_err());
        }
    }

    #[test]
    fn crit_headers_are_refused() {
        // RFC 7515 4.1.11: no extension is understood, so any crit is refused, even with a good signature.
        let mut extra = Map::new();
        extra.insert("crit".into(), serde_json::json!(["b64"]));
        extra.insert("b64".into(), Value::Bool(false));
        let (km, token) = signed(SigningAlg::ES256, "k1", extra);
        assert_eq!(
            verify_with_jwks(&token, std::slice::from_ref(&km.public_jwk), None).unwrap_err(),
            VerifyError::Critical
        );
        assert_eq!(PreparedJwks::new(&[km.public_jwk]).verify(&token, None).unwrap_err(), VerifyError::Critical);
    }
}
