//! Event id and event type extraction (`id_from`, `event_type_from`).

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
use serde::Deserializer;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

pub use crate::config::FieldSource;
use crate::config::VerifyConfig;

/// Longest event id accepted; ids become Redis key suffixes and headers.
pub const MAX_EVENT_ID_LEN: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("event id not found ({0})")]
    IdMissing(String),
    #[error("event id is longer than {MAX_EVENT_ID_LEN} bytes or has control characters")]
    IdInvalid,
}

/// A request body that JSON rules read where they point, as written: no
/// document is built, and a number is taken as its text (an id too large
/// for a float stays exact, so two such ids never collapse into one).
pub struct Body<'a> {
    raw: &'a [u8],
}

impl<'a> Body<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw }
    }

    /// The string or number at JSON pointer `pointer` (RFC 6901), the last
    /// of duplicate keys winning, as `serde_json::Value::pointer` finds it;
    /// `None` when the body is not one valid JSON document, the pointer
    /// leads nowhere or to another kind of value.
    fn pointer(&self, pointer: &str) -> Option<String> {
        let Some(path) = pointer.strip_prefix('/') else {
            if !pointer.is_empty() {
                return None;
            }
            return scalar(serde_json::from_slice::<&RawValue>(self.raw).ok()?);
        };
        let mut tokens = path.split('/').map(unescape_token);
        // The first step reads the whole body, which checks it is valid
        // JSON; later steps read only the value the previous one found.
        let first = tokens.next()?;
        let mut de = serde_json::Deserializer::from_slice(self.raw);
        let mut found = Step(&first).deserialize(&mut de).ok()?;
        de.end().ok()?;
        for token in tokens {
            found = Step(&token)
                .deserialize(&mut serde_json::Deserializer::from_str(found?.get()))
                .ok()?;
        }
        scalar(found?)
    }
}

/// A pointer token with `~1` and `~0` decoded, in that order (RFC 6901 §4).
fn unescape_token(token: &str) -> Cow<'_, str> {
    if token.contains('~') {
        Cow::Owned(token.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(token)
    }
}

/// A string's text, or a number's text as written.
fn scalar(value: &RawValue) -> Option<String> {
    let text = value.get();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str(text).ok(),
        b'-' | b'0'..=b'9' => Some(text.to_owned()),
        _ => None,
    }
}

/// One pointer step: the member named by the token (the last of
/// duplicates) or the array element it numbers; `None` inside `Ok` when
/// there is none, while the rest of the value is still read through.
struct Step<'t>(&'t str);

impl Step<'_> {
    /// The array index the token spells: digits without a leading zero, as
    /// `serde_json::Value::pointer` accepts.
    fn index(&self) -> Option<usize> {
        let token = self.0;
        if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
            return None;
        }
        token.parse().ok()
    }
}

impl<'de> DeserializeSeed<'de> for Step<'_> {
    type Value = Option<&'de RawValue>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Whether a member's name is the token, compared where it lies in the
/// body instead of copied out first.
struct NameIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for NameIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<&'de RawValue>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(named) = map.next_key_seed(NameIs(self.0))? {
            if named {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let wanted = self.index();
        let mut found = None;
        let mut at = 0;
        loop {
            if Some(at) == wanted {
                found = seq.next_element::<&'de RawValue>()?;
                if found.is_none() {
                    break;
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            at += 1;
        }
        Ok(found)
    }
    // A scalar has no members: valid JSON, nothing found.
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn body_sha256(raw: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, raw))
}

/// The provider's own idempotency key, per scheme, as documented by each
/// provider; `None` when the request does not carry it.
fn auto_id(scheme: &VerifyConfig, headers: &HeaderMap, body: &Body) -> Option<String> {
    let from_header = |name| header(headers, name);
    match scheme {
        VerifyConfig::StandardWebhooks { .. } => {
            from_header("webhook-id").or_else(|| from_header("svix-id"))
        }
        VerifyConfig::Stripe { .. } => body.pointer("/id"),
        VerifyConfig::Github { .. } => from_header("x-github-delivery"),
        VerifyConfig::Shopify { .. } => from_header("x-shopify-webhook-id")
            .or_else(|| from_header("shopify-webhook-id"))
            .or_else(|| from_header("x-shopify-event-id"))
            .or_else(|| from_header("shopify-event-id")),
        VerifyConfig::Slack { .. } => body.pointer("/event_id"),
        VerifyConfig::Twilio { .. } => from_header("i-twilio-idempotency-token"),
        VerifyConfig::Gitlab { .. } => {
            from_header("idempotency-key").or_else(|| from_header("x-gitlab-event-uuid"))
        }
        VerifyConfig::Paddle { .. } => body.pointer("/event_id"),
        VerifyConfig::Square { .. } => body.pointer("/event_id"),
        VerifyConfig::Hmac { .. } | VerifyConfig::None {} => from_header("webhook-id")
            .or_else(|| from_header("idempotency-key"))
            .or_else(|| from_header("x-request-id")),
    }
}

fn auto_type(scheme: &VerifyConfig, headers: &HeaderMap, body: &Body) -> Option<String> {
    match scheme {
        VerifyConfig::StandardWebhooks { .. }
        | VerifyConfig::Stripe { .. }
        | VerifyConfig::Square { .. } => body.pointer("/type"),
        VerifyConfig::Github { .. } => header(headers, "x-github-event"),
        VerifyConfig::Shopify { .. } => {
            header(headers, "x-shopify-topic").or_else(|| header(headers, "shopify-topic"))
        }
        VerifyConfig::Slack { .. } => body
            .pointer("/event/type")
            .or_else(|| body.pointer("/type")),
        VerifyConfig::Gitlab { .. } => header(headers, "x-gitlab-event"),
        VerifyConfig::Paddle { .. } => body.pointer("/event_type"),
        VerifyConfig::Twilio { .. } | VerifyConfig::Hmac { .. } | VerifyConfig::None {} => {
            body.pointer("/type")
        }
    }
}

/// Event id per `id_from`. With `auto`, a request without the provider's id
/// falls back to the body hash so retries of the same payload still dedupe;
/// an explicit rule that finds nothing is an error (the operator asked for it).
pub fn event_id(
    rule: &FieldSource,
    scheme: &VerifyConfig,
    headers: &HeaderMap,
    body: &Body,
) -> Result<String, ExtractError> {
    let id = match rule {
        FieldSource::Auto => {
            auto_id(scheme, headers, body).unwrap_or_else(|| body_sha256(body.raw))
        }
        FieldSource::BodySha256 => body_sha256(body.raw),
        FieldSource::Header(name) => header(headers, name.as_str())
            .ok_or_else(|| ExtractError::IdMissing(format!("header {name}")))?,
        FieldSource::Json(pointer) => body
            .pointer(pointer)
            .ok_or_else(|| ExtractError::IdMissing(format!("json {pointer}")))?,
    };
    if id.is_empty() || id.len() > MAX_EVENT_ID_LEN || id.chars().any(char::is_control) {
        return Err(ExtractError::IdInvalid);
    }
    Ok(id)
}

/// Event type per `event_type_from`; empty when unknown (types are labels,
/// not a reason to refuse a webhook).
pub fn event_type<'b>(
    rule: &FieldSource,
    scheme: &VerifyConfig,
    headers: &HeaderMap,
    body: &Body,
) -> Cow<'b, str> {
    let found = match rule {
        FieldSource::Auto => auto_type(scheme, headers, body),
        FieldSource::Header(name) => header(headers, name.as_str()),
        FieldSource::Json(pointer) => body.pointer(pointer),
        FieldSource::BodySha256 => None,
    };
    match found {
        Some(t) if t.len() <= MAX_EVENT_ID_LEN && !t.chars().any(char::is_control) => Cow::Owned(t),
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripe() -> VerifyConfig {
        VerifyConfig::Stripe {
            secrets: vec![],
            tolerance: std::time::Duration::from_secs(300),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, http::HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn stripe_auto_uses_event_id_and_type() {
        let raw = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let body = Body::new(raw);
        let h = HeaderMap::new();
        assert_eq!(
            event_id(&FieldSource::Auto, &stripe(), &h, &body).unwrap(),
            "evt_1"
        );
        assert_eq!(
            event_type(&FieldSource::Auto, &stripe(), &h, &body),
            "charge.succeeded"
        );
    }

    #[test]
    fn auto_falls_back_to_body_hash() {
        let body = Body::new(b"not json");
        let id = event_id(&FieldSource::Auto, &stripe(), &HeaderMap::new(), &body).unwrap();
        assert_eq!(id, body_sha256(b"not json"));
        assert_eq!(id.len(), 64);
    }

    #[test]
    fn explicit_rules_must_find_the_id() {
        let body = Body::new(br#"{"data":{"id":42}}"#);
        let h = headers(&[("x-id", "abc")]);
        let json = FieldSource::Json("/data/id".into());
        assert_eq!(event_id(&json, &stripe(), &h, &body).unwrap(), "42");
        let header_rule: FieldSource = "header:x-id".parse().unwrap();
        assert_eq!(event_id(&header_rule, &stripe(), &h, &body).unwrap(), "abc");
        let missing: FieldSource = "header:x-other".parse().unwrap();
        assert!(matches!(
            event_id(&missing, &stripe(), &h, &body),
            Err(ExtractError::IdMissing(_))
        ));
    }

    #[test]
    fn ids_with_control_characters_or_too_long_are_rejected() {
        let long = format!(r#"{{"id":"{}"}}"#, "a".repeat(MAX_EVENT_ID_LEN + 1));
        let body = Body::new(long.as_bytes());
        assert_eq!(
            event_id(&FieldSource::Auto, &stripe(), &HeaderMap::new(), &body),
            Err(ExtractError::IdInvalid)
        );
        let body = Body::new(br#"{"id":"a\u0001b"}"#);
        assert_eq!(
            event_id(&FieldSource::Auto, &stripe(), &HeaderMap::new(), &body),
            Err(ExtractError::IdInvalid)
        );
    }

    #[test]
    fn pointers_find_what_value_pointer_finds() {
        let docs: [&[u8]; 13] = [
            br#"{"id":"a","type":"t"}"#,
            br#"{"id":7,"nested":{"id":"x"},"list":[1,{"id":2}]}"#,
            br#"{"id":"first","id":"last","nested":{"id":1,"id":-2}}"#,
            br#"{"id":null,"nested":null,"list":null}"#,
            br#"{"id":true,"type":1.5,"nested":[{"id":"x"}]}"#,
            br#"{"id":"esc\"aped\u00e9","a/b":{"m~n":"escaped key"}}"#,
            br#"[{"id":"a"}]"#,
            br#" {"nested": {"id" : "spaced"} , "list":[ 0 , {"id":"in list"} ]} "#,
            br#""a string""#,
            br#"{"id":"a"} trailing"#,
            br#"{"id":"a""#,
            br#"{"nested":{"id":"a"},"broken":"#,
            b"not json",
        ];
        let pointers = [
            "",
            "/id",
            "/type",
            "/missing",
            "/nested/id",
            "/list/1/id",
            "/list/0",
            "/list/01",
            "/list/+1",
            "/list/9",
            "/0/id",
            "/a~1b/m~0n",
            "/id/deeper",
        ];
        for doc in docs {
            let value = serde_json::from_slice::<serde_json::Value>(doc).ok();
            for pointer in pointers {
                let via_value = value.as_ref().and_then(|v| match v.pointer(pointer)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                assert_eq!(
                    Body::new(doc).pointer(pointer),
                    via_value,
                    "{} {pointer}",
                    String::from_utf8_lossy(doc)
                );
            }
        }
    }

    #[test]
    fn numbers_are_taken_as_written() {
        // Neither fits a u64: read as floats, the two would be one id.
        let a = br#"{"id":123456789012345678901234,"data":{"id":123456789012345678901235}}"#;
        let body = Body::new(a);
        assert_eq!(body.pointer("/id").unwrap(), "123456789012345678901234");
        assert_eq!(
            body.pointer("/data/id").unwrap(),
            "123456789012345678901235"
        );
        let json = FieldSource::Json("/id".into());
        assert_eq!(
            event_id(&json, &stripe(), &HeaderMap::new(), &body).unwrap(),
            "123456789012345678901234"
        );
        let body = Body::new(br#"{"id":-0,"type":1e3}"#);
        assert_eq!(body.pointer("/id").unwrap(), "-0");
        assert_eq!(body.pointer("/type").unwrap(), "1e3");
    }

    #[test]
    fn shopify_auto_reads_prefixed_and_unprefixed_headers() {
        let scheme = VerifyConfig::Shopify { secrets: vec![] };
        for (id, topic) in [
            ("x-shopify-webhook-id", "x-shopify-topic"),
            ("shopify-webhook-id", "shopify-topic"),
        ] {
            let h = headers(&[(id, "w-1"), (topic, "orders/create")]);
            let body = Body::new(b"{}");
            assert_eq!(
                event_id(&FieldSource::Auto, &scheme, &h, &body).unwrap(),
                "w-1"
            );
            assert_eq!(
                event_type(&FieldSource::Auto, &scheme, &h, &body),
                "orders/create"
            );
        }
    }

    #[test]
    fn github_auto_uses_headers() {
        let scheme = VerifyConfig::Github {
            secrets: vec![],
            allow_sha1: false,
        };
        let h = headers(&[("x-github-delivery", "d-1"), ("x-github-event", "push")]);
        let body = Body::new(b"{}");
        assert_eq!(
            event_id(&FieldSource::Auto, &scheme, &h, &body).unwrap(),
            "d-1"
        );
        assert_eq!(event_type(&FieldSource::Auto, &scheme, &h, &body), "push");
    }
}
