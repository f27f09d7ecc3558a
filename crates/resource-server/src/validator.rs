//! RFC 9068 §4 validation of a Tessera access token, plus the RFC 8705 §3 certificate binding.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{InvalidToken, RsError};
use crate::jwks::JwksCache;

/// The JWS algorithms a token may use. FAPI 2.0 §5.4.1 allows exactly these; `none`, `HS*` and
/// `RS256` (RFC 9068 §2.1 asks for RS256 support; FAPI forbids it, spec-checklist S.2) cannot even
/// be expressed, so no configuration can let them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    ES256,
    PS256,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::ES256, Algorithm::PS256, Algorithm::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::PS256 => "PS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Exact, case-sensitive match of a JWS `alg` value (RFC 7515 §4.1.1).
    pub fn parse(alg: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.as_str() == alg)
    }
}

/// What a resource server trusts.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    /// Tessera's issuer identifier; `iss` must equal it exactly (no normalisation).
    pub issuer: String,
    /// This resource server's identifier; `aud` must equal it (or, as an array, contain it).
    pub audience: String,
    /// Where the issuer publishes its keys (`<issuer>/jwks`, or `jwks_uri` of its metadata).
    pub jwks_uri: String,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`, in seconds (default 60, the FAPI
    /// bound: +10 s must pass and more than +60 s must fail, spec-checklist R.9).
    pub max_skew_secs: i64,
    /// Accepted algorithms (default all of [`Algorithm::ALL`]).
    pub algorithms: Vec<Algorithm>,
}

impl ValidatorConfig {
    /// A configuration with the default skew (60 s) and all three algorithms.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks_uri: impl Into<String>) -> Self {
        ValidatorConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: jwks_uri.into(),
            max_skew_secs: 60,
            algorithms: Algorithm::ALL.to_vec(),
        }
    }
}

/// A validated access token.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessToken {
    pub sub: String,
    pub client_id: String,
    /// The `scope` claim split on spaces (empty when absent).
    pub scope: Vec<String>,
    pub jti: String,
    pub exp: i64,
    /// Every claim of the token, including the ones above.
    pub claims: Map<String, Value>,
}

impl AccessToken {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.iter().any(|s| s == scope)
    }

    /// `Ok` when every space-separated scope of `required` was granted, else
    /// [`RsError::InsufficientScope`] naming `required` (RFC 6750 §3.1: 403).
    pub fn require_scope(&self, required: &str) -> Result<(), RsError> {
        if required.split(' ').filter(|s| !s.is_empty()).all(|s| self.has_scope(s)) {
            Ok(())
        } else {
            Err(RsError::InsufficientScope { required: required.to_owned() })
        }
    }

    /// The `cnf.x5t#S256` the token is bound to.
    pub fn x5t_s256(&self) -> Option<&str> {
        self.claims.get("cnf")?.get("x5t#S256")?.as_str()
    }
}

/// RFC 8705 §3.1 `x5t#S256`: base64url (no padding) of SHA-256 over the certificate's DER.
pub fn x5t_s256(cert_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(cert_der))
}

/// Validates access tokens locally: signature with the issuer's published keys, claims,
/// certificate binding. Share one per process (`web::Data<Validator>` or `Arc<Validator>`).
#[derive(Debug)]
pub struct Validator {
    config: ValidatorConfig,
    jwks: JwksCache,
}

impl Validator {
    /// Keys fetched from `config.jwks_uri` with `client`, which carries the trust store for the
    /// issuer's TLS certificate (see [`crate::jwks::HttpJwksFetcher`] for how to build it).
    pub fn new(config: ValidatorConfig, client: reqwest::Client) -> Self {
        let jwks = JwksCache::new(client, config.jwks_uri.clone());
        Validator { config, jwks }
    }

    /// With a key cache of your own ([`JwksCache::from_static`], an injected fetcher, options).
    /// `config.jwks_uri` is then informational.
    pub fn with_jwks(config: ValidatorConfig, jwks: JwksCache) -> Self {
        Validator { config, jwks }
    }

    pub fn config(&self) -> &ValidatorConfig {
        &self.config
    }

    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// RFC 9068 §4 and RFC 8705 §3 checks, in this order: three-part compact JWS; `alg` in the
    /// allow-list; no `crit`; `typ` is `at+jwt`; key by `kid` (one refresh for an unknown `kid`);
    /// signature; `iss`; `aud`; `exp`, `nbf`, `iat` against `now` (Unix seconds) with the
    /// configured skew; `sub`, `client_id`, `jti` present; `cnf.x5t#S256` present and equal to
    /// the thumbprint of `presented_cert_der` (the leaf certificate of the TLS connection).
    ///
    /// Revocation is not checked: Tessera's tokens are short-lived; a resource server that must
    /// see a revocation before expiry uses introspection instead (FAPI 2.0 §5.3.4, item 41).
    pub async fn validate(
        &self,
        token: &str,
        presented_cert_der: Option<&[u8]>,
        now: i64,
    ) -> Result<AccessToken, RsError> {
        let claims = self.verify_signature(token).await?;
        let token = self.check_claims(claims, now)?;
        check_binding(&token, presented_cert_der)?;
        Ok(token)
    }

    /// The verified claims of a token, or why not.
    async fn verify_signature(&self, token: &str) -> Result<Map<String, Value>, RsError> {
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(InvalidToken::Malformed("not a compact JWS (three parts)").into());
        };
        let header = decode_object(h64).ok_or(InvalidToken::Malformed("the header is not a base64url JSON object"))?;

        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or_default();
        let alg = Algorithm::parse(alg_name)
            .filter(|a| self.config.algorithms.contains(a))
            .ok_or_else(|| InvalidToken::Algorithm(alg_name.to_owned()))?;
        // RFC 7515 §4.1.11: a critical extension we do not understand must be rejected; we
        // understand none (and so never meet an unencoded `b64: false` payload).
        if header.contains_key("crit") || header.contains_key("b64") {
            return Err(InvalidToken::Malformed("critical header extensions are not supported").into());
        }
        let typ = header.get("typ").and_then(Value::as_str);
        if !typ.is_some_and(typ_is_at_jwt) {
            return Err(InvalidToken::Type(typ.map(str::to_owned)).into());
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(InvalidToken::Malformed("kid is not a string").into()),
        };

        let signature = URL_SAFE_NO_PAD
            .decode(s64)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or(InvalidToken::Malformed("the signature is not base64url"))?;
        let keys = self.jwks.keys_for(kid).await?;
        // The signed input is the first two parts exactly as sent (RFC 7515 §5.2 step 8).
        let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        let mut candidates = keys.candidates(kid, alg).peekable();
        if candidates.peek().is_none() {
            return Err(InvalidToken::UnknownKey(kid.map(str::to_owned)).into());
        }
        if !candidates.any(|v| v.verify(signing_input, &signature).is_ok()) {
            return Err(InvalidToken::Signature.into());
        }
        Ok(decode_object(p64).ok_or(InvalidToken::Malformed("the payload is not a base64url JSON object"))?)
    }

    fn check_claims(&self, claims: Map<String, Value>, now: i64) -> Result<AccessToken, InvalidToken> {
        let str_claim = |name: &'static str| -> Result<String, InvalidToken> {
            claims.get(name).and_then(Value::as_str).map(str::to_owned).ok_or(InvalidToken::MissingClaim(name))
        };
        let iss = str_claim("iss")?;
        if iss != self.config.issuer {
            return Err(InvalidToken::Issuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.config.audience,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(self.config.audience.as_str())),
            _ => return Err(InvalidToken::MissingClaim("aud")),
        };
        if !audience_ok {
            return Err(InvalidToken::Audience);
        }

        let skew = self.config.max_skew_secs.max(0);
        let exp = numeric_date(&claims, "exp")?.ok_or(InvalidToken::MissingClaim("exp"))?;
        if exp <= now.saturating_sub(skew) {
            return Err(InvalidToken::Expired);
        }
        if numeric_date(&claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
            return Err(InvalidToken::NotYetValid);
        }
        let iat = numeric_date(&claims, "iat")?.ok_or(InvalidToken::MissingClaim("iat"))?;
        if iat > now.saturating_add(skew) {
            return Err(InvalidToken::IssuedInFuture);
        }

        let sub = str_claim("sub")?;
        let client_id = str_claim("client_id")?;
        let jti = str_claim("jti")?;
        let scope = match claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(s)) => s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            Some(_) => return Err(InvalidToken::MissingClaim("scope")),
        };
        Ok(AccessToken { sub, client_id, scope, jti, exp, claims })
    }
}

/// RFC 8705 §3: the token must be bound (`cnf.x5t#S256`) and the request must come over a TLS
/// connection authenticated with that very certificate.
fn check_binding(token: &AccessToken, presented_cert_der: Option<&[u8]>) -> Result<(), InvalidToken> {
    let bound = token.x5t_s256().ok_or(InvalidToken::Unbound)?;
    let cert = presented_cert_der.ok_or(InvalidToken::NoCertificate)?;
    if x5t_s256(cert) != bound {
        return Err(InvalidToken::CertificateMismatch);
    }
    Ok(())
}

/// RFC 9068 §2.1 / RFC 8725 §3.11: `at+jwt`, case-insensitive, with or without `application/`.
fn typ_is_at_jwt(typ: &str) -> bool {
    let lower = typ.to_ascii_lowercase();
    lower.strip_prefix("application/").unwrap_or(&lower) == "at+jwt"
}

fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds (fractions allowed, truncated here).
/// `Ok(None)` when absent; a non-number is an invalid claim.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, InvalidToken> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(Some(i)),
            (None, Some(f)) if f.is_finite() => Ok(Some(f.floor() as i64)),
            _ => Err(InvalidToken::MissingClaim(name)),
        },
        Some(_) => Err(InvalidToken::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typ_rules() {
        for ok in ["at+jwt", "AT+JWT", "At+Jwt", "application/at+jwt", "Application/AT+JWT"] {
            assert!(typ_is_at_jwt(ok), "{ok}");
        }
        for bad in ["JWT", "jwt", "at+jwt ", "application/jwt", "", "xapplication/at+jwt"] {
            assert!(!typ_is_at_jwt(bad), "{bad}");
        }
    }

    #[test]
    fn algorithm_parse_is_exact() {
        assert_eq!(Algorithm::parse("ES256"), Some(Algorithm::ES256));
        assert_eq!(Algorithm::parse("EdDSA"), Some(Algorithm::EdDSA));
        for bad in ["none", "None", "es256", "RS256", "HS256", "ES384", ""] {
            assert_eq!(Algorithm::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn numeric_dates() {
        let c = json!({"a": 10, "b": 10.9, "c": "10", "d": true}).as_object().unwrap().clone();
        assert_eq!(numeric_date(&c, "a"), Ok(Some(10)));
        assert_eq!(numeric_date(&c, "b"), Ok(Some(10)));
        assert_eq!(numeric_date(&c, "c"), Err(InvalidToken::MissingClaim("c")));
        assert_eq!(numeric_date(&c, "d"), Err(InvalidToken::MissingClaim("d")));
        assert_eq!(numeric_date(&c, "e"), Ok(None));
    }

    #[test]
    fn scope_requirements() {
        let t = AccessToken {
            sub: "s".into(),
            client_id: "c".into(),
            scope: vec!["a".into(), "b".into()],
            jti: "j".into(),
            exp: 0,
            claims: Map::new(),
        };
        assert!(t.has_scope("a"));
        assert!(!t.has_scope("a b"));
        assert!(t.require_scope("a b").is_ok());
        assert_eq!(t.require_scope("a c"), Err(RsError::InsufficientScope { required: "a c".into() }));
    }

    #[test]
    fn binding_rules() {
        let mut t = AccessToken {
            sub: "s".into(),
            client_id: "c".into(),
            scope: vec![],
            jti: "j".into(),
            exp: 0,
            claims: Map::new(),
        };
        assert_eq!(check_binding(&t, Some(b"cert")), Err(InvalidToken::Unbound));
        t.claims.insert("cnf".into(), json!({"x5t#S256": x5t_s256(b"cert")}));
        assert_eq!(check_binding(&t, None), Err(InvalidToken::NoCertificate));
        assert_eq!(check_binding(&t, Some(b"other")), Err(InvalidToken::CertificateMismatch));
        assert_eq!(check_binding(&t, Some(b"cert")), Ok(()));
    }
}
