//! The processes a run measures: the bare baseline server, the release
//! hookd, the counting sink, and their Redis servers' bookkeeping.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hookd::queue::SourceKeys;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::SECRET;
use crate::support::{TestRedis, free_port};

/// A bare hyper server doing hookd's single ingest round trip (the same
/// Lua script through the same queue code, with the same arguments: the
/// request's headers, event type and content type are stored as hookd
/// stores them) and nothing else: no signature check, no source lookup,
/// no metrics, a fixed answer. The ceiling hookd is compared to.
pub mod baseline {
    use super::*;
    use hookd::config::RedisUrl;
    use hookd::queue::{IngestOutcome, Ingestor, NewEvent, Queue, encode_headers};

    /// Where the baseline stores its events.
    pub fn keys() -> SourceKeys {
        SourceKeys::new("baseline", "load")
    }

    pub async fn serve(redis_url: String, port: u16) {
        let queue = Queue::connect(
            &hookd::queue::RedisSettings::build(&RedisUrl::literal(redis_url), 4, "hookd").unwrap(),
        )
        .unwrap();
        assert!(queue.wait_usable(Duration::from_secs(5)).await.is_ok());
        // Same group commit as hookd.
        let settings = hookd::queue::IngestSettings {
            writers: hookd::INGEST_WRITERS,
            dedup_ttl: std::time::Duration::from_secs(3600),
            max_backlog: u64::MAX >> 2,
            timeout: hookd::queue::INGEST_TIMEOUT,
        };
        // One destination, as hookd's ingest-ceiling source has.
        let ingestor = Ingestor::start(
            &queue,
            keys(),
            vec!["default".to_owned()],
            "default",
            // As hookd's sources, which keep the default event log.
            hookd::queue::EntryIds::Listed,
            settings,
            &tokio_util::task::TaskTracker::new(),
        );
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        println!("ready");
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let ingestor = ingestor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let ingestor = ingestor.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let header = |name| {
                            parts
                                .headers
                                .get(name)
                                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                                .unwrap_or("")
                        };
                        let body = Limited::new(body, 1 << 20)
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        // The same script arguments hookd sends (headers,
                        // type, content type), so Redis does the same work.
                        let event = NewEvent {
                            event_id: header("x-github-delivery"),
                            event_type: header("x-github-event"),
                            content_type: parts
                                .headers
                                .get(http::header::CONTENT_TYPE)
                                .map(http::HeaderValue::as_bytes),
                            headers: encode_headers(&parts.headers),
                            body,
                            received_ms: hookd::unix_ms(),
                        };
                        let status = match ingestor.ingest(&event).await {
                            Ok(IngestOutcome::Queued { .. }) => StatusCode::ACCEPTED,
                            Ok(_) => StatusCode::OK,
                            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }
}

/// Counts deliveries; answers 200 at once. A real destination runs on
/// another machine; this one shares the CPUs with hookd, so it is kept as
/// cheap as a server gets: HTTP/1.1 only (what hookd speaks to
/// destinations) on a runtime of its own, one thread, which never hands a
/// connection's work to another thread or competes with the bench's own
/// bookkeeping.
pub fn start_sink(count: Arc<AtomicU64>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::Builder::new()
        .name("sink".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                serve_sink(TcpListener::from_std(listener).unwrap(), count).await;
            });
        })
        .unwrap();
    addr
}

async fn serve_sink(listener: TcpListener, count: Arc<AtomicU64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let count = count.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let count = count.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    count.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The release hookd under test, with six sources: `ingest` and
/// `ingest2` (one and two destinations, deliveries held back to 1/s, for
/// the ingest ceiling), `e2e` and `fanout` (one and two destinations,
/// delivered as fast as the sink takes them), `e2e_nolog` (`e2e` without
/// the event log) and `logged` (a 200k-event log).
pub struct Hookd {
    pub child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Hookd {
    pub fn start(redis_port: u16, sink: SocketAddr, in_flight: u64) -> Self {
        Self::start_under(redis_port, sink, in_flight, None)
    }

    /// `wrapper` runs hookd under another program (callgrind).
    pub fn start_under(
        redis_port: u16,
        sink: SocketAddr,
        in_flight: u64,
        wrapper: Option<Command>,
    ) -> Self {
        let bin = std::env::var("HOOKD_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/hookd").to_owned()
        });
        assert!(
            std::path::Path::new(&bin).exists(),
            "{bin} missing: run `cargo build --release` first (benches/load.sh does)"
        );
        let (public, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let spool = spool.display();
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{public}"
[admin]
listen = "127.0.0.1:{admin}"
[redis]
url = "redis://127.0.0.1:{redis_port}"
[ingest]
max_backlog = 100000000
# On, and empty while Redis is healthy: what the ingest rounds measure.
[spool]
dir = "{spool}"
[worker]
concurrency = {in_flight}
# Ingest ceiling: deliveries throttled to 1/s so they do not compete.
[[sources]]
name = "ingest"
verify = {{ scheme = "github", secrets = ["{SECRET}"] }}
[sources.destination]
url = "http://{sink}/ingest-only"
rate_per_sec = 1
# The same with two destinations: what fan-out costs ingest.
[[sources]]
name = "ingest2"
verify = {{ scheme = "github", secrets = ["{SECRET}"] }}
[[sources.destinations]]
name = "a"
url = "http://{sink}/ingest-only"
rate_per_sec = 1
[[sources.destinations]]
name = "b"
url = "http://{sink}/ingest-only"
rate_per_sec = 1
# End to end: delivered as fast as the sink takes them.
[[sources]]
name = "e2e"
verify = {{ scheme = "github", secrets = ["{SECRET}"] }}
[sources.destination]
url = "http://{sink}/hook"
max_in_flight = {in_flight}
# The same without the event log: what keeping history costs end to end.
[[sources]]
name = "e2e_nolog"
verify = {{ scheme = "github", secrets = ["{SECRET}"] }}
history = {{ max_events = 0, max_age = "24h" }}
[sources.destination]
url = "http://{sink}/hook"
max_in_flight = {in_flight}
# A long event log: memory per retained event, listing latency.
[[sources]]
name = "logged"
verify = {{ scheme = "github", secrets = ["{SECRET}"] }}
history = {{ max_events = 200000, max_age = "24h" }}
[sources.destination]
url = "http://{sink}/logged"
max_in_flight = {in_flight}
# End to end to two destinations, each receiving every event.
[[sources]]
name = "fanout"
verify = {{ scheme = "github", secrets = ["{SECRET}"] }}
[[sources.destinations]]
name = "a"
url = "http://{sink}/hook"
max_in_flight = {in_flight}
[[sources.destinations]]
name = "b"
url = "http://{sink}/hook"
max_in_flight = {in_flight}
"#
        );
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = match wrapper {
            Some(mut wrapper) => {
                wrapper.arg(bin);
                wrapper
            }
            None => Command::new(bin),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let hookd = Self {
            child,
            public: SocketAddr::from(([127, 0, 0, 1], public)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            _dir: dir,
        };
        for _ in 0..1200 {
            if http_get(hookd.admin, "/health/ready").is_some_and(|(s, _)| s == 200) {
                return hookd;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hookd did not become ready");
    }

    /// hookd's answers to `source` so far, by outcome, from its metrics.
    pub fn ingest_outcomes(&self, source: &str) -> BTreeMap<String, u64> {
        let prefix = format!("hookd_ingest_requests_total{{source=\"{source}\",outcome=\"");
        http_get(self.admin, "/metrics")
            .map(|(_, text)| {
                text.lines()
                    .filter_map(|line| {
                        let rest = line.strip_prefix(&prefix)?;
                        let (outcome, value) = rest.split_once("\"} ")?;
                        Some((outcome.to_owned(), value.trim().parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The outcomes counted since `before`, those that moved.
    pub fn ingest_outcomes_since(
        &self,
        source: &str,
        before: &BTreeMap<String, u64>,
    ) -> BTreeMap<String, u64> {
        self.ingest_outcomes(source)
            .into_iter()
            .map(|(k, v)| {
                let was = before.get(&k).copied().unwrap_or(0);
                (k, v.saturating_sub(was))
            })
            .filter(|(_, v)| *v > 0)
            .collect()
    }

    /// Waits (up to `limit`) until the end-to-end sources have nothing
    /// waiting.
    pub async fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while ["e2e", "e2e_nolog", "fanout"]
            .iter()
            .any(|source| backlog(self.admin, source) > 0)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hookd on a Redis of its own, delivering to a counting sink: what
/// every phase that runs hookd natively starts from.
pub struct Stack {
    // First, so it stops before the Redis it writes to.
    pub hookd: Hookd,
    /// Requests the sink has answered.
    pub delivered: Arc<AtomicU64>,
    pub redis: TestRedis,
}

impl Stack {
    pub fn start(in_flight: u64) -> Self {
        let redis = TestRedis::start();
        let delivered = Arc::new(AtomicU64::new(0));
        let sink = start_sink(delivered.clone());
        let hookd = Hookd::start(redis.port, sink, in_flight);
        Self {
            hookd,
            delivered,
            redis,
        }
    }
}

/// A tiny blocking GET for status probes (keeps the async driver clean).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((status, body))
}

/// What `source` has not delivered yet (unread + in flight), summed over
/// its destinations.
pub fn backlog(admin: SocketAddr, source: &str) -> u64 {
    http_get(admin, "/health")
        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
        .map(|v| {
            v["sources"][source]["destinations"]
                .as_object()
                .map(|destinations| {
                    destinations
                        .values()
                        .map(|d| {
                            d["backlog"].as_u64().unwrap_or(0) + d["pending"].as_u64().unwrap_or(0)
                        })
                        .sum()
                })
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// `POST` path of one of [`Hookd`]'s sources (the drivers take static
/// paths).
pub fn webhook_path(source: &str) -> &'static str {
    match source {
        "ingest" => "/webhooks/ingest",
        "ingest2" => "/webhooks/ingest2",
        "e2e" => "/webhooks/e2e",
        "fanout" => "/webhooks/fanout",
        "e2e_nolog" => "/webhooks/e2e_nolog",
        "logged" => "/webhooks/logged",
        other => panic!("the bench's hookd has no source {other}"),
    }
}

/// Redis' `used_memory`, bytes.
pub fn used_memory(redis: &TestRedis) -> u64 {
    redis
        .cli(&["INFO", "memory"])
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Empties a source's stream and forgets its event ids, between ingest
/// rounds (not timed). Held-back deliveries let each 10 s round leave
/// ~600 MB behind, and a Redis holding 2-3 GB of it ran the later
/// rounds 10-25% slower (baseline and hookd alike), a drift of the
/// bench's own making. The forgetting goes in short steps: one call that
/// freed a round's keys and entries at once held Redis for most of a
/// second, which hookd rightly took for a hung Redis, and the next round
/// measured the spool instead.
pub fn forget_ingested(redis: &TestRedis, keys: &SourceKeys) {
    // One step: a page of event ids, and up to a page of whole stream
    // nodes; the last partial node goes once nothing else is left.
    const STEP: &str = "local page = redis.call('SCAN', ARGV[3], 'MATCH', ARGV[2] .. '*', 'COUNT', 20000) \
        for _, key in ipairs(page[2]) do redis.call('UNLINK', key) end \
        redis.call('XTRIM', ARGV[1], 'MAXLEN', '~', 0, 'LIMIT', 20000) \
        if page[1] == '0' and redis.call('XLEN', ARGV[1]) < 20000 then \
          redis.call('XTRIM', ARGV[1], 'MAXLEN', 0) end \
        return {page[1], redis.call('XLEN', ARGV[1])}";
    let mut cursor = "0".to_owned();
    for _ in 0..10_000 {
        let reply = redis.cli(&["EVAL", STEP, "0", &keys.stream, &keys.seen(""), &cursor]);
        let mut lines = reply.lines().map(str::trim);
        cursor = lines.next().unwrap_or("0").to_owned();
        let left: u64 = lines.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        if cursor == "0" && left == 0 {
            return;
        }
    }
    panic!("could not empty {}", keys.stream);
}

/// (round trips from clients, commands executed including those run
/// inside Lua scripts), from INFO commandstats.
pub fn calls(redis: &TestRedis) -> (u64, u64) {
    // Commands hookd only runs inside its scripts (every command its Lua
    // calls, by the name before a subcommand: `xinfo|groups` is `xinfo`).
    const IN_SCRIPTS: &[&str] = &[
        "del",
        "exists",
        "expire",
        "get",
        "hdel",
        "hexists",
        "hget",
        "hgetall",
        "hincrby",
        "hmget",
        "hset",
        "hsetnx",
        "hvals",
        "set",
        "time",
        "xack",
        "xadd",
        "xautoclaim",
        "xclaim",
        "xdel",
        "xgroup",
        "xinfo",
        "xlen",
        "xpending",
        "xrange",
        "xrevrange",
        "xtrim",
        "zadd",
        "zcard",
        "zrange",
        "zrangebyscore",
        "zrem",
        "zscore",
    ];
    let mut top = 0;
    let mut all = 0;
    for line in redis.cli(&["INFO", "commandstats"]).lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        if name == "info" || name.starts_with("config") {
            continue;
        }
        let calls: u64 = stats
            .split("calls=")
            .nth(1)
            .and_then(|r| r.split(',').next()?.parse().ok())
            .unwrap_or(0);
        all += calls;
        let command = name.split('|').next().unwrap_or(name);
        if !IN_SCRIPTS.contains(&command) {
            top += calls;
        }
    }
    (top, all)
}
