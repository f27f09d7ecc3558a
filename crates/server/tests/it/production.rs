//! Production mode: `serve --config` on PostgreSQL with a test (non-dev) PKI, and the RFC 8705 §5
//! mTLS alias listener.

use tessera_testkit::pg::TestPg;
use tessera_testkit::{Tessera, TestPki, https_client};

use crate::common::{bin, get_json};
use crate::config_errors::write_valid_config;

#[tokio::test]
async fn postgres_node_with_mtls_alias() {
    let Some(pg) = TestPg::new() else {
        eprintln!("POSTGRES SUITE SKIPPED: production::postgres_node_with_mtls_alias did not run");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let extra = "";
    let config = write_valid_config(dir.path(), extra);
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(&format!("sqlite://{}/tessera.db", dir.path().display()), pg.url()).replace(
        "client_ca_files",
        "mtls_alias = { listen = \"127.0.0.1:0\", base_url = \"https://mtls.as.test.example\" }\nclient_ca_files",
    );
    std::fs::write(&config, text).unwrap();

    let server = Tessera::start_config(&bin(), &config, dir.path(), &[], 2);
    let ca = std::fs::read(dir.path().join("pki/test-ca.pem")).unwrap();
    let c = https_client(&ca, None);
    let doc = get_json(&c, &server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(doc["issuer"], "https://as.test.example");
    assert_eq!(doc["jwks_uri"], "https://as.test.example/jwks");
    // RFC 8705 §5, checklist C.65
    assert_eq!(doc["mtls_endpoint_aliases"]["jwks_uri"], "https://mtls.as.test.example/jwks");
    let ready = get_json(&c, &server.url("/readyz")).await;
    assert_eq!(ready["checks"]["database"], "ok");

    // The alias listener requires a client certificate; the main one does not.
    let alias = &server.addresses[1];
    assert!(
        c.get(format!("{alias}/jwks")).send().await.is_err(),
        "alias listener must refuse a connection without certificate"
    );
    let pki = TestPki::new(&dir.path().join("pki"), "test-ca-2");
    let client = pki.client("fintech", "fintech-1", "Fintech One");
    let with_cert = https_client(&ca, Some((&client.cert_pem, &client.key_pem)));
    let resp = with_cert.get(format!("{alias}/jwks")).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // The keys live in PostgreSQL: a second node on the same database publishes the same JWKS.
    let jwks1 = get_json(&c, &server.url("/jwks")).await;
    let server2 = Tessera::start_config(&bin(), &config, &dir.path().join("node2"), &[], 2);
    let jwks2 = get_json(&c, &server2.url("/jwks")).await;
    assert_eq!(jwks1, jwks2);
}
