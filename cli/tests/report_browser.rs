//! The HTML report (`--report FILE.html`) in a real browser: headless
//! Chromium driven through chromedriver (WebDriver, see `support::webdriver`).
//! The page must draw without a script error, show one timeline bar per
//! task attempt in the JSON report of the same run, show a tooltip on hover,
//! and stay within a bounded height at 5,000 attempts. Screenshots are
//! written under the target directory as test artifacts.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages, installed by
//! `./scripts/install-test-deps.sh`).

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::webdriver::{Browser, ChromeDriver};

/// Runs `squall ARGS`; panics with its stderr unless it succeeds.
fn squall(args: &[String]) {
    support::tpch::squall_ok(args, &[]);
}

/// Where screenshots go: kept after the test for a person to look at.
fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Opens `page` and waits until its script has drawn it; fails on any
/// script error.
fn open(browser: &Browser, page: &Path) {
    browser.goto(&format!("file://{}", page.display()));
    browser.wait_for("return document.body.dataset.rendered === 'true';");
    let errors = browser.execute("return window.squallReportErrors;");
    assert_eq!(errors, json!([]), "script errors in {}", page.display());
}

/// Hovers over the first timeline bar `selector` finds and returns the
/// tooltip's text.
fn hover_bar(browser: &Browser, selector: &str) -> String {
    browser.hover(selector);
    let tooltip = browser.execute(
        "const t = document.getElementById('tooltip'); \
         return t.hidden || t.offsetWidth === 0 ? null : t.textContent;",
    );
    tooltip
        .as_str()
        .expect("a tooltip shows on hover")
        .to_string()
}

#[test]
fn a_report_draws_every_attempt_of_a_run_with_retries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    squall(
        &[
            "gen", "tpch", "--scale", "0.01", "--parts", "4", "--out", &root,
        ]
        .map(String::from),
    );
    let (html, json) = (dir.path().join("run.html"), dir.path().join("run.json"));
    // Task crashes make retries: failed attempts are drawn too.
    squall(&[
        "sql".to_string(),
        format!("--table=lineitem={root}/lineitem/"),
        format!("--table=orders={root}/orders/"),
        "--target-task-bytes=64KiB".into(),
        "--inject-task-faults=crash=0.2,seed=3".into(),
        "--task-attempts=6".into(),
        format!("--report={}", html.display()),
        format!("--report={}", json.display()),
        "-c".into(),
        "select o_orderpriority, count(*), sum(l_quantity) from orders join lineitem \
             on l_orderkey = o_orderkey group by o_orderpriority order by 1"
            .into(),
        "--no-progress".into(),
    ]);
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "squall-run-report/1");
    let query = &report["queries"][0];
    let attempts = query["attempts"].as_array().unwrap();
    let stages = query["stages"].as_array().unwrap();
    assert!(
        stages.len() >= 3,
        "a join and an aggregate make stages: {stages:?}"
    );
    let tasks: u64 = stages
        .iter()
        .map(|s| s["finished_tasks"].as_u64().unwrap())
        .sum();
    let failed = attempts.iter().filter(|a| a["outcome"] == "failed").count();
    assert!(failed > 0, "the injected crashes show as failed attempts");
    assert!(
        attempts.len() as u64 >= tasks + failed as u64,
        "every task's winning attempt is there"
    );

    let chromedriver = ChromeDriver::start();
    let browser = chromedriver.browser();
    open(&browser, &html);
    assert_eq!(
        browser.count("svg.timeline rect.attempt"),
        attempts.len(),
        "one bar per task attempt"
    );
    assert_eq!(browser.count("svg.timeline rect.attempt.failed"), failed);
    assert_eq!(
        browser.count("svg.stage-graph g.stage-node"),
        stages.len(),
        "one box per stage in the stage graph"
    );
    assert_eq!(browser.count("table.stages tbody tr"), stages.len());
    let text = hover_bar(&browser, "svg.timeline rect.attempt");
    assert!(
        text.starts_with("Stage ") && text.contains(" task ") && text.contains("attempt"),
        "{text}"
    );
    let cost = browser.execute("return document.querySelector('table.cost').textContent;");
    let cost = cost.as_str().unwrap();
    assert!(cost.contains("GB-s") && cost.contains("Total"), "{cost}");
    browser.screenshot(&artifact("run-report.png"));
}

/// A report of 5,000 attempts, 1,000 of them running at once in the first stage.
fn large_report() -> Value {
    let mut attempts = Vec::new();
    for task in 0..4_000u64 {
        let start = (task / 1_000) * 2_000 + task % 7;
        attempts.push(
            json!({"stage": 0, "task": task, "attempt": 0, "start_ms": start,
            "end_ms": start + 1_500 + task % 400, "outcome": "succeeded", "cause": null}),
        );
    }
    for task in 0..1_000u64 {
        let start = 8_500 + task % 50;
        attempts.push(
            json!({"stage": 1, "task": task, "attempt": 0, "start_ms": start,
            "end_ms": start + 700, "outcome": if task % 97 == 0 { "failed" } else { "succeeded" },
            "cause": if task % 97 == 0 { json!("the worker crashed") } else { json!(null) }}),
        );
    }
    let requests = json!({"get": 10, "put": 2, "multipart_put": 0, "head": 0, "list": 0,
        "delete": 0, "copy": 0, "retried": 0, "hedged": 0, "hedges_won": 0});
    let stage = |id: usize, tasks: u64, inputs: Value| {
        json!({"id": id, "is_final": id == 1, "inputs": inputs, "operator": "AggregateExec",
            "planned_tasks": tasks, "tasks": tasks, "finished_tasks": tasks, "busy_ms": tasks * 1_000,
            "task_times_ms": (0..tasks).map(|t| 900 + t % 500).collect::<Vec<_>>(),
            "task_ms_p50": 1_150, "task_ms_p95": 1_375, "task_ms_max": 1_399, "slowest_task": 7,
            "input_rows": 1_000_000, "input_bytes": 1 << 30, "output_rows": 1_000, "output_bytes": 1 << 20,
            "requests": requests, "spilled_bytes": 0, "peak_memory_bytes": 1 << 28,
            "retries": 0, "backups": 0, "backups_won": 0})
    };
    json!({
        "schema": "squall-run-report/1", "backend": "lambda", "function_memory_bytes": 3538u64 << 20,
        "billed": true,
        "prices": {"lambda_gb_second_usd": 0.0000166667, "lambda_invocation_usd": 2e-7,
            "s3_get_usd": 4e-7, "s3_put_usd": 5e-6},
        "queries": [{
            "sql": "select 1", "elapsed_ms": 9_500, "error": null, "plan": "Squall plan",
            "stages": [stage(0, 4_000, json!([])), stage(1, 1_000, json!([{"stage": 0, "exchange": "hash"}]))],
            "attempts": attempts,
            "cost": {"gb_seconds": 17_275.0, "compute_usd": 0.29, "invocations": 5_000,
                "invocations_usd": 0.001, "get_requests": 50_000, "get_usd": 0.02,
                "put_requests": 10_000, "put_usd": 0.05, "total_usd": 0.361}
        }]
    })
}

#[test]
fn five_thousand_attempts_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (json_path, html) = (dir.path().join("large.json"), dir.path().join("large.html"));
    std::fs::write(&json_path, serde_json::to_vec(&large_report()).unwrap()).unwrap();
    squall(&[
        "report".to_string(),
        json_path.display().to_string(),
        html.display().to_string(),
    ]);
    let chromedriver = ChromeDriver::start();
    let browser = chromedriver.browser();
    open(&browser, &html);
    assert_eq!(browser.count("svg.timeline rect.attempt"), 5_000);
    let height = browser
        .execute("return document.querySelector('svg.timeline').getBoundingClientRect().height;")
        .as_f64()
        .unwrap();
    assert!(
        height <= 700.0,
        "the timeline is {height} px tall at 5,000 attempts"
    );
    assert_eq!(
        browser.count("svg.timeline rect.attempt.failed"),
        11,
        "task 0, 97, ..., 970 of stage 1 failed"
    );
    // 1,000 attempts at once share 1-px rows: the bar on top answers.
    let text = hover_bar(&browser, "rect.attempt[data-stage='1'][data-task='970']");
    assert!(
        text.starts_with("Stage 1 task ") && text.contains("attempt 0"),
        "{text}"
    );
    browser.screenshot(&artifact("large-report.png"));
}
