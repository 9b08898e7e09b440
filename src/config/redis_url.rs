//! `redis.url`: a secret only in its credentials. Operators checking which
//! Redis a daemon talks to see the scheme, user, hosts, database and
//! cluster or sentinel settings; the password never appears.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Secret;
use super::secret::REDACTED;

/// Query parameters of Redis URLs whose values are not secret (cluster
/// nodes, the sentinel service and user). Any other parameter's value is
/// shown redacted, as one that may carry a password (`sentinelPassword`).
const SHOWN_PARAMETERS: [&str; 3] = ["node", "sentinelServiceName", "sentinelUsername"];

/// Written like any secret (a literal, `env:VAR` or `file:/path`).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    pub fn literal(value: impl Into<String>) -> Self {
        Self(Secret::literal(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The URL with its password (and any query value that may be one)
    /// replaced by `[redacted]`; a URL that does not parse is redacted
    /// whole, since where its password sits is unknown.
    pub fn shown(&self) -> String {
        shown(self.0.expose()).unwrap_or_else(|| REDACTED.to_owned())
    }
}

fn shown(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    let host = url.host_str()?;
    let mut out = format!("{}://", url.scheme());
    if !url.username().is_empty() || url.password().is_some() {
        out.push_str(url.username());
        if url.password().is_some() {
            out.push(':');
            out.push_str(REDACTED);
        }
        out.push('@');
    }
    out.push_str(host);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    if url.path() != "/" {
        out.push_str(url.path());
    }
    let mut separator = '?';
    for (name, value) in url.query_pairs() {
        let value = if SHOWN_PARAMETERS.contains(&name.as_ref()) {
            value
        } else {
            REDACTED.into()
        };
        out.push(separator);
        out.push_str(&name);
        out.push('=');
        out.push_str(&value);
        separator = '&';
    }
    Some(out)
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.shown())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = String::deserialize(deserializer)?;
        if spec.contains(REDACTED) {
            // Defaults are fed back through serde by figment; a redacted
            // URL there can only be a printed one pasted back.
            return Err(serde::de::Error::custom(
                "a Redis URL cannot hold \"[redacted]\": give the password itself (or env:VAR / file:/path for the whole URL)",
            ));
        }
        Secret::resolve(&spec)
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(raw: &str) -> String {
        RedisUrl::literal(raw).shown()
    }

    #[test]
    fn only_credentials_are_redacted() {
        assert_eq!(shown("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            shown("redis://:s3cret@redis:6380/2"),
            "redis://:[redacted]@redis:6380/2"
        );
        assert_eq!(
            shown("rediss://app:s3cret@redis.example.com"),
            "rediss://app:[redacted]@redis.example.com"
        );
        assert_eq!(shown("redis://app@redis"), "redis://app@redis");
        assert_eq!(
            shown("redis-cluster://u:s3cret@a:7000?node=b:7001&node=c:7002"),
            "redis-cluster://u:[redacted]@a:7000?node=b:7001&node=c:7002"
        );
        assert_eq!(
            shown(
                "redis-sentinel://s:26379?sentinelServiceName=m&sentinelUsername=u&sentinelPassword=s3cret"
            ),
            "redis-sentinel://s:26379?sentinelServiceName=m&sentinelUsername=u&sentinelPassword=[redacted]"
        );
        assert_eq!(
            shown("redis://h?token=s3cret"),
            "redis://h?token=[redacted]"
        );
    }

    #[test]
    fn what_does_not_parse_is_redacted_whole() {
        assert_eq!(shown("not a url s3cret"), REDACTED);
        assert_eq!(shown("unix:/tmp/s3cret"), REDACTED);
    }

    #[test]
    fn debug_and_serialize_show_no_password() {
        let url = RedisUrl::literal("redis://:s3cret@host:6379");
        assert_eq!(format!("{url:?}"), "redis://:[redacted]@host:6379");
        let json = serde_json::to_string(&url).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        assert_eq!(url.expose(), "redis://:s3cret@host:6379");
    }

    #[test]
    fn a_printed_url_is_refused_back() {
        let err = serde_json::from_str::<RedisUrl>("\"redis://:[redacted]@host\"").unwrap_err();
        assert!(err.to_string().contains("cannot hold"), "{err}");
    }
}
