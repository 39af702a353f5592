//! The entry points the fuzz targets (`fuzz/`, cargo fuzz on nightly) drive, and
//! `tests/fuzz_corpus.rs` replays on stable: a scenario file's text through the same
//! parsing and checking `gauntlet load` runs, then the schedule maths the engine asks of
//! the plan; and a template through parsing and rendering. Whatever the input, each must
//! answer (a refusal is an answer); a panic, a hang or unbounded memory is a bug.

use std::path::Path;
use std::time::Duration;

use crate::scenario::{Plan, ScenarioFile, VarSpec};
use crate::template::Template;

/// A scenario file's text, compiled as `gauntlet load` compiles it, then asked what the
/// engine asks of a plan. The files it names (CSV data, JSON variables) are looked up by
/// file name in `files`, so a fuzzed path cannot send a reader to `/dev/zero` or a FIFO:
/// those readers are not what this target is for.
pub fn scenario_toml(data: &[u8], files: &Path) {
    let Some(plan) = compile(data, files) else {
        return;
    };
    let _ = (plan.duration(), plan.request_budget());
    for s in &plan.scenarios {
        let e = &s.executor;
        let _ = (e.max_vus(), e.duration(), e.target_rate(), s.pick_flow());
        for secs in [0, 1, 59, 3_600] {
            let _ = e.active_vus(Duration::from_secs(secs));
        }
        for i in [0, 1, 2, 1_000, 1 << 40] {
            let _ = e.intended_start(i);
        }
        if let Some(source) = &s.source {
            let _ = (source.for_vu(0), source.for_vu(u32::MAX), source.ends());
        }
    }
}

/// The plan `data` compiles to, its files looked up in `files`; `None` when it is refused.
pub fn compile(data: &[u8], files: &Path) -> Option<Plan> {
    let text = std::str::from_utf8(data).ok()?;
    let mut file = toml::from_str::<ScenarioFile>(text).ok()?;
    sandbox(&mut file, files);
    Plan::compile(file, &[]).ok()
}

fn sandbox(file: &mut ScenarioFile, files: &Path) {
    let inside = |p: &Path| files.join(p.file_name().unwrap_or_default());
    for spec in file.vars.values_mut() {
        if let VarSpec::FromJson { json_file, .. } = spec {
            *json_file = inside(json_file);
        }
    }
    for s in &mut file.scenarios {
        if let Some(d) = &mut s.data {
            *d = inside(d);
        }
    }
}

/// A template, parsed, then rendered with one variable (`name`) known; a template with no
/// placeholder must render as its own text.
pub fn template(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Template::parse(source) else {
        return;
    };
    let _ = t.vars().count();
    let rendered = t.render(7, |v| (v == "name").then_some("value"));
    if let Some(text) = t.as_static() {
        assert_eq!(
            rendered.as_deref(),
            Ok(text),
            "a static template renders as itself"
        );
        assert_eq!(text, source, "a template with no placeholder is its source");
    }
}
