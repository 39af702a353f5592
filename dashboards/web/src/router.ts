// Pages by path, each with a URL that can be shared: the collector answers every page path
// with the same index.html, and this picks the page. Links inside the UI navigate without a
// reload; the back button works.

type Listener = () => void;
let listener: Listener = () => {};

export function onNavigate(l: Listener): void {
  listener = l;
  window.addEventListener("popstate", () => listener());
  document.addEventListener("click", (e) => {
    const a = (e.target as Element | null)?.closest?.("a[data-internal]") as HTMLAnchorElement | null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(a.getAttribute("href") ?? "/");
  });
}

export function navigate(url: string): void {
  history.pushState(null, "", url);
  listener();
}

export type Route =
  | { page: "search" }
  | { page: "trace"; id: string }
  | { page: "logs" }
  | { page: "correlation"; id: string }
  | { page: "map" }
  | { page: "red" }
  | { page: "graph" }
  | { page: "runs" }
  | { page: "missing" };

export function route(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case undefined:
    case "search":
      return { page: "search" };
    case "trace":
      return parts[1] ? { page: "trace", id: parts[1] } : { page: "missing" };
    case "correlation":
      return parts[1] ? { page: "correlation", id: parts[1] } : { page: "missing" };
    case "logs":
      return { page: "logs" };
    case "map":
      return { page: "map" };
    case "red":
      return { page: "red" };
    case "graph":
      return { page: "graph" };
    case "runs":
      return { page: "runs" };
    default:
      return { page: "missing" };
  }
}
