// Runs from their markers: a load run, a chaos experiment or a `gauntlet run` suite is the
// markers that share its run ID (`gauntlet.run_id`); its start and stop make its window and
// its markers' failures its verdict. Used by the runs page and the RED page's marked windows.

import type { Marker } from "./api";

/** One run and its markers. */
export interface Run {
  id: string | null;
  kind: string;
  name: string;
  /** Microseconds since the epoch. */
  start: number;
  end: number;
  failed: boolean;
  /** `passed`, `failed` or `aborted` as the run said it; otherwise from `failed`. */
  verdict: string;
  /** Why, when the run said so (a suite's reason). */
  reason: string | null;
  thresholds: Marker[];
  trace: string;
}

const LABEL_KEYS = ["gauntlet.suite", "gauntlet.experiment", "gauntlet.scenarios", "gauntlet.scenario"];

function text(m: Marker, key: string): string | undefined {
  const v = m.attributes[key];
  return typeof v === "string" ? v : undefined;
}

/** Markers grouped by their run, oldest first. A marker of no run is a run of its own. */
export function runs(markers: Marker[]): Run[] {
  const byRun = new Map<string, Marker[]>();
  markers.forEach((m, i) => {
    const key = m.run_id ?? `single-${i}`;
    byRun.set(key, [...(byRun.get(key) ?? []), m]);
  });
  return [...byRun.values()].map((ms) => {
    const first = ms.reduce((a, b) => (b.time < a.time ? b : a));
    const label = ms.map((m) => LABEL_KEYS.map((k) => text(m, k)).find((v) => v !== undefined)).find((v) => v !== undefined);
    const failed = ms.some((m) => m.failed);
    const said = ms.map((m) => text(m, "gauntlet.verdict") ?? text(m, "gauntlet.status")).find((v) => v !== undefined);
    return {
      id: first.run_id,
      kind: first.kind,
      name: label ?? first.name.replace(/\.(start|stop)$/, ""),
      start: Math.min(...ms.map((m) => m.time)),
      end: Math.max(...ms.map((m) => Math.max(m.end, m.time))),
      failed,
      verdict: said === "aborted" || said === "interrupted" ? "aborted" : failed ? "failed" : "passed",
      reason: ms.map((m) => text(m, "gauntlet.reason")).find((v) => v !== undefined) ?? null,
      thresholds: ms.filter((m) => typeof m.attributes["gauntlet.threshold.expr"] === "string"),
      trace: first.trace_id,
    };
  }).sort((a, b) => a.start - b.start);
}

/** The RED page over exactly a run's window (a little margin each side). */
export function redLink(run: Run, service = "gateway"): string {
  const margin = 5e6;
  const q = new URLSearchParams({ service, start: String(Math.round(run.start - margin)), end: String(Math.round(run.end + margin)) });
  return `/red?${q}`;
}
