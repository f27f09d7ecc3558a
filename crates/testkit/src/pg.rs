//! Throw-away PostgreSQL databases, one per test.
//!
//! [`TestPg::new`] creates `tessera_test_<random hex>` on a server and drops it (`WITH (FORCE)`,
//! so open pools do not block it) when the value is dropped. Tests therefore never see each
//! other's rows and can run in parallel.
//!
//! Which server:
//! 1. `TESSERA_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres` (trust auth,
//!    as on the CI machine). The user must be allowed to create databases.
//! 2. If that is unreachable and `TESSERA_TEST_REQUIRE_PG` is set (CI sets it), the test panics: a CI
//!    run must never pass by skipping the PostgreSQL suite.
//! 3. Otherwise a private instance is started from the installed binaries (`initdb`, `pg_ctl`)
//!    in a temporary directory, on a free port, once per test process. A watchdog process stops
//!    it and removes the directory when the test process exits.
//! 4. If that fails too, `POSTGRES SUITE SKIPPED: <reason>` goes to stderr and `new` returns
//!    `None`; the caller returns early.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// One throw-away database, dropped with the value.
pub struct TestPg {
    server_url: String,
    name: String,
    url: String,
}

/// Why no server is available. Kept so that every test of the process reports the same reason
/// without probing again.
#[derive(Clone)]
enum NoServer {
    /// `TESSERA_TEST_REQUIRE_PG` is set: fail the test.
    Required(String),
    /// Not required: skip, loudly.
    Skipped(String),
}

impl TestPg {
    /// A fresh, empty database, or `None` (after printing `POSTGRES SUITE SKIPPED: ...`) when no
    /// server can be had and `TESSERA_TEST_REQUIRE_PG` is unset. Panics if the server is reachable but
    /// refuses to create the database: that is a broken setup, not a missing one.
    pub fn new() -> Option<TestPg> {
        static SERVER: OnceLock<Result<String, NoServer>> = OnceLock::new();
        let server_url = match SERVER.get_or_init(find_server) {
            Ok(url) => url.clone(),
            Err(NoServer::Required(reason)) => {
                panic!("TESSERA_TEST_REQUIRE_PG is set but no PostgreSQL server is reachable: {reason}")
            }
            Err(NoServer::Skipped(reason)) => {
                eprintln!("POSTGRES SUITE SKIPPED: {reason}");
                return None;
            }
        };

        let name = format!("tessera_test_{}", random_hex(8));
        let mut admin = PgConnection::establish(&server_url)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", shown(&server_url)));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {}: {e}", shown(&server_url)));
        let url = with_database(&server_url, &name);
        Some(TestPg { server_url, name, url })
    }

    /// URL of this test's database (same server, user and parameters as the server URL).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database name, `tessera_test_<hex>`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        // FORCE ends the sessions of pools the test still holds (PostgreSQL 13+). A failure here
        // only leaves a stray database behind, so it is reported, not turned into a panic.
        let result = PgConnection::establish(&self.server_url).map_err(|e| e.to_string()).and_then(|mut c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

fn find_server() -> Result<String, NoServer> {
    let configured = std::env::var("TESSERA_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let unreachable = match PgConnection::establish(&configured) {
        Ok(_) => return Ok(configured),
        Err(e) => format!("{} is unreachable ({})", shown(&configured), e.to_string().trim()),
    };
    if std::env::var_os("TESSERA_TEST_REQUIRE_PG").is_some() {
        return Err(NoServer::Required(unreachable));
    }
    match start_private_instance() {
        Ok(url) => {
            eprintln!("{unreachable}; using a private PostgreSQL instance at {url}");
            Ok(url)
        }
        Err(e) => Err(NoServer::Skipped(format!("{unreachable}, and starting a private instance failed: {e}"))),
    }
}

/// `url` for messages: a password in the user info becomes `***` (CI logs are public).
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `server_url` with its database path replaced by `db`, keeping any `?parameters`.
fn with_database(server_url: &str, db: &str) -> String {
    let (scheme, rest) = server_url.split_once("://").unwrap_or(("postgres", server_url));
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    // The path starts at the first `/` after the user info.
    let host_start = before_query.rfind('@').map_or(0, |i| i + 1);
    let authority = match before_query[host_start..].find('/') {
        Some(i) => &before_query[..host_start + i],
        None => before_query,
    };
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("OS random source");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts PostgreSQL in a new temporary directory and returns its URL. PostgreSQL refuses to run
/// as root, so as root the binaries run as the `postgres` OS user.
fn start_private_instance() -> Result<String, String> {
    let bin = find_pg_bin().ok_or("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql")?;
    let base = tempfile::Builder::new()
        .prefix("tessera-pg-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?
        // Kept: the watchdog removes it after the server has stopped.
        .keep();
    let base_str = base.to_str().ok_or("temporary directory path is not UTF-8")?;
    if base_str.contains('\'') {
        return Err(format!("unusable temporary directory path {base_str}"));
    }
    let data = base.join("data");
    let sock = base.join("sock");
    let log = base.join("postgres.log");
    std::fs::create_dir(&sock).map_err(|e| format!("creating {}: {e}", sock.display()))?;
    let root = is_root();
    if root {
        run(Command::new("chown").args(["-R", "postgres:"]).arg(&base))?;
    }

    run(as_postgres(root, &bin.join("initdb"), &base).arg("-D").arg(&data).args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
    ]))?;

    let port = free_port()?;
    let server_options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", sock.display());
    let started = run(as_postgres(root, &bin.join("pg_ctl"), &base).arg("-D").arg(&data).arg("-l").arg(&log).args([
        "-w",
        "-t",
        "60",
        "-o",
        &server_options,
        "start",
    ]));
    // The watchdog is spawned even if the start failed, so the directory is always removed.
    spawn_watchdog(&data, &base);
    started.map_err(|e| {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        format!("{e}; server log: {}", log.trim())
    })?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// A detached shell that waits for this test process to exit, then stops the private server
/// (SIGINT = fast shutdown) and removes its directory. A `OnceLock` value is never dropped, so
/// this cannot be done from Rust. It gets its own process group so a Ctrl-C on the test run does
/// not kill it before it has cleaned up.
fn spawn_watchdog(data: &Path, base: &Path) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         if [ -f '{data}/postmaster.pid' ]; then kill -INT \"$(head -1 '{data}/postmaster.pid')\"; fi; \
         i=0; while [ -f '{data}/postmaster.pid' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         rm -rf '{base}'",
        pid = std::process::id(),
        data = data.display(),
        base = base.display(),
    );
    let spawned = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(e) = spawned {
        eprintln!("warning: no watchdog for the private PostgreSQL in {}: {e}", base.display());
    }
}

fn as_postgres(root: bool, program: &Path, cwd: &Path) -> Command {
    let mut cmd = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    // The postgres user may not be able to read the test's working directory.
    cmd.current_dir(cwd);
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A port that was free a moment ago. Another process could take it before PostgreSQL binds it;
/// then `pg_ctl start` fails and the suite is skipped with that reason.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// The directory holding `initdb` and `pg_ctl`: first on `PATH`, then the newest Debian
/// `/usr/lib/postgresql/<major>/bin`.
fn find_pg_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH")
        && let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A private PostgreSQL instance a test may stop and start again (failure semantics). `None`
/// when no server binaries can be run (the caller reports the skip).
pub struct StoppablePg {
    bin: PathBuf,
    base: PathBuf,
    data: PathBuf,
    log: PathBuf,
    options: String,
    url: String,
}

impl StoppablePg {
    pub fn start() -> Result<StoppablePg, String> {
        let bin = find_pg_bin().ok_or("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql")?;
        let base = tempfile::Builder::new()
            .prefix("tessera-pg-stoppable-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?
            .keep();
        let data = base.join("data");
        let sock = base.join("sock");
        let log = base.join("postgres.log");
        std::fs::create_dir(&sock).map_err(|e| format!("creating {}: {e}", sock.display()))?;
        let root = is_root();
        if root {
            run(Command::new("chown").args(["-R", "postgres:"]).arg(&base))?;
        }
        run(as_postgres(root, &bin.join("initdb"), &base).arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]))?;
        let port = free_port()?;
        let options = format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", sock.display());
        spawn_watchdog(&data, &base);
        let pg = StoppablePg {
            bin,
            base,
            data,
            log,
            options,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        pg.resume()?;
        Ok(pg)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fast shutdown: open connections are cut, new ones refused.
    pub fn stop(&self) -> Result<(), String> {
        run(as_postgres(is_root(), &self.bin.join("pg_ctl"), &self.base)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]))
    }

    pub fn resume(&self) -> Result<(), String> {
        run(as_postgres(is_root(), &self.bin.join("pg_ctl"), &self.base)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-o", &self.options, "start"]))
    }
}

impl Drop for StoppablePg {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_swapped_in_the_url() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/t"),
            ("postgres://u:p@h", "postgres://u:p@h/t"),
            ("postgresql://h/db?sslmode=disable", "postgresql://h/t?sslmode=disable"),
            ("postgres://u:a/b@h:1/db", "postgres://u:a/b@h:1/t"),
        ];
        for (server, want) in cases {
            assert_eq!(with_database(server, "t"), want, "{server}");
        }
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(shown("postgres://u:secret@h:1/db"), "postgres://u:***@h:1/db");
        assert_eq!(shown("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn names_are_random_hex() {
        let a = random_hex(8);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(8));
    }
}
