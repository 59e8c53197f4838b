//! A notebook page (`squall notebook run`) in a real browser: headless
//! Chromium through chromedriver (see `support::webdriver`). The page must
//! load without a script error, show every cell and its charts with one
//! mark per row, and show a mark's tooltip on hover; a notebook with a
//! failing cell still writes its page and exits 1. Screenshots are written
//! under the target directory as test artifacts (`revenue.png` is the
//! README's `docs/images/notebook.png`, `live.png` its
//! `docs/images/notebook-live.png`).
//!
//! The live notebook (`squall notebook serve`) in the same browser: the
//! test types into a cell and presses Shift+Enter, sees the cell that reads
//! it change while an independent one comes from the cache, finds the edit
//! in the Markdown file, sees another editor's change to the file appear,
//! adds and deletes a cell, stops a running cell with its Cancel button,
//! and is refused without the token.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages, installed by
//! `./scripts/install-test-deps.sh`).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::json;
use support::webdriver::ChromeDriver;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/notebooks")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn a_notebook_page_draws_its_cells_and_charts_with_tooltips() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("tpch").display().to_string();
    support::tpch::squall_ok(
        &["gen", "tpch", "--scale", "0.01", "--out", &data].map(String::from),
        &[],
    );
    let page = dir.path().join("revenue.html");
    support::tpch::squall(
        &[
            "notebook".to_string(),
            "run".into(),
            example("revenue.md"),
            "--set".into(),
            format!("data={data}"),
            "-o".into(),
            page.display().to_string(),
        ],
        &[(
            "XDG_CACHE_HOME",
            dir.path().join("cache").display().to_string(),
        )],
    );
    let driver = ChromeDriver::start();
    let browser = driver.browser();
    browser.goto(&format!("file://{}", page.display()));
    browser.wait_for("return document.body.dataset.rendered === 'true';");
    assert_eq!(
        browser.execute("return window.squallNotebookErrors;"),
        json!([])
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("notebook-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    browser.execute("document.querySelector('svg.chart').scrollIntoView({block: 'center'});");
    browser.screenshot(&shots.join("revenue.png"));
    assert_eq!(browser.count("section.cell[data-state=done]"), 4);
    assert_eq!(browser.count("svg.chart"), 2);
    // The line has a point per year, the bars one per year and priority.
    let rows = browser.execute(
        "return [...document.querySelectorAll('section.cell .footer')].map(f => parseInt(f.textContent));",
    );
    let rows: Vec<u64> = serde_json::from_value(rows).unwrap();
    assert_eq!(
        browser.count("svg.chart .mark") as u64,
        rows[1] + rows[2],
        "one mark per row of the drawn cells: {rows:?}"
    );
    browser.hover("svg.chart rect.mark");
    let tip = browser.execute(
        "const t = document.getElementById('tooltip'); return t.hidden ? null : t.textContent;",
    );
    let tip = tip.as_str().expect("a tooltip on hover");
    assert!(
        tip.starts_with("year: ") && tip.contains("revenue: "),
        "{tip}"
    );
    browser.screenshot(&shots.join("revenue-tooltip.png"));

    // A failing cell: the page is written, the command exits 1.
    let failing = dir.path().join("errors.html");
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["notebook", "run", &example("errors.md"), "-o"])
        .arg(&failing)
        .arg("--no-progress")
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: 2 of 4 cells did not run to their end"),
        "{stderr}"
    );
    browser.goto(&format!("file://{}", failing.display()));
    browser.wait_for("return document.body.dataset.rendered === 'true';");
    assert_eq!(browser.count("section.cell[data-state=failed] .error"), 1);
    assert_eq!(browser.count("section.cell[data-state=skipped]"), 1);
}

/// `squall notebook serve`, stopped when dropped.
struct LiveServer {
    child: Child,
    url: String,
    port: u16,
}

impl Drop for LiveServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LiveServer {
    /// Serves `notebook`, its cache in `cache`; waits for the address it prints.
    fn start(notebook: &Path, cache: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["notebook", "serve"])
            .arg(notebook)
            .args(["--no-progress", "--cache"])
            .arg(cache)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.is_empty() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("squall notebook serve printed no address: {stderr}");
        }
        let url = line.trim().to_string();
        let port = url
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a local address: {url}"));
        Self { child, url, port }
    }

    /// The status of `GET path` sent with `host` as its Host header.
    fn status(&self, path: &str, host: &str) -> u16 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"))
    }
}

/// The text of the output of SQL cell `i` of the live page.
fn cell_text(browser: &support::webdriver::Browser, i: usize) -> String {
    browser
        .execute(&format!(
            "const b = document.querySelectorAll('.block[data-kind=sql]')[{i}]; \
             return b ? b.querySelector('.output').textContent : '';"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until SQL cell `i`'s output contains `text` (and is done).
fn wait_for_cell(browser: &support::webdriver::Browser, i: usize, text: &str) {
    browser.wait_for(&format!(
        "const b = document.querySelectorAll('.block[data-kind=sql]')[{i}]; \
         return !!b && b.dataset.state !== 'running' && b.dataset.state !== 'pending' \
           && b.querySelector('.output').textContent.includes({text:?});"
    ));
}

#[test]
fn a_live_notebook_is_edited_in_the_browser_and_saved_to_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let numbers = dir.path().join("numbers.csv");
    std::fs::write(&numbers, "n\n1\n2\n3\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let outside = elsewhere.path().join("secret.csv");
    std::fs::write(&outside, "s\n1\n").unwrap();
    let path = dir.path().join("live.md");
    let base = |factor: &str| {
        format!(
            "```sql base\nSELECT sum(n){factor} AS v FROM '{}'\n```",
            numbers.display()
        )
    };
    std::fs::write(
        &path,
        format!(
            "# Live\n\n{}\n\n```sql doubled\nSELECT v * 2 AS w FROM base\n```\n\n\
             ```sql\nSELECT 7 * 6 AS answer\n```\n",
            base("")
        ),
    )
    .unwrap();
    let server = LiveServer::start(&path, &dir.path().join("cache"));

    // The token and the address are required.
    let path_and_query = server
        .url
        .trim_start_matches(&format!("http://127.0.0.1:{}", server.port));
    let host = format!("127.0.0.1:{}", server.port);
    assert_eq!(server.status(path_and_query, &host), 200);
    assert_eq!(server.status("/", &host), 401);
    assert_eq!(server.status("/api/events?token=0123", &host), 401);
    assert_eq!(
        server.status(path_and_query, &format!("evil.example:{}", server.port)),
        403
    );

    let driver = ChromeDriver::start();
    let browser = driver.browser();
    browser.goto(&server.url);
    browser.wait_for("return document.body.dataset.rendered === 'true';");
    wait_for_cell(&browser, 1, "12");
    wait_for_cell(&browser, 2, "42");

    // Type into the first cell and run it: the cell reading it changes,
    // the independent one comes from the cache, the file has the edit.
    browser.type_into(".block[data-kind=sql] textarea", &base(" * 10"));
    browser.shift_enter();
    wait_for_cell(&browser, 1, "120");
    wait_for_cell(&browser, 2, "42");
    assert!(
        cell_text(&browser, 2).contains("from cache"),
        "{}",
        cell_text(&browser, 2)
    );
    assert!(!cell_text(&browser, 1).contains("from cache"));
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(saved.contains("SELECT sum(n) * 10 AS v"), "{saved}");
    assert!(
        saved.starts_with("# Live\n\n```sql base\n")
            && saved.ends_with("SELECT 7 * 6 AS answer\n```\n"),
        "{saved}"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("notebook-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    browser.screenshot(&shots.join("live.png"));
    assert_eq!(
        browser.execute("return window.squallNotebookErrors;"),
        json!([])
    );

    // Another editor changes the file: the page follows.
    std::fs::write(&path, saved.replace("v * 2 AS w", "v * 3 AS w")).unwrap();
    wait_for_cell(&browser, 1, "180");

    // A cell added below the last one, then made to read a file outside
    // the notebook's folder: refused; then deleted.
    let sql_blocks = "return document.querySelectorAll('.block[data-kind=sql]').length;";
    // A block's buttons show when the pointer is over it.
    browser.hover(".block:last-child");
    browser.click(".block:last-child button.tool[title='Add a SQL cell below']");
    browser.wait_for(&format!("{} === 4;", sql_blocks.trim_end_matches(';')));
    wait_for_cell(&browser, 3, "1");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("SELECT 1 AS one")
    );
    browser.type_into(
        ".block:last-child textarea",
        &format!("```sql\nSELECT * FROM '{}'\n```", outside.display()),
    );
    browser.shift_enter();
    wait_for_cell(&browser, 3, "is outside");
    browser.hover(".block:last-child");
    browser.click(".block:last-child button.tool[title='Delete this block']");
    browser.wait_for(&format!("{} === 3;", sql_blocks.trim_end_matches(';')));
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        !saved.contains("SELECT 1 AS one") && !saved.contains("secret"),
        "{saved}"
    );

    // An edit that breaks the notebook is refused and not saved.
    browser.type_into(".block[data-kind=sql] textarea", "```sql base\nSELECT 1");
    browser.shift_enter();
    browser.wait_for(
        "const p = document.getElementById('problem'); return !p.hidden && p.textContent.includes('not saved');",
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), saved);

    // A cell that would run for hours, stopped from its own Cancel button.
    browser.type_into(
        ".block:last-child textarea",
        "```sql\nSELECT count(*) AS n FROM generate_series(1, 100000) a, generate_series(1, 100000) b\n```",
    );
    browser.shift_enter();
    browser.wait_for(
        "return document.querySelector('.block:last-child').dataset.state === 'running';",
    );
    browser.hover(".block:last-child");
    browser.click(".block:last-child button.tool[title='Stop this cell']");
    wait_for_cell(&browser, 2, "cancelled before it ended");
    wait_for_cell(&browser, 1, "180");
}
