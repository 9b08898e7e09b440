//! Admin API and `hookd dlq`: find, inspect, replay, delete, purge.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

use crate::support::*;

pub const TOKEN: &str = "admin-token-for-tests";

/// Two sources whose destination rejects everything (400 → DLQ at once)
/// until told otherwise, behind the admin token.
pub async fn setup() -> Harness {
    let h = Harness::builder()
        .admin_token(TOKEN)
        .source(SourceSpec::standard("alpha", SINK))
        .source(SourceSpec::standard("beta", SINK))
        .start()
        .await;
    h.sink.set_default(Answer::status(400));
    h
}

/// Sends events one by one, each after the previous one is dead-lettered,
/// so the DLQ order is the order given here.
pub async fn dead_letter(h: &Harness, source: &str, events: &[(&str, &str)]) {
    for (id, event_type) in events {
        let before = h.redis.dlq_len(source);
        let body = format!(r#"{{"type":"{event_type}","id":"{id}"}}"#);
        assert_eq!(h.send(source, id, &body).await.status, 202);
        assert!(
            eventually(Duration::from_secs(10), || async {
                h.redis.dlq_len(source) == before + 1
            })
            .await,
            "{id} not dead-lettered:\n{}",
            h.daemon.logs()
        );
    }
}

fn ids(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_needs_the_token() {
    let s = setup().await;
    for path in ["/admin/sources", "/admin/dlq", "/admin/dlq/alpha/1-0"] {
        assert_eq!(get(&s.daemon.admin_url(path)).await.status, 401, "{path}");
        let wrong = request(
            Method::GET,
            &s.daemon.admin_url(path),
            &[("authorization".into(), "Bearer nope".into())],
            Bytes::new(),
        )
        .await;
        assert_eq!(wrong.status, 401);
    }
    let unauth_post = request(
        Method::POST,
        &s.daemon.admin_url("/admin/dlq/purge"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(unauth_post.status, 401);
    assert_eq!(s.api(Method::GET, "/admin/sources").await.status, 200);
    // The dashboard sends people to the login page.
    let dashboard = get(&s.daemon.admin_url("/")).await;
    assert_eq!(dashboard.status, 303);
    assert_eq!(dashboard.headers["location"], "/login");
    // Probes and metrics stay open for load balancers and Prometheus.
    assert_eq!(get(&s.daemon.admin_url("/health/ready")).await.status, 200);
    assert_eq!(get(&s.daemon.admin_url("/metrics")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_sessions_need_the_csrf_header_for_changes() {
    let s = setup().await;
    dead_letter(&s, "alpha", &[("evt_c", "t")]).await;
    let login = request(
        Method::POST,
        &s.daemon.admin_url("/login"),
        &[(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        Bytes::from(format!("token={TOKEN}")),
    )
    .await;
    assert_eq!(login.status, 303);
    let cookie = login.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        !cookie.contains(TOKEN),
        "the raw token must not be the session cookie"
    );
    let bad_login = request(
        Method::POST,
        &s.daemon.admin_url("/login"),
        &[(
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        )],
        Bytes::from_static(b"token=wrong"),
    )
    .await;
    assert_eq!(bad_login.status, 401);

    let with_cookie = vec![("cookie".to_string(), cookie.clone())];
    assert_eq!(
        get_with(&s.daemon.admin_url("/"), &with_cookie)
            .await
            .status,
        200
    );
    let forged = request(
        Method::POST,
        &s.daemon.admin_url("/admin/dlq/purge"),
        &with_cookie,
        Bytes::new(),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(s.redis.dlq_len("alpha"), 1);
    let mut from_page = with_cookie.clone();
    from_page.push(("x-hookd-request".into(), "1".into()));
    let purge = request(
        Method::POST,
        &s.daemon.admin_url("/admin/dlq/purge"),
        &from_page,
        Bytes::new(),
    )
    .await;
    assert_eq!(purge.status, 200);
    assert_eq!(s.redis.dlq_len("alpha"), 0);
}

async fn get_with(url: &str, headers: &[(String, String)]) -> Reply {
    request(Method::GET, url, headers, Bytes::new()).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_show_queue_state_and_destination() {
    let s = setup().await;
    dead_letter(&s, "alpha", &[("evt_s1", "t")]).await;
    let body = s.api(Method::GET, "/admin/sources").await.json();
    let alpha = body["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "alpha")
        .unwrap()
        .clone();
    assert_eq!(alpha["dlq"], 1);
    assert_eq!(alpha["backlog"], 0);
    assert_eq!(alpha["pending"], 0);
    assert_eq!(alpha["retrying"], 0);
    assert!(alpha.get("oldest_pending_age_ms").is_some());
    // The singular destination is the one named `default`.
    let destinations = alpha["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 1, "{alpha}");
    let default = &destinations[0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["url"], s.sink.url());
    assert_eq!(default["state"], "failing");
    assert_eq!(default["last_failure_status"], 400);
    assert!(default["last_failure_ms"].as_u64().unwrap() > 0);
    assert_eq!(default["last_success_ms"], serde_json::Value::Null);
    assert_eq!(default["max_in_flight"], 16);
    for count in ["in_flight", "backlog", "pending", "retrying"] {
        assert_eq!(default[count], 0, "{count} of {default}");
    }
    assert_eq!(default["dlq"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn dlq_listing_paginates_newest_first_and_filters() {
    let s = setup().await;
    dead_letter(
        &s,
        "alpha",
        &[
            ("a1", "order.created"),
            ("a2", "order.paid"),
            ("a3", "order.created"),
        ],
    )
    .await;
    dead_letter(
        &s,
        "beta",
        &[("b1", "order.created"), ("b2", "user.deleted")],
    )
    .await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = s
            .api(Method::GET, &format!("/admin/dlq?limit=2&cursor={cursor}"))
            .await
            .json();
        pages += 1;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
        assert!(pages < 10, "pagination does not end");
    }
    assert_eq!(
        seen,
        vec!["b2", "b1", "a3", "a2", "a1"],
        "not newest first / complete"
    );
    assert_eq!(pages, 3);

    let by_source = s.api(Method::GET, "/admin/dlq?source=beta").await.json();
    assert_eq!(ids(&by_source), vec!["b2", "b1"]);
    let by_type = s
        .api(Method::GET, "/admin/dlq?event_type=order.created")
        .await
        .json();
    assert_eq!(ids(&by_type), vec!["b1", "a3", "a1"]);
    let by_reason = s
        .api(Method::GET, "/admin/dlq?reason=max_attempts")
        .await
        .json();
    assert_eq!(ids(&by_reason), Vec::<String>::new());
    let both = s
        .api(
            Method::GET,
            "/admin/dlq?source=alpha&event_type=order.created&reason=rejected",
        )
        .await
        .json();
    assert_eq!(ids(&both), vec!["a3", "a1"]);
    assert_eq!(
        s.api(Method::GET, "/admin/dlq?source=nope").await.status,
        404
    );
    assert_eq!(
        s.api(Method::GET, "/admin/dlq?cursor=garbage").await.status,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_entry_shows_body_headers_and_attempts() {
    let s = setup().await;
    dead_letter(&s, "alpha", &[("evt_show", "order.created")]).await;
    let list = s.api(Method::GET, "/admin/dlq").await.json();
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let entry = s
        .api(Method::GET, &format!("/admin/dlq/alpha/{id}"))
        .await
        .json();
    assert_eq!(entry["event_id"], "evt_show");
    assert_eq!(entry["event_type"], "order.created");
    assert_eq!(entry["reason"], "rejected");
    assert_eq!(entry["status"], 400);
    assert_eq!(entry["body"], r#"{"type":"order.created","id":"evt_show"}"#);
    assert_eq!(entry["content_type"], "application/json");
    let headers: Vec<String> = entry["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_owned())
        .collect();
    assert!(
        headers.contains(&"webhook-signature".to_string()),
        "{headers:?}"
    );
    assert_eq!(entry["history"][0]["attempt"], 1);
    assert_eq!(entry["history"][0]["status"], 400);
    assert_eq!(s.api(Method::GET, "/admin/dlq/alpha/1-0").await.status, 404);
    assert_eq!(
        s.api(Method::GET, &format!("/admin/dlq/nope/{id}"))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_is_idempotent_and_delivers_again() {
    let s = setup().await;
    dead_letter(&s, "alpha", &[("evt_rp", "t")]).await;
    s.sink.set_default(Answer::status(200));
    let id = s.api(Method::GET, "/admin/dlq").await.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/admin/dlq/alpha/{id}/replay");
    let (first, second) = tokio::join!(s.api(Method::POST, &path), s.api(Method::POST, &path));
    let statuses: HashSet<u16> = [first.status, second.status].into();
    assert_eq!(
        statuses,
        HashSet::from([200, 404]),
        "replaying twice must enqueue once"
    );
    assert_eq!(s.api(Method::POST, &path).await.status, 404);
    assert!(s.sink.wait_for(2, Duration::from_secs(10)).await);
    // Delivered and acknowledged: a second copy could only come from a
    // second entry, and there is none.
    assert!(s.settled("alpha").await);
    let deliveries: Vec<_> = s
        .sink
        .received()
        .into_iter()
        .filter(|r| r.header("webhook-id") == "evt_rp")
        .collect();
    assert_eq!(deliveries.len(), 2, "one rejected attempt, one replay");
    assert_eq!(
        deliveries[1].header("x-hookd-attempt"),
        "1",
        "attempts reset on replay"
    );
    assert_eq!(s.redis.dlq_len("alpha"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_replay_dry_run_delete_and_purge() {
    let s = setup().await;
    dead_letter(
        &s,
        "alpha",
        &[("x1", "keep"), ("x2", "replay-me"), ("x3", "replay-me")],
    )
    .await;
    dead_letter(&s, "beta", &[("y1", "replay-me"), ("y2", "purge-me")]).await;

    let dry = s
        .api(
            Method::POST,
            "/admin/dlq/replay?event_type=replay-me&dry_run=true",
        )
        .await
        .json();
    assert_eq!(dry["matched"], 3);
    assert_eq!(dry["replayed"], 0);
    assert_eq!(
        s.redis.dlq_len("alpha") + s.redis.dlq_len("beta"),
        5,
        "dry run changed something"
    );
    // A dry_run that is neither true nor false is refused, not taken as
    // false: a typo must not replay or purge for real.
    for path in [
        "/admin/dlq/replay?event_type=replay-me&dry_run=yes",
        "/admin/dlq/purge?dry_run=maybe",
        "/admin/events/replay?dry_run=yes",
    ] {
        let refused = s.api(Method::POST, path).await;
        assert_eq!(refused.status, 400, "{path}");
        assert!(
            refused.json()["error"]
                .as_str()
                .unwrap()
                .contains("dry_run")
        );
    }
    assert_eq!(s.redis.dlq_len("alpha") + s.redis.dlq_len("beta"), 5);
    // A misspelt filter is refused, not ignored: ignored, it would replay
    // or purge every entry, or list everything as if filtered.
    for (method, path) in [
        (Method::POST, "/admin/dlq/purge?sorce=beta"),
        (
            Method::POST,
            "/admin/dlq/replay?event_type=replay-me&reasn=rejected",
        ),
        (Method::POST, "/admin/events/replay?staus=dead"),
        (Method::POST, "/admin/events/replay?source=alpha&limit=5"),
        (Method::GET, "/admin/dlq?source=beta&staus=dead"),
        (Method::GET, "/admin/events?type=order.paid"),
        (Method::GET, "/admin/sources?all=1"),
        (Method::GET, "/admin/stats?sorce=alpha"),
        (
            Method::POST,
            "/admin/sources/alpha/destinations/default/pause?for=1h",
        ),
    ] {
        let refused = s.api(method.clone(), path).await;
        assert_eq!(refused.status, 400, "{method} {path}");
        let message = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(message.starts_with("unknown query parameter"), "{message}");
    }
    assert_eq!(
        s.api(Method::POST, "/admin/dlq/purge?sorce=beta")
            .await
            .json()["error"],
        "unknown query parameter \"sorce\"; this request takes source, destination, event_type, reason, dry_run"
    );
    assert_eq!(s.redis.dlq_len("alpha") + s.redis.dlq_len("beta"), 5);
    let states = s.api(Method::GET, "/admin/sources").await.json();
    assert!(
        !states.to_string().contains("\"paused\""),
        "a refused pause paused: {states}"
    );

    s.sink.set_default(Answer::status(200));
    let done = s
        .api(
            Method::POST,
            "/admin/dlq/replay?event_type=replay-me&source=alpha",
        )
        .await
        .json();
    assert_eq!(done["matched"], 2);
    assert_eq!(done["replayed"], 2);
    assert!(
        eventually(Duration::from_secs(10), || async {
            let ids: HashSet<String> = s.sink.ids().into_iter().collect();
            s.sink
                .received()
                .iter()
                .filter(|r| ["x2", "x3"].contains(&r.header("webhook-id")))
                .count()
                == 4
                && ids.contains("x2")
        })
        .await
    );
    assert_eq!(s.redis.dlq_len("alpha"), 1);

    let beta = s
        .api(Method::GET, "/admin/dlq?source=beta&event_type=purge-me")
        .await
        .json();
    let y2 = beta["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.api(Method::DELETE, &format!("/admin/dlq/beta/{y2}"))
            .await
            .status,
        200
    );
    assert_eq!(
        s.api(Method::DELETE, &format!("/admin/dlq/beta/{y2}"))
            .await
            .status,
        404
    );
    let purged = s
        .api(Method::POST, "/admin/dlq/purge?source=beta")
        .await
        .json();
    assert_eq!(purged["deleted"], 1);
    assert_eq!(s.redis.dlq_len("beta"), 0);
    assert_eq!(s.redis.dlq_len("alpha"), 1, "purge ignored its filter");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dlq_command_line() {
    let s = setup().await;
    dead_letter(
        &s,
        "alpha",
        &[("c1", "order.created"), ("c2", "order.paid")],
    )
    .await;
    dead_letter(&s, "beta", &[("c3", "order.created")]).await;

    let (code, table, err) = s.cli(&["dlq", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(table.lines().next().unwrap().starts_with("ID"));
    for id in ["c1", "c2", "c3"] {
        assert!(table.contains(id), "{table}");
    }

    let (code, json, _) = s.cli(&["dlq", "list", "--json", "--event", "order.created"]);
    assert_eq!(code, 0);
    let page: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(ids(&page), vec!["c3", "c1"]);

    let (_, json, _) = s.cli(&["dlq", "list", "--json", "--source", "alpha", "--limit", "1"]);
    let page: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(ids(&page), vec!["c2"]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, json, _) = s.cli(&[
        "dlq", "list", "--json", "--source", "alpha", "--cursor", &cursor,
    ]);
    assert_eq!(ids(&serde_json::from_str(&json).unwrap()), vec!["c1"]);

    let c1 = s
        .api(
            Method::GET,
            "/admin/dlq?source=alpha&event_type=order.created",
        )
        .await
        .json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, shown, err) = s.cli(&["dlq", "show", &c1]);
    assert_eq!(code, 0, "{err}");
    assert!(
        shown.contains("event id:   c1") && shown.contains("rejected"),
        "{shown}"
    );
    let (_, shown, _) = s.cli(&["dlq", "show", &c1, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["body"], r#"{"type":"order.created","id":"c1"}"#);

    let (code, out, _) = s.cli(&[
        "dlq",
        "replay",
        "--all",
        "--event",
        "order.created",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(code, 0);
    let out: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["matched"], 2);
    assert_eq!(s.redis.dlq_len("alpha") + s.redis.dlq_len("beta"), 3);

    s.sink.set_default(Answer::status(200));
    let (code, out, err) = s.cli(&["dlq", "replay", &c1]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("replayed"), "{out}");
    let (code, _, err) = s.cli(&["dlq", "replay", &c1]);
    assert_eq!(code, 1, "second replay of the same entry must fail");
    assert!(err.contains(&c1));
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.sink
                .received()
                .iter()
                .filter(|r| r.header("webhook-id") == "c1")
                .count()
                == 2
        })
        .await
    );

    let c2 = s.api(Method::GET, "/admin/dlq?source=alpha").await.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _, err) = s.cli(&["dlq", "delete", &c2, "--source", "alpha"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s.redis.dlq_len("alpha"), 0);
    let (code, out, _) = s.cli(&["dlq", "purge", "--source", "beta", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["deleted"],
        1
    );
    let (code, _, err) = s.cli(&["dlq", "list", "--source", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("nope"));
}

/// Filters and bulk operations reach every match however large the DLQ:
/// one `rare` entry behind 100k others is found by following cursors,
/// counted by a dry run, and replayed; a purge takes all 100k.
#[tokio::test(flavor = "multi_thread")]
async fn filters_and_bulk_operations_cover_a_dlq_of_100k_entries() {
    let s = setup().await;
    const COMMON: usize = 100_000;
    let dlq = "hookd:{alpha}:dlq".to_owned();
    let entry = |id: String, event_type: &str| {
        let mut command = vec!["XADD".to_owned(), dlq.clone(), "*".to_owned()];
        for (k, v) in [
            ("id", id.as_str()),
            ("type", event_type),
            ("hdr", "content-type: application/json\n"),
            ("body", "{\"n\":1}"),
            ("rcv", "1700000000000"),
            ("att", "3"),
            ("reason", "max_attempts"),
            ("status", "503"),
            ("error", "down"),
            ("dead_at", "1700000000001"),
            ("dest", "default"),
        ] {
            command.push(k.to_owned());
            command.push(v.to_owned());
        }
        command
    };
    // The rare entry is the oldest: every newest-first walk meets it last.
    s.redis.pipe(
        std::iter::once(entry("evt_rare".into(), "rare"))
            .chain((0..COMMON).map(|i| entry(format!("evt_{i}"), "common"))),
    );
    assert_eq!(s.redis.dlq_len("alpha"), COMMON as i64 + 1);

    let mut found = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = s
            .api(
                Method::GET,
                &format!("/admin/dlq?event_type=rare&limit=10&cursor={cursor}"),
            )
            .await
            .json();
        found.extend(ids(&page));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
        assert!(pages < 1000, "cursors never end");
    }
    assert_eq!(found, vec!["evt_rare"], "after {pages} pages");

    let dry = s
        .api(
            Method::POST,
            "/admin/dlq/replay?event_type=rare&dry_run=true",
        )
        .await
        .json();
    assert_eq!(dry["matched"], 1, "{dry}");
    let (code, out, err) = s.cli(&["dlq", "replay", "--all", "--event", "rare", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 event(s) match"), "{out}");
    let dry = s
        .api(
            Method::POST,
            "/admin/dlq/purge?event_type=common&dry_run=true",
        )
        .await
        .json();
    assert_eq!(dry["matched"], COMMON, "{dry}");

    let purged = s
        .api(Method::POST, "/admin/dlq/purge?event_type=common")
        .await
        .json();
    assert_eq!(purged["deleted"], COMMON, "{purged}");
    assert_eq!(s.redis.dlq_len("alpha"), 1);
    s.sink.set_default(Answer::status(200));
    let replayed = s
        .api(Method::POST, "/admin/dlq/replay?event_type=rare")
        .await
        .json();
    assert_eq!(replayed["replayed"], 1, "{replayed}");
    assert!(s.sink.wait_for(1, Duration::from_secs(10)).await);
    assert_eq!(s.sink.ids(), vec!["evt_rare"]);
}

/// Every admin API path answers another method with 405 and an `Allow`
/// header naming the ones it takes; an unknown path stays 404.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_methods_get_405_with_allow() {
    let h = Harness::start().await;
    for (method, path, allow) in [
        (Method::DELETE, "/admin/sources", "GET"),
        (Method::POST, "/admin/dlq", "GET"),
        (Method::GET, "/admin/dlq/replay", "POST"),
        (Method::GET, "/admin/dlq/purge", "POST"),
        (Method::POST, "/admin/dlq/s/1-0", "GET, DELETE"),
        (Method::GET, "/admin/dlq/s/1-0/replay", "POST"),
        (Method::DELETE, "/admin/events", "GET"),
        (Method::GET, "/admin/events/replay", "POST"),
        (Method::DELETE, "/admin/events/s/1-0", "GET"),
        (Method::GET, "/admin/events/s/1-0/replay", "POST"),
        (Method::POST, "/admin/stats", "GET"),
        (
            Method::GET,
            "/admin/sources/s/destinations/default/pause",
            "POST",
        ),
    ] {
        let reply = h.api(method.clone(), path).await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.headers["allow"], allow, "{method} {path}");
        assert_eq!(
            reply.json()["error"],
            format!("method not allowed: use {allow}"),
            "{method} {path}"
        );
    }
    assert_eq!(h.api(Method::GET, "/admin/nothing").await.status, 404);
}
