//! How the SQLite store writes the model's typed parts into its columns, and reads them
//! back: span attributes packed (`packed.rs`, segment format 8; formats 1 to 7 and log rows
//! hold the plain JSON object of `model::Attributes`), events and links as JSON arrays
//! (`[{"time_unix_nano", "name", "attributes"}]`, `[{"trace_id", "span_id", "trace_state",
//! "attributes"}]`, IDs in hex), the status as the protocol's number. Old files read as new
//! ones do.

use serde::{Deserialize, Serialize};

use super::dictionary::Dictionary;
use super::packed::{self, Column, KeyIds};
use crate::model::{
    Attributes, Batch, Event, Link, LogRecord, MetricPoint, SpanRecord, hex, parse_span_id,
    parse_trace_id,
};
use rusqlite::types::ValueRef;

/// A batch as the writer inserts it: each record with its columns made, and its typed parts
/// taken out (so they are freed where they were encoded, not in the one writer).
/// [`Rows::encode`] runs on the submitting task (see `Store::encode`), where every core can
/// take a share; the commit only binds the bytes. A span's name, correlation ID and packed
/// attributes sit in its request's [`Arena`]: three allocations per request rather than three
/// per span, each of which the writer, on another thread, would otherwise free.
#[derive(Debug, Default)]
pub struct Rows {
    pub(super) spans: Vec<SpanRow>,
    pub(super) arenas: Vec<Arena>,
    pub(super) logs: Vec<LogRow>,
    /// Metric points go to their own file as they are (see `metrics.rs`).
    pub(super) metrics: Vec<MetricPoint>,
}

/// The text and bytes of one request's span rows.
#[derive(Debug, Default)]
pub(super) struct Arena {
    text: String,
    bytes: Vec<u8>,
}

#[derive(Debug)]
pub(super) struct SpanRow {
    /// The span without its name, correlation ID, attributes, events and links (they are
    /// below, or in the arena).
    pub(super) span: SpanRecord,
    /// Its arena in [`Rows::arenas`], and where its name and correlation ID are there.
    arena: u32,
    name: (u32, u32),
    correlation: Option<(u32, u32)>,
    /// Packed (`packed.rs`; in the arena), or JSON when a key had no ID.
    attributes: Column,
    pub(super) events: Option<String>,
    pub(super) links: Option<String>,
    /// Read from the attributes before they became text: the RED rollups count by it.
    pub(super) http_status: Option<u16>,
    /// Read likewise, for the edge rollups: what carried it ...
    pub(super) protocol: Option<std::borrow::Cow<'static, str>>,
    /// ... and its first link.
    pub(super) first_link: Option<(crate::model::TraceId, crate::model::SpanId)>,
}

#[derive(Debug)]
pub(super) struct LogRow {
    /// The log without its attributes (the column below).
    pub(super) log: LogRecord,
    pub(super) attributes: String,
}

impl Rows {
    /// Keys of the span attributes are numbered by `dictionary` (see `packed.rs`).
    pub(super) fn encode(batch: Batch, dictionary: &Dictionary) -> Self {
        let mut ids = KeyIds::new(dictionary);
        let mut arena = Arena::default();
        let spans = batch
            .spans
            .into_iter()
            .map(|s| SpanRow::encode(s, &mut ids, &mut arena))
            .collect();
        Self {
            spans,
            arenas: vec![arena],
            logs: batch.logs.into_iter().map(LogRow::encode).collect(),
            metrics: batch.metrics,
        }
    }

    /// The rows of several requests as one batch (a group commit). The first request's rows
    /// stay where they are and room for the others' is made once: a span row is a few
    /// hundred bytes, and growing the vector by doubling copied each request's rows again.
    pub fn concat(batches: Vec<Rows>) -> Rows {
        let spans = batches.iter().skip(1).map(|r| r.spans.len()).sum();
        let logs = batches.iter().skip(1).map(|r| r.logs.len()).sum();
        let mut batches = batches.into_iter();
        let Some(mut all) = batches.next() else {
            return Rows::default();
        };
        all.spans.reserve(spans);
        all.logs.reserve(logs);
        for rows in batches {
            all.extend(rows);
        }
        all
    }

    pub fn extend(&mut self, other: Rows) {
        let offset = self.arenas.len() as u32;
        self.arenas.extend(other.arenas);
        self.spans.extend(other.spans.into_iter().map(|mut s| {
            s.arena += offset;
            s
        }));
        self.logs.extend(other.logs);
        self.metrics.extend(other.metrics);
    }

    pub fn rows(&self) -> usize {
        self.spans.len() + self.logs.len() + self.metrics.len()
    }
}

impl Rows {
    /// The span's operation name.
    pub(super) fn name(&self, row: &SpanRow) -> &str {
        self.text(row, row.name)
    }

    pub(super) fn correlation(&self, row: &SpanRow) -> Option<&str> {
        row.correlation.map(|at| self.text(row, at))
    }

    /// The span's attributes column.
    pub(super) fn attributes<'a>(&'a self, row: &'a SpanRow) -> ValueRef<'a> {
        match &row.attributes {
            Column::Packed((from, to)) => ValueRef::Blob(
                self.arenas
                    .get(row.arena as usize)
                    .and_then(|a| a.bytes.get(*from as usize..*to as usize))
                    .unwrap_or_default(),
            ),
            Column::Json(json) => ValueRef::Text(json.as_bytes()),
        }
    }

    fn text(&self, row: &SpanRow, (from, to): (u32, u32)) -> &str {
        self.arenas
            .get(row.arena as usize)
            .and_then(|a| a.text.get(from as usize..to as usize))
            .unwrap_or_default()
    }
}

impl Arena {
    fn push_text(&mut self, text: &str) -> (u32, u32) {
        let from = self.text.len() as u32;
        self.text.push_str(text);
        (from, self.text.len() as u32)
    }
}

impl SpanRow {
    fn encode(mut span: SpanRecord, ids: &mut KeyIds<'_>, arena: &mut Arena) -> Self {
        let http_status = span.attributes.http_status();
        let protocol = span.attributes.protocol();
        let first_link = span.links.first().map(|l| (l.trace_id, l.span_id));
        let correlation = span.correlation_id.take();
        let attributes = packed::column(
            &std::mem::take(&mut span.attributes),
            correlation.as_deref(),
            ids,
            &mut arena.bytes,
        );
        let events = events_column(&std::mem::take(&mut span.events));
        let links = links_column(&std::mem::take(&mut span.links));
        Self {
            name: arena.push_text(&std::mem::take(&mut span.name)),
            correlation: correlation.map(|c| arena.push_text(&c)),
            arena: 0,
            span,
            attributes,
            events,
            links,
            http_status,
            protocol,
            first_link,
        }
    }
}

impl LogRow {
    fn encode(mut log: LogRecord) -> Self {
        let attributes = std::mem::take(&mut log.attributes).to_json();
        Self { log, attributes }
    }
}

/// An event as written (borrowed from the model) ...
#[derive(Serialize)]
struct EventOut<'a> {
    time_unix_nano: i64,
    name: &'a str,
    attributes: &'a Attributes,
}

/// ... and as read back (older files may lack a field).
#[derive(Deserialize)]
struct EventIn {
    #[serde(default)]
    time_unix_nano: i64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    attributes: Attributes,
}

#[derive(Serialize)]
struct LinkOut<'a> {
    trace_id: String,
    span_id: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    trace_state: &'a str,
    attributes: &'a Attributes,
}

#[derive(Deserialize)]
struct LinkIn {
    trace_id: String,
    span_id: String,
    #[serde(default)]
    trace_state: String,
    #[serde(default)]
    attributes: Attributes,
}

/// The events column: NULL when there are none (most spans), to spend no bytes on them.
pub(super) fn events_column(events: &[Event]) -> Option<String> {
    if events.is_empty() {
        return None;
    }
    let stored: Vec<EventOut> = events
        .iter()
        .map(|e| EventOut {
            time_unix_nano: e.time_ns,
            name: &e.name,
            attributes: &e.attributes,
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

/// The links column: NULL when there are none.
pub(super) fn links_column(links: &[Link]) -> Option<String> {
    if links.is_empty() {
        return None;
    }
    let stored: Vec<LinkOut> = links
        .iter()
        .map(|l| LinkOut {
            trace_id: hex(&l.trace_id),
            span_id: hex(&l.span_id),
            trace_state: &l.trace_state,
            attributes: &l.attributes,
        })
        .collect();
    serde_json::to_string(&stored).ok()
}

pub(super) fn events(column: Option<&str>) -> serde_json::Result<Vec<Event>> {
    let Some(json) = column else {
        return Ok(Vec::new());
    };
    let stored: Vec<EventIn> = serde_json::from_str(json)?;
    Ok(stored
        .into_iter()
        .map(|e| Event {
            time_ns: e.time_unix_nano,
            name: e.name,
            attributes: e.attributes,
        })
        .collect())
}

/// The stored links; one whose IDs do not parse (versions before 0.3 kept whatever bytes a
/// sender gave) points nowhere and is left out.
pub(super) fn links(column: Option<&str>) -> serde_json::Result<Vec<Link>> {
    let Some(json) = column else {
        return Ok(Vec::new());
    };
    let stored: Vec<LinkIn> = serde_json::from_str(json)?;
    Ok(stored
        .into_iter()
        .filter_map(|l| {
            Some(Link {
                trace_id: parse_trace_id(&l.trace_id)?,
                span_id: parse_span_id(&l.span_id)?,
                trace_state: l.trace_state,
                attributes: l.attributes,
            })
        })
        .collect())
}

/// A JSON column that does not parse is a damaged row: the read fails with the column named
/// rather than answering with the data missing.
pub(super) fn damaged(column: usize, e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Value;

    /// A group commit's rows: every request's spans, in order, each reading its name and
    /// correlation ID from its own request's arena.
    #[test]
    fn concatenated_rows_read_from_their_own_arenas() {
        let dictionary = Dictionary::default();
        let requests: Vec<Rows> = (0..3u8)
            .map(|r| {
                let spans = (0..=r)
                    .map(|i| {
                        let mut s = crate::model::SpanRecord::for_test([r; 16], [i; 8]);
                        s.name = format!("op {r}.{i}");
                        s.correlation_id = Some(format!("corr {r}"));
                        s
                    })
                    .collect();
                let batch = crate::model::Batch {
                    spans,
                    ..Default::default()
                };
                Rows::encode(batch, &dictionary)
            })
            .collect();
        let all = Rows::concat(requests);
        let read: Vec<(String, Option<&str>)> = all
            .spans
            .iter()
            .map(|row| (all.name(row).to_string(), all.correlation(row)))
            .collect();
        let expected: Vec<(String, Option<&str>)> =
            [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)]
                .iter()
                .map(|(r, i)| {
                    (
                        format!("op {r}.{i}"),
                        Some(["corr 0", "corr 1", "corr 2"][*r]),
                    )
                })
                .collect();
        assert_eq!(read, expected);
        assert_eq!(Rows::concat(Vec::new()).rows(), 0);
    }

    #[test]
    fn events_and_links_read_back_as_written() {
        let mut attributes = Attributes::new();
        attributes.push("attempt", Value::Int(2));
        let written_events = vec![Event {
            time_ns: 15,
            name: "retry".into(),
            attributes: attributes.clone(),
        }];
        let written_links = vec![Link {
            trace_id: [4; 16],
            span_id: [3; 8],
            trace_state: "k=v".into(),
            attributes,
        }];
        let e = events_column(&written_events);
        let l = links_column(&written_links);
        assert_eq!(events(e.as_deref()).ok(), Some(written_events));
        assert_eq!(links(l.as_deref()).ok(), Some(written_links));
        assert_eq!(events_column(&[]), None);
        assert_eq!(links(None).ok(), Some(Vec::new()));
    }

    #[test]
    fn the_forms_older_files_hold_still_read() {
        // As versions before the typed model wrote them (keys sorted, no trace_state).
        let old_events = r#"[{"attributes":{"k":"v","n":null},"name":"wr","time_unix_nano":7}]"#;
        let old_links = r#"[{"attributes":{},"span_id":"0303030303030303","trace_id":"04040404040404040404040404040404"},{"attributes":{},"span_id":"03","trace_id":""}]"#;
        let e = events(Some(old_events)).unwrap_or_default();
        assert_eq!(e[0].time_ns, 7);
        assert_eq!(e[0].attributes.get("n"), Some(&Value::Empty));
        let l = links(Some(old_links)).unwrap_or_default();
        assert_eq!(l.len(), 1, "the link with an empty trace ID points nowhere");
        assert_eq!(l[0].trace_id, [4; 16]);
        assert!(events(Some("{oops")).is_err());
    }
}
