//! `squall deploy lambda` against moto's Lambda and IAM APIs on 127.0.0.1
//! (moto installed by scripts/install-test-deps.sh, started by the test).

mod support;

use std::process::Command;

use support::S3Server;

fn deploy(moto: &S3Server, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["deploy", "lambda"])
        .args(args)
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", moto.port),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap()
}

fn field(json: &str, name: &str) -> String {
    let at = json
        .find(&format!("\"{name}\""))
        .unwrap_or_else(|| panic!("{name} not in {json}"));
    let rest = &json[at + name.len() + 2..];
    let rest = rest.trim_start_matches([':', ' ']);
    rest.chars()
        .take_while(|c| *c != ',' && *c != '}')
        .collect::<String>()
        .trim_matches('"')
        .to_string()
}

#[test]
fn deploy_creates_then_updates_the_function() {
    let moto = S3Server::start();
    let role = moto.request(
        "iam",
        "POST",
        "/",
        "Action=CreateRole&Version=2010-05-08&RoleName=squall-worker&AssumeRolePolicyDocument=%7B%7D",
    );
    assert!(
        role.contains("arn:aws:iam::123456789012:role/squall-worker"),
        "{role}"
    );
    let binary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(binary.path(), vec![7u8; 4096]).unwrap();
    let bin = binary.path().to_str().unwrap();
    let role_arn = "arn:aws:iam::123456789012:role/squall-worker";

    let out = deploy(
        &moto,
        &[
            "--name",
            "squall-worker",
            "--role",
            role_arn,
            "--arch",
            "arm64",
            "--memory",
            "3008",
            "--timeout",
            "600",
            "--binary",
            bin,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("created function squall-worker"));
    let function = moto.request("lambda", "GET", "/2015-03-31/functions/squall-worker", "");
    assert_eq!(field(&function, "Runtime"), "provided.al2023");
    assert_eq!(field(&function, "Handler"), "bootstrap");
    assert_eq!(field(&function, "MemorySize"), "3008");
    assert_eq!(field(&function, "Timeout"), "600");
    assert!(function.contains("arm64"), "{function}");
    let first_key = field(&function, "SQUALL_TASK_KEY");
    assert_eq!(first_key.len(), 64, "a generated task key: {function}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("task key generated"));
    let code_size: u64 = field(&function, "CodeSize").parse().unwrap();
    assert!(
        code_size > 0 && code_size < 4096,
        "zipped 4 KiB of one byte value: {code_size}"
    );

    let out = deploy(
        &moto,
        &[
            "--name",
            "squall-worker",
            "--role",
            role_arn,
            "--memory",
            "1769",
            "--binary",
            bin,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("updated function squall-worker"));
    let function = moto.request("lambda", "GET", "/2015-03-31/functions/squall-worker", "");
    assert_eq!(field(&function, "MemorySize"), "1769");
    assert_eq!(field(&function, "Timeout"), "900");
    assert_eq!(
        field(&function, "SQUALL_TASK_KEY"),
        first_key,
        "a redeploy keeps the task key"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("task key kept"));

    // The coordinator finds the key in the function's configuration.
    let explain = |function: &str| {
        Command::new(env!("CARGO_BIN_EXE_squall"))
            .args(["explain", "--backend", "lambda", "--function", function])
            .args(["--scratch", "s3://scratch/squall/", "-c", "SELECT 1"])
            .env(
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", moto.port),
            )
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("SQUALL_TASK_KEY")
            .output()
            .unwrap()
    };
    let found = explain("squall-worker");
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let missing = explain("no-such-function");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no task key") && stderr.contains("no-such-function"),
        "{stderr}"
    );

    let out = deploy(
        &moto,
        &[
            "--name",
            "squall-worker",
            "--role",
            role_arn,
            "--binary",
            bin,
            "--rotate-task-key",
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("task key rotated"));
    let function = moto.request("lambda", "GET", "/2015-03-31/functions/squall-worker", "");
    let rotated = field(&function, "SQUALL_TASK_KEY");
    assert!(rotated.len() == 64 && rotated != first_key, "{function}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&rotated),
        "the key is never printed"
    );
}

#[test]
fn deploy_with_a_role_lambda_cannot_assume_fails_in_one_line() {
    let moto = S3Server::start();
    let binary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(binary.path(), b"x").unwrap();
    let out = deploy(
        &moto,
        &[
            "--name",
            "f",
            "--role",
            "arn:aws:iam::123456789012:role/missing",
            "--binary",
            binary.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("creating f") && stderr.contains("role"),
        "{stderr}"
    );
}

#[test]
fn print_policy_is_least_privilege_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "deploy",
            "lambda",
            "--print-policy",
            "--name",
            "squall",
            "--bucket",
            "lake",
            "--destination",
            "s3://reports/monthly/",
            "--scratch",
            "s3://tmp-bucket/squall/",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = policy.to_string();
    assert!(text.contains("arn:aws:s3:::lake/*"), "{text}");
    assert!(text.contains("arn:aws:s3:::tmp-bucket/squall/*"), "{text}");
    assert!(
        !text.contains("s3:*") && !text.contains("\"*\""),
        "no wildcards on actions or resources: {text}"
    );
    assert!(text.contains("s3:DeleteObject"), "{text}");
    // Launchers invoke the function itself: without this, every stage above
    // the launcher threshold fails on AWS with AccessDenied.
    assert!(text.contains("lambda:InvokeFunction"), "{text}");
    assert!(
        text.contains("arn:aws:lambda:*:*:function:squall"),
        "{text}"
    );
    assert!(text.contains("arn:aws:s3:::reports/monthly/*"), "{text}");
    let inputs = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "Inputs")
        .unwrap();
    assert_eq!(
        inputs["Action"],
        serde_json::json!(["s3:GetObject"]),
        "inputs are read only"
    );
    let unnamed = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(["deploy", "lambda", "--print-policy", "--scratch", "s3://t/"])
        .env_remove("SQUALL_CONFIG")
        .output()
        .unwrap();
    assert_eq!(unnamed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unnamed.stderr).contains("--name"));
}

#[test]
fn deploy_through_a_code_bucket_uploads_the_package_to_s3() {
    let moto = S3Server::start();
    assert!(moto.http("PUT", "/code").starts_with("HTTP/1.1 200"));
    moto.request(
        "iam",
        "POST",
        "/",
        "Action=CreateRole&Version=2010-05-08&RoleName=squall-worker&AssumeRolePolicyDocument=%7B%7D",
    );
    let binary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(binary.path(), vec![7u8; 4096]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "deploy",
            "lambda",
            "--name",
            "squall-s3",
            "--role",
            "arn:aws:iam::123456789012:role/squall-worker",
            "--code-bucket",
            "s3://code/releases/",
            "--binary",
            binary.path().to_str().unwrap(),
        ])
        .envs(moto.envs().iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = moto.http("GET", "/code?list-type=2");
    assert!(
        listing.contains("<Key>releases/squall-s3.zip</Key>"),
        "{listing}"
    );
    let function = moto.request("lambda", "GET", "/2015-03-31/functions/squall-s3", "");
    let first_key = field(&function, "SQUALL_TASK_KEY");
    assert_eq!(first_key.len(), 64, "a generated task key: {function}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("task key generated"));
    let code_size: u64 = field(&function, "CodeSize").parse().unwrap();
    assert!(code_size > 0 && code_size < 4096, "{function}");
}

#[test]
fn a_package_over_the_direct_upload_limit_asks_for_a_code_bucket() {
    // 51 MB that deflate cannot shrink: a xorshift stream.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..51_000_000 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let binary = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(binary.path(), bytes).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_squall"))
        .args([
            "deploy",
            "lambda",
            "--name",
            "too-big",
            "--role",
            "arn:aws:iam::123456789012:role/squall-worker",
            "--binary",
            binary.path().to_str().unwrap(),
        ])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_LAMBDA", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--code-bucket"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
