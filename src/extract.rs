//! Event id and event type extraction (`id_from`, `event_type_from`).

use std::borrow::Cow;
use std::fmt;

use http::HeaderMap;
use serde::{Deserialize, Deserializer};

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

/// A body parsed as JSON at most once, and only if some rule needs it.
pub struct Body<'a> {
    raw: &'a [u8],
    json: Option<Option<serde_json::Value>>,
}

impl<'a> Body<'a> {
    pub fn new(raw: &'a [u8]) -> Self {
        Self { raw, json: None }
    }

    fn json(&mut self) -> Option<&serde_json::Value> {
        self.json
            .get_or_insert_with(|| serde_json::from_slice(self.raw).ok())
            .as_ref()
    }

    fn pointer(&mut self, pointer: &str) -> Option<String> {
        // The common case, a top-level field (`/id`, `/type`), is found by
        // scanning the document without building it.
        if self.json.is_none()
            && let Some(key) = pointer.strip_prefix('/')
            && !key.contains(['/', '~'])
        {
            return top_level_scalar(self.raw, key);
        }
        match self.json()?.pointer(pointer)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// The string or number at top-level `key` of a JSON object, as
/// `serde_json::Value::pointer` would find it (last duplicate wins; None if
/// the document is not valid JSON), without allocating the other values.
fn top_level_scalar(raw: &[u8], key: &str) -> Option<String> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    struct Scalar(Option<String>);
    impl<'de> Deserialize<'de> for Scalar {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Scalar;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("any JSON value")
                }
                fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_owned())))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                    Ok(Scalar(Some(v.to_string())))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                    Ok(Scalar(
                        serde_json::Number::from_f64(v).map(|n| n.to_string()),
                    ))
                }
                fn visit_bool<E>(self, _: bool) -> Result<Scalar, E> {
                    Ok(Scalar(None))
                }
                fn visit_unit<E>(self) -> Result<Scalar, E> {
                    Ok(Scalar(None))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut a: A,
                ) -> Result<Scalar, A::Error> {
                    while a.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(Scalar(None))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar, A::Error> {
                    while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    Ok(Scalar(None))
                }
            }
            d.deserialize_any(V)
        }
    }

    struct Find<'k>(&'k str);
    impl<'de> DeserializeSeed<'de> for Find<'_> {
        type Value = Option<String>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON document")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k == self.0 {
                    found = map.next_value::<Scalar>()?.0;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
        // Any other document is valid JSON without the field.
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut a: A,
        ) -> Result<Self::Value, A::Error> {
            while a.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
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

    let mut de = serde_json::Deserializer::from_slice(raw);
    let found = Find(key).deserialize(&mut de).ok()?;
    de.end().ok()?;
    found
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
fn auto_id(scheme: &VerifyConfig, headers: &HeaderMap, body: &mut Body) -> Option<String> {
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

fn auto_type(scheme: &VerifyConfig, headers: &HeaderMap, body: &mut Body) -> Option<String> {
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
    body: &mut Body,
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
    body: &mut Body,
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
        let mut body = Body::new(raw);
        let h = HeaderMap::new();
        assert_eq!(
            event_id(&FieldSource::Auto, &stripe(), &h, &mut body).unwrap(),
            "evt_1"
        );
        assert_eq!(
            event_type(&FieldSource::Auto, &stripe(), &h, &mut body),
            "charge.succeeded"
        );
    }

    #[test]
    fn auto_falls_back_to_body_hash() {
        let mut body = Body::new(b"not json");
        let id = event_id(&FieldSource::Auto, &stripe(), &HeaderMap::new(), &mut body).unwrap();
        assert_eq!(id, body_sha256(b"not json"));
        assert_eq!(id.len(), 64);
    }

    #[test]
    fn explicit_rules_must_find_the_id() {
        let mut body = Body::new(br#"{"data":{"id":42}}"#);
        let h = headers(&[("x-id", "abc")]);
        let json = FieldSource::Json("/data/id".into());
        assert_eq!(event_id(&json, &stripe(), &h, &mut body).unwrap(), "42");
        let header_rule: FieldSource = "header:x-id".parse().unwrap();
        assert_eq!(
            event_id(&header_rule, &stripe(), &h, &mut body).unwrap(),
            "abc"
        );
        let missing: FieldSource = "header:x-other".parse().unwrap();
        assert!(matches!(
            event_id(&missing, &stripe(), &h, &mut body),
            Err(ExtractError::IdMissing(_))
        ));
    }

    #[test]
    fn ids_with_control_characters_or_too_long_are_rejected() {
        let long = format!(r#"{{"id":"{}"}}"#, "a".repeat(MAX_EVENT_ID_LEN + 1));
        let mut body = Body::new(long.as_bytes());
        assert_eq!(
            event_id(&FieldSource::Auto, &stripe(), &HeaderMap::new(), &mut body),
            Err(ExtractError::IdInvalid)
        );
        let mut body = Body::new(br#"{"id":"a\u0001b"}"#);
        assert_eq!(
            event_id(&FieldSource::Auto, &stripe(), &HeaderMap::new(), &mut body),
            Err(ExtractError::IdInvalid)
        );
    }

    #[test]
    fn top_level_scan_agrees_with_value_pointer() {
        let docs: [&[u8]; 10] = [
            br#"{"id":"a","type":"t"}"#,
            br#"{"id":7,"nested":{"id":"x"},"list":[1,{"id":2}]}"#,
            br#"{"id":"first","id":"last"}"#,
            br#"{"id":null}"#,
            br#"{"id":true,"type":1.5}"#,
            br#"{"id":"esc\"aped\u00e9"}"#,
            br#"[{"id":"a"}]"#,
            br#"{"id":"a"} trailing"#,
            br#"{"id":"a""#,
            b"not json",
        ];
        for doc in docs {
            for key in ["id", "type", "missing"] {
                let via_value = serde_json::from_slice::<serde_json::Value>(doc)
                    .ok()
                    .and_then(|v| match v.pointer(&format!("/{key}"))? {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    });
                assert_eq!(
                    top_level_scalar(doc, key),
                    via_value,
                    "{} /{key}",
                    String::from_utf8_lossy(doc)
                );
            }
        }
    }

    #[test]
    fn shopify_auto_reads_prefixed_and_unprefixed_headers() {
        let scheme = VerifyConfig::Shopify { secrets: vec![] };
        for (id, topic) in [
            ("x-shopify-webhook-id", "x-shopify-topic"),
            ("shopify-webhook-id", "shopify-topic"),
        ] {
            let h = headers(&[(id, "w-1"), (topic, "orders/create")]);
            let mut body = Body::new(b"{}");
            assert_eq!(
                event_id(&FieldSource::Auto, &scheme, &h, &mut body).unwrap(),
                "w-1"
            );
            assert_eq!(
                event_type(&FieldSource::Auto, &scheme, &h, &mut body),
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
        let mut body = Body::new(b"{}");
        assert_eq!(
            event_id(&FieldSource::Auto, &scheme, &h, &mut body).unwrap(),
            "d-1"
        );
        assert_eq!(
            event_type(&FieldSource::Auto, &scheme, &h, &mut body),
            "push"
        );
    }
}
