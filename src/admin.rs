//! The operator surface on the admin listener: a JSON API over the
//! dead-letter queue and source state, and a server-rendered dashboard.
//!
//! Authentication: when `admin.token` is set, every route here needs it,
//! as `Authorization: Bearer <token>` (API clients) or the cookie set by the
//! login page (browsers). Mutating requests not carrying a bearer token must
//! also carry `X-Hookd-Request: 1`, which a cross-site form cannot send, so
//! a page in the operator's browser cannot replay or purge behind their back.

mod dashboard;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::dlq::{self, BulkOp, Cursor, Filter};
use crate::http::{HttpResponse, error, json};
use crate::queue::SourceKeys;
use crate::verify::constant_time_eq;
use crate::{App, Source};

const COOKIE_NAME: &str = "hookd_admin";
pub const CSRF_HEADER: &str = "x-hookd-request";

/// Paths this module answers on the admin listener.
pub fn handles(path: &str) -> bool {
    path == "/"
        || path == "/login"
        || path == "/logout"
        || path.starts_with("/admin/")
        || path.starts_with("/ui/")
        || path.starts_with("/assets/")
}

pub async fn route(app: &Arc<App>, req: Request<Incoming>) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/assets/app.css") => {
            return asset("text/css; charset=utf-8", dashboard::CSS);
        }
        (&Method::GET, "/assets/app.js") => {
            return asset("text/javascript; charset=utf-8", dashboard::JS);
        }
        (&Method::GET, "/login") => return dashboard::login_page(None),
        (&Method::POST, "/login") => return login(app, req).await,
        (&Method::POST, "/logout") => return logout(),
        _ => {}
    }
    let auth = authenticate(app, &req);
    let is_api = path.starts_with("/admin/");
    if auth == Auth::Denied {
        return if is_api {
            error(StatusCode::UNAUTHORIZED, "admin token required")
        } else {
            redirect("/login")
        };
    }
    let mutating = method != Method::GET && method != Method::HEAD;
    if mutating && auth != Auth::Bearer && !req.headers().contains_key(CSRF_HEADER) {
        return error(
            StatusCode::FORBIDDEN,
            "send X-Hookd-Request: 1 (or a bearer token) with changes",
        );
    }
    let query = query_map(req.uri().query());
    if !is_api {
        return match (&method, path.as_str()) {
            (&Method::GET, "/") => dashboard::overview(app, &query).await,
            (&Method::GET, p) if p.starts_with("/ui/dlq/") => {
                match split_entry_path(&p["/ui/dlq/".len()..]) {
                    Some((source, id)) => dashboard::detail(app, source, id).await,
                    None => dashboard::not_found(),
                }
            }
            _ => dashboard::not_found(),
        };
    }
    api(app, &method, &path["/admin/".len()..], &query).await
}

async fn api(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> HttpResponse {
    let result = match (method, path) {
        (&Method::GET, "sources") => Ok(json(StatusCode::OK, &sources(app).await)),
        (&Method::GET, "dlq") => list(app, query).await,
        (&Method::POST, "dlq/replay") => bulk(app, query, BulkOp::Replay).await,
        (&Method::POST, "dlq/purge") => bulk(app, query, BulkOp::Purge).await,
        (_, p) if p.starts_with("dlq/") => {
            let rest = &p["dlq/".len()..];
            if let Some(entry) = rest.strip_suffix("/replay") {
                match (method, split_entry_path(entry)) {
                    (&Method::POST, Some((source, id))) => replay_one(app, source, id).await,
                    (_, Some(_)) => Ok(error(StatusCode::METHOD_NOT_ALLOWED, "use POST")),
                    (_, None) => Ok(error(StatusCode::NOT_FOUND, "not found")),
                }
            } else {
                match (method, split_entry_path(rest)) {
                    (&Method::GET, Some((source, id))) => show(app, source, id).await,
                    (&Method::DELETE, Some((source, id))) => delete_one(app, source, id).await,
                    (_, Some(_)) => Ok(error(StatusCode::METHOD_NOT_ALLOWED, "use GET or DELETE")),
                    (_, None) => Ok(error(StatusCode::NOT_FOUND, "not found")),
                }
            }
        }
        _ => Ok(error(StatusCode::NOT_FOUND, "not found")),
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "admin request failed");
        error(StatusCode::SERVICE_UNAVAILABLE, &format!("redis: {e}"))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No token configured.
    Open,
    Bearer,
    Cookie,
    Denied,
}

fn authenticate(app: &App, req: &Request<Incoming>) -> Auth {
    let token = app.config.admin.token.expose();
    if token.is_empty() {
        return Auth::Open;
    }
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Some(given) = bearer {
        return if token_matches(token, given) {
            Auth::Bearer
        } else {
            Auth::Denied
        };
    }
    let cookie = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned());
    match cookie {
        Some(given) if constant_time_eq(cookie_value(token).as_bytes(), given.as_bytes()) => {
            Auth::Cookie
        }
        _ => Auth::Denied,
    }
}

/// The cookie holds a digest of the token, never the token itself, so it
/// is always a valid cookie value and useless outside hookd.
fn cookie_value(token: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"hookd-admin-session:");
    ctx.update(token.as_bytes());
    hex::encode(ctx.finish())
}

/// Compares digests so neither content nor length leaks through timing.
fn token_matches(expected: &str, given: &str) -> bool {
    let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    constant_time_eq(digest(expected).as_ref(), digest(given).as_ref())
}

async fn login(app: &App, req: Request<Incoming>) -> HttpResponse {
    let body = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form = query_map(std::str::from_utf8(&body).ok());
    let given = form.get("token").map(String::as_str).unwrap_or("");
    let expected = app.config.admin.token.expose();
    if !expected.is_empty() && !token_matches(expected, given) {
        let mut page = dashboard::login_page(Some("That token is not right."));
        *page.status_mut() = StatusCode::UNAUTHORIZED;
        return page;
    }
    // HttpOnly keeps page scripts from reading the session, SameSite keeps
    // other sites from sending it.
    let mut response = redirect("/");
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict",
        cookie_value(given)
    )) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

fn logout() -> HttpResponse {
    let mut response = redirect("/login");
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("hookd_admin=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

pub fn redirect(to: &str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn query_map(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `{source}/{id}` with a valid stream id.
fn split_entry_path(rest: &str) -> Option<(&str, &str)> {
    let (source, id) = rest.split_once('/')?;
    dlq::valid_id(id).then_some((source, id))
}

pub fn filter_from(query: &HashMap<String, String>) -> Filter {
    let get = |k: &str| query.get(k).filter(|v| !v.is_empty()).cloned();
    Filter {
        source: get("source"),
        event_type: get("event_type").or_else(|| get("event")),
        reason: get("reason"),
    }
}

fn sorted_keys(app: &App) -> Vec<&SourceKeys> {
    let mut keys: Vec<&SourceKeys> = app.sources.values().map(|s| &s.keys).collect();
    keys.sort_by(|a, b| a.source.cmp(&b.source));
    keys
}

#[derive(Serialize)]
pub struct SourceView {
    pub name: String,
    pub backlog: Option<u64>,
    pub pending: Option<u64>,
    pub retrying: Option<u64>,
    pub dlq: Option<u64>,
    pub oldest_pending_age_ms: Option<u64>,
    pub destination: DestinationView,
}

#[derive(Serialize)]
pub struct DestinationView {
    pub url: String,
    pub state: &'static str,
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub last_success_ms: Option<u64>,
    pub last_failure_ms: Option<u64>,
    pub last_failure_status: Option<u64>,
}

#[derive(Serialize)]
pub struct SourcesView {
    pub redis: &'static str,
    pub sources: Vec<SourceView>,
}

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

pub async fn sources(app: &App) -> SourcesView {
    let mut names: Vec<&String> = app.sources.keys().collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let source: &Source = &app.sources[name];
        let stats = app.queue.stats(&source.keys).await.ok();
        let d = &source.destination;
        out.push(SourceView {
            name: name.clone(),
            backlog: stats.map(|s| s.backlog),
            pending: stats.map(|s| s.pending),
            retrying: stats.map(|s| s.retrying),
            dlq: stats.map(|s| s.dlq),
            oldest_pending_age_ms: stats.and_then(|s| s.oldest_age_ms),
            destination: DestinationView {
                url: source.config.destination.url.clone(),
                state: d.state(),
                in_flight: d.in_flight.load(Ordering::Relaxed),
                max_in_flight: source.config.destination.max_in_flight,
                last_success_ms: nonzero(d.last_success_ms.load(Ordering::Relaxed)),
                last_failure_ms: nonzero(d.last_failure_ms.load(Ordering::Relaxed)),
                last_failure_status: nonzero(d.last_failure_status.load(Ordering::Relaxed)),
            },
        });
    }
    SourcesView {
        redis: if app.status.redis_up() { "up" } else { "down" },
        sources: out,
    }
}

type ApiResult = Result<HttpResponse, crate::queue::QueueError>;

fn unknown_source(filter: &Filter, app: &App) -> Option<HttpResponse> {
    let source = filter.source.as_deref()?;
    (!app.sources.contains_key(source)).then(|| error(StatusCode::NOT_FOUND, "unknown source"))
}

pub fn page_args(query: &HashMap<String, String>) -> Result<(usize, Option<Cursor>), &'static str> {
    let limit = match query.get("limit").filter(|v| !v.is_empty()) {
        Some(v) => v.parse::<usize>().map_err(|_| "limit must be a number")?,
        None => 50,
    };
    let cursor = match query.get("cursor").filter(|v| !v.is_empty()) {
        Some(c) => Some(Cursor::parse(c).ok_or("cursor is not valid")?),
        None => None,
    };
    Ok((limit, cursor))
}

async fn list(app: &App, query: &HashMap<String, String>) -> ApiResult {
    let filter = filter_from(query);
    if let Some(response) = unknown_source(&filter, app) {
        return Ok(response);
    }
    let (limit, cursor) = match page_args(query) {
        Ok(args) => args,
        Err(message) => return Ok(error(StatusCode::BAD_REQUEST, message)),
    };
    let page = dlq::list(
        &app.queue,
        sorted_keys(app),
        &filter,
        cursor.as_ref(),
        limit,
    )
    .await?;
    Ok(json(StatusCode::OK, &page))
}

fn source_keys<'a>(app: &'a App, source: &str) -> Option<&'a SourceKeys> {
    app.sources.get(source).map(|s| &s.keys)
}

async fn show(app: &App, source: &str, id: &str) -> ApiResult {
    let Some(keys) = source_keys(app, source) else {
        return Ok(error(StatusCode::NOT_FOUND, "unknown source"));
    };
    Ok(match dlq::find(&app.queue, [keys], id).await? {
        Some(item) => json(StatusCode::OK, &item.detail()),
        None => error(StatusCode::NOT_FOUND, "not in the dead-letter queue"),
    })
}

async fn replay_one(app: &App, source: &str, id: &str) -> ApiResult {
    let Some(keys) = source_keys(app, source) else {
        return Ok(error(StatusCode::NOT_FOUND, "unknown source"));
    };
    Ok(match app.queue.replay(keys, id).await? {
        Some(entry_id) => {
            tracing::info!(source, dlq_id = id, entry_id = %entry_id, "replayed from the dead-letter queue");
            json(
                StatusCode::OK,
                &serde_json::json!({"replayed": true, "source": source, "id": id, "entry_id": entry_id}),
            )
        }
        None => error(StatusCode::NOT_FOUND, "not in the dead-letter queue"),
    })
}

async fn delete_one(app: &App, source: &str, id: &str) -> ApiResult {
    let Some(keys) = source_keys(app, source) else {
        return Ok(error(StatusCode::NOT_FOUND, "unknown source"));
    };
    Ok(if app.queue.dlq_delete(keys, id).await? {
        tracing::info!(source, dlq_id = id, "deleted from the dead-letter queue");
        json(
            StatusCode::OK,
            &serde_json::json!({"deleted": true, "source": source, "id": id}),
        )
    } else {
        error(StatusCode::NOT_FOUND, "not in the dead-letter queue")
    })
}

async fn bulk(app: &App, query: &HashMap<String, String>, op: BulkOp) -> ApiResult {
    let filter = filter_from(query);
    if let Some(response) = unknown_source(&filter, app) {
        return Ok(response);
    }
    let dry_run = query
        .get("dry_run")
        .is_some_and(|v| v == "true" || v == "1");
    let result = dlq::bulk(&app.queue, sorted_keys(app), &filter, op, dry_run).await?;
    let mut body = serde_json::json!({"matched": result.matched, "dry_run": dry_run});
    body[op.verb()] = serde_json::json!(result.done);
    Ok(json(StatusCode::OK, &body))
}
