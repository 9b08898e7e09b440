//! What each listener answers. The public listener serves providers
//! (`/webhooks/*`) and probes; the admin listener serves operators (the
//! admin API and dashboard), probes, and the demo sink. Both export
//! `/metrics`.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::AdminHandle;
use crate::health::HealthHandle;
use crate::ingest::IngestHandle;
use crate::response::{HttpResponse, empty, error, with_type};
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
        let path = req.uri().path();
        if let Some(name) = path.strip_prefix("/webhooks/") {
            let name = name.to_owned();
            return self.ingest.handle(&name, req).await;
        }
        probes_and_metrics(&self.health, &self.metrics, path).await
    }
}

impl Handler for AdminRoutes {
    async fn handle(&self, req: Request<Incoming>) -> HttpResponse {
        let path = req.uri().path();
        if crate::admin::handles(path) {
            return self.admin.route(req).await;
        }
        if path == DEMO_SINK_PATH {
            return demo_sink(req).await;
        }
        probes_and_metrics(&self.health, &self.metrics, path).await
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
        return error(StatusCode::METHOD_NOT_ALLOWED, "only POST is allowed");
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

/// `text` with control characters escaped: a body is the sender's, and a
/// raw newline in it would start what looks like a log line of its own.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
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
    use super::printable;

    #[test]
    fn a_body_cannot_start_a_log_line_of_its_own() {
        assert_eq!(printable(r#"{"a":"b"}"#), r#"{"a":"b"}"#);
        assert_eq!(
            printable("x\nINFO forged\r\u{1b}[31m"),
            "x\\nINFO forged\\r\\u{1b}[31m"
        );
    }
}
