// A stable colour per service, so a service looks the same on every page. Red means an
// error everywhere (--err, hue 0°), so no service gets a hue within 35° of it; the services
// the collector knows share that band evenly, in name order (eight services: 36° apart), so
// no two look alike; a service not known yet gets one from its name's hash.

/** The hues services may have: 35° to 325°, clear of the error colour's red. */
const LOW = 35;
const BAND = 290;

const known = new Map<string, number>();

/** Assigns hues to the services the collector knows (sorted, as /api/services lists them). */
export function knowServices(names: string[]): void {
  known.clear();
  const step = BAND / Math.max(names.length, 1);
  [...names].sort().forEach((name, i) => known.set(name, LOW + i * step));
}

/** The hue of a service's colour, in degrees. */
export function serviceHue(name: string): number {
  const hue = known.get(name);
  if (hue !== undefined) return hue;
  let hash = 2166136261;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  return LOW + ((hash >>> 0) % BAND);
}

export function serviceColor(name: string): string {
  return `hsl(${serviceHue(name).toFixed(1)} 55% 52%)`;
}

export const SEVERITY_COLORS: Record<string, string> = {
  TRACE: "#9aa5b1",
  DEBUG: "#7b8794",
  INFO: "#3e7bfa",
  WARN: "#f0a202",
  ERROR: "#d64545",
  FATAL: "#8e1b1b",
};

/** The OTel severity bucket of a severity number. */
export function severityBucket(n: number): string {
  if (n >= 21) return "FATAL";
  if (n >= 17) return "ERROR";
  if (n >= 13) return "WARN";
  if (n >= 9) return "INFO";
  if (n >= 5) return "DEBUG";
  return "TRACE";
}
