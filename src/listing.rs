//! Newest-first listings across sources, paged by cursor: the DLQ and the
//! event log both walk each source's stream from the newest entry down,
//! a bounded number of entries per page, and merge what they found.

use std::cmp::Ordering;
use std::fmt;

/// Writes a listing filter's set fields as `key="value"` pairs, or `all`
/// when none is set: how the log names what a bulk operation acted on.
/// Values are quoted, so one taken from a query string cannot break the
/// log line.
pub fn write_filter(f: &mut fmt::Formatter<'_>, fields: &[(&str, Option<&str>)]) -> fmt::Result {
    let mut set = fields
        .iter()
        .filter_map(|(key, value)| value.map(|value| (key, value)));
    let Some((key, value)) = set.next() else {
        return f.write_str("all");
    };
    write!(f, "{key}={value:?}")?;
    for (key, value) in set {
        write!(f, " {key}={value:?}")?;
    }
    Ok(())
}

/// Rows a page holds unless the request says otherwise.
pub const DEFAULT_PAGE: usize = 50;

/// Something listed: a stream entry of one source.
pub trait Listed {
    fn entry_id(&self) -> &str;
    fn source(&self) -> &str;

    fn order_key(&self) -> OrderKey {
        OrderKey::new(self.entry_id(), self.source())
    }
}

fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// Where an entry sorts in the newest-first listing across sources.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    ms: u64,
    seq: u64,
    source: String,
}

impl OrderKey {
    pub fn new(id: &str, source: &str) -> Self {
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

    /// Whether `item` comes after this position (is older).
    pub fn is_after(&self, item: &impl Listed) -> bool {
        item.order_key().cmp(&OrderKey::new(&self.id, &self.source)) == Ordering::Less
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}~{}", self.id, self.source)
    }
}

/// What a walk of one source found for a page.
pub struct SourceScan<T> {
    pub found: Vec<T>,
    /// The last entry examined, when the source goes on below it:
    /// everything newer was looked at, nothing older was.
    pub floor: Option<OrderKey>,
}

/// One source's part of a page, gathered scan step by scan step: keeps
/// the rows after the cursor, and says when the part is complete (the
/// source ended, the page is full, or `per_page` entries were examined).
pub struct Gather<'a, T> {
    found: Vec<T>,
    examined: usize,
    cursor: Option<&'a Cursor>,
    limit: usize,
    per_page: usize,
    source: &'a str,
}

impl<'a, T: Listed> Gather<'a, T> {
    pub fn new(source: &'a str, cursor: Option<&'a Cursor>, limit: usize, per_page: usize) -> Self {
        Self {
            found: Vec::new(),
            examined: 0,
            cursor,
            limit,
            per_page,
            source,
        }
    }

    /// Rows the next step should look for: one more than the page holds,
    /// so the page knows it is not the last.
    pub fn wanted(&self) -> usize {
        (self.limit + 1).saturating_sub(self.found.len()).max(1)
    }

    /// Takes a step's rows. `last` is the last entry the step examined
    /// when the source goes on below it. Break: the source's part of the
    /// page; Continue: the entry to go on below.
    pub fn take(
        &mut self,
        rows: impl IntoIterator<Item = T>,
        examined: usize,
        last: Option<String>,
    ) -> std::ops::ControlFlow<SourceScan<T>, String> {
        use std::ops::ControlFlow::{Break, Continue};
        self.examined += examined;
        let cursor = self.cursor;
        self.found.extend(
            rows.into_iter()
                .filter(|row| cursor.is_none_or(|c| c.is_after(row))),
        );
        let Some(last) = last else {
            return Break(SourceScan {
                found: std::mem::take(&mut self.found),
                floor: None,
            });
        };
        if self.found.len() > self.limit || self.examined >= self.per_page {
            return Break(SourceScan {
                found: std::mem::take(&mut self.found),
                floor: Some(OrderKey::new(&last, self.source)),
            });
        }
        Continue(last)
    }
}

/// Merges the sources' finds into one page of at most `limit` items,
/// newest first, and the cursor of the next page. A page is never the
/// last while some source may hold more matches.
pub fn page<T: Listed>(scans: Vec<SourceScan<T>>, limit: usize) -> (Vec<T>, Option<String>) {
    let mut items = Vec::new();
    // The highest point down to which some source was not yet examined:
    // only what lies above it is known to be complete.
    let mut floor: Option<OrderKey> = None;
    for scan in scans {
        items.extend(scan.found);
        if let Some(source_floor) = scan.floor {
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
        items.last().map(Listed::order_key)
    } else {
        floor
    };
    (items, next.map(|key| key.cursor().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(&'static str, &'static str);

    impl Listed for Item {
        fn entry_id(&self) -> &str {
            self.0
        }
        fn source(&self) -> &str {
            self.1
        }
    }

    #[test]
    fn cursors_round_trip_and_order() {
        let cursor = Cursor::parse("1700-3~stripe").unwrap();
        assert_eq!(cursor.to_string(), "1700-3~stripe");
        assert!(Cursor::parse("garbage").is_none());
        assert!(Cursor::parse("17x-0~a").is_none());
        assert!(cursor.is_after(&Item("1700-2", "stripe")));
        assert!(cursor.is_after(&Item("1700-3", "github")));
        assert!(!cursor.is_after(&Item("1700-3", "stripe")));
        assert!(!cursor.is_after(&Item("1701-0", "alpha")));
    }

    #[test]
    fn a_page_never_ends_while_a_source_was_cut_short() {
        // Source a was examined down to 50-0 (a match there), b to its end.
        let scans = vec![
            SourceScan {
                found: vec![Item("90-0", "a"), Item("50-0", "a")],
                floor: Some(OrderKey::new("50-0", "a")),
            },
            SourceScan {
                found: vec![Item("70-0", "b"), Item("10-0", "b")],
                floor: None,
            },
        ];
        let (items, next) = page(scans, 10);
        let ids: Vec<_> = items.iter().map(|i| i.0).collect();
        // b's 10-0 lies below a's floor: it comes on the next page.
        assert_eq!(ids, vec!["90-0", "70-0", "50-0"]);
        assert_eq!(next.as_deref(), Some("50-0~a"));
        let cursor = Cursor::parse(next.as_deref().unwrap()).unwrap();
        assert!(!cursor.is_after(&Item("50-0", "a")), "shown once");
        assert!(cursor.is_after(&Item("10-0", "b")));
    }
}
