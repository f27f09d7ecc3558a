//! The real `tessera` binary as a child process, on an ephemeral port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Installs aws-lc-rs as the process's rustls provider (reqwest is built without one).
pub fn init_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A reqwest client that trusts `ca_pem` only, optionally presenting `identity` (cert + key PEM).
pub fn https_client(ca_pem: &[u8], identity: Option<(&str, &str)>) -> reqwest::Client {
    init_crypto();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30));
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

pub struct Tessera {
    child: Child,
    /// Every `https://ADDR` the process announced, main listener first.
    pub addresses: Vec<String>,
    pub data_dir: PathBuf,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr_log: PathBuf,
}

impl Tessera {
    /// `tessera serve` in dev mode on 127.0.0.1:0 with `data_dir`, plus `env`.
    pub fn start_dev(bin: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Tessera {
        let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()];
        Self::spawn(bin, &args, data_dir, env, 1)
    }

    /// `tessera serve --config FILE`; `listeners` is how many addresses it will announce.
    pub fn start_config(bin: &Path, config: &Path, work_dir: &Path, env: &[(&str, &str)], listeners: usize) -> Tessera {
        let args = ["serve", "--config", config.to_str().unwrap()];
        Self::spawn(bin, &args, work_dir, env, listeners)
    }

    fn spawn(bin: &Path, args: &[&str], dir: &Path, env: &[(&str, &str)], listeners: usize) -> Tessera {
        std::fs::create_dir_all(dir).unwrap();
        let stderr_log = dir.join(format!("tessera-{}.stderr.log", std::process::id()));
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&stderr_log).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args).current_dir(dir).stdout(Stdio::piped()).stderr(stderr).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("tessera: listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut addresses = Vec::new();
        while addresses.len() < listeners {
            match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(a) => addresses.push(a),
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                    panic!("tessera did not start; stdout: {:?}\nstderr:\n{log}", lines.lock().unwrap());
                }
            }
        }
        Tessera { child, addresses, data_dir: dir.to_owned(), stdout: lines, stderr_log }
    }

    /// The main listener, e.g. `https://127.0.0.1:41234`.
    pub fn base(&self) -> &str {
        &self.addresses[0]
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no graceful shutdown, nothing flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Tessera {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `tessera ARGS` to completion.
pub fn run(bin: &Path, args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}
