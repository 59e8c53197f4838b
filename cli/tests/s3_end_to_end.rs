//! TPC-H with S3 inputs, scratch and results, against moto's S3 server on
//! 127.0.0.1 (installed by scripts/install-test-deps.sh), through the real
//! `squall` binary on the local and the process backends. Results must equal
//! the same queries over local files.

mod support;

use std::path::Path;
use std::process::Command;

use support::S3Server;

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

fn squall(args: &[String], envs: &[(&'static str, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .arg("--no-progress")
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

fn generate(out: &str, envs: &[(&'static str, String)]) {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "gen", "tpch", "--scale", "0.1", "--parts", "2", "--out", out,
        ])
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "gen {out:?}");
}

fn query_args(root: &str, backend: &str, scratch: Option<&str>, q: usize) -> Vec<String> {
    let sql =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../benches/queries/tpch/q{q}.sql"));
    let mut args = vec![
        "sql".to_string(),
        "--backend".into(),
        backend.into(),
        "--format".into(),
        "csv".into(),
    ];
    args.extend([
        "--target-task-bytes".into(),
        "1MiB".into(),
        "--workers".into(),
        "4".into(),
    ]);
    for t in TABLES {
        args.push("--table".into());
        args.push(format!("{t}={root}/{t}/"));
    }
    if let Some(s) = scratch {
        args.extend(["--scratch".into(), s.into()]);
    }
    args.extend(["-f".into(), sql.display().to_string()]);
    args
}

/// Rows of an unordered result compare as a sorted list; ordered ones as they are.
fn normalized(csv: &str, ordered: bool) -> Vec<String> {
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    if !ordered && lines.len() > 1 {
        lines[1..].sort();
    }
    lines
}

#[test]
fn tpch_with_s3_inputs_scratch_and_results_equals_local_files() {
    let s3 = S3Server::start();
    let envs = s3.envs();
    for bucket in ["lake", "scratch"] {
        let reply = s3.http("PUT", &format!("/{bucket}"));
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "create bucket {bucket}: {reply}"
        );
    }
    let local = tempfile::tempdir().unwrap();
    let local_root = local.path().display().to_string();
    generate(&local_root, &[]);
    generate("s3://lake/tpch", &envs);

    for q in 1..=22 {
        let ordered = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../benches/queries/tpch/q{q}.sql")),
        )
        .unwrap()
        .to_lowercase()
        .contains("order by");
        let expected = squall(&query_args(&local_root, "local", None, q), &[]);
        // Odd queries on the local backend, even ones on worker processes.
        let backend = if q % 2 == 1 { "local" } else { "process" };
        let actual = squall(
            &query_args("s3://lake/tpch", backend, Some("s3://scratch/squall"), q),
            &envs,
        );
        assert_eq!(
            normalized(&actual, ordered),
            normalized(&expected, ordered),
            "q{q} on {backend}"
        );
    }
    let listing = s3.http("GET", "/scratch?list-type=2");
    assert!(
        !listing.contains("<Key>"),
        "scratch bucket must be empty after queries: {listing}"
    );

    // COPY writes through the distributed plan into the bucket.
    let copy = "COPY (SELECT n_name FROM nation WHERE n_regionkey = 1) TO 's3://lake/out/america/' STORED AS PARQUET".to_string();
    squall(
        &[
            "sql".into(),
            "--table".into(),
            "nation=s3://lake/tpch/nation/".into(),
            "-c".into(),
            copy,
        ],
        &envs,
    );
    let names = squall(
        &[
            "sql".into(),
            "--table".into(),
            "america=s3://lake/out/america/".into(),
            "--format".into(),
            "csv".into(),
            "-c".into(),
            "SELECT n_name FROM america ORDER BY n_name".into(),
        ],
        &envs,
    );
    assert_eq!(
        names,
        "n_name\nARGENTINA\nBRAZIL\nCANADA\nPERU\nUNITED STATES\n"
    );
}
