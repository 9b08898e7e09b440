//! SIGTERM: readiness fails first, nothing accepted is lost, exit 0.

use std::time::Duration;

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
