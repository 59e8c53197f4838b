//! The interactive shell, driven through a pseudo-terminal as a person
//! would: statements over several lines, Tab completion, dot commands,
//! history kept across sessions, and Ctrl-C cancelling a running statement
//! (its scratch deleted) without leaving the shell.

use std::path::Path;
use std::process::Command;

use rexpect::session::{PtySession, spawn_command};

/// Every wait of the test, generous for a loaded machine.
const TIMEOUT_MS: u64 = 120_000;

fn scores(dir: &Path) -> String {
    let path = dir.join("scores.csv");
    std::fs::write(&path, "team,points\nred,3\nblue,5\nred,4\n").unwrap();
    path.display().to_string()
}

/// `squall` with `args` on a fresh pseudo-terminal, its history in `dir`.
fn shell(dir: &Path, args: &[&str]) -> PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_squall"));
    command
        .args(args)
        .env("TERM", "xterm")
        .env("SQUALL_HISTORY", dir.join("history"))
        .env_remove("SQUALL_CONFIG");
    spawn_command(command, Some(TIMEOUT_MS)).expect("cannot start squall on a pseudo-terminal")
}

/// Types `text` (sent at once: rexpect buffers until flushed).
fn keys(p: &mut PtySession, text: &str) -> Result<(), rexpect::error::Error> {
    p.send(text)?;
    p.flush()
}

/// Types `line` and Enter.
fn enter(p: &mut PtySession, line: &str) {
    keys(p, &format!("{line}\r")).unwrap();
}

/// Waits for the shell's prompt on an empty line (not a redraw of a
/// line being typed, which starts with the prompt too).
fn prompt(p: &mut PtySession) {
    p.exp_string("squall> \r").unwrap();
}

fn scratch_queries(scratch: &Path) -> Vec<String> {
    std::fs::read_dir(scratch)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("q-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_shell_runs_statements_completes_names_and_keeps_history() {
    let dir = tempfile::tempdir().unwrap();
    let csv = scores(dir.path());
    let table = format!("scores={csv}");
    let mut p = shell(dir.path(), &["sql", "--table", &table]);
    prompt(&mut p);

    // A statement over two lines; Tab completes the table's name.
    keys(&mut p, "SELECT team, sum(points) AS total\r").unwrap();
    keys(&mut p, "FROM sco\t").unwrap();
    p.exp_string("scores").unwrap();
    keys(&mut p, " GROUP BY team ORDER BY team;\r").unwrap();
    // (rexpect reads bytes as Latin-1: only ASCII is matched.)
    p.exp_regex(r" blue +\S+ +5 ").unwrap();
    p.exp_regex(r" red +\S+ +7 ").unwrap();
    // The footer: rows, then time, tasks and bytes read.
    p.exp_regex(r"2 rows \S+ [0-9.]+ s \S+ [0-9]+ tasks? \S+ read ")
        .unwrap();
    prompt(&mut p);

    // Dot commands. (Each line waits for the prompt: keys typed ahead of
    // it are dropped by the line editor, as in a terminal's paste without
    // bracketed paste.)
    enter(&mut p, ".mode csv");
    prompt(&mut p);
    enter(&mut p, "SELECT count(*) AS n FROM scores;");
    p.exp_string("n\r\n3\r\n").unwrap();
    prompt(&mut p);
    enter(&mut p, ".tables");
    p.exp_string("scores\r\n").unwrap();
    prompt(&mut p);
    enter(&mut p, ".schema scores");
    p.exp_regex("points +Int64").unwrap();
    prompt(&mut p);
    enter(&mut p, ".frobnicate");
    p.exp_string("unknown command '.frobnicate': .help lists the commands")
        .unwrap();
    prompt(&mut p);

    // A mistake is reported and the shell goes on; tables created in SQL stay.
    enter(&mut p, "SELEC 1;");
    p.exp_string("error: ").unwrap();
    prompt(&mut p);
    enter(
        &mut p,
        &format!(
            "CREATE EXTERNAL TABLE again STORED AS CSV LOCATION '{csv}' OPTIONS ('format.has_header' 'true');"
        ),
    );
    prompt(&mut p);
    enter(&mut p, ".mode line");
    prompt(&mut p);
    enter(&mut p, "SELECT max(points) AS best FROM again;");
    p.exp_string("best = 5").unwrap();
    prompt(&mut p);

    // `.output FILE` sends results to a file.
    let out = dir.path().join("out.csv");
    enter(&mut p, &format!(".output {}", out.display()));
    prompt(&mut p);
    enter(&mut p, ".mode csv");
    prompt(&mut p);
    enter(&mut p, "SELECT team FROM scores WHERE points > 4;");
    prompt(&mut p);
    enter(&mut p, ".output");
    prompt(&mut p);
    enter(&mut p, ".quit");
    p.exp_eof().unwrap();
    let status = p.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::wait::WaitStatus::Exited(_, 0)),
        "{status:?}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "team\nblue\n");

    // History survives into the next session; Up recalls the last statement.
    let history = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert!(
        history.contains("SELECT count(*) AS n FROM scores;"),
        "{history}"
    );
    assert!(history.contains(".mode line"), "{history}");
    let mut p = shell(dir.path(), &["sql", "--table", &table]);
    prompt(&mut p);
    keys(&mut p, "\x1b[A").unwrap();
    p.exp_string(".quit").unwrap();
    keys(&mut p, "\r").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn ctrl_c_cancels_a_statement_and_returns_to_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let report = dir.path().join("shell-report.json");
    let mut p = shell(
        dir.path(),
        &[
            "sql",
            "--scratch",
            &scratch.display().to_string(),
            "--report",
            &report.display().to_string(),
        ],
    );
    prompt(&mut p);
    // Forty billion rows: it runs until it is cancelled.
    keys(
        &mut p,
        "SELECT sum(a.value * b.value) FROM range(200000) a CROSS JOIN range(200000) b;\r",
    )
    .unwrap();
    let started = std::time::Instant::now();
    while scratch_queries(&scratch).is_empty() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the statement never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    p.send_control('c').unwrap();
    p.exp_string("cancelled: its tasks are stopped and its scratch deleted")
        .unwrap();
    prompt(&mut p);
    assert_eq!(scratch_queries(&scratch), Vec::<String>::new());
    // The shell goes on.
    keys(&mut p, "SELECT 40 + 2 AS answer;\r").unwrap();
    p.exp_regex(r"\S     42 \S").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    // The report written at exit has both statements; the cancelled one's
    // running attempts were abandoned.
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let queries = report["queries"].as_array().unwrap();
    assert_eq!(queries.len(), 2, "{report}");
    assert_eq!(queries[0]["error"], "cancelled (Ctrl-C)");
    let abandoned = queries[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "abandoned")
        .count();
    assert!(abandoned > 0, "{}", queries[0]["attempts"]);
    assert_eq!(queries[1]["error"], serde_json::Value::Null);
    assert!(queries[1]["sql"].as_str().unwrap().contains("40 + 2"));
}

#[test]
fn squall_alone_opens_the_shell_on_a_terminal_and_reads_a_pipe_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = shell(dir.path(), &[]);
    p.exp_string("local backend").unwrap();
    prompt(&mut p);
    keys(&mut p, ".help\r").unwrap();
    p.exp_string(".maxrows N").unwrap();
    keys(&mut p, ".quit\r").unwrap();
    p.exp_eof().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT 1 AS one; SELECT 2 AS two;")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("one") && stdout.contains("two"), "{stdout}");
}
