//! Everything hookd keeps in Redis: key layout, the consumer group, the
//! entry fields, and the Lua scripts that make each state move atomic.
//!
//! Layout per source (the `{source}` hash tag puts every key of a source in
//! one Redis Cluster slot, so each script touches a single slot):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:{<source>}:stream` | stream, group `hookd` | undelivered events (read, in flight) |
//! | `{prefix}:{<source>}:delayed` | zset, score = due ms | events waiting for a retry |
//! | `{prefix}:{<source>}:dlq` | stream | dead-lettered events |
//! | `{prefix}:{<source>}:seen:<event id>` | string + TTL | dedup marker → first entry id |

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fred::clients::Pool;
use fred::interfaces::{ClientLike, LuaInterface, StreamsInterface};
use fred::prelude::{Client, Config as FredConfig, Error as FredError, ReconnectPolicy};
use fred::types::config::{Options, TcpConfig};
use fred::types::scripts::Script;
use fred::types::{Builder, ClusterHash, CustomCommand, Resp3Frame, Value};
use http::HeaderMap;

mod ingest;
pub use ingest::{IngestOutcome, Ingestor, NewEvent};

/// Consumer group every hookd process joins; entries are load-balanced
/// across its consumers and XAUTOCLAIM moves them between consumers.
pub const GROUP: &str = "hookd";

/// Field names of a stream entry (short: they are stored with every event).
pub mod field {
    /// Event id (provider's idempotency key).
    pub const ID: &str = "id";
    /// Event type, may be empty.
    pub const TYPE: &str = "type";
    /// Content-Type of the original request, kept for delivery.
    pub const CONTENT_TYPE: &str = "ct";
    /// Request headers as `name: value\n` lines, byte-exact.
    pub const HEADERS: &str = "hdr";
    /// Raw body, byte-exact.
    pub const BODY: &str = "body";
    /// Unix ms when hookd accepted the event.
    pub const RECEIVED: &str = "rcv";
    /// Delivery attempts already made.
    pub const ATTEMPTS: &str = "att";
    /// One line per finished attempt: `attempt\tunix_ms\tstatus\terror\n`.
    pub const LOG: &str = "log";
    /// DLQ only: why the event was dead-lettered.
    pub const REASON: &str = "reason";
    /// DLQ only: last HTTP status (empty if none).
    pub const STATUS: &str = "status";
    /// DLQ only: last error text.
    pub const ERROR: &str = "error";
    /// DLQ only: unix ms when dead-lettered.
    pub const DEAD_AT: &str = "dead_at";
    /// DLQ only: the stream entry id it had.
    pub const ENTRY: &str = "entry";
}

/// Upper bound on how long a blocking read waits; short so that shutdown
/// and the claim timer are noticed promptly.
pub const READ_BLOCK: Duration = Duration::from_secs(1);

/// Applies to every command; must exceed READ_BLOCK (see fred's notes).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("redis {op} failed: {source}")]
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
    /// The consumer group (or its stream) vanished, e.g. Redis restarted
    /// without persistence.
    pub fn is_no_group(&self) -> bool {
        matches!(self, QueueError::Redis { source, .. } if source.details().contains("NOGROUP"))
    }
}

fn redis(op: &'static str) -> impl FnOnce(FredError) -> QueueError {
    move |source| QueueError::Redis { op, source }
}

fn reply(op: &'static str, detail: impl Into<String>) -> QueueError {
    QueueError::Reply {
        op,
        detail: detail.into(),
    }
}

/// The Redis keys of one source, built once at startup.
#[derive(Debug, Clone)]
pub struct SourceKeys {
    pub source: String,
    pub stream: String,
    pub delayed: String,
    pub dlq: String,
    seen_prefix: String,
}

impl SourceKeys {
    pub fn new(prefix: &str, source: &str) -> Self {
        let base = format!("{prefix}:{{{source}}}");
        Self {
            source: source.to_owned(),
            stream: format!("{base}:stream"),
            delayed: format!("{base}:delayed"),
            dlq: format!("{base}:dlq"),
            seen_prefix: format!("{base}:seen:"),
        }
    }

    pub fn seen(&self, event_id: &str) -> String {
        let mut key = String::with_capacity(self.seen_prefix.len() + event_id.len());
        key.push_str(&self.seen_prefix);
        key.push_str(event_id);
        key
    }
}

struct Scripts {
    ingest: Script,
    ack: Script,
    retry: Script,
    promote: Script,
    dead: Script,
    claim: Script,
    stats: Script,
    replay: Script,
    dlq_scan: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            ingest: Script::from_lua(include_str!("queue/ingest.lua")),
            ack: Script::from_lua(include_str!("queue/ack.lua")),
            retry: Script::from_lua(include_str!("queue/retry.lua")),
            promote: Script::from_lua(include_str!("queue/promote.lua")),
            dead: Script::from_lua(include_str!("queue/dead.lua")),
            claim: Script::from_lua(include_str!("queue/claim.lua")),
            stats: Script::from_lua(include_str!("queue/stats.lua")),
            replay: Script::from_lua(include_str!("queue/replay.lua")),
            dlq_scan: Script::from_lua(include_str!("queue/dlq_scan.lua")),
        }
    }
}

/// An entry read back from the stream, ready to deliver.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub entry_id: String,
    pub event_id: String,
    pub event_type: String,
    pub content_type: Option<Bytes>,
    pub headers: Bytes,
    pub body: Bytes,
    pub received_ms: u64,
    pub attempts: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceStats {
    /// Not yet handed to any consumer.
    pub backlog: u64,
    /// Handed to a consumer, not yet acknowledged.
    pub pending: u64,
    /// Waiting in the delayed set for a retry.
    pub retrying: u64,
    /// Dead-lettered.
    pub dlq: u64,
    /// Age of the oldest undelivered entry in the stream (read or not).
    pub oldest_age_ms: Option<u64>,
}

/// The listing fields of a DLQ entry that matched a scan's filter.
#[derive(Debug, Clone, Default)]
pub struct DlqMatch {
    pub dlq_id: String,
    pub event_id: String,
    pub event_type: String,
    pub reason: String,
    pub status: Option<u16>,
    pub error: String,
    pub attempts: u32,
    pub received_ms: u64,
    pub dead_at_ms: u64,
    pub body_bytes: usize,
}

/// One step of a filtered DLQ walk (`dlq_scan.lua`).
#[derive(Debug, Default)]
pub struct DlqScanStep {
    /// Entries looked at; fewer than asked for means the DLQ ends here.
    pub examined: usize,
    /// The oldest entry looked at, where the next step continues below.
    pub last: Option<String>,
    pub matches: Vec<DlqMatch>,
}

/// One dead-lettered event from the DLQ stream.
#[derive(Debug, Clone)]
pub struct DlqEntry {
    pub dlq_id: String,
    pub fields: Vec<(String, Bytes)>,
}

#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    scripts: std::sync::Arc<Scripts>,
    /// Ingest must answer fast: fail at once while disconnected instead of
    /// queueing behind a reconnect, and never resend (the provider retries).
    ingest_options: Options,
}

/// Serialises request headers byte-exact as `name: value\n` lines.
pub fn encode_headers(headers: &HeaderMap) -> Bytes {
    encode_headers_except(headers, &[])
}

/// [`encode_headers`] without the headers named in `skip` (lowercase).
pub fn encode_headers_except(headers: &HeaderMap, skip: &[&str]) -> Bytes {
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 3)
        .sum();
    let mut buf = BytesMut::with_capacity(size);
    for (name, value) in headers {
        if skip.contains(&name.as_str()) {
            continue;
        }
        buf.put_slice(name.as_str().as_bytes());
        buf.put_slice(b": ");
        buf.put_slice(value.as_bytes());
        buf.put_u8(b'\n');
    }
    buf.freeze()
}

/// Inverse of [`encode_headers`]; lines that do not parse are skipped.
/// Runs once per delivery, so it scans with memchr and allocates nothing.
pub fn decode_headers(raw: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
    let mut rest = raw;
    std::iter::from_fn(move || {
        while !rest.is_empty() {
            let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
            let line = &rest[..end];
            rest = rest.get(end + 1..).unwrap_or_default();
            if let Some(colon) = memchr::memchr(b':', line) {
                let value = &line[colon + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                return Some((&line[..colon], value));
            }
        }
        None
    })
}

/// How many headers [`decode_headers`] will yield at most.
pub fn header_count(raw: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', raw).count() + usize::from(!raw.ends_with(b"\n"))
}

/// One line of an entry's attempt history; tabs and newlines are replaced
/// so the format stays parseable.
pub fn history_line(attempt: u32, at_ms: u64, status: Option<u16>, error: &str) -> String {
    let status = status.map(|s| s.to_string()).unwrap_or_default();
    let error: String = error
        .chars()
        .take(300)
        .map(|c| {
            if c == '\t' || c == '\n' || c == '\r' {
                ' '
            } else {
                c
            }
        })
        .collect();
    format!("{attempt}\t{at_ms}\t{status}\t{error}\n")
}

fn value_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Bytes(b) => Some(b.clone()),
        Value::String(s) => Some(s.inner().clone()),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        _ => None,
    }
}

fn value_string(value: &Value) -> Option<String> {
    value_bytes(value).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn parse_ascii<T: std::str::FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

fn value_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(*i).ok(),
        other => value_string(other)?.parse().ok(),
    }
}

/// Field/value pairs of one stream entry, from either a flat array or a map.
fn entry_pairs(op: &'static str, fields: Value) -> Result<Vec<(String, Bytes)>, QueueError> {
    match fields {
        Value::Array(items) => items
            .chunks(2)
            .map(|pair| match pair {
                [k, v] => Ok((
                    value_string(k).ok_or_else(|| reply(op, "field name"))?,
                    value_bytes(v).ok_or_else(|| reply(op, "field value"))?,
                )),
                _ => Err(reply(op, "odd field list")),
            })
            .collect(),
        Value::Map(map) => map
            .inner()
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    String::from_utf8_lossy(k.as_bytes()).into_owned(),
                    value_bytes(&v).ok_or_else(|| reply(op, "field value"))?,
                ))
            })
            .collect(),
        other => Err(reply(op, format!("entry fields are {:?}", other.kind()))),
    }
}

impl Envelope {
    fn empty(entry_id: String) -> Self {
        Envelope {
            entry_id,
            event_id: String::new(),
            event_type: String::new(),
            content_type: None,
            headers: Bytes::new(),
            body: Bytes::new(),
            received_ms: 0,
            attempts: 0,
        }
    }

    /// Runs once per field of every delivered event, so names are matched
    /// as bytes and only the event id and type become Strings.
    fn set_field(&mut self, name: &[u8], value: Bytes) {
        let text = || String::from_utf8_lossy(&value).into_owned();
        match name {
            n if n == field::ID.as_bytes() => self.event_id = text(),
            n if n == field::TYPE.as_bytes() => self.event_type = text(),
            n if n == field::RECEIVED.as_bytes() => {
                self.received_ms = parse_ascii(&value).unwrap_or(0)
            }
            n if n == field::ATTEMPTS.as_bytes() => {
                self.attempts = parse_ascii(&value).unwrap_or(0)
            }
            n if n == field::CONTENT_TYPE.as_bytes() => self.content_type = Some(value),
            n if n == field::HEADERS.as_bytes() => self.headers = value,
            n if n == field::BODY.as_bytes() => self.body = value,
            _ => {}
        }
    }

    /// One `[id, fields]` entry as XRANGE and XAUTOCLAIM (through fred's
    /// reply conversion) return it.
    pub fn from_stream_entry(op: &'static str, entry: Value) -> Result<Self, QueueError> {
        let mut parts = match entry {
            Value::Array(parts) if parts.len() >= 2 => parts,
            other => return Err(reply(op, format!("entry is {:?}", other.kind()))),
        };
        let fields = parts.swap_remove(1);
        let entry_id = value_string(&parts[0]).ok_or_else(|| reply(op, "entry id"))?;
        let mut env = Envelope::empty(entry_id);
        match fields {
            Value::Array(items) => {
                if items.len() % 2 != 0 {
                    return Err(reply(op, "odd field list"));
                }
                for pair in items.chunks_exact(2) {
                    let name = pair[0].as_bytes().ok_or_else(|| reply(op, "field name"))?;
                    let value = value_bytes(&pair[1]).ok_or_else(|| reply(op, "field value"))?;
                    env.set_field(name, value);
                }
            }
            Value::Map(map) => {
                for (name, value) in map.inner() {
                    let value = value_bytes(&value).ok_or_else(|| reply(op, "field value"))?;
                    env.set_field(name.as_bytes(), value);
                }
            }
            other => return Err(reply(op, format!("entry fields are {:?}", other.kind()))),
        }
        Ok(env)
    }

    /// The same entry as a raw reply frame: the delivery read takes this
    /// path, skipping fred's conversion of every field into a `Value`
    /// (which also checks each body for UTF-8).
    fn from_stream_frame(op: &'static str, entry: Resp3Frame) -> Result<Self, QueueError> {
        let mut parts = match entry {
            Resp3Frame::Array { data, .. } if data.len() >= 2 => data,
            other => return Err(reply(op, format!("entry is {}", frame_kind(&other)))),
        };
        let fields = parts.swap_remove(1);
        let entry_id = frame_bytes(&parts[0])
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .ok_or_else(|| reply(op, "entry id"))?;
        let mut env = Envelope::empty(entry_id);
        let mut set = |name: &Resp3Frame, value: &Resp3Frame| {
            let name = frame_bytes(name).ok_or_else(|| reply(op, "field name"))?;
            let value = frame_bytes(value).ok_or_else(|| reply(op, "field value"))?;
            env.set_field(&name, value);
            Ok::<_, QueueError>(())
        };
        match fields {
            Resp3Frame::Array { data, .. } => {
                if data.len() % 2 != 0 {
                    return Err(reply(op, "odd field list"));
                }
                for pair in data.chunks_exact(2) {
                    set(&pair[0], &pair[1])?;
                }
            }
            Resp3Frame::Map { data, .. } => {
                for (name, value) in &data {
                    set(name, value)?;
                }
            }
            other => {
                return Err(reply(
                    op,
                    format!("entry fields are {}", frame_kind(&other)),
                ));
            }
        }
        Ok(env)
    }
}

/// A string frame's bytes (a cheap `Bytes` clone).
fn frame_bytes(frame: &Resp3Frame) -> Option<Bytes> {
    match frame {
        Resp3Frame::BlobString { data, .. } | Resp3Frame::SimpleString { data, .. } => {
            Some(data.clone())
        }
        Resp3Frame::Number { data, .. } => Some(Bytes::from(data.to_string())),
        _ => None,
    }
}

/// For error messages about unexpected replies.
fn frame_kind(frame: &Resp3Frame) -> &'static str {
    match frame {
        Resp3Frame::Array { .. } => "an array",
        Resp3Frame::Map { .. } => "a map",
        Resp3Frame::Set { .. } => "a set",
        Resp3Frame::Null => "nil",
        Resp3Frame::Number { .. } => "a number",
        Resp3Frame::BlobString { .. } | Resp3Frame::SimpleString { .. } => "a string",
        _ => "another kind of frame",
    }
}

/// An error reply that arrived as a raw frame, as the error fred would
/// have made of it (so `is_no_group` and the logs see the same text).
fn frame_error(op: &'static str, frame: &Resp3Frame) -> Option<QueueError> {
    let text = match frame {
        Resp3Frame::SimpleError { data, .. } => data.to_string(),
        Resp3Frame::BlobError { data, .. } => String::from_utf8_lossy(data).into_owned(),
        _ => return None,
    };
    Some(QueueError::Redis {
        op,
        source: FredError::new(fred::error::ErrorKind::Unknown, text),
    })
}

/// `redis.url` as fred reads it; the error never quotes the URL, which may
/// hold a password.
pub fn parse_url(url: &str) -> Result<FredConfig, QueueError> {
    FredConfig::from_url(url).map_err(|e| QueueError::BadUrl {
        reason: e.details().to_string(),
    })
}

impl Queue {
    /// Builds the pool and starts connecting in the background: a Redis that
    /// is down at startup is not fatal, readiness reports it until it comes.
    pub fn connect(url: &str, pool_size: usize) -> Result<Self, QueueError> {
        let mut config = parse_url(url)?;
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
            .build_pool(pool_size)
            .map_err(redis("build pool"))?;
        pool.connect();
        Ok(Self {
            pool,
            scripts: std::sync::Arc::new(Scripts::new()),
            ingest_options: Options {
                fail_fast: true,
                max_attempts: Some(1),
                timeout: Some(ingest::INGEST_TIMEOUT),
                ..Default::default()
            },
        })
    }

    /// A client with its own connection, for blocking reads, so a BLOCK
    /// never stalls commands queued behind it.
    pub async fn dedicated_client(&self) -> Client {
        let client = self.pool.next().clone_new();
        client.connect();
        client
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
        self.eval_values(op, script, keys, args(), options).await
    }

    /// Runs a script by hash; loads it first if Redis lost it (restart,
    /// SCRIPT FLUSH) and runs it again.
    async fn eval_values(
        &self,
        op: &'static str,
        script: &Script,
        keys: Vec<fred::types::Key>,
        args: Vec<Value>,
        options: Option<&Options>,
    ) -> Result<Value, QueueError> {
        let client = self.pool.next();
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

    pub async fn ping(&self) -> bool {
        let options = Options {
            fail_fast: true,
            max_attempts: Some(1),
            timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        self.pool
            .next()
            .with_options(&options)
            .ping::<String>(None)
            .await
            .is_ok()
    }

    /// Creates the consumer group (and the stream) if missing. Starts at
    /// id 0 so events accepted before the group existed are delivered too.
    pub async fn ensure_group(&self, keys: &SourceKeys) -> Result<(), QueueError> {
        match self
            .pool
            .next()
            .xgroup_create::<Value, _, _, _>(keys.stream.as_str(), GROUP, "0", true)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.details().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(redis("xgroup create")(e)),
        }
    }

    /// New entries for this consumer, at most `count`; with `block`, waits
    /// up to [`READ_BLOCK`] for one. `client` must be a
    /// [`Self::dedicated_client`].
    pub async fn read(
        &self,
        client: &Client,
        keys: &SourceKeys,
        consumer: &str,
        count: usize,
        block: bool,
    ) -> Result<Vec<Envelope>, QueueError> {
        const OP: &str = "xreadgroup";
        let mut args: Vec<Value> = Vec::with_capacity(10);
        args.extend([
            Value::from_static_str("GROUP"),
            Value::from_static_str(GROUP),
            consumer.into(),
            Value::from_static_str("COUNT"),
            Value::Integer(count as i64),
        ]);
        if block {
            args.push(Value::from_static_str("BLOCK"));
            args.push(Value::Integer(READ_BLOCK.as_millis() as i64));
        }
        args.push(Value::from_static_str("STREAMS"));
        let key_at = args.len();
        args.push(keys.stream.as_str().into());
        args.push(Value::from_static_str(">"));
        // Raw reply: the entries are taken apart straight from the frame.
        // Blocking as fred's own XREADGROUP marks it, so it is never
        // pipelined behind other commands.
        let command = CustomCommand::new_static("XREADGROUP", ClusterHash::Offset(key_at), block);
        let frame = client.custom_raw(command, args).await.map_err(redis(OP))?;
        if let Some(e) = frame_error(OP, &frame) {
            return Err(e);
        }
        let lists: Vec<Resp3Frame> = match frame {
            // BLOCK timed out (or nothing new).
            Resp3Frame::Null => return Ok(Vec::new()),
            // RESP2: [[stream, [entry...]]]
            Resp3Frame::Array { data, .. } => data
                .into_iter()
                .filter_map(|s| match s {
                    Resp3Frame::Array { mut data, .. } if data.len() == 2 => {
                        Some(data.swap_remove(1))
                    }
                    _ => None,
                })
                .collect(),
            // RESP3: {stream: [entry...]}
            Resp3Frame::Map { data, .. } => data.into_values().collect(),
            other => return Err(reply(OP, frame_kind(&other))),
        };
        let mut out = Vec::with_capacity(count);
        for list in lists {
            if let Resp3Frame::Array { data, .. } = list {
                for entry in data {
                    out.push(Envelope::from_stream_frame(OP, entry)?);
                }
            }
        }
        Ok(out)
    }

    /// XAUTOCLAIM with delivery counts (`claim.lua`). Returns the next
    /// cursor ("0-0" when the scan wrapped), the claimed entries with how
    /// often each has been handed out, and how many pending ids pointed to
    /// deleted entries (Redis drops those from the pending list itself).
    pub async fn claim(
        &self,
        keys: &SourceKeys,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
    ) -> Result<(String, Vec<(Envelope, u64)>, u64), QueueError> {
        const OP: &str = "claim";
        let result = self
            .eval(
                OP,
                &self.scripts.claim,
                vec![&keys.stream],
                || {
                    vec![
                        GROUP.into(),
                        consumer.into(),
                        Value::Integer(min_idle.as_millis() as i64),
                        cursor.into(),
                        Value::Integer(count as i64),
                    ]
                },
                None,
            )
            .await?;
        let parts = match result {
            Value::Array(parts) if parts.len() == 3 => parts,
            other => return Err(reply(OP, format!("{other:?}"))),
        };
        let mut parts = parts.into_iter();
        let next = parts
            .next()
            .as_ref()
            .and_then(value_string)
            .ok_or_else(|| reply(OP, "cursor"))?;
        let entries = match parts.next() {
            Some(Value::Array(entries)) => entries,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => return Err(reply(OP, format!("entries {:?}", other.kind()))),
        };
        let deleted = parts.next().as_ref().and_then(value_u64).unwrap_or(0);
        let mut claimed = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(mut triple) = entry else {
                return Err(reply(OP, "entry shape"));
            };
            if triple.len() != 3 {
                return Err(reply(OP, "entry arity"));
            }
            let deliveries = value_u64(&triple[2]).unwrap_or(1);
            triple.truncate(2);
            claimed.push((
                Envelope::from_stream_entry(OP, Value::Array(triple))?,
                deliveries,
            ));
        }
        Ok((next, claimed, deleted))
    }

    /// Acknowledges delivered entries and removes them from the stream.
    pub async fn ack(&self, keys: &SourceKeys, entry_ids: &[&str]) -> Result<u64, QueueError> {
        let result = self
            .eval(
                "ack",
                &self.scripts.ack,
                vec![&keys.stream],
                || {
                    let mut args = Vec::with_capacity(entry_ids.len() + 1);
                    args.push(GROUP.into());
                    args.extend(entry_ids.iter().map(|id| Value::from(*id)));
                    args
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0))
    }

    /// Moves an entry to the delayed set, due after `delay`. Returns false if
    /// the entry was already gone (another consumer finished it).
    pub async fn schedule_retry(
        &self,
        keys: &SourceKeys,
        entry_id: &str,
        delay: Duration,
        history: &str,
    ) -> Result<bool, QueueError> {
        let result = self
            .eval(
                "retry",
                &self.scripts.retry,
                vec![&keys.stream, &keys.delayed],
                || {
                    vec![
                        GROUP.into(),
                        entry_id.into(),
                        Value::Integer(delay.as_millis().min(i64::MAX as u128) as i64),
                        history.into(),
                    ]
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0) > 0)
    }

    /// Moves an entry to the DLQ. `attempted` says whether this call ends a
    /// delivery attempt (counted) or not (crash-loop guard).
    #[allow(clippy::too_many_arguments)]
    pub async fn dead_letter(
        &self,
        keys: &SourceKeys,
        entry_id: &str,
        reason: &str,
        status: Option<u16>,
        error: &str,
        history: &str,
        attempted: bool,
    ) -> Result<bool, QueueError> {
        let status = status.map(|s| s.to_string()).unwrap_or_default();
        let result = self
            .eval(
                "dead-letter",
                &self.scripts.dead,
                vec![&keys.stream, &keys.dlq],
                || {
                    vec![
                        GROUP.into(),
                        entry_id.into(),
                        reason.into(),
                        status.as_str().into(),
                        error.into(),
                        history.into(),
                        if attempted { "1" } else { "0" }.into(),
                    ]
                },
                None,
            )
            .await?;
        Ok(value_u64(&result).unwrap_or(0) > 0)
    }

    /// Moves due retries back to the stream. Returns how many moved and how
    /// long until the next one is due.
    pub async fn promote(
        &self,
        keys: &SourceKeys,
        limit: usize,
    ) -> Result<(u64, Option<Duration>), QueueError> {
        const OP: &str = "promote";
        let result = self
            .eval(
                OP,
                &self.scripts.promote,
                vec![&keys.stream, &keys.delayed],
                || vec![Value::Integer(limit as i64)],
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 2 => {
                let moved = value_u64(&parts[0]).unwrap_or(0);
                let wait = match &parts[1] {
                    Value::Integer(ms) if *ms >= 0 => Some(Duration::from_millis(*ms as u64)),
                    _ => None,
                };
                Ok((moved, wait))
            }
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    pub async fn stats(&self, keys: &SourceKeys) -> Result<SourceStats, QueueError> {
        const OP: &str = "stats";
        let result = self
            .eval(
                OP,
                &self.scripts.stats,
                vec![&keys.stream, &keys.delayed, &keys.dlq],
                || vec![GROUP.into()],
                None,
            )
            .await?;
        match result {
            Value::Array(parts) if parts.len() == 5 => {
                let n = |i: usize| value_u64(&parts[i]).unwrap_or(0);
                let (length, pending) = (n(0), n(1));
                let oldest_ms = value_string(&parts[4])
                    .and_then(|id| id.split('-').next().and_then(|ms| ms.parse::<u64>().ok()));
                Ok(SourceStats {
                    backlog: length.saturating_sub(pending),
                    pending,
                    retrying: n(2),
                    dlq: n(3),
                    oldest_age_ms: oldest_ms.map(|ms| crate::unix_ms().saturating_sub(ms)),
                })
            }
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Replays a DLQ entry into the stream with attempts reset. Returns the
    /// new entry id, or None if the DLQ entry no longer exists.
    pub async fn replay(
        &self,
        keys: &SourceKeys,
        dlq_id: &str,
    ) -> Result<Option<String>, QueueError> {
        Ok(self.replay_many(keys, &[dlq_id]).await?.pop().flatten())
    }

    /// [`Self::replay`] for several entries in one script call.
    pub async fn replay_many(
        &self,
        keys: &SourceKeys,
        dlq_ids: &[&str],
    ) -> Result<Vec<Option<String>>, QueueError> {
        const OP: &str = "replay";
        if dlq_ids.is_empty() {
            return Ok(Vec::new());
        }
        let result = self
            .eval(
                OP,
                &self.scripts.replay,
                vec![&keys.stream, &keys.dlq],
                || dlq_ids.iter().map(|id| Value::from(*id)).collect(),
                None,
            )
            .await?;
        match result {
            Value::Array(items) if items.len() == dlq_ids.len() => Ok(items
                .iter()
                .map(|item| match item {
                    Value::Null | Value::Boolean(false) => None,
                    other => value_string(other),
                })
                .collect()),
            other => Err(reply(OP, format!("{other:?}"))),
        }
    }

    /// Examines up to `count` DLQ entries, newest first, from `from`
    /// (inclusive; None = the newest), and returns those matching the
    /// event type and reason (empty = any).
    pub async fn dlq_scan(
        &self,
        keys: &SourceKeys,
        from: Option<&str>,
        count: usize,
        event_type: &str,
        reason: &str,
    ) -> Result<DlqScanStep, QueueError> {
        const OP: &str = "dlq scan";
        let result = self
            .eval(
                OP,
                &self.scripts.dlq_scan,
                vec![&keys.dlq],
                || {
                    vec![
                        from.unwrap_or("+").into(),
                        Value::Integer(count as i64),
                        event_type.into(),
                        reason.into(),
                    ]
                },
                None,
            )
            .await?;
        let Value::Array(parts) = result else {
            return Err(reply(OP, "not an array"));
        };
        let [examined, last, matches] =
            <[Value; 3]>::try_from(parts).map_err(|_| reply(OP, "expected three items"))?;
        let matches = match matches {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let text = |v: &Value| value_string(v).unwrap_or_default();
        let number = |v: &Value| value_u64(v).unwrap_or(0);
        let matches = matches
            .into_iter()
            .map(|item| match item {
                Value::Array(f) if f.len() == 10 => Ok(DlqMatch {
                    dlq_id: text(&f[0]),
                    event_id: text(&f[1]),
                    event_type: text(&f[2]),
                    reason: text(&f[3]),
                    status: text(&f[4]).parse().ok(),
                    error: text(&f[5]),
                    attempts: number(&f[6]) as u32,
                    received_ms: number(&f[7]),
                    dead_at_ms: number(&f[8]),
                    body_bytes: number(&f[9]) as usize,
                }),
                _ => Err(reply(OP, "match shape")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DlqScanStep {
            examined: value_u64(&examined).unwrap_or(0) as usize,
            last: value_string(&last).filter(|id| !id.is_empty()),
            matches,
        })
    }

    /// One DLQ entry by id, or None.
    pub async fn dlq_get(
        &self,
        keys: &SourceKeys,
        dlq_id: &str,
    ) -> Result<Option<DlqEntry>, QueueError> {
        const OP: &str = "xrange";
        let value: Value = self
            .pool
            .next()
            .xrange(keys.dlq.as_str(), dlq_id, dlq_id, Some(1))
            .await
            .map_err(redis(OP))?;
        let Value::Array(entries) = value else {
            return Ok(None);
        };
        let Some(Value::Array(mut parts)) = entries.into_iter().next() else {
            return Ok(None);
        };
        if parts.len() != 2 {
            return Err(reply(OP, "entry arity"));
        }
        let fields = entry_pairs(OP, parts.swap_remove(1))?;
        let dlq_id = value_string(&parts[0]).ok_or_else(|| reply(OP, "id"))?;
        Ok(Some(DlqEntry { dlq_id, fields }))
    }

    /// Deletes a DLQ entry; false if it was not there.
    pub async fn dlq_delete(&self, keys: &SourceKeys, dlq_id: &str) -> Result<bool, QueueError> {
        Ok(self.dlq_delete_many(keys, &[dlq_id]).await? > 0)
    }

    /// Deletes DLQ entries in one command; how many were there.
    pub async fn dlq_delete_many(
        &self,
        keys: &SourceKeys,
        dlq_ids: &[&str],
    ) -> Result<usize, QueueError> {
        if dlq_ids.is_empty() {
            return Ok(0);
        }
        let deleted: i64 = self
            .pool
            .next()
            .xdel(keys.dlq.as_str(), dlq_ids.to_vec())
            .await
            .map_err(redis("xdel"))?;
        Ok(deleted.max(0) as usize)
    }

    /// Settings of the Redis server that put accepted events at risk, as
    /// human-readable warnings (empty when all is well). Commands a managed
    /// Redis refuses (CONFIG) are skipped.
    pub async fn durability_warnings(&self) -> Vec<String> {
        use fred::interfaces::ClientLike;
        use fred::types::{ClusterHash, CustomCommand};
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

    /// Waits until Redis answers, up to `timeout` (for one-shot commands).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.ping().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Removes this process' consumer from the group if it holds nothing, so
    /// restarts do not accumulate dead consumers.
    pub async fn remove_idle_consumer(&self, keys: &SourceKeys, consumer: &str) {
        let client = self.pool.next();
        let pending: Result<Value, _> = client
            .xpending(keys.stream.as_str(), GROUP, ("-", "+", 1, consumer))
            .await;
        if let Ok(Value::Array(items)) = pending
            && items.is_empty()
        {
            let _: Result<Value, _> = client
                .xgroup_delconsumer(keys.stream.as_str(), GROUP, consumer)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = SourceKeys::new("hookd", "stripe");
        assert_eq!(keys.stream, "hookd:{stripe}:stream");
        assert_eq!(keys.delayed, "hookd:{stripe}:delayed");
        assert_eq!(keys.dlq, "hookd:{stripe}:dlq");
        assert_eq!(keys.seen("evt_1"), "hookd:{stripe}:seen:evt_1");
    }

    #[test]
    fn headers_round_trip_byte_exact() {
        let mut headers = HeaderMap::new();
        headers.append("x-a", http::HeaderValue::from_static("1: two"));
        headers.append("x-a", http::HeaderValue::from_static("3"));
        headers.append(
            "x-bin",
            http::HeaderValue::from_bytes(b"caf\xc3\xa9 \xff").unwrap(),
        );
        let raw = encode_headers(&headers);
        let decoded: Vec<_> = decode_headers(&raw).collect();
        assert_eq!(header_count(&raw), 3);
        assert_eq!(
            decoded,
            vec![
                (&b"x-a"[..], &b"1: two"[..]),
                (&b"x-a"[..], &b"3"[..]),
                (&b"x-bin"[..], &b"caf\xc3\xa9 \xff"[..]),
            ]
        );
    }

    #[test]
    fn history_lines_stay_one_line() {
        let line = history_line(2, 1000, Some(503), "bad\tthing\nhappened");
        assert_eq!(line, "2\t1000\t503\tbad thing happened\n");
        assert_eq!(history_line(1, 5, None, "x"), "1\t5\t\tx\n");
    }

    #[test]
    fn envelope_from_stream_entry() {
        let entry = |fields: Value| Value::Array(vec![Value::from("1-0"), fields]);
        let flat = Value::Array(
            [
                ("id", Value::from("evt")),
                ("type", Value::from("t")),
                ("body", Value::Bytes(Bytes::from_static(b"\x00\xff"))),
                ("att", Value::from("3")),
                ("rcv", Value::Integer(17)),
                ("unknown", Value::from("ignored")),
            ]
            .into_iter()
            .flat_map(|(k, v)| [Value::from(k), v])
            .collect(),
        );
        let env = Envelope::from_stream_entry("test", entry(flat)).unwrap();
        assert_eq!(env.entry_id, "1-0");
        assert_eq!(env.event_id, "evt");
        assert_eq!(env.event_type, "t");
        assert_eq!(env.attempts, 3);
        assert_eq!(env.received_ms, 17);
        assert_eq!(&env.body[..], b"\x00\xff");
        assert_eq!(env.content_type, None);

        let odd = Value::Array(vec![Value::from("id")]);
        assert!(Envelope::from_stream_entry("test", entry(odd)).is_err());
        assert!(Envelope::from_stream_entry("test", Value::Null).is_err());
    }

    #[test]
    fn ingest_script_writes_the_entry_fields() {
        // ingest.lua names the fields itself (they are not sent per event).
        let script = include_str!("queue/ingest.lua");
        for name in [
            field::ID,
            field::TYPE,
            field::CONTENT_TYPE,
            field::HEADERS,
            field::BODY,
            field::RECEIVED,
            field::ATTEMPTS,
        ] {
            assert!(script.contains(&format!("'{name}', ")), "{name}");
        }
    }

    #[test]
    fn envelope_from_raw_stream_frame() {
        let blob = |b: &'static [u8]| Resp3Frame::BlobString {
            data: Bytes::from_static(b),
            attributes: None,
        };
        let pairs = [
            (blob(b"id"), blob(b"evt")),
            (blob(b"type"), blob(b"t")),
            (blob(b"ct"), blob(b"application/json")),
            (blob(b"body"), blob(b"\x00\xff")),
            (blob(b"att"), blob(b"2")),
            (
                blob(b"rcv"),
                Resp3Frame::Number {
                    data: 17,
                    attributes: None,
                },
            ),
            (blob(b"unknown"), blob(b"ignored")),
        ];
        let entry = |fields: Resp3Frame| Resp3Frame::Array {
            data: vec![blob(b"1-0"), fields],
            attributes: None,
        };
        // RESP2 replies arrive as flat arrays, RESP3 ones as maps.
        let flat = Resp3Frame::Array {
            data: pairs.iter().cloned().flat_map(|(k, v)| [k, v]).collect(),
            attributes: None,
        };
        let map = Resp3Frame::Map {
            data: pairs.iter().cloned().collect(),
            attributes: None,
        };
        for fields in [flat, map] {
            let env = Envelope::from_stream_frame("test", entry(fields)).unwrap();
            assert_eq!(env.entry_id, "1-0");
            assert_eq!(env.event_id, "evt");
            assert_eq!(env.event_type, "t");
            assert_eq!(env.content_type.as_deref(), Some(&b"application/json"[..]));
            assert_eq!(&env.body[..], b"\x00\xff");
            assert_eq!(env.attempts, 2);
            assert_eq!(env.received_ms, 17);
        }

        let odd = Resp3Frame::Array {
            data: vec![blob(b"id")],
            attributes: None,
        };
        assert!(Envelope::from_stream_frame("test", entry(odd)).is_err());
        assert!(Envelope::from_stream_frame("test", Resp3Frame::Null).is_err());
        let error = Resp3Frame::SimpleError {
            data: "NOGROUP No such key or consumer group".into(),
            attributes: None,
        };
        assert!(frame_error("test", &error).is_some_and(|e| e.is_no_group()));
        assert!(frame_error("test", &blob(b"OK")).is_none());
    }
}
