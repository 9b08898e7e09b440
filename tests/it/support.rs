//! Builders for integration tests: private `redis-server` processes, the
//! real `hookd` binary, and a programmable HTTP sink.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tempfile::TempDir;

pub const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWhvb2tk";

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

// ---------------------------------------------------------------- Redis --

/// Persistence that loses nothing acknowledged: AOF fsynced on every write.
const AOF_ALWAYS: [&str; 6] = [
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

pub struct TestRedis {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    args: Vec<String>,
}

impl TestRedis {
    /// A private redis-server without persistence.
    pub fn start() -> Self {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// With the append-only file fsynced on every write, so a restart keeps
    /// everything that was acknowledged.
    pub fn start_persistent() -> Self {
        Self::start_with(&AOF_ALWAYS)
    }

    pub fn start_with(extra: &[&str]) -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}). The integration tests need Redis 7: \
                     install it with `sudo apt-get install -y redis-server` (Debian/Ubuntu) \
                     or `brew install redis` (macOS)."
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.try_cli(&["PING"]).is_some_and(|r| r.trim() == "PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the server vanishes mid-whatever, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server hangs, connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.send_signal("STOP");
    }

    /// SIGCONT after [`Self::freeze`].
    pub fn thaw(&self) {
        self.send_signal("CONT");
    }

    fn send_signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("redis is running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Same port, same data directory (AOF is replayed if enabled).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// Sends many commands at once (`redis-cli --pipe`), each a list of
    /// arguments; panics unless every one succeeded.
    pub fn pipe(&self, commands: impl IntoIterator<Item = Vec<String>>) {
        use std::io::Write;
        let mut resp = Vec::new();
        for command in commands {
            write!(resp, "*{}\r\n", command.len()).unwrap();
            for arg in command {
                write!(resp, "${}\r\n{arg}\r\n", arg.len()).unwrap();
            }
        }
        let mut child = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .arg("--pipe")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli --pipe");
        child.stdin.take().unwrap().write_all(&resp).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("errors: 0"),
            "redis-cli --pipe: {text}"
        );
    }

    pub fn int(&self, args: &[&str]) -> i64 {
        let out = self.cli(args);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("redis-cli {args:?} answered {out:?}"))
    }

    /// Entries handed out and not yet acknowledged.
    pub fn pending(&self, source: &str) -> i64 {
        let out = self.cli(&["XPENDING", &format!("hookd:{{{source}}}:stream"), "hookd"]);
        out.lines()
            .next()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0)
    }

    pub fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }

    pub fn stream_len(&self, source: &str) -> i64 {
        self.int(&["XLEN", &format!("hookd:{{{source}}}:stream")])
    }

    pub fn dlq_len(&self, source: &str) -> i64 {
        self.int(&["XLEN", &format!("hookd:{{{source}}}:dlq")])
    }

    pub fn delayed_len(&self, source: &str) -> i64 {
        self.int(&["ZCARD", &format!("hookd:{{{source}}}:delayed")])
    }

    /// Asserts that Redis holds no event and no dedup key for `source`.
    pub fn assert_nothing_stored(&self, source: &str) {
        assert_eq!(
            self.keys(&format!("hookd:{{{source}}}:seen:*")),
            Vec::<String>::new()
        );
        assert_eq!(
            self.stream_len(source),
            0,
            "stream of {source} is not empty"
        );
        assert_eq!(self.delayed_len(source), 0);
        assert_eq!(self.dlq_len(source), 0);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

// --------------------------------------------------------------- Config --

/// A `[[sources]]` block.
pub struct SourceSpec {
    pub name: String,
    pub verify: String,
    pub destination: String,
    /// Extra keys for `[sources.destination]`.
    pub destination_extra: String,
}

impl SourceSpec {
    /// A Standard-Webhooks source signed with [`SECRET`].
    pub fn standard(name: &str, destination: &str) -> Self {
        Self {
            name: name.into(),
            verify: format!(r#"{{ scheme = "standard-webhooks", secrets = ["{SECRET}"] }}"#),
            destination: destination.into(),
            destination_extra: String::new(),
        }
    }

    pub fn with(mut self, destination_extra: &str) -> Self {
        self.destination_extra.push_str(destination_extra);
        self.destination_extra.push('\n');
        self
    }

    fn toml(&self) -> String {
        format!(
            "[[sources]]\nname = \"{}\"\nverify = {}\n[sources.destination]\nurl = \"{}\"\n{}\n",
            self.name, self.verify, self.destination, self.destination_extra
        )
    }
}

/// A full config: listeners on port 0, the given Redis, fast timings,
/// `extra` TOML (sections) and the sources.
pub fn config(redis_url: &str, extra: &str, sources: &[SourceSpec]) -> String {
    let mut toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[redis]
url = "{redis_url}"
{extra}
"#
    );
    for source in sources {
        toml.push_str(&source.toml());
    }
    toml
}

/// The same config with the public listener on a fixed port, so a
/// restarted daemon is found where clients left it.
pub fn listen_on(toml: &str, port: u16) -> String {
    toml.replacen(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
        1,
    )
}

// -------------------------------------------------------- Redis Cluster --

/// Three masters, no replicas, created with `redis-cli --cluster create`.
pub struct TestCluster {
    pub nodes: Vec<TestRedis>,
}

impl TestCluster {
    pub fn start() -> Self {
        // The cluster bus listens on port + 10000; both must be free.
        let mut ports = Vec::new();
        while ports.len() < 3 {
            let port = free_port();
            if port < 50000 && StdListener::bind(("127.0.0.1", port + 10000)).is_ok() {
                ports.push(port);
            }
        }
        let nodes: Vec<TestRedis> = ports
            .iter()
            .map(|port| {
                let mut redis = TestRedis {
                    port: *port,
                    dir: tempfile::tempdir().expect("tempdir"),
                    child: None,
                    args: [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .iter()
                    .chain(AOF_ALWAYS.iter())
                    .map(|s| s.to_string())
                    .collect(),
                };
                redis.spawn();
                redis
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port));
        }
        url
    }
}

// --------------------------------------------------------------- Daemon --

pub fn hookd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hookd"))
}

/// Runs the binary to completion (CLI commands): exit code, stdout, stderr.
pub fn hookd(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(hookd_bin())
        .args(args)
        .env_remove("HOOKD_CONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("run hookd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub struct Daemon {
    child: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<String>>,
    _dir: TempDir,
}

impl Daemon {
    pub async fn start(toml: &str) -> Self {
        Self::start_env(toml, &[]).await
    }

    pub async fn start_env(toml: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, toml).expect("write config");
        let mut child = Command::new(hookd_bin())
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info,hookd=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hookd");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line.split("addr=").nth(1) {
                        let kind = if line.contains("public listener") {
                            "public"
                        } else {
                            "admin"
                        };
                        if let Ok(addr) = addr.trim().parse::<SocketAddr>() {
                            let _ = tx.send((kind, addr));
                        }
                    }
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let (mut public, mut admin) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(15);
        while public.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(("public", addr)) => public = Some(addr),
                Ok((_, addr)) => admin = Some(addr),
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(50));
                        panic!("hookd exited early ({status}):\n{}", logs.lock().unwrap());
                    }
                    if left.is_zero() {
                        panic!("hookd did not bind:\n{}", logs.lock().unwrap());
                    }
                }
            }
        }
        Self {
            child,
            public: public.unwrap(),
            admin: admin.unwrap(),
            logs,
            _dir: dir,
        }
    }

    /// Starts and waits until `/health/ready` answers 200.
    pub async fn start_ready(toml: &str) -> Self {
        let daemon = Self::start(toml).await;
        daemon.wait_ready().await;
        daemon
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.public, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn wait_ready(&self) {
        let ok = eventually(Duration::from_secs(15), || async {
            get(&self.url("/health/ready")).await.status == 200
        })
        .await;
        assert!(ok, "hookd never became ready:\n{}", self.logs());
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("hookd did not exit within {timeout:?}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

// ------------------------------------------------------------ HTTP client --

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

// ----------------------------------------------------------------- Sink --

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
    let answer = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.default.lock().unwrap().clone())
        .unwrap_or_else(|| Answer::status(200));
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    // Recorded when answered, so "received" means "the sink finished it".
    state.received.lock().unwrap().push(Received {
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

// --------------------------------------------------------------- TestCa --

/// A private certificate authority and a server certificate it issued for
/// 127.0.0.1 and localhost, as a company CA would for an internal service.
pub struct TestCa {
    /// The CA certificate, PEM, for `SSL_CERT_FILE`.
    pub ca_pem: String,
    leaf: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    leaf_key: tokio_rustls::rustls::pki_types::PrivateKeyDer<'static>,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "hookd test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf certificate");
        Self {
            ca_pem: ca_cert.pem(),
            leaf: leaf.der().clone(),
            leaf_key: tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer::from(
                leaf_key.serialize_der(),
            )
            .into(),
        }
    }
}
