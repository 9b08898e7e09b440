//! Connection deadlines and the connection cap, driven with raw sockets:
//! a connection that never finishes its first request's headers (over
//! HTTP/1 or HTTP/2), and one that sits idle between requests, is closed.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

async fn daemon_with(env: &[(&str, &str)]) -> Harness {
    let mut builder = Harness::builder();
    for (name, value) in env {
        builder = builder.env(name, value);
    }
    builder.start().await
}

/// Reads until the server closes the connection; how long that took, or
/// None if it was still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// HEADERS for `GET /health/live` on stream 1, HPACK-encoded by hand:
/// `:method GET` (static 2), `:scheme http` (static 6), `:path` (name 4,
/// literal value) and `:authority` (name 1, literal value).
fn h2_get_health() -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    block.push(0x44);
    block.push(b"/health/live".len() as u8);
    block.extend_from_slice(b"/health/live");
    block.extend_from_slice(&[0x41, 1, b'x']);
    let mut frame = vec![0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    frame
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_never_send_a_request_are_closed() {
    let Harness { daemon, .. } = &daemon_with(&[
        ("HOOKD_SERVER__HEADER_READ_TIMEOUT", "1s"),
        ("HOOKD_SERVER__IDLE_TIMEOUT", "60s"),
    ])
    .await;
    let limit = Duration::from_secs(4);
    let cases: [(&str, &[&[u8]]); 4] = [
        ("silent", &[]),
        ("half an HTTP/2 preface", &[b"PRI * HTTP/2.0\r\n"]),
        (
            "HTTP/2 preface and SETTINGS, then nothing",
            &[H2_PREFACE, H2_SETTINGS],
        ),
        (
            "half an HTTP/1 request head",
            &[b"POST /webhooks/s HTTP/1.1\r\nHost: x\r\n"],
        ),
    ];
    for (what, sends) in cases {
        let mut stream = TcpStream::connect(daemon.public).await.unwrap();
        for bytes in sends {
            stream.write_all(bytes).await.unwrap();
        }
        let took = closed_within(&mut stream, limit).await;
        assert!(
            took.is_some_and(|t| t >= Duration::from_millis(900)),
            "{what}: connection not closed after header_read_timeout (took {took:?})"
        );
    }
    // The admin listener obeys the same deadline.
    let mut stream = TcpStream::connect(daemon.admin).await.unwrap();
    assert!(
        closed_within(&mut stream, limit).await.is_some(),
        "admin listener"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_after_idle_timeout() {
    let Harness { daemon, .. } = &daemon_with(&[
        ("HOOKD_SERVER__HEADER_READ_TIMEOUT", "30s"),
        ("HOOKD_SERVER__IDLE_TIMEOUT", "1s"),
    ])
    .await;
    let limit = Duration::from_secs(5);

    // HTTP/1.1 keep-alive: one request answered, then nothing.
    let mut stream = TcpStream::connect(daemon.public).await.unwrap();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let took = closed_within(&mut stream, limit).await;
    assert!(
        took.is_some(),
        "idle HTTP/1.1 keep-alive connection left open"
    );

    // HTTP/2 (h2c, prior knowledge): one request answered, then nothing.
    let mut stream = TcpStream::connect(daemon.public).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    stream.write_all(H2_SETTINGS).await.unwrap();
    stream.write_all(&h2_get_health()).await.unwrap();
    // The answer: some frame of type HEADERS (1) on stream 1.
    let mut seen = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before answering");
            seen.extend_from_slice(&buf[..n]);
            let mut at = 0;
            while at + 9 <= seen.len() {
                let len = (usize::from(seen[at]) << 16)
                    | (usize::from(seen[at + 1]) << 8)
                    | usize::from(seen[at + 2]);
                if seen[at + 3] == 1 && seen[at + 5..at + 9] == [0, 0, 0, 1] {
                    return;
                }
                at += 9 + len;
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "no HTTP/2 answer");
    let took = closed_within(&mut stream, limit).await;
    assert!(took.is_some(), "idle HTTP/2 connection left open");
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_max_connections_new_connections_wait_to_be_accepted() {
    let Harness { daemon, .. } = &daemon_with(&[
        ("HOOKD_SERVER__HEADER_READ_TIMEOUT", "30s"),
        ("HOOKD_SERVER__MAX_CONNECTIONS", "2"),
    ])
    .await;
    // Both slots taken by connections that send nothing.
    let first = TcpStream::connect(daemon.public).await.unwrap();
    let _second = TcpStream::connect(daemon.public).await.unwrap();
    // The third is held in the kernel's backlog: connected, not served.
    let mut third = TcpStream::connect(daemon.public).await.unwrap();
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond server.max_connections");
    // A slot frees up: the waiting connection is accepted and answered.
    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}
