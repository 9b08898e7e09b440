//! The accept loop both listeners share: connection deadlines, the
//! connection cap, and a graceful close on shutdown. What a request gets
//! is the [`Handler`]'s business (`routes`).

mod connection;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::ServerConfig;
use crate::response::HttpResponse;

/// Answers the requests of one listener.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: http::Request<Incoming>) -> impl Future<Output = HttpResponse> + Send;
}

/// The connection limits of `[server]`, for both listeners.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    max_connections: usize,
}

impl Limits {
    pub fn build(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections: server.max_connections,
        }
    }
}

/// Accepts connections until `token` is cancelled, then lets the open
/// connections finish their current request and closes them. At most
/// `max_connections` are served at once: beyond that the listener stops
/// accepting and the kernel's backlog holds the rest. Every connection
/// runs on `tasks`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    limits: Limits,
    handler: Arc<H>,
    token: CancellationToken,
    tasks: TaskTracker,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            _ = token.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off briefly
                    // rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = connection::Activity::new();
        let service = {
            let (handler, activity) = (handler.clone(), activity.clone());
            service_fn(move |req| {
                let handler = handler.clone();
                let request = activity.request_started();
                async move {
                    let response = handler.handle(req).await;
                    drop(request);
                    Ok::<_, Infallible>(response)
                }
            })
        };
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        let (first_request, idle) = (limits.header_read_timeout, limits.idle_timeout);
        tasks.spawn(async move {
            let _slot = slot;
            tokio::select! {
                result = conn => if let Err(e) = result {
                    debug!(%peer, error = %e, "connection ended with an error");
                },
                _ = connection::expired(&activity, first_request, idle) => {
                    debug!(%peer, "closing a connection with no request in progress");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
