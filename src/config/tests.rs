//! Whole config documents through parsing and validation: what each
//! accepts, and that every refusal names its key and quotes no value.

use super::*;

#[test]
fn figment_errors_write_list_positions_in_brackets() {
    let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        key_path(&path(&["sources", "0", "destinations", "12", "url"])),
        "sources[0].destinations[12].url"
    );
    assert_eq!(key_path(&path(&["server", "listen"])), "server.listen");
    let err = Config::from_toml_str(
        "[[sources]]\nname = \"s\"\nverify = { scheme = \"none\" }\n[[sources.destinations]]\nname = \"a\"\nurl = \"ftp://x/\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("`sources[0].destinations[0].url`"), "{err}");
}

#[test]
fn sources_are_not_overridden_from_the_environment() {
    let names = |list: &[&str]| {
        list.iter()
            .map(std::ffi::OsString::from)
            .collect::<Vec<_>>()
    };
    assert!(refuse_source_overrides(names(&["HOOKD_REDIS__URL", "HOOKD_CONFIG"])).is_ok());
    let refused = refuse_source_overrides(names(&["hookd_sources__0__name"]))
        .unwrap_err()
        .to_string();
    assert!(refused.contains("hookd_sources__0__name"), "{refused}");
    assert!(refused.contains("config file"), "{refused}");
}

fn source_toml(extra: &str) -> String {
    format!(
        r#"
[[sources]]
name = "gh"
verify = {{ scheme = "github", secrets = ["s3cret"] }}
{extra}
[sources.destination]
url = "http://127.0.0.1:3000/hooks"
"#
    )
}

#[test]
fn defaults_match_design() {
    let config = Config::from_toml_str("").unwrap();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.server.max_body_bytes, 1_048_576);
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(config.redis.key_prefix, "hookd");
    assert_eq!(config.redis.pool_size, 4);
    assert_eq!(config.worker.concurrency, 64);
    assert_eq!(config.worker.claim_idle, Duration::from_secs(60));
    assert_eq!(config.worker.max_deliveries, 10);
    assert_eq!(config.ingest.max_backlog, 1_000_000);
    assert_eq!(config.ingest.dedup_ttl, Duration::from_secs(72 * 3600));
    assert_eq!(config.shutdown.timeout, Duration::from_secs(30));
}

#[test]
fn parses_a_source_with_defaults() {
    let config = Config::from_toml_str(&source_toml("")).unwrap();
    let source = &config.sources[0];
    assert!(source.destination.is_none(), "read into destinations");
    let destination = &source.destinations[0];
    assert_eq!(destination.name, DEFAULT_DESTINATION);
    assert_eq!(destination.max_in_flight, 16);
    assert_eq!(destination.retry.max_attempts, 8);
    assert_eq!(destination.breaker, BreakerConfig::default());
    assert!(destination.filter.is_empty());
    assert_eq!(source.id_from, FieldSource::Auto);
}

#[test]
fn unknown_keys_are_rejected_with_their_name() {
    let err = Config::from_toml_str("[worker]\nconcurency = 3\n").unwrap_err();
    assert!(err.to_string().contains("concurency"), "{err}");
    let err = Config::from_toml_str(&source_toml("colour = \"red\"")).unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");
}

#[test]
fn bad_values_name_the_key() {
    let err = Config::from_toml_str("[worker]\nconcurrency = \"many\"\n").unwrap_err();
    assert!(err.to_string().contains("worker.concurrency"), "{err}");
    let err = Config::from_toml_str("[server]\nheader_read_timeout = \"soon\"\n").unwrap_err();
    assert!(
        err.to_string().contains("server.header_read_timeout"),
        "{err}"
    );
}

/// Why a config with only `[section] key = value` is refused.
fn refusal(section: &str, key: &str, value: &str) -> String {
    Config::from_toml_str(&format!("[{section}]\n{key} = {value}\n"))
        .expect_err(key)
        .to_string()
}

#[test]
fn zero_limits_and_timeouts_are_refused_by_name() {
    for (section, key, value) in [
        ("server", "max_body_bytes", "0"),
        ("server", "header_read_timeout", "\"0s\""),
        ("server", "request_timeout", "\"0s\""),
        ("server", "idle_timeout", "\"0s\""),
        ("server", "max_connections", "0"),
        ("redis", "pool_size", "0"),
        ("worker", "concurrency", "0"),
        ("worker", "claim_interval", "\"0s\""),
        ("ingest", "max_backlog", "0"),
    ] {
        let err = refusal(section, key, value);
        assert!(err.contains(&format!("{section}.{key} must be")), "{err}");
    }
}

/// Values `run` could not use (a semaphore of 2^62 permits, a Redis
/// expiry of millions of years) are refused where `check-config` sees
/// them, by name.
#[test]
fn limits_and_durations_too_large_are_refused_by_name() {
    for (section, key, value) in [
        ("server", "max_connections", "1000001"),
        ("server", "max_body_bytes", "536870913"),
        ("redis", "pool_size", "129"),
        ("worker", "concurrency", "4611686018427387904"),
        ("ingest", "dedup_ttl", "\"500000000y\""),
        ("worker", "claim_idle", "\"11y\""),
        ("shutdown", "timeout", "\"500000000y\""),
    ] {
        let err = refusal(section, key, value);
        assert!(err.contains(&format!("{section}.{key}")), "{err}");
    }
    let destination = |extra: &str| {
        Config::from_toml_str(&format!("{}{extra}\n", source_toml("")))
            .expect_err(extra)
            .to_string()
    };
    let err = destination("max_in_flight = 9223372036854775807");
    assert!(
        err.contains("sources[0].destinations[0].max_in_flight must be 1 to"),
        "{err}"
    );
    let err = destination("retry = { base = \"1s\", max = \"500000000y\" }");
    assert!(err.contains("retry.max"), "{err}");
    Config::from_toml_str(&format!(
        "[server]\nmax_connections = 1000000\n[redis]\npool_size = 128\n[ingest]\ndedup_ttl = \"3650days\"\n{}max_in_flight = 1000000\n",
        source_toml("")
    ))
    .expect("the largest values are accepted");
}

#[test]
fn claim_idle_must_exceed_destination_timeout() {
    let toml = format!("[worker]\nclaim_idle = \"5s\"\n{}", source_toml(""));
    let err = Config::from_toml_str(&toml).unwrap_err();
    assert!(err.to_string().contains("worker.claim_idle"), "{err}");
    assert!(
        err.to_string()
            .contains("sources[0].destinations[0].timeout"),
        "{err}"
    );
}

#[test]
fn non_loopback_admin_requires_token() {
    let err = Config::from_toml_str("[admin]\nlisten = \"0.0.0.0:8081\"\n").unwrap_err();
    assert!(err.to_string().contains("admin.token"), "{err}");
    Config::from_toml_str("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"t\"\n").unwrap();
}

#[test]
fn the_none_scheme_takes_no_keys() {
    let toml = source_toml("").replace(
        "verify = { scheme = \"github\", secrets = [\"s3cret\"] }",
        "verify = { scheme = \"none\", secrets = [\"s3cret\"] }",
    );
    let err = Config::from_toml_str(&toml).unwrap_err().to_string();
    assert!(
        err.contains("unknown field `secrets`: no other key is allowed here"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    let toml = source_toml("").replace(
        "verify = { scheme = \"github\", secrets = [\"s3cret\"] }",
        "verify = { scheme = \"none\" }",
    );
    Config::from_toml_str(&toml).expect("scheme none alone");
}

#[test]
fn verify_scheme_is_mandatory_and_checked() {
    let toml = source_toml("").replace("scheme = \"github\"", "scheme = \"gitbub\"");
    let err = Config::from_toml_str(&toml).unwrap_err();
    assert!(err.to_string().contains("sources"), "{err}");
    let toml = r#"
[[sources]]
name = "x"
verify = { scheme = "none" }
[sources.destination]
url = "http://127.0.0.1:1/"
"#;
    Config::from_toml_str(toml).unwrap();
}

#[test]
fn duplicate_and_invalid_source_names_are_rejected() {
    let twice = format!("{}{}", source_toml(""), source_toml(""));
    let err = Config::from_toml_str(&twice).unwrap_err();
    assert!(err.to_string().contains("sources[1].name"), "{err}");
    let bad = source_toml("").replace("name = \"gh\"", "name = \"a/b\"");
    let err = Config::from_toml_str(&bad).unwrap_err();
    assert!(err.to_string().contains("sources[0].name"), "{err}");
}

fn destinations(block: &str) -> String {
    format!("[[sources]]\nname = \"s\"\nverify = {{ scheme = \"none\" }}\n{block}")
}

#[test]
fn several_destinations_with_filters_headers_and_breakers() {
    let toml = destinations(
        r#"
[[sources.destinations]]
name = "billing"
url = "http://billing:3000/hooks"
filter = { event_types = ["invoice.*"], match = { "/data/object/livemode" = true } }
headers = { Authorization = "Bearer t0ken" }
breaker = { failures = 5, cooldown = "10s", max_cooldown = "1m" }
[[sources.destinations]]
name = "analytics"
url = "http://analytics:9000/ingest"
"#,
    );
    let config = Config::from_toml_str(&toml).unwrap();
    let d = &config.sources[0].destinations;
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].filter.event_types, vec!["invoice.*"]);
    assert_eq!(
        d[0].filter.matches["/data/object/livemode"],
        serde_json::json!(true)
    );
    assert_eq!(d[0].breaker.failures, 5);
    assert_eq!(d[1].name, "analytics");
    let printed = config.to_redacted_toml().unwrap();
    assert!(!printed.contains("t0ken"), "{printed}");
}

#[test]
fn destination_forms_and_names_are_checked() {
    let one = "[sources.destination]\nurl = \"http://a/\"\n";
    let many = "[[sources.destinations]]\nname = \"a\"\nurl = \"http://a/\"\n";
    let cases = [
        (destinations(""), "sources[0] has no destination"),
        (
            destinations(&format!(
                "{many}[sources.destination]\nurl = \"http://b/\"\n"
            )),
            "both",
        ),
        (
            destinations(&format!("{many}{many}")),
            "sources[0].destinations[1].name",
        ),
        (
            destinations("[[sources.destinations]]\nname = \"a b\"\nurl = \"http://a/\"\n"),
            "sources[0].destinations[0].name",
        ),
        (
            destinations(&one.replace("url", "name = \"other\"\nurl")),
            "sources[0].destination.name",
        ),
        (
            destinations(&format!(
                "{many}breaker = {{ failures = 3, cooldown = \"0s\" }}\n"
            )),
            "sources[0].destinations[0].breaker",
        ),
    ];
    for (toml, key) in cases {
        let err = Config::from_toml_str(&toml).unwrap_err().to_string();
        assert!(err.contains(key), "{key} not named in: {err}");
    }
}

#[test]
fn type_errors_never_quote_a_value() {
    let cases = [
        source_toml("").replace(r#"secrets = ["s3cret"]"#, r#"secrets = "s3cret""#),
        "[admin]\ntoken = 987654321\n".to_owned(),
        "[redis]\nurl = [\"redis://:s3cret@host\"]\n".to_owned(),
        format!("{}signing_secret = 1234567\n", source_toml("")),
        "[admin]\ntoken = \"s3cret\n".to_owned(),
    ];
    for toml in cases {
        let err = Config::from_toml_str(&toml).unwrap_err().to_string();
        for value in ["s3cret", "987654321", "1234567"] {
            assert!(!err.contains(value), "{err}");
        }
        assert!(err.contains("invalid"), "{err}");
    }
    let err = Config::from_toml_str("[admin]\ntoken = 987654321\n").unwrap_err();
    assert!(err.to_string().contains("admin.token"), "{err}");
    assert!(err.to_string().contains("an integer"), "{err}");
}

#[test]
fn redacted_toml_hides_secrets() {
    let toml = format!(
        "[redis]\nurl = \"redis://app:s3cret@redis.internal:6380/1\"\n{}",
        source_toml("")
    );
    let config = Config::from_toml_str(&toml).unwrap();
    let text = config.to_redacted_toml().unwrap();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    // Which Redis is meant stays readable.
    assert!(
        text.contains("url = \"redis://app:[redacted]@redis.internal:6380/1\""),
        "{text}"
    );
    assert!(!format!("{config:?}").contains("s3cret"));
}
