//! The lambda backend end to end against cargo-lambda's Lambda emulator
//! (`cargo lambda watch --only-lambda-apis`, installed by
//! scripts/install-test-deps.sh) on 127.0.0.1: the emulator serves the Invoke
//! API and the Runtime API, and `squall` processes started the way the Lambda
//! runtime starts them (no arguments, AWS_LAMBDA_RUNTIME_API set) serve the
//! invocations. Results must equal the local backend's.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WORKER_PROCESSES: usize = 8;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_emulator_and_workers(worker_log: &Path) -> (Processes, u16) {
    let port = free_port();
    let mut children = Vec::new();
    children.push(
        Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda (run scripts/install-test-deps.sh)"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Lambda emulator did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..WORKER_PROCESSES {
        children.push(
            Command::new(env!("CARGO_BIN_EXE_squall"))
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", "_")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
                // A launcher invokes its share of tasks on the same emulator.
                .env(
                    "AWS_ENDPOINT_URL_LAMBDA",
                    format!("http://127.0.0.1:{port}"),
                )
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1")
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(worker_log)
                        .unwrap(),
                )
                .spawn()
                .unwrap(),
        );
    }
    (Processes(children), port)
}

fn squall(args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .arg("--no-progress")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

#[test]
fn queries_on_the_lambda_backend_match_the_local_backend() {
    let log_dir = tempfile::tempdir().unwrap();
    let worker_log = log_dir.path().join("workers.log");
    let (_processes, port) = start_emulator_and_workers(&worker_log);
    let envs = [
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "gen",
            "tpch",
            "--scale",
            "0.01",
            "--out",
            data.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    for q in [1, 3, 6, 13, 18] {
        let sql =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../benches/queries/tpch/q{q}.sql"));
        let mut args: Vec<String> = vec![
            "sql".into(),
            "--format".into(),
            "csv".into(),
            "--target-task-bytes".into(),
            "64KiB".into(),
        ];
        for t in [
            "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
        ] {
            args.push("--table".into());
            args.push(format!("{t}={}/{t}", data.path().display()));
        }
        args.extend(["-f".into(), sql.display().to_string()]);
        let local: Vec<&str> = args.iter().map(String::as_str).collect();
        let expected = squall(&local, &[]);
        assert!(
            expected.status.success(),
            "{}",
            String::from_utf8_lossy(&expected.stderr)
        );
        let mut lambda = local.clone();
        // Q3 and Q18 go through launchers (threshold 2), the others invoke tasks directly.
        let threshold = if q == 3 || q == 18 { "2" } else { "0" };
        lambda.extend([
            "--backend",
            "lambda",
            "--function",
            "_",
            "--lambda-endpoint",
            &endpoint,
            "--workers",
            "2",
            "--launcher-threshold",
            threshold,
        ]);
        let actual = squall(&lambda, &envs);
        assert!(
            actual.status.success(),
            "q{q} on lambda: {}",
            String::from_utf8_lossy(&actual.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&actual.stdout),
            String::from_utf8_lossy(&expected.stdout),
            "q{q}: lambda and local results differ"
        );
    }
    let log = std::fs::read_to_string(&worker_log).unwrap_or_default();
    assert!(
        log.contains("squall launcher: invoking"),
        "the launcher path did not run: {log}"
    );
}

#[test]
fn lambda_backend_without_a_function_name_says_what_to_do() {
    let out = squall(
        &["sql", "--backend", "lambda", "-c", "SELECT 1"],
        &[("AWS_REGION", "us-east-1".into())],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--function"), "{stderr}");
}
