// llm-locust charts: polls ./stats.json every 2 s and draws the run's time series as inline SVG (no libraries).
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var W = 960, H = 230, M = {l: 64, r: 56, t: 12, b: 30};
  var CHARTS = [
    {id: "ttft", title: "Time to first token (ms)", series: [
      {key: "ttft_p50_ms", label: "p50", color: "#1976d2"},
      {key: "ttft_p95_ms", label: "p95", color: "#d32f2f"}]},
    {id: "tpot", title: "Time per output token (ms)", series: [
      {key: "tpot_p50_ms", label: "p50", color: "#2e7d32"}]},
    {id: "tps", title: "Output tokens/s (all users)", series: [
      {key: "output_tokens_per_s", label: "tokens/s", color: "#ef6c00"}]}
  ];
  function el(name, attrs, parent) {
    var e = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (parent) { parent.appendChild(e); }
    return e;
  }

  function niceStep(max, n) {
    var raw = max / n, mag = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }

  function fmt(v) {
    if (v >= 1000) { return Math.round(v).toLocaleString(); }
    return String(Math.round(v * 100) / 100);
  }

  function scaleTo(max, whole) {
    // a round top for an axis, and its tick step (whole numbers only for the user count)
    var step = whole ? Math.max(1, Math.round(niceStep(max, 4))) : niceStep(max, 4);
    return {top: step * Math.ceil(max / step - 1e-9), step: step};
  }

  function axis(svg, sc, y, x, anchor, grid) {
    for (var i = 0; i * sc.step <= sc.top * (1 + 1e-9); i++) {
      var v = i * sc.step;
      if (grid) { el("line", {x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), "class": "grid"}, svg); }
      el("text", {x: x, y: y(v) + 4, "text-anchor": anchor}, svg).textContent = fmt(v);
    }
  }

  function line(svg, points, cls, color, key) {
    // one polyline per stretch of non-null values
    var g = el("g", {"data-series": key, "data-points": points.filter(function (p) { return p[1] !== null; }).length},
      svg);
    var run = [];
    function flush() {
      if (run.length === 1) { el("circle", {cx: run[0][0], cy: run[0][1], r: 2.5, fill: color || "none"}, g); }
      if (run.length > 1) {
        var attrs = {points: run.map(function (p) { return p[0].toFixed(1) + "," + p[1].toFixed(1); }).join(" "),
          fill: "none", "stroke-width": 2};
        if (color) { attrs.stroke = color; }
        if (cls) { attrs["class"] = cls; }
        el("polyline", attrs, g);
      }
      run = [];
    }
    points.forEach(function (p) { if (p[1] === null) { flush(); } else { run.push(p); } });
    flush();
  }

  function draw(chart, history) {
    var fig = document.getElementById("chart-" + chart.id);
    if (!fig) {
      fig = document.createElement("figure");
      fig.id = "chart-" + chart.id;
      var cap = document.createElement("figcaption");
      cap.textContent = chart.title;
      var legend = document.createElement("span");
      legend.className = "legend";
      chart.series.concat(chart.server ? [] : [{label: "users (right axis)", color: "#8e8e93"}]).forEach(function (s) {
        var item = document.createElement("span"), sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = s.color;
        item.appendChild(sw);
        item.appendChild(document.createTextNode(s.label));
        legend.appendChild(item);
      });
      cap.appendChild(legend);
      fig.appendChild(cap);
      document.getElementById("charts").appendChild(fig);
    }
    var old = fig.querySelector("svg");
    if (old) { fig.removeChild(old); }
    var svg = el("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": chart.title}, fig);
    var t0 = history.length ? history[0].time : 0;
    var t1 = Math.max(history.length ? history[history.length - 1].time : 0, t0 + 10);
    var ymax = 0, umax = 1;
    history.forEach(function (p) {
      chart.series.forEach(function (s) { if (p[s.key] != null && p[s.key] > ymax) { ymax = p[s.key]; } });
      if (p.users > umax) { umax = p.users; }
    });
    var x = function (t) { return M.l + (t - t0) / (t1 - t0) * (W - M.l - M.r); };
    var sc = scaleTo(ymax > 0 ? ymax * 1.05 : 1), usc = scaleTo(Math.max(1, umax * 1.05), true);
    var y = function (v) { return H - M.b - v / sc.top * (H - M.t - M.b); };
    var uy = function (v) { return H - M.b - v / usc.top * (H - M.t - M.b); };
    axis(svg, sc, y, M.l - 6, "end", true);
    if (!chart.server) { axis(svg, usc, uy, W - M.r + 6, "start", false); }
    var tstep = niceStep(t1 - t0, 8);
    for (var t = Math.ceil(t0 / tstep) * tstep; t <= t1; t += tstep) {
      var label = el("text", {x: x(t), y: H - M.b + 18, "text-anchor": "middle"}, svg);
      label.textContent = fmt(t) + " s";
    }
    if (!chart.server) {
      line(svg, history.map(function (p) { return [x(p.time), uy(p.users)]; }), "users", null, "users");
    }
    chart.series.forEach(function (s) {
      line(svg, history.map(function (p) { return [x(p.time), p[s.key] == null ? null : y(p[s.key])]; }),
        null, s.color, s.key);
    });
  }

  function render(data) {
    var run = data.run, history = data.history || [];
    document.getElementById("run").textContent = run
      ? "run " + run.run_id + " \u00b7 " + run.model + " \u00b7 " + run.api + " \u00b7 " + run.state +
        " \u00b7 " + run.users + " users"
      : "";
    document.getElementById("status").textContent = !run ? "No LLM run yet: start one from Locust's page."
      : history.length ? "A point every 2 s over the last 10 s of finished requests; updated every 2 s."
      : "Waiting for the first points\u2026";
    document.body.setAttribute("data-points", history.length);
    CHARTS.forEach(function (c) { draw(c, history); });
    // the server's own metrics (stats.json "server": a source per metrics URL, a point per scrape), drawn when
    // present, as stats.json's "server_charts" say (llm_locust/servermetrics/summary.py CHARTS, the one definition)
    (data.server || []).forEach(function (src, i) {
      var points = src.points || [];
      (data.server_charts || []).forEach(function (c) {
        var present = c.series.filter(function (s) { return points.some(function (p) { return p[s.key] != null; }); });
        if (!present.length) { return; }
        var label = " \u00b7 " + src.server + (data.server.length > 1 ? " (" + src.targets.join(", ") + ")" : "");
        draw({id: c.id + "-" + i, title: c.title + label, series: present, server: true}, points);
      });
    });
  }

  function poll() {
    fetch("./stats.json", {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(render)
      .catch(function (e) { document.getElementById("status").textContent = "Cannot load ./stats.json: " + e; })
      .then(function () { setTimeout(poll, 2000); });
  }
  poll();
})();
