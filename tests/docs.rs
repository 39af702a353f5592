//! Every `sh` example in README.md and docs/*.md, run as written: each block follows a marker
//! that says where it runs, `<!-- doc-test: collector -->` (a collector on free ports),
//! `<!-- doc-test: demo -->` (a whole demo with `--chaos` and provider states, after a burst
//! of traffic), or `<!-- doc-test: skip: REASON -->`; `, expect TEXT` after the mode names
//! what the output must contain. The documented default addresses are replaced by the test's
//! own, and `gauntlet` is the binary under test. An unmarked block fails here, so a new
//! example is either run or says why not.

mod common;

use std::path::{Path, PathBuf};

use gauntlet_collector::{Collector, Config};
use gauntlet_demo_launch::{LaunchOptions, launch};
use gauntlet_demo_system::topology::InstanceId;

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Collector,
    Demo,
    Skip,
}

#[derive(Debug)]
struct Example {
    /// `docs/load.md:37`, for messages.
    place: String,
    mode: Mode,
    expect: Option<String>,
    script: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

/// The marker's mode and expectation, or why it is not a marker this test knows.
fn marker(line: &str) -> Option<Result<(Mode, Option<String>), String>> {
    let inner = line
        .trim()
        .strip_prefix("<!-- doc-test:")?
        .strip_suffix("-->")?
        .trim();
    let (mode, expect) = match inner.split_once(", expect ") {
        Some((m, e)) => (m.trim(), Some(e.trim().to_string())),
        None => (inner, None),
    };
    Some(match mode {
        "collector" => Ok((Mode::Collector, expect)),
        "demo" => Ok((Mode::Demo, expect)),
        m if m.starts_with("skip:") && m.len() > "skip:".len() + 3 => Ok((Mode::Skip, None)),
        other => Err(format!(
            "{other:?}: use collector, demo or \"skip: REASON\""
        )),
    })
}

fn examples_of(path: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(path).expect("a document");
    let name = path
        .strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "```sh" {
            let place = format!("{name}:{}", i + 1);
            let found = i.checked_sub(1).and_then(|m| marker(lines[m]));
            let (mode, expect) = match found {
                Some(Ok(m)) => m,
                Some(Err(e)) => panic!("{place}: the marker before this example is wrong: {e}"),
                None => panic!(
                    "{place}: a sh example without a marker: put <!-- doc-test: collector -->, \
                     <!-- doc-test: demo --> or <!-- doc-test: skip: REASON --> right above it"
                ),
            };
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| l.trim() != "```")
                .copied()
                .collect();
            i += body.len() + 2;
            out.push(Example {
                place,
                mode,
                expect,
                script: body.join("\n"),
            });
        } else {
            i += 1;
        }
    }
    out
}

fn all_examples() -> Vec<Example> {
    documents().iter().flat_map(|d| examples_of(d)).collect()
}

/// Runs one example with bash (`-euo pipefail`) from the repository's root, with the
/// binary under test first on `PATH` and the documented addresses replaced.
async fn run(example: &Example, addresses: &[(String, String)]) {
    // In two steps: a real address may begin with another documented one (a collector's
    // OTLP port 43171 begins with 4317), which one pass of replacements would rewrite again.
    let mut script = example.script.clone();
    for (i, (documented, _)) in addresses.iter().enumerate() {
        script = script.replace(documented.as_str(), &format!("\u{1}{i}\u{1}"));
    }
    for (i, (_, real)) in addresses.iter().enumerate() {
        script = script.replace(&format!("\u{1}{i}\u{1}"), real);
    }
    let bin_dir = Path::new(common::BIN)
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(root())
        .env("PATH", path)
        .kill_on_drop(true)
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{script}\nstdout: {stdout}\nstderr: {stderr}",
        example.place,
        out.status
    );
    if let Some(want) = &example.expect {
        assert!(
            stdout.contains(want.as_str()),
            "{}: the output lacks {want:?}:\n{script}\nstdout: {stdout}\nstderr: {stderr}",
            example.place
        );
    }
}

/// `127.0.0.1:PORT` as documented → the address in use.
fn pair(port: u16, url: &str) -> (String, String) {
    let host_port = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    (format!("127.0.0.1:{port}"), host_port)
}

#[test]
fn every_sh_example_is_run_or_says_why_not() {
    let examples = all_examples();
    let run = examples.iter().filter(|e| e.mode != Mode::Skip).count();
    assert!(run >= 8, "only {run} examples are run: {examples:#?}");
    // A document with commands shows at least one that runs against a real collector or demo.
    for doc in documents() {
        let mine = examples_of(&doc);
        assert!(
            mine.is_empty() || mine.iter().any(|e| e.mode != Mode::Skip),
            "{}: every example is skipped; run at least one against a collector or a demo",
            doc.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_examples_run_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(Config::ephemeral(dir.path().join("data")))
        .await
        .expect("collector");
    let addresses = [
        pair(4318, &c.addrs.otlp_http.to_string()),
        pair(4317, &c.addrs.otlp_grpc.to_string()),
        pair(16686, &c.addrs.http.to_string()),
    ];
    for e in all_examples().iter().filter(|e| e.mode == Mode::Collector) {
        run(e, &addresses).await;
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_examples_run_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = LaunchOptions::new(common::BIN.into(), dir.path().join("demo"));
    options.chaos = true;
    options.config.contracts.provider_states = true;
    let demo = launch(options).await.expect("the demo starts");
    let h = demo.handle.clone();
    gauntlet_demo_system::traffic::burst(&h.gateway)
        .await
        .expect("a burst of traffic");
    let mut addresses = vec![
        pair(8700, &h.supervisor),
        pair(4318, &h.collector.otlp_http),
        pair(16686, h.collector.api.as_deref().unwrap_or_default()),
    ];
    if let Some(grpc) = &h.collector.otlp_grpc {
        addresses.push(pair(4317, grpc));
    }
    if let Some(chaos) = &h.chaos {
        addresses.push(pair(8474, &chaos.api));
    }
    for id in InstanceId::all() {
        if let Some(url) = h
            .services
            .get(id.service.name())
            .and_then(|urls| urls.get(usize::from(id.ordinal) - 1))
        {
            addresses.push(pair(id.fixed_port(), url));
        }
    }
    addresses.push((
        "gauntlet-demo/demo.json".into(),
        demo.handle_path.display().to_string(),
    ));
    for e in all_examples().iter().filter(|e| e.mode == Mode::Demo) {
        run(e, &addresses).await;
    }
    demo.stop().await;
}
