//! A TCP proxy in front of a test Redis that can silently stop forwarding
//! on the connections it already has while new ones work: what a
//! firewall or load balancer that drops a flow's state without a reset
//! does to a long-lived connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct StallingProxy {
    pub port: u16,
    /// Connections numbered below this forward nothing more.
    stalled_below: Arc<AtomicU64>,
    opened: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl StallingProxy {
    /// Forwards 127.0.0.1:`port` (its own, free) to 127.0.0.1:`to`.
    pub async fn start(to: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stalled_below = Arc::new(AtomicU64::new(0));
        let opened = Arc::new(AtomicU64::new(0));
        let accept = {
            let stalled_below = stalled_below.clone();
            let opened = opened.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let number = opened.fetch_add(1, Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(("127.0.0.1", to)).await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    for (from, into) in [
                        (
                            Box::new(client_read) as Reader,
                            Box::new(server_write) as Writer,
                        ),
                        (
                            Box::new(server_read) as Reader,
                            Box::new(client_write) as Writer,
                        ),
                    ] {
                        let stalled_below = stalled_below.clone();
                        tokio::spawn(forward(from, into, number, stalled_below));
                    }
                }
            })
        };
        Self {
            port,
            stalled_below,
            opened,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Every connection open now forwards nothing more, in either
    /// direction, and is never closed; connections opened later work.
    pub fn stall_existing(&self) {
        self.stalled_below
            .store(self.opened.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

async fn forward(mut from: Reader, mut into: Writer, number: u64, stalled_below: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if number < stalled_below.load(Ordering::SeqCst) {
            // Swallowed, and the connection held open: neither side
            // hears anything again.
            std::future::pending::<()>().await;
        }
        if into.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
