//! TPC-H through the `squall` binary: generating tables, building query
//! arguments, comparing results.

use std::path::Path;
use std::process::Command;

pub const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

/// Runs `squall ARGS --no-progress`; panics with its stderr unless it succeeds.
pub fn squall(args: &[String], envs: &[(&'static str, String)]) -> String {
    let mut args = args.to_vec();
    args.push("--no-progress".into());
    squall_ok(&args, envs)
}

/// Runs `squall ARGS` (any subcommand); panics with its stderr unless it
/// succeeds; its stdout.
pub fn squall_ok(args: &[String], envs: &[(&'static str, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "squall {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// TPC-H scale 0.1 in two parts per large table at `out`.
pub fn generate(out: &str, envs: &[(&'static str, String)]) {
    let result = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "gen", "tpch", "--scale", "0.1", "--parts", "2", "--out", out,
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "gen {out}: {}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn query_file(q: usize) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../benches/queries/tpch/q{q}.sql"))
}

/// Whether TPC-H query `q` orders its result.
pub fn query_is_ordered(q: usize) -> bool {
    std::fs::read_to_string(query_file(q))
        .unwrap()
        .to_lowercase()
        .contains("order by")
}

/// `squall sql` arguments for TPC-H query `q` over tables below `root`: CSV
/// out, 1 MiB tasks, 4 workers.
pub fn query_args(root: &str, backend: &str, scratch: Option<&str>, q: usize) -> Vec<String> {
    let mut args: Vec<String> = [
        "sql",
        "--backend",
        backend,
        "--format",
        "csv",
        "--target-task-bytes",
        "1MiB",
        "--workers",
        "4",
    ]
    .map(String::from)
    .to_vec();
    for t in TABLES {
        args.push("--table".into());
        args.push(format!("{t}={root}/{t}/"));
    }
    if let Some(s) = scratch {
        args.extend(["--scratch".into(), s.into()]);
    }
    args.extend(["-f".into(), query_file(q).display().to_string()]);
    args
}

/// Rows of an unordered result compare as a sorted list; ordered ones as they are.
pub fn normalized(csv: &str, ordered: bool) -> Vec<String> {
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    if !ordered && lines.len() > 1 {
        lines[1..].sort();
    }
    lines
}
