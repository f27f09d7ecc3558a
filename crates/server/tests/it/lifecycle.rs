//! Lifecycle governance end to end, with the real binary: the review queue, dormancy, suspension,
//! resumption and offboarding through `tessera` commands against a two-node cluster; the admin
//! API (administrator certificate only) in dev mode; the inventory export; and the audit chain
//! with a record edited directly in the database.

use std::future::Future;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tessera_testkit::pg::TestPg;
use tessera_testkit::process::run;
use tessera_testkit::redis::TestRedis;
use tessera_testkit::{Tessera, https_client};

use crate::cluster::{access_token, env, introspect, register, token};
use crate::common::{Dev, bin};

const DAY: i64 = 86_400;
/// `USER` for the command line, which records `cli:$USER` as the actor.
const OPERATOR: &str = "ops-alice";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn rfc3339(secs: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs as u64)).to_string()
}

/// `tessera ARGS` run to completion (as operator `OPERATOR`).
fn tessera(dir: &Path, args: &[&str]) -> Output {
    run(&bin(), args, dir, &[("USER", OPERATOR), ("RUST_LOG", "warn")])
}

/// `tessera ARGS`, which must succeed; its stdout.
fn tessera_ok(dir: &Path, args: &[&str]) -> String {
    let out = tessera(dir, args);
    assert!(
        out.status.success(),
        "tessera {args:?} exited with {:?} (signal {:?})\nstdout: {}\nstderr: {}",
        out.status.code(),
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Calls `probe` until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => {
                assert!(start.elapsed() < limit, "{what}: not within {limit:?}; last: {last}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A client credentials token request for `scope` (status, body).
async fn token_with_scope(node: &Tessera, client: &reqwest::Client, client_id: &str, scope: &str) -> (u16, Value) {
    let resp = client
        .post(node.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("scope", scope)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// Waits (up to 2 s: the change reaches every node through Redis and the change poller) until
/// `node` refuses the client a token with `unauthorized_client`; the error body.
async fn refused_token(node: &Tessera, client: &reqwest::Client, client_id: &str) -> Value {
    eventually("the node refuses the client a token", Duration::from_secs(2), || async {
        let resp = token(node, client, client_id).await;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 400 && body["error"] == "unauthorized_client" { Ok(body) } else { Err(format!("{status} {body}")) }
    })
    .await
}

/// The scenario on two nodes sharing PostgreSQL and Redis: every change is made with the
/// `tessera` command line against the database, and reaches both nodes.
#[tokio::test]
async fn review_dormancy_resumption_and_offboarding_across_a_cluster() {
    let (Some(pg), Some(redis)) = (TestPg::new(), TestRedis::new()) else {
        eprintln!("CLUSTER SUITE SKIPPED: needs PostgreSQL and Redis");
        return;
    };
    let e = env(pg.url(), Some((redis.url(), redis.prefix())));
    // The gateway (tier medium) must stay usable after the simulated 100 days; the fintech
    // (tier high: payments) has the default 90 days.
    let mut text = std::fs::read_to_string(&e.config).unwrap();
    text.push_str("\n[lifecycle]\ndefault_dormancy_days = 90\ndormancy_days = { medium = 3650 }\n");
    std::fs::write(&e.config, text).unwrap();
    let config = e.config.to_str().unwrap();
    let dir = e.dir.path();
    let a = e.node("a");
    let b = e.node("b");

    let fintech_cert = e.pki.client_with_ou("fintech", "fintech-app", "org-fin", "Fintech Ltd");
    let gateway_cert = e.pki.client_with_ou("gateway", "gateway-1", "org-bank", "Bank API Gateway");
    let fintech = e.client(&fintech_cert);
    let gateway = e.client(&gateway_cert);
    let reg =
        register(&a, &fintech, &e.ssa("fintech-app", "org-fin", &["AISP", "PISP"]), "accounts:read payments:write")
            .await;
    assert_eq!(reg["scope"], "accounts:read", "{reg}");
    assert_eq!(reg["pending_scopes"], json!(["payments:write"]), "{reg}");
    let id = reg["client_id"].as_str().unwrap().to_owned();
    let greg = register(&a, &gateway, &e.ssa("gateway-1", "org-bank", &["GATEWAY"]), "introspection").await;
    let gateway_id = greg["client_id"].as_str().unwrap().to_owned();

    // Read-only at once, on both nodes (B learns of the client through the change notice).
    let (status, body) = token_with_scope(&a, &fintech, &id, "accounts:read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "accounts:read");
    eventually("node B issues the read-only scope", Duration::from_secs(5), || async {
        match token_with_scope(&b, &fintech, &id, "accounts:read").await {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Payments wait for a human.
    for node in [&a, &b] {
        let (status, body) = token_with_scope(node, &fintech, &id, "payments:write").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")), "{body}");
        assert!(body["error_description"].as_str().unwrap().contains("review"), "{body}");
    }

    // The review queue, and the approval with the command line.
    let queue: Value =
        serde_json::from_str(&tessera_ok(dir, &["review", "list", "--json", "--config", config])).unwrap();
    let mine: Vec<&Value> = queue.as_array().unwrap().iter().filter(|r| r["client_id"] == id.as_str()).collect();
    assert_eq!(mine.len(), 1, "{queue}");
    assert_eq!(mine[0]["scope"], "payments:write");
    assert_eq!(mine[0]["rule"], "payments-need-review");
    tessera_ok(
        dir,
        &["review", "approve", &id, "payments:write", "--reason", "PISP licence checked", "--config", config],
    );
    for node in [&b, &a] {
        let body = eventually("the approved scope is issued", Duration::from_secs(2), || async {
            match token_with_scope(node, &fintech, &id, "payments:write").await {
                (200, body) => Ok(body),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(body["scope"], "payments:write");
    }
    let queue: Value =
        serde_json::from_str(&tessera_ok(dir, &["review", "list", "--json", "--config", config])).unwrap();
    assert!(queue.as_array().unwrap().iter().all(|r| r["client_id"] != id.as_str()), "{queue}");

    // A live token, active on both nodes.
    let live = access_token(&a, &fintech, &id).await;
    for node in [&a, &b] {
        eventually("the live token is active", Duration::from_secs(5), || async {
            match introspect(node, &gateway, &gateway_id, &live).await {
                (200, body) if body["active"] == true => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }

    // 100 days without use: the sweeper (as of then) suspends the fintech, not the gateway.
    let later = rfc3339(now() + 100 * DAY);
    let actions: Value =
        serde_json::from_str(&tessera_ok(dir, &["sweep", "--config", config, "--as-of", &later, "--json"])).unwrap();
    let actions = actions.as_array().unwrap();
    assert_eq!(actions.len(), 1, "only the fintech is dormant: {actions:?}");
    assert_eq!(actions[0]["client_id"], id.as_str());
    assert_eq!(actions[0]["action"], "suspend");
    assert!(actions[0]["rule"].as_str().unwrap().starts_with("dormant:"), "{actions:?}");
    // The token issued on A turns inactive on B.
    let start = Instant::now();
    eventually("the suspended client's token turns inactive on node B", Duration::from_secs(2), || async {
        match introspect(&b, &gateway, &gateway_id, &live).await {
            (200, body) if body == json!({"active": false}) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eprintln!("dormancy suspension reached node B in {:?}", start.elapsed());
    for node in [&a, &b] {
        let body = refused_token(node, &fintech, &id).await;
        assert!(body["error_description"].as_str().unwrap().contains("dormant"), "{body}");
    }
    let shown: Value =
        serde_json::from_str(&tessera_ok(dir, &["clients", "show", &id, "--json", "--config", config])).unwrap();
    assert_eq!(shown["status"], "suspended");
    assert!(shown["status_reason"].as_str().unwrap().starts_with("dormant:"), "{shown}");

    // Resumption: new tokens work (on both nodes); the token from before stays inactive.
    tessera_ok(dir, &["clients", "resume", &id, "--reason", "owner confirmed the need", "--config", config]);
    for (issuer, checker) in [(&b, &a), (&a, &b)] {
        // A token issued in the very second of the suspension is still covered by its cut-off
        // (whole seconds), hence a few attempts.
        eventually("a token issued after the resumption is active", Duration::from_secs(3), || async {
            let resp = token(issuer, &fintech, &id).await;
            if resp.status() != 200 {
                return Err(format!("token: {} {}", resp.status(), resp.text().await.unwrap()));
            }
            let fresh = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
            match introspect(checker, &gateway, &gateway_id, &fresh).await {
                (200, body) if body["active"] == true => Ok(()),
                other => Err(format!("introspection: {other:?}")),
            }
        })
        .await;
    }
    for node in [&a, &b] {
        assert_eq!(introspect(node, &gateway, &gateway_id, &live).await, (200, json!({"active": false})));
    }

    // Offboarding ends it for good.
    let last = access_token(&a, &fintech, &id).await;
    tessera_ok(dir, &["clients", "offboard", &id, "--reason", "contract ended", "--config", config]);
    for node in [&b, &a] {
        let body = refused_token(node, &fintech, &id).await;
        assert!(body["error_description"].as_str().unwrap().contains("offboarded"), "{body}");
    }
    for node in [&a, &b] {
        assert_eq!(introspect(node, &gateway, &gateway_id, &last).await, (200, json!({"active": false})));
    }
    let refused = tessera(dir, &["clients", "resume", &id, "--reason", "please", "--config", config]);
    assert!(!refused.status.success(), "resuming an offboarded client must fail");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("offboarded"), "{refused:?}");
    let shown: Value =
        serde_json::from_str(&tessera_ok(dir, &["clients", "show", &id, "--json", "--config", config])).unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["status_reason"].as_str()),
        (Some("offboarded"), Some("contract ended"))
    );

    // The audit trail names who did what, and the chain is intact.
    let export = tessera_ok(dir, &["audit", "export", "--config", config]);
    let events: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mine: Vec<(&str, &str)> = events
        .iter()
        .filter(|r| r["client_id"] == id.as_str() && r["kind"] != "token_issued")
        .map(|r| (r["kind"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    let cli = format!("cli:{OPERATOR}");
    assert_eq!(
        mine[mine.len() - 4..],
        [
            ("scope_reviewed", cli.as_str()),
            ("client_suspended", "sweeper"),
            ("client_resumed", cli.as_str()),
            ("client_offboarded", cli.as_str())
        ],
        "{mine:?}"
    );
    assert!(tessera_ok(dir, &["audit", "verify", "--config", config]).contains("intact"));
}

// --- the admin API -------------------------------------------------------------------------------

/// `tessera dev software-statement --data-dir D ARGS`.
fn statement(dev: &Dev, args: &[&str]) -> String {
    let data = dev.server.data_dir.to_str().unwrap();
    let mut all = vec!["dev", "software-statement", "--data-dir", data];
    all.extend_from_slice(args);
    tessera_ok(dev.dir.path(), &all).trim().to_owned()
}

/// Registers the demo software (with the demo client certificate); the client id.
async fn register_dev(dev: &Dev, args: &[&str], scope: &str, purpose: &str) -> String {
    let resp = dev
        .client_as("client")
        .post(dev.server.url("/register"))
        .json(&json!({"software_statement": statement(dev, args), "scope": scope, "purpose": purpose}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// A status, the cache-control header and the JSON body.
async fn call(req: reqwest::RequestBuilder) -> (u16, String, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
    (status, cache, body)
}

fn assert_api_error(reply: &(u16, String, Value), status: u16, code: &str) {
    assert_eq!(reply.0, status, "{}", reply.2);
    assert_eq!(reply.2["error"], code, "{}", reply.2);
    assert!(!reply.2["error_description"].as_str().unwrap_or("").is_empty(), "{}", reply.2);
    assert_eq!(reply.1, "no-store");
}

fn ids(body: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        body["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn admin_api_answers_only_an_administrator_and_records_its_subject() {
    let dev = Dev::start(&[]);
    let payer = register_dev(&dev, &["--roles", "AISP,PISP"], "accounts:read payments:write", "Payments").await;
    let reader =
        register_dev(&dev, &["--roles", "AISP", "--org-name", "Acme Budgeting"], "accounts:read", "Budgeting").await;
    let url = |p: &str| dev.server.url(&format!("/admin{p}"));
    let admin = dev.client_as("admin");
    let partner = dev.client_as("client");
    let admin_subject = dev.manifest["admin"]["subject"].as_str().unwrap().to_owned();

    // Who may call: an administrator's certificate only.
    assert_api_error(&call(partner.get(url("/clients"))).await, 403, "access_denied");
    let refused = call(partner.post(url(&format!("/clients/{payer}/suspend"))).json(&json!({"reason": "x"}))).await;
    assert_api_error(&refused, 403, "access_denied");
    assert_api_error(&call(dev.client().get(url("/clients"))).await, 401, "invalid_client");
    assert_api_error(&call(dev.client().post(url(&format!("/clients/{payer}/offboard")))).await, 401, "invalid_client");
    let (cert, key, _) = tessera_testkit::pki::self_signed_client("tessera-admin");
    let stranger = https_client(&dev.ca, Some((&cert, &key)));
    assert_api_error(&call(stranger.get(url("/clients"))).await, 401, "invalid_client");
    // Malformed input from an unauthenticated caller is still refused for the caller first.
    let r = call(dev.client().post(url(&format!("/clients/{payer}/extend"))).body("not json")).await;
    assert_api_error(&r, 401, "invalid_client");

    // List and its filters.
    let (status, cache, all) = call(admin.get(url("/clients"))).await;
    assert_eq!((status, cache.as_str()), (200, "no-store"));
    assert_eq!(ids(&all), sorted(vec![&payer, &reader, "dev-gateway"]));
    let get = |q: &str| call(admin.get(url(&format!("/clients{q}"))));
    assert_eq!(ids(&get("?tier=high").await.2), [payer.as_str()]);
    assert_eq!(ids(&get("?tier=low").await.2), [reader.as_str()]);
    assert_eq!(ids(&get("?owner=acme").await.2), [reader.as_str()]);
    assert_eq!(ids(&get("?owner=demo-org-0001").await.2), sorted(vec![&payer, &reader]));
    assert_eq!(ids(&get("?owner=tessera-dev").await.2), ["dev-gateway"]);
    assert_eq!(ids(&get("?status=active&tier=high").await.2), [payer.as_str()]);
    assert_eq!(ids(&get("?status=suspended").await.2), Vec::<String>::new());
    assert_api_error(&get("?status=paused").await, 400, "invalid_request");
    assert_api_error(&get("?dormant_for_days=soon").await, 400, "invalid_request");

    // Show.
    let (status, _, shown) = call(admin.get(url(&format!("/clients/{payer}")))).await;
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["purpose"], "Payments");
    assert_eq!(shown["risk_tier"], "high");
    assert_eq!(shown["granted_scopes"], json!(["accounts:read"]));
    assert_eq!(shown["pending_scopes"], json!(["payments:write"]));
    assert_eq!(shown["certificate_subject"], dev.manifest["client"]["subject"]);
    assert_api_error(&call(admin.get(url("/clients/no-such-client"))).await, 404, "not_found");
    assert_api_error(&call(admin.get(url("/no-such-endpoint"))).await, 404, "not_found");

    // Suspend: a reason is required; then tokens are refused at once.
    let fintech = dev.client_as("client");
    let gateway = dev.client_as("gateway");
    let live = access_token(&dev.server, &fintech, &payer).await;
    assert_eq!(introspect(&dev.server, &gateway, "dev-gateway", &live).await.1["active"], true);
    let suspend = url(&format!("/clients/{payer}/suspend"));
    assert_api_error(&call(admin.post(&suspend)).await, 400, "invalid_request");
    assert_api_error(&call(admin.post(&suspend).json(&json!({"reason": "  "}))).await, 400, "invalid_request");
    let (status, _, body) = call(admin.post(&suspend).json(&json!({"reason": "incident 42"}))).await;
    assert_eq!(
        (status, body["status"].as_str(), body["status_reason"].as_str()),
        (200, Some("suspended"), Some("incident 42"))
    );
    assert_api_error(&call(admin.post(&suspend).json(&json!({"reason": "again"}))).await, 409, "conflict");
    let resp = token(&dev.server, &fintech, &payer).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    assert_eq!(introspect(&dev.server, &gateway, "dev-gateway", &live).await.1, json!({"active": false}));
    assert_eq!(ids(&get("?status=suspended").await.2), [payer.as_str()]);

    // Resume (no reason needed), once.
    let resume = url(&format!("/clients/{payer}/resume"));
    let (status, _, body) = call(admin.post(&resume)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("active")));
    assert_api_error(&call(admin.post(&resume)).await, 409, "conflict");

    // Extend.
    let extend = url(&format!("/clients/{payer}/extend"));
    let until = now() + 365 * DAY;
    let (status, _, body) = call(admin.post(&extend).json(&json!({"until": until}))).await;
    assert_eq!((status, body["expires_at"].as_i64()), (200, Some(until)));
    assert_api_error(&call(admin.post(&extend).json(&json!({"until": now() - 60}))).await, 400, "invalid_request");
    assert_api_error(&call(admin.post(&extend)).await, 400, "invalid_request");
    assert_api_error(&call(admin.post(&extend).json(&json!({"until": "next year"}))).await, 400, "invalid_request");

    // The review queue, and an approval that is effective at once.
    let (status, _, queue) = call(admin.get(url("/reviews"))).await;
    assert_eq!(status, 200);
    let pending: Vec<(&str, &str)> = queue["reviews"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["client_id"].as_str().unwrap(), r["scope"].as_str().unwrap()))
        .collect();
    assert_eq!(pending, [(payer.as_str(), "payments:write")]);
    assert_eq!(queue["reviews"][0]["rule"], "payments-need-review");
    let (status, body) = token_with_scope(&dev.server, &fintech, &payer, "payments:write").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    let approve = url(&format!("/reviews/{payer}/payments:write/approve"));
    assert_api_error(&call(admin.post(&approve)).await, 400, "invalid_request");
    let (status, _, body) = call(admin.post(&approve).json(&json!({"reason": "PISP licence checked"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["granted_scopes"], json!(["accounts:read", "payments:write"]));
    assert_api_error(&call(admin.post(&approve).json(&json!({"reason": "again"}))).await, 409, "conflict");
    let deny = url(&format!("/reviews/{reader}/payments:write/deny"));
    assert_api_error(&call(admin.post(&deny).json(&json!({"reason": "x"}))).await, 400, "invalid_request");
    assert_eq!(call(admin.get(url("/reviews"))).await.2, json!({"reviews": []}));
    let (status, body) = token_with_scope(&dev.server, &fintech, &payer, "payments:write").await;
    assert_eq!((status, body["scope"].as_str()), (200, Some("payments:write")), "{body}");

    // Offboarding, final.
    let offboard = url(&format!("/clients/{reader}/offboard"));
    assert_api_error(&call(admin.post(&offboard)).await, 400, "invalid_request");
    let (status, _, body) = call(admin.post(&offboard).json(&json!({"reason": "contract ended"}))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("offboarded")));
    assert_api_error(&call(admin.post(url(&format!("/clients/{reader}/resume")))).await, 409, "conflict");

    // Inventory.
    let (status, _, inventory) = call(admin.get(url("/inventory?format=json"))).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&inventory), sorted(vec![&payer, &reader, "dev-gateway"]));
    assert_eq!(call(admin.get(url("/inventory"))).await.2, inventory, "JSON is the default");
    let resp = admin.get(url("/inventory?format=csv")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let csv = resp.text().await.unwrap();
    let rows = parse_csv(&csv);
    assert_eq!(rows.len(), 4, "{csv}");
    assert_eq!(rows[0][0], "client_id");
    assert_api_error(&call(admin.get(url("/inventory?format=xml"))).await, 400, "invalid_request");

    // The audit chain, and who did what.
    let (status, _, verify) = call(admin.get(url("/audit/verify"))).await;
    assert_eq!(status, 200);
    assert_eq!(verify["intact"], true, "{verify}");
    assert!(verify["records"].as_i64().unwrap() >= 8, "{verify}");
    let resp = admin.get(url(&format!("/audit/export?since={}", now() - 3600))).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let api_export: Vec<Value> = resp.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!api_export.is_empty());
    assert_api_error(&call(admin.get(url("/audit/export?since=yesterday"))).await, 400, "invalid_request");

    let data = dev.server.data_dir.to_str().unwrap();
    let export = tessera_ok(dev.dir.path(), &["audit", "export", "--data-dir", data]);
    let admin_actions: Vec<(String, String, String, Value)> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            ["client_suspended", "client_resumed", "client_extended", "scope_reviewed", "client_offboarded"]
                .contains(&r["kind"].as_str().unwrap())
        })
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["actor"].as_str().unwrap().to_owned(),
                r["client_id"].as_str().unwrap().to_owned(),
                r["data"]["reason"].clone(),
            )
        })
        .collect();
    let s = admin_subject.as_str();
    let expected: Vec<(String, String, String, Value)> = [
        ("client_suspended", &payer, json!("incident 42")),
        ("client_resumed", &payer, json!("")),
        ("client_extended", &payer, Value::Null),
        ("scope_reviewed", &payer, json!("PISP licence checked")),
        ("client_offboarded", &reader, json!("contract ended")),
    ]
    .into_iter()
    .map(|(k, c, r)| (k.to_owned(), s.to_owned(), c.clone(), r))
    .collect();
    assert_eq!(admin_actions, expected, "one event per successful action, with the administrator as actor");
    // The review records the reviewer as the rule that decided.
    let (_, _, shown) = call(admin.get(url(&format!("/clients/{payer}")))).await;
    let decision =
        shown["scope_decisions"].as_array().unwrap().iter().find(|d| d["scope"] == "payments:write").unwrap();
    assert_eq!(decision["rule"], format!("review:{admin_subject}"));
}

// --- the inventory export ------------------------------------------------------------------------

/// RFC 4180 rows (quoted fields with doubled quotes, CRLF line ends).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(field.is_empty() && row.is_empty(), "the CSV must end with CRLF: {text:?}");
    rows
}

#[tokio::test]
async fn inventory_export_has_every_client_with_its_lifecycle_fields() {
    let dev = Dev::start(&[]);
    let purpose = "Budgeting, \"smart\" insights";
    let payer = register_dev(&dev, &["--roles", "AISP,PISP"], "accounts:read payments:write", purpose).await;
    let reader =
        register_dev(&dev, &["--roles", "AISP", "--org-name", "=Acme Budgeting"], "accounts:read", "=1+1").await;
    let data = dev.server.data_dir.to_str().unwrap().to_owned();
    let dir = dev.dir.path();
    let export = |format: &str| tessera_ok(dir, &["inventory", "export", "--format", format, "--data-dir", &data]);
    let client_subject = dev.manifest["client"]["subject"].as_str().unwrap();

    let rows: Value = serde_json::from_str(&export("json")).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(
        sorted(rows.iter().map(|r| r["client_id"].as_str().unwrap()).collect()),
        sorted(vec![&payer, &reader, "dev-gateway"])
    );
    let fields = [
        "client_id",
        "client_name",
        "owner_org_id",
        "owner_org_name",
        "software_id",
        "purpose",
        "risk_tier",
        "status",
        "status_reason",
        "granted_scopes",
        "pending_scopes",
        "denied_scopes",
        "auth_method",
        "certificate_subject",
        "created_at",
        "expires_at",
        "last_used_at",
    ];
    for r in rows {
        for f in fields {
            assert!(r.get(f).is_some(), "{f} missing in {r}");
        }
    }
    let row = |id: &str| rows.iter().find(|r| r["client_id"] == id).unwrap().clone();
    let p = row(&payer);
    let started = now();
    assert_eq!(p["owner_org_id"], "demo-org-0001");
    assert_eq!(p["owner_org_name"], "Tessera Dev Demo Fintech");
    assert_eq!(p["purpose"], purpose);
    assert_eq!(p["risk_tier"], "high");
    assert_eq!(p["status"], "active");
    assert_eq!(p["granted_scopes"], json!(["accounts:read"]));
    assert_eq!(p["pending_scopes"], json!(["payments:write"]));
    assert_eq!(p["auth_method"], "tls_client_auth");
    assert_eq!(p["certificate_subject"], client_subject);
    assert!((started - 300..=started).contains(&p["created_at"].as_i64().unwrap()), "{p}");
    assert_eq!(p["last_used_at"], Value::Null, "never used yet");
    let r = row(&reader);
    assert_eq!((r["owner_org_name"].as_str(), r["risk_tier"].as_str()), (Some("=Acme Budgeting"), Some("low")));
    assert_eq!(r["pending_scopes"], json!([]));
    assert_eq!(row("dev-gateway")["granted_scopes"], json!(["introspection"]));

    // CSV: one row per client, the same values, formulas neutralised.
    let csv = export("csv");
    let table = parse_csv(&csv);
    assert_eq!(table.len(), 4, "{csv}");
    let header = &table[0];
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    for name in [
        "owner_org_id",
        "owner_org_name",
        "purpose",
        "risk_tier",
        "status",
        "granted_scopes",
        "pending_scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "certificate_subject",
    ] {
        col(name);
    }
    let line = |id: &str| table.iter().find(|r| r[0] == id).unwrap().clone();
    let pl = line(&payer);
    assert_eq!(pl[col("purpose")], purpose);
    assert_eq!(pl[col("certificate_subject")], client_subject);
    assert_eq!(pl[col("granted_scopes")], "accounts:read");
    assert_eq!(pl[col("pending_scopes")], "payments:write");
    assert_eq!(pl[col("created_at")], p["created_at"].to_string());
    assert_eq!(pl[col("last_used_at")], "");
    let rl = line(&reader);
    assert_eq!(rl[col("owner_org_name")], "'=Acme Budgeting");
    assert_eq!(rl[col("purpose")], "'=1+1");

    // Last use: recorded after a token (the server writes usage every 10 seconds).
    let before = now();
    access_token(&dev.server, &dev.client_as("client"), &payer).await;
    let used = eventually("last_used_at is recorded", Duration::from_secs(15), || async {
        let rows: Value = serde_json::from_str(&export("json")).unwrap();
        let p = rows.as_array().unwrap().iter().find(|r| r["client_id"] == payer.as_str()).unwrap().clone();
        p["last_used_at"].as_i64().ok_or_else(|| format!("{p}"))
    })
    .await;
    assert!((before..=now()).contains(&used), "{used} not in [{before}, now]");
    let table = parse_csv(&export("csv"));
    assert_eq!(line_of(&table, &payer)[col("last_used_at")], used.to_string());
    assert_eq!(
        serde_json::from_str::<Value>(&export("json"))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["client_id"] == reader.as_str())
            .unwrap()["last_used_at"],
        Value::Null,
        "the other client was not used"
    );
}

fn line_of(table: &[Vec<String>], id: &str) -> Vec<String> {
    table.iter().find(|r| r[0] == id).unwrap().clone()
}

// --- the audit chain -----------------------------------------------------------------------------

#[tokio::test]
async fn audit_verify_reports_a_record_edited_in_the_database() {
    let dev = Dev::start(&[]);
    let id = register_dev(&dev, &[], "accounts:read payments:write", "Payments").await;
    access_token(&dev.server, &dev.client_as("client"), &id).await;
    let data = dev.server.data_dir.to_str().unwrap().to_owned();
    let dir = dev.dir.path();

    let out = tessera(dir, &["audit", "verify", "--data-dir", &data]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("audit log intact: "), "{stdout}");
    let records: i64 = stdout["audit log intact: ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(records >= 3, "{stdout}");

    let db = dev.manifest["database"].as_str().unwrap();
    let edit = match std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000", db, "UPDATE audit_log SET actor='mallory' WHERE seq=2"])
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("AUDIT TAMPERING TEST SKIPPED: the sqlite3 command line is not installed ({e})");
            return;
        }
    };
    assert!(edit.status.success(), "sqlite3: {}", String::from_utf8_lossy(&edit.stderr));

    let out = tessera(dir, &["audit", "verify", "--data-dir", &data]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("BROKEN at record 2"), "{stdout}");
    // The admin API of the running server sees the same.
    let (status, _, body) = call(dev.client_as("admin").get(dev.server.url("/admin/audit/verify"))).await;
    assert_eq!(status, 200);
    assert_eq!((body["intact"].clone(), body["broken_at_seq"].clone()), (json!(false), json!(2)), "{body}");
}
