//! End-to-end load measurement on this machine: private Redis, a baseline
//! server, the release `hookd`, a local sink, and a signed-webhook driver,
//! all in one run so the figures are ratios against the same-run baseline.
//!
//! Run it with `benches/load.sh` (builds the release binary first) or
//! `cargo build --release && cargo bench --bench load`. Under
//! `cargo test --all-targets` it only checks that it starts.
//!
//! Knobs (environment): LOAD_SECONDS (10), LOAD_CONNECTIONS (64),
//! E2E_SECONDS (60), E2E_RATE (0 = 60% of the measured ingest maximum),
//! SOAK_SECONDS (0 = skip the memory soak).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "whsec_bG9hZC10ZXN0LXNlY3JldC1mb3ItaG9va2Q=";
const BODY_BYTES: usize = 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-baseline") {
        let redis_url = args[i + 1].clone();
        let port: u16 = args[i + 2].parse().unwrap();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(baseline::serve(redis_url, port));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("load: run with `cargo bench --bench load` (or benches/load.sh) to measure");
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run());
}

/// A bare hyper server doing hookd's single ingest round trip (the same
/// Lua script through the same queue code) and nothing else: no signature
/// check, no id extraction, no metrics. The ceiling hookd is compared to.
mod baseline {
    use super::*;
    use hookd::queue::{IngestOutcome, Ingestor, NewEvent, Queue, SourceKeys};

    pub async fn serve(redis_url: String, port: u16) {
        let queue = Queue::connect(&redis_url, 4).unwrap();
        assert!(queue.wait_connected(Duration::from_secs(5)).await);
        // Same group commit as hookd (two lanes, see hookd's INGEST_LANES).
        let ingestor = Ingestor::start(
            &queue,
            SourceKeys::new("baseline", "load"),
            2,
            3600,
            u64::MAX >> 2,
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
                        let headers = req.headers();
                        let id = headers
                            .get("webhook-id")
                            .or_else(|| headers.get("x-github-delivery"))
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = Limited::new(req.into_body(), 1 << 20)
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let event = NewEvent {
                            event_id: &id,
                            event_type: "",
                            content_type: None,
                            headers: Bytes::new(),
                            body,
                            received_ms: 0,
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

struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is required");
        let redis = Self {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if redis.cli(&["PING"]).trim() == "PONG" {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis did not start");
    }

    fn cli(&self, args: &[&str]) -> String {
        Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// (round trips from clients, commands executed including those run
    /// inside Lua scripts), from INFO commandstats.
    fn calls(&self) -> (u64, u64) {
        // Commands hookd only runs inside its scripts.
        const IN_SCRIPTS: &[&str] = &[
            "get",
            "set",
            "xlen",
            "zcard",
            "xadd",
            "xack",
            "xdel",
            "zadd",
            "zrangebyscore",
            "zrem",
            "zrange",
            "xautoclaim",
            "xpending",
            "time",
            "xrange",
        ];
        let mut top = 0;
        let mut all = 0;
        for line in self.cli(&["INFO", "commandstats"]).lines() {
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
            if !IN_SCRIPTS.contains(&name) {
                top += calls;
            }
        }
        (top, all)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Signer {
    verifier: hookd::verify::Verifier,
}

impl Signer {
    fn new() -> Self {
        let config = hookd::config::VerifyConfig::StandardWebhooks {
            secrets: vec![hookd::config::Secret::literal(SECRET)],
            tolerance: Duration::from_secs(300),
        };
        Self {
            verifier: hookd::verify::Verifier::from_config(&config).unwrap(),
        }
    }

    fn request(&self, authority: &str, path: &str, id: &str) -> Request<Full<Bytes>> {
        let mut body = format!(r#"{{"type":"load.test","id":"{id}","pad":""#).into_bytes();
        body.resize(BODY_BYTES - 2, b'x');
        body.extend_from_slice(b"\"}");
        let mut builder = Request::post(path)
            .header("host", authority)
            .header("content-type", "application/json");
        for (k, v) in self
            .verifier
            .sign(&body, hookd::unix_secs(), id, "application/json", None)
            .unwrap()
        {
            builder = builder.header(k, v);
        }
        builder.body(Full::new(Bytes::from(body))).unwrap()
    }
}

#[derive(Default)]
struct Run {
    accepted: u64,
    other: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// `connections` keep-alive connections; closed loop when `rate` is None,
/// else open loop at `rate` requests/s in total (latency counted from the
/// scheduled send time, so a stall is not hidden).
async fn drive(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    prefix: &str,
) -> Run {
    let signer = Arc::new(Signer::new());
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (signer, counter, prefix) = (signer.clone(), counter.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut run = Run::default();
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let authority = addr.to_string();
            let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 / r));
            let mut next = start
                + interval
                    .map(|i| i.mul_f64(c as f64 / connections as f64))
                    .unwrap_or_default();
            while Instant::now() < deadline {
                let scheduled = if let Some(interval) = interval {
                    let at = next;
                    next += interval;
                    tokio::time::sleep_until(at.into()).await;
                    at
                } else {
                    Instant::now()
                };
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let req = signer.request(&authority, path, &format!("{prefix}_{n}"));
                if sender.ready().await.is_err() {
                    run.errors += 1;
                    break;
                }
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.into_body().collect().await;
                        run.latencies_us
                            .push(scheduled.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        if status == StatusCode::ACCEPTED {
                            run.accepted += 1;
                        } else {
                            run.other += 1;
                        }
                    }
                    Err(_) => {
                        run.errors += 1;
                        break;
                    }
                }
            }
            run
        }));
    }
    let mut total = Run::default();
    for task in tasks {
        let run = task.await.unwrap();
        total.accepted += run.accepted;
        total.other += run.other;
        total.errors += run.errors;
        total.latencies_us.extend(run.latencies_us);
    }
    total.elapsed = start.elapsed();
    total
}

/// Counts deliveries; answers 200 at once.
async fn start_sink(count: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
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
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

struct Hookd {
    child: Child,
    public: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Hookd {
    fn start(redis_port: u16, sink: SocketAddr) -> Self {
        let bin = std::env::var("HOOKD_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/hookd").to_owned()
        });
        assert!(
            std::path::Path::new(&bin).exists(),
            "{bin} missing: run `cargo build --release` first (benches/load.sh does)"
        );
        let (public, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
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
# Ingest ceiling: deliveries throttled to 1/s so they do not compete.
[[sources]]
name = "ingest"
verify = {{ scheme = "standard-webhooks", secrets = ["{SECRET}"] }}
[sources.destination]
url = "http://{sink}/ingest-only"
rate_per_sec = 1
# End to end: delivered as fast as the sink takes them.
[[sources]]
name = "e2e"
verify = {{ scheme = "standard-webhooks", secrets = ["{SECRET}"] }}
[sources.destination]
url = "http://{sink}/hook"
max_in_flight = 64
"#
        );
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(bin)
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
        for _ in 0..200 {
            if http_get(hookd.admin, "/health/ready").is_some_and(|(s, _)| s == 200) {
                return hookd;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("hookd did not become ready");
    }

    fn backlog(&self) -> u64 {
        http_get(self.admin, "/health")
            .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
            .map(|v| {
                let s = &v["sources"]["e2e"];
                s["backlog"].as_u64().unwrap_or(0) + s["pending"].as_u64().unwrap_or(0)
            })
            .unwrap_or(0)
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking GET for status probes (keeps the async driver clean).
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
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

async fn run() {
    let seconds = Duration::from_secs(env_u64("LOAD_SECONDS", 10));
    let connections = env_u64("LOAD_CONNECTIONS", 64) as usize;
    let e2e_seconds = Duration::from_secs(env_u64("E2E_SECONDS", 60));
    let soak_seconds = env_u64("SOAK_SECONDS", 0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!(
        "load: {connections} keep-alive connections, {BODY_BYTES} B signed bodies, {}s per phase",
        seconds.as_secs()
    );

    // Baseline.
    let redis = Redis::start();
    let baseline_port = free_port();
    let mut baseline = Command::new(std::env::current_exe().unwrap())
        .args([
            "--serve-baseline",
            &format!("redis://127.0.0.1:{}", redis.port),
            &baseline_port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(baseline.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let baseline_addr = SocketAddr::from(([127, 0, 0, 1], baseline_port));
    drive(
        baseline_addr,
        "/",
        connections,
        Duration::from_secs(2),
        None,
        "warm_b",
    )
    .await;
    let mut base = drive(baseline_addr, "/", connections, seconds, None, "base").await;
    let _ = baseline.kill();
    let _ = baseline.wait();
    drop(redis);

    // hookd ingest ceiling (the sink counts but deliveries compete for CPU,
    // as in production).
    let redis = Redis::start();
    let delivered = Arc::new(AtomicU64::new(0));
    let sink = start_sink(delivered.clone()).await;
    let hookd = Hookd::start(redis.port, sink);
    drive(
        hookd.public,
        "/webhooks/ingest",
        connections,
        Duration::from_secs(2),
        None,
        "warm_h",
    )
    .await;
    let calls_before = redis.calls();
    let mut max = drive(
        hookd.public,
        "/webhooks/ingest",
        connections,
        seconds,
        None,
        "max",
    )
    .await;
    let calls_after = redis.calls();
    let ingest_calls = (
        calls_after.0 - calls_before.0,
        calls_after.1 - calls_before.1,
    );
    let max_rate = max.rate();

    // Latency at half that rate.
    let mut half = drive(
        hookd.public,
        "/webhooks/ingest",
        connections,
        seconds,
        Some(max_rate / 2.0),
        "half",
    )
    .await;

    // hookd ingest while delivering everything (the e2e source).
    let mut mixed = drive(
        hookd.public,
        "/webhooks/e2e",
        connections,
        seconds,
        None,
        "mixed",
    )
    .await;
    // Let the backlog of the ceiling run drain before the end-to-end phase.
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while hookd.backlog() > 0 && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // End to end: ingest + delivery + ack, sustained.
    let e2e_rate = match env_u64("E2E_RATE", 0) {
        0 => (max_rate * 0.6).round(),
        r => r as f64,
    };
    let delivered_before = delivered.load(Ordering::Relaxed);
    let calls_before = redis.calls();
    let pid = hookd.child.id();
    let sampler = {
        let admin = hookd.admin;
        tokio::task::spawn_blocking(move || {
            let mut peak = 0;
            let mut backlog = Vec::new();
            let start = Instant::now();
            while start.elapsed() < e2e_seconds {
                peak = peak.max(rss_kib(pid));
                let b = http_get(admin, "/health")
                    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                    .map(|v| v["sources"]["e2e"]["backlog"].as_u64().unwrap_or(0))
                    .unwrap_or(0);
                backlog.push(b);
                std::thread::sleep(Duration::from_secs(1));
            }
            (peak, backlog)
        })
    };
    let e2e = drive(
        hookd.public,
        "/webhooks/e2e",
        connections,
        e2e_seconds,
        Some(e2e_rate),
        "e2e",
    )
    .await;
    let (peak_rss, backlog) = sampler.await.unwrap();
    let delivered_in_window = delivered.load(Ordering::Relaxed) - delivered_before;
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered.load(Ordering::Relaxed) - delivered_before < e2e.accepted
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivered_total = delivered.load(Ordering::Relaxed) - delivered_before;
    let calls_after = redis.calls();
    let e2e_calls = (
        calls_after.0 - calls_before.0,
        calls_after.1 - calls_before.1,
    );
    let third = backlog.len() / 3;
    let early: u64 = backlog[..third.max(1)].iter().copied().max().unwrap_or(0);
    let late: u64 = backlog[backlog.len().saturating_sub(third.max(1))..]
        .iter()
        .copied()
        .max()
        .unwrap_or(0);

    let mut soak = String::new();
    if soak_seconds > 0 {
        let before = rss_kib(pid);
        let samples = tokio::task::spawn_blocking(move || {
            let mut samples = Vec::new();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(soak_seconds) {
                std::thread::sleep(Duration::from_secs(60).min(Duration::from_secs(soak_seconds)));
                samples.push(rss_kib(pid) / 1024);
            }
            samples
        });
        let run = drive(
            hookd.public,
            "/webhooks/e2e",
            connections,
            Duration::from_secs(soak_seconds),
            Some(e2e_rate),
            "soak",
        )
        .await;
        let samples = samples.await.unwrap();
        let series: Vec<String> = samples.iter().map(|m| m.to_string()).collect();
        soak = format!(
            "| soak {}s at {:.0}/s: RSS MiB at start, then every minute | {} → {} (accepted {}) |\n",
            soak_seconds,
            e2e_rate,
            before / 1024,
            series.join(", "),
            run.accepted
        );
    }

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| baseline (bare hyper + same Lua round trip) accepted/s | {:.0} (p50 {:.2} ms, p99 {:.2} ms) |",
        base.rate(),
        base.percentile(0.5),
        base.percentile(0.99)
    );
    println!(
        "| hookd accepted/s, ingest only (deliveries held back) | {:.0} (p50 {:.2} ms, p99 {:.2} ms) |",
        max_rate,
        max.percentile(0.5),
        max.percentile(0.99)
    );
    println!(
        "| hookd / baseline | {:.0}% |",
        100.0 * max_rate / base.rate()
    );
    println!(
        "| hookd at half that rate ({:.0}/s) | p50 {:.2} ms, p99 {:.2} ms |",
        max_rate / 2.0,
        half.percentile(0.5),
        half.percentile(0.99)
    );
    println!(
        "| Redis round trips per accepted event, ingest (commands incl. inside Lua) | {:.2} ({:.2}) |",
        ingest_calls.0 as f64 / max.accepted.max(1) as f64,
        ingest_calls.1 as f64 / max.accepted.max(1) as f64
    );
    println!(
        "| hookd accepted/s while delivering everything, closed loop | {:.0} (p50 {:.2} ms, p99 {:.2} ms) |",
        mixed.rate(),
        mixed.percentile(0.5),
        mixed.percentile(0.99)
    );
    println!(
        "| end to end at {:.0}/s for {}s: accepted/s | {:.0} |",
        e2e_rate,
        e2e_seconds.as_secs(),
        e2e.rate()
    );
    println!(
        "| end to end: delivered/s during the window | {:.0} |",
        delivered_in_window as f64 / e2e_seconds.as_secs_f64()
    );
    println!("| end to end: backlog max first third → last third | {early} → {late} |");
    println!(
        "| end to end: lost (accepted − delivered after drain) | {} |",
        e2e.accepted.saturating_sub(delivered_total)
    );
    println!(
        "| Redis round trips per event, ingest + delivery + ack (commands incl. inside Lua) | {:.2} ({:.2}) |",
        e2e_calls.0 as f64 / e2e.accepted.max(1) as f64,
        e2e_calls.1 as f64 / e2e.accepted.max(1) as f64
    );
    println!(
        "| hookd peak RSS under end-to-end load | {:.1} MiB |",
        peak_rss as f64 / 1024.0
    );
    print!("{soak}");
    println!(
        "| non-202 answers / connection errors (all phases) | {} / {} |",
        base.other + max.other + half.other + mixed.other + e2e.other,
        base.errors + max.errors + half.errors + mixed.errors + e2e.errors
    );
}
