//! `--stats`: what a query did, summed over its tasks, printed to stderr.
//!
//! Task-seconds and object-store requests are what a serverless run is billed
//! for (Lambda: GB-seconds and invocations; S3: requests), so the summary is
//! what the cost notes in the README multiply by prices.

use std::sync::{Arc, Mutex};

use squall_jobs::{ProgressEvent, ProgressListener};

/// Totals over the tasks of the statements run so far.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    stages: usize,
    tasks: usize,
    busy_ms: u64,
    input_bytes: u64,
    output_bytes: u64,
    get: u64,
    put: u64,
    multipart_put: u64,
    head: u64,
    list: u64,
    delete: u64,
}

/// Collects [`Stats`] from progress events.
#[derive(Debug, Default, Clone)]
pub struct StatsCollector(Arc<Mutex<Stats>>);

impl StatsCollector {
    pub fn listener(&self) -> ProgressListener {
        let stats = Arc::clone(&self.0);
        Arc::new(move |event| {
            let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
            match event {
                ProgressEvent::QueryPlanned { stages, .. } => s.stages += stages,
                ProgressEvent::TaskFinished {
                    input_bytes,
                    output_bytes,
                    busy_ms,
                    requests,
                    ..
                } => {
                    s.tasks += 1;
                    s.busy_ms += busy_ms;
                    s.input_bytes += input_bytes;
                    s.output_bytes += output_bytes;
                    s.get += requests.get;
                    s.put += requests.put;
                    s.multipart_put += requests.multipart_put;
                    s.head += requests.head;
                    s.list += requests.list;
                    s.delete += requests.delete;
                }
                ProgressEvent::StageStarted { .. } | ProgressEvent::StageFinished { .. } => {}
            }
        })
    }

    /// The one-line summary.
    pub fn summary(&self) -> String {
        let s = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        format!(
            "stats: {} stages, {} tasks, {:.1} task-seconds; read {}, wrote {}; \
             object-store requests: {} GET, {} PUT, {} multipart PUT, {} HEAD, {} LIST, {} DELETE",
            s.stages,
            s.tasks,
            s.busy_ms as f64 / 1000.0,
            human_bytes(s.input_bytes),
            human_bytes(s.output_bytes),
            s.get,
            s.put,
            s.multipart_put,
            s.head,
            s.list,
            s.delete,
        )
    }
}

/// Both listeners, or whichever exists.
pub fn both(a: Option<ProgressListener>, b: Option<ProgressListener>) -> Option<ProgressListener> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Arc::new(move |event: ProgressEvent| {
            a(event.clone());
            b(event);
        })),
        (a, b) => a.or(b),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_sums_tasks() {
        let collector = StatsCollector::default();
        let listener = collector.listener();
        listener(ProgressEvent::QueryPlanned {
            stages: 2,
            tasks: 2,
        });
        for _ in 0..2 {
            listener(ProgressEvent::TaskFinished {
                stage: 0,
                task: 0,
                input_bytes: 3 << 20,
                output_bytes: 512,
                output_rows: 1,
                busy_ms: 1500,
                requests: squall_worker::RequestCounts {
                    get: 4,
                    put: 1,
                    ..Default::default()
                },
            });
        }
        assert_eq!(
            collector.summary(),
            "stats: 2 stages, 2 tasks, 3.0 task-seconds; read 6.0 MiB, wrote 1.0 KiB; \
             object-store requests: 8 GET, 2 PUT, 0 multipart PUT, 0 HEAD, 0 LIST, 0 DELETE"
        );
    }
}
