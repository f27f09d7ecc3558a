//! A cluster: three `tessera` processes on one PostgreSQL and one Redis. A revocation or a client
//! change on one node reaches the others within a second; with Redis gone, a revoked token is
//! still never reported active.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_core::keys::SigningAlg;
use tessera_testkit::pg::TestPg;
use tessera_testkit::redis::{KillableRedis, TestRedis};
use tessera_testkit::{Issued, Tessera, TestPki, https_client};

use crate::common::bin;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub ca: Vec<u8>,
    pub pki: TestPki,
    directory_key: tessera_jose::Jwk,
}

/// Gateways get `introspection` granted by this test policy (there is no reviewer here).
const TEST_POLICY_EXTRA: &str = r#"
@id("test-gateways-granted")
@tier("medium")
permit (principal, action == Tessera::Action::"grant", resource == Tessera::Scope::"introspection")
when { principal.roles.contains("GATEWAY") };
"#;

pub fn env(database_url: &str, redis: Option<(&str, &str)>) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new(&dir.path().join("pki"), "cluster-ca");
    let server = pki.server("server");
    let kek = dir.path().join("kek.key");
    std::fs::write(&kek, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n").unwrap();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = tessera_jose::generate(SigningAlg::ES256, tessera_core::KeyId::new("test-directory-1")).unwrap();
    let jwks = dir.path().join("directory.jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.public_jwk.as_ref()]}).to_string()).unwrap();
    let policy = dir.path().join("policy.cedar");
    std::fs::write(&policy, format!("{}\n{TEST_POLICY_EXTRA}", include_str!("../../../../deploy/onboarding.cedar")))
        .unwrap();
    let redis =
        redis.map(|(url, prefix)| format!("[redis]\nurl = \"{url}\"\nprefix = \"{prefix}\"\n")).unwrap_or_default();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            r#"issuer = "https://tessera.cluster.test"

[server]
listen = "127.0.0.1:0"
tls_cert_file = "{cert}"
tls_key_file = "{key}"
client_ca_files = ["{ca}"]

[database]
url = "{database_url}"

[keys]
encryption_key_file = "{kek}"

[registration]
policy_file = "{policy}"

[[registration.directories]]
issuer = "test-directory"
jwks_file = "{jwks}"
algorithms = ["ES256"]

{redis}"#,
            cert = server.cert.display(),
            key = server.key.display(),
            ca = pki.ca_cert.display(),
            kek = kek.display(),
            policy = policy.display(),
            jwks = jwks.display(),
        ),
    )
    .unwrap();
    let ca = std::fs::read(&pki.ca_cert).unwrap();
    Env { dir, config, ca, pki, directory_key: key.private_jwk }
}

impl Env {
    pub fn node(&self, name: &str) -> Tessera {
        Tessera::start_config(&bin(), &self.config, &self.dir.path().join(name), &[], 1)
    }

    pub fn ssa(&self, software_id: &str, org_id: &str, roles: &[&str]) -> String {
        let mut jti = [0u8; 12];
        getrandom_fill(&mut jti);
        let claims = json!({
            "iss": "test-directory", "iat": now(), "jti": hex(&jti),
            "software_id": software_id, "org_id": org_id, "org_name": format!("Org {org_id}"),
            "org_status": "Active", "software_roles": roles,
        });
        tessera_jose::sign_with_jwk(SigningAlg::ES256, &self.directory_key, "JWT", claims.as_object().unwrap()).unwrap()
    }

    pub fn client(&self, cert: &Issued) -> reqwest::Client {
        https_client(&self.ca, Some((&cert.cert_pem, &cert.key_pem)))
    }
}

fn getrandom_fill(b: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom").unwrap().read_exact(b).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

pub async fn register(node: &Tessera, client: &reqwest::Client, ssa: &str, scope: &str) -> Value {
    let resp = client
        .post(node.url("/register"))
        .json(&json!({"software_statement": ssa, "scope": scope}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    resp.json().await.unwrap()
}

pub async fn token(node: &Tessera, client: &reqwest::Client, client_id: &str) -> reqwest::Response {
    client
        .post(node.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id)])
        .send()
        .await
        .unwrap()
}

pub async fn access_token(node: &Tessera, client: &reqwest::Client, client_id: &str) -> String {
    let resp = token(node, client, client_id).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// The introspection response (status, body).
pub async fn introspect(node: &Tessera, gateway: &reqwest::Client, gateway_id: &str, tok: &str) -> (u16, Value) {
    let resp =
        gateway.post(node.url("/introspect")).form(&[("client_id", gateway_id), ("token", tok)]).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls `node` until the token's `active` equals `want`; returns how long it took.
async fn until_active(
    node: &Tessera,
    gateway: &reqwest::Client,
    gateway_id: &str,
    tok: &str,
    want: bool,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = introspect(node, gateway, gateway_id, tok).await;
        if status == 200 && body["active"] == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "node did not report active={want} within {limit:?}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Actors {
    fintech: Issued,
    fintech_id: String,
    fintech_rat: String,
    gateway: reqwest::Client,
    gateway_id: String,
}

async fn actors(e: &Env, a: &Tessera) -> Actors {
    let fintech = e.pki.client_with_ou("fintech", "fintech-app", "org-fin", "Fintech Ltd");
    let gw = e.pki.client_with_ou("gateway", "gateway-1", "org-bank", "Bank API Gateway");
    let reg = register(a, &e.client(&fintech), &e.ssa("fintech-app", "org-fin", &["AISP"]), "accounts:read").await;
    let greg = register(a, &e.client(&gw), &e.ssa("gateway-1", "org-bank", &["GATEWAY"]), "introspection").await;
    assert_eq!(greg["scope"], "introspection", "the test policy grants introspection to gateways: {greg}");
    Actors {
        fintech,
        fintech_id: reg["client_id"].as_str().unwrap().to_owned(),
        fintech_rat: reg["registration_access_token"].as_str().unwrap().to_owned(),
        gateway: e.client(&gw),
        gateway_id: greg["client_id"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test]
async fn three_nodes_share_revocation_and_suspension_within_a_second() {
    let (Some(pg), Some(redis)) = (TestPg::new(), TestRedis::new()) else {
        eprintln!("CLUSTER SUITE SKIPPED: needs PostgreSQL and Redis");
        return;
    };
    let e = env(pg.url(), Some((redis.url(), redis.prefix())));
    let a = e.node("a");
    let b = e.node("b");
    let c = e.node("c");
    let x = actors(&e, &a).await;
    let fintech = e.client(&x.fintech);

    // A client registered on A is known on B and C (change notices), without a restart.
    let tok = access_token(&a, &fintech, &x.fintech_id).await;
    until_active(&c, &x.gateway, &x.gateway_id, &tok, true, Duration::from_secs(5)).await;
    until_active(&b, &x.gateway, &x.gateway_id, &tok, true, Duration::from_secs(5)).await;

    // Issued on A, revoked on B, inactive on C within one second (RFC 7009 + cluster notices).
    let resp = fintech
        .post(b.url("/revoke"))
        .form(&[("client_id", x.fintech_id.as_str()), ("token", tok.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let took = until_active(&c, &x.gateway, &x.gateway_id, &tok, false, Duration::from_secs(1)).await;
    eprintln!("revocation reached node C in {took:?}");
    assert_eq!(introspect(&a, &x.gateway, &x.gateway_id, &tok).await.1, json!({"active": false}));

    // Suspension (here: the client deletes itself, RFC 7592, which offboards it) on B makes a
    // token issued earlier on A inactive on C within one second.
    let tok2 = access_token(&a, &fintech, &x.fintech_id).await;
    until_active(&c, &x.gateway, &x.gateway_id, &tok2, true, Duration::from_secs(5)).await;
    let resp =
        fintech.delete(b.url(&format!("/register/{}", x.fintech_id))).bearer_auth(&x.fintech_rat).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let took = until_active(&c, &x.gateway, &x.gateway_id, &tok2, false, Duration::from_secs(1)).await;
    eprintln!("offboarding reached node C in {took:?}");
    // And no node issues it a token any more.
    let refused = token(&c, &fintech, &x.fintech_id).await;
    assert_eq!(refused.status(), 400);
    assert_eq!(refused.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn without_redis_a_revoked_token_is_never_reported_active() {
    let Some(pg) = TestPg::new() else {
        eprintln!("CLUSTER SUITE SKIPPED: needs PostgreSQL");
        return;
    };
    let Some(mut redis) = KillableRedis::start() else { return };
    let e = env(pg.url(), Some((&redis.url(), "tessera-failure")));
    let a = e.node("a");
    let b = e.node("b");
    let x = actors(&e, &a).await;
    let fintech = e.client(&x.fintech);
    let tok = access_token(&a, &fintech, &x.fintech_id).await;
    until_active(&b, &x.gateway, &x.gateway_id, &tok, true, Duration::from_secs(5)).await;

    redis.stop();
    // Wait until node B has noticed (its readiness reports Redis unreachable).
    let plain = https_client(&e.ca, None);
    let start = Instant::now();
    loop {
        let ready: Value = plain.get(b.url("/readyz")).send().await.unwrap().json().await.unwrap();
        if ready["checks"]["redis"] == "unreachable" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "node B never noticed Redis is gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Token issuance continues without Redis (certificate authentication needs no shared state).
    let tok_during = access_token(&a, &fintech, &x.fintech_id).await;

    // Revoked on A: durable in SQL; the notice cannot be sent. B must not report it active.
    let resp = fintech
        .post(a.url("/revoke"))
        .form(&[("client_id", x.fintech_id.as_str()), ("token", tok.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = introspect(&b, &x.gateway, &x.gateway_id, &tok).await;
    assert!(
        status == 503 || (status == 200 && body == json!({"active": false})),
        "revoked token on B: {status} {body}"
    );
    // A token that is fine stays active on B (from SQL).
    let (status, body) = introspect(&b, &x.gateway, &x.gateway_id, &tok_during).await;
    assert_eq!((status, body["active"].clone()), (200, json!(true)));

    // Redis back: B resubscribes, rebuilds its caches, and follows notices again.
    redis.restart();
    let start = Instant::now();
    loop {
        let ready: Value = plain.get(b.url("/readyz")).send().await.unwrap().json().await.unwrap();
        if ready["checks"]["redis"] == "ok" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "node B never reconnected to Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = fintech
        .post(a.url("/revoke"))
        .form(&[("client_id", x.fintech_id.as_str()), ("token", tok_during.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    until_active(&b, &x.gateway, &x.gateway_id, &tok_during, false, Duration::from_secs(5)).await;
    let _ = Path::new("/");
}

#[tokio::test]
async fn postgres_outage_gives_503_and_recovers_without_restart() {
    let pg = match tessera_testkit::pg::StoppablePg::start() {
        Ok(pg) => pg,
        Err(e) => {
            if std::env::var_os("TESSERA_TEST_REQUIRE_PG").is_some() {
                panic!("a private PostgreSQL is required for the outage test: {e}");
            }
            eprintln!("POSTGRES SUITE SKIPPED: outage test: {e}");
            return;
        }
    };
    let e = env(pg.url(), None);
    // Fail fast while the database is away.
    let text =
        std::fs::read_to_string(&e.config).unwrap().replace("[database]\n", "[database]\nconnect_timeout_secs = 1\n");
    std::fs::write(&e.config, text).unwrap();
    let a = e.node("a");
    let fintech = e.pki.client_with_ou("fintech", "fintech-app", "org-fin", "Fintech Ltd");
    let client = e.client(&fintech);
    register(&a, &client, &e.ssa("fintech-app", "org-fin", &["AISP"]), "accounts:read").await;

    pg.stop().unwrap();
    let resp = client
        .post(a.url("/register"))
        .json(&json!({"software_statement": e.ssa("fintech-app", "org-fin", &["AISP"]), "scope": "accounts:read"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "registration with the database down");
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let plain = https_client(&e.ca, None);
    let ready = plain.get(a.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // Discovery and JWKS come from memory and keep working.
    assert_eq!(plain.get(a.url("/jwks")).send().await.unwrap().status(), 200);

    pg.resume().unwrap();
    let start = Instant::now();
    loop {
        let resp = client
            .post(a.url("/register"))
            .json(&json!({"software_statement": e.ssa("fintech-app", "org-fin", &["AISP"]), "scope": "accounts:read"}))
            .send()
            .await
            .unwrap();
        if resp.status() == 201 {
            break;
        }
        assert_eq!(resp.status(), 503);
        assert!(start.elapsed() < Duration::from_secs(20), "registration did not recover after the database returned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(plain.get(a.url("/readyz")).send().await.unwrap().status(), 200);
}
