//! A small WebDriver client for headless Chromium through chromedriver, on
//! 127.0.0.1: the handful of W3C WebDriver commands the report tests use
//! (open a page, run a script, move the pointer onto an element, take a
//! screenshot), as JSON over plain HTTP/1.1.
//!
//! Written here rather than taken from a crate: the WebDriver crates switch
//! on serde_json's `preserve_order` for the whole workspace, which changes
//! how every crate's JSON orders keys and rebuilds DataFusion.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::start_listening;

const INSTALL: &str =
    "install them with ./scripts/install-test-deps.sh (apt-get install chromium chromium-driver)";

/// The W3C name of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free loopback port, killed when dropped.
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts `chromedriver` (or `SQUALL_CHROMEDRIVER`); panics with the
    /// install command when it cannot.
    pub fn start() -> Self {
        let binary = std::env::var("SQUALL_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let (child, port) = start_listening("chromedriver", |port| {
            Command::new(&binary)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {binary} ({e}): {INSTALL}"))
        });
        Self { child, port }
    }

    /// A new headless Chromium (`/usr/bin/chromium`, or `SQUALL_CHROMIUM`)
    /// with a 1400×1000 window.
    pub fn browser(&self) -> Browser {
        let chromium =
            std::env::var("SQUALL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(Path::new(&chromium).exists(), "no {chromium}: {INSTALL}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"],
            },
        }}});
        let session = request(self.port, "POST", "/session", Some(&capabilities));
        let id = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no session: {session}"))
            .to_string();
        Browser {
            port: self.port,
            session: format!("/session/{id}"),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session; closed when dropped.
pub struct Browser {
    port: u16,
    session: String,
}

impl Browser {
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        request(self.port, method, &format!("{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `return` gives its value) in the page.
    pub fn execute(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Waits (at most 30 s) until `script` returns `true`.
    pub fn wait_for(&self, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.execute(script) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "waited 30 s for {script}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// How many elements `selector` finds.
    pub fn count(&self, selector: &str) -> usize {
        let script = format!("return document.querySelectorAll({selector:?}).length;");
        self.execute(&script).as_u64().unwrap() as usize
    }

    /// Moves the pointer onto the centre of the first element `selector` finds.
    pub fn hover(&self, selector: &str) {
        let found = self.command(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        let element = found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"));
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "x": 0, "y": 0,
                         "origin": { ELEMENT_KEY: element }}],
        }]});
        self.command("POST", "/actions", Some(&actions));
    }

    /// The WebDriver id of the first element `selector` finds.
    fn element(&self, selector: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": selector })),
        );
        found[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {found}"))
            .to_string()
    }

    /// Clicks the first element `selector` finds.
    pub fn click(&self, selector: &str) {
        let element = self.element(selector);
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    /// Empties the first field `selector` finds and types `text` into it,
    /// key by key, as a person would.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.element(selector);
        self.command(
            "POST",
            &format!("/element/{element}/clear"),
            Some(&json!({})),
        );
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// Presses Shift+Enter in whatever has the focus.
    pub fn shift_enter(&self) {
        const SHIFT: &str = "\u{E008}";
        const ENTER: &str = "\u{E007}";
        let actions = json!({"actions": [{
            "type": "key", "id": "keyboard",
            "actions": [
                {"type": "keyDown", "value": SHIFT},
                {"type": "keyDown", "value": ENTER},
                {"type": "keyUp", "value": ENTER},
                {"type": "keyUp", "value": SHIFT},
            ],
        }]});
        self.command("POST", "/actions", Some(&actions));
        self.command("DELETE", "/actions", None);
    }

    /// A PNG of the window, written to `path`.
    pub fn screenshot(&self, path: &Path) {
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a base64 screenshot"))
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let (port, session) = (self.port, self.session.clone());
        let _ = std::panic::catch_unwind(|| request(port, "DELETE", &session, None));
    }
}

/// One WebDriver request; its `value`, or a panic naming the error.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let payload = read_response(&mut stream);
    let json: Value = serde_json::from_slice(&payload).unwrap_or_else(|e| {
        panic!(
            "{method} {path}: not JSON ({e}): {}",
            String::from_utf8_lossy(&payload)
        )
    });
    if json["value"]["error"].is_string() {
        panic!("{method} {path}: {}", json["value"]);
    }
    json["value"].clone()
}

/// The body of an HTTP response (chromedriver keeps connections open, so
/// the body ends where its length says).
fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut response = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let head_end = response.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(split) = head_end {
            let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
            let body = &response[split + 4..];
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|n| n.trim().parse::<usize>().unwrap());
            match length {
                Some(length) if body.len() >= length => return body[..length].to_vec(),
                None if head.contains("transfer-encoding: chunked")
                    && body.ends_with(b"0\r\n\r\n") =>
                {
                    return dechunk(body);
                }
                _ => {}
            }
        }
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            let split = head_end.expect("an HTTP response");
            return response[split + 4..].to_vec();
        }
        response.extend_from_slice(&buffer[..n]);
    }
}

fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = chunked.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&chunked[..line_end])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
}
