//! The delivery contract against a real HTTP sink.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::support::*;

/// Fast retries, and the breaker off: these tests are about one event's
/// attempts, which a breaker would hold back while the sink keeps failing
/// (see `routes` for the breaker).
const FAST_RETRY: &str = r#"retry = { max_attempts = 3, base = "100ms", max = "1s", jitter = false }
breaker = { failures = 0 }"#;

#[tokio::test(flavor = "multi_thread")]
async fn delivers_the_raw_body_with_the_documented_headers() {
    let mut source = SourceSpec::standard("gh", SINK);
    source.verify = r#"{ scheme = "github", secrets = ["s3cret"] }"#.into();
    let h = Harness::builder().source(source).start().await;
    let (redis, sink, daemon) = (&h.redis, &h.sink, &h.daemon);

    // Bytes that are not valid UTF-8 must survive unchanged.
    let body: &[u8] = b"{\"zen\":\"caf\xc3\xa9\"}\xff\x00tail";
    let verifier = hookd::verify::Verifier::build(&hookd::config::VerifyConfig::Github {
        secrets: vec![hookd::config::Secret::literal("s3cret")],
        allow_sha1: false,
    })
    .unwrap();
    let mut headers = verifier.sign(body, 0, "delivery-1", "", None).unwrap();
    headers.push(("content-type".into(), "application/vnd.custom+json".into()));
    headers.push(("x-github-event".into(), "push".into()));
    let reply = request(
        Method::POST,
        &daemon.url("/webhooks/gh"),
        &headers,
        Bytes::copy_from_slice(body),
    )
    .await;
    assert_eq!(reply.status, 202);

    assert!(
        sink.wait_for(1, Duration::from_secs(10)).await,
        "{}",
        daemon.logs()
    );
    let got = &sink.received()[0];
    assert_eq!(&got.body[..], body);
    assert_eq!(got.header("content-type"), "application/vnd.custom+json");
    assert_eq!(got.header("webhook-id"), "delivery-1");
    assert_eq!(got.header("x-hookd-source"), "gh");
    assert_eq!(got.header("x-hookd-event-type"), "push");
    assert_eq!(got.header("x-hookd-attempt"), "1");
    assert_eq!(got.header("host"), sink.addr.to_string());
    // Acknowledged: nothing is left that could be delivered again.
    assert!(h.settled("gh").await);
    assert_eq!(redis.stream_len("gh"), 1, "the event log keeps the event");
    assert_eq!(sink.count(), 1);
    let metrics = String::from_utf8_lossy(&get(&daemon.url("/metrics")).await.body).into_owned();
    assert!(
        metrics.contains(
            r#"hookd_deliveries_total{source="gh",destination="default",outcome="success"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("hookd_end_to_end_seconds"));
    assert!(metrics.contains("hookd_delivery_duration_seconds"));
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_with_backoff_until_success() {
    let source = SourceSpec::standard("s", SINK)
        .with(r#"retry = { max_attempts = 5, base = "500ms", max = "10s", jitter = false }"#);
    let h = Harness::builder().source(source).start().await;
    let (redis, sink, daemon) = (&h.redis, &h.sink, &h.daemon);
    sink.script([
        Answer::status(503),
        Answer::status(503),
        Answer::status(200),
    ]);
    assert_eq!(send_event(daemon, "s", "evt_r", "{}").await.status, 202);

    assert!(
        sink.wait_for(3, Duration::from_secs(15)).await,
        "{}",
        daemon.logs()
    );
    // Delivered and acknowledged: no retry of it can still be pending.
    assert!(h.settled("s").await);
    let got = sink.received();
    assert_eq!(got.len(), 3, "delivered more than once after success");
    let attempts: Vec<&str> = got.iter().map(|r| r.header("x-hookd-attempt")).collect();
    assert_eq!(attempts, vec!["1", "2", "3"]);
    assert!(got.iter().all(|r| r.header("webhook-id") == "evt_r"));
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap1 >= Duration::from_millis(500), "first backoff {gap1:?}");
    assert!(
        gap2 >= Duration::from_millis(1000),
        "second backoff {gap2:?}"
    );
    assert_eq!(redis.dlq_len("s"), 0);
    assert_eq!(redis.retrying("s"), 0);
    let metrics = String::from_utf8_lossy(&get(&daemon.url("/metrics")).await.body).into_owned();
    assert!(
        metrics.contains(
            r#"hookd_deliveries_total{source="s",destination="default",outcome="retry"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn honours_retry_after() {
    let source = SourceSpec::standard("s", SINK)
        .with(r#"retry = { max_attempts = 5, base = "50ms", max = "10s", jitter = false }"#);
    let h = Harness::builder().source(source).start().await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    sink.script([
        Answer::status(429).header("retry-after", "2"),
        Answer::status(200),
    ]);
    assert_eq!(send_event(daemon, "s", "evt_ra", "{}").await.status, 202);
    assert!(sink.wait_for(2, Duration::from_secs(10)).await);
    let got = sink.received();
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After ignored: {gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn other_4xx_dead_letters_at_once() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with(FAST_RETRY))
        .start()
        .await;
    let (redis, sink, daemon) = (&h.redis, &h.sink, &h.daemon);
    sink.set_default(Answer::status(400));
    let body = r#"{"type":"order.created","n":1}"#;
    assert_eq!(send_event(daemon, "s", "evt_400", body).await.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis.dlq_len("s") == 1
        })
        .await,
        "{}",
        daemon.logs()
    );
    assert!(h.settled("s").await);
    assert_eq!(sink.count(), 1, "a rejected event was retried");
    assert_eq!(redis.stream_len("s"), 1, "the event log keeps the event");
    assert_eq!(redis.retrying("s"), 0);
    let entry = redis.cli(&["XRANGE", "hookd:{s}:dlq", "-", "+"]);
    for expected in [
        "reason",
        "rejected",
        "status",
        "400",
        "evt_400",
        body,
        "order.created",
    ] {
        assert!(
            entry.contains(expected),
            "{expected} missing from DLQ entry:\n{entry}"
        );
    }
    // A destination that rejects everything dead-letters at the ingest
    // rate; the log says so every few seconds, not per event.
    for i in 0..20 {
        let id = format!("evt_400_{i}");
        assert_eq!(send_event(daemon, "s", &id, body).await.status, 202);
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis.dlq_len("s") == 21
        })
        .await
    );
    let warned = daemon
        .logs()
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("dead-lettering the event"))
        .count();
    assert_eq!(warned, 1, "{}", daemon.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn always_failing_dead_letters_after_max_attempts() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with(FAST_RETRY))
        .start()
        .await;
    let (redis, sink, daemon) = (&h.redis, &h.sink, &h.daemon);
    sink.set_default(Answer::status(500));
    assert_eq!(send_event(daemon, "s", "evt_500", "{}").await.status, 202);
    assert!(
        eventually(Duration::from_secs(15), || async {
            redis.dlq_len("s") == 1
        })
        .await,
        "{}",
        daemon.logs()
    );
    assert!(h.settled("s").await);
    assert_eq!(sink.count(), 3);
    let entry = redis.cli(&["XRANGE", "hookd:{s}:dlq", "-", "+"]);
    assert!(entry.contains("max_attempts"), "{entry}");
    // Each attempt is in the history.
    assert_eq!(entry.matches("\t500\t").count(), 3, "{entry}");
    let metrics = String::from_utf8_lossy(&get(&daemon.url("/metrics")).await.body).into_owned();
    assert!(
        metrics.contains(
            r#"hookd_deliveries_total{source="s",destination="default",outcome="dead"} 1"#
        ),
        "{metrics}"
    );
    let health = get(&daemon.url("/health")).await.json();
    assert!(
        eventually(Duration::from_secs(3), || async {
            get(&daemon.url("/health")).await.json()["sources"]["s"]["dlq"] == 1
        })
        .await,
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_and_connection_errors_are_retried() {
    let h = Harness::builder()
        .source(
            SourceSpec::standard("s", SINK)
                .with("timeout = \"500ms\"")
                .with(FAST_RETRY),
        )
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    sink.script([
        Answer::status(200).delayed(Duration::from_secs(3)),
        Answer::status(200),
    ]);
    assert_eq!(send_event(daemon, "s", "evt_t", "{}").await.status, 202);
    // The timed-out request is abandoned by hookd, so the sink only
    // records the second attempt.
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    let attempts: HashSet<String> = sink
        .received()
        .iter()
        .map(|r| r.header("x-hookd-attempt").to_owned())
        .collect();
    assert!(
        attempts.contains("2"),
        "timeout was not retried: {attempts:?}"
    );

    // Nothing listening: retried, then dead-lettered with the error text.
    let down = Harness::builder()
        .source(SourceSpec::standard("d", &dead_url()).with(FAST_RETRY))
        .start()
        .await;
    let reply = request(
        Method::POST,
        &down.daemon.url("/webhooks/d"),
        &signed("evt_c", b"{}"),
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!(reply.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            down.redis.dlq_len("d") == 1
        })
        .await
    );
    let entry = down.redis.cli(&["XRANGE", "hookd:{d}:dlq", "-", "+"]);
    assert!(entry.contains("request failed"), "{entry}");
}

#[tokio::test(flavor = "multi_thread")]
async fn destination_connections_are_kept_alive() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with("max_in_flight = 2"))
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    for i in 0..40 {
        assert_eq!(
            send_event(daemon, "s", &format!("evt_{i}"), "{}")
                .await
                .status,
            202
        );
    }
    assert!(sink.wait_for(40, Duration::from_secs(20)).await);
    // One connection per delivery slot at most, reused for every event.
    assert!(
        sink.connections() <= 2,
        "{} connections for 40 deliveries",
        sink.connections()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_closing_idle_connections_costs_no_attempts() {
    let sink = IdleClosingSink::start(Duration::from_millis(100)).await;
    let h = Harness::builder()
        .source(
            SourceSpec::standard("s", &sink.url())
                .with("max_in_flight = 1")
                .with(FAST_RETRY),
        )
        .start()
        .await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    for i in 0..5 {
        // Each event finds the previous one's connection closed by the
        // destination (idle > 100 ms).
        assert_eq!(
            send_event(daemon, "s", &format!("evt_{i}"), "{}")
                .await
                .status,
            202
        );
        assert!(
            eventually(Duration::from_secs(5), || async {
                sink.attempts().len() == i + 1
            })
            .await,
            "{}",
            daemon.logs()
        );
        // Let the destination close the idle connection first.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(sink.attempts(), vec!["1"; 5]);
    assert_eq!(sink.connections(), 5);
    assert_eq!(redis.retrying("s"), 0);
    assert_eq!(redis.dlq_len("s"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn per_destination_cap_is_never_exceeded() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with("max_in_flight = 3"))
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    sink.set_default(Answer::status(200).delayed(Duration::from_millis(150)));
    for i in 0..30 {
        assert_eq!(
            send_event(daemon, "s", &format!("evt_{i}"), "{}")
                .await
                .status,
            202
        );
    }
    assert!(sink.wait_for(30, Duration::from_secs(20)).await);
    assert_eq!(sink.max_concurrency(), 3, "cap not used or exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_destination_does_not_block_another_source() {
    let slow = Sink::start().await;
    slow.set_default(Answer::status(200).delayed(Duration::from_secs(4)));
    let h = Harness::builder()
        .toml("[worker]\nconcurrency = 4\nclaim_idle = \"30s\"")
        .source(
            SourceSpec::standard("slow", &slow.url()).with("max_in_flight = 2\ntimeout = \"10s\""),
        )
        .source(SourceSpec::standard("fast", SINK))
        .start()
        .await;
    let (fast, daemon) = (&h.sink, &h.daemon);
    for i in 0..10 {
        assert_eq!(
            send_event(daemon, "slow", &format!("s{i}"), "{}")
                .await
                .status,
            202
        );
    }
    // Both of the slow destination's slots are taken before the fast
    // source gets its events.
    assert!(eventually(Duration::from_secs(5), || async { slow.in_progress() == 2 }).await);
    let started = std::time::Instant::now();
    for i in 0..5 {
        assert_eq!(
            send_event(daemon, "fast", &format!("f{i}"), "{}")
                .await
                .status,
            202
        );
    }
    assert!(
        fast.wait_for(5, Duration::from_secs(3)).await,
        "fast source starved"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(slow.max_concurrency() <= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_paces_deliveries() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with("rate_per_sec = 5"))
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    // Let the initial burst allowance drain first.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for i in 0..15 {
        assert_eq!(
            send_event(daemon, "s", &format!("evt_{i}"), "{}")
                .await
                .status,
            202
        );
    }
    assert!(sink.wait_for(15, Duration::from_secs(10)).await);
    let got = sink.received();
    let span = got.last().unwrap().at - got.first().unwrap().at;
    // 5 may go at once, the other 10 need about 2 s at 5/s.
    assert!(
        span >= Duration::from_millis(1500),
        "not rate limited: {span:?}"
    );
}

/// `rate_per_sec` holds for the destination, not per instance: two
/// instances together start no more than that many deliveries a second.
#[tokio::test(flavor = "multi_thread")]
async fn the_rate_limit_is_shared_by_every_instance() {
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with("rate_per_sec = 10"))
        .start()
        .await;
    let other = h.start_another().await;
    // Both instances' readers are waiting (the burst allowance is one
    // second's worth, shared).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let events: Vec<_> = (0..40)
        .map(|i| (format!("evt_{i}"), "{}".to_string()))
        .collect();
    // Half through each instance.
    for (i, (id, body)) in events.iter().enumerate() {
        let daemon = if i % 2 == 0 { &h.daemon } else { &other };
        assert_eq!(send_event(daemon, "s", id, body).await.status, 202);
    }
    assert!(h.sink.wait_for(40, Duration::from_secs(20)).await);
    let got = h.sink.received();
    let span = got.last().unwrap().at - got.first().unwrap().at;
    // 10 may go at once, the other 30 need about 3 s at 10/s; two
    // instances each pacing on their own would be done in about 1 s.
    assert!(
        span >= Duration::from_millis(2500),
        "paced per instance, not shared: {span:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signs_deliveries_when_a_signing_secret_is_set() {
    let signing = "whsec_c2lnbmluZy1zZWNyZXQtb2YtaG9va2Q=";
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with(&format!("signing_secret = \"{signing}\"")))
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    assert_eq!(
        send_event(daemon, "s", "evt_sig", "{\"a\":1}").await.status,
        202
    );
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    let got = &sink.received()[0];
    // The destination verifies it like any Standard-Webhooks receiver.
    let verifier = hookd::verify::Verifier::build(&hookd::config::VerifyConfig::StandardWebhooks {
        secrets: vec![hookd::config::Secret::literal(signing)],
        tolerance: Duration::from_secs(300),
    })
    .unwrap();
    let checked = verifier.verify(
        &hookd::verify::SignedRequest {
            headers: &got.headers,
            query: None,
            body: &got.body,
        },
        hookd::unix_secs(),
    );
    assert_eq!(checked, Ok(()));
}

/// Redis comes back empty (no persistence): hookd recreates the stream
/// and every destination's consumer group without a restart, and a
/// destination that was paused delivers again (its pause was in Redis).
#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_empty_recreates_every_group() {
    let mut h = Harness::builder()
        .source(
            SourceSpec::standard("s", "")
                .route("a", SINKS[0], "")
                .route("b", SINKS[1], ""),
        )
        .sinks(2)
        .start()
        .await;
    let paused = h
        .api(Method::POST, "/admin/sources/s/destinations/b/pause")
        .await;
    assert_eq!(paused.json()["state"], "paused");
    // Every instance obeys within a second; this one within its next read.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(h.send("s", "before", "{}").await.status, 202);
    assert!(h.sinks[0].wait_for(1, Duration::from_secs(10)).await);
    assert_eq!(h.sinks[1].count(), 0, "delivered while paused");
    h.redis.restart(); // no persistence: comes back empty, no group
    let daemon = &h.daemon;
    assert!(
        eventually(Duration::from_secs(15), || async {
            send_event(daemon, "s", "after", "{}").await.status == 202
        })
        .await
    );
    for (name, sink, total) in [("a", &h.sinks[0], 2), ("b", &h.sinks[1], 1)] {
        assert!(
            sink.wait_for(total, Duration::from_secs(15)).await,
            "{name}: not delivered after redis came back empty:\n{}",
            h.daemon.logs()
        );
    }
    assert!(h.sinks[1].ids().contains(&"after".to_owned()));
}

/// kill -9 while deliveries are in flight: a fresh hookd claims what the
/// dead one held and every accepted event is delivered.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_delivery_loses_nothing() {
    let mut h = Harness::builder()
        .toml("[worker]\nclaim_idle = \"2s\"\nclaim_interval = \"500ms\"")
        .source(SourceSpec::standard("s", SINK).with("timeout = \"1s\"\nmax_in_flight = 4"))
        .start()
        .await;
    h.sink
        .set_default(Answer::status(200).delayed(Duration::from_millis(300)));
    let mut accepted = HashSet::new();
    for i in 0..40 {
        let id = format!("evt_{i}");
        if h.send("s", &id, "{}").await.status == 202 {
            accepted.insert(id);
        }
    }
    assert!(h.sink.wait_for(4, Duration::from_secs(10)).await);
    h.daemon.kill9();
    let sink = &h.sink;
    let delivered_before = sink.count();
    assert!(
        delivered_before < 40,
        "everything was delivered before the kill"
    );

    let _fresh = h.start_another().await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            let ids: HashSet<String> = sink.ids().into_iter().collect();
            accepted.is_subset(&ids)
        })
        .await,
        "lost events after kill -9"
    );
    let ids = sink.ids();
    let unique: HashSet<&String> = ids.iter().collect();
    println!(
        "kill -9: accepted {}, delivered {}, duplicates {}",
        accepted.len(),
        unique.len(),
        ids.len() - unique.len()
    );
}

/// An entry that keeps crashing its consumer is dead-lettered once it has
/// been handed out more than worker.max_deliveries times.
#[tokio::test(flavor = "multi_thread")]
async fn crash_loops_are_dead_lettered() {
    let mut h = Harness::builder()
        .toml("[worker]\nclaim_idle = \"1500ms\"\nclaim_interval = \"200ms\"\nmax_deliveries = 1")
        .source(SourceSpec::standard("s", SINK).with("timeout = \"1s\""))
        .start()
        .await;
    h.sink
        .set_default(Answer::status(200).delayed(Duration::from_secs(5)));
    assert_eq!(h.send("s", "evt_crash", "{}").await.status, 202);
    // Wait until it is in flight, then crash.
    assert!(
        eventually(Duration::from_secs(5), || async {
            h.redis.pending("s") == 1
        })
        .await
    );
    h.daemon.kill9();
    let _fresh = h.start_another().await;
    let redis = &h.redis;
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis.dlq_len("s") == 1
        })
        .await,
        "crash-looping entry not dead-lettered"
    );
    let entry = redis.cli(&["XRANGE", "hookd:{s}:dlq", "-", "+"]);
    assert!(entry.contains("max_deliveries"), "{entry}");
}

/// An https destination behind a private CA: hookd trusts the system's
/// store, which `SSL_CERT_FILE` replaces, on top of its built-in roots.
/// Without the CA the same certificate is refused: nothing reaches the
/// sink and the event is dead-lettered with the TLS error.
#[tokio::test(flavor = "multi_thread")]
async fn https_destination_behind_a_private_ca() {
    let ca = TestCa::new();
    let sink = Sink::start_tls(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    // One daemon (and Redis) per trust store, each sending one event.
    let send_trusting = |name: &str, pem: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, pem).unwrap();
        let url = sink.url();
        async move {
            let h = Harness::builder()
                .source(
                    SourceSpec::standard("s", &url)
                        .with(r#"retry = { max_attempts = 1, base = "100ms", max = "1s" }"#)
                        .with("breaker = { failures = 0 }"),
                )
                .env("SSL_CERT_FILE", file.to_str().unwrap())
                .start()
                .await;
            assert_eq!(h.send("s", "evt_tls", "{}").await.status, 202);
            h
        }
    };

    let trusting = send_trusting("ca.pem", &ca.ca_pem).await;
    assert!(
        sink.wait_for(1, Duration::from_secs(10)).await,
        "{}",
        trusting.daemon.logs()
    );
    assert_eq!(sink.received()[0].header("webhook-id"), "evt_tls");

    let refusing = send_trusting("empty.pem", "").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            refusing.redis.dlq_len("s") == 1
        })
        .await,
        "{}",
        refusing.daemon.logs()
    );
    let entry = refusing.redis.cli(&["XRANGE", "hookd:{s}:dlq", "-", "+"]);
    assert!(
        entry.contains("invalid peer certificate: UnknownIssuer"),
        "{entry}"
    );
    assert_eq!(sink.count(), 1, "an untrusted certificate was accepted");
}
