//! The governance logic, without HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tessera_core::audit::{AuditEvent, AuditKind, AuditRecord, BrokenLink, GENESIS_HASH, verify_chain};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeState};
use tessera_core::{ClientId, Clock, UnixTime};
use tessera_store::{AuditLog, ClientCache, ClientStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("client {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Per-tier thresholds of the automatic lifecycle.
#[derive(Clone, Debug)]
pub struct LifecyclePolicy {
    /// Tier -> seconds without use after which a client is suspended.
    pub dormancy_secs: BTreeMap<String, i64>,
    pub default_dormancy_secs: i64,
    /// Seconds a dormancy suspension lasts before the client is offboarded.
    pub offboard_grace_secs: i64,
}

impl LifecyclePolicy {
    fn dormancy_for(&self, tier: &str) -> i64 {
        self.dormancy_secs.get(tier).copied().unwrap_or(self.default_dormancy_secs)
    }
}

/// Filters of `clients list`.
#[derive(Clone, Debug, Default)]
pub struct ClientFilter {
    pub status: Option<ClientStatus>,
    pub tier: Option<String>,
    /// Matches the organisation id or (case-insensitively) a part of its name.
    pub owner: Option<String>,
    /// Unused (or never used) for at least this many seconds.
    pub dormant_for: Option<i64>,
    /// Expiring within this many seconds (or already expired).
    pub expiring_within: Option<i64>,
}

/// What the sweeper did to one client, and the rule that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SweepAction {
    pub client_id: String,
    pub action: &'static str,
    pub rule: String,
}

pub type ChangeHook = Arc<dyn Fn(&ClientId) + Send + Sync>;

pub struct Admin {
    clients: Arc<dyn ClientStore>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    lifecycle: LifecyclePolicy,
    cache: Option<Arc<ClientCache>>,
    on_change: Option<ChangeHook>,
}

/// The marker the sweeper puts in `status_reason`, so that it can tell its own dormancy
/// suspensions (which it may escalate to offboarding) from an administrator's.
const DORMANT_PREFIX: &str = "dormant:";

impl Admin {
    pub fn new(
        clients: Arc<dyn ClientStore>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        lifecycle: LifecyclePolicy,
    ) -> Admin {
        Admin { clients, audit, clock, lifecycle, cache: None, on_change: None }
    }

    /// In a server: keep this node's cache current and tell the other nodes.
    pub fn with_cache(mut self, cache: Arc<ClientCache>, on_change: Option<ChangeHook>) -> Admin {
        self.cache = Some(cache);
        self.on_change = on_change;
        self
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    async fn load(&self, id: &str) -> Result<ClientRecord, AdminError> {
        self.clients.get_client(&ClientId::new(id)).await?.ok_or_else(|| AdminError::NotFound(id.to_owned()))
    }

    async fn save(&self, client: ClientRecord, events: Vec<AuditEvent>) -> Result<ClientRecord, AdminError> {
        self.clients.update_client(&client, &events).await?;
        if let Some(cache) = &self.cache {
            cache.put(client.clone());
        }
        if let Some(hook) = &self.on_change {
            hook(&client.client_id);
        }
        Ok(client)
    }

    fn event(&self, kind: AuditKind, actor: &str, client: &ClientId, data: Value) -> AuditEvent {
        AuditEvent {
            at: self.clock.now(),
            kind,
            actor: actor.to_owned(),
            client_id: Some(client.clone()),
            data: data.as_object().cloned().unwrap_or_default(),
        }
    }

    pub async fn list(&self, filter: &ClientFilter) -> Result<Vec<ClientRecord>, AdminError> {
        let now = self.clock.now();
        let mut clients: Vec<ClientRecord> = self
            .clients
            .list_clients()
            .await?
            .into_iter()
            .filter(|c| filter.status.is_none_or(|s| c.status == s))
            .filter(|c| filter.tier.as_ref().is_none_or(|t| &c.risk_tier == t))
            .filter(|c| {
                filter
                    .owner
                    .as_ref()
                    .is_none_or(|o| c.org_id == *o || c.org_name.to_lowercase().contains(&o.to_lowercase()))
            })
            .filter(|c| filter.dormant_for.is_none_or(|d| c.last_used_at.unwrap_or(c.created_at).0 <= now.0 - d))
            .filter(|c| filter.expiring_within.is_none_or(|w| c.expires_at.is_some_and(|e| e.0 <= now.0 + w)))
            .collect();
        clients.sort_by(|a, b| {
            (a.org_name.as_str(), a.client_id.as_str()).cmp(&(b.org_name.as_str(), b.client_id.as_str()))
        });
        Ok(clients)
    }

    pub async fn show(&self, id: &str) -> Result<ClientRecord, AdminError> {
        self.load(id).await
    }

    /// Suspension: reversible; every token issued so far becomes inactive at once.
    pub async fn suspend(&self, id: &str, reason: &str, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        match c.status {
            ClientStatus::Offboarded => {
                return Err(AdminError::Conflict(format!("client {id} is offboarded; it cannot be suspended")));
            }
            ClientStatus::Suspended => return Err(AdminError::Conflict(format!("client {id} is already suspended"))),
            ClientStatus::Active => {}
        }
        let now = self.clock.now();
        c.status = ClientStatus::Suspended;
        c.status_reason = Some(reason.to_owned());
        // Tokens issued in this very second are covered too.
        c.tokens_not_before = Some(now.plus(1));
        c.updated_at = now;
        let ev = self.event(AuditKind::ClientSuspended, actor, &c.client_id, json!({"reason": reason}));
        self.save(c, vec![ev]).await
    }

    /// Resumption: new tokens may be issued; tokens from before the suspension stay inactive.
    pub async fn resume(&self, id: &str, reason: &str, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        if c.status != ClientStatus::Suspended {
            return Err(AdminError::Conflict(format!("client {id} is {}, not suspended", c.status)));
        }
        c.status = ClientStatus::Active;
        c.status_reason = None;
        c.updated_at = self.clock.now();
        let ev = self.event(AuditKind::ClientResumed, actor, &c.client_id, json!({"reason": reason}));
        self.save(c, vec![ev]).await
    }

    /// Offboarding: irreversible; every token ends at once.
    pub async fn offboard(&self, id: &str, reason: &str, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        if c.status == ClientStatus::Offboarded {
            return Err(AdminError::Conflict(format!("client {id} is already offboarded")));
        }
        let now = self.clock.now();
        c.status = ClientStatus::Offboarded;
        c.status_reason = Some(reason.to_owned());
        c.tokens_not_before = Some(now.plus(1));
        c.updated_at = now;
        let ev = self.event(AuditKind::ClientOffboarded, actor, &c.client_id, json!({"reason": reason}));
        self.save(c, vec![ev]).await
    }

    pub async fn extend(&self, id: &str, until: UnixTime, actor: &str) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        let now = self.clock.now();
        if until <= now {
            return Err(AdminError::Invalid("the new expiry must be in the future".into()));
        }
        if c.status == ClientStatus::Offboarded {
            return Err(AdminError::Conflict(format!("client {id} is offboarded")));
        }
        let previous = c.expires_at.map(|t| t.0);
        c.expires_at = Some(until);
        c.updated_at = now;
        let ev = self.event(
            AuditKind::ClientExtended,
            actor,
            &c.client_id,
            json!({"previous_expires_at": previous, "expires_at": until.0}),
        );
        self.save(c, vec![ev]).await
    }

    /// Pending scope decisions: (client, scope, decided_at of the pending state).
    pub async fn reviews(&self) -> Result<Vec<(ClientRecord, String)>, AdminError> {
        let mut out = Vec::new();
        for c in self.clients.list_clients().await? {
            if c.status == ClientStatus::Offboarded {
                continue;
            }
            for g in c.scopes.iter().filter(|g| g.state == ScopeState::PendingReview) {
                out.push((c.clone(), g.scope.clone()));
            }
        }
        Ok(out)
    }

    /// The human tier of the onboarding policy: a pending scope becomes granted (grantable at
    /// once on every node) or denied.
    pub async fn review(
        &self,
        id: &str,
        scope: &str,
        approve: bool,
        reason: &str,
        actor: &str,
    ) -> Result<ClientRecord, AdminError> {
        let mut c = self.load(id).await?;
        let now = self.clock.now();
        let grant = c
            .scopes
            .iter_mut()
            .find(|g| g.scope == scope)
            .ok_or_else(|| AdminError::Invalid(format!("client {id} never requested scope {scope:?}")))?;
        if grant.state != ScopeState::PendingReview {
            return Err(AdminError::Conflict(format!(
                "scope {scope:?} of client {id} is {}, not pending review",
                grant.state.as_str()
            )));
        }
        grant.state = if approve { ScopeState::Granted } else { ScopeState::Denied };
        grant.rule = format!("review:{actor}");
        grant.reason = Some(reason.to_owned());
        grant.decided_at = now;
        c.updated_at = now;
        let ev = self.event(
            AuditKind::ScopeReviewed,
            actor,
            &c.client_id,
            json!({"scope": scope, "state": if approve { "granted" } else { "denied" }, "reason": reason}),
        );
        self.save(c, vec![ev]).await
    }

    /// The automatic lifecycle at `now`: expiry and dormancy suspend, a dormancy suspension that
    /// outlived its grace period offboards. Every action is audited with the rule that fired.
    pub async fn sweep(&self, now: UnixTime) -> Result<Vec<SweepAction>, AdminError> {
        let mut actions = Vec::new();
        for c in self.clients.list_clients().await? {
            let id = c.client_id.to_string();
            let action = match c.status {
                ClientStatus::Active if c.expires_at.is_some_and(|e| e <= now) => {
                    Some(("suspend", "expired".to_owned()))
                }
                ClientStatus::Active => {
                    let days = self.lifecycle.dormancy_for(&c.risk_tier);
                    let last = c.last_used_at.unwrap_or(c.created_at);
                    (now.0 - last.0 >= days).then(|| {
                        (
                            "suspend",
                            format!(
                                "{DORMANT_PREFIX}unused for {} days (tier {} limit {} days)",
                                (now.0 - last.0) / 86_400,
                                c.risk_tier,
                                days / 86_400
                            ),
                        )
                    })
                }
                ClientStatus::Suspended
                    if c.status_reason.as_deref().is_some_and(|r| r.starts_with(DORMANT_PREFIX))
                        && now.0 - c.updated_at.0 >= self.lifecycle.offboard_grace_secs =>
                {
                    Some((
                        "offboard",
                        format!(
                            "dormant-grace: suspended for dormancy more than {} days ago",
                            self.lifecycle.offboard_grace_secs / 86_400
                        ),
                    ))
                }
                _ => None,
            };
            let Some((action, rule)) = action else { continue };
            // The sweeper acts at `now`, which tests may move: the records carry that time.
            let mut c = c;
            let kind = if action == "suspend" { AuditKind::ClientSuspended } else { AuditKind::ClientOffboarded };
            c.status = if action == "suspend" { ClientStatus::Suspended } else { ClientStatus::Offboarded };
            c.status_reason = Some(rule.clone());
            c.tokens_not_before = Some(now.plus(1));
            c.updated_at = now;
            let mut data = Map::new();
            data.insert("rule".into(), json!(rule));
            let ev = AuditEvent { at: now, kind, actor: "sweeper".into(), client_id: Some(c.client_id.clone()), data };
            self.save(c, vec![ev]).await?;
            tracing::info!(client_id = %id, action, rule = %rule, "lifecycle sweeper");
            actions.push(SweepAction { client_id: id, action, rule });
        }
        Ok(actions)
    }

    /// Walks the whole audit chain; the first broken link, if any.
    pub async fn audit_verify(&self) -> Result<Result<(i64, String), BrokenLink>, AdminError> {
        let (mut seq, mut hash) = (0i64, GENESIS_HASH.to_owned());
        loop {
            let page = self.audit.read(seq, 10_000).await?;
            if page.is_empty() {
                return Ok(Ok((seq, hash)));
            }
            match verify_chain(&page, seq, hash.clone()) {
                Ok((s, h)) => {
                    seq = s;
                    hash = h;
                }
                Err(broken) => return Ok(Err(broken)),
            }
        }
    }

    /// Audit records at or after `since`, in order, for a SIEM.
    pub async fn audit_export(&self, since: UnixTime) -> Result<Vec<AuditRecord>, AdminError> {
        let mut out = Vec::new();
        let mut seq = 0;
        loop {
            let page = self.audit.read(seq, 10_000).await?;
            let Some(last) = page.last() else { return Ok(out) };
            seq = last.seq;
            out.extend(page.into_iter().filter(|r| r.event.at >= since));
        }
    }
}

/// One inventory row: who holds access, for what, since when, last used when, and its state.
pub fn inventory_row(c: &ClientRecord) -> Value {
    json!({
        "client_id": c.client_id,
        "client_name": c.metadata.get("client_name").cloned().unwrap_or(Value::Null),
        "owner_org_id": c.org_id,
        "owner_org_name": c.org_name,
        "software_id": c.software_id,
        "directory": c.directory,
        "purpose": c.purpose,
        "risk_tier": c.risk_tier,
        "status": c.status.as_str(),
        "status_reason": c.status_reason,
        "granted_scopes": c.scopes_in(ScopeState::Granted).collect::<Vec<_>>(),
        "pending_scopes": c.scopes_in(ScopeState::PendingReview).collect::<Vec<_>>(),
        "denied_scopes": c.scopes_in(ScopeState::Denied).collect::<Vec<_>>(),
        "scope_decisions": c.scopes.iter().map(|g| json!({"scope": g.scope, "state": g.state.as_str(), "rule": g.rule, "decided_at": g.decided_at.0, "reason": g.reason})).collect::<Vec<_>>(),
        "auth_method": c.metadata.get("token_endpoint_auth_method").cloned().unwrap_or(Value::Null),
        "certificate_subject": c.transport_cert_subject,
        "created_at": c.created_at.0,
        "expires_at": c.expires_at.map(|t| t.0),
        "last_used_at": c.last_used_at.map(|t| t.0),
        "updated_at": c.updated_at.0,
    })
}

pub const INVENTORY_COLUMNS: [&str; 17] = [
    "client_id",
    "client_name",
    "owner_org_id",
    "owner_org_name",
    "software_id",
    "directory",
    "purpose",
    "risk_tier",
    "status",
    "status_reason",
    "granted_scopes",
    "pending_scopes",
    "auth_method",
    "certificate_subject",
    "created_at",
    "expires_at",
    "last_used_at",
];

/// RFC 4180 CSV of the inventory (lists joined with spaces, times as Unix seconds).
pub fn inventory_csv(clients: &[ClientRecord]) -> String {
    fn field(v: &Value) -> String {
        let s = match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        // Cells starting with = + - @ are neutralised: spreadsheets would run them as formulas.
        let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s };
        if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
    }
    let mut out = INVENTORY_COLUMNS.join(",");
    out.push_str("\r\n");
    for c in clients {
        let row = inventory_row(c);
        let cells: Vec<String> = INVENTORY_COLUMNS.iter().map(|k| field(&row[*k])).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}
