//! A destination's part of a source's configuration: where it is, which
//! events it gets, how it is retried and protected.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};

use base64::Engine as _;

use super::Secret;
use super::secret::REDACTED;

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
    #[serde(
        default = "default_destination_timeout",
        with = "crate::config::duration"
    )]
    pub timeout: Duration,
    /// Cap on concurrent deliveries to this destination (per instance), so
    /// one slow service cannot take every worker.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Deliveries started per second by all instances together, to spare a
    /// service that cannot take more; 0 means unlimited.
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
    #[serde(with = "crate::config::duration")]
    pub base: Duration,
    /// Ceiling for the doubling (and for a destination's Retry-After).
    #[serde(with = "crate::config::duration")]
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
    #[serde(with = "crate::config::duration")]
    pub cooldown: Duration,
    /// Each failed probe doubles the cooldown, up to this.
    #[serde(with = "crate::config::duration")]
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
/// `http` or `https`, with a host. Credentials in it
/// (`https://user:password@host/`) go out as `Authorization: Basic` on
/// every delivery, as curl sends them; the URL delivery dials is the rest.
/// Shown (check-config, the admin API, the dashboard, the CLI) with the
/// credentials and every query value redacted: both are where services
/// put their keys (`?code=` of an Azure Function, say). Written as
/// `env:VAR` or `file:/path`, for a URL whose path is itself the key
/// (Slack's, Discord's), it is shown as scheme and host only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUrl {
    /// Without credentials.
    uri: Uri,
    /// From the credentials: the `Authorization` value each delivery carries.
    authorization: Option<Secret>,
    /// Given by reference (`env:`, `file:`): nothing past the host is shown.
    secret: bool,
}

impl DestinationUrl {
    /// What delivery dials.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `Basic <base64 of user:password>`, if the URL carries credentials.
    pub fn authorization(&self) -> Option<&Secret> {
        self.authorization.as_ref()
    }

    /// A URL as written (not a reference).
    fn parse_literal(text: &str) -> Result<Self, String> {
        if text.contains(REDACTED) {
            return Err(format!(
                "cannot hold {REDACTED:?}: give the credentials or query values themselves"
            ));
        }
        let uri: Uri = text.parse().map_err(|_| "not a valid URL".to_owned())?;
        let scheme = match uri.scheme_str() {
            Some(scheme @ ("http" | "https")) => scheme,
            _ => return Err("the scheme must be http or https".to_owned()),
        };
        let Some(authority) = uri.authority().map(|a| a.as_str()) else {
            return Err("the host is missing".to_owned());
        };
        let Some((credentials, host)) = authority.rsplit_once('@') else {
            return Ok(Self {
                uri,
                authorization: None,
                secret: false,
            });
        };
        let path = uri.path_and_query().map_or("", |p| p.as_str());
        let uri: Uri = format!("{scheme}://{host}{path}")
            .parse()
            .map_err(|_| "not a valid URL".to_owned())?;
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let decode = |part: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|text| text.into_owned())
                .map_err(|_| "its credentials are not UTF-8 once percent-decoded".to_owned())
        };
        let pair = format!("{}:{}", decode(user)?, decode(password)?);
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        Ok(Self {
            uri,
            authorization: Some(Secret::literal(format!("Basic {encoded}"))),
            secret: false,
        })
    }
}

impl FromStr for DestinationUrl {
    type Err = String;

    /// Never quotes the URL: it may hold credentials.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if !(text.starts_with("env:") || text.starts_with("file:")) {
            return Self::parse_literal(text);
        }
        let resolved = Secret::resolve(text)?;
        let mut url = Self::parse_literal(resolved.expose())
            .map_err(|why| format!("the URL {text} holds: {why}"))?;
        url.secret = true;
        Ok(url)
    }
}

impl fmt::Display for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = &self.uri;
        write!(f, "{}://", uri.scheme_str().unwrap_or("http"))?;
        if self.authorization.is_some() {
            write!(f, "{REDACTED}@")?;
        }
        if let Some(authority) = uri.authority() {
            f.write_str(authority.as_str())?;
        }
        if self.secret {
            return write!(f, "/{REDACTED}");
        }
        if uri.path_and_query().is_some() {
            f.write_str(uri.path())?;
        }
        if let Some(query) = uri.query() {
            for (i, pair) in query.split('&').enumerate() {
                f.write_str(if i == 0 { "?" } else { "&" })?;
                match pair.split_once('=') {
                    Some((name, _)) => write!(f, "{name}={REDACTED}")?,
                    // A bare query (`?s3cret`) may be the key itself.
                    None if pair.is_empty() => {}
                    None => f.write_str(REDACTED)?,
                }
            }
        }
        Ok(())
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
        let url: DestinationUrl = "http://h:1/p".parse().unwrap();
        assert_eq!(url.to_string(), "http://h:1/p");
        assert_eq!(url.authorization(), None);
        // Errors name no part of the URL: it may hold credentials.
        for bad in [
            "ftp://u:s3cret@h/",
            "http://u:s3cret@",
            "/s3cret",
            "http://u:[redacted]@h/",
        ] {
            let error = bad.parse::<DestinationUrl>().unwrap_err();
            assert!(!error.contains("s3cret"), "{error}");
        }
    }

    #[test]
    fn credentials_become_basic_auth_and_are_never_shown() {
        let url: DestinationUrl = "https://app:p%40ss:w@hooks.example.com:8443/in?code=s3cret&x=1"
            .parse()
            .unwrap();
        assert_eq!(
            url.uri().to_string(),
            "https://hooks.example.com:8443/in?code=s3cret&x=1"
        );
        // base64("app:p@ss:w")
        assert_eq!(
            url.authorization().map(Secret::expose),
            Some("Basic YXBwOnBAc3M6dw==")
        );
        let shown = url.to_string();
        assert_eq!(
            shown,
            "https://[redacted]@hooks.example.com:8443/in?code=[redacted]&x=[redacted]"
        );
        assert!(!format!("{url:?}").contains("p%40ss"));
        // A user alone (an API key as the user name) is a credential too.
        let key: DestinationUrl = "http://sk_live_1@h/".parse().unwrap();
        assert_eq!(
            key.authorization().map(Secret::expose),
            Some("Basic c2tfbGl2ZV8xOg==")
        );
        assert_eq!(key.to_string(), "http://[redacted]@h/");
        let bare: DestinationUrl = "http://h/p?s3cret".parse().unwrap();
        assert_eq!(bare.to_string(), "http://h/p?[redacted]");
    }

    #[test]
    fn a_url_given_by_reference_shows_only_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(
            &path,
            "https://u:pw@hooks.example.com/services/T0/B0/s3cret\n",
        )
        .unwrap();
        let parsed: DestinationUrl = format!("file:{}", path.display()).parse().unwrap();
        assert_eq!(
            parsed.uri().to_string(),
            "https://hooks.example.com/services/T0/B0/s3cret"
        );
        assert!(parsed.authorization().is_some());
        assert_eq!(
            parsed.to_string(),
            "https://[redacted]@hooks.example.com/[redacted]"
        );
        std::fs::write(&path, "ftp://hooks.example.com/s3cret").unwrap();
        let refused = format!("file:{}", path.display())
            .parse::<DestinationUrl>()
            .unwrap_err();
        assert!(
            refused.contains("the scheme must be http or https"),
            "{refused}"
        );
        assert!(!refused.contains("s3cret"), "{refused}");
        let missing = "env:HOOKD_TEST_UNSET_VARIABLE_7f3a".parse::<DestinationUrl>();
        assert!(missing.unwrap_err().contains("is not set"));
    }
}
