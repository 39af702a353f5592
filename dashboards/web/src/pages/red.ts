// `/red?service=&operation=&lookback=`: rate, errors and duration of what a service served,
// over time, with the windows of load runs and chaos experiments marked on every chart so a
// change can be read against what caused it.

import uPlot from "uplot";
import { api, type Marker, type RedPoint, type RedSeries } from "../api";
import { h, link, notice } from "../dom";
import { LOOKBACKS, lookbackUs, ms, nowUs, percent, time } from "../format";
import { navigate } from "../router";

const TOOL_SERVICES = ["gauntlet-loadgen", "gauntlet-chaos"];

export async function redPage(root: HTMLElement, params: URLSearchParams): Promise<void> {
  const services = (await api.services()).filter((s) => !TOOL_SERVICES.includes(s));
  root.append(h("h1", {}, "Rate, errors, duration"));
  if (!services.length) {
    root.append(notice("info", "No services yet."));
    return;
  }
  const service = params.get("service") ?? services.find((s) => s === "gateway") ?? services[0];
  const lookback = params.get("lookback") ?? "15m";
  const end = nowUs();
  const start = end - lookbackUs(lookback, "15m");
  const [red, markers] = await Promise.all([
    api.red({ service, operation: params.get("operation"), start, end }),
    api.markers({ start, end }).catch(() => [] as Marker[]),
  ]);
  const pickService = h("select", { name: "service" }, services.map((s) => h("option", { value: s, selected: s === service }, s)));
  const operations = red.series.map((s) => s.operation).filter((o): o is string => o !== null);
  const pickOperation = h("select", { name: "operation" },
    h("option", { value: "" }, "whole service"),
    (params.get("operation") ? [params.get("operation")!] : operations).map((o) =>
      h("option", { value: o, selected: params.get("operation") === o }, o)));
  const pickWindow = h("select", { name: "lookback" },
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: n === lookback }, `last ${n}`)));
  const form = h("form", { class: "filters" },
    h("label", {}, "Service ", pickService), h("label", {}, "Operation ", pickOperation), h("label", {}, "Window ", pickWindow));
  form.addEventListener("change", (e) => {
    const next = new URLSearchParams({ service: pickService.value, lookback: pickWindow.value });
    if (e.target !== pickService && pickOperation.value) next.set("operation", pickOperation.value);
    navigate(`/red?${next}`);
  });
  root.append(form);
  if (red.truncated) root.append(h("p", { class: "hint" }, "The window held more requests than one answer reads: the oldest were not counted."));
  const whole = red.series[0];
  if (!whole || whole.points.every((p) => p.requests === 0)) {
    root.append(notice("info", `${service} served no requests in the last ${lookback}.`));
  }
  if (whole) {
    const xs = whole.points.map((p) => p.time / 1e6);
    const pick = (f: (p: RedPoint) => number | null) => whole.points.map((p) => (p.requests ? f(p) : null));
    const charts = h("div", { class: "red-charts" });
    root.append(charts);
    chart(charts, "Requests per second", xs, [["rate", "#3e7bfa", pick((p) => p.rate)]], markers);
    chart(charts, "Errors (%)", xs, [["errors", "#d64545", pick((p) => p.error_pct)]], markers);
    chart(charts, "Duration (ms)", xs, [
      ["p50", "#2f9e44", pick((p) => p.p50_ms)],
      ["p95", "#f0a202", pick((p) => p.p95_ms)],
      ["p99", "#d64545", pick((p) => p.p99_ms)],
    ], markers);
  }
  root.append(operationTable(service, red.series.slice(params.get("operation") ? 0 : 1)), markerList(markers));
}

function chart(parent: HTMLElement, title: string, xs: number[], lines: [string, string, (number | null)[]][], markers: Marker[]): void {
  const el = h("div", { class: "chart", "data-chart": title });
  parent.append(h("h3", {}, title), el);
  new uPlot(
    {
      width: Math.max(parent.clientWidth, 600),
      height: 160,
      scales: { x: { time: true } },
      series: [{}, ...lines.map(([label, stroke]) => ({ label, stroke, width: 1.5, spanGaps: false }))],
      axes: [{}, { size: 50 }],
      hooks: { drawClear: [(u: uPlot) => drawMarkers(u, markers)] },
    },
    [xs, ...lines.map(([, , ys]) => ys)],
    el,
  );
}

/** Load runs and chaos experiments as shaded windows (a moment as a line) behind the series. */
function drawMarkers(u: uPlot, markers: Marker[]): void {
  const ctx = u.ctx;
  const { top, height } = u.bbox;
  ctx.save();
  for (const m of markers) {
    const x0 = u.valToPos(m.time / 1e6, "x", true);
    const x1 = u.valToPos(Math.max(m.end, m.time) / 1e6, "x", true);
    ctx.fillStyle = m.kind === "chaos" ? "rgba(214,69,69,0.12)" : "rgba(62,123,250,0.10)";
    ctx.strokeStyle = m.kind === "chaos" ? "rgba(214,69,69,0.7)" : "rgba(62,123,250,0.7)";
    if (x1 - x0 >= 2) ctx.fillRect(x0, top, x1 - x0, height);
    ctx.beginPath();
    ctx.moveTo(x0, top);
    ctx.lineTo(x0, top + height);
    ctx.stroke();
  }
  ctx.restore();
}

function operationTable(service: string, series: RedSeries[]): HTMLElement {
  const rows = series.filter((s) => s.operation !== null).map((s) => {
    const requests = s.points.reduce((n, p) => n + p.requests, 0);
    const errors = s.points.reduce((n, p) => n + p.errors, 0);
    const p99 = Math.max(...s.points.map((p) => p.p99_ms ?? 0));
    return { op: s.operation!, requests, errors, p99 };
  });
  if (!rows.length) return h("div");
  return h("table", { class: "results" },
    h("thead", {}, h("tr", {}, ["Operation", "Requests", "Errors", "Worst p99 of a step"].map((c) => h("th", {}, c)))),
    h("tbody", {}, rows.map((r) => h("tr", {},
      h("td", {}, link(`/red?service=${encodeURIComponent(service)}&operation=${encodeURIComponent(r.op)}`, r.op)),
      h("td", { class: "num" }, String(r.requests)),
      h("td", { class: "num" }, r.requests ? `${r.errors} (${percent((r.errors / r.requests) * 100)})` : "0"),
      h("td", { class: "num" }, ms(r.p99)),
    ))));
}

function markerList(markers: Marker[]): HTMLElement {
  if (!markers.length) return h("p", { class: "hint" }, "No load runs or chaos experiments in this window.");
  return h("div", {},
    h("h2", {}, "Load runs and experiments"),
    h("ul", { class: "markers" }, markers.map((m) => h("li", { class: m.failed ? "failed" : "" },
      h("span", { class: `badge ${m.kind}` }, m.kind), " ",
      link(`/trace/${m.trace_id}`, m.name), " ",
      h("span", { class: "when" }, time(m.time)),
      m.end > m.time ? h("span", { class: "when" }, ` for ${ms((m.end - m.time) / 1000)}`) : null,
      m.failed ? h("span", { class: "badge err" }, "failed") : null,
      ["gauntlet.experiment", "gauntlet.scenario", "gauntlet.threshold.expr"].map((k) =>
        typeof m.attributes[k] === "string" ? h("span", { class: "kv" }, ` ${m.attributes[k] as string}`) : null),
    ))));
}
