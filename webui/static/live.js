/* Keep a dataset page current while its run is active, without reloading it: poll the dataset's JSON
   (GET /api/datasets/ID: its state and per-task job counts) and redraw the state, the job totals, the progress
   bars and the per-task counts in place. Stops once the dataset is done, failed or cancelled. */
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.dataset.liveUrl, states = JSON.parse(live.dataset.states);
  var ENDED = ["done", "failed", "cancelled"], EVERY_MS = 2000, SVG = "http://www.w3.org/2000/svg";

  function num(n) { return n.toLocaleString("en-US"); }
  function el(tag, cls, text) { var e = document.createElement(tag); if (cls) { e.className = cls; } if (text !== undefined) { e.textContent = text; } return e; }
  function sum(counts) { var n = 0; Object.keys(counts).forEach(function (s) { n += counts[s]; }); return n; }
  function shown(counts) { return states.filter(function (s) { return counts[s]; }); }

  function badge(state) {
    var holder = document.getElementById("ds-state");
    holder.replaceChildren(el("span", "badge st-" + state, state));
  }

  function totals(tasks) {
    var out = {};
    Object.keys(tasks).forEach(function (t) {
      Object.keys(tasks[t]).forEach(function (s) { out[s] = (out[s] || 0) + tasks[t][s]; });
    });
    return out;
  }

  function progress(counts) {
    var total = sum(counts) || 1, bar = el("div", "progress");
    bar.title = shown(counts).map(function (s) { return s + ": " + counts[s]; }).join(" ");
    shown(counts).forEach(function (s) {
      var span = el("span", "st-" + s);
      span.style.width = (100 * counts[s] / total).toFixed(2) + "%";
      bar.appendChild(span);
    });
    document.getElementById("ds-progress").replaceChildren(bar);
  }

  function box(g, counts) {
    var total = sum(counts), frame = g.querySelector("rect"), width = frame.width.baseVal.value - 20, x = 10;
    g.querySelector(".task-counts").textContent = num(total) + " jobs" + ["done", "running", "failed"]
      .filter(function (s) { return counts[s]; }).map(function (s) { return " · " + s + " " + counts[s]; }).join("");
    g.querySelectorAll("rect.bar").forEach(function (r) { r.remove(); });
    shown(counts).forEach(function (s) {
      var w = width * counts[s] / (total || 1), r = document.createElementNS(SVG, "rect"), tip = document.createElementNS(SVG, "title");
      [["x", x], ["y", 52], ["width", w], ["height", 10], ["class", "bar st-" + s]].forEach(function (a) { r.setAttribute(a[0], a[1]); });
      tip.textContent = s + ": " + counts[s];
      r.appendChild(tip);
      g.appendChild(r);
      x += w;
    });
  }

  function row(tr, counts) {
    tr.querySelectorAll("td[data-state]").forEach(function (td) {
      var s = td.dataset.state, link = td.querySelector("a");
      if (!counts[s]) { td.replaceChildren(); return; }
      if (!link) {  // the same filtered listing the server links
        link = el("a");
        link.href = tr.querySelector("td a").href + "&state=" + encodeURIComponent(s);
        td.replaceChildren(link);
      }
      link.textContent = num(counts[s]);
    });
  }

  function update(data) {
    var tasks = data.tasks || {}, all = totals(tasks);
    badge(data.dataset.state);
    document.getElementById("job-totals").textContent = num(sum(all)) + " nodes " +
      shown(all).map(function (s) { return "· " + s + " " + num(all[s]) + " "; }).join("");
    progress(all);
    document.querySelectorAll("g.task[data-task]").forEach(function (g) { box(g, tasks[g.dataset.task] || {}); });
    document.querySelectorAll("#task-counts tr[data-task]").forEach(function (tr) { row(tr, tasks[tr.dataset.task] || {}); });
  }

  // the job list and the failure groups, as the server renders them: fetched again only when counts change
  function refreshParts() {
    fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        ["jobs", "failures"].forEach(function (id) {
          var now = document.getElementById(id), fresh = doc.getElementById(id);
          if (now && fresh) { now.replaceWith(document.importNode(fresh, true)); }
        });
      })
      .catch(function () { /* the next change tries again */ });
  }

  var seen = null;
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (data) {
          update(data);
          live.dataset.updated = String(Date.now());
          var now = JSON.stringify([data.dataset.state, data.tasks]);
          if (seen !== null && now !== seen) { refreshParts(); }
          seen = now;
        }
        if (!data || ENDED.indexOf(data.dataset.state) < 0) { setTimeout(poll, EVERY_MS); }
        else { live.dataset.ended = data.dataset.state; }
      })
      .catch(function () { setTimeout(poll, EVERY_MS); });
  }
  setTimeout(poll, EVERY_MS);
})();
