//! Dead-letter queue operations shared by the admin API, the dashboard and
//! `hookd dlq`: filtered, paginated listing across sources (newest first),
//! inspection, replay, delete and purge.

use std::cmp::Ordering;

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::queue::{
    DeadReason, DlqMatch, DlqScanFilter, Queue, QueueError, SourceKeys, StoredEntry,
    decode_headers, field,
};

/// Entries one scan step examines inside Redis (only matches come back).
const SCAN_BATCH: usize = 1000;
/// Entries examined per source for one page: a sparse filter gets a short
/// page with a cursor rather than a request that walks a huge DLQ.
const SCAN_PER_PAGE: usize = 10_000;
pub const MAX_PAGE: usize = 500;
/// Shown instead of a secret-bearing header's value.
const REDACTED: &str = "[redacted]";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub source: Option<String>,
    pub destination: Option<String>,
    pub event_type: Option<String>,
    pub reason: Option<DeadReason>,
}

/// One attempt from an entry's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: String,
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
    /// The body as text when it is UTF-8.
    pub body: Option<String>,
    /// The body as base64 when it is not UTF-8.
    pub body_base64: Option<String>,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
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
        let (body, body_base64) = match std::str::from_utf8(&self.body) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&self.body)),
            ),
        };
        let headers: Vec<(String, String)> = decode_headers(&self.headers)
            .map(|(k, v)| {
                let name = String::from_utf8_lossy(k).into_owned();
                let value = if crate::verify::is_hidden_in_views(&name) {
                    REDACTED.to_owned()
                } else {
                    String::from_utf8_lossy(v).into_owned()
                };
                (name, value)
            })
            .collect();
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        DlqDetail {
            item: self,
            body,
            body_base64,
            content_type,
            headers,
            history: &self.history,
        }
    }

    fn order_key(&self) -> OrderKey {
        OrderKey::new(&self.id, &self.source)
    }
}

fn parse_history(log: &str) -> Vec<AttemptRecord> {
    log.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, '\t');
            Some(AttemptRecord {
                attempt: parts.next()?.parse().ok()?,
                at_ms: parts.next()?.parse().ok()?,
                status: parts.next().and_then(|s| s.parse().ok()),
                error: parts.next().unwrap_or("").to_owned(),
            })
        })
        .collect()
}

fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Where an entry sorts in the newest-first listing across sources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct OrderKey {
    ms: u64,
    seq: u64,
    source: String,
}

impl OrderKey {
    fn new(id: &str, source: &str) -> Self {
        let (ms, seq) = parse_id(id);
        Self {
            ms,
            seq,
            source: source.to_owned(),
        }
    }

    fn cursor(&self) -> Cursor {
        Cursor {
            id: format!("{}-{}", self.ms, self.seq),
            source: self.source.clone(),
        }
    }
}

/// A position in the newest-first listing: everything strictly older than
/// (id, source) comes next. Written as `<id>~<source>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub id: String,
    pub source: String,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Self> {
        let (id, source) = text.split_once('~')?;
        let (ms, seq) = id.split_once('-')?;
        ms.parse::<u64>().ok()?;
        seq.parse::<u64>().ok()?;
        Some(Self {
            id: id.to_owned(),
            source: source.to_owned(),
        })
    }

    fn is_after(&self, item: &DlqItem) -> bool {
        item.order_key().cmp(&OrderKey::new(&self.id, &self.source)) == Ordering::Less
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}~{}", self.id, self.source)
    }
}

#[derive(Debug, Serialize)]
pub struct Page {
    pub items: Vec<DlqItem>,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
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
) -> Result<(Vec<DlqItem>, Option<OrderKey>), QueueError> {
    let scan = DlqScanFilter {
        event_type: filter.event_type.as_deref().unwrap_or(""),
        reason: filter.reason.map_or("", DeadReason::as_str),
        destination: filter.destination.as_deref().unwrap_or(""),
    };
    let mut found = Vec::new();
    // Inclusive start at the cursor id: another source may share the id.
    let mut from = cursor.map(|c| c.id.clone());
    let mut examined = 0;
    loop {
        // One more than the page holds: the page then knows it is not
        // the last.
        let wanted = (limit + 1).saturating_sub(found.len()).max(1);
        let step = queue
            .dlq_scan(keys, from.as_deref(), SCAN_BATCH, wanted, &scan)
            .await?;
        examined += step.examined;
        for m in step.matches {
            let item = DlqItem::from_match(&keys.source, m);
            if cursor.is_none_or(|c| c.is_after(&item)) {
                found.push(item);
            }
        }
        let Some(last) = step.last.filter(|_| step.more) else {
            return Ok((found, None));
        };
        if found.len() > limit || examined >= SCAN_PER_PAGE {
            return Ok((found, Some(OrderKey::new(&last, &keys.source))));
        }
        from = Some(format!("({last}"));
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
    let mut items = Vec::new();
    // The highest point down to which some source was not yet examined:
    // only what lies above it is known to be complete.
    let mut floor: Option<OrderKey> = None;
    for keys in sources {
        if filter.source.as_deref().is_some_and(|s| s != keys.source) {
            continue;
        }
        let (found, source_floor) = scan_source(queue, keys, filter, cursor, limit).await?;
        items.extend(found);
        if let Some(source_floor) = source_floor {
            floor = floor.max(Some(source_floor));
        }
    }
    // The floor itself was examined (it is the last entry a source
    // looked at), so it belongs to this page; the next starts below it.
    if let Some(floor) = &floor {
        items.retain(|item| item.order_key() >= *floor);
    }
    items.sort_by_key(|item| std::cmp::Reverse(item.order_key()));
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(DlqItem::order_key)
    } else {
        floor
    };
    Ok(Page {
        items,
        next_cursor: next.map(|key| key.cursor().to_string()),
    })
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
    sources: Vec<(SourceKeys, Vec<String>)>,
}

impl Targets {
    pub fn new(sources: impl IntoIterator<Item = (SourceKeys, Vec<String>)>) -> Self {
        let mut sources: Vec<_> = sources.into_iter().collect();
        sources.sort_by(|a, b| a.0.source.cmp(&b.0.source));
        Self { sources }
    }

    pub fn keys(&self) -> impl Iterator<Item = &SourceKeys> + Clone {
        self.sources.iter().map(|(keys, _)| keys)
    }

    pub fn source(&self, name: &str) -> Option<&SourceKeys> {
        self.keys().find(|keys| keys.source == name)
    }

    /// Whether `destination` of `source` is configured.
    pub fn delivers_to(&self, source: &str, destination: &str) -> bool {
        self.sources
            .iter()
            .any(|(keys, names)| keys.source == source && names.iter().any(|n| n == destination))
    }
}

/// Replays or deletes every matching entry, however many there are: it
/// walks the DLQ page by page (memory stays at one page) and acts on each
/// page with one script call or command per source. A replay skips entries
/// whose destination is no longer configured (they stay in the DLQ).
pub async fn bulk(
    queue: &Queue,
    targets: &Targets,
    filter: &Filter,
    op: BulkOp,
    dry_run: bool,
) -> Result<BulkResult, QueueError> {
    let sources = targets.keys();
    let mut result = BulkResult {
        matched: 0,
        done: 0,
    };
    let mut cursor: Option<Cursor> = None;
    let mut pages = 0u64;
    loop {
        let page = list(queue, sources.clone(), filter, cursor.as_ref(), MAX_PAGE).await?;
        result.matched += page.items.len();
        if !dry_run {
            for keys in sources.clone() {
                let ids: Vec<&str> = page
                    .items
                    .iter()
                    .filter(|item| item.source == keys.source)
                    .filter(|item| {
                        op == BulkOp::Purge || targets.delivers_to(&item.source, &item.destination)
                    })
                    .map(|item| item.id.as_str())
                    .collect();
                result.done += match op {
                    BulkOp::Replay => queue
                        .replay_many(keys, &ids)
                        .await?
                        .iter()
                        .filter(|moved| moved.is_some())
                        .count(),
                    BulkOp::Purge => queue.dlq_delete_many(keys, &ids).await?,
                };
            }
        }
        pages += 1;
        if pages.is_multiple_of(100) {
            tracing::info!(
                matched = result.matched,
                done = result.done,
                op = op.verb(),
                "bulk dead-letter operation in progress"
            );
        }
        match page.next_cursor.as_deref().and_then(Cursor::parse) {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    if !dry_run {
        tracing::info!(
            matched = result.matched,
            done = result.done,
            ?filter,
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
    fn history_lines_parse() {
        let log = "1\t100\t503\tupstream down\n2\t200\t\ttimed out after 1s\n";
        assert_eq!(
            parse_history(log),
            vec![
                AttemptRecord {
                    attempt: 1,
                    at_ms: 100,
                    status: Some(503),
                    error: "upstream down".into()
                },
                AttemptRecord {
                    attempt: 2,
                    at_ms: 200,
                    status: None,
                    error: "timed out after 1s".into()
                },
            ]
        );
    }

    #[test]
    fn cursors_round_trip_and_order() {
        let cursor = Cursor::parse("1700-3~stripe").unwrap();
        assert_eq!(cursor.to_string(), "1700-3~stripe");
        assert!(Cursor::parse("garbage").is_none());
        assert!(Cursor::parse("17x-0~a").is_none());
        let item = |id: &str, source: &str| {
            DlqItem::from_entry(
                source,
                StoredEntry {
                    id: id.into(),
                    fields: vec![],
                },
            )
        };
        assert!(cursor.is_after(&item("1700-2", "stripe")));
        assert!(cursor.is_after(&item("1700-3", "github")));
        assert!(!cursor.is_after(&item("1700-3", "stripe")));
        assert!(!cursor.is_after(&item("1700-3", "zzz")));
        assert!(!cursor.is_after(&item("1701-0", "a")));
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
        assert_eq!(detail.body, None);
        assert_eq!(detail.body_base64.as_deref(), Some("/wA="));
        assert_eq!(detail.content_type, "a/b");
        assert_eq!(detail.headers.len(), 3);
        assert_eq!(
            detail.headers[2],
            ("X-Gitlab-Token".into(), REDACTED.into())
        );
    }
}
