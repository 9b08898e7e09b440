// Replay / delete / bulk replay, each confirmed first, through the JSON API.
// The X-Hookd-Request header proves the request comes from this page.
"use strict";

async function call(method, url) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "X-Hookd-Request": "1" },
  });
  let body = {};
  try { body = await response.json(); } catch (_) { /* empty body */ }
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

function done(message) {
  window.location.href = "/?flash=" + encodeURIComponent(message);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action], button[data-bulk]");
  if (!button) return;
  event.preventDefault();
  try {
    if (button.dataset.bulk) {
      const preview = await call("POST", button.dataset.bulk + "&dry_run=true");
      if (preview.matched === 0) { alert("Nothing matches these filters."); return; }
      if (!confirm("Replay " + preview.matched + " dead-lettered event(s)?")) return;
      const result = await call("POST", button.dataset.bulk);
      done("Replayed " + result.replayed + " event(s).");
      return;
    }
    const action = button.dataset.action;
    const questions = {
      replay: "Replay this event to its destination?",
      delete: "Delete this event from the dead-letter queue? This cannot be undone.",
      pause: "Pause deliveries to this destination? Its events wait until it is resumed.",
      resume: "Resume deliveries to this destination?",
    };
    const results = {
      replay: "Event replayed.", delete: "Event deleted.",
      pause: "Destination paused.", resume: "Destination resumed.",
    };
    if (!confirm(questions[action])) return;
    await call(button.dataset.method, button.dataset.url);
    done(results[action]);
  } catch (error) {
    alert("Failed: " + error.message);
  }
});
