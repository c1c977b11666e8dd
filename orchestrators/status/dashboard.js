(function () {
  "use strict";
  var params = new URLSearchParams(location.search);
  var code = params.get("code");
  var chosen = params.get("incident");
  var SETTLED_NOT = {planned: 1, creating: 1, draft: 1, waiting: 1, activating: 1, active: 1};
  var TERMINAL = {completed: 1, completedWithError: 1, failed: 1, createFailed: 1};

  function api(path) {
    var url = path + (code ? (path.indexOf("?") < 0 ? "?" : "&") + "code=" + encodeURIComponent(code) : "");
    return fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"}).then(function (r) {
      if (r.status === 404) { return null; }
      if (!r.ok) { throw new Error(path + ": HTTP " + r.status); }
      return r.json();
    });
  }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    });
    return node;
  }
  function badge(status) { return el("span", {"class": "badge s-" + status}, [status]); }
  function settled(totals) {
    var done = 0, all = 0;
    Object.keys(totals || {}).forEach(function (k) { all += totals[k]; if (!SETTLED_NOT[k]) { done += totals[k]; } });
    return [done, all];
  }
  function bar(done, all, label) {
    var p = el("progress", {max: String(Math.max(all, 1)), value: String(done), "aria-label": label,
                            "aria-valuemin": "0", "aria-valuemax": String(all), "aria-valuenow": String(done),
                            "aria-valuetext": done + " of " + all + " artifacts settled"});
    return el("span", {}, [p, " " + done + " / " + all]);
  }
  function totalsText(t) {
    return Object.keys(t || {}).sort().map(function (k) { return k + " " + t[k]; }).join(", ") || "none";
  }
  function table(head, rows) {
    return el("table", {}, [el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", {scope: "col"}, [h]); }))]),
                            el("tbody", {}, rows)]);
  }
  function sessionRow(s) {
    var n = s.artifactCount || 0, done = TERMINAL[s.status] ? n : 0;
    return el("tr", {"data-session": s.sessionId || ""}, [
      el("td", {}, [String(s.index)]), el("td", {}, [s.sessionId || "—"]), el("td", {}, [badge(s.status)]),
      el("td", {}, [s.queuePosition ? "#" + s.queuePosition : (s.awaitingApproval ? "awaiting approval" : "")]),
      el("td", {}, [s.destinationType || ""]), el("td", {}, [bar(done, n, "session " + s.index + " progress")]),
      el("td", {}, [s.error ? (s.error.code || "") + " " + (s.error.message || "") : ""])]);
  }
  function requestBlock(r) {
    var t = settled(r.artifactTotals);
    var block = el("section", {"class": "request", "data-request": r.requestId}, [
      el("h3", {}, ["Request " + r.requestId + " ", badge(r.state)]),
      el("p", {}, [bar(t[0], t[1], "request " + r.requestId + " progress"),
                   el("span", {"class": "muted"}, ["  sessions: " + totalsText(r.sessionTotals) + " · requested by " +
                     (r.requestedBy || "—") + " · updated " + (r.updatedDateTime || "—")])])]);
    if (r.lastError) { block.appendChild(el("p", {"class": "error"}, ["Last error: " + (r.lastError.code || "") + " " + (r.lastError.message || "")])); }
    block.appendChild(table(["#", "session", "status", "waiting", "destination", "progress", "error"],
                            (r.sessions || []).map(sessionRow)));
    return block;
  }
  function render(capacity, incidents, details) {
    var cap = document.getElementById("capacity");
    cap.textContent = capacity ? ("Slots in use: " + capacity.active.length + " of " + capacity.maxActiveSessions +
      " · waiting: " + capacity.waiting + (capacity.pausedUntil ? " · admission paused until " + capacity.pausedUntil : "")) : "";
    var list = document.getElementById("incidents");
    list.replaceChildren(table(["incident", "requests", "sessions", "artifacts", "updated"], incidents.map(function (i) {
      var button = el("button", {"class": "link", type: "button"}, [i.incidentId]);
      button.addEventListener("click", function () { chosen = i.incidentId; refresh(); });
      return el("tr", {}, [el("td", {}, [button]), el("td", {}, [String(i.requestCount)]),
                           el("td", {}, [totalsText(i.sessionTotals)]), el("td", {}, [totalsText(i.artifactTotals)]),
                           el("td", {}, [i.lastUpdatedDateTime || ""])]);
    })));
    var detail = document.getElementById("detail");
    detail.replaceChildren();
    if (details) {
      detail.appendChild(el("h2", {}, ["Incident " + details.incidentId]));
      details.requests.forEach(function (r) { detail.appendChild(requestBlock(r)); });
    }
  }
  var busy = false;
  function refresh() {
    if (busy) { return; }
    busy = true;
    Promise.all([api("capacity"), api("incidents")]).then(function (first) {
      var incidents = first[1] || [];
      var id = chosen || (incidents[0] && incidents[0].incidentId);
      if (!id) { return [first[0], incidents, null]; }
      return api("incidents/" + encodeURIComponent(id)).then(function (inc) {
        if (!inc) { return [first[0], incidents, null]; }
        return Promise.all(inc.requests.map(function (r) { return api("restores/" + encodeURIComponent(r.requestId)); }))
          .then(function (full) { return [first[0], incidents, {incidentId: inc.incidentId, requests: full.filter(Boolean)}]; });
      });
    }).then(function (all) {
      render(all[0], all[1], all[2]);
      document.getElementById("status").textContent = "Updated " + new Date().toLocaleTimeString() + " · refreshes every 5 s";
    }).catch(function (e) {
      document.getElementById("status").textContent = "Could not refresh: " + e.message;
    }).then(function () { busy = false; });
  }
  refresh();
  setInterval(refresh, 5000);
})();
