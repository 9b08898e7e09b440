//! The event log's retention finds the stream's oldest entries in the
//! source's ids list instead of reading the events. What the log keeps
//! must not depend on it: entries the list lacks (written before it
//! existed) go like the others, and a list left behind by a lost stream
//! is not trusted. A source without a log lists no ids at all.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::events::{event_ids, events};
use crate::support::*;

const STREAM: &str = "hookd:{s}:stream";

fn source(max_events: u32) -> SourceSpec {
    SourceSpec::standard("s", SINK)
        .source_with(&format!("history = {{ max_events = {max_events} }}"))
}

/// Six events in the stream, unread by the destination's group, written
/// as a version without the ids list wrote them.
fn write_unlisted_events(redis: &TestRedis) {
    redis.cli(&["XGROUP", "CREATE", STREAM, "default", "$", "MKSTREAM"]);
    for i in 0..6 {
        let id = format!("pre_{i}");
        let body = format!(r#"{{"n":"{id}"}}"#);
        redis.cli(&[
            "XADD",
            STREAM,
            "*",
            "id",
            &id,
            "type",
            "order.created",
            "ct",
            "application/json",
            "hdr",
            "content-type: application/json\n",
            "body",
            &body,
            "rcv",
            "1700000000000",
        ]);
    }
}

/// Sends `new_0..new_5` one at a time (so the stream's order is theirs)
/// and waits until the sink has every event named in `expected`.
async fn send_and_deliver(h: &Harness, expected: &BTreeSet<String>) {
    for i in 0..6 {
        let id = format!("new_{i}");
        assert_eq!(h.send("s", &id, "{}").await.status, 202);
    }
    let delivered = eventually(Duration::from_secs(20), || async {
        h.sink.ids().into_iter().collect::<BTreeSet<_>>() == *expected
    })
    .await;
    assert!(delivered, "{:?}\n{}", h.sink.ids(), h.daemon.logs());
}

/// Waits until the stream holds `kept` entries and the ids list exactly
/// those, then returns the provider ids the log lists.
async fn trimmed_to(h: &Harness, kept: usize) -> BTreeSet<String> {
    let trimmed = eventually(Duration::from_secs(15), || async {
        let stream = h.redis.stream_ids("s");
        stream.len() == kept && h.redis.listed_ids("s") == stream
    })
    .await;
    assert!(
        trimmed,
        "stream {:?}, ids list {:?}",
        h.redis.stream_ids("s"),
        h.redis.listed_ids("s")
    );
    event_ids(&events(h, "source=s&limit=100").await)
        .into_iter()
        .collect()
}

fn named(prefix: &str, range: std::ops::Range<u32>) -> BTreeSet<String> {
    range.map(|i| format!("{prefix}_{i}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_older_than_the_ids_list_leave_the_log_like_the_others() {
    let h = Harness::builder()
        .prepare(write_unlisted_events)
        .source(source(5))
        .start()
        .await;
    let everything: BTreeSet<String> = named("pre", 0..6)
        .union(&named("new", 0..6))
        .cloned()
        .collect();
    send_and_deliver(&h, &everything).await;
    // The five newest stay, whichever way the older ones were found.
    assert_eq!(trimmed_to(&h, 5).await, named("new", 1..6));
    assert_eq!(h.redis.int(&["HLEN", "hookd:{s}:d:default:attempts"]), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ids_list_left_by_a_lost_stream_is_not_trusted() {
    // Redis lost the stream but kept this list (an id from a clock that
    // ran ahead): it sorts after every new entry.
    let h = Harness::builder()
        .prepare(|redis: &TestRedis| {
            redis.cli(&["RPUSH", "hookd:{s}:ids", "99999999999999-0"]);
        })
        .source(source(3))
        .start()
        .await;
    send_and_deliver(&h, &named("new", 0..6)).await;
    assert_eq!(trimmed_to(&h, 3).await, named("new", 3..6));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_an_event_log_no_ids_are_listed() {
    let h = Harness::builder().source(source(0)).start().await;
    // The first event keeps failing, so the stream is never empty and
    // nothing behind that event could be trimmed off a list.
    h.sink.answer_id("evt_0", Answer::status(500));
    for i in 0..6 {
        let id = format!("evt_{i}");
        assert_eq!(h.send("s", &id, "{}").await.status, 202);
    }
    h.fence_on(&h.sink, "s", "evt_6").await;
    // Each delivered event left the stream with its acknowledgement.
    let left = eventually(Duration::from_secs(10), || async {
        h.redis.stream_len("s") == 1
    })
    .await;
    assert!(left, "{:?}", h.redis.stream_ids("s"));
    assert_eq!(h.redis.int(&["EXISTS", "hookd:{s}:ids"]), 0);
}
