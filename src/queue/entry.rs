//! What a stream entry holds: its field names, how request headers and the
//! attempt history are written into it, and the one decoder that turns a
//! reply's `[id, fields]` into a typed entry.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};
use fred::types::{Resp3Frame, Value};
use http::HeaderMap;

use super::QueueError;
use super::reply::{frame_bytes, frame_kind, parse_ascii, reply, value_bytes, value_string};

/// Field names of a stream entry (short: they are stored with every event).
pub mod field {
    /// Event id (provider's idempotency key).
    pub const ID: &str = "id";
    /// Event type, may be empty.
    pub const TYPE: &str = "type";
    /// Content-Type of the original request, kept for delivery.
    pub const CONTENT_TYPE: &str = "ct";
    /// Request headers as `name: value\n` lines, byte-exact.
    pub const HEADERS: &str = "hdr";
    /// Raw body, byte-exact.
    pub const BODY: &str = "body";
    /// Unix ms when hookd accepted the event.
    pub const RECEIVED: &str = "rcv";
    /// Delivery attempts already made.
    pub const ATTEMPTS: &str = "att";
    /// One line per finished attempt: `attempt\tunix_ms\tstatus\terror\n`.
    pub const LOG: &str = "log";
    /// DLQ only: why the event was dead-lettered ([`super::DeadReason`]).
    pub const REASON: &str = "reason";
    /// DLQ only: last HTTP status (empty if none).
    pub const STATUS: &str = "status";
    /// DLQ only: last error text.
    pub const ERROR: &str = "error";
    /// DLQ only: unix ms when dead-lettered.
    pub const DEAD_AT: &str = "dead_at";
    /// DLQ only: the stream entry id it had.
    pub const ENTRY: &str = "entry";
    /// DLQ only: the destination it died for.
    pub const DESTINATION: &str = "dest";
    /// A replayed copy: the only destination it is for.
    pub const TO: &str = "to";
    /// A replayed copy: the stream entry id of the event it copies.
    pub const OF: &str = "of";
}

/// Why an event was dead-lettered; stored as its name in the DLQ entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// The destination answered a 4xx that retrying cannot fix.
    Rejected,
    /// The last of `retry.max_attempts` attempts failed.
    MaxAttempts,
    /// Handed out more than `worker.max_deliveries` times without an
    /// outcome: it crashes its consumers.
    MaxDeliveries,
}

impl DeadReason {
    pub const ALL: [DeadReason; 3] = [Self::Rejected, Self::MaxAttempts, Self::MaxDeliveries];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::MaxAttempts => "max_attempts",
            Self::MaxDeliveries => "max_deliveries",
        }
    }

    /// Whether the move to the DLQ ends a delivery attempt (counted in
    /// the entry's attempts) rather than a crash loop (no attempt ran).
    pub fn ends_an_attempt(self) -> bool {
        self != Self::MaxDeliveries
    }
}

impl fmt::Display for DeadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeadReason {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not one of rejected, max_attempts, max_deliveries"))
    }
}

/// An entry read back from the stream, ready to deliver.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub entry_id: String,
    pub event_id: String,
    pub event_type: String,
    pub content_type: Option<Bytes>,
    pub headers: Bytes,
    pub body: Bytes,
    pub received_ms: u64,
    /// Attempts this destination has made (from its attempts record).
    pub attempts: u32,
    /// A replayed copy's only destination.
    pub to: Option<String>,
    /// A replayed copy: the entry it copies.
    pub of: Option<String>,
}

impl Envelope {
    /// Whether `destination` should deliver it (a replay addressed to
    /// another destination is not for it).
    pub fn is_for(&self, destination: &str) -> bool {
        self.to.as_deref().is_none_or(|to| to == destination)
    }

    /// The event's entry id in the log: the original's for a replayed copy.
    pub fn event_entry(&self) -> &str {
        self.of.as_deref().unwrap_or(&self.entry_id)
    }
}

/// An entry with all its fields as stored (DLQ entries: their fields vary).
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub id: String,
    pub fields: Vec<(String, Bytes)>,
}

/// What an entry can be decoded into.
pub(super) trait FromFields {
    fn new(entry_id: String) -> Self;
    fn set(&mut self, name: &[u8], value: Bytes);
}

impl FromFields for Envelope {
    fn new(entry_id: String) -> Self {
        Envelope {
            entry_id,
            event_id: String::new(),
            event_type: String::new(),
            content_type: None,
            headers: Bytes::new(),
            body: Bytes::new(),
            received_ms: 0,
            attempts: 0,
            to: None,
            of: None,
        }
    }

    /// Runs once per field of every delivered event, so names are matched
    /// as bytes and only the event id and type become Strings.
    fn set(&mut self, name: &[u8], value: Bytes) {
        let text = || String::from_utf8_lossy(&value).into_owned();
        match name {
            n if n == field::ID.as_bytes() => self.event_id = text(),
            n if n == field::TYPE.as_bytes() => self.event_type = text(),
            n if n == field::RECEIVED.as_bytes() => {
                self.received_ms = parse_ascii(&value).unwrap_or(0)
            }
            n if n == field::CONTENT_TYPE.as_bytes() => self.content_type = Some(value),
            n if n == field::TO.as_bytes() => self.to = Some(text()),
            n if n == field::OF.as_bytes() => self.of = Some(text()),
            n if n == field::HEADERS.as_bytes() => self.headers = value,
            n if n == field::BODY.as_bytes() => self.body = value,
            _ => {}
        }
    }
}

impl FromFields for StoredEntry {
    fn new(entry_id: String) -> Self {
        Self {
            id: entry_id,
            fields: Vec::new(),
        }
    }

    fn set(&mut self, name: &[u8], value: Bytes) {
        self.fields
            .push((String::from_utf8_lossy(name).into_owned(), value));
    }
}

/// One `[id, fields]` entry as a reply carries it: converted by fred
/// (XRANGE, scripts) or as the raw frame (the delivery read, which skips
/// fred's conversion of every field and its UTF-8 check of each body).
pub(super) enum RawEntry {
    Value(Value),
    Frame(Resp3Frame),
}

/// The entry decoder: RESP2 replies carry fields as a flat array, RESP3
/// ones as a map.
pub(super) fn decode<T: FromFields>(op: &'static str, raw: RawEntry) -> Result<T, QueueError> {
    match raw {
        RawEntry::Value(value) => {
            let mut parts = match value {
                Value::Array(parts) if parts.len() >= 2 => parts,
                other => return Err(reply(op, format!("entry is {:?}", other.kind()))),
            };
            let fields = parts.swap_remove(1);
            let entry_id = value_string(&parts[0]).ok_or_else(|| reply(op, "entry id"))?;
            let mut entry = T::new(entry_id);
            match fields {
                Value::Array(items) => {
                    if items.len() % 2 != 0 {
                        return Err(reply(op, "odd field list"));
                    }
                    for pair in items.chunks_exact(2) {
                        let name = pair[0].as_bytes().ok_or_else(|| reply(op, "field name"))?;
                        let value =
                            value_bytes(&pair[1]).ok_or_else(|| reply(op, "field value"))?;
                        entry.set(name, value);
                    }
                }
                Value::Map(map) => {
                    for (name, value) in map.inner() {
                        let value = value_bytes(&value).ok_or_else(|| reply(op, "field value"))?;
                        entry.set(name.as_bytes(), value);
                    }
                }
                other => return Err(reply(op, format!("entry fields are {:?}", other.kind()))),
            }
            Ok(entry)
        }
        RawEntry::Frame(frame) => {
            let mut parts = match frame {
                Resp3Frame::Array { data, .. } if data.len() >= 2 => data,
                other => return Err(reply(op, format!("entry is {}", frame_kind(&other)))),
            };
            let fields = parts.swap_remove(1);
            let entry_id = frame_bytes(&parts[0])
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| reply(op, "entry id"))?;
            let mut entry = T::new(entry_id);
            let mut set = |name: &Resp3Frame, value: &Resp3Frame| {
                let name = frame_bytes(name).ok_or_else(|| reply(op, "field name"))?;
                let value = frame_bytes(value).ok_or_else(|| reply(op, "field value"))?;
                entry.set(&name, value);
                Ok::<_, QueueError>(())
            };
            match fields {
                Resp3Frame::Array { data, .. } => {
                    if data.len() % 2 != 0 {
                        return Err(reply(op, "odd field list"));
                    }
                    for pair in data.chunks_exact(2) {
                        set(&pair[0], &pair[1])?;
                    }
                }
                Resp3Frame::Map { data, .. } => {
                    for (name, value) in &data {
                        set(name, value)?;
                    }
                }
                other => {
                    return Err(reply(
                        op,
                        format!("entry fields are {}", frame_kind(&other)),
                    ));
                }
            }
            Ok(entry)
        }
    }
}

impl Envelope {
    /// An entry converted by fred (XRANGE, script replies).
    pub fn from_stream_entry(op: &'static str, entry: Value) -> Result<Self, QueueError> {
        decode(op, RawEntry::Value(entry))
    }
}

/// Serialises request headers byte-exact as `name: value\n` lines.
pub fn encode_headers(headers: &HeaderMap) -> Bytes {
    encode_headers_except(headers, &[])
}

/// [`encode_headers`] without the headers named in `skip` (lowercase).
pub fn encode_headers_except(headers: &HeaderMap, skip: &[&str]) -> Bytes {
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 3)
        .sum();
    let mut buf = BytesMut::with_capacity(size);
    for (name, value) in headers {
        if skip.contains(&name.as_str()) {
            continue;
        }
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.freeze()
}

/// Inverse of [`encode_headers`]; lines that do not parse are skipped.
/// Runs once per delivery, so it scans with memchr and allocates nothing.
pub fn decode_headers(raw: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    let mut rest = raw;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            if let Some(colon) = memchr::memchr(b':', line) {
                let value = &line[colon + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                return Some((&line[..colon], value));
            }
        }
        None
    })
}

/// How many headers [`decode_headers`] will yield at most.
pub fn header_count(raw: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', raw).count() + usize::from(!raw.ends_with(b"\n"))
}

/// One line of an entry's attempt history; tabs and newlines are replaced
/// so the format stays parseable.
pub fn history_line(
    attempt: u32,
    at_ms: u64,
    status: Option<u16>,
    error: &str,
    duration_ms: Option<u64>,
) -> String {
    use std::fmt::Write as _;
    // One allocation: a line is written for every delivery.
    const ERROR_CHARS: usize = 300;
    let mut line = String::with_capacity(48 + error.len().min(4 * ERROR_CHARS));
    // Writing into a String cannot fail.
    let _ = write!(line, "{attempt}\t{at_ms}\t");
    if let Some(status) = status {
        let _ = write!(line, "{status}");
    }
    line.push('\t');
    line.extend(error.chars().take(ERROR_CHARS).map(|c| {
        if c == '\t' || c == '\n' || c == '\r' {
            ' '
        } else {
            c
        }
    }));
    line.push('\t');
    if let Some(duration) = duration_ms {
        let _ = write!(line, "{duration}");
    }
    line.push('\n');
    line
}

/// One attempt from an entry's history.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub at_ms: u64,
    pub status: Option<u16>,
    pub error: String,
    /// How long the attempt took (absent in records written before it was
    /// kept, and for steps that were no request).
    pub duration_ms: Option<u64>,
}

/// Inverse of [`history_line`], line by line; lines that do not parse are
/// skipped. Reads the four-field lines older versions wrote too.
pub fn parse_history(log: &str) -> Vec<AttemptRecord> {
    log.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(5, '\t');
            Some(AttemptRecord {
                attempt: parts.next()?.parse().ok()?,
                at_ms: parts.next()?.parse().ok()?,
                status: parts.next().and_then(|s| s.parse().ok()),
                error: parts.next().unwrap_or("").to_owned(),
                duration_ms: parts.next().and_then(|d| d.parse().ok()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_byte_exact() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", http::HeaderValue::from_static("1: two"));
        headers.append("x-a", http::HeaderValue::from_static("3"));
        headers.append(
            "x-bin",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap(),
        );
        let raw = encode_headers(&headers);
        let decoded: Vec<_> = decode_headers(&raw).collect();
        assert_eq!(header_count(&raw), 3);
        assert_eq!(
            decoded,
            vec![
                (&b"x-a"[..], &b"1: two"[..]),
                (&b"x-a"[..], &b"3"[..]),
                (&b"x-bin"[..], &b"caf\xc3\xa9 \xff"[..]),
            ]
        );
        let without = encode_headers_except(&headers, &["x-a"]);
        assert_eq!(decode_headers(&without).count(), 1);
    }

    #[test]
    fn history_lines_stay_one_line_and_parse_back() {
        let line = history_line(2, 1000, Some(503), "bad\tthing\nhappened", Some(12));
        assert_eq!(line, "2\t1000\t503\tbad thing happened\t12\n");
        assert_eq!(history_line(1, 5, None, "x", None), "1\t5\t\tx\t\n");
        let parsed = parse_history(&format!("{line}1\t5\t\tx\n"));
        assert_eq!(
            parsed,
            vec![
                AttemptRecord {
                    attempt: 2,
                    at_ms: 1000,
                    status: Some(503),
                    error: "bad thing happened".into(),
                    duration_ms: Some(12),
                },
                AttemptRecord {
                    attempt: 1,
                    at_ms: 5,
                    status: None,
                    error: "x".into(),
                    duration_ms: None,
                },
            ]
        );
    }

    #[test]
    fn dead_reasons_round_trip() {
        for reason in DeadReason::ALL {
            assert_eq!(reason.as_str().parse::<DeadReason>(), Ok(reason));
        }
        assert!("tired".parse::<DeadReason>().is_err());
        assert!(!DeadReason::MaxDeliveries.ends_an_attempt());
        assert!(DeadReason::Rejected.ends_an_attempt());
    }

    #[test]
    fn envelope_from_a_converted_entry() {
        let entry = |fields: Value| Value::Array(vec![Value::from("1-0"), fields]);
        let flat = Value::Array(
            [
                ("id", Value::from("evt")),
                ("type", Value::from("t")),
                ("body", Value::Bytes(Bytes::from_static(b"\x00\xff"))),
                ("att", Value::from("3")),
                ("rcv", Value::Integer(17)),
                ("unknown", Value::from("ignored")),
            ]
            .into_iter()
            .flat_map(|(k, v)| [Value::from(k), v])
            .collect(),
        );
        let env = Envelope::from_stream_entry("test", entry(flat)).unwrap();
        assert_eq!(env.entry_id, "1-0");
        assert_eq!(env.event_id, "evt");
        assert_eq!(env.event_type, "t");
        assert_eq!(env.received_ms, 17);
        assert_eq!(&env.body[..], b"\x00\xff");
        assert_eq!(env.content_type, None);
        assert!(env.is_for("anyone"));

        let odd = Value::Array(vec![Value::from("id")]);
        assert!(Envelope::from_stream_entry("test", entry(odd)).is_err());
        assert!(Envelope::from_stream_entry("test", Value::Null).is_err());
    }

    #[test]
    fn envelope_from_a_raw_frame() {
        let blob = |b: &'static [u8]| Resp3Frame::BlobString {
            data: Bytes::from_static(b),
            attributes: None,
        };
        let pairs = [
            (blob(b"id"), blob(b"evt")),
            (blob(b"type"), blob(b"t")),
            (blob(b"ct"), blob(b"application/json")),
            (blob(b"body"), blob(b"\x00\xff")),
            (blob(b"to"), blob(b"billing")),
            (blob(b"of"), blob(b"0-1")),
            (
                blob(b"rcv"),
                Resp3Frame::Number {
                    data: 17,
                    attributes: None,
                },
            ),
            (blob(b"unknown"), blob(b"ignored")),
        ];
        let entry = |fields: Resp3Frame| Resp3Frame::Array {
            data: vec![blob(b"1-0"), fields],
            attributes: None,
        };
        // RESP2 replies arrive as flat arrays, RESP3 ones as maps.
        let flat = Resp3Frame::Array {
            data: pairs.iter().cloned().flat_map(|(k, v)| [k, v]).collect(),
            attributes: None,
        };
        let map = Resp3Frame::Map {
            data: pairs.iter().cloned().collect(),
            attributes: None,
        };
        for fields in [flat, map] {
            let env: Envelope = decode("test", RawEntry::Frame(entry(fields))).unwrap();
            assert_eq!(env.entry_id, "1-0");
            assert_eq!(env.event_id, "evt");
            assert_eq!(env.event_type, "t");
            assert_eq!(env.content_type.as_deref(), Some(&b"application/json"[..]));
            assert_eq!(&env.body[..], b"\x00\xff");
            assert!(env.is_for("billing") && !env.is_for("analytics"));
            assert_eq!(env.event_entry(), "0-1");
            assert_eq!(env.received_ms, 17);
        }
        let stored: StoredEntry = decode(
            "test",
            RawEntry::Frame(entry(Resp3Frame::Array {
                data: vec![blob(b"reason"), blob(b"rejected")],
                attributes: None,
            })),
        )
        .unwrap();
        assert_eq!(stored.id, "1-0");
        assert_eq!(
            stored.fields,
            vec![("reason".to_owned(), Bytes::from_static(b"rejected"))]
        );

        let odd = Resp3Frame::Array {
            data: vec![blob(b"id")],
            attributes: None,
        };
        assert!(decode::<Envelope>("test", RawEntry::Frame(entry(odd))).is_err());
        assert!(decode::<Envelope>("test", RawEntry::Frame(Resp3Frame::Null)).is_err());
    }
}
