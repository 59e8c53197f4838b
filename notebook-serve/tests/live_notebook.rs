//! The live notebook without a browser: edits are saved and run, an edit of
//! an older text or one that breaks the notebook is refused and not saved,
//! another editor's change is read back, and Cancel stops a running cell.

use std::path::Path;
use std::time::Duration;

use squall_jobs::SessionOptions;
use squall_notebook::notebook_edit::Edit;
use squall_notebook_serve::live_events::LiveEvent;
use squall_notebook_serve::live_notebook::EditRefused;
use squall_notebook_serve::{LiveNotebook, RunSettings};
use tokio::sync::broadcast::Receiver;

fn live(path: &Path, cache: &Path) -> LiveNotebook {
    LiveNotebook::load(
        path,
        Vec::new(),
        RunSettings {
            session: SessionOptions::default(),
            cache: Some((cache.display().to_string(), u64::MAX)),
            concurrent_cells: 4,
        },
    )
    .unwrap()
}

/// The next event `pick` keeps, within 60 s.
async fn next<T>(events: &mut Receiver<LiveEvent>, pick: impl Fn(&LiveEvent) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.recv().await.unwrap();
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    })
    .await
    .expect("the event came within 60 s")
}

/// The HTML of block `index` once it is drawn as ended.
async fn block_html(events: &mut Receiver<LiveEvent>, index: usize) -> String {
    next(events, |e| match e {
        LiveEvent::Block {
            index: i,
            html,
            state,
            ..
        } if *i == index && state != "pending" => Some(html.clone()),
        _ => None,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_are_saved_and_run_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.md");
    let text = "```sql a\nSELECT 20 AS v\n```\n\n```sql\nSELECT v + 1 AS w FROM a\n```\n";
    std::fs::write(&path, text).unwrap();
    let live = live(&path, &dir.path().join("cache"));
    let mut events = live.subscribe();
    live.start();
    assert!(
        block_html(&mut events, 1)
            .await
            .contains("<td class=\"num\">21</td>")
    );

    let generation = live.snapshot().generation;
    let edit = Edit::Replace {
        block: 0,
        text: "```sql a\nSELECT 40 AS v\n```".into(),
    };
    let newer = live.edit(generation, &edit).unwrap();
    assert_eq!(newer, generation + 1);
    assert!(
        block_html(&mut events, 1)
            .await
            .contains("<td class=\"num\">41</td>")
    );
    let saved = std::fs::read_to_string(&path).unwrap();
    assert_eq!(saved, text.replace("SELECT 20", "SELECT 40"));

    // An edit made on the older text: refused.
    assert_eq!(
        live.edit(generation, &edit),
        Err(EditRefused::Stale { current: newer })
    );
    // An edit that breaks the notebook: refused, the file as it was.
    let broken = Edit::Replace {
        block: 0,
        text: "```sql a\nSELECT 1".into(),
    };
    let refused = live.edit(newer, &broken).unwrap_err();
    assert!(
        refused.message().starts_with("not saved: ") && refused.message().contains("not closed"),
        "{}",
        refused.message()
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), saved);

    // Another editor's change: read back, run, shown.
    std::fs::write(&path, saved.replace("v + 1", "v + 2")).unwrap();
    assert!(live.reload_if_changed());
    assert!(!live.reload_if_changed(), "read once");
    assert!(
        block_html(&mut events, 1)
            .await
            .contains("<td class=\"num\">42</td>")
    );
    // One that does not parse: the page is told, edits wait for a fix.
    std::fs::write(&path, "```sql\nSELECT 1\n").unwrap();
    assert!(live.reload_if_changed());
    let snapshot = live.snapshot();
    assert!(
        snapshot
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("not closed"))
    );
    assert!(matches!(
        live.edit(snapshot.generation, &edit),
        Err(EditRefused::Broken(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_cell() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.md");
    // Ten billion rows: it runs until cancelled.
    std::fs::write(
        &path,
        "```sql\nSELECT count(*) AS n FROM generate_series(1, 100000) a, generate_series(1, 100000) b\n```\n",
    )
    .unwrap();
    let live = live(&path, &dir.path().join("cache"));
    let mut events = live.subscribe();
    live.start();
    next(&mut events, |e| {
        matches!(e, LiveEvent::Progress { index: 0, .. }).then_some(())
    })
    .await;
    assert!(live.cancel());
    let html = block_html(&mut events, 0).await;
    assert!(html.contains("cancelled before it ended"), "{html}");
    let failures = next(&mut events, |e| match e {
        LiveEvent::RunEnded {
            cancelled: true,
            failures,
            ..
        } => Some(*failures),
        _ => None,
    })
    .await;
    assert_eq!(failures, 1, "the one cell did not run to its end");
    assert!(!live.cancel(), "nothing runs any more");
    assert!(!live.snapshot().running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_cell_stops_it_and_its_readers_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("three.md");
    std::fs::write(
        &path,
        "```sql slow\nSELECT count(*) AS n FROM generate_series(1, 100000) a, generate_series(1, 100000) b\n```\n\n\
         ```sql\nSELECT n FROM slow\n```\n\n\
         ```sql\nSELECT 6 * 7 AS answer\n```\n",
    )
    .unwrap();
    let live = live(&path, &dir.path().join("cache"));
    let mut events = live.subscribe();
    live.start();
    let generation = live.snapshot().generation;
    next(&mut events, |e| {
        matches!(e, LiveEvent::Progress { index: 0, .. }).then_some(())
    })
    .await;
    assert!(
        !live.cancel_cell(generation + 1, 0),
        "an older page names no cell"
    );
    assert!(!live.cancel_cell(generation, 7), "no such block");
    assert!(live.cancel_cell(generation, 0));
    let (failures, cancelled) = next(&mut events, |e| match e {
        LiveEvent::RunEnded {
            failures,
            cancelled,
            ..
        } => Some((*failures, *cancelled)),
        _ => None,
    })
    .await;
    assert_eq!((failures, cancelled), (2, false));
    let blocks = live.snapshot().blocks;
    let states: Vec<&str> = blocks.iter().map(|b| b.state.as_str()).collect();
    assert_eq!(states, ["skipped", "skipped", "done"]);
    assert!(
        blocks[0].html.contains("cancelled before it ended"),
        "{}",
        blocks[0].html
    );
    assert!(
        blocks[1].html.contains("reads cell 'slow'"),
        "{}",
        blocks[1].html
    );
}
