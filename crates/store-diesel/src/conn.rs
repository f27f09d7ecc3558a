//! Connections: the one multi-backend connection type, the URL dispatch, and the pool manager.

use std::fmt;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{HandleError, ManageConnection, R2D2Connection};
use diesel::sqlite::SqliteConnection;

use crate::Backend;

/// One connection type for both backends, so every query is written once. PostgreSQL is listed
/// first: diesel's own `establish` tries the variants in order, and a SQLite variant first would
/// happily create a file named after a mistyped PostgreSQL URL. We never call that `establish`
/// (see [`Manager`]), but the order keeps it harmless if someone does.
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

/// Pragmas for every SQLite connection. `busy_timeout` comes first so that switching to WAL, which
/// needs a lock, waits for another connection instead of failing. `synchronous=FULL` because
/// nothing the server has accepted (a registered client, a consent, a key) may be lost on power
/// failure; WAL keeps readers from blocking the writer.
///
/// `wal_autocheckpoint`: by default SQLite checkpoints (copies the WAL into the database file and
/// fsyncs it) inside whichever commit pushes the WAL past 1,000 pages, so one writer in a few
/// hundred pays several milliseconds; with group commit every token waiting on that audit batch
/// pays too (the p99 of the token endpoint at 5,000/s). The server's connections checkpoint only
/// past 20,000 pages (~80 MB, a safety net) and [`Checkpointer`] does the work off the writers'
/// path.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; \
                              PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; \
                              PRAGMA wal_autocheckpoint=20000;";

/// How often the background checkpoint runs. At the token endpoint's full rate the WAL grows by
/// ~1,000 pages a second, so each pass copies a few hundred pages.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// What a database URL points at, decided once from its scheme.
#[derive(Clone)]
pub(crate) enum Target {
    /// A libpq URL (`postgres://` or `postgresql://`), kept whole for libpq.
    Postgres(String),
    /// A SQLite file path (the URL without `sqlite://`), relative to the working directory or
    /// absolute. The parent directory must exist: creating it is the caller's decision.
    SqliteFile(String),
    /// `sqlite::memory:`: a database that lives only inside its one connection.
    SqliteMemory,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        if url == "sqlite::memory:" {
            return Ok(Target::SqliteMemory);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// URL without a file path".into());
            }
            // Passed as a plain path, not a `file:` URI: a `?` or `#` in a file name then means
            // nothing special.
            return Ok(Target::SqliteFile(path.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        // Name only the scheme: the rest of a URL may hold a password.
        let expected = "expected postgres://, postgresql://, sqlite://PATH or sqlite::memory:";
        match scheme_of(url) {
            Some(scheme) => Err(format!("unsupported database URL scheme `{scheme}`: {expected}")),
            None => Err(format!("the database URL has no scheme: {expected}")),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Postgres(_) => Backend::Postgres,
            Target::SqliteFile(_) | Target::SqliteMemory => Backend::Sqlite,
        }
    }
}

/// The RFC 3986 scheme of `url`, if it starts with one. Anything else (say `user:pw@host`, where
/// the "scheme" would be a user name) is not echoed back.
fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first_is_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_is_alpha && rest_ok && scheme.len() <= 32).then_some(scheme)
}

/// Removes every secret of `url` (the password in the user info, a `password=` parameter) from
/// `message`. libpq echoes the whole URL in some parse errors, and these messages end up in logs
/// and in [`tessera_store::StoreError`]. Over-redaction is harmless; a leaked password is not.
pub(crate) fn redact(url: &str, message: &str) -> String {
    let mut out = message.to_owned();
    for secret in secrets_of(url) {
        if !secret.is_empty() {
            out = out.replace(&secret, "***");
        }
    }
    out
}

fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The user info ends at the last `@` (a malformed URL may have more than one); everything
    // after its first `:` is treated as the password.
    if let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password.to_owned());
    }
    for (i, _) in url.match_indices("password=") {
        let value = &url[i + "password=".len()..];
        let end = value.find(['&', ' ']).unwrap_or(value.len());
        secrets.push(value[..end].to_owned());
    }
    // Also the decoded forms, in case a driver prints the password after percent-decoding.
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection failure, with the driver's own message and any password already removed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ConnectError(pub(crate) String);

/// The pool's connection manager. diesel's `ConnectionManager<AnyConnection>` would go through
/// `AnyConnection::establish`, which swallows the driver error ("Invalid connection url for
/// multiconnection") and, for PostgreSQL, hides a wrong password or a down server. This one
/// dispatches on the scheme already parsed into [`Target`] and keeps the real message.
#[derive(Clone)]
pub(crate) struct Manager {
    target: Target,
}

impl Manager {
    pub(crate) fn new(target: Target) -> Self {
        Manager { target }
    }
}

// Hand-written so that a `Debug` of the pool can never print a password.
impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager").field("backend", &self.target.backend()).finish()
    }
}

impl ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        match &self.target {
            Target::Postgres(url) => PgConnection::establish(url)
                .map(AnyConnection::Postgresql)
                .map_err(|e| ConnectError(redact(url, &format!("PostgreSQL: {e}")))),
            Target::SqliteFile(path) => open_sqlite(path),
            Target::SqliteMemory => open_sqlite(":memory:"),
        }
    }

    /// Runs on every checkout (`test_on_check_out`), so a connection killed by a PostgreSQL
    /// restart is replaced instead of failing a request, and the process needs no restart.
    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1").map_err(|e| ConnectError(format!("connection check failed: {e}")))
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

fn open_sqlite(path: &str) -> Result<AnyConnection, ConnectError> {
    let mut conn = SqliteConnection::establish(path).map_err(|e| ConnectError(format!("SQLite {path}: {e}")))?;
    conn.batch_execute(SQLITE_PRAGMAS).map_err(|e| ConnectError(format!("SQLite {path}: setting pragmas: {e}")))?;
    Ok(AnyConnection::Sqlite(conn))
}

/// A thread with its own connection that runs `PRAGMA wal_checkpoint(PASSIVE)` every
/// [`CHECKPOINT_EVERY`]: a passive checkpoint waits for no lock and blocks no reader or writer, so
/// copying the WAL back into the database (and its fsync) never happens inside a commit that
/// requests are waiting for. It stops when the store that started it is dropped (its `alive`
/// handle gone). Durability is unchanged: a commit is durable once its WAL frames are synced
/// (`synchronous=FULL`), checkpointed or not.
pub(crate) struct Checkpointer;

impl Checkpointer {
    pub(crate) fn start(path: String, alive: std::sync::Weak<()>) -> Result<(), ConnectError> {
        let mut conn = open_sqlite(&path)?;
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                loop {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    if alive.upgrade().is_none() {
                        return;
                    }
                    match conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        Ok(()) => failing = false,
                        // Logged once per run of failures, not four times a second.
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, "background WAL checkpoint failed; will retry");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map(|_| ())
            .map_err(|e| ConnectError(format!("SQLite {path}: starting the checkpoint thread: {e}")))
    }
}

/// Pool errors go to `tracing` (r2d2 would use the `log` crate, which this project does not
/// route). Messages are already redacted by [`Manager`].
#[derive(Debug)]
pub(crate) struct TracingErrorHandler;

impl HandleError<ConnectError> for TracingErrorHandler {
    fn handle_error(&self, error: ConnectError) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_by_scheme() {
        let cases = [
            ("postgres://u@h/db", Some(Backend::Postgres)),
            ("postgresql://u@h/db", Some(Backend::Postgres)),
            ("sqlite://data/tessera.db", Some(Backend::Sqlite)),
            ("sqlite:///var/lib/tessera.db", Some(Backend::Sqlite)),
            ("sqlite::memory:", Some(Backend::Sqlite)),
            ("sqlite://", None),
            ("mysql://u:pw@h/db", None),
            ("data.db", None),
        ];
        for (url, want) in cases {
            assert_eq!(Target::parse(url).ok().map(|t| t.backend()), want, "{url}");
        }
    }

    #[test]
    fn sqlite_paths_are_kept_verbatim() {
        match Target::parse("sqlite:///tmp/a?b.db") {
            Ok(Target::SqliteFile(p)) => assert_eq!(p, "/tmp/a?b.db"),
            _ => panic!("expected a SQLite file"),
        }
    }

    #[test]
    fn unknown_scheme_names_the_scheme_only() {
        let err = Target::parse("mysql://admin:hunter2@db/x").err().unwrap();
        assert!(err.contains("`mysql`"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        // A URL missing its scheme must not echo the user name as a scheme, nor the password.
        let err = Target::parse("admin:hunter2@db/x").err().unwrap();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn redaction_table() {
        let cases = [
            ("postgres://u:hunter2@h/db", "bad uri postgres://u:hunter2@h/db", "hunter2"),
            ("postgres://u:p%40ss@h/db", "password p@ss and p%40ss", "p@ss"),
            ("postgres://u:a@b@h/db", "uri u:a@b@h", "a@b"),
            ("postgres://u@h/db?password=s3cret&x=1", "password=s3cret", "s3cret"),
        ];
        for (url, message, secret) in cases {
            let out = redact(url, message);
            assert!(!out.contains(secret), "{url}: {out}");
            assert!(out.contains("***"), "{url}: {out}");
        }
        assert_eq!(redact("postgres://u@h/db", "plain"), "plain");
    }
}
