// The collector's query API as types, and one way to call it. The shapes mirror the Rust
// answers in collector/src/query/: Jaeger's trace JSON, the logs and correlation answers,
// dependencies, RED series and markers.

export interface Tag {
  key: string;
  type: string;
  value: string | number | boolean;
}
export interface Reference {
  refType: "CHILD_OF" | "FOLLOWS_FROM";
  traceID: string;
  spanID: string;
}
export interface SpanEvent {
  timestamp: number;
  fields: Tag[];
}
export interface Span {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Reference[];
  startTime: number;
  duration: number;
  tags: Tag[];
  logs: SpanEvent[];
  processID: string;
}
export interface Process {
  serviceName: string;
  tags: Tag[];
}
export interface Trace {
  traceID: string;
  spans: Span[];
  processes: Record<string, Process>;
}
export interface LogEntry {
  time: string;
  time_unix_nano: number;
  service: string;
  severity: string;
  severity_number: number;
  body: string;
  attributes: Record<string, unknown> | null;
  resource: Record<string, unknown> | null;
  scope: string;
  event_name: string;
  trace_id: string | null;
  span_id: string | null;
  correlation_id: string | null;
}
export interface LogPage {
  data: LogEntry[];
  next_cursor: string | null;
}
export interface TimelineSpan {
  kind: "span";
  time_unix_nano: number;
  service: string;
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  span_kind: string;
  duration_ns: number;
  error: boolean;
  correlation_id: string | null;
}
export type TimelineItem = TimelineSpan | (LogEntry & { kind: "log" });
export interface TraceSummary {
  trace_id: string;
  start: string;
  duration_ns: number;
  root_service: string | null;
  root_operation: string | null;
  span_count: number;
  error: boolean;
}
export interface Timeline {
  correlation_id: string;
  traces: string[];
  services: string[];
  trace_summaries: TraceSummary[];
  items: TimelineItem[];
  truncated: boolean;
}
export interface DependencyLink {
  parent: string;
  child: string;
  callCount: number;
  errorCount: number;
  p99Ms: number;
}
export interface Dependencies {
  data: DependencyLink[];
  truncated: boolean;
}
export interface RedPoint {
  time: number;
  requests: number;
  rate: number;
  errors: number;
  error_pct: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}
export interface RedSeries {
  operation: string | null;
  points: RedPoint[];
}
export interface Red {
  service: string;
  operation: string | null;
  start: number;
  end: number;
  step: number;
  series: RedSeries[];
  truncated: boolean;
}
export interface Marker {
  kind: string;
  name: string;
  run_id: string | null;
  time: number;
  end: number;
  failed: boolean;
  trace_id: string;
  attributes: Record<string, unknown>;
}

interface Envelope<T> {
  data: T;
  errors: { code: number; msg: string }[] | null;
}

/** A failed call: the HTTP status and the collector's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = "gauntlet.token";

/** The bearer token for a collector started with --auth-token, kept for this tab only. */
export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

type Query = Record<string, string | number | null | undefined>;

export async function get<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== null && v !== undefined && v !== "") params.set(k, String(v));
  }
  const url = params.size ? `${path}?${params}` : path;
  const headers: Record<string, string> = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  let response: Response;
  try {
    response = await fetch(url, { headers, signal: signal ?? null });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, `the collector did not answer (${String(e)}); is it still running?`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const msg = (body as Envelope<unknown> | null)?.errors?.[0]?.msg ?? response.statusText;
    throw new ApiError(response.status, msg);
  }
  return body as T;
}

export const api = {
  services: async () => (await get<Envelope<string[]>>("/api/services")).data,
  operations: async (service: string) =>
    (await get<Envelope<string[]>>(`/api/services/${encodeURIComponent(service)}/operations`)).data,
  traces: async (q: Query, signal?: AbortSignal) => (await get<Envelope<Trace[]>>("/api/traces", q, signal)).data,
  trace: async (id: string) => (await get<Envelope<Trace[]>>(`/api/traces/${encodeURIComponent(id)}`)).data[0],
  logs: (q: Query, signal?: AbortSignal) => get<LogPage>("/api/v1/logs", q, signal),
  correlation: (id: string) => get<Timeline>(`/api/v1/correlations/${encodeURIComponent(id)}`),
  dependencies: (endTs: number, lookbackMs: number) =>
    get<Dependencies>("/api/dependencies", { endTs, lookback: lookbackMs }),
  red: (q: Query) => get<Red>("/api/v1/red", q),
  markers: async (q: Query) => (await get<{ data: Marker[] }>("/api/v1/markers", q)).data,
};

/** A tag's value by key, as a string. */
export function tagValue(tags: Tag[], key: string): string | undefined {
  const t = tags.find((t) => t.key === key);
  return t === undefined ? undefined : String(t.value);
}

/** Attribute keys under which the collector finds a correlation ID. */
export const CORRELATION_KEYS = ["correlation_id", "correlation.id", "app.correlation_id"];
