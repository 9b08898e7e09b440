//! A destination's part of a source's configuration: where it is, which
//! events it gets, how it is retried and protected.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};

use super::Secret;

/// The name of the single-destination form's destination.
pub const DEFAULT_DESTINATION: &str = "default";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Names the destination within its source (its consumer group, its
    /// metrics label, `X-Hookd-Destination`): 1-64 of `A-Z a-z 0-9 _ - .`.
    /// The single-destination form's is `default`.
    #[serde(default)]
    pub name: String,
    /// `http://` or `https://` URL receiving a POST per event. https trusts
    /// the built-in Mozilla roots and the system store (`SSL_CERT_FILE`).
    pub url: DestinationUrl,
    /// Per attempt, from connect to the last response byte we read.
    #[serde(default = "default_destination_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Cap on concurrent deliveries to this destination, so one slow service
    /// cannot take every worker.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Deliveries started per second; 0 means unlimited.
    #[serde(default)]
    pub rate_per_sec: u32,
    /// Backoff between attempts.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Which events this destination gets; absent: all of them.
    #[serde(default)]
    pub filter: FilterConfig,
    /// Headers added to every delivery (an API key the service wants, say);
    /// values may be secrets and are never shown. Framing headers and those
    /// hookd writes itself are refused: set here they would break requests
    /// or the delivery contract.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Stops attempts while the service is down, so events wait instead of
    /// burning their attempts.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// If set, deliveries carry Standard-Webhooks headers signed by hookd
    /// (`whsec_<base64>`, or any other string used as raw key bytes).
    #[serde(default)]
    pub signing_secret: Secret,
}

fn default_destination_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_in_flight() -> usize {
    16
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts including the first; after the last failure the event is
    /// dead-lettered.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubles each time.
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    /// Ceiling for the doubling (and for a destination's Retry-After).
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Full jitter spreads retries of a burst so they do not return together.
    pub jitter: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: true,
        }
    }
}

/// Which events a destination gets. Both parts must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Globs over the event type (`*` matches any run of characters, dots
    /// included); any may match. Empty: every type.
    pub event_types: Vec<String>,
    /// JSON pointers into the body and the value (or any of a list of
    /// values) each must have. A missing pointer, or a body that is not
    /// JSON, does not match.
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, serde_json::Value>,
}

impl FilterConfig {
    pub fn is_empty(&self) -> bool {
        self.event_types.is_empty() && self.matches.is_empty()
    }
}

/// The circuit breaker of a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open it; 0 turns it off.
    pub failures: u32,
    /// How long it stays open before one probe delivery decides.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Each failed probe doubles the cooldown, up to this.
    #[serde(with = "humantime_serde")]
    pub max_cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 20,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(600),
        }
    }
}

/// A destination URL, checked when the configuration is read: absolute,
/// `http` or `https`, with a host. Deserialises straight into the `Uri`
/// that delivery dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUrl(Uri);

impl DestinationUrl {
    pub fn uri(&self) -> &Uri {
        &self.0
    }
}

impl FromStr for DestinationUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(format!("{text:?}: the scheme must be http or https")),
        }
        if uri.authority().is_none() {
            return Err(format!("{text:?}: the host is missing"));
        }
        Ok(Self(uri))
    }
}

impl fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

serde_as_text!(DestinationUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_urls_are_checked() {
        assert!("http://127.0.0.1:3000/x".parse::<DestinationUrl>().is_ok());
        assert!("https://example.com".parse::<DestinationUrl>().is_ok());
        assert!("ftp://example.com".parse::<DestinationUrl>().is_err());
        assert!("/relative".parse::<DestinationUrl>().is_err());
        let url: DestinationUrl = "http://h:1/p?q=1".parse().unwrap();
        assert_eq!(url.to_string(), "http://h:1/p?q=1");
    }
}
