//! Redis for tests: the server on 127.0.0.1:6379 (or `TESSERA_TEST_REDIS_URL`) when it answers,
//! otherwise a private `redis-server` on a free port, otherwise a loud skip. With
//! `TESSERA_TEST_REQUIRE_REDIS` set (CI), a missing Redis fails the test instead.
//!
//! Each `TestRedis` has its own key prefix, so tests sharing one server do not see each other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct TestRedis {
    url: String,
    prefix: String,
    port: u16,
}

struct Private {
    child: Child,
    port: u16,
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

static PRIVATE: OnceLock<Mutex<Option<Private>>> = OnceLock::new();

fn answers(port: u16) -> bool {
    let Ok(mut s) =
        TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(500))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && &buf[..5] == b"+PONG")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_private() -> Result<u16, String> {
    let cell = PRIVATE.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap();
    if let Some(p) = guard.as_ref() {
        return Ok(p.port);
    }
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !answers(port) {
        if Instant::now() > deadline {
            return Err("redis-server did not answer within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    *guard = Some(Private { child, port });
    Ok(port)
}

impl TestRedis {
    pub fn new() -> Option<TestRedis> {
        let port = std::env::var("TESSERA_TEST_REDIS_URL")
            .ok()
            .and_then(|u| u.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()))
            .unwrap_or(6379u16);
        let port = if answers(port) {
            port
        } else {
            match start_private() {
                Ok(p) => p,
                Err(e) => {
                    if std::env::var_os("TESSERA_TEST_REQUIRE_REDIS").is_some() {
                        panic!("Redis is required (TESSERA_TEST_REQUIRE_REDIS) but unavailable: {e}");
                    }
                    eprintln!("REDIS SUITE SKIPPED: no Redis on 127.0.0.1:{port} and {e}");
                    return None;
                }
            }
        };
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).unwrap();
        let prefix = format!("tessera-test-{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        Some(TestRedis { url: format!("redis://127.0.0.1:{port}"), prefix, port })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A Redis of its own that a test may stop (to test failure semantics), on a free port.
pub struct KillableRedis {
    child: Option<Child>,
    pub port: u16,
}

impl KillableRedis {
    pub fn start() -> Option<KillableRedis> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                if std::env::var_os("TESSERA_TEST_REQUIRE_REDIS").is_some() {
                    panic!("redis-server is required (TESSERA_TEST_REQUIRE_REDIS) but cannot run: {e}");
                }
                eprintln!("REDIS SUITE SKIPPED: cannot run redis-server: {e}");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(port) {
            assert!(Instant::now() < deadline, "private redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(KillableRedis { child: Some(child), port })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !answers(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }
}

impl Drop for KillableRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
