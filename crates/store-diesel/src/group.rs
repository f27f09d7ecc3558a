//! Group commit of client writes: many callers, one transaction, one commit (one `fsync` with
//! SQLite's `synchronous=FULL`, one WAL flush on PostgreSQL).
//!
//! A caller hands its [`Write`] to the one writer thread of the store and waits for its own
//! result. The writer takes everything already queued (at most [`MAX_BATCH`]), and while that
//! batch commits the next one fills: under load each commit carries many writes, when idle a
//! write is committed alone at once (no lingering).
//!
//! One batch, one [`Tx::Write`] transaction:
//! 1. each write's own rows inside a SAVEPOINT, so that a write refused by the database (a
//!    replayed SSA `jti`, a duplicate `client_id`, an update of an unknown client) is rolled back
//!    alone and its caller gets exactly the error it would get on its own. Refusals are rare, so
//!    a batch is first written without savepoints, and written again with them only if one of
//!    its writes was refused (the first attempt is rolled back whole);
//! 2. the audit events of the writes that went through, in queue order, in one `append_in_tx`:
//!    the chain is the one that running them one after the other would give, and no audit row
//!    is ever written inside a savepoint that may be rolled back;
//! 3. one COMMIT. Every caller hears only after it returned.
//!
//! The audit append comes last for a reason on PostgreSQL: it takes the advisory lock that
//! serialises the chain, and a transaction holding it must never wait on a client row. Were the
//! events appended inside each write's savepoint, the lock taken for the first write would be
//! held while the next write's INSERT waits on another node's uncommitted row with the same
//! `ssa_jti`, and that node's transaction would wait on the lock: a deadlock, and a replayed
//! statement answered with a deadlock error instead of a conflict. This keeps the order that
//! one transaction per write had: client rows first, the audit lock last.
//!
//! Failures:
//! - BEGIN fails (SQLite busy beyond `busy_timeout`, connection lost): nothing was written; every
//!   caller gets that error, as each would alone.
//! - Anything before COMMIT that is not one write's own refusal (a SAVEPOINT statement, the audit
//!   append): the whole transaction is rolled back, then each write is replayed alone in its own
//!   transaction (what every write did before group commit), so each caller gets its own result
//!   and one bad write cannot fail the others. Nothing was committed yet, so nothing is applied
//!   twice.
//! - COMMIT fails: every caller gets the error and nothing is replayed. A failed COMMIT has rolled
//!   back on SQLite, but on PostgreSQL a connection lost during COMMIT leaves the outcome unknown
//!   to us, and a replay could store a write twice or report a stored one as a conflict.
//!
//! A caller that goes away (its future dropped) before its write is queued has written nothing;
//! after, the write goes through like any other and only the answer is lost: either way all of
//! it or none of it is stored, as with the per-request transactions before.

use std::panic::{AssertUnwindSafe, catch_unwind};

use diesel::connection::{Connection, SimpleConnection, TransactionManager};
use diesel::r2d2::{Pool, PooledConnection, R2D2Connection};
use tessera_core::audit::AuditEvent;
use tessera_store::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::audit::append_in_tx;
use crate::conn::{AnyConnection, Manager};
use crate::{Tx, db_error, transaction};

/// Most writes in one transaction. Large enough that a burst shares few commits, small enough
/// that the first caller of a full batch does not wait long for the last write's rows.
pub(crate) const MAX_BATCH: usize = 256;

/// Writes waiting for the writer. Beyond this, callers wait to queue: backpressure instead of
/// unbounded memory when the database is slower than the arrivals.
const QUEUE: usize = 4096;

/// A write's own rows: runs inside an open transaction (in a savepoint of it when the batch is
/// written with savepoints), returns the error its caller must get. `Fn`, not `FnOnce`: a batch
/// may be written again with savepoints, or write by write.
pub(crate) type Rows = Box<dyn Fn(&mut AnyConnection) -> Result<(), StoreError> + Send>;

/// One caller's write: its rows, then its audit events, committed together or not at all.
pub(crate) struct Write {
    pub(crate) rows: Rows,
    pub(crate) audit: Vec<AuditEvent>,
}

struct Job {
    write: Write,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle callers use; cloned with the store. The writer thread stops when the last handle
/// is dropped.
#[derive(Clone)]
pub(crate) struct GroupWriter {
    queue: mpsc::Sender<Job>,
}

impl GroupWriter {
    /// Starts the writer thread on `pool`. A plain thread, not a tokio task: it blocks on the
    /// database for the whole batch and owns nothing async.
    pub(crate) fn start(pool: Pool<Manager>) -> Result<GroupWriter, StoreError> {
        let (queue, jobs) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("tessera-client-writer".into())
            .spawn(move || run_writer(&pool, jobs))
            .map_err(|e| StoreError::Internal(format!("starting the client writer thread: {e}")))?;
        Ok(GroupWriter { queue })
    }

    /// Returns once `write` is committed, or with the error that kept it out of the database.
    pub(crate) async fn write(&self, write: Write) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        self.queue.send(Job { write, done }).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Internal("the client writer has stopped".into())
}

fn run_writer(pool: &Pool<Manager>, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        // Whatever else is already waiting: that is the group in group commit.
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let writes: Vec<&Write> = batch.iter().map(|j| &j.write).collect();
        // A panic (a bug) must not stop the thread: every later write would then fail until a
        // restart. Whether the panicking batch was stored is unknown, and its callers are told so.
        let results = catch_unwind(AssertUnwindSafe(|| commit_batch(pool, &writes))).unwrap_or_else(|_| {
            tracing::error!(writes = writes.len(), "the client writer panicked while writing a batch");
            let e = StoreError::Internal("the client writer failed while writing; the outcome is unknown".into());
            writes.iter().map(|_| Err(same_error(&e))).collect()
        });
        drop(writes);
        for (job, result) in batch.drain(..).zip(results) {
            // A caller that went away no longer needs the answer; its write is settled anyway.
            let _ = job.done.send(result);
        }
    }
}

/// Where a batch transaction stopped, which decides what its callers hear.
#[derive(Clone, Copy)]
enum Stage {
    Begin,
    Writes,
    Commit,
}

/// How one attempt at writing a batch ended.
enum Attempt {
    /// Committed: one result per write (a refused write was rolled back to its savepoint).
    Committed(Vec<Result<(), StoreError>>),
    /// Without savepoints, a write was refused, so the whole transaction was rolled back.
    Refused,
    /// The transaction as a whole failed at that stage and was not committed.
    Failed(Stage, StoreError),
}

/// Writes `writes` in one transaction; one result per write, in order.
pub(crate) fn commit_batch(pool: &Pool<Manager>, writes: &[&Write]) -> Vec<Result<(), StoreError>> {
    let mut conn = match checkout(pool) {
        Ok(conn) => conn,
        Err(e) => return writes.iter().map(|_| Err(same_error(&e))).collect(),
    };
    // First without savepoints: refused writes are rare, and a savepoint costs two more round
    // trips per write on PostgreSQL, plus a subtransaction (past 64 in one transaction, every
    // other session's snapshots get slower). Only a batch with a refused write pays for them.
    let mut outcome = attempt(&mut conn, writes, false);
    if let Attempt::Refused = outcome {
        outcome = attempt(&mut conn, writes, true);
    }
    match outcome {
        Attempt::Committed(mut results) => {
            // A write that PostgreSQL failed to break a lock cycle with another node's batch was
            // rolled back to its savepoint and is in nothing committed: it is written again
            // alone, after the batch released its locks.
            for (result, write) in results.iter_mut().zip(writes) {
                if result.as_ref().is_err_and(is_transient) {
                    *result = match conn.is_broken() {
                        false => alone_retrying(&mut conn, write),
                        true => Err(StoreError::Unavailable("connection lost".into())),
                    };
                }
            }
            results
        }
        Attempt::Failed(Stage::Begin | Stage::Commit, e) => {
            tracing::warn!(error = %e, writes = writes.len(), "client batch not committed");
            writes.iter().map(|_| Err(same_error(&e))).collect()
        }
        Attempt::Failed(Stage::Writes, e) => {
            tracing::warn!(error = %e, writes = writes.len(), "client batch rolled back; writing each alone");
            // Back to the pool first: with a one-connection pool (`sqlite::memory:`) the replay
            // needs this very connection, and a broken one is discarded there.
            drop(conn);
            one_by_one(pool, writes)
        }
        // Only an attempt without savepoints ends so, and that one was retried with them.
        Attempt::Refused => {
            drop(conn);
            one_by_one(pool, writes)
        }
    }
}

/// One transaction for all of `writes`, each write in a savepoint of its own if `savepoints`,
/// else the first refused write rolls back everything.
fn attempt(conn: &mut AnyConnection, writes: &[&Write], savepoints: bool) -> Attempt {
    let mut stage = Stage::Begin;
    let mut refused = false;
    let outcome = transaction(conn, Tx::Write, |conn| {
        stage = Stage::Writes;
        let mut results = Vec::with_capacity(writes.len());
        let mut events = Vec::new();
        for write in writes {
            let result = if savepoints {
                savepoint(conn, &write.rows)?
            } else {
                (write.rows)(conn).inspect_err(|_| refused = true)?;
                Ok(())
            };
            if result.is_ok() {
                events.extend_from_slice(&write.audit);
            }
            results.push(result);
        }
        append_in_tx(conn, &events)?;
        if events.is_empty() {
            // On PostgreSQL, COMMIT in a transaction left aborted is answered as a ROLLBACK, not
            // as an error. Some statement must run after the last savepoint for an aborted state
            // to show up as an error here; the audit append does when it has events.
            conn.batch_execute("SELECT 1").map_err(db_error)?;
        }
        stage = Stage::Commit;
        Ok(results)
    });
    match outcome {
        Ok(results) => Attempt::Committed(results),
        Err(_) if refused => Attempt::Refused,
        Err(e) => Attempt::Failed(stage, e),
    }
}

/// Runs `rows` in a savepoint of the open transaction. The outer error is the savepoint's own
/// failure (the batch cannot go on); the inner one is the write's, already rolled back.
///
/// diesel's transaction manager issues `SAVEPOINT` / `RELEASE SAVEPOINT` / `ROLLBACK TO
/// SAVEPOINT` when a transaction is already open, on both inner connections of `AnyConnection`.
/// A unique violation leaves the transaction usable on SQLite (the statement alone is undone)
/// and aborted on PostgreSQL until the ROLLBACK TO, which restores it.
fn savepoint(conn: &mut AnyConnection, rows: &Rows) -> Result<Result<(), StoreError>, StoreError> {
    type AnyManager = <AnyConnection as Connection>::TransactionManager;
    AnyManager::begin_transaction(conn).map_err(db_error)?;
    match rows(conn) {
        Ok(()) => {
            AnyManager::commit_transaction(conn).map_err(db_error)?;
            Ok(Ok(()))
        }
        Err(e) => {
            AnyManager::rollback_transaction(conn).map_err(db_error)?;
            Ok(Err(e))
        }
    }
}

/// Each write in its own transaction: the path before group commit, kept for a batch that
/// failed as a whole before its COMMIT. A connection broken by one write is replaced for the next.
fn one_by_one(pool: &Pool<Manager>, writes: &[&Write]) -> Vec<Result<(), StoreError>> {
    let mut conn: Option<PooledConnection<Manager>> = None;
    writes
        .iter()
        .map(|write| {
            if conn.as_mut().is_none_or(|c| c.is_broken()) {
                conn = None;
                conn = Some(checkout(pool)?);
            }
            match conn.as_mut() {
                Some(c) => alone_retrying(c, write),
                None => Err(StoreError::Internal("no connection for the client write".into())),
            }
        })
        .collect()
}

/// `write` in a transaction of its own.
pub(crate) fn alone(conn: &mut AnyConnection, write: &Write) -> Result<(), StoreError> {
    transaction(conn, Tx::Write, |conn| {
        (write.rows)(conn)?;
        append_in_tx(conn, &write.audit)
    })
}

/// Whether `e` is PostgreSQL failing a transaction to break a deadlock or a serialization
/// conflict: the transaction did nothing and may simply be run again.
fn is_transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(crate::DEADLOCK) || m.starts_with("could not serialize"))
}

/// [`alone`], run again (up to three times) when PostgreSQL broke a deadlock by failing it. Two
/// nodes inserting the same new `ssa_jti`s in opposite orders wait on each other; the second run
/// then meets the other's committed row and gets the conflict the caller should see.
fn alone_retrying(conn: &mut AnyConnection, write: &Write) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        match alone(conn, write) {
            Err(e) if is_transient(&e) && tries < 3 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5 * tries));
            }
            other => return other,
        }
    }
}

fn checkout(pool: &Pool<Manager>) -> Result<PooledConnection<Manager>, StoreError> {
    pool.get().map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// The same error again, for each caller of a batch that failed as a whole (`StoreError` is not
/// `Clone`).
fn same_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::NotFound(m) => StoreError::NotFound(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
        other => StoreError::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    //! Batches made by hand, so that which writes share a transaction is certain (through the
    //! store's interface it depends on timing), on a SQLite file and on PostgreSQL.

    use std::time::Duration;

    use diesel::connection::SimpleConnection;
    use tessera_core::ClientId;
    use tessera_core::audit::{AuditEvent, AuditKind, AuditRecord, GENESIS_HASH, verify_chain};
    use tessera_core::client::ClientRecord;
    use tessera_store::contract::{sample_client, sample_event};
    use tessera_store::{AuditLog, ClientStore, StoreError};
    use tessera_testkit::pg::TestPg;

    use super::{Write, alone, commit_batch};
    use crate::clients::{insert_write, update_write};
    use crate::{Backend, DieselStore, PoolOptions, db_error};

    /// A store on a fresh SQLite file and, when a server can be had, one on a fresh PostgreSQL
    /// database. The guards keep the file and the database alive.
    struct Backends {
        stores: Vec<DieselStore>,
        _dir: tempfile::TempDir,
        _pg: Option<TestPg>,
    }

    async fn backends() -> Backends {
        let options = PoolOptions { max_size: 4, connection_timeout: Duration::from_secs(3) };
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("group.db").display());
        let mut stores = vec![DieselStore::connect(&url, options.clone()).await.unwrap()];
        let pg = TestPg::new();
        if let Some(pg) = &pg {
            stores.push(DieselStore::connect(pg.url(), options).await.unwrap());
        }
        Backends { stores, _dir: dir, _pg: pg }
    }

    async fn batch(store: &DieselStore, writes: Vec<Write>) -> Vec<Result<(), StoreError>> {
        let pool = store.pool.clone();
        tokio::task::spawn_blocking(move || {
            let writes: Vec<&Write> = writes.iter().collect();
            commit_batch(&pool, &writes)
        })
        .await
        .unwrap()
    }

    async fn sql(store: &DieselStore, sql: &'static str) {
        store.run(move |conn| conn.batch_execute(sql).map_err(db_error)).await.unwrap();
    }

    fn client(i: i64, jti: Option<&str>) -> ClientRecord {
        sample_client(&format!("client-{i}"), jti)
    }

    fn accepted(i: i64) -> Vec<AuditEvent> {
        // Two events per write, as a registration has (accepted + the onboarding decision).
        vec![
            sample_event(AuditKind::RegistrationAccepted, Some(&format!("client-{i}")), i * 10),
            sample_event(AuditKind::RegistrationAccepted, Some(&format!("client-{i}")), i * 10 + 1),
        ]
    }

    fn insert(i: i64, jti: Option<&str>) -> Write {
        insert_write(&client(i, jti), &accepted(i)).unwrap()
    }

    /// The whole log, verified link by link from the genesis hash.
    async fn chain(store: &DieselStore) -> Vec<AuditRecord> {
        let records = store.read(0, 10_000).await.unwrap();
        verify_chain(&records, 0, GENESIS_HASH.to_owned())
            .unwrap_or_else(|b| panic!("chain broken at {}: {}", b.seq, b.reason));
        records
    }

    fn numbers(records: &[AuditRecord]) -> Vec<i64> {
        records.iter().map(|r| r.event.data["n"].as_i64().unwrap()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_write_is_rolled_back_alone_with_its_own_error() {
        for store in backends().await.stores {
            let backend = store.backend();
            let mut duplicate_scope = client(5, Some("jti-5"));
            duplicate_scope.scopes.push(duplicate_scope.scopes[0].clone());
            let writes = vec![
                insert(1, Some("jti-1")),
                insert(2, Some("jti-2")),
                // The software statement of client 1, replayed.
                insert(3, Some("jti-1")),
                // The id of client 2 again.
                insert_write(&client(2, Some("jti-4")), &accepted(4)).unwrap(),
                // Its client row goes in, then its second scope row fails: the row must go too.
                insert_write(&duplicate_scope, &accepted(5)).unwrap(),
                update_write(&client(6, None), &accepted(6)).unwrap(),
                insert(7, None),
            ];
            let results = batch(&store, writes).await;
            let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
            assert_eq!(ok, [true, true, false, false, false, false, true], "{backend}: {results:?}");

            // Each refused write gets exactly what it gets alone, in a transaction of its own.
            let again = vec![
                insert(3, Some("jti-1")),
                insert_write(&client(2, Some("jti-4")), &accepted(4)).unwrap(),
                insert_write(&duplicate_scope, &accepted(5)).unwrap(),
                update_write(&client(6, None), &accepted(6)).unwrap(),
            ];
            for (batched, write) in results[2..6].iter().zip(again) {
                let single = store.run(move |conn| alone(conn, &write)).await;
                assert_eq!(format!("{batched:?}"), format!("{single:?}"), "{backend}");
            }
            match &results[2] {
                Err(StoreError::Conflict(m)) => assert!(m.contains("ssa_jti"), "{backend}: {m}"),
                other => panic!("{backend}: a replayed statement must be a Conflict naming ssa_jti: {other:?}"),
            }
            match &results[3] {
                Err(StoreError::Conflict(m)) => assert!(!m.contains("ssa_jti"), "{backend}: {m}"),
                other => panic!("{backend}: a duplicate client_id must be a Conflict: {other:?}"),
            }
            assert!(matches!(results[4], Err(StoreError::Conflict(_))), "{backend}: {:?}", results[4]);
            assert!(matches!(results[5], Err(StoreError::NotFound(_))), "{backend}: {:?}", results[5]);

            for (i, stored) in [(1, true), (2, true), (3, false), (5, false), (6, false), (7, true)] {
                let found = store.get_client(&ClientId::new(format!("client-{i}"))).await.unwrap();
                assert_eq!(found.is_some(), stored, "{backend}: client-{i}");
            }
            // Client 2 is the first one, not the duplicate.
            let two = store.get_client(&ClientId::new("client-2")).await.unwrap().unwrap();
            assert_eq!(two.ssa_jti.as_deref(), Some("jti-2"), "{backend}");
            // The refused writes left no scope rows behind either (a leftover would break this
            // insert of client 5 through its foreign key or primary key).
            store.insert_client(&client(5, Some("jti-5")), &[]).await.unwrap();

            // The chain holds the events of the three stored writes, in queue order, no gap.
            assert_eq!(numbers(&chain(&store).await), [10, 11, 20, 21, 70, 71], "{backend}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chain_continues_across_batches_with_failures() {
        for store in backends().await.stores {
            let backend = store.backend();
            store.insert_client(&client(100, Some("jti-x")), &accepted(100)).await.unwrap();
            for round in 0..3 {
                let base = round * 10 + 1;
                let writes = vec![
                    insert(base, None),
                    insert(base + 1, Some("jti-x")),
                    insert(base + 2, None),
                    insert(base + 3, Some("jti-x")),
                ];
                let ok: Vec<bool> = batch(&store, writes).await.iter().map(Result::is_ok).collect();
                assert_eq!(ok, [true, false, true, false], "{backend}");
            }
            let records = chain(&store).await;
            assert_eq!(
                numbers(&records),
                [1000, 1001, 10, 11, 30, 31, 110, 111, 130, 131, 210, 211, 230, 231],
                "{backend}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_audit_append_replays_each_write_alone() {
        for store in backends().await.stores {
            let backend = store.backend();
            // An audit row that the database refuses: the batch's one append fails for all.
            match backend {
                Backend::Sqlite => {
                    sql(
                        &store,
                        "CREATE TRIGGER boom BEFORE INSERT ON audit_log WHEN NEW.actor = 'boom' \
                         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
                    )
                    .await
                }
                Backend::Postgres => {
                    sql(
                        &store,
                        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                         IF NEW.actor = 'boom' THEN RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$; \
                         CREATE TRIGGER boom BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION boom();",
                    )
                    .await
                }
            }
            let mut boom = accepted(2);
            boom[1].actor = "boom".into();
            let writes = vec![insert(1, None), insert_write(&client(2, None), &boom).unwrap(), insert(3, None)];
            let results = batch(&store, writes).await;
            assert!(results[0].is_ok() && results[2].is_ok(), "{backend}: {results:?}");
            match &results[1] {
                Err(e) => assert!(e.to_string().contains("boom"), "{backend}: {e}"),
                Ok(()) => panic!("{backend}: the refused audit row must fail its write"),
            }
            assert!(store.get_client(&ClientId::new("client-2")).await.unwrap().is_none(), "{backend}");
            assert!(store.get_client(&ClientId::new("client-3")).await.unwrap().is_some(), "{backend}");
            assert_eq!(numbers(&chain(&store).await), [10, 11, 30, 31], "{backend}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_write_and_stores_nothing() {
        for store in backends().await.stores {
            let backend = store.backend();
            // A deferred foreign key is checked at COMMIT: the one way to make a COMMIT fail on
            // demand on both backends.
            sql(
                &store,
                "CREATE TABLE later (client_id TEXT REFERENCES clients (client_id) DEFERRABLE INITIALLY DEFERRED)",
            )
            .await;
            let ghost = Write {
                rows: Box::new(|conn| conn.batch_execute("INSERT INTO later VALUES ('ghost')").map_err(db_error)),
                audit: vec![],
            };
            let results = batch(&store, vec![insert(1, None), ghost, insert(3, None)]).await;
            assert!(results.iter().all(Result::is_err), "{backend}: {results:?}");
            let first = format!("{:?}", results[0]);
            assert!(results.iter().all(|r| format!("{r:?}") == first), "{backend}: {results:?}");
            for i in [1, 3] {
                let found = store.get_client(&ClientId::new(format!("client-{i}"))).await.unwrap();
                assert!(found.is_none(), "{backend}: client-{i} stored by a failed commit");
            }
            assert!(chain(&store).await.is_empty(), "{backend}");

            // The writer and its connections are fine afterwards.
            store.insert_client(&client(1, None), &accepted(1)).await.unwrap();
            assert_eq!(numbers(&chain(&store).await), [10, 11], "{backend}");
        }
    }
}
