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
        if total.spans + total.logs + total.traces > 0 {
            tracing::info!(
                spans = total.spans,
                logs = total.logs,
                traces = total.traces,
                "retention deleted old data"
            );
        }
    }
}
