//! Software statements (RFC 7591 §2.3): a JWT signed by a directory the bank trusts, vouching
//! for a piece of software and its organisation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use tessera_core::UnixTime;
use tessera_core::error::RegistrationError;
use tessera_core::keys::SigningAlg;
use tessera_jose::VerifyError;

use crate::settings::{Directory, RegistrationSettings};

/// How far in the future an `iat` may be (FAPI2 5.3.2.1-13: reject more than 60 s).
pub const MAX_FUTURE_SKEW_SECS: i64 = 60;

/// A verified software statement.
#[derive(Clone, Debug)]
pub struct SoftwareStatement {
    /// The compact JWT, returned unchanged in registration responses.
    pub raw: String,
    pub claims: Map<String, Value>,
    pub issuer: String,
    pub jti: String,
    pub software_id: String,
    pub org_id: String,
    pub org_name: String,
    pub org_status: String,
    pub roles: Vec<String>,
    pub software_mode: String,
}

fn invalid(msg: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidSoftwareStatement(msg.into())
}

fn str_claim(claims: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| claims.get(*n).and_then(Value::as_str)).map(str::to_owned)
}

/// Reads `iss` *before* the signature is checked, only to choose the directory whose keys will
/// check it. Nothing else may be read from an unverified statement.
fn unverified_issuer(raw: &str) -> Result<(String, String), RegistrationError> {
    let mut parts = raw.split('.');
    let (Some(h), Some(p), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(invalid("the software_statement is not a signed JWT (three base64url parts)"));
    };
    let header: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the software_statement header is not base64url JSON"))?;
    let payload: Map<String, Value> = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("the software_statement payload is not base64url JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("").to_owned();
    let iss = payload
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the software_statement has no iss claim"))?
        .to_owned();
    Ok((iss, alg))
}

/// Verifies `raw` against the trusted directories at `now`.
pub async fn verify(
    raw: &str,
    settings: &RegistrationSettings,
    now: UnixTime,
) -> Result<SoftwareStatement, RegistrationError> {
    let (iss, alg) = unverified_issuer(raw)?;
    let directory = settings.directory(&iss).ok_or_else(|| {
        RegistrationError::UnapprovedSoftwareStatement(format!(
            "the software_statement was issued by {iss:?}, which is not a directory this server trusts"
        ))
    })?;
    let alg = SigningAlg::parse(&alg).ok().filter(|a| directory.algorithms.contains(a)).ok_or_else(|| {
        invalid(format!("software_statement algorithm {alg:?} is not accepted for directory {iss:?}"))
    })?;
    let claims = verify_signature(raw, directory).await?;
    check_claims(raw, claims, directory, alg, now)
}

async fn verify_signature(raw: &str, directory: &Directory) -> Result<Map<String, Value>, RegistrationError> {
    let keys = directory.keys.prepared(false).await.map_err(|e| RegistrationError::Unavailable {
        internal: format!("directory {} keys: {e}", directory.issuer),
    })?;
    let result = match keys.verify(raw, None) {
        // A key we do not know yet: the directory may have rotated. Ask once for fresh keys.
        Err(VerifyError::UnknownKey) => {
            let keys = directory.keys.prepared(true).await.map_err(|e| RegistrationError::Unavailable {
                internal: format!("directory {} keys: {e}", directory.issuer),
            })?;
            keys.verify(raw, None)
        }
        other => other,
    };
    match result {
        Ok(v) => Ok(v.claims),
        Err(VerifyError::UnknownKey) => Err(invalid(format!(
            "the software_statement is signed with a key directory {:?} does not publish",
            directory.issuer
        ))),
        Err(VerifyError::Signature) => Err(invalid(format!(
            "the software_statement signature does not verify with directory {:?}'s keys",
            directory.issuer
        ))),
        Err(e) => Err(invalid(format!("the software_statement is not acceptable: {e}"))),
    }
}

fn check_claims(
    raw: &str,
    claims: Map<String, Value>,
    directory: &Directory,
    _alg: SigningAlg,
    now: UnixTime,
) -> Result<SoftwareStatement, RegistrationError> {
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("the software_statement has no numeric iat claim"))?;
    if iat > now.0 + MAX_FUTURE_SKEW_SECS {
        return Err(invalid(format!(
            "the software_statement was issued {} s in the future; check the directory's clock",
            iat - now.0
        )));
    }
    if now.0 - iat > directory.max_ssa_age_secs {
        return Err(invalid(format!(
            "the software_statement was issued {} s ago; this server accepts statements at most {} s old: fetch a fresh one",
            now.0 - iat,
            directory.max_ssa_age_secs
        )));
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_i64().ok_or_else(|| invalid("the software_statement exp claim is not a number"))?;
        if exp <= now.0 {
            return Err(invalid("the software_statement has expired (exp)"));
        }
    }
    let jti = str_claim(&claims, &["jti"]).ok_or_else(|| invalid("the software_statement has no jti claim"))?;
    let software_id = str_claim(&claims, &["software_id"])
        .ok_or_else(|| invalid("the software_statement has no software_id claim"))?;
    let org_id =
        str_claim(&claims, &["org_id"]).ok_or_else(|| invalid("the software_statement has no org_id claim"))?;
    let org_name = str_claim(&claims, &["org_name"]).unwrap_or_else(|| org_id.clone());
    let org_status = str_claim(&claims, &["org_status"]).unwrap_or_else(|| "Active".to_owned());
    if !org_status.eq_ignore_ascii_case("active") {
        return Err(RegistrationError::UnapprovedSoftwareStatement(format!(
            "the organisation {org_id:?} has directory status {org_status:?}; only Active organisations may register"
        )));
    }
    // The onboarding policy compares org_status exactly with "Active": a status accepted above
    // in another case must reach it in that spelling, or its `revoked-org` rule denies everything.
    let org_status = "Active".to_owned();
    let roles = claims
        .get("software_roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let software_mode = str_claim(&claims, &["software_mode"]).unwrap_or_else(|| "Live".to_owned());
    Ok(SoftwareStatement {
        raw: raw.to_owned(),
        issuer: directory.issuer.clone(),
        jti,
        software_id,
        org_id,
        org_name,
        org_status,
        roles,
        software_mode,
        claims,
    })
}

impl SoftwareStatement {
    /// The statement's value for a metadata member, under its RFC 7591 name or the UK Open
    /// Banking `software_*` name.
    pub fn metadata_value(&self, member: &str) -> Option<&Value> {
        let alias = match member {
            "client_name" => "software_client_name",
            "client_uri" => "software_client_uri",
            "logo_uri" => "software_logo_uri",
            "tos_uri" => "software_tos_uri",
            "policy_uri" => "software_policy_uri",
            "jwks_uri" => "software_jwks_endpoint",
            "redirect_uris" => "software_redirect_uris",
            "software_version" => "software_version",
            "software_id" => "software_id",
            _ => return self.claims.get(member),
        };
        self.claims.get(alias).or_else(|| self.claims.get(member))
    }

    pub fn description(&self) -> Option<&str> {
        self.claims
            .get("software_client_description")
            .or_else(|| self.claims.get("software_description"))
            .and_then(Value::as_str)
    }
}
