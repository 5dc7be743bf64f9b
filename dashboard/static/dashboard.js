// Draws every element with data-chart from its JSON API endpoint, with Plotly
// served by the app itself. When all charts are done, <body data-charts-ready>
// is set (the browser tests wait for it); each chart gets data-drawn =
// "true" | "empty" | "error".
(function () {
  "use strict";
  const page = new URLSearchParams(window.location.search);
  const brl = (cents) => cents / 100;
  const base = (title, extra) => Object.assign({
    title: { text: title, font: { size: 15 } },
    margin: { l: 60, r: 30, t: 45, b: 60 },
    paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    legend: { orientation: "h", y: -0.2 },
  }, extra || {});
  const config = { displaylogo: false, displayModeBar: false, responsive: true };

  const draw = {
    monthly(el, rows, title) {
      const x = rows.map((r) => r.month.slice(0, 7));
      return Plotly.newPlot(el, [
        { type: "bar", name: "Revenue (R$)", x, y: rows.map((r) => brl(r.revenue_cents)), marker: { color: "#2a6f97" } },
        { type: "scatter", mode: "lines+markers", name: "Orders", x, y: rows.map((r) => r.orders), yaxis: "y2", line: { color: "#e76f51" } },
      ], base(title, { yaxis: { title: { text: "Revenue (R$)" } },
        yaxis2: { title: { text: "Orders" }, overlaying: "y", side: "right", rangemode: "tozero" } }), config);
    },
    products(el, rows, title) {
      const sorted = rows.slice().reverse();
      return Plotly.newPlot(el, [{ type: "bar", orientation: "h",
        y: sorted.map((r) => r.product_id.slice(0, 8) + "… " + r.category),
        x: sorted.map((r) => brl(r.revenue_cents)),
        text: sorted.map((r) => r.units + " units"), marker: { color: "#2a9d8f" } }],
        base(title, { margin: { l: 260, r: 30, t: 45, b: 50 }, xaxis: { title: { text: "Revenue (R$)" } } }), config);
    },
    "regions-revenue"(el, rows, title) {
      return Plotly.newPlot(el, [{ type: "bar", x: rows.map((r) => r.customer_state),
        y: rows.map((r) => brl(r.revenue_cents)), marker: { color: "#2a6f97" } }],
        base(title, { yaxis: { title: { text: "Revenue (R$)" } } }), config);
    },
    "regions-customers"(el, rows, title) {
      const sorted = rows.slice().sort((a, b) => (b.customers || 0) - (a.customers || 0));
      return Plotly.newPlot(el, [{ type: "bar", x: sorted.map((r) => r.customer_state),
        y: sorted.map((r) => r.customers), marker: { color: "#8ab17d" } }],
        base(title, { yaxis: { title: { text: "Customers" } } }), config);
    },
    segments(el, rows, title) {
      return Plotly.newPlot(el, [{ type: "pie", hole: 0.4, labels: rows.map((r) => r.rfm_segment),
        values: rows.map((r) => r.customers) }], base(title), config);
    },
    quality(el, rows, title) {
      const dims = [...new Set(rows.map((r) => r.dimension))];
      return Plotly.newPlot(el, dims.map((d) => {
        const mine = rows.filter((r) => r.dimension === d);
        return { type: "scatter", mode: "lines+markers", name: d, x: mine.map((r) => r.run_id), y: mine.map((r) => r.score) };
      }), base(title, { yaxis: { title: { text: "Score (0-100)" }, range: [0, 105] }, xaxis: { type: "category" } }), config);
    },
    quarantine(el, rows, title) {
      const byCategory = {};
      rows.forEach((r) => { byCategory[r.category] = (byCategory[r.category] || 0) + r.rows; });
      const names = Object.keys(byCategory);
      return Plotly.newPlot(el, [{ type: "bar", x: names, y: names.map((n) => byCategory[n]), marker: { color: "#e9c46a" } }],
        base(title, { margin: { l: 60, r: 30, t: 45, b: 120 }, yaxis: { title: { text: "Rows" } } }), config);
    },
    "exceptions-trend"(el, rows, title) {
      const runs = [...new Set(rows.map((r) => r.run_id))];
      const categories = [...new Set(rows.map((r) => r.category))];
      return Plotly.newPlot(el, categories.map((c) => ({ type: "bar", name: c, x: runs,
        y: runs.map((run) => (rows.find((r) => r.run_id === run && r.category === c) || { rows: 0 }).rows) })),
        base(title, { barmode: "stack", xaxis: { type: "category" }, yaxis: { title: { text: "Rows" } } }), config);
    },
    "audit-timeline"(el, rows, title) {
      const sorted = rows.slice().reverse();
      return Plotly.newPlot(el, [{ type: "bar", orientation: "h",
        y: sorted.map((r) => (r.kind === "stage" ? "stage " : "table ") + r.step),
        x: sorted.map((r) => r.seconds || 0),
        marker: { color: sorted.map((r) => (r.status === "failed" ? "#b00020" : r.kind === "stage" ? "#2a6f97" : "#8ab17d")) } }],
        base(title, { margin: { l: 200, r: 30, t: 45, b: 50 }, xaxis: { title: { text: "Seconds" } } }), config);
    },
    "controls-trend"(el, rows, title) {
      const runs = [...new Set(rows.map((r) => r.run_id))];
      const categories = [...new Set(rows.map((r) => r.category))];
      return Plotly.newPlot(el, categories.map((c) => ({ type: "scatter", mode: "lines+markers", name: c, x: runs,
        y: runs.map((run) => (rows.find((r) => r.run_id === run && r.category === c) || { rows_failed: 0 }).rows_failed) })), base(title, { xaxis: { type: "category" }, yaxis: { title: { text: "Rows caught" }, rangemode: "tozero" } }), config);
    },
    "validation-rules"(el, rows, title) {
      const failing = rows.filter((r) => r.rows_failed > 0).slice(0, 25).reverse();
      return Plotly.newPlot(el, [{ type: "bar", orientation: "h",
        y: failing.map((r) => r.rule + " · " + r.table_name), x: failing.map((r) => r.rows_failed),
        marker: { color: failing.map((r) => (r.hard ? "#e76f51" : "#e9c46a")) } }],
        base(title, { margin: { l: 320, r: 30, t: 45, b: 50 }, xaxis: { title: { text: "Records" } } }), config);
    },
    runs(el, rows, title) {
      const sorted = rows.slice().reverse();
      const x = sorted.map((r) => r.run_id);
      return Plotly.newPlot(el, [
        { type: "bar", name: "loaded", x, y: sorted.map((r) => r.rows_loaded), marker: { color: "#2a9d8f" } },
        { type: "bar", name: "quarantined", x, y: sorted.map((r) => r.rows_quarantined), marker: { color: "#e76f51" } },
      ], base(title, { barmode: "stack", xaxis: { type: "category" }, yaxis: { title: { text: "Rows" } } }), config);
    },
  };

  function apiUrl(el) {
    const wanted = (el.dataset.params || "").split(",").filter(Boolean);
    const query = new URLSearchParams();
    wanted.forEach((name) => { if (page.get(name)) query.set(name, page.get(name)); });
    const text = query.toString();
    return el.dataset.api + (text ? "?" + text : "");
  }

  async function render(el) {
    try {
      const response = await fetch(apiUrl(el), { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      if (!body.data.length) {
        el.innerHTML = '<p class="empty">' + el.title + ": no data yet</p>";
        el.dataset.drawn = "empty";
        return;
      }
      await draw[el.dataset.chart](el, body.data, el.title);
      el.dataset.drawn = "true";
    } catch (err) {
      el.innerHTML = '<p class="error"></p>';
      el.firstChild.textContent = el.title + ": could not load (" + err.message + ")";
      el.dataset.drawn = "error";
      console.error("chart " + el.dataset.chart + " failed:", err);
    }
  }

  window.addEventListener("DOMContentLoaded", () => {
    const charts = Array.from(document.querySelectorAll("[data-chart]"));
    Promise.all(charts.map(render)).then(() => { document.body.dataset.chartsReady = "true"; });
  });
})();
