// `/red?service=&operation=&lookback=` (or `&start=&end=` in µs, a run's own window, as the
// runs page and `gauntlet run`'s report link it): rate, errors and duration of what a service
// served, over time, with the windows of load runs and chaos experiments marked on every
// chart so a change can be read against what caused it.

import uPlot from "uplot";
import { api, type Marker, type RedPoint, type RedSeries, TOOL_SERVICES } from "../api";
import { h, link, notice } from "../dom";
import { LOOKBACKS, lookbackUs, ms, nowUs, percent, time } from "../format";
import { navigate } from "../router";
import { runs } from "../runs-model";

/** The window the URL names: `start` and `end` (µs) when both are numbers with start before
 * end, else the lookback up to now. */
function window(params: URLSearchParams): { start: number; end: number; fixed: boolean; lookback: string } {
  const lookback = params.get("lookback") ?? "15m";
  const [start, end] = [Number(params.get("start")), Number(params.get("end"))];
  if (params.has("start") && params.has("end") && Number.isFinite(start) && Number.isFinite(end) && start < end) {
    return { start, end, fixed: true, lookback };
  }
  const now = nowUs();
  return { start: now - lookbackUs(lookback, "15m"), end: now, fixed: false, lookback };
}

export async function redPage(root: HTMLElement, params: URLSearchParams): Promise<void> {
  const services = (await api.services()).filter((s) => !(TOOL_SERVICES as readonly string[]).includes(s));
  root.append(h("h1", {}, "Rate, errors, duration"));
  if (!services.length) {
    root.append(notice("info", "No services yet."));
    return;
  }
  const service = params.get("service") ?? services.find((s) => s === "gateway") ?? services[0];
  const { start, end, fixed, lookback } = window(params);
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
    fixed ? h("option", { value: "", selected: true }, `${time(start)} to ${time(end)}`) : null,
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: !fixed && n === lookback }, `last ${n}`)));
  const form = h("form", { class: "filters" },
    h("label", {}, "Service ", pickService), h("label", {}, "Operation ", pickOperation), h("label", {}, "Window ", pickWindow));
  form.addEventListener("change", (e) => {
    // A fixed window stays until another window is picked.
    const next = new URLSearchParams({ service: pickService.value });
    if (pickWindow.value) next.set("lookback", pickWindow.value);
    else next.set("start", String(start)), next.set("end", String(end));
    if (e.target !== pickService && pickOperation.value) next.set("operation", pickOperation.value);
    navigate(`/red?${next}`);
  });
  root.append(form);
  if (red.truncated) root.append(h("p", { class: "hint" }, "The window held more requests than one answer reads: the oldest were not counted."));
  const whole = red.series[0];
  if (!whole || whole.points.every((p) => p.requests === 0)) {
    root.append(notice("info", `${service} served no requests ${fixed ? "in this window" : `in the last ${lookback}`}.`));
  }
  if (whole) {
    const xs = whole.points.map((p) => p.time / 1e6);
    const pick = (f: (p: RedPoint) => number | null) => whole.points.map((p) => (p.requests ? f(p) : null));
    const charts = h("div", { class: "red-charts" });
    root.append(charts);
    const range = zoom(whole.points, red.step / 1e6, markers);
    chart(charts, "Requests per second", xs, [["rate", "#3e7bfa", pick((p) => p.rate)]], markers, range);
    // Refused as too many (429) is not the server's error, but no answer either: shown beside
    // the errors, so a rate-limit storm does not read as "0 % errors".
    chart(charts, "Errors and throttled (%)", xs, [
      ["errors", "#d64545", pick((p) => p.error_pct)],
      ["throttled (429)", "#b7791f", pick((p) => p.throttled_pct)],
    ], markers, range);
    chart(charts, "Duration (ms)", xs, [
      ["p50", "#2f9e44", pick((p) => p.p50_ms)],
      ["p95", "#f0a202", pick((p) => p.p95_ms)],
      ["p99", "#d64545", pick((p) => p.p99_ms)],
    ], markers, range);
  }
  const windowQuery = fixed ? `&start=${start}&end=${end}` : `&lookback=${encodeURIComponent(lookback)}`;
  root.append(operationTable(service, red.series.slice(params.get("operation") ? 0 : 1), windowQuery));
  root.append(await upstreamTable(service), markerList(markers));
}

/** The service's exported metrics selector: its `job` is the service's name, after its
 * namespace when it has one (`gauntlet-demo/gateway`). */
function jobOf(service: string): string {
  const escaped = service.replace(/[.*+?^${}()|[\]\\]/g, "\\\\$&");
  return `job=~"(.+/)?${escaped}"`;
}

/** Each upstream's breaker, bulkhead and retries, from the metrics the service exports
 * (`gauntlet.circuit_breaker.state`, ...): the mechanisms' own report, now. Nothing when the
 * service exports none. */
async function upstreamTable(service: string): Promise<HTMLElement> {
  const job = jobOf(service);
  const by = "by (upstream, shard)";
  const ask = (q: string) => api.promInstant(q).then((d) => (d.resultType === "vector" ? d.result : [])).catch(() => []);
  const [states, inUse, limits, retries] = await Promise.all([
    ask(`max ${by} (gauntlet_circuit_breaker_state{${job}})`),
    ask(`sum ${by} (gauntlet_bulkhead_in_use{${job}})`),
    ask(`max ${by} (gauntlet_bulkhead_limit{${job}})`),
    ask(`sum ${by} (rate(gauntlet_client_retries_total{${job}}[5m]))`),
  ]);
  const key = (m: Record<string, string>) => `${m.upstream ?? ""}${m.shard ? ` (shard ${m.shard})` : ""}`;
  const rows = new Map<string, { state?: number; inUse?: number; limit?: number; retries?: number }>();
  const fill = (list: { metric: Record<string, string>; value: [number, string] }[], f: (r: { state?: number; inUse?: number; limit?: number; retries?: number }, v: number) => void) => {
    for (const s of list) {
      const k = key(s.metric);
      const row = rows.get(k) ?? {};
      f(row, Number(s.value[1]));
      rows.set(k, row);
    }
  };
  fill(states, (r, v) => (r.state = v));
  fill(inUse, (r, v) => (r.inUse = v));
  fill(limits, (r, v) => (r.limit = v));
  fill(retries, (r, v) => (r.retries = v));
  if (!rows.size) return h("div");
  const stateName = (v?: number) => (v === undefined ? "–" : ["closed", "half_open", "open"][v] ?? String(v));
  const graph = (q: string) => `/graph?${new URLSearchParams({ query: q, lookback: "15m" })}`;
  return h("div", {},
    h("h2", {}, "Upstreams, from the service's metrics"),
    h("table", { class: "results upstreams" },
      h("thead", {}, h("tr", {}, ["Upstream", "Circuit breaker", "Bulkhead in use", "Retries/s (5m)"].map((c) => h("th", {}, c)))),
      h("tbody", {}, [...rows.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, r]) => h("tr", { "data-upstream": name },
        h("td", {}, name),
        h("td", { class: `state-${stateName(r.state)}` }, link(graph(`gauntlet_circuit_breaker_state{${job}, upstream="${name.split(" ")[0]}"}`), stateName(r.state))),
        h("td", { class: "num" }, r.limit === undefined ? "off" : `${r.inUse ?? 0} / ${r.limit}`),
        h("td", { class: "num" }, r.retries === undefined ? "–" : r.retries.toFixed(2)),
      )))));
}

/** The part of the window worth drawing, in seconds: from the first step with requests (or
 * the first marked run) to the last, a step's margin each side, at least half a minute; a
 * fresh demo's few seconds of data are not a dot at the edge of fifteen minutes. */
function zoom(points: RedPoint[], step: number, markers: Marker[]): [number, number] {
  const busy = points.filter((p) => p.requests > 0).map((p) => p.time / 1e6);
  const marked = markers.flatMap((m) => [m.time / 1e6, Math.max(m.end, m.time) / 1e6]);
  const all = [...busy, ...marked];
  const first = (points[0]?.time ?? 0) / 1e6;
  const last = (points[points.length - 1]?.time ?? 0) / 1e6 + step;
  if (!all.length) return [first, last];
  const hi = Math.min(Math.max(...all) + step, last);
  const lo = Math.max(Math.min(Math.min(...all) - step, hi - 30), first);
  return [lo, hi];
}

function chart(parent: HTMLElement, title: string, xs: number[], lines: [string, string, (number | null)[]][], markers: Marker[], range: [number, number]): void {
  const el = h("div", { class: "chart", "data-chart": title, "data-range": range.map((v) => v.toFixed(0)).join(",") });
  parent.append(h("h3", {}, title), el);
  new uPlot(
    {
      width: Math.max(parent.clientWidth, 600),
      height: 160,
      scales: { x: { time: true, range: () => range } },
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
    ctx.strokeStyle = m.kind === "chaos" ? "rgba(214,69,69,0.7)" : m.kind === "run" ? "rgba(90,98,110,0.6)" : "rgba(62,123,250,0.7)";
    // A suite spans its load runs and experiments: its edges only, not a shade over theirs.
    if (x1 - x0 >= 2 && m.kind !== "run") ctx.fillRect(x0, top, x1 - x0, height);
    ctx.beginPath();
    ctx.moveTo(x0, top);
    ctx.lineTo(x0, top + height);
    ctx.stroke();
  }
  ctx.restore();
}

function operationTable(service: string, series: RedSeries[], windowQuery: string): HTMLElement {
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
      h("td", {}, link(`/red?service=${encodeURIComponent(service)}&operation=${encodeURIComponent(r.op)}${windowQuery}`, r.op)),
      h("td", { class: "num" }, String(r.requests)),
      h("td", { class: "num" }, r.requests ? `${r.errors} (${percent((r.errors / r.requests) * 100)})` : "0"),
      h("td", { class: "num" }, ms(r.p99)),
    ))));
}

function markerList(markers: Marker[]): HTMLElement {
  if (!markers.length) return h("p", { class: "hint" }, "No load runs or chaos experiments in this window.");
  return h("div", {},
    h("h2", {}, "Load runs and experiments"),
    h("ul", { class: "markers" }, runs(markers).map((r) => {
      const kept = r.thresholds.filter((t) => !t.failed).length;
      return h("li", { class: r.failed ? "failed run" : "run" },
        h("span", { class: `badge ${r.kind}` }, r.kind), " ",
        link(`/trace/${r.trace}`, r.name), " ",
        h("span", { class: "when" }, `${time(r.start)} for ${ms((r.end - r.start) / 1000)}`),
        r.thresholds.length ? h("span", { class: "kv" }, ` ${kept}/${r.thresholds.length} thresholds kept`) : null,
        h("span", { class: r.failed ? "badge err" : "badge ok" }, r.failed ? "failed" : "passed"),
      );
    })));
}
