//! Private `redis-server` processes (and a three-master cluster) in temp
//! dirs, killed on drop, that tests may kill, restart, freeze and fill.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;

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
    pub(super) dir: TempDir,
    pub(super) child: Option<Child>,
    pub(super) args: Vec<String>,
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
        redis.spawn_on_a_free_port(free_port);
        redis
    }

    /// Starts the server; if its port was taken meanwhile (a free port is
    /// only free until someone binds it: another test's server, or any
    /// outgoing connection's ephemeral port), on another from `port`.
    fn spawn_on_a_free_port(&mut self, mut port: impl FnMut() -> u16) {
        for _ in 0..4 {
            if self.try_spawn() {
                return;
            }
            self.kill();
            self.port = port();
        }
        self.spawn();
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "redis-server on port {} did not come up",
            self.port
        );
    }

    /// Whether the server came up and answers.
    fn try_spawn(&mut self) -> bool {
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
            // Its own answer: another test's server may hold the port.
            let ours = format!("process_id:{}\r", self.pid());
            if self
                .try_cli(&["INFO", "server"])
                .is_some_and(|info| info.contains(&ours))
            {
                return true;
            }
            // Exited: its port (or the cluster bus's) was taken.
            if self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some())
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
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
    /// Returns once the kernel shows it stopped, so nothing sent after
    /// this is answered.
    pub fn freeze(&self) {
        self.send_signal("STOP");
        let pid = self.child.as_ref().expect("redis is running").id();
        let stopped = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The state follows the parenthesised command name.
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.trim_start().chars().next()
                })
                .is_some_and(|state| state == 'T')
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while !stopped() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
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
        // A server started with --requirepass is talked to with it.
        let password = self
            .args
            .iter()
            .position(|a| a == "--requirepass")
            .and_then(|i| self.args.get(i + 1));
        let auth: Vec<&str> = match password {
            Some(password) => vec!["--no-auth-warning", "-a", password],
            None => Vec::new(),
        };
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(auth)
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

    /// The consumer groups of `source`'s stream with their pending counts.
    pub fn groups(&self, source: &str) -> Vec<(String, i64)> {
        self.group_infos(source)
            .into_iter()
            .map(|g| (g.name, g.pending))
            .collect()
    }

    /// What XINFO GROUPS says of each group of `source`'s stream.
    pub fn group_infos(&self, source: &str) -> Vec<GroupInfo> {
        let out = self
            .try_cli(&["XINFO", "GROUPS", &format!("hookd:{{{source}}}:stream")])
            .unwrap_or_default();
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        let mut groups = Vec::new();
        let mut current: Option<GroupInfo> = None;
        for pair in lines.chunks(2) {
            let [key, value] = pair else { continue };
            match *key {
                "name" => {
                    groups.extend(current.take());
                    current = Some(GroupInfo {
                        name: value.to_string(),
                        ..GroupInfo::default()
                    });
                }
                "pending" => {
                    if let Some(g) = &mut current {
                        g.pending = value.parse().unwrap_or(0);
                    }
                }
                "lag" => {
                    if let Some(g) = &mut current {
                        g.lag = value.parse().ok();
                    }
                }
                "last-delivered-id" => {
                    if let Some(g) = &mut current {
                        g.last_delivered = value.to_string();
                    }
                }
                _ => {}
            }
        }
        groups.extend(current);
        groups
    }

    /// Entries handed out and not yet acknowledged, over every destination.
    pub fn pending(&self, source: &str) -> i64 {
        self.groups(source).iter().map(|(_, n)| n).sum()
    }

    /// Entries handed out to `destination` and not yet acknowledged.
    pub fn pending_for(&self, source: &str, destination: &str) -> i64 {
        self.groups(source)
            .iter()
            .find(|(name, _)| name == destination)
            .map_or(0, |(_, n)| *n)
    }

    pub fn keys(&self, pattern: &str) -> Vec<String> {
        lines(&self.cli(&["--scan", "--pattern", pattern]))
    }

    pub fn stream_len(&self, source: &str) -> i64 {
        self.int(&["XLEN", &format!("hookd:{{{source}}}:stream")])
    }

    /// The ids of `source`'s stream entries, oldest first.
    pub fn stream_ids(&self, source: &str) -> Vec<String> {
        let script = "local ids = {} \
            for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do ids[#ids + 1] = e[1] end \
            return ids";
        lines(&self.cli(&["EVAL", script, "1", &format!("hookd:{{{source}}}:stream")]))
    }

    /// What `source`'s ids list holds, oldest first.
    pub fn listed_ids(&self, source: &str) -> Vec<String> {
        lines(&self.cli(&["LRANGE", &format!("hookd:{{{source}}}:ids"), "0", "-1"]))
    }

    pub fn dlq_len(&self, source: &str) -> i64 {
        self.int(&["XLEN", &format!("hookd:{{{source}}}:dlq")])
    }

    /// Entries waiting for a retry, over every destination.
    pub fn retrying(&self, source: &str) -> i64 {
        self.keys(&format!("hookd:{{{source}}}:d:*:retry"))
            .iter()
            .map(|key| self.int(&["ZCARD", key]))
            .sum()
    }

    /// Nothing of `source` is unread, in flight or waiting for a retry
    /// (the event log may still hold finished events).
    pub fn settled(&self, source: &str) -> bool {
        let groups = self.group_infos(source);
        if groups.is_empty() {
            return self.stream_len(source) == 0;
        }
        let newest = self
            .cli(&[
                "XREVRANGE",
                &format!("hookd:{{{source}}}:stream"),
                "+",
                "-",
                "COUNT",
                "1",
            ])
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let read_all = |g: &GroupInfo| match g.lag {
            Some(lag) => lag == 0,
            None => newest.is_empty() || g.last_delivered == newest,
        };
        groups.iter().all(|g| g.pending == 0 && read_all(g)) && self.retrying(source) == 0
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
        assert_eq!(self.retrying(source), 0);
        assert_eq!(self.dlq_len(source), 0);
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One consumer group of a stream.
#[derive(Debug, Default, Clone)]
pub struct GroupInfo {
    pub name: String,
    pub pending: i64,
    /// Entries not yet read (None when Redis cannot tell).
    pub lag: Option<i64>,
    pub last_delivered: String,
}

/// Three masters, created with `redis-cli --cluster create`; without
/// replicas, or with one each ([`TestCluster::with_replicas`]: `nodes`
/// then holds the masters first, then their replicas).
pub struct TestCluster {
    pub nodes: Vec<TestRedis>,
}

impl TestCluster {
    pub fn start() -> Self {
        Self::create(0)
    }

    /// Three masters with a replica each, which the cluster promotes when
    /// its master fails (after `cluster-node-timeout`, 2 s).
    pub fn with_replicas() -> Self {
        Self::create(1)
    }

    fn create(replicas: usize) -> Self {
        let nodes: Vec<TestRedis> = (0..3 * (1 + replicas))
            .map(|_| {
                let mut redis = TestRedis {
                    port: cluster_port(),
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
                redis.spawn_on_a_free_port(cluster_port);
                redis
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
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
        // A replica that never synced cannot be promoted (its data is too
        // old): wait for every replica's first sync.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes.iter().all(|n| {
            let replication = n.cli(&["INFO", "replication"]);
            replication.contains("role:master") || replication.contains("master_link_status:up")
        }) {
            assert!(Instant::now() < deadline, "a replica never synced");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { nodes }
    }

    /// The index of the master whose slot holds `key` (which exists).
    pub fn master_holding(&self, key: &str) -> usize {
        let slot = self.nodes[0].int(&["CLUSTER", "KEYSLOT", key]).to_string();
        self.nodes
            .iter()
            .position(|n| {
                n.cli(&["ROLE"]).starts_with("master")
                    && n.int(&["CLUSTER", "COUNTKEYSINSLOT", &slot]) > 0
            })
            .unwrap_or_else(|| panic!("no master holds {key}"))
    }

    /// How many slots node `index` serves.
    pub fn slots_of(&self, index: usize) -> u32 {
        self.slot_ranges(index).iter().map(|(a, b)| b - a + 1).sum()
    }

    /// The index of the master serving `key`'s slot (the key need not
    /// exist).
    pub fn master_serving(&self, key: &str) -> usize {
        let slot = self.nodes[0].int(&["CLUSTER", "KEYSLOT", key]) as u32;
        (0..self.nodes.len())
            .find(|&i| {
                self.slot_ranges(i)
                    .iter()
                    .any(|(a, b)| (*a..=*b).contains(&slot))
            })
            .unwrap_or_else(|| panic!("no master serves {key}"))
    }

    /// The slot ranges node `index` serves, from its own `CLUSTER NODES`
    /// line.
    fn slot_ranges(&self, index: usize) -> Vec<(u32, u32)> {
        let nodes = self.nodes[index].cli(&["CLUSTER", "NODES"]);
        let Some(myself) = nodes.lines().find(|l| l.contains("myself")) else {
            return Vec::new();
        };
        myself
            .split_whitespace()
            .skip(8)
            .filter_map(|range| match range.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => range.parse().ok().map(|one| (one, one)),
            })
            .collect()
    }

    /// Moves every slot of master `from` to master `to` with
    /// `redis-cli --cluster reshard` (blocking: run it off the runtime).
    pub fn reshard(&self, from: usize, to: usize) -> std::process::Output {
        let (source, target) = (&self.nodes[from], &self.nodes[to]);
        let id = |node: &TestRedis| node.cli(&["CLUSTER", "MYID"]).trim().to_owned();
        std::process::Command::new("redis-cli")
            .args([
                "--cluster".to_owned(),
                "reshard".to_owned(),
                format!("127.0.0.1:{}", source.port),
                "--cluster-from".to_owned(),
                id(source),
                "--cluster-to".to_owned(),
                id(target),
                "--cluster-slots".to_owned(),
                self.slots_of(from).to_string(),
                "--cluster-yes".to_owned(),
            ])
            .output()
            .expect("redis-cli --cluster reshard")
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

/// A Redis Sentinel watching one primary (quorum 1, down after 1 s), in a
/// temp dir of its own (Sentinel rewrites its config file), killed on drop.
pub struct TestSentinel {
    pub port: u16,
    name: String,
    _dir: TempDir,
    child: Child,
}

impl TestSentinel {
    pub fn watch(primary: &TestRedis, name: &str) -> Self {
        // As for a server: its port may be taken before it binds it.
        for _ in 0..4 {
            if let Some(sentinel) = Self::try_watch(primary, name) {
                return sentinel;
            }
        }
        panic!("sentinel never named the primary");
    }

    fn try_watch(primary: &TestRedis, name: &str) -> Option<Self> {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {name} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 5000\n",
                dir.path().display(),
                primary.port
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let mut sentinel = Self {
            port,
            name: name.into(),
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while sentinel.primary_port() != Some(primary.port) {
            let exited = sentinel.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(sentinel)
    }

    /// The port of the primary the sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.name])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }

    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={}",
            self.port, self.name
        )
    }
}

impl Drop for TestSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port for a cluster node: its bus listens on port + 10000, which
/// must be free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 50000 && StdListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// redis-cli's answer as one value per line.
fn lines(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}
