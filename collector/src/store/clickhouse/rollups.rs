//! RED from `gauntlet_red_rollups`: the rows of the window summed per step and operation in
//! ClickHouse (latency bins summed by `sumMap`), then made into sketches and merged per step
//! for the whole service here, so percentiles come from the same sketch as SQLite's.

use super::schema::RED_ROLLUPS;
use super::sql::{Param, Where};
use super::{ClickHouseStore, backend};
use crate::rollup::{RedCell, RedSteps, Sketch, StepMerger};
use crate::store::{RollupQuery, StoreError};

/// One step of one operation, as ClickHouse sums it.
#[derive(::clickhouse::Row, serde::Deserialize)]
struct StepRow {
    step: i64,
    operation: String,
    requests: u64,
    errors: u64,
    throttled: u64,
    latency: (Vec<i32>, Vec<u64>),
}

impl ClickHouseStore {
    pub(super) async fn rollup_steps(&self, q: &RollupQuery) -> Result<RedSteps, StoreError> {
        let (first, end) = q.buckets;
        let per_step = q.buckets_per_step.max(1);
        let mut w = Where::default();
        w.with(
            "ServiceName = {service:String}",
            Param::Str("service", q.service.clone()),
        );
        w.with("Bucket >= {first:Int64}", Param::I64("first", first));
        w.with("Bucket < {end:Int64}", Param::I64("end", end));
        if let Some(op) = &q.operation {
            w.with("SpanName = {op:String}", Param::Str("op", op.clone()));
        }
        if let Some(v) = &q.version {
            w.with(
                "ServiceVersion = {version:String}",
                Param::Str("version", v.clone()),
            );
        }
        w.kinds(&q.kinds);
        let sql = format!(
            "SELECT intDiv(Bucket - {first}, {per_step}) AS step, toString(SpanName) AS operation, \
             sum(Requests) AS requests, sum(Errors) AS errors, sum(Throttled) AS throttled, \
             sumMap(Latency) AS latency FROM {} WHERE {} GROUP BY step, operation",
            self.t(RED_ROLLUPS),
            w.sql()
        );
        let rows: Vec<StepRow> = w
            .query(&self.client, &sql)
            .fetch_all()
            .await
            .map_err(backend)?;
        let mut merger = StepMerger::new(first, end, per_step);
        for r in rows {
            let latency = Sketch::from_bins(&r.latency.0, &r.latency.1);
            let cell = RedCell {
                requests: r.requests,
                errors: r.errors,
                throttled: r.throttled,
                latency,
            };
            let op = merger.name(&r.operation);
            merger.add(first + r.step * per_step, op, &cell);
        }
        Ok(merger.finish())
    }
}
