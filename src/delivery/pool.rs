//! HTTP/1 keep-alive connections to one destination.
//!
//! hyper-util's pooled client hashes a pool key, locks a shared map and
//! wraps every checkout for each request it sends; with one fixed
//! destination per source none of that is needed. A destination keeps a
//! stack of idle connections (most recently used first, so a quiet
//! destination lets the rest age out) and a request takes one or dials a
//! new one. What the pooled client gave that matters is kept: a request
//! that a reused connection never sent (the peer had closed it while it
//! sat idle) goes out again on another connection at once.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::debug;

/// A connection idle this long is dropped rather than reused. Servers
/// close idle connections after anything from a few seconds (Node.js: 5 s)
/// to minutes; the closed check and the resend cover the short ones, and
/// this bound keeps a long-idle connection (a NAT or proxy on the way may
/// have forgotten it without telling anyone) from taking a real attempt.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection or protocol failure of one request.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot connect to the destination")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("http/1 handshake with the destination failed")]
    Handshake(#[source] hyper::Error),
    #[error("exchange with the destination failed")]
    Exchange(#[source] hyper::Error),
}

type Sender = SendRequest<Full<Bytes>>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// Connections to one destination URL.
pub struct Connections {
    connector: HttpsConnector<HttpConnector>,
    /// Full URL, what the connector dials.
    target: Uri,
    /// Origin-form request target (`/path?query`) sent on the wire.
    path: Uri,
    host: HeaderValue,
    idle: Mutex<Vec<Idle>>,
    /// Where each connection's I/O task runs.
    tasks: TaskTracker,
}

/// A connection handed out for one exchange; give it back with
/// [`Connections::release`] once the response body has been read to the
/// end, or drop it to close the connection.
pub struct Lease {
    sender: Sender,
}

impl Connections {
    pub fn new(connector: HttpsConnector<HttpConnector>, target: Uri, tasks: TaskTracker) -> Self {
        let path = target
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"))
            .into();
        let host = host_header(&target);
        Self {
            connector,
            target,
            path,
            host,
            idle: Mutex::new(Vec::new()),
            tasks,
        }
    }

    /// The request target and `Host` header a request for this
    /// destination needs; the caller builds the rest.
    pub fn prepare(&self, request: &mut Request<Full<Bytes>>) {
        *request.uri_mut() = self.path.clone();
        request.headers_mut().insert(HOST, self.host.clone());
    }

    /// Sends `request` on an idle connection or a new one.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        loop {
            let (mut sender, reused) = match self.checkout().await {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, Lease { sender })),
                Err(mut failed) => match failed.take_message() {
                    // Never written: the connection had been closed by the
                    // peer while idle. Safe to send again; a fresh
                    // connection failing this way is a real error.
                    Some(unsent) if reused => {
                        debug!(error = %failed.error(), "idle connection was closed; sending on another");
                        request = unsent;
                    }
                    _ => return Err(SendError::Exchange(failed.into_error())),
                },
            }
        }
    }

    /// Keeps the connection for the next request.
    pub fn release(&self, lease: Lease) {
        if lease.sender.is_closed() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The oldest sit at the bottom of the stack; a busy destination
        // never reaches them, so expire them here.
        if idle
            .first()
            .is_some_and(|c| now.duration_since(c.since) > IDLE_TIMEOUT)
        {
            idle.retain(|c| now.duration_since(c.since) <= IDLE_TIMEOUT);
        }
        idle.push(Idle {
            sender: lease.sender,
            since: now,
        });
    }

    /// The most recently used idle connection that is still open.
    async fn checkout(&self) -> Option<Sender> {
        loop {
            let Idle { mut sender, since } = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()?
            };
            if sender.is_closed() || since.elapsed() > IDLE_TIMEOUT {
                continue;
            }
            // Released right after its response: the connection task may
            // not yet have noticed the exchange is over.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<Sender, SendError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector
            .call(self.target.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(SendError::Handshake)?;
        // The connection's I/O runs on its own task and ends once the
        // sender is dropped (closed, expired, or the pipeline is gone).
        self.tasks.spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "destination connection closed with an error");
            }
        });
        Ok(sender)
    }
}

/// `host` or `host:port` when the port is not the scheme's default, as
/// browsers and hyper's pooled client send it.
fn host_header(uri: &Uri) -> HeaderValue {
    let host = uri.host().unwrap_or_default();
    let default_port = if uri.scheme() == Some(&Scheme::HTTPS) {
        443
    } else {
        80
    };
    let text = match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_leaves_out_default_ports() {
        let host = |url: &str| host_header(&url.parse().unwrap());
        assert_eq!(host("http://example.com/x"), "example.com");
        assert_eq!(host("http://example.com:80/x"), "example.com");
        assert_eq!(host("https://example.com:443/"), "example.com");
        assert_eq!(host("http://127.0.0.1:3000/hook"), "127.0.0.1:3000");
        assert_eq!(host("https://example.com:8443"), "example.com:8443");
        assert_eq!(host("http://[::1]:8080/"), "[::1]:8080");
    }
}
