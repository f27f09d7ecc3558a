//! tls_client_auth chain validation (issue 7): the cached path every request after the first on a
//! chain takes, the cold path (webpki), and its pieces. `cargo bench -p tessera-http` (add `-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, UnixTime as PkiTime};
use tessera_core::UnixTime;
use tessera_http::PeerCertificates;
use tessera_http::mtls::TrustAnchors;

/// A P-256 CA and a client certificate it issued, like dev mode's PKI.
fn pki() -> (CertificateDer<'static>, CertificateDer<'static>) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, "Bench CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca");
    let mut p = CertificateParams::new(vec!["client.demo-fintech.example".to_string()]).expect("params");
    p.distinguished_name.push(DnType::CountryName, "GB");
    p.distinguished_name.push(DnType::OrganizationName, "Demo Fintech");
    p.distinguished_name.push(DnType::OrganizationalUnitName, "demo-org-0001");
    p.distinguished_name.push(DnType::CommonName, "demo-fintech-client");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = p.signed_by(&KeyPair::generate().expect("key"), &ca).expect("leaf").der().clone();
    (ca.der().clone(), leaf)
}

fn bench(c: &mut Criterion) {
    let (ca, leaf) = pki();
    let anchors = TrustAnchors::from_ders(std::slice::from_ref(&ca)).expect("anchors");
    let peer = PeerCertificates::from_chain(vec![leaf.clone()]);
    let now = UnixTime(1_900_000_000);
    anchors.verify(&peer, now).expect("valid");
    let mut g = c.benchmark_group("mtls");
    // The per-request check on a connection whose chain was validated before (a cache hit:
    // crates/http/src/mtls.rs keeps validated chains by hash until the leaf expires, 10 min at most).
    g.bench_function("trust_anchors_verify_cached", |b| {
        b.iter(|| black_box(anchors.verify(black_box(&peer), now).expect("ok")))
    });
    // The first request with a chain: webpki path building + signature, then CertFacts::from_der.
    g.bench_function("trust_anchors_verify_cold", |b| {
        b.iter_batched(
            || TrustAnchors::from_ders(std::slice::from_ref(&ca)).expect("anchors"),
            |fresh| black_box(fresh.verify(&peer, now).expect("ok")),
            criterion::BatchSize::SmallInput,
        )
    });

    // Its pieces.
    g.bench_function("aws_lc_default_provider_construction", |b| {
        b.iter(|| black_box(rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all.len()))
    });
    let webpki_anchor = webpki::anchor_from_trusted_cert(&ca).expect("anchor").to_owned();
    let algs = rustls::crypto::aws_lc_rs::default_provider().signature_verification_algorithms.all;
    let time = PkiTime::since_unix_epoch(std::time::Duration::from_secs(1_900_000_000));
    g.bench_function("webpki_verify_for_usage_only", |b| {
        b.iter(|| {
            let ee = webpki::EndEntityCert::try_from(black_box(&leaf)).expect("ee");
            black_box(
                ee.verify_for_usage(
                    algs,
                    std::slice::from_ref(&webpki_anchor),
                    &[],
                    time,
                    webpki::KeyUsage::client_auth(),
                    None,
                    None,
                )
                .is_ok(),
            )
        })
    });
    // For comparison with josekit/OpenSSL (crates/jose benches): P-256 signing and a bare
    // signature check with aws-lc-rs, which rustls already links.
    let key = KeyPair::generate().expect("key");
    let der = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).expect("pkcs8");
    let signing = rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&der).expect("ecdsa");
    let signer = signing.choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256]).expect("scheme");
    let message = [0x5a_u8; 600];
    g.bench_function("aws_lc_p256_sign", |b| b.iter(|| black_box(signer.sign(black_box(&message)).expect("sign"))));
    let signature = signer.sign(&message).expect("sign");
    let p256 = algs
        .iter()
        .find(|a| {
            a.public_key_alg_id() == rustls_pki_types::alg_id::ECDSA_P256
                && a.signature_alg_id() == rustls_pki_types::alg_id::ECDSA_SHA256
        })
        .expect("ECDSA P-256 SHA-256");
    let public = key.public_key_raw().to_vec();
    assert!(p256.verify_signature(&public, &message, &signature).is_ok());
    g.bench_function("aws_lc_p256_verify", |b| {
        b.iter(|| black_box(p256.verify_signature(black_box(&public), &message, &signature).is_ok()))
    });
    g.bench_function("cert_facts_from_der", |b| {
        b.iter(|| black_box(tessera_core::cert::CertFacts::from_der(black_box(leaf.as_ref())).expect("facts")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
