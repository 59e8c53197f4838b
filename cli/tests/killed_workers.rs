//! Worker processes of the process backend killed with SIGKILL at random
//! moments (a seeded generator picks when and which) while all 22 TPC-H
//! queries run. Alone in its test binary, so that no other test's workers
//! are among the victims.

#[path = "../../jobs/tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{squall_session_on, tpch_data, tpch_differences};
use squall_jobs::ProcessBackend;

/// The `squall worker` processes that are children of this process.
fn worker_children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "PID (COMM) STATE PPID ..."
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
            comm.ends_with("(squall") && ppid == Some(me)
        })
        .collect()
}

/// Worker processes killed with SIGKILL at random moments (seeded) while
/// all 22 TPC-H queries run: their tasks are retried and every answer is
/// single-node DataFusion's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_moments_change_no_answer() {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    const MAX_KILLS: usize = 25;
    let data = tpch_data().await;
    let backend = Arc::new(ProcessBackend::new(
        env!("CARGO_BIN_EXE_squall"),
        vec!["worker".into()],
        4,
    ));
    let session = squall_session_on(data, backend).await;
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = std::thread::spawn({
        let (stop, kills) = (Arc::clone(&stop), Arc::clone(&kills));
        move || {
            let mut rng = rand::rngs::StdRng::seed_from_u64(20261123);
            while !stop.load(Ordering::SeqCst) && kills.load(Ordering::SeqCst) < MAX_KILLS {
                std::thread::sleep(std::time::Duration::from_millis(rng.random_range(50..400)));
                let workers = worker_children();
                if workers.is_empty() {
                    continue;
                }
                let victim = workers[rng.random_range(0..workers.len())];
                let killed = std::process::Command::new("kill")
                    .args(["-9", &victim.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                if killed {
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let failures = tpch_differences(&session, data).await;
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    let kills = kills.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} queries differ with {kills} workers killed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(kills >= 10, "only {kills} workers were killed");
}
