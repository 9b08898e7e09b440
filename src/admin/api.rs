//! The admin JSON API: sources with their destinations' state, pause and
//! resume, and the dead-letter queue (list, show, replay, delete, bulk
//! replay and purge). The event log's endpoints are in `log_api`.

use std::collections::HashMap;
use std::time::Duration;

use http::{Method, StatusCode};
use serde::Serialize;

use super::{
    AdminHandle, ApiError, ApiResult, DLQ_FILTER, DRY_RUN, PAGE_PARAMS, Refusal, dry_run,
    filter_from, only_params, page_args, split_entry_path,
};
use crate::dlq::{self, BulkOp, Filter};
use crate::overview::{self, SourceOverview};
use crate::queue::{DestinationState, Unusable};
use crate::response::{HttpResponse, error, json, method_not_allowed};
use crate::source::Source;

pub async fn route(
    admin: &AdminHandle,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> HttpResponse {
    if let Some(result) = super::log_api::route(admin, method, path, query).await {
        return answer(result);
    }
    let result = match (method, path) {
        (&Method::GET, "sources") => list_sources(admin, query).await,
        (method, p) if p.starts_with("sources/") => {
            destination_action(admin, method, p, query).await
        }
        (&Method::GET, "dlq") => list(admin, query).await,
        (&Method::POST, "dlq/replay") => bulk(admin, query, BulkOp::Replay).await,
        (&Method::POST, "dlq/purge") => bulk(admin, query, BulkOp::Purge).await,
        (_, "sources" | "dlq") => Ok(method_not_allowed("GET")),
        (_, "dlq/replay" | "dlq/purge") => Ok(method_not_allowed("POST")),
        (_, p) if p.starts_with("dlq/") => {
            let rest = &p["dlq/".len()..];
            if let Some(entry) = rest.strip_suffix("/replay") {
                match (method, split_entry_path(entry)) {
                    (&Method::POST, Some((source, id))) => {
                        replay_one(admin, source, id, query).await
                    }
                    (_, Some(_)) => Ok(method_not_allowed("POST")),
                    (_, None) => Ok(error(StatusCode::NOT_FOUND, "not found")),
                }
            } else {
                match (method, split_entry_path(rest)) {
                    (&Method::GET, Some((source, id))) => show(admin, source, id, query).await,
                    (&Method::DELETE, Some((source, id))) => {
                        delete_one(admin, source, id, query).await
                    }
                    (_, Some(_)) => Ok(method_not_allowed("GET, DELETE")),
                    (_, None) => Ok(error(StatusCode::NOT_FOUND, "not found")),
                }
            }
        }
        _ => Ok(error(StatusCode::NOT_FOUND, "not found")),
    };
    answer(result)
}

fn answer(result: ApiResult) -> HttpResponse {
    result.unwrap_or_else(|e| match e {
        ApiError::Refused(refusal) => refusal.response(),
        ApiError::Redis(e) => {
            tracing::warn!(error = %e, "admin request failed");
            error(StatusCode::SERVICE_UNAVAILABLE, &format!("redis: {e}"))
        }
    })
}

/// A read asked while Redis is known to be away.
pub fn redis_away(why: &Unusable) -> HttpResponse {
    error(StatusCode::SERVICE_UNAVAILABLE, &format!("redis {why}"))
}

/// `redis_error` in the JSON: Redis's or the connection's words alone.
fn reason_only<S: serde::Serializer>(why: &Option<Unusable>, out: S) -> Result<S::Ok, S::Error> {
    match why {
        Some(why) => out.serialize_str(why.reason()),
        None => out.serialize_none(),
    }
}

#[derive(Serialize)]
pub struct SourcesView {
    pub redis: &'static str,
    /// Why Redis is away, while it is: only the reason in the JSON (the
    /// dashboard also words whether Redis is away or refusing).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "reason_only"
    )]
    pub redis_error: Option<Unusable>,
    /// Every configured source, in config order.
    pub sources: Vec<SourceListing>,
}

/// A source as listed: its figures, or, when Redis did not answer for it
/// in time, its configured destinations with every figure `null` and
/// state `unknown`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum SourceListing {
    Read(SourceOverview),
    Unread(UnreadSource),
}

#[derive(Serialize, Default)]
pub struct UnreadSource {
    pub name: String,
    pub backlog: Option<u64>,
    pub pending: Option<u64>,
    pub retrying: Option<u64>,
    pub dlq: Option<u64>,
    pub oldest_pending_age_ms: Option<u64>,
    pub destinations: Vec<UnreadDestination>,
}

/// The fields of [`overview::DestinationOverview`], each unknown but the
/// configured ones.
#[derive(Serialize, Default)]
pub struct UnreadDestination {
    pub name: String,
    pub url: String,
    pub state: &'static str,
    pub in_flight: Option<u64>,
    pub max_in_flight: usize,
    pub backlog: Option<u64>,
    pub pending: Option<u64>,
    pub retrying: Option<u64>,
    pub dlq: Option<u64>,
    pub oldest_pending_age_ms: Option<u64>,
    pub last_success_ms: Option<u64>,
    pub last_failure_ms: Option<u64>,
    pub last_failure_status: Option<u16>,
}

impl UnreadSource {
    fn of(source: &Source) -> Self {
        Self {
            name: source.name.clone(),
            destinations: source
                .destinations
                .iter()
                .map(|d| UnreadDestination {
                    name: d.name.clone(),
                    url: d.config.url.to_string(),
                    state: DestinationState::Unknown.as_str(),
                    max_in_flight: d.config.max_in_flight,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// How long the listing waits for Redis, all sources together: a Redis
/// that hangs (before the health check calls it away) must not hold the
/// dashboard for a command timeout per source.
pub const LISTING_READ_LIMIT: Duration = Duration::from_secs(1);

/// Every source's overview. While Redis is known away nothing is asked
/// (each read would wait out the command timeout, and the dashboard asks
/// every few seconds); a source Redis does not answer for within
/// LISTING_READ_LIMIT is listed unread.
pub async fn sources(admin: &AdminHandle) -> SourcesView {
    let deadline = tokio::time::Instant::now() + LISTING_READ_LIMIT;
    let ask = !admin.status.redis_known_down();
    let mut out = Vec::with_capacity(admin.sources.len());
    for source in admin.sources.iter() {
        let read = if ask {
            tokio::time::timeout_at(deadline, overview::source(&admin.queue, source))
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        out.push(match read {
            Some(view) => SourceListing::Read(view),
            None => SourceListing::Unread(UnreadSource::of(source)),
        });
    }
    // Read after the figures: what the health check learnt meanwhile.
    SourcesView {
        redis: if admin.status.redis_up() {
            "up"
        } else {
            "down"
        },
        redis_error: admin.status.redis_error(),
        sources: out,
    }
}

async fn list_sources(admin: &AdminHandle, query: &HashMap<String, String>) -> ApiResult {
    only_params(query, &[])?;
    Ok(json(StatusCode::OK, &sources(admin).await))
}

/// The filter of a request, if it names only what exists.
pub fn checked_filter(
    admin: &AdminHandle,
    query: &HashMap<String, String>,
) -> Result<Filter, Refusal> {
    let filter = filter_from(query).map_err(Refusal::bad_request)?;
    if let Some(source) = &filter.source {
        admin.named_source(source)?;
    }
    Ok(filter)
}

/// `POST /admin/sources/{source}/destinations/{name}/pause|resume`.
async fn destination_action(
    admin: &AdminHandle,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> ApiResult {
    let mut parts = path.split('/');
    let (Some("sources"), Some(source), Some("destinations"), Some(name), Some(action), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Ok(error(StatusCode::NOT_FOUND, "not found"));
    };
    let paused = match action {
        "pause" => true,
        "resume" => false,
        _ => return Ok(error(StatusCode::NOT_FOUND, "not found")),
    };
    if method != Method::POST {
        return Ok(method_not_allowed("POST"));
    }
    only_params(query, &[])?;
    let found = admin.named_source(source)?;
    let Some(destination) = found.destination(name) else {
        return Ok(error(StatusCode::NOT_FOUND, "unknown destination"));
    };
    admin.queue.set_paused(&destination.keys, paused).await?;
    tracing::info!(
        source,
        destination = name,
        paused,
        "destination {action}d by an operator"
    );
    let status = admin.queue.states(&[&destination.keys]).await?;
    let state = status.first().map_or("unknown", |s| s.state().as_str());
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"source": source, "destination": name, "state": state}),
    ))
}

async fn list(admin: &AdminHandle, query: &HashMap<String, String>) -> ApiResult {
    only_params(query, &[&DLQ_FILTER, &PAGE_PARAMS])?;
    let filter = checked_filter(admin, query)?;
    let (limit, cursor) = page_args(query).map_err(Refusal::bad_request)?;
    let page = dlq::list(
        &admin.queue,
        admin.sources.keys(),
        &filter,
        cursor.as_ref(),
        limit,
    )
    .await?;
    Ok(json(StatusCode::OK, &page))
}

/// The answer for a DLQ id that is not (or no longer) there.
const NOT_IN_DLQ: &str = "not in the dead-letter queue";

async fn show(
    admin: &AdminHandle,
    source: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> ApiResult {
    only_params(query, &[])?;
    let source = admin.named_source(source)?;
    Ok(match dlq::find(&admin.queue, [&source.keys], id).await? {
        Some(item) => json(StatusCode::OK, &item.detail()),
        None => error(StatusCode::NOT_FOUND, NOT_IN_DLQ),
    })
}

async fn replay_one(
    admin: &AdminHandle,
    source: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> ApiResult {
    only_params(query, &[])?;
    let found = admin.named_source(source)?;
    let Some(item) = dlq::find(&admin.queue, [&found.keys], id).await? else {
        return Ok(error(StatusCode::NOT_FOUND, NOT_IN_DLQ));
    };
    if !admin.targets.delivers_to(source, &item.destination) {
        return Ok(error(
            StatusCode::CONFLICT,
            &format!(
                "destination {:?} is no longer configured; nothing to replay to",
                item.destination
            ),
        ));
    }
    Ok(match admin.queue.replay(&found.keys, id).await? {
        Some(entry_id) => {
            tracing::info!(source, dlq_id = id, entry_id = %entry_id, "replayed from the dead-letter queue");
            json(
                StatusCode::OK,
                &serde_json::json!({"replayed": true, "source": source, "id": id, "entry_id": entry_id}),
            )
        }
        None => error(StatusCode::NOT_FOUND, NOT_IN_DLQ),
    })
}

async fn delete_one(
    admin: &AdminHandle,
    source: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> ApiResult {
    only_params(query, &[])?;
    let found = admin.named_source(source)?;
    Ok(if admin.queue.dlq_delete(&found.keys, id).await? {
        tracing::info!(source, dlq_id = id, "deleted from the dead-letter queue");
        json(
            StatusCode::OK,
            &serde_json::json!({"deleted": true, "source": source, "id": id}),
        )
    } else {
        error(StatusCode::NOT_FOUND, NOT_IN_DLQ)
    })
}

async fn bulk(admin: &AdminHandle, query: &HashMap<String, String>, op: BulkOp) -> ApiResult {
    only_params(query, &[&DLQ_FILTER, &DRY_RUN])?;
    let filter = checked_filter(admin, query)?;
    let dry_run = dry_run(query)?;
    let (queue, targets) = (admin.queue.clone(), admin.targets.clone());
    let result = admin
        .run_to_end(async move { dlq::bulk(&queue, &targets, &filter, op, dry_run).await })
        .await?;
    let mut body = serde_json::json!({"matched": result.matched, "dry_run": dry_run});
    body[op.verb()] = serde_json::json!(result.done);
    Ok(json(StatusCode::OK, &body))
}
