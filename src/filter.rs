//! A destination's filter: which events it gets, by event type (globs)
//! and by values in the JSON body (pointers). Built once from its
//! configuration; evaluated for every event the destination reads.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::Value;

use crate::config::FilterConfig;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("{key} is not a valid glob: {reason}")]
    BadGlob { key: String, reason: String },
    #[error("{key}: a JSON pointer is empty or starts with '/', like \"/data/object/id\"")]
    BadPointer { key: String },
}

#[derive(Debug, Clone)]
pub struct Filter {
    /// None: every event type.
    types: Option<GlobSet>,
    /// (pointer, the values it may have): all must hold.
    matches: Vec<(String, Vec<Value>)>,
}

/// What a filter decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    FilteredOut,
}

impl Filter {
    /// `key` names the filter in errors (`sources[0].destinations[1].filter`).
    pub fn build(config: &FilterConfig, key: &str) -> Result<Self, FilterError> {
        let types = if config.event_types.is_empty() {
            None
        } else {
            let mut set = GlobSetBuilder::new();
            for (i, glob) in config.event_types.iter().enumerate() {
                // `*` also crosses dots: `invoice.*` matches `invoice.paid`
                // and `invoice.payment.failed`.
                let glob = GlobBuilder::new(glob)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| FilterError::BadGlob {
                        key: format!("{key}.event_types[{i}]"),
                        reason: e.kind().to_string(),
                    })?;
                set.add(glob);
            }
            Some(set.build().map_err(|e| FilterError::BadGlob {
                key: format!("{key}.event_types"),
                reason: e.kind().to_string(),
            })?)
        };
        let mut matches = Vec::with_capacity(config.matches.len());
        for (pointer, value) in &config.matches {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(FilterError::BadPointer {
                    key: format!("{key}.match.{pointer:?}"),
                });
            }
            let accepted = match value {
                Value::Array(values) => values.clone(),
                other => vec![other.clone()],
            };
            matches.push((pointer.clone(), accepted));
        }
        Ok(Self { types, matches })
    }

    /// Whether the body is needed at all (match pointers are configured).
    pub fn reads_body(&self) -> bool {
        !self.matches.is_empty()
    }

    pub fn check(&self, event_type: &str, body: &[u8]) -> Verdict {
        if let Some(types) = &self.types
            && !types.is_match(event_type)
        {
            return Verdict::FilteredOut;
        }
        if self.matches.is_empty() {
            return Verdict::Deliver;
        }
        let Ok(document) = serde_json::from_slice::<Value>(body) else {
            return Verdict::FilteredOut;
        };
        let all = self.matches.iter().all(|(pointer, accepted)| {
            document
                .pointer(pointer)
                .is_some_and(|found| accepted.iter().any(|a| same(a, found)))
        });
        if all {
            Verdict::Deliver
        } else {
            Verdict::FilteredOut
        }
    }
}

/// Equal as JSON values; numbers by value (TOML's `1` matches JSON's `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn filter(types: &[&str], matches: &[(&str, Value)]) -> Filter {
        let config = FilterConfig {
            event_types: types.iter().map(|t| t.to_string()).collect(),
            matches: matches
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        };
        Filter::build(&config, "f").unwrap()
    }

    #[test]
    fn no_filter_delivers_everything() {
        let f = filter(&[], &[]);
        assert_eq!(f.check("", b"not json"), Verdict::Deliver);
        assert!(!f.reads_body());
    }

    #[test]
    fn type_globs_cross_dots_and_any_may_match() {
        let f = filter(&["invoice.*", "customer.subscription.*"], &[]);
        assert_eq!(f.check("invoice.paid", b""), Verdict::Deliver);
        assert_eq!(f.check("invoice.payment.failed", b""), Verdict::Deliver);
        assert_eq!(
            f.check("customer.subscription.created", b""),
            Verdict::Deliver
        );
        assert_eq!(f.check("customer.created", b""), Verdict::FilteredOut);
        assert_eq!(f.check("", b""), Verdict::FilteredOut);
    }

    #[test]
    fn every_pointer_must_match_one_of_its_values() {
        let f = filter(
            &[],
            &[
                ("/data/object/livemode", Value::Bool(true)),
                ("/data/object/currency", serde_json::json!(["usd", "eur"])),
            ],
        );
        assert!(f.reads_body());
        let body = |live: bool, currency: &str| {
            serde_json::to_vec(
                &serde_json::json!({"data": {"object": {"livemode": live, "currency": currency}}}),
            )
            .unwrap()
        };
        assert_eq!(f.check("x", &body(true, "eur")), Verdict::Deliver);
        assert_eq!(f.check("x", &body(false, "eur")), Verdict::FilteredOut);
        assert_eq!(f.check("x", &body(true, "gbp")), Verdict::FilteredOut);
        assert_eq!(f.check("x", br#"{"data":{}}"#), Verdict::FilteredOut);
        assert_eq!(f.check("x", b"\xff not json"), Verdict::FilteredOut);
        let numbers = filter(&[], &[("/n", serde_json::json!(1))]);
        assert_eq!(numbers.check("", br#"{"n":1.0}"#), Verdict::Deliver);
    }

    #[test]
    fn bad_globs_and_pointers_name_their_key() {
        let config = FilterConfig {
            event_types: vec!["ok.*".into(), "bad[".into()],
            matches: BTreeMap::new(),
        };
        let err = Filter::build(&config, "sources[0].destinations[1].filter").unwrap_err();
        assert!(
            err.to_string()
                .contains("sources[0].destinations[1].filter.event_types[1]"),
            "{err}"
        );
        let config = FilterConfig {
            event_types: vec![],
            matches: BTreeMap::from([("data/id".to_owned(), Value::Bool(true))]),
        };
        let err = Filter::build(&config, "f").unwrap_err();
        assert!(err.to_string().contains("f.match"), "{err}");
    }
}
