//! Runs `examples/resource_server.rs` as a process (as the end-to-end tests against the real
//! `tessera` binary will) against an in-process issuer: argument handling, the "listening" line,
//! mandatory client certificates, the JWKS fetch through the given CA, and the two routes.
//!
//! `cargo test -p tessera-resource-server` builds the example next to this test binary; when it
//! is absent (e.g. `cargo test --test it` alone), the test says so and passes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};

use crate::support::*;
use crate::tls::{client, start_issuer};

/// Kills the example when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example_binary() -> Option<PathBuf> {
    // target/debug/deps/it-<hash> -> target/debug/examples/resource_server
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join("resource_server");
    path.is_file().then_some(path)
}

fn write(dir: &std::path::Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[actix_web::test]
async fn the_example_resource_server_end_to_end() {
    let Some(binary) = example_binary() else {
        eprintln!(
            "EXAMPLE TEST SKIPPED: examples/resource_server not built (run `cargo test -p tessera-resource-server`)"
        );
        return;
    };
    install_provider();
    let pki = Pki::new("Example CA");
    let key = TestKey::es256("k1");
    let fake_as = start_issuer(&pki, jwks(&[&key]));

    let dir = std::env::temp_dir().join(format!("tessera-rs-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = write(&dir, "ca.pem", &pki.ca_pem);
    let rs = pki.server();
    let rs_cert = write(&dir, "rs.pem", &rs.cert_pem);
    let rs_key = write(&dir, "rs.key", &rs.key_pem);

    // Arguments and environment mixed, as a harness might; the TESSERA_ variable must not matter.
    let mut child = Command::new(&binary)
        .args(["--issuer", &fake_as.issuer, "--audience", AUDIENCE, "--listen", "127.0.0.1:0"])
        .arg(format!("--as-ca={}", ca.display()))
        .args(["--tls-cert".as_ref(), rs_cert.as_os_str(), "--tls-key".as_ref(), rs_key.as_os_str()])
        .env("RS_CLIENT_CA", &ca)
        .env("TESSERA_SOMETHING", "ignored")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("the example did not print its address");
    let base =
        line.trim().strip_prefix("resource-server: listening on ").unwrap_or_else(|| panic!("{line:?}")).to_owned();
    assert!(base.starts_with("https://127.0.0.1:") && !base.ends_with(":0"), "{base}");

    let alice = pki.client("alice");
    let bob = pki.client("bob");
    let as_alice = client(&pki.ca_pem, Some(&alice));
    let as_bob = client(&pki.ca_pem, Some(&bob));
    let token = |who: &Issued, scope: &str| key.token(&who.der, json!({ "iss": fake_as.issuer, "scope": scope }));

    let read_token = token(&alice, "accounts:read");
    let resp =
        as_alice.get(format!("{base}/accounts")).header(AUTHORIZATION.as_str(), format!("bearer {read_token}")).send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["client_id"], "client-1");
    assert!(body["accounts"].as_array().is_some_and(|a| !a.is_empty()), "{body}");
    assert_eq!(fake_as.jwks_hits.load(Ordering::SeqCst), 1);

    // The read token cannot pay.
    let resp = as_alice
        .post(format!("{base}/payments"))
        .header(AUTHORIZATION.as_str(), format!("Bearer {read_token}"))
        .json(&json!({ "amount": "10.00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers()[WWW_AUTHENTICATE.as_str()].to_str().unwrap().ends_with(r#"scope="payments:write""#));
    // A payments token can.
    let pay_token = token(&alice, "payments:write");
    let resp = as_alice
        .post(format!("{base}/payments"))
        .header(AUTHORIZATION.as_str(), format!("Bearer {pay_token}"))
        .json(&json!({ "amount": "10.00" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    // Alice's token over Bob's connection.
    let resp = as_bob
        .get(format!("{base}/accounts"))
        .header(AUTHORIZATION.as_str(), format!("Bearer {read_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()[WWW_AUTHENTICATE.as_str()].to_str().unwrap().starts_with(r#"Bearer error="invalid_token""#));
    // Token in the query string.
    let resp = as_alice.get(format!("{base}/accounts?access_token={read_token}")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // No client certificate: refused at the TLS layer.
    assert!(client(&pki.ca_pem, None).get(format!("{base}/accounts")).send().await.is_err());

    fake_as.handle.stop(false).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_reports_a_missing_option() {
    let Some(binary) = example_binary() else {
        eprintln!("EXAMPLE TEST SKIPPED: examples/resource_server not built");
        return;
    };
    let out = Command::new(binary).args(["--issuer", "https://as.example"]).env_remove("RS_AUDIENCE").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--audience is required"), "{stderr}");
    assert!(out.stdout.is_empty());
}
