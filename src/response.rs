//! HTTP answers every handler builds: JSON bodies, errors, 503s with
//! `Retry-After`. A leaf: it knows nothing of hookd's state.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

pub type HttpResponse = Response<Full<Bytes>>;

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    with_type(status, "application/json", Bytes::from(bytes))
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }))
}

/// 405 for a path that exists, naming in `Allow` (and in words) the
/// methods it takes, e.g. `"GET, DELETE"`.
pub fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("method not allowed: use {allow}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// 503 telling the client when to try again (seconds).
pub fn unavailable(message: &str, retry_after: &'static str) -> HttpResponse {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(retry_after));
    response
}

pub fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// 303 to `to`.
pub fn redirect(to: &str) -> HttpResponse {
    let mut response = empty(StatusCode::SEE_OTHER);
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}
