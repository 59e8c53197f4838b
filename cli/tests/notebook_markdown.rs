//! `squall notebook run --format md`: without `-o` the notebook itself is
//! written back with its results, and running it again replaces them. The
//! result cache through the command: where it is by default, `--cache`,
//! `--no-cache`, and what the second run says.

use std::path::Path;
use std::process::Command;

/// `squall notebook run ARGS`, its cache folder by default under `home`.
fn notebook_run_in(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["notebook", "run", "--no-progress"])
        .args(args)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_notebook_is_written_back_with_its_results_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("answer.md");
    let source = "# The answer\n\n```sql answer\nSELECT 6 * 7 AS answer\n```\n\nThat is all.\n";
    std::fs::write(&path, source).unwrap();
    let file = path.to_str().unwrap();
    let notebook_run = |args: &[&str]| notebook_run_in(dir.path(), args);
    for run in 1..=2 {
        let out = notebook_run(&[file, "--format", "md"]);
        assert!(
            out.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written.matches("<!-- squall result: 1 row · ").count(),
            1,
            "run {run}: {written}"
        );
        assert!(
            written.contains("| answer |\n|---:|\n| 42 |\n<!-- end of squall result -->\n"),
            "run {run}: {written}"
        );
        assert!(
            written.starts_with("# The answer\n\n```sql answer\nSELECT 6 * 7 AS answer\n```\n\n")
                && written.ends_with("-->\n\nThat is all.\n"),
            "run {run}: {written}"
        );
        assert_eq!(
            written.contains("from cache, ran in"),
            run == 2,
            "run {run}: {written}"
        );
    }
    let out = notebook_run(&[file, "--format", "md", "-o", "page.html"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: notebook page page.html: name it .md (--format md)\n"
    );
}

#[test]
fn a_second_run_shows_the_cached_results_unless_told_not_to() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.md");
    std::fs::write(
        &path,
        "```sql\nSELECT 6 * 7 AS answer\n```\n\n```sql\nSELECT now() AS at\n```\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let run = |args: &[&str]| stderr(&notebook_run_in(dir.path(), &[&[file], args].concat()));

    // The default cache: under $XDG_CACHE_HOME; now() always runs.
    assert!(!run(&[]).contains("from cache"));
    let second = run(&[]);
    assert!(
        second.contains("2 cells in ") && second.contains(" (1 from cache)\n"),
        "{second}"
    );
    let default_cache = dir.path().join("cache/squall/notebooks");
    assert_eq!(std::fs::read_dir(&default_cache).unwrap().count(), 1);
    let page = std::fs::read_to_string(dir.path().join("two.html")).unwrap();
    assert_eq!(page.matches(r#"<span class="cached""#).count(), 1);

    assert!(!run(&["--no-cache"]).contains("from cache"));
    let elsewhere = dir.path().join("elsewhere");
    let cache = elsewhere.to_str().unwrap();
    assert!(!run(&["--cache", cache]).contains("from cache"));
    assert!(run(&["--cache", cache]).contains("(1 from cache)"));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 1);
}
