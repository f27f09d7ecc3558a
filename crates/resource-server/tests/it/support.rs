//! Keys, tokens and certificates for the tests: an issuer made with josekit, client
//! certificates made with rcgen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, HS256, JwsSigner, PS256, RS256};
use serde_json::{Map, Value, json};
use tessera_resource_server::{JwksCache, Validator, ValidatorConfig, x5t_s256};

pub const ISSUER: &str = "https://as.example.test";
pub const AUDIENCE: &str = "https://rs.example.test";

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// rustls/reqwest need a process-wide crypto provider (stack-notes §3).
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A signing key of the test issuer.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    pub signer: Box<dyn JwsSigner>,
    pub public: Option<Jwk>,
}

impl TestKey {
    fn with(kid: &str, alg: &'static str, signer: Box<dyn JwsSigner>, mut public: Jwk) -> TestKey {
        public.set_key_id(kid);
        TestKey { kid: kid.to_owned(), alg, signer, public: Some(public) }
    }

    pub fn es256(kid: &str) -> TestKey {
        let kp = ES256.generate_key_pair().unwrap();
        let signer = ES256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap();
        TestKey::with(kid, "ES256", Box::new(signer), kp.to_jwk_public_key())
    }

    pub fn ps256(kid: &str) -> TestKey {
        let kp = PS256.generate_key_pair(2048).unwrap();
        let signer = PS256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap();
        TestKey::with(kid, "PS256", Box::new(signer), kp.to_jwk_public_key())
    }

    pub fn eddsa(kid: &str) -> TestKey {
        let kp = EdDSA.generate_key_pair(EdCurve::Ed25519).unwrap();
        let signer = EdDSA.signer_from_jwk(&kp.to_jwk_private_key()).unwrap();
        TestKey::with(kid, "EdDSA", Box::new(signer), kp.to_jwk_public_key())
    }

    pub fn rs256(kid: &str) -> TestKey {
        let kp = RS256.generate_key_pair(2048).unwrap();
        let signer = RS256.signer_from_jwk(&kp.to_jwk_private_key()).unwrap();
        TestKey::with(kid, "RS256", Box::new(signer), kp.to_jwk_public_key())
    }

    pub fn hs256(kid: &str) -> TestKey {
        let signer = HS256.signer_from_bytes(b"a shared secret of at least 32 bytes!").unwrap();
        TestKey { kid: kid.to_owned(), alg: "HS256", signer: Box::new(signer), public: None }
    }

    /// Signs with this key; `header` members are merged over `{alg, typ: at+jwt, kid}` (a
    /// `null` removes a member).
    pub fn sign(&self, header: Value, claims: &Value) -> String {
        let mut h = json!({ "alg": self.alg, "typ": "at+jwt", "kid": self.kid }).as_object().unwrap().clone();
        merge(&mut h, header);
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&h).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let sig = self.signer.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A token with the default valid claims (bound to `cert_der`), `claims` merged over them.
    pub fn token(&self, cert_der: &[u8], claims: Value) -> String {
        let mut c = valid_claims(cert_der);
        merge(&mut c, claims);
        self.sign(json!({}), &Value::Object(c))
    }
}

pub fn merge(target: &mut Map<String, Value>, patch: Value) {
    if let Value::Object(patch) = patch {
        for (k, v) in patch {
            if v.is_null() {
                target.remove(&k);
            } else {
                target.insert(k, v);
            }
        }
    }
}

static JTI: AtomicU64 = AtomicU64::new(1);

pub fn valid_claims(cert_der: &[u8]) -> Map<String, Value> {
    let now = now();
    json!({
        "iss": ISSUER,
        "sub": "client-1",
        "client_id": "client-1",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::Relaxed)),
        "scope": "accounts:read payments:write",
        "cnf": { "x5t#S256": x5t_s256(cert_der) },
    })
    .as_object()
    .unwrap()
    .clone()
}

pub fn jwks(keys: &[&TestKey]) -> String {
    let keys: Vec<Value> =
        keys.iter().filter_map(|k| k.public.as_ref()).map(|j| Value::Object(j.as_ref().clone())).collect();
    json!({ "keys": keys }).to_string()
}

pub fn config() -> ValidatorConfig {
    ValidatorConfig::new(ISSUER, AUDIENCE, format!("{ISSUER}/jwks"))
}

pub fn static_validator(keys: &[&TestKey]) -> Validator {
    Validator::with_jwks(config(), JwksCache::from_static(&jwks(keys)).unwrap())
}

/// A self-signed client certificate (DER), enough where no chain is validated.
pub fn client_cert(name: &str) -> Vec<u8> {
    rcgen::generate_simple_self_signed(vec![format!("{name}.clients.test")]).unwrap().cert.der().to_vec()
}

/// A small PKI for the TLS tests.
pub struct Pki {
    pub ca_pem: String,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A certificate with its PKCS#8 key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca_pem: ca.pem(), ca }
    }

    fn issue(&self, cn: &str, sans: Vec<String>, eku: rcgen::ExtendedKeyUsagePurpose) -> Issued {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }

    pub fn server(&self) -> Issued {
        self.issue(
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub fn client(&self, cn: &str) -> Issued {
        self.issue(cn, vec![format!("{cn}.clients.test")], rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }
}
