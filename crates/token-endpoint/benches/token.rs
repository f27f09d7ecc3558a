//! One client_credentials token request through `TokenService::token`, without HTTP or TLS
//! (issue 7): form checks, client lookup, tls_client_auth (webpki chain validation + subject DN
//! rule), claims, ES256 signing, the group-committed audit hand-off (to a log that keeps
//! nothing) and the usage recorder. The chain is validated once and then found in the
//! `TrustAnchors` cache, as for a client that keeps its connection or its certificate; the cold
//! validation is `mtls/trust_anchors_verify_cold` in crates/http/benches/mtls.rs.
//! `cargo bench -p tessera-token-endpoint` (`-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};
use tessera_core::audit::{AuditEvent, AuditRecord};
use tessera_core::client::{
    CachedClient, ClientRecord, ClientStatus, RegisteredKeys as Registered, ScopeGrant, ScopeState,
};
use tessera_core::keys::{KeyTimeline, RotationPolicy, SignerSource, SigningAlg, TokenSigner};
use tessera_core::{ClientId, Issuer, KeyId, OsRng, SystemClock, UnixTime};
use tessera_http::PeerCertificates;
use tessera_http::mtls::TrustAnchors;
use tessera_jose::{Jwk, KeyEncryptionKey, KeySet, LoadedKey};
use tessera_store::{AuditLog, AuditSink, ClientCache, MemoryStore, StoreError, UsageRecorder};
use tessera_token_endpoint::auth::Form;
use tessera_token_endpoint::{ClientKeys, TokenService, TokenSettings};

const SUBJECT: &str = "CN=demo-fintech-client,OU=demo-org-0001,O=Demo Fintech,C=GB";

/// An audit log that keeps nothing: measures the hand-off, not a database.
#[derive(Default)]
struct NullAudit(AtomicU64);

#[async_trait]
impl AuditLog for NullAudit {
    async fn append(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.0.fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn read(&self, _after: i64, _limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(Vec::new())
    }
}

struct Keys(Arc<KeySet>);

impl SignerSource for Keys {
    fn current(&self) -> Arc<dyn TokenSigner> {
        self.0.clone()
    }
}

struct RegisteredKeys;

#[async_trait]
impl ClientKeys for RegisteredKeys {
    async fn keys(&self, client: &CachedClient, _refresh: bool) -> Result<Vec<Jwk>, String> {
        let Some(Registered::Jwks(jwks)) = client.auth().keys() else { return Ok(vec![]) };
        let jwks: Value = serde_json::from_str(jwks).map_err(|e| e.to_string())?;
        let keys = jwks.get("keys").and_then(Value::as_array);
        keys.into_iter()
            .flatten()
            .map(|k| Jwk::from_map(k.as_object().cloned().unwrap_or_default()).map_err(|e| e.to_string()))
            .collect()
    }
}

fn key_set() -> KeySet {
    let kek = KeyEncryptionKey::from_bytes([7; 32]);
    let km = tessera_jose::generate(SigningAlg::ES256, KeyId::new("bench-1")).expect("key");
    let loaded = LoadedKey {
        timeline: KeyTimeline {
            kid: KeyId::new("bench-1"),
            alg: SigningAlg::ES256,
            created_at: UnixTime(0),
            activates_at: UnixTime(0),
        },
        public_jwk: serde_json::to_string(km.public_jwk.as_ref()).expect("jwk"),
        private_jwe: kek.encrypt_jwk(&km.private_jwk).expect("jwe"),
    };
    let policy = RotationPolicy { prepublication_secs: 60, retention_secs: 600 };
    KeySet::build([loaded], &kek, UnixTime(10), policy).expect("key set")
}

fn client(id: &str, metadata: Value) -> ClientRecord {
    let now = UnixTime(1_700_000_000);
    ClientRecord {
        client_id: ClientId::new(id),
        status: ClientStatus::Active,
        status_reason: None,
        org_id: "demo-org-0001".into(),
        org_name: "Demo Fintech".into(),
        software_id: "software-1".into(),
        directory: "directory".into(),
        purpose: "bench".into(),
        risk_tier: "low".into(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        last_used_at: None,
        tokens_not_before: None,
        registration_token_hash: String::new(),
        ssa_jti: None,
        transport_cert_subject: SUBJECT.into(),
        scopes: vec![ScopeGrant {
            scope: "accounts:read".into(),
            state: ScopeState::Granted,
            rule: "bench".into(),
            decided_at: now,
            reason: None,
        }],
        metadata: metadata.as_object().cloned().unwrap_or_default(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    // PKI: a P-256 CA and a client certificate with the registered subject (like dev mode).
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Bench CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
    let mut p = rcgen::CertificateParams::new(vec!["client.demo-fintech.example".to_string()]).expect("params");
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "GB");
    dn.push(rcgen::DnType::OrganizationName, "Demo Fintech");
    dn.push(rcgen::DnType::OrganizationalUnitName, "demo-org-0001");
    dn.push(rcgen::DnType::CommonName, "demo-fintech-client");
    p.distinguished_name = dn;
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = p.signed_by(&leaf_key, &ca).expect("leaf").der().to_vec();
    let raw = leaf_key.public_key_raw();
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let self_signed_jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64u.encode(&raw[1..33]),
        "y": b64u.encode(&raw[33..65]), "x5c": [STANDARD.encode(&leaf)] });

    let (service, null) = rt.block_on(async {
        let clients = Arc::new(ClientCache::new());
        clients.put(client(
            "pki-client",
            json!({ "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": SUBJECT }),
        ));
        clients.put(client(
            "self-signed-client",
            json!({ "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": { "keys": [self_signed_jwk] } }),
        ));
        let null = Arc::new(NullAudit::default());
        let settings = TokenSettings {
            default_audience: "https://api.bank.example".into(),
            resources: vec![],
            tier_lifetimes: Default::default(),
            default_lifetime_secs: 300,
            max_lifetime_secs: 900,
            accept_token_endpoint_audience: false,
        };
        let service = TokenService::new(
            Issuer::parse("https://as.bank.example").expect("issuer"),
            settings,
            clients,
            TrustAnchors::from_ders(&[CertificateDer::from(ca.der().to_vec())]).expect("anchors"),
            Arc::new(RegisteredKeys),
            Arc::new(MemoryStore::new()),
            Arc::new(Keys(Arc::new(key_set()))),
            AuditSink::start(null.clone()),
            UsageRecorder::new(60),
            Arc::new(SystemClock),
            Arc::new(OsRng),
        );
        (service, null)
    });
    let peer = PeerCertificates::from_chain(vec![CertificateDer::from(leaf.clone())]);
    let form =
        |id: &str| Form(vec![("grant_type".into(), "client_credentials".into()), ("client_id".into(), id.into())]);
    let (pki_form, ss_form) = (form("pki-client"), form("self-signed-client"));
    rt.block_on(service.token(&pki_form, false, &peer)).expect("tls_client_auth token");
    rt.block_on(service.token(&ss_form, false, &peer)).expect("self-signed token");

    let mut g = c.benchmark_group("token_service");
    g.bench_function("client_credentials_tls_client_auth_es256", |b| {
        b.iter(|| black_box(rt.block_on(service.token(&pki_form, false, &peer)).expect("token")))
    });
    g.bench_function("client_credentials_self_signed_es256", |b| {
        b.iter(|| black_box(rt.block_on(service.token(&ss_form, false, &peer)).expect("token")))
    });
    g.bench_function("authenticate_only_tls_client_auth", |b| {
        let creds =
            tessera_token_endpoint::auth::Credentials { form: &pki_form, authorization_header: false, peer: &peer };
        b.iter(|| black_box(rt.block_on(service.authenticate(&creds, UnixTime(1_800_000_000))).expect("auth")))
    });
    g.finish();
    assert!(null.0.load(Ordering::Relaxed) > 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
