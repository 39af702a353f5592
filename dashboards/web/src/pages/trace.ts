// `/trace/{id}`: the waterfall. Collapsible spans, the critical path highlighted, a span's
// details (attributes, events, links, status) and its logs inline, and a way to the
// correlation timeline of the request it belongs to.

import { api, CORRELATION_KEYS, type LogEntry, type Span, tagValue } from "../api";
import { serviceColor } from "../color";
import { type Child, clear, h, link, notice } from "../dom";
import { duration, time } from "../format";
import { build, criticalPath, type Model, type Node } from "../trace-model";
import { logLine } from "./logs";

export async function tracePage(root: HTMLElement, id: string): Promise<void> {
  root.append(notice("info", `Loading trace ${id}…`));
  const [trace, logs] = await Promise.all([
    api.trace(id),
    api.logs({ trace_id: id, limit: 1000 }).then((p) => p.data).catch(() => [] as LogEntry[]),
  ]);
  clear(root);
  // Marks for the benchmark (test/bench.mjs) and the browser's own performance panel.
  performance.mark("trace:fetched");
  const started = performance.now();
  const model = build(trace);
  performance.mark("trace:built");
  const logsBySpan = new Map<string, LogEntry[]>();
  for (const l of logs) {
    const key = l.span_id ?? "";
    logsBySpan.set(key, [...(logsBySpan.get(key) ?? []), l]);
  }
  const correlation = findCorrelation(trace.spans);
  const first = model.rows[0];
  const errors = model.rows.filter((n) => n.error).length;
  root.append(
    h("header", { class: "page-head" },
      h("h1", {}, first ? `${first.service}: ${first.span.operationName}` : "empty trace"),
      h("dl", { class: "facts" },
        fact("Trace ID", h("code", {}, trace.traceID)),
        fact("Started", time(model.start)),
        fact("Duration", duration(model.end - model.start)),
        fact("Services", String(model.services.length)),
        fact("Spans", String(model.rows.length)),
        fact("Errors", String(errors)),
        correlation && fact("Correlation", link(`/correlation/${encodeURIComponent(correlation)}`, correlation)),
      ),
    ),
  );
  const loose = logsBySpan.get("") ?? [];
  if (loose.length) {
    root.append(h("details", { class: "loose-logs" },
      h("summary", {}, `${loose.length} logs of this trace belong to no span`),
      h("div", { class: "log-list" }, loose.map((l) => logLine(l)))));
  }
  const table = h("div", { class: "waterfall", role: "tree" });
  root.append(table);
  await waterfall(table, model, logsBySpan);
  performance.mark("trace:rows");
  root.dataset.renderMs = (performance.now() - started).toFixed(1);
}

function fact(name: string, value: Child): HTMLElement[] {
  return [h("dt", {}, name), h("dd", {}, value)];
}

function findCorrelation(spans: Span[]): string | undefined {
  for (const span of spans) {
    for (const key of CORRELATION_KEYS) {
      const v = tagValue(span.tags, key);
      if (v) return v;
    }
  }
  return undefined;
}

/** Rows drawn before the page first paints; the rest follow at once after that paint (in
 *  one piece: every further piece would lay out the rows already there again). */
const FIRST_ROWS = 120;

async function waterfall(table: HTMLElement, model: Model, logsBySpan: Map<string, LogEntry[]>): Promise<void> {
  const total = Math.max(model.end - model.start, 1);
  const critical = new Map<string, { start: number; end: number }[]>();
  for (const seg of criticalPath(model)) {
    critical.set(seg.spanID, [...(critical.get(seg.spanID) ?? []), seg]);
  }
  const colors = new Map(model.services.map((s) => [s, serviceColor(s)]));
  const collapsed = new Set<Node>();
  const rows: HTMLElement[] = [];
  const details = new Map<number, HTMLElement>();
  const ticks = h("div", { class: "wf-ruler" });
  for (let i = 0; i <= 4; i++) {
    const t = h("span", { class: "tick" }, duration((total * i) / 4));
    t.style.left = `${i * 25}%`;
    ticks.append(t);
  }
  const showCritical = h("input", { type: "checkbox", checked: true, id: "critical-toggle" });
  table.append(
    h("div", { class: "wf-head" },
      h("div", { class: "wf-name" }, h("label", {}, showCritical, " critical path")),
      h("div", { class: "wf-timeline" }, ticks),
    ),
  );
  showCritical.addEventListener("change", () => table.classList.toggle("hide-critical", !showCritical.checked));

  const relayout = () => {
    let hiddenBelow = Infinity;
    for (let i = 0; i < rows.length; i++) {
      const node = model.rows[i];
      if (node.depth > hiddenBelow) {
        rows[i].hidden = true;
        continue;
      }
      hiddenBelow = collapsed.has(node) ? node.depth : Infinity;
      rows[i].hidden = false;
    }
  };
  // One listener for every row: a twisty collapses its subtree, anything else opens details.
  table.addEventListener("click", (e) => {
    const target = e.target as HTMLElement;
    const row = target.closest<HTMLElement>(".wf-row");
    if (!row || target.closest(".span-details")) return;
    const i = Number(row.dataset.i);
    const node = model.rows[i];
    const twisty = target.closest(".twisty");
    if (twisty && node.children.length) {
      const closing = !collapsed.has(node);
      if (closing) collapsed.add(node);
      else collapsed.delete(node);
      twisty.textContent = closing ? "▸" : "▾";
      twisty.setAttribute("aria-expanded", String(!closing));
      relayout();
    } else if (!twisty) {
      const open = details.get(i);
      if (open) {
        open.remove();
        details.delete(i);
      } else {
        const d = spanDetails(node.span, node, logsBySpan.get(node.span.spanID) ?? []);
        details.set(i, d);
        row.append(d);
      }
    }
  });

  const makeRow = (i: number): HTMLElement => {
    const node = model.rows[i];
    const span = node.span;
    const color = colors.get(node.service) ?? "#888";
    const logCount = logsBySpan.get(span.spanID)?.length ?? 0;
    const dot = h("span", { class: "svc-dot" });
    dot.style.background = color;
    const name = h("div", { class: "wf-name" },
      node.children.length
        ? h("button", { class: "twisty", "aria-label": "collapse", "aria-expanded": "true" }, "▾")
        : h("span", { class: "twisty leaf" }),
      dot,
      h("span", { class: "svc" }, node.service),
      " ",
      h("span", { class: "op" }, span.operationName),
      node.error ? h("span", { class: "badge err", title: "error" }, "error") : null,
      logCount ? h("span", { class: "badge", title: "logs" }, `${logCount} log${logCount === 1 ? "" : "s"}`) : null,
    );
    name.style.paddingLeft = `${Math.min(node.depth, 40) * 14}px`;
    const bar = h("div", { class: node.error ? "bar err" : "bar" });
    bar.style.left = `${((span.startTime - model.start) / total) * 100}%`;
    bar.style.width = `${Math.max((span.duration / total) * 100, 0.15)}%`;
    bar.style.background = color;
    const segments = critical.get(span.spanID);
    for (const seg of segments ?? []) {
      const c = h("div", { class: "crit" });
      c.style.left = `${((seg.start - span.startTime) / Math.max(span.duration, 1)) * 100}%`;
      c.style.width = `${((seg.end - seg.start) / Math.max(span.duration, 1)) * 100}%`;
      bar.append(c);
    }
    const label = h("span", { class: "bar-label" }, duration(span.duration));
    label.style.left = `calc(${((span.startTime + span.duration - model.start) / total) * 100}% + 4px)`;
    const row = h("div", { class: segments ? "wf-row on-critical" : "wf-row", role: "treeitem", "data-span-id": span.spanID, "data-i": i },
      h("div", { class: "wf-line" }, name, h("div", { class: "wf-timeline" }, bar, label)));
    rows.push(row);
    return row;
  };

  const append = (from: number, to: number) => {
    const fragment = document.createDocumentFragment();
    for (let i = from; i < to; i++) fragment.append(makeRow(i));
    table.append(fragment);
    if (collapsed.size) relayout();
  };
  append(0, Math.min(FIRST_ROWS, model.rows.length));
  performance.mark("trace:first-rows");
  if (model.rows.length > FIRST_ROWS) {
    await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    append(FIRST_ROWS, model.rows.length);
  }
}

function spanDetails(span: Span, node: Node, logs: LogEntry[]): HTMLElement {
  const status = tagValue(span.tags, "otel.status_code") ?? "UNSET";
  const message = tagValue(span.tags, "otel.status_description");
  return h("div", { class: "span-details" },
    h("dl", { class: "facts" },
      fact("Service", node.service),
      fact("Span ID", h("code", {}, span.spanID)),
      fact("Start", time(span.startTime)),
      fact("Duration", duration(span.duration)),
      fact("Status", message ? `${status}: ${message}` : status),
    ),
    h("h3", {}, "Attributes"),
    kvTable(span.tags.map((t) => [t.key, String(t.value)])),
    span.logs.length ? [h("h3", {}, "Events"), h("ul", { class: "events" },
      span.logs.map((e) => h("li", {},
        h("span", { class: "when" }, `+${duration(e.timestamp - span.startTime)}`), " ",
        h("strong", {}, String(e.fields.find((f) => f.key === "event")?.value ?? "event")), " ",
        e.fields.filter((f) => f.key !== "event").map((f) => h("span", { class: "kv" }, `${f.key}=${String(f.value)}`)),
      )))] : null,
    span.references.length ? [h("h3", {}, "Links"), h("ul", {},
      span.references.map((r) => h("li", {},
        r.refType === "CHILD_OF" ? "child of " : "follows from ",
        r.traceID === span.traceID ? h("code", {}, r.spanID)
          : link(`/trace/${r.traceID}`, h("code", {}, `${r.traceID} / ${r.spanID}`)),
      )))] : null,
    logs.length ? [h("h3", {}, `Logs (${logs.length})`), h("div", { class: "log-list" }, logs.map((l) => logLine(l)))] : null,
  );
}

export function kvTable(rows: [string, string][]): HTMLElement {
  return h("table", { class: "kv-table" },
    h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}
