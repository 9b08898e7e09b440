//! One spooled event on disk, and the tolerant reading of a segment.
//!
//! A record is `magic (4) | payload length (u32 LE) | crc32 of the payload
//! (u32 LE) | payload`; the payload is the received time (u64 LE) and six
//! length-prefixed (u32 LE) fields: source, event id, event type, content
//! type, headers, body. The magic lets a reader find the next intact
//! record after damage; the checksum tells damage from data.

use std::ops::Range;

use bytes::Bytes;

use crate::queue::NewEvent;

const MAGIC: &[u8; 4] = b"HKS1";
const HEAD: usize = 12;
const FIELDS: usize = 6;

/// A spooled event as read back, sharing the segment's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledEvent {
    pub source: String,
    pub event_id: String,
    pub event_type: String,
    pub content_type: Option<Bytes>,
    pub headers: Bytes,
    pub body: Bytes,
    pub received_ms: u64,
}

impl SpooledEvent {
    /// The event as the ingest script takes it.
    pub fn as_new(&self) -> NewEvent<'_> {
        NewEvent {
            event_id: &self.event_id,
            event_type: &self.event_type,
            content_type: self.content_type.as_deref(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            received_ms: self.received_ms,
        }
    }
}

/// The record's bytes for an event of `source`, ready to append.
pub fn encode(source: &str, event: &NewEvent<'_>) -> Vec<u8> {
    let fields: [&[u8]; FIELDS] = [
        source.as_bytes(),
        event.event_id.as_bytes(),
        event.event_type.as_bytes(),
        event.content_type.unwrap_or_default(),
        &event.headers,
        &event.body,
    ];
    let payload_len = 8 + fields.iter().map(|f| 4 + f.len()).sum::<usize>();
    let mut out = Vec::with_capacity(HEAD + payload_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&event.received_ms.to_le_bytes());
    for field in fields {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field);
    }
    let crc = crc32fast::hash(&out[HEAD..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The record starting at `at`, if one is intact there: its end offset.
fn intact_at(bytes: &[u8], at: usize) -> Option<usize> {
    let head = bytes.get(at..at + HEAD)?;
    if &head[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[8..12].try_into().ok()?);
    let payload = bytes.get(at + HEAD..at + HEAD + len)?;
    (crc32fast::hash(payload) == crc && decode_payload(payload).is_some())
        .then_some(at + HEAD + len)
}

fn decode_payload(payload: &[u8]) -> Option<[Range<usize>; FIELDS]> {
    let mut at = 8;
    let mut ranges: [Range<usize>; FIELDS] = Default::default();
    for range in ranges.iter_mut() {
        let len = u32::from_le_bytes(payload.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        payload.get(at..at + len)?;
        *range = at..at + len;
        at += len;
    }
    (at == payload.len()).then_some(ranges)
}

/// Decodes the intact record at `range` (as [`scan`] found it) of
/// `segment`, sharing its buffer.
pub fn decode(segment: &Bytes, range: Range<usize>) -> Option<SpooledEvent> {
    let payload = segment.slice(range.start + HEAD..range.end);
    let ranges = decode_payload(&payload)?;
    let received_ms = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let text = |r: &Range<usize>| String::from_utf8(payload[r.clone()].to_vec()).ok();
    let [source, id, kind, content_type, headers, body] = ranges;
    Some(SpooledEvent {
        source: text(&source)?,
        event_id: text(&id)?,
        event_type: text(&kind)?,
        content_type: (!content_type.is_empty()).then(|| payload.slice(content_type)),
        headers: payload.slice(headers),
        body: payload.slice(body),
        received_ms,
    })
}

/// What a segment holds: its intact records in order, the damaged runs
/// between them, and bytes after the last intact record that no intact
/// record follows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Range<usize>>,
    pub damaged: Vec<Range<usize>>,
    pub tail: Option<Range<usize>>,
}

/// Reads a segment record by record; after damage, resumes at the next
/// offset where an intact record starts.
pub fn scan(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0;
    while at < bytes.len() {
        if let Some(end) = intact_at(bytes, at) {
            scan.records.push(at..end);
            at = end;
            continue;
        }
        let next = (at + 1..bytes.len())
            .filter(|&i| bytes[i..].starts_with(MAGIC))
            .find(|&i| intact_at(bytes, i).is_some());
        match next {
            Some(next) => {
                scan.damaged.push(at..next);
                at = next;
            }
            None => {
                scan.tail = Some(at..bytes.len());
                break;
            }
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Vec<u8> {
        encode(
            "github",
            &NewEvent {
                event_id: id,
                event_type: "push",
                content_type: Some(b"application/json"),
                headers: Bytes::from_static(b"x-github-event: push\n"),
                body: Bytes::from_static(b"{\"zen\":\"keep it logically awesome\"}"),
                received_ms: 1_700_000_000_123,
            },
        )
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let bytes = Bytes::from(record("d-1"));
        let scan = scan(&bytes);
        assert_eq!(scan.records, vec![0..bytes.len()]);
        let event = decode(&bytes, scan.records[0].clone()).unwrap();
        assert_eq!(event.source, "github");
        assert_eq!(event.event_id, "d-1");
        assert_eq!(
            event.content_type.as_deref(),
            Some(&b"application/json"[..])
        );
        assert_eq!(&event.body[..], b"{\"zen\":\"keep it logically awesome\"}");
        assert_eq!(event.received_ms, 1_700_000_000_123);
    }

    #[test]
    fn a_torn_tail_is_reported_after_the_last_intact_record() {
        let mut bytes = record("a");
        let first = bytes.len();
        let second = record("b");
        bytes.extend_from_slice(&second[..second.len() - 5]);
        let scan = scan(&bytes);
        assert_eq!(scan.records, vec![0..first]);
        assert!(scan.damaged.is_empty());
        assert_eq!(scan.tail, Some(first..bytes.len()));
    }

    #[test]
    fn a_damaged_record_in_the_middle_is_skipped_and_reported() {
        let (a, b, c) = (record("a"), record("b"), record("c"));
        let mut bytes = [a.clone(), b.clone(), c.clone()].concat();
        // Flip a bit in b's body: its checksum no longer matches.
        let at = a.len() + b.len() - 3;
        bytes[at] ^= 0x40;
        let scan = scan(&bytes);
        let c_start = a.len() + b.len();
        assert_eq!(scan.records, vec![0..a.len(), c_start..bytes.len()]);
        assert_eq!(scan.damaged, vec![a.len()..c_start]);
        assert_eq!(scan.tail, None);
    }

    #[test]
    fn a_damaged_length_does_not_swallow_the_records_after_it() {
        let (a, b, c) = (record("a"), record("b"), record("c"));
        let mut bytes = [a.clone(), b.clone(), c.clone()].concat();
        bytes[a.len() + 4..a.len() + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan(&bytes);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.damaged, vec![a.len()..a.len() + b.len()]);
    }
}
