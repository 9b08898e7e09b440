//! Test support: private `redis-server` processes ([`TestRedis`]), the
//! real `hookd` binary ([`Daemon`]), programmable HTTP sinks ([`Sink`]),
//! a signing HTTP client, and the [`Harness`] that puts the three together.

#![allow(dead_code, unused_imports)]

// Paths spelled out: the load bench includes this file too, from elsewhere.
#[path = "support/client.rs"]
mod client;
#[path = "support/config.rs"]
mod config;
#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/proxy.rs"]
mod proxy;
#[path = "support/redis.rs"]
mod redis;
#[path = "support/sink.rs"]
mod sink;
#[path = "support/tls.rs"]
mod tls;

use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

pub use client::*;
pub use config::*;
pub use daemon::*;
pub use harness::*;
pub use proxy::*;
pub use redis::*;
pub use sink::*;
pub use tls::*;

/// The Standard Webhooks secret of [`SourceSpec::standard`] sources.
pub const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtZm9yLWhvb2tk";

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
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
