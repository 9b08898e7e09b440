//! A primary that fails over to its replica under Redis Sentinel.

use std::time::Duration;

use tempfile::TempDir;

use crate::spool::spool_toml;
use crate::support::*;

/// `INFO replication`'s `name:value` as a number.
fn replication_offset(redis: &TestRedis, name: &str) -> u64 {
    redis
        .cli(&["INFO", "replication"])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// hookd follows Sentinel to the promoted replica: events sent while the
/// primary is dead and not yet replaced are spooled, and everything
/// accepted is delivered from the new primary. (What the old primary
/// stored but had not yet replicated when it died is not on the new one:
/// replication is asynchronous, so the test waits for the replica to
/// catch up before the kill.)
#[tokio::test(flavor = "multi_thread")]
async fn a_sentinel_failover_loses_nothing_the_replica_had() {
    let mut primary = TestRedis::start();
    let primary_port = primary.port.to_string();
    let replica = TestRedis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--replicaof",
        "127.0.0.1",
        &primary_port,
    ]);
    let linked = eventually(Duration::from_secs(10), || async {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    })
    .await;
    assert!(linked, "the replica never linked");
    let sentinel = TestSentinel::watch(&primary, "main");
    let spool = TempDir::new().unwrap();
    let sink = Sink::start().await;
    let toml = config(
        &sentinel.url(),
        &spool_toml(spool.path(), ""),
        &[SourceSpec::standard("s", &sink.url())],
    );
    let daemon = Daemon::start_ready(&toml).await;

    let mut sent: Vec<String> = Vec::new();
    for i in 0..50 {
        let id = format!("before-{i}");
        let reply = send_event(&daemon, "s", &id, "{}").await;
        assert_eq!(reply.json()["status"], "queued", "{:?}", reply.body);
        sent.push(id);
    }
    let written = replication_offset(&primary, "master_repl_offset");
    let caught_up = eventually(Duration::from_secs(10), || async {
        replication_offset(&replica, "slave_repl_offset") >= written
    })
    .await;
    assert!(caught_up, "the replica never caught up");

    primary.kill();
    // Sentinel takes a second to call the primary down, then promotes the
    // replica: meanwhile every event is spooled.
    for i in 0..30 {
        let id = format!("during-{i}");
        let reply = send_event(&daemon, "s", &id, "{}").await;
        assert_eq!(reply.status, 202, "{id}: {:?}", reply.body);
        sent.push(id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = eventually(Duration::from_secs(20), || async {
        sentinel.primary_port() == Some(replica.port)
    })
    .await;
    assert!(promoted, "sentinel never promoted the replica");
    for i in 0..20 {
        let id = format!("after-{i}");
        let reply = send_event(&daemon, "s", &id, "{}").await;
        assert_eq!(reply.status, 202, "{id}: {:?}", reply.body);
        sent.push(id);
    }

    let delivered = eventually(Duration::from_secs(30), || async {
        let got = sink.ids();
        sent.iter().all(|id| got.contains(id))
    })
    .await;
    let got = sink.ids();
    let missing: Vec<&String> = sent.iter().filter(|id| !got.contains(id)).collect();
    assert!(delivered, "missing {missing:?}\n{}", daemon.logs());
    assert!(
        daemon.logged(&["redis is unreachable"]).await
            && daemon.logged(&["spool drained into redis"]).await,
        "{}",
        daemon.logs()
    );
    assert!(
        replica
            .cli(&["INFO", "replication"])
            .contains("role:master"),
        "the replica was not promoted"
    );
}
