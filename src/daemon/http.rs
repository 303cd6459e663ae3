//! The daemon's HTTP endpoints: immediate backups and their listing (bearer token, compared in
//! constant time; without a configured token the mutating endpoints are off), liveness,
//! readiness, Prometheus metrics, and the status page with its JSON (read-only, no token). The
//! server takes a bound listener and stops on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::scope::Scope;
use super::state::{Attempt, Daemon, StartError, Trigger};
use crate::catalog;
use crate::pg::ConnParams;

/// The routes, for `serve` and for tests.
pub fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/backups", get(list).post(trigger))
        .route("/api/v1/backups/{id}", get(show))
        .route("/api/v1/databases", get(databases))
        .route(
            "/api/v1/databases/{database}/backups",
            get(list_database).post(trigger_database),
        )
        .with_state(daemon)
}

/// Serve until the daemon's shutdown signal fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    daemon: Arc<Daemon>,
) -> Result<(), std::io::Error> {
    let mut shutdown = daemon.shutdown.clone();
    axum::serve(listener, router(daemon))
        .with_graceful_shutdown(async move {
            shutdown.wait().await;
        })
        .await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Check the bearer token. `mutating`: refuse outright when no token is configured.
#[allow(clippy::result_large_err)]
fn authorize(daemon: &Daemon, headers: &HeaderMap, mutating: bool) -> Result<(), Response> {
    let Some(expected) = &daemon.settings().api_token else {
        if mutating {
            return Err(error(
                StatusCode::FORBIDDEN,
                "the API is read-only: set PGKEEP_API_TOKEN to enable starting backups",
            ));
        }
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    // Compare digests: constant time, and the length of the token does not leak either.
    let ok = given.is_some_and(|g| {
        let a = Sha256::digest(g.as_bytes());
        let b = Sha256::digest(expected.expose().as_bytes());
        bool::from(a.ct_eq(&b))
    });
    if ok {
        Ok(())
    } else {
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"pgkeep\""),
        );
        Err(r)
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(daemon): State<Arc<Daemon>>) -> Response {
    let s = daemon.settings();
    let (dir, s3) = (s.backup_dir.clone(), s.s3.clone());
    let storage = tokio::task::spawn_blocking(move || {
        crate::storage::open(&dir, &s3).and_then(|store| store.check_writable())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    // One database: it accepts a connection. The set: the server's list of databases can be
    // read (the set is read from it at every run).
    let (params, set) = match daemon.scope() {
        Scope::One(db) => (ConnParams::from_settings(s, db), false),
        Scope::Set(_) => (ConnParams::from_settings(s, &s.database), true),
    };
    let timeout = Duration::from_secs(s.connect_timeout.clamp(1, 10) + 1);
    let probe = async {
        match set {
            false => params.connect().await.map(drop),
            true => crate::databases::server_databases(&params).await.map(drop),
        }
    };
    let database = match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer from {} within {timeout:?}",
            params.target()
        )),
    };
    let check = |r: &Result<(), String>| match r {
        Ok(()) => json!({ "ok": true }),
        Err(e) => json!({ "ok": false, "error": e }),
    };
    let ready = storage.is_ok() && database.is_ok();
    let body = json!({
        "ready": ready,
        "databases": daemon.databases(),
        "checks": {
            "config": { "ok": true },
            "storage": check(&storage),
            "database": check(&database),
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(daemon): State<Arc<Daemon>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        daemon.metrics_text(),
    )
        .into_response()
}

/// The backups of `db`, or (`None`) of every database of the daemon and the globals.
async fn catalog_entries(
    daemon: &Daemon,
    db: Option<String>,
) -> Result<Vec<catalog::Entry>, Response> {
    let s = daemon.settings();
    let (dir, s3) = (s.backup_dir.clone(), s.s3.clone());
    let host = s.host.clone();
    let db = db.or_else(|| match daemon.scope() {
        Scope::One(db) => Some(db.clone()),
        Scope::Set(_) => None,
    });
    tokio::task::spawn_blocking(move || {
        let store = crate::storage::open(&dir, &s3).map_err(|e| e.to_string())?;
        let mut entries = catalog::list(&*store, Some(&host)).map_err(|e| e.to_string())?;
        if let Some(db) = db {
            entries.retain(|e| e.database.as_deref() == Some(db.as_str()));
        }
        Ok::<_, String>(entries)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

/// `?database=NAME`: the database a request is about.
#[derive(Debug, Default, serde::Deserialize)]
struct DatabaseQuery {
    database: Option<String>,
}

async fn list(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Query(q): Query<DatabaseQuery>,
) -> Response {
    listing(daemon, headers, q.database).await
}

async fn list_database(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(db): Path<String>,
) -> Response {
    listing(daemon, headers, Some(db)).await
}

/// The attempts and backups of `db`, or of every database of the daemon.
async fn listing(daemon: Arc<Daemon>, headers: HeaderMap, db: Option<String>) -> Response {
    if let Err(r) = authorize(&daemon, &headers, false) {
        return r;
    }
    if let Some(db) = &db
        && let Err(r) = known_database(&daemon, db, false).await
    {
        return r;
    }
    let backups = match catalog_entries(&daemon, db.clone()).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (running, attempts) = daemon.attempts();
    let mine = |a: &Attempt| db.as_ref().is_none_or(|d| *d == a.database);
    let running: Vec<Attempt> = running.into_iter().filter(|a| mine(a)).collect();
    let database = db.clone().or_else(|| match daemon.scope() {
        Scope::One(db) => Some(db.clone()),
        Scope::Set(_) => None,
    });
    axum::Json(json!({
        "database": database,
        "databases": daemon.databases(),
        // The one running backup (of the database), as before the set; all of them beside it.
        "running": running.first(),
        "running_all": running,
        "attempts": attempts.into_iter().filter(|a| mine(a)).collect::<Vec<_>>(),
        "backups": backups,
    }))
    .into_response()
}

/// What the set means (as last read): its databases, those gone and those missing.
async fn databases(State(daemon): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&daemon, &headers, false) {
        return r;
    }
    axum::Json(daemon.known()).into_response()
}

/// `db` is one of the daemon's databases; else a 404 naming them. `refresh` (a request with the
/// token): the set is read again when `db` is not known yet, so a database created since the
/// last run is found.
#[allow(clippy::result_large_err)]
async fn known_database(daemon: &Daemon, db: &str, refresh: bool) -> Result<(), Response> {
    if daemon.databases().iter().any(|d| d == db) {
        return Ok(());
    }
    let known = match daemon.scope() {
        Scope::Set(_) if refresh => daemon
            .resolve()
            .await
            .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, e))?,
        _ => daemon.known(),
    };
    if known.databases.iter().any(|d| d == db) {
        return Ok(());
    }
    Err(error(
        StatusCode::NOT_FOUND,
        format!(
            "this daemon does not back up database \"{db}\" (it backs up: {})",
            known.databases.join(", ")
        ),
    ))
}

async fn show(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&daemon, &headers, false) {
        return r;
    }
    let (running, attempts) = daemon.attempts();
    let attempt = running.into_iter().chain(attempts).find(|a| a.id == id);
    let backup = match catalog_entries(&daemon, None).await {
        Ok(b) => b.into_iter().find(|e| e.id == id),
        Err(r) => return r,
    };
    if attempt.is_none() && backup.is_none() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no backup or attempt with id {id}"),
        );
    }
    axum::Json(json!({ "id": id, "attempt": attempt, "backup": backup })).into_response()
}

/// The status page: what the daemon knows, readable without a token.
async fn page(State(daemon): State<Arc<Daemon>>) -> Response {
    let summary = daemon.status();
    let s = daemon.settings();
    let view = super::page::View {
        host: &s.host,
        tz: &s.timezone,
        writable: s.api_token.is_some(),
    };
    super::page::response(&summary, &view)
}

/// The page's data as JSON.
async fn status(State(daemon): State<Arc<Daemon>>) -> Response {
    let mut r = axum::Json(daemon.status()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The JSON body of `POST /api/v1/backups` (optional): `{"database": "NAME"}`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    database: Option<String>,
}

async fn trigger(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Query(q): Query<DatabaseQuery>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorize(&daemon, &headers, true) {
        return r;
    }
    let from_body = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => match serde_json::from_slice::<TriggerBody>(&body) {
            Ok(b) => b.database,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not {{\"database\": \"NAME\"}}: {e}"),
                );
            }
        },
    };
    let db = match (q.database, from_body) {
        (Some(a), Some(b)) if a != b => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("two databases named: \"{a}\" (query) and \"{b}\" (body)"),
            );
        }
        (a, b) => a.or(b),
    };
    start(daemon, db).await
}

async fn trigger_database(
    State(daemon): State<Arc<Daemon>>,
    headers: HeaderMap,
    Path(db): Path<String>,
) -> Response {
    if let Err(r) = authorize(&daemon, &headers, true) {
        return r;
    }
    start(daemon, Some(db)).await
}

/// Start a backup of `db` (the one database when `None`, which a set refuses).
async fn start(daemon: Arc<Daemon>, db: Option<String>) -> Response {
    let db = match (db, daemon.scope()) {
        (Some(db), _) => db,
        (None, Scope::One(db)) => db.clone(),
        (None, Scope::Set(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "this daemon backs up a set of databases: name one (POST /api/v1/databases/NAME/backups, ?database=NAME or {\"database\": \"NAME\"})",
            );
        }
    };
    if let Err(r) = known_database(&daemon, &db, true).await {
        return r;
    }
    match daemon.start_backup(&db, Trigger::Api) {
        Ok((id, _handle)) => {
            let location = format!("/api/v1/backups/{id}");
            let mut r = (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "id": id,
                    "database": db,
                    "status": "running",
                    "location": location,
                })),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        Err(StartError::Busy { running, id }) => (
            StatusCode::CONFLICT,
            axum::Json(json!({
                "error": format!("a backup is already running: {running}"),
                "running": running,
                "running_id": id,
            })),
        )
            .into_response(),
        Err(StartError::ShuttingDown) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        Err(StartError::Failed(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
