//! Per-minute counters of a source, kept in Redis so every instance adds
//! to the same ones: events accepted, attempts that failed, events
//! delivered and dead-lettered, and a histogram of delivery times (accepted
//! → delivered). The scripts already called on each path add to them
//! (ingest, ack, retry, dead-letter), so counting costs no round trip.
//! `GET /admin/stats` and the dashboard's charts read them.

use std::time::Duration;

use fred::types::Value;

use super::reply::{reply, value_string, value_u64};
use super::{Queue, QueueError, SourceKeys};

/// How long a minute's counters stay: a day, plus an hour's slack.
pub const COUNTERS_TTL: Duration = Duration::from_secs(25 * 3600);
/// The longest window `GET /admin/stats` reads.
pub const MAX_MINUTES: u64 = 24 * 60;

/// Upper bounds (ms) of the delivery-time histogram's buckets; a last,
/// open bucket takes the rest.
pub const LATENCY_BOUNDS_MS: [u64; 17] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
    3_600_000,
];
/// Buckets, the open one included.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The minute a unix ms falls in.
pub fn minute_of(ms: u64) -> u64 {
    ms / 60_000
}

/// The histogram bucket of a delivery time.
pub fn latency_bucket(ms: u64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|bound| *bound < ms)
}

/// The hash field of a histogram bucket.
pub fn bucket_field(bucket: usize) -> &'static str {
    const FIELDS: [&str; LATENCY_BUCKETS] = [
        "l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9", "l10", "l11", "l12", "l13",
        "l14", "l15", "l16", "l17",
    ];
    FIELDS[bucket.min(LATENCY_BUCKETS - 1)]
}

/// What a step records besides moving the entry: whether the event log
/// keeps finished entries (and their attempt records), and the counters of
/// the minute it runs in.
#[derive(Debug, Clone)]
pub struct Recording {
    pub keep_records: bool,
    pub counters: String,
}

impl Recording {
    pub fn at(keys: &SourceKeys, keep_records: bool, now_ms: u64) -> Self {
        Self {
            keep_records,
            counters: keys.counters(minute_of(now_ms)),
        }
    }

    pub(super) fn keep_flag(&self) -> Value {
        Value::from_static_str(if self.keep_records { "1" } else { "0" })
    }
}

/// The counters' time to live, as the scripts take it.
pub(super) fn ttl_arg() -> Value {
    Value::Integer(COUNTERS_TTL.as_secs() as i64)
}

/// One minute of a source, summed over its destinations and instances.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MinuteCounters {
    /// Start of the minute, unix ms.
    pub at_ms: u64,
    pub accepted: u64,
    pub delivered: u64,
    /// Failed attempts (each retry, and each last attempt).
    pub failed: u64,
    pub dead: u64,
    /// Upper bound of the histogram bucket holding the median and the 99th
    /// percentile delivery time; None without deliveries that minute.
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
    /// Deliveries per delivery-time bucket, what the quantiles come from.
    #[serde(skip)]
    pub histogram: [u64; LATENCY_BUCKETS],
}

/// The bound of the bucket holding quantile `q` of `histogram`.
fn quantile(histogram: &[u64; LATENCY_BUCKETS], q: f64) -> Option<u64> {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (bucket, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            // The open bucket reports the last bound: "more than that".
            return Some(LATENCY_BOUNDS_MS[bucket.min(LATENCY_BOUNDS_MS.len() - 1)]);
        }
    }
    None
}

impl MinuteCounters {
    fn from_fields(minute: u64, fields: &[Value]) -> Self {
        let mut counters = MinuteCounters {
            at_ms: minute * 60_000,
            ..Self::default()
        };
        let mut histogram = [0u64; LATENCY_BUCKETS];
        for pair in fields.chunks_exact(2) {
            let (Some(name), Some(n)) = (value_string(&pair[0]), value_u64(&pair[1])) else {
                continue;
            };
            match name.as_str() {
                "accepted" => counters.accepted = n,
                "delivered" => counters.delivered = n,
                "failed" => counters.failed = n,
                "dead" => counters.dead = n,
                other => {
                    if let Some(bucket) = other
                        .strip_prefix('l')
                        .and_then(|b| b.parse::<usize>().ok())
                        && bucket < LATENCY_BUCKETS
                    {
                        histogram[bucket] = n;
                    }
                }
            }
        }
        counters.histogram = histogram;
        counters.settle_quantiles();
        counters
    }

    fn settle_quantiles(&mut self) {
        self.p50_ms = quantile(&self.histogram, 0.50);
        self.p99_ms = quantile(&self.histogram, 0.99);
    }

    /// Adds another source's same minute.
    pub fn add(&mut self, other: &MinuteCounters) {
        self.accepted += other.accepted;
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.dead += other.dead;
        for (sum, n) in self.histogram.iter_mut().zip(other.histogram) {
            *sum += n;
        }
        self.settle_quantiles();
    }
}

impl Queue {
    /// The counters of `minutes` consecutive minutes ending with the one
    /// `now_ms` falls in, oldest first (one round trip).
    pub async fn minutes(
        &self,
        keys: &SourceKeys,
        now_ms: u64,
        minutes: u64,
    ) -> Result<Vec<MinuteCounters>, QueueError> {
        const OP: &str = "stats";
        let last = minute_of(now_ms);
        let first = last + 1 - minutes.clamp(1, MAX_MINUTES);
        let names: Vec<String> = (first..=last).map(|m| keys.counters(m)).collect();
        let result = self
            .eval(
                OP,
                &self.scripts.counters,
                names.iter().map(String::as_str).collect(),
                Vec::new,
                None,
            )
            .await?;
        let Value::Array(rows) = result else {
            return Err(reply(OP, "not an array"));
        };
        Ok((first..=last)
            .zip(rows)
            .map(|(minute, row)| match row {
                Value::Array(fields) => MinuteCounters::from_fields(minute, &fields),
                _ => MinuteCounters::from_fields(minute, &[]),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_times_fall_in_their_buckets() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(1), 0);
        assert_eq!(latency_bucket(2), 1);
        assert_eq!(latency_bucket(3), 2);
        assert_eq!(latency_bucket(999), 9);
        assert_eq!(latency_bucket(1000), 9);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
        assert_eq!(bucket_field(LATENCY_BUCKETS - 1), "l17");
    }

    #[test]
    fn quantiles_report_their_bucket_bound() {
        let mut histogram = [0u64; LATENCY_BUCKETS];
        assert_eq!(quantile(&histogram, 0.5), None);
        histogram[latency_bucket(4)] = 98;
        histogram[latency_bucket(700)] = 2;
        assert_eq!(quantile(&histogram, 0.5), Some(5));
        assert_eq!(quantile(&histogram, 0.99), Some(1_000));
        histogram[LATENCY_BUCKETS - 1] = 1000;
        assert_eq!(quantile(&histogram, 0.99), Some(3_600_000));
    }

    #[test]
    fn counters_read_from_a_hash() {
        let fields: Vec<Value> = ["accepted", "7", "delivered", "5", "l3", "5", "junk", "x"]
            .iter()
            .map(|s| Value::from(*s))
            .collect();
        let minute = MinuteCounters::from_fields(10, &fields);
        assert_eq!(minute.at_ms, 600_000);
        assert_eq!(minute.accepted, 7);
        assert_eq!(minute.delivered, 5);
        assert_eq!(minute.p50_ms, Some(10));
        let mut sum = minute.clone();
        let slow =
            MinuteCounters::from_fields(10, &["delivered", "10", "l9", "10"].map(Value::from));
        sum.add(&slow);
        assert_eq!(sum.delivered, 15);
        assert_eq!(sum.p50_ms, Some(1_000));
        assert_eq!(sum.p99_ms, Some(1_000));
    }
}
