// The UI's performance in headless Chromium against a running collector: a 5,000-span trace
// page, and trace search over whatever the store holds (scripts/bench-ui.sh fills it with a
// million traces first). Each page is timed from navigation to painted, beside the API call
// it makes measured alone in the same run (the floor the page cannot beat).
//
//   node test/bench.mjs --base http://127.0.0.1:PORT --otlp http://127.0.0.1:PORT [--runs 7]
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { launch } from "./chromium.mjs";

const { values: arg } = parseArgs({
  options: {
    base: { type: "string" },
    otlp: { type: "string" },
    runs: { type: "string", default: "7" },
    spans: { type: "string", default: "5000" },
    chromium: { type: "string", default: process.env.CHROMIUM ?? "/usr/bin/chromium" },
  },
});
assert.ok(arg.base && arg.otlp, "--base and --otlp are required");
const runs = Number(arg.runs);
const hex = (n) => randomBytes(n).toString("hex");

// One trace of N spans over four services: a root, fan-out children, chains below them.
const traceId = hex(16);
const n = Number(arg.spans);
const ids = Array.from({ length: n }, () => hex(8));
const start = BigInt(Date.now()) * 1_000_000n;
const services = ["batch", "orders", "inventory", "payments"];
const spans = services.map(() => []);
for (let i = 0; i < n; i++) {
  const parent = i === 0 ? "" : i % 5 === 1 ? ids[0] : ids[i - 1];
  const s = start + BigInt(i) * 200_000n;
  const d = i === 0 ? BigInt(n) * 200_000n + 1_000_000n : 150_000n + BigInt(i % 7) * 10_000n;
  spans[i % services.length].push({
    traceId, spanId: ids[i], parentSpanId: parent, name: `step ${i % 50}`, kind: i === 0 ? 2 : 1,
    startTimeUnixNano: String(s), endTimeUnixNano: String(s + d),
    attributes: [{ key: "batch.item", value: { intValue: String(i) } }],
  });
}
for (const [k, service] of services.entries()) {
  const r = await fetch(`${arg.otlp}/v1/traces`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: "service.name", value: { stringValue: service } }] }, scopeSpans: [{ spans: spans[k] }] }] }),
  });
  assert.ok(r.ok, `export refused: ${r.status}`);
}
for (let i = 0; ; i++) {
  const t = await (await fetch(`${arg.base}/api/traces/${traceId}`)).json().catch(() => null);
  if (t?.data?.[0]?.spans?.length === n) break;
  assert.ok(i < 300, "the big trace was never stored whole");
  await new Promise((r) => setTimeout(r, 100));
}

const browser = await launch(arg.chromium);
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });

async function pageMs(path) {
  const t = performance.now();
  await page.goto(`${arg.base}${path}`);
  await page.waitForSelector("main[data-ready]", { timeout: 60_000 });
  assert.equal(await page.$("main .notice.error"), null, `${path} failed`);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  return performance.now() - t;
}
let lastCount = 0;
async function apiMs(path) {
  const t = performance.now();
  const r = await fetch(`${arg.base}${path}`);
  const body = await r.json();
  assert.ok(r.ok, `${path}: ${r.status}`);
  const ms = performance.now() - t;
  lastCount = Array.isArray(body.data) ? (path.startsWith("/api/traces/") ? body.data[0].spans.length : body.data.length) : 0;
  return ms;
}
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], max: s[s.length - 1] };
};

// The filled store's traces carry the ingest benchmark's own clock: search the hour before
// its newest gateway trace.
const newest = (await (await fetch(`${arg.base}/api/traces?service=gateway&limit=1`)).json()).data?.[0];
assert.ok(newest, "the store holds gateway traces (scripts/bench-ui.sh fills it)");
const end = Math.max(...newest.spans.map((s) => s.startTime + s.duration)) + 1;
const win = `start=${end - 3600e6}&end=${end}`;
const tag = encodeURIComponent('{"http.response.status_code":"500"}');
const cases = [
  [`trace page, ${n} spans`, `/trace/${traceId}`, `/api/traces/${traceId}`],
  ["search gateway, 50 traces", `/search?service=gateway&limit=50&${win}`, `/api/traces?service=gateway&limit=50&${win}`],
  ["search gateway, 500 traces", `/search?service=gateway&limit=500&${win}`, `/api/traces?service=gateway&limit=500&${win}`],
  ["search gateway + tag, 50", `/search?service=gateway&limit=50&tags=${tag}&${win}`, `/api/traces?service=gateway&limit=50&tags=${tag}&${win}`],
];
console.log(`figure: ${runs} runs each; median (max) ms; page = navigation to painted, api = its main call alone`);
for (const [name, path, apiPath] of cases) {
  await pageMs(path); // warm: the bundle cached, the store's pages in memory
  const p = []; const a = [];
  for (let i = 0; i < runs; i++) { p.push(await pageMs(path)); a.push(await apiMs(apiPath)); }
  const ps = stats(p); const as = stats(a);
  const rows = await page.$$eval(".wf-row, table.results tbody tr, .log-line", (els) => els.length);
  const marks = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType("mark").map((m) => [m.name, m.startTime])));
  if (marks["trace:fetched"]) {
    const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd);
    console.log(`figure:   last run: page script ready ${nav.toFixed(0)} ms, data in ${marks["trace:fetched"].toFixed(0)}, ` +
      `tree ${(marks["trace:built"] - marks["trace:fetched"]).toFixed(0)} ms, first screen of rows at ${marks["trace:first-rows"].toFixed(0)}, ` +
      `every row at ${marks["trace:rows"].toFixed(0)} ms`);
  }
  console.log(`figure: ${name.padEnd(28)} ${String(lastCount).padStart(5)} items, ${String(rows).padStart(5)} rows drawn  page ${ps.median.toFixed(0).padStart(5)} (${ps.max.toFixed(0)})  ` +
    `api ${as.median.toFixed(0).padStart(5)} (${as.max.toFixed(0)})  page/api ${(ps.median / as.median).toFixed(2)}`);
}
await browser.close();
