//! Ctrl-C (SIGINT) and SIGTERM cancel a running query cleanly: its worker
//! processes stop, its scratch objects and staged files are deleted, nothing
//! appears at a `COPY` destination, and the client exits with 128 + the
//! signal's number after one line saying so.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn files_below(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        if entry.path().is_dir() {
            found.extend(files_below(&entry.path()));
        } else {
            found.push(entry.path());
        }
    }
    found
}

/// TPC-H at scale 0.01 below `root`.
fn generate_tpch(root: &Path) {
    let generated = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["gen", "tpch", "--scale", "0.01", "--out"])
        .arg(root)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{generated:?}");
}

/// A `COPY` of a nested-loop join of lineitem with itself (billions of
/// comparisons) on worker processes, so that a destination is at stake too.
fn long_copy(root: &Path, scratch: &Path, destination: &Path) -> Command {
    let sql = format!(
        "COPY (SELECT a.l_orderkey, count(*) AS n FROM lineitem a JOIN lineitem b \
         ON a.l_orderkey < b.l_orderkey GROUP BY a.l_orderkey) TO '{}/' STORED AS PARQUET",
        destination.display()
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_squall"));
    command
        .args([
            "sql",
            "--no-progress",
            "--backend",
            "process",
            "--workers",
            "2",
        ])
        .args(["--target-task-bytes", "64KiB", "--scratch"])
        .arg(scratch)
        .arg("--table")
        .arg(format!("lineitem={}/lineitem/", root.display()))
        .args(["-c", &sql]);
    command
}

/// Starts a query that runs for a long time on worker processes, waits until
/// its tasks have written to scratch, sends `signal`, and checks the exit.
fn interrupt_a_running_query(signal: &str, expected_code: i32) {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("tpch");
    generate_tpch(&root);
    let scratch = data.path().join("scratch");
    let destination = data.path().join("out");
    let mut child = long_copy(&root, &scratch, &destination)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while files_below(&scratch).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the query wrote nothing to scratch in a minute"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the query ended before it was interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(40) {
            let _ = child.kill();
            panic!("squall did not stop within 40 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(expected_code), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("error: interrupted by SIG{signal}"))
            && lines[0].contains("scratch and staged files are deleted"),
        "{stderr}"
    );
    let left = files_below(&scratch);
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    let published = files_below(&destination);
    assert!(
        published.is_empty(),
        "files at the destination: {published:?}"
    );
}

#[test]
fn ctrl_c_cancels_a_query_and_deletes_its_scratch() {
    interrupt_a_running_query("INT", 130);
}

#[test]
fn sigterm_cancels_a_query_and_deletes_its_scratch() {
    interrupt_a_running_query("TERM", 143);
}

/// Ctrl-C pressed twice, as a terminal sends it (to the client and its
/// worker processes), the second while the first's cleanup still runs
/// (every storage request is held up for a second): the client exits at
/// once with 130, saying the cleanup was cut short; nothing is visible at
/// the destination; what the cleanup did not get to is deleted by `squall
/// scratch clean` once the query's lease expired.
#[test]
fn a_second_ctrl_c_exits_at_once_and_the_lease_clean_deletes_the_rest() {
    use std::os::unix::process::CommandExt;
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("tpch");
    generate_tpch(&root);
    let scratch = data.path().join("scratch");
    let destination = data.path().join("out");
    let lease_seconds = ("SQUALL_SCRATCH_LEASE_SECONDS", "4");
    let mut child = long_copy(&root, &scratch, &destination)
        .args(["--inject-store-faults", "delay=1,delay-ms=1000,seed=1"])
        .env(lease_seconds.0, lease_seconds.1)
        // A process group of its own, like a terminal's foreground job.
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !files_below(&scratch).iter().any(|f| !f.ends_with("_lease")) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the query wrote nothing to scratch in 90 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the query ended before it was interrupted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let group = format!("-{}", child.id());
    for _ in 0..2 {
        let sent = Command::new("kill")
            .args(["-INT", "--", &group])
            .status()
            .unwrap();
        assert!(sent.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if interrupted.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("squall did not stop within 20 s of two Ctrl-Cs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(
            "error: interrupted by SIGINT: cancelled; interrupted again before its scratch"
        ) && lines[0].contains("`squall scratch clean`"),
        "{stderr}"
    );
    let visible = |dir: &Path| -> Vec<std::path::PathBuf> {
        files_below(dir)
            .into_iter()
            .filter(|f| {
                !f.strip_prefix(dir)
                    .unwrap()
                    .components()
                    .any(|c| c.as_os_str().to_string_lossy().starts_with(['_', '.']))
            })
            .collect()
    };
    assert!(
        visible(&destination).is_empty(),
        "files at the destination: {:?}",
        visible(&destination)
    );
    // Worker processes got the Ctrl-C too; once the lease expired, the
    // clean deletes whatever the interrupted cleanup left.
    std::thread::sleep(Duration::from_millis(4500));
    let clean = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["scratch", "clean"])
        .arg(&scratch)
        .env(lease_seconds.0, lease_seconds.1)
        .output()
        .unwrap();
    assert!(clean.status.success(), "{clean:?}");
    let left = files_below(&scratch);
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

/// `squall gen tpch` interrupted half-way publishes no table file and
/// deletes what it staged; the next run publishes every table.
#[test]
fn an_interrupted_gen_tpch_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tpch");
    let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["gen", "tpch", "--scale", "1", "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Staging is beside the destination.
    let staging = dir.path().join("_squall_staging/tpch");
    let started = Instant::now();
    while files_below(&staging).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing staged"
        );
        assert!(child.try_wait().unwrap().is_none(), "gen ended too soon");
        std::thread::sleep(Duration::from_millis(20));
    }
    let visible = files_below(&out);
    assert!(
        visible.is_empty(),
        "files visible before the commit: {visible:?}"
    );
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out_status = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out_status.stderr);
    assert_eq!(out_status.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("staged files are deleted"), "{stderr}");
    let left = files_below(dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");

    let again = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["gen", "tpch", "--scale", "0.01", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(again.status.success(), "{again:?}");
    let tables: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(tables.len(), 8, "{tables:?}");
    assert!(!tables.iter().any(|t| t.starts_with('_')), "{tables:?}");
}

/// A client killed hard (SIGKILL) cannot delete its scratch: its lease
/// expires, and then `squall scratch clean` — or the next query on the same
/// scratch — deletes it. A live lease is kept.
#[test]
fn a_killed_clients_scratch_is_deleted_once_its_lease_expires() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().join("tpch");
    generate_tpch(&root);
    let scratch = data.path().join("scratch");
    let lease_seconds = ("SQUALL_SCRATCH_LEASE_SECONDS", "2");
    let kill_a_running_query =
        || {
            // In-process tasks die with their client.
            let mut child = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["sql", "--no-progress", "--backend", "local", "--workers", "2"])
            .args(["--target-task-bytes", "64KiB", "--format", "csv", "--scratch"])
            .arg(&scratch)
            .arg("--table")
            .arg(format!("lineitem={}/lineitem/", root.display()))
            .args([
                "-c",
                "SELECT count(*) FROM lineitem a JOIN lineitem b ON a.l_orderkey < b.l_orderkey",
            ])
            .env(lease_seconds.0, lease_seconds.1)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
            let started = Instant::now();
            while !files_below(&scratch).iter().any(|f| !f.ends_with("_lease")) {
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "nothing written"
                );
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "the query ended too soon"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            let left = files_below(&scratch);
            assert!(
                left.iter().any(|f| f.ends_with("_lease")),
                "a killed client leaves its lease: {left:?}"
            );
        };
    let clean = || {
        let out = Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["scratch", "clean"])
            .arg(&scratch)
            .env(lease_seconds.0, lease_seconds.1)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    kill_a_running_query();
    let early = clean();
    assert!(
        early.contains("deleted the scratch of 0 abandoned queries; 1 running query kept"),
        "{early}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let late = clean();
    assert!(
        late.contains("deleted the scratch of 1 abandoned query; 0 running queries kept"),
        "{late}"
    );
    assert!(files_below(&scratch).is_empty());

    // The next query on the same scratch cleans up after a dead one too.
    kill_a_running_query();
    std::thread::sleep(Duration::from_millis(2500));
    let next = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["sql", "--no-progress", "--scratch"])
        .arg(&scratch)
        .args(["-c", "SELECT 1"])
        .env(lease_seconds.0, lease_seconds.1)
        .output()
        .unwrap();
    assert!(next.status.success(), "{next:?}");
    let left = files_below(&scratch);
    assert!(left.is_empty(), "left behind: {left:?}");
}
