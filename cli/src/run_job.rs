//! `squall run JOB.toml`: an ETL job from its file (see `squall_etl`).

use anyhow::Result;
use squall_etl::{EtlError, JobFile, JobOutcome, JobPlan};

use crate::args::RunArgs;
use crate::config::Config;
use crate::{listener_slot, progress, report, session_setup, stats};

pub async fn run(args: RunArgs, config: &Config) -> Result<()> {
    match run_checked(args, config).await {
        Err(e) => match e.downcast::<EtlError>() {
            Ok(EtlError::Invalid { file, problems }) if problems.len() == 1 => {
                let p = &problems[0];
                match p.line {
                    0 => anyhow::bail!("{file}: {p} (nothing ran)"),
                    line => anyhow::bail!("{file}:{line}: {p} (nothing ran)"),
                }
            }
            Ok(EtlError::Invalid { file, problems }) => {
                // One line per problem, then the one-line error.
                for p in &problems {
                    match p.line {
                        0 => eprintln!("{file}: {p}"),
                        line => eprintln!("{file}:{line}: {p}"),
                    }
                }
                anyhow::bail!(
                    "{file} has {} problem{}; nothing ran",
                    problems.len(),
                    if problems.len() == 1 { "" } else { "s" }
                )
            }
            Ok(other) => Err(other.into()),
            Err(e) => Err(e),
        },
        ok => ok,
    }
}

async fn run_checked(args: RunArgs, config: &Config) -> Result<()> {
    report::check_paths(&args.exec.report)?;
    // The file's shape first: its problems need no session.
    let job = JobFile::load(&args.job, &args.set)?;
    let stats = args.exec.stats.then(stats::StatsCollector::default);
    let recorder =
        (!args.exec.report.is_empty()).then(squall::jobs::run_report::RunRecorder::default);
    let slot = listener_slot::ListenerSlot::default();
    let options = session_setup::session_options(&args.exec, config, Some(slot.listener())).await?;
    let library_session = session_setup::build(options, None)?;
    let session = library_session.jobs();
    let plan = JobPlan::check(session, job).await?;
    if args.dry_run {
        print!("{}", plan.describe(session).await?);
        return Ok(());
    }
    let live = if args.exec.no_progress {
        None
    } else {
        progress::LiveProgress::start()
    };
    slot.set(stats::run_listener(live.as_ref(), &stats, &recorder));
    if let Some(recorder) = &recorder {
        recorder.begin_statement(&format!("squall run {}", args.job.display()));
    }
    let options = squall_etl::RunOptions {
        full_refresh: args.full_refresh,
    };
    let outcome = squall_etl::run_job(session, &plan, &options).await;
    if let Some(live) = &live {
        live.finish();
    }
    if let Some(recorder) = &recorder {
        recorder.end_statement(outcome.as_ref().err().map(ToString::to_string));
        report::write_run(recorder, session, &args.exec.report)?;
    }
    let outcome = outcome?;
    print!("{}", summary(&plan, &outcome));
    if let Some(stats) = stats {
        eprintln!("{}", stats.summary());
        if let Some(memory) = session.backend().billed_memory_bytes() {
            eprintln!("{}", stats.cost_line(memory));
        }
    }
    Ok(())
}

/// What the job wrote, one line per sink.
fn summary(plan: &JobPlan, outcome: &JobOutcome) -> String {
    let job = &plan.job;
    let mut out = format!(
        "job {}: {} sink{} published together in {:.1} s\n",
        job.name.as_deref().unwrap_or(&job.file),
        outcome.sinks.len(),
        if outcome.sinks.len() == 1 { "" } else { "s" },
        outcome.elapsed.as_secs_f64()
    );
    for (sink, def) in outcome.sinks.iter().zip(&job.sinks) {
        out.push_str(&format!(
            "  {}: {} rows in {} file{} from step {}{}\n",
            sink.url,
            sink.rows,
            sink.files,
            if sink.files == 1 { "" } else { "s" },
            def.step,
            match (sink.replaced, sink.delta_version) {
                (0, None) => String::new(),
                (n, None) => format!(", replacing {n} file{}", if n == 1 { "" } else { "s" }),
                (0, Some(v)) => format!(", Delta version {v}"),
                (n, Some(v)) => format!(
                    ", removing {n} file{}, Delta version {v}",
                    if n == 1 { "" } else { "s" }
                ),
            }
        ));
    }
    for read in &outcome.incremental {
        out.push_str(&format!(
            "  source {}: read {} new or changed object{} of {}\n",
            read.source,
            read.objects_read,
            if read.objects_read == 1 { "" } else { "s" },
            read.objects_total
        ));
    }
    if !outcome.materialized.is_empty() {
        out.push_str(&format!(
            "  computed once for several readers: {}\n",
            outcome.materialized.join(", ")
        ));
    }
    out
}
