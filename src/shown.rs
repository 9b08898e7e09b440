//! How a stored event is shown to operators (API, dashboard, CLI): the
//! body as text when it is UTF-8, else base64; the headers with every
//! secret-bearing one redacted.

use base64::Engine;
use bytes::Bytes;
use serde::Serialize;

use crate::queue::decode_headers;

/// Shown instead of a secret-bearing header's value.
pub const REDACTED: &str = "[redacted]";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ShownEvent {
    /// The body as text when it is UTF-8.
    pub body: Option<String>,
    /// The body as base64 when it is not UTF-8.
    pub body_base64: Option<String>,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
}

pub fn event(body: &Bytes, headers: &Bytes) -> ShownEvent {
    let (body, body_base64) = match std::str::from_utf8(body) {
        Ok(text) => (Some(text.to_owned()), None),
        Err(_) => (
            None,
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
        ),
    };
    let headers: Vec<(String, String)> = decode_headers(headers)
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
    ShownEvent {
        body,
        body_base64,
        content_type,
        headers,
    }
}
