//! What each listener answers. The public listener serves providers
//! (`/webhooks/*`) and probes; the admin listener serves operators (the
//! admin API and dashboard), probes, and the demo sink. Both export
//! `/metrics`.

use std::borrow::Cow;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::AdminHandle;
use crate::health::HealthHandle;
use crate::ingest::IngestHandle;
use crate::response::{HttpResponse, empty, error, method_not_allowed, with_type};
use crate::server::Handler;

/// A destination built into the admin listener so the shipped config works
/// without a service of your own: it logs each delivery and answers 204.
pub const DEMO_SINK_PATH: &str = "/demo/sink";

pub struct PublicRoutes {
    pub ingest: IngestHandle,
    pub health: HealthHandle,
    pub metrics: PrometheusHandle,
}

pub struct AdminRoutes {
    pub admin: AdminHandle,
    pub health: HealthHandle,
    pub metrics: PrometheusHandle,
}

impl Handler for PublicRoutes {
    async fn handle(&self, req: Request<Incoming>) -> HttpResponse {
        let path = normalized_path(req.uri().path()).into_owned();
        if let Some(name) = path.strip_prefix("/webhooks/") {
            return self.ingest.handle(name, req).await;
        }
        probes_and_metrics(&self.health, &self.metrics, &path).await
    }
}

impl Handler for AdminRoutes {
    async fn handle(&self, req: Request<Incoming>) -> HttpResponse {
        let path = normalized_path(req.uri().path()).into_owned();
        if crate::admin::handles(&path) {
            return self.admin.route(&path, req).await;
        }
        if path == DEMO_SINK_PATH {
            return demo_sink(req).await;
        }
        probes_and_metrics(&self.health, &self.metrics, &path).await
    }
}

async fn probes_and_metrics(
    health: &HealthHandle,
    metrics: &PrometheusHandle,
    path: &str,
) -> HttpResponse {
    match path {
        "/health/live" => health.live(),
        "/health/ready" => health.ready(),
        "/health" => health.summary().await,
        "/metrics" => with_type(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            Bytes::from(metrics.render()),
        ),
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn demo_sink(req: Request<Incoming>) -> HttpResponse {
    if req.method() != Method::POST {
        return method_not_allowed("POST");
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, source, destination, event_type, attempt) = (
        header("webhook-id"),
        header("x-hookd-source"),
        header("x-hookd-destination"),
        header("x-hookd-event-type"),
        header("x-hookd-attempt"),
    );
    let body = Limited::new(req.into_body(), 1 << 20)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    tracing::info!(
        webhook_id = %id,
        source = %source,
        destination = %destination,
        event_type = %event_type,
        attempt = %attempt,
        body = %printable(&String::from_utf8_lossy(&body[..body.len().min(200)])),
        "demo sink received a delivery"
    );
    empty(StatusCode::NO_CONTENT)
}

/// `path` with percent-encoded unreserved characters decoded, as RFC 3986
/// §6.2.2.2 makes them equivalent (`/webhooks/st%72ipe` is
/// `/webhooks/stripe`). Anything else stays encoded: a `%2F` never splits a
/// segment.
fn normalized_path(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let decoded = match (bytes[at], bytes.get(at + 1), bytes.get(at + 2)) {
            (b'%', Some(&high), Some(&low)) => hex(high)
                .zip(hex(low))
                .map(|(high, low)| (high * 16 + low) as u8)
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')),
            _ => None,
        };
        match decoded {
            Some(b) => {
                out.push(b);
                at += 3;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    // ASCII replaced ASCII, so the bytes are still UTF-8.
    String::from_utf8(out).map_or(Cow::Borrowed(path), Cow::Owned)
}

/// `text` with control characters escaped: a body is the sender's, and a
/// raw newline in it would start what looks like a log line of its own.
fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::{normalized_path, printable};

    #[test]
    fn percent_encoded_unreserved_characters_are_decoded_and_nothing_else() {
        assert_eq!(normalized_path("/webhooks/stripe"), "/webhooks/stripe");
        assert_eq!(normalized_path("/webhooks/st%72ipe"), "/webhooks/stripe");
        assert_eq!(
            normalized_path("/webhooks/a%2Db%2ec%5F%7e"),
            "/webhooks/a-b.c_~"
        );
        assert_eq!(normalized_path("/webhooks/a%2Fb"), "/webhooks/a%2Fb");
        assert_eq!(normalized_path("/webhooks/a%20b%25"), "/webhooks/a%20b%25");
        assert_eq!(normalized_path("/webhooks/a%7"), "/webhooks/a%7");
        assert_eq!(normalized_path("/webhooks/a%zz%"), "/webhooks/a%zz%");
    }

    #[test]
    fn a_body_cannot_start_a_log_line_of_its_own() {
        assert_eq!(printable(r#"{"a":"b"}"#), r#"{"a":"b"}"#);
        assert_eq!(
            printable("x\nINFO forged\r\u{1b}[31m"),
            "x\\nINFO forged\\r\\u{1b}[31m"
        );
    }
}
