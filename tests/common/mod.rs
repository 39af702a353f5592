//! What the binary's end-to-end tests share: a running `gauntlet demo` that is stopped even
//! when an assertion fails, and waiting for the file it writes.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_gauntlet");

/// A running `gauntlet demo`, stopped (SIGTERM, then SIGKILL) when dropped, so a failing
/// assertion does not leave the demo and its children running.
pub struct Demo(pub std::process::Child);

impl Demo {
    /// `gauntlet demo --ports auto --no-traffic --data-dir DATA EXTRA...`.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--data-dir", data.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        Self::start_in(None, &args)
    }

    /// `gauntlet demo --ports auto --no-traffic ARGS...`, run in `cwd` if given.
    pub fn start_in(cwd: Option<&Path>, args: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["demo", "--ports", "auto", "--no-traffic"])
            .args(args);
        if let Some(d) = cwd {
            cmd.current_dir(d);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gauntlet demo starts");
        // Drain stdout for the whole run, so the demo never writes into a closed pipe.
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .for_each(drop)
        });
        Self(child)
    }

    /// Sends SIGTERM and waits for the demo to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let started = Instant::now();
        loop {
            if let Some(s) = self.0.try_wait().expect("wait") {
                return s;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.0.kill();
                return self.0.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// A child process killed when dropped, so a failing assertion does not leave it running
/// (and holding the test's output pipes open).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON file at `path`, once it exists and parses.
pub fn wait_for_file(path: &Path, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A current-thread runtime for a test's async part.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The demo's gateway client, logged in as the demo user.
pub async fn demo_gateway(url: &str) -> gauntlet_demo_system::gateway::GatewayClient {
    use gauntlet_demo_system::gateway::{Credentials, GatewayClient};
    let gateway = GatewayClient::at(url).expect("client");
    let token = gateway
        .token(&Credentials {
            username: "demo".into(),
            password: "demo".into(),
        })
        .await
        .expect("token");
    gateway.with_token(&token.access_token)
}
