//! The durable local spool in front of ClickHouse, a write-ahead log: a write is acknowledged
//! once its batch is here (one file, fsynced, then renamed into place); a drainer inserts the
//! spooled batches in order, many at once (ClickHouse wants large inserts), and while
//! ClickHouse is down they wait here. Each insert's range of batches is recorded before it is
//! sent and named by a token, so an insert retried after a crash or an unclear failure covers
//! the same batches with the same token and ClickHouse stores it once. Bounded by bytes: when
//! full, writes fail and exporters are told to retry (503).

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::metrics::MetricRow;
use super::rows::{LogRow, SpanRow};

/// One write's rows and the token that makes inserting them idempotent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledBatch {
    pub token: String,
    pub spans: Vec<SpanRow>,
    pub logs: Vec<LogRow>,
    /// Absent from batches spooled before metrics were kept.
    #[serde(default)]
    pub metrics: Vec<MetricRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "the local spool in {dir} is full ({bytes} of {max} bytes) while ClickHouse is not accepting inserts"
    )]
    Full { dir: String, bytes: u64, max: u64 },
    #[error("the local spool in {dir}: {source}")]
    Io {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("spooled batch {path} is unreadable: {reason}")]
    Corrupt { path: String, reason: String },
}

/// Spooled batches with their sequence numbers, oldest first.
pub type Batches = Vec<(u64, SpooledBatch)>;

/// An insert being made: a range of batches and the token that names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    pub first: u64,
    pub last: u64,
    pub token: String,
}

#[derive(Debug)]
struct State {
    next: u64,
    bytes: u64,
    /// Sequence number, size and write time (ns since the epoch) of every spooled batch,
    /// oldest first.
    files: VecDeque<(u64, u64, i64)>,
}

/// Batches waiting for ClickHouse, in a directory of `<seq>.batch` files.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// Names this spool's batches in tokens: set whenever the spool starts empty, so a token
    /// is never reused for other rows (ClickHouse remembers recent tokens).
    epoch: String,
    state: Mutex<State>,
}

impl Spool {
    /// Opens the spool, picking up what an earlier run left (its drain continues).
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let io = |source| SpoolError::Io {
            dir: dir.display().to_string(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let mut files = Vec::new();
        let mut bytes = 0;
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A write that never completed was never acknowledged.
                let _ = fs::remove_file(entry.path());
                continue;
            }
            if let Some(seq) = name
                .strip_suffix(".batch")
                .and_then(|s| s.parse::<u64>().ok())
            {
                let meta = entry.metadata().map_err(io)?;
                let written = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i64);
                bytes += meta.len();
                files.push((seq, meta.len(), written));
            }
        }
        files.sort_unstable();
        let next = files.last().map_or(0, |(seq, ..)| seq + 1);
        let epoch_file = dir.join("epoch");
        let epoch = match fs::read_to_string(&epoch_file) {
            Ok(e) if !files.is_empty() && !e.trim().is_empty() => e.trim().to_string(),
            _ => {
                let e = format!("{:x}", crate::model::now_ns());
                fs::write(&epoch_file, &e).map_err(io)?;
                fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
                e
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            epoch,
            state: Mutex::new(State {
                next,
                bytes,
                files: files.into(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.state().files.is_empty()
    }

    /// When the oldest batch still waiting was written (ns since the epoch; after a
    /// restart, its file's modification time).
    pub fn oldest_written_ns(&self) -> Option<i64> {
        self.state().files.front().map(|(.., written)| *written)
    }

    /// Batches and bytes waiting.
    pub fn backlog(&self) -> (usize, u64) {
        let s = self.state();
        (s.files.len(), s.bytes)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }

    /// Writes the batch durably (blocking: call it off the async workers).
    pub fn append(&self, batch: &SpooledBatch) -> Result<(), SpoolError> {
        let io = |source| SpoolError::Io {
            dir: self.dir.display().to_string(),
            source,
        };
        let body = serde_json::to_vec(batch).map_err(|e| io(std::io::Error::other(e)))?;
        let size = body.len() as u64;
        let seq = {
            let mut s = self.state();
            if s.bytes + size > self.max_bytes {
                return Err(SpoolError::Full {
                    dir: self.dir.display().to_string(),
                    bytes: s.bytes,
                    max: self.max_bytes,
                });
            }
            // Reserve the room and the number before the slow part.
            s.bytes += size;
            let seq = s.next;
            s.next += 1;
            seq
        };
        let written = (|| {
            let tmp = self.dir.join(format!("{seq:020}.tmp"));
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(seq))?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        let mut s = self.state();
        match written {
            Ok(()) => {
                // Appends are serialized by the store's one writer, so this stays ordered.
                s.files.push_back((seq, size, crate::model::now_ns()));
                Ok(())
            }
            Err(e) => {
                s.bytes -= size;
                Err(io(e))
            }
        }
    }

    /// The oldest spooled batch (blocking).
    pub fn oldest(&self) -> Result<Option<(u64, SpooledBatch)>, SpoolError> {
        let Some((seq, ..)) = self.state().files.front().copied() else {
            return Ok(None);
        };
        let path = self.path(seq);
        let body = fs::read(&path).map_err(|source| SpoolError::Io {
            dir: self.dir.display().to_string(),
            source,
        })?;
        let batch = serde_json::from_slice(&body).map_err(|e| SpoolError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some((seq, batch)))
    }

    /// The oldest batches, in order, until they hold `rows` rows (at least one batch), and
    /// the insert that carries them: the one recorded before a crash if there is one (the
    /// same batches under the same token), else a new one, recorded before it is returned.
    pub fn next_insert(&self, rows: usize) -> Result<Option<(InFlight, Batches)>, SpoolError> {
        let seqs: Vec<u64> = self.state().files.iter().map(|(q, ..)| *q).collect();
        let Some(&front) = seqs.first() else {
            return Ok(None);
        };
        let marker = self.dir.join("inflight");
        let recorded = fs::read(&marker)
            .ok()
            .and_then(|b| serde_json::from_slice::<InFlight>(&b).ok())
            .filter(|f| f.last >= front);
        let mut batches = Vec::new();
        let flight = match recorded {
            Some(f) => {
                for seq in seqs
                    .iter()
                    .copied()
                    .filter(|q| (f.first..=f.last).contains(q))
                {
                    if let Some(b) = self.read_or_set_aside(seq)? {
                        batches.push((seq, b));
                    }
                }
                f
            }
            None => {
                let mut n = 0;
                for seq in seqs {
                    if n >= rows && !batches.is_empty() {
                        break;
                    }
                    let Some(b) = self.read_or_set_aside(seq)? else {
                        continue;
                    };
                    n += b.spans.len() + b.logs.len();
                    batches.push((seq, b));
                }
                if batches.is_empty() {
                    return Ok(None);
                }
                let (first, last) = (batches[0].0, batches[batches.len() - 1].0);
                let f = InFlight {
                    first,
                    last,
                    token: format!("spool-{}-{first}-{last}", self.epoch),
                };
                let io = |source| SpoolError::Io {
                    dir: self.dir.display().to_string(),
                    source,
                };
                let tmp = self.dir.join("inflight.tmp");
                let body = serde_json::to_vec(&f).map_err(|e| io(std::io::Error::other(e)))?;
                fs::write(&tmp, body).map_err(io)?;
                fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .map_err(io)?;
                fs::rename(&tmp, &marker).map_err(io)?;
                f
            }
        };
        Ok(Some((flight, batches)))
    }

    /// A batch, or `None` when it is unreadable: it is set aside (`.corrupt`) so the ones
    /// after it can drain, and said so in the log.
    fn read_or_set_aside(&self, seq: u64) -> Result<Option<SpooledBatch>, SpoolError> {
        match self.read(seq) {
            Ok(b) => Ok(Some(b)),
            Err(e @ SpoolError::Corrupt { .. }) => {
                tracing::error!(error = %e, "set aside an unreadable spooled batch");
                self.quarantine(seq);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn read(&self, seq: u64) -> Result<SpooledBatch, SpoolError> {
        let path = self.path(seq);
        let body = fs::read(&path).map_err(|source| SpoolError::Io {
            dir: self.dir.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&body).map_err(|e| SpoolError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Forgets an insert ClickHouse confirmed: its batches, then its record (blocking).
    pub fn done(&self, flight: &InFlight) -> Result<(), SpoolError> {
        let seqs: Vec<u64> = self
            .state()
            .files
            .iter()
            .map(|(q, ..)| *q)
            .filter(|q| (flight.first..=flight.last).contains(q))
            .collect();
        for seq in seqs {
            self.remove(seq)?;
        }
        let _ = fs::remove_file(self.dir.join("inflight"));
        Ok(())
    }

    /// Forgets a batch ClickHouse confirmed (blocking).
    pub fn remove(&self, seq: u64) -> Result<(), SpoolError> {
        fs::remove_file(self.path(seq)).map_err(|source| SpoolError::Io {
            dir: self.dir.display().to_string(),
            source,
        })?;
        let mut s = self.state();
        if let Some(i) = s.files.iter().position(|(q, ..)| *q == seq) {
            let (_, size, _) = s.files.remove(i).unwrap_or((seq, 0, 0));
            s.bytes = s.bytes.saturating_sub(size);
        }
        Ok(())
    }

    /// Sets an unreadable batch aside (renamed `.corrupt`), so the ones after it can drain.
    pub fn quarantine(&self, seq: u64) {
        let from = self.path(seq);
        let _ = fs::rename(&from, from.with_extension("corrupt"));
        let mut s = self.state();
        if let Some(i) = s.files.iter().position(|(q, ..)| *q == seq) {
            let (_, size, _) = s.files.remove(i).unwrap_or((seq, 0, 0));
            s.bytes = s.bytes.saturating_sub(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(token: &str) -> SpooledBatch {
        SpooledBatch {
            token: token.into(),
            spans: Vec::new(),
            logs: Vec::new(),
            metrics: Vec::new(),
        }
    }

    #[test]
    fn batches_drain_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open");
        for t in ["a", "b", "c"] {
            spool.append(&batch(t)).expect("append");
        }
        let (seq, first) = spool.oldest().expect("read").expect("one");
        assert_eq!(first.token, "a");
        spool.remove(seq).expect("remove");
        drop(spool);
        std::fs::write(dir.path().join("00000000000000000009.tmp"), b"half").expect("tmp");
        let again = Spool::open(dir.path(), 1 << 20).expect("reopen");
        assert_eq!(
            again.backlog().0,
            2,
            "b and c are still waiting; the .tmp is gone"
        );
        assert_eq!(again.oldest().expect("read").expect("b").1.token, "b");
        again.append(&batch("d")).expect("append after reopen");
        let mut order = Vec::new();
        while let Some((seq, b)) = again.oldest().expect("read") {
            order.push(b.token);
            again.remove(seq).expect("remove");
        }
        assert_eq!(order, ["b", "c", "d"]);
        assert!(again.is_empty());
        assert_eq!(again.backlog(), (0, 0));
    }

    #[test]
    fn the_oldest_waiting_batch_says_when_it_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open");
        assert_eq!(spool.oldest_written_ns(), None);
        let before = crate::model::now_ns();
        spool.append(&batch("a")).expect("a");
        spool.append(&batch("b")).expect("b");
        let first = spool.oldest_written_ns().expect("a waits");
        assert!(
            first >= before && first <= crate::model::now_ns(),
            "{first}"
        );
        let (seq, _) = spool.oldest().expect("read").expect("a");
        spool.remove(seq).expect("remove");
        let second = spool.oldest_written_ns().expect("b waits");
        assert!(second >= first);
        drop(spool);
        // After a restart, from the file: within a second of when it was written.
        let again = Spool::open(dir.path(), 1 << 20).expect("reopen");
        let reread = again.oldest_written_ns().expect("b still waits");
        assert!(
            (reread - second).abs() < 1_000_000_000,
            "{reread} vs {second}"
        );
    }

    #[test]
    fn a_full_spool_refuses_and_frees_room_as_it_drains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = serde_json::to_vec(&batch("x")).expect("json").len() as u64;
        let spool = Spool::open(dir.path(), one * 2).expect("open");
        spool.append(&batch("x")).expect("first");
        spool.append(&batch("y")).expect("second");
        let err = spool.append(&batch("z")).expect_err("full");
        assert!(matches!(err, SpoolError::Full { .. }), "{err}");
        let (seq, _) = spool.oldest().expect("read").expect("x");
        spool.remove(seq).expect("remove");
        spool.append(&batch("z")).expect("room again");
    }

    fn rows(token: &str, n: usize) -> SpooledBatch {
        let span =
            crate::store::clickhouse::rows::SpanRow::from_record(&crate::model::SpanRecord {
                trace_id: [1; 16],
                span_id: [2; 8],
                parent_span_id: None,
                resource: std::sync::Arc::new(crate::model::Resource {
                    service: "s".into(),
                    attributes: crate::model::Attributes::new(),
                }),
                scope_name: "".into(),
                scope_version: "".into(),
                name: "op".into(),
                kind: crate::model::SpanKind::Server,
                start_ns: 1,
                end_ns: 2,
                status_code: crate::model::StatusCode::Unset,
                status_message: String::new(),
                attributes: crate::model::Attributes::new(),
                events: Vec::new(),
                links: Vec::new(),
                correlation_id: None,
                trace_state: String::new(),
                flags: 1,
            });
        SpooledBatch {
            token: token.into(),
            spans: vec![span; n],
            logs: Vec::new(),
            metrics: Vec::new(),
        }
    }

    #[test]
    fn inserts_gather_batches_and_a_retry_after_a_crash_is_the_same_insert() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 24).expect("open");
        for t in ["a", "b", "c", "d"] {
            spool.append(&rows(t, 10)).expect("append");
        }
        let (flight, batches) = spool.next_insert(25).expect("read").expect("some");
        let tokens: Vec<&str> = batches.iter().map(|(_, b)| b.token.as_str()).collect();
        assert_eq!(tokens, ["a", "b", "c"], "until 25 rows are gathered");
        // A crash before the insert was confirmed: the next run retries the same insert,
        // even though it would now gather differently.
        drop(spool);
        let again = Spool::open(dir.path(), 1 << 24).expect("reopen");
        again.append(&rows("e", 10)).expect("append");
        let (retry, batches) = again.next_insert(1000).expect("read").expect("some");
        assert_eq!(retry, flight, "same batches, same token");
        assert_eq!(batches.len(), 3);
        again.done(&retry).expect("done");
        let (next, batches) = again.next_insert(1000).expect("read").expect("rest");
        assert_ne!(next.token, flight.token);
        let tokens: Vec<&str> = batches.iter().map(|(_, b)| b.token.as_str()).collect();
        assert_eq!(tokens, ["d", "e"]);
        again.done(&next).expect("done");
        assert!(again.next_insert(1000).expect("read").is_none());
        // Empty again: a new epoch, so tokens are never reused for other rows.
        drop(again);
        let fresh = Spool::open(dir.path(), 1 << 24).expect("reopen");
        fresh.append(&rows("f", 1)).expect("append");
        let (f, _) = fresh.next_insert(1).expect("read").expect("one");
        assert_ne!(
            f.token.split('-').nth(1),
            next.token.split('-').nth(1),
            "a new epoch"
        );
    }

    #[test]
    fn an_unreadable_batch_is_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path(), 1 << 20).expect("open");
        spool.append(&batch("a")).expect("a");
        spool.append(&batch("b")).expect("b");
        let (seq, _) = spool.oldest().expect("read").expect("a");
        std::fs::write(spool.path(seq), b"{not json").expect("corrupt it");
        let err = spool.oldest().expect_err("corrupt");
        assert!(matches!(err, SpoolError::Corrupt { .. }), "{err}");
        spool.quarantine(seq);
        assert_eq!(spool.oldest().expect("read").expect("b").1.token, "b");
        assert!(spool.path(seq).with_extension("corrupt").exists());
    }
}
