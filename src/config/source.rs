//! A source's part of the configuration: how its provider signs, where the
//! event id and type come from, and the destination it delivers to.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DestinationConfig, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// URL path segment (`POST /webhooks/{name}`) and Redis hash tag.
    pub name: String,
    /// How the provider proves a request is genuine.
    pub verify: VerifyConfig,
    /// Where the event id comes from: `auto`, `header:NAME`, `json:/pointer`
    /// or `body-sha256`. The id drives de-duplication and `Webhook-Id`.
    #[serde(default)]
    pub id_from: FieldSource,
    /// Where the event type comes from: `auto`, `header:NAME`, `json:/pointer`.
    #[serde(default)]
    pub event_type_from: FieldSource,
    /// The one destination of the single-destination form, named
    /// `default`; read into `destinations` when the configuration loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<DestinationConfig>,
    /// Every service that receives this source's events (each whose
    /// filter matches).
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// How long finished events stay readable in the event log.
    #[serde(default)]
    pub history: HistoryConfig,
}

/// The event log's retention: an event every destination is done with
/// stays searchable and replayable while it is among the `max_events`
/// newest and younger than `max_age` (whichever bound is hit first).
/// Unfinished events are never dropped, whatever their age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Newest finished events kept; 0 turns the log off (an event leaves
    /// Redis as soon as every destination is done with it).
    pub max_events: u64,
    /// Oldest finished event kept; 0 turns the log off.
    #[serde(with = "crate::config::duration")]
    pub max_age: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl HistoryConfig {
    /// Whether finished events are kept at all.
    pub fn enabled(&self) -> bool {
        self.max_events > 0 && !self.max_age.is_zero()
    }
}

/// Signature scheme per provider; `none` must be spelled out so an
/// unauthenticated endpoint is always a deliberate choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VerifyConfig {
    StandardWebhooks {
        /// `whsec_<base64>` keys; several during rotation.
        secrets: Vec<Secret>,
        /// Allowed clock difference for `webhook-timestamp`.
        #[serde(default = "default_tolerance", with = "crate::config::duration")]
        tolerance: Duration,
    },
    Stripe {
        /// Endpoint signing secrets (`whsec_...`); several during rotation.
        secrets: Vec<Secret>,
        /// Allowed age of the `t=` timestamp (Stripe's default is 300 s).
        #[serde(default = "default_tolerance", with = "crate::config::duration")]
        tolerance: Duration,
    },
    Github {
        /// Webhook secrets; several during rotation.
        secrets: Vec<Secret>,
        /// Accept the legacy `X-Hub-Signature` (HMAC-SHA1) when no SHA-256
        /// signature is present. Off because SHA-1 is weak.
        #[serde(default)]
        allow_sha1: bool,
    },
    Shopify {
        /// App client secrets; several during rotation.
        secrets: Vec<Secret>,
    },
    Slack {
        /// Signing secrets; several during rotation.
        secrets: Vec<Secret>,
        /// Allowed clock difference for `X-Slack-Request-Timestamp`.
        #[serde(default = "default_tolerance", with = "crate::config::duration")]
        tolerance: Duration,
    },
    Twilio {
        /// Auth tokens; several during rotation.
        secrets: Vec<Secret>,
        /// Secrets of the SharedKeys a Twilio Webhook Setting signs with
        /// instead of the auth token; used for requests that announce one in
        /// `X-Twilio-Webhooks-Signature-Settings` (HMAC-SHA1 or -SHA256).
        /// Empty: such requests are checked against `secrets`.
        #[serde(default)]
        shared_keys: Vec<Secret>,
        /// The public URL Twilio calls (signatures cover it); the request's
        /// query string is appended.
        url: String,
    },
    Gitlab {
        /// Secret tokens compared with `X-Gitlab-Token`.
        secrets: Vec<Secret>,
    },
    Paddle {
        /// Notification destination secret keys.
        secrets: Vec<Secret>,
        /// Allowed clock difference for the `ts=` timestamp.
        #[serde(default = "default_tolerance", with = "crate::config::duration")]
        tolerance: Duration,
    },
    Square {
        /// Subscription signature keys.
        secrets: Vec<Secret>,
        /// The notification URL configured at Square (signatures cover it).
        url: String,
    },
    Hmac {
        /// Shared secrets; several during rotation.
        secrets: Vec<Secret>,
        /// Header carrying the signature.
        header: String,
        /// `sha1`, `sha256` or `sha512`.
        #[serde(default)]
        algorithm: HmacAlgorithm,
        /// `hex` or `base64`.
        #[serde(default)]
        encoding: SignatureEncoding,
        /// Text before the signature in the header, e.g. `sha256=`.
        #[serde(default)]
        prefix: String,
    },
    /// Spelled with braces so that keys given with it (`secrets`) are
    /// refused like any unknown key, not ignored.
    None {},
}

fn default_tolerance() -> Duration {
    Duration::from_secs(300)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FieldSource {
    /// The provider's documented location (see `extract`).
    #[default]
    Auto,
    Header(http::HeaderName),
    /// RFC 6901 JSON pointer into the body.
    Json(String),
    /// Hex SHA-256 of the raw body: identical bodies are duplicates.
    BodySha256,
}

impl FromStr for FieldSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(Self::Auto);
        }
        if s == "body-sha256" {
            return Ok(Self::BodySha256);
        }
        if let Some(name) = s.strip_prefix("header:") {
            return http::HeaderName::from_bytes(name.as_bytes())
                .map(Self::Header)
                .map_err(|_| format!("{name:?} is not a valid header name"));
        }
        if let Some(pointer) = s.strip_prefix("json:") {
            if !pointer.starts_with('/') {
                return Err(format!("JSON pointer {pointer:?} must start with '/'"));
            }
            return Ok(Self::Json(pointer.to_owned()));
        }
        Err(format!(
            "{s:?} is not one of auto, header:NAME, json:/pointer, body-sha256"
        ))
    }
}

impl fmt::Display for FieldSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Header(name) => write!(f, "header:{name}"),
            Self::Json(pointer) => write!(f, "json:{pointer}"),
            Self::BodySha256 => f.write_str("body-sha256"),
        }
    }
}

serde_as_text!(FieldSource);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_source_round_trips() {
        for s in ["auto", "header:x-id", "json:/data/id", "body-sha256"] {
            assert_eq!(s.parse::<FieldSource>().unwrap().to_string(), s);
        }
        assert!("json:data".parse::<FieldSource>().is_err());
        assert!("header:bad header".parse::<FieldSource>().is_err());
        assert!("whatever".parse::<FieldSource>().is_err());
    }
}
