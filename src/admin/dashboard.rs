//! Server-rendered HTML for operators. The few interactive bits (replay,
//! delete, bulk replay, each after a confirmation) are in `app.js`, which
//! calls the JSON API; no CDN, no build step.

use std::collections::HashMap;
use std::fmt::Write;

use bytes::Bytes;
use http::StatusCode;

use super::AdminHandle;
use super::api::{checked_filter, page_args, sources};
use crate::dlq::{self, DlqItem};
use crate::queue::DeadReason;
use crate::response::{HttpResponse, with_type};

pub const CSS: &str = include_str!("assets/app.css");
pub const JS: &str = include_str!("assets/app.js");

/// HTML-escapes text for element content and quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn page(title: &str, body: &str) -> HttpResponse {
    page_with_status(StatusCode::OK, title, body)
}

fn page_with_status(status: StatusCode, title: &str, body: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · hookd</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><header><a class=\"brand\" href=\"/\">hookd</a>\
         <form method=\"post\" action=\"/logout\"><button class=\"link\">Log out</button></form></header>\
         <main>{}</main><script src=\"/assets/app.js\"></script></body></html>",
        esc(title),
        body
    );
    with_type(status, "text/html; charset=utf-8", Bytes::from(html))
}

pub fn login_page(message: Option<&str>) -> HttpResponse {
    let notice = message
        .map(|m| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(m)))
        .unwrap_or_default();
    page(
        "Log in",
        &format!(
            "<section class=\"card narrow\"><h1>Log in</h1>{notice}\
             <form method=\"post\" action=\"/login\">\
             <label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autofocus></label>\
             <button type=\"submit\" id=\"login\">Log in</button></form></section>"
        ),
    )
}

pub fn not_found() -> HttpResponse {
    page_with_status(
        StatusCode::NOT_FOUND,
        "Not found",
        "<section class=\"card\"><h1>Not found</h1><p><a href=\"/\">Back to the overview</a></p></section>",
    )
}

fn time(ms: u64) -> String {
    if ms == 0 {
        return "—".into();
    }
    let secs = ms / 1000;
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn age(ms: Option<u64>) -> String {
    match ms {
        None => "—".into(),
        Some(ms) if ms < 1000 => format!("{ms} ms"),
        Some(ms) if ms < 120_000 => format!("{} s", ms / 1000),
        Some(ms) if ms < 7_200_000 => format!("{} min", ms / 60_000),
        Some(ms) => format!("{} h", ms / 3_600_000),
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

pub async fn overview(admin: &AdminHandle, query: &HashMap<String, String>) -> HttpResponse {
    let mut body = String::new();
    if let Some(flash) = query.get("flash") {
        let _ = write!(body, "<p class=\"flash\" id=\"flash\">{}</p>", esc(flash));
    }
    let view = sources(admin).await;
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Destinations <small>redis {}</small></h1><table id=\"sources\">\
         <thead><tr><th>source</th><th>destination</th><th>state</th><th>in flight</th><th>backlog</th>\
         <th>retrying</th><th>dead-lettered</th><th>oldest undelivered</th><th>url</th><th></th></tr></thead><tbody>",
        view.redis
    );
    for s in &view.sources {
        for d in &s.destinations {
            let action = format!(
                "/admin/sources/{}/destinations/{}",
                url_encode(&s.name),
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
            let _ = write!(
                body,
                "<tr data-destination=\"{dest}\"><td><a href=\"/?source={src}\">{name}</a></td><td>{dest}</td>\
                 <td><span class=\"state {state}\">{state}</span></td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td class=\"mono\">{}</td><td class=\"actions\">{button}</td></tr>",
                d.in_flight,
                d.max_in_flight,
                opt(d.backlog),
                d.retrying,
                d.dlq,
                age(d.oldest_pending_age_ms),
                esc(&d.url),
                src = url_encode(&s.name),
                name = esc(&s.name),
                dest = esc(&d.name),
                state = d.state,
            );
        }
    }
    body.push_str("</tbody></table></section>");

    let filter = checked_filter(admin, query).unwrap_or_default();
    let (limit, cursor) = page_args(query).unwrap_or((50, None));
    let selected = |value: &str, current: Option<&String>| {
        if current.is_some_and(|c| c == value) {
            " selected"
        } else {
            ""
        }
    };
    let _ = write!(
        body,
        "<section class=\"card\"><h1>Dead-letter queue</h1>\
         <form class=\"filters\" method=\"get\" action=\"/\" id=\"filters\">\
         <label>source <select name=\"source\"><option value=\"\">all</option>"
    );
    for keys in admin.sources.keys() {
        let _ = write!(
            body,
            "<option{}>{}</option>",
            selected(&keys.source, filter.source.as_ref()),
            esc(&keys.source)
        );
    }
    let _ = write!(
        body,
        "</select></label><label>destination <input name=\"destination\" value=\"{}\"></label>\
         <label>event type <input name=\"event_type\" value=\"{}\"></label>\
         <label>reason <select name=\"reason\"><option value=\"\">any</option>",
        esc(filter.destination.as_deref().unwrap_or("")),
        esc(filter.event_type.as_deref().unwrap_or(""))
    );
    let reason = filter.reason.map(|r| r.as_str().to_owned());
    for choice in DeadReason::ALL {
        let _ = write!(
            body,
            "<option{}>{choice}</option>",
            selected(choice.as_str(), reason.as_ref())
        );
    }
    let filter_query = format!(
        "source={}&destination={}&event_type={}&reason={}",
        url_encode(filter.source.as_deref().unwrap_or("")),
        url_encode(filter.destination.as_deref().unwrap_or("")),
        url_encode(filter.event_type.as_deref().unwrap_or("")),
        url_encode(reason.as_deref().unwrap_or(""))
    );
    let _ = write!(
        body,
        "</select></label><button type=\"submit\">Filter</button>\
         <button type=\"button\" class=\"danger\" id=\"bulk-replay\" data-bulk=\"/admin/dlq/replay?{q}\">Replay all matching</button>\
         </form>",
        q = esc(&filter_query)
    );

    match dlq::list(
        &admin.queue,
        admin.sources.keys(),
        &filter,
        cursor.as_ref(),
        limit,
    )
    .await
    {
        Err(e) => {
            let _ = write!(
                body,
                "<p class=\"error\">Redis: {}</p>",
                esc(&e.to_string())
            );
        }
        Ok(page) if page.items.is_empty() => {
            body.push_str("<p class=\"empty\" id=\"dlq-empty\">Nothing is dead-lettered.</p>");
        }
        Ok(page) => {
            body.push_str(
                "<table id=\"dlq\"><thead><tr><th>dead since</th><th>source</th><th>event id</th><th>type</th>\
                 <th>destination</th><th>reason</th><th>status</th><th>attempts</th><th>last error</th><th></th></tr></thead><tbody>",
            );
            for item in &page.items {
                row(&mut body, item);
            }
            body.push_str("</tbody></table>");
            if let Some(next) = page.next_cursor {
                let _ = write!(
                    body,
                    "<p><a id=\"older\" href=\"/?{}&limit={limit}&cursor={}\">Older entries →</a></p>",
                    esc(&filter_query),
                    url_encode(&next)
                );
            }
        }
    }
    body.push_str("</section>");
    page("Overview", &body)
}

fn entry_links(item: &DlqItem) -> (String, String) {
    let path = format!("{}/{}", url_encode(&item.source), url_encode(&item.id));
    (format!("/ui/dlq/{path}"), format!("/admin/dlq/{path}"))
}

fn row(body: &mut String, item: &DlqItem) {
    let (ui, api) = entry_links(item);
    let error: String = item.error.chars().take(80).collect();
    let _ = write!(
        body,
        "<tr data-event-id=\"{eid}\"><td>{}</td><td>{}</td><td><a class=\"mono\" href=\"{ui}\">{eid}</a></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error-text\">{}</td>\
         <td class=\"actions\"><button data-action=\"replay\" data-url=\"{api}/replay\" data-method=\"POST\">Replay</button>\
         <button class=\"danger\" data-action=\"delete\" data-url=\"{api}\" data-method=\"DELETE\">Delete</button></td></tr>",
        time(item.dead_at_ms),
        esc(&item.source),
        esc(&item.event_type),
        esc(&item.destination),
        esc(&item.reason),
        opt(item.status.map(u64::from)),
        item.attempts,
        esc(&error),
        eid = esc(&item.event_id),
    );
}

pub async fn detail(admin: &AdminHandle, source: &str, id: &str) -> HttpResponse {
    let Some(src) = admin.sources.get(source) else {
        return not_found();
    };
    let item = match dlq::find(&admin.queue, [&src.keys], id).await {
        Ok(Some(item)) => item,
        Ok(None) => return not_found(),
        Err(e) => {
            return page_with_status(
                StatusCode::SERVICE_UNAVAILABLE,
                "Redis unavailable",
                &format!("<p class=\"error\">Redis: {}</p>", esc(&e.to_string())),
            );
        }
    };
    let detail = item.detail();
    let (_, api) = entry_links(&item);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/\">← Overview</a></p><section class=\"card\"><h1>Event <span class=\"mono\" id=\"event-id\">{}</span></h1>\
         <div class=\"actions\"><button data-action=\"replay\" id=\"replay\" data-url=\"{api}/replay\" data-method=\"POST\">Replay</button>\
         <button class=\"danger\" data-action=\"delete\" id=\"delete\" data-url=\"{api}\" data-method=\"DELETE\">Delete</button></div>\
         <dl class=\"meta\"><dt>source</dt><dd>{}</dd><dt>destination</dt><dd>{}</dd><dt>type</dt><dd>{}</dd><dt>reason</dt><dd>{}</dd>\
         <dt>last status</dt><dd>{}</dd><dt>last error</dt><dd class=\"error-text\">{}</dd><dt>attempts</dt><dd>{}</dd>\
         <dt>received</dt><dd>{}</dd><dt>dead-lettered</dt><dd>{}</dd><dt>DLQ id</dt><dd class=\"mono\">{}</dd></dl></section>",
        esc(&item.event_id),
        esc(&item.source),
        esc(&item.destination),
        esc(&item.event_type),
        esc(&item.reason),
        opt(item.status.map(u64::from)),
        esc(&item.error),
        item.attempts,
        time(item.received_ms),
        time(item.dead_at_ms),
        esc(&item.id),
    );
    let shown_body = match (&detail.body, &detail.body_base64) {
        (Some(text), _) => serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.clone()),
        (None, Some(b64)) => format!("(binary body, base64)\n{b64}"),
        (None, None) => String::new(),
    };
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Body <small>{} bytes, {}</small></h2><pre id=\"body\">{}</pre></section>",
        item.body_bytes,
        esc(&detail.content_type),
        esc(&shown_body)
    );
    body.push_str("<section class=\"card\"><h2>Headers</h2><table id=\"headers\"><tbody>");
    for (name, value) in &detail.headers {
        let _ = write!(
            body,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(name),
            esc(value)
        );
    }
    body.push_str(
        "</tbody></table></section><section class=\"card\"><h2>Attempts</h2><table id=\"attempts\">\
         <thead><tr><th>#</th><th>at</th><th>status</th><th>error</th></tr></thead><tbody>",
    );
    for attempt in detail.history {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"error-text\">{}</td></tr>",
            attempt.attempt,
            time(attempt.at_ms),
            opt(attempt.status.map(u64::from)),
            esc(&attempt.error)
        );
    }
    body.push_str("</tbody></table></section>");
    page(&format!("Event {}", item.event_id), &body)
}
