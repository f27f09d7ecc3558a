//! `tessera clients|review|inventory|audit|sweep`: the governance commands, run against the
//! database with the same logic as the admin API. Changes reach running nodes within a second
//! (their change poller, and a Redis notice when a cluster is configured).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use tessera_admin::service::{inventory_csv, inventory_row};
use tessera_admin::{Admin, AdminError, ClientFilter};
use tessera_core::client::{ClientRecord, ClientStatus, ScopeState};
use tessera_core::{Clock, SystemClock, UnixTime};
use tessera_store::{AuditLog, ClientStore};

use crate::cli::{Source, fmt_time, load_for_admin};

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Every client with owner, purpose, tier, status, scopes, dates and certificate subject.
    List {
        #[command(flatten)]
        source: Source,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        tier: Option<String>,
        /// Organisation id, or part of its name.
        #[arg(long)]
        owner: Option<String>,
        /// Unused for at least this long, e.g. 30d.
        #[arg(long, value_parser = parse_duration)]
        dormant_for: Option<i64>,
        /// Expiring within this long, e.g. 14d.
        #[arg(long, value_parser = parse_duration)]
        expiring_within: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: String,
        #[command(flatten)]
        source: Source,
        #[arg(long)]
        json: bool,
    },
    /// Reversible: tokens refused, live tokens inactive at once.
    Suspend {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        source: Source,
    },
    Resume {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        source: Source,
    },
    /// Irreversible: every token ends at once.
    Offboard {
        id: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        source: Source,
    },
    Extend {
        id: String,
        /// New expiry: 2027-06-30 or an RFC 3339 time.
        #[arg(long, value_parser = parse_time)]
        until: i64,
        #[command(flatten)]
        source: Source,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// Scopes waiting for a human decision.
    List {
        #[command(flatten)]
        source: Source,
        #[arg(long)]
        json: bool,
    },
    Approve {
        id: String,
        scope: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        source: Source,
    },
    Deny {
        id: String,
        scope: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        source: Source,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum InventoryFormat {
    Csv,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum InventoryCommand {
    /// The whole inventory, one row per client, for a regulator or an access review.
    Export {
        #[arg(long, value_enum, default_value = "csv")]
        format: InventoryFormat,
        #[command(flatten)]
        source: Source,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain; report the first broken link (exit 1) or that it is intact.
    Verify {
        #[command(flatten)]
        source: Source,
    },
    /// JSON lines for a SIEM.
    Export {
        /// From this time (2026-11-01 or RFC 3339); default: everything.
        #[arg(long, value_parser = parse_time)]
        since: Option<i64>,
        #[command(flatten)]
        source: Source,
    },
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub source: Source,
    /// Apply the lifecycle rules as of this time instead of now (to preview, or in tests).
    #[arg(long, value_parser = parse_time)]
    pub as_of: Option<i64>,
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<i64, String> {
    humantime::parse_duration(s).map(|d| d.as_secs() as i64).map_err(|e| format!("{s:?}: {e} (e.g. 30d, 12h)"))
}

fn parse_time(s: &str) -> Result<i64, String> {
    let full = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_owned() };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|e| format!("{s:?}: {e} (e.g. 2027-06-30 or 2027-06-30T12:00:00Z)"))
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).map_err(|e| e.to_string()))
}

fn actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

struct Ctx {
    admin: Admin,
    redis: Option<tessera_store_redis::RedisShared>,
}

async fn ctx(source: &Source, clock: Arc<dyn Clock>) -> Result<Ctx, ExitCode> {
    let config = load_for_admin(source).map_err(|e| {
        eprintln!("tessera: {e}");
        ExitCode::from(2)
    })?;
    let store = crate::serve::connect_store_for_command(&config).await.map_err(|e| {
        eprintln!("tessera: {e}");
        ExitCode::from(1)
    })?;
    let clients: Arc<dyn ClientStore> = store.clone();
    let audit: Arc<dyn AuditLog> = store;
    let redis = match &config.redis {
        Some(r) => tessera_store_redis::RedisShared::connect(&r.url, &r.prefix).await.ok(),
        None => None,
    };
    Ok(Ctx { admin: Admin::new(clients, audit, clock, config.lifecycle.clone()), redis })
}

fn fail(e: AdminError) -> ExitCode {
    eprintln!("tessera: {e}");
    match e {
        AdminError::Store(_) => ExitCode::from(1),
        _ => ExitCode::from(3),
    }
}

async fn notify(ctx: &Ctx, c: &ClientRecord) {
    if let Some(r) = &ctx.redis {
        let _ = r.publish(&tessera_store_redis::Notice::ClientChanged { client_id: c.client_id.to_string() }).await;
    }
}

fn time_or_dash(t: Option<UnixTime>) -> String {
    t.map(|t| fmt_time(t.0)).unwrap_or_else(|| "-".into())
}

fn print_table(clients: &[ClientRecord]) {
    println!(
        "{:<24} {:<26} {:<28} {:<6} {:<10} {:<28} {:<20} {:<20} {:<20} {:<20} CERTIFICATE SUBJECT",
        "CLIENT ID", "OWNER", "PURPOSE", "TIER", "STATUS", "GRANTED", "PENDING", "CREATED", "EXPIRES", "LAST USED"
    );
    let cut = |s: &str, n: usize| {
        if s.chars().count() > n { format!("{}…", s.chars().take(n - 1).collect::<String>()) } else { s.to_owned() }
    };
    for c in clients {
        println!(
            "{:<24} {:<26} {:<28} {:<6} {:<10} {:<28} {:<20} {:<20} {:<20} {:<20} {}",
            c.client_id.as_str(),
            cut(&format!("{} ({})", c.org_name, c.org_id), 26),
            cut(&c.purpose, 28),
            c.risk_tier,
            c.status.as_str(),
            cut(&c.scopes_in(ScopeState::Granted).collect::<Vec<_>>().join(" "), 28),
            cut(&c.scopes_in(ScopeState::PendingReview).collect::<Vec<_>>().join(" "), 20),
            fmt_time(c.created_at.0),
            time_or_dash(c.expires_at),
            time_or_dash(c.last_used_at),
            c.transport_cert_subject
        );
    }
}

fn print_client(c: &ClientRecord) {
    println!("client     {}", c.client_id);
    println!("name       {}", c.metadata.get("client_name").and_then(Value::as_str).unwrap_or("-"));
    println!("owner      {} ({})", c.org_name, c.org_id);
    println!("software   {} (directory {})", c.software_id, c.directory);
    println!("purpose    {}", c.purpose);
    println!("tier       {}", c.risk_tier);
    println!("status     {}{}", c.status, c.status_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default());
    println!("created    {}", fmt_time(c.created_at.0));
    println!("expires    {}", time_or_dash(c.expires_at));
    println!("last used  {}", time_or_dash(c.last_used_at));
    println!("cert       {}", c.transport_cert_subject);
    println!("auth       {}", c.metadata.get("token_endpoint_auth_method").and_then(Value::as_str).unwrap_or("-"));
    println!("scopes:");
    for g in &c.scopes {
        println!(
            "  {:<28} {:<15} by {} at {}{}",
            g.scope,
            g.state.as_str(),
            g.rule,
            fmt_time(g.decided_at.0),
            g.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        );
    }
}

pub async fn clients(cmd: ClientsCommand) -> ExitCode {
    let source = match &cmd {
        ClientsCommand::List { source, .. }
        | ClientsCommand::Show { source, .. }
        | ClientsCommand::Suspend { source, .. }
        | ClientsCommand::Resume { source, .. }
        | ClientsCommand::Offboard { source, .. }
        | ClientsCommand::Extend { source, .. } => source.clone(),
    };
    let ctx = match ctx(&source, Arc::new(SystemClock)).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let changed = match cmd {
        ClientsCommand::List { status, tier, owner, dormant_for, expiring_within, json, .. } => {
            let status = match status.as_deref().map(|s| ClientStatus::parse(s).ok_or(s)) {
                Some(Err(s)) => {
                    eprintln!("tessera: --status {s:?}: use active, suspended or offboarded");
                    return ExitCode::from(2);
                }
                Some(Ok(s)) => Some(s),
                None => None,
            };
            let filter = ClientFilter { status, tier, owner, dormant_for, expiring_within };
            return match ctx.admin.list(&filter).await {
                Ok(cs) if json => {
                    println!("{}", Value::Array(cs.iter().map(inventory_row).collect()));
                    ExitCode::SUCCESS
                }
                Ok(cs) => {
                    print_table(&cs);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
        ClientsCommand::Show { id, json, .. } => {
            return match ctx.admin.show(&id).await {
                Ok(c) if json => {
                    println!("{}", inventory_row(&c));
                    ExitCode::SUCCESS
                }
                Ok(c) => {
                    print_client(&c);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
        ClientsCommand::Suspend { id, reason, .. } => ctx.admin.suspend(&id, &reason, &actor()).await,
        ClientsCommand::Resume { id, reason, .. } => ctx.admin.resume(&id, &reason, &actor()).await,
        ClientsCommand::Offboard { id, reason, .. } => ctx.admin.offboard(&id, &reason, &actor()).await,
        ClientsCommand::Extend { id, until, .. } => ctx.admin.extend(&id, UnixTime(until), &actor()).await,
    };
    match changed {
        Ok(c) => {
            notify(&ctx, &c).await;
            println!(
                "{}: {}{}",
                c.client_id,
                c.status,
                c.status_reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub async fn review(cmd: ReviewCommand) -> ExitCode {
    let source = match &cmd {
        ReviewCommand::List { source, .. }
        | ReviewCommand::Approve { source, .. }
        | ReviewCommand::Deny { source, .. } => source.clone(),
    };
    let ctx = match ctx(&source, Arc::new(SystemClock)).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (id, scope, reason, approve) = match cmd {
        ReviewCommand::List { json, .. } => {
            return match ctx.admin.reviews().await {
                Ok(list) => {
                    let rows: Vec<Value> = list
                        .iter()
                        .map(|(c, s)| {
                            let g = c.scopes.iter().find(|g| &g.scope == s);
                            json!({"client_id": c.client_id, "owner": c.org_name, "owner_org_id": c.org_id, "purpose": c.purpose,
                                   "scope": s, "rule": g.map(|g| g.rule.clone()), "requested_at": g.map(|g| g.decided_at.0)})
                        })
                        .collect();
                    if json {
                        println!("{}", Value::Array(rows));
                    } else {
                        println!(
                            "{:<24} {:<28} {:<24} {:<22} {:<20} PURPOSE",
                            "CLIENT ID", "OWNER", "SCOPE", "RULE", "REQUESTED"
                        );
                        for r in rows {
                            println!(
                                "{:<24} {:<28} {:<24} {:<22} {:<20} {}",
                                r["client_id"].as_str().unwrap_or(""),
                                r["owner"].as_str().unwrap_or(""),
                                r["scope"].as_str().unwrap_or(""),
                                r["rule"].as_str().unwrap_or(""),
                                r["requested_at"].as_i64().map(fmt_time).unwrap_or_default(),
                                r["purpose"].as_str().unwrap_or("")
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            };
        }
        ReviewCommand::Approve { id, scope, reason, .. } => (id, scope, reason, true),
        ReviewCommand::Deny { id, scope, reason, .. } => (id, scope, reason, false),
    };
    match ctx.admin.review(&id, &scope, approve, &reason, &actor()).await {
        Ok(c) => {
            notify(&ctx, &c).await;
            println!("{id}: scope {scope} {}", if approve { "granted" } else { "denied" });
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub async fn inventory(cmd: InventoryCommand) -> ExitCode {
    let InventoryCommand::Export { format, source } = cmd;
    let ctx = match ctx(&source, Arc::new(SystemClock)).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctx.admin.list(&ClientFilter::default()).await {
        Ok(cs) => {
            match format {
                InventoryFormat::Csv => print!("{}", inventory_csv(&cs)),
                InventoryFormat::Json => println!("{}", Value::Array(cs.iter().map(inventory_row).collect())),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

pub async fn audit(cmd: AuditCommand) -> ExitCode {
    let source = match &cmd {
        AuditCommand::Verify { source } | AuditCommand::Export { source, .. } => source.clone(),
    };
    let ctx = match ctx(&source, Arc::new(SystemClock)).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match cmd {
        AuditCommand::Verify { .. } => match ctx.admin.audit_verify().await {
            Ok(Ok((seq, hash))) => {
                println!("audit log intact: {seq} records, last hash {hash}");
                ExitCode::SUCCESS
            }
            Ok(Err(broken)) => {
                println!("audit log BROKEN at record {}: {}", broken.seq, broken.reason);
                ExitCode::from(1)
            }
            Err(e) => fail(e),
        },
        AuditCommand::Export { since, .. } => match ctx.admin.audit_export(UnixTime(since.unwrap_or(0))).await {
            Ok(records) => {
                for r in records {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}

pub async fn sweep(args: SweepArgs) -> ExitCode {
    let now = args.as_of.unwrap_or_else(|| SystemClock.now().0);
    // The rules run as of `now`; the service's clock stays the real one (token cut-offs).
    let ctx = match ctx(&args.source, Arc::new(SystemClock)).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctx.admin.sweep(UnixTime(now)).await {
        Ok(actions) => {
            for a in &actions {
                if let Ok(Some(c)) = ctx.admin.show(&a.client_id).await.map(Some) {
                    notify(&ctx, &c).await;
                }
            }
            if args.json {
                println!("{}", serde_json::to_value(&actions).unwrap_or(Value::Null));
            } else if actions.is_empty() {
                println!("nothing to do as of {}", fmt_time(now));
            } else {
                for a in actions {
                    println!("{} {} ({})", a.action, a.client_id, a.rule);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
