//! The per-request certificate work of tls_client_auth (issue 7): thumbprint, reading the
//! certificate, parsing the registered DN and matching it.
//! `cargo bench -p tessera-core` (add `-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera_core::cert::{CertFacts, SubjectRule};
use tessera_core::dn::DistinguishedName;
use tessera_core::thumbprint::x5t_s256;

const SUBJECT: &str = "CN=demo-fintech-client,OU=demo-org-0001,O=Tessera Dev Demo Fintech,C=GB";

/// A client certificate shaped like dev mode's (P-256, four RDNs, one DNS SAN).
fn client_cert() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(vec!["client.demo-fintech.example".to_string()]).expect("params");
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CountryName, "GB");
    dn.push(rcgen::DnType::OrganizationName, "Tessera Dev Demo Fintech");
    dn.push(rcgen::DnType::OrganizationalUnitName, "demo-org-0001");
    dn.push(rcgen::DnType::CommonName, "demo-fintech-client");
    p.distinguished_name = dn;
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    p.self_signed(&key).expect("cert").der().to_vec()
}

fn bench(c: &mut Criterion) {
    let der = client_cert();
    let facts = CertFacts::from_der(&der).expect("facts");
    let registered = DistinguishedName::parse_rfc4514(SUBJECT).expect("dn");
    assert!(registered.matches(&facts.subject));
    let mut g = c.benchmark_group("cert");
    g.bench_function("x5t_s256", |b| b.iter(|| black_box(x5t_s256(black_box(&der)))));
    g.bench_function("dn_parse_rfc4514", |b| {
        b.iter(|| black_box(DistinguishedName::parse_rfc4514(black_box(SUBJECT)).expect("dn")))
    });
    g.bench_function("dn_matches", |b| b.iter(|| black_box(registered.matches(black_box(&facts.subject)))));
    g.bench_function("cert_facts_from_der", |b| {
        b.iter(|| black_box(CertFacts::from_der(black_box(&der)).expect("facts")))
    });
    // What crates/token-endpoint/src/auth.rs does per request after chain validation: parse the
    // registered rule from the client's metadata, then match.
    g.bench_function("subject_rule_parse_and_match", |b| {
        b.iter(|| {
            let rule = SubjectRule::from_metadata("tls_client_auth_subject_dn", black_box(SUBJECT)).expect("rule");
            black_box(rule.matches(&facts))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
