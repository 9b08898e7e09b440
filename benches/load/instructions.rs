//! Instructions per event, counted by callgrind. Unlike requests per second
//! they do not drift with whatever else this VM runs, so hookd, the baseline
//! and two builds of hookd compare to within a percent. hookd and the
//! baseline run under valgrind (about 50 times slower), driven by the
//! in-repo driver; counters are zeroed after a warm-up and dumped after each
//! measured phase, so start-up and idle time are left out. The dumps stay in
//! `target/callgrind/` for `callgrind_annotate`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::driver::drive;
use crate::env_u64;
use crate::servers::{Hookd, start_sink};
use crate::support::{TestRedis, free_port};

pub fn valgrind(out: &Path) -> Command {
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg("--quiet")
        .arg(format!("--callgrind-out-file={}", out.display()));
    command
}

fn control(pid: u32, what: &str) {
    let status = Command::new("callgrind_control")
        .args([what, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("callgrind_control (valgrind) is required");
    assert!(status.success(), "callgrind_control {what} {pid} failed");
}

pub fn zero(pid: u32) {
    control(pid, "--zero");
}

/// Writes the counts since the last zero; returns the instruction total
/// and the dump's path.
pub fn dump(pid: u32, out: &Path) -> (u64, PathBuf) {
    control(pid, "--dump");
    let dir = out.parent().unwrap();
    let stem = format!("{}.", out.file_name().unwrap().to_string_lossy());
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix(&stem)?.parse().ok()?;
            Some((n, dir.join(name)))
        })
        .max()
        .expect("callgrind wrote no dump")
        .1;
    let text = std::fs::read_to_string(&newest).unwrap();
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("dump has a summary line");
    (total, newest)
}

fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/callgrind");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn run() {
    let seconds = Duration::from_secs(env_u64("CALLGRIND_SECONDS", 5));
    let connections = 8;
    let warm = Duration::from_secs(2);
    let dir = out_dir();
    println!(
        "instructions per event under callgrind: {connections} connections, {}s per phase",
        seconds.as_secs()
    );

    let baseline_redis = TestRedis::start();
    let port = free_port();
    let out = dir.join("baseline.out");
    let mut baseline = valgrind(&out)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--serve-baseline",
            &format!("redis://127.0.0.1:{}", baseline_redis.port),
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("valgrind is required");
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(baseline.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    drive(addr, "/", connections, warm, None, "cg_warm_b").await;
    zero(baseline.id());
    let base = drive(addr, "/", connections, seconds, None, "cg_base").await;
    let (base_ir, base_dump) = dump(baseline.id(), &out);
    let _ = baseline.kill();
    let _ = baseline.wait();
    drop(baseline_redis);

    let redis = TestRedis::start();
    let delivered = Arc::new(AtomicU64::new(0));
    let sink = start_sink(delivered.clone());
    let out = dir.join("hookd.out");
    let hookd = Hookd::start_under(redis.port, sink, 64, Some(valgrind(&out)));
    let pid = hookd.child.id();
    let drained = |target: u64| {
        let delivered = delivered.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            while delivered.load(Ordering::Relaxed) < target && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                delivered.load(Ordering::Relaxed) >= target,
                "deliveries did not drain"
            );
        }
    };
    let ingest_path = "/webhooks/ingest";
    let e2e_path = "/webhooks/e2e";
    drive(
        hookd.public,
        ingest_path,
        connections,
        warm,
        None,
        "cg_warm_i",
    )
    .await;
    let warm_e2e = drive(hookd.public, e2e_path, connections, warm, None, "cg_warm_e").await;
    drained(warm_e2e.accepted).await;

    zero(pid);
    let ingest = drive(
        hookd.public,
        ingest_path,
        connections,
        seconds,
        None,
        "cg_i",
    )
    .await;
    let (ingest_ir, ingest_dump) = dump(pid, &out);

    let before = delivered.load(Ordering::Relaxed);
    zero(pid);
    let e2e = drive(hookd.public, e2e_path, connections, seconds, None, "cg_e").await;
    drained(before + e2e.accepted).await;
    let (e2e_ir, e2e_dump) = dump(pid, &out);

    let per = |ir: u64, events: u64| ir as f64 / events.max(1) as f64;
    let base_per = per(base_ir, base.accepted);
    let ingest_per = per(ingest_ir, ingest.accepted);
    let e2e_per = per(e2e_ir, e2e.accepted);
    println!();
    println!("| measure (instructions per event, callgrind) | value |");
    println!("|---|---|");
    println!(
        "| baseline: bare hyper + the same Lua round trip | {base_per:.0} ({} events) |",
        base.accepted
    );
    println!(
        "| hookd ingest: verify, extract, dedup + store | {ingest_per:.0} ({} events) |",
        ingest.accepted
    );
    println!(
        "| hookd / baseline, ingest | {:.2} |",
        ingest_per / base_per
    );
    println!(
        "| hookd end to end: ingest + delivery + ack | {e2e_per:.0} ({} events) |",
        e2e.accepted
    );
    println!(
        "| hookd delivery + ack alone (end to end − ingest) | {:.0} |",
        e2e_per - ingest_per
    );
    println!(
        "| dumps | {}, {}, {} |",
        base_dump.display(),
        ingest_dump.display(),
        e2e_dump.display()
    );
}
