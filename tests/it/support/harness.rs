//! One harness for the integration tests: a private Redis, a sink, and the
//! daemon configured to deliver there, written to a config file the CLI
//! can be pointed at too.
//!
//! `Harness::start()` gives one Standard Webhooks source `s`; a
//! [`HarnessBuilder`] adds sources, `[section]` TOML, environment, Redis
//! arguments. In a source's destination URL, `{sink}` stands for the sink.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tempfile::TempDir;

use super::{
    Daemon, Reply, Sink, SourceSpec, TestRedis, config, eventually, hookd_bin, request, send_event,
};

/// The placeholder for the sink's URL in destination URLs.
pub const SINK: &str = "{sink}";
/// The placeholder for the sink's `host:port`, to write a URL of one's own
/// (with credentials, say).
pub const SINK_HOST: &str = "{sink_host}";
/// Placeholders for the extra sinks of [`HarnessBuilder::sinks`]:
/// `SINKS[i]` stands for `Harness::sinks[i]`.
pub const SINKS: [&str; 3] = ["{sink0}", "{sink1}", "{sink2}"];

pub struct Harness {
    pub redis: TestRedis,
    pub sink: Sink,
    /// Extra sinks, one per destination of a routed source.
    pub sinks: Vec<Sink>,
    pub daemon: Daemon,
    /// The daemon's configuration file.
    pub config_path: PathBuf,
    admin_token: Option<String>,
    /// The environment the daemon (and `cli`) get on top of the test's.
    env: Vec<(String, String)>,
    _dir: TempDir,
}

/// Lays out Redis data before the daemon starts.
type Prepare = Box<dyn FnOnce(&TestRedis)>;

#[derive(Default)]
pub struct HarnessBuilder {
    sources: Vec<SourceSpec>,
    extra: String,
    env: Vec<(String, String)>,
    redis_args: Option<Vec<String>>,
    admin_token: Option<String>,
    wait_ready: bool,
    sinks: usize,
    prepare: Option<Prepare>,
}

impl HarnessBuilder {
    /// Adds a source (default: one standard source `s` to the sink).
    pub fn source(mut self, source: SourceSpec) -> Self {
        self.sources.push(source);
        self
    }

    /// TOML sections written before the sources.
    pub fn toml(mut self, extra: &str) -> Self {
        self.extra.push_str(extra);
        self.extra.push('\n');
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// redis-server arguments instead of "no persistence".
    pub fn redis_args(mut self, args: &[&str]) -> Self {
        self.redis_args = Some(args.iter().map(|a| a.to_string()).collect());
        self
    }

    /// Protects the admin listener with `token`; [`Harness::api`] sends it.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// Runs `prepare` on Redis before the daemon starts (to lay out data
    /// an earlier version left).
    pub fn prepare(mut self, prepare: impl FnOnce(&TestRedis) + 'static) -> Self {
        self.prepare = Some(Box::new(prepare));
        self
    }

    /// Starts `n` more sinks (up to [`SINKS`]`.len()`).
    pub fn sinks(mut self, n: usize) -> Self {
        assert!(n <= SINKS.len());
        self.sinks = n;
        self
    }

    /// Returns as soon as the listeners are bound, not when ready.
    pub fn without_waiting(mut self) -> Self {
        self.wait_ready = false;
        self
    }

    pub async fn start(self) -> Harness {
        let redis = match &self.redis_args {
            Some(args) => {
                TestRedis::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
            }
            None => TestRedis::start(),
        };
        if let Some(prepare) = self.prepare {
            prepare(&redis);
        }
        let sink = Sink::start().await;
        let mut sinks = Vec::new();
        for _ in 0..self.sinks {
            sinks.push(Sink::start().await);
        }
        let mut sources = self.sources;
        if sources.is_empty() {
            sources.push(SourceSpec::standard("s", SINK));
        }
        for source in &mut sources {
            let host = sink.addr.to_string();
            source.destination = source
                .destination
                .replace(SINK, &sink.url())
                .replace(SINK_HOST, &host);
            for route in &mut source.routes {
                route.url = route
                    .url
                    .replace(SINK, &sink.url())
                    .replace(SINK_HOST, &host);
                for (placeholder, extra) in SINKS.iter().zip(&sinks) {
                    route.url = route.url.replace(placeholder, &extra.url());
                }
            }
        }
        let mut extra = self.extra;
        if let Some(token) = &self.admin_token {
            extra.push_str(&format!(
                "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{token}\"\n"
            ));
        }
        let mut toml = config(&redis.url(), &extra, &sources);
        if self.admin_token.is_some() {
            // config() wrote an [admin] table of its own; keep the one with the token.
            toml = toml.replacen("[admin]\nlisten = \"127.0.0.1:0\"\n", "", 1);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("hookd.toml");
        std::fs::write(&config_path, &toml).expect("write config");
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let daemon = Daemon::start_env(&toml, &env).await;
        if self.wait_ready {
            daemon.wait_ready().await;
        }
        Harness {
            redis,
            sink,
            sinks,
            daemon,
            config_path,
            admin_token: self.admin_token,
            env: self.env,
            _dir: dir,
        }
    }
}

impl Harness {
    /// Redis, a sink that answers 200, and a ready daemon with one
    /// Standard Webhooks source `s` delivering to it.
    pub async fn start() -> Self {
        Self::builder().start().await
    }

    pub fn builder() -> HarnessBuilder {
        HarnessBuilder {
            wait_ready: true,
            ..HarnessBuilder::default()
        }
    }

    /// Another daemon on the same configuration (a restart after a kill,
    /// or a second instance), ready.
    pub async fn start_another(&self) -> Daemon {
        let toml = std::fs::read_to_string(&self.config_path).expect("config");
        Daemon::start_ready(&toml).await
    }

    /// The daemon's configuration.
    pub fn toml(&self) -> String {
        std::fs::read_to_string(&self.config_path).expect("config")
    }

    /// Stops the daemon (SIGTERM), writes `toml` as the configuration and
    /// starts a daemon on it, ready.
    pub async fn restart_with(&mut self, toml: &str) {
        self.daemon.signal("TERM");
        let status = self.daemon.wait_exit(Duration::from_secs(15)).await;
        assert!(status.success(), "{status}:\n{}", self.daemon.logs());
        std::fs::write(&self.config_path, toml).expect("write config");
        self.daemon = Daemon::start_ready(toml).await;
    }

    /// POSTs a signed event to `source`.
    pub async fn send(&self, source: &str, id: &str, body: &str) -> Reply {
        send_event(&self.daemon, source, id, body).await
    }

    /// POSTs a signed event to `source` with extra headers.
    pub async fn send_with(
        &self,
        source: &str,
        id: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut headers = super::signed(id, body.as_bytes());
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        request(
            Method::POST,
            &self.daemon.url(&format!("/webhooks/{source}")),
            &headers,
            Bytes::copy_from_slice(body.as_bytes()),
        )
        .await
    }

    /// A request to the admin listener, with the admin token if one is set
    /// (and the dashboard's `X-Hookd-Request` header otherwise).
    pub async fn api(&self, method: Method, path: &str) -> Reply {
        // The dashboard's header for changes; a bearer token needs none.
        let mut headers = vec![("x-hookd-request".to_owned(), "1".to_owned())];
        headers.extend(
            self.admin_token
                .iter()
                .map(|t| ("authorization".to_owned(), format!("Bearer {t}"))),
        );
        request(method, &self.daemon.admin_url(path), &headers, Bytes::new()).await
    }

    /// `hookd ARGS --config <the daemon's config>`.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(hookd_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("HOOKD_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run hookd");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits until `source` has nothing left to do: nothing unread, in
    /// flight or waiting for a retry. Then no delivery of its events can
    /// still come (short of a replay): the state-based fence for "nothing
    /// else happened".
    pub async fn settled(&self, source: &str) -> bool {
        eventually(Duration::from_secs(20), || async {
            self.redis.settled(source)
        })
        .await
    }

    /// Sends `id` and waits for the sink to have it. Deliveries run side
    /// by side, so it fences what was sent before it where a destination
    /// delivers one at a time (`max_in_flight = 1`), or for what had been
    /// delivered before it was sent.
    pub async fn fence(&self, source: &str, id: &str) {
        self.fence_on(&self.sink, source, id).await;
    }

    /// [`Harness::fence`] for another sink (a destination of a routed
    /// source).
    pub async fn fence_on(&self, sink: &Sink, source: &str, id: &str) {
        assert_eq!(self.send(source, id, "{}").await.status, 202, "fence {id}");
        let arrived = eventually(Duration::from_secs(20), || async {
            sink.ids().iter().any(|got| got == id)
        })
        .await;
        assert!(arrived, "fence {id} never arrived:\n{}", self.daemon.logs());
    }
}
