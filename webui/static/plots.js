/* Draw the dataset and monitoring plots with the vendored Chart.js from data embedded in the page. */
(function () {
  "use strict";
  function data(id) { var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }
  var opts = function (title, xlabel, ylabel) {
    return { responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { title: { display: true, text: title }, legend: { display: false } },
      scales: { x: { title: { display: !!xlabel, text: xlabel } }, y: { title: { display: !!ylabel, text: ylabel }, beginAtZero: true } } };
  };
  var plots = data("plot-data");
  if (plots) {
    document.querySelectorAll("canvas[data-plot]").forEach(function (canvas) {
      var p = plots[canvas.dataset.task], kind = canvas.dataset.plot;
      if (!p) { return; }
      if (kind === "memory") {
        // the request line (peak = request): points above it used more memory than they asked for
        var top = 0;
        p.memory.forEach(function (pt) { top = Math.max(top, pt.x, pt.y); });
        var o = opts("Peak memory vs request (MB)", "requested MB", "peak RSS MB");
        o.scales.x.beginAtZero = true;
        o.plugins.legend.display = true;
        new Chart(canvas, { type: "scatter", data: { datasets: [
          { label: "attempts", data: p.memory, backgroundColor: "#2f7bd8" },
          { label: "request", data: [{ x: 0, y: 0 }, { x: top * 1.1, y: top * 1.1 }], showLine: true,
            borderColor: "#d0413b", borderDash: [6, 4], pointRadius: 0, fill: false }] }, options: o });
      } else if (kind === "wall" || kind === "cpu") {
        var h = p[kind];
        new Chart(canvas, { type: "bar", data: { labels: h.labels, datasets: [{ data: h.counts, backgroundColor: "#3a9a5b" }] },
          options: opts(kind === "wall" ? "Wall time (s)" : "CPU efficiency", kind === "wall" ? "seconds" : "efficiency", "attempts") });
      } else if (kind === "failures") {
        new Chart(canvas, { type: "bar", data: { labels: Object.keys(p.failures), datasets: [{ data: Object.values(p.failures), backgroundColor: "#d0413b" }] },
          options: opts("Failures by category", "", "attempts") });
      }
    });
  }
  var mon = data("monitoring-data");
  if (mon) {
    var o = opts("Attempts per hour", "hour (UTC)", "attempts");
    o.plugins.legend.display = true;
    new Chart(document.getElementById("hourly"), { type: "bar", data: { labels: mon.hourly.labels, datasets: [
      { label: "done", data: mon.hourly.done, backgroundColor: "#3a9a5b" },
      { label: "failed", data: mon.hourly.failed, backgroundColor: "#d0413b" }] }, options: o });
    new Chart(document.getElementById("running"), { type: "bar", data: { labels: Object.keys(mon.running),
      datasets: [{ data: Object.values(mon.running), backgroundColor: "#2f7bd8" }] }, options: opts("Running now", "site", "jobs") });
  }
})();
