//! Test support shared by the CLI tests: moto's server (S3, IAM, Lambda APIs)
//! and Azurite on 127.0.0.1, and TPC-H through the binary.

#![allow(dead_code)]

pub mod azurite;
pub mod duckdb;
pub mod tpch;
pub mod webdriver;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now, and one this test process
/// has not handed out before: tests run in parallel threads, and two servers
/// given the same port would answer each other's requests.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Whether a server accepts connections on `port`. A connection to a free
/// port in the ephemeral range can be answered by the probing socket itself
/// (a TCP self-connect, when the kernel picks that very port as the source):
/// such a connection does not count.
fn accepts_connections(port: u16) -> bool {
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream.local_addr().ok() != stream.peer_addr().ok(),
        Err(_) => false,
    }
}

/// Starts a server with `spawn(port)` on a free port and waits (at most a
/// minute) until it accepts connections there. A server that exits first
/// (its port was taken in between) is started again on another port, up to
/// three times. `what` names the server in the panic.
pub fn start_listening(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = spawn(port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                eprintln!("{what} exited ({status}) before listening on port {port}");
                break;
            }
            if accepts_connections(port) {
                return (child, port);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not start on port {port} within a minute");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    panic!("{what} exited before listening, three times")
}

/// Runs `command` to its end and returns what it printed, or, when it has
/// not ended after `limit`, kills it and panics with what it printed so far:
/// a hung command fails its test at once instead of holding up the suite.
pub fn output_within(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = sender.send(bytes);
        });
        receiver
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Processes the command started may hold its pipes open: wait a little.
    let collect = |r: std::sync::mpsc::Receiver<Vec<u8>>| {
        r.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    };
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{command:?} did not end within {} s and was killed; its standard error:\n{}",
            limit.as_secs(),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// The last `lines` lines of the file at `path` (empty when there is none).
pub fn tail_of_file(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A raw HTTP POST of `body` to `path` on a loopback `port`; the whole response.
pub fn http_post(port: u16, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// moto's server on a free loopback port, stopped on drop. What it prints
/// goes to a log file, whose tail a failed request shows.
pub struct S3Server {
    child: std::sync::Mutex<Child>,
    log: tempfile::NamedTempFile,
    pub port: u16,
}

impl S3Server {
    pub fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// The same, with moto's settings in `env` (for example
    /// `INITIAL_NO_AUTH_ACTION_COUNT`, after which requests must be signed
    /// with keys moto's IAM knows).
    ///
    /// It returns once moto answers an HTTP request, not merely once its
    /// port accepts a connection.
    pub fn start_with_env(env: &[(&str, &str)]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let (child, port) = start_listening("moto's server", |port| {
            Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("python3 -m moto.server (run scripts/install-test-deps.sh)")
        });
        let server = Self {
            child: std::sync::Mutex::new(child),
            log,
            port,
        };
        let reply = server.http("GET", "/moto-api/data.json");
        assert!(reply.starts_with("HTTP/1.1 200"), "moto's server: {reply}");
        server
    }

    /// A raw HTTP request (moto needs no signature for these). Only for
    /// requests that may be sent twice (bucket creation, listings): a
    /// refused or reset connection is tried again, for up to 30 s. Moto's
    /// development server now and then resets the first connections it
    /// serves on a loaded machine. A request that still fails panics with
    /// whether moto is running and the tail of its log.
    pub fn http(&self, method: &str, path: &str) -> String {
        let send = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match send() {
                Ok(out) => return out,
                Err(e)
                    if Instant::now() < deadline
                        && matches!(
                            e.kind(),
                            std::io::ErrorKind::ConnectionReset
                                | std::io::ErrorKind::ConnectionRefused
                        ) =>
                {
                    std::thread::sleep(Duration::from_millis(300));
                }
                Err(e) => {
                    let running = match self.child.lock().unwrap().try_wait() {
                        Ok(Some(status)) => format!("moto exited ({status})"),
                        Ok(None) => "moto is running".to_string(),
                        Err(e) => format!("moto's state is unknown ({e})"),
                    };
                    panic!(
                        "{method} {path} to moto on port {}: {e}; {running}; its log ends:\n{}",
                        self.port,
                        tail_of_file(self.log.path(), 20)
                    )
                }
            }
        }
    }

    /// An unsigned request routed to `service` (iam, lambda, ...) by the
    /// credential scope; moto checks no signature.
    pub fn request(&self, service: &str, method: &str, path: &str, body: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    pub fn envs(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}
