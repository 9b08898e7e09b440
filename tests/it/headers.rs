//! Which of the provider's headers reach the destination: hop-by-hop ones
//! do not, a header that is the source's secret does not (nor is it
//! stored or shown), and a delivery hookd signs carries one signature set.

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A Standard Webhooks check written from the specification, independent
/// of hookd's verifier, that prefers `svix-*` headers the way the official
/// `svix` libraries do.
fn svix_library_accepts(got: &Received, secret: &str) -> bool {
    let pick = |svix: &str, webhook: &str| {
        let svix = got.header(svix);
        if svix.is_empty() {
            got.header(webhook).to_owned()
        } else {
            svix.to_owned()
        }
    };
    let id = pick("svix-id", "webhook-id");
    let timestamp = pick("svix-timestamp", "webhook-timestamp");
    let signatures = pick("svix-signature", "webhook-signature");
    let engine = base64::engine::general_purpose::STANDARD;
    let key = engine
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret is base64");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&got.body);
    let expected = engine.encode(ring::hmac::sign(&key, &signed).as_ref());
    signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_hookd_signs_carries_only_its_own_signature() {
    let signing = "whsec_c2lnbmluZy1zZWNyZXQtb2YtaG9va2Q=";
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with(&format!("signing_secret = \"{signing}\"")))
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);

    // A Svix-style sender (Clerk, Resend, ...) signs with svix-* headers.
    let body = br#"{"type":"user.created"}"#;
    let svix: Vec<(String, String)> = signed("evt_svix", body)
        .into_iter()
        .map(|(k, v)| (k.replacen("webhook-", "svix-", 1), v))
        .collect();
    let reply = request(
        Method::POST,
        &daemon.url("/webhooks/s"),
        &svix,
        Bytes::from_static(body),
    )
    .await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    // A Standard Webhooks sender signs with webhook-* headers.
    assert_eq!(send_event(daemon, "s", "evt_std", "{}").await.status, 202);
    assert!(sink.wait_for(2, Duration::from_secs(10)).await);

    for got in sink.received() {
        for name in ["svix-id", "svix-timestamp", "svix-signature"] {
            assert_eq!(got.header(name), "", "{name} forwarded");
        }
        assert_eq!(got.headers.get_all("webhook-signature").iter().count(), 1);
        assert!(
            svix_library_accepts(&got, signing),
            "the destination cannot verify {}",
            got.header("webhook-id")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_signing_secret_the_providers_signature_is_passed_on() {
    let h = Harness::start().await;
    let sink = &h.sink;
    assert_eq!(h.send("s", "evt_pass", "{}").await.status, 202);
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    let got = &sink.received()[0];
    assert!(svix_library_accepts(got, SECRET), "provider signature lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_named_in_connection_are_not_forwarded() {
    let h = Harness::start().await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    // Written by hand: an HTTP client library might rewrite Connection.
    let body = b"{}";
    let mut head = format!(
        "POST /webhooks/s HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
         Connection: keep-alive, X-Hop-Custom\r\nX-Hop-Custom: private\r\nX-End-To-End: kept\r\n",
        body.len()
    );
    for (k, v) in signed("evt_hop", body) {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(daemon.public).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 202"));

    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    let got = &sink.received()[0];
    assert_eq!(
        got.header("x-hop-custom"),
        "",
        "a hop-by-hop header was forwarded"
    );
    assert_eq!(got.header("x-end-to-end"), "kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_that_is_the_secret_is_not_forwarded_stored_or_shown() {
    let token = "glpat-secret-token-4711";
    let mut source = SourceSpec::standard("gl", SINK);
    source.verify = format!(r#"{{ scheme = "gitlab", secrets = ["{token}"] }}"#);
    let h = Harness::builder().source(source).start().await;
    let (redis, sink, daemon) = (&h.redis, &h.sink, &h.daemon);
    // Rejected at once, so the event lands in the dead-letter queue.
    sink.set_default(Answer::status(400));

    let headers = vec![
        ("x-gitlab-token".to_owned(), token.to_owned()),
        ("x-gitlab-event".to_owned(), "Push Hook".to_owned()),
        ("x-gitlab-event-uuid".to_owned(), "uuid-1".to_owned()),
        ("content-type".to_owned(), "application/json".to_owned()),
    ];
    let reply = request(
        Method::POST,
        &daemon.url("/webhooks/gl"),
        &headers,
        Bytes::from_static(b"{\"object_kind\":\"push\"}"),
    )
    .await;
    assert_eq!(reply.status, 202);
    assert!(
        eventually(Duration::from_secs(10), || async {
            redis.dlq_len("gl") == 1
        })
        .await,
        "{}",
        daemon.logs()
    );

    let got = &sink.received()[0];
    assert_eq!(
        got.header("x-gitlab-token"),
        "",
        "the secret reached the destination"
    );
    assert_eq!(got.header("x-gitlab-event"), "Push Hook");
    let stored = redis.cli(&["XRANGE", "hookd:{gl}:dlq", "-", "+"]);
    assert!(!stored.contains(token), "the secret is stored in redis");
    assert!(stored.contains("uuid-1"));

    let page = get(&daemon.admin_url("/admin/dlq?source=gl")).await.json();
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let shown = get(&daemon.admin_url(&format!("/admin/dlq/gl/{id}"))).await;
    let shown = String::from_utf8_lossy(&shown.body).into_owned();
    assert!(shown.contains("x-gitlab-event"), "{shown}");
    let page = get(&daemon.admin_url(&format!("/ui/dlq/gl/{id}"))).await;
    let (code, cli, _) = h.cli(&["dlq", "show", &id]);
    assert_eq!(code, 0, "{cli}");
    for (what, text) in [
        ("admin API", shown),
        (
            "dashboard",
            String::from_utf8_lossy(&page.body).into_owned(),
        ),
        ("hookd dlq show", cli),
        ("log", daemon.logs()),
    ] {
        assert!(!text.contains(token), "{what} shows the secret:\n{text}");
    }
}
