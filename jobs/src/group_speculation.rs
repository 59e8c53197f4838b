//! Backup attempts for the stragglers of a launcher group.
//!
//! A stage of more tasks than the backend's launcher threshold is run through
//! launcher invocations, each invoking its group of tasks (see
//! [`Backend::invoke_group`](crate::Backend::invoke_group)). The coordinator
//! sees a group only when all of it has ended, so it cannot tell a straggler
//! inside it; the launcher can. With speculation on, the coordinator signs
//! a backup spec (the next attempt) of every task of the group up front,
//! stores them as one object under the query's scratch prefix, and sends the
//! launcher a signed reference to it that pins its SHA-256
//! ([`GroupBackups`]). The launcher measures its own tasks with a
//! [`StageClock`] under the coordinator's [`SpeculationPolicy`] and, when one
//! straggles and one of its in-flight slots is free, fetches the backups (once
//! per group) and invokes the straggler's; the first attempt to report wins
//! the task, the other is dropped. Its response says, per task, whether a
//! backup ran and whether it won ([`BackupUse`]).
//!
//! The launcher decides which attempt's report it returns; the coordinator
//! still alone decides the winner: it records the attempt whose report it
//! receives, and reads only the objects that report names. A backup never
//! raises the group's in-flight bound: it needs a free slot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use squall_worker::TaskKey;
use tokio::sync::{OnceCell, Semaphore};

use crate::speculation::{QueryPace, SpeculationPolicy, StageClock, first_success};

/// What a launcher needs to back up the stragglers of its group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupBackups {
    /// A signed `{"backups_url": ..., "sha256": ...}` naming the object that
    /// holds one signed backup spec per task of the group, in order.
    pub reference: String,
    /// When a task of the group is a straggler.
    pub policy: SpeculationPolicy,
}

/// The pinned object of a [`GroupBackups`] reference.
#[derive(Debug, Serialize, Deserialize)]
struct BackupsByReference {
    backups_url: String,
    sha256: String,
}

/// Whether a task of a group got a backup attempt, and whether it won.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupUse {
    pub launched: bool,
    pub won: bool,
}

/// When one attempt of a group's task ran, in milliseconds since the group
/// began (the launcher's clock), for the report's timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptSpan {
    pub started_ms: u64,
    pub ended_ms: u64,
}

/// One task of a group: its report (or why there is none), its backup, and
/// when its attempts ran: the first attempt's span, then the backup's.
/// Empty spans: not measured (a launcher of an older build).
#[derive(Debug)]
pub struct LaunchedTask {
    pub result: Result<Vec<u8>, String>,
    pub backup: BackupUse,
    pub spans: Vec<AttemptSpan>,
}

impl LaunchedTask {
    /// A task that ran without a backup, its timing unknown.
    pub fn alone(result: Result<Vec<u8>, String>) -> Self {
        Self {
            result,
            backup: BackupUse::default(),
            spans: Vec::new(),
        }
    }
}

/// The signed backup specs of a group, as stored: a JSON array of the
/// signed envelopes as strings.
pub fn backups_object(backup_specs: &[Vec<u8>]) -> Vec<u8> {
    let texts: Vec<String> = backup_specs
        .iter()
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    serde_json::to_vec(&texts).expect("strings serialize")
}

/// The [`GroupBackups`] for the backups object stored at `url` with bytes `object`.
pub fn group_backups(
    key: &TaskKey,
    url: &str,
    object: &[u8],
    policy: SpeculationPolicy,
) -> GroupBackups {
    let reference = serde_json::to_vec(&BackupsByReference {
        backups_url: url.to_string(),
        sha256: squall_worker::signing::sha256_hex(object),
    })
    .expect("strings serialize");
    GroupBackups {
        reference: String::from_utf8_lossy(&key.sign(&reference)).into_owned(),
        policy,
    }
}

/// Opens `backups` with `key`, fetches the object it names, checks its
/// SHA-256 and returns the signed backup specs in the group's order.
pub async fn load_backups(backups: &GroupBackups, key: &TaskKey) -> Result<Vec<Vec<u8>>, String> {
    let opened = key
        .open(backups.reference.as_bytes())
        .map_err(|e| format!("backup specs refused: {e}"))?;
    let reference: BackupsByReference = serde_json::from_slice(&opened)
        .map_err(|e| format!("backup specs reference is not valid: {e}"))?;
    let url = &reference.backups_url;
    let bytes = squall_worker::pinned::fetch_pinned(url, &reference.sha256)
        .await
        .map_err(|e| format!("backup specs: {e}"))?;
    let texts: Vec<String> = serde_json::from_slice(&bytes)
        .map_err(|e| format!("backup specs object {url} is not valid: {e}"))?;
    Ok(texts.into_iter().map(String::into_bytes).collect())
}

/// Runs the specs of a group through `invoke`, at most `in_flight` at once,
/// in order; with `backups`, a straggler gets its backup attempt when a slot
/// is free. One [`LaunchedTask`] per spec, in order.
pub async fn run_group<'a, F>(
    specs: Vec<Vec<u8>>,
    in_flight: usize,
    backups: Option<(&GroupBackups, &TaskKey)>,
    invoke: F,
) -> Vec<LaunchedTask>
where
    F: Fn(Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>>,
{
    let slots = Semaphore::new(in_flight.max(1));
    // The group's own pace: a launcher knows nothing of the query's other tasks.
    let clock = StageClock::new(specs.len(), Arc::new(QueryPace::default()));
    let loaded: OnceCell<Option<Vec<Vec<u8>>>> = OnceCell::new();
    let group = GroupRun {
        began: Instant::now(),
        slots: &slots,
        clock: &clock,
        loaded: &loaded,
        backups,
        invoke: &invoke,
    };
    futures::future::join_all(
        specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| group.run_task(index, spec)),
    )
    .await
}

/// The shared state of one [`run_group`].
struct GroupRun<'g, F> {
    /// When the group began: attempt spans are measured from it.
    began: Instant,
    slots: &'g Semaphore,
    clock: &'g StageClock,
    /// The backup specs, fetched when the first straggler needs one;
    /// `None` when they could not be.
    loaded: &'g OnceCell<Option<Vec<Vec<u8>>>>,
    backups: Option<(&'g GroupBackups, &'g TaskKey)>,
    invoke: &'g F,
}

impl<'a, F> GroupRun<'_, F>
where
    F: Fn(Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, String>>,
{
    async fn run_task(&self, index: usize, spec: Vec<u8>) -> LaunchedTask {
        let _slot = self.slots.acquire().await.expect("semaphore never closes");
        let started = Instant::now();
        let first = (self.invoke)(spec);
        tokio::pin!(first);
        let Some((backups, key)) = self.backups else {
            let result = first.await;
            return self.alone(result, started);
        };
        let policy = &backups.policy;
        let check_every =
            (policy.floor / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        let (backup_slot, backup_spec) = loop {
            tokio::select! {
                result = &mut first => return self.alone(result, started),
                _ = tokio::time::sleep(check_every) => {
                    let straggles = self
                        .clock
                        .straggler_after(policy, 0)
                        .is_some_and(|limit| started.elapsed() > limit);
                    if !straggles {
                        continue;
                    }
                    let Ok(slot) = self.slots.try_acquire() else {
                        continue;
                    };
                    match self.backup_spec(backups, key, index).await {
                        Some(spec) => break (slot, spec),
                        None => {
                            // No backup to be had: wait for the first attempt.
                            drop(slot);
                            let result = first.await;
                            return self.alone(result, started);
                        }
                    }
                }
            }
        };
        let backup_started = Instant::now();
        let backup = async {
            let _slot = backup_slot;
            (self.invoke)(backup_spec).await
        };
        let (result, won) = first_success(first, backup).await;
        self.finished(&result, started);
        // Both attempts end when the first to report does: the other is dropped.
        let ended = Instant::now();
        LaunchedTask {
            backup: BackupUse {
                launched: true,
                won: won && result.is_ok(),
            },
            result,
            spans: vec![self.span(started, ended), self.span(backup_started, ended)],
        }
    }

    /// A task that ran without a backup: its outcome and span.
    fn alone(&self, result: Result<Vec<u8>, String>, started: Instant) -> LaunchedTask {
        self.finished(&result, started);
        LaunchedTask {
            spans: vec![self.span(started, Instant::now())],
            ..LaunchedTask::alone(result)
        }
    }

    fn span(&self, started: Instant, ended: Instant) -> AttemptSpan {
        let ms = |at: Instant| at.saturating_duration_since(self.began).as_millis() as u64;
        AttemptSpan {
            started_ms: ms(started),
            ended_ms: ms(ended),
        }
    }

    async fn backup_spec(
        &self,
        backups: &GroupBackups,
        key: &TaskKey,
        index: usize,
    ) -> Option<Vec<u8>> {
        let loaded = self
            .loaded
            .get_or_init(|| async {
                load_backups(backups, key)
                    .await
                    .map_err(|e| log::warn!("no backup attempts for this launcher group: {e}"))
                    .ok()
            })
            .await;
        loaded.as_ref()?.get(index).cloned()
    }

    fn finished(&self, result: &Result<Vec<u8>, String>, started: Instant) {
        if result.is_ok() {
            self.clock.record(started.elapsed(), 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::sync::Mutex;

    fn policy() -> SpeculationPolicy {
        SpeculationPolicy {
            min_finished_fraction: 0.5,
            slowdown: 2.0,
            floor: Duration::from_millis(100),
        }
    }

    /// Stores `backup_specs` in a temporary directory; returns their reference.
    async fn stored(
        dir: &std::path::Path,
        key: &TaskKey,
        backup_specs: &[Vec<u8>],
    ) -> GroupBackups {
        let object = backups_object(backup_specs);
        let path = dir.join("backups.json");
        std::fs::write(&path, &object).unwrap();
        let url = format!("file://{}", path.display());
        group_backups(key, &url, &object, policy())
    }

    /// The specs invoked, how many run now, and the most that ran at once.
    type InvokeLog = Arc<Mutex<(Vec<Vec<u8>>, usize, usize)>>;

    /// An invoker that returns the spec as its report after 20 ms, or after
    /// 5 s for the spec `slow`; records the specs invoked and the most at once.
    fn invoker(
        log: &InvokeLog,
    ) -> impl Fn(Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, String>> + use<> {
        let log = Arc::clone(log);
        move |spec: Vec<u8>| {
            let log = Arc::clone(&log);
            async move {
                {
                    let mut log = log.lock().unwrap();
                    log.0.push(spec.clone());
                    log.1 += 1;
                    log.2 = log.2.max(log.1);
                }
                let ms = if spec == b"slow" { 2_000 } else { 20 };
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.lock().unwrap().1 -= 1;
                Ok(spec)
            }
            .boxed()
        }
    }

    #[tokio::test]
    async fn a_straggler_in_a_group_is_overtaken_by_its_backup_within_the_bound() {
        let key = TaskKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<Vec<u8>> = vec![
            b"slow".to_vec(),
            b"a".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
        ];
        let backup_specs: Vec<Vec<u8>> = ["backup-0", "backup-1", "backup-2", "backup-3"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let backups = stored(dir.path(), &key, &backup_specs).await;
        let log = Arc::new(Mutex::new((Vec::new(), 0, 0)));
        let done = run_group(specs, 2, Some((&backups, &key)), invoker(&log)).await;
        assert_eq!(done[0].result.as_deref(), Ok(&b"backup-0"[..]));
        assert_eq!(
            done[0].backup,
            BackupUse {
                launched: true,
                won: true
            }
        );
        for (task, name) in done[1..].iter().zip(["a", "b", "c"]) {
            assert_eq!(task.result.as_deref(), Ok(name.as_bytes()));
            assert_eq!(task.backup, BackupUse::default());
            assert_eq!(task.spans.len(), 1, "one attempt, one span");
        }
        // The straggler's two attempts end together, the backup started later;
        // with two slots, task "c" waited for one.
        let [first, backup] = done[0].spans[..] else {
            panic!("two spans: {:?}", done[0].spans);
        };
        assert!(first.started_ms < backup.started_ms && backup.started_ms < backup.ended_ms);
        assert_eq!(first.ended_ms, backup.ended_ms);
        assert!(
            backup.ended_ms < 2_000,
            "the backup won before the straggler ended"
        );
        assert!(done[3].spans[0].started_ms >= 20, "{:?}", done[3].spans);
        let log = log.lock().unwrap();
        assert_eq!(log.0.len(), 5, "one backup: {:?}", log.0);
        assert!(log.2 <= 2, "{} in flight with a bound of 2", log.2);
    }

    #[tokio::test]
    async fn without_backups_or_with_a_tampered_object_the_straggler_runs_alone() {
        let key = TaskKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let specs: Vec<Vec<u8>> = vec![b"slow".to_vec(), b"b".to_vec(), b"c".to_vec()];
        let log = Arc::new(Mutex::new((Vec::new(), 0, 0)));
        let done = run_group(specs.clone(), 3, None, invoker(&log)).await;
        assert!(done.iter().all(|t| t.backup == BackupUse::default()));
        let backups = stored(
            dir.path(),
            &key,
            &[b"x".to_vec(), b"y".to_vec(), b"z".to_vec()],
        )
        .await;
        std::fs::write(
            dir.path().join("backups.json"),
            b"[\"evil\",\"evil\",\"evil\"]",
        )
        .unwrap();
        let done = run_group(specs, 3, Some((&backups, &key)), invoker(&log)).await;
        assert_eq!(
            done[0].result.as_deref(),
            Ok(&b"slow"[..]),
            "never the tampered spec"
        );
        assert!(done.iter().all(|t| t.backup == BackupUse::default()));
        assert!(!log.lock().unwrap().0.iter().any(|s| s == b"evil"));
        let error = load_backups(&backups, &key).await.unwrap_err();
        assert!(error.contains("SHA-256 differs"), "{error}");
        let other_key = TaskKey::generate();
        let error = load_backups(&backups, &other_key).await.unwrap_err();
        assert!(error.contains("refused"), "{error}");
    }
}
