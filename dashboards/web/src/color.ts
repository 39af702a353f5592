// A stable colour per service, so a service looks the same on every page.

export function serviceColor(name: string): string {
  let hash = 2166136261;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 16777619);
  }
  const hue = (hash >>> 0) % 360;
  return `hsl(${hue} 55% 52%)`;
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
