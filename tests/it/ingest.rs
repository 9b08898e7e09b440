//! Every answer of `POST /webhooks/{source}` and what it leaves in Redis.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A harness whose destination never answers, so accepted events stay
/// visible in Redis for the assertions.
async fn setup(extra: &str) -> Harness {
    setup_env(extra, &[]).await
}

async fn setup_env(extra: &str, env: &[(&str, &str)]) -> Harness {
    let mut builder = Harness::builder().toml(extra).source(
        SourceSpec::standard("demo", &dead_url())
            .with("retry = { max_attempts = 5, base = \"1h\", max = \"1h\", jitter = false }"),
    );
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.start().await
}

/// Waits until the demo source's stream holds `n` events (unread, in
/// flight or waiting for a retry: all stay in the stream).
async fn assert_stored_eventually(redis: &TestRedis, n: i64) {
    assert!(
        eventually(Duration::from_secs(5), || async {
            redis.stream_len("demo") == n
        })
        .await,
        "demo never held {n} events"
    );
}

/// The head of a signed POST of `body` to `/webhooks/demo`, for a raw
/// socket: `framing` is its Content-Length or Transfer-Encoding line.
fn signed_head(framing: &str, id: &str, body: &[u8]) -> String {
    let mut head = format!("POST /webhooks/demo HTTP/1.1\r\nHost: x\r\n{framing}\r\n");
    for (k, v) in signed(id, body) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Writes `raw` on a new connection and reads until the server closes it
/// (or for 5 s): the whole answer, as text. A server that answers early
/// may close before all of `raw` is written; its answer is still read.
async fn exchange(daemon: &Daemon, raw: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(daemon.public).await.unwrap();
    let _ = stream.write_all(raw).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn accepts_a_signed_event_and_stores_it_once() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let reply = send_event(daemon, "demo", "evt_1", r#"{"type":"a.b"}"#).await;
    assert_eq!(reply.status, 202);
    assert_eq!(
        reply.json(),
        serde_json::json!({"id": "evt_1", "source": "demo", "status": "queued"})
    );
    assert_eq!(
        redis.keys("hookd:{demo}:seen:*"),
        vec!["hookd:{demo}:seen:evt_1"]
    );
    let ttl = redis.int(&["TTL", "hookd:{demo}:seen:evt_1"]);
    assert!(ttl > 71 * 3600 && ttl <= 72 * 3600, "dedup ttl {ttl}");
    // The stream or (after the failed attempt) the delayed set holds it.
    assert_stored_eventually(redis, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_answer_200_with_the_first_id_and_store_nothing_new() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let first = send_event(daemon, "demo", "evt_dup", "{}").await;
    assert_eq!(first.status, 202);
    for _ in 0..3 {
        let again = send_event(daemon, "demo", "evt_dup", "{}").await;
        assert_eq!(again.status, 200);
        assert_eq!(
            again.json(),
            serde_json::json!({"id": "evt_dup", "status": "duplicate"})
        );
    }
    // Only what ingest wrote counts here: one entry, in the stream or (after
    // its failed attempt) in the retry set, and one dedup key.
    assert_stored_eventually(redis, 1).await;
    assert_eq!(redis.keys("hookd:{demo}:seen:*").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_timestamps_get_401_and_store_nothing() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let url = daemon.url("/webhooks/demo");
    let body = Bytes::from_static(b"{\"x\":1}");

    // Signature over another body.
    let other = signed("evt_x", b"{\"x\":2}");
    let reply = request(Method::POST, &url, &other, body.clone()).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("signature")
    );

    // Missing signature headers.
    let none = vec![("content-type".to_string(), "application/json".to_string())];
    assert_eq!(
        request(Method::POST, &url, &none, body.clone())
            .await
            .status,
        401
    );

    // Correct signature, timestamp ten minutes old (tolerance 5m).
    let stale = signed_at("evt_x", &body, hookd::unix_secs() - 600);
    assert_eq!(
        request(Method::POST, &url, &stale, body.clone())
            .await
            .status,
        401
    );

    // Correct signature from the future.
    let future = signed_at("evt_x", &body, hookd::unix_secs() + 600);
    assert_eq!(
        request(Method::POST, &url, &future, body.clone())
            .await
            .status,
        401
    );

    // Garbage in the signature header.
    let mut garbage = signed("evt_x", &body);
    for (k, v) in garbage.iter_mut() {
        if k == "webhook-signature" {
            *v = "v1,@@@not-base64@@@".into();
        }
    }
    assert_eq!(
        request(Method::POST, &url, &garbage, body).await.status,
        401
    );

    redis.assert_nothing_stored("demo");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_get_413_and_store_nothing() {
    let h = setup_env("", &[("HOOKD_SERVER__MAX_BODY_BYTES", "1024")]).await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let url = daemon.url("/webhooks/demo");
    let big = vec![b'a'; 4096];
    let reply = request(
        Method::POST,
        &url,
        &signed("evt_big", &big),
        Bytes::from(big.clone()),
    )
    .await;
    assert_eq!(reply.status, 413);
    assert!(reply.json()["error"].is_string());

    // Chunked, so no Content-Length to check up front.
    let mut raw = signed_head("Transfer-Encoding: chunked", "evt_big", &big).into_bytes();
    for chunk in big.chunks(512) {
        raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend_from_slice(chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(daemon, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Over HTTP/2 the answer comes while the client is still sending, and
    // the client must get it: declared too large (refused before reading)
    // and streamed without a length (refused at the limit).
    let huge = vec![b'a'; 1 << 20];
    for declared in [true, false] {
        for _ in 0..5 {
            let status = h2_post(daemon, &signed("evt_huge", &huge), &huge, declared).await;
            assert_eq!(status, Ok(413), "declared length: {declared}");
        }
    }
    redis.assert_nothing_stored("demo");
}

/// POSTs `body` to `/webhooks/demo` over HTTP/2 (h2c, prior knowledge),
/// with its length declared or streamed in chunks without one: the
/// answer's status once its body is read, or why there was none.
async fn h2_post(
    daemon: &Daemon,
    headers: &[(String, String)],
    body: &[u8],
    declared: bool,
) -> Result<u16, String> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let stream = tokio::net::TcpStream::connect(daemon.public)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://{}/webhooks/demo", daemon.public));
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let body = if declared {
        Full::new(Bytes::copy_from_slice(body)).boxed()
    } else {
        Chunks(body.chunks(16 << 10).map(Bytes::copy_from_slice).collect()).boxed()
    };
    let request = request.body(body).map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let status = response.status().as_u16();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("answer body: {e:?}"))?;
    Ok(status)
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_method_unknown_source_and_unknown_path() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = request(
            method.clone(),
            &daemon.url("/webhooks/demo"),
            &[],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.headers.get("allow").unwrap(), "POST");
        assert!(reply.json()["error"].is_string());
    }
    let reply = send_event(daemon, "nope", "evt_1", "{}").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "unknown source");
    assert_eq!(get(&daemon.url("/elsewhere")).await.status, 404);
    redis.assert_nothing_stored("demo");
    assert_eq!(redis.keys("hookd:{nope}*"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_percent_encoded_name_is_the_same_name() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    // `%6D` is `m`: the same source. An encoded slash is no name at all.
    let reply = send_event(daemon, "de%6Do", "evt_encoded", "{}").await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json()["source"], "demo");
    assert_stored_eventually(redis, 1).await;
    let reply = send_event(daemon, "demo%2Fx", "evt_slash", "{}").await;
    assert_eq!(reply.status, 404);
    // The admin listener reads its paths the same way.
    let paused = h
        .api(
            Method::POST,
            "/admin/sources/de%6Do/destinations/def%61ult/pause",
        )
        .await;
    assert_eq!(paused.status, 200);
    assert_eq!(paused.json()["state"], "paused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gone_before_the_answer_is_counted_as_abandoned() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let abandoned =
        |n: u64| format!(r#"hookd_ingest_requests_total{{source="demo",outcome="abandoned"}} {n}"#);
    let metrics =
        || async { String::from_utf8_lossy(&get(&daemon.url("/metrics")).await.body).into_owned() };
    assert!(metrics().await.contains(&abandoned(0)));
    // Scripts that write wait while PING and reads go on: hookd still sees
    // Redis up, and the event's store call hangs until the pause ends.
    redis.cli(&["CLIENT", "PAUSE", "5000", "WRITE"]);
    let body = br#"{"type":"a.b"}"#;
    let mut stream = tokio::net::TcpStream::connect(daemon.public).await.unwrap();
    let length = format!("Content-Length: {}", body.len());
    let head = signed_head(&length, "evt_gone", body);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    // The ingest script waiting in Redis: the request is being stored.
    assert!(
        eventually(Duration::from_secs(5), || async {
            redis
                .cli(&["CLIENT", "LIST"])
                .lines()
                .any(|client| client.contains("flags=b ") && client.contains("cmd=evalsha"))
        })
        .await,
        "the store call never reached Redis"
    );
    drop(stream);
    assert!(
        eventually(Duration::from_secs(5), || async {
            metrics().await.contains(&abandoned(1))
        })
        .await,
        "the abandoned request was not counted"
    );
    redis.cli(&["CLIENT", "UNPAUSE"]);
    // The event may have been stored meanwhile: the provider's retry then
    // finds it, and is answered like any duplicate.
    let again = send_event(daemon, "demo", "evt_gone", r#"{"type":"a.b"}"#).await;
    assert!(matches!(again.status, 200 | 202), "{}", again.status);
    assert_stored_eventually(redis, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_requests_get_400_or_431_and_store_nothing() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    // Heads HTTP cannot parse: the HTTP layer answers before routing.
    for garbage in [
        &b"POST /webhooks/demo HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n"[..],
        &b"POST /webhooks/demo HTTP/1.1\r\nHost: x\r\nX-A: \x01\x02\r\nContent-Length: 2\r\n\r\n{}"
            [..],
        &b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http at all\r\n\r\n"[..],
        &b"POST /webhooks/demo HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n{}"[..],
    ] {
        let answer = exchange(daemon, garbage).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }

    // A signed request whose chunked body is broken: the handler's own
    // JSON answer.
    let body = br#"{"type":"a.b"}"#;
    let mut raw = signed_head("Transfer-Encoding: chunked", "evt_broken", body).into_bytes();
    raw.extend_from_slice(b"zz\r\n{}\r\n0\r\n\r\n");
    let answer = exchange(daemon, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains(r#"{"error":"unreadable request body"}"#),
        "{answer}"
    );

    // More than 100 header fields over HTTP/1.1: refused whole, signed or
    // not.
    let length = format!("Content-Length: {}", body.len());
    let head = signed_head(&length, "evt_crowded", body);
    let mut raw = head.trim_end_matches("\r\n").to_owned() + "\r\n";
    for n in 0..100 {
        raw.push_str(&format!("X-Extra-{n}: v\r\n"));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    let answer = exchange(daemon, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // HTTP/2 limits the header list's size instead (16 KiB, each field
    // counted as its name and value plus 32 bytes): 100 fields of 200
    // bytes go over it (150 small ones do not: below).
    let mut headers = signed("evt_crowded", body);
    headers.extend((0..100).map(|n| (format!("x-extra-{n}"), "v".repeat(200))));
    assert_eq!(h2_post(daemon, &headers, body, true).await, Ok(431));
    redis.assert_nothing_stored("demo");

    // The listener still serves, and the refused event left no dedup key:
    // the same event, readable, is taken as new.
    let reply = send_event(daemon, "demo", "evt_crowded", r#"{"type":"a.b"}"#).await;
    assert_eq!(reply.status, 202);
    assert_stored_eventually(redis, 1).await;
    let mut headers = signed("evt_many_fields", body);
    headers.extend((0..150).map(|n| (format!("x-extra-{n}"), "v".to_owned())));
    assert_eq!(h2_post(daemon, &headers, body, true).await, Ok(202));
    assert_stored_eventually(redis, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_explicit_event_id_is_400() {
    let mut source = SourceSpec::standard("demo", &dead_url());
    source.verify = r#"{ scheme = "none" }
id_from = "json:/data/id""#
        .into();
    let h = Harness::builder().source(source).start().await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let url = daemon.url("/webhooks/demo");
    let reply = request(
        Method::POST,
        &url,
        &[],
        Bytes::from_static(b"{\"data\":{}}"),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error"].as_str().unwrap().contains("event id"));
    redis.assert_nothing_stored("demo");
    let reply = request(
        Method::POST,
        &url,
        &[],
        Bytes::from_static(b"{\"data\":{\"id\":\"x1\"}}"),
    )
    .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json()["id"], "x1");
    // Numeric ids are taken as written: these two differ only past a
    // float's precision, and are two events, not a duplicate.
    for id in ["123456789012345678901234", "123456789012345678901235"] {
        let body = format!(r#"{{"data":{{"id":{id}}}}}"#);
        let reply = request(Method::POST, &url, &[], Bytes::from(body)).await;
        assert_eq!(reply.status, 202, "{id}");
        assert_eq!(reply.json()["id"], id);
    }
    assert_eq!(
        redis.keys("hookd:{demo}:seen:1234*").len(),
        2,
        "one dedup key per numeric id"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_and_slow_bodies_are_cut_off() {
    let h = setup_env(
        "",
        &[
            ("HOOKD_SERVER__HEADER_READ_TIMEOUT", "1s"),
            ("HOOKD_SERVER__REQUEST_TIMEOUT", "1s"),
        ],
    )
    .await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    // Slowloris: headers never finish; the connection is closed.
    let mut stream = tokio::net::TcpStream::connect(daemon.public).await.unwrap();
    stream
        .write_all(b"POST /webhooks/demo HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(
        closed.is_ok(),
        "connection still open after header_read_timeout"
    );

    // Body announced but never sent: 408.
    let body = b"{\"slow\":true}";
    let mut stream = tokio::net::TcpStream::connect(daemon.public).await.unwrap();
    let length = format!("Content-Length: {}", body.len());
    let head = signed_head(&length, "evt_slow", body);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..3]).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("no answer to a stalled body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    redis.assert_nothing_stored("demo");
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_outage_gives_503_then_recovers_without_restart() {
    let mut h = setup("").await;
    assert_eq!(
        send_event(&h.daemon, "demo", "evt_before", "{}")
            .await
            .status,
        202
    );

    h.redis.kill();
    let reply = send_event(&h.daemon, "demo", "evt_during", "{}").await;
    assert_eq!(reply.status, 503);
    assert!(reply.headers.contains_key("retry-after"));
    assert!(reply.json()["error"].is_string());
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&h.daemon.url("/health/ready")).await.status == 503
        })
        .await,
        "ready stayed 200 with redis down"
    );
    // Once the outage is known, ingest fails fast: no waiting for a
    // reconnect or a command timeout.
    let started = std::time::Instant::now();
    let reply = send_event(&h.daemon, "demo", "evt_during", "{}").await;
    assert_eq!(reply.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "503 took {:?}",
        started.elapsed()
    );
    assert_eq!(get(&h.daemon.url("/health/live")).await.status, 200);
    let health = get(&h.daemon.url("/health")).await;
    assert_eq!(health.json()["redis"], "down");
    // The outage is said once, by hookd, not once per pooled connection
    // by the Redis client (whose lines come first, as the connections
    // close).
    assert!(h.daemon.logged(&["redis is unreachable"]).await);
    let logs = h.daemon.logs();
    assert!(!logs.contains("Broadcasting error"), "{logs}");

    h.redis.restart();
    assert!(
        eventually(Duration::from_secs(15), || async {
            send_event(&h.daemon, "demo", "evt_after", "{}")
                .await
                .status
                == 202
        })
        .await,
        "ingest did not recover:\n{}",
        h.daemon.logs()
    );
    h.daemon.wait_ready().await;
    // Nothing from the outage was stored.
    assert_eq!(
        h.redis.keys("hookd:{demo}:seen:evt_during"),
        Vec::<String>::new()
    );
}

/// A hung Redis (SIGSTOP: connections open, no answers) is noticed by the
/// health check, and `/health` does not hang meanwhile; from then on ingest answers 503 at once instead of each
/// request waiting out its own timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_redis_gets_fast_503s_once_it_is_known() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    assert_eq!(
        send_event(daemon, "demo", "evt_before", "{}").await.status,
        202
    );
    redis.freeze();
    // Before the health check has noticed: the summary does not wait a
    // command timeout for figures a hung Redis will not give.
    let started = std::time::Instant::now();
    let summary = get(&daemon.url("/health")).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "/health took {:?}",
        started.elapsed()
    );
    assert!(
        summary.json()["sources"]["demo"].is_null(),
        "{:?}",
        summary.json()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&daemon.url("/health/ready")).await.status == 503
        })
        .await,
        "a hung redis went unnoticed"
    );
    for i in 0..5 {
        let started = std::time::Instant::now();
        let reply = send_event(daemon, "demo", &format!("evt_hung_{i}"), "{}").await;
        assert_eq!(reply.status, 503);
        assert!(reply.headers.contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "503 took {:?}",
            started.elapsed()
        );
    }
    redis.thaw();
    daemon.wait_ready().await;
    assert_eq!(
        send_event(daemon, "demo", "evt_after", "{}").await.status,
        202
    );
    assert_eq!(
        redis.keys("hookd:{demo}:seen:evt_hung_*"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_at_startup_is_not_fatal() {
    let mut redis = TestRedis::start();
    let url = redis.url();
    redis.kill();
    let toml = config(&url, "", &[SourceSpec::standard("demo", &dead_url())]);
    let daemon = Daemon::start(&toml).await;
    assert_eq!(get(&daemon.url("/health/live")).await.status, 200);
    assert_eq!(get(&daemon.url("/health/ready")).await.status, 503);
    assert_eq!(send_event(&daemon, "demo", "evt_1", "{}").await.status, 503);
    redis.restart();
    daemon.wait_ready().await;
    assert_eq!(send_event(&daemon, "demo", "evt_1", "{}").await.status, 202);
}

#[tokio::test(flavor = "multi_thread")]
async fn backlog_over_max_answers_503() {
    let h = setup("[ingest]\nmax_backlog = 3\n").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    for i in 0..3 {
        assert_eq!(
            send_event(daemon, "demo", &format!("evt_{i}"), "{}")
                .await
                .status,
            202
        );
    }
    let reply = send_event(daemon, "demo", "evt_over", "{}").await;
    assert_eq!(reply.status, 503);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(
        redis.keys("hookd:{demo}:seen:evt_over"),
        Vec::<String>::new()
    );
    // A refusal that repeats with every request is logged once in a while,
    // not per request.
    for i in 0..20 {
        let id = format!("evt_over_{i}");
        assert_eq!(send_event(daemon, "demo", &id, "{}").await.status, 503);
    }
    assert_eq!(
        daemon
            .logs()
            .matches("backlog over ingest.max_backlog")
            .count(),
        1,
        "{}",
        daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_endpoints_and_metrics() {
    let h = setup("").await;
    let (_redis, daemon) = (&h.redis, &h.daemon);
    assert_eq!(send_event(daemon, "demo", "evt_m", "{}").await.status, 202);
    assert_eq!(send_event(daemon, "demo", "evt_m", "{}").await.status, 200);
    assert_eq!(get(&daemon.url("/health/live")).await.status, 200);
    assert_eq!(get(&daemon.url("/health/ready")).await.status, 200);
    let health = get(&daemon.url("/health")).await;
    assert_eq!(health.status, 200);
    let json = health.json();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["redis"], "up");
    assert_eq!(json["draining"], false);
    assert_eq!(json["workers"]["max"], 64);
    for key in ["backlog", "pending", "retrying", "dlq"] {
        assert!(
            json["sources"]["demo"][key].is_u64(),
            "{key} missing: {json}"
        );
    }
    for url in [daemon.url("/metrics"), daemon.admin_url("/metrics")] {
        let text = String::from_utf8_lossy(&get(&url).await.body).into_owned();
        assert!(
            text.contains(r#"hookd_ingest_requests_total{source="demo",outcome="queued"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"hookd_ingest_requests_total{source="demo",outcome="duplicate"} 1"#)
        );
        assert!(text.contains("hookd_ingest_duration_seconds"));
        assert!(text.contains(r#"hookd_build_info{version=""#));
        assert!(text.contains("hookd_workers_max 64"));
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            String::from_utf8_lossy(&get(&daemon.url("/metrics")).await.body)
                .contains("hookd_redis_up 1")
        })
        .await
    );
    assert_eq!(get(&daemon.admin_url("/health/ready")).await.status, 200);
}

/// Sends `ids` at once (one task each) and returns the statuses in order.
async fn send_concurrently(daemon: &Daemon, ids: Vec<String>) -> Vec<u16> {
    let url = daemon.url("/webhooks/demo");
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let url = url.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"id":"{id}"}}"#);
                request(
                    Method::POST,
                    &url,
                    &signed(&id, body.as_bytes()),
                    Bytes::from(body),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("request task"));
    }
    statuses
}

/// Group commit: concurrent requests share script calls, and every one is
/// still answered for its own event.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_events_are_stored_in_shared_round_trips() {
    // Deliveries throttled so that script calls are (nearly) all ingest.
    let h = Harness::builder()
        .source(SourceSpec::standard("demo", &dead_url()).with("rate_per_sec = 1"))
        .start()
        .await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    redis.cli(&["CONFIG", "RESETSTAT"]);
    let ids: Vec<String> = (0..300).map(|i| format!("evt_c{i}")).collect();
    let statuses = send_concurrently(daemon, ids).await;
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    assert_eq!(redis.keys("hookd:{demo}:seen:evt_c*").len(), 300);
    // Each in the stream, or in the retry set after its failed attempt.
    assert_stored_eventually(redis, 300).await;
    let script_calls = redis
        .cli(&["INFO", "commandstats"])
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .expect("evalsha calls");
    eprintln!("script calls for 300 concurrent events: {script_calls}");
    // Unbatched, ingest alone would take 300; background scripts (promoter,
    // claimer, the odd throttled delivery) add a few.
    assert!(
        script_calls < 200,
        "300 concurrent events took {script_calls} script calls: no batching"
    );
}

/// The same event id many times at once (a provider's impatient retries)
/// is stored once, even when the copies share one batch.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_duplicates_are_stored_once() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let statuses = send_concurrently(daemon, vec!["evt_same".to_owned(); 40]).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        39,
        "{statuses:?}"
    );
    assert_stored_eventually(redis, 1).await;
}

/// A batch that crosses `max_backlog` stores up to the limit and refuses
/// the rest, storing nothing for them.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_events_over_the_backlog_limit_are_refused_exactly() {
    let h = setup("[ingest]\nmax_backlog = 5\n").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    let ids: Vec<String> = (0..40).map(|i| format!("evt_b{i}")).collect();
    let statuses = send_concurrently(daemon, ids).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 202).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        35,
        "{statuses:?}"
    );
    assert_eq!(redis.keys("hookd:{demo}:seen:evt_b*").len(), 5);
}

/// Redis forgetting the scripts (restart, SCRIPT FLUSH) costs a reload,
/// not an answer: ingest loads the script again and stores the event.
#[tokio::test(flavor = "multi_thread")]
async fn flushed_scripts_are_reloaded_transparently() {
    let h = setup("").await;
    let (redis, daemon) = (&h.redis, &h.daemon);
    assert_eq!(send_event(daemon, "demo", "evt_s1", "{}").await.status, 202);
    assert_eq!(redis.cli(&["SCRIPT", "FLUSH"]).trim(), "OK");
    assert_eq!(send_event(daemon, "demo", "evt_s2", "{}").await.status, 202);
    assert_eq!(send_event(daemon, "demo", "evt_s2", "{}").await.status, 200);
    assert_eq!(redis.keys("hookd:{demo}:seen:evt_s*").len(), 2);
}

/// A request body sent in chunks with no length known in advance.
struct Chunks(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(
            self.0
                .pop_front()
                .map(|chunk| Ok(hyper::body::Frame::data(chunk))),
        )
    }
}
