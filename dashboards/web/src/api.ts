// One way to call the collector's query API. The answers' types are generated from the Rust
// types the collector serves (collector/api, by ts-rs) into api-types.ts; nothing here
// declares them again.

import type {
  Dependencies,
  ExemplarSeries,
  PromResponse,
  QueryData,
  Envelope,
  ErrorBody,
  LogPage,
  Markers,
  Red,
  Tag,
  Timeline,
  Trace,
} from "./api-types";

export type * from "./api-types";
export { CORRELATION_KEYS, TOOL_SERVICES } from "./api-types";

/** A failed call: the HTTP status and the collector's own message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The message of a Prometheus-shaped error answer, when it was one. */
    readonly promError: string | null = null,
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
    const promError = (body as { error?: unknown } | null)?.error;
    const msg = (body as ErrorBody | null)?.errors?.[0]?.msg ?? (typeof promError === "string" ? promError : response.statusText);
    throw new ApiError(response.status, msg, typeof promError === "string" ? promError : null);
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
  markers: async (q: Query) => (await get<Markers>("/api/v1/markers", q)).data,
  /** A PromQL query over a window (`start`, `end` in seconds, `step` in seconds). */
  promRange: (query: string, start: number, end: number, step: number, signal?: AbortSignal) =>
    prom<QueryData>("/api/v1/query_range", { query, start, end, step }, signal),
  /** A PromQL query's value now. */
  promInstant: (query: string) => prom<QueryData>("/api/v1/query", { query }),
  /** The exemplars of the series a query selects, in the window (seconds). */
  exemplars: (query: string, start: number, end: number) =>
    prom<ExemplarSeries[]>("/api/v1/query_exemplars", { query, start, end }),
  /** Every value of a label (`__name__`: every metric name). */
  labelValues: (name: string) => prom<string[]>(`/api/v1/label/${encodeURIComponent(name)}/values`, {}),
  /** The label sets of the series a selector picks in the window (seconds). */
  series: (match: string, start: number, end: number) =>
    prom<Record<string, string>[]>("/api/v1/series", { "match[]": match, start, end }),
};

/** A call to the Prometheus-shaped part of the API: its errors are `{status, errorType,
 * error}`, not Jaeger's envelope. */
async function prom<T>(path: string, query: Query, signal?: AbortSignal): Promise<T> {
  let body: PromResponse<T>;
  try {
    body = await get<PromResponse<T>>(path, query, signal);
  } catch (e) {
    if (e instanceof ApiError && e.promError) throw new ApiError(e.status, e.promError);
    throw e;
  }
  if (body.status === "error") throw new ApiError(400, body.error);
  return body.data;
}

/** A tag's value by key, as a string. */
export function tagValue(tags: Tag[], key: string): string | undefined {
  const t = tags.find((t) => t.key === key);
  return t === undefined ? undefined : String(t.value);
}
