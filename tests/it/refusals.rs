//! A Redis that answers but will not store: its disk fails (MISCONF on
//! every write, and on PING), another client's script holds it (BUSY), its
//! user may not run scripts or use hookd's keys (NOPERM), scripting was
//! renamed away, or it is a replica (READONLY).
//! Providers here send each event once: every 2xx must be delivered.

use std::time::Duration;

use http::Method;
use tempfile::TempDir;
use tokio::task::JoinHandle;

use crate::load::{Load, LoadReport, verify};
use crate::spool::{spool_toml, until_redis_down, until_redis_up, with_spool_on};
use crate::support::*;

/// Waits until the last snapshot's outcome is `status` (`ok` or `err`).
async fn until_snapshot(redis: &TestRedis, status: &str) {
    let line = format!("rdb_last_bgsave_status:{status}");
    let seen = eventually(Duration::from_secs(10), || async {
        redis.cli(&["INFO", "persistence"]).contains(&line)
    })
    .await;
    assert!(seen, "the snapshot never ended {status}");
}

/// Events sent once each by 16 senders, from once 200 were delivered.
async fn steady_load(h: &Harness) -> JoinHandle<LoadReport> {
    let mut load = Load::new(&h.daemon.url(""), "s", 2000);
    load.once = true;
    load.concurrency = 16;
    load.interval = Duration::from_millis(5);
    let load = tokio::spawn(load.run());
    assert!(h.sink.wait_for(200, Duration::from_secs(20)).await);
    load
}

/// The load got no refusal while Redis would not store, some of it went
/// to the spool, and every event it had answered 2xx was delivered.
async fn nothing_refused_or_lost(h: &Harness, load: JoinHandle<LoadReport>, what: &str) {
    let report = load.await.unwrap();
    assert!(
        report.refused.is_empty(),
        "refused ({what}): {:?}\n{}",
        report.statuses,
        h.daemon.logs()
    );
    assert!(report.spooled > 0, "nothing was spooled");
    let title = format!("{what}, spool on, each event sent once");
    verify(&title, &report, &h.sink, Duration::from_secs(60)).await;
}

/// Sends ten events (`<prefix>-0` ..) that must be answered 202 `spooled`;
/// returns their ids.
async fn send_spooled(h: &Harness, prefix: &str) -> Vec<String> {
    let ids: Vec<String> = (0..10).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        let reply = h.send("s", id, "{}").await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        assert_eq!(reply.json()["status"], "spooled", "{:?}", reply.body);
    }
    ids
}

/// Waits until the sink has every one of `ids`.
async fn until_delivered(h: &Harness, ids: &[String]) {
    let delivered = eventually(Duration::from_secs(20), || async {
        let got = h.sink.ids();
        ids.iter().all(|id| got.contains(id))
    })
    .await;
    assert!(delivered, "{:?}\n{}", h.sink.ids(), h.daemon.logs());
}

/// From the first write Redis refuses for its disk, events go to the
/// spool: none is refused while hookd's health check has not yet seen
/// PING fail, and all are delivered once snapshots succeed again.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_whose_disk_fails_loses_nothing() {
    let spool = TempDir::new().unwrap();
    // Snapshots on (a failed one stops writes); `dir` may be changed.
    let redis = [
        "--save",
        "3600 1",
        "--appendonly",
        "no",
        "--enable-protected-configs",
        "yes",
    ];
    let h = with_spool_on(&redis, spool.path(), "").await;
    let load = steady_load(&h).await;

    // Snapshots go to a directory that is then removed: the next fails.
    let gone = TempDir::new().unwrap();
    h.redis
        .cli(&["CONFIG", "SET", "dir", &gone.path().display().to_string()]);
    drop(gone);
    h.redis.cli(&["BGSAVE"]);
    until_snapshot(&h.redis, "err").await;
    until_redis_down(&h).await;
    assert!(
        h.daemon
            .logged(&["redis is unreachable", "events go to the spool", "MISCONF"])
            .await,
        "{}",
        h.daemon.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let back = TempDir::new().unwrap();
    h.redis
        .cli(&["CONFIG", "SET", "dir", &back.path().display().to_string()]);
    h.redis.cli(&["BGSAVE"]);
    until_snapshot(&h.redis, "ok").await;
    nothing_refused_or_lost(&h, load, "Redis refusing writes for its disk").await;
}

/// A user without scripting may PING, yet every state move is a script:
/// hookd says Redis refuses it (not that it is unreachable), the CLI
/// says so at once, events wait in the spool, and all are delivered once
/// the permission is granted. The same for a user whose key patterns do
/// not cover `redis.key_prefix`, and for one that may not run a command
/// hookd sends.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_user_that_may_not_run_scripts_is_named_and_loses_nothing() {
    let spool = TempDir::new().unwrap();
    let h = Harness::builder()
        .toml(&spool_toml(spool.path(), ""))
        .prepare(|redis| {
            redis.cli(&["ACL", "SETUSER", "default", "-@scripting"]);
        })
        .start()
        .await;
    until_redis_down(&h).await;
    assert!(
        h.daemon
            .logged(&[
                "ERROR",
                "redis refuses hookd's commands: events go to the spool until it takes them",
                "NOPERM",
            ])
            .await,
        "{}",
        h.daemon.logs()
    );
    assert!(
        !h.daemon.logs().contains("unreachable"),
        "{}",
        h.daemon.logs()
    );
    let sources = h.api(Method::GET, "/admin/sources").await.json();
    let error = sources["redis_error"].as_str().unwrap_or_default();
    assert!(error.starts_with("NOPERM"), "{sources}");

    let started = std::time::Instant::now();
    let (code, _, stderr) = h.cli(&["dlq", "list"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refuses hookd's commands: NOPERM"),
        "{stderr}"
    );
    // Waiting does not grant a permission: no 5 s wait for an answer.
    assert!(started.elapsed() < Duration::from_secs(4), "{stderr}");

    let ids = send_spooled(&h, "noperm").await;
    h.redis.cli(&["ACL", "SETUSER", "default", "+@scripting"]);
    until_redis_up(&h).await;
    until_delivered(&h, &ids).await;
    assert!(h.settled("s").await);

    // Keys outside the user's patterns are refused the same way.
    refused_until_granted(
        &h,
        &["resetkeys", "~other:*"],
        &["redis refuses hookd's commands", "NOPERM", "keys"],
        &["allkeys"],
        "noperm-keys",
    )
    .await;
    // A user that may run scripts but not a command hookd sends on its own
    // (the workers' XREADGROUP) would store every event and deliver none:
    // the health check names the command instead.
    refused_until_granted(
        &h,
        &["-xreadgroup"],
        &[
            "redis refuses hookd's commands",
            "NOPERM this user may not run 'XREADGROUP' on hookd's keys",
        ],
        &["+xreadgroup"],
        "noperm-xreadgroup",
    )
    .await;
}

/// The default user's permissions changed by `deny`: Redis is reported
/// down with `words` in the log, an event sent meanwhile is spooled, and
/// once `grant` gives the permission back it is delivered.
async fn refused_until_granted(
    h: &Harness,
    deny: &[&str],
    words: &[&str],
    grant: &[&str],
    id: &str,
) {
    let set_user = |rules: &[&str]| {
        let mut args = vec!["ACL", "SETUSER", "default"];
        args.extend_from_slice(rules);
        h.redis.cli(&args);
    };
    set_user(deny);
    until_redis_down(h).await;
    assert!(h.daemon.logged(words).await, "{}", h.daemon.logs());
    let reply = h.send("s", id, "{}").await;
    assert_eq!(reply.json()["status"], "spooled", "{:?}", reply.body);
    set_user(grant);
    until_redis_up(h).await;
    h.fence("s", &format!("after-{id}")).await;
    assert!(h.sink.ids().iter().any(|got| got == id));
}

/// Another client's script that runs past `busy-reply-threshold` makes
/// Redis answer BUSY to everything until it is killed: events go to the
/// spool meanwhile and are all delivered after.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_busy_with_another_clients_script_loses_nothing() {
    let spool = TempDir::new().unwrap();
    let redis = [
        "--save",
        "",
        "--appendonly",
        "no",
        "--busy-reply-threshold",
        "100",
    ];
    let h = with_spool_on(&redis, spool.path(), "").await;
    let load = steady_load(&h).await;

    // Loops until SCRIPT KILL.
    let mut busy = std::process::Command::new("redis-cli")
        .args(["-p", &h.redis.port.to_string()])
        .args(["EVAL", "while true do end", "0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-cli");
    until_redis_down(&h).await;
    assert!(
        h.daemon
            .logged(&["redis is unreachable", "events go to the spool", "BUSY"])
            .await,
        "{}",
        h.daemon.logs()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.redis.cli(&["SCRIPT", "KILL"]);
    let _ = busy.wait();

    nothing_refused_or_lost(&h, load, "Redis busy with another client's script").await;
}

/// A Redis whose scripting was renamed away can never store an event:
/// said as a refusal (not as Redis being unreachable), and not ready.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_without_scripting_commands_is_named() {
    let h = Harness::builder()
        .redis_args(&[
            "--save",
            "",
            "--appendonly",
            "no",
            "--rename-command",
            "EVALSHA",
            "",
        ])
        .without_waiting()
        .start()
        .await;
    assert!(
        h.daemon
            .logged(&[
                "ERROR",
                "redis refuses hookd's commands: ingest answers 503 until it takes them",
                "unknown command 'EVALSHA'",
            ])
            .await,
        "{}",
        h.daemon.logs()
    );
    let ready = get(&h.daemon.url("/health/ready")).await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json()["reason"],
        "redis refuses hookd's commands",
        "{}",
        ready.json()
    );
    assert_eq!(h.send("s", "never", "{}").await.status, 503);
    assert!(
        !h.daemon.logs().contains("unreachable"),
        "{}",
        h.daemon.logs()
    );
    // The admin side words it as a refusal too, in Redis's words.
    let overview = get(&h.daemon.admin_url("/")).await;
    let page = String::from_utf8_lossy(&overview.body);
    assert!(
        page.contains("Redis refuses hookd&#39;s commands: ") && page.contains("EVALSHA"),
        "{page}"
    );
    let answer = get(&h.daemon.admin_url("/admin/dlq")).await;
    assert_eq!(answer.status, 503);
    let error = answer.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with("redis refuses hookd's commands: ") && error.contains("EVALSHA"),
        "{error}"
    );
    let sources = h.api(Method::GET, "/admin/sources").await.json();
    let error = sources["redis_error"].as_str().unwrap_or_default();
    assert!(error.contains("unknown command 'EVALSHA'"), "{sources}");
}

/// A Redis that became a replica (a failover demoted it, or the URL names
/// a reader endpoint) answers PING but refuses every write: hookd says
/// so, events wait in the spool, and all are delivered once it is a
/// primary again.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_demoted_to_a_replica_loses_nothing() {
    let spool = TempDir::new().unwrap();
    let h = with_spool_on(&["--save", "", "--appendonly", "no"], spool.path(), "").await;
    h.fence("s", "before").await;
    let primary = TestRedis::start();
    h.redis
        .cli(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]);
    until_redis_down(&h).await;
    assert!(
        h.daemon
            .logged(&[
                "redis is unreachable",
                "events go to the spool",
                "READONLY this Redis is a replica",
            ])
            .await,
        "{}",
        h.daemon.logs()
    );
    let ids = send_spooled(&h, "replica").await;
    h.redis.cli(&["REPLICAOF", "NO", "ONE"]);
    until_redis_up(&h).await;
    until_delivered(&h, &ids).await;
}

/// The least-privileged user the README documents runs everything hookd
/// does: ingest, deliveries, retries into the DLQ and a replay out of it,
/// the event log, pause and resume, the CLI, and the startup checks
/// (`CONFIG GET` refused is skipped), with nothing refused.
#[tokio::test(flavor = "multi_thread")]
async fn the_documented_least_privileged_user_runs_everything() {
    let retry = r#"retry = { max_attempts = 2, base = "10ms", max = "10ms", jitter = false }
breaker = { failures = 0 }"#;
    let h = Harness::builder()
        .source(SourceSpec::standard("s", SINK).with(retry))
        .prepare(|redis| {
            redis.cli(&[
                "ACL",
                "SETUSER",
                "default",
                "reset",
                "on",
                "nopass",
                "+@all",
                "-@dangerous",
                "+info",
                "~hookd:*",
            ]);
        })
        .start()
        .await;
    h.sink.answer_id("doomed", Answer::status(500));
    assert_eq!(h.send("s", "doomed", "{}").await.status, 202);
    let dead = eventually(Duration::from_secs(20), || async {
        h.redis.dlq_len("s") == 1
    })
    .await;
    assert!(dead, "{}", h.daemon.logs());

    let (code, table, err) = h.cli(&["dlq", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(table.contains("doomed"), "{table}");
    let entry = h.api(Method::GET, "/admin/dlq?source=s").await.json()["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    h.sink.answer_id("doomed", Answer::status(200));
    let (code, out, err) = h.cli(&["dlq", "replay", &entry]);
    assert_eq!(code, 0, "{out}{err}");
    let replayed = eventually(Duration::from_secs(20), || async {
        h.sink.ids().iter().filter(|id| *id == "doomed").count() == 3
    })
    .await;
    assert!(replayed, "{}", h.daemon.logs());

    let (code, out, err) = h.cli(&["events", "list", "--id", "doomed"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("doomed"), "{out}");
    for verb in ["pause", "resume"] {
        let (code, out, err) = h.cli(&["destinations", verb, "s", "default"]);
        assert_eq!(code, 0, "{verb}: {out}{err}");
    }
    h.fence("s", "after").await;
    assert!(h.settled("s").await);
    let logs = h.daemon.logs();
    for refused in ["NOPERM", "refuses", "unreachable"] {
        assert!(!logs.contains(refused), "{refused}: {logs}");
    }
}
