//! Several faults at once, as they come in a bad night: Redis dies while
//! one of two instances is killed -9 and one destination is failing; the
//! instances spool, the killed one comes back without Redis, then Redis
//! comes back and the destination recovers. Every accepted event reaches
//! both destinations, and the stream ends with nothing left over.

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use crate::load::{Load, verify};
use crate::support::*;

/// Entries held by a dead process are claimed after 2 s.
const WORKER: &str = "[worker]\nclaim_idle = \"2s\"\nclaim_interval = \"300ms\"";
/// Enough attempts to outlast the failing phase.
const DESTINATION: &str = "timeout = \"1s\"\nretry = { max_attempts = 50, base = \"100ms\", max = \"1s\", jitter = true }";

fn instance_toml(redis: &TestRedis, spool: &Path, source: &SourceSpec) -> String {
    let extra = format!("{WORKER}\n[spool]\ndir = \"{}\"", spool.display());
    config(&redis.url(), &extra, std::slice::from_ref(source))
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_14_redis_down_instance_killed_destination_failing_at_once() {
    let mut redis = TestRedis::start_persistent();
    let billing = Sink::start().await;
    let audit = Sink::start().await;
    billing.set_default(Answer::status(200).delayed(Duration::from_millis(2)));
    audit.set_default(Answer::status(503));
    let source = SourceSpec::standard("s", "")
        .route("billing", &billing.url(), DESTINATION)
        .route("audit", &audit.url(), DESTINATION);
    let (spool_a, spool_b) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let toml_b = listen_on(&instance_toml(&redis, spool_b.path(), &source), free_port());
    let a = Daemon::start_ready(&instance_toml(&redis, spool_a.path(), &source)).await;
    let mut b = Daemon::start_ready(&toml_b).await;

    let mut load = Load::new(&a.url(""), "s", 3000);
    load.urls = vec![a.url(""), b.url("")];
    load.concurrency = 8;
    load.interval = Duration::from_millis(2);
    let load = tokio::spawn(load.run());

    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    b.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Back while Redis is still away: it takes events into its spool and
    // keeps what the killed process had spooled.
    let _b = Daemon::start_ready(&toml_b).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!load.is_finished(), "load ended before Redis came back");
    redis.restart();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    audit.set_default(Answer::status(200));

    let report = load.await.unwrap();
    println!("answers: {:?}, spooled {}", report.statuses, report.spooled);
    assert!(report.spooled > 0, "nothing was spooled: {report:?}");
    for (name, sink) in [("billing", &billing), ("audit", &audit)] {
        verify(
            &format!("14. Redis down, an instance killed, a destination failing, at once: {name}"),
            &report,
            sink,
            Duration::from_secs(90),
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(30), || async { redis.settled("s") }).await,
        "the stream kept entries every destination was done with"
    );
    assert_eq!(redis.dlq_len("s"), 0, "a failing destination dead-lettered");
    for daemon in [&a, &_b] {
        assert_eq!(
            daemon.logs().matches("panicked").count(),
            0,
            "{}",
            daemon.logs()
        );
    }
}
