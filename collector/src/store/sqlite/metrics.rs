//! Metric series and their points in a file of their own, `metrics.sqlite`:
//! - `series`: each series once (its OpenTelemetry identity, Prometheus name and labels,
//!   kind), interned into a small integer; all of them are also kept in memory, where a
//!   query matches its selectors.
//! - `points`: `(time_ms, series_id)` as the key of a table without rowids, so an export's
//!   points (one per series, at nearly one time) are appended at the end of the tree instead
//!   of at one place per series, and a query reads a window as one range. The key also makes
//!   a resent point (a retry after a failed commit) change nothing.
//! - `exemplars`, appended.
//!
//! Delta points are turned into running totals here (their sum so far is kept in the series
//! row, in the same transaction), because Prometheus reads cumulative series only. Values
//! are a number (gauges, sums; a histogram's count), a sum, and the rest as little-endian
//! floats (`detail`): bounds and bucket counts, exponential buckets, or quantiles.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use foldhash::HashMap;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::connections::Readers;
use super::{Sync, configure};
use crate::model::{MetricKind, MetricPoint, PointValue, Temporality};
use crate::store::{
    MetricSeriesInfo, PointQuery, SeriesPoints, StoreError, StoredExemplar, StoredPoint,
};

pub(super) const FILE: &str = "metrics.sqlite";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind INTEGER NOT NULL,
    temporality INTEGER NOT NULL,
    name TEXT NOT NULL,
    prometheus_name TEXT NOT NULL,
    labels TEXT NOT NULL,
    unit TEXT NOT NULL,
    description TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope_name TEXT NOT NULL,
    scope_version TEXT NOT NULL,
    attributes TEXT NOT NULL,
    -- Delta series: the running total so far, and the (start, time) of the last delta added.
    running_value REAL,
    running_sum REAL,
    running_detail BLOB,
    running_start_ns INTEGER,
    running_time_ns INTEGER
);
CREATE TABLE IF NOT EXISTS points (
    time_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    start_ms INTEGER,
    value REAL,
    sum REAL,
    detail BLOB,
    stale INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (time_ms, series_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exemplars (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    value REAL NOT NULL,
    trace_id BLOB,
    span_id BLOB,
    attributes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exemplars_by_time ON exemplars (time_ms);
"#;

/// The series catalog as queries see it: replaced whole when a batch adds series.
pub(super) type SeriesCatalog = Arc<RwLock<Arc<Vec<MetricSeriesInfo>>>>;

/// The running total of a delta series.
#[derive(Clone)]
struct Running {
    value: PointValue,
    last: (i64, i64),
}

pub(super) struct MetricWriter {
    conn: Connection,
    ids: HashMap<String, i64>,
    running: HashMap<i64, Running>,
    catalog: SeriesCatalog,
}

impl MetricWriter {
    pub(super) fn open(dir: &Path, sync: Sync) -> Result<(Self, SeriesCatalog), StoreError> {
        let path = dir.join(FILE);
        let conn = Connection::open(&path).map_err(|e| StoreError::Unavailable {
            location: path.display().to_string(),
            reason: e.to_string(),
        })?;
        configure(&conn, sync, 2 << 20)?;
        conn.execute_batch(SCHEMA)?;
        let mut ids = HashMap::default();
        let mut all = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT id, key, kind, name, prometheus_name, labels, unit, description
                 FROM series ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                ids.insert(r.get::<_, String>(1)?, id);
                let kind = MetricKind::from_i64(r.get(2)?).unwrap_or(MetricKind::Gauge);
                let labels: Vec<(String, String)> =
                    serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default();
                all.push(MetricSeriesInfo {
                    id,
                    kind,
                    name: r.get(3)?,
                    prometheus_name: r.get(4)?,
                    labels,
                    unit: r.get(6)?,
                    description: r.get(7)?,
                });
            }
        }
        let catalog = Arc::new(RwLock::new(Arc::new(all)));
        Ok((
            Self {
                conn,
                ids,
                running: HashMap::default(),
                catalog: catalog.clone(),
            },
            catalog,
        ))
    }

    /// Commits the points (and any new series) in one transaction.
    pub(super) fn write(&mut self, points: &[MetricPoint]) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let result = self.write_tx(points);
        if result.is_err() {
            // Series interned and totals moved in the rolled-back transaction do not exist.
            self.ids.retain(|_, id| {
                self.catalog
                    .read()
                    .map(|c| c.iter().any(|s| s.id == *id))
                    .unwrap_or(false)
            });
            self.running.clear();
        }
        result
    }

    fn write_tx(&mut self, points: &[MetricPoint]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let mut added = Vec::new();
        let mut running_changed = Vec::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO points (time_ms, series_id, start_ms, value, sum, detail, stale)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            let mut exemplar = tx.prepare_cached(
                "INSERT INTO exemplars (time_ms, series_id, value, trace_id, span_id, attributes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for p in points {
                let id = intern(&tx, &mut self.ids, p, &mut added)?;
                let value = if p.series.temporality == Temporality::Delta && !p.no_value {
                    match accumulate(&tx, &mut self.running, id, p)? {
                        Some(total) => {
                            running_changed.push(id);
                            total
                        }
                        // The same delta again: already counted.
                        None => continue,
                    }
                } else {
                    p.value.clone()
                };
                let (number, sum, detail) = encode(&value);
                let time_ms = p.time_ns.div_euclid(1_000_000);
                let start_ms = (p.start_ns > 0).then(|| p.start_ns.div_euclid(1_000_000));
                insert.execute(params![
                    time_ms,
                    id,
                    start_ms,
                    if p.no_value { None } else { number },
                    sum,
                    detail,
                    p.no_value
                ])?;
                for e in &p.exemplars {
                    exemplar.execute(params![
                        e.time_ns.div_euclid(1_000_000),
                        id,
                        e.value,
                        e.trace_id.as_ref().map(|t| &t[..]),
                        e.span_id.as_ref().map(|s| &s[..]),
                        e.attributes.to_json(),
                    ])?;
                }
            }
        }
        running_changed.sort_unstable();
        running_changed.dedup();
        for id in running_changed {
            if let Some(r) = self.running.get(&id) {
                let (v, s, d) = encode(&r.value);
                tx.execute(
                    "UPDATE series SET running_value = ?1, running_sum = ?2, running_detail = ?3,
                        running_start_ns = ?4, running_time_ns = ?5 WHERE id = ?6",
                    params![v, s, d, r.last.0, r.last.1, id],
                )?;
            }
        }
        tx.commit()?;
        if !added.is_empty()
            && let Ok(mut catalog) = self.catalog.write()
        {
            let mut all = Vec::clone(&catalog);
            all.extend(added);
            *catalog = Arc::new(all);
        }
        Ok(())
    }

    /// Deletes points and exemplars older than `older_than_ms`, a bounded step at a time;
    /// returns how many went.
    pub(super) fn prune_before(&mut self, older_than_ms: i64) -> Result<u64, StoreError> {
        let tx = self.conn.transaction()?;
        // At most an hour of points per step, so ingest waits little.
        let n = tx.execute(
            "DELETE FROM points WHERE time_ms < min(?1, (SELECT min(time_ms) FROM points) + 3600000)",
            [older_than_ms],
        )? as u64;
        tx.execute("DELETE FROM exemplars WHERE time_ms < ?1", [older_than_ms])?;
        tx.commit()?;
        Ok(n)
    }

    /// The oldest twentieth of the points' time span, as a cut for [`Self::prune_before`]:
    /// what a store over its disk budget gives up of its metrics per step.
    pub(super) fn oldest_twentieth(&self) -> Result<Option<i64>, StoreError> {
        let (lo, hi): (Option<i64>, Option<i64>) =
            self.conn
                .query_row("SELECT min(time_ms), max(time_ms) FROM points", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
        Ok(match (lo, hi) {
            (Some(lo), Some(hi)) => Some(lo + (hi - lo) / 20 + 1),
            _ => None,
        })
    }
}

/// The series' ID, inserting it when new (and noting it for the in-memory catalog).
fn intern(
    tx: &Transaction<'_>,
    ids: &mut HashMap<String, i64>,
    p: &MetricPoint,
    added: &mut Vec<MetricSeriesInfo>,
) -> Result<i64, StoreError> {
    let key = p.series.key();
    if let Some(&id) = ids.get(&key) {
        return Ok(id);
    }
    let s = &p.series;
    let labels = serde_json::to_string(&s.labels).unwrap_or_else(|_| "[]".into());
    tx.execute(
        "INSERT INTO series (key, kind, temporality, name, prometheus_name, labels, unit,
            description, resource, scope_name, scope_version, attributes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            key,
            s.kind as i64,
            s.temporality as i64,
            s.name,
            s.prometheus_name,
            labels,
            s.unit,
            s.description,
            s.resource.attributes.to_json(),
            s.scope_name,
            s.scope_version,
            s.attributes.to_json(),
        ],
    )?;
    let id = tx.last_insert_rowid();
    ids.insert(key, id);
    added.push(MetricSeriesInfo {
        id,
        kind: s.kind,
        name: s.name.clone(),
        prometheus_name: s.prometheus_name.clone(),
        labels: s.labels.clone(),
        unit: s.unit.clone(),
        description: s.description.clone(),
    });
    Ok(id)
}

/// Adds a delta point to its series' running total; `None` when this very delta (same
/// start and time) was the last one added: a resend.
fn accumulate(
    tx: &Transaction<'_>,
    running: &mut HashMap<i64, Running>,
    id: i64,
    p: &MetricPoint,
) -> Result<Option<PointValue>, StoreError> {
    if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(id) {
        let stored = tx
            .query_row(
                "SELECT running_value, running_sum, running_detail, running_start_ns,
                        running_time_ns, kind
                 FROM series WHERE id = ?1 AND running_time_ns IS NOT NULL",
                [id],
                |r| {
                    Ok((
                        r.get::<_, Option<f64>>(0)?,
                        r.get::<_, Option<f64>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                },
            )
            .optional()?;
        if let Some((v, s, d, start, time, kind)) = stored
            && let Some(kind) = MetricKind::from_i64(kind)
            && let Some(value) = decode(kind, v, s, d.as_deref())
        {
            slot.insert(Running {
                value,
                last: (start, time),
            });
        }
    }
    let stamp = (p.start_ns, p.time_ns);
    let total = match running.get(&id) {
        Some(r) if r.last == stamp => return Ok(None),
        Some(r) => r.value.plus(&p.value),
        None => p.value.clone(),
    };
    running.insert(
        id,
        Running {
            value: total.clone(),
            last: stamp,
        },
    );
    Ok(Some(total))
}

/// A value as the `(value, sum, detail)` columns.
fn encode(v: &PointValue) -> (Option<f64>, Option<f64>, Option<Vec<u8>>) {
    let floats = |xs: Vec<f64>| Some(xs.iter().flat_map(|x| x.to_le_bytes()).collect());
    match v {
        PointValue::Number(n) => (Some(*n), None, None),
        PointValue::Histogram {
            count,
            sum,
            bounds,
            counts,
        } => {
            let mut xs = Vec::with_capacity(1 + bounds.len() + counts.len());
            xs.push(bounds.len() as f64);
            xs.extend(bounds);
            xs.extend(counts.iter().map(|&c| c as f64));
            (Some(*count as f64), *sum, floats(xs))
        }
        PointValue::ExponentialHistogram {
            count,
            sum,
            scale,
            zero_count,
            zero_threshold,
            positive,
            negative,
        } => {
            let mut xs = vec![f64::from(*scale), *zero_count as f64, *zero_threshold];
            for (offset, counts) in [positive, negative] {
                xs.push(f64::from(*offset));
                xs.push(counts.len() as f64);
                xs.extend(counts.iter().map(|&c| c as f64));
            }
            (Some(*count as f64), *sum, floats(xs))
        }
        PointValue::Summary {
            count,
            sum,
            quantiles,
        } => (
            Some(*count as f64),
            Some(*sum),
            floats(quantiles.iter().flat_map(|&(q, v)| [q, v]).collect()),
        ),
    }
}

/// The columns back into a value; `None` for a row this build cannot read.
fn decode(
    kind: MetricKind,
    value: Option<f64>,
    sum: Option<f64>,
    detail: Option<&[u8]>,
) -> Option<PointValue> {
    let xs: Vec<f64> = detail
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let count = value.unwrap_or(f64::NAN);
    Some(match kind {
        MetricKind::Gauge | MetricKind::Counter | MetricKind::UpDownSum => {
            PointValue::Number(count)
        }
        MetricKind::Histogram => {
            let n = *xs.first()? as usize;
            let bounds = xs.get(1..1 + n)?.to_vec();
            let counts = xs.get(1 + n..)?.iter().map(|&c| c as u64).collect();
            PointValue::Histogram {
                count: count as u64,
                sum,
                bounds,
                counts,
            }
        }
        MetricKind::ExponentialHistogram => {
            let mut it = xs.into_iter();
            let (scale, zero_count, zero_threshold) = (it.next()?, it.next()?, it.next()?);
            let mut buckets = || -> Option<(i32, Vec<u64>)> {
                let offset = it.next()? as i32;
                let n = it.next()? as usize;
                Some((offset, it.by_ref().take(n).map(|c| c as u64).collect()))
            };
            let positive = buckets()?;
            let negative = buckets()?;
            PointValue::ExponentialHistogram {
                count: count as u64,
                sum,
                scale: scale as i32,
                zero_count: zero_count as u64,
                zero_threshold,
                positive,
                negative,
            }
        }
        MetricKind::Summary => PointValue::Summary {
            count: count as u64,
            sum: sum.unwrap_or(f64::NAN),
            quantiles: xs.chunks_exact(2).map(|c| (c[0], c[1])).collect(),
        },
    })
}

/// A histogram's or summary's count and sum alone, its buckets or quantiles left out.
fn count_and_sum(kind: MetricKind, value: Option<f64>, sum: Option<f64>) -> PointValue {
    let count = value.unwrap_or(f64::NAN) as u64;
    match kind {
        MetricKind::Summary => PointValue::Summary {
            count,
            sum: sum.unwrap_or(f64::NAN),
            quantiles: Vec::new(),
        },
        MetricKind::ExponentialHistogram => PointValue::ExponentialHistogram {
            count,
            sum,
            scale: 0,
            zero_count: 0,
            zero_threshold: 0.0,
            positive: (0, Vec::new()),
            negative: (0, Vec::new()),
        },
        _ => PointValue::Histogram {
            count,
            sum,
            bounds: Vec::new(),
            counts: Vec::new(),
        },
    }
}

/// The reading side: pooled read-only connections to `metrics.sqlite`.
pub(super) struct MetricReader {
    readers: Readers,
    pub(super) catalog: SeriesCatalog,
}

impl MetricReader {
    pub(super) fn new(dir: &Path, catalog: SeriesCatalog) -> Self {
        Self {
            readers: Readers::new(dir.join(FILE), 2),
            catalog,
        }
    }

    pub(super) fn path(dir: &Path) -> PathBuf {
        dir.join(FILE)
    }

    /// The points of the asked series in the window, at most `query.max_points` in all
    /// (one more tells the caller the limit was passed).
    pub(super) fn points(&self, query: &PointQuery) -> Result<SeriesPoints, StoreError> {
        let kinds: HashMap<i64, MetricKind> = {
            let all = self.catalog.read().map(|c| c.clone()).unwrap_or_default();
            let wanted: std::collections::HashSet<i64> = query.series.iter().copied().collect();
            all.iter()
                .filter(|s| wanted.contains(&s.id))
                .map(|s| (s.id, s.kind))
                .collect()
        };
        let conn = self.readers.take()?;
        let result = read_points(&conn, query, &kinds);
        self.readers.give_back(conn);
        result
    }
}

impl MetricReader {
    /// Exemplars of the series in the window, oldest first, at most `limit`.
    pub(super) fn exemplars(
        &self,
        series: &[i64],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredExemplar>, StoreError> {
        let wanted: std::collections::HashSet<i64> = series.iter().copied().collect();
        let conn = self.readers.take()?;
        let result = (|| {
            let mut stmt = conn.prepare_cached(
                "SELECT series_id, time_ms, value, trace_id, span_id FROM exemplars
                 WHERE time_ms >= ?1 AND time_ms <= ?2 ORDER BY time_ms",
            )?;
            let mut rows = stmt.query(params![start_ms, end_ms])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let series_id: i64 = r.get(0)?;
                if !wanted.contains(&series_id) {
                    continue;
                }
                let trace: Option<Vec<u8>> = r.get(3)?;
                let span: Option<Vec<u8>> = r.get(4)?;
                out.push(StoredExemplar {
                    series_id,
                    time_ms: r.get(1)?,
                    value: r.get(2)?,
                    trace_id: trace.and_then(|t| t.try_into().ok()),
                    span_id: span.and_then(|s| s.try_into().ok()),
                });
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })();
        self.readers.give_back(conn);
        result
    }
}

fn read_points(
    conn: &Connection,
    query: &PointQuery,
    kinds: &HashMap<i64, MetricKind>,
) -> Result<SeriesPoints, StoreError> {
    let mut out: HashMap<i64, Vec<StoredPoint>> = HashMap::default();
    // Without details, the buckets' blob is neither read nor decoded: a histogram's `_count`
    // over a day reads a number a point.
    let mut stmt = conn.prepare_cached(
        "SELECT time_ms, series_id, value, sum, CASE WHEN ?3 THEN detail END, stale FROM points
         WHERE time_ms >= ?1 AND time_ms <= ?2",
    )?;
    let mut rows = stmt.query(params![query.start_ms, query.end_ms, query.details])?;
    let mut n = 0usize;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(1)?;
        let Some(&kind) = kinds.get(&id) else {
            continue;
        };
        n += 1;
        if n > query.max_points {
            return Ok(SeriesPoints {
                series: Vec::new(),
                exceeded: true,
            });
        }
        let stale: bool = r.get(5)?;
        let detail: Option<Vec<u8>> = r.get(4)?;
        let value = match (detail.as_deref(), kind) {
            (
                None,
                MetricKind::Histogram | MetricKind::ExponentialHistogram | MetricKind::Summary,
            ) => count_and_sum(kind, r.get(2)?, r.get(3)?),
            (detail, _) => match decode(kind, r.get(2)?, r.get(3)?, detail) {
                Some(v) => v,
                None => continue,
            },
        };
        out.entry(id).or_default().push(StoredPoint {
            time_ms: r.get(0)?,
            value,
            stale,
        });
    }
    let mut series: Vec<(i64, Vec<StoredPoint>)> = out.into_iter().collect();
    series.sort_unstable_by_key(|(id, _)| *id);
    Ok(SeriesPoints {
        series,
        exceeded: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_its_columns() {
        let values = [
            (MetricKind::Counter, PointValue::Number(3.5)),
            (
                MetricKind::Histogram,
                PointValue::Histogram {
                    count: 6,
                    sum: Some(1.25),
                    bounds: vec![0.1, 1.0],
                    counts: vec![1, 2, 3],
                },
            ),
            (
                MetricKind::ExponentialHistogram,
                PointValue::ExponentialHistogram {
                    count: 7,
                    sum: None,
                    scale: 3,
                    zero_count: 1,
                    zero_threshold: 0.0,
                    positive: (-2, vec![1, 2]),
                    negative: (4, vec![3]),
                },
            ),
            (
                MetricKind::Summary,
                PointValue::Summary {
                    count: 4,
                    sum: 2.0,
                    quantiles: vec![(0.5, 0.4), (0.99, 0.9)],
                },
            ),
        ];
        for (kind, v) in values {
            let (n, s, d) = encode(&v);
            assert_eq!(decode(kind, n, s, d.as_deref()), Some(v));
        }
    }

    #[test]
    fn deltas_add_up_and_a_new_shape_starts_over() {
        let h = |counts: Vec<u64>, bounds: Vec<f64>| PointValue::Histogram {
            count: counts.iter().sum(),
            sum: Some(1.0),
            bounds,
            counts,
        };
        let total = h(vec![1, 2], vec![1.0]).plus(&h(vec![3, 4], vec![1.0]));
        assert_eq!(
            total,
            PointValue::Histogram {
                count: 10,
                sum: Some(2.0),
                bounds: vec![1.0],
                counts: vec![4, 6]
            }
        );
        let reshaped = total.plus(&h(vec![1, 1, 1], vec![1.0, 2.0]));
        assert_eq!(reshaped, h(vec![1, 1, 1], vec![1.0, 2.0]));
        assert_eq!(
            PointValue::Number(2.0).plus(&PointValue::Number(0.5)),
            PointValue::Number(2.5)
        );
    }
}
