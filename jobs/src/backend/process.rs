//! [`ProcessBackend`]: every task attempt is a fresh OS process.
//!
//! The child reads spec bytes on stdin and writes report bytes on stdout
//! (`squall worker`). A task that crashes, panics or is killed cannot take the
//! coordinator down: its failure comes back with the exit status and the tail
//! of its stderr.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use async_trait::async_trait;
use squall_worker::{TASK_KEY_ENV, TaskKey};

use super::{Backend, WorkerReach};

/// Largest report read from a worker; a report is a few KiB.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;
/// How much of a failed worker's stderr is kept for the error message.
const STDERR_TAIL_BYTES: usize = 2048;

/// Runs each task as `program args...`, spec on stdin, report on stdout.
#[derive(Debug, Clone)]
pub struct ProcessBackend {
    program: PathBuf,
    args: Vec<String>,
    workers: usize,
    /// Generated for this backend and handed to each child in its
    /// environment; never on a command line, where other users could see it.
    key: TaskKey,
}

impl ProcessBackend {
    /// `program args...` must behave like `squall worker`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>, workers: usize) -> Self {
        Self {
            program: program.into(),
            args,
            workers: workers.max(1),
            key: TaskKey::generate(),
        }
    }

    /// `squall worker` from the running `squall` binary.
    pub fn current_exe(workers: usize) -> std::io::Result<Self> {
        Ok(Self::new(
            std::env::current_exe()?,
            vec!["worker".into()],
            workers,
        ))
    }
}

#[async_trait]
impl Backend for ProcessBackend {
    fn name(&self) -> &str {
        "process"
    }

    fn task_key(&self) -> &TaskKey {
        &self.key
    }

    fn reach(&self) -> WorkerReach {
        WorkerReach::ThisMachine
    }

    fn max_concurrency(&self) -> usize {
        self.workers
    }

    async fn invoke(&self, spec: Vec<u8>) -> Result<Vec<u8>, String> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(TASK_KEY_ENV, self.key.expose_secret())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start worker {}: {e}", self.program.display()))?;
        // A cancelled query must not leave workers running: the guard kills the
        // child if this future is dropped before the child has ended.
        let mut child = KillOnDrop(Some(child));
        let process = child.0.as_mut().expect("just spawned");
        let mut stdin = process.stdin.take().ok_or("worker has no stdin")?;
        let stdout = process.stdout.take().ok_or("worker has no stdout")?;
        let mut stderr = process.stderr.take().ok_or("worker has no stderr")?;
        // Pipes are blocking: each is served by the blocking pool, never by async threads.
        let write = tokio::task::spawn_blocking(move || {
            // A worker that dies early closes its stdin; its exit status tells why.
            let _ = stdin.write_all(&spec);
        });
        let read_out = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            stdout
                .take(MAX_REPORT_BYTES)
                .read_to_end(&mut out)
                .map(|_| out)
        });
        let read_err = tokio::task::spawn_blocking(move || {
            let mut err = Vec::new();
            let _ = stderr.read_to_end(&mut err);
            err
        });
        let (_, out, err) = tokio::join!(write, read_out, read_err);
        let err = err.unwrap_or_default();
        let out = out
            .map_err(|e| format!("reading worker output: {e}"))?
            .map_err(|e| format!("reading worker output: {e}"))?;
        // Both pipes are closed, so the child has ended or is about to.
        let mut process = child.0.take().expect("still owned");
        let status = process
            .wait()
            .map_err(|e| format!("waiting for worker: {e}"))?;
        if status.success() && !out.is_empty() {
            return Ok(out);
        }
        Err(format!(
            "worker process {}; stderr: {}",
            describe_status(&status),
            stderr_tail(&err)
        ))
    }
}

/// Kills and reaps the child when dropped while still owned.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn describe_status(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(0) => "exited without writing a report".to_string(),
        Some(code) => format!("exited with status {code}"),
        None => "ended abnormally".to_string(),
    }
}

fn stderr_tail(err: &[u8]) -> String {
    let start = err.len().saturating_sub(STDERR_TAIL_BYTES);
    let tail = String::from_utf8_lossy(&err[start..]);
    let tail = tail.split_whitespace().collect::<Vec<_>>().join(" ");
    if tail.is_empty() {
        "(empty)".to_string()
    } else {
        tail
    }
}
