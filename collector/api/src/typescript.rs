//! The UI's TypeScript declarations of every answer, generated from the Rust types with
//! `ts-rs` into one file, `dashboards/web/src/api-types.ts`. A test fails when the committed
//! file differs from what the types give; `cargo run -p gauntlet-query-api --features
//! typescript --example typescript` rewrites it.

use ts_rs::{Config, TS};

use crate::correlation::{SpanLink, Timeline, TimelineItem, TimelineSpan, TraceSummary};
use crate::dependencies::{Dependencies, DependencyLink};
use crate::jaeger::{Operation, Process, RefType, Reference, Span, SpanLog, Tag, TagValue, Trace};
use crate::logs::{LogCursor, LogEntry, LogPage};
use crate::markers::{Marker, MarkerKind, Markers};
use crate::prometheus::{
    ExemplarData, ExemplarSeries, MatrixSeries, PromErrorType, PromResponse, QueryData, SamplePair,
    VectorSample,
};
use crate::red::{Red, RedPoint, RedSeries};
use crate::{AttributeValue, Envelope, ErrorBody, ErrorItem, SpanKind};

/// Where the UI keeps the generated file, from the repository's root.
pub const PATH: &str = "dashboards/web/src/api-types.ts";

fn decl<T: TS + ?Sized>(cfg: &Config) -> String {
    format!("export {}\n", T::decl(cfg))
}

/// The whole file.
pub fn declarations() -> String {
    // Every integer the API sends fits a double: times in µs and ns until the year 2262.
    let cfg = Config::new().with_large_int("number");
    let decls = [
        decl::<Envelope<()>>(&cfg),
        decl::<ErrorItem>(&cfg),
        decl::<ErrorBody>(&cfg),
        decl::<AttributeValue>(&cfg),
        decl::<SpanKind>(&cfg),
        decl::<Trace>(&cfg),
        decl::<Process>(&cfg),
        decl::<Span>(&cfg),
        decl::<RefType>(&cfg),
        decl::<Reference>(&cfg),
        decl::<SpanLog>(&cfg),
        decl::<Tag>(&cfg),
        decl::<TagValue>(&cfg),
        decl::<Operation>(&cfg),
        decl::<LogEntry>(&cfg),
        decl::<LogPage>(&cfg),
        decl::<LogCursor>(&cfg),
        decl::<Timeline>(&cfg),
        decl::<TimelineItem>(&cfg),
        decl::<TimelineSpan>(&cfg),
        decl::<SpanLink>(&cfg),
        decl::<TraceSummary>(&cfg),
        decl::<Red>(&cfg),
        decl::<RedSeries>(&cfg),
        decl::<RedPoint>(&cfg),
        decl::<Dependencies>(&cfg),
        decl::<DependencyLink>(&cfg),
        decl::<Markers>(&cfg),
        decl::<Marker>(&cfg),
        decl::<MarkerKind>(&cfg),
        decl::<PromResponse<()>>(&cfg),
        decl::<PromErrorType>(&cfg),
        decl::<QueryData>(&cfg),
        decl::<SamplePair>(&cfg),
        decl::<VectorSample>(&cfg),
        decl::<MatrixSeries>(&cfg),
        decl::<ExemplarSeries>(&cfg),
        decl::<ExemplarData>(&cfg),
    ];
    let mut out = String::from(
        "// Generated from collector/api (gauntlet-query-api) by ts-rs: do not edit.\n\
         // cargo run -p gauntlet-query-api --features typescript --example typescript\n\n",
    );
    out.push_str(&decls.join("\n"));
    out.push_str(&format!(
        "\n/** Attribute keys under which the collector finds a correlation ID. */\nexport const CORRELATION_KEYS = {};\n",
        const_array(&crate::CORRELATION_KEYS)
    ));
    out.push_str(&format!(
        "\n/** The services Gauntlet's own tools report as (they export a sample of their spans). */\nexport const TOOL_SERVICES = {};\n",
        const_array(
            &crate::markers::SOURCES
                .iter()
                .map(|s| s.service)
                .collect::<Vec<_>>()
        )
    ));
    out
}

/// A list of strings as a TypeScript `as const` array.
fn const_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}] as const", quoted.join(", "))
}
