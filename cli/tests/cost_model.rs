//! `squall explain --cost`, `--deadline` and `--budget` on TPC-H data: the
//! prediction covers every stage of the plan, a goal picks the plan the
//! model says meets it best, and the plan shown is the plan chosen.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// TPC-H at scale 0.1 (about 30 MiB of Parquet), generated once.
fn tpch() -> &'static Path {
    static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = squall(&["gen", "tpch", "--scale", "0.1", "--out"], &[dir.path()]);
        assert!(out.status.success(), "{}", stderr(&out));
        dir
    })
    .path()
}

fn squall(args: &[&str], more: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_squall"))
        .args(args)
        .args(more)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `squall explain` of TPC-H query 3 with `flags`.
fn explain_q3(flags: &[&str]) -> Output {
    let q3: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/queries/tpch/q3.sql");
    let mut args: Vec<String> = vec!["explain".into()];
    for t in ["customer", "lineitem", "orders"] {
        args.push("--table".into());
        args.push(format!("{t}={}", tpch().join(t).display()));
    }
    args.extend(flags.iter().map(|f| f.to_string()));
    args.push("-f".into());
    args.push(q3.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    squall(&args, &[])
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Tasks in the stage graph's summary line: "Squall plan: 5 stages, 9 tasks".
fn planned_tasks(text: &str) -> usize {
    let line = text
        .lines()
        .find(|l| l.starts_with("Squall plan: "))
        .unwrap_or_else(|| panic!("no plan in: {text}"));
    line.split(", ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// One line of "Plans considered": chosen, tasks, seconds, dollars.
#[derive(Debug, Clone, Copy)]
struct Considered {
    chosen: bool,
    tasks: usize,
    seconds: f64,
    usd: f64,
    /// Some stages sized apart.
    apart: bool,
}

fn considered(text: &str) -> Vec<Considered> {
    text.lines()
        .skip_while(|l| !l.starts_with("Plans considered for "))
        .skip(1)
        .take_while(|l| l.contains(" per task: "))
        .map(|l| {
            let (_, rest) = l.split_once(" per task: ").unwrap();
            let parts: Vec<&str> = rest.split(", ").map(str::trim).collect();
            Considered {
                chosen: l.starts_with('*'),
                tasks: parts[0].trim_end_matches(" tasks").parse().unwrap(),
                seconds: parts[1].trim_end_matches(" s").parse().unwrap(),
                usd: parts[2].trim_start_matches('$').parse().unwrap(),
                apart: parts
                    .get(3)
                    .is_some_and(|p| p.starts_with("stages sized apart: ")),
            }
        })
        .collect()
}

fn chosen(plans: &[Considered]) -> Considered {
    let chosen: Vec<_> = plans.iter().filter(|p| p.chosen).collect();
    assert_eq!(chosen.len(), 1, "{plans:?}");
    *chosen[0]
}

#[test]
fn the_cost_prediction_covers_every_stage_of_the_plan() {
    let text = stdout_of(&explain_q3(&["--cost"]));
    assert!(
        text.contains("Predicted on AWS Lambda + S3 (a model's estimate, not a measurement"),
        "{text}"
    );
    let stages = text.lines().filter(|l| l.starts_with("Stage ")).count();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("stage  "))
        .skip(1)
        .take_while(|l| !l.starts_with("total"))
        .collect();
    assert_eq!(table.len(), stages, "{text}");
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    let total_tasks: usize = total.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(total_tasks, planned_tasks(&text), "{text}");
    assert!(total.contains(" s ") && total.contains('$'), "{total}");
}

#[test]
fn a_deadline_buys_tasks_and_a_budget_bounds_them() {
    // Any time will do: the cheapest plan, which runs the fewest tasks.
    let loose = stdout_of(&explain_q3(&["--deadline", "10000"]));
    let plans = considered(&loose);
    assert!(plans.len() >= 2, "one plan to choose from: {loose}");
    let cheapest = chosen(&plans);
    assert_eq!(
        cheapest.tasks,
        plans.iter().map(|p| p.tasks).min().unwrap(),
        "{loose}"
    );
    assert_eq!(
        planned_tasks(&loose),
        cheapest.tasks,
        "the plan shown is not the one chosen: {loose}"
    );
    assert!(loose.contains("Predicted on AWS Lambda + S3"), "{loose}");

    // A deadline only faster plans meet: more tasks, in time.
    let fastest = plans
        .iter()
        .copied()
        .min_by(|a, b| a.seconds.total_cmp(&b.seconds))
        .unwrap();
    assert!(fastest.seconds < cheapest.seconds, "{loose}");
    let deadline = format!("{}", (fastest.seconds + cheapest.seconds) / 2.0);
    let tight = stdout_of(&explain_q3(&["--deadline", &deadline]));
    let pick = chosen(&considered(&tight));
    assert!(pick.tasks > cheapest.tasks, "{tight}");
    assert!(
        pick.seconds <= (fastest.seconds + cheapest.seconds) / 2.0 + 0.01,
        "{tight}"
    );
    assert_eq!(planned_tasks(&tight), pick.tasks, "{tight}");

    // A deadline no plan meets: one line naming the fastest.
    let impossible = format!("{}", fastest.seconds / 4.0);
    let out = explain_q3(&["--deadline", &impossible]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: no fan-out meets a deadline of ")
            && err.contains("the fastest plan is predicted to take")
            && err.contains("raise --deadline"),
        "{err}"
    );

    // Money no object: the fastest plan. Here the stages sized apart: the
    // scans in tasks of 8 MiB, and Q3's aggregation (stage 3, fed by a hash
    // exchange) in one task rather than four, which is faster still and
    // cheaper. The plan shown is the one chosen, planned with those sizes.
    let rich = stdout_of(&explain_q3(&["--budget", "1000"]));
    let pick = chosen(&considered(&rich));
    assert!(pick.apart, "{rich}");
    assert!(
        pick.seconds < fastest.seconds && pick.usd <= fastest.usd,
        "{rich}"
    );
    assert_eq!(planned_tasks(&rich), pick.tasks, "{rich}");
    // A budget under the cheapest fails.
    let out = explain_q3(&["--budget", "0.0000001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the cheapest plan is predicted to cost"),
        "{}",
        stderr(&out)
    );
    assert!(cheapest.usd > 0.0);
}

#[test]
fn the_config_file_overrides_the_models_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[cost_model]\nfunction_memory_mb = 10240\n").unwrap();
    let config_flag = config.display().to_string();
    let text = stdout_of(&explain_q3(&["--cost", "--config", &config_flag]));
    assert!(text.contains("functions of 10240 MB (5.8 vCPUs)"), "{text}");

    std::fs::write(&config, "[cost_model]\nnetwork_mib_per_second = 0\n").unwrap();
    let out = explain_q3(&["--cost", "--config", &config_flag]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cost_model.network_mib_per_second must be a positive number"),
        "{}",
        stderr(&out)
    );
}
