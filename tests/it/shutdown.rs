//! SIGTERM: readiness fails first, nothing accepted is lost, exit 0.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_in_order_and_exits_zero() {
    let mut h = Harness::builder()
        .toml("[shutdown]\ndrain_delay = \"1500ms\"\ntimeout = \"10s\"")
        .start()
        .await;
    let (redis, daemon) = (&h.redis, &mut h.daemon);
    daemon.signal("TERM");
    // During drain_delay: not ready, ingest refuses with 503, still listening.
    assert!(
        eventually(Duration::from_secs(1), || async {
            get(&daemon.url("/health/ready")).await.status == 503
        })
        .await
    );
    let reply = send_event(daemon, "s", "evt_late", "{}").await;
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

#[tokio::test(flavor = "multi_thread")]
async fn second_signal_exits_at_once() {
    let mut h = Harness::builder()
        .toml("[shutdown]\ndrain_delay = \"30s\"")
        .start()
        .await;
    let daemon = &mut h.daemon;
    daemon.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal("INT");
    let status = daemon.wait_exit(Duration::from_secs(3)).await;
    assert_eq!(status.code(), Some(130));
}

/// SIGHUP neither kills hookd nor starts a drain: it keeps taking and
/// delivering events, says why it ignored the signal, and SIGTERM still
/// drains it.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_is_ignored_with_a_warning() {
    let mut h = Harness::start().await;
    h.daemon.signal("HUP");
    assert!(
        h.daemon.logged(&["SIGHUP ignored"]).await,
        "{}",
        h.daemon.logs()
    );
    h.fence("s", "after_hup").await;
    assert_eq!(get(&h.daemon.url("/health/ready")).await.status, 200);
    assert!(!h.daemon.logs().contains("draining"), "{}", h.daemon.logs());
    h.daemon.signal("TERM");
    let status = h.daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
}

/// A delivery that hangs past `shutdown.timeout` does not hold the exit
/// back: hookd exits within drain_delay + timeout + 1 s, and the event,
/// left pending, is delivered by the next process.
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_delivery_does_not_stretch_the_shutdown_bound() {
    let mut h = Harness::builder()
        .toml("[shutdown]\ntimeout = \"2s\"\n[worker]\nclaim_idle = \"11s\"\nclaim_interval = \"300ms\"")
        .start()
        .await;
    h.sink
        .script([Answer::status(200).delayed(Duration::from_secs(30))]);
    let (redis, sink, daemon) = (&h.redis, &h.sink, &mut h.daemon);
    assert_eq!(send_event(daemon, "s", "evt_hang", "{}").await.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            sink.in_progress() == 1
        })
        .await,
        "the delivery never started"
    );
    let signalled = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < Duration::from_secs(3),
        "exit took {took:?}:\n{}",
        daemon.logs()
    );
    assert!(daemon.logs().contains("stays pending"), "{}", daemon.logs());
    assert_eq!(redis.pending("s"), 1);

    let _next = h.start_another().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            sink.ids().contains(&"evt_hang".to_owned())
        })
        .await,
        "the abandoned event was never delivered"
    );
}
