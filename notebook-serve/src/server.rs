//! The HTTP server: bound to 127.0.0.1, every request checked for the
//! token and for a Host header naming that address (so that a page of
//! another site, reached through a rebound DNS name, gets nothing), and
//! these routes only:
//!
//! - `GET /`: the live page.
//! - `GET /api/events`: server-sent events ([`crate::live_events`]).
//! - `POST /api/edit`: `{"generation": N, "edit": {...}}` (see
//!   [`squall_notebook::notebook_edit::Edit`]); saves, then runs.
//! - `POST /api/run`: runs the notebook again as it is.
//! - `POST /api/cancel`: stops the running cells.
//! - `POST /api/cancel-cell`: `{"generation": N, "block": B}` stops one
//!   running cell (and keeps its readers from running).
//!
//! It serves no file: the page is in the binary, and cells read only what
//! the notebook declares or what lies in the notebook's folder.

use std::convert::Infallible;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use squall_notebook::notebook_edit::Edit;
use tokio::sync::broadcast::error::RecvError;

use crate::access_token::AccessToken;
use crate::error::{Result, ServeError};
use crate::live_events::LiveEvent;
use crate::live_notebook::{EditRefused, LiveNotebook, RunSettings};
use crate::live_page::live_page;

/// How often the notebook's file is looked at for another editor's changes.
pub const FILE_POLL: Duration = Duration::from_millis(300);

/// What `squall notebook serve` serves, and how.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub notebook: PathBuf,
    /// `NAME=VALUE` parameters.
    pub sets: Vec<String>,
    pub settings: RunSettings,
    /// 0: any free port.
    pub port: u16,
}

/// A running server.
#[derive(Debug)]
pub struct Serving {
    url: String,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Serving {
    /// The page's address, token included: what to open in a browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until the server fails (or the process is stopped).
    pub async fn wait(self) -> Result<()> {
        match self.server.await {
            Ok(result) => result.map_err(ServeError::Serve),
            Err(e) => Err(ServeError::Serve(std::io::Error::other(e.to_string()))),
        }
    }
}

#[derive(Debug, Clone)]
struct App {
    live: LiveNotebook,
    token: AccessToken,
    /// Host headers this server answers to.
    hosts: Vec<String>,
}

/// Loads the notebook, starts its first run, and serves it on 127.0.0.1.
pub async fn serve(options: ServeOptions) -> Result<Serving> {
    let live = LiveNotebook::load(&options.notebook, options.sets, options.settings)?;
    let address = format!("127.0.0.1:{}", options.port);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|source| ServeError::Bind {
            address: address.clone(),
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { address, source })?
        .port();
    let app = App {
        live: live.clone(),
        token: AccessToken::random(),
        hosts: vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")],
    };
    let url = format!("http://127.0.0.1:{port}/?token={}", app.token.as_str());
    let router = Router::new()
        .route("/", get(page))
        .route("/api/events", get(events))
        .route("/api/edit", post(edit))
        .route("/api/run", post(run))
        .route("/api/cancel", post(cancel))
        .route("/api/cancel-cell", post(cancel_cell))
        .layer(middleware::from_fn_with_state(app.clone(), admit))
        .with_state(app);
    live.start();
    let watched = live.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FILE_POLL);
        loop {
            every.tick().await;
            watched.reload_if_changed();
        }
    });
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Serving { url, server })
}

/// Lets through requests with the token (`?token=` or an
/// `x-squall-token` header) and this server's own Host.
async fn admit(State(app): State<App>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !app.hosts.iter().any(|h| h == host) {
        return (
            StatusCode::FORBIDDEN,
            format!("this notebook answers only at {}\n", app.hosts[0]),
        )
            .into_response();
    }
    let from_query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_string)
    });
    let from_header = request
        .headers()
        .get("x-squall-token")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if !from_query
        .into_iter()
        .chain(from_header)
        .any(|t| app.token.admits(&t))
    {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: open the address `squall notebook serve` printed\n",
        )
            .into_response();
    }
    next.run(request).await
}

async fn page(State(app): State<App>) -> Html<String> {
    Html(live_page(&app.live.snapshot().title))
}

async fn events(
    State(app): State<App>,
) -> Sse<impl Stream<Item = std::result::Result<Event, Infallible>>> {
    // Subscribed before the snapshot is taken: nothing falls between.
    let receiver = app.live.subscribe();
    let first = LiveEvent::Snapshot(app.live.snapshot());
    let stream = futures::stream::unfold(
        (Some(first), receiver, app.live),
        |(first, mut receiver, live)| async move {
            if let Some(event) = first {
                return Some((sse(&event), (None, receiver, live)));
            }
            let event = match receiver.recv().await {
                Ok(event) => event,
                // Fell behind: the whole notebook again.
                Err(RecvError::Lagged(_)) => LiveEvent::Snapshot(live.snapshot()),
                Err(RecvError::Closed) => return None,
            };
            Some((sse(&event), (None, receiver, live)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn sse(event: &LiveEvent) -> std::result::Result<Event, Infallible> {
    Ok(Event::default()
        .event(event.name())
        .data(serde_json::to_string(event).unwrap_or_default()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EditRequest {
    generation: u64,
    edit: Edit,
}

async fn edit(State(app): State<App>, axum::Json(request): axum::Json<EditRequest>) -> Response {
    match app.live.edit(request.generation, &request.edit) {
        Ok(generation) => axum::Json(json!({ "generation": generation })).into_response(),
        Err(refused) => {
            let status = match refused {
                EditRefused::Stale { .. } | EditRefused::Broken(_) => StatusCode::CONFLICT,
                EditRefused::Invalid(_) => StatusCode::BAD_REQUEST,
                EditRefused::Write(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if let EditRefused::Stale { .. } = refused {
                // The page shows an old text: send it the current one.
                app.live.resend_snapshot();
            }
            (status, axum::Json(json!({ "problem": refused.message() }))).into_response()
        }
    }
}

async fn run(State(app): State<App>) -> impl IntoResponse {
    app.live.rerun();
    axum::Json(json!({}))
}

async fn cancel(State(app): State<App>) -> impl IntoResponse {
    axum::Json(json!({ "cancelled": app.live.cancel() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelCellRequest {
    generation: u64,
    block: usize,
}

async fn cancel_cell(
    State(app): State<App>,
    axum::Json(request): axum::Json<CancelCellRequest>,
) -> impl IntoResponse {
    axum::Json(json!({ "cancelled": app.live.cancel_cell(request.generation, request.block) }))
}
