//! Durations as written in the configuration (`"30s"`, `"72h"`), with an
//! upper bound. Past a few years a value can only be a slip of the
//! keyboard, and far past it the value no longer fits what it feeds:
//! `dedup_ttl = "500000000y"` passed `check-config`, then Redis refused
//! every ingest as an invalid expire time.

use std::time::Duration;

use serde::{Deserializer, Serializer, de::Error as _};

/// The longest a configured duration may be: ten years, as `"10y"`
/// reads (a year of 365.25 days).
pub const MAX: Duration = Duration::from_secs(315_576_000);

pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    humantime_serde::serialize(value, serializer)
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value: Duration = humantime_serde::deserialize(deserializer)?;
    if value > MAX {
        return Err(D::Error::custom(format!(
            "{} is longer than a duration may be (10 years)",
            humantime::format_duration(value)
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        value: Duration,
    }

    fn parse(text: &str) -> Result<Duration, String> {
        toml::from_str::<Holder>(&format!("value = {text:?}"))
            .map(|h| h.value)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn durations_are_bounded_by_ten_years() {
        assert_eq!(parse("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse("10y"), Ok(MAX));
        assert!(parse("3652days").is_ok());
        let refused = parse("500000000y").unwrap_err();
        assert!(
            refused.contains("longer than a duration may be"),
            "{refused}"
        );
        assert!(parse("3653days").is_err());
        assert!(parse("soon").is_err());
    }
}
