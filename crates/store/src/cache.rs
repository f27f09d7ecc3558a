//! The in-memory client directory the hot paths read (token issue, introspection): never SQL.
//! Writers update the store first, then the cache (write-through); other nodes learn of changes
//! through change notices, and of changes by other processes through `poll_changes`.
//!
//! It holds the compact [`CachedClient`] view of each client, not the stored [`ClientRecord`]:
//! at 100,000 clients the full records cost over 500 MB resident, the views a small fraction
//! of that (`cargo bench -p tessera-store --bench cache_memory`).

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tessera_core::client::{CachedClient, ClientRecord, SharedNames};
use tessera_core::{ClientId, UnixTime};

use crate::{ClientStore, StoreError};

/// Clients read from the store per query when the whole cache is (re)loaded.
const LOAD_PAGE_SIZE: usize = 1_000;

/// How far before the previous poll [`ClientCache::poll_changes`] looks: `updated_at` is in
/// whole seconds, and a commit may become visible a little after a later one.
const POLL_LOOK_BACK_SECS: i64 = 2;

/// Clients read whole per query by [`ClientCache::poll_changes`].
const POLL_BATCH: usize = 500;

/// A set entry keyed by the client id inside the view, so the id is not stored a second time
/// as a map key: that copy and the wider map slots cost 63 bytes per client (`cache_memory`:
/// 414 bytes per client in a `HashMap<ClientId, Arc<CachedClient>>`, 351 here).
struct Entry(Arc<CachedClient>);

impl Borrow<ClientId> for Entry {
    fn borrow(&self) -> &ClientId {
        &self.0.client_id
    }
}

// Hash and Eq by id only, consistent with `Borrow<ClientId>` (HashSet's requirement).
impl Hash for Entry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.client_id.hash(state);
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for Entry {}

#[derive(Default)]
pub struct ClientCache {
    state: RwLock<State>,
    /// Risk tiers and scope names, shared by every view. Separate from `state` so that building
    /// a view never blocks readers.
    names: Mutex<SharedNames>,
}

#[derive(Default)]
struct State {
    clients: HashSet<Entry>,
    /// Full loads running; while there is one, `touched` collects the ids written since it began.
    loads: usize,
    touched: HashSet<ClientId>,
}

impl State {
    fn insert(&mut self, entry: Entry) {
        if self.loads > 0 {
            self.touched.insert(entry.0.client_id.clone());
        }
        self.clients.replace(entry);
    }
}

/// A full load in progress: while one runs, writes are remembered so that the loaded content
/// does not overwrite them. Ends on drop, so a cancelled load does not leave writes being
/// remembered forever.
struct Loading<'a>(&'a ClientCache);

impl<'a> Loading<'a> {
    fn start(cache: &'a ClientCache) -> Self {
        cache.write().loads += 1;
        Loading(cache)
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        let mut state = self.0.write();
        state.loads = state.loads.saturating_sub(1);
        if state.loads == 0 {
            state.touched = HashSet::new();
        }
    }
}

/// A whole new content being built, a page at a time, before it replaces the old one.
struct Fresh {
    set: HashSet<Entry>,
    names: SharedNames,
}

impl Fresh {
    fn new() -> Self {
        Fresh { set: HashSet::new(), names: SharedNames::new() }
    }

    fn add(&mut self, record: &ClientRecord) {
        self.set.replace(Entry(Arc::new(CachedClient::new(record, &mut self.names))));
    }
}

impl ClientCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, id: &ClientId) -> Option<Arc<CachedClient>> {
        self.read().clients.get(id).map(|e| e.0.clone())
    }

    fn view(&self, client: &ClientRecord) -> CachedClient {
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        CachedClient::new(client, &mut names)
    }

    fn insert(&self, view: CachedClient) {
        let entry = Entry(Arc::new(view));
        self.write().insert(entry);
    }

    /// Caches the view of `client`, replacing any earlier view of the same id.
    pub fn put(&self, client: ClientRecord) {
        self.insert(self.view(&client));
    }

    /// Like [`put`](Self::put), but leaves the cache alone when it already holds exactly this
    /// view: the change poller sees each change several times (it looks back a little), and
    /// re-applying an unchanged client would only take the write lock and churn memory. Whole
    /// views are compared, not just `updated_at` and status: `updated_at` has a resolution of one
    /// second, and another process may change scopes or dates twice within one. Returns whether
    /// the cache changed.
    pub fn refresh(&self, client: &ClientRecord) -> bool {
        let view = self.view(client);
        if self.get(&client.client_id).is_some_and(|cached| *cached == view) {
            return false;
        }
        self.insert(view);
        true
    }

    /// One poll for client changes written by another process (the admin command line, another
    /// node without Redis): `since` is the previous poll's time, `now` this poll's. Returns how
    /// many views changed.
    ///
    /// `updated_at` has a resolution of one second and a commit may become visible after a later
    /// one, so each poll looks back `POLL_LOOK_BACK_SECS` before `since`, and sees every change
    /// about five times. Reading those rows whole every time (metadata with the software
    /// statement) was most of a node's memory during a registration burst, so a poll reads only
    /// `(client_id, updated_at)`, and whole only:
    /// - the clients the cache does not hold at that `updated_at` (new, or changed since): at
    ///   once, so they reach the cache within a poll;
    /// - the others twice: in the first poll after their second has ended, which catches a
    ///   second change within the same second (`updated_at` cannot tell them apart) a second or
    ///   so later, and in the last poll that looks back far enough to see them
    ///   (`updated_at < now - POLL_LOOK_BACK_SECS`), which catches a commit that became visible
    ///   late, as the old poller (which read every row whole every time) did.
    ///
    /// A whole read is applied with [`refresh`](Self::refresh), in batches of `POLL_BATCH`
    /// clients, so that only one batch of full records is in memory at a time.
    pub async fn poll_changes(
        &self,
        store: &dyn ClientStore,
        since: UnixTime,
        now: UnixTime,
    ) -> Result<usize, StoreError> {
        let versions = store.versions_since(since.minus(POLL_LOOK_BACK_SECS)).await?;
        let second_ended = |at: UnixTime| since <= at && at < now;
        let last_look = |at: UnixTime| at < now.minus(POLL_LOOK_BACK_SECS);
        let wanted: Vec<ClientId> = versions
            .into_iter()
            .filter(|(id, at)| second_ended(*at) || last_look(*at) || self.get(id).is_none_or(|c| c.updated_at != *at))
            .map(|(id, _)| id)
            .collect();
        let mut changed = 0;
        for batch in wanted.chunks(POLL_BATCH) {
            for client in store.get_clients(batch).await? {
                if self.refresh(&client) {
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }

    /// Replaces the whole content (tests, small sets; a node loads with [`load`](Self::load)).
    pub fn replace_all(&self, clients: Vec<ClientRecord>) {
        let mut fresh = Fresh::new();
        for c in &clients {
            fresh.add(c);
        }
        self.set_names(fresh.names);
        let old = std::mem::replace(&mut self.write().clients, fresh.set);
        drop(old);
    }

    /// Replaces the content with every client of `store` (start-up, or a full resync), reading
    /// `LOAD_PAGE_SIZE` records at a time and keeping only their views before the next page:
    /// reading all full records at once (~5 KB each) peaked at several hundred MB with 100,000
    /// clients and left the allocator holding memory it does not give back.
    ///
    /// The old content is read until the new one is complete, and a client written while the
    /// pages were read (`put`, `refresh`) keeps its newer view. Returns the number of clients.
    pub async fn load(&self, store: &dyn ClientStore) -> Result<usize, StoreError> {
        self.load_in_pages(store, LOAD_PAGE_SIZE).await
    }

    async fn load_in_pages(&self, store: &dyn ClientStore, page_size: usize) -> Result<usize, StoreError> {
        let _loading = Loading::start(self);
        let fresh = Self::read_pages(store, page_size).await?;
        let Fresh { mut set, names } = fresh;
        let mut state = self.write();
        for id in &state.touched {
            if let Some(written) = state.clients.get(id) {
                set.replace(Entry(written.0.clone()));
            }
        }
        let old = std::mem::replace(&mut state.clients, set);
        let n = state.clients.len();
        drop(state);
        self.set_names(names);
        // Freed after the write lock is released: readers do not wait for 100,000 deallocations.
        drop(old);
        Ok(n)
    }

    async fn read_pages(store: &dyn ClientStore, page_size: usize) -> Result<Fresh, StoreError> {
        let mut fresh = Fresh::new();
        let mut after: Option<ClientId> = None;
        loop {
            let page = store.list_clients_page(after.as_ref(), page_size).await?;
            for c in &page {
                fresh.add(c);
            }
            match page.last() {
                Some(last) if page.len() >= page_size => after = Some(last.client_id.clone()),
                _ => return Ok(fresh),
            }
        }
    }

    /// Names in views written from now on are shared through `names` (those of the views it
    /// replaces stay valid: each view holds its own references).
    fn set_names(&self, names: SharedNames) {
        *self.names.lock().unwrap_or_else(PoisonError::into_inner) = names;
    }

    pub fn len(&self) -> usize {
        self.read().clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<CachedClient>> {
        self.read().clients.iter().map(|e| e.0.clone()).collect()
    }
}

/// Revoked `jti`s with their token's expiry: the in-memory copy every introspection reads. The
/// durable copy is the `TokenStore`; other nodes learn of revocations through change notices.
#[derive(Default)]
pub struct Revocations {
    map: RwLock<HashMap<String, tessera_core::UnixTime>>,
}

impl Revocations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_revoked(&self, jti: &str) -> bool {
        match self.map.read() {
            Ok(m) => m.contains_key(jti),
            // Fail closed: with the lock poisoned, treat the token as revoked.
            Err(_) => true,
        }
    }

    pub fn insert(&self, jti: String, expires_at: tessera_core::UnixTime) {
        if let Ok(mut m) = self.map.write() {
            m.insert(jti, expires_at);
        }
    }

    pub fn replace_all(&self, entries: Vec<(String, tessera_core::UnixTime)>) {
        if let Ok(mut m) = self.map.write() {
            *m = entries.into_iter().collect();
        }
    }

    /// Forgets entries whose token has expired (an expired token is inactive anyway).
    pub fn purge(&self, now: tessera_core::UnixTime) {
        if let Ok(mut m) = self.map.write() {
            m.retain(|_, exp| *exp > now);
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::json;
    use tessera_core::UnixTime;
    use tessera_core::client::{ClientStatus, ScopeState};

    use super::*;
    use crate::MemoryStore;

    /// The contract's sample client, with one granted scope and a subject rule.
    fn record(id: &str, updated_at: i64) -> ClientRecord {
        let mut c = crate::contract::sample_client(id, None);
        c.updated_at = UnixTime(updated_at);
        c.scopes.truncate(1);
        c.metadata = json!({ "tls_client_auth_subject_dn": "CN=soft-1" }).as_object().cloned().unwrap();
        c
    }

    async fn store_with(n: usize) -> MemoryStore {
        let store = MemoryStore::new();
        for i in 0..n {
            store.insert_client(&record(&format!("c{i:03}"), 10), &[]).await.unwrap();
        }
        store
    }

    #[test]
    fn put_get_and_replace_all_key_by_client_id() {
        let cache = ClientCache::new();
        cache.put(record("a", 1));
        cache.put(record("b", 1));
        let mut newer = record("a", 2);
        newer.status = ClientStatus::Suspended;
        cache.put(newer);
        assert_eq!(cache.len(), 2);
        let a = cache.get(&ClientId::new("a")).unwrap();
        assert_eq!((a.status, a.updated_at), (ClientStatus::Suspended, UnixTime(2)));
        assert!(cache.get(&ClientId::new("c")).is_none());
        // Views share their names.
        let b = cache.get(&ClientId::new("b")).unwrap();
        assert!(std::ptr::eq(a.risk_tier(), b.risk_tier()));

        cache.replace_all(vec![record("c", 1)]);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&ClientId::new("a")).is_none());
        assert_eq!(cache.all().len(), 1);
    }

    #[test]
    fn refresh_skips_only_an_identical_view() {
        let cache = ClientCache::new();
        assert!(cache.refresh(&record("a", 5)), "unknown: cached");
        let first = cache.get(&ClientId::new("a")).unwrap();
        assert!(!cache.refresh(&record("a", 5)), "seen again by the next poll: nothing to do");
        assert!(Arc::ptr_eq(&first, &cache.get(&ClientId::new("a")).unwrap()), "the cached view is untouched");
        // Another change within the same second, status unchanged: still applied.
        let mut same_second = record("a", 5);
        same_second.scopes[0].state = ScopeState::Denied;
        assert!(cache.refresh(&same_second));
        assert_eq!(cache.get(&ClientId::new("a")).unwrap().scope_state("accounts:read"), Some(ScopeState::Denied));
        // A change the view does not hold (last use, metadata the hot paths never read): skipped.
        let mut usage = same_second.clone();
        usage.last_used_at = Some(UnixTime(6));
        usage.metadata.insert("client_name".into(), json!("renamed"));
        assert!(!cache.refresh(&usage));
    }

    #[tokio::test]
    async fn load_reads_every_page() {
        let store = store_with(7).await;
        let cache = ClientCache::new();
        cache.put(record("gone", 1));
        assert_eq!(cache.load_in_pages(&store, 3).await.unwrap(), 7, "three pages: 3 + 3 + 1");
        assert!(cache.get(&ClientId::new("gone")).is_none(), "a load replaces the content");
        for i in 0..7 {
            assert!(cache.get(&ClientId::new(format!("c{i:03}"))).is_some(), "c{i:03}");
        }
        // A page size that divides the count exactly ends on an empty page.
        assert_eq!(cache.load_in_pages(&store_with(6).await, 3).await.unwrap(), 6);
        assert_eq!(cache.load(&MemoryStore::new()).await.unwrap(), 0);
    }

    /// A memory store that can pause in its first page read (so that a write happens during a
    /// load), and counts the clients it returns whole through `get_clients`.
    #[derive(Default)]
    struct Instrumented {
        inner: MemoryStore,
        pause: bool,
        reached: tokio::sync::Notify,
        resume: tokio::sync::Notify,
        whole: std::sync::atomic::AtomicUsize,
    }

    impl Instrumented {
        fn whole_reads(&self) -> usize {
            self.whole.swap(0, std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl ClientStore for Instrumented {
        async fn insert_client(
            &self,
            c: &ClientRecord,
            a: &[tessera_core::audit::AuditEvent],
        ) -> Result<(), StoreError> {
            self.inner.insert_client(c, a).await
        }
        async fn update_client(
            &self,
            c: &ClientRecord,
            a: &[tessera_core::audit::AuditEvent],
        ) -> Result<(), StoreError> {
            self.inner.update_client(c, a).await
        }
        async fn get_client(&self, id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
            self.inner.get_client(id).await
        }
        async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
            self.inner.list_clients().await
        }
        async fn list_clients_page(
            &self,
            after: Option<&ClientId>,
            limit: usize,
        ) -> Result<Vec<ClientRecord>, StoreError> {
            let page = self.inner.list_clients_page(after, limit).await;
            if self.pause && after.is_none() {
                self.reached.notify_one();
                self.resume.notified().await;
            }
            page
        }
        async fn touch_last_used(&self, uses: &[(ClientId, UnixTime)]) -> Result<(), StoreError> {
            self.inner.touch_last_used(uses).await
        }
        async fn changed_since(&self, since: UnixTime) -> Result<Vec<ClientRecord>, StoreError> {
            self.inner.changed_since(since).await
        }
        async fn versions_since(&self, since: UnixTime) -> Result<Vec<(ClientId, UnixTime)>, StoreError> {
            self.inner.versions_since(since).await
        }
        async fn get_clients(&self, ids: &[ClientId]) -> Result<Vec<ClientRecord>, StoreError> {
            let found = self.inner.get_clients(ids).await?;
            self.whole.fetch_add(found.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(found)
        }
    }

    #[tokio::test]
    async fn polling_reads_each_change_whole_twice_and_misses_none() {
        let store = Instrumented::default();
        let cache = ClientCache::new();
        let poll = |since: i64, now: i64| cache.poll_changes(&store, UnixTime(since), UnixTime(now));
        // Registered through this node at 100: in the store and written through to the cache.
        store.insert_client(&record("mine", 100), &[]).await.unwrap();
        cache.put(record("mine", 100));
        // Registered by another process at 100.
        store.insert_client(&record("theirs", 100), &[]).await.unwrap();

        // Polls every half second (`now` in whole seconds), as the server runs them.
        assert_eq!(poll(100, 100).await.unwrap(), 1, "the other process's client, at once");
        assert_eq!(store.whole_reads(), 1, "only the client the cache did not hold");
        // Another process changes "mine" within the same second as its registration: same
        // updated_at, same status, another scope decision.
        let mut same_second = record("mine", 100);
        same_second.scopes[0].state = ScopeState::Denied;
        store.update_client(&same_second, &[]).await.unwrap();
        assert_eq!(poll(100, 100).await.unwrap(), 0, "not told apart while the second runs");
        // The first poll after second 100 reads both rows whole, and catches it.
        assert_eq!(poll(100, 101).await.unwrap(), 1);
        assert_eq!(store.whole_reads(), 2);
        let mine = cache.get(&ClientId::new("mine")).unwrap();
        assert_eq!(mine.scope_state("accounts:read"), Some(ScopeState::Denied));
        assert_eq!(poll(101, 101).await.unwrap(), 0);
        assert_eq!(poll(101, 102).await.unwrap(), 0);
        assert_eq!(poll(102, 102).await.unwrap(), 0);
        assert_eq!(store.whole_reads(), 0, "versions only in between");
        // A commit of second 100 that became visible late is still caught: the last poll that
        // looks back to 100 reads its rows whole once more.
        let mut late = same_second.clone();
        late.tokens_not_before = Some(UnixTime(100));
        store.update_client(&late, &[]).await.unwrap();
        assert_eq!(poll(102, 103).await.unwrap(), 1);
        assert_eq!(store.whole_reads(), 2);
        assert_eq!(cache.get(&ClientId::new("mine")).unwrap().tokens_not_before, Some(UnixTime(100)));
        // Then the rows are out of the window.
        assert_eq!(poll(103, 103).await.unwrap(), 0);
        assert_eq!(poll(103, 104).await.unwrap(), 0);
        assert_eq!(store.whole_reads(), 0);

        // A change with a new updated_at is read at once.
        let mut suspended = record("theirs", 104);
        suspended.status = ClientStatus::Suspended;
        store.update_client(&suspended, &[]).await.unwrap();
        assert_eq!(poll(104, 104).await.unwrap(), 1);
        assert_eq!(cache.get(&ClientId::new("theirs")).unwrap().status, ClientStatus::Suspended);
        assert_eq!(store.whole_reads(), 1);
        // After a failed or late poll (`since` not advanced), the wider window still gives every
        // row its reads.
        assert_eq!(poll(104, 110).await.unwrap(), 0);
        assert_eq!(store.whole_reads(), 1, "\"theirs\" read once more, unchanged");
    }

    #[tokio::test]
    async fn a_write_during_a_load_is_not_overwritten() {
        let store = Arc::new(Instrumented { inner: store_with(4).await, pause: true, ..Default::default() });
        let cache = Arc::new(ClientCache::new());
        let load = tokio::spawn({
            let (cache, store) = (cache.clone(), store.clone());
            async move { cache.load_in_pages(store.as_ref(), 2).await }
        });
        store.reached.notified().await;
        // Written through after the first page was read: the load must not bring back c000's
        // old version, nor drop a client registered meanwhile.
        let mut suspended = record("c000", 11);
        suspended.status = ClientStatus::Suspended;
        cache.put(suspended);
        cache.put(record("new", 11));
        store.resume.notify_one();
        assert_eq!(load.await.unwrap().unwrap(), 5);
        assert_eq!(cache.get(&ClientId::new("c000")).unwrap().status, ClientStatus::Suspended);
        assert!(cache.get(&ClientId::new("new")).is_some());
        let state = cache.read();
        assert!(state.touched.is_empty() && state.loads == 0, "nothing remembered after the load");
    }
}
