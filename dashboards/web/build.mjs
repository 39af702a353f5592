// Builds the UI into ../dist: app.js and app.css (minified, no source maps, licences of the
// bundled libraries kept at the end of each file) and index.html. The output is committed and
// embedded in the gauntlet binary; scripts/test.sh rebuilds it and fails if it differs, so
// the same sources and lockfile must give the same bytes.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const out = new URL("../dist/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, legalComments: "eof", logLevel: "warning", charset: "utf8" };
await build({ ...common, entryPoints: ["src/main.ts"], outfile: `${out}app.js`, format: "iife", target: "es2022" });
await build({ ...common, entryPoints: ["src/app.css"], outfile: `${out}app.css` });
copyFileSync("src/index.html", `${out}index.html`);
for (const f of ["index.html", "app.js", "app.css"]) {
  const bytes = readFileSync(`${out}${f}`);
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  console.log(`${f.padEnd(11)} ${kib(bytes.length).padStart(10)}  (${kib(gzipSync(bytes, { level: 9 }).length)} gzipped)`);
}
