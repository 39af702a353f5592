//! The system under test: the bundled demo this run starts (and always stops), with its chaos
//! proxies, or a running system the suite names by its handle (used, never stopped).

use gauntlet_demo_launch::{LaunchOptions, Ports, RunningDemo};
use gauntlet_demo_system::config::DemoConfig;
use gauntlet_demo_system::handle::DemoHandle;

use crate::file::Suite;
use crate::report::CollectorRow;
use crate::run::RunOptions;

pub enum System {
    Started(Box<RunningDemo>),
    External(Box<DemoHandle>),
}

impl System {
    /// The suite's running system, or the bundled demo started under `DIR/system`.
    pub async fn start_or_use(suite: &Suite, opts: &RunOptions) -> Result<Self, String> {
        match &suite.external {
            Some(e) => Ok(Self::External(Box::new(e.handle.clone()))),
            None => start_demo(opts, "system", suite.config.clone())
                .await
                .map(|d| Self::Started(Box::new(d)))
                .map_err(|e| format!("the system did not start: {e}")),
        }
    }

    pub fn handle(&self) -> &DemoHandle {
        match self {
            Self::Started(d) => &d.handle,
            Self::External(h) => h,
        }
    }

    /// Where the system's telemetry stays after the run.
    pub fn collector_row(&self) -> CollectorRow {
        match self {
            Self::Started(d) => {
                let data_dir = d.data_dir.join("collector");
                CollectorRow {
                    reopen: format!(
                        "{} collector --data-dir {}",
                        d.exe.display(),
                        data_dir.display()
                    ),
                    data_dir: data_dir.display().to_string(),
                    ui: "http://127.0.0.1:16686".into(),
                }
            }
            Self::External(h) => CollectorRow {
                data_dir: String::new(),
                reopen: "the system's own collector, still running".into(),
                ui: h.collector.api.clone().unwrap_or_default(),
            },
        }
    }

    /// Stops what this run started; a running system is left running.
    pub async fn stop(self) {
        if let Self::Started(d) = self {
            (*d).stop().await;
        }
    }
}

/// A demo on free ports with its chaos proxies, its data under the report directory.
pub async fn start_demo(
    opts: &RunOptions,
    name: &str,
    config: DemoConfig,
) -> Result<RunningDemo, gauntlet_demo_launch::LaunchError> {
    gauntlet_demo_launch::launch(LaunchOptions {
        exe: opts.exe.clone(),
        data_dir: opts.report_dir.join(name),
        ports: Ports::Auto,
        collector: None,
        config,
        chaos: true,
    })
    .await
}
