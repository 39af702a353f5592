//! Metrics in ClickHouse: the OpenTelemetry Collector exporter's five tables
//! (`otel_metrics_gauge`, `_sum`, `_histogram`, `_exponential_histogram`, `_summary`),
//! column for column, so a table either writer filled reads the same. Points are written as
//! received (delta sums and histograms too, with their `AggregationTemporality`); a
//! resource's `target_info` is a row of the gauge table, as Gauntlet's translation makes it.
//!
//! Reading for PromQL: the series are the distinct identities of the tables' rows (name,
//! service, resource, scope, attributes, kind), named by the same translation as at ingest;
//! their IDs are a fixed hash of that identity. A window's points are read per table for the
//! asked metric names; delta rows are summed from the oldest kept, so each point read is a
//! running total as Prometheus wants.

use std::collections::{HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::rows::{Attributes, from_map, to_map};
use crate::model::{
    MetricKind, MetricPoint, MetricSeries, PointValue, Resource, Temporality, UNKNOWN_SERVICE, hex,
};
use crate::promql::naming;
use crate::store::{MetricSeriesInfo, PointQuery, SeriesPoints, StoredExemplar, StoredPoint};

pub const GAUGE: &str = "otel_metrics_gauge";
pub const SUM: &str = "otel_metrics_sum";
pub const HISTOGRAM: &str = "otel_metrics_histogram";
pub const EXP_HISTOGRAM: &str = "otel_metrics_exponential_histogram";
pub const SUMMARY: &str = "otel_metrics_summary";
pub const TABLES: [&str; 5] = [GAUGE, SUM, HISTOGRAM, EXP_HISTOGRAM, SUMMARY];

const COMMON_COLUMNS: &str = "
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),";

const EXEMPLARS: &str = "
    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),";

const INDEXES: &str = "
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1";

/// Each table's own columns, between the common ones and the indexes, as the exporter has
/// them.
pub fn own_columns(table: &str) -> String {
    match table {
        GAUGE => format!(
            "\n    Value Float64 CODEC(ZSTD(1)),\n    Flags UInt32 CODEC(ZSTD(1)),{EXEMPLARS}"
        ),
        SUM => format!(
            "\n    Value Float64 CODEC(ZSTD(1)),\n    Flags UInt32 CODEC(ZSTD(1)),{EXEMPLARS}
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),"
        ),
        HISTOGRAM => format!(
            "
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),{EXEMPLARS}
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),"
        ),
        EXP_HISTOGRAM => format!(
            "
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),{EXEMPLARS}
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),"
        ),
        _ => "
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested(
        Quantile Float64,
        Value Float64
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),"
            .to_string(),
    }
}

/// The body of a metrics table's `CREATE TABLE`, from its columns to its sort key; the
/// caller adds the name, engine and TTL as for the other tables.
pub fn table_body(table: &str) -> String {
    format!("({COMMON_COLUMNS}{}{INDEXES}\n)", own_columns(table))
}

pub const ORDER_BY: &str = "PARTITION BY toDate(TimeUnix)\nORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))";

/// The columns Gauntlet reads and writes, with their types as `system.columns` has them.
pub const REQUIRED: &[(&str, &[(&str, &str)])] = &[
    (
        GAUGE,
        &[
            ("ResourceAttributes", "Map(LowCardinality(String), String)"),
            ("ServiceName", "LowCardinality(String)"),
            ("MetricName", "String"),
            ("Attributes", "Map(LowCardinality(String), String)"),
            ("TimeUnix", "DateTime64(9)"),
            ("Value", "Float64"),
            ("Flags", "UInt32"),
        ],
    ),
    (
        SUM,
        &[
            ("ResourceAttributes", "Map(LowCardinality(String), String)"),
            ("ServiceName", "LowCardinality(String)"),
            ("MetricName", "String"),
            ("Attributes", "Map(LowCardinality(String), String)"),
            ("TimeUnix", "DateTime64(9)"),
            ("Value", "Float64"),
            ("AggregationTemporality", "Int32"),
            ("IsMonotonic", "Bool"),
        ],
    ),
    (
        HISTOGRAM,
        &[
            ("ResourceAttributes", "Map(LowCardinality(String), String)"),
            ("MetricName", "String"),
            ("TimeUnix", "DateTime64(9)"),
            ("Count", "UInt64"),
            ("BucketCounts", "Array(UInt64)"),
            ("ExplicitBounds", "Array(Float64)"),
            ("AggregationTemporality", "Int32"),
        ],
    ),
    (
        EXP_HISTOGRAM,
        &[
            ("MetricName", "String"),
            ("TimeUnix", "DateTime64(9)"),
            ("Count", "UInt64"),
            ("PositiveBucketCounts", "Array(UInt64)"),
        ],
    ),
    (
        SUMMARY,
        &[
            ("MetricName", "String"),
            ("TimeUnix", "DateTime64(9)"),
            ("Count", "UInt64"),
            ("ValueAtQuantiles.Quantile", "Array(Float64)"),
        ],
    ),
];

/// The columns every metrics row shares, before they are spread into a row.
#[derive(Debug, Clone)]
struct Common {
    resource_attributes: Attributes,
    scope_name: String,
    scope_version: String,
    service_name: String,
    metric_name: String,
    metric_description: String,
    metric_unit: String,
    attributes: Attributes,
    start_time_unix: i64,
    time_unix: i64,
}

/// A table's row: the common columns, then the table's own, in the table's order (the
/// ClickHouse client writes RowBinary by field order, and knows no flattened fields).
macro_rules! metric_row {
    ($name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty,)* }) => {
        #[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            pub resource_attributes: Attributes,
            pub resource_schema_url: String,
            pub scope_name: String,
            pub scope_version: String,
            pub scope_attributes: Attributes,
            pub scope_dropped_attr_count: u32,
            pub scope_schema_url: String,
            pub service_name: String,
            pub metric_name: String,
            pub metric_description: String,
            pub metric_unit: String,
            pub attributes: Attributes,
            pub start_time_unix: i64,
            pub time_unix: i64,
            $($(#[$fm])* pub $field: $ty,)*
        }
    };
}

/// Builds a row from the common columns and the row's own.
macro_rules! row {
    ($name:ident, $c:expr, { $($field:ident: $value:expr,)* }) => {{
        let c: Common = $c;
        $name {
            resource_attributes: c.resource_attributes,
            resource_schema_url: String::new(),
            scope_name: c.scope_name,
            scope_version: c.scope_version,
            scope_attributes: Vec::new(),
            scope_dropped_attr_count: 0,
            scope_schema_url: String::new(),
            service_name: c.service_name,
            metric_name: c.metric_name,
            metric_description: c.metric_description,
            metric_unit: c.metric_unit,
            attributes: c.attributes,
            start_time_unix: c.start_time_unix,
            time_unix: c.time_unix,
            $($field: $value,)*
        }
    }};
}

/// The five `Exemplars.*` columns of a row, for `metric_row!`.
macro_rules! exemplar_fields {
    ($name:ident { $($before:tt)* } { $($after:tt)* }) => {
        metric_row!($name {
            $($before)*
            #[serde(rename = "Exemplars.FilteredAttributes")]
            exemplars_filtered_attributes: Vec<Attributes>,
            #[serde(rename = "Exemplars.TimeUnix")]
            exemplars_time_unix: Vec<i64>,
            #[serde(rename = "Exemplars.Value")]
            exemplars_value: Vec<f64>,
            #[serde(rename = "Exemplars.SpanId")]
            exemplars_span_id: Vec<String>,
            #[serde(rename = "Exemplars.TraceId")]
            exemplars_trace_id: Vec<String>,
            $($after)*
        });
    };
}

exemplar_fields!(GaugeRow { value: f64, flags: u32, } {});
exemplar_fields!(SumRow { value: f64, flags: u32, } {
    aggregation_temporality: i32,
    is_monotonic: bool,
});
exemplar_fields!(HistogramRow {
    count: u64,
    sum: f64,
    bucket_counts: Vec<u64>,
    explicit_bounds: Vec<f64>,
} {
    flags: u32,
    min: f64,
    max: f64,
    aggregation_temporality: i32,
});
exemplar_fields!(ExpHistogramRow {
    count: u64,
    sum: f64,
    scale: i32,
    zero_count: u64,
    positive_offset: i32,
    positive_bucket_counts: Vec<u64>,
    negative_offset: i32,
    negative_bucket_counts: Vec<u64>,
} {
    flags: u32,
    min: f64,
    max: f64,
    aggregation_temporality: i32,
});
metric_row!(SummaryRow {
    count: u64,
    sum: f64,
    #[serde(rename = "ValueAtQuantiles.Quantile")]
    quantiles: Vec<f64>,
    #[serde(rename = "ValueAtQuantiles.Value")]
    values: Vec<f64>,
    flags: u32,
});

/// A row of any of the five tables.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum MetricRow {
    Gauge(GaugeRow),
    Sum(SumRow),
    Histogram(HistogramRow),
    ExpHistogram(ExpHistogramRow),
    Summary(SummaryRow),
}

/// A point's exemplars as the five `Exemplars.*` columns.
struct ExemplarColumns {
    attributes: Vec<Attributes>,
    time: Vec<i64>,
    value: Vec<f64>,
    span: Vec<String>,
    trace: Vec<String>,
}

fn exemplar_columns(p: &MetricPoint) -> ExemplarColumns {
    let e = &p.exemplars;
    let id = |x: Option<&[u8]>| x.map(hex).unwrap_or_default();
    ExemplarColumns {
        attributes: e.iter().map(|x| to_map(&x.attributes)).collect(),
        time: e.iter().map(|x| x.time_ns).collect(),
        value: e.iter().map(|x| x.value).collect(),
        span: e
            .iter()
            .map(|x| id(x.span_id.as_ref().map(|i| &i[..])))
            .collect(),
        trace: e
            .iter()
            .map(|x| id(x.trace_id.as_ref().map(|i| &i[..])))
            .collect(),
    }
}

impl MetricRow {
    /// A point as its table's row.
    pub fn from_point(p: &MetricPoint) -> Self {
        let s = &p.series;
        let common = Common {
            resource_attributes: to_map(&s.resource.attributes),
            scope_name: s.scope_name.clone(),
            scope_version: s.scope_version.clone(),
            service_name: s.resource.service.clone(),
            metric_name: s.name.clone(),
            metric_description: s.description.clone(),
            metric_unit: s.unit.clone(),
            attributes: to_map(&s.attributes),
            start_time_unix: p.start_ns,
            time_unix: p.time_ns,
        };
        let flags = u32::from(p.no_value);
        let x = exemplar_columns(p);
        let temporality = match s.temporality {
            Temporality::Delta => 1,
            Temporality::Cumulative => 2,
            Temporality::None => 0,
        };
        let (min, max) = (p.min_max.0.unwrap_or(0.0), p.min_max.1.unwrap_or(0.0));
        match (&p.value, s.kind) {
            (PointValue::Number(v), MetricKind::Counter | MetricKind::UpDownSum) => {
                Self::Sum(row!(SumRow, common, {
                    value: *v,
                    flags: flags,
                    exemplars_filtered_attributes: x.attributes,
                    exemplars_time_unix: x.time,
                    exemplars_value: x.value,
                    exemplars_span_id: x.span,
                    exemplars_trace_id: x.trace,
                    aggregation_temporality: temporality,
                    is_monotonic: s.kind == MetricKind::Counter,
                }))
            }
            (PointValue::Number(v), _) => Self::Gauge(row!(GaugeRow, common, {
                value: *v,
                flags: flags,
                exemplars_filtered_attributes: x.attributes,
                exemplars_time_unix: x.time,
                exemplars_value: x.value,
                exemplars_span_id: x.span,
                exemplars_trace_id: x.trace,
            })),
            (
                PointValue::Histogram {
                    count,
                    sum,
                    bounds,
                    counts,
                },
                _,
            ) => Self::Histogram(row!(HistogramRow, common, {
                count: *count,
                sum: sum.unwrap_or(0.0),
                bucket_counts: counts.clone(),
                explicit_bounds: bounds.clone(),
                exemplars_filtered_attributes: x.attributes,
                exemplars_time_unix: x.time,
                exemplars_value: x.value,
                exemplars_span_id: x.span,
                exemplars_trace_id: x.trace,
                flags: flags,
                min: min,
                max: max,
                aggregation_temporality: temporality,
            })),
            (
                PointValue::ExponentialHistogram {
                    count,
                    sum,
                    scale,
                    zero_count,
                    positive,
                    negative,
                    ..
                },
                _,
            ) => Self::ExpHistogram(row!(ExpHistogramRow, common, {
                count: *count,
                sum: sum.unwrap_or(0.0),
                scale: *scale,
                zero_count: *zero_count,
                positive_offset: positive.0,
                positive_bucket_counts: positive.1.clone(),
                negative_offset: negative.0,
                negative_bucket_counts: negative.1.clone(),
                exemplars_filtered_attributes: x.attributes,
                exemplars_time_unix: x.time,
                exemplars_value: x.value,
                exemplars_span_id: x.span,
                exemplars_trace_id: x.trace,
                flags: flags,
                min: min,
                max: max,
                aggregation_temporality: temporality,
            })),
            (
                PointValue::Summary {
                    count,
                    sum,
                    quantiles,
                },
                _,
            ) => Self::Summary(row!(SummaryRow, common, {
                count: *count,
                sum: *sum,
                quantiles: quantiles.iter().map(|q| q.0).collect(),
                values: quantiles.iter().map(|q| q.1).collect(),
                flags: flags,
            })),
        }
    }
}

/// Inserts the rows into their tables, each insert with its deduplication token.
pub async fn insert(
    client: &::clickhouse::Client,
    token: &str,
    rows: &[MetricRow],
) -> Result<(), ::clickhouse::error::Error> {
    macro_rules! insert_all {
        ($variant:ident, $row:ty, $table:expr) => {{
            let mut of_kind = rows.iter().filter_map(|r| match r {
                MetricRow::$variant(x) => Some(x),
                _ => None,
            });
            if let Some(first) = of_kind.next() {
                let mut insert = client
                    .insert::<$row>($table)
                    .await?
                    .with_setting("insert_deduplication_token", format!("{token}-{}", $table));
                insert.write(first).await?;
                for row in of_kind {
                    insert.write(row).await?;
                }
                insert.end().await?;
            }
        }};
    }
    insert_all!(Gauge, GaugeRow, GAUGE);
    insert_all!(Sum, SumRow, SUM);
    insert_all!(Histogram, HistogramRow, HISTOGRAM);
    insert_all!(ExpHistogram, ExpHistogramRow, EXP_HISTOGRAM);
    insert_all!(Summary, SummaryRow, SUMMARY);
    Ok(())
}

/// A series' identity as read from a table's row.
#[derive(Debug, Clone, ::clickhouse::Row, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdentityRow {
    pub metric_name: String,
    pub metric_description: String,
    pub metric_unit: String,
    pub service_name: String,
    pub resource_attributes: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub attributes: Attributes,
    /// 0 for tables without it.
    pub aggregation_temporality: i32,
    pub is_monotonic: bool,
}

/// The identity columns each table is grouped by (the sum table's monotonicity and every
/// table's temporality are part of a series' kind).
pub fn identity_select(table: &str) -> String {
    let temporality = match table {
        SUM | HISTOGRAM | EXP_HISTOGRAM => "AggregationTemporality",
        _ => "toInt32(0)",
    };
    let monotonic = if table == SUM { "IsMonotonic" } else { "false" };
    format!(
        "MetricName, any(MetricDescription) AS MetricDescription, any(MetricUnit) AS MetricUnit, \
         ServiceName, ResourceAttributes, ScopeName, ScopeVersion, Attributes, \
         {temporality} AS AggregationTemporality, {monotonic} AS IsMonotonic"
    )
}

pub fn identity_group_by(table: &str) -> &'static str {
    match table {
        SUM => {
            "MetricName, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, Attributes, AggregationTemporality, IsMonotonic"
        }
        HISTOGRAM | EXP_HISTOGRAM => {
            "MetricName, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, Attributes, AggregationTemporality"
        }
        _ => "MetricName, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, Attributes",
    }
}

fn kind_of(table: &str, monotonic: bool) -> MetricKind {
    match table {
        GAUGE => MetricKind::Gauge,
        SUM if monotonic => MetricKind::Counter,
        SUM => MetricKind::UpDownSum,
        HISTOGRAM => MetricKind::Histogram,
        EXP_HISTOGRAM => MetricKind::ExponentialHistogram,
        _ => MetricKind::Summary,
    }
}

/// A row's identity as one string, to remember its series' ID by: the translation to
/// Prometheus' names runs once per series read, not once per row.
fn memo_key(
    name: &str,
    service: &str,
    resource: &Attributes,
    scope: (&str, &str),
    attributes: &Attributes,
    kind: (i32, bool),
) -> String {
    format!(
        "{name}\u{1}{service}\u{1}{resource:?}\u{1}{}\u{1}{}\u{1}{attributes:?}\u{1}{}\u{1}{}",
        scope.0, scope.1, kind.0, kind.1
    )
}

/// The series a row belongs to, named as ingest names it.
pub fn series_of(table: &str, row: &IdentityRow) -> MetricSeries {
    let service = if row.service_name.is_empty() {
        UNKNOWN_SERVICE.to_string()
    } else {
        row.service_name.clone()
    };
    let resource = Arc::new(Resource {
        service,
        attributes: from_map(row.resource_attributes.clone()),
    });
    let attributes = from_map(row.attributes.clone());
    let kind = kind_of(table, row.is_monotonic);
    let temporality = match row.aggregation_temporality {
        1 => Temporality::Delta,
        2 => Temporality::Cumulative,
        _ => Temporality::None,
    };
    let prometheus_name = if row.metric_name == "target_info" {
        row.metric_name.clone()
    } else {
        naming::metric_name(&row.metric_name, &row.metric_unit, kind)
    };
    MetricSeries {
        labels: naming::series_labels(&resource, &attributes),
        name: row.metric_name.clone(),
        description: row.metric_description.clone(),
        unit: row.metric_unit.clone(),
        kind,
        temporality,
        resource,
        scope_name: row.scope_name.clone(),
        scope_version: row.scope_version.clone(),
        attributes,
        prometheus_name,
    }
}

/// A series' ID: a fixed hash of its identity, the same on every read and every node.
pub fn series_id(table: &str, series: &MetricSeries) -> i64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x6761_756e, 0x746c_6574);
    h.write(table.as_bytes());
    h.write(series.key().as_bytes());
    (h.finish() >> 1) as i64
}

/// What the store remembers of a series to read its points: its table, its name, whether
/// its points are deltas.
#[derive(Debug, Clone)]
pub struct SeriesRef {
    pub table: &'static str,
    pub metric_name: String,
    pub delta: bool,
}

/// Every series of the tables, and how to find each one's rows.
pub fn catalog(
    identities: Vec<(&'static str, IdentityRow)>,
) -> (Vec<MetricSeriesInfo>, HashMap<i64, SeriesRef>) {
    let mut infos = Vec::new();
    let mut refs = HashMap::new();
    for (table, row) in identities {
        let series = series_of(table, &row);
        let id = series_id(table, &series);
        if refs.contains_key(&id) {
            continue;
        }
        refs.insert(
            id,
            SeriesRef {
                table,
                metric_name: row.metric_name.clone(),
                delta: series.temporality == Temporality::Delta,
            },
        );
        infos.push(MetricSeriesInfo {
            id,
            kind: series.kind,
            name: series.name,
            prometheus_name: series.prometheus_name,
            labels: series.labels,
            unit: series.unit,
            description: series.description,
        });
    }
    (infos, refs)
}

/// A row read for its points: its identity, its time, and every table's value columns
/// (those a table lacks read as constants), flat as RowBinary wants.
#[derive(Debug, Clone, ::clickhouse::Row, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PointRow {
    pub metric_name: String,
    pub metric_description: String,
    pub metric_unit: String,
    pub service_name: String,
    pub resource_attributes: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub attributes: Attributes,
    pub aggregation_temporality: i32,
    pub is_monotonic: bool,
    pub time_unix: i64,
    pub flags: u32,
    pub value: f64,
    pub count: u64,
    pub sum: f64,
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub scale: i32,
    pub zero_count: u64,
    pub positive_offset: i32,
    pub negative_offset: i32,
    pub negative_counts: Vec<u64>,
    pub quantile_values: Vec<f64>,
}

impl PointRow {
    fn identity(&self) -> IdentityRow {
        IdentityRow {
            metric_name: self.metric_name.clone(),
            metric_description: self.metric_description.clone(),
            metric_unit: self.metric_unit.clone(),
            service_name: self.service_name.clone(),
            resource_attributes: self.resource_attributes.clone(),
            scope_name: self.scope_name.clone(),
            scope_version: self.scope_version.clone(),
            attributes: self.attributes.clone(),
            aggregation_temporality: self.aggregation_temporality,
            is_monotonic: self.is_monotonic,
        }
    }
}

/// The SELECT list of [`PointRow`] for a table.
pub fn point_select(table: &str) -> String {
    let temporality = match table {
        SUM | HISTOGRAM | EXP_HISTOGRAM => "AggregationTemporality",
        _ => "toInt32(0)",
    };
    let monotonic = if table == SUM { "IsMonotonic" } else { "false" };
    const NO_FLOATS: &str = "CAST([], 'Array(Float64)')";
    const NO_COUNTS: &str = "CAST([], 'Array(UInt64)')";
    let values = match table {
        GAUGE | SUM => format!(
            "Value, toUInt64(0) AS Count, toFloat64(0) AS Sum, {NO_FLOATS} AS Bounds, \
             {NO_COUNTS} AS Counts, toInt32(0) AS Scale, toUInt64(0) AS ZeroCount, \
             toInt32(0) AS PositiveOffset, toInt32(0) AS NegativeOffset, \
             {NO_COUNTS} AS NegativeCounts, {NO_FLOATS} AS QuantileValues"
        ),
        HISTOGRAM => format!(
            "toFloat64(0) AS Value, Count, Sum, ExplicitBounds AS Bounds, BucketCounts AS Counts, \
             toInt32(0) AS Scale, toUInt64(0) AS ZeroCount, toInt32(0) AS PositiveOffset, \
             toInt32(0) AS NegativeOffset, {NO_COUNTS} AS NegativeCounts, \
             {NO_FLOATS} AS QuantileValues"
        ),
        EXP_HISTOGRAM => format!(
            "toFloat64(0) AS Value, Count, Sum, {NO_FLOATS} AS Bounds, \
             PositiveBucketCounts AS Counts, Scale, ZeroCount, PositiveOffset, NegativeOffset, \
             NegativeBucketCounts AS NegativeCounts, {NO_FLOATS} AS QuantileValues"
        ),
        _ => format!(
            "toFloat64(0) AS Value, Count, Sum, `ValueAtQuantiles.Quantile` AS Bounds, \
             {NO_COUNTS} AS Counts, toInt32(0) AS Scale, toUInt64(0) AS ZeroCount, \
             toInt32(0) AS PositiveOffset, toInt32(0) AS NegativeOffset, \
             {NO_COUNTS} AS NegativeCounts, `ValueAtQuantiles.Value` AS QuantileValues"
        ),
    };
    format!(
        "MetricName, MetricDescription, MetricUnit, ServiceName, ResourceAttributes, ScopeName, \
         ScopeVersion, Attributes, {temporality} AS AggregationTemporality, \
         {monotonic} AS IsMonotonic, TimeUnix, Flags, {values}"
    )
}

/// A row's value in the model (delta rows not yet summed).
pub fn value_of(table: &str, r: &PointRow) -> PointValue {
    match table {
        GAUGE | SUM => PointValue::Number(r.value),
        HISTOGRAM => PointValue::Histogram {
            count: r.count,
            sum: Some(r.sum),
            bounds: r.bounds.clone(),
            counts: r.counts.clone(),
        },
        EXP_HISTOGRAM => PointValue::ExponentialHistogram {
            count: r.count,
            sum: Some(r.sum),
            scale: r.scale,
            zero_count: r.zero_count,
            zero_threshold: 0.0,
            positive: (r.positive_offset, r.counts.clone()),
            negative: (r.negative_offset, r.negative_counts.clone()),
        },
        _ => PointValue::Summary {
            count: r.count,
            sum: r.sum,
            quantiles: r
                .bounds
                .iter()
                .copied()
                .zip(r.quantile_values.iter().copied())
                .collect(),
        },
    }
}

/// Gathers a table's rows into points of the asked series: deltas summed from the first row
/// read, points before `start_ms` (read only to sum deltas) left out. Stops past
/// `max_points`.
pub fn gather(
    table: &'static str,
    rows: Vec<PointRow>,
    wanted: &HashSet<i64>,
    start_ms: i64,
    out: &mut HashMap<i64, Vec<StoredPoint>>,
    budget: &mut usize,
) -> bool {
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut running: HashMap<i64, PointValue> = HashMap::new();
    for row in rows {
        let key = memo_key(
            &row.metric_name,
            &row.service_name,
            &row.resource_attributes,
            (&row.scope_name, &row.scope_version),
            &row.attributes,
            (row.aggregation_temporality, row.is_monotonic),
        );
        let id = *ids
            .entry(key)
            .or_insert_with(|| series_id(table, &series_of(table, &row.identity())));
        if !wanted.contains(&id) {
            continue;
        }
        let stale = row.flags & 1 != 0;
        let mut value = value_of(table, &row);
        if row.aggregation_temporality == 1 && !stale {
            value = match running.get(&id) {
                Some(total) => total.plus(&value),
                None => value,
            };
            running.insert(id, value.clone());
        }
        let time_ms = row.time_unix.div_euclid(1_000_000);
        if time_ms < start_ms {
            continue;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        out.entry(id).or_default().push(StoredPoint {
            time_ms,
            value,
            stale,
        });
    }
    true
}

/// Series points in ID order, as the trait answers.
pub fn answer(out: HashMap<i64, Vec<StoredPoint>>, exceeded: bool) -> SeriesPoints {
    let mut series: Vec<(i64, Vec<StoredPoint>)> = out.into_iter().collect();
    series.sort_unstable_by_key(|(id, _)| *id);
    for (_, points) in &mut series {
        points.sort_by_key(|p| p.time_ms);
        points.dedup_by_key(|p| p.time_ms);
    }
    SeriesPoints { series, exceeded }
}

/// The asked series grouped by table and metric name, for one query per table.
pub fn by_table(
    query: &PointQuery,
    refs: &HashMap<i64, SeriesRef>,
) -> HashMap<&'static str, (Vec<String>, bool)> {
    let mut tables: HashMap<&'static str, (Vec<String>, bool)> = HashMap::new();
    for id in &query.series {
        if let Some(r) = refs.get(id) {
            let entry = tables.entry(r.table).or_default();
            if !entry.0.contains(&r.metric_name) {
                entry.0.push(r.metric_name.clone());
            }
            entry.1 |= r.delta;
        }
    }
    tables
}

/// An exemplar row: its series' identity and the exemplar, one per row (`ARRAY JOIN`).
#[derive(Debug, Clone, ::clickhouse::Row, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExemplarRow {
    pub metric_name: String,
    pub metric_description: String,
    pub metric_unit: String,
    pub service_name: String,
    pub resource_attributes: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub attributes: Attributes,
    pub aggregation_temporality: i32,
    pub is_monotonic: bool,
    pub ex_time: i64,
    pub ex_value: f64,
    pub ex_trace: String,
    pub ex_span: String,
}

/// The tables whose rows carry exemplars (the summary table has none).
pub const WITH_EXEMPLARS: [&str; 4] = [GAUGE, SUM, HISTOGRAM, EXP_HISTOGRAM];

/// The SELECT list of [`ExemplarRow`], over `ARRAY JOIN Exemplars`.
pub fn exemplar_select(table: &str) -> String {
    let temporality = match table {
        SUM | HISTOGRAM | EXP_HISTOGRAM => "AggregationTemporality",
        _ => "toInt32(0)",
    };
    let monotonic = if table == SUM { "IsMonotonic" } else { "false" };
    format!(
        "MetricName, MetricDescription, MetricUnit, ServiceName, ResourceAttributes, ScopeName, \
         ScopeVersion, Attributes, {temporality} AS AggregationTemporality, \
         {monotonic} AS IsMonotonic, `Exemplars.TimeUnix` AS ExTime, \
         `Exemplars.Value` AS ExValue, `Exemplars.TraceId` AS ExTrace, \
         `Exemplars.SpanId` AS ExSpan"
    )
}

/// The rows' exemplars of the asked series.
pub fn exemplars_of(
    table: &str,
    rows: Vec<ExemplarRow>,
    wanted: &HashSet<i64>,
    out: &mut Vec<StoredExemplar>,
) {
    let mut ids: HashMap<String, i64> = HashMap::new();
    for r in rows {
        let identity = IdentityRow {
            metric_name: r.metric_name,
            metric_description: r.metric_description,
            metric_unit: r.metric_unit,
            service_name: r.service_name,
            resource_attributes: r.resource_attributes,
            scope_name: r.scope_name,
            scope_version: r.scope_version,
            attributes: r.attributes,
            aggregation_temporality: r.aggregation_temporality,
            is_monotonic: r.is_monotonic,
        };
        let key = memo_key(
            &identity.metric_name,
            &identity.service_name,
            &identity.resource_attributes,
            (&identity.scope_name, &identity.scope_version),
            &identity.attributes,
            (identity.aggregation_temporality, identity.is_monotonic),
        );
        let id = *ids
            .entry(key)
            .or_insert_with(|| series_id(table, &series_of(table, &identity)));
        if !wanted.contains(&id) {
            continue;
        }
        out.push(StoredExemplar {
            series_id: id,
            time_ms: r.ex_time.div_euclid(1_000_000),
            value: r.ex_value,
            trace_id: crate::model::parse_trace_id(&r.ex_trace),
            span_id: crate::model::parse_span_id(&r.ex_span),
        });
    }
}
