//! The operator surface on the admin listener: a JSON API over the
//! sources' state, the dead-letter queue ([`api`]) and the event log
//! ([`log_api`]), and a server-rendered dashboard ([`dashboard`]).
//!
//! Authentication ([`auth`]): when `admin.token` is set, every route here
//! needs it, as `Authorization: Bearer <token>` or the login page's cookie.
//! Mutating requests not carrying a bearer token must also carry
//! `X-Hookd-Request: 1`.

pub(crate) mod api;
mod auth;
mod dashboard;
pub(crate) mod log_api;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::config::Secret;
use crate::dlq::{Filter, Targets};
use crate::listing::{Cursor, DEFAULT_PAGE};
use crate::queue::{Queue, QueueError};
use crate::response::{HttpResponse, error, redirect, with_type};
use crate::source::Sources;
use crate::status::Status;
use auth::{Auth, CSRF_HEADER, Gate};

pub use api::SourcesView;

/// Everything the admin API and the dashboard use.
pub struct AdminHandle {
    queue: Queue,
    sources: Arc<Sources>,
    /// The sources and their destinations, for DLQ operations.
    targets: Arc<Targets>,
    status: Arc<Status>,
    gate: Gate,
    /// Bulk operations, run apart from their requests (see
    /// [`AdminHandle::run_to_end`]); shutdown waits for them.
    operations: TaskTracker,
}

/// Paths this module answers on the admin listener.
pub fn handles(path: &str) -> bool {
    path == "/"
        || path == "/events"
        || path.starts_with("/events/")
        || path == "/dlq"
        || path == "/login"
        || path == "/logout"
        || path.starts_with("/admin/")
        || path.starts_with("/ui/")
        || path.starts_with("/assets/")
}

impl AdminHandle {
    /// The source a request names (in its path or its filter), or 404.
    fn named_source(&self, name: &str) -> Result<&Arc<crate::source::Source>, Refusal> {
        self.sources
            .get(name)
            .ok_or_else(|| Refusal::not_found("unknown source"))
    }

    pub fn new(
        queue: Queue,
        sources: Arc<Sources>,
        status: Arc<Status>,
        token: Secret,
        operations: TaskTracker,
    ) -> Self {
        let targets = Targets::new(sources.iter().map(|source| {
            let names = source.destination_names().map(str::to_owned).collect();
            (source.keys.clone(), names)
        }));
        Self {
            queue,
            sources,
            targets: Arc::new(targets),
            status,
            gate: Gate::new(token),
            operations,
        }
    }

    /// Runs a bulk operation to its end even if its client goes away: the
    /// request's future is dropped with its connection, and an operation
    /// stopped there (between its atomic steps) would be half done with
    /// nothing said. Its result is logged by the operation itself.
    async fn run_to_end<T>(
        &self,
        operation: impl Future<Output = Result<T, QueueError>> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
    {
        match self.operations.spawn(operation).await {
            Ok(result) => result.map_err(ApiError::Redis),
            Err(e) => Err(ApiError::Refused(Refusal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the bulk operation stopped: {e}"),
            })),
        }
    }

    /// Answers `req`, whose path (normalized by the listener) is `path`.
    pub async fn route(&self, path: &str, req: Request<Incoming>) -> HttpResponse {
        let method = req.method().clone();
        match (&method, path) {
            (&Method::GET, "/assets/app.css") => {
                return asset("text/css; charset=utf-8", dashboard::CSS);
            }
            (&Method::GET, "/assets/app.js") => {
                return asset("text/javascript; charset=utf-8", dashboard::JS);
            }
            (&Method::GET, "/login") => return dashboard::login_page(None),
            (&Method::POST, "/login") => return self.gate.login(req).await,
            (&Method::POST, "/logout") => return auth::logout(),
            _ => {}
        }
        let auth = self.gate.check(&req);
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
        if method == Method::GET && reads_redis(path) && self.status.redis_known_down() {
            let why = self.status.why_redis_is_away();
            return if is_api {
                api::redis_away(&why)
            } else {
                dashboard::redis_away(&why)
            };
        }
        if !is_api {
            return match (&method, path) {
                (&Method::GET, "/") => dashboard::overview(self, &query).await,
                (&Method::GET, "/events") => dashboard::events(self, &query).await,
                (&Method::GET, "/dlq") => dashboard::dlq(self, &query).await,
                (&Method::GET, p) if p.starts_with("/events/") => {
                    match split_entry_path(&p["/events/".len()..]) {
                        Some((source, id)) => dashboard::event(self, source, id, &query).await,
                        None => dashboard::not_found(),
                    }
                }
                (&Method::GET, p) if p.starts_with("/ui/dlq/") => {
                    match split_entry_path(&p["/ui/dlq/".len()..]) {
                        Some((source, id)) => dashboard::detail(self, source, id).await,
                        None => dashboard::not_found(),
                    }
                }
                _ => dashboard::not_found(),
            };
        }
        api::route(self, &method, &path["/admin/".len()..], &query).await
    }
}

/// Reads with nothing to answer without Redis: while Redis is known to be
/// away they say so at once, with why, instead of after the command
/// timeout. The overview and `/admin/sources` answer from what they know
/// without Redis; changes still try, as fred may ride out a blip.
fn reads_redis(path: &str) -> bool {
    const EXACT: [&str; 5] = [
        "/events",
        "/dlq",
        "/admin/events",
        "/admin/dlq",
        "/admin/stats",
    ];
    const UNDER: [&str; 4] = ["/events/", "/ui/dlq/", "/admin/events/", "/admin/dlq/"];
    EXACT.contains(&path) || UNDER.iter().any(|prefix| path.starts_with(prefix))
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    with_type(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    )
}

pub fn query_map(query: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Why a request's filter is refused.
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    pub fn response(&self) -> HttpResponse {
        error(self.status, &self.message)
    }
}

/// Why an API request got no answer of its own: the request was refused,
/// or Redis failed. Handlers return it with `?` and `answer` says which.
pub enum ApiError {
    Refused(Refusal),
    Redis(crate::queue::QueueError),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(error: crate::queue::QueueError) -> Self {
        Self::Redis(error)
    }
}

pub type ApiResult = Result<HttpResponse, ApiError>;

/// A listing request's `limit` and `cursor` (the DLQ's and the event
/// log's alike).
pub fn page_args(query: &HashMap<String, String>) -> Result<(usize, Option<Cursor>), &'static str> {
    let limit = match query.get("limit").filter(|v| !v.is_empty()) {
        Some(v) => v.parse::<usize>().map_err(|_| "limit must be a number")?,
        None => DEFAULT_PAGE,
    };
    let cursor = match query.get("cursor").filter(|v| !v.is_empty()) {
        Some(c) => Some(Cursor::parse(c).ok_or("cursor is not valid")?),
        None => None,
    };
    Ok((limit, cursor))
}

/// The query parameters a listing takes besides its filter.
pub const PAGE_PARAMS: [&str; 2] = ["limit", "cursor"];

/// Refuses a query parameter the request does not take: a misspelt
/// filter (`sorce=stripe`) would otherwise be ignored, widening a bulk
/// replay or purge to every match and making a listing look filtered
/// when it is not. `event` is accepted wherever `event_type` is, as its
/// short form.
pub fn only_params(query: &HashMap<String, String>, groups: &[&[&str]]) -> Result<(), Refusal> {
    let takes = |name: &str| {
        groups
            .iter()
            .any(|g| g.contains(&name) || (name == "event" && g.contains(&"event_type")))
    };
    // The first in name order, so the answer does not depend on hashing.
    let Some(first) = query.keys().map(String::as_str).filter(|n| !takes(n)).min() else {
        return Ok(());
    };
    let known: Vec<&str> = groups.iter().flat_map(|g| g.iter().copied()).collect();
    let takes = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    Err(Refusal::bad_request(format!(
        "unknown query parameter {first:?}; this request takes {takes}"
    )))
}

/// The query parameter of a bulk request that only counts.
pub const DRY_RUN: [&str; 1] = ["dry_run"];

/// A bulk request's `dry_run`. Anything but true/1 or false/0 (or absent)
/// is refused: a mistyped `dry_run=yes` must not replay or purge for real.
pub fn dry_run(query: &HashMap<String, String>) -> Result<bool, Refusal> {
    let Some(value) = query.get(DRY_RUN[0]).filter(|v| !v.is_empty()) else {
        return Ok(false);
    };
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Refusal::bad_request(format!(
            "dry_run must be true or false, not {value:?}"
        ))),
    }
}

/// `{source}/{id}` with a valid stream id.
fn split_entry_path(rest: &str) -> Option<(&str, &str)> {
    let (source, id) = rest.split_once('/')?;
    crate::dlq::valid_id(id).then_some((source, id))
}

/// The query parameters of a dead-letter filter.
pub const DLQ_FILTER: [&str; 4] = ["source", "destination", "event_type", "reason"];

fn filter_from(query: &HashMap<String, String>) -> Result<Filter, String> {
    let get = |k: &str| query.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Filter {
        source: get("source"),
        destination: get("destination"),
        event_type: get("event_type").or_else(|| get("event")),
        reason: get("reason").map(|r| r.parse()).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_takes_only_its_own_parameters() {
        let query = |q: &str| query_map(Some(q));
        let filter: &[&[&str]] = &[&DLQ_FILTER, &DRY_RUN];
        assert!(only_params(&query("source=a&dry_run=true"), filter).is_ok());
        assert!(only_params(&query("event=order.paid"), filter).is_ok());
        // Empty pairs (`?&dry_run=true`) are no parameter at all.
        assert!(only_params(&query("&dry_run=true&"), filter).is_ok());
        let refused = only_params(&query("zeta=1&sorce=a&source=b"), filter).unwrap_err();
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refused.message,
            "unknown query parameter \"sorce\"; this request takes source, destination, event_type, reason, dry_run"
        );
        let none = only_params(&query("x=1"), &[]).unwrap_err();
        assert!(
            none.message.ends_with("this request takes none"),
            "{}",
            none.message
        );
        assert!(only_params(&query(""), &[]).is_ok());
    }
}
