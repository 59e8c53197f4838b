//! TPC-H with S3 inputs, scratch and results, against moto's S3 server on
//! 127.0.0.1 (installed by scripts/install-test-deps.sh), through the real
//! `squall` binary on the local and the process backends. Results must equal
//! the same queries over local files.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use support::S3Server;
use support::tpch::{generate, normalized, query_args, query_is_ordered, squall};

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
        let ordered = query_is_ordered(q);
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

    // A URL with a glob reads as a table without --table, like local files.
    let count = |from: &str, envs: &[(&'static str, String)]| {
        squall(
            &[
                "sql".into(),
                "--format".into(),
                "csv".into(),
                "-c".into(),
                format!("SELECT count(*) AS n, sum(l_quantity) AS q FROM '{from}'"),
            ],
            envs,
        )
    };
    let local_files = count(&format!("{local_root}/lineitem/*.parquet"), &[]);
    assert!(local_files.starts_with("n,q\n"), "{local_files}");
    assert_eq!(
        count("s3://lake/tpch/lineitem/*.parquet", &envs),
        local_files
    );
    assert_eq!(count("s3://lake/tpch/lineitem/", &envs), local_files);
}

/// The first request's headers on a one-shot listener that answers 403.
fn capture_one_request(listener: TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let _ = stream
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        String::from_utf8_lossy(&request).into_owned()
    })
}

#[test]
fn s3_requests_are_signed_with_the_aws_profile() {
    // Credentials and region only in profile files, as `aws configure` writes them.
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config");
    let credentials = home.path().join("credentials");
    std::fs::write(&config, "[profile analytics]\nregion = eu-north-1\n").unwrap();
    std::fs::write(
        &credentials,
        "[analytics]\naws_access_key_id = AKIDFROMPROFILE\naws_secret_access_key = secret\n",
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let request = capture_one_request(listener);
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "sql",
            "--no-progress",
            "--table",
            "t=s3://lake/t/",
            "-c",
            "SELECT * FROM t",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_PROFILE", "analytics")
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .output()
        .unwrap();
    let request = request.join().unwrap();
    assert!(
        request.contains("Credential=AKIDFROMPROFILE/") && request.contains("/eu-north-1/s3/"),
        "the request must be signed with the profile's key for its region: {request}"
    );
    // The 403 is reported on one line, naming the location.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("s3://lake/t/"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
