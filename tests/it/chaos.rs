//! The reliability suite: load while things break. Every scenario prints a
//! `GUARANTEE | scenario | accepted | delivered | lost | duplicates |` line
//! and fails if one accepted event is lost.
//!
//! `HOOKD_SOAK=1` multiplies the load by ten for a longer run by hand.

use std::time::{Duration, Instant};

use crate::load::{Load, verify};
use crate::support::*;

fn scale(n: usize) -> usize {
    if std::env::var_os("HOOKD_SOAK").is_some() {
        n * 10
    } else {
        n
    }
}

/// Timings that make recovery fast enough to test: entries held by a dead
/// process are claimed after 2 s.
const WORKER: &str = "[worker]\nclaim_idle = \"2s\"\nclaim_interval = \"300ms\"";
const DESTINATION: &str = "timeout = \"1s\"\nretry = { max_attempts = 50, base = \"100ms\", max = \"1s\", jitter = true }";

fn base_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_1_kill_9_of_hookd_mid_load() {
    let redis = TestRedis::start();
    let sink = Sink::start().await;
    sink.set_default(Answer::status(200).delayed(Duration::from_millis(5)));
    let port = free_port();
    let toml = listen_on(
        &config(
            &redis.url(),
            WORKER,
            &[SourceSpec::standard("s", &sink.url()).with(DESTINATION)],
        ),
        port,
    );
    let mut daemon = Daemon::start_ready(&toml).await;
    let load = tokio::spawn(Load::new(&base_url(port), "s", scale(4000)).run());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!load.is_finished(), "load ended before the kill");
    daemon.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _restarted = Daemon::start_ready(&toml).await;
    let report = load.await.unwrap();
    assert!(
        report.statuses.get(&0).copied().unwrap_or(0) > 0,
        "the kill did not hit the load"
    );
    verify(
        "1. kill -9 of hookd mid-load, restart",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_2_redis_restart_with_aof_mid_load() {
    let mut redis = TestRedis::start_persistent();
    let sink = Sink::start().await;
    let toml = config(
        &redis.url(),
        WORKER,
        &[SourceSpec::standard("s", &sink.url()).with(DESTINATION)],
    );
    let daemon = Daemon::start_ready(&toml).await;
    let load = tokio::spawn(Load::new(&daemon.url(""), "s", scale(4000)).run());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!load.is_finished(), "load ended before the restart");
    redis.kill(); // SIGKILL: whatever was not fsynced is gone
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.restart(); // the AOF is replayed
    let report = load.await.unwrap();
    // A short outage is ridden out: ingest commands wait for the reconnect
    // (bounded by the 2 s ingest timeout, after which the answer is 503).
    println!("answers during the Redis restart: {:?}", report.statuses);
    verify(
        "2. Redis restarted (AOF, appendfsync always) mid-load",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
    daemon.wait_ready().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_3_redis_unreachable_for_10s() {
    let mut redis = TestRedis::start_persistent();
    let sink = Sink::start().await;
    let toml = config(
        &redis.url(),
        WORKER,
        &[SourceSpec::standard("s", &sink.url()).with(DESTINATION)],
    );
    let daemon = Daemon::start_ready(&toml).await;
    let baseline = rss_kib(daemon.pid());
    let mut load = Load::new(&daemon.url(""), "s", scale(1000));
    load.concurrency = 8;
    let load = tokio::spawn(load.run());
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.kill();
    let outage = Instant::now();
    let mut peak = baseline;
    let state_is = |state: &'static str| {
        let daemon = &daemon;
        async move {
            let metrics = get(&daemon.url("/metrics")).await.body;
            String::from_utf8_lossy(&metrics).contains(&format!(
                r#"hookd_destination_state{{source="s",destination="default",state="{state}"}} 1"#
            ))
        }
    };
    let mut unknown_seen = false;
    while outage.elapsed() < Duration::from_secs(10) {
        assert_eq!(
            get(&daemon.url("/health/live")).await.status,
            200,
            "hookd died during the outage"
        );
        peak = peak.max(rss_kib(daemon.pid()));
        // Nobody can read the destination's state while Redis is away.
        unknown_seen |= state_is("unknown").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        unknown_seen,
        "destination state not unknown during the outage"
    );
    // The log says why, in the connection's words (at once, or as a
    // "still unreachable" line when the first failed PING came before the
    // connections reported).
    assert!(
        daemon
            .logged(&["WARN", "unreachable", "error=", "Connection"])
            .await,
        "{}",
        daemon.logs()
    );
    assert_eq!(get(&daemon.url("/health/ready")).await.status, 503);
    redis.restart();
    let report = load.await.unwrap();
    assert!(
        report.retry_after_on_503 > 0,
        "no 503 + Retry-After during the outage"
    );
    println!("redis outage: rss {baseline} KiB before, peak {peak} KiB during");
    assert!(
        peak < baseline + 64 * 1024,
        "memory grew during the outage: {baseline} -> {peak} KiB"
    );
    verify(
        "3. Redis unreachable for 10 s",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(5), || state_is("healthy")).await,
        "destination state not read again after the outage"
    );
    assert_eq!(
        daemon.logs().matches("panicked").count(),
        0,
        "hookd panicked:\n{}",
        daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_4_destination_down_for_20s() {
    let redis = TestRedis::start();
    let sink_port = free_port();
    let sink_url = format!("http://127.0.0.1:{sink_port}/hook");
    let source = SourceSpec::standard("s", &sink_url)
        .with("retry = { max_attempts = 100, base = \"200ms\", max = \"2s\", jitter = true }");
    let daemon = Daemon::start_ready(&config(&redis.url(), "", &[source])).await;
    let report = Load::new(&daemon.url(""), "s", scale(500)).run().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        redis.dlq_len("s"),
        0,
        "dead-lettered while the destination was down"
    );
    let sink = Sink::start_on(&format!("127.0.0.1:{sink_port}")).await;
    verify(
        "4. destination down for 20 s, then back",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(redis.dlq_len("s"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_5_sigterm_under_load() {
    let redis = TestRedis::start();
    let sink = Sink::start().await;
    sink.set_default(Answer::status(200).delayed(Duration::from_millis(20)));
    let port = free_port();
    let toml = listen_on(
        &config(
            &redis.url(),
            &format!("{WORKER}\n[shutdown]\ntimeout = \"5s\""),
            &[SourceSpec::standard("s", &sink.url()).with(DESTINATION)],
        ),
        port,
    );
    let mut daemon = Daemon::start_ready(&toml).await;
    let load = tokio::spawn(Load::new(&base_url(port), "s", scale(4000)).run());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!load.is_finished(), "load ended before SIGTERM");
    daemon.signal("TERM");
    let stopping = Instant::now();
    let status = daemon.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status}:\n{}", daemon.logs());
    assert!(
        stopping.elapsed() < Duration::from_secs(7),
        "exceeded shutdown.timeout"
    );
    let _restarted = Daemon::start_ready(&toml).await;
    let report = load.await.unwrap();
    verify(
        "5. SIGTERM under load, restart",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_6_three_instances_one_killed() {
    let redis = TestRedis::start();
    let sink = Sink::start().await;
    sink.set_default(Answer::status(200).delayed(Duration::from_millis(10)));
    let toml = config(
        &redis.url(),
        WORKER,
        &[SourceSpec::standard("s", &sink.url()).with(DESTINATION)],
    );
    let a = Daemon::start_ready(&toml).await;
    let b = Daemon::start_ready(&toml).await;
    let mut c = Daemon::start_ready(&toml).await;
    let mut load = Load::new(&a.url(""), "s", scale(4000));
    load.urls = vec![a.url(""), b.url(""), c.url("")];
    let load = tokio::spawn(load.run());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!load.is_finished(), "load ended before the kill");
    c.kill9();
    let report = load.await.unwrap();
    verify(
        "6. three hookd on one Redis, one killed -9",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
    let claimed: usize = [&a, &b]
        .iter()
        .map(|d| d.logs().matches("claimed an abandoned entry").count())
        .sum();
    println!("entries claimed from the killed instance: {claimed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_7_redis_cluster_several_sources() {
    let cluster = TestCluster::start();
    let sink = Sink::start().await;
    let names = ["orders", "payments", "users", "github"];
    let sources: Vec<SourceSpec> = names
        .iter()
        .map(|n| SourceSpec::standard(n, &sink.url()).with(DESTINATION))
        .collect();
    // Sources whose destination is down, removed from the configuration
    // at the end: the restart finds their streams on whichever master.
    let stuck = ["stuck-1", "stuck-2", "stuck-3"];
    let mut with_stuck = sources.clone();
    with_stuck.extend(
        stuck
            .iter()
            .map(|n| SourceSpec::standard(n, &dead_url()).with(DESTINATION)),
    );
    let mut daemon = Daemon::start_ready(&config(&cluster.url(), WORKER, &with_stuck)).await;
    for name in stuck {
        assert_eq!(send_event(&daemon, name, "stuck", "{}").await.status, 202);
    }
    let mut load = Load::new(&daemon.url(""), "orders", scale(2000));
    load.sources = names.iter().map(|s| s.to_string()).collect();
    let report = load.run().await;
    verify(
        "7. Redis Cluster (3 masters), 4 sources",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
    // The sources really are spread over the masters.
    let holding = cluster
        .nodes
        .iter()
        .filter(|n| !n.keys("hookd:*").is_empty())
        .count();
    assert!(holding >= 2, "all sources landed on one node");
    // Every command went straight to the master holding its keys: a
    // command sent elsewhere costs a MOVED and a routing-table refresh.
    let moved: Vec<String> = cluster
        .nodes
        .iter()
        .filter_map(|n| {
            n.cli(&["INFO", "errorstats"])
                .lines()
                .find(|l| l.starts_with("errorstat_MOVED:"))
                .map(|l| format!("{}: {l}", n.port))
        })
        .collect();
    assert!(moved.is_empty(), "{moved:?}");
    let holding_stuck = cluster
        .nodes
        .iter()
        .filter(|n| !n.keys("hookd:{stuck-*}:stream").is_empty())
        .count();
    assert!(holding_stuck >= 2, "the removed sources landed on one node");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(15)).await.success());
    let daemon = Daemon::start_ready(&config(&cluster.url(), WORKER, &sources)).await;
    for name in stuck {
        assert!(
            daemon
                .logged(&["source no longer configured", &format!("source={name} ")])
                .await,
            "{}",
            daemon.logs()
        );
    }
}

/// 10k idle / slow connections and header floods from another process;
/// real clients still get answers and memory stays bounded.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_8_slowloris_header_flood_and_10k_idle_connections() {
    let redis = TestRedis::start();
    let sink = Sink::start().await;
    let daemon = Daemon::start_env(
        &config(&redis.url(), "", &[SourceSpec::standard("s", &sink.url())]),
        &[("HOOKD_SERVER__HEADER_READ_TIMEOUT", "3s")],
    )
    .await;
    daemon.wait_ready().await;
    let baseline = rss_kib(daemon.pid());
    let script = format!(
        r#"
import socket, sys, time
socks = []
for i in range(10000):
    try:
        s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
    except OSError as e:
        print("connect failed", i, e, flush=True)
        break
    if i % 2 == 0:
        s.send(b"POST /webhooks/s HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # slowloris
    socks.append(s)
flood = []
for i in range(20):
    s = socket.create_connection(("127.0.0.1", {port}), timeout=5)
    try:
        s.sendall(b"POST /webhooks/s HTTP/1.1\r\nHost: x\r\n" + b"X-Flood: aaaaaaaaaaaaaaaa\r\n" * 20000)
    except OSError:
        pass
    flood.append(s)
print("open", len(socks), flush=True)
time.sleep(8)
"#,
        port = daemon.public.port()
    );
    let mut attacker = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for the connection flood");
    // Wait until the flood is in place.
    let stdout = attacker.stdout.take().unwrap();
    let opened = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        line
    })
    .await
    .unwrap();
    assert!(
        opened.starts_with("open 10000"),
        "flood not in place: {opened}"
    );
    let peak_during = rss_kib(daemon.pid());

    let started = Instant::now();
    let mut load = Load::new(&daemon.url(""), "s", 200);
    load.give_up_after = Duration::from_secs(20);
    let report = load.run().await;
    let took = started.elapsed();
    assert_eq!(get(&daemon.url("/health/ready")).await.status, 200);
    let peak = peak_during.max(rss_kib(daemon.pid()));
    println!(
        "connection flood: rss {baseline} KiB before, {peak} KiB with 10k connections; 200 real webhooks in {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "real clients starved: {took:?}"
    );
    assert!(
        peak < baseline + 256 * 1024,
        "memory not bounded: {baseline} -> {peak} KiB"
    );
    verify(
        "8. slowloris + header flood + 10k idle connections",
        &report,
        &sink,
        Duration::from_secs(30),
    )
    .await;
    let _ = attacker.kill();
    let _ = attacker.wait();
}

/// Redis full (maxmemory, noeviction): ingest is refused with 503, but the
/// moves that free memory (ack, retry, dead-letter, claim) still run, so
/// the backlog drains, ingest resumes, and nothing is delivered twice.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_9_redis_at_maxmemory_drains_without_duplicates() {
    let redis = TestRedis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory",
        "4mb",
        "--maxmemory-policy",
        "noeviction",
    ]);
    let sink = Sink::start().await;
    // A slow destination lets the backlog fill Redis first.
    sink.set_default(Answer::status(200).delayed(Duration::from_secs(3)));
    let source = SourceSpec::standard("s", &sink.url())
        .with("timeout = \"5s\"\nmax_in_flight = 4\nretry = { max_attempts = 50, base = \"100ms\", max = \"1s\" }");
    let daemon = Daemon::start_ready(&config(
        &redis.url(),
        "[worker]\nclaim_idle = \"6s\"\nclaim_interval = \"300ms\"",
        &[source],
    ))
    .await;
    // 4 KiB bodies: the backlog, not the dedup keys, fills Redis.
    let mut load = Load::new(&daemon.url(""), "s", scale(2000));
    load.concurrency = 32;
    load.padding = 4096;
    load.give_up_after = Duration::from_secs(120);
    let load = tokio::spawn(load.run());
    let full = eventually(Duration::from_secs(30), || async {
        daemon.logs().contains("OOM")
    })
    .await;
    assert!(full, "redis never filled up:\n{}", daemon.logs());
    sink.set_default(Answer::status(200));
    let report = load.await.unwrap();
    assert!(
        report.statuses.get(&503).copied().unwrap_or(0) > 0,
        "ingest was never refused"
    );
    // Nothing left pending means nothing can be claimed and sent again.
    assert!(
        eventually(Duration::from_secs(60), || async { redis.settled("s") }).await,
        "backlog did not drain:\n{}",
        daemon.logs()
    );
    let verdict = verify(
        "9. Redis at maxmemory (noeviction) under load",
        &report,
        &sink,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        verdict.duplicates, 0,
        "acknowledgements were refused at maxmemory"
    );
    // The delivered events the log would keep (history's default is
    // 10,000) had to give way, or Redis would have stayed full.
    assert!(
        daemon
            .logs()
            .contains("the event log keeps no finished events"),
        "the event log was not shed at maxmemory:\n{}",
        daemon.logs()
    );
}

/// Two instances fan every event out to two destinations; one instance is
/// killed -9 mid-load. Each destination still gets every accepted event.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_10_kill_9_mid_fan_out_across_two_instances() {
    let redis = TestRedis::start();
    let billing = Sink::start().await;
    let audit = Sink::start().await;
    billing.set_default(Answer::status(200).delayed(Duration::from_millis(5)));
    audit.set_default(Answer::status(200).delayed(Duration::from_millis(10)));
    let source = SourceSpec::standard("s", "")
        .route("billing", &billing.url(), DESTINATION)
        .route("audit", &audit.url(), DESTINATION);
    let toml = config(&redis.url(), WORKER, &[source]);
    let a = Daemon::start_ready(&toml).await;
    let mut b = Daemon::start_ready(&toml).await;
    let mut load = Load::new(&a.url(""), "s", scale(3000));
    load.urls = vec![b.url(""), a.url("")];
    let load = tokio::spawn(load.run());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!load.is_finished(), "load ended before the kill");
    b.kill9();
    let report = load.await.unwrap();
    for (name, sink) in [("billing", &billing), ("audit", &audit)] {
        verify(
            &format!("10. kill -9 mid fan-out, 2 instances: {name}"),
            &report,
            sink,
            Duration::from_secs(60),
        )
        .await;
    }
    assert!(
        eventually(Duration::from_secs(30), || async { redis.settled("s") }).await,
        "the stream kept entries every destination was done with"
    );
}

/// Redis Cluster: two sources of two destinations each, spread over the
/// masters; every destination gets every event of its source.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_11_redis_cluster_several_destinations() {
    let cluster = TestCluster::start();
    let first = Sink::start().await;
    let second = Sink::start().await;
    let names = ["orders", "payments"];
    let sources: Vec<SourceSpec> = names
        .iter()
        .map(|n| {
            SourceSpec::standard(n, "")
                .route("first", &first.url(), DESTINATION)
                .route("second", &second.url(), DESTINATION)
        })
        .collect();
    let daemon = Daemon::start_ready(&config(&cluster.url(), WORKER, &sources)).await;
    let mut load = Load::new(&daemon.url(""), "orders", scale(2000));
    load.sources = names.iter().map(|s| s.to_string()).collect();
    let report = load.run().await;
    for (name, sink) in [("first", &first), ("second", &second)] {
        verify(
            &format!("11. Redis Cluster (3 masters), 2 sources x 2 destinations: {name}"),
            &report,
            sink,
            Duration::from_secs(60),
        )
        .await;
    }
}

/// A Redis that refuses hookd's password: the log, the admin API and the
/// dashboard say why it is unreachable (the server's own answer), never
/// the password; with the right one it connects.
#[tokio::test(flavor = "multi_thread")]
async fn why_redis_is_unreachable_is_said_and_the_password_never() {
    let redis = TestRedis::start_with(&["--save", "", "--requirepass", "right-pass"]);
    let url = |password: &str| format!("redis://:{password}@127.0.0.1:{}", redis.port);
    let source = [SourceSpec::standard("s", &dead_url())];
    let daemon = Daemon::start(&config(&url("wrong-pass-x"), "", &source)).await;
    assert!(
        daemon
            .logged(&["unreachable", "WRONGPASS", "redis://:[redacted]@"])
            .await,
        "{}",
        daemon.logs()
    );
    assert_eq!(get(&daemon.url("/health/ready")).await.status, 503);
    assert!(!daemon.logs().contains("wrong-pass-x"), "{}", daemon.logs());
    // The admin side says it too: the API and the dashboard's overview,
    // at once (no read waits out the command timeout for a Redis known
    // to be away).
    let asked = Instant::now();
    let sources = get(&daemon.admin_url("/admin/sources")).await.json();
    assert!(
        asked.elapsed() < Duration::from_millis(2500),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(sources["redis"], "down", "{sources}");
    let error = sources["redis_error"].as_str().unwrap_or_default();
    assert!(error.contains("WRONGPASS"), "{sources}");
    let overview = get(&daemon.admin_url("/")).await;
    let page = String::from_utf8_lossy(&overview.body);
    assert!(
        page.contains("Redis cannot be reached: ") && page.contains("WRONGPASS"),
        "{page}"
    );
    // The pages that have nothing to show without Redis say so at once.
    for path in ["/events", "/dlq", "/events/s/1-0", "/ui/dlq/s/1-0"] {
        let asked = Instant::now();
        let answer = get(&daemon.admin_url(path)).await;
        let page = String::from_utf8_lossy(&answer.body);
        assert_eq!(answer.status, 503, "{path}: {page}");
        assert!(page.contains("WRONGPASS"), "{path}: {page}");
        assert!(asked.elapsed() < Duration::from_millis(2500), "{path}");
    }
    // So do the API's reads, as JSON.
    for path in [
        "/admin/events?source=s",
        "/admin/events/s/1-0",
        "/admin/dlq",
        "/admin/dlq/s/1-0",
        "/admin/stats?source=s",
    ] {
        let asked = Instant::now();
        let answer = get(&daemon.admin_url(path)).await;
        assert_eq!(answer.status, 503, "{path}");
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.starts_with("redis cannot be reached: ") && error.contains("WRONGPASS"),
            "{path}: {error}"
        );
        assert!(asked.elapsed() < Duration::from_millis(2500), "{path}");
    }

    let daemon = Daemon::start_ready(&config(&url("right-pass"), "", &source)).await;
    assert!(daemon.logged(&["redis is reachable"]).await);
    let sources = get(&daemon.admin_url("/admin/sources")).await.json();
    assert!(sources.get("redis_error").is_none(), "{sources}");
    assert!(!daemon.logs().contains("right-pass"), "{}", daemon.logs());
}

/// Redis hangs: before the health check has called it away, the
/// listing waits at most a second for it, and all along every configured
/// source and destination is listed (state `unknown`, figures `null`),
/// in the API and on the dashboard.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_redis_leaves_every_destination_listed_as_unknown_at_once() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK))
        .source(
            SourceSpec::standard("t", "")
                .route("billing", SINK, "")
                .route("audit", SINK, ""),
        )
        .start()
        .await;
    let read = h.api(http::Method::GET, "/admin/sources").await.json();
    assert_eq!(
        read["sources"][1]["destinations"][1]["pending"], 0,
        "{read}"
    );
    h.redis.freeze();
    for round in ["unnoticed", "known"] {
        if round == "known" {
            let known = eventually(Duration::from_secs(5), || async {
                h.api(http::Method::GET, "/admin/sources").await.json()["redis"] == "down"
            })
            .await;
            assert!(known, "the hang was never noticed");
        }
        let asked = Instant::now();
        let listing = h.api(http::Method::GET, "/admin/sources").await;
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(1800), "{round}: {took:?}");
        assert_eq!(listing.status, 200);
        let listing = listing.json();
        let names: Vec<_> = listing["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].clone())
            .collect();
        assert_eq!(names, ["s", "t"], "{round}: {listing}");
        let destinations = &listing["sources"][1]["destinations"];
        assert_eq!(destinations[0]["name"], "billing", "{listing}");
        assert_eq!(destinations[1]["name"], "audit", "{listing}");
        for d in destinations.as_array().unwrap() {
            assert_eq!(d["state"], "unknown", "{round}: {listing}");
            assert!(
                d["pending"].is_null() && d["backlog"].is_null(),
                "{listing}"
            );
            assert_eq!(d["max_in_flight"], 16, "{listing}");
        }
        assert!(listing["sources"][1]["dlq"].is_null(), "{listing}");

        let asked = Instant::now();
        let page = h.api(http::Method::GET, "/").await;
        assert!(asked.elapsed() < Duration::from_millis(1800), "{round}");
        let page = String::from_utf8_lossy(&page.body);
        assert!(
            page.contains("Redis did not answer: no figures")
                && page.contains("data-destination=\"audit\"")
                && page.contains("state unknown"),
            "{round}: {page}"
        );
    }
    h.redis.thaw();
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_warns_about_unsafe_redis_settings() {
    let risky = TestRedis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "allkeys-lru",
    ]);
    let daemon = Daemon::start_ready(&config(
        &risky.url(),
        "",
        &[SourceSpec::standard("s", &dead_url())],
    ))
    .await;
    assert!(
        daemon.logged(&["maxmemory-policy is allkeys-lru"]).await,
        "{}",
        daemon.logs()
    );
    assert!(daemon.logs().contains("persistence is off"));
    // The log names which Redis it means.
    let logs = daemon.logs();
    assert!(
        logs.contains(&format!("redis is reachable redis={}", risky.url())),
        "{logs}"
    );

    let safe = TestRedis::start_persistent();
    let daemon = Daemon::start_ready(&config(
        &safe.url(),
        "",
        &[SourceSpec::standard("s", &dead_url())],
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logs = daemon.logs();
    assert!(!logs.contains("maxmemory-policy is"), "{logs}");
    assert!(!logs.contains("persistence is off"), "{logs}");
    assert!(!logs.contains("append-only file is off"), "{logs}");
}
