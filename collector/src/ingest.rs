//! The path from a decoded request to a committed one: group commit with backpressure.
//!
//! Receivers call [`Pipeline::submit`]; it reserves room in a bounded queue (counted in
//! rows), hands the batch to the single committer task and waits for its commit. The
//! committer takes everything queued at that moment and writes it in one transaction, so
//! many concurrent exports share one commit. A full queue is refused at once with a retry
//! hint; nothing is ever dropped after a client was told it succeeded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::metrics::Metrics;
use crate::model::Batch;
use crate::store::{Encoded, Store};

/// Why a batch was not committed. Both tell the client to retry later.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error(
        "the collector is busy: {queued} rows are waiting to be written; retry after {retry_after:?}"
    )]
    Busy {
        queued: usize,
        retry_after: Duration,
    },
    #[error("the store could not commit the data ({0}); retry after {retry_after:?}", retry_after = STORE_RETRY)]
    Store(String),
    #[error("the collector is shutting down")]
    ShuttingDown,
}

impl IngestError {
    pub fn retry_after(&self) -> Duration {
        match self {
            Self::Busy { retry_after, .. } => *retry_after,
            Self::Store(_) | Self::ShuttingDown => STORE_RETRY,
        }
    }
}

const STORE_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// Rows accepted but not yet committed, at most; past it, exports are refused.
    pub queue_rows: usize,
    /// Rows one commit takes at most.
    pub max_commit_rows: usize,
    /// How long an export may wait for room in the queue before it is refused.
    pub admission_wait: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            queue_rows: 256 * 1024,
            max_commit_rows: 64 * 1024,
            admission_wait: Duration::from_millis(200),
        }
    }
}

struct Job {
    batch: Encoded,
    _permit: Option<OwnedSemaphorePermit>,
    done: oneshot::Sender<Result<(), IngestError>>,
}

#[derive(Clone)]
pub struct Pipeline {
    store: Arc<dyn Store>,
    jobs: mpsc::UnboundedSender<Job>,
    room: Arc<Semaphore>,
    config: PipelineConfig,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("config", &self.config)
            .finish()
    }
}

impl Pipeline {
    /// Starts the committer task; it ends once every `Pipeline` clone is dropped and the
    /// queue is drained, so a clean shutdown commits what was accepted.
    pub fn start(
        store: Arc<dyn Store>,
        config: PipelineConfig,
        metrics: Arc<Metrics>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(config.queue_rows));
        let task = tokio::spawn(commit_loop(rx, store.clone(), config, metrics.clone()));
        (
            Self {
                store,
                jobs: tx,
                room,
                config,
                metrics,
            },
            task,
        )
    }

    /// Whether the store keeps metric points (receivers refuse metrics exports otherwise).
    pub fn keeps_metrics(&self) -> bool {
        self.store.capabilities().metrics
    }

    /// Commits `batch`, sharing a transaction with whatever else is waiting.
    pub async fn submit(&self, batch: Batch) -> Result<(), IngestError> {
        if batch.is_empty() {
            return Ok(());
        }
        // A batch bigger than the whole queue still goes in, alone.
        let rows = batch.rows().min(self.config.queue_rows) as u32;
        let permit = match tokio::time::timeout(
            self.config.admission_wait,
            self.room.clone().acquire_many_owned(rows),
        )
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(IngestError::ShuttingDown),
            Err(_) => {
                let queued = self.config.queue_rows - self.room.available_permits();
                return Err(IngestError::Busy {
                    queued,
                    retry_after: Duration::from_secs(1),
                });
            }
        };
        self.metrics.queue_rows.inc_by(i64::from(rows));
        // Here, on the request's own task: what the store can do before its commit runs in
        // parallel with other requests, not inside the one commit at a time.
        let batch = self.store.encode(batch);
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job {
                batch,
                _permit: Some(permit),
                done,
            })
            .map_err(|_| IngestError::ShuttingDown)?;
        wait.await.unwrap_or(Err(IngestError::ShuttingDown))
    }
}

async fn commit_loop(
    mut rx: mpsc::UnboundedReceiver<Job>,
    store: Arc<dyn Store>,
    config: PipelineConfig,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut waiting = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            rows += job.batch.rows();
            batches.push(job.batch);
            waiting.push((job.done, job._permit));
            if rows < config.max_commit_rows {
                next = rx.try_recv().ok();
            }
        }
        let started = Instant::now();
        let result = store
            .write_encoded(batches)
            .await
            .map_err(|e| IngestError::Store(e.to_string()));
        metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.commit_rows.observe(rows as f64);
        metrics.queue_rows.dec_by(rows as i64);
        if let Err(e) = &result {
            tracing::error!(error = %e, rows, "commit failed; clients were told to retry");
        }
        for (done, permit) in waiting {
            drop(permit);
            let _ = done.send(result.clone());
        }
    }
}
