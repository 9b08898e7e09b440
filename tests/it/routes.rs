//! Routes: one source, several destinations, each with its filter, its
//! consumer group, its retries, its breaker and its pause.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::support::*;

/// Retries fast enough to watch.
pub const QUICK_RETRY: &str =
    r#"retry = { max_attempts = 3, base = "100ms", max = "300ms", jitter = false }"#;

/// A Stripe-like event body.
pub fn event(id: &str, event_type: &str, livemode: Option<bool>) -> String {
    match livemode {
        Some(live) => format!(
            r#"{{"id":"{id}","type":"{event_type}","data":{{"object":{{"livemode":{live}}}}}}}"#
        ),
        None => format!(r#"{{"id":"{id}","type":"{event_type}"}}"#),
    }
}

/// Sends every `(id, body)` with 16 requests in flight; returns when all
/// were answered 202, with when each was sent.
pub async fn send_all(
    daemon: &Daemon,
    source: &str,
    events: Vec<(String, String)>,
) -> HashMap<String, Instant> {
    let url = daemon.url("");
    let permits = Arc::new(Semaphore::new(16));
    let mut tasks = JoinSet::new();
    for (id, body) in events {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let url = format!("{url}/webhooks/{source}");
        tasks.spawn(async move {
            let sent = Instant::now();
            let reply = request(
                Method::POST,
                &url,
                &signed(&id, body.as_bytes()),
                body.into_bytes().into(),
            )
            .await;
            drop(permit);
            (id, sent, reply.status)
        });
    }
    let mut sent = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        let (id, at, status) = done.unwrap();
        assert_eq!(status, 202, "{id}");
        sent.insert(id, at);
    }
    sent
}

/// One destination's row in `GET /admin/sources`.
async fn destination(daemon: &Daemon, source: &str, name: &str) -> serde_json::Value {
    let body = get(&daemon.admin_url("/admin/sources")).await.json();
    body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == source)
        .and_then(|s| {
            s["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == name)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no destination {source}/{name} in {body}"))
}

async fn state_of(daemon: &Daemon, name: &str) -> String {
    destination(daemon, "s", name).await["state"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn metrics(daemon: &Daemon) -> String {
    String::from_utf8_lossy(&get(&daemon.url("/metrics")).await.body).into_owned()
}

pub async fn arrived(sink: &Sink, id: &str) {
    let got = eventually(Duration::from_secs(20), || async {
        sink.ids().iter().any(|got| got == id)
    })
    .await;
    assert!(got, "{id} never arrived");
}

fn ids(sink: &Sink) -> Vec<String> {
    let mut ids = sink.ids();
    ids.sort();
    ids
}

fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    let set: BTreeSet<String> = ids.into_iter().collect();
    set.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_delivers_each_destination_exactly_its_matching_events() {
    let source = SourceSpec::standard("s", SINK)
        // `*` matches dots too: invoice.payment.failed is an invoice event.
        .route(
            "billing",
            SINKS[0],
            r#"filter = { event_types = ["invoice.*"] }"#,
        )
        .route(
            "live",
            SINKS[1],
            r#"filter = { match = { "/data/object/livemode" = true } }"#,
        )
        .route("all", SINKS[2], "");
    let h = Harness::builder().source(source).sinks(3).start().await;
    let types = [
        "invoice.paid",
        "invoice.payment.failed",
        "customer.created",
        "invoicex",
    ];
    let mut events = Vec::new();
    let (mut billing, mut live, mut all) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..1000 {
        let id = format!("evt_{i}");
        let event_type = types[i % 4];
        let livemode = [Some(true), Some(false), None][i % 3];
        // Every 50th body is not JSON: no pointer matches, no type.
        let body = if i % 50 == 49 {
            format!("not json {i}")
        } else {
            event(&id, event_type, livemode)
        };
        let json = i % 50 != 49;
        if json && event_type.starts_with("invoice.") {
            billing.push(id.clone());
        }
        if json && livemode == Some(true) {
            live.push(id.clone());
        }
        all.push(id.clone());
        events.push((id, body));
    }
    send_all(&h.daemon, "s", events).await;
    assert!(h.settled("s").await, "{}", h.daemon.logs());

    for (sink, expected, name) in [
        (&h.sinks[0], &billing, "billing"),
        (&h.sinks[1], &live, "live"),
        (&h.sinks[2], &all, "all"),
    ] {
        let got = ids(sink);
        assert_eq!(got.len(), expected.len(), "{name} got duplicates or misses");
        assert_eq!(got, sorted(expected.iter().cloned()), "{name}");
        assert!(
            sink.received()
                .iter()
                .all(|r| r.header("x-hookd-destination") == name
                    && r.header("x-hookd-source") == "s"),
            "{name}"
        );
    }
    assert_eq!(h.sink.count(), 0, "the default sink is no destination here");
    let text = metrics(&h.daemon).await;
    for (name, delivered) in [
        ("billing", billing.len()),
        ("live", live.len()),
        ("all", 1000),
    ] {
        let success = format!(
            r#"hookd_deliveries_total{{source="s",destination="{name}",outcome="success"}} {delivered}"#
        );
        let filtered = format!(
            r#"hookd_deliveries_total{{source="s",destination="{name}",outcome="filtered"}} {}"#,
            1000 - delivered
        );
        assert!(text.contains(&success), "{success}\n{text}");
        assert!(text.contains(&filtered), "{filtered}\n{text}");
        assert!(text.contains(&format!(
            r#"hookd_destination_state{{source="s",destination="{name}",state="healthy"}} 1"#
        )));
    }
    // One copy per event, kept by the event log.
    assert_eq!(h.redis.stream_len("s"), 1000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_destination_does_not_delay_the_others() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], "")
        .route("b", SINKS[1], "")
        .route(
            "down",
            SINKS[2],
            r#"retry = { max_attempts = 5, base = "200ms", max = "1s", jitter = false }
breaker = { failures = 20, cooldown = "500ms", max_cooldown = "1s" }"#,
        );
    let h = Harness::builder().source(source).sinks(3).start().await;
    h.sinks[2].set_default(Answer::status(500));
    let events: Vec<_> = (0..300)
        .map(|i| (format!("evt_{i}"), event(&format!("evt_{i}"), "t", None)))
        .collect();
    let sent = send_all(&h.daemon, "s", events).await;
    for sink in &h.sinks[..2] {
        assert!(sink.wait_for(300, Duration::from_secs(20)).await);
        let mut latencies: Vec<Duration> = sink
            .received()
            .iter()
            .map(|r| r.at - sent[r.header("webhook-id")])
            .collect();
        latencies.sort();
        let p99 = latencies[latencies.len() * 99 / 100];
        assert!(p99 < Duration::from_secs(1), "healthy p99 {p99:?}");
    }
    assert!(h.redis.pending_for("s", "down") > 0 || h.redis.retrying("s") > 0);
    // The service comes back: everything reaches it, nothing was lost or
    // dead-lettered on the way.
    h.sinks[2].set_default(Answer::status(200));
    assert!(h.settled("s").await, "{}", h.daemon.logs());
    let delivered: BTreeSet<String> = h.sinks[2].ids().into_iter().collect();
    assert_eq!(delivered.len(), 300);
    assert_eq!(h.redis.dlq_len("s"), 0);
    for sink in &h.sinks[..2] {
        assert_eq!(
            sink.count(),
            300,
            "a retry reached a destination that was done"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_breaker_opens_makes_only_probes_and_closes_on_success() {
    let source = SourceSpec::standard("s", SINK).route(
        "flaky",
        SINKS[0],
        &format!(
            "{QUICK_RETRY}\nmax_in_flight = 1\nbreaker = {{ failures = 5, cooldown = \"1s\", max_cooldown = \"1s\" }}"
        ),
    );
    let mut h = Harness::builder().source(source).sinks(1).start().await;
    let sink = h.sinks[0].clone();
    sink.set_default(Answer::status(500));
    let events: Vec<_> = (0..20)
        .map(|i| (format!("evt_{i}"), event(&format!("evt_{i}"), "t", None)))
        .collect();
    send_all(&h.daemon, "s", events).await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            state_of(&h.daemon, "flaky").await == "open"
        })
        .await,
        "{}",
        h.daemon.logs()
    );
    let opened = sink.count();
    assert!(opened >= 5, "opened after {opened} attempts");
    // The process whose attempts opened it says so (its watch reads the
    // state a few times a second).
    assert!(
        h.daemon
            .logged(&["WARN", "destination breaker opened", "destination=flaky"])
            .await,
        "{}",
        h.daemon.logs()
    );
    // While open, each request is a probe, one per cooldown: the next
    // three requests come a cooldown after the one before.
    assert!(sink.wait_for(opened + 3, Duration::from_secs(10)).await);
    let got = sink.received();
    let spacing: Vec<Duration> = got[opened - 1..opened + 3]
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .collect();
    assert!(
        spacing.iter().all(|gap| *gap >= Duration::from_millis(900)),
        "requests while open came faster than the cooldown: {spacing:?}"
    );
    assert_eq!(
        h.redis.dlq_len("s"),
        0,
        "dead-lettered while the breaker was open"
    );

    // A restart keeps the breaker: the new process sees it open at once.
    h.restart_with(&h.toml()).await;
    let state = state_of(&h.daemon, "flaky").await;
    assert!(state == "open" || state == "half_open", "{state}");
    assert!(
        h.daemon
            .logged(&["destination breaker is open: no attempts until a probe succeeds"])
            .await,
        "{}",
        h.daemon.logs()
    );
    // Paused and resumed meanwhile: the breaker is still open after.
    assert_eq!(h.cli(&["destinations", "pause", "s", "flaky"]).0, 0);
    assert!(
        h.daemon
            .logged(&["destination=flaky", "state=paused"])
            .await,
        "{}",
        h.daemon.logs()
    );
    assert_eq!(h.cli(&["destinations", "resume", "s", "flaky"]).0, 0);
    assert!(
        h.daemon
            .logged(&[
                "destination resumed with its breaker open",
                "destination=flaky"
            ])
            .await,
        "{}",
        h.daemon.logs()
    );

    // The service recovers: the next probe closes the breaker and every
    // event arrives; none was dead-lettered.
    sink.set_default(Answer::status(200));
    assert!(h.settled("s").await, "{}", h.daemon.logs());
    let delivered: BTreeSet<String> = sink.ids().into_iter().collect();
    assert_eq!(delivered.len(), 20);
    assert_eq!(h.redis.dlq_len("s"), 0);
    assert_eq!(state_of(&h.daemon, "flaky").await, "healthy");
    assert!(
        h.daemon
            .logged(&["destination breaker closed: deliveries resume"])
            .await,
        "{}",
        h.daemon.logs()
    );
    // The command line shows when it last worked and last failed, and how.
    let (code, table, err) = h.cli(&["destinations", "list"]);
    assert_eq!(code, 0, "{err}");
    let header = table.lines().next().unwrap();
    let row = table.lines().find(|l| l.contains("flaky")).unwrap();
    assert!(
        header.contains("LAST SUCCESS") && header.contains("LAST FAILURE"),
        "{table}"
    );
    assert!(
        row.contains("healthy") && row.contains(" ago (500)"),
        "{table}"
    );
}

/// With the breaker on, an event whose attempts all failed while the
/// destination never succeeded is not dead-lettered (the service is down);
/// one that fails while others succeed is (it is poison).
#[tokio::test(flavor = "multi_thread")]
async fn a_down_destination_dead_letters_nothing_but_a_poison_event_is_dead_lettered() {
    let source = SourceSpec::standard("s", SINK).route(
        "svc",
        SINKS[0],
        &format!(
            "{QUICK_RETRY}\nmax_in_flight = 1\nbreaker = {{ failures = 20, cooldown = \"300ms\", max_cooldown = \"600ms\" }}"
        ),
    );
    let h = Harness::builder().source(source).sinks(1).start().await;
    let sink = &h.sinks[0];
    sink.set_default(Answer::status(503));
    assert_eq!(h.send("s", "lonely", "{}").await.status, 202);
    // Far more attempts than max_attempts, and still not dead.
    assert!(sink.wait_for(8, Duration::from_secs(20)).await);
    assert_eq!(h.redis.dlq_len("s"), 0);
    // The breaker's probes are attempts too: numbered on, never repeating
    // a number the service already saw, and counted in the event log,
    // where the event waits for its next try (not queued untried).
    let numbers: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.header("x-hookd-attempt").to_owned())
        .collect();
    let expected: Vec<String> = (1..=numbers.len()).map(|n| n.to_string()).collect();
    assert_eq!(numbers, expected);
    let listed = h.api(Method::GET, "/admin/events?id=lonely").await;
    let svc = &listed.json()["items"][0]["destinations"]["svc"];
    assert!(
        svc["attempts"].as_u64().unwrap_or(0) >= numbers.len() as u64 - 1,
        "{svc} after {} requests",
        numbers.len()
    );
    let status = svc["status"].as_str().unwrap_or("");
    assert!(status == "retrying" || status == "in_flight", "{svc}");
    sink.set_default(Answer::status(200));
    assert!(h.settled("s").await);
    assert_eq!(h.redis.dlq_len("s"), 0);

    // Now the destination works, and one event keeps failing while the
    // others get through: that event is poison.
    sink.answer_id("poison", Answer::status(500));
    assert_eq!(h.send("s", "poison", "{}").await.status, 202);
    for i in 0..5 {
        h.fence_on(sink, "s", &format!("ok_{i}")).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.redis.dlq_len("s") == 1
        })
        .await,
        "{}",
        h.daemon.logs()
    );
    assert!(h.settled("s").await);
    let attempts = sink.ids().iter().filter(|id| *id == "poison").count();
    assert_eq!(attempts, 3, "poison tried max_attempts times");
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_holds_a_destination_on_every_instance_until_resumed() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], "")
        .route("b", SINKS[1], "");
    let mut h = Harness::builder().source(source).sinks(2).start().await;
    let mut second = h.start_another().await;
    let paused = h
        .api(Method::POST, "/admin/sources/s/destinations/a/pause")
        .await;
    assert_eq!(paused.status, 200);
    assert_eq!(paused.json()["state"], "paused");
    // The contract: every instance obeys within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut events = Vec::new();
    for i in 0..40 {
        events.push((format!("evt_{i}"), event(&format!("evt_{i}"), "t", None)));
    }
    let (first_half, second_half) = events.split_at(20);
    send_all(&h.daemon, "s", first_half.to_vec()).await;
    send_all(&second, "s", second_half.to_vec()).await;
    // b goes on; the sentinel, sent last, reaches it after everything else.
    assert_eq!(send_event(&second, "s", "sentinel", "{}").await.status, 202);
    assert!(h.sinks[1].wait_for(41, Duration::from_secs(20)).await);
    assert_eq!(h.sinks[0].count(), 0, "a paused destination got deliveries");
    let a = destination(&second, "s", "a").await;
    assert_eq!(a["state"], "paused", "{a}");
    // Waiting, none in flight (a read already under way when the pause
    // came parks what it got as due retries).
    assert_eq!(a["in_flight"], 0, "{a}");
    assert_eq!(
        a["backlog"].as_u64().unwrap() + a["pending"].as_u64().unwrap(),
        41,
        "{a}"
    );
    let health = get(&second.url("/health")).await.json();
    assert_eq!(
        health["sources"]["s"]["destinations"]["a"]["state"], "paused",
        "{health}"
    );
    assert!(
        metrics(&second)
            .await
            .contains(r#"hookd_destination_state{source="s",destination="a",state="paused"} 1"#)
    );

    // Both processes restart: the pause holds.
    second.kill9();
    h.restart_with(&h.toml()).await;
    assert_eq!(state_of(&h.daemon, "a").await, "paused");
    assert!(
        h.daemon
            .logged(&[
                "destination is paused: its events wait until it is resumed",
                "destination=a"
            ])
            .await,
        "{}",
        h.daemon.logs()
    );
    h.fence_on(&h.sinks[1], "s", "after_restart").await;
    assert_eq!(h.sinks[0].count(), 0);

    // Resumed from the command line: a gets all of them, once.
    let (code, out, err) = h.cli(&["destinations", "resume", "s", "a"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(h.settled("s").await);
    assert_eq!(ids(&h.sinks[0]).len(), 42);
    assert_eq!(h.sinks[0].count(), 42);
    assert_eq!(state_of(&h.daemon, "a").await, "healthy");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_replay_reaches_only_its_destination() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], QUICK_RETRY)
        .route("b", SINKS[1], QUICK_RETRY);
    let h = Harness::builder().source(source).sinks(2).start().await;
    h.sinks[0].script([Answer::status(400)]);
    assert_eq!(h.send("s", "evt_x", "{}").await.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.redis.dlq_len("s") == 1
        })
        .await
    );
    let for_a = h.api(Method::GET, "/admin/dlq?destination=a").await.json();
    assert_eq!(for_a["items"].as_array().unwrap().len(), 1, "{for_a}");
    assert_eq!(for_a["items"][0]["destination"], "a");
    let for_b = h.api(Method::GET, "/admin/dlq?destination=b").await.json();
    assert_eq!(for_b["items"].as_array().unwrap().len(), 0, "{for_b}");
    assert_eq!(destination(&h.daemon, "s", "a").await["dlq"], 1);
    assert_eq!(destination(&h.daemon, "s", "b").await["dlq"], 0);
    let (code, out, _) = h.cli(&["dlq", "list", "--destination", "a"]);
    assert_eq!(code, 0);
    assert!(out.contains("evt_x"), "{out}");

    let dlq_id = for_a["items"][0]["id"].as_str().unwrap();
    let replay = h
        .api(Method::POST, &format!("/admin/dlq/s/{dlq_id}/replay"))
        .await;
    assert_eq!(
        replay.status,
        200,
        "{}",
        String::from_utf8_lossy(&replay.body)
    );
    assert!(h.sinks[0].wait_for(2, Duration::from_secs(10)).await);
    // Fence: b sees the sentinel after the replayed entry went past it.
    h.fence_on(&h.sinks[1], "s", "after").await;
    arrived(&h.sinks[0], "after").await;
    assert_eq!(h.sinks[1].ids(), vec!["evt_x", "after"]);
    assert_eq!(h.sinks[0].ids(), vec!["evt_x", "evt_x", "after"]);
    assert!(h.settled("s").await);
    assert_eq!(h.redis.dlq_len("s"), 0);
    // The copy's id went into the ids list like an ingested event's.
    assert_eq!(h.redis.listed_ids("s"), h.redis.stream_ids("s"));
}

#[tokio::test(flavor = "multi_thread")]
async fn destinations_come_and_go_across_restarts() {
    let v1 = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], "")
        .route("b", SINKS[1], "");
    let mut h = Harness::builder().source(v1).sinks(3).start().await;
    let (code, _, err) = h.cli(&["destinations", "pause", "s", "b"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        eventually(Duration::from_secs(2), || async {
            state_of(&h.daemon, "b").await == "paused"
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Vec<_> = (0..10)
        .map(|i| {
            let kind = if i % 2 == 0 { "keep.me" } else { "drop.me" };
            (format!("old_{i}"), event(&format!("old_{i}"), kind, None))
        })
        .collect();
    send_all(&h.daemon, "s", events).await;
    assert!(h.sinks[0].wait_for(10, Duration::from_secs(10)).await);
    assert_eq!(h.sinks[1].count(), 0);

    // b's filter and URL change while its events wait (b moves to the
    // third sink, new c takes the second); c is new. One delivery at a
    // time to b, so its events arrive in stream order and new_1, sent
    // after the waiting ones, fences them.
    let urls: Vec<String> = h.sinks.iter().map(Sink::url).collect();
    let redis_url = h.redis.url();
    let url = |i: usize| urls[i].clone();
    let routed = |routes: &[(&str, usize, &str)]| {
        let mut spec = SourceSpec::standard("s", SINK);
        for (name, sink, extra) in routes {
            spec = spec.route(name, &url(*sink), extra);
        }
        config(&redis_url, "", &[spec])
    };
    let v2 = routed(&[
        ("a", 0, ""),
        (
            "b",
            2,
            "filter = { event_types = [\"keep.*\"] }\nmax_in_flight = 1",
        ),
        ("c", 1, ""),
    ]);
    h.restart_with(&v2).await;
    let (code, _, err) = h.cli(&["destinations", "resume", "s", "b"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        h.send("s", "new_1", &event("new_1", "keep.new", None))
            .await
            .status,
        202
    );
    arrived(&h.sinks[1], "new_1").await;
    arrived(&h.sinks[2], "new_1").await;
    let keep: Vec<String> = (0..10).step_by(2).map(|i| format!("old_{i}")).collect();
    let mut expected_b = keep.clone();
    expected_b.push("new_1".into());
    assert_eq!(
        ids(&h.sinks[2]),
        sorted(expected_b),
        "the new filter and URL apply to waiting events"
    );
    assert_eq!(
        h.sinks[1].ids(),
        vec!["new_1"],
        "a new destination starts with new events (and b's old URL got nothing)"
    );

    // c is paused with events waiting, then removed from the config: its
    // group and its events stay until forgotten.
    let (code, _, _) = h.cli(&["destinations", "pause", "s", "c"]);
    assert_eq!(code, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Vec<_> = (0..5)
        .map(|i| {
            (
                format!("late_{i}"),
                event(&format!("late_{i}"), "keep.me", None),
            )
        })
        .collect();
    send_all(&h.daemon, "s", events).await;
    assert_eq!(
        h.send("s", "new_2", &event("new_2", "keep.new", None))
            .await
            .status,
        202
    );
    arrived(&h.sinks[2], "new_2").await;
    let v3 = routed(&[("a", 0, ""), ("b", 2, "")]);
    h.restart_with(&v3).await;
    assert!(
        h.daemon.logged(&["destination no longer configured"]).await,
        "{}",
        h.daemon.logs()
    );
    assert!(h.daemon.logs().contains("destinations forget s c"));
    let groups: Vec<String> = h.redis.groups("s").into_iter().map(|(g, _)| g).collect();
    assert!(groups.contains(&"c".to_string()), "{groups:?}");
    assert!(h.redis.stream_len("s") >= 6, "c's events were dropped");
    // --force: the stopped instance's consumer may have read c moments ago.
    let (code, out, err) = h.cli(&["destinations", "forget", "s", "c", "--force"]);
    assert_eq!(code, 0, "{out}{err}");
    let groups: Vec<String> = h.redis.groups("s").into_iter().map(|(g, _)| g).collect();
    assert_eq!(
        groups.iter().collect::<BTreeSet<_>>(),
        ["a", "b"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect()
    );
    assert!(h.redis.keys("hookd:{s}:d:c:*").is_empty());
    assert!(h.settled("s").await, "c's events are still waiting");
    assert_eq!(h.sinks[1].ids(), vec!["new_1"]);
}

/// A rolling configuration change: an instance whose configuration does
/// not name a destination (not yet, or not any more) leaves that
/// destination's consumer group alone while another instance reads it, so
/// none of its events is lost; once nothing reads it, it goes.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_lacking_a_destination_leaves_its_group_while_another_reads_it() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], "")
        .route("c", SINKS[1], "");
    let mut h = Harness::builder().source(source).sinks(2).start().await;
    h.fence_on(&h.sinks[1], "s", "first").await;
    let older = [SourceSpec::standard("s", SINK).route("a", &h.sinks[0].url(), "")];
    let older = config(&h.redis.url(), "", &older);
    let lacking = Daemon::start_ready(&older).await;
    // In use, or holding an acknowledgement still on its way: kept either
    // way.
    assert!(
        lacking
            .logged(&["destination no longer configured here", "destination=c"])
            .await,
        "{}",
        lacking.logs()
    );
    assert!(
        !lacking.logs().contains("removed the idle"),
        "{}",
        lacking.logs()
    );
    // An operator on the older configuration cannot forget it by mistake.
    let dir = tempfile::tempdir().unwrap();
    let older_path = dir.path().join("older.toml");
    std::fs::write(&older_path, &older).unwrap();
    let older_path = older_path.to_str().unwrap();
    let (code, _, err) = hookd(
        &["destinations", "forget", "s", "c", "--config", older_path],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("within worker.claim_idle") && err.contains("--force"),
        "{err}"
    );
    let events: Vec<_> = (0..50)
        .map(|i| (format!("via_older_{i}"), format!("{{\"n\":{i}}}")))
        .collect();
    send_all(&lacking, "s", events).await;
    assert!(
        h.sinks[1].wait_for(51, Duration::from_secs(15)).await,
        "c got {} of 51",
        h.sinks[1].ids().len()
    );
    // Once the instance that reads c is gone (and c holds nothing), the
    // instance lacking it removes the group.
    h.daemon.signal("TERM");
    assert!(h.daemon.wait_exit(Duration::from_secs(15)).await.success());
    assert!(
        lacking
            .logged(&["removed the idle consumer group", "destination=c"])
            .await,
        "{}",
        lacking.logs()
    );
}

/// The same with the destination paused where it is configured (so nobody
/// reads it): the instance lacking it keeps its group, and the events
/// ingested meanwhile reach it once it is resumed.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_lacking_a_paused_destination_keeps_its_group() {
    const QUICK_CLAIM: &str = "[worker]\nclaim_idle = \"2s\"\n";
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], r#"timeout = "1s""#)
        .route("c", SINKS[1], r#"timeout = "1s""#);
    let h = Harness::builder()
        .source(source)
        .sinks(2)
        .toml(QUICK_CLAIM)
        .start()
        .await;
    h.fence_on(&h.sinks[1], "s", "first").await;
    let (code, _, err) = h.cli(&["destinations", "pause", "s", "c"]);
    assert_eq!(code, 0, "{err}");
    // Longer than claim_idle: c's reader no longer counts as reading.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let older =
        [SourceSpec::standard("s", SINK).route("a", &h.sinks[0].url(), r#"timeout = "1s""#)];
    let lacking = Daemon::start_ready(&config(&h.redis.url(), QUICK_CLAIM, &older)).await;
    assert!(
        lacking
            .logged(&[
                "destination no longer configured here is in use",
                "destination=c"
            ])
            .await,
        "{}",
        lacking.logs()
    );
    let events: Vec<_> = (0..20)
        .map(|i| (format!("while_paused_{i}"), format!("{{\"n\":{i}}}")))
        .collect();
    send_all(&lacking, "s", events).await;
    let (code, _, err) = h.cli(&["destinations", "resume", "s", "c"]);
    assert_eq!(code, 0, "{err}");
    h.fence_on(&h.sinks[1], "s", "last").await;
    assert_eq!(h.sinks[1].ids().len(), 22, "{:?}", h.sinks[1].ids());
    assert!(
        !lacking.logs().contains("removed the idle"),
        "{}",
        lacking.logs()
    );
}

/// hookd reads only the sources it is configured with: a source removed
/// while it still had events to deliver is reported at startup (its events
/// stay in Redis); one with nothing left to deliver is not.
#[tokio::test(flavor = "multi_thread")]
async fn a_removed_source_with_undelivered_events_is_reported() {
    let mut h = Harness::builder()
        .source(SourceSpec::standard("kept", SINK))
        .source(SourceSpec::standard("a-done", SINK))
        .source(SourceSpec::standard("z-stuck", &dead_url()))
        .start()
        .await;
    h.fence("a-done", "done_1").await;
    assert_eq!(h.send("z-stuck", "stuck_1", "{}").await.status, 202);
    let kept = [SourceSpec::standard("kept", &h.sink.url())];
    h.restart_with(&config(&h.redis.url(), "", &kept)).await;
    // Sources are looked at in name order: once z-stuck is reported,
    // a-done was looked at too.
    assert!(
        h.daemon
            .logged(&["source no longer configured", "z-stuck", "default (backlog"])
            .await,
        "{}",
        h.daemon.logs()
    );
    assert!(!h.daemon.logs().contains("a-done"), "{}", h.daemon.logs());
    assert_eq!(h.redis.stream_len("z-stuck"), 1, "its event was dropped");
    h.fence("kept", "kept_1").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn static_headers_are_sent_and_their_secrets_shown_nowhere() {
    const TOKEN: &str = "Bearer tok-route-s3cret";
    let source = SourceSpec::standard("s", SINK).route(
        "billing",
        SINKS[0],
        r#"headers = { Authorization = "env:BILLING_TOKEN", "X-Team" = "billing" }"#,
    );
    let h = Harness::builder()
        .source(source)
        .sinks(1)
        .env("BILLING_TOKEN", TOKEN)
        .start()
        .await;
    h.fence_on(&h.sinks[0], "s", "evt_1").await;
    let got = &h.sinks[0].received()[0];
    assert_eq!(got.header("authorization"), TOKEN);
    assert_eq!(got.header("x-team"), "billing");
    assert_eq!(got.header("x-hookd-destination"), "billing");

    let shown = [
        String::from_utf8_lossy(&h.api(Method::GET, "/admin/sources").await.body).into_owned(),
        String::from_utf8_lossy(&get(&h.daemon.url("/health")).await.body).into_owned(),
        metrics(&h.daemon).await,
        h.cli(&["destinations", "list"]).1,
        h.cli(&["destinations", "list", "--json"]).1,
        {
            let (_, out, err) = hookd(
                &["check-config", "--config", h.config_path.to_str().unwrap()],
                &[("BILLING_TOKEN", TOKEN)],
            );
            out + &err
        },
        h.daemon.logs(),
    ];
    for text in &shown {
        assert!(!text.contains("tok-route-s3cret"), "secret shown:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_a_destination_url_go_out_as_basic_auth_and_are_shown_nowhere() {
    // As curl sends them: user "hook-user", password "p@ss:w0rd-s3cret".
    let url = format!("http://hook-user:p%40ss:w0rd-s3cret@{SINK_HOST}/hook?code=fn-key-s3cret");
    let h = Harness::builder()
        .source(SourceSpec::standard("s", &url))
        .start()
        .await;
    h.fence("s", "evt_1").await;
    let got = &h.sink.received()[0];
    // base64("hook-user:p@ss:w0rd-s3cret")
    assert_eq!(
        got.header("authorization"),
        "Basic aG9vay11c2VyOnBAc3M6dzByZC1zM2NyZXQ="
    );
    assert_eq!(got.target, "/hook?code=fn-key-s3cret");

    let sources = h.api(Method::GET, "/admin/sources").await.json();
    let shown_url = sources["sources"][0]["destinations"][0]["url"].clone();
    assert_eq!(
        shown_url,
        format!("http://[redacted]@{}/hook?code=[redacted]", h.sink.addr)
    );
    let shown = [
        sources.to_string(),
        String::from_utf8_lossy(&get(&h.daemon.admin_url("/")).await.body).into_owned(),
        h.cli(&["destinations", "list"]).1,
        h.cli(&["destinations", "list", "--json"]).1,
        {
            let (_, out, err) = hookd(
                &["check-config", "--config", h.config_path.to_str().unwrap()],
                &[],
            );
            out + &err
        },
        h.daemon.logs(),
    ];
    for text in &shown {
        assert!(!text.contains("s3cret"), "credentials shown:\n{text}");
        assert!(!text.contains("hook-user"), "credentials shown:\n{text}");
    }

    // A URL whose path is the key (Slack's, Discord's), given by reference:
    // delivered to in full, shown as its host only.
    let private = Sink::start().await;
    let by_reference = Harness::builder()
        .source(SourceSpec::standard("s", "env:HOOKD_TEST_HOOK_URL"))
        .env(
            "HOOKD_TEST_HOOK_URL",
            &format!("http://{}/services/T0/B0/path-s3cret", private.addr),
        )
        .start()
        .await;
    by_reference.fence_on(&private, "s", "evt_2").await;
    assert_eq!(private.received()[0].target, "/services/T0/B0/path-s3cret");
    let sources = by_reference.api(Method::GET, "/admin/sources").await.json();
    assert_eq!(
        sources["sources"][0]["destinations"][0]["url"],
        format!("http://{}/[redacted]", private.addr)
    );
    let (code, listed, _) = by_reference.cli(&["destinations", "list"]);
    assert_eq!(code, 0, "{listed}");
    assert!(
        listed.contains(&format!("http://{}/[redacted]", private.addr)),
        "{listed}"
    );
    for text in [sources.to_string(), listed, by_reference.daemon.logs()] {
        assert!(!text.contains("s3cret"), "the URL's path shown:\n{text}");
    }

    // Credentials in the URL and an Authorization header: one must go.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    let spec = SourceSpec::standard("s", "http://u:pw-s3cret@127.0.0.1:9/x")
        .with(r#"headers = { Authorization = "Bearer t" }"#);
    std::fs::write(&path, config("redis://127.0.0.1:1", "", &[spec])).unwrap();
    let (code, out, err) = hookd(&["check-config", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("sources[0].destinations[0].headers.Authorization cannot be set"),
        "{err}"
    );
    assert!(!(out + &err).contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn route_config_errors_name_the_key_and_never_the_secret() {
    let redis_url = "redis://127.0.0.1:1";
    let check = |routes: &[(&str, &str)], env: &[(&str, &str)]| {
        let mut spec = SourceSpec::standard("s", SINK);
        for (name, extra) in routes {
            spec = spec.route(name, "http://127.0.0.1:9/x", extra);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, config(redis_url, "", &[spec])).unwrap();
        let (code, out, err) = hookd(&["check-config", "--config", path.to_str().unwrap()], env);
        assert_ne!(code, 0, "accepted: {routes:?}");
        out + &err
    };
    let cases: [(&[(&str, &str)], &str); 8] = [
        (&[("a", ""), ("a", "")], "sources[0].destinations[1].name"),
        (&[("bad name!", "")], "sources[0].destinations[0].name"),
        (
            &[("a", r#"filter = { event_types = ["[oops"] }"#)],
            "sources[0].destinations[0].filter.event_types",
        ),
        (
            &[("a", r#"filter = { match = { "no-slash" = 1 } }"#)],
            "sources[0].destinations[0].filter.match",
        ),
        (
            &[("a", r#"headers = { "Bad Header" = "x" }"#)],
            "sources[0].destinations[0].headers",
        ),
        (
            &[("a", r#"headers = { "X-Ok" = "env:ROUTE_HDR" }"#)],
            "sources[0].destinations[0].headers",
        ),
        // Headers that frame the request, or that hookd writes itself.
        (
            &[("a", r#"headers = { "Content-Length" = "5" }"#)],
            "sources[0].destinations[0].headers.Content-Length cannot be set",
        ),
        (
            &[("a", r#"headers = { "X-Hookd-Attempt" = "1" }"#)],
            "sources[0].destinations[0].headers.X-Hookd-Attempt cannot be set",
        ),
    ];
    for (routes, key) in cases {
        let text = check(routes, &[("ROUTE_HDR", "line1\nsecret-line2")]);
        assert!(text.contains(key), "{key} not named:\n{text}");
        assert!(!text.contains("secret-line2"), "{text}");
    }
    // Both forms at once is an error too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookd.toml");
    let mut spec =
        SourceSpec::standard("s", "http://127.0.0.1:9/x").route("a", "http://127.0.0.1:9/y", "");
    spec.routes[0].extra = String::new();
    let toml = config(redis_url, "", &[spec]).replace(
        "[[sources.destinations]]",
        "[sources.destination]\nurl = \"http://127.0.0.1:9/z\"\n[[sources.destinations]]",
    );
    std::fs::write(&path, toml).unwrap();
    let (code, out, err) = hookd(&["check-config", "--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("sources[0]"), "{err}");
}
