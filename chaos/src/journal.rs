//! A run as a Chaos Toolkit journal (`--journal`), so tools that read Chaos Toolkit's
//! journals (`chaos report`, dashboards built on them) read Gauntlet's: the experiment in
//! Chaos Toolkit's shape, `status`, `deviated`, `steady_states.before/after`, `run` and
//! `rollbacks`, each activity's `status`, `output`, `tolerance_met`, times and duration.
//! Chaos Toolkit calls a steady state that failed *after* the method a deviation; Gauntlet
//! deviates on any probe that misses, so `deviated` is true whenever a probe did.
//! Activities name Gauntlet's probe or action type as a Python provider's function
//! (`gauntlet.chaos.<type>`), which is what they are to a reader of the journal.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::Experiment;
use crate::activity::Activity;
use crate::report::{Outcome, Phase, Report, Status};

/// The journal format this follows: chaoslib's, whose version readers pick templates by.
const CHAOSLIB_FORMAT: &str = "1.44.0";

/// The journal of `report`, a run of `exp`.
pub fn journal(exp: &Experiment, report: &Report) -> Value {
    let start_ms = report.started_unix_ms;
    let end_ms = start_ms + (report.elapsed_s * 1000.0) as u64;
    let items = |phase: Phase| -> Vec<Value> {
        report
            .activities
            .iter()
            .filter(|o| o.phase == phase)
            .map(|o| item(exp, o, start_ms))
            .collect()
    };
    let state = |phase: Phase| -> Value {
        let probes = items(phase);
        if probes.is_empty() {
            return Value::Null;
        }
        let met = report
            .activities
            .iter()
            .filter(|o| o.phase == phase)
            .all(|o| o.ok);
        json!({"steady_state_met": met, "probes": probes})
    };
    let (status, deviated) = match report.status {
        Status::Completed => ("completed", false),
        Status::Deviated => ("completed", true),
        Status::Aborted => ("aborted", false),
        Status::Interrupted => ("interrupted", false),
    };
    json!({
        "chaoslib-version": CHAOSLIB_FORMAT,
        "gauntlet-version": env!("CARGO_PKG_VERSION"),
        "platform": format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
        "node": node(),
        "experiment": experiment(exp),
        "start": iso(start_ms),
        "end": iso(end_ms),
        "duration": report.elapsed_s,
        "status": status,
        "deviated": deviated,
        "steady_states": {
            "before": state(Phase::Before),
            "after": state(Phase::After),
            "during": [],
        },
        "run": items(Phase::Method),
        "rollbacks": items(Phase::Rollback),
        "gauntlet": {"run_id": report.run_id, "mode": report.mode, "validates": report.validates},
    })
}

/// The experiment in Chaos Toolkit's shape.
fn experiment(exp: &Experiment) -> Value {
    let list = |acts: &[Activity]| -> Vec<Value> { acts.iter().map(activity).collect() };
    json!({
        "version": "1.0.0",
        "title": exp.title,
        "description": if exp.description.is_empty() { exp.title.clone() } else { exp.description.clone() },
        "tags": ["gauntlet", exp.validates.name()],
        "steady-state-hypothesis": {
            "title": exp.steady_state.title,
            "probes": list(&exp.steady_state.probes),
        },
        "method": list(&exp.method),
        "rollbacks": list(&exp.rollbacks),
    })
}

fn activity(a: &Activity) -> Value {
    let probe = a.kind.is_probe();
    let mut v = json!({
        "type": if probe { "probe" } else { "action" },
        "name": a.name,
        "provider": {
            "type": "python",
            "module": "gauntlet.chaos",
            "func": a.kind.label(),
            "arguments": {},
        },
        "background": a.background,
    });
    if probe {
        // The probe's tolerance is its own (thresholds, states); whether it was met is in
        // each run's `tolerance_met`.
        v["tolerance"] = json!(true);
        v["evidence"] = json!(a.evidence);
    }
    if let Some(p) = a.pause_after {
        v["pauses"] = json!({"after": p.as_secs_f64()});
    }
    v
}

/// One activity's run.
fn item(exp: &Experiment, o: &Outcome, run_start_ms: u64) -> Value {
    let start = run_start_ms + (o.at_s * 1000.0) as u64;
    let end = start + (o.took_s * 1000.0) as u64;
    let declared = exp
        .activities()
        .find(|a| a.name == o.name)
        .map(activity)
        .unwrap_or_else(
            || json!({"type": if o.probe { "probe" } else { "action" }, "name": o.name}),
        );
    let mut v = json!({
        "activity": declared,
        "status": if o.error.is_some() { "failed" } else { "succeeded" },
        "output": o.detail,
        "start": iso(start),
        "end": iso(end),
        "duration": o.took_s,
    });
    if o.probe {
        v["tolerance_met"] = json!(o.ok);
    }
    if let Some(e) = &o.error {
        v["exception"] = json!([e]);
    }
    v
}

/// RFC 3339 in UTC, as Python's `isoformat` reads it.
fn iso(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

fn node() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Mode, SCHEMA};

    #[test]
    fn a_deviated_run_reads_as_chaos_toolkit_writes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.toml");
        std::fs::write(
            &path,
            "title = \"t\"\nvalidates = \"retries\"\n[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"listed\"\ntype = \"registry\"\ninstance = \"inventory-2\"\nlisted = true\nevidence = true\n[[method]]\nname = \"kill it\"\ntype = \"kill\"\ninstance = \"inventory-2\"\n",
        )
        .expect("write");
        let exp = Experiment::load(&path).expect("experiment");
        let outcome = |phase, name: &str, probe, ok| Outcome {
            phase,
            name: name.into(),
            kind: "registry".into(),
            probe,
            evidence: probe,
            background: false,
            ok,
            error: None,
            detail: "seen".into(),
            at_s: 1.0,
            took_s: 0.5,
        };
        let report = Report {
            schema: SCHEMA.into(),
            title: "t".into(),
            validates: exp.validates,
            mode: Mode::Experiment,
            experiment: "e.toml".into(),
            run_id: "r".into(),
            status: Status::Deviated,
            started_unix_ms: 1_700_000_000_000,
            elapsed_s: 3.0,
            marker_trace: None,
            activities: vec![
                outcome(Phase::Before, "listed", true, true),
                outcome(Phase::Method, "kill it", false, true),
                outcome(Phase::After, "listed", true, false),
            ],
        };
        let j = journal(&exp, &report);
        assert_eq!(j["status"], "completed");
        assert_eq!(j["deviated"], true);
        assert_eq!(j["steady_states"]["before"]["steady_state_met"], true);
        assert_eq!(j["steady_states"]["after"]["steady_state_met"], false);
        assert_eq!(j["run"][0]["activity"]["type"], "action");
        assert_eq!(j["run"][0]["status"], "succeeded");
        assert_eq!(j["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(j["experiment"]["method"][0]["provider"]["func"], "kill");
        assert_eq!(j["rollbacks"], json!([]));
    }
}
