//! `/`: every source with its charts for the last hour and its
//! destinations' state, depths and pause / resume.

use std::collections::HashMap;
use std::fmt::Write;

use super::charts::source_charts;
use super::{Nav, age, esc, flash, fragment, opt, page, redis_away_notice, url_encode};
use crate::admin::AdminHandle;
use crate::admin::api::{LISTING_READ_LIMIT, SourceListing, UnreadSource, sources};
use crate::clock::unix_ms;
use crate::events;
use crate::overview::{DestinationOverview, SourceOverview};
use crate::response::HttpResponse;

/// Minutes the overview's charts cover.
const CHART_MINUTES: u64 = 60;

/// `/`; with `partial=1`, only what the live refresh replaces (all but
/// the flash message), so states, counts and charts stay current.
pub async fn overview(admin: &AdminHandle, query: &HashMap<String, String>) -> HttpResponse {
    let mut body = String::new();
    let view = sources(admin).await;
    let _ = write!(
        body,
        "<div class=\"toolbar\"><h1>Overview</h1><span class=\"state {}\" id=\"redis\">redis {}</span></div>",
        if view.redis == "up" {
            "healthy"
        } else {
            "open"
        },
        view.redis
    );
    if let Some(why) = &view.redis_error {
        body.push_str(&redis_away_notice(why));
    }
    let now = unix_ms();
    let deadline = tokio::time::Instant::now() + LISTING_READ_LIMIT;
    for (index, listed) in view.sources.iter().enumerate() {
        let s = match listed {
            SourceListing::Read(s) => s,
            SourceListing::Unread(s) => {
                unread_source(&mut body, s);
                continue;
            }
        };
        let Some(source) = admin.sources.get(&s.name) else {
            continue;
        };
        let stats = tokio::time::timeout_at(
            deadline,
            events::stats(&admin.queue, &[source], now, CHART_MINUTES),
        )
        .await;
        let charts = match stats {
            Ok(Ok(points)) => source_charts(&format!("chart-{index}"), &points),
            Ok(Err(e)) => format!("<p class=\"error\">Redis: {}</p>", esc(&e.to_string())),
            Err(_) => "<p class=\"error\">Redis did not answer in time: no charts.</p>".into(),
        };
        let _ = write!(
            body,
            "<section class=\"card source\" data-source=\"{name}\"><div class=\"toolbar\"><h2>{name}</h2>\
             <span class=\"counts\">backlog <b>{}</b> · retrying <b>{}</b> · dead-lettered <b>{}</b> · oldest unfinished <b>{}</b></span>\
             <a href=\"/events?source={src}\">events →</a></div>{charts}",
            opt(s.backlog),
            s.retrying,
            s.dlq,
            age(s.oldest_pending_age_ms),
            name = esc(&s.name),
            src = url_encode(&s.name),
        );
        destinations_table(&mut body, s);
        body.push_str("</section>");
    }
    if query.get("partial").is_some() {
        return fragment(body);
    }
    let page_body = format!(
        "{}<div id=\"overview\" data-refresh=\"/?partial=1\">{body}</div>",
        flash(query)
    );
    page(Nav::Overview, "Overview", &page_body)
}

const DESTINATIONS_HEAD: &str = "<table class=\"destinations\"><thead><tr><th>destination</th><th>state</th><th>in flight</th>\
     <th>backlog</th><th>retrying</th><th>dead-lettered</th><th>last success</th><th>last failure</th>\
     <th>url</th><th></th></tr></thead><tbody>";

fn destinations_table(body: &mut String, s: &SourceOverview) {
    body.push_str(DESTINATIONS_HEAD);
    for d in &s.destinations {
        destination_row(body, &s.name, d);
    }
    body.push_str("</tbody></table>");
}

/// A source Redis did not answer for: its destinations as configured, in
/// state unknown, with no figures and nothing to press.
fn unread_source(body: &mut String, s: &UnreadSource) {
    let _ = write!(
        body,
        "<section class=\"card source\" data-source=\"{name}\"><div class=\"toolbar\"><h2>{name}</h2>\
         <span class=\"counts\">Redis did not answer: no figures</span></div>{DESTINATIONS_HEAD}",
        name = esc(&s.name),
    );
    for d in &s.destinations {
        let _ = write!(
            body,
            "<tr data-destination=\"{dest}\"><td>{dest}</td><td><span class=\"state {state}\">{state}</span></td>\
             <td>—/{}</td><td>—</td><td>—</td><td>—</td><td>—</td><td>—</td><td class=\"mono url\">{}</td><td></td></tr>",
            d.max_in_flight,
            esc(&d.url),
            dest = esc(&d.name),
            state = d.state,
        );
    }
    body.push_str("</tbody></table></section>");
}

fn destination_row(body: &mut String, source: &str, d: &DestinationOverview) {
    let action = format!(
        "/admin/sources/{}/destinations/{}",
        url_encode(source),
        url_encode(&d.name)
    );
    let button = if d.state == "paused" {
        format!(
            "<button data-action=\"resume\" data-url=\"{}/resume\" data-method=\"POST\">Resume</button>",
            esc(&action)
        )
    } else {
        format!(
            "<button class=\"danger\" data-action=\"pause\" data-url=\"{}/pause\" data-method=\"POST\">Pause</button>",
            esc(&action)
        )
    };
    let now = unix_ms();
    let ago = |ms: Option<u64>| age(ms.map(|at| now.saturating_sub(at)));
    let failure = match (d.last_failure_ms, d.last_failure_status) {
        (Some(_), Some(status)) => format!("{} ago ({status})", ago(d.last_failure_ms)),
        (Some(_), None) => format!("{} ago", ago(d.last_failure_ms)),
        _ => "—".into(),
    };
    let success = match d.last_success_ms {
        Some(_) => format!("{} ago", ago(d.last_success_ms)),
        None => "—".into(),
    };
    let _ = write!(
        body,
        "<tr data-destination=\"{dest}\"><td><a href=\"/events?source={src}&amp;destination={dest_q}\">{dest}</a></td>\
         <td><span class=\"state {state}\">{state}</span></td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td>\
         <td>{success}</td><td>{failure}</td><td class=\"mono url\">{}</td><td class=\"actions\">{button}</td></tr>",
        d.in_flight,
        d.max_in_flight,
        opt(d.backlog),
        d.retrying,
        d.dlq,
        esc(&d.url),
        src = url_encode(source),
        dest_q = url_encode(&d.name),
        dest = esc(&d.name),
        state = d.state,
    );
}
