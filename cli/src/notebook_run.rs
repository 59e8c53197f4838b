//! `squall notebook run NOTEBOOK.md`: a notebook's cells run and drawn as
//! one HTML page, or written back as Markdown with their results (see
//! `squall_notebook`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use squall_notebook::{
    CellCache, Notebook, RunOptions, render_html, render_markdown, run_notebook,
};

use clap::ValueEnum;

use crate::args::{BackendKind, ExecArgs, NotebookCellArgs, NotebookFormat, NotebookRunArgs};
use crate::config::Config;
use crate::notebook_progress::CellProgress;
use crate::session_setup;

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
    let labels = notebook
        .sql_cells()
        .map(|cell| match &cell.name {
            Some(name) => format!("cell {name}"),
            None => format!("cell at line {}", cell.line),
        })
        .collect();
    let live = if args.exec.no_progress {
        None
    } else {
        CellProgress::start(labels)
    };
    let exec = with_notebook_backend(&args.exec, &notebook)?;
    let options = session_setup::session_options(&exec, config, None).await?;
    let library_session = session_setup::build(options, None)?;
    let session = library_session.jobs();
    let cache = match cache_location(&args.cells) {
        Some(location) => Some(CellCache::open(session, &location, args.cells.cache_bytes)?),
        None => None,
    };
    let options = RunOptions {
        cache,
        concurrent_cells: args.cells.concurrent_cells,
        listener: live.as_ref().map(CellProgress::listener),
        ..RunOptions::default()
    };
    let run = run_notebook(session, &notebook, &options).await;
    if let Some(live) = &live {
        live.finish();
    }
    let run = run?;
    let page = match args.format {
        NotebookFormat::Html => render_html::render(&notebook, &run),
        NotebookFormat::Md => render_markdown::render(&notebook, &run),
    };
    write_page(&output, &page)?;
    for warning in &run.cache_warnings {
        eprintln!("squall: {warning}");
    }
    let cells = run.cells.len();
    let failures = run.failures();
    let cached = run.cached();
    eprintln!(
        "wrote {}: {cells} cell{} in {:.1} s{}",
        output.display(),
        if cells == 1 { "" } else { "s" },
        run.elapsed.as_secs_f64(),
        if cached > 0 {
            format!(" ({cached} from cache)")
        } else {
            String::new()
        }
    );
    if failures > 0 {
        bail!(
            "{failures} of {cells} cells did not run to their end; {} shows why",
            output.display()
        );
    }
    Ok(())
}

/// `exec` with the backend the notebook's front matter names, unless
/// `--backend` named one (the config file's comes after both).
pub fn with_notebook_backend(exec: &ExecArgs, notebook: &Notebook) -> Result<ExecArgs> {
    let mut exec = exec.clone();
    if exec.backend.is_none()
        && let Some(backend) = &notebook.backend
    {
        exec.backend = Some(
            BackendKind::from_str(backend, true)
                .map_err(|e| anyhow::anyhow!("{}: backend '{backend}': {e}", notebook.file))?,
        );
    }
    Ok(exec)
}

/// The cache `args` ask for: `--cache`, else the user's cache folder;
/// none with `--no-cache` or when there is no home folder.
pub fn cache_location(args: &NotebookCellArgs) -> Option<String> {
    if args.no_cache {
        return None;
    }
    if let Some(location) = &args.cache {
        return Some(location.clone());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("squall/notebooks").display().to_string())
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
