// A trace as a tree of spans, its rows in waterfall order, and its critical path: the chain
// of work that decided how long the whole trace took (Jaeger's definition: walking back from
// the end, the last-finishing child at each moment, and the parent's own time between them).

import { type Span, type Trace, tagValue } from "./api";

export interface Node {
  span: Span;
  service: string;
  depth: number;
  children: Node[];
  error: boolean;
  end: number;
}

export interface Model {
  roots: Node[];
  /** Every node, depth first, children by start time: the waterfall's rows. */
  rows: Node[];
  start: number;
  end: number;
  services: string[];
}

export function build(trace: Trace): Model {
  const byId = new Map<string, Node>();
  for (const span of trace.spans) {
    byId.set(span.spanID, {
      span,
      service: trace.processes[span.processID]?.serviceName ?? "?",
      depth: 0,
      children: [],
      error: tagValue(span.tags, "error") === "true",
      end: span.startTime + span.duration,
    });
  }
  const roots: Node[] = [];
  for (const node of byId.values()) {
    const parent = node.span.references.find((r) => r.refType === "CHILD_OF" && r.traceID === node.span.traceID);
    const parentNode = parent ? byId.get(parent.spanID) : undefined;
    // A parent that never arrived (or a cycle's first step) leaves the span a root.
    if (parentNode && parentNode !== node) parentNode.children.push(node);
    else roots.push(node);
  }
  const byStart = (a: Node, b: Node) => a.span.startTime - b.span.startTime || a.span.spanID.localeCompare(b.span.spanID);
  roots.sort(byStart);
  const rows: Node[] = [];
  const seen = new Set<Node>();
  // Iterative, so a 10,000-deep chain cannot overflow the stack.
  const stack: Node[] = [...roots].reverse();
  for (const r of roots) r.depth = 0;
  while (stack.length) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    rows.push(node);
    node.children.sort(byStart);
    for (let i = node.children.length - 1; i >= 0; i--) {
      const child = node.children[i];
      child.depth = node.depth + 1;
      stack.push(child);
    }
  }
  let start = Infinity;
  let end = -Infinity;
  for (const n of byId.values()) {
    start = Math.min(start, n.span.startTime);
    end = Math.max(end, n.end);
  }
  const services = [...new Set([...byId.values()].map((n) => n.service))].sort();
  return { roots, rows, start, end, services };
}

/** One stretch of the critical path: `[start, end)` of one span's own time. */
export interface Segment {
  spanID: string;
  start: number;
  end: number;
}

export function criticalPath(model: Model): Segment[] {
  const root = model.roots.reduce<Node | undefined>((best, n) => (!best || n.end > best.end ? n : best), undefined);
  if (!root) return [];
  const out: Segment[] = [];
  // Explicit stack of (node, cursor) frames instead of recursion, for deep traces.
  walk(root, root.end, out);
  return out.sort((a, b) => a.start - b.start);
}

function walk(top: Node, topCursor: number, out: Segment[]): void {
  const frames: { node: Node; cursor: number; kids: Node[]; i: number }[] = [];
  const push = (node: Node, cursor: number) =>
    frames.push({ node, cursor: Math.min(cursor, node.end), kids: [...node.children].sort((a, b) => b.end - a.end), i: 0 });
  push(top, topCursor);
  while (frames.length) {
    const f = frames[frames.length - 1];
    const start = f.node.span.startTime;
    let descended = false;
    while (f.i < f.kids.length && f.cursor > start) {
      const child = f.kids[f.i++];
      if (child.span.startTime >= f.cursor) continue;
      const childEnd = Math.min(child.end, f.cursor);
      if (childEnd < f.cursor) out.push({ spanID: f.node.span.spanID, start: childEnd, end: f.cursor });
      f.cursor = Math.max(child.span.startTime, start);
      push(child, childEnd);
      descended = true;
      break;
    }
    if (descended) continue;
    if (f.cursor > start) out.push({ spanID: f.node.span.spanID, start, end: f.cursor });
    frames.pop();
  }
}
