// The UI's entry: the navigation bar, the token prompt for a collector started with
// --auth-token, and the page the URL names.

import { ApiError, api, setToken, token } from "./api";
import { knowServices } from "./color";
import { clear, h, link, notice } from "./dom";
import { correlationPage } from "./pages/correlation";
import { graphPage } from "./pages/graph";
import { logsPage } from "./pages/logs";
import { mapPage } from "./pages/map";
import { redPage } from "./pages/red";
import { runsPage } from "./pages/runs";
import { searchPage } from "./pages/search";
import { tracePage } from "./pages/trace";
import { onNavigate, route } from "./router";

const NAV: [string, string][] = [
  ["/search", "Traces"],
  ["/logs", "Logs"],
  ["/map", "Service map"],
  ["/red", "RED"],
  ["/graph", "Metrics"],
  ["/runs", "Runs"],
];

const main = h("main", { id: "page" });
const nav = h("nav", {},
  h("span", { class: "brand" }, "gauntlet"),
  NAV.map(([href, label]) => link(href, label)),
  h("form", { class: "jump" }, h("input", { name: "id", placeholder: "trace or correlation ID", "aria-label": "jump to ID", size: "36" })),
);
document.body.append(nav, main);
nav.querySelector("form")!.addEventListener("submit", (e) => {
  e.preventDefault();
  const input = (e.target as HTMLFormElement).elements.namedItem("id") as HTMLInputElement;
  const id = input.value.trim();
  if (!id) return;
  const target = /^[0-9a-f]{32}$/i.test(id) ? `/trace/${id.toLowerCase()}` : `/correlation/${encodeURIComponent(id)}`;
  history.pushState(null, "", target);
  show();
});

let current: AbortController | null = null;
let servicesKnown = false;

/** Gives every service the collector knows its colour, once. A refusal (401: the token is
 * missing or wrong) is the page's failure: it asks for the token, with no second doomed
 * call; any other failure leaves the name-hash colours and lets the page say what is wrong. */
async function learnServices(): Promise<void> {
  if (servicesKnown) return;
  try {
    knowServices(await api.services());
    servicesKnown = true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) throw e;
  }
}

async function show(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const r = route(location.pathname);
  const params = new URLSearchParams(location.search);
  for (const a of nav.querySelectorAll("a")) {
    a.classList.toggle("active", location.pathname.startsWith(a.getAttribute("href") ?? "?"));
  }
  clear(main);
  main.dataset.page = r.page;
  main.removeAttribute("data-ready");
  const page = h("div", { class: `page page-${r.page}` });
  main.append(page);
  document.title = `${r.page} · gauntlet`;
  try {
    await learnServices();
    switch (r.page) {
      case "search":
        await searchPage(page, params, controller.signal);
        break;
      case "trace":
        document.title = `trace ${r.id.slice(0, 8)} · gauntlet`;
        await tracePage(page, r.id);
        break;
      case "logs":
        await logsPage(page, params, controller.signal);
        break;
      case "correlation":
        document.title = `request ${r.id} · gauntlet`;
        await correlationPage(page, r.id);
        break;
      case "map":
        await mapPage(page, params);
        break;
      case "red":
        await redPage(page, params);
        break;
      case "graph":
        await graphPage(page, params, controller.signal);
        break;
      case "runs":
        await runsPage(page, params);
        break;
      case "missing":
        page.append(notice("error", "No such page. ", link("/search", "Search traces"), "."));
    }
  } catch (e) {
    if (controller.signal.aborted) return;
    clear(page);
    page.append(failure(e));
  }
  if (current === controller) main.dataset.ready = "true";
}

function failure(e: unknown): HTMLElement {
  if (e instanceof ApiError && e.status === 401) {
    const input = h("input", { type: "password", name: "token", autocomplete: "current-password", "aria-label": "token" });
    const form = h("form", { class: "token-form" },
      h("p", {}, "This collector requires a token (it was started with --auth-token or GAUNTLET_AUTH_TOKEN)."),
      input, h("button", { type: "submit" }, "Use token"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      setToken(input.value.trim() || null);
      void show();
    });
    if (token()) form.prepend(notice("error", "The token given was refused."));
    return form;
  }
  const message = e instanceof Error ? e.message : String(e);
  return notice("error", message);
}

onNavigate(() => void show());
void show();
