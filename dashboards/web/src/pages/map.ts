// `/map`: the service map. Every service the store knows is a node (also those that call
// nobody); an edge is a caller → callee pair over the window, with the protocols its calls
// went over (when the spans say), its call rate, error rate and p99. Laid out by dagre; a
// node opens that service's traces.

import { Graph, layout } from "@dagrejs/dagre";
import { api, type DependencyLink, TOOL_SERVICES } from "../api";
import { serviceColor } from "../color";
import { h, notice, s } from "../dom";
import { LOOKBACKS, lookbackUs, ms, percent } from "../format";
import { navigate } from "../router";

const NODE_H = 36;
const LABEL_W = 150;
const LABEL_H = 34;
/** The protocol line above an edge's figures, when its spans name one. */
const PROTOCOL_H = 14;

export async function mapPage(root: HTMLElement, params: URLSearchParams): Promise<void> {
  const lookback = params.get("lookback") ?? "15m";
  const windowUs = lookbackUs(lookback, "15m");
  const [services, deps] = await Promise.all([api.services(), api.dependencies(Date.now(), windowUs / 1000)]);
  const choose = h("select", { name: "lookback", "aria-label": "window" },
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: n === lookback }, `last ${n}`)));
  choose.addEventListener("change", () => navigate(`/map?lookback=${choose.value}`));
  root.append(h("header", { class: "page-head" }, h("h1", {}, "Service map"), h("label", {}, "Window ", choose)));
  if (!services.length) {
    root.append(notice("info", "No services yet."));
    return;
  }
  if (deps.truncated) root.append(h("p", { class: "hint" }, "The window held more spans than one map reads: the oldest were left out."));
  const seconds = windowUs / 1e6;
  const unit = rateUnit(deps.data, seconds);
  root.append(draw(services, deps.data, seconds, unit));
  if (deps.data.some((l) => sampled(l))) {
    root.append(h("p", { class: "hint" }, `Calls from ${TOOL_SERVICES.join(" and ")} are counted from the share of spans they export (a sample), not every call.`));
  }
  root.append(edgeTable(deps.data, seconds, unit));
}

/** Edges from Gauntlet's own tools: they export only a sample of their spans. */
function sampled(l: DependencyLink): boolean {
  return (TOOL_SERVICES as readonly string[]).includes(l.parent);
}

function draw(services: string[], links: DependencyLink[], seconds: number, unit: Unit): HTMLElement {
  const g = new Graph({ multigraph: false });
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 70, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  const names = new Set([...services, ...links.flatMap((l) => [l.parent, l.child])]);
  for (const name of names) g.setNode(name, { width: Math.max(90, name.length * 8 + 28), height: NODE_H });
  for (const l of links) {
    if (l.parent !== l.child) g.setEdge(l.parent, l.child, { width: LABEL_W, height: labelHeight(l), labelpos: "c" });
  }
  layout(g);
  const graph = g.graph();
  const width = Math.ceil(graph.width ?? 600);
  const height = Math.ceil(graph.height ?? 300);
  const svg = s("svg", { class: "service-map", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "service map" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  for (const l of links) {
    if (l.parent === l.child) continue;
    const e = g.edge(l.parent, l.child) as { points: { x: number; y: number }[]; x: number; y: number };
    const d = e.points.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
    const errors = l.callCount ? (l.errorCount / l.callCount) * 100 : 0;
    // A box behind the label, so the line ends at it rather than running through the text;
    // the protocol line, when there is one, sits above the figures.
    const top = e.y - labelHeight(l) / 2;
    const y = top + labelHeight(l) - LABEL_H / 2;
    svg.append(s("g", { class: errors > 0 ? "edge has-errors" : "edge", "data-edge": `${l.parent}->${l.child}`, "data-protocols": l.protocols.join(",") },
      s("path", { d, "marker-end": "url(#arrow)" }),
      s("rect", { class: "label-box", x: e.x - LABEL_W / 2, y: top - 4, width: LABEL_W, height: labelHeight(l) + 4, rx: 4 }),
      l.protocols.length ? s("text", { x: e.x, y: top + 8, "text-anchor": "middle", class: "protocol" }, protocols(l)) : null,
      s("text", { x: e.x, y: y - 6, "text-anchor": "middle" }, `${l.callCount} calls${sampled(l) ? " (sampled)" : ""} · ${rate(l.callCount, seconds, unit)}`),
      s("text", { x: e.x, y: y + 10, "text-anchor": "middle", class: "sub" }, `${percent(errors)} errors · p99 ${ms(l.p99Ms)}`),
    ));
  }
  const calling = new Set(links.flatMap((l) => [l.parent, l.child]));
  for (const name of names) {
    const n = g.node(name);
    const rect = s("rect", { x: n.x - n.width / 2, y: n.y - n.height / 2, width: n.width, height: n.height, rx: 8 });
    (rect as SVGElement).style.stroke = serviceColor(name);
    // A service with no calls in the window (a tool, a registry's heartbeats) is drawn faint.
    const node = s("g", { class: calling.has(name) ? "node" : "node idle", "data-service": name, tabindex: 0, role: "link" },
      rect, s("text", { x: n.x, y: n.y + 5, "text-anchor": "middle" }, name),
      calling.has(name) ? null : s("title", {}, `${name}: no calls to or from other services in this window`));
    const open = () => navigate(`/search?service=${encodeURIComponent(name)}`);
    node.addEventListener("click", open);
    node.addEventListener("keydown", (e) => (e as KeyboardEvent).key === "Enter" && open());
    svg.append(node);
  }
  return h("div", { class: "map-wrap" }, svg);
}

function labelHeight(l: DependencyLink): number {
  return LABEL_H + (l.protocols.length ? PROTOCOL_H : 0);
}

/** The protocols an edge's calls went over, as people name them. */
function protocols(l: DependencyLink): string {
  const names: Record<string, string> = { http: "HTTP", jsonrpc: "JSON-RPC", grpc: "gRPC", rabbitmq: "RabbitMQ", kafka: "Kafka" };
  return l.protocols.map((p) => names[p] ?? p).join(" + ");
}

type Unit = "/s" | "/min";

/** One unit for the whole map: per second when any edge reaches one a second, else per minute. */
function rateUnit(links: DependencyLink[], seconds: number): Unit {
  return links.some((l) => l.callCount / seconds >= 1) ? "/s" : "/min";
}

function rate(calls: number, seconds: number, unit: Unit): string {
  const value = unit === "/s" ? calls / seconds : (calls / seconds) * 60;
  return `${value.toFixed(value >= 10 ? 0 : 1)}${unit}`;
}

function edgeTable(links: DependencyLink[], seconds: number, unit: Unit): HTMLElement {
  const sorted = [...links].sort((a, b) => b.callCount - a.callCount);
  return h("table", { class: "results" },
    h("thead", {}, h("tr", {}, ["Caller", "Callee", "Protocol", "Calls", "Rate", "Errors", "p99"].map((c) => h("th", {}, c)))),
    h("tbody", {}, sorted.map((l) => h("tr", {},
      h("td", {}, l.parent), h("td", {}, l.child), h("td", {}, protocols(l)),
      h("td", { class: "num" }, String(l.callCount)),
      h("td", { class: "num" }, rate(l.callCount, seconds, unit)),
      h("td", { class: "num" }, l.errorCount ? `${l.errorCount} (${percent((l.errorCount / l.callCount) * 100)})` : "0"),
      h("td", { class: "num" }, ms(l.p99Ms)),
    ))));
}
