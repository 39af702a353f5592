// Generated from collector/api (gauntlet-query-api) by ts-rs: do not edit.
// cargo run -p gauntlet-query-api --features typescript --example typescript

export type Envelope<T> = { data: T, total: number, limit: number, offset: number, errors: Array<ErrorItem> | null, };

export type ErrorItem = { code: number, msg: string, };

export type ErrorBody = { data: null | null, total: number, limit: number, offset: number, errors: Array<ErrorItem>, };

export type AttributeValue = boolean | number | number | string | Array<AttributeValue> | { [key in string]: AttributeValue };

export type SpanKind = "" | "internal" | "server" | "client" | "producer" | "consumer";

export type Trace = { traceID: string, spans: Array<Span>, processes: { [key in string]: Process }, warnings: Array<string> | null, };

export type Process = { serviceName: string, 
/**
 * Resource attributes other than `service.name`.
 */
tags: Array<Tag>, };

export type Span = { traceID: string, spanID: string, operationName: string, 
/**
 * The parent (`CHILD_OF`) and the span's links (`FOLLOWS_FROM`).
 */
references: Array<Reference>, flags: number, 
/**
 * Microseconds since the epoch.
 */
startTime: number, 
/**
 * Microseconds.
 */
duration: number, 
/**
 * Attributes, plus `span.kind`, `error`, `otel.status_code`, `otel.status_description`
 * and `otel.scope.*` as Jaeger's OTLP mapping adds them.
 */
tags: Array<Tag>, 
/**
 * Span events: the name in the field `event`, then the event's attributes.
 */
logs: Array<SpanLog>, processID: string, warnings: Array<string> | null, };

export type RefType = "CHILD_OF" | "FOLLOWS_FROM";

export type Reference = { refType: RefType, traceID: string, spanID: string, };

export type SpanLog = { 
/**
 * Microseconds since the epoch.
 */
timestamp: number, fields: Array<Tag>, };

export type Tag = { key: string, } & ({ "type": "string", "value": string } | { "type": "bool", "value": boolean } | { "type": "int64", "value": number } | { "type": "float64", "value": number } | { "type": "binary", "value": string });

export type TagValue = { "type": "string", "value": string } | { "type": "bool", "value": boolean } | { "type": "int64", "value": number } | { "type": "float64", "value": number } | { "type": "binary", "value": string };

export type Operation = { name: string, spanKind: SpanKind, };

export type LogEntry = { 
/**
 * RFC 3339, UTC, nanosecond precision.
 */
time: string, time_unix_nano: number, service: string, 
/**
 * The record's severity text, or the name its number gives (`INFO`, `WARN`, ...).
 */
severity: string, severity_number: number, 
/**
 * The body as text: a string body as it is, any other value as JSON.
 */
body: string, attributes: { [key in string]: AttributeValue }, 
/**
 * Resource attributes (with `service.name`).
 */
resource: { [key in string]: AttributeValue }, scope: string, event_name: string, trace_id: string | null, span_id: string | null, correlation_id: string | null, };

export type LogPage = { data: Array<LogEntry>, 
/**
 * Give it back as `cursor` for the next (older) page; `null` on the last page.
 */
next_cursor: LogCursor | null, errors: Array<ErrorItem> | null, };

export type LogCursor = string;

export type Timeline = { correlation_id: string, 
/**
 * IDs of the traces that carry the correlation ID.
 */
traces: Array<string>, 
/**
 * Every service that took part, sorted.
 */
services: Array<string>, trace_summaries: Array<TraceSummary>, 
/**
 * Spans and logs in time order.
 */
items: Array<TimelineItem>, 
/**
 * More items than the limit: the latest were left out.
 */
truncated: boolean, };

export type TimelineItem = { "kind": "span" } & TimelineSpan | { "kind": "log" } & LogEntry;

export type TimelineSpan = { 
/**
 * RFC 3339 start.
 */
time: string, time_unix_nano: number, service: string, trace_id: string, span_id: string, parent_span_id: string | null, name: string, span_kind: SpanKind, duration_ns: number, error: boolean, correlation_id: string | null, 
/**
 * The spans this one links to (a consumer's link to its message's producer).
 */
links: Array<SpanLink>, };

export type SpanLink = { trace_id: string, span_id: string, attributes: { [key in string]: AttributeValue }, };

export type TraceSummary = { trace_id: string, 
/**
 * RFC 3339.
 */
start: string, duration_ns: number, root_service: string | null, root_operation: string | null, span_count: number, error: boolean, };

export type Red = { service: string, operation: string | null, 
/**
 * The `service.version` asked for; all versions together when `null`.
 */
version: string | null, 
/**
 * The window and the step, in microseconds as Jaeger's API gives times.
 */
start: number, end: number, step: number, 
/**
 * The whole service first (`operation: null`) and then each operation, busiest first;
 * or only the operation asked for.
 */
series: Array<RedSeries>, 
/**
 * The window held more requests than one answer reads: the oldest were not counted.
 */
truncated: boolean, };

export type RedSeries = { operation: string | null, points: Array<RedPoint>, };

export type RedPoint = { 
/**
 * Microseconds since the epoch.
 */
time: number, requests: number, 
/**
 * Requests per second.
 */
rate: number, errors: number, 
/**
 * Percentage of requests that failed (0 when there were none).
 */
error_pct: number, 
/**
 * Requests refused as too many (HTTP 429): not errors of the server's, but no answer
 * for the caller either, so a rate-limit storm shows as one.
 */
throttled: number, throttled_pct: number, 
/**
 * Duration percentiles in milliseconds (`null` with no requests).
 */
p50_ms: number | null, p95_ms: number | null, p99_ms: number | null, };

export type Dependencies = { data: Array<DependencyLink>, total: number, limit: number, offset: number, errors: Array<ErrorItem> | null, truncated: boolean, };

export type DependencyLink = { parent: string, child: string, callCount: number, errorCount: number, 
/**
 * The p99 of the called spans' durations, in milliseconds.
 */
p99Ms: number, 
/**
 * What the calls were carried by, as the called spans say (`http`, `jsonrpc`, `grpc`,
 * `rabbitmq`, ...: their `rpc.system`, else `messaging.system`, else `http` for an HTTP
 * span), sorted; empty when they say nothing (e.g. an event feed's consumer).
 */
protocols: Array<string>, };

export type Markers = { data: Array<Marker>, total: number, };

export type Marker = { kind: MarkerKind, name: string, 
/**
 * The run it belongs to ([`RUN_ID_KEY`]), shared by its start and stop.
 */
run_id: string | null, 
/**
 * Microseconds since the epoch.
 */
time: number, end: number, 
/**
 * A breached threshold, a deviated experiment.
 */
failed: boolean, trace_id: string, 
/**
 * The marker's attributes (the experiment's title, the threshold, ...).
 */
attributes: { [key in string]: AttributeValue }, };

export type MarkerKind = "load" | "chaos" | "run";

export type PromResponse<T> = { "status": "success", data: T, warnings?: Array<string>, } | { "status": "error", errorType: PromErrorType, error: string, };

export type PromErrorType = "bad_data" | "execution" | "unavailable" | "internal";

export type QueryData = { "resultType": "vector", "result": Array<VectorSample> } | { "resultType": "matrix", "result": Array<MatrixSeries> } | { "resultType": "scalar", "result": SamplePair } | { "resultType": "string", "result": SamplePair };

export type SamplePair = [number, string];

export type VectorSample = { metric: { [key in string]: string }, value: SamplePair, };

export type MatrixSeries = { metric: { [key in string]: string }, values: Array<SamplePair>, };

export type ExemplarSeries = { seriesLabels: { [key in string]: string }, exemplars: Array<ExemplarData>, };

export type ExemplarData = { labels: { [key in string]: string }, 
/**
 * As Prometheus writes sample values.
 */
value: string, 
/**
 * Seconds since the epoch.
 */
timestamp: number, };

/** Attribute keys under which the collector finds a correlation ID. */
export const CORRELATION_KEYS = ["correlation_id", "correlation.id", "app.correlation_id"] as const;

/** The services Gauntlet's own tools report as (they export a sample of their spans). */
export const TOOL_SERVICES = ["gauntlet-loadgen", "gauntlet-chaos", "gauntlet-run"] as const;
