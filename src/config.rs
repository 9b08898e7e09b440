//! Configuration: TOML file + `HOOKD_SECTION__KEY` environment overrides.
//!
//! Every field carries a doc comment saying why it exists; `config/hookd.toml`
//! is the commented reference. Unknown keys are rejected so a typo never
//! silently falls back to a default.

/// Serde for a config value written as its text: `Display` out, `FromStr`
/// in, so a bad value's error is the parser's own description of it.
macro_rules! serde_as_text {
    ($value:ty) => {
        impl serde::Serialize for $value {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $value {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(deserializer)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

mod destination;
mod duration;
mod redis_url;
mod secret;
mod source;
mod spool;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

pub use destination::{
    BreakerConfig, DEFAULT_DESTINATION, DestinationConfig, DestinationUrl, FilterConfig,
    RetryConfig,
};
pub use redis_url::RedisUrl;
pub use secret::Secret;
pub use source::{
    FieldSource, HistoryConfig, HmacAlgorithm, SignatureEncoding, SourceConfig, VerifyConfig,
};
pub use spool::SpoolConfig;

/// Path used when neither `--config` nor `HOOKD_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/hookd.toml";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub redis: RedisConfig,
    pub worker: WorkerConfig,
    pub ingest: IngestConfig,
    /// Where events wait on local disk while Redis is unreachable.
    pub spool: SpoolConfig,
    pub shutdown: ShutdownConfig,
    pub sources: Vec<SourceConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Public listener the providers POST to.
    pub listen: SocketAddr,
    /// Upper bound on a webhook body; providers send far less, and a cap keeps
    /// one client from filling memory.
    pub max_body_bytes: usize,
    /// Closes connections that never finish their headers (slowloris).
    #[serde(with = "crate::config::duration")]
    pub header_read_timeout: Duration,
    /// Bounds how long a client may take to send its body.
    #[serde(with = "crate::config::duration")]
    pub request_timeout: Duration,
    /// Closes a keep-alive or HTTP/2 connection that has had no request in
    /// progress for this long, so idle sockets do not pile up.
    #[serde(with = "crate::config::duration")]
    pub idle_timeout: Duration,
    /// Connections served at once; beyond it new connections wait in the
    /// kernel's accept queue instead of each costing memory here.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_body_bytes: 1024 * 1024,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Operator listener (metrics, health, admin API); loopback by default so
    /// it is never exposed by accident.
    pub listen: SocketAddr,
    /// Bearer token for the admin listener; required when `listen` is not
    /// a loopback address.
    pub token: Secret,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            token: Secret::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://`, `rediss://` (TLS) or `redis-cluster://host:port?node=...`.
    /// Shown with its password redacted, since it may embed one.
    pub url: RedisUrl,
    /// Namespace for every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Connections used by ingest and state moves; blocking reads get their own.
    pub pool_size: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: RedisUrl::literal("redis://127.0.0.1:6379"),
            key_prefix: "hookd".into(),
            pool_size: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Deliveries in flight across all sources.
    pub concurrency: usize,
    /// How long an entry may stay un-acked before another consumer takes it
    /// over; must exceed every destination timeout or live deliveries get
    /// duplicated.
    #[serde(with = "crate::config::duration")]
    pub claim_idle: Duration,
    /// How often each source looks for abandoned entries.
    #[serde(with = "crate::config::duration")]
    pub claim_interval: Duration,
    /// An entry handed out more often than this is crashing its consumer;
    /// it is dead-lettered instead of taking the fleet down in a loop.
    pub max_deliveries: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            claim_idle: Duration::from_secs(60),
            claim_interval: Duration::from_secs(5),
            max_deliveries: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Undelivered events (stream + retry set) per source above which ingest
    /// answers 503, so a dead destination cannot exhaust Redis memory.
    pub max_backlog: u64,
    /// How long an event id is remembered for de-duplication.
    #[serde(with = "crate::config::duration")]
    pub dedup_ttl: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_backlog: 1_000_000,
            dedup_ttl: Duration::from_secs(72 * 3600),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Time between failing readiness and closing the listener, so load
    /// balancers stop routing here before connections are refused.
    #[serde(with = "crate::config::duration")]
    pub drain_delay: Duration,
    /// Upper bound on finishing in-flight requests and deliveries; what is
    /// unfinished stays pending in Redis for another consumer.
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            drain_delay: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Where the configuration came from, for `check-config` and startup logs.
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    File(PathBuf),
    Defaults,
}

/// The most connections, deliveries in flight or workers a limit may
/// allow: far past any machine's use, and within what a semaphore can
/// count (a larger value would stop `run` after `check-config` passed).
pub const MAX_PERMITS: usize = 1_000_000;

/// The largest body hookd accepts: Redis takes no larger string
/// (`proto-max-bulk-len`, 512 MiB by default), and the spool's records
/// count their fields' lengths in 32 bits.
pub const MAX_BODY_BYTES: usize = 512 << 20;

/// The most Redis connections of a pool: Redis runs commands on one
/// thread, so more only take clients from `maxclients`.
pub const MAX_POOL_SIZE: usize = 128;

impl Config {
    /// Loads the config file (explicit path, `HOOKD_CONFIG`, or the default
    /// path if present) merged with `HOOKD_*` environment overrides, then
    /// validates it.
    pub fn load(explicit: Option<&Path>) -> anyhow::Result<(Config, ConfigOrigin)> {
        let env_path = std::env::var_os("HOOKD_CONFIG").map(PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(env_path);
        let (figment, origin) = match path {
            Some(path) => {
                if !path.is_file() {
                    bail!("config file {} does not exist", path.display());
                }
                (
                    base_figment().merge(Toml::file_exact(&path)),
                    ConfigOrigin::File(path),
                )
            }
            None if Path::new(DEFAULT_CONFIG_PATH).is_file() => (
                base_figment().merge(Toml::file_exact(DEFAULT_CONFIG_PATH)),
                ConfigOrigin::File(DEFAULT_CONFIG_PATH.into()),
            ),
            None => (base_figment(), ConfigOrigin::Defaults),
        };
        let config = Self::from_figment(figment)?;
        Ok((config, origin))
    }

    /// Parses a TOML document (plus environment overrides) — used by tests
    /// and by `load`.
    pub fn from_toml_str(toml: &str) -> anyhow::Result<Config> {
        Self::from_figment(base_figment().merge(Toml::string(toml)))
    }

    fn from_figment(figment: Figment) -> anyhow::Result<Config> {
        refuse_source_overrides(std::env::vars_os().map(|(name, _)| name))?;
        let figment = figment.merge(
            // Only section-qualified names are config keys, so unrelated
            // HOOKD_* variables (HOOKD_CONFIG, HOOKD_LOG_FORMAT, ...) are not.
            Env::prefixed("HOOKD_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let mut config: Config = figment.extract().map_err(describe_figment_error)?;
        config.normalize()?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: cross-field rules and value ranges. Every
    /// message names the offending key.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=MAX_BODY_BYTES).contains(&self.server.max_body_bytes) {
            bail!(
                "server.max_body_bytes must be 1 to {MAX_BODY_BYTES} (the largest value Redis stores by default)"
            );
        }
        if self.server.header_read_timeout.is_zero() {
            bail!("server.header_read_timeout must be greater than 0");
        }
        if self.server.idle_timeout.is_zero() {
            bail!("server.idle_timeout must be greater than 0");
        }
        if self.server.request_timeout.is_zero() {
            // Every body not already in when reading starts would time out.
            bail!("server.request_timeout must be greater than 0");
        }
        if !(1..=MAX_PERMITS).contains(&self.server.max_connections) {
            bail!("server.max_connections must be 1 to {MAX_PERMITS}");
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.redis.pool_size) {
            bail!("redis.pool_size must be 1 to {MAX_POOL_SIZE}");
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(['{', '}']) {
            bail!("redis.key_prefix must be non-empty and must not contain braces");
        }
        if !(1..=MAX_PERMITS).contains(&self.worker.concurrency) {
            bail!("worker.concurrency must be 1 to {MAX_PERMITS}");
        }
        if self.worker.max_deliveries == 0 {
            bail!("worker.max_deliveries must be at least 1");
        }
        if self.worker.claim_interval.is_zero() {
            bail!("worker.claim_interval must be greater than 0");
        }
        if self.spool.enabled() && self.spool.max_bytes < 1 << 20 {
            bail!("spool.max_bytes must be at least 1048576 (one segment's worth of events)");
        }
        if self.ingest.max_backlog == 0 {
            bail!("ingest.max_backlog must be at least 1");
        }
        if self.ingest.dedup_ttl < Duration::from_secs(1) {
            bail!("ingest.dedup_ttl must be at least 1s");
        }
        if !self.admin.listen.ip().is_loopback() && self.admin.token.is_empty() {
            bail!(
                "admin.token is required when admin.listen ({}) is not a loopback address",
                self.admin.listen
            );
        }
        let mut names = std::collections::HashSet::new();
        for (index, source) in self.sources.iter().enumerate() {
            let key = format!("sources[{index}]");
            if !is_valid_name(&source.name) {
                bail!(
                    "{key}.name {:?} must be 1-64 characters of A-Z a-z 0-9 _ - .",
                    source.name
                );
            }
            if !names.insert(source.name.as_str()) {
                bail!("{key}.name {:?} is used by another source", source.name);
            }
            let mut destinations = std::collections::HashSet::new();
            for (d, destination) in source.destinations.iter().enumerate() {
                let key = format!("{key}.destinations[{d}]");
                if !is_valid_name(&destination.name) {
                    bail!(
                        "{key}.name {:?} must be 1-64 characters of A-Z a-z 0-9 _ - .",
                        destination.name
                    );
                }
                if !destinations.insert(destination.name.as_str()) {
                    bail!(
                        "{key}.name {:?} is used by another destination of source {:?}",
                        destination.name,
                        source.name
                    );
                }
                self.validate_destination(&key, &source.name, destination)?;
            }
        }
        Ok(())
    }

    fn validate_destination(
        &self,
        key: &str,
        source: &str,
        destination: &DestinationConfig,
    ) -> anyhow::Result<()> {
        if !(1..=MAX_PERMITS).contains(&destination.max_in_flight) {
            bail!("{key}.max_in_flight must be 1 to {MAX_PERMITS}");
        }
        if destination.timeout.is_zero() {
            bail!("{key}.timeout must be greater than 0");
        }
        let retry = &destination.retry;
        if retry.max_attempts == 0 {
            bail!("{key}.retry.max_attempts must be at least 1");
        }
        if retry.base.is_zero() || retry.max < retry.base {
            bail!(
                "{key}.retry: base must be > 0 and max must be >= base (base {:?}, max {:?})",
                retry.base,
                retry.max
            );
        }
        let breaker = &destination.breaker;
        if breaker.failures > 0
            && (breaker.cooldown.is_zero() || breaker.max_cooldown < breaker.cooldown)
        {
            bail!(
                "{key}.breaker: cooldown must be > 0 and max_cooldown must be >= cooldown (cooldown {:?}, max_cooldown {:?})",
                breaker.cooldown,
                breaker.max_cooldown
            );
        }
        if self.worker.claim_idle <= destination.timeout {
            bail!(
                "worker.claim_idle ({:?}) must exceed {key}.timeout ({:?}) of source {source:?}, \
                 or live deliveries would be claimed by another consumer and sent twice",
                self.worker.claim_idle,
                destination.timeout,
            );
        }
        Ok(())
    }

    /// The single-destination form becomes the list form's one
    /// destination, named `default`; every source has exactly one form
    /// and at least one destination.
    fn normalize(&mut self) -> anyhow::Result<()> {
        for (index, source) in self.sources.iter_mut().enumerate() {
            let key = format!("sources[{index}]");
            match (source.destination.take(), source.destinations.is_empty()) {
                (Some(mut destination), true) => {
                    if !destination.name.is_empty() && destination.name != DEFAULT_DESTINATION {
                        bail!(
                            "{key}.destination.name: the single destination is named {DEFAULT_DESTINATION:?}; \
                             use [[sources.destinations]] to name destinations"
                        );
                    }
                    destination.name = DEFAULT_DESTINATION.to_owned();
                    source.destinations.push(destination);
                }
                (Some(_), false) => bail!(
                    "{key} has both [sources.destination] and [[sources.destinations]]: use one form"
                ),
                (None, true) => bail!(
                    "{key} has no destination: add [sources.destination] or [[sources.destinations]]"
                ),
                (None, false) => {}
            }
        }
        Ok(())
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> anyhow::Result<String> {
        toml::to_string_pretty(self).context("rendering the configuration as TOML")
    }
}

/// `HOOKD_SECTION__KEY` addresses a key by name, and sources are a list:
/// figment would read `HOOKD_SOURCES__0__NAME` as a table and report a
/// type mismatch at `sources` that tells the operator nothing. A source
/// lives in the file; its secrets can still come from the environment
/// (`env:VAR`). Only the variable's name is shown, never its value.
fn refuse_source_overrides(
    names: impl IntoIterator<Item = std::ffi::OsString>,
) -> anyhow::Result<()> {
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if name.to_ascii_uppercase().starts_with("HOOKD_SOURCES__") {
            bail!(
                "environment variable {name}: sources cannot be set from the environment \
                 (HOOKD_SECTION__KEY reaches the single sections only); define them in the \
                 config file, where secrets can be read from the environment as \"env:VAR\""
            );
        }
    }
    Ok(())
}

/// Defaults come from the `#[serde(default)]` impls, not from a serialized
/// copy, because a serialized `Secret` is redacted.
fn base_figment() -> Figment {
    Figment::new()
}

/// Source and destination names: URL path segments, Redis hash tags,
/// consumer group names and metric labels.
fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// figment reports the failing key in its own words; this makes sure the
/// dotted path is in the first line, and that no value from the file is
/// quoted: the key may be a secret (and inside `verify`, serde loses the
/// path below the table), so a wrong type is described by its kind only.
fn describe_figment_error(error: figment::Error) -> anyhow::Error {
    use figment::error::Kind;
    let mut lines = Vec::new();
    for e in error {
        let key = key_path(&e.path);
        let kind = match &e.kind {
            Kind::InvalidType(actual, expected) => {
                format!(
                    "invalid type: found {}, expected {expected}",
                    kind_of(actual)
                )
            }
            Kind::InvalidValue(actual, expected) => {
                format!(
                    "invalid value: found {}, expected {expected}",
                    kind_of(actual)
                )
            }
            Kind::Unsupported(actual) => format!("unsupported type: {}", kind_of(actual)),
            Kind::UnsupportedKey(actual, expected) => {
                format!(
                    "unsupported key type: found {}, expected {expected}",
                    kind_of(actual)
                )
            }
            Kind::Message(message) => without_source_lines(message),
            // figment would say "expected `none`", which reads as a value.
            Kind::UnknownField(found, []) => {
                format!("unknown field `{found}`: no other key is allowed here")
            }
            other => other.to_string(),
        };
        if key.is_empty() {
            lines.push(format!("invalid configuration: {kind}"));
        } else {
            lines.push(format!("invalid configuration at key `{key}`: {kind}"));
        }
    }
    anyhow::anyhow!(lines.join("; "))
}

/// figment's path as hookd's own checks write it: list positions in
/// brackets (`sources[0].destinations[1].url`), so every message names a
/// key the same way.
fn key_path(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if !key.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            key.push('[');
            key.push_str(segment);
            key.push(']');
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    key
}

/// A value's kind for error messages, never the value itself.
fn kind_of(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "nothing",
        Actual::Seq => "a list",
        Actual::Map | Actual::NewtypeStruct | Actual::StructVariant => "a table",
        _ => "another kind of value",
    }
}

/// A TOML syntax error quotes the offending line (which may hold a
/// secret) between gutter marks; keep the position and the reason only.
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .filter(|line| {
            !line
                .trim_start()
                .split_once('|')
                .is_some_and(|(gutter, _)| gutter.trim().chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests;
