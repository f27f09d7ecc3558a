//! `tessera check-config`: each class of bad configuration gives one line naming the problem and
//! a non-zero exit code.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tessera_testkit::TestPki;
use tessera_testkit::process::run;

use crate::common::bin;

/// A valid production configuration made with a (non-dev) test PKI.
pub fn write_valid_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let pki = TestPki::new(&dir.join("pki"), "test-ca");
    let server = pki.server("server");
    let kek = dir.join("kek.key");
    std::fs::write(&kek, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n").unwrap();
    std::fs::set_permissions(&kek, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            r#"issuer = "https://as.test.example"
{extra}
[server]
listen = "127.0.0.1:0"
tls_cert_file = "{}"
tls_key_file = "{}"
client_ca_files = ["{}"]

[database]
url = "sqlite://{}/tessera.db"

[keys]
encryption_key_file = "{}"
"#,
            server.cert.display(),
            server.key.display(),
            pki.ca_cert.display(),
            dir.display(),
            kek.display()
        ),
    )
    .unwrap();
    config
}

fn check(config: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = run(&bin(), &["check-config", "--config", config.to_str().unwrap()], Path::new("/"), env);
    let stderr = String::from_utf8_lossy(&out.stderr).trim_end().to_owned();
    (out.status.code(), if out.status.success() { String::from_utf8_lossy(&out.stdout).into_owned() } else { stderr })
}

fn assert_one_line_error(result: (Option<i32>, String), needles: &[&str]) {
    let (code, message) = result;
    assert_eq!(code, Some(2), "{message}");
    assert_eq!(message.lines().count(), 1, "one line: {message}");
    for n in needles {
        assert!(message.contains(n), "{message:?} should mention {n:?}");
    }
}

fn edit(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from));
    std::fs::write(config, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn valid_config_passes() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_valid_config(dir.path(), "");
    let (code, out) = check(&config, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("configuration OK"));
}

#[test]
fn missing_file() {
    assert_one_line_error(check(Path::new("/nonexistent/tessera.toml"), &[]), &["--config", "cannot read"]);
}

#[test]
fn unknown_key_in_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_valid_config(dir.path(), "");
    edit(&config, "listen =", "listne = \"x\"\nlisten =");
    assert_one_line_error(check(&config, &[]), &["server.listne", "unknown key"]);

    let config = write_valid_config(dir.path(), "");
    assert_one_line_error(check(&config, &[("TESSERA_SERVER__LISTNE", "x")]), &["server.listne", "unknown key"]);
    assert_one_line_error(check(&config, &[("TESSERA_COLOUR", "blue")]), &["colour", "unknown key"]);
}

#[test]
fn bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_valid_config(dir.path(), "");
    edit(&config, "https://as.test.example", "http://as.test.example");
    assert_one_line_error(check(&config, &[]), &["`issuer`", "https"]);

    let config = write_valid_config(dir.path(), "");
    assert_one_line_error(check(&config, &[("TESSERA_ISSUER", "https://as.example/?x=1")]), &["`issuer`", "query"]);
    assert_one_line_error(check(&config, &[("TESSERA_DATABASE__URL", "mysql://db")]), &["`database.url`"]);
    assert_one_line_error(check(&config, &[("TESSERA_SERVER__LISTEN", "nowhere")]), &["`server.listen`"]);
}

#[test]
fn unreadable_or_unsafe_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_valid_config(dir.path(), "");
    let key = dir.path().join("pki/server.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_one_line_error(check(&config, &[]), &["`server.tls_key_file`", "chmod 600"]);
    std::fs::remove_file(&key).unwrap();
    assert_one_line_error(check(&config, &[]), &["`server.tls_key_file`", "cannot read"]);

    let config = write_valid_config(dir.path(), "");
    std::fs::write(dir.path().join("kek.key"), "too short\n").unwrap();
    assert_one_line_error(check(&config, &[]), &["`keys.encryption_key_file`", "32 bytes"]);
    std::fs::write(dir.path().join("pki/test-ca.pem"), "not a pem").unwrap();
    let config = write_valid_config(dir.path(), "");
    std::fs::write(dir.path().join("pki/test-ca.pem"), "not a pem").unwrap();
    assert_one_line_error(check(&config, &[]), &["`server.client_ca_files[0]`"]);
}

#[test]
fn bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_valid_config(dir.path(), "");
    assert_one_line_error(check(&config, &[("TESSERA_KEYS__ALGORITHM", "RS256")]), &["`keys.algorithm`", "RS256"]);
    assert_one_line_error(
        check(&config, &[("TESSERA_KEYS__MAX_TOKEN_LIFETIME_SECS", "86400")]),
        &["`keys.max_token_lifetime_secs`"],
    );
    assert_one_line_error(
        check(&config, &[("TESSERA_KEYS__PREPUBLICATION_SECS", "soon")]),
        &["keys.prepublication_secs"],
    );
}

#[test]
fn production_refuses_dev_material() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Let dev mode generate its material (keys list creates it without serving).
    let out = run(&bin(), &["keys", "list", "--data-dir", data.to_str().unwrap()], dir.path(), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = write_valid_config(dir.path(), "");
    let dev = data.join("dev");
    let text = std::fs::read_to_string(&config).unwrap();
    let pki = dir.path().join("pki");
    let text = text
        .replace(&pki.join("server.pem").display().to_string(), &dev.join("server.pem").display().to_string())
        .replace(&pki.join("server.key").display().to_string(), &dev.join("server.key").display().to_string());
    std::fs::write(&config, text).unwrap();
    assert_one_line_error(check(&config, &[]), &["`server.tls_cert_file`", "dev"]);

    // Copied out of the dev directory, the certificate itself still gives it away.
    let elsewhere = dir.path().join("copied");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for f in ["server.pem", "server.key"] {
        std::fs::copy(dev.join(f), elsewhere.join(f)).unwrap();
    }
    std::fs::set_permissions(elsewhere.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text =
        std::fs::read_to_string(&config).unwrap().replace(&dev.display().to_string(), &elsewhere.display().to_string());
    std::fs::write(&config, text).unwrap();
    assert_one_line_error(check(&config, &[]), &["`server.tls_cert_file`", "dev mode"]);
    // The explicit dangerous switch allows it.
    let (code, _) = check(&config, &[("TESSERA_DANGEROUS_ALLOW_DEV_MATERIAL", "true")]);
    assert_eq!(code, Some(0));
}
