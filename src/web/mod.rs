//! The status page on the admin endpoint's `/`: the clusters on a world map coloured by
//! state, services with their shards and health, the proxy's routes and backends, recent
//! changes, and an "ask as a client from…" box that runs `/api/v1/explain`.
//!
//! Layout:
//! - `mod.rs`: the router — the page's files, embedded in the binary (no CDN, works
//!   offline), and `/api/v1/changes`.
//! - `changes`: the bounded ring of recent changes.
//! - `feed`: the projection of the table that writes the ring.
//! - `index.html`, `app.js`, `style.css`: the page (plain JavaScript and SVG, no
//!   library); `world.svg`: the map's land, generated once by `world.mjs` from Natural
//!   Earth's 110m data (public domain) as the npm package world-atlas (ISC) ships it.
//!
//! The page polls `/api/v1/changes` every second rather than holding a server-sent
//! event stream: the admin endpoint shuts down gracefully, waiting for every response to
//! finish, and a stream that never finishes would hold shutdown up. A poll is one small
//! response; the page refetches the table's documents only when the version it reports
//! moved.

mod changes;
mod feed;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use meridian_discovery::Table;
use tokio_util::sync::{CancellationToken, DropGuard};

use changes::ChangeLog;

/// How many changes the page can look back on: a screenful or two, enough to see what
/// led up to the present without the ring growing with the table.
const CHANGES_KEPT: usize = 200;

#[derive(Clone)]
struct WebState {
    log: Arc<ChangeLog>,
    /// Stops the change feed once the last clone of the router is dropped (the admin
    /// endpoint stopped).
    _feed: Arc<DropGuard>,
}

/// The page's routes, with the change feed that follows `table` for as long as the
/// router lives. Merged into the admin router, whatever its state type.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(table: Table) -> Router<S> {
    let log = Arc::new(ChangeLog::new(CHANGES_KEPT));
    let stop = CancellationToken::new();
    tokio::spawn(feed::run(table, log.clone(), stop.clone()));
    let state = WebState { log, _feed: Arc::new(stop.drop_guard()) };
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", include_str!("index.html")) }))
        .route("/web/app.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("app.js")) }))
        .route("/web/style.css", get(|| async { asset("text/css; charset=utf-8", include_str!("style.css")) }))
        .route("/web/world.svg", get(|| async { asset("image/svg+xml", include_str!("world.svg")) }))
        .route("/api/v1/changes", get(recent_changes))
        .with_state(state)
}

/// An embedded file. `no-cache`: a browser revalidates, so a new binary's page is seen
/// at the next load rather than after some heuristic expiry.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

#[derive(serde::Deserialize)]
struct ChangesQuery {
    /// The last entry number the page has; 0 (the default) for everything kept.
    #[serde(default)]
    after: u64,
}

/// `/api/v1/changes?after=N`: the entries after `N`, the last number, and the table
/// version the feed has caught up with.
async fn recent_changes(State(s): State<WebState>, Query(q): Query<ChangesQuery>) -> Json<changes::Page> {
    Json(s.log.since(q.after))
}
