//! Upgrading from the single-destination layout (one consumer group
//! `hookd`, retries parked in `…:delayed`, DLQ entries naming no
//! destination): the layout is written here as that version wrote it,
//! then today's binary starts on it.

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;

use crate::support::*;

const STREAM: &str = "hookd:{s}:stream";

fn legacy_fields(id: &str, attempts: u32) -> Vec<String> {
    [
        ("id", id),
        ("type", "order.created"),
        ("ct", "application/json"),
        ("hdr", "content-type: application/json\n"),
        ("body", &format!(r#"{{"order":"{id}"}}"#)),
        ("rcv", "1700000000000"),
        ("att", &attempts.to_string()),
    ]
    .iter()
    .flat_map(|(k, v)| [k.to_string(), v.to_string()])
    .collect()
}

/// What the single-destination version left in Redis: three events never
/// read, two handed to a consumer that died, two waiting for a retry, one
/// dead-lettered, and the dedup markers of all of them.
fn write_legacy_layout(redis: &TestRedis) {
    redis.cli(&["XGROUP", "CREATE", STREAM, "hookd", "$", "MKSTREAM"]);
    for i in 0..5 {
        let id = format!("old_{i}");
        let mut args = vec!["XADD".to_string(), STREAM.into(), "*".into()];
        args.extend(legacy_fields(&id, 0));
        let entry = redis.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
        redis.cli(&[
            "SET",
            &format!("hookd:{{s}}:seen:{id}"),
            entry.trim(),
            "EX",
            "3600",
        ]);
    }
    redis.cli(&[
        "XREADGROUP",
        "GROUP",
        "hookd",
        "crashed-consumer",
        "COUNT",
        "2",
        "STREAMS",
        STREAM,
        ">",
    ]);
    // The old retry set: members are msgpack of (entry id, fields).
    for i in 0..2 {
        let id = format!("retry_{i}");
        let mut args = vec![
            "EVAL".to_string(),
            "redis.call('ZADD', KEYS[1], ARGV[1], cmsgpack.pack(ARGV[2], {unpack(ARGV, 3)}))"
                .into(),
            "1".into(),
            "hookd:{s}:delayed".into(),
            // Due long ago, and in the far future: both are delivered now.
            if i == 0 {
                "1".into()
            } else {
                "99999999999999".into()
            },
            format!("1700000000000-{i}"),
        ];
        args.extend(legacy_fields(&id, 1));
        redis.cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let mut dead = vec!["XADD".to_string(), "hookd:{s}:dlq".into(), "*".into()];
    dead.extend(legacy_fields("dead_0", 3));
    for (k, v) in [
        ("reason", "max_attempts"),
        ("status", "503"),
        ("error", "HTTP 503"),
        ("dead_at", "1700000000001"),
        ("entry", "1700000000000-9"),
    ] {
        dead.push(k.into());
        dead.push(v.into());
    }
    redis.cli(&dead.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(redis.pending_for("s", "hookd"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_single_destination_layout_is_migrated_without_losing_an_event() {
    // The upgraded config keeps the old destination as `default` and adds
    // `audit`, which starts with new events only.
    let source = SourceSpec::standard("s", SINK)
        .route("default", SINKS[0], "")
        .route("audit", SINKS[1], "");
    let h = Harness::builder()
        .prepare(write_legacy_layout)
        .source(source)
        .sinks(2)
        .start()
        .await;
    let old: BTreeSet<String> = (0..5)
        .map(|i| format!("old_{i}"))
        .chain((0..2).map(|i| format!("retry_{i}")))
        .collect();
    let complete = eventually(Duration::from_secs(20), || async {
        let got: BTreeSet<String> = h.sinks[0].ids().into_iter().collect();
        got == old
    })
    .await;
    assert!(complete, "{:?}\n{}", h.sinks[0].ids(), h.daemon.logs());
    assert!(
        h.daemon
            .logs()
            .contains("single-destination layout migrated")
    );
    let got = &h.sinks[0].received();
    let order = got
        .iter()
        .find(|r| r.header("webhook-id") == "old_3")
        .unwrap();
    assert_eq!(&order.body[..], br#"{"order":"old_3"}"#);
    assert_eq!(order.header("x-hookd-destination"), "default");

    // The old group and retry set are gone; the dedup markers still hold.
    let groups: BTreeSet<String> = h.redis.groups("s").into_iter().map(|(g, _)| g).collect();
    assert_eq!(
        groups,
        ["audit", "default"].iter().map(|g| g.to_string()).collect()
    );
    assert_eq!(h.redis.int(&["EXISTS", "hookd:{s}:delayed"]), 0);
    assert_eq!(h.send("s", "old_1", "{}").await.status, 200);

    // The old DLQ entry belongs to the heir and replays to it alone.
    let dlq = h
        .api(Method::GET, "/admin/dlq?destination=default")
        .await
        .json();
    assert_eq!(dlq["items"].as_array().unwrap().len(), 1, "{dlq}");
    assert_eq!(dlq["items"][0]["event_id"], "dead_0");
    let sources = h.api(Method::GET, "/admin/sources").await.json();
    let destinations = sources["sources"][0]["destinations"]
        .as_array()
        .unwrap()
        .clone();
    let dlq_of = |name: &str| {
        destinations
            .iter()
            .find(|d| d["name"] == name)
            .map(|d| d["dlq"].clone())
            .unwrap()
    };
    assert_eq!(dlq_of("default"), 1, "{sources}");
    assert_eq!(dlq_of("audit"), 0, "{sources}");
    let id = dlq["items"][0]["id"].as_str().unwrap();
    let replay = h
        .api(Method::POST, &format!("/admin/dlq/s/{id}/replay"))
        .await;
    assert_eq!(replay.status, 200);

    // A new event reaches both; audit never saw the old ones.
    h.fence_on(&h.sinks[1], "s", "new_1").await;
    let complete = eventually(Duration::from_secs(10), || async {
        let got = h.sinks[0].ids();
        got.contains(&"dead_0".to_string()) && got.contains(&"new_1".to_string())
    })
    .await;
    assert!(complete, "{:?}", h.sinks[0].ids());
    assert_eq!(h.sinks[1].ids(), vec!["new_1"]);
    assert!(h.settled("s").await);
    assert_eq!(
        h.sinks[0].count(),
        9,
        "delivered twice: {:?}",
        h.sinks[0].ids()
    );
}
