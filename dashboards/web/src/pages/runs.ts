// `/runs?lookback=`: every load run, chaos experiment and `gauntlet run` suite the collector
// holds markers of, newest first, with its verdict, its window on the RED page and the trace
// of its markers.

import { api } from "../api";
import { h, link, notice } from "../dom";
import { LOOKBACKS, lookbackUs, ms, nowUs, time } from "../format";
import { navigate } from "../router";
import { redLink, runs } from "../runs-model";

export async function runsPage(root: HTMLElement, params: URLSearchParams): Promise<void> {
  const lookback = params.get("lookback") ?? "24h";
  const end = nowUs();
  const start = end - lookbackUs(lookback, "24h");
  const choose = h("select", { name: "lookback", "aria-label": "window" },
    LOOKBACKS.map(([n]) => h("option", { value: n, selected: n === lookback }, `last ${n}`)));
  choose.addEventListener("change", () => navigate(`/runs?lookback=${choose.value}`));
  root.append(h("header", { class: "page-head" }, h("h1", {}, "Runs"), h("label", {}, "Window ", choose)));
  const all = runs(await api.markers({ start, end, limit: 1500 })).reverse();
  if (!all.length) {
    root.append(notice("info", `No load run, experiment or suite in the last ${lookback}. `,
      "Runs appear here when `gauntlet load run --otlp`, `gauntlet chaos run` or `gauntlet run` send their markers to this collector."));
    return;
  }
  root.append(h("table", { class: "results runs" },
    h("thead", {}, h("tr", {}, ["Kind", "Run", "Started", "Took", "Verdict", ""].map((c) => h("th", {}, c)))),
    h("tbody", {}, all.map((r) => {
      const kept = r.thresholds.filter((t) => !t.failed).length;
      return h("tr", { class: r.failed ? "failed run" : "run", "data-run": r.id ?? "", "data-kind": r.kind },
        h("td", {}, h("span", { class: `badge ${r.kind}` }, r.kind)),
        h("td", {}, r.name, r.reason ? h("div", { class: "hint" }, r.reason) : null),
        h("td", {}, time(r.start)),
        h("td", { class: "num" }, ms((r.end - r.start) / 1000)),
        h("td", {}, h("span", { class: r.failed ? "badge err verdict" : "badge ok verdict" }, r.verdict),
          r.thresholds.length ? h("span", { class: "kv" }, ` ${kept}/${r.thresholds.length} thresholds kept`) : null),
        h("td", {}, link(redLink(r), "RED in its window"), " · ", link(`/trace/${r.trace}`, "markers")),
      );
    }))));
}
