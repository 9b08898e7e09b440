//! The event log's pages: `/events` (search by provider id, filters, live
//! refresh, replay of every match) and `/events/{source}/{entry}` (one
//! event: its per-destination timeline of attempts, body, headers, replay
//! to one destination or all).

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use super::{
    Nav, esc, flash, fragment, headers_table, not_found, options, page, page_args_or_refused,
    pretty_body, redis_error, url_encode, when,
};
use crate::admin::AdminHandle;
use crate::admin::log_api::event_filter;
use crate::events::{self, EventItem, Filter};
use crate::queue::{AttemptRecord, EventStatus};
use crate::response::HttpResponse;

fn pill(name: &str, status: EventStatus, attempts: u32) -> String {
    format!(
        "<span class=\"pill {status}\" title=\"{name}: {status}, {attempts} attempt(s)\">{name} · {status}</span>",
        name = esc(name),
    )
}

/// The query string of a filter, to carry it into links and refreshes.
fn filter_query(filter: &Filter) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", url_encode(&v)));
        }
    };
    add("source", filter.source.clone());
    add("destination", filter.destination.clone());
    add("event_type", filter.event_type.clone());
    add("status", filter.status.map(|s| s.as_str().to_owned()));
    add("since", filter.since_ms.map(|v| v.to_string()));
    add("until", filter.until_ms.map(|v| v.to_string()));
    add("id", filter.id.clone());
    parts.join("&")
}

/// `/events`; with `partial=1`, only the table (the live refresh).
pub async fn events(admin: &AdminHandle, query: &HashMap<String, String>) -> HttpResponse {
    let (filter, mut refused) = match event_filter(admin, query) {
        Ok(filter) => (filter, None),
        Err(refusal) => (Filter::default(), Some(refusal.message)),
    };
    let (limit, cursor) = page_args_or_refused(query, &mut refused);
    let q = filter_query(&filter);
    let table = match events::list(
        &admin.queue,
        &admin.sources.all(),
        &filter,
        cursor.as_ref(),
        limit,
    )
    .await
    {
        Ok(page) => {
            let mut table = String::new();
            if page.items.is_empty() {
                table.push_str("<p class=\"empty\" id=\"events-empty\">No event matches.</p>");
            } else {
                table.push_str(
                    "<table id=\"events\"><thead><tr><th>received</th><th>source</th><th>event id</th>\
                     <th>type</th><th>size</th><th>destinations</th></tr></thead><tbody>",
                );
                for item in &page.items {
                    row(&mut table, item);
                }
                table.push_str("</tbody></table>");
            }
            if let Some(next) = page.next_cursor {
                let _ = write!(
                    table,
                    "<p><a id=\"older\" href=\"/events?{}&amp;limit={limit}&amp;cursor={}\">Older events →</a></p>",
                    esc(&q),
                    url_encode(&next)
                );
            }
            table
        }
        Err(e) => format!("<p class=\"error\">Redis: {}</p>", esc(&e.to_string())),
    };
    if query.get("partial").is_some() {
        return fragment(table);
    }
    let mut body = flash(query);
    if let Some(message) = &refused {
        let _ = write!(body, "<p class=\"error\">{}</p>", esc(message));
    }
    // Nothing to replay "all matching" of while the filter is refused: the
    // list falls back to everything.
    let bulk = if refused.is_none() {
        format!(
            "<button type=\"button\" class=\"danger\" id=\"bulk-replay\" data-noun=\"event(s)\" data-bulk=\"/admin/events/replay?{}\">Replay all matching</button>",
            esc(&q)
        )
    } else {
        String::new()
    };
    let destinations: BTreeSet<&str> = admin
        .sources
        .iter()
        .flat_map(|s| s.destination_names())
        .collect();
    let source_names: Vec<&str> = admin.sources.iter().map(|s| s.name.as_str()).collect();
    let text = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let time = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let _ = write!(
        body,
        "<section class=\"card\"><div class=\"toolbar\"><h1>Events</h1>\
         <form class=\"search\" method=\"get\" action=\"/events\" id=\"search\">\
         <input name=\"id\" id=\"search-id\" placeholder=\"provider event id\" value=\"{}\">\
         <button type=\"submit\">Find</button></form>\
         <label class=\"live\"><input type=\"checkbox\" id=\"live\"{}> live</label></div>\
         <form class=\"filters\" method=\"get\" action=\"/events\" id=\"filters\">\
         <label>source <select name=\"source\">{}</select></label>\
         <label>destination <select name=\"destination\">{}</select></label>\
         <label>status <select name=\"status\">{}</select></label>\
         <label>event type <input name=\"event_type\" value=\"{}\"></label>\
         <label>since <input name=\"since\" placeholder=\"unix ms or 2026-01-31T09:00:00Z\" value=\"{}\"></label>\
         <label>until <input name=\"until\" placeholder=\"unix ms or RFC 3339\" value=\"{}\"></label>\
         <button type=\"submit\">Filter</button>\
         {bulk}</form><div id=\"events-table\" data-refresh=\"/events?{}&amp;limit={limit}&amp;partial=1\">{table}</div></section>",
        text(&filter.id),
        // The head of the log refreshes by itself; an older page stays put.
        if cursor.is_none() { " checked" } else { "" },
        options(
            "all",
            source_names.iter().copied(),
            filter.source.as_deref()
        ),
        options(
            "all",
            destinations.iter().copied(),
            filter.destination.as_deref()
        ),
        options(
            "any",
            EventStatus::ALL.iter().map(|s| s.as_str()),
            filter.status.map(EventStatus::as_str)
        ),
        text(&filter.event_type),
        time(filter.since_ms),
        time(filter.until_ms),
        esc(&q),
    );
    page(Nav::Events, "Events", &body)
}

fn event_link(source: &str, entry_id: &str) -> String {
    format!("/events/{}/{}", url_encode(source), url_encode(entry_id))
}

fn row(body: &mut String, item: &EventItem) {
    let pills: Vec<String> = item
        .destinations
        .iter()
        .map(|(name, d)| pill(name, d.status, d.attempts))
        .collect();
    let replay = if item.replay_of.is_some() {
        "<span class=\"tag\">replay</span> "
    } else {
        ""
    };
    let _ = write!(
        body,
        "<tr data-entry=\"{entry}\" data-event-id=\"{id}\"><td class=\"nowrap\">{}</td><td>{}</td>\
         <td>{replay}<a class=\"mono\" href=\"{}\">{id}</a></td><td>{}</td><td>{}</td><td class=\"pills\">{}</td></tr>",
        when(item.received_ms),
        esc(&item.source),
        esc(&event_link(&item.source, &item.entry_id)),
        esc(&item.event_type),
        item.size,
        pills.join(" "),
        entry = esc(&item.entry_id),
        id = esc(&item.id),
    );
}

fn attempt_item(a: &AttemptRecord) -> String {
    let ok = a.status.is_some_and(|s| (200..300).contains(&s));
    format!(
        "<li class=\"attempt {}\"><span class=\"n\">#{}</span> <span class=\"when\">{}</span> \
         <b>{}</b> <span class=\"took\">{}</span> <span class=\"error-text\">{}</span></li>",
        if ok { "ok" } else { "bad" },
        a.attempt,
        when(a.at_ms),
        a.status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "no answer".into()),
        a.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
        esc(&a.error),
    )
}

/// `/events/{source}/{entry}`; with `partial=timeline`, only the timeline.
pub async fn event(
    admin: &AdminHandle,
    source: &str,
    entry_id: &str,
    query: &HashMap<String, String>,
) -> HttpResponse {
    let Some(src) = admin.sources.get(source) else {
        return not_found();
    };
    let detail = match events::detail(&admin.queue, src, entry_id).await {
        Ok(Some(detail)) => detail,
        Ok(None) => return not_found(),
        Err(e) => return redis_error(&e),
    };
    let item = &detail.item;
    let mut timeline = String::new();
    for (name, d) in &detail.destinations {
        let _ = write!(
            timeline,
            "<div class=\"timeline\" data-destination=\"{n}\"><h3>{n} <span class=\"pill {}\">{}</span></h3><ol>",
            d.status,
            d.status,
            n = esc(name),
        );
        if d.attempts.is_empty() {
            let why = match d.status {
                EventStatus::Filtered => "not for this destination (its filter)",
                EventStatus::Paused => "waiting: the destination is paused",
                _ => "no attempt yet",
            };
            let _ = write!(timeline, "<li class=\"empty\">{why}</li>");
        }
        for a in &d.attempts {
            timeline.push_str(&attempt_item(a));
        }
        timeline.push_str("</ol></div>");
    }
    if query.get("partial").is_some() {
        return fragment(timeline);
    }
    let api = format!(
        "/admin/events/{}/{}/replay",
        url_encode(source),
        url_encode(entry_id)
    );
    let mut buttons = format!(
        "<button data-action=\"replay-event\" id=\"replay-all\" data-source=\"{}\" data-url=\"{}\" data-method=\"POST\" \
         data-question=\"Replay this event to every destination whose filter wants it?\">Replay to all</button>",
        esc(source),
        esc(&api)
    );
    for name in src.destination_names() {
        let _ = write!(
            buttons,
            "<button data-action=\"replay-event\" class=\"secondary\" data-destination=\"{n}\" data-source=\"{}\" \
             data-url=\"{}?destination={}\" data-method=\"POST\" data-question=\"Replay this event to {n} only?\">Replay to {n}</button>",
            esc(source),
            esc(&api),
            url_encode(name),
            n = esc(name),
        );
    }
    let replay_of = item
        .replay_of
        .as_ref()
        .map(|of| {
            format!(
                "<dt>replay of</dt><dd><a class=\"mono\" href=\"{}\">{}</a>{}</dd>",
                esc(&event_link(source, of)),
                esc(of),
                item.to
                    .as_ref()
                    .map(|to| format!(" (to {} only)", esc(to)))
                    .unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let mut body = flash(query);
    let _ = write!(
        body,
        "<p><a href=\"/events?source={}\">← Events</a></p>\
         <section class=\"card\"><div class=\"toolbar\"><h1>Event <span class=\"mono\" id=\"event-id\">{}</span></h1>\
         <div class=\"actions\">{buttons}</div></div>\
         <dl class=\"meta\"><dt>source</dt><dd>{}</dd><dt>type</dt><dd>{}</dd><dt>received</dt><dd>{}</dd>\
         <dt>entry</dt><dd class=\"mono\">{}</dd><dt>size</dt><dd>{} bytes, {}</dd>{replay_of}</dl></section>\
         <section class=\"card\"><h2>Deliveries</h2><div id=\"timeline\" class=\"timelines\" \
         data-refresh=\"{}?partial=timeline\">{timeline}</div></section>\
         <section class=\"card\"><h2>Body</h2><pre id=\"body\">{}</pre></section>\
         <section class=\"card\"><h2>Headers</h2>{}</section>",
        url_encode(source),
        esc(&item.id),
        esc(source),
        esc(&item.event_type),
        when(item.received_ms),
        esc(entry_id),
        item.size,
        esc(&detail.shown.content_type),
        esc(&event_link(source, entry_id)),
        esc(&pretty_body(&detail.shown)),
        headers_table(&detail.shown.headers),
    );
    page(Nav::Events, &format!("Event {}", item.id), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_survive_into_links() {
        let filter = Filter {
            source: Some("a b".into()),
            status: Some(EventStatus::Dead),
            ..Filter::default()
        };
        assert_eq!(filter_query(&filter), "source=a+b&status=dead");
    }
}
