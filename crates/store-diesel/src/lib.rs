//! Tessera's durable storage through diesel: the `tessera-store` traits implemented once for
//! SQLite (the embedded default, one file next to the server) and PostgreSQL (several nodes), with
//! the schema migrations for both compiled into the binary (`migrations/sqlite`,
//! `migrations/postgres` at the repository root) and applied by [`DieselStore::connect`].
//!
//! Only the `tessera` server and the test kit depend on this crate; surfaces see the traits. It
//! must not depend on actix, redis, JOSE libraries or any surface crate: it stores what it is
//! given (a private key arrives already encrypted) and knows nothing of HTTP.
//!
//! Shape: one pool of `AnyConnection` (a diesel `MultiConnection`), so each query is
//! written once for both backends; every diesel call runs on tokio's blocking pool through one
//! helper, except client writes, which one writer thread commits in groups (`group`); every
//! diesel error is mapped to [`StoreError`] in one function.

/// `INSERT INTO $table VALUES (..), (..), ...` of the rows in `$rows` (a slice), on the inner
/// connection: diesel cannot build a multi-row INSERT for a `MultiConnection` that includes
/// SQLite (SQLite's batch insert is a backend-specific special case), so each backend gets the
/// same statement through its own connection. This is still inside the caller's transaction,
/// whose state lives in the inner connection. Evaluates to diesel's `QueryResult<usize>`.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        match $conn {
            crate::conn::AnyConnection::Postgresql(pg) => diesel::insert_into($table).values($rows).execute(pg),
            crate::conn::AnyConnection::Sqlite(lite) => diesel::insert_into($table).values($rows).execute(lite),
        }
    };
}

mod audit;
mod clients;
mod conn;
mod group;
mod keys;
mod schema;
mod tokens;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use diesel::connection::{AnsiTransactionManager, Connection, SimpleConnection, TransactionManager};
use diesel::r2d2::{ManageConnection, Pool};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tessera_store::{Health, StoreError};

use crate::conn::{AnyConnection, Manager, Target, TracingErrorHandler};
use crate::group::GroupWriter;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Key of the PostgreSQL advisory lock held while migrating, so that nodes starting together
/// apply each migration once instead of racing on the same `CREATE TABLE`. Any fixed number works;
/// this one is "TESSERA" in ASCII, unlikely to collide with another application's lock.
const MIGRATION_LOCK: i64 = 0x54_45_53_53_45_52_41;

/// Which database a [`DieselStore`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// Connection pool settings.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Most connections open at once (at least 1). Ignored for `sqlite::memory:`, which always
    /// uses exactly one connection because the database lives inside it.
    pub max_size: u32,
    /// How long a caller waits for a connection before getting [`StoreError::Unavailable`]; also
    /// the limit for the first connection made by [`DieselStore::connect`]. Must be non-zero.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions { max_size: 8, connection_timeout: Duration::from_secs(5) }
    }
}

/// The diesel-backed store. Cloning is cheap (it clones the pool handle) and clones share the
/// pool.
#[derive(Clone)]
pub struct DieselStore {
    pool: Pool<Manager>,
    backend: Backend,
    /// Client inserts and updates go through here: one transaction and one commit for all the
    /// writes waiting at a time (see `group`).
    writer: GroupWriter,
    /// Held by every clone; the SQLite checkpoint thread stops when the last one is dropped.
    _alive: std::sync::Arc<()>,
}

// Hand-written: the derived one would print the pool, and a pool's manager holds the URL.
impl fmt::Debug for DieselStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselStore").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl DieselStore {
    /// Opens a pool on `url` and applies pending migrations.
    ///
    /// `url` is `postgres://...` / `postgresql://...` (libpq syntax), `sqlite://PATH` (relative or
    /// absolute; the directory must exist) or `sqlite::memory:`. Any other scheme fails with
    /// [`StoreError::Internal`] naming the scheme.
    ///
    /// A database that cannot be reached now fails with [`StoreError::Unavailable`] carrying the
    /// driver's message (passwords removed). Once connected, the pool is built without requiring
    /// its connections to be up: if the database goes away later, calls fail with `Unavailable`
    /// until it is back, and the process never needs a restart.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<DieselStore, StoreError> {
        // r2d2 panics on these instead of returning an error.
        if options.max_size == 0 {
            return Err(StoreError::Internal("pool max_size must be at least 1".into()));
        }
        if options.connection_timeout.is_zero() {
            return Err(StoreError::Internal("pool connection_timeout must be non-zero".into()));
        }
        let target = Target::parse(url).map_err(StoreError::Internal)?;
        let backend = target.backend();
        let manager = Manager::new(target.clone());

        // A first connection made directly, not through the pool: the pool only reports "timed
        // out" if no attempt finished in time, while this gives the driver's reason. The blocking
        // call has no timeout of its own (libpq waits for TCP), hence the outer one.
        let probe_manager = manager.clone();
        let probe = tokio::time::timeout(
            options.connection_timeout,
            tokio::task::spawn_blocking(move || probe_manager.connect()),
        )
        .await
        .map_err(|_| {
            StoreError::Unavailable(format!(
                "no connection to the {backend} database within {:?}",
                options.connection_timeout
            ))
        })?
        .map_err(join_error)?
        .map_err(|e| StoreError::Unavailable(e.0))?;

        let memory = matches!(target, Target::SqliteMemory);
        let builder = Pool::builder()
            .connection_timeout(options.connection_timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(TracingErrorHandler));
        let builder = if memory {
            // The database exists only inside its connection: one connection, never recycled.
            builder.max_size(1).max_lifetime(None).idle_timeout(None)
        } else {
            builder.max_size(options.max_size)
        };
        // `build_unchecked`: the pool opens its connections in the background and keeps
        // retrying, instead of failing here if the database blinks right after the probe.
        let pool = builder.build_unchecked(manager);
        let writer = GroupWriter::start(pool.clone())?;
        let alive = std::sync::Arc::new(());
        if let Target::SqliteFile(path) = &target {
            conn::Checkpointer::start(path.clone(), std::sync::Arc::downgrade(&alive))
                .map_err(|e| StoreError::Unavailable(e.0))?;
        }
        let store = DieselStore { pool, backend, writer, _alive: alive };

        if memory {
            drop(probe);
            store.run(migrate).await?;
        } else {
            // On the probe, which is closed afterwards: a PostgreSQL session lock taken for the
            // migrations can then never stay behind on a pooled connection.
            let mut probe = probe;
            tokio::task::spawn_blocking(move || migrate(&mut probe)).await.map_err(join_error)??;
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `f` with a pooled connection on tokio's blocking pool. Every diesel call goes through
    /// here, so no diesel I/O ever blocks an async worker thread.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&mut conn)
        })
        .await
        .map_err(join_error)?
    }
}

/// What a transaction is for; decides how it begins (see [`transaction`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tx {
    /// Several reads that must see one state of the database (a client row and its scopes).
    Read,
    /// Any write. Several processes may write the same database, so writes must not decide on
    /// data another writer is about to change (the last audit record above all).
    Write,
}

/// Runs `f` inside one database transaction: committed if `f` returns `Ok`, rolled back
/// otherwise. Every multi-statement operation goes through here, so the begin statements below
/// are the only transaction policy of the crate (the group writer only adds savepoints inside
/// one, see `group`).
///
/// - SQLite writes begin `IMMEDIATE`, taking the database's write lock up front (waiting up to
///   `busy_timeout`). A deferred `BEGIN` would let two connections read the same last audit seq
///   and then fail the second on lock upgrade with `SQLITE_BUSY`, which skips the busy handler.
/// - PostgreSQL reads begin `REPEATABLE READ, READ ONLY`: one snapshot for all statements (under
///   the default READ COMMITTED, a client row and its scopes could come from different commits).
///   PostgreSQL writes keep READ COMMITTED; what needs serialising (the audit chain) takes an
///   advisory lock, see `audit::append_in_tx`.
/// - SQLite reads use a plain `BEGIN`: in WAL mode the first read fixes the snapshot.
///
/// diesel's `Connection::transaction` cannot be used: it needs an error type convertible from
/// diesel's, which [`StoreError`] (foreign to this crate) is not, and it has no custom begin for a
/// `MultiConnection`. The begin goes to the inner connection's `AnsiTransactionManager`, which is
/// where `AnyConnection` keeps its transaction state, so commit and rollback through
/// `AnyConnection` see it.
pub(crate) fn transaction<T>(
    conn: &mut AnyConnection,
    kind: Tx,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    type AnyManager = <AnyConnection as Connection>::TransactionManager;
    let began = match (&mut *conn, kind) {
        (AnyConnection::Sqlite(lite), Tx::Write) => {
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")
        }
        (AnyConnection::Sqlite(lite), Tx::Read) => AnsiTransactionManager::begin_transaction(lite),
        (AnyConnection::Postgresql(pg), Tx::Read) => {
            AnsiTransactionManager::begin_transaction_sql(pg, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        }
        (AnyConnection::Postgresql(pg), Tx::Write) => AnsiTransactionManager::begin_transaction(pg),
    };
    began.map_err(db_error)?;
    match f(conn) {
        Ok(value) => {
            // A failed COMMIT has rolled back (or marked the connection broken, so the pool drops
            // it): nothing of `f` is stored.
            AnyManager::commit_transaction(conn).map_err(db_error)?;
            Ok(value)
        }
        Err(e) => {
            // The original error is what the caller needs. If the rollback fails too, diesel marks
            // the connection broken and the pool discards it instead of reusing an open
            // transaction.
            if let Err(rollback) = AnyManager::rollback_transaction(conn) {
                tracing::warn!(error = %rollback, "rolling back a failed transaction failed");
            }
            Err(e)
        }
    }
}

/// Applies the migrations that are not yet applied; already applied ones are skipped, so this
/// runs on every start.
fn migrate(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        StoreError::Internal(format!("applying database migrations: {e}"))
    };
    let applied = match conn {
        AnyConnection::Postgresql(pg) => {
            pg.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).map_err(db_error)?;
            let result = pg.run_pending_migrations(POSTGRES_MIGRATIONS).map(|v| v.len());
            // Unlock even after a failure; closing the connection would release it as well.
            let unlocked = pg.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            let applied = result.map_err(failed)?;
            unlocked.map_err(db_error)?;
            applied
        }
        AnyConnection::Sqlite(lite) => {
            lite.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()).map_err(failed)?
        }
    };
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}

/// The one mapping from diesel errors to [`StoreError`]. Callers decide on the variant only;
/// the message is for logs.
/// PostgreSQL's message for SQLSTATE 40P01 (diesel has no kind for it and does not expose the
/// SQLSTATE).
pub(crate) const DEADLOCK: &str = "deadlock detected";

pub(crate) fn db_error(e: DieselError) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            StoreError::Conflict(conflict_message(info.constraint_name(), info.message()))
        }
        // The server went away mid-call (restart, failover): worth retrying.
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        // PostgreSQL broke a lock cycle or a serialization conflict by failing this transaction:
        // nothing of it was applied, and it is worth retrying (see `group::is_transient`).
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, info) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        DieselError::DatabaseError(_, info) if info.message().starts_with(DEADLOCK) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        DieselError::DeserializationError(e) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Internal(other.to_string()),
    }
}

/// Names the uniqueness rule that was broken when callers must tell rules apart (a reused SSA
/// `jti` is refused differently from a duplicate `client_id`). PostgreSQL reports the constraint
/// name (`clients_ssa_jti_unique`), which stays English when `lc_messages` translates the message;
/// SQLite reports no name, only the message `UNIQUE constraint failed: clients.ssa_jti`.
fn conflict_message(constraint: Option<&str>, message: &str) -> String {
    let names_ssa_jti = constraint.map_or_else(|| message.contains("clients.ssa_jti"), |c| c.contains("ssa_jti"));
    if names_ssa_jti { format!("ssa_jti already registered ({message})") } else { message.to_owned() }
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Internal(format!("database task failed: {e}"))
}

#[async_trait]
impl Health for DieselStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(db_error)).await
    }
}

#[cfg(test)]
mod tests {
    use super::conflict_message;

    #[test]
    fn conflicts_on_ssa_jti_are_named_on_both_backends() {
        // PostgreSQL: the constraint name decides, whatever language the message is in.
        let pg = conflict_message(Some("clients_ssa_jti_unique"), "doppelter Schlüsselwert");
        assert!(pg.starts_with("ssa_jti already registered"), "{pg}");
        let pg_pkey = conflict_message(Some("clients_pkey"), "duplicate key value violates unique constraint");
        assert!(!pg_pkey.contains("ssa_jti"), "{pg_pkey}");
        // SQLite: only the message names the column.
        let lite = conflict_message(None, "UNIQUE constraint failed: clients.ssa_jti");
        assert!(lite.starts_with("ssa_jti already registered"), "{lite}");
        let lite_pkey = conflict_message(None, "UNIQUE constraint failed: clients.client_id");
        assert_eq!(lite_pkey, "UNIQUE constraint failed: clients.client_id");
    }
}
