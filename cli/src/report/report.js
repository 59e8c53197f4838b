// Draws a Squall run report (schema squall-run-report/1, see docs/report.md)
// from the JSON in #squall-report. No libraries, no network.
"use strict";
(function () {
  var report = JSON.parse(document.getElementById("squall-report").textContent);
  var app = document.getElementById("app");
  var tip = document.getElementById("tooltip");
  var SVG_NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948",
    "#9c755f", "#ff9da7", "#86bcb6", "#8cd17d", "#bab0ac", "#499894"];
  // Timeline height in pixels, whatever the number of attempts.
  var TIMELINE_MAX_LANES_PX = 560;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }
  function setAttrs(node, attrs) {
    for (var k in attrs || {}) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]);
    }
  }
  function append(node, children) {
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
  }
  function color(stage) { return PALETTE[stage % PALETTE.length]; }
  function num(n) { return Number(n).toLocaleString("en-US"); }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }
  function ms(n) {
    if (n === null || n === undefined) return "–";
    if (n < 1000) return n + " ms";
    return (n / 1000).toFixed(n < 10000 ? 2 : 1) + " s";
  }
  function usd(x) {
    if (x >= 1) return "$" + x.toFixed(2);
    if (x >= 0.0001) return "$" + x.toFixed(4);
    return "$" + x.toFixed(6);
  }
  // A unit price: small ones per million units.
  function unitPrice(x, unit) {
    if (x < 0.001 && unit !== "GB-s") return "$" + (x * 1e6).toFixed(2) + " per million";
    return "$" + Number(x.toPrecision(6)) + " per " + unit;
  }
  function otherRequests(r) { return r.head + r.list + r.delete + r.copy; }
  function putRequests(r) { return r.put + r.multipart_put; }
  // Tick spacing of about `count` ticks over [0, max].
  function tickStep(max, count) {
    var raw = max / count;
    var pow = Math.pow(10, Math.floor(Math.log10(raw || 1)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * pow >= raw) return steps[i] * pow;
    return 10 * pow;
  }

  // Tooltips: any element with a data-tip, or an attempt bar.
  var tipFor = new WeakMap();
  function onHover(node, text) { tipFor.set(node, text); }
  document.addEventListener("mouseover", function (e) {
    var node = e.target;
    while (node && node !== document && !tipFor.has(node)) node = node.parentNode;
    if (!node || node === document) { tip.hidden = true; return; }
    var text = tipFor.get(node);
    tip.textContent = typeof text === "function" ? text() : text;
    tip.hidden = false;
    place(e);
  });
  document.addEventListener("mousemove", function (e) { if (!tip.hidden) place(e); });
  function place(e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 4) x = e.clientX - w - 10;
    if (y + h > window.innerHeight - 4) y = e.clientY - h - 10;
    tip.style.left = Math.max(0, x) + "px";
    tip.style.top = Math.max(0, y) + "px";
  }

  function summary() {
    var attempts = 0, tasks = 0;
    report.queries.forEach(function (q) {
      attempts += q.attempts.length;
      q.stages.forEach(function (s) { tasks += s.finished_tasks; });
    });
    document.getElementById("run-summary").textContent =
      report.queries.length + (report.queries.length === 1 ? " query" : " queries") +
      " on the " + report.backend + " backend · " + num(tasks) + " tasks · " +
      num(attempts) + " attempts";
  }

  function cards(q) {
    var totals = { busy: 0, inBytes: 0, outBytes: 0, get: 0, put: 0, tasks: 0, retries: 0, backups: 0 };
    q.stages.forEach(function (s) {
      totals.busy += s.busy_ms; totals.inBytes += s.input_bytes; totals.outBytes += s.output_bytes;
      totals.get += s.requests.get; totals.put += putRequests(s.requests);
      totals.tasks += s.finished_tasks; totals.retries += s.retries; totals.backups += s.backups;
    });
    function card(value, label) { return el("div", { class: "card" }, [el("b", { text: value }), el("span", { text: label })]); }
    return el("div", { class: "cards" }, [
      card(ms(q.elapsed_ms), "elapsed"),
      card(String(q.stages.length), "stages"),
      card(num(totals.tasks), "tasks"),
      card(num(q.attempts.length), "attempts (" + totals.retries + " retries, " + totals.backups + " backups)"),
      card((totals.busy / 1000).toFixed(1) + " s", "task time"),
      card(bytes(totals.inBytes), "read by tasks"),
      card(num(totals.get) + " / " + num(totals.put), "GET / PUT requests"),
      card("≈ " + usd(q.cost.total_usd), report.billed ? "cost" : "cost on Lambda"),
    ]);
  }

  // The stage graph: stages in columns by depth, arrows from inputs.
  function stageGraph(q) {
    var depth = {};
    function depthOf(s) {
      if (depth[s.id] !== undefined) return depth[s.id];
      depth[s.id] = 0;
      var d = 0;
      s.inputs.forEach(function (i) {
        var input = q.stages.find(function (x) { return x.id === i.stage; });
        if (input) d = Math.max(d, depthOf(input) + 1);
      });
      depth[s.id] = d;
      return d;
    }
    var columns = [];
    q.stages.forEach(function (s) {
      var d = depthOf(s);
      (columns[d] = columns[d] || []).push(s);
    });
    var boxW = 190, boxH = 50, gapX = 70, gapY = 16, pad = 8;
    var rows = Math.max.apply(null, columns.map(function (c) { return c.length; }));
    var width = pad * 2 + columns.length * boxW + (columns.length - 1) * gapX;
    var height = pad * 2 + rows * boxH + (rows - 1) * gapY;
    var root = svg("svg", { class: "stage-graph", width: width, height: height, viewBox: "0 0 " + width + " " + height });
    var defs = svg("defs", {}, [svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      [svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8a93a6" })])]);
    root.appendChild(defs);
    var at = {};
    columns.forEach(function (col, d) {
      var top = pad + (height - 2 * pad - (col.length * boxH + (col.length - 1) * gapY)) / 2;
      col.forEach(function (s, i) {
        at[s.id] = { x: pad + d * (boxW + gapX), y: top + i * (boxH + gapY) };
      });
    });
    q.stages.forEach(function (s) {
      s.inputs.forEach(function (input) {
        var from = at[input.stage], to = at[s.id];
        if (!from || !to) return;
        var x1 = from.x + boxW, y1 = from.y + boxH / 2, x2 = to.x - 2, y2 = to.y + boxH / 2;
        var mid = (x1 + x2) / 2;
        root.appendChild(svg("path", { d: "M" + x1 + "," + y1 + " C" + mid + "," + y1 + " " + mid + "," + y2 + " " + x2 + "," + y2,
          fill: "none", stroke: "#8a93a6", "stroke-width": 1.3, "marker-end": "url(#arrow)" }));
        root.appendChild(svg("text", { x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", class: "muted", text: input.exchange }));
      });
    });
    q.stages.forEach(function (s) {
      var p = at[s.id];
      var node = svg("g", { class: "stage-node", transform: "translate(" + p.x + "," + p.y + ")" }, [
        svg("rect", { width: boxW, height: boxH, rx: 6, fill: "#fff", stroke: color(s.id), "stroke-width": 2 }),
        svg("rect", { width: 6, height: boxH, rx: 3, fill: color(s.id) }),
        svg("text", { x: 14, y: 19, "font-weight": 600, text: "Stage " + s.id + (s.is_final ? " (final)" : "") }),
        svg("text", { x: 14, y: 37, class: "muted", text: s.operator.replace(/Exec$/, "") + " · " + num(s.tasks || s.planned_tasks) + " tasks" }),
      ]);
      onHover(node, function () { return stageText(s); });
      root.appendChild(node);
    });
    return root;
  }

  function stageText(s) {
    return "Stage " + s.id + (s.is_final ? " (final)" : "") + ": " + s.operator +
      "\n" + s.tasks + " tasks of " + s.planned_tasks + " planned" +
      "\ntask time p50 " + ms(s.task_ms_p50) + ", p95 " + ms(s.task_ms_p95) + ", max " + ms(s.task_ms_max) +
      (s.slowest_task !== null ? " (task " + s.slowest_task + ")" : "") +
      "\nread " + num(s.input_rows) + " rows, " + bytes(s.input_bytes) +
      "\nwrote " + num(s.output_rows) + " rows, " + bytes(s.output_bytes) +
      "\nrequests: " + num(s.requests.get) + " GET, " + num(putRequests(s.requests)) + " PUT, " + num(otherRequests(s.requests)) + " other";
  }

  // The timeline: one bar per task attempt, a band of lanes per stage.
  function timeline(q) {
    var end = q.elapsed_ms;
    q.attempts.forEach(function (a) { if (a.end_ms > end) end = a.end_ms; });
    end = Math.max(end, 1);
    var bands = [];
    q.stages.forEach(function (s) {
      var attempts = q.attempts.filter(function (a) { return a.stage === s.id; })
        .sort(function (a, b) { return a.start_ms - b.start_ms || a.end_ms - b.end_ms; });
      // Greedy lane packing: an attempt goes in the first lane free at its start.
      var laneEnds = [], lanes = [];
      attempts.forEach(function (a) {
        var lane = -1;
        for (var i = 0; i < laneEnds.length; i++) if (laneEnds[i] <= a.start_ms) { lane = i; break; }
        if (lane < 0) { lane = laneEnds.length; laneEnds.push(0); }
        laneEnds[lane] = Math.max(a.end_ms, a.start_ms + 1);
        lanes.push(lane);
      });
      if (attempts.length) bands.push({ stage: s, attempts: attempts, lanes: lanes, laneCount: laneEnds.length });
    });
    var totalLanes = bands.reduce(function (n, b) { return n + b.laneCount; }, 0) || 1;
    // Lanes of at most 14 px; past the height budget, lanes share 1-px rows.
    var pxPerLane = TIMELINE_MAX_LANES_PX / totalLanes;
    var laneH = Math.max(1, Math.min(14, Math.floor(pxPerLane)));
    bands.forEach(function (b) {
      b.rows = pxPerLane >= 1 ? b.laneCount : Math.max(4, Math.ceil(b.laneCount * pxPerLane));
      b.rowOf = function (lane) { return Math.floor((lane * b.rows) / b.laneCount); };
    });
    var totalRows = bands.reduce(function (n, b) { return n + b.rows; }, 0);
    var left = 86, right = 12, top = 22, bandGap = 8, width = 1100;
    var plotW = width - left - right;
    var height = top + totalRows * laneH + bands.length * bandGap + 8;
    var root = svg("svg", { class: "timeline", width: width, height: height, viewBox: "0 0 " + width + " " + height,
      "data-attempts": q.attempts.length });
    var step = tickStep(end, 8);
    var axis = svg("g", { class: "axis" });
    for (var t = 0; t <= end; t += step) {
      var x = left + (t / end) * plotW;
      axis.appendChild(svg("line", { x1: x, x2: x, y1: top - 4, y2: height - 4 }));
      axis.appendChild(svg("text", { x: x, y: top - 8, "text-anchor": "middle", class: "muted", text: ms(Math.round(t)) }));
    }
    root.appendChild(axis);
    var y = top;
    bands.forEach(function (band) {
      var s = band.stage;
      var bandH = band.rows * laneH;
      root.appendChild(svg("text", { x: 4, y: y + Math.min(bandH, 14) - 3, "font-weight": 600, text: "Stage " + s.id }));
      if (bandH >= 26) root.appendChild(svg("text", { x: 4, y: y + 25, class: "muted", text: band.attempts.length + " attempts" }));
      var group = svg("g", { fill: color(s.id) });
      band.attempts.forEach(function (a, i) {
        var x = left + (a.start_ms / end) * plotW;
        var w = Math.max(1, ((a.end_ms - a.start_ms) / end) * plotW);
        var bar = svg("rect", {
          class: "attempt " + a.outcome, x: x.toFixed(1), y: y + band.rowOf(band.lanes[i]) * laneH,
          "data-stage": a.stage, "data-task": a.task,
          width: w.toFixed(1), height: laneH > 3 ? laneH - 1 : laneH,
        });
        onHover(bar, function () {
          return "Stage " + a.stage + " task " + a.task + ", attempt " + a.attempt + ": " + a.outcome +
            "\n" + ms(a.start_ms) + " → " + ms(a.end_ms) + " (" + ms(a.end_ms - a.start_ms) + ")" +
            (a.cause ? "\n" + a.cause : "");
        });
        group.appendChild(bar);
      });
      root.appendChild(group);
      y += bandH + bandGap;
    });
    return root;
  }

  function legend() {
    return el("div", { class: "legend" }, [
      el("span", {}, [el("i", { style: "background:#4e79a7" }), "succeeded (colour by stage)"]),
      el("span", {}, [el("i", { style: "background:#d62728" }), "failed"]),
      el("span", {}, [el("i", { style: "background:#4e79a7;opacity:.35" }), "abandoned (another attempt reported first, or the query ended)"]),
    ]);
  }

  // Task durations of each stage: 20 bins from 0 to its slowest task.
  function histograms(q) {
    var box = el("div", { class: "histograms" });
    q.stages.forEach(function (s) {
      var times = s.task_times_ms;
      if (!times.length) return;
      var max = Math.max(1, s.task_ms_max), bins = Math.min(20, Math.max(1, times.length));
      var counts = new Array(bins).fill(0);
      times.forEach(function (t) { counts[Math.min(bins - 1, Math.floor((t / max) * bins))]++; });
      var most = Math.max.apply(null, counts);
      var w = 240, h = 90, bottom = 16, barW = w / bins;
      var chart = svg("svg", { width: w, height: h + bottom, viewBox: "0 0 " + w + " " + (h + bottom) });
      counts.forEach(function (c, i) {
        var bh = most ? (c / most) * (h - 4) : 0;
        var bin = svg("rect", { class: "bin", x: i * barW + 0.5, y: h - bh, width: Math.max(1, barW - 1), height: Math.max(c ? 1 : 0, bh), fill: color(s.id) });
        onHover(bin, c + (c === 1 ? " task" : " tasks") + " of " + ms(Math.round((i * max) / bins)) + " to " + ms(Math.round(((i + 1) * max) / bins)));
        chart.appendChild(bin);
      });
      chart.appendChild(svg("text", { x: 0, y: h + 13, class: "muted", text: "0" }));
      chart.appendChild(svg("text", { x: w, y: h + 13, "text-anchor": "end", class: "muted", text: ms(max) }));
      box.appendChild(el("figure", {}, [chart, el("figcaption", { text: "Stage " + s.id + ": " + times.length + " tasks, p50 " + ms(s.task_ms_p50) + ", p95 " + ms(s.task_ms_p95) })]));
    });
    return box;
  }

  function stageTable(q) {
    var head = ["Stage", "Operator", "Tasks", "p50", "p95", "Max", "Rows in", "Read", "Rows out", "Wrote", "GET", "PUT", "Other req.", "Retries", "Backups", "Spilled"];
    var body = q.stages.map(function (s) {
      var r = s.requests;
      return el("tr", {}, [
        el("td", {}, [el("span", { class: "swatch", style: "background:" + color(s.id) }), String(s.id)]),
        el("td", { class: "text", text: s.operator }),
        el("td", { text: s.tasks === s.planned_tasks ? num(s.tasks) : num(s.tasks) + " of " + num(s.planned_tasks) }),
        el("td", { text: ms(s.task_ms_p50) }), el("td", { text: ms(s.task_ms_p95) }), el("td", { text: ms(s.task_ms_max) }),
        el("td", { text: num(s.input_rows) }), el("td", { text: bytes(s.input_bytes) }),
        el("td", { text: num(s.output_rows) }), el("td", { text: bytes(s.output_bytes) }),
        el("td", { text: num(r.get) }), el("td", { text: num(putRequests(r)) }), el("td", { text: num(otherRequests(r)) }),
        el("td", { text: String(s.retries) }), el("td", { text: s.backups + (s.backups ? " (" + s.backups_won + " won)" : "") }),
        el("td", { text: bytes(s.spilled_bytes) }),
      ]);
    });
    return el("table", { class: "stages" }, [
      el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, body),
    ]);
  }

  function costTable(q) {
    var c = q.cost, p = report.prices;
    var memory = bytes(report.function_memory_bytes);
    var rows = [
      ["Compute", c.gb_seconds.toFixed(2) + " GB-s", unitPrice(p.lambda_gb_second_usd, "GB-s"), usd(c.compute_usd)],
      ["Invocations", num(c.invocations), unitPrice(p.lambda_invocation_usd, "invocation"), usd(c.invocations_usd)],
      ["GET and HEAD requests", num(c.get_requests), unitPrice(p.s3_get_usd, "request"), usd(c.get_usd)],
      ["PUT, COPY and LIST requests", num(c.put_requests), unitPrice(p.s3_put_usd, "request"), usd(c.put_usd)],
    ];
    return el("div", {}, [
      el("table", { class: "cost" }, [
        el("thead", {}, [el("tr", {}, ["Part", "Quantity", "Price", "Cost"].map(function (h) { return el("th", { text: h }); }))]),
        el("tbody", {}, rows.map(function (r) { return el("tr", {}, r.map(function (v, i) { return el("td", { class: i === 0 ? "text" : null, text: v }); })); })
          .concat([el("tr", {}, [el("th", { class: "text", text: "Total" }), el("td"), el("td"), el("th", { text: usd(c.total_usd) })])])),
      ]),
      el("p", { class: "note", text: (report.billed ? "On Lambda functions of " : "What the run would cost on Lambda functions of ") + memory +
        ", at list prices; task time as the workers measured it, so start-ups are not included." }),
    ]);
  }

  function query(q, i) {
    var section = el("section", { class: "query", id: "query-" + (i + 1) }, [
      el("h2", { text: "Query " + (i + 1) }),
      el("pre", { class: "sql", text: q.sql }),
    ]);
    if (q.error) section.appendChild(el("p", { class: "error", text: "Failed: " + q.error }));
    section.appendChild(cards(q));
    section.appendChild(el("h3", { text: "Stage graph" }));
    section.appendChild(stageGraph(q));
    section.appendChild(el("details", {}, [el("summary", { text: "Plan with what each stage did" }), el("pre", { text: q.plan })]));
    section.appendChild(el("h3", { text: "Timeline of task attempts" }));
    section.appendChild(legend());
    section.appendChild(timeline(q));
    section.appendChild(el("h3", { text: "Task durations" }));
    section.appendChild(histograms(q));
    section.appendChild(el("h3", { text: "Stages" }));
    section.appendChild(stageTable(q));
    section.appendChild(el("h3", { text: "Cost" }));
    section.appendChild(costTable(q));
    return section;
  }

  app.textContent = "";
  summary();
  if (!report.queries.length) app.appendChild(el("p", { text: "No query ran distributed in this run." }));
  report.queries.forEach(function (q, i) { app.appendChild(query(q, i)); });
  document.body.setAttribute("data-rendered", "true");
})();
