//! The request a delivery sends: the stored body and headers, minus what a
//! proxy must not forward, plus hookd's own headers and signature.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::Full;

use super::route::Route;
use crate::clock::unix_secs;
use crate::queue::{Envelope, decode_headers, header_count};
use crate::source::FRAMING_HEADERS;
use crate::verify::standard_webhooks;

/// A provider's Standard Webhooks / Svix signature set. When hookd signs a
/// delivery itself these go, so the destination never sees two sets (the
/// svix libraries read `svix-*` first and would check the provider's).
const SIGNATURE_HEADERS: &[&str] = &[
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
];

/// Headers hookd sets on every delivery (host, content-type, the webhook-*
/// trio and the four x-hookd-* headers).
const ADDED_HEADERS: usize = 9;

static WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
static WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
static WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
static X_HOOKD_SOURCE: HeaderName = HeaderName::from_static("x-hookd-source");
static X_HOOKD_DESTINATION: HeaderName = HeaderName::from_static("x-hookd-destination");
static X_HOOKD_EVENT_TYPE: HeaderName = HeaderName::from_static("x-hookd-event-type");
static X_HOOKD_ATTEMPT: HeaderName = HeaderName::from_static("x-hookd-attempt");

/// The POST for one attempt of `envelope` to `route`'s destination.
pub fn build(
    route: &Route,
    envelope: &Envelope,
    attempt: u32,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let mut request = Request::builder()
        .method(Method::POST)
        .body(Full::new(envelope.body.clone()))?;
    // Sized once: growing the map while inserting rehashes it.
    let destination = &route.destination;
    *request.headers_mut() = HeaderMap::with_capacity(
        header_count(&envelope.headers) + ADDED_HEADERS + destination.headers.len(),
    );
    route.connections.prepare(&mut request);
    let headers = request.headers_mut();
    // Headers the provider's `Connection` names are hop-by-hop too.
    let mut hop_by_hop: Vec<&[u8]> = Vec::new();
    for (name, value) in decode_headers(&envelope.headers) {
        if name.eq_ignore_ascii_case(b"connection") {
            hop_by_hop.extend(
                value
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                    .filter(|token| !token.is_empty()),
            );
        }
    }
    let secret_headers = route.source.verifier.secret_headers();
    let signing = destination.signing_key.is_some();
    for (name, value) in decode_headers(&envelope.headers) {
        // The value shares the stored headers' buffer instead of a copy.
        let value = HeaderValue::from_maybe_shared(envelope.headers.slice_ref(value));
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), value) else {
            continue;
        };
        let lower = name.as_str();
        // Not forwarded: the framing headers (RFC 9110 §7.6.1's hop-by-hop
        // ones and those hyper computes), the provider's `Host` (hookd's
        // own; the destination's is sent), the source's secret, a replaced
        // signature set, and what the provider's `Connection` names.
        if name == HOST
            || FRAMING_HEADERS.contains(&lower)
            || secret_headers.contains(&lower)
            || (signing && SIGNATURE_HEADERS.contains(&lower))
            || hop_by_hop
                .iter()
                .any(|token| token.eq_ignore_ascii_case(lower.as_bytes()))
        {
            continue;
        }
        headers.append(name, value);
    }
    if let Some(ct) = envelope.content_type.as_ref()
        && let Ok(value) = HeaderValue::from_maybe_shared(ct.clone())
    {
        headers.insert(CONTENT_TYPE, value);
    }
    let text = |s: &str| HeaderValue::from_str(s);
    headers.insert(WEBHOOK_ID.clone(), text(&envelope.event_id)?);
    headers.insert(X_HOOKD_SOURCE.clone(), text(&route.source.name)?);
    headers.insert(X_HOOKD_DESTINATION.clone(), text(&destination.name)?);
    headers.insert(X_HOOKD_EVENT_TYPE.clone(), text(&envelope.event_type)?);
    headers.insert(X_HOOKD_ATTEMPT.clone(), HeaderValue::from(attempt));
    // The destination's own headers win over the provider's of that name.
    for (name, value) in &destination.headers {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(key) = &destination.signing_key {
        let ts = unix_secs().to_string();
        let signature = standard_webhooks::signature(key, &envelope.event_id, &ts, &envelope.body);
        headers.insert(WEBHOOK_TIMESTAMP.clone(), text(&ts)?);
        headers.insert(WEBHOOK_SIGNATURE.clone(), text(&signature)?);
    }
    Ok(request)
}
