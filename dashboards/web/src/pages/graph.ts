// `/graph?query=&lookback=`: the metrics the collector keeps, through its Prometheus API. A
// metric picker (every name, span metrics included), a label picker that adds a matcher, a
// PromQL box, and a chart of the range query over the window, with each series' last value.
// A query the collector refuses shows its message (bad_data names what to change).

import uPlot from "uplot";
import { ApiError, api, type ExemplarSeries, type MatrixSeries, type QueryData } from "../api";
import { h, link, notice } from "../dom";
import { LOOKBACKS, lookbackUs, time } from "../format";
import { navigate } from "../router";

/** Series drawn at most; the rest are listed. */
const MAX_LINES = 12;
const PALETTE = ["#3e7bfa", "#d64545", "#2f9e44", "#f0a202", "#7c3aed", "#0891b2", "#b7791f", "#db2777", "#4b5563", "#65a30d", "#9333ea", "#0f766e"];

/** A series' labels as people read them: `{job="gateway", le="0.5"}`, the name in front. */
export function seriesName(metric: Record<string, string>): string {
  const { __name__: name, ...rest } = metric;
  const labels = Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}="${v}"`);
  return `${name ?? ""}{${labels.join(", ")}}`;
}

export async function graphPage(root: HTMLElement, params: URLSearchParams, signal: AbortSignal): Promise<void> {
  root.append(h("h1", {}, "Metrics"));
  const names = await api.labelValues("__name__");
  const query = params.get("query") ?? "";
  const lookback = params.get("lookback") ?? "15m";
  const box = h("textarea", { name: "query", rows: 2, cols: 90, spellcheck: "false", "aria-label": "PromQL query", placeholder: "PromQL, e.g. sum by (job) (rate(http_server_request_duration_seconds_count[1m]))" }, query);
  const pickMetric = h("select", { name: "metric", "aria-label": "metric" },
    h("option", { value: "" }, names.length ? "metric…" : "no metrics yet"),
    names.map((n) => h("option", { value: n }, n)));
  const pickLabel = h("select", { name: "label", "aria-label": "label", disabled: true }, h("option", { value: "" }, "label…"));
  const pickValue = h("select", { name: "value", "aria-label": "label value", disabled: true }, h("option", { value: "" }, "value…"));
  const pickWindow = h("select", { name: "lookback", "aria-label": "window" },
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: n === lookback }, `last ${n}`)));
  const run = h("button", { type: "submit" }, "Run");
  const form = h("form", { class: "filters promql" },
    h("label", {}, "Metric ", pickMetric), h("label", {}, "Label ", pickLabel), pickValue,
    h("label", {}, "Window ", pickWindow), h("div", { class: "promql-box" }, box, run));
  root.append(form);
  const windowSeconds = lookbackUs(lookback, "15m") / 1e6;
  let labelSets: Record<string, string>[] = [];
  pickMetric.addEventListener("change", async () => {
    if (!pickMetric.value) return;
    box.value = pickMetric.value;
    const end = Date.now() / 1000;
    labelSets = await api.series(pickMetric.value, end - windowSeconds, end).catch(() => []);
    const labels = [...new Set(labelSets.flatMap((l) => Object.keys(l)).filter((k) => k !== "__name__"))].sort();
    pickLabel.replaceChildren(h("option", { value: "" }, "label…"), ...labels.map((l) => h("option", { value: l }, l)));
    pickLabel.disabled = labels.length === 0;
  });
  pickLabel.addEventListener("change", () => {
    const values = [...new Set(labelSets.map((l) => l[pickLabel.value]).filter((v): v is string => v !== undefined))].sort();
    pickValue.replaceChildren(h("option", { value: "" }, "value…"), ...values.map((v) => h("option", { value: v }, v)));
    pickValue.disabled = values.length === 0;
  });
  pickValue.addEventListener("change", () => {
    if (!pickLabel.value || !pickValue.value) return;
    box.value = addMatcher(box.value, pickLabel.value, pickValue.value);
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    navigate(`/graph?${new URLSearchParams({ query: box.value.trim(), lookback: pickWindow.value })}`);
  });
  if (!query) {
    root.append(notice("info", "Pick a metric or write a PromQL query, then Run."));
    return;
  }
  // Now to the millisecond: a point exported a fraction of a second ago is in the window.
  const end = Math.round(Date.now()) / 1000;
  const start = end - windowSeconds;
  // About 240 points across the window, never finer than the demo's 5 s exports.
  const step = Math.max(5, Math.round(windowSeconds / 240));
  let data: QueryData;
  try {
    data = await api.promRange(query, start, end, step, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
      root.append(notice("error", `The collector refused the query: ${e.message}`));
      root.dataset.refused = "true";
      return;
    }
    throw e;
  }
  const series = data.resultType === "matrix" ? data.result : [];
  const exemplars = await api.exemplars(query, start, end).catch(() => [] as ExemplarSeries[]);
  if (!series.length) {
    root.append(notice("info", `The query selected nothing in the last ${lookback}.`));
  } else {
    root.append(chart(series, [start, end]), legend(series));
  }
  root.append(exemplarList(exemplars));
}

/** Measurements that carry the trace they were made in: each opens its trace. */
function exemplarList(list: ExemplarSeries[]): HTMLElement {
  const rows = list.flatMap((s) => s.exemplars.map((e) => ({ series: seriesName(s.seriesLabels), e })))
    .sort((a, b) => b.e.timestamp - a.e.timestamp)
    .slice(0, 50);
  if (!rows.length) return h("p", { class: "hint" }, "No exemplars (measurements linked to a trace) in this window.");
  return h("div", {},
    h("h2", {}, "Exemplars"),
    h("table", { class: "results exemplars" },
      h("thead", {}, h("tr", {}, ["When", "Value", "Series", "Trace"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.map(({ series, e }) => h("tr", {},
        h("td", {}, time(e.timestamp * 1e6)),
        h("td", { class: "num" }, e.value),
        h("td", { class: "series-name" }, series),
        h("td", {}, e.labels.trace_id ? link(`/trace/${e.labels.trace_id}`, e.labels.trace_id.slice(0, 16)) : "–"))))));
}

/** `name` → `name{label="value"}`; `name{a="b"}` → `name{a="b", label="value"}`. */
export function addMatcher(query: string, label: string, value: string): string {
  const matcher = `${label}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  const q = query.trim();
  if (/^[A-Za-z_:][A-Za-z0-9_:]*$/.test(q)) return `${q}{${matcher}}`;
  const m = /^([A-Za-z_:][A-Za-z0-9_:]*)\{(.*)\}$/.exec(q);
  if (m) return `${m[1]}{${m[2] ? `${m[2]}, ` : ""}${matcher}}`;
  return q;
}

function chart(series: MatrixSeries[], window: [number, number]): HTMLElement {
  const drawn = series.slice(0, MAX_LINES);
  // The steps the answer holds (every series is evaluated at the same ones).
  const xs = [...new Set(drawn.flatMap((s) => s.values.map(([t]) => t)))].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const lines = drawn.map((s) => {
    const ys: (number | null)[] = xs.map(() => null);
    for (const [t, v] of s.values) {
      const i = index.get(t);
      const n = Number(v);
      if (i !== undefined && Number.isFinite(n)) ys[i] = n;
    }
    return ys;
  });
  const el = h("div", { class: "chart", "data-chart": "query", "data-series": String(series.length) });
  new uPlot(
    {
      width: 1000,
      height: 260,
      // The whole window, however little of it holds data.
      scales: { x: { time: true, range: () => window } },
      series: [{}, ...drawn.map((s, i) => ({ label: seriesName(s.metric), stroke: PALETTE[i % PALETTE.length], width: 1.5, spanGaps: false, points: { show: true, size: 4 } }))],
      axes: [{}, { size: 60 }],
      legend: { show: false },
    },
    [xs, ...lines],
    el,
  );
  return el;
}

/** A colour sample, set through the CSSOM (the collector's CSP refuses style attributes). */
function swatch(color: string): HTMLElement {
  const el = h("span", { class: "swatch" });
  el.style.background = color;
  return el;
}

function legend(series: MatrixSeries[]): HTMLElement {
  return h("table", { class: "results series" },
    h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "Series"), h("th", {}, "Last value"))),
    h("tbody", {}, series.map((s, i) => {
      const last = s.values[s.values.length - 1];
      return h("tr", {},
        h("td", {}, i < MAX_LINES ? swatch(PALETTE[i % PALETTE.length]!) : "not drawn"),
        h("td", { class: "series-name" }, seriesName(s.metric)),
        h("td", { class: "num" }, last ? last[1] : "–"));
    })));
}
