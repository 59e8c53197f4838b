//! The lambda backend end to end against cargo-lambda's Lambda emulator
//! (`cargo lambda watch --only-lambda-apis`, installed by
//! scripts/install-test-deps.sh) on 127.0.0.1: the emulator serves the Invoke
//! API and the Runtime API, and `squall` processes started the way the Lambda
//! runtime starts them (no arguments, AWS_LAMBDA_RUNTIME_API set) serve the
//! invocations. Results must equal the local backend's.

mod support;

use support::{output_within, start_listening, tail_of_file};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The longest any one `squall` command of these tests may take (each
/// takes seconds): a hang fails the test with what it printed.
const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// Worker processes serving the default function `_`, and the second function
/// `squall` (the emulator serves only the project's binary names besides `_`).
const WORKER_PROCESSES: usize = 8;
const SECOND_FUNCTION_PROCESSES: usize = 4;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_emulator_and_workers(
    worker_log: &Path,
    emulator_log: &Path,
    extra_env: &[(&'static str, String)],
) -> (Processes, u16) {
    let (emulator, port) = start_listening("the Lambda emulator", |port| {
        let log = std::fs::File::create(emulator_log).unwrap();
        Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                // Lambda ends every invocation at the function's timeout;
                // the emulator has none unless told, so an invocation whose
                // runtime died would hold its caller for ever. It answers
                // 408 instead, which the coordinator retries as Lambda's
                // timeout error.
                "--timeout",
                "120",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cargo lambda (run scripts/install-test-deps.sh)")
    });
    let mut children = vec![emulator];
    let functions = std::iter::repeat_n(("_", ""), WORKER_PROCESSES).chain(std::iter::repeat_n(
        ("squall", "/squall"),
        SECOND_FUNCTION_PROCESSES,
    ));
    for (function, path) in functions {
        children.push(
            Command::new(env!("CARGO_BIN_EXE_squall"))
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://127.0.0.1:{port}/.rt{path}"),
                )
                .env("AWS_LAMBDA_FUNCTION_NAME", function)
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
                .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
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
    output_within(
        Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(args)
            .arg("--no-progress")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str()))),
        COMMAND_LIMIT,
    )
}

/// `squall sql` arguments for TPC-H query `q` over tables below `root`, CSV out, small tasks.
fn query_args(root: &str, scratch: Option<&str>, q: usize) -> Vec<String> {
    let sql =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../benches/queries/tpch/q{q}.sql"));
    let mut args: Vec<String> = ["sql", "--format", "csv", "--target-task-bytes", "64KiB"]
        .map(String::from)
        .to_vec();
    for t in [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ] {
        args.extend(["--table".to_string(), format!("{t}={root}/{t}/")]);
    }
    if let Some(s) = scratch {
        args.extend(["--scratch".to_string(), s.to_string()]);
    }
    args.extend(["-f".to_string(), sql.display().to_string()]);
    args
}

/// Runs `args` on the local backend and again with `lambda` appended; the
/// outputs must match. Returns the lambda run's standard error.
fn assert_lambda_matches_local(
    args: &[String],
    lambda: &[&str],
    local_env: &[(&str, String)],
    lambda_env: &[(&str, String)],
    q: usize,
) -> String {
    let local: Vec<&str> = args.iter().map(String::as_str).collect();
    let expected = squall(&local, local_env);
    assert!(
        expected.status.success(),
        "q{q} locally: {}",
        String::from_utf8_lossy(&expected.stderr)
    );
    let mut on_lambda = local.clone();
    on_lambda.extend(lambda);
    let actual = squall(&on_lambda, lambda_env);
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
    String::from_utf8_lossy(&actual.stderr).into_owned()
}

/// The task key the workers of these tests hold; the emulator serves no
/// GetFunctionConfiguration, so the coordinator gets it from SQUALL_TASK_KEY.
const TASK_KEY: &str = "lambda-emulator-test-key-0123456789abcdef";

/// An S3 server with buckets `lake` (TPC-H at scale 0.01 under `tpch/`) and
/// `scratch`, the emulator, and workers that reach both, as a deployed
/// function reaches S3 and Lambda through AWS. Workers and client share the
/// task key.
struct Cloud {
    s3: support::S3Server,
    _processes: Processes,
    lambda_port: u16,
    /// The client's environment: S3 endpoint, credentials, region, task key.
    env: Vec<(&'static str, String)>,
    _log_dir: tempfile::TempDir,
    worker_log: std::path::PathBuf,
    emulator_log: std::path::PathBuf,
}

impl Drop for Cloud {
    /// A failed test shows what the functions and the emulator logged last.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- the workers' log, last lines:\n{}\n--- the emulator's log, last lines:\n{}",
                tail_of_file(&self.worker_log, 60),
                tail_of_file(&self.emulator_log, 30)
            );
        }
    }
}

impl Cloud {
    fn start() -> Self {
        let s3 = support::S3Server::start();
        for bucket in ["lake", "scratch"] {
            assert!(
                s3.http("PUT", &format!("/{bucket}"))
                    .starts_with("HTTP/1.1 200")
            );
        }
        let mut env = s3.envs();
        env.push(("SQUALL_TASK_KEY", TASK_KEY.to_string()));
        let log_dir = tempfile::tempdir().unwrap();
        let worker_log = log_dir.path().join("workers.log");
        let emulator_log = log_dir.path().join("emulator.log");
        let (processes, lambda_port) = start_emulator_and_workers(&worker_log, &emulator_log, &env);
        let generated = output_within(
            Command::new(env!("CARGO_BIN_EXE_squall"))
                .args(["gen", "tpch", "--scale", "0.01", "--out", "s3://lake/tpch"])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str()))),
            COMMAND_LIMIT,
        );
        assert!(
            generated.status.success(),
            "{}",
            String::from_utf8_lossy(&generated.stderr)
        );
        Self {
            s3,
            _processes: processes,
            lambda_port,
            env,
            _log_dir: log_dir,
            worker_log,
            emulator_log,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.lambda_port)
    }

    fn worker_log(&self) -> String {
        std::fs::read_to_string(&self.worker_log).unwrap_or_default()
    }
}

#[test]
fn queries_and_jobs_on_the_lambda_backend_match_the_local_backend() {
    let cloud = Cloud::start();
    let endpoint = cloud.endpoint();
    for q in [1, 3, 5, 6, 10, 13, 18] {
        // Q3, Q5 and Q18 go through launchers (threshold 2), the others invoke tasks directly.
        let threshold = if [3, 5, 18].contains(&q) { "2" } else { "0" };
        // Q1 and Q18 spread their stages over two functions.
        let functions = if q == 1 || q == 18 { "_,squall" } else { "_" };
        let lambda = [
            "--backend",
            "lambda",
            "--function",
            functions,
            "--lambda-endpoint",
            &endpoint,
            "--workers",
            "4",
            "--launcher-threshold",
            threshold,
        ];
        let args = query_args("s3://lake/tpch", Some("s3://scratch/squall/"), q);
        assert_lambda_matches_local(&args, &lambda, &cloud.env, &cloud.env, q);
    }
    let log = cloud.worker_log();
    assert!(
        log.contains("squall launcher: invoking"),
        "the launcher path did not run: {log}"
    );
    for function in ["_", "squall"] {
        assert!(
            log.contains(&format!("squall worker: {function} query")),
            "function {function} ran no task: {log}"
        );
    }

    // A handful of queries under injected task faults and object-store
    // faults on the real S3 client path (the faults travel in each spec; the
    // functions inject them into their own requests to the S3 server).
    for (q, seed) in [(3, "31"), (5, "51"), (10, "101")] {
        let task_faults =
            format!("crash=0.1,duplicate=0.1,hang=0.03,hang-ms=25000,lose-input=0.05,seed={seed}");
        let store_faults = format!("fail=0.1,delay=0.02,delay-ms=2000,truncate=0.02,seed={seed}");
        let lambda = [
            "--backend",
            "lambda",
            "--function",
            "_",
            "--lambda-endpoint",
            &endpoint,
            "--workers",
            "4",
            "--task-attempts",
            "6",
            "--task-timeout",
            "20",
            "--inject-task-faults",
            &task_faults,
            "--inject-store-faults",
            &store_faults,
            "--stats",
        ];
        let args = query_args("s3://lake/tpch", Some("s3://scratch/squall/"), q);
        let stderr = assert_lambda_matches_local(&args, &lambda, &cloud.env, &cloud.env, q);
        // "..., 0 DELETE, 12 retried, 1 hedged of which 1 won"
        let retried: u64 = stderr
            .split("DELETE, ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("q{q}: no request counts in: {stderr}"));
        assert!(retried > 0, "q{q}: no request was retried: {stderr}");
    }

    // The same settings from a config file instead of flags.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[query]\nbackend = \"lambda\"\nworkers = 3\nstage_workers = 2\n\
             scratch = \"s3://scratch/from-config/\"\n\n\
             [lambda]\nfunction = [\"squall\"]\nendpoint = \"{endpoint}\"\nlauncher_threshold = 2\n"
        ),
    )
    .unwrap();
    let before = log.matches("squall worker: squall query").count();
    let config_arg = ["--config", config.to_str().unwrap()];
    let args = query_args("s3://lake/tpch", None, 3);
    assert_lambda_matches_local(&args, &config_arg, &cloud.env, &cloud.env, 3);
    let log = cloud.worker_log();
    assert!(
        log.matches("squall worker: squall query").count() > before,
        "the config file's function ran no task: {log}"
    );
    let listing = cloud.s3.http("GET", "/scratch?list-type=2");
    assert!(
        !listing.contains("<Key>"),
        "scratch must be empty: {listing}"
    );

    // --deadline on Lambda: the cost model picks the task size, says so,
    // and the plan it picked gives the local answer.
    let mut args = query_args("s3://lake/tpch", Some("s3://scratch/squall/"), 3);
    let at = args
        .iter()
        .position(|a| a == "--target-task-bytes")
        .unwrap();
    args.drain(at..at + 2);
    let lambda = [
        "--backend",
        "lambda",
        "--function",
        "_",
        "--lambda-endpoint",
        &endpoint,
        "--workers",
        "4",
        "--deadline",
        "600",
    ];
    let stderr = assert_lambda_matches_local(&args, &lambda, &cloud.env, &cloud.env, 3);
    assert!(
        stderr.contains("squall: planned for a deadline of 600.0 s: "),
        "{stderr}"
    );

    // An ETL job (`squall run`) on Lambda writes what it writes locally.
    let job = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/jobs/daily_revenue.toml")
        .display()
        .to_string();
    for (out, backend) in [
        ("s3://lake/out-local", &[][..]),
        (
            "s3://lake/out-lambda",
            &[
                "--backend",
                "lambda",
                "--function",
                "_",
                "--lambda-endpoint",
                endpoint.as_str(),
                "--workers",
                "4",
                "--launcher-threshold",
                "2",
            ][..],
        ),
    ] {
        let data = "data=s3://lake/tpch".to_string();
        let out_param = format!("out={out}");
        let mut args = vec![
            "run",
            job.as_str(),
            "--set",
            data.as_str(),
            "--set",
            out_param.as_str(),
            "--scratch",
            "s3://scratch/squall/",
            "--target-task-bytes",
            "64KiB",
        ];
        args.extend_from_slice(backend);
        let run = squall(&args, &cloud.env);
        assert!(
            run.status.success(),
            "squall run {out}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    for (sink, sql) in [
        (
            "daily_revenue",
            "SELECT year, month, count(*), sum(lines), sum(revenue) FROM t GROUP BY 1, 2 ORDER BY 1, 2",
        ),
        ("monthly_revenue", "SELECT * FROM t ORDER BY year, month"),
    ] {
        let read = |out: &str| {
            let table = format!("t={out}/{sink}/");
            let result = squall(
                &["sql", "--table", &table, "--format", "csv", "-c", sql],
                &cloud.env,
            );
            assert!(
                result.status.success(),
                "{}",
                String::from_utf8_lossy(&result.stderr)
            );
            String::from_utf8(result.stdout).unwrap()
        };
        let local = read("s3://lake/out-local");
        assert!(local.lines().count() > 12, "{local}");
        assert_eq!(read("s3://lake/out-lambda"), local, "{sink}");
    }

    // A Delta sink on Lambda: one commit of what the functions wrote.
    let delta_job = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/jobs/monthly_revenue_delta.toml")
        .display()
        .to_string();
    let lambda_flags = [
        "--backend",
        "lambda",
        "--function",
        "_",
        "--lambda-endpoint",
        endpoint.as_str(),
        "--workers",
        "4",
    ];
    for (out, backend) in [
        ("s3://lake/delta-local", &[][..]),
        ("s3://lake/delta-lambda", &lambda_flags[..]),
    ] {
        let out_param = format!("out={out}");
        let mut args = vec![
            "run",
            delta_job.as_str(),
            "--set",
            "data=s3://lake/tpch",
            "--set",
            out_param.as_str(),
            "--scratch",
            "s3://scratch/squall/",
            "--target-task-bytes",
            "64KiB",
        ];
        args.extend_from_slice(backend);
        let run = squall(&args, &cloud.env);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains("Delta version 0"),
            "squall run {out}: {stdout} {}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let read_delta = |out: &str| {
        let table = format!("t=delta+{out}");
        let sql = "SELECT year, month, status, lines, revenue FROM t ORDER BY 1, 2, 3";
        let result = squall(
            &["sql", "--table", &table, "--format", "csv", "-c", sql],
            &cloud.env,
        );
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        String::from_utf8(result.stdout).unwrap()
    };
    let local = read_delta("s3://lake/delta-local");
    assert!(local.lines().count() > 50, "{local}");
    assert_eq!(read_delta("s3://lake/delta-lambda"), local, "Delta sink");
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

/// The function runs nothing it was not sent by a coordinator holding its
/// key: unsigned, altered, foreign and expired payloads — tasks and launcher
/// requests alike — come back as refused reports, and a client with the
/// wrong key gets one line saying so.
#[test]
fn the_function_refuses_payloads_not_signed_with_its_key() {
    let cloud = Cloud::start();
    let endpoint = cloud.endpoint();
    let key = squall_worker::TaskKey::new(TASK_KEY).unwrap();
    let foreign = squall_worker::TaskKey::new("some-other-deployment-0123456789abcdef").unwrap();
    let spec = br#"{"version":1,"query_id":"q","stage_id":0,"task_index":0,"attempt":0}"#;
    let launch = format!(
        r#"{{"launch":{{"function":"_","specs":[{}]}}}}"#,
        String::from_utf8(foreign.sign(spec)).unwrap()
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("unsigned", spec.to_vec(), "not signed"),
        ("foreign", foreign.sign(spec), "does not match"),
        ("expired", key.sign_until(spec, 1_000), "expired"),
        (
            "altered",
            String::from_utf8(key.sign(spec))
                .unwrap()
                .replace("\\\"attempt\\\":0", "\\\"attempt\\\":1")
                .into_bytes(),
            "does not match",
        ),
        (
            "unsigned launcher",
            launch.clone().into_bytes(),
            "not signed",
        ),
        // A signed launcher forwards its specs; the foreign one is refused where it runs.
        (
            "launched foreign spec",
            key.sign(launch.as_bytes()),
            "does not match",
        ),
    ];
    for (case, payload, expected) in cases {
        // The emulator's Invoke API checks no signature: a raw request will do.
        let response = support::http_post(
            cloud.lambda_port,
            "/2015-03-31/functions/_/invocations",
            &payload,
        );
        assert!(
            response.contains("task spec rejected") && response.contains(expected),
            "{case}: {response}"
        );
    }
    let log = cloud.worker_log();
    assert!(
        log.contains("squall worker: refused an invocation"),
        "{log}"
    );

    // A client with another key: the first task fails at once, not retried, in one line.
    let mut env = cloud.env.clone();
    env.retain(|(k, _)| *k != "SQUALL_TASK_KEY");
    env.push(("SQUALL_TASK_KEY", foreign.expose_secret().to_string()));
    let args = query_args("s3://lake/tpch", Some("s3://scratch/squall/"), 6);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend([
        "--backend",
        "lambda",
        "--function",
        "_",
        "--lambda-endpoint",
        &endpoint,
    ]);
    let out = squall(&args, &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("does not match this worker's SQUALL_TASK_KEY")
            && !stderr.contains("attempts"),
        "{stderr}"
    );
}

/// A Lambda API whose functions all have a timeout of one second and which
/// answers no `Invoke`: every invocation is lost, as when a connection drops
/// or a runtime dies without reporting. Records the invocation payloads.
struct SilentLambda {
    port: u16,
    invocations: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SilentLambda {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let invocations = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = std::sync::Arc::clone(&invocations);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let recorded = std::sync::Arc::clone(&recorded);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    // Requests on one connection, until it closes or an Invoke holds it.
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut content_length = 0;
                        loop {
                            let mut header = String::new();
                            reader.read_line(&mut header).unwrap();
                            if header.trim().is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                content_length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; content_length];
                        reader.read_exact(&mut body).unwrap();
                        if request_line.contains("/invocations") {
                            recorded
                                .lock()
                                .unwrap()
                                .push(String::from_utf8_lossy(&body).into_owned());
                            // Never answered; the connection stays open.
                            std::thread::sleep(Duration::from_secs(600));
                            return;
                        }
                        let configuration = r#"{"FunctionName":"_","MemorySize":1024,"Timeout":1}"#;
                        write!(
                            stream,
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{configuration}",
                            configuration.len()
                        )
                        .unwrap();
                    }
                });
            }
        });
        Self { port, invocations }
    }
}

/// An invocation nobody answers fails once the function's timeout (read
/// from its configuration) has surely passed, and the task runs again as a
/// new attempt: a lost invocation costs time, never the whole query.
#[test]
fn a_lost_invocation_fails_after_the_function_s_timeout_and_is_tried_again() {
    let s3 = support::S3Server::start();
    assert!(s3.http("PUT", "/scratch").starts_with("HTTP/1.1 200"));
    let lambda = SilentLambda::start();
    let mut env = s3.envs();
    env.push(("SQUALL_TASK_KEY", TASK_KEY.to_string()));
    let endpoint = format!("http://127.0.0.1:{}", lambda.port);
    let began = std::time::Instant::now();
    let out = squall(
        &[
            "sql",
            "--backend",
            "lambda",
            "--function",
            "_",
            "--lambda-endpoint",
            &endpoint,
            "--scratch",
            "s3://scratch/squall/",
            "--task-attempts",
            "2",
            "--no-speculation",
            "-c",
            "SELECT 1",
        ],
        &env,
    );
    let elapsed = began.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // The deadline: 1 s of timeout, a tenth of it and 10 s.
    assert!(
        stderr.contains("no answer within 11 s, although the function's timeout is 1 s"),
        "{stderr}"
    );
    let invocations = lambda.invocations.lock().unwrap().clone();
    let attempts: Vec<bool> = ["0", "1"]
        .iter()
        .map(|a| {
            invocations
                .iter()
                .any(|p| p.contains(&format!(r#"\"attempt\":{a}"#)))
        })
        .collect();
    assert_eq!(attempts, [true, true], "{invocations:?}");
    assert!(
        elapsed >= Duration::from_secs(22) && elapsed < Duration::from_secs(90),
        "two lost attempts took {elapsed:?}"
    );
}
