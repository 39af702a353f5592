//! OTLP/JSON decoding. The `opentelemetry-proto` serde support handles hex IDs, camelCase
//! and 64-bit integers as strings or numbers; the spec also lets enums be given by name
//! (`"kind": "SPAN_KIND_SERVER"`), which it does not, so names are turned into numbers first.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses an OTLP/JSON body into the protobuf type `T`; the error says where it went wrong.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    if !value.is_object() {
        return Err("invalid OTLP/JSON: the body must be a JSON object".into());
    }
    enum_names_to_numbers(&mut value);
    check_metric_data(&value)?;
    serde_json::from_value(value).map_err(|e| format!("invalid OTLP/JSON: {e}"))
}

/// The metric kinds' keys in OTLP/JSON (`Metric.data`, a oneof).
const METRIC_DATA_KEYS: [&str; 5] = [
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
];

/// `Metric.data` is a flattened optional oneof in `opentelemetry-proto`'s serde, and serde
/// reads a flattened option that fails to parse as absent: a histogram with one mistyped
/// field would vanish without a word. So each metric that has a data key is read on its
/// own first, and its error named.
fn check_metric_data(value: &Value) -> Result<(), String> {
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, Gauge, Histogram, Sum, Summary,
    };
    let list = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for rm in list(value, "resourceMetrics") {
        for sm in list(&rm, "scopeMetrics") {
            for m in list(&sm, "metrics") {
                for key in METRIC_DATA_KEYS {
                    let Some(data) = m.get(key) else { continue };
                    let data = data.clone();
                    let read = match key {
                        "gauge" => serde_json::from_value::<Gauge>(data).map(drop),
                        "sum" => serde_json::from_value::<Sum>(data).map(drop),
                        "histogram" => serde_json::from_value::<Histogram>(data).map(drop),
                        "exponentialHistogram" => {
                            serde_json::from_value::<ExponentialHistogram>(data).map(drop)
                        }
                        _ => serde_json::from_value::<Summary>(data).map(drop),
                    };
                    if let Err(e) = read {
                        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                        return Err(format!(
                            "invalid OTLP/JSON: metric {name:?}, its {key}: {e}"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn enum_names_to_numbers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if let Value::String(name) = child
                    && let Some(n) = enum_number(key, name)
                {
                    *child = Value::from(n);
                    continue;
                }
                enum_names_to_numbers(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(enum_names_to_numbers),
        _ => {}
    }
}

/// The number of an enum given by name, for the enum-typed fields of traces, logs and metrics.
fn enum_number(key: &str, name: &str) -> Option<i32> {
    const SPAN_KINDS: [&str; 6] = [
        "SPAN_KIND_UNSPECIFIED",
        "SPAN_KIND_INTERNAL",
        "SPAN_KIND_SERVER",
        "SPAN_KIND_CLIENT",
        "SPAN_KIND_PRODUCER",
        "SPAN_KIND_CONSUMER",
    ];
    const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
    const SEVERITIES: [&str; 25] = [
        "SEVERITY_NUMBER_UNSPECIFIED",
        "SEVERITY_NUMBER_TRACE",
        "SEVERITY_NUMBER_TRACE2",
        "SEVERITY_NUMBER_TRACE3",
        "SEVERITY_NUMBER_TRACE4",
        "SEVERITY_NUMBER_DEBUG",
        "SEVERITY_NUMBER_DEBUG2",
        "SEVERITY_NUMBER_DEBUG3",
        "SEVERITY_NUMBER_DEBUG4",
        "SEVERITY_NUMBER_INFO",
        "SEVERITY_NUMBER_INFO2",
        "SEVERITY_NUMBER_INFO3",
        "SEVERITY_NUMBER_INFO4",
        "SEVERITY_NUMBER_WARN",
        "SEVERITY_NUMBER_WARN2",
        "SEVERITY_NUMBER_WARN3",
        "SEVERITY_NUMBER_WARN4",
        "SEVERITY_NUMBER_ERROR",
        "SEVERITY_NUMBER_ERROR2",
        "SEVERITY_NUMBER_ERROR3",
        "SEVERITY_NUMBER_ERROR4",
        "SEVERITY_NUMBER_FATAL",
        "SEVERITY_NUMBER_FATAL2",
        "SEVERITY_NUMBER_FATAL3",
        "SEVERITY_NUMBER_FATAL4",
    ];
    const TEMPORALITIES: [&str; 3] = [
        "AGGREGATION_TEMPORALITY_UNSPECIFIED",
        "AGGREGATION_TEMPORALITY_DELTA",
        "AGGREGATION_TEMPORALITY_CUMULATIVE",
    ];
    let table: &[&str] = match key {
        "kind" => &SPAN_KINDS,
        "aggregationTemporality" => &TEMPORALITIES,
        "code" => &STATUS_CODES,
        "severityNumber" => &SEVERITIES,
        _ => return None,
    };
    table.iter().position(|n| *n == name).map(|i| i as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn enum_names_ids_in_any_case_and_unknown_fields_are_accepted() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103d269b633813fc60c","spanId":"EEE19B7EC3C1B174",
            "name":"x","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"1544712660000000000",
            "endTimeUnixNano":1544712661000000000,"status":{"code":"STATUS_CODE_ERROR"},
            "someFutureField":{"nested":[1,2]}}]}]}],"alsoUnknown":true}"#;
        let req: ExportTraceServiceRequest = decode(body).expect("decodes");
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.kind, 3);
        assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    }

    #[test]
    fn attribute_named_kind_is_left_alone() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"01","spanId":"02",
            "attributes":[{"key":"kind","value":{"stringValue":"SPAN_KIND_SERVER"}}]}]}]}]}"#;
        let req: ExportTraceServiceRequest = decode(body).expect("decodes");
        let attr = &req.resource_spans[0].scope_spans[0].spans[0].attributes[0];
        assert_eq!(attr.key, "kind");
    }

    #[test]
    fn broken_json_says_where() {
        let err =
            decode::<ExportTraceServiceRequest>(b"{\"resourceSpans\": [").expect_err("broken");
        assert!(err.starts_with("invalid JSON"), "{err}");
        let err = decode::<ExportTraceServiceRequest>(b"[1]").expect_err("not an object");
        assert!(err.contains("JSON object"), "{err}");
    }
}
