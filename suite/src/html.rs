//! The report as one self-contained HTML page: inline CSS, no script (each pattern's row
//! opens with `<details>`), nothing loaded from elsewhere. A row per pattern with both
//! runs' figures for every probe, then the contracts, the load runs (each linking its own
//! page beside this one) and the drift; every text from a file or a system is escaped.

use std::fmt::Write as _;

use gauntlet_chaos::proof::{Proof, Row, Verdict};
use gauntlet_chaos::report::Outcome;

use gauntlet_dashboards::links;

use crate::report::{SuiteReport, esc, verdict_word};

/// A run's window on the RED page of the gateway, with a few seconds each side.
fn red_link(ui: &str, start_ms: u64, end_ms: u64) -> String {
    let margin_us = 5_000_000;
    links::red_window(
        ui,
        "gateway",
        (start_ms as i64) * 1000 - margin_us,
        (end_ms as i64) * 1000 + margin_us,
    )
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d232b;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:2rem 0 .5rem}
.verdict{font-weight:600;padding:.15rem .5rem;border-radius:4px}
.passed,.held_and_proven,.ok{background:#dcf3e3;color:#125c2b}.failed,.broken,.FAIL{background:#fbe0e0;color:#8a1616}
.unproven,.aborted{background:#fff1cc;color:#6b4d00}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e3e6ea;padding:.3rem .4rem;text-align:left;vertical-align:top}
details{border:1px solid #e3e6ea;border-radius:6px;margin:.4rem 0;padding:.3rem .6rem}summary{cursor:pointer}
.muted{color:#5c6570}.ev{font-size:.8rem;font-weight:600;color:#0b5cad}code{font-size:.85rem}";

/// The page.
pub fn render(r: &SuiteReport) -> String {
    let mut h = String::from("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    let _ = write!(
        h,
        "<title>{} · gauntlet run</title><style>{STYLE}</style></head><body>",
        esc(&r.title)
    );
    let v = verdict_word(r.verdict);
    let _ = write!(
        h,
        "<h1>{}</h1><p><span class=\"verdict {v}\">{v}</span> {} <span class=\"muted\">({:.0} s, exit {})</span></p>",
        esc(&r.title),
        esc(&r.reason),
        r.elapsed_s,
        r.verdict.exit_code()
    );
    patterns(&mut h, r);
    contracts(&mut h, r);
    load(&mut h, r);
    assertions(&mut h, r);
    drift(&mut h, r);
    if let Some(c) = &r.collector {
        let _ = write!(
            h,
            "<h2>Traces</h2><p>The system's telemetry stays in <code>{}</code>. <code>{}</code> serves it again at <a href=\"{}\">{}</a>, where the links above open; its <a href=\"{}\">runs page</a> lists this run (<code>{}</code>) with its load runs and experiments.</p>",
            esc(&c.data_dir),
            esc(&c.reopen),
            esc(&c.ui),
            esc(&c.ui),
            esc(&links::runs(&c.ui)),
            esc(&r.run_id)
        );
    }
    for s in &r.skipped {
        let _ = write!(h, "<p class=\"muted\">Skipped: {}</p>", esc(s));
    }
    h.push_str("</body></html>\n");
    h
}

fn patterns(h: &mut String, r: &SuiteReport) {
    if r.patterns.is_empty() {
        return;
    }
    h.push_str("<h2>Patterns</h2>");
    let ui = r.collector.as_ref().map(|c| c.ui.as_str()).unwrap_or("");
    for p in &r.patterns {
        let v = verdict_class(p.verdict);
        // Open where the reader has something to look at: a pattern that failed, or the
        // only one.
        let open = if p.verdict != Verdict::HeldAndProven || r.patterns.len() == 1 {
            " open"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<details{open}><summary><b>{}</b> <span class=\"verdict {v}\">{}</span> {}</summary>",
            esc(p.pattern.name()),
            p.verdict.says(),
            esc(&p.reason)
        );
        let _ = write!(h, "<p class=\"muted\">{}</p>", esc(&p.experiment));
        if let Some(proof) = &p.proof {
            proof_table(h, proof, ui);
        }
        h.push_str("</details>");
    }
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::HeldAndProven => "held_and_proven",
        Verdict::Broken => "broken",
        Verdict::Unproven => "unproven",
        Verdict::Aborted => "aborted",
    }
}

fn proof_table(h: &mut String, proof: &Proof, ui: &str) {
    let _ = write!(h, "<p>{}", esc(&proof.title));
    let e = &proof.experiment;
    let end_ms = e.started_unix_ms + (e.elapsed_s * 1000.0) as u64;
    let _ = write!(
        h,
        " · <a href=\"{}\">the experiment's window on RED</a>",
        esc(&red_link(ui, e.started_unix_ms, end_ms))
    );
    // The control ran on a system of its own, whose traces stay in its own data directory.
    if let Some(trace) = &proof.experiment.marker_trace {
        let _ = write!(
            h,
            " · <a href=\"{}/trace/{}\">the experiment's window in the traces</a>",
            esc(ui),
            esc(trace)
        );
    }
    h.push_str("</p>");
    h.push_str(
        "<table><tr><th>probe</th><th>with the pattern</th><th>without it (control)</th></tr>",
    );
    for row in &proof.rows {
        probe_row(h, row);
    }
    h.push_str("</table>");
}

fn probe_row(h: &mut String, row: &Row) {
    let ev = if row.evidence {
        " <span class=\"ev\">evidence</span>"
    } else {
        ""
    };
    let _ = write!(
        h,
        "<tr><td>{} / {}{ev}</td>{}{}</tr>",
        esc(row.phase.title()),
        esc(&row.name),
        cell(row.experiment.as_ref()),
        cell(row.control.as_ref())
    );
}

fn cell(o: Option<&Outcome>) -> String {
    match o {
        None => "<td class=\"muted\">not reached</td>".into(),
        Some(o) => {
            let (class, mark) = match (&o.error, o.ok) {
                (Some(_), _) => ("FAIL", "error"),
                (None, true) => ("ok", "ok"),
                (None, false) => ("FAIL", "FAIL"),
            };
            format!(
                "<td><span class=\"verdict {class}\">{mark}</span> {}</td>",
                esc(o.error.as_deref().unwrap_or(&o.detail))
            )
        }
    }
}

fn contracts(h: &mut String, r: &SuiteReport) {
    if r.contracts.is_empty() {
        return;
    }
    h.push_str(
        "<h2>Contracts</h2><table><tr><th>provider</th><th>interactions</th><th>result</th></tr>",
    );
    for c in &r.contracts {
        let (class, word) = if c.passed {
            ("ok", "verified")
        } else {
            ("FAIL", "failed")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td><span class=\"verdict {class}\">{word}</span> {}</td></tr>",
            esc(&c.provider),
            c.interactions,
            esc(&c.failures.join("; "))
        );
    }
    h.push_str("</table>");
    if r.can_i_deploy.is_empty() {
        return;
    }
    h.push_str("<p>can-i-deploy at the run's version, after the verifications were published to the run's broker:</p><table><tr><th>pacticipant</th><th>answer</th></tr>");
    for d in &r.can_i_deploy {
        let (class, word) = if d.deployable {
            ("ok", "yes")
        } else {
            ("FAIL", "no")
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td><span class=\"verdict {class}\">{word}</span> {}</td></tr>",
            esc(&d.pacticipant),
            esc(&d.reason)
        );
    }
    h.push_str("</table>");
}

fn load(h: &mut String, r: &SuiteReport) {
    if r.load.is_empty() {
        return;
    }
    let ui = r.collector.as_ref().map(|c| c.ui.as_str()).unwrap_or("");
    h.push_str("<h2>Load</h2><table><tr><th>run</th><th>requests</th><th>p50 / p99</th><th>thresholds</th></tr>");
    for l in &r.load {
        let mut name = match &l.html {
            Some(page) => format!("<a href=\"{}\">{}</a>", esc(page), esc(&l.name)),
            None => esc(&l.name),
        };
        if l.start_unix_ms > 0 {
            let _ = write!(
                name,
                " · <a href=\"{}\">RED</a>",
                esc(&red_link(ui, l.start_unix_ms, l.end_unix_ms))
            );
        }
        let thresholds: Vec<String> = l
            .thresholds
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} (measured {})",
                    if t.passed { "kept" } else { "BREACHED" },
                    t.scope,
                    t.expr,
                    t.measured()
                )
            })
            .chain(l.error.iter().cloned())
            .collect();
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{} ({} failed)</td><td>{:.0} ms / {:.0} ms</td><td>{}</td></tr>",
            l.requests,
            l.failures,
            l.p50_ms,
            l.p99_ms,
            esc(&thresholds.join("; "))
        );
    }
    h.push_str("</table>");
}

fn assertions(h: &mut String, r: &SuiteReport) {
    if r.assertions.is_empty() {
        return;
    }
    let ui = r.collector.as_ref().map(|c| c.ui.as_str()).unwrap_or("");
    h.push_str("<h2>Trace assertions</h2>");
    for a in &r.assertions {
        let (class, word) = if a.passed {
            ("ok", "held")
        } else {
            ("FAIL", "failed")
        };
        let scope = a
            .load
            .as_ref()
            .map_or("its trigger's trace set".to_string(), |l| {
                format!("every trace set of load {l:?}")
            });
        let _ = write!(
            h,
            "<details{}><summary><b>{}</b> <span class=\"verdict {class}\">{word}</span> on {}</summary>",
            if a.passed { "" } else { " open" },
            esc(&a.file),
            esc(&scope)
        );
        if let Some(e) = &a.error {
            let _ = write!(h, "<p class=\"FAIL\">{}</p>", esc(e));
        }
        if let Some(report) = &a.report {
            let _ = write!(h, "<p class=\"muted\">{}</p>", esc(&report.trigger));
            h.push_str("<table><tr><th>spec</th><th>sets passed</th><th>failures</th></tr>");
            for spec in &report.specs {
                let (class, word) = if spec.passed {
                    ("ok", "ok")
                } else {
                    ("FAIL", "FAIL")
                };
                let failures: Vec<String> = spec
                    .failures
                    .iter()
                    .map(|f| {
                        let at = f.span.as_ref().map_or(String::new(), |s| {
                            format!(
                                " on <a href=\"{}/trace/{}\">{} {}</a>",
                                esc(ui),
                                esc(&s.trace_id),
                                esc(&s.service),
                                esc(&s.name)
                            )
                        });
                        format!(
                            "<code>{}</code> was {}{at} ({})",
                            esc(&f.assertion),
                            esc(&f.actual),
                            esc(&f.set)
                        )
                    })
                    .collect();
                let _ = write!(
                    h,
                    "<tr><td><span class=\"verdict {class}\">{word}</span> {}</td><td>{}</td><td>{}</td></tr>",
                    esc(&spec.name),
                    esc(&spec.tally()),
                    failures.join("<br>")
                );
            }
            h.push_str("</table>");
        }
        h.push_str("</details>");
    }
}

fn drift(h: &mut String, r: &SuiteReport) {
    let Some(d) = &r.drift else {
        return;
    };
    let _ = write!(
        h,
        "<h2>Drift</h2><p>{} traces read: {} contracted interactions seen, {} calls without a contract, {} contracts the run never exercised (reported, not judged).</p>",
        d.traces,
        d.covered,
        d.uncovered.len(),
        d.unseen.len()
    );
    for (title, list) in [
        ("without a contract", &d.uncovered),
        ("never exercised", &d.unseen),
    ] {
        if !list.is_empty() {
            let _ = write!(h, "<details><summary>{title}</summary><ul>");
            for i in list {
                let _ = write!(h, "<li><code>{}</code></li>", esc(i));
            }
            h.push_str("</ul></details>");
        }
    }
    if let Some(e) = &d.error {
        let _ = write!(h, "<p class=\"FAIL\">{}</p>", esc(e));
    }
}
