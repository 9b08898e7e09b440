//! The dead-letter queue's pages: the filtered, paged list with replay,
//! delete and bulk replay, and one dead-lettered event in full.

use std::collections::HashMap;
use std::fmt::Write;

use super::{
    Nav, esc, flash, headers_table, not_found, opt, page, page_args_or_refused, pretty_body,
    redis_error, url_encode, when,
};
use crate::admin::AdminHandle;
use crate::admin::api::checked_filter;
use crate::dlq::{self, DlqItem};
use crate::queue::DeadReason;
use crate::response::HttpResponse;

/// `/dlq`: the dead-letter queue, filtered and paged.
pub async fn dlq(admin: &AdminHandle, query: &HashMap<String, String>) -> HttpResponse {
    let mut body = flash(query);
    // Read as the API reads them: what it would refuse is named, so a
    // mistyped filter is not mistaken for "everything" (which the bulk
    // replay below would then act on).
    let (filter, mut refused) = match checked_filter(admin, query) {
        Ok(filter) => (filter, None),
        Err(refusal) => (Default::default(), Some(refusal.message)),
    };
    let (limit, cursor) = page_args_or_refused(query, &mut refused);
    if let Some(message) = &refused {
        let _ = write!(body, "<p class=\"error\">{}</p>", esc(message));
    }
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
         <form class=\"filters\" method=\"get\" action=\"/dlq\" id=\"filters\">\
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
    body.push_str("</select></label><button type=\"submit\">Filter</button>");
    // Nothing to replay "all matching" of while the filter is refused.
    if refused.is_none() {
        let _ = write!(
            body,
            "<button type=\"button\" class=\"danger\" id=\"bulk-replay\" data-bulk=\"/admin/dlq/replay?{q}\">Replay all matching</button>",
            q = esc(&filter_query)
        );
    }
    body.push_str("</form>");

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
                    "<p><a id=\"older\" href=\"/dlq?{}&limit={limit}&cursor={}\">Older entries →</a></p>",
                    esc(&filter_query),
                    url_encode(&next)
                );
            }
        }
    }
    body.push_str("</section>");
    page(Nav::DeadLetters, "Dead letters", &body)
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
        "<tr data-event-id=\"{eid}\"><td class=\"nowrap\">{}</td><td>{}</td><td><a class=\"mono\" href=\"{ui}\">{eid}</a></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"error-text\">{}</td>\
         <td class=\"actions\"><button data-action=\"replay\" data-url=\"{api}/replay\" data-method=\"POST\">Replay</button>\
         <button class=\"danger\" data-action=\"delete\" data-url=\"{api}\" data-method=\"DELETE\">Delete</button></td></tr>",
        when(item.dead_at_ms),
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
        Err(e) => return redis_error(&e),
    };
    let detail = item.detail();
    let (_, api) = entry_links(&item);
    let mut body = String::new();
    let _ = write!(
        body,
        "<p><a href=\"/dlq\">← Dead letters</a></p><section class=\"card\"><h1>Dead-lettered event <span class=\"mono\" id=\"event-id\">{}</span></h1>\
         <div class=\"actions\"><button data-action=\"replay\" id=\"replay\" data-done=\"/dlq\" data-url=\"{api}/replay\" data-method=\"POST\">Replay</button>\
         <button class=\"danger\" data-action=\"delete\" id=\"delete\" data-done=\"/dlq\" data-url=\"{api}\" data-method=\"DELETE\">Delete</button></div>\
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
        when(item.received_ms),
        when(item.dead_at_ms),
        esc(&item.id),
    );
    let shown_body = pretty_body(&detail.shown);
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Body <small>{} bytes, {}</small></h2><pre id=\"body\">{}</pre></section>",
        item.body_bytes,
        esc(&detail.shown.content_type),
        esc(&shown_body)
    );
    let _ = write!(
        body,
        "<section class=\"card\"><h2>Headers</h2>{}",
        headers_table(&detail.shown.headers)
    );
    body.push_str(
        "</section><section class=\"card\"><h2>Attempts</h2><table id=\"attempts\">\
         <thead><tr><th>#</th><th>at</th><th>status</th><th>error</th></tr></thead><tbody>",
    );
    for attempt in detail.history {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"error-text\">{}</td></tr>",
            attempt.attempt,
            when(attempt.at_ms),
            opt(attempt.status.map(u64::from)),
            esc(&attempt.error)
        );
    }
    body.push_str("</tbody></table></section>");
    page(Nav::DeadLetters, &format!("Event {}", item.event_id), &body)
}
