//! A closed-loop load driver that sends every line of a file exactly once, in order, over
//! `-c` HTTP/1.1 keep-alive connections with a client certificate, and prints one JSON summary.
//! oha's `-Z` picks lines at random (with repeats), which a one-time software statement cannot
//! survive; everything else in bench/run.sh uses oha.
//!
//! seqload --url URL --cert PEM --key PEM --cacert PEM --bodies FILE [-c 16] [--threads 1]
//!         [--content-type application/json]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn need(args: &[String], name: &str) -> String {
    arg(args, name).unwrap_or_else(|| {
        eprintln!("seqload: missing {name}");
        std::process::exit(2)
    })
}

struct Outcome {
    latencies_us: Vec<u64>,
    status: BTreeMap<String, u64>,
    first_error: Option<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = need(&args, "--url");
    let cert = std::fs::read(need(&args, "--cert")).expect("--cert");
    let key = std::fs::read(need(&args, "--key")).expect("--key");
    let ca = std::fs::read(need(&args, "--cacert")).expect("--cacert");
    let bodies: Vec<String> = std::fs::read_to_string(need(&args, "--bodies"))
        .expect("--bodies")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let connections: usize = arg(&args, "-c").and_then(|c| c.parse().ok()).unwrap_or(16);
    let threads: usize = arg(&args, "--threads").and_then(|c| c.parse().ok()).unwrap_or(1);
    let content_type = arg(&args, "--content-type").unwrap_or_else(|| "application/json".into());
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime");
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let mut identity = cert.clone();
    identity.extend_from_slice(b"\n");
    identity.extend_from_slice(&key);
    let start = Instant::now();
    let outcomes: Vec<Outcome> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            // One client per task: one keep-alive connection each.
            let client = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
                .identity(reqwest::Identity::from_pem(&identity).expect("identity"))
                .http1_only()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client");
            let (bodies, next, url, ct) = (bodies.clone(), next.clone(), url.clone(), content_type.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Outcome { latencies_us: Vec::new(), status: BTreeMap::new(), first_error: None };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let r = client.post(&url).header("content-type", &ct).body(body.clone()).send().await;
                    let key = match r {
                        Ok(resp) => {
                            let code = resp.status().as_u16();
                            let text = resp.text().await.unwrap_or_default();
                            if !(200..300).contains(&code) && out.first_error.is_none() {
                                out.first_error =
                                    Some(format!("{code}: {}", text.chars().take(300).collect::<String>()));
                            }
                            code.to_string()
                        }
                        Err(e) => {
                            if out.first_error.is_none() {
                                out.first_error = Some(e.to_string());
                            }
                            "transport".into()
                        }
                    };
                    out.latencies_us.push(t.elapsed().as_micros() as u64);
                    *out.status.entry(key).or_default() += 1;
                }
                out
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("task"));
        }
        all
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut lat: Vec<u64> = outcomes.iter().flat_map(|o| o.latencies_us.iter().copied()).collect();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let mut status: BTreeMap<String, u64> = BTreeMap::new();
    for o in &outcomes {
        for (k, v) in &o.status {
            *status.entry(k.clone()).or_default() += v;
        }
    }
    let ok: u64 = status.iter().filter(|(k, _)| k.starts_with('2')).map(|(_, v)| v).sum();
    let requests = lat.len() as u64;
    let summary = json!({
        "requests": requests,
        "ok": ok,
        "errors": requests - ok,
        "status": status,
        "seconds": seconds,
        "rps": requests as f64 / seconds,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "first_error": outcomes.iter().find_map(|o| o.first_error.clone()),
    });
    println!("{summary}");
}
