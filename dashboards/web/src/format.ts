// Times and durations as people read them.

/** A duration given in microseconds: 850µs, 12.3ms, 4.56s, 2m 3s. */
export function duration(us: number): string {
  if (!Number.isFinite(us)) return "–";
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1_000_000) return `${trim(us / 1000)}ms`;
  if (us < 60_000_000) return `${trim(us / 1_000_000)}s`;
  const m = Math.floor(us / 60_000_000);
  return `${m}m ${Math.round((us - m * 60_000_000) / 1_000_000)}s`;
}

/** Milliseconds, as the RED and map answers give them. */
export function ms(value: number | null | undefined): string {
  return value === null || value === undefined ? "–" : duration(value * 1000);
}

function trim(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** A wall-clock time from microseconds since the epoch, in the browser's zone. */
export function time(us: number): string {
  const d = new Date(us / 1000);
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function percent(n: number): string {
  return `${n >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1)}%`;
}

/** Lookback choices shared by the pages that have a time window, in microseconds. */
export const LOOKBACKS: [string, number][] = [
  ["5m", 5 * 60e6],
  ["15m", 15 * 60e6],
  ["1h", 60 * 60e6],
  ["6h", 6 * 60 * 60e6],
  ["24h", 24 * 60 * 60e6],
  ["7d", 7 * 24 * 60 * 60e6],
];

export function lookbackUs(name: string | null, fallback = "1h"): number {
  const found = LOOKBACKS.find(([n]) => n === (name ?? fallback));
  return found ? found[1] : (LOOKBACKS.find(([n]) => n === fallback)?.[1] ?? 3600e6);
}

export function nowUs(): number {
  return Date.now() * 1000;
}
