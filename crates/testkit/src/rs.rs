//! The example resource server of `tessera-resource-server` (`examples/resource_server.rs`) as a
//! child process, for end-to-end tests that need a protected resource in front of Tessera.
//!
//! `cargo test --workspace` builds every example before any test runs, so the binary is normally
//! there (`<target>/<profile>/examples/resource_server`, next to the test binary's `deps/`).
//! When it is absent, or older than the resource server's sources (e.g. `cargo test -p
//! tessera-server` alone), [`example_binary`] builds it once per test process with the same
//! cargo, target directory and profile. A failed build is a test failure, never a skip.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// The workspace root, from this crate's manifest directory (`<root>/crates/testkit`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/testkit is two levels down")
        .to_owned()
}

/// The profile directory of the running test binary: `<target>/<profile>` from
/// `<target>/<profile>/deps/<test>-<hash>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the test binary has a directory");
    assert_eq!(
        deps.file_name().and_then(|n| n.to_str()),
        Some("deps"),
        "{} is not a cargo test binary in <target>/<profile>/deps",
        exe.display()
    );
    deps.parent().expect("<target>/<profile>").to_owned()
}

/// The newest modification time of the files under `path` (recursively).
fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path).ok()?.filter_map(Result::ok).filter_map(|e| newest(&e.path())).max()
}

/// Whether `binary` exists and is newer than every source of the resource server crate.
fn is_current(binary: &Path) -> bool {
    let Some(built) = std::fs::metadata(binary).ok().filter(|m| m.is_file()).and_then(|m| m.modified().ok()) else {
        return false;
    };
    let krate = workspace_root().join("crates/resource-server");
    ["src", "examples", "Cargo.toml"].iter().filter_map(|p| newest(&krate.join(p))).all(|t| t <= built)
}

/// The path of the example resource server binary, building it first (once per process) when it
/// is missing or out of date. Panics if it cannot be built: a missing example is a failure.
pub fn example_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let profile_dir = profile_dir();
            let binary = profile_dir.join("examples").join("resource_server");
            if is_current(&binary) {
                return binary;
            }
            let target_dir = profile_dir.parent().expect("<target>");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev".to_owned(),
                Some(other) => other.to_owned(),
                None => panic!("no profile directory in {}", profile_dir.display()),
            };
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
            let manifest = workspace_root().join("Cargo.toml");
            eprintln!("building the example resource server into {}", binary.display());
            let out = Command::new(cargo)
                .args(["build", "-q", "-p", "tessera-resource-server", "--example", "resource_server", "--profile"])
                .arg(&profile)
                .arg("--manifest-path")
                .arg(&manifest)
                .arg("--target-dir")
                .arg(target_dir)
                .stdin(Stdio::null())
                .output()
                .expect("run cargo to build the example resource server");
            assert!(
                out.status.success(),
                "building the example resource server failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(binary.is_file(), "cargo built the example, but {} does not exist", binary.display());
            binary
        })
        .clone()
}

/// What the example needs (its `--issuer`, `--audience`, `--as-ca`, `--tls-cert`, `--tls-key`
/// and `--client-ca`); it always listens on `127.0.0.1:0`.
pub struct RsConfig<'a> {
    /// Tessera's issuer, exactly as its metadata's `issuer`.
    pub issuer: &'a str,
    /// The resource server's identifier, required in `aud`.
    pub audience: &'a str,
    /// The CA that anchors Tessera's TLS certificate (for the JWKS fetch).
    pub as_ca: &'a Path,
    /// The resource server's own TLS certificate and key (PEM).
    pub tls_cert: &'a Path,
    pub tls_key: &'a Path,
    /// The CA that client certificates must chain to.
    pub client_ca: &'a Path,
}

/// A running example resource server, killed when dropped.
pub struct ResourceServer {
    child: Child,
    /// `https://127.0.0.1:PORT`, as the example announced it.
    pub base: String,
    pub stderr_log: PathBuf,
}

impl ResourceServer {
    /// Starts the example (built if needed) and waits for its `listening on` line. Its stderr
    /// (one line per request) goes to a file in `log_dir`.
    pub fn start(config: &RsConfig<'_>, log_dir: &Path) -> ResourceServer {
        let binary = example_binary();
        std::fs::create_dir_all(log_dir).unwrap();
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let stderr_log = log_dir.join(format!("resource-server-{}-{n}.stderr.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&stderr_log).unwrap();
        let mut child = Command::new(&binary)
            .args(["--issuer", config.issuer, "--audience", config.audience, "--listen", "127.0.0.1:0"])
            .arg("--as-ca")
            .arg(config.as_ca)
            .arg("--tls-cert")
            .arg(config.tls_cert)
            .arg("--tls-key")
            .arg(config.tls_key)
            .arg("--client-ca")
            .arg(config.client_ca)
            .current_dir(log_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("resource-server: listening on ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => ResourceServer { child, base, stderr_log },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("the example resource server did not start ({status}); stderr:\n{log}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// What it logged so far (one line per request).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
