//! The reliability load driver: sends N signed webhooks with unique ids the
//! way a provider does (retrying on 503 and connection errors until it gets
//! an answer), records every accepted id, and checks the counting sink:
//! every accepted id delivered at least once, nothing unaccepted delivered.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::support::*;

#[derive(Default, Debug)]
pub struct LoadReport {
    /// Ids answered 202 or 200 (duplicate of an earlier, lost answer).
    pub accepted: HashSet<String>,
    /// Ids that never got a 2xx before the deadline.
    pub gave_up: HashSet<String>,
    /// Every answer seen, by status (0 = connection error).
    pub statuses: HashMap<u16, usize>,
    /// Retry-After headers seen on 503s.
    pub retry_after_on_503: usize,
    /// With [`Load::once`]: ids whose one try was not a 2xx.
    pub refused: HashSet<String>,
    /// Ids answered `"status":"spooled"`.
    pub spooled: usize,
}

pub struct Load {
    /// Where to send; on a connection error the next URL is tried.
    pub urls: Vec<String>,
    pub sources: Vec<String>,
    pub count: usize,
    pub concurrency: usize,
    pub prefix: String,
    /// How long one id keeps being retried.
    pub give_up_after: Duration,
    /// Bytes of padding in each body, for scenarios that need weight.
    pub padding: usize,
    /// Each id is sent exactly once, like a provider that never retries
    /// (GitHub): a refusal is final.
    pub once: bool,
    /// Time between starting one send and the next (spreads the load
    /// over an outage).
    pub interval: Duration,
}

impl Load {
    pub fn new(base_url: &str, source: &str, count: usize) -> Self {
        Self {
            urls: vec![base_url.to_owned()],
            sources: vec![source.to_owned()],
            count,
            concurrency: 16,
            prefix: "evt".into(),
            give_up_after: Duration::from_secs(60),
            padding: 0,
            once: false,
            interval: Duration::ZERO,
        }
    }

    pub async fn run(self) -> LoadReport {
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let urls = Arc::new(self.urls);
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..self.count {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let report = report.clone();
            let urls = urls.clone();
            let source = self.sources[i % self.sources.len()].clone();
            let id = format!("{}_{i}", self.prefix);
            let give_up = self.give_up_after;
            let once = self.once;
            if !self.interval.is_zero() {
                tokio::time::sleep(self.interval).await;
            }
            let pad = "x".repeat(self.padding);
            tasks.spawn(async move {
                let _permit = permit;
                let body = Bytes::from(format!(
                    r#"{{"type":"load","n":{i},"id":"{id}","pad":"{pad}"}}"#
                ));
                let started = Instant::now();
                let mut target = i % urls.len();
                loop {
                    let url = format!("{}/webhooks/{source}", urls[target]);
                    // Re-signed per try: a provider's retry carries a fresh timestamp.
                    let reply = try_post(&url, &signed(&id, &body), body.clone()).await;
                    let status = reply.as_ref().map_or(0, |r| r.status);
                    {
                        let mut r = report.lock().unwrap();
                        *r.statuses.entry(status).or_default() += 1;
                        if status == 503
                            && reply
                                .as_ref()
                                .is_some_and(|r| r.headers.contains_key("retry-after"))
                        {
                            r.retry_after_on_503 += 1;
                        }
                        if status == 202 || status == 200 {
                            if reply
                                .as_ref()
                                .is_some_and(|r| r.body.windows(9).any(|w| w == b"\"spooled\""))
                            {
                                r.spooled += 1;
                            }
                            r.accepted.insert(id.clone());
                            return;
                        }
                        if once {
                            r.refused.insert(id.clone());
                            return;
                        }
                    }
                    assert!(
                        status == 0 || status == 503,
                        "unexpected answer {status} for {id}"
                    );
                    if started.elapsed() > give_up {
                        report.lock().unwrap().gave_up.insert(id.clone());
                        return;
                    }
                    if status == 0 {
                        target = (target + 1) % urls.len();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
        }
        while let Some(result) = tasks.join_next().await {
            result.expect("load task panicked");
        }
        Arc::try_unwrap(report).unwrap().into_inner().unwrap()
    }
}

/// The figures of one scenario.
#[derive(Debug)]
pub struct Verdict {
    pub accepted: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub unexpected: usize,
}

/// Waits until every accepted id reached the sink, then prints and checks
/// the figures. `GUARANTEE` lines are what README's table is made of.
pub async fn verify(
    scenario: &str,
    report: &LoadReport,
    sink: &Sink,
    timeout: Duration,
) -> Verdict {
    let complete = eventually(timeout, || async {
        let ids: HashSet<String> = sink.ids().into_iter().collect();
        report.accepted.iter().all(|id| ids.contains(id))
    })
    .await;
    // Let late duplicates arrive so they are counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids = sink.ids();
    let unique: HashSet<&String> = ids.iter().collect();
    let verdict = Verdict {
        accepted: report.accepted.len(),
        delivered: report
            .accepted
            .iter()
            .filter(|id| unique.contains(id))
            .count(),
        lost: report
            .accepted
            .iter()
            .filter(|id| !unique.contains(id))
            .count(),
        duplicates: ids.len() - unique.len(),
        unexpected: unique
            .iter()
            .filter(|id| !report.accepted.contains(id.as_str()))
            .count(),
    };
    println!(
        "GUARANTEE | {scenario} | accepted {} | delivered {} | lost {} | duplicates {} | gave up {} |",
        verdict.accepted,
        verdict.delivered,
        verdict.lost,
        verdict.duplicates,
        report.gave_up.len()
    );
    assert!(
        complete && verdict.lost == 0,
        "{scenario}: lost accepted events: {verdict:?}"
    );
    assert_eq!(
        verdict.unexpected, 0,
        "{scenario}: delivered events that were never accepted"
    );
    assert!(
        report.gave_up.is_empty(),
        "{scenario}: ids never accepted: {:?}",
        report.gave_up
    );
    verdict
}
