//! OpenTelemetry names → Prometheus names, by the OpenTelemetry–Prometheus compatibility
//! specification as Prometheus' own OTLP translator applies it: the name split into words
//! at anything not a letter or digit, the unit's words added (`s` → `seconds`, `By` →
//! `bytes`, `X/Y` → `X_per_Y`, annotations in braces dropped), `total` last on a
//! monotonic sum, `ratio` on a gauge of unit `1`; label names with `_` for what Prometheus
//! does not allow; `service.name` (with `service.namespace/`) → `job`,
//! `service.instance.id` → `instance`, the other resource attributes on `target_info`.

use crate::model::{Attributes, MetricKind, Resource};

/// The Prometheus name of a metric (histograms and summaries add `_bucket`, `_sum` and
/// `_count` to it).
pub fn metric_name(name: &str, unit: &str, kind: MetricKind) -> String {
    let mut words: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let unit = strip_annotations(unit);
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), p.trim()),
        None => (unit.trim(), ""),
    };
    let main = clean(unit_word(main));
    if !main.is_empty() && !words.contains(&main) {
        words.extend(main.split('_').map(str::to_string));
    }
    let per = clean(per_unit_word(per));
    if !per.is_empty() && !words.contains(&per) {
        words.push("per".into());
        words.push(per);
    }
    match kind {
        MetricKind::Counter => {
            words.retain(|w| w != "total");
            words.push("total".into());
        }
        MetricKind::Gauge | MetricKind::UpDownSum
            if unit.trim() == "1" && !words.iter().any(|w| w == "ratio") =>
        {
            words.push("ratio".into());
        }
        _ => {}
    }
    let joined = words.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{joined}")
    } else {
        joined
    }
}

/// A Prometheus label name for an attribute key.
pub fn label_name(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    let clean: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{clean}")
    } else if clean.starts_with('_') && !clean.starts_with("__") {
        format!("key{clean}")
    } else {
        clean
    }
}

/// `job` and `instance` from a resource, as Prometheus' OTLP translator takes them.
pub fn job_and_instance(resource: &Resource) -> (String, Option<String>) {
    let text = |key| resource.attributes.get(key).map(|v| v.text().into_owned());
    let job = match text("service.namespace") {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", resource.service),
        _ => resource.service.clone(),
    };
    (job, text("service.instance.id").filter(|i| !i.is_empty()))
}

/// The labels of a series (without `__name__`), sorted: job, instance, then the point
/// attributes. Attributes whose names become the same label have their values joined by
/// `;` in key order, as the translator does.
pub fn series_labels(resource: &Resource, attributes: &Attributes) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = Vec::with_capacity(attributes.len() + 2);
    let mut pairs: Vec<(&str, String)> = attributes
        .iter()
        .map(|(k, v)| (k, v.text().into_owned()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in pairs {
        let name = label_name(key);
        if name.is_empty() || name == "__name__" {
            continue;
        }
        match labels.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push(';');
                v.push_str(&value);
            }
            None => labels.push((name, value)),
        }
    }
    // The resource's identity wins over a point attribute of the same name.
    let (job, instance) = job_and_instance(resource);
    labels.retain(|(n, _)| n != "job" && n != "instance");
    labels.push(("job".into(), job));
    if let Some(instance) = instance {
        labels.push(("instance".into(), instance));
    }
    labels.retain(|(_, v)| !v.is_empty());
    labels.sort();
    labels
}

/// The resource attributes `target_info` carries: all but those that made `job` and
/// `instance`.
pub fn target_info_attributes(resource: &Resource) -> Attributes {
    resource
        .attributes
        .iter()
        .filter(|(k, _)| {
            !matches!(
                *k,
                "service.name" | "service.namespace" | "service.instance.id"
            )
        })
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// A float as Prometheus writes it in `le` and `quantile` labels and in answers (Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)`).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn strip_annotations(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    let mut depth = 0;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// Letters and digits kept, runs of anything else one `_`, none at the ends.
fn clean(word: &str) -> String {
    word.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    #[test]
    fn names_follow_the_compatibility_spec() {
        use MetricKind::*;
        let cases = [
            (
                "http.server.request.duration",
                "s",
                Histogram,
                "http_server_request_duration_seconds",
            ),
            (
                "http.server.active_requests",
                "{request}",
                UpDownSum,
                "http_server_active_requests",
            ),
            ("app.requests", "{request}", Counter, "app_requests_total"),
            ("requests_total", "1", Counter, "requests_total"),
            (
                "process.memory.usage",
                "By",
                Gauge,
                "process_memory_usage_bytes",
            ),
            ("cpu.utilization", "1", Gauge, "cpu_utilization_ratio"),
            ("throughput", "By/s", Gauge, "throughput_bytes_per_second"),
            ("latency_seconds", "s", Histogram, "latency_seconds"),
            ("2xx.count", "", Counter, "_2xx_count_total"),
            (
                "db.client.connections.usage",
                "{connection}",
                UpDownSum,
                "db_client_connections_usage",
            ),
            ("weird unit", "furlongs", Gauge, "weird_unit_furlongs"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(metric_name(name, unit, kind), want, "{name} [{unit}]");
        }
    }

    #[test]
    fn labels_are_sanitized_and_job_and_instance_come_from_the_resource() {
        let resource = Resource {
            service: "checkout".into(),
            attributes: [
                ("service.name", Value::from("checkout")),
                ("service.namespace", Value::from("shop")),
                ("service.instance.id", Value::from("c-1")),
                ("host.name", Value::from("h")),
            ]
            .into_iter()
            .collect(),
        };
        let attrs: Attributes = [
            ("http.request.method", Value::from("GET")),
            ("2nd", Value::from(2i64)),
            ("_private", Value::from(true)),
            ("a.b", Value::from("x")),
            ("a_b", Value::from("y")),
            ("job", Value::from("ignored")),
        ]
        .into_iter()
        .collect();
        let labels = series_labels(&resource, &attrs);
        let want: Vec<(String, String)> = [
            ("a_b", "x;y"),
            ("http_request_method", "GET"),
            ("instance", "c-1"),
            ("job", "shop/checkout"),
            ("key_2nd", "2"),
            ("key_private", "true"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(labels, want);
        let info = target_info_attributes(&resource);
        assert_eq!(info.len(), 1);
        assert_eq!(info.get("host.name"), Some(&Value::from("h")));
    }

    #[test]
    fn floats_are_written_as_prometheus_writes_them() {
        assert_eq!(format_float(0.005), "0.005");
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(2.5), "2.5");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(1e21), "1000000000000000000000");
    }
}
