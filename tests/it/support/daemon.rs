//! The real `hookd` binary: as a daemon (its listeners read from its log)
//! or as a one-shot command.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{eventually, get};

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

    /// Waits up to 10 s for a log line holding every fragment (lines that
    /// come from a periodic task appear a tick after the state they tell).
    pub async fn logged(&self, fragments: &[&str]) -> bool {
        crate::support::eventually(Duration::from_secs(10), || async {
            self.logs()
                .lines()
                .any(|line| fragments.iter().all(|f| line.contains(f)))
        })
        .await
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

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
