//! A newcomer's first hour, as the README leads it, from a directory that is not the
//! repository: start the demo, then run exactly the commands its banner prints (the load
//! scenario, the chaos experiment, a provider's verification). Each must run where the user
//! is, with no path that only resolves from the repository root; the verification must pass.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, Demo};

/// The banner's `next:` commands, by label (`load it`, `break it`, `contracts`).
fn next_steps(lines: &mpsc::Receiver<String>) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut steps = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the demo printed its next steps within 2 minutes");
        if line.contains("Press Ctrl-C") {
            return steps;
        }
        for label in ["load it", "break it", "contracts"] {
            if let Some(rest) = line.trim_start().strip_prefix(label) {
                steps.push((label.to_string(), rest.trim().to_string()));
            }
        }
    }
}

/// Runs a printed command as a user pastes it into a shell, in `dir`.
fn run_printed(dir: &std::path::Path, command: &str) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", command])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("sh runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_printed_next_steps_run_from_any_directory() {
    let home = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--ports",
            "auto",
            "--no-traffic",
            "--chaos",
            "--provider-states",
        ])
        .args(["--data-dir", "my-demo"])
        .current_dir(home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gauntlet demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let _demo = Demo(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let steps = next_steps(&lines);
    let labels: Vec<&str> = steps.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["load it", "break it", "contracts"], "{steps:?}");
    for (label, command) in &steps {
        assert!(
            command.starts_with('/') || command.starts_with('\''),
            "{label}: the binary by absolute path: {command}"
        );
        let (ok, said) = run_printed(home.path(), command);
        // What is asserted is that each command ran where the user is (its files and the
        // demo were found, it did its work), not the verdict of a load run or an experiment
        // under whatever else this machine is doing: tests/load.rs and
        // tests/chaos_experiments.rs judge those.
        let ran = match label.as_str() {
            "load it" => said.contains("requests in") && said.contains("status:"),
            "break it" => said.contains("steady state, before:") && said.contains("result:"),
            _ => ok && said.contains("interactions"),
        };
        assert!(ran, "{label}: `{command}` did not run as printed:\n{said}");
    }
}
