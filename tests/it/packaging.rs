//! The deployment files (Dockerfile, docker-compose.yml, deploy/) agree
//! with the binary: its config keys and validation, its listeners and
//! health path, and the metric series and label values it exports. No
//! container engine is needed: the files are read as text and the claims
//! they make are checked against the real daemon. So is README's quick
//! start on the shipped config.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::support::*;

fn repo_file(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {full}: {e}"))
}

/// `KEY: value` lines of the compose file's `hookd` service environment.
fn compose_hookd_environment(compose: &str) -> Vec<(String, String)> {
    let mut in_hookd = false;
    let mut in_environment = false;
    let mut env = Vec::new();
    for line in compose.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match indent {
            2 => {
                in_hookd = trimmed == "hookd:";
                in_environment = false;
            }
            4 => in_environment = in_hookd && trimmed == "environment:",
            6 if in_environment => {
                let (key, value) = trimmed.split_once(": ").expect("KEY: value");
                env.push((key.to_string(), value.trim_matches('"').to_string()));
            }
            _ => {}
        }
    }
    env
}

/// The `listen` address under `[section]` in `hookd check-config`'s
/// output, as host and port.
fn listen_address(effective: &str, section: &str) -> (String, u16) {
    let after = effective
        .split_once(&format!("[{section}]\n"))
        .unwrap_or_else(|| panic!("no [{section}] in {effective}"))
        .1;
    let listen = after
        .lines()
        .find_map(|l| l.strip_prefix("listen = "))
        .expect("listen key")
        .trim_matches('"');
    listen
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host.to_string(), port.parse().ok()?)))
        .unwrap_or_else(|| panic!("host:port of {listen}"))
}

#[test]
fn compose_and_dockerfile_agree_with_the_binary() {
    let compose = repo_file("docker-compose.yml");
    let env = compose_hookd_environment(&compose);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(
        env_refs.iter().any(|(k, _)| *k == "HOOKD_REDIS__URL"),
        "{env:?}"
    );
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hookd.toml");

    // The image runs the shipped config with the compose overrides.
    let (code, effective, stderr) = hookd(&["check-config", "--config", shipped], &env_refs);
    assert_eq!(code, 0, "compose's environment is rejected: {stderr}");
    let (_, public_port) = listen_address(&effective, "server");
    let (admin_host, admin_port) = listen_address(&effective, "admin");
    assert_eq!(
        admin_host, "0.0.0.0",
        "Prometheus in another container cannot reach a loopback admin listener"
    );
    // The admin token is what makes that override legal.
    let without_token: Vec<(&str, &str)> = env_refs
        .iter()
        .copied()
        .filter(|(k, _)| *k != "HOOKD_ADMIN__TOKEN")
        .collect();
    let (code, _, stderr) = hookd(&["check-config", "--config", shipped], &without_token);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("admin.token"), "{stderr}");

    // The spool lives on a volume at the directory the image creates.
    let spool_dir = env_refs
        .iter()
        .find(|(k, _)| *k == "HOOKD_SPOOL__DIR")
        .map(|(_, v)| v.to_string())
        .expect("compose sets HOOKD_SPOOL__DIR");
    assert!(
        effective.contains(&format!("dir = \"{spool_dir}\"")),
        "{effective}"
    );
    assert!(
        compose.contains(&format!("hookd-spool:{spool_dir}")),
        "compose mounts a volume on the spool"
    );
    let shipped_text = repo_file("config/hookd.toml");
    assert!(
        shipped_text.contains("[spool]\n") && shipped_text.contains("dir = \"spool\""),
        "the shipped config turns the spool on"
    );
    assert!(
        compose.contains(&format!("\"{public_port}:{public_port}\"")),
        "compose publishes the public listener"
    );
    let prometheus = repo_file("deploy/prometheus/prometheus.yml");
    assert!(
        prometheus.contains(&format!("targets: [\"hookd:{admin_port}\"]")),
        "Prometheus scrapes the admin listener: {prometheus}"
    );
    assert!(prometheus.contains("job_name: hookd"));
    for mounted in [
        "./deploy/prometheus/prometheus.yml:",
        "./deploy/prometheus/alerts.yml:",
    ] {
        assert!(compose.contains(mounted), "{mounted} is mounted");
    }

    let dockerfile = repo_file("Dockerfile");
    for expected in [
        // The build stage runs exactly CI's command before the release build.
        "RUN bash .ci/run".to_string(),
        "COPY config/hookd.toml /app/config/hookd.toml".to_string(),
        r#"CMD ["run", "--config", "/app/config/hookd.toml"]"#.to_string(),
        format!("EXPOSE {public_port} {admin_port}"),
        format!("http://127.0.0.1:{public_port}/health/live"),
        "USER hookd".to_string(),
        format!("mkdir -p {spool_dir}"),
        format!("ENV HOOKD_SPOOL__DIR={spool_dir}"),
        format!("VOLUME {spool_dir}"),
    ] {
        assert!(
            dockerfile.contains(&expected),
            "Dockerfile lacks {expected}"
        );
    }
}

/// Every `hookd_*` name in the text, without the histogram suffixes
/// Prometheus adds.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("hookd_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

/// `outcome` values the expressions select on (`="x"`, `!="x"`, `=~"x|y"`).
fn outcome_values(text: &str) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for (at, label) in text.match_indices("outcome") {
        let after = &text[at + label.len()..];
        let Some(quoted) = ["=~\"", "!=\"", "=\""]
            .iter()
            .find_map(|op| after.strip_prefix(op))
        else {
            continue;
        };
        let Some((alternatives, _)) = quoted.split_once('"') else {
            continue;
        };
        values.extend(alternatives.split('|').map(str::to_string));
    }
    values
}

/// The `expr` strings of the dashboard's panels.
fn dashboard_exprs(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => {
                        out.push_str(expr);
                        out.push('\n');
                    }
                    _ => dashboard_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_dashboard_query_series_the_daemon_exports() {
    let alerts = repo_file("deploy/prometheus/alerts.yml");
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo_file("deploy/grafana/hookd.json")).expect("dashboard JSON");
    let mut queries = String::new();
    dashboard_exprs(&dashboard, &mut queries);
    assert!(!queries.is_empty(), "the dashboard has panels");
    queries.push_str(&alerts);

    // Every series a panel or rule reads exists once the daemon has
    // ingested and delivered one event.
    let h = Harness::builder()
        .source(SourceSpec::standard("demo", SINK))
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    assert_eq!(h.send("demo", "evt_1", "{}").await.status, 202);
    assert!(sink.wait_for(1, Duration::from_secs(10)).await);
    let exposition = exposition_once_delivered(daemon, "demo").await;

    let exported = metric_names(&exposition);
    let queried = metric_names(&queries);
    assert!(queried.len() >= 8, "{queried:?}");
    let missing: Vec<_> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "queried, not exported: {missing:?}");

    let outcomes = outcome_values(&queries);
    assert!(!outcomes.is_empty());
    for outcome in &outcomes {
        assert!(
            exposition.contains(&format!("outcome=\"{outcome}\"")),
            "no series has outcome=\"{outcome}\""
        );
    }
}

/// The metrics exposition once the daemon counted one successful delivery
/// for `source` (the counter is bumped after the sink has answered).
async fn exposition_once_delivered(daemon: &Daemon, source: &str) -> String {
    let metrics_url = daemon.admin_url("/metrics");
    let delivered = format!(
        r#"hookd_deliveries_total{{source="{source}",destination="default",outcome="success"}} 1"#
    );
    let scrape = || async { String::from_utf8_lossy(&get(&metrics_url).await.body).into_owned() };
    assert!(
        eventually(Duration::from_secs(10), || async {
            scrape().await.contains(&delivered)
        })
        .await
    );
    scrape().await
}

/// Every metric design.md names is exported under that name with exactly
/// its labels (histograms also carry `le`), once an event went through a
/// daemon with the spool on.
#[tokio::test(flavor = "multi_thread")]
async fn every_contract_metric_is_exported_with_its_labels() {
    const CONTRACT: [(&str, &[&str]); 17] = [
        ("hookd_ingest_requests_total", &["source", "outcome"]),
        ("hookd_ingest_duration_seconds", &["source"]),
        (
            "hookd_deliveries_total",
            &["source", "destination", "outcome"],
        ),
        (
            "hookd_delivery_duration_seconds",
            &["source", "destination"],
        ),
        ("hookd_end_to_end_seconds", &["source", "destination"]),
        ("hookd_queue_backlog", &["source", "destination"]),
        ("hookd_queue_pending", &["source", "destination"]),
        ("hookd_retry_scheduled", &["source", "destination"]),
        ("hookd_dlq_size", &["source"]),
        ("hookd_claimed_total", &["source"]),
        (
            "hookd_destination_state",
            &["source", "destination", "state"],
        ),
        ("hookd_spool_events", &[]),
        ("hookd_spool_bytes", &[]),
        ("hookd_workers_busy", &[]),
        ("hookd_workers_max", &[]),
        ("hookd_redis_up", &[]),
        ("hookd_build_info", &["version"]),
    ];
    let spool = tempfile::tempdir().unwrap();
    let h = Harness::builder()
        .toml(&format!("[spool]\ndir = \"{}\"\n", spool.path().display()))
        .start()
        .await;
    h.fence("s", "evt_1").await;
    let exposition = exposition_once_delivered(&h.daemon, "s").await;
    // name -> the label sets its samples carry
    let mut series: HashMap<&str, BTreeSet<Vec<String>>> = HashMap::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        let labels: Vec<String> = match line[name_end..].strip_prefix('{') {
            Some(rest) => rest[..rest.find('}').unwrap()]
                .split(',')
                .filter_map(|pair| pair.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| k != "le" && k != "quantile")
                .collect(),
            None => Vec::new(),
        };
        series.entry(name).or_default().insert(labels);
    }
    for (name, labels) in CONTRACT {
        let found = series
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not exported:\n{exposition}"));
        let want: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        assert!(
            found.iter().all(|have| *have == want),
            "{name}: labels {found:?}, the contract says {want:?}"
        );
    }
}

/// `promtool` (Debian's `prometheus` package) checks the rules' syntax and
/// runs `alerts_test.yml`: each alert fires on the series shape it is for
/// and a busy, healthy source fires none.
#[test]
fn alert_rules_pass_their_promtool_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("promtool not found: install Debian's prometheus package (apt-get install prometheus)");
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// README's quick start: the daemon on the shipped config takes a webhook
/// signed by `hookd sign --source demo` and delivers it to the demo sink on
/// the admin listener, which logs it. Only the addresses differ: private
/// Redis, free ports (the demo destination's URL follows the admin port),
/// a temporary spool.
#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_delivers_to_the_demo_sink() {
    let redis = TestRedis::start();
    let spool = tempfile::tempdir().unwrap();
    let admin_port = free_port();
    let shipped = repo_file("config/hookd.toml");
    let demo_sink = "http://127.0.0.1:8081/demo/sink";
    assert!(shipped.contains(demo_sink), "the demo destination moved");
    let text = shipped.replace(
        demo_sink,
        &format!("http://127.0.0.1:{admin_port}/demo/sink"),
    );
    let admin_listen = format!("127.0.0.1:{admin_port}");
    let daemon = Daemon::start_env(
        &text,
        &[
            ("HOOKD_SERVER__LISTEN", "127.0.0.1:0"),
            ("HOOKD_ADMIN__LISTEN", &admin_listen),
            ("HOOKD_REDIS__URL", &redis.url()),
            ("HOOKD_SPOOL__DIR", spool.path().to_str().unwrap()),
        ],
    )
    .await;
    daemon.wait_ready().await;

    let body = r#"{"type":"demo.ping","hello":"world"}"#;
    let body_file = spool.path().join("payload.json");
    std::fs::write(&body_file, body).unwrap();
    let (code, signed, stderr) = hookd(
        &[
            "sign",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/hookd.toml"),
            "--source",
            "demo",
            "--body",
            body_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let headers: Vec<(String, String)> = signed
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let reply = request(
        http::Method::POST,
        &daemon.url("/webhooks/demo"),
        &headers,
        bytes::Bytes::from(body),
    )
    .await;
    assert_eq!(reply.status, 202, "{:?}", reply.json());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    assert!(
        daemon
            .logged(&[
                "demo sink received a delivery",
                &format!("webhook_id={id}"),
                "source=demo",
                "destination=default",
                "event_type=demo.ping",
            ])
            .await,
        "{}",
        daemon.logs()
    );
}
