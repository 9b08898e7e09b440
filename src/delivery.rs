//! The delivery pipeline: per source a reader that takes from the stream
//! only what it can start now, a bounded worker pool, retries parked in
//! Redis (never slept on in a worker), dead-lettering, and crash recovery
//! through XAUTOCLAIM.

mod backoff;
mod pool;
mod rate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

pub use backoff::{backoff_delay, parse_retry_after};
use pool::Connections;
use rate::RateLimiter;

use crate::queue::{Envelope, QueueError, decode_headers, header_count, history_line};
use crate::telemetry::DeliveryOutcome;
use crate::{App, Source, unix_ms};

/// Most entries one read or claim asks for; bounds a burst's memory.
const MAX_BATCH: usize = 128;
/// Most retries moved back per promote call.
const PROMOTE_BATCH: usize = 512;
/// The promoter also looks for retries scheduled by other processes.
const PROMOTE_POLL: Duration = Duration::from_secs(1);
/// Bytes of a failed response kept as the error text.
const ERROR_SNIPPET: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("destination url {url:?} is invalid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot set up tls for https destinations")]
    Tls(#[source] rustls::Error),
}

/// TLS for https destinations. Trusted: the Mozilla roots built into the
/// binary, so public endpoints work in a bare container, plus the system's
/// store (or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set), so a service
/// behind a private CA works once its CA is installed the usual way, as
/// for `rediss://` Redis. An unreadable system store costs only its own
/// certificates, with a warning.
fn destination_tls() -> Result<rustls::ClientConfig, DeliveryError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        warn!(error = %error, "cannot read part of the system's trusted certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    debug!(
        builtin = webpki_roots::TLS_SERVER_ROOTS.len(),
        system = added,
        ignored,
        "certificate authorities trusted for https destinations"
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(DeliveryError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// What [`Pipeline::start`] would refuse, without starting it.
pub fn check(config: &crate::config::Config) -> Result<(), DeliveryError> {
    destination_tls()?;
    for source in &config.sources {
        validate_destination_url(&source.destination.url)?;
    }
    Ok(())
}

pub fn validate_destination_url(url: &str) -> Result<Uri, DeliveryError> {
    let bad = |reason: &str| DeliveryError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad("scheme must be http or https")),
    }
    if uri.authority().is_none() {
        return Err(bad("host is missing"));
    }
    Ok(uri)
}

/// Headers a proxy must not forward (RFC 9110 §7.6.1) plus those hyper
/// computes for the outgoing request.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
    "expect",
];

/// A provider's Standard Webhooks / Svix signature set. When hookd signs a
/// delivery itself these go, so the destination never sees two sets (the
/// svix libraries read `svix-*` first and would check the provider's).
const SIGNATURE_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
];

/// Headers hookd sets on every delivery (host, content-type, the webhook-*
/// trio and the x-hookd-* trio).
const ADDED_HEADERS: usize = 8;

static WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
static WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
static WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
static X_HOOKD_SOURCE: HeaderName = HeaderName::from_static("x-hookd-source");
static X_HOOKD_EVENT_TYPE: HeaderName = HeaderName::from_static("x-hookd-event-type");
static X_HOOKD_ATTEMPT: HeaderName = HeaderName::from_static("x-hookd-attempt");

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered {
        status: u16,
    },
    /// Worth trying again: 408, 425, 429, 5xx, 1xx/3xx, timeouts, connection errors.
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// The destination refused the event itself (other 4xx).
    Rejected {
        status: u16,
        error: String,
    },
}

pub fn classify(status: StatusCode) -> AttemptClass {
    match status.as_u16() {
        200..=299 => AttemptClass::Delivered,
        408 | 425 | 429 => AttemptClass::Retry,
        400..=499 => AttemptClass::Reject,
        _ => AttemptClass::Retry,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptClass {
    Delivered,
    Retry,
    Reject,
}

/// Per-source delivery state.
struct Lane {
    source: Arc<Source>,
    /// Keep-alive connections to the destination.
    connections: Connections,
    in_flight: Arc<Semaphore>,
    signing_key: Option<ring::hmac::Key>,
    /// Delivered entries waiting to be acknowledged in a batch.
    acks: mpsc::UnboundedSender<String>,
}

/// A delivery's right to run: one global worker slot and one slot of its
/// destination. Dropping it frees both.
struct Permits {
    _worker: OwnedSemaphorePermit,
    _destination: OwnedSemaphorePermit,
}

/// The slots one read may fill: as many worker slots as destination slots,
/// held as two multi-permit grants so that a read asking for 64 entries and
/// getting 2 back costs two semaphore operations, not 128.
struct Grant {
    worker: OwnedSemaphorePermit,
    destination: OwnedSemaphorePermit,
}

impl Grant {
    fn len(&self) -> usize {
        self.destination.num_permits()
    }

    /// Gives back all but `n` slots (at least one is always kept).
    fn truncate(&mut self, n: usize) {
        let excess = self.len().saturating_sub(n.max(1));
        if excess > 0 {
            drop(self.worker.split(excess));
            drop(self.destination.split(excess));
        }
    }

    /// One delivery's slots, while any are left; what is left when the
    /// grant is dropped goes back at once.
    fn take_one(&mut self) -> Option<Permits> {
        if self.len() == 0 {
            return None;
        }
        Some(Permits {
            _worker: self.worker.split(1)?,
            _destination: self.destination.split(1)?,
        })
    }
}

pub struct Pipeline {
    app: Arc<App>,
    consumer: String,
    readers: TaskTracker,
    ackers: TaskTracker,
    /// Cancelled at the shutdown deadline: deliveries still waiting for
    /// their destination give up and stay pending for another consumer.
    abandon: CancellationToken,
}

impl Pipeline {
    pub fn start(
        app: Arc<App>,
        token: CancellationToken,
        deliveries: TaskTracker,
    ) -> Result<Self, DeliveryError> {
        let mut http = HttpConnector::new();
        // The scheme is the TLS wrapper's business (https_or_http).
        http.enforce_http(false);
        // Each delivery is written whole and then waits for its answer, so
        // Nagle's algorithm has nothing to coalesce; left on, it could hold
        // a large body's last partial segment back until the peer
        // acknowledges the one before (up to its delayed-ACK timer).
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(destination_tls()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let consumer = consumer_name();
        info!(consumer = %consumer, "delivery pipeline starting");
        let promoted = Arc::new(Notify::new());
        let abandon = CancellationToken::new();
        let readers = TaskTracker::new();
        let ackers = TaskTracker::new();
        for source in app.sources.values() {
            let destination = &source.config.destination;
            let uri = validate_destination_url(&destination.url)?;
            let signing_key = (!destination.signing_secret.is_empty())
                .then(|| signing_key(destination.signing_secret.expose()));
            let (acks, pending_acks) = mpsc::unbounded_channel();
            ackers.spawn(acker(app.clone(), source.clone(), pending_acks));
            let lane = Arc::new(Lane {
                source: source.clone(),
                connections: Connections::new(connector.clone(), uri),
                in_flight: Arc::new(Semaphore::new(destination.max_in_flight)),
                signing_key,
                acks,
            });
            let reader = Reader {
                app: app.clone(),
                lane,
                consumer: consumer.clone(),
                token: token.clone(),
                deliveries: deliveries.clone(),
                promoted: promoted.clone(),
                abandon: abandon.clone(),
            };
            readers.spawn(reader.run());
        }
        readers.spawn(promoter(app.clone(), token, promoted));
        readers.close();
        ackers.close();
        Ok(Self {
            app,
            consumer,
            readers,
            ackers,
            abandon,
        })
    }

    /// Makes every delivery still in flight give up at once, without
    /// recording an outcome: its entry stays pending in Redis and is
    /// claimed after `claim_idle`.
    pub fn abandon_deliveries(&self) {
        self.abandon.cancel();
    }

    /// Resolves once every reader and the promoter have stopped.
    pub async fn stopped(&self) {
        self.readers.wait().await;
    }

    /// Resolves once every delivered entry has been acknowledged; the
    /// ackers end when the last delivery holding their lane is gone.
    pub async fn acks_flushed(&self) {
        self.ackers.wait().await;
    }

    /// Deletes this process' consumer from each group if it holds nothing.
    pub async fn release_consumers(&self) {
        for source in self.app.sources.values() {
            self.app
                .queue
                .remove_idle_consumer(&source.keys, &self.consumer)
                .await;
        }
    }
}

fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:x}", std::process::id(), unix_ms())
}

/// `whsec_<base64>` per Standard Webhooks; anything else is used as raw key
/// bytes.
fn signing_key(secret: &str) -> ring::hmac::Key {
    crate::verify::standard_webhooks_key(0, secret)
        .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()))
}

struct Reader {
    app: Arc<App>,
    lane: Arc<Lane>,
    consumer: String,
    token: CancellationToken,
    deliveries: TaskTracker,
    promoted: Arc<Notify>,
    abandon: CancellationToken,
}

impl Reader {
    async fn run(self) {
        let keys = &self.lane.source.keys;
        let config = &self.app.config.worker;
        let blocking = self.app.queue.dedicated_client().await;
        let mut rate = RateLimiter::new(self.lane.source.config.destination.rate_per_sec);
        let mut group_ready = false;
        // While the stream is idle the reader blocks holding a single slot,
        // so idle sources do not sit on worker slots others could use; once
        // entries flow it reads in batches without blocking.
        let mut idle = true;
        let mut claim_cursor = String::from("0-0");
        // Claim right away: a previous process may have died holding entries.
        let mut next_claim = Instant::now();
        while !self.token.is_cancelled() {
            if !group_ready {
                match self.app.queue.ensure_group(keys).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        debug!(source = %keys.source, error = %e, "cannot create consumer group yet");
                        self.pause(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let Some(mut grant) = self.acquire_batch().await else {
                break;
            };
            let claiming = Instant::now() >= next_claim;
            if idle && !claiming {
                grant.truncate(1);
            }
            let Some(allowed) = rate.acquire(grant.len(), &self.token).await else {
                break;
            };
            grant.truncate(allowed);
            let batch = if claiming {
                let claimed = self.claim(&mut claim_cursor, grant.len()).await;
                if claimed.is_ok() && claim_cursor == "0-0" {
                    next_claim = Instant::now() + config.claim_interval;
                }
                claimed
            } else {
                self.app
                    .queue
                    .read(&blocking, keys, &self.consumer, grant.len(), idle)
                    .await
                    .inspect(|entries| idle = entries.is_empty())
            };
            let entries = match batch {
                Ok(entries) => entries,
                Err(e) => {
                    if e.is_no_group() {
                        warn!(source = %keys.source, "consumer group missing (redis restarted empty?): recreating");
                        group_ready = false;
                    } else {
                        debug!(source = %keys.source, error = %e, "reading the stream failed");
                        self.pause(Duration::from_millis(500)).await;
                    }
                    rate.refund(grant.len());
                    continue;
                }
            };
            rate.refund(grant.len().saturating_sub(entries.len()));
            for envelope in entries {
                // Reads never return more entries than they were given
                // slots for, so this runs out only after the last entry.
                let Some(permits) = grant.take_one() else {
                    break;
                };
                let job = Job {
                    app: self.app.clone(),
                    lane: self.lane.clone(),
                    promoted: self.promoted.clone(),
                    abandon: self.abandon.clone(),
                };
                // Boxed: the task cell then holds a pointer, not the
                // 2 KiB future, which tokio would otherwise copy on every
                // move into the task and again when the task finishes.
                self.deliveries.spawn(Box::pin(job.run(envelope, permits)));
            }
        }
        debug!(source = %keys.source, "reader stopped");
    }

    async fn pause(&self, duration: Duration) {
        tokio::select! {
            _ = self.token.cancelled() => {}
            _ = tokio::time::sleep(duration) => {}
        }
    }

    /// Waits for at least one free slot (destination, then worker), then
    /// takes whatever more is free right now, up to MAX_BATCH. None on
    /// shutdown.
    async fn acquire_batch(&self) -> Option<Grant> {
        let destination = &self.lane.in_flight;
        let workers = &self.app.workers;
        let mut grant = Grant {
            destination: tokio::select! {
                _ = self.token.cancelled() => return None,
                p = destination.clone().acquire_owned() => p.ok()?,
            },
            worker: tokio::select! {
                _ = self.token.cancelled() => return None,
                p = workers.clone().acquire_owned() => p.ok()?,
            },
        };
        let more = (MAX_BATCH - 1)
            .min(destination.available_permits())
            .min(workers.available_permits());
        if more > 0 {
            // Other sources' readers take worker slots concurrently; if they
            // got there first, this read makes do with what it has.
            if let Ok(d) = destination.clone().try_acquire_many_owned(more as u32)
                && let Ok(w) = workers.clone().try_acquire_many_owned(more as u32)
            {
                grant.destination.merge(d);
                grant.worker.merge(w);
            }
        }
        Some(grant)
    }

    /// One XAUTOCLAIM step. Entries handed out more than
    /// `worker.max_deliveries` times are crash-looping and go to the DLQ.
    async fn claim(&self, cursor: &mut String, count: usize) -> Result<Vec<Envelope>, QueueError> {
        let keys = &self.lane.source.keys;
        let config = &self.app.config.worker;
        let (next, claimed, deleted) = self
            .app
            .queue
            .claim(keys, &self.consumer, config.claim_idle, cursor, count)
            .await?;
        *cursor = next;
        if deleted > 0 {
            debug!(source = %keys.source, deleted, "pending ids of deleted entries dropped");
        }
        let mut ready = Vec::with_capacity(claimed.len());
        for (envelope, deliveries) in claimed {
            self.lane.source.metrics.claimed.increment(1);
            if deliveries > config.max_deliveries {
                warn!(
                    source = %keys.source,
                    event_id = %envelope.event_id,
                    deliveries,
                    "entry keeps crashing its consumers: dead-lettering"
                );
                let history = history_line(
                    envelope.attempts + 1,
                    unix_ms(),
                    None,
                    "handed out more than worker.max_deliveries times",
                );
                self.app
                    .queue
                    .dead_letter(
                        keys,
                        &envelope.entry_id,
                        "max_deliveries",
                        None,
                        "handed out more than worker.max_deliveries times",
                        &history,
                        false,
                    )
                    .await?;
                self.lane.source.metrics.delivery(DeliveryOutcome::Dead);
                continue;
            }
            info!(source = %keys.source, event_id = %envelope.event_id, deliveries, "claimed an abandoned entry");
            ready.push(envelope);
        }
        Ok(ready)
    }
}

/// Acknowledges delivered entries of one source in batches: it takes what
/// has queued up since the last round trip (up to ACK_BATCH), so an idle
/// system acks at once and a busy one amortises the round trip. A failed
/// ack is retried briefly; if Redis stays away the entries remain pending
/// and are delivered again after claim_idle (at-least-once).
async fn acker(app: Arc<App>, source: Arc<Source>, mut pending: mpsc::UnboundedReceiver<String>) {
    const ACK_BATCH: usize = 512;
    let mut batch: Vec<String> = Vec::with_capacity(ACK_BATCH);
    while let Some(first) = pending.recv().await {
        batch.push(first);
        while batch.len() < ACK_BATCH {
            match pending.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
        let mut tries = 0;
        loop {
            match app.queue.ack(&source.keys, &ids).await {
                Ok(_) => break,
                Err(e) if tries < 3 => {
                    tries += 1;
                    debug!(source = %source.keys.source, error = %e, "ack failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => {
                    warn!(
                        source = %source.keys.source,
                        entries = ids.len(),
                        error = %e,
                        "could not acknowledge delivered entries; they will be delivered again after claim_idle"
                    );
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// Moves due retries back into their streams; wakes at the earliest due
/// time it knows of, when this process schedules a retry, and at least every
/// PROMOTE_POLL for retries other processes scheduled.
async fn promoter(app: Arc<App>, token: CancellationToken, scheduled: Arc<Notify>) {
    loop {
        let mut wait = PROMOTE_POLL;
        for source in app.sources.values() {
            match app.queue.promote(&source.keys, PROMOTE_BATCH).await {
                Ok((moved, next)) => {
                    if moved as usize >= PROMOTE_BATCH {
                        wait = Duration::ZERO;
                    } else if let Some(next) = next {
                        wait = wait.min(next);
                    }
                    if moved > 0 {
                        debug!(source = %source.keys.source, moved, "retries due again");
                    }
                }
                Err(e) => debug!(source = %source.keys.source, error = %e, "promote failed"),
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = scheduled.notified() => {}
        }
    }
}

struct Job {
    app: Arc<App>,
    lane: Arc<Lane>,
    promoted: Arc<Notify>,
    abandon: CancellationToken,
}

impl Job {
    async fn run(self, envelope: Envelope, permits: Permits) {
        let _busy = self.app.delivery_started();
        let attempt = envelope.attempts + 1;
        let span = info_span!(
            "delivery",
            source = %self.lane.source.config.name,
            event_id = %envelope.event_id,
            entry_id = %envelope.entry_id,
            attempt,
        );
        async {
            let metrics = &self.lane.source.metrics;
            let started = Instant::now();
            let destination = &self.lane.source.destination;
            destination.in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = tokio::select! {
                result = self.attempt(&envelope, attempt) => Some(result),
                _ = self.abandon.cancelled() => None,
            };
            destination.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            let Some(result) = result else {
                info!("delivery abandoned at the shutdown deadline; the entry stays pending");
                return;
            };
            match &result {
                Attempt::Delivered { .. } => destination.record(true, None),
                Attempt::Failed { status, .. } => destination.record(false, *status),
                Attempt::Rejected { status, .. } => destination.record(false, Some(*status)),
            }
            metrics
                .delivery_duration
                .record(started.elapsed().as_secs_f64());
            let settled = tokio::select! {
                settled = self.settle(&envelope, attempt, result) => settled,
                // Redis hung at the deadline: whether the script ran or
                // not, the entry is settled or still pending.
                _ = self.abandon.cancelled() => Ok(()),
            };
            if let Err(e) = settled {
                // The entry stays pending and is claimed again after
                // claim_idle: at-least-once, never lost.
                warn!(error = %e, "could not record the delivery outcome; the entry will be retried");
            }
        }
        .instrument(span)
        .await;
        drop(permits);
    }

    async fn attempt(&self, envelope: &Envelope, attempt: u32) -> Attempt {
        let destination = &self.lane.source.config.destination;
        let request = match self.build_request(envelope, attempt) {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed {
                    status: None,
                    error: format!("cannot build request: {e}"),
                    retry_after: None,
                };
            }
        };
        let connections = &self.lane.connections;
        let exchange = async {
            let (response, lease) = connections.send(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
            // Read (a bounded part of) the body so the connection can be
            // reused and a failure has its explanation; a longer or broken
            // body closes the connection.
            let body = match Limited::new(response.into_body(), ERROR_SNIPPET * 8)
                .collect()
                .await
            {
                Ok(body) => {
                    connections.release(lease);
                    body.to_bytes()
                }
                Err(_) => Bytes::new(),
            };
            Ok::<_, pool::SendError>((status, retry_after, body))
        };
        match tokio::time::timeout(destination.timeout, exchange).await {
            Err(_) => Attempt::Failed {
                status: None,
                error: format!("timed out after {:?}", destination.timeout),
                retry_after: None,
            },
            Ok(Err(e)) => Attempt::Failed {
                status: None,
                error: format!("request failed: {}", error_chain(&e)),
                retry_after: None,
            },
            Ok(Ok((status, retry_after, body))) => {
                let snippet = || {
                    let end = body.len().min(ERROR_SNIPPET);
                    String::from_utf8_lossy(&body[..end]).into_owned()
                };
                match classify(status) {
                    AttemptClass::Delivered => Attempt::Delivered {
                        status: status.as_u16(),
                    },
                    AttemptClass::Retry => Attempt::Failed {
                        status: Some(status.as_u16()),
                        error: snippet(),
                        retry_after,
                    },
                    AttemptClass::Reject => Attempt::Rejected {
                        status: status.as_u16(),
                        error: snippet(),
                    },
                }
            }
        }
    }

    fn build_request(
        &self,
        envelope: &Envelope,
        attempt: u32,
    ) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut request = Request::builder()
            .method(Method::POST)
            .body(Full::new(envelope.body.clone()))?;
        // Sized once: growing the map while inserting rehashes it.
        *request.headers_mut() =
            HeaderMap::with_capacity(header_count(&envelope.headers) + ADDED_HEADERS);
        self.lane.connections.prepare(&mut request);
        let headers = request.headers_mut();
        // Headers the provider's `Connection` names are hop-by-hop too.
        let mut hop_by_hop: Vec<&[u8]> = Vec::new();
        for (name, value) in decode_headers(&envelope.headers) {
            if name.eq_ignore_ascii_case(b"connection") {
                hop_by_hop.extend(
                    value
                        .split(|b| *b == b',')
                        .map(<[u8]>::trim_ascii)
                        .filter(|token| !token.is_empty()),
                );
            }
        }
        let secret_headers = self.lane.source.verifier.secret_headers();
        let signing = self.lane.signing_key.is_some();
        for (name, value) in decode_headers(&envelope.headers) {
            let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
            else {
                continue;
            };
            let lower = name.as_str();
            if NOT_FORWARDED.contains(&lower)
                || secret_headers.contains(&lower)
                || (signing && SIGNATURE_HEADERS.contains(&lower))
                || hop_by_hop
                    .iter()
                    .any(|token| token.eq_ignore_ascii_case(lower.as_bytes()))
            {
                continue;
            }
            headers.append(name, value);
        }
        if let Some(ct) = envelope.content_type.as_ref()
            && let Ok(value) = HeaderValue::from_maybe_shared(ct.clone())
        {
            headers.insert(CONTENT_TYPE, value);
        }
        let text = |s: &str| HeaderValue::from_str(s);
        headers.insert(WEBHOOK_ID.clone(), text(&envelope.event_id)?);
        headers.insert(X_HOOKD_SOURCE.clone(), text(&self.lane.source.config.name)?);
        headers.insert(X_HOOKD_EVENT_TYPE.clone(), text(&envelope.event_type)?);
        headers.insert(X_HOOKD_ATTEMPT.clone(), HeaderValue::from(attempt));
        if let Some(key) = &self.lane.signing_key {
            let ts = crate::unix_secs().to_string();
            let mut ctx = ring::hmac::Context::with_key(key);
            ctx.update(envelope.event_id.as_bytes());
            ctx.update(b".");
            ctx.update(ts.as_bytes());
            ctx.update(b".");
            ctx.update(&envelope.body);
            use base64::Engine;
            let signature = format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
            );
            headers.insert(WEBHOOK_TIMESTAMP.clone(), text(&ts)?);
            headers.insert(WEBHOOK_SIGNATURE.clone(), text(&signature)?);
        }
        Ok(request)
    }

    /// Records the outcome in Redis with one atomic script.
    async fn settle(
        &self,
        envelope: &Envelope,
        attempt: u32,
        result: Attempt,
    ) -> Result<(), QueueError> {
        let queue = &self.app.queue;
        let source = &self.lane.source;
        let keys = &source.keys;
        let retry = &source.config.destination.retry;
        let now = unix_ms();
        match result {
            Attempt::Delivered { status } => {
                // The acker outlives every delivery (it ends when the last
                // lane is dropped), so this cannot fail while we hold one.
                let _ = self.lane.acks.send(envelope.entry_id.clone());
                source.metrics.delivery(DeliveryOutcome::Success);
                source
                    .metrics
                    .end_to_end
                    .record(now.saturating_sub(envelope.received_ms) as f64 / 1000.0);
                debug!(status, "delivered");
            }
            Attempt::Failed {
                status,
                error,
                retry_after,
            } => {
                let history = history_line(attempt, now, status, &error);
                if attempt >= retry.max_attempts {
                    warn!(?status, error = %error, "giving up after destination.retry.max_attempts");
                    Box::pin(queue.dead_letter(
                        keys,
                        &envelope.entry_id,
                        "max_attempts",
                        status,
                        &error,
                        &history,
                        true,
                    ))
                    .await?;
                    source.metrics.delivery(DeliveryOutcome::Dead);
                } else {
                    let delay = backoff_delay(retry, attempt, retry_after, rand::random::<f64>());
                    debug!(?status, error = %error, ?delay, "will retry");
                    Box::pin(queue.schedule_retry(keys, &envelope.entry_id, delay, &history))
                        .await?;
                    source.metrics.delivery(DeliveryOutcome::Retry);
                    self.promoted.notify_one();
                }
            }
            Attempt::Rejected { status, error } => {
                warn!(status, error = %error, "destination rejected the event: dead-lettering");
                let history = history_line(attempt, now, Some(status), &error);
                Box::pin(queue.dead_letter(
                    keys,
                    &envelope.entry_id,
                    "rejected",
                    Some(status),
                    &error,
                    &history,
                    true,
                ))
                .await?;
                source.metrics.delivery(DeliveryOutcome::Dead);
            }
        }
        Ok(())
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_classes_follow_the_design() {
        for code in [200, 201, 204, 299] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                AttemptClass::Delivered
            );
        }
        for code in [408, 425, 429, 500, 502, 503, 504, 599] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                AttemptClass::Retry
            );
        }
        for code in [400, 401, 403, 404, 409, 410, 413, 422] {
            assert_eq!(
                classify(StatusCode::from_u16(code).unwrap()),
                AttemptClass::Reject
            );
        }
    }

    #[test]
    fn destination_urls_are_checked() {
        assert!(validate_destination_url("http://127.0.0.1:3000/x").is_ok());
        assert!(validate_destination_url("https://example.com").is_ok());
        assert!(validate_destination_url("ftp://example.com").is_err());
        assert!(validate_destination_url("/relative").is_err());
    }
}
