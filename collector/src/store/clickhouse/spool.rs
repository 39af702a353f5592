//! The durable local spool in front of ClickHouse: while ClickHouse is down or failing, a
//! batch is written here (one file, fsynced, then renamed into place) and acknowledged; a
//! drainer inserts the spooled batches in order once ClickHouse answers again, each with a
//! deduplication token, so a batch retried after an unclear failure is not stored twice.
//! Bounded by bytes: when full, writes fail and exporters are told to retry (503).

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::rows::{LogRow, SpanRow};

/// One write's rows and the token that makes inserting them idempotent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpooledBatch {
    pub token: String,
    pub spans: Vec<SpanRow>,
    pub logs: Vec<LogRow>,
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

#[derive(Debug)]
struct State {
    next: u64,
    bytes: u64,
    /// Sequence number and size of every spooled batch, oldest first.
    files: VecDeque<(u64, u64)>,
}

/// Batches waiting for ClickHouse, in a directory of `<seq>.batch` files.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
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
                let size = entry.metadata().map_err(io)?.len();
                bytes += size;
                files.push((seq, size));
            }
        }
        files.sort_unstable();
        let next = files.last().map_or(0, |(seq, _)| seq + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            max_bytes,
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

    /// The oldest batch's sequence number.
    pub fn front(&self) -> Option<u64> {
        self.state().files.front().map(|(seq, _)| *seq)
    }

    pub fn is_empty(&self) -> bool {
        self.state().files.is_empty()
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
                s.files.push_back((seq, size));
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
        let Some((seq, _)) = self.state().files.front().copied() else {
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

    /// Forgets a batch ClickHouse confirmed (blocking).
    pub fn remove(&self, seq: u64) -> Result<(), SpoolError> {
        fs::remove_file(self.path(seq)).map_err(|source| SpoolError::Io {
            dir: self.dir.display().to_string(),
            source,
        })?;
        let mut s = self.state();
        if let Some(i) = s.files.iter().position(|(q, _)| *q == seq) {
            let (_, size) = s.files.remove(i).unwrap_or((seq, 0));
            s.bytes = s.bytes.saturating_sub(size);
        }
        Ok(())
    }

    /// Sets an unreadable batch aside (renamed `.corrupt`), so the ones after it can drain.
    pub fn quarantine(&self, seq: u64) {
        let from = self.path(seq);
        let _ = fs::rename(&from, from.with_extension("corrupt"));
        let mut s = self.state();
        if let Some(i) = s.files.iter().position(|(q, _)| *q == seq) {
            let (_, size) = s.files.remove(i).unwrap_or((seq, 0));
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
