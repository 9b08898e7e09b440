//! A configured source and its destinations, with everything derived from
//! their configuration once: the verifier, the Redis keys, each
//! destination's filter, headers, signing key and metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{DestinationConfig, FieldSource, HistoryConfig, SourceConfig, VerifyConfig};
use crate::filter::{Filter, FilterError};
use crate::queue::{DestinationKeys, EntryIds, SourceKeys};
use crate::telemetry::{DestinationMetrics, SourceMetrics, Throttle};
use crate::verify::{KeyError, Verifier, standard_webhooks};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("sources[{index}].verify ({source_name}): {source}")]
    Verify {
        index: usize,
        source_name: String,
        #[source]
        source: KeyError,
    },
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("{key} is not a valid HTTP header name")]
    HeaderName { key: String },
    /// Never quotes the value: it may be a secret.
    #[error("{key} is not a valid HTTP header value")]
    HeaderValue { key: String },
    #[error("{key} cannot be set: {why}")]
    ReservedHeader { key: String, why: &'static str },
}

/// Headers that frame a request or manage its connection: the HTTP client
/// writes them for the body and connection it actually sends, so a copy
/// from elsewhere (a provider's request, a destination's static headers)
/// would break the request.
pub const FRAMING_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
];

/// Headers hookd writes on deliveries: a destination's static headers
/// cannot replace them.
const DELIVERY_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hookd-source",
    "x-hookd-destination",
    "x-hookd-event-type",
    "x-hookd-attempt",
];

/// Why a destination's static header `name` (lowercase) is refused, if it is.
fn reserved(name: &str) -> Option<&'static str> {
    if FRAMING_HEADERS.contains(&name) {
        Some("the HTTP client writes it for each request")
    } else if DELIVERY_HEADERS.contains(&name) {
        Some("hookd writes it on every delivery")
    } else {
        None
    }
}

pub struct Source {
    pub name: String,
    pub keys: SourceKeys,
    pub verify: VerifyConfig,
    pub verifier: Verifier,
    pub id_from: FieldSource,
    pub event_type_from: FieldSource,
    /// In configuration order.
    pub destinations: Vec<Arc<Destination>>,
    /// The event log's retention.
    pub history: HistoryConfig,
    pub metrics: SourceMetrics,
}

/// One destination of a source.
pub struct Destination {
    pub name: String,
    pub keys: DestinationKeys,
    pub config: DestinationConfig,
    pub filter: Filter,
    /// The configured static headers, ready to copy into each delivery.
    pub headers: HeaderMap,
    /// With `signing_secret`: the key hookd signs deliveries with.
    pub signing_key: Option<ring::hmac::Key>,
    pub metrics: DestinationMetrics,
    /// A destination that rejects everything (a rotated token) would
    /// otherwise log a line per event at the ingest rate.
    pub dead_letter_warning: Throttle,
}

/// How often a destination's dead-lettering is logged at warn level.
const DEAD_LETTER_LOG_EVERY: Duration = Duration::from_secs(10);

impl Source {
    /// `index` is the source's place in `[[sources]]`, for error messages.
    pub fn build(
        config: &SourceConfig,
        index: usize,
        key_prefix: &str,
    ) -> Result<Self, SourceError> {
        let verifier = Verifier::build(&config.verify).map_err(|source| SourceError::Verify {
            index,
            source_name: config.name.clone(),
            source,
        })?;
        let keys = SourceKeys::new(key_prefix, &config.name);
        let destinations = config
            .destinations
            .iter()
            .enumerate()
            .map(|(d, destination)| {
                let key = format!("sources[{index}].destinations[{d}]");
                Destination::build(destination, &key, &config.name, &keys).map(Arc::new)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: config.name.clone(),
            keys,
            verify: config.verify.clone(),
            verifier,
            id_from: config.id_from.clone(),
            event_type_from: config.event_type_from.clone(),
            destinations,
            history: config.history,
            metrics: SourceMetrics::new(&config.name),
        })
    }

    pub fn destination(&self, name: &str) -> Option<&Arc<Destination>> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// The destination names, in configuration order (the groups).
    pub fn destination_names(&self) -> impl Iterator<Item = &str> {
        self.destinations.iter().map(|d| d.name.as_str())
    }

    /// The destination the single-destination layout's events go to when
    /// it is migrated: `default` if there is one, else the first.
    pub fn heir(&self) -> &str {
        self.destination(crate::config::DEFAULT_DESTINATION)
            .or_else(|| self.destinations.first())
            .map_or(crate::config::DEFAULT_DESTINATION, |d| d.name.as_str())
    }

    /// Whether ingest lists the new entries' ids for the log's trimming.
    pub fn entry_ids(&self) -> EntryIds {
        if self.history.enabled() {
            EntryIds::Listed
        } else {
            EntryIds::Unlisted
        }
    }
}

impl Destination {
    fn build(
        config: &DestinationConfig,
        key: &str,
        source: &str,
        keys: &SourceKeys,
    ) -> Result<Self, SourceError> {
        let filter = Filter::build(&config.filter, &format!("{key}.filter"))?;
        let mut headers = HeaderMap::with_capacity(config.headers.len());
        for (name, value) in &config.headers {
            let key = format!("{key}.headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SourceError::HeaderName { key: key.clone() })?;
            if let Some(why) = reserved(header.as_str()) {
                return Err(SourceError::ReservedHeader { key, why });
            }
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| SourceError::HeaderValue { key })?;
            value.set_sensitive(true);
            headers.append(header, value);
        }
        if let Some(credentials) = config.url.authorization() {
            if let Some(name) = config
                .headers
                .keys()
                .find(|name| name.eq_ignore_ascii_case("authorization"))
            {
                return Err(SourceError::ReservedHeader {
                    key: format!("{key}.headers.{name}"),
                    why: "the url's credentials (user:password@) set it; keep one of the two",
                });
            }
            let mut value = HeaderValue::from_str(credentials.expose()).map_err(|_| {
                SourceError::HeaderValue {
                    key: format!("{key}.url"),
                }
            })?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        let signing_key = (!config.signing_secret.is_empty())
            .then(|| standard_webhooks::signing_key(config.signing_secret.expose()));
        Ok(Self {
            name: config.name.clone(),
            keys: keys.destination(&config.name),
            config: config.clone(),
            filter,
            headers,
            signing_key,
            metrics: DestinationMetrics::new(source, &config.name),
            dead_letter_warning: Throttle::new(DEAD_LETTER_LOG_EVERY),
        })
    }
}

/// Every source by name, in name order (listings are sorted).
#[derive(Default)]
pub struct Sources(BTreeMap<String, Arc<Source>>);

impl Sources {
    pub fn insert(&mut self, source: Source) {
        self.0.insert(source.name.clone(), Arc::new(source));
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Source>> {
        self.0.get(name)
    }

    /// Whether a destination of that name exists in `source` (or, with
    /// None, in any source): what a filter naming both may select.
    pub fn has_destination(&self, source: Option<&str>, destination: &str) -> bool {
        self.iter()
            .filter(|s| source.is_none_or(|n| n == s.name))
            .any(|s| s.destination(destination).is_some())
    }

    /// Every source, in name order, as the event log's walks take them.
    pub fn all(&self) -> Vec<&Source> {
        self.0.values().map(Arc::as_ref).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Source>> + Clone {
        self.0.values()
    }

    pub fn keys(&self) -> impl Iterator<Item = &SourceKeys> + Clone {
        self.0.values().map(|s| &s.keys)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::reserved;

    #[test]
    fn static_headers_cannot_frame_the_request_or_replace_hookds_own() {
        for name in [
            "content-length",
            "transfer-encoding",
            "connection",
            "x-hookd-attempt",
            "webhook-id",
        ] {
            assert!(reserved(name).is_some(), "{name}");
        }
        for name in [
            "authorization",
            "host",
            "content-type",
            "x-api-key",
            "x-hookd-tenant",
        ] {
            assert!(reserved(name).is_none(), "{name}");
        }
    }
}
