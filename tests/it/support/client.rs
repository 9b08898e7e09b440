//! An HTTP client for tests, and requests signed the way providers sign.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{Daemon, SECRET};

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request; None on a connection error or after `timeout`.
async fn try_request(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
    timeout: Duration,
) -> Option<Reply> {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(k, v);
    }
    let req = builder.body(Full::new(body)).ok()?;
    let resp = tokio::time::timeout(timeout, client().request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Reply {
        status,
        headers,
        body,
    })
}

pub async fn request(
    method: Method,
    url: &str,
    headers: &[(String, String)],
    body: Bytes,
) -> Reply {
    try_request(method, url, headers, body, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("request to {url} failed or timed out"))
}

/// Like [`request`] but reports connection errors instead of panicking.
pub async fn try_post(url: &str, headers: &[(String, String)], body: Bytes) -> Option<Reply> {
    try_request(Method::POST, url, headers, body, Duration::from_secs(20)).await
}

/// A GET whose connection errors come back as status 0 (for polling).
pub async fn get(url: &str) -> Reply {
    try_request(Method::GET, url, &[], Bytes::new(), Duration::from_secs(10))
        .await
        .unwrap_or(Reply {
            status: 0,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        })
}

/// Standard-Webhooks headers for `body`, signed with [`SECRET`] now.
pub fn signed(id: &str, body: &[u8]) -> Vec<(String, String)> {
    signed_at(id, body, hookd::unix_secs())
}

pub fn signed_at(id: &str, body: &[u8], at: i64) -> Vec<(String, String)> {
    let config = hookd::config::VerifyConfig::StandardWebhooks {
        secrets: vec![hookd::config::Secret::literal(SECRET)],
        tolerance: Duration::from_secs(300),
    };
    let verifier = hookd::verify::Verifier::build(&config).expect("verifier");
    let mut headers = verifier
        .sign(body, at, id, "application/json", None)
        .expect("sign");
    headers.push(("content-type".into(), "application/json".into()));
    headers
}

/// POSTs a signed event to `source` and returns the answer.
pub async fn send_event(daemon: &Daemon, source: &str, id: &str, body: &str) -> Reply {
    request(
        Method::POST,
        &daemon.url(&format!("/webhooks/{source}")),
        &signed(id, body.as_bytes()),
        Bytes::copy_from_slice(body.as_bytes()),
    )
    .await
}
