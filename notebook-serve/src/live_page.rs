//! The live page: a shell whose script draws the notebook from the
//! server's events. Its style and script are in the binary and inline:
//! the page fetches nothing but the notebook's own events and answers.

use squall_notebook::render_html::{STYLE, escape};

const LIVE_STYLE: &str = include_str!("assets/live.css");
const LIVE_SCRIPT: &str = include_str!("assets/live.js");

/// The page for the notebook at `path` (its title until the first snapshot).
pub fn live_page(path: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><style>{STYLE}{LIVE_STYLE}</style></head><body>\
         <header id=\"bar\"><span class=\"title\">{title}</span><span id=\"status\">connecting</span>\
         <button id=\"cancel\" type=\"button\" hidden title=\"Stop the running cells\">Cancel</button></header>\
         <div id=\"problem\" hidden></div><main id=\"blocks\"></main>\
         <div id=\"tooltip\" hidden></div><script>{LIVE_SCRIPT}</script></body></html>\n",
        title = escape(path),
    )
}
