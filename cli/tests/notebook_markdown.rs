//! `squall notebook run --format md`: without `-o` the notebook itself is
//! written back with its results, and running it again replaces them.

use std::process::Command;

fn notebook_run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["notebook", "run", "--no-progress"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_notebook_is_written_back_with_its_results_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("answer.md");
    let source = "# The answer\n\n```sql answer\nSELECT 6 * 7 AS answer\n```\n\nThat is all.\n";
    std::fs::write(&path, source).unwrap();
    let file = path.to_str().unwrap();
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
    }
    let out = notebook_run(&[file, "--format", "md", "-o", "page.html"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: notebook page page.html: name it .md (--format md)\n"
    );
}
