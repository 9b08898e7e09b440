//! The event log as operators use it: filtered, paged listings across
//! sources, one event in full, replay of one event or of every match, and
//! the per-minute figures behind the dashboard's charts. Shared by the
//! admin API, the dashboard and `hookd events`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::listing::{self, Cursor, Gather, Listed, SourceScan};
use crate::queue::{
    AttemptRecord, EventMatch, EventScanFilter, EventStatus, MinuteCounters, Queue, QueueError,
    parse_history,
};
use crate::shown::{self, ShownEvent};
use crate::source::Source;

/// Entries one scan step examines inside Redis.
const SCAN_BATCH: usize = 1000;
/// Entries examined per source for one page: a sparse filter gets a short
/// page with a cursor rather than a request that walks the whole log.
const SCAN_PER_PAGE: usize = 5_000;
pub const MAX_PAGE: usize = 500;
pub use crate::listing::DEFAULT_PAGE;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<EventStatus>,
    /// Received at or after (unix ms).
    pub since_ms: Option<u64>,
    /// Received at or before (unix ms).
    pub until_ms: Option<u64>,
    /// The provider's event id (found through its dedup marker).
    pub id: Option<String>,
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (since, until) = (
            self.since_ms.map(|ms| ms.to_string()),
            self.until_ms.map(|ms| ms.to_string()),
        );
        listing::write_filter(
            f,
            &[
                ("source", self.source.as_deref()),
                ("destination", self.destination.as_deref()),
                ("event_type", self.event_type.as_deref()),
                ("status", self.status.map(EventStatus::as_str)),
                ("since_ms", since.as_deref()),
                ("until_ms", until.as_deref()),
                ("id", self.id.as_deref()),
            ],
        )
    }
}

/// One destination's line of a listed event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DestinationStatus {
    pub status: EventStatus,
    pub attempts: u32,
}

/// A row of the listing.
#[derive(Debug, Clone, Serialize)]
pub struct EventItem {
    pub source: String,
    pub entry_id: String,
    /// The provider's event id.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub received_ms: u64,
    /// Body bytes.
    pub size: usize,
    /// The entry this one is a replay of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// The one destination a replay was addressed to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub destinations: BTreeMap<String, DestinationStatus>,
}

impl Listed for EventItem {
    fn entry_id(&self) -> &str {
        &self.entry_id
    }
    fn source(&self) -> &str {
        &self.source
    }
}

impl EventItem {
    fn from_match(source: &str, m: &EventMatch) -> Self {
        Self {
            source: source.to_owned(),
            entry_id: m.entry_id.clone(),
            id: m.event_id.clone(),
            event_type: m.event_type.clone(),
            received_ms: m.received_ms,
            size: m.body_bytes,
            replay_of: m.of.clone(),
            to: m.to.clone(),
            destinations: m
                .destinations
                .iter()
                .map(|d| {
                    (
                        d.name.clone(),
                        DestinationStatus {
                            status: d.status,
                            attempts: d.attempts,
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<EventItem>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One destination's part of an event in full.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationDetail {
    pub status: EventStatus,
    pub attempts: Vec<AttemptRecord>,
}

/// One event in full.
#[derive(Debug, Serialize)]
pub struct EventDetail {
    #[serde(flatten)]
    pub item: EventItem,
    #[serde(flatten)]
    pub shown: ShownEvent,
    pub destinations: BTreeMap<String, DestinationDetail>,
}

fn scan_filter(filter: &Filter) -> EventScanFilter<'_> {
    EventScanFilter {
        event_type: filter.event_type.as_deref().unwrap_or(""),
        status: filter.status,
        destination: filter.destination.as_deref().unwrap_or(""),
    }
}

fn upper_bound(filter: &Filter) -> String {
    filter
        .until_ms
        .map_or_else(|| "+".to_owned(), |ms| ms.to_string())
}

fn lower_bound(filter: &Filter) -> String {
    filter
        .since_ms
        .map_or_else(|| "-".to_owned(), |ms| ms.to_string())
}

/// Whether `source` takes part in `filter`.
fn selected(filter: &Filter, source: &Source) -> bool {
    filter.source.as_deref().is_none_or(|s| s == source.name)
        && filter
            .destination
            .as_deref()
            .is_none_or(|d| source.destination(d).is_some())
}

/// Matching entries of one source below `cursor` (and below `ceiling`, a
/// bulk walk's fixed top), at least `limit` unless the source ends first,
/// or fewer once `SCAN_PER_PAGE` entries were examined.
async fn scan_source(
    queue: &Queue,
    source: &Source,
    filter: &Filter,
    cursor: Option<&Cursor>,
    ceiling: Option<&str>,
    limit: usize,
) -> Result<SourceScan<EventItem>, QueueError> {
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let scan = scan_filter(filter);
    let lower = lower_bound(filter);
    let mut upper = upper_bound(filter);
    if let Some(top) = ceiling {
        upper = top.to_owned();
    }
    // Inclusive start at the cursor id: another source may share the id.
    if let Some(c) = cursor {
        upper = c.id.clone();
    }
    let mut gather = Gather::new(&source.name, cursor, limit, SCAN_PER_PAGE);
    loop {
        let step = queue
            .events_scan(
                &source.keys,
                &keys,
                &upper,
                &lower,
                SCAN_BATCH,
                gather.wanted(),
                &scan,
                false,
            )
            .await?;
        let rows = step
            .matches
            .iter()
            .map(|m| EventItem::from_match(&source.name, m));
        match gather.take(rows, step.examined, step.last.filter(|_| step.more)) {
            ControlFlow::Break(scan) => return Ok(scan),
            ControlFlow::Continue(last) => upper = format!("({last}"),
        }
    }
}

/// The one entry an event id names in `source`, as a listing row.
async fn by_event_id(
    queue: &Queue,
    source: &Source,
    filter: &Filter,
    event_id: &str,
) -> Result<Option<EventItem>, QueueError> {
    let Some(entry_id) = queue.first_entry_of(&source.keys, event_id).await? else {
        return Ok(None);
    };
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let step = queue
        .events_scan(
            &source.keys,
            &keys,
            &entry_id,
            &entry_id,
            1,
            1,
            &scan_filter(filter),
            false,
        )
        .await?;
    let in_range = |item: &EventItem| {
        filter.since_ms.is_none_or(|s| item.received_ms >= s)
            && filter.until_ms.is_none_or(|u| item.received_ms <= u)
    };
    Ok(step
        .matches
        .first()
        .map(|m| EventItem::from_match(&source.name, m))
        .filter(in_range))
}

/// Newest first across the selected sources. A page may hold fewer than
/// `limit` items (a sparse filter over a large log) but is never the last
/// while matches may remain.
pub async fn list(
    queue: &Queue,
    sources: &[&Source],
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Page, QueueError> {
    let limit = limit.clamp(1, MAX_PAGE);
    if let Some(event_id) = &filter.id {
        let mut items = Vec::new();
        if cursor.is_none() {
            for source in sources.iter().filter(|s| selected(filter, s)) {
                items.extend(by_event_id(queue, source, filter, event_id).await?);
            }
        }
        return Ok(Page {
            items,
            next_cursor: None,
        });
    }
    // The sources' scans at once: their round trips and decoding overlap
    // (Redis runs the scripts one after another either way).
    let scans = futures_util::future::try_join_all(
        sources
            .iter()
            .filter(|s| selected(filter, s))
            .map(|source| scan_source(queue, source, filter, cursor, None, limit)),
    )
    .await?;
    let (items, next_cursor) = listing::page(scans, limit);
    Ok(Page { items, next_cursor })
}

/// One event in full, or None once it left the log.
pub async fn detail(
    queue: &Queue,
    source: &Source,
    entry_id: &str,
) -> Result<Option<EventDetail>, QueueError> {
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let step = queue
        .events_scan(
            &source.keys,
            &keys,
            entry_id,
            entry_id,
            1,
            1,
            &EventScanFilter::default(),
            true,
        )
        .await?;
    Ok(step.matches.into_iter().next().map(|m| {
        let destinations = m
            .destinations
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    DestinationDetail {
                        status: d.status,
                        attempts: parse_history(&d.history),
                    },
                )
            })
            .collect();
        EventDetail {
            item: EventItem::from_match(&source.name, &m),
            shown: shown::event(&m.body, &m.headers),
            destinations,
        }
    }))
}

/// Replays one logged event to `destination`, or to every destination
/// (whose filter wants it) with None. Returns the copy's entry id, or None
/// if the event left the log.
pub async fn replay(
    queue: &Queue,
    source: &Source,
    entry_id: &str,
    destination: Option<&str>,
) -> Result<Option<String>, QueueError> {
    let copies = queue
        .replay_events(&source.keys, destination, &[entry_id])
        .await?;
    let copy = copies.into_iter().next().flatten();
    if let Some(copy) = &copy {
        tracing::info!(source = %source.name, entry_id, copy = %copy, destination = destination.unwrap_or("all"), "event replayed");
    }
    Ok(copy)
}

/// What a bulk replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BulkResult {
    /// Events that matched (an event counts once, however many
    /// destinations it goes to).
    pub matched: usize,
    /// Copies made (0 on a dry run).
    pub replayed: usize,
    pub dry_run: bool,
}

/// Replays every matching event, page by page, to `filter.destination` or
/// (without one) to every destination. The walk's top is fixed when it
/// starts, so the copies it makes are not matched again.
pub async fn bulk_replay(
    queue: &Queue,
    sources: &[&Source],
    filter: &Filter,
    dry_run: bool,
) -> Result<BulkResult, QueueError> {
    let mut result = BulkResult {
        matched: 0,
        replayed: 0,
        dry_run,
    };
    let destination = filter.destination.as_deref();
    if filter.id.is_some() {
        let page = list(queue, sources, filter, None, MAX_PAGE).await?;
        for item in &page.items {
            result.matched += 1;
            if !dry_run {
                let source = sources.iter().find(|s| s.name == item.source);
                if let Some(source) = source
                    && replay(queue, source, &item.entry_id, destination)
                        .await?
                        .is_some()
                {
                    result.replayed += 1;
                }
            }
        }
        return Ok(result);
    }
    for source in sources.iter().filter(|s| selected(filter, s)) {
        // The newest entry now: copies appended from here on are above it.
        let top = newest(queue, source).await?;
        let Some(top) = top else { continue };
        let mut cursor: Option<Cursor> = None;
        let mut pages = 0u64;
        loop {
            let scan =
                scan_source(queue, source, filter, cursor.as_ref(), Some(&top), MAX_PAGE).await?;
            let (items, next) = listing::page(vec![scan], MAX_PAGE);
            result.matched += items.len();
            if !dry_run && !items.is_empty() {
                let ids: Vec<&str> = items.iter().map(|i| i.entry_id.as_str()).collect();
                let copies = queue.replay_events(&source.keys, destination, &ids).await?;
                result.replayed += copies.iter().filter(|c| c.is_some()).count();
            }
            pages += 1;
            if pages.is_multiple_of(100) {
                tracing::info!(source = %source.name, matched = result.matched, replayed = result.replayed, "bulk event replay in progress");
            }
            match next.as_deref().and_then(Cursor::parse) {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    if !dry_run {
        tracing::info!(
            matched = result.matched,
            replayed = result.replayed,
            %filter,
            "bulk event replay"
        );
    }
    Ok(result)
}

async fn newest(queue: &Queue, source: &Source) -> Result<Option<String>, QueueError> {
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let step = queue
        .events_scan(
            &source.keys,
            &keys,
            "+",
            "-",
            1,
            1,
            &EventScanFilter::default(),
            false,
        )
        .await?;
    Ok(step.last)
}

/// The per-minute figures of `sources` over the last `minutes`, summed.
pub async fn stats(
    queue: &Queue,
    sources: &[&Source],
    now_ms: u64,
    minutes: u64,
) -> Result<Vec<MinuteCounters>, QueueError> {
    let mut total: Vec<MinuteCounters> = Vec::new();
    for source in sources {
        let points = queue.minutes(&source.keys, now_ms, minutes).await?;
        if total.is_empty() {
            total = points;
        } else {
            for (sum, point) in total.iter_mut().zip(&points) {
                sum.add(point);
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_become_stream_ids() {
        let filter = Filter {
            since_ms: Some(1000),
            until_ms: Some(2000),
            ..Filter::default()
        };
        assert_eq!(lower_bound(&filter), "1000");
        assert_eq!(upper_bound(&filter), "2000");
        assert_eq!(lower_bound(&Filter::default()), "-");
        assert_eq!(upper_bound(&Filter::default()), "+");
    }
}
