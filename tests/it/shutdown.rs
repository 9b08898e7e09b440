//! SIGTERM: readiness fails first, nothing accepted is lost, exit 0.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_order_and_exits_zero() {
    let redis = TestRedis::start();
    let sink = Sink::start().await;
    let toml = config(
        &redis.url(),
        "[shutdown]\ndrain_delay = \"1500ms\"\ntimeout = \"10s\"",
        &[SourceSpec::standard("s", &sink.url())],
    );
    let mut daemon = Daemon::start_ready(&toml).await;
    daemon.signal("TERM");
    // During drain_delay: not ready, ingest refuses with 503, still listening.
    assert!(
        eventually(Duration::from_secs(1), || async {
            get(&daemon.url("/health/ready")).await.status == 503
        })
        .await
    );
    let reply = send_event(&daemon, "s", "evt_late", "{}").await;
    assert_eq!(reply.status, 503);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(get(&daemon.url("/health")).await.json()["draining"], true);
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}");
    redis.assert_nothing_stored("s");
    let logs = daemon.logs();
    let order = [
        "readiness now fails",
        "closing listeners",
        "stopping stream readers",
        "shutdown complete",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|m| {
            logs.find(m)
                .unwrap_or_else(|| panic!("{m} not logged:\n{logs}"))
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{logs}");
}

/// SIGTERM under load: exit 0 within shutdown.timeout, and after a restart
/// every accepted event has been delivered.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_loses_nothing() {
    let redis = TestRedis::start();
    let sink = Sink::start().await;
    sink.set_default(Answer::status(200).delayed(Duration::from_millis(200)));
    let toml = config(
        &redis.url(),
        "[worker]\nclaim_idle = \"2s\"\nclaim_interval = \"500ms\"\n[shutdown]\ntimeout = \"5s\"",
        &[SourceSpec::standard("s", &sink.url()).with("timeout = \"1s\"\nmax_in_flight = 4")],
    );
    let mut daemon = Daemon::start_ready(&toml).await;

    let url = daemon.url("/webhooks/s");
    let sender = tokio::spawn(async move {
        let mut accepted = HashSet::new();
        for i in 0..300 {
            let id = format!("evt_{i}");
            let body = bytes::Bytes::from(format!("{{\"n\":{i}}}"));
            match try_post(&url, &signed(&id, &body), body).await {
                Some(r) if r.status == 202 => {
                    accepted.insert(id);
                }
                Some(_) => {}
                None => break, // listener closed
            }
        }
        accepted
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    daemon.signal("TERM");
    let started = Instant::now();
    let status = daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}:\n{}", daemon.logs());
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "exceeded shutdown.timeout"
    );
    let accepted = sender.await.unwrap();
    assert!(!accepted.is_empty());

    let _next = Daemon::start_ready(&toml).await;
    assert!(
        eventually(Duration::from_secs(60), || async {
            let ids: HashSet<String> = sink.ids().into_iter().collect();
            accepted.is_subset(&ids)
        })
        .await,
        "accepted events lost after SIGTERM"
    );
    let ids = sink.ids();
    let unique: HashSet<&String> = ids.iter().collect();
    println!(
        "SIGTERM under load: accepted {}, delivered {}, duplicates {}",
        accepted.len(),
        unique.len(),
        ids.len() - unique.len()
    );
    // Nothing that was refused got delivered.
    assert!(unique.iter().all(|id| accepted.contains(*id)));
}

#[tokio::test(flavor = "multi_thread")]
async fn second_signal_exits_at_once() {
    let redis = TestRedis::start();
    let toml = config(
        &redis.url(),
        "[shutdown]\ndrain_delay = \"30s\"",
        &[SourceSpec::standard("s", &dead_url())],
    );
    let mut daemon = Daemon::start_ready(&toml).await;
    daemon.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("INT");
    let status = daemon.wait_exit(Duration::from_secs(3)).await;
    assert_eq!(status.code(), Some(130));
}
