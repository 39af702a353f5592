// Debian's Chromium, headless, for the browser checks and the benchmark: launched with the
// flags this machine's closed network needs (no background fetches, no QUIC probes), and
// closed (with its temporary profile) when a check fails and the script exits.
import { chromium } from "playwright-core";

export async function launch(executablePath) {
  const browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const closeOnFailure = async (e) => {
    await browser.close().catch(() => {});
    console.error(e);
    process.exit(1);
  };
  process.on("uncaughtException", closeOnFailure);
  process.on("unhandledRejection", closeOnFailure);
  return browser;
}
