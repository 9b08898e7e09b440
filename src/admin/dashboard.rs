//! Server-rendered HTML for operators: the overview (destinations with
//! pause / resume, per-source charts), the event log (search, filters, live
//! refresh, each event with its per-destination timeline and replay), and
//! the dead-letter queue. The few interactive bits are in `app.js`, which
//! calls the JSON API after a confirmation; no CDN, no build step. Every
//! piece of event data is escaped: providers' payloads are
//! attacker-controlled.

mod charts;
mod dlq_pages;
mod event_pages;
mod indent;
mod overview_page;

pub use dlq_pages::{detail, dlq};
pub use event_pages::{event, events};
pub use overview_page::overview;

use bytes::Bytes;
use http::StatusCode;

use crate::queue::Unusable;
use crate::response::{HttpResponse, with_type};

pub const CSS: &str = include_str!("assets/app.css");
pub const JS: &str = include_str!("assets/app.js");

/// HTML-escapes text for element content and quoted attributes.
pub(super) fn esc(text: &str) -> String {
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

pub(super) fn url_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The page a navigation link leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Overview,
    Events,
    DeadLetters,
    None,
}

pub(super) fn page(nav: Nav, title: &str, body: &str) -> HttpResponse {
    page_with_status(StatusCode::OK, nav, title, body)
}

pub(super) fn page_with_status(
    status: StatusCode,
    nav: Nav,
    title: &str,
    body: &str,
) -> HttpResponse {
    let link = |target: Nav, href: &str, text: &str| {
        let current = if target == nav {
            " class=\"current\" aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{text}</a>")
    };
    let menu = if nav == Nav::None {
        String::new()
    } else {
        format!(
            "<nav>{}{}{}</nav><form method=\"post\" action=\"/logout\"><button class=\"link\">Log out</button></form>",
            link(Nav::Overview, "/", "Overview"),
            link(Nav::Events, "/events", "Events"),
            link(Nav::DeadLetters, "/dlq", "Dead letters"),
        )
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · hookd</title><link rel=\"stylesheet\" href=\"/assets/app.css\"></head>\
         <body><header><a class=\"brand\" href=\"/\">hookd</a>{menu}</header>\
         <main>{}</main><script src=\"/assets/app.js\"></script></body></html>",
        esc(title),
        body
    );
    with_type(status, "text/html; charset=utf-8", Bytes::from(html))
}

/// An HTML fragment (a live-refreshed part of a page).
pub(super) fn fragment(body: String) -> HttpResponse {
    with_type(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from(body),
    )
}

/// The flash message a change redirects with.
pub(super) fn flash(query: &std::collections::HashMap<String, String>) -> String {
    query
        .get("flash")
        .map(|f| format!("<p class=\"flash\" id=\"flash\">{}</p>", esc(f)))
        .unwrap_or_default()
}

/// A listing page's `limit` and `cursor`, read as the API reads them; one
/// the API would refuse becomes the page's refusal (unless it has one
/// already) and the defaults are used.
pub(super) fn page_args_or_refused(
    query: &std::collections::HashMap<String, String>,
    refused: &mut Option<String>,
) -> (usize, Option<crate::listing::Cursor>) {
    crate::admin::page_args(query).unwrap_or_else(|why| {
        refused.get_or_insert_with(|| why.to_owned());
        (crate::listing::DEFAULT_PAGE, None)
    })
}

/// The page drawn instead of one that needed Redis.
fn redis_unavailable(notice: &str) -> HttpResponse {
    page_with_status(
        StatusCode::SERVICE_UNAVAILABLE,
        Nav::None,
        "Redis unavailable",
        notice,
    )
}

/// Why a page could not be drawn: Redis did not answer.
pub(super) fn redis_error(e: &crate::queue::QueueError) -> HttpResponse {
    redis_unavailable(&format!(
        "<p class=\"error\">Redis: {}</p>",
        esc(&e.to_string())
    ))
}

/// The line that says Redis is known away, and why.
pub(super) fn redis_away_notice(why: &Unusable) -> String {
    format!(
        "<p class=\"error\" id=\"redis-error\">Redis {}</p>",
        esc(&why.to_string())
    )
}

/// A page that reads Redis, asked while Redis is known away: said at once,
/// with why, instead of after the command timeout (the live refresh
/// keeps what it showed: it replaces content only on success).
pub fn redis_away(why: &Unusable) -> HttpResponse {
    redis_unavailable(&redis_away_notice(why))
}

pub fn login_page(message: Option<&str>) -> HttpResponse {
    let notice = message
        .map(|m| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(m)))
        .unwrap_or_default();
    page(
        Nav::None,
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
        Nav::None,
        "Not found",
        "<section class=\"card\"><h1>Not found</h1><p><a href=\"/\">Back to the overview</a></p></section>",
    )
}

/// A moment as the pages show it: day and time to the second, UTC, short
/// enough for a table cell, with the full date (the year too) on hover.
pub(super) fn when(ms: u64) -> String {
    if ms == 0 {
        return "—".into();
    }
    let full =
        httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(ms / 1000));
    // "Tue, 01 Dec 2026 12:00:00 GMT" → "01 Dec 12:00:00"
    let short = match full.split(' ').collect::<Vec<_>>().as_slice() {
        [_, day, month, _, time, _] => format!("{day} {month} {time}"),
        _ => full.clone(),
    };
    format!("<span title=\"{full}\">{short}</span>")
}

pub(super) fn age(ms: Option<u64>) -> String {
    ms.map_or_else(|| "—".into(), crate::clock::elapsed_text)
}

pub(super) fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

/// A body for showing: JSON indented (its keys and numbers as received),
/// other text as is, binary as base64.
pub(super) fn pretty_body(shown: &crate::shown::ShownEvent) -> String {
    match (&shown.body, &shown.body_base64) {
        (Some(text), _) => indent::indent_json(text).unwrap_or_else(|| text.clone()),
        (None, Some(b64)) => format!("(binary body, base64)\n{b64}"),
        (None, None) => String::new(),
    }
}

/// A `<select>`'s options, `current` selected, with an "any" first.
pub(super) fn options<'a>(
    any: &str,
    choices: impl IntoIterator<Item = &'a str>,
    current: Option<&str>,
) -> String {
    let mut out = format!("<option value=\"\">{}</option>", esc(any));
    for choice in choices {
        let selected = if current == Some(choice) {
            " selected"
        } else {
            ""
        };
        out.push_str(&format!(
            "<option value=\"{c}\"{selected}>{c}</option>",
            c = esc(choice)
        ));
    }
    out
}

/// The headers table of an event.
pub(super) fn headers_table(headers: &[(String, String)]) -> String {
    let mut out = String::from("<table id=\"headers\"><tbody>");
    for (name, value) in headers {
        out.push_str(&format!(
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(name),
            esc(value)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_show_day_and_seconds_with_the_year_on_hover() {
        assert_eq!(
            when(1_700_000_000_000),
            "<span title=\"Tue, 14 Nov 2023 22:13:20 GMT\">14 Nov 22:13:20</span>"
        );
        assert_eq!(when(0), "—");
    }
}
