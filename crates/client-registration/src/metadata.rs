//! Client metadata (RFC 7591 §2, RFC 8705 §2.1.2): the software statement's values win over the
//! request's (§3.1.1), then every rule is checked, and the server fills in what it chooses.

use serde_json::{Map, Value, json};
use tessera_core::cert::{CertFacts, SubjectRule};
use tessera_core::error::RegistrationError;
use tessera_core::keys::SigningAlg;

use crate::settings::{RegistrationSettings, TransportBinding};
use crate::ssa::SoftwareStatement;

/// How the client will authenticate at the token endpoint.
#[derive(Clone, Debug, PartialEq)]
pub enum AuthMethod {
    TlsClientAuth(SubjectRule),
    SelfSignedTlsClientAuth,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            AuthMethod::TlsClientAuth(_) => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The metadata members this server understands. Others are ignored, as RFC 7591 §2 requires.
const STRING_MEMBERS: &[&str] = &[
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "application_type",
    "jwks_uri",
    "token_endpoint_auth_signing_alg",
    "id_token_signed_response_alg",
    "request_object_signing_alg",
    "introspection_signed_response_alg",
    "purpose",
];
const SUBJECT_FIELDS: [&str; 5] = SubjectRule::FIELDS;

pub struct Validated {
    /// The registered metadata, as stored and returned (no client_id, no credentials).
    pub metadata: Map<String, Value>,
    pub auth: AuthMethod,
    pub requested_scopes: Vec<String>,
    pub purpose: String,
}

fn bad(msg: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidClientMetadata(msg.into())
}

fn is_https_url(s: &str) -> bool {
    s.strip_prefix("https://").is_some_and(|rest| {
        !rest.is_empty() && !rest.starts_with('/') && !s.contains('#') && !s.chars().any(char::is_whitespace)
    })
}

fn string_list(v: &Value, member: &str) -> Result<Vec<String>, RegistrationError> {
    v.as_array()
        .ok_or_else(|| bad(format!("{member} must be an array of strings")))?
        .iter()
        .map(|x| x.as_str().map(str::to_owned).ok_or_else(|| bad(format!("{member} must be an array of strings"))))
        .collect()
}

pub fn build(
    request: &Map<String, Value>,
    ssa: &SoftwareStatement,
    transport: &CertFacts,
    settings: &RegistrationSettings,
) -> Result<Validated, RegistrationError> {
    let mut md = Map::new();
    for member in STRING_MEMBERS.iter().chain(SUBJECT_FIELDS.iter()) {
        if let Some(v) = request.get(*member) {
            if !v.is_string() {
                return Err(bad(format!("{member} must be a string")));
            }
            md.insert((*member).to_owned(), v.clone());
        }
    }
    for member in ["contacts", "grant_types", "response_types"] {
        if let Some(v) = request.get(member) {
            md.insert(member.to_owned(), json!(string_list(v, member)?));
        }
    }
    if let Some(jwks) = request.get("jwks") {
        md.insert("jwks".into(), jwks.clone());
    }

    // RFC 7591 §3.1.1: the statement's values take precedence.
    for member in ["client_name", "client_uri", "logo_uri", "tos_uri", "policy_uri", "software_version"] {
        if let Some(v) = ssa.metadata_value(member).filter(|v| v.is_string()) {
            md.insert(member.to_owned(), v.clone());
        }
    }
    md.insert("software_id".into(), json!(ssa.software_id));
    if let Some(uri) = ssa.metadata_value("jwks_uri").and_then(Value::as_str) {
        // The directory's key location replaces keys sent by value.
        md.remove("jwks");
        md.insert("jwks_uri".into(), json!(uri));
    }

    let redirect_uris = redirect_uris(request, ssa)?;
    if !redirect_uris.is_empty() {
        md.insert("redirect_uris".into(), json!(redirect_uris));
    }

    let auth = auth_method(request, &mut md, transport)?;
    check_keys(&md, &auth)?;
    for member in [
        "token_endpoint_auth_signing_alg",
        "id_token_signed_response_alg",
        "request_object_signing_alg",
        "introspection_signed_response_alg",
    ] {
        if let Some(alg) = md.get(member).and_then(Value::as_str) {
            SigningAlg::parse(alg)
                .map_err(|_| bad(format!("{member} {alg:?} is not allowed: use PS256, ES256 or EdDSA")))?;
        }
    }

    // This server issues client-credentials tokens; the code flow arrives with the consent surface.
    let grant_types = match md.get("grant_types") {
        Some(v) => string_list(v, "grant_types")?,
        None => vec!["client_credentials".to_owned()],
    };
    if grant_types.is_empty() {
        return Err(bad("grant_types must not be empty"));
    }
    if let Some(g) = grant_types.iter().find(|g| *g != "client_credentials") {
        return Err(bad(format!(
            "grant type {g:?} is not supported here; register grant_types [\"client_credentials\"]"
        )));
    }
    md.insert("grant_types".into(), json!(grant_types));
    let response_types = match md.get("response_types") {
        Some(v) => string_list(v, "response_types")?,
        None => vec![],
    };
    if let Some(r) = response_types.first() {
        return Err(bad(format!(
            "response type {r:?} needs the authorization_code grant, which this server does not offer: omit response_types"
        )));
    }
    md.insert("response_types".into(), json!(response_types));
    // RFC 8705 §3.4: every token is certificate-bound here.
    md.insert("tls_client_certificate_bound_access_tokens".into(), json!(true));
    if md.get("application_type").is_none() {
        md.insert("application_type".into(), json!("web"));
    }

    let requested_scopes = scopes(request, ssa, settings)?;
    let purpose = md
        .get("purpose")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| ssa.description().map(str::to_owned))
        .or_else(|| md.get("client_name").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| ssa.software_id.clone());
    md.insert("purpose".into(), json!(purpose));
    Ok(Validated { metadata: md, auth, requested_scopes, purpose })
}

fn redirect_uris(request: &Map<String, Value>, ssa: &SoftwareStatement) -> Result<Vec<String>, RegistrationError> {
    let allowed = match ssa.metadata_value("redirect_uris") {
        Some(v) => Some(string_list(v, "software_redirect_uris").map_err(|_| {
            RegistrationError::InvalidSoftwareStatement("software_redirect_uris must be an array of strings".into())
        })?),
        None => None,
    };
    let requested = match request.get("redirect_uris") {
        Some(v) => string_list(v, "redirect_uris")
            .map_err(|_| RegistrationError::InvalidRedirectUri("redirect_uris must be an array of strings".into()))?,
        None => allowed.clone().unwrap_or_default(),
    };
    for uri in &requested {
        if !is_https_url(uri) {
            return Err(RegistrationError::InvalidRedirectUri(format!(
                "redirect URI {uri:?} must be an absolute https URL without a fragment"
            )));
        }
        if let Some(allowed) = &allowed
            && !allowed.contains(uri)
        {
            return Err(RegistrationError::InvalidRedirectUri(format!(
                "redirect URI {uri:?} is not among the software statement's software_redirect_uris"
            )));
        }
    }
    Ok(requested)
}

fn auth_method(
    request: &Map<String, Value>,
    md: &mut Map<String, Value>,
    transport: &CertFacts,
) -> Result<AuthMethod, RegistrationError> {
    let method = match request.get("token_endpoint_auth_method") {
        None => "tls_client_auth",
        Some(v) => v.as_str().ok_or_else(|| bad("token_endpoint_auth_method must be a string"))?,
    };
    let subject_fields: Vec<&str> = SUBJECT_FIELDS.iter().copied().filter(|f| md.contains_key(*f)).collect();
    let auth = match method {
        "tls_client_auth" => {
            let rule = match subject_fields.as_slice() {
                // The server chooses: the subject of the certificate used to register.
                [] => {
                    let dn = transport.subject.to_string();
                    md.insert("tls_client_auth_subject_dn".into(), json!(dn));
                    SubjectRule::from_metadata("tls_client_auth_subject_dn", &dn).map_err(|e| bad(e.to_string()))?
                }
                [field] => {
                    let value = md.get(*field).and_then(Value::as_str).unwrap_or_default();
                    SubjectRule::from_metadata(field, value).map_err(|e| bad(format!("{field}: {e}")))?
                }
                _ => {
                    // RFC 8705 §2.1.2, checklist C.58: exactly one.
                    return Err(bad(format!(
                        "tls_client_auth takes exactly one of {}; got {}",
                        SUBJECT_FIELDS.join(", "),
                        subject_fields.join(", ")
                    )));
                }
            };
            AuthMethod::TlsClientAuth(rule)
        }
        "self_signed_tls_client_auth" | "private_key_jwt" => {
            if let Some(f) = subject_fields.first() {
                return Err(bad(format!("{f} is only used with tls_client_auth")));
            }
            if method == "private_key_jwt" { AuthMethod::PrivateKeyJwt } else { AuthMethod::SelfSignedTlsClientAuth }
        }
        "none" | "client_secret_basic" | "client_secret_post" | "client_secret_jwt" => {
            // FAPI2 5.3.2.1-3/-6, checklist A.2-10/-13.
            return Err(bad(format!(
                "token_endpoint_auth_method {method:?} is not allowed: this server issues no client secrets; use tls_client_auth, self_signed_tls_client_auth or private_key_jwt"
            )));
        }
        other => return Err(bad(format!("unknown token_endpoint_auth_method {other:?}"))),
    };
    md.insert("token_endpoint_auth_method".into(), json!(auth.as_str()));
    Ok(auth)
}

fn check_keys(md: &Map<String, Value>, auth: &AuthMethod) -> Result<(), RegistrationError> {
    let jwks = md.get("jwks");
    let jwks_uri = md.get("jwks_uri").and_then(Value::as_str);
    if jwks.is_some() && jwks_uri.is_some() {
        // RFC 7591 §2
        return Err(bad("jwks and jwks_uri must not both be present"));
    }
    if let Some(uri) = jwks_uri
        && !is_https_url(uri)
    {
        return Err(bad(format!("jwks_uri {uri:?} must be an https URL (FAPI2 5.4.2)")));
    }
    if let Some(jwks) = jwks {
        let keys = jwks
            .get("keys")
            .and_then(Value::as_array)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("jwks must be an object with a non-empty keys array"))?;
        for key in keys {
            check_public_jwk(key)?;
        }
        if *auth == AuthMethod::SelfSignedTlsClientAuth && !keys.iter().any(|k| k.get("x5c").is_some()) {
            return Err(bad(
                "self_signed_tls_client_auth needs the client certificate in jwks (a key with x5c) or a jwks_uri",
            ));
        }
    }
    let needs_keys = matches!(auth, AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth);
    if needs_keys && jwks.is_none() && jwks_uri.is_none() {
        return Err(bad(format!("{} needs jwks or jwks_uri", auth.as_str())));
    }
    Ok(())
}

fn check_public_jwk(key: &Value) -> Result<(), RegistrationError> {
    let kty = key.get("kty").and_then(Value::as_str).ok_or_else(|| bad("every key in jwks needs a kty"))?;
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        if key.get(private).is_some() {
            return Err(bad(format!("jwks must hold public keys only; a key carries the private member {private:?}")));
        }
    }
    match kty {
        "RSA" => {
            // FAPI2 5.4.1-2: RSA keys of at least 2048 bits.
            let n = key.get("n").and_then(Value::as_str).unwrap_or("");
            if n.len() < 342 {
                return Err(bad("RSA keys in jwks must be at least 2048 bits (FAPI 2.0 §5.4.1)"));
            }
        }
        "EC" => {
            let crv = key.get("crv").and_then(Value::as_str).unwrap_or("");
            if !matches!(crv, "P-256" | "P-384" | "P-521") {
                return Err(bad(format!("EC key curve {crv:?} is not accepted (P-256, P-384, P-521)")));
            }
        }
        "OKP" => {
            if key.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                return Err(bad("OKP keys must use the Ed25519 curve"));
            }
        }
        other => return Err(bad(format!("key type {other:?} is not accepted in jwks"))),
    }
    if let Some(x5c) = key.get("x5c") {
        let first = x5c
            .as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .ok_or_else(|| bad("x5c must be a non-empty array"))?;
        use base64::Engine;
        let der = base64::engine::general_purpose::STANDARD
            .decode(first)
            .map_err(|_| bad("x5c entries must be base64 DER certificates"))?;
        CertFacts::from_der(&der).map_err(|e| bad(format!("x5c certificate: {e}")))?;
    }
    Ok(())
}

fn scopes(
    request: &Map<String, Value>,
    ssa: &SoftwareStatement,
    settings: &RegistrationSettings,
) -> Result<Vec<String>, RegistrationError> {
    let mut requested: Vec<String> = Vec::new();
    if let Some(v) = request.get("scope") {
        let s = v.as_str().ok_or_else(|| bad("scope must be a space-separated string"))?;
        for scope in s.split(' ').filter(|s| !s.is_empty()) {
            if !scope.chars().all(|c| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c)) {
                return Err(bad(format!("scope {scope:?} contains characters RFC 6749 §3.3 does not allow")));
            }
            if !requested.iter().any(|r| r == scope) {
                requested.push(scope.to_owned());
            }
        }
    }
    if settings.role_scopes.is_empty() {
        return Ok(requested);
    }
    let mut allowed: Vec<String> = Vec::new();
    for role in &ssa.roles {
        for s in settings.role_scopes.get(role).into_iter().flatten() {
            if !allowed.contains(s) {
                allowed.push(s.clone());
            }
        }
    }
    if requested.is_empty() {
        // Brazil DCR: no scope means every scope the roles allow.
        return Ok(allowed);
    }
    if let Some(s) = requested.iter().find(|s| !allowed.contains(s)) {
        return Err(bad(format!("scope {s:?} is not allowed for the software's roles {:?}", ssa.roles)));
    }
    Ok(requested)
}

/// Whether the transport certificate belongs to the software the statement names.
pub fn check_binding(
    binding: TransportBinding,
    cert: &CertFacts,
    org_id: &str,
    software_id: &str,
) -> Result<(), String> {
    const OU: &str = "2.5.4.11";
    const CN: &str = "2.5.4.3";
    const ORG_IDENTIFIER: &str = "2.5.4.97";
    if binding == TransportBinding::None {
        return Ok(());
    }
    let texts = |oid: &'static str| cert.subject.values(oid).filter_map(|v| v.as_text()).collect::<Vec<_>>();
    let org_ok = texts(OU).contains(&org_id)
        || texts(ORG_IDENTIFIER).iter().any(|v| *v == org_id || v.ends_with(&format!("-{org_id}")));
    if !org_ok {
        return Err(format!(
            "the transport certificate ({}) does not belong to organisation {org_id:?} (expected it in OU or organizationIdentifier)",
            cert.subject
        ));
    }
    if binding == TransportBinding::OrganisationAndSoftware && !texts(CN).contains(&software_id) {
        return Err(format!("the transport certificate's CN is not the software_id {software_id:?}"));
    }
    Ok(())
}
