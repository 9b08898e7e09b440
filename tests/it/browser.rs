//! The dashboard in a real headless Chromium, driven over WebDriver: log
//! in, find a dead-lettered event and replay it; search the event log,
//! filter it, replay a delivered event and watch the new attempt; charts
//! drawn from real figures; pause and resume a destination.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them). Set `HOOKD_UPDATE_SCREENSHOT=1` to refresh the screenshots in
//! `docs/`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::admin::{TOKEN, dead_letter, setup};
use crate::support::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn find_binary(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|c| std::path::Path::new(c).exists())
        .map(|c| c.to_string())
}

impl Driver {
    async fn start() -> Self {
        let chromedriver = find_binary(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])
            .expect("chromedriver not found: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)");
        let chromium = find_binary(&["/usr/bin/chromium", "/usr/bin/chromium-browser"])
            .expect("chromium not found: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(10), || async {
            get(&format!("{base}/status")).await.status == 200
        })
        .await;
        assert!(up, "chromedriver did not start");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-dev-shm-usage", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut driver = Self {
            child,
            base,
            session: String::new(),
            _profile: profile,
        };
        let created = driver.call(Method::POST, "/session", caps).await;
        driver.session = created["sessionId"]
            .as_str()
            .expect("no session")
            .to_owned();
        driver
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let body = if method == Method::GET {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        let reply = request(
            method,
            &url,
            &[("content-type".into(), "application/json".into())],
            body,
        )
        .await;
        let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        assert!(reply.status < 400, "webdriver {path}: {value}");
        value["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/session/{}/element", self.base, self.session);
            let reply = request(
                Method::POST,
                &url,
                &[("content-type".into(), "application/json".into())],
                Bytes::from(json!({"using": "css selector", "value": css}).to_string()),
            )
            .await;
            if reply.status == 200 {
                let value: Value = serde_json::from_slice(&reply.body).unwrap();
                return value["value"][ELEMENT]
                    .as_str()
                    .unwrap_or_else(|| panic!("{value}"))
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "element {css} not found:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.call(Method::GET, "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let page = self.source().await;
            if page.contains(text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared:\n{page}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Accepts the confirm() dialog the page opened.
    async fn accept_dialog(&self) {
        let ok = eventually(Duration::from_secs(5), || async {
            let url = format!("{}/session/{}/alert/accept", self.base, self.session);
            request(
                Method::POST,
                &url,
                &[("content-type".into(), "application/json".into())],
                Bytes::from_static(b"{}"),
            )
            .await
            .status
                == 200
        })
        .await;
        assert!(ok, "no confirmation dialog appeared");
    }

    async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call(Method::GET, "/screenshot", Value::Null).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ending the session closes the browser; killing chromedriver alone
        // would leave Chromium running. Blocking is fine here: a plain
        // thread, no runtime of its own.
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        request(Method::DELETE, &url, &[], Bytes::new()),
                    )
                    .await;
                });
            }
        })
        .join();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Saves a screenshot under `target/` (and `docs/` with
/// `HOOKD_UPDATE_SCREENSHOT`).
async fn save_screenshot(driver: &Driver, name: &str) {
    let png = driver.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG screenshot");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let _ = std::fs::write(root.join("target").join(name), &png);
    if std::env::var_os("HOOKD_UPDATE_SCREENSHOT").is_some() {
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::write(root.join("docs").join(name), &png).unwrap();
    }
}

/// The state of source alpha's one destination.
async fn alpha_state(h: &Harness) -> String {
    let sources = h.api(Method::GET, "/admin/sources").await.json();
    sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "alpha")
        .map(|s| s["destinations"][0]["state"].as_str().unwrap().to_owned())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_logs_in_and_replays_a_dead_lettered_event() {
    let s = setup().await;
    dead_letter(
        &s,
        "alpha",
        &[
            ("evt_browser", "invoice.failed"),
            ("evt_other", "invoice.paid"),
        ],
    )
    .await;
    dead_letter(&s, "beta", &[("evt_beta", "user.created")]).await;
    // Give the overview some numbers in the other columns too.
    s.sink.set_default(Answer::status(200));

    let driver = Driver::start().await;
    driver.goto(&s.daemon.admin_url("/")).await;
    driver.wait_for_text("Admin token").await;
    driver.type_into("#token", "wrong").await;
    driver.click("#login").await;
    driver.wait_for_text("That token is not right").await;
    driver.type_into("#token", TOKEN).await;
    driver.click("#login").await;
    driver.wait_for_text("Overview").await;
    driver.goto(&s.daemon.admin_url("/dlq")).await;
    driver.wait_for_text("Dead-letter queue").await;
    driver.wait_for_text("evt_browser").await;
    save_screenshot(&driver, "dlq.png").await;

    // Filter, open the entry, replay it.
    driver
        .type_into("input[name=event_type]", "invoice.failed")
        .await;
    driver.click("#filters button[type=submit]").await;
    driver.wait_for_text("event_type=invoice.failed").await;
    driver.click("tr[data-event-id=evt_browser] a").await;
    driver.wait_for_text("invoice.failed").await;
    driver.wait_for_text("webhook-signature").await;
    let page = driver.source().await;
    // Indented, with its keys in the order they came (`type` first).
    let body = "\"type\": \"invoice.failed\",\n  \"id\": \"evt_browser\"\n}";
    assert!(
        page.contains(body) || page.contains(&body.replace('"', "&quot;")),
        "indented JSON body, in its own key order, missing:\n{page}"
    );
    driver.click("#replay").await;
    driver.accept_dialog().await;
    driver.wait_for_text("Event replayed.").await;

    assert!(
        eventually(Duration::from_secs(10), || async {
            s.sink.received().iter().any(|r| {
                r.header("webhook-id") == "evt_browser"
                    && r.header("x-hookd-attempt") == "1"
                    && r.at.elapsed() < Duration::from_secs(10)
            }) && s
                .sink
                .received()
                .iter()
                .filter(|r| r.header("webhook-id") == "evt_browser")
                .count()
                == 2
        })
        .await,
        "the replayed event was not delivered"
    );
    // It left the DLQ; the others stayed.
    let left = s.api(Method::GET, "/admin/dlq").await.json();
    let ids: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["evt_beta", "evt_other"]);

    // Pause a destination from its row, then resume it.
    driver.goto(&s.daemon.admin_url("/")).await;
    driver
        .click("button[data-action=pause][data-url$='/sources/alpha/destinations/default/pause']")
        .await;
    driver.accept_dialog().await;
    driver.wait_for_text("Destination paused.").await;
    assert_eq!(alpha_state(&s).await, "paused");
    driver
        .click("button[data-action=resume][data-url$='/sources/alpha/destinations/default/resume']")
        .await;
    driver.accept_dialog().await;
    driver.wait_for_text("Destination resumed.").await;
    assert_ne!(alpha_state(&s).await, "paused");

    // A refused filter is named and offers no "replay all matching": the
    // list it falls back to is everything.
    driver.goto(&s.daemon.admin_url("/dlq?reason=bogus")).await;
    driver.wait_for_text("Dead-letter queue").await;
    let page = driver.source().await;
    assert!(page.contains("class=\"error\""), "{page}");
    assert!(!page.contains("id=\"bulk-replay\""), "{page}");
    driver.goto(&s.daemon.admin_url("/dlq?limit=many")).await;
    driver.wait_for_text("limit must be a number").await;

    // Bulk replay by filter, with its confirmation.
    driver.goto(&s.daemon.admin_url("/dlq?source=beta")).await;
    driver.wait_for_text("evt_beta").await;
    driver.click("#bulk-replay").await;
    driver.accept_dialog().await;
    driver.wait_for_text("Replayed 1 event(s).").await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            s.sink
                .received()
                .iter()
                .filter(|r| r.header("webhook-id") == "evt_beta")
                .count()
                == 2
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_searches_the_event_log_replays_and_watches_the_charts() {
    let source = SourceSpec::standard("shop", SINK)
        .route(
            "billing",
            SINKS[0],
            r#"filter = { event_types = ["order.*"] }"#,
        )
        .route(
            "analytics",
            SINKS[1],
            r#"retry = { max_attempts = 5, base = "1h", max = "1h", jitter = false }
breaker = { failures = 0 }"#,
        );
    let h = Harness::builder()
        .source(source)
        .sinks(2)
        .admin_token(TOKEN)
        .start()
        .await;
    // analytics refuses one event for now: it waits for a retry.
    h.sinks[1].answer_id("evt_stuck", Answer::status(503));
    let mut sent = Vec::new();
    for i in 0..30 {
        let kind = ["order.created", "order.paid", "customer.updated"][i % 3];
        let id = format!("evt_{i}");
        sent.push((id.clone(), crate::routes::event(&id, kind, None)));
    }
    sent.push((
        "evt_stuck".into(),
        crate::routes::event("evt_stuck", "order.created", None),
    ));
    crate::routes::send_all(&h.daemon, "shop", sent).await;
    assert!(h.sinks[0].wait_for(21, Duration::from_secs(10)).await);
    assert!(
        eventually(Duration::from_secs(10), || async {
            h.redis.retrying("shop") == 1
        })
        .await
    );

    let driver = Driver::start().await;
    driver.goto(&h.daemon.admin_url("/")).await;
    driver.type_into("#token", TOKEN).await;
    driver.click("#login").await;
    driver.wait_for_text("Overview").await;

    // Charts drawn from the minute's real figures.
    driver.wait_for_text("Events per minute").await;
    let page = driver.source().await;
    assert!(
        page.contains("data-series=\"accepted\"") && page.contains("data-series=\"delivered\""),
        "no chart lines:\n{page}"
    );
    assert!(
        page.contains("<b>31</b>"),
        "the accepted count is not shown:\n{page}"
    );
    save_screenshot(&driver, "overview.png").await;

    // Search by the provider's event id.
    driver.goto(&h.daemon.admin_url("/events")).await;
    driver.wait_for_text("evt_29").await;
    save_screenshot(&driver, "events.png").await;
    driver.type_into("#search-id", "evt_7").await;
    driver.click("#search button[type=submit]").await;
    driver.wait_for_text("id=evt_7").await;
    let page = driver.source().await;
    assert_eq!(page.matches("data-event-id=\"").count(), 1, "{page}");
    assert!(page.contains("data-event-id=\"evt_7\""));

    // A page argument the API refuses is named, not silently replaced.
    driver.goto(&h.daemon.admin_url("/events?limit=many")).await;
    driver.wait_for_text("limit must be a number").await;
    driver
        .goto(&h.daemon.admin_url("/events?cursor=garbage"))
        .await;
    driver.wait_for_text("cursor is not valid").await;
    // A refused filter offers no "replay all matching": the list it falls
    // back to is everything.
    driver
        .goto(&h.daemon.admin_url("/events?status=lost"))
        .await;
    driver.wait_for_text("class=\"error\"").await;
    assert!(!driver.source().await.contains("id=\"bulk-replay\""));

    // Filter by status.
    driver.goto(&h.daemon.admin_url("/events")).await;
    driver
        .click("select[name=status] option[value=retrying]")
        .await;
    driver.click("#filters button[type=submit]").await;
    driver.wait_for_text("status=retrying").await;
    let page = driver.source().await;
    assert_eq!(page.matches("data-event-id=\"").count(), 1, "{page}");
    assert!(page.contains("data-event-id=\"evt_stuck\""));

    // A delivered event: replay it to billing and watch the new attempt.
    driver.goto(&h.daemon.admin_url("/events?id=evt_3")).await;
    driver.click("tr[data-event-id=evt_3] a").await;
    driver.wait_for_text("Deliveries").await;
    driver.wait_for_text("class=\"attempt ok\"").await;
    save_screenshot(&driver, "event.png").await;
    let before = h.sinks[0].count();
    driver.click("button[data-destination=billing]").await;
    driver.accept_dialog().await;
    driver.wait_for_text("Event replayed.").await;
    driver.wait_for_text("replay of").await;
    // The copy's page refreshes itself until billing's attempt shows.
    driver.wait_for_text("class=\"attempt ok\"").await;
    assert_eq!(h.sinks[0].count(), before + 1);
    assert_eq!(h.sinks[0].ids().last().map(String::as_str), Some("evt_3"));

    // Pause and resume a destination from the overview.
    driver.goto(&h.daemon.admin_url("/")).await;
    driver
        .click("button[data-action=pause][data-url$='/sources/shop/destinations/billing/pause']")
        .await;
    driver.accept_dialog().await;
    driver.wait_for_text("Destination paused.").await;
    driver.wait_for_text("Resume").await;
    driver
        .click("button[data-action=resume][data-url$='/sources/shop/destinations/billing/resume']")
        .await;
    driver.accept_dialog().await;
    driver.wait_for_text("Destination resumed.").await;

    // The overview keeps itself current: a pause made elsewhere (the
    // command line) shows without a reload, and so does the resume.
    let billing = "data-url=\"/admin/sources/shop/destinations/billing/";
    driver.wait_for_text(&format!("{billing}pause\"")).await;
    assert_eq!(h.cli(&["destinations", "pause", "shop", "billing"]).0, 0);
    driver.wait_for_text(&format!("{billing}resume\"")).await;
    assert_eq!(h.cli(&["destinations", "resume", "shop", "billing"]).0, 0);
    driver.wait_for_text(&format!("{billing}pause\"")).await;
}
