// Drives Debian's Chromium (headless, through playwright-core) over a running collector's UI
// and saves screenshots. Two phases:
//
//   node test/browser.mjs --phase demo --base http://127.0.0.1:PORT --correlation ID --out DIR
//     every page over the demo's own traffic, asserting on the rendered DOM;
//   node test/browser.mjs --phase hostile --base URL --xss-trace ID --xss-service NAME \
//        --big-trace ID --big-spans N --out DIR
//     stored <script>/<img onerror> payloads stay text; a large trace's render is timed.
//
// Exits 1 with the failed check's message; prints one `figure:` line per measurement.
// Run by tests/ui.rs (cargo test), which starts the demo and stores the data first.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { parseArgs } from "node:util";
import { launch } from "./chromium.mjs";

const { values: arg } = parseArgs({
  options: {
    phase: { type: "string" },
    base: { type: "string" },
    correlation: { type: "string" },
    "xss-trace": { type: "string" },
    "xss-service": { type: "string" },
    "big-trace": { type: "string" },
    "big-spans": { type: "string" },
    otlp: { type: "string" },
    "token-base": { type: "string" },
    token: { type: "string" },
    out: { type: "string", default: "target/ui-screenshots" },
    chromium: { type: "string", default: process.env.CHROMIUM ?? "/usr/bin/chromium" },
  },
});
const needs = { demo: ["base", "correlation"], hostile: ["base", "otlp", "xss-trace", "xss-service", "big-trace", "big-spans", "token-base", "token"] };
assert.ok(needs[arg.phase], "--phase is demo or hostile");
for (const k of needs[arg.phase]) assert.ok(arg[k], `--${k} is required`);
mkdirSync(arg.out, { recursive: true });

const browser = await launch(arg.chromium);
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
page.on("dialog", async (d) => {
  problems.push(`a dialog opened (${d.type()}: ${d.message()}): a payload executed`);
  await d.dismiss();
});

/** Opens a UI path and waits until the page says it is done (or failed). */
async function open(path) {
  await page.goto(`${arg.base}${path}`);
  await page.waitForSelector("main[data-ready]", { timeout: 20_000 });
  const error = await page.$("main .notice.error");
  assert.equal(error, null, `${path} showed an error: ${error && (await error.textContent())}`);
}
/** Polls a query API path until `ok` holds for its JSON (metrics arrive every few seconds). */
async function waitForApi(path, ok, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const body = await (await page.request.get(`${arg.base}${path}`)).json().catch(() => null);
    if (body && ok(body)) return body;
    assert.ok(Date.now() < deadline, `${what} did not arrive within 30 s: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
const shot = (name) => page.screenshot({ path: `${arg.out}/${name}.png`, fullPage: false });
const texts = (sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent ?? ""));

async function demoPhase() {
// Search: the demo's gateway traces, a scatter plot and a result list.
await open("/search?service=gateway&lookback=1h");
const results = await texts("table.results tbody tr");
assert.ok(results.length >= 5, `search listed ${results.length} traces`);
assert.ok(results.some((r) => r.includes("POST /api/orders")), "an order placement is among the results");
assert.ok(await page.$(".scatter canvas"), "the scatter plot is drawn");
await shot("search");

// Trace: the declined order's gateway trace, found from its correlation timeline.
const timeline = await (await page.request.get(`${arg.base}/api/v1/correlations/${encodeURIComponent(arg.correlation)}`)).json();
const orderTrace = timeline.trace_summaries.find((t) => t.root_service === "gateway")?.trace_id;
assert.ok(orderTrace, "the declined order has a gateway trace");
await open(`/trace/${orderTrace}`);
const rows = await texts(".wf-row .wf-name");
for (const expected of ["gateway", "orders", "payments", "inventory"]) {
  assert.ok(rows.some((r) => r.includes(expected)), `the waterfall shows a ${expected} span`);
}
assert.ok(rows.some((r) => r.includes("POST /api/orders")), "the root span's name is shown");
assert.ok((await page.$$(".wf-row.on-critical")).length >= 2, "the critical path is marked");
// The payment was declined: the call that got the 402 is marked as failed.
const failed = await texts(".wf-row:has(.badge.err) .wf-name");
assert.ok(failed.some((r) => r.includes("payments")), `the declined payment's call is marked (failed rows: ${failed.join(" | ")})`);
assert.ok(await page.$(`.facts a[href="/correlation/${encodeURIComponent(arg.correlation)}"]`), "a link to the request's timeline");
// Collapsing the root hides every other row; expanding shows them again.
const visible = () => page.$$eval(".wf-row", (els) => els.filter((e) => !e.hidden).length);
const all = await visible();
await page.click(".wf-row .twisty");
assert.equal(await visible(), 1, "collapsing the root leaves one row");
await page.click(".wf-row .twisty");
assert.equal(await visible(), all, "expanding shows every row again");
// A span's details: attributes, status, its logs.
await page.click(".wf-row .wf-line .op");
const details = await page.textContent(".span-details");
assert.match(details, /http\.request\.method|http\.method/, "the root span's attributes are shown");
// No service is drawn in the error colour's red: every bar's hue is 30° or more from it,
// and no two services of this trace share a hue.
const barHues = await page.$$eval(".wf-row", (rows) => rows.map((r) => {
  const bar = r.querySelector(".wf-timeline .bar");
  const name = r.querySelector(".wf-name .svc")?.textContent ?? "";
  const [red, green, blue] = (getComputedStyle(bar).backgroundColor.match(/\d+(\.\d+)?/g) ?? []).map(Number);
  const max = Math.max(red, green, blue), min = Math.min(red, green, blue);
  const d = max - min || 1;
  let hue = max === red ? ((green - blue) / d) % 6 : max === green ? (blue - red) / d + 2 : (red - green) / d + 4;
  hue = (hue * 60 + 360) % 360;
  return [name, hue];
}));
const byService = new Map(barHues);
for (const [service, hue] of byService) {
  const fromRed = Math.min(hue, 360 - hue);
  assert.ok(fromRed >= 30, `${service} is drawn at hue ${hue.toFixed(0)}°, ${fromRed.toFixed(0)}° from the error red`);
}
const hues = [...byService.values()].sort((a, b) => a - b);
for (let i = 1; i < hues.length; i++) {
  assert.ok(hues[i] - hues[i - 1] >= 20, `two services look alike (hues ${hues.map((h) => h.toFixed(0)).join(", ")})`);
}
await shot("trace");

// Logs: the explorer with its histogram; a filter by correlation ID narrows to the request.
await open("/logs?lookback=1h");
assert.ok((await texts(".log-line")).length > 0, "logs are listed");
assert.ok(await page.$(".chart canvas"), "the severity histogram is drawn");
await open(`/logs?correlation_id=${encodeURIComponent(arg.correlation)}&lookback=1h`);
const requestLogs = await page.$$eval(".log-line .refs a[href^='/correlation/']", (as) => as.map((a) => a.getAttribute("href")));
assert.ok(requestLogs.length > 0, "the request's logs are found by its correlation ID");
assert.ok(requestLogs.every((h) => h === `/correlation/${encodeURIComponent(arg.correlation)}`), "and only its logs");
await shot("logs");

// Correlation: the declined order across services and its asynchronous hops.
await open(`/correlation/${encodeURIComponent(arg.correlation)}`);
const items = await texts(".tl-row .tl-label");
for (const service of ["gateway", "orders", "payments", "notifications"]) {
  assert.ok(items.some((t) => t.includes(service)), `the timeline holds ${service}`);
}
assert.ok((await page.$$(".tl-row.tl-kind-log")).length > 0, "the timeline holds logs");
await shot("correlation");

// Map: every service is a node; the gateway calls orders.
const services = (await (await page.request.get(`${arg.base}/api/services`)).json()).data;
await open("/map?lookback=1h");
const nodes = await page.$$eval(".service-map .node", (ns) => ns.map((n) => n.getAttribute("data-service")));
for (const s of services) assert.ok(nodes.includes(s), `the map has a node for ${s}`);
const edges = await page.$$eval(".service-map .edge", (es) => es.map((e) => e.getAttribute("data-edge")));
assert.ok(edges.includes("gateway->orders"), `the map shows gateway → orders (edges: ${edges.join(", ")})`);
// Each edge is labelled with what its calls went over, as the called spans say: the
// gateway reads notifications over JSON-RPC, orders over plain HTTP.
const protocolOf = (edge) => page.$eval(`.service-map .edge[data-edge="${edge}"]`,
  (e) => [e.getAttribute("data-protocols"), e.querySelector("text.protocol")?.textContent ?? ""]);
assert.deepEqual(await protocolOf("gateway->notifications"), ["jsonrpc", "JSON-RPC"], "the JSON-RPC edge says so");
assert.deepEqual(await protocolOf("gateway->orders"), ["http", "HTTP"], "an HTTP edge says so");
assert.deepEqual(await protocolOf("mobile-bff->inventory"), ["grpc", "gRPC"], "the gRPC edge says so");
await shot("map");
await page.click('.service-map .node[data-service="orders"]');
await page.waitForSelector("main[data-ready]");
assert.equal(new URL(page.url()).pathname, "/search", "a node opens that service's traces");
assert.equal(new URL(page.url()).searchParams.get("service"), "orders");

// RED: three charts for the gateway and a row per operation.
await open("/red?service=gateway&lookback=5m");
assert.equal((await page.$$(".red-charts canvas")).length, 3, "rate, errors and duration charts");
assert.ok((await texts("table.results tbody tr")).some((r) => r.includes("POST /api/orders")), "a row per operation");
const marks = await texts(".markers li");
// One row per run (its start, stop and verdicts together), with its verdict.
const loadRuns = marks.filter((m) => m.startsWith("load"));
assert.equal(loadRuns.length, 1, `the load run is one row (markers: ${marks.join(" | ")})`);
assert.match(loadRuns[0], /passed|failed/, "with its verdict");
// The charts zoom to where the data and the marked runs are, not the whole 5-minute window.
const [lo, hi] = (await page.getAttribute(".red-charts .chart", "data-range")).split(",").map(Number);
assert.ok(hi - lo < 0.9 * 300, `the charts span ${hi - lo} s of the 300 s window`);
await shot("red");

// The gateway's upstreams from its exported metrics (they arrive every 5 s: wait for them).
await waitForApi(`/api/v1/query?query=${encodeURIComponent('gauntlet_circuit_breaker_state{job=~".*/gateway"}')}`,
  (b) => b.data.result.length > 0, "the gateway's breaker gauges");
await open("/red?service=gateway&lookback=5m");
const upstreams = await page.$$eval("table.upstreams tbody tr", (rs) => rs.map((r) => r.getAttribute("data-upstream")));
assert.ok(upstreams.includes("inventory"), `the gateway's upstreams: ${upstreams.join(", ")}`);
assert.equal(await page.textContent('table.upstreams tr[data-upstream="inventory"] td:nth-child(2)'), "closed", "its breaker is closed");

// Metrics: a PromQL query over the demo's exported metrics, one line per service.
const perJob = "sum by (job) (rate(http_server_request_duration_seconds_count[1m]))";
await waitForApi(`/api/v1/query?query=${encodeURIComponent(perJob)}`,
  (b) => b.data.result.some((r) => r.metric.job === "gauntlet-demo/gateway"), "two exports of the gateway's HTTP durations");
await open(`/graph?${new URLSearchParams({ query: perJob, lookback: "5m" })}`);
assert.ok(await page.$(".page-graph .chart canvas"), "the query's chart is drawn");
const jobs = await texts("table.series .series-name");
assert.ok(jobs.some((j) => j.includes('job="gauntlet-demo/gateway"')), `a line per job: ${jobs.join(" | ")}`);
await shot("graph");
// Picking a metric fills the box; a label and value add a matcher.
await page.selectOption('select[name="metric"]', "http_server_request_duration_seconds_count");
await page.waitForFunction(() => !document.querySelector('select[name="label"]').disabled);
await page.selectOption('select[name="label"]', "job");
await page.waitForFunction(() => !document.querySelector('select[name="value"]').disabled);
await page.selectOption('select[name="value"]', "gauntlet-demo/gateway");
assert.equal(await page.inputValue('textarea[name="query"]'), 'http_server_request_duration_seconds_count{job="gauntlet-demo/gateway"}');
// A query the collector refuses says why, in Prometheus' words (the browser logs the 400
// itself: that one console line is expected).
const before = problems.length;
await page.goto(`${arg.base}/graph?${new URLSearchParams({ query: "sum(rate(x[5m])" })}`);
await page.waitForSelector("main[data-ready]");
assert.match(await page.textContent("main .notice.error"), /refused the query: invalid parameter "query"/);
problems.splice(before, problems.length - before,
  ...problems.slice(before).filter((p) => !p.includes("status of 400 (Bad Request)")));

// Runs: the load run, with its verdict, opening the RED page over exactly its window.
await open("/runs");
const runRows = await page.$$eval("table.runs tbody tr", (rs) => rs.map((r) => ({
  kind: r.getAttribute("data-kind"), text: r.textContent ?? "",
  red: r.querySelector('a[href^="/red"]')?.getAttribute("href") ?? "" })));
const loadRow = runRows.filter((r) => r.kind === "load");
assert.equal(loadRow.length, 1, `one load run (rows: ${runRows.map((r) => r.text).join(" | ")})`);
assert.match(loadRow[0].text, /passed/, "with its verdict");
const redUrl = new URL(loadRow[0].red, "http://x");
const [winStart, winEnd] = [Number(redUrl.searchParams.get("start")), Number(redUrl.searchParams.get("end"))];
assert.ok(winStart > 0 && winEnd > winStart && winEnd - winStart < 300e6, `a fixed window of the run: ${loadRow[0].red}`);
await shot("runs");
await page.click('table.runs tbody tr[data-kind="load"] a[href^="/red"]');
await page.waitForSelector("main[data-ready]");
assert.equal((await page.$$(".red-charts canvas")).length, 3, "the run's window on RED");
const [wlo, whi] = (await page.getAttribute(".red-charts .chart", "data-range")).split(",").map(Number);
assert.ok(wlo >= winStart / 1e6 - 1 && whi <= winEnd / 1e6 + 1, `the charts stay in the run's window: ${wlo}..${whi}`);

}

async function hostilePhase() {
// Payloads stay text: the service, span names, attributes and log bodies hold markup.
const payloadTexts = ["<script>window.__pwned=1</script>", "<img src=x onerror=\"window.__pwned=1\">"];
for (const path of [`/trace/${arg["xss-trace"]}`, `/search?service=${encodeURIComponent(arg["xss-service"])}`,
  `/logs?trace_id=${arg["xss-trace"]}`, "/map?lookback=1h"]) {
  await open(path);
  if (path.startsWith("/trace/")) await page.click(".wf-row .wf-line .op");
  const body = await page.textContent("body");
  assert.ok(payloadTexts.some((p) => body.includes(p)), `${path}: the payload is shown as text`);
  assert.equal(await page.evaluate(() => window.__pwned), undefined, `${path}: a payload ran`);
  assert.equal(await page.$("main script, main img"), null, `${path}: a payload became an element`);
}
await shot("payloads");

// A large trace: time from navigation to the rendered waterfall.
// Live tail: a log sent after the page opened appears without a reload.
const tailService = `tail-probe-${Date.now()}`;
await open(`/logs?service=${tailService}&tail=1&lookback=5m`);
const body = `arrived while tailing ${Math.random()}`;
const sent = await fetch(`${arg.otlp}/v1/logs`, {
  method: "POST", headers: { "content-type": "application/json" },
  body: JSON.stringify({ resourceLogs: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: tailService } }] },
    scopeLogs: [{ logRecords: [{ timeUnixNano: String(BigInt(Date.now()) * 1_000_000n), severityNumber: 9, body: { stringValue: body } }] }] }] }),
});
assert.ok(sent.ok, `the tail probe's log was refused: ${sent.status}`);
await page.waitForFunction((b) => [...document.querySelectorAll(".log-line .body")].some((e) => e.textContent === b), body, { timeout: 15_000 });

// An exemplar (a measurement with the trace it was made in) opens its trace from the
// Metrics page. Metric names are not checked for markup: they are metric names.
const nowNs = BigInt(Date.now()) * 1_000_000n;
const spanId = "00f067aa0ba902b7";
const metricSent = await fetch(`${arg.otlp}/v1/metrics`, {
  method: "POST", headers: { "content-type": "application/json" },
  body: JSON.stringify({ resourceMetrics: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: "exemplar-probe" } }] },
    scopeMetrics: [{ metrics: [{ name: "probe.latency", unit: "s", gauge: { dataPoints: [{ timeUnixNano: String(nowNs), asDouble: 0.25,
      exemplars: [{ timeUnixNano: String(nowNs - 1_000_000n), asDouble: 0.25, traceId: arg["big-trace"], spanId }] }] } }] }] }] }),
});
assert.ok(metricSent.ok, `the exemplar's metric was refused: ${metricSent.status} ${await metricSent.text()}`);
await open(`/graph?${new URLSearchParams({ query: "probe_latency_seconds", lookback: "5m" })}`);
assert.ok(await page.$(`table.exemplars a[href="/trace/${arg["big-trace"]}"]`), "the exemplar links its trace");

// A collector with --auth-token: the page asks for the token, refuses a wrong one, then works.
const before = problems.length;
await page.goto(`${arg["token-base"]}/search`);
await page.waitForSelector("main[data-ready]");
assert.ok(await page.$(".token-form"), "a token is asked for");
await page.fill(".token-form input", "not-the-token");
await page.click(".token-form button");
await page.waitForSelector(".token-form .notice.error", { timeout: 10_000 });
await page.fill(".token-form input", arg.token);
await page.click(".token-form button");
await page.waitForFunction(() => document.querySelector("main[data-ready]") && !document.querySelector(".token-form"), null, { timeout: 10_000 });
assert.match(await page.textContent("main"), /No traces yet/, "with the token the page answers (an empty collector)");
// The two refused calls (no token, the wrong one) are expected here, and only they.
const refused = problems.splice(before);
assert.equal(refused.length, 2, `two 401s, and nothing else: ${refused.join(" | ")}`);
assert.ok(refused.every((p) => p.includes("401")), refused.join(" | "));

// Three loads; each split into the API's answer (resource timing) and the rest (parse,
// build, DOM, first paint of what is on screen).
const runs = [];
for (let i = 0; i < 3; i++) {
  const started = Date.now();
  await open(`/trace/${arg["big-trace"]}`);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const total = Date.now() - started;
  assert.equal((await page.$$(".wf-row")).length, Number(arg["big-spans"]), "every span is a row");
  const apiMs = await page.evaluate(() => {
    const e = performance.getEntriesByType("resource").find((r) => r.name.includes("/api/traces/"));
    return e ? e.responseEnd - e.startTime : NaN;
  });
  const buildMs = Number(await page.getAttribute("main .page", "data-render-ms"));
  runs.push({ total, apiMs, buildMs });
}
const fmt = (k) => runs.map((r) => r[k].toFixed(0)).join(", ");
console.log(`figure: trace page with ${arg["big-spans"]} spans, navigation to painted: ${fmt("total")} ms; ` +
  `of which the API answer ${fmt("apiMs")} ms, tree and DOM ${fmt("buildMs")} ms`);
await shot("big-trace");
}

if (arg.phase === "demo") await demoPhase();
else await hostilePhase();

assert.deepEqual(problems, [], "the pages ran without errors");
await browser.close();
console.log(`ui: ${arg.phase} phase checked`);
