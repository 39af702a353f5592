//! Live progress: an indicatif bar on a terminal (elapsed, rate, p99, errors), a plain line
//! every five seconds otherwise (CI logs), or nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, lines otherwise.
    Auto,
    Lines,
    Off,
}

/// The run so far, once a second.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub requests: u64,
    pub errors: u64,
    /// Requests in the last second.
    pub rps: f64,
    /// p99 of the last second, in ms.
    pub p99_ms: f64,
}

pub struct Progress {
    bar: Option<ProgressBar>,
    /// The bar counts requests (a run bounded by count), not seconds.
    by_requests: bool,
    lines: bool,
}

impl Progress {
    pub fn new(mode: ProgressMode, duration: Option<Duration>, requests: Option<u64>) -> Self {
        let tty = std::io::stderr().is_terminal();
        match mode {
            ProgressMode::Auto if tty => {
                let (len, unit) = match (duration, requests) {
                    (Some(d), _) => (d.as_secs().max(1), "s"),
                    (None, Some(n)) => (n, "req"),
                    (None, None) => (0, ""),
                };
                let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template(&format!(
                    "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}}{unit}  {{msg}}"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style.progress_chars("=> "));
                Self {
                    bar: Some(bar),
                    by_requests: unit == "req",
                    lines: false,
                }
            }
            ProgressMode::Off => Self {
                bar: None,
                by_requests: false,
                lines: false,
            },
            _ => Self {
                bar: None,
                by_requests: false,
                lines: true,
            },
        }
    }

    pub fn update(&self, s: &Snapshot) {
        let msg = format!(
            "{:.0} req/s  p99 {:.1} ms  {} requests  {} errors",
            s.rps, s.p99_ms, s.requests, s.errors
        );
        if let Some(bar) = &self.bar {
            bar.set_position(if self.by_requests {
                s.requests
            } else {
                s.elapsed.as_secs()
            });
            bar.set_message(msg);
        } else if self.lines && s.elapsed.as_secs().is_multiple_of(5) {
            eprintln!("[{:>4}s] {msg}", s.elapsed.as_secs());
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
