//! The spool's drainer: a task that moves spooled batches into ClickHouse in large inserts,
//! in order, retrying with a pause while ClickHouse is away; each insert's deduplication token
//! names its batch range, so a retry is the same insert.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::rows::{LogRow, SpanRow};
use super::schema::{LOGS, TRACES};
use super::setup::Schema;
use super::spool::{Spool, SpooledBatch};

/// Inserts one write's rows; each table's insert carries a deduplication token, so that
/// inserting the same batch again (a retry after an unclear failure) stores nothing twice.
pub(super) async fn insert(
    client: &::clickhouse::Client,
    rows: &SpooledBatch,
) -> Result<(), ::clickhouse::error::Error> {
    if !rows.spans.is_empty() {
        let mut insert = client.insert::<SpanRow>(TRACES).await?.with_setting(
            "insert_deduplication_token",
            format!("{}-spans", rows.token),
        );
        for span in &rows.spans {
            insert.write(span).await?;
        }
        insert.end().await?;
    }
    if !rows.logs.is_empty() {
        let mut insert = client
            .insert::<LogRow>(LOGS)
            .await?
            .with_setting("insert_deduplication_token", format!("{}-logs", rows.token));
        for log in &rows.logs {
            insert.write(log).await?;
        }
        insert.end().await?;
    }
    if !rows.metrics.is_empty() {
        super::metrics::insert(client, &rows.token, &rows.metrics).await?;
    }
    Ok(())
}

/// What the drainer needs: the tables' client, how to prepare the schema, the spool.
pub(super) struct Drainer {
    pub(super) client: ::clickhouse::Client,
    pub(super) schema: Schema,
    pub(super) ready: Arc<AtomicBool>,
    pub(super) spool: Arc<Spool>,
    pub(super) wake: Arc<Notify>,
    pub(super) stop: watch::Receiver<bool>,
}

/// Prepares the schema if ClickHouse was unreachable at start, then inserts spooled batches,
/// oldest first, whenever there are some and ClickHouse takes them; waits a second after a
/// failure. Ends when the store closes.
pub(super) async fn drain(mut d: Drainer) {
    const BACKOFF: Duration = Duration::from_secs(1);
    loop {
        let pause = if drain_once(&d).await {
            Duration::from_secs(3600)
        } else {
            BACKOFF
        };
        tokio::select! {
            _ = d.wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = d.stop.changed() => return,
        }
        if *d.stop.borrow() {
            return;
        }
    }
}

/// Rows one insert gathers from the spool at most (more when one batch is larger).
pub(super) const INSERT_ROWS: usize = 32_768;

/// One pass; false when something failed and the pass should be retried.
pub(super) async fn drain_once(d: &Drainer) -> bool {
    if !d.ready.load(Ordering::Acquire) {
        match d.schema.prepare().await {
            Ok(()) => {
                tracing::info!(location = %d.schema.location, "ClickHouse answers: schema ready, draining the spool");
                d.ready.store(true, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ClickHouse is still not ready");
                return false;
            }
        }
    }
    loop {
        if *d.stop.borrow() {
            return true;
        }
        let s = d.spool.clone();
        let next = match tokio::task::spawn_blocking(move || s.next_insert(INSERT_ROWS)).await {
            Ok(r) => r,
            Err(_) => return false,
        };
        let (flight, batches) = match next {
            Ok(None) => return true,
            Ok(Some(n)) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading the spool failed; retrying");
                return false;
            }
        };
        let mut rows = SpooledBatch {
            token: flight.token.clone(),
            spans: Vec::new(),
            logs: Vec::new(),
            metrics: Vec::new(),
        };
        for (_, b) in batches {
            rows.spans.extend(b.spans);
            rows.logs.extend(b.logs);
            rows.metrics.extend(b.metrics);
        }
        if let Err(e) = insert(&d.client, &rows).await {
            tracing::warn!(error = %e, backlog = d.spool.backlog().0, "ClickHouse refuses the spooled batches; retrying");
            return false;
        }
        let s = d.spool.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || s.done(&flight)).await {
            tracing::error!(error = %e, "an inserted range could not be removed from the spool");
            return false;
        }
    }
}
