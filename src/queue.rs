//! Everything hookd keeps in Redis: the key layout ([`keys`]), what an
//! entry holds ([`entry`]), the Lua scripts that make each state move
//! atomic ([`scripts`]), group commit for ingest ([`ingest`]), the moves
//! along the delivery path ([`stream`]), each destination's shared state
//! ([`state`]) and the dead-letter queue ([`dlq`]). [`Queue`] is the
//! connection pool they share.

mod clients;
mod counters;
mod dlq;
mod entry;
mod events;
mod groups;
mod ingest;
mod keys;
mod reachability;
mod reply;
mod scripts;
mod state;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use fred::clients::Pool;
use fred::interfaces::{ClientLike, LuaInterface};
use fred::prelude::{Client, Config as FredConfig, Error as FredError, ReconnectPolicy};
use fred::types::config::{Options, TcpConfig};
use fred::types::scripts::Script;
use fred::types::{Builder, ClusterHash, CustomCommand, Value};

use crate::config::RedisUrl;

pub use clients::DedicatedClient;
pub use counters::{COUNTERS_TTL, MAX_MINUTES, MinuteCounters, Recording, minute_of};
pub use dlq::{DlqMatch, DlqRef, DlqScanFilter, DlqScanStep};
pub use entry::{
    AttemptRecord, DeadReason, Envelope, StoredEntry, decode_headers, encode_headers,
    encode_headers_except, field, header_count, history_line, parse_history,
};
pub use events::{
    EventMatch, EventScanFilter, EventScanStep, EventStatus, LoggedDestination, TrimStep,
};
pub use groups::{DestinationDepth, Forgot, OrphanGroup, SourceDepths};
pub use ingest::{
    DirectIngest, EntryIds, INGEST_TIMEOUT, IngestOutcome, IngestSettings, Ingestor, NewEvent,
};
pub use keys::{DestinationKeys, LEGACY_GROUP, SourceKeys};
pub use reachability::{ConnectionErrors, Unusable};
pub use state::{Breaker, DestinationState, DestinationStatus, Gate, Tokens};
pub use stream::{
    Ack, AckKind, ClaimPage, Claimed, DeadLetter, Due, FailedAttempt, RetryOutcome, Setup, id_ms,
};

use reply::redis;
use scripts::Scripts;

/// Upper bound on how long a blocking read waits; short so that shutdown
/// and the claim timer are noticed promptly.
pub const READ_BLOCK: Duration = Duration::from_secs(1);

/// Applies to every command; must exceed READ_BLOCK (see fred's notes).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("redis {op} failed: {}", reachability::in_words(.source))]
    Redis {
        op: &'static str,
        #[source]
        source: FredError,
    },
    #[error("unexpected redis reply to {op}: {detail}")]
    Reply { op: &'static str, detail: String },
    #[error("redis {op} took longer than {after:?}")]
    Timeout { op: &'static str, after: Duration },
    #[error("redis.url is not a valid Redis URL: {reason}")]
    BadUrl { reason: String },
}

impl QueueError {
    /// Redis could not be reached or did not answer in time: the command
    /// may or may not have run. Not a reply Redis gave (a script error,
    /// OOM, a wrong type), which trying elsewhere would not change.
    pub fn is_connection(&self) -> bool {
        use fred::error::ErrorKind;
        match self {
            QueueError::Timeout { .. } => true,
            QueueError::Redis { source, .. } => {
                matches!(
                    source.kind(),
                    ErrorKind::IO
                        | ErrorKind::Timeout
                        | ErrorKind::Canceled
                        | ErrorKind::Routing
                        | ErrorKind::Cluster
                        | ErrorKind::Backpressure
                ) || cannot_write_for_now(source.details())
            }
            QueueError::Reply { .. } | QueueError::BadUrl { .. } => false,
        }
    }

    /// No answer in time: the command may or may not have run.
    pub fn is_timeout(&self) -> bool {
        match self {
            QueueError::Timeout { .. } => true,
            QueueError::Redis { source, .. } => *source.kind() == fred::error::ErrorKind::Timeout,
            QueueError::Reply { .. } | QueueError::BadUrl { .. } => false,
        }
    }

    /// The consumer group (or its stream) vanished, e.g. Redis restarted
    /// without persistence.
    pub fn is_no_group(&self) -> bool {
        matches!(self, QueueError::Redis { source, .. } if source.details().contains("NOGROUP"))
    }
}

/// Errors fred files as unknown that still mean "Redis cannot take writes
/// right now", not "this request is wrong": fred has no connection to send
/// a command on while the one it had is closing, gives up on a command
/// whose writes kept failing while it reconnected, or lost the connection
/// before the answer; a restarted Redis answers LOADING until its data is
/// in, and during a failover a replica answers READONLY and a primary
/// without its replicas MASTERDOWN; a Redis whose snapshots fail (a full
/// or broken disk) answers MISCONF to every write, and to PING, until one
/// succeeds; one running another client's long script answers BUSY to
/// everything until it ends or is killed; a cluster answers TRYAGAIN to a
/// script whose keys are half moved while their slot migrates, and
/// CLUSTERDOWN while it lacks a master for some slot.
fn cannot_write_for_now(details: &str) -> bool {
    const CLIENT: [&str; 4] = [
        "Failed to route command",
        "Too many failed write attempts",
        "Missing expected connection",
        "Missing response",
    ];
    const NOT_NOW: [&str; 7] = [
        "BUSY",
        "CLUSTERDOWN",
        "LOADING",
        "MASTERDOWN",
        "MISCONF",
        "READONLY",
        "TRYAGAIN",
    ];
    CLIENT.iter().any(|m| details.starts_with(m))
        || details
            .split_whitespace()
            .next()
            .is_some_and(|code| NOT_NOW.contains(&code))
}

/// `redis.url`, parsed once: what [`Queue::connect`] connects to. The
/// error never quotes the URL, which may hold a password.
#[derive(Clone)]
pub struct RedisSettings {
    config: FredConfig,
    pool_size: usize,
    shown: String,
    /// `redis.key_prefix`'s [`keys::probe_key`].
    probe_key: String,
}

impl RedisSettings {
    pub fn build(url: &RedisUrl, pool_size: usize, key_prefix: &str) -> Result<Self, QueueError> {
        let config = FredConfig::from_url(url.expose()).map_err(|e| QueueError::BadUrl {
            reason: e.details().to_string(),
        })?;
        Ok(Self {
            config,
            pool_size,
            shown: url.shown(),
            probe_key: keys::probe_key(key_prefix),
        })
    }

    /// The URL with its password redacted, for logs and messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    /// The pool's command loops, restarted when one stops answering.
    drivers: Arc<clients::Drivers>,
    scripts: Arc<Scripts>,
    /// Ingest must answer fast: fail at once while disconnected instead of
    /// queueing behind a reconnect, and never resend (the provider retries).
    ingest_options: Options,
    ping_timeout: Duration,
    /// What the health check's script names, so Redis checks key access.
    probe_key: String,
}

impl Queue {
    /// Builds the pool and starts connecting in the background: a Redis that
    /// is down at startup is not fatal, readiness reports it until it comes.
    pub fn connect(settings: &RedisSettings) -> Result<Self, QueueError> {
        let mut config = settings.config.clone();
        config.fail_fast = false;
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                c.max_command_attempts = 3;
                c.tcp = TcpConfig {
                    nodelay: Some(true),
                    ..Default::default()
                };
            })
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
            // Retry forever, 100 ms doubling to 2 s: Redis outages end.
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
            .build_pool(settings.pool_size)
            .map_err(redis("build pool"))?;
        let drivers = Arc::new(clients::Drivers::start(pool.clients()));
        Ok(Self {
            pool,
            drivers,
            scripts: Arc::new(Scripts::new()),
            ingest_options: Options {
                fail_fast: true,
                max_attempts: Some(1),
                timeout: Some(ingest::INGEST_TIMEOUT),
                ..Default::default()
            },
            ping_timeout: Duration::from_secs(1),
            probe_key: settings.probe_key.clone(),
        })
    }

    /// A client with its own connection, for blocking reads, so a BLOCK
    /// never stalls commands queued behind it.
    pub fn dedicated_client(&self) -> DedicatedClient {
        DedicatedClient::new(self.pool.next())
    }

    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }

    async fn eval(
        &self,
        op: &'static str,
        script: &Script,
        keys: Vec<&str>,
        args: impl FnOnce() -> Vec<Value>,
        options: Option<&Options>,
    ) -> Result<Value, QueueError> {
        let keys = keys.into_iter().map(Into::into).collect();
        self.eval_values(self.pool.next(), op, script, keys, args(), options)
            .await
    }

    /// Runs a script by hash on `client` (any pooled one:
    /// `self.pool.next()`); loads it first if Redis lost it (restart,
    /// SCRIPT FLUSH) and runs it again.
    async fn eval_values(
        &self,
        client: &Client,
        op: &'static str,
        script: &Script,
        keys: Vec<fred::types::Key>,
        args: Vec<Value>,
        options: Option<&Options>,
    ) -> Result<Value, QueueError> {
        let run = |keys: Vec<fred::types::Key>, args: Vec<Value>| async move {
            match options {
                // fred 10 has no `LuaInterface` for `WithOptions`, so
                // `with_options(o).evalsha(..)` derefs to the bare client and
                // silently drops the options (fail-fast, timeout, attempts).
                // A custom command goes through `WithOptions` itself.
                Some(o) => {
                    // fred routes custom commands by an explicit slot only.
                    let hash = keys.first().map_or(ClusterHash::Random, |key| {
                        ClusterHash::Custom(fred::util::redis_keyslot(key.as_bytes()))
                    });
                    let mut command = Vec::with_capacity(2 + keys.len() + args.len());
                    command.push(Value::from(script.sha1().clone()));
                    command.push(Value::Integer(keys.len() as i64));
                    command.extend(keys.into_iter().map(|k| Value::Bytes(k.into_bytes())));
                    command.extend(args);
                    client
                        .with_options(o)
                        .custom::<Value, Value>(
                            CustomCommand::new_static("EVALSHA", hash, false),
                            command,
                        )
                        .await
                }
                None => {
                    client
                        .evalsha::<Value, _, _, _>(script.sha1().clone(), keys, args)
                        .await
                }
            }
        };
        match run(keys.clone(), args.clone()).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => {
                script.load(client).await.map_err(redis(op))?;
                run(keys, args).await.map_err(redis(op))
            }
            other => other.map_err(redis(op)),
        }
    }

    /// Health checks give up after `timeout` (1 s unless set).
    pub fn with_ping_timeout(mut self, timeout: Duration) -> Self {
        self.ping_timeout = timeout;
        self
    }

    /// Settings of the Redis server that put accepted events at risk, as
    /// human-readable warnings (empty when all is well). Commands a managed
    /// Redis refuses (CONFIG) are skipped.
    pub async fn durability_warnings(&self) -> Vec<String> {
        let client = self.pool.next();
        let info = |section: &'static str| async move {
            client
                .custom::<String, _>(
                    CustomCommand::new_static("INFO", ClusterHash::Random, false),
                    vec![section],
                )
                .await
                .unwrap_or_default()
        };
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_owned())
        };
        let mut warnings = Vec::new();
        let memory = info("memory").await;
        if let Some(policy) = field(&memory, "maxmemory_policy")
            && policy != "noeviction"
        {
            warnings.push(format!(
                "redis maxmemory-policy is {policy}, not noeviction: under memory pressure Redis may \
                 evict queued events or dedup keys; set maxmemory-policy noeviction"
            ));
        }
        let persistence = info("persistence").await;
        let aof = field(&persistence, "aof_enabled").is_some_and(|v| v == "1");
        let save_points: Option<String> = client
            .custom::<Vec<String>, _>(
                CustomCommand::new_static("CONFIG", ClusterHash::Random, false),
                vec!["GET", "save"],
            )
            .await
            .ok()
            .and_then(|pair| pair.get(1).cloned());
        if !aof && save_points.as_deref().is_some_and(|s| s.trim().is_empty()) {
            warnings.push(
                "redis persistence is off (no AOF, no RDB save points): a Redis restart loses every \
                 queued event; enable appendonly yes (appendfsync always for no loss)"
                    .to_owned(),
            );
        } else if !aof {
            warnings.push(
                "redis append-only file is off: a crash loses events accepted since the last RDB \
                 snapshot; enable appendonly yes"
                    .to_owned(),
            );
        }
        warnings
    }

    /// Waits until the pool's connections are up, at most `timeout`.
    pub async fn connected_within(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.pool.wait_for_connect()).await,
            Ok(Ok(()))
        )
    }

    /// Waits until Redis is usable, up to `timeout`; the last failure if it
    /// is not by then. A refusal ends the wait at once: waiting does not
    /// grant a permission.
    pub async fn wait_usable(&self, timeout: Duration) -> Result<(), Unusable> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.check().await {
                Ok(()) => return Ok(()),
                Err(refused @ Unusable::Refused(_)) => return Err(refused),
                Err(away) if tokio::time::Instant::now() >= deadline => return Err(away),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use fred::error::{Error, ErrorKind};

    use super::QueueError;

    fn redis(kind: ErrorKind, details: &str) -> QueueError {
        QueueError::Redis {
            op: "ingest",
            source: Error::new(kind, details.to_owned()),
        }
    }

    #[test]
    fn redis_being_away_counts_as_a_connection_failure_and_a_refusal_does_not() {
        for away in [
            redis(ErrorKind::IO, "Connection reset by peer"),
            redis(ErrorKind::Unknown, "Too many failed write attempts."),
            redis(ErrorKind::Unknown, "Failed to route command."),
            redis(
                ErrorKind::Unknown,
                "LOADING Redis is loading the dataset in memory",
            ),
            redis(
                ErrorKind::Unknown,
                "READONLY You can't write against a read only replica.",
            ),
            redis(
                ErrorKind::Unknown,
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
            ),
            redis(
                ErrorKind::Unknown,
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            ),
            redis(
                ErrorKind::Unknown,
                "TRYAGAIN Multiple keys request during rehashing of slot",
            ),
            redis(ErrorKind::Unknown, "CLUSTERDOWN The cluster is down"),
        ] {
            assert!(away.is_connection(), "{away}");
        }
        for refused in [
            redis(
                ErrorKind::Unknown,
                "OOM command not allowed when used memory > 'maxmemory'.",
            ),
            redis(ErrorKind::Unknown, "ERR Error running script"),
            redis(
                ErrorKind::Unknown,
                "BUSYGROUP Consumer Group name already exists",
            ),
            redis(
                ErrorKind::Unknown,
                "NOPERM this user has no permissions to run the 'evalsha' command",
            ),
            redis(
                ErrorKind::InvalidArgument,
                "WRONGTYPE Operation against a key",
            ),
        ] {
            assert!(!refused.is_connection(), "{refused}");
        }
    }
}
