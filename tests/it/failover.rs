//! A primary that fails over to its replica: under Redis Sentinel, and a
//! Redis Cluster master whose replica the cluster promotes; a cluster
//! slot that moves to another master; and connections to Redis that
//! silently stop while new ones work.
//!
//! Replication is asynchronous: what a primary stored and answered but had
//! not yet sent to its replica when it died is not on the new primary, and
//! no client can tell. So each test waits for the replica to catch up
//! before the kill; what it checks is hookd's part: spooling while there
//! is no primary, finding the new one, and delivering everything.

use std::time::Duration;

use tempfile::TempDir;

use crate::load::Load;
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

/// Waits until `replica` has everything `primary` wrote so far.
async fn until_caught_up(primary: &TestRedis, replica: &TestRedis) {
    let written = replication_offset(primary, "master_repl_offset");
    let caught_up = eventually(Duration::from_secs(10), || async {
        replication_offset(replica, "slave_repl_offset") >= written
    })
    .await;
    assert!(caught_up, "the replica never caught up");
}

/// The spool on, one source `s` delivering to `sink`.
fn spooling_toml(redis_url: &str, spool: &TempDir, sink: &Sink) -> String {
    config(
        redis_url,
        &spool_toml(spool.path(), ""),
        &[SourceSpec::standard("s", &sink.url())],
    )
}

/// A ready daemon on [`spooling_toml`].
async fn daemon_on(redis_url: &str, spool: &TempDir, sink: &Sink) -> Daemon {
    Daemon::start_ready(&spooling_toml(redis_url, spool, sink)).await
}

/// Sends `count` events named `prefix-<n>`, `pause` apart; each must be
/// accepted (queued or spooled).
async fn send_all(daemon: &Daemon, prefix: &str, count: usize, pause: Duration) -> Vec<String> {
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("{prefix}-{i}");
        let reply = send_event(daemon, "s", &id, "{}").await;
        assert_eq!(reply.status, 202, "{id}: {:?}", reply.body);
        sent.push(id);
        tokio::time::sleep(pause).await;
    }
    sent
}

/// Waits until `sink` has every one of `sent`.
async fn until_all_delivered(daemon: &Daemon, sink: &Sink, sent: &[String]) {
    let delivered = eventually(Duration::from_secs(30), || async {
        let got = sink.ids();
        sent.iter().all(|id| got.contains(id))
    })
    .await;
    let got = sink.ids();
    let missing: Vec<&String> = sent.iter().filter(|id| !got.contains(id)).collect();
    assert!(delivered, "missing {missing:?}\n{}", daemon.logs());
}

/// Checks the outage was seen and spooled through.
async fn spooled_through_the_outage(daemon: &Daemon) {
    assert!(
        daemon.logged(&["redis is unreachable"]).await
            && daemon.logged(&["spool drained into redis"]).await,
        "{}",
        daemon.logs()
    );
}

/// hookd follows Sentinel to the promoted replica: events sent while the
/// primary is dead and not yet replaced are spooled, and everything
/// accepted is delivered from the new primary.
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
    let daemon = daemon_on(&sentinel.url(), &spool, &sink).await;

    let mut sent = send_all(&daemon, "before", 50, Duration::ZERO).await;
    until_caught_up(&primary, &replica).await;
    primary.kill();
    // Sentinel takes a second to call the primary down, then promotes the
    // replica: meanwhile every event is spooled.
    sent.extend(send_all(&daemon, "during", 30, Duration::from_millis(100)).await);
    let promoted = eventually(Duration::from_secs(20), || async {
        sentinel.primary_port() == Some(replica.port)
    })
    .await;
    assert!(promoted, "sentinel never promoted the replica");
    sent.extend(send_all(&daemon, "after", 20, Duration::ZERO).await);
    until_all_delivered(&daemon, &sink, &sent).await;
    spooled_through_the_outage(&daemon).await;
}

/// The Redis Cluster master holding a source dies; the cluster promotes
/// its replica (after `cluster-node-timeout`): hookd spools meanwhile,
/// finds the new master and delivers everything.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_failover_loses_nothing_the_replica_had() {
    let mut cluster = TestCluster::with_replicas();
    let spool = TempDir::new().unwrap();
    let sink = Sink::start().await;
    let daemon = daemon_on(&cluster.url(), &spool, &sink).await;
    let mut sent = send_all(&daemon, "before", 50, Duration::ZERO).await;

    let owner = cluster.master_holding("hookd:{s}:stream");
    let owner_port = format!("master_port:{}", cluster.nodes[owner].port);
    let replica = cluster
        .nodes
        .iter()
        .position(|n| n.cli(&["INFO", "replication"]).contains(&owner_port))
        .expect("its replica");
    until_caught_up(&cluster.nodes[owner], &cluster.nodes[replica]).await;

    cluster.nodes[owner].kill();
    sent.extend(send_all(&daemon, "during", 30, Duration::from_millis(100)).await);
    let promoted = eventually(Duration::from_secs(20), || async {
        cluster.nodes[replica].cli(&["ROLE"]).starts_with("master")
    })
    .await;
    assert!(promoted, "the cluster never promoted the replica");
    sent.extend(send_all(&daemon, "after", 20, Duration::ZERO).await);
    until_all_delivered(&daemon, &sink, &sent).await;
    spooled_through_the_outage(&daemon).await;
}

/// Moves every slot of master `from` to master `to` while 6000 events
/// arrive, one attempt each, 1 ms apart; none may be refused. What was
/// accepted.
async fn reshard_under_load(
    cluster: &TestCluster,
    daemon: &Daemon,
    from: usize,
    to: usize,
) -> Vec<String> {
    let mut load = Load::new(&daemon.url(""), "s", 6000);
    load.once = true;
    load.interval = Duration::from_millis(1);
    let load = tokio::spawn(async move { load.run().await });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let moved = tokio::task::block_in_place(|| cluster.reshard(from, to));
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stdout)
    );
    let report = load.await.expect("load");
    assert!(
        report.refused.is_empty() && report.statuses.keys().all(|s| *s == 202),
        "{:?}\n{}",
        report.statuses,
        daemon.logs()
    );
    report.accepted.into_iter().collect()
}

/// The slot holding a source moves to another master under load
/// (`redis-cli --cluster reshard`, all of the owner's slots, so the
/// source's moves whichever order redis-cli takes them in): while its
/// keys are half moved Redis answers TRYAGAIN, so events are spooled
/// instead of refused; and some of the Redis client's command loops may
/// stop for good, which the health check finds and restarts. The same
/// hookd delivers everything, with no restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_reshard_of_a_source_refuses_nothing_and_loses_nothing() {
    let cluster = TestCluster::start();
    let spool = TempDir::new().unwrap();
    let sink = Sink::start().await;
    let daemon = daemon_on(&cluster.url(), &spool, &sink).await;
    let mut sent = send_all(&daemon, "before", 10, Duration::ZERO).await;

    let stream = "hookd:{s}:stream";
    let owner = cluster.master_holding(stream);
    let to = (owner + 1) % cluster.nodes.len();
    sent.extend(reshard_under_load(&cluster, &daemon, owner, to).await);
    assert_eq!(cluster.master_holding(stream), to, "the slot did not move");
    sent.extend(send_all(&daemon, "after", 10, Duration::ZERO).await);
    until_all_delivered(&daemon, &sink, &sent).await;
}

/// Slots that hold no source move under load, among them the one of the
/// key the health check's script names (`hookd:probe`): the check
/// follows the redirection, so Redis is never called away and, with no
/// spool to fall back on, no event is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_reshard_of_other_slots_refuses_nothing_without_a_spool() {
    let cluster = TestCluster::start();
    let probe = cluster.master_serving("hookd:probe");
    // Source `s` stays where it is.
    assert_ne!(cluster.master_serving("hookd:{s}:stream"), probe);
    let sink = Sink::start().await;
    let toml = config(
        &cluster.url(),
        "",
        &[SourceSpec::standard("s", &sink.url())],
    );
    let daemon = Daemon::start_ready(&toml).await;
    let to = (0..cluster.nodes.len())
        .find(|&i| i != probe)
        .expect("another master");
    let accepted = reshard_under_load(&cluster, &daemon, probe, to).await;
    assert_eq!(
        cluster.master_serving("hookd:probe"),
        to,
        "the slot did not move"
    );
    until_all_delivered(&daemon, &sink, &accepted).await;
    assert!(
        !daemon.logs().contains("redis is unreachable"),
        "{}",
        daemon.logs()
    );
}

/// Every connection hookd has to Redis silently stops forwarding (what a
/// firewall or load balancer that forgets a flow does) while new
/// connections work. No pooled client answers the health check's PING,
/// a connection opened for the question says Redis does, so every
/// client's command loop is restarted, and each reader's client once its
/// read times out: events accepted meanwhile are spooled, and everything
/// is delivered by the same hookd.
#[tokio::test(flavor = "multi_thread")]
async fn connections_that_silently_stop_are_replaced_and_nothing_is_lost() {
    let redis = TestRedis::start();
    let proxy = StallingProxy::start(redis.port).await;
    let spool = TempDir::new().unwrap();
    let sink = Sink::start().await;
    let daemon = daemon_on(&proxy.url(), &spool, &sink).await;
    let mut sent = send_all(&daemon, "before", 20, Duration::ZERO).await;
    until_all_delivered(&daemon, &sink, &sent).await;

    proxy.stall_existing();
    sent.extend(send_all(&daemon, "during", 40, Duration::from_millis(100)).await);
    until_all_delivered(&daemon, &sink, &sent).await;
    assert!(
        daemon
            .logged(&["redis clients stopped answering while redis answers"])
            .await,
        "{}",
        daemon.logs()
    );
    spooled_through_the_outage(&daemon).await;
}
