//! Dead-letter queue operations shared by the admin API, the dashboard and
//! `hookd dlq`: filtered, paginated listing across sources (newest first),
//! inspection, replay, delete and purge.

use std::ops::ControlFlow;

use bytes::Bytes;
use serde::Serialize;

pub use crate::listing::Cursor;
use crate::listing::{self, Gather, Listed, SourceScan};
use crate::queue::{
    AttemptRecord, DeadReason, DlqMatch, DlqScanFilter, Queue, QueueError, SourceKeys, StoredEntry,
    field, parse_history,
};
use crate::shown::{self, ShownEvent};

/// Entries one scan step examines inside Redis (only matches come back).
const SCAN_BATCH: usize = 1000;
/// Entries examined per source for one page: a sparse filter gets a short
/// page with a cursor rather than a request that walks a huge DLQ.
const SCAN_PER_PAGE: usize = 10_000;
pub const MAX_PAGE: usize = 500;
/// Entries a bulk operation examines, and acts on, per script call.
const BULK_STEP: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub event_type: Option<String>,
    pub reason: Option<DeadReason>,
}

impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        listing::write_filter(
            f,
            &[
                ("source", self.source.as_deref()),
                ("destination", self.destination.as_deref()),
                ("event_type", self.event_type.as_deref()),
                ("reason", self.reason.map(DeadReason::as_str)),
            ],
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DlqItem {
    pub source: String,
    /// The destination it died for.
    pub destination: String,
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub reason: String,
    pub status: Option<u16>,
    pub error: String,
    pub attempts: u32,
    pub received_ms: u64,
    pub dead_at_ms: u64,
    pub body_bytes: usize,
    #[serde(skip)]
    pub body: Bytes,
    #[serde(skip)]
    pub headers: Bytes,
    #[serde(skip)]
    pub history: Vec<AttemptRecord>,
}

/// The full view of one entry, for `show` and the detail page.
#[derive(Debug, Serialize)]
pub struct DlqDetail<'a> {
    #[serde(flatten)]
    pub item: &'a DlqItem,
    #[serde(flatten)]
    pub shown: ShownEvent,
    pub history: &'a [AttemptRecord],
}

impl DlqItem {
    /// A listing row, from a scan match (no body, headers or history).
    pub fn from_match(source: &str, m: DlqMatch) -> Self {
        DlqItem {
            source: source.to_owned(),
            destination: m.destination,
            id: m.dlq_id,
            event_id: m.event_id,
            event_type: m.event_type,
            reason: m.reason,
            status: m.status,
            error: m.error,
            attempts: m.attempts,
            received_ms: m.received_ms,
            dead_at_ms: m.dead_at_ms,
            body_bytes: m.body_bytes,
            body: Bytes::new(),
            headers: Bytes::new(),
            history: Vec::new(),
        }
    }

    pub fn from_entry(source: &str, entry: StoredEntry) -> Self {
        let mut item = DlqItem {
            source: source.to_owned(),
            destination: String::new(),
            id: entry.id,
            event_id: String::new(),
            event_type: String::new(),
            reason: String::new(),
            status: None,
            error: String::new(),
            attempts: 0,
            received_ms: 0,
            dead_at_ms: 0,
            body_bytes: 0,
            body: Bytes::new(),
            headers: Bytes::new(),
            history: Vec::new(),
        };
        let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
        for (name, value) in entry.fields {
            match name.as_str() {
                field::ID => item.event_id = text(&value),
                field::TYPE => item.event_type = text(&value),
                field::REASON => item.reason = text(&value),
                field::STATUS => item.status = text(&value).parse().ok(),
                field::ERROR => item.error = text(&value),
                field::ATTEMPTS => item.attempts = text(&value).parse().unwrap_or(0),
                field::RECEIVED => item.received_ms = text(&value).parse().unwrap_or(0),
                field::DEAD_AT => item.dead_at_ms = text(&value).parse().unwrap_or(0),
                field::BODY => item.body = value,
                field::HEADERS => item.headers = value,
                field::LOG => item.history = parse_history(&text(&value)),
                field::DESTINATION => item.destination = text(&value),
                _ => {}
            }
        }
        item.body_bytes = item.body.len();
        item
    }

    pub fn detail(&self) -> DlqDetail<'_> {
        DlqDetail {
            item: self,
            shown: shown::event(&self.body, &self.headers),
            history: &self.history,
        }
    }
}

impl Listed for DlqItem {
    fn entry_id(&self) -> &str {
        &self.id
    }
    fn source(&self) -> &str {
        &self.source
    }
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<DlqItem>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn scan_filter(filter: &Filter) -> DlqScanFilter<'_> {
    DlqScanFilter {
        event_type: filter.event_type.as_deref().unwrap_or(""),
        reason: filter.reason.map_or("", DeadReason::as_str),
        destination: filter.destination.as_deref().unwrap_or(""),
    }
}

/// Matching entries of one source older than `cursor`: at least `limit`
/// of them unless the source ends first, or fewer once `SCAN_PER_PAGE`
/// entries were examined. Also returns the last entry examined when the
/// source goes on below it: everything newer has been looked at.
async fn scan_source(
    queue: &Queue,
    keys: &SourceKeys,
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<SourceScan<DlqItem>, QueueError> {
    let scan = scan_filter(filter);
    let mut gather = Gather::new(&keys.source, cursor, limit, SCAN_PER_PAGE);
    // Inclusive start at the cursor id: another source may share the id.
    let mut from = cursor.map(|c| c.id.clone());
    loop {
        let step = queue
            .dlq_scan(keys, from.as_deref(), SCAN_BATCH, gather.wanted(), &scan)
            .await?;
        let rows = step
            .matches
            .into_iter()
            .map(|m| DlqItem::from_match(&keys.source, m));
        match gather.take(rows, step.examined, step.last.filter(|_| step.more)) {
            ControlFlow::Break(scan) => return Ok(scan),
            ControlFlow::Continue(last) => from = Some(format!("({last}")),
        }
    }
}

/// Newest first across the selected sources. A page may hold fewer than
/// `limit` items (a sparse filter over a large DLQ) but is never the last
/// one while matches may remain: `next_cursor` is then set.
pub async fn list<'k>(
    queue: &Queue,
    sources: impl IntoIterator<Item = &'k SourceKeys>,
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<Page, QueueError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut scans = Vec::new();
    for keys in sources {
        if filter.source.as_deref().is_some_and(|s| s != keys.source) {
            continue;
        }
        scans.push(scan_source(queue, keys, filter, cursor, limit).await?);
    }
    let (items, next_cursor) = listing::page(scans, limit);
    Ok(Page { items, next_cursor })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOp {
    Replay,
    Purge,
}

impl BulkOp {
    pub fn verb(self) -> &'static str {
        match self {
            BulkOp::Replay => "replayed",
            BulkOp::Purge => "deleted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkResult {
    pub matched: usize,
    /// Entries actually moved or deleted (0 on a dry run; fewer than
    /// matched if another operator got there first).
    pub done: usize,
}

/// The sources a DLQ operation covers, with the destinations each has
/// configured (a replay goes back only to a destination that exists).
pub struct Targets {
    sources: Vec<Target>,
}

/// One source a DLQ operation covers.
struct Target {
    keys: SourceKeys,
    destinations: Vec<String>,
}

impl Target {
    fn delivers_to(&self, destination: &str) -> bool {
        self.destinations.iter().any(|d| d == destination)
    }
}

impl Targets {
    /// Each source's keys with the names of its configured destinations.
    pub fn new(sources: impl IntoIterator<Item = (SourceKeys, Vec<String>)>) -> Self {
        let mut sources: Vec<_> = sources
            .into_iter()
            .map(|(keys, destinations)| Target { keys, destinations })
            .collect();
        sources.sort_by(|a, b| a.keys.source.cmp(&b.keys.source));
        Self { sources }
    }

    pub fn keys(&self) -> impl Iterator<Item = &SourceKeys> + Clone {
        self.sources.iter().map(|target| &target.keys)
    }

    pub fn source(&self, name: &str) -> Option<&SourceKeys> {
        self.keys().find(|keys| keys.source == name)
    }

    /// Whether `destination` of `source` is configured.
    pub fn delivers_to(&self, source: &str, destination: &str) -> bool {
        self.sources
            .iter()
            .any(|target| target.keys.source == source && target.delivers_to(destination))
    }
}

/// Replays or deletes every matching entry, however many there are: it
/// walks each source's DLQ step by step (memory stays at one step's ids)
/// and acts on each step's matches with one script call. A replay skips
/// entries whose destination is no longer configured (they stay in the
/// DLQ).
pub async fn bulk(
    queue: &Queue,
    targets: &Targets,
    filter: &Filter,
    op: BulkOp,
    dry_run: bool,
) -> Result<BulkResult, QueueError> {
    let scan = scan_filter(filter);
    let mut result = BulkResult {
        matched: 0,
        done: 0,
    };
    let mut steps = 0u64;
    for target in &targets.sources {
        let keys = &target.keys;
        if filter.source.as_deref().is_some_and(|s| s != keys.source) {
            continue;
        }
        let mut from: Option<String> = None;
        loop {
            let step = queue
                .dlq_scan_refs(keys, from.as_deref(), BULK_STEP, &scan)
                .await?;
            result.matched += step.matches.len();
            if !dry_run {
                result.done += match op {
                    BulkOp::Replay => {
                        let ids: Vec<&str> = step
                            .matches
                            .iter()
                            .filter(|m| target.delivers_to(&m.destination))
                            .map(|m| m.dlq_id.as_str())
                            .collect();
                        queue
                            .replay_many(keys, &ids)
                            .await?
                            .iter()
                            .filter(|moved| moved.is_some())
                            .count()
                    }
                    BulkOp::Purge => queue.dlq_delete_many(keys, &step.matches).await?,
                };
            }
            steps += 1;
            if steps.is_multiple_of(100) {
                tracing::info!(
                    matched = result.matched,
                    done = result.done,
                    op = op.verb(),
                    "bulk dead-letter operation in progress"
                );
            }
            match step.last.filter(|_| step.more) {
                Some(last) => from = Some(format!("({last}")),
                None => break,
            }
        }
    }
    if !dry_run {
        tracing::info!(
            matched = result.matched,
            done = result.done,
            %filter,
            op = op.verb(),
            "bulk dead-letter operation"
        );
    }
    Ok(result)
}

/// Finds an entry by id in the given sources.
pub async fn find<'k>(
    queue: &Queue,
    sources: impl IntoIterator<Item = &'k SourceKeys>,
    id: &str,
) -> Result<Option<DlqItem>, QueueError> {
    for keys in sources {
        if let Some(entry) = queue.dlq_get(keys, id).await? {
            let mut item = DlqItem::from_entry(&keys.source, entry);
            if item.destination.is_empty() {
                item.destination = queue.heir(keys).await?.unwrap_or_default();
            }
            return Ok(Some(item));
        }
    }
    Ok(None)
}

/// True if `id` looks like a stream id, so user input never reaches Redis
/// as a range expression.
pub fn valid_id(id: &str) -> bool {
    let Some((ms, seq)) = id.split_once('-') else {
        return false;
    };
    !ms.is_empty()
        && !seq.is_empty()
        && ms.bytes().all(|b| b.is_ascii_digit())
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_is_logged_as_its_set_fields_quoted() {
        assert_eq!(Filter::default().to_string(), "all");
        let filter = Filter {
            source: Some("stripe".into()),
            event_type: Some("a\nforged".into()),
            reason: Some(DeadReason::MaxAttempts),
            ..Filter::default()
        };
        assert_eq!(
            filter.to_string(),
            r#"source="stripe" event_type="a\nforged" reason="max_attempts""#
        );
    }

    #[test]
    fn ids_are_validated() {
        assert!(valid_id("1700000000000-0"));
        assert!(!valid_id("+"));
        assert!(!valid_id("-"));
        assert!(!valid_id("1700-"));
        assert!(!valid_id("(1700-0"));
    }

    #[test]
    fn detail_shows_binary_bodies_as_base64() {
        let item = DlqItem::from_entry(
            "s",
            StoredEntry {
                id: "1-0".into(),
                fields: vec![
                    ("body".into(), Bytes::from_static(b"\xff\x00")),
                    (
                        "hdr".into(),
                        Bytes::from_static(b"content-type: a/b\nx-y: z\nX-Gitlab-Token: hush\n"),
                    ),
                ],
            },
        );
        let detail = item.detail();
        assert_eq!(detail.shown.body, None);
        assert_eq!(detail.shown.body_base64.as_deref(), Some("/wA="));
        assert_eq!(detail.shown.content_type, "a/b");
        assert_eq!(detail.shown.headers.len(), 3);
        assert_eq!(
            detail.shown.headers[2],
            ("X-Gitlab-Token".into(), shown::REDACTED.into())
        );
    }
}
