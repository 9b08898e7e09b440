// Replay / delete / bulk replay / pause / resume, each confirmed first,
// through the JSON API; and the live refresh of the event log. The
// X-Hookd-Request header proves a change comes from this page.
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

function go(path, message) {
  window.location.href = path + "?flash=" + encodeURIComponent(message);
}

const QUESTIONS = {
  replay: "Replay this event to its destination?",
  delete: "Delete this event from the dead-letter queue? This cannot be undone.",
  pause: "Pause deliveries to this destination? Its events wait until it is resumed.",
  resume: "Resume deliveries to this destination?",
};
const RESULTS = {
  replay: "Event replayed.", delete: "Event deleted.",
  pause: "Destination paused.", resume: "Destination resumed.",
};

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action], button[data-bulk]");
  if (!button) return;
  event.preventDefault();
  try {
    if (button.dataset.bulk) {
      const noun = button.dataset.noun || "dead-lettered event(s)";
      const preview = await call("POST", button.dataset.bulk + "&dry_run=true");
      if (preview.matched === 0) { alert("Nothing matches these filters."); return; }
      if (!confirm("Replay " + preview.matched + " " + noun + "?")) return;
      const result = await call("POST", button.dataset.bulk);
      go(window.location.pathname, "Replayed " + result.replayed + " event(s).");
      return;
    }
    const action = button.dataset.action;
    if (action === "replay-event") {
      if (!confirm(button.dataset.question)) return;
      const result = await call("POST", button.dataset.url);
      // The copy is a new entry: follow it to watch its delivery.
      const source = encodeURIComponent(button.dataset.source);
      go("/events/" + source + "/" + encodeURIComponent(result.copy), "Event replayed.");
      return;
    }
    if (!confirm(QUESTIONS[action])) return;
    await call(button.dataset.method, button.dataset.url);
    go(button.dataset.done || window.location.pathname, RESULTS[action]);
  } catch (error) {
    alert("Failed: " + error.message);
  }
});

// Parts of a page marked data-refresh reload themselves every few seconds
// (unless the "live" box is unticked), keeping the page's filters.
const REFRESH_MS = 3000;
setInterval(async () => {
  const live = document.getElementById("live");
  if (live && !live.checked) return;
  for (const part of document.querySelectorAll("[data-refresh]")) {
    try {
      const response = await fetch(part.dataset.refresh, { credentials: "same-origin" });
      if (response.ok) part.innerHTML = await response.text();
    } catch (_) { /* the next round tries again */ }
  }
}, REFRESH_MS);
