//! Group commit for ingest.
//!
//! Every accepted webhook needs its dedup check and XADD to be durable
//! before hookd answers. Doing that as one script call per request costs
//! Redis a script invocation and hookd a socket write per event (fred
//! flushes every EVALSHA at once). Instead each source has a few *writers*;
//! a writer takes whatever requests are waiting, runs them through
//! `ingest.lua` in one call, and answers each from its own slot in the
//! reply. An idle writer sends a lone request straight away, so a quiet
//! daemon answers as fast as before; under load batches form by
//! themselves while the previous call is in flight, which is when they
//! pay. Every request still costs exactly one round trip (its batch's),
//! and is answered only after Redis has run its part.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fred::types::{Key, Value};
use tokio::sync::{Mutex, mpsc, oneshot};

use tokio_util::task::TaskTracker;

use super::counters::{minute_of, ttl_arg};
use super::reply::{reply, value_string};
use super::{Queue, QueueError, SourceKeys};

/// Most events one script call carries: Redis runs a script without
/// serving anyone else, so a batch must stay short.
const MAX_BATCH_EVENTS: usize = 128;

/// A batch closes once it carries this many body/header bytes (a single
/// larger event still goes, alone).
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Requests waiting for a writer. When it is full, request handlers wait
/// for room: it bounds memory; the HTTP connection limit bounds requests.
const WAITING_CAPACITY: usize = 4096;

/// ARGV items per event: id, type, content type, headers, body, received.
const ARGS_PER_EVENT: usize = 6;

/// How long a request waits for its batch, queueing included. Matches the
/// script call's own timeout, so a stuck Redis turns into a 503 (the
/// provider retries; dedup catches the event if it did land).
pub const INGEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How a source's events are stored.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// Concurrent script calls. Redis runs scripts one at a time, so more
    /// writers only overlap network time, while fewer let bigger batches
    /// form under load.
    pub writers: usize,
    /// How long an event id is remembered.
    pub dedup_ttl: Duration,
    /// Undelivered events above which new ones are refused.
    pub max_backlog: u64,
    /// How long a request waits for its batch before it gives up (503, or
    /// the spool).
    pub timeout: Duration,
}

/// Whether a source's ingest lists its new entries' ids
/// ([`SourceKeys::ids`]), which the event log's trimming takes instead of
/// reading the events. Without an event log, acknowledgements delete the
/// entries and the ids would be written only to be thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryIds {
    Listed,
    Unlisted,
}

/// A new event as the ingest path hands it over.
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub content_type: Option<&'a [u8]>,
    pub headers: Bytes,
    pub body: Bytes,
    pub received_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    Queued { entry_id: String },
    Duplicate { first_entry_id: String },
    BacklogFull { backlog: u64 },
}

type Answer = Result<IngestOutcome, QueueError>;

/// One request waiting for its batch.
struct Waiting {
    seen_key: Key,
    /// The event's slice of ARGV (see ingest.lua).
    args: [Value; ARGS_PER_EVENT],
    bytes: usize,
    answer: oneshot::Sender<Answer>,
}

impl Waiting {
    fn new(keys: &SourceKeys, event: &NewEvent<'_>, answer: oneshot::Sender<Answer>) -> Self {
        Self {
            seen_key: Key::from(keys.seen(event.event_id)),
            // In the order ingest.lua reads them.
            args: [
                event.event_id.into(),
                event.event_type.into(),
                Value::Bytes(
                    event
                        .content_type
                        .map_or_else(Bytes::new, Bytes::copy_from_slice),
                ),
                Value::Bytes(event.headers.clone()),
                Value::Bytes(event.body.clone()),
                Value::Integer(event.received_ms as i64),
            ],
            bytes: event.headers.len() + event.body.len(),
            answer,
        }
    }
}

/// Accepts events for one source and stores them through group commit.
#[derive(Clone)]
pub struct Ingestor {
    waiting: mpsc::Sender<Waiting>,
    keys: Arc<SourceKeys>,
    timeout: Duration,
    direct: Writer,
}

/// Stores batches of events itself, one script call at a time and so in
/// order, beside the writers (the spool's drainer). It does not keep the
/// writers running.
#[derive(Clone)]
pub struct DirectIngest {
    writer: Writer,
}

/// One of a source's writers: takes a batch, stores it, answers it.
#[derive(Clone)]
struct Writer {
    queue: Queue,
    keys: Arc<SourceKeys>,
    stream: Key,
    ids: Key,
    entry_ids: EntryIds,
    /// The destinations' names: their groups must exist before an event
    /// goes in, or a destination created later would start after it.
    destinations: Arc<[String]>,
    heir: Arc<str>,
    dedup_ttl_secs: i64,
    max_backlog: i64,
    waiting: Arc<Mutex<mpsc::Receiver<Waiting>>>,
}

impl Ingestor {
    /// Starts `writers` writer tasks on `tasks`; they end when the last
    /// `Ingestor` clone is dropped and the waiting requests are answered.
    /// `destinations` are the source's destinations' names and `heir` the
    /// one that inherits a single-destination layout (see `setup.lua`).
    pub fn start(
        queue: &Queue,
        keys: SourceKeys,
        destinations: Vec<String>,
        heir: &str,
        entry_ids: EntryIds,
        settings: IngestSettings,
        tasks: &TaskTracker,
    ) -> Self {
        let (tx, rx) = mpsc::channel(WAITING_CAPACITY);
        let rx = Arc::new(Mutex::new(rx));
        let keys = Arc::new(keys);
        let destinations: Arc<[String]> = destinations.into();
        let heir: Arc<str> = heir.into();
        let writer = Writer {
            queue: queue.clone(),
            keys: keys.clone(),
            stream: Key::from(keys.stream.as_str()),
            ids: Key::from(keys.ids.as_str()),
            entry_ids,
            destinations,
            heir,
            dedup_ttl_secs: i64::try_from(settings.dedup_ttl.as_secs()).unwrap_or(i64::MAX),
            max_backlog: i64::try_from(settings.max_backlog).unwrap_or(i64::MAX),
            waiting: rx,
        };
        for _ in 0..settings.writers.max(1) {
            tasks.spawn(writer.clone().run());
        }
        Self {
            waiting: tx,
            keys,
            timeout: settings.timeout,
            direct: writer,
        }
    }

    /// See [`DirectIngest`].
    pub fn direct(&self) -> DirectIngest {
        DirectIngest {
            writer: self.direct.clone(),
        }
    }

    /// Dedup + append, atomically; resolves once Redis has run it.
    pub async fn ingest(&self, event: &NewEvent<'_>) -> Answer {
        const OP: &str = "ingest";
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting::new(&self.keys, event, answer);
        let closed = || reply(OP, "ingest writers stopped");
        let wait = async {
            self.waiting.send(waiting).await.map_err(|_| closed())?;
            answered.await.map_err(|_| closed())?
        };
        match tokio::time::timeout(self.timeout, wait).await {
            Ok(answer) => answer,
            Err(_) => Err(QueueError::Timeout {
                op: OP,
                after: self.timeout,
            }),
        }
    }
}

impl DirectIngest {
    /// Stores `events` in order, up to a script call's worth at a time;
    /// the answers come in the same order and stop after the first call
    /// that failed (its events all get its error).
    pub async fn store_in_order(&self, events: &[NewEvent<'_>]) -> Vec<Answer> {
        let mut out = Vec::with_capacity(events.len());
        let mut batch = Vec::with_capacity(MAX_BATCH_EVENTS);
        let mut answers = Vec::with_capacity(MAX_BATCH_EVENTS);
        for chunk in events.chunks(MAX_BATCH_EVENTS) {
            let mut answered = Vec::with_capacity(chunk.len());
            for event in chunk {
                let (answer, rx) = oneshot::channel();
                answered.push(rx);
                batch.push(Waiting::new(&self.writer.keys, event, answer));
            }
            self.writer.store(&mut batch, &mut answers).await;
            let mut failed = false;
            for mut rx in answered {
                let answer = rx
                    .try_recv()
                    .unwrap_or_else(|_| Err(reply("ingest", "no answer for a spooled event")));
                failed |= answer.is_err();
                out.push(answer);
            }
            if failed {
                break;
            }
        }
        out
    }
}

impl Writer {
    async fn run(self) {
        let mut batch = Vec::with_capacity(MAX_BATCH_EVENTS);
        let mut answers = Vec::with_capacity(MAX_BATCH_EVENTS);
        while self.take_batch(&mut batch).await {
            self.store(&mut batch, &mut answers).await;
        }
    }

    /// Waits for one request, then takes those already waiting behind it.
    /// A request that gave up while it waited (answered 503, or spooled)
    /// is left out: sent now, its event would be stored after a refusal,
    /// or once more behind its spooled copy, and while Redis hangs each
    /// such call would hold the writer for the call's whole timeout.
    /// Returns false once every sender is gone.
    async fn take_batch(&self, batch: &mut Vec<Waiting>) -> bool {
        let mut waiting = self.waiting.lock().await;
        let first = loop {
            match waiting.recv().await {
                Some(first) if first.answer.is_closed() => continue,
                Some(first) => break first,
                None => return false,
            }
        };
        let mut bytes = first.bytes;
        batch.push(first);
        while batch.len() < MAX_BATCH_EVENTS && bytes < MAX_BATCH_BYTES {
            match waiting.try_recv() {
                Ok(next) if next.answer.is_closed() => {}
                Ok(next) => {
                    bytes += next.bytes;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        true
    }

    /// One `ingest.lua` call for the whole batch; answers every request.
    /// A batch that finds a destination's group missing creates the groups
    /// (`setup.lua`) and goes again, once.
    async fn store(&self, batch: &mut Vec<Waiting>, answers: &mut Vec<oneshot::Sender<Answer>>) {
        const OP: &str = "ingest";
        let mut keys = Vec::with_capacity(3 + batch.len());
        keys.push(self.stream.clone());
        keys.push(Key::from(
            self.keys.counters(minute_of(crate::clock::unix_ms())),
        ));
        keys.push(self.ids.clone());
        let mut args =
            Vec::with_capacity(5 + self.destinations.len() + batch.len() * ARGS_PER_EVENT);
        args.push(Value::Integer(self.dedup_ttl_secs));
        args.push(Value::Integer(self.max_backlog));
        args.push(ttl_arg());
        args.push(Value::from(match self.entry_ids {
            EntryIds::Listed => "1",
            EntryIds::Unlisted => "0",
        }));
        args.push(Value::Integer(self.destinations.len() as i64));
        args.extend(self.destinations.iter().map(|d| Value::from(d.as_str())));
        for waiting in batch.drain(..) {
            keys.push(waiting.seen_key);
            args.extend(waiting.args);
            answers.push(waiting.answer);
        }
        let mut result = self.call(keys.clone(), args.clone()).await;
        if matches!(&result, Ok(Value::Array(parts)) if is_setup(parts)) {
            let names: Vec<&str> = self.destinations.iter().map(String::as_str).collect();
            result = match self.queue.setup(&self.keys, &names, &self.heir).await {
                Ok(_) => self.call(keys, args).await,
                Err(e) => Err(e),
            };
        }
        match result {
            Ok(Value::Array(parts)) if parts.len() == 2 * answers.len() => {
                for (answer, pair) in answers.drain(..).zip(parts.chunks_exact(2)) {
                    let _ = answer.send(outcome(OP, pair));
                }
            }
            Ok(other) => {
                let detail = format!("{} events, reply {other:?}", answers.len());
                for answer in answers.drain(..) {
                    let _ = answer.send(Err(reply(OP, detail.clone())));
                }
            }
            Err(e) => {
                for answer in answers.drain(..) {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }

    async fn call(&self, keys: Vec<Key>, args: Vec<Value>) -> Result<Value, QueueError> {
        self.queue
            .eval_values(
                self.queue.pool.next(),
                "ingest",
                &self.queue.scripts.ingest,
                keys,
                args,
                Some(&self.queue.ingest_options),
            )
            .await
    }
}

/// The reply that asks for the destinations' groups to be created first.
fn is_setup(parts: &[Value]) -> bool {
    parts.len() == 1 && value_string(&parts[0]).as_deref() == Some("setup")
}

/// `[status, detail]` for one event of the batch.
fn outcome(op: &'static str, pair: &[Value]) -> Answer {
    let detail = value_string(&pair[1]).unwrap_or_default();
    match value_string(&pair[0]).as_deref() {
        Some("ok") => Ok(IngestOutcome::Queued { entry_id: detail }),
        Some("dup") => Ok(IngestOutcome::Duplicate {
            first_entry_id: detail,
        }),
        Some("full") => Ok(IngestOutcome::BacklogFull {
            backlog: detail.parse().unwrap_or(0),
        }),
        other => Err(reply(op, format!("status {other:?}"))),
    }
}
