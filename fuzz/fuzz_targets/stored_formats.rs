//! Formats read back from Redis or typed by operators: header lines,
//! Retry-After values, DLQ cursors and ids. Never panic; headers round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let _ = hookd::queue::decode_headers(data).count();
    let (headers, _, _) = common::split(data);
    let encoded = hookd::queue::encode_headers(&headers);
    let decoded: Vec<_> = hookd::queue::decode_headers(&encoded).collect();
    assert_eq!(decoded.len(), headers.len());
    for ((name, value), (k, v)) in decoded.iter().zip(headers.iter()) {
        assert_eq!(*name, k.as_str().as_bytes());
        assert_eq!(*value, v.as_bytes());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hookd::delivery::parse_retry_after(text, std::time::SystemTime::UNIX_EPOCH);
        if let Some(cursor) = hookd::dlq::Cursor::parse(text) {
            assert_eq!(hookd::dlq::Cursor::parse(&cursor.to_string()), Some(cursor));
        }
        let _ = hookd::dlq::valid_id(text);
    }
});
