//! Signing and verifying access tokens with the server's key set, per algorithm (issue 7).
//! `cargo bench -p tessera-jose` (add `-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use tessera_core::keys::{KeyTimeline, RotationPolicy, SigningAlg, TokenSigner};
use tessera_core::{KeyId, UnixTime};
use tessera_jose::{KeyEncryptionKey, KeySet, LoadedKey, generate};

const POLICY: RotationPolicy = RotationPolicy { prepublication_secs: 60, retention_secs: 600 };

fn key_set(alg: SigningAlg) -> KeySet {
    let kek = KeyEncryptionKey::from_bytes([7; 32]);
    let km = generate(alg, KeyId::new("bench-1")).expect("key");
    let loaded = LoadedKey {
        timeline: KeyTimeline { kid: KeyId::new("bench-1"), alg, created_at: UnixTime(0), activates_at: UnixTime(0) },
        public_jwk: serde_json::to_string(km.public_jwk.as_ref()).expect("jwk"),
        private_jwe: kek.encrypt_jwk(&km.private_jwk).expect("jwe"),
    };
    KeySet::build([loaded], &kek, UnixTime(10), POLICY).expect("key set")
}

/// The claims the token endpoint builds (crates/token-endpoint/src/service.rs), same shapes.
fn claims(i: u64) -> Map<String, Value> {
    let now = 1_800_000_000i64;
    let mut c = Map::new();
    c.insert("iss".into(), json!("https://as.bank.example"));
    c.insert("sub".into(), json!("Xq3v7yV0m8GJb2kTq1x9Zw"));
    c.insert("client_id".into(), json!("Xq3v7yV0m8GJb2kTq1x9Zw"));
    c.insert("aud".into(), json!("https://api.bank.example"));
    c.insert("iat".into(), json!(now));
    c.insert("nbf".into(), json!(now));
    c.insert("exp".into(), json!(now + 300));
    c.insert("jti".into(), json!(format!("jti-{i:020}-abcdefgh")));
    c.insert("scope".into(), json!("accounts:read balances:read"));
    c.insert("cnf".into(), json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }));
    c
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jose");
    g.bench_function("claims_build", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            black_box(claims(i))
        })
    });
    for alg in SigningAlg::ALL {
        let set = key_set(alg);
        let mut i = 0;
        g.bench_function(format!("claims_and_sign/{}", alg.as_str()), |b| {
            b.iter(|| {
                i += 1;
                black_box(set.sign("at+jwt", &claims(i)).expect("sign"))
            })
        });
        let token = set.sign("at+jwt", &claims(0)).expect("sign").compact;
        g.bench_function(format!("verify/{}", alg.as_str()), |b| {
            b.iter(|| black_box(set.verify(black_box(&token), "at+jwt").expect("verify")))
        });
        // The path of software statements and private_key_jwt assertions: a verifier built from
        // the JWK on every call (crates/jose/src/verify.rs `verify_with_jwks`).
        let jwks = set.published().to_vec();
        g.bench_function(format!("verify_with_jwks/{}", alg.as_str()), |b| {
            b.iter(|| {
                black_box(tessera_jose::verify_with_jwks(black_box(&token), &jwks, Some("at+jwt")).expect("verify"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
