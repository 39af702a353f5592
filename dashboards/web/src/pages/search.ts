// `/search?service=&operation=&tags=&minDuration=&start=&end=`: trace search. A scatter plot
// of the found traces' durations over time (click a point to open it) and a result list.

import uPlot from "uplot";
import { api, type Trace } from "../api";
import { serviceColor } from "../color";
import { h, link, notice } from "../dom";
import { duration, lookbackUs, LOOKBACKS, nowUs, time } from "../format";
import { navigate } from "../router";
import { build } from "../trace-model";

interface Summary {
  id: string;
  start: number;
  duration: number;
  rootService: string;
  rootOperation: string;
  services: Map<string, number>;
  spans: number;
  errors: number;
}

function summarize(trace: Trace): Summary {
  const model = build(trace);
  const root = model.rows[0];
  const services = new Map<string, number>();
  for (const n of model.rows) services.set(n.service, (services.get(n.service) ?? 0) + 1);
  return {
    id: trace.traceID,
    start: model.start,
    duration: model.end - model.start,
    rootService: root?.service ?? "?",
    rootOperation: root?.span.operationName ?? "?",
    services,
    spans: model.rows.length,
    errors: model.rows.filter((n) => n.error).length,
  };
}

export async function searchPage(root: HTMLElement, params: URLSearchParams, signal: AbortSignal): Promise<void> {
  const services = await api.services();
  if (!services.length) {
    root.append(h("h1", {}, "Traces"), notice("info", "No traces yet. Point an OpenTelemetry exporter at this collector's OTLP port, or run `gauntlet demo`."));
    return;
  }
  const chosen = params.get("service") ?? services.find((s) => s === "gateway") ?? services[0];
  const operations = await api.operations(chosen);
  const input = (name: string, placeholder: string, size = "14") =>
    h("input", { name, value: params.get(name) ?? "", placeholder, size });
  // Suggestions come from the tags the found traces carry (below), so a search copied from
  // the hint finds something.
  const tagsInput = h("input", { name: "tags", value: params.get("tags") ?? "", placeholder: '{"http.response.status_code":"500"}', size: "28", list: "tag-examples" });
  const service = h("select", { name: "service" }, services.map((s) => h("option", { value: s, selected: s === chosen }, s)));
  const operation = h("select", { name: "operation" },
    h("option", { value: "" }, "all operations"),
    operations.map((o) => h("option", { value: o, selected: params.get("operation") === o }, o)));
  const lookback = h("select", { name: "lookback" },
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: (params.get("lookback") ?? "1h") === n }, `last ${n}`)));
  const limit = h("select", { name: "limit" },
    ["20", "50", "100", "500"].map((n) => h("option", { value: n, selected: (params.get("limit") ?? "50") === n }, `${n} traces`)));
  const form = h("form", { class: "filters" },
    h("label", {}, "Service ", service),
    h("label", {}, "Operation ", operation),
    h("label", {}, "Tags ", tagsInput),
    h("label", {}, "Min duration ", input("minDuration", "250ms", "7")),
    h("label", {}, "Window ", lookback),
    h("label", {}, "Limit ", limit),
    h("button", { type: "submit" }, "Find traces"),
  );
  service.addEventListener("change", () => navigate(`/search?service=${encodeURIComponent(service.value)}`));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (typeof v === "string" && v) next.set(k, v);
    navigate(`/search?${next}`);
  });
  root.append(h("h1", {}, "Traces"), form);

  const end = Number(params.get("end")) || nowUs();
  const start = Number(params.get("start")) || end - lookbackUs(params.get("lookback"));
  const traces = await api.traces({
    service: chosen,
    operation: params.get("operation"),
    tags: params.get("tags"),
    minDuration: params.get("minDuration"),
    start,
    end,
    limit: params.get("limit") ?? "50",
  }, signal);
  suggestTags(tagsInput, traces, chosen);
  const found = traces.map(summarize).sort((a, b) => b.start - a.start);
  if (!found.length) {
    root.append(notice("info", "No traces match. Widen the window or loosen a filter."));
    return;
  }
  const chart = h("div", { class: "chart scatter" });
  root.append(chart, h("p", { class: "hint" }, `${found.length} traces, newest first`), resultList(found));
  scatter(chart, found);
}

/** Offers `{"key":"value"}` for the tags `service`'s spans in these traces carry (the most
 * common first), and makes the placeholder one of them. */
function suggestTags(input: HTMLInputElement, traces: Trace[], service: string): void {
  const seen = new Map<string, { count: number; value: string }>();
  for (const trace of traces) {
    for (const span of trace.spans) {
      if (trace.processes[span.processID]?.serviceName !== service) continue;
      for (const tag of span.tags) {
        const entry = seen.get(tag.key) ?? { count: 0, value: String(tag.value) };
        entry.count += 1;
        seen.set(tag.key, entry);
      }
    }
  }
  const common = [...seen.entries()].sort((a, b) => b[1].count - a[1].count).slice(0, 30);
  const example = (key: string, value: string) => JSON.stringify({ [key]: value });
  input.after(h("datalist", { id: "tag-examples" },
    common.map(([key, { value }]) => h("option", { value: example(key, value) }))));
  const status = seen.get("http.response.status_code");
  const first = common[0];
  if (status) input.placeholder = example("http.response.status_code", status.value);
  else if (first) input.placeholder = example(first[0], first[1].value);
}

function resultList(found: Summary[]): HTMLElement {
  return h("table", { class: "results" },
    h("thead", {}, h("tr", {}, ["Root", "Services", "Spans", "Errors", "Duration", "Started"].map((c) => h("th", {}, c)))),
    h("tbody", {}, found.map((t) => h("tr", { "data-trace-id": t.id, class: t.errors ? "has-error" : "" },
      h("td", {}, link(`/trace/${t.id}`, h("span", { class: "svc" }, t.rootService), ": ", h("span", { class: "op" }, t.rootOperation))),
      h("td", {}, [...t.services].map(([name, n]) => {
        const chip = h("span", { class: "chip" }, `${name} (${n})`);
        chip.style.borderColor = serviceColor(name);
        return chip;
      })),
      h("td", { class: "num" }, String(t.spans)),
      h("td", { class: "num" }, t.errors ? h("span", { class: "badge err" }, String(t.errors)) : "0"),
      h("td", { class: "num" }, duration(t.duration)),
      h("td", {}, time(t.start)),
    ))),
  );
}

function scatter(el: HTMLElement, found: Summary[]): void {
  const sorted = [...found].sort((a, b) => a.start - b.start);
  const xs = sorted.map((t) => t.start / 1e6);
  const ok = sorted.map((t) => (t.errors ? null : t.duration / 1000));
  const bad = sorted.map((t) => (t.errors ? t.duration / 1000 : null));
  const points = { show: true, size: 8 };
  const plot = new uPlot(
    {
      width: Math.max(el.clientWidth, 600),
      height: 180,
      scales: { x: { time: true } },
      series: [
        {},
        { label: "ok (ms)", stroke: "#3e7bfa", paths: () => null, points: { ...points, fill: "#3e7bfa" } },
        { label: "with errors (ms)", stroke: "#d64545", paths: () => null, points: { ...points, fill: "#d64545" } },
      ],
      axes: [{}, { label: "ms", size: 50 }],
      cursor: { drag: { x: false, y: false } },
    },
    [xs, ok, bad],
    el,
  );
  plot.over.addEventListener("click", () => {
    const i = plot.cursor.idx;
    if (i !== null && i !== undefined && sorted[i]) navigate(`/trace/${sorted[i].id}`);
  });
}
