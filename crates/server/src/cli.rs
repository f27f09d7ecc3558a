//! The `tessera` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tessera_core::keys::{KeyState, SigningAlg};
use tessera_core::{Clock, Rng, SystemClock};

use crate::config::{self, Config, ConfigError, LogFormat};
use crate::serve::{self, StartError};
use crate::{dev, keys};

#[derive(Parser, Debug)]
#[command(name = "tessera", version, about = "OAuth 2.0 / FAPI 2.0 authorization server for bank API programmes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server. Without --config: dev mode (SQLite and a generated dev PKI in --data-dir).
    Serve(ServeArgs),
    /// Validate a configuration file (and TESSERA_ environment overrides) without starting.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Client inventory and lifecycle: list, show, suspend, resume, offboard, extend.
    Clients {
        #[command(subcommand)]
        command: crate::admin_cli::ClientsCommand,
    },
    /// The human tier of the onboarding policy: scopes waiting for a decision.
    Review {
        #[command(subcommand)]
        command: crate::admin_cli::ReviewCommand,
    },
    Inventory {
        #[command(subcommand)]
        command: crate::admin_cli::InventoryCommand,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: crate::admin_cli::AuditCommand,
    },
    /// Apply the automatic lifecycle rules once (dormancy, expiry).
    Sweep(crate::admin_cli::SweepArgs),
    /// Dev mode helpers.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Print a software statement signed by the demo directory (dev mode only), for
    /// `POST /register`. Defaults match the demo client certificate.
    SoftwareStatement {
        #[arg(long, default_value = "tessera-data")]
        data_dir: PathBuf,
        #[arg(long, default_value = "demo-fintech-client")]
        software_id: String,
        #[arg(long, default_value = "demo-org-0001")]
        org_id: String,
        #[arg(long, default_value = "Tessera Dev Demo Fintech")]
        org_name: String,
        /// Comma-separated software_roles (AISP, PISP, CBPII, GATEWAY).
        #[arg(long, default_value = "AISP,PISP")]
        roles: String,
        #[arg(long, default_value = "Active")]
        org_status: String,
        #[arg(long, default_value = "https://demo-fintech.example/callback")]
        redirect_uri: Vec<String>,
        /// A jwks_uri for the software (software_jwks_endpoint), if any.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Seconds to add to iat (negative: an older statement).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        iat_offset: i64,
    },
}

#[derive(Args, Debug, Clone)]
pub struct Source {
    /// Production configuration file (TOML). Without it, the dev mode data directory is used.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Dev mode data directory.
    #[arg(long, default_value = "tessera-data")]
    pub data_dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: Source,
    /// Dev mode listen address (production sets server.listen in the file). Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub listen: String,
    /// Log format, overriding log.format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LogFormatArg {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create the next signing key: published now, signing after the pre-publication period.
    Rotate {
        #[command(flatten)]
        source: Source,
        /// Algorithm of the new key (default: keys.algorithm).
        #[arg(long)]
        algorithm: Option<String>,
    },
    /// Show every signing key with its state and dates.
    List {
        #[command(flatten)]
        source: Source,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Both providers may be compiled in a workspace build; pick aws-lc-rs explicitly (an Err only
    // means one is already installed).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Serve(args) => {
            let log_format = args.log_format.map(|f| match f {
                LogFormatArg::Human => LogFormat::Human,
                LogFormatArg::Json => LogFormat::Json,
            });
            match actix_web::rt::System::new().block_on(serve::run(args.source, args.listen, log_format)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(StartError::Config(e)) => config_failure(&e),
                Err(e) => {
                    eprintln!("tessera: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::CheckConfig { config } => match config::load_file(&config) {
            Ok(c) => {
                println!(
                    "configuration OK: issuer {} listen {} database {} signing {}",
                    c.issuer,
                    c.listen,
                    serve::redact_url(&c.database_url),
                    c.signing_alg
                );
                ExitCode::SUCCESS
            }
            Err(e) => config_failure(&e),
        },
        Command::Keys { command } => runtime.block_on(keys_command(command)),
        Command::Dev { command } => dev_command(command),
        Command::Clients { command } => runtime.block_on(crate::admin_cli::clients(command)),
        Command::Review { command } => runtime.block_on(crate::admin_cli::review(command)),
        Command::Inventory { command } => runtime.block_on(crate::admin_cli::inventory(command)),
        Command::Audit { command } => runtime.block_on(crate::admin_cli::audit(command)),
        Command::Sweep(args) => runtime.block_on(crate::admin_cli::sweep(args)),
    }
}

fn config_failure(e: &ConfigError) -> ExitCode {
    eprintln!("tessera: {e}");
    ExitCode::from(2)
}

/// The configuration a non-serving command works with: the file, or the dev data directory.
pub fn load_for_admin(source: &Source) -> Result<Config, ConfigError> {
    match &source.config {
        Some(path) => config::load_file(path),
        None => {
            let manifest = dev::ensure(&source.data_dir).map_err(|e| ConfigError::new("--data-dir", e.to_string()))?;
            config::load_dev(dev::raw_config(&manifest, "https://127.0.0.1:8443", "127.0.0.1:8443"))
        }
    }
}

async fn keys_command(command: KeysCommand) -> ExitCode {
    let source = match &command {
        KeysCommand::Rotate { source, .. } | KeysCommand::List { source, .. } => source.clone(),
    };
    let config = match load_for_admin(&source) {
        Ok(c) => c,
        Err(e) => return config_failure(&e),
    };
    let store = match serve::connect_store_for_command(&config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(1);
        }
    };
    let clock = SystemClock;
    match command {
        KeysCommand::Rotate { algorithm, .. } => {
            let alg = match algorithm.as_deref().map(SigningAlg::parse).transpose() {
                Ok(a) => a.unwrap_or(config.signing_alg),
                Err(e) => {
                    eprintln!("tessera: --algorithm: {e}");
                    return ExitCode::from(2);
                }
            };
            match keys::rotate(store.as_ref(), &config.kek, &clock, config.rotation, alg).await {
                Ok(key) => {
                    println!(
                        "created key {} ({}): published now, signs from {} (in {} s)",
                        key.kid,
                        key.alg,
                        fmt_time(key.activates_at.0),
                        key.activates_at.0 - clock.now().0
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tessera: key rotation failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        KeysCommand::List { json, .. } => match keys::list(store.as_ref(), &clock, config.rotation).await {
            Ok(states) => {
                let rows: Vec<serde_json::Value> = states
                    .iter()
                    .map(|(k, s)| {
                        let (retired, unpublished) = match s {
                            KeyState::Retired { since } => {
                                (Some(since.0), Some(since.0 + config.rotation.retention_secs))
                            }
                            KeyState::Expired { since } => {
                                (Some(since.0 - config.rotation.retention_secs), Some(since.0))
                            }
                            _ => (None, None),
                        };
                        serde_json::json!({
                            "kid": k.kid, "alg": k.alg.as_str(), "state": s.label(), "published": s.is_published(),
                            "created_at": k.created_at.0, "activates_at": k.activates_at.0,
                            "retired_at": retired, "unpublished_at": unpublished,
                        })
                    })
                    .collect();
                if json {
                    println!("{}", serde_json::Value::Array(rows));
                } else {
                    println!(
                        "{:<36} {:<6} {:<8} {:<21} {:<21} {:<21}",
                        "KID", "ALG", "STATE", "CREATED", "SIGNS FROM", "UNPUBLISHED AT"
                    );
                    for r in rows {
                        println!(
                            "{:<36} {:<6} {:<8} {:<21} {:<21} {:<21}",
                            r["kid"].as_str().unwrap_or(""),
                            r["alg"].as_str().unwrap_or(""),
                            r["state"].as_str().unwrap_or(""),
                            fmt_time(r["created_at"].as_i64().unwrap_or(0)),
                            fmt_time(r["activates_at"].as_i64().unwrap_or(0)),
                            r["unpublished_at"].as_i64().map(fmt_time).unwrap_or_else(|| "-".into()),
                        );
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tessera: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn dev_command(command: DevCommand) -> ExitCode {
    let DevCommand::SoftwareStatement {
        data_dir,
        software_id,
        org_id,
        org_name,
        roles,
        org_status,
        redirect_uri,
        jwks_uri,
        iat_offset,
    } = command;
    let manifest = match dev::ensure(&data_dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tessera: {e}");
            return ExitCode::from(1);
        }
    };
    let jwk = match std::fs::read(&manifest.directory.signing_key_jwk)
        .map_err(|e| e.to_string())
        .and_then(|b| tessera_jose::Jwk::from_bytes(&b).map_err(|e| e.to_string()))
    {
        Ok(j) => j,
        Err(e) => {
            eprintln!("tessera: cannot read the demo directory key: {e}");
            return ExitCode::from(1);
        }
    };
    let now = SystemClock.now().0 + iat_offset;
    let mut jti = [0u8; 16];
    if tessera_core::OsRng.fill(&mut jti).is_err() {
        eprintln!("tessera: no randomness");
        return ExitCode::from(1);
    }
    use base64::Engine;
    let roles: Vec<&str> = roles.split(',').map(str::trim).filter(|r| !r.is_empty()).collect();
    let mut claims = serde_json::json!({
        "iss": manifest.directory.issuer,
        "iat": now,
        "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        "software_id": software_id,
        "software_client_name": format!("{software_id} (demo)"),
        "software_client_description": "Demo software registered in Tessera dev mode",
        "software_mode": "Test",
        "software_roles": roles,
        "software_redirect_uris": redirect_uri,
        "org_id": org_id,
        "org_name": org_name,
        "org_status": org_status,
    });
    if let (Some(uri), Some(obj)) = (jwks_uri, claims.as_object_mut()) {
        obj.insert("software_jwks_endpoint".into(), serde_json::json!(uri));
    }
    let claims = claims.as_object().cloned().unwrap_or_default();
    match tessera_jose::sign_with_jwk(SigningAlg::ES256, &jwk, "JWT", &claims) {
        Ok(jwt) => {
            println!("{jwt}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tessera: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn fmt_time(secs: i64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64))
        .to_string()
}
