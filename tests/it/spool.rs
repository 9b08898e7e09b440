//! The spool: while Redis is down or hung, events are fsynced to local
//! segment files and answered 202 `spooled`; a drainer moves them into
//! Redis in order when it is back. Providers here send each event once
//! (as GitHub does): every 2xx must be delivered.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use crate::load::{Load, verify};
use crate::support::*;

/// redis-server arguments: every write fsynced, so a Redis restart keeps
/// what it confirmed (the spool is about Redis being away, not about it
/// losing data).
const AOF: [&str; 6] = [
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

pub(crate) fn spool_toml(dir: &Path, extra: &str) -> String {
    format!("[spool]\ndir = \"{}\"\n{extra}\n", dir.display())
}

/// A ready daemon with the spool on that has seen Redis up (with the
/// spool, readiness does not wait for Redis).
async fn with_spool(dir: &Path, extra: &str) -> Harness {
    with_spool_on(&AOF, dir, extra).await
}

/// [`with_spool`] on a Redis started with `redis_args`.
pub(crate) async fn with_spool_on(redis_args: &[&str], dir: &Path, extra: &str) -> Harness {
    let h = Harness::builder()
        .redis_args(redis_args)
        .toml(&spool_toml(dir, extra))
        .start()
        .await;
    until_redis_up(&h).await;
    h
}

/// Waits until the daemon's health check has seen Redis up.
pub(crate) async fn until_redis_up(h: &Harness) {
    let up = eventually(Duration::from_secs(10), || async {
        get(&h.daemon.url("/health")).await.json()["redis"] == "up"
    })
    .await;
    assert!(up, "redis never reported up:\n{}", h.daemon.logs());
}

/// SIGTERM with Redis away: shutdown does not wait for Redis calls that
/// cannot be answered (a blocking read's worth, then a second each for
/// tidying), so it ends well within shutdown.timeout.
async fn stop(daemon: &mut Daemon) {
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(8)).await;
    assert!(status.success(), "{status}:\n{}", daemon.logs());
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Waits until the daemon's health check has seen Redis go away.
pub(crate) async fn until_redis_down(h: &Harness) {
    let seen = eventually(Duration::from_secs(10), || async {
        get(&h.daemon.url("/health")).await.json()["redis"] == "down"
    })
    .await;
    assert!(seen, "redis never reported down:\n{}", h.daemon.logs());
}

async fn spool_events(daemon: &Daemon) -> u64 {
    get(&daemon.url("/health")).await.json()["spool"]["events"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stopped_for_20s_loses_nothing_a_provider_sends_once() {
    let dir = TempDir::new().unwrap();
    let mut h = with_spool(dir.path(), "").await;
    let mut load = Load::new(&h.daemon.url(""), "s", 3000);
    load.once = true;
    load.concurrency = 16;
    load.interval = Duration::from_millis(10);
    let load = tokio::spawn(load.run());
    assert!(h.sink.wait_for(300, Duration::from_secs(20)).await);
    h.redis.kill();
    tokio::time::sleep(Duration::from_secs(20)).await;
    h.redis.restart();
    let report = load.await.unwrap();
    assert!(
        report.refused.is_empty(),
        "refused while spooling: {:?}\n{}",
        report.statuses,
        h.daemon.logs()
    );
    assert!(report.spooled > 500, "only {} spooled", report.spooled);
    verify(
        "12. Redis stopped for 20 s, spool on, each event sent once",
        &report,
        &h.sink,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            spool_events(&h.daemon).await == 0
        })
        .await
    );
    assert!(
        segments(dir.path()).is_empty(),
        "drained segments were kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_hung_loses_nothing_and_answers_within_a_second() {
    let dir = TempDir::new().unwrap();
    let h = with_spool(dir.path(), "").await;
    let mut load = Load::new(&h.daemon.url(""), "s", 2000);
    load.once = true;
    load.concurrency = 16;
    load.interval = Duration::from_millis(10);
    let load = tokio::spawn(load.run());
    assert!(h.sink.wait_for(200, Duration::from_secs(20)).await);
    h.redis.freeze();
    // While hung: a request is answered within the hang bound plus an
    // fsync, not after the 2 s a script call may take.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = std::time::Instant::now();
    let reply = h.send("s", "during_the_hang", "{}").await;
    assert_eq!(reply.status, 202, "{:?}", reply.json());
    assert_eq!(reply.json()["status"], "spooled");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    h.redis.thaw();
    let mut report = load.await.unwrap();
    assert!(
        report.refused.is_empty(),
        "refused while hung: {:?}",
        report.statuses
    );
    report.accepted.insert("during_the_hang".into());
    verify(
        "13. Redis hung (SIGSTOP) for 10 s, spool on, each event sent once",
        &report,
        &h.sink,
        Duration::from_secs(60),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_spooling_and_while_draining_loses_nothing() {
    let dir = TempDir::new().unwrap();
    // A backlog limit the drain runs into: it stops half-way through a
    // segment, which is where the kill lands.
    let mut h = with_spool(dir.path(), "[ingest]\nmax_backlog = 150").await;
    // Paused, so the backlog stays where the drain left it.
    let (code, out, err) = h.cli(&["destinations", "pause", "s", "default"]);
    assert_eq!(code, 0, "{out}{err}");
    h.redis.kill();
    until_redis_down(&h).await;
    let mut accepted = HashSet::new();
    for i in 0..300 {
        let id = format!("k{i}");
        let reply = h.send("s", &id, "{}").await;
        assert_eq!(reply.status, 202);
        assert_eq!(reply.json()["status"], "spooled");
        accepted.insert(id);
    }
    // kill -9 while spooling: everything answered is on disk.
    h.daemon.kill9();
    h.daemon = h.start_another().await;
    for i in 300..400 {
        let id = format!("k{i}");
        assert_eq!(h.send("s", &id, "{}").await.status, 202);
        accepted.insert(id);
    }
    h.redis.restart();
    let paused = eventually(Duration::from_secs(20), || async {
        h.daemon.logs().contains("spool drain paused")
    })
    .await;
    assert!(
        paused,
        "the drain never stopped at the backlog limit:\n{}",
        h.daemon.logs()
    );
    assert!(spool_events(&h.daemon).await > 0);
    // kill -9 while draining: part of a segment is in Redis, the file
    // still holds all of it.
    h.daemon.kill9();
    let (code, out, err) = h.cli(&["destinations", "resume", "s", "default"]);
    assert_eq!(code, 0, "{out}{err}");
    h.daemon = h.start_another().await;
    let all = eventually(Duration::from_secs(60), || async {
        let got: HashSet<String> = h.sink.ids().into_iter().collect();
        accepted.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(all, "lost spooled events:\n{}", h.daemon.logs());
    assert!(
        eventually(Duration::from_secs(10), || async {
            spool_events(&h.daemon).await == 0
        })
        .await
    );
}

/// Byte offsets of the records in a segment file.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len().saturating_sub(4))
        .filter(|&i| &bytes[i..i + 4] == b"HKS1")
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_tail_is_cut_and_a_damaged_record_quarantined() {
    let dir = TempDir::new().unwrap();
    let mut h = with_spool(dir.path(), "").await;
    h.redis.kill();
    until_redis_down(&h).await;
    for i in 0..10 {
        let reply = h
            .send("s", &format!("t{i}"), &format!("{{\"n\":{i}}}"))
            .await;
        assert_eq!(reply.json()["status"], "spooled");
    }
    stop(&mut h.daemon).await;
    let files = segments(dir.path());
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 10);
    // Damage the body of record 4 (t4), in the middle of the segment.
    let end_of_4 = offsets[5];
    bytes[end_of_4 - 2] ^= 0x20;
    // And a record torn half-way, as a crash mid-append leaves it.
    let first = bytes[..offsets[1]].to_vec();
    bytes.extend_from_slice(&first[..first.len() / 2]);
    std::fs::write(&files[0], &bytes).unwrap();

    h.redis.restart();
    h.daemon = h.start_another().await;
    let intact: Vec<String> = (0..10)
        .filter(|i| *i != 4)
        .map(|i| format!("t{i}"))
        .collect();
    let arrived = eventually(Duration::from_secs(20), || async {
        let got = h.sink.ids();
        intact.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(
        arrived,
        "intact records were not delivered:\n{}",
        h.daemon.logs()
    );
    h.fence("s", "sentinel").await;
    assert!(
        !h.sink.ids().contains(&"t4".to_owned()),
        "a damaged record was delivered"
    );
    let logs = h.daemon.logs();
    assert!(logs.contains("torn tail cut"), "{logs}");
    assert!(logs.contains("moved to quarantine"), "{logs}");
    let quarantined: Vec<_> = std::fs::read_dir(dir.path().join("quarantine"))
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let kept = std::fs::read(quarantined[0].path()).unwrap();
    assert!(
        kept.windows(5).any(|w| w == b"\"n\":4") || kept.windows(2).any(|w| w == b"t4"),
        "the quarantine file does not hold the damaged record"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_spool_answers_503_and_keeps_nothing_of_what_it_refused() {
    let dir = TempDir::new().unwrap();
    let h = with_spool(dir.path(), "max_bytes = 1048576").await;
    fill_while_redis_is_down(h).await;
}

/// The disk under the spool fills up long before `spool.max_bytes`: a
/// full disk is a full spool (the same 503, readiness fails, nothing
/// half-written), not a write error per request. It needs a small file
/// system: a 1.25 MiB tmpfs, which takes the right to mount one (root, as
/// the test script runs on a fresh machine); without it the test says so
/// and checks nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_a_full_spool() {
    let Some(disk) = SmallDisk::mount("1280k") else {
        println!("SKIPPED a_full_disk_is_a_full_spool: cannot mount a tmpfs here");
        return;
    };
    let h = with_spool(&disk.dir.path().join("spool"), "").await;
    // Said before it happens: at startup and by check-config.
    let short = "less than spool.max_bytes (1073741824): the spool will be full sooner";
    assert!(h.daemon.logs().contains(short), "{}", h.daemon.logs());
    let (code, _, checked) = h.cli(&["check-config"]);
    assert_eq!(code, 0, "{checked}");
    assert!(
        checked.contains("warning: the spool's disk has ") && checked.contains(short),
        "{checked}"
    );
    let h = fill_while_redis_is_down(h).await;
    assert!(
        !h.daemon.logs().contains("spool write failed"),
        "{}",
        h.daemon.logs()
    );
}

/// The spool cannot write at all (its file system has no inode left for
/// a segment): every event gets 503, the log says it once, and once the
/// file system has room again the spool takes events and says how many it
/// refused meanwhile. Needs a tmpfs, as above.
#[tokio::test(flavor = "multi_thread")]
async fn failing_spool_writes_are_logged_once_per_streak() {
    // The root directory, the spool's directory and its lock file.
    let Some(disk) = SmallDisk::mount_with("size=4m,nr_inodes=3") else {
        println!(
            "SKIPPED failing_spool_writes_are_logged_once_per_streak: cannot mount a tmpfs here"
        );
        return;
    };
    let mut h = with_spool(&disk.dir.path().join("spool"), "").await;
    h.redis.kill();
    until_redis_down(&h).await;
    for i in 0..10 {
        let reply = h.send("s", &format!("w{i}"), "{}").await;
        assert_eq!(reply.status, 503, "{}", h.daemon.logs());
        assert_eq!(reply.json()["error"], "storage unavailable");
    }
    let logs = h.daemon.logs();
    assert_eq!(logs.matches("spool write failed").count(), 1, "{logs}");
    assert!(
        !logs
            .lines()
            .any(|l| l.contains("WARN") && l.contains("could not spool the event")),
        "{logs}"
    );
    disk.remount("nr_inodes=100");
    let reply = h.send("s", "back", "{}").await;
    assert_eq!(reply.json()["status"], "spooled");
    assert!(
        h.daemon
            .logged(&["the spool takes events again", "refused=10"])
            .await,
        "{}",
        h.daemon.logs()
    );
    h.redis.restart();
    h.fence("s", "sentinel").await;
    let got = h.sink.ids();
    assert!(got.contains(&"back".to_owned()));
    assert!(
        !got.iter().any(|id| id.starts_with('w')),
        "a refused event was delivered"
    );
}

/// A tmpfs of the given size, unmounted on drop.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        Self::mount_with(&format!("size={size}"))
    }

    fn mount_with(options: &str) -> Option<Self> {
        let dir = TempDir::new().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.dir.path())
            .status()
            .expect("mount");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Redis goes away and 16 KiB events arrive until the spool is full:
/// those it took get 202 and are delivered once Redis is back, the rest
/// get 503 with Retry-After and are never delivered; readiness fails
/// while it is full, and the log says so once.
async fn fill_while_redis_is_down(mut h: Harness) -> Harness {
    h.redis.kill();
    until_redis_down(&h).await;
    let pad = "x".repeat(16 * 1024);
    let (mut taken, mut refused) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let id = format!("f{i}");
        let reply = h.send("s", &id, &format!("{{\"pad\":\"{pad}\"}}")).await;
        match reply.status {
            202 => taken.push(id),
            503 => {
                assert!(reply.headers.contains_key("retry-after"));
                assert_eq!(reply.json()["error"], "storage unavailable (spool full)");
                refused.push(id);
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        taken.len() > 30 && refused.len() > 20,
        "{} taken, {} refused",
        taken.len(),
        refused.len()
    );
    println!("{} taken, {} refused", taken.len(), refused.len());
    let ready = get(&h.daemon.url("/health/ready")).await;
    assert_eq!(ready.status, 503, "ready with a full spool and no redis");
    assert_eq!(
        h.daemon.logs().matches("the spool is full").count(),
        1,
        "{}",
        h.daemon.logs()
    );
    h.redis.restart();
    let delivered = eventually(Duration::from_secs(20), || async {
        let got = h.sink.ids();
        taken.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(delivered, "lost spooled events");
    h.fence("s", "sentinel").await;
    let got = h.sink.ids();
    assert!(
        refused.iter().all(|id| !got.contains(id)),
        "a refused event was delivered"
    );
    h
}

/// At startup Redis is not taken for away before the first health check:
/// readiness waits for it, and what comes once ready goes to Redis, not
/// through the spool.
#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_start_stores_in_redis_not_in_the_spool() {
    let dir = TempDir::new().unwrap();
    let h = Harness::builder()
        .redis_args(&AOF)
        .toml(&spool_toml(dir.path(), ""))
        .start()
        .await;
    for i in 0..20 {
        let reply = h.send("s", &format!("fresh_{i}"), "{}").await;
        assert_eq!(reply.json()["status"], "queued", "{:?}", reply.json());
    }
    assert!(
        segments(dir.path()).is_empty(),
        "{:?}",
        segments(dir.path())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_across_the_outage_are_delivered_once() {
    let dir = TempDir::new().unwrap();
    let mut h = with_spool(dir.path(), "").await;
    assert_eq!(h.send("s", "a", "{}").await.json()["status"], "queued");
    assert!(h.sink.wait_for(1, Duration::from_secs(10)).await);
    h.redis.kill();
    until_redis_down(&h).await;
    for id in ["a", "b", "b"] {
        assert_eq!(h.send("s", id, "{}").await.json()["status"], "spooled");
    }
    h.redis.restart();
    // b first (deliveries run side by side: a fence sent at once could
    // overtake it), then the fence for a second copy of either.
    assert!(h.sink.wait_for(2, Duration::from_secs(20)).await);
    h.fence("s", "sentinel").await;
    let got = h.sink.ids();
    assert_eq!(got.iter().filter(|id| *id == "a").count(), 1, "{got:?}");
    assert_eq!(got.iter().filter(|id| *id == "b").count(), 1, "{got:?}");
    assert!(
        h.daemon.logs().contains("duplicates=2"),
        "{}",
        h.daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_keep_their_own_spools_and_a_shared_one_is_refused() {
    let (one, two) = (TempDir::new().unwrap(), TempDir::new().unwrap());
    let mut h = with_spool(one.path(), "").await;
    // The same directory: refused at startup, naming the cause.
    let (code, _, stderr) = hookd(&["run", "--config", h.config_path.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("in use by another hookd process"),
        "{stderr}"
    );
    let other = Daemon::start_ready(&h.toml().replace(
        &one.path().display().to_string(),
        &two.path().display().to_string(),
    ))
    .await;
    h.redis.kill();
    until_redis_down(&h).await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let id = format!("two{i}");
        let daemon = if i % 2 == 0 { &h.daemon } else { &other };
        let reply = send_event(daemon, "s", &id, "{}").await;
        assert_eq!(reply.status, 202);
        ids.push(id);
    }
    assert!(!segments(one.path()).is_empty() && !segments(two.path()).is_empty());
    h.redis.restart();
    let all = eventually(Duration::from_secs(30), || async {
        let got = h.sink.ids();
        ids.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(all, "lost events:\n{}\n{}", h.daemon.logs(), other.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_and_metrics_report_the_spool() {
    let dir = TempDir::new().unwrap();
    let mut h = with_spool(dir.path(), "").await;
    let health = get(&h.daemon.url("/health")).await;
    assert_eq!(health.json()["status"], "ok");
    assert_eq!(health.json()["spool"]["events"], 0);
    h.redis.kill();
    until_redis_down(&h).await;
    assert_eq!(get(&h.daemon.url("/health/ready")).await.status, 200);
    for i in 0..5 {
        h.send("s", &format!("h{i}"), "{}").await;
    }
    let health = get(&h.daemon.url("/health")).await;
    assert_eq!(health.status, 200);
    let json = health.json();
    assert_eq!(json["status"], "degraded");
    assert_eq!(json["redis"], "down");
    assert_eq!(json["spool"]["events"], 5);
    assert!(json["spool"]["bytes"].as_u64().unwrap() > 0);
    assert!(json["spool"]["oldest_age_ms"].as_u64().is_some());
    let metrics = get(&h.daemon.admin_url("/metrics")).await;
    let text = String::from_utf8_lossy(&metrics.body).into_owned();
    assert!(text.contains("hookd_spool_events 5"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("hookd_spool_bytes ") && !l.ends_with(" 0"))
    );
    assert!(text.contains("outcome=\"spooled\"} 5"), "{text}");
    h.redis.restart();
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&h.daemon.url("/health")).await.json()["status"] == "ok"
        })
        .await
    );
    assert!(h.sink.wait_for(5, Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_while_spooling_keeps_every_accepted_event() {
    let dir = TempDir::new().unwrap();
    let mut h = with_spool(dir.path(), "").await;
    h.redis.kill();
    until_redis_down(&h).await;
    let mut load = Load::new(&h.daemon.url(""), "s", 400);
    load.once = true;
    load.concurrency = 32;
    let load = tokio::spawn(load.run());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(&mut h.daemon).await;
    let report = load.await.unwrap();
    assert!(!report.accepted.is_empty());
    h.redis.restart();
    h.daemon = h.start_another().await;
    let got = eventually(Duration::from_secs(30), || async {
        let got: HashSet<String> = h.sink.ids().into_iter().collect();
        report.accepted.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(
        got,
        "accepted before SIGTERM, never delivered:\n{}",
        h.daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spool_drain_moves_a_spool_into_redis_without_a_daemon() {
    let dir = TempDir::new().unwrap();
    let mut h = with_spool(dir.path(), "").await;
    h.redis.kill();
    until_redis_down(&h).await;
    for i in 0..20 {
        assert_eq!(h.send("s", &format!("o{i}"), "{}").await.status, 202);
    }
    stop(&mut h.daemon).await;
    h.redis.restart();
    let (code, stdout, stderr) = h.cli(&["spool", "drain", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("20 events into redis (20 queued"),
        "{stdout}"
    );
    assert!(segments(dir.path()).is_empty());
    assert_eq!(h.redis.stream_len("s"), 20);
    h.daemon = h.start_another().await;
    assert!(h.sink.wait_for(20, Duration::from_secs(20)).await);
}

/// Each sender's event ids as the source stream holds them (stream order).
fn stream_order(redis: &TestRedis, source: &str) -> Vec<String> {
    let out = redis.cli(&["XRANGE", &format!("hookd:{{{source}}}:stream"), "-", "+"]);
    let lines: Vec<&str> = out.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "id")
        .map(|w| w[1].to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn under_steady_traffic_the_spool_empties_and_ingest_returns_to_redis() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = TempDir::new().unwrap();
    // The log keeps every event, so the stream shows the order they went in.
    let mut h = Harness::builder()
        .redis_args(&AOF)
        .toml(&spool_toml(dir.path(), ""))
        .source(
            SourceSpec::standard("s", SINK)
                .source_with(r#"history = { max_events = 10000000, max_age = "24h" }"#),
        )
        .start()
        .await;
    until_redis_up(&h).await;
    h.redis.kill();
    until_redis_down(&h).await;
    // Senders that never pause: each sends its next event as soon as the
    // last one is answered, so the spool always has an append coming.
    const SENDERS: usize = 64;
    let stop = Arc::new(AtomicBool::new(false));
    // Per sender, (event id, the answer's status) in the order answered.
    type Answers = Vec<Vec<(String, String)>>;
    let answers: Arc<Mutex<Answers>> = Arc::new(Mutex::new(vec![Vec::new(); SENDERS]));
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (stop, answers) = (stop.clone(), answers.clone());
        let url = h.daemon.url("/webhooks/s");
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("steady_{sender}_{n}");
                let body = format!(r#"{{"n":{n}}}"#);
                let reply = request(
                    http::Method::POST,
                    &url,
                    &signed(&id, body.as_bytes()),
                    bytes::Bytes::from(body),
                )
                .await;
                assert!(reply.status == 202, "{id}: {}", reply.status);
                let status = reply.json()["status"].as_str().unwrap_or("").to_owned();
                answers.lock().unwrap()[sender].push((id, status));
                n += 1;
            }
        }));
    }
    let spooled_some = eventually(Duration::from_secs(10), || async {
        answers.lock().unwrap().iter().all(|a| a.len() >= 20)
    })
    .await;
    assert!(spooled_some, "{}", h.daemon.logs());
    h.redis.restart();
    // With traffic still coming, every sender is answered from Redis
    // again (`queued`), and the spool is empty.
    let handed_back = eventually(Duration::from_secs(30), || async {
        let queued = answers
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.len() >= 5 && a[a.len() - 5..].iter().all(|(_, s)| s == "queued"));
        queued && spool_events(&h.daemon).await == 0
    })
    .await;
    assert!(
        handed_back,
        "the spool never handed back to redis under steady traffic:\n{}",
        h.daemon.logs()
    );
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let sent: Vec<String> = answers.iter().flatten().map(|(id, _)| id.clone()).collect();
    assert!(
        answers.iter().flatten().any(|(_, s)| s == "spooled"),
        "nothing was spooled"
    );
    // Every event once, and each sender's events in the order they were
    // answered: the spooled ones before those that went to Redis after.
    assert!(h.sink.wait_for(sent.len(), Duration::from_secs(60)).await);
    let delivered: HashSet<String> = h.sink.ids().into_iter().collect();
    assert_eq!(delivered.len(), sent.len());
    assert!(sent.iter().all(|id| delivered.contains(id)));
    let order = stream_order(&h.redis, "s");
    for (sender, sent) in answers.iter().enumerate() {
        let prefix = format!("steady_{sender}_");
        let stored: Vec<&String> = order.iter().filter(|id| id.starts_with(&prefix)).collect();
        let expected: Vec<&String> = sent.iter().map(|(id, _)| id).collect();
        assert_eq!(stored, expected, "sender {sender}'s events out of order");
    }
}
