//! The [`Store`] implementation: each call on the writer or a pooled reader, on the
//! blocking pool.

use std::collections::HashSet;
use std::path::PathBuf;

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::SqliteStore;
use super::prune::file_len;
use super::read::{
    LOG_SELECT, ResourceCache, blob_id, filters_match, log_from_row, read_traces, service_id,
};
use crate::model::{Batch, LogRecord, SpanKind, SpanRecord, TraceId};
use crate::store::schema::current_version;
use crate::store::{
    LogCursor, LogPage, LogQuery, Operation, PruneReport, RetentionPolicy, Store, StoreError,
    TraceQuery, TraceSummary,
};

/// Rows one trace search walks at most before it answers with what it found.
const MAX_SEARCH_SCAN: usize = 2_000_000;

#[async_trait]
impl Store for SqliteStore {
    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.with_writer(move |w| w.write(batch)).await
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name FROM services ORDER BY name")?;
            let names = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(names)
        })
        .await
    }

    async fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let service = service.to_string();
        self.with_reader(move |conn| {
            let Some(sid) = service_id(conn, &service)? else {
                return Ok(Vec::new());
            };
            let mut stmt = conn.prepare_cached(
                "SELECT name, kind FROM operations WHERE service_id = ?1
                 AND (?2 IS NULL OR kind = ?2) ORDER BY name, kind",
            )?;
            let ops = stmt
                .query_map(params![sid, kind.map(|k| k as i32)], |r| {
                    Ok(Operation {
                        name: r.get(0)?,
                        kind: SpanKind::from_i32(r.get(1)?),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ops)
        })
        .await
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let q = query.clone();
        self.with_reader(move |conn| {
            let Some(sid) = service_id(conn, &q.service)? else {
                return Ok(Vec::new());
            };
            let mut sql = String::from(
                "SELECT s.trace_id, s.attributes, s.status_code, s.kind, r.attributes
                 FROM spans s INDEXED BY spans_by_service
                 JOIN resources r ON r.id = s.resource_id
                 WHERE s.service_id = ?1 AND s.start_ns >= ?2 AND s.start_ns <= ?3",
            );
            let mut args: Vec<SqlValue> = vec![
                sid.into(),
                q.start_ns.unwrap_or(i64::MIN).into(),
                q.end_ns.unwrap_or(i64::MAX).into(),
            ];
            if let Some(op) = &q.operation {
                args.push(op.clone().into());
                sql.push_str(&format!(
                    " AND s.op_id IN (SELECT id FROM operations WHERE service_id = ?1 AND name = ?{})",
                    args.len()
                ));
            }
            if let Some(min) = q.min_duration_ns {
                args.push(min.into());
                sql.push_str(&format!(" AND s.duration_ns >= ?{}", args.len()));
            }
            if let Some(max) = q.max_duration_ns {
                args.push(max.into());
                sql.push_str(&format!(" AND s.duration_ns <= ?{}", args.len()));
            }
            sql.push_str(" ORDER BY s.start_ns DESC");
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut seen = HashSet::new();
            let mut ids = Vec::new();
            let mut scanned = 0usize;
            while let Some(row) = rows.next()? {
                scanned += 1;
                if scanned > MAX_SEARCH_SCAN || ids.len() >= q.limit {
                    break;
                }
                let id: TraceId = blob_id(&row.get::<_, Vec<u8>>(0)?);
                if seen.contains(&id) {
                    continue;
                }
                if !q.filters.is_empty() {
                    let attrs: String = row.get(1)?;
                    let res: String = row.get(4)?;
                    if !filters_match(&q.filters, &attrs, &res, row.get(2)?, row.get(3)?) {
                        continue;
                    }
                }
                seen.insert(id);
                ids.push(id);
            }
            Ok(ids)
        })
        .await
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
        let ids = ids.to_vec();
        self.with_reader(move |conn| read_traces(conn, &ids)).await
    }

    async fn trace_summaries(&self, ids: &[TraceId]) -> Result<Vec<TraceSummary>, StoreError> {
        let ids = ids.to_vec();
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT t.start_ns, t.end_ns, t.span_count, t.error, sv.name, o.name
                 FROM traces t
                 LEFT JOIN services sv ON sv.id = t.root_service_id
                 LEFT JOIN operations o ON o.id = t.root_op_id
                 WHERE t.trace_id = ?1",
            )?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let row = stmt
                    .query_row([&id[..]], |r| {
                        let root = match (
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                        ) {
                            (Some(s), Some(o)) => Some((s, o)),
                            _ => None,
                        };
                        Ok(TraceSummary {
                            trace_id: id,
                            start_ns: r.get(0)?,
                            end_ns: r.get(1)?,
                            span_count: r.get(2)?,
                            error: r.get(3)?,
                            root,
                        })
                    })
                    .optional()?;
                out.extend(row);
            }
            Ok(out)
        })
        .await
    }

    async fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
        let q = query.clone();
        self.with_reader(move |conn| {
            let mut clauses: Vec<String> = Vec::new();
            let mut args: Vec<SqlValue> = Vec::new();
            let mut add = |clause: &str, v: SqlValue| {
                args.push(v);
                clauses.push(clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(service) = &q.service {
                match service_id(conn, service)? {
                    Some(sid) => add("l.service_id = ?", sid.into()),
                    None => return Ok(LogPage::default()),
                }
            }
            if let Some(t) = q.trace_id {
                add("l.trace_id = ?", t.to_vec().into());
            }
            if let Some(s) = q.span_id {
                add("l.span_id = ?", s.to_vec().into());
            }
            if let Some(c) = &q.correlation_id {
                add("l.correlation_id = ?", c.clone().into());
            }
            if let Some(sev) = q.severity_min {
                add("l.severity_number >= ?", i64::from(sev).into());
            }
            if let Some(text) = &q.text {
                let escaped = text
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                add("l.body LIKE ? ESCAPE '\\'", format!("%{escaped}%").into());
            }
            if let Some(start) = q.start_ns {
                add("l.time_ns >= ?", start.into());
            }
            if let Some(end) = q.end_ns {
                add("l.time_ns <= ?", end.into());
            }
            if let Some(c) = q.before {
                args.push(c.time_ns.into());
                args.push(c.id.into());
                clauses.push(format!(
                    "(l.time_ns, l.id) < (?{}, ?{})",
                    args.len() - 1,
                    args.len()
                ));
            }
            let filter = if clauses.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", clauses.join(" AND "))
            };
            args.push((q.limit as i64 + 1).into());
            let sql = format!(
                "{LOG_SELECT}{filter} ORDER BY l.time_ns DESC, l.id DESC LIMIT ?{}",
                args.len()
            );
            let mut stmt = conn.prepare(&sql)?;
            let mut cache = ResourceCache::default();
            let mut logs = stmt
                .query_map(params_from_iter(args), |r| log_from_row(r, &mut cache))?
                .collect::<Result<Vec<_>, _>>()?;
            let next = if logs.len() > q.limit {
                logs.truncate(q.limit);
                logs.last().map(|l| LogCursor {
                    time_ns: l.record.time_ns,
                    id: l.id,
                })
            } else {
                None
            };
            Ok(LogPage { logs, next })
        })
        .await
    }

    async fn correlated_trace_ids(
        &self,
        correlation_id: &str,
        limit: usize,
    ) -> Result<Vec<TraceId>, StoreError> {
        let cid = correlation_id.to_string();
        self.with_reader(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT trace_id FROM trace_parts WHERE correlation_id = ?1
                 GROUP BY trace_id ORDER BY min(start_ns), trace_id LIMIT ?2",
            )?;
            let ids = stmt
                .query_map(params![cid, limit as i64], |r| {
                    Ok(blob_id::<16>(r.get_ref(0)?.as_blob()?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
        .await
    }

    async fn correlated_logs(
        &self,
        correlation_id: &str,
        traces: &[TraceId],
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let cid = correlation_id.to_string();
        let traces = traces.to_vec();
        self.with_reader(move |conn| {
            let mut args: Vec<SqlValue> = vec![cid.into()];
            let mut sql = format!("{LOG_SELECT} WHERE l.correlation_id = ?1");
            if !traces.is_empty() {
                let marks: Vec<String> = (0..traces.len()).map(|i| format!("?{}", i + 2)).collect();
                sql.push_str(&format!(" OR l.trace_id IN ({})", marks.join(", ")));
                args.extend(traces.iter().map(|t| SqlValue::from(t.to_vec())));
            }
            args.push((limit as i64).into());
            sql.push_str(&format!(" ORDER BY l.time_ns, l.id LIMIT ?{}", args.len()));
            let mut stmt = conn.prepare(&sql)?;
            let mut cache = ResourceCache::default();
            let logs = stmt
                .query_map(params_from_iter(args), |r| {
                    log_from_row(r, &mut cache).map(|l| l.record)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(logs)
        })
        .await
    }

    async fn prune(&self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        self.with_writer(move |w| w.prune(policy)).await
    }

    async fn disk_usage(&self) -> Result<u64, StoreError> {
        let db = self.path.clone();
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        Ok(file_len(&db) + file_len(&wal))
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.with_reader(|conn| {
            let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if v != current_version() {
                return Err(StoreError::Task(format!(
                    "schema version {v}, expected {}",
                    current_version()
                )));
            }
            Ok(())
        })
        .await?;
        // The writer must be free of a panic and its connection usable.
        self.with_writer(|w| {
            w.conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }
}
