//! The WHERE clauses the store's queries build: conditions with parameters bound by name, so
//! no value is ever spliced into SQL text.

use super::MAX_IDS;
use crate::model::{TraceId, hex};

/// A query parameter, bound by name (`{name:Type}` in the SQL).
pub(super) enum Param {
    Str(&'static str, String),
    Strs(&'static str, Vec<String>),
    I64(&'static str, i64),
    U64(&'static str, u64),
}

impl Param {
    pub(super) fn apply(self, q: ::clickhouse::query::Query) -> ::clickhouse::query::Query {
        match self {
            Param::Str(n, v) => q.param(n, v),
            Param::Strs(n, v) => q.param(n, v),
            Param::I64(n, v) => q.param(n, v),
            Param::U64(n, v) => q.param(n, v),
        }
    }
}

/// A WHERE clause and the query parameters it names.
#[derive(Default)]
pub(super) struct Where {
    pub(super) cond: Vec<String>,
    pub(super) bind: Vec<Param>,
}

impl Where {
    pub(super) fn raw(&mut self, condition: impl Into<String>) {
        self.cond.push(condition.into());
    }

    pub(super) fn with(&mut self, condition: impl Into<String>, param: Param) {
        self.cond.push(condition.into());
        self.bind.push(param);
    }

    /// `Timestamp` within `[start, end]` (nanoseconds), either bound optional.
    pub(super) fn window(&mut self, start: Option<i64>, end: Option<i64>) {
        if let Some(start) = start {
            self.with(
                "Timestamp >= fromUnixTimestamp64Nano({start:Int64})",
                Param::I64("start", start),
            );
        }
        if let Some(end) = end {
            self.with(
                "Timestamp <= fromUnixTimestamp64Nano({end:Int64})",
                Param::I64("end", end),
            );
        }
    }

    /// `SpanKind` one of `kinds`, in either spelling exporters write (none: any kind).
    pub(super) fn kinds(&mut self, kinds: &[crate::model::SpanKind]) {
        if kinds.is_empty() {
            return;
        }
        let names: Vec<String> = kinds
            .iter()
            .flat_map(|k| super::rows::kind_names(*k))
            .map(|n| format!("'{n}'"))
            .collect();
        self.raw(format!("SpanKind IN ({})", names.join(", ")));
    }

    pub(super) fn sql(&self) -> String {
        if self.cond.is_empty() {
            "1".into()
        } else {
            self.cond.join(" AND ")
        }
    }

    pub(super) fn query(
        self,
        client: &::clickhouse::Client,
        sql: &str,
    ) -> ::clickhouse::query::Query {
        self.bind
            .into_iter()
            .fold(client.query(sql), |q, p| p.apply(q))
    }
}

pub(super) fn ids_hex(ids: &[TraceId]) -> Vec<String> {
    ids.iter().take(MAX_IDS).map(|t| hex(t)).collect()
}
