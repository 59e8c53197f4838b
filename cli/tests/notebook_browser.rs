//! A notebook page (`squall notebook run`) in a real browser: headless
//! Chromium through chromedriver (see `support::webdriver`). The page must
//! load without a script error, show every cell and its charts with one
//! mark per row, and show a mark's tooltip on hover; a notebook with a
//! failing cell still writes its page and exits 1. Screenshots are written
//! under the target directory as test artifacts (`revenue.png` is the
//! README's `docs/images/notebook.png`).
//!
//! Needs `chromium` and `chromium-driver` (Debian packages, installed by
//! `./scripts/install-test-deps.sh`).

mod support;

use std::path::Path;
use std::process::Command;

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
        &[],
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
