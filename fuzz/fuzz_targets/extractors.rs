//! Event id and type extraction (auto per scheme, header, JSON pointer,
//! body hash) on arbitrary requests: never panics, ids stay within limits.
#![no_main]

use hookd::extract::{self, Body, FieldSource, MAX_EVENT_ID_LEN};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let (headers, body, _) = common::split(data);
    let rules = [
        FieldSource::Auto,
        FieldSource::BodySha256,
        "header:x-id".parse().unwrap(),
        "json:/data/0/id".parse().unwrap(),
    ];
    for scheme in common::schemes() {
        for rule in &rules {
            let parsed = Body::new(body);
            if let Ok(id) = extract::event_id(rule, &scheme, &headers, &parsed) {
                assert!(!id.is_empty() && id.len() <= MAX_EVENT_ID_LEN);
                assert!(!id.chars().any(char::is_control));
            }
            let event_type = extract::event_type(rule, &scheme, &headers, &parsed);
            assert!(event_type.len() <= MAX_EVENT_ID_LEN);
        }
    }
    // Rule parsing itself.
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(rule) = text.parse::<FieldSource>() {
            assert_eq!(rule.to_string().parse::<FieldSource>().unwrap(), rule);
        }
    }
});
