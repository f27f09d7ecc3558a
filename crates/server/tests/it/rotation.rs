//! `tessera keys rotate`: the next key is published before it signs, then takes over; the old
//! key stays published.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tessera_testkit::process::run;

use crate::common::*;

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn rotate_prepublishes_then_switches() {
    let env = [("TESSERA_KEYS__PREPUBLICATION_SECS", "4"), ("TESSERA_KEYS__RELOAD_INTERVAL_SECS", "1")];
    let dev = Dev::start(&env);
    let c = dev.client();
    let data = dev.server.data_dir.to_str().unwrap().to_owned();
    let discovery_url = dev.server.url("/.well-known/oauth-authorization-server");
    let signer_kid =
        |doc: &Value| header_of(doc["signed_metadata"].as_str().unwrap())["kid"].as_str().unwrap().to_owned();

    let old_kid = signer_kid(&get_json(&c, &discovery_url).await);

    let out = run(&bin(), &["keys", "rotate", "--data-dir", &data, "--algorithm", "EdDSA"], dev.dir.path(), &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = run(&bin(), &["keys", "list", "--data-dir", &data, "--json"], dev.dir.path(), &env);
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let new = listed.as_array().unwrap().iter().find(|k| k["kid"] != old_kid.as_str()).unwrap().clone();
    let new_kid = new["kid"].as_str().unwrap().to_owned();
    let activates_at = new["activates_at"].as_i64().unwrap();
    assert_eq!(new["alg"], "EdDSA");
    assert_eq!(new["state"], "pending");

    // Pre-publication: the new key appears in the JWKS while the old key still signs.
    let deadline = now() + 20;
    let mut seen_both_before_activation = false;
    loop {
        let started = now();
        let jwks = get_json(&c, &dev.server.url("/jwks")).await;
        let doc = get_json(&c, &discovery_url).await;
        let kid = signer_kid(&doc);
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        if kid == new_kid {
            // Never before its activation time.
            assert!(now() >= activates_at, "new key signed before activation");
            assert!(kids.contains(&old_kid.as_str()), "old key must stay published after the switch");
            assert!(kids.contains(&new_kid.as_str()));
            // And the signature verifies against the JWKS.
            verify_with_jwks(doc["signed_metadata"].as_str().unwrap(), &jwks);
            break;
        }
        if kids.contains(&new_kid.as_str()) && started < activates_at {
            assert_eq!(kid, old_kid);
            seen_both_before_activation = true;
        }
        assert!(now() < deadline, "the new key never took over");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(seen_both_before_activation, "the JWKS never held both keys during pre-publication");

    let listed = run(&bin(), &["keys", "list", "--data-dir", &data], dev.dir.path(), &env);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains("retired") && table.contains("active"), "{table}");
}

#[test]
fn rotate_refuses_rs256() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out =
        run(&bin(), &["keys", "rotate", "--data-dir", data.to_str().unwrap(), "--algorithm", "RS256"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only PS256, ES256 and EdDSA"));
}
