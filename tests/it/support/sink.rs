//! HTTP servers standing in for the user's services: a programmable sink
//! that records every request, and one that closes idle connections.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::{TestCa, eventually, free_port};

/// What the sink answers to one request.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(String, String)>,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query, as requested.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct SinkState {
    script: Mutex<VecDeque<Answer>>,
    default: Mutex<Option<Answer>>,
    /// Answers for one event id (Webhook-Id), before the script.
    by_id: Mutex<std::collections::HashMap<String, Answer>>,
    received: Mutex<Vec<Received>>,
    current: AtomicUsize,
    max: AtomicUsize,
    connections: AtomicUsize,
}

/// A real HTTP server standing in for the user's service.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    state: Arc<SinkState>,
    scheme: &'static str,
}

impl Sink {
    /// Answers 200 to everything unless programmed otherwise.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: &str) -> Self {
        Self::serve(addr, None).await
    }

    /// The same sink over https, with a certificate for 127.0.0.1 and
    /// localhost issued by `ca`.
    pub async fn start_tls(ca: &TestCa) -> Self {
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(vec![ca.leaf.clone()], ca.leaf_key.clone_key())
        .expect("sink certificate");
        Self::serve("127.0.0.1:0", Some(Arc::new(config).into())).await
    }

    async fn serve(addr: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(SinkState::default());
        let st = state.clone();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(st, req).await) }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        // A client that refuses the certificate ends the
                        // handshake; that connection simply goes away.
                        Some(tls) => {
                            if let Ok(stream) = tls.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                    }
                });
            }
        });
        Self {
            addr,
            state,
            scheme,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://{}/hook", self.scheme, self.addr)
    }

    /// Answers for the next requests, in order; then the default.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Answers every request for event `id` with `answer`.
    pub fn answer_id(&self, id: &str, answer: Answer) {
        self.state.by_id.lock().unwrap().insert(id.into(), answer);
    }

    pub fn set_default(&self, answer: Answer) {
        *self.state.default.lock().unwrap() = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// Webhook-Id of every request received (with repeats).
    pub fn ids(&self) -> Vec<String> {
        self.received()
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect()
    }

    /// Requests the sink is still answering.
    pub fn in_progress(&self) -> usize {
        self.state.current.load(Ordering::SeqCst)
    }

    pub fn max_concurrency(&self) -> usize {
        self.state.max.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        eventually(timeout, || async { self.count() >= n }).await
    }
}

async fn handle(state: Arc<SinkState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let now = state.current.fetch_add(1, Ordering::SeqCst) + 1;
    state.max.fetch_max(now, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let by_id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|id| state.by_id.lock().unwrap().get(id).cloned());
    let answer = by_id
        .or_else(|| state.script.lock().unwrap().pop_front())
        .or_else(|| state.default.lock().unwrap().clone())
        .unwrap_or_else(|| Answer::status(200));
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    // Recorded when answered, so "received" means "the sink finished it".
    state.received.lock().unwrap().push(Received {
        target: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    state.current.fetch_sub(1, Ordering::SeqCst);
    let mut response = Response::new(Full::new(Bytes::from_static(b"sink says hi")));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap();
    for (k, v) in answer.headers {
        response.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(&v).unwrap(),
        );
    }
    response
}

/// A destination that keeps connections alive without announcing a limit,
/// then closes each one after it has sat idle for `idle`, as servers with
/// a keep-alive timeout do. A client that reuses such a connection must
/// notice, or resend on a new one, without costing the event an attempt.
/// Records the `x-hookd-attempt` header of every request.
pub struct IdleClosingSink {
    pub addr: SocketAddr,
    attempts: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl IdleClosingSink {
    pub async fn start(idle: Duration) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen, accepted) = (attempts.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        // The next request, or close once idle too long.
                        let head_end = loop {
                            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            let mut chunk = [0u8; 4096];
                            match tokio::time::timeout(idle, stream.read(&mut chunk)).await {
                                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                _ => return,
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                        let header = |name: &str| {
                            head.lines()
                                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                                .map(|v| v.trim().to_owned())
                        };
                        let length: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        while buf.len() < head_end + length {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                                _ => return,
                            }
                        }
                        buf.drain(..head_end + length);
                        seen.lock()
                            .unwrap()
                            .push(header("x-hookd-attempt").unwrap_or_default());
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            attempts,
            connections,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// `x-hookd-attempt` of each request received, in order.
    pub fn attempts(&self) -> Vec<String> {
        self.attempts.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A URL where nothing listens.
pub fn dead_url() -> String {
    format!("http://127.0.0.1:{}/hook", free_port())
}
