//! Background retention: every interval, delete data received longer ago than `--retention`
//! and, while the store is over `--max-disk`, the oldest data. Work is done in small
//! [`Store::prune`] steps with the writer released in between, so ingest never stalls long.

use std::sync::Arc;
use std::time::Duration;

use crate::model::now_ns;
use crate::store::{PruneReport, RetentionPolicy, Store};

#[derive(Debug, Clone, Copy)]
pub struct RetentionConfig {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
    pub interval: Duration,
}

impl RetentionConfig {
    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            older_than_ns: self
                .max_age
                .map(|age| now_ns().saturating_sub(age.as_nanos() as i64)),
            max_bytes: self.max_bytes,
        }
    }
}

/// Runs until `shutdown` fires.
pub async fn run(
    store: Arc<dyn Store>,
    config: RetentionConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if config.max_age.is_none() && config.max_bytes.is_none() {
        return;
    }
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let mut total = PruneReport::default();
        loop {
            match store.prune(config.policy()).await {
                Ok(step) => {
                    total.spans += step.spans;
                    total.logs += step.logs;
                    total.traces += step.traces;
                    total.metric_points += step.metric_points;
                    if !step.more || *shutdown.borrow() {
                        break;
                    }
                    // Let queued ingest commits take the writer between steps.
                    tokio::task::yield_now().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "retention step failed; will try again");
                    break;
                }
            }
        }
        if total.spans + total.logs + total.traces + total.metric_points > 0 {
            tracing::info!(
                spans = total.spans,
                logs = total.logs,
                traces = total.traces,
                metric_points = total.metric_points,
                "retention deleted old data"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::model::{Batch, SpanRecord, TraceId};
    use crate::store::sqlite::{SqliteConfig, SqliteStore};

    /// A span (the SQLite store ages data by when it was received, on the wall clock).
    fn old_span(trace: u8) -> SpanRecord {
        SpanRecord::for_test([trace; 16], [1; 8])
    }

    async fn write(store: &Arc<dyn Store>, trace: u8) {
        let mut batch = Batch::default();
        batch.spans.push(old_span(trace));
        store.write(batch).await.expect("write");
    }

    async fn held(store: &Arc<dyn Store>, trace: TraceId) -> bool {
        !store.traces(&[trace]).await.expect("read").is_empty()
    }

    /// Lets the retention task run what is due now (store work runs on blocking threads,
    /// which keep the paused clock from moving meanwhile).
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retention_runs_at_start_and_then_once_an_interval_on_tokios_clock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).expect("open"));
        // Anything received before a pass is old enough for it: what is measured here is
        // when passes run, on tokio's clock.
        let config = RetentionConfig {
            max_age: Some(Duration::ZERO),
            max_bytes: None,
            interval: Duration::from_secs(600),
        };
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        write(&store, 1).await;
        let task = tokio::spawn(run(store.clone(), config, shutdown));
        settle().await;
        assert!(!held(&store, [1; 16]).await, "the first pass runs at start");

        write(&store, 2).await;
        tokio::time::advance(Duration::from_secs(590)).await;
        settle().await;
        assert!(
            held(&store, [2; 16]).await,
            "nothing runs before the interval"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        settle().await;
        assert!(
            !held(&store, [2; 16]).await,
            "the next pass, one interval on"
        );

        stop.send(true).expect("retention is running");
        task.await.expect("retention ends on shutdown");
    }
}
