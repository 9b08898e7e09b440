//! Taking Redis replies apart: fred's `Value`s and raw RESP frames.

use bytes::Bytes;
use fred::prelude::Error as FredError;
use fred::types::{Resp3Frame, Value};

use super::QueueError;

pub(super) fn redis(op: &'static str) -> impl FnOnce(FredError) -> QueueError {
    move |source| QueueError::Redis { op, source }
}

pub(super) fn reply(op: &'static str, detail: impl Into<String>) -> QueueError {
    QueueError::Reply {
        op,
        detail: detail.into(),
    }
}

pub(super) fn value_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Bytes(b) => Some(b.clone()),
        Value::String(s) => Some(s.inner().clone()),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        _ => None,
    }
}

pub(super) fn value_string(value: &Value) -> Option<String> {
    value_bytes(value).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(super) fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => value_string(other)?.parse().ok(),
    }
}

pub(super) fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A string frame's bytes (a cheap `Bytes` clone).
pub(super) fn frame_bytes(frame: &Resp3Frame) -> Option<Bytes> {
    match frame {
        Resp3Frame::BlobString { data, .. } | Resp3Frame::SimpleString { data, .. } => {
            Some(data.clone())
        }
        Resp3Frame::Number { data, .. } => Some(Bytes::from(data.to_string())),
        _ => None,
    }
}

/// For error messages about unexpected replies.
pub(super) fn frame_kind(frame: &Resp3Frame) -> &'static str {
    match frame {
        Resp3Frame::Array { .. } => "an array",
        Resp3Frame::Map { .. } => "a map",
        Resp3Frame::Set { .. } => "a set",
        Resp3Frame::Null => "nil",
        Resp3Frame::Number { .. } => "a number",
        Resp3Frame::BlobString { .. } | Resp3Frame::SimpleString { .. } => "a string",
        _ => "another kind of frame",
    }
}

/// An error reply that arrived as a raw frame, as the error fred would
/// have made of it (so `is_no_group` and the logs see the same text).
pub(super) fn frame_error(op: &'static str, frame: &Resp3Frame) -> Option<QueueError> {
    let text = match frame {
        Resp3Frame::SimpleError { data, .. } => data.to_string(),
        Resp3Frame::BlobError { data, .. } => String::from_utf8_lossy(data).into_owned(),
        _ => return None,
    };
    Some(QueueError::Redis {
        op,
        source: FredError::new(fred::error::ErrorKind::Unknown, text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_become_queue_errors() {
        let error = Resp3Frame::SimpleError {
            data: "NOGROUP No such key or consumer group".into(),
            attributes: None,
        };
        assert!(frame_error("test", &error).is_some_and(|e| e.is_no_group()));
        let ok = Resp3Frame::BlobString {
            data: Bytes::from_static(b"OK"),
            attributes: None,
        };
        assert!(frame_error("test", &ok).is_none());
    }
}
