// `/logs`: the logs explorer. Filters live in the URL (service, severity, trace ID,
// correlation ID, text), a histogram shows the page's logs by severity over time, "older"
// follows the API's cursor, and live tail asks for what arrived since the newest shown.

import uPlot from "uplot";
import { api, type LogEntry } from "../api";
import { SEVERITY_COLORS, severityBucket } from "../color";
import { clear, h, link, notice } from "../dom";
import { lookbackUs, LOOKBACKS, nowUs, time } from "../format";
import { navigate } from "../router";

const SEVERITIES = ["", "debug", "info", "warn", "error", "fatal"];
const PAGE = 200;
const TAIL_MS = 2000;

export async function logsPage(root: HTMLElement, params: URLSearchParams, signal: AbortSignal): Promise<void> {
  const services = await api.services();
  const field = (name: string, attrs: Record<string, string> = {}) =>
    h("input", { name, value: params.get(name) ?? "", ...attrs });
  const service = h("select", { name: "service" },
    h("option", { value: "" }, "all services"),
    services.map((s) => h("option", { value: s, selected: params.get("service") === s }, s)));
  const severity = h("select", { name: "severity_min" },
    SEVERITIES.map((s) => h("option", { value: s, selected: (params.get("severity_min") ?? "") === s }, s ? `≥ ${s}` : "any severity")));
  const lookback = h("select", { name: "lookback" },
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: (params.get("lookback") ?? "1h") === n }, `last ${n}`)));
  const tail = h("input", { type: "checkbox", name: "tail", checked: params.get("tail") === "1" });
  const form = h("form", { class: "filters" },
    h("label", {}, "Service ", service),
    h("label", {}, "Severity ", severity),
    h("label", {}, "Trace ID ", field("trace_id", { size: "34", placeholder: "32 hex digits" })),
    h("label", {}, "Correlation ID ", field("correlation_id", { size: "34" })),
    h("label", {}, "Text ", field("q", { placeholder: "words in the body" })),
    h("label", {}, "Window ", lookback),
    h("label", {}, tail, " live tail"),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (typeof v === "string" && v) next.set(k, k === "tail" ? "1" : v);
    navigate(`/logs?${next}`);
  });
  const chart = h("div", { class: "chart" });
  const list = h("div", { class: "log-list", "aria-live": "polite" });
  const more = h("button", { type: "button", hidden: true }, "Older logs");
  const status = h("p", { class: "hint" });
  root.append(h("h1", {}, "Logs"), form, chart, status, list, more);

  const end = nowUs();
  const query = {
    service: params.get("service"),
    severity_min: params.get("severity_min"),
    trace_id: params.get("trace_id"),
    correlation_id: params.get("correlation_id"),
    q: params.get("q"),
    start: end - lookbackUs(params.get("lookback")),
    end: tail.checked ? null : end,
    limit: PAGE,
  };
  const shown: LogEntry[] = [];
  let cursor: string | null = null;
  const render = () => {
    status.textContent = shown.length ? `${shown.length} logs shown, newest first` : "";
    drawHistogram(chart, shown);
  };
  const page = await api.logs(query, signal);
  if (!page.data.length) list.append(notice("info", "No logs match. Widen the window or loosen a filter."));
  for (const l of page.data) list.append(logLine(l));
  shown.push(...page.data);
  cursor = page.next_cursor;
  more.hidden = !cursor;
  render();
  more.addEventListener("click", async () => {
    if (!cursor) return;
    const next = await api.logs({ ...query, cursor }, signal);
    for (const l of next.data) list.append(logLine(l));
    shown.push(...next.data);
    cursor = next.next_cursor;
    more.hidden = !cursor;
    render();
  });

  if (tail.checked) {
    // Polls for logs newer than the newest shown; stops when the page is left.
    let newest = shown[0]?.time_unix_nano ?? end * 1000;
    const timer = window.setInterval(async () => {
      try {
        const fresh = await api.logs({ ...query, start: Math.floor(newest / 1000) + 1, end: null, limit: 1000 }, signal);
        const novel = fresh.data.filter((l) => l.time_unix_nano > newest);
        if (!novel.length) return;
        newest = novel[0].time_unix_nano;
        if (list.firstChild instanceof HTMLElement && list.firstChild.classList.contains("notice")) clear(list);
        list.prepend(...novel.map((l) => logLine(l, true)));
        shown.unshift(...novel);
        render();
      } catch {
        /* the next tick retries; an aborted page stops the timer below */
      }
    }, TAIL_MS);
    signal.addEventListener("abort", () => window.clearInterval(timer));
  }
}

/** One log as a line: time, severity, service, body, and links to its trace and request. */
export function logLine(l: LogEntry, fresh = false): HTMLElement {
  const bucket = severityBucket(l.severity_number);
  const sev = h("span", { class: `sev sev-${bucket.toLowerCase()}` }, l.severity || bucket);
  return h("div", { class: fresh ? "log-line fresh" : "log-line", "data-severity": bucket },
    h("span", { class: "when" }, time(l.time_unix_nano / 1000)),
    sev,
    h("span", { class: "svc" }, l.service),
    h("span", { class: "body" }, l.body),
    h("span", { class: "refs" },
      l.trace_id ? link(`/trace/${l.trace_id}`, "trace") : null,
      l.correlation_id ? link(`/correlation/${encodeURIComponent(l.correlation_id)}`, "request") : null,
    ),
  );
}

const BUCKETS = 60;

function drawHistogram(el: HTMLElement, logs: LogEntry[]): void {
  clear(el);
  if (!logs.length) return;
  const times = logs.map((l) => l.time_unix_nano / 1e9);
  const lo = Math.min(...times);
  const hi = Math.max(...times, lo + 1);
  const width = (hi - lo) / BUCKETS;
  const xs = Array.from({ length: BUCKETS }, (_, i) => lo + i * width);
  const names = Object.keys(SEVERITY_COLORS);
  const counts = names.map(() => new Array<number>(BUCKETS).fill(0));
  for (const l of logs) {
    const i = Math.min(BUCKETS - 1, Math.floor((l.time_unix_nano / 1e9 - lo) / width));
    counts[names.indexOf(severityBucket(l.severity_number))][i]++;
  }
  // Stacked: each series draws the sum of itself and those below it.
  const stacked = counts.map((_, si) => xs.map((_, i) => counts.slice(si).reduce((sum, c) => sum + c[i], 0)));
  const bars = uPlot.paths.bars!({ size: [0.9, 40] });
  const used = names.map((_, i) => counts[i].some((c) => c > 0));
  new uPlot(
    {
      width: Math.max(el.clientWidth, 600),
      height: 140,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [{}, ...names.map((n, i) => ({ label: n, fill: SEVERITY_COLORS[n], stroke: SEVERITY_COLORS[n], paths: bars, show: used[i], points: { show: false } }))],
      axes: [{}, { size: 40 }],
    },
    [xs, ...stacked],
    el,
  );
}
