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
    client.status == ClientStatus::Active && client.tokens_not_before.is_none_or(|nb| token.iat >= nb.0)
}
