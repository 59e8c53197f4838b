//! `squall notebook run NOTEBOOK.md`: a notebook's cells run and drawn as
//! one HTML page, or written back as Markdown with their results (see
//! `squall_notebook`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use squall_jobs::Session;
use squall_notebook::run::CellMeter;
use squall_notebook::{Notebook, render_html, render_markdown, run_notebook};

use crate::args::{NotebookFormat, NotebookRunArgs};
use crate::config::Config;
use crate::{listener_slot, progress, session_setup, stats};

pub async fn run(args: NotebookRunArgs, config: &Config) -> Result<()> {
    if args.exec.stats || !args.exec.report.is_empty() {
        bail!(
            "squall notebook run shows each cell's measures on the page; it takes no --stats or --report"
        );
    }
    let (extension, default_output) = match args.format {
        NotebookFormat::Html => ("html", args.notebook.with_extension("html")),
        NotebookFormat::Md => ("md", args.notebook.clone()),
    };
    let output = args.output.clone().unwrap_or(default_output);
    if output.extension().and_then(|e| e.to_str()) != Some(extension) {
        bail!(
            "notebook page {}: name it .{extension} (--format {extension})",
            output.display()
        );
    }
    let notebook = Notebook::load(&args.notebook, &args.set)?;
    let meter = CellMeter::default();
    let live = if args.exec.no_progress {
        None
    } else {
        progress::LiveProgress::start()
    };
    let slot = listener_slot::ListenerSlot::default();
    slot.set(stats::both(
        Some(meter.listener()),
        live.as_ref().map(progress::LiveProgress::listener),
    ));
    let options = session_setup::session_options(&args.exec, config, Some(slot.listener())).await?;
    let session = Session::try_new(options)?;
    let run = run_notebook(&session, &notebook, Some(&meter)).await;
    if let Some(live) = &live {
        live.finish();
    }
    let run = run?;
    let page = match args.format {
        NotebookFormat::Html => render_html::render(&notebook, &run),
        NotebookFormat::Md => render_markdown::render(&notebook, &run),
    };
    write_page(&output, &page)?;
    let cells = run.cells.len();
    let failures = run.failures();
    eprintln!(
        "wrote {}: {cells} cell{} in {:.1} s",
        output.display(),
        if cells == 1 { "" } else { "s" },
        run.elapsed.as_secs_f64()
    );
    if failures > 0 {
        bail!(
            "{failures} of {cells} cells did not run to their end; {} shows why",
            output.display()
        );
    }
    Ok(())
}

/// Writes the page whole or not at all (beside, then renamed).
fn write_page(path: &Path, html: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let context = || format!("writing notebook page {}", path.display());
    let mut file = tempfile::NamedTempFile::new_in(dir).with_context(context)?;
    std::io::Write::write_all(&mut file, html.as_bytes()).with_context(context)?;
    file.persist(path).with_context(context)?;
    Ok(())
}
