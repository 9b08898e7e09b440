//! The event log: every event searchable with each destination's status
//! and attempts, kept as `history` says (never while unfinished),
//! replayable to one destination or all, and counted per minute.

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use serde_json::Value;

use crate::routes::{QUICK_RETRY, arrived, event, send_all};
use crate::support::*;

pub(crate) async fn events(h: &Harness, query: &str) -> Value {
    let reply = h.api(Method::GET, &format!("/admin/events?{query}")).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

pub(crate) fn event_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of a listing, following the cursors.
async fn all_pages(h: &Harness, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let page = events(h, &format!("{query}&cursor={cursor}")).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return items,
        }
    }
    panic!("cursors never end");
}

/// Waits until the monitor has run a retention pass over source `s`:
/// source `t` (listed after it, keeping one event) is trimmed in the same
/// pass, so once `t` holds one event, `s` has been trimmed too.
async fn trimmed_once(h: &Harness) {
    for i in 0..3 {
        assert_eq!(
            h.send("t", &format!("t_{i}_{}", rand_suffix()), "{}")
                .await
                .status,
            202
        );
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.redis.settled("t") && h.redis.stream_len("t") == 1
        })
        .await,
        "no retention pass"
    );
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn fence_source() -> SourceSpec {
    SourceSpec::standard("t", SINK).source_with("history = { max_events = 1 }")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_is_logged_with_each_destinations_status_and_attempts() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], r#"filter = { event_types = ["keep.*"] }"#)
        .route("b", SINKS[1], QUICK_RETRY);
    let h = Harness::builder().source(source).sinks(2).start().await;
    // evt_0 fails once at b, then everything gets through.
    h.sinks[1].script([Answer::status(503)]);
    let body0 = event("evt_0", "keep.first", None);
    let sent = h
        .send_with(
            "s",
            "evt_0",
            &body0,
            &[("authorization", "Bearer log-s3cret")],
        )
        .await;
    assert_eq!(sent.status, 202);
    assert!(h.sinks[1].wait_for(2, Duration::from_secs(10)).await);
    let more: Vec<_> = (1..10)
        .map(|i| {
            let kind = if i % 2 == 0 { "keep.it" } else { "drop.it" };
            (format!("evt_{i}"), event(&format!("evt_{i}"), kind, None))
        })
        .collect();
    send_all(&h.daemon, "s", more).await;
    assert!(h.settled("s").await);

    // Newest first, every event once, each destination's status.
    let page = events(&h, "source=s").await;
    let ids = event_ids(&page);
    let expected: Vec<String> = (0..10).rev().map(|i| format!("evt_{i}")).collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>(),
        expected.iter().collect::<BTreeSet<_>>()
    );
    let entry_ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["entry_id"].as_str().unwrap())
        .collect();
    let mut sorted = entry_ids.clone();
    sorted.sort_by_key(|id| {
        std::cmp::Reverse(
            id.split_once('-')
                .map(|(m, s)| (m.parse::<u64>().unwrap(), s.parse::<u64>().unwrap())),
        )
    });
    assert_eq!(entry_ids, sorted, "not newest first");
    let first = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "evt_0")
        .unwrap()
        .clone();
    assert_eq!(first["type"], "keep.first");
    assert_eq!(first["size"], body0.len());
    assert_eq!(first["destinations"]["a"]["status"], "delivered");
    assert_eq!(first["destinations"]["a"]["attempts"], 1);
    assert_eq!(first["destinations"]["b"]["status"], "delivered");
    assert_eq!(first["destinations"]["b"]["attempts"], 2);
    let dropped = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "evt_1")
        .unwrap()
        .clone();
    assert_eq!(dropped["destinations"]["a"]["status"], "filtered");
    assert_eq!(dropped["destinations"]["b"]["status"], "delivered");

    // One event in full: body, headers with the secret redacted, every
    // attempt per destination.
    let entry = first["entry_id"].as_str().unwrap();
    let detail = h
        .api(Method::GET, &format!("/admin/events/s/{entry}"))
        .await;
    assert_eq!(detail.status, 200);
    let text = String::from_utf8_lossy(&detail.body).into_owned();
    assert!(!text.contains("log-s3cret"), "{text}");
    let detail = detail.json();
    assert_eq!(detail["body"], body0);
    assert_eq!(detail["content_type"], "application/json");
    let authorization = detail["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .unwrap()
        .clone();
    assert_eq!(authorization[1], "[redacted]");
    let attempts = detail["destinations"]["b"]["attempts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(attempts.len(), 2, "{detail}");
    assert_eq!(attempts[0]["status"], 503);
    assert_eq!(attempts[1]["status"], 200);
    assert!(
        attempts
            .iter()
            .all(|a| a["duration_ms"].is_u64() && a["at_ms"].is_u64())
    );
    assert_eq!(detail["destinations"]["a"]["status"], "delivered");

    // Filters: status per destination, type, provider id, time range.
    let filtered = events(&h, "status=filtered&destination=a").await;
    assert_eq!(
        event_ids(&filtered).into_iter().collect::<BTreeSet<_>>(),
        (1..10).step_by(2).map(|i| format!("evt_{i}")).collect()
    );
    assert_eq!(
        event_ids(&events(&h, "event_type=keep.first").await),
        vec!["evt_0"]
    );
    assert_eq!(event_ids(&events(&h, "id=evt_7").await), vec!["evt_7"]);
    assert!(event_ids(&events(&h, "id=nope").await).is_empty());
    assert!(event_ids(&events(&h, "status=retrying").await).is_empty());
    let received = first["received_ms"].as_u64().unwrap();
    let before = events(&h, &format!("until={}", received - 1)).await;
    assert!(event_ids(&before).is_empty(), "{before}");
    let from = events(&h, &format!("since={received}")).await;
    assert_eq!(event_ids(&from).len(), 10);
    // Times as people write them: with an offset, without seconds, a date.
    for (query, found) in [
        ("since=1970-01-01T01:00:00%2B01:00", 10),
        ("until=1970-01-01T01:00%2B01:00", 0),
        ("until=2999-01-01", 10),
        ("since=2999-01-01T00:00", 0),
    ] {
        assert_eq!(event_ids(&events(&h, query).await).len(), found, "{query}");
    }

    // Paging: every event exactly once.
    let paged = all_pages(&h, "limit=3").await;
    let paged_ids: Vec<&str> = paged.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(paged_ids.len(), 10, "{paged_ids:?}");
    assert_eq!(paged_ids.iter().collect::<BTreeSet<_>>().len(), 10);

    // Bad filters.
    for (query, status) in [
        ("status=lost", 400),
        ("source=nope", 404),
        ("destination=nope", 404),
        ("since=yesterday", 400),
        ("cursor=garbage", 400),
    ] {
        let reply = h.api(Method::GET, &format!("/admin/events?{query}")).await;
        assert_eq!(reply.status, status, "{query}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unfinished_events_stay_in_the_log_whatever_the_retention() {
    let source = SourceSpec::standard("s", SINK)
        .source_with("history = { max_events = 5 }")
        .route("a", SINKS[0], "")
        .route("b", SINKS[1], "")
        .route(
            "c",
            SINKS[2],
            r#"retry = { max_attempts = 5, base = "1h", max = "1h", jitter = false }
breaker = { failures = 0 }"#,
        );
    let h = Harness::builder()
        .source(source)
        .source(fence_source())
        .sinks(3)
        .start()
        .await;
    h.sinks[2].set_default(Answer::status(500));
    let (code, _, err) = h.cli(&["destinations", "pause", "s", "a"]);
    assert_eq!(code, 0, "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent: Vec<_> = (0..20)
        .map(|i| (format!("evt_{i}"), event(&format!("evt_{i}"), "t", None)))
        .collect();
    send_all(&h.daemon, "s", sent).await;
    assert!(h.sinks[1].wait_for(20, Duration::from_secs(10)).await);
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.redis.retrying("s") == 20
        })
        .await
    );
    trimmed_once(&h).await;
    assert_eq!(
        h.redis.stream_len("s"),
        20,
        "an unfinished event was trimmed"
    );
    let paused = all_pages(&h, "status=paused&destination=a").await;
    assert_eq!(paused.len(), 20);
    let retrying = all_pages(&h, "status=retrying&destination=c").await;
    assert_eq!(retrying.len(), 20);
    let delivered = all_pages(&h, "status=delivered&destination=b").await;
    assert_eq!(delivered.len(), 20);
    assert_eq!(retrying[0]["destinations"]["c"]["attempts"], 1);
}

/// Source `s` with `history`, delivering every event to `a` and to `c`,
/// whose retries wait an hour: an event failing at c stays unfinished.
fn delivering_to_a_and_c(history: &str) -> SourceSpec {
    SourceSpec::standard("s", SINK)
        .source_with(history)
        .route("a", SINKS[0], "")
        .route(
            "c",
            SINKS[1],
            r#"retry = { max_attempts = 5, base = "1h", max = "1h", jitter = false }
breaker = { failures = 0 }"#,
        )
}

/// Sends evt_0 to `s`, which c fails: it waits for its retry, unfinished.
async fn evt_0_waits_for_a_retry_at_c(h: &Harness) {
    h.sinks[1].answer_id("evt_0", Answer::status(500));
    assert_eq!(h.send("s", "evt_0", "{}").await.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.redis.retrying("s") == 1
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_events_leave_the_log_by_count_and_by_age() {
    let by_count = delivering_to_a_and_c("history = { max_events = 5 }");
    let by_age = SourceSpec::standard("old", SINK)
        .source_with(r#"history = { max_events = 1000, max_age = "1s" }"#);
    let h = Harness::builder()
        .source(by_count)
        .source(by_age)
        .source(fence_source())
        .sinks(2)
        .start()
        .await;
    // The oldest event stays unfinished for c; every later one finishes.
    evt_0_waits_for_a_retry_at_c(&h).await;
    // One at a time: the stream's order is the ids' order.
    for i in 1..20 {
        let id = format!("evt_{i}");
        assert_eq!(h.send("s", &id, &event(&id, "t", None)).await.status, 202);
    }
    for i in 0..3 {
        assert_eq!(h.send("old", &format!("old_{i}"), "{}").await.status, 202);
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            h.redis.stream_len("s") == 6 && h.redis.stream_len("old") == 0
        })
        .await,
        "s holds {}, old holds {}",
        h.redis.stream_len("s"),
        h.redis.stream_len("old"),
    );
    let kept: BTreeSet<String> = all_pages(&h, "source=s")
        .await
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = ["evt_0", "evt_15", "evt_16", "evt_17", "evt_18", "evt_19"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(kept, expected, "the unfinished event and the 5 newest stay");
    // The trimmed events' attempt records went with them.
    assert_eq!(h.redis.int(&["HLEN", "hookd:{s}:d:a:attempts"]), 6);
    assert_eq!(h.redis.int(&["HLEN", "hookd:{s}:d:c:attempts"]), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn finished_events_behind_an_unfinished_one_leave_the_log_by_age() {
    let source = delivering_to_a_and_c(r#"history = { max_events = 1000, max_age = "1s" }"#);
    let h = Harness::builder().source(source).sinks(2).start().await;
    // The oldest event stays unfinished for c, so the ones behind it are
    // not at the head: they go one by one once older than max_age.
    evt_0_waits_for_a_retry_at_c(&h).await;
    for i in 1..6 {
        let id = format!("evt_{i}");
        assert_eq!(h.send("s", &id, &event(&id, "t", None)).await.status, 202);
    }
    assert!(
        eventually(Duration::from_secs(15), || async {
            h.redis.stream_len("s") == 1
        })
        .await,
        "s holds {}",
        h.redis.stream_len("s"),
    );
    let kept = all_pages(&h, "source=s").await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["id"], "evt_0");
    assert_eq!(kept[0]["destinations"]["c"]["status"], "retrying");
    assert_eq!(h.redis.int(&["HLEN", "hookd:{s}:d:a:attempts"]), 1);
    assert_eq!(h.redis.int(&["HLEN", "hookd:{s}:d:c:attempts"]), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_from_the_log_reaches_one_destination_or_all() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], "")
        .route("b", SINKS[1], "");
    let h = Harness::builder().source(source).sinks(2).start().await;
    h.fence_on(&h.sinks[0], "s", "evt_1").await;
    arrived(&h.sinks[1], "evt_1").await;
    assert!(h.settled("s").await);
    let entry = events(&h, "id=evt_1").await["items"][0]["entry_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // To a alone: b never sees it again.
    let replay = h
        .api(
            Method::POST,
            &format!("/admin/events/s/{entry}/replay?destination=a"),
        )
        .await;
    assert_eq!(
        replay.status,
        200,
        "{}",
        String::from_utf8_lossy(&replay.body)
    );
    let copy = replay.json()["copy"].as_str().unwrap().to_owned();
    // The copy reaches a before the fence goes out (deliveries run side
    // by side, so a fence sent at once could overtake it).
    assert!(h.sinks[0].wait_for(2, Duration::from_secs(10)).await);
    h.fence_on(&h.sinks[1], "s", "fence_1").await;
    arrived(&h.sinks[0], "fence_1").await;
    assert_eq!(h.sinks[0].ids(), vec!["evt_1", "evt_1", "fence_1"]);
    assert_eq!(h.sinks[1].ids(), vec!["evt_1", "fence_1"]);
    let again = h.sinks[0].received()[1].clone();
    assert_eq!(again.header("x-hookd-attempt"), "1");
    let copy_detail = h
        .api(Method::GET, &format!("/admin/events/s/{copy}"))
        .await
        .json();
    assert_eq!(copy_detail["replay_of"], entry.as_str());
    assert_eq!(copy_detail["to"], "a");
    assert!(
        copy_detail["destinations"].get("b").is_none(),
        "{copy_detail}"
    );

    // To every destination.
    let replay = h
        .api(Method::POST, &format!("/admin/events/s/{entry}/replay"))
        .await;
    assert_eq!(replay.status, 200);
    assert!(h.sinks[1].wait_for(3, Duration::from_secs(10)).await);
    assert!(h.sinks[0].wait_for(4, Duration::from_secs(10)).await);
    // The copies' ids went into the ids list like an ingested event's.
    assert_eq!(h.redis.listed_ids("s"), h.redis.stream_ids("s"));

    // Refusals.
    let unknown = h
        .api(
            Method::POST,
            &format!("/admin/events/s/{entry}/replay?destination=nope"),
        )
        .await;
    assert_eq!(unknown.status, 404);
    let gone = h.api(Method::POST, "/admin/events/s/1-0/replay").await;
    assert_eq!(gone.status, 404);
    let get = h
        .api(Method::GET, &format!("/admin/events/s/{entry}/replay"))
        .await;
    assert_eq!(get.status, 405);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_replay_acts_on_every_match_and_counts_events() {
    let source = SourceSpec::standard("s", SINK)
        .route("a", SINKS[0], "")
        .route("b", SINKS[1], "");
    let h = Harness::builder().source(source).sinks(2).start().await;
    // More matches than a page holds.
    let sent: Vec<_> = (0..1200)
        .map(|i| {
            (
                format!("evt_{i}"),
                event(&format!("evt_{i}"), "order.paid", None),
            )
        })
        .collect();
    send_all(&h.daemon, "s", sent).await;
    let other: Vec<_> = (0..5)
        .map(|i| {
            (
                format!("other_{i}"),
                event(&format!("other_{i}"), "order.refunded", None),
            )
        })
        .collect();
    send_all(&h.daemon, "s", other).await;
    assert!(h.settled("s").await);
    assert!(h.sinks[1].wait_for(1205, Duration::from_secs(30)).await);

    let dry = h
        .api(
            Method::POST,
            "/admin/events/replay?event_type=order.paid&status=delivered&dry_run=true",
        )
        .await
        .json();
    assert_eq!(
        dry["matched"], 1200,
        "events, not event × destination: {dry}"
    );
    assert_eq!(dry["replayed"], 0);
    assert_eq!(dry["dry_run"], true);
    let (code, out, err) = h.cli(&[
        "events",
        "replay",
        "--all",
        "--event",
        "order.paid",
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1200 event(s) match"), "{out}");
    assert_eq!(h.sinks[0].count(), 1205, "a dry run delivered");

    let done = h
        .api(
            Method::POST,
            "/admin/events/replay?event_type=order.paid&destination=b",
        )
        .await
        .json();
    assert_eq!(done["matched"], 1200, "{done}");
    assert_eq!(done["replayed"], 1200);
    assert!(h.sinks[1].wait_for(2405, Duration::from_secs(30)).await);
    h.fence_on(&h.sinks[0], "s", "fence").await;
    assert_eq!(h.sinks[0].count(), 1206, "a replay to b reached a");
    let per_id: BTreeSet<String> = h.sinks[1].ids().into_iter().collect();
    assert_eq!(per_id.len(), 1206);
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_every_minute_across_instances() {
    // Breaker off for picky: with it on, evt_1's failures could make an
    // unbroken streak (every other event already delivered) and the event
    // would wait for the breaker instead of being dead-lettered.
    let picky = format!(
        "{QUICK_RETRY}\nbreaker = {{ failures = 0, cooldown = \"30s\", max_cooldown = \"10m\" }}"
    );
    let source = SourceSpec::standard("s", SINK)
        .route("ok", SINKS[0], "")
        .route("picky", SINKS[1], &picky);
    let h = Harness::builder().source(source).sinks(2).start().await;
    let second = h.start_another().await;
    h.sinks[1].answer_id("evt_0", Answer::status(400));
    h.sinks[1].answer_id("evt_1", Answer::status(503));
    let sent: Vec<_> = (0..10)
        .map(|i| (format!("evt_{i}"), event(&format!("evt_{i}"), "t", None)))
        .collect();
    let (one, two) = sent.split_at(5);
    send_all(&h.daemon, "s", one.to_vec()).await;
    send_all(&second, "s", two.to_vec()).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            h.redis.dlq_len("s") == 2
        })
        .await
    );
    assert!(h.settled("s").await);
    let stats = h.api(Method::GET, "/admin/stats?source=s&minutes=5").await;
    assert_eq!(stats.status, 200);
    let stats = stats.json();
    let points = stats["points"].as_array().unwrap();
    assert_eq!(points.len(), 5);
    let at: Vec<u64> = points
        .iter()
        .map(|p| p["at_ms"].as_u64().unwrap())
        .collect();
    assert!(
        at.windows(2).all(|w| w[1] == w[0] + 60_000),
        "oldest first: {at:?}"
    );
    let sum = |field: &str| {
        points
            .iter()
            .map(|p| p[field].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(sum("accepted"), 10);
    // ok delivers 10; picky delivers 8 and dead-letters evt_0 (rejected)
    // and evt_1 (3 failed attempts).
    assert_eq!(sum("delivered"), 18);
    assert_eq!(sum("dead"), 2);
    assert_eq!(sum("failed"), 4);
    let busy = points
        .iter()
        .find(|p| p["delivered"].as_u64().unwrap() > 0)
        .unwrap();
    assert!(busy["p50_ms"].is_u64() && busy["p99_ms"].is_u64(), "{busy}");
    for bad in ["minutes=0", "minutes=1441", "source=nope"] {
        let reply = h.api(Method::GET, &format!("/admin/stats?{bad}")).await;
        assert_ne!(reply.status, 200, "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_events_command_line() {
    let h = Harness::start().await;
    h.fence("s", "evt_cli").await;
    assert!(h.settled("s").await);
    let (code, out, err) = h.cli(&["events", "list", "--status", "delivered"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("evt_cli") && out.contains("default:delivered"),
        "{out}"
    );
    // Columns line up under their titles.
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    let row = lines.find(|l| l.contains("evt_cli")).unwrap();
    assert_eq!(
        header.find("DESTINATIONS"),
        row.find("default:delivered"),
        "{out}"
    );
    let (code, out, _) = h.cli(&["events", "list", "--id", "evt_cli", "--json"]);
    assert_eq!(code, 0);
    let page: Value = serde_json::from_str(&out).unwrap();
    let entry = page["items"][0]["entry_id"].as_str().unwrap().to_owned();
    let (code, out, err) = h.cli(&["events", "show", &entry]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("destination default: delivered") && out.contains("attempt 1"),
        "{out}"
    );
    let (code, out, err) = h.cli(&["events", "replay", &entry]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed"), "{out}");
    assert!(h.sink.wait_for(2, Duration::from_secs(10)).await);
    let (code, _, err) = h.cli(&["events", "list", "--status", "lost"]);
    assert_ne!(code, 0);
    assert!(err.contains("status must be one of"), "{err}");
    let (code, _, err) = h.cli(&["events", "show", "not-an-id"]);
    assert_ne!(code, 0);
    assert!(err.contains("entry id"), "{err}");
}

/// A bulk replay goes on to its end when its client stops waiting (the
/// request is dropped with its connection), and the log says what it did.
#[tokio::test(flavor = "multi_thread")]
async fn a_bulk_replay_finishes_when_its_client_leaves() {
    let h = Harness::start().await;
    let mut load = crate::load::Load::new(&h.daemon.url(""), "s", 5000);
    load.concurrency = 64;
    assert_eq!(load.run().await.accepted.len(), 5000);
    assert!(h.sink.wait_for(5000, Duration::from_secs(60)).await);
    assert!(h.settled("s").await);

    let admin = h.daemon.admin_url("");
    let addr = admin.trim_start_matches("http://").trim_end_matches('/');
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let ask = format!(
        "POST /admin/events/replay?source=s HTTP/1.1\r\nHost: {addr}\r\nX-Hookd-Request: 1\r\nContent-Length: 0\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut client, ask.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(client);
    let count_then = h.sink.count();
    assert!(
        count_then < 9000,
        "the replay was nearly done before the client left ({count_then} deliveries): nothing tested"
    );
    assert!(
        h.sink.wait_for(10_000, Duration::from_secs(60)).await,
        "the replay stopped with its client: {} of 10000 deliveries",
        h.sink.count()
    );
    assert!(
        h.daemon
            .logged(&["bulk event replay", "matched=5000", "replayed=5000"])
            .await,
        "{}",
        h.daemon.logs()
    );
}
