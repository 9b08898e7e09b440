//! The event log's part of the admin API: `/admin/events` (list, one
//! event, replay one or every match) and `/admin/stats` (per-minute
//! figures for the charts).

use std::collections::HashMap;

use http::{Method, StatusCode};

use super::{
    AdminHandle, ApiResult, DRY_RUN, PAGE_PARAMS, Refusal, dry_run, only_params, page_args,
    split_entry_path,
};
use crate::clock::{parse_time, unix_ms};
use crate::events::{self, Filter};
use crate::queue::MAX_MINUTES;
use crate::response::{error, json, method_not_allowed};
use crate::source::Source;

/// `events...` and `stats` under `/admin/`; None for other paths.
pub async fn route(
    admin: &AdminHandle,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> Option<ApiResult> {
    Some(match (method, path) {
        (&Method::GET, "events") => list(admin, query).await,
        (&Method::POST, "events/replay") => bulk(admin, query).await,
        (&Method::GET, "stats") => stats(admin, query).await,
        (_, "events" | "stats") => Ok(method_not_allowed("GET")),
        (_, "events/replay") => Ok(method_not_allowed("POST")),
        (_, p) if p.starts_with("events/") => {
            let rest = &p["events/".len()..];
            match rest.strip_suffix("/replay") {
                Some(entry) => match (method, split_entry_path(entry)) {
                    (&Method::POST, Some((source, id))) => {
                        replay_one(admin, source, id, query).await
                    }
                    (_, Some(_)) => Ok(method_not_allowed("POST")),
                    (_, None) => Ok(error(StatusCode::NOT_FOUND, "not found")),
                },
                None => match (method, split_entry_path(rest)) {
                    (&Method::GET, Some((source, id))) => show(admin, source, id, query).await,
                    (_, Some(_)) => Ok(method_not_allowed("GET")),
                    (_, None) => Ok(error(StatusCode::NOT_FOUND, "not found")),
                },
            }
        }
        _ => return None,
    })
}

/// The query parameters of an event-log filter.
pub const EVENT_FILTER: [&str; 7] = [
    "source",
    "destination",
    "event_type",
    "status",
    "since",
    "until",
    "id",
];

/// The event-log filter of a request, if it names only what exists.
pub fn event_filter(
    admin: &AdminHandle,
    query: &HashMap<String, String>,
) -> Result<Filter, Refusal> {
    let get = |k: &str| query.get(k).filter(|v| !v.is_empty()).cloned();
    let time = |k: &str| {
        get(k)
            .map(|t| parse_time(&t))
            .transpose()
            .map_err(Refusal::bad_request)
    };
    let filter = Filter {
        source: get("source"),
        destination: get("destination"),
        event_type: get("event_type").or_else(|| get("event")),
        status: get("status")
            .map(|s| s.parse())
            .transpose()
            .map_err(Refusal::bad_request)?,
        since_ms: time("since")?,
        until_ms: time("until")?,
        id: get("id"),
    };
    if let Some(source) = &filter.source {
        admin.named_source(source)?;
    }
    if let Some(destination) = &filter.destination
        && !admin
            .sources
            .has_destination(filter.source.as_deref(), destination)
    {
        return Err(Refusal::not_found("unknown destination"));
    }
    Ok(filter)
}

async fn list(admin: &AdminHandle, query: &HashMap<String, String>) -> ApiResult {
    only_params(query, &[&EVENT_FILTER, &PAGE_PARAMS])?;
    let filter = event_filter(admin, query)?;
    let (limit, cursor) = page_args(query).map_err(Refusal::bad_request)?;
    let page = events::list(
        &admin.queue,
        &admin.sources.all(),
        &filter,
        cursor.as_ref(),
        limit,
    )
    .await?;
    Ok(json(StatusCode::OK, &page))
}

async fn show(
    admin: &AdminHandle,
    source: &str,
    entry_id: &str,
    query: &HashMap<String, String>,
) -> ApiResult {
    only_params(query, &[])?;
    let source = admin.named_source(source)?;
    Ok(
        match events::detail(&admin.queue, source, entry_id).await? {
            Some(detail) => json(StatusCode::OK, &detail),
            None => error(StatusCode::NOT_FOUND, "not in the event log"),
        },
    )
}

async fn replay_one(
    admin: &AdminHandle,
    source: &str,
    entry_id: &str,
    query: &HashMap<String, String>,
) -> ApiResult {
    only_params(query, &[&["destination"]])?;
    let found = admin.named_source(source)?;
    let destination = query.get("destination").filter(|d| !d.is_empty());
    if let Some(name) = destination
        && found.destination(name).is_none()
    {
        return Ok(error(StatusCode::NOT_FOUND, "unknown destination"));
    }
    let destination = destination.map(String::as_str);
    Ok(
        match events::replay(&admin.queue, found, entry_id, destination).await? {
            Some(copy) => json(
                StatusCode::OK,
                &serde_json::json!({
                    "replayed": true,
                    "source": source,
                    "entry_id": entry_id,
                    "copy": copy,
                    "destination": destination,
                }),
            ),
            None => error(StatusCode::NOT_FOUND, "not in the event log"),
        },
    )
}

async fn bulk(admin: &AdminHandle, query: &HashMap<String, String>) -> ApiResult {
    only_params(query, &[&EVENT_FILTER, &DRY_RUN])?;
    let filter = event_filter(admin, query)?;
    let dry_run = dry_run(query)?;
    let (queue, sources) = (admin.queue.clone(), admin.sources.clone());
    let result = admin
        .run_to_end(
            async move { events::bulk_replay(&queue, &sources.all(), &filter, dry_run).await },
        )
        .await?;
    Ok(json(StatusCode::OK, &result))
}

async fn stats(admin: &AdminHandle, query: &HashMap<String, String>) -> ApiResult {
    only_params(query, &[&["source", "minutes"]])?;
    let minutes = match query.get("minutes").filter(|v| !v.is_empty()) {
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=MAX_MINUTES).contains(&n) => n,
            _ => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    &format!("minutes must be 1 to {MAX_MINUTES}"),
                ));
            }
        },
        None => 60,
    };
    let source = query.get("source").filter(|v| !v.is_empty());
    let sources: Vec<&Source> = match source {
        Some(name) => vec![admin.named_source(name)?.as_ref()],
        None => admin.sources.all(),
    };
    let points = events::stats(&admin.queue, &sources, unix_ms(), minutes).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"source": source, "minutes": minutes, "points": points}),
    ))
}
