// `/correlation/{id}`: everything one business request did, across services and
// asynchronous hops (each hop is its own trace), spans and logs on one time axis.

import { api, type TimelineItem } from "../api";
import { serviceColor, severityBucket } from "../color";
import { h, link } from "../dom";
import { duration, time } from "../format";

export async function correlationPage(root: HTMLElement, id: string): Promise<void> {
  const t = await api.correlation(id);
  const spans = t.items.filter((i) => i.kind === "span");
  const start = Math.min(...t.items.map((i) => i.time_unix_nano));
  const end = Math.max(...t.items.map((i) => (i.kind === "span" ? i.time_unix_nano + i.duration_ns : i.time_unix_nano)));
  const total = Math.max(end - start, 1);
  root.append(
    h("header", { class: "page-head" },
      h("h1", {}, "Request ", h("code", {}, t.correlation_id)),
      h("dl", { class: "facts" },
        h("dt", {}, "Started"), h("dd", {}, time(start / 1000)),
        h("dt", {}, "Took"), h("dd", {}, duration(total / 1000)),
        h("dt", {}, "Services"), h("dd", {}, t.services.join(", ")),
        h("dt", {}, "Spans"), h("dd", {}, String(spans.length)),
        h("dt", {}, "Logs"), h("dd", {}, String(t.items.length - spans.length)),
      ),
      t.truncated ? h("p", { class: "hint" }, "Only the first items are shown: this request did more.") : null,
    ),
    h("h2", {}, `Traces (${t.trace_summaries.length})`),
    h("table", { class: "results" },
      h("thead", {}, h("tr", {}, ["Root", "Spans", "Duration", "Started"].map((c) => h("th", {}, c)))),
      h("tbody", {}, t.trace_summaries.map((s) => h("tr", { class: s.error ? "has-error" : "" },
        h("td", {}, link(`/trace/${s.trace_id}`, `${s.root_service ?? "?"}: ${s.root_operation ?? "?"}`), s.error ? h("span", { class: "badge err" }, "error") : null),
        h("td", { class: "num" }, String(s.span_count)),
        h("td", { class: "num" }, duration(s.duration_ns / 1000)),
        h("td", {}, time(rfc3339Us(s.start))),
      ))),
    ),
    h("h2", {}, "Timeline"),
    h("div", { class: "timeline" }, axis(total), t.items.map((item) => row(item, start, total))),
  );
}

/** Microseconds since the epoch of an RFC 3339 time (nanoseconds kept to the µs). */
function rfc3339Us(text: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(text);
  if (!m) return Date.parse(text) * 1000;
  const fraction = (m[2] ?? "").padEnd(6, "0").slice(0, 6);
  return Date.parse(`${m[1]}${m[3]}`) * 1000 + Number(fraction);
}

/** The time axis over the rows: offsets from the request's first item. */
function axis(total: number): HTMLElement {
  const ruler = h("div", { class: "tl-track wf-ruler" });
  for (let i = 0; i <= 4; i++) {
    const tick = h("span", { class: "tick" }, duration((total * i) / 4 / 1000));
    tick.style.left = `${i * 25}%`;
    ruler.append(tick);
  }
  return h("div", { class: "tl-row tl-axis" }, h("div", { class: "tl-label" }), ruler);
}

function row(item: TimelineItem, start: number, total: number): HTMLElement {
  const offset = ((item.time_unix_nano - start) / total) * 100;
  const track = h("div", { class: "tl-track" });
  const color = serviceColor(item.service);
  let label: HTMLElement;
  if (item.kind === "span") {
    const bar = h("div", { class: item.error ? "bar err" : "bar" });
    bar.style.left = `${offset}%`;
    bar.style.width = `${Math.max((item.duration_ns / total) * 100, 0.2)}%`;
    bar.style.background = color;
    track.append(bar);
    label = h("div", { class: "tl-label" },
      h("span", { class: "svc" }, item.service), " ",
      link(`/trace/${item.trace_id}`, h("span", { class: "op" }, item.name)),
      item.error ? h("span", { class: "badge err" }, "error") : null,
      h("span", { class: "when" }, ` ${duration(item.duration_ns / 1000)}`));
  } else {
    const dot = h("div", { class: `tl-log sev-${severityBucket(item.severity_number).toLowerCase()}` });
    dot.style.left = `${offset}%`;
    track.append(dot);
    label = h("div", { class: "tl-label log" },
      h("span", { class: "svc" }, item.service), " ",
      h("span", { class: `sev sev-${severityBucket(item.severity_number).toLowerCase()}` }, item.severity), " ",
      h("span", { class: "body" }, item.body));
  }
  (label.firstChild as HTMLElement).style.color = color;
  return h("div", { class: `tl-row tl-kind-${item.kind}` }, label, track);
}
