//! `hookd check-config`, `hookd sign`, and a Redis-backed command with Redis away.

use std::process::Command;

use bytes::Bytes;
use http::Method;

use crate::support::*;

/// `hookd sign` prints `Name: value` lines.
fn parse_headers(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = write(&dir, "secret", "from-a-file\n");
    let toml = format!(
        r#"
[redis]
url = "redis://:hunter2@127.0.0.1:6379"
[[sources]]
name = "gh"
verify = {{ scheme = "github", secrets = ["literal-secret", "env:HOOKD_TEST_SECRET", "file:{secret_file}"] }}
[sources.destination]
url = "http://127.0.0.1:3000/"
signing_secret = "whsec_c2lnbg=="
"#
    );
    let path = write(&dir, "hookd.toml", &toml);
    let (code, stdout, stderr) = hookd(
        &["check-config", "--config", &path],
        &[
            ("HOOKD_TEST_SECRET", "from-env"),
            ("HOOKD_WORKER__CONCURRENCY", "7"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    for secret in [
        "hunter2",
        "literal-secret",
        "from-env",
        "from-a-file",
        "c2lnbg",
    ] {
        assert!(!stdout.contains(secret), "{secret} leaked:\n{stdout}");
    }
    assert!(stdout.contains("[redacted]"));
    // Only the password of the Redis URL is a secret: which Redis stays
    // readable.
    assert!(
        stdout.contains(r#"url = "redis://:[redacted]@127.0.0.1:6379""#),
        "{stdout}"
    );
    assert!(
        stdout.contains("concurrency = 7"),
        "env override ignored:\n{stdout}"
    );
    assert!(stdout.contains("name = \"gh\""));
}

#[test]
fn check_config_names_the_bad_key_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[worker]\nconcurency = 3\n", "concurency"),
        (
            "[server]\nmax_body_bytes = \"big\"\n",
            "server.max_body_bytes",
        ),
        ("[admin]\nlisten = \"0.0.0.0:8081\"\n", "admin.token"),
        (
            "[worker]\nclaim_idle = \"5s\"\n[[sources]]\nname = \"a\"\nverify = { scheme = \"none\" }\n[sources.destination]\nurl = \"http://x/\"\n",
            "worker.claim_idle",
        ),
        (
            "[[sources]]\nname = \"a\"\nverify = { scheme = \"github\", secrets = [\"env:HOOKD_UNSET_VAR_X\"] }\n[sources.destination]\nurl = \"http://x/\"\n",
            "HOOKD_UNSET_VAR_X",
        ),
    ];
    for (toml, key) in cases {
        let path = write(&dir, "bad.toml", toml);
        let (code, _, stderr) = hookd(&["check-config", "--config", &path], &[]);
        assert_eq!(code, 1, "{toml}");
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
    }
    let (code, _, stderr) = hookd(&["check-config", "--config", "/no/such/file.toml"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("/no/such/file.toml"));
    let (code, _, stderr) = hookd(&["check-config"], &[("HOOKD_REDIS__POOL_SIZE", "0")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("redis.pool_size"), "{stderr}");
    // Sources are a list, which HOOKD_SECTION__KEY cannot address: the
    // variable is named (never its value) instead of a type mismatch.
    let (code, _, stderr) = hookd(
        &["check-config"],
        &[("HOOKD_SOURCES__0__VERIFY__SECRETS", "whsec_do_not_print")],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("HOOKD_SOURCES__0__VERIFY__SECRETS") && stderr.contains("config file"),
        "{stderr}"
    );
    assert!(!stderr.contains("whsec_do_not_print"), "{stderr}");
}

/// A bad value under a secret key is reported by key and kind, never
/// quoted; and what `run` would refuse, `check-config` refuses too.
#[test]
fn check_config_never_quotes_a_secret_and_refuses_what_run_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let source = |verify: &str| {
        format!(
            "[[sources]]\nname = \"a\"\nverify = {verify}\n[sources.destination]\nurl = \"http://x/\"\n"
        )
    };
    let cases = [
        (
            source(r#"{ scheme = "github", secrets = "s3cret-value" }"#),
            "sources",
            "s3cret-value",
        ),
        (
            "[admin]\ntoken = 424242424242\n".to_owned(),
            "admin.token",
            "424242424242",
        ),
        (
            format!(
                "{}signing_secret = [\"s3cret-value\"]\n",
                source(r#"{ scheme = "none" }"#)
            ),
            "signing_secret",
            "s3cret-value",
        ),
        (
            "[redis]\nurl = 77777777\n".to_owned(),
            "redis.url",
            "77777777",
        ),
        (
            "[redis]\nurl = \"redis://:s3cret-value@127.0.0.1:notaport\"\n".to_owned(),
            "redis.url",
            "s3cret-value",
        ),
        (
            "[admin]\ntoken = \"s3cret-value\n".to_owned(),
            "line",
            "s3cret-value",
        ),
    ];
    for (toml, key, secret) in cases {
        let path = write(&dir, "bad.toml", &toml);
        let (code, stdout, stderr) = hookd(&["check-config", "--config", &path], &[]);
        assert_eq!(code, 1, "accepted:\n{toml}\n{stdout}");
        assert!(stderr.contains(key), "{key} not named in: {stderr}");
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "the secret is quoted: {stderr}{stdout}"
        );
    }
}

/// A spool directory `run` could not create or write is refused by
/// `check-config` too, naming the key, and nothing is created.
#[test]
fn check_config_refuses_a_spool_dir_run_could_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = write(&dir, "not-a-dir", "");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [spool]\ndir = \"{blocker}/spool\"\n"
    );
    let path = write(&dir, "spool.toml", &toml);
    let (code, stdout, stderr) = hookd(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 1, "accepted:\n{stdout}{stderr}");
    assert!(
        stderr.contains("spool.dir") && stderr.matches("is not a directory").count() == 1,
        "{stderr}"
    );
    let (code, _, stderr) = hookd(&["run", "--config", &path], &[]);
    assert_ne!(code, 0, "run accepted it: {stderr}");
    // A directory still to be made is fine, and checking does not make it.
    let fresh = dir.path().join("new/spool");
    let toml = format!("[spool]\ndir = \"{}\"\n", fresh.display());
    let path = write(&dir, "fresh.toml", &toml);
    let (code, _, stderr) = hookd(&["check-config", "--config", &path], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!dir.path().join("new").exists());
}

#[test]
fn hookd_config_names_the_file_when_no_flag_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "from-env.toml", "[worker]\nconcurrency = 3\n");
    let (code, stdout, stderr) = hookd(&["check-config"], &[("HOOKD_CONFIG", &path)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&path) && stdout.contains("concurrency = 3"),
        "{stdout}"
    );
    // --config wins over HOOKD_CONFIG.
    let other = write(&dir, "flag.toml", "[worker]\nconcurrency = 5\n");
    let (_, stdout, _) = hookd(
        &["check-config", "--config", &other],
        &[("HOOKD_CONFIG", &path)],
    );
    assert!(stdout.contains("concurrency = 5"), "{stdout}");
}

#[test]
fn the_shipped_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hookd.toml");
    let (code, stdout, stderr) = hookd(&["check-config", "--config", path], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("name = \"demo\""));
}

/// What `hookd sign` prints is accepted by the daemon (the README's curl
/// example), and the delivery reaches the destination.
#[tokio::test(flavor = "multi_thread")]
async fn sign_output_passes_verification() {
    let mut stripe = SourceSpec::standard("stripe", SINK);
    stripe.verify = r#"{ scheme = "stripe", secrets = ["whsec_abc"] }"#.into();
    let mut twilio = SourceSpec::standard("twilio", SINK);
    twilio.verify =
        r#"{ scheme = "twilio", secrets = ["tok"], url = "https://hooks.example.com/webhooks/twilio" }"#
            .into();
    let h = Harness::builder()
        .source(SourceSpec::standard("demo", SINK))
        .source(stripe)
        .source(twilio)
        .start()
        .await;
    let (sink, daemon) = (&h.sink, &h.daemon);
    let config_path = h.config_path.to_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let body_path = write(
        &dir,
        "body.json",
        r#"{"id":"evt_stripe_1","type":"charge.succeeded"}"#,
    );
    for source in ["demo", "stripe"] {
        let (code, stdout, stderr) = hookd(
            &[
                "sign",
                "--config",
                &config_path,
                "--source",
                source,
                "--body",
                &body_path,
                "--id",
                "evt_signed",
            ],
            &[],
        );
        assert_eq!(code, 0, "{stderr}");
        let headers = parse_headers(&stdout);
        let body = Bytes::from(std::fs::read(&body_path).unwrap());
        let reply = request(
            Method::POST,
            &daemon.url(&format!("/webhooks/{source}")),
            &headers,
            body,
        )
        .await;
        assert_eq!(reply.status, 202, "{source}: {:?}", reply.json());
    }
    // Twilio signs the URL it calls (with its query) and the form fields.
    let form_path = write(&dir, "form.txt", "To=%2B15551234567&Body=hello+there");
    let (code, stdout, stderr) = hookd(
        &[
            "sign",
            "--config",
            &config_path,
            "--source",
            "twilio",
            "--body",
            &form_path,
            "--url",
            "https://hooks.example.com/webhooks/twilio?tenant=7",
            "--content-type",
            "application/x-www-form-urlencoded",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let headers = parse_headers(&stdout);
    let body = Bytes::from(std::fs::read(&form_path).unwrap());
    let reply = request(
        Method::POST,
        &daemon.url("/webhooks/twilio?tenant=7"),
        &headers,
        body.clone(),
    )
    .await;
    assert_eq!(reply.status, 202);
    let reply = request(
        Method::POST,
        &daemon.url("/webhooks/twilio?tenant=8"),
        &headers,
        body,
    )
    .await;
    assert_eq!(
        reply.status, 401,
        "query string not covered by the signature"
    );
    assert!(sink.wait_for(3, std::time::Duration::from_secs(10)).await);
    let (code, _, stderr) = hookd(
        &[
            "sign",
            "--config",
            &config_path,
            "--source",
            "nope",
            "--body",
            &body_path,
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stderr.contains("nope"));
}

/// `HOOKD_LOG_FORMAT=json` gives one JSON object per log line.
#[test]
fn json_logs() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "hookd.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[redis]\nurl = \"redis://127.0.0.1:1\"\n",
    );
    let mut child = Command::new(hookd_bin())
        .args(["run", "--config", &path])
        .env("HOOKD_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut bound = None;
    for _ in 0..10 {
        let Some(Ok(line)) = lines.next() else { break };
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            value["level"].is_string() && value["timestamp"].is_string(),
            "{line}"
        );
        if value["fields"]["message"] == "public listener bound" {
            bound = value["fields"]["addr"].as_str().map(str::to_owned);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(bound.is_some(), "no structured listener line");
}

/// README (Command line): `TOKIO_WORKER_THREADS` sizes the daemon's
/// runtime, the knob for hosts where hookd shares a few cores with Redis
/// and the services it delivers to; the startup log says what was chosen.
#[tokio::test(flavor = "multi_thread")]
async fn runtime_workers_follow_tokio_worker_threads() {
    let redis = TestRedis::start();
    let toml = config(&redis.url(), "", &[]);
    for workers in [1, 3] {
        let daemon =
            Daemon::start_env(&toml, &[("TOKIO_WORKER_THREADS", &workers.to_string())]).await;
        daemon.wait_ready().await;
        assert!(
            daemon
                .logs()
                .contains(&format!("runtime started workers={workers}")),
            "{}",
            daemon.logs()
        );
    }
}

/// A command that needs Redis and cannot reach it says which Redis it
/// tried, without its password, and why, and exits 1.
#[test]
fn a_cli_command_names_the_redis_it_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let toml = format!(
        "[redis]\nurl = \"redis://:hunter2@127.0.0.1:{port}\"\n[[sources]]\nname = \"a\"\nverify = {{ scheme = \"none\" }}\n[sources.destination]\nurl = \"http://127.0.0.1:3000/\"\n"
    );
    let path = write(&dir, "hookd.toml", &toml);
    let (code, _, stderr) = hookd(&["dlq", "list", "--config", &path], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach redis at redis://:[redacted]@127.0.0.1:{port}"
        )) && stderr.contains("Connection refused (os error"),
        "{stderr}"
    );
    // In std's words, not a debug dump of the I/O error.
    assert!(!stderr.contains("Os {"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
