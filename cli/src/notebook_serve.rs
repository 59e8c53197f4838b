//! `squall notebook serve NOTEBOOK.md`: the live notebook (see
//! `squall_notebook_serve`), until Ctrl-C or SIGTERM.

use std::io::Write;

use anyhow::{Context, Result};
use squall_notebook::Notebook;
use squall_notebook_serve::{RunSettings, ServeOptions, serve as start_serving};

use crate::args::NotebookServeArgs;
use crate::config::Config;
use crate::notebook_run::{cache_location, with_notebook_backend};
use crate::session_setup;

pub async fn serve(args: NotebookServeArgs, config: &Config) -> Result<()> {
    if args.exec.stats || !args.exec.report.is_empty() {
        anyhow::bail!(
            "squall notebook serve shows each cell's measures on the page; it takes no --stats or --report"
        );
    }
    // The backend named in the front matter, read once: the server runs
    // every version of the notebook on it.
    let notebook = Notebook::load(&args.notebook, &args.set)?;
    let exec = with_notebook_backend(&args.exec, &notebook)?;
    let mut session = session_setup::session_options(&exec, config, None).await?;
    // Cells read files by name only in the notebook's folder.
    let folder = match args.notebook.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let folder = folder
        .canonicalize()
        .with_context(|| format!("cannot read notebook {}", args.notebook.display()))?;
    session.url_tables_root = Some(folder.display().to_string());
    let cache = cache_location(&args.cells).map(|location| (location, args.cells.cache_bytes));
    let serving = start_serving(ServeOptions {
        notebook: args.notebook.clone(),
        sets: args.set.clone(),
        settings: RunSettings {
            session,
            cache,
            concurrent_cells: args.cells.concurrent_cells,
        },
        port: args.port,
    })
    .await?;
    // The address on stdout (for a person or a script), alone on its line.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", serving.url())?;
    stdout.flush()?;
    eprintln!(
        "squall: serving {} at the address above (open it in a browser; Ctrl-C stops)",
        args.notebook.display()
    );
    tokio::select! {
        served = serving.wait() => served?,
        signal = crate::interrupted() => {
            eprintln!("squall: stopped serving ({})", signal.name);
        }
    }
    Ok(())
}
