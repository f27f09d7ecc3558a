//! Service-level tests of registration (RFC 7591) and client management (RFC 7592): a real
//! `Registrar` with the in-memory store, a fixed clock, a directory key made here, a test CA and
//! the shipped onboarding policy. No network, no actix.
//!
//! Each table row cites the checklist item it exercises (/work/shared/spec-checklist.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{Map, Value, json};
use tessera_core::audit::{AuditKind, AuditRecord};
use tessera_core::client::{ClientStatus, ScopeState};
use tessera_core::error::RegistrationError;
use tessera_core::keys::SigningAlg;
use tessera_core::{ClientId, FixedClock, Issuer, KeyId, OsRng};
use tessera_http::mtls::TrustAnchors;
use tessera_http::{OAuthError, PeerCertificates};
use tessera_jose::{Jwk, generate, sign_with_jwk};
use tessera_store::{AuditLog, ClientCache, ClientStore, MemoryStore, Revocations};

use crate::metadata::check_binding;
use crate::policy::OnboardingPolicy;
use crate::service::{Registrar, token_hash};
use crate::settings::{Directory, Profile, RegistrationSettings, StaticJwks, TransportBinding};

const POLICY: &str = include_str!("../../../deploy/onboarding.cedar");
const NOW: i64 = 1_900_000_000;
const ISSUER: &str = "https://as.bank.test";
const DIRECTORY: &str = "https://directory.test";
const ORG: &str = "org-0001";
const SOFTWARE: &str = "software-0001";
const REDIRECT: &str = "https://fintech.test/callback";
const MAX_AGE: i64 = 3600;

const AISP_SCOPES: [&str; 5] =
    ["accounts:read", "balances:read", "transactions:read", "beneficiaries:read", "products:read"];
const PISP_SCOPES: [&str; 4] = ["payments:write", "payments:read", "domestic-payments", "standing-orders:write"];

type Ca = CertifiedIssuer<'static, KeyPair>;

fn new_ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Test Transport CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A client (transport) certificate `CN=<cn>[,OU=<ou>],O=Example Fintech,C=GB` issued by `ca`.
fn transport_cert(ca: &Ca, cn: &str, ou: Option<&str>) -> PeerCertificates {
    let mut p = CertificateParams::new(vec!["client.fintech.test".to_string()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "GB");
    dn.push(DnType::OrganizationName, "Example Fintech");
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&KeyPair::generate().unwrap(), ca).unwrap();
    PeerCertificates::from_chain(vec![cert.der().clone()])
}

fn unique_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}", N.fetch_add(1, Ordering::SeqCst))
}

/// Wire code of a registration error (the `OAuthError` table), e.g. `invalid_software_statement`.
fn code(e: &RegistrationError) -> &'static str {
    OAuthError::code(e)
}

struct Fixture {
    registrar: Registrar,
    store: Arc<MemoryStore>,
    cache: Arc<ClientCache>,
    clock: FixedClock,
    /// The directory's signing key (ES256, kid `dir-1`).
    key: Jwk,
    ca: Ca,
    /// The caller's transport certificate: `CN=software-0001,OU=org-0001`.
    peer: PeerCertificates,
}

fn fixture() -> Fixture {
    fixture_with(|_| {})
}

fn fixture_with(tweak: impl FnOnce(&mut RegistrationSettings)) -> Fixture {
    let key = generate(SigningAlg::ES256, KeyId::new("dir-1")).unwrap();
    let ca = new_ca();
    let peer = transport_cert(&ca, SOFTWARE, Some(ORG));
    let list = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let mut settings = RegistrationSettings {
        issuer: Issuer::parse(ISSUER).unwrap(),
        profile: Profile::Rfc7591,
        directories: vec![Directory {
            issuer: DIRECTORY.into(),
            keys: Arc::new(StaticJwks::new(vec![key.public_jwk.clone()])),
            algorithms: vec![SigningAlg::ES256, SigningAlg::PS256],
            max_ssa_age_secs: MAX_AGE,
            allow_reuse: false,
        }],
        role_scopes: BTreeMap::from([
            ("AISP".to_owned(), list(&AISP_SCOPES)),
            ("PISP".to_owned(), list(&PISP_SCOPES)),
            ("CBPII".to_owned(), list(&["fundsconfirmations:read"])),
            ("GATEWAY".to_owned(), list(&["introspection"])),
        ]),
        transport_binding: TransportBinding::Organisation,
        tier_lifetimes: BTreeMap::from([("high".to_owned(), 90 * 86_400)]),
        default_lifetime_secs: 365 * 86_400,
        max_body_bytes: 64 * 1024,
        software_jwks: None,
    };
    tweak(&mut settings);
    let store = Arc::new(MemoryStore::new());
    let cache = Arc::new(ClientCache::new());
    let clock = FixedClock::new(NOW);
    let anchors = TrustAnchors::from_ders(&[ca.der().clone()]).unwrap();
    let registrar = Registrar::new(
        settings,
        Arc::new(OnboardingPolicy::from_source(POLICY).unwrap()),
        anchors,
        store.clone(),
        store.clone(),
        cache.clone(),
        Arc::new(clock.clone()),
        Arc::new(OsRng),
    );
    Fixture { registrar, store, cache, clock, key: key.private_jwk, ca, peer }
}

/// Claims of a good statement for `software-0001` of `org-0001`, issued now.
fn claims() -> Map<String, Value> {
    json!({
        "iss": DIRECTORY,
        "iat": NOW,
        "jti": unique_jti(),
        "software_id": SOFTWARE,
        "software_client_name": "Directory Name",
        "software_client_description": "Account aggregation",
        "software_roles": ["AISP", "PISP"],
        "software_redirect_uris": [REDIRECT],
        "software_mode": "Live",
        "org_id": ORG,
        "org_name": "Example Fintech",
        "org_status": "Active",
    })
    .as_object()
    .unwrap()
    .clone()
}

fn with(mut c: Map<String, Value>, changes: Value) -> Map<String, Value> {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.remove(k);
        } else {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn b64(v: &str) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

impl Fixture {
    fn sign(&self, claims: &Map<String, Value>) -> String {
        sign_with_jwk(SigningAlg::ES256, &self.key, "JWT", claims).unwrap()
    }

    fn ssa(&self) -> String {
        self.sign(&claims())
    }

    fn body(&self, ssa: &str, extra: Value) -> Vec<u8> {
        let mut body = json!({ "software_statement": ssa });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        serde_json::to_vec(&body).unwrap()
    }

    async fn register(&self, extra: Value) -> Result<Value, RegistrationError> {
        self.registrar.register(&self.body(&self.ssa(), extra), &self.peer).await
    }

    async fn clients(&self) -> usize {
        self.store.list_clients().await.unwrap().len()
    }

    async fn audit(&self) -> Vec<AuditRecord> {
        self.store.read(0, 1000).await.unwrap()
    }

    async fn audit_kinds(&self) -> Vec<AuditKind> {
        self.audit().await.iter().map(|r| r.event.kind).collect()
    }
}

fn token_of(v: &Value) -> String {
    v["registration_access_token"].as_str().unwrap().to_owned()
}

fn id_of(v: &Value) -> String {
    v["client_id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Software statements (RFC 7591 §2.3, §3.2.2; checklist D.70, D.72)
// ---------------------------------------------------------------------------------------------

struct SsaCase {
    name: &'static str,
    /// Builds the `software_statement` value from the fixture.
    ssa: fn(&Fixture) -> String,
    code: &'static str,
    /// A fragment of the error_description, so the client knows what to fix.
    says: &'static str,
}

#[tokio::test]
async fn software_statement_failures() {
    let table: Vec<SsaCase> = vec![
        // RFC 7591 §2.3: a software statement is a JWT (JWS compact). Checklist D.70.
        SsaCase {
            name: "not a JWT",
            ssa: |_| "not-a-jwt".into(),
            code: "invalid_software_statement",
            says: "three base64url parts",
        },
        SsaCase {
            name: "four parts",
            ssa: |_| "a.b.c.d".into(),
            code: "invalid_software_statement",
            says: "three base64url parts",
        },
        SsaCase {
            name: "header is not base64url",
            ssa: |_| "!!!.e30.c2ln".into(),
            code: "invalid_software_statement",
            says: "header is not base64url JSON",
        },
        SsaCase {
            name: "payload is not JSON",
            ssa: |_| format!("{}.{}.c2ln", b64(r#"{"alg":"ES256","kid":"dir-1"}"#), b64("not json")),
            code: "invalid_software_statement",
            says: "payload is not base64url JSON",
        },
        // RFC 7591 §2.3: the statement MUST contain an iss claim.
        SsaCase {
            name: "no iss",
            ssa: |f| f.sign(&with(claims(), json!({ "iss": null }))),
            code: "invalid_software_statement",
            says: "no iss claim",
        },
        // RFC 7591 §3.2.2, checklist D.72: a valid statement from an issuer not approved here.
        SsaCase {
            name: "untrusted issuer",
            ssa: |f| f.sign(&with(claims(), json!({ "iss": "https://rogue-directory.test" }))),
            code: "unapproved_software_statement",
            says: "not a directory this server trusts",
        },
        // FAPI2 5.4.1, checklist A.6: only the directory's configured algorithms.
        SsaCase {
            name: "EdDSA is not configured for this directory",
            ssa: |_| {
                let ed = generate(SigningAlg::EdDSA, KeyId::new("dir-1")).unwrap();
                sign_with_jwk(SigningAlg::EdDSA, &ed.private_jwk, "JWT", &claims()).unwrap()
            },
            code: "invalid_software_statement",
            says: "algorithm \"EdDSA\" is not accepted",
        },
        // RFC 8725 §3.1: never RS256 or none.
        SsaCase {
            name: "RS256",
            ssa: |_| {
                format!(
                    "{}.{}.c2ln",
                    b64(r#"{"alg":"RS256","kid":"dir-1"}"#),
                    b64(&Value::Object(claims()).to_string())
                )
            },
            code: "invalid_software_statement",
            says: "algorithm \"RS256\" is not accepted",
        },
        SsaCase {
            name: "alg none",
            ssa: |_| format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&Value::Object(claims()).to_string())),
            code: "invalid_software_statement",
            says: "algorithm \"none\" is not accepted",
        },
        // Checklist D.72: a bad signature is invalid_software_statement.
        SsaCase {
            name: "signed by another key with the directory's kid",
            ssa: |_| {
                let other = generate(SigningAlg::ES256, KeyId::new("dir-1")).unwrap();
                sign_with_jwk(SigningAlg::ES256, &other.private_jwk, "JWT", &claims()).unwrap()
            },
            code: "invalid_software_statement",
            says: "signature does not verify",
        },
        SsaCase {
            name: "payload changed after signing",
            ssa: |f| {
                let good = f.ssa();
                let parts: Vec<&str> = good.split('.').collect();
                let forged = with(claims(), json!({ "software_roles": ["AISP", "PISP", "GATEWAY"] }));
                format!("{}.{}.{}", parts[0], b64(&Value::Object(forged).to_string()), parts[2])
            },
            code: "invalid_software_statement",
            says: "signature does not verify",
        },
        SsaCase {
            name: "unknown kid",
            ssa: |_| {
                let other = generate(SigningAlg::ES256, KeyId::new("not-published")).unwrap();
                sign_with_jwk(SigningAlg::ES256, &other.private_jwk, "JWT", &claims()).unwrap()
            },
            code: "invalid_software_statement",
            says: "key directory \"https://directory.test\" does not publish",
        },
        // Directory max SSA age (dev: 3600 s).
        SsaCase {
            name: "iat older than the directory's maximum age",
            ssa: |f| f.sign(&with(claims(), json!({ "iat": NOW - MAX_AGE - 1 }))),
            code: "invalid_software_statement",
            says: "at most 3600 s old",
        },
        // FAPI2 5.3.2.1-13: no more than 60 s in the future.
        SsaCase {
            name: "iat 61 s in the future",
            ssa: |f| f.sign(&with(claims(), json!({ "iat": NOW + 61 }))),
            code: "invalid_software_statement",
            says: "in the future",
        },
        SsaCase {
            name: "no iat",
            ssa: |f| f.sign(&with(claims(), json!({ "iat": null }))),
            code: "invalid_software_statement",
            says: "no numeric iat",
        },
        SsaCase {
            name: "iat is a string",
            ssa: |f| f.sign(&with(claims(), json!({ "iat": NOW.to_string() }))),
            code: "invalid_software_statement",
            says: "no numeric iat",
        },
        // RFC 7591 §3.2.2: expiry makes a statement invalid.
        SsaCase {
            name: "exp in the past",
            ssa: |f| f.sign(&with(claims(), json!({ "exp": NOW - 1 }))),
            code: "invalid_software_statement",
            says: "has expired",
        },
        SsaCase {
            name: "exp now",
            ssa: |f| f.sign(&with(claims(), json!({ "exp": NOW }))),
            code: "invalid_software_statement",
            says: "has expired",
        },
        SsaCase {
            name: "no jti",
            ssa: |f| f.sign(&with(claims(), json!({ "jti": null }))),
            code: "invalid_software_statement",
            says: "no jti claim",
        },
        SsaCase {
            name: "no software_id",
            ssa: |f| f.sign(&with(claims(), json!({ "software_id": null }))),
            code: "invalid_software_statement",
            says: "no software_id claim",
        },
        SsaCase {
            name: "no org_id",
            ssa: |f| f.sign(&with(claims(), json!({ "org_id": null }))),
            code: "invalid_software_statement",
            says: "no org_id claim",
        },
        // Checklist D.72 / O: a valid statement for an organisation the directory has revoked.
        SsaCase {
            name: "organisation revoked",
            ssa: |f| f.sign(&with(claims(), json!({ "org_status": "Revoked" }))),
            code: "unapproved_software_statement",
            says: "only Active organisations may register",
        },
        SsaCase {
            name: "software_redirect_uris is not a list",
            ssa: |f| f.sign(&with(claims(), json!({ "software_redirect_uris": REDIRECT }))),
            code: "invalid_software_statement",
            says: "software_redirect_uris must be an array",
        },
    ];
    for case in &table {
        let f = fixture();
        let ssa = (case.ssa)(&f);
        let err = f.registrar.register(&f.body(&ssa, json!({})), &f.peer).await.unwrap_err();
        assert_eq!(code(&err), case.code, "{}: {err}", case.name);
        assert!(err.to_string().contains(case.says), "{}: {err}", case.name);
        assert_eq!(f.clients().await, 0, "{}: nothing is stored", case.name);
        // A refused registration by an authenticated caller is audited, with nothing else.
        assert_eq!(f.audit_kinds().await, [AuditKind::RegistrationRefused], "{}", case.name);
    }
}

/// Statements at the edges of the time rules are accepted.
#[tokio::test]
async fn software_statement_time_edges_accepted() {
    let table = [
        ("iat 10 s in the future (clock skew)", json!({ "iat": NOW + 10 })),
        ("iat exactly 60 s in the future", json!({ "iat": NOW + 60 })),
        ("iat exactly the maximum age", json!({ "iat": NOW - MAX_AGE })),
        ("exp one second ahead", json!({ "exp": NOW + 1 })),
        ("org_status in lower case", json!({ "org_status": "active" })),
        ("no org_status claim (Active assumed)", json!({ "org_status": null })),
    ];
    for (name, change) in table {
        let f = fixture();
        let ssa = f.sign(&with(claims(), change));
        let r = f.registrar.register(&f.body(&ssa, json!({})), &f.peer).await;
        assert!(r.is_ok(), "{name}: {r:?}");
        assert_eq!(f.clients().await, 1, "{name}");
    }
}

/// RFC 7591 §3.2.2 / directory rule "no SSA reuse": the second registration with the same `jti`
/// is invalid_software_statement; the first client is untouched.
#[tokio::test]
async fn replayed_statement_is_refused_unless_the_directory_allows_reuse() {
    let f = fixture();
    let ssa = f.ssa();
    let first = f.registrar.register(&f.body(&ssa, json!({})), &f.peer).await.unwrap();
    let err = f.registrar.register(&f.body(&ssa, json!({})), &f.peer).await.unwrap_err();
    assert_eq!(code(&err), "invalid_software_statement", "{err}");
    assert!(err.to_string().contains("already used"), "{err}");
    let clients = f.store.list_clients().await.unwrap();
    assert_eq!(clients.len(), 1);
    assert_eq!(clients[0].client_id.as_str(), id_of(&first));
    assert!(clients[0].ssa_jti.is_some());
    assert_eq!(f.cache.len(), 1, "the refused client never reached the cache");

    let f = fixture_with(|s| s.directories[0].allow_reuse = true);
    let ssa = f.ssa();
    let a = f.registrar.register(&f.body(&ssa, json!({})), &f.peer).await.unwrap();
    let b = f.registrar.register(&f.body(&ssa, json!({})), &f.peer).await.unwrap();
    assert_ne!(id_of(&a), id_of(&b));
    let clients = f.store.list_clients().await.unwrap();
    assert_eq!(clients.len(), 2);
    assert!(clients.iter().all(|c| c.ssa_jti.is_none()), "no jti recorded when reuse is allowed");
}

#[tokio::test]
async fn transport_certificate_is_required_trusted_and_of_the_organisation() {
    // Checklist D.67 (mTLS + SSA), C.57 (chain to a configured anchor).
    let f = fixture();
    let body = f.body(&f.ssa(), json!({}));
    let stranger_ca = new_ca();
    let cases = [
        ("no certificate", PeerCertificates::default(), "no TLS client certificate"),
        ("untrusted CA", transport_cert(&stranger_ca, SOFTWARE, Some(ORG)), "does not trust"),
        ("another organisation", transport_cert(&f.ca, SOFTWARE, Some("org-9999")), "does not belong to organisation"),
        ("no OU at all", transport_cert(&f.ca, SOFTWARE, None), "does not belong to organisation"),
    ];
    for (name, peer, says) in cases {
        let err = f.registrar.register(&body, &peer).await.unwrap_err();
        assert!(matches!(err, RegistrationError::TransportCertificate(_)), "{name}: {err:?}");
        assert_eq!(code(&err), "invalid_client", "{name}");
        assert_eq!(err.status().code().as_u16(), 401, "{name}");
        assert!(err.to_string().contains(says), "{name}: {err}");
    }
    assert_eq!(f.clients().await, 0);
}

#[test]
fn transport_binding_rules() {
    let ca = new_ca();
    let facts = |cn: &str, ou: Option<&str>, org_identifier: Option<&str>| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Example Fintech");
        if let Some(ou) = ou {
            dn.push(DnType::OrganizationalUnitName, ou);
        }
        if let Some(id) = org_identifier {
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 97]), id);
        }
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        let cert = p.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
        tessera_core::cert::CertFacts::from_der(cert.der()).unwrap()
    };
    let (any, org, org_and_software) =
        (TransportBinding::None, TransportBinding::Organisation, TransportBinding::OrganisationAndSoftware);
    let table = [
        (any, facts("x", None, None), true),
        (org, facts("x", Some(ORG), None), true),
        (org, facts("x", Some("org-0002"), None), false),
        (org, facts("x", None, Some(ORG)), true),
        (org, facts("x", None, Some("PSDGB-FCA-org-0001")), true),
        (org, facts("x", None, Some("PSDGB-FCA-org-00011")), false),
        (org, facts("x", None, None), false),
        (org_and_software, facts(SOFTWARE, Some(ORG), None), true),
        (org_and_software, facts("other-software", Some(ORG), None), false),
    ];
    for (i, (binding, cert, ok)) in table.iter().enumerate() {
        assert_eq!(check_binding(*binding, cert, ORG, SOFTWARE).is_ok(), *ok, "row {i}: {binding:?} {}", cert.subject);
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata rules (RFC 7591 §2, RFC 8705 §2.1.2, FAPI2; checklist C.58, D.68, D.69, D.72)
// ---------------------------------------------------------------------------------------------

fn public_ec_jwk() -> Value {
    let k = generate(SigningAlg::ES256, KeyId::new("client-1")).unwrap();
    serde_json::to_value(k.public_jwk.as_ref()).unwrap()
}

fn private_ec_jwk() -> Value {
    let k = generate(SigningAlg::ES256, KeyId::new("client-1")).unwrap();
    serde_json::to_value(k.private_jwk.as_ref()).unwrap()
}

#[tokio::test]
async fn metadata_rules() {
    // 1024-bit modulus: 128 bytes -> 171 base64url characters.
    let rsa_1024 = json!({ "kty": "RSA", "e": "AQAB", "n": "q".repeat(171), "kid": "weak" });
    let table: Vec<(&str, Value, &str, &str)> = vec![
        // FAPI2 5.3.2.1 (A.2-10/-13), checklist D.68: no client secrets, no public clients.
        (
            "client_secret_basic",
            json!({ "token_endpoint_auth_method": "client_secret_basic" }),
            "invalid_client_metadata",
            "\"client_secret_basic\" is not allowed",
        ),
        (
            "client_secret_post",
            json!({ "token_endpoint_auth_method": "client_secret_post" }),
            "invalid_client_metadata",
            "is not allowed",
        ),
        ("none", json!({ "token_endpoint_auth_method": "none" }), "invalid_client_metadata", "\"none\" is not allowed"),
        ("unknown method", json!({ "token_endpoint_auth_method": "magic" }), "invalid_client_metadata", "unknown"),
        // RFC 8705 §2.1.2, checklist C.58: exactly one subject field.
        (
            "two tls_client_auth subject fields",
            json!({
                "tls_client_auth_subject_dn": "CN=software-0001,OU=org-0001,O=Example Fintech,C=GB",
                "tls_client_auth_san_dns": "client.fintech.test",
            }),
            "invalid_client_metadata",
            "exactly one of",
        ),
        (
            "subject field with private_key_jwt",
            json!({
                "token_endpoint_auth_method": "private_key_jwt",
                "tls_client_auth_san_dns": "client.fintech.test",
                "jwks": { "keys": [public_ec_jwk()] },
            }),
            "invalid_client_metadata",
            "only used with tls_client_auth",
        ),
        (
            "unparseable subject DN",
            json!({ "tls_client_auth_subject_dn": "this is not a DN" }),
            "invalid_client_metadata",
            "tls_client_auth_subject_dn",
        ),
        // RFC 7591 §2, checklist D.69: jwks and jwks_uri are exclusive.
        (
            "jwks and jwks_uri",
            json!({
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": { "keys": [public_ec_jwk()] },
                "jwks_uri": "https://fintech.test/jwks",
            }),
            "invalid_client_metadata",
            "must not both be present",
        ),
        (
            "private_key_jwt without keys",
            json!({ "token_endpoint_auth_method": "private_key_jwt" }),
            "invalid_client_metadata",
            "private_key_jwt needs jwks or jwks_uri",
        ),
        (
            "self_signed_tls_client_auth without keys",
            json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth" }),
            "invalid_client_metadata",
            "needs jwks or jwks_uri",
        ),
        (
            "jwks with a private key",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [private_ec_jwk()] } }),
            "invalid_client_metadata",
            "private member \"d\"",
        ),
        // FAPI2 5.4.1-2: RSA at least 2048 bits.
        (
            "jwks with a 1024-bit RSA key",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [rsa_1024] } }),
            "invalid_client_metadata",
            "at least 2048 bits",
        ),
        (
            "empty jwks",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [] } }),
            "invalid_client_metadata",
            "non-empty keys array",
        ),
        // FAPI2 5.4.2 / A.1: https only.
        (
            "http jwks_uri",
            json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://fintech.test/jwks" }),
            "invalid_client_metadata",
            "must be an https URL",
        ),
        // RFC 7591 §3.2.2, checklist D.72: redirect URIs.
        (
            "redirect URI not in software_redirect_uris",
            json!({ "redirect_uris": ["https://evil.test/callback"] }),
            "invalid_redirect_uri",
            "not among the software statement's software_redirect_uris",
        ),
        (
            "http redirect URI",
            json!({ "redirect_uris": ["http://fintech.test/callback"] }),
            "invalid_redirect_uri",
            "absolute https URL",
        ),
        (
            "redirect URI with a fragment",
            json!({ "redirect_uris": ["https://fintech.test/callback#x"] }),
            "invalid_redirect_uri",
            "without a fragment",
        ),
        ("redirect_uris not a list", json!({ "redirect_uris": REDIRECT }), "invalid_redirect_uri", "array of strings"),
        // RFC 7591 §2.1, checklist D.69: grant and response types this server does not offer.
        (
            "grant_types authorization_code",
            json!({ "grant_types": ["authorization_code"] }),
            "invalid_client_metadata",
            "\"authorization_code\" is not supported here",
        ),
        ("empty grant_types", json!({ "grant_types": [] }), "invalid_client_metadata", "must not be empty"),
        (
            "response_types code",
            json!({ "response_types": ["code"] }),
            "invalid_client_metadata",
            "needs the authorization_code grant",
        ),
        // Scopes outside the software's roles (AISP, PISP).
        (
            "scope outside the roles",
            json!({ "scope": "accounts:read fundsconfirmations:read" }),
            "invalid_client_metadata",
            "\"fundsconfirmations:read\" is not allowed for the software's roles",
        ),
        (
            "scope with a forbidden character",
            json!({ "scope": "accounts:read \"quoted\"" }),
            "invalid_client_metadata",
            "RFC 6749 §3.3",
        ),
        ("scope not a string", json!({ "scope": ["accounts:read"] }), "invalid_client_metadata", "space-separated"),
        ("client_name not a string", json!({ "client_name": 7 }), "invalid_client_metadata", "must be a string"),
        (
            "signing alg RS256",
            json!({ "token_endpoint_auth_signing_alg": "RS256" }),
            "invalid_client_metadata",
            "\"RS256\" is not allowed",
        ),
    ];
    for (name, extra, expected, says) in table {
        let f = fixture();
        let err = f.register(extra).await.unwrap_err();
        assert_eq!(code(&err), expected, "{name}: {err}");
        assert_eq!(err.status().code().as_u16(), 400, "{name}");
        assert!(err.to_string().contains(says), "{name}: {err}");
        // The description is for the client: it does not repeat another error code.
        let description = err.description();
        assert!(!description.starts_with("invalid_"), "{name}: {description}");
        assert_eq!(f.clients().await, 0, "{name}: nothing stored");
        assert_eq!(f.audit_kinds().await, [AuditKind::RegistrationRefused], "{name}");
    }
}

#[tokio::test]
async fn request_that_is_not_a_json_object_is_invalid_request() {
    let f = fixture();
    for body in [&b"not json"[..], b"[1,2]", b"\"text\""] {
        let err = f.registrar.register(body, &f.peer).await.unwrap_err();
        assert_eq!(code(&err), "invalid_request", "{err}");
    }
    let err = f.registrar.register(br#"{"scope":"accounts:read"}"#, &f.peer).await.unwrap_err();
    assert_eq!(code(&err), "invalid_software_statement", "a statement is required");
    let err = f.registrar.register(br#"{"software_statement":42}"#, &f.peer).await.unwrap_err();
    assert_eq!(code(&err), "invalid_software_statement");
    assert_eq!(f.clients().await, 0);
}

#[tokio::test]
async fn accepted_metadata_variants() {
    // private_key_jwt with a public key by value.
    let f = fixture();
    let jwk = public_ec_jwk();
    let v = f.register(json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [jwk] } })).await;
    let v = v.unwrap();
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(v["jwks"]["keys"][0], jwk);
    assert!(v.get("tls_client_auth_subject_dn").is_none());

    // tls_client_auth with a SAN chosen by the client.
    let f = fixture();
    let v = f.register(json!({ "tls_client_auth_san_dns": "client.fintech.test" })).await.unwrap();
    assert_eq!(v["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(v["tls_client_auth_san_dns"], "client.fintech.test");
    assert!(v.get("tls_client_auth_subject_dn").is_none());

    // The statement's software_jwks_endpoint replaces keys sent by value (RFC 7591 §3.1.1).
    let f = fixture();
    let ssa = f.sign(&with(claims(), json!({ "software_jwks_endpoint": "https://directory.test/fintech/jwks" })));
    let body =
        f.body(&ssa, json!({ "token_endpoint_auth_method": "private_key_jwt", "jwks": { "keys": [public_ec_jwk()] } }));
    let v = f.registrar.register(&body, &f.peer).await.unwrap();
    assert_eq!(v["jwks_uri"], "https://directory.test/fintech/jwks");
    assert!(v.get("jwks").is_none());
}

/// RFC 7591 §3.1.1, checklist D.70: the statement's values win over the request's.
#[tokio::test]
async fn statement_values_win_over_request_values() {
    let f = fixture();
    let v = f
        .register(json!({
            "client_name": "Request Name",
            "software_id": "request-software",
            "client_uri": "https://request.test",
        }))
        .await
        .unwrap();
    assert_eq!(v["client_name"], "Directory Name");
    assert_eq!(v["software_id"], SOFTWARE);
    // A value the statement does not carry stays as requested.
    assert_eq!(v["client_uri"], "https://request.test");
    // redirect_uris default to the statement's list.
    assert_eq!(v["redirect_uris"], json!([REDIRECT]));
    let stored = f.store.list_clients().await.unwrap().remove(0);
    assert_eq!(stored.software_id, SOFTWARE);
    assert_eq!(stored.metadata["client_name"], "Directory Name");
}

/// Brazil DCR: no scope means every scope the roles allow; the policy decides each one.
#[tokio::test]
async fn no_scope_means_every_role_scope() {
    let f = fixture();
    let v = f.register(json!({})).await.unwrap();
    assert_eq!(v["scope"], AISP_SCOPES.join(" "));
    assert_eq!(v["pending_scopes"], json!(PISP_SCOPES));
    let stored = f.store.list_clients().await.unwrap().remove(0);
    let requested: Vec<&str> = stored.scopes.iter().map(|g| g.scope.as_str()).collect();
    assert_eq!(requested, AISP_SCOPES.iter().chain(PISP_SCOPES.iter()).copied().collect::<Vec<_>>());
    assert_eq!(stored.risk_tier, "high");
    assert_eq!(stored.expires_at.unwrap().0, NOW + 90 * 86_400, "tier lifetime applies");
}

/// Every scope denied: invalid_client_metadata naming the rule; nothing stored, only the refusal
/// audited.
#[tokio::test]
async fn all_scopes_denied_stores_nothing() {
    // Without a role restriction, scopes the policy does not cover reach it and are denied.
    let f = fixture_with(|s| s.role_scopes.clear());
    let err = f.register(json!({ "scope": "accounts:write unknown:scope" })).await.unwrap_err();
    assert_eq!(code(&err), "invalid_client_metadata", "{err}");
    let text = err.to_string();
    assert!(text.contains("accounts:write denied by rule default-deny"), "{text}");
    assert!(text.contains("unknown:scope denied by rule default-deny"), "{text}");
    assert_eq!(f.clients().await, 0);
    assert!(f.cache.is_empty());
    let audit = f.audit().await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].event.kind, AuditKind::RegistrationRefused);
    assert!(audit[0].event.client_id.is_none());
    assert!(audit[0].event.data["error"].as_str().unwrap().contains("default-deny"));
}

/// RFC 7591 §3.2.1, checklist D.71, E.74: the success response, the stored record, the audit.
#[tokio::test]
async fn successful_registration_writes_client_audit_and_hashed_token() {
    let f = fixture();
    let ssa = f.ssa();
    let v =
        f.registrar.register(&f.body(&ssa, json!({ "scope": "accounts:read payments:write" })), &f.peer).await.unwrap();
    let id = id_of(&v);
    let token = token_of(&v);
    assert!(id.len() <= 36 && id.len() >= 22, "{id}");
    assert!(URL_SAFE_NO_PAD.decode(&token).unwrap().len() >= 16, "at least 128 bits");
    assert_eq!(v["scope"], "accounts:read");
    assert_eq!(v["pending_scopes"], json!(["payments:write"]));
    assert_eq!(v["software_statement"], ssa, "returned unchanged");
    assert_eq!(v["client_id_issued_at"], NOW);
    assert_eq!(v["registration_client_uri"], format!("{ISSUER}/register/{id}"));
    assert_eq!(v["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(v["tls_client_auth_subject_dn"], "CN=software-0001,OU=org-0001,O=Example Fintech,C=GB");
    assert_eq!(v["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(v["grant_types"], json!(["client_credentials"]));
    assert!(v.get("client_secret").is_none(), "no secret is issued");

    let stored = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
    assert_eq!(stored.status, ClientStatus::Active);
    assert_eq!(stored.org_id, ORG);
    assert_eq!(stored.software_id, SOFTWARE);
    assert_eq!(stored.directory, DIRECTORY);
    assert_eq!(stored.created_at.0, NOW);
    // The token is kept only as a hash.
    assert_eq!(stored.registration_token_hash, token_hash(&token));
    assert_ne!(stored.registration_token_hash, token);
    assert!(!serde_json::to_string(&stored).unwrap().contains(&token), "token stored in clear");
    let scopes: Vec<(&str, ScopeState, &str)> =
        stored.scopes.iter().map(|g| (g.scope.as_str(), g.state, g.rule.as_str())).collect();
    assert_eq!(
        scopes,
        [
            ("accounts:read", ScopeState::Granted, "read-only-for-active-orgs"),
            ("payments:write", ScopeState::PendingReview, "payments-need-review"),
        ]
    );
    assert_eq!(f.cache.get(&ClientId::new(&id)).unwrap().client_id.as_str(), id, "cached");

    let audit = f.audit().await;
    let kinds: Vec<AuditKind> = audit.iter().map(|r| r.event.kind).collect();
    assert_eq!(kinds, [AuditKind::RegistrationAccepted, AuditKind::ScopeDecision, AuditKind::ScopeDecision]);
    assert!(audit.iter().all(|r| r.event.client_id.as_ref().map(ClientId::as_str) == Some(id.as_str())));
    assert_eq!(audit[0].event.data["ssa_jti"], stored.ssa_jti.clone().unwrap());
    let decisions: Vec<(&Value, &Value, &Value)> =
        audit[1..].iter().map(|r| (&r.event.data["scope"], &r.event.data["state"], &r.event.data["rule"])).collect();
    assert_eq!(
        decisions,
        [
            (&json!("accounts:read"), &json!("granted"), &json!("read-only-for-active-orgs")),
            (&json!("payments:write"), &json!("pending_review"), &json!("payments-need-review")),
        ]
    );
    assert!(!serde_json::to_string(&audit).unwrap().contains(&token), "token in the audit log");
}

// ---------------------------------------------------------------------------------------------
// RFC 7592 management (checklist E.74-E.80)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn read_returns_the_registration_without_the_token() {
    let f = fixture();
    let registered = f.register(json!({ "scope": "accounts:read payments:write" })).await.unwrap();
    let id = id_of(&registered);
    let token = token_of(&registered);
    let read = f.registrar.read(&id, Some(&token), &f.peer).await.unwrap();
    let mut expected = registered.clone();
    expected.as_object_mut().unwrap().remove("registration_access_token");
    assert_eq!(read, expected);
}

#[tokio::test]
async fn management_refuses_wrong_token_unknown_and_deleted_clients() {
    let f = fixture();
    let registered = f.register(json!({})).await.unwrap();
    let id = id_of(&registered);
    let token = token_of(&registered);
    let update_body = |id: &str| {
        let mut b = registered.clone();
        b["client_id"] = json!(id);
        serde_json::to_vec(&b).unwrap()
    };

    // Checklist E.79: invalid token, unknown client -> 401 invalid_token.
    let cases: [(&str, &str, Option<&str>); 4] = [
        ("wrong token", id.as_str(), Some("wrong-token")),
        ("no token", id.as_str(), None),
        ("another client's id", "unknown-client", Some(token.as_str())),
        ("the token of this client, one character off", id.as_str(), Some(&token[1..])),
    ];
    for (name, client, bearer) in cases {
        let r = f.registrar.read(client, bearer, &f.peer).await.unwrap_err();
        let u = f.registrar.update(client, bearer, &f.peer, &update_body(client)).await.unwrap_err();
        let d = f.registrar.delete(client, bearer, &f.peer).await.unwrap_err();
        for (op, e) in [("read", r), ("update", u), ("delete", d)] {
            assert!(matches!(e, RegistrationError::InvalidToken(_)), "{name} {op}: {e:?}");
            assert_eq!(e.status().code().as_u16(), 401, "{name} {op}");
            assert_eq!(e.www_authenticate().as_deref(), Some("Bearer error=\"invalid_token\""), "{name} {op}");
        }
    }
    // The certificate is checked as well (checklist E.75).
    let e = f.registrar.read(&id, Some(&token), &PeerCertificates::default()).await.unwrap_err();
    assert!(matches!(e, RegistrationError::TransportCertificate(_)), "{e:?}");
    let other_org = transport_cert(&f.ca, SOFTWARE, Some("org-9999"));
    let e = f.registrar.read(&id, Some(&token), &other_org).await.unwrap_err();
    assert!(matches!(e, RegistrationError::TransportCertificate(_)), "{e:?}");
    assert_eq!(f.store.list_clients().await.unwrap()[0].updated_at.0, NOW, "nothing changed");

    // Checklist E.78: delete, then every operation is 401.
    f.clock.advance(5);
    f.registrar.delete(&id, Some(&token), &f.peer).await.unwrap();
    let stored = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
    assert_eq!(stored.status, ClientStatus::Offboarded);
    assert_eq!(stored.updated_at.0, NOW + 5);
    assert_eq!(f.cache.get(&ClientId::new(&id)).unwrap().status, ClientStatus::Offboarded);
    let tail: Vec<AuditKind> = f.audit().await.iter().rev().take(2).map(|r| r.event.kind).collect();
    assert_eq!(tail, [AuditKind::ClientOffboarded, AuditKind::RegistrationDeleted]);
    let r = f.registrar.read(&id, Some(&token), &f.peer).await.unwrap_err();
    let u = f.registrar.update(&id, Some(&token), &f.peer, &update_body(&id)).await.unwrap_err();
    let d = f.registrar.delete(&id, Some(&token), &f.peer).await.unwrap_err();
    for (op, e) in [("read", r), ("update", u), ("delete", d)] {
        assert!(matches!(e, RegistrationError::InvalidToken(_)), "after delete, {op}: {e:?}");
    }
}

#[tokio::test]
async fn update_requires_the_same_client_id() {
    let f = fixture();
    let registered = f.register(json!({})).await.unwrap();
    let id = id_of(&registered);
    let token = token_of(&registered);
    let mut body = registered.clone();
    body["client_id"] = json!("someone-else");
    let e = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap_err();
    assert_eq!(code(&e), "invalid_client_metadata", "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");
    body.as_object_mut().unwrap().remove("client_id");
    let e = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap_err();
    assert_eq!(code(&e), "invalid_client_metadata", "{e}");
    assert!(e.to_string().contains("must include client_id"), "{e}");
    // A new statement for another organisation cannot take the client over.
    let mut body = registered.clone();
    body["software_statement"] = json!(f.sign(&with(claims(), json!({ "org_id": "org-0002" }))));
    let e = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap_err();
    assert_eq!(code(&e), "invalid_software_statement", "{e}");
    let stored = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
    assert_eq!(stored.updated_at.0, NOW, "no refused update was written");
}

/// RFC 7592 §2.2: scopes already decided keep their decision (a reviewer's included); only new
/// scopes go to the policy; scopes no longer requested are dropped.
#[tokio::test]
async fn update_keeps_earlier_decisions_and_decides_only_new_scopes() {
    let f = fixture();
    let registered = f.register(json!({ "scope": "accounts:read payments:write" })).await.unwrap();
    let id = id_of(&registered);
    let token = token_of(&registered);

    // A reviewer approves payments:write (what the admin surface will do).
    let mut reviewed = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
    let g = reviewed.scopes.iter_mut().find(|g| g.scope == "payments:write").unwrap();
    g.state = ScopeState::Granted;
    g.rule = "review:CN=reviewer".into();
    g.reason = Some("contract signed".into());
    f.store.update_client(&reviewed, &[]).await.unwrap();
    let audit_before = f.audit().await.len();

    f.clock.advance(100);
    let mut body = registered.clone();
    body["scope"] = json!("accounts:read payments:write balances:read");
    body["client_name"] = json!("ignored, the statement names the client");
    let v = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap();
    assert_eq!(v["client_id"], id);
    assert_eq!(v["scope"], "accounts:read payments:write balances:read");
    assert!(v.get("pending_scopes").is_none(), "{v}");
    assert!(v.get("registration_access_token").is_none(), "the token is not rotated");
    assert_eq!(v["client_name"], "Directory Name");

    let stored = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
    let scopes: Vec<(&str, ScopeState, &str, i64)> =
        stored.scopes.iter().map(|g| (g.scope.as_str(), g.state, g.rule.as_str(), g.decided_at.0)).collect();
    assert_eq!(
        scopes,
        [
            ("accounts:read", ScopeState::Granted, "read-only-for-active-orgs", NOW),
            ("payments:write", ScopeState::Granted, "review:CN=reviewer", NOW),
            ("balances:read", ScopeState::Granted, "read-only-for-active-orgs", NOW + 100),
        ]
    );
    assert_eq!(stored.updated_at.0, NOW + 100);
    assert_eq!(stored.created_at.0, NOW);
    assert_eq!(stored.registration_token_hash, token_hash(&token));
    // The policy ran for balances:read only.
    let new: Vec<(AuditKind, Value)> = f.audit().await[audit_before..]
        .iter()
        .map(|r| (r.event.kind, r.event.data.get("scope").cloned().unwrap_or_default()))
        .collect();
    assert_eq!(
        new,
        [(AuditKind::RegistrationUpdated, Value::Null), (AuditKind::ScopeDecision, json!("balances:read"))]
    );
    assert_eq!(f.cache.get(&ClientId::new(&id)).unwrap().scopes().len(), 3, "cache follows the update");

    // Dropping a scope from the request drops its grant.
    let mut body = v.clone();
    body["scope"] = json!("accounts:read");
    let v = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap();
    assert_eq!(v["scope"], "accounts:read");
    assert_eq!(f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap().scopes.len(), 1);

    // An update is checked like a registration (RFC 7592 §2.2: RFC 7591 errors).
    let mut body = v.clone();
    body["redirect_uris"] = json!(["https://evil.test/cb"]);
    let e = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap_err();
    assert_eq!(code(&e), "invalid_redirect_uri", "{e}");
}

/// RFC 7592 §2.2 read-modify-write: sending back what a read returned changes nothing. Scopes that
/// wait for review are listed in `pending_scopes`, not in `scope`; echoing them keeps them.
#[tokio::test]
async fn update_with_the_read_response_keeps_pending_scopes() {
    let f = fixture();
    let registered = f.register(json!({ "scope": "accounts:read payments:write" })).await.unwrap();
    let id = id_of(&registered);
    let token = token_of(&registered);
    let read = f.registrar.read(&id, Some(&token), &f.peer).await.unwrap();
    let before = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();

    f.clock.advance(10);
    let v = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&read).unwrap()).await.unwrap();
    assert_eq!(v, read, "an unchanged registration reads back the same");
    let after = f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
    assert_eq!(after.scopes, before.scopes, "decisions kept, nothing re-decided");

    // pending_scopes only keeps what already waits; it cannot ask for anything new.
    let mut body = read.clone();
    body["pending_scopes"] = json!(["payments:write", "payments:read", "introspection"]);
    let v = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap();
    assert_eq!(v["pending_scopes"], json!(["payments:write"]));
    let scopes: Vec<String> =
        f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap().scopes.into_iter().map(|g| g.scope).collect();
    assert_eq!(scopes, ["accounts:read", "payments:write"]);

    // Leaving a scope out of both lists withdraws it.
    let mut body = read.clone();
    body.as_object_mut().unwrap().remove("pending_scopes");
    let v = f.registrar.update(&id, Some(&token), &f.peer, &serde_json::to_vec(&body).unwrap()).await.unwrap();
    assert!(v.get("pending_scopes").is_none(), "{v}");
    assert_eq!(f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap().scopes.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// UK Open Banking DCR v3.3 (checklist O.125-O.131, S.3/S.4): a request JWT signed by the
// software's own key; management with the client's client-credentials access token.
// ---------------------------------------------------------------------------------------------

mod uk {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use tessera_core::keys::AccessTokenVerifier;

    use super::*;
    use crate::settings::JwksFetcher;

    /// The software's `software_jwks_endpoint`s: URL -> keys, and every URL fetched.
    #[derive(Default)]
    struct Endpoints {
        keys: Mutex<HashMap<String, Vec<Jwk>>>,
        fetched: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl JwksFetcher for Endpoints {
        async fn fetch(&self, url: &str) -> Result<Vec<Jwk>, String> {
            self.fetched.lock().unwrap().push(url.to_owned());
            self.keys.lock().unwrap().get(url).cloned().ok_or_else(|| format!("GET {url}: HTTP 404"))
        }
    }

    /// Access tokens "issued" by this server: the claims a verified `at+jwt` carries.
    #[derive(Default)]
    struct Tokens(Mutex<HashMap<String, Map<String, Value>>>);

    impl AccessTokenVerifier for Tokens {
        fn verify(&self, token: &str, typ: &str) -> Option<Map<String, Value>> {
            if typ != "at+jwt" {
                return None;
            }
            self.0.lock().unwrap().get(token).cloned()
        }
    }

    struct Uk {
        f: Fixture,
        /// The software's ES256 key (kid `software-1`), named by value in statements.
        software: tessera_jose::KeyMaterial,
        endpoints: Arc<Endpoints>,
        tokens: Arc<Tokens>,
        revocations: Arc<Revocations>,
    }

    fn uk_fixture(audiences: &[&str]) -> Uk {
        let endpoints = Arc::new(Endpoints::default());
        let fetcher: Arc<dyn JwksFetcher> = endpoints.clone();
        let audiences: Vec<String> = audiences.iter().map(|a| (*a).to_owned()).collect();
        let mut f = fixture_with(|s| {
            s.profile = Profile::UkOpenBanking { audiences };
            s.software_jwks = Some(fetcher);
        });
        let tokens = Arc::new(Tokens::default());
        let revocations = Arc::new(Revocations::new());
        f.registrar = f.registrar.with_access_token_verifier(tokens.clone(), revocations.clone());
        let software = generate(SigningAlg::ES256, KeyId::new("software-1")).unwrap();
        Uk { f, software, endpoints, tokens, revocations }
    }

    fn jwks(keys: &[&Jwk]) -> Value {
        json!({ "keys": keys.iter().map(|k| Value::Object(k.as_ref().clone())).collect::<Vec<_>>() })
    }

    impl Uk {
        /// A statement naming the software's key by value, with `changes`.
        fn ssa(&self, changes: Value) -> String {
            let c = with(claims(), json!({ "software_jwks": jwks(&[&self.software.public_jwk]) }));
            self.f.sign(&with(c, changes))
        }

        /// A good request carrying `ssa`, issued now, for the issuer.
        fn request(&self, ssa: &str) -> Map<String, Value> {
            json!({
                "iss": SOFTWARE,
                "aud": ISSUER,
                "iat": NOW,
                "exp": NOW + 300,
                "jti": "3f6c1c1e-6c8e-4c55-9d4c-0a1b2c3d4e5f",
                "software_id": SOFTWARE,
                "software_statement": ssa,
                "token_endpoint_auth_method": "tls_client_auth",
                "grant_types": ["client_credentials"],
                "scope": "accounts:read",
                "redirect_uris": [REDIRECT],
                "application_type": "web",
                "id_token_signed_response_alg": "PS256",
            })
            .as_object()
            .unwrap()
            .clone()
        }

        fn sign(&self, claims: &Map<String, Value>) -> Vec<u8> {
            sign_with_jwk(SigningAlg::ES256, &self.software.private_jwk, "JWT", claims).unwrap().into_bytes()
        }

        /// A good request with `changes`, signed by the software.
        fn body(&self, changes: Value) -> Vec<u8> {
            self.sign(&with(self.request(&self.ssa(json!({}))), changes))
        }

        async fn register(&self, changes: Value) -> Result<Value, RegistrationError> {
            self.f.registrar.register(&self.body(changes), &self.f.peer).await
        }

        /// A client-credentials access token of `client_id`, bound to the fixture's
        /// certificate, with `changes` to its claims.
        fn token(&self, client_id: &str, changes: Value) -> String {
            let token = format!("at-{}", unique_jti());
            let claims = json!({
                "jti": token,
                "iss": ISSUER,
                "client_id": client_id,
                "sub": client_id,
                "iat": NOW,
                "exp": NOW + 300,
                "cnf": { "x5t#S256": self.f.peer.leaf_x5t_s256().unwrap() },
            });
            let claims = with(claims.as_object().unwrap().clone(), changes);
            self.tokens.0.lock().unwrap().insert(token.clone(), claims);
            token
        }
    }

    fn b64json(v: &Value) -> String {
        b64(&v.to_string())
    }

    /// Checklist O.125-O.127, O.130: accepted; the response repeats the request and flattens the
    /// statement; the registered values win where they overlap.
    #[tokio::test]
    async fn signed_request_is_registered_and_the_response_flattens_the_statement() {
        let u = uk_fixture(&[]);
        let ssa = u.ssa(json!({ "software_environment": "sandbox", "org_contacts": [{ "name": "ops" }] }));
        let request = with(u.request(&ssa), json!({ "client_name": "the request's name", "purpose": null }));
        let v = u.f.registrar.register(&u.sign(&request), &u.f.peer).await.unwrap();
        let id = id_of(&v);
        // Registered values.
        assert_eq!(v["scope"], "accounts:read");
        assert_eq!(v["token_endpoint_auth_method"], "tls_client_auth");
        assert_eq!(v["tls_client_auth_subject_dn"], "CN=software-0001,OU=org-0001,O=Example Fintech,C=GB");
        assert_eq!(v["registration_client_uri"], format!("{ISSUER}/register/{id}"));
        assert_eq!(v["software_statement"], ssa);
        // RFC 7591 §3.1.1: the statement's name wins over the request's.
        assert_eq!(v["client_name"], "Directory Name");
        // The request's claims are repeated, the JWT envelope included.
        assert_eq!(v["iss"], SOFTWARE);
        assert_eq!(v["aud"], ISSUER);
        assert_eq!(v["jti"], request["jti"]);
        assert_eq!(v["application_type"], "web");
        assert_eq!(v["id_token_signed_response_alg"], "PS256");
        // The statement's claims, flattened; not its envelope (iss, iat, jti).
        assert_eq!(v["org_name"], "Example Fintech");
        assert_eq!(v["org_id"], ORG);
        assert_eq!(v["org_status"], "Active");
        assert_eq!(v["software_roles"], json!(["AISP", "PISP"]));
        assert_eq!(v["software_client_name"], "Directory Name");
        assert_eq!(v["software_environment"], "sandbox");
        assert_eq!(v["org_contacts"], json!([{ "name": "ops" }]));
        assert_eq!(v["software_jwks"], jwks(&[&u.software.public_jwk]));
        assert_ne!(v["iss"], DIRECTORY);

        let stored = u.f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
        assert_eq!((stored.org_id.as_str(), stored.software_id.as_str()), (ORG, SOFTWARE));
        assert_eq!(stored.metadata["software_statement"], ssa);
        assert!(u.endpoints.fetched.lock().unwrap().is_empty(), "keys by value need no fetch");
        assert_eq!(u.f.audit_kinds().await[0], AuditKind::RegistrationAccepted);

        // PS256 is the other accepted algorithm.
        let ps = generate(SigningAlg::PS256, KeyId::new("software-ps")).unwrap();
        let ssa = u.f.sign(&with(claims(), json!({ "software_jwks": jwks(&[&ps.public_jwk]) })));
        let body = sign_with_jwk(SigningAlg::PS256, &ps.private_jwk, "JWT", &u.request(&ssa)).unwrap();
        u.f.registrar.register(body.as_bytes(), &u.f.peer).await.unwrap();
        // `aud` may be an array holding an accepted value; surrounding whitespace is tolerated.
        let mut body = u.body(json!({ "aud": ["https://other.test", ISSUER] }));
        body.extend_from_slice(b"\r\n");
        u.f.registrar.register(&body, &u.f.peer).await.unwrap();
        assert_eq!(u.f.clients().await, 3);
    }

    struct Case {
        name: &'static str,
        body: fn(&Uk) -> Vec<u8>,
        code: &'static str,
        says: &'static str,
    }

    fn case(name: &'static str, code: &'static str, says: &'static str, body: fn(&Uk) -> Vec<u8>) -> Case {
        Case { name, body, code, says }
    }

    /// Checklist O.126, O.129-O.131, S.3: every refusal is a 400 with an RFC 7591 code, audited,
    /// and stores nothing.
    #[tokio::test]
    async fn refusals() {
        /// A good request under an `alg` header, with a made-up signature.
        fn unsigned(alg: &str, u: &Uk) -> Vec<u8> {
            let header = json!({ "alg": alg, "typ": "JWT", "kid": "software-1" });
            format!("{}.{}.c2ln", b64json(&header), b64json(&Value::Object(u.request(&u.ssa(json!({})))))).into_bytes()
        }
        let table = vec![
            // Not a JWS.
            case("not UTF-8", "invalid_client_metadata", "not text", |_| vec![0xff, 0xfe, 0x2e]),
            case("not a JWT", "invalid_client_metadata", "signed JWT", |_| b"hello".to_vec()),
            case("two parts", "invalid_client_metadata", "signed JWT", |_| b"e30.e30".to_vec()),
            case("four parts", "invalid_client_metadata", "signed JWT", |_| b"a.b.c.d".to_vec()),
            case("JSON", "invalid_client_metadata", "signed JWT", |u| {
                serde_json::to_vec(&u.request(&u.ssa(json!({})))).unwrap()
            }),
            case("header not base64url JSON", "invalid_client_metadata", "header", |_| b"!!!.e30.c2ln".to_vec()),
            case("payload not JSON", "invalid_client_metadata", "payload", |_| {
                format!("{}.{}.c2ln", b64(r#"{"alg":"ES256"}"#), b64("not json")).into_bytes()
            }),
            // S.3, O.129: PS256 or ES256 only; never none or RS256 (not even EdDSA, which the
            // directory may use for statements).
            case("alg none", "invalid_client_metadata", "\"none\"", |u| {
                let header = json!({ "alg": "none", "typ": "JWT" });
                format!("{}.{}.", b64json(&header), b64json(&Value::Object(u.request(&u.ssa(json!({})))))).into_bytes()
            }),
            case("no alg", "invalid_client_metadata", "\"\"", |u| unsigned("", u)),
            case("RS256", "invalid_client_metadata", "RS256", |u| unsigned("RS256", u)),
            case("HS256", "invalid_client_metadata", "HS256", |u| unsigned("HS256", u)),
            case("EdDSA", "invalid_client_metadata", "EdDSA", |u| {
                let ed = generate(SigningAlg::EdDSA, KeyId::new("software-ed")).unwrap();
                let ssa = u.ssa(json!({ "software_jwks": jwks(&[&ed.public_jwk]) }));
                sign_with_jwk(SigningAlg::EdDSA, &ed.private_jwk, "JWT", &u.request(&ssa)).unwrap().into_bytes()
            }),
            // The software's keys only.
            case("another key with the software's kid", "invalid_client_metadata", "does not verify", |u| {
                let other = generate(SigningAlg::ES256, KeyId::new("software-1")).unwrap();
                sign_with_jwk(SigningAlg::ES256, &other.private_jwk, "JWT", &u.request(&u.ssa(json!({}))))
                    .unwrap()
                    .into_bytes()
            }),
            case("a key the software does not have", "invalid_client_metadata", "does not verify", |u| {
                let other = generate(SigningAlg::ES256, KeyId::new("other")).unwrap();
                sign_with_jwk(SigningAlg::ES256, &other.private_jwk, "JWT", &u.request(&u.ssa(json!({}))))
                    .unwrap()
                    .into_bytes()
            }),
            case("payload changed after signing", "invalid_client_metadata", "does not verify", |u| {
                let good = String::from_utf8(u.body(json!({}))).unwrap();
                let parts: Vec<&str> = good.split('.').collect();
                let forged = with(u.request(&u.ssa(json!({}))), json!({ "scope": "payments:write" }));
                format!("{}.{}.{}", parts[0], b64json(&Value::Object(forged)), parts[2]).into_bytes()
            }),
            // O.126: the claims.
            case("expired", "invalid_client_metadata", "expired", |u| u.body(json!({ "exp": NOW - 1 }))),
            case("exp now", "invalid_client_metadata", "expired", |u| u.body(json!({ "exp": NOW }))),
            case("no exp", "invalid_client_metadata", "no exp", |u| u.body(json!({ "exp": null }))),
            case("exp not a number", "invalid_client_metadata", "no exp", |u| {
                u.body(json!({ "exp": (NOW + 300).to_string() }))
            }),
            case("no iat", "invalid_client_metadata", "no iat", |u| u.body(json!({ "iat": null }))),
            case("iat 61 s ahead", "invalid_client_metadata", "future", |u| u.body(json!({ "iat": NOW + 61 }))),
            case("no jti", "invalid_client_metadata", "no jti", |u| u.body(json!({ "jti": null }))),
            case("empty jti", "invalid_client_metadata", "no jti", |u| u.body(json!({ "jti": "" }))),
            case("iss of another software", "invalid_client_metadata", "is not the statement's software_id", |u| {
                u.body(json!({ "iss": "software-0002" }))
            }),
            case("iss of 22 characters, not the software", "invalid_client_metadata", "is not the statement's", |u| {
                u.body(json!({ "iss": "a234567890123456789012" }))
            }),
            case("iss of 23 characters", "invalid_client_metadata", "longer than 22", |u| {
                u.body(json!({ "iss": "a2345678901234567890123" }))
            }),
            case("empty iss", "invalid_client_metadata", "no iss", |u| u.body(json!({ "iss": "" }))),
            case("no iss", "invalid_client_metadata", "no iss", |u| u.body(json!({ "iss": null }))),
            case("iss not a string", "invalid_client_metadata", "no iss", |u| u.body(json!({ "iss": 7 }))),
            case("aud of another server", "invalid_client_metadata", "aud", |u| {
                u.body(json!({ "aud": "https://other.test" }))
            }),
            case("aud array without this server", "invalid_client_metadata", "aud", |u| {
                u.body(json!({ "aud": ["https://other.test"] }))
            }),
            case("aud with a trailing slash", "invalid_client_metadata", "aud", |u| {
                u.body(json!({ "aud": format!("{ISSUER}/") }))
            }),
            case("no aud", "invalid_client_metadata", "aud", |u| u.body(json!({ "aud": null }))),
            case("software_id of another software", "invalid_client_metadata", "software_id", |u| {
                u.body(json!({ "software_id": "software-0002" }))
            }),
            // O.127, O.131: unsupported values.
            case("response_types code id_token", "invalid_client_metadata", "response type", |u| {
                u.body(json!({ "response_types": ["code id_token"] }))
            }),
            case("client_secret_basic", "invalid_client_metadata", "client_secret_basic", |u| {
                u.body(json!({ "token_endpoint_auth_method": "client_secret_basic" }))
            }),
            case("redirect URI not in the statement", "invalid_redirect_uri", "software_redirect_uris", |u| {
                u.body(json!({ "redirect_uris": ["https://evil.test/cb"] }))
            }),
            // The statement.
            case("no software_statement", "invalid_software_statement", "software_statement", |u| {
                u.body(json!({ "software_statement": null }))
            }),
            case("statement of an untrusted directory", "unapproved_software_statement", "not a directory", |u| {
                let c = with(claims(), json!({ "iss": SOFTWARE, "software_jwks": jwks(&[&u.software.public_jwk]) }));
                let ssa = sign_with_jwk(SigningAlg::ES256, &u.software.private_jwk, "JWT", &c).unwrap();
                u.sign(&u.request(&ssa))
            }),
            case("statement of a revoked organisation", "unapproved_software_statement", "Revoked", |u| {
                u.sign(&u.request(&u.ssa(json!({ "org_status": "Revoked" }))))
            }),
            case("statement of another software", "invalid_client_metadata", "software_id", |u| {
                u.sign(&u.request(&u.ssa(json!({ "software_id": "software-0002" }))))
            }),
            case("statement naming no keys", "invalid_software_statement", "names no software keys", |u| {
                u.sign(&u.request(&u.ssa(json!({ "software_jwks": null }))))
            }),
            case("software_jwks not a JWKS", "invalid_software_statement", "JWKS object", |u| {
                u.sign(&u.request(&u.ssa(json!({ "software_jwks": [1, 2] }))))
            }),
            case("endpoint that cannot be fetched", "invalid_software_statement", "could not be fetched", |u| {
                u.sign(&u.request(
                    &u.ssa(json!({ "software_jwks": null, "software_jwks_endpoint": "https://tpp.test/gone" })),
                ))
            }),
        ];
        for c in &table {
            let u = uk_fixture(&[]);
            let err = u.f.registrar.register(&(c.body)(&u), &u.f.peer).await.unwrap_err();
            assert_eq!(code(&err), c.code, "{}: {err}", c.name);
            assert_eq!(err.status().code().as_u16(), 400, "{}", c.name);
            assert!(err.to_string().contains(c.says), "{}: {err} does not say {:?}", c.name, c.says);
            assert_eq!(u.f.clients().await, 0, "{}", c.name);
            assert_eq!(u.f.audit_kinds().await, [AuditKind::RegistrationRefused], "{}", c.name);
        }
    }

    /// `registration.uk_audiences` replaces the issuer as the accepted `aud`.
    #[tokio::test]
    async fn configured_audiences_replace_the_issuer() {
        let u = uk_fixture(&["0015800001041REbAAM", "https://directory-id.test"]);
        u.register(json!({ "aud": "0015800001041REbAAM" })).await.unwrap();
        u.register(json!({ "aud": ["x", "https://directory-id.test"] })).await.unwrap();
        let err = u.register(json!({ "aud": ISSUER })).await.unwrap_err();
        assert_eq!(code(&err), "invalid_client_metadata", "{err}");
        assert!(err.to_string().contains("0015800001041REbAAM"), "{err}");
        assert_eq!(u.f.clients().await, 2);
    }

    /// Checklist O.129: `software_jwks_endpoint`, when the statement names one, is where the keys
    /// come from (the statement's `software_jwks` is then not used), and it becomes the client's
    /// `jwks_uri`.
    #[tokio::test]
    async fn software_jwks_endpoint_is_fetched() {
        let u = uk_fixture(&[]);
        let url = "https://keystore.directory.test/org-0001/software-0001.jwks";
        u.endpoints.keys.lock().unwrap().insert(url.to_owned(), vec![u.software.public_jwk.clone()]);
        let ssa = u.ssa(json!({ "software_jwks": null, "software_jwks_endpoint": url }));
        let v = u.f.registrar.register(&u.sign(&u.request(&ssa)), &u.f.peer).await.unwrap();
        assert_eq!(v["software_jwks_endpoint"], url);
        assert_eq!(v["jwks_uri"], url);
        assert_eq!(*u.endpoints.fetched.lock().unwrap(), [url]);

        // Keys by value do not stand in for the endpoint's.
        let other = generate(SigningAlg::ES256, KeyId::new("other")).unwrap();
        let ssa = u.f.sign(&with(
            claims(),
            json!({ "software_jwks_endpoint": url, "software_jwks": jwks(&[&other.public_jwk]) }),
        ));
        let body = sign_with_jwk(SigningAlg::ES256, &other.private_jwk, "JWT", &u.request(&ssa)).unwrap();
        let err = u.f.registrar.register(body.as_bytes(), &u.f.peer).await.unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
        assert_eq!(u.f.clients().await, 1);
    }

    /// The transport certificate is still required and must belong to the statement's
    /// organisation.
    #[tokio::test]
    async fn transport_certificate_rules_still_apply() {
        let u = uk_fixture(&[]);
        let body = u.body(json!({}));
        for peer in [PeerCertificates::default(), transport_cert(&u.f.ca, SOFTWARE, Some("org-9999"))] {
            let err = u.f.registrar.register(&body, &peer).await.unwrap_err();
            assert!(matches!(err, RegistrationError::TransportCertificate(_)), "{err:?}");
        }
        assert_eq!(u.f.clients().await, 0);
    }

    /// Checklist O.128, O.131: management is authorised by an access token of this client, from
    /// this issuer, unexpired, bound to the certificate of the request; never by the
    /// registration access token. Every refusal is 401 invalid_token.
    #[tokio::test]
    async fn management_needs_the_clients_own_bound_access_token() {
        let u = uk_fixture(&[]);
        let v = u.register(json!({})).await.unwrap();
        let id = id_of(&v);
        let good = u.token(&id, json!({}));
        let read = u.f.registrar.read(&id, Some(&good), &u.f.peer).await.unwrap();
        assert_eq!(read["client_id"], id);
        assert_eq!(read["scope"], "accounts:read");
        assert!(read.get("registration_access_token").is_none());

        let other = u.register(json!({})).await.unwrap();
        let mut refused: Vec<(&str, String)> = vec![
            ("another issuer", u.token(&id, json!({ "iss": "https://other-as.test" }))),
            ("another client's token", u.token(&id_of(&other), json!({}))),
            ("no client_id", u.token(&id, json!({ "client_id": null }))),
            ("expired", u.token(&id, json!({ "exp": NOW }))),
            ("no exp", u.token(&id, json!({ "exp": null }))),
            ("no iat", u.token(&id, json!({ "iat": null }))),
            ("bound to another certificate", u.token(&id, json!({ "cnf": { "x5t#S256": "x" } }))),
            ("not bound", u.token(&id, json!({ "cnf": null }))),
            ("no jti", u.token(&id, json!({ "jti": null }))),
            ("revoked (RFC 7009)", {
                let t = u.token(&id, json!({}));
                u.revocations.insert(t.clone(), tessera_core::UnixTime(NOW + 300));
                t
            }),
            ("not a token this server issued", "at-unknown".to_owned()),
        ];
        if let Some(rat) = v["registration_access_token"].as_str() {
            refused.push(("the registration access token", rat.to_owned()));
        }
        for (name, token) in &refused {
            let err = u.f.registrar.read(&id, Some(token), &u.f.peer).await.unwrap_err();
            assert!(matches!(err, RegistrationError::InvalidToken(_)), "{name}: {err:?}");
            assert_eq!(err.status().code().as_u16(), 401, "{name}");
            let err = u.f.registrar.delete(&id, Some(token), &u.f.peer).await.unwrap_err();
            assert!(matches!(err, RegistrationError::InvalidToken(_)), "{name} (delete): {err:?}");
        }
        let err = u.f.registrar.read(&id, None, &u.f.peer).await.unwrap_err();
        assert!(matches!(err, RegistrationError::InvalidToken(_)), "{err:?}");
        let err = u.f.registrar.read("unknown-client", Some(&good), &u.f.peer).await.unwrap_err();
        assert!(matches!(err, RegistrationError::InvalidToken(_)), "{err:?}");
        // The certificate of the request matters, not only the token's binding.
        let twin = transport_cert(&u.f.ca, SOFTWARE, Some(ORG));
        let err = u.f.registrar.read(&id, Some(&good), &twin).await.unwrap_err();
        assert!(matches!(err, RegistrationError::InvalidToken(_)), "{err:?}");

        // A suspended client cannot manage its registration.
        let mut suspended = u.f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
        suspended.status = ClientStatus::Suspended;
        u.f.store.update_client(&suspended, &[]).await.unwrap();
        let err = u.f.registrar.read(&id, Some(&good), &u.f.peer).await.unwrap_err();
        assert!(matches!(err, RegistrationError::InvalidToken(_)), "{err:?}");
        suspended.status = ClientStatus::Active;
        u.f.store.update_client(&suspended, &[]).await.unwrap();
        // Tokens issued before the client's not-before are dead.
        let mut nb = suspended.clone();
        nb.tokens_not_before = Some(tessera_core::UnixTime(NOW + 1));
        u.f.store.update_client(&nb, &[]).await.unwrap();
        let err = u.f.registrar.read(&id, Some(&good), &u.f.peer).await.unwrap_err();
        assert!(matches!(err, RegistrationError::InvalidToken(_)), "{err:?}");
        let fresh = u.token(&id, json!({ "iat": NOW + 1 }));
        u.f.registrar.read(&id, Some(&fresh), &u.f.peer).await.unwrap();
        assert_eq!(u.f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap().updated_at.0, NOW);
    }

    /// Without a verifier, no bearer token authorises management (fail closed).
    #[tokio::test]
    async fn management_without_a_token_verifier_is_refused() {
        let endpoints: Arc<dyn JwksFetcher> = Arc::new(Endpoints::default());
        let f = fixture_with(|s| {
            s.profile = Profile::UkOpenBanking { audiences: vec![] };
            s.software_jwks = Some(endpoints);
        });
        let key = generate(SigningAlg::ES256, KeyId::new("software-1")).unwrap();
        let ssa = f.sign(&with(claims(), json!({ "software_jwks": jwks(&[&key.public_jwk]) })));
        let u = Uk {
            f,
            software: key,
            endpoints: Arc::new(Endpoints::default()),
            tokens: Arc::default(),
            revocations: Arc::new(Revocations::new()),
        };
        let v = u.f.registrar.register(&u.sign(&u.request(&ssa)), &u.f.peer).await.unwrap();
        let id = id_of(&v);
        for token in [u.token(&id, json!({})), token_of(&v)] {
            let err = u.f.registrar.read(&id, Some(&token), &u.f.peer).await.unwrap_err();
            assert!(matches!(err, RegistrationError::InvalidToken(_)), "{err:?}");
        }
    }

    /// Checklist O.128: PUT resends every claim as a signed request; it keeps earlier decisions
    /// and the client's tokens. DELETE offboards the client; then everything is 401.
    #[tokio::test]
    async fn update_and_delete() {
        let u = uk_fixture(&[]);
        let ssa = u.ssa(json!({}));
        let v = u.f.registrar.register(&u.sign(&u.request(&ssa)), &u.f.peer).await.unwrap();
        let id = id_of(&v);
        let token = u.token(&id, json!({}));

        u.f.clock.advance(30);
        let later = |changes: Value| {
            with(
                u.request(&ssa),
                with(json!({ "iat": NOW + 30, "exp": NOW + 330 }).as_object().unwrap().clone(), changes).into(),
            )
        };
        // client_id may be left out: the URL names the client.
        let body = u.sign(&later(json!({ "scope": "accounts:read balances:read" })));
        let updated = u.f.registrar.update(&id, Some(&token), &u.f.peer, &body).await.unwrap();
        assert_eq!(updated["client_id"], id);
        assert_eq!(updated["scope"], "accounts:read balances:read");
        let stored = u.f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
        assert_eq!(stored.updated_at.0, NOW + 30);
        assert_eq!(stored.scopes.len(), 2);
        assert_eq!(stored.tokens_not_before, None, "a PUT does not invalidate tokens");
        u.f.registrar.read(&id, Some(&token), &u.f.peer).await.unwrap();

        // A PUT is a registration request: signed, fresh, for this client.
        let refusals: Vec<(&str, Vec<u8>, &str)> = vec![
            ("JSON", serde_json::to_vec(&later(json!({}))).unwrap(), "signed JWT"),
            ("expired", u.sign(&later(json!({ "exp": NOW + 30 }))), "expired"),
            ("another client_id", u.sign(&later(json!({ "client_id": "someone-else" }))), "does not match"),
            ("iss too long", u.sign(&later(json!({ "iss": "a2345678901234567890123" }))), "longer than 22"),
            (
                "alg none",
                {
                    let claims = Value::Object(later(json!({})));
                    format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64json(&claims)).into_bytes()
                },
                "\"none\"",
            ),
            (
                "statement of another organisation",
                u.sign(&with(
                    u.request(&u.ssa(json!({ "org_id": "org-0002" }))),
                    json!({ "iat": NOW + 30, "exp": NOW + 330 }),
                )),
                "another organisation",
            ),
        ];
        for (name, body, says) in &refusals {
            let err = u.f.registrar.update(&id, Some(&token), &u.f.peer, body).await.unwrap_err();
            assert_eq!(err.status().code().as_u16(), 400, "{name}: {err}");
            assert!(err.to_string().contains(says), "{name}: {err}");
        }
        assert_eq!(u.f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap().updated_at.0, NOW + 30);

        // A fresh statement of the same software is accepted.
        let fresh = u.ssa(json!({}));
        let body = u.sign(&with(u.request(&fresh), json!({ "iat": NOW + 30, "exp": NOW + 330, "client_id": id })));
        let updated = u.f.registrar.update(&id, Some(&token), &u.f.peer, &body).await.unwrap();
        assert_eq!(updated["software_statement"], fresh);
        assert_eq!(updated["scope"], "accounts:read");

        u.f.clock.advance(5);
        u.f.registrar.delete(&id, Some(&token), &u.f.peer).await.unwrap();
        let stored = u.f.store.get_client(&ClientId::new(&id)).await.unwrap().unwrap();
        assert_eq!(stored.status, ClientStatus::Offboarded);
        let after = u.token(&id, json!({ "iat": NOW + 100 }));
        for t in [&token, &after] {
            let r = u.f.registrar.read(&id, Some(t), &u.f.peer).await.unwrap_err();
            let p = u.f.registrar.update(&id, Some(t), &u.f.peer, &body).await.unwrap_err();
            let d = u.f.registrar.delete(&id, Some(t), &u.f.peer).await.unwrap_err();
            for (op, e) in [("read", r), ("update", p), ("delete", d)] {
                assert!(matches!(e, RegistrationError::InvalidToken(_)), "after delete, {op}: {e:?}");
            }
        }
    }
}

/// No client id starts with `-` (an option on a command line, a formula in the inventory CSV).
#[test]
fn client_ids_never_start_with_a_dash() {
    struct Fixed(u8);
    impl tessera_core::Rng for Fixed {
        fn fill(&self, buf: &mut [u8]) -> Result<(), tessera_core::RngError> {
            buf.fill(self.0);
            Ok(())
        }
    }
    // 0xF8 = 111110.. : base64url index 62, '-'.
    let id = crate::service::new_client_id(&Fixed(0xF8)).unwrap();
    assert!(id.as_str().starts_with('A'), "{id}");
    assert_eq!(id.as_str().len(), 22);
    let plain = crate::service::new_client_id(&Fixed(0x00)).unwrap();
    assert_eq!(plain.as_str(), "A".repeat(22));
    for _ in 0..2000 {
        assert!(!crate::service::new_client_id(&tessera_core::OsRng).unwrap().as_str().starts_with('-'));
    }
}
