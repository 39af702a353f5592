//! The entry point the fuzz target `experiment_toml` (`fuzz/`, cargo fuzz on nightly)
//! drives, and `tests/fuzz_corpus.rs` replays on stable: an experiment file's text through
//! the parsing and checks `gauntlet chaos` runs before it touches the demo. Whatever the
//! text, it must answer (a refusal is an answer); a panic, a hang or unbounded memory is a
//! bug.

use std::path::Path;

use crate::{Experiment, Kind};

/// An experiment file's text, read and checked as [`Experiment::load`] does. The load
/// scenarios it names are looked up by file name in `files`, so a fuzzed path cannot send
/// the reader to `/dev/zero` or a FIFO (the scenario reader is loadgen's own target).
pub fn experiment_toml(data: &[u8], files: &Path) {
    let _ = check(data, files);
}

/// The experiment `data` is, checked, its scenarios looked up in `files`; the reason
/// otherwise.
pub fn check(data: &[u8], files: &Path) -> Result<Experiment, String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    let mut e: Experiment = toml::from_str(text).map_err(|e| e.to_string())?;
    e.dir = files.to_path_buf();
    for a in e
        .steady_state
        .probes
        .iter_mut()
        .chain(&mut e.method)
        .chain(&mut e.rollbacks)
    {
        if let Kind::Load(l) = &mut a.kind {
            l.scenario = l.scenario.file_name().unwrap_or_default().into();
        }
    }
    e.check()?;
    Ok(e)
}
