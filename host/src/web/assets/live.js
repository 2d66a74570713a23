// tend web view: live updates, a progressive enhancement. A page whose
// <body> has data-live ("runs", "run:<id>", "escalations", "approvals")
// listens to /live (server-sent events) and, when an event concerns it,
// fetches the page again and swaps its #live region. Without JavaScript
// the pages work the same; they just do not refresh themselves.
(function () {
  "use strict";
  var body = document.body;
  var want = body.getAttribute("data-live");
  var region = document.getElementById("live");
  if (!want || !region || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var timer = null, inflight = false, again = false;

  // A person typing in a form of the region keeps it until they leave it.
  function busy() {
    var a = document.activeElement;
    return a && region.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName) && a.value !== "";
  }

  function refresh() {
    timer = null;
    if (inflight) { again = true; return; }
    if (busy()) { region.addEventListener("focusout", schedule, { once: true }); return; }
    inflight = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null || busy()) return;
        var next = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        if (next && next.innerHTML !== region.innerHTML) {
          region.innerHTML = next.innerHTML;
          body.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () {})
      .then(function () {
        inflight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (timer === null) timer = window.setTimeout(refresh, 150);
  }

  function concerns(change) {
    if (change.event === "lagged") return true;
    if (want.indexOf("run:") === 0) return change.run_id === want.slice(4);
    if (want === "escalations") return change.event === "escalated" || change.event === "run_finished";
    if (want === "approvals") return change.event === "waiting_approval" || change.event === "approval_decided";
    return change.event !== "step_started" && change.event !== "retrying";
  }

  var source = new EventSource("/live");
  source.onmessage = function (m) {
    try { if (concerns(JSON.parse(m.data))) schedule(); } catch (e) { schedule(); }
  };
  // What changed between the page being rendered and the stream being
  // open (or while it was reconnecting) sent no event here: catch up once.
  source.onopen = function () {
    body.setAttribute("data-live-connected", "true");
    schedule();
  };
})();
