//! Load drivers: wrk with `benches/wrk/github.lua` (cheap on the shared
//! CPUs) and the in-repo driver (open loop from each request's scheduled
//! time, and answer counts by status), both sending 1 KiB GitHub-signed
//! webhooks with a unique `X-GitHub-Delivery` each.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::SECRET;

/// Bytes per webhook body.
pub const BODY_BYTES: usize = 1024;

/// Builds the driver's requests. GitHub's signature covers only the body,
/// so the body is signed once (by hookd's own signer) and each request
/// differs only in its `X-GitHub-Delivery` id, like wrk's script: the
/// driver spends its CPU on sending, not on HMAC.
pub struct Signer {
    body: Bytes,
    signature: http::HeaderValue,
}

impl Signer {
    pub fn new(prefix: &str) -> Self {
        let config = hookd::config::VerifyConfig::Github {
            secrets: vec![hookd::config::Secret::literal(SECRET)],
            allow_sha1: false,
        };
        let verifier = hookd::verify::Verifier::build(&config).unwrap();
        let body = body(prefix);
        let signature = verifier
            .sign(&body, hookd::unix_secs(), prefix, "application/json", None)
            .unwrap()
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-hub-signature-256"))
            .map(|(_, v)| http::HeaderValue::from_str(&v).unwrap())
            .unwrap();
        Self {
            body: Bytes::from(body),
            signature,
        }
    }

    pub fn request(&self, authority: &str, path: &str, id: &str) -> Request<Full<Bytes>> {
        Request::post(path)
            .header("host", authority)
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-hub-signature-256", self.signature.clone())
            .header("x-github-delivery", id)
            .body(Full::new(self.body.clone()))
            .unwrap()
    }
}

/// A 1 KiB JSON event body.
pub fn body(id: &str) -> Vec<u8> {
    let mut body = format!(r#"{{"action":"load.test","id":"{id}","pad":""#).into_bytes();
    body.resize(BODY_BYTES - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// What a phase measured, whichever driver ran it.
#[derive(Default)]
pub struct Summary {
    pub driver: &'static str,
    /// Answered 202.
    pub accepted: u64,
    /// Accepted per second.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answered with anything but 202.
    pub other: u64,
    /// Connections that failed.
    pub errors: u64,
    /// The other answers by status, where the driver tells them apart
    /// (the in-repo driver; wrk counts them only).
    pub statuses: BTreeMap<u16, u64>,
    /// hookd's own count of its answers by outcome over the phase (its
    /// `hookd_ingest_requests_total`), where the phase recorded them.
    pub outcomes: BTreeMap<String, u64>,
}

impl Summary {
    /// How long the run lasted, from what it accepted at what rate.
    pub fn seconds(&self) -> f64 {
        if self.rate > 0.0 {
            self.accepted as f64 / self.rate
        } else {
            0.0
        }
    }

    pub fn latency(&self) -> String {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, {}",
            self.p50_ms, self.p99_ms, self.driver
        )
    }

    /// A phase that accepted (almost) nothing measured a failure, not a
    /// rate: it says so, with what the answers were, instead of ratios or
    /// per-event figures computed over next to nothing.
    pub fn accepted_nothing(&self) -> Option<String> {
        let answers = self.accepted + self.other;
        if self.accepted > 0 && self.accepted * 100 >= answers + self.errors {
            return None;
        }
        let mut why = format!(
            "accepted almost nothing: {} of {} answers were 202, {} connection errors",
            self.accepted, answers, self.errors
        );
        if !self.statuses.is_empty() {
            let by_status: Vec<String> = self
                .statuses
                .iter()
                .map(|(status, n)| format!("{n}× {status}"))
                .collect();
            why.push_str(&format!("; other answers: {}", by_status.join(", ")));
        }
        if !self.outcomes.is_empty() {
            let by_outcome: Vec<String> = self
                .outcomes
                .iter()
                .map(|(outcome, n)| format!("{n}× {outcome}"))
                .collect();
            why.push_str(&format!("; hookd's outcomes: {}", by_outcome.join(", ")));
        }
        Some(why)
    }

    /// `rate` as a row's figure, or why there is none.
    pub fn rate_or_why(&self) -> String {
        self.accepted_nothing()
            .unwrap_or_else(|| format!("{:.0}", self.rate))
    }
}

/// Closed-loop load: wrk when available (see the module docs), else the
/// in-repo driver.
pub async fn closed_loop(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    duration: Duration,
    prefix: &str,
) -> Summary {
    if use_wrk() {
        let (path, prefix) = (path.to_owned(), prefix.to_owned());
        tokio::task::spawn_blocking(move || {
            wrk(addr, &path, connections, duration, &prefix, Pacing::Max)
        })
        .await
        .unwrap()
    } else {
        drive(addr, path, connections, duration, None, prefix)
            .await
            .summary()
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Events the runs accepted, all together.
pub fn accepted(runs: &[Summary]) -> u64 {
    runs.iter().map(|r| r.accepted).sum()
}

/// The run whose rate is the median.
pub fn median_run(runs: &[Summary]) -> &Summary {
    let rate = median(runs.iter().map(|r| r.rate).collect());
    runs.iter().find(|r| r.rate == rate).unwrap_or(&runs[0])
}

/// Each connection of a paced wrk run pauses this long after every answer.
pub const PAUSE_MS: u64 = 2;

/// Runs wrk on a blocking thread, so the sink in this process keeps its
/// runtime.
pub async fn wrk_in_background(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    duration: Duration,
    prefix: String,
    pacing: Pacing,
) -> Summary {
    tokio::task::spawn_blocking(move || wrk(addr, path, connections, duration, &prefix, pacing))
        .await
        .unwrap()
}

/// How many paced wrk connections make about `rate` requests/s: latency
/// grows with load, so two short calibration runs size it.
pub async fn pace(addr: SocketAddr, path: &'static str, rate: f64, tag: &str) -> usize {
    let mut connections = 16;
    for step in 0..2 {
        let probe = wrk_in_background(
            addr,
            path,
            connections,
            Duration::from_secs(2),
            format!("{tag}_probe{step}"),
            Pacing::PauseMs(PAUSE_MS),
        )
        .await;
        let per_connection = (probe.rate / connections as f64).max(1.0);
        connections = ((rate / per_connection).round() as usize).clamp(1, 1000);
    }
    connections
}

pub fn use_wrk() -> bool {
    match std::env::var("LOAD_DRIVER").as_deref() {
        Ok("wrk") => true,
        Ok("builtin") => false,
        _ => Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
    }
}

/// How wrk spaces its requests.
#[derive(Clone, Copy)]
pub enum Pacing {
    /// As fast as answers come back.
    Max,
    /// Each connection pauses this many ms after every answer.
    PauseMs(u64),
    /// A fixed schedule of this many requests/s (catching up if behind).
    Rate(f64),
}

pub fn wrk(
    addr: SocketAddr,
    path: &str,
    connections: usize,
    duration: Duration,
    prefix: &str,
    pacing: Pacing,
) -> Summary {
    let body = String::from_utf8(body(prefix)).unwrap();
    let signature = format!(
        "sha256={}",
        hex::encode(ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes()),
            body.as_bytes()
        ))
    );
    let mut command = Command::new("wrk");
    match pacing {
        Pacing::Max => {}
        Pacing::PauseMs(pause) => {
            command.env("WRK_PAUSE_MS", pause.to_string());
        }
        Pacing::Rate(rate) => {
            command.env("WRK_RATE", format!("{rate:.0}"));
        }
    }
    let out = command
        .args(["-t1", &format!("-c{connections}")])
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency")
        .arg("-s")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/wrk/github.lua"
        ))
        .arg(format!("http://{addr}"))
        .args(["--", path, &signature, prefix, &body])
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {text}");
    let after = |label: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(label)
                .map(str::trim)
                .map(str::to_owned)
        })
    };
    let millis = |v: String| {
        let (n, unit) = v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
        let n: f64 = n.parse().unwrap_or(f64::NAN);
        match unit {
            "us" => n / 1000.0,
            "s" => n * 1000.0,
            _ => n,
        }
    };
    let total: u64 = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let other = after("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let errors = after("Socket errors:")
        .map(|v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    let rate: f64 = after("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Summary {
        driver: match pacing {
            Pacing::Max => "wrk",
            Pacing::PauseMs(_) => "wrk, paced",
            Pacing::Rate(_) => "wrk, fixed rate",
        },
        accepted: total - other,
        rate: rate * (total - other) as f64 / total.max(1) as f64,
        p50_ms: after("50%").map(millis).unwrap_or(f64::NAN),
        p99_ms: after("99%").map(millis).unwrap_or(f64::NAN),
        other,
        errors,
        statuses: BTreeMap::new(),
        outcomes: BTreeMap::new(),
    }
}

#[derive(Default)]
pub struct Run {
    pub accepted: u64,
    other: u64,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }

    pub fn summary(mut self) -> Summary {
        Summary {
            driver: "in-repo driver",
            accepted: self.accepted,
            rate: self.rate(),
            p50_ms: self.percentile(0.5),
            p99_ms: self.percentile(0.99),
            other: self.other,
            errors: self.errors,
            statuses: std::mem::take(&mut self.statuses),
            outcomes: BTreeMap::new(),
        }
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
pub async fn drive(
    addr: SocketAddr,
    path: &'static str,
    connections: usize,
    duration: Duration,
    rate: Option<f64>,
    prefix: &str,
) -> Run {
    let signer = Arc::new(Signer::new(prefix));
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
                            *run.statuses.entry(status.as_u16()).or_default() += 1;
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
        for (status, n) in run.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.errors += run.errors;
        total.latencies_us.extend(run.latencies_us);
    }
    total.elapsed = start.elapsed();
    total
}

/// A phase whose Redis refused everything must read as a failure with its
/// answers, not as a rate (or ratios and per-event figures over nothing).
pub fn check_failure_reporting() {
    let failed = Summary {
        driver: "wrk",
        accepted: 3,
        rate: 0.3,
        other: 220_000,
        statuses: BTreeMap::from([(503, 220_000)]),
        outcomes: BTreeMap::from([("unavailable".to_owned(), 220_000)]),
        ..Summary::default()
    };
    let why = failed
        .accepted_nothing()
        .expect("a failed phase is reported");
    assert!(
        why.contains("220000× 503") && why.contains("220000× unavailable"),
        "{why}"
    );
    assert_eq!(failed.rate_or_why(), why);
    let fine = Summary {
        accepted: 40_000,
        rate: 4_000.0,
        other: 3,
        ..Summary::default()
    };
    assert!(fine.accepted_nothing().is_none());
    assert_eq!(fine.rate_or_why(), "4000");
}
