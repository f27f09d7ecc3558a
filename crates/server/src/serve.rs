//! Starting the server: configuration, storage, keys, TLS listeners, routes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use serde_json::json;
use tessera_core::discovery::{self, MetadataFragment};
use tessera_core::keys::SigningAlg;
use tessera_core::{Clock, OsRng, Rng, SystemClock};
use tessera_store::{AuditLog, ClientCache, ClientStore, Health, KeyStore, StoreError};
use tessera_store_diesel::{DieselStore, PoolOptions};

use crate::cli::Source;
use crate::config::{self, Config, ConfigError, LogFormat};
use crate::keys::{KeyError, KeyService};
use crate::metrics::{self, Metrics};
use crate::routes::{self, Probes};
use crate::{dev, surfaces, tls};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("discovery metadata: {0}")]
    Metadata(#[from] discovery::MetadataConflict),
    #[error("dev mode: {0}")]
    Dev(#[from] dev::DevError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Surface(#[from] crate::surfaces::SurfaceError),
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The durable store named by the configuration, migrated.
pub async fn connect_store(config: &Config) -> Result<Arc<DieselStore>, StoreError> {
    connect_store_sized(config, config.pool_size).await
}

/// The store for a one-shot command (`tessera clients|review|...|keys`): one connection. The
/// pool opens its connections in background threads; with the server's size, a short command
/// would exit while some are still being opened, and libpq (its Kerberos/GSS code) crashes the
/// process at exit (SIGSEGV or SIGABRT after the work was done). One connection is opened for the
/// first query and reused, so none is being opened when the command exits.
pub async fn connect_store_for_command(config: &Config) -> Result<Arc<DieselStore>, StoreError> {
    connect_store_sized(config, 1).await
}

async fn connect_store_sized(config: &Config, max_size: u32) -> Result<Arc<DieselStore>, StoreError> {
    if let Some(parent) = config
        .database_url
        .strip_prefix("sqlite://")
        .and_then(|path| std::path::Path::new(path).parent())
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
    }
    let store = DieselStore::connect(
        &config.database_url,
        PoolOptions { max_size, connection_timeout: Duration::from_secs(config.connect_timeout_secs.max(1)) },
    )
    .await?;
    Ok(Arc::new(store))
}

/// The members the server itself publishes; each surface adds its own fragment.
pub fn server_metadata(config: &Config) -> MetadataFragment {
    let alias = config.mtls_alias.as_ref().map(|a| &a.base_url);
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    let mut base = json!({
        "issuer": config.issuer.as_str(),
        // Client-credentials only until the consent surface adds `code` (RFC 8414 §2 requires
        // the member; an empty list is the truthful value).
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["tls_client_auth", "self_signed_tls_client_auth", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "tls_client_certificate_bound_access_tokens": true,
    });
    if let (Some(obj), Some(jwks)) = (base.as_object_mut(), Some(config.issuer.endpoint("/jwks"))) {
        obj.insert("jwks_uri".into(), json!(jwks));
    }
    let mut fragments = vec![base.as_object().cloned().unwrap_or_default()];
    if let Some(alias) = alias {
        fragments.push(discovery::endpoint(&config.issuer, Some(alias), "jwks_uri", "/jwks"));
    }
    discovery::merge(fragments).unwrap_or_default()
}

fn init_logging(config: &Config, override_format: Option<LogFormat>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match override_format.unwrap_or(config.log.format.clone()) {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
    if result.is_err() {
        eprintln!("tessera: logging was already initialised");
    }
}

fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).map_err(|source| StartError::Bind { addr: addr.to_owned(), source })
}

fn issuer_for(addr: SocketAddr) -> String {
    format!("https://{addr}")
}

pub async fn run(source: Source, dev_listen: String, log_format: Option<LogFormat>) -> Result<(), StartError> {
    let (config, listener, manifest) = match &source.config {
        Some(path) => {
            let config = config::load_file(path)?;
            let listener = bind(&config.listen.to_string())?;
            (config, listener, None)
        }
        None => {
            let manifest = dev::ensure(&source.data_dir)?;
            let listener = bind(&dev_listen)?;
            let addr = listener.local_addr()?;
            let config = config::load_dev(dev::raw_config(&manifest, &issuer_for(addr), &addr.to_string()))?;
            (config, listener, Some(manifest))
        }
    };
    init_logging(&config, log_format);
    if config.dangerous_allow_dev_material {
        tracing::warn!("dangerous_allow_dev_material is set: this server accepts dev mode certificates and keys");
    }

    let store = connect_store(&config).await?;
    tracing::info!(database = %redact_url(&config.database_url), backend = ?store.backend(), "database ready, migrations applied");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let alias = config.mtls_alias.as_ref().map(|a| &a.base_url);
    let metadata = discovery::merge([
        server_metadata(&config),
        tessera_client_registration::http::metadata(&config.issuer, alias),
        tessera_token_endpoint::metadata(&config.issuer, alias),
        tessera_introspection::metadata(&config.issuer, alias),
    ])?;

    // One-time ids: in process on a single node, in Redis for a cluster.
    let redis = match &config.redis {
        Some(r) => {
            let shared = tessera_store_redis::RedisShared::connect(&r.url, &r.prefix).await?;
            tracing::info!(prefix = %r.prefix, "cluster mode: Redis connected");
            Some(shared)
        }
        None => None,
    };
    let replay: Arc<dyn tessera_store::ReplayGuard> = match &redis {
        Some(r) => Arc::new(r.clone()),
        None => Arc::new(tessera_store::MemoryStore::new()),
    };

    // Clients live in memory for the hot paths; the store is the durable copy.
    if let Some(m) = &manifest {
        provision_dev_gateway(store.as_ref(), m, &config.introspection_scope, clock.now()).await?;
    }
    let cache = Arc::new(ClientCache::new());
    // In pages: only one page of full records is ever in memory (see `ClientCache::load`).
    cache.load(store.as_ref()).await?;
    let revocations = Arc::new(tessera_store::Revocations::new());
    revocations.replace_all(tessera_store::TokenStore::revoked(store.as_ref(), clock.now()).await?);
    tracing::info!(clients = cache.len(), "client cache loaded");
    let rng: Arc<dyn Rng> = Arc::new(OsRng);
    let anchors = surfaces::trust_anchors(&config)?;
    let client_store: Arc<dyn ClientStore> = store.clone();
    let audit: Arc<dyn AuditLog> = store.clone();
    let key_store: Arc<dyn KeyStore> = store.clone();
    let keys =
        KeyService::start(key_store, config.kek.clone(), clock.clone(), config.rotation, config.signing_alg, metadata)
            .await?;
    keys.clone().spawn_refresher(Duration::from_secs(config.key_reload_interval_secs));
    let mut registrar =
        surfaces::registrar(&config, anchors.clone(), client_store, audit, cache.clone(), clock.clone(), rng.clone())?
            .with_access_token_verifier(keys.clone(), revocations.clone());
    if let Some(r) = &redis {
        let r = r.clone();
        registrar = registrar.with_change_hook(Arc::new(move |id: &tessera_core::ClientId| {
            crate::cluster::publish(&r, tessera_store_redis::Notice::ClientChanged { client_id: id.to_string() })
        }));
    }
    let registrar = web::Data::new(registrar);
    tracing::info!(policy = %config.registration.policy_origin, directories = config.registration.directories.len(), "registration ready");

    let audit_sink = tessera_store::AuditSink::start(store.clone());
    let usage = tessera_store::UsageRecorder::new(60);
    usage.clone().start_flusher(store.clone(), Duration::from_secs(10));

    let main_tls = tls::server_config(config.tls_chain.clone(), config.tls_key.clone_key(), false)?;
    let metrics = web::Data::new(Metrics::new());
    let keys_data = web::Data::from(keys.clone());
    let signer: Arc<dyn tessera_core::keys::SignerSource> = keys.clone();
    let verifier: Arc<dyn tessera_core::keys::AccessTokenVerifier> =
        Arc::new(crate::keys::CachingVerifier::new(keys.clone(), config.verified_cache_entries));
    let token_store: Arc<dyn tessera_store::TokenStore> = store.clone();
    let token_service = Arc::new(
        surfaces::token_service(
            &config,
            anchors.clone(),
            cache.clone(),
            replay,
            signer.clone(),
            audit_sink,
            usage,
            clock.clone(),
            rng.clone(),
        )?
        .with_revocation(tessera_token_endpoint::RevocationParts {
            verifier: verifier.clone(),
            revocations: revocations.clone(),
            tokens: token_store.clone(),
            on_revoke: redis.clone().map(|r| -> tessera_token_endpoint::RevokeHook {
                Arc::new(move |jti: &str, exp: tessera_core::UnixTime| {
                    crate::cluster::publish(
                        &r,
                        tessera_store_redis::Notice::Revoked { jti: jti.to_owned(), exp: exp.0 },
                    )
                })
            }),
        }),
    );
    let mut introspector = tessera_introspection::Introspector::new(
        config.issuer.clone(),
        token_service.clone(),
        verifier,
        signer.clone(),
        cache.clone(),
        revocations.clone(),
        clock.clone(),
        config.introspection_scope.clone(),
    );
    if let Some(r) = &redis {
        let client_store: Arc<dyn ClientStore> = store.clone();
        r.subscribe(Arc::new(crate::cluster::CacheUpdater {
            clients: cache.clone(),
            revocations: revocations.clone(),
            client_store: client_store.clone(),
            token_store: token_store.clone(),
            clock: clock.clone(),
        }));
        introspector = introspector.with_fallback(tessera_introspection::Fallback {
            live: r.live_flag(),
            tokens: token_store.clone(),
            clients: client_store,
        });
    }
    let introspector = web::Data::new(introspector);

    // Lifecycle governance: the admin API, the sweeper (one node at a time) and the poller that
    // applies changes made by other processes (the admin command line) within a second.
    let admin_store: Arc<dyn ClientStore> = store.clone();
    let admin_audit: Arc<dyn AuditLog> = store.clone();
    let change_hook: Option<tessera_admin::service::ChangeHook> =
        redis.clone().map(|r| -> tessera_admin::service::ChangeHook {
            Arc::new(move |id: &tessera_core::ClientId| {
                crate::cluster::publish(&r, tessera_store_redis::Notice::ClientChanged { client_id: id.to_string() })
            })
        });
    let mut admin =
        tessera_admin::Admin::new(admin_store.clone(), admin_audit, clock.clone(), config.lifecycle.clone())
            .with_cache(cache.clone(), change_hook);
    if !config.webhook_urls.is_empty() {
        let client = crate::fetch::client(&config.webhook_cas).map_err(crate::surfaces::SurfaceError::Registration)?;
        let notifier = crate::notify::Notifier::start(
            config.webhook_urls.clone(),
            client,
            signer.clone(),
            config.issuer.clone(),
            clock.clone(),
            config.webhook_attempts,
        );
        admin = admin.with_events(Arc::new(move |event| notifier.send(event)));
        tracing::info!(webhooks = config.webhook_urls.len(), "lifecycle notifications enabled");
    }
    let status_dirs: std::collections::HashMap<String, (String, reqwest::Client)> = config
        .registration
        .directories
        .iter()
        .filter_map(|d| {
            let uri = d.org_status_uri.clone()?;
            let client = crate::fetch::client(&d.cas).ok()?;
            Some((d.issuer.clone(), (uri, client)))
        })
        .collect();
    if !status_dirs.is_empty() {
        admin = admin.with_org_status(Arc::new(crate::fetch::HttpOrgStatus { directories: status_dirs }));
    }
    let admin = Arc::new(admin);
    let admin_auth = web::Data::new(tessera_admin::AdminAuth {
        anchors: tessera_http::mtls::TrustAnchors::from_ders(&config.admin_cas)
            .map_err(|e| crate::surfaces::SurfaceError::Registration(e.to_string()))?,
        subjects: config.admin_subjects.clone(),
        clock: clock.clone(),
    });
    let node_id = rng.token(9).map_err(|e| StartError::Io(std::io::Error::other(e.to_string())))?;
    spawn_sweeper(admin.clone(), store.clone(), clock.clone(), node_id, config.sweep_interval_secs);
    spawn_change_poller(admin_store, cache.clone(), clock.clone());
    let admin = web::Data::from(admin);
    let token_service = web::Data::from(token_service);
    spawn_revocation_purge(revocations.clone(), token_store, clock.clone());
    let health: Arc<dyn Health> = store.clone();
    let probes =
        web::Data::new(Probes { store: health, redis: redis.clone().map(|r| -> Arc<dyn Health> { Arc::new(r) }) });
    let prefix = issuer_path(&config);

    let app_prefix = prefix.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .app_data(keys_data.clone())
            .app_data(probes.clone())
            .app_data(registrar.clone())
            .app_data(token_service.clone())
            .app_data(introspector.clone())
            .app_data(admin.clone())
            .app_data(admin_auth.clone())
            .wrap(from_fn(metrics::track))
            .configure(|cfg| routes::configure(cfg, &app_prefix))
            .service(
                web::scope(&app_prefix)
                    .configure(tessera_client_registration::configure)
                    .configure(tessera_token_endpoint::configure)
                    .configure(tessera_introspection::configure)
                    .configure(tessera_admin::configure),
            )
    })
    .on_connect(tessera_http::capture_peer_certificates)
    .listen_rustls_0_23(listener, main_tls)?;
    if let Some(alias) = &config.mtls_alias {
        let alias_tls = tls::server_config(config.tls_chain.clone(), config.tls_key.clone_key(), true)?;
        server = server.listen_rustls_0_23(bind(&alias.listen.to_string())?, alias_tls)?;
        tracing::info!(listen = %alias.listen, base_url = %alias.base_url, "mTLS endpoint alias listener");
    }
    if let Some(workers) = config.workers {
        server = server.workers(workers);
    }
    let addrs = server.addrs();
    let server = server.run();

    announce(&config, &addrs, manifest.as_ref(), &source);
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

/// The lifecycle sweeper: every node tries, the lease lets one act.
fn spawn_sweeper(
    admin: Arc<tessera_admin::Admin>,
    locks: Arc<DieselStore>,
    clock: Arc<dyn Clock>,
    node: String,
    every: u64,
) {
    actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(Duration::from_secs(every)).await;
            let now = clock.now();
            match tessera_store::LockStore::try_lock(locks.as_ref(), "lifecycle-sweeper", &node, every as i64 * 2, now)
                .await
            {
                Ok(true) => match admin.sweep(now).await {
                    Ok(actions) if !actions.is_empty() => {
                        tracing::info!(actions = actions.len(), "lifecycle sweep done")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "lifecycle sweep failed; will retry"),
                },
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "sweeper lease unavailable; will retry"),
            }
        }
    });
}

/// Changes written by another process (`tessera clients suspend` against the database) reach
/// this node's cache within a second, with or without Redis.
fn spawn_change_poller(store: Arc<dyn ClientStore>, cache: Arc<ClientCache>, clock: Arc<dyn Clock>) {
    actix_web::rt::spawn(async move {
        let mut since = clock.now();
        loop {
            actix_web::rt::time::sleep(Duration::from_millis(500)).await;
            let now = clock.now();
            // Looks back a little before `since` (seconds are coarse, commits may show late),
            // reading whole only what the cache does not hold yet: see `poll_changes`.
            match cache.poll_changes(store.as_ref(), since, now).await {
                Ok(changed) => {
                    if changed > 0 {
                        tracing::debug!(changed, "client changes applied");
                    }
                    since = now;
                }
                Err(e) => tracing::debug!(error = %e, "polling for client changes failed; will retry"),
            }
        }
    });
}

/// Revocation entries outlive nothing: once the token has expired, it is inactive anyway.
fn spawn_revocation_purge(
    revocations: Arc<tessera_store::Revocations>,
    store: Arc<dyn tessera_store::TokenStore>,
    clock: Arc<dyn Clock>,
) {
    actix_web::rt::spawn(async move {
        loop {
            actix_web::rt::time::sleep(Duration::from_secs(600)).await;
            let now = clock.now();
            revocations.purge(now);
            if let Err(e) = store.purge_expired(now).await {
                tracing::warn!(error = %e, "purging expired revocations failed; will retry");
            }
        }
    });
}

async fn provision_dev_gateway(
    store: &DieselStore,
    manifest: &dev::Manifest,
    scope: &str,
    now: tessera_core::UnixTime,
) -> Result<(), StartError> {
    let id = tessera_core::ClientId::new(dev::DEV_GATEWAY_CLIENT_ID);
    if store.get_client(&id).await?.is_some() {
        return Ok(());
    }
    let client = dev::gateway_client(manifest, scope, now);
    let mut data = serde_json::Map::new();
    data.insert("reason".into(), json!("dev mode provisions a gateway client for the generated gateway certificate"));
    data.insert("scope".into(), json!(scope));
    let event = tessera_core::audit::AuditEvent {
        at: now,
        kind: tessera_core::audit::AuditKind::AdminAction,
        actor: "dev-mode".into(),
        client_id: Some(id),
        data,
    };
    store.insert_client(&client, &[event]).await?;
    tracing::info!(client_id = dev::DEV_GATEWAY_CLIENT_ID, "dev mode provisioned the gateway client");
    Ok(())
}

fn issuer_path(config: &Config) -> String {
    let s = config.issuer.as_str();
    let after_scheme = &s["https://".len()..];
    after_scheme.find('/').map(|i| after_scheme[i..].to_owned()).unwrap_or_default()
}

fn announce(config: &Config, addrs: &[SocketAddr], manifest: Option<&dev::Manifest>, source: &Source) {
    if let Some(m) = manifest {
        let data = m.database.parent().map(|p| p.display().to_string()).unwrap_or_default();
        let rel = source.data_dir.display();
        println!("==================================================================");
        println!(" TESSERA DEV MODE: generated keys and certificates, NOT FOR PRODUCTION");
        println!("==================================================================");
        println!(" issuer:    {}", config.issuer);
        println!(" data:      {data}  (SQLite tessera.db, dev PKI in dev/)");
        println!(" manifest:  {}", m.ca.cert.with_file_name(dev::MANIFEST).display());
        println!(" first request:");
        println!("   curl --cacert {rel}/dev/ca.pem {}/.well-known/oauth-authorization-server", config.issuer);
        println!(
            " API gateway client (introspection): client_id {} with {rel}/dev/gateway.pem",
            dev::DEV_GATEWAY_CLIENT_ID
        );
        println!(" with the demo client certificate:");
        println!(
            "   curl --cacert {rel}/dev/ca.pem --cert {rel}/dev/client.pem --key {rel}/dev/client.key {}/jwks",
            config.issuer
        );
        println!("==================================================================");
        tracing::warn!("DEV MODE: do not expose this server; its keys are generated and stored unprotected");
    }
    for addr in addrs {
        println!("tessera: listening on https://{addr}");
    }
    tracing::info!(issuer = %config.issuer, "tessera started");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite:///a/b.db"), "sqlite:///a/b.db");
    }
}
